import Foundation

// Typed settings: every schema key as a Swift property, read once from a validated
// `ResolvedConfig`. Code above this module reads `settings.stage1.numIters`, never a string key;
// ConfigSchema (next to this file) stays the one place of the defaults, ranges, doc lines and
// DVT names, and SettingsTests checks that every schema key has its property here and back.
// Types follow the schema: nullable keys are optionals, strings and choices are `String?`.

/// The whole configuration, by section (room for `probe` and `precision` sections).
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


    /// Backbone, data and run keys (top level).
    public struct Run: Sendable, Equatable {
        /// `model`
        public var model: String?
        /// `weights`
        public var weights: String?
        /// `random_init`
        public var randomInit: Int?
        /// `input_size`
        public var inputSize: [Int]
        /// `stride_size`
        public var strideSize: Int?
        /// `layer`
        public var layer: Int
        /// `layer_depth_ratio`
        public var layerDepthRatio: Double?
        /// `data_root`
        public var dataRoot: String?
        /// `data_list`
        public var dataList: String?
        /// `val_list`
        public var valList: String?
        /// `output_dir`
        public var outputDir: String?
        /// `seed`
        public var seed: Int
        /// `precision`: `fp32` or `bf16`
        public var precision: String?

        public init(_ c: ResolvedConfig) {
            model = c.string("model")
            weights = c.string("weights")
            randomInit = c.optionalInt("random_init")
            inputSize = c.ints("input_size")
            strideSize = c.optionalInt("stride_size")
            layer = c.int("layer")
            layerDepthRatio = c.optionalDouble("layer_depth_ratio")
            dataRoot = c.string("data_root")
            dataList = c.string("data_list")
            valList = c.string("val_list")
            outputDir = c.string("output_dir")
            seed = c.int("seed")
            precision = c.string("precision")
        }

        /// Schema key → property name, for the consistency test.
        public static let keyNames: [String: String] = [
            "model": "model",
            "weights": "weights",
            "random_init": "randomInit",
            "input_size": "inputSize",
            "stride_size": "strideSize",
            "layer": "layer",
            "layer_depth_ratio": "layerDepthRatio",
            "data_root": "dataRoot",
            "data_list": "dataList",
            "val_list": "valList",
            "output_dir": "outputDir",
            "seed": "seed",
            "precision": "precision",
        ]
    }

    /// The `stage1.*` keys.
    public struct Stage1: Sendable, Equatable {
        /// `stage1.num_views`
        public var numViews: Int
        /// `stage1.num_iters`
        public var numIters: Int
        /// `stage1.warmup_iters`
        public var warmupIters: Int?
        /// `stage1.lr`
        public var lr: Double
        /// `stage1.min_lr`
        public var minLR: Double
        /// `stage1.weight_decay`
        public var weightDecay: Double
        /// `stage1.loss_scale`
        public var lossScale: Double
        /// `stage1.pixel_bsz`
        public var pixelBsz: Int
        /// `stage1.freeze_shared_artifacts_after`
        public var freezeSharedArtifactsAfter: Double
        /// `stage1.enable_residual_predictor`
        public var enableResidualPredictor: Bool
        /// `stage1.n_levels`
        public var nLevels: Int
        /// `stage1.n_features_per_level`
        public var nFeaturesPerLevel: Int
        /// `stage1.log2_hashmap_size`
        public var log2HashmapSize: Int
        /// `stage1.base_resolution`
        public var baseResolution: Int
        /// `stage1.max_resolution`
        public var maxResolution: Int
        /// `stage1.coord_jitter`
        public var coordJitter: Double
        /// `stage1.hash_table_adam`
        public var hashTableAdam: String?
        /// `stage1.shared_artifacts_weight_decay`
        public var sharedArtifactsWeightDecay: Double?
        /// `stage1.view_features_dtype`
        public var viewFeaturesDtype: String?
        /// `stage1.save_extras`
        public var saveExtras: Bool
        /// `stage1.vis_every`
        public var visEvery: Int
        /// `stage1.print_freq`
        public var printFreq: Int

        public init(_ c: ResolvedConfig) {
            numViews = c.int("stage1.num_views")
            numIters = c.int("stage1.num_iters")
            warmupIters = c.optionalInt("stage1.warmup_iters")
            lr = c.double("stage1.lr")
            minLR = c.double("stage1.min_lr")
            weightDecay = c.double("stage1.weight_decay")
            lossScale = c.double("stage1.loss_scale")
            pixelBsz = c.int("stage1.pixel_bsz")
            freezeSharedArtifactsAfter = c.double("stage1.freeze_shared_artifacts_after")
            enableResidualPredictor = c.bool("stage1.enable_residual_predictor")
            nLevels = c.int("stage1.n_levels")
            nFeaturesPerLevel = c.int("stage1.n_features_per_level")
            log2HashmapSize = c.int("stage1.log2_hashmap_size")
            baseResolution = c.int("stage1.base_resolution")
            maxResolution = c.int("stage1.max_resolution")
            coordJitter = c.double("stage1.coord_jitter")
            hashTableAdam = c.string("stage1.hash_table_adam")
            sharedArtifactsWeightDecay = c.optionalDouble("stage1.shared_artifacts_weight_decay")
            viewFeaturesDtype = c.string("stage1.view_features_dtype")
            saveExtras = c.bool("stage1.save_extras")
            visEvery = c.int("stage1.vis_every")
            printFreq = c.int("stage1.print_freq")
        }

        /// Schema key → property name, for the consistency test.
        public static let keyNames: [String: String] = [
            "stage1.num_views": "numViews",
            "stage1.num_iters": "numIters",
            "stage1.warmup_iters": "warmupIters",
            "stage1.lr": "lr",
            "stage1.min_lr": "minLR",
            "stage1.weight_decay": "weightDecay",
            "stage1.loss_scale": "lossScale",
            "stage1.pixel_bsz": "pixelBsz",
            "stage1.freeze_shared_artifacts_after": "freezeSharedArtifactsAfter",
            "stage1.enable_residual_predictor": "enableResidualPredictor",
            "stage1.n_levels": "nLevels",
            "stage1.n_features_per_level": "nFeaturesPerLevel",
            "stage1.log2_hashmap_size": "log2HashmapSize",
            "stage1.base_resolution": "baseResolution",
            "stage1.max_resolution": "maxResolution",
            "stage1.coord_jitter": "coordJitter",
            "stage1.hash_table_adam": "hashTableAdam",
            "stage1.shared_artifacts_weight_decay": "sharedArtifactsWeightDecay",
            "stage1.view_features_dtype": "viewFeaturesDtype",
            "stage1.save_extras": "saveExtras",
            "stage1.vis_every": "visEvery",
            "stage1.print_freq": "printFreq",
        ]
    }

    /// The `stage2.*` keys.
    public struct Stage2: Sendable, Equatable {
        /// `stage2.targets`
        public var targets: String?
        /// `stage2.num_iters`
        public var numIters: Int
        /// `stage2.batch_size`
        public var batchSize: Int
        /// `stage2.base_lr`
        public var baseLR: Double
        /// `stage2.min_lr`
        public var minLR: Double
        /// `stage2.warmup_ratio`
        public var warmupRatio: Double
        /// `stage2.weight_decay`
        public var weightDecay: Double
        /// `stage2.adamw_beta1`
        public var adamwBeta1: Double
        /// `stage2.adamw_beta2`
        public var adamwBeta2: Double
        /// `stage2.num_blocks`
        public var numBlocks: Int
        /// `stage2.enable_pe`
        public var enablePe: Bool
        /// `stage2.save_freq`
        public var saveFreq: Int
        /// `stage2.val_freq`
        public var valFreq: Int
        /// `stage2.print_freq`
        public var printFreq: Int

        public init(_ c: ResolvedConfig) {
            targets = c.string("stage2.targets")
            numIters = c.int("stage2.num_iters")
            batchSize = c.int("stage2.batch_size")
            baseLR = c.double("stage2.base_lr")
            minLR = c.double("stage2.min_lr")
            warmupRatio = c.double("stage2.warmup_ratio")
            weightDecay = c.double("stage2.weight_decay")
            adamwBeta1 = c.double("stage2.adamw_beta1")
            adamwBeta2 = c.double("stage2.adamw_beta2")
            numBlocks = c.int("stage2.num_blocks")
            enablePe = c.bool("stage2.enable_pe")
            saveFreq = c.int("stage2.save_freq")
            valFreq = c.int("stage2.val_freq")
            printFreq = c.int("stage2.print_freq")
        }

        /// Schema key → property name, for the consistency test.
        public static let keyNames: [String: String] = [
            "stage2.targets": "targets",
            "stage2.num_iters": "numIters",
            "stage2.batch_size": "batchSize",
            "stage2.base_lr": "baseLR",
            "stage2.min_lr": "minLR",
            "stage2.warmup_ratio": "warmupRatio",
            "stage2.weight_decay": "weightDecay",
            "stage2.adamw_beta1": "adamwBeta1",
            "stage2.adamw_beta2": "adamwBeta2",
            "stage2.num_blocks": "numBlocks",
            "stage2.enable_pe": "enablePe",
            "stage2.save_freq": "saveFreq",
            "stage2.val_freq": "valFreq",
            "stage2.print_freq": "printFreq",
        ]
    }

    /// The `srt.*` keys.
    public struct SRT: Sendable, Equatable {
        /// `srt.dx`
        public var dx: Int
        /// `srt.dy`
        public var dy: Int
        /// `srt.aggregate`
        public var aggregate: String?
        /// `srt.uniform`
        public var uniform: Bool
        /// `srt.batch_size`
        public var batchSize: Int
        /// `srt.enabled`
        public var enabled: Bool

        public init(_ c: ResolvedConfig) {
            dx = c.int("srt.dx")
            dy = c.int("srt.dy")
            aggregate = c.string("srt.aggregate")
            uniform = c.bool("srt.uniform")
            batchSize = c.int("srt.batch_size")
            enabled = c.bool("srt.enabled")
        }

        /// Schema key → property name, for the consistency test.
        public static let keyNames: [String: String] = [
            "srt.dx": "dx",
            "srt.dy": "dy",
            "srt.aggregate": "aggregate",
            "srt.uniform": "uniform",
            "srt.batch_size": "batchSize",
            "srt.enabled": "enabled",
        ]
    }
}

