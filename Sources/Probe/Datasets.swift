import Formats
import Foundation
import Settings
import Vision

/// A dataset layout the probe reads, or a problem with one; messages name the file and what
/// was found.
public struct ProbeDataError: Error, CustomStringConvertible, LocalizedError {
    public var description: String
    public var errorDescription: String? { description }
    public init(_ d: String) { description = d }
}

/// The downstream task: the `probe.task` choice.
public typealias ProbeTask = DVTSettings.Probe.Task

/// The dataset layouts `dvt probe --dataset` reads: the `probe.dataset` choice (its cases and
/// trees are documented in Settings.swift and docs/probe.md).
public typealias DatasetLayout = DVTSettings.Probe.Dataset

/// One labelled image.
public struct ProbeSample: Sendable, Equatable {
    public var name: String
    public var image: URL
    public var target: URL
}

/// A labelled dataset: its splits, classes and label conventions.
public struct ProbeDataset: Sendable {
    public var layout: DatasetLayout
    public var root: URL
    public var task: ProbeTask
    public var classNames: [String]
    /// Where the class list came from, for messages: a classes.txt path, or the layout's own list.
    public var classSource: String = ""
    public var reduceZeroLabel: Bool
    public var train: [ProbeSample]
    public var val: [ProbeSample]
    public static let ignoreIndex: Int32 = 255
    /// Class indices must stay below the ignore label, so a list holds at most 255 − 1 names.
    public static let maxClasses = Int(ignoreIndex) - 1
    /// NYU's depth PNGs hold millimetres.
    public static let depthScale: Float = 1000

    public var classes: Int { classNames.count }

    public static let vocClasses = [
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
        "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
        "sheep", "sofa", "train", "tvmonitor",
    ]

