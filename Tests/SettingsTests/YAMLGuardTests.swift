import Foundation
import TensorCore
import TestSupport
import Testing

@testable import Settings

/// Regression tests for the YAML defects of issue 18 (alias and depth bombs, duplicate keys,
/// YAML 1.1 numbers, special files). Each input here crashed, hung or silently misread before.
@Suite("YAML guard")
struct YAMLGuardTests {
    func write(_ text: String) -> URL {
        let url = temporaryDirectory("guard").appendingPathComponent("config.yaml")
        try! text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func loadError(_ text: String, overrides: [String] = []) -> String? {
        let url = write(text)
        defer { try? FileManager.default.removeItem(at: url) }
        do { _ = try ConfigSchema.load(file: url, overrides: overrides); return nil } catch {
            return String(describing: error)
        }
    }

    /// `b1: &b1 [*b0, *b0, …]` eight levels deep: 9^8 ≈ 4·10^7 leaves once expanded.
    static func aliasBomb(levels: Int = 8, width: Int = 9) -> String {
        var lines = ["b0: &b0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        for l in 1...levels {
            lines.append("b\(l): &b\(l) [" + Array(repeating: "*b\(l - 1)", count: width).joined(separator: ", ") + "]")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    @Test("an alias bomb is refused before it is expanded, with a short message")
    func aliasBomb() {
        let text = Self.aliasBomb()
        #expect(text.utf8.count < 600)
        let err = loadError(text)
        #expect(err?.contains("expands to more than") == true, "\(err ?? "loaded")")
        #expect((err?.count ?? 0) < 400)
    }

    @Test("a value expanded from aliases is quoted back in at most a few hundred characters")
    func errorTextCapped() {
        // A mid-size expansion under the node budget, aimed at a string key: the old message quoted
        // the whole expanded value (3.8 MB from a 370-byte file).
        var parts = ["&b0 [l, l, l, l, l, l, l, l, l]"]
        for l in 1...3 { parts.append("&b\(l) [" + Array(repeating: "*b\(l - 1)", count: 9).joined(separator: ", ") + "]") }
        let text = "model: [" + parts.joined(separator: ", ") + "]\n"
        let err = loadError(text) ?? ""
        #expect(!err.isEmpty)
        #expect(err.count < 700, "error text is \(err.count) characters")
    }

    /// The four shapes that overflowed Yams' recursive composer (by index: the texts are huge).
    static func deepText(_ i: Int) -> String {
        switch i {
        case 0: return String(repeating: "[", count: 10000) + String(repeating: "]", count: 10000)
        case 1: return (0..<1000).map { String(repeating: " ", count: $0) + "a:" }.joined(separator: "\n") + " 1\n"
        case 2: return String(repeating: "- ", count: 5000) + "x\n"
        default: return String(repeating: "{a: ", count: 3000) + "1" + String(repeating: "}", count: 3000)
        }
    }

    @Test("deep nesting is refused before the parser recurses", arguments: 0..<4)
    func deepNesting(shape: Int) {
        let err = loadError(Self.deepText(shape))
        #expect(err?.contains("nesting deeper than") == true, "shape \(shape): \(err.map { String($0.prefix(200)) } ?? "loaded")")
    }

    @Test("brackets inside quotes and comments do not count as nesting")
    func quotedBrackets() throws {
        let deep = String(repeating: "[", count: 200)
        let url = write("model: \"\(deep)\"  # \(deep)\nrun_name: '\(deep)'\n")
        defer { try? FileManager.default.removeItem(at: url) }
        // Passes the guard; fails later only because the model name is not a known preset, if at all.
        do { _ = try ConfigSchema.load(file: url) } catch {
            #expect(!String(describing: error).contains("nesting"), "\(error)")
        }
    }

    @Test("a duplicate key is an error naming both lines")
    func duplicateKeys() {
        let err = loadError("stage1:\n  num_iters: 10\nseed: 1\nstage1:\n  lr: 0.1\n")
        #expect(err?.contains("duplicate key 'stage1'") == true, "\(err ?? "loaded")")
        #expect(err?.contains("first at line 1") == true)
        let inner = loadError("stage1:\n  num_iters: 10\n  num_iters: 20\n")
        #expect(inner?.contains("duplicate key 'num_iters'") == true, "\(inner ?? "loaded")")
    }

    @Test(
        "YAML 1.1 number forms are refused, in files and in overrides",
        arguments: [
            "seed: 010\n", "stage1:\n  num_iters: 1:20\n", "seed: 0b101\n", "stage1:\n  num_iters: 1_000\n",
        ])
    func yaml11Numbers(text: String) {
        let err = loadError(text)
        #expect(err?.contains("ambiguous") == true, "\(err ?? "loaded")")
    }

    @Test("an override with a YAML 1.1 number form is refused; plain numbers still work")
    func yaml11Overrides() throws {
        let err = loadError("seed: 1\n", overrides: ["stage1.num_iters=010"])
        #expect(err?.contains("ambiguous") == true, "\(err ?? "loaded")")
        let url = write("seed: 10\nstage1:\n  lr: 1e-2\n")
        defer { try? FileManager.default.removeItem(at: url) }
        let c = try ConfigSchema.load(file: url, overrides: ["stage1.num_iters=100", "stage1.weight_decay=0"])
        #expect(c.int("seed") == 10 && c.int("stage1.num_iters") == 100 && c.double("stage1.lr") == 0.01)
    }

    @Test("special files are refused without being opened")
    func specialFiles() throws {
        let fifo = temporaryDirectory("fifo").appendingPathComponent("config.yaml")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        defer { try? FileManager.default.removeItem(at: fifo.deletingLastPathComponent()) }
        // Opening a FIFO for reading blocks until a writer comes; the guard must not open it.
        let fifoErr = loadErrorAt(fifo)
        #expect(fifoErr?.contains("FIFO (named pipe)") == true, "\(fifoErr ?? "loaded")")
        let zeroErr = loadErrorAt(URL(fileURLWithPath: "/dev/zero"))
        #expect(zeroErr?.contains("device") == true, "\(zeroErr ?? "loaded")")
        let dirErr = loadErrorAt(FileManager.default.temporaryDirectory)
        #expect(dirErr?.contains("directory") == true, "\(dirErr ?? "loaded")")
        let missing = loadErrorAt(URL(fileURLWithPath: "/nonexistent/dvt.yaml"))
        #expect(missing?.contains("no such file") == true, "\(missing ?? "loaded")")
    }

    func loadErrorAt(_ url: URL) -> String? {
        do { _ = try ConfigSchema.load(file: url); return nil } catch { return String(describing: error) }
    }

    /// Seeded fuzz over documents built from anchors, aliases, nesting and the real keys: every
    /// one either loads or gives a ConfigError of bounded length; none may crash or run away.
    @Test("fuzz: random documents with anchors and aliases load or fail cleanly")
    func fuzzAnchors() {
        var rng = RandomGenerator(seed: 18)
        let keys = ["seed", "model", "input_size", "stage1", "stage2", "num_iters", "lr", "x"]
        let scalars = ["1", "0.5", "1e-5", "010", "1:20", "null", "true", "abc", "'q'", "\"[\""]
        func value(_ depth: Int, _ anchors: inout [String]) -> String {
            let r = rng.next() % 10
            if depth > 0 && r < 2 {
                return "[" + (0..<Int(rng.next() % 4)).map { _ in value(depth - 1, &anchors) }.joined(separator: ", ") + "]"
            }
            if depth > 0 && r < 4 {
                return "{"
                    + (0..<Int(rng.next() % 3)).map { _ in
                        "\(keys[Int(rng.next() % UInt64(keys.count))]): \(value(depth - 1, &anchors))"
                    }.joined(separator: ", ") + "}"
            }
            if r < 6, !anchors.isEmpty { return "*" + anchors[Int(rng.next() % UInt64(anchors.count))] }
            if r < 7 {
                let name = "a\(anchors.count)"
                let v = value(depth - 1, &anchors)
                anchors.append(name)
                return "&\(name) \(v)"
            }
            return scalars[Int(rng.next() % UInt64(scalars.count))]
        }
        for _ in 0..<300 {
            var anchors: [String] = []
            var doc = ""
            for _ in 0..<Int(1 + rng.next() % 6) {
                doc += "\(keys[Int(rng.next() % UInt64(keys.count))]): \(value(4, &anchors))\n"
            }
            if rng.next() % 3 == 0 { doc += Self.aliasBomb(levels: Int(1 + rng.next() % 8)) }
            if let err = loadError(doc) { #expect(err.count < 1200, "\(err.prefix(300))") }
        }
    }
}
