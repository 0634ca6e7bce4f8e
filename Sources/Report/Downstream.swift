import Foundation

/// The report's "Downstream" section: the linear-probe tables `dvt probe` (or the probe step of
/// `dvt run`) wrote to RUN/probe/<task>.json, with their prediction strips, and the planted
/// segmentation section when RUN/probe/planted.json exists. Read from files so the report
/// module needs nothing of the probe module, and a later `dvt probe` shows up on a re-render.
public enum Downstream {
    struct Table {
        var title: String
        var note: String
        var columns: [String]
        var rows: [(String, [Double?])]
        var figures: [(caption: String, file: String)]
    }

    static func load(_ url: URL, copyFiguresTo dir: URL) -> Table? {
        guard let data = FileManager.default.contents(atPath: url.path),
            let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let columns = obj["metric_names"] as? [String], let methods = obj["methods"] as? [[String: Any]]
        else { return nil }
        var rows: [(String, [Double?])] = []
        for m in methods {
            let values = (m["metric_values"] as? [Any] ?? []).map { $0 as? Double }
            var row = values
            if let t = m["training"] as? [String: Any], let rate = t["maps_per_second"] as? Double { row.append(rate) }
            rows.append((m["method"] as? String ?? "?", row))
        }
        var figures: [(String, String)] = []
        for f in obj["figures"] as? [[String: String]] ?? [] {
            guard let file = f["file"] else { continue }
            let src = url.deletingLastPathComponent().appendingPathComponent(file)
            let name = "probe_" + (file as NSString).lastPathComponent
            let dst = dir.appendingPathComponent(name)
            try? FileManager.default.removeItem(at: dst)
            if (try? FileManager.default.copyItem(at: src, to: dst)) != nil { figures.append((f["caption"] ?? "", name)) }
        }
        let task = obj["task"] as? String ?? ""
        let dataset = obj["dataset"] as? String ?? ""
        var note =
            "\(obj["train_images"] ?? "?") training and \(obj["val_images"] ?? "?") validation images of \(dataset) (\(obj["root"] ?? "")), \(obj["protocol"] ?? "?") protocol"
        if let o = obj["options"] as? [String: Any] { note += ", \(o["iterations"] ?? "?") steps of \(o["batchSize"] ?? "?") maps" }
        if let extra = obj["note"] as? String { note += ". " + extra }
        return Table(
            title: obj["title"] as? String ?? "\(task) linear probe", note: note,
            columns: columns + (rows.first.map { $0.1.count > columns.count } == true ? ["train maps/s"] : []),
            rows: rows, figures: figures)
    }

    /// The section's HTML ("" when no probe has run), copying figures into `dir`.
    public static func html(root: URL, reportDir dir: URL) -> String {
        let probe = root.appendingPathComponent("probe")
        let tables = ["segmentation.json", "depth.json", "planted.json"].compactMap { load(probe.appendingPathComponent($0), copyFiguresTo: dir) }
        guard !tables.isEmpty else { return "" }
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        var h = "<h2>Downstream</h2>\n<p>Linear probes on frozen features, one head per method (DVT's protocol, docs/probe.md).</p>\n"
        for t in tables {
            h += "<h3>\(esc(t.title))</h3>\n<p>\(esc(t.note)).</p>\n<table><tr><th>method</th>"
            for c in t.columns { h += "<th>\(esc(c))</th>" }
            h += "</tr>\n"
            for (method, values) in t.rows {
                h += "<tr><td>\(esc(method))</td>"
                for (i, v) in values.enumerated() {
                    let isRate = i >= t.columns.count - 1 && t.columns.last == "train maps/s"
                    h += "<td class=n>" + (v.map { String(format: isRate ? "%.0f" : "%.4f", $0) } ?? "—") + "</td>"
                }
                h += "</tr>\n"
            }
            h += "</table>\n"
            for f in t.figures {
                h += "<figure><img src=\"\(esc(f.file))\" alt=\"\(esc(f.caption))\"><figcaption>\(esc(f.caption))</figcaption></figure>\n"
            }
        }
        return h
    }
}
