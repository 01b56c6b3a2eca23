"""The whole polyp pipeline on the validation split, as the server runs it: a detector .onnx, its
post-processing (mask threshold, min area, seeds), then the box verifier .onnx on 64-px crops of each box
(verifier.py's crop_box, which box-verifier.ts matches value for value) and its gate. Both models run in
onnxruntime-node (run_onnx.mjs). The validation split is train.py's with seed 0 (80 Kvasir-SEG images held
out; 60 polyp-free frames, seed 2); the test splits are never read here.

  /usr/bin/python3 scripts/polyp/pipeline_val.py --detector models/polyp-detector-1.2.0.onnx --threshold 0.858
  /usr/bin/python3 scripts/polyp/pipeline_val.py --detector /tmp/polyp/cand.onnx            # threshold: best F1

Prints the Kvasir val AP50 of the gated boxes, the mixed AP50 (a box on a polyp-free frame is a false
positive), polyps found and polyp-free frames with a box at the operating threshold (given, or the best F1
on the mixed set of gated boxes).
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import common  # noqa: E402
from verifier import S, STRIDE, crop_box, probs_of, run_onnx, split_ids  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--detector", required=True, action="append",
               help="a detector .onnx; given twice or more, their probability maps are averaged (an ensemble)")
p.add_argument("--verifier", default=os.path.join(REPO, "models", "polyp-verifier-1.3.0.onnx"))
p.add_argument("--gate", type=float, default=0.05)
p.add_argument("--mask-threshold", type=float, default=0.5)
p.add_argument("--min-area-fraction", type=float, default=0.002)
p.add_argument("--seed-threshold", type=float, default=0.9)
p.add_argument("--threshold", type=float, default=None, help="operating threshold (default: best F1, mixed val)")
args = p.parse_args()

val_k, val_n = split_ids()
kd, nd = common.build_cache("train", S), common.build_negative_cache("train", S)
_, meta = common.list_ids("train")
sets = []
for d, chosen, tag in ((kd, val_k, "kval"), (nd, val_n, "nval")):
    idx = [k for k, i in enumerate(d["ids"]) if i in chosen]
    probs = np.mean([probs_of(os.path.abspath(det), d["images"][idx], tag) for det in args.detector], axis=0)
    sets.append((d, idx, probs))

# Every box of both sets, with its crop from the letterboxed input the detector saw.
boxes, crops = [], []
for which, (d, idx, probs) in enumerate(sets):
    for k, i in enumerate(idx):
        w, h = d["sizes"][i]
        sc = d["scales"][i]
        for score, box in common.postprocess(probs[k], STRIDE, sc, w, h, args.mask_threshold, args.min_area_fraction,
                                             seed_threshold=args.seed_threshold):
            boxes.append((which, k, score, box))
            crops.append(crop_box(d["images"][i], [v * sc for v in box]))
if crops:
    ver = run_onnx(os.path.abspath(args.verifier), np.stack(crops), "crops", threads=1)
else:
    ver = np.zeros(0)


def dets_of(which, gate):
    d, idx, _ = sets[which]
    out = [[] for _ in idx]
    for (wh, k, score, box), q in zip(boxes, ver):
        if wh == which and q >= gate:
            out[k].append((score, box))
    return out


gts = [common.gt_boxes(meta[kd["ids"][i]]) for i in sets[0][1]]
result = {}
for gate in (0.0, args.gate):
    dk, dn = dets_of(0, gate), dets_of(1, gate)
    mixed_d, mixed_g = dk + dn, gts + [np.zeros((0, 4))] * len(dn)
    t = args.threshold if args.threshold is not None else common.best_f1_threshold(mixed_d, mixed_g)["threshold"]
    op = common.pr_at_threshold(dk, gts, t)
    result["verifier gate %.2f" % gate if gate > 0 else "no verifier"] = dict(
        kvasir_ap50=round(common.average_precision(dk, gts, 0.5), 4),
        kvasir_ap50_95=round(float(np.mean([common.average_precision(dk, gts, u) for u in np.arange(0.5, 0.951, 0.05)])), 4),
        mixed_ap50=round(common.average_precision(mixed_d, mixed_g, 0.5), 4),
        threshold=t, polyps_found=op["tp"], polyps=int(sum(len(g) for g in gts)), false_boxes_on_polyp_images=op["fp"],
        polyp_free_frames_with_box=sum(1 for dd in dn if any(s >= t for s, _ in dd)), polyp_free_frames=len(dn))
print(json.dumps(dict(detector=args.detector, verifier=args.verifier, val_images=len(gts), **result), indent=1))
