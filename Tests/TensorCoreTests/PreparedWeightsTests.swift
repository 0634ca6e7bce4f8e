import Foundation
import TestSupport
import Testing

@testable import TensorCore

/// `linear` with prepared (reordered once, cached) weights, MatMulPrepared.swift, against the
/// plain path (the weight requires a gradient and grad mode is on, so nothing is prepared).
@Suite("prepared linear weights")
struct PreparedWeightsTests {
    func maxRelative(_ x: [Float], _ y: [Float]) -> Float {
        let rms = (y.reduce(Float(0)) { $0 + $1 * $1 } / Float(max(y.count, 1))).squareRoot()
        return zip(x, y).reduce(Float(0)) { max($0, abs($1.0 - $1.1) / max(abs($1.1), rms, 1e-30)) }
    }

    /// The plain path's output: the weight requires a gradient in grad mode, so `linear`
    /// does not prepare it.
    func plain(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ p: Precision) -> [Float] {
        let wasGrad = w.requiresGrad
        w.requiresGrad = true
        defer { w.requiresGrad = wasGrad }
        return p.run { Tensor.linear(x.detach(), w, b?.detach()).scalars }
    }

    func prepared(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ p: Precision) -> [Float] {
        withNoGrad { p.run { Tensor.linear(x, w, b).scalars } }
    }

