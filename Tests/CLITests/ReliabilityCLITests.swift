import ArgumentParser
import Formats
import Foundation
import Jobs
import TensorCore
import TestSupport
import Testing
import Vision

@testable import DVTCommands

/// Issue 18, items 7, 11 and 12: values that used to trap, NaN inputs that spread silently, and
/// Foundation error dumps, each ending in a clear message naming the value or the file.
@Suite("Reliability: input geometry, non-finite inputs, output folders")
struct ReliabilityCLITests {
    @Test(
        "sizes and strides the model cannot take are refused before extract writes anything",
        arguments: [
            (["--size", "5", "5"], "at least its 14-pixel patch"),
            (["--size", "13", "224"], "at least its 14-pixel patch"),
            (["--size", "100000", "100000"], "GB"),
            (["--stride", "20"], "1...14"),
        ])
    func geometry(_ extra: [String], _ expected: String) throws {
        let dir = temporaryDirectory("geometry")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        let m = dvtError(
            [
                "extract", "--arch", "vit_small_patch14_dinov2", "--random-init", "1", "--images",
                try onePhotoFolder(dir).path, "--out", out.path,
            ] + extra)
        #expect(m.contains(expected), "\(m)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("extract_info.json").path))
    }

    @Test("InputGeometry names the config key and the allowed range, and estimates memory before allocating")
    func geometryMessages() throws {
        let cfg = try #require(ViTPresets.named("vit_small_patch14_dinov2"))
        let stride = errorText { try InputGeometry.validate(height: 224, width: 224, stride: 20, model: cfg, batch: 8) }
        #expect(stride.contains("stride_size 20") && stride.contains("1...14"), "\(stride)")
        #expect(errorText { try InputGeometry.validate(height: 224, width: 224, stride: nil, model: cfg, batch: 8) } == "no error")
        #expect(errorText { try InputGeometry.validate(height: 14, width: 14, stride: 7, model: cfg, batch: 1) } == "no error")
        // A small memory budget turns an ordinary size away, and the message says what fits.
        let big = errorText { try InputGeometry.validate(height: 448, width: 448, stride: nil, model: cfg, batch: 8, memoryLimit: 50_000_000) }
        #expect(big.contains("input_size 448 448") && big.contains("a square side up to about"), "\(big)")
        // The estimate grows with the size and never overflows.
        let a = InputGeometry.forwardBytes(height: 224, width: 224, stride: 14, model: cfg, batch: 1)
        let b = InputGeometry.forwardBytes(height: 448, width: 448, stride: 14, model: cfg, batch: 1)
        #expect(a > 0 && b > 4 * a && InputGeometry.forwardBytes(height: .max / 2, width: .max / 2, stride: 1, model: cfg, batch: 64).isFinite)
    }

    /// (6, 6, 64) maps for the fixture denoiser, the second with a NaN at [2, 3, 5].
    func nanMaps(_ dir: URL) throws -> URL {
        let feats = dir.appendingPathComponent("feats")
        try FileManager.default.createDirectory(at: feats, withIntermediateDirectories: true)
        var rng = RandomGenerator(seed: 4)
        for name in ["a", "b", "c"] {
            var v = Tensor.normal([6, 6, 64], rng: &rng).scalars
            if name == "b" { v[(2 * 6 + 3) * 64 + 5] = .nan }
            try Npy.write(Tensor(v, shape: [6, 6, 64]), to: feats.appendingPathComponent("\(name).npy"))
        }
        return feats
    }

