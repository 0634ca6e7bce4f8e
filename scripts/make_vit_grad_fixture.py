"""Writes Tests/Fixtures/vit_grad/<family>.safetensors: the gradient of every parameter of a tiny
timm ViT (weights from Tests/Fixtures/vit/<family>/weights.safetensors) under the loss
sum(features · r), where features = the last block's patch tokens after the final norm (what DVT
reads, NHWC) of the family's `input1` case (a non-square grid, so absolute position embeddings
are resampled) and r a seeded normal tensor of the same shape, stored as `r`. Gradient keys are
`grad.<timm parameter name>`; `loss` is the scalar loss. For the Swift ViT backward tests
(Tests/VisionTests/ViTGradientTests.swift); run outside CI, needs torch + timm + safetensors:

    /work/venv/bin/python scripts/make_vit_grad_fixture.py [OUT_DIR]
"""
import json
import os
import sys

import torch
import timm
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures")
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "vit_grad")
os.makedirs(out, exist_ok=True)
# Absolute pos-embed with resampling + layer scale; RoPE (DINOv3) + registers; EVA RoPE + SwiGLU
# + separate q/k/v; DINOv2-giant's packed SwiGLU.
FAMILIES = ["dinov2_small_tiny", "dinov3_s16_tiny", "eva02_b16_clip_tiny", "dinov2_giant_swiglu_tiny"]

torch.manual_seed(0)
for i, fam in enumerate(FAMILIES):
    src = os.path.join(ROOT, "vit", fam)
    meta = json.load(open(os.path.join(src, "meta.json")))
    model = timm.create_model(meta["timm_arch"], pretrained=False, num_classes=0, dynamic_img_size=True,
                              **meta["timm_kwargs"])
    state = load_file(os.path.join(src, "weights.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not missing, f"{fam}: missing {missing}"
    model = model.double().eval()  # float64 reference: the Swift float32 result is compared to it
    x = load_file(os.path.join(src, "io.safetensors"))["input1"].double()
    last = meta["timm_kwargs"]["depth"] - 1
    feats = model.forward_intermediates(x, indices=[last], norm=True, output_fmt="NCHW", intermediates_only=True)[0]
    feats = feats.permute(0, 2, 3, 1)  # (B, Gh, Gw, C), as the Swift ViTFeatures.patch
    g = torch.Generator().manual_seed(1000 + i)
    r = torch.randn(feats.shape, generator=g, dtype=torch.float64)
    loss = (feats * r).sum()
    model.zero_grad()
    loss.backward()
    tensors = {"r": r.float().contiguous(), "loss": loss.detach().float().reshape(1)}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue  # heads and other keys the feature path never reads
        tensors[f"grad.{name}"] = p.grad.float().contiguous()
    save_file(tensors, os.path.join(out, f"{fam}.safetensors"),
              metadata={"timm": timm.__version__, "torch": torch.__version__, "input": "input1", "layer": str(last)})
    print(fam, "loss", float(loss), len(tensors) - 2, "gradients", "ignored state keys", unexpected)
