// The typed settings tree: every configuration key as a Swift property of its section, declared
// once with its metadata in the section's `fields` table (SettingField.swift). Code above this
// module reads `settings.stage1.numIters`, never a string key. Types follow the keys: nullable
// keys are optionals, the others are not, and every choice is an enum (`ConfigChoice`) whose
// cases are the allowed values (TypedSettingsTests checks it). The method code takes its section
// and enums as they are (DVT's `Stage1Settings` is `DVTSettings.Stage1`, Vision's `ThawMode` is
// `Finetune.Thaw`, …). To add a key: add the property (its initial value is the default) and
// one `SettingField` line in its section; the schema, validation, `dvt config --reference` and
// docs/config.md follow.

import TensorCore

/// The whole configuration, by section, decoded once from a validated `ResolvedConfig`.
public struct DVTSettings: Sendable, Equatable {
    public var run: Run
    public var stage1: Stage1
    public var stage2: Stage2
    public var srt: SRT
    public var finetune: Finetune
    public var probe: Probe

    public init(_ c: ResolvedConfig) {
        run = Run(c)
        stage1 = Stage1(c)
        stage2 = Stage2(c)
        srt = SRT(c)
        finetune = Finetune(c)
        probe = Probe(c)
    }

    /// Every key's schema entry, in the order of docs/config.md.
    static var configKeys: [ConfigKey] {
        Run.configKeys + Stage1.configKeys + Stage2.configKeys + Finetune.configKeys + SRT.configKeys + Probe.configKeys
    }

    /// Backbone, data and run keys (top level).
    public struct Run: SettingsSection {
        public static let section = ""
        /// `model`
        public var model: String = "vit_base_patch14_dinov2.lvd142m"
        /// `weights`
        public var weights: String? = nil
        /// `random_init`
        public var randomInit: Int? = nil
        /// `input_size`
        public var inputSize: [Int] = [518, 518]
        /// `stride_size`
        public var strideSize: Int? = nil
        /// `layer`
        public var layer: Int = -1
        /// `layer_depth_ratio`
        public var layerDepthRatio: Double? = nil
        /// `data_root`
        public var dataRoot: String? = nil
        /// `data_list`
        public var dataList: String? = nil
        /// `val_list`
        public var valList: String? = nil
        /// `output_dir`
        public var outputDir: String = "runs/dvt"
        /// `seed`
        public var seed: Int = 18
        /// `precision`
        public var precision: Precision = .fp32
        /// `pos_embed_resample`
        public var posEmbedResample: PosEmbedResample = .auto

        /// `pos_embed_resample`: how the position embedding is resampled to another token grid
        /// (Vision's `PositionResampling`, plus `auto`: the weights' framework decides).
        public enum PosEmbedResample: String, ConfigChoice {
            case auto
            case bicubicAntialias = "bicubic_antialias"
            case bicubic
            case bicubicOffset = "bicubic_offset"
        }

        public init() {}

        public static var fields: [SettingField<Self>] {
            [
                SettingField(
                    "model", \.model, .string, dvt: "model / vit_type",
                    "timm architecture name of the ViT (see `dvt models`)."),
                SettingField(
                    "weights", \.weights, .string,
                    "timm checkpoint for `model` (.safetensors or .pth; DINOv2 hub names are mapped). Exactly one of weights / random_init."),
                SettingField(
                    "random_init", \.randomInit, .int(0...Int(Int32.max)),
                    "Seed for random ViT weights instead of a checkpoint: demos and tests only, every output says so."),
                SettingField(
                    "input_size", \.inputSize, .ints(count: 2, 14...4096), dvt: "input_size",
                    "Network input size [H, W] (a single number means square)."),
                SettingField(
                    "stride_size", \.strideSize, .int(1...64), dvt: "stride_size / stride",
                    "Patch stride; null = the patch size. DVT uses the patch size or half of it."),
                SettingField(
                    "layer", \.layer, .int(-64...63),
                    "Block whose output is denoised (0-based; -1 = last). Ignored when layer_depth_ratio is set."),
                SettingField(
                    "layer_depth_ratio", \.layerDepthRatio, .double(0...1), dvt: "layer_depth_ratio",
                    "Pick the block at this fraction of the depth as DVT does: block = int(ratio · (depth − 1)) (main_img_denoising.py line 241)."),
                SettingField(
                    "data_root", \.dataRoot, .string, dvt: "data_root",
                    "Folder list entries are relative to (default: the list file's folder)."),
                SettingField(
                    "data_list", \.dataList, .string, dvt: "data_list / image_list",
                    "Training images: a VOC-style list (first field per line) or a directory."),
                SettingField(
                    "val_list", \.valList, .string,
                    "Held-out images for stage-2 validation, denoising and metrics (list or directory)."),
                SettingField(
                    "output_dir", \.outputDir, .string, dvt: "feat_root / output_dir",
                    "Run directory: features, checkpoints, logs, report."),
                SettingField(
                    "seed", \.seed, .int(0...Int(Int32.max)), dvt: "seed",
                    "Seed of every random draw (views, sampling, init, shuffling)."),
                SettingField(
                    "precision", \.precision, Precision.kind, dvt: "dtype (stage 1: float32 / bfloat16)",
                    "Operand precision of the matrix products of the ViT, the stage-1 fit's MLPs (DVT's stage-1 --dtype) and the denoiser: bf16 rounds matmul operands to bfloat16 and accumulates in fp32, everything else stays fp32 (torch.autocast on a CPU; errors in docs/precision.md)."
                ),
                SettingField(
                    "pos_embed_resample", \.posEmbedResample, PosEmbedResample.kind,
                    "How the learned position embedding is resampled to another token grid: auto = as the weights' framework does (timm and transformers' Dinov2WithRegisters: bicubic_antialias; transformers' Dinov2, ViT, DeiT, CLIP, SigLIP: bicubic, torch's non-antialiased a = −0.75); bicubic_offset = non-antialiased at scale factors (g + 0.1) / g0 (facebookresearch/dinov2, older transformers Dinov2); recorded in each output's metadata (docs/backbones.md)."
                ),
            ]
        }
    }

