import Formats
import Foundation
import Yams

/// Reads a YAML config defensively, before anything is expanded or converted.
///
/// Why each limit exists (on a release build):
/// - a 471-byte file of nested anchors (`b1: &b1 [*b0, *b0, …]`, eight levels) made `Yams.load`
///   build ~10^8 values (4.9 GB RSS, then SIGABRT). `Yams.compose` shares aliased nodes
///   copy-on-write, so composing is linear in the text; the expansion only happens when the tree
///   is walked or converted. We walk it once with a node budget and stop at the first node over it.
/// - a list nested 10000 deep overflowed the stack inside Yams' recursive composer. A lexical
///   pre-scan bounds the nesting before Yams sees the text.
/// - Yams keeps duplicate mapping keys in the composed tree and the conversion to a dictionary
///   silently keeps the last one, so a second `stage1:` section replaced the first.
/// - Yams resolves plain scalars with YAML 1.1 rules: `010` is 8 (octal) and `1:20` is 80
///   (base 60). dvt configs are read as YAML 1.2 core would read them, so those forms are refused
///   with a hint to write what was meant.
public enum YAMLGuard {
    /// A dvt config is a few kilobytes; 1 MiB leaves room for long image lists written inline.
    public static let maxBytes = 1 << 20
    /// dvt configs are two levels deep (section → key → list); 32 is far above any real one.
    public static let maxDepth = 32
    /// Nodes visited after alias expansion.
    public static let maxNodes = 100_000
    /// Longest value text quoted back in an error message.
    public static let maxQuoted = 120

    /// Reads `url` as UTF-8 text after checking, without opening it for reading, that it is a
    /// regular file no larger than `maxBytes` (a FIFO would block the open, `/dev/zero` never ends).
    public static func readText(_ url: URL) throws -> String {
        let path = url.path
        let size = try FileKind.requireRegular(path, what: "config") { ConfigError($0) }
        if size > maxBytes {
            throw ConfigError("config \(path) is \(size) bytes; configs are limited to \(maxBytes) bytes")
        }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw ConfigError("cannot read config \(path): permission denied")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ConfigError("cannot read config \(path): \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError("config \(path) is not UTF-8 text")
        }
        return text
    }

