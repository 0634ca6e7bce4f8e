// Engine micro-benchmarks (ordo-one/benchmark). Each matmul case runs twice: through the
// engine (forward + both backward products) and as the same sgemm calls made directly on
// OpenBLAS, so one run gives the ratio. Run from Benchmarks/:
//   swift package --disable-sandbox benchmark --target EngineBenchmarks
import Benchmark
import COpenBLAS
import NN
import TensorCore

/// Row-major sgemm straight on OpenBLAS: the peak the engine is measured against.
@inline(__always)
func rawSgemm(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int,
              _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), 1, a, Int32(ta ? m : k), b, Int32(tb ? k : n), 0, c, Int32(n))
}

/// A buffer of seeded normal values.
func buffer(_ count: Int, seed: UInt64) -> UnsafeMutablePointer<Float> {
    var rng = RandomGenerator(seed: seed)
    let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
    for i in 0..<count { p[i] = rng.normal() }
    return p
}

/// (M, K, N) shapes: 2048³, and the stage-1 field MLP at pixel_bsz 2048 (128 → 192 → 384).
let matmulShapes: [(String, Int, Int, Int)] = [
    ("2048x2048x2048", 2048, 2048, 2048),
    ("2048x128x192", 2048, 128, 192),
    ("2048x192x384", 2048, 192, 384),
]

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput], warmupIterations: 2,
                                           maxDuration: .seconds(3), maxIterations: 50)

    for (label, m, k, n) in matmulShapes {
        // Three products per training step: Y = X·W, dX = dY·Wᵀ, dW = Xᵀ·dY.
        Benchmark("raw cblas_sgemm fwd+bwd \(label)") { benchmark in
            let x = buffer(m * k, seed: 1), w = buffer(k * n, seed: 2), dy = buffer(m * n, seed: 3)
            let y = buffer(m * n, seed: 4), dx = buffer(m * k, seed: 5), dw = buffer(k * n, seed: 6)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                rawSgemm(false, false, m, n, k, x, w, y)
                rawSgemm(false, true, m, k, n, dy, w, dx)
                rawSgemm(true, false, k, n, m, x, dy, dw)
            }
            benchmark.stopMeasurement()
            blackHole(y[0] + dx[0] + dw[0])
        }
        Benchmark("engine matmul fwd+bwd \(label)") { benchmark in
            var rng = RandomGenerator(seed: 1)
            let x = Tensor.normal([m, k], rng: &rng, requiresGrad: true)
            let w = Tensor.normal([k, n], rng: &rng, requiresGrad: true)
            let dy = Tensor.normal([m, n], rng: &rng)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                x.zeroGrad(); w.zeroGrad()
                Tensor.matmul(x, w).backward(seed: dy)
            }
            benchmark.stopMeasurement()
            blackHole(x.grad)
        }
    }

    // Fused kernels at a stage-2 shape: (B 8, N 256, C 384), 6 heads.
    Benchmark("layerNorm fwd+bwd (8, 256, 384)") { benchmark in
        var rng = RandomGenerator(seed: 2)
        let x = Tensor.normal([8, 256, 384], rng: &rng, requiresGrad: true)
        let ln = LayerNorm(384, eps: 1e-6)
        let dy = Tensor.normal([8, 256, 384], rng: &rng)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            x.zeroGrad(); ln.zeroGrad()
            ln(x).backward(seed: dy)
        }
    }
    Benchmark("attention fwd+bwd (8, 256, 384) 6 heads") { benchmark in
        var rng = RandomGenerator(seed: 3)
        let qkv = Tensor.normal([8, 256, 3 * 384], rng: &rng, requiresGrad: true)
        let dy = Tensor.normal([8, 256, 384], rng: &rng)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            qkv.zeroGrad()
            Tensor.multiHeadAttention(qkv: qkv, heads: 6).backward(seed: dy)
        }
    }
    Benchmark("Adam step, 10M parameters") { benchmark in
        var rng = RandomGenerator(seed: 4)
        let p = Tensor.normal([10_000_000], std: 0.02, rng: &rng, requiresGrad: true)
        p.grad = Tensor.normal([10_000_000], rng: &rng)
        let opt = Adam(parameters: [("p", p)], lr: 1e-3)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { opt.step() }
    }
    Benchmark("timm block fwd+bwd+AdamW (8, 256, 384)") { benchmark in
        var rng = RandomGenerator(seed: 0)
        let block = Block(384, heads: 6, rng: &rng)
        let pos = Tensor.normal([1, 256, 384], std: 0.02, rng: &rng, requiresGrad: true)
        let opt = AdamW(parameters: block.namedParameters() + [("pos_embed", pos)], lr: 1e-4, weightDecay: 1e-5)
        let x = Tensor.normal([8, 256, 384], rng: &rng), y = Tensor.normal([8, 256, 384], rng: &rng)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let out = block(x + pos)
            let loss = Tensor.mseLoss(out, y) + (1 - Tensor.cosineSimilarity(out, y).mean())
            opt.zeroGrad()
            loss.backward()
            opt.step()
        }
    }
}