    /// The `stage1.*` keys: DVT stage 1 (docs/stage1.md).
    public struct Stage1: SettingsSection {
        public static let section = "stage1"

        /// `stage1.view_features_dtype`: how the view features are held for the fit (not a DVT
        /// option; fp32 = DVT). bf16 halves the recipe's largest allocation (the official 769
        /// ViT-B/14 518² views: 3.0 → 1.5 GiB); every sampled token is then its bf16 rounding. The
        /// whole image's raw output stays fp32.
        public typealias ViewFeaturesDtype = FeatureRows.Element

        /// `stage1.hash_table_adam`: the hash table's optimiser (not a DVT option). DVT optimises
        /// it with torch's dense `Adam`: every step every row's moments decay and rows keep moving
        /// along their momentum even when no sample touched them, at O(table) cost per step.
        ///
        /// On the planted benchmark at the official loss scale (seed-0 file, 8 levels, 2^16,
        /// finest 256, 3000 steps, no jitter; denoised / artifact centred cosine): dense 0.9955 /
        /// 0.9996, deferred 0.9955 / 0.9996 (final logged loss 0.00609 vs 0.00614), the PyTorch
        /// reference 0.9954 / 0.9995 (docs/stage1.md). With the literal (unscaled) decay deferred
        /// falls behind dense (0.949 vs 0.960): the difference is the decay of idle rows, which
        /// the official scaling makes negligible. Cost: dense adds O(table) per step, +47% with
        /// DVT's 16 levels of 2^20 at C 768 (173 vs 118 ms/step).
        public enum HashTableAdam: String, Codable, ConfigChoice {
            /// Dense Adam's momentum, computed for touched rows only: idle steps are caught up in
            /// closed form when a row is next touched (`Adam.RowSparseMode.deferred`). Default. It
            /// drops only the weight-decay gradient on idle steps; dense Adam normalises that tiny
            /// gradient into real steps on long-idle rows, which mattered with the literal decay
            /// and not at the official loss scale (decay / 1024; numbers above).
            case deferred
            /// tiny-cuda-nn's Adam: untouched rows do not move at all and keep per-row step
            /// counts. Fine rows are touched on a fraction q of steps and then advance ~q·lr per
            /// step instead of dense Adam's ~√q·lr plus momentum, so the fine levels learn
            /// markedly slower.
            case lazy
            /// Literal dense Adam over the whole table, as DVT (O(table) per step).
            case dense
        }
        /// `stage1.num_views`
        public var numViews: Int = 768
        /// `stage1.num_iters`
        public var numIters: Int = 25000
        /// `stage1.warmup_iters`
        public var warmupIters: Int? = nil
        /// `stage1.lr`
        public var lr: Double = 0.01
        /// `stage1.min_lr`
        public var minLR: Double = 0.001
        /// `stage1.weight_decay`
        public var weightDecay: Double = 1e-5
        /// `stage1.loss_scale`: the factor the loss is multiplied by before the backward pass,
        /// never divided out again: DVT's `torch.amp.GradScaler("cuda", 2**10)` followed by
        /// `grad_scaler.scale(loss).backward()` and a plain `optimizer.step()`
        /// (main_img_denoising.py lines 55 and 88-89; the scaler's `unscale_`/`step` are never
        /// called). Adam's update is invariant to the gradient's scale except for its two
        /// additive terms, so the official run's effective L2 decay is weight_decay / 1024 and its
        /// ε is 1e-15 / 1024. 1 = the literal optimiser.
        public var lossScale: Double = 1024
        /// `stage1.pixel_bsz`
        public var pixelBsz: Int = 2048
        /// `stage1.freeze_shared_artifacts_after`
        public var freezeSharedArtifactsAfter: Double = 0.5
        /// `stage1.enable_residual_predictor`
        public var enableResidualPredictor: Bool = true
        /// `stage1.n_levels`
        public var nLevels: Int = 16
        /// `stage1.n_features_per_level`
        public var nFeaturesPerLevel: Int = 8
        /// `stage1.log2_hashmap_size`
        public var log2HashmapSize: Int = 20
        /// `stage1.base_resolution`
        public var baseResolution: Int = 16
        /// `stage1.max_resolution`
        public var maxResolution: Int = 1024
        /// `stage1.coord_jitter`: coordinate jitter for F, as a fraction of the sampled token's
        /// own view's token spacing (not a DVT option; 0 = DVT). A token summarises a patch, not a
        /// point, so each step feeds F a uniformly random point within ±j spacings of the token
        /// centre (j = 0.5: the patch footprint of non-overlapping patches). Without it the fine
        /// hash levels (finest resolution ≫ token grid) give every sampled token its own vertices
        /// and F memorises each token, its artifact and noise included.
        public var coordJitter: Double = 0
        /// `stage1.hash_table_adam`
        public var hashTableAdam: HashTableAdam = .deferred
        /// `stage1.shared_artifacts_weight_decay`: weight decay of the shared artifact map G
        /// alone (not a DVT option; nil = `weightDecay`, as DVT). DVT's L2 decay pulls G toward
        /// zero against its small data gradient (each entry sees a few tokens per step), so F
        /// takes up the rest of the artifact; 0 lets G hold all of it.
        public var sharedArtifactsWeightDecay: Double? = nil
        /// `stage1.view_features_dtype`
        public var viewFeaturesDtype: ViewFeaturesDtype = .fp32
        /// `stage1.shared_artifacts_prior`: a .npy of G to start the fit from instead of DVT's
        /// `randn · 0.02` (not a DVT option; nil = DVT). G is input-independent by DVT's model
        /// (ViT(x) = F(x) + G(pos) + h(x, pos)), so the mean of the G maps earlier images' fits
        /// wrote for the same model, layer and input size (`dvt stage1-prior`) is an estimate of
        /// this image's G; with `freeze_shared_artifacts_after: 0` it is kept as it is. On
        /// DINOv2 features of photos it is a poor one (0.64–0.75 centred cosine with a photo's
        /// own official G, docs/speed.md); on planted cases that share one G it is exact.
        public var sharedArtifactsPrior: String? = nil
        /// `stage1.save_extras`
        public var saveExtras: Bool = false
        /// `stage1.vis_every`
        public var visEvery: Int = 1
        /// `stage1.print_freq`
        public var printFreq: Int = 1000

