"""PyTorch side of `dvt bench vit` and `dvt bench denoiser` in either precision.

The same cases as scripts/reference/dvt_torch.py (vit-bench, stage2-bench), plus stage-2
inference, with --precision: fp32, or bf16 = torch.autocast("cpu", dtype=torch.bfloat16) around
the forward (autocast's CPU lists: linear / matmul / SDPA in bf16, layer norm in fp32; the
optimiser and master weights stay fp32). Benchmarks only: never imported by tests.

  python scripts/torch_bench.py vit-bench --arch vit_small_patch14_dinov2 --size 224 --batch 8 --steps 5 --precision bf16
  python scripts/torch_bench.py stage2-bench --dim 384 --grid 16 --batch 8 --steps 10 --precision bf16
  python scripts/torch_bench.py stage2-infer --dim 384 --grid 16 --batch 8 --steps 10 --precision bf16
"""
import argparse
import contextlib
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def autocast(precision):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Block(nn.Module):
    """timm's Block as DVT's denoiser builds it (pre-norm, qkv bias, MLP ratio 4, exact GELU)."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        x = x + self.proj(a)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


def stage2(a, train):
    torch.manual_seed(0)
    blk = Block(a.dim, max(1, a.dim // 64))
    pos = nn.Parameter(torch.randn(1, a.grid * a.grid, a.dim) * 0.02)
    opt = torch.optim.AdamW(list(blk.parameters()) + [pos], lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-5)
    x = torch.randn(a.batch, a.grid * a.grid, a.dim)
    y = torch.randn(a.batch, a.grid * a.grid, a.dim)
    times = []
    for i in range(a.steps + 2):
        t0 = time.time()
        if train:
            with autocast(a.precision):
                p = blk(x + pos)
            p = p.float()
            loss = F.mse_loss(p, y) + 1 - F.cosine_similarity(p, y, dim=-1).mean()
            opt.zero_grad(); loss.backward(); opt.step()
        else:
            with torch.no_grad(), autocast(a.precision):
                blk(x + pos).float()
        if i >= 2:
            times.append(time.time() - t0)
    times.sort()
    med = times[len(times) // 2]
    if train:
        print(f"ms_per_step {1000 * med:.2f}")
    else:
        print(f"maps_per_s {a.batch / med:.2f}")


def vit_bench(a):
    import timm
    m = timm.create_model(a.arch, pretrained=False, num_classes=0, dynamic_img_size=True, img_size=a.size).eval()
    x = torch.randn(a.batch, 3, a.size, a.size)
    with torch.no_grad(), autocast(a.precision):
        m.forward_intermediates(x, indices=[len(m.blocks) - 1], norm=True, intermediates_only=True)
        t0 = time.time()
        for _ in range(a.steps):
            m.forward_intermediates(x, indices=[len(m.blocks) - 1], norm=True, intermediates_only=True)
    dt = time.time() - t0
    print(f"images_per_s {a.batch * a.steps / dt:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ["stage2-bench", "stage2-infer"]:
        s = sub.add_parser(name)
        s.add_argument("--dim", type=int, default=384); s.add_argument("--grid", type=int, default=16)
        s.add_argument("--batch", type=int, default=8); s.add_argument("--steps", type=int, default=10)
        s.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    vb = sub.add_parser("vit-bench")
    vb.add_argument("--arch", default="vit_small_patch14_dinov2"); vb.add_argument("--size", type=int, default=224)
    vb.add_argument("--batch", type=int, default=8); vb.add_argument("--steps", type=int, default=5)
    vb.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    a = ap.parse_args()
    print(f"torch {torch.__version__} threads {torch.get_num_threads()} precision {a.precision}", flush=True)
    if a.cmd == "vit-bench":
        vit_bench(a)
    else:
        stage2(a, train=a.cmd == "stage2-bench")
