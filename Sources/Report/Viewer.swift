import DVT
import Formats
import Foundation
import TensorCore

// The data of the report's token-similarity viewer. Letters: H × W token grid, N = H·W tokens,
// C channels, K stored dimensions (C, or a projection to fewer).

/// Feature maps packed for the viewer page: every token L2-normalised (the page needs only
/// directions, since it shows cosines), optionally projected onto the top-K directions of the
/// layer's tokens, stored as little-endian IEEE fp16 in base64 inside a `.js` file that the page
/// loads with a `<script>` tag (Chromium refuses `fetch()` of a sidecar over `file://`).
public struct ViewerData {
    /// One method's features, by layer then image (nil: not computed for that image or layer).
    public struct Method {
        public var key: String
        public var label: String
        /// layer → per image (H, W, C) map or nil.
        public var maps: [Int: [Tensor?]]
        public init(key: String, label: String, maps: [Int: [Tensor?]]) {
            self.key = key; self.label = label; self.maps = maps
        }
    }

    public var grid: (Int, Int)
    public var channels: Int
    /// Stored dimensions per token.
    public var dims: Int
    /// Per layer, the share of the unit tokens' energy the projection keeps (1 without one).
    public var keptEnergy: [Int: Double]
    /// layer → method key → per image base64 fp16 (nil = absent).
    public var encoded: [Int: [String: [String?]]]
    /// Maps left out because their grid differs from the raw grid (e.g. SRT at fine resolution).
    public var skipped: [String]

    /// Packs `methods` over `imageCount` images. Stores every channel when all maps together hold
    /// at most `budget` values; otherwise projects each layer onto its top 128 (or, if that is still
    /// over budget, 64) uncentred principal directions of the unit tokens: those directions keep
    /// the most of every dot product between unit tokens, so cosines stay close to the full ones,
    /// and equal them when the tokens span at most K directions.
    public init(methods: [Method], imageCount: Int, budget: Int = 4_500_000) throws {
        var gridShape: [Int]?
        for m in methods {
            for (_, maps) in m.maps.sorted(by: { $0.key < $1.key }) { for t in maps { if let t, gridShape == nil { gridShape = t.shape } } }
        }
        guard let shape = gridShape, shape.count == 3 else { throw ReportError("viewer: no feature map to show") }
        grid = (shape[0], shape[1])
        channels = shape[2]
        var skipped: [String] = []
        // layer → method → image → unit map (N, C)
        var units: [Int: [String: [Tensor?]]] = [:]
        var count = 0
        for m in methods {
            for (layer, maps) in m.maps {
                var row: [Tensor?] = []
                for (i, t) in maps.prefix(imageCount).enumerated() {
                    guard let t else { row.append(nil); continue }
                    guard t.shape == shape else {
                        skipped.append("\(m.label) of image \(i + 1) at layer \(layer): grid \(t.shape), viewer grid \(shape)")
                        row.append(nil)
                        continue
                    }
                    row.append(ClusterMaps.unitTokens(t))
                    count += 1
                }
                units[layer, default: [:]][m.key] = row
            }
        }
        self.skipped = skipped
        let n = shape[0] * shape[1], c = shape[2]
        let k = count * n * c <= budget ? c : (count * n * 128 <= budget ? min(c, 128) : min(c, 64))
        dims = k
        var energy: [Int: Double] = [:]
        var encoded: [Int: [String: [String?]]] = [:]
        for (layer, byMethod) in units {
            var basis: Tensor?  // (C, K)
            if k < c {
                let (b, kept) = try ViewerData.topDirections(byMethod.values.flatMap { $0.compactMap { $0 } }, k: k)
                basis = b
                energy[layer] = kept
            } else {
                energy[layer] = 1
            }
            for (key, maps) in byMethod {
                encoded[layer, default: [:]][key] = maps.map { unit in
                    unit.map { u in
                        var v = u  // (N, K)
                        if let b = basis { v = ClusterMaps.unitTokens(withNoGrad { Tensor.matmul(u, b) }) }
                        return ViewerData.fp16Base64(v.scalars)
                    }
                }
            }
        }
        keptEnergy = energy
        self.encoded = encoded
    }

    /// The top-k eigenvectors of Σ u uᵀ over the unit tokens, as a (C, K) matrix, and the share of
    /// the trace they keep.
    static func topDirections(_ units: [Tensor], k: Int) throws -> (Tensor, Double) {
        let c = units[0].shape[1]
        var moment = Tensor(zeros: [c, c])  // (C, C)
        for u in units { moment = moment + withNoGrad { Tensor.matmul(u, u, transposeA: true) } }
        let (values, vectors) = try SymmetricEigen.decompose(moment.scalars, n: c)
        let basis = Tensor(zeros: [c, k])  // (C, K)
        for q in 0..<k { for ch in 0..<c { basis[flat: ch * k + q] = vectors[q][ch] } }
        let trace = values.reduce(0.0) { $0 + Double(max(0, $1)) }
        let kept = values.prefix(k).reduce(0.0) { $0 + Double(max(0, $1)) }
        return (basis, trace > 0 ? kept / trace : 1)
    }

    /// IEEE half precision, little-endian, base64.
    static func fp16Base64(_ values: [Float]) -> String {
        var bytes = [UInt8](repeating: 0, count: values.count * 2)
        for (i, x) in values.enumerated() {
            let h = Float16(x).bitPattern
            bytes[2 * i] = UInt8(h & 0xff)
            bytes[2 * i + 1] = UInt8(h >> 8)
        }
        return Data(bytes).base64EncodedString()
    }

    /// The sidecar script: `window.DVT_VIEWER_DATA = {...};`.
    public func script(methods: [Method], images: [(name: String, src: String)], mainLayer: Int) throws -> String {
        var layers: [[String: Any]] = []
        for layer in encoded.keys.sorted() {
            layers.append([
                "layer": layer, "kept_energy": keptEnergy[layer] ?? 1,
                "features": (encoded[layer] ?? [:]).mapValues { $0.map { (s: String?) -> Any in s ?? NSNull() } },
            ])
        }
        let obj: [String: Any] = [
            "format": "dvt-viewer-1",
            "grid": [grid.0, grid.1],
            "channels": channels,
            "dims": dims,
            "encoding": "fp16-le-base64, unit tokens",
            "main_layer": mainLayer,
            "methods": methods.map { ["key": $0.key, "label": $0.label] },
            "images": images.map { ["name": $0.name, "src": $0.src] },
            "layers": layers,
        ]
        let json = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
        return "window.DVT_VIEWER_DATA = " + String(decoding: json, as: UTF8.self) + ";\n"
    }
}

public struct ReportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
