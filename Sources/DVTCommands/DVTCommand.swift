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
        subcommands: [
            Run.self, ProbeCommand.self, SynthVOC.self, ConfigCommand.self, Models.self, EngineDemo.self, Extract.self, Stage1Command.self,
            Stage1Prior.self,
            Stage2.self, Finetune.self, Export.self, ExportExtractor.self, Convert.self, Denoise.self, SRTCommand.self, MetricsCommand.self,
            BenchCommand.self, DoctorCommand.self,
        ]
    )

    public init() {}

    /// ArgumentParser's `main`, with Foundation file errors that reach the top (from any command)
    /// put in plain words naming the path, instead of `Error Domain=NSCocoaErrorDomain …` dumps.
    public static func main() {
        do {
            var command = try parseAsRoot()
            // The executable owns its process: `--threads` is the process default, set once at
            // start-up (it also sets OpenBLAS's own count, see `BLAS.Threading`).
            if let threads = (command as? ComputeCommand)?.compute.threads { Parallel.setDefaultThreads(threads) }
            try execute(&command)
        } catch {
            exit(withError: FileErrors.describe(error))
        }
    }

    /// Runs a parsed command with its `--threads` scoped to the call (`Parallel.withThreads`, a
    /// task-local): the in-process entry point of the CLI tests, so that a command run there
    /// never changes the thread count of the tests running beside it.
    public static func execute(_ command: inout ParsableCommand) throws {
        guard let threads = (command as? ComputeCommand)?.compute.threads else { return try command.run() }
        try Parallel.withThreads(threads) { try command.run() }
    }
}

/// Options every compute-heavy command shares.
public struct ComputeOptions: ParsableArguments {
    @Option(name: .long, help: "Worker threads for kernels and OpenBLAS (default: all cores, or DVT_NUM_THREADS).")
    public var threads: Int?

    public init() {}

    public func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be >= 1, got \(threads)") }
    }
}

/// A command that takes `ComputeOptions`: `DVTCommand.execute` runs it with its `--threads`.
protocol ComputeCommand: ParsableCommand {
    var compute: ComputeOptions { get }
}

extension DVTCommand {
    struct EngineDemo: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "engine-demo",
            abstract: "Train a seeded two-spirals MLP with the autodiff engine and print the loss.")

        @OptionGroup var compute: ComputeOptions
        @Option(help: "Training steps.") var steps = 300
        @Option(help: "Random seed.") var seed: UInt64 = 0

        func run() throws {
            runEngineDemo(steps: steps, logEvery: max(1, steps / 10), seed: seed) { print($0) }
        }
    }
}
