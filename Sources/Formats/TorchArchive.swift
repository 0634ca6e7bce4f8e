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
    private let bytes: ReadOnlyBytes
    private let entries: [String: TorchZipEntry]
    private let prefix: String

    /// The first bytes of a pre-1.6 (legacy, non-zip) `torch.save` file: PROTO 2, then the
    /// magic number 0x1950a86a20f9469cfc6c as a LONG1.
    static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    /// Opens `url` (memory-mapped when possible).
    public convenience init(url: URL) throws {
        let bytes: ReadOnlyBytes
        do {
            bytes = try ReadOnlyBytes.map(url)
        } catch let e as FileReadError {
            throw TorchFormatError(path: url.path, message: "cannot read: \(e.message)")
        }
        try self.init(bytes: bytes, name: url.path)
    }

    /// Parses an in-memory archive. `name` is used in error messages.
    public convenience init(data: Data, name: String = "<memory>") throws {
        try self.init(bytes: ReadOnlyBytes.copy(data), name: name)
    }

    init(bytes buf: ReadOnlyBytes, name: String) throws {
        self.bytes = buf
        path = name
        let fail = { (m: String) in TorchFormatError(path: name, message: m) }
        var entries: [String: TorchZipEntry] = [:]
        var prefix = ""
        var root = PickleValue.none
        do {
            if buf.count >= 14, buf.bytes(0..<14) == Self.legacyMagic {
                throw fail(
                    "a legacy torch.save file (the pre-1.6 format: a bare pickle stream, not a zip archive); it is not read. Re-save it with a current PyTorch: torch.save(torch.load(f, weights_only=True), \"new.pth\"), or convert it to safetensors"
                )
            }
            if buf.count >= 262, buf.bytes(257..<262) == Array("ustar".utf8) {
                throw fail("a tar archive: the oldest (torch < 0.4) torch.save format, which is not read; re-save it with a current PyTorch")
            }
            guard buf.count >= 4, buf[0] == 0x50, buf[1] == 0x4B else {
                throw fail("not a zip archive (PyTorch .pth files since 1.6 are zip archives starting with 'PK')")
            }
            entries = try TorchZip.entries(buf, fail: fail)
            let pickles = entries.keys.filter { $0.hasSuffix("/data.pkl") && $0.split(separator: "/", omittingEmptySubsequences: false).count == 2 }
            guard pickles.count == 1, let pkl = pickles.first else {
                throw fail(
                    pickles.isEmpty
                        ? "zip archive without a <name>/data.pkl record: not a torch.save checkpoint (a TorchScript or .npz archive?)"
                        : "zip archive with \(pickles.count) data.pkl records")
            }
            prefix = String(pkl.dropLast("data.pkl".count))
            if let order = entries[prefix + "byteorder"] {
                let s = buf.string(try TorchZip.checkedRange(buf, order, fail: fail))
                guard s == "little" else { throw fail("byteorder record says \"\(s.prefix(16))\"; only little-endian archives are read") }
            }
            let pickle = buf.bytes(try TorchZip.checkedRange(buf, entries[pkl]!, fail: fail))
            let known = entries, dir = prefix
            root = try RestrictedUnpickler(
                bytes: pickle,
                storage: { dtype, key, count in
                    let name = dir + "data/" + key
                    guard let e = known[name] else { throw fail("the pickle declares storage \"\(key)\" but the archive has no record \(name)") }
                    let (n, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
                    guard !o, n == e.size else {
                        throw fail(
                            "storage \"\(key)\" declares \(count) × \(dtype.rawValue) (\(o ? "overflow" : "\(n) bytes")) but its record holds \(e.size) bytes"
                        )
                    }
                }, fail: fail
            ).run()
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
        let record = try TorchZip.checkedRange(bytes, e, fail: fail)
        if ref.isContiguous {
            return Tensor.decoding(bytes, at: record.lowerBound + ref.dtype.byteSize * ref.offset, as: ref.dtype.stored, shape: ref.shape)
        }
        // Strided view: TensorCore walks the multi-index in row-major order.
        return Tensor.decoding(bytes, record: record, as: ref.dtype.stored, elementOffset: ref.offset, strides: ref.strides, shape: ref.shape)
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
