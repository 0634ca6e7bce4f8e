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

    /// One view: its crop box in the image's pixels and whether it is flipped.
    public struct View: Sendable, Equatable {
        public var top: Int, left: Int, height: Int, width: Int
        public var flip: Bool
    }

    /// The boxes of `count` random views of an H × W image plus the whole image (last), drawn
    /// in `sample`'s order (per view: the box, then the flip), so `render` of any split of them
    /// gives `sample`'s views.
    public func plan(count: Int, imageHeight H: Int, imageWidth W: Int, rng: inout RandomGenerator) -> [View] {
        var out: [View] = []
        for _ in 0..<count {
            let (top, left, h, w) = cropBox(height: H, width: W, rng: &rng)
            out.append(View(top: top, left: left, height: h, width: w, flip: horizontalFlip && rng.uniformDouble() < 0.5))
        }
        out.append(View(top: 0, left: 0, height: H, width: W, flip: false))
        return out
    }

    /// Token coordinates of `views` ((V, Gh, Gw, 2), (x, y) in [0, 1]); a view covering the
    /// whole image unflipped is the whole-image view, at linspace(0, 1).
    public func coordinates(_ views: [View], imageHeight H: Int, imageWidth W: Int) -> Tensor {
        let (gh, gw) = grid
        var coords = [Float](repeating: 0, count: views.count * gh * gw * 2)  // (V, Gh, Gw, 2)
        for (v, view) in views.enumerated() {
            let whole = view == View(top: 0, left: 0, height: H, width: W, flip: false)
            let ys =
                whole
                ? ViewSampler.linspace(0, 1, gh)
                : ViewSampler.linspace(Double(view.top) / Double(H), Double(view.top + view.height) / Double(H), gh)
            var xs = ViewSampler.linspace(Double(view.left) / Double(W), Double(view.left + view.width) / Double(W), gw)
            if view.flip {
                let lo = xs.min()!, hi = xs.max()!
                xs = xs.map { hi - $0 + lo }
            }
            if whole { xs = ViewSampler.linspace(0, 1, gw) }
            let cp = v * gh * gw * 2
            for i in 0..<gh {
                for j in 0..<gw {
                    coords[cp + (i * gw + j) * 2] = xs[j]
                    coords[cp + (i * gw + j) * 2 + 1] = ys[i]
                }
            }
        }
        return Tensor(coords, shape: [views.count, gh, gw, 2])
    }

    /// The normalised pixels of `views` of `image` ((3, H, W) in [0, 1]): (V, 3, h, w).
    public func render(_ image: Tensor, views: [View], mean: [Float], std: [Float]) -> Tensor {
        precondition(image.rank == 3 && image.shape[0] == 3, "ViewSampler needs a (3, H, W) image, got \(image.shape)")
        let H = image.shape[1], W = image.shape[2]
        let (oh, ow) = size
        return Tensor.batched(
            views.map { view in
                let crop =
                    (view.top == 0 && view.left == 0 && view.height == H && view.width == W && H == oh && W == ow)
                    ? image
                    : Resize.bicubicAntialiased(
                        image, height: oh, width: ow, layout: .chw,
                        crop: (view.top, view.left, view.height, view.width))  // (3, h, w)
                let normalised = normalizeChannels(crop, mean: mean, std: std)
                return view.flip ? normalised.flipped(axis: -1) : normalised
            })
    }

    /// Samples `count` views of `image` ((3, H, W) in [0, 1], not yet normalised) plus the whole
    /// image, normalised with mean/std. Returns views (V+1, 3, h, w) and coords (V+1, Gh, Gw, 2).
    /// (`plan`, `render` and `coordinates` in one call; stage 1 renders its views a batch at a time.)
    public func sample(
        _ image: Tensor, count: Int, mean: [Float], std: [Float],
        rng: inout RandomGenerator
    ) -> (views: Tensor, coords: Tensor) {
        precondition(image.rank == 3 && image.shape[0] == 3, "ViewSampler needs a (3, H, W) image, got \(image.shape)")
        let H = image.shape[1], W = image.shape[2]
        let views = plan(count: count, imageHeight: H, imageWidth: W, rng: &rng)
        return (render(image, views: views, mean: mean, std: std), coordinates(views, imageHeight: H, imageWidth: W))
    }
}
