import Foundation

/// One recorded op: the inputs it read and the closure that turns the output's gradient into
/// contributions to the inputs' gradients. The closure must *add* into `gradBuffer()`, never
/// overwrite, so a tensor used twice gets the sum of both paths.
final class BackwardNode {
    let op: String
    let parents: [Tensor]
    let backward: (Tensor) -> Void

    init(op: String, parents: [Tensor], backward: @escaping (Tensor) -> Void) {
        self.op = op
        self.parents = parents
        self.backward = backward
    }
}

/// Whether ops record the graph. Thread-local so a no-grad scope on one thread (inference
/// workers) doesn't switch recording off for another.
enum GradMode {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    static var enabled: Bool {
        get { pthread_getspecific(key) == nil }
        set { pthread_setspecific(key, newValue ? nil : UnsafeRawPointer(bitPattern: 1)) }
    }

    private static let checkpointKey: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    /// True inside the unrecorded forward of `Tensor.checkpoint`, whose backward recomputes the
    /// body with recording on: inference-only fast paths (prepared weights, fused GELU) stay off
    /// there, so the forward's values are bit for bit the recomputed graph's.
    static var checkpointForward: Bool {
        get { pthread_getspecific(checkpointKey) != nil }
        set { pthread_setspecific(checkpointKey, newValue ? UnsafeRawPointer(bitPattern: 1) : nil) }
    }
}

/// Runs `body` without recording any graph (inference, metric computation).
public func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
    let previous = GradMode.enabled
    GradMode.enabled = false
    defer { GradMode.enabled = previous }
    return try body()
}

/// Whether ops record the graph on this thread right now.
public var isGradEnabled: Bool { GradMode.enabled }

extension Tensor {
    /// Attaches a backward closure to `out` when any input needs a gradient and recording is on.
    /// Returns `out` for chaining. The closure receives the output's accumulated gradient.
    @discardableResult
    func record(_ op: String, _ parents: [Tensor], _ backward: @escaping (Tensor) -> Void) -> Tensor {
        guard GradMode.enabled, parents.contains(where: { $0.requiresGrad }) else { return self }
        requiresGrad = true
        node = BackwardNode(op: op, parents: parents, backward: backward)
        return self
    }

    /// Back-propagates from this tensor. A scalar output seeds with 1; otherwise pass `seed`
    /// (same shape). Gradients accumulate into every reachable tensor that requires them.
    public func backward(seed: Tensor? = nil) {
        precondition(requiresGrad, "backward() called on a tensor that does not require grad (shape \(shape))")
        if let seed {
            precondition(seed.shape == shape, "backward seed shape \(seed.shape) != output shape \(shape)")
        } else {
            precondition(count == 1, "backward() without a seed needs a one-element output, got shape \(shape)")
        }
        // Iterative DFS post-order: deep graphs (hundreds of ops) would overflow a recursive walk.
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded { order.append(t); continue }
            if !visited.insert(ObjectIdentifier(t)).inserted { continue }
            stack.append((t, true))
            if let node = t.node {
                for p in node.parents where p.requiresGrad && !visited.contains(ObjectIdentifier(p)) {
                    stack.append((p, false))
                }
            }
        }
        let g = gradBuffer()
        if let seed {
            let ps = seed.ptr
            for i in 0..<count { g[i] += ps[i] }
        } else {
            g[0] += 1
        }
        withNoGrad {
            for t in order.reversed() {
                guard let node = t.node, let grad = t.grad else { continue }
                node.backward(grad)
            }
        }
    }

    /// Forgets how this tensor was computed, freeing the graph behind it.
    public func clearGraph() { node = nil }

    /// The op that produced this tensor, if it was recorded.
    public var producingOp: String? { node?.op }
}