    @Test("denoise --features fails a map with a NaN, naming the file and index; --skip-non-finite leaves it out")
    func denoiseNaN() throws {
        let dir = temporaryDirectory("denoise-nan")
        defer { try? FileManager.default.removeItem(at: dir) }
        let feats = try nanMaps(dir)
        let weights = fixturesDirectory.appendingPathComponent("denoiser/weights.safetensors").path
        let out = dir.appendingPathComponent("out")
        #expect(throws: ExitCode.self) {
            try runDVT(["denoise", "--denoiser", weights, "--features", feats.path, "--out", out.path])
        }
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("b.npy").path))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("a.npy").path))
        if dvtExecutable != nil {
            let (status, text) = try runExecutable([
                "denoise", "--denoiser", weights, "--features", feats.path, "--out",
                dir.appendingPathComponent("out2").path,
            ])
            #expect(status == 1 && text.contains("b.npy") && text.contains("[2, 3, 5]") && text.contains("non-finite"), "\(text)")
        }
        let out3 = dir.appendingPathComponent("out3")
        try runDVT(["denoise", "--denoiser", weights, "--features", feats.path, "--out", out3.path, "--skip-non-finite"])
        #expect(!FileManager.default.fileExists(atPath: out3.appendingPathComponent("b.npy").path))
        let c = try Npy.read(out3.appendingPathComponent("c.npy"))
        #expect(c.firstNonFinite() == nil)
    }

    @Test("metrics refuses a map with a NaN, naming the file and index; --skip-non-finite leaves it out")
    func metricsNaN() throws {
        let dir = temporaryDirectory("metrics-nan")
        defer { try? FileManager.default.removeItem(at: dir) }
        let feats = try nanMaps(dir)
        let m = dvtError(["metrics", "--features", feats.path])
        #expect(m.contains("b.npy") && m.contains("[2, 3, 5]") && m.contains("--skip-non-finite"), "\(m)")
        try runDVT(["metrics", "--features", feats.path, "--skip-non-finite"])
    }

    @Test("a non-UTF-8 file name, and an image given as a list, are named plainly")
    func names() throws {
        let dir = temporaryDirectory("names")
        defer { try? FileManager.default.removeItem(at: dir) }
        let folder = try onePhotoFolder(dir)
        // "caf\xe9.jpg": Latin-1, not UTF-8. Created through the raw bytes.
        let raw: [CChar] = Array((folder.path + "/caf").utf8CString.dropLast()) + [CChar(bitPattern: 0xe9)] + Array(".jpg".utf8CString)
        let fd = open(raw, O_CREAT | O_WRONLY, 0o644)
        #expect(fd >= 0)
        close(fd)
        let m = dvtError([
            "extract", "--random-init", "1", "--size", "28", "28", "--images", folder.path, "--out", dir.appendingPathComponent("out").path,
        ])
        #expect(m.contains("not valid UTF-8") && m.contains("rename"), "\(m)")
        let list = dvtError([
            "extract", "--random-init", "1", "--size", "28", "28", "--images", photos.appendingPathComponent("chelsea.jpg").path,
            "--out", dir.appendingPathComponent("out").path,
        ])
        #expect(list.contains("it is an image, not a list"), "\(list)")
    }

    @Test("an --out that is a file, or not writable, gets a plain message instead of a Foundation dump")
    func outputFolder() throws {
        let dir = temporaryDirectory("out-file")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("taken")
        try Data("x".utf8).write(to: file)
        let base = [
            "extract", "--arch", "vit_small_patch14_dinov2", "--random-init", "1", "--size", "28", "28",
            "--images", try onePhotoFolder(dir).path, "--out",
        ]
        let m = dvtError(base + [file.path])
        #expect(m.contains("cannot write \(file.path)") && m.contains("a regular file") && !m.contains("NSCocoaErrorDomain"), "\(m)")
        let below = dvtError(base + [file.appendingPathComponent("sub").path])
        #expect(below.contains("\(file.path) is a regular file, not a folder"), "\(below)")
        // Read-only: a read-only tmpfs when root (permissions do not bind root), else a 0555 folder.
        try withReadOnlyFolder(dir) { ro in
            let r = dvtError(base + [ro.appendingPathComponent("out").path])
            #expect(
                r.contains("cannot write \(ro.appendingPathComponent("out").path): permission denied") && !r.contains("NSCocoaErrorDomain"), "\(r)")
        }
        // The translation of a raw Foundation error that reaches the top of the tool.
        let raw = NSError(
            domain: NSCocoaErrorDomain, code: CocoaError.fileWriteVolumeReadOnly.rawValue,
            userInfo: [NSFilePathErrorKey: "/nonexistent-root-\(UUID().uuidString)/x"])
        #expect("\(FileErrors.describe(raw))".contains("permission denied"))
    }
}

/// A folder holding one bundled photo (`--images` takes a folder or a list, not an image).
func onePhotoFolder(_ dir: URL) throws -> URL {
    let f = dir.appendingPathComponent("one")
    try FileManager.default.createDirectory(at: f, withIntermediateDirectories: true)
    try FileManager.default.copyItem(at: photos.appendingPathComponent("chelsea.jpg"), to: f.appendingPathComponent("chelsea.jpg"))
    return f
}

/// Runs `body` with a folder writes into fail with EACCES/EROFS: a read-only tmpfs under `dir`
/// when running as root (as CI does), else a mode-0555 folder. Root without the right to mount
/// skips the test (a failure under CI).
func withReadOnlyFolder(_ dir: URL, _ body: (URL) throws -> Void) throws {
    let ro = dir.appendingPathComponent("ro")
    try FileManager.default.createDirectory(at: ro, withIntermediateDirectories: true)
    if getuid() == 0 {
        try requirePrerequisite(mountTmpfs(ro, options: "ro,size=64k"), "root, but mount -t tmpfs is refused (no CAP_SYS_ADMIN)")
        defer { unmount(ro) }
        try body(ro)
    } else {
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: ro.path)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: ro.path) }
        try body(ro)
    }
}

