import ArgumentParser
import Foundation
import Jobs

extension DVTCommand {
    /// `dvt stage1-prior`: the mean G of earlier stage-1 runs, for `stage1.shared_artifacts_prior`.
    struct Stage1Prior: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stage1-prior",
            abstract: "Average the shared artifact maps G of stage-1 runs into a prior for stage1.shared_artifacts_prior.",
            discussion: """
                Reads OUT/shared_artifacts/<model>/**.npy of each run directory (stage 1 writes them with \
                stage1.save_extras: true), checks that the runs share model, block and input size (their \
                stage1_config.yaml), and writes the (h, w, C) mean to --out atomically. Not a DVT step: DVT fits G \
                from scratch for every image (docs/stage1.md).
                """)
        @Argument(help: "Stage-1 run directories (output_dir of earlier `dvt stage1` runs).") var runs: [String]
        @Option(help: "The prior to write (.npy).") var out: String

        func validate() throws {
            if runs.isEmpty { throw ValidationError("give one stage-1 run directory or more") }
            if !out.lowercased().hasSuffix(".npy") { throw ValidationError("--out must name a .npy file, got '\(out)'") }
        }

        func run() throws {
            let r = try Stage1PriorJob.build(runs: runs.map { URL(fileURLWithPath: $0) }, out: URL(fileURLWithPath: out))
            print("\(out): mean of \(r.files.count) G maps, shape \(r.prior.shape)")
        }
    }
}
