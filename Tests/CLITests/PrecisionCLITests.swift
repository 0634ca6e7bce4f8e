import Formats
import Foundation
import Settings
import TensorCore
import TestSupport
import Testing
import Vision

@testable import DVTCommands

@Suite("--precision")
struct PrecisionCLITests {
    @Test("extract --precision bf16 records bf16, stays close to fp32 and differs from it; bad values are refused")
    func extractBF16() throws {
        let dir = temporaryDirectory("precision")
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: photos.appendingPathComponent("chelsea.jpg"), to: input.appendingPathComponent("cat.jpg"))
        var maps: [String: Tensor] = [:]
        for p in ["fp32", "bf16"] {
            let out = dir.appendingPathComponent(p)
            try runDVT([
                "extract", "--arch", "vit_small_patch14_dinov2", "--random-init", "3", "--size", "56", "56",
                "--precision", p, "--images", input.path, "--out", out.path,
            ])
            let info = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("extract_info.json"))) as! [String: Any]
            #expect(info["precision"] as? String == p)
            maps[p] = try Npy.read(out.appendingPathComponent("cat.npy"))
        }
        let a = maps["bf16"]!.scalars, b = maps["fp32"]!.scalars
        let num = zip(a, b).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }, den = b.reduce(Float(0)) { $0 + $1 * $1 }
        let rel = (num / den).squareRoot()
        #expect(rel > 0 && rel < 3e-2, "bf16 vs fp32 error norm \(rel)")
        #expect(throws: (any Error).self) {
            try runDVT([
                "extract", "--random-init", "3", "--precision", "fp16", "--images", input.path, "--out", dir.appendingPathComponent("x").path,
            ])
        }
        #expect(throws: (any Error).self) { _ = try ConfigSchema.load(file: nil, overrides: ["precision=fp16"]) }
        #expect(try ConfigSchema.load(file: nil, overrides: ["precision=bf16"]).settings.run.precision == .bf16)
        #expect(try ConfigSchema.load(file: nil).settings.run.precision == .fp32)
    }
}
