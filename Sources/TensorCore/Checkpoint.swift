import Foundation

// Gradient checkpointing (torch.utils.checkpoint): run a sub-graph without recording it, keep
// only its input, and recompute it with recording during the backward pass. Memory of one
// segment's activations is traded for a second forward through it. DVT stage 3 exposes this as
// `--gradient_checkpointing` over the ViT's blocks (main_distillation.py, model.set_grad_checkpointing).

extension Tensor {
    /// `body(x)` whose intermediate activations are not kept: forward runs without a graph, and
    /// backward re-runs `body` on a detached copy of `x` with recording on, then back-propagates
    /// the output's gradient through that fresh graph. `parameters` are the tensors `body` reads
    /// besides `x` that may need gradients (their gradients accumulate as usual). `body` must be
    /// deterministic (no random draws), or the recomputed graph is not the forward's.
    public static func checkpoint(_ x: Tensor, parameters: [Tensor], _ body: @escaping (Tensor) -> Tensor) -> Tensor {
        guard GradMode.enabled, x.requiresGrad || parameters.contains(where: { $0.requiresGrad }) else { return body(x) }
        let wasCheckpointing = GradMode.checkpointForward
        GradMode.checkpointForward = true
        let out = withNoGrad { body(x) }
        GradMode.checkpointForward = wasCheckpointing
        let held = x.detach()
        return out.record("checkpoint", [x] + parameters) { g in
            let input = held.detach()
            input.requiresGrad = x.requiresGrad
            let previous = GradMode.enabled
            GradMode.enabled = true
            defer { GradMode.enabled = previous }
            let y = body(input)
            precondition(y.shape == g.shape, "checkpoint: recomputed output \(y.shape) != forward output \(g.shape)")
            // A body whose output does not depend on anything trainable contributes nothing.
            guard y.requiresGrad else { return }
            y.backward(seed: g)
            if x.requiresGrad, let gi = input.grad {
                let dst = x.gradBuffer(), src = gi.ptr
                for i in 0..<x.count { dst[i] += src[i] }
            }
        }
    }
}
