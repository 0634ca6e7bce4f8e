import Foundation
import Jobs
import NN
import Settings
import Testing

@testable import Training

@Suite("Stage-2 learning-rate schedule")
struct Stage2ScheduleTests {
    /// DVT's stage-2 lr, written out from dvt/utils/misc.py `CosineScheduler` (lines 211-241) as
    /// main_denoiser.py (lines 176-190) configures it: peak = blr · sqrt(global batch / 256),
    /// W = int(0.15 · N) warmup values numpy.linspace(0, peak, W), then
    /// min + ½ (peak − min)(1 + cos(π i / (N − W))) for i = step − W.
    static func official(step: Int, blr: Double, batch: Int, minLR: Double, total: Int) -> Double {
        let peak = blr * (Double(batch) / 256).squareRoot()
        let w = Int(Double(total) * 0.15)
        if step < w { return peak * Double(step) / Double(w - 1) }
        let i = Double(step - w), k = Double(total - w)
        return minLR + 0.5 * (peak - minLR) * (1 + cos(Double.pi * i / k))
    }

    @Test("the trainer's lr at steps 0, W−1, W and N−1 is DVT's CosineScheduler")
    func officialEndpoints() throws {
        for overrides in [[String](), ["stage2.num_iters=1000", "stage2.batch_size=16"]] {
            let config = try ConfigSchema.load(file: nil, overrides: overrides)
            let n = config.settings.stage2.numIters, batch = config.settings.stage2.batchSize
            let o = Stage2Runner.optimizerSettings(config: config)
            #expect(o.schedule == .cosineScheduler)
            let t = Trainer(task: OneParameterTask(), optimizer: o, loop: LoopSettings(numIters: n), quiet: true)
            let w = Int(Double(n) * 0.15)
            for step in [0, w - 1, w, n - 1] {
                let want = Self.official(
                    step: step, blr: config.settings.stage2.baseLR, batch: batch,
                    minLR: config.settings.stage2.minLR, total: n)
                #expect(abs(t.learningRate(at: step) - want) <= 1e-15 * max(1, want), "step \(step) of \(n)")
            }
            // The warmup reaches the peak one step before W, and W starts the cosine at the peak.
            #expect(t.learningRate(at: w - 1) == t.learningRate(at: w))
        }
    }

    @Test("stage-2 defaults are the released run's: 50000 steps, global batch 128")
    func releasedDefaults() throws {
        // sample_scripts/stage2.sh: --num_iterations 50000, --batch_size 16 on 8 GPUs.
        let config = try ConfigSchema.load(file: nil)
        #expect(config.settings.stage2.numIters == 50_000)
        #expect(config.settings.stage2.batchSize == 16 * 8)
        #expect(abs(Stage2Runner.optimizerSettings(config: config).lr - 2e-4 * (128.0 / 256).squareRoot()) < 1e-18)
    }
}
