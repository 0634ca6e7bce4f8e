import Foundation
import TensorCore
import TestSupport
import Testing
import Vision

/// A seeded smooth test pattern with some texture (JPEG-friendly but not flat).
func testPattern(width: Int, height: Int, seed: UInt64) -> RGBImage {
    var rng = RandomGenerator(seed: seed)
    var img = RGBImage(width: width, height: height)
    let phase = (0..<3).map { _ in rng.uniform(0, 6.28) }
    for y in 0..<height {
        for x in 0..<width {
            for c in 0..<3 {
                let v = 127.5 + 100 * sin(Float(x) * 0.07 + Float(y) * 0.05 * Float(c + 1) + phase[c]) + rng.uniform(-8, 8)
                img[x: x, y: y, c: c] = UInt8(max(0, min(255, v.rounded())))
            }
        }
    }
    return img
}

func randomImage(width: Int, height: Int, seed: UInt64) -> RGBImage {
    var rng = RandomGenerator(seed: seed)
    return RGBImage(width: width, height: height, pixels: (0..<(width * height * 3)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
}

// MARK: A minimal PNG builder (stored deflate blocks) for colour types our encoder doesn't write.

func crc32(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = (c >> 1) ^ (0xEDB8_8320 & (0 &- (c & 1))) }  // PNG/zlib CRC-32 polynomial
    }
    return ~c
}

func bigEndian32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

func pngChunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
    let body = Array(type.utf8) + data
    return bigEndian32(UInt32(data.count)) + body + bigEndian32(crc32(body))
}

/// zlib stream of `raw` using uncompressed (stored) deflate blocks.
func zlibStored(_ raw: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0x78, 0x01]
    var i = 0
    repeat {
        let n = min(65535, raw.count - i)
        let final: UInt8 = i + n == raw.count ? 1 : 0
        out += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
        out += raw[i..<(i + n)]
        i += n
    } while i < raw.count
    var a: UInt32 = 1, b: UInt32 = 0  // Adler-32
    for x in raw { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
    return out + bigEndian32(b << 16 | a)
}

/// A PNG with the given IHDR fields and unfiltered scanlines `rows` (bytes per row as stored).
func buildPNG(width: Int, height: Int, bitDepth: UInt8, colorType: UInt8, rows: [[UInt8]], extra: [[UInt8]] = []) -> Data {
    var raw: [UInt8] = []
    for r in rows { raw += [0] + r }  // filter type 0 (None)
    var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    out += pngChunk("IHDR", bigEndian32(UInt32(width)) + bigEndian32(UInt32(height)) + [bitDepth, colorType, 0, 0, 0])
    for e in extra { out += e }
    out += pngChunk("IDAT", zlibStored(raw))
    out += pngChunk("IEND", [])
    return Data(out)
}

