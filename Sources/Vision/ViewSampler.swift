import Foundation
import TensorCore

// DVT's view sampler (RandomResizedCropFlip). Letters: V views, Gh × Gw token grid.

/// Random resized crops with horizontal flips of one image, each with the position of every
/// feature token in the original image, as DVT's `RandomResizedCropFlip` produces them:
///
/// - crop boxes as torchvision's `RandomResizedCrop.get_params` (area fraction from `scale`,
///   log-uniform aspect from `ratio`, 10 tries, then a centre-crop fallback), in integer pixels;
/// - each crop resized to the input size with torch's antialiased bicubic;
/// - token coordinates linspace(top/H, (top+h)/H, Gh) × linspace(left/W, (left+w)/W, Gw), as
///   (x, y) in [0, 1], mirrored within the box when the view is flipped (p = 0.5);
/// - the whole image as the extra last view, coordinates linspace(0, 1).
public struct ViewSampler: Sendable {
    public var size: (height: Int, width: Int)
    public var grid: (height: Int, width: Int)
    public var scale: (Double, Double) = (0.1, 0.5)
    public var ratio: (Double, Double) = (3.0 / 4.0, 4.0 / 3.0)
    public var horizontalFlip = true

    public init(size: (height: Int, width: Int), grid: (height: Int, width: Int)) {
        self.size = size
        self.grid = grid
    }

    /// torchvision `RandomResizedCrop.get_params`: (top, left, height, width) in pixels.
    public func cropBox(height: Int, width: Int, rng: inout RandomGenerator) -> (Int, Int, Int, Int) {
        let area = Double(height * width)
        let logLo = Foundation.log(ratio.0), logHi = Foundation.log(ratio.1)
        for _ in 0..<10 {
            let target = area * (scale.0 + (scale.1 - scale.0) * rng.uniformDouble())
            let aspect = Foundation.exp(logLo + (logHi - logLo) * rng.uniformDouble())
            let w = Int((target * aspect).squareRoot().rounded())
            let h = Int((target / aspect).squareRoot().rounded())
            if w > 0 && w <= width && h > 0 && h <= height {
                return (rng.randint(height - h + 1), rng.randint(width - w + 1), h, w)
            }
        }
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < ratio.0 {
            h = Int((Double(w) / ratio.0).rounded())
        } else if inRatio > ratio.1 {
            w = Int((Double(h) * ratio.1).rounded())
        }
        return ((height - h) / 2, (width - w) / 2, h, w)
    }

    static func linspace(_ a: Double, _ b: Double, _ n: Int) -> [Float] {
        n == 1 ? [Float(a)] : (0..<n).map { Float(a + (b - a) * Double($0) / Double(n - 1)) }
    }

    /// Samples `count` views of `image` ((3, H, W) in [0, 1], not yet normalised) plus the whole
    /// image, normalised with mean/std. Returns views (V+1, 3, h, w) and coords (V+1, Gh, Gw, 2).
    public func sample(_ image: Tensor, count: Int, mean: [Float], std: [Float],
                       rng: inout RandomGenerator) -> (views: Tensor, coords: Tensor) {
        precondition(image.rank == 3 && image.shape[0] == 3, "ViewSampler needs a (3, H, W) image, got \(image.shape)")
        let H = image.shape[1], W = image.shape[2]
        let (oh, ow) = size, (gh, gw) = grid
        var views: [Tensor] = []                                    // V+1 of (3, h, w)
        var coords = [Float](repeating: 0, count: (count + 1) * gh * gw * 2)  // (V+1, Gh, Gw, 2)
        for v in 0...count {
            let (top, left, h, w, flip): (Int, Int, Int, Int, Bool)
            if v == count {
                (top, left, h, w, flip) = (0, 0, H, W, false)
            } else {
                let box = cropBox(height: H, width: W, rng: &rng)
                (top, left, h, w) = box
                flip = horizontalFlip && rng.uniformDouble() < 0.5
            }
            let crop = (top == 0 && left == 0 && h == H && w == W && H == oh && W == ow) ? image
                : Resize.bicubicAntialiased(image, height: oh, width: ow, layout: .chw, crop: (top, left, h, w))  // (3, h, w)
            let normalised = normalizeChannels(crop, mean: mean, std: std)
            views.append(flip ? normalised.flipped(axis: -1) : normalised)
            let ys = ViewSampler.linspace(Double(top) / Double(H), Double(top + h) / Double(H), gh)
            var xs = ViewSampler.linspace(Double(left) / Double(W), Double(left + w) / Double(W), gw)
            if flip {
                let lo = xs.min()!, hi = xs.max()!
                xs = xs.map { hi - $0 + lo }
            }
            if v == count {
                xs = ViewSampler.linspace(0, 1, gw)
            }
            let cp = v * gh * gw * 2
            for i in 0..<gh {
                for j in 0..<gw {
                    coords[cp + (i * gw + j) * 2] = xs[j]
                    coords[cp + (i * gw + j) * 2 + 1] = v == count ? ViewSampler.linspace(0, 1, gh)[i] : ys[i]
                }
            }
        }
        return (Tensor.batched(views), Tensor(coords, shape: [count + 1, gh, gw, 2]))
    }
}
