import DVT
import TensorCore
import Testing

extension DVTSuites {
    @Suite("Thread-count invariance")
    struct ThreadInvarianceTests {
        /// A stage-2 step large enough that every product is split into row blocks and attention
        /// spreads its pairs over workers, at thread counts scoped to each call (`withThreads`:
        /// two workers split the work on any core count). With oneDNN: identical bits when
        /// repeated at a fixed thread count (what bit-exact resume needs), and within 1e-5 relative
        /// (to each array's RMS) across 1 and 2 threads, because oneDNN's `gemm:jit` blocks a
        /// transposed right operand by M, so a row block computed alone rounds differently in the
        /// last bits (MatMulTests.splitInvariance). On the OpenBLAS backend the bits match across
        /// counts. The last-bit differences of the split products (≤ 1.7e-6, MatMulTests) grow
        /// through layernorm, softmax and backward, hence 1e-5 for a whole step.
        @Test("a stage-2 training step is bit-identical when repeated at 2 threads, and within 1e-5 relative on 1 thread")
        func stepBitsIndependentOfThreads() {
            func step(threads: Int) -> [[Float]] {
                Parallel.withThreads(threads) {
                    let d = try! Denoiser(config: DenoiserConfig(dim: 128, grid: (16, 16)), seed: 3)
                    var rng = RandomGenerator(seed: 4)
                    let x = Tensor.normal([2, 16, 16, 128], rng: &rng)  // (B, H, W, C): 512 token rows
                    let y = Tensor.normal([2, 16, 16, 128], rng: &rng)
                    let out = d(x)
                    let loss = denoiserLoss(out, y).loss
                    loss.backward()
                    return [out.scalars, loss.scalars] + d.namedParameters().map { $0.1.grad!.scalars }
                }
            }
            let two = step(threads: 2), twoAgain = step(threads: 2), one = step(threads: 1)
            #expect(two == twoAgain, "a repeated step at 2 threads changed bits")
            var worst: Float = 0
            for (x, y) in zip(two, one) {
                let rms = (y.reduce(Float(0)) { $0 + $1 * $1 } / Float(max(y.count, 1))).squareRoot()
                for (p, q) in zip(x, y) { worst = max(worst, abs(p - q) / max(abs(q), rms, 1e-30)) }
            }
            #expect(worst <= 1e-5, "1 vs 2 threads: \(worst) relative")
        }
    }
}
