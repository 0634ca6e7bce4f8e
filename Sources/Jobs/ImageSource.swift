import DVT
import Formats
import Foundation
import NN
import Report
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

public struct ImageSourceError: Error, CustomStringConvertible {
    public var description: String
}

/// Image inputs as users have them: a VOC-style list file (first whitespace-separated field of
/// each line is a path, relative to `root` or to the list's folder; `#` comments and blank lines
/// skipped), or a directory searched recursively for .jpg/.jpeg/.png. Sorted, so indices and
/// shards are stable across runs and machines.
public enum ImageSource {
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

    /// Lists the images of a list file or a directory.
    /// - Parameter root: where list entries are resolved (default: the list file's folder).
    public static func items(from path: String, root: String? = nil) throws -> [ImageItem] {
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw ImageSourceError(description: "image source \(path) does not exist (expected a list file or a directory)")
        }
        if isDir.boolValue { return try directoryItems(url) }
        let base = root.map { URL(fileURLWithPath: $0) } ?? url.deletingLastPathComponent()
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw ImageSourceError(description: "cannot read image list \(path): \(error.localizedDescription)")
        }
        var items: [ImageItem] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let first = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first else { continue }
            let entry = String(first)
            let file = entry.hasPrefix("/") ? URL(fileURLWithPath: entry) : base.appendingPathComponent(entry)
            let ext = file.pathExtension.lowercased()
            guard imageExtensions.contains(ext) || ext.isEmpty else {
                throw ImageSourceError(description: "\(path):\(n + 1): '\(entry)' is not a .jpg/.jpeg/.png path")
            }
            let rel = entry.hasPrefix("/") ? file.deletingPathExtension().lastPathComponent
                                           : (entry as NSString).deletingPathExtension
            items.append(ImageItem(url: file, relativeStem: rel))
        }
        return items
    }

    static func directoryItems(_ dir: URL) throws -> [ImageItem] {
        guard let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.isRegularFileKey]) else {
            throw ImageSourceError(description: "cannot list directory \(dir.path)")
        }
        let basePath = dir.standardizedFileURL.path
        var items: [ImageItem] = []
        for case let file as URL in e where imageExtensions.contains(file.pathExtension.lowercased()) {
            var rel = file.standardizedFileURL.path
            if rel.hasPrefix(basePath + "/") { rel.removeFirst(basePath.count + 1) }
            items.append(ImageItem(url: file, relativeStem: (rel as NSString).deletingPathExtension))
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
