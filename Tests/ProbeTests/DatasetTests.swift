import Foundation
import TensorCore
import TestSupport
import Testing
import Vision

@testable import Probe

/// Writes small files of each layout.
enum Miniature {
    static func gray(_ v: [UInt16], _ w: Int, _ h: Int, bits: Int = 8) -> SampleImage {
        SampleImage(width: w, height: h, samples: v, kind: .gray, bitDepth: bits)
    }

    static func image(_ w: Int, _ h: Int, seed: UInt64) -> RGBImage {
        var rng = RandomGenerator(seed: seed)
        return RGBImage(width: w, height: h, pixels: (0..<(w * h * 3)).map { _ in UInt8(rng.randint(256)) })
    }

    static func ade(_ root: URL) throws {
        for split in ["training", "validation"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent("images/\(split)"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: root.appendingPathComponent("annotations/\(split)"), withIntermediateDirectories: true)
            for i in 0..<2 {
                try image(8, 6, seed: UInt64(i)).write(to: root.appendingPathComponent("images/\(split)/ADE_\(i).jpg"))
                try gray((0..<48).map { UInt16($0 % 151) }, 8, 6).write(to: root.appendingPathComponent("annotations/\(split)/ADE_\(i).png"))
            }
        }
    }

    static func nyu(_ root: URL) throws {
        for scene in ["kitchen_0001", "bathroom_0002"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(scene), withIntermediateDirectories: true)
            try image(8, 6, seed: 3).write(to: root.appendingPathComponent("\(scene)/rgb_00001.jpg"))
            try gray((0..<48).map { UInt16(500 + 100 * $0) }, 8, 6, bits: 16).write(to: root.appendingPathComponent("\(scene)/sync_depth_00001.png"))
        }
        try "/kitchen_0001/rgb_00001.jpg /kitchen_0001/sync_depth_00001.png 518.8579\n/kitchen_0001/rgb_00001.jpg None 518.8579\n"
            .write(to: root.appendingPathComponent("nyu_train.txt"), atomically: true, encoding: .utf8)
        try "/bathroom_0002/rgb_00001.jpg /bathroom_0002/sync_depth_00001.png 518.8579\n"
            .write(to: root.appendingPathComponent("nyu_test.txt"), atomically: true, encoding: .utf8)
    }

    static func folder(_ root: URL, count: Int = 5) throws {
        try FileManager.default.createDirectory(at: root.appendingPathComponent("images"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("masks"), withIntermediateDirectories: true)
        for i in 0..<count {
            try image(6, 4, seed: UInt64(i)).write(to: root.appendingPathComponent("images/im\(i).png"))
            try gray((0..<24).map { UInt16($0 % 3) }, 6, 4).write(to: root.appendingPathComponent("masks/im\(i).png"))
        }
        try "sky\nroad\ncar\n".write(to: root.appendingPathComponent("classes.txt"), atomically: true, encoding: .utf8)
    }
}

@Suite struct ProbeDatasetTests {
    @Test func vocLayoutReadsPaletteIndices() throws {
        let root = temporaryDirectory("voc")
        defer { try? FileManager.default.removeItem(at: root) }
        try SyntheticScenes.write(to: root, seed: 1, train: 3, val: 2, size: 32)
        let ds = try ProbeDataset.open(.voc, root: root)
        #expect(ds.train.count == 3 && ds.val.count == 2 && ds.classes == 5)
        let mask = try SampleImage(contentsOf: ds.train[0].target)
        #expect(mask.kind == .palette)
        let labels = try ds.labels(ds.train[0], width: 32, height: 32)
        let (_, truth) = SyntheticScenes.scene(seed: 1 &* 1_000_003, size: 32)
        #expect(labels == truth.map { Int32($0) })
        #expect(labels.contains(255) && labels.contains { $0 > 0 && $0 < 5 })
        // Without classes.txt the VOC layout has VOC's 21 classes.
        try FileManager.default.removeItem(at: root.appendingPathComponent("classes.txt"))
        #expect(try ProbeDataset.open(.voc, root: root).classes == 21)
    }

