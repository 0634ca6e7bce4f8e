import Foundation
import TensorCore
import TestSupport
import Testing
import Vision

@testable import Probe

/// Split files, class lists and layouts that must be refused before anything is read, trained or
/// written: entries that climb out of the dataset (their cached features would be written outside
/// the output folder), class lists that are empty, reach the ignore label or need more memory than
/// there is, malformed NYU lines and folder images that share a stem.
@Suite struct ProbeDatasetRefusalTests {
    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    /// A VOC miniature whose train split gets `entries` appended, with a matching image and mask
    /// planted where an escaping entry would point.
    func vocWithEntries(_ entries: [String]) throws -> (root: URL, base: URL) {
        let base = temporaryDirectory("voc-escape")
        let root = base.appendingPathComponent("a/b/c/voc")
        try SyntheticScenes.write(to: root, seed: 2, train: 2, val: 1, size: 16)
        try plantEscapingVOCEntries(root: root, outside: base.appendingPathComponent("a/x/JPEGImages"), entries: entries)
        return (root, base)
    }

    @Test(
        "split-file entries that leave the dataset root are refused in every layout",
        arguments: [
            "../../x/JPEGImages/evil", "../../../../../x/JPEGImages/evil", "/etc/hostname", "scene_0000/../../../x/JPEGImages/evil",
        ])
    func vocEscape(_ entry: String) throws {
        let (root, base) = try vocWithEntries([entry])
        defer { try? FileManager.default.removeItem(at: base) }
        let m = message { _ = try ProbeDataset.open(.voc, root: root) }
        #expect(m.contains("train.txt line 3") && m.contains("'\(entry)' resolves outside the dataset root"), "\(m)")
    }

    @Test func safeEntriesAreNormalisedIds() throws {
        let (root, base) = try vocWithEntries(["./scene_0000", "sub/../scene_0001"])
        defer { try? FileManager.default.removeItem(at: base) }
        let ds = try ProbeDataset.open(.voc, root: root)
        #expect(ds.train.map(\.name) == ["scene_0000", "scene_0001", "scene_0000", "scene_0001"])
    }

    @Test func nyuAndFolderEscapesAreRefused() throws {
        let nyu = temporaryDirectory("nyu-escape")
        defer { try? FileManager.default.removeItem(at: nyu) }
        try Miniature.nyu(nyu)
        for line in [
            "/../outside/rgb.jpg /kitchen_0001/sync_depth_00001.png 518.8579",
            "/kitchen_0001/rgb_00001.jpg /kitchen_0001/../../d.png 518.8579",
        ] {
            try (line + "\n").write(to: nyu.appendingPathComponent("nyu_train.txt"), atomically: true, encoding: .utf8)
            let m = message { _ = try ProbeDataset.open(.nyu, root: nyu) }
            #expect(m.contains("nyu_train.txt line 1") && m.contains("resolves outside the dataset root"), "\(m)")
        }
        let folder = temporaryDirectory("folder-escape")
        defer { try? FileManager.default.removeItem(at: folder) }
        try Miniature.folder(folder)
        try "im0\n../images/im1\n".write(to: folder.appendingPathComponent("train.txt"), atomically: true, encoding: .utf8)
        try "im2\n".write(to: folder.appendingPathComponent("val.txt"), atomically: true, encoding: .utf8)
        let m = message { _ = try ProbeDataset.open(.folder, root: folder) }
        #expect(m.contains("train.txt line 2") && m.contains("'../images/im1' resolves outside"), "\(m)")
    }

    @Test("class lists: empty, 255 or more, and 20 000 lines are refused naming classes.txt and the count", arguments: [0, 255, 256, 20_000])
    func classCounts(_ count: Int) throws {
        for layout in [DatasetLayout.voc, .folder] {
            let root = temporaryDirectory("classes")
            defer { try? FileManager.default.removeItem(at: root) }
            if layout == .voc { try SyntheticScenes.write(to: root, seed: 1, train: 2, val: 1, size: 16) } else { try Miniature.folder(root) }
            let file = root.appendingPathComponent("classes.txt")
            try (0..<count).map { "class\($0)\n" }.joined().write(to: file, atomically: true, encoding: .utf8)
            let m = message { _ = try ProbeDataset.open(layout, root: root) }
            let expected = count == 0 ? "\(file.path) lists no class" : "\(file.path) lists \(count) classes; at most 254 are allowed"
            #expect(m.contains(expected), "\(layout): \(m)")
        }
    }

    @Test func classCountsUpTo254Open() throws {
        let root = temporaryDirectory("classes-ok")
        defer { try? FileManager.default.removeItem(at: root) }
        try Miniature.folder(root)
        try (0..<254).map { "c\($0)\n" }.joined().write(to: root.appendingPathComponent("classes.txt"), atomically: true, encoding: .utf8)
        let ds = try ProbeDataset.open(.folder, root: root)
        #expect(ds.classes == 254 && ds.classSource == root.appendingPathComponent("classes.txt").path)
    }

