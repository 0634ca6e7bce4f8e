"""Tiny Hugging Face transformers ViTs at random init, saved as `save_pretrained` writes them,
with their outputs at a square and a non-square input: Tests/Fixtures/hf/<name>/ holds
config.json, model.safetensors, io.safetensors and meta.json (some also v5_state_dict.pth, the
module's own `state_dict()` under transformers-5 names, saved with torch.save). The Swift side
(Tests/VisionTests/TransformersLayoutTests.swift) loads each folder with `--weights DIR` rules
and compares features with the outputs here.

Outside CI, in a throwaway venv (no network at test time; the fixtures are committed):
    python3 -m venv /work/venvs/hf
    /work/venvs/hf/bin/pip install torch transformers safetensors
    /work/venvs/hf/bin/python scripts/make_hf_fixtures.py Tests/Fixtures/hf

io.safetensors keys, per case k (input NCHW float32, already normalised):
    inputK                        (1, 3, H, W)
    inputK.last_hidden_state      (1, N, C) transformers' `last_hidden_state` (after the final
                                  norm, except CLIP, whose last_hidden_state is before it)
    inputK.final_norm             (1, N, C) CLIP only: post_layernorm applied to every token
    inputK.hidden.L               (1, N, C) output of block L (0-based), no final norm
Tokens in transformers' order: [cls, registers or distillation token, patches] (SigLIP: patches).
"""
import json
import os
import sys

import torch
import transformers as T
from safetensors.torch import save_file

SEED = 20240923


