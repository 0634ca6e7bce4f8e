import Formats
import Foundation
import NN
import TensorCore

/// What the trainer trains: stage 1 (per-image decomposition), stage 2 (the denoiser), the ViT
/// fine-tuning and the probe heads are all tasks of this one loop.
public protocol TrainingTask: AnyObject {
    /// Every parameter the optimiser owns, by name (optimiser-state and checkpoint keys).
    /// Frozen ones (`requiresGrad == false`) stay listed; the optimiser skips them.
    var parameters: [(String, Tensor)] { get }
    /// Parameters updated with the row-sparse (lazy) Adam: name → row width.
    var rowSparseParameters: [String: Int] { get }
    /// How the optimiser treats named parameters, like torch parameter groups: their own weight
    /// decay, and the row-sparse mode. Default: `rowSparseParameters` in lazy mode.
    var parameterGroups: [ParameterGroup] { get }
    /// Called once when training has reached its last step, after the optimiser's deferred rows
    /// are flushed (so parameters are final): e.g. to cache outputs.
    func didFinishTraining()
    /// Called before step `step` (0-based) of `total`: phase switches.
    func willStep(_ step: Int, total: Int)
    /// One step's forward pass. Draws its own batch from `rng`; returns the scalar loss and
    /// named scalar metrics for the log.
    func loss(step: Int, rng: inout RandomGenerator) throws -> (loss: Tensor, metrics: [String: Double])
    /// Held-out metrics, every `valFreq` steps when `valFreq > 0`.
    func validate(step: Int) throws -> [String: Double]
    /// Extra tensors to checkpoint and restore (e.g. sampler state).
    func extraState() -> [String: Tensor]
    func loadExtraState(_ state: [String: Tensor]) throws
}

/// A torch-style parameter group: parameters that share an optimiser treatment.
public struct ParameterGroup: Sendable, Equatable {
    public var names: [String]
    /// Weight decay of these parameters (nil: the optimiser's).
    public var weightDecay: Double?
    /// Row-sparse update: the row width and the mode (nil: dense).
    public var rowSparse: RowSparse?

    public struct RowSparse: Sendable, Equatable {
        public var rowWidth: Int
        public var mode: Adam.RowSparseMode
        public init(rowWidth: Int, mode: Adam.RowSparseMode) {
            self.rowWidth = rowWidth
            self.mode = mode
        }
    }

    public init(names: [String], weightDecay: Double? = nil, rowSparse: RowSparse? = nil) {
        self.names = names
        self.weightDecay = weightDecay
        self.rowSparse = rowSparse
    }
}

extension TrainingTask {
    public var rowSparseParameters: [String: Int] { [:] }
    public var parameterGroups: [ParameterGroup] {
        rowSparseParameters.sorted { $0.key < $1.key }.map {
            ParameterGroup(names: [$0.key], rowSparse: .init(rowWidth: $0.value, mode: .lazy))
        }
    }
    public func didFinishTraining() {}
    public func willStep(_ step: Int, total: Int) {}
    public func validate(step: Int) throws -> [String: Double] { [:] }
    public func extraState() -> [String: Tensor] { [:] }
    public func loadExtraState(_ state: [String: Tensor]) throws {}
}

public enum OptimizerKind: String, Codable, Sendable, CaseIterable { case adam, adamw }

/// Optimiser and learning-rate schedule of a run.
public struct OptimizerSettings: Codable, Sendable, Equatable {
    public var kind: OptimizerKind = .adam
    public var lr: Double = 0.01
    public var minLR: Double = 0.001
    public var warmupIters: Int = 0
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var eps: Double = 1e-8
    public var weightDecay: Double = 0
    /// The loss is multiplied by this before the backward pass and the gradients are never
    /// unscaled (DVT stage 1's GradScaler use; see `Stage1Settings.lossScale`). 1 = none.
    public var lossScale: Double = 1
    /// Which of DVT's two warmup-cosine spellings sets the learning rate (see Schedule.swift).
    public var schedule: LRSchedule = .adjustLearningRate
    /// `.multiStep` only: the steps from which the rate is multiplied by one more `lrDecay`.
    public var lrMilestones: [Int] = []
    public var lrDecay: Double = 0.1
    /// Gradient clipping: before each update the gradients of all parameters are scaled so that
    /// their joint L2 norm is at most this (`clipGradientNorm`, torch's `clip_grad_norm_`); nil = none.
    public var maxGradNorm: Double? = nil
    public init() {}
}

