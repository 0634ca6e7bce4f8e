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
        @OptionGroup var model: BenchModelOptions
        @Option var steps = 3
        @Flag(help: "Per-block gradient checkpointing on both sides.")
        var gradientCheckpointing = false
        @Option(help: "fp32, or bf16 (ours: the ViT's products in bf16; PyTorch: torch.autocast bf16); weights and AdamW state stay fp32.")
        var precision: Precision = .fp32

        func run() throws {
            try Bench.finetuneReport(
                arch: model.arch, size: model.size, batch: model.batch, steps: steps,
                checkpointBlocks: gradientCheckpointing, precision: precision,
                reference: torchPython.map { TorchReference(python: $0, script: torchScript) }, log: { print($0) })
        }
    }
}
