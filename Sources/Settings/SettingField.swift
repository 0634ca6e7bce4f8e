// How one settings key is declared: once, in its section's `fields` table beside the property
// that holds it (the property's initial value is the key's default), with its type and range,
// the official DVT code's name and its doc line. ConfigSchema.keys, the decoding of a resolved
// configuration into the typed tree, validation and docs/config.md all come from these tables.

/// A value a settings property can hold, as read from a validated `ConfigValue`.
public protocol ConfigRepresentable: Sendable {
    init?(configValue: ConfigValue)
    var configValue: ConfigValue { get }
}

extension Int: ConfigRepresentable {
    public init?(configValue v: ConfigValue) {
        guard case .int(let i) = v else { return nil }
        self = i
    }
    public var configValue: ConfigValue { .int(self) }
}

extension Double: ConfigRepresentable {
    public init?(configValue v: ConfigValue) {
        switch v {
        case .double(let d): self = d
        case .int(let i): self = Double(i)
        default: return nil
        }
    }
    public var configValue: ConfigValue { .double(self) }
}

extension Bool: ConfigRepresentable {
    public init?(configValue v: ConfigValue) {
        guard case .bool(let b) = v else { return nil }
        self = b
    }
    public var configValue: ConfigValue { .bool(self) }
}

extension String: ConfigRepresentable {
    public init?(configValue v: ConfigValue) {
        guard case .string(let s) = v else { return nil }
        self = s
    }
    public var configValue: ConfigValue { .string(self) }
}

extension Array: ConfigRepresentable where Element == Int {
    public init?(configValue v: ConfigValue) {
        guard case .ints(let list) = v else { return nil }
        self = list
    }
    public var configValue: ConfigValue { .ints(self) }
}

extension Optional: ConfigRepresentable where Wrapped: ConfigRepresentable {
    public init?(configValue v: ConfigValue) {
        if case .null = v {
            self = .none
        } else if let w = Wrapped(configValue: v) {
            self = .some(w)
        } else {
            return nil
        }
    }
    public var configValue: ConfigValue { self?.configValue ?? .null }
}

/// A choice key held as an enum: its cases' raw values are the allowed choices.
public protocol ConfigChoice: ConfigRepresentable, RawRepresentable, CaseIterable where RawValue == String {}

extension ConfigChoice {
    public init?(configValue v: ConfigValue) {
        guard case .string(let s) = v else { return nil }
        self.init(rawValue: s)
    }
    public var configValue: ConfigValue { .string(rawValue) }
    /// The schema kind of this choice.
    public static var kind: ConfigKind { .choice(allCases.map(\.rawValue)) }
}

/// One key of a settings section (see the top of this file).
public struct SettingField<Section> {
    /// The key within its section (`num_iters`); the path is `section.name`.
    public let name: String
    public let kind: ConfigKind
    public let nullable: Bool
    public let dvtName: String?
    public let doc: String
    /// Whether the property is an enum (`ConfigChoice`, optional or not): every choice key is one.
    let holdsChoice: Bool
    let read: (Section) -> ConfigValue
    let write: (inout Section, ConfigValue) -> Void

    /// - Parameters:
    ///   - property: holds the value; its initial value in `Section()` is the default. An
    ///     optional property makes the key nullable.
    public init<V: ConfigRepresentable>(
        _ name: String, _ property: WritableKeyPath<Section, V>, _ kind: ConfigKind,
        dvt: String? = nil, _ doc: String
    ) {
        self.name = name
        self.kind = kind
        nullable = V.self is any OptionalMarker.Type
        holdsChoice = V.self is any ConfigChoice.Type || (V.self as? any OptionalMarker.Type)?.wrappedType is any ConfigChoice.Type
        dvtName = dvt
        self.doc = doc
        read = { $0[keyPath: property].configValue }
        write = { section, value in
            guard let v = V(configValue: value) else {
                preconditionFailure("settings key \(name): \(value) is not a \(V.self) (the schema let it through)")
            }
            section[keyPath: property] = v
        }
    }
}

