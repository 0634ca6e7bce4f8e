import Foundation

// Pointwise activations with hand-written derivatives (one pass forward, one pass backward,
// no intermediate tensors), because they sit on every MLP hidden layer of a ViT.

extension Tensor {
    /// max(x, 0). The gradient at exactly 0 is 0, as in torch.
    public func relu() -> Tensor {
        Tensor.unaryMap(self) { Swift.max($0, 0) }.record("relu", [self]) { g in
            Tensor.accumulateMap(into: self, g, self) { gi, x in x > 0 ? gi : 0 }
        }
    }

    /// Exact (erf) GELU, torch's `F.gelu` default (`approximate='none'`):
    /// ```
    /// gelu(x)  = 0.5 · x · (1 + erf(x / √2)) = x · Φ(x)
    /// gelu'(x) = Φ(x) + x · φ(x),   φ(x) = exp(−x²/2) / √(2π)
    /// ```
    /// - Paper: Hendrycks & Gimpel, "Gaussian Error Linear Units (GELUs)", arXiv:1606.08415.
    public func gelu() -> Tensor {
        Tensor.unaryMap(self) { x in 0.5 * x * (1 + Foundation.erf(x * invSqrt2)) }.record("gelu", [self]) { g in
            Tensor.accumulateMap(into: self, g, self) { gi, x in
                let cdf = 0.5 * (1 + Foundation.erf(x * invSqrt2))
                let pdf = Foundation.exp(-0.5 * x * x) * invSqrt2Pi
                return gi * (cdf + x * pdf)
            }
        }
    }

    /// OpenAI CLIP's "QuickGELU", x · σ(1.702 x), used by CLIP's ViTs instead of exact GELU:
    /// ```
    /// d/dx = σ(1.702x) + 1.702 · x · σ(1.702x) · (1 − σ(1.702x))
    /// ```
    /// - Reference: openai/CLIP `model.py` (`QuickGELU`); 1.702 is the constant from the GELU
    ///   paper's sigmoid approximation x·σ(1.702x).
    public func quickGelu() -> Tensor {
        Tensor.unaryMap(self) { x in x / (1 + Foundation.exp(-quickGeluAlpha * x)) }.record("quickGelu", [self]) { g in
            Tensor.accumulateMap(into: self, g, self) { gi, x in
                let s = 1 / (1 + Foundation.exp(-quickGeluAlpha * x))
                return gi * (s + quickGeluAlpha * x * s * (1 - s))
            }
        }
    }

}

/// 1/√2, the argument scale of erf in the normal CDF Φ(x) = ½(1 + erf(x/√2)).
private let invSqrt2: Float = 0.70710678118654752
/// 1/√(2π), the normal density's constant.
private let invSqrt2Pi: Float = 0.39894228040143268
/// The sigmoid slope of CLIP's QuickGELU (Hendrycks & Gimpel, arXiv:1606.08415 §2).
private let quickGeluAlpha: Float = 1.702
