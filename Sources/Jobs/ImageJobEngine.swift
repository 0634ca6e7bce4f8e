import Formats
import Foundation
import Training

// The one per-image job skeleton. Every job over a list of images (extract, stage 1, SRT,
// denoise, the pipeline's steps) is a client: it says how to read one input,
// how to run a batch of them through the network and what to write for one image; the engine
// does the rest, the same way for all of them:
//
//   items → skip what is done → claim (shared folders) → prepare (decode) → batch →
//   forward (one call per batch) → finish (per-image work, atomic writes) → one manifest line
//   → progress with ETA → JobReport (written / skipped / failures; the caller's exit status)
//
// Sharding and --start/--count select `items` before the engine sees them (ImageSource.shard).

/// One input that failed, and why.
public struct JobFailure: Sendable, Codable, Equatable {
    /// The input's path.
    public var image: String
    public var error: String
}

/// What a job over images did: the one result type of every per-image job.
public struct JobReport: Sendable {
    public var written = 0
    /// Inputs whose outputs were already complete (or that another process holds).
    public var skipped = 0
    public var failures: [JobFailure] = []
    /// Inputs a client left out on purpose (`ImageJobSkip`, e.g. `--skip-non-finite`), with why.
    public var leftOut: [JobFailure] = []
    /// Every file written, in order (features, then visuals).
    public var outputs: [URL] = []
    public var seconds = 0.0

    public init() {}

    /// The end-of-job summary; failures are listed one per line.
    public var summary: String {
        var s = "\(written) written, \(skipped) already present, \(failures.count) failed"
        if !leftOut.isEmpty { s += ", \(leftOut.count) left out" }
        for f in failures { s += "\n  FAILED \(f.image): \(f.error)" }
        return s
    }

    /// Ends the job with a non-zero exit status when any input failed (after the summary).
    public func throwIfFailed() throws {
        if !failures.isEmpty { throw JobsError.imagesFailed(failures) }
    }
}

/// Thrown by a client's `prepare` to leave an input out with a warning instead of failing it
/// (an explicit option such as `--skip-non-finite`); the job's exit status is unaffected.
public struct ImageJobSkip: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What `finish` produced for one image.
public struct ImageJobOutput {
    /// Files written for the image.
    public var files: [URL]
    /// Extra fields of the image's manifest line (with a manifest).
    public var record: [String: Any]

    public init(files: [URL], record: [String: Any] = [:]) {
        self.files = files
        self.record = record
    }
}

/// A per-image job as the engine runs it (see the top of this file).
///
/// To write a client: pick what one decoded input is (`Prepared`: an image tensor, a feature
/// map) and what the batched forward gives per input (`Forwarded`); implement `prepare`,
/// `forward` and `finish`. A throw in `prepare` or `finish` fails that input, a throw in
/// `forward` the inputs of that batch; the job goes on either way. Write outputs with
/// `Npy.write` / `AtomicFile` (temp file + rename) so a kill leaves no partial file, and write
/// the file that `isDone` checks last.
public protocol ImageJobClient {
    associatedtype Prepared
    associatedtype Forwarded

    /// Progress label and log prefix ("extract", "stage1").
    var label: String { get }
    /// Inputs per `forward` call (1: no batching across images).
    var batchSize: Int { get }
    /// Whether `item`'s outputs are complete, so that it is skipped (with a manifest, its ok
    /// line must exist too).
    func isDone(_ item: ImageItem) -> Bool
    /// Reads and decodes one input.
    func prepare(_ item: ImageItem) throws -> Prepared
    /// Whether `next` may join a batch that starts with `first` (default: always).
    func canBatch(_ next: Prepared, with first: Prepared) -> Bool
    /// One result per input, in order.
    func forward(_ batch: [Prepared]) throws -> [Forwarded]
    /// The per-image work and its writes. `position` is the image's index among those not
    /// already done (for "every Nth image" visuals).
    func finish(_ item: ImageItem, _ prepared: Prepared, _ forwarded: Forwarded, position: Int) throws -> ImageJobOutput
}

extension ImageJobClient {
    public func canBatch(_ next: Prepared, with first: Prepared) -> Bool { true }
}

/// Runs `ImageJobClient`s over image lists.
public struct ImageJobEngine {
    /// The job's output folder: created, and swept of temporaries a killed run left.
    public var output: URL
    /// One JSON line per finished image (`{"image", "time", "status", "seconds", …}`), and the
    /// record of which images are done (`Stage1Manifest`).
    public var manifest: URL?
    /// Take a per-image claim (`ImageClaim`, under `output`) so that processes sharing the
    /// folder never work on one image twice.
    public var claims = false
    public var quiet = false
    /// Progress lines every N images when not on a terminal (default: about 20 lines a job).
    public var progressEvery: Int?
    public var log: (String) -> Void

