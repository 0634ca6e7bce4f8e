import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Kernel extension point for byte I/O on file descriptors (docs/architecture.md): write(2) and
/// pread(2) take pointers, and Formats needs their exact errno contract (atomic files report
/// ENOSPC / EACCES in plain words; the line appender rolls a short write back with its own
/// errno), which Foundation's FileHandle does not expose. Callers pass and get `[UInt8]`/`Data`, or a tensor.
package enum FileDescriptorIO {
    /// Why `writeAll` stopped.
    package enum WriteFailure: Error, Equatable {
        case errno(Int32)
        /// write(2) returned 0 for a non-empty request.
        case wroteNothing
    }

    /// Writes every byte, retrying on EINTR and after short writes; `progress` gets the size of
    /// each successful write(2).
    package static func writeAll<C: ContiguousBytes>(_ fd: Int32, _ bytes: C, progress: (Int) -> Void = { _ in }) throws(WriteFailure) {
        let failure: WriteFailure? = bytes.withUnsafeBytes { b in
            guard var p = b.baseAddress else { return nil }
            var left = b.count
            while left > 0 {
                let n = write(fd, p, left)
                if n < 0 {
                    if errno == EINTR { continue }
                    return .errno(errno)
                }
                if n == 0 { return .wroteNothing }
                p += n
                left -= n
                progress(n)
            }
            return nil
        }
        if let failure { throw failure }
    }

    /// Writes a tensor's elements as little-endian float32 (the on-disk form of every tensor this
    /// toolkit writes) straight from its storage, without an intermediate copy of the bytes.
    package static func writeAll(_ fd: Int32, _ tensor: Tensor, progress: (Int) -> Void = { _ in }) throws(WriteFailure) {
        #if _endian(little)
        try writeAll(fd, UnsafeRawBufferPointer(start: tensor.ptr, count: 4 * tensor.count), progress: progress)
        #else
        try writeAll(fd, tensor.littleEndianFloat32Bytes(), progress: progress)
        #endif
    }

    /// One write(2) of all of `bytes` (no retry): the byte count written, or −1 with errno set.
    package static func writeOnce<C: ContiguousBytes>(_ fd: Int32, _ bytes: C) -> Int {
        bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// pread(2) of `count` bytes at `offset`: the bytes read (possibly fewer), or nil with errno set.
    package static func read(_ fd: Int32, count: Int, at offset: off_t) -> [UInt8]? {
        var block = [UInt8](repeating: 0, count: count)
        let n = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, offset) }
        guard n >= 0 else { return nil }
        block.removeLast(count - n)
        return block
    }
}
