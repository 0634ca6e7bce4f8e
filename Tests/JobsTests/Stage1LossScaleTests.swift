import DVT
import Formats
import Foundation
import NN
import Settings
import TensorCore
import TestSupport
import Testing
import Vision

@testable import Jobs
@testable import Training

/// DVT's never-unscaled GradScaler (main_img_denoising.py lines 55, 88-89) and the other
/// stage-1 details taken from the official code.
@Suite("Stage-1 loss scale and official details")
struct Stage1LossScaleTests {
    static func tinySettings() -> Stage1Settings {
        var s = Stage1Settings()
        s.nLevels = 3; s.nFeaturesPerLevel = 2; s.log2HashmapSize = 6; s.baseResolution = 4; s.maxResolution = 32
        s.numIters = 12; s.pixelBsz = 16
        return s
    }

    /// All parameters after `settings.numIters` steps of `optimizer` on a small planted case.
    static func train(_ s: Stage1Settings, _ o: OptimizerSettings) throws -> [Float] {
        let data = PlantedData.generate(
            seed: 2,
            options: {
                var o = PlantedData.Options(); o.grid = 4; o.dim = 8; o.views = 3; return o
            }())
        let task = try Stage1Task(raw: data.raw, coords: data.coords, settings: s, seed: 5)
        var loop = LoopSettings(numIters: s.numIters)
        loop.seed = Stage1.samplerSeed(5)
        loop.printFreq = 1000
        _ = try Trainer(task: task, optimizer: o, loop: loop, quiet: true).run()
        return task.parameters.flatMap { $0.1.scalars }
    }

    @Test("loss_scale defaults to 1024 and is applied by scaling the loss")
    func defaultsAndApplication() throws {
        #expect(Stage1Settings().lossScale == 1024)
        #expect(try ConfigSchema.load(file: nil).settings.stage1.lossScale == 1024)
        var s = Self.tinySettings()
        s.weightDecay = 0.05  // large, so the decay term is visible in a few steps
        s.hashTableAdam = .dense
        let scaled = Stage1.optimizerSettings(s)
        #expect(scaled.lossScale == 1024)
        // Scaling the gradient by 2^10 is exact in float, so Adam with the scaled loss equals
        // Adam on the plain loss with weight_decay / 1024 and eps / 1024, bit for bit: the
        // official run's effective decay.
        var equivalent = scaled
        equivalent.lossScale = 1; equivalent.weightDecay = s.weightDecay / 1024; equivalent.eps = scaled.eps / 1024
        var literal = scaled
        literal.lossScale = 1
        let a = try Self.train(s, scaled), b = try Self.train(s, equivalent), c = try Self.train(s, literal)
        #expect(a == b)
        #expect(a != c, "the literal decay must give a different fit")
    }

    @Test("layer_depth_ratio picks block int(ratio · (depth − 1)) as DVT")
    func depthRatio() {
        // main_img_denoising.py line 241 with vit_wrapper.py's last_layer_index = depth − 1.
        for depth in [12, 24] {
            for ratio in [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0] {
                #expect(Stage1Job.depthRatioLayer(ratio, depth: depth) == Int(ratio * Double(depth - 1)))
            }
        }
        #expect(Stage1Job.depthRatioLayer(0.9, depth: 12) == 9)  // ceil(0.9 · 12) − 1 would be 10
        #expect(Stage1Job.depthRatioLayer(1.0, depth: 12) == 11)
    }

    @Test("patch-16 and stride-8 models use 512 instead of DVT's default 518; null stride = patch size")
    func inputGeometry() {
        func size(_ c: [Int], _ stride: Int) -> [Int] { let s = InputGeometry.inputSize(c, stride: stride); return [s.0, s.1] }
        // main_denoiser.py lines 70-75.
        #expect(InputGeometry.stride(nil, patchSize: 16) == 16 && InputGeometry.stride(7, patchSize: 14) == 7)
        #expect(size([518, 518], 16) == [512, 512])
        #expect(size([518, 518], 8) == [512, 512])
        #expect(size([518, 518], 14) == [518, 518])
        #expect(size([518, 518], 7) == [518, 518])
        #expect(size([224, 224], 16) == [224, 224])
    }
}

@Suite("Stage-1 training conformance")
struct Stage1TrainingConformanceTests {
    /// 20 Adam steps with DVT's optimiser and never-unscaled loss scale 2^10 from the golden
    /// fixture's initialisation and batches (scripts/make_stage1_fixture.py) end on the PyTorch
    /// port's parameters.
    @Test("N steps from identical initialisation match the PyTorch port to 1e-4")
    func trainingRun() throws {
        let file = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("stage1/tiny_field.safetensors"))
        let layout = HashGridLayout(levels: 3, featuresPerLevel: 2, log2TableSize: 6, baseResolution: 4, finestResolution: 32)
        var rng = RandomGenerator(seed: 0)
        let field = NeuralFeatureField(dim: 8, layout: layout, rng: &rng)
        let den = SingleImageDenoiser(height: 3, width: 4, dim: 8, rng: &rng)
        let named = field.namedParameters() + den.namedParameters()
        for (name, p) in named { p.assign(try file.tensor(name)) }
        let raw = try file.tensor("train.raw"), gc = try file.tensor("train.global_coords"), vc = try file.tensor("train.view_coords")
        let steps = raw.shape[0], b = raw.shape[1], c = raw.shape[2]
        let wantLoss = try file.tensor("train_loss").scalars
        func slice(_ t: Tensor, _ s: Int, _ w: Int) -> Tensor {
            Tensor(Array(t.scalars[(s * b * w)..<((s + 1) * b * w)]), shape: [b, w])  // (B, w)
        }
        // main_img_denoising.py lines 48-55: Adam over every parameter, eps 1e-15, betas (0.9, 0.99).
        let adam = Adam(parameters: named, lr: 0.01, betas: (0.9, 0.99), eps: 1e-15, weightDecay: 1e-5)
        var settings = Stage1Settings()
        settings.weightDecay = 1e-5
        let scale = Float(settings.lossScale)  // the default, 2^10
        #expect(scale == 1024)
        for s in 0..<steps {
            adam.zeroGrad()
            let terms = den.loss(raw: slice(raw, s, c), globalCoords: slice(gc, s, 2), viewCoords: slice(vc, s, 2), field: field)
            #expect(abs(terms.total.item - wantLoss[s]) < 1e-4, "loss at step \(s)")
            (terms.total * scale).backward()
            adam.step()
        }
        for (name, p) in named {
            expectClose(p, try file.tensor("train_final." + name), rtol: 1e-4, atol: 1e-4, "\(name) after \(steps) steps")
        }
    }
}