extension DVTSettings {
    /// The `probe.*` keys.
    public struct Probe: Sendable, Equatable {
        /// `probe.enabled`
        public var enabled: Bool
        /// `probe.task`
        public var task: String?
        /// `probe.dataset`
        public var dataset: String?
        /// `probe.root`
        public var root: String?
        /// `probe.methods`
        public var methods: String?
        /// `probe.official`
        public var official: Bool
        /// `probe.iterations`
        public var iterations: Int?
        /// `probe.batch_size`
        public var batchSize: Int?
        /// `probe.lr`
        public var lr: Double?
        /// `probe.max_train`
        public var maxTrain: Int?
        /// `probe.max_val`
        public var maxVal: Int?

        public init(_ c: ResolvedConfig) {
            enabled = c.bool("probe.enabled")
            task = c.string("probe.task")
            dataset = c.string("probe.dataset")
            root = c.string("probe.root")
            methods = c.string("probe.methods")
            official = c.bool("probe.official")
            iterations = c.optionalInt("probe.iterations")
            batchSize = c.optionalInt("probe.batch_size")
            lr = c.optionalDouble("probe.lr")
            maxTrain = c.optionalInt("probe.max_train")
            maxVal = c.optionalInt("probe.max_val")
        }

        /// Schema key → property name, for the consistency test.
        public static let keyNames: [String: String] = [
            "probe.enabled": "enabled", "probe.task": "task", "probe.dataset": "dataset", "probe.root": "root",
            "probe.methods": "methods", "probe.official": "official", "probe.iterations": "iterations",
            "probe.batch_size": "batchSize", "probe.lr": "lr", "probe.max_train": "maxTrain", "probe.max_val": "maxVal",
        ]
    }
}

extension ResolvedConfig {
    /// The typed view of this configuration.
    public var settings: DVTSettings { DVTSettings(self) }
}
