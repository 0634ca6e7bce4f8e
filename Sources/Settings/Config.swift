import Foundation
import Yams

/// A value of a configuration key.
public enum ConfigValue: Equatable, Sendable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case string(String)
    case ints([Int])
    case null

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return v == v.rounded() && abs(v) < 1e6 ? String(format: "%.1f", v) : String(v)
        case .bool(let v): return v ? "true" : "false"
        case .string(let v): return v
        case .ints(let v): return "[" + v.map(String.init).joined(separator: ", ") + "]"
        case .null: return "null"
        }
    }

    /// YAML scalar/flow text for the resolved-config file.
    var yaml: String {
        switch self {
        case .string(let v): return v.isEmpty || v.contains(":") || v.contains("#") || v.hasPrefix(" ") ? "\"\(v)\"" : v
        default: return description
        }
    }
}

/// The type of a configuration key, with its allowed values.
public enum ConfigKind: Sendable, Equatable {
    case int(ClosedRange<Int>)
    case double(ClosedRange<Double>)
    case bool
    case string
    case choice([String])
    /// A list of `count` ints, each within the range.
    case ints(count: Int, ClosedRange<Int>)

    var allowed: String {
        switch self {
        case .int(let r): return "an integer in \(r.lowerBound)...\(r.upperBound)"
        case .double(let r): return "a number in \(r.lowerBound)...\(r.upperBound)"
        case .bool: return "true or false"
        case .string: return "a string"
        case .choice(let c): return "one of " + c.joined(separator: ", ")
        case .ints(let n, let r): return "a list of \(n) integers in \(r.lowerBound)...\(r.upperBound)"
        }
    }
}

/// One documented configuration key. The schema is the single source of the defaults, the
/// validation and the config reference in docs/config.md.
public struct ConfigKey: Sendable {
    public var path: String
    public var kind: ConfigKind
    public var defaultValue: ConfigValue
    public var nullable: Bool
    /// The official DVT code's name for the same setting (argument or YAML key), if any.
    public var dvtName: String?
    public var doc: String

    public init(
        _ path: String, _ kind: ConfigKind, _ defaultValue: ConfigValue, nullable: Bool = false,
        dvt: String? = nil, _ doc: String
    ) {
        self.path = path
        self.kind = kind
        self.defaultValue = defaultValue
        self.nullable = nullable
        dvtName = dvt
        self.doc = doc
    }

    public var section: String { path.contains(".") ? String(path.split(separator: ".")[0]) : "" }
}

