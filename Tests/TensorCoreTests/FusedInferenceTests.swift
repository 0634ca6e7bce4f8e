import CKernels
import TestSupport
import Testing

@testable import TensorCore

/// The inference fusions of a ViT block held to their composed versions, bit for bit:
/// `Tensor.residual` (x + a·γ), `Tensor.selfAttention` (bf16 activations between qkv,
/// attention and proj) and the residual sums in the epilogues of proj and fc2
/// (`Tensor.linearResidual`, oneDNN binary post-ops).
@Suite("fused block inference")
struct FusedInferenceTests {
    @Test("residual = x + a * gamma (and x + a) bit for bit at inference; gradients through the composition")
    func residualMatchesComposed() {
        for (rows, c) in [(1, 1), (3, 7), (1370, 768)] {
            let x = randn([1, rows, c], seed: 60, requiresGrad: true), a = randn([1, rows, c], seed: 61, requiresGrad: true)
            let gamma = randn([c], seed: 62, scale: 1e-3, requiresGrad: true)
            let fused = withNoGrad { Tensor.residual(x, a, scale: gamma).scalars }
            #expect(fused == withNoGrad { (x + a * gamma).scalars }, "rows \(rows) C \(c), with scale")
            #expect(withNoGrad { Tensor.residual(x, a, scale: nil).scalars } == withNoGrad { (x + a).scalars }, "rows \(rows) C \(c)")
            let y = Tensor.residual(x, a, scale: gamma)
            #expect(y.scalars == fused)
            (y * y).sum().backward()
            #expect(x.grad != nil && a.grad != nil && gamma.grad != nil, "gradients flow through the composed path")
        }
    }

    @Test(
        "selfAttention = linear(multiHeadAttention(linear)) bit for bit at inference, bf16 and fp32 (N = 1, 65, 1370; batch 2 at N 150)",
        arguments: [(1, 1), (1, 65), (2, 150), (1, 1370)])
    func selfAttentionMatchesComposed(batch: Int, n: Int) {
        let c = 128, heads = 2
        let x = randn([batch, n, c], seed: 70 + UInt64(n), requiresGrad: false)
        let wqkv = randn([3 * c, c], seed: 71, scale: 0.1, requiresGrad: true), bqkv = randn([3 * c], seed: 72, requiresGrad: true)
        let wp = randn([c, c], seed: 73, scale: 0.1, requiresGrad: true), bp = randn([c], seed: 74, requiresGrad: true)
        for precision in Precision.allCases {
            let fused = withNoGrad {
                precision.run { Tensor.selfAttention(x, qkvWeight: wqkv, qkvBias: bqkv, projWeight: wp, projBias: bp, heads: heads).scalars }
            }
            let composed = withNoGrad {
                precision.run {
                    Tensor.linear(Tensor.multiHeadAttention(qkv: Tensor.linear(x, wqkv, bqkv), heads: heads), wp, bp).scalars
                }
            }
            #expect(fused == composed, "B \(batch) N \(n) \(precision): max |diff| \(zip(fused, composed).map { abs($0 - $1) }.max() ?? 0)")
        }
        let y = Precision.bf16.run { Tensor.selfAttention(x, qkvWeight: wqkv, qkvBias: nil, projWeight: wp, projBias: bp, heads: heads) }
        (y * y).sum().backward()
        #expect(wqkv.grad != nil && bp.grad != nil, "gradients flow through the composed path")
    }

