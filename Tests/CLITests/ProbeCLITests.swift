import Foundation
import Probe
import TestSupport
import Testing
import Vision

@testable import DVTCommands

@Suite("dvt probe")
struct ProbeCLITests {
    /// The shared tiny run without stage-1 visuals; `extra` appends a `probe:` section.
    static func tinyConfig(_ dir: URL, extra: String = "") throws -> URL {
        var run = TinyRun(dir)
        run.stage1.visEvery = 0
        run.extra = extra
        return try run.write()
    }

    @Test("dvt run with probe.enabled trains a head per method on a VOC-layout set and the report gets its Downstream section")
    func runWithProbeStep() throws {
        let dir = temporaryDirectory("probe-run")
        defer { try? FileManager.default.removeItem(at: dir) }
        let voc = dir.appendingPathComponent("voc")
        try SyntheticScenes.write(to: voc, seed: 3, train: 4, val: 2, size: 32)
        let cfg = try Self.tinyConfig(
            dir,
            extra: """
                probe:
                  enabled: true
                  dataset: voc
                  root: \(voc.path)
                  methods: raw,srt,stage1,stage2
                  iterations: 6
                  batch_size: 2
                """)
        try runDVT(["run", cfg.path, "--quiet", "--threads", "1"])
        let out = dir.appendingPathComponent("out")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("probe/segmentation.json"))) as! [String: Any]
        let methods = (json["methods"] as! [[String: Any]]).map { $0["method"] as! String }
        #expect(methods == ["raw", "srt", "stage1", "stage2"])
        #expect(json["metric_names"] as? [String] == ["mIoU", "mAcc", "aAcc"] && json["val_images"] as? Int == 2)
        // Stage 1 of the probe images went into the run tree, under probe/voc/.
        #expect(
            FileManager.default.fileExists(
                atPath: out.appendingPathComponent("denoised_features/vit_small_patch14_dinov2.lvd142m/probe/voc/scene_0004.npy").path))
        let html = try String(contentsOf: out.appendingPathComponent("report/index.html"), encoding: .utf8)
        #expect(html.contains("<h2>Downstream</h2>") && html.contains("probe_segmentation_scene_0004.png"))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("report/probe_segmentation_scene_0004.png").path))

        // dvt probe on the same run: depth on an NYU miniature with the run's denoiser as a file.
        let nyu = dir.appendingPathComponent("nyu")
        for (split, scene) in [("train", "a"), ("train", "b"), ("test", "c")] {
            try FileManager.default.createDirectory(at: nyu.appendingPathComponent(scene), withIntermediateDirectories: true)
            try RGBImage(contentsOf: photos.appendingPathComponent("rocket.jpg")).resized(width: 40, height: 30)
                .write(to: nyu.appendingPathComponent("\(scene)/rgb_00001.jpg"))
            try SampleImage(width: 40, height: 30, samples: (0..<1200).map { UInt16(800 + 3 * $0) }, kind: .gray, bitDepth: 16)
                .write(to: nyu.appendingPathComponent("\(scene)/sync_depth_00001.png"))
            let line = "/\(scene)/rgb_00001.jpg /\(scene)/sync_depth_00001.png 518.8579\n"
            let list = nyu.appendingPathComponent("nyu_\(split).txt")
            let old = (try? String(contentsOf: list, encoding: .utf8)) ?? ""
            try (old + line).write(to: list, atomically: true, encoding: .utf8)
        }
        let denoiser = out.appendingPathComponent("stage2/denoiser.safetensors").path
        try runDVT([
            "probe", cfg.path, nyu.path, "--task", "depth", "--dataset", "nyu", "--methods", "raw,\(denoiser)",
            "--iterations", "4", "--threads", "1",
        ])
        let depth = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("probe/depth.json"))) as! [String: Any]
        let rows = depth["methods"] as! [[String: Any]]
        #expect(rows.count == 2)
        let rmse = (rows[0]["metrics"] as! [String: Any])["RMSE"] as? Double
        #expect(rmse.map { $0 > 0 && $0 < 10 } == true, "RMSE \(String(describing: rmse))")
    }

    @Test("bad probe inputs give clear errors")
    func badInputs() throws {
        let dir = temporaryDirectory("probe-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let voc = dir.appendingPathComponent("voc")
        try SyntheticScenes.write(to: voc, seed: 3, train: 2, val: 1, size: 28)
        let cfg = try Self.tinyConfig(dir)
        #expect(dvtError(["probe", cfg.path, voc.path, "--task", "depth", "--dataset", "voc"]).contains("does not fit dataset voc"))
        #expect(dvtError(["probe", cfg.path, voc.path, "--dataset", "kitti"]).contains("unknown dataset layout 'kitti'"))
        #expect(dvtError(["probe", cfg.path, "--dataset", "voc"]).contains("needs a dataset root"))
        #expect(dvtError(["probe", cfg.path, voc.path, "--methods", "bogus", "--iterations", "1"]).contains("unknown probe method 'bogus'"))
        #expect(dvtError(["probe", cfg.path, voc.path, "--methods", "stage2", "--iterations", "1"]).contains("needs the run's denoiser"))
        #expect(dvtError(["probe", cfg.path, dir.appendingPathComponent("none").path]).contains("is not a directory"))
        #expect(dvtError(["probe", cfg.path, voc.path, "--set", "probe.iterations=0"]).contains("probe.iterations"))
    }
}