        public init() {}

        /// Checks every key's range (the section may have been changed in code) and the
        /// relations between keys: warmup_iters <= num_iters, max_resolution >= base_resolution.
        /// - Throws: `ConfigError` naming the key.
        public func validate() throws {
            try validateFields()
            if let w = warmupIters, w > numIters {
                throw ConfigError("config key 'stage1.warmup_iters' = \(w) is invalid: expected at most stage1.num_iters (\(numIters))")
            }
            if let p = sharedArtifactsPrior, p.isEmpty || !p.lowercased().hasSuffix(".npy") {
                throw ConfigError("config key 'stage1.shared_artifacts_prior' = '\(p)' is invalid: expected the path of a .npy file (or null)")
            }
            if maxResolution < baseResolution {
                throw ConfigError(
                    "config key 'stage1.max_resolution' = \(maxResolution) is invalid: expected at least stage1.base_resolution (\(baseResolution))")
            }
        }

        public static var fields: [SettingField<Self>] {
            [
                SettingField(
                    "num_views", \.numViews, .int(1...100_000), dvt: "num_views / num_patches",
                    "Random crop/flip views per image (the whole image is added as one more)."),
                SettingField(
                    "num_iters", \.numIters, .int(1...10_000_000), dvt: "num_iters",
                    "Optimisation steps per image (DVT v2: 25000, main_img_denoising.py line 181)."),
                SettingField(
                    "warmup_iters", \.warmupIters, .int(0...10_000_000), dvt: "warmup_iters",
                    "Linear warmup steps; null = num_iters / 10, which is DVT's fixed 2500 at the default 25000 steps (main_img_denoising.py line 182) and keeps short runs' warmup in proportion."
                ),
                SettingField(
                    "lr", \.lr, .double(1e-9...10), dvt: "lr",
                    "Peak learning rate (Adam)."),
                SettingField(
                    "min_lr", \.minLR, .double(0...10), dvt: "min_lr",
                    "Floor of the cosine decay."),
                SettingField(
                    "weight_decay", \.weightDecay, .double(0...1), dvt: "weight_decay",
                    "Adam L2 weight decay."),
                SettingField(
                    "loss_scale", \.lossScale, .double(1e-6...1e9), dvt: "GradScaler(\"cuda\", 2**10)",
                    "The official GradScaler scale, never unscaled: the loss is multiplied by it before backward (main_img_denoising.py lines 55, 88-89), so the effective L2 decay is weight_decay / loss_scale and Adam's ε is 1e-15 / loss_scale. 1 = the literal optimiser."
                ),
                SettingField(
                    "pixel_bsz", \.pixelBsz, .int(1...1_000_000), dvt: "pixel_bsz",
                    "Tokens sampled (from all views) per step."),
                SettingField(
                    "freeze_shared_artifacts_after", \.freezeSharedArtifactsAfter, .double(0...1), dvt: "freeze_shared_artifacts_after",
                    "Fraction of num_iters after which G is frozen and the residual predictor switches on."),
                SettingField(
                    "enable_residual_predictor", \.enableResidualPredictor, .bool, dvt: "enable_residual_predictor",
                    "Fit the residual term h(x, pos) in the second phase."),
                SettingField(
                    "n_levels", \.nLevels, .int(1...32), dvt: "n_levels",
                    "Hash-grid levels."),
                SettingField(
                    "n_features_per_level", \.nFeaturesPerLevel, .int(1...32), dvt: "n_features_per_level",
                    "Features per level."),
                SettingField(
                    "log2_hashmap_size", \.log2HashmapSize, .int(4...26), dvt: "log2_hashmap_size",
                    "log2 of each level's table size."),
                SettingField(
                    "base_resolution", \.baseResolution, .int(2...4096), dvt: "base_resolution",
                    "Coarsest grid resolution."),
                SettingField(
                    "max_resolution", \.maxResolution, .int(2...65536), dvt: "max_resolution",
                    "Finest grid resolution."),
                SettingField(
                    "coord_jitter", \.coordJitter, .double(0...2),
                    "F sees a random point within ±jitter token spacings of each sampled token (0 = DVT). At the official loss scale 0.5 lowers planted accuracy (0.9880 / 0.9983 vs 0.9955 / 0.9996, docs/stage1.md); it helped only with the literal weight decay."
                ),
                SettingField(
                    "hash_table_adam", \.hashTableAdam, HashTableAdam.kind,
                    "Hash-table Adam: deferred (default) = dense Adam's momentum for touched rows only, without weight decay on idle rows, O(touched rows) per step; at the official loss scale it matches dense on planted data to 1e-4 (docs/stage1.md); dense = torch's dense Adam over the whole table (DVT's literal behaviour); lazy = tiny-cuda-nn's."
                ),
                SettingField(
                    "shared_artifacts_weight_decay", \.sharedArtifactsWeightDecay, .double(0...1),
                    "Weight decay of the shared artifact map G alone (null = weight_decay, as DVT). 0 used to let G hold the whole artifact under the literal decay; at the official loss scale it gives the same planted accuracy as null (0.9955 / 0.9996, docs/stage1.md)."
                ),
                SettingField(
                    "view_features_dtype", \.viewFeaturesDtype, ViewFeaturesDtype.kind,
                    "How the view features are held during the fit: fp32 (DVT), bf16 (half the memory: 1.5 instead of 3.0 GiB for the official 769 ViT-B/14 518² views) or int8 (a quarter: 0.75 GiB; channels standardised by the first batch's mean and deviation, then one absmax scale per token). Not DVT options; their effect on the planted cosines and on DINOv2 features is in docs/speed.md."
                ),
                SettingField(
                    "shared_artifacts_prior", \.sharedArtifactsPrior, .string,
                    "A .npy of the shared artifact map G, (h, w, C) or DVT's (1, C, h, w), to start every image's fit from instead of DVT's random init (null = DVT; a relative path is from the working directory). Not a DVT option: build it with `dvt stage1-prior` from earlier stage-1 runs of the same model, layer and input size (their shared_artifacts/*.npy); with freeze_shared_artifacts_after: 0 G stays the prior. On DINOv2 features of photos the mean of other photos' G agrees with a photo's own official G at only 0.64–0.75, so it does not make a cheaper recipe reach the official quality (docs/speed.md)."
                ),
                SettingField(
                    "save_extras", \.saveExtras, .bool,
                    "Also write G, h(raw) and the view features per image."),
                SettingField(
                    "vis_every", \.visEvery, .int(0...1_000_000), dvt: "num_vis_samples (differs)",
                    "Write a visual strip for every k-th image (0 = none)."),
                SettingField(
                    "print_freq", \.printFreq, .int(1...10_000_000), dvt: "print_freq",
                    "Steps between loss lines."),
            ]
        }
    }

