import ArgumentParser
import DVT
import Foundation
import Jobs
import Settings
import TensorCore

extension DVTCommand {
    /// `dvt finetune CONFIG --teacher dvt|srt`: distil a teacher into the ViT itself (stage 3).
    struct Finetune: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "finetune",
            abstract: "Fine-tune the ViT towards its denoised (DVT stage 3) or SRT-ensembled features, and export it as a timm checkpoint.",
            discussion: """
                Trains the ViT of `model`/`weights` on the images of data_list (resized to input_size, random flips) \
                towards a frozen teacher computed on the fly: --teacher dvt = the pretrained ViT + the stage-2 denoiser \
                (finetune.denoiser, default OUTPUT_DIR/stage2/denoiser.safetensors); --teacher srt = the ViT's own SRT \
                ensemble (srt.* keys). The finetune.* keys (docs/finetune.md) default to each teacher's official recipe. \
                Writes OUTPUT_DIR/finetune/: resolved.yaml, metrics.jsonl, checkpoints/, loss_curve.png and vit.safetensors \
                (a timm state dict under timm's names; `dvt extract --weights` and timm load it).
                """)

        @Argument(help: "YAML configuration (docs/config.md lists every key).")
        var config: String
        @Option(help: "dvt (the stage-2 denoiser) or srt (the SRT ensemble); default finetune.teacher.", transform: choiceFlag("teacher"))
        var teacher: DVTSettings.Finetune.Teacher?
        @Option(name: .customLong("set"), parsing: .upToNextOption, help: "Override config keys: --set finetune.num_iters=200 seed=3")
        var overrides: [String] = []
        @Flag(help: "Continue from OUTPUT_DIR/finetune/checkpoints/latest.safetensors (bit-exact).")
        var resume = false
        @Flag(help: "No progress lines.")
        var quiet = false
        @Option(
            help:
                "fp32 or bf16 operands in the student's and teacher's products (config key precision; docs/precision.md); weights and AdamW state stay fp32."
        )
        var precision: Precision?
        @OptionGroup var compute: ComputeOptions

        func run() throws {
            var cfg = try ConfigSchema.load(file: URL(fileURLWithPath: config), overrides: overrides)
            if let precision { try cfg.set("precision", value: precision.configValue) }
            let outcome: FinetuneOutcome
            do { outcome = try FinetuneRunner.run(config: cfg, teacher: teacher, resume: resume, quiet: quiet) } catch {
                Stage2Runner.abortOtherRanksIfParallel(after: error)  // one failing rank ends the MPI job
                throw error
            }
            guard Stage2Runner.isRootProcess else { return }  // MPI ranks > 0 report nothing
            let s = outcome.summary
            print(
                String(
                    format: "finetune done (%@ teacher): %d steps, final loss %.5f, %.1f ms/step",
                    outcome.recipe.teacher.rawValue as NSString, s.steps, s.finalLoss, s.msPerStep))
            print("weights: \(outcome.exported.path)")
        }
    }
}
