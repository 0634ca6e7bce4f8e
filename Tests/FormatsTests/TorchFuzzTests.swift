import Foundation
import TensorCore
import Testing
import TestSupport
@testable import Formats

/// Random mutations of real .pth files must give a clear error or a valid result, never a crash,
/// a hang or an unbounded allocation. Seeded, bounded: a few seconds.
@Suite("PyTorch .pth reader fuzz")
struct TorchFuzzTests {
    static let files = ["deit3_b16_tiny_bf16.pth", "denoiser_fp16.pth", "module_state_dict.pth"]

    /// Opens and reads every tensor of the state dict (wherever it is).
    static func exercise(_ data: Data) throws {
        let archive = try TorchArchive(data: data, name: "fuzz")
        let sd = archive.root["denoiser"] ?? archive.root
        _ = try archive.tensors(in: sd)
    }

    struct SplitMix {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    }

    @Test("mutated and truncated archives", arguments: files)
    func archive(_ name: String) throws {
        let original = [UInt8](try Data(contentsOf: fixturesDirectory.appendingPathComponent("pth/\(name)")))
        try Self.exercise(Data(original))
        var rng = SplitMix(state: 0xD1CE ^ UInt64(name.count))
        var errors = 0
        let pklEnd = min(4096, original.count), tail = max(0, original.count - 3000)  // the pickle and the central directory
        for i in 0..<150 {
            var b = original
            if i % 5 == 4 {
                b = Array(b.prefix(rng.below(b.count)))
            } else {
                for _ in 0..<(1 + rng.below(4)) {
                    let region = rng.below(3)
                    let at = region == 0 ? rng.below(pklEnd) : region == 1 ? tail + rng.below(b.count - tail) : rng.below(b.count)
                    b[at] = rng.below(4) == 0 ? [0x00, 0xFF, 0x7F, 0x80][rng.below(4)] : UInt8(rng.below(256))
                }
            }
            do { try Self.exercise(Data(b)) } catch let e as TorchFormatError {
                #expect(!e.message.isEmpty)
                errors += 1
            }
        }
        #expect(errors > 0)
    }

    /// The pickle is CRC-protected, so archive mutations rarely reach the unpickler; here the
    /// pickle itself is mutated and re-zipped with valid CRCs.
    @Test("mutated pickles inside valid archives", arguments: files)
    func pickle(_ name: String) throws {
        let data = try Data(contentsOf: fixturesDirectory.appendingPathComponent("pth/\(name)"))
        var records: [(String, [UInt8])] = []
        let buf = ReadOnlyBytes.copy(data)
        let entries = try TorchZip.entries(buf) { TorchFormatError(path: name, message: $0) }
        for e in entries.values.sorted(by: { $0.dataOffset < $1.dataOffset }) {
            records.append((e.name, buf.bytes(e.dataOffset..<(e.dataOffset + e.size))))
        }
        let pklIndex = records.firstIndex { $0.0.hasSuffix("/data.pkl") }!
        var rng = SplitMix(state: 0xBEEF ^ UInt64(name.count))
        for i in 0..<300 {
            var pkl = records[pklIndex].1
            if i % 6 == 5 {
                pkl = Array(pkl.prefix(rng.below(pkl.count)))
            } else {
                for _ in 0..<(1 + rng.below(3)) {
                    let at = rng.below(pkl.count)
                    switch rng.below(3) {
                    case 0: pkl[at] = UInt8(rng.below(256))
                    case 1: pkl.remove(at: at)
                    default: pkl.insert(UInt8(rng.below(256)), at: at)
                    }
                }
            }
            var zip = TorchWriter.ZipWriter()
            for (j, r) in records.enumerated() { zip.add(r.0, j == pklIndex ? pkl : r.1) }
            do { try Self.exercise(try zip.finish()) } catch let e as TorchFormatError {
                #expect(!e.message.isEmpty)
            }
        }
    }
}
