import ArgumentParser
import Bench
import DVT
import Formats
import Foundation
import Jobs
import Settings
import TensorCore
import Training
import Vision

extension DVTCommand {
    /// `dvt stage2 CONFIG`: train the generalizable denoiser on stage-1 (or SRT) feature pairs.
    struct Stage2: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "stage2",
            abstract: "Train DVT's generalizable denoiser on the feature pairs of stage 1 (or SRT).",
            discussion: """
                Reads OUTPUT_DIR/raw_features/<model>/<image>.npy and OUTPUT_DIR/denoised_features/<model>/<image>.npy \
                (or srt_features with stage2.targets=srt) for the images of data_list (and val_list for validation). \
                Writes OUTPUT_DIR/stage2/: resolved.yaml, metrics.jsonl, checkpoints/, denoiser.safetensors, loss_curve.png.
                """)

        @Argument(help: "YAML configuration (docs/config.md lists every key).")
        var config: String
        @Option(name: .customLong("set"), parsing: .upToNextOption, help: "Override config keys: --set stage2.num_iters=200 seed=3")
        var overrides: [String] = []
        @Flag(help: "Continue from OUTPUT_DIR/stage2/checkpoints/latest.safetensors (bit-exact).")
        var resume = false
        @Option(help: "fp32 or bf16 operands in the denoiser's products (config key precision); weights and AdamW state stay fp32.")
        var precision: Precision?
        @Flag(help: "No progress lines.")
        var quiet = false
        @OptionGroup var compute: ComputeOptions

        func run() throws {
            var cfg = try ConfigSchema.load(file: URL(fileURLWithPath: config), overrides: overrides)
            if let precision { try cfg.set("precision", value: precision.configValue) }
            let outcome: Stage2Outcome
            do { outcome = try Stage2Runner.run(config: cfg, resume: resume, quiet: quiet) } catch {
                Stage2Runner.abortOtherRanksIfParallel(after: error)
                throw error
            }
            guard Stage2Runner.isRootProcess else { return }  // MPI ranks > 0 report nothing
            let s = outcome.summary
            var line = String(format: "stage2 done: %d steps, final loss %.5f, %.1f ms/step", s.steps, s.finalLoss, s.msPerStep)
            if let v = s.lastValidation["loss"], let id = s.lastValidation["identity_loss"] {
                line += String(format: ", val loss %.5f (identity %.5f)", v, id)
            }
            print(line)
            print("denoiser: \(outcome.denoiserFile.path)")
            print("loss curve: \(outcome.lossCurve.path)")
        }
    }

    /// `dvt export CHECKPOINT --out FILE`: a denoiser in the official DVT layout, or as ONNX.
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract:
                "Write a denoiser in the official DVT layout (pos_embed, denoiser.*) as safetensors or an official .pth, or as an ONNX graph (docs/formats.md)."
        )

        @Argument(
            help:
                "A stage-2 checkpoint (OUTPUT_DIR/stage2/checkpoints/*.safetensors), or any denoiser file --denoiser reads (an exported .safetensors, an official .pth)."
        )
        var checkpoint: String
        @Option(help: "Output file.")
        var out: String
        @Option(
            help:
                "safetensors, pth ({\"denoiser\": state dict} for the official code, torch.load(path, weights_only=True)), or onnx (opset 18: features (B, H, W, C) -> denoised, any H, W). Default: from the --out extension (.onnx, .pth/.pt, else safetensors)."
        )
        var format: String?

        func run() throws {
            let out = URL(fileURLWithPath: out)
            let fmt = try DenoiserExport.format(for: out, explicit: format)
            let d = try DenoiserExport.run(source: URL(fileURLWithPath: checkpoint), out: out, format: fmt, toolkit: "dvt \(DVTVersion.string)")
            let c = d.config
            print(
                "wrote \(out.path) (\(fmt.rawValue)): \(c.numBlocks) block(s), C \(c.dim), grid \(c.gridHeight)x\(c.gridWidth), pos_embed \(c.enablePE ? "on" : "off"), \(d.parameterCount) parameters"
            )
        }
    }

    /// `dvt export-extractor`: ViT + denoiser as one ONNX graph.
    struct ExportExtractor: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export-extractor",
            abstract:
                "Write one ONNX graph from an image to its denoised ViT features: normalisation, patch embedding, blocks up to --layer, final norm, denoiser (docs/formats.md).",
            discussion: """
                The graph's input `image` is (B, 3, H, W) float32 RGB in [0, 1], already resized (dvt resizes with \
                Pillow's bicubic before the network); outputs `denoised` and `raw_features`, (B, Gh, Gw, C). \
                --size fixes H and W in the graph; without it they are dynamic. Families with rotary position \
                embeddings (EVA-02, DINOv3) are refused.
                """)

        @OptionGroup var backbone: BackboneOptions
        @Option(help: "Denoiser weights: a stage-2 checkpoint, an exported .safetensors, or an official .pth.")
        var denoiser: String
        @Option(help: "Output .onnx file.")
        var out: String

        func run() throws {
            let vit = try backbone.load()
            let job = ExtractorExport(
                model: vit, weights: backbone.weights.map { URL(fileURLWithPath: $0) }, layer: try vit.resolveLayer(backbone.layer),
                stride: backbone.stride, inputSize: backbone.size.count == 2 ? (backbone.size[0], backbone.size[1]) : nil,
                denoiserFile: URL(fileURLWithPath: denoiser))
            let d = try job.run(out: URL(fileURLWithPath: out), toolkit: "dvt \(DVTVersion.string)")
            print(
                "wrote \(out) (onnx): \(vit.config.name) blocks 0...\(job.layer) + denoiser (C \(d.config.dim), grid \(d.config.gridHeight)x\(d.config.gridWidth))"
            )
            if let seed = vit.randomInitSeed { print(VisionTransformer.randomWeightsWarning(seed: seed)) }
        }
    }

    /// `dvt denoise`: apply a trained denoiser to images (through the ViT) or to feature maps.
    struct Denoise: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "denoise",
            abstract: "Denoise ViT features of new images (--images) or saved (H, W, C) feature maps (--features) with a trained denoiser.",
            discussion: """
                Outputs mirror the input tree: OUT/<relative path>.npy, each (H, W, C) float32. Images or maps \
                that cannot be read are reported, listed at the end, and make the exit status nonzero. \
                --vis adds OUT/vis/<relative path>.png: [image |] raw PCA | denoised PCA | raw norms | denoised norms.
                """)

        @Option(help: "Denoiser weights: .safetensors (official DVT layout, e.g. from `dvt export`) or an official .pth checkpoint.")
        var denoiser: String
        @Option(help: "Images: a VOC-style list file or a folder (needs the backbone options).")
        var images: String?
        @Option(name: .customLong("data-root"), help: "Folder the --images list entries are relative to (default: the list's folder).")
        var dataRoot: String?
        @Option(help: "A folder of (H, W, C) .npy feature maps (no ViT).")
        var features: String?
        @Option(help: "Output folder.")
        var out: String
        @Option(help: "Maps per forward pass.")
        var batch = 8
        @Flag(help: "With --features: leave out maps holding NaN or Inf with a warning, instead of failing them (exit status 1).")
        var skipNonFinite = false
        @Flag(help: "Also write OUT/vis/<path>.png: [image |] raw PCA | denoised PCA | raw norms | denoised norms.")
        var vis = false
        @OptionGroup var backbone: BackboneOptions
        @OptionGroup var compute: ComputeOptions

        func validate() throws {
            if (images == nil) == (features == nil) { throw ValidationError("give exactly one of --images LIST_OR_DIR and --features DIR") }
            if batch < 1 { throw ValidationError("--batch must be >= 1, got \(batch)") }
        }

        func run() throws {
            let model = try DVT.Denoiser.load(URL(fileURLWithPath: denoiser))
            model.precision = backbone.precision
            var job = DenoiseJob(denoiser: model, output: URL(fileURLWithPath: out))
            job.batchSize = batch
            job.visualize = vis
            job.skipNonFinite = skipNonFinite
            let report: JobReport
            if let images {
                let vit = try backbone.load()
                let trained = try WeightFiles.metadata(URL(fileURLWithPath: denoiser))["vit_model"]
                report = try job.run(
                    images: try ImageSource.items(from: images, root: dataRoot),
                    backbone: .init(
                        model: vit, layer: try vit.resolveLayer(backbone.layer), inputSize: try backbone.checkedInputSize(for: vit, batch: batch),
                        stride: backbone.stride, trainedOn: trained))
            } else {
                report = try job.run(features: URL(fileURLWithPath: features!))
            }
            print(
                String(
                    format: "denoised %d maps into %@ (%.2f maps/s, %@)", report.written, job.output.path,
                    report.seconds > 0 ? Double(report.written) / report.seconds : 0, backbone.precision.rawValue))
            if !report.failures.isEmpty {
                var msg = "\(report.failures.count) input(s) could not be processed:\n"
                for f in report.failures { msg += "  \(f.image): \(f.error)\n" }
                FileHandle.standardError.write(Data(msg.utf8))
                throw ExitCode(1)
            }
        }
    }
}

extension DVTCommand.BenchCommand {
    /// `dvt bench denoiser`: the stage-2 training step vs PyTorch, and inference throughput.
    struct DenoiserBench: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "denoiser",
            abstract: "Stage-2 denoiser: training step (real Denoiser + loss + AdamW) vs PyTorch, and inference maps/s.")
        @OptionGroup var compute: ComputeOptions
        @OptionGroup var ref: ReferenceOptions
        @Option var steps = 10
        @OptionGroup var precisionOption: BenchPrecisionOption

        func run() throws {
            try Bench.denoiserReport(
                steps: steps, precision: precisionOption.precision, reference: try ref.benchRunner(precision: precisionOption.precision),
                log: { print($0) })
        }
    }
}
