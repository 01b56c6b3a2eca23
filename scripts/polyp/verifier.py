"""Box verifier for the polyp detector: a second, small classifier that looks again at each candidate box.

models/polyp-detector.md, "A second look at each box: a crop verifier"; the server side is
server/src/inference/box-verifier.ts (the crop, value for value) and the manifest's `output.verifier`.

  /usr/bin/python3 scripts/polyp/verifier.py prepare                 # candidates + crop windows of the train split
  /usr/bin/python3 scripts/polyp/verifier.py train --variant B --steps 3000 --seed 0
  /usr/bin/python3 scripts/polyp/verifier.py gates --variant B       # validation table (80 + 60 held out)
  /usr/bin/python3 scripts/polyp/verifier.py export --variant B --out models/polyp-verifier-X.onnx

Candidates are 1.2.1's components (mask 0.5, seeds 0.9) and, for more hard negatives, plain components at
mask 0.3, of the detector `--onnx` run through onnxruntime-node (run_onnx.mjs) on the 256-px letterboxed
training images; labels: IoU >= 0.5 with a ground-truth box = polyp, < 0.3 = not (between: unused), plus
the ground-truth boxes and 3 random windows per image away from every polyp. Variant B takes negatives from
the Kvasir-SEG images only (both classes from the same images, so the data set cannot be learnt); A adds the
polyp-free HyperKvasir training frames. The validation split is train.py's (seed 0: 80 Kvasir images; seed 2:
60 polyp-free frames), never trained on. Files go to /tmp/polyp/verifier.
"""
import argparse
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import common  # noqa: E402

S, STRIDE = 256, 4
V, CONTEXT, MIN_SIDE = 64, 1.5, 16.0
OUT = "/tmp/polyp/verifier"


