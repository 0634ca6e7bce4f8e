import Foundation
import TensorCore

/// Writes `torch.save`-compatible zip archives of float32 state dicts, readable by
/// `torch.load(path, weights_only=True)`: the pickle uses only protocol-2 opcodes and the globals
/// torch's weights-only unpickler allows (`torch._utils._rebuild_tensor_v2`, `torch.FloatStorage`,
/// `collections.OrderedDict`); records are stored uncompressed, each storage's data aligned to
/// 64 bytes as torch's own writer does (`.storage_alignment`).
public enum TorchWriter {
    /// A value to pickle: nested string-keyed dicts of tensors, ints and strings.
    public indirect enum Value {
        case tensor(Tensor)
        case int(Int)
        case string(String)
        /// Entries in the given order (torch keeps a state dict's parameter order).
        case dict([(String, Value)])
    }

    /// The archive bytes for `value`, with records under `archiveName/`.
    public static func serialize(_ value: Value, archiveName: String = "archive") throws -> Data {
        var pickler = Pickler()
        pickler.bytes = [0x80, 0x02]  // PROTO 2
        pickler.save(value)
        pickler.bytes.append(0x2E)  // STOP
        var zip = ZipWriter()
        let p = archiveName + "/"
        zip.add(p + "data.pkl", pickler.bytes)
        zip.add(p + ".format_version", Array("1".utf8))
        zip.add(p + ".storage_alignment", Array("64".utf8))
        zip.add(p + "byteorder", Array("little".utf8))
        for (i, t) in pickler.storages.enumerated() {
            let raw = t.littleEndianFloat32Bytes()  // little-endian float32, torch's FloatStorage bytes
            zip.add(p + "data/\(i)", raw)
        }
        zip.add(p + "version", Array("3\n".utf8))
        return try zip.finish()
    }

    /// The pickler: dicts as EMPTY_DICT + MARK … SETITEMS, tensors as
    /// `_rebuild_tensor_v2(persistent storage, 0, size, stride, False, OrderedDict())`.
    struct Pickler {
        var bytes: [UInt8] = []
        var storages: [Tensor] = []

        mutating func save(_ v: Value) {
            switch v {
            case .int(let n): int(n)
            case .string(let s): string(s)
            case .dict(let entries):
                bytes.append(0x7D)  // EMPTY_DICT
                guard !entries.isEmpty else { return }
                bytes.append(0x28)  // MARK
                for (k, value) in entries { string(k); save(value) }
                bytes.append(0x75)  // SETITEMS
            case .tensor(let t): tensor(t)
            }
        }

        mutating func int(_ n: Int) {
            if n >= 0 && n < 256 {
                bytes += [0x4B, UInt8(n)]
            }  // BININT1
            else if n >= Int(Int32.min) && n <= Int(Int32.max) {
                bytes.append(0x4A); le(UInt64(UInt32(bitPattern: Int32(n))), 4)
            }  // BININT
            else {
                bytes += [0x8A, 8]; le(UInt64(bitPattern: Int64(n)), 8)
            }  // LONG1
        }

        mutating func string(_ s: String) {
            let u = Array(s.utf8)
            bytes.append(0x58)  // BINUNICODE
            le(UInt64(u.count), 4)
            bytes += u
        }

        mutating func global(_ module: String, _ name: String) {
            bytes.append(0x63)
            bytes += Array("\(module)\n\(name)\n".utf8)
        }

        mutating func tuple(_ items: [Int]) {
            bytes.append(0x28)  // MARK
            for i in items { int(i) }
            bytes.append(0x74)  // TUPLE
        }

        mutating func tensor(_ t: Tensor) {
            let key = storages.count
            storages.append(t)
            global("torch._utils", "_rebuild_tensor_v2")
            bytes.append(0x28)  // MARK (arguments)
            bytes.append(0x28)  // MARK (persistent id)
            string("storage"); global("torch", "FloatStorage"); string(String(key)); string("cpu"); int(t.count)
            bytes.append(0x74)  // TUPLE
            bytes.append(0x51)  // BINPERSID
            int(0)  // storage offset
            tuple(t.shape)
            var strides = [Int](repeating: 1, count: t.shape.count)
            for d in stride(from: t.shape.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * t.shape[d + 1] }
            tuple(strides)
            bytes.append(0x89)  // NEWFALSE (requires_grad)
            global("collections", "OrderedDict"); bytes.append(0x29); bytes.append(0x52)  // OrderedDict()
            bytes.append(0x74)  // TUPLE
            bytes.append(0x52)  // REDUCE
        }

        mutating func le(_ v: UInt64, _ n: Int) {
            for i in 0..<n { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
        }
    }

    /// A minimal stored-only zip writer (no data descriptors, no zip64: archives up to 4 GiB).
    struct ZipWriter {
        var out: [UInt8] = []
        var central: [UInt8] = []
        var count = 0
        static let alignment = 64

        mutating func add(_ name: String, _ data: [UInt8]) {
            let nameBytes = Array(name.utf8)
            let offset = out.count
            // Pad the local header's extra field so the data starts on a 64-byte boundary, as
            // torch's writer does (extra id "FB", filler 'Z').
            var pad = (Self.alignment - (offset + 30 + nameBytes.count) % Self.alignment) % Self.alignment
            if pad > 0 && pad < 4 { pad += Self.alignment }
            let crc = CRC32.checksum(data)
            func header(_ sig: UInt32, central: Bool, extra: Int) -> [UInt8] {
                var h: [UInt8] = []
                func w(_ v: Int, _ n: Int) { for i in 0..<n { h.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
                w(Int(sig), 4)
                if central { w(20, 2) }  // version made by
                w(20, 2); w(0x0800, 2); w(0, 2)  // version needed, flags (UTF-8 names), method stored
                w(0, 2); w(0x21, 2)  // time, date (1980-01-01)
                w(Int(crc), 4); w(data.count, 4); w(data.count, 4)
                w(nameBytes.count, 2); w(extra, 2)
                if central { w(0, 2); w(0, 2); w(0, 2); w(0, 4); w(offset, 4) }  // comment, disk, attrs, offset
                return h
            }
            out += header(0x0403_4B50, central: false, extra: pad)
            out += nameBytes
            if pad > 0 {
                out += [0x46, 0x42, UInt8((pad - 4) & 0xFF), UInt8((pad - 4) >> 8)]
                out += [UInt8](repeating: 0x5A, count: pad - 4)
            }
            out += data
            central += header(0x0201_4B50, central: true, extra: 0)
            central += nameBytes
            count += 1
        }

        mutating func finish() throws -> Data {
            let cdOffset = out.count
            guard cdOffset + central.count < Int(UInt32.max), count < 0xFFFF else {
                throw TorchFormatError(
                    path: "<writer>", message: "archive of \(cdOffset) bytes / \(count) records needs zip64, which the writer does not produce")
            }
            out += central
            var e: [UInt8] = []
            func w(_ v: Int, _ n: Int) { for i in 0..<n { e.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
            w(0x0605_4B50, 4); w(0, 2); w(0, 2); w(count, 2); w(count, 2); w(central.count, 4); w(cdOffset, 4); w(0, 2)
            out += e
            return Data(out)
        }
    }
}