def perturb(model, seed):
    """Every parameter random (transformers' init leaves biases at 0 and layer scales at 1), so
    a wrongly mapped tensor cannot hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("lambda1"):
                p.copy_(0.5 + 0.2 * noise)  # layer scale around 0.5
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * noise)
            elif p.dim() >= 2 or name.endswith("bias"):
                p.copy_(0.08 * noise)
            else:
                p.copy_(0.3 * noise)  # tokens, class embedding, 1-D params
    return model


# name: (builder, pretrain image size, patch, cases [(H, W)], layers compared, extras)
def specs():
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    return {
        "dinov2_tiny": (lambda: T.Dinov2Model(T.Dinov2Config(**common, image_size=56, patch_size=14, mlp_ratio=2)),
                        [(70, 70), (84, 56)], {"v5_pth": True}),
        "dinov2_swiglu_tiny": (lambda: T.Dinov2Model(T.Dinov2Config(**common, image_size=56, patch_size=14, mlp_ratio=4,
                                                                    use_swiglu_ffn=True)),
                               [(70, 70), (84, 56)], {}),
        "dinov2_reg_tiny": (lambda: T.Dinov2WithRegistersModel(T.Dinov2WithRegistersConfig(
                                **common, image_size=56, patch_size=14, mlp_ratio=2, num_register_tokens=4)),
                            [(70, 70), (84, 56)], {}),
        "dinov3_tiny": (lambda: T.DINOv3ViTModel(T.DINOv3ViTConfig(**common, intermediate_size=64, image_size=48, patch_size=16,
                                                                   num_register_tokens=2)),
                        [(64, 64), (80, 48)], {}),
        "vit_tiny": (lambda: T.ViTModel(T.ViTConfig(**common, intermediate_size=64, image_size=48, patch_size=16)),
                     [(64, 64), (80, 48)], {"interpolate": True, "v5_pth": True}),
        "deit_tiny": (lambda: T.DeiTModel(T.DeiTConfig(**common, intermediate_size=64, image_size=48, patch_size=16)),
                      [(64, 64), (80, 48)], {"interpolate": True}),
        "clip_tiny": (lambda: T.CLIPVisionModel(T.CLIPVisionConfig(**common, intermediate_size=64, image_size=48, patch_size=16)),
                      [(64, 64), (80, 48)], {"interpolate": True, "clip": True}),
        "siglip_tiny": (lambda: T.SiglipVisionModel(T.SiglipVisionConfig(**common, intermediate_size=64, image_size=48,
                                                                          patch_size=16)),
                        [(64, 64), (80, 48)], {"interpolate": True}),
    }


def main(out_root):
    for i, (name, (build, cases, extra)) in enumerate(specs().items()):
        torch.manual_seed(SEED + i)
        model = perturb(build(), SEED + 100 + i).eval()
        d = os.path.join(out_root, name)
        os.makedirs(d, exist_ok=True)
        model.save_pretrained(d)
        if extra.get("v5_pth"):
            torch.save(model.state_dict(), os.path.join(d, "v5_state_dict.pth"))
        g = torch.Generator().manual_seed(SEED + 200 + i)
        io, meta_cases = {}, []
        depth = model.config.num_hidden_layers
        for k, (h, w) in enumerate(cases):
            x = torch.randn(1, 3, h, w, generator=g)
            kw = {"interpolate_pos_encoding": True} if extra.get("interpolate") else {}
            with torch.no_grad():
                out = model(pixel_values=x, output_hidden_states=True, **kw)
            hs = out.hidden_states
            # hidden_states = (embeddings, block 0 output, ..., block depth-1 output).
            assert len(hs) == depth + 1, (name, len(hs))
            key = f"input{k}"
            io[key] = x.contiguous()
            io[f"{key}.last_hidden_state"] = out.last_hidden_state.clone(memory_format=torch.contiguous_format)
            for layer in range(depth):
                io[f"{key}.hidden.{layer}"] = hs[layer + 1].clone(memory_format=torch.contiguous_format)
            if extra.get("clip"):
                with torch.no_grad():
                    io[f"{key}.final_norm"] = model.vision_model.post_layernorm(out.last_hidden_state).contiguous() \
                        if hasattr(model, "vision_model") else model.post_layernorm(out.last_hidden_state).contiguous()
            meta_cases.append({"input": key, "height": h, "width": w})
        save_file(io, os.path.join(d, "io.safetensors"))
        meta = {
            "class": type(model).__name__,
            "model_type": model.config.model_type,
            "transformers_version": T.__version__,
            "torch_version": torch.__version__,
            "depth": depth,
            "interpolate_pos_encoding": bool(extra.get("interpolate")),
            "last_hidden_state_has_final_norm": not extra.get("clip", False),
            "cases": meta_cases,
            "tolerance": "max abs error <= 1e-5",
        }
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=2)
        sizes = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{name}: {type(model).__name__}, {sizes} bytes")


def resample_fixture(out_root):
    """torch's non-antialiased bicubic (upsample_bicubic2d) on a small (1, 3, 5, 6) grid, by
    output size and by scale factor, for Resize.bicubicTorch (Tests/VisionTests/
    TransformersLayoutTests.swift): `input`, `size.HxW`, `scale.SYxSX.HxW`."""
    g = torch.Generator().manual_seed(SEED + 999)
    x = torch.randn(1, 3, 5, 6, generator=g)
    out = {"input": x}
    for h, w in [(7, 9), (3, 4), (8, 3), (5, 6), (2, 11), (1, 1)]:
        out[f"size.{h}x{w}"] = torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)
    for sy, sx in [(1.5, 2.25), (0.7, 1.3)]:
        y = torch.nn.functional.interpolate(x, scale_factor=(sy, sx), mode="bicubic", align_corners=False)
        out[f"scale.{sy}x{sx}.{y.shape[2]}x{y.shape[3]}"] = y
    # The scale-factor resize with the +0.1 offset of facebookresearch/dinov2 and of older
    # transformers Dinov2 (scale_factor=((h + 0.1) / sqrt(N), (w + 0.1) / sqrt(N))), from 4 x 4.
    g0 = 4
    p = torch.randn(1, 3, g0, g0, generator=g)
    out["offset_input"] = p
    for gh, gw in [(5, 5), (6, 3), (2, 2)]:
        y = torch.nn.functional.interpolate(p, scale_factor=(float((gh + 0.1) / g0), float((gw + 0.1) / g0)),
                                            mode="bicubic", align_corners=False)
        assert y.shape[2:] == (gh, gw), y.shape
        out[f"offset.{gh}x{gw}"] = y
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(out_root, "bicubic_resample.safetensors"),
              metadata={"torch": torch.__version__})


if __name__ == "__main__":
    root = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/hf"
    main(root)
    resample_fixture(root)
