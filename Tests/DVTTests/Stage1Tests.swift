import DVT
import Formats
import Foundation
import NN
import Settings
import TensorCore
import TestSupport
import Testing
import Training
import Vision

/// The tiny layout of the golden fixture (scripts/make_stage1_fixture.py): 3 levels of 2
/// features, 2^6 rows per level, resolutions 4…32, so level 0 is dense and the others hashed.
private let tinyLayout = HashGridLayout(levels: 3, featuresPerLevel: 2, log2TableSize: 6, baseResolution: 4, finestResolution: 32)

private func tinySettings() -> Stage1Settings {
    var s = Stage1Settings()
    s.nLevels = 3; s.nFeaturesPerLevel = 2; s.log2HashmapSize = 6; s.baseResolution = 4; s.maxResolution = 32
    return s
}

/// The small planted case the "it learns" tests fit: 24 views of an 8×8×16 field, a 6-level
/// 2^12 table, 400 steps of 256 tokens.
func smallPlantedCase() -> (PlantedData, Stage1Settings) {
    var o = PlantedData.Options()
    o.grid = 8; o.dim = 16; o.views = 24
    var s = Stage1Settings()
    s.nLevels = 6; s.nFeaturesPerLevel = 4; s.log2HashmapSize = 12; s.baseResolution = 4; s.maxResolution = 64
    s.numIters = 400; s.pixelBsz = 256
    return (PlantedData.generate(seed: 11, options: o), s)
}

/// Field and denoiser loaded with the fixture's parameters (torch names).
private func loadFixtureModels() throws -> (SafeTensorsFile, NeuralFeatureField, SingleImageDenoiser) {
    let file = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("stage1/tiny_field.safetensors"))
    var rng = RandomGenerator(seed: 0)
    let field = NeuralFeatureField(dim: 8, layout: tinyLayout, rng: &rng)
    let den = SingleImageDenoiser(height: 3, width: 4, dim: 8, rng: &rng)
    for (name, p) in field.namedParameters() { p.assign(try file.tensor(name)) }
    for (name, p) in den.namedParameters() { p.assign(try file.tensor(name)) }
    return (file, field, den)
}

@Suite("DVT stage 1")
struct Stage1Tests {
    @Test("Field forward, loss and gradients match the PyTorch port (tiny golden fixture, both phases)")
    func goldenAgainstReference() throws {
        let (file, field, den) = try loadFixtureModels()
        #expect(field.namedParameters().map(\.0) == ["grid.params", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"])
        let out = withNoGrad { field(try! file.tensor("coords")) }
        expectClose(out, try file.tensor("field_out"), rtol: 1e-5, atol: 1e-6, "F(coords)")

        let raw = try file.tensor("raw"), gc = try file.tensor("global_coords"), vc = try file.tensor("view_coords")
        let params = Dictionary(uniqueKeysWithValues: field.namedParameters() + den.namedParameters())
        for (phase, on) in [("phase1", false), ("phase2", true)] {
            den.residualOn = on
            for (_, p) in params { p.zeroGrad() }
            let terms = den.loss(raw: raw, globalCoords: gc, viewCoords: vc, field: field)
            #expect(abs(terms.total.item - (try file.tensor("loss_\(phase)")).item) < 1e-5, "\(phase) loss \(terms.total.item)")
            terms.total.backward()
            for key in [
                "grid.params", "mlp.0.weight", "mlp.2.bias", "shared_artifacts", "residual_predictor.0.weight",
                "residual_predictor.4.bias",
            ] {
                let want = try file.tensor("grad_\(phase).\(key)")
                let got = params[key]!.grad ?? Tensor(zeros: want.shape)
                expectClose(got.reshape(want.shape), want, rtol: 1e-4, atol: 1e-6, "\(phase) ∂L/∂\(key)")
            }
        }
    }

    @Test("Whole-image and view grids are torch.linspace meshes with x along the width")
    func grids() {
        let g = Stage1Grid.coordinates(height: 2, width: 3, lo: -1, hi: 1)
        #expect(g.scalars == [-1, -1, 0, -1, 1, -1, -1, 1, 0, 1, 1, 1])
        #expect(Stage1Grid.linspace(0, 1, 5) == [0, 0.25, 0.5, 0.75, 1])
    }

