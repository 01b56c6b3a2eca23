"""Writes scripts/polyp/validation-split.json: the held-out validation images of train.py (seed 0) and
verifier.py (split_ids), so that the Node evaluation scripts (npm run eval:live -- --split val) use the same
images for choices made before the test split is read.

  /usr/bin/python3 scripts/polyp/validation_split.py
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from verifier import split_ids  # noqa: E402

kvasir, polyp_free = split_ids()
out = {
    "about": "The validation split of the polyp detector's training (scripts/polyp/train.py --seed 0, verifier.py "
             "split_ids): 80 Kvasir-SEG train images and 60 polyp-free HyperKvasir TRAIN frames held out from training, "
             "for choices made before the test split is read (checkpoints, thresholds, the tracker). Written by "
             "scripts/polyp/validation_split.py from the same seeded permutations; never edit by hand.",
    "kvasirTrainIds": sorted(kvasir),
    "polypFreeTrainFiles": sorted(polyp_free),
}
with open(os.path.join(HERE, "validation-split.json"), "w") as f:
    json.dump(out, f, indent=1)
print(len(out["kvasirTrainIds"]), "Kvasir-SEG images,", len(out["polypFreeTrainFiles"]), "polyp-free frames")
