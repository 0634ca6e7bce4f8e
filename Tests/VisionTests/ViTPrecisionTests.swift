import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

@testable import Vision

/// Every ViT fixture with bf16 products (`VisionTransformer.precision = .bf16`) against timm's
/// fp32 features.
///
/// Tolerance: bf16 operands carry u = 2⁻⁸ ≈ 3.9e-3 relative error; through the blocks' six
/// products each the feature error stays near u of a token's norm, because layer norm keeps it
/// from compounding. Measured over the 11 fixtures (printed; docs/precision.md): minimum token
/// cosine 0.99990 (eva02, 0.99998 or more elsewhere), error norm ‖bf16 − fp32‖ / ‖fp32‖ at most
/// 8.8e-3. The bounds are cosine ≥ 0.999 and error norm ≤ 3e-2 (≈ 8u) for every token of
/// every case and layer, normed and raw: 10× and 3× headroom, while a wrong kernel gives
/// cosines near 0.
@Suite("ViT in bf16 matches timm fp32")
struct ViTPrecisionTests {
    /// Minimum token cosine and ‖a − b‖ / ‖b‖ over the tokens of (..., C) maps.
    static func compare(_ a: Tensor, _ b: Tensor) -> (minCos: Double, relError: Double) {
        let c = b.shape.last!, n = b.count / max(c, 1)
        let x = a.scalars, y = b.scalars
        var minCos = 1.0, num = 0.0, den = 0.0
        for t in 0..<n {
            var dot = 0.0, xx = 0.0, yy = 0.0
            for j in (t * c)..<((t + 1) * c) {
                let u = Double(x[j]), v = Double(y[j])
                dot += u * v; xx += u * u; yy += v * v
                num += (u - v) * (u - v); den += v * v
            }
            minCos = min(minCos, dot / max((xx * yy).squareRoot(), 1e-30))
        }
        return (minCos, (num / max(den, 1e-30)).squareRoot())
    }

    @Test("bf16 features: min token cosine ≥ 0.999 and error norm ≤ 3e-2 vs timm fp32", arguments: ViTConformanceTests.families)
    func family(_ name: String) throws {
        let dir = fixturesDirectory.appendingPathComponent("vit/\(name)")
        let meta = try ViTConformanceTests.meta(name)
        let cfg = try ViTConformanceTests.config(meta)
        let model = try VisionTransformer(config: cfg, weights: dir.appendingPathComponent("weights.safetensors"))
        model.precision = .bf16
        let io = try SafeTensorsFile(url: dir.appendingPathComponent("io.safetensors"))
        let layers = meta["layers"] as! [Int]
        let stride = meta["stride"] as! Int
        var worstCos = 1.0, worstRel = 0.0
        for case_ in meta["cases"] as! [[String: Any]] {
            let input = case_["input"] as! String
            let x = try io.tensor(input)
            for norm in [true, false] {
                let feats = model.features(x, layers: layers, norm: norm, stride: stride)
                for l in layers {
                    let key = "\(input).layer\(l).\(norm ? "norm" : "raw").patch"
                    let (cos, rel) = Self.compare(feats[l]!.patch, try io.tensor(key))
                    worstCos = min(worstCos, cos); worstRel = max(worstRel, rel)
                    #expect(cos >= 0.999, "\(name) \(key): min token cosine \(cos)")
                    #expect(rel <= 3e-2, "\(name) \(key): relative error \(rel)")
                }
            }
        }
        #expect(worstRel > 0, "\(name): bf16 left the features unchanged")
        print(String(format: "bf16 ViT fixture %@: min token cosine %.6f, max relative error %.2e", name, worstCos, worstRel))
    }
}
