import DVT
import Formats
import Foundation
import NN
import Settings
import TensorCore
import Training
import Vision

// The on-disk layout of a run: the feature trees and the per-run paths built on them.

/// Where the feature trees live. Stage 1 writes `OUT/raw_features/<model>/<rel>.npy` and
/// `OUT/denoised_features/<model>/<rel>.npy`, SRT `OUT/srt_features/<model>/<rel>.npy`, each an
/// (H, W, C) float32 map; `<rel>` is the image's path in its list or folder without extension.
public enum FeatureTree {
    public static let raw = "raw_features"
    public static let denoised = "denoised_features"
    public static let srt = "srt_features"

    public static func path(root: URL, tree: String, model: String, relativeStem: String) -> URL {
        root.appendingPathComponent(tree).appendingPathComponent(model).appendingPathComponent(relativeStem + ".npy")
    }
}

/// Paths of one run's outputs, in DVT's layout (`FeatureTree`), keyed by the config's model name.
public struct RunPaths: Sendable {
    public var root: URL
    public var model: String

    public init(root: URL, model: String) {
        self.root = root
        self.model = model
    }

    public func raw(_ stem: String) -> URL { FeatureTree.path(root: root, tree: FeatureTree.raw, model: model, relativeStem: stem) }
    public func denoised(_ stem: String) -> URL { FeatureTree.path(root: root, tree: FeatureTree.denoised, model: model, relativeStem: stem) }
    public func srt(_ stem: String) -> URL { FeatureTree.path(root: root, tree: FeatureTree.srt, model: model, relativeStem: stem) }
    public func extra(_ tree: String, _ stem: String) -> URL { FeatureTree.path(root: root, tree: tree, model: model, relativeStem: stem) }
    public func visual(_ kind: String, _ stem: String) -> URL { root.appendingPathComponent("visuals/\(kind)/\(stem).png") }
}

/// Feature pairs of an image list, with the ones that could not be used.
public struct FeaturePairIndex: Sendable {
    public var pairs: [FeaturePair]
    /// Images whose raw or target map is missing, with what is missing.
    public var missing: [(name: String, files: [String])]

    /// Pairs for every image of `list` (a list file or a folder, as `ImageSource` reads it).
    /// An image whose raw or target file does not exist is skipped and recorded in `missing`.
    public static func build(
        list: String, dataRoot: String?, featureRoot: URL, model: String,
        targetTree: String
    ) throws -> FeaturePairIndex {
        let items = try ImageSource.items(from: list, root: dataRoot)
        var out = FeaturePairIndex(pairs: [], missing: [])
        let fm = FileManager.default
        for item in items {
            let raw = FeatureTree.path(root: featureRoot, tree: FeatureTree.raw, model: model, relativeStem: item.relativeStem)
            let target = FeatureTree.path(root: featureRoot, tree: targetTree, model: model, relativeStem: item.relativeStem)
            let absent = [raw, target].filter { !fm.fileExists(atPath: $0.path) }.map(\.path)
            if absent.isEmpty {
                out.pairs.append(FeaturePair(name: item.relativeStem, raw: raw, target: target))
            } else {
                out.missing.append((item.relativeStem, absent))
            }
        }
        return out
    }

    /// One line for the log: how many pairs were found and how many skipped (never silent).
    public func summary(label: String) -> String {
        var s = "\(label): \(pairs.count) feature pairs, \(missing.count) skipped (missing files)"
        if let first = missing.first {
            s += "; e.g. \(first.name): no \(first.files.joined(separator: ", "))"
        }
        return s
    }
}
