import ArgumentParser
import Bench
import DVT
import Formats
import Foundation
import Jobs
import Settings
import Training
import Vision

extension DVTCommand {
    struct SRTCommand: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "srt",
            abstract: "Stochastic Resonance Transformer: average the features of sub-token shifts of each image.",
            discussion: """
                For every offset (i, j) in [-dy, dy] x [-dx, dx] pixels the image is translated (zero fill), \
                its features are upsampled to pixels (nearest), translated back and averaged (or the median \
                taken); the unshifted view counts twice as in the official SRT code unless --uniform. \
                Writes OUT/<image path>.npy (H', W', C) float32 for every image, mirroring the input tree, \
                and OUT/srt_run.json with the settings. Resolutions: token = the ViT token grid (the pixel \
                map average-pooled over each token cell), fine = --scale-factor times the token grid, \
                pixel = full resolution (token grid x stride). --fast computes token/fine mean outputs \
                directly from the token maps (same numbers, much less work). Images that fail are \
                reported, skipped and listed at the end, and the exit status is then 1.
                """)

        enum Resolution: String, ExpressibleByArgument, CaseIterable { case token, fine, pixel }

        @OptionGroup var backbone: BackboneOptions
        @OptionGroup var compute: ComputeOptions
        @Option(help: "Image list (VOC-style, first field a path) or directory (searched recursively for .jpg/.jpeg/.png).")
        var images: String
        @Option(help: "Folder list entries are relative to (default: the list's folder).")
        var root: String?
        @Option(help: "Output folder.")
        var out: String
        @Option(help: "Largest horizontal shift in pixels.") var dx = 3
        @Option(help: "Largest vertical shift in pixels.") var dy = 3
        @Option(help: "Output resolution: token, fine or pixel.") var resolution: Resolution = .token
        @Option(help: "With --resolution fine: outputs per token side (must divide the stride).") var scaleFactor = 2
        @Option(help: "How views are combined: mean or median.") var aggregate: SRTAggregate = .mean
        @Flag(help: "Weight every shift of the grid once (default: the unshifted view twice, as the official code).")
        var uniform = false
        @Flag(help: "Compute token/fine means on the token grid directly, without pixel maps (mean only).")
        var fast = false
        @Option(help: "Views per ViT forward.") var batchSize = 8
        @Flag(help: "One multi-threaded forward at a time (default: concurrent single-threaded forwards, one per core).")
        var serialViews = false
        @Flag(help: "Also write OUT/<image path>.png: raw PCA | SRT PCA (same basis) | norm of the difference.")
        var vis = false
        @Flag(help: "No progress line.") var quiet = false

        func validate() throws {
            if dx < 0 || dy < 0 { throw ValidationError("--dx and --dy must be >= 0, got \(dx), \(dy)") }
            if batchSize < 1 { throw ValidationError("--batch-size must be >= 1, got \(batchSize)") }
            if scaleFactor < 1 { throw ValidationError("--scale-factor must be >= 1, got \(scaleFactor)") }
            if fast && aggregate == .median { throw ValidationError("--fast has no median variant; drop --fast or use --aggregate mean") }
            if fast && resolution == .pixel { throw ValidationError("--fast skips the pixel map; use --resolution token or fine with it") }
        }

        func run() throws {
            let model = try backbone.load()
            var o = SRT.Options()
            o.dx = dx; o.dy = dy; o.uniform = uniform; o.batchSize = batchSize; o.parallelViews = !serialViews
            o.aggregate = aggregate
            o.layer = try model.resolveLayer(backbone.layer)
            o.stride = backbone.stride
            let srt = try SRT(model: model, options: o)
            let res: SRTResolution
            switch resolution {
            case .token: res = .token
            case .fine: res = .fine(scaleFactor: scaleFactor)
            case .pixel: res = .pixel
            }
            let (h, w) = try backbone.checkedInputSize(for: model, batch: batchSize)
            var job = SRTJob(srt: srt, resolution: res, height: h, width: w)
            job.fast = fast
            job.visualize = vis
            job.weightsPath = backbone.weights
            let items = try ImageSource.items(from: images, root: root)
            if items.isEmpty { throw ValidationError("no images found in \(images)") }
            let report = try job.run(items: items, outDir: URL(fileURLWithPath: out), showProgress: !quiet)
            let done = items.count - report.failures.count
            print(
                String(
                    format: "srt: %d of %d images written to %@ in %.1f s (%.2f s/image), %d views per image",
                    done, items.count, out as NSString, report.seconds, report.seconds / Double(max(items.count, 1)), srt.shifts.count))
            if let seed = model.randomInitSeed { print(VisionTransformer.randomWeightsWarning(seed: seed)) }
            if !report.failures.isEmpty {
                print("\(report.failures.count) image(s) failed and were skipped:")
                for f in report.failures { print("  \(f.image): \(f.error)") }
                throw ExitCode(1)
            }
        }
    }
}

extension SRTAggregate: ExpressibleByArgument {}
