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
}
