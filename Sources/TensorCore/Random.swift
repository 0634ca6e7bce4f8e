import Foundation

/// Seeded random numbers: xoshiro256** seeded through SplitMix64. Integer arithmetic only,
/// so the same seed gives the same stream on every machine. Every random draw in the
/// toolkit goes through one of these, passed explicitly.
///
/// - Paper: Blackman & Vigna, "Scrambled linear pseudorandom number generators" (2018).
public struct RandomGenerator: RandomNumberGenerator, Sendable, Equatable {
    public var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var sm = seed
        func splitmix() -> UInt64 {
            sm &+= 0x9E37_79B9_7F4A_7C15
            var z = sm
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    /// Restores a generator from `stateWords` (checkpoints).
    public init(stateWords w: [UInt64]) {
        precondition(w.count == 4, "RandomGenerator state needs 4 words, got \(w.count)")
        state = (w[0], w[1], w[2], w[3])
    }

    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    public static func == (a: RandomGenerator, b: RandomGenerator) -> Bool { a.stateWords == b.stateWords }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    @inlinable func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 bits of precision (exactly representable in Float).
    @inlinable
    public mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform in [0, 1) with 53 bits, for Double-precision callers (samplers, view boxes).
    @inlinable
    public mutating func uniformDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// Uniform in [lo, hi).
    @inlinable
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * uniform() }

    /// Uniform integer in 0..<n without modulo bias (Lemire's multiply-shift with rejection).
    @inlinable
    public mutating func randint(_ n: Int) -> Int {
        precondition(n > 0, "randint needs n > 0, got \(n)")
        let bound = UInt64(n)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        return Int(m.high)
    }

    /// Standard normal via Box–Muller (one value per call; the pair's twin is discarded so the
    /// stream position depends only on the number of draws).
    @inlinable
    public mutating func normal() -> Float {
        var u1 = uniformDouble()
        if u1 < 1e-300 { u1 = 1e-300 }
        let u2 = uniformDouble()
        return Float((-2.0 * Foundation.log(u1)).squareRoot() * Foundation.cos(2.0 * Double.pi * u2))
    }

    /// A random permutation of 0..<n (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) {
                let j = randint(i + 1)
                p.swapAt(i, j)
            }
        }
        return p
    }
}

extension Tensor {
    /// Uniform in [lo, hi).
    public static func uniform(
        _ shape: [Int], _ lo: Float, _ hi: Float, rng: inout RandomGenerator,
        requiresGrad: Bool = false
    ) -> Tensor {
        let t = Tensor(zeros: shape, requiresGrad: requiresGrad)
        let p = t.ptr
        for i in 0..<t.count { p[i] = rng.uniform(lo, hi) }
        return t
    }

    /// Normal with the given mean and standard deviation.
    public static func normal(
        _ shape: [Int], mean: Float = 0, std: Float = 1, rng: inout RandomGenerator,
        requiresGrad: Bool = false
    ) -> Tensor {
        let t = Tensor(zeros: shape, requiresGrad: requiresGrad)
        let p = t.ptr
        for i in 0..<t.count { p[i] = mean + std * rng.normal() }
        return t
    }

    /// Normal truncated to [lo, hi] by redrawing (timm's trunc_normal_ init, in absolute bounds).
    public static func truncatedNormal(
        _ shape: [Int], std: Float, lo: Float = -2, hi: Float = 2,
        rng: inout RandomGenerator, requiresGrad: Bool = false
    ) -> Tensor {
        let t = Tensor(zeros: shape, requiresGrad: requiresGrad)
        let p = t.ptr
        for i in 0..<t.count {
            var v: Float
            repeat { v = std * rng.normal() } while v < lo || v > hi
            p[i] = v
        }
        return t
    }
}
