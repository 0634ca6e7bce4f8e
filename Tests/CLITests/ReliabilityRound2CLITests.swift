import ArgumentParser
import Foundation
import TensorCore
import TestSupport
import Testing

@testable import DVTCommands
@testable import Formats

/// The second hostile-user campaign end to end: a deeply nested .pth, a key the schema and the
/// command disagreed on, and the documented handling of a symlinked sub-folder of the output folder.
@Suite("Reliability: nested pickles, one validation, symlinked output folders")
struct ReliabilityRound2CLITests {
    /// A .pth whose data.pkl is `body` (PROTO 2 and STOP added), with byteorder and version.
    func pth(_ body: [UInt8], at url: URL) throws {
        var zip = TorchWriter.ZipWriter()
        zip.add("deep/data.pkl", [0x80, 0x02] + body + [0x2E])
        zip.add("deep/byteorder", Array("little".utf8))
        zip.add("deep/version", Array("3\n".utf8))
        try zip.finish().write(to: url)
    }

    @Test("dvt denoise --denoiser on a 30 000-deep list or a 100 000-deep tuple pickle is a clear error naming the file, not a SIGSEGV")
    func deepPickle() throws {
        let dir = temporaryDirectory("deep-pth")
        defer { try? FileManager.default.removeItem(at: dir) }
        let feats = dir.appendingPathComponent("feats")
        try FileManager.default.createDirectory(at: feats, withIntermediateDirectories: true)
        var rng = RandomGenerator(seed: 1)
        try Npy.write(Tensor.normal([6, 6, 64], rng: &rng), to: feats.appendingPathComponent("a.npy"))
        let lists = [UInt8](repeating: 0x5D, count: 30_000) + [UInt8](repeating: 0x61, count: 29_999)
        let tuples = [UInt8](repeating: 0x28, count: 100_000) + [UInt8](repeating: 0x74, count: 100_000)
        for (name, body) in [("lists.pth", lists), ("tuples.pth", tuples)] {
            let file = dir.appendingPathComponent(name)
            try pth(body, at: file)
            let out = dir.appendingPathComponent("out-\(name)")
            let m = dvtError(["denoise", "--denoiser", file.path, "--features", feats.path, "--out", out.path])
            #expect(m.contains("PyTorch file \(file.path)") && m.contains("nests containers more than 199 deep"), "\(m)")
            #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("a.npy").path))
        }
    }

    @Test("stage1.lr = 0 is refused by dvt config as dvt stage1 refuses it: one validation")
    func stage1LearningRate() throws {
        let m = dvtError(["config", "--set", "stage1.lr=0"])
        #expect(m.contains("stage1.lr") && m.contains("is invalid"), "\(m)")
        #expect(dvtError(["config", "--set", "stage1.lr=1e-6"]) == "no error")
    }

    @Test("a symlinked sub-folder of the output folder is followed: stage 2 writes into the link's target (docs/outputs.md)")
    func symlinkedSubfolder() throws {
        let dir = temporaryDirectory("symlink-out")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out"), scratch = dir.appendingPathComponent("scratch/stage2")
        var rng = RandomGenerator(seed: 4)
        let artifact = Tensor.normal([4, 4, 16], std: 0.5, rng: &rng)
        for i in 0..<4 {
            let target = Tensor.normal([4, 4, 16], rng: &rng)
            for (tree, t) in [("raw_features", withNoGrad { target + artifact }), ("denoised_features", target)] {
                let u = out.appendingPathComponent("\(tree)/tiny/img\(i).npy")
                try FileManager.default.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Npy.write(t, to: u)
            }
        }
        try Data((0..<4).map { "img\($0).jpg\n" }.joined().utf8).write(to: dir.appendingPathComponent("train.txt"))
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: out.appendingPathComponent("stage2"), withDestinationURL: scratch)
        let cfg = dir.appendingPathComponent("cfg.yaml")
        try Data(
            """
            model: tiny
            data_list: \(dir.appendingPathComponent("train.txt").path)
            output_dir: \(out.path)
            stage2:
              batch_size: 2
              num_iters: 4
              save_freq: 2
              val_freq: 0
              print_freq: 2
            """.utf8
        ).write(to: cfg)
        try runDVT(["stage2", cfg.path, "--quiet", "--threads", "1"])
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: out.appendingPathComponent("stage2").path)
        #expect(link == scratch.path)
        for file in ["metrics.jsonl", "denoiser.safetensors", "checkpoints/latest.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: scratch.appendingPathComponent(file).path), "\(file) not in the link's target")
        }
    }
}
