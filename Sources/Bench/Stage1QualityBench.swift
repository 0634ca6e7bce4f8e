import DVT
import Formats
import Foundation
import Jobs
import Settings
import TensorCore
import Vision

/// `dvt bench stage1-quality`: a fast stage-1 recipe against the official one on the same views.
///
/// The official recipe runs twice (seeds 0 and 1) and the fast recipe once (seed 0), all on one
/// set of views; F and G of each run are compared with the official seed 0 by centred cosine (F:
/// `Metrics.centeredCosine`, G: `Metrics.flatCenteredCosine`, as the planted scores). The
/// official seed 1 row is the yardstick: the recipe's own seed-to-seed agreement. On planted
/// cases the runs are also scored against the truth.
///
/// Both recipes run at a budget (the planted budget by default: 8 levels, 2^16, finest 256, 3000
/// steps), the fast one scaled from the two configs: its views and steps are the budget's times
/// fast/official, its table keys move by the same amount as between the configs (log2 size by
/// the difference, levels and resolutions by the ratio), every other stage1 key is the fast
/// config's where it differs from the official one.
public enum Stage1QualityBench {
    /// One recipe at the budget.
    public struct Recipe: Sendable {
        public var label: String
        public var settings: Stage1Settings
        /// Views besides the whole image.
        public var views: Int
        public var seed: UInt64
    }

    /// One run scored.
    public struct Row: Sendable {
        public var caseName: String
        public var recipe: String
        public var views: Int
        public var steps: Int
        /// Forward seconds of its views + 1 (per-view time of the case × views; 0 on planted data).
        public var forwardSeconds: Double
        public var fitSeconds: Double
        /// Centred cosine of F / G against the official recipe's seed 0.
        public var fAgreement: Double
        public var gAgreement: Double
        /// Planted cases: F and G against the truth.
        public var denoisedCosine: Double?
        public var artifactCosine: Double?
        public var costSeconds: Double { forwardSeconds + fitSeconds }
    }

    /// The fast recipe at the budget, scaled as the type's comment says.
    /// - Throws: `ConfigError` when a scaled value leaves its key's range.
    public static func scaledFast(
        official: DVTSettings.Stage1, fast: DVTSettings.Stage1,
        budget: Stage1Settings, budgetViews: Int
    ) throws -> (Stage1Settings, Int) {
        let o = official, f = fast
        var s = budget
        func ratio(_ b: Int, _ fv: Int, _ ov: Int) -> Int { max(1, Int((Double(b) * Double(fv) / Double(ov)).rounded())) }
        let views = ratio(budgetViews, fast.numViews, official.numViews)
        s.numIters = ratio(budget.numIters, f.numIters, o.numIters)
        s.warmupIters = Int((Double(f.effectiveWarmupIters) / Double(f.numIters) * Double(s.numIters)).rounded())
        s.nLevels = ratio(budget.nLevels, f.nLevels, o.nLevels)
        s.log2HashmapSize = budget.log2HashmapSize + f.log2HashmapSize - o.log2HashmapSize
        s.baseResolution = ratio(budget.baseResolution, f.baseResolution, o.baseResolution)
        s.maxResolution = ratio(budget.maxResolution, f.maxResolution, o.maxResolution)
        s.nFeaturesPerLevel = ratio(budget.nFeaturesPerLevel, f.nFeaturesPerLevel, o.nFeaturesPerLevel)
        // Every other key the fast recipe changes is taken as is (the output-only keys aside).
        s = s.takingDifferences(of: f, from: o, excluding: Self.scaledOrOutputKeys)
        do { try s.validate() } catch { throw ConfigError("the fast recipe scaled to the budget is invalid: \(error)") }
        return (s, views)
    }

