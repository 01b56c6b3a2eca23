"""Shared code for the nuclei detector: DSB 2018 H&E data, training targets, centroid-match metric.

Post-processing (probability mask -> connected components -> boxes) and box AP are reused verbatim from
scripts/polyp/common.py (the reference for the server's mask-components.ts), imported here as `pc`.
Letterbox: the 320x256 tiles go into a 320x320 canvas at scale 1 (top-left, pad 0), exactly the
server's 'letterbox-top-left' contract for a 320 model input.
"""
import importlib.util
import json
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("polyp_common", os.path.join(HERE, "..", "polyp", "common.py"))
pc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pc)

DATA_ROOT = os.environ.get("NUCLEI_ROOT", "/work/shared/data/histo-dsb2018-he-nuclei")
CACHE_DIR = os.environ.get("NUCLEI_CACHE", "/tmp/patho")
MEAN, STD = pc.MEAN, pc.STD
SEP_RADIUS = 2  # pixels of a nucleus within this (Chebyshev) distance of ANOTHER nucleus are target 0


def list_ids(split):
    with open(os.path.join(DATA_ROOT, "splits", split + ".txt")) as f:
        return [l.strip() for l in f if l.strip()]


def load_annotations():
    with open(os.path.join(DATA_ROOT, "annotations.json")) as f:
        return json.load(f)


def separated_target(lab, r=SEP_RADIUS):
    """Instance map [H,W] int -> (target uint8, band uint8). target = nucleus pixels with no other
    nucleus label within r px (so touching nuclei are split by a >= 2r px gap); band = the removed pixels."""
    h, w = lab.shape
    big = np.iinfo(np.int32).max
    L = lab.astype(np.int32)
    Lmin = np.where(L > 0, L, big)
    pmax = np.pad(L, r, constant_values=0)
    pmin = np.pad(Lmin, r, constant_values=big)
    mx = np.zeros_like(L)
    mn = np.full_like(L, big)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            mx = np.maximum(mx, pmax[dy:dy + h, dx:dx + w])
            mn = np.minimum(mn, pmin[dy:dy + h, dx:dx + w])
    fg = L > 0
    interior = fg & (mx == L) & (mn == L)
    return interior.astype(np.uint8), (fg & ~interior).astype(np.uint8)


def core_target(lab, frac=0.5):
    """Instance map [H,W] -> uint8 'core': the pixels of each nucleus at least frac x its own deepest
    (city-block) distance from the nucleus's edge (an edge being background or another nucleus), at least
    1. Cores of touching nuclei are far apart, so they are the seeds that split a merged interior mask
    (scripts/polyp/common.py seeded_components; the server's mask-components.ts does the same)."""
    L = lab.astype(np.int32)
    alive = L > 0
    dist = np.zeros(L.shape, np.int32)
    k = 0
    while alive.any():
        k += 1
        dist[alive] = k
        pa = np.pad(alive, 1, constant_values=False)
        pl = np.pad(L, 1, constant_values=0)
        keep = alive.copy()
        for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
            keep &= pa[dy:dy + L.shape[0], dx:dx + L.shape[1]] & (pl[dy:dy + L.shape[0], dx:dx + L.shape[1]] == L)
        alive = keep
    maxd = np.zeros(int(L.max()) + 1, np.int32)
    np.maximum.at(maxd, L[L > 0], dist[L > 0])
    need = np.maximum(1, np.ceil(frac * maxd[L]).astype(np.int32))
    return ((L > 0) & (dist >= need)).astype(np.uint8)


def load_core(split, canvas=320):
    """Core targets [N,C,C] uint8 of a split, in load_split's canvas (cached beside it)."""
    ids = list_ids(split)
    path = os.path.join(CACHE_DIR, f"nuclei_{split}_{canvas}_core.npz")
    if os.path.exists(path):
        return np.load(path)["core"]
    core = np.zeros((len(ids), canvas, canvas), np.uint8)
    for i, iid in enumerate(ids):
        lab = np.asarray(Image.open(os.path.join(DATA_ROOT, "labels", iid + ".png"))).astype(np.int32)
        h, w = lab.shape
        core[i, :h, :w] = core_target(lab)
    os.makedirs(CACHE_DIR, exist_ok=True)
    np.savez(path, core=core)
    return core


