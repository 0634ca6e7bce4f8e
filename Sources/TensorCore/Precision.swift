import Foundation

/// The operand precision of matrix products (config key `precision`, `--precision`).
///
/// `.bf16` is torch.autocast on a CPU, restricted to products: the operands of every matmul,
/// linear and attention product are rounded to bfloat16 (round to nearest even), the products
/// accumulate in fp32 and write fp32, and everything else (layer norm, softmax, GELU, adds,
/// losses, optimiser state and master weights) stays fp32. On CPUs with AVX512_BF16 (oneDNN
/// `avx512_core_bf16`) or AMX (`avx512_core_amx`) oneDNN runs these products on bf16 kernels;
/// with `DVT_GEMM=openblas` the rounded operands go through fp32 sgemm, which is the same
/// arithmetic up to summation order (the reference the bf16 tests compare oneDNN against).
///
/// The value in effect is task-local (`Precision.current`) so that concurrent jobs can run in
/// different precisions; models carry their own (`VisionTransformer.precision`,
/// `Denoiser.precision`) and bind it around their forward pass, and every op reads it once at
/// forward time and uses the same precision in its backward products.
public enum Precision: String, Sendable, CaseIterable, Codable {
    case fp32, bf16

    /// The precision ops use when called from here (default fp32).
    @TaskLocal public static var current: Precision = .fp32

    /// Runs `body` with `self` as `Precision.current`.
    public func run<R>(_ body: () throws -> R) rethrows -> R {
        try Precision.$current.withValue(self, operation: body)
    }

    /// Parses `fp32` / `bf16` (also `float32`, `bfloat16`), naming the source in the error.
    public init(parsing text: String, from source: String) throws {
        switch text.lowercased() {
        case "fp32", "float32", "f32": self = .fp32
        case "bf16", "bfloat16": self = .bf16
        default: throw PrecisionError(description: "\(source): precision must be fp32 or bf16, got '\(text)'")
        }
    }
}

public struct PrecisionError: Error, CustomStringConvertible, LocalizedError {
    public var description: String
    public var errorDescription: String? { description }
}

/// bfloat16 conversion: the top 16 bits of an fp32, rounded to nearest even.
enum BFloat16 {
    /// One value (NaN stays a quiet NaN; ±inf and overflow to inf as torch does).
    @inline(__always)
    static func round(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    @inline(__always)
    static func float(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    /// A bf16 buffer of `count` values followed by `padding` zeros: a precaution, since
    /// oneDNN's bf16 kernels read K in pairs and whole vector blocks and a load past the last
    /// value that met a NaN bit pattern would give NaN · 0 = NaN. (The NaN seen in planted bf16
    /// stage-2 runs was not this but the shared scratchpad; see OneDNN.Scratch.)
    static let padding = 256

    static func allocatePadded(_ count: Int) -> UnsafeMutablePointer<UInt16> {
        let p = UnsafeMutablePointer<UInt16>.allocate(capacity: count + padding)
        (p + count).initialize(repeating: 0, count: padding)
        return p
    }

    /// Packs a (rows, cols) fp32 matrix with leading dimension `ld` into contiguous bf16
    /// (leading dimension `cols`), 16 lanes at a time, split over the workers when large.
    static func pack(
        _ src: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int,
        into dst: UnsafeMutablePointer<UInt16>, parallel: Bool
    ) {
        func packRows(_ range: Range<Int>) {
            for r in range {
                let s = src + r * ld, d = dst + r * cols
                var j = 0
                let s32 = UnsafeRawPointer(s)
                while j + 16 <= cols {
                    let v = s32.loadUnaligned(fromByteOffset: j * 4, as: SIMD16<UInt32>.self)
                    // NaN lanes: exponent all ones and a non-zero mantissa.
                    let nan = (v & 0x7FFF_FFFF) .> SIMD16<UInt32>(repeating: 0x7F80_0000)
                    var r16 = (v &+ 0x7FFF &+ ((v &>> 16) & 1)) &>> 16
                    r16.replace(with: (v &>> 16) | 0x0040, where: nan)
                    UnsafeMutableRawPointer(d + j).storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: r16), as: SIMD16<UInt16>.self)
                    j += 16
                }
                while j < cols { d[j] = round(s[j]); j += 1 }
            }
        }
        if parallel && rows * cols >= 1 << 16 {
            Parallel.forRanges(rows, grain: max(1, (1 << 15) / max(cols, 1)), packRows)
        } else {
            packRows(0..<rows)
        }
    }
}

extension Tensor {
    /// A copy with every element rounded to the nearest bfloat16 (kept as fp32): what a bf16
    /// product sees of its operands. Not differentiable (for tests and error measurements).
    public func roundedToBF16() -> Tensor {
        let out = Tensor.uninitialized(shape)
        let p = ptr, o = out.ptr
        for i in 0..<count { o[i] = BFloat16.float(BFloat16.round(p[i])) }
        return out
    }
}
