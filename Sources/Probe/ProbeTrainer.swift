import Foundation
import NN
import TensorCore
import Training

/// One image's cached inputs to a probe: its frozen feature map and its targets.
public struct ProbeExample: @unchecked Sendable {
    public var name: String
    /// (Gh, Gw, C): patch tokens (‖ class token for depth).
    public var features: Tensor
    /// Training target at (trainHeight, trainWidth): class indices (segmentation) or metres.
    public var trainLabels: [Int32] = []
    public var trainDepth: [Float] = []
    public var trainHeight: Int, trainWidth: Int
    /// Evaluation target at the original resolution.
    public var evalLabels: [Int32] = []
    public var evalDepth: [Float] = []
    public var evalHeight: Int, evalWidth: Int

    public init(name: String, features: Tensor, trainHeight: Int, trainWidth: Int, evalHeight: Int, evalWidth: Int) {
        self.name = name
        self.features = features
        self.trainHeight = trainHeight
        self.trainWidth = trainWidth
        self.evalHeight = evalHeight
        self.evalWidth = evalWidth
    }
}

/// Nearest-neighbour resize of a row-major map, PIL's NEAREST convention (source index
/// ⌊(o + 0.5)·in/out⌋), the way mmseg resizes label maps.
public func nearestResize<T>(_ v: [T], height: Int, width: Int, toHeight oh: Int, toWidth ow: Int) -> [T] {
    if oh == height && ow == width { return v }
    var out: [T] = []
    out.reserveCapacity(oh * ow)
    for i in 0..<oh {
        let si = min(Int((Double(i) + 0.5) * Double(height) / Double(oh)), height - 1)
        for j in 0..<ow {
            out.append(v[si * width + min(Int((Double(j) + 0.5) * Double(width) / Double(ow)), width - 1)])
        }
    }
    return out
}

/// What training a probe produced.
public struct ProbeTrainingSummary: Sendable, Codable {
    public var iterations: Int
    public var seconds: Double
    public var mapsPerSecond: Double
    public var finalLoss: Double

    /// The summary of a run of `o.iterations` steps of `o.batchSize` maps that started at `start`.
    init(_ o: ProbeOptions, since start: Date, finalLoss: Double) {
        iterations = o.iterations
        seconds = Date().timeIntervalSince(start)
        mapsPerSecond = Double(o.iterations * o.batchSize) / max(seconds, 1e-9)
        self.finalLoss = finalLoss
    }
}

/// Trains linear heads on cached feature maps (the CPU default: features are computed once,
/// the head trains on them with random flips) and evaluates them.
public enum ProbeTrainer {
    /// A row-major (height, width) depth map mirrored left–right with the one flip op, as the
    /// feature map beside it (`flipped(axis: 1)` of a (Gh, Gw, C) map).
    static func flippedRows(_ v: [Float], height: Int, width: Int) -> [Float] {
        withNoGrad { Tensor(v, shape: [height, width]).flipped(axis: 1).scalars }
    }

    /// A label map mirrored the same way; class indices (< 2²⁴) are exact in float32.
    static func flippedRows(_ v: [Int32], height: Int, width: Int) -> [Int32] {
        flippedRows(v.map(Float.init), height: height, width: width).map { Int32($0) }
    }

    /// A probe head as a `TrainingTask` of the one Trainer: the head's parameters, and a loss
    /// over the next batch of cached maps. The batches and flips come from the task's own
    /// streams (seeded from the probe seed), not from the Trainer's generator: batches from the
    /// one `ShuffledSampler` (a fresh permutation per pass); nil from `batchLoss` (a batch with
    /// nothing to learn from) is a skipped step.
    final class HeadTask: TrainingTask {
        let parameters: [(String, Tensor)]
        private var batches: ShuffledSampler
        private let batchSize: Int
        private let batchLoss: ([Int]) -> Tensor?

        init(parameters: [(String, Tensor)], examples: Int, options o: ProbeOptions, batchLoss: @escaping ([Int]) -> Tensor?) {
            self.parameters = parameters
            batches = ShuffledSampler(count: examples, seed: o.seed &+ 2)
            batchSize = o.batchSize
            self.batchLoss = batchLoss
        }

        func loss(step: Int, rng: inout RandomGenerator) throws -> (loss: Tensor, metrics: [String: Double]) {
            (batchLoss(batches.next(batchSize)) ?? Tensor([Float.nan], shape: []), [:])
        }
    }

    /// Trains `task` with mmseg's optimiser: AdamW, the options' schedule and gradient clip, and
    /// a step with a non-finite loss skipped. Progress about five times a run.
    static func train(_ task: HeadTask, options o: ProbeOptions, log: @escaping (String) -> Void) throws -> ProbeTrainingSummary {
        var optimizer = OptimizerSettings()
        optimizer.kind = .adamw
        optimizer.lr = o.lr
        optimizer.beta1 = o.beta1
        optimizer.beta2 = o.beta2
        optimizer.weightDecay = o.weightDecay
        optimizer.maxGradNorm = o.gradClip
        var loop = LoopSettings(numIters: o.iterations)
        loop.printFreq = max(o.iterations / 5, 1)
        loop.nonFiniteLoss = .skipStep
        let trainer = Trainer(task: task, optimizer: optimizer, loop: loop, label: "  probe")
        trainer.learningRateSchedule = { o.learningRate(at: $0) }
        trainer.log = log
        let t0 = Date()
        let summary = try trainer.run()
        return ProbeTrainingSummary(o, since: t0, finalLoss: summary.finalLoss)
    }