    public init(output: URL, log: @escaping (String) -> Void = ImageJobEngine.standardError) {
        self.output = output
        self.log = log
    }

    public static let standardError: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }

    /// An input on its way through: claimed and decoded, waiting for its batch.
    private struct Pending<P> {
        var item: ImageItem
        var position: Int
        var prepared: P
        var start: Date
        var claim: FileLock?
    }

    /// Runs `client` over `items`; returns what happened to each. Throws only for what stops
    /// the whole job (the output folder cannot be made, the manifest cannot be appended to).
    // Long on purpose: this is the skeleton every job shares, kept in one function so the order
    // of skip → claim → prepare → batch → forward → finish → record → progress reads as one flow.
    public func run<C: ImageJobClient>(_ client: C, items: [ImageItem]) throws -> JobReport {
        let t0 = Date()
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        for path in AtomicFile.removeStaleTemporaries(under: output) { log("removed a partial file left by a killed run: \(path)") }
        var report = JobReport()
        var recorded = manifest.map(Stage1Manifest.completed) ?? []
        func done(_ item: ImageItem) -> Bool {
            client.isDone(item) && (manifest == nil || recorded.contains(item.relativeStem))
        }
        let todo = items.filter { !done($0) }
        report.skipped = items.count - todo.count
        if report.skipped > 0 { log("\(client.label): \(report.skipped) of \(items.count) images already done, skipping them") }
        let progress = Progress(total: todo.count, label: client.label, every: progressEvery, quiet: quiet)

        func fail(_ item: ImageItem, _ start: Date, _ error: Error) throws {
            report.failures.append(JobFailure(image: item.url.path, error: "\(error)"))
            log("\(client.label): \(item.url.path) failed: \(error)")
            try record(item, start, ["status": "failed", "error": "\(error)"])
            progress.advance(note: "\(item.relativeStem) FAILED")
        }
        var pending: [Pending<C.Prepared>] = []
        func flush() throws {
            guard !pending.isEmpty else { return }
            defer { pending.removeAll() }  // releases the claims
            let results: [C.Forwarded]
            do {
                results = try client.forward(pending.map(\.prepared))
                precondition(results.count == pending.count, "\(client.label): forward gave \(results.count) results for \(pending.count) inputs")
            } catch {
                for p in pending { try fail(p.item, p.start, error) }
                return
            }
            for (p, result) in zip(pending, results) {
                do {
                    let out = try client.finish(p.item, p.prepared, result, position: p.position)
                    report.written += 1
                    report.outputs += out.files
                    try record(p.item, p.start, out.record.merging(["status": "ok"]) { $1 })
                    progress.advance(note: String(format: "%@ %.1fs", p.item.relativeStem, Date().timeIntervalSince(p.start)))
                } catch {
                    try fail(p.item, p.start, error)
                }
            }
        }

        for (position, item) in todo.enumerated() {
            var claim: FileLock?
            if claims {
                // Another process (a concurrent task on the same shard) holds it: leave it to that one.
                guard let c = try ImageClaim.tryAcquire(root: output, stem: item.relativeStem) else {
                    log("\(client.label): \(item.relativeStem) is being processed by another process, skipping it")
                    report.skipped += 1
                    progress.advance(note: "\(item.relativeStem) claimed elsewhere")
                    continue
                }
                claim = c
                // It may have been finished between the listing and the claim.
                if client.isDone(item) {
                    if let manifest { recorded = Stage1Manifest.completed(manifest) }
                    if done(item) {
                        report.skipped += 1
                        progress.advance(note: "\(item.relativeStem) done elsewhere")
                        continue
                    }
                }
            }
            let start = Date()
            let prepared: C.Prepared
            do {
                prepared = try client.prepare(item)
            } catch let skip as ImageJobSkip {
                report.leftOut.append(JobFailure(image: item.url.path, error: skip.description))
                log("warning: \(client.label): left out \(item.url.path): \(skip)")
                progress.advance(note: "\(item.relativeStem) left out")
                continue
            } catch {
                try fail(item, start, error)
                continue
            }
            if let first = pending.first, !client.canBatch(prepared, with: first.prepared) { try flush() }
            pending.append(Pending(item: item, position: position, prepared: prepared, start: start, claim: claim))
            if pending.count >= client.batchSize { try flush() }
        }
        try flush()
        report.seconds = Date().timeIntervalSince(t0)
        return report
    }

    /// The image's manifest line, appended whole (`LineAppender`).
    private func record(_ item: ImageItem, _ start: Date, _ fields: [String: Any]) throws {
        guard let manifest else { return }
        var entry = fields
        entry["image"] = item.relativeStem
        entry["time"] = ISO8601DateFormatter().string(from: start)
        entry["seconds"] = Date().timeIntervalSince(start)
        try appendJSONLine(entry, to: manifest)
    }
}
