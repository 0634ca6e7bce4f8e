import ArgumentParser
import Foundation
import Vision

extension DVTCommand {
    /// `dvt convert`: a ViT checkpoint in any layout `--weights` reads, written with timm's names.
    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "convert",
            abstract:
                "Write a ViT checkpoint (timm, DINOv2 hub, Hugging Face transformers snapshot, …: whatever --weights reads) as a timm state dict (.safetensors or .pth) that timm loads with strict=True.",
            discussion: """
                The safetensors metadata (or OUT.timm.json beside a .pth) names the timm architecture and the \
                timm.create_model keyword arguments for these shapes (timm_arch, timm_kwargs, ln_eps). Note \
                that timm resamples position embeddings with antialias: at input sizes other than the \
                pretraining one a converted transformers checkpoint then differs from transformers (docs/backbones.md).
                """)

        @Argument(help: "The checkpoint: a file or a transformers snapshot folder (as --weights).")
        var input: String
        @Option(help: "Output: .safetensors, or .pth / .pt / .bin (torch.save state dict).")
        var out: String
        @Option(help: "timm architecture of a timm-named input (see `dvt models`); a transformers snapshot brings its own.")
        var arch = "vit_small_patch14_dinov2.lvd142m"

        func run() throws {
            let c = try TimmConversion(model: VisionTransformer.load(arch: arch, weights: input, randomInit: nil))
            try c.write(to: URL(fileURLWithPath: out))
            print(
                "wrote \(out): \(c.tensors.count) tensors; timm.create_model('\(c.arch)', pretrained=False, num_classes=0, **\(c.kwargsJSON)) with LayerNorm eps \(c.layerNormEps)"
            )
        }
    }
}