/// DVT's two learning-rate schedules, which differ in their endpoints.
public enum LRSchedule: String, Codable, Sendable, CaseIterable {
    /// `adjust_learning_rate` (dvt/utils/misc.py lines 306-322): stage 1.
    case adjustLearningRate
    /// The precomputed `CosineScheduler` table (dvt/utils/misc.py lines 211-241): stage 2,
    /// whose linspace warmup reaches the peak at step W − 1.
    case cosineScheduler
    /// A constant rate multiplied by `lrDecay` once per milestone reached (step >= milestone):
    /// SRT's `adjust_lr(sched_type='step')` (donglao/srt distill_utils.py lines 7-10).
    case multiStep
}

/// Loop length, logging and checkpoint cadence, and the seed of every draw the loop makes.
public struct LoopSettings: Codable, Sendable, Equatable {
    public var numIters: Int
    /// Progress line and a metrics.jsonl record every `printFreq` steps (and at the last).
    public var printFreq: Int = 100
    /// Checkpoint every `saveFreq` steps (0: only at the end, when there is a run directory).
    public var saveFreq: Int = 0
    public var valFreq: Int = 0
    public var seed: UInt64 = 0
    /// What a step with a NaN or infinite loss does.
    public var nonFiniteLoss: NonFiniteLossPolicy = .stop
    public init(numIters: Int) { self.numIters = numIters }
}

/// What the Trainer does with a step whose loss is NaN or infinite.
public enum NonFiniteLossPolicy: String, Codable, Sendable {
    /// Stop training with `TrainerError.nonFiniteLoss`, naming the last good checkpoint.
    case stop
    /// Drop the step (no backward, no update), so that one bad batch cannot poison the weights,
    /// and go on: mmseg's behaviour for the probe heads.
    case skipStep
}

public enum TrainerError: Error, CustomStringConvertible {
    case nonFiniteLoss(step: Int, value: Double, checkpoint: String?)
    case badCheckpoint(path: String, reason: String)
    case busy(directory: String)

    public var description: String {
        switch self {
        case let .nonFiniteLoss(step, value, checkpoint):
            return "training stopped: loss is \(value) at step \(step). " + (checkpoint.map { "The last good checkpoint is \($0). " } ?? "")
                + "Lower the learning rate, check the inputs for NaN/Inf, or raise warmup."
        case let .badCheckpoint(path, reason):
            return "checkpoint \(path): \(reason)"
        case let .busy(directory):
            return "another dvt process is training in \(directory) (it holds \(directory)/.lock); "
                + "wait for it to finish, or give this run another output_dir"
        }
    }
}

public struct TrainingSummary: Sendable {
    public var steps: Int
    public var finalLoss: Double
    public var lossHistory: [LossPoint]
    public var seconds: Double
    public var msPerStep: Double
    public var lastMetrics: [String: Double]
    public var lastValidation: [String: Double]
}

public struct LossPoint: Sendable, Codable, Equatable {
    public var step: Int
    public var loss: Double

    public init(step: Int, loss: Double) {
        self.step = step
        self.loss = loss
    }
}