/// `mount -t tmpfs -o OPTIONS tmpfs DIR`; false when the mount is not allowed (no root, no CAP_SYS_ADMIN).
func mountTmpfs(_ dir: URL, options: String) -> Bool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/mount")
    p.arguments = ["-t", "tmpfs", "-o", options, "tmpfs", dir.path]
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}

func unmount(_ dir: URL) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/umount")
    p.arguments = [dir.path]
    try? p.run()
    p.waitUntilExit()
}

@Suite("Reliability: full disk")
struct FullDiskTests {
    /// Root (as in CI): a 16 KB tmpfs, where a 25 KB feature map cannot fit. Otherwise an injected
    /// writer failure with ENOSPC. Either way: the documented message, nothing under the final
    /// name, no temporary left behind.
    @Test("a write that runs out of space leaves nothing behind and says so")
    func fullDisk() throws {
        let dir = temporaryDirectory("full")
        defer { try? FileManager.default.removeItem(at: dir) }
        let small = dir.appendingPathComponent("small")
        try FileManager.default.createDirectory(at: small, withIntermediateDirectories: true)
        let mounted = getuid() == 0 && mountTmpfs(small, options: "size=16k")
        defer { if mounted { unmount(small) } }
        let dst = small.appendingPathComponent("map.npy")
        var rng = RandomGenerator(seed: 1)
        let big = Tensor.normal([4, 4, 384], rng: &rng)  // 24.6 KB
        do {
            if mounted {
                try Npy.write(big, to: dst)
            } else {
                try AtomicFile.write(to: dst) { w in
                    try w.write([UInt8](repeating: 0, count: 100))
                    throw AtomicFileError(path: dst.path, errno: ENOSPC, step: "write")
                }
            }
            Issue.record("expected a no-space error")
        } catch {
            #expect("\(error)".contains("cannot write \(dst.path): no space left on device"), "\(error)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: small.path).isEmpty)
        // The whole command needs the real full disk: a non-root run has checked the writer only.
        try requirePrerequisite(mounted, "not root, or mount -t tmpfs refused: the whole-command part needs a 16 KB tmpfs")
        // The whole command: extract into the full folder fails per image with the same message
        // and a non-zero exit, and leaves no partial map.
        let out = small.appendingPathComponent("out")
        #expect(throws: JobsError.self) {
            try runDVT([
                "extract", "--arch", "vit_small_patch14_dinov2", "--random-init", "1", "--size", "56", "56", "--layer", "0",
                "--images", try onePhotoFolder(dir).path, "--out", out.path,
            ])
        }
        let left = (try? FileManager.default.subpathsOfDirectory(atPath: out.path)) ?? []
        #expect(!left.contains { $0.hasSuffix(".npy") || $0.contains(".tmp-") }, "\(left)")
    }
}

@Suite("Reliability: extract batching")
struct ExtractBatchingTests {
    /// Issue 18, item 12: a resumed extract batches differently; each image's features must not
    /// depend on the batch it went through (they are bit-identical: rows of every kernel are
    /// computed independently of the batch size).
    @Test("per-image features are bit-identical at batch 1 and batch 3")
    func batching() throws {
        let dir = temporaryDirectory("batching")
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        for n in ["chelsea", "coffee", "rocket"] {
            try FileManager.default.copyItem(at: photos.appendingPathComponent("\(n).jpg"), to: input.appendingPathComponent("\(n).jpg"))
        }
        for b in [1, 3] {
            try runDVT([
                "extract", "--random-init", "5", "--size", "56", "70", "--layer", "2", "--images", input.path,
                "--out", dir.appendingPathComponent("b\(b)").path, "--batch-size", "\(b)",
            ])
        }
        for n in ["chelsea", "coffee", "rocket"] {
            let a = try Npy.read(dir.appendingPathComponent("b1/\(n).npy")), c = try Npy.read(dir.appendingPathComponent("b3/\(n).npy"))
            #expect(a.shape == c.shape && a.scalars == c.scalars, "\(n): features depend on the batch")
        }
    }
}

extension Stage1CLITests {
    @Test("stage1 refuses stride_size and input_size the model cannot take, naming the key and the range, before writing")
    func geometryFromConfig() throws {
        let dir = temporaryDirectory("stage1-geometry")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cfg = try config(dir, images: ["chelsea.jpg"])
        for (set, expected) in [("stride_size=20", "stride_size 20 is not allowed"), ("input_size=[4096, 4096]", "input_size 4096 4096 needs about")]
        {
            var m = "no error"
            do { try runDVT(["stage1", cfg.path, "--set", set]) } catch { m = "\(error)" }
            #expect(m.contains(expected) && m.contains("vit_small_patch14_dinov2"), "\(m)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/denoised_features").path))
    }
}
