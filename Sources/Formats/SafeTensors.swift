import Foundation
import TensorCore

/// A malformed or unsupported safetensors file. The message names the file and, where one is
/// involved, the tensor key and its declared shape.
public struct SafeTensorsError: Error, CustomStringConvertible, LocalizedError {
    public let path: String
    public let key: String?
    public let shape: [Int]?
    public let message: String

    public var description: String {
        var s = "safetensors file \(path)"
        if let key { s += ", tensor \"\(key.count > 120 ? String(key.prefix(120)) + "…" : key)\"" }
        if let shape { s += " (shape \(shape))" }
        return s + ": " + message
    }

    public var errorDescription: String? { description }
}

/// Element types defined by the safetensors format.
///
/// All of them are understood structurally (sizes are validated on open). `tensor(_:)` converts
/// F32, F16 and BF16 (the float formats checkpoints use), plus F64 (rounded to float32) and the
/// small integer types U8, I8, U16, I16 (exact in float32; image fixtures store uint8 pixels).
/// Any other dtype (BOOL, F8_*, I32, U32, I64, U64) is metadata-only: `shape(of:)` and
/// `dtype(of:)` work, `tensor(_:)` throws "unsupported dtype" naming the key. A dtype string
/// outside the format's list makes the whole file fail to open (its size is unknown, so the
/// layout cannot be validated).
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64

    public var byteSize: Int {
        switch self {
        case .BOOL, .U8, .I8, .F8_E5M2, .F8_E4M3: 1
        case .I16, .U16, .F16, .BF16: 2
        case .I32, .U32, .F32: 4
        case .F64, .I64, .U64: 8
        }
    }

    /// The engine's element encoding of a convertible dtype (nil for the others).
    var stored: StoredElement? {
        switch self {
        case .F32: .float32
        case .F16: .float16
        case .BF16: .bfloat16
        case .F64: .float64
        case .U8: .uint8
        case .I8: .int8
        case .U16: .uint16
        case .I16: .int16
        default: nil
        }
    }

    /// Whether `tensor(_:)` converts this dtype to float32.
    public var convertsToFloat: Bool {
        switch self {
        case .F32, .F16, .BF16, .F64, .U8, .I8, .U16, .I16: true
        default: false
        }
    }
}

/// One tensor's entry in the header: dtype, shape and byte range within the data section.
public struct SafeTensorsEntry: Sendable {
    public let key: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    /// Byte range relative to the start of the data section (after the header).
    public let dataRange: Range<Int>
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A safetensors file, memory-mapped read-only and fully validated on open.
///
/// Layout (https://github.com/huggingface/safetensors): 8-byte little-endian header length N,
/// N bytes of UTF-8 JSON mapping each key to {dtype, shape, data_offsets: [begin, end]} (offsets
/// relative to the data section) plus an optional "__metadata__" string→string map, then the data.
///
/// Nothing in the file is trusted: the header length must fit in the file and be below
/// `maxHeaderLength`; every shape must be non-negative integers whose product times the dtype
/// size equals end − begin (computed with overflow checks); ranges must lie inside the data
/// section and must not overlap. Gaps between tensors are tolerated (they are harmless).
public final class SafeTensorsFile: @unchecked Sendable {
    /// The reference implementation's cap on header size (safetensors' MAX_HEADER_SIZE, 100 MB).
    public static let maxHeaderLength = 100_000_000

    public let path: String
    public let metadata: [String: String]
    public let entries: [String: SafeTensorsEntry]
    private let bytes: ReadOnlyBytes
    private let dataStart: Int

    /// Keys in sorted order (the order our writer uses).
    public var keys: [String] { entries.keys.sorted() }

    /// Opens and validates `url` (memory-mapped, read-only).
    public convenience init(url: URL) throws {
        let bytes: ReadOnlyBytes
        do {
            bytes = try ReadOnlyBytes.map(url)
        } catch let e as FileReadError {
            throw SafeTensorsError(path: url.path, key: nil, shape: nil, message: e.message)
        }
        try self.init(bytes: bytes, path: url.path)
    }

    /// Parses an in-memory safetensors image (copied). `name` is used in error messages.
    public convenience init(data: Data, name: String = "<memory>") throws {
        try self.init(bytes: ReadOnlyBytes.copy(data), path: name)
    }

