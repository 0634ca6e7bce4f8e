import Foundation
import TestSupport
import Testing

@testable import DVTCommands

@Suite("dvt run")
struct RunCLITests {
    @Test("the whole pipeline on tiny inputs writes features, a denoiser, metrics, a run record and the report; a rerun skips finished steps")
    func pipeline() throws {
        let dir = temporaryDirectory("run")
        defer { try? FileManager.default.removeItem(at: dir) }
        var run = TinyRun(dir)
        run.train = ["chelsea.jpg", "rocket.jpg", "coffee.jpg"]
        run.val = ["camera.jpg", "brick.jpg"]
        run.stage1.numIters = 20
        run.stage2 = TinyRun.Stage2(numIters: 6, batchSize: 2, every: 3)
        let out = run.out
        let cfg = try run.write()
        try runDVT(["run", cfg.path, "--quiet", "--threads", "1"])
        let fm = FileManager.default
        for file in [
            "report/index.html", "metrics.md", "run.json", "config.yaml", "stage2/denoiser.safetensors",
            "stage2_features/vit_small_patch14_dinov2.lvd142m/camera.npy",
            "srt_features/vit_small_patch14_dinov2.lvd142m/rocket.npy",
        ] {
            #expect(fm.fileExists(atPath: out.appendingPathComponent(file).path), "missing \(file)")
        }
        let html = try String(contentsOf: out.appendingPathComponent("report/index.html"), encoding: .utf8)
        #expect(html.contains("Random weights") && html.contains("DVT stage 2") && html.contains("<img src=\"camera_input.png\""))
        // The viewer's data, DVT's panels, the per-block plot and the flip-equivariance column.
        #expect(fm.fileExists(atPath: out.appendingPathComponent("report/viewer_data.js").path))
        #expect(html.contains("id=\"viewer\"") && html.contains("camera_raw_kmeans.png") && html.contains("camera_stage2_centresim.png"))
        #expect(html.contains("flip equivariance error per block") && html.contains("stage 2 loss"))
        let metrics = try String(contentsOf: out.appendingPathComponent("metrics.md"), encoding: .utf8)
        #expect(metrics.contains("raw ViT") && metrics.contains("SRT") && metrics.contains("DVT stage 1"))
        // Flip equivariance is measured for every method.
        let rows = metrics.split(separator: "\n").filter { $0.hasPrefix("| raw ViT ") || $0.hasPrefix("| SRT ") || $0.hasPrefix("| DVT stage ") }
        #expect(rows.count == 4 && rows.allSatisfy { !$0.hasSuffix("| — |") }, "\(metrics)")
        let record = try String(contentsOf: out.appendingPathComponent("run.json"), encoding: .utf8)
        #expect(record.contains("\"seed\" : 1") && record.contains("tiny.yaml"))
        // A rerun finds every step complete. The curve is removed first: the state a kill just after
        // denoiser.safetensors left (issue 18, item 9); the rerun must draw it again.
        let curve = out.appendingPathComponent("stage2/loss_curve.png")
        #expect(fm.fileExists(atPath: curve.path))
        try fm.removeItem(at: curve)
        let before = try fm.attributesOfItem(atPath: out.appendingPathComponent("stage2/denoiser.safetensors").path)[.modificationDate] as! Date
        try runDVT(["run", cfg.path, "--quiet", "--threads", "1"])
        let after = try fm.attributesOfItem(atPath: out.appendingPathComponent("stage2/denoiser.safetensors").path)[.modificationDate] as! Date
        #expect(before == after)
        #expect(fm.fileExists(atPath: curve.path), "the rerun did not redraw stage2/loss_curve.png")
        let record2 = try String(contentsOf: out.appendingPathComponent("run.json"), encoding: .utf8)
        #expect(record2.contains("skipped"))
    }
}