    /// The `stage2.*` keys: DVT stage 2, the denoiser (docs/stage2.md).
    public struct Stage2: SettingsSection {
        public static let section = "stage2"
        /// `stage2.targets`: what the denoiser learns to output.
        public enum Targets: String, ConfigChoice {
            /// The stage-1 denoised features (DVT).
            case stage1
            /// The SRT ensembles (self-distillation).
            case srt
        }

        /// `stage2.targets`
        public var targets: Targets = .stage1
        /// `stage2.num_iters`
        public var numIters: Int = 50000
        /// `stage2.batch_size`
        public var batchSize: Int = 128
        /// `stage2.base_lr`
        public var baseLR: Double = 2e-4
        /// `stage2.min_lr`
        public var minLR: Double = 1e-6
        /// `stage2.warmup_ratio`
        public var warmupRatio: Double = 0.15
        /// `stage2.weight_decay`
        public var weightDecay: Double = 1e-5
        /// `stage2.adamw_beta1`
        public var adamwBeta1: Double = 0.9
        /// `stage2.adamw_beta2`
        public var adamwBeta2: Double = 0.999
        /// `stage2.num_blocks`
        public var numBlocks: Int = 1
        /// `stage2.enable_pe`
        public var enablePe: Bool = true
        /// `stage2.save_freq`
        public var saveFreq: Int = 5000
        /// `stage2.val_freq`
        public var valFreq: Int = 1000
        /// `stage2.print_freq`
        public var printFreq: Int = 50

