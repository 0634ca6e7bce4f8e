import Foundation
import NN
import Testing

@Suite("Learning-rate schedules")
struct ScheduleTests {
    func close(_ a: Double, _ b: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(abs(a - b) <= 1e-12 + 1e-12 * abs(b), "\(what): \(a) vs \(b)", sourceLocation: sourceLocation)
    }

    @Test("adjust_learning_rate: warmup, cosine, floor")
    func adjustLearningRateValues() {
        // lr 0.01, min 0.001, warmup 10, total 110: the cosine spans 100 steps.
        let s = WarmupCosineSchedule(baseLR: 0.01, minLR: 0.001, warmupSteps: 10, totalSteps: 110)
        close(s(0), 0, "step 0")
        close(s(5), 0.005, "mid-warmup: 0.01·5/10")
        close(s(9), 0.009, "last warmup step: 0.01·9/10")
        close(s(10), 0.01, "end of warmup: cos(0) = 1 → lr")
        close(s(35), 0.001 + 0.009 * 0.5 * (1 + 0.5.squareRoot()), "quarter: cos(π/4) = √½")
        close(s(60), 0.0055, "mid-cosine: cos(π/2) = 0 → (lr + min)/2")
        // Last step 109: progress 99/100, 0.5·(1 + cos(0.99π)) = 0.5·(1 − cos(0.01π)) = 2.4671981e-4
        close(s(109), 0.001 + 0.009 * 2.4671981713422e-4, "last step")
        close(s(110), 0.001, "total: exactly the floor")
        close(
            adjustLearningRate(step: 60, baseLR: 0.01, minLR: 0.001, warmupSteps: 10, totalSteps: 110), 0.0055,
            "function form")
        close(s.lr(at: 2.5), 0.0025, "fractional step")
    }

    @Test("adjust_learning_rate with no warmup starts at lr")
    func noWarmup() {
        let s = WarmupCosineSchedule(baseLR: 1, minLR: 0, warmupSteps: 0, totalSteps: 4)
        close(s(0), 1, "step 0")
        close(s(2), 0.5, "half")
        close(s(4), 0, "end")
    }

    @Test("CosineScheduler (DVT stage 2): linspace warmup over 15%, cosine over the rest")
    func cosineScheduler() {
        // 40 iterations, warmup Int(0.15·40) = 6 from 0: linspace(0, 1, 6) = 0, 0.2, …, 1.0.
        let total = 40
        let s = CosineScheduler(
            baseValue: 1, finalValue: 0.1, totalIters: total, warmupIters: Int(0.15 * Double(total)),
            startWarmupValue: 0)
        #expect(s.schedule.count == total)
        close(s[0], 0, "step 0")
        close(s[2], 0.4, "mid-warmup")
        close(s[5], 1, "end of warmup lands on the base value")
        // Cosine part: K = 34 values, i = index − 6.
        close(s[6], 1, "cosine start: cos(0)")
        close(s[23], 0.55, "mid-cosine i = 17: cos(π/2) = 0 → (1 + 0.1)/2")
        close(s[39], 0.1 + 0.45 * (1 + cos(Double.pi * 33 / 34)), "last step, i = 33")
        #expect(s[39] > 0.1, "DINOv2's cosine never reaches the final value inside the schedule")
        close(s[40], 0.1, "past the end: final value")
        close(s[1000], 0.1, "far past the end: final value")
    }

    @Test("CosineScheduler freeze iterations and start value")
    func freezeAndStart() {
        let s = CosineScheduler(
            baseValue: 2, finalValue: 0, totalIters: 8, warmupIters: 3, startWarmupValue: 0.5,
            freezeIters: 2)
        let expected: [Double] = [
            0, 0, 0.5, 1.25, 2,
            0.5 * 2 * (1 + cos(0)), 0.5 * 2 * (1 + cos(Double.pi / 3)), 0.5 * 2 * (1 + cos(2 * Double.pi / 3)),
        ]
        for (i, e) in expected.enumerated() { close(s[i], e, "index \(i)") }
    }
}