@Suite("dvt bench probe")
struct ProbeBenchCLITests {
    @Test("planted segmentation on tiny cases writes the table with every strength × method")
    func tinyPlanted() throws {
        let dir = temporaryDirectory("bench-probe")
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = dir.appendingPathComponent("probe/planted.json")
        try runDVT([
            "bench", "probe", repositoryRoot.appendingPathComponent("Configs/planted.yaml").path,
            "--set", "stage1.num_iters=20", "stage1.pixel_bsz=256", "stage2.num_iters=4", "stage2.batch_size=2",
            "stage2.save_freq=2", "stage2.val_freq=2", "output_dir=\(dir.path)",
            "--strengths", "0.2,1.5", "--train-cases", "2", "--val-cases", "1", "--views", "3",
            "--probe-iterations", "5", "--json", json.path, "--threads", "1",
        ])
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as! [String: Any]
        let methods = (obj["methods"] as! [[String: Any]]).map { $0["method"] as! String }
        #expect(methods.count == 8 && methods.contains("strength 1.50 · stage2") && methods.contains("strength 0.20 · truth"))
        let figures = obj["figures"] as! [[String: String]]
        #expect(figures.count == 2)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("probe/" + figures[0]["file"]!).path))
        #expect(errorText { try runDVT(["bench", "probe", "--strengths", "x"]) }.contains("not a non-negative number"))
    }
}

/// The probe's refusals end to end: nothing written outside the output folder, no run that exits 0
/// with NaN metrics.
@Suite("dvt probe refusals")
struct ProbeRefusalCLITests {
    @Test("a VOC split entry climbing out of the root is refused and nothing is written outside --output-dir")
    func escapingEntry() throws {
        let dir = temporaryDirectory("probe-escape")
        defer { try? FileManager.default.removeItem(at: dir) }
        let voc = dir.appendingPathComponent("a/b/c/voc")
        try SyntheticScenes.write(to: voc, seed: 3, train: 2, val: 1, size: 28)
        // ROOT/JPEGImages/../../../../../x is dir/x; the cache dir OUT/probe/features/raw/voc climbs
        // to the same place, where the old reader wrote x/JPEGImages/evil.npy.
        let evil = dir.appendingPathComponent("x/JPEGImages")
        try plantEscapingVOCEntries(root: voc, outside: evil, entries: ["../../../../../x/JPEGImages/evil"])
        let cfg = try ProbeCLITests.tinyConfig(dir)
        let m = dvtError(["probe", cfg.path, voc.path, "--methods", "raw", "--iterations", "2", "--threads", "1"])
        #expect(m.contains("'../../../../../x/JPEGImages/evil' resolves outside the dataset root"), "\(m)")
        let written = try FileManager.default.contentsOfDirectory(atPath: evil.path).sorted()
        #expect(written == ["evil.jpg", "evil.png"], "written outside the output folder: \(written)")
    }

