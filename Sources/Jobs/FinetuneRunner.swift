import DVT
import Distributed
import Formats
import Foundation
import NN
import Report
import Settings
import TensorCore
import Training
import Vision

/// The resolved recipe of a fine-tuning run: every `finetune.*` null filled in from the
/// teacher's official recipe (docs/finetune.md).
public struct FinetuneRecipe: Sendable, Equatable {
    public var teacher: DVTSettings.Finetune.Teacher
    public var thaw: ThawMode
    public var loss: FinetuneLoss
    public var batchSize: Int
    public var steps: Int
    public var stepsPerEpoch: Int
    public var optimizer: OptimizerSettings
    public var l2Penalty: Double

    /// - Parameters:
    ///   - teacher: `--teacher` (overrides `finetune.teacher`).
    ///   - images: training images, for the epoch length.
    public init(config: ResolvedConfig, teacher override: DVTSettings.Finetune.Teacher?, images: Int) throws {
        let f = config.settings.finetune
        teacher = override ?? f.teacher
        let isDVT = teacher == .dvt
        thaw = f.thaw
        loss = f.loss ?? (isDVT ? .mseCosine : .mse)
        // DVT: 64 per GPU × 8 GPUs (sample_scripts/stage3.sh); SRT: one frame per step, `frame.unsqueeze(0)` (distill_utils.py line 88).
        batchSize = f.batchSize ?? (isDVT ? 512 : 1)
        // DVT: len(dataset) // global batch (main_distillation.py line 186); at least one step.
        let perEpoch = max(1, images / batchSize)
        stepsPerEpoch = perEpoch
        let epochs = f.epochs ?? (isDVT ? 5 : 50)
        steps = f.numIters ?? epochs * perEpoch
        var o = OptimizerSettings()
        o.kind = .adamw
        o.beta1 = 0.9
        o.beta2 = 0.999  // main_distillation.py line 203; SRT get_optim momentum 0.9, 0.999
        o.eps = 1e-8  // torch.optim.AdamW default
        o.weightDecay = f.weightDecay ?? (isDVT ? 1e-5 : 0)
        o.lr = f.lr ?? (isDVT ? f.baseLR * (Double(batchSize) / 256).squareRoot() : 3e-4)
        o.minLR = f.minLR
        switch f.schedule ?? (isDVT ? .cosine : .step) {
        case .cosine:
            o.schedule = .cosineScheduler
            o.warmupIters = Int(Double(steps) * f.warmupRatio)  // int(num_iterations · 0.15), line 210
        case .step:
            o.schedule = .multiStep
            // SRT decays once `step_epoch < epoch` (distill_utils.py line 10): from epoch s + 1 on.
            o.lrMilestones = f.lrSteps.map { ($0 + 1) * perEpoch }
            o.lrDecay = f.lrDecay
        }
        self.optimizer = o
        l2Penalty = f.l2Penalty ?? (isDVT ? 0 : 1e-5)
    }
}

public struct FinetuneOutcome {
    public var summary: TrainingSummary
    public var recipe: FinetuneRecipe
    public var runDirectory: URL
    /// The fine-tuned ViT as a timm state dict (safetensors).
    public var exported: URL
}

/// Resized, normalised training inputs by image index (used from the training thread only).
final class PreparedImages {
    var images: [Int: Tensor] = [:]
}

/// `dvt finetune`: the student ViT, the frozen teacher, the images, and the one trainer.
public enum FinetuneRunner {
    public static func runDirectory(config: ResolvedConfig) -> URL {
        URL(fileURLWithPath: config.settings.run.outputDir).appendingPathComponent("finetune")
    }

