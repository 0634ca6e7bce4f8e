import Foundation
import NN
import TensorCore

/// A BatchNorm over channels of token rows (N, C): training mode normalises with the batch's
/// own statistics (biased variance) and updates running statistics with momentum 0.1 (the
/// running variance unbiased), as torch's `nn.BatchNorm2d`/`SyncBatchNorm`; eval mode uses the
/// running statistics. Composed of engine ops, so its gradient is the engine's.
public final class ChannelBatchNorm: @unchecked Sendable {
    public let weight: Tensor, bias: Tensor
    public var runningMean: [Float], runningVar: [Float]
    public let eps: Float = 1e-5, momentum: Float = 0.1

    public init(channels: Int) {
        weight = Tensor(repeating: 1, shape: [channels], requiresGrad: true)
        bias = Tensor(zeros: [channels], requiresGrad: true)
        runningMean = [Float](repeating: 0, count: channels)
        runningVar = [Float](repeating: 1, count: channels)
    }

    /// x (N, C) → (N, C).
    public func callAsFunction(_ x: Tensor, training: Bool) -> Tensor {
        let c = x.shape[1], n = x.shape[0]
        if training {
            let mean = x.mean(axes: [0], keepDims: true)  // (1, C)
            let centred = x - mean  // (N, C)
            let variance = centred.square().mean(axes: [0], keepDims: true)  // (1, C), biased
            let unbias = n > 1 ? Float(n) / Float(n - 1) : 1
            for ch in 0..<c {
                runningMean[ch] = (1 - momentum) * runningMean[ch] + momentum * mean[flat: ch]
                runningVar[ch] = (1 - momentum) * runningVar[ch] + momentum * variance[flat: ch] * unbias
            }
            return centred / (variance + eps).sqrt() * weight + bias
        }
        let scale = Tensor((0..<c).map { 1 / (runningVar[$0] + eps).squareRoot() }, shape: [1, c])
        let shift = Tensor(runningMean, shape: [1, c])
        return (x - shift) * scale * weight + bias
    }
}

/// mmseg's BNHead as DVT configures it for segmentation (evaluation/segmentation/models/
/// decode_heads/linear_head.py:20,37,95 and vitb_voc2012_linear_config.py:160-171): a
/// BatchNorm over the C channels of the last block's patch tokens, then `conv_seg`, a 1×1
/// convolution to the classes (a linear map per token; dropout 0), whose logits are bilinearly
/// upsampled (align_corners False) to the label size for the loss and the prediction.
/// `conv_seg` starts from N(0, 0.01²) weights and zero bias (mmseg BaseDecodeHead.init_weights).
public final class SegmentationHead: @unchecked Sendable {
    public let channels: Int, classes: Int
    public let bn: ChannelBatchNorm
    public let weight: Tensor, bias: Tensor

    public init(channels: Int, classes: Int, seed: UInt64) {
        self.channels = channels
        self.classes = classes
        bn = ChannelBatchNorm(channels: channels)
        var rng = RandomGenerator(seed: seed)
        weight = Tensor.normal([classes, channels], std: 0.01, rng: &rng, requiresGrad: true)
        bias = Tensor(zeros: [classes], requiresGrad: true)
    }

    public var parameters: [(String, Tensor)] {
        [("bn.weight", bn.weight), ("bn.bias", bn.bias), ("conv_seg.weight", weight), ("conv_seg.bias", bias)]
    }

    /// Token logits: features (B, Gh, Gw, C) → (B, Gh, Gw, K).
    public func tokenLogits(_ features: Tensor, training: Bool) -> Tensor {
        precondition(
            features.rank == 4 && features.shape[3] == channels,
            "SegmentationHead: features must be (B, Gh, Gw, \(channels)), got \(features.shape)")
        let s = features.shape
        let rows = features.reshape([s[0] * s[1] * s[2], channels])  // (B·Gh·Gw, C)
        let logits = Tensor.linear(bn(rows, training: training), weight, bias)  // (B·Gh·Gw, K)
        return logits.reshape([s[0], s[1], s[2], classes])
    }

    /// Logits of image b upsampled to (H, W): (H·W, K).
    public static func upsample(_ tokenLogits: Tensor, image b: Int, height: Int, width: Int) -> Tensor {
        let s = tokenLogits.shape
        let one = tokenLogits.slice(axis: 0, b..<(b + 1)).reshape([s[1], s[2], s[3]])  // (Gh, Gw, K)
        return BilinearResize.resize(one, height: height, width: width)
    }

    /// A rough peak, in bytes, of the probe memory that grows with the class count K (Double, so
    /// absurd counts cannot overflow): a training step holds B label-size logit maps of K
    /// channels about five times (each image's upsampled logits, their concatenation, the
    /// softmax, and the gradients of both), plus the token logits; evaluation holds one val
    /// image's upsampled logits and their copy for the argmax; the head keeps K × C weights with
    /// their gradient and two AdamW moments; `SegmentationMetrics` keeps seven counters per class.
    public static func memoryBytes(
        classes k: Int, channels c: Int, batch b: Int, trainPixels: Int, tokens: Int,
        evalPixels: Int
    ) -> Double {
        let k = Double(k), b = Double(max(1, b))
        let train = 5 * b * Double(trainPixels) * k + 2 * b * Double(tokens) * k
        let eval = 2 * Double(evalPixels) * k
        let weights = 4 * k * Double(c + 1)
        return 4 * (train + eval + weights) + 7 * 8 * k
    }

