import COpenBLAS
import DVT
import Formats
import Foundation
import Jobs
import NN
import Settings
import TensorCore
import Training
import Vision

/// Timing harness behind `dvt bench`. Times are medians over repeated runs after warm-up;
/// anything compared (engine vs raw OpenBLAS, engine vs PyTorch) runs in the same process or
/// the same command, interleaved, because absolute times drift on a shared machine.
public enum Bench {
    /// Median wall time in seconds of `body` over `iterations` runs after `warmup` runs.
    public static func median(warmup: Int = 1, iterations: Int = 5, _ body: () -> Void) -> Double {
        for _ in 0..<warmup { body() }
        var times: [Double] = []
        for _ in 0..<max(iterations, 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        times.sort()
        return times[times.count / 2]
    }

    /// Two bodies timed alternately (a, b, a, b, …) so drift hits both equally; medians.
    public static func interleaved(
        warmup: Int = 1, rounds: Int = 7, settle: Double = 0,
        _ a: () -> Void, _ b: () -> Void
    ) -> (Double, Double) {
        for _ in 0..<warmup { a(); b() }
        var ta: [Double] = [], tb: [Double] = []
        for _ in 0..<max(rounds, 1) {
            var t0 = DispatchTime.now().uptimeNanoseconds
            a()
            ta.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            if settle > 0 { Thread.sleep(forTimeInterval: settle) }
            t0 = DispatchTime.now().uptimeNanoseconds
            b()
            tb.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        ta.sort(); tb.sort()
        return (ta[ta.count / 2], tb[tb.count / 2])
    }

    /// The 1-, 5- and 15-minute load averages (/proc/loadavg), for the header of every
    /// benchmark: timings on a shared machine mean little without it.
    public static var loadAverage: String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    // MARK: Engine

    public struct MatmulResult: Sendable {
        public var label: String
        public var flops: Double
        public var rawSeconds: Double
        public var engineSeconds: Double
        public var rawGflops: Double { flops / rawSeconds / 1e9 }
        public var engineGflops: Double { flops / engineSeconds / 1e9 }
        /// Engine throughput as a fraction of raw OpenBLAS (1.0 = equal).
        public var ratio: Double { rawSeconds / engineSeconds }
    }

    /// Forward and both backward products of Y = X·W through the engine, against the same three
    /// cblas_sgemm calls made directly, at (M, K, N).
    public static func matmul(m: Int, k: Int, n: Int, rounds: Int = 7) -> MatmulResult {
        var rng = RandomGenerator(seed: 1)
        let x = Tensor.normal([m, k], rng: &rng, requiresGrad: true)
        let w = Tensor.normal([k, n], rng: &rng, requiresGrad: true)
        let dy = Tensor.normal([m, n], rng: &rng)
        let y = Tensor(zeros: [m, n]), dx = Tensor(zeros: [m, k]), dw = Tensor(zeros: [k, n])
        // Raw = what a caller of OpenBLAS gets: its own threads over the same cores.
        func raw() { Parallel.withOpenBLASThreads(rawCalls) }
        // cblas takes pointers: the engine's kernel extension points (docs/architecture.md).
        func rawCalls() {
            x.withUnsafeKernelBuffer { px in
                w.withUnsafeKernelBuffer { pw in
                    dy.withUnsafeKernelBuffer { pdy in
                        y.withUnsafeMutableKernelBuffer { py in
                            dx.withUnsafeMutableKernelBuffer { pdx in
                                dw.withUnsafeMutableKernelBuffer { pdw in
                                    let (x, w, dy, y, dx, dw) = (
                                        px.baseAddress, pw.baseAddress, pdy.baseAddress, py.baseAddress, pdx.baseAddress, pdw.baseAddress
                                    )
                                    cblas_sgemm(
                                        CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, x, Int32(k), w, Int32(n), 0, y,
                                        Int32(n))
                                    cblas_sgemm(
                                        CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(k), Int32(n), 1, dy, Int32(n), w, Int32(n), 0, dx,
                                        Int32(k))
                                    cblas_sgemm(
                                        CblasRowMajor, CblasTrans, CblasNoTrans, Int32(k), Int32(n), Int32(m), 1, x, Int32(k), dy, Int32(n), 0, dw,
                                        Int32(n))
                                }
                            }
                        }
                    }
                }
            }
        }
        func engine() {
            x.zeroGrad(); w.zeroGrad()
            Tensor.matmul(x, w).backward(seed: dy)
        }
        // OpenBLAS's threads keep spinning for a while after a threaded call; let them go to sleep
        // before timing the engine, or they steal its cores.
        let (tr, te) = interleaved(rounds: rounds, settle: 0.2, raw, engine)
        return MatmulResult(label: "\(m)x\(k)x\(n)", flops: 3 * 2 * Double(m) * Double(k) * Double(n), rawSeconds: tr, engineSeconds: te)
    }

    /// LayerNorm forward + backward at (B, N, C); seconds.
    public static func layerNorm(b: Int = 8, n: Int = 256, c: Int = 384) -> Double {
        var rng = RandomGenerator(seed: 2)
        let x = Tensor.normal([b, n, c], rng: &rng, requiresGrad: true)
        let ln = LayerNorm(c, eps: 1e-6)
        let dy = Tensor.normal([b, n, c], rng: &rng)
        return median(iterations: 9) {
            x.zeroGrad(); ln.zeroGrad()
            ln(x).backward(seed: dy)
        }
    }

    /// Fused multi-head attention forward + backward on packed qkv (B, N, 3C); seconds.
    public static func attention(b: Int = 8, n: Int = 256, c: Int = 384, heads: Int = 6) -> Double {
        var rng = RandomGenerator(seed: 3)
        let qkv = Tensor.normal([b, n, 3 * c], rng: &rng, requiresGrad: true)
        let dy = Tensor.normal([b, n, c], rng: &rng)
        return median(iterations: 9) {
            qkv.zeroGrad()
            Tensor.multiHeadAttention(qkv: qkv, heads: heads).backward(seed: dy)
        }
    }

    /// One Adam step over `count` parameters (one tensor, all gradients set); seconds.
    public static func adamStep(count: Int = 10_000_000) -> Double {
        var rng = RandomGenerator(seed: 4)
        let p = Tensor.normal([count], std: 0.02, rng: &rng, requiresGrad: true)
        p.grad = Tensor.normal([count], rng: &rng)
        let opt = Adam(parameters: [("p", p)], lr: 1e-3)
        return median(iterations: 9) { opt.step() }
    }

    /// One DVT stage-2 training step — timm block on x + pos, MSE + (1 − cos) loss, backward,
    /// AdamW — at (B, grid², C), as `dvt_torch.py stage2-bench` times it; seconds.
    public static func denoiserStep(dim: Int = 384, grid: Int = 16, batch: Int = 8, steps: Int = 10) -> Double {
        var rng = RandomGenerator(seed: 0)
        let n = grid * grid
        let block = Block(dim, heads: max(1, dim / 64), rng: &rng)
        let pos = Tensor.normal([1, n, dim], std: 0.02, rng: &rng, requiresGrad: true)
        let opt = AdamW(parameters: block.namedParameters() + [("pos_embed", pos)], lr: 1e-4, betas: (0.9, 0.999), weightDecay: 1e-5)
        let x = Tensor.normal([batch, n, dim], rng: &rng)
        let y = Tensor.normal([batch, n, dim], rng: &rng)
        var phases = StepPhases()
        func step() {
            _ = phases.time(opt) {
                let p = block(x + pos)  // (B, N, C)
                return Tensor.mseLoss(p, y) + (1 - Tensor.cosineSimilarity(p, y).mean())
            }
        }
        step(); step()
        phases = StepPhases()
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { step() }
        lastDenoiserPhases = phases.seconds.map { $0 / Double(steps) }
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 / Double(steps)
    }

    /// Forward, backward and optimiser seconds of the last `denoiserStep` run.
    nonisolated(unsafe) public static var lastDenoiserPhases: [Double] = []

    /// ViT feature extraction throughput (last block, final norm), images per second, as
    /// `dvt_torch.py vit-bench` measures it.
    public static func vitImagesPerSecond(arch: String, size: Int, batch: Int, steps: Int, precision: Precision = .fp32) throws -> Double {
        guard let cfg = ViTPresets.named(arch) else { throw BenchError("unknown --arch \(arch); known: \(ViTPresets.names.joined(separator: ", "))") }
        let model = VisionTransformer(config: cfg, seed: 0)
        model.precision = precision
        var rng = RandomGenerator(seed: 1)
        let x = Tensor.normal([batch, 3, size, size], rng: &rng)
        let last = cfg.depth - 1
        _ = model.features(x, layers: [last])
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { _ = model.features(x, layers: [last]) }
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return Double(batch * steps) / dt
    }

    /// Floating-point operations of one `vitImagesPerSecond` forward (`batch` images at
    /// `size`², the features after the last block): the products only, a multiply-add counted
    /// as 2. Patch embedding 2·T·(3P²)·C; per block the qkv (or q, k, v) projections 2·N·C·3C,
    /// attention's QKᵀ and PV 2·2·N²·C (every head: N² scores of width D, summed over H·D = C),
    /// proj 2·N·C², the MLP 2·N·C·H·(2 for SwiGLU's gate) + 2·N·H·C. Layer norms, softmax,
    /// GELU and the adds are not counted (well under 1% of the operations at ViT-B/14 518²).
    public static func vitForwardFLOPs(arch: String, size: Int, batch: Int) throws -> Double {
        guard let cfg = ViTPresets.named(arch) else { throw BenchError("unknown --arch \(arch); known: \(ViTPresets.names.joined(separator: ", "))") }
        let g = (size - cfg.patchSize) / cfg.patchSize + 1
        let t = Double(g * g), n = t + Double(cfg.prefixTokens), c = Double(cfg.embedDim)
        let h = Double(cfg.mlpHiddenWidth), p = Double(cfg.patchSize)
        let gate: Double = cfg.mlp == .mlp ? 1 : 2
        let block = 2 * n * c * 3 * c + 4 * n * n * c + 2 * n * c * c + 2 * n * c * h * gate + 2 * n * h * c
        return Double(batch) * (2 * t * 3 * p * p * c + Double(cfg.depth) * block)
    }
}

extension Bench {
    /// Timing of one SRT ensemble at token resolution, split as `dvt srt` runs it.
    public struct SRTTiming: Sendable {
        /// Translating the views and running the ViT on them (shared by both paths).
        public var forwards: Double
        /// Pixel-map mean pooled to tokens, and the fast token-grid mean.
        public var pixelAggregate: Double
        public var fastAggregate: Double
        public var views: Int
        public var forwardCount: Int
        /// Seconds per image from the normalised image to the pooled map, as
        /// `dvt_torch.py srt-bench` times it.
        public var pixel: Double { forwards + pixelAggregate }
        public var fast: Double { forwards + fastAggregate }
    }

    /// Seconds per image of SRT (random weights, a seeded random image): the forwards once per
    /// round, then both aggregations on the same views, so the paths differ only by what really
    /// differs; medians over `rounds`.
    public static func srt(
        arch: String, size: Int, dx: Int, dy: Int, batch: Int,
        rounds: Int = 1, parallelViews: Bool = true
    ) throws -> SRTTiming {
        guard let cfg = ViTPresets.named(arch) else { throw BenchError("unknown --arch \(arch); known: \(ViTPresets.names.joined(separator: ", "))") }
        let model = VisionTransformer(config: cfg, seed: 0)
        var rng = RandomGenerator(seed: 1)
        let image = Tensor.normal([3, size, size], rng: &rng)  // (3, H, W)
        var o = SRT.Options()
        o.dx = dx; o.dy = dy; o.batchSize = batch; o.layer = cfg.depth - 1; o.parallelViews = parallelViews
        let srt = try SRT(model: model, options: o)
        _ = model.features(Tensor.normal([1, 3, size, size], rng: &rng), layers: [o.layer])  // position-embedding cache, allocator
        func seconds(_ body: () throws -> Void) rethrows -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        var tv: [Double] = [], tp: [Double] = [], tf: [Double] = []
        for _ in 0..<max(1, rounds) {
            var views: SRT.Views?
            tv.append(seconds { views = srt.viewFeatures(image) })
            tp.append(try seconds { _ = try srt.ensemble(views!, resolution: .token) })
            tf.append(try seconds { _ = try srt.ensemble(views!, resolution: .token, fast: true) })
        }
        func median(_ x: [Double]) -> Double { x.sorted()[x.count / 2] }
        return SRTTiming(
            forwards: median(tv), pixelAggregate: median(tp), fastAggregate: median(tf),
            views: srt.shifts.count, forwardCount: (2 * dx + 1) * (2 * dy + 1))
    }
}

public struct BenchError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Runs the PyTorch reference (`scripts/reference/dvt_torch.py`) in a child process and reads
/// the one number it prints, so a benchmark can report a ratio from a single command.
public struct TorchReference {
    public var python: String
    public var script: String

    public init(python: String, script: String) {
        self.python = python
        self.script = script
    }

    /// Runs `script args…` and returns the number after `key` in its output.
    public func run(_ args: [String], key: String) throws -> Double {
        let text = try output(args)
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if let i = parts.firstIndex(where: { $0 == key }), i + 1 < parts.count, let v = Double(parts[i + 1]) { return v }
        }
        throw BenchError("reference output has no '\(key) <number>' line:\n\(text)")
    }

    /// Runs `script args…` and returns every `key number` line of its output as a dictionary;
    /// throws if any of `required` is missing.
    public func values(_ args: [String], required: [String] = []) throws -> [String: Double] {
        let text = try output(args)
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let v = Double(parts[1]) { out[String(parts[0])] = v }
        }
        let missing = required.filter { out[$0] == nil }
        if !missing.isEmpty { throw BenchError("reference output lacks \(missing):\n\(text)") }
        return out
    }

    /// Runs `script args…` and returns its standard output (standard error passes through).
    public func output(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [script] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.standardError
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else {
            throw BenchError("reference \(script) \(args.joined(separator: " ")) exited with \(p.terminationStatus):\n\(text)")
        }
        return text
    }
}

/// Accumulated seconds of a training step's three phases, the split the stage-2 and fine-tuning
/// benches print: forward with the loss, backward, and the optimiser step.
struct StepPhases {
    var seconds = [0.0, 0.0, 0.0]

    /// Runs one step (`loss`, zero the gradients, backward, `opt.step()`), adds its phases and
    /// returns its whole time.
    mutating func time(_ opt: some Optimizer, _ loss: () -> Tensor) -> Double {
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        let t0 = now()
        let l = loss()
        let t1 = now()
        opt.zeroGrad()
        l.backward()
        let t2 = now()
        opt.step()
        let t3 = now()
        seconds[0] += t1 - t0; seconds[1] += t2 - t1; seconds[2] += t3 - t2
        return t3 - t0
    }
}
