import Foundation
import TensorCore
import TestSupport
import Testing

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

    /// Hostile shapes the unpickler must refuse with an error naming the file: containers nested
    /// past the depth bound by every way a pickle can nest them (a SIGSEGV when the 30 000-deep
    /// list was freed), self-references, and more objects than the bound.
    static let hostile: [(name: String, pickle: [UInt8], expected: String)] = {
        func repeated(_ b: [UInt8], _ n: Int) -> [UInt8] { Array([[UInt8]](repeating: b, count: n).joined()) }
        func longPut(_ i: Int) -> [UInt8] { [0x72] + (0..<4).map { UInt8(truncatingIfNeeded: i >> (8 * $0)) } }
        func longGet(_ i: Int) -> [UInt8] { [0x6A] + (0..<4).map { UInt8(truncatingIfNeeded: i >> (8 * $0)) } }
        let deep = "nests containers more than 199 deep"
        // Lists made first and linked later through the memo, innermost first (heights grow) and
        // outermost first (each link changes a list that is already inside another).
        let chain = 1000
        let made = Array((0..<chain).map { [0x5D] + longPut($0) + [0x30] }.joined())
        let inward = Array((0..<(chain - 1)).reversed().map { longGet($0) + longGet($0 + 1) + [0x61, 0x30] }.joined())
        let outward = Array((0..<(chain - 1)).map { longGet($0) + longGet($0 + 1) + [0x61, 0x30] }.joined())
        return [
            ("lists (EMPTY_LIST × N, APPEND × N−1)", repeated([0x5D], 30_000) + repeated([0x61], 29_999), deep),
            ("tuples (MARK × N, TUPLE × N)", repeated([0x28], 100_000) + repeated([0x74], 100_000), deep),
            ("tuples (EMPTY_TUPLE, TUPLE1 × N)", [0x29] + repeated([0x85], 100_000), deep),
            ("lists (MARK, EMPTY_LIST, APPENDS) × N", repeated([0x5D, 0x28], 50_000) + [0x5D] + repeated([0x65], 50_000), deep),
            ("lists (MARK … LIST) × N", repeated([0x28], 50_000) + repeated([0x6C], 50_000), deep),
            ("dicts (EMPTY_DICT, key) × N, SETITEM × N", repeated([0x7D, 0x4E], 50_000) + [0x7D] + repeated([0x73], 50_000), deep),
            ("dicts (MARK, key … DICT) × N", repeated([0x28, 0x4E], 50_000) + [0x7D] + repeated([0x64], 50_000), deep),
            ("lists linked through the memo, innermost first", made + inward + longGet(0), deep),
            ("lists linked through the memo, outermost first", made + outward + longGet(0), "after placing it inside another container"),
            ("a list appended to itself", [0x5D, 0x71, 0x00, 0x68, 0x00, 0x61], "after placing it inside another container"),
            ("more objects than the bound (DUP × N)", [0x4E] + repeated([0x32], RestrictedUnpickler.maxObjects), "builds more than 2000000 objects"),
        ]
    }()

    @Test("hostile nesting, self-references and object counts are refused, naming the file", arguments: 0..<hostile.count)
    func hostilePickle(_ index: Int) throws {
        let (name, body, expected) = Self.hostile[index]
        var zip = TorchWriter.ZipWriter()
        zip.add("deep/data.pkl", [0x80, 0x02] + body + [0x2E])
        zip.add("deep/byteorder", Array("little".utf8))
        zip.add("deep/version", Array("3\n".utf8))
        let data = try zip.finish()
        do {
            _ = try TorchArchive(data: data, name: "deep.pth")
            Issue.record("\(name): no error")
        } catch let e as TorchFormatError {
            #expect(e.description.hasPrefix("PyTorch file deep.pth: ") && e.message.contains(expected), "\(name): \(e.message)")
        }
    }

    @Test("the bounds leave real shapes alone: 150 levels of nesting and a list of 100 000 values read")
    func boundsAreLoose() throws {
        var b = PickleBuilder()
        b.op(contentsOf: [UInt8](repeating: 0x5D, count: 150) + [UInt8](repeating: 0x61, count: 149))
        var v = try TorchArchive(data: try b.archive([:])).root
        var levels = 1
        while case .list(let items) = v, let first = items.first { v = first; levels += 1 }
        #expect(levels == 150)
        var wide = PickleBuilder()
        wide.op(contentsOf: [0x5D, 0x28] + [UInt8](repeating: 0x4E, count: 100_000) + [0x65])
        guard case .list(let items) = try TorchArchive(data: try wide.archive([:])).root else { Issue.record("not a list"); return }
        #expect(items.count == 100_000)
    }
}
