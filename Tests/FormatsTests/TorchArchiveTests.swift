import Foundation
import TensorCore
import TestSupport
import Testing

@testable import Formats

/// Builds pickles by hand for the reader's refusal and layout paths.
struct PickleBuilder {
    var p = TorchWriter.Pickler()
    init() { p.bytes = [0x80, 0x02] }
    mutating func op(_ b: UInt8...) { p.bytes += b }
    mutating func op(contentsOf b: [UInt8]) { p.bytes += b }
    /// A tensor view of storage `key` (float32, `count` elements).
    mutating func tensor(key: String, count: Int, offset: Int, shape: [Int], strides: [Int], dtype: String = "FloatStorage") {
        p.global("torch._utils", "_rebuild_tensor_v2")
        op(0x28, 0x28)
        p.string("storage"); p.global("torch", dtype); p.string(key); p.string("cpu"); p.int(count)
        op(0x74, 0x51)
        p.int(offset); p.tuple(shape); p.tuple(strides)
        op(0x89)
        p.global("collections", "OrderedDict"); op(0x29, 0x52)
        op(0x74, 0x52)
    }
    /// The archive: this pickle (STOP appended) plus the given storage records.
    func archive(_ storages: [String: [UInt8]]) throws -> Data {
        var zip = TorchWriter.ZipWriter()
        zip.add("t/data.pkl", p.bytes + [0x2E])
        zip.add("t/byteorder", Array("little".utf8))
        for (k, v) in storages.sorted(by: { $0.key < $1.key }) { zip.add("t/data/\(k)", v) }
        return try zip.finish()
    }
}

func floatBytes(_ v: [Float]) -> [UInt8] {
    v.flatMap { f -> [UInt8] in
        let b = f.bitPattern; return [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: b >> $0) }
    }
}

func errorText(_ body: () throws -> Void) -> String? {
    do { try body(); return nil } catch { return "\(error)" }
}

@Suite("PyTorch .pth reader and writer")
struct TorchArchiveTests {
    static let dir = fixturesDirectory.appendingPathComponent("pth")

    @Test("writer output reads back: nested dicts, ints, strings, tensor values and shapes")
    func roundTrip() throws {
        let a = randn([3, 4, 5], seed: 1, requiresGrad: false), b = randn([7], seed: 2, requiresGrad: false)
        let s = Tensor(zeros: [])  // a 0-d tensor
        let value = TorchWriter.Value.dict([
            ("denoiser", .dict([("w", .tensor(a)), ("b", .tensor(b)), ("s", .tensor(s))])),
            ("step", .int(123_456)), ("neg", .int(-5)), ("big", .int(1 << 40)), ("note", .string("héllo")),
        ])
        let data = try TorchWriter.serialize(value)
        let archive = try TorchArchive(data: data)
        #expect(archive.root["step"] == .int(123_456))
        #expect(archive.root["neg"] == .int(-5))
        #expect(archive.root["big"] == .int(1 << 40))
        #expect(archive.root["note"] == .string("héllo"))
        let sd = try archive.tensors(in: archive.root["denoiser"]!)
        #expect(sd["w"]!.shape == [3, 4, 5] && sd["w"]!.scalars == a.scalars)
        #expect(sd["b"]!.scalars == b.scalars)
        #expect(sd["s"]!.shape == [] && sd["s"]!.scalars == [0])
        // Key order is kept (torch state dicts are ordered).
        guard case .dict(let entries)? = archive.root["denoiser"] else { Issue.record("no dict"); return }
        #expect(entries.map(\.key) == [.string("w"), .string("b"), .string("s")])
        // Every storage record starts on a 64-byte boundary, as torch's writer aligns them.
        let raw = [UInt8](data)
        let first = floatBytes(Array(a.scalars.prefix(4)))
        let at = (0...(raw.count - 16)).first { Array(raw[$0..<($0 + 16)]) == first }
        #expect(at.map { $0 % 64 } == 0)
    }

    @Test("a pickle naming a disallowed global is refused with the global named")
    func refusesGlobals() throws {
        for (module, name) in [("os", "system"), ("builtins", "eval"), ("torch", "load"), ("collections", "namedtuple")] {
            var b = PickleBuilder()
            b.p.global(module, name)
            b.p.string("echo pwned"); b.op(0x85, 0x52)  // TUPLE1, REDUCE
            let data = try b.archive([:])
            let msg = errorText { _ = try TorchArchive(data: data) }
            #expect(msg?.contains("\(module).\(name)") == true, "\(msg ?? "no error")")
            #expect(msg?.contains("nothing was executed") == true)
        }
    }

