"""Helpers of scripts/test-onnx-export.sh: inputs for the ONNX exports and their checks against
dvt's own outputs in onnxruntime. Needs numpy, onnxruntime and Pillow (the script's venv).

  maps DIR C HxW...                    random (H, W, C) float32 feature maps, DIR/<HxW>.npy
  denoiser MODEL MAPS_DIR DENOISED_DIR the ONNX denoiser on each map (as a batch of two) vs dvt denoise
  photo JPG HxW OUT.png                a photo resized with Pillow's bicubic, saved losslessly
  random-denoiser OUT.safetensors C HxW [BLOCKS]  a seeded random denoiser in the official layout
  extractor MODEL PNG RAW.npy DENOISED.npy  the ONNX extractor on the photo vs dvt extract / denoise
  reference MODEL IO.safetensors       the ONNX denoiser on a fixture's inputs vs PyTorch's outputs
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np

TOLERANCE = 1e-4  # max |onnx - dvt| / max |dvt|


def compare(what, got, want):
    if got.shape != want.shape:
        sys.exit(f"test-onnx-export: FAIL: {what}: shape {got.shape} != dvt's {want.shape}")
    abs_err = float(np.abs(got - want).max())
    rel = abs_err / max(float(np.abs(want).max()), 1e-30)
    print(f"test-onnx-export: {what}: max abs {abs_err:.3g}, rel {rel:.3g} (tolerance {TOLERANCE:g})")
    if not rel <= TOLERANCE:
        sys.exit(f"test-onnx-export: FAIL: {what}: relative error {rel:.3g} > {TOLERANCE:g}")


def session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def metadata(sess):
    return sess.get_modelmeta().custom_metadata_map


def grid(s):
    h, w = s.split("x")
    return int(h), int(w)


def cmd_maps(out, c, *grids):
    Path(out).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for g in grids:
        h, w = grid(g)
        np.save(Path(out) / f"{g}.npy", rng.standard_normal((h, w, int(c))).astype(np.float32))


def cmd_denoiser(model, maps, denoised):
    sess = session(model)
    meta = metadata(sess)
    for key in ["format", "architecture", "position_embedding_resampling", "toolkit", "source_sha256", "layer", "input_size"]:
        if key not in meta:
            sys.exit(f"test-onnx-export: FAIL: {model}: metadata_props has no '{key}' (has {sorted(meta)})")
    for f in sorted(Path(maps).glob("*.npy")):
        x = np.load(f)
        want = np.load(Path(denoised) / f.name)
        # A batch of two (the map and its negation) exercises the dynamic batch axis too.
        batch = np.stack([x, -x])
        y = sess.run(["denoised"], {"features": batch})[0]
        compare(f"denoiser grid {f.stem} (native {meta['noise_map_height']}x{meta['noise_map_width']})", y[0], want)
        if not np.isfinite(y[1]).all():
            sys.exit(f"test-onnx-export: FAIL: second batch item of {f.stem} is not finite")


def cmd_photo(jpg, size, out):
    from PIL import Image
    h, w = grid(size)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Image.open(jpg).convert("RGB").resize((w, h), Image.BICUBIC).save(out)


def write_safetensors(path, tensors, meta):
    header, blobs, offset = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        b = np.ascontiguousarray(t, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def cmd_random_denoiser(out, c, native, blocks="1"):
    """blocks > 1 names them as an nn.Sequential would (denoiser.<i>.*)."""
    c, blocks = int(c), int(blocks)
    gh, gw = grid(native)
    rng = np.random.default_rng(1)

    def linear(n_out, n_in):  # torch nn.Linear's init range
        k = 1 / np.sqrt(n_in)
        return rng.uniform(-k, k, (n_out, n_in)), rng.uniform(-k, k, n_out)

    t = {"pos_embed": rng.standard_normal((1, gh * gw, c)) * 0.5}
    for i in range(blocks):
        p = "denoiser." if blocks == 1 else f"denoiser.{i}."
        t[p + "norm1.weight"] = 1 + 0.1 * rng.standard_normal(c)
        t[p + "norm1.bias"] = 0.1 * rng.standard_normal(c)
        t[p + "attn.qkv.weight"], t[p + "attn.qkv.bias"] = linear(3 * c, c)
        t[p + "attn.proj.weight"], t[p + "attn.proj.bias"] = linear(c, c)
        t[p + "norm2.weight"] = 1 + 0.1 * rng.standard_normal(c)
        t[p + "norm2.bias"] = 0.1 * rng.standard_normal(c)
        t[p + "mlp.fc1.weight"], t[p + "mlp.fc1.bias"] = linear(4 * c, c)
        t[p + "mlp.fc2.weight"], t[p + "mlp.fc2.bias"] = linear(c, 4 * c)
    write_safetensors(out, {k: v.astype(np.float32) for k, v in t.items()},
                      {"noise_map_height": str(gh), "noise_map_width": str(gw), "vit_model": "random (test)"})


def read_safetensors(path):
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{path}: {name} is {info['dtype']}"
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(info["shape"])
    return out


def cmd_reference(model, io):
    """The fixtures' outputs come from the official DVT Denoiser in PyTorch (Tests/Fixtures)."""
    sess = session(model)
    tensors = read_safetensors(io)
    pairs = [(k, "output" + k[len("input"):]) for k in sorted(tensors) if k.startswith("input")]
    for inp, out in pairs:
        x = tensors[inp]
        y = sess.run(["denoised"], {"features": x})[0]
        compare(f"denoiser {Path(model).name} vs PyTorch ({Path(io).parent.name}/{Path(io).name} {inp}, grid {x.shape[1]}x{x.shape[2]})", y, tensors[out])


def cmd_extractor(model, png, raw, denoised):
    from PIL import Image
    sess = session(model)
    meta = metadata(sess)
    for key in ["format", "architecture", "vit_model", "layer", "input_size", "position_embedding_resampling",
                "toolkit", "vit_source_sha256", "denoiser_source_sha256"]:
        if key not in meta:
            sys.exit(f"test-onnx-export: FAIL: {model}: metadata_props has no '{key}' (has {sorted(meta)})")
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32) / np.float32(255)  # (H, W, 3)
    image = pixels.transpose(2, 0, 1)[None]                                                   # (1, 3, H, W)
    got_denoised, got_raw = sess.run(["denoised", "raw_features"], {"image": image})
    name = f"extractor {meta['vit_model']} layer {meta['layer']} input {image.shape[2]}x{image.shape[3]} ({meta['input_size']})"
    compare(name + ": raw features vs dvt extract", got_raw[0], np.load(raw))
    compare(name + ": denoised vs dvt extract + dvt denoise", got_denoised[0], np.load(denoised))


if __name__ == "__main__":
    commands = {"maps": cmd_maps, "denoiser": cmd_denoiser, "photo": cmd_photo,
                "random-denoiser": cmd_random_denoiser, "extractor": cmd_extractor,
                "reference": cmd_reference}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
