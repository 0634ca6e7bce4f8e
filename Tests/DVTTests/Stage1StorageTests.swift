import Foundation
import TensorCore
import Testing

@testable import DVT

@Suite("Stage 1: view features held as FeatureRows")
struct Stage1StorageTests {
    /// The views as the fit sees them when held in `dtype`: bf16 by the engine's own rounding
    /// (independent of FeatureRows), int8 read back from FeatureRows.
    static func heldViews(_ raw: Tensor, _ dtype: FeatureRows.Element) -> Tensor {
        if dtype == .bf16 { return raw.roundedToBF16() }
        let q = FeatureRows(raw, element: dtype)
        return q.copyRows(0..<q.rows).reshape(raw.shape)
    }

    @Test(
        "bf16 / int8 view features fit exactly as fp32 views rounded to bf16 / dequantised from int8; the raw output stays fp32",
        arguments: [FeatureRows.Element.bf16, .int8])
    func heldStorage(_ dtype: FeatureRows.Element) throws {
        var (data, s) = smallPlantedCase()
        s.numIters = 60
        let held = Self.heldViews(data.raw, dtype)
        #expect(held.scalars != data.raw.scalars)
        let reference = try Stage1.fit(views: held, coords: data.coords, settings: s, seed: 3)
        s.viewFeaturesDtype = dtype
        let stored = try Stage1.fit(views: data.raw, coords: data.coords, settings: s, seed: 3)
        #expect(stored.output.denoised.scalars == reference.output.denoised.scalars)
        #expect(stored.output.sharedArtifacts.scalars == reference.output.sharedArtifacts.scalars)
        let v = data.raw.shape[0]
        #expect(stored.output.raw.scalars == data.raw.slice(axis: 0, (v - 1)..<v).scalars)
    }

    @Test("the rows entry point and the tensor entry point give the same fit bit for bit (fp32)")
    func rowsEntryPoint() throws {
        var (data, s) = smallPlantedCase()
        s.numIters = 60
        let a = try Stage1.fit(views: data.raw, coords: data.coords, settings: s, seed: 2)
        let v = data.raw.shape[0]
        let last = data.raw.slice(axis: 0, (v - 1)..<v).reshape(Array(data.raw.shape.dropFirst()))
        let b = try Stage1.fit(rows: FeatureRows(data.raw, element: .fp32), lastView: last, coords: data.coords, settings: s, seed: 2)
        #expect(a.output.denoised.scalars == b.output.denoised.scalars)
        #expect(a.output.sharedArtifacts.scalars == b.output.sharedArtifacts.scalars)
        #expect(a.output.raw.scalars == b.output.raw.scalars)
        #expect(throws: Stage1Error.self) {
            _ = try Stage1Task(
                raw: FeatureRows(data.raw, element: .fp32), lastView: last,
                coords: data.coords.slice(axis: 0, 0..<(v - 1)), settings: s, seed: 0)
        }
    }
}
