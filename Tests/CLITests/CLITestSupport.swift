import ArgumentParser
import Foundation
import TestSupport
import Testing

@testable import DVTCommands

/// Parses and runs a `dvt` command line in-process, as the executable would, with `--threads`
/// scoped to the call.
func runDVT(_ args: [String]) throws {
    var command = try DVTCommand.parseAsRoot(args)
    try DVTCommand.execute(&command)
}

/// The error `body` throws, as text, or "no error".
func errorText(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "no error"
    } catch {
        return "\(error)"
    }
}

/// The error a `dvt` command line ends with (`runDVT`), as text, or "no error".
func dvtError(_ args: [String]) -> String { errorText { try runDVT(args) } }

/// The built `dvt` executable next to the test bundle, when the build produced it.
var dvtExecutable: URL? {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [dir, dir.deletingLastPathComponent()] {
        let url = candidate.appendingPathComponent("dvt")
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    let fallback = repositoryRoot.appendingPathComponent(".build/debug/dvt")
    return FileManager.default.isExecutableFile(atPath: fallback.path) ? fallback : nil
}

/// The built `dvt` executable, or a skip (a failure under CI) when the build did not make it.
func requireExecutable(sourceLocation: SourceLocation = #_sourceLocation) throws -> URL {
    try requirePrerequisite(
        dvtExecutable != nil, "no dvt executable next to the test bundle or in .build/debug (swift build --build-tests makes it)",
        sourceLocation: sourceLocation)
    return dvtExecutable!
}

/// Runs the `dvt` executable; returns (status, stdout + stderr).
func runExecutable(_ args: [String]) throws -> (Int32, String) {
    let exe = try requireExecutable()
    let p = Process()
    p.executableURL = exe
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

let photos = repositoryRoot.appendingPathComponent("Datasets/photos")

/// The tiny run the CLI tests share: a backbone at a small input, the photos, a few stage-1 steps
/// and (for `dvt run`) a few stage-2 steps, rendered as the YAML a user would write. A test sets
/// the knobs it exercises and leaves the rest at these defaults; `write()` puts the image lists
/// and the config into `dir`, and the run's outputs go to `out`.
struct TinyRun {
    struct Stage1 {
        var numViews = 2
        var numIters = 10
        var pixelBsz = 32
        var nLevels = 2
        var log2HashmapSize = 6
        var maxResolution = 16
        var printFreq: Int? = 10
        var visEvery: Int? = nil
    }

    struct Stage2 {
        var numIters = 4
        var batchSize = 2
        /// save_freq, val_freq and print_freq.
        var every = 2
    }

    let dir: URL
    var model = "vit_small_patch14_dinov2.lvd142m"
    /// `weights:`; nil with `randomInit` set is a random-weights run.
    var weights: String? = nil
    var randomInit: Int? = 2
    var posEmbedResample: String? = nil
    var inputSize = [56, 56]
    var layer = 1
    var dataRoot = photos
    var train = ["chelsea.jpg", "rocket.jpg"]
    var trainListName = "train.txt"
    /// The validation images (`val_list`); nil writes no list and no key.
    var val: [String]? = ["camera.jpg"]
    var seed: Int? = 1
    var stage1 = Stage1()
    /// nil: no stage2 section (a stage-1-only command).
    var stage2: Stage2? = Stage2()
    /// SRT with one-token shifts; false writes `srt: {enabled: false}`, nil no srt section.
    var srt: Bool? = true
    /// YAML appended as it is (e.g. a `probe:` section).
    var extra = ""

    init(_ dir: URL) { self.dir = dir }

    var out: URL { dir.appendingPathComponent("out") }
    var trainList: URL { dir.appendingPathComponent(trainListName) }
    var valList: URL { dir.appendingPathComponent("val.txt") }

    var yaml: String {
        var lines = ["model: \(model)"]
        if let weights { lines.append("weights: \(weights)") }
        if let randomInit { lines.append("random_init: \(randomInit)") }
        if let posEmbedResample { lines.append("pos_embed_resample: \(posEmbedResample)") }
        lines += [
            "input_size: [\(inputSize.map(String.init).joined(separator: ", "))]",
            "layer: \(layer)",
            "data_root: \(dataRoot.path)",
            "data_list: \(trainList.path)",
        ]
        if val != nil { lines.append("val_list: \(valList.path)") }
        lines.append("output_dir: \(out.path)")
        if let seed { lines.append("seed: \(seed)") }
        lines += [
            "stage1:",
            "  num_views: \(stage1.numViews)",
            "  num_iters: \(stage1.numIters)",
            "  pixel_bsz: \(stage1.pixelBsz)",
            "  n_levels: \(stage1.nLevels)",
            "  log2_hashmap_size: \(stage1.log2HashmapSize)",
            "  max_resolution: \(stage1.maxResolution)",
        ]
        if let p = stage1.printFreq { lines.append("  print_freq: \(p)") }
        if let v = stage1.visEvery { lines.append("  vis_every: \(v)") }
        if let s = stage2 {
            lines += [
                "stage2:", "  num_iters: \(s.numIters)", "  batch_size: \(s.batchSize)", "  save_freq: \(s.every)",
                "  val_freq: \(s.every)", "  print_freq: \(s.every)",
            ]
        }
        switch srt {
        case true?: lines += ["srt:", "  dx: 1", "  dy: 1"]
        case false?: lines += ["srt:", "  enabled: false"]
        case nil: break
        }
        return (lines + (extra.isEmpty ? [] : [extra])).joined(separator: "\n") + "\n"
    }

    /// Writes the image lists and the config (`name` in `dir`); returns the config's URL.
    @discardableResult
    func write(name: String = "tiny.yaml") throws -> URL {
        try train.map { $0 + "\n" }.joined().write(to: trainList, atomically: true, encoding: .utf8)
        if let val { try val.map { $0 + "\n" }.joined().write(to: valList, atomically: true, encoding: .utf8) }
        let url = dir.appendingPathComponent(name)
        try yaml.write(to: url, atomically: true, encoding: .utf8)
        return url
    }
}
