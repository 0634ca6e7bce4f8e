import DVT
import Formats
import Foundation
import NN
import Report
import Settings
import TensorCore
import Training
import Vision

/// Appends one JSON object as a line (a single write on an O_APPEND descriptor, so a killed
/// process leaves whole lines).
public func appendJSONLine(_ object: [String: Any], to url: URL) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    let fd = open(url.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    guard fd >= 0 else { throw ConfigError("cannot append to \(url.path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let line = data + Data("\n".utf8)
    let written = line.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
    if written != line.count { throw ConfigError("cannot append to \(url.path): \(String(cString: strerror(errno)))") }
}