    /// Trains (or with `resume` continues) the ViT towards `teacher` (dvt or srt).
    public static func run(
        config: ResolvedConfig, teacher override: DVTSettings.Finetune.Teacher? = nil, resume: Bool = false, quiet: Bool = false,
        log everyRank: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    ) throws -> FinetuneOutcome {
        // Under an MPI launcher: data-parallel as stage 2 (Stage2DataParallel.swift); rank 0 logs and writes.
        let communicator = try Communicator.world()
        let isRoot = (communicator?.rank ?? 0) == 0
        let log: (String) -> Void = isRoot ? everyRank : { _ in }
        let run = config.settings.run
        guard let dataList = run.dataList else {
            throw FinetuneError(
                "dvt finetune needs data_list: the training images (a list file or a folder; set data_list in the config or --set data_list=PATH)")
        }
        let items = try ImageSource.items(from: dataList, root: run.dataRoot)
        let recipe = try FinetuneRecipe(config: config, teacher: override, images: items.count)
        let arch = run.model
        let randomInit = run.randomInit.map { UInt64($0) }
        // Two copies of the backbone: the student trains, the teacher's stays the pretrained one
        // (main_distillation.py lines 115 and 131).
        let student = try VisionTransformer.load(
            arch: arch, weights: run.weights, randomInit: randomInit, resample: PositionResampling(setting: run.posEmbedResample))
        let frozen = try VisionTransformer.load(
            arch: arch, weights: run.weights, randomInit: randomInit, resample: PositionResampling(setting: run.posEmbedResample))
        // `precision`: products only (docs/precision.md); weights and AdamW state stay fp32.
        student.precision = run.precision
        frozen.precision = run.precision
        let stride = InputGeometry.stride(run.strideSize, patchSize: student.config.patchSize)
        let (h, w) = InputGeometry.inputSize(run.inputSize, stride: stride)
        let teacher = try makeTeacher(recipe.teacher, config: config, vit: frozen, stride: stride, log: log)
        let trained = student.thaw(recipe.thaw)

        var options = FinetuneOptions()
        options.loss = recipe.loss
        options.l2Penalty = recipe.l2Penalty
        options.batchSize = recipe.batchSize
        options.stride = stride
        options.horizontalFlip = config.settings.finetune.flip
        options.checkpointBlocks = config.settings.finetune.gradientCheckpointing
        let cacheMode = config.settings.finetune.cacheTeacher
        options.cacheTeacher = cacheMode != .off
        // Resize bicubic (Pillow's, antialiased) to the input size, then normalise
        // (main_distillation.py lines 163-169); the flip is drawn per step by the task.
        // Decoding and resizing a photo costs more than a small step: the resized inputs are kept
        // when they all fit in 1 GiB (they never change; the flip is applied after).
        let keep = items.count * 3 * h * w * 4 <= 1 << 30
        let cache = PreparedImages()
        let task = try FinetuneTask(
            student: student, teacher: teacher, imageCount: items.count, options: options,
            seed: UInt64(run.seed)
        ) { i in
            if let hit = cache.images[i] { return hit }
            let x: Tensor
            do { x = try student.preprocess(items[i].url, height: h, width: w) } catch {
                throw FinetuneError("cannot read training image \(items[i].url.path): \(error)")
            }
            if keep { cache.images[i] = x }
            return x
        }

        let runDir = runDirectory(config: config)
        try FileManager.default.createDirectory(at: runDir, withIntermediateDirectories: true)
        if cacheMode == .disk {
            let dir = try teacherCacheDirectory(runDir, config: config, teacher: recipe.teacher, size: (h, w), stride: stride, images: items)
            task.teacherCacheDirectory = dir
            log("finetune: teacher maps cached in \(dir.path)")
        }
        if isRoot {
            for path in AtomicFile.removeStaleTemporaries(under: runDir) { log("removed a partial file left by a killed run: \(path)") }
            try AtomicFile.write(Data(config.yaml.utf8), to: runDir.appendingPathComponent("resolved.yaml"))
        }
        var loop = LoopSettings(numIters: recipe.steps)
        loop.printFreq = config.settings.finetune.printFreq
        loop.saveFreq = config.settings.finetune.saveFreq
        loop.seed = UInt64(run.seed)
        let trainer = Trainer(task: task, optimizer: recipe.optimizer, loop: loop, runDirectory: runDir, label: "finetune", quiet: quiet)
        trainer.log = log
        if let communicator, communicator.size > 1 { try attachDataParallel(communicator, task: task, trainer: trainer, log: everyRank) }
        trainer.configJSON = String(
            decoding: try JSONSerialization.data(
                withJSONObject: ["teacher": recipe.teacher.rawValue, "config": config.yaml],
                options: [.sortedKeys]), as: UTF8.self)
        let o = recipe.optimizer
        log(
            String(
                format:
                    "finetune: %@ towards the %@ teacher, %d images at %dx%d, stride %d; thaw %@ (%d of %d tensors); loss %@%@; batch %d, %d steps (%d per epoch); AdamW lr %.3g, wd %.3g, %@",
                student.config.name as NSString, recipe.teacher.rawValue as NSString, items.count, h, w, stride, recipe.thaw.rawValue as NSString,
                trained.count, student.namedParameters().count, recipe.loss.rawValue as NSString,
                recipe.l2Penalty > 0 ? String(format: " + %.3g·‖θ‖₂", recipe.l2Penalty) as NSString : "" as NSString,
                recipe.batchSize, recipe.steps, recipe.stepsPerEpoch, o.lr, o.weightDecay,
                (o.schedule == .cosineScheduler ? "cosine to \(o.minLR), warmup \(o.warmupIters)" : "×\(o.lrDecay) at steps \(o.lrMilestones)")
                    as NSString))
        if resume, let latest = trainer.latestCheckpoint, !FileManager.default.fileExists(atPath: latest.path) {
            log("finetune: --resume given but \(latest.path) does not exist; starting at step 0")
        }
        let summary = try trainer.run(resume: resume)
        let out0 = config.settings.finetune.export.map { URL(fileURLWithPath: $0) } ?? runDir.appendingPathComponent("vit.safetensors")
        guard isRoot else { return FinetuneOutcome(summary: summary, recipe: recipe, runDirectory: runDir, exported: out0) }
        let out = out0
        try FileManager.default.createDirectory(at: out.deletingLastPathComponent(), withIntermediateDirectories: true)
        var meta = [
            "dvt_finetune_teacher": recipe.teacher.rawValue, "dvt_finetune_steps": String(summary.steps),
            "dvt_finetune_thaw": recipe.thaw.rawValue, "input_size": "\(h),\(w)",
            "precision": run.precision.rawValue,
        ]
        if let seed = student.randomInitSeed { meta["random_init"] = String(seed) }
        try student.exportTimm(to: out, metadata: meta)
        log(
            "finetune: wrote \(out.path) (timm state dict: load with timm.create_model('\(student.config.name)', num_classes=0, dynamic_img_size=True).load_state_dict(..., strict=True))"
        )
        if let history = try? LossCurve.read(metrics: runDir.appendingPathComponent("metrics.jsonl")) {
            try? LossCurve.render(history, title: "fine-tuning (\(recipe.teacher.rawValue) teacher)").write(
                to: runDir.appendingPathComponent("loss_curve.png"))
        }
        return FinetuneOutcome(summary: summary, recipe: recipe, runDirectory: runDir, exported: out)
    }