    @Test(
        "prepared = plain path: fp32 bit-identical, bf16 ≤ 1e-6; split and unsplit rows, with and without bias",
        arguments: [Precision.fp32, .bf16])
    func matchesPlain(_ precision: Precision) {
        // (rows, in, out): 1370 rows take the engine's row split on 2+ threads (two block heights).
        for (i, (rows, inF, outF)) in [(1, 3, 5), (17, 64, 48), (200, 96, 130), (1370, 128, 384)].enumerated() {
            for bias in [true, false] {
                let x = randn([rows, inF], seed: UInt64(10 + i), requiresGrad: false)
                let w = randn([outF, inF], seed: UInt64(20 + i), requiresGrad: false)
                let b = bias ? randn([outF], seed: UInt64(30 + i), requiresGrad: false) : nil
                let got = prepared(x, w, b, precision), want = plain(x, w, b, precision)
                #expect(PreparedWeights.isPrepared(w, bf16: precision == .bf16) || PreparedWeights.budget == 0, "no copy was prepared")
                let err = maxRelative(got, want)
                print("prepared vs plain \(precision) rows \(rows) in \(inF) out \(outF) bias \(bias): max relative \(err)")
                if precision == .fp32 { #expect(got == want, "rows \(rows) in \(inF) out \(outF) bias \(bias): \(err)") }
                #expect(err <= 1e-6, "rows \(rows) in \(inF) out \(outF) bias \(bias): \(err)")
            }
        }
    }

    @Test(
        "the forward follows weight changes: Adam-style writes with noteModified, assign, element writes, fill",
        arguments: [Precision.fp32, .bf16])
    func followsUpdates(_ precision: Precision) {
        let x = randn([150, 64], seed: 1, requiresGrad: false)
        let w = randn([96, 64], seed: 2, requiresGrad: true), b = randn([96], seed: 3, requiresGrad: true)
        var last = prepared(x, w, b, precision)
        #expect(last == prepared(x, w, b, precision), "repeatable")
        let changes: [(String, () -> Void)] = [
            (
                "kernel write + noteModified",
                {
                    let p = w.ptr; for i in 0..<w.count { p[i] *= 0.9 }; w.noteModified()
                }
            ),
            ("assign", { w.assign(randn([96, 64], seed: 4, requiresGrad: false)) }),
            ("one element", { w[flat: 777] += 0.5 }),
            ("fill", { w.fill(0.01) }),
            ("mutable buffer", { w.withUnsafeMutableBufferPointer { $0[5] = 3 } }),
        ]
        for (name, change) in changes {
            change()
            let now = prepared(x, w, b, precision)
            #expect(now != last, "\(name): the output did not change")
            #expect(now == plain(x, w, b, precision), "\(name): prepared output is stale")
            last = now
        }
    }

    @Test("a raw write that forgot noteModified is still caught by the fingerprint (every element changed)")
    func fingerprintBackstop() {
        let x = randn([40, 32], seed: 5, requiresGrad: false)
        let w = randn([24, 32], seed: 6, requiresGrad: false)
        _ = prepared(x, w, nil, .fp32)
        let p = w.ptr
        for i in 0..<w.count { p[i] += 0.25 }
        #expect(prepared(x, w, nil, .fp32) == plain(x, w, nil, .fp32))
    }

    @Test("training then inference: an AdamW-trained linear's no-grad forward uses the trained weights")
    func trainThenInfer() {
        let x = randn([64, 16], seed: 7, requiresGrad: false)
        let w = randn([8, 16], seed: 8, requiresGrad: true)
        for step in 0..<3 {
            let inferred = prepared(x, w, nil, .fp32)
            #expect(inferred == plain(x, w, nil, .fp32), "step \(step)")
            let y = Tensor.linear(x, w)
            (y * y).sum().backward()
            // AdamW's update as NN's Adam runs it (TensorCore has no optimiser): writes through
            // the pointer, then noteModified.
            let p = w.ptr, g = w.grad!.ptr
            for i in 0..<w.count { p[i] -= 0.01 * g[i] }
            w.noteModified()
            w.zeroGrad()
        }
    }

    @Test("concurrent no-grad forwards on one weight (8 threads) give the serial result")
    func concurrent() {
        let x = randn([300, 64], seed: 9, requiresGrad: false)
        let w = randn([200, 64], seed: 10, requiresGrad: false), b = randn([200], seed: 11, requiresGrad: false)
        let want = Parallel.withThreads(1) { prepared(x, w, b, .bf16) }
        var outs = [[Float]](repeating: [], count: 8)
        outs.withUnsafeMutableBufferPointer { slots in
            Parallel.concurrentPerform(8) { i in
                slots[i] = Parallel.withThreads(1) { prepared(x, w, b, .bf16) }
            }
        }
        for (i, o) in outs.enumerated() { #expect(o == want, "thread \(i)") }
    }

    @Test(
        "the row split (equal heights, any offset) gives the unsplit bits: 1 to 4 threads, fp32 and bf16, the ViT's K of 768 and 3072",
        arguments: [(1370, 768, 96), (257, 3072, 64), (1369, 588, 48)])
    func splitIsBitExact(rows: Int, inF: Int, outF: Int) {
        let x = randn([rows, inF], seed: UInt64(rows), requiresGrad: false)
        let w = randn([outF, inF], seed: UInt64(inF), scale: 0.05, requiresGrad: false), b = randn([outF], seed: 3, requiresGrad: false)
        for precision in Precision.allCases {
            let whole = Parallel.withThreads(1) { prepared(x, w, b, precision) }
            for threads in 2...4 {
                let blocks = Parallel.withThreads(threads) { PreparedWeights.evenRowBlocks(rows, outF, inF) }
                #expect(blocks.count == threads + 1, "rows \(rows): \(blocks)")
                let split = Parallel.withThreads(threads) { prepared(x, w, b, precision) }
                #expect(split == whole, "rows \(rows) K \(inF) \(precision) \(threads) threads (blocks \(blocks))")
            }
        }
    }
}

@Suite("linear + GELU post-op")
struct LinearGELUTests {
    @Test(
        "fused (no grad) = linear then gelu within 1e-6 of max |y|, fp32 and bf16; with a graph it is the composition itself",
        arguments: [Precision.fp32, .bf16])
    func fusedMatchesComposed(_ precision: Precision) {
        for (rows, inF, outF) in [(1, 8, 16), (33, 64, 100), (1370, 96, 384)] {
            let x = randn([rows, inF], seed: 40, requiresGrad: false)
            let w = randn([outF, inF], seed: 41, scale: 0.3, requiresGrad: true), b = randn([outF], seed: 42, requiresGrad: true)
            let fused = withNoGrad { precision.run { Tensor.linearGELU(x, w, b).scalars } }
            let composed = withNoGrad { precision.run { Tensor.linear(x, w, b).gelu().scalars } }
            let scale = composed.map { abs($0) }.max() ?? 1
            let err = zip(fused, composed).map { abs($0 - $1) }.max() ?? 0
            print("linearGELU \(precision) rows \(rows): max |fused − composed| / max |y| = \(err / scale)")
            #expect(err <= 1e-6 * scale, "rows \(rows) in \(inF) out \(outF): \(err / scale)")
            // Grad mode with trainable weights: the differentiable composition, bit for bit.
            let graph = precision.run { Tensor.linearGELU(x, w, b) }
            #expect(graph.scalars == precision.run { Tensor.linear(x, w, b).gelu() }.scalars)
            (graph * graph).sum().backward()
            #expect(w.grad != nil && b.grad != nil, "gradients flow through the composed path")
        }
    }
}

@Suite("fused MLP (bf16 hidden)")
struct MLPGELUTests {
    @Test("mlpGELU = linear(linearGELU) bit for bit in bf16 and fp32 at inference; the composition under a graph")
    func matchesComposed() {
        for (rows, c, h) in [(1, 8, 32), (70, 48, 192), (1370, 64, 256)] {
            let x = randn([rows, c], seed: 50, requiresGrad: false)
            let w1 = randn([h, c], seed: 51, scale: 0.3, requiresGrad: true), b1 = randn([h], seed: 52, requiresGrad: true)
            let w2 = randn([c, h], seed: 53, scale: 0.1, requiresGrad: true), b2 = randn([c], seed: 54, requiresGrad: true)
            for precision in Precision.allCases {
                let fused = withNoGrad { precision.run { Tensor.mlpGELU(x, w1, b1, w2, b2).scalars } }
                let composed = withNoGrad { precision.run { Tensor.linear(Tensor.linearGELU(x, w1, b1), w2, b2).scalars } }
                #expect(fused == composed, "rows \(rows) \(precision): max |diff| \(zip(fused, composed).map { abs($0 - $1) }.max() ?? 0)")
            }
            let y = Precision.bf16.run { Tensor.mlpGELU(x, w1, b1, w2, b2) }
            #expect(y.scalars == Precision.bf16.run { Tensor.linear(Tensor.linear(x, w1, b1).gelu(), w2, b2) }.scalars)
            (y * y).sum().backward()
            #expect(w1.grad != nil && b2.grad != nil, "gradients flow through the composed path")
        }
    }
}
