import DVT
import Foundation
import NN
import TensorCore
import Vision

extension Bench {
    /// One `dvt bench finetune` measurement: a DVT stage-3 step's phases and the process peak.
    public struct FinetuneTiming: Sendable {
        /// Median seconds of a whole step (forward + loss, backward, AdamW).
        public var step: Double
        /// Mean forward, backward and optimiser seconds.
        public var forward: Double, backward: Double, optimizer: Double
        /// Peak resident set of this process after the steps, MiB (getrusage ru_maxrss).
        public var peakRSSMiB: Double
    }

    /// `dvt bench finetune`: our step's phases and peak RSS, then, with `reference`
    /// (scripts/bench_finetune_torch.py), PyTorch's step at the same thread count and the ratio.
    public static func finetuneReport(
        arch: String, size: Int, batch: Int, steps: Int, checkpointBlocks: Bool, precision: Precision,
        reference: TorchReference?, log: (String) -> Void
    ) throws {
        let t = try finetuneStep(
            arch: arch, size: size, batch: batch, steps: steps, checkpointBlocks: checkpointBlocks, precision: precision)
        var line = String(
            format: "%@ %dx%d batch %d %@%@, %d threads: %.0f ms/step (fwd %.0f, bwd %.0f, AdamW %.0f), peak RSS %.0f MiB",
            arch as NSString, size, size, batch, precision.rawValue as NSString, checkpointBlocks ? ", checkpointed" : "",
            Parallel.threads, 1000 * t.step, 1000 * t.forward, 1000 * t.backward, 1000 * t.optimizer, t.peakRSSMiB)
        if let reference {
            let torchArch = arch.split(separator: ".").first.map(String.init) ?? arch
            var args = [
                "--arch", torchArch, "--size", "\(size)", "--batch", "\(batch)", "--steps", "\(steps)",
                "--threads", "\(Parallel.threads)", "--precision", precision.rawValue,
            ]
            if checkpointBlocks { args.append("--grad-checkpointing") }
            let v = try reference.values(args, required: ["ms_per_step", "peak_rss_mb"])
            line += String(
                format: "\n  torch %.0f ms/step, peak RSS %.0f MiB; speed ratio (torch time / ours) %.2fx",
                v["ms_per_step"]!, v["peak_rss_mb"]!, v["ms_per_step"]! / (1000 * t.step))
        }
        log(line)
    }

    /// A DVT stage-3 training step of a random-weights ViT, as scripts/bench_finetune_torch.py
    /// times it: last-block patch features after the final norm, MSE + (1 − cos) against a
    /// fixed target, backward through every parameter, AdamW (0.9, 0.999), wd 1e-5; the ViT's
    /// products in `precision` (bf16: torch.autocast's; weights and AdamW state stay fp32).
    public static func finetuneStep(
        arch: String, size: Int, batch: Int, steps: Int, checkpointBlocks: Bool,
        precision: Precision = .fp32
    ) throws -> FinetuneTiming {
        guard let cfg = ViTPresets.named(arch) else { throw BenchError("unknown --arch \(arch); known: \(ViTPresets.names.joined(separator: ", "))") }
        let model = VisionTransformer(config: cfg, seed: 0)
        model.precision = precision  // bound around forward; ops record it for backward
        var rng = RandomGenerator(seed: 1)
        let x = Tensor.normal([batch, 3, size, size], rng: &rng)  // (B, 3, H, W)
        let last = cfg.depth - 1
        let target = withNoGrad { model.features(x, layers: [last])[last]!.patch * 0.5 }  // (B, Gh, Gw, C)
        model.thaw(.all)
        let opt = AdamW(parameters: model.namedParameters(), lr: 1e-4, betas: (0.9, 0.999), weightDecay: 1e-5)
        var phases = StepPhases(), totals: [Double] = []
        func step() {
            totals.append(
                phases.time(opt) {
                    denoiserLoss(model.trainingFeatures(x, layer: last, checkpointBlocks: checkpointBlocks).patch, target).loss
                })
        }
        step()
        phases = StepPhases(); totals = []
        for _ in 0..<steps { step() }
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)  // ru_maxrss in KiB
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        let n = Double(steps)
        return FinetuneTiming(
            step: totals.sorted()[totals.count / 2], forward: phases.seconds[0] / n, backward: phases.seconds[1] / n,
            optimizer: phases.seconds[2] / n, peakRSSMiB: Double(usage.ru_maxrss) / 1024)
    }
}