    @Test("strided views are gathered in row-major order")
    func strides() throws {
        var b = PickleBuilder()
        b.op(0x7D, 0x28)  // EMPTY_DICT, MARK
        b.p.string("t"); b.tensor(key: "0", count: 8, offset: 1, shape: [2, 3], strides: [1, 2])  // transposed (3, 2) view
        b.p.string("e"); b.tensor(key: "0", count: 8, offset: 0, shape: [3, 0], strides: [0, 1])
        b.op(0x75)
        let archive = try TorchArchive(data: try b.archive(["0": floatBytes((0..<8).map(Float.init))]))
        let sd = try archive.tensors(in: archive.root)
        // element (i, j) = storage[1 + i + 2j]
        #expect(sd["t"]!.scalars == [1, 3, 5, 2, 4, 6])
        #expect(sd["e"]!.shape == [3, 0])
    }

    @Test("views outside their storage and storages of the wrong size are refused")
    func bounds() throws {
        var b = PickleBuilder()
        b.tensor(key: "0", count: 4, offset: 1, shape: [2, 2], strides: [2, 1])  // reaches element 4 of 4
        let msg = errorText { _ = try TorchArchive(data: try b.archive(["0": floatBytes([0, 1, 2, 3])])) }
        #expect(msg?.contains("reaches element 4") == true, "\(msg ?? "no error")")
        var c = PickleBuilder()
        c.tensor(key: "0", count: 1_000_000_000, offset: 0, shape: [1], strides: [1])  // declares 4 GB
        let msg2 = errorText { _ = try TorchArchive(data: try c.archive(["0": floatBytes([0])])) }
        #expect(msg2?.contains("its record holds 4 bytes") == true, "\(msg2 ?? "no error")")
        var d = PickleBuilder()
        d.tensor(key: "9", count: 1, offset: 0, shape: [1], strides: [1])
        let msg3 = errorText { _ = try TorchArchive(data: try d.archive([:])) }
        #expect(msg3?.contains("no record t/data/9") == true, "\(msg3 ?? "no error")")
    }

    @Test("legacy, tar, compressed and unknown files get errors saying what they are")
    func otherFormats() throws {
        let legacy = Data(TorchArchive.legacyMagic + [0x2E])
        #expect(errorText { _ = try TorchArchive(data: legacy) }?.contains("legacy torch.save file") == true)
        var tar = [UInt8](repeating: 0, count: 600)
        tar.replaceSubrange(257..<262, with: Array("ustar".utf8))
        #expect(errorText { _ = try TorchArchive(data: Data(tar)) }?.contains("tar archive") == true)
        #expect(errorText { _ = try TorchArchive(data: Data("hello".utf8)) }?.contains("not a zip archive") == true)
        // A zip without data.pkl (e.g. a numpy .npz).
        var zip = TorchWriter.ZipWriter()
        zip.add("arr_0.npy", [1, 2, 3])
        #expect(errorText { _ = try TorchArchive(data: try zip.finish()) }?.contains("without a <name>/data.pkl") == true)
        // A compressed record (method 8 patched into both headers).
        var bytes = [UInt8](try TorchWriter.serialize(.dict([("a", .int(1))])))
        for sig: [UInt8] in [[0x50, 0x4B, 0x03, 0x04], [0x50, 0x4B, 0x01, 0x02]] {
            var i = 0
            while i + 4 <= bytes.count {
                if Array(bytes[i..<(i + 4)]) == sig { bytes[i + (sig[2] == 3 ? 8 : 10)] = 8 }
                i += 1
            }
        }
        #expect(errorText { _ = try TorchArchive(data: Data(bytes)) }?.contains("compressed (zip method 8)") == true)
    }

    @Test("a storage byte flipped fails the CRC check")
    func crc() throws {
        let data = try TorchWriter.serialize(.dict([("w", .tensor(randn([64], seed: 3, requiresGrad: false)))]))
        let archive = try TorchArchive(data: data)
        let ref: TorchTensorRef
        guard case .tensor(let r)? = archive.root["w"] else { Issue.record("no tensor"); return }
        ref = r
        var bytes = [UInt8](data)
        let first = floatBytes(Array(try archive.tensor(ref).scalars.prefix(4)))
        let at = (0...(bytes.count - 16)).first { Array(bytes[$0..<($0 + 16)]) == first }!
        bytes[at + 100] ^= 0x10
        let flipped = try TorchArchive(data: Data(bytes))  // the pickle is intact
        let msg = errorText { _ = try flipped.tensors(in: flipped.root) }
        #expect(msg?.contains("CRC-32") == true && msg?.contains("tensor \"w\"") == true, "\(msg ?? "no error")")
    }