    @Test func ade20kReducesZeroLabel() throws {
        let root = temporaryDirectory("ade")
        defer { try? FileManager.default.removeItem(at: root) }
        try Miniature.ade(root)
        let ds = try ProbeDataset.open(.ade20k, root: root)
        #expect(ds.classes == 150 && ds.train.count == 2 && ds.val.count == 2 && ds.reduceZeroLabel)
        let labels = try ds.labels(ds.val[0], width: 8, height: 6)
        #expect(labels[0] == 255 && labels[1] == 0 && labels[47] == 46)
    }

    @Test func nyuReadsMillimetreDepthAndSkipsNone() throws {
        let root = temporaryDirectory("nyu")
        defer { try? FileManager.default.removeItem(at: root) }
        try Miniature.nyu(root)
        let ds = try ProbeDataset.open(.nyu, root: root)
        #expect(ds.task == .depth && ds.train.count == 1 && ds.val.count == 1)
        let d = try ds.depth(ds.val[0], width: 8, height: 6)
        #expect(d[0] == 0.5 && abs(d[47] - 5.2) < 1e-6)
        #expect(throws: ProbeDataError.self) { try ds.depth(ds.val[0], width: 9, height: 6) }
    }

    @Test func folderLayoutSplitsEveryFifth() throws {
        let root = temporaryDirectory("folder")
        defer { try? FileManager.default.removeItem(at: root) }
        try Miniature.folder(root, count: 10)
        let ds = try ProbeDataset.open(.folder, root: root)
        #expect(ds.classNames == ["sky", "road", "car"] && ds.train.count == 8 && ds.val.count == 2)
        #expect(try ds.labels(ds.train[0], width: 6, height: 4).prefix(4) == [0, 1, 2, 0])
        try "im1\nim2\n".write(to: root.appendingPathComponent("train.txt"), atomically: true, encoding: .utf8)
        try "im3\n".write(to: root.appendingPathComponent("val.txt"), atomically: true, encoding: .utf8)
        let listed = try ProbeDataset.open(.folder, root: root)
        #expect(listed.train.map(\.name) == ["im1", "im2"] && listed.val.map(\.name) == ["im3"])
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    @Test func badInputsSayWhatTheyFound() throws {
        let root = temporaryDirectory("bad")
        defer { try? FileManager.default.removeItem(at: root) }
        try Miniature.folder(root)
        let ds = try ProbeDataset.open(.folder, root: root)
        let s = ds.train[0]
        // An RGB (colour-rendered) mask.
        try Miniature.image(6, 4, seed: 1).write(to: s.target)
        #expect(message { _ = try ds.labels(s, width: 6, height: 4) }.contains("is an RGB PNG"))
        // A JPEG mask.
        try Miniature.image(6, 4, seed: 1).write(to: root.appendingPathComponent("masks/x.jpg"))
        try FileManager.default.moveItem(at: root.appendingPathComponent("masks/x.jpg"), to: root.appendingPathComponent("masks/j.png"))
        #expect(message { _ = try SampleImage(contentsOf: root.appendingPathComponent("masks/j.png")) }.contains("is a JPEG"))
        // Size mismatch.
        try Miniature.gray([UInt16](repeating: 0, count: 20), 5, 4).write(to: s.target)
        #expect(message { _ = try ds.labels(s, width: 6, height: 4) }.contains("is 5×4 but its image is 6×4"))
        // Labels out of range (3 classes; 255 stays allowed).
        var v = [UInt16](repeating: 0, count: 24)
        v[3] = 7; v[4] = 255; v[5] = 3
        try Miniature.gray(v, 6, 4).write(to: s.target)
        let m = message { _ = try ds.labels(s, width: 6, height: 4) }
        #expect(m.contains("outside 0...2") && m.contains("values 3, 7") && m.contains("3 classes"))
        // Missing files and missing layout pieces.
        try FileManager.default.removeItem(at: s.target)
        #expect(message { _ = try ProbeDataset.open(.folder, root: root) }.contains("missing, e.g. \(s.target.path)"))
        #expect(message { _ = try ProbeDataset.open(.voc, root: root) }.contains("ImageSets/Segmentation/train.txt is missing"))
        #expect(message { _ = try ProbeDataset.open(.nyu, root: root) }.contains("nyu_train.txt"))
        #expect(message { _ = try ProbeDataset.open(.ade20k, root: root) }.contains("images/training is missing"))
        #expect(message { _ = try ProbeDataset.open(.folder, root: root.appendingPathComponent("nope")) }.contains("is not a directory"))
        try FileManager.default.removeItem(at: root.appendingPathComponent("classes.txt"))
        #expect(message { _ = try ProbeDataset.open(.folder, root: root) }.contains("classes.txt is missing"))
    }

    @Test func depthMapMustBe16BitGray() throws {
        let root = temporaryDirectory("nyu8")
        defer { try? FileManager.default.removeItem(at: root) }
        try Miniature.nyu(root)
        let ds = try ProbeDataset.open(.nyu, root: root)
        try Miniature.gray([UInt16](repeating: 9, count: 48), 8, 6).write(to: ds.val[0].target)
        #expect(message { _ = try ds.depth(ds.val[0], width: 8, height: 6) }.contains("8-bit gray PNG; NYU depth maps are 16-bit"))
    }

    @Test func samplePNGRoundTrips() throws {
        var rng = RandomGenerator(seed: 4)
        for (kind, bits, top) in [(SampleImage.Kind.palette, 8, 21), (.gray, 8, 256), (.gray, 16, 65536)] {
            var img = SampleImage(width: 7, height: 5, samples: (0..<35).map { _ in UInt16(rng.randint(top)) }, kind: kind, bitDepth: bits)
            if kind == .palette { img.palette = Array(SyntheticScenes.vocPalette.prefix(21 * 3)) }
            let back = try SampleImage(data: try img.pngData())
            #expect(back.samples == img.samples && back.kind == kind && back.bitDepth == bits)
        }
    }

    /// Mask parser fuzz: random bytes and mutations of a valid mask PNG must give a mask or an
    /// error, never a crash, and any mask that parses passes or fails `checkMask` cleanly.
    @Test func maskParserFuzz() throws {
        var img = SampleImage(width: 9, height: 7, samples: (0..<63).map { UInt16($0 % 5) }, kind: .palette, bitDepth: 8)
        img.palette = Array(SyntheticScenes.vocPalette.prefix(15))
        let valid = [UInt8](try img.pngData())
        var rng = RandomGenerator(seed: 11)
        var parsed = 0
        for trial in 0..<600 {
            var bytes: [UInt8]
            if trial < 100 {
                bytes = (0..<rng.randint(80)).map { _ in UInt8(rng.randint(256)) }
                if trial % 2 == 0 && bytes.count >= 8 { bytes.replaceSubrange(0..<8, with: valid[0..<8]) }
            } else {
                bytes = valid
                for _ in 0..<(1 + rng.randint(4)) {
                    let i = rng.randint(bytes.count)
                    switch rng.randint(3) {
                    case 0: bytes[i] = UInt8(rng.randint(256))
                    case 1: bytes.removeSubrange(i..<min(bytes.count, i + 1 + rng.randint(8)))
                    default: bytes.insert(UInt8(rng.randint(256)), at: i)
                    }
                    if bytes.isEmpty { break }
                }
            }
            if let mask = try? SampleImage(data: Data(bytes)) {
                parsed += 1
                #expect(mask.samples.count == mask.width * mask.height)
                _ = try? ProbeDataset.checkMask(mask, path: "fuzz", width: 9, height: 7, classes: 5, reduceZeroLabel: trial % 2 == 0)
            }
        }
        #expect(parsed > 0)  // some mutations (ancillary bytes) still decode
    }

    @Test func committedSyntheticSetIsTheGeneratorsOutput() throws {
        let shipped = repositoryRoot.appendingPathComponent("Datasets/synthetic-voc")
        let root = temporaryDirectory("regen")
        defer { try? FileManager.default.removeItem(at: root) }
        try SyntheticScenes.write(to: root, seed: SyntheticScenes.shippedSeed)
        let ds = try ProbeDataset.open(.voc, root: shipped)
        #expect(ds.train.count == 48 && ds.val.count == 16)
        for s in ds.train.prefix(3) + ds.val.prefix(3) {
            let rel = "SegmentationClass/\(s.name).png"
            #expect(
                FileManager.default.contents(atPath: shipped.appendingPathComponent(rel).path)
                    == FileManager.default.contents(atPath: root.appendingPathComponent(rel).path), "\(rel) differs from the generator's")
            let a = try RGBImage(contentsOf: s.image), b = try RGBImage(contentsOf: root.appendingPathComponent("JPEGImages/\(s.name).jpg"))
            #expect(a == b, "\(s.name).jpg differs from the generator's")
        }
    }
}
