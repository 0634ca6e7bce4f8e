"""Checks `dvt convert` outputs in timm: for each, builds `timm.create_model(timm_arch,
pretrained=False, num_classes=0, **timm_kwargs)` from the file's metadata (safetensors metadata,
or OUT.timm.json beside a .pth), loads the state dict with strict=True, and, when a transformers
snapshot is given, compares timm's `forward_features` with transformers' last_hidden_state (CLIP:
post_layernorm on every token) on a seeded random input at the pretraining size.

    check_convert_timm.py [--tol 1e-4] CONVERTED[=SNAPSHOT_DIR] ...

Prints one line per file (tensors loaded, max abs difference); exits 1 when any load fails or a
difference is above --tol. One process for all files (torch/timm/transformers import once).
Needs torch, timm, safetensors, and transformers for the comparison.
"""
import argparse
import functools
import json
import sys

import torch
import timm
from safetensors import safe_open
from safetensors.torch import load_file


def metadata(path):
    if path.endswith(".safetensors"):
        with safe_open(path, "pt") as f:
            return f.metadata()
    with open(path + ".timm.json") as f:
        return json.load(f)


def build(meta):
    kwargs = json.loads(meta["timm_kwargs"])
    if kwargs.get("mlp_layer") == "swiglupacked":
        kwargs["mlp_layer"] = timm.layers.SwiGLUPacked
    eps = float(meta["ln_eps"])
    kwargs["norm_layer"] = functools.partial(torch.nn.LayerNorm, eps=eps)
    if "patch_size" in kwargs and "dinov3" in meta["timm_arch"]:
        kwargs["dynamic_img_size"] = True
    model = timm.create_model(meta["timm_arch"], pretrained=False, num_classes=0, **kwargs)
    return model.eval(), kwargs


def check(converted, snapshot, tol):
    meta = metadata(converted)
    model, kwargs = build(meta)
    sd = load_file(converted) if converted.endswith(".safetensors") else torch.load(converted, weights_only=True)
    model.load_state_dict(sd, strict=True)  # raises on any missing, unexpected or mis-shaped key
    line = f"{converted}: loaded strict into timm {meta['timm_arch']} ({len(sd)} tensors)"
    if snapshot is None:
        print(line)
        return True
    import transformers
    ref = transformers.AutoModel.from_pretrained(snapshot).eval()
    size = kwargs["img_size"]
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = model.forward_features(x)
        want = ref(pixel_values=x).last_hidden_state
        if type(ref).__name__ == "CLIPVisionModel":
            want = ref.vision_model.post_layernorm(want) if hasattr(ref, "vision_model") else ref.post_layernorm(want)
    if got.shape != want.shape:
        print(f"{line}; shape mismatch: timm {tuple(got.shape)} vs transformers {tuple(want.shape)}")
        return False
    diff = (got - want).abs().max().item()
    print(f"{line}; max abs difference timm vs transformers: {diff:.3g}")
    return diff <= tol


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", help="CONVERTED or CONVERTED=SNAPSHOT_DIR")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    ok = True
    for item in a.files:
        converted, _, snapshot = item.partition("=")
        try:
            ok &= check(converted, snapshot or None, a.tol)
        except Exception as e:  # report every file, then fail
            print(f"{converted}: FAILED: {type(e).__name__}: {e}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
