import Foundation
import Testing
@testable import Settings

/// The typed settings and the schema describe the same keys: every schema key has exactly one
/// property in its section's struct, with the value the string-keyed accessor gives.
@Suite("Typed settings")
struct TypedSettingsTests {
    static let sections: [String: [String: String]] = [
        "": DVTSettings.Run.keyNames, "stage1": DVTSettings.Stage1.keyNames,
        "stage2": DVTSettings.Stage2.keyNames, "srt": DVTSettings.SRT.keyNames,
        "finetune": DVTSettings.Finetune.keyNames,
        "probe": DVTSettings.Probe.keyNames,
    ]

    @Test("every schema key has its property, and every property its schema key")
    func keysMatch() {
        let schema = Set(ConfigSchema.keys.map(\.path))
        var typed = Set<String>()
        for (section, names) in Self.sections {
            for key in names.keys {
                typed.insert(key)
                #expect(ConfigSchema.key(key)?.section == section, "\(key) is typed in section '\(section)'")
            }
        }
        #expect(schema == typed, "schema only: \(schema.subtracting(typed).sorted()), typed only: \(typed.subtracting(schema).sorted())")
    }

    @Test("the typed values are the resolved values (defaults and overrides)")
    func valuesMatch() throws {
        let c = try ConfigSchema.load(file: nil, overrides: ["stage1.num_iters=7", "srt.dx=2", "seed=5", "model=x"])
        let s = c.settings
        #expect(s.stage1.numIters == 7 && s.srt.dx == 2 && s.run.seed == 5 && s.run.model == "x")
        #expect(s.stage1.lr == c.double("stage1.lr") && s.stage2.baseLR == c.double("stage2.base_lr"))
        #expect(s.stage1.warmupIters == nil && s.run.inputSize == c.ints("input_size"))
        // Each property holds its key's value: compare through Mirror against the resolved value.
        let mirrors: [String: Mirror] = ["": Mirror(reflecting: s.run), "stage1": Mirror(reflecting: s.stage1),
                                         "stage2": Mirror(reflecting: s.stage2), "srt": Mirror(reflecting: s.srt),
                                         "finetune": Mirror(reflecting: s.finetune),
                                         "probe": Mirror(reflecting: s.probe)]
        for key in ConfigSchema.keys {
            let name = Self.sections[key.section]![key.path]!
            let child = mirrors[key.section]!.children.first { $0.label == name }
            #expect(child != nil, "no property \(name) for \(key.path)")
            guard let value = child?.value else { continue }
            let text = "\(value)"
            switch c.value(key.path) {
            case .null: #expect(text == "nil", "\(key.path): \(text)")
            case .int(let v): #expect(text == "\(v)" || text == "Optional(\(v))" || text == "\(Double(v))" || text == "Optional(\(Double(v)))", "\(key.path): \(text)")
            case .double(let v): #expect(text == "\(v)" || text == "Optional(\(v))", "\(key.path): \(text)")
            case .bool(let v): #expect(text == "\(v)", "\(key.path): \(text)")
            case .string(let v): #expect(text == "Optional(\"\(v)\")", "\(key.path): \(text)")
            case .ints(let v): #expect(text == "\(v)", "\(key.path): \(text)")
            }
        }
    }
}
