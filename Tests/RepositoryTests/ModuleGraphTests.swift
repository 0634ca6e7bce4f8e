import Foundation
import TestSupport
import Testing

/// The module graph records dependencies, not history: every target of Package.swift depends on
/// exactly the modules its Swift files import (toolchain modules aside), and only on targets
/// listed before it in the file, which is the layer order Package.swift's top comment draws.
@Suite struct ModuleGraphTests {
    /// Modules of the toolchain and the OS, never declared as dependencies.
    static let platformModules: Set<String> = ["Foundation", "FoundationEssentials", "Dispatch", "Glibc", "Darwin", "Testing", "XCTest", "os"]

    struct Target {
        var name: String
        var kind: String  // target, testTarget, executableTarget, systemLibrary
        var dependencies: [String]
        var path: String
    }

    /// The targets of a Package.swift, in file order: name, kind, declared dependencies (a
    /// product by its module name) and source folder.
    static func targets(in manifest: String) -> [Target] {
        let start = try! NSRegularExpression(pattern: #"\.(target|testTarget|executableTarget|systemLibrary)\(\s*name:\s*"(\w+)""#)
        let text = manifest as NSString
        let matches = start.matches(in: manifest, range: NSRange(location: 0, length: text.length))
        return matches.enumerated().map { i, m in
            let end = i + 1 < matches.count ? matches[i + 1].range.location : text.length
            let body = text.substring(with: NSRange(location: m.range.location, length: end - m.range.location))
            let kind = text.substring(with: m.range(at: 1)), name = text.substring(with: m.range(at: 2))
            var deps: [String] = []
            if let open = body.range(of: "dependencies: [") {
                var depth = 1, idx = open.upperBound
                while idx < body.endIndex && depth > 0 {
                    if body[idx] == "[" { depth += 1 } else if body[idx] == "]" { depth -= 1 }
                    idx = body.index(after: idx)
                }
                var list = String(body[open.upperBound..<idx])
                let product = try! NSRegularExpression(pattern: #"\.product\(\s*name:\s*"(\w+)"\s*,\s*package:\s*"[^"]*"\s*\)"#)
                for p in product.matches(in: list, range: NSRange(list.startIndex..., in: list)) {
                    deps.append((list as NSString).substring(with: p.range(at: 1)))
                }
                list = product.stringByReplacingMatches(in: list, range: NSRange(list.startIndex..., in: list), withTemplate: "")
                let quoted = try! NSRegularExpression(pattern: #""(\w+)""#)
                deps += quoted.matches(in: list, range: NSRange(list.startIndex..., in: list)).map {
                    (list as NSString).substring(with: $0.range(at: 1))
                }
            }
            let pathPattern = try! NSRegularExpression(pattern: #"path:\s*"([^"]+)""#)
            let path =
                pathPattern.firstMatch(in: body, range: NSRange(body.startIndex..., in: body))
                .map { (body as NSString).substring(with: $0.range(at: 1)) }
                ?? (kind == "testTarget" ? "Tests/\(name)" : "Sources/\(name)")
            return Target(name: name, kind: kind, dependencies: deps, path: path)
        }
    }

    /// The modules the Swift files under `folder` import (lines inside multi-line string
    /// literals, such as embedded Python, are not code).
    static func imports(under folder: URL) throws -> Set<String> {
        let pattern = try NSRegularExpression(
            pattern: #"^\s*(?:@testable\s+|@_implementationOnly\s+|(?:public|package|internal)\s+)?import\s+(\w+)\s*$"#)
        var found: Set<String> = []
        guard let files = FileManager.default.enumerator(atPath: folder.path) else { return found }
        for case let rel as String in files where rel.hasSuffix(".swift") {
            let text = try String(contentsOf: folder.appendingPathComponent(rel), encoding: .utf8)
            var closer: String?
            for line in text.components(separatedBy: "\n") {
                if let end = closer {
                    if line.contains(end) { closer = nil }
                    continue
                }
                if line.contains("#\"\"\"") { closer = "\"\"\"#" } else if line.contains("\"\"\"") { closer = "\"\"\"" }
                if let m = pattern.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) {
                    found.insert((line as NSString).substring(with: m.range(at: 1)))
                }
            }
        }
        return found.subtracting(platformModules)
    }

    /// Every difference between what the targets declare and what they import, and every
    /// dependency on a target declared later in the manifest, as messages.
    static func problems(root: URL) throws -> [String] {
        let manifest = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let all = targets(in: manifest)
        let order = Dictionary(all.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [String] = []
        for (i, t) in all.enumerated() where t.kind != "systemLibrary" {
            let imported = try imports(under: root.appendingPathComponent(t.path))
            let declared = Set(t.dependencies)
            for m in imported.subtracting(declared).sorted() { out.append("\(t.name): imports \(m) but does not declare it") }
            for m in declared.subtracting(imported).sorted() { out.append("\(t.name): declares \(m) but no file imports it") }
            for d in t.dependencies where (order[d] ?? -1) > i {
                out.append("\(t.name): depends on \(d), which Package.swift lists after it (a layer above)")
            }
        }
        return out
    }

    @Test func everyTargetDependsOnExactlyWhatItImports() throws {
        let manifest = try String(contentsOf: repositoryRoot.appendingPathComponent("Package.swift"), encoding: .utf8)
        #expect(Self.targets(in: manifest).count > 20, "the manifest parser found too few targets")
        let found = try Self.problems(root: repositoryRoot)
        #expect(found.isEmpty, "\(found.joined(separator: "\n"))")
    }

    /// The check must be able to fail: an undeclared import, an unused dependency and a
    /// dependency on a later target are each reported; a product counts under its module name.
    @Test func theCheckReportsPlantedMismatches() throws {
        let root = temporaryDirectory("module-graph")
        defer { try? FileManager.default.removeItem(at: root) }
        let manifest = """
            let package = Package(name: "x", targets: [
                .systemLibrary(name: "CLib", path: "Sources/CLib"),
                .target(name: "Low", dependencies: ["CLib", .product(name: "Yams", package: "Yams")]),
                .target(name: "Mid", dependencies: ["Low", "High"]),
                .target(name: "High", dependencies: [
                    "Mid",
                ]),
                .testTarget(name: "MidTests", dependencies: ["Mid", "Low"]),
            ])
            """
        try manifest.write(to: root.appendingPathComponent("Package.swift"), atomically: true, encoding: .utf8)
        let files = [
            "Sources/Low/a.swift": "import CLib\nimport Yams\nimport Foundation\n",
            "Sources/Mid/a.swift": "@testable import Low\nimport High\n",
            "Sources/High/a.swift": "import Mid\nimport Low\n",
            "Tests/MidTests/a.swift": "import Testing\n@testable import Mid\nlet py = \"\"\"\nimport sys\n\"\"\"\n",
        ]
        for (path, text) in files {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        #expect(Self.targets(in: manifest).map(\.dependencies) == [[], ["Yams", "CLib"], ["Low", "High"], ["Mid"], ["Mid", "Low"]])
        #expect(
            try Self.problems(root: root) == [
                "Mid: depends on High, which Package.swift lists after it (a layer above)",
                "High: imports Low but does not declare it",
                "MidTests: declares Low but no file imports it",
            ])
    }
}