/// The one training loop of the toolkit: schedule, optimiser, logging, validation, atomic
/// checkpoints and bit-exact resume, around a `TrainingTask`.
public final class Trainer {
    public let task: TrainingTask
    public let optimizerSettings: OptimizerSettings
    public let loop: LoopSettings
    public let runDirectory: URL?
    public let label: String
    public let quiet: Bool
    public let optimizer: Adam
    /// The stage-2 schedule's table when `optimizerSettings.schedule` is `.cosineScheduler`.
    private let cosineTable: CosineScheduler?
    /// Resolved configuration stored in every checkpoint (JSON), for reproduction.
    public var configJSON: String = "{}"
    /// Receives the human progress lines (default: stderr).
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    /// Called after every backward pass, before the optimiser step, with the step's loss and
    /// metrics: the data-parallel seam (MPI runs average the gradients and these values over the
    /// ranks here, see `Stage2Runner.attachDataParallel`). The finite-loss check sees its result.
    public var afterBackward: ((_ loss: inout Double, _ metrics: inout [String: Double]) throws -> Void)?
    /// Whether this process writes metrics.jsonl and checkpoints (false on MPI ranks other than 0).
    public var writesOutputs = true
    /// A learning-rate schedule of the task's own (step → rate) instead of `optimizerSettings`'s
    /// (the probe heads' mmcv poly/cosine with warmup).
    public var learningRateSchedule: ((Int) -> Double)?

    public init(
        task: TrainingTask, optimizer settings: OptimizerSettings, loop: LoopSettings,
        runDirectory: URL? = nil, label: String = "train", quiet: Bool = false
    ) {
        self.task = task
        optimizerSettings = settings
        self.loop = loop
        self.runDirectory = runDirectory
        self.label = label
        self.quiet = quiet
        cosineTable =
            settings.schedule == .cosineScheduler
            ? CosineScheduler(
                baseValue: settings.lr, finalValue: settings.minLR, totalIters: loop.numIters,
                warmupIters: settings.warmupIters, startWarmupValue: 0)
            : nil
        let params = task.parameters
        switch settings.kind {
        case .adam:
            optimizer = Adam(
                parameters: params, lr: settings.lr, betas: (settings.beta1, settings.beta2),
                eps: settings.eps, weightDecay: settings.weightDecay)
        case .adamw:
            optimizer = AdamW(
                parameters: params, lr: settings.lr, betas: (settings.beta1, settings.beta2),
                eps: settings.eps, weightDecay: settings.weightDecay)
        }
        for group in task.parameterGroups {
            for name in group.names {
                if let wd = group.weightDecay { optimizer.weightDecayOverrides[name] = wd }
                if let r = group.rowSparse { optimizer.setRowSparse(name, rowWidth: r.rowWidth, mode: r.mode) }
            }
        }
    }

    /// DVT's `adjust_learning_rate`: linear warmup from 0, then half-cycle cosine to the floor.
    public func learningRate(at step: Int) -> Double {
        if let learningRateSchedule { return learningRateSchedule(step) }
        if let cosineTable { return cosineTable[step] }
        if optimizerSettings.schedule == .multiStep {
            let reached = optimizerSettings.lrMilestones.filter { step >= $0 }.count
            return optimizerSettings.lr * pow(optimizerSettings.lrDecay, Double(reached))
        }
        return adjustLearningRate(
            step: Double(step), baseLR: optimizerSettings.lr, minLR: optimizerSettings.minLR,
            warmupSteps: Double(optimizerSettings.warmupIters), totalSteps: Double(loop.numIters))
    }

    var checkpointDirectory: URL? { runDirectory?.appendingPathComponent("checkpoints") }
    public var latestCheckpoint: URL? { checkpointDirectory?.appendingPathComponent("latest.safetensors") }

