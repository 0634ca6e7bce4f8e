import ArgumentParser
import Bench
import Foundation
import TensorCore

extension DVTCommand.BenchCommand {
    /// `dvt bench stage1-image`: per-image wall time and peak memory of DVT's full stage-1
    /// recipe, from a measured slice.
    struct Stage1Image: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "stage1-image",
            abstract:
                "Per-image wall time and peak RSS of a stage-1 config (default Configs/dvt-default.yaml: ViT-B/14 518², 768 views, 25000 steps), measured on a slice and extrapolated.",
            discussion: """
                Runs VIEWS views (+ the whole image) through a random-weights ViT of the config's architecture and \
                STEPS stage-1 steps on one image, then prints the extrapolation to the config's num_views and num_iters \
                with the formula: time = forwards · (V_full + 1)/(V + 1) + fit · S_full/S; peak RSS = measured + \
                (V_full − V) · bytes per view (its features in stage1.view_features_dtype and its coordinates; pixels are \
                rendered eight views at a time). With --torch-python and \
                --reference, dvt_torch.py stage1 (or scripts/dvt_torch_fastgrid.py) then fits the same views with the \
                same settings, and its ms/step and the ratio are printed (its table takes dense Adam, DVT's).
                """)
        @OptionGroup var compute: ComputeOptions
        @OptionGroup var reference: ReferenceOptions
        @Argument(help: "Stage-1 config.") var config = "Configs/dvt-default.yaml"
        @Option(help: "Image (default: the first photo of the shared photos folder).") var image = "../shared/datasets/photos/chelsea.jpg"
        @Option(help: "Views in the slice.") var views = 64
        @Option(help: "Stage-1 steps in the slice.") var steps = 500
        @Option(help: "fp32 or bf16 products in the ViT and the fit (config key precision; DVT's --dtype).") var precision: Precision = .fp32
        @Option(help: "The fit's precision when it should differ from --precision (e.g. bf16 ViT, fp32 fit).") var fitPrecision: Precision?

        func validate() throws {
            if views < 1 || steps < 10 { throw ValidationError("--views must be >= 1 and --steps >= 10") }
        }

        func run() throws {
            print(
                "threads: \(Parallel.threads), precision \(precision.rawValue) (fit \((fitPrecision ?? precision).rawValue)), load \(Bench.loadAverage)"
            )
            let t = try Bench.stage1Image(
                config: URL(fileURLWithPath: config), image: URL(fileURLWithPath: image),
                views: views, steps: steps, precision: precision, fitPrecision: fitPrecision,
                reference: reference.runner)
            let gib = Double(1 << 30)
            print(
                String(
                    format: "slice: %d views + 1 in %.1f s (%.3f s per forward), %d steps in %.1f s (%.1f ms/step), peak RSS %.2f GiB",
                    t.viewsMeasured, t.viewSeconds, t.viewSeconds / Double(t.viewsMeasured + 1), t.stepsMeasured,
                    t.fitSeconds, 1000 * t.fitSeconds / Double(t.stepsMeasured), t.peakRSSBytes / gib))
            print(
                String(
                    format: "per image = %.1f s · (%d + 1)/(%d + 1) + %.1f s · %d/%d = %.0f s + %.0f s = %.1f min",
                    t.viewSeconds, t.viewsFull, t.viewsMeasured, t.fitSeconds, t.stepsFull, t.stepsMeasured,
                    t.fullViewSeconds, t.fullFitSeconds, t.perImageSeconds / 60))
            if let torch = t.torchMsPerStep {
                print(
                    String(
                        format: "fit: ours %.1f ms/step, torch %.1f ms/step (%@, fp32): speed-up %.2fx",
                        t.msPerStep, torch, (reference.reference ?? "") as NSString, torch / t.msPerStep))
            }
            print(
                String(
                    format: "peak RSS when the forwards had finished: %.2f GiB (the fit then set %@)", t.forwardPeakRSSBytes / gib,
                    (t.peakRSSBytes > t.forwardPeakRSSBytes ? String(format: "a new peak, %.2f GiB", t.peakRSSBytes / gib) : "no new peak")
                        as NSString))
            print(
                String(
                    format: "peak RSS ≈ %.2f GiB + (%d − %d) · %.1f MiB = %.2f GiB",
                    t.peakRSSBytes / gib, t.viewsFull, t.viewsMeasured, t.bytesPerView / Double(1 << 20), t.fullPeakRSSBytes / gib))
        }
    }
}
