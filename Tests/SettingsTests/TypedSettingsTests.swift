import Foundation
import Testing

@testable import Settings

/// The typed settings are the schema: each key is declared once, in its section's `fields`, and
/// decoding a resolved configuration fills exactly the property that declares it.
@Suite("Typed settings")
struct TypedSettingsTests {
    @Test("every key is declared once, in the section its path names, and defaults decode to themselves")
    func keysAreDeclaredOnce() throws {
        let paths = ConfigSchema.keys.map(\.path)
        #expect(Set(paths).count == paths.count, "a key is declared twice: \(paths.sorted())")
        #expect(paths.count > 80)
        let c = try ConfigSchema.load(file: nil)
        for key in ConfigSchema.keys { #expect(c.value(key.path) == key.defaultValue, "\(key.path)") }
        // Nullable keys are optional properties, and only those default to null.
        for key in ConfigSchema.keys where key.defaultValue == .null { #expect(key.nullable, "\(key.path)") }
    }

    @Test("the typed values are the resolved values (defaults and overrides)")
    func valuesMatch() throws {
        let c = try ConfigSchema.load(
            file: nil,
            overrides: [
                "stage1.num_iters=7", "srt.dx=2", "seed=5", "model=x",
                "finetune.schedule=step", "precision=bf16", "probe.lr=0.5",
            ])
        let s = c.settings
        #expect(s.stage1.numIters == 7 && s.srt.dx == 2 && s.run.seed == 5 && s.run.model == "x")
        #expect(s.finetune.schedule == .step && s.run.precision == .bf16 && s.probe.lr == 0.5)
        #expect(s.stage1.lr == c.double("stage1.lr") && s.stage2.baseLR == c.double("stage2.base_lr"))
        #expect(s.stage1.warmupIters == nil && s.run.inputSize == c.ints("input_size"))
        #expect(s.finetune.loss == nil && s.finetune.cacheTeacher == .off && s.stage2.targets == .stage1)
        // Every field reads back the resolved value of its own key.
        func check<S: SettingsSection>(_ section: S) {
            for f in S.fields {
                let path = S.section.isEmpty ? f.name : "\(S.section).\(f.name)"
                #expect(f.read(section) == c.value(path), "\(path)")
            }
        }
        check(s.run); check(s.stage1); check(s.stage2); check(s.srt); check(s.finetune); check(s.probe)
    }

    @Test("every choice key is held as an enum, never as a String")
    func choicesAreEnums() {
        func check<S: SettingsSection>(_: S.Type) {
            for f in S.fields {
                if case .choice = f.kind { #expect(f.holdsChoice, "\(S.section).\(f.name) is a choice held as a String") }
            }
        }
        check(DVTSettings.Run.self); check(DVTSettings.Stage1.self); check(DVTSettings.Stage2.self)
        check(DVTSettings.SRT.self); check(DVTSettings.Finetune.self); check(DVTSettings.Probe.self)
        #expect(DVTSettings.Stage1.fields.contains { $0.name == "hash_table_adam" && $0.holdsChoice })
        #expect(DVTSettings.Finetune.fields.contains { $0.name == "loss" && $0.holdsChoice })  // optional enum
    }

    @Test("a section changed in code is checked against the schema's ranges by key; --set text applies to one section")
    func sectionChecks() throws {
        var s = DVTSettings.Stage1()
        try s.validate()
        s.log2HashmapSize = 27
        do { try s.validateFields(); Issue.record("27 passed") } catch {
            #expect("\(error)".contains("'stage1.log2_hashmap_size' = 27") && "\(error)".contains("4...26"))
        }
        s.log2HashmapSize = 16
        s.sharedArtifactsWeightDecay = -1
        #expect(throws: ConfigError.self) { try s.validateFields() }
        var p = try DVTSettings.Probe().applying(["probe.task=depth", "probe.dataset=nyu", "probe.lr=null"])
        #expect(p.task == .depth && p.dataset == .nyu && p.lr == nil)
        #expect(throws: ConfigError.self) { p = try p.applying(["probe.task=classification"]) }
        #expect(throws: ConfigError.self) { p = try p.applying(["seed=3"]) }
        #expect(throws: ConfigError.self) { p = try p.applying(["probe.tsak=depth"]) }
    }

    @Test("a typed set keeps a string a string, checks the range, and updates the typed view")
    func typedSet() throws {
        var c = try ConfigSchema.load(file: nil)
        try c.set("output_dir", value: .string("1.0"))
        #expect(c.settings.run.outputDir == "1.0" && c.sources["output_dir"] == "override")
        try c.set("output_dir", value: .string("null"))
        #expect(c.settings.run.outputDir == "null")
        try c.set("stage2.targets", "srt")
        #expect(c.settings.stage2.targets == .srt)
        try c.set("finetune.cache_teacher", value: .string("none"))
        #expect(c.settings.finetune.cacheTeacher == .off)
        #expect(throws: ConfigError.self) { try c.set("random_init", value: .int(-1)) }
        #expect(throws: ConfigError.self) { try c.set("output_dir", value: .null) }
        #expect(throws: ConfigError.self) { try c.set("stage2.targets", value: .string("raw")) }
    }
}
