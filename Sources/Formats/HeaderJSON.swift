import Foundation

/// A JSON value as read from an untrusted file header (safetensors).
///
/// A small strict parser of our own rather than JSONSerialization: we need integers kept exact
/// and distinguishable from fractions (a shape of `2.5` or `1e30` must be rejected, not rounded),
/// duplicate keys reported, and nesting depth bounded so a hostile header cannot exhaust the stack.
public enum HeaderJSON: Equatable, Sendable {
    case object([String: HeaderJSON])
    case array([HeaderJSON])
    case string(String)
    /// An integer literal (no fraction or exponent) that fits in `Int`.
    case integer(Int)
    /// Any other number (fractional, exponent, or an integer too large for `Int`).
    case number(Double)
    case bool(Bool)
    case null

    public var typeName: String {
        switch self {
        case .object: "object"
        case .array: "array"
        case .string: "string"
        case .integer: "integer"
        case .number: "number"
        case .bool: "boolean"
        case .null: "null"
        }
    }
}

public struct HeaderJSONError: Error, CustomStringConvertible {
    let message: String
    let offset: Int
    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}

public struct HeaderJSONParser {
    /// Deep enough for any real header (safetensors nests 3 levels); shallow enough that the
    /// recursive descent cannot overflow the stack.
    static let maxDepth = 32

    private let bytes: [UInt8]
    private var pos = 0

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Parses one complete JSON document (surrounding whitespace allowed, nothing else).
    public static func parse(_ bytes: [UInt8]) throws -> HeaderJSON {
        var p = HeaderJSONParser(bytes)
        p.skipWhitespace()
        let v = try p.value(depth: 0)
        p.skipWhitespace()
        if p.pos != bytes.count { throw p.error("unexpected trailing data") }
        return v
    }

    private func error(_ message: String) -> HeaderJSONError { HeaderJSONError(message: message, offset: pos) }

    private var atEnd: Bool { pos >= bytes.count }
    private var peek: UInt8? { atEnd ? nil : bytes[pos] }

    private mutating func skipWhitespace() {
        while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 }
    }

    private mutating func expect(_ literal: StaticString) throws {
        let n = literal.utf8CodeUnitCount
        guard bytes.count - pos >= n else { throw error("truncated literal") }
        let lit = literal.utf8Start
        for i in 0..<n where bytes[pos + i] != lit[i] { throw error("invalid literal") }
        pos += n
    }

    private mutating func value(depth: Int) throws -> HeaderJSON {
        guard depth < Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth)") }
        guard let c = peek else { throw error("unexpected end of input") }
        switch c {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character 0x\(String(c, radix: 16))")
        }
    }

    private mutating func object(depth: Int) throws -> HeaderJSON {
        pos += 1  // {
        var out: [String: HeaderJSON] = [:]
        skipWhitespace()
        if peek == UInt8(ascii: "}") { pos += 1; return .object(out) }
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let keyStart = pos
            let key = try string()
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw error("expected ':' after key") }
            pos += 1
            skipWhitespace()
            let v = try value(depth: depth + 1)
            if out[key] != nil { throw HeaderJSONError(message: "duplicate key \"\(key)\"", offset: keyStart) }
            out[key] = v
            skipWhitespace()
            guard let c = peek else { throw error("unterminated object") }
            pos += 1
            if c == UInt8(ascii: "}") { return .object(out) }
            guard c == UInt8(ascii: ",") else { pos -= 1; throw error("expected ',' or '}' in object") }
        }
    }

    private mutating func array(depth: Int) throws -> HeaderJSON {
        pos += 1  // [
        var out: [HeaderJSON] = []
        skipWhitespace()
        if peek == UInt8(ascii: "]") { pos += 1; return .array(out) }
        while true {
            skipWhitespace()
            out.append(try value(depth: depth + 1))
            skipWhitespace()
            guard let c = peek else { throw error("unterminated array") }
            pos += 1
            if c == UInt8(ascii: "]") { return .array(out) }
            guard c == UInt8(ascii: ",") else { pos -= 1; throw error("expected ',' or ']' in array") }
        }
    }

    private mutating func hex4() throws -> UInt32 {
        guard bytes.count - pos >= 4 else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("bad hex digit in \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    /// The input has been validated as UTF-8 as a whole, so raw bytes are copied through and
    /// decoded once at the end.
    private mutating func string() throws -> String {
        pos += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard let c = peek else { throw error("unterminated string") }
            pos += 1
            switch c {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let e = peek else { throw error("unterminated escape") }
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        // High surrogate: must be followed by an escaped low surrogate.
                        guard bytes.count - pos >= 2, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u")
                        else { throw error("unpaired surrogate in \\u escape") }
                        pos += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw error("unpaired surrogate in \\u escape")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    throw error("invalid escape \\\(Character(Unicode.Scalar(e)))")
                }
            case 0..<0x20:
                throw error("control character in string")
            default:
                out.append(c)
            }
        }
    }

    private mutating func number() throws -> HeaderJSON {
        let start = pos
        var negative = false
        if peek == UInt8(ascii: "-") { negative = true; pos += 1 }
        guard let first = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
            throw error("expected digit")
        }
        // Accumulate the integer part exactly, noting overflow instead of trapping.
        var magnitude: UInt64 = 0
        var overflow = false
        if first == UInt8(ascii: "0") {
            pos += 1
            if let c = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { throw error("leading zero in number") }
        } else {
            while let c = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) {
                let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (m2, o2) = m1.addingReportingOverflow(UInt64(c - UInt8(ascii: "0")))
                overflow = overflow || o1 || o2
                magnitude = m2
                pos += 1
            }
        }
        var isInteger = true
        if peek == UInt8(ascii: ".") {
            isInteger = false
            pos += 1
            guard let c = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) else { throw error("expected digit after '.'") }
            while let c = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { pos += 1 }
        }
        if let e = peek, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            isInteger = false
            pos += 1
            if let s = peek, s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { pos += 1 }
            guard let c = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) else { throw error("expected exponent digits") }
            while let c = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { pos += 1 }
        }
        if isInteger && !overflow {
            if !negative && magnitude <= UInt64(Int.max) { return .integer(Int(magnitude)) }
            if negative && magnitude <= UInt64(Int.max) + 1 {
                return .integer(magnitude == UInt64(Int.max) + 1 ? Int.min : -Int(magnitude))
            }
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        return .number(Double(text) ?? .nan)
    }
}

/// Minimal JSON string escaping for headers we write.
func jsonQuoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where u.value < 0x20:
            out += String(format: "\\u%04x", u.value)
        default:
            out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}
