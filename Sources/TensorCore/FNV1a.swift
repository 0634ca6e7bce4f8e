/// FNV-1a, 64 bits (offset basis 0xcbf29ce484222325, prime 0x100000001b3): a hash that is the
/// same in every run and on every platform, unlike `Hasher`, for names and fingerprints written
/// to disk or used as seeds. Each `combine` mixes one word (a byte, or a wider value as FNV-1a
/// over words).
public struct FNV1a: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func combine(_ word: UInt64) {
        value = (value ^ word) &* 0x100_0000_01b3
    }

    /// Mixes the UTF-8 bytes of `text`, one `combine` per byte.
    public mutating func combine(utf8 text: String) {
        for byte in text.utf8 { combine(UInt64(byte)) }
    }

    /// FNV-1a 64 of the UTF-8 bytes of `text`.
    public static func hash(utf8 text: String) -> UInt64 {
        var h = FNV1a()
        h.combine(utf8: text)
        return h.value
    }
}