    /// Composes `text` into a node tree that is safe to walk and convert: bounded nesting, bounded
    /// size after alias expansion, no duplicate keys, no YAML 1.1-only scalar forms.
    /// Returns nil for an empty document.
    public static func compose(_ text: String, file: String) throws -> Node? {
        guard text.utf8.count <= maxBytes else {
            throw ConfigError("config \(file) is \(text.utf8.count) bytes; configs are limited to \(maxBytes) bytes")
        }
        try prescanNesting(text, file: file)
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw ConfigError("config \(file) is not valid YAML: \(clip(String(describing: error), 400))")
        }
        guard let root else { return nil }
        try validate(root, file: file)
        return root
    }

    /// Cuts `s` to `limit` characters, saying how much was left out.
    public static func clip(_ s: String, _ limit: Int = maxQuoted) -> String {
        guard s.count > limit else { return s }
        return String(s.prefix(limit)) + "… (\(s.count - limit) more characters)"
    }

    // MARK: - nesting pre-scan

    /// An upper bound on the nesting depth, from the text alone: open flow brackets, plus block
    /// indentation levels, plus `- ` indicators that open nested sequences on one line. Quoted
    /// strings and comments are skipped so that brackets inside them do not count.
    static func prescanNesting(_ text: String, file: String) throws {
        var flow = 0, line = 1
        var indentStack: [Int] = [-1]
        var atLineStart = true, indent = 0, dashes = 0
        var quote: UInt8? = nil, escaped = false
        var inComment = false
        var prev: UInt8 = 0x20
        func tooDeep() -> ConfigError {
            ConfigError(
                "config \(file): nesting deeper than \(maxDepth) levels at line \(line) "
                    + "(dvt configs are at most a few levels deep)")
        }
        for c in text.utf8 {
            defer { prev = c }
            if c == 0x0A {  // newline ends comments and the line's indentation count
                line += 1; atLineStart = true; indent = 0; dashes = 0; inComment = false
                if quote == 0x27 || quote == 0x22 { continue }  // multi-line quoted scalar
                continue
            }
            if inComment { continue }
            if let q = quote {
                // Double quotes take backslash escapes; single quotes escape by doubling, which
                // closes and (not) reopens here, leaving the state right either way.
                if q == 0x22 && c == 0x5C && !escaped { escaped = true; continue }
                if c == q && !escaped { quote = nil }
                escaped = false
                continue
            }
            if atLineStart {
                if c == 0x20 { indent += 1; continue }
                if c == 0x2D { dashes += 1; continue }  // "- - - x" nests sequences on one line
                if c == 0x23 { inComment = true; atLineStart = false; continue }
                atLineStart = false
                while let top = indentStack.last, top >= indent, indentStack.count > 1 { indentStack.removeLast() }
                if indentStack.last! < indent { indentStack.append(indent) }
                if flow + indentStack.count + dashes > maxDepth { throw tooDeep() }
            }
            switch c {
            case 0x27, 0x22:
                if flow > 0 || [0x20, 0x09, 0x0A, 0x3A, 0x5B, 0x7B, 0x2C, 0x2D].contains(prev) { quote = c }
            case 0x23: if prev == 0x20 || prev == 0x09 { inComment = true }
            case 0x5B, 0x7B:
                flow += 1
                if flow + indentStack.count + dashes > maxDepth { throw tooDeep() }
            case 0x5D, 0x7D: flow = max(0, flow - 1)
            default: break
            }
        }
    }

    // MARK: - tree validation

    /// Walks the tree (iteratively: aliases can make it deeper than the text) with a node budget,
    /// checking mapping keys and plain scalars on the way.
    static func validate(_ root: Node, file: String) throws {
        var stack: [(Node, Int)] = [(root, 1)]
        var visited = 0
        while let (node, depth) = stack.popLast() {
            visited += 1
            if visited > maxNodes {
                throw ConfigError(
                    "config \(file) expands to more than \(maxNodes) values (anchors and aliases "
                        + "nested too deep?); dvt configs are small — write the values out")
            }
            if depth > maxDepth {
                throw ConfigError(
                    "config \(file): nesting deeper than \(maxDepth) levels\(at(node.mark)) "
                        + "after expanding aliases")
            }
            switch node {
            case .scalar(let s):
                try checkScalar(s, file: file)
            case .sequence(let seq):
                for child in seq { stack.append((child, depth + 1)) }
            case .mapping(let map):
                var seen: [String: Mark?] = [:]
                for (key, value) in map {
                    if case .scalar(let k) = key {
                        if let first = seen[k.string] {
                            let firstAt = first.map { " (first at line \($0.line))" } ?? ""
                            throw ConfigError(
                                "config \(file)\(at(k.mark)): duplicate key '\(clip(k.string))'\(firstAt); "
                                    + "each key may appear once per section")
                        }
                        seen[k.string] = k.mark
                    }
                    stack.append((key, depth + 1))
                    stack.append((value, depth + 1))
                }
            }
        }
    }

    /// YAML 1.1 forms that YAML 1.2 core reads differently (or not as numbers at all).
    static func checkScalar(_ s: Node.Scalar, file: String) throws {
        guard s.style == .plain else { return }
        let t = s.string
        guard let first = t.utf8.first, first == 0x2B || first == 0x2D || (0x30...0x39).contains(first) else { return }
        let body = first == 0x2B || first == 0x2D ? Substring(t.dropFirst()) : Substring(t)
        let digits = body.utf8.allSatisfy { (0x30...0x39).contains($0) }
        var reason: String? = nil
        if body.count > 1, body.hasPrefix("0"), digits {
            reason = "a leading zero makes YAML 1.1 read it as octal (\(t) would become \(Int(body, radix: 8).map(String.init) ?? "?"))"
        } else if body.contains(":"),
            body.split(separator: ":", omittingEmptySubsequences: false)
                .allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isNumber || $0 == "." } })
        {
            reason = "YAML 1.1 reads colon-separated numbers as base 60 (\(t) would be a single number)"
        } else if body.hasPrefix("0b") {
            reason = "0b… binary numbers are YAML 1.1 only"
        } else if body.contains("_"), body.allSatisfy({ $0.isNumber || $0 == "_" || $0 == "." }) {
            reason = "underscores inside numbers are YAML 1.1 only"
        }
        if let reason {
            throw ConfigError(
                "config \(file)\(at(s.mark)): '\(clip(t))' is ambiguous: \(reason). "
                    + "Write the number without it, or quote it if you meant text")
        }
    }

    static func at(_ mark: Mark?) -> String {
        guard let mark else { return "" }
        return ":\(mark.line):\(mark.column)"
    }
}