        public init() {}

        public static var fields: [SettingField<Self>] {
            [
                SettingField(
                    "targets", \.targets, Targets.kind,
                    "Training targets: stage-1 denoised features, or SRT ensembles (self-distillation)."),
                SettingField(
                    "num_iters", \.numIters, .int(1...10_000_000), dvt: "num_iterations",
                    "Training steps (the released run, sample_scripts/stage2.sh: 50000)."),
                SettingField(
                    "batch_size", \.batchSize, .int(1...4096), dvt: "batch_size × world size",
                    "Global batch: feature maps per step over all processes (the released run: 16 per GPU × 8 GPUs = 128)."),
                SettingField(
                    "base_lr", \.baseLR, .double(0...10), dvt: "base_lr",
                    "Learning rate for a batch of 256: lr = base_lr · sqrt(batch_size / 256)."),
                SettingField(
                    "min_lr", \.minLR, .double(0...10), dvt: "min_lr",
                    "Floor of the cosine decay."),
                SettingField(
                    "warmup_ratio", \.warmupRatio, .double(0...1),
                    "Fraction of num_iters of linear warmup from 0 (DVT: 15%)."),
                SettingField(
                    "weight_decay", \.weightDecay, .double(0...1), dvt: "weight_decay",
                    "AdamW decoupled weight decay."),
                SettingField(
                    "adamw_beta1", \.adamwBeta1, .double(0...1), dvt: "adamw_beta1",
                    "AdamW β1."),
                SettingField(
                    "adamw_beta2", \.adamwBeta2, .double(0...1), dvt: "adamw_beta2",
                    "AdamW β2."),
                SettingField(
                    "num_blocks", \.numBlocks, .int(1...24),
                    "Transformer blocks in the denoiser."),
                SettingField(
                    "enable_pe", \.enablePe, .bool, dvt: "enable_pe",
                    "Learnable position embedding before the block(s)."),
                SettingField(
                    "save_freq", \.saveFreq, .int(0...10_000_000), dvt: "save_freq",
                    "Steps between checkpoints (0 = end only)."),
                SettingField(
                    "val_freq", \.valFreq, .int(0...10_000_000),
                    "Steps between validation passes (0 = none)."),
                SettingField(
                    "print_freq", \.printFreq, .int(1...10_000_000), dvt: "print_freq",
                    "Steps between loss lines."),
            ]
        }
    }

    /// The `finetune.*` keys: fine-tuning the ViT (docs/finetune.md); null = the teacher's recipe.
    public struct Finetune: SettingsSection {
        public static let section = "finetune"

        /// `finetune.thaw`: which ViT parameters a fine-tuning run updates: SRT's `thaw` modes
        /// (donglao/srt distill_utils.py lines 28-44). SRT hard-codes `blocks.11`/`blocks.10` (a
        /// 12-block ViT-S/B); here `last` and `last2` mean the last one and two blocks of whatever
        /// depth the model has (Vision's `ThawMode.trains`).
        public enum Thaw: String, Codable, ConfigChoice {
            /// Every parameter (DVT stage 3 trains `model.parameters()`, main_distillation.py line 202).
            case all
            /// Parameters whose timm name contains `bias`.
            case bias
            /// The last block plus the final norm.
            case last
            /// The last two blocks plus the final norm.
            case last2
        }