    @Test("a classes.txt of 20 000 lines is refused naming the file, the count and the memory, before any feature is computed")
    func hugeClassList() throws {
        let dir = temporaryDirectory("probe-classes")
        defer { try? FileManager.default.removeItem(at: dir) }
        let voc = dir.appendingPathComponent("voc")
        try SyntheticScenes.write(to: voc, seed: 3, train: 2, val: 1, size: 28)
        let file = voc.appendingPathComponent("classes.txt")
        try (0..<20_000).map { "c\($0)\n" }.joined().write(to: file, atomically: true, encoding: .utf8)
        let cfg = try ProbeCLITests.tinyConfig(dir)
        let m = dvtError(["probe", cfg.path, voc.path, "--methods", "raw", "--iterations", "2", "--threads", "1"])
        #expect(m.contains("\(file.path) lists 20000 classes; at most 254") && m.contains("would also need about ") && m.contains(" GB"), "\(m)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/probe/features").path))
    }

    @Test("val masks that are all ignore label 255 fail the method instead of reporting NaN")
    func allIgnoredMasks() throws {
        let dir = temporaryDirectory("probe-ignored")
        defer { try? FileManager.default.removeItem(at: dir) }
        let voc = dir.appendingPathComponent("voc")
        try SyntheticScenes.write(to: voc, seed: 3, train: 2, val: 1, size: 28)
        try SampleImage(width: 28, height: 28, samples: [UInt16](repeating: 255, count: 28 * 28), kind: .gray, bitDepth: 8)
            .write(to: voc.appendingPathComponent("SegmentationClass/scene_0002.png"))
        let cfg = try ProbeCLITests.tinyConfig(dir)
        let m = dvtError(["probe", cfg.path, voc.path, "--methods", "raw", "--iterations", "2", "--threads", "1"])
        #expect(m.contains("probe [raw]: no valid pixel was left in the val split") && m.contains("ignore label 255"), "\(m)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/probe/segmentation.json").path))
    }

    @Test("NYU depth maps that are all 0 fail the method instead of reporting NaN")
    func allZeroDepth() throws {
        let dir = temporaryDirectory("probe-zero-depth")
        defer { try? FileManager.default.removeItem(at: dir) }
        let nyu = dir.appendingPathComponent("nyu")
        for (split, scene, mm) in [("train", "a", 1500), ("test", "b", 0)] {
            try FileManager.default.createDirectory(at: nyu.appendingPathComponent(scene), withIntermediateDirectories: true)
            try RGBImage(contentsOf: photos.appendingPathComponent("rocket.jpg")).resized(width: 40, height: 30)
                .write(to: nyu.appendingPathComponent("\(scene)/rgb_00001.jpg"))
            try SampleImage(width: 40, height: 30, samples: [UInt16](repeating: UInt16(mm), count: 1200), kind: .gray, bitDepth: 16)
                .write(to: nyu.appendingPathComponent("\(scene)/sync_depth_00001.png"))
            try "/\(scene)/rgb_00001.jpg /\(scene)/sync_depth_00001.png 518.8579\n"
                .write(to: nyu.appendingPathComponent("nyu_\(split).txt"), atomically: true, encoding: .utf8)
        }
        let cfg = try ProbeCLITests.tinyConfig(dir)
        let m = dvtError([
            "probe", cfg.path, nyu.path, "--task", "depth", "--dataset", "nyu", "--methods", "raw", "--iterations", "2", "--threads", "1",
        ])
        #expect(m.contains("probe [raw]: no valid pixel was left in the val split") && m.contains("every value is 0"), "\(m)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/probe/depth.json").path))
    }
}
