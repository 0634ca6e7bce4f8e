import Foundation

// Learning-rate schedules used by DVT: a linear warmup followed by a half-cycle cosine down to a
// floor. DVT has two spellings of it, which differ in their endpoints, so both are here.

/// Linear warmup, then half-cycle cosine decay to `minLR`: DVT's `adjust_learning_rate`
/// (dvt/utils/misc.py, from MAE's `util/lr_sched.py`), used by stage 1.
///
/// ```
/// lr(s) = lr · s / warmup                                                   s < warmup
/// lr(s) = minLR + (lr − minLR) · ½ · (1 + cos(π · (s − warmup) / (total − warmup)))   otherwise
/// ```
///
/// `s` may be fractional (MAE passes fractional epochs). When `total == warmup` the cosine
/// denominator is clamped to 1, as the project's PyTorch reference (`lr_at`) does, instead of
/// dividing by zero.
public struct WarmupCosineSchedule: Sendable, Equatable {
    public var baseLR: Double
    public var minLR: Double
    public var warmupSteps: Double
    public var totalSteps: Double

    public init(baseLR: Double, minLR: Double, warmupSteps: Double, totalSteps: Double) {
        precondition(
            warmupSteps >= 0 && totalSteps >= warmupSteps,
            "WarmupCosineSchedule: need 0 <= warmup (\(warmupSteps)) <= total (\(totalSteps))")
        self.baseLR = baseLR
        self.minLR = minLR
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// The learning rate for step (or fractional epoch) `step`.
    public func lr(at step: Double) -> Double {
        if step < warmupSteps { return baseLR * step / warmupSteps }
        let progress = (step - warmupSteps) / max(1, totalSteps - warmupSteps)
        return minLR + (baseLR - minLR) * 0.5 * (1 + Foundation.cos(Double.pi * progress))
    }

    public func callAsFunction(_ step: Int) -> Double { lr(at: Double(step)) }
}

/// Function form of `WarmupCosineSchedule`, named after DVT's `adjust_learning_rate`.
public func adjustLearningRate(
    step: Double, baseLR: Double, minLR: Double, warmupSteps: Double,
    totalSteps: Double
) -> Double {
    WarmupCosineSchedule(baseLR: baseLR, minLR: minLR, warmupSteps: warmupSteps, totalSteps: totalSteps).lr(at: step)
}

/// Precomputed per-iteration schedule: DVT's `CosineScheduler` (dvt/utils/misc.py, which is
/// DINOv2's), used by stage 2 with `warmupIters = Int(0.15 · totalIters)` and `startWarmupValue = 0`.
///
/// The table is `freezeIters` zeros, then `numpy.linspace(startWarmupValue, baseValue, warmupIters)`
/// (so warmup *ends on* `baseValue` at index `freezeIters + warmupIters − 1`), then for
/// `i = 0..<K` with `K = totalIters − warmupIters − freezeIters`:
///
/// ```
/// finalValue + ½ · (baseValue − finalValue) · (1 + cos(π · i / K))
/// ```
///
/// which starts at `baseValue` and never quite reaches `finalValue`. Indices at or past
/// `totalIters` return `finalValue`. (These endpoints differ from `WarmupCosineSchedule`, whose
/// warmup starts at 0 and reaches `lr` one step later, and whose cosine ends exactly on `minLR`.)
public struct CosineScheduler: Sendable, Equatable {
    public let baseValue: Double
    public let finalValue: Double
    public let totalIters: Int
    public let warmupIters: Int
    public let startWarmupValue: Double
    public let freezeIters: Int
    /// One value per iteration, `totalIters` long.
    public let schedule: [Double]

    public init(
        baseValue: Double, finalValue: Double, totalIters: Int, warmupIters: Int = 0,
        startWarmupValue: Double = 0, freezeIters: Int = 0
    ) {
        let decayIters = totalIters - warmupIters - freezeIters
        precondition(
            warmupIters >= 0 && freezeIters >= 0 && decayIters >= 0,
            "CosineScheduler: warmup (\(warmupIters)) + freeze (\(freezeIters)) exceed total iterations (\(totalIters))")
        self.baseValue = baseValue
        self.finalValue = finalValue
        self.totalIters = totalIters
        self.warmupIters = warmupIters
        self.startWarmupValue = startWarmupValue
        self.freezeIters = freezeIters

        var values = [Double](repeating: 0, count: freezeIters)
        values += linspace(startWarmupValue, baseValue, warmupIters)
        for i in 0..<decayIters {
            values.append(
                finalValue + 0.5 * (baseValue - finalValue)
                    * (1 + Foundation.cos(Double.pi * Double(i) / Double(decayIters))))
        }
        schedule = values
    }

    public subscript(iteration: Int) -> Double {
        iteration >= totalIters ? finalValue : schedule[max(0, iteration)]
    }
}

/// numpy.linspace(start, stop, count) with its default endpoint=True: evenly spaced, the last
/// value exactly `stop`; one value gives `[start]`.
func linspace(_ start: Double, _ stop: Double, _ count: Int) -> [Double] {
    if count <= 0 { return [] }
    if count == 1 { return [start] }
    let step = (stop - start) / Double(count - 1)
    var out = (0..<count).map { start + Double($0) * step }
    out[count - 1] = stop
    return out
}