    @Test("gradCheck of the full stage-1 loss w.r.t. table, field MLP, G and h (both phases)")
    func lossGradCheck() throws {
        var rng = RandomGenerator(seed: 5)
        let field = NeuralFeatureField(dim: 8, layout: tinyLayout, rng: &rng)
        let den = SingleImageDenoiser(height: 3, width: 4, dim: 8, rng: &rng)
        // Table values of order 1 so the encoding dominates (the ±1e-4 init would hide table errors).
        field.table.assign(Tensor.uniform(field.table.shape, -1, 1, rng: &rng))
        let raw = Tensor.normal([16, 8], rng: &rng)
        let gc = Tensor.uniform([16, 2], 0.02, 0.98, rng: &rng)
        let vc = Tensor.uniform([16, 2], -0.95, 0.95, rng: &rng)
        let w1 = field.mlp.namedParameters()[0].1
        let hParams = [den.residualPredictor.namedParameters()[0].1, den.residualPredictor.namedParameters()[5].1]

        // Phase 1 has no stop-gradient: plain finite differences of the loss.
        den.residualOn = false
        gradCheck("stage-1 loss, phase 1", [field.table, w1, den.sharedArtifacts], eps: 1e-3, rtol: 3e-2, atol: 3e-3) { _ in
            den.loss(raw: raw, globalCoords: gc, viewCoords: vc, field: field).total
        }

        // Phase 2 detaches h(raw) in the prediction and raw − F − G in h's target, so the analytic
        // gradient is that of the loss with those two held at their current values. Check it
        // against finite differences of exactly that function.
        den.residualOn = true
        let all = [field.table, w1, den.sharedArtifacts] + hParams
        for p in all { p.zeroGrad() }
        den.loss(raw: raw, globalCoords: gc, viewCoords: vc, field: field).total.backward()
        let r0 = withNoGrad { den.residualPredictor(raw) }  // (B, C)
        let t0 = withNoGrad { raw - field(gc) - Tensor.gridSample(den.sharedArtifacts, vc) }  // (B, C)
        func frozenLoss() -> Double {
            withNoGrad {
                let pred = field(gc) + Tensor.gridSample(den.sharedArtifacts, vc) + r0
                let h = den.residualPredictor(raw)
                let l =
                    Tensor.mseLoss(pred, raw) + (1 - Tensor.cosineSimilarity(pred, raw).mean())
                    + 0.1 * Tensor.mseLoss(h, t0) + 0.02 * Tensor.l1Mean(h)
                return Double(l.item)
            }
        }
        let eps: Float = 1e-3
        for (k, p) in all.enumerated() {
            let analytic = p.grad?.scalars ?? [Float](repeating: 0, count: p.count)
            var numeric = [Float](repeating: 0, count: p.count)
            for i in 0..<p.count {
                let orig = p[flat: i]
                p[flat: i] = orig + eps; let lp = frozenLoss()
                p[flat: i] = orig - eps; let lm = frozenLoss()
                p[flat: i] = orig
                numeric[i] = Float((lp - lm) / Double(2 * eps))
            }
            let scale = max(1e-3, numeric.map(abs).max()!)
            expectClose(analytic, numeric, rtol: 3e-2, atol: 3e-2 * scale, "phase 2, parameter \(k) \(p.shape)")
        }
    }

