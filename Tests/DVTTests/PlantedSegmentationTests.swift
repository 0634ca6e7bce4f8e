import Foundation
import TensorCore
import Testing

@testable import DVT

@Suite struct PlantedSegmentationTests {
    static func classMeans(_ data: PlantedData, _ labels: [Int32], classes: Int) -> [[Double]?] {
        let c = data.cleanFull.shape[2]
        var sums = [[Double]](repeating: [Double](repeating: 0, count: c), count: classes), counts = [Int](repeating: 0, count: classes)
        for (t, y) in labels.enumerated() {
            counts[Int(y)] += 1
            for ch in 0..<c { sums[Int(y)][ch] += Double(data.cleanFull[flat: t * c + ch]) }
        }
        return (0..<classes).map { k -> [Double]? in counts[k] > 0 ? sums[k].map { $0 / Double(counts[k]) } : nil }
    }

    static func cosine(_ a: [Double], _ b: [Double]) -> Double {
        let d = zip(a, b).map { $0 * $1 }.reduce(0, +)
        return d / (a.map { $0 * $0 }.reduce(0, +).squareRoot() * b.map { $0 * $0 }.reduce(0, +).squareRoot())
    }

    @Test func labelsMeanTheSameClassInEveryCase() {
        var o = PlantedData.Options()
        o.views = 0
        o.segmentationClasses = 4
        let a = PlantedData.generate(seed: 10, options: o), b = PlantedData.generate(seed: 11, options: o)
        let la = PlantedData.segmentationLabels(seed: 10, options: o), lb = PlantedData.segmentationLabels(seed: 11, options: o)
        #expect(la.count == 16 * 16 && la.allSatisfy { $0 >= 0 && $0 < 4 })
        #expect(Set(la).count >= 2 && la != lb)
        let ma = Self.classMeans(a, la, classes: 4), mb = Self.classMeans(b, lb, classes: 4)
        var same: [Double] = [], other: [Double] = []
        for i in 0..<4 {
            for j in 0..<4 {
                guard let x = ma[i], let y = mb[j] else { continue }
                (i == j ? { same.append(Self.cosine(x, y)) } : { other.append(Self.cosine(x, y)) })()
            }
        }
        #expect(!same.isEmpty && !other.isEmpty)
        #expect(same.min()! > 0.8, "same-class cosines \(same)")
        #expect(same.min()! > other.max()!, "same \(same) vs other \(other)")
    }

    @Test func withoutClassesTheCaseIsUnchanged() {
        var o = PlantedData.Options()
        o.views = 2
        let plain = PlantedData.generate(seed: 5, options: o)
        o.classDictionarySeed = 99  // ignored without segmentationClasses
        #expect(PlantedData.generate(seed: 5, options: o).raw.scalars == plain.raw.scalars)
        o.segmentationClasses = 3
        let classed = PlantedData.generate(seed: 5, options: o)
        #expect(classed.raw.scalars != plain.raw.scalars)
        #expect(classed.artifact.scalars == plain.artifact.scalars)  // same artifact, same stream
    }
}
