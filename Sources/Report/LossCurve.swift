import Foundation
import Training
import Vision

/// A training run's loss history, drawn as a PNG: training loss as a line, validation loss as
/// a second line with dots, and the identity baseline (when the log has one) as a dashed
/// horizontal line. Values span decades early in training, so the y axis is logarithmic when
/// every value is positive and they span more than a factor of 20.
public enum LossCurve {
    public struct History: Sendable, Equatable {
        public var train: [LossPoint] = []
        public var validation: [LossPoint] = []
        public var identity: Double?
        public init() {}
    }

    /// Reads `step`, `loss`, `val_loss` and `val_identity_loss` from a metrics.jsonl.
    public static func read(metrics url: URL) throws -> History {
        let text = try String(contentsOf: url, encoding: .utf8)
        var h = History()
        for line in text.split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let step = (obj["step"] as? NSNumber)?.intValue
            else { continue }
            if let l = (obj["loss"] as? NSNumber)?.doubleValue, l.isFinite { h.train.append(LossPoint(step: step, loss: l)) }
            // Every record repeats the latest validation; keep each new value once, at the
            // first record that shows it.
            if let v = (obj["val_loss"] as? NSNumber)?.doubleValue, v.isFinite, h.validation.last?.loss != v {
                h.validation.append(LossPoint(step: step, loss: v))
            }
            if let i = (obj["val_identity_loss"] as? NSNumber)?.doubleValue, i.isFinite { h.identity = i }
        }
        return h
    }

    static let trainColor: [UInt8] = [31, 119, 180]  // matplotlib's default blue
    static let valColor: [UInt8] = [255, 127, 14]  // matplotlib's default orange
    static let baselineColor: [UInt8] = [120, 120, 120]
    static let axisColor: [UInt8] = [0, 0, 0]
    static let gridColor: [UInt8] = [225, 225, 225]

    // Long on purpose: the plot is drawn in layers (axes, grid, curves, labels) in paint order.
    public static func render(_ h: History, title: String = "", width: Int = 800, height: Int = 480) -> RGBImage {
        var canvas = Canvas(width: width, height: height)
        let (left, right, top, bottom) = (84, 28, 36, 48)
        let plotW = width - left - right, plotH = height - top - bottom
        let values = (h.train + h.validation).map(\.loss) + (h.identity.map { [$0] } ?? [])
        let steps = (h.train + h.validation).map(\.step)
        guard let lo0 = values.min(), let hi0 = values.max(), let s0 = steps.min(), let s1 = steps.max() else {
            canvas.text("no loss values logged", x: left, y: top + plotH / 2, scale: 2, color: axisColor)
            return canvas.image
        }
        let useLog = lo0 > 0 && hi0 / lo0 > 20
        func ty(_ v: Double) -> Double { useLog ? log10(v) : v }
        var lo = ty(lo0), hi = ty(hi0)
        if hi - lo < 1e-12 { lo -= 0.5; hi += 0.5 }
        let pad = 0.05 * (hi - lo)
        lo -= pad; hi += pad
        let xLo = Double(s0), xHi = Double(max(s1, s0 + 1))
        func px(_ step: Int) -> Int { left + Int((Double(step) - xLo) / (xHi - xLo) * Double(plotW - 1)) }
        func py(_ v: Double) -> Int { top + plotH - 1 - Int((ty(v) - lo) / (hi - lo) * Double(plotH - 1)) }

        // Grid lines and tick labels.
        let yTicks: [Double] =
            useLog
            ? Array(Int(floor(lo))...Int(ceil(hi))).map { pow(10, Double($0)) }.filter { (lo...hi).contains(log10($0)) }
            : Charts.ticks(lo, hi)
        for v in yTicks {
            let y = py(v)
            canvas.hline(y: y, x0: left, x1: left + plotW - 1, color: gridColor)
            let label = Charts.num(v)
            canvas.text(label, x: left - 8 - Canvas.textWidth(label, scale: 2), y: y - 7, scale: 2, color: axisColor)
        }
        for v in Charts.ticks(xLo, xHi) {
            let x = px(Int(v))
            canvas.vline(x: x, y0: top, y1: top + plotH - 1, color: gridColor)
            let label = String(Int(v))
            let w = Canvas.textWidth(label, scale: 2)
            canvas.text(label, x: min(max(x - w / 2, 0), width - w - 2), y: top + plotH + 8, scale: 2, color: axisColor)
        }
        canvas.hline(y: top + plotH, x0: left, x1: left + plotW, color: axisColor)
        canvas.vline(x: left - 1, y0: top, y1: top + plotH, color: axisColor)
        canvas.text("step", x: left + plotW / 2 - Canvas.textWidth("step", scale: 2) / 2, y: height - 20, scale: 2, color: axisColor)

        if let id = h.identity {
            let y = py(id)
            var x = left
            while x < left + plotW { canvas.hline(y: y, x0: x, x1: min(x + 7, left + plotW - 1), color: baselineColor); x += 14 }
        }
        func polyline(_ pts: [LossPoint], _ color: [UInt8], dots: Bool) {
            for (a, b) in zip(pts, pts.dropFirst()) { canvas.line(px(a.step), py(a.loss), px(b.step), py(b.loss), color: color) }
            if dots || pts.count == 1 { for p in pts { canvas.dot(px(p.step), py(p.loss), radius: 3, color: color) } }
        }
        polyline(h.train, trainColor, dots: false)
        polyline(h.validation, valColor, dots: true)

        // Title and legend along the top.
        var x = left
        let head = (title.isEmpty ? "" : title + "  ") + (useLog ? "loss (log scale)" : "loss")
        canvas.text(head, x: x, y: 10, scale: 2, color: axisColor)
        x += Canvas.textWidth(head, scale: 2) + 24
        for (name, color, show) in [
            ("train", trainColor, !h.train.isEmpty), ("val", valColor, !h.validation.isEmpty),
            ("identity", baselineColor, h.identity != nil),
        ] where show {
            canvas.fill(x: x, y: 14, w: 18, h: 6, color: color)
            canvas.text(name, x: x + 24, y: 10, scale: 2, color: axisColor)
            x += 24 + Canvas.textWidth(name, scale: 2) + 20
        }
        return canvas.image
    }
}