func expectImageError(_ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected an ImageError containing \(fragments)", sourceLocation: sourceLocation)
    } catch let e as ImageError {
        for f in fragments {
            #expect(e.description.contains(f), "error \"\(e)\" lacks \"\(f)\"", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("expected an ImageError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
}

@Suite("Image codecs")
struct ImageCodecTests {
    static let gradientURL = fixturesDirectory.appendingPathComponent("image/gradient.jpg")
    static let photoURL = repositoryRoot.appendingPathComponent("Datasets/photos/clock_blur.jpg")

    @Test func pngRoundTripIsExact() throws {
        for (i, (w, h)) in [(1, 1), (17, 5), (64, 48)].enumerated() {
            let img = randomImage(width: w, height: h, seed: UInt64(i))
            let back = try RGBImage(data: img.pngData())
            #expect(back == img)
        }
        let dir = temporaryDirectory("png")
        defer { try? FileManager.default.removeItem(at: dir) }
        let img = testPattern(width: 40, height: 30, seed: 3)
        let url = dir.appendingPathComponent("p.PNG")
        try img.write(to: url)
        #expect(try RGBImage(contentsOf: url) == img)
    }

    @Test func jpegRoundTripIsClose() throws {
        let img = testPattern(width: 96, height: 64, seed: 9)
        var last = Double.infinity
        for q in [50, 90, 100] {
            let back = try RGBImage(data: img.jpegData(quality: q))
            #expect(back.width == img.width && back.height == img.height)
            let mae = zip(back.pixels, img.pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(img.pixels.count)
            #expect(mae < 8, "quality \(q): mean abs error \(mae)")
            #expect(mae <= last + 0.01, "higher quality should not be worse")
            last = mae
        }
        // At quality 100 what remains is mostly 4:2:0 chroma subsampling of the ±8 noise.
        #expect(last < 4, "quality 100 mean abs error \(last)")
        let dir = temporaryDirectory("jpg")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("p.jpeg")
        try img.write(to: url, quality: 95)
        let fromFile = try RGBImage(contentsOf: url)
        #expect(fromFile == (try RGBImage(data: img.jpegData(quality: 95))))
        expectImageError(["p.gif", "unknown image extension"]) { try img.write(to: dir.appendingPathComponent("p.gif")) }
        expectImageError(["quality must be in 1...100"]) { _ = try img.jpegData(quality: 0) }
    }

    @Test func progressiveDecodesLikeBaseline() throws {
        let img = testPattern(width: 80, height: 56, seed: 4)
        let base = try RGBImage.encodeJPEG(pixels: img.pixels, width: 80, height: 56, components: 3, quality: 85, name: "t")
        let prog = try RGBImage.encodeJPEG(pixels: img.pixels, width: 80, height: 56, components: 3, quality: 85, progressive: true, name: "t")
        #expect(base != prog)
        // Same quantised coefficients, only split into scans: identical pixels.
        #expect(try RGBImage(data: base) == (try RGBImage(data: prog)))
    }

    @Test func grayscaleJPEGBecomesRGB() throws {
        let w = 48, h = 32
        let gray = (0..<(w * h)).map { UInt8(($0 % w) * 255 / (w - 1)) }
        let data = try RGBImage.encodeJPEG(pixels: gray, width: w, height: h, components: 1, quality: 100, name: "g")
        let img = try RGBImage(data: data)
        var maxErr = 0
        for i in 0..<(w * h) {
            #expect(img.pixels[3 * i] == img.pixels[3 * i + 1] && img.pixels[3 * i] == img.pixels[3 * i + 2])
            maxErr = max(maxErr, abs(Int(img.pixels[3 * i]) - Int(gray[i])))
        }
        #expect(maxErr <= 3)
    }

    /// PIL treats every 4-component JPEG as Adobe-inverted CMYK and converts with
    /// R = k − MULDIV255(255 − c, k) on the stored samples; a plain (non-inverted) reading would
    /// give (255 − c)(255 − k)/255 instead, which these values tell apart.
    @Test func cmykJPEGFollowsPILInvertedConvention() throws {
        let w = 16, h = 16
        let stored: [UInt8] = [200, 100, 50, 180]
        let cmyk = (0..<(w * h)).flatMap { _ in stored }
        let data = try RGBImage.encodeJPEG(pixels: cmyk, width: w, height: h, components: 4, quality: 100, name: "cmyk")
        let img = try RGBImage(data: data)
        func muldiv255(_ a: Int, _ b: Int) -> Int { let t = a * b + 128; return ((t >> 8) + t) >> 8 }
        let k = Int(stored[3])
        let expected = (0..<3).map { k - muldiv255(255 - Int(stored[$0]), k) }  // [141, 71, 35]
        #expect(expected == [141, 71, 35])
        for i in 0..<(w * h) {
            for c in 0..<3 {
                #expect(abs(Int(img.pixels[3 * i + c]) - expected[c]) <= 2, "pixel \(i) channel \(c): \(img.pixels[3 * i + c]) vs \(expected[c])")
            }
        }
    }

    @Test func pngColourTypesConvertToRGB() throws {
        // 16-bit RGB: the high byte of each sample is kept.
        let rgb16 = buildPNG(
            width: 2, height: 1, bitDepth: 16, colorType: 2,
            rows: [[0x12, 0x34, 0xAB, 0xCD, 0xFF, 0xFF, 0x00, 0x01, 0x80, 0x00, 0x7F, 0xFF]])
        #expect(try RGBImage(data: rgb16).pixels == [0x12, 0xAB, 0xFF, 0x00, 0x80, 0x7F])
        // Palette with transparency: colours come from the palette, alpha is dropped.
        let pal = buildPNG(
            width: 3, height: 1, bitDepth: 8, colorType: 3, rows: [[2, 0, 1]],
            extra: [pngChunk("PLTE", [10, 20, 30, 40, 50, 60, 70, 80, 90]), pngChunk("tRNS", [0, 128, 255])])
        #expect(try RGBImage(data: pal).pixels == [70, 80, 90, 10, 20, 30, 40, 50, 60])
        // 1-bit gray: bits 1,0,1 → 255, 0, 255.
        let g1 = buildPNG(width: 3, height: 1, bitDepth: 1, colorType: 0, rows: [[0b1010_0000]])
        #expect(try RGBImage(data: g1).pixels == [255, 255, 255, 0, 0, 0, 255, 255, 255])
        // Gray + alpha 8-bit.
        let ga = buildPNG(width: 2, height: 1, bitDepth: 8, colorType: 4, rows: [[7, 0, 200, 255]])
        #expect(try RGBImage(data: ga).pixels == [7, 7, 7, 200, 200, 200])
        // RGBA from our own encoder: alpha dropped.
        let rgba = try RGBImage.encodePNG(pixels: [1, 2, 3, 0, 4, 5, 6, 255], width: 2, height: 1, components: 4, name: "rgba")
        #expect(try RGBImage(data: rgba).pixels == [1, 2, 3, 4, 5, 6])
        let gray = try RGBImage.encodePNG(pixels: [9, 250], width: 1, height: 2, components: 1, name: "gray")
        #expect(try RGBImage(data: gray).pixels == [9, 9, 9, 250, 250, 250])
    }

    @Test func clearErrorsForBadInputs() throws {
        expectImageError(["<memory>", "file is empty"]) { _ = try RGBImage(data: Data()) }
        expectImageError(["unsupported image format", "47 49 46 38"]) { _ = try RGBImage(data: Data("GIF89a......".utf8)) }
        expectImageError(["/nonexistent/x.jpg"]) { _ = try RGBImage(contentsOf: URL(fileURLWithPath: "/nonexistent/x.jpg")) }
        let jpeg = try Data(contentsOf: Self.gradientURL)
        // Cut in the middle of the entropy-coded data.
        expectImageError(["half.jpg", "JPEG", "truncated"]) { _ = try RGBImage(data: jpeg.prefix(jpeg.count / 2), name: "half.jpg") }
        // A header claiming 30000 × 30000 (within libjpeg's 65500 limit, above PIL's bomb limit)
        // is refused before any pixel buffer is allocated.
        var huge = jpeg
        let sof = try #require(huge.indices.first { huge[$0] == 0xFF && huge[$0 + 1] == 0xC0 })
        for i in [sof + 5, sof + 7] { huge[i] = 0x75 }  // 0x7530 = 30000
        for i in [sof + 6, sof + 8] { huge[i] = 0x30 }
        expectImageError(["huge.jpg", "30000x30000", "exceed"]) { _ = try RGBImage(data: huge, name: "huge.jpg") }
        expectImageError(["exceed the limit of 100 pixels"]) { _ = try RGBImage(data: jpeg, maxPixels: 100) }
        let png = try randomImage(width: 20, height: 20, seed: 1).pngData()
        expectImageError(["cut.png", "PNG", "truncated"]) { _ = try RGBImage(data: png.prefix(png.count - 30), name: "cut.png") }
        expectImageError(["exceed the limit of 399 pixels"]) { _ = try RGBImage(data: png, maxPixels: 399) }
        var badCRC = png
        badCRC[40] ^= 0x55
        expectImageError(["PNG"]) { _ = try RGBImage(data: badCRC) }
    }

    /// Truncation at many points and random corruption of real JPEGs (the fixture and a photo):
    /// each decode must either throw ImageError or return a plausible image; a crash or exit()
    /// from inside libjpeg would kill the test process.
    @Test func fuzzCorruptJPEGs() throws {
        var rng = RandomGenerator(seed: 31337)
        var decoded = 0, rejected = 0
        func check(_ d: Data) {
            do {
                let img = try RGBImage(data: d, maxPixels: 1 << 22)
                #expect(img.width > 0 && img.height > 0 && img.width * img.height <= 1 << 22)
                decoded += 1
            } catch is ImageError {
                rejected += 1
            } catch {
                Issue.record("unexpected error type \(type(of: error))")
            }
        }
        for url in [Self.gradientURL, Self.photoURL] {
            let base = try Data(contentsOf: url)
            let step = max(1, base.count / 400)
            for n in stride(from: 0, to: base.count, by: step) { check(base.prefix(n)) }
            for _ in 0..<300 {
                var d = base
                for _ in 0..<(1 + rng.randint(8)) {
                    // Half the flips in the first 700 bytes (markers, tables, SOF), half anywhere.
                    let i = rng.uniform() < 0.5 ? rng.randint(min(700, d.count)) : rng.randint(d.count)
                    d[i] = UInt8(truncatingIfNeeded: rng.next())
                }
                check(d)
            }
        }
        // A progressive file, truncated scan by scan.
        let prog = try RGBImage.encodeJPEG(
            pixels: testPattern(width: 64, height: 64, seed: 2).pixels, width: 64, height: 64,
            components: 3, quality: 80, progressive: true, name: "p")
        for n in stride(from: 0, to: prog.count, by: 17) { check(prog.prefix(n)) }
        #expect(decoded > 0 && rejected > 100)
        print("[fuzz] jpeg: \(decoded) decoded, \(rejected) rejected with ImageError")
    }

    @Test func fuzzCorruptPNGs() throws {
        var rng = RandomGenerator(seed: 4242)
        var decoded = 0, rejected = 0
        func check(_ d: Data) {
            do {
                let img = try RGBImage(data: d, maxPixels: 1 << 22)
                #expect(img.width * img.height <= 1 << 22)
                decoded += 1
            } catch is ImageError {
                rejected += 1
            } catch {
                Issue.record("unexpected error type \(type(of: error))")
            }
        }
        let base = [UInt8](try randomImage(width: 12, height: 10, seed: 8).pngData())
        for n in 0..<base.count { check(Data(base.prefix(n))) }
        // Corrupt bytes inside a chunk and then fix its CRC, so the damage reaches the IHDR
        // checks and the inflater instead of stopping at the checksum.
        var chunks: [(start: Int, length: Int)] = []
        var p = 8
        while p + 8 <= base.count {
            let len = Int(base[p]) << 24 | Int(base[p + 1]) << 16 | Int(base[p + 2]) << 8 | Int(base[p + 3])
            chunks.append((p, len))
            p += 12 + len
        }
        for _ in 0..<1500 {
            var d = base
            let (start, len) = chunks[rng.randint(chunks.count)]
            guard len > 0 else { continue }
            for _ in 0..<(1 + rng.randint(3)) { d[start + 8 + rng.randint(len)] = UInt8(truncatingIfNeeded: rng.next()) }
            let crc = bigEndian32(crc32(Array(d[(start + 4)..<(start + 8 + len)])))
            for i in 0..<4 { d[start + 8 + len + i] = crc[i] }
            check(Data(d))
        }
        // Plain random flips (mostly caught by CRCs).
        for _ in 0..<500 {
            var d = base
            d[rng.randint(d.count)] = UInt8(truncatingIfNeeded: rng.next())
            check(Data(d))
        }
        #expect(decoded > 0 && rejected > 100)
        print("[fuzz] png: \(decoded) decoded, \(rejected) rejected with ImageError")
    }
}
