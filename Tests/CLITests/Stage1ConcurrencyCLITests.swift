import Foundation
import Jobs
import TestSupport
import Testing

@testable import DVTCommands

/// Many stage-1 processes on one output folder, as Slurm array tasks (and a requeued task that
/// overlaps its predecessor) run them: outputs must equal one sequential run byte for byte, and
/// the manifest must hold exactly one whole line per image.
@Suite("dvt stage1, concurrent processes", .serialized)
struct Stage1ConcurrencyCLITests {
    static let images = ["brick.jpg", "camera.jpg", "chelsea.jpg", "coffee.jpg", "dogs.jpg", "fig.jpg", "flower.jpg", "rocket.jpg"]
    static let model = "vit_small_patch14_dinov2.lvd142m"

    func config(_ dir: URL) throws -> URL {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return try Stage1CLITests().config(dir, images: Self.images)
    }

    /// Starts `dvt stage1` processes together and waits for all of them.
    func runTogether(_ argLists: [[String]]) throws -> [(Int32, String)] {
        guard let exe = dvtExecutable else { throw CancellationError() }
        let procs = try argLists.map { args -> (Process, Pipe) in
            let p = Process(), pipe = Pipe()
            p.executableURL = exe
            p.arguments = args
            p.standardOutput = pipe
            p.standardError = pipe
            try p.run()
            return (p, pipe)
        }
        return procs.map { p, pipe in
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: data, as: UTF8.self))
        }
    }

    /// Same bytes as the reference; one parseable ok line per image; no temporary files.
    func check(_ out: URL, against ref: URL) throws {
        for stem in Self.images.map({ ($0 as NSString).deletingPathExtension }) {
            for tree in ["raw_features", "denoised_features"] {
                let rel = "\(tree)/\(Self.model)/\(stem).npy"
                let a = FileManager.default.contents(atPath: ref.appendingPathComponent(rel).path)
                let b = FileManager.default.contents(atPath: out.appendingPathComponent(rel).path)
                #expect(a != nil && a == b, "\(rel) differs from the sequential run")
            }
        }
        let text = try String(contentsOf: out.appendingPathComponent("stage1_manifest.jsonl"), encoding: .utf8)
        #expect(text.hasSuffix("\n"))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        var seen: [String] = []
        for line in lines {
            let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(obj?["status"] as? String == "ok", "not a whole ok record: \(line)")
            if let image = obj?["image"] as? String { seen.append(image) }
        }
        #expect(seen.count == Self.images.count && Set(seen).count == Self.images.count, "manifest images: \(seen.sorted())")
        let files = try FileManager.default.subpathsOfDirectory(atPath: out.path)
        #expect(!files.contains { $0.contains(".tmp-") }, "temporary files left: \(files.filter { $0.contains(".tmp-") })")
    }

    @Test("4 processes on shards 0-3 of 8 images, and 2 processes on the same shard, equal one sequential run")
    func concurrent() throws {
        _ = try requireExecutable()
        let dir = temporaryDirectory("stage1-concurrent")
        defer { try? FileManager.default.removeItem(at: dir) }
        let refCfg = try config(dir.appendingPathComponent("ref"))
        let (status, text) = try runExecutable(["stage1", refCfg.path, "--threads", "1"])
        #expect(status == 0, "\(text)")
        let ref = dir.appendingPathComponent("ref/out")

        let shardCfg = try config(dir.appendingPathComponent("shards"))
        for (rc, log) in try runTogether((0..<4).map { ["stage1", shardCfg.path, "--threads", "1", "--shard", "\($0)/4"] }) {
            #expect(rc == 0, "\(log)")
        }
        try check(dir.appendingPathComponent("shards/out"), against: ref)

        // Two processes on the same shard (a requeue overlapping its predecessor): each image is
        // fitted once, by whichever claims it first.
        let sameCfg = try config(dir.appendingPathComponent("same"))
        let both = try runTogether([["stage1", sameCfg.path, "--threads", "1"], ["stage1", sameCfg.path, "--threads", "1"]])
        for (rc, log) in both { #expect(rc == 0, "\(log)") }
        try check(dir.appendingPathComponent("same/out"), against: ref)
        // A third identical run finds everything done and adds no line.
        let (rc3, log3) = try runExecutable(["stage1", sameCfg.path, "--threads", "1"])
        #expect(rc3 == 0 && log3.contains("8 of 8 images already done"), "\(log3)")
        try check(dir.appendingPathComponent("same/out"), against: ref)
        // A kill between the output and its record (issue 18 item 9): the output without a
        // record is not "done", so the next run redoes it and writes the record.
        let manifest = dir.appendingPathComponent("same/out/stage1_manifest.jsonl")
        let kept = try String(contentsOf: manifest, encoding: .utf8).split(separator: "\n").filter { !$0.contains("\"image\":\"fig\"") }
        try Data((kept.joined(separator: "\n") + "\n").utf8).write(to: manifest)
        let (rc4, log4) = try runExecutable(["stage1", sameCfg.path, "--threads", "1"])
        #expect(rc4 == 0 && log4.contains("7 of 8 images already done"), "\(log4)")
        try check(dir.appendingPathComponent("same/out"), against: ref)
    }

    @Test("a manifest append cuts a torn last line left by a killed writer")
    func tornManifest() throws {
        let dir = temporaryDirectory("stage1-torn")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.jsonl")
        try Data("{\"image\":\"a\",\"status\":\"ok\"}\n{\"cosi".utf8).write(to: url)
        #expect(Stage1Manifest.completed(url) == ["a"])
        try appendJSONLine(["image": "b", "status": "ok"], to: url)
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(text == "{\"image\":\"a\",\"status\":\"ok\"}\n{\"image\":\"b\",\"status\":\"ok\"}\n")
        // A file that is only a fragment is cut to nothing before the record.
        try Data("{\"ima".utf8).write(to: url)
        try appendJSONLine(["image": "c", "status": "ok"], to: url)
        #expect(try String(contentsOf: url, encoding: .utf8) == "{\"image\":\"c\",\"status\":\"ok\"}\n")
    }

    @Test("fuzz: a manifest cut or corrupted anywhere reads without crashing, and the next append leaves only whole lines")
    func manifestFuzz() throws {
        let dir = temporaryDirectory("stage1-manifest-fuzz")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.jsonl")
        let stems = (0..<6).map { "dir/img_\($0)" }
        let whole = Data(stems.map { "{\"image\":\"\($0)\",\"status\":\"ok\",\"final_loss\":0.5}\n" }.joined().utf8)
        var rng = SystemRandomNumberGenerator()
        for trial in 0..<200 {
            var bytes = [UInt8](whole.prefix(Int.random(in: 0...whole.count, using: &rng)))
            if trial % 2 == 1, !bytes.isEmpty {
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            try Data(bytes).write(to: url)
            let done = Stage1Manifest.completed(url)
            // A cut loses at most the torn line; flipped bytes may rename a stem, never crash.
            if trial % 2 == 0 { #expect(done.isSubset(of: Set(stems)) && done.count >= bytes.filter { $0 == 10 }.count, "trial \(trial): \(done)") }
            try appendJSONLine(["image": "new", "status": "ok"], to: url)
            let text = try Data(contentsOf: url)
            #expect(text.last == UInt8(ascii: "\n"))
            #expect(Stage1Manifest.completed(url).contains("new"), "trial \(trial)")
            if trial % 2 == 0 {  // cut only (no flips): every line is whole JSON
                for line in text.split(separator: UInt8(ascii: "\n")) {
                    #expect(
                        (try? JSONSerialization.jsonObject(with: Data(line))) != nil,
                        "trial \(trial): torn line \(String(decoding: line, as: UTF8.self))")
                }
            }
        }
    }

    @Test("an image claimed by another process is left to it; the claim is released when its holder goes")
    func claims() throws {
        let dir = temporaryDirectory("stage1-claim")
        defer { try? FileManager.default.removeItem(at: dir) }
        var first = try ImageClaim.tryAcquire(root: dir, stem: "sub/a")
        #expect(first != nil)
        // flock is per open file description, so a second open in this process conflicts too.
        #expect(try ImageClaim.tryAcquire(root: dir, stem: "sub/a") == nil)
        #expect(try ImageClaim.tryAcquire(root: dir, stem: "sub/b") != nil)
        first = nil
        #expect(try ImageClaim.tryAcquire(root: dir, stem: "sub/a") != nil)
    }
}
