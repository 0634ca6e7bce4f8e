import COneDNN
import COpenBLAS
import Foundation

/// Which kernels the engine's matrix products run on this machine, for `dvt doctor`.
public enum Backends {
    /// One line per library: what it is, which ISA it dispatches to here, and whether the
    /// engine uses it for products.
    public struct Entry: Sendable, Equatable {
        public let library: String
        public let version: String
        /// oneDNN: `dnnl_get_effective_cpu_isa()` (e.g. `avx2`, `avx512_core_amx`);
        /// OpenBLAS: `openblas_get_corename()` (e.g. `Haswell`, `Prescott`).
        public let isa: String
        public let active: Bool
    }

    public static var entries: [Entry] {
        let v = dnnl_version().pointee
        let dnnl = Entry(
            library: "oneDNN", version: "\(v.major).\(v.minor).\(v.patch)",
            isa: OneDNN.isaName, active: BLAS.backend == .onednn)
        let config = String(cString: openblas_get_config())
        let openblas = Entry(
            library: "OpenBLAS", version: config.split(separator: " ").dropFirst().first.map(String.init) ?? config,
            isa: String(cString: openblas_get_corename()), active: BLAS.backend == .openblas)
        return [dnnl, openblas]
    }

    /// The matmul backend in use: `onednn` (default) or `openblas` (`DVT_GEMM`).
    public static var matmulBackend: String { BLAS.backend.rawValue }

    /// Who threads the products: `engine` (Dispatch workers, kernels single-threaded) or
    /// `openblas` (`DVT_GEMM=openblas-threads`).
    public static var matmulThreading: String { BLAS.threading.rawValue }

    /// oneDNN's implementation for an (M, K)·(K, N) product, e.g. `gemm:jit` or
    /// `brg:avx512_core_amx`; nil when oneDNN has none (e.g. bf16 on a CPU without AVX-512).
    public static func oneDNNImplementation(m: Int, n: Int, k: Int, bf16: Bool = false) -> String? {
        OneDNN.implementation(m: m, n: n, k: k, bf16: bf16)
    }
}