    /// Trains a segmentation head on `train`.
    public static func trainSegmentation(
        _ train: [ProbeExample], classes: Int, options o: ProbeOptions,
        log: @escaping (String) -> Void = { _ in }
    ) throws -> (SegmentationHead, ProbeTrainingSummary) {
        precondition(!train.isEmpty, "trainSegmentation: no training examples")
        let c = train[0].features.shape[2]
        let head = SegmentationHead(channels: c, classes: classes, seed: o.seed &+ 1)
        var flipRng = RandomGenerator(seed: o.seed &+ 3)
        let task = HeadTask(parameters: head.parameters, examples: train.count, options: o) { idx in
            var maps: [Tensor] = [], labels: [Int32] = []
            for i in idx {
                let e = train[i]
                let flip = o.flip && flipRng.uniformDouble() < 0.5
                maps.append(flip ? e.features.flipped(axis: 1) : e.features)
                labels += flip ? flippedRows(e.trainLabels, height: e.trainHeight, width: e.trainWidth) : e.trainLabels
            }
            let batch = Tensor.concat(maps.map { $0.reshape([1] + $0.shape) }, axis: 0)  // (B, Gh, Gw, C)
            let logits = head.tokenLogits(batch, training: true)
            let up = Tensor.concat(
                (0..<idx.count).map {
                    SegmentationHead.upsample(logits, image: $0, height: train[idx[$0]].trainHeight, width: train[idx[$0]].trainWidth)
                }, axis: 0)  // (B·H·W, K)
            return Tensor.crossEntropy(up, labels: labels, ignoreIndex: ProbeDataset.ignoreIndex)
        }
        return (head, try Self.train(task, options: o, log: log))
    }

    /// Predicted classes of one example at its evaluation resolution.
    public static func predict(_ head: SegmentationHead, _ e: ProbeExample) -> [Int32] {
        withNoGrad {
            let logits = head.tokenLogits(e.features.reshape([1] + e.features.shape), training: false)
            return SegmentationHead.argmax(SegmentationHead.upsample(logits, image: 0, height: e.evalHeight, width: e.evalWidth))
        }
    }

    public static func evaluateSegmentation(_ head: SegmentationHead, _ val: [ProbeExample], classes: Int) -> SegmentationMetrics {
        var m = SegmentationMetrics(classes: classes, ignoreIndex: ProbeDataset.ignoreIndex)
        for e in val { m.add(prediction: predict(head, e), label: e.evalLabels) }
        return m
    }

    /// Trains a depth head on `train` (SigLoss + weight · GradientLoss, mean over the batch).
    public static func trainDepth(
        _ train: [ProbeExample], options o: ProbeOptions, minDepth: Float = 0.001, maxDepth: Float = 10,
        log: @escaping (String) -> Void = { _ in }
    ) throws -> (DepthHead, ProbeTrainingSummary) {
        precondition(!train.isEmpty, "trainDepth: no training examples")
        let head = DepthHead(channels: train[0].features.shape[2], minDepth: minDepth, maxDepth: maxDepth, seed: o.seed &+ 1)
        var flipRng = RandomGenerator(seed: o.seed &+ 3)
        var sigCalls = 0
        let task = HeadTask(parameters: head.parameters, examples: train.count, options: o) { idx in
            var terms: [Tensor] = []
            for i in idx {
                let e = train[i]
                let flip = o.flip && flipRng.uniformDouble() < 0.5
                let f = flip ? e.features.flipped(axis: 1) : e.features
                let gt = flip ? flippedRows(e.trainDepth, height: e.trainHeight, width: e.trainWidth) : e.trainDepth
                let pred = head.depth(f, height: e.trainHeight, width: e.trainWidth)  // (H·W, 1)
                // sigloss.py:56-61: the first 100 calls use the warm-up form.
                if let s = DepthLosses.sigLoss(pred: pred, gt: gt, warmUp: sigCalls < 100) { terms.append(s) }
                sigCalls += 1
                if o.gradientLossWeight > 0,
                    let g = DepthLosses.gradientLoss(pred: pred, gt: gt, height: e.trainHeight, width: e.trainWidth)
                {
                    terms.append(g * Float(o.gradientLossWeight))
                }
            }
            guard !terms.isEmpty else { return nil }
            return terms.dropFirst().reduce(terms[0], +) * (1 / Float(o.batchSize))
        }
        return (head, try Self.train(task, options: o, log: log))
    }

    public static func predictDepth(_ head: DepthHead, _ e: ProbeExample) -> [Float] {
        withNoGrad { head.depth(e.features, height: e.evalHeight, width: e.evalWidth).scalars }
    }

    /// DINOv2's NYU evaluation: eigen crop on 480×640 frames (elsewhere the whole frame), caps
    /// min/max depth, nanmean over images.
    public static func evaluateDepth(_ head: DepthHead, _ val: [ProbeExample], minDepth: Double = 0.001, maxDepth: Double = 10) -> DepthMetrics {
        DepthMetrics.mean(
            val.map { e in
                let crop = (e.evalHeight == 480 && e.evalWidth == 640) ? DepthMetrics.eigenCrop(height: 480, width: 640) : nil
                return DepthMetrics.image(gt: e.evalDepth, pred: predictDepth(head, e), crop: crop, minDepth: minDepth, maxDepth: maxDepth)
            })
    }
}
