import ArgumentParser
import DVT
import Foundation
import Jobs

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
                layout of PlantedData and scripts/reference/planted.py): ground-truth scores of each --denoised X.npy \
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
                throw ValidationError(
                    "--labels has \(labels.split(separator: ",").count) names for \(n) \(planted == nil ? "--features" : "--denoised") inputs")
            }
        }

        func names(_ paths: [String]) -> [String] {
            if let labels {
                return labels.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
            }
            return paths.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }
        }

        func run() throws {
            if let planted {
                let rows = try MetricsTables.plantedRows(planted: planted, denoised: denoised, labels: names(denoised))
                return print(MetricsTables.plantedMarkdown(rows), terminator: "")
            }
            let rows = try MetricsTables.featureRows(
                folders: features, labels: names(features), limit: limit, maxSamples: maxSamples,
                skipNonFinite: skipNonFinite,
                warn: { FileHandle.standardError.write(Data(($0 + "\n").utf8)) })
            print(ArtifactMetrics.markdown(rows), terminator: "")
        }
    }
}
