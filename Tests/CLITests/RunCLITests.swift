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
        try "chelsea.jpg\nrocket.jpg\ncoffee.jpg\n".write(to: dir.appendingPathComponent("train.txt"), atomically: true, encoding: .utf8)
        try "camera.jpg\nbrick.jpg\n".write(to: dir.appendingPathComponent("val.txt"), atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("out")
        let yaml = """
            model: vit_small_patch14_dinov2.lvd142m
            random_init: 2
            input_size: [56, 56]
            layer: 1
            data_root: \(photos.path)
            data_list: \(dir.appendingPathComponent("train.txt").path)
            val_list: \(dir.appendingPathComponent("val.txt").path)
            output_dir: \(out.path)
            seed: 1
            stage1:
              num_views: 2
              num_iters: 20
              pixel_bsz: 32
              n_levels: 2
              log2_hashmap_size: 6
              max_resolution: 16
              print_freq: 10
            stage2:
              num_iters: 6
              batch_size: 2
              save_freq: 3
              val_freq: 3
              print_freq: 3
            srt:
              dx: 1
              dy: 1
            """
        let cfg = dir.appendingPathComponent("tiny.yaml")
        try yaml.write(to: cfg, atomically: true, encoding: .utf8)
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
