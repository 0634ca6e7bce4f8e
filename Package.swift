// swift-tools-version: 6.1
// Layers: each target depends on exactly what it imports, and only on targets above it in this
// list (RepositoryTests.ModuleGraphTests checks both; docs/architecture.md draws the graph).
//   C: COpenBLAS, COneDNN, CLapacke, CImageCodecs, COpenMPI (system libraries), CKernels (AVX-512 row kernels)
//   TensorCore (tensors, autodiff, kernels)                    ← CKernels, COneDNN, COpenBLAS
//   NN (layers, losses, optimisers, schedules)                 ← TensorCore
//   Formats (safetensors, npy, .pth, atomic files, JSON)       ← TensorCore
//   Settings (typed settings tree, schema, choice enums, YAML) ← Formats, TensorCore, Yams
//   Distributed (MPI communicator)                             ← COpenMPI, TensorCore
//   ONNX (onnx.proto subset, generated Swift, bounded reader)  ← Formats, TensorCore, SwiftProtobuf
//   Vision (images, resizes, views, ViT, checkpoint names)     ← ONNX, Settings, Formats, NN, TensorCore, CImageCodecs
//   Training (the one loop, checkpoints, tasks, sampler)       ← Formats, NN, TensorCore
//   DVT (stage 1, stage 2, SRT, metrics, planted data)         ← Training, Vision, Settings, Formats, NN, TensorCore, CLapacke
//   ONNXExport (ONNX graphs: denoiser, ViT + denoiser)         ← DVT, Vision, ONNX, Formats, NN, TensorCore
//   Probe (linear probes: metrics, heads, datasets, scenes)    ← Training, Vision, Settings, Formats, NN, TensorCore (a sibling of DVT)
//   Report (HTML, plots)                                       ← DVT, Training, Vision, Formats, TensorCore
//   Jobs (image sources, sharding, feature tree, runners)      ← DVT, Probe, Report, Settings, Distributed, …
//   Bench (benchmarks, PyTorch reference)                      ← Jobs, DVT, Probe, Settings, COpenBLAS, …
//   DVTCommands (the CLI: flags, then one call)                ← Bench, Jobs, …, ArgumentParser
//   DVTTool (the executable, no logic)                         ← DVTCommands
import PackageDescription

