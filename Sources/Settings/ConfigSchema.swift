/// Every configuration key, its type and range, its default (DVT's own value where DVT has
/// one) and the name the official DVT code uses for it. docs/config.md is generated from this
/// table (`dvt config --reference`).
public enum ConfigSchema {
    public static let keys: [ConfigKey] = [
        // Backbone and data (shared by every stage)
        ConfigKey("model", .string, .string("vit_base_patch14_dinov2.lvd142m"), dvt: "model / vit_type",
                  "timm architecture name of the ViT (see `dvt models`)."),
        ConfigKey("weights", .string, .null, nullable: true, dvt: nil,
                  "timm checkpoint for `model` (.safetensors or .pth; DINOv2 hub names are mapped). Exactly one of weights / random_init."),
        ConfigKey("random_init", .int(0...Int(Int32.max)), .null, nullable: true,
                  "Seed for random ViT weights instead of a checkpoint: demos and tests only, every output says so."),
        ConfigKey("input_size", .ints(count: 2, 14...4096), .ints([518, 518]), dvt: "input_size",
                  "Network input size [H, W] (a single number means square)."),
        ConfigKey("stride_size", .int(1...64), .null, nullable: true, dvt: "stride_size / stride",
                  "Patch stride; null = the patch size. DVT uses the patch size or half of it."),
        ConfigKey("layer", .int(-64...63), .int(-1), dvt: nil,
                  "Block whose output is denoised (0-based; -1 = last). Ignored when layer_depth_ratio is set."),
        ConfigKey("layer_depth_ratio", .double(0...1), .null, nullable: true, dvt: "layer_depth_ratio",
                  "Pick the block at this fraction of the depth as DVT does: block = int(ratio · (depth − 1)) (main_img_denoising.py line 241)."),
        ConfigKey("data_root", .string, .null, nullable: true, dvt: "data_root",
                  "Folder list entries are relative to (default: the list file's folder)."),
        ConfigKey("data_list", .string, .null, nullable: true, dvt: "data_list / image_list",
                  "Training images: a VOC-style list (first field per line) or a directory."),
        ConfigKey("val_list", .string, .null, nullable: true,
                  "Held-out images for stage-2 validation, denoising and metrics (list or directory)."),
        ConfigKey("output_dir", .string, .string("runs/dvt"), dvt: "feat_root / output_dir",
                  "Run directory: features, checkpoints, logs, report."),
        ConfigKey("seed", .int(0...Int(Int32.max)), .int(18), dvt: "seed",
                  "Seed of every random draw (views, sampling, init, shuffling)."),
        ConfigKey("precision", .choice(["fp32", "bf16"]), .string("fp32"), dvt: "dtype (stage 1: float32 / bfloat16)",
                  "Operand precision of the matrix products of the ViT, the stage-1 fit's MLPs (DVT's stage-1 --dtype) and the denoiser: bf16 rounds matmul operands to bfloat16 and accumulates in fp32, everything else stays fp32 (torch.autocast on a CPU; errors in docs/precision.md)."),

        // Stage 1
        ConfigKey("stage1.num_views", .int(1...100_000), .int(768), dvt: "num_views / num_patches",
                  "Random crop/flip views per image (the whole image is added as one more)."),
        ConfigKey("stage1.num_iters", .int(1...10_000_000), .int(25000), dvt: "num_iters",
                  "Optimisation steps per image (DVT v2: 25000, main_img_denoising.py line 181)."),
        ConfigKey("stage1.warmup_iters", .int(0...10_000_000), .null, nullable: true, dvt: "warmup_iters",
                  "Linear warmup steps; null = num_iters / 10, which is DVT's fixed 2500 at the default 25000 steps (main_img_denoising.py line 182) and keeps short runs' warmup in proportion."),
        ConfigKey("stage1.lr", .double(0...10), .double(0.01), dvt: "lr", "Peak learning rate (Adam)."),
        ConfigKey("stage1.min_lr", .double(0...10), .double(0.001), dvt: "min_lr", "Floor of the cosine decay."),
        ConfigKey("stage1.weight_decay", .double(0...1), .double(1e-5), dvt: "weight_decay", "Adam L2 weight decay."),
        ConfigKey("stage1.loss_scale", .double(1e-6...1e9), .double(1024), dvt: "GradScaler(\"cuda\", 2**10)",
                  "The official GradScaler scale, never unscaled: the loss is multiplied by it before backward (main_img_denoising.py lines 55, 88-89), so the effective L2 decay is weight_decay / loss_scale and Adam's ε is 1e-15 / loss_scale. 1 = the literal optimiser."),
        ConfigKey("stage1.pixel_bsz", .int(1...1_000_000), .int(2048), dvt: "pixel_bsz",
                  "Tokens sampled (from all views) per step."),
        ConfigKey("stage1.freeze_shared_artifacts_after", .double(0...1), .double(0.5), dvt: "freeze_shared_artifacts_after",
                  "Fraction of num_iters after which G is frozen and the residual predictor switches on."),
        ConfigKey("stage1.enable_residual_predictor", .bool, .bool(true), dvt: "enable_residual_predictor",
                  "Fit the residual term h(x, pos) in the second phase."),
        ConfigKey("stage1.n_levels", .int(1...32), .int(16), dvt: "n_levels", "Hash-grid levels."),
        ConfigKey("stage1.n_features_per_level", .int(1...32), .int(8), dvt: "n_features_per_level", "Features per level."),
        ConfigKey("stage1.log2_hashmap_size", .int(4...26), .int(20), dvt: "log2_hashmap_size", "log2 of each level's table size."),
        ConfigKey("stage1.base_resolution", .int(2...4096), .int(16), dvt: "base_resolution", "Coarsest grid resolution."),
        ConfigKey("stage1.max_resolution", .int(2...65536), .int(1024), dvt: "max_resolution", "Finest grid resolution."),
        ConfigKey("stage1.coord_jitter", .double(0...2), .double(0), dvt: nil,
                  "F sees a random point within ±jitter token spacings of each sampled token (0 = DVT). At the official loss scale 0.5 lowers planted accuracy (0.9880 / 0.9983 vs 0.9955 / 0.9996, docs/stage1.md); it helped only with the literal weight decay."),
        ConfigKey("stage1.hash_table_adam", .choice(["deferred", "lazy", "dense"]), .string("deferred"), dvt: nil,
                  "Hash-table Adam: deferred (default) = dense Adam's momentum for touched rows only, without weight decay on idle rows, O(touched rows) per step; at the official loss scale it matches dense on planted data to 1e-4 (docs/stage1.md); dense = torch's dense Adam over the whole table (DVT's literal behaviour); lazy = tiny-cuda-nn's."),
        ConfigKey("stage1.view_features_dtype", .choice(["fp32", "bf16"]), .string("fp32"), dvt: nil,
                  "How the view features are held during the fit: fp32 (DVT) or bf16 (half the memory: 1.5 instead of 3.0 GiB for the official 769 ViT-B/14 518² views; effect on the planted cosines in docs/speed.md)."),
        ConfigKey("stage1.shared_artifacts_weight_decay", .double(0...1), .null, nullable: true, dvt: nil,
                  "Weight decay of the shared artifact map G alone (null = weight_decay, as DVT). 0 used to let G hold the whole artifact under the literal decay; at the official loss scale it gives the same planted accuracy as null (0.9955 / 0.9996, docs/stage1.md)."),
        ConfigKey("stage1.save_extras", .bool, .bool(false), dvt: nil,
                  "Also write G, h(raw) and the view features per image."),
        ConfigKey("stage1.vis_every", .int(0...1_000_000), .int(1), dvt: "num_vis_samples (differs)",
                  "Write a visual strip for every k-th image (0 = none)."),
        ConfigKey("stage1.print_freq", .int(1...10_000_000), .int(1000), dvt: "print_freq", "Steps between loss lines."),

        // Stage 2
        ConfigKey("stage2.targets", .choice(["stage1", "srt"]), .string("stage1"), dvt: nil,
                  "Training targets: stage-1 denoised features, or SRT ensembles (self-distillation)."),
        ConfigKey("stage2.num_iters", .int(1...10_000_000), .int(50000), dvt: "num_iterations",
                  "Training steps (the released run, sample_scripts/stage2.sh: 50000)."),
        ConfigKey("stage2.batch_size", .int(1...4096), .int(128), dvt: "batch_size × world size",
                  "Global batch: feature maps per step over all processes (the released run: 16 per GPU × 8 GPUs = 128)."),
        ConfigKey("stage2.base_lr", .double(0...10), .double(2e-4), dvt: "base_lr",
                  "Learning rate for a batch of 256: lr = base_lr · sqrt(batch_size / 256)."),
        ConfigKey("stage2.min_lr", .double(0...10), .double(1e-6), dvt: "min_lr", "Floor of the cosine decay."),
        ConfigKey("stage2.warmup_ratio", .double(0...1), .double(0.15), dvt: nil,
                  "Fraction of num_iters of linear warmup from 0 (DVT: 15%)."),
        ConfigKey("stage2.weight_decay", .double(0...1), .double(1e-5), dvt: "weight_decay", "AdamW decoupled weight decay."),
        ConfigKey("stage2.adamw_beta1", .double(0...1), .double(0.9), dvt: "adamw_beta1", "AdamW β1."),
        ConfigKey("stage2.adamw_beta2", .double(0...1), .double(0.999), dvt: "adamw_beta2", "AdamW β2."),
        ConfigKey("stage2.num_blocks", .int(1...24), .int(1), dvt: nil, "Transformer blocks in the denoiser."),
        ConfigKey("stage2.enable_pe", .bool, .bool(true), dvt: "enable_pe", "Learnable position embedding before the block(s)."),
        ConfigKey("stage2.save_freq", .int(0...10_000_000), .int(5000), dvt: "save_freq", "Steps between checkpoints (0 = end only)."),
        ConfigKey("stage2.val_freq", .int(0...10_000_000), .int(1000), dvt: nil, "Steps between validation passes (0 = none)."),
        ConfigKey("stage2.print_freq", .int(1...10_000_000), .int(50), dvt: "print_freq", "Steps between loss lines."),

        // Fine-tuning the ViT (stage 3 / SRT self-distillation); null = the teacher's recipe
        ConfigKey("finetune.teacher", .choice(["dvt", "srt"]), .string("dvt"), dvt: nil,
                  "What the ViT is distilled towards: dvt = the frozen ViT + the stage-2 denoiser (DVT stage 3, main_distillation.py), srt = its own SRT ensemble (donglao/srt distill_utils.py); `--teacher` overrides."),
        ConfigKey("finetune.denoiser", .string, .null, nullable: true, dvt: "denoiser_ckpt",
                  "Stage-2 denoiser for the dvt teacher (.safetensors from `dvt stage2`, or DVT's .pth); null = output_dir/stage2/denoiser.safetensors."),
        ConfigKey("finetune.thaw", .choice(["all", "bias", "last", "last2"]), .string("all"), dvt: "unfreeze (SRT)",
                  "Trainable parameters: all, those named *bias*, the last block + final norm, or the last two blocks + final norm (SRT's thaw modes; DVT trains all)."),
        ConfigKey("finetune.loss", .choice(["mse_cosine", "mse", "l1"]), .null, nullable: true, dvt: "loss (SRT)",
                  "mse_cosine = MSE + (1 − cosine) (DVT, main_distillation.py lines 239-242); mse / l1 = SRT's mse / mae. null: dvt → mse_cosine, srt → mse."),
        ConfigKey("finetune.epochs", .int(1...100_000), .null, nullable: true, dvt: "num_epochs / epochs",
                  "Passes over the images; steps = epochs · max(1, images ÷ batch_size). null: dvt → 5 (sample_scripts/stage3.sh), srt → 50 (main.py)."),
        ConfigKey("finetune.num_iters", .int(1...100_000_000), .null, nullable: true, dvt: "num_iterations",
                  "Training steps; overrides epochs when set."),
        ConfigKey("finetune.batch_size", .int(1...4096), .null, nullable: true, dvt: "batch_size × world size",
                  "Images per step. null: dvt → 512 (64 per GPU × 8, sample_scripts/stage3.sh), srt → 1."),
        ConfigKey("finetune.base_lr", .double(0...10), .double(2e-4), dvt: "blr",
                  "dvt teacher: lr = base_lr · sqrt(batch_size / 256) (main_distillation.py line 199)."),
        ConfigKey("finetune.lr", .double(0...10), .null, nullable: true, dvt: "lr (SRT)",
                  "Peak learning rate, used as is; null: dvt → from base_lr, srt → 3e-4 (main.py)."),
        ConfigKey("finetune.min_lr", .double(0...10), .double(1e-6), dvt: "min_lr", "Floor of the cosine schedule."),
        ConfigKey("finetune.warmup_ratio", .double(0...1), .double(0.15), dvt: nil,
                  "Fraction of the steps of linear warmup from 0 in the cosine schedule (main_distillation.py line 210)."),
        ConfigKey("finetune.schedule", .choice(["cosine", "step"]), .null, nullable: true, dvt: "sched_type (SRT)",
                  "cosine = DVT's CosineScheduler (misc.py lines 211-241); step = lr · lr_decay per milestone epoch passed (SRT). null: dvt → cosine, srt → step."),
        ConfigKey("finetune.lr_steps", .ints(count: 2, 0...100_000), .ints([25, 40]), dvt: "steps (SRT)",
                  "Step schedule: epochs e after which the rate drops (SRT multiplies by lr_decay once e < epoch, distill_utils.py line 10)."),
        ConfigKey("finetune.lr_decay", .double(0...1), .double(0.1), dvt: "lr_decay (SRT)", "Step schedule factor."),
        ConfigKey("finetune.weight_decay", .double(0...1), .null, nullable: true, dvt: "weight_decay",
                  "AdamW decoupled weight decay. null: dvt → 1e-5, srt → 0 (SRT's optimiser has none, distill_utils.py line 19)."),
        ConfigKey("finetune.l2_penalty", .double(0...10), .null, nullable: true, dvt: "wd (SRT)",
                  "Adds l2_penalty · ‖θ‖₂ (unsquared, over the trainable parameters) to the loss (distill_utils.py lines 65-70, line 92). null: dvt → 0, srt → 1e-5."),
        ConfigKey("finetune.flip", .bool, .bool(true), dvt: "RandomHorizontalFlip",
                  "Random horizontal flip (p = 0.5) of every training image (main_distillation.py line 166)."),
        ConfigKey("finetune.gradient_checkpointing", .bool, .bool(false), dvt: "grad_checkpointing",
                  "Recompute each block's activations in backward instead of keeping them (less memory, about one more forward per step; docs/finetune.md)."),
        ConfigKey("finetune.cache_teacher", .choice(["none", "memory", "disk"]), .string("none"), dvt: nil,
                  "Keep every (image, flip) teacher map after its first use (the teacher is frozen, so this is exact): memory, or disk = output_dir/finetune/teacher_cache/<fingerprint>/ too, reused by later and resumed runs; pays when epochs revisit the images."),
        ConfigKey("finetune.export", .string, .null, nullable: true, dvt: nil,
                  "Where the fine-tuned ViT is written (timm state dict, safetensors); null = output_dir/finetune/vit.safetensors."),
        ConfigKey("finetune.save_freq", .int(0...10_000_000), .int(5000), dvt: "save_freq", "Steps between checkpoints (0 = end only)."),
        ConfigKey("finetune.print_freq", .int(1...10_000_000), .int(50), dvt: nil, "Steps between loss lines (DVT logs every 50)."),

        // SRT
        ConfigKey("srt.dx", .int(0...64), .int(3), dvt: nil, "Horizontal shifts −dx…dx pixels."),
        ConfigKey("srt.dy", .int(0...64), .int(3), dvt: nil, "Vertical shifts −dy…dy pixels."),
        ConfigKey("srt.aggregate", .choice(["mean", "median"]), .string("mean"), dvt: nil, "How shifted views are combined."),
        ConfigKey("srt.uniform", .bool, .bool(false), dvt: nil,
                  "Weight every shift equally (default: the official code's, which counts the unshifted view twice)."),
        ConfigKey("srt.batch_size", .int(1...1024), .int(8), dvt: nil, "Shifted images per ViT forward."),
        ConfigKey("srt.enabled", .bool, .bool(true), dvt: nil, "Compute SRT features in `dvt run` (for metrics and srt targets)."),

        // Downstream linear probes (`dvt probe`, and the optional probe step of `dvt run`)
        ConfigKey("probe.enabled", .bool, .bool(false), dvt: nil,
                  "Run the probe step at the end of `dvt run` (needs probe.root)."),
        ConfigKey("probe.task", .choice(["segmentation", "depth"]), .string("segmentation"), dvt: "--task (evaluate_dense_tasks.py)",
                  "Downstream task: semantic segmentation (mIoU) or monocular depth (RMSE)."),
        ConfigKey("probe.dataset", .choice(["voc", "ade20k", "nyu", "folder"]), .string("voc"), dvt: "dataset_type",
                  "Dataset layout under probe.root (docs/probe.md)."),
        ConfigKey("probe.root", .string, .null, nullable: true, dvt: "data_root",
                  "Dataset root folder."),
        ConfigKey("probe.methods", .string, .string("raw,srt,stage1,stage2"), dvt: nil,
                  "Comma-separated feature sources, one head each: raw, srt, stage1 (the run tree's denoised features), stage2 (the run's denoiser), or a denoiser file."),
        ConfigKey("probe.official", .bool, .bool(false), dvt: nil,
                  "Train with the official protocol's numbers (40000 / 38400 iterations, batch 16) instead of the CPU preset."),
        ConfigKey("probe.iterations", .int(1...10_000_000), .null, nullable: true, dvt: "max_iters",
                  "Head training steps; null = the preset's (CPU 1000; official 40000 segmentation, 38400 depth)."),
        ConfigKey("probe.batch_size", .int(1...4096), .null, nullable: true, dvt: "samples_per_gpu × GPUs",
                  "Feature maps per step; null = the preset's (CPU 8; official 16)."),
        ConfigKey("probe.lr", .double(0...10), .null, nullable: true, dvt: "optimizer.lr",
                  "AdamW learning rate; null = DVT's (1e-3 segmentation, 5e-3 depth)."),
        ConfigKey("probe.max_train", .int(1...10_000_000), .null, nullable: true, dvt: nil,
                  "Use at most this many training images (the first in split order); null = all."),
        ConfigKey("probe.max_val", .int(1...10_000_000), .null, nullable: true, dvt: nil,
                  "Evaluate on at most this many validation images; null = all."),
    ]
}

extension ConfigSchema {
    /// docs/config.md: every key with its type, default and DVT's name, grouped by section.
    public static var referenceMarkdown: String {
        var s = """
        # Configuration reference

        Generated by `dvt config --reference` from the schema in Sources/Settings/ConfigSchema.swift.
        A config is YAML; section keys can be nested (`stage1:` then `  num_iters: 300`) or dotted on
        the command line (`--set stage1.num_iters=300`). Unknown keys and out-of-range values are
        errors that name the key, the value and the allowed range. Defaults are DVT's own values.

        """
        var section: String? = nil
        for key in keys {
            if key.section != section {
                section = key.section
                s += "\n## \(section!.isEmpty ? "Backbone, data and run" : "`\(section!)`")\n\n"
                s += "| key | type / range | default | DVT name | meaning |\n|---|---|---|---|---|\n"
            }
            let type = key.kind.allowed + (key.nullable ? ", or null" : "")
            s += "| `\(key.path)` | \(type) | `\(key.defaultValue)` | \(key.dvtName.map { "`\($0)`" } ?? "—") | \(key.doc) |\n"
        }
        return s
    }
}
