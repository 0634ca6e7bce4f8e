@testable import Bench
import Foundation
import Settings
import TensorCore
import Testing

@testable import DVT

@Suite("dvt bench stage1-quality: the fast recipe at the budget")
struct Stage1QualityTests {
    @Test("the fast recipe is scaled to the budget: views and steps by ratio, log2 table by difference, other keys copied")
    func scaling() throws {
        let official = try ConfigSchema.load(file: nil, overrides: ["stage1.num_views=768", "stage1.num_iters=25000"]).settings.stage1
        let fast = try ConfigSchema.load(
            file: nil,
            overrides: [
                "stage1.num_views=128", "stage1.num_iters=5000", "stage1.warmup_iters=500", "stage1.log2_hashmap_size=18",
                "stage1.pixel_bsz=1024", "stage1.view_features_dtype=bf16", "stage1.coord_jitter=0.25", "stage1.print_freq=7",
            ]
        ).settings.stage1
        let budget = try ConfigSchema.load(file: nil, overrides: PlantedBench.stage1Preset).settings.stage1
        let (s, views) = try Stage1QualityBench.scaledFast(official: official, fast: fast, budget: budget, budgetViews: 96)
        #expect(views == 16 && s.numIters == 600 && s.warmupIters == 60)
        #expect(s.log2HashmapSize == 14 && s.nLevels == 8 && s.maxResolution == 256)
        #expect(s.pixelBsz == 1024 && s.viewFeaturesDtype == .bf16 && s.lr == budget.lr)
        // Any other key the fast recipe changes is carried; output-only keys are not.
        #expect(s.coordJitter == 0.25 && s.printFreq == budget.printFreq)
        // --fast-set keys are taken over one by one.
        let t = try s.applying(["stage1.num_iters=77", "stage1.shared_artifacts_weight_decay=null"])
        #expect(t.numIters == 77 && t.pixelBsz == 1024 && t.log2HashmapSize == 14 && t.sharedArtifactsWeightDecay == nil)
        #expect(throws: ConfigError.self) { try s.applying(["stage1.num_iters=0"]) }
        #expect(throws: ConfigError.self) { try s.applying(["stage2.num_iters=5"]) }
    }

    @Test("the reference row agrees with itself exactly; a fast recipe is scored against it and the truth")
    func compare() throws {
        var (data, s) = smallPlantedCase()
        s.numIters = 40
        var fast = s
        fast.numIters = 20
        let rows = try Stage1QualityBench.compare(
            caseName: "small", raw: data.raw, coords: data.coords,
            recipes: [
                .init(label: "official s0", settings: s, views: 24, seed: 0),
                .init(label: "official s1", settings: s, views: 24, seed: 1),
                .init(label: "fast s0", settings: fast, views: 6, seed: 0),
            ],
            precision: .fp32, forwardSecondsPerView: 0.5, truth: data)
        #expect(rows.count == 3 && rows[0].fAgreement == 1 && rows[0].gAgreement == 1)
        #expect(rows[1].fAgreement < 1 && rows[2].views == 6 && rows[2].forwardSeconds == 3.5)
        #expect(rows[2].denoisedCosine != nil && rows[2].artifactCosine != nil)
        var better = rows[2]
        better.fAgreement = rows[1].fAgreement; better.gAgreement = rows[1].gAgreement
        better.denoisedCosine = rows[0].denoisedCosine; better.artifactCosine = rows[0].artifactCosine
        #expect(Stage1QualityBench.passes(fast: better, seed1: rows[1], seed0: rows[0]))
        better.fAgreement -= 0.006
        #expect(!Stage1QualityBench.passes(fast: better, seed1: rows[1], seed0: rows[0]))
    }
}