    /// Trains to `loop.numIters` steps, or continues from `latest.safetensors` with `resume`.
    // Long on purpose: the one training loop (resume, step, log, validate, checkpoint, stop),
    // read top to bottom in the order a step happens.
    public func run(resume: Bool = false) throws -> TrainingSummary {
        var rng = RandomGenerator(seed: loop.seed)
        var start = 0
        if resume, let latest = latestCheckpoint, FileManager.default.fileExists(atPath: latest.path) {
            (start, rng) = try loadCheckpoint(latest)
            log("\(label): resumed from \(latest.path) at step \(start)")
        }
        // Appended a whole line at a time (LineAppender): a full disk gives "cannot write PATH: no
        // space left on device" instead of the trap FileHandle.write(_:) raised, and a second
        // process on the same folder is refused by the run lock below rather than tearing lines.
        var metricsFile: URL?
        var runLock: FileLock?
        if let dir = runDirectory, writesOutputs {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            runLock = try FileLock.tryAcquire(dir.appendingPathComponent(".lock"))
            guard runLock != nil else {
                throw TrainerError.busy(directory: dir.path)
            }
            let path = dir.appendingPathComponent("metrics.jsonl")
            if !FileManager.default.fileExists(atPath: path.path) || start == 0 {
                try AtomicFile.write(Data(), to: path)
            } else {
                // A resumed run drops records from after the checkpoint it resumes from.
                try truncateMetrics(path, after: start)
            }
            metricsFile = path
        }
        defer { withExtendedLifetime(runLock) {} }

        let total = loop.numIters
        var history: [LossPoint] = []
        var lastLoss = Double.nan
        var lastMetrics: [String: Double] = [:], lastVal: [String: Double] = [:]
        let t0 = Date()
        var windowStart = Date(), windowSteps = 0
        var lastSaved: String? = latestCheckpoint.flatMap { FileManager.default.fileExists(atPath: $0.path) ? $0.path : nil }
        for step in start..<total {
            task.willStep(step, total: total)
            optimizer.lr = learningRate(at: step)
            let (loss, stepMetrics) = try task.loss(step: step, rng: &rng)
            var metrics = stepMetrics
            var value = Double(loss.item)
            if value.isFinite || loop.nonFiniteLoss == .stop {
                optimizer.zeroGrad()
                // Scaling the loss itself, as DVT's `grad_scaler.scale(loss).backward()` does.
                (optimizerSettings.lossScale == 1 ? loss : loss * Float(optimizerSettings.lossScale)).backward()
                try afterBackward?(&value, &metrics)
                guard value.isFinite else {
                    throw TrainerError.nonFiniteLoss(step: step, value: value, checkpoint: lastSaved)
                }
                if let maxNorm = optimizerSettings.maxGradNorm { clipGradientNorm(task.parameters, maxNorm: maxNorm) }
                optimizer.step()
            }
            lastLoss = value
            lastMetrics = metrics
            windowSteps += 1
            let isLast = step == total - 1
            if loop.valFreq > 0 && ((step + 1) % loop.valFreq == 0 || isLast) {
                lastVal = try withNoGrad { try task.validate(step: step + 1) }
            }
            // metrics.jsonl holds the same steps whether or not the run was resumed: step 1, every
            // printFreq-th and the last. The first step after a resume gets a progress line only.
            let recorded = (step + 1) % max(loop.printFreq, 1) == 0 || isLast || step == 0
            if recorded || step == start {
                history.append(LossPoint(step: step + 1, loss: value))
                let dt = Date().timeIntervalSince(windowStart)
                let itPerSec = dt > 0 ? Double(windowSteps) / dt : 0
                windowStart = Date(); windowSteps = 0
                let eta = itPerSec > 0 ? Double(total - step - 1) / itPerSec : .nan
                var record: [String: Double] = ["step": Double(step + 1), "loss": value, "lr": optimizer.lr, "it_s": itPerSec]
                for (k, v) in metrics { record[k] = v }
                for (k, v) in lastVal { record["val_\(k)"] = v }
                if recorded, let metricsFile { try LineAppender.append(Data((jsonLine(record) + "\n").utf8), to: metricsFile) }
                if !quiet {
                    var line = String(
                        format: "%@ step %d/%d  loss %.5f  lr %.3g  %.1f it/s  ETA %@", label as NSString, step + 1, total,
                        value, optimizer.lr, itPerSec, Progress.format(seconds: eta) as NSString)
                    for k in lastVal.keys.sorted() { line += String(format: "  val_%@ %.5f", k as NSString, lastVal[k]!) }
                    log(line)
                }
            }
            if runDirectory != nil && writesOutputs && ((loop.saveFreq > 0 && (step + 1) % loop.saveFreq == 0) || isLast) {
                lastSaved = try saveCheckpoint(step: step + 1, rng: rng).path
            }
        }
        // Deferred rows are brought up to date so the parameters equal dense Adam's (a no-op
        // for other modes), then the task's end-of-training hook runs.
        optimizer.flushDeferredRows()
        task.didFinishTraining()
        let seconds = Date().timeIntervalSince(t0)
        let steps = total - start
        return TrainingSummary(
            steps: total, finalLoss: lastLoss, lossHistory: history, seconds: seconds,
            msPerStep: steps > 0 ? 1000 * seconds / Double(steps) : 0,
            lastMetrics: lastMetrics, lastValidation: lastVal)
    }

