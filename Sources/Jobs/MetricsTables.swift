import DVT
import Formats
import Foundation
import TensorCore

/// `dvt metrics`: the artifact-metrics table of folders of feature maps (one method each), and
/// the planted scores of denoised maps. Errors name the file and its shape.
public enum MetricsTables {
    /// One `ArtifactMetrics.Row` per folder: every .npy (H, W, C) under it in sorted path order
    /// (at most `limit`), all on one grid. A map holding NaN or Inf stops the table, or with
    /// `skipNonFinite` is left out with a `warn`ing.
    public static func featureRows(
        folders: [String], labels: [String], limit: Int?, maxSamples: Int, skipNonFinite: Bool,
        warn: (String) -> Void
    ) throws -> [ArtifactMetrics.Row] {
        var rows: [ArtifactMetrics.Row] = []
        for (dir, label) in zip(folders, labels) {
            var files = try npyFiles(in: dir)
            if let limit { files = Array(files.prefix(limit)) }
            if files.isEmpty { throw JobsError.input("no .npy files under \(dir)") }
            var maps: [Tensor] = []
            var mapFiles: [URL] = []
            for f in files {
                let t = try Npy.read(f)
                guard t.rank == 3 else { throw JobsError.input("\(f.path): shape \(t.shape), expected (H, W, C)") }
                // A NaN would otherwise give a silent position-variance ratio of 0.0000.
                do { try t.requireFinite(f.path) } catch let e as NonFiniteError {
                    if !skipNonFinite { throw JobsError.input("\(e) (--skip-non-finite leaves such maps out)") }
                    warn("warning: skipped \(e)")
                    continue
                }
                if let first = maps.first, first.shape != t.shape {
                    throw JobsError.input(
                        "\(f.path): shape \(t.shape) differs from \(mapFiles[0].path) \(first.shape); one method's maps must share a grid")
                }
                maps.append(t)
                mapFiles.append(f)
            }
            if maps.isEmpty { throw JobsError.input("every .npy file under \(dir) holds NaN or Inf") }
            rows.append(try ArtifactMetrics.row(label: label, maps: maps, maxSamples: maxSamples))
        }
        return rows
    }

    /// The .npy files under `dir` (recursively), sorted by path.
    public static func npyFiles(in dir: String) throws -> [URL] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw JobsError.input("--features \(dir) is not a directory")
        }
        let e = FileManager.default.enumerator(at: URL(fileURLWithPath: dir), includingPropertiesForKeys: nil)
        var out: [URL] = []
        while let f = e?.nextObject() as? URL { if f.pathExtension.lowercased() == "npy" { out.append(f) } }
        return out.sorted { $0.path < $1.path }
    }

    /// The planted scores of the raw whole view (first row) and of each denoised map, against the
    /// planted file's truth (raw, clean_full, artifact).
    public static func plantedRows(planted path: String, denoised: [String], labels: [String]) throws -> [(String, PlantedScore)] {
        let file = try SafeTensorsFile(url: URL(fileURLWithPath: path))
        for key in ["raw", "clean_full", "artifact"] where !file.contains(key) {
            throw JobsError.input("\(path) has no '\(key)' tensor (planted layout: \(PlantedData.layoutDescription))")
        }
        let raw = try file.tensor("raw"), clean = try file.tensor("clean_full"), artifact = try file.tensor("artifact")
        let whole = raw.slice(axis: 0, (raw.shape[0] - 1)..<raw.shape[0]).reshape(Array(raw.shape.dropFirst()))
        var rows: [(String, PlantedScore)] = []
        rows.append(("raw (whole view)", try ArtifactMetrics.plantedScore(raw: raw, cleanFull: clean, artifact: artifact, denoised: whole)))
        for (p, label) in zip(denoised, labels) {
            let d = try Npy.read(URL(fileURLWithPath: p))
            do { try d.requireFinite(p) } catch { throw JobsError.input("\(error)") }
            rows.append((label, try ArtifactMetrics.plantedScore(raw: raw, cleanFull: clean, artifact: artifact, denoised: d)))
        }
        return rows
    }

    /// The planted rows as a markdown table.
    public static func plantedMarkdown(_ rows: [(String, PlantedScore)]) -> String {
        var s = "| method | centred cosine with clean F | cosine of raw − denoised with artifact G |\n|---|---:|---:|\n"
        for (label, score) in rows {
            s += String(format: "| %@ | %.4f | %.4f |\n", label as NSString, score.denoisedVsClean, score.removedVsPlanted)
        }
        return s
    }
}
