import Foundation
import NN
import TensorCore
import TestSupport
import Testing

/// The block fixture (timm, fp32) run with bf16 products (`Precision.bf16`).
///
/// Tolerance: bf16 keeps 8 significant bits, u = 2⁻⁸ ≈ 3.9e-3. Every product term carries up to
/// 2u of relative error; the block chains six products forward (qkv, q·kᵀ, P·v, proj, fc1, fc2)
/// and twice as many backward, and the errors add roughly in quadrature while layer norm and
/// softmax keep them from compounding. Measured on this fixture: forward max abs error 2.1e-3
/// of max |y|, gradients 7.8e-3 of their max abs (printed by the test; docs/precision.md). The
/// bounds are 2e-2 (forward, ≈ 5u) and 4e-2 (gradients, ≈ 10u) relative to the largest
/// magnitude: room for bf16's rounding on other seeds, and far below the O(1) error of a wrong
/// kernel (a dropped term, a transposed operand).
@Suite("Block in bf16")
struct BF16BlockTests {
    @Test("Block forward and gradients match timm fp32 within bf16's tolerance")
    func blockMatchesTimmInBF16() throws {
        let f = try readF32Safetensors(fixturesDirectory.appendingPathComponent("block/block.safetensors"))
        var rng = RandomGenerator(seed: 0)
        let block = Block(64, heads: 2, mlpRatio: 4, activation: .gelu, normEps: 1e-6, rng: &rng)
        var weights: [String: Tensor] = [:]
        for (k, v) in f where k.hasPrefix("param.") { weights[String(k.dropFirst("param.".count))] = v }
        try block.load(stateDict: weights, source: "block.safetensors")
        let x = f["x"]!.copy()
        x.requiresGrad = true
        let y = Precision.bf16.run { block(x) }
        let yScale = f["y"]!.scalars.map { abs($0) }.max()!
        let yErr = zip(y.scalars, f["y"]!.scalars).map { abs($0 - $1) }.max()!
        #expect(yErr <= 2e-2 * yScale, "forward: max abs error \(yErr) > 2e-2 · \(yScale)")
        #expect(yErr > 0, "bf16 must change the forward")
        // Backward runs outside the binding: the ops use the precision they recorded at forward time.
        (y * f["r"]!).sum().backward()
        var worst: Float = 0
        func checkGrad(_ got: Tensor?, _ want: Tensor, _ what: String) {
            guard let got else { Issue.record("\(what): no gradient"); return }
            let scale = want.scalars.map { abs($0) }.max()!
            let err = zip(got.scalars, want.scalars).map { abs($0 - $1) }.max()! / max(scale, 1e-30)
            worst = max(worst, err)
            #expect(err <= 4e-2, "\(what): max abs error \(err) of max |grad| > 4e-2")
        }
        checkGrad(x.grad, f["grad.x"]!, "dx")
        for (name, p) in block.namedParameters() {
            checkGrad(p.grad, f["grad.\(name)"]!, "d\(name)")
        }
        print("bf16 block fixture: forward max abs error / max |y| = \(yErr / yScale), worst gradient error / max |grad| = \(worst)")
    }
}