    @Test("the head's and metric's memory is estimated before training, naming classes.txt, the count and the bytes")
    func memoryEstimate() throws {
        let root = temporaryDirectory("classes-memory")
        defer { try? FileManager.default.removeItem(at: root) }
        try Miniature.folder(root)
        try (0..<200).map { "c\($0)\n" }.joined().write(to: root.appendingPathComponent("classes.txt"), atomically: true, encoding: .utf8)
        let ds = try ProbeDataset.open(.folder, root: root)
        // 200 classes, batches of 8 maps at 448×448: about 5·8·448²·200·4 B ≈ 6.4 GB for training alone.
        let m = message {
            try ds.checkSegmentationMemory(
                channels: 384, batch: 8, trainHeight: 448, trainWidth: 448, tokens: 1024, evalPixels: 500 * 375,
                memoryLimit: 4_000_000_000)
        }
        #expect(m.contains("classes.txt: 200 classes need about 6.") && m.contains("more than the 4.0 GB"), "\(m)")
        #expect(
            message {
                try ds.checkSegmentationMemory(
                    channels: 384, batch: 8, trainHeight: 56, trainWidth: 56, tokens: 16, evalPixels: 32 * 32,
                    memoryLimit: 4_000_000_000)
            } == "no error")
        // The crash of the campaign: 100 000 classes at 56×56 allocated 1 254 400 000 bytes for one
        // image's logits; the estimate counts at least that.
        #expect(
            SegmentationHead.memoryBytes(classes: 100_000, channels: 384, batch: 1, trainPixels: 56 * 56, tokens: 16, evalPixels: 0)
                >= 1_254_400_000)
    }

    @Test func nyuFocalMustBeANumber() throws {
        let root = temporaryDirectory("nyu-focal")
        defer { try? FileManager.default.removeItem(at: root) }
        try Miniature.nyu(root)
        for focal in ["abc", "-1", "nan"] {
            try "/kitchen_0001/rgb_00001.jpg /kitchen_0001/sync_depth_00001.png \(focal)\n"
                .write(to: root.appendingPathComponent("nyu_train.txt"), atomically: true, encoding: .utf8)
            let m = message { _ = try ProbeDataset.open(.nyu, root: root) }
            #expect(m.contains("nyu_train.txt line 1: focal length \"\(focal)\" is not a positive number"), "\(m)")
        }
    }

    @Test func folderImagesSharingAStemAreRefused() throws {
        let root = temporaryDirectory("folder-stem")
        defer { try? FileManager.default.removeItem(at: root) }
        try Miniature.folder(root)
        try Miniature.image(6, 4, seed: 9).write(to: root.appendingPathComponent("images/im0.jpg"))
        let m = message { _ = try ProbeDataset.open(.folder, root: root) }
        #expect(m.contains("im0.jpg and ") && m.contains("im0.png share the stem im0"), "\(m)")
    }

    /// Split-file and class-list fuzz: seeded random entries built from path pieces and random
    /// class counts. Every open gives a clear error or a dataset whose cache names stay inside a
    /// cache folder and whose files stay inside the root.
    @Test func splitAndClassFuzz() throws {
        let base = temporaryDirectory("probe-fuzz")
        defer { try? FileManager.default.removeItem(at: base) }
        let root = base.appendingPathComponent("voc")
        try SyntheticScenes.write(to: root, seed: 5, train: 2, val: 1, size: 16)
        // A mask beside its image, so that `../JPEGImages/scene_0000` names an existing image and mask.
        try FileManager.default.copyItem(
            at: root.appendingPathComponent("SegmentationClass/scene_0000.png"),
            to: root.appendingPathComponent("JPEGImages/scene_0000.png"))
        let pieces = ["..", ".", "scene_0000", "scene_0001", "JPEGImages", "x", "", "/", "a b", "\u{1}", "..."]
        var rng = RandomGenerator(seed: 27)
        let cache = URL(fileURLWithPath: "/cache/probe/features/raw/voc")
        var opened = 0, refused = 0
        // First a few fixed entries: one climbs out and back into an existing image, so an unguarded
        // reader opens it and caches it under a name that leaves the cache folder.
        let fixed = ["../JPEGImages/scene_0000", "./scene_0001", "scene_0000/../scene_0001", "../../voc/JPEGImages/scene_0000"]
        for trial in 0..<200 {
            let entry =
                trial < fixed.count
                ? fixed[trial]
                : (0..<(1 + rng.randint(5))).map { _ in pieces[rng.randint(pieces.count)] }.joined(separator: rng.randint(4) == 0 ? "" : "/")
            try "scene_0000\n\(entry)\n".write(to: root.appendingPathComponent("ImageSets/Segmentation/train.txt"), atomically: true, encoding: .utf8)
            let counts = [0, 1, 5, 253, 254, 255, 300, 20_000]
            let k = trial < fixed.count ? 5 : counts[trial % counts.count]
            try (0..<k).map { "c\($0)\n" }.joined().write(to: root.appendingPathComponent("classes.txt"), atomically: true, encoding: .utf8)
            do {
                let ds = try ProbeDataset.open(.voc, root: root)
                opened += 1
                #expect((1...254).contains(ds.classes), "\(k) classes opened")
                for s in ds.train + ds.val {
                    let written = cache.appendingPathComponent(s.name + ".npy").standardizedFileURL.path
                    #expect(written.hasPrefix(cache.path + "/"), "entry '\(entry)' caches to \(written)")
                    #expect(s.image.standardizedFileURL.path.hasPrefix(root.standardizedFileURL.path + "/"), "entry '\(entry)' reads \(s.image.path)")
                }
            } catch let e as ProbeDataError {
                refused += 1
                #expect(!e.description.isEmpty)
            }
        }
        #expect(opened > 0 && refused > 0)
    }
}
