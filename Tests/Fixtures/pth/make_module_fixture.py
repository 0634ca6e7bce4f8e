# Generates Tests/Fixtures/pth/module_state_dict.pth (run once by hand with PyTorch; never in CI).
import torch, collections, json
torch.manual_seed(0)
lin = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
sd = lin.state_dict()                      # OrderedDict with a _metadata attribute (BUILD)
base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
obj = {
    "state_dict": sd,
    "param": torch.nn.Parameter(torch.tensor([1.5, -2.0])),   # _rebuild_parameter
    "transposed": base.t(),                                 # strides (1, 6)
    "slice": base[1:3, ::2],                                # offset 6, strides (6, 2)
    "half": torch.tensor([0.1, 65504.0, -6e-8], dtype=torch.float16),
    "long": torch.tensor([3, -7, 1 << 40]),
    "flags": torch.tensor([True, False, True]),
    "nested": [1, 2.5, "x", None, (True, False)],
}
torch.save(obj, "module_state_dict.pth")
print(json.dumps({k: v.tolist() for k, v in [("transposed", obj["transposed"]), ("slice", obj["slice"]), ("half", obj["half"].float()), ("long", obj["long"].float())]}))
print(sorted(sd.keys()), hasattr(sd, "_metadata"))
