import Formats
import Foundation
import TensorCore

// A prior for stage 1's shared artifact map G (`stage1.shared_artifacts_prior`, not a DVT
// option). DVT's model ViT(x) = F(x) + G(pos) + h(x, pos) makes G input-independent: one model,
// layer and input size have one G, which every official fit re-estimates from its views. A prior
// is the mean of the G maps earlier fits wrote; docs/speed.md measures how close it is.
// Letters: h × w token grid, C channels.

extension Stage1 {
    /// G from a prior file: (h, w, C) as stage 1 writes it (shared_artifacts/*.npy), or DVT's
    /// parameter layout (1, C, h, w), permuted to (h, w, C).
    /// - Throws: `Stage1Error` naming the file, the key and both shapes when the file holds
    ///   neither layout of this fit's (h, w, C), or a file error when it cannot be read.
    public static func sharedArtifactsPrior(_ url: URL, height: Int, width: Int, dim: Int) throws -> Tensor {
        let t: Tensor
        do { t = try Npy.read(url) } catch {
            throw Stage1Error("stage1.shared_artifacts_prior: cannot read \(url.path): \(error)")
        }
        if t.shape == [height, width, dim] { return t }
        if t.shape == [1, dim, height, width] { return t.reshape([dim, height, width]).permute([1, 2, 0]) }  // (h, w, C)
        throw Stage1Error(
            "stage1.shared_artifacts_prior: \(url.path) holds shape \(t.shape); this fit's G is (h, w, C) = \([height, width, dim]) "
                + "(or DVT's (1, C, h, w) = \([1, dim, height, width])): build the prior from stage-1 runs of the same model, layer and input size")
    }

    /// The element-wise mean of G maps of one shape (the prior `dvt stage1-prior` writes).
    /// - Throws: `Stage1Error` when there is no map or the shapes differ (naming the map's `names` entry).
    public static func meanSharedArtifacts(_ maps: [Tensor], names: [String]) throws -> Tensor {
        guard let first = maps.first else { throw Stage1Error("stage1 prior: no shared-artifact map to average") }
        let sum = Tensor(zeros: first.shape)
        for (i, g) in maps.enumerated() {
            guard g.shape == first.shape else {
                throw Stage1Error(
                    "stage1 prior: \(names[i]) has shape \(g.shape), \(names[0]) has \(first.shape): the maps come from different models, layers or input sizes"
                )
            }
            for k in 0..<g.count { sum[flat: k] += g[flat: k] }
        }
        let scale = 1 / Float(maps.count)
        for k in 0..<sum.count { sum[flat: k] *= scale }
        return sum
    }
}
