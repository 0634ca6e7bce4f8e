import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

/// Runs `python3 -c script args…`; returns (exit status, stdout, stderr), or nil if python3 cannot
/// be started.
func runPython(_ script: String, _ args: [String] = []) -> (status: Int32, out: String, err: String)? {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", script] + args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    do { try p.run() } catch { return nil }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Whether python3 with numpy is on this machine (CI has both; elsewhere the interop tests skip).
let pythonHasNumpy: Bool = runPython("import numpy")?.status == 0

func expectNpyError(_ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected an NpyError containing \(fragments)", sourceLocation: sourceLocation)
    } catch let e as NpyError {
        for f in fragments {
            #expect(e.description.contains(f), "error \"\(e)\" lacks \"\(f)\"", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("expected an NpyError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
}

/// An .npy image with a given version and header text (padding not enforced) and raw data.
func rawNpy(major: UInt8 = 1, header: String, data: [UInt8], declaredLength: Int? = nil) -> Data {
    var out = Data([0x93] + Array("NUMPY".utf8) + [major, 0])
    let h = Array(header.utf8)
    let n = declaredLength ?? h.count
    if major == 1 {
        out.append(contentsOf: [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF)])
    } else {
        for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: n >> (8 * i))) }
    }
    out.append(contentsOf: h)
    out.append(contentsOf: data)
    return out
}

func littleEndianBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { v -> [UInt8] in
        let b = v.bitPattern; return (0..<4).map { UInt8(truncatingIfNeeded: b >> (8 * $0)) }
    }
}

@Suite("Npy")
struct NpyTests {
    static let shapes: [[Int]] = [[2, 3], [], [5], [0, 3], [2, 3, 4], [1, 1, 1, 7]]

    @Test func roundTrip() throws {
        let dir = temporaryDirectory("npy")
        defer { try? FileManager.default.removeItem(at: dir) }
        for (i, shape) in Self.shapes.enumerated() {
            let t = randn(shape, seed: UInt64(i + 1), requiresGrad: false)
            let url = dir.appendingPathComponent("a\(i).npy")
            try Npy.write(t, to: url)
            let r = try Npy.read(url)
            #expect(r.shape == shape)
            #expect(r.scalars == t.scalars)
            let bytes = try Data(contentsOf: url)
            #expect(bytes == Npy.serialize(t))
            #expect(try Npy.read(data: bytes).scalars == t.scalars)
            // Version 1.0, preamble padded to numpy's 64-byte alignment, header ends in '\n'.
            #expect(bytes[6] == 1 && bytes[7] == 0)
            let hlen = Int(bytes[8]) | Int(bytes[9]) << 8
            #expect((10 + hlen) % 64 == 0)
            #expect(bytes[10 + hlen - 1] == 0x0A)
            #expect(bytes.count == 10 + hlen + 4 * t.count)
        }
        let header = String(decoding: Npy.serialize(Tensor(zeros: [5])).dropFirst(10), as: UTF8.self)
        #expect(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }"))
    }

    @Test func readsOtherVersionsAndFloatWidths() throws {
        let values: [Float] = [1, -2.5, 0.125, 1024]
        // Version 2.0 and 3.0 headers (4-byte length), extra spacing, double quotes, list shape.
        let v2 = rawNpy(major: 2, header: "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": [2, 2]}  \n", data: littleEndianBytes(values))
        let t2 = try Npy.read(data: v2)
        #expect(t2.shape == [2, 2] && t2.scalars == values)
        let v3 = rawNpy(major: 3, header: "{'shape': (4,), 'fortran_order': False, 'descr': '<f4'}\n", data: littleEndianBytes(values))
        #expect(try Npy.read(data: v3).scalars == values)
        // '<f2': 1.0, −2.0, 0.5.
        let f2 = rawNpy(header: "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }\n", data: [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38])
        #expect(try Npy.read(data: f2).scalars == [1, -2, 0.5])
        // '<f8'.
        var f8: [UInt8] = []
        for d in [3.5, -0.25] { for i in 0..<8 { f8.append(UInt8(truncatingIfNeeded: d.bitPattern >> (8 * UInt64(i)))) } }
        let t8 = try Npy.read(data: rawNpy(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 1), }\n", data: f8))
        #expect(t8.shape == [2, 1] && t8.scalars == [3.5, -0.25])
    }

