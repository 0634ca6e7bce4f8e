import Foundation
import TensorCore

/// A `torch.save` zip archive, opened read-only and validated: the zip directory, the pickle
/// (restricted: see `RestrictedUnpickler`) and every storage the pickle declares (its record must
/// exist with exactly the declared byte size). Tensors are materialised on demand, converted to
/// float32 (fp16 and bf16 exactly, float64 rounded, integers and bools as numbers).
///
/// Layout (torch/serialization.py `_save`, caffe2/serialize/inline_container.h):
/// `<name>/data.pkl` (pickle protocol 2; tensors as `torch._utils._rebuild_tensor_v2` of a
/// persistent id ('storage', torch.<T>Storage, key, location, numel)), `<name>/data/<key>` (raw
/// little-endian storage bytes), `<name>/byteorder` ("little"; absent in files from torch < 1.10),
/// `<name>/version`.
public final class TorchArchive: @unchecked Sendable {
    public let path: String
    /// The unpickled object: for a state dict a `.dict` of string keys to `.tensor`s.
    public let root: PickleValue
    private let data: Data
    private let entries: [String: TorchZipEntry]
    private let prefix: String

    /// The first bytes of a pre-1.6 (legacy, non-zip) `torch.save` file: PROTO 2, then the
    /// magic number 0x1950a86a20f9469cfc6c as a LONG1.
    static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    /// Opens `url` (memory-mapped when possible).
    public convenience init(url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw TorchFormatError(path: url.path, message: "cannot read: \(error.localizedDescription)")
        }
        try self.init(data: data, name: url.path)
    }

    /// Parses an in-memory archive. `name` is used in error messages.
    public init(data: Data, name: String = "<memory>") throws {
        self.data = data
        path = name
        let fail = { (m: String) in TorchFormatError(path: name, message: m) }
        var entries: [String: TorchZipEntry] = [:]
        var prefix = ""
        var root = PickleValue.none
        try data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in
            if buf.count >= 14, Array(buf[0..<14]) == Self.legacyMagic {
                throw fail("a legacy torch.save file (the pre-1.6 format: a bare pickle stream, not a zip archive); it is not read. Re-save it with a current PyTorch: torch.save(torch.load(f, weights_only=True), \"new.pth\"), or convert it to safetensors")
            }
            if buf.count >= 262, Array(buf[257..<262]) == Array("ustar".utf8) {
                throw fail("a tar archive: the oldest (torch < 0.4) torch.save format, which is not read; re-save it with a current PyTorch")
            }
            guard buf.count >= 4, buf[0] == 0x50, buf[1] == 0x4B else {
                throw fail("not a zip archive (PyTorch .pth files since 1.6 are zip archives starting with 'PK')")
            }
            entries = try TorchZip.entries(buf, fail: fail)
            let pickles = entries.keys.filter { $0.hasSuffix("/data.pkl") && $0.split(separator: "/", omittingEmptySubsequences: false).count == 2 }
            guard pickles.count == 1, let pkl = pickles.first else {
                throw fail(pickles.isEmpty ? "zip archive without a <name>/data.pkl record: not a torch.save checkpoint (a TorchScript or .npz archive?)"
                           : "zip archive with \(pickles.count) data.pkl records")
            }
            prefix = String(pkl.dropLast("data.pkl".count))
            if let order = entries[prefix + "byteorder"] {
                let b = try TorchZip.checkedBytes(buf, order, fail: fail)
                let s = String(decoding: b, as: UTF8.self)
                guard s == "little" else { throw fail("byteorder record says \"\(s.prefix(16))\"; only little-endian archives are read") }
            }
            let pickle = try TorchZip.checkedBytes(buf, entries[pkl]!, fail: fail)
            let known = entries, dir = prefix
            root = try RestrictedUnpickler(bytes: pickle, storage: { dtype, key, count in
                let name = dir + "data/" + key
                guard let e = known[name] else { throw fail("the pickle declares storage \"\(key)\" but the archive has no record \(name)") }
                let (n, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
                guard !o, n == e.size else {
                    throw fail("storage \"\(key)\" declares \(count) × \(dtype.rawValue) (\(o ? "overflow" : "\(n) bytes")) but its record holds \(e.size) bytes")
                }
            }, fail: fail).run()
        }
        self.entries = entries
        self.prefix = prefix
        self.root = root
    }

    /// The tensor `ref` as float32, laid out row-major (strided views are gathered). `key` names
    /// the tensor in errors.
    public func tensor(_ ref: TorchTensorRef, key: String = "") throws -> Tensor {
        let fail = { (m: String) in TorchFormatError(path: self.path, message: (key.isEmpty ? "" : "tensor \"\(key)\": ") + m) }
        guard let e = entries[prefix + "data/" + ref.storageKey] else { throw fail("missing storage record \(ref.storageKey)") }
        let out = Tensor(zeros: ref.shape)
        try data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in
            let bytes = try TorchZip.checkedBytes(buf, e, fail: fail)
            out.withUnsafeMutableBufferPointer { dst in
                guard dst.count > 0 else { return }
                if ref.isContiguous {
                    #if _endian(little)
                    if ref.dtype == .float32 {  // the bytes already are the floats
                        UnsafeMutableRawPointer(dst.baseAddress!).copyMemory(from: bytes.baseAddress! + 4 * ref.offset, byteCount: 4 * dst.count)
                        return
                    }
                    #endif
                    for i in 0..<dst.count { dst[i] = Self.element(bytes, ref.dtype, ref.offset + i) }
                    return
                }
                // Strided view: walk the multi-index in row-major order.
                var index = [Int](repeating: 0, count: ref.shape.count)
                var src = ref.offset
                for i in 0..<dst.count {
                    dst[i] = Self.element(bytes, ref.dtype, src)
                    var d = ref.shape.count - 1
                    while d >= 0 {
                        index[d] += 1
                        src += ref.strides[d]
                        if index[d] < ref.shape[d] { break }
                        src -= ref.strides[d] * ref.shape[d]
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        return out
    }

    /// Element `i` of a little-endian storage, as Float.
    @inline(__always)
    static func element(_ b: UnsafeRawBufferPointer, _ dtype: TorchDType, _ i: Int) -> Float {
        switch dtype {
        case .float32: return Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        case .float16: return torchHalfToFloat(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        case .bfloat16: return Float(bitPattern: UInt32(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
        case .float64: return Float(Double(bitPattern: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
        case .int64: return Float(Int64(littleEndian: b.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
        case .int32: return Float(Int32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
        case .int16: return Float(Int16(littleEndian: b.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
        case .int8: return Float(b.load(fromByteOffset: i, as: Int8.self))
        case .uint8: return Float(b[i])
        case .bool: return b[i] != 0 ? 1 : 0
        }
    }

    /// The tensors of a state dict (a dict with string keys), as float32. Entries whose value is
    /// not a tensor (e.g. `_extra_state` scalars) are skipped; a non-dict or a non-string key is
    /// an error naming `what`.
    public func tensors(in value: PickleValue, what: String = "state dict") throws -> [String: Tensor] {
        guard case .dict(let entries) = value else {
            throw TorchFormatError(path: path, message: "\(what) is a \(value.typeName), expected a dict of tensors")
        }
        var out: [String: Tensor] = [:]
        for (k, v) in entries {
            guard case .string(let key) = k else { throw TorchFormatError(path: path, message: "\(what) has a \(k.typeName) key, expected strings") }
            if case .tensor(let ref) = v { out[key] = try tensor(ref, key: key) }
        }
        return out
    }

    /// Shapes of a state dict's tensors without reading their data.
    public func shapes(in value: PickleValue) -> [String: [Int]] {
        guard case .dict(let entries) = value else { return [:] }
        var out: [String: [Int]] = [:]
        for (k, v) in entries { if case .string(let key) = k, case .tensor(let ref) = v { out[key] = ref.shape } }
        return out
    }
}

/// IEEE binary16 → binary32, exact, by bit operations (a file-local twin of the safetensors
/// reader's converter, so this module does not depend on Vision).
@inline(__always)
func torchHalfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1F
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0 {
        let magnitude = Float(mantissa) * 0x1p-24  // zero or subnormal
        return sign != 0 ? -magnitude : magnitude
    }
    if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
}
