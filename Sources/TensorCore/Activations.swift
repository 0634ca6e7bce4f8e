import CKernels

// Pointwise activations with hand-written derivatives: one vectorised pass forward, one pass
// backward, no intermediate tensors, because they run on every MLP hidden layer of a ViT
// (B·N·4C elements). The loops are written out here rather than through `unaryMap`, whose
// per-element closure call costs more than the math; GELU's erf and QuickGELU's exp use the
// vectorised RowKernels forms (libm's erff was 18 ns per element).

extension Tensor {
    /// max(x, 0). The gradient at exactly 0 is 0, as in torch.
    public func relu() -> Tensor {
        let out = activationForward { x in x.replacing(with: 0, where: x .< 0) }
        return out.record("relu", [self]) { g in
            self.activationBackward(g) { gv, x in gv.replacing(with: 0, where: .!(x .> 0)) }
        }
    }

    /// Exact (erf) GELU, torch's `F.gelu` default (`approximate='none'`):
    /// ```
    /// gelu(x)  = 0.5 · x · (1 + erf(x / √2)) = x · Φ(x)
    /// gelu'(x) = Φ(x) + x · φ(x),   φ(x) = exp(−x²/2) / √(2π)
    /// ```
    /// Φ comes from a Chebyshev fit of erfc with relative error ~1e-7 (see
    /// `RowKernels.normalCDF`), within a few float ulp of torch.
    /// - Paper: Hendrycks & Gimpel, "Gaussian Error Linear Units (GELUs)", arXiv:1606.08415.
    public func gelu() -> Tensor {
        if CPUKernels.avx512 { return geluAVX512() }
        return geluSIMD8()
    }

    /// GELU through the AVX-512 C kernels (CPUKernels), same formulas as `geluSIMD8`.
    func geluAVX512() -> Tensor {
        let out = Tensor.uninitialized(shape)
        let px = ptr, py = out.ptr
        Parallel.forRanges(count, grain: 1 << 14) { r in
            dvt_gelu_forward_avx512(px + r.lowerBound, py + r.lowerBound, r.count)
        }
        return out.record("gelu", [self]) { g in
            let gx = self.gradBuffer(), pg = g.ptr, px = self.ptr
            Parallel.forRanges(self.count, grain: 1 << 14) { r in
                dvt_gelu_backward_avx512(gx + r.lowerBound, pg + r.lowerBound, px + r.lowerBound, r.count)
            }
        }
    }

    /// GELU through the Swift SIMD8 kernels (the reference the AVX-512 path is tested against).
    func geluSIMD8() -> Tensor {
        let out = activationForward { x in x * RowKernels.normalCDF(x) }
        return out.record("gelu", [self]) { g in
            self.activationBackward(g) { gv, x in
                let pdf = RowKernels.exp(-0.5 * x * x) * invSqrt2Pi
                return gv * (RowKernels.normalCDF(x) + x * pdf)
            }
        }
    }

    /// OpenAI CLIP's "QuickGELU", x · σ(1.702 x), used by CLIP's ViTs instead of exact GELU:
    /// ```
    /// d/dx = σ(1.702x) + 1.702 · x · σ(1.702x) · (1 − σ(1.702x))
    /// ```
    /// - Reference: openai/CLIP `model.py` (`QuickGELU`); 1.702 is the constant of the GELU
    ///   paper's sigmoid approximation x·σ(1.702x).
    public func quickGelu() -> Tensor {
        let out = activationForward { x in x / (1 + RowKernels.exp(-quickGeluAlpha * x)) }
        return out.record("quickGelu", [self]) { g in
            self.activationBackward(g) { gv, x in
                let s = 1 / (1 + RowKernels.exp(-quickGeluAlpha * x))
                return gv * (s + quickGeluAlpha * x * s * (1 - s))
            }
        }
    }

    /// The tanh approximation of GELU, torch's `F.gelu(x, approximate="tanh")` (transformers'
    /// `gelu_pytorch_tanh`, SigLIP's `hidden_act`):
    /// ```
    /// u = √(2/π) · (x + 0.044715 x³)
    /// f(x)  = 0.5 · x · (1 + tanh u) = x · σ(2u)
    /// f'(x) = s + 2 · x · s · (1 − s) · √(2/π) · (1 + 3 · 0.044715 x²),   s = σ(2u)
    /// ```
    /// The sigmoid form avoids the cancellation of 1 + tanh u for negative x.
    public func geluTanh() -> Tensor {
        let out = activationForward { x in x * geluTanhGate(x) }
        return out.record("geluTanh", [self]) { g in
            self.activationBackward(g) { gv, x in
                let s = geluTanhGate(x)
                let du = sqrt2OverPi * (1 + 3 * geluTanhCubic * x * x)
                return gv * (s + 2 * x * s * (1 - s) * du)
            }
        }
    }

    /// out = f(self), split over cores. No graph.
    @inline(__always)
    private func activationForward(_ f: (SIMD8<Float>) -> SIMD8<Float>) -> Tensor {
        let out = Tensor.uninitialized(shape)
        let px = ptr, py = out.ptr
        Parallel.forRanges(count, grain: 1 << 14) { r in
            RowKernels.map(px + r.lowerBound, py + r.lowerBound, r.count, f)
        }
        return out
    }

    /// self.grad += f(g, self), split over cores.
    @inline(__always)
    private func activationBackward(_ g: Tensor, _ f: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>) {
        let (gx, fresh) = gradBufferForAdd(), pg = g.ptr, px = ptr
        Parallel.forRanges(count, grain: 1 << 14) { r in
            if fresh {  // 0 + f: the bits of a zeroed buffer after +=
                RowKernels.accumulateIntoFresh(gx + r.lowerBound, pg + r.lowerBound, px + r.lowerBound, r.count, f)
            } else {
                RowKernels.accumulate(gx + r.lowerBound, pg + r.lowerBound, px + r.lowerBound, r.count, f)
            }
        }
    }
}

/// σ(2u) = 0.5 · (1 + tanh u) of the tanh GELU, lane-wise (exp saturates to 0 or +∞, giving 1 or 0).
@inline(__always)
private func geluTanhGate(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let u = sqrt2OverPi * (x + geluTanhCubic * x * x * x)
    return 1 / (1 + RowKernels.exp(-2 * u))
}

/// √(2/π) and the cubic coefficient of the tanh GELU (Hendrycks & Gimpel, arXiv:1606.08415 §2).
private let sqrt2OverPi: Float = 0.7978845608028654
private let geluTanhCubic: Float = 0.044715

/// 1/√(2π), the normal density's constant.
private let invSqrt2Pi: Float = 0.39894228040143268
/// The sigmoid slope of CLIP's QuickGELU (Hendrycks & Gimpel, arXiv:1606.08415 §2).
private let quickGeluAlpha: Float = 1.702
