import ArgumentParser
import Foundation
import Jobs
import TensorCore

/// `dvt doctor`: which kernels this machine runs, so a slow run can be explained.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Print the matmul backends, the ISA each dispatches to here, and the thread count.")

    func run() throws {
        for line in doctorLines() { print(line) }
    }
}

/// The lines `dvt doctor` prints (a function so the CLI test can check them).
func doctorLines() -> [String] {
    var lines = ["dvt \(DVTVersion.string)"]
    for e in Backends.entries {
        lines.append("\(e.library) \(e.version): \(e.isa)\(e.active ? "  (matmul backend)" : "")")
    }
    let env = ProcessInfo.processInfo.environment
    lines.append("matmul: \(Backends.matmulBackend), threads: \(Parallel.threads) (\(Backends.matmulThreading) split)")
    lines.append("oneDNN fp32 kernel: \(Backends.oneDNNImplementation(m: 1370, n: 768, k: 768) ?? "none")")
    lines.append(
        "oneDNN bf16 kernel: \(Backends.oneDNNImplementation(m: 1370, n: 768, k: 768, bf16: true) ?? "none (this CPU has no bf16 matmul in oneDNN)")")
    lines.append("softmax / GELU kernels: \(Backends.rowKernels)")
    lines.append("OPENBLAS_CORETYPE: \(env["OPENBLAS_CORETYPE"] ?? "unset"), DVT_GEMM: \(env["DVT_GEMM"] ?? "unset")")
    return lines
}
