import DVT
import Foundation

extension Stage1Settings {
    /// The `stage1.*` keys of a configuration.
    public init(config c: ResolvedConfig) {
        self.init()
        numIters = c.int("stage1.num_iters")
        warmupIters = c.optionalInt("stage1.warmup_iters")
        lr = c.double("stage1.lr")
        minLR = c.double("stage1.min_lr")
        weightDecay = c.double("stage1.weight_decay")
        pixelBsz = c.int("stage1.pixel_bsz")
        freezeSharedArtifactsAfter = c.double("stage1.freeze_shared_artifacts_after")
        nLevels = c.int("stage1.n_levels")
        nFeaturesPerLevel = c.int("stage1.n_features_per_level")
        log2HashmapSize = c.int("stage1.log2_hashmap_size")
        baseResolution = c.int("stage1.base_resolution")
        maxResolution = c.int("stage1.max_resolution")
        enableResidualPredictor = c.bool("stage1.enable_residual_predictor")
        coordJitter = c.double("stage1.coord_jitter")
        hashTableAdam = HashTableAdam(rawValue: c.string("stage1.hash_table_adam")!) ?? .dense
        sharedArtifactsWeightDecay = c.optionalDouble("stage1.shared_artifacts_weight_decay")
    }
}
