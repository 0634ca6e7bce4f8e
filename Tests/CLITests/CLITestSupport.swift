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