    @Test("Phase switch at step > int(0.5·N): G freezes and stays unchanged, h switches on and learns")
    func phaseSwitch() throws {
        let data = PlantedData.generate(
            seed: 3,
            options: {
                var o = PlantedData.Options(); o.grid = 6; o.dim = 16; o.views = 6; return o
            }())
        var s = tinySettings()
        s.numIters = 10; s.pixelBsz = 64
        let task = try Stage1Task(raw: data.raw, coords: data.coords, settings: s, seed: 1)
        task.willStep(5, total: 10)
        #expect(!task.isResidualPhase && !task.denoiser.residualOn, "int(0.5·10) = 5: step 5 is still phase 1")
        task.willStep(6, total: 10)
        #expect(task.isResidualPhase && task.denoiser.residualOn, "step 6 > 5 starts phase 2")
        #expect(s.residualPhaseStart == 6)

        // Through the Trainer: G changes only during steps 0…5, h only during 6…9.
        let task2 = try Stage1Task(raw: data.raw, coords: data.coords, settings: s, seed: 1)
        final class Probe: TrainingTask {
            let inner: Stage1Task
            var gAt: [Int: [Float]] = [:], hAt: [Int: [Float]] = [:]
            init(_ t: Stage1Task) { inner = t }
            var parameters: [(String, Tensor)] { inner.parameters }
            var rowSparseParameters: [String: Int] { inner.rowSparseParameters }
            func willStep(_ step: Int, total: Int) {
                gAt[step] = inner.denoiser.sharedArtifacts.scalars
                hAt[step] = inner.denoiser.residualPredictor.namedParameters()[0].1.scalars
                inner.willStep(step, total: total)
            }
            func loss(step: Int, rng: inout RandomGenerator) throws -> (loss: Tensor, metrics: [String: Double]) {
                try inner.loss(step: step, rng: &rng)
            }
        }
        let probe = Probe(task2)
        var loop = LoopSettings(numIters: 10)
        loop.printFreq = 100
        let trainer = Trainer(task: probe, optimizer: Stage1.optimizerSettings(s), loop: loop, quiet: true)
        for (name, width) in task2.rowSparseParameters { trainer.optimizer.setRowSparse(name, rowWidth: width, mode: .deferred) }
        let summary = try trainer.run()
        let gEnd = task2.denoiser.sharedArtifacts.scalars
        let hEnd = task2.denoiser.residualPredictor.namedParameters()[0].1.scalars
        #expect(probe.gAt[2]! != probe.gAt[6]!, "G learns in phase 1")
        #expect(probe.gAt[6]! == gEnd, "G frozen from step 6 on")
        #expect(probe.hAt[6]! == probe.hAt[0]!, "h untouched in phase 1")
        #expect(probe.hAt[6]! != hEnd, "h learns in phase 2")
        #expect(summary.lastMetrics["residual_loss"] != nil && summary.lastMetrics["residual_sparsity_loss"] != nil)
    }

    @Test("It learns: on a small planted case F beats raw and G correlates with the planted artifact")
    func learnsPlantedCase() throws {
        let (data, preset) = smallPlantedCase()
        var s = preset
        let result = try Stage1.fit(views: data.raw, coords: data.coords, settings: s, seed: 0)
        let row = PlantedScore(stage1: result.output, truth: data)
        #expect(row.denoisedVsClean > row.rawVsClean + 0.05, "denoised \(row.denoisedVsClean) vs raw \(row.rawVsClean)")
        #expect(row.learntArtifactVsPlanted! > 0.7, "artifact recovery \(row.learntArtifactVsPlanted!)")
        #expect(result.lossHistory.last!.loss < 0.5 * result.lossHistory.first!.loss, "loss \(result.lossHistory)")
        #expect(result.output.residual != nil && result.output.denoised.shape == [8, 8, 16])

        // Coordinate jitter at the patch footprint stops F memorising single tokens (and their
        // artifacts): on this case it lifts denoised-vs-clean from ≈0.86 to ≈0.90.
        s.coordJitter = 0.5
        let jittered = try Stage1.fit(views: data.raw, coords: data.coords, settings: s, seed: 0)
        let jrow = PlantedScore(stage1: jittered.output, truth: data)
        #expect(jrow.denoisedVsClean > row.denoisedVsClean + 0.02, "jitter \(jrow.denoisedVsClean) vs none \(row.denoisedVsClean)")
        #expect(jrow.learntArtifactVsPlanted! > 0.7)
    }

