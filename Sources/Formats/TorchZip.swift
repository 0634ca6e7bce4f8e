import Foundation
import TensorCore

// The zip container of `torch.save` files (PyTorch >= 1.6, `_use_new_zipfile_serialization`):
// every record is stored uncompressed under one top-level folder, `<name>/data.pkl`,
// `<name>/data/<key>` (one per storage), `<name>/byteorder`, `<name>/version`, … Torch's writer
// (caffe2/serialize/inline_container.cc) sets the data-descriptor flag, so the sizes live in the
// central directory, not in the local headers; large archives use zip64 records.

/// A malformed, unsupported or refused PyTorch checkpoint. The message names the file and, where
/// one is involved, the record, tensor key or pickle global.
public struct TorchFormatError: Error, CustomStringConvertible, LocalizedError {
    public let path: String
    public let message: String

    public var description: String { "PyTorch file \(path): \(message)" }
    public var errorDescription: String? { description }
}

/// One stored (uncompressed) record of the archive.
struct TorchZipEntry {
    let name: String
    /// Absolute byte offset of the record's data.
    let dataOffset: Int
    let size: Int
    let crc32: UInt32
}

/// Bounds-checked little-endian reads on a byte buffer; every read past the end throws.
struct ByteCursor {
    let buf: ReadOnlyBytes
    let fail: (String) -> TorchFormatError

    /// The little-endian `T` at byte `at`.
    func read<T: FixedWidthInteger>(_ at: Int, as _: T.Type) throws -> T {
        let n = MemoryLayout<T>.size
        guard at >= 0, at <= buf.count - n else {
            throw fail("read of \(n) bytes at offset \(at) runs past the end (\(buf.count) bytes): truncated file?")
        }
        return buf.load(littleEndian: T.self, at: at)
    }

    func u16(_ at: Int) throws -> Int { Int(try read(at, as: UInt16.self)) }
    func u32(_ at: Int) throws -> UInt32 { try read(at, as: UInt32.self) }
    func u64(_ at: Int) throws -> UInt64 { try read(at, as: UInt64.self) }

    /// A u64 size or offset that must fit the file.
    func bounded(_ v: UInt64, _ what: String) throws -> Int {
        guard v <= UInt64(buf.count) else { throw fail("\(what) \(v) exceeds the file size \(buf.count)") }
        return Int(v)
    }
}

enum TorchZip {
    static let eocdSignature: UInt32 = 0x0605_4B50
    static let zip64LocatorSignature: UInt32 = 0x0706_4B50
    static let zip64EOCDSignature: UInt32 = 0x0606_4B50
    static let centralSignature: UInt32 = 0x0201_4B50
    static let localSignature: UInt32 = 0x0403_4B50
    /// More records than any state dict has; bounds the directory walk of a corrupt count.
    static let maxEntries = 1_000_000