        /// `finetune.loss`: the distillation objective.
        public enum Loss: String, Codable, ConfigChoice {
            /// DVT stage 3: `mse(p, t) + (1 − mean cos(p, t))`, cosine along channels
            /// (main_distillation.py lines 239-242; the stage-2 objective `denoiserLoss`).
            case mseCosine = "mse_cosine"
            /// SRT `--loss mse`: torch `MSELoss` (distill_utils.py `get_loss`).
            case mse
            /// SRT `--loss mae`: torch `L1Loss`.
            case l1
        }
        /// `finetune.teacher`: what the ViT is distilled towards.
        public enum Teacher: String, ConfigChoice {
            /// The frozen ViT followed by the stage-2 denoiser (DVT stage 3).
            case dvt
            /// The frozen ViT's own SRT ensemble.
            case srt
        }

        /// `finetune.cache_teacher`: where teacher maps are kept after their first use.
        public enum TeacherCache: String, ConfigChoice {
            case off = "none", memory, disk
        }

        /// `finetune.schedule`: DVT's cosine or SRT's step schedule.
        public enum Schedule: String, ConfigChoice {
            case cosine, step
        }

        /// `finetune.teacher`
        public var teacher: Teacher = .dvt
        /// `finetune.denoiser`
        public var denoiser: String? = nil
        /// `finetune.thaw`
        public var thaw: Thaw = .all
        /// `finetune.loss`
        public var loss: Loss? = nil
        /// `finetune.epochs`
        public var epochs: Int? = nil
        /// `finetune.num_iters`
        public var numIters: Int? = nil
        /// `finetune.batch_size`
        public var batchSize: Int? = nil
        /// `finetune.base_lr`
        public var baseLR: Double = 2e-4
        /// `finetune.lr`
        public var lr: Double? = nil
        /// `finetune.min_lr`
        public var minLR: Double = 1e-6
        /// `finetune.warmup_ratio`
        public var warmupRatio: Double = 0.15
        /// `finetune.schedule`
        public var schedule: Schedule? = nil
        /// `finetune.lr_steps`
        public var lrSteps: [Int] = [25, 40]
        /// `finetune.lr_decay`
        public var lrDecay: Double = 0.1
        /// `finetune.weight_decay`
        public var weightDecay: Double? = nil
        /// `finetune.l2_penalty`
        public var l2Penalty: Double? = nil
        /// `finetune.flip`
        public var flip: Bool = true
        /// `finetune.gradient_checkpointing`
        public var gradientCheckpointing: Bool = false
        /// `finetune.cache_teacher`
        public var cacheTeacher: TeacherCache = .off
        /// `finetune.export`
        public var export: String? = nil
        /// `finetune.save_freq`
        public var saveFreq: Int = 5000
        /// `finetune.print_freq`
        public var printFreq: Int = 50

        public init() {}

