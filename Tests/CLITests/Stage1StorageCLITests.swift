import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

@testable import DVTCommands

@Suite("dvt stage1 with bf16 or int8 view features")
struct Stage1StorageCLITests {
    @Test("view_features_dtype bf16 / int8: the same views, held bf16-rounded / int8-quantised; the raw output stays fp32")
    func reducedViews() throws {
        let dir = temporaryDirectory("stage1-bf16")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cfg = try Stage1CLITests().config(dir, images: ["chelsea.jpg"])
        let model = "vit_small_patch14_dinov2.lvd142m"
        var outputs: [String: (raw: [Float], views: [Float])] = [:]
        for dtype in ["fp32", "bf16", "int8"] {
            let out = dir.appendingPathComponent("out-\(dtype)")
            try runDVT([
                "stage1", cfg.path, "--output-dir", out.path, "--set", "stage1.view_features_dtype=\(dtype)",
                "--set", "stage1.save_extras=true", "--set", "stage1.vis_every=0",
            ])
            let raw = try Npy.read(out.appendingPathComponent("raw_features/\(model)/chelsea.npy"))
            let views = try Npy.read(out.appendingPathComponent("view_features/\(model)/chelsea.npy"))
            #expect(views.shape == [4, 4, 4, 384] && raw.shape == [4, 4, 384])
            outputs[dtype] = (raw.scalars, views.scalars)
        }
        let fp32 = outputs["fp32"]!, bf16 = outputs["bf16"]!
        #expect(bf16.raw == fp32.raw)
        #expect(bf16.views != fp32.views)
        let rounded = fp32.views.map { Float(bitPattern: ($0.bitPattern &+ 0x7FFF &+ (($0.bitPattern >> 16) & 1)) & 0xFFFF_0000) }
        #expect(bf16.views == rounded)
        // int8: the fit holds FeatureRows' int8 form of the fp32 views (its rule is pinned in
        // FeatureRowsTests); the four views are one block of the job's eight.
        let int8 = outputs["int8"]!
        #expect(int8.raw == fp32.raw)
        let quantised = FeatureRows(Tensor(fp32.views, shape: [64, 384]), element: .int8).copyRows(0..<64).scalars
        #expect(int8.views == quantised)
    }
}
