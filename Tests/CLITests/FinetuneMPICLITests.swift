import Formats
import Foundation
import TestSupport
import Testing

/// `mpirun -np 2 dvt finetune` against one process (the helpers of Stage2MPICLITests: mpirun
/// found or the test says it is skipped, a deadline per command, one thread per rank).
@Suite("dvt finetune under mpirun", .serialized)
struct FinetuneMPICLITests {
    @Test("mpirun -np 2 gives the single-process fine-tuned ViT (1e-4 relative) and the same losses")
    func equalsSingleProcess() throws {
        let helpers = Stage2MPICLITests()
        let (mpirun, exe) = try helpers.prerequisites()
        let dir = temporaryDirectory("finetune-mpi")
        defer { try? FileManager.default.removeItem(at: dir) }
        let images = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for name in ["chelsea", "rocket", "coffee", "astronaut"] {
            try FileManager.default.copyItem(at: photos.appendingPathComponent("\(name).jpg"), to: images.appendingPathComponent("\(name).jpg"))
        }
        let cfg = dir.appendingPathComponent("cfg.yaml")
        try Data(
            """
            model: vit_small_patch14_dinov2
            random_init: 3
            data_list: \(images.path)
            input_size: [28, 42]
            seed: 5
            finetune:
              batch_size: 4
              num_iters: 3
              thaw: last2
              save_freq: 0
              print_freq: 1
            srt:
              dx: 1
              dy: 1
            """.utf8
        ).write(to: cfg)
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        let (rc1, log1) = try helpers.run(exe.path, ["finetune", cfg.path, "--teacher", "srt", "--set", "output_dir=\(one.path)"])
        #expect(rc1 == 0, "\(log1)")
        let (rc2, log2) = try helpers.run(
            mpirun, helpers.mpi(mpirun, exe, ranks: 2, ["finetune", cfg.path, "--teacher", "srt", "--set", "output_dir=\(two.path)"]))
        #expect(rc2 == 0, "\(log2)")
        #expect(log2.contains("rank 0 of 2") && log2.contains("rank 1 of 2"), "\(log2)")
        let a = try SafeTensorsFile(url: one.appendingPathComponent("finetune/vit.safetensors"))
        let b = try SafeTensorsFile(url: two.appendingPathComponent("finetune/vit.safetensors"))
        #expect(a.keys == b.keys)
        for k in a.keys {
            let x = try a.tensor(k).scalars, y = try b.tensor(k).scalars
            let scale = max(x.map { abs($0) }.max() ?? 0, 1e-12)
            let worst = zip(x, y).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-4 * scale, "\(k): \(worst) vs scale \(scale)")
        }
        func losses(_ log: String) -> [String] {
            log.split(separator: "\n").filter { $0.contains("finetune step") }.map { String($0.split(separator: " ")[4]) }
        }
        #expect(losses(log1) == losses(log2) && losses(log1).count == 3, "\(losses(log1)) vs \(losses(log2))")
    }
}
