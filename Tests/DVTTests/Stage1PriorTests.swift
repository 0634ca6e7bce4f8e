import DVT
import Formats
import Foundation
import Settings
import TensorCore
import TestSupport
import Testing

@Suite("stage1.shared_artifacts_prior: G from a prior")
struct Stage1PriorTests {
    @Test("the key: null by default, a .npy path, anything else refused by name")
    func key() throws {
        #expect(Stage1Settings().sharedArtifactsPrior == nil)
        let s = try ConfigSchema.load(file: nil, overrides: ["stage1.shared_artifacts_prior=priors/vit_s.npy"]).settings.stage1
        #expect(s.sharedArtifactsPrior == "priors/vit_s.npy")
        try s.validate()
        for bad in ["prior.txt", ""] {
            var t = s
            t.sharedArtifactsPrior = bad
            do { try t.validate(); Issue.record("'\(bad)' passed") } catch {
                #expect(error is ConfigError && "\(error)".contains("stage1.shared_artifacts_prior"), "\(error)")
            }
        }
    }

    @Test("a prior of the wrong shape is refused naming file, key and both shapes; DVT's (1, C, h, w) is permuted")
    func loading() throws {
        let dir = temporaryDirectory("stage1-prior")
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = RandomGenerator(seed: 5)
        let g = Tensor.normal([3, 4, 8], std: 1, rng: &rng)  // (h, w, C)
        let hwc = dir.appendingPathComponent("hwc.npy"), chw = dir.appendingPathComponent("chw.npy")
        try Npy.write(g, to: hwc)
        try Npy.write(g.permute([2, 0, 1]).reshape([1, 8, 3, 4]), to: chw)
        #expect(try Stage1.sharedArtifactsPrior(hwc, height: 3, width: 4, dim: 8).scalars == g.scalars)
        #expect(try Stage1.sharedArtifactsPrior(chw, height: 3, width: 4, dim: 8).scalars == g.scalars)
        do { _ = try Stage1.sharedArtifactsPrior(hwc, height: 4, width: 3, dim: 8); Issue.record("a (3, 4, 8) prior for a 4×3 grid passed") } catch {
            let text = "\(error)"
            #expect(text.contains("hwc.npy") && text.contains("stage1.shared_artifacts_prior"), "\(text)")
            #expect(text.contains("[3, 4, 8]") && text.contains("[4, 3, 8]"), "\(text)")
        }
        // The task reads the key; a missing file is an error naming it, not a silent random G.
        var s = Stage1Settings()
        s.nLevels = 2; s.log2HashmapSize = 6; s.maxResolution = 32
        s.sharedArtifactsPrior = dir.appendingPathComponent("missing.npy").path
        do {
            _ = try Stage1Task(raw: Tensor(zeros: [2, 3, 4, 8]), coords: Tensor(zeros: [2, 3, 4, 2]), settings: s, seed: 0);
            Issue.record("missing prior passed")
        } catch {
            #expect("\(error)".contains("missing.npy"), "\(error)")
        }
        // The mean of maps of one shape, and a clear error for two shapes.
        let m = try Stage1.meanSharedArtifacts(count: 2, name: { ["a", "b"][$0] }, map: { [g, g * 3][$0] })
        #expect(m.scalars.enumerated().allSatisfy { abs($0.element - 2 * g[flat: $0.offset]) < 1e-5 })
        #expect(throws: Stage1Error.self) { try Stage1.meanSharedArtifacts(count: 2, name: { ["a", "b"][$0] }, map: { [g, Tensor(zeros: [3, 4, 4])][$0] }) }
    }

    @Test("It learns: with the true G as prior, frozen from step 0, G stays the prior and F still fits the clean field")
    func frozenTruePrior() throws {
        let dir = temporaryDirectory("stage1-prior-fit")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (data, preset) = smallPlantedCase()
        let url = dir.appendingPathComponent("truth.npy")
        try Npy.write(data.artifact, to: url)
        var s = preset
        s.sharedArtifactsPrior = url.path
        s.freezeSharedArtifactsAfter = 0
        let result = try Stage1.fit(views: data.raw, coords: data.coords, settings: s, seed: 0)
        #expect(result.output.sharedArtifacts.scalars == data.artifact.scalars, "G moved although frozen from step 0")
        let row = PlantedScore(stage1: result.output, truth: data)
        #expect(row.denoisedVsClean > row.rawVsClean + 0.05, "denoised \(row.denoisedVsClean) vs raw \(row.rawVsClean)")
        // Without the prior (DVT's random G, fitted) F recovers the clean field no better.
        let plain = PlantedScore(stage1: try Stage1.fit(views: data.raw, coords: data.coords, settings: preset, seed: 0).output, truth: data)
        #expect(row.denoisedVsClean > plain.denoisedVsClean - 0.01, "with the true G \(row.denoisedVsClean), fitted G \(plain.denoisedVsClean)")
    }
}