/// A white RGB canvas with the few primitives a loss plot needs, and a 5×7 bitmap font.
struct Canvas {
    let width: Int
    let height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    var image: RGBImage { RGBImage(width: width, height: height, pixels: pixels) }

    mutating func set(_ x: Int, _ y: Int, _ c: [UInt8]) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c[0]; pixels[i + 1] = c[1]; pixels[i + 2] = c[2]
    }

    mutating func hline(y: Int, x0: Int, x1: Int, color: [UInt8]) { for x in min(x0, x1)...max(x0, x1) { set(x, y, color) } }
    mutating func vline(x: Int, y0: Int, y1: Int, color: [UInt8]) { for y in min(y0, y1)...max(y0, y1) { set(x, y, color) } }
    mutating func fill(x: Int, y: Int, w: Int, h: Int, color: [UInt8]) {
        for yy in y..<(y + h) { for xx in x..<(x + w) { set(xx, yy, color) } }
    }

    mutating func dot(_ cx: Int, _ cy: Int, radius r: Int, color: [UInt8]) {
        for dy in -r...r { for dx in -r...r where dx * dx + dy * dy <= r * r { set(cx + dx, cy + dy, color) } }
    }

    /// A 2-pixel-wide line (Bresenham, with the pixel below each step for thickness).
    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, color: [UInt8]) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            set(x, y, color); set(x, y + 1, color); set(x + 1, y, color)
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    static func textWidth(_ s: String, scale: Int) -> Int { s.count * 6 * scale - scale }

    mutating func text(_ s: String, x: Int, y: Int, scale: Int, color: [UInt8]) {
        var cx = x
        for ch in s.lowercased() {
            if let rows = Canvas.glyphs[ch] {
                for (r, row) in rows.enumerated() {
                    for (c, bit) in row.enumerated() where bit == "#" {
                        fill(x: cx + c * scale, y: y + r * scale, w: scale, h: scale, color: color)
                    }
                }
            }
            cx += 6 * scale
        }
    }

    /// 5×7 glyphs for digits, number punctuation and the letters the plot's labels use.
    static let glyphs: [Character: [String]] = [
        "0": [" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "],
        "1": ["  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
        "2": [" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"],
        "3": ["#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "],
        "4": ["   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "],
        "5": ["#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "],
        "6": ["  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "],
        "7": ["#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "],
        "8": [" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "],
        "9": [" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "],
        ".": ["     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "],
        "-": ["     ", "     ", "     ", " ### ", "     ", "     ", "     "],
        "+": ["     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "],
        "(": ["   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "],
        ")": [" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "],
        "a": ["     ", "     ", " ### ", "    #", " ####", "#   #", " ####"],
        "c": ["     ", "     ", " ### ", "#    ", "#    ", "#   #", " ### "],
        "d": ["    #", "    #", " ## #", "#  ##", "#   #", "#   #", " ####"],
        "e": ["     ", "     ", " ### ", "#   #", "#####", "#    ", " ### "],
        "g": ["     ", " ####", "#   #", "#   #", " ####", "    #", " ### "],
        "i": ["  #  ", "     ", " ##  ", "  #  ", "  #  ", "  #  ", " ### "],
        "l": [" ##  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
        "n": ["     ", "     ", "# ## ", "##  #", "#   #", "#   #", "#   #"],
        "o": ["     ", "     ", " ### ", "#   #", "#   #", "#   #", " ### "],
        "p": ["     ", "     ", "#### ", "#   #", "#### ", "#    ", "#    "],
        "r": ["     ", "     ", "# ## ", "##  #", "#    ", "#    ", "#    "],
        "s": ["     ", "     ", " ####", "#    ", " ### ", "    #", "#### "],
        "t": [" #   ", " #   ", "###  ", " #   ", " #   ", " #  #", "  ## "],
        "v": ["     ", "     ", "#   #", "#   #", "#   #", " # # ", "  #  "],
        "y": ["     ", "     ", "#   #", "#   #", " ####", "    #", " ### "],
    ]
}