    @Test("bf16 fit (DVT's --dtype bfloat16): the products change, the recovery stays within 0.02 of fp32's")
    func bf16FitLearns() throws {
        let (data, s) = smallPlantedCase()
        let fp32 = try Stage1.fit(views: data.raw, coords: data.coords, settings: s, seed: 0)
        let bf16 = try Stage1.fit(views: data.raw, coords: data.coords, settings: s, seed: 0, precision: .bf16)
        // Bit-identical results would mean the precision never reached the products.
        #expect(bf16.output.denoised.scalars != fp32.output.denoised.scalars)
        let a = PlantedScore(stage1: fp32.output, truth: data)
        let b = PlantedScore(stage1: bf16.output, truth: data)
        // bf16 keeps 8 bits of mantissa in the MLP operands only (table, G, losses and Adam stay
        // fp32), so the fit converges to the same recovery up to noise of that order.
        #expect(abs(b.denoisedVsClean - a.denoisedVsClean) < 0.02, "denoised bf16 \(b.denoisedVsClean) vs fp32 \(a.denoisedVsClean)")
        #expect(
            abs(b.learntArtifactVsPlanted! - a.learntArtifactVsPlanted!) < 0.02,
            "artifact bf16 \(b.learntArtifactVsPlanted!) vs fp32 \(a.learntArtifactVsPlanted!)")
        #expect(b.denoisedVsClean > b.rawVsClean + 0.05)
    }

    @Test("Batches: tokens with replacement; coord_jitter moves global coords within ±j token spacings, view coords stay")
    func batchSampling() throws {
        var o = PlantedData.Options()
        o.grid = 6; o.dim = 8; o.views = 5
        let data = PlantedData.generate(seed: 9, options: o)
        var s = tinySettings()
        s.pixelBsz = 500
        let plain = try Stage1Task(raw: data.raw, coords: data.coords, settings: s, seed: 0)
        s.coordJitter = 0.5
        let jittered = try Stage1Task(raw: data.raw, coords: data.coords, settings: s, seed: 0)
        var r1 = RandomGenerator(seed: 3), r2 = RandomGenerator(seed: 3)
        let a = plain.sampleBatch(rng: &r1), b = jittered.sampleBatch(rng: &r2)
        #expect(a.raw.scalars == b.raw.scalars && a.viewCoords.scalars == b.viewCoords.scalars, "same tokens, same view coords")
        let flatCoords = data.coords.reshape([6 * 36, 2]).scalars, flatRaw = data.raw.reshape([6 * 36, 8]).scalars
        var moved = 0
        for i in 0..<500 {
            // Recover the token from its raw features (all distinct) and check every coordinate.
            let row = Array(a.raw.scalars[(8 * i)..<(8 * i + 8)])
            let t = (0..<(6 * 36)).first { Array(flatRaw[(8 * $0)..<(8 * $0 + 8)]) == row }!
            #expect(a.globalCoords[flat: 2 * i] == flatCoords[2 * t] && a.globalCoords[flat: 2 * i + 1] == flatCoords[2 * t + 1])
            let k = t % 36, view = t / 36
            #expect(a.viewCoords[flat: 2 * i] == Stage1Grid.linspace(-1, 1, 6)[k % 6])
            #expect(a.viewCoords[flat: 2 * i + 1] == Stage1Grid.linspace(-1, 1, 6)[k / 6])
            // Token spacing of this view along x and y.
            let base = view * 36
            let dx = abs(flatCoords[2 * (base + 1)] - flatCoords[2 * base])
            let dy = abs(flatCoords[2 * (base + 6) + 1] - flatCoords[2 * base + 1])
            for (axis, d) in [(0, dx), (1, dy)] {
                let jx = b.globalCoords[flat: 2 * i + axis], cx = flatCoords[2 * t + axis]
                #expect(jx >= 0 && jx <= 1)
                // Within ±0.5 spacing, or its mirror image at the border.
                let off = min(abs(jx - cx), abs(-jx - cx), abs(2 - jx - cx))
                #expect(off <= 0.5 * d + 1e-6, "token \(t) axis \(axis): \(jx) vs centre \(cx), spacing \(d)")
                if jx != cx { moved += 1 }
            }
        }
        #expect(moved > 900, "jitter should move nearly every coordinate (\(moved) of 1000)")
        #expect(a.globalCoords.scalars != b.globalCoords.scalars)
    }

    @Test("Two fits with the same seeds are bit-identical (no reads of freed batch memory, no races)")
    func deterministic() throws {
        var o = PlantedData.Options()
        o.grid = 8; o.dim = 64; o.views = 6
        let data = PlantedData.generate(seed: 4, options: o)
        var s = tinySettings()
        s.numIters = 12; s.pixelBsz = 2048  // the benchmark's batch: its buffers are what freed memory gets reused for
        let a = try Stage1.fit(views: data.raw, coords: data.coords, settings: s, seed: 2)
        let b = try Stage1.fit(views: data.raw, coords: data.coords, settings: s, seed: 2)
        let sameF = a.output.denoised.scalars == b.output.denoised.scalars
        let sameG = a.output.sharedArtifacts.scalars == b.output.sharedArtifacts.scalars
        #expect(sameF && sameG, "F identical: \(sameF), G identical: \(sameG)")
        #expect(a.lossHistory == b.lossHistory)
    }

    @Test("Row-sparse Adam visits only the rows the hash-grid backward recorded")
    func sparseAdamUsesTouchedRows() {
        let layout = HashGridLayout(levels: 2, featuresPerLevel: 2, log2TableSize: 8, baseResolution: 4, finestResolution: 64)
        var rng = RandomGenerator(seed: 2)
        let table = Tensor.uniform([layout.totalRows, 2], -1, 1, rng: &rng, requiresGrad: true)
        let opt = Adam(parameters: [("t", table)], lr: 0.1, betas: (0.9, 0.99), eps: 1e-15)
        opt.setRowSparse("t", rowWidth: 2)
        let coords = Tensor.uniform([5, 2], 0, 1, rng: &rng)
        let before = table.scalars
        Tensor.hashGridEncode(table, coords: coords, layout: layout).sum().backward()
        let touched = Set(table.grad!.touchedRows!.rows.map(Int.init))
        #expect(!touched.isEmpty && touched.count <= 5 * 2 * 4)
        // A non-zero gradient on a row the kernel did not record: a full scan would update it,
        // the touched-row path must not look at it.
        let stray = (0..<layout.totalRows).first { !touched.contains($0) }!
        table.grad![flat: stray * 2] = 1
        opt.step()
        let after = table.scalars
        for r in 0..<layout.totalRows {
            let moved = after[2 * r] != before[2 * r] || after[2 * r + 1] != before[2 * r + 1]
            if touched.contains(r) {
                #expect(moved, "touched row \(r) should move")
            } else {
                #expect(!moved, "row \(r) is not on the touched list and must not move")
            }
        }
        #expect(opt.stateDict()["t.row_step"]!.scalars.enumerated().allSatisfy { touched.contains($0.offset) == ($0.element == 1) })
        // zeroGrad clears exactly the recorded rows and the list (the stray row is not ours to clear).
        table.grad![flat: stray * 2] = 0
        opt.zeroGrad()
        #expect(table.grad!.scalars.allSatisfy { $0 == 0 } && table.grad!.touchedRows!.rows.isEmpty)
    }

    @Test("makeTrainer: DVT's Adam (β 0.9/0.99, ε 1e-15, wd, warmup) and the table in the chosen row-sparse mode")
    func trainerSetup() throws {
        let data = PlantedData.generate(
            seed: 1,
            options: {
                var o = PlantedData.Options(); o.grid = 4; o.dim = 8; o.views = 2; return o
            }())
        for mode in Stage1Settings.HashTableAdam.allCases {
            var s = tinySettings()
            s.numIters = 50; s.hashTableAdam = mode
            let task = try Stage1Task(raw: data.raw, coords: data.coords, settings: s, seed: 0)
            let trainer = Stage1.makeTrainer(task: task, loop: LoopSettings(numIters: 50))
            let opt = trainer.optimizer
            #expect(opt.beta1 == 0.9 && opt.beta2 == 0.99 && opt.eps == 1e-15 && opt.weightDecay == 1e-5 && !opt.decoupledWeightDecay)
            #expect(trainer.optimizerSettings.warmupIters == 5 && trainer.optimizerSettings.minLR == 0.001)
            let declared = opt.rowModes[Stage1Task.tableParameter]
            switch mode {
            case .deferred: #expect(declared == .deferred)
            case .lazy: #expect(declared == .lazy)
            case .dense: #expect(declared == nil && opt.rowWidths.isEmpty)
            }
            #expect(opt.weightDecayOverrides.isEmpty, "DVT: one weight decay for every parameter")
        }
        var s = tinySettings()
        s.numIters = 50; s.sharedArtifactsWeightDecay = 0
        let trainer = Stage1.makeTrainer(
            task: try Stage1Task(raw: data.raw, coords: data.coords, settings: s, seed: 0),
            loop: LoopSettings(numIters: 50))
        #expect(trainer.optimizer.weightDecayOverrides == [Stage1Task.artifactParameter: 0])
        #expect(trainer.optimizer.parameters.contains { $0.0 == Stage1Task.artifactParameter })
    }

    @Test("Stage-1 settings are the schema's stage1 section: DVT's defaults, derived values, and the schema's ranges by key")
    func settingsFromSchema() throws {
        let s = try ConfigSchema.load(
            file: nil,
            overrides: [
                "stage1.num_iters=300", "stage1.pixel_bsz=512", "stage1.n_levels=8", "stage1.log2_hashmap_size=16",
                "stage1.max_resolution=256", "stage1.enable_residual_predictor=false",
            ]
        ).settings.stage1
        #expect(s.numIters == 300 && s.pixelBsz == 512 && s.nLevels == 8 && s.log2HashmapSize == 16 && s.maxResolution == 256)
        #expect(!s.enableResidualPredictor && s.lr == 0.01 && s.minLR == 0.001 && s.weightDecay == 1e-5)
        #expect(s.effectiveWarmupIters == 30 && s.freezeSharedArtifactsAfter == 0.5 && s.baseResolution == 16)
        #expect(s.residualPhaseStart == 151 && s.layout.levels == 8 && s.layout.log2TableSize == 16)
        #expect(Stage1Settings().hashTableAdam == .deferred)  // equals DVT's dense Adam at the official loss scale (docs/stage1.md)
        try s.validate()
        // The ranges are the schema's, checked by key on a section changed in code.
        var big = s
        big.log2HashmapSize = 27
        do { try big.validate(); Issue.record("log2_hashmap_size 27 passed") } catch {
            #expect("\(error)".contains("stage1.log2_hashmap_size") && "\(error)".contains("4...26"))
        }
        var bad = s
        bad.maxResolution = 8
        do { try bad.validate(); Issue.record("max_resolution < base_resolution passed") } catch {
            #expect(error is ConfigError && "\(error)".contains("max_resolution"))
        }
        var warm = s
        warm.warmupIters = 301
        #expect(throws: ConfigError.self) { try warm.validate() }
    }

    @Test("Bad shapes and a non-finite loss give clear errors")
    func errors() throws {
        var s = tinySettings()
        s.numIters = 5; s.pixelBsz = 8
        #expect(throws: Stage1Error.self) {
            _ = try Stage1Task(raw: Tensor(zeros: [2, 3, 3, 8]), coords: Tensor(zeros: [2, 3, 4, 2]), settings: s, seed: 0)
        }
        let raw = Tensor(zeros: [2, 3, 3, 8]), coords = Tensor(zeros: [2, 3, 3, 2])
        for t in 0..<18 { raw[flat: t * 8 + 5] = .nan }  // every token carries a NaN
        do {
            _ = try Stage1.fit(views: raw, coords: coords, settings: s, seed: 0)
            Issue.record("a NaN feature should stop the fit")
        } catch let e as TrainerError {
            #expect("\(e)".contains("step 0"), "\(e)")
        }
    }
}