    /// Stage-1 keys the fast recipe does not copy to the budget: the ones scaled by their
    /// fast/official ratio above, and the ones that only shape the output.
    static let scaledOrOutputKeys: Set<String> = [
        "num_views", "num_iters", "warmup_iters", "n_levels", "n_features_per_level", "log2_hashmap_size",
        "base_resolution", "max_resolution", "save_extras", "vis_every", "print_freq",
    ]

    /// The first `views` views and the whole image (last) of (V+1, h, w, ·) `x`.
    static func subset(_ x: Tensor, views: Int) -> Tensor {
        let n = x.shape[0]
        precondition(views >= 1 && views < n, "subset: \(views) views of \(n - 1)")
        if views == n - 1 { return x }
        return withNoGrad { Tensor.concat([x.slice(axis: 0, 0..<views), x.slice(axis: 0, (n - 1)..<n)], axis: 0) }
    }

    /// One fit's outputs and seconds.
    public struct Fitted {
        public var output: Stage1Output
        public var seconds: Double
    }

    /// Fits recipe `r` on the first `r.views` views and the whole image of a case.
    static func fit(_ r: Recipe, caseName: String, raw: Tensor, coords: Tensor, precision: Precision) throws -> Fitted {
        let available = raw.shape[0] - 1
        guard r.views <= available else {
            throw ConfigError("recipe \(r.label) needs \(r.views) views; case \(caseName) has \(available)")
        }
        let result = try Stage1.fit(
            views: subset(raw, views: r.views), coords: subset(coords, views: r.views),
            settings: r.settings, seed: r.seed, precision: precision)
        return Fitted(output: result.output, seconds: result.seconds)
    }

    /// Recipe `r`'s fit scored against the reference outputs (the official seed 0) and the truth.
    static func score(
        _ fitted: Fitted, recipe r: Recipe, caseName: String, reference ref: Stage1Output,
        forwardSecondsPerView: Double, truth: PlantedData?
    ) -> Row {
        let out = fitted.output
        var row = Row(
            caseName: caseName, recipe: r.label, views: r.views, steps: r.settings.numIters,
            forwardSeconds: forwardSecondsPerView * Double(r.views + 1), fitSeconds: fitted.seconds,
            fAgreement: Double(Metrics.centeredCosine(out.denoised, ref.denoised)),
            gAgreement: Double(Metrics.flatCenteredCosine(out.sharedArtifacts, ref.sharedArtifacts)))
        if let truth {
            row.denoisedCosine = Double(Metrics.centeredCosine(out.denoised, truth.cleanFull))
            row.artifactCosine = Double(Metrics.flatCenteredCosine(out.sharedArtifacts, truth.artifact))
        }
        return row
    }

    /// Runs `recipes` (the first is the reference: the official seed 0) on one case's (V+1, h, w, C)
    /// `raw` and (V+1, h, w, 2) `coords` and scores them. `forwardSecondsPerView`: the case's ViT
    /// time per view (0 for planted data); `truth`: the planted truth.
    public static func compare(
        caseName: String, raw: Tensor, coords: Tensor, recipes: [Recipe], precision: Precision,
        forwardSecondsPerView: Double, truth: PlantedData? = nil,
        log: (String) -> Void = { _ in }
    ) throws -> [Row] {
        var reference: Stage1Output? = nil
        var rows: [Row] = []
        for r in recipes {
            let fitted = try fit(r, caseName: caseName, raw: raw, coords: coords, precision: precision)
            if reference == nil { reference = fitted.output }
            let row = score(
                fitted, recipe: r, caseName: caseName, reference: reference!, forwardSecondsPerView: forwardSecondsPerView, truth: truth)
            log(format(row))
            rows.append(row)
        }
        return rows
    }

