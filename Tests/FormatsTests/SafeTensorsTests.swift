import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

/// Builds a raw safetensors image from a header string and data bytes (for malformed inputs).
func rawSafeTensors(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> Data {
    let h = Array(header.utf8)
    var out = Data()
    var n = (declaredLength ?? UInt64(h.count)).littleEndian
    withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
    out.append(contentsOf: h)
    out.append(contentsOf: data)
    return out
}

/// Expects `body` to throw a SafeTensorsError whose message contains every fragment.
func expectSafeTensorsError(
    _ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected a SafeTensorsError containing \(fragments)", sourceLocation: sourceLocation)
    } catch let e as SafeTensorsError {
        for f in fragments {
            #expect(e.description.contains(f), "error \"\(e)\" lacks \"\(f)\"", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("expected a SafeTensorsError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
}

@Suite("SafeTensors")
struct SafeTensorsTests {
    @Test func roundTripThroughFile() throws {
        let dir = temporaryDirectory("st")
        defer { try? FileManager.default.removeItem(at: dir) }
        let tensors: [String: Tensor] = [
            "b.weight": randn([3, 5], seed: 1, requiresGrad: false),
            "a.bias": randn([7], seed: 2, requiresGrad: false),
            "scalar": Tensor.scalar(-3.25),
            "empty": Tensor(zeros: [0, 4]),
            "z/deep.key \"quoted\"": randn([2, 1, 3], seed: 3, requiresGrad: false),
        ]
        let meta = ["format": "pt", "note": "line\nbreak \"q\" ü"]
        let url = dir.appendingPathComponent("model.safetensors")
        try SafeTensors.write(tensors, metadata: meta, to: url)

        let file = try SafeTensorsFile(url: url)
        #expect(file.keys == tensors.keys.sorted())
        #expect(file.metadata == meta)
        for (k, t) in tensors {
            #expect(try file.shape(of: k) == t.shape)
            #expect(try file.dtype(of: k) == .F32)
            let r = try file.tensor(k)
            #expect(r.shape == t.shape)
            #expect(r.scalars == t.scalars, "\(k) differs after round trip")
        }
        let all = try file.loadAll()
        #expect(Set(all.keys) == Set(tensors.keys))

        // Layout: header length is a multiple of 8, padded with spaces; data follows in key order.
        let bytes = try Data(contentsOf: url)
        let n = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(n % 8 == 0)
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        #expect(header.hasPrefix("{\"__metadata__\""))
        #expect(header.trimmingCharacters(in: .whitespaces).hasSuffix("}"))
        #expect(bytes.count == 8 + n + tensors.values.reduce(0) { $0 + 4 * $1.count })
        // The in-memory serialisation is byte-identical to the file.
        #expect(try SafeTensors.serialize(tensors, metadata: meta) == bytes)
        // No temporary files left behind by the atomic write.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["model.safetensors"])
    }

    @Test func convertsHalfBFloatAndIntegers() throws {
        // F16: 1, −2, 65504 (max), 2^-24 (smallest subnormal), +inf, −0.
        let f16: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x8000]
        // BF16: 1, −3, 2^-126·1.5 region value 0x0060 (a float32 subnormal), 3.140625.
        let bf16: [UInt16] = [0x3F80, 0xC040, 0x0060, 0x4049]
        var data: [UInt8] = []
        for v in f16 + bf16 { data += [UInt8(v & 0xFF), UInt8(v >> 8)] }
        data += [0, 7, 255]  // U8
        data += [0x80]  // I8 −128
        let f64 = (-1.5).bitPattern
        for i in 0..<8 { data.append(UInt8(truncatingIfNeeded: f64 >> (8 * i))) }
        let header = """
            {"h":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},\
            "b":{"dtype":"BF16","shape":[4],"data_offsets":[12,20]},\
            "u":{"dtype":"U8","shape":[3],"data_offsets":[20,23]},\
            "i":{"dtype":"I8","shape":[1],"data_offsets":[23,24]},\
            "d":{"dtype":"F64","shape":[],"data_offsets":[24,32]}}
            """
        let file = try SafeTensorsFile(data: rawSafeTensors(header: header, data: data))
        let h = try file.tensor("h")
        #expect(h.shape == [2, 3])
        #expect(h.scalars[0] == 1 && h.scalars[1] == -2 && h.scalars[2] == 65504)
        #expect(h.scalars[3] == 0x1p-24)
        #expect(h.scalars[4] == .infinity)
        #expect(h.scalars[5] == 0 && h.scalars[5].sign == .minus)
        let b = try file.tensor("b").scalars
        #expect(b[0] == 1 && b[1] == -3 && b[3] == 3.140625)
        #expect(b[2] == Float(bitPattern: 0x0060_0000))
        #expect(try file.tensor("u").scalars == [0, 7, 255])
        #expect(try file.tensor("i").scalars == [-128])
        #expect(try file.tensor("d").scalars == [-1.5])
        #expect(try file.tensor("d").shape == [])
    }

    @Test func halfConversionMatchesFloat16ForEveryBitPattern() throws {
        #if arch(x86_64) || arch(arm64)
        // All 65 536 F16 values through the reader, against Swift's Float16 where available.
        var data: [UInt8] = []
        for v in 0...UInt16.max { data += [UInt8(v & 0xFF), UInt8(v >> 8)] }
        let header = "{\"all\":{\"dtype\":\"F16\",\"shape\":[65536],\"data_offsets\":[0,131072]}}"
        let t = try SafeTensorsFile(data: rawSafeTensors(header: header, data: data)).tensor("all")
        var bad = 0
        for v in 0...UInt16.max {
            let ref = Float(Float16(bitPattern: v))
            let got = t[flat: Int(v)]
            if !(ref == got || (ref.isNaN && got.isNaN)) || ref.sign != got.sign { bad += 1 }
        }
        #expect(bad == 0, "\(bad) F16 bit patterns convert differently from Float16")
        #endif
    }

    @Test func unsupportedDtypesAreNamed() throws {
        // I64 is understood structurally (shape readable) but not converted.
        let header = "{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}"
        let file = try SafeTensorsFile(data: rawSafeTensors(header: header, data: [UInt8](repeating: 1, count: 16)), name: "ids.st")
        #expect(try file.shape(of: "ids") == [2])
        #expect(try file.dtype(of: "ids") == .I64)
        expectSafeTensorsError(["ids.st", "\"ids\"", "[2]", "unsupported dtype I64"]) { _ = try file.tensor("ids") }
        expectSafeTensorsError(["unsupported dtype I64"]) { _ = try file.loadAll() }
        // Unknown dtype strings are rejected at open, naming the key.
        let bad = "{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,2]}}"
        expectSafeTensorsError(["\"w\"", "unsupported dtype \"Q4\"", "[2]"]) {
            _ = try SafeTensorsFile(data: rawSafeTensors(header: bad, data: [0, 0]))
        }
    }

    @Test func rejectsMalformedFiles() throws {
        func open(_ d: Data) throws { _ = try SafeTensorsFile(data: d, name: "bad.safetensors") }
        let good = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
        let eight = [UInt8](repeating: 0, count: 8)

        expectSafeTensorsError(["bad.safetensors", "shorter than the 8-byte"]) { try open(Data([1, 2, 3])) }
        expectSafeTensorsError(["exceeds the 100000000-byte limit"]) {
            try open(rawSafeTensors(header: good, data: eight, declaredLength: UInt64.max))
        }
        expectSafeTensorsError(["exceeds the", "truncated"]) {
            try open(rawSafeTensors(header: good, data: eight, declaredLength: 1000))
        }
        expectSafeTensorsError(["not valid UTF-8"]) {
            var d = rawSafeTensors(header: good, data: eight)
            d[10] = 0xFF
            try open(d)
        }
        expectSafeTensorsError(["not valid JSON"]) { try open(rawSafeTensors(header: "{\"w\": [1, 2", data: [])) }
        expectSafeTensorsError(["JSON object"]) { try open(rawSafeTensors(header: "[1, 2, 3]", data: [])) }
        expectSafeTensorsError(["duplicate key"]) {
            try open(rawSafeTensors(header: "{\"a\":{}, \"a\":{}}", data: []))
        }
        expectSafeTensorsError(["\"w\"", "negative dimension"]) {
            try open(rawSafeTensors(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", data: eight))
        }
        expectSafeTensorsError(["\"w\"", "not an integer"]) {
            try open(rawSafeTensors(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", data: eight))
        }
        expectSafeTensorsError(["\"w\"", "not an integer"]) {
            try open(rawSafeTensors(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999999],\"data_offsets\":[0,8]}}", data: eight))
        }
        expectSafeTensorsError(["\"w\"", "overflows"]) {
            try open(rawSafeTensors(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", data: eight))
        }
        expectSafeTensorsError(["\"w\"", "overflows"]) {
            try open(rawSafeTensors(header: "{\"w\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,8]}}", data: eight))
        }
        expectSafeTensorsError(["\"w\"", "[2]", "outside the 8-byte data section"]) {
            try open(rawSafeTensors(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", data: eight))
        }
        expectSafeTensorsError(["\"w\"", "outside"]) {
            try open(rawSafeTensors(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", data: eight))
        }
        expectSafeTensorsError(["\"w\"", "outside"]) {
            try open(rawSafeTensors(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", data: eight))
        }
        expectSafeTensorsError(["\"w\"", "[3]", "12 bytes", "span 8"]) {
            try open(rawSafeTensors(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", data: eight))
        }
        expectSafeTensorsError(["overlaps"]) {
            try open(
                rawSafeTensors(
                    header: """
                        {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}
                        """, data: eight))
        }
        expectSafeTensorsError(["data_offsets"]) {
            try open(rawSafeTensors(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", data: eight))
        }
        expectSafeTensorsError(["__metadata__", "expected a string"]) {
            try open(rawSafeTensors(header: "{\"__metadata__\":{\"epoch\":3}}", data: []))
        }
        expectSafeTensorsError(["nesting deeper"]) {
            try open(
                rawSafeTensors(header: "{\"a\":" + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "}", data: []))
        }
        // Missing key names the file and lists what is there.
        let f = try SafeTensorsFile(data: rawSafeTensors(header: good, data: eight), name: "ok.st")
        expectSafeTensorsError(["ok.st", "\"nope\"", "no such tensor", "w"]) { _ = try f.tensor("nope") }
        // Missing file.
        expectSafeTensorsError(["/nonexistent/x.safetensors"]) {
            _ = try SafeTensorsFile(url: URL(fileURLWithPath: "/nonexistent/x.safetensors"))
        }
    }

    /// Issue 18: a header length one byte short still parses (the JSON is padded with spaces) but
    /// shifts every tensor by a byte; gaps and trailing bytes are refused the same way.
    @Test func dataSectionMustBeCoveredExactly() throws {
        func open(_ d: Data) throws { _ = try SafeTensorsFile(data: d, name: "shifted.safetensors") }
        let header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}    "
        let data: [UInt8] = [0, 0, 0x80, 0x3F, 0, 0, 0x80, 0x3F]
        #expect(try SafeTensorsFile(data: rawSafeTensors(header: header, data: data)).tensor("w").scalars == [1, 1])
        expectSafeTensorsError(["shifted.safetensors", "cover 8 bytes", "has 9"]) {
            try open(rawSafeTensors(header: header, data: data, declaredLength: UInt64(header.utf8.count - 1)))
        }
        expectSafeTensorsError(["cover 8 bytes", "has 12"]) { try open(rawSafeTensors(header: header, data: data + [0, 0, 0, 0])) }
        expectSafeTensorsError(["\"b\"", "gap of 4 bytes"]) {
            try open(
                rawSafeTensors(
                    header: """
                        {"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}
                        """, data: data + [0, 0, 0, 0]))
        }
    }

    @Test func errorMessagesStaySmallForHugeKeys() throws {
        let key = String(repeating: "k", count: 1_000_000)
        do {
            _ = try SafeTensorsFile(
                data: rawSafeTensors(
                    header: "{\"\(key)\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
                    data: [UInt8](repeating: 0, count: 8)), name: "big.st")
            Issue.record("expected an error")
        } catch {
            #expect(String(describing: error).count < 500, "error is \(String(describing: error).count) characters")
        }
    }

    @Test func zeroSizedTensorsMayShareOffsets() throws {
        let header = """
            {"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},\
            "c":{"dtype":"F16","shape":[0,5],"data_offsets":[4,4]}}
            """
        let f = try SafeTensorsFile(data: rawSafeTensors(header: header, data: [0, 0, 0x80, 0x3F]))
        #expect(try f.tensor("a").shape == [0])
        #expect(try f.tensor("b").scalars == [1])
        #expect(try f.tensor("c").shape == [0, 5])
    }

    @Test func writerRejectsReservedKeyAndMissingDirectory() throws {
        let t = Tensor([1, 2], shape: [2])
        let dir = temporaryDirectory("stw")
        defer { try? FileManager.default.removeItem(at: dir) }
        expectSafeTensorsError(["__metadata__", "reserved"]) {
            try SafeTensors.write(["__metadata__": t], to: dir.appendingPathComponent("x.safetensors"))
        }
        let missing = dir.appendingPathComponent("no/such/dir/x.safetensors")
        do {
            try SafeTensors.write(["t": t], to: missing)
            Issue.record("writing into a missing directory succeeded")
        } catch let e as AtomicFileError {
            #expect(e.reason == .missingDirectory)
            #expect(e.description.contains(missing.path))
            #expect(e.description.contains("does not exist"))
        }
    }

    /// Mutations of a small valid file: byte flips, truncation at every length, hostile header
    /// lengths. Every outcome must be a thrown SafeTensorsError or a file whose tensors all load
    /// (and, being validated, are no larger than the bytes that back them).
    @Test func fuzzMutatedFiles() throws {
        let base = try SafeTensors.serialize(
            [
                "a": randn([3, 4], seed: 11, requiresGrad: false),
                "b": randn([5], seed: 12, requiresGrad: false),
                "c": Tensor.scalar(2),
            ], metadata: ["k": "v"])
        var accepted = 0, rejected = 0
        func check(_ d: Data) {
            do {
                let f = try SafeTensorsFile(data: d)
                var bytes = 0
                for k in f.keys {
                    let e = f.entries[k]!
                    bytes += e.dataRange.count
                    if e.dtype.convertsToFloat {
                        let t = try f.tensor(k)
                        #expect(t.count * e.dtype.byteSize == e.dataRange.count)
                    } else {
                        #expect(throws: SafeTensorsError.self) { try f.tensor(k) }
                    }
                }
                #expect(bytes <= d.count)
                accepted += 1
            } catch is SafeTensorsError {
                rejected += 1
            } catch {
                Issue.record("unexpected error type \(type(of: error)): \(error)")
            }
        }
        // Truncation at every length (only the full file is valid).
        for n in 0..<base.count { check(base.prefix(n)) }
        // Random byte flips, concentrated on the header where parsing happens.
        var rng = RandomGenerator(seed: 2024)
        let headerEnd = 8 + Int(base[0]) + Int(base[1]) << 8
        for _ in 0..<3000 {
            var d = base
            let flips = 1 + rng.randint(4)
            for _ in 0..<flips {
                let i = rng.uniform() < 0.8 ? rng.randint(headerEnd) : rng.randint(d.count)
                d[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            check(d)
        }
        // Hostile declared lengths.
        for declared: UInt64 in [0, 1, 7, UInt64(base.count), UInt64(base.count - 8), 100_000_001, 1 << 40, UInt64.max, 1 << 63] {
            var d = base
            for i in 0..<8 { d[i] = UInt8(truncatingIfNeeded: declared >> (8 * UInt64(i))) }
            check(d)
        }
        // Random garbage headers.
        for _ in 0..<500 {
            let len = rng.randint(64)
            let junk = (0..<len).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            check(rawSafeTensors(header: String(decoding: junk, as: UTF8.self), data: []))
        }
        #expect(accepted >= 1, "the unmodified file must be accepted")
        #expect(rejected > 1000)
        print("[fuzz] safetensors: \(accepted) accepted, \(rejected) rejected with SafeTensorsError")
    }
}
