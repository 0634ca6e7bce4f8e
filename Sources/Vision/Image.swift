import CImageCodecs
import Formats
import Foundation
import TensorCore

/// An image that could not be read, decoded or encoded; names the file.
/// An 8-bit RGB image, rows top to bottom, pixels interleaved: `pixels[(y·width + x)·3 + c]`
/// (HWC, like a PIL "RGB" image as a numpy array).
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    /// PIL refuses images above 2 × Image.MAX_IMAGE_PIXELS (2 × 89 478 485) as decompression
    /// bombs; we use the same bound so anything PIL opens, we open.
    public static let defaultMaxPixels = 2 * 89_478_485

    /// PIL's default JPEG quality for Image.save.
    public static let defaultJPEGQuality = 75

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0, "RGBImage: negative size \(width)x\(height)")
        precondition(
            pixels.count == width * height * 3,
            "RGBImage: \(pixels.count) bytes for \(width)x\(height)x3 = \(width * height * 3)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A black image.
    public init(width: Int, height: Int) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: 0, count: width * height * 3))
    }

    public subscript(x x: Int, y y: Int, c c: Int) -> UInt8 {
        get { pixels[(y * width + x) * 3 + c] }
        set { pixels[(y * width + x) * 3 + c] = newValue }
    }

    /// Reads a JPEG or PNG file (format chosen from the magic bytes, not the extension).
    public init(contentsOf url: URL, maxPixels: Int = RGBImage.defaultMaxPixels) throws {
        let bytes: ReadOnlyBytes
        do {
            bytes = try ReadOnlyBytes.map(url)
        } catch let e as FileReadError {
            throw ImageError(path: url.path, message: e.message)
        }
        self = try RGBImage.decode(bytes, name: url.path, maxPixels: maxPixels)
    }

    /// Decodes an in-memory JPEG or PNG. `name` is used in error messages.
    public init(data: Data, name: String = "<memory>", maxPixels: Int = RGBImage.defaultMaxPixels) throws {
        self = try RGBImage.decode(ReadOnlyBytes.copy(data), name: name, maxPixels: maxPixels)
    }

    enum Format { case jpeg, png }

    static func sniff(_ b: ReadOnlyBytes) -> Format? {
        if b.count >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF { return .jpeg }
        if b.count >= 8 && b.bytes(0..<8) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        return nil
    }

    /// libjpeg / libpng read the encoded bytes in place: one of the engine's documented kernel
    /// extension points (ReadOnlyBytes.withUnsafeKernelBytes; docs/architecture.md).
    static func decode(_ bytes: ReadOnlyBytes, name: String, maxPixels: Int) throws -> RGBImage {
        guard bytes.count > 0 else { throw ImageError(path: name, message: "file is empty") }
        guard let format = sniff(bytes) else {
            throw ImageError(
                path: name,
                message:
                    "unsupported image format (not JPEG or PNG; first bytes \(bytes.bytes(0..<min(8, bytes.count)).map { String(format: "%02x", $0) }.joined(separator: " ")))"
            )
        }
        var out: UnsafeMutablePointer<UInt8>?
        var w: Int32 = 0, h: Int32 = 0
        var err = [CChar](repeating: 0, count: 512)
        let rc: Int32 = bytes.withUnsafeKernelBytes { b in
            err.withUnsafeMutableBufferPointer { e in
                let p = b.baseAddress!.assumingMemoryBound(to: UInt8.self)
                switch format {
                case .jpeg: return cic_jpeg_decode(p, b.count, UInt64(max(maxPixels, 0)), &out, &w, &h, e.baseAddress, e.count)
                case .png: return cic_png_decode(p, b.count, UInt64(max(maxPixels, 0)), &out, &w, &h, e.baseAddress, e.count)
                }
            }
        }
        guard rc == 0, let px = out else {
            let kind = format == .jpeg ? "JPEG" : "PNG"
            throw ImageError(path: name, message: "corrupt or unsupported \(kind): \(String(cString: err))")
        }
        defer { cic_free(px) }
        let n = Int(w) * Int(h) * 3
        return RGBImage(width: Int(w), height: Int(h), pixels: Array(UnsafeBufferPointer(start: px, count: n)))
    }

    // MARK: Encoding

    /// JPEG bytes at `quality` (1...100, libjpeg scale; 4:2:0 chroma subsampling, libjpeg's
    /// default and PIL's).
    public func jpegData(quality: Int = RGBImage.defaultJPEGQuality) throws -> Data {
        try RGBImage.encodeJPEG(pixels: pixels, width: width, height: height, components: 3, quality: quality, name: "<memory>")
    }

    /// Lossless PNG bytes.
    public func pngData() throws -> Data {
        try RGBImage.encodePNG(pixels: pixels, width: width, height: height, components: 3, name: "<memory>")
    }

    /// Writes the image as JPEG (.jpg/.jpeg) or PNG (.png), chosen by extension, atomically.
    public func write(to url: URL, quality: Int = RGBImage.defaultJPEGQuality) throws {
        let data: Data
        switch url.pathExtension.lowercased() {
        case "jpg", "jpeg":
            data = try RGBImage.encodeJPEG(pixels: pixels, width: width, height: height, components: 3, quality: quality, name: url.path)
        case "png":
            data = try RGBImage.encodePNG(pixels: pixels, width: width, height: height, components: 3, name: url.path)
        case let ext:
            throw ImageError(path: url.path, message: "unknown image extension '\(ext)' (use .jpg, .jpeg or .png)")
        }
        try AtomicFile.write(data, to: url)
    }

    /// Encodes raw interleaved pixels with 1 (gray), 3 (RGB) or 4 (CMYK, Adobe marker) components.
    /// `package` so tests can build grayscale, CMYK and progressive files.
    package static func encodeJPEG(
        pixels: [UInt8], width: Int, height: Int, components: Int, quality: Int,
        progressive: Bool = false, name: String
    ) throws -> Data {
        try encode(pixels: pixels, width: width, height: height, components: components, format: "JPEG", name: name) { p, out, size, e, n in
            cic_jpeg_encode(
                p, Int32(clamping: width), Int32(clamping: height), Int32(components),
                Int32(clamping: quality), progressive ? 1 : 0, out, size, e, n)
        }
    }

    /// Encodes raw interleaved pixels with 1 (gray), 3 (RGB) or 4 (RGBA) components as PNG.
    package static func encodePNG(pixels: [UInt8], width: Int, height: Int, components: Int, name: String) throws -> Data {
        try encode(pixels: pixels, width: width, height: height, components: components, format: "PNG", name: name) { p, out, size, e, n in
            cic_png_encode(p, Int32(clamping: width), Int32(clamping: height), Int32(components), out, size, e, n)
        }
    }

    /// The frame both encoders share: the size check, the C call with an error buffer, and
    /// copying out (then freeing) the buffer the codec allocated.
    static func encode(
        pixels: [UInt8], width: Int, height: Int, components: Int, format: String, name: String,
        _ call: (
            UnsafePointer<UInt8>?, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>,
            UnsafeMutablePointer<Int>, UnsafeMutablePointer<CChar>?, Int
        ) -> Int32
    ) throws -> Data {
        guard pixels.count == width * height * components else {
            throw ImageError(path: name, message: "\(pixels.count) bytes for \(width)x\(height)x\(components)")
        }
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var err = [CChar](repeating: 0, count: 512)
        let rc = err.withUnsafeMutableBufferPointer { e in
            pixels.withUnsafeBufferPointer { p in call(p.baseAddress, &out, &size, e.baseAddress, e.count) }
        }
        guard rc == 0, let data = out else {
            throw ImageError(path: name, message: "\(format) encoding failed: \(String(cString: err))")
        }
        defer { cic_free(data) }
        return Data(bytes: data, count: size)
    }

    // MARK: Tensors

    /// The image as a (3, H, W) float tensor with values v/255 in [0, 1] (torchvision ToTensor).
    public func tensor() -> Tensor {
        normalizedTensor(mean: [0, 0, 0], std: [1, 1, 1])
    }

    /// The image as a (3, H, W) float tensor, (v/255 − mean[c]) / std[c], computed in float32 in
    /// that order as torchvision's ToTensor followed by Normalize does.
    public func normalizedTensor(mean: [Float] = ImageNet.mean, std: [Float] = ImageNet.std) -> Tensor {
        precondition(mean.count == 3 && std.count == 3, "normalizedTensor needs 3 means and 3 stds, got \(mean.count) and \(std.count)")
        let hw = width * height
        var t = [Float](repeating: 0, count: 3 * hw)  // (3, H, W)
        for c in 0..<3 {
            let m = mean[c], s = std[c]
            for i in 0..<hw { t[c * hw + i] = (Float(pixels[i * 3 + c]) / 255 - m) / s }
        }
        return Tensor(t, shape: [3, height, width])
    }
}

/// Normalisation constants of ImageNet-trained backbones (torchvision / timm IMAGENET_DEFAULT_*).
public enum ImageNet {
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]
}

/// Per-channel normalisation of a (3, H, W) tensor: (x − mean[c]) / std[c]. Not recorded for
/// autodiff (a data-pipeline step).
public func normalizeChannels(_ x: Tensor, mean: [Float] = ImageNet.mean, std: [Float] = ImageNet.std) -> Tensor {
    precondition(
        x.rank == 3 && x.shape[0] == mean.count && mean.count == std.count,
        "normalizeChannels needs a (C, H, W) tensor with C = \(mean.count), got \(x.shape)")
    let hw = x.shape[1] * x.shape[2]
    let src = x.scalars
    var out = [Float](repeating: 0, count: src.count)  // (C, H, W)
    for c in 0..<mean.count {
        let m = mean[c], s = std[c]
        for i in 0..<hw { out[c * hw + i] = (src[c * hw + i] - m) / s }
    }
    return Tensor(out, shape: x.shape)
}