        public static var fields: [SettingField<Self>] {
            [
                SettingField(
                    "teacher", \.teacher, Teacher.kind,
                    "What the ViT is distilled towards: dvt = the frozen ViT + the stage-2 denoiser (DVT stage 3, main_distillation.py), srt = its own SRT ensemble (donglao/srt distill_utils.py); `--teacher` overrides."
                ),
                SettingField(
                    "denoiser", \.denoiser, .string, dvt: "denoiser_ckpt",
                    "Stage-2 denoiser for the dvt teacher (.safetensors from `dvt stage2`, or DVT's .pth); null = output_dir/stage2/denoiser.safetensors."
                ),
                SettingField(
                    "thaw", \.thaw, Thaw.kind, dvt: "unfreeze (SRT)",
                    "Trainable parameters: all, those named *bias*, the last block + final norm, or the last two blocks + final norm (SRT's thaw modes; DVT trains all)."
                ),
                SettingField(
                    "loss", \.loss, Loss.kind, dvt: "loss (SRT)",
                    "mse_cosine = MSE + (1 − cosine) (DVT, main_distillation.py lines 239-242); mse / l1 = SRT's mse / mae. null: dvt → mse_cosine, srt → mse."
                ),
                SettingField(
                    "epochs", \.epochs, .int(1...100_000), dvt: "num_epochs / epochs",
                    "Passes over the images; steps = epochs · max(1, images ÷ batch_size). null: dvt → 5 (sample_scripts/stage3.sh), srt → 50 (main.py)."
                ),
                SettingField(
                    "num_iters", \.numIters, .int(1...100_000_000), dvt: "num_iterations",
                    "Training steps; overrides epochs when set."),
                SettingField(
                    "batch_size", \.batchSize, .int(1...4096), dvt: "batch_size × world size",
                    "Images per step. null: dvt → 512 (64 per GPU × 8, sample_scripts/stage3.sh), srt → 1."),
                SettingField(
                    "base_lr", \.baseLR, .double(0...10), dvt: "blr",
                    "dvt teacher: lr = base_lr · sqrt(batch_size / 256) (main_distillation.py line 199)."),
                SettingField(
                    "lr", \.lr, .double(0...10), dvt: "lr (SRT)",
                    "Peak learning rate, used as is; null: dvt → from base_lr, srt → 3e-4 (main.py)."),
                SettingField(
                    "min_lr", \.minLR, .double(0...10), dvt: "min_lr",
                    "Floor of the cosine schedule."),
                SettingField(
                    "warmup_ratio", \.warmupRatio, .double(0...1),
                    "Fraction of the steps of linear warmup from 0 in the cosine schedule (main_distillation.py line 210)."),
                SettingField(
                    "schedule", \.schedule, Schedule.kind, dvt: "sched_type (SRT)",
                    "cosine = DVT's CosineScheduler (misc.py lines 211-241); step = lr · lr_decay per milestone epoch passed (SRT). null: dvt → cosine, srt → step."
                ),
                SettingField(
                    "lr_steps", \.lrSteps, .ints(count: 2, 0...100_000), dvt: "steps (SRT)",
                    "Step schedule: epochs e after which the rate drops (SRT multiplies by lr_decay once e < epoch, distill_utils.py line 10)."),
                SettingField(
                    "lr_decay", \.lrDecay, .double(0...1), dvt: "lr_decay (SRT)",
                    "Step schedule factor."),
                SettingField(
                    "weight_decay", \.weightDecay, .double(0...1), dvt: "weight_decay",
                    "AdamW decoupled weight decay. null: dvt → 1e-5, srt → 0 (SRT's optimiser has none, distill_utils.py line 19)."),
                SettingField(
                    "l2_penalty", \.l2Penalty, .double(0...10), dvt: "wd (SRT)",
                    "Adds l2_penalty · ‖θ‖₂ (unsquared, over the trainable parameters) to the loss (distill_utils.py lines 65-70, line 92). null: dvt → 0, srt → 1e-5."
                ),
                SettingField(
                    "flip", \.flip, .bool, dvt: "RandomHorizontalFlip",
                    "Random horizontal flip (p = 0.5) of every training image (main_distillation.py line 166)."),
                SettingField(
                    "gradient_checkpointing", \.gradientCheckpointing, .bool, dvt: "grad_checkpointing",
                    "Recompute each block's activations in backward instead of keeping them (less memory, about one more forward per step; docs/finetune.md)."
                ),
                SettingField(
                    "cache_teacher", \.cacheTeacher, TeacherCache.kind,
                    "Keep every (image, flip) teacher map after its first use (the teacher is frozen, so this is exact): memory, or disk = output_dir/finetune/teacher_cache/<fingerprint>/ too, reused by later and resumed runs; pays when epochs revisit the images."
                ),
                SettingField(
                    "export", \.export, .string,
                    "Where the fine-tuned ViT is written (timm state dict, safetensors); null = output_dir/finetune/vit.safetensors."),
                SettingField(
                    "save_freq", \.saveFreq, .int(0...10_000_000), dvt: "save_freq",
                    "Steps between checkpoints (0 = end only)."),
                SettingField(
                    "print_freq", \.printFreq, .int(1...10_000_000),
                    "Steps between loss lines (DVT logs every 50)."),
            ]
        }
    }

    /// The `srt.*` keys (docs/srt.md).
    public struct SRT: SettingsSection {
        public static let section = "srt"

        /// `srt.aggregate`: how the views of one SRT ensemble are combined.
        public enum Aggregate: String, Codable, ConfigChoice {
            case mean, median
        }
        /// `srt.dx`
        public var dx: Int = 3
        /// `srt.dy`
        public var dy: Int = 3
        /// `srt.aggregate`
        public var aggregate: Aggregate = .mean
        /// `srt.uniform`
        public var uniform: Bool = false
        /// `srt.batch_size`
        public var batchSize: Int = 8
        /// `srt.enabled`
        public var enabled: Bool = true

        public init() {}

        public static var fields: [SettingField<Self>] {
            [
                SettingField(
                    "dx", \.dx, .int(0...64),
                    "Horizontal shifts −dx…dx pixels."),
                SettingField(
                    "dy", \.dy, .int(0...64),
                    "Vertical shifts −dy…dy pixels."),
                SettingField(
                    "aggregate", \.aggregate, Aggregate.kind,
                    "How shifted views are combined."),
                SettingField(
                    "uniform", \.uniform, .bool,
                    "Weight every shift equally (default: the official code's, which counts the unshifted view twice)."),
                SettingField(
                    "batch_size", \.batchSize, .int(1...1024),
                    "Shifted images per ViT forward."),
                SettingField(
                    "enabled", \.enabled, .bool,
                    "Compute SRT features in `dvt run` (for metrics and srt targets)."),
            ]
        }
    }