    /// Data-parallel fine-tuning: `finetune.batch_size` is the global batch, split evenly over
    /// the ranks; the ranks' gradients (and logged values) are averaged after every backward;
    /// rank 0 alone writes checkpoints, metrics and the export. The loss is a mean over equal
    /// slices, so the average of the slice gradients is the global batch's (SRT's penalty is the
    /// same on every rank and averages to itself).
    static func attachDataParallel(_ communicator: Communicator, task: FinetuneTask, trainer: Trainer, log: (String) -> Void) throws {
        let r = communicator.rank, n = communicator.size
        guard task.options.batchSize % n == 0 else {
            throw FinetuneError(
                "finetune.batch_size \(task.options.batchSize) is the global batch and must divide evenly over the \(n) MPI ranks; set it to a multiple of \(n)"
            )
        }
        log(
            "finetune: rank \(r) of \(n) on \(ProcessInfo.processInfo.hostName) (pid \(getpid())): \(task.options.batchSize / n) of every global batch of \(task.options.batchSize)\(r == 0 ? "; rank 0 writes the outputs" : "")"
        )
        task.shard = (r, n)
        _ = trainer.averageOverRanks(communicator) { task.parameters }
    }

    /// The disk cache of one teacher: a folder named by a fingerprint of everything the maps
    /// depend on (teacher, ViT and its weights file's size and date, denoiser file likewise, SRT
    /// options, input size, stride, the image list), so a changed input never reads stale maps.
    static func teacherCacheDirectory(
        _ runDir: URL, config: ResolvedConfig, teacher: DVTSettings.Finetune.Teacher, size: (Int, Int), stride: Int,
        images: [ImageItem]
    ) throws -> URL {
        func stamp(_ path: String?) -> String {
            guard let path, let a = try? FileManager.default.attributesOfItem(atPath: path) else { return path ?? "-" }
            return "\(path):\((a[.size] as? Int) ?? -1):\((a[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
        }
        let run = config.settings.run, f = config.settings.finetune, s = config.settings.srt
        var parts = [
            teacher.rawValue, run.model, stamp(run.weights), run.randomInit.map(String.init) ?? "-",
            "\(size.0)x\(size.1)", "\(stride)", images.map(\.url.path).joined(separator: "|"),
        ]
        if teacher == .dvt {
            parts.append(stamp(f.denoiser ?? Stage2Runner.runDirectory(config: config).appendingPathComponent("denoiser.safetensors").path))
        } else {
            parts += ["\(s.dx)", "\(s.dy)", s.aggregate.rawValue, "\(s.uniform)"]
        }
        // FNV-1a 64 over the parts: a short, stable folder name.
        let hash = FNV1a.hash(utf8: parts.joined(separator: "\n"))
        let dir = runDir.appendingPathComponent("teacher_cache/\(String(hash, radix: 16))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The frozen teacher: the ViT + the stage-2 denoiser (dvt), or the ViT's SRT ensemble (srt).
    static func makeTeacher(
        _ kind: DVTSettings.Finetune.Teacher, config: ResolvedConfig, vit: VisionTransformer, stride: Int,
        log: (String) -> Void
    ) throws -> FinetuneTeacher {
        if kind == .dvt {
            let path =
                config.settings.finetune.denoiser
                ?? Stage2Runner.runDirectory(config: config).appendingPathComponent("denoiser.safetensors").path
            guard FileManager.default.fileExists(atPath: path) else {
                throw FinetuneError(
                    "the dvt teacher needs the stage-2 denoiser: \(path) does not exist (run `dvt stage2` first, or set finetune.denoiser)")
            }
            let denoiser = try Denoiser.load(URL(fileURLWithPath: path))
            denoiser.precision = config.settings.run.precision
            log("finetune: teacher = frozen \(vit.config.name) + denoiser \(path)")
            return try DenoiserTeacher(vit: vit, denoiser: denoiser, stride: stride)
        }
        let s = config.settings.srt
        var options = SRT.Options(s, layer: vit.config.depth - 1, stride: stride)
        options.norm = true
        log("finetune: teacher = SRT ensemble of frozen \(vit.config.name), dx \(s.dx), dy \(s.dy), \(options.aggregate)")
        return SRTTeacher(srt: try SRT(model: vit, options: options))
    }
}
