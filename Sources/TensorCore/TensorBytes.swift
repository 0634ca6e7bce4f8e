import Foundation

/// How a stored tensor's elements are encoded (all little-endian): the dtypes safetensors, npy
/// and PyTorch archives hold. The file formats map their own dtype names onto these.
package enum StoredElement: Sendable {
    case float32, float16, bfloat16, float64, int64, int32, int16, uint16, int8, uint8, bool

    package var byteSize: Int {
        switch self {
        case .float64, .int64: 8
        case .float32, .int32: 4
        case .float16, .bfloat16, .int16, .uint16: 2
        case .int8, .uint8, .bool: 1
        }
    }
}

/// Decoding tensors out of file bytes and encoding them back: the formats above TensorCore
/// describe where the elements are; the element loops (a memcpy for f32) live here.
extension Tensor {
    /// `shape.product` contiguous elements of `element` starting at byte `byteOffset` (any
    /// alignment), converted to float32 exactly (integers and halves) or rounded (f64).
    package static func decoding(_ bytes: ReadOnlyBytes, at byteOffset: Int, as element: StoredElement, shape: [Int]) -> Tensor {
        let t = Tensor(zeros: shape)
        let n = t.count
        bytes.check(byteOffset..<(byteOffset + n * element.byteSize))
        guard n > 0 else { return t }
        let src = bytes.base + byteOffset, dst = t.ptr
        #if _endian(little)
        if element == .float32 {  // the bytes already are the floats (memcpy tolerates any alignment)
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: 4 * n)
            return t
        }
        #endif
        decodeRun(src, element, into: dst, count: n)
        return t
    }

    /// `count` contiguous elements. One loop per encoding, so the per-element switch folds away
    /// (a loop over `decodeElement(src, element, i)` with a variable `element` ran 2× slower).
    static func decodeRun(_ src: UnsafeRawPointer, _ element: StoredElement, into dst: UnsafeMutablePointer<Float>, count n: Int) {
        switch element {
        case .float32: for i in 0..<n { dst[i] = decodeElement(src, .float32, i) }
        case .float16: for i in 0..<n { dst[i] = decodeElement(src, .float16, i) }
        case .bfloat16: for i in 0..<n { dst[i] = decodeElement(src, .bfloat16, i) }
        case .float64: for i in 0..<n { dst[i] = decodeElement(src, .float64, i) }
        case .int64: for i in 0..<n { dst[i] = decodeElement(src, .int64, i) }
        case .int32: for i in 0..<n { dst[i] = decodeElement(src, .int32, i) }
        case .int16: for i in 0..<n { dst[i] = decodeElement(src, .int16, i) }
        case .uint16: for i in 0..<n { dst[i] = decodeElement(src, .uint16, i) }
        case .int8: for i in 0..<n { dst[i] = decodeElement(src, .int8, i) }
        case .uint8: for i in 0..<n { dst[i] = decodeElement(src, .uint8, i) }
        case .bool: for i in 0..<n { dst[i] = decodeElement(src, .bool, i) }
        }
    }

    /// A strided view into one stored record (a torch storage): element `i` of the row-major
    /// result is record element `elementOffset + Σ index[d]·strides[d]`. The record spans
    /// `record` (byte range); every element read must lie inside it.
    package static func decoding(
        _ bytes: ReadOnlyBytes, record: Range<Int>, as element: StoredElement,
        elementOffset: Int, strides: [Int], shape: [Int]
    ) -> Tensor {
        precondition(strides.count == shape.count, "decoding: \(strides.count) strides for shape \(shape)")
        bytes.check(record)
        let t = Tensor(zeros: shape)
        let n = t.count
        guard n > 0 else { return t }
        // Reach of the view, checked once so the walk below needs no per-element bounds check.
        var lo = elementOffset, hi = elementOffset
        for (s, d) in zip(strides, shape) { if s < 0 { lo += s * (d - 1) } else { hi += s * (d - 1) } }
        precondition(
            lo >= 0 && (hi + 1) * element.byteSize <= record.count,
            "decoding: view of shape \(shape) strides \(strides) offset \(elementOffset) leaves its \(record.count)-byte record")
        let src = bytes.base + record.lowerBound, dst = t.ptr
        var index = [Int](repeating: 0, count: shape.count)
        var at = elementOffset
        for i in 0..<n {
            dst[i] = decodeElement(src, element, at)
            // Advance the multi-index in row-major order.
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                at += strides[d]
                if index[d] < shape[d] { break }
                at -= strides[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
        return t
    }

    /// Element `i` of a little-endian array of `element` at `src`, as Float.
    @inline(__always)
    static func decodeElement(_ src: UnsafeRawPointer, _ element: StoredElement, _ i: Int) -> Float {
        switch element {
        case .float32: Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        case .float16: halfToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        // bfloat16 is the top half of an IEEE float32.
        case .bfloat16: Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
        case .float64: Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
        case .int64: Float(Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
        case .int32: Float(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
        case .int16: Float(Int16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
        case .uint16: Float(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        case .int8: Float(src.load(fromByteOffset: i, as: Int8.self))
        case .uint8: Float(src.load(fromByteOffset: i, as: UInt8.self))
        case .bool: src.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0
        }
    }

    /// The elements as little-endian float32 bytes (4 · count), the on-disk form of every
    /// tensor this toolkit writes.
    public func littleEndianFloat32Bytes() -> [UInt8] {
        let n = count
        return [UInt8](unsafeUninitializedCapacity: 4 * n) { out, written in
            #if _endian(little)
            if n > 0 { UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: ptr, byteCount: 4 * n) }
            #else
            for i in 0..<n { withUnsafeBytes(of: ptr[i].bitPattern.littleEndian) { for k in 0..<4 { out[4 * i + k] = $0[k] } } }
            #endif
            written = 4 * n
        }
    }

    /// The same bytes as `Data` (for Foundation writers).
    public func littleEndianFloat32Data() -> Data {
        #if _endian(little)
        Data(bytes: ptr, count: 4 * count)
        #else
        Data(littleEndianFloat32Bytes())
        #endif
    }
}

/// IEEE 754 binary16 → binary32, exact (every half value is a float), including subnormals,
/// infinities and NaN payloads. Done with bit operations so it does not depend on the platform
/// having a native Float16 type.
@inline(__always)
package func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1F
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0 {
        // Zero or subnormal: value = mantissa · 2^-24.
        let magnitude = Float(mantissa) * 0x1p-24
        return sign != 0 ? -magnitude : magnitude
    }
    if exponent == 31 {
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    }
    // Re-bias the exponent from 15 to 127.
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
}
