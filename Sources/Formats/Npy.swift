import Foundation
import TensorCore

/// A malformed or unsupported .npy file, naming the file.
public struct NpyError: Error, CustomStringConvertible, LocalizedError {
    public let path: String
    public let message: String
    public var description: String { "npy file \(path): \(message)" }
    public var errorDescription: String? { description }
}

/// NumPy's .npy format for float arrays.
///
/// Format (numpy.lib.format, NEP 1): magic "\x93NUMPY", major and minor version bytes, a header
/// length (uint16 LE in version 1.0, uint32 LE in 2.0 and 3.0), then an ASCII (UTF-8 in 3.0)
/// Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded
/// with spaces and ending in '\n', then the raw array data.
///
/// Reading accepts versions 1.0, 2.0 and 3.0 and little-endian float dtypes '<f4', '<f2' and
/// '<f8' (converted to float32), C order only. Fortran order, big-endian data, other dtypes and
/// structured dtypes are rejected with an error that says so. Writing produces version 1.0
/// (2.0 only if the header would not fit), '<f4', C order, header aligned to 64 bytes like numpy.
public enum Npy {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
    /// numpy pads the preamble to a multiple of this (numpy.lib.format.ARRAY_ALIGN).
    static let arrayAlign = 64
    /// Bound on a version 2/3 header (v1 is bounded by its 16-bit length field). numpy itself
    /// refuses headers over 10 000 bytes by default (max_header_size); 1 MiB leaves room for very
    /// high-rank shapes while keeping a hostile length from costing anything.
    static let maxHeaderLength = 1 << 20
    /// Far above any real array; bounds the parser's work on hostile shapes.
    static let maxRank = 64

    public static func read(_ url: URL) throws -> Tensor {
        let bytes: ReadOnlyBytes
        do {
            bytes = try ReadOnlyBytes.map(url)
        } catch let e as FileReadError {
            throw NpyError(path: url.path, message: e.message)
        }
        return try read(bytes: bytes, path: url.path)
    }

    /// Parses an in-memory .npy image. `name` is used in error messages.
    public static func read(data: Data, name: String = "<memory>") throws -> Tensor {
        try read(bytes: ReadOnlyBytes.copy(data), path: name)
    }