def load_split(split, canvas=320):
    """-> dict(ids, images [N,C,C,3] uint8 letterboxed at scale 1, target/band [N,C,C] uint8, sizes, gts, cents)."""
    ids = list_ids(split)
    ann = load_annotations()
    path = os.path.join(CACHE_DIR, f"nuclei_{split}_{canvas}_r{SEP_RADIUS}.npz")
    if os.path.exists(path):
        z = np.load(path)
        images, target, band, sizes = z["images"], z["target"], z["band"], z["sizes"]
    else:
        n = len(ids)
        images = np.zeros((n, canvas, canvas, 3), np.uint8)
        target = np.zeros((n, canvas, canvas), np.uint8)
        band = np.zeros((n, canvas, canvas), np.uint8)
        sizes = np.zeros((n, 2), np.int64)
        for i, iid in enumerate(ids):
            im = np.asarray(Image.open(os.path.join(DATA_ROOT, "images", iid + ".png")).convert("RGB"))
            lab = np.asarray(Image.open(os.path.join(DATA_ROOT, "labels", iid + ".png"))).astype(np.int32)
            h, w = lab.shape
            assert im.shape[:2] == (h, w) and max(h, w) <= canvas
            t, b = separated_target(lab)
            images[i, :h, :w] = im
            target[i, :h, :w] = t
            band[i, :h, :w] = b
            sizes[i] = (w, h)
        os.makedirs(CACHE_DIR, exist_ok=True)
        np.savez(path, images=images, target=target, band=band, sizes=sizes)
    gts, cents = [], []
    for iid in ids:
        nuc = ann[iid]["nuclei"]
        gts.append(np.array([[b["bbox"][0], b["bbox"][1], b["bbox"][2] + 1, b["bbox"][3] + 1] for b in nuc],
                            np.float64).reshape(-1, 4))
        cents.append(np.array([b["centroid"] for b in nuc], np.float64).reshape(-1, 2))
    return dict(ids=ids, images=images, target=target, band=band, sizes=sizes, gts=gts, cents=cents)


def postprocess_all(probs, data, idx, stride, mask_threshold=0.5, min_area_fraction=0.00015, seed_threshold=None,
                    seeds=None):
    """probs [N,h,w] (the mask channel). seed_threshold None: plain connected components; else the seeded
    split (pc.seeded_components) with seeds from `seeds` [N,h,w] (a core channel) or, when None, from probs."""
    dets = []
    for k, i in enumerate(idx):
        w, h = data["sizes"][i]
        dets.append(pc.postprocess(probs[k], stride, 1.0, w, h, mask_threshold, min_area_fraction,
                                   seed_threshold=seed_threshold, seed=None if seeds is None else seeds[k]))
    return dets


def centroid_prf(dets_per_image, cents_per_image, thr, radius=6.0):
    """Greedy centroid match: detections (score >= thr) in descending score order; each is a TP if its
    box centre lies within `radius` px of a not-yet-matched GT centroid (the nearest such one is taken)."""
    tp = fp = 0
    n_gt = sum(len(c) for c in cents_per_image)
    for dets, cents in zip(dets_per_image, cents_per_image):
        used = np.zeros(len(cents), bool)
        for s, b in sorted([d for d in dets if d[0] >= thr], key=lambda d: -d[0]):
            if len(cents) == 0:
                fp += 1
                continue
            c = np.array([(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0])
            dist = np.hypot(cents[:, 0] - c[0], cents[:, 1] - c[1])
            dist[used] = np.inf
            j = int(np.argmin(dist))
            if dist[j] <= radius:
                used[j] = True
                tp += 1
            else:
                fp += 1
    p = tp / max(tp + fp, 1)
    r = tp / max(n_gt, 1)
    return dict(threshold=thr, radius=radius, precision=p, recall=r, f1=2 * p * r / max(p + r, 1e-12),
                tp=tp, fp=fp, fn=n_gt - tp)


def best_centroid_threshold(dets, cents, radius=6.0):
    cands = sorted({round(d[0], 2) for ds in dets for d in ds} | {0.0})
    best = None
    for t in cands:
        r = centroid_prf(dets, cents, t, radius)
        if best is None or r["f1"] > best["f1"] + 1e-9:
            best = r
    return best
