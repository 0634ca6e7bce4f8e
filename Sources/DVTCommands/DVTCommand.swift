import ArgumentParser
import Foundation
import NN
import TensorCore

/// The `dvt` command-line tool.
public struct DVTCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dvt",
        abstract: "Remove position artifacts from Vision Transformer features (DVT and SRT), on the CPU.",
        discussion: """
        Every command that builds a ViT takes either --weights FILE (a timm safetensors checkpoint) \
        or --random-init SEED (seeded random weights, for demos and tests only: features from \
        random weights mean nothing, and every output says so).
        """,
        version: DVTVersion.string,
        subcommands: [Demo.self, EngineDemo.self, Extract.self, Stage1Command.self, Stage2.self, Export.self, Denoise.self, SRTCommand.self, MetricsCommand.self, BenchCommand.self]
    )

    public init() {}
}

public enum DVTVersion {
    public static let string = "0.1.0"
}

/// Options every compute-heavy command shares.
public struct ComputeOptions: ParsableArguments {
    @Option(name: .long, help: "Worker threads for kernels and OpenBLAS (default: all cores, or DVT_NUM_THREADS).")
    public var threads: Int?

    public init() {}

    public func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be >= 1, got \(threads)") }
    }

    public func apply() {
        if let threads { Parallel.threads = threads }
    }
}

extension DVTCommand {
    /// The README's demo. For now: the engine demo (the pipeline demo grows from it).
    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the demo: trains a small MLP with the engine and prints its loss falling.")

        @OptionGroup var compute: ComputeOptions
        @Option(help: "Training steps.") var steps = 300
        @Option(help: "Random seed.") var seed: UInt64 = 0

        func validate() throws {
            if steps < 1 { throw ValidationError("--steps must be >= 1, got \(steps)") }
        }

        func run() throws {
            compute.apply()
            let result = runEngineDemo(steps: steps, logEvery: max(1, steps / 10), seed: seed) { print($0) }
            if !(result.finalLoss < result.initialLoss) {
                throw ValidationError("the demo's loss did not fall (\(result.initialLoss) → \(result.finalLoss))")
            }
        }
    }

    struct EngineDemo: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "engine-demo",
            abstract: "Train a seeded two-spirals MLP with the autodiff engine and print the loss.")

        @OptionGroup var compute: ComputeOptions
        @Option(help: "Training steps.") var steps = 300
        @Option(help: "Random seed.") var seed: UInt64 = 0

        func run() throws {
            compute.apply()
            runEngineDemo(steps: steps, logEvery: max(1, steps / 10), seed: seed) { print($0) }
        }
    }
}
