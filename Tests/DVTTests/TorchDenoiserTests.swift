import DVT
import Formats
import Foundation
import NN
import TensorCore
import TestSupport
import Testing
import Vision

/// `--denoiser X.pth`: the official stage-2 checkpoint, a bare state dict, fp16; the
/// architecture from the shapes; and our .pth export read back.
@Suite("Denoiser from .pth")
struct TorchDenoiserTests {
    static let dir = fixturesDirectory.appendingPathComponent("pth")

    func temp(_ name: String) -> URL {
        temporaryDirectory("pth").appendingPathComponent(name)
    }

    /// meta.json: max abs error <= 1e-5 · max(1, max |expected|) (float32 files).
    static func check(_ y: Tensor, _ expected: Tensor, _ what: String, tolerance: Float = 1e-5) {
        #expect(y.shape == expected.shape, "\(what): shape")
        let e = expected.scalars
        let tol = tolerance * max(1, e.map { abs($0) }.max() ?? 0)
        let worst = zip(y.scalars, e).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= tol, "\(what): max abs error \(worst) > \(tol)")
    }

    @Test(
        "official checkpoint, bare state dict and fp16 reproduce their outputs (pos_embed resampled 6x6 → 5x7)",
        arguments: [
            ("denoiser_official.pth", "denoiser_io.safetensors"), ("denoiser_state_dict.pth", "denoiser_io.safetensors"),
            ("denoiser_fp16.pth", "denoiser_fp16_io.safetensors"),
        ])
    func fixture(_ file: String, _ ioFile: String) throws {
        let d = try Denoiser.load(Self.dir.appendingPathComponent(file))
        #expect(d.config == DenoiserConfig(dim: 128, grid: (6, 6), numBlocks: 1, numHeads: 2, enablePE: true))
        let io = try SafeTensorsFile(url: Self.dir.appendingPathComponent(ioFile))
        let x = try SafeTensorsFile(url: Self.dir.appendingPathComponent("denoiser_io.safetensors")).tensor("input")
        #expect(x.shape == [2, 5, 7, 128])
        Self.check(d.denoise(x), try io.tensor("output"), file)
    }

    @Test("our .pth export reads back: several blocks, pos_embed off, vit.* keys dropped; same outputs")
    func exportRoundTrip() throws {
        for (blocks, pe) in [(1, true), (2, true), (3, false)] {
            let d = try Denoiser(config: DenoiserConfig(dim: 64, grid: pe ? (4, 4) : (4, 5), numBlocks: blocks, enablePE: pe), seed: UInt64(blocks))
            let url = temp("d\(blocks).pth")
            defer { try? FileManager.default.removeItem(at: url) }
            try d.export(to: url, format: .pth)
            let archive = try TorchArchive(url: url)
            guard case .dict(let top) = archive.root else { Issue.record("not a dict"); continue }
            #expect(top.map(\.key) == [.string("denoiser")])
            let back = try Denoiser.load(url)
            #expect(back.config.dim == 64 && back.config.numBlocks == blocks && back.config.enablePE == pe && back.config.numHeads == 1)
            // A .pth has no metadata: the grid is pos_embed's square (1x1, unused, without it).
            #expect(pe ? back.config.gridHeight == 4 && back.config.gridWidth == 4 : back.config.gridHeight == 1)
            #expect(back.namedParameters().map(\.0) == d.namedParameters().map(\.0))
            for ((k, a), (_, b)) in zip(d.namedParameters(), back.namedParameters()) { #expect(a.scalars == b.scalars, "\(k)") }
        }
    }

    @Test("official checkpoint keys of the wrapped ViT (vit.*) are dropped; a file without a denoiser says so")
    func vitKeysAndErrors() throws {
        let d = try Denoiser(config: DenoiserConfig(dim: 64, grid: (3, 3), numBlocks: 1), seed: 7)
        var entries = d.namedParameters().map { ($0.0, TorchWriter.Value.tensor($0.1)) }
        entries.append(("vit.model.cls_token", .tensor(Tensor(zeros: [1, 1, 64]))))
        let url = temp("vit.pth")
        defer { try? FileManager.default.removeItem(at: url) }
        try TorchWriter.serialize(.dict([("denoiser", .dict(entries)), ("step", .int(5))])).write(to: url)
        let back = try Denoiser.load(url)
        #expect(back.config == d.config)
        // A non-square grid cannot be recovered from a .pth (timm assumes square too).
        try Denoiser(config: DenoiserConfig(dim: 64, grid: (4, 5)), seed: 1).export(to: url, format: .pth)
        do {
            _ = try Denoiser.load(url)
            Issue.record("a non-square pos_embed without metadata must fail")
        } catch {
            #expect("\(error)".contains("not a square grid"), "\(error)")
        }
        try TorchWriter.serialize(.dict([("model", .dict([("w", .tensor(Tensor(zeros: [2])))]))])).write(to: url)
        do {
            _ = try Denoiser.load(url)
            Issue.record("a file without denoiser keys must fail")
        } catch {
            #expect("\(error)".contains("not a DVT denoiser in the official layout"), "\(error)")
        }
    }
}