    // Long on purpose: validates magic, version, header and payload size in file order, each
    // check with its own message.
    static func read(bytes: ReadOnlyBytes, path: String) throws -> Tensor {
        func fail(_ m: String) -> NpyError { NpyError(path: path, message: m) }
        let buf = bytes
        let total = buf.count
        guard total >= 10 else { throw fail("file is \(total) bytes, too short for the .npy preamble") }
        guard buf.bytes(0..<6) == magic else { throw fail("missing the \\x93NUMPY magic (not an .npy file)") }
        let major = buf[6], minor = buf[7]
        let headerLength: Int
        let headerStart: Int
        switch (major, minor) {
        case (1, 0):
            headerLength = Int(buf[8]) | Int(buf[9]) << 8
            headerStart = 10
        case (2, 0), (3, 0):
            guard total >= 12 else { throw fail("file is \(total) bytes, too short for a version \(major).\(minor) preamble") }
            let n = UInt32(buf[8]) | UInt32(buf[9]) << 8 | UInt32(buf[10]) << 16 | UInt32(buf[11]) << 24
            guard n <= UInt32(maxHeaderLength) else { throw fail("declared header length \(n) exceeds the \(maxHeaderLength)-byte limit") }
            headerLength = Int(n)
            headerStart = 12
        default:
            throw fail("unsupported format version \(major).\(minor) (supported: 1.0, 2.0, 3.0)")
        }
        guard headerLength <= total - headerStart else {
            throw fail("declared header length \(headerLength) runs past the end of the \(total)-byte file (truncated?)")
        }
        let headerBytes = bytes.bytes(headerStart..<(headerStart + headerLength))  // the header (small: parsed from a copy)
        if major < 3 {
            guard headerBytes.allSatisfy({ $0 < 0x80 }) else { throw fail("version \(major).\(minor) header is not ASCII") }
        } else {
            guard String(validating: headerBytes, as: UTF8.self) != nil else { throw fail("header is not valid UTF-8") }
        }
        let header: NpyHeader
        do {
            header = try NpyHeaderParser.parse(headerBytes)
        } catch let e as NpyHeaderError {
            throw fail("bad header: \(e.message) in \(String(decoding: headerBytes.prefix(200), as: UTF8.self).debugDescription)")
        }
        guard !header.fortranOrder else {
            throw fail("fortran_order True is not supported (save a C-contiguous array, e.g. np.ascontiguousarray)")
        }
        let itemSize: Int
        switch header.descr {
        case "<f4": itemSize = 4
        case "<f2": itemSize = 2
        case "<f8": itemSize = 8
        case ">f4", ">f2", ">f8":
            throw fail("big-endian dtype '\(header.descr)' is not supported (convert with arr.astype('<f4'))")
        default:
            throw fail("unsupported dtype '\(header.descr)' (supported: '<f4', '<f2', '<f8')")
        }
        var count = 1
        for d in header.shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard !o else { throw fail("element count of shape \(header.shape) overflows") }
            count = p
        }
        let (nbytes, o) = count.multipliedReportingOverflow(by: itemSize)
        guard !o else { throw fail("byte size of shape \(header.shape) overflows") }
        let dataStart = headerStart + headerLength
        let available = total - dataStart
        guard nbytes == available else {
            throw fail("shape \(header.shape) of '\(header.descr)' needs \(nbytes) data bytes, file has \(available)")
        }
        let element: StoredElement = itemSize == 4 ? .float32 : itemSize == 2 ? .float16 : .float64
        return Tensor.decoding(bytes, at: dataStart, as: element, shape: header.shape)
    }

    /// The preamble and header for a float32 C-order array of `shape`.
    static func headerBytes(shape: [Int]) -> [UInt8] {
        let shapeText: String
        switch shape.count {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(shape[0]),)"
        default: shapeText = "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // Version 1.0 unless the padded header overflows its 16-bit length field.
        for (major, lengthBytes) in [(UInt8(1), 2), (UInt8(2), 4)] {
            let preamble = magic.count + 2 + lengthBytes
            var padded = dict.utf8.count + 1  // + '\n'
            padded += (arrayAlign - (preamble + padded) % arrayAlign) % arrayAlign
            if lengthBytes == 2 && padded > 0xFFFF { continue }
            var out = magic + [major, 0]
            for i in 0..<lengthBytes { out.append(UInt8(truncatingIfNeeded: padded >> (8 * i))) }
            out += Array(dict.utf8)
            out += [UInt8](repeating: 0x20, count: padded - dict.utf8.count - 1)
            out.append(0x0A)
            return out
        }
        preconditionFailure("npy header for shape \(shape) does not fit")
    }

    /// Writes `tensor` as a version 1.0 '<f4' C-order .npy file, atomically.
    public static func write(_ tensor: Tensor, to url: URL) throws {
        let header = headerBytes(shape: tensor.shape)
        try AtomicFile.write(to: url) { w in
            try w.write(header)
            try w.write(tensor)
        }
    }

    /// The bytes `write` puts on disk, in memory.
    public static func serialize(_ tensor: Tensor) -> Data {
        var out = Data(headerBytes(shape: tensor.shape))
        out.append(tensor.littleEndianFloat32Data())
        return out
    }
}

struct NpyHeader {
    var descr: String
    var fortranOrder: Bool
    var shape: [Int]
}

struct NpyHeaderError: Error {
    let message: String
}

/// Parses the Python dict literal of an .npy header: exactly the keys 'descr' (a string),
/// 'fortran_order' (True/False) and 'shape' (a tuple of non-negative ints), as numpy requires.
/// Only the literal forms numpy writes (and simple variations of quoting, spacing and trailing
/// commas) are accepted; everything is bounded by the header length.
struct NpyHeaderParser {
    private let bytes: [UInt8]
    private var pos = 0

