import Foundation
import TensorCore

/// What the engine demo ended with.
public struct EngineDemoResult: Sendable {
    public var initialLoss: Float
    public var finalLoss: Float
    /// Fraction of training points on the correct side of 0.
    public var accuracy: Float
    public var seconds: Double
}

/// A seconds-long end-to-end check of the engine: a seeded ReLU MLP (2 → 32 → 32 → 1) learns to
/// separate two interleaved spirals (labels ±1, MSE loss, full batch of 256 points) with AdamW
/// and a warmup-cosine learning rate, logging the loss every `logEvery` steps.
@discardableResult
public func runEngineDemo(
    steps: Int = 300, logEvery: Int = 50, seed: UInt64 = 0,
    log: (String) -> Void
) -> EngineDemoResult {
    let start = Date()
    var rng = RandomGenerator(seed: seed)
    // Two spirals: point i of arm a at angle θ = 1.25 turns · t, radius t, arm b rotated by π.
    let perArm = 128
    var coords: [Float] = [], labels: [Float] = []
    for arm in 0..<2 {
        for i in 0..<perArm {
            let t = Float(i + 1) / Float(perArm)
            let theta = 2.5 * Float.pi * t + Float(arm) * Float.pi
            coords += [t * cos(theta) + 0.02 * rng.normal(), t * sin(theta) + 0.02 * rng.normal()]
            labels.append(arm == 0 ? 1 : -1)
        }
    }
    let x = Tensor(coords, shape: [2 * perArm, 2])  // (P, 2)
    let y = Tensor(labels, shape: [2 * perArm, 1])  // (P, 1)

    let model = Sequential.reluMLP([2, 32, 32, 1], rng: &rng)
    let opt = AdamW(parameters: model.namedParameters(), lr: 0.02, weightDecay: 1e-4)
    let schedule = WarmupCosineSchedule(
        baseLR: 0.02, minLR: 0.001, warmupSteps: Double(steps / 10),
        totalSteps: Double(steps))
    log("engine demo: \(model.parameterCount)-parameter ReLU MLP, two spirals (\(2 * perArm) points), AdamW, \(steps) steps")
    var initial: Float = .nan, last: Float = .nan
    for step in 0..<steps {
        opt.lr = schedule(step)
        opt.zeroGrad()
        let loss = Tensor.mseLoss(model(x), y)
        loss.backward()
        opt.step()
        last = loss.item
        if step == 0 { initial = last }
        if step % logEvery == 0 || step == steps - 1 {
            log(String(format: "step %4d  loss %.4f  lr %.5f", step, last, opt.lr))
        }
    }
    let (finalLoss, accuracy): (Float, Float) = withNoGrad {
        let prediction = model(x)  // (P, 1)
        let correct = zip(prediction.scalars, labels).filter { ($0 > 0) == ($1 > 0) }.count
        return (Tensor.mseLoss(prediction, y).item, Float(correct) / Float(labels.count))
    }
    let seconds = Date().timeIntervalSince(start)
    log(String(format: "final loss %.4f (from %.4f), accuracy %.1f%%, %.2f s", finalLoss, initial, 100 * accuracy, seconds))
    return EngineDemoResult(initialLoss: initial, finalLoss: finalLoss, accuracy: accuracy, seconds: seconds)
}
