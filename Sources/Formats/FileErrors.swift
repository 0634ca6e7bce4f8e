import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A file-system failure in plain words, naming the path, instead of Foundation's
/// `Error Domain=NSCocoaErrorDomain Code=642/516 …` dumps for a read-only or file `--out`.
public struct PathError: Error, CustomStringConvertible, LocalizedError, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

public enum FileErrors {
    /// Creates `url` and its parents like `FileManager.createDirectory(withIntermediateDirectories:)`,
    /// but a failure names the path and the cause: a file in the way, no permission, no space.
    public static func createDirectory(_ url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw diagnose(url.path, error)
        }
    }

    /// Why a write under `path` failed, from the file system itself (the first ancestor that exists
    /// decides), else from the Foundation error's code. Errors that are not Foundation
    /// file errors are returned unchanged.
    public static func diagnose(_ path: String, _ error: Error) -> Error {
        if error is PathError || error is AtomicFileError { return error }
        var p = (path as NSString).standardizingPath
        while !p.isEmpty {
            switch FileKind.of(p) {
            case .missing:
                let parent = (p as NSString).deletingLastPathComponent
                if parent == p { p = "" } else { p = parent }
                continue
            case .directory:
                if access(p, W_OK) != 0 {
                    let why = errno == EROFS ? "read-only file system" : "\(p) is not writable"
                    return PathError("cannot write \(path): permission denied (\(why))")
                }
                return foundationMessage(path, error) ?? error
            case let kind:
                return PathError(
                    p == path
                        ? "cannot write \(path): it is \(kind.noun), and a folder is needed here"
                        : "cannot write \(path): \(p) is \(kind.noun), not a folder")
            }
        }
        return foundationMessage(path, error) ?? error
    }

    /// A Foundation file error as "cannot write PATH: …"; nil for other errors.
    public static func describe(_ error: Error) -> Error {
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain else { return error }
        let path =
            (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
            ?? (ns.userInfo["NSURL"] as? URL)?.path
        guard let path else { return foundationMessage(nil, error) ?? error }
        return diagnose(path, error)
    }

    private static func foundationMessage(_ path: String?, _ error: Error) -> Error? {
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain else { return nil }
        let what = path ?? "a file"
        switch ns.code {
        case CocoaError.fileWriteNoPermission.rawValue, CocoaError.fileReadNoPermission.rawValue,
            CocoaError.fileWriteVolumeReadOnly.rawValue:
            return PathError("cannot write \(what): permission denied")
        case CocoaError.fileWriteOutOfSpace.rawValue:
            return PathError("cannot write \(what): no space left on device")
        case CocoaError.fileWriteFileExists.rawValue:
            return PathError("cannot write \(what): a file is in the way, and a folder is needed here")
        case CocoaError.fileNoSuchFile.rawValue, CocoaError.fileReadNoSuchFile.rawValue:
            return PathError("cannot open \(what): no such file or directory")
        case CocoaError.fileReadInvalidFileName.rawValue, CocoaError.fileWriteInvalidFileName.rawValue:
            return PathError("cannot use \(what): the file name is not valid (is it UTF-8?)")
        default:
            if let posix = ns.userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
                return PathError("cannot use \(what): \(String(cString: strerror(Int32(posix.code))))")
            }
            return nil
        }
    }
}
