import Formats
import Foundation

// Many stage-1 processes can share one output folder (Slurm array tasks, a requeued task
// overlapping its predecessor): a per-image claim lets one process fit an image while the others
// move on, and manifest records go through LineAppender. Both are flock-based (Formats/FileLock).

/// An exclusive, non-blocking claim on one image of a run folder: `OUT/.claims/<rel>.lock`.
public enum ImageClaim {
    /// The claim, or nil when another live process holds it.
    public static func tryAcquire(root: URL, stem: String) throws -> FileLock? {
        try FileLock.tryAcquire(root.appendingPathComponent(".claims/\(stem).lock"))
    }
}

/// The stage-1 manifest, `stage1_manifest.jsonl`: one JSON object per line.
public enum Stage1Manifest {
    /// Relative stems with an `"status": "ok"` record. Lines that are not whole JSON objects are
    /// ignored (a torn last line is cut by the next append).
    public static func completed(_ url: URL) -> Set<String> {
        guard let data = FileManager.default.contents(atPath: url.path) else { return [] }
        var done = Set<String>()
        for line in data.split(separator: UInt8(ascii: "\n")) {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                o["status"] as? String == "ok", let stem = o["image"] as? String
            else { continue }
            done.insert(stem)
        }
        return done
    }
}

/// Appends one JSON object as a line, whole or not at all (`LineAppender`).
public func appendJSONLine(_ object: [String: Any], to url: URL) throws {
    try LineAppender.append(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) + Data("\n".utf8), to: url)
}
