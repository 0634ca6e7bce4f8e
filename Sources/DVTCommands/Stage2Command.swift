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
    struct Stage2: ParsableCommand {
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
        @Flag(help: "No progress lines.")
        var quiet = false
        @OptionGroup var compute: ComputeOptions

        func run() throws {
            compute.apply()
            let cfg = try ConfigSchema.load(file: URL(fileURLWithPath: config), overrides: overrides)
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

    /// `dvt export CHECKPOINT --out FILE`: denoiser weights in the official DVT layout.
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Write a stage-2 checkpoint's denoiser in the official DVT layout (pos_embed, denoiser.*) as safetensors or as an official .pth.")

        @Argument(help: "A stage-2 checkpoint (OUTPUT_DIR/stage2/checkpoints/*.safetensors).")
        var checkpoint: String
        @Option(help: "Output file.")
        var out: String
        @Option(help: "safetensors, or pth: {\"denoiser\": state dict} for the official code (torch.load(path, weights_only=True)). Default: pth for a .pth/.pt --out, else safetensors.")
        var format: String?

        func run() throws {
            let fmt = try DenoiserFileFormat.forOutput(URL(fileURLWithPath: out), explicit: format)
            let d = try Stage2Runner.export(checkpoint: URL(fileURLWithPath: checkpoint), to: URL(fileURLWithPath: out), format: fmt)
            let c = d.config
            print("wrote \(out): \(c.numBlocks) block(s), C \(c.dim), grid \(c.gridHeight)x\(c.gridWidth), pos_embed \(c.enablePE ? "on" : "off"), \(d.parameterCount) parameters")
        }
    }

    /// `dvt denoise`: apply a trained denoiser to images (through the ViT) or to feature maps.
    struct Denoise: ParsableCommand {
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
            compute.apply()
            let model = try DVT.Denoiser.load(URL(fileURLWithPath: denoiser))
            let outDir = URL(fileURLWithPath: out)
            try FileErrors.createDirectory(outDir)
            let t0 = Date()
            let (done, bad) = images != nil ? try denoiseImages(model, outDir) : try denoiseFeatures(model, outDir)
            let dt = Date().timeIntervalSince(t0)
            print(String(format: "denoised %d maps into %@ (%.2f maps/s)", done, outDir.path, dt > 0 ? Double(done) / dt : 0))
            if !bad.isEmpty {
                var msg = "\(bad.count) input(s) could not be processed:\n"
                for (name, why) in bad { msg += "  \(name): \(why)\n" }
                FileHandle.standardError.write(Data(msg.utf8))
                throw ExitCode(1)
            }
        }

        typealias Failures = [(String, String)]

        func write(_ map: Tensor, _ rel: String, _ outDir: URL) throws {
            let url = outDir.appendingPathComponent(rel + ".npy")
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Npy.write(map, to: url)
        }

        /// The --vis strip of one map. A strip that cannot be drawn (e.g. fewer than 3 tokens
        /// for the PCA) is a warning, not a failed input: the features were written.
        func writeVisual(raw: Tensor, denoised: Tensor, image: URL?, _ rel: String, _ outDir: URL) {
            do {
                let strip = try Denoise.strip(raw: raw, denoised: denoised, image: try image.map { try RGBImage(contentsOf: $0) })
                try Visuals.write(strip, to: outDir.appendingPathComponent("vis").appendingPathComponent(rel + ".png"))
            } catch {
                FileHandle.standardError.write(Data("warning: no visual for \(rel): \(error)\n".utf8))
            }
        }

        /// [image |] raw PCA | denoised PCA | raw norms | denoised norms, one token per square.
        /// The PCA basis is fitted on the denoised map and colours both, as DVT's training
        /// visuals do, so what the artifacts did to the raw map shows against a clean basis.
        static func strip(raw: Tensor, denoised: Tensor, image: RGBImage?) throws -> RGBImage {
            let pca = try FeaturePCA(fitting: denoised)
            let (dh, dw) = Visuals.displaySize(height: raw.shape[0], width: raw.shape[1])
            var tiles = [pca.image(raw), pca.image(denoised), Visuals.normHeatmap(raw), Visuals.normHeatmap(denoised)]
                .map { Visuals.upsampleNearest($0, width: dw, height: dh) }
            if let image { tiles.insert(image.resized(width: dw, height: dh), at: 0) }
            return Visuals.hstrip(tiles)
        }

        func denoiseImages(_ model: DVT.Denoiser, _ outDir: URL) throws -> (Int, Failures) {
            let items = try ImageSource.items(from: images!, root: dataRoot)
            let vit = try backbone.load()
            if let seed = vit.randomInitSeed {
                // The .npy maps cannot carry the warning themselves; the folder does.
                try Data((VisionTransformer.randomWeightsWarning(seed: seed) + "\n").utf8)
                    .write(to: outDir.appendingPathComponent("RANDOM_WEIGHTS_WARNING.txt"))
            }
            if let trained = try WeightFiles.metadata(URL(fileURLWithPath: denoiser))["vit_model"], trained != vit.config.name {
                FileHandle.standardError.write(Data("warning: the denoiser was trained on \(trained) features, but --arch is \(vit.config.name)\n".utf8))
            }
            guard vit.config.embedDim == model.config.dim else {
                throw ValidationError("the denoiser takes \(model.config.dim)-channel features but \(vit.config.name) has \(vit.config.embedDim) channels")
            }
            let layer = try vit.resolveLayer(backbone.layer)
            let (h, w) = try backbone.checkedInputSize(for: vit, batch: batch)
            let (gh, gw) = vit.grid(height: h, width: w, stride: backbone.stride)
            if gh != model.config.gridHeight || gw != model.config.gridWidth {
                FileHandle.standardError.write(Data("note: feature grid \(gh)x\(gw) differs from the denoiser's \(model.config.gridHeight)x\(model.config.gridWidth); its position embedding is resampled bicubically\n".utf8))
            }
            let progress = Progress(total: items.count, label: "denoise")
            var bad: Failures = []
            var done = 0
            var pending: [(Tensor, ImageItem)] = []
            func flush() throws {
                guard !pending.isEmpty else { return }
                let x = Tensor.concat(pending.map { $0.0.reshape([1, 3, h, w]) }, axis: 0)  // (B, 3, H, W)
                let feats = vit.features(x, layers: [layer], stride: backbone.stride)[layer]!.patch  // (B, Gh, Gw, C)
                let y = model.denoise(feats)                                                          // (B, Gh, Gw, C)
                let c = model.config.dim
                for (i, (_, item)) in pending.enumerated() {
                    let denoised = y.slice(axis: 0, i..<(i + 1)).reshape([gh, gw, c])  // (Gh, Gw, C)
                    try write(denoised, item.relativeStem, outDir)
                    if vis {
                        writeVisual(raw: feats.slice(axis: 0, i..<(i + 1)).reshape([gh, gw, c]), denoised: denoised,
                                    image: item.url, item.relativeStem, outDir)
                    }
                }
                done += pending.count
                progress.advance(pending.count)
                pending.removeAll()
            }
            for item in items {
                do {
                    pending.append((try vit.preprocess(item.url, height: h, width: w), item))
                } catch {
                    bad.append((item.url.path, "\(error)"))
                    progress.advance(1, note: "skipped \(item.relativeStem)")
                }
                if pending.count == batch { try flush() }
            }
            try flush()
            return (done, bad)
        }

        func denoiseFeatures(_ model: DVT.Denoiser, _ outDir: URL) throws -> (Int, Failures) {
            let root = URL(fileURLWithPath: features!).standardizedFileURL
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDir), isDir.boolValue else {
                throw ValidationError("--features \(features!) is not a folder")
            }
            var files: [(URL, String)] = []
            let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
            while let f = e?.nextObject() as? URL {
                guard f.pathExtension.lowercased() == "npy" else { continue }
                var rel = f.standardizedFileURL.path
                if rel.hasPrefix(root.path + "/") { rel.removeFirst(root.path.count + 1) }
                files.append((f, (rel as NSString).deletingPathExtension))
            }
            files.sort { $0.1 < $1.1 }
            guard !files.isEmpty else { throw ValidationError("no .npy files under \(root.path)") }
            let progress = Progress(total: files.count, label: "denoise")
            var bad: Failures = []
            var done = 0
            var pending: [(Tensor, String)] = []
            func flush() throws {
                guard let first = pending.first?.0 else { return }
                let x = pending.count == 1 ? first : Tensor.concat(pending.map(\.0), axis: 0)  // (B, H, W, C)
                let y = model.denoise(x)                                                        // (B, H, W, C)
                let s = Array(first.shape.dropFirst())
                for (i, (map, rel)) in pending.enumerated() {
                    let denoised = y.slice(axis: 0, i..<(i + 1)).reshape(s)  // (H, W, C)
                    try write(denoised, rel, outDir)
                    if vis { writeVisual(raw: map.reshape(s), denoised: denoised, image: nil, rel, outDir) }
                }
                done += pending.count
                progress.advance(pending.count)
                pending.removeAll()
            }
            for (url, rel) in files {
                let map: Tensor
                do {
                    let t = try Npy.read(url)
                    let s = t.rank == 4 && t.shape[0] == 1 ? Array(t.shape.dropFirst()) : t.shape
                    guard s.count == 3, s[2] == model.config.dim, s[0] > 0, s[1] > 0 else {
                        throw Stage2Error("shape \(t.shape), expected (H, W, \(model.config.dim))")
                    }
                    map = t.reshape([1] + s)  // (1, H, W, C)
                    // One NaN used to turn the whole output map NaN with exit 0.
                    try t.requireFinite(url.path)
                } catch let e as NonFiniteError where skipNonFinite {
                    FileHandle.standardError.write(Data("warning: skipped \(e)\n".utf8))
                    progress.advance(1, note: "skipped \(rel)")
                    continue
                } catch {
                    bad.append((url.path, "\(error)"))
                    progress.advance(1, note: "skipped \(rel)")
                    continue
                }
                // A batch holds maps of one grid.
                if let p = pending.first?.0, p.shape != map.shape { try flush() }
                pending.append((map, rel))
                if pending.count == batch { try flush() }
            }
            try flush()
            return (done, bad)
        }
    }
}

