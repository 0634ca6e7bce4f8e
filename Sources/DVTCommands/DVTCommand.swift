import ArgumentParser
import Bench
import DVT
import Formats
import Foundation
import Jobs
import NN
import Settings
import TensorCore
import Training
import Vision

/// The `dvt` command-line tool.
public struct DVTCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dvt",
        abstract: "Remove position artifacts from Vision Transformer features (DVT and SRT), on the CPU.",
        discussion: """
        Every command that builds a ViT takes either --weights FILE (a timm checkpoint: .safetensors or .pth) \
        or --random-init SEED (seeded random weights, for demos and tests only: features from \
        random weights mean nothing, and every output says so).
        """,
        version: DVTVersion.string,
        subcommands: [Run.self, ProbeCommand.self, SynthVOC.self, ConfigCommand.self, Models.self, EngineDemo.self, Extract.self, Stage1Command.self, Stage2.self, Finetune.self, Export.self, Convert.self, Denoise.self, SRTCommand.self, MetricsCommand.self, BenchCommand.self, DoctorCommand.self]
    )

    public init() {}

    /// ArgumentParser's `main`, with Foundation file errors that reach the top (from any command)
    /// put in plain words naming the path, instead of `Error Domain=NSCocoaErrorDomain …` dumps.
    public static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: FileErrors.describe(error))
        }
    }
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
        if let threads { Parallel.setDefaultThreads(threads) }
    }
}

extension DVTCommand {
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