public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A validated configuration: every schema key has a value (from the file, a CLI override or
/// the default).
public struct ResolvedConfig: Sendable, Equatable {
    public private(set) var values: [String: ConfigValue]
    /// Where each value came from (file path, "override" or "default"), for the run record.
    public private(set) var sources: [String: String]
    /// The typed view, built once from `values` (and again after a `set`).
    public var settings: DVTSettings { typed! }
    private var typed: DVTSettings?

    /// A key's value by path; code reads the typed `settings` instead (the accessors below are for
    /// this module and its tests).
    public func value(_ path: String) -> ConfigValue {
        guard let v = values[path] else { preconditionFailure("config key \(path) is not in the schema") }
        return v
    }

    func int(_ path: String) -> Int {
        if case .int(let v) = value(path) { return v }
        preconditionFailure("config key \(path) is not an int")
    }

    func optionalInt(_ path: String) -> Int? {
        if case .int(let v) = value(path) { return v }
        return nil
    }

    func double(_ path: String) -> Double {
        switch value(path) {
        case .double(let v): return v
        case .int(let v): return Double(v)
        default: preconditionFailure("config key \(path) is not a number")
        }
    }

    func optionalDouble(_ path: String) -> Double? {
        switch value(path) {
        case .double(let v): return v
        case .int(let v): return Double(v)
        default: return nil
        }
    }

    func bool(_ path: String) -> Bool {
        if case .bool(let v) = value(path) { return v }
        preconditionFailure("config key \(path) is not a bool")
    }

    func string(_ path: String) -> String? {
        if case .string(let v) = value(path) { return v }
        return nil
    }

    func ints(_ path: String) -> [Int] {
        if case .ints(let v) = value(path) { return v }
        preconditionFailure("config key \(path) is not a list of ints")
    }

    /// Sets a value from override text (`--set key=value`), read with YAML's scalar rules.
    public mutating func set(_ path: String, _ raw: String, source: String = "override") throws {
        guard let key = ConfigSchema.key(path) else { throw ConfigSchema.unknownKeyError(path, file: source) }
        values[path] = try ConfigSchema.parse(raw, for: key, file: source)
        sources[path] = source
        typed = DVTSettings(self)
    }

    /// Sets a typed value (a command's flag for a key), checked against the key's type and range
    /// as a file's value would be; a string stays a string whatever it looks like.
    public mutating func set(_ path: String, value: ConfigValue, source: String = "override") throws {
        guard let key = ConfigSchema.key(path) else { throw ConfigSchema.unknownKeyError(path, file: source) }
        let raw: Any?
        switch value {
        case .int(let v): raw = v
        case .double(let v): raw = v
        case .bool(let v): raw = v
        case .string(let v): raw = v
        case .ints(let v): raw = v
        case .null: raw = nil
        }
        values[path] = try ConfigSchema.convert(raw, for: key, file: source)
        sources[path] = source
        typed = DVTSettings(self)
    }

    /// The whole configuration as YAML, grouped by section in schema order, with the source of
    /// each non-default value as a comment. Loading this text gives the same configuration.
    public var yaml: String {
        var out = "# Resolved dvt configuration (every key, defaults included).\n"
        var section = ""
        for key in ConfigSchema.keys {
            if key.section != section {
                section = key.section
                out += "\(section):\n"
            }
            let name = key.section.isEmpty ? key.path : "  " + String(key.path.dropFirst(section.count + 1))
            let src = sources[key.path].map { $0 == "default" ? "" : "  # from \($0)" } ?? ""
            out += "\(name): \(values[key.path]!.yaml)\(src)\n"
        }
        return out
    }

    init(values: [String: ConfigValue], sources: [String: String]) {
        self.values = values
        self.sources = sources
        typed = DVTSettings(self)
    }
}

extension ConfigSchema {
    /// Reads a YAML config (or only defaults when `file` is nil) and applies `overrides`
    /// (`key=value`, dotted keys for sections: `stage1.num_iters=200`), validating everything.
    public static func load(file: URL?, overrides: [String] = []) throws -> ResolvedConfig {
        var values: [String: ConfigValue] = [:], sources: [String: String] = [:]
        for k in keys { values[k.path] = k.defaultValue; sources[k.path] = "default" }
        if let file {
            let text = try YAMLGuard.readText(file)
            let node = try YAMLGuard.compose(text, file: file.path)?.any
            guard let root = node as? [String: Any] else {
                if node == nil { return ResolvedConfig(values: values, sources: sources) }
                throw ConfigError("config \(file.path) must be a mapping of keys to values at the top level")
            }
            for (path, raw) in flatten(root) {
                guard let key = key(path) else { throw unknownKeyError(path, file: file.path) }
                values[path] = try convert(raw, for: key, file: file.path)
                sources[path] = file.path
            }
        }
        var config = ResolvedConfig(values: values, sources: sources)
        for o in overrides {
            guard let eq = o.firstIndex(of: "=") else {
                throw ConfigError("override '\(o)' must look like key=value (e.g. stage1.num_iters=200)")
            }
            try config.set(
                String(o[..<eq]).trimmingCharacters(in: .whitespaces),
                String(o[o.index(after: eq)...]).trimmingCharacters(in: .whitespaces))
        }
        return config
    }

    static func flatten(_ dict: [String: Any], prefix: String = "") -> [(String, Any?)] {
        var out: [(String, Any?)] = []
        for (k, v) in dict {
            let path = prefix.isEmpty ? k : "\(prefix).\(k)"
            if let sub = v as? [String: Any], prefix.isEmpty, sections.contains(k) {
                out += flatten(sub, prefix: k)
            } else {
                out.append((path, v is NSNull ? nil : v))
            }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    public static func key(_ path: String) -> ConfigKey? { keys.first { $0.path == path } }

    static var sections: Set<String> { Set(keys.map(\.section).filter { !$0.isEmpty }) }

    static func unknownKeyError(_ path: String, file: String) -> ConfigError {
        let best = keys.map(\.path).min { editDistance($0, path) < editDistance($1, path) }
        let hint = best.map { editDistance($0, path) <= max(3, path.count / 3) ? " Did you mean '\($0)'?" : "" } ?? ""
        return ConfigError("\(file): unknown config key '\(path)'.\(hint) (docs/config.md lists every key)")
    }

    /// Levenshtein distance, for "did you mean" suggestions.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var prev = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var cur = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return a.isEmpty ? b.count : prev[b.count]
    }

    static func bad(_ key: ConfigKey, _ value: Any?, _ file: String) -> ConfigError {
        ConfigError(
            "\(file): config key '\(key.path)' = \(value.map { YAMLGuard.clip("\($0)") } ?? "null") is invalid: expected \(key.kind.allowed)\(key.nullable ? " or null" : "")"
        )
    }

    /// Converts a YAML-decoded value (Int, Double, Bool, String, [Any], nil) and checks its range.
    static func convert(_ raw: Any?, for key: ConfigKey, file: String) throws -> ConfigValue {
        guard let raw else {
            if key.nullable { return .null }
            throw bad(key, nil, file)
        }
        switch key.kind {
        case .int(let r):
            if let v = raw as? Int, r.contains(v) { return .int(v) }
            if let v = raw as? Double, v == v.rounded(), let i = Int(exactly: v), r.contains(i) { return .int(i) }
        case .double(let r):
            if let v = raw as? Int, r.contains(Double(v)) { return .double(Double(v)) }
            if let v = raw as? Double, v.isFinite, r.contains(v) { return .double(v) }
            if let s = raw as? String, let v = Double(s), v.isFinite, r.contains(v) { return .double(v) }  // YAML 1.1 reads 1e-5 as a string
        case .bool:
            if let v = raw as? Bool { return .bool(v) }
        case .string:
            if let v = raw as? String { return .string(v) }
            if let v = raw as? Int { return .string(String(v)) }
        case .choice(let options):
            if let v = raw as? String, options.contains(v) { return .string(v) }
        case .ints(let n, let r):
            if let list = raw as? [Any], list.count == n {
                let ints = list.compactMap { $0 as? Int }
                if ints.count == n && ints.allSatisfy(r.contains) { return .ints(ints) }
            }
            if n == 2, let v = raw as? Int, r.contains(v) { return .ints([v, v]) }
        }
        throw bad(key, raw, file)
    }

    /// Parses a command-line override value with YAML's scalar rules.
    static func parse(_ text: String, for key: ConfigKey, file: String) throws -> ConfigValue {
        // Overrides pass the same guard as files: `--set stage1.num_iters=010` must not become 8.
        try YAMLGuard.prescanNesting(text, file: file)
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            return try convert(text, for: key, file: file)  // not YAML: the text itself, as before
        }
        if let node { try YAMLGuard.validate(node, file: file) }
        let decoded = node?.any
        return try convert(decoded is NSNull ? nil : decoded, for: key, file: file)
    }
}