    /// The records of the archive in `buf`, validated: every record stored, inside the file,
    /// before the central directory, with a local header that names it. CRCs are checked when a
    /// record is read (`checkedBytes`).
    static func entries(_ buf: ReadOnlyBytes, fail: @escaping (String) -> TorchFormatError) throws -> [String: TorchZipEntry] {
        let c = ByteCursor(buf: buf, fail: fail)
        // End of central directory: 22 bytes plus a comment of at most 65535 bytes, at the end.
        var eocd = -1
        var p = buf.count - 22
        let lowest = max(0, buf.count - 22 - 65535)
        while p >= lowest {
            if buf[p] == 0x50, try c.u32(p) == eocdSignature { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else { throw fail("no zip end-of-central-directory record: the file is truncated or not a zip archive") }
        var count = try c.u16(eocd + 10)
        var cdSize = Int(try c.u32(eocd + 12))
        var cdOffset = Int(try c.u32(eocd + 16))
        var cdEnd = eocd
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // zip64: the locator sits just before the classic record and points at the zip64 record.
            let loc = eocd - 20
            guard loc >= 0, try c.u32(loc) == zip64LocatorSignature else { throw fail("zip64 sizes announced but no zip64 locator found") }
            let rec = try c.bounded(try c.u64(loc + 8), "zip64 record offset")
            guard try c.u32(rec) == zip64EOCDSignature else { throw fail("zip64 end-of-central-directory record missing at offset \(rec)") }
            count = try c.bounded(try c.u64(rec + 32), "zip64 entry count")
            cdSize = try c.bounded(try c.u64(rec + 40), "zip64 central directory size")
            cdOffset = try c.bounded(try c.u64(rec + 48), "zip64 central directory offset")
            cdEnd = rec
        }
        guard count <= maxEntries else { throw fail("zip declares \(count) records, more than the \(maxEntries) limit") }
        guard cdOffset <= cdEnd, cdSize <= cdEnd - cdOffset else {
            throw fail("central directory [\(cdOffset), +\(cdSize)) does not fit before its end record at \(cdEnd)")
        }
        guard count * 46 <= cdSize else { throw fail("central directory of \(cdSize) bytes cannot hold \(count) records") }
        var out: [String: TorchZipEntry] = [:]
        var at = cdOffset
        for _ in 0..<count {
            let e = try centralRecord(c, at: &at, cdOffset: cdOffset, fail: fail)
            guard out[e.name] == nil else { throw fail("zip record \"\(e.name)\" appears twice") }
            out[e.name] = e
        }
        return out
    }

    /// Parses the central-directory record at `at` (advanced past it) and its local header.
    private static func centralRecord(
        _ c: ByteCursor, at: inout Int, cdOffset: Int,
        fail: (String) -> TorchFormatError
    ) throws -> TorchZipEntry {
        guard try c.u32(at) == centralSignature else { throw fail("bad central directory record signature at offset \(at)") }
        let method = try c.u16(at + 10)
        let crc = try c.u32(at + 16)
        var compressed = UInt64(try c.u32(at + 20))
        var size = UInt64(try c.u32(at + 24))
        let nameLen = try c.u16(at + 28), extraLen = try c.u16(at + 30), commentLen = try c.u16(at + 32)
        var local = UInt64(try c.u32(at + 42))
        let nameStart = at + 46
        guard nameStart + nameLen + extraLen + commentLen <= c.buf.count else {
            throw fail("central directory record at \(at) runs past the end of the file")
        }
        let name = c.buf.string(nameStart..<(nameStart + nameLen))
        // zip64 extra field (id 1): the 64-bit values of exactly the fields that hold 0xFFFFFFFF.
        var x = nameStart + nameLen
        let xEnd = x + extraLen
        while x + 4 <= xEnd {
            let id = try c.u16(x), len = try c.u16(x + 2)
            guard x + 4 + len <= xEnd else { throw fail("extra field of record \"\(name)\" overruns its record") }
            if id == 1 {
                var f = x + 4
                for field in [0, 1, 2] {
                    let isMax = field == 0 ? size == 0xFFFF_FFFF : field == 1 ? compressed == 0xFFFF_FFFF : local == 0xFFFF_FFFF
                    guard isMax else { continue }
                    guard f + 8 <= x + 4 + len else { throw fail("zip64 extra field of \"\(name)\" is too short") }
                    let v = try c.u64(f)
                    if field == 0 { size = v } else if field == 1 { compressed = v } else { local = v }
                    f += 8
                }
            }
            x += 4 + len
        }
        at = xEnd + commentLen
        guard method == 0 else {
            throw fail(
                "record \"\(name)\" is compressed (zip method \(method)); torch.save stores records uncompressed, and only that is supported (was the file re-zipped?)"
            )
        }
        guard compressed == size else { throw fail("stored record \"\(name)\" has compressed size \(compressed) != size \(size)") }
        let localAt = try c.bounded(local, "local header offset of \"\(name)\"")
        guard try c.u32(localAt) == localSignature else { throw fail("record \"\(name)\": no local header at offset \(localAt)") }
        let lName = try c.u16(localAt + 26), lExtra = try c.u16(localAt + 28)
        let dataOffset = localAt + 30 + lName + lExtra
        guard lName == nameLen, dataOffset <= cdOffset,
            localAt + 30 + nameLen <= c.buf.count,
            c.buf.equal((localAt + 30)..<(localAt + 30 + nameLen), nameStart..<(nameStart + nameLen))
        else {
            throw fail("record \"\(name)\": local header does not match the central directory")
        }
        let n = try c.bounded(size, "size of \"\(name)\"")
        guard n <= cdOffset - dataOffset else {
            throw fail("record \"\(name)\" declares \(n) bytes at offset \(dataOffset), past the central directory at \(cdOffset) (truncated file?)")
        }
        return TorchZipEntry(name: name, dataOffset: dataOffset, size: n, crc32: crc)
    }

    /// The record's byte range after checking its CRC-32.
    static func checkedRange(
        _ buf: ReadOnlyBytes, _ e: TorchZipEntry,
        fail: (String) -> TorchFormatError
    ) throws -> Range<Int> {
        let bytes = e.dataOffset..<(e.dataOffset + e.size)
        let crc = buf.crc32(bytes)
        guard crc == e.crc32 else {
            throw fail(String(format: "record \"%@\" fails its CRC-32 check (stored %08x, computed %08x): the file is corrupt", e.name, e.crc32, crc))
        }
        return bytes
    }
}