    /// Opens the layout at `root`, listing both splits and checking that every listed file exists.
    /// `headBytes`, when given, is the probe's memory for a class count (`SegmentationHead.memoryBytes`
    /// at the run's geometry), quoted when a classes.txt is refused for its count.
    public static func open(_ layout: DatasetLayout, root: URL, headBytes: ((Int) -> Double)? = nil) throws -> ProbeDataset {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root.path, isDirectory: &isDir), isDir.boolValue else {
            throw ProbeDataError("dataset root \(root.path) is not a directory")
        }
        var ds: ProbeDataset
        switch layout {
        case .voc:
            func split(_ name: String) throws -> [ProbeSample] {
                let list = root.appendingPathComponent("ImageSets/Segmentation/\(name).txt")
                return try stems(list, root: root).map {
                    ProbeSample(
                        name: $0, image: root.appendingPathComponent("JPEGImages/\($0).jpg"),
                        target: root.appendingPathComponent("SegmentationClass/\($0).png"))
                }
            }
            // classes.txt at the root (one name per line) replaces VOC's 21 classes, so a set in the
            // VOC layout with other classes (the shipped synthetic scenes) reads the same way.
            let classFile = root.appendingPathComponent("classes.txt")
            let names = fm.fileExists(atPath: classFile.path) ? try classNames(classFile, headBytes: headBytes) : nil
            ds = ProbeDataset(
                layout: layout, root: root, task: .segmentation, classNames: names ?? vocClasses, reduceZeroLabel: false,
                train: try split("train"), val: try split("val"))
            ds.classSource = names == nil ? "VOC's 21 classes" : classFile.path
        case .ade20k:
            func split(_ name: String) throws -> [ProbeSample] {
                let dir = root.appendingPathComponent("images/\(name)")
                return try imageFiles(dir).enumerated().map { i, url in
                    let stem = url.deletingPathExtension().lastPathComponent
                    return ProbeSample(
                        name: try safeEntry("\(name)/\(stem)", list: dir, line: i + 1, root: root), image: url,
                        target: root.appendingPathComponent("annotations/\(name)/\(stem).png"))
                }
            }
            ds = ProbeDataset(
                layout: layout, root: root, task: .segmentation,
                classNames: (1...150).map { "class\($0)" }, reduceZeroLabel: true,
                train: try split("training"), val: try split("validation"))
            ds.classSource = "ADE20K's 150 classes"
        case .nyu:
            func split(_ name: String) throws -> [ProbeSample] {
                let list = root.appendingPathComponent(name)
                guard let text = try? String(contentsOf: list, encoding: .utf8) else {
                    throw ProbeDataError("NYU split file \(list.path) is missing (DINOv2's layout: ROOT/nyu_train.txt and ROOT/nyu_test.txt)")
                }
                var out: [ProbeSample] = []
                for (n, line) in text.split(whereSeparator: \.isNewline).enumerated() {
                    let f = line.split(separator: " ").map(String.init)
                    if f.isEmpty { continue }
                    guard f.count >= 2 else {
                        throw ProbeDataError("\(list.path) line \(n + 1): expected \"rgb_path depth_path [focal]\", got \"\(line)\"")
                    }
                    if f[1] == "None" { continue }  // nyu.py:113-115
                    if f.count >= 3 {  // the focal length is not used here, but a malformed one means a malformed line
                        guard let focal = Double(f[2]), focal.isFinite, focal > 0 else {
                            throw ProbeDataError(
                                "\(list.path) line \(n + 1): focal length \"\(f[2])\" is not a positive number (expected \"rgb_path depth_path [focal]\")"
                            )
                        }
                    }
                    // Paths are relative to ROOT, a leading / dropped.
                    func inside(_ s: String) throws -> String {
                        try safeEntry(s.hasPrefix("/") ? String(s.dropFirst()) : s, list: list, line: n + 1, root: root)
                    }
                    let rgb = try inside(f[0]), depth = try inside(f[1])
                    out.append(
                        ProbeSample(
                            name: rgb.replacingOccurrences(of: "/", with: "_"),
                            image: root.appendingPathComponent(rgb), target: root.appendingPathComponent(depth)))
                }
                return out.sorted { $0.image.path < $1.image.path }  // nyu.py:126
            }
            ds = ProbeDataset(
                layout: layout, root: root, task: .depth, classNames: [], reduceZeroLabel: false,
                train: try split("nyu_train.txt"), val: try split("nyu_test.txt"))
        case .folder:
            let classFile = root.appendingPathComponent("classes.txt")
            guard fm.fileExists(atPath: classFile.path) else {
                throw ProbeDataError("folder dataset: \(classFile.path) is missing (one class name per line; line k is class k)")
            }
            let names = try classNames(classFile, headBytes: headBytes)
            let images = try imageFiles(root.appendingPathComponent("images"))
            var byStem: [String: URL] = [:]
            for url in images {
                let stem = url.deletingPathExtension().lastPathComponent
                // Features are cached by stem, so two images of one stem would share one cache file.
                if let other = byStem[stem] {
                    throw ProbeDataError(
                        "folder dataset: \(other.path) and \(url.path) share the stem \(stem); each image needs its own name (rename or remove one)")
                }
                byStem[stem] = url
            }
            func sample(_ stem: String) throws -> ProbeSample {
                guard let url = byStem[stem] else {
                    throw ProbeDataError(
                        "folder dataset: \(stem) is listed but \(root.appendingPathComponent("images").path) has no \(stem).jpg/.jpeg/.png")
                }
                return ProbeSample(name: stem, image: url, target: root.appendingPathComponent("masks/\(stem).png"))
            }
            let trainList = root.appendingPathComponent("train.txt"), valList = root.appendingPathComponent("val.txt")
            let train: [ProbeSample], val: [ProbeSample]
            if fm.fileExists(atPath: trainList.path) || fm.fileExists(atPath: valList.path) {
                train = try stems(trainList, root: root).map(sample)
                val = try stems(valList, root: root).map(sample)
            } else {
                let all = byStem.keys.sorted()
                train = try all.enumerated().filter { $0.offset % 5 != 4 }.map { try sample($0.element) }
                val = try all.enumerated().filter { $0.offset % 5 == 4 }.map { try sample($0.element) }
            }
            ds = ProbeDataset(
                layout: layout, root: root, task: .segmentation, classNames: names, reduceZeroLabel: false,
                train: train, val: val)
            ds.classSource = classFile.path
        }
        try ds.checkFiles()
        return ds
    }

    /// Every listed image and target exists; both splits are non-empty.
    func checkFiles() throws {
        for (split, list) in [("train", train), ("val", val)] where list.isEmpty {
            throw ProbeDataError("\(layout.rawValue) dataset at \(root.path): the \(split) split is empty")
        }
        // Names are the cache file names: two different images may not share one.
        var imageOf: [String: URL] = [:]
        for s in train + val {
            if let other = imageOf[s.name], other.standardizedFileURL != s.image.standardizedFileURL {
                throw ProbeDataError(
                    "\(layout.rawValue) dataset at \(root.path): \(other.path) and \(s.image.path) both get the feature-cache name \(s.name); rename one"
                )
            }
            imageOf[s.name] = s.image
        }
        let missing = (train + val).flatMap { [$0.image, $0.target] }.filter { !FileManager.default.fileExists(atPath: $0.path) }
        if let first = missing.first {
            throw ProbeDataError("\(layout.rawValue) dataset at \(root.path): \(missing.count) listed file(s) missing, e.g. \(first.path)")
        }
    }

    /// Refuses a segmentation probe whose class count would need more memory than `memoryLimit`
    /// (default: this machine's memory), before anything is trained: the message names where the
    /// classes came from, how many there are and what they would need. See
    /// `SegmentationHead.memoryBytes` for what is counted.
    public func checkSegmentationMemory(
        channels: Int, batch: Int, trainHeight: Int, trainWidth: Int, tokens: Int,
        evalPixels: Int, memoryLimit: UInt64? = nil
    ) throws {
        let limit = Double(memoryLimit ?? ProcessInfo.processInfo.physicalMemory)
        let need = SegmentationHead.memoryBytes(
            classes: classes, channels: channels, batch: batch, trainPixels: trainHeight * trainWidth,
            tokens: tokens, evalPixels: evalPixels)
        guard need <= limit else {
            throw ProbeDataError(
                String(
                    format: "%@: %d classes need about %.1f GB for the probe head's logits and metrics "
                        + "(batches of %d label maps of %d×%d, val images up to %d pixels), more than the %.1f GB of memory here; "
                        + "use fewer classes, a smaller input_size or probe.batch_size",
                    classSource, classes, need / 1e9, batch, trainHeight, trainWidth, evalPixels, limit / 1e9))
        }
    }

    /// The ids of a split list (first word of each line), each checked with `safeEntry`.
    static func stems(_ list: URL, root: URL) throws -> [String] {
        guard let text = try? String(contentsOf: list, encoding: .utf8) else {
            throw ProbeDataError("split list \(list.path) is missing or unreadable")
        }
        var out: [String] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard let word = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).first else { continue }
            out.append(try safeEntry(String(word), list: list, line: n + 1, root: root))
        }
        return out
    }

    /// A split-file entry as a sanitised id: `.` and `..` resolved, and refused when it is absolute,
    /// climbs out of the folder it is read against, or holds control characters. The id names the
    /// files read (JPEGImages/<id>.jpg, ROOT/<id>) and the cached features written
    /// (probe/features/<method>/<layout>/<id>.npy), so an entry such as `../../x/JPEGImages/evil`
    /// would read outside the dataset and write outside the output folder; `dvt extract`
    /// refuses such list entries the same way (`RelativePath`).
    static func safeEntry(_ entry: String, list: URL, line: Int, root: URL) throws -> String {
        guard !entry.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }),
            let id = RelativePath.normalisedInside(entry)
        else {
            throw ProbeDataError(
                "\(list.path) line \(line): '\(entry)' resolves outside the dataset root \(root.path) (or is absolute); "
                    + "refused, because its cached features would be written outside the output folder")
        }
        return id
    }

    /// The class names of a classes.txt (one per line, blank lines skipped), refused when there are
    /// none, or so many that class indices would reach the ignore label 255.
    static func classNames(_ file: URL, headBytes: ((Int) -> Double)? = nil) throws -> [String] {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else {
            throw ProbeDataError("\(file.path) is unreadable or not UTF-8 text (one class name per line; line k is class k)")
        }
        let names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else {
            throw ProbeDataError("\(file.path) lists no class (one class name per line; line k is class k)")
        }
        guard names.count <= maxClasses else {
            let memory =
                headBytes.map {
                    String(format: " (the probe head's logits and metrics would also need about %.1f GB for them)", $0(names.count) / 1e9)
                } ?? ""
            throw ProbeDataError(
                "\(file.path) lists \(names.count) classes; at most \(maxClasses) are allowed, because class indices "
                    + "must stay below 255, the ignore label of the masks\(memory)")
        }
        return names
    }

    static func imageFiles(_ dir: URL) throws -> [URL] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else {
            throw ProbeDataError("image directory \(dir.path) is missing")
        }
        return names.filter { ["jpg", "jpeg", "png"].contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
            .map { dir.appendingPathComponent($0) }
    }

    /// The class index of every pixel of `sample`'s mask (reduce_zero_label applied when the
    /// layout uses it), checked against the image size and the class count.
    public func labels(_ sample: ProbeSample, width: Int, height: Int) throws -> [Int32] {
        let mask = try SampleImage(contentsOf: sample.target)
        try ProbeDataset.checkMask(
            mask, path: sample.target.path, width: width, height: height,
            classes: classes, reduceZeroLabel: reduceZeroLabel)
        let raw = mask.samples.map { Int32($0) }
        return reduceZeroLabel ? Probe.reduceZeroLabel(raw) : raw
    }

    /// The mask checks, separate so the fuzz test can drive them with arbitrary bytes.
    public static func checkMask(
        _ mask: SampleImage, path: String, width: Int, height: Int, classes: Int,
        reduceZeroLabel: Bool
    ) throws {
        guard mask.width == width && mask.height == height else {
            throw ProbeDataError("mask \(path) is \(mask.width)×\(mask.height) but its image is \(width)×\(height)")
        }
        // Allowed raw values: 0..<K (or 0...K before reduce_zero_label) and the ignore label.
        let top = reduceZeroLabel ? classes : classes - 1
        var bad: [UInt16: Int] = [:]
        for v in mask.samples where Int(v) > top && Int32(v) != ignoreIndex { bad[v, default: 0] += 1 }
        if let worst = bad.keys.max() {
            let kind = mask.kind == .palette ? "palette-index" : "\(mask.bitDepth)-bit gray index"
            throw ProbeDataError(
                "mask \(path) (\(kind) PNG) has labels outside 0...\(top) and the ignore label 255: values \(bad.keys.sorted().prefix(8).map(String.init).joined(separator: ", ")) (\(bad.values.reduce(0, +)) pixels, largest \(worst)); the dataset has \(classes) classes"
            )
        }
    }

    /// The depth map of `sample` in metres (16-bit PNG / 1000), checked against the image size.
    public func depth(_ sample: ProbeSample, width: Int, height: Int) throws -> [Float] {
        let map = try SampleImage(contentsOf: sample.target)
        guard map.kind == .gray, map.bitDepth == 16 else {
            throw ProbeDataError(
                "depth map \(sample.target.path) is a \(map.bitDepth)-bit \(map.kind.rawValue) PNG; NYU depth maps are 16-bit grayscale PNGs in millimetres"
            )
        }
        guard map.width == width && map.height == height else {
            throw ProbeDataError("depth map \(sample.target.path) is \(map.width)×\(map.height) but its image is \(width)×\(height)")
        }
        return map.samples.map { Float($0) / ProbeDataset.depthScale }
    }
}