    @Test("the fixtures parse: official layout, bare, fp16, bf16, hub names")
    func fixtures() throws {
        let official = try TorchArchive(url: Self.dir.appendingPathComponent("denoiser_official.pth"))
        #expect(official.root["step"] == .int(1234))
        #expect(official.shapes(in: official.root["denoiser"]!)["pos_embed"] == [1, 36, 128])
        let fp16 = try TorchArchive(url: Self.dir.appendingPathComponent("denoiser_fp16.pth"))
        let bare = try TorchArchive(url: Self.dir.appendingPathComponent("denoiser_state_dict.pth"))
        let a = try fp16.tensors(in: fp16.root["denoiser"]!), b = try bare.tensors(in: bare.root)
        #expect(Set(a.keys) == Set(b.keys) && a.count == 13)
        for (k, v) in b {  // fp16 rounding: relative error <= 2^-11 (normal range)
            let w = a[k]!.scalars
            for (x, y) in zip(v.scalars, w) { #expect(abs(x - y) <= 1e-3 * abs(x) + 1e-7, "\(k)") }
        }
        let bf16 = try TorchArchive(url: Self.dir.appendingPathComponent("deit3_b16_tiny_bf16.pth"))
        #expect(try bf16.tensors(in: bf16.root).count == 34)
    }
}

extension TorchArchiveTests {
    @Test("zip64 end records are followed when the classic record says 0xFFFF…; CRC matches zlib's check value")
    func zip64() throws {
        var b = [UInt8](try Data(contentsOf: Self.dir.appendingPathComponent("denoiser_official.pth")))
        let eocd = (0...(b.count - 22)).reversed().first { b[$0] == 0x50 && b[$0 + 1] == 0x4B && b[$0 + 2] == 5 && b[$0 + 3] == 6 }!
        for i in 8..<20 { b[eocd + i] = 0xFF }  // entry counts, directory size and offset
        let archive = try TorchArchive(data: Data(b))
        #expect(archive.root["step"] == .int(1234))
        // A zip64 record pointing nowhere is an error, not a crash.
        let loc = eocd - 20
        for i in 8..<16 { b[loc + i] = 0x7F }
        #expect(errorText { _ = try TorchArchive(data: Data(b)) } != nil)
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        let long = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        // Slicing-by-8 equals the bitwise definition.
        var bitwise: UInt32 = 0xFFFF_FFFF
        for x in long {
            bitwise ^= UInt32(x)
            for _ in 0..<8 { bitwise = (bitwise & 1) != 0 ? 0xEDB8_8320 ^ (bitwise >> 1) : bitwise >> 1 }
        }
        #expect(CRC32.checksum(long) == ~bitwise)
        // Split checksums must agree with one pass (seeded continuation).
        let whole = CRC32.checksum(long)
        let part = CRC32.checksum(long[0..<333])
        let rest = CRC32.checksum(long[333...], seed: part)
        #expect(rest == whole)
        // The mapped-bytes form agrees with the array form on any range.
        let region = ReadOnlyBytes(copying: long)
        #expect(region.crc32(0..<1000) == whole)
        #expect(region.crc32(333..<1000, seed: region.crc32(0..<333)) == whole)
    }
}

extension TorchArchiveTests {
    /// module_state_dict.pth comes from real torch (make_module_fixture.py next to it): a module's
    /// state_dict() (an OrderedDict whose _metadata arrives through BUILD), an nn.Parameter, strided
    /// views sharing one storage, fp16/int64/bool storages and plain Python values.
    @Test("a real torch.save of state_dict(), Parameter, strided views, fp16/int64/bool and Python values")
    func realTorchFile() throws {
        let a = try TorchArchive(url: Self.dir.appendingPathComponent("module_state_dict.pth"))
        let sd = try a.tensors(in: a.root["state_dict"]!)
        #expect(sd.keys.sorted() == ["0.bias", "0.weight", "1.bias", "1.weight"])
        #expect(sd["0.weight"]!.shape == [4, 3])
        expectClose(Array(sd["0.weight"]!.scalars.prefix(4)), [-0.004322517663240433, 0.3097158372402191, -0.4751853346824646, -0.4248946011066437])
        expectClose(sd["0.bias"]!.scalars, [-0.55157071352005, -0.3823687434196472, -0.2379971146583557, 0.021387115120887756])
        let all = try a.tensors(in: a.root)
        #expect(all["param"]!.scalars == [1.5, -2.0])
        #expect(all["transposed"]!.shape == [6, 4])
        #expect(all["transposed"]!.scalars == (0..<6).flatMap { i in (0..<4).map { j in Float(i + 6 * j) } })
        #expect(all["slice"]!.scalars == [6, 8, 10, 12, 14, 16])
        #expect(all["half"]!.scalars == [0.0999755859375, 65504, Float(-5.960464477539063e-08)])
        #expect(all["long"]!.scalars == [3, -7, 1_099_511_627_776])
        #expect(all["flags"]!.scalars == [1, 0, 1])
        #expect(a.root["nested"] == .list([.int(1), .float(2.5), .string("x"), .none, .tuple([.bool(true), .bool(false)])]))
    }

    @Test("expanded (overlapping) views are refused, bounding allocations by the file size")
    func expandedViews() throws {
        var b = PickleBuilder()
        b.tensor(key: "0", count: 1, offset: 0, shape: [1_000_000_000], strides: [0])
        let msg = errorText { _ = try TorchArchive(data: try b.archive(["0": floatBytes([1])])) }
        #expect(msg?.contains("overlapping view") == true, "\(msg ?? "no error")")
    }
}
