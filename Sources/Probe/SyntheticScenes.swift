import Foundation
import TensorCore
import Vision

/// A seeded synthetic segmentation set in the VOC2012 layout, so `dvt probe` runs end to end
/// with exact labels where no labelled data can be downloaded: textured objects (discs,
/// rectangles, triangles) over textured backgrounds. Each object class has its own colour
/// family and texture (stripes, dots, checks, waves), so features that keep local appearance
/// separate the classes linearly, and the shape never gives the class away. Masks are palette
/// PNGs with VOC's colour map; a 2-pixel band at each object's edge is 255 (ignored), as VOC
/// marks its boundaries.
public enum SyntheticScenes {
    public static let classNames = ["background", "stripes", "dots", "checks", "waves"]
    /// The seed of the set shipped in Datasets/synthetic-voc (`dvt synth-voc --seed 0`).
    public static let shippedSeed: UInt64 = 0

    /// VOC's colour map (the bit-interleaved palette of the devkit's labelcolormap.m).
    public static var vocPalette: [UInt8] {
        var p: [UInt8] = []
        for i in 0..<256 {
            var r = 0, g = 0, b = 0, c = i
            for j in 0..<8 {
                r |= ((c >> 0) & 1) << (7 - j)
                g |= ((c >> 1) & 1) << (7 - j)
                b |= ((c >> 2) & 1) << (7 - j)
                c >>= 3
            }
            p += [UInt8(r), UInt8(g), UInt8(b)]
        }
        return p
    }

    /// One scene: RGB pixels and the label per pixel.
    public static func scene(seed: UInt64, size: Int) -> (RGBImage, [UInt16]) {
        var rng = RandomGenerator(seed: seed)
        func u() -> Double { rng.uniformDouble() }
        var img = RGBImage(width: size, height: size)
        var label = [UInt16](repeating: 0, count: size * size)
        // Background: a low-saturation two-tone noise texture of random hue.
        let bgBase = (80 + 80 * u(), 80 + 60 * u(), 70 + 60 * u())
        let freq = 0.15 + 0.2 * u(), phase = 6.28 * u()
        for y in 0..<size {
            for x in 0..<size {
                let t = 0.5 + 0.5 * sin(freq * Double(x) * 0.7 + freq * Double(y) * 1.3 + phase)
                let n = 20 * (u() - 0.5)
                img[x: x, y: y, c: 0] = clamp(bgBase.0 + 30 * t + n)
                img[x: x, y: y, c: 1] = clamp(bgBase.1 + 25 * t + n)
                img[x: x, y: y, c: 2] = clamp(bgBase.2 + 20 * t + n)
            }
        }
        let objects = 1 + rng.randint(3)
        for _ in 0..<objects {
            let cls = 1 + rng.randint(classNames.count - 1)
            let shape = rng.randint(3)
            let cx = Double(size) * (0.2 + 0.6 * u()), cy = Double(size) * (0.2 + 0.6 * u())
            let r = Double(size) * (0.12 + 0.14 * u())
            let aspect = 0.6 + 0.8 * u()
            let jitter = 0.85 + 0.3 * u()
            func inside(_ x: Double, _ y: Double, grow: Double) -> Bool {
                let dx = x - cx, dy = y - cy, rr = r + grow
                switch shape {
                case 0: return dx * dx / (aspect * aspect) + dy * dy <= rr * rr
                case 1: return abs(dx) <= rr * aspect && abs(dy) <= rr
                default: return dy <= rr && dy >= -rr && abs(dx) <= (dy + rr) * 0.6 * aspect + grow
                }
            }
            for y in 0..<size {
                for x in 0..<size {
                    let px = Double(x) + 0.5, py = Double(y) + 0.5
                    if inside(px, py, grow: 0) {
                        let (r0, g0, b0) = texture(cls, px, py, jitter, &rng)
                        img[x: x, y: y, c: 0] = clamp(r0)
                        img[x: x, y: y, c: 1] = clamp(g0)
                        img[x: x, y: y, c: 2] = clamp(b0)
                        label[y * size + x] = UInt16(cls)
                    }
                }
            }
            // VOC-style ignore band on the object's outline (both sides, 2 px wide).
            for y in 0..<size {
                for x in 0..<size {
                    let px = Double(x) + 0.5, py = Double(y) + 0.5
                    if inside(px, py, grow: 1) && !inside(px, py, grow: -1) { label[y * size + x] = 255 }
                }
            }
        }
        return (img, label)
    }

    static func clamp(_ v: Double) -> UInt8 { UInt8(max(0, min(255, v.rounded()))) }

    /// Class textures: a colour family and a pattern per class.
    static func texture(_ cls: Int, _ x: Double, _ y: Double, _ s: Double, _ rng: inout RandomGenerator) -> (Double, Double, Double) {
        let n = 16 * (rng.uniformDouble() - 0.5)
        switch cls {
        case 1:  // red stripes
            let t = sin(x * 0.9 * s) > 0 ? 1.0 : 0.0
            return (170 + 70 * t + n, 40 + 30 * t + n, 40 + n)
        case 2:  // green dots
            let d = hypot(x.truncatingRemainder(dividingBy: 6 * s) - 3 * s, y.truncatingRemainder(dividingBy: 6 * s) - 3 * s)
            let t = d < 1.8 * s ? 1.0 : 0.0
            return (40 + 40 * t + n, 150 + 80 * t + n, 60 + n)
        case 3:  // blue checks
            let t = (Int(x / (4 * s)) + Int(y / (4 * s))) % 2 == 0 ? 1.0 : 0.0
            return (40 + n, 60 + 50 * t + n, 160 + 80 * t + n)
        default:  // yellow waves
            let t = 0.5 + 0.5 * sin(y * 0.8 * s + 2 * sin(x * 0.3))
            return (200 + 40 * t + n, 170 + 60 * t + n, 30 + 20 * t + n)
        }
    }

    /// Writes `train` + `val` scenes at `root` in the VOC2012 layout (JPEGImages/, palette PNG
    /// SegmentationClass/, ImageSets/Segmentation/{train,val}.txt) plus classes.txt. The same seed
    /// always gives the same files.
    public static func write(
        to root: URL, seed: UInt64 = 0, train: Int = 48, val: Int = 16, size: Int = 96,
        quality: Int = 90
    ) throws {
        let fm = FileManager.default
        for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] {
            try fm.createDirectory(at: root.appendingPathComponent(d), withIntermediateDirectories: true)
        }
        let palette = vocPalette
        var names: [String] = []
        for i in 0..<(train + val) {
            let name = String(format: "scene_%04d", i)
            names.append(name)
            let (img, label) = scene(seed: seed &* 1_000_003 &+ UInt64(i), size: size)
            try img.write(to: root.appendingPathComponent("JPEGImages/\(name).jpg"), quality: quality)
            var mask = SampleImage(width: size, height: size, samples: label, kind: .palette, bitDepth: 8)
            mask.palette = palette
            try mask.write(to: root.appendingPathComponent("SegmentationClass/\(name).png"))
        }
        func list(_ xs: ArraySlice<String>) -> Data { Data((xs.joined(separator: "\n") + "\n").utf8) }
        try list(names[..<train]).write(to: root.appendingPathComponent("ImageSets/Segmentation/train.txt"))
        try list(names[train...]).write(to: root.appendingPathComponent("ImageSets/Segmentation/val.txt"))
        try Data((classNames.joined(separator: "\n") + "\n").utf8).write(to: root.appendingPathComponent("classes.txt"))
    }
}
