import DVT
import Foundation
import Settings

extension Stage1Settings {
    /// The method's stage-1 settings from the typed `stage1.*` section of a configuration.
    public init(config c: ResolvedConfig) {
        self.init(c.settings.stage1)
    }

    public init(_ t: DVTSettings.Stage1) {
        self.init()
        numIters = t.numIters
        warmupIters = t.warmupIters
        lr = t.lr
        minLR = t.minLR
        weightDecay = t.weightDecay
        lossScale = t.lossScale
        pixelBsz = t.pixelBsz
        freezeSharedArtifactsAfter = t.freezeSharedArtifactsAfter
        nLevels = t.nLevels
        nFeaturesPerLevel = t.nFeaturesPerLevel
        log2HashmapSize = t.log2HashmapSize
        baseResolution = t.baseResolution
        maxResolution = t.maxResolution
        enableResidualPredictor = t.enableResidualPredictor
        coordJitter = t.coordJitter
        hashTableAdam = HashTableAdam(rawValue: t.hashTableAdam) ?? .deferred
        sharedArtifactsWeightDecay = t.sharedArtifactsWeightDecay
        viewFeaturesDtype = Stage1Settings.ViewFeaturesDtype(rawValue: t.viewFeaturesDtype) ?? .fp32
    }
}
