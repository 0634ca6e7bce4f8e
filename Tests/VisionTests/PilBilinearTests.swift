import Formats
import Foundation
import TensorCore
import TestSupport
import Testing
import Vision

/// Pillow BILINEAR, DVT's stage-1 base resize, against golden Pillow output
/// (scripts/make_resize_fixture.py): the same 8-bit fixed-point arithmetic, so exact.
@Suite("Pillow bilinear resize")
struct PilBilinearTests {
    static let dir = fixturesDirectory.appendingPathComponent("image")

    @Test("matches Pillow exactly when shrinking, enlarging and resizing one axis")
    func matchesPillow() throws {
        let src = try Npy.read(Self.dir.appendingPathComponent("pil_bilinear_in.npy"))  // (H, W, 3)
        let image = RGBImage(width: src.shape[1], height: src.shape[0], pixels: src.scalars.map { UInt8($0) })
        for (h, w) in [(12, 17), (40, 50), (23, 9)] {
            let want = try Npy.read(Self.dir.appendingPathComponent("pil_bilinear_\(h)x\(w).npy"))
            let got = Resize.pilBilinear(image, width: w, height: h)
            #expect(got.width == w && got.height == h)
            #expect(got.pixels.map(Float.init) == want.scalars, "\(h)x\(w)")
            // Bilinear is a different filter from bicubic: the fixture would catch a mix-up.
            #expect(Resize.pilBicubic(image, width: w, height: h).pixels != got.pixels)
        }
    }
}
