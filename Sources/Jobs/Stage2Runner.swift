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

/// What a stage-2 run produced.
public struct Stage2Outcome {
    public var summary: TrainingSummary
    public var runDirectory: URL
    /// The trained denoiser in the official layout (`dvt export` of the last checkpoint).
    public var denoiserFile: URL
    public var lossCurve: URL
    public var train: FeaturePairIndex
    public var validation: FeaturePairIndex?
}

/// `dvt stage2`: from a resolved configuration to a trained, exported denoiser.
///
/// Layout under `output_dir` (= DVT's feat_root: the feature trees are read from there too):
/// `stage2/resolved.yaml`, `stage2/metrics.jsonl`, `stage2/checkpoints/`, `stage2/denoiser.safetensors`,
/// `stage2/loss_curve.png`.
public enum Stage2Runner {
    public static func runDirectory(config: ResolvedConfig) -> URL {
        URL(fileURLWithPath: config.settings.run.outputDir).appendingPathComponent("stage2")
    }

    /// The optimiser settings of DVT's stage 2 (main_denoiser.py lines 176-190): AdamW betas
    /// (0.9, 0.999), lr = base_lr · sqrt(global batch / 256), and DVT's `CosineScheduler` table:
    /// a linspace warmup from 0 over W = int(warmup_ratio · num_iters) steps that reaches the
    /// peak at step W − 1, then a cosine towards min_lr. `stage2.batch_size` is the global batch
    /// (DVT's per-GPU batch_size × world size).
    public static func optimizerSettings(config: ResolvedConfig) -> OptimizerSettings {
        var o = OptimizerSettings()
        o.kind = .adamw
        let batch = Double(config.settings.stage2.batchSize)
        o.lr = config.settings.stage2.baseLR * (batch / 256).squareRoot()  // DVT's sqrt batch scaling
        o.minLR = config.settings.stage2.minLR
        o.warmupIters = Int(Double(config.settings.stage2.numIters) * config.settings.stage2.warmupRatio)
        o.beta1 = config.settings.stage2.adamwBeta1
        o.beta2 = config.settings.stage2.adamwBeta2
        o.eps = 1e-8  // torch.optim.AdamW default
        o.weightDecay = config.settings.stage2.weightDecay
        o.schedule = .cosineScheduler
        return o
    }

    public static func loopSettings(config: ResolvedConfig) -> LoopSettings {
        var l = LoopSettings(numIters: config.settings.stage2.numIters)
        l.printFreq = config.settings.stage2.printFreq
        l.saveFreq = config.settings.stage2.saveFreq
        l.valFreq = config.settings.run.valList == nil ? 0 : config.settings.stage2.valFreq
        l.seed = UInt64(config.settings.run.seed)
        return l
    }

    /// Where the features came from, for the metadata of exported weights.
    public static func provenance(config: ResolvedConfig) -> [String: String] {
        var p: [String: String] = [
            "vit_model": config.settings.run.model,
            "input_size": config.settings.run.inputSize.map(String.init).joined(separator: ","),
            "stage2_targets": config.settings.stage2.targets.rawValue,
            "precision": config.settings.run.precision.rawValue,
        ]
        if let r = config.settings.run.layerDepthRatio { p["layer_depth_ratio"] = String(r) } else { p["layer"] = String(config.settings.run.layer) }
        if let s = config.settings.run.strideSize { p["stride_size"] = String(s) }
        return p
    }

