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

    /// The element-wise mean of `count` G maps of one shape (the prior `dvt stage1-prior`
    /// writes), taken one at a time from `map(i)` so that only the running sum and one map are
    /// held (a prior of many runs' maps does not need them all in memory).
    /// - Throws: `Stage1Error` when there is no map or the shapes differ (naming `name(i)`).
    public static func meanSharedArtifacts(
        count: Int, name: (Int) -> String, map: (Int) throws -> Tensor
    ) throws -> Tensor {
        guard count > 0 else { throw Stage1Error("stage1 prior: no shared-artifact map to average") }
        var sum = try map(0)
        for i in 1..<count {
            let g = try map(i)
            guard g.shape == sum.shape else {
                throw Stage1Error(
                    "stage1 prior: \(name(i)) has shape \(g.shape), \(name(0)) has \(sum.shape): the maps come from different models, layers or input sizes"
                )
            }
            sum = sum + g
        }
        return sum * (1 / Float(count))
    }
}
