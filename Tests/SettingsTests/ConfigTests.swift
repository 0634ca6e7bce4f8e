import Foundation
import TensorCore
import TestSupport
import Testing

@testable import Settings

@Suite("YAML config")
struct ConfigTests {
    func write(_ text: String) -> URL {
        let url = temporaryDirectory("config").appendingPathComponent("config.yaml")
        try! text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test("defaults are DVT's, file values and overrides win in order")
    func layering() throws {
        let d = try ConfigSchema.load(file: nil)
        #expect(d.int("stage1.num_iters") == 25000 && d.double("stage1.lr") == 0.01 && d.int("stage1.pixel_bsz") == 2048)
        #expect(d.double("stage2.base_lr") == 2e-4 && d.int("stage2.batch_size") == 128)
        let url = write(
            """
            model: vit_small_patch14_dinov2.lvd142m
            input_size: 224
            stage1:
              num_iters: 300
              weight_decay: 1e-5
              lr: 2e-2
            stage2:
              targets: srt
            """)
        defer { try? FileManager.default.removeItem(at: url) }
        let c = try ConfigSchema.load(file: url, overrides: ["stage1.num_iters=50", "seed=3"])
        #expect(c.string("model") == "vit_small_patch14_dinov2.lvd142m")
        #expect(c.ints("input_size") == [224, 224])
        #expect(c.int("stage1.num_iters") == 50)
        #expect(c.double("stage1.weight_decay") == 1e-5)
        #expect(c.double("stage1.lr") == 0.02)
        #expect(c.string("stage2.targets") == "srt")
        #expect(c.int("seed") == 3)
        #expect(c.sources["stage1.num_iters"] == "override")
        // The resolved YAML loads back to the same configuration.
        let again = write(c.yaml)
        defer { try? FileManager.default.removeItem(at: again) }
        let d2 = try ConfigSchema.load(file: again)
        #expect(d2.values == c.values)
    }

    @Test("unknown keys are errors with a did-you-mean suggestion")
    func unknownKeys() throws {
        let url = write("stage1:\n  num_iter: 10\n")
        defer { try? FileManager.default.removeItem(at: url) }
        #expect {
            try ConfigSchema.load(file: url)
        } throws: { e in
            let s = "\(e)"
            return s.contains("unknown config key 'stage1.num_iter'") && s.contains("Did you mean 'stage1.num_iters'") && s.contains(url.path)
        }
        #expect(throws: ConfigError.self) { try ConfigSchema.load(file: nil, overrides: ["stage3.x=1"]) }
        #expect(throws: ConfigError.self) { try ConfigSchema.load(file: nil, overrides: ["no-equals-sign"]) }
    }

    @Test("bad values name the key, the value and the allowed range")
    func badValues() throws {
        for (yaml, key, allowed) in [
            ("stage1.pixel_bsz: 0", "stage1.pixel_bsz", "1...1000000"),
            ("stage1:\n  lr: -1", "stage1.lr", "1e-09...10.0"),
            ("stage2:\n  targets: dvt", "stage2.targets", "one of stage1, srt"),
            ("input_size: [1, 2, 3]", "input_size", "a list of 2 integers"),
            ("seed: null", "seed", "an integer"),
        ] {
            let url = write(yaml.replacingOccurrences(of: "stage1.pixel_bsz: 0", with: "stage1:\n  pixel_bsz: 0"))
            defer { try? FileManager.default.removeItem(at: url) }
            #expect {
                try ConfigSchema.load(file: url)
            } throws: { e in
                let s = "\(e)"
                return s.contains("'\(key)'") && s.contains(allowed)
            }
        }
    }

    @Test("fuzz: random and corrupted YAML gives a config or a clear error, never a crash")
    func fuzz() throws {
        var rng = RandomGenerator(seed: 11)
        let base = Array("model: vit_small_patch14_dinov2\nstage1:\n  num_iters: 300\n  lr: 0.01\ninput_size: [224, 224]\n".utf8)
        let alphabet = Array(":- []{}#\n\t'\"0123456789abcxyz.,&*!|>%@`".utf8)
        var errors = 0, ok = 0
        for round in 0..<400 {
            var bytes = base
            let edits = 1 + rng.randint(6)
            for _ in 0..<edits {
                switch rng.randint(3) {
                case 0: bytes[rng.randint(bytes.count)] = alphabet[rng.randint(alphabet.count)]
                case 1: bytes.insert(alphabet[rng.randint(alphabet.count)], at: rng.randint(bytes.count))
                default: if bytes.count > 1 { bytes.remove(at: rng.randint(bytes.count)) }
                }
            }
            if round % 50 == 0 { bytes = Array(bytes.prefix(rng.randint(bytes.count))) }
            let url = write(String(decoding: bytes, as: UTF8.self))
            defer { try? FileManager.default.removeItem(at: url) }
            do { _ = try ConfigSchema.load(file: url); ok += 1 } catch let e as ConfigError {
                #expect(!e.description.isEmpty)
                errors += 1
            }
        }
        #expect(errors > 0 && ok + errors == 400)
    }
}

@Suite("Config docs")
struct ConfigDocsTests {
    @Test("docs/config.md is the schema's reference (regenerate with `dvt config --reference > docs/config.md`)")
    func upToDate() throws {
        let doc = try String(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("docs/config.md"), encoding: .utf8)
        #expect(doc == ConfigSchema.referenceMarkdown)
        for key in ConfigSchema.keys { #expect(doc.contains("`\(key.path)`")) }
    }

    @Test("every shipped config in Configs/ loads and validates")
    func shippedConfigs() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Configs")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.contains("planted.yaml") && files.contains("demo.yaml") && files.count >= 4)
        for f in files {
            let cfg = try ConfigSchema.load(file: dir.appendingPathComponent(f))
            #expect(cfg.int("stage1.num_iters") > 0, "\(f)")
        }
    }
}