    /// Trains (or with `resume` continues) the denoiser described by `config`.
    // Long on purpose: builds the pair indices, task, trainer and MPI wiring in the order the
    // records they write depend on; each step is a few lines.
    public static func run(
        config: ResolvedConfig, resume: Bool = false, quiet: Bool = false,
        log everyRank: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    ) throws -> Stage2Outcome {
        // Under an MPI launcher: rank 0 alone logs and writes (see Stage2DataParallel.swift).
        let communicator = try Communicator.world()
        let isRoot = (communicator?.rank ?? 0) == 0
        let log: (String) -> Void = isRoot ? everyRank : { _ in }
        guard let dataList = config.settings.run.dataList else {
            throw Stage2Error(
                "stage 2 needs data_list: the images whose stage-1 features to train on (set data_list in the config or --set data_list=PATH)")
        }
        let featureRoot = URL(fileURLWithPath: config.settings.run.outputDir)
        let model = config.settings.run.model
        let targetTree = config.settings.stage2.targets == .srt ? FeatureTree.srt : FeatureTree.denoised
        let train = try FeaturePairIndex.build(
            list: dataList, dataRoot: config.settings.run.dataRoot, featureRoot: featureRoot,
            model: model, targetTree: targetTree)
        log(train.summary(label: "stage2 train (\(dataList))"))
        guard let first = train.pairs.first else {
            let example = train.missing.first.map { " (e.g. \($0.files.joined(separator: ", ")) does not exist)" } ?? ""
            throw Stage2Error(
                "stage 2 found no feature pairs under \(featureRoot.path)/{\(FeatureTree.raw),\(targetTree)}/\(model)/ for the \(train.missing.count) images of \(dataList)\(example); run stage 1\(targetTree == FeatureTree.srt ? " and SRT" : "") first"
            )
        }
        var validation: FeaturePairIndex?
        if let valList = config.settings.run.valList {
            let v = try FeaturePairIndex.build(
                list: valList, dataRoot: config.settings.run.dataRoot, featureRoot: featureRoot,
                model: model, targetTree: targetTree)
            log(v.summary(label: "stage2 val (\(valList))"))
            validation = v
        }

        // The native grid and width come from the data (DVT: from input_size, stride and patch size).
        let (h, w, c) = try FeatureMapReader.shape(of: first.raw)
        let targetShape = try FeatureMapReader.shape(of: first.target)
        guard targetShape == (h, w, c) else {
            throw Stage2Error("\(first.name): raw map is (\(h), \(w), \(c)) but its target \(first.target.path) is \(targetShape)")
        }
        let dconfig = DenoiserConfig(
            dim: c, grid: (h, w), numBlocks: config.settings.stage2.numBlocks,
            enablePE: config.settings.stage2.enablePe)
        let seed = UInt64(config.settings.run.seed)
        let denoiser = try Denoiser(config: dconfig, seed: seed)
        denoiser.precision = config.settings.run.precision  // products only; weights and AdamW stay fp32
        let task = try Stage2Task(
            denoiser: denoiser, train: train.pairs, validation: validation?.pairs ?? [],
            batchSize: config.settings.stage2.batchSize, seed: seed)
        let runDir = runDirectory(config: config)
        try FileManager.default.createDirectory(at: runDir, withIntermediateDirectories: true)
        if isRoot {
            for path in AtomicFile.removeStaleTemporaries(under: runDir) { log("removed a partial file left by a killed run: \(path)") }
            try AtomicFile.write(Data(config.yaml.utf8), to: runDir.appendingPathComponent("resolved.yaml"))
        }

        let optim = optimizerSettings(config: config)
        let trainer = Trainer(
            task: task, optimizer: optim, loop: loopSettings(config: config),
            runDirectory: runDir, label: "stage2", quiet: quiet)
        trainer.log = log
        let averager = try communicator.map { try attachDataParallel($0, task: task, trainer: trainer, log: everyRank) }
        let prov = provenance(config: config)
        trainer.configJSON = try checkpointJSON(config: config, denoiser: dconfig, provenance: prov)
        log(
            String(
                format:
                    "stage2: denoiser %d block(s), C %d, %d heads, grid %dx%d, pos_embed %@, %d parameters, %@ products; AdamW lr %.3g (base %.3g · sqrt(%d/256)), warmup %d of %d steps",
                dconfig.numBlocks, c, dconfig.numHeads, h, w, dconfig.enablePE ? "on" : "off", denoiser.parameterCount,
                denoiser.precision.rawValue,
                optim.lr, config.settings.stage2.baseLR, task.batchSize, optim.warmupIters, config.settings.stage2.numIters))

        if resume, let latest = trainer.latestCheckpoint, !FileManager.default.fileExists(atPath: latest.path) {
            log("stage2: --resume given but \(latest.path) does not exist; starting at step 0")
        }
        let summary = try trainer.run(resume: resume)
        if let averager, averager.steps > 0 {
            log(
                String(
                    format: "stage2: %d ranks; MPI_Allreduce took %.1f ms per step, %.1f%% of the %.1f ms step",
                    averager.communicator.size, 1000 * averager.allreduceSeconds / Double(averager.steps),
                    100 * averager.allreduceSeconds / Double(averager.steps) / (summary.msPerStep / 1000), summary.msPerStep))
        }
        if let id = task.identityBaseline, let loss = summary.lastValidation["loss"], let cos = summary.lastValidation["cos"] {
            log(
                String(
                    format: "stage2: validation loss %.5f (identity %.5f), cosine %.4f (identity %.4f): the denoiser %@ the identity baseline",
                    loss, id.loss, cos, id.cos, loss < id.loss ? "beats" : "does NOT beat"))
        }
        let out = runDir.appendingPathComponent("denoiser.safetensors")
        let curve = runDir.appendingPathComponent("loss_curve.png")
        guard isRoot else {
            return Stage2Outcome(summary: summary, runDirectory: runDir, denoiserFile: out, lossCurve: curve, train: train, validation: validation)
        }
        // The curve first: denoiser.safetensors marks stage 2 done (`dvt run` then skips it), so a
        // kill between the two writes must not leave a finished run without its curve.
        try writeLossCurve(runDirectory: runDir)
        log("stage2: wrote \(curve.path)")
        try denoiser.export(to: out, provenance: prov.merging(["steps": String(summary.steps)]) { $1 })
        log("stage2: wrote \(out.path)")
        return Stage2Outcome(
            summary: summary, runDirectory: runDir, denoiserFile: out, lossCurve: curve,
            train: train, validation: validation)
    }

