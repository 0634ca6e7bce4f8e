import TensorCore
import Testing

@testable import Training

@Suite("ShuffledSampler")
struct ShuffledSamplerTests {
    @Test("the shuffled sampler visits every item once per epoch and restores its position exactly")
    func sampler() throws {
        var s = ShuffledSampler(count: 7, seed: 3)
        let epoch0 = s.next(7), epoch1 = s.next(7)
        #expect(epoch0.sorted() == Array(0..<7) && epoch1.sorted() == Array(0..<7))
        #expect(epoch0 != epoch1)
        _ = s.next(3)  // mid-epoch 2
        var restored = ShuffledSampler(count: 7, seed: 3)
        try restored.restore(s.state)
        #expect(restored == s)
        #expect(restored.next(20) == s.next(20))
        var other = ShuffledSampler(count: 8, seed: 3)
        #expect(throws: ShuffledSampler.RestoreError.countChanged(saved: 7, count: 8)) { try other.restore(s.state) }
        #expect("\(ShuffledSampler.RestoreError.countChanged(saved: 7, count: 8))".contains("walked 7 items, this run has 8"))
        #expect(throws: ShuffledSampler.RestoreError.self) { try other.restore(Tensor([1, 2, 3], shape: [3])) }
        // Large positions survive the float32 checkpoint.
        var big = ShuffledSampler(count: 100_000, seed: 1)
        _ = big.next(16_777_217 + 5)
        var back = ShuffledSampler(count: 100_000, seed: 1)
        try back.restore(big.state)
        #expect(back == big)
    }

    @Test("a batch that crosses a pass's end continues into the next pass's permutation")
    func crossesEpochs() {
        var a = ShuffledSampler(count: 5, seed: 9), b = ShuffledSampler(count: 5, seed: 9)
        let whole = a.next(5) + a.next(5)
        #expect(b.next(3) + b.next(4) + b.next(3) == whole)
        #expect(b.epoch == 1 && b.cursor == 5)
    }

    @Test("a task's checkpoint extras restore the sampler; a missing or foreign state is refused in the task's words")
    func extras() throws {
        var s = ShuffledSampler(count: 4, seed: 2)
        _ = s.next(6)
        var back = ShuffledSampler(count: 4, seed: 2)
        try back.restore(extras: s.extras, items: "images", inputs: "the image list", writer: "dvt finetune")
        #expect(back == s)
        var other = ShuffledSampler(count: 5, seed: 2)
        #expect {
            try other.restore(extras: s.extras, items: "images", inputs: "the image list", writer: "dvt finetune")
        } throws: { "\($0)".contains("walked 4 images, this run has 5: the image list changed") }
        #expect { try other.restore(extras: [:], items: "images", inputs: "the image list", writer: "dvt finetune") } throws: {
            "\($0)".contains("no sampler state (extra.sampler): it was not written by dvt finetune")
        }
    }
}
