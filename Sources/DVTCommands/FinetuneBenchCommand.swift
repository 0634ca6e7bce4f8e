import ArgumentParser
import Bench
import Foundation
import TensorCore

extension DVTCommand.BenchCommand {
    /// `dvt bench finetune`: a DVT stage-3 training step, ours next to PyTorch's in one command.
    struct FinetuneBench: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "finetune",
            abstract:
                "A ViT fine-tuning step (DVT stage 3: forward, MSE + (1 − cos), backward, AdamW; fp32 or bf16), vs PyTorch when --torch-python is given.",
            discussion: """
                Random weights; the PyTorch side is scripts/bench_finetune_torch.py (--torch-script), run with \
                the same thread count. Each side reports the median step and its process peak RSS; run once with \
                and once without --gradient-checkpointing for the memory/time trade-off (docs/finetune.md).
                """)
        @OptionGroup var compute: ComputeOptions
        @Option(help: "Python with torch and timm (env DVT_TORCH_PYTHON).")
        var torchPython: String? = ProcessInfo.processInfo.environment["DVT_TORCH_PYTHON"]
        @Option(help: "The PyTorch side of this benchmark.")
        var torchScript = "scripts/bench_finetune_torch.py"
        @Option var arch = "vit_small_patch14_dinov2"
        @Option var size = 224
        @Option var batch = 8
        @Option var steps = 3
        @Flag(help: "Per-block gradient checkpointing on both sides.")
        var gradientCheckpointing = false
        @Option(help: "fp32, or bf16 (ours: the ViT's products in bf16; PyTorch: torch.autocast bf16); weights and AdamW state stay fp32.")
        var precision: Precision = .fp32

        func run() throws {
            let t = try Bench.finetuneStep(
                arch: arch, size: size, batch: batch, steps: steps, checkpointBlocks: gradientCheckpointing,
                precision: precision)
            var line = String(
                format: "%@ %dx%d batch %d %@%@, %d threads: %.0f ms/step (fwd %.0f, bwd %.0f, AdamW %.0f), peak RSS %.0f MiB",
                arch as NSString, size, size, batch, precision.rawValue as NSString, gradientCheckpointing ? ", checkpointed" : "", Parallel.threads,
                1000 * t.step, 1000 * t.forward, 1000 * t.backward, 1000 * t.optimizer, t.peakRSSMiB)
            if let torchPython {
                let torchArch = arch.split(separator: ".").first.map(String.init) ?? arch
                var args = [
                    "--arch", torchArch, "--size", "\(size)", "--batch", "\(batch)", "--steps", "\(steps)",
                    "--threads", "\(Parallel.threads)", "--precision", precision.rawValue,
                ]
                if gradientCheckpointing { args.append("--grad-checkpointing") }
                let v = try TorchReference(python: torchPython, script: torchScript).values(args, required: ["ms_per_step", "peak_rss_mb"])
                line += String(
                    format: "\n  torch %.0f ms/step, peak RSS %.0f MiB; speed ratio (torch time / ours) %.2fx",
                    v["ms_per_step"]!, v["peak_rss_mb"]!, v["ms_per_step"]! / (1000 * t.step))
            }
            print(line)
        }
    }
}
