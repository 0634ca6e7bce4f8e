import ArgumentParser
import Foundation
import Testing
import TestSupport
@testable import DVTCommands

/// A fresh temporary directory, removed by the caller.
func temporaryDirectory(_ label: String) -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("dvt-cli-\(label)-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    return d
}

/// Parses and runs a `dvt` command line in-process, as the executable would.
func runDVT(_ args: [String]) throws {
    var command = try DVTCommand.parseAsRoot(args)
    try command.run()
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

/// Runs the `dvt` executable; returns (status, stdout + stderr).
func runExecutable(_ args: [String]) throws -> (Int32, String) {
    guard let exe = dvtExecutable else { throw CancellationError() }
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
