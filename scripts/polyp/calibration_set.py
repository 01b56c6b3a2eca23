"""Writes the calibration images of the int8 polyp detector (scripts/polyp/quantize.py, calibrate.mjs).

Training images only: 160 Kvasir-SEG training images outside the 80 held out for validation (seed 0, as
train.py splits them) and 40 polyp-free HyperKvasir TRAIN frames outside the 60 held out (seed 2),
chosen with seed 7, letterboxed to 256 (common.build_cache: PIL bilinear, as training).
usage: /usr/bin/python3 scripts/polyp/calibration_set.py OUT.u8   (writes uint8 [200, 256, 256, 3])
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/polyp/calib.u8"
src = common.build_cache("train", 256)
neg = common.build_negative_cache("train", 256)
tr_idx = np.sort(np.random.RandomState(0).permutation(len(src["ids"]))[80:])
neg_tr = np.sort(np.random.RandomState(2).permutation(len(neg["ids"]))[60:])
rng = np.random.RandomState(7)
ci = np.sort(rng.choice(tr_idx, 160, replace=False))
ni = np.sort(rng.choice(neg_tr, 40, replace=False))
images = np.ascontiguousarray(np.concatenate([src["images"][ci], neg["images"][ni]]))
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
images.tofile(out)
print(f"{out}: {images.shape[0]} images ({len(ci)} Kvasir-SEG training, {len(ni)} polyp-free training)")