extension DVTCommand.BenchCommand {
    /// `dvt bench denoiser`: the stage-2 training step vs PyTorch, and inference throughput.
    struct DenoiserBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "denoiser",
            abstract: "Stage-2 denoiser: training step (real Denoiser + loss + AdamW) vs PyTorch, and inference maps/s.")
        @OptionGroup var compute: ComputeOptions
        @OptionGroup var ref: ReferenceOptions
        @Option var steps = 10

        func run() throws {
            compute.apply()
            print("threads: \(Parallel.threads)")
            for (dim, grid, batch) in [(384, 16, 8), (768, 37, 1)] {
                let ours = try Bench.stage2Step(dim: dim, grid: grid, batch: batch, steps: steps)
                var line = String(format: "stage-2 train step C %d grid %d batch %d: %.2f ms", dim, grid, batch, 1000 * ours)
                if let runner = ref.runner {
                    let theirs = try runner.run(["stage2-bench", "--dim", "\(dim)", "--grid", "\(grid)", "--batch", "\(batch)",
                                                 "--steps", "\(steps)"], key: "ms_per_step") / 1000
                    line += String(format: "  torch %.2f ms  torch/ours %.2fx", 1000 * theirs, theirs / ours)
                }
                print(line)
                let maps = try Bench.stage2MapsPerSecond(dim: dim, grid: grid, batch: batch, steps: steps)
                print(String(format: "stage-2 inference C %d grid %d batch %d: %.1f maps/s", dim, grid, batch, maps))
            }
        }
    }
}
