import Foundation
import TensorCore
import Testing

/// Repository root, found from this file's location (tests read fixtures in place).
public let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Tests/Fixtures, where the golden files copied from ../shared/fixtures live.
public let fixturesDirectory: URL = repositoryRoot.appendingPathComponent("Tests/Fixtures")

/// Max abs difference and the first index exceeding `atol + rtol·|expected|`, like llm.c's check_tensor.
public struct Closeness: CustomStringConvertible {
    public var maxAbsDiff: Float
    public var maxAbsExpected: Float
    public var firstBad: Int?
    public var description: String {
        "max |Δ| = \(maxAbsDiff), max |expected| = \(maxAbsExpected)" + (firstBad.map { ", first bad index \($0)" } ?? "")
    }
}

public func closeness(_ actual: [Float], _ expected: [Float], rtol: Float, atol: Float) -> Closeness {
    var c = Closeness(maxAbsDiff: 0, maxAbsExpected: 0, firstBad: nil)
    for i in 0..<min(actual.count, expected.count) {
        let d = abs(actual[i] - expected[i])
        if !(d <= atol + rtol * abs(expected[i])) && c.firstBad == nil { c.firstBad = i }
        c.maxAbsDiff = max(c.maxAbsDiff, d.isNaN ? .infinity : d)
        c.maxAbsExpected = max(c.maxAbsExpected, abs(expected[i]))
    }
    return c
}

/// Expects two float arrays to agree elementwise within `atol + rtol·|expected|`.
public func expectClose(
    _ actual: [Float], _ expected: [Float], rtol: Float = 1e-5, atol: Float = 1e-5,
    _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(
        actual.count == expected.count, "\(what): \(actual.count) values vs \(expected.count) expected",
        sourceLocation: sourceLocation)
    let c = closeness(actual, expected, rtol: rtol, atol: atol)
    #expect(c.firstBad == nil, "\(what): \(c)", sourceLocation: sourceLocation)
}

public func expectClose(
    _ actual: Tensor, _ expected: Tensor, rtol: Float = 1e-5, atol: Float = 1e-5,
    _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(
        actual.shape == expected.shape, "\(what): shape \(actual.shape) vs \(expected.shape)",
        sourceLocation: sourceLocation)
    expectClose(actual.scalars, expected.scalars, rtol: rtol, atol: atol, what, sourceLocation: sourceLocation)
}

/// Finite-difference gradient check of `f` at `inputs`.
///
/// Uses loss = sum(w · f(x)) with a fixed random `w`, so every output element matters, and
/// compares the analytic gradient of each input that requires grad with central differences
/// (step `eps`) computed in Float. Fails with the op name, input index and the worst element.
public func gradCheck(
    _ name: String, _ inputs: [Tensor], eps: Float = 1e-2, rtol: Float = 2e-2, atol: Float = 2e-3,
    seed: UInt64 = 7, sourceLocation: SourceLocation = #_sourceLocation,
    _ f: ([Tensor]) -> Tensor
) {
    var rng = RandomGenerator(seed: seed)
    let probe = withNoGrad { f(inputs) }
    let w = Tensor.normal(probe.shape, rng: &rng)
    func loss() -> Double {
        let y = withNoGrad { f(inputs) }
        var s: Double = 0
        for i in 0..<y.count { s += Double(y[flat: i]) * Double(w[flat: i]) }
        return s
    }
    for x in inputs { x.zeroGrad() }
    let y = f(inputs)
    (y * w).sum().backward()
    for (k, x) in inputs.enumerated() where x.requiresGrad {
        guard let g = x.grad else {
            Issue.record("\(name): input \(k) got no gradient", sourceLocation: sourceLocation)
            continue
        }
        var numeric = [Float](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let orig = x[flat: i]
            x[flat: i] = orig + eps
            let lp = loss()
            x[flat: i] = orig - eps
            let lm = loss()
            x[flat: i] = orig
            numeric[i] = Float((lp - lm) / Double(2 * eps))
        }
        let scale = max(1, numeric.map { abs($0) }.max() ?? 1)
        let c = closeness(g.scalars, numeric, rtol: rtol, atol: atol * scale)
        #expect(
            c.firstBad == nil,
            "\(name): gradient of input \(k) (shape \(x.shape)) disagrees with finite differences: \(c); analytic \(g.scalars.prefix(6)) numeric \(numeric.prefix(6))",
            sourceLocation: sourceLocation)
    }
}

/// A tensor of normal values that requires grad.
public func randn(_ shape: [Int], seed: UInt64, scale: Float = 1, requiresGrad: Bool = true) -> Tensor {
    var rng = RandomGenerator(seed: seed)
    return Tensor.normal(shape, std: scale, rng: &rng, requiresGrad: requiresGrad)
}

/// A fresh empty directory under the system temp dir, named `dvt-LABEL-UUID`; the caller removes
/// it (`defer { try? FileManager.default.removeItem(at: dir) }`). The one temporary-folder helper
/// of the test targets: a test that needs a scratch file puts it inside one of these.
public func temporaryDirectory(_ label: String) -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dvt-\(label)-\(UUID().uuidString)")
    do {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    } catch {
        preconditionFailure("cannot create the temporary folder \(dir.path): \(error)")
    }
    return dir
}

/// True when the tests run under CI (`CI` set and not `false`/`0`): there every prerequisite a
/// test names must be present, so a missing one fails instead of skipping.
public let runningUnderCI: Bool = {
    guard let v = ProcessInfo.processInfo.environment["CI"]?.lowercased() else { return false }
    return !v.isEmpty && v != "false" && v != "0"
}()

/// A prerequisite of a test that is missing under CI (see `requirePrerequisite`).
public struct MissingPrerequisite: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { "missing prerequisite under CI: \(reason)" }
}

/// Stops the calling test when `met` is false: reported as skipped with `reason` on a developer's
/// machine (`Test.cancel`), and as a failure under CI (`runningUnderCI`), where the scripts install
/// everything a test needs. Never a silent pass: call it before the first expectation instead of
/// returning early.
public func requirePrerequisite(
    _ met: Bool, _ reason: @autoclosure () -> String,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    if met { return }
    if runningUnderCI { throw MissingPrerequisite(reason: reason()) }
    try Test.cancel("skipped: \(reason())", sourceLocation: sourceLocation)
}

/// Plants the escape a VOC split entry could attempt: copies the dataset's first scene (image and
/// mask, `scene_0000`) to `outside`/evil.jpg and evil.png, and appends `entries` to the train
/// split of the VOC folder `root`, so that a reader that follows an entry out of the root finds a
/// real image there and the refusal is what the test sees.
public func plantEscapingVOCEntries(root: URL, outside: URL, entries: [String]) throws {
    let fm = FileManager.default
    try fm.createDirectory(at: outside, withIntermediateDirectories: true)
    try fm.copyItem(at: root.appendingPathComponent("JPEGImages/scene_0000.jpg"), to: outside.appendingPathComponent("evil.jpg"))
    try fm.copyItem(at: root.appendingPathComponent("SegmentationClass/scene_0000.png"), to: outside.appendingPathComponent("evil.png"))
    let list = root.appendingPathComponent("ImageSets/Segmentation/train.txt")
    let text = try String(contentsOf: list, encoding: .utf8) + entries.map { $0 + "\n" }.joined()
    try text.write(to: list, atomically: true, encoding: .utf8)
}
