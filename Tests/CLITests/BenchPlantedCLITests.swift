import ArgumentParser
import DVT
import Foundation
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
        let s = try settings(["--set", "stage1.lr=0.02", "--set", "stage1.num_iters=40", "--num-iters", "50",
                              "--finest-resolution", "128", "--hash-table-adam", "deferred"])
        #expect(s.lr == 0.02 && s.numIters == 50 && s.maxResolution == 128 && s.hashTableAdam == .deferred)
        #expect(throws: (any Error).self) { _ = try settings(["--set", "seed=3"]) }
        #expect(throws: (any Error).self) { _ = try settings(["--set", "stage1.n_levels=99"]) }
    }
}
