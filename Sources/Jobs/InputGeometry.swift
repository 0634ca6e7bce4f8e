import Foundation

// DVT's network input geometry: stride and input size as main_denoiser.py derives them.

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
}
