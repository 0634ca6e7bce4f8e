// swift-tools-version: 6.1
// Layers, each depending only on those below it:
//   COpenBLAS / COneDNN / CLapacke / CImageCodecs (system libraries)
//   → TensorCore (tensors, autodiff, kernels) → NN (layers, losses, optimisers, schedules)
//   → Vision (safetensors/npy, images, ViT) → DVT (stage 1, stage 2, SRT, metrics, visuals)
//   → Trainer (config-driven trainer, jobs) → DVTCommands (CLI) → dvt (executable, no logic)
import PackageDescription

// Kernels are compiled with optimisation even in debug builds: the test suite runs debug
// builds, and unoptimised Swift loops are 20-50x slower, which would blow the CI budget.
let kernelSettings: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "dvt",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "NN", targets: ["NN"]),
        .executable(name: "dvt", targets: ["DVTTool"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CLapacke", path: "Sources/CLapacke"),
        .systemLibrary(name: "COneDNN", path: "Sources/COneDNN"),
        .target(name: "TensorCore", dependencies: ["COpenBLAS", "COneDNN"], swiftSettings: kernelSettings),
        .target(name: "NN", dependencies: ["TensorCore"], swiftSettings: kernelSettings),
        .target(name: "CImageCodecs", path: "Sources/CImageCodecs",
                linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png")]),
        .target(name: "Vision", dependencies: ["NN", "TensorCore", "CImageCodecs", "CLapacke"],
                swiftSettings: kernelSettings),
        .target(name: "DVT", dependencies: ["Vision", "NN", "TensorCore", "CLapacke"], swiftSettings: kernelSettings),
        .target(name: "Trainer", dependencies: [
            "DVT", "Vision", "NN", "TensorCore", "COpenBLAS",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ], swiftSettings: kernelSettings),
        .target(name: "DVTCommands", dependencies: [
            "Trainer", "DVT", "Vision", "NN", "TensorCore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "DVTTool", dependencies: ["DVTCommands"]),
        .target(name: "TestSupport", dependencies: ["TensorCore"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "TestSupport"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "TestSupport"]),
        .testTarget(name: "VisionTests", dependencies: ["Vision", "TestSupport"]),
        .testTarget(name: "TrainerTests", dependencies: ["Trainer", "Vision", "NN", "TestSupport"]),
        .testTarget(name: "DVTTests", dependencies: ["DVT", "Trainer", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: [
            "DVTCommands", "Trainer", "DVT", "Vision", "TestSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
    ],
    // Swift 5 mode: the kernels hand raw buffers to DispatchQueue.concurrentPerform workers,
    // which Swift 6's strict Sendable checking rejects without wrapping every pointer.
    swiftLanguageModes: [.v5]
)