    static func parse(_ bytes: [UInt8]) throws -> NpyHeader {
        var p = NpyHeaderParser(bytes: bytes)
        return try p.dict()
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    private mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 }
    }

    private mutating func consume(_ c: Character) throws {
        skipSpace()
        guard let b = peek, b == c.asciiValue! else { throw NpyHeaderError(message: "expected '\(c)' at byte \(pos)") }
        pos += 1
    }

    private mutating func tryConsume(_ c: Character) -> Bool {
        skipSpace()
        if let b = peek, b == c.asciiValue! { pos += 1; return true }
        return false
    }

    private mutating func string() throws -> String {
        skipSpace()
        guard let q = peek, q == UInt8(ascii: "'") || q == UInt8(ascii: "\"") else {
            throw NpyHeaderError(message: "expected a quoted string at byte \(pos)")
        }
        pos += 1
        var out: [UInt8] = []
        while true {
            guard let c = peek else { throw NpyHeaderError(message: "unterminated string") }
            pos += 1
            if c == q { return String(decoding: out, as: UTF8.self) }
            if c == UInt8(ascii: "\\") { throw NpyHeaderError(message: "escapes are not supported in header strings") }
            out.append(c)
        }
    }

    private mutating func identifier() -> String {
        skipSpace()
        let start = pos
        while let c = peek, (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) { pos += 1 }
        return String(decoding: bytes[start..<pos], as: UTF8.self)
    }

    private mutating func integer() throws -> Int {
        skipSpace()
        if peek == UInt8(ascii: "-") { throw NpyHeaderError(message: "negative dimension in shape") }
        var v = 0
        var digits = 0
        while let c = peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") {
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int(c - UInt8(ascii: "0")))
            guard !o1, !o2 else { throw NpyHeaderError(message: "dimension too large") }
            v = s
            digits += 1
            pos += 1
        }
        guard digits > 0 else { throw NpyHeaderError(message: "expected an integer at byte \(pos)") }
        if peek == UInt8(ascii: "L") { pos += 1 }  // Python 2 long suffix, written by old numpy
        return v
    }

    private mutating func parseShape() throws -> [Int] {
        skipSpace()
        let close: Character
        if tryConsume("(") {
            close = ")"
        } else if tryConsume("[") {
            close = "]"
        } else {
            throw NpyHeaderError(message: "shape must be a tuple")
        }
        var dims: [Int] = []
        while true {
            if tryConsume(close) { return dims }
            guard dims.count < Npy.maxRank else { throw NpyHeaderError(message: "shape has more than \(Npy.maxRank) dimensions") }
            dims.append(try integer())
            if tryConsume(",") { continue }
            try consume(close)
            return dims
        }
    }

    private mutating func dict() throws -> NpyHeader {
        try consume("{")
        var descr: String?
        var fortran: Bool?
        var shape: [Int]?
        while true {
            if tryConsume("}") { break }
            let key = try string()
            try consume(":")
            switch key {
            case "descr":
                guard descr == nil else { throw NpyHeaderError(message: "duplicate key 'descr'") }
                skipSpace()
                if peek == UInt8(ascii: "[") { throw NpyHeaderError(message: "structured dtypes are not supported") }
                descr = try string()
            case "fortran_order":
                guard fortran == nil else { throw NpyHeaderError(message: "duplicate key 'fortran_order'") }
                switch identifier() {
                case "True": fortran = true
                case "False": fortran = false
                case let other: throw NpyHeaderError(message: "fortran_order must be True or False, got '\(other)'")
                }
            case "shape":
                guard shape == nil else { throw NpyHeaderError(message: "duplicate key 'shape'") }
                shape = try parseShape()
            default:
                throw NpyHeaderError(message: "unexpected key '\(key)'")
            }
            if tryConsume(",") { continue }
            try consume("}")
            break
        }
        skipSpace()
        guard pos == bytes.count else { throw NpyHeaderError(message: "trailing characters after the dict at byte \(pos)") }
        guard let descr, let fortran, let shape else {
            throw NpyHeaderError(message: "header must contain 'descr', 'fortran_order' and 'shape'")
        }
        return NpyHeader(descr: descr, fortranOrder: fortran, shape: shape)
    }
}
