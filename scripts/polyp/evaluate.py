"""Evaluate the polyp detector with the exact post-processing of the contract.

Test set (final numbers; never used for selection):
  /usr/bin/python3 scripts/polyp/evaluate.py --onnx models/polyp-detector-1.0.0.onnx --split test \
      --threshold 0.6 --json /tmp/polyp/test_metrics.json
Validation (the 80 held-out train images of a run; used for threshold / post-processing choice):
  /usr/bin/python3 scripts/polyp/evaluate.py --onnx ... --split val --run-dir /tmp/polyp/run1 --tune
--negatives adds polyp-free HyperKvasir frames (shared/data/endoscopy-normal-hyperkvasir) as images with no
box: with --split val the run's held-out ones (split.json "neg_val"), with --split test the 175 of the
fixed test split. Their boxes are false positives in the same ranking ("mixed" AP), and the share of them
with a box at the operating threshold is reported.

Backends: 'ort-node' runs the .onnx with onnxruntime-node (the runtime the server uses; Python
onnxruntime is not installed in /usr/bin/python3); 'torch' runs the checkpoint through the same
ExportWrapper that is exported (needs --ckpt). 'auto' = ort-node if node + onnxruntime-node work.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import common  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--onnx", default=os.path.join(REPO, "models", "polyp-detector-1.0.0.onnx"))
p.add_argument("--ckpt", default=None)
p.add_argument("--flip-tta", action="store_true", help="torch backend only")
p.add_argument("--size", type=int, default=0, help="input S (default: read from the .onnx)")
p.add_argument("--stride", type=int, default=4)
p.add_argument("--split", choices=["test", "val"], default="test")
p.add_argument("--run-dir", default="/tmp/polyp/run1", help="for --split val: where split.json is")
p.add_argument("--backend", choices=["auto", "ort-node", "torch"], default="auto")
p.add_argument("--mask-threshold", type=float, default=0.5)
p.add_argument("--min-area", type=float, default=0.002, help="minAreaFraction")
p.add_argument("--threshold", type=float, default=None, help="operating minScore for P/R (default: best F1)")
p.add_argument("--seed-threshold", type=float, default=None,
               help="split the mask by seeds above this value first (common.seeded_components; the manifest's seedThreshold)")
p.add_argument("--tune-seeds", action="store_true",
               help="grid-search the seeded split instead (val only): maskThreshold {0.4, 0.5} x seeds {none, 0.8, 0.85, "
                    "0.9, 0.95}, minAreaFraction --min-area")
p.add_argument("--tune", action="store_true", help="grid-search maskThreshold/minAreaFraction (val only)")
p.add_argument("--latency-runs", type=int, default=30)
p.add_argument("--negatives", action="store_true", help="add polyp-free frames (see above)")
p.add_argument("--json", default=None)
p.add_argument("--tmp", default="/tmp/polyp/eval")
args = p.parse_args()
if (args.tune or args.tune_seeds) and args.split == "test":
    sys.exit("refusing to tune on the test split")

S = args.size
if not S:
    import onnx
    m = onnx.load(args.onnx)
    S = m.graph.input[0].type.tensor_type.shape.dim[1].dim_value
split_name = "test" if args.split == "test" else "train"
data = common.build_cache(split_name, S)


def indices(ids, key):
    """All of a test split; for --split val, those the run's split.json lists under `key`."""
    if args.split != "val":
        return np.arange(len(ids))
    with open(os.path.join(args.run_dir, "split.json")) as f:
        wanted = set(json.load(f)[key])
    return np.array([i for i, k in enumerate(ids) if k in wanted])


idx = indices(data["ids"], "val")
imgs = data["images"][idx]
neg = None
if args.negatives:
    neg = common.build_negative_cache("test" if args.split == "test" else "train", S)
    neg_idx = indices(neg["ids"], "neg_val")
    imgs = np.concatenate([imgs, neg["images"][neg_idx]])
imgs = np.ascontiguousarray(imgs)
N = len(imgs)

backend = args.backend
if backend == "auto":
    ok = shutil.which("node") and os.path.isdir(os.path.join(REPO, "node_modules", "onnxruntime-node"))
    backend = "ort-node" if ok else "torch"
