import Foundation
import Settings
import Vision

// DVT's network input geometry: stride and input size as main_denoiser.py derives them, and the
// checks that keep values which pass the schema from trapping later.

public enum InputGeometry {
    /// The stride a config selects: `stride_size`, or the patch size when it is null (DVT's
    /// `--auto_stride`, which sample_scripts/stage2.sh passes: main_denoiser.py lines 70-72).
    public static func stride(_ configured: Int?, patchSize: Int) -> Int { configured ?? patchSize }

    /// The input size for a stride: DVT's default 518 × 518 becomes 512 × 512 when the stride is
    /// 16 or 8 (main_denoiser.py lines 73-75), so patch-16 models tile the input exactly. Any
    /// other size is used as given.
    public static func inputSize(_ configured: [Int], stride: Int) -> (Int, Int) {
        precondition(configured.count == 2, "input_size must be [H, W], got \(configured)")
        if (stride == 16 || stride == 8) && configured[0] == 518 { return (512, 512) }
        return (configured[0], configured[1])
    }

    /// How the two values were given, for messages: `--size`/`--stride` or `input_size`/`stride_size`.
    public struct Names: Sendable {
        public var size: String
        public var stride: String
        public init(size: String, stride: String) {
            self.size = size
            self.stride = stride
        }
        public static let config = Names(size: "input_size", stride: "stride_size")
        public static let flags = Names(size: "--size", stride: "--stride")
    }

    /// Checks an input size and stride against a model before anything is allocated or written:
    /// the stride must lie in 1...patch size, each side must hold at least one patch, and a forward
    /// pass of `batch` images must fit in `memoryLimit` bytes (default: this machine's memory).
    /// The schema cannot do this alone: the allowed ranges depend on the model.
    public static func validate(
        height: Int, width: Int, stride: Int?, model: ViTConfig, batch: Int,
        names: Names = .config, memoryLimit: UInt64? = nil
    ) throws {
        let p = model.patchSize
        if let s = stride, !(1...p).contains(s) {
            throw ConfigError("\(names.stride) \(s) is not allowed for \(model.name): the stride must be in 1...\(p) (its patch size)")
        }
        if height < p || width < p {
            throw ConfigError("\(names.size) \(height) \(width) is too small for \(model.name): each side must be at least its \(p)-pixel patch")
        }
        let limit = memoryLimit ?? ProcessInfo.processInfo.physicalMemory
        let need = forwardBytes(height: height, width: width, stride: stride ?? p, model: model, batch: batch)
        if need > Double(limit) {
            var side = p
            while forwardBytes(height: side * 2, width: side * 2, stride: stride ?? p, model: model, batch: batch) <= Double(limit) { side *= 2 }
            throw ConfigError(
                String(
                    format:
                        "%@ %d %d needs about %.1f GB for a forward pass of %d image(s) on %@ (images, tokens and attention), more than the %.1f GB of memory here; "
                        + "use a smaller size (a square side up to about %d fits)",
                    names.size, height, width, need / 1e9, batch, model.name, Double(limit) / 1e9, side))
        }
    }

    /// A rough peak of one inference forward pass, in bytes: the float32 image batch, the tokens
    /// with their widest intermediates (qkv 3C plus the MLP's hidden width plus the residual), and
    /// one T × T attention score matrix per thread. Double, so absurd sizes cannot overflow.
    public static func forwardBytes(height: Int, width: Int, stride: Int, model: ViTConfig, batch: Int) -> Double {
        let p = model.patchSize, s = max(1, stride)
        let gh = Double(max(0, height - p) / s + 1), gw = Double(max(0, width - p) / s + 1)
        let tokens = gh * gw + Double(model.registerTokens + (model.classToken ? 1 : 0))
        let c = Double(model.embedDim), hidden = Double(model.mlpHidden ?? Int(model.mlpRatio * Double(model.embedDim)))
        let b = Double(max(1, batch))
        let images = b * 3 * Double(height) * Double(width)
        let activations = b * tokens * (4 * c + hidden)
        let attention = Double(min(max(1, ProcessInfo.processInfo.activeProcessorCount), batch * model.heads)) * tokens * tokens
        return 4 * (images + activations + attention)
    }
}
