import Bench
import Formats
import Foundation
import Jobs
import TensorCore
import TestSupport
import Testing
import Vision

/// `mpirun -np 2 dvt stage2` against the single-process run. Needs OpenMPI's mpirun
/// (scripts/deps.sh installs openmpi-bin); without it the tests say so and pass, except on CI
/// (CI=true), where a missing mpirun fails them.
@Suite("dvt stage2 under mpirun", .serialized)
struct Stage2MPICLITests {
    static var mpirun: String? {
        for dir in ["/usr/bin", "/usr/local/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/mpirun") { return dir + "/mpirun" }
        return nil
    }

    /// mpirun and the dvt executable, or nil (with a message) when this machine has no mpirun.
    func prerequisites() throws -> (String, URL) {
        let exe = try requireExecutable()
        try requirePrerequisite(Self.mpirun != nil, "mpirun not found: install openmpi-bin (scripts/deps.sh does)")
        return (Self.mpirun!, exe)
    }

    /// A feature tree of 8 training and 2 validation maps (raw = target + a fixed artifact,
    /// C 32 on 6 × 6) and a stage-2 config on it; returns the config.
    func setUp(_ dir: URL, iters: Int = 6, batch: Int = 4) throws -> URL {
        var rng = RandomGenerator(seed: 4)
        let artifact = Tensor.normal([6, 6, 32], std: 0.6, rng: &rng)
        let names = (0..<10).map { "img_\($0)" }
        for n in names {
            let target = Tensor.normal([6, 6, 32], rng: &rng)
            for (tree, t) in [("raw_features", withNoGrad { target + artifact }), ("denoised_features", target)] {
                let u = dir.appendingPathComponent("out/\(tree)/tiny/\(n).npy")
                try FileManager.default.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Npy.write(t, to: u)
            }
        }
        try Data(names.prefix(8).map { "\($0).jpg\n" }.joined().utf8).write(to: dir.appendingPathComponent("train.txt"))
        try Data(names.suffix(2).map { "\($0).jpg\n" }.joined().utf8).write(to: dir.appendingPathComponent("val.txt"))
        let cfg = dir.appendingPathComponent("cfg.yaml")
        try Data(
            """
            model: tiny
            data_list: \(dir.appendingPathComponent("train.txt").path)
            val_list: \(dir.appendingPathComponent("val.txt").path)
            output_dir: \(dir.appendingPathComponent("out").path)
            seed: 3
            stage2:
              batch_size: \(batch)
              base_lr: 0.05
              num_iters: \(iters)
              save_freq: 3
              val_freq: 3
              print_freq: 1
            """.utf8
        ).write(to: cfg)
        return cfg
    }

