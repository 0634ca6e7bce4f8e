import Foundation
import NN
import TensorCore
import Training

// DVT stage 1 run through the Trainer: the task (Stage1.swift) conforms to TrainingTask here,
// and the loop is the Training module's.

extension Stage1Task: TrainingTask {
    /// The hash table row-sparse in the mode `hash_table_adam` asks for (none when dense), and
    /// G's own weight decay when `shared_artifacts_weight_decay` is set (a torch parameter group).
    public var parameterGroups: [ParameterGroup] {
        var groups: [ParameterGroup] = []
        let mode: Adam.RowSparseMode = settings.hashTableAdam == .deferred ? .deferred : .lazy
        for (name, width) in rowSparseParameters.sorted(by: { $0.key < $1.key }) {
            groups.append(ParameterGroup(names: [name], rowSparse: .init(rowWidth: width, mode: mode)))
        }
        if let wd = settings.sharedArtifactsWeightDecay {
            groups.append(ParameterGroup(names: [Stage1Task.artifactParameter], weightDecay: wd))
        }
        return groups
    }
}

/// Stage 1 of one image, with its training record.
public struct Stage1Result {
    public var output: Stage1Output
    /// (step, loss) at every logged step (`printFreq`, the first and the last).
    public var lossHistory: [LossPoint]
    public var finalLoss: Double
    public var msPerStep: Double
    public var seconds: Double
    public var lastMetrics: [String: Double]
}

public enum Stage1 {
    /// DVT's stage-1 optimiser: torch Adam, betas (0.9, 0.99), eps 1e-15 (`denoise_an_image`),
    /// L2 weight decay, warmup then half-cycle cosine to `min_lr`.
    public static func optimizerSettings(_ s: Stage1Settings) -> OptimizerSettings {
        var o = OptimizerSettings()
        o.kind = .adam
        o.lr = s.lr
        o.minLR = s.minLR
        o.warmupIters = s.effectiveWarmupIters
        o.beta1 = 0.9  // DVT stage 1
        o.beta2 = 0.99  // DVT stage 1 (tiny-cuda-nn's usual β2 for hash grids)
        o.eps = 1e-15  // DVT stage 1 (keeps Adam's step size for the tiny hash-grid gradients)
        o.weightDecay = s.weightDecay
        o.lossScale = s.lossScale  // DVT's never-unscaled GradScaler (main_img_denoising.py lines 55, 88-89)
        return o
    }

    /// A Trainer for a stage-1 task with DVT's optimiser settings; the task's parameter groups
    /// carry G's weight decay and the table's row-sparse mode, and the Trainer flushes deferred
    /// rows when training ends.
    public static func makeTrainer(
        task: Stage1Task, loop: LoopSettings, runDirectory: URL? = nil,
        label: String = "stage1", quiet: Bool = true
    ) -> Trainer {
        Trainer(
            task: task, optimizer: optimizerSettings(task.settings), loop: loop,
            runDirectory: runDirectory, label: label, quiet: quiet)
    }

    /// The sampler's seed, derived from the model seed so the two streams differ (the same
    /// seed would make the first batch indices a function of the table's initial values).
    public static func samplerSeed(_ seed: UInt64) -> UInt64 { seed ^ 0x5354_4147_4531_5F42 }  // "STAGE1_B"

    /// Fits stage 1 on one image's views.
    /// - Parameters:
    ///   - views: (V, h, w, C) raw features; the last view is the whole image.
    ///   - coords: (V, h, w, 2) every token's (x, y) in [0, 1] of the whole image.
    ///   - seed: model initialisation; batches use `samplerSeed(seed)`.
    ///   - printFreq: progress/metrics cadence (0: every numIters/10 steps).
    ///   - valFreq, validation: score the current outputs every `valFreq` steps (logged as `val_*`).
    ///   - precision: operand precision of the fit's products (`Stage1Task.precision`).
    /// - Throws: `Stage1Error` for bad shapes or settings, `TrainerError.nonFiniteLoss` when the
    ///   loss turns NaN/Inf.
    public static func fit(
        views: Tensor, coords: Tensor, settings: Stage1Settings, seed: UInt64 = 0,
        runDirectory: URL? = nil, label: String = "stage1", quiet: Bool = true,
        printFreq: Int = 0, valFreq: Int = 0, precision: Precision = .fp32,
        validation: ((Stage1Output) -> [String: Double])? = nil
    ) throws -> Stage1Result {
        try fit(
            task: Stage1Task(raw: views, coords: coords, settings: settings, seed: seed), runDirectory: runDirectory,
            label: label, quiet: quiet, printFreq: printFreq, valFreq: valFreq, precision: precision, validation: validation)
    }

    /// `fit` on features already held as `FeatureRows` (V·h·w, C), with the whole image's fp32
    /// (h, w, C) features: what `dvt stage1` passes, so that no fp32 copy of every view exists.
    public static func fit(
        rows: FeatureRows, lastView: Tensor, coords: Tensor, settings: Stage1Settings, seed: UInt64 = 0,
        runDirectory: URL? = nil, label: String = "stage1", quiet: Bool = true,
        printFreq: Int = 0, valFreq: Int = 0, precision: Precision = .fp32,
        validation: ((Stage1Output) -> [String: Double])? = nil
    ) throws -> Stage1Result {
        try fit(
            task: Stage1Task(raw: rows, lastView: lastView, coords: coords, settings: settings, seed: seed), runDirectory: runDirectory,
            label: label, quiet: quiet, printFreq: printFreq, valFreq: valFreq, precision: precision, validation: validation)
    }

    static func fit(
        task: Stage1Task, runDirectory: URL?, label: String, quiet: Bool, printFreq: Int, valFreq: Int,
        precision: Precision, validation: ((Stage1Output) -> [String: Double])?
    ) throws -> Stage1Result {
        let settings = task.settings
        task.validation = validation
        task.precision = precision
        var loop = LoopSettings(numIters: settings.numIters)
        loop.seed = samplerSeed(task.seed)
        loop.printFreq = printFreq > 0 ? printFreq : max(1, settings.numIters / 10)
        loop.valFreq = valFreq
        let trainer = makeTrainer(task: task, loop: loop, runDirectory: runDirectory, label: label, quiet: quiet)
        let summary = try trainer.run()
        return Stage1Result(
            output: task.output(), lossHistory: summary.lossHistory, finalLoss: summary.finalLoss,
            msPerStep: summary.msPerStep, seconds: summary.seconds, lastMetrics: summary.lastMetrics)
    }
}
