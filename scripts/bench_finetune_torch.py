"""PyTorch side of `dvt bench finetune`: one DVT stage-3 training step of a timm ViT (random
weights) on the CPU, fp32 or (--precision bf16) under torch.autocast("cpu", bfloat16) — the last block's patch features after the final norm, loss
MSE + (1 − cosine) against a fixed target (main_distillation.py lines 237-242), backward, AdamW
(0.9, 0.999), wd 1e-5 — timed as the median of `--steps` steps after one warmup step.

    /work/venv/bin/python scripts/bench_finetune_torch.py --arch vit_small_patch14_dinov2 --size 224 --batch 8 --steps 5 [--precision bf16]
Prints `ms_per_step X` and `peak_rss_mb Y`.
"""
import argparse
import resource
import statistics
import time

import torch
import torch.nn.functional as F
import timm

ap = argparse.ArgumentParser()
ap.add_argument("--arch", default="vit_small_patch14_dinov2")
ap.add_argument("--size", type=int, default=224)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--threads", type=int, default=0)
ap.add_argument("--grad-checkpointing", action="store_true")
ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
a = ap.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)
m = timm.create_model(a.arch, pretrained=False, num_classes=0, dynamic_img_size=True, img_size=a.size).train()
if a.grad_checkpointing:
    m.set_grad_checkpointing(True)
x = torch.randn(a.batch, 3, a.size, a.size)
last = len(m.blocks) - 1
with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
    target = m.forward_intermediates(x, indices=[last], norm=True, intermediates_only=True)[0].permute(0, 2, 3, 1).float() * 0.5
opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-5)


# bf16: autocast around forward and loss, as a mixed-precision training step does; the weights,
# gradients and AdamW state stay fp32.
def autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16")


def step():
    with autocast():
        pred = m.forward_intermediates(x, indices=[last], norm=True, intermediates_only=True)[0].permute(0, 2, 3, 1)
        pred = pred.float()
        loss = F.mse_loss(pred, target) + (1 - F.cosine_similarity(pred, target, dim=-1).mean())
    opt.zero_grad()
    loss.backward()
    opt.step()


step()
times = []
for _ in range(a.steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
print(f"ms_per_step {1000 * statistics.median(times):.2f}")
print(f"peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
print(f"threads {torch.get_num_threads()}")
print(f"precision {a.precision}")
