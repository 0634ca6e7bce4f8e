import Foundation
import TensorCore

// Read-only mapped files live in TensorCore (`ReadOnlyBytes`, the engine's file-backed storage
// with bounds-checked reads); this adds the file errors Formats reports.

extension ReadOnlyBytes {
    /// Maps `url` read-only (see `ReadOnlyBytes.map(path:)`), with errors naming the path and,
    /// for a non-regular file, what it is instead.
    package static func map(_ url: URL) throws -> ReadOnlyBytes {
        let path = url.path
        do {
            return try ReadOnlyBytes.map(path: path)
        } catch .notRegular {
            throw FileReadError(path: path, message: "it is \(FileKind.of(path).noun), not a regular file")
        } catch .system(let message) {
            throw FileReadError(path: path, message: message)
        }
    }
}

/// A file could not be opened or mapped.
public struct FileReadError: Error, CustomStringConvertible, LocalizedError {
    public let path: String
    public let message: String
    public var description: String { "cannot read \(path): \(message)" }
    public var errorDescription: String? { description }
}
