import DVT
import Formats
import Foundation
import Jobs
import Settings
import TensorCore
import TestSupport
import Testing
import Vision

/// `dvt srt` end to end through its library function: two bundled photos and a truncated JPEG.
@Suite struct SRTJobTests {
    @Test func writesFeaturesStripsAndRecordAndSkipsACorruptImage() throws {
        let tmp = temporaryDirectory("srt")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let input = tmp.appendingPathComponent("in"), out = tmp.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: input.appendingPathComponent("sub"), withIntermediateDirectories: true)
        let photos = repositoryRoot.appendingPathComponent("Datasets/photos")
        try FileManager.default.copyItem(at: photos.appendingPathComponent("astronaut.jpg"), to: input.appendingPathComponent("astronaut.jpg"))
        try FileManager.default.copyItem(at: photos.appendingPathComponent("chelsea.jpg"), to: input.appendingPathComponent("sub/chelsea.jpg"))
        let jpeg = try Data(contentsOf: photos.appendingPathComponent("brick.jpg"))
        try jpeg.prefix(jpeg.count / 3).write(to: input.appendingPathComponent("broken.jpg"))

        let model = tinyViT()
        let srt = try SRT(model: model, options: srtOptions(dx: 1, dy: 1))
        var job = SRTJob(srt: srt, resolution: .fine(scaleFactor: 2), height: 56, width: 56)
        job.visualize = true
        let items = try ImageSource.items(from: input.path)
        #expect(items.map(\.relativeStem) == ["astronaut", "broken", "sub/chelsea"])
        var logged: [String] = []
        let report = try job.run(items: items, outDir: out, showProgress: false) { logged.append($0) }

        #expect(report.failures.count == 1 && report.failures[0].image.hasSuffix("broken.jpg"))
        #expect(logged.count == 1 && logged[0].contains("broken.jpg"))
        for stem in ["astronaut", "sub/chelsea"] {
            let f = try Npy.read(out.appendingPathComponent(stem + ".npy"))
            #expect(f.shape == [8, 8, 32])
            let img = try srt.model.preprocess(input.appendingPathComponent(stem + ".jpg"), height: 56, width: 56)
            expectClose(f, try srt.run(img, resolution: .fine(scaleFactor: 2)).output, rtol: 1e-6, atol: 1e-6, stem)
            let png = try RGBImage(contentsOf: out.appendingPathComponent(stem + ".png"))
            #expect(png.height == 224 && png.width == 3 * 224 + 2 * 4)
        }
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("broken.npy").path))

        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent(SRTJob.recordName))) as! [String: Any]
        #expect(record["randomInitSeed"] as? Int == 3)
        #expect((record["warning"] as? String)?.contains("RANDOM WEIGHTS") == true)
        #expect(record["completed"] as? Bool == true)
        #expect(record["views"] as? Int == 10 && record["forwards"] as? Int == 9)
        #expect((record["failed"] as? [[String: Any]])?.count == 1)
    }

    @Test func rejectsImpossibleSettingsBeforeWorking() throws {
        let model = tinyViT()
        let tmp = temporaryDirectory("srt")
        defer { try? FileManager.default.removeItem(at: tmp) }
        var job = SRTJob(srt: try SRT(model: model, options: srtOptions(aggregate: .median)), resolution: .token, height: 56, width: 56)
        job.fast = true
        #expect(throws: SRTError.self) { try job.run(items: [], outDir: tmp, showProgress: false) }
        job = SRTJob(srt: try SRT(model: model, options: srtOptions()), resolution: .fine(scaleFactor: 4), height: 56, width: 56)
        #expect(throws: SRTError.self) { try job.run(items: [], outDir: tmp, showProgress: false) }
    }
}
