"""Checks a `dvt convert` output in timm: builds `timm.create_model(timm_arch, pretrained=False,
num_classes=0, **timm_kwargs)` from the file's metadata (safetensors metadata, or OUT.timm.json
beside a .pth), loads the state dict with strict=True, and compares timm's features with a
reference (the transformers model of a snapshot folder, or features dvt wrote).

    check_convert_timm.py CONVERTED [--hf SNAPSHOT_DIR] [--size H W] [--expect FEATURES.safetensors]

--hf: run the transformers model of SNAPSHOT_DIR (AutoModel) on the same random input and compare
      every token of the last block after the final norm (CLIP: post_layernorm on every token).
--expect: a safetensors file with `input` (1, 3, H, W) and `tokens` (1, N, C): compare timm's
      `forward_features(input)` with `tokens`.
Prints the max abs difference; exits 1 when it is above --tol (default 1e-4) or loading fails.
Needs torch, timm, safetensors (and transformers for --hf).
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("converted")
    ap.add_argument("--hf")
    ap.add_argument("--expect")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    meta = metadata(a.converted)
    model, kwargs = build(meta)
    sd = load_file(a.converted) if a.converted.endswith(".safetensors") else torch.load(a.converted, weights_only=True)
    missing, unexpected = model.load_state_dict(sd, strict=True)  # raises on any mismatch
    print(f"{a.converted}: loaded strict into timm {meta['timm_arch']} ({len(sd)} tensors)")
    if a.hf:
        import transformers
        ref = transformers.AutoModel.from_pretrained(a.hf).eval()
        size = kwargs["img_size"]
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            got = model.forward_features(x)
            out = ref(pixel_values=x)
            want = out.last_hidden_state
            if type(ref).__name__ == "CLIPVisionModel":
                want = ref.vision_model.post_layernorm(want) if hasattr(ref, "vision_model") else ref.post_layernorm(want)
    elif a.expect:
        e = load_file(a.expect)
        with torch.no_grad():
            got = model.forward_features(e["input"])
        want = e["tokens"]
    else:
        return 0
    if got.shape != want.shape:
        print(f"shape mismatch: timm {tuple(got.shape)} vs reference {tuple(want.shape)}")
        return 1
    diff = (got - want).abs().max().item()
    print(f"max abs difference timm vs reference: {diff:.3g}")
    return 0 if diff <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