    /// An official run of a case through `cache` (nil: always fitted): the cache file is named by
    /// the case and a fingerprint of everything the fit depends on (settings, views, seed,
    /// precision, the features and coordinates), so a changed input is a miss, never a stale hit.
    static func cachedFit(
        _ r: Recipe, caseName: String, raw: Tensor, coords: Tensor, precision: Precision, cache: URL?
    ) throws -> (Fitted, cached: Bool) {
        guard let cache else { return (try fit(r, caseName: caseName, raw: raw, coords: coords, precision: precision), false) }
        var h = FNV1a()
        h.combine(utf8: "\(r.settings)|views \(r.views)|seed \(r.seed)|\(precision.rawValue)|\(raw.shape)|\(coords.shape)")
        for t in [raw, coords] { for i in 0..<t.count { h.combine(UInt64(t[flat: i].bitPattern)) } }
        let url = cache.appendingPathComponent("\(caseName)-\(String(h.value, radix: 16)).safetensors")
        if FileManager.default.fileExists(atPath: url.path) {
            let file = try SafeTensorsFile(url: url)
            let out = Stage1Output(
                denoised: try file.tensor("denoised"), raw: try file.tensor("raw"),
                sharedArtifacts: try file.tensor("shared_artifacts"), residual: nil)
            return (Fitted(output: out, seconds: Double(file.metadata["fit_seconds"] ?? "") ?? 0), true)
        }
        let fitted = try fit(r, caseName: caseName, raw: raw, coords: coords, precision: precision)
        try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        try SafeTensors.write(
            ["denoised": fitted.output.denoised, "raw": fitted.output.raw, "shared_artifacts": fitted.output.sharedArtifacts],
            metadata: ["fit_seconds": String(fitted.seconds), "case": caseName, "recipe": r.label], to: url)
        return (fitted, false)
    }

    /// Whether the fast row passes against the official seed-1 row of the same case (issue
    /// criteria): F and G agreement at least seed 1's minus `margin`; planted cosines within
    /// `plantedMargin` of the official seed 0's.
    public static func passes(fast: Row, seed1: Row, seed0: Row, margin: Double = 0.005, plantedMargin: Double = 0.002) -> Bool {
        var ok = fast.fAgreement >= seed1.fAgreement - margin && fast.gAgreement >= seed1.gAgreement - margin
        if let d = fast.denoisedCosine, let d0 = seed0.denoisedCosine, let a = fast.artifactCosine, let a0 = seed0.artifactCosine {
            ok = ok && d >= d0 - plantedMargin && a >= a0 - plantedMargin
        }
        return ok
    }

    public static let header = "case              recipe          views  steps   fwd s   fit s  cost s   F agree  G agree  F/truth  G/truth"

    public static func format(_ r: Row) -> String {
        func opt(_ x: Double?) -> String { x.map { String(format: "%7.4f", $0) } ?? "      —" }
        return String(
            format: "%@  %@  %5d  %5d  %6.1f  %6.1f  %6.1f   %7.4f  %7.4f  %@  %@",
            r.caseName.padding(toLength: 16, withPad: " ", startingAt: 0) as NSString,
            r.recipe.padding(toLength: 14, withPad: " ", startingAt: 0) as NSString,
            r.views, r.steps, r.forwardSeconds, r.fitSeconds, r.costSeconds, r.fAgreement, r.gAgreement,
            opt(r.denoisedCosine) as NSString, opt(r.artifactCosine) as NSString)
    }

    /// Real features of `image` for the budget: `num_views` views at `config`'s input size through
    /// `model`, as stage 1 makes them (seed = the image's stage-1 seed at run seed 0). Returns the
    /// (V+1, h, w, C) features, coordinates and the forward seconds per view.
    public static func realViews(config: ResolvedConfig, model: VisionTransformer, image: URL) throws -> (Tensor, Tensor, Double) {
        let job = try Stage1Job(config: config, model: model)
        let t0 = DispatchTime.now().uptimeNanoseconds
        let (rows, _, coords) = try job.viewFeatures(image, seed: Stage1Job.imageSeed(0, image.deletingPathExtension().lastPathComponent))
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let raw = rows.copyRows(0..<rows.rows).reshape(Array(coords.shape.dropLast()) + [rows.cols])  // (V+1, h, w, C)
        return (raw, coords, seconds / Double(coords.shape[0]))
    }

