import ArgumentParser
import Bench
import DVT
import Foundation
import Settings
import TestSupport
import Testing

@testable import DVTCommands

/// `dvt bench planted` reads its stage-1 settings through the one schema: the bench preset,
/// then `--set`, then the deprecated per-key flags.
@Suite("dvt bench planted settings")
struct BenchPlantedCLITests {
    func settings(_ args: [String]) throws -> Stage1Settings {
        try DVTCommand.BenchCommand.Planted.parse(["--generate-seed", "0"] + args).stage1Settings()
    }

    @Test("without flags: the planted budget over DVT's defaults (issue 13: no jitter, loss scale 1024, deferred table Adam)")
    func preset() throws {
        let s = try settings([])
        #expect(s.numIters == 3000 && s.warmupIters == nil && s.nLevels == 8 && s.nFeaturesPerLevel == 8)
        #expect(s.log2HashmapSize == 16 && s.baseResolution == 16 && s.maxResolution == 256)
        #expect(s.pixelBsz == 2048 && s.lr == 0.01 && s.minLR == 0.001 && s.coordJitter == 0)
        #expect(s.hashTableAdam == .deferred && s.sharedArtifactsWeightDecay == nil && s.weightDecay == 1e-5)
        #expect(s.lossScale == 1024)
        #expect(s.freezeSharedArtifactsAfter == 0.5 && s.enableResidualPredictor)
    }

    @Test("--set and the deprecated aliases override the preset; the aliases win; other sections are refused")
    func overrides() throws {
        let s = try settings([
            "--set", "stage1.lr=0.02", "--set", "stage1.num_iters=40", "--num-iters", "50",
            "--finest-resolution", "128", "--hash-table-adam", "deferred",
        ])
        #expect(s.lr == 0.02 && s.numIters == 50 && s.maxResolution == 128 && s.hashTableAdam == .deferred)
        #expect(throws: (any Error).self) { _ = try settings(["--set", "seed=3"]) }
        #expect(throws: (any Error).self) { _ = try settings(["--set", "stage1.n_levels=99"]) }
        #expect(throws: (any Error).self) { _ = try settings(["--n-levels", "99"]) }
    }
}

@Suite("Stage 2 on planted data")
struct PlantedStage2Tests {
    @Test("planted data: stage 1 per case, then stage 2 on the pairs beats identity and moves held-out raw features towards the truth")
    func plantedStage2() throws {
        let dir = temporaryDirectory("planted-s2")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cfg = try ConfigSchema.load(
            file: nil,
            overrides: [
                "output_dir=\(dir.path)", "seed=2",
                "stage1.num_iters=150", "stage1.pixel_bsz=256", "stage1.n_levels=6", "stage1.n_features_per_level=4",
                "stage1.log2_hashmap_size=12", "stage1.base_resolution=4", "stage1.max_resolution=64", "stage1.coord_jitter=0.5",
                "stage2.num_iters=600", "stage2.batch_size=4", "stage2.base_lr=3e-3", "stage2.val_freq=300", "stage2.save_freq=300",
                "stage2.print_freq=300",
            ])
        var o = PlantedStage2.Options()
        o.trainCases = 4; o.valCases = 2; o.quiet = true
        o.planted.grid = 8; o.planted.dim = 64; o.planted.views = 12
        var lines: [String] = []
        let r = try PlantedStage2.run(config: cfg, options: o, log: { lines.append($0) })
        #expect(r.stage2Loss < 0.8 * r.identityLoss, "val loss \(r.stage2Loss) vs identity \(r.identityLoss)")
        #expect(r.stage2VsTruth > r.rawVsTruth + 0.02, "stage 2 \(r.stage2VsTruth) vs raw \(r.rawVsTruth)")
        #expect(r.stage1VsTruth > r.rawVsTruth + 0.05, "stage 1 \(r.stage1VsTruth) vs raw \(r.rawVsTruth)")
        #expect(r.removedVsArtifact > 0.5, "removed part vs planted artifact \(r.removedVsArtifact)")
        #expect(lines.contains { $0.contains("4 feature pairs, 0 skipped") })
        let json = try Data(contentsOf: dir.appendingPathComponent("planted_stage2.json"))
        #expect(try JSONDecoder().decode(PlantedStage2.Report.self, from: json) == r)

        // A second run reuses the stage-1 cases (no refit) and, with the same seeds, trains the same denoiser.
        let again = try PlantedStage2.run(config: cfg, options: o, log: { _ in })
        #expect(again.stage1SecondsPerCase.isNaN)
        #expect(again.stage2Loss == r.stage2Loss)
    }
}