    /// Per-pixel argmax class of (N, K) logits.
    public static func argmax(_ logits: Tensor) -> [Int32] {
        let k = logits.shape[1], v = logits.scalars
        return (0..<logits.shape[0]).map { r in
            var best = 0
            for j in 1..<k where v[r * k + j] > v[r * k + best] { best = j }
            return Int32(best)
        }
    }
}

/// DINOv2's linear depth head as DVT configures it (evaluation/depth/models/decode_heads/
/// linear_head.py and decode_head.py; vitb_nyu_linear_config.py:151-181):
/// - input: the last layer's patch tokens concatenated with the class token broadcast to every
///   token (channels 2C; linear_head.py:77-82);
/// - **no BatchNorm**: the depth BNHead's `self.bn` is commented out (linear_head.py:29,89);
/// - the features are bilinearly upsampled ×4 (`upsample=4`, align_corners False;
///   linear_head.py:47-56), then `conv_depth`, a 1×1 convolution to 256 bins (linear_head.py:31);
///   the upsampling weights sum to one, so this equals applying the 1×1 conv at token resolution
///   and upsampling its logits, which is what we do (16× less work);
/// - "linear" normalisation: p = (relu(logit) + 0.1) / Σ (decode_head.py:174-178), depth =
///   Σ_k p_k·bin_k with 256 bins uniformly spaced ("UD") from 0.001 to 10 m
///   (decode_head.py:164-166, 185);
/// - for the loss the depth map is bilinearly resized to the ground truth's size
///   (decode_head.py:198-204).
/// `conv_depth` starts from torch's default Conv2d init, U(±1/√fan_in) for weight and bias.
public final class DepthHead: @unchecked Sendable {
    public let channels: Int, bins: Int
    public let minDepth: Float, maxDepth: Float
    public let weight: Tensor, bias: Tensor
    public let binCentres: Tensor  // (bins, 1)
    public let upsample = 4

    public init(channels: Int, bins: Int = 256, minDepth: Float = 0.001, maxDepth: Float = 10, seed: UInt64) {
        self.channels = channels
        self.bins = bins
        self.minDepth = minDepth
        self.maxDepth = maxDepth
        var rng = RandomGenerator(seed: seed)
        let bound = 1 / Float(channels).squareRoot()
        weight = Tensor(
            (0..<(bins * channels)).map { _ in (2 * Float(rng.uniformDouble()) - 1) * bound },
            shape: [bins, channels], requiresGrad: true)
        bias = Tensor((0..<bins).map { _ in (2 * Float(rng.uniformDouble()) - 1) * bound }, shape: [bins], requiresGrad: true)
        binCentres = Tensor(
            (0..<bins).map { minDepth + (maxDepth - minDepth) * Float($0) / Float(max(bins - 1, 1)) },
            shape: [bins, 1])
    }

    public var parameters: [(String, Tensor)] { [("conv_depth.weight", weight), ("conv_depth.bias", bias)] }

    /// One map's depth at 4× the token grid: features (Gh, Gw, C) → (4Gh, 4Gw, 1) metres.
    public func depth(_ features: Tensor) -> Tensor {
        precondition(
            features.rank == 3 && features.shape[2] == channels,
            "DepthHead: features must be (Gh, Gw, \(channels)), got \(features.shape)")
        let gh = features.shape[0], gw = features.shape[1]
        let logits = Tensor.linear(features.reshape([gh * gw, channels]), weight, bias).reshape([gh, gw, bins])
        let up = BilinearResize.resize(logits, height: gh * upsample, width: gw * upsample)  // (16·Gh·Gw, bins)
        let positive = up.relu() + 0.1
        let p = positive / positive.sum(axes: [1], keepDims: true)
        return Tensor.matmul(p, binCentres).reshape([gh * upsample, gw * upsample, 1])
    }

    /// The depth resized to (H, W): (H·W, 1).
    public func depth(_ features: Tensor, height: Int, width: Int) -> Tensor {
        BilinearResize.resize(depth(features), height: height, width: width)
    }

    /// Patch tokens (Gh, Gw, C) ‖ class token (C) → (Gh, Gw, 2C).
    public static func withClassToken(_ patch: Tensor, _ cls: Tensor) -> Tensor {
        let gh = patch.shape[0], gw = patch.shape[1], c = patch.shape[2]
        precondition(cls.count == c, "DepthHead.withClassToken: class token of \(cls.count) values for \(c) channels")
        let tiled = cls.reshape([1, 1, c]).broadcast(to: [gh, gw, c])
        return Tensor.concat([patch, tiled], axis: 2)
    }
}
