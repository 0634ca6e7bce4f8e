import Foundation
import TensorCore

// The reports of `dvt bench engine`, `vit` and `srt`: the measurements and their printed lines,
// each side by side with the PyTorch reference when one is given (docs/speed.md).

extension TorchReference {
    /// Whether the script is scripts/torch_bench.py (which has --precision and stage2-infer).
    public var knowsPrecision: Bool { script.hasSuffix("torch_bench.py") }

    public func precisionArguments(_ p: Precision) -> [String] { knowsPrecision ? ["--precision", p.rawValue] : [] }
}

extension Bench {
    /// Engine kernels: the measured per-core peak, single products against it, the engine's
    /// matmul against raw cblas, layernorm, attention, Adam and a stage-2 block step.
    public static func engineReport(reference: TorchReference?, log: (String) -> Void) throws {
        log("threads: \(Parallel.threads), load \(Bench.loadAverage)")
        let peak = Backends.measuredPeak()
        log(
            String(
                format: "measured per-core peak: fp32 %.1f GFLOP/s (%@ FMA loop), bf16 %@", peak.fp32, peak.fp32ISA,
                peak.bf16.map { String(format: "%.1f GFLOP/s (vdpbf16ps loop)", $0) } ?? "n/a (no AVX512_BF16)"))
        log("one product on one core (GFLOP/s; % of the measured peak):")
        log("  shape (M×K×N)      oneDNN fp32     oneDNN bf16     OpenBLAS fp32")
        for (m, k, n) in [(2056, 384, 1536), (1370, 768, 3072), (1370, 3072, 768)] {
            let flops = 2 * Double(m * k * n)
            func cell(_ library: String, _ p: Precision, _ ref: Double?) -> String {
                guard let ref, ref > 0 else { return "n/a" }
                let g = flops / Backends.productSeconds(m: m, n: n, k: k, library: library, precision: p, repeats: 3) / 1e9
                return String(format: "%6.1f (%3.0f%%)", g, 100 * g / ref)
            }
            let bf16 = Backends.oneDNNImplementation(m: m, n: n, k: k, bf16: true) != nil ? cell("onednn", .bf16, peak.bf16) : "n/a"
            log(
                "  " + "\(m)×\(k)×\(n)".padding(toLength: 18, withPad: " ", startingAt: 0)
                    + [cell("onednn", .fp32, peak.fp32), bf16, cell("openblas", .fp32, peak.fp32)]
                    .map { $0.padding(toLength: 16, withPad: " ", startingAt: 0) }.joined())
        }
        log("matmul, forward + both backward products (GFLOP/s; raw = the same 3 cblas_sgemm calls):")
        for (m, k, n) in [(2048, 2048, 2048), (2048, 128, 192), (2048, 192, 384)] {
            let r = Bench.matmul(m: m, k: k, n: n, rounds: m * k * n > 1 << 30 ? 3 : 15)
            log(String(format: "  %-16@ raw %7.1f  engine %7.1f  engine/raw %.3f", r.label as NSString, r.rawGflops, r.engineGflops, r.ratio))
        }
        log(String(format: "layernorm fwd+bwd (8, 256, 384): %.3f ms", 1000 * Bench.layerNorm()))
        log(String(format: "attention fwd+bwd (8, 256, 384), 6 heads: %.3f ms", 1000 * Bench.attention()))
        log(String(format: "Adam step, 10M parameters: %.2f ms", 1000 * Bench.adamStep()))
        for (dim, grid, batch) in [(384, 16, 8), (768, 37, 1)] {
            let ours = Bench.denoiserStep(dim: dim, grid: grid, batch: batch)
            let ph = Bench.lastDenoiserPhases.map { 1000 * $0 }
            var line = String(
                format: "stage-2 block step dim %d grid %d batch %d: %.2f ms (fwd %.1f, bwd %.1f, AdamW %.1f)",
                dim, grid, batch, 1000 * ours, ph[0], ph[1], ph[2])
            if let runner = reference {
                let theirs =
                    try runner.run(
                        ["stage2-bench", "--dim", "\(dim)", "--grid", "\(grid)", "--batch", "\(batch)"],
                        key: "ms_per_step") / 1000
                line += String(format: "  torch %.2f ms  speed-up %.2fx", 1000 * theirs, theirs / ours)
            }
            log(line)
        }
    }

