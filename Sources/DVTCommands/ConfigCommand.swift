import ArgumentParser
import Bench
import DVT
import Formats
import Foundation
import Jobs
import Settings
import Training
import Vision

extension DVTCommand {
    struct ConfigCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "config",
            abstract: "Check a config and print it resolved (every key, defaults included), or print the key reference.")

        @Argument(help: "YAML config to validate and resolve.") var config: String?
        @Option(name: .customLong("set"), parsing: .upToNextOption, help: "Override config keys: --set stage1.num_iters=500 seed=3")
        var overrides: [String] = []
        @Flag(help: "Print the reference of every key (docs/config.md).") var reference = false

        func run() throws {
            if reference {
                print(ConfigSchema.referenceMarkdown, terminator: "")
                return
            }
            let c = try ConfigSchema.load(file: config.map { URL(fileURLWithPath: $0) }, overrides: overrides)
            print(c.yaml, terminator: "")
        }
    }

    struct Models: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the ViT architecture presets (timm names).")

        func run() throws {
            print("name | patch | dim | depth | heads | prefix tokens | pretraining size | family")
            for c in ViTPresets.all {
                print(
                    "\(c.name) | \(c.patchSize) | \(c.embedDim) | \(c.depth) | \(c.heads) | \(c.prefixTokens) | \(c.imageSize) | \(c.familySummary)")
            }
        }
    }
}
