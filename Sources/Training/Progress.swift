import Formats
import Foundation
import NN
import TensorCore

/// A one-line progress report with rate and ETA, for long loops (images, training steps).
/// Writes to stderr so stdout stays clean for results; redraws in place on a terminal and
/// prints plain lines (every `every` items) otherwise, so logs stay readable.
public final class Progress {
    public let total: Int
    public let label: String
    public private(set) var done = 0
    private let start = Date()
    private var lastDraw = Date.distantPast
    private let isTTY = isatty(STDERR_FILENO) == 1
    private let every: Int
    private let quiet: Bool

    public init(total: Int, label: String, every: Int? = nil, quiet: Bool = false) {
        self.total = total
        self.label = label
        self.every = every ?? max(1, total / 20)
        self.quiet = quiet
    }

    /// Seconds since the start.
    public var elapsed: Double { Date().timeIntervalSince(start) }

    /// Estimated seconds left, from the average rate so far.
    public var eta: Double? { done > 0 ? elapsed / Double(done) * Double(total - done) : nil }

    public static func format(seconds s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600
            ? String(format: "%dh%02dm", t / 3600, (t % 3600) / 60)
            : t >= 60 ? String(format: "%dm%02ds", t / 60, t % 60) : "\(t)s"
    }

    /// Advances by `n` items, with an optional note (e.g. the current image or loss).
    public func advance(_ n: Int = 1, note: String = "") {
        done += n
        guard !quiet else { return }
        let finished = done >= total
        if isTTY {
            if !finished && Date().timeIntervalSince(lastDraw) < 0.2 { return }
            lastDraw = Date()
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line(note) + (finished ? "\n" : "")).utf8))
        } else if finished || done % every == 0 {
            FileHandle.standardError.write(Data((line(note) + "\n").utf8))
        }
    }

    func line(_ note: String) -> String {
        let pct = total > 0 ? 100 * Double(done) / Double(total) : 100
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let etaText = eta.map { Progress.format(seconds: $0) } ?? "?"
        return String(
            format: "%@ %d/%d (%.0f%%) %.2f/s, elapsed %@, ETA %@", label as NSString, done, total, pct, rate,
            Progress.format(seconds: elapsed) as NSString, etaText as NSString) + (note.isEmpty ? "" : "  \(note)")
    }
}
