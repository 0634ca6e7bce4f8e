import Foundation

/// How a linear probe is trained. `official(_:)` is DVT's protocol; `cpu(_:)` the same optimiser
/// and schedule shape with fewer, smaller steps (docs/probe.md says what changes and why).
public struct ProbeOptions: Sendable, Equatable, Codable {
    public enum Schedule: String, Sendable, Codable { case poly, cosine }
    public var iterations: Int
    /// Feature maps per step (official: 2 per GPU × 8 GPUs).
    public var batchSize: Int
    public var lr: Double
    public var weightDecay: Double
    public var beta1 = 0.9, beta2 = 0.999
    public var schedule: Schedule
    public var warmupIters: Int
    public var warmupRatio: Double
    /// Floor of the schedule as a fraction of lr (poly: min_lr 0; cosine: min_lr_ratio 1e-8).
    public var minLRRatio: Double
    /// Global L2 gradient-norm clip (nil = none).
    public var gradClip: Double?
    /// Weight of the spatial GradientLoss (depth); see `DepthLosses.gradientLoss`.
    public var gradientLossWeight: Double = 0.5
    /// Random horizontal flip of cached feature maps with their targets.
    public var flip = true
    public var seed: UInt64 = 0

    /// DVT's numbers: segmentation from vitb_voc2012_linear_config.py:44,132,141-150 (AdamW lr
    /// 1e-3, wd 1e-4, poly power 1, min_lr 0, linear warmup 1500 iterations from 1e-6, 40000
    /// iterations, 2 images × 8 GPUs); depth from vitb_nyu_linear_config.py:98,185-209 (AdamW lr
    /// 5e-3, wd 1e-2, cosine with min_lr_ratio 1e-8, linear warmup 12800 from 1e-3, 38400
    /// iterations, grad clip 35). The official GradientLoss is identically 0 (see
    /// `DepthLosses.gradientLoss`), so its weight is 0 here.
    public static func official(_ task: ProbeTask) -> ProbeOptions {
        switch task {
        case .segmentation:
            return ProbeOptions(
                iterations: 40000, batchSize: 16, lr: 1e-3, weightDecay: 1e-4, schedule: .poly,
                warmupIters: 1500, warmupRatio: 1e-6, minLRRatio: 0, gradClip: nil)
        case .depth:
            var o = ProbeOptions(
                iterations: 38400, batchSize: 16, lr: 5e-3, weightDecay: 1e-2, schedule: .cosine,
                warmupIters: 12800, warmupRatio: 1e-3, minLRRatio: 1e-8, gradClip: 35)
            o.gradientLossWeight = 0
            return o
        }
    }

    /// The CPU default: the official optimiser and schedule shape, 1000 iterations of 8 maps,
    /// the warmup kept at the same fraction of training (3.75% segmentation, 1/3 depth).
    public static func cpu(_ task: ProbeTask) -> ProbeOptions {
        var o = official(task)
        o.iterations = 1000
        o.batchSize = 8
        o.warmupIters = task == .segmentation ? 38 : 333
        o.gradientLossWeight = task == .depth ? 0.5 : 0
        return o
    }

    /// mmcv's iteration-based LR: poly `(lr − min)·(1 − i/N)^1 + min` or cosine annealing
    /// `min + (lr − min)·(1 + cos(π i/N))/2`, times mmcv's linear warmup factor
    /// `1 − (1 − i/W)·(1 − ratio)` for i < W (mmcv/runner/hooks/lr_updater.py).
    public func learningRate(at i: Int) -> Double {
        let n = Double(max(iterations, 1)), t = Double(i), minLR = lr * minLRRatio
        var regular: Double
        switch schedule {
        case .poly: regular = (lr - minLR) * (1 - t / n) + minLR
        case .cosine: regular = minLR + (lr - minLR) * (1 + Foundation.cos(Double.pi * t / n)) / 2
        }
        if i < warmupIters {
            regular *= 1 - (1 - t / Double(warmupIters)) * (1 - warmupRatio)
        }
        return regular
    }
}
