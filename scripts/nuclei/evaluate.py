"""Evaluate the nuclei detector with the exact mask-components post-processing of the contract.

Test set (final numbers; never used for selection):
  /usr/bin/python3 scripts/nuclei/evaluate.py --onnx models/nuclei-detector-1.0.0.onnx --split test \
      --threshold T --json /tmp/patho/test_metrics.json
Validation (held-out train tiles of a run; used for the operating threshold / post-processing choice):
  /usr/bin/python3 scripts/nuclei/evaluate.py --onnx ... --split val --run-dir /tmp/patho/run1 --tune

Backend: the .onnx runs in onnxruntime-node (the server's runtime) via scripts/polyp/run_onnx.mjs.
Matching rules:
  * centroid P/R/F1: detections with score >= threshold, descending score, greedy; a detection is a TP when its
    box centre lies within --radius px (default 6) of a not-yet-matched GT centroid (nearest taken).
  * AP50 / AP50:95: boxes, greedy best-IoU match (scripts/polyp/common.py average_precision), all detections.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import common  # noqa: E402

pc = common.pc
p = argparse.ArgumentParser()
p.add_argument("--onnx", default=os.path.join(REPO, "models", "nuclei-detector-1.0.0.onnx"))
p.add_argument("--stride", type=int, default=2)
p.add_argument("--split", choices=["test", "val"], default="test")
p.add_argument("--run-dir", default="/tmp/patho/run1", help="for --split val: where split.json is")
p.add_argument("--mask-threshold", type=float, default=0.5)
p.add_argument("--min-area", type=float, default=0.00015, help="minAreaFraction")
p.add_argument("--seed-threshold", type=float, default=None,
               help="split the mask with seeds at this threshold (common.seeded_components); default: plain components")
p.add_argument("--seed-channel", type=int, default=None,
               help="output channel of the seeds (a core channel); default: the last channel (the mask itself if one)")
p.add_argument("--threshold", type=float, default=None, help="operating minScore (default: best centroid F1)")
p.add_argument("--radius", type=float, default=6.0, help="centroid match radius, px")
p.add_argument("--tune", action="store_true", help="grid-search maskThreshold/minAreaFraction (val only)")
p.add_argument("--latency-runs", type=int, default=30)
p.add_argument("--json", default=None)
p.add_argument("--tmp", default="/tmp/patho/eval")
args = p.parse_args()
if args.tune and args.split == "test":
    sys.exit("refusing to tune on the test split")

import onnx  # noqa: E402
S = onnx.load(args.onnx).graph.input[0].type.tensor_type.shape.dim[1].dim_value
data = common.load_split("test" if args.split == "test" else "train", S)
if args.split == "val":
    with open(os.path.join(args.run_dir, "split.json")) as f:
        val_ids = set(json.load(f)["val"])
    idx = np.array([i for i, k in enumerate(data["ids"]) if k in val_ids])
else:
    idx = np.arange(len(data["ids"]))
imgs = np.ascontiguousarray(data["images"][idx])
N = len(idx)
os.makedirs(args.tmp, exist_ok=True)
fin = os.path.join(args.tmp, f"in_{args.split}.u8")
fout = os.path.join(args.tmp, f"out_{args.split}.f32")
imgs.tofile(fin)
r = subprocess.run(["node", os.path.join(REPO, "scripts", "polyp", "run_onnx.mjs"), os.path.abspath(args.onnx), fin,
                    str(N), str(S), fout, "2", str(args.latency_runs)], cwd=REPO, capture_output=True, text=True)
if r.returncode != 0:
    sys.exit("onnxruntime-node failed:\n" + r.stderr)
info = {"backend": "ort-node", "S": S, "n_images": int(N), "ort": json.loads(r.stdout.strip().splitlines()[-1])}
h = S // args.stride
channels = int(info["ort"]["outShape"][1])
out = np.fromfile(fout, dtype=np.float32).reshape(N, channels, h, h)
probs = out[:, 0]
seed_ch = channels - 1 if args.seed_channel is None else args.seed_channel
seeds = out[:, seed_ch]
info["channels"] = channels
gts = [data["gts"][i] for i in idx]
cents = [data["cents"][i] for i in idx]


def run(mt, ma, st=None):
    return common.postprocess_all(probs, data, idx, args.stride, mt, ma, st, seeds)


if args.tune:
    # seeds: none (plain components), then from a core channel at 0.3/0.5/0.7, or from the mask itself above
    # the mask threshold (models/nuclei-detector.md, "Splitting touching nuclei with seeds")
    seed_grid = [0.3, 0.5, 0.7] if seed_ch != 0 else [0.6, 0.7, 0.8, 0.85, 0.9]
    rows = []
    for mt in [0.3, 0.4, 0.5, 0.6]:
        for ma in [0.0, 0.00015, 0.0003, 0.0006]:
            for st in [None] + [v for v in seed_grid if seed_ch != 0 or v > mt]:
                dets = run(mt, ma, st)
                ap = pc.average_precision(dets, gts, 0.5)
                bf = common.best_centroid_threshold(dets, cents, args.radius)
                rows.append(dict(maskThreshold=mt, minAreaFraction=ma, seedThreshold=st, ap50=ap, best_f1=bf))
                print(f"mt {mt} ma {ma} seed {st}: ap50 {ap:.4f} bestF1 {bf['f1']:.4f} P {bf['precision']:.3f} "
                      f"R {bf['recall']:.3f} @ {bf['threshold']}", flush=True)
    info["tune"] = rows
    top = max(rows, key=lambda r: r["ap50"])
    print("best cell:", json.dumps({k: top[k] for k in ("maskThreshold", "minAreaFraction", "seedThreshold", "ap50")}),
          "F1", round(top["best_f1"]["f1"], 4), "@", top["best_f1"]["threshold"], flush=True)

dets = run(args.mask_threshold, args.min_area, args.seed_threshold)
bf = common.best_centroid_threshold(dets, cents, args.radius)
thr = bf["threshold"] if args.threshold is None else args.threshold
op = common.centroid_prf(dets, cents, thr, args.radius)
ts = np.arange(0.5, 0.951, 0.05)
ap_all = {f"{t:.2f}": pc.average_precision(dets, gts, t) for t in ts}
info.update(dict(split=args.split, maskThreshold=args.mask_threshold, minAreaFraction=args.min_area,
                 seedThreshold=args.seed_threshold, seedChannel=seed_ch if args.seed_threshold is not None else None,
                 ap50=ap_all["0.50"], ap50_95=float(np.mean(list(ap_all.values()))), ap_per_iou=ap_all,
                 box_iou50_at_threshold=pc.pr_at_threshold(dets, gts, thr, 0.5),
                 n_gt=int(sum(len(g) for g in gts)), n_dets=int(sum(len(d) for d in dets)),
                 centroid_at_threshold=op, centroid_best_f1=bf,
                 centroid_at_threshold_r4=common.centroid_prf(dets, cents, thr, 4.0),
                 centroid_at_threshold_r8=common.centroid_prf(dets, cents, thr, 8.0)))
print(json.dumps({k: v for k, v in info.items() if k != "tune"}, indent=1))
if args.json:
    with open(args.json, "w") as f:
        json.dump(info, f, indent=1)