    // MARK: Checkpoints

    /// Writes `step_NNNNNNN.safetensors` and then `latest.safetensors`, each atomically: model
    /// weights (`model.<name>`), optimiser state (`optim.<key>`), task extras (`extra.<key>`),
    /// and in the metadata the step, RNG state and resolved config.
    @discardableResult
    public func saveCheckpoint(step: Int, rng: RandomGenerator) throws -> URL {
        guard let dir = checkpointDirectory else { throw TrainerError.badCheckpoint(path: "-", reason: "no run directory") }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var tensors: [String: Tensor] = [:]
        for (name, p) in task.parameters { tensors["model.\(name)"] = p }
        for (k, v) in optimizer.stateDict() { tensors["optim.\(k)"] = v }
        for (k, v) in task.extraState() { tensors["extra.\(k)"] = v }
        let metadata = [
            "step": String(step), "rng": rng.stateWords.map(String.init).joined(separator: ","),
            "config": configJSON, "label": label, "format": "dvt-checkpoint-1",
        ]
        let stepFile = dir.appendingPathComponent(String(format: "step_%07d.safetensors", step))
        try SafeTensors.write(tensors, metadata: metadata, to: stepFile)
        try SafeTensors.write(tensors, metadata: metadata, to: latestCheckpoint!)
        return stepFile
    }

    /// Restores weights, optimiser state and extras; returns the step and RNG to continue with.
    public func loadCheckpoint(_ url: URL) throws -> (Int, RandomGenerator) {
        let file = try SafeTensorsFile(url: url)
        guard let s = file.metadata["step"], let step = Int(s) else {
            throw TrainerError.badCheckpoint(path: url.path, reason: "no 'step' in its metadata (not a dvt checkpoint?)")
        }
        let words = (file.metadata["rng"] ?? "").split(separator: ",").compactMap { UInt64($0) }
        guard words.count == 4 else { throw TrainerError.badCheckpoint(path: url.path, reason: "missing or malformed RNG state") }
        var weights: [String: Tensor] = [:], optim: [String: Tensor] = [:], extra: [String: Tensor] = [:]
        for key in file.keys {
            if key.hasPrefix("model.") {
                weights[String(key.dropFirst(6))] = try file.tensor(key)
            } else if key.hasPrefix("optim.") {
                optim[String(key.dropFirst(6))] = try file.tensor(key)
            } else if key.hasPrefix("extra.") {
                extra[String(key.dropFirst(6))] = try file.tensor(key)
            }
        }
        var missing: [String] = [], mismatched: [String] = []
        for (name, p) in task.parameters {
            guard let t = weights[name] else { missing.append(name); continue }
            if t.shape != p.shape { mismatched.append("\(name): checkpoint \(t.shape), model \(p.shape)") }
        }
        if !missing.isEmpty || !mismatched.isEmpty {
            throw TrainerError.badCheckpoint(path: url.path, reason: "does not fit this model; missing \(missing), mis-shaped \(mismatched)")
        }
        for (name, p) in task.parameters { p.assign(weights[name]!) }
        try optimizer.loadStateDict(optim)
        try task.loadExtraState(extra)
        return (step, RandomGenerator(stateWords: words))
    }

    private func truncateMetrics(_ url: URL, after step: Int) throws {
        let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        let kept = text.split(separator: "\n").filter { line in
            guard let data = line.data(using: .utf8),
                let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let s = obj["step"] as? Double
            else { return false }
            return Int(s) <= step
        }
        try AtomicFile.write(Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: url)
    }
}

/// One JSON object on one line, keys sorted, numbers as JSON numbers (non-finite as null).
func jsonLine(_ record: [String: Double]) -> String {
    let body = record.keys.sorted().map { k -> String in
        let v = record[k]!
        let num = v.isFinite ? (v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)) : "null"
        return "\"\(k)\":\(num)"
    }
    return "{" + body.joined(separator: ",") + "}"
}
