import TensorCore

/// How well a denoising recovers a planted case's truth (`PlantedData`): the one scorer of
/// planted runs (stage 1, stage 2, `dvt metrics --planted`, the benches), each cosine named for
/// the two things it compares.
public struct PlantedScore: Sendable, Equatable {
    /// Centred cosine (`Metrics.centeredCosine`) of the raw whole-image features with the clean
    /// field F: the baseline.
    public var rawVsClean: Float
    /// Centred cosine of the denoised whole-image features with the clean field F.
    public var denoisedVsClean: Float
    /// Flat centred cosine (`Metrics.flatCenteredCosine`) of what the denoising removed
    /// (raw − denoised) with the planted artifact.
    public var removedVsPlanted: Float
    /// Flat centred cosine of stage 1's learnt shared artifact map G with the planted artifact
    /// (stage-1 outputs only).
    public var learntArtifactVsPlanted: Float?

    /// Scores the whole-image maps, all (H, W, C): `raw` (the planted stack's last view),
    /// `denoised`, and stage 1's `learntArtifact` G when there is one.
    public init(raw: Tensor, denoised: Tensor, cleanFull: Tensor, artifact: Tensor, learntArtifact: Tensor? = nil) {
        rawVsClean = Metrics.centeredCosine(raw, cleanFull)
        denoisedVsClean = Metrics.centeredCosine(denoised, cleanFull)
        removedVsPlanted = Metrics.flatCenteredCosine(withNoGrad { raw - denoised }, artifact)
        learntArtifactVsPlanted = learntArtifact.map { Metrics.flatCenteredCosine($0, artifact) }
    }

    /// Scores a stage-1 output (whole-image raw, denoised and G) against the planted truth.
    public init(stage1 output: Stage1Output, truth: PlantedData) {
        self.init(
            raw: output.raw, denoised: output.denoised, cleanFull: truth.cleanFull, artifact: truth.artifact,
            learntArtifact: output.sharedArtifacts)
    }
}