    /// Runs a command with a deadline (a hung rank must fail the test, not hang it).
    func run(_ exe: String, _ args: [String], timeout: TimeInterval = 120, onStart: ((Process) -> Void)? = nil) throws -> (Int32, String) {
        let p = Process(), pipe = Pipe()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["DVT_NUM_THREADS"] = "1"
        // Containers often forbid the cross-memory attach OpenMPI's shared-memory transport tries
        // first (ptrace scope); copy through the shared segment instead.
        env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        p.environment = env
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        onStart?(p)
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        let hung = p.isRunning
        if hung { kill(p.processIdentifier, SIGKILL) }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(!hung, "\(args.prefix(6)) still running after \(timeout) s")
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func mpi(_ mpirun: String, _ exe: URL, ranks: Int, _ args: [String]) -> [String] {
        // As docs/slurm.md writes it.
        ["--allow-run-as-root", "--oversubscribe", "-np", String(ranks), "-x", "DVT_NUM_THREADS=1", exe.path] + args
    }

    func tensors(_ url: URL, prefix: String) throws -> [String: [Float]] {
        let f = try SafeTensorsFile(url: url)
        var out: [String: [Float]] = [:]
        for k in f.keys where k.hasPrefix(prefix) { out[k] = try f.tensor(k).scalars }
        return out
    }

    @Test("mpirun -np 2 equals one process with the same global batch (1e-5 relative), with the same sample order")
    func equalsSingleProcess() throws {
        let (mpirun, exe) = try prerequisites()
        let dir = temporaryDirectory("stage2-mpi")
        defer { try? FileManager.default.removeItem(at: dir) }
        let single = dir.appendingPathComponent("single"), parallel = dir.appendingPathComponent("mpi")
        let cfgS = try setUp(single), cfgP = try setUp(parallel)
        let (rc1, log1) = try run(exe.path, ["stage2", cfgS.path])
        #expect(rc1 == 0, "\(log1)")
        let (rc2, log2) = try run(mpirun, mpi(mpirun, exe, ranks: 2, ["stage2", cfgP.path]))
        #expect(rc2 == 0, "\(log2)")
        #expect(log2.contains("rank 0 of 2") && log2.contains("rank 1 of 2"), "\(log2)")
        let ckpt = "out/stage2/checkpoints/latest.safetensors"
        let a = try tensors(single.appendingPathComponent(ckpt), prefix: "model.")
        let b = try tensors(parallel.appendingPathComponent(ckpt), prefix: "model.")
        #expect(!a.isEmpty && a.keys.sorted() == b.keys.sorted())
        func relative(_ x: ArraySlice<Float>, _ y: ArraySlice<Float>) -> Double {
            let diff = zip(x, y).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
            return diff / max(x.map { Double($0) * Double($0) }.reduce(0, +).squareRoot(), 1e-12)
        }
        for (k, x) in a {
            let y = b[k] ?? []
            #expect(y.count == x.count)
            if k.hasSuffix("attn.qkv.bias") {
                // The key bias adds the same score to every key of a query, which softmax cancels:
                // its gradient is zero up to rounding, so its value is rounding noise that Adam's
                // normalisation turns into lr-sized steps, and it has no effect on the output.
                // Compare the query and value biases.
                let c = x.count / 3
                for (part, r) in [("q", 0..<c), ("v", (2 * c)..<(3 * c))] {
                    #expect(relative(x[r], y[r]) <= 1e-5, "\(k) (\(part)): relative difference \(relative(x[r], y[r]))")
                }
            } else {
                #expect(relative(x[...], y[...]) <= 1e-5, "\(k): relative difference \(relative(x[...], y[...]))")
            }
        }
        // Same sampler state (epoch, cursor) after the same steps: the same sample order.
        let sa = try tensors(single.appendingPathComponent(ckpt), prefix: "extra.")
        let sb = try tensors(parallel.appendingPathComponent(ckpt), prefix: "extra.")
        #expect(sa == sb)
        // Rank 0 alone wrote the outputs: one metrics line per step, the export, and both have
        // the global (reduced) loss of each step.
        let m1 = try String(contentsOf: single.appendingPathComponent("out/stage2/metrics.jsonl"), encoding: .utf8)
        let m2 = try String(contentsOf: parallel.appendingPathComponent("out/stage2/metrics.jsonl"), encoding: .utf8)
        func losses(_ s: String) -> [Double] {
            s.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double }
        }
        let (l1, l2) = (losses(m1), losses(m2))
        #expect(l1.count == 6 && l2.count == 6, "\(m2)")
        for (x, y) in zip(l1, l2) { #expect(abs(x - y) <= 1e-5 * abs(x), "loss \(x) vs \(y)") }
        #expect(m2.contains("val_loss"))
        #expect(FileManager.default.fileExists(atPath: parallel.appendingPathComponent("out/stage2/denoiser.safetensors").path))
    }

    @Test("resume under mpirun at the same rank count is bit-exact against the uninterrupted run")
    func resume() throws {
        let (mpirun, exe) = try prerequisites()
        let dir = temporaryDirectory("stage2-mpi-resume")
        defer { try? FileManager.default.removeItem(at: dir) }
        let full = dir.appendingPathComponent("full"), cut = dir.appendingPathComponent("cut")
        let cfgF = try setUp(full), cfgC = try setUp(cut)
        let (rc1, log1) = try run(mpirun, mpi(mpirun, exe, ranks: 2, ["stage2", cfgF.path]))
        #expect(rc1 == 0, "\(log1)")
        // The interrupted run: the same job as it stood after its step-3 checkpoint.
        let (rc2, log2) = try run(mpirun, mpi(mpirun, exe, ranks: 2, ["stage2", cfgC.path]))
        #expect(rc2 == 0, "\(log2)")
        let ckDir = cut.appendingPathComponent("out/stage2/checkpoints")
        try FileManager.default.removeItem(at: ckDir.appendingPathComponent("latest.safetensors"))
        try FileManager.default.removeItem(at: ckDir.appendingPathComponent("step_0000006.safetensors"))
        try FileManager.default.copyItem(
            at: ckDir.appendingPathComponent("step_0000003.safetensors"), to: ckDir.appendingPathComponent("latest.safetensors"))
        let (rc3, log3) = try run(mpirun, mpi(mpirun, exe, ranks: 2, ["stage2", cfgC.path, "--resume"]))
        #expect(rc3 == 0 && log3.contains("resumed from"), "\(log3)")
        let ckpt = "out/stage2/checkpoints/latest.safetensors"
        let a = try tensors(full.appendingPathComponent(ckpt), prefix: "")
        let b = try tensors(cut.appendingPathComponent(ckpt), prefix: "")
        #expect(!a.isEmpty && a == b, "resumed checkpoint differs from the uninterrupted one")
    }

    @Test("a rank that dies or fails ends the whole job with a clear message; no rank hangs")
    func rankFailure() throws {
        let (mpirun, exe) = try prerequisites()
        let dir = temporaryDirectory("stage2-mpi-fail")
        defer { try? FileManager.default.removeItem(at: dir) }
        // An error on the ranks (a global batch that does not split over 2 ranks): MPI_Abort.
        let cfg = try setUp(dir.appendingPathComponent("odd"), batch: 3)
        let (rc1, log1) = try run(mpirun, mpi(mpirun, exe, ranks: 2, ["stage2", cfg.path]), timeout: 60)
        #expect(rc1 != 0 && log1.contains("must divide evenly over the 2 MPI ranks") && log1.contains("aborting all 2 ranks"), "\(log1)")
        // A rank killed mid-run (SIGKILL): mpirun ends the others.
        let long = try setUp(dir.appendingPathComponent("kill"), iters: 100_000)
        let metrics = dir.appendingPathComponent("kill/out/stage2/metrics.jsonl")
        let (rc2, log2) = try run(mpirun, mpi(mpirun, exe, ranks: 2, ["stage2", long.path]), timeout: 90) { p in
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline && ((try? String(contentsOf: metrics, encoding: .utf8))?.count ?? 0) < 10 { usleep(50_000) }
            if let victim = Self.children(of: p.processIdentifier).last { kill(victim, SIGKILL) }
        }
        #expect(rc2 != 0, "\(log2)")
        #expect(log2.lowercased().contains("signal 9") || log2.contains("Killed"), "\(log2)")
    }

    /// Child process ids of `pid` (from /proc), in pid order.
    static func children(of pid: Int32) -> [Int32] {
        let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return procs.compactMap(Int32.init).filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid
        }.sorted()
    }
}
