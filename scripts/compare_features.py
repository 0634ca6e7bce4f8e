"""Compare two feature trees written by `dvt extract` (same images, e.g. --precision fp32 and
bf16): per image the minimum token cosine and the error norm ||a - b|| / ||b||, then the
minimum / maximum over all images. numpy only; used for docs/precision.md, not by tests.

  python scripts/compare_features.py OUT_BF16 OUT_FP32
"""
import pathlib
import sys

import numpy as np

a_root, b_root = map(pathlib.Path, sys.argv[1:3])
worst_cos, worst_rel, mean_cos, n = 1.0, 0.0, [], 0
for fa in sorted(a_root.rglob("*.npy")):
    fb = b_root / fa.relative_to(a_root)
    a = np.load(fa).astype(np.float64).reshape(-1, np.load(fa).shape[-1])
    b = np.load(fb).astype(np.float64).reshape(a.shape)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    rel = np.linalg.norm(a - b) / np.linalg.norm(b)
    print(f"{fa.relative_to(a_root)}: tokens {a.shape[0]} min_cos {cos.min():.6f} mean_cos {cos.mean():.6f} rel_err {rel:.3e}")
    worst_cos, worst_rel = min(worst_cos, cos.min()), max(worst_rel, rel)
    mean_cos.append(cos.mean()); n += 1
print(f"images {n} min_token_cosine {worst_cos:.6f} mean_token_cosine {np.mean(mean_cos):.6f} max_rel_err {worst_rel:.3e}")
