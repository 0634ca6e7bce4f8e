import CImageCodecs
import Formats
import Foundation
import TensorCore

/// A one-sample-per-pixel PNG read without colour conversion: label masks (a VOC palette PNG
/// gives its palette *indices*, as PIL's mode "P" array does; ADE20K's gray PNGs their values)
/// and 16-bit depth maps (NYUv2 `sync_depth_*.png`, millimetres). `RGBImage` would expand a
/// palette to colours and reduce 16-bit samples to 8, losing exactly what these files carry.
public struct SampleImage: Sendable, Equatable {
    /// How the file stores its samples (PNG IHDR colour type).
    public enum Kind: String, Sendable {
        case palette, gray
    }

    public let width: Int
    public let height: Int
    /// Row-major samples, `samples[y·width + x]`.
    public var samples: [UInt16]
    public let kind: Kind
    /// Bits per sample in the file (1, 2, 4, 8 or 16).
    public let bitDepth: Int
    /// The palette's RGB triplets for `.palette`, else empty.
    public var palette: [UInt8] = []

    public init(width: Int, height: Int, samples: [UInt16], kind: Kind, bitDepth: Int) {
        precondition(samples.count == width * height, "SampleImage: \(samples.count) samples for \(width)x\(height)")
        self.width = width
        self.height = height
        self.samples = samples
        self.kind = kind
        self.bitDepth = bitDepth
    }

    /// Reads a palette or grayscale PNG. An RGB/RGBA/gray+alpha PNG or a JPEG is refused with
    /// an error that says what the file is, so a colour-rendered mask is never read as labels.
    public init(contentsOf url: URL, maxPixels: Int = RGBImage.defaultMaxPixels) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ImageError(
                path: url.path,
                message: FileManager.default.fileExists(atPath: url.path)
                    ? "cannot read: \(error.localizedDescription)" : "file not found")
        }
        self = try SampleImage(data: data, name: url.path, maxPixels: maxPixels)
    }

    public init(data: Data, name: String = "<memory>", maxPixels: Int = RGBImage.defaultMaxPixels) throws {
        guard !data.isEmpty else { throw ImageError(path: name, message: "file is empty") }
        let isJPEG = data.count >= 3 && data[data.startIndex] == 0xFF && data[data.startIndex + 1] == 0xD8
        if isJPEG {
            throw ImageError(path: name, message: "is a JPEG; label and depth maps must be lossless PNGs (JPEG compression changes label values)")
        }
        var out: UnsafeMutablePointer<UInt16>?
        var w: Int32 = 0, h: Int32 = 0, colorType: Int32 = -1, depth: Int32 = 0
        var err = [CChar](repeating: 0, count: 512)
        // libpng reads the bytes in place: ReadOnlyBytes' documented kernel extension point.
        let rc: Int32 = ReadOnlyBytes.copy(data).withUnsafeKernelBytes { b in
            err.withUnsafeMutableBufferPointer { e in
                cic_png_decode_samples(
                    b.baseAddress!.assumingMemoryBound(to: UInt8.self), b.count, UInt64(max(maxPixels, 0)),
                    &out, &w, &h, &colorType, &depth, e.baseAddress, e.count)
            }
        }
        if rc == 2 {
            let what = [2: "an RGB", 4: "a gray+alpha", 6: "an RGBA"][Int(colorType)] ?? "a colour-type-\(colorType)"
            throw ImageError(
                path: name,
                message:
                    "is \(what) PNG; a label mask must be a palette PNG (VOC) or a grayscale index PNG (one class index per pixel), and a depth map a 16-bit grayscale PNG. A colour-rendered mask has to be converted to indices first"
            )
        }
        guard rc == 0, let px = out else {
            throw ImageError(path: name, message: "corrupt or unsupported PNG: \(String(cString: err))")
        }
        defer { cic_free(px) }
        self.init(
            width: Int(w), height: Int(h), samples: Array(UnsafeBufferPointer(start: px, count: Int(w) * Int(h))),
            kind: colorType == 3 ? .palette : .gray, bitDepth: Int(depth))
    }

    /// PNG bytes: an 8-bit palette PNG (`palette` = RGB triplets, samples below its length), an
    /// 8-bit gray PNG (`bitDepth` 8) or a 16-bit gray PNG (`bitDepth` 16).
    public func pngData(name: String = "<memory>") throws -> Data {
        let mode: Int32 = kind == .palette ? 0 : (bitDepth == 16 ? 2 : 1)
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var err = [CChar](repeating: 0, count: 512)
        let rc = err.withUnsafeMutableBufferPointer { e in
            samples.withUnsafeBufferPointer { s in
                palette.withUnsafeBufferPointer { p in
                    cic_png_encode_samples(
                        s.baseAddress, Int32(clamping: width), Int32(clamping: height), mode,
                        p.baseAddress, Int32(palette.count / 3), &out, &size, e.baseAddress, e.count)
                }
            }
        }
        guard rc == 0, let data = out else {
            throw ImageError(path: name, message: "PNG encoding failed: \(String(cString: err))")
        }
        defer { cic_free(data) }
        return Data(bytes: data, count: size)
    }

    /// Writes the PNG atomically (temp file + rename).
    public func write(to url: URL) throws {
        try AtomicFile.write(try pngData(name: url.path), to: url)
    }
}