    /// What `dvt bench stage1-quality` compares (its flags).
    public struct Options: Sendable {
        /// Official and fast recipe configs.
        public var official: URL
        public var fast: URL
        /// Planted cases (.safetensors), scored against the truth too.
        public var planted: [URL] = []
        /// Photos: real features through `arch` with `weights` (nil: seeded random weights) at
        /// `size`², `views` views each.
        public var images: [URL] = []
        public var arch = "vit_small_patch14_dinov2.lvd142m"
        public var weights: String? = nil
        public var size = 448
        public var views = 64
        /// `--set` text for stage1.* keys of the budget (both recipes), over the planted budget.
        public var budgetSet: [String] = []
        /// `--set` text for stage1.* keys of the scaled fast recipe only.
        public var fastSet: [String] = []
        /// Sweeps: views and steps of the fast recipe instead of the scaled ones (crossed).
        public var fastViews: [Int] = []
        public var fastSteps: [Int] = []
        public var precision: Precision = .fp32
        /// Start the fast recipe's G from a leave-one-out prior: the mean of the official seed-0 G
        /// of every other case of the run (never the case's own), written to a file in
        /// `priorDirectory` and set as `stage1.shared_artifacts_prior`. Needs two cases or more of
        /// one (h, w, C).
        public var fastPriorLeaveOneOut = false
        /// Where the leave-one-out priors are written (nil: a temporary directory).
        public var priorDirectory: URL? = nil
        /// Official runs are kept here and reused when the case, its features and the recipe
        /// are the same (nil: none kept).
        public var cache: URL? = nil

        public init(official: URL, fast: URL) {
            self.official = official
            self.fast = fast
        }
    }

