// Vectorised row primitives (sum, dot, max, exp) for the fused kernels. Swift keeps float
// reductions in source order, so a plain `s += x[i]` loop runs one add at a time; these use
// 8-lane SIMD accumulators instead, and an inlined polynomial exp that vectorises where the
// libm call cannot. Softmax rows of attention (N² exps per head) were 3× slower than the two
// sgemms around them with libm's expf.

enum RowKernels {
    typealias V = SIMD8<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// Σ x[i]
    @inline(__always)
    static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 8 <= n { acc += load(x + i); i += 8 }
        var s = acc.sum()
        while i < n { s += x[i]; i += 1 }
        return s
    }

    /// Σ x[i]·y[i]
    @inline(__always)
    static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 8 <= n { acc += load(x + i) * load(y + i); i += 8 }
        var s = acc.sum()
        while i < n { s += x[i] * y[i]; i += 1 }
        return s
    }

    /// Σ (x[i] − y[i])²
    @inline(__always)
    static func squaredDistance(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 8 <= n { let d = load(x + i) - load(y + i); acc += d * d; i += 8 }
        var s = acc.sum()
        while i < n { let d = x[i] - y[i]; s += d * d; i += 1 }
        return s
    }

    /// Σ |x[i]|
    @inline(__always)
    static func absSum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 8 <= n { let v = load(x + i); acc += v.replacing(with: -v, where: v .< 0); i += 8 }
        var s = acc.sum()
        while i < n { s += Swift.abs(x[i]); i += 1 }
        return s
    }

    /// Σ over 0..<n of `partial(start, count)` evaluated on fixed 4096-element blocks in
    /// parallel, the block sums added in Double in block order: large means keep their
    /// precision and the result does not depend on the thread count.
    @inline(__always)
    static func blockedSum(_ n: Int, _ partial: (Int, Int) -> Float) -> Double {
        let block = 4096
        let blocks = (n + block - 1) / block
        if blocks <= 1 { return n == 0 ? 0 : Double(partial(0, n)) }
        let sums = UnsafeMutablePointer<Double>.allocate(capacity: blocks)
        defer { sums.deallocate() }
        Parallel.forRanges(blocks, grain: 8) { range in
            for b in range {
                let start = b * block
                sums[b] = Double(partial(start, Swift.min(block, n - start)))
            }
        }
        var total: Double = 0
        for b in 0..<blocks { total += sums[b] }
        return total
    }

    /// Σ (x[i] − mean)²
    @inline(__always)
    static func centredSquareSum(_ x: UnsafePointer<Float>, _ n: Int, mean: Float) -> Float {
        var acc = V(repeating: 0)
        let m = V(repeating: mean)
        var i = 0
        while i + 8 <= n { let d = load(x + i) - m; acc += d * d; i += 8 }
        var s = acc.sum()
        while i < n { let d = x[i] - mean; s += d * d; i += 1 }
        return s
    }

    /// (Σ g[i]·w[i], Σ g[i]·w[i]·(x[i] − mean)), with w = 1 when nil: layer-norm backward's
    /// two row reductions in one pass.
    @inline(__always)
    static func layerNormGradSums(
        _ g: UnsafePointer<Float>, _ w: UnsafePointer<Float>?,
        _ x: UnsafePointer<Float>, _ n: Int, mean: Float
    ) -> (Float, Float) {
        var accD = V(repeating: 0), accDX = V(repeating: 0)
        let m = V(repeating: mean)
        var i = 0
        if let w {
            while i + 8 <= n {
                let d = load(g + i) * load(w + i)
                accD += d
                accDX += d * (load(x + i) - m)
                i += 8
            }
        } else {
            while i + 8 <= n {
                let d = load(g + i)
                accD += d
                accDX += d * (load(x + i) - m)
                i += 8
            }
        }
        var sd = accD.sum(), sdx = accDX.sum()
        while i < n {
            let d = g[i] * (w?[i] ?? 1)
            sd += d
            sdx += d * (x[i] - mean)
            i += 1
        }
        return (sd, sdx)
    }

    /// max x[i] (−∞ for an empty row)
    @inline(__always)
    static func max(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = -Float.infinity
        var i = 0
        if n >= 8 {
            var acc = V(repeating: -.infinity)
            while i + 8 <= n {
                let v = load(x + i)
                acc.replace(with: v, where: v .> acc)
                i += 8
            }
            m = acc.max()
        }
        while i < n { m = Swift.max(m, x[i]); i += 1 }
        return m
    }

    /// dst[i] = exp(src[i] − shift), returning Σ dst[i]. `src` and `dst` may be the same row.
    @inline(__always)
    static func expShiftedSum(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
        _ n: Int, shift: Float
    ) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 8 <= n {
            let e = exp(load(src + i) - V(repeating: shift))
            store(e, dst + i)
            acc += e
            i += 8
        }
        var s = acc.sum()
        if i < n {
            // Tail through the same vector formula so every element gets identical rounding.
            var tail = V(repeating: -.infinity)
            for k in 0..<(n - i) { tail[k] = src[i + k] - shift }
            let e = exp(tail)
            for k in 0..<(n - i) { dst[i + k] = e[k]; s += e[k] }
        }
        return s
    }

    /// x[i] *= a
    @inline(__always)
    static func scale(_ x: UnsafeMutablePointer<Float>, _ n: Int, by a: Float) {
        var i = 0
        while i + 8 <= n { store(load(x + i) * a, x + i); i += 8 }
        while i < n { x[i] *= a; i += 1 }
    }

    /// Loads up to 8 elements, padding the missing lanes with `fill`.
    @inline(__always)
    static func loadPartial(_ p: UnsafePointer<Float>, _ count: Int, fill: Float = 0) -> V {
        var v = V(repeating: fill)
        for k in 0..<count { v[k] = p[k] }
        return v
    }

    /// dst[i] = f(src[i]) eight lanes at a time (the tail through the same `f`).
    /// `dst` may be `src`.
    @inline(__always)
    static func map(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
        _ f: (V) -> V
    ) {
        var i = 0
        while i + 8 <= n { store(f(load(src + i)), dst + i); i += 8 }
        if i < n {
            let y = f(loadPartial(src + i, n - i))
            for k in 0..<(n - i) { dst[i + k] = y[k] }
        }
    }

    /// dst[i] += f(g[i], x[i]) eight lanes at a time: the backward form of `map`.
    @inline(__always)
    static func accumulate(
        _ dst: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>,
        _ x: UnsafePointer<Float>, _ n: Int, _ f: (V, V) -> V
    ) {
        var i = 0
        while i + 8 <= n { store(load(dst + i) + f(load(g + i), load(x + i)), dst + i); i += 8 }
        if i < n {
            let y = f(loadPartial(g + i, n - i), loadPartial(x + i, n - i))
            for k in 0..<(n - i) { dst[i + k] += y[k] }
        }
    }

    /// `accumulate` into a buffer that holds no values yet: dst[i] = 0 + f(g[i], x[i]), the
    /// bits a zero-filled dst would hold after `accumulate`, without reading dst.
    @inline(__always)
    static func accumulateIntoFresh(
        _ dst: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>,
        _ x: UnsafePointer<Float>, _ n: Int, _ f: (V, V) -> V
    ) {
        let zero = V(repeating: 0)
        var i = 0
        while i + 8 <= n { store(zero + f(load(g + i), load(x + i)), dst + i); i += 8 }
        if i < n {
            let y = f(loadPartial(g + i, n - i), loadPartial(x + i, n - i))
            for k in 0..<(n - i) { dst[i + k] = 0 + y[k] }
        }
    }

    /// The standard normal CDF Φ(x) = ½·erfc(−x/√2), lane-wise, with relative accuracy in
    /// both tails (Φ → 0 for x → −∞ keeps its significant digits, unlike 1 − Φ(−x)).
    ///
    /// erfc(z) for z ≥ 0 uses the Chebyshev fit
    /// `t·exp(−z² − 1.26551223 + t·P(t))`, t = 1/(1 + z/2), whose fractional error is below
    /// 1.2e-7 for all z (Press et al., Numerical Recipes, §6.2 "erfcc"); erfc(−z) = 2 − erfc(z).
    @inline(__always)
    static func normalCDF(_ x: V) -> V {
        let z = x.replacing(with: -x, where: x .< 0) * 0.70710678118654752  // |x|/√2
        let t = 1 / (1 + 0.5 * z)
        var p = V(repeating: 0.17087277)
        p = p * t - 0.82215223
        p = p * t + 1.48851587
        p = p * t - 1.13520398
        p = p * t + 0.27886807
        p = p * t - 0.18628806
        p = p * t + 0.09678418
        p = p * t + 0.37409196
        p = p * t + 1.00002368
        let half = 0.5 * t * exp(p * t - z * z - 1.26551223)  // ½·erfc(|x|/√2) = Φ(−|x|)
        var cdf = 1 - half
        cdf.replace(with: half, where: x .< 0)
        return cdf
    }

    /// eˣ lane-wise, within a few ulp of libm over the normal range; 0 below −87.34 (where eˣ
    /// would be denormal) and +∞ above 88.72.
    ///
    /// Cody–Waite range reduction x = k·ln2 + r, |r| ≤ ln2/2, then a degree-6 polynomial for eʳ
    /// and a multiply by 2ᵏ built in the exponent bits. The split ln2 = 0.693359375 − 2.12194440e-4
    /// (the first part exact in 9 bits) and the polynomial coefficients are Cephes `expf`'s
    /// (S. L. Moshier, Cephes Math Library).
    @inline(__always)
    static func exp(_ x: V) -> V {
        let hi = V(repeating: 88.72283)  // ln(Float.greatestFiniteMagnitude)
        let lo = V(repeating: -87.33654)  // ln(Float.leastNormalMagnitude)
        // Clamp by masked replacement: the stdlib's pointwiseMin/Max are not inlined and cost a
        // call per vector.
        var xc = x
        xc.replace(with: lo, where: x .< lo)
        xc.replace(with: hi, where: x .> hi)
        // Round x/ln2 to the nearest integer by adding 1.5·2²³: the float adder does the
        // rounding and the integer lands in the low mantissa bits (a vectorisable round()).
        let magic = V(repeating: 12582912)
        let t = xc * 1.44269504088896341 + magic
        let k = t - magic
        var r = xc - k * 0.693359375
        r = r - k * -2.12194440e-4
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let er = p * (r * r) + r + 1
        // 2ᵏ with k ∈ [−126, 128] as 2^k₁ · 2^k₂, k₁ = ⌊k/2⌋: each half stays a normal float,
        // where 2¹²⁸ or a denormal 2ᵏ would not fit the exponent field on its own.
        let ki = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let k1 = ki &>> 1, k2 = ki &- k1
        let s1 = unsafeBitCast((k1 &+ 127) &<< 23, to: V.self)
        let s2 = unsafeBitCast((k2 &+ 127) &<< 23, to: V.self)
        var y = er * s1 * s2
        y.replace(with: 0, where: x .< lo)
        y.replace(with: .infinity, where: x .> hi)
        y.replace(with: x, where: x .!= x)  // NaN stays NaN
        return y
    }
}
