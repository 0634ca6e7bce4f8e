"""Writes Tests/Fixtures/image/pil_bilinear_*.npy: golden Pillow BILINEAR resizes (the filter
torchvision's default transforms.Resize applies to a PIL image, DVT's stage-1 base resize) of a
seeded random RGB image, for the Swift tests. Values are the uint8 pixels stored as float32.

    python scripts/make_resize_fixture.py [OUT_DIR]
"""
import os
import sys

import numpy as np
from PIL import Image

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "image")
rng = np.random.default_rng(7)
src = rng.integers(0, 256, size=(23, 31, 3), dtype=np.uint8)  # (H, W, 3)
np.save(os.path.join(out, "pil_bilinear_in.npy"), src.astype("<f4"))
for h, w in ((12, 17), (40, 50), (23, 9)):  # shrink both, enlarge both, one axis only
    r = np.asarray(Image.fromarray(src).resize((w, h), Image.BILINEAR))
    np.save(os.path.join(out, f"pil_bilinear_{h}x{w}.npy"), r.astype("<f4"))
print("wrote", out, "PIL", Image.__version__)