    /// ViT feature extraction throughput (random weights) and its fraction of the measured peak.
    public static func vitReport(
        arch: String, size: Int, batch: Int, steps: Int, precision: Precision, reference: TorchReference?,
        log: (String) -> Void
    ) throws {
        log("threads: \(Parallel.threads), precision \(precision.rawValue), load \(Bench.loadAverage)")
        let ours = try Bench.vitImagesPerSecond(arch: arch, size: size, batch: batch, steps: steps, precision: precision)
        var line = String(
            format: "%@ %dx%d batch %d %@: %.2f images/s", arch as NSString, size, size, batch,
            precision.rawValue, ours)
        // The fraction of the machine's peak, measured right after the forwards.
        let peak = Backends.measuredPeak()
        if let perCore = precision == .bf16 ? peak.bf16 : peak.fp32, perCore > 0 {
            let flops = try Bench.vitForwardFLOPs(arch: arch, size: size, batch: batch)
            let rate = flops * ours / Double(batch) / 1e9
            line += String(
                format: " (%.3f s a forward, %.1f GFLOP; %.0f GFLOP/s = %.1f%% of the measured peak %d × %.1f)",
                Double(batch) / ours, flops / 1e9, rate, 100 * rate / (perCore * Double(Parallel.threads)),
                Parallel.threads, perCore)
        }
        if let runner = reference {
            let torchArch = arch.split(separator: ".").first.map(String.init) ?? arch
            let theirs = try runner.run(
                [
                    "vit-bench", "--arch", torchArch, "--size", "\(size)", "--batch", "\(batch)",
                    "--steps", "\(steps)",
                ] + runner.precisionArguments(precision), key: "images_per_s")
            line += String(format: "  torch %.2f images/s  ratio %.2fx", theirs, ours / theirs)
        }
        log(line)
    }

    /// Seconds per image of one SRT ensemble (pixel path and fast path).
    public static func srtReport(
        arch: String, size: Int, dx: Int, dy: Int, batch: Int, rounds: Int, parallelViews: Bool,
        reference: TorchReference?, log: (String) -> Void
    ) throws {
        let r = try Bench.srt(arch: arch, size: size, dx: dx, dy: dy, batch: batch, rounds: rounds, parallelViews: parallelViews)
        log(
            String(
                format: "SRT %@ %dx%d dx %d dy %d: %d views, %d forwards (the repeated unshifted view is reused)",
                arch as NSString, size, size, dx, dy, r.views, r.forwardCount))
        log(
            String(
                format: "forwards %.2f s; aggregation to tokens: pixel path %.3f s, fast %.3f s",
                r.forwards, r.pixelAggregate, r.fastAggregate))
        var line = String(format: "seconds per image: pixel path %.2f  fast %.2f", r.pixel, r.fast)
        if let runner = reference {
            let torchArch = arch.split(separator: ".").first.map(String.init) ?? arch
            let theirs = try runner.run(
                [
                    "srt-bench", "--arch", torchArch, "--size", "\(size)", "--dx", "\(dx)", "--dy", "\(dy)",
                    "--batch", "\(batch)",
                ], key: "seconds_per_image")
            line += String(format: "  torch %.2f  speed-up pixel %.2fx  fast %.2fx", theirs, theirs / r.pixel, theirs / r.fast)
        }
        log(line)
    }

    /// `dvt bench denoiser`: the stage-2 training step and inference throughput at two sizes
    /// (ViT-S/14 224² and ViT-B/14 518² maps), each next to PyTorch's when `reference` is given.
    public static func denoiserReport(
        steps: Int, precision: Precision, reference: TorchReference?, log: (String) -> Void
    ) throws {
        log("threads: \(Parallel.threads), precision \(precision.rawValue), load \(Bench.loadAverage)")
        for (dim, grid, batch) in [(384, 16, 8), (768, 37, 1)] {
            let ours = try Bench.stage2Step(dim: dim, grid: grid, batch: batch, steps: steps, precision: precision)
            var line = String(format: "stage-2 train step C %d grid %d batch %d: %.2f ms", dim, grid, batch, 1000 * ours)
            let args = ["--dim", "\(dim)", "--grid", "\(grid)", "--batch", "\(batch)", "--steps", "\(steps)"]
            if let runner = reference {
                let theirs = try runner.run(["stage2-bench"] + args + runner.precisionArguments(precision), key: "ms_per_step") / 1000
                line += String(format: "  torch %.2f ms  torch/ours %.2fx", 1000 * theirs, theirs / ours)
            }
            log(line)
            let maps = try Bench.stage2MapsPerSecond(dim: dim, grid: grid, batch: batch, steps: steps, precision: precision)
            line = String(format: "stage-2 inference C %d grid %d batch %d: %.1f maps/s", dim, grid, batch, maps)
            if let runner = reference, runner.knowsPrecision {
                let theirs = try runner.run(["stage2-infer"] + args + runner.precisionArguments(precision), key: "maps_per_s")
                line += String(format: "  torch %.1f maps/s  ours/torch %.2fx", theirs, maps / theirs)
            }
            log(line)
        }
    }
}