info = {"backend": backend, "S": S, "n_images": int(N)}
if backend == "ort-node":
    os.makedirs(args.tmp, exist_ok=True)
    fin = os.path.join(args.tmp, f"in_{args.split}.u8")
    fout = os.path.join(args.tmp, f"out_{args.split}.f32")
    imgs.tofile(fin)
    r = subprocess.run(["node", os.path.join(HERE, "run_onnx.mjs"), os.path.abspath(args.onnx), fin, str(N), str(S),
                        fout, "2", str(args.latency_runs)], cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("onnxruntime-node failed:\n" + r.stderr)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    info["ort"] = res
    h = w = S // args.stride
    probs = np.fromfile(fout, dtype=np.float32).reshape(N, 1, h, w)[:, 0]
else:
    import torch
    from model import ExportWrapper, PolypNet
    torch.set_num_threads(2)
    ck = torch.load(args.ckpt, map_location="cpu")
    a = ck.get("args", {})
    net = PolypNet(tuple(int(v) for v in a.get("width", "32,32,64,96,160").split(",")),
                   tuple(int(v) for v in a.get("dec", "48,32").split(",")))
    net.load_state_dict(ck["model"])
    wrap = ExportWrapper(net, flip_tta=args.flip_tta).eval()
    out = []
    with torch.no_grad():
        for s in range(0, N, 8):
            out.append(wrap(torch.from_numpy(imgs[s:s + 8])).numpy()[:, 0])
        x1 = torch.from_numpy(imgs[:1])
        for _ in range(3):
            wrap(x1)
        ts = []
        for _ in range(args.latency_runs):
            t0 = time.perf_counter()
            wrap(x1)
            ts.append((time.perf_counter() - t0) * 1000)
    probs = np.concatenate(out)
    info["torch_latency_batch1_median_ms"] = float(np.median(ts))


def run(mt, ma, st=None):
    r = common.evaluate_probs(probs[:len(idx)], data, args.stride, idx, mt, ma, st)
    if neg is None:
        return r
    neg_dets = []
    for k, i in enumerate(neg_idx):
        w, h = neg["sizes"][i]
        neg_dets.append(common.postprocess(probs[len(idx) + k], args.stride, neg["scales"][i], w, h, mt, ma,
                                           seed_threshold=st))
    dets, gts = r["dets"] + neg_dets, r["gts"] + [np.zeros((0, 4))] * len(neg_dets)
    return dict(ap50=common.average_precision(dets, gts, 0.5),
                ap50_95=float(np.mean([common.average_precision(dets, gts, t) for t in np.arange(0.5, 0.951, 0.05)])),
                dets=dets, gts=gts, pos_ap50=r["ap50"], pos_ap50_95=r["ap50_95"], neg_dets=neg_dets)


if args.tune:
    rows = []
    for mt in [0.3, 0.4, 0.5, 0.6]:
        for ma in [0.002, 0.005, 0.01, 0.02]:
            r = run(mt, ma)
            bf = common.best_f1_threshold(r["dets"], r["gts"])
            row = dict(maskThreshold=mt, minAreaFraction=ma, ap50=r["ap50"], ap50_95=r["ap50_95"], best_f1=bf)
            if neg is not None:  # mixed AP above; the polyp images alone too
                row.update(pos_ap50=r["pos_ap50"], pos_ap50_95=r["pos_ap50_95"])
            rows.append(row)
            print(f"mt {mt} ma {ma}: ap50 {r['ap50']:.4f} ap50_95 {r['ap50_95']:.4f} "
                  + (f"(polyp images alone {r['pos_ap50']:.4f}) " if neg is not None else "")
                  + f"bestF1 {bf['f1']:.4f} @ {bf['threshold']}", flush=True)
    info["tune"] = rows

if args.tune_seeds:
    rows = []
    for mt in [0.4, 0.5]:
        for st in [None, 0.8, 0.85, 0.9, 0.95]:
            r = run(mt, args.min_area, st)
            bf = common.best_f1_threshold(r["dets"], r["gts"])
            row = dict(maskThreshold=mt, minAreaFraction=args.min_area, seedThreshold=st, ap50=r["ap50"],
                       ap50_95=r["ap50_95"], best_f1=bf)
            if neg is not None:
                row.update(pos_ap50=r["pos_ap50"], pos_ap50_95=r["pos_ap50_95"],
                           negative_frames_with_box_at_best_f1=int(sum(1 for d in r["neg_dets"]
                                                                       if any(sc >= bf["threshold"] for sc, _ in d))))
            rows.append(row)
            print(f"mt {mt} seed {st}: ap50 {r['ap50']:.4f} ap50_95 {r['ap50_95']:.4f} "
                  + (f"(polyp images alone {r['pos_ap50']:.4f}; polyp-free frames with a box at best F1 "
                     f"{row['negative_frames_with_box_at_best_f1']}) " if neg is not None else "")
                  + f"bestF1 {bf['f1']:.4f} @ {bf['threshold']}", flush=True)
    info["tune_seeds"] = rows

r = run(args.mask_threshold, args.min_area, args.seed_threshold)
thr = args.threshold
bf = common.best_f1_threshold(r["dets"], r["gts"])
if thr is None:
    thr = bf["threshold"]
op = common.pr_at_threshold(r["dets"], r["gts"], thr)
ts = np.arange(0.5, 0.951, 0.05)
info.update(dict(split=args.split, maskThreshold=args.mask_threshold, minAreaFraction=args.min_area,
                 seedThreshold=args.seed_threshold, ap50=r["ap50"], ap50_95=r["ap50_95"],
                 ap_per_iou={f"{t:.2f}": common.average_precision(r["dets"], r["gts"], t) for t in ts},
                 n_gt=int(sum(len(g) for g in r["gts"])), n_dets=int(sum(len(d) for d in r["dets"])),
                 at_threshold=op, best_f1=bf))
if neg is not None:
    info.update(dict(ap_is_mixed=True, n_negative_frames=int(len(neg_idx)),
                     positives_only=dict(ap50=r["pos_ap50"], ap50_95=r["pos_ap50_95"]),
                     negative_frames_with_box_at_threshold=int(sum(1 for d in r["neg_dets"] if any(sc >= thr for sc, _ in d)))))
print(json.dumps({k: v for k, v in info.items() if k not in ("tune", "tune_seeds")}, indent=1))
if args.json:
    with open(args.json, "w") as f:
        json.dump(info, f, indent=1)