    /// The `probe.*` keys: downstream linear probes (`dvt probe`, and the probe step of `dvt run`; docs/probe.md).
    public struct Probe: SettingsSection {
        public static let section = "probe"

        /// `probe.task`: the downstream task.
        public enum Task: String, Codable, ConfigChoice { case segmentation, depth }

        /// `probe.dataset`: the dataset layouts the probe reads (docs/probe.md has the trees).
        public enum Dataset: String, Codable, ConfigChoice {
            /// VOC2012: JPEGImages/<id>.jpg, SegmentationClass/<id>.png (palette PNG, read as
            /// palette *indices*; 255 = boundary, ignored), ImageSets/Segmentation/{train,val}.txt;
            /// 21 classes (vitb_voc2012_linear_config.py:47-51).
            case voc
            /// ADEChallengeData2016: images/{training,validation}/*.jpg, annotations/{training,
            /// validation}/*.png (gray, 0 = other), 150 classes with reduce_zero_label
            /// (vitb_ade20k_linear_config.py).
            case ade20k
            /// NYUv2 as DINOv2's depth code reads it (evaluation/depth/datasets/nyu.py:96-131):
            /// ROOT/nyu_train.txt and ROOT/nyu_test.txt, one "rgb depth focal" line per image with
            /// paths relative to ROOT (a leading / is dropped), depth "None" lines skipped; the
            /// depth PNG is 16-bit grayscale in millimetres (depth_scale 1000,
            /// vitb_nyu_linear_config.py:103).
            case nyu
            /// A generic folder: images/<stem>.{jpg,jpeg,png}, masks/<stem>.png (palette or gray
            /// index PNG), classes.txt (one class name per line, line k = class k), optional
            /// train.txt / val.txt (one stem per line; without them every 5th image in name order
            /// is validation).
            case folder
        }
        /// `probe.enabled`
        public var enabled: Bool = false
        /// `probe.task`
        public var task: Task = .segmentation
        /// `probe.dataset`
        public var dataset: Dataset = .voc
        /// `probe.root`
        public var root: String? = nil
        /// `probe.methods`
        public var methods: String = "raw,srt,stage1,stage2"
        /// `probe.official`
        public var official: Bool = false
        /// `probe.iterations`
        public var iterations: Int? = nil
        /// `probe.batch_size`
        public var batchSize: Int? = nil
        /// `probe.lr`
        public var lr: Double? = nil
        /// `probe.max_train`
        public var maxTrain: Int? = nil
        /// `probe.max_val`
        public var maxVal: Int? = nil

        public init() {}

        public static var fields: [SettingField<Self>] {
            [
                SettingField(
                    "enabled", \.enabled, .bool,
                    "Run the probe step at the end of `dvt run` (needs probe.root)."),
                SettingField(
                    "task", \.task, Task.kind, dvt: "--task (evaluate_dense_tasks.py)",
                    "Downstream task: semantic segmentation (mIoU) or monocular depth (RMSE)."),
                SettingField(
                    "dataset", \.dataset, Dataset.kind, dvt: "dataset_type",
                    "Dataset layout under probe.root (docs/probe.md)."),
                SettingField(
                    "root", \.root, .string, dvt: "data_root",
                    "Dataset root folder."),
                SettingField(
                    "methods", \.methods, .string,
                    "Comma-separated feature sources, one head each: raw, srt, stage1 (the run tree's denoised features), stage2 (the run's denoiser), or a denoiser file."
                ),
                SettingField(
                    "official", \.official, .bool,
                    "Train with the official protocol's numbers (40000 / 38400 iterations, batch 16) instead of the CPU preset."),
                SettingField(
                    "iterations", \.iterations, .int(1...10_000_000), dvt: "max_iters",
                    "Head training steps; null = the preset's (CPU 1000; official 40000 segmentation, 38400 depth)."),
                SettingField(
                    "batch_size", \.batchSize, .int(1...4096), dvt: "samples_per_gpu × GPUs",
                    "Feature maps per step; null = the preset's (CPU 8; official 16)."),
                SettingField(
                    "lr", \.lr, .double(0...10), dvt: "optimizer.lr",
                    "AdamW learning rate; null = DVT's (1e-3 segmentation, 5e-3 depth)."),
                SettingField(
                    "max_train", \.maxTrain, .int(1...10_000_000),
                    "Use at most this many training images (the first in split order); null = all."),
                SettingField(
                    "max_val", \.maxVal, .int(1...10_000_000),
                    "Evaluate on at most this many validation images; null = all."),
            ]
        }
    }
}

extension Precision: ConfigChoice {}
extension FeatureRows.Element: ConfigChoice {}