    // Long on purpose: one pass over an untrusted header that checks each entry (dtype, shape,
    // offsets, overlaps, bounds) where it is parsed, so every error names its key and shape.
    init(bytes: ReadOnlyBytes, path: String) throws {
        self.bytes = bytes
        self.path = path
        func fail(_ message: String, key: String? = nil, shape: [Int]? = nil) -> SafeTensorsError {
            SafeTensorsError(path: path, key: key, shape: shape, message: message)
        }
        let total = bytes.count
        guard total >= 8 else {
            throw fail("file is \(total) bytes, shorter than the 8-byte header length field")
        }
        let declared = bytes.load(littleEndian: UInt64.self, at: 0)
        guard declared <= UInt64(Self.maxHeaderLength) else {
            throw fail("declared header length \(declared) exceeds the \(Self.maxHeaderLength)-byte limit")
        }
        let headerLength = Int(declared)
        guard headerLength <= total - 8 else {
            throw fail("declared header length \(headerLength) exceeds the \(total - 8) bytes after the length field (truncated file?)")
        }
        guard headerLength >= 2 else { throw fail("header of \(headerLength) bytes cannot hold a JSON object") }
        dataStart = 8 + headerLength
        let dataLength = total - dataStart
        let headerBytes = bytes.bytes(8..<dataStart)  // the JSON header (small: parsed from a copy)
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw fail("header is not valid UTF-8")
        }
        guard headerBytes[0] == UInt8(ascii: "{") else { throw fail("header does not start with a JSON object '{'") }
        let json: HeaderJSON
        do {
            json = try HeaderJSONParser.parse(headerBytes)
        } catch let e as HeaderJSONError {
            throw fail("header is not valid JSON: \(e)")
        }
        guard case .object(let root) = json else { throw fail("header is not a JSON object") }

        var metadata: [String: String] = [:]
        var entries: [String: SafeTensorsEntry] = [:]
        for (key, value) in root {
            if key == "__metadata__" {
                guard case .object(let m) = value else { throw fail("__metadata__ is a \(value.typeName), expected an object of strings") }
                for (mk, mv) in m {
                    guard case .string(let s) = mv else {
                        throw fail("__metadata__ value for \"\(mk)\" is a \(mv.typeName), expected a string")
                    }
                    metadata[mk] = s
                }
                continue
            }
            guard case .object(let info) = value else { throw fail("entry is a \(value.typeName), expected an object", key: key) }
            guard case .string(let dtypeName)? = info["dtype"] else { throw fail("missing or non-string \"dtype\"", key: key) }
            guard case .array(let shapeJSON)? = info["shape"] else { throw fail("missing or non-array \"shape\"", key: key) }
            var shape: [Int] = []
            for d in shapeJSON {
                guard case .integer(let n) = d else {
                    throw fail("shape entry \(d) is not an integer in range", key: key)
                }
                guard n >= 0 else { throw fail("negative dimension \(n) in shape", key: key) }
                shape.append(n)
            }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                throw fail("unsupported dtype \"\(dtypeName)\"", key: key, shape: shape)
            }
            guard case .array(let offs)? = info["data_offsets"], offs.count == 2,
                case .integer(let begin) = offs[0], case .integer(let end) = offs[1]
            else {
                throw fail("\"data_offsets\" must be an array of two integers", key: key, shape: shape)
            }
            guard begin >= 0, begin <= end, end <= dataLength else {
                throw fail("data_offsets [\(begin), \(end)] outside the \(dataLength)-byte data section", key: key, shape: shape)
            }
            var count = 1
            for n in shape {
                let (p, o) = count.multipliedReportingOverflow(by: n)
                guard !o else { throw fail("element count overflows", key: key, shape: shape) }
                count = p
            }
            let (nbytes, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !o else { throw fail("byte size overflows", key: key, shape: shape) }
            guard nbytes == end - begin else {
                throw fail(
                    "\(dtype.rawValue) × \(count) elements = \(nbytes) bytes, but data_offsets [\(begin), \(end)] span \(end - begin)", key: key,
                    shape: shape)
            }
            entries[key] = SafeTensorsEntry(key: key, dtype: dtype, shape: shape, dataRange: begin..<end)
        }
        // The format requires the data section to be indexed entirely, without holes or overlaps.
        // Checking that exactly is what catches a header length that is off by a few bytes: the
        // JSON still parses (the header is padded with spaces) but every tensor would be read
        // shifted, i.e. as garbage or NaN.
        let sorted = entries.values.filter { !$0.dataRange.isEmpty }.sorted { $0.dataRange.lowerBound < $1.dataRange.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.dataRange.upperBound > b.dataRange.lowerBound {
            throw fail("data range \(b.dataRange) overlaps tensor \"\(a.key)\" at \(a.dataRange)", key: b.key, shape: b.shape)
        }
        var covered = 0
        for e in sorted {
            guard e.dataRange.lowerBound == covered else {
                throw fail(
                    "data section has a gap of \(e.dataRange.lowerBound - covered) bytes before this tensor "
                        + "(offsets must cover the data section without holes; corrupt or misaligned header?)",
                    key: e.key, shape: e.shape)
            }
            covered = e.dataRange.upperBound
        }
        guard covered == dataLength else {
            throw fail(
                "tensors cover \(covered) bytes but the data section after the \(headerLength)-byte header has "
                    + "\(dataLength) (header length field off, or bytes appended/truncated?)")
        }
        self.metadata = metadata
        self.entries = entries
    }