    @Test(
        "linearResidual = residual(h, linear(x, w, b), scale) bit for bit at inference, fp32 and bf16 (with and without scale and bias, split rows)",
        arguments: [(1, 5, 3), (65, 64, 48), (1370, 96, 64)])
    func linearResidualMatchesComposed(rows: Int, inF: Int, outF: Int) {
        let x = randn([1, rows, inF], seed: 80, requiresGrad: false), h = randn([1, rows, outF], seed: 81, requiresGrad: false)
        let w = randn([outF, inF], seed: 82, scale: 0.1, requiresGrad: true), b = randn([outF], seed: 83, requiresGrad: true)
        let gamma = randn([outF], seed: 84, scale: 1e-2, requiresGrad: true)
        for precision in Precision.allCases {
            for (bias, scale) in [(b, gamma), (nil, gamma), (b, nil)] as [(Tensor?, Tensor?)] {
                let fused = withNoGrad { precision.run { Tensor.linearResidual(x, w, bias, residual: h, scale: scale).scalars } }
                let composed = withNoGrad { precision.run { Tensor.residual(h, Tensor.linear(x, w, bias), scale: scale).scalars } }
                #expect(
                    fused == composed,
                    "rows \(rows) \(precision) bias \(bias != nil) scale \(scale != nil): max |diff| \(zip(fused, composed).map { abs($0 - $1) }.max() ?? 0)")
            }
        }
        let y = Tensor.linearResidual(x, w, b, residual: h, scale: gamma)
        (y * y).sum().backward()
        #expect(w.grad != nil && b.grad != nil && gamma.grad != nil, "gradients flow through the composed path")
    }

    @Test("mlpGELU and selfAttention with a residual = the residual of their outputs, bit for bit, fp32 and bf16")
    func blockResidualsMatchComposed() {
        let n = 150, c = 64, hidden = 256
        let x = randn([1, n, c], seed: 90, requiresGrad: false), h = randn([1, n, c], seed: 91, requiresGrad: false)
        let w1 = randn([hidden, c], seed: 92, scale: 0.1, requiresGrad: false), b1 = randn([hidden], seed: 93, requiresGrad: false)
        let w2 = randn([c, hidden], seed: 94, scale: 0.1, requiresGrad: false), b2 = randn([c], seed: 95, requiresGrad: false)
        let wqkv = randn([3 * c, c], seed: 96, scale: 0.1, requiresGrad: false), bqkv = randn([3 * c], seed: 97, requiresGrad: false)
        let wp = randn([c, c], seed: 98, scale: 0.1, requiresGrad: false), bp = randn([c], seed: 99, requiresGrad: false)
        let gamma = randn([c], seed: 100, scale: 1e-2, requiresGrad: false)
        for precision in Precision.allCases {
            for scale in [gamma, nil] as [Tensor?] {
                let mlp = withNoGrad { precision.run { Tensor.mlpGELU(x, w1, b1, w2, b2, residual: h, scale: scale).scalars } }
                let mlpComposed = withNoGrad { precision.run { Tensor.residual(h, Tensor.mlpGELU(x, w1, b1, w2, b2), scale: scale).scalars } }
                #expect(mlp == mlpComposed, "mlpGELU \(precision) scale \(scale != nil)")
                let att = withNoGrad {
                    precision.run {
                        Tensor.selfAttention(x, qkvWeight: wqkv, qkvBias: bqkv, projWeight: wp, projBias: bp, heads: 2, residual: h, scale: scale).scalars
                    }
                }
                let attComposed = withNoGrad {
                    precision.run {
                        Tensor.residual(
                            h, Tensor.selfAttention(x, qkvWeight: wqkv, qkvBias: bqkv, projWeight: wp, projBias: bp, heads: 2), scale: scale
                        ).scalars
                    }
                }
                #expect(att == attComposed, "selfAttention \(precision) scale \(scale != nil)")
            }
        }
    }

    @Test(
        "softmax's exp for x <= 0 = the general AVX-512 exp bit for bit (every 997th float in [-100, 0], the underflow edge, -0, -inf, NaN)",
        .enabled(if: CPUKernels.avx512, "this CPU has no AVX-512: the C kernels are never called"))
    func expNonpositive() {
        var x: [Float] = []
        var bits = Float(-0.0).bitPattern
        while bits <= Float(-100).bitPattern {
            x.append(Float(bitPattern: bits))
            bits += 997
        }
        x += (0..<20_000).map { -87.5 + Float($0) * 1e-5 }  // around the clamp at -87.33654 and subnormal results
        x += [-.infinity, .nan, -Float.leastNonzeroMagnitude, -Float.leastNormalMagnitude, -1e-30]
        var general = [Float](repeating: 0, count: x.count), trimmed = general
        general.withUnsafeMutableBufferPointer { dvt_exp_avx512(x, $0.baseAddress!, x.count, 0) }
        trimmed.withUnsafeMutableBufferPointer { dvt_exp_avx512(x, $0.baseAddress!, x.count, 1) }
        let differ = (0..<x.count).filter { general[$0].bitPattern != trimmed[$0].bitPattern }
        #expect(differ.isEmpty, "\(differ.count) of \(x.count) differ, first at x = \(differ.first.map { x[$0] } ?? 0)")
        #expect(trimmed[x.count - 4].isNaN && trimmed[x.count - 5] == 0 && general[1000] > 0)
    }
}