    /// Renders `loss_curve.png` of a run folder from its `metrics.jsonl`; returns its path.
    @discardableResult
    public static func writeLossCurve(runDirectory runDir: URL) throws -> URL {
        let curve = runDir.appendingPathComponent("loss_curve.png")
        let history = try LossCurve.read(metrics: runDir.appendingPathComponent("metrics.jsonl"))
        try LossCurve.render(history, title: "stage 2").write(to: curve)
        return curve
    }

    /// The JSON stored in every checkpoint's metadata: the resolved config, the denoiser's
    /// architecture and the feature provenance (what `dvt export` needs).
    static func checkpointJSON(config: ResolvedConfig, denoiser: DenoiserConfig, provenance: [String: String]) throws -> String {
        var values: [String: Any] = [:]
        for (k, v) in config.values {
            switch v {
            case .int(let x): values[k] = x
            case .double(let x): values[k] = x
            case .bool(let x): values[k] = x
            case .string(let x): values[k] = x
            case .ints(let x): values[k] = x
            case .null: values[k] = NSNull()
            }
        }
        let arch = try JSONSerialization.jsonObject(with: JSONEncoder().encode(denoiser))
        let obj: [String: Any] = ["config": values, "denoiser": arch, "provenance": provenance]
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// `dvt export`: the denoiser weights of a stage-2 checkpoint in the official layout, with
    /// the architecture and provenance in the metadata (safetensors), or as the official .pth
    /// {"denoiser": state dict}. Returns the loaded denoiser.
    @discardableResult
    public static func export(checkpoint: URL, to out: URL, format: DenoiserFileFormat = .safetensors) throws -> Denoiser {
        let (denoiser, provenance) = try loadCheckpoint(checkpoint)
        try denoiser.export(to: out, format: format, provenance: provenance)
        return denoiser
    }

    /// The denoiser of a stage-2 training checkpoint and the run's provenance (ViT model, layer,
    /// input size, steps) recorded in it.
    public static func loadCheckpoint(_ checkpoint: URL) throws -> (Denoiser, provenance: [String: String]) {
        let file = try SafeTensorsFile(url: checkpoint)
        var dict: [String: Tensor] = [:]
        for key in file.keys where key.hasPrefix("model.") { dict[String(key.dropFirst(6))] = try file.tensor(key) }
        guard !dict.isEmpty else {
            throw Stage2Error(
                "\(checkpoint.path) has no model.* tensors: not a dvt training checkpoint (keys: \(file.keys.prefix(5).joined(separator: ", ")))")
        }
        var metadata: [String: String] = [:]
        var provenance: [String: String] = [:]
        if let json = file.metadata["config"], let obj = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] {
            if let arch = obj["denoiser"], let data = try? JSONSerialization.data(withJSONObject: arch),
                let d = try? JSONDecoder().decode(DenoiserConfig.self, from: data)
            {
                metadata = [
                    "noise_map_height": String(d.gridHeight), "noise_map_width": String(d.gridWidth),
                    "num_heads": String(d.numHeads),
                ]
            }
            provenance = obj["provenance"] as? [String: String] ?? [:]
        }
        if let step = file.metadata["step"] { provenance["steps"] = step }
        return (try Denoiser(stateDict: dict, metadata: metadata, source: checkpoint.path), provenance)
    }
}
