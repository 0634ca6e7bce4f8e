"""Writes Tests/Fixtures/stage1/tiny_field.safetensors: golden values of the PyTorch port of DVT
stage 1 (scripts/reference/dvt_torch.py) for a tiny neural field and denoiser, for the Swift tests.

    python scripts/make_stage1_fixture.py PATH/TO/dvt_torch.py [OUT.safetensors]

Contents (float32):
  grid.params (T, F), mlp.{0,2}.{weight,bias}            field parameters (torch names)
  shared_artifacts (h, w, C)                             G, channel-last (torch stores (1, C, h, w))
  residual_predictor.{0,2,4}.{weight,bias}               h
  coords (N, 2)                                          query points in [0, 1] (incl. 0 and 1)
  field_out (N, C)                                       F(coords)
  raw (B, C), global_coords (B, 2), view_coords (B, 2)   a loss batch
  loss_phase1, loss_phase2 (1)                           SingleImageDenoiser loss, residual off / on
  grad_phase1.<key>, grad_phase2.<key>                   gradients of that loss (G channel-last)
  train.raw (S, B, C), train.global_coords (S, B, 2),    S steps of batches for a short training run
  train.view_coords (S, B, 2)
  train_final.<key>                                      every parameter after those S steps
  train_loss (S)                                         the loss of each step
The training run starts from the parameters above and follows DVT's stage-1 optimiser exactly as
main_img_denoising.py does it (lines 48-55, 88-89): torch Adam, betas (0.9, 0.99), eps 1e-15,
weight decay 1e-5, and the loss multiplied by GradScaler's 2**10 before backward and never
unscaled; phase 1 (G trained, residual predictor off), constant lr 0.01.
The layout (levels 3, 2 features, 2^6 table, base 4, finest 32) has dense and hashed levels; its
float32 (tiny-cuda-nn) and float64 level geometry agree.
"""
import importlib.util
import os
import sys

import torch
from safetensors.torch import save_file

ref_path = sys.argv[1]
out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
    os.path.dirname(__file__), "..", "Tests", "Fixtures", "stage1", "tiny_field.safetensors")
spec = importlib.util.spec_from_file_location("dvt_torch", ref_path)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)

torch.manual_seed(1234)
C, H, W, N, B = 8, 3, 4, 37, 24
field = ref.NeuralFeatureField(C, levels=3, feats=2, log2_table=6, base=4, finest=32)
with torch.no_grad():
    # Larger than the ±1e-4 init so the encoding matters in the output.
    field.grid.params.uniform_(-1, 1)
den = ref.SingleImageDenoiser(H, W, C)
with torch.no_grad():
    den.shared_artifacts.normal_(0, 0.5)

coords = torch.rand(N, 2)
coords[0] = torch.tensor([0.0, 0.0]); coords[1] = torch.tensor([1.0, 1.0]); coords[2] = torch.tensor([1.0, 0.0])
with torch.no_grad():
    field_out = field(coords)

raw = torch.randn(B, C)
global_coords = torch.rand(B, 2)
view_coords = torch.rand(B, 2) * 2 - 1

tensors = {
    "coords": coords, "field_out": field_out, "raw": raw,
    "global_coords": global_coords, "view_coords": view_coords,
    "grid.params": field.grid.params.detach().clone(),
    "shared_artifacts": den.shared_artifacts.detach()[0].permute(1, 2, 0).contiguous(),
}
for k, v in field.mlp.state_dict().items():
    tensors["mlp." + k] = v.clone()
for k, v in den.residual_predictor.state_dict().items():
    tensors["residual_predictor." + k] = v.clone()

named = {"grid.params": field.grid.params, "mlp.0.weight": field.mlp[0].weight, "mlp.2.bias": field.mlp[2].bias,
         "shared_artifacts": den.shared_artifacts, "residual_predictor.0.weight": den.residual_predictor[0].weight,
         "residual_predictor.4.bias": den.residual_predictor[4].bias}
for phase, on in (("phase1", False), ("phase2", True)):
    den.residual_on = on
    for p in named.values():
        p.grad = None
    loss = den(raw, global_coords, field, view_coords)
    loss.backward()
    tensors["loss_" + phase] = loss.detach().reshape(1)
    for k, p in named.items():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        if k == "shared_artifacts":
            g = g[0].permute(1, 2, 0)
        tensors[f"grad_{phase}.{k}"] = g.contiguous().clone()

# A short training run from the same initialisation with DVT's optimiser and loss scale.
S, LOSS_SCALE = 20, 2.0 ** 10
train_raw = torch.randn(S, B, C)
train_gc = torch.rand(S, B, 2)
train_vc = torch.rand(S, B, 2) * 2 - 1
den.residual_on = False
params = list(den.parameters()) + list(field.parameters())
opt = torch.optim.Adam(params, lr=0.01, eps=1e-15, weight_decay=1e-5, betas=(0.9, 0.99))
losses = []
for t in range(S):
    opt.zero_grad(set_to_none=True)
    loss = den(train_raw[t], train_gc[t], field, train_vc[t])
    (loss * LOSS_SCALE).backward()
    opt.step()
    losses.append(loss.item())
tensors["train.raw"], tensors["train.global_coords"], tensors["train.view_coords"] = train_raw, train_gc, train_vc
tensors["train_loss"] = torch.tensor(losses)
tensors["train_final.grid.params"] = field.grid.params.detach().clone()
for k, v in field.mlp.state_dict().items():
    tensors["train_final.mlp." + k] = v.clone()
tensors["train_final.shared_artifacts"] = den.shared_artifacts.detach()[0].permute(1, 2, 0).contiguous()
for k, v in den.residual_predictor.state_dict().items():
    tensors["train_final.residual_predictor." + k] = v.clone()

save_file({k: v.contiguous().float() for k, v in tensors.items()}, out)
print("wrote", out, {k: tuple(v.shape) for k, v in tensors.items()})
