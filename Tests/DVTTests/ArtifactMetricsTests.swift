import DVT
import Foundation
import TensorCore
import TestSupport
import Testing

@Suite struct ArtifactMetricsTests {
    @Test func positionVarianceRatioIsOneForPurePositionMaps() throws {
        let pattern = randn([5, 6, 8], seed: 1)
        let maps = (0..<4).map { _ in pattern.copy() }
        let r = try ArtifactMetrics.positionVarianceRatio(maps)
        #expect(abs(r - 1) < 1e-6, "identical maps: \(r)")
    }

    @Test func positionVarianceRatioIsZeroWithoutPositionDependence() throws {
        // Each map is constant over the grid (its own random vector): nothing depends on position.
        var rng = RandomGenerator(seed: 2)
        let maps = (0..<6).map { _ -> Tensor in
            let v = Tensor.normal([1, 1, 8], rng: &rng)
            return v.broadcast(to: [5, 6, 8]).copy()
        }
        let r = try ArtifactMetrics.positionVarianceRatio(maps)
        #expect(r < 1e-6, "constant maps: \(r)")
        // Noise maps: about 1/M.
        let noise = (0..<50).map { randn([8, 8, 16], seed: UInt64(100 + $0)) }
        let rn = try ArtifactMetrics.positionVarianceRatio(noise)
        #expect(rn > 0.01 && rn < 0.04, "noise: \(rn), expected ≈ 1/50")
        // Half position, half noise, equal variance: about one half (plus the 1/M noise share).
        let pattern = randn([8, 8, 16], seed: 7)
        let mixed = noise.map { $0 + pattern }
        let rm = try ArtifactMetrics.positionVarianceRatio(mixed)
        #expect(rm > 0.4 && rm < 0.6, "mixed: \(rm)")
        #expect(throws: ArtifactMetricsError.self) { try ArtifactMetrics.positionVarianceRatio([pattern, randn([8, 8, 15], seed: 1)]) }
    }

    @Test func micIsHighForAPositionChannelAndLowForNoise() throws {
        // Channel 0: a smooth function of the patch index (+ small noise); channel 1: noise.
        let h = 16, w = 16
        var rng = RandomGenerator(seed: 3)
        let maps = (0..<8).map { _ -> Tensor in
            let m = Tensor(zeros: [h, w, 2])
            for p in 0..<(h * w) {
                m[flat: p * 2] = Float(sin(Double(p) / 40)) + 0.05 * rng.normal()
                m[flat: p * 2 + 1] = rng.normal()
            }
            return m
        }
        func channel(_ k: Int) -> [Tensor] {
            maps.map { m in Tensor((0..<(h * w)).map { m[flat: $0 * 2 + k] }, shape: [h, w, 1]) }
        }
        let pos = try ArtifactMetrics.positionMIC(channel(0))
        let noise = try ArtifactMetrics.positionMIC(channel(1))
        #expect(pos > 0.6, "position channel MIC \(pos)")
        #expect(noise < 0.15, "noise channel MIC \(noise)")
        let both = try ArtifactMetrics.positionMIC(maps)
        #expect(abs(both - (pos + noise) / 2) < 1e-5, "channel average")
    }

    @Test func equipartitionMICBasics() {
        let x = (0..<400).map { Float($0) }
        #expect(ArtifactMetrics.equipartitionMIC(x, x.map { $0 * $0 }) > 0.99, "noiseless monotone")
        #expect(ArtifactMetrics.equipartitionMIC(x, x.map { _ in 1 }) == 0, "constant y: ties stay in one bin")
        var rng = RandomGenerator(seed: 4)
        let noise = x.map { _ in rng.normal() }
        #expect(ArtifactMetrics.equipartitionMIC(x, noise) < 0.2)
        // Non-monotone but functional: still far above noise.
        let wave = x.map { Float(sin(Double($0) / 20)) }
        #expect(ArtifactMetrics.equipartitionMIC(x, wave) > 0.5)
    }

