import ArgumentParser
import Bench
import Foundation
import TensorCore

extension DVTCommand.BenchCommand {
    /// `dvt bench stage1-quality`: the fast recipe against the official one (two seeds) on the
    /// same views, with the cost and agreement table.
    struct Stage1Quality: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "stage1-quality",
            abstract: "A fast stage-1 recipe against the official one (seeds 0 and 1) on the same views: cost and agreement of F and G.",
            discussion: """
                Runs the official recipe with seeds 0 and 1 and the fast recipe with seed 0 on the same views of each case, \
                at a budget (default the planted budget: PlantedBench's 8 levels, 2^16, finest 256, 3000 steps, over \
                DVT's defaults; change it with --budget-set), the fast recipe scaled from --fast and --official (views and \
                steps by their ratio, table keys by their difference; docs/speed.md). Cases: planted files (--planted, \
                scored against the truth too) or photos (--images, through --arch with --weights at --size, --views \
                views). Prints one row per run: views, steps, forward / fit / total seconds, centred cosine of F and G \
                against the official seed 0, and for planted cases against the truth; then per case whether the fast \
                recipe passes (F and G agreement >= the official seed 1's − 0.005; planted cosines within 0.002 of \
                the official seed 0's) and the cost ratio. --fast-prior-loo starts the fast recipe's G from the mean \
                official seed-0 G of the run's other cases (stage1.shared_artifacts_prior; never the case's own); --cache \
                DIR keeps the official runs for the next sweep.
                """)
        @OptionGroup var compute: ComputeOptions
        @Option(help: "Official recipe config.") var official = "Configs/dvt-default.yaml"
        @Option(help: "Fast recipe config.") var fast = "Configs/dvt-fast.yaml"
        @Option(parsing: .upToNextOption, help: "Planted cases (.safetensors).") var planted: [String] = []
        @Option(parsing: .upToNextOption, help: "Photos (real features through --arch and --weights).") var images: [String] = []
        @Option(help: "ViT architecture for --images.") var arch = "vit_small_patch14_dinov2.lvd142m"
        @Option(help: "ViT checkpoint for --images (without it: seeded random weights, no semantics).") var weights: String?
        @Option(help: "Input size of --images (square).") var size = 448
        @Option(help: "Views per photo at the budget (besides the whole image).") var views = 64
        @Option(help: "A stage1.* setting of the budget (both recipes), over the planted budget: --budget-set stage1.num_iters=1000")
        var budgetSet: [String] = []
        @Option(help: "A stage1.* setting applied to the scaled fast recipe only (for sweeps): --fast-set stage1.pixel_bsz=1024")
        var fastSet: [String] = []
        @Option(
            parsing: .upToNextOption,
            help: "Sweep: views of the fast recipe at the budget instead of the scaled count (several: one fast run each, crossed with --fast-steps)."
        ) var fastViews: [Int] = []
        @Option(parsing: .upToNextOption, help: "Sweep: steps of the fast recipe at the budget instead of the scaled count (warmup a tenth).")
        var fastSteps: [Int] = []
        @Option(help: "Operand precision of the fit's products.") var precision: Precision = .fp32
        @Flag(
            help:
                "Start the fast recipe's G from a leave-one-out prior: the mean official seed-0 G of the run's other cases (needs 2 or more cases of one shape)."
        ) var fastPriorLoo = false
        @Option(help: "Where --fast-prior-loo writes its priors (default: a temporary directory).") var priorDir: String?
        @Option(help: "Keep the official runs here and reuse them when the case's features and the recipe are the same.") var cache: String?

        func validate() throws {
            if planted.isEmpty && images.isEmpty { throw ValidationError("give --planted FILE … or --images PHOTO …") }
            if let bad = (budgetSet + fastSet).first(where: { !$0.hasPrefix("stage1.") }) {
                throw ValidationError("--budget-set and --fast-set take stage1.* settings only, got '\(bad)'")
            }
            if views < 1 || size < 14 { throw ValidationError("--views must be >= 1 and --size >= 14") }
            if (fastViews + fastSteps).contains(where: { $0 < 1 }) { throw ValidationError("--fast-views and --fast-steps must be >= 1") }
        }

        func run() throws {
            var o = Stage1QualityBench.Options(official: URL(fileURLWithPath: official), fast: URL(fileURLWithPath: fast))
            o.planted = planted.map { URL(fileURLWithPath: $0) }
            o.images = images.map { URL(fileURLWithPath: $0) }
            o.arch = arch
            o.weights = weights
            o.size = size
            o.views = views
            o.budgetSet = budgetSet
            o.fastSet = fastSet
            o.fastViews = fastViews
            o.fastSteps = fastSteps
            o.precision = precision
            o.fastPriorLeaveOneOut = fastPriorLoo
            o.priorDirectory = priorDir.map { URL(fileURLWithPath: $0) }
            o.cache = cache.map { URL(fileURLWithPath: $0) }
            _ = try Stage1QualityBench.run(o, log: { FileHandle.standardOutput.write(Data(($0 + "\n").utf8)) })  // unbuffered: a sweep's rows come minutes apart
        }
    }
}