    private func entry(_ key: String) throws -> SafeTensorsEntry {
        guard let e = entries[key] else {
            let known = keys.prefix(8).joined(separator: ", ")
            throw SafeTensorsError(
                path: path, key: key, shape: nil,
                message: "no such tensor (file has \(entries.count): \(known)\(entries.count > 8 ? ", …" : ""))")
        }
        return e
    }

    public func contains(_ key: String) -> Bool { entries[key] != nil }

    public func shape(of key: String) throws -> [Int] { try entry(key).shape }

    public func dtype(of key: String) throws -> SafeTensorsDType { try entry(key).dtype }

    /// The tensor stored under `key`, converted to float32.
    public func tensor(_ key: String) throws -> Tensor {
        let e = try entry(key)
        guard e.dtype.convertsToFloat else {
            throw SafeTensorsError(
                path: path, key: key, shape: e.shape,
                message: "unsupported dtype \(e.dtype.rawValue) (readable dtypes: F32, F16, BF16, F64, U8, I8, U16, I16)")
        }
        return Tensor.decoding(bytes, at: dataStart + e.dataRange.lowerBound, as: e.dtype.stored!, shape: e.shape)
    }

    /// Every convertible tensor in the file. Throws on the first unsupported dtype.
    public func loadAll() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for k in keys { out[k] = try tensor(k) }
        return out
    }
}

/// Writing and dtype conversion.
public enum SafeTensors {
    /// Writes `tensors` as F32 little-endian, keys sorted, header padded with spaces to a multiple
    /// of 8 bytes (so the data section is 8-byte aligned, as the reference writer does), through
    /// a temporary file + fsync + rename.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        let header = try headerBytes(tensors, metadata: metadata, path: url.path)
        try AtomicFile.write(to: url) { w in
            try w.write(littleEndianBytes(UInt64(header.count)))
            try w.write(header)
            for key in tensors.keys.sorted() {
                try w.write(tensors[key]!)
            }
        }
    }

    /// The same bytes `write` puts on disk, in memory.
    public static func serialize(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws -> Data {
        let header = try headerBytes(tensors, metadata: metadata, path: "<memory>")
        var out = Data()
        out.append(contentsOf: littleEndianBytes(UInt64(header.count)))
        out.append(contentsOf: header)
        for key in tensors.keys.sorted() {
            out.append(tensors[key]!.littleEndianFloat32Data())
        }
        return out
    }

    static func headerBytes(_ tensors: [String: Tensor], metadata: [String: String], path: String) throws -> [UInt8] {
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.keys.sorted().map { "\(jsonQuoted($0)):\(jsonQuoted(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(m.joined(separator: ","))}")
        }
        var offset = 0
        for key in tensors.keys.sorted() {
            if key == "__metadata__" {
                throw SafeTensorsError(
                    path: path, key: key, shape: tensors[key]!.shape, message: "\"__metadata__\" is reserved and cannot name a tensor")
            }
            let t = tensors[key]!
            let n = t.count * 4
            parts.append(
                "\(jsonQuoted(key)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + n)]}"
            )
            offset += n
        }
        var bytes = Array("{\(parts.joined(separator: ","))}".utf8)
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        return bytes
    }

    /// The 8 little-endian bytes of `v` (the header length field).
    static func littleEndianBytes(_ v: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
    }
}
