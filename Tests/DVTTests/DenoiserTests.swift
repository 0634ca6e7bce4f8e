import DVT
import Formats
import Foundation
import NN
import TensorCore
import TestSupport
import Testing
import Vision

/// The DVT module's suites (denoiser, stage 2).
@Suite("DVT")
struct DVTSuites {}

extension DVTSuites {
    @Suite("Denoiser")
    struct DenoiserTests {
        let dir = fixturesDirectory.appendingPathComponent("denoiser")

        func tempFile(_ name: String) -> URL {
            temporaryDirectory("denoiser").appendingPathComponent(name)
        }

        @Test("the official fixture loads with its exact key layout and matches PyTorch on both grids (incl. resampled pos_embed)")
        func fixture() throws {
            let d = try Denoiser.load(dir.appendingPathComponent("weights.safetensors"))
            #expect(d.config == DenoiserConfig(dim: 64, grid: (6, 6), numBlocks: 1, numHeads: 1, enablePE: true))
            let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("meta.json"))) as! [String: Any]
            let officialKeys = meta["state_dict_keys"] as! [String]
            #expect(d.namedParameters().map(\.0) == officialKeys)

            let io = try SafeTensorsFile(url: dir.appendingPathComponent("io.safetensors"))
            for k in 0..<2 {
                let x = try io.tensor("input\(k)"), expected = try io.tensor("output\(k)")
                let y = d.denoise(x)
                expectClose(y, expected, rtol: 0, atol: 1e-4, "denoiser output \(k), input \(x.shape)")
                // Without pos_embed the output would differ: the comparison can fail.
                let noPE = withNoGrad { () -> Tensor in
                    let b = x.shape[0], n = x.shape[1] * x.shape[2]
                    return d.blocks[0](x.reshape([b, n, 64])).reshape(x.shape)
                }
                #expect(closeness(noPE.scalars, expected.scalars, rtol: 0, atol: 1e-4).firstBad != nil)
            }
        }

        @Test("the resampled position embedding equals the torch-matching bicubic resize and is differentiable")
        func resampledPositions() throws {
            let d = try Denoiser(config: DenoiserConfig(dim: 8, grid: (6, 6)), seed: 3)
            let pos = d.posEmbed!
            for (h, w) in [(5, 7), (9, 4), (6, 8), (3, 6)] {
                let viaMatrices = withNoGrad { d.positionEmbedding(height: h, width: w)! }
                let direct = Resize.bicubicAntialiased(pos.reshape([6, 6, 8]), height: h, width: w, layout: .hwc)
                expectClose(viaMatrices.scalars, direct.scalars, rtol: 1e-5, atol: 1e-6, "pos_embed resampled to \(h)x\(w)")
            }
            #expect(withNoGrad { d.positionEmbedding(height: 6, width: 6)!.scalars } == pos.scalars)
            gradCheck("pos_embed resampled to 5x7", [pos]) { _ in d.positionEmbedding(height: 5, width: 7)! }
        }

        @Test(
            "export then load gives the same weights, architecture and outputs, in the official layout",
            arguments: [
                (1, true), (2, true), (1, false), (3, false),
            ])
        func roundTrip(blocks: Int, pe: Bool) throws {
            let cfg = DenoiserConfig(dim: 128, grid: (4, 5), numBlocks: blocks, enablePE: pe)
            let d = try Denoiser(config: cfg, seed: 11)
            let url = tempFile("rt.safetensors")
            defer { try? FileManager.default.removeItem(at: url) }
            try d.export(to: url, provenance: ["vit_model": "vit_small_patch14_dinov2.lvd142m", "layer": "11"])

            let file = try SafeTensorsFile(url: url)
            #expect(file.metadata["format"] == Denoiser.fileFormat)
            #expect(file.metadata["vit_model"] == "vit_small_patch14_dinov2.lvd142m" && file.metadata["layer"] == "11")
            #expect(file.metadata["noise_map_height"] == "4" && file.metadata["noise_map_width"] == "5")
            #expect(file.metadata["num_heads"] == "2" && file.metadata["num_blocks"] == String(blocks))
            #expect(file.contains("pos_embed") == pe)
            if pe { #expect(try file.shape(of: "pos_embed") == [1, 20, 128]) }
            let prefix = blocks == 1 ? "denoiser." : "denoiser.\(blocks - 1)."
            #expect(try file.shape(of: prefix + "attn.qkv.weight") == [384, 128])  // torch (out, in)
            #expect(try file.shape(of: prefix + "mlp.fc1.weight") == [512, 128])
            #expect(try file.shape(of: prefix + "norm2.bias") == [128])
            #expect(file.keys.count == 12 * blocks + (pe ? 1 : 0))

            let back = try Denoiser.load(url)
            #expect(back.config == cfg)
            for ((n1, p1), (n2, p2)) in zip(d.namedParameters(), back.namedParameters()) {
                #expect(n1 == n2)
                #expect(p1.scalars == p2.scalars, "\(n1) changed in the round trip")
            }
            var rng = RandomGenerator(seed: 5)
            let x = Tensor.normal([2, 4, 5, 128], rng: &rng)
            // Same weights, same function (not compared bitwise: sgemm's low bits depend on
            // OpenBLAS's process-wide thread count, which concurrent tests' attention changes).
            expectClose(back.denoise(x), d.denoise(x), rtol: 1e-5, atol: 1e-6, "outputs after the round trip")
            let other = Tensor.normal([1, 3, 7, 128], rng: &rng)  // another grid
            expectClose(back.denoise(other), d.denoise(other), rtol: 1e-5, atol: 1e-6, "outputs on a 3x7 grid")
        }

        @Test("files that do not fit are rejected with the keys and shapes named")
        func badFiles() throws {
            let d = try Denoiser.load(dir.appendingPathComponent("weights.safetensors"))
            var dict = d.stateDict()
            dict["denoiser.ls1.gamma"] = Tensor(zeros: [64])
            #expect { try Denoiser(stateDict: dict) } throws: { "\($0)".contains("denoiser.ls1.gamma") }
            dict = d.stateDict()
            dict["pos_embed"] = Tensor(zeros: [1, 35, 64])
            #expect { try Denoiser(stateDict: dict) } throws: { "\($0)".contains("35 tokens, not a square grid") }
            dict = d.stateDict()
            dict.removeValue(forKey: "denoiser.norm1.weight")
            #expect { try Denoiser(stateDict: dict) } throws: { "\($0)".contains("denoiser.norm1.weight") }
            #expect { try Denoiser(config: DenoiserConfig(dim: 200, grid: (4, 4)), seed: 0) } throws: { "\($0)".contains("not divisible by 3") }
            // Issue 18: crafted grid metadata overflowed h·w (a trap) before any check.
            dict = d.stateDict()
            dict.removeValue(forKey: "pos_embed")
            for (h, w) in [("4611686018427387904", "4"), ("0", "6"), ("-3", "6"), ("6", "100000")] {
                #expect {
                    try Denoiser(stateDict: dict, metadata: ["noise_map_height": h, "noise_map_width": w], source: "crafted.safetensors")
                } throws: { "\($0)".contains("crafted.safetensors") && "\($0)".contains("out of range") }
            }
        }

        @Test("training on the native grid moves pos_embed and every block weight")
        func gradientsReachEverything() throws {
            let d = try Denoiser(config: DenoiserConfig(dim: 64, grid: (3, 3), numBlocks: 2), seed: 1)
            var rng = RandomGenerator(seed: 2)
            let x = Tensor.normal([2, 3, 3, 64], rng: &rng), t = Tensor.normal([2, 3, 3, 64], rng: &rng)
            let loss = Tensor.mseLoss(d(x), t)
            loss.backward()
            for (name, p) in d.namedParameters() {
                let g = p.grad?.scalars ?? []
                #expect(g.contains { $0 != 0 }, "\(name) got no gradient")
            }
        }
    }
}
