import Foundation
import TensorCore

// Planted segmentation: the planted clean field F is a soft Voronoi partition of the image
// into k = 7 regions plus smooth variation (Planted.swift, `Field.eval`). With
// `Options.segmentationClasses = K`, each region of a case takes one of K classes, and its
// embedding is that class's row of a dictionary shared by every case (seeded by
// `classDictionarySeed`), so "which class is this token" means the same thing in every case and
// a linear probe can learn it across cases. The labels are the class of each whole-image
// token's nearest region centre, i.e. exact ground truth for a segmentation probe on raw,
// stage-1 and stage-2 features while the artifact strength varies.

extension PlantedData {
    /// The class of each region of case `seed`, drawn from a stream of its own so the case's
    /// views and noise stay those of the main stream.
    static func regionClasses(seed: UInt64, regions: Int, classes: Int) -> [Int] {
        var rng = RandomGenerator(seed: seed ^ 0x5EED_C1A5_5E55)
        return (0..<regions).map { _ in rng.randint(classes) }
    }

    /// Replaces the region embeddings of `parts` by the classes' dictionary rows and recomputes
    /// F on the whole-image grid.
    static func applyClasses(_ parts: inout Parts, seed: UInt64, options o: Options) {
        guard let k = o.segmentationClasses else { return }
        var dict = RandomGenerator(seed: o.classDictionarySeed)
        let c = o.dim
        let dictionary = (0..<(k * c)).map { _ in Double(dict.normal()) * 1.5 }  // (K, C), as regionEmbed's scale
        let assignment = regionClasses(seed: seed, regions: parts.field.k, classes: k)
        var embed = [Double](repeating: 0, count: parts.field.k * c)
        for r in 0..<parts.field.k { for ch in 0..<c { embed[r * c + ch] = dictionary[assignment[r] * c + ch] } }
        parts.field.regionEmbed = embed
        let g = o.grid
        let full = linspace(0, 1, g)
        parts.cleanFull = parts.field.grid(full)  // (H, W, C)
    }

    /// Per-token class labels (H·W, row-major) of the whole-image grid of case `seed`: the
    /// class of the nearest region centre. Needs `options.segmentationClasses`.
    public static func segmentationLabels(seed: UInt64, options o: Options) -> [Int32] {
        precondition(o.segmentationClasses != nil, "segmentationLabels: set Options.segmentationClasses")
        var rng = RandomGenerator(seed: seed)
        let parts = drawParts(&rng, o)
        let assignment = regionClasses(seed: seed, regions: parts.field.k, classes: o.segmentationClasses!)
        let g = o.grid, full = linspace(0, 1, g), centres = parts.field.centers
        var labels: [Int32] = []
        for i in 0..<g {
            for j in 0..<g {
                let u = full[j], v = full[i]
                var best = 0, bestD = Double.infinity
                for r in 0..<parts.field.k {
                    let du = u - centres[2 * r], dv = v - centres[2 * r + 1], d = du * du + dv * dv
                    if d < bestD { bestD = d; best = r }
                }
                labels.append(Int32(assignment[best]))
            }
        }
        return labels
    }
}
