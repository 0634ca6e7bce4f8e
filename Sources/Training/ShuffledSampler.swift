import TensorCore

/// An endless stream of shuffled indices, the one sampler of the training tasks (stage 2,
/// fine-tuning, probe heads): epoch e visits 0..<count in a permutation drawn from (seed, e); a
/// batch that crosses an epoch's end continues into the next. The state is just (epoch, cursor),
/// so a checkpoint restores the stream exactly.
public struct ShuffledSampler: Sendable, Equatable {
    public let count: Int
    public let seed: UInt64
    public private(set) var epoch: Int = 0
    public private(set) var cursor: Int = 0
    private var order: [Int]

    public init(count: Int, seed: UInt64) {
        precondition(count > 0, "ShuffledSampler needs at least one item")
        self.count = count
        self.seed = seed
        order = ShuffledSampler.permutation(count: count, seed: seed, epoch: 0)
    }

    static func permutation(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        // Golden-ratio increment (SplitMix64's) spreads epochs over the seed space.
        var rng = RandomGenerator(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
        return rng.permutation(count)
    }

    public mutating func next(_ n: Int) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(n)
        while out.count < n {
            if cursor == count {
                epoch += 1
                cursor = 0
                order = ShuffledSampler.permutation(count: count, seed: seed, epoch: epoch)
            }
            out.append(order[cursor])
            cursor += 1
        }
        return out
    }

    /// (count, epoch, cursor) as float32 tensor values, each integer split into 16-bit pieces
    /// so it round-trips exactly through a float32 checkpoint.
    public var state: Tensor {
        Tensor([count, epoch, cursor].flatMap(ShuffledSampler.split), shape: [12])
    }

    /// Why a saved state cannot be restored; the task that owns the sampler words it for its data.
    public enum RestoreError: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        /// The checkpoint's stream walked `saved` items, this sampler has `count`.
        case countChanged(saved: Int, count: Int)

        public var description: String {
            switch self {
            case let .malformed(what): return "sampler state \(what) is malformed"
            case let .countChanged(saved, count):
                return "the checkpoint's sampler walked \(saved) items, this run has \(count), so the run cannot resume exactly"
            }
        }
    }

    public mutating func restore(_ t: Tensor) throws(RestoreError) {
        guard t.shape == [12] else { throw .malformed("of shape \(t.shape) (expected [12])") }
        let v = t.scalars
        let ints = (0..<3).map { i in ShuffledSampler.join(Array(v[(4 * i)..<(4 * i + 4)])) }
        guard let savedCount = ints[0], let e = ints[1], let c = ints[2], e >= 0, c >= 0, c <= savedCount else {
            throw .malformed("\(v)")
        }
        guard savedCount == count else { throw .countChanged(saved: savedCount, count: count) }
        epoch = e
        cursor = c
        order = ShuffledSampler.permutation(count: count, seed: seed, epoch: epoch)
    }

    /// The sampler's part of a task's checkpoint extras (`extra.sampler`).
    public var extras: [String: Tensor] { ["sampler": state] }

    /// Restores the state a task saved as `extra.sampler` in its checkpoint, refusing a missing,
    /// malformed or foreign state in the task's words: `items` names what the sampler walks
    /// ("training pairs"), `inputs` what decides their number, `writer` what writes such checkpoints.
    public mutating func restore(extras: [String: Tensor], items: String, inputs: String, writer: String) throws(StateError) {
        guard let t = extras["sampler"] else {
            throw StateError("checkpoint has no sampler state (extra.sampler): it was not written by \(writer)")
        }
        do { try restore(t) } catch RestoreError.countChanged(let saved, let count) {
            throw StateError(
                "the checkpoint's sampler walked \(saved) \(items), this run has \(count): \(inputs) changed since the checkpoint, so the run cannot resume exactly"
            )
        } catch { throw StateError("\(error)") }
    }

    /// A checkpoint's sampler state that this run cannot continue from.
    public struct StateError: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    static func split(_ x: Int) -> [Float] {
        let u = UInt64(x)
        return (0..<4).map { Float((u >> (16 * UInt64($0))) & 0xFFFF) }
    }

    static func join(_ parts: [Float]) -> Int? {
        var u: UInt64 = 0
        for (i, p) in parts.enumerated() {
            guard p >= 0, p <= 65535, p == p.rounded() else { return nil }
            u |= UInt64(p) << (16 * UInt64(i))
        }
        return Int(exactly: u)
    }
}
