import Formats
import Foundation
import TensorCore
import Vision

extension PlantedData {
    /// Reads a planted case in the shared layout (`layoutDescription`) from a safetensors file,
    /// checking that the four tensors agree in shape.
    public static func load(contentsOf url: URL) throws -> PlantedData {
        let file = try SafeTensorsFile(url: url)
        for key in ["raw", "coords", "clean_full", "artifact"] where !file.contains(key) {
            throw Stage1Error("\(url.path): no tensor '\(key)' (planted layout: \(layoutDescription); has \(file.keys))")
        }
        let raw = try file.tensor("raw"), coords = try file.tensor("coords")
        let clean = try file.tensor("clean_full"), artifact = try file.tensor("artifact")
        guard raw.rank == 4 else { throw Stage1Error("\(url.path): 'raw' must be (V+1, H, W, C), got \(raw.shape)") }
        let (v, h, w, c) = (raw.shape[0], raw.shape[1], raw.shape[2], raw.shape[3])
        guard coords.shape == [v, h, w, 2] else {
            throw Stage1Error("\(url.path): 'coords' must be \([v, h, w, 2]) to match 'raw' \(raw.shape), got \(coords.shape)")
        }
        guard clean.shape == [h, w, c], artifact.shape == [h, w, c] else {
            throw Stage1Error("\(url.path): 'clean_full' \(clean.shape) and 'artifact' \(artifact.shape) must both be \([h, w, c])")
        }
        // A NaN coordinate would trap later in a Float → Int conversion; say where it is instead.
        for (name, t) in [("raw", raw), ("coords", coords), ("clean_full", clean), ("artifact", artifact)] {
            if let bad = t.firstNonFinite() {
                throw Stage1Error("\(url.path): '\(name)' \(t.shape) has a non-finite value \(bad.value) at index \(bad.index)")
            }
        }
        return PlantedData(raw: raw, coords: coords, cleanFull: clean, artifact: artifact)
    }

    /// Writes the case in the shared layout (readable by `load` and by `dvt_torch.py stage1`).
    public func write(to url: URL) throws {
        try SafeTensors.write(namedTensors, metadata: ["layout": Self.layoutDescription], to: url)
    }
}