    /// Runs the comparison the options describe, printing through `log`: the header, one row per
    /// run, per case and fast recipe whether it passes and its cost ratio, then the verdict.
    /// Returns whether every fast recipe passes.
    public static func run(_ o: Options, log: (String) -> Void) throws -> Bool {
        let officialConfig = try ConfigSchema.load(file: o.official)
        let fastConfig = try ConfigSchema.load(file: o.fast)
        let budget = try ConfigSchema.load(file: nil, overrides: PlantedBench.stage1Preset + o.budgetSet).settings.stage1
        log("threads: \(Parallel.threads), load \(Bench.loadAverage), fit precision \(o.precision.rawValue)")
        log(header)
        var cases: [(name: String, raw: Tensor, coords: Tensor, perView: Double, truth: PlantedData?)] = []
        for p in o.planted {
            let d = try PlantedData.load(contentsOf: p)
            cases.append((p.deletingPathExtension().lastPathComponent, d.raw, d.coords, 0, d))
        }
        if !o.images.isEmpty {
            var cfg = try ConfigSchema.load(file: o.official)
            try cfg.set("model", value: .string(o.arch))
            try cfg.set("weights", value: o.weights.map(ConfigValue.string) ?? .null)
            try cfg.set("random_init", value: o.weights == nil ? .int(0) : .null)
            try cfg.set("input_size", value: .ints([o.size, o.size]))
            try cfg.set("stage1.num_views", value: .int(o.views))
            try cfg.set("stride_size", value: .null)
            try cfg.set(
                "output_dir", value: .string(FileManager.default.temporaryDirectory.appendingPathComponent("dvt-bench-quality").path))
            let model = try VisionTransformer.load(arch: o.arch, weights: o.weights, randomInit: o.weights == nil ? 0 : nil)
            model.precision = o.precision
            for url in o.images {
                let (raw, coords, perView) = try realViews(config: cfg, model: model, image: url)
                cases.append((url.deletingPathExtension().lastPathComponent, raw, coords, perView, nil))
            }
        }
        if o.fastPriorLeaveOneOut && cases.count < 2 {
            throw ConfigError("a leave-one-out prior needs two cases or more (it never uses the case's own G); got \(cases.count)")
        }
        // The official runs of every case first: the leave-one-out prior of a case needs the
        // others' official G.
        var officials: [[Fitted]] = []
        for c in cases {
            let budgetViews = c.raw.shape[0] - 1
            var pair: [Fitted] = []
            for seed: UInt64 in [0, 1] {
                let r = Recipe(label: "official s\(seed)", settings: budget, views: budgetViews, seed: seed)
                let (f, cached) = try cachedFit(r, caseName: c.name, raw: c.raw, coords: c.coords, precision: o.precision, cache: o.cache)
                if cached { log("\(c.name) official s\(seed): from the cache") }
                pair.append(f)
            }
            officials.append(pair)
        }
        var allPass = true
        for (ci, c) in cases.enumerated() {
            let budgetViews = c.raw.shape[0] - 1
            var (fastSettings, scaledViews) = try scaledFast(
                official: officialConfig.settings.stage1, fast: fastConfig.settings.stage1, budget: budget, budgetViews: budgetViews)
            if !o.fastSet.isEmpty {
                fastSettings = try fastSettings.applying(o.fastSet)
                try fastSettings.validate()
            }
            if o.fastPriorLeaveOneOut {
                let others = cases.indices.filter { $0 != ci }
                let prior = try Stage1.meanSharedArtifacts(
                    count: others.count, name: { cases[others[$0]].name }, map: { officials[others[$0]][0].output.sharedArtifacts })
                let dir = o.priorDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("dvt-bench-quality-priors")
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                let url = dir.appendingPathComponent("prior-without-\(c.name).npy")
                try Npy.write(prior, to: url)
                fastSettings.sharedArtifactsPrior = url.path
                log(
                    String(
                        format: "%@ prior (mean official s0 G of %d other cases): G agreement with official s0 %.4f", c.name as NSString,
                        others.count, Metrics.flatCenteredCosine(prior, officials[ci][0].output.sharedArtifacts)))
            }
            var recipes = [
                Recipe(label: "official s0", settings: budget, views: budgetViews, seed: 0),
                Recipe(label: "official s1", settings: budget, views: budgetViews, seed: 1),
            ]
            for v in o.fastViews.isEmpty ? [scaledViews] : o.fastViews {
                for n in o.fastSteps.isEmpty ? [fastSettings.numIters] : o.fastSteps {
                    var f = fastSettings
                    if !o.fastSteps.isEmpty { f.numIters = n; f.warmupIters = n / 10 }
                    let label = o.fastViews.isEmpty && o.fastSteps.isEmpty ? "fast s0" : "fast \(v)v \(n)"
                    recipes.append(.init(label: label, settings: f, views: v, seed: 0))
                }
            }
            var rows: [Row] = []
            for (ri, r) in recipes.enumerated() {
                let fitted = ri < 2 ? officials[ci][ri] : try fit(r, caseName: c.name, raw: c.raw, coords: c.coords, precision: o.precision)
                let row = score(
                    fitted, recipe: r, caseName: c.name, reference: officials[ci][0].output, forwardSecondsPerView: c.perView,
                    truth: c.truth)
                log(format(row))
                rows.append(row)
            }
            for fast in rows.dropFirst(2) {
                let pass = passes(fast: fast, seed1: rows[1], seed0: rows[0])
                allPass = allPass && pass
                log(
                    String(
                        format: "%@ %@: %@ (cost %.3f of official s0)", c.name as NSString, fast.recipe as NSString,
                        pass ? "PASSES" : "FAILS", fast.costSeconds / rows[0].costSeconds))
            }
        }
        log("all cases: \(allPass ? "fast recipe within the official seed-to-seed agreement" : "fast recipe FAILS on some case")")
        return allPass
    }
}
