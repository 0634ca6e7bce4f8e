import Foundation
import TestSupport
import Testing

/// A test that returns before its first expectation is reported as passed without having checked
/// anything. A missing prerequisite is a visible skip instead (`.enabled(if:)`, or
/// `requirePrerequisite`, which fails under CI). This scan reads every `@Test` function under
/// Tests/ and reports a bare `return` (or `exit(0)`) that comes before the body's first
/// expectation (`#expect`, `#require`, `Issue.record` or a TestSupport checker).
@Suite struct EarlyReturnTests {
    /// What counts as checking something, or as saying out loud that nothing will be checked.
    static let expectation = try! NSRegularExpression(
        pattern: #"#expect|#require|Issue\.record|expectClose|gradCheck|requirePrerequisite|requireExecutable|Test\.cancel"#)
    /// A return without a value (the end of a void body), or a clean exit of a child process.
    static let earlyExit = try! NSRegularExpression(pattern: #"\breturn\s*(\}|;|$)|\bexit\(0\)"#)

    /// The code of one line: each string literal emptied to `""` and `//` comments removed, so
    /// that braces and words inside them do not count (and `return "x"` still returns a value).
    static func code(_ line: String) -> String {
        var out = "", inString = false, escaped = false
        var chars = Array(line)[...]
        while let c = chars.popFirst() {
            if inString {
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false; out.append(c) }
                continue
            }
            if c == "/" && chars.first == "/" { break }
            if c == "\"" { inString = true }
            out.append(c)
        }
        return out
    }

    /// The early exits in one Swift file, as `file:line: text`.
    static func earlyExits(in text: String, file: String) -> [String] {
        var found: [String] = []
        var pendingTest = false, inBody = false, checked = false, depth = 0
        var closer: String?  // inside a multi-line string literal: its closing delimiter
        for (i, raw) in text.components(separatedBy: "\n").enumerated() {
            let trimmed = raw.trimmingCharacters(in: .whitespaces)
            // Multi-line string literals (`"""`, raw `#"""`): their lines are data, not code.
            if let end = closer {
                if trimmed.contains(end) { closer = nil }
                continue
            }
            if trimmed.contains("#\"\"\"") { closer = "\"\"\"#" } else if trimmed.contains("\"\"\"") { closer = "\"\"\"" }
            let line = code(raw)
            if !inBody {
                if trimmed.hasPrefix("@Test") { pendingTest = true }
                guard pendingTest, line.contains("func ") else { continue }
                pendingTest = false
                inBody = true
                checked = false
                depth = 0
            }
            let range = NSRange(line.startIndex..., in: line)
            if expectation.firstMatch(in: raw, range: NSRange(raw.startIndex..., in: raw)) != nil { checked = true }
            if !checked && depth > 0 && earlyExit.firstMatch(in: line, range: range) != nil {
                found.append("\(file):\(i + 1): returns before its first expectation: \(trimmed)")
            }
            let opened = line.filter { $0 == "{" }.count, closed = line.filter { $0 == "}" }.count
            if depth == 0 && opened == 0 { continue }  // the signature goes on over several lines
            // A `return` on the line that opens the body (`func f() { guard … else { return } }`)
            // is checked once the body is open.
            if depth == 0 && !checked && earlyExit.firstMatch(in: line, range: range) != nil {
                found.append("\(file):\(i + 1): returns before its first expectation: \(trimmed)")
            }
            depth += opened - closed
            if depth <= 0 { inBody = false }
        }
        return found
    }

    /// The early exits of every Swift file under `root`, paths relative to root's parent.
    static func earlyExits(under root: URL) throws -> [String] {
        let base = root.deletingLastPathComponent().path + "/"
        let files = FileManager.default.enumerator(atPath: root.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        return try files.sorted().flatMap { rel -> [String] in
            let url = root.appendingPathComponent(rel)
            return earlyExits(in: try String(contentsOf: url, encoding: .utf8), file: String(url.path.dropFirst(base.count)))
        }
    }

    @Test func noTestReturnsBeforeItsFirstExpectation() throws {
        let tests = repositoryRoot.appendingPathComponent("Tests")
        let swiftFiles = FileManager.default.enumerator(atPath: tests.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        #expect(swiftFiles.count > 50, "the scan found \(swiftFiles.count) Swift files: is \(tests.path) the package's Tests?")
        let found = try Self.earlyExits(under: tests)
        #expect(found.isEmpty, "\(found.joined(separator: "\n"))")
    }

    /// The scan must be able to fail: planted early returns are reported with file:line, and the
    /// legal shapes (a return after an expectation, a skip, a value returned by a nested helper,
    /// braces and `return` inside strings and comments) are not.
    @Test func theScanReportsPlantedEarlyReturns() throws {
        let root = temporaryDirectory("early-return").appendingPathComponent("Tests")
        defer { try? FileManager.default.removeItem(at: root.deletingLastPathComponent()) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("X"), withIntermediateDirectories: true)
        let planted = #"""
            @Suite struct S {
                @Test("skips silently", .serialized)
                func bad() throws {
                    let s = "{ return }"  // return
                    guard ready else { return }
                    #expect(1 == 1)
                }
                @Test func badExit() {
                    guard ready else { exit(0) }
                    #expect(true)
                }
                @Test func fine() throws {
                    try requirePrerequisite(ready, "not ready")
                    func helper() -> Int { return 1 }
                    #expect(helper() == 1)
                    guard ready else { return }
                }
                func notATest() {
                    guard ready else { return }
                }
                @Test func badOneLine() { return }
                @Test func fineValue() { func f() -> String { return "{ }" }; #expect(f() == "{ }") }
                @Test func fineBlock() {
                    let yaml = """
                    a: {b: 1}
                    return
                    """
                    #expect(!yaml.isEmpty)
                }
            }
            """#
        try planted.write(to: root.appendingPathComponent("X/Planted.swift"), atomically: true, encoding: .utf8)
        let found = try Self.earlyExits(under: root)
        #expect(
            found.map { String($0.prefix { $0 != " " }) } == [
                "Tests/X/Planted.swift:5:", "Tests/X/Planted.swift:9:", "Tests/X/Planted.swift:21:",
            ], "\(found)")
    }
}