    @Test func plantedScoresMatchTheMetrics() throws {
        var o = PlantedData.Options()
        o.grid = 8; o.dim = 16; o.views = 3
        let d = PlantedData.generate(seed: 1, options: o)
        // Denoising perfectly (whole view minus the artifact) scores far above the raw baseline.
        let whole = d.raw.slice(axis: 0, 3..<4).reshape([8, 8, 16])
        let perfect = whole - d.artifact
        let good = try ArtifactMetrics.plantedScore(raw: d.raw, cleanFull: d.cleanFull, artifact: d.artifact, denoised: perfect)
        let base = try ArtifactMetrics.plantedScore(raw: d.raw, cleanFull: d.cleanFull, artifact: d.artifact, denoised: whole)
        #expect(good.denoisedVsClean == Metrics.centeredCosine(perfect, d.cleanFull))
        #expect(abs(good.removedVsPlanted - 1) < 1e-5)
        #expect(good.denoisedVsClean > base.denoisedVsClean)
        #expect(base.rawVsClean == base.denoisedVsClean && good.rawVsClean == base.rawVsClean)
        #expect(base.removedVsPlanted == 0)
        // A (V+1, H, W, C) stack uses its last view.
        let stack = try ArtifactMetrics.plantedScore(raw: d.raw, cleanFull: d.cleanFull, artifact: d.artifact, denoised: d.raw)
        #expect(stack.denoisedVsClean == base.denoisedVsClean)
        #expect(throws: ArtifactMetricsError.self) {
            try ArtifactMetrics.plantedScore(raw: d.raw, cleanFull: d.cleanFull, artifact: d.artifact, denoised: randn([4, 4, 16], seed: 1))
        }
    }

    @Test("planted cases with one artifact seed share G exactly, and the seed's own case is unchanged")
    func sharedArtifact() throws {
        var o = PlantedData.Options()
        o.grid = 6; o.dim = 8; o.views = 4
        let own = PlantedData.generate(seed: 3, options: o)
        var shared = o
        shared.artifactSeed = 3
        #expect(PlantedData.generate(seed: 3, options: shared).raw.scalars == own.raw.scalars, "artifactSeed == seed changes nothing")
        let a = PlantedData.generate(seed: 7, options: shared), b = PlantedData.generate(seed: 8, options: shared)
        #expect(a.artifact.scalars == own.artifact.scalars && b.artifact.scalars == own.artifact.scalars)
        #expect(a.cleanFull.scalars != b.cleanFull.scalars, "each case keeps its own field")
        // Views and field come from `seed` alone: only G (and the residual) differ from the unshared case.
        let unshared = PlantedData.generate(seed: 7, options: o)
        #expect(unshared.cleanFull.scalars == a.cleanFull.scalars && unshared.coords.scalars == a.coords.scalars)
        #expect(unshared.artifact.scalars != a.artifact.scalars)
    }

    @Test func tableRows() throws {
        let maps = (0..<3).map { randn([4, 4, 6], seed: UInt64($0)) }
        let row = try ArtifactMetrics.row(label: "raw", maps: maps)
        #expect(row.maps == 3 && row.grid == [4, 4, 6])
        let table = ArtifactMetrics.markdown([row])
        #expect(table.contains("| raw | 3 | 4×4×6 |"))
        #expect(table.split(separator: "\n").count == 3)
    }
}

@Suite struct EquivarianceErrorTests {
    /// A per-token extractor: a sigmoid of a fixed linear map of each token's content (H, W, 6) → (H, W, 8).
    static func contentFeatures(_ image: Tensor) -> Tensor {
        let weights = randn([6, 8], seed: 11, requiresGrad: false)
        let h = image.shape[0], w = image.shape[1]
        return withNoGrad { Tensor.matmul(image.reshape([h * w, 6]), weights).sigmoid().reshape([h, w, 8]) }  // (H, W, 8)
    }

    @Test("flip and crop equivariance error: about 0 for position-free features, large for position-tied ones")
    func positionFreeVersusTied() throws {
        let images = (0..<3).map { randn([10, 12, 6], seed: UInt64(20 + $0), requiresGrad: false) }
        // The grid of the artifact follows the output size, anchored at the top-left token, as a
        // learnt position embedding does.
        let pattern = randn([10, 12, 8], seed: 5, requiresGrad: false)
        func tied(_ image: Tensor) throws -> Tensor {
            let g = try ArtifactMetrics.croppedTokens(pattern, top: 0, left: 0, height: image.shape[0], width: image.shape[1])
            return Self.contentFeatures(image) + g
        }
        let flip = ArtifactMetrics.flippedWidth
        let freeFlip = try ArtifactMetrics.equivarianceError(images.map { (Self.contentFeatures(flip($0)), flip(Self.contentFeatures($0))) })
        let tiedFlip = try ArtifactMetrics.equivarianceError(images.map { (try tied(flip($0)), flip(try tied($0))) })
        #expect(freeFlip < 1e-10, "position-free flip error \(freeFlip)")
        #expect(tiedFlip > 0.5, "position-tied flip error \(tiedFlip)")

        func crop(_ m: Tensor) throws -> Tensor { try ArtifactMetrics.croppedTokens(m, top: 2, left: 3, height: 7, width: 8) }
        let freeCrop = try ArtifactMetrics.equivarianceError(images.map { (Self.contentFeatures(try crop($0)), try crop(Self.contentFeatures($0))) })
        let tiedCrop = try ArtifactMetrics.equivarianceError(images.map { (try tied(try crop($0)), try crop(try tied($0))) })
        #expect(freeCrop < 1e-10, "position-free crop error \(freeCrop)")
        #expect(tiedCrop > 0.5, "position-tied crop error \(tiedCrop)")
        // Flipping twice is the identity, and a flip moves column 0 to the last column.
        let m = images[0]
        #expect(flip(flip(m)).scalars == m.scalars)
        #expect(flip(m)[flat: (11) * 6] == m[flat: 0])
    }

    @Test func mismatchedPairsAreRefusedWithTheirShapes() {
        #expect(throws: ArtifactMetricsError.self) { try ArtifactMetrics.equivarianceError([]) }
        #expect(throws: ArtifactMetricsError.self) {
            try ArtifactMetrics.equivarianceError([(randn([4, 4, 3], seed: 1), randn([4, 5, 3], seed: 2))])
        }
        #expect(throws: ArtifactMetricsError.self) {
            try ArtifactMetrics.croppedTokens(randn([4, 4, 3], seed: 1), top: 2, left: 0, height: 3, width: 2)
        }
    }
}
