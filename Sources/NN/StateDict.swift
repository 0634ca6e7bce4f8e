import TensorCore

/// A key whose tensor has another shape than the one expected (state dicts, optimiser state).
public struct ShapeMismatch: Equatable, Sendable {
    public var key: String
    public var expected: [Int]
    public var found: [Int]
    public init(key: String, expected: [Int], found: [Int]) {
        self.key = key
        self.expected = expected
        self.found = found
    }
}

/// A weight dictionary that doesn't fit a module. Lists every problem at once, so one failed
/// load shows the whole mismatch (e.g. a checkpoint from a different architecture).
public struct StateDictError: Error, CustomStringConvertible, Equatable {
    /// Parameter names the module has but the dictionary lacks.
    public var missing: [String]
    /// Dictionary keys that name no parameter of the module.
    public var unexpected: [String]
    /// Keys present in both with different shapes.
    public var mismatched: [Mismatch]
    /// Where the dictionary came from (a file path), for the message; may be empty.
    public var source: String

    public init(missing: [String] = [], unexpected: [String] = [], mismatched: [Mismatch] = [], source: String = "") {
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        self.source = source
    }

    public typealias Mismatch = ShapeMismatch

    public var description: String {
        var parts: [String] = []
        if !missing.isEmpty { parts.append("missing keys (\(missing.count)): \(Self.summarise(missing))") }
        if !unexpected.isEmpty { parts.append("unexpected keys (\(unexpected.count)): \(Self.summarise(unexpected))") }
        if !mismatched.isEmpty {
            parts.append(
                "mis-shaped keys (\(mismatched.count)): \(Self.summarise(mismatched.map { "\($0.key): module has shape \($0.expected), state dict has \($0.found)" }, separator: "; "))"
            )
        }
        let origin = source.isEmpty ? "" : " from \(source)"
        return "cannot load state dict\(origin): " + parts.joined(separator: "; ")
    }

    /// The first few names, each cut to 120 characters, so that a crafted checkpoint with 10^5
    /// keys or a 1 MB key name cannot make the message megabytes long.
    static func summarise(_ names: [String], separator: String = ", ", first: Int = 12) -> String {
        let shown = names.prefix(first).map { $0.count > 120 ? String($0.prefix(120)) + "…" : $0 }
        let rest = names.count > first ? "\(separator)… and \(names.count - first) more" : ""
        return shown.joined(separator: separator) + rest
    }
}

/// What a non-strict load skipped.
public struct StateDictLoadReport: Equatable {
    public var missing: [String]
    public var unexpected: [String]
}

extension Module {
    /// Copies weights from `stateDict` into this module's parameters, in place (parameter
    /// identity is kept, so optimisers holding them stay valid).
    ///
    /// Like torch's `load_state_dict`: with `strict` any missing or unexpected key is an error;
    /// without it they are skipped and returned. A shape mismatch is always an error. Nothing is
    /// written unless the whole load is valid.
    ///
    /// - Throws: `StateDictError` listing every missing, unexpected and mis-shaped key.
    @discardableResult
    public func load(stateDict: [String: Tensor], strict: Bool = true, source: String = "") throws -> StateDictLoadReport {
        let params = namedParameters()
        var error = StateDictError(missing: [], unexpected: [], mismatched: [], source: source)
        var names = Set<String>()
        var copies: [(Tensor, Tensor)] = []
        for (name, p) in params {
            names.insert(name)
            guard let t = stateDict[name] else {
                error.missing.append(name)
                continue
            }
            if t.shape != p.shape {
                error.mismatched.append(.init(key: name, expected: p.shape, found: t.shape))
            } else {
                copies.append((p, t))
            }
        }
        error.unexpected = stateDict.keys.filter { !names.contains($0) }.sorted()
        let report = StateDictLoadReport(missing: error.missing, unexpected: error.unexpected)
        if !error.mismatched.isEmpty || (strict && !(error.missing.isEmpty && error.unexpected.isEmpty)) {
            throw error
        }
        for (p, t) in copies { p.assign(t) }
        return report
    }
}
