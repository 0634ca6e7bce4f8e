import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An immutable byte region: a read-only memory map of a file, or a private copy of some bytes.
/// The engine's file-backed storage: parsers above TensorCore (Formats) read it only through the
/// bounds-checked accessors below and decode tensors out of it with `Tensor.decoding`, so the
/// raw mapping never leaves TensorCore. The same parsers run on files and on in-memory data
/// (the fuzz tests feed thousands of mutated buffers without touching the disk).
package final class ReadOnlyBytes: @unchecked Sendable {
    @usableFromInline let base: UnsafeRawPointer
    package let count: Int
    private let release: () -> Void

    private init(base: UnsafeRawPointer, count: Int, release: @escaping () -> Void) {
        self.base = base
        self.count = count
        self.release = release
    }

    deinit { release() }

    /// Copies `bytes` into a private allocation (16-byte aligned, like a mapping's start).
    package convenience init<C: Collection>(copying bytes: C) where C.Element == UInt8 {
        let n = bytes.count
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1), alignment: 16)
        UnsafeMutableRawBufferPointer(start: p, count: n).copyBytes(from: bytes)
        self.init(base: UnsafeRawPointer(p), count: n, release: { p.deallocate() })
    }

    package static func copy(_ data: Data) -> ReadOnlyBytes { ReadOnlyBytes(copying: data) }

    /// Why `map` failed: `notRegular` lets the caller name the file type in its own words.
    package enum MapError: Error {
        case system(String)
        case notRegular
    }

    /// Maps `path` read-only. The mapping is private, so later writes by others to the file are
    /// not guaranteed to be seen; truncating the file while mapped would fault (SIGBUS) on
    /// access, which no reader of memory-mapped files can prevent; we write files atomically
    /// (rename) precisely so that never happens to our own files.
    package static func map(path: String) throws(MapError) -> ReadOnlyBytes {
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever; the
        // file type is checked on the descriptor right after (no window between check and open).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 { throw .system(String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw .system(String(cString: strerror(errno))) }
        if (st.st_mode & S_IFMT) != S_IFREG { throw .notRegular }
        let size = Int(st.st_size)
        if size == 0 { return ReadOnlyBytes(copying: [UInt8]()) }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw .system("mmap failed: \(String(cString: strerror(errno)))")
        }
        return ReadOnlyBytes(base: UnsafeRawPointer(p), count: size, release: { munmap(p, size) })
    }

    // MARK: Bounds-checked reads

    @inlinable
    package subscript(i: Int) -> UInt8 {
        precondition(i >= 0 && i < count, "byte \(i) outside 0..<\(count)")
        return base.load(fromByteOffset: i, as: UInt8.self)
    }

    @inline(__always) func check(_ r: Range<Int>) {
        precondition(r.lowerBound >= 0 && r.upperBound <= count, "byte range \(r) outside 0..<\(count)")
    }

    /// A copy of the bytes in `r`.
    package func bytes(_ r: Range<Int>) -> [UInt8] {
        check(r)
        return Array(UnsafeRawBufferPointer(start: base + r.lowerBound, count: r.count))
    }

    /// The little-endian integer of `T`'s size at byte `offset` (any alignment).
    @inlinable
    package func load<T: FixedWidthInteger>(littleEndian: T.Type, at offset: Int) -> T {
        precondition(offset >= 0 && offset <= count - MemoryLayout<T>.size, "\(MemoryLayout<T>.size)-byte read at \(offset) outside 0..<\(count)")
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// The bytes in `r` decoded as UTF-8 (invalid sequences become U+FFFD).
    package func string(_ r: Range<Int>) -> String {
        check(r)
        return String(decoding: UnsafeRawBufferPointer(start: base + r.lowerBound, count: r.count), as: UTF8.self)
    }

    /// Whether the bytes in `r` are valid UTF-8.
    package func isValidUTF8(_ r: Range<Int>) -> Bool {
        check(r)
        let b = UnsafeBufferPointer(start: (base + r.lowerBound).assumingMemoryBound(to: UInt8.self), count: r.count)
        return String(validating: b, as: UTF8.self) != nil
    }

    /// Whether the two ranges hold the same bytes.
    package func equal(_ a: Range<Int>, _ b: Range<Int>) -> Bool {
        check(a); check(b)
        return a.count == b.count && memcmp(base + a.lowerBound, base + b.lowerBound, a.count) == 0
    }

    /// The zip CRC-32 of the bytes in `r`, continuing from `seed`.
    package func crc32(_ r: Range<Int>, seed: UInt32 = 0) -> UInt32 {
        check(r)
        return CRC32.checksum(UnsafeRawBufferPointer(start: base + r.lowerBound, count: r.count), seed: seed)
    }

    /// Kernel extension point (docs/architecture.md): the whole region for a C decoder that
    /// takes a pointer and a length (libjpeg / libpng in Vision's image codecs). Valid only
    /// inside `body`.
    package func withUnsafeKernelBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }
}

/// CRC-32 (IEEE 802.3, the zip checksum), slicing by 8 bytes: checkpoints are gigabytes and
/// every storage is checked once when read, so the byte-at-a-time loop (≈ 8× slower) would
/// dominate loading.
package enum CRC32 {
    /// tables[k][b]: the CRC of byte b followed by k zero bytes.
    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 { t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[Int(t[(k - 1) * 256 + i] & 0xFF)] }
        }
        return t
    }()

    /// The CRC of `bytes` (an Array, ArraySlice or Data), continuing from `seed`.
    package static func checksum<C: ContiguousBytes>(_ bytes: C, seed: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, seed: seed) }
    }

    static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        var c = ~seed
        guard let base = bytes.baseAddress else { return seed }
        let n = bytes.count
        tables.withUnsafeBufferPointer { t in
            var i = 0
            while i + 8 <= n {
                let lo = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ c
                let hi = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                c =
                    t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(base.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                i += 1
            }
        }
        return ~c
    }
}
