import Foundation

// Elementwise ops with numpy/torch broadcasting. Each op's backward sits right after its
// forward; broadcast inputs get their gradient summed back to their own shape by
// `accumulateUnbroadcast`, the single place that reduces over broadcast dimensions.

extension Tensor {
    /// out = f(a, b) over the broadcast shape. No graph.
    @inline(__always)
    static func binaryMap(_ a: Tensor, _ b: Tensor, _ op: String, _ f: (Float, Float) -> Float) -> Tensor {
        guard let outShape = Shape.broadcast(a.shape, b.shape) else {
            preconditionFailure("\(op): shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let out = Tensor.uninitialized(outShape)
        let pa = a.ptr, pb = b.ptr, po = out.ptr
        if a.shape == b.shape {
            Parallel.forRanges(out.count, grain: 1 << 15) { r in
                for i in r { po[i] = f(pa[i], pb[i]) }
            }
        } else if b.count == 1 {
            let s = pb[0]
            Parallel.forRanges(out.count, grain: 1 << 15) { r in
                for i in r { po[i] = f(pa[i], s) }
            }
        } else if a.count == 1 {
            let s = pa[0]
            Parallel.forRanges(out.count, grain: 1 << 15) { r in
                for i in r { po[i] = f(s, pb[i]) }
            }
        } else {
            let sa = Shape.broadcastStrides(a.shape, to: outShape)
            let sb = Shape.broadcastStrides(b.shape, to: outShape)
            Shape.forEachRow(outShape, sa, sb) { o, oa, ob, n, ra, rb in
                for k in 0..<n { po[o + k] = f(pa[oa + k * ra], pb[ob + k * rb]) }
            }
        }
        return out
    }

    /// dst.grad += src summed over the dimensions along which `dst` was broadcast to `src.shape`.
    static func accumulateUnbroadcast(_ src: Tensor, into dst: Tensor) {
        let ps = src.ptr
        if src.shape == dst.shape {
            let (g, fresh) = dst.gradBufferForAdd()
            Parallel.forRanges(src.count, grain: 1 << 15) { r in
                if fresh {
                    for i in r { g[i] = 0 + ps[i] }
                } else {
                    for i in r { g[i] += ps[i] }
                }
            }
            return
        }
        let g = dst.gradBuffer()
        if dst.count == 1 {
            var s: Float = 0
            for i in 0..<src.count { s += ps[i] }
            g[0] += s
            return
        }
        addSummed(ps, shape: src.shape, into: g, strides: Shape.broadcastStrides(dst.shape, to: src.shape))
    }

    /// out = f(x). No graph.
    @inline(__always)
    static func unaryMap(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
        let out = Tensor.uninitialized(x.shape)
        let px = x.ptr, po = out.ptr
        Parallel.forRanges(x.count, grain: 1 << 14) { r in
            for i in r { po[i] = f(px[i]) }
        }
        return out
    }

    /// dst.grad[i] += f(g[i], x[i]) for same-shaped tensors.
    @inline(__always)
    static func accumulateMap(into dst: Tensor, _ g: Tensor, _ x: Tensor, _ f: (Float, Float) -> Float) {
        let pd = dst.gradBuffer(), pg = g.ptr, px = x.ptr
        Parallel.forRanges(dst.count, grain: 1 << 14) { r in
            for i in r { pd[i] += f(pg[i], px[i]) }
        }
    }

    // MARK: Binary arithmetic

    /// Same-shape a + b or a − b with the loop spelt out. binaryMap's `f` reaches the worker
    /// closure as a function value, one indirect call per element that never vectorises; the
    /// stage-1 loss adds (2048, 768) tensors several times a step. Same float operations.
    static func sameShapeAddSub(_ a: Tensor, _ b: Tensor, subtract: Bool) -> Tensor {
        let out = Tensor.uninitialized(a.shape)
        let pa = a.ptr, pb = b.ptr, po = out.ptr
        Parallel.forRanges(out.count, grain: 1 << 15) { r in
            if subtract {
                for i in r { po[i] = pa[i] - pb[i] }
            } else {
                for i in r { po[i] = pa[i] + pb[i] }
            }
        }
        return out
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let out = a.shape == b.shape ? sameShapeAddSub(a, b, subtract: false) : binaryMap(a, b, "add", +)
        return out.record("add", [a, b]) { g in
            if a.requiresGrad { accumulateUnbroadcast(g, into: a) }
            if b.requiresGrad { accumulateUnbroadcast(g, into: b) }
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let out = a.shape == b.shape ? sameShapeAddSub(a, b, subtract: true) : binaryMap(a, b, "sub", -)
        return out.record("sub", [a, b]) { g in
            if a.requiresGrad { accumulateUnbroadcast(g, into: a) }
            if b.requiresGrad { accumulateUnbroadcast(unaryMap(g) { -$0 }, into: b) }
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        binaryMap(a, b, "mul", *).record("mul", [a, b]) { g in
            if a.requiresGrad { accumulateUnbroadcast(binaryMap(g, b, "mul", *), into: a) }
            if b.requiresGrad { accumulateUnbroadcast(binaryMap(g, a, "mul", *), into: b) }
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let out = binaryMap(a, b, "div", /)
        let y = out.detach()
        return out.record("div", [a, b]) { g in
            if a.requiresGrad { accumulateUnbroadcast(binaryMap(g, b, "div", /), into: a) }
            if b.requiresGrad {
                // d(a/b)/db = -(a/b)/b
                let gy = binaryMap(g, y, "mul", *)
                accumulateUnbroadcast(binaryMap(gy, b, "div") { -$0 / $1 }, into: b)
            }
        }
    }

    public static func + (a: Tensor, s: Float) -> Tensor { a + Tensor.scalar(s) }
    public static func - (a: Tensor, s: Float) -> Tensor { a - Tensor.scalar(s) }
    public static func * (a: Tensor, s: Float) -> Tensor { a * Tensor.scalar(s) }
    public static func / (a: Tensor, s: Float) -> Tensor { a * Tensor.scalar(1 / s) }
    public static func + (s: Float, a: Tensor) -> Tensor { Tensor.scalar(s) + a }
    public static func - (s: Float, a: Tensor) -> Tensor { Tensor.scalar(s) - a }
    public static func * (s: Float, a: Tensor) -> Tensor { Tensor.scalar(s) * a }
    public static prefix func - (a: Tensor) -> Tensor {
        unaryMap(a) { -$0 }.record("neg", [a]) { g in
            accumulateMap(into: a, g, g) { gi, _ in -gi }
        }
    }

    // MARK: Unary math

    public func exp() -> Tensor {
        let out = Tensor.unaryMap(self) { Foundation.exp($0) }
        let y = out.detach()
        return out.record("exp", [self]) { g in Tensor.accumulateMap(into: self, g, y) { $0 * $1 } }
    }

    public func log() -> Tensor {
        Tensor.unaryMap(self) { Foundation.log($0) }.record("log", [self]) { g in
            Tensor.accumulateMap(into: self, g, self) { $0 / $1 }
        }
    }

    public func sqrt() -> Tensor {
        let out = Tensor.unaryMap(self) { $0.squareRoot() }
        let y = out.detach()
        return out.record("sqrt", [self]) { g in Tensor.accumulateMap(into: self, g, y) { $0 * 0.5 / $1 } }
    }

    public func square() -> Tensor {
        Tensor.unaryMap(self) { $0 * $0 }.record("square", [self]) { g in
            Tensor.accumulateMap(into: self, g, self) { 2 * $0 * $1 }
        }
    }

    public func abs() -> Tensor {
        // Subgradient 0 at 0, as torch.
        Tensor.unaryMap(self) { Swift.abs($0) }.record("abs", [self]) { g in
            Tensor.accumulateMap(into: self, g, self) { gi, x in x > 0 ? gi : (x < 0 ? -gi : 0) }
        }
    }

    public func sigmoid() -> Tensor {
        let out = Tensor.unaryMap(self) { 1 / (1 + Foundation.exp(-$0)) }
        let y = out.detach()
        return out.record("sigmoid", [self]) { g in Tensor.accumulateMap(into: self, g, y) { $0 * $1 * (1 - $1) } }
    }

    /// max(x, lo) elementwise; the gradient flows where x > lo.
    public func clampMin(_ lo: Float) -> Tensor {
        Tensor.unaryMap(self) { Swift.max($0, lo) }.record("clampMin", [self]) { g in
            Tensor.accumulateMap(into: self, g, self) { gi, x in x > lo ? gi : 0 }
        }
    }
}