// Kernels are compiled with optimisation even in debug builds: the test suite runs debug
// builds, and unoptimised Swift loops are 20-50x slower, which would blow the CI budget.
// Swift 6 language mode (strict concurrency), per target so that one could go back to Swift 5
// alone while it is being converted. Every target is converted, and the package default is .v6.
let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]
let kernelSettings: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))] + swift6

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
        // onnx.proto's Swift is generated once (scripts/gen-onnx-proto.sh) and committed, so
        // only the runtime library builds here, never the protoc plugin.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CLapacke", path: "Sources/CLapacke"),
        .systemLibrary(name: "COneDNN", path: "Sources/COneDNN"),
        // AVX-512 row kernels (softmax, GELU) behind a runtime CPU check; TensorCore falls back
        // to its Swift kernels on CPUs without AVX-512.
        .target(name: "CKernels", path: "Sources/CKernels", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "TensorCore", dependencies: ["COpenBLAS", "COneDNN", "CKernels"], swiftSettings: kernelSettings),
        .target(name: "NN", dependencies: ["TensorCore"], swiftSettings: kernelSettings),
        .target(
            name: "CImageCodecs", path: "Sources/CImageCodecs",
            linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png")]),
        // Formats: file formats and atomic writes (safetensors, npy, PyTorch .pth, JSON header),
        // below everything that reads or writes files.
        .target(name: "Formats", dependencies: ["TensorCore"], swiftSettings: kernelSettings),
        // Settings sits low: the typed settings tree, whose sections and choice enums the method
        // code (Vision's thaw modes, DVT's stage 1, SRT and fine-tuning, Probe's tasks) takes as is.
        .target(
            name: "Settings", dependencies: ["Formats", "TensorCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: swift6),
        // ONNX: the onnx.proto subset (Protos/onnx.proto, generated into onnx.pb.swift, public so
        // that writers reuse it) and the bounded reader of a model's initializers and nodes.
        .target(
            name: "ONNX", dependencies: ["Formats", "TensorCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: swift6),
        .target(
            name: "Vision", dependencies: ["ONNX", "Settings", "Formats", "NN", "TensorCore", "CImageCodecs"],
            swiftSettings: kernelSettings),
        // Training sits below DVT so that DVT's tasks can conform to its TrainingTask protocol.
        .target(name: "Training", dependencies: ["Formats", "NN", "TensorCore"], swiftSettings: kernelSettings),
        .target(
            name: "DVT", dependencies: ["Training", "Vision", "Settings", "Formats", "NN", "TensorCore", "CLapacke"],
            swiftSettings: kernelSettings),
        // ONNX graphs of the denoiser and of the whole extractor (ViT + denoiser): a small graph
        // builder over the generated onnx.proto types.
        .target(
            name: "ONNXExport", dependencies: ["DVT", "Vision", "ONNX", "Formats", "NN", "TensorCore"],
            swiftSettings: swift6),
        // Probe: downstream evaluation (DVT's linear-probe protocol): mmseg/DINOv2 metrics, the
        // BN + 1×1 heads and their losses, dataset readers, the synthetic labelled scenes.
        .target(name: "Probe", dependencies: ["Training", "Vision", "Settings", "Formats", "NN", "TensorCore"], swiftSettings: kernelSettings),
        .target(
            name: "Report", dependencies: ["DVT", "Training", "Vision", "Formats", "TensorCore"],
            swiftSettings: kernelSettings),
        // OpenMPI (Debian's libopenmpi-dev; pkg-config ompi-c gives mpi.h's folder) and the
        // communicator over it: stage 2 data parallelism under mpirun / srun --mpi=pmix.
        .systemLibrary(
            name: "COpenMPI", path: "Sources/COpenMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "Distributed", dependencies: ["COpenMPI", "TensorCore"], swiftSettings: swift6),
        .target(
            name: "Jobs",
            dependencies: [
                "ONNXExport", "Probe", "Distributed", "Report", "Settings", "DVT", "Training", "Vision", "Formats", "NN", "TensorCore",
            ], swiftSettings: kernelSettings),
        // Benchmarks that spawn the PyTorch reference and call cblas: only the CLI depends on them.
        .target(
            name: "Bench",
            dependencies: [
                "Probe", "Distributed", "Jobs", "Settings", "DVT", "Training", "Vision", "Formats", "NN", "TensorCore", "COpenBLAS",
            ], swiftSettings: kernelSettings),
        .target(
            name: "DVTCommands",
            dependencies: [
                "Probe", "Distributed", "Bench", "Jobs", "Settings", "DVT", "Training", "Vision", "Formats", "NN", "TensorCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ], swiftSettings: swift6),
        .executableTarget(name: "DVTTool", dependencies: ["DVTCommands"], swiftSettings: swift6),
        .target(name: "TestSupport", dependencies: ["TensorCore"], path: "Tests/TestSupport", swiftSettings: swift6),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "CKernels", "TestSupport"], swiftSettings: swift6),
        .testTarget(name: "NNTests", dependencies: ["NN", "TensorCore", "TestSupport"], swiftSettings: swift6),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "TensorCore", "TestSupport"], swiftSettings: swift6),
        .testTarget(
            name: "ONNXTests",
            dependencies: [
                "ONNX", "TensorCore", "TestSupport",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swift6),
        .testTarget(name: "VisionTests", dependencies: ["Vision", "ONNX", "Formats", "NN", "TensorCore", "TestSupport"], swiftSettings: swift6),
        .testTarget(
            name: "TrainingTests", dependencies: ["Training", "Vision", "Formats", "NN", "TensorCore", "TestSupport"],
            swiftSettings: swift6),
        .testTarget(name: "SettingsTests", dependencies: ["Settings", "TensorCore", "TestSupport"], swiftSettings: swift6),
        .testTarget(
            name: "DVTTests", dependencies: ["DVT", "Bench", "Settings", "Training", "Vision", "Formats", "NN", "TensorCore", "TestSupport"],
            swiftSettings: swift6),
        .testTarget(name: "ProbeTests", dependencies: ["Probe", "Vision", "TensorCore", "TestSupport"], swiftSettings: swift6),
        .testTarget(
            name: "JobsTests",
            dependencies: [
                "Jobs", "Report", "Settings", "DVT", "Training", "Vision", "Formats", "NN", "TensorCore", "TestSupport",
            ], swiftSettings: swift6),
        // Checks over the repository's own sources (test bodies, the module graph).
        .testTarget(name: "RepositoryTests", dependencies: ["TestSupport"], swiftSettings: swift6),
        .testTarget(
            name: "CLITests",
            dependencies: [
                "ONNX", "ONNXExport",
                "DVTCommands", "Bench", "Jobs", "Probe", "Settings", "Training", "DVT", "Vision", "Formats", "TensorCore", "TestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ], swiftSettings: swift6),
    ],
    // Swift 6 for the whole package; every target also says so (`swift6`), so that one can be
    // set back to .v5 alone if a conversion ever needs it. The engine's threads are made in one
    // place (Parallel.concurrentPerform), which passes kernel bodies that capture raw pointers
    // across as unchecked Sendable.
    swiftLanguageModes: [.v6]
)
