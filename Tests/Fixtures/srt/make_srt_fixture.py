"""Golden SRT outputs for SRTConformanceTests, computed the way the official SRT code does it.

Uses the tiny DINOv2 fixture (../vit/dinov2_small_tiny: weights and the 98x84 input1), translates
the image with torchvision TF.affine for every shift, takes block-3 features after the final
norm, upsamples them with F.interpolate(scale_factor=14, nearest), translates them back, and
aggregates: mean = sum / number of views (zeros included), median = torch.median (lower middle).
Default weighting = [(0,0)] + the whole grid; "uniform" = the grid only.
Run from this folder: python make_srt_fixture.py  (needs torch, torchvision, timm, safetensors)
"""
import json
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
import timm
from safetensors.numpy import load_file, save_file

vit = "../vit/dinov2_small_tiny/"
meta = json.load(open(vit + "meta.json"))
m = timm.create_model(meta["timm_arch"], pretrained=False, num_classes=0, dynamic_img_size=True, **meta["timm_kwargs"]).eval()
m.load_state_dict({k: torch.from_numpy(v) for k, v in load_file(vit + "weights.safetensors").items()}, strict=False)
img = torch.from_numpy(load_file(vit + "io.safetensors")["input1"])  # (1, 3, 98, 84)
p, layer, dx, dy = 14, 3, 2, 1


def srt_stack(uniform):
    shifts = ([] if uniform else [(0, 0)]) + [(i, j) for i in range(-dy, dy + 1) for j in range(-dx, dx + 1)]
    views = []
    with torch.no_grad():
        for i, j in shifts:
            v = TF.affine(img, angle=0.0, translate=[j, i], scale=1.0, shear=[0.0])
            f = m.forward_intermediates(v, indices=[layer], norm=True, intermediates_only=True)[0]
            up = F.interpolate(f, scale_factor=p, mode="nearest")
            views.append(TF.affine(up, angle=0.0, translate=[-j, -i], scale=1.0, shear=[0.0]))
    return torch.cat(views)  # (N, C, Gh*p, Gw*p)


def hwc(x):
    return np.ascontiguousarray(x[0].permute(1, 2, 0).numpy(), dtype=np.float32)


stack = srt_stack(False)
mean = stack.sum(0, keepdim=True) / stack.shape[0]
median = stack.median(0, keepdim=True).values
uniform = srt_stack(True)
out = {
    "token_mean": hwc(F.avg_pool2d(mean, p)),
    "fine2_mean": hwc(F.avg_pool2d(mean, p // 2)),
    "token_median": hwc(F.avg_pool2d(median, p)),
    "uniform_token_mean": hwc(F.avg_pool2d(uniform.mean(0, keepdim=True), p)),
}
save_file(out, "expected.safetensors", metadata={"dx": str(dx), "dy": str(dy), "layer": str(layer),
                                                  "input": "dinov2_small_tiny io input1[0]",
                                                  "timm": timm.__version__, "torch": torch.__version__})
print({k: v.shape for k, v in out.items()})