    @Test func rejectsUnsupportedAndMalformed() {
        let four = littleEndianBytes([1, 2, 3, 4])
        func read(_ d: Data) throws { _ = try Npy.read(data: d, name: "x.npy") }
        expectNpyError(["x.npy", "fortran_order True"]) {
            try read(rawNpy(header: "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n", data: four))
        }
        expectNpyError(["big-endian", "'>f4'"]) {
            try read(rawNpy(header: "{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }\n", data: four))
        }
        expectNpyError(["unsupported dtype '<i4'"]) {
            try read(rawNpy(header: "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }\n", data: four))
        }
        expectNpyError(["structured dtypes"]) {
            try read(rawNpy(header: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }\n", data: four))
        }
        expectNpyError(["magic"]) { try read(Data("PK\u{03}\u{04}-not-an-npy-file".utf8)) }
        expectNpyError(["too short"]) { try read(Data([0x93, 0x4E])) }
        expectNpyError(["version 9.0"]) {
            var d = rawNpy(header: "{}", data: [])
            d[6] = 9
            try read(d)
        }
        expectNpyError(["needs 16 data bytes", "has 12"]) {
            try read(rawNpy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n", data: Array(four.prefix(12))))
        }
        expectNpyError(["needs 16 data bytes", "has 20"]) {
            try read(rawNpy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n", data: four + [0, 0, 0, 0]))
        }
        expectNpyError(["negative dimension"]) {
            try read(rawNpy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }\n", data: four))
        }
        expectNpyError(["overflows"]) {
            try read(rawNpy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }\n", data: four))
        }
        expectNpyError(["dimension too large"]) {
            try read(rawNpy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }\n", data: four))
        }
        expectNpyError(["must contain 'descr', 'fortran_order' and 'shape'"]) {
            try read(rawNpy(header: "{'descr': '<f4', 'shape': (4,), }\n", data: four))
        }
        expectNpyError(["unexpected key 'extra'"]) {
            try read(rawNpy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'extra': 1}\n", data: four))
        }
        expectNpyError(["runs past the end"]) {
            try read(rawNpy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n", data: [], declaredLength: 60000))
        }
        expectNpyError(["exceeds the 1048576-byte limit"]) {
            try read(rawNpy(major: 2, header: "{}", data: [], declaredLength: Int(UInt32.max)))
        }
        expectNpyError(["not ASCII"]) {
            try read(rawNpy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'é': 1}\n", data: four))
        }
        expectNpyError(["/nonexistent/a.npy"]) { _ = try Npy.read(URL(fileURLWithPath: "/nonexistent/a.npy")) }
    }

    /// Truncation at every length and random byte flips of small valid files: a thrown NpyError or
    /// a tensor backed by exactly the bytes present, never a crash.
    @Test func fuzzMutatedFiles() {
        let bases = [Npy.serialize(randn([3, 5], seed: 5, requiresGrad: false)), Npy.serialize(Tensor.scalar(1))]
        var accepted = 0, rejected = 0
        func check(_ d: Data) {
            do {
                let t = try Npy.read(data: d)
                #expect(t.count * 2 <= d.count)  // at least 2 bytes per element ('<f2')
                accepted += 1
            } catch is NpyError {
                rejected += 1
            } catch {
                Issue.record("unexpected error type \(type(of: error)): \(error)")
            }
        }
        var rng = RandomGenerator(seed: 77)
        for base in bases {
            for n in 0..<base.count { check(base.prefix(n)) }
            let headerEnd = 10 + Int(base[8]) + Int(base[9]) << 8
            for _ in 0..<2000 {
                var d = base
                for _ in 0..<(1 + rng.randint(3)) {
                    let i = rng.uniform() < 0.85 ? rng.randint(headerEnd) : rng.randint(d.count)
                    d[i] = UInt8(truncatingIfNeeded: rng.next())
                }
                check(d)
            }
            // Header length fields claiming huge sizes.
            for v: UInt8 in [2, 3] {
                var d = base
                d[6] = v
                check(d)
            }
        }
        #expect(accepted >= 2)
        #expect(rejected > 1000)
        print("[fuzz] npy: \(accepted) accepted, \(rejected) rejected with NpyError")
    }

    @Test(.enabled(if: pythonHasNumpy, "python3 with numpy is not available; skipping the np.load interop check"))
    func numpyLoadsWhatWeWrite() throws {
        let dir = temporaryDirectory("npy-py")
        defer { try? FileManager.default.removeItem(at: dir) }
        var paths: [String] = []
        var tensors: [Tensor] = []
        for (i, shape) in Self.shapes.enumerated() {
            let t = randn(shape, seed: UInt64(100 + i), requiresGrad: false)
            let url = dir.appendingPathComponent("w\(i).npy")
            try Npy.write(t, to: url)
            paths.append(url.path)
            tensors.append(t)
        }
        // numpy reports shape, dtype, order and the little-endian bytes of each array.
        let script = """
            import sys, numpy as np
            for p in sys.argv[1:]:
                a = np.load(p, allow_pickle=False)
                print(a.dtype.str, a.flags['C_CONTIGUOUS'], list(a.shape), a.astype('<f4').tobytes().hex())
            """
        let r = try #require(runPython(script, paths))
        #expect(r.status == 0, "python failed: \(r.err)")
        let lines = r.out.split(separator: "\n")
        #expect(lines.count == tensors.count)
        for (line, t) in zip(lines, tensors) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            #expect(parts.count >= 3)
            #expect(parts[0] == "<f4")
            #expect(parts[1] == "True")
            let shapeText = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
            #expect(line.contains(shapeText), "numpy shape in \(line) vs \(t.shape)")
            let hex = littleEndianBytes(t.scalars).map { String(format: "%02x", $0) }.joined()
            #expect(parts.last.map(String.init) == hex, "numpy sees different values for shape \(t.shape)")
        }
    }

    @Test(.enabled(if: pythonHasNumpy, "python3 with numpy is not available; skipping the np.save interop check"))
    func weReadWhatNumpyWrites() throws {
        let dir = temporaryDirectory("npy-py2")
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = """
            import sys, os, numpy as np
            from numpy.lib import format as fmt
            d = sys.argv[1]
            a = (np.arange(24, dtype=np.float64).reshape(2, 3, 4) * 0.5 - 3.0)
            np.save(os.path.join(d, 'f4.npy'), a.astype('<f4'))
            np.save(os.path.join(d, 'f2.npy'), a.astype('<f2'))
            np.save(os.path.join(d, 'f8.npy'), a)
            np.save(os.path.join(d, 'scalar.npy'), np.float32(7.5))
            for v in [(2, 0), (3, 0)]:
                with open(os.path.join(d, 'v%d.npy' % v[0]), 'wb') as f:
                    fmt.write_array(f, a.astype('<f4'), version=v)
            np.save(os.path.join(d, 'fortran.npy'), np.asfortranarray(a.astype('<f4')))
            np.save(os.path.join(d, 'big.npy'), a.astype('>f4'))
            np.save(os.path.join(d, 'int.npy'), np.arange(3, dtype='<i8'))
            """
        let r = try #require(runPython(script, [dir.path]))
        #expect(r.status == 0, "python failed: \(r.err)")
        let expected = (0..<24).map { Float($0) * 0.5 - 3 }
        for name in ["f4", "f2", "f8", "v2", "v3"] {
            let t = try Npy.read(dir.appendingPathComponent("\(name).npy"))
            #expect(t.shape == [2, 3, 4], "\(name)")
            #expect(t.scalars == expected, "\(name)")
        }
        let s = try Npy.read(dir.appendingPathComponent("scalar.npy"))
        #expect(s.shape == [] && s.scalars == [7.5])
        expectNpyError(["fortran.npy", "fortran_order True"]) { _ = try Npy.read(dir.appendingPathComponent("fortran.npy")) }
        expectNpyError(["big.npy", "big-endian"]) { _ = try Npy.read(dir.appendingPathComponent("big.npy")) }
        expectNpyError(["int.npy", "unsupported dtype '<i8'"]) { _ = try Npy.read(dir.appendingPathComponent("int.npy")) }
    }
}