def crop_box(img, box):
    """A square of CONTEXT x the box's longer side (>= MIN_SIDE) around its centre, bilinear to V x V at pixel
    centres, 0 outside the image; img uint8 [S,S,3], box [x0,y0,x1,y1] in letterbox pixels."""
    x0, y0, x1, y1 = box
    side = max(max(x1 - x0, y1 - y0) * CONTEXT, MIN_SIDE)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    step = side / V
    xs = cx - side / 2.0 + (np.arange(V) + 0.5) * step - 0.5
    ys = cy - side / 2.0 + (np.arange(V) + 0.5) * step - 0.5
    H, W = img.shape[:2]
    xf = np.floor(xs).astype(np.int64)
    yf = np.floor(ys).astype(np.int64)
    ax = (xs - xf).astype(np.float32)
    ay = (ys - yf).astype(np.float32)
    pad = np.zeros((H + 2, W + 2, 3), np.float32)
    pad[1:-1, 1:-1] = img

    def g(yy, xx):
        yy = np.clip(yy + 1, 0, H + 1)
        xx = np.clip(xx + 1, 0, W + 1)
        return pad[yy[:, None], xx[None, :]]

    top = g(yf, xf) * (1 - ax)[None, :, None] + g(yf, xf + 1) * ax[None, :, None]
    bot = g(yf + 1, xf) * (1 - ax)[None, :, None] + g(yf + 1, xf + 1) * ax[None, :, None]
    out = top * (1 - ay)[:, None, None] + bot * ay[:, None, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def run_onnx(onnx_path, imgs, tag, threads=2):
    """The model's output for uint8 [N,s,s,3] images through onnxruntime-node (run_onnx.mjs), as raw float32."""
    os.makedirs(OUT, exist_ok=True)
    fin, fout = os.path.join(OUT, f"in_{tag}.u8"), os.path.join(OUT, f"out_{tag}.f32")
    np.ascontiguousarray(imgs).tofile(fin)
    r = subprocess.run(["node", os.path.join(HERE, "run_onnx.mjs"), onnx_path, fin, str(len(imgs)), str(imgs.shape[1]), fout,
                        str(threads), "1"], cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("onnxruntime-node failed:\n" + r.stderr)
    return np.fromfile(fout, dtype=np.float32)


def probs_of(onnx_path, imgs, tag):
    return run_onnx(onnx_path, imgs, tag).reshape(len(imgs), S // STRIDE, S // STRIDE)


def cell_boxes(prob, mt, st):
    """Components as (score, box in letterbox pixels = cell bounds x stride), like common.postprocess."""
    comps = common.connected_components(prob >= mt) if st is None else common.seeded_components(prob, prob, mt, st)
    out = []
    for ys, xs in comps:
        if len(ys) < 0.002 * prob.size:
            continue
        out.append((float(prob[ys, xs].mean()),
                    [xs.min() * STRIDE, ys.min() * STRIDE, (xs.max() + 1) * STRIDE, (ys.max() + 1) * STRIDE]))
    return out


def split_ids():
    k_ids, _ = common.list_ids("train")
    n_ids = common.list_negatives("train")
    perm = np.random.RandomState(0).permutation(len(k_ids))
    nperm = np.random.RandomState(2).permutation(len(n_ids))
    return set(k_ids[i] for i in perm[:80]), set(n_ids[i] for i in nperm[:60])


def prepare(args):
    rng = np.random.RandomState(11)
    for which in ("kvasir", "normal"):
        data = common.build_cache("train", S) if which == "kvasir" else common.build_negative_cache("train", S)
        probs = probs_of(os.path.abspath(args.onnx), data["images"], which)
        rows = []
        for k, i in enumerate(data["ids"]):
            sc = data["scales"][k]
            g = common.gt_boxes(data["meta"][i]) * sc if which == "kvasir" else np.zeros((0, 4))
            for src, mt, st in (("op", 0.5, 0.9), ("lo", 0.3, None)):
                for score, box in cell_boxes(probs[k], mt, st):
                    iou = float(common.iou_matrix(np.array([box], float), g).max()) if len(g) else 0.0
                    rows.append(dict(image=i, src=src, score=score, box=[float(v) for v in box], iou=iou))
            for b in g:
                rows.append(dict(image=i, src="gt", score=1.0, box=[float(v) for v in b], iou=1.0))
            nw, nh = int(round(data["sizes"][k][0] * sc)), int(round(data["sizes"][k][1] * sc))
            got = 0
            for _ in range(100):
                if got >= 3:
                    break
                s = rng.randint(20, 90)
                x0, y0 = rng.randint(0, max(1, nw - s)), rng.randint(0, max(1, nh - s))
                e = [x0 - s * .25, y0 - s * .25, x0 + s * 1.25, y0 + s * 1.25]
                if any(not (e[2] <= q[0] or e[0] >= q[2] or e[3] <= q[1] or e[1] >= q[3]) for q in g):
                    continue
                rows.append(dict(image=i, src="rand", score=0.0, box=[float(x0), float(y0), float(x0 + s), float(y0 + s)], iou=0.0))
                got += 1
        with open(os.path.join(OUT, f"rows_{which}.json"), "w") as f:
            json.dump(rows, f)
        print(which, len(data["ids"]), "images,", len(rows), "windows", flush=True)


def model():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, 2, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                             nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

    class Verifier(nn.Module):
        """uint8-valued float NCHW in, logit out (421 k params)."""

        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(common.MEAN).view(1, 3, 1, 1) * 255)
            self.register_buffer("std", torch.tensor(common.STD).view(1, 3, 1, 1) * 255)
            self.f = nn.Sequential(block(3, 24), block(24, 48), block(48, 96), block(96, 128))
            self.h = nn.Linear(128, 1)

        def forward(self, x):
            x = self.f((x - self.mean) / self.std)
            return self.h(F.adaptive_avg_pool2d(x, 1).flatten(1))[:, 0]

    return Verifier()


def load_rows():
    kd, nd = common.build_cache("train", S), common.build_negative_cache("train", S)
    with open(os.path.join(OUT, "rows_kvasir.json")) as f:
        rk = json.load(f)
    with open(os.path.join(OUT, "rows_normal.json")) as f:
        rn = json.load(f)
    return kd, nd, rk, rn


def train(args):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.RandomState(args.seed)
    kd, nd, rk, rn = load_rows()
    val_k, val_n = split_ids()
    kix = {i: k for k, i in enumerate(kd["ids"])}
    nix = {i: k for k, i in enumerate(nd["ids"])}
    samples = []  # (image, box, label, source)
    for r in rk:
        if r["image"] in val_k:
            continue
        lab = 1 if r["iou"] >= 0.5 else (0 if r["iou"] < 0.3 else -1)
        if lab >= 0:
            samples.append((kd["images"][kix[r["image"]]], r["box"], lab, r["src"]))
    if args.variant == "A":
        for r in rn:
            if r["image"] not in val_n:
                samples.append((nd["images"][nix[r["image"]]], r["box"], 0, "n-" + r["src"]))
    labs = np.array([s[2] for s in samples])
    srcs = np.array([s[3] for s in samples])
    pos, neg = np.where(labs == 1)[0], np.where(labs == 0)[0]
    hard = np.where((labs == 0) & (srcs != "rand") & (srcs != "n-rand"))[0]
    print(args.variant, "polyp windows", len(pos), "non-polyp", len(neg), "of which detector candidates", len(hard), flush=True)

    def aug(img, box):
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        dx, dy = rng.uniform(-0.1, 0.1) * w, rng.uniform(-0.1, 0.1) * h
        sc = rng.uniform(0.85, 1.15)
        cx, cy = (x0 + x1) / 2 + dx, (y0 + y1) / 2 + dy
        a = crop_box(img, [cx - w * sc / 2, cy - h * sc / 2, cx + w * sc / 2, cy + h * sc / 2])
        if rng.rand() < 0.5:
            b = io.BytesIO()
            Image.fromarray(a).save(b, "JPEG", quality=int(rng.randint(55, 96)))
            a = np.asarray(Image.open(b).convert("RGB"))
        a = a.astype(np.float32)
        if rng.rand() < 0.5:
            a = a[:, ::-1]
        if rng.rand() < 0.5:
            a = a[::-1]
        a = np.rot90(a, rng.randint(4))
        a = a * rng.uniform(0.85, 1.15) + rng.uniform(-15, 15)
        g = a.mean(2, keepdims=True)
        a = g + (a - g) * rng.uniform(0.85, 1.15)
        return np.ascontiguousarray(np.clip(a, 0, 255))

    net = model()
    bs = 32
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=args.steps, pct_start=0.05)
    t0 = time.time()
    for step in range(args.steps):
        # half polyp windows; the other half: detector candidates and any non-polyp window, a quarter each
        idx = np.concatenate([rng.choice(pos, bs // 2), rng.choice(hard, bs // 4), rng.choice(neg, bs // 4)])
        x = torch.from_numpy(np.stack([aug(samples[i][0], samples[i][1]) for i in idx])).permute(0, 3, 1, 2)
        y = torch.from_numpy(labs[idx].astype(np.float32))
        net.train()
        loss = F.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0:
            print(step, f"{loss.item():.3f}", f"{time.time() - t0:.0f}s", flush=True)
    torch.save(dict(model=net.state_dict(), variant=args.variant, steps=args.steps, seed=args.seed),
               os.path.join(OUT, f"verifier_{args.variant}.pt"))
    print("trained in", f"{time.time() - t0:.0f}s", flush=True)


def scores(variant):
    """The verifier's probability for every window of rows_*.json (kvasir rows, then normal rows)."""
    import torch
    kd, nd, rk, rn = load_rows()
    net = model()
    net.load_state_dict(torch.load(os.path.join(OUT, f"verifier_{variant}.pt"))["model"])
    net.eval()
    out = []
    with torch.no_grad():
        for rows, d in ((rk, kd), (rn, nd)):
            ix = {i: k for k, i in enumerate(d["ids"])}
            for s in range(0, len(rows), 256):
                x = np.stack([crop_box(d["images"][ix[r["image"]]], r["box"]) for r in rows[s:s + 256]]).astype(np.float32)
                out.append(torch.sigmoid(net(torch.from_numpy(x).permute(0, 3, 1, 2))).numpy())
    return rk, rn, np.concatenate(out)


def gates(args):
    rk, rn, p = scores(args.variant)
    pk, pn = p[:len(rk)], p[len(rk):]
    val_k, val_n = split_ids()
    _, meta = common.list_ids("train")
    scale = {}  # letterbox scale of every image: boxes go back to source pixels, where the truth is
    for d in (common.build_cache("train", S), common.build_negative_cache("train", S)):
        scale.update({i: d["scales"][k] for k, i in enumerate(d["ids"])})
    t = args.threshold
    vk, vn = sorted(val_k), sorted(val_n)

    def dets(rows, ps, images, gate):
        by = {i: [] for i in images}
        for r, q in zip(rows, ps):
            if r["src"] == "op" and r["image"] in by and q >= gate:
                by[r["image"]].append((r["score"], list(np.array(r["box"]) / scale[r["image"]])))
        return [by[i] for i in images]

    gts = [common.gt_boxes(meta[i]) for i in vk]
    table = []
    for gate in [0.0, 0.02, 0.05, 0.1, 0.2, 0.3]:
        dk = dets(rk, pk, vk, gate)
        dn = dets(rn, pn, vn, gate)
        op = common.pr_at_threshold(dk, gts, t)
        row = dict(gate=gate, kvasir_ap50=common.average_precision(dk, gts, 0.5),
                   mixed_ap50=common.average_precision(dk + dn, gts + [np.zeros((0, 4))] * len(dn), 0.5),
                   polyps_found_at_threshold=op["tp"], false_boxes_on_polyp_images=op["fp"],
                   polyp_free_frames_with_box=sum(1 for d in dn if any(s >= t for s, _ in d)))
        table.append(row)
        print(json.dumps(row), flush=True)
    with open(os.path.join(OUT, f"gates_{args.variant}.json"), "w") as f:
        json.dump(table, f, indent=1)


def export(args):
    import torch
    import torch.nn as nn
    net = model()
    ck = torch.load(os.path.join(OUT, f"verifier_{args.variant}.pt"))
    net.load_state_dict(ck["model"])
    net.eval()

    class Wrap(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.n = n

        def forward(self, crop):  # uint8 NHWC -> probability [N, 1]
            return torch.sigmoid(self.n(crop.permute(0, 3, 1, 2).float()))[:, None]

    w = Wrap(net).eval()
    torch.onnx.export(w, torch.zeros((1, V, V, 3), dtype=torch.uint8), args.out, input_names=["crop"], output_names=["prob"],
                      dynamic_axes={"crop": {0: "N"}, "prob": {0: "N"}}, opset_version=13, do_constant_folding=True)
    import onnx
    m = onnx.load(args.out)
    onnx.checker.check_model(m)
    m.producer_name = "filmless-pacs scripts/polyp/verifier.py"
    m.doc_string = (f"polyp box verifier (variant {ck['variant']}, {ck['steps']} steps, seed {ck['seed']}): input crop uint8 "
                    f"[N,{V},{V},3] RGB, a square of {CONTEXT}x the box's longer side cut from the detector's 256-px "
                    "letterboxed input; output prob float32 [N,1], probability that the box shows a polyp")
    onnx.save(m, args.out)
    print("exported", args.out, os.path.getsize(args.out), "bytes")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["prepare", "train", "gates", "export"])
    p.add_argument("--onnx", default=os.path.join(REPO, "models", "polyp-detector-1.2.0.onnx"))
    p.add_argument("--variant", choices=["A", "B"], default="B")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--threshold", type=float, default=0.858, help="the detector's operating threshold")
    p.add_argument("--out", default="")
    a = p.parse_args()
    os.makedirs(OUT, exist_ok=True)
    {"prepare": prepare, "train": train, "gates": gates, "export": export}[a.command](a)
