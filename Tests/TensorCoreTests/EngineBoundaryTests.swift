import Foundation
import TestSupport
import Testing

/// The engine boundary (issue #11): raw pointers stay inside Sources/TensorCore except at the
/// documented kernel extension points (docs/architecture.md, "Kernel extension points"). The
/// compiler already stops code above TensorCore from reaching a tensor's memory (`ptr` and the
/// buffer accessors are internal); this scan also catches pointers made from Swift arrays and
/// `Data`, and C calls that take them.
@Suite struct EngineBoundaryTests {
    /// What counts as pointer use: the unsafe pointer types, the `withUnsafe…` family, `.ptr`,
    /// opaque C handles and base addresses.
    static let pattern = try! NSRegularExpression(
        pattern: #"Unsafe(Mutable)?(Raw)?(Buffer)?Pointer|withUnsafe|\.ptr\b|OpaquePointer|baseAddress"#)

    /// Every file above TensorCore allowed to touch pointers, with the exact number of lines that
    /// do, and why. A new site anywhere, or one more line in a listed file, fails the test; so
    /// does a stale count (keep the list exact when removing a site).
    static let allowed: [String: (lines: Int, reason: String)] = [
        "Sources/Vision/Image.swift": (
            12,
            "libjpeg/libpng (CImageCodecs) decode from ReadOnlyBytes.withUnsafeKernelBytes and encode from the pixel array; their output buffers and error strings are C pointers"
        ),
        "Sources/Vision/SampleImage.swift": (
            12, "libpng (CImageCodecs) label/depth PNG decode via ReadOnlyBytes.withUnsafeKernelBytes and encode; C output buffers"
        ),
        "Sources/DVT/Visuals.swift": (3, "LAPACKE_ssyevd (CLapacke) works in place on the PCA covariance and eigenvalue arrays"),
        "Sources/Distributed/Communicator.swift": (
            4,
            "MPI_Allreduce works in place: the fused gradient tensor through Tensor.withUnsafeMutableKernelBuffer, the validation sums as a [Double]"
        ),
        "Sources/Bench/Bench.swift": (7, "the raw cblas_sgemm reference timings of `dvt bench`, through Tensor.withUnsafe(Mutable)KernelBuffer"),
    ]

    static var sourcesDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources")
    }

    /// Pointer-use lines (path relative to the package, 1-based line, text) of every Swift file
    /// under `root` outside Sources/TensorCore. Comment lines are skipped: naming an extension
    /// point in prose is not using one.
    static func sites(under root: URL) throws -> [(file: String, line: Int, text: String)] {
        let base = root.deletingLastPathComponent().path + "/"
        var out: [(String, Int, String)] = []
        let files = FileManager.default.enumerator(atPath: root.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        for rel in files.sorted() {
            let url = root.appendingPathComponent(rel)
            let name = String(url.path.dropFirst(base.count))
            if name.hasPrefix("Sources/TensorCore/") { continue }
            let lines = try String(contentsOf: url, encoding: .utf8).components(separatedBy: "\n")
            for (i, line) in lines.enumerated() {
                if line.trimmingCharacters(in: .whitespaces).hasPrefix("//") { continue }
                if pattern.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) != nil {
                    out.append((name, i + 1, line.trimmingCharacters(in: .whitespaces)))
                }
            }
        }
        return out
    }

    /// The violations of `allowed` among `sites`, as messages naming file:line.
    static func violations(_ sites: [(file: String, line: Int, text: String)]) -> [String] {
        var problems: [String] = []
        let byFile = Dictionary(grouping: sites, by: \.file)
        for (file, hits) in byFile.sorted(by: { $0.key < $1.key }) {
            guard let budget = allowed[file] else {
                problems += hits.map { "\($0.file):\($0.line): raw pointer outside TensorCore: \($0.text)" }
                continue
            }
            if hits.count != budget.lines {
                problems.append(
                    "\(file): \(hits.count) pointer lines, the allow-list says \(budget.lines) (\(budget.reason)); lines "
                        + hits.map { "\($0.line)" }.joined(separator: ", "))
            }
        }
        for file in allowed.keys.sorted() where byFile[file] == nil {
            problems.append("\(file): on the allow-list but has no pointer lines any more; remove it")
        }
        return problems
    }

    @Test func noRawPointersAboveTensorCoreOutsideTheExtensionPoints() throws {
        let found = try Self.sites(under: Self.sourcesDirectory)
        #expect(!found.isEmpty, "the scan found nothing at all: is \(Self.sourcesDirectory.path) the package's Sources?")
        let problems = Self.violations(found)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }

    /// The scan must be able to fail: a planted site in an unlisted file, and one extra line in a
    /// listed file, are both reported with their file:line.
    @Test func theScanReportsPlantedSites() throws {
        let root = temporaryDirectory("boundary").appendingPathComponent("Sources")
        defer { try? FileManager.default.removeItem(at: root.deletingLastPathComponent()) }
        for dir in ["Formats", "TensorCore", "Bench"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(dir), withIntermediateDirectories: true)
        }
        try "let n = 1\nlet p = x.ptr + 3\n// withUnsafeBytes in a comment is fine\n".write(
            to: root.appendingPathComponent("Formats/Planted.swift"), atomically: true, encoding: .utf8)
        try "let p = x.ptr\n".write(to: root.appendingPathComponent("TensorCore/Kernel.swift"), atomically: true, encoding: .utf8)
        try "a.withUnsafeKernelBuffer {\nb.baseAddress\nc.baseAddress\nd.baseAddress\n".write(
            to: root.appendingPathComponent("Bench/Bench.swift"), atomically: true, encoding: .utf8)
        let found = try Self.sites(under: root)
        #expect(
            found.map { "\($0.file):\($0.line)" } == [
                "Sources/Bench/Bench.swift:1", "Sources/Bench/Bench.swift:2",
                "Sources/Bench/Bench.swift:3", "Sources/Bench/Bench.swift:4",
                "Sources/Formats/Planted.swift:2",
            ])
        let problems = Self.violations(found)
        #expect(problems.contains { $0.hasPrefix("Sources/Formats/Planted.swift:2: raw pointer outside TensorCore") })
        #expect(problems.contains { $0.hasPrefix("Sources/Bench/Bench.swift: 4 pointer lines, the allow-list says 7") })
    }
}
