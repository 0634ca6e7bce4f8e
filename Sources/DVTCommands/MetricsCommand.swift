import ArgumentParser
import Bench
import DVT
import Formats
import Foundation
import Jobs
import Settings
import TensorCore
import Training
import Vision

extension DVTCommand {
    struct MetricsCommand: ComputeCommand {
        static let configuration = CommandConfiguration(
            commandName: "metrics",
            abstract: "Artifact metrics of feature maps, one markdown table for all methods.",
            discussion: """
            Feature maps (--features DIR, repeatable, one per method): every .npy (H, W, C) under DIR; \
            all maps of one method must share a grid. Columns: position-variance ratio (share of the \
            feature variance explained by the patch position: variance over positions of the \
            per-position mean over maps, over the total variance, summed over channels; 1 = pure \
            position signal, ~1/maps = none), and MIC_eq (an equipartition estimate of the maximal \
            information coefficient, a lower bound of MIC) between features and the normalised patch \
            index, averaged over channels, and between token norms and the index.

            Planted data (--planted FILE.safetensors with raw, clean_full, artifact in the \
            layout of PlantedData and shared/reference/planted.py): ground-truth scores of each --denoised X.npy \
            ((H, W, C) whole-image map, or a (V+1, H, W, C) stack whose last view is used): the mean \
            centred cosine with the clean field F, and the flat centred cosine of raw - denoised with \
            the planted artifact G. The raw whole-image view is always the first row.
            """)

        @Option(help: "Folder of .npy feature maps of one method (repeat for more methods).")
        var features: [String] = []
        @Option(help: "Comma-separated method names, one per --features (or per --denoised); default: folder/file names.")
        var labels: String?
        @Option(help: "Use at most this many maps per method (the first in sorted path order).")
        var limit: Int?
        @Option(help: "MIC samples per method and channel ((map, position) pairs, taken at an even stride).")
        var maxSamples = 4096
        @Option(help: "Planted safetensors file (raw, clean_full, artifact) for ground-truth scores.")
        var planted: String?
        @Option(help: "Denoised map (.npy) to score against --planted (repeatable).")
        var denoised: [String] = []
        @Flag(help: "Leave out --features maps holding NaN or Inf, with a warning, instead of stopping.")
        var skipNonFinite = false
        @OptionGroup var compute: ComputeOptions

        func validate() throws {
            if features.isEmpty && planted == nil { throw ValidationError("give --features DIR (one or more) or --planted FILE") }
            if !features.isEmpty && planted != nil { throw ValidationError("--features and --planted are separate modes; run them separately") }
            if planted == nil && !denoised.isEmpty { throw ValidationError("--denoised needs --planted") }
            if planted != nil && denoised.isEmpty { throw ValidationError("--planted needs at least one --denoised X.npy") }
            if let limit, limit < 1 { throw ValidationError("--limit must be >= 1, got \(limit)") }
            if maxSamples < 4 { throw ValidationError("--max-samples must be >= 4, got \(maxSamples)") }
            let n = planted == nil ? features.count : denoised.count
            if let labels, labels.split(separator: ",", omittingEmptySubsequences: false).count != n {
                throw ValidationError("--labels has \(labels.split(separator: ",").count) names for \(n) \(planted == nil ? "--features" : "--denoised") inputs")
            }
        }

        func names(_ paths: [String]) -> [String] {
            if let labels { return labels.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) } }
            return paths.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }
        }

        func run() throws {
            if let planted { return try runPlanted(planted) }
            var rows: [ArtifactMetrics.Row] = []
            for (dir, label) in zip(features, names(features)) {
                var files = try MetricsCommand.npyFiles(in: dir)
                if let limit { files = Array(files.prefix(limit)) }
                if files.isEmpty { throw ValidationError("no .npy files under \(dir)") }
                var maps: [Tensor] = []
                var mapFiles: [URL] = []
                for f in files {
                    let t = try Npy.read(f)
                    guard t.rank == 3 else { throw ValidationError("\(f.path): shape \(t.shape), expected (H, W, C)") }
                    // A NaN used to give a silent position-variance ratio of 0.0000.
                    do { try t.requireFinite(f.path) } catch let e as NonFiniteError {
                        if !skipNonFinite { throw ValidationError("\(e) (--skip-non-finite leaves such maps out)") }
                        FileHandle.standardError.write(Data("warning: skipped \(e)\n".utf8))
                        continue
                    }
                    if let first = maps.first, first.shape != t.shape {
                        throw ValidationError("\(f.path): shape \(t.shape) differs from \(mapFiles[0].path) \(first.shape); one method's maps must share a grid")
                    }
                    maps.append(t)
                    mapFiles.append(f)
                }
                if maps.isEmpty { throw ValidationError("every .npy file under \(dir) holds NaN or Inf") }
                rows.append(try ArtifactMetrics.row(label: label, maps: maps, maxSamples: maxSamples))
            }
            print(ArtifactMetrics.markdown(rows), terminator: "")
        }

        static func npyFiles(in dir: String) throws -> [URL] {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
                throw ValidationError("--features \(dir) is not a directory")
            }
            let e = FileManager.default.enumerator(at: URL(fileURLWithPath: dir), includingPropertiesForKeys: nil)
            var out: [URL] = []
            while let f = e?.nextObject() as? URL { if f.pathExtension.lowercased() == "npy" { out.append(f) } }
            return out.sorted { $0.path < $1.path }
        }

        func runPlanted(_ path: String) throws {
            let file = try SafeTensorsFile(url: URL(fileURLWithPath: path))
            for key in ["raw", "clean_full", "artifact"] where !file.contains(key) {
                throw ValidationError("\(path) has no '\(key)' tensor (planted layout: \(PlantedData.layoutDescription))")
            }
            let raw = try file.tensor("raw"), clean = try file.tensor("clean_full"), artifact = try file.tensor("artifact")
            let whole = raw.slice(axis: 0, (raw.shape[0] - 1)..<raw.shape[0]).reshape(Array(raw.shape.dropFirst()))
            var rows: [(String, PlantedScore)] = []
            rows.append(("raw (whole view)", try ArtifactMetrics.plantedScore(raw: raw, cleanFull: clean, artifact: artifact, denoised: whole)))
            for (p, label) in zip(denoised, names(denoised)) {
                let d = try Npy.read(URL(fileURLWithPath: p))
                do { try d.requireFinite(p) } catch { throw ValidationError("\(error)") }
                rows.append((label, try ArtifactMetrics.plantedScore(raw: raw, cleanFull: clean, artifact: artifact, denoised: d)))
            }
            print("| method | centred cosine with clean F | cosine of raw − denoised with artifact G |")
            print("|---|---:|---:|")
            for (label, s) in rows {
                print(String(format: "| %@ | %.4f | %.4f |", label as NSString, s.denoisedVsClean, s.removedVsPlanted))
            }
        }
    }
}