/// Marks `Optional` for `SettingField`'s nullable check.
protocol OptionalMarker { static var wrappedType: Any.Type { get } }
extension Optional: OptionalMarker { static var wrappedType: Any.Type { Wrapped.self } }

/// A section of the typed settings tree: a struct whose `init()` holds the defaults and whose
/// `fields` declare its keys.
public protocol SettingsSection: Sendable, Equatable {
    init()
    /// The path prefix of the section's keys ("" for the top-level keys).
    static var section: String { get }
    static var fields: [SettingField<Self>] { get }
}

extension SettingsSection {
    static func path(_ name: String) -> String { section.isEmpty ? name : "\(section).\(name)" }

    /// A copy of `self` in which each key whose value in `changed` differs from its value in
    /// `reference` takes `changed`'s value; keys named in `excluding` are left as they are.
    public func takingDifferences(of changed: Self, from reference: Self, excluding: Set<String> = []) -> Self {
        var out = self
        for field in Self.fields where !excluding.contains(field.name) {
            let value = field.read(changed)
            if value != field.read(reference) { field.write(&out, value) }
        }
        return out
    }

    /// The schema entries of this section's keys, in declaration order.
    static var configKeys: [ConfigKey] {
        let defaults = Self()
        return fields.map {
            ConfigKey(path($0.name), $0.kind, $0.read(defaults), nullable: $0.nullable, dvt: $0.dvtName, $0.doc)
        }
    }

    /// The section's values from a validated configuration.
    public init(_ c: ResolvedConfig) {
        self.init()
        for f in Self.fields { f.write(&self, c.value(Self.path(f.name))) }
    }
}

extension ConfigKind {
    /// Whether `v` is a value of this kind within its range (null is the field's business).
    func admits(_ v: ConfigValue) -> Bool {
        switch (self, v) {
        case (.int(let r), .int(let i)): return r.contains(i)
        case (.double(let r), .double(let d)): return d.isFinite && r.contains(d)
        case (.bool, .bool), (.string, .string): return true
        case (.choice(let c), .string(let s)): return c.contains(s)
        case (.ints(let n, let r), .ints(let l)): return l.count == n && l.allSatisfy(r.contains)
        default: return false
        }
    }
}

extension SettingsSection {
    /// Checks every key's value against its declared type and range, as a config file's value
    /// is checked: for a section built or changed in code rather than read from a validated
    /// configuration.
    /// - Throws: `ConfigError` naming the key, the value and what is allowed.
    public func validateFields() throws {
        for f in Self.fields {
            let v = f.read(self)
            if case .null = v, f.nullable { continue }
            guard f.kind.admits(v) else {
                throw ConfigError(
                    "config key '\(Self.path(f.name))' = \(v) is invalid: expected \(f.kind.allowed)\(f.nullable ? " or null" : "")")
            }
        }
    }
}

extension SettingsSection {
    /// This section with `overrides` applied: `--set` text (`stage1.num_iters=200`), each value
    /// read and range-checked by the schema as a config file's value is; every key must belong to
    /// this section.
    /// - Throws: `ConfigError` naming the override or the key.
    public func applying(_ overrides: [String], source: String = "override") throws -> Self {
        var s = self
        for o in overrides {
            guard let eq = o.firstIndex(of: "=") else {
                throw ConfigError("override '\(o)' must look like key=value (e.g. stage1.num_iters=200)")
            }
            let path = String(o[..<eq]).trimmingCharacters(in: .whitespaces)
            guard let key = ConfigSchema.key(path) else { throw ConfigSchema.unknownKeyError(path, file: source) }
            guard let field = Self.fields.first(where: { Self.path($0.name) == path }) else {
                throw ConfigError("\(source): '\(path)' is not a key of the \(Self.section.isEmpty ? "top-level" : Self.section) section")
            }
            field.write(&s, try ConfigSchema.parse(String(o[o.index(after: eq)...]).trimmingCharacters(in: .whitespaces), for: key, file: source))
        }
        return s
    }
}
