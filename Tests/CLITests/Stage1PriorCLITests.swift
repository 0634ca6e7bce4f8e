import DVT
import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

@testable import DVTCommands

@Suite("dvt stage1-prior and stage1.shared_artifacts_prior")
struct Stage1PriorCLITests {
    @Test("two runs' G averaged into a prior; a fit frozen from step 0 keeps it; a prior of another shape is refused by name")
    func priorEndToEnd() throws {
        let dir = temporaryDirectory("stage1-prior-cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let config = repositoryRoot.appendingPathComponent("Configs/cpu-small.yaml").path
        let tiny = [
            "--set", "stage1.num_iters=20", "--set", "stage1.pixel_bsz=64", "--set", "stage1.n_levels=2",
            "--set", "stage1.log2_hashmap_size=8", "--set", "stage1.max_resolution=32", "--set", "stage1.base_resolution=4",
        ]
        for seed in ["1", "2"] {
            try runDVT([
                "bench", "planted", "--generate-seed", seed, "--grid", "6", "--dim", "8", "--views", "4",
                "--save-generated", path("case\(seed).safetensors"), "--set", "stage1.num_iters=5", "--set", "stage1.pixel_bsz=32",
            ])
            try runDVT(
                ["stage1", config, "--features", path("case\(seed).safetensors"), "--output-dir", path("run\(seed)"), "--threads", "1"] + tiny)
        }
        try runDVT(["stage1-prior", path("run1"), path("run2"), "--out", path("prior.npy")])
        let g1 = try Npy.read(URL(fileURLWithPath: path("run1/shared_artifacts/features/case1.npy")))
        let g2 = try Npy.read(URL(fileURLWithPath: path("run2/shared_artifacts/features/case2.npy")))
        let prior = try Npy.read(URL(fileURLWithPath: path("prior.npy")))
        #expect(prior.shape == [6, 6, 8])
        #expect((0..<prior.count).allSatisfy { abs(prior[flat: $0] - (g1[flat: $0] + g2[flat: $0]) / 2) < 1e-6 })

        try runDVT(
            ["stage1", config, "--features", path("case1.safetensors"), "--output-dir", path("run3"), "--threads", "1"] + tiny + [
                "--set", "stage1.shared_artifacts_prior=\(path("prior.npy"))", "--set", "stage1.freeze_shared_artifacts_after=0",
            ])
        let g3 = try Npy.read(URL(fileURLWithPath: path("run3/shared_artifacts/features/case1.npy")))
        #expect(g3.scalars == prior.scalars, "G frozen from step 0 must stay the prior")

        try Npy.write(Tensor(zeros: [5, 6, 8]), to: URL(fileURLWithPath: path("wrong.npy")))
        let text = errorText {
            try runDVT(
                ["stage1", config, "--features", path("case1.safetensors"), "--output-dir", path("run4"), "--threads", "1"] + tiny + [
                    "--set", "stage1.shared_artifacts_prior=\(path("wrong.npy"))",
                ])
        }
        #expect(text.contains("wrong.npy") && text.contains("stage1.shared_artifacts_prior") && text.contains("[5, 6, 8]"), "\(text)")
        #expect(!FileManager.default.fileExists(atPath: path("run4/denoised_features/features/case1.npy")))
        // A run without G maps is refused by name.
        let none = errorText { try runDVT(["stage1-prior", path("run1"), dir.path, "--out", path("p2.npy")]) }
        #expect(none.contains(dir.path) && none.contains("shared_artifacts"), "\(none)")
    }

    @Test("bench planted --artifact-seed: generated cases share one G (up to scale) and differ elsewhere")
    func sharedArtifactCases() throws {
        let dir = temporaryDirectory("planted-artifact-seed")
        defer { try? FileManager.default.removeItem(at: dir) }
        var cases: [SafeTensorsFile] = []
        for seed in ["1", "2"] {
            let file = dir.appendingPathComponent("shared\(seed).safetensors")
            try runDVT([
                "bench", "planted", "--generate-seed", seed, "--artifact-seed", "5", "--grid", "6", "--dim", "8", "--views", "3",
                "--save-generated", file.path, "--set", "stage1.num_iters=2", "--set", "stage1.pixel_bsz=16",
            ])
            cases.append(try SafeTensorsFile(url: file))
        }
        let g1 = try cases[0].tensor("artifact"), g2 = try cases[1].tensor("artifact")
        #expect(Metrics.flatCenteredCosine(g1, g2) > 0.9999)
        #expect(try cases[0].tensor("raw").scalars != cases[1].tensor("raw").scalars)
    }
}
