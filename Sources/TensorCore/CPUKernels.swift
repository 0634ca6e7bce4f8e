import CKernels
import Foundation

/// Which implementation runs the row kernels outside the matmuls (softmax rows, GELU):
/// AVX-512 C (Sources/CKernels) when the CPU has it, else the Swift SIMD8 kernels
/// (RowKernels), which Swift compiles for baseline x86-64 (SSE2, 4 lanes).
///
/// `perf record -g` of a ViT-B/14 518² forward (docs/speed.md): 75% of samples in oneDNN's
/// JIT matmul kernels, 12% in attention's softmax rows and 6% in GELU; the AVX-512 bodies run
/// them at 16 lanes with FMA. `DVT_NO_AVX512=1` forces the Swift kernels (for comparisons).
enum CPUKernels {
    static let avx512: Bool =
        ProcessInfo.processInfo.environment["DVT_NO_AVX512"] == nil && dvt_cpu_has_avx512() != 0

    /// AVX-512 with AVX512_BF16 (`vcvtne2ps2bf16`): attention's bf16 softmax rows take the
    /// faster kernel (`dvt_softmax_row_bf16_fast_avx512`, within one bf16 ulp of the exact
    /// rounding instead of the same bits as the fp32 kernel's rounding).
    static let avx512BF16: Bool = avx512 && dvt_cpu_has_avx512_bf16() != 0

    /// The name `dvt doctor` prints.
    static var rowKernelISA: String { avx512 ? "avx512f (C)" : "Swift SIMD8 (baseline x86-64)" }
}

extension Backends {
    /// Who runs softmax rows and GELU here: `avx512f (C)` or the Swift SIMD8 kernels.
    public static var rowKernels: String { CPUKernels.rowKernelISA }
}

extension Backends {
    /// Measured single-core peak of this machine in GFLOP/s: fp32 FMA (AVX-512, else AVX2)
    /// and bf16 dot products (vdpbf16ps; nil without AVX512_BF16), from register-only loops on
    /// the calling thread. On a shared machine it measures what this thread gets.
    public struct Peak: Sendable {
        public var fp32: Double
        public var fp32ISA: String
        public var bf16: Double?
    }

    public static func measuredPeak(seconds: Double = 0.25) -> Peak {
        func rate(_ body: (Int, UnsafeMutablePointer<Float>) -> Double) -> Double {
            var sink: Float = 0
            _ = body(100_000, &sink)  // warm up (clocks, page-in)
            var flops = 0.0
            let t0 = DispatchTime.now().uptimeNanoseconds
            var elapsed = 0.0
            while elapsed < seconds {
                flops += body(2_000_000, &sink)
                elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            }
            return flops / elapsed / 1e9
        }
        let avx512 = dvt_cpu_has_avx512() != 0
        let fp32: Double
        if avx512 {
            fp32 = rate { dvt_peak_fp32_avx512($0, $1) }
        } else if dvt_cpu_has_avx2_fma() != 0 {
            fp32 = rate { dvt_peak_fp32_avx2($0, $1) }
        } else {
            fp32 = 0
        }
        let bf16 = dvt_cpu_has_avx512_bf16() != 0 ? rate { dvt_peak_bf16_avx512($0, $1) } : nil
        return Peak(fp32: fp32, fp32ISA: avx512 ? "avx512f" : "avx2+fma", bf16: bf16)
    }

    /// Median seconds of one row-major (M, K)·(K, N) product on the calling thread (no row
    /// split) through `library` (`onednn` or `openblas`) in `precision` (bf16 includes packing
    /// the operands), for `dvt bench engine`.
    public static func productSeconds(
        m: Int, n: Int, k: Int, library: String, precision: Precision = .fp32,
        repeats: Int = 5
    ) -> Double {
        _ = Parallel.threads  // sets OpenBLAS to one thread under the engine split
        let backend: BLAS.Backend = library == "openblas" ? .openblas : .onednn
        var rng = RandomGenerator(seed: 7)
        let a = Tensor.normal([m, k], rng: &rng), b = Tensor.normal([k, n], rng: &rng)
        let c = Tensor(zeros: [m, n])
        let pa = a.ptr, pb = b.ptr, pc = c.ptr
        func once() {
            BLAS.gemm(false, false, m, n, k, 1, pa, k, pb, n, 0, pc, n, split: false, backend: backend, precision: precision)
        }
        once()
        var times: [Double] = []
        for _ in 0..<max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            once()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return times.sorted()[times.count / 2]
    }
}
