import Formats
import Foundation
import TensorCore
import TestSupport
import Testing
import Vision

/// Golden values from Python (PIL 8-bit decode/resize, torch antialiased bicubic) in
/// Tests/Fixtures/image; meta.json states the tolerances (decode exact or off by 1, resize
/// within 2/255 before normalisation).
@Suite("Image fixtures")
struct ImageFixtureTests {
    static let dir = fixturesDirectory.appendingPathComponent("image")

    struct Meta: Decodable {
        let mean: [Float]
        let std: [Float]
        let keys: [String: String]
    }

    static func load() throws -> (SafeTensorsFile, RGBImage, Meta) {
        let file = try SafeTensorsFile(url: dir.appendingPathComponent("image.safetensors"))
        let image = try RGBImage(contentsOf: dir.appendingPathComponent("gradient.jpg"))
        let meta = try JSONDecoder().decode(Meta.self, from: Data(contentsOf: dir.appendingPathComponent("meta.json")))
        return (file, image, meta)
    }

    /// Parses "prefix_HxW_suffix" keys.
    static func size(in key: String) -> (h: Int, w: Int)? {
        for part in key.split(separator: "_") {
            let hw = part.split(separator: "x")
            if hw.count == 2, let h = Int(hw[0]), let w = Int(hw[1]) { return (h, w) }
        }
        return nil
    }

    @Test func everyFixtureKeyMatches() throws {
        let (file, image, meta) = try Self.load()
        #expect(!file.keys.isEmpty)
        var checked = 0
        for key in file.keys {
            let expected = try file.tensor(key)
            if key == "decoded_hwc_uint8" {
                #expect(expected.shape == [image.height, image.width, 3])
                let ours = image.pixels.map(Float.init)
                let c = closeness(ours, expected.scalars, rtol: 0, atol: 1)
                print("[fixture] \(key): max |Δ| = \(c.maxAbsDiff) (uint8 levels)")
                #expect(ours.count == expected.count)
                #expect(c.firstBad == nil, "\(key): \(c)")
                checked += 1
            } else if key.hasPrefix("resize_bicubic_"), key.hasSuffix("_normalised_chw") {
                let (h, w) = try #require(Self.size(in: key), "no size in \(key)")
                let ours = image.resized(width: w, height: h).normalizedTensor(mean: meta.mean, std: meta.std)
                #expect(ours.shape == expected.shape)
                // Compare before normalisation: undo (x − m)/s per channel.
                let hw = h * w
                var a = [Float](), e = [Float]()
                for c in 0..<3 {
                    for i in 0..<hw {
                        a.append(ours[flat: c * hw + i] * meta.std[c] + meta.mean[c])
                        e.append(expected[flat: c * hw + i] * meta.std[c] + meta.mean[c])
                    }
                }
                let cl = closeness(a, e, rtol: 0, atol: 2 / 255)
                print(
                    "[fixture] \(key): max |Δ| = \(cl.maxAbsDiff) before normalisation (= \(cl.maxAbsDiff * 255) uint8 levels); after normalisation \(closeness(ours.scalars, expected.scalars, rtol: 0, atol: 1).maxAbsDiff)"
                )
                #expect(cl.firstBad == nil, "\(key): \(cl)")
                checked += 1
            } else if key.hasPrefix("tensor_bicubic_aa_"), key.hasSuffix("_chw") {
                let (h, w) = try #require(Self.size(in: key), "no size in \(key)")
                let ours = Resize.bicubicAntialiased(image.tensor(), height: h, width: w, layout: .chw)
                #expect(ours.shape == expected.shape)
                let cl = closeness(ours.scalars, expected.scalars, rtol: 0, atol: 2 / 255)
                print("[fixture] \(key): max |Δ| = \(cl.maxAbsDiff)")
                #expect(cl.firstBad == nil, "\(key): \(cl)")
                checked += 1
            } else {
                Issue.record("fixture key \(key) is not checked by any test")
            }
        }
        #expect(checked == file.keys.count)
        #expect(Set(meta.keys.keys).count == 3)
    }
}
