import Foundation
import NN
import TensorCore

// DVT stage 1 for one image: raw ViT features of many crops decomposed into a clean field F,
// a shared position artifact G and a sparse residual.
// Letters: B sampled tokens, h × w the token grid of every view, C feature channels.

/// The per-image decomposition model of DVT stage 1 (everything but the field F):
///
/// ```
/// raw(view, token) ≈ F(global coords) + G(view coords) + h(raw)
/// ```
/// - `G` (h, w, C): the artifact map shared by all views, sampled bilinearly at each token's
///   position within its own view (`Tensor.gridSample`, align_corners=True).
/// - `h`: the residual predictor, C → C/4 → C/4 → C with ReLU, switched on for the second phase.
///
/// Parameter keys:
/// - `shared_artifacts` (h, w, C). DVT and the PyTorch port store it as (1, C, h, w) for
///   `F.grid_sample`; we keep it channel-last, so converting a torch state dict means
///   `permute(0, 2, 3, 1)[0]`.
/// - `residual_predictor.{0,2,4}.{weight,bias}` (torch `nn.Sequential` indices).
///
/// - Paper: Yang et al., "Denoising Vision Transformers" (ECCV 2024), §3.2, Eq. 3–5.
public final class SingleImageDenoiser: Module {
    public let height: Int
    public let width: Int
    public let dim: Int
    /// (h, w, C)
    public let sharedArtifacts: Tensor
    /// C → C/4 → C/4 → C
    public let residualPredictor: Sequential
    /// Whether `h` is part of the prediction and the loss (the second phase).
    public var residualOn = false

    /// DVT initialises the shared artifact map as `torch.randn(1, C, h, w) * 0.02`.
    public static let artifactInitStd: Float = 0.02
    /// Weight of the residual's regression onto the unexplained part (DVT `SingleImageDenoiser`: 0.1).
    public static let residualLossWeight: Float = 0.1
    /// Weight of the residual's L1 sparsity penalty (DVT `SingleImageDenoiser`: 0.02).
    public static let residualSparsityWeight: Float = 0.02

    /// - Parameter rng: draws G (normal · 0.02, channel-last order) and then h's Linears (torch default init).
    public init(height: Int, width: Int, dim: Int, rng: inout RandomGenerator) {
        precondition(height >= 1 && width >= 1, "SingleImageDenoiser: token grid must be at least 1×1, got \(height)×\(width)")
        precondition(dim >= 4, "SingleImageDenoiser: feature dimension must be >= 4 (the residual predictor is C/4 wide), got \(dim)")
        self.height = height
        self.width = width
        self.dim = dim
        sharedArtifacts = Tensor.normal([height, width, dim], std: Self.artifactInitStd, rng: &rng, requiresGrad: true)  // (h, w, C)
        residualPredictor = Sequential.reluMLP([dim, dim / 4, dim / 4, dim], rng: &rng)
    }

    public func namedParameters() -> [(String, Tensor)] {
        [("shared_artifacts", sharedArtifacts)] + prefixed("residual_predictor", residualPredictor.namedParameters())
    }

    /// Key of G among `namedParameters()`.
    public static let sharedArtifactsKey = "shared_artifacts"

    /// Ends the first phase: G stops learning, h joins the prediction (DVT's
    /// `stop_shared_artifacts_grad` + `start_residual_predictor`).
    public func startResidualPhase(enableResidualPredictor: Bool = true) {
        sharedArtifacts.requiresGrad = false
        sharedArtifacts.grad = nil
        if enableResidualPredictor { residualOn = true }
    }

    /// The separate terms of one step's loss (their weighted sum is `total`).
    public struct LossTerms {
        /// The scalar to back-propagate.
        public var total: Tensor
        /// MSE(pred, raw)
        public var patchL2: Float
        /// 1 − mean cos(pred, raw)
        public var cosine: Float
        /// MSE(h, detach(raw − F − G)), residual phase only.
        public var residual: Float?
        /// mean |h|, residual phase only.
        public var residualSparsity: Float?

        public var metrics: [String: Double] {
            var m = ["patch_l2_loss": Double(patchL2), "cosine_similarity_loss": Double(cosine)]
            if let residual { m["residual_loss"] = Double(residual) }
            if let residualSparsity { m["residual_sparsity_loss"] = Double(residualSparsity) }
            return m
        }
    }

    /// DVT's stage-1 loss on a batch of tokens:
    ///
    /// ```
    /// pred = F(global) + G(view) [+ detach(h(raw))]
    /// L = MSE(pred, raw) + (1 − mean_b cos(pred_b, raw_b))
    ///   [+ 0.1 · MSE(h(raw), detach(raw − F − G)) + 0.02 · mean |h(raw)|]
    /// ```
    /// (bracketed terms in the residual phase only). h enters the prediction detached, so F and
    /// G see it as a constant, and h learns only from its own two terms.
    /// - Parameters:
    ///   - raw: (B, C) raw features of the sampled tokens.
    ///   - globalCoords: (B, 2) their (x, y) in [0, 1] of the whole image.
    ///   - viewCoords: (B, 2) their (x, y) in [−1, 1] within their own view's token grid.
    public func loss(raw: Tensor, globalCoords: Tensor, viewCoords: Tensor, field: NeuralFeatureField) -> LossTerms {
        precondition(raw.rank == 2 && raw.shape[1] == dim, "SingleImageDenoiser.loss: raw must be (B, \(dim)), got \(raw.shape)")
        let clean = field(globalCoords)  // (B, C)
        let g = Tensor.gridSample(sharedArtifacts, viewCoords)  // (B, C)
        var pred = clean + g  // (B, C)
        var res: Tensor? = nil
        if residualOn {
            let r = residualPredictor(raw)  // (B, C)
            pred = pred + r.detach()
            res = r
        }
        let l2 = Tensor.mseLoss(pred, raw)
        let cos = 1 - Tensor.cosineSimilarity(pred, raw).mean()
        var total = l2 + cos
        var terms = LossTerms(total: total, patchL2: l2.item, cosine: cos.item)
        if let res {
            let target = withNoGrad { raw - clean - g }  // (B, C), detached
            let fit = Tensor.mseLoss(res, target)
            let sparsity = Tensor.l1Mean(res)
            total = total + Self.residualLossWeight * fit + Self.residualSparsityWeight * sparsity
            terms.total = total
            terms.residual = fit.item
            terms.residualSparsity = sparsity.item
        }
        return terms
    }
}
