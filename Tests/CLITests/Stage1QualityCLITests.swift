import Formats
import Foundation
import TestSupport
import Testing

@testable import DVTCommands

@Suite("dvt bench stage1-quality")
struct Stage1QualityCLITests {
    @Test("on a tiny planted case: the official seeds, the scaled fast recipe, the pass line; no case is refused")
    func tinyPlanted() throws {
        let dir = temporaryDirectory("stage1-quality")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("tiny.safetensors").path
        try runDVT([
            "bench", "planted", "--generate-seed", "1", "--grid", "8", "--dim", "16", "--views", "12",
            "--save-generated", file, "--set", "stage1.num_iters=10", "--set", "stage1.pixel_bsz=64",
        ])
        let configs = repositoryRoot.appendingPathComponent("Configs")
        let (status, out) = try runExecutable([
            "bench", "stage1-quality", "--planted", file, "--official", configs.appendingPathComponent("dvt-default.yaml").path,
            "--fast", configs.appendingPathComponent("dvt-fast.yaml").path, "--threads", "1",
            "--budget-set", "stage1.num_iters=50", "--budget-set", "stage1.pixel_bsz=128", "--budget-set", "stage1.n_levels=4",
            "--budget-set", "stage1.log2_hashmap_size=10", "--budget-set", "stage1.max_resolution=32",
        ])
        #expect(status == 0, "\(out)")
        #expect(out.contains("official s0") && out.contains("official s1"), "\(out)")
        // dvt-fast.yaml: all views, a fifth of the steps (50 → 10).
        let fast = out.split(separator: "\n").first { $0.contains("fast s0") }.map(String.init) ?? ""
        #expect(fast.contains("   12     10 "), "\(fast)")
        #expect(out.contains("tiny fast s0: PASSES") || out.contains("tiny fast s0: FAILS"), "\(out)")
        #expect(throws: (any Error).self) { try runDVT(["bench", "stage1-quality"]) }
    }

    @Test("--fast-prior-loo starts each case's fast G from the other cases' official G; --cache reuses the official runs")
    func leaveOneOutPriorAndCache() throws {
        let dir = temporaryDirectory("stage1-quality-prior")
        defer { try? FileManager.default.removeItem(at: dir) }
        var files: [String] = []
        for seed in ["1", "2"] {
            let file = dir.appendingPathComponent("case\(seed).safetensors").path
            try runDVT([
                "bench", "planted", "--generate-seed", seed, "--grid", "6", "--dim", "8", "--views", "6",
                "--save-generated", file, "--set", "stage1.num_iters=5", "--set", "stage1.pixel_bsz=32",
            ])
            files.append(file)
        }
        let configs = repositoryRoot.appendingPathComponent("Configs")
        let args =
            ["bench", "stage1-quality", "--planted"] + files + [
                "--official", configs.appendingPathComponent("dvt-default.yaml").path,
                "--fast", configs.appendingPathComponent("dvt-fast.yaml").path, "--threads", "1",
                "--budget-set", "stage1.num_iters=30", "--budget-set", "stage1.pixel_bsz=64", "--budget-set", "stage1.n_levels=2",
                "--budget-set", "stage1.log2_hashmap_size=8", "--budget-set", "stage1.max_resolution=32",
                "--fast-prior-loo", "--fast-set", "stage1.freeze_shared_artifacts_after=0",
                "--prior-dir", dir.appendingPathComponent("priors").path, "--cache", dir.appendingPathComponent("cache").path,
            ]
        let (status, out) = try runExecutable(args)
        #expect(status == 0, "\(out)")
        #expect(out.contains("case1 prior (mean official s0 G of 1 other cases)") && !out.contains("from the cache"), "\(out)")
        // G frozen from step 0 stays the prior: the fast row's G agreement is the prior's.
        let lines = out.split(separator: "\n")
        let priorLine = lines.first { $0.hasPrefix("case1 prior") }.map(String.init) ?? ""
        let fastRow = lines.first { $0.hasPrefix("case1") && $0.contains("fast s0   ") }.map(String.init) ?? ""
        let fastColumns = fastRow.split(separator: " ")
        #expect(fastColumns.count == 12 && priorLine.hasSuffix(" " + fastColumns[9]), "\(priorLine)\n\(fastRow)")
        // case1's prior is case2's official G, never its own.
        let prior = try Npy.read(dir.appendingPathComponent("priors/prior-without-case1.npy"))
        #expect(prior.shape == [6, 6, 8])
        let (again, out2) = try runExecutable(args)
        #expect(again == 0 && out2.contains("case1 official s0: from the cache") && out2.contains("case2 official s1: from the cache"), "\(out2)")
        func officialRows(_ text: String) -> [Substring] {
            text.split(separator: "\n").filter { $0.contains("official s0   ") || $0.contains("official s1   ") }
        }
        // The cached rows score the same (fit seconds aside, which the cache keeps too).
        #expect(officialRows(out) == officialRows(out2), "\(out)\n\(out2)")
        let one = try runExecutable(Array(args.prefix(3)) + [files[0]] + Array(args.dropFirst(5)))
        #expect(one.0 != 0 && one.1.contains("two cases or more"), "\(one.1)")
    }
}
