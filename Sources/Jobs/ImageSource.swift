import DVT
import Formats
import Foundation
import NN
import Settings
import TensorCore
import Training
import Vision

/// One input image: where it is, and the relative path its outputs mirror.
public struct ImageItem: Sendable, Equatable {
    public var url: URL
    /// Relative path without extension, used to mirror the input tree in outputs
    /// (`OUT/<relativeStem>.npy`).
    public var relativeStem: String
}

/// Image inputs as users have them: a VOC-style list file (one entry per line, relative to `root`
/// or to the list's folder; `#` comments and blank lines skipped), or a directory searched
/// recursively for .jpg/.jpeg/.png. Sorted, so indices and shards are stable across runs and
/// machines.
///
/// A list line's path is its first field: the text before the first tab when the line has one
/// (so names with spaces work, as in tab-separated lists), the text between double quotes when
/// the line starts with one, else the first whitespace-separated word (VOC's `name label`).
///
/// Refused up front, with every offending entry named: entries that resolve outside
/// the list's root (`../x.jpg` would write `x.npy` outside `--out`), inputs whose outputs would
/// share a name (`a.jpg` and `a.png` both map to `a.npy`), and an empty list or folder.
public enum ImageSource {
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

    /// Lists the images of a list file or a directory.
    /// - Parameter root: where list entries are resolved (default: the list file's folder).
    public static func items(from path: String, root: String? = nil) throws -> [ImageItem] {
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw JobsError.input("image source \(path) does not exist (expected a list file or a directory)")
        }
        let items = try isDir.boolValue ? directoryItems(url) : listItems(url, path: path, root: root)
        guard !items.isEmpty else {
            throw JobsError.input("image source \(path) holds no images (\(isDir.boolValue ? "no .jpg/.jpeg/.png files below it" : "no entries"))")
        }
        try checkCollisions(items, source: path)
        return items
    }

    static func listItems(_ url: URL, path: String, root: String?) throws -> [ImageItem] {
        let base = root.map { URL(fileURLWithPath: $0) } ?? url.deletingLastPathComponent()
        _ = try FileKind.requireRegular(url.path, what: "image list") { JobsError.input($0) }
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            // Foundation only says "the file isn't in the correct format".
            if imageExtensions.contains(url.pathExtension.lowercased()) {
                throw JobsError.input("cannot read image list \(path): it is an image, not a list; pass its folder, or a list file that names it")
            }
            throw JobsError.input("cannot read image list \(path): it is not UTF-8 text (a list has one image path per line)")
        }
        var items: [ImageItem] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let entry = try pathField(line, at: "\(path):\(n + 1)")
            let file = entry.hasPrefix("/") ? URL(fileURLWithPath: entry) : base.appendingPathComponent(entry)
            let ext = file.pathExtension.lowercased()
            guard imageExtensions.contains(ext) || ext.isEmpty else {
                throw JobsError.input("\(path):\(n + 1): '\(entry)' is not a .jpg/.jpeg/.png path")
            }
            let rel: String
            if entry.hasPrefix("/") {
                rel = file.deletingPathExtension().lastPathComponent
            } else {
                guard let inside = RelativePath.normalisedInside((entry as NSString).deletingPathExtension) else {
                    throw JobsError.input(
                        "\(path):\(n + 1): '\(entry)' resolves outside the list's root \(base.path); "
                            + "refused, because its outputs would be written outside the output folder")
                }
                rel = inside
            }
            items.append(ImageItem(url: file, relativeStem: rel))
        }
        return items
    }

    /// The path field of a list line (see the type's comment).
    static func pathField(_ line: String, at place: String) throws -> String {
        if line.hasPrefix("\"") {
            let rest = line.dropFirst()
            guard let close = rest.firstIndex(of: "\"") else { throw JobsError.input("\(place): unclosed quote in '\(line)'") }
            return String(rest[..<close])
        }
        if let tab = line.firstIndex(of: "\t") { return String(line[..<tab]).trimmingCharacters(in: .whitespaces) }
        return String(line.split(separator: " ").first ?? Substring(line))
    }

    /// Refuses inputs whose outputs would share a name: `a.jpg`, `a.png` and `a.JPEG` all
    /// become `a.npy`, so only one would survive while the job reported all written.
    static func checkCollisions(_ items: [ImageItem], source: String) throws {
        let groups = Dictionary(grouping: items, by: \.relativeStem).filter { $0.value.count > 1 }
        guard !groups.isEmpty else { return }
        let listed = groups.keys.sorted().prefix(10).map { stem in
            "\(stem): " + groups[stem]!.map(\.url.lastPathComponent).joined(separator: ", ")
        }
        throw JobsError.input(
            "image source \(source): \(groups.count) output name(s) would be shared by several inputs "
                + "(outputs drop the extension): \(listed.joined(separator: "; "))"
                + (groups.count > 10 ? "; …" : "") + ". Rename or remove the duplicates")
    }

    static func directoryItems(_ dir: URL) throws -> [ImageItem] {
        guard let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.isRegularFileKey]) else {
            throw JobsError.input("cannot list directory \(dir.path)")
        }
        let basePath = dir.standardizedFileURL.path
        var items: [ImageItem] = []
        var undecodable: [String] = []
        for case let file as URL in e where imageExtensions.contains(file.pathExtension.lowercased()) {
            // Foundation decodes a non-UTF-8 name with U+FFFD, a path that then does not exist
            // (which would fail later as "No such file or directory").
            if FileKind.of(file.path) == .missing { undecodable.append(file.lastPathComponent); continue }
            var rel = file.standardizedFileURL.path
            if rel.hasPrefix(basePath + "/") { rel.removeFirst(basePath.count + 1) }
            items.append(ImageItem(url: file, relativeStem: (rel as NSString).deletingPathExtension))
        }
        if !undecodable.isEmpty {
            throw JobsError.input(
                "image folder \(dir.path): \(undecodable.count) file name(s) are not valid UTF-8 (shown with \u{FFFD}): "
                    + undecodable.prefix(10).joined(separator: ", ") + (undecodable.count > 10 ? ", …" : "")
                    + "; dvt needs UTF-8 names, rename them (e.g. convmv -f latin1 -t utf-8 -r --notest \(dir.path))")
        }
        return items.sorted { $0.relativeStem < $1.relativeStem }
    }

    /// The items of shard `k` of `n` (0-based): every n-th item starting at k, so shards stay
    /// balanced whatever order the images are in.
    public static func shard(_ items: [ImageItem], index k: Int, count n: Int) -> [ImageItem] {
        precondition(n >= 1 && k >= 0 && k < n, "shard \(k)/\(n) is not valid")
        return items.enumerated().filter { $0.offset % n == k }.map(\.element)
    }
}
