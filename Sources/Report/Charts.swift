import Foundation

/// Small inline SVG charts for the report: line charts (loss curves, per-layer artifact strength)
/// and bar charts (a metric per method). Plain SVG text, no script, readable offline.
public enum Charts {
    public struct Series {
        public var name: String
        public var color: String
        public var points: [(x: Double, y: Double)]
        public var dashed = false
        public var dots = false
        public init(name: String, color: String, points: [(x: Double, y: Double)], dashed: Bool = false, dots: Bool = false) {
            self.name = name; self.color = color; self.points = points; self.dashed = dashed; self.dots = dots
        }
    }

    /// matplotlib's default cycle, so colours match the PNG plots elsewhere in the toolkit.
    public static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// A tick label with as many decimals as the tick spacing `step` needs (ticks 1.190, 1.192, …
    /// must not all print as 1.19).
    static func num(_ v: Double, step: Double? = nil) -> String {
        let a = abs(v)
        if a == 0 { return "0" }
        if let step, step > 0, step.isFinite, a < 1e4 {
            let decimals = max(0, min(8, Int(-floor(log10(step)))))
            return String(format: "%.\(decimals)f", v)
        }
        if a >= 1e4 || a < 1e-3 { return String(format: "%.0e", v) }
        if a >= 100 { return String(format: "%.0f", v) }
        return String(format: "%.3g", v)
    }

    /// Round ticks (1, 2 or 5 × 10^k apart), about five, inside lo…hi.
    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        let raw = (hi - lo) / 4
        guard raw > 0, raw.isFinite else { return [lo] }
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        var v = (lo / step).rounded(.up) * step
        var out: [Double] = []
        while v <= hi + 1e-9 * step { out.append(v); v += step }
        return out
    }

    /// A line chart. The y axis is logarithmic when every value is positive and they span more
    /// than a factor of 20 (loss curves), unless `logY` says otherwise.
    public static func line(
        _ series: [Series], title: String, xLabel: String, yLabel: String, logY: Bool? = nil,
        integerX: Bool = false, fromZero: Bool = false, width: Int = 520, height: Int = 260
    ) -> String {
        let (left, right, top, bottom) = (60.0, 12.0, 28.0, 40.0)
        let pw = Double(width) - left - right, ph = Double(height) - top - bottom
        let xs = series.flatMap { $0.points.map(\.x) }, ys = series.flatMap { $0.points.map(\.y) }.filter(\.isFinite)
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"\(width)\" height=\"\(height)\" role=\"img\" aria-label=\"\(esc(title))\">\n"
        svg += "<title>\(esc(title))</title>\n"
        guard let x0 = xs.min(), let x1 = xs.max(), let y0 = ys.min(), let y1 = ys.max() else {
            return svg + "<text x=\"10\" y=\"20\">no values</text></svg>\n"
        }
        let useLog = logY ?? (y0 > 0 && y1 / y0 > 20)
        func ty(_ v: Double) -> Double { useLog ? log10(v) : v }
        var lo = ty(y0), hi = ty(y1)
        if hi - lo < 1e-12 { lo -= 0.5; hi += 0.5 }
        let pad = 0.05 * (hi - lo)
        lo -= pad; hi += pad
        // A non-negative measure drawn from 0, so small differences do not look like large ones.
        if fromZero && !useLog && y0 >= 0 { lo = 0 }
        let xLo = x0, xHi = x1 > x0 ? x1 : x0 + 1
        func px(_ x: Double) -> Double { left + (x - xLo) / (xHi - xLo) * pw }
        func py(_ y: Double) -> Double { top + ph - (ty(y) - lo) / (hi - lo) * ph }
        let yTicks =
            useLog
            ? Array(Int(floor(lo))...Int(ceil(hi))).map { pow(10, Double($0)) }.filter { (lo...hi).contains(log10($0)) }
            : ticks(lo, hi)
        let yStep = useLog ? nil : (yTicks.count > 1 ? yTicks[1] - yTicks[0] : nil)
        for v in yTicks {
            let y = py(v)
            svg += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>", left, left + pw, y, y)
            svg += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%@</text>\n", left - 5, y + 4,
                num(v, step: yStep) as NSString)
        }
        var xTicks = ticks(xLo, xHi)
        if integerX { xTicks = Array(Set(xTicks.map { $0.rounded() })).sorted() }
        for v in xTicks {
            let x = px(v)
            svg += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>", x, x, top, top + ph)
            svg += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%@</text>\n", x, top + ph + 15, num(v) as NSString)
        }
        svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#000\"/>\n", left, top, pw, ph)
        svg += String(
            format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">%@</text>\n", left + pw / 2, Double(height) - 6,
            esc(xLabel) as NSString)
        svg += String(
            format: "<text transform=\"translate(13 %.1f) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">%@</text>\n",
            top + ph / 2, esc(yLabel + (useLog ? " (log)" : "")) as NSString)
        for s in series where !s.points.isEmpty {
            let pts = s.points.filter { $0.y.isFinite && (!useLog || $0.y > 0) }
            let path = pts.map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
            svg +=
                "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"6 5\"" : "") points=\"\(path)\"/>\n"
            if s.dots || pts.count == 1 {
                for p in pts { svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>", px(p.x), py(p.y), s.color as NSString) }
                svg += "\n"
            }
        }
        // Legend along the top.
        var lx = left
        svg += String(format: "<text x=\"%.1f\" y=\"16\" font-size=\"12\" font-weight=\"bold\">%@</text>", left, esc(title) as NSString)
        lx += Double(title.count) * 7 + 16
        for s in series where !s.points.isEmpty {
            svg += String(
                format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"12\" y2=\"12\" stroke=\"%@\" stroke-width=\"3\"%@/>", lx, lx + 16, s.color as NSString,
                (s.dashed ? " stroke-dasharray=\"4 3\"" : "") as NSString)
            svg += String(format: "<text x=\"%.1f\" y=\"16\" font-size=\"11\">%@</text>", lx + 20, esc(s.name) as NSString)
            lx += 20 + Double(s.name.count) * 6.5 + 14
        }
        return svg + "</svg>\n"
    }

    /// One horizontal bar per label, value written at the bar's end.
    public static func bars(_ values: [(label: String, value: Double?)], title: String, width: Int = 300) -> String {
        let rowH = 20.0, top = 24.0, labelW = 110.0, right = 50.0
        let height = Int(top + rowH * Double(values.count) + 6)
        let maxV = values.compactMap(\.value).filter(\.isFinite).map { abs($0) }.max() ?? 1
        let span = maxV > 0 ? maxV : 1
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"\(width)\" height=\"\(height)\" role=\"img\" aria-label=\"\(esc(title))\">\n<title>\(esc(title))</title>\n"
        svg += "<text x=\"0\" y=\"15\" font-size=\"12\" font-weight=\"bold\">\(esc(title))</text>\n"
        let barW = Double(width) - labelW - right
        for (i, v) in values.enumerated() {
            let y = top + rowH * Double(i)
            svg += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%@</text>", labelW - 6, y + 13, esc(v.label) as NSString)
            if let x = v.value, x.isFinite {
                let w = max(1, abs(x) / span * barW)
                svg += String(
                    format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"14\" fill=\"%@\"/>", labelW, y + 2, w,
                    palette[i % palette.count] as NSString)
                svg += String(
                    format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%@</text>\n", labelW + w + 4, y + 13, String(format: "%.4f", x) as NSString)
            } else {
                svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#777\">not computed</text>\n", labelW + 4, y + 13)
            }
        }
        return svg + "</svg>\n"
    }
}
