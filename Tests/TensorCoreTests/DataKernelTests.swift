import Foundation
import Testing

@testable import TensorCore

/// The data-movement kernels that moved into TensorCore from Vision, DVT and Formats (patch
/// gather, flips, resampling passes, element ranges, stored-element decoding), each against a
/// naive per-element version written with the public subscript.
@Suite struct DataKernelTests {
    static func ramp(_ shape: [Int], seed: UInt64 = 1) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor.normal(shape, rng: &rng)
    }

    @Test func patchColumnsMatchNaiveGather() {
        for (h, w, p, s) in [(6, 8, 2, 2), (7, 9, 3, 2), (5, 5, 5, 1)] {
            let x = Self.ramp([2, 3, h, w])  // (B, C, H, W)
            let cols = x.patchColumns(patch: p, stride: s)
            let gh = (h - p) / s + 1, gw = (w - p) / s + 1
            #expect(cols.shape == [2 * gh * gw, 3 * p * p])
            var expected: [Float] = []
            for b in 0..<2 {
                for gy in 0..<gh {
                    for gx in 0..<gw {
                        for c in 0..<3 {
                            for ky in 0..<p {
                                for kx in 0..<p {
                                    expected.append(x[flat: ((b * 3 + c) * h + gy * s + ky) * w + gx * s + kx])
                                }
                            }
                        }
                    }
                }
            }
            #expect(cols.scalars == expected)
        }
    }

    @Test func flipMirrorsTheLastAxisAndItsGradient() {
        let x = Self.ramp([2, 3, 5])
        x.requiresGrad = true
        let y = x.flipped(axis: -1)
        for r in 0..<6 { for i in 0..<5 { #expect(y[flat: r * 5 + i] == x[flat: r * 5 + 4 - i]) } }
        let seed = Self.ramp([2, 3, 5], seed: 2)
        y.backward(seed: seed)
        for r in 0..<6 { for i in 0..<5 { #expect(x.grad![flat: r * 5 + i] == seed[flat: r * 5 + 4 - i]) } }
    }

    /// A middle axis (a (H, W, C) map mirrored left–right): whole channel vectors move.
    @Test func flipMirrorsAMiddleAxisAndItsGradient() {
        let x = Self.ramp([2, 3, 4])
        x.requiresGrad = true
        let y = x.flipped(axis: 1)
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { #expect(y[flat: (i * 3 + j) * 4 + k] == x[flat: (i * 3 + 2 - j) * 4 + k]) } } }
        let seed = Self.ramp([2, 3, 4], seed: 2)
        y.backward(seed: seed)
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { #expect(x.grad![flat: (i * 3 + j) * 4 + k] == seed[flat: (i * 3 + 2 - j) * 4 + k]) } } }
        #expect(x.flipped(axis: 0).flipped(axis: 0).scalars == x.scalars)
    }

    /// Taps with varying starts and counts (the shape both resizes produce).
    static func taps(inSize: Int, outSize: Int) -> ResampleTaps<Float> {
        let maxTaps = 3
        var start: [Int] = [], count: [Int] = [], weights = [Float](repeating: 0, count: outSize * maxTaps)
        for o in 0..<outSize {
            let s = min(o * inSize / outSize, inSize - 1), n = min(maxTaps, inSize - s, 1 + o % 3)
            start.append(s); count.append(n)
            for j in 0..<n { weights[o * maxTaps + j] = Float(j + 1) / Float(n + o) }
        }
        return ResampleTaps(start: start, count: count, weights: weights, maxTaps: maxTaps)
    }

    @Test func floatPassMatchesNaiveSum() {
        // Vertical pass of a (4, 7) block at offset 3 of a larger buffer into a (5, 7) output.
        let (lines, inSize, outSize) = (7, 4, 5)
        let src = Self.ramp([3 + inSize * lines])
        let dst = Tensor(zeros: [outSize * lines])
        let taps = Self.taps(inSize: inSize, outSize: outSize)
        Resample.floatPass(
            src, LineLayout(offset: 3, sampleStride: lines, lineStride: 1), into: dst,
            LineLayout(sampleStride: lines, lineStride: 1), lines: lines, inSize: inSize, taps: taps)
        for l in 0..<lines {
            for o in 0..<outSize {
                var acc: Float = 0
                for j in 0..<taps.count[o] { acc += src[flat: 3 + (taps.start[o] + j) * lines + l] * taps.weights[o * 3 + j] }
                #expect(dst[flat: o * lines + l] == acc)
            }
        }
    }

    @Test func fixedPointPassMatchesNaivePillowArithmetic() {
        let (lines, inSize, channels, bits) = (3, 6, 3, 22)
        let src = (0..<(lines * inSize * channels)).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let f = Self.taps(inSize: inSize, outSize: 4)
        // Includes a negative and an over-unity weight so clipping is exercised.
        let k = f.weights.enumerated().map { Int32(($0.element * (($0.offset % 4 == 1) ? -2 : 2.5)) * Float(1 << bits)) }
        let taps = ResampleTaps(start: f.start, count: f.count, weights: k, maxTaps: f.maxTaps)
        let out = Resample.fixedPointPass(
            src, LineLayout(sampleStride: channels, lineStride: inSize * channels),
            into: [UInt8](repeating: 0, count: lines * 4 * channels),
            LineLayout(sampleStride: channels, lineStride: 4 * channels),
            lines: lines, inSize: inSize, channels: channels, taps: taps, precisionBits: bits)
        for l in 0..<lines {
            for o in 0..<4 {
                for c in 0..<channels {
                    var acc = 1 << (bits - 1)
                    for j in 0..<taps.count[o] { acc += Int(src[l * inSize * channels + (taps.start[o] + j) * channels + c]) * Int(k[o * 3 + j]) }
                    #expect(out[(l * 4 + o) * channels + c] == UInt8(clamping: acc >> bits))
                }
            }
        }
    }

    @Test func copyBlockMovesAStridedBlock() {
        let src = Self.ramp([2, 4, 5])  // (C, H, W); copy a (2, 2, 3) HWC-strided block out of it
        let dst = Tensor(zeros: [2 * 3 * 2])
        Resample.copyBlock(
            src, offset: 5 + 1, strides: (20, 5, 1), into: dst, offset: 0, strides: (1, 3 * 2, 2),
            planes: 2, rows: 2, cols: 3)
        for c in 0..<2 {
            for y in 0..<2 {
                for x in 0..<3 {
                    #expect(dst[flat: c + y * 6 + x * 2] == src[flat: 6 + c * 20 + y * 5 + x])
                }
            }
        }
    }

    @Test func elementRangesPackAndUnpack() {
        let a = Self.ramp([10]), b = Tensor(zeros: [12])
        b.copyElements(from: a, 2..<7, to: 4)
        #expect(b.elements(4..<9) == a.elements(2..<7))
        #expect(b.elements(0..<4) == [0, 0, 0, 0])
        b.copyElements(from: a, 0..<3, to: 0, scale: 0.25)
        for i in 0..<3 { #expect(b[flat: i] == a[flat: i] * 0.25) }
        b.setElements([1, 2], at: 10)
        b.fill(-1, 9..<10)
        #expect(b.elements(9..<12) == [-1, 1, 2])
    }

    @Test func decodingEveryStoredElement() {
        let values: [Float] = [0, 1, -2, 3.5, 65504, -0.25]
        let f32 = values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * $0)) } }
        let bytes = ReadOnlyBytes(copying: [0x7A] + f32)  // one byte of padding: unaligned start
        #expect(Tensor.decoding(bytes, at: 1, as: .float32, shape: [2, 3]).scalars == values)
        #expect(Tensor(values, shape: [6]).littleEndianFloat32Bytes() == f32)
        // Halves of the same values, and bf16 (the top 16 bits of each float).
        let halves: [UInt16] = [0x0000, 0x3C00, 0xC000, 0x4300, 0x7BFF, 0xB400]
        let h = ReadOnlyBytes(copying: halves.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
        #expect(Tensor.decoding(h, at: 0, as: .float16, shape: [6]).scalars == values)
        let bf = ReadOnlyBytes(
            copying: values.flatMap { v in [UInt8(truncatingIfNeeded: v.bitPattern >> 16), UInt8(truncatingIfNeeded: v.bitPattern >> 24)] })
        #expect(Tensor.decoding(bf, at: 0, as: .bfloat16, shape: [6]).scalars == values.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) })
        let ints = ReadOnlyBytes(copying: [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x05, 0, 0, 0, 0, 0, 0, 0])
        #expect(Tensor.decoding(ints, at: 0, as: .int64, shape: [2]).scalars == [-2, 5])
        #expect(Tensor.decoding(ints, at: 0, as: .int32, shape: [4]).scalars == [-2, -1, 5, 0])
        #expect(Tensor.decoding(ints, at: 0, as: .uint16, shape: [2]).scalars == [65534, 65535])
        #expect(Tensor.decoding(ints, at: 0, as: .int16, shape: [2]).scalars == [-2, -1])
        #expect(Tensor.decoding(ints, at: 7, as: .int8, shape: [2]).scalars == [-1, 5])
        #expect(Tensor.decoding(ints, at: 7, as: .uint8, shape: [3]).scalars == [255, 5, 0])
        #expect(Tensor.decoding(ints, at: 7, as: .bool, shape: [3]).scalars == [1, 1, 0])
        let d = ReadOnlyBytes(copying: (0..<8).map { UInt8(truncatingIfNeeded: Double(-1.5).bitPattern >> (8 * UInt64($0))) })
        #expect(Tensor.decoding(d, at: 0, as: .float64, shape: []).item == -1.5)
    }

    @Test func stridedDecodingEqualsAPermutedContiguousDecode() {
        // A (3, 4) storage read as its transpose (4, 3) from element offset 0, and a stride-0 row.
        let x = Self.ramp([3, 4])
        let bytes = ReadOnlyBytes(copying: [1, 2, 3] + x.littleEndianFloat32Bytes())
        let record = 3..<(3 + 48)
        let t = Tensor.decoding(bytes, record: record, as: .float32, elementOffset: 0, strides: [1, 4], shape: [4, 3])
        #expect(t.scalars == x.permute([1, 0]).scalars)
        let broadcastRow = Tensor.decoding(bytes, record: record, as: .float32, elementOffset: 4, strides: [0, 1], shape: [2, 4])
        #expect(broadcastRow.scalars == x.elements(4..<8) + x.elements(4..<8))
    }

    @Test func readOnlyBytesAccessors() {
        let b = ReadOnlyBytes(copying: Array("PK\u{3}\u{4}héllo PK".utf8))
        #expect(b.count == 13)
        #expect(b[0] == 0x50 && b.load(littleEndian: UInt32.self, at: 0) == 0x0403_4B50)
        #expect(b.load(littleEndian: UInt16.self, at: 1) == 0x034B)
        #expect(b.string(4..<10) == "héllo")
        #expect(b.isValidUTF8(4..<10) && !b.isValidUTF8(5..<6))
        #expect(b.equal(0..<2, 11..<13) && !b.equal(0..<3, 10..<13))
        #expect(b.bytes(10..<12) == [0x20, 0x50])
    }
}
