"""Shared code for the polyp detector: data loading, letterbox, post-processing, AP metric.

The post-processing here is the reference for the Node implementation (server side):
  prob [1,h,w] -> binarise >= maskThreshold -> 8-connected components -> drop components with
  pixel count < minAreaFraction*h*w -> score = mean prob over the component -> box in output cells
  (cx0, cy0, cx1+1, cy1+1) * stride -> letterboxed pixels -> / scale -> original pixels, clamped.
"""
import hashlib
import heapq
import json
import os
from collections import deque

import numpy as np
from PIL import Image


def sha256(path):
    """Hex sha256 of a file, read in 1 MiB pieces (pinned inputs: a starting .onnx, fetched weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

DATA_ROOT = os.environ.get("KVASIR_ROOT", "/work/shared/data/kvasir-seg")
CACHE_DIR = os.environ.get("POLYP_CACHE", "/tmp/polyp")

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


# ----------------------------------------------------------------------------- data
def list_ids(split):
    with open(os.path.join(DATA_ROOT, split, "bboxes.json")) as f:
        meta = json.load(f)
    return sorted(meta.keys()), meta


def gt_boxes(meta_entry):
    """GT boxes as float [x0, y0, x1, y1] with x1 = xmax + 1 (inclusive indices -> exclusive)."""
    return np.array([[b["xmin"], b["ymin"], b["xmax"] + 1, b["ymax"] + 1] for b in meta_entry["bbox"]],
                    dtype=np.float64).reshape(-1, 4)


def letterbox_params(width, height, size):
    scale = size / max(width, height)
    nw, nh = int(round(width * scale)), int(round(height * scale))
    return scale, nw, nh


def letterbox(img, size, resample=Image.BILINEAR, fill=0):
    """PIL image -> (uint8 array [size,size,C], scale). Resized image placed at the TOP-LEFT."""
    w, h = img.size
    scale, nw, nh = letterbox_params(w, h, size)
    r = img.resize((nw, nh), resample)
    arr = np.asarray(r)
    if arr.ndim == 2:
        out = np.full((size, size), fill, dtype=np.uint8)
    else:
        out = np.full((size, size, arr.shape[2]), fill, dtype=np.uint8)
    out[:nh, :nw] = arr
    return out, scale


def _load_one(args):
    split, iid, size = args
    img = Image.open(os.path.join(DATA_ROOT, split, "images", iid + ".jpg")).convert("RGB")
    m = Image.open(os.path.join(DATA_ROOT, split, "masks", iid + ".jpg")).convert("L")
    assert m.size == img.size
    im_lb, scale = letterbox(img, size)
    # mask: threshold at 128 at full resolution, then resize as soft mask (bilinear) -> uint8 0..255
    mb = Image.fromarray(((np.asarray(m) >= 128) * 255).astype(np.uint8))
    m_lb, _ = letterbox(mb, size)
    return im_lb, m_lb, scale, img.size


def _map(fn, args, workers):
    """fn over args, in `workers` processes when more than one (image decoding is CPU-bound)."""
    if workers <= 1:
        return [fn(a) for a in args]
    from multiprocessing import Pool
    with Pool(workers) as p:
        return p.map(fn, args, chunksize=8)


def build_cache(split, size, workers=2):
    """Letterboxed uint8 images [N,S,S,3], soft masks [N,S,S], scales, sizes; cached as .npz."""
    path = os.path.join(CACHE_DIR, f"cache_{split}_{size}.npz")
    ids, meta = list_ids(split)
    if os.path.exists(path):
        z = np.load(path)
        assert list(z["ids"]) == ids
        return dict(ids=ids, meta=meta, images=z["images"], masks=z["masks"], scales=z["scales"], sizes=z["sizes"])
    os.makedirs(CACHE_DIR, exist_ok=True)
    res = _map(_load_one, [(split, i, size) for i in ids], workers)
    images = np.stack([r[0] for r in res])
    masks = np.stack([r[1] for r in res])
    scales = np.array([r[2] for r in res], dtype=np.float64)
    sizes = np.array([r[3] for r in res], dtype=np.int64)  # (width, height)
    np.savez(path, ids=np.array(ids), images=images, masks=masks, scales=scales, sizes=sizes)
    return dict(ids=ids, meta=meta, images=images, masks=masks, scales=scales, sizes=sizes)


# ----------------------------------------------------------------------------- post-processing
def connected_components(binary):
    """8-connected components of a 2-D bool array -> list of (ys, xs) index arrays."""
    h, w = binary.shape
    labels = np.zeros((h, w), dtype=np.int32)
    comps = []
    nxt = 0
    ys0, xs0 = np.nonzero(binary)
    for y, x in zip(ys0.tolist(), xs0.tolist()):
        if labels[y, x]:
            continue
        nxt += 1
        labels[y, x] = nxt
        q = deque([(y, x)])
        cy, cx = [], []
        while q:
            a, b = q.popleft()
            cy.append(a)
            cx.append(b)
            for dy in (-1, 0, 1):
                yy = a + dy
                if yy < 0 or yy >= h:
                    continue
                for dx in (-1, 0, 1):
                    xx = b + dx
                    if xx < 0 or xx >= w or (dy == 0 and dx == 0):
                        continue
                    if binary[yy, xx] and not labels[yy, xx]:
                        labels[yy, xx] = nxt
                        q.append((yy, xx))
        comps.append((np.array(cy), np.array(cx)))
    return comps


_N8 = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def seeded_components(prob, seed, mask_threshold, seed_threshold):
    """The reference for mask-components.ts's seeded split (a marker-controlled watershed): seeds are the
    8-connected components of (seed >= seed_threshold) & (prob >= mask_threshold); they grow over the mask
    (prob >= mask_threshold) cell by cell, always from the frontier cell with the highest seed value (ties: the
    one reached first); mask cells no seed reaches keep their own 8-connected components. `seed` may be `prob`
    itself (two thresholds on one map) or a separate core map. Seed cells enter the frontier in raster order, so
    ties between equal seed values resolve alike here and in the server. Returns [(ys, xs)] (seeded first)."""
    h, w = prob.shape
    binary = prob >= mask_threshold
    lab = np.zeros((h, w), np.int32)
    heap, counter, n = [], 0, 0
    for ys, xs in connected_components(binary & (seed >= seed_threshold)):
        n += 1
        lab[ys, xs] = n
    for y, x in zip(*(v.tolist() for v in np.nonzero(lab))):  # seed cells enter in raster order
        heapq.heappush(heap, (-float(seed[y, x]), counter, y, x))
        counter += 1
    while heap:
        _, _, y, x = heapq.heappop(heap)
        for dy, dx in _N8:
            yy, xx = y + dy, x + dx
            if 0 <= yy < h and 0 <= xx < w and binary[yy, xx] and lab[yy, xx] == 0:
                lab[yy, xx] = lab[y, x]
                heapq.heappush(heap, (-float(seed[yy, xx]), counter, yy, xx))
                counter += 1
    comps = [np.nonzero(lab == k) for k in range(1, n + 1)]
    return comps + list(connected_components(binary & (lab == 0)))


def postprocess(prob, stride, scale, width, height, mask_threshold=0.5, min_area_fraction=0.002, min_score=0.0,
                seed_threshold=None, seed=None):
    """prob: [h,w] float array for one image. Returns list of (score, [x0,y0,x1,y1]) in original pixels.
    seed_threshold: split the mask by seeds first (seeded_components), from `seed` [h,w] or prob itself."""
    prob = np.asarray(prob, dtype=np.float32)
    if prob.ndim == 3:
        prob = prob[0]
    h, w = prob.shape
    binary = prob >= mask_threshold
    min_pix = min_area_fraction * h * w
    dets = []
    comps = (connected_components(binary) if seed_threshold is None else
             seeded_components(prob, prob if seed is None else np.asarray(seed, dtype=np.float32), mask_threshold,
                               seed_threshold))
    for ys, xs in comps:
        if len(ys) < min_pix:
            continue
        score = float(prob[ys, xs].mean())
        if score < min_score:
            continue
        x0 = xs.min() * stride / scale
        y0 = ys.min() * stride / scale
        x1 = (xs.max() + 1) * stride / scale
        y1 = (ys.max() + 1) * stride / scale
        box = [min(max(x0, 0.0), width), min(max(y0, 0.0), height),
               min(max(x1, 0.0), width), min(max(y1, 0.0), height)]
        dets.append((score, box))
    return dets


# ----------------------------------------------------------------------------- metric
def iou_matrix(a, b):
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    ab = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(aa[:, None] + ab[None, :] - inter, 1e-12)


def match(dets_per_image, gts_per_image, iou_t):
    """Ranks all detections by score; returns (scores, tp flags, n_gt). Greedy matching to the
    best-IoU not-yet-matched GT of the same image."""
    alld = []
    for img_i, dets in enumerate(dets_per_image):
        for s, b in dets:
            alld.append((s, img_i, b))
    alld.sort(key=lambda t: -t[0])
    n_gt = sum(len(g) for g in gts_per_image)
    used = [np.zeros(len(g), dtype=bool) for g in gts_per_image]
    scores = np.array([d[0] for d in alld], dtype=np.float64)
    tp = np.zeros(len(alld), dtype=bool)
    for k, (s, img_i, b) in enumerate(alld):
        g = gts_per_image[img_i]
        if len(g) == 0:
            continue
        ious = iou_matrix([b], g)[0]
        ious[used[img_i]] = -1.0
        j = int(np.argmax(ious))
        if ious[j] >= iou_t:
            used[img_i][j] = True
            tp[k] = True
    return scores, tp, n_gt


def average_precision(dets_per_image, gts_per_image, iou_t=0.5):
    scores, tp, n_gt = match(dets_per_image, gts_per_image, iou_t)
    if len(scores) == 0 or n_gt == 0:
        return 0.0
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    rec = ctp / n_gt
    prec = ctp / np.maximum(ctp + cfp, 1e-12)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[1.0], prec, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def pr_at_threshold(dets_per_image, gts_per_image, thr, iou_t=0.5):
    kept = [[d for d in dets if d[0] >= thr] for dets in dets_per_image]
    scores, tp, n_gt = match(kept, gts_per_image, iou_t)
    ntp = int(tp.sum())
    nfp = int(len(tp) - ntp)
    nfn = n_gt - ntp
    p = ntp / max(ntp + nfp, 1)
    r = ntp / max(n_gt, 1)
    f1 = 2 * p * r / max(p + r, 1e-12)
    return dict(threshold=thr, precision=p, recall=r, f1=f1, tp=ntp, fp=nfp, fn=nfn)


def best_f1_threshold(dets_per_image, gts_per_image, iou_t=0.5):
    cands = sorted({round(d[0], 3) for dets in dets_per_image for d in dets})
    best = pr_at_threshold(dets_per_image, gts_per_image, 0.0, iou_t)
    for t in cands:
        r = pr_at_threshold(dets_per_image, gts_per_image, t, iou_t)
        if r["f1"] > best["f1"] + 1e-9:
            best = r
    return best


def evaluate_probs(probs, data, stride, idx=None, mask_threshold=0.5, min_area_fraction=0.002, seed_threshold=None):
    """probs: [n,h,w] for the images data[idx]. Returns dict with ap50, ap50_95, dets, gts."""
    if idx is None:
        idx = np.arange(len(data["ids"]))
    dets, gts = [], []
    for k, i in enumerate(idx):
        w, h = data["sizes"][i]
        dets.append(postprocess(probs[k], stride, data["scales"][i], w, h, mask_threshold, min_area_fraction,
                                seed_threshold=seed_threshold))
        gts.append(gt_boxes(data["meta"][data["ids"][i]]))
    ap50 = average_precision(dets, gts, 0.5)
    ts = np.arange(0.5, 0.951, 0.05)
    ap_all = [average_precision(dets, gts, t) for t in ts]
    return dict(ap50=ap50, ap50_95=float(np.mean(ap_all)), dets=dets, gts=gts)


# ----------------------------------------------------------------------------- negatives (polyp-free frames)
NORMAL_ROOT = os.environ.get("NORMAL_ROOT", "/work/shared/data/endoscopy-normal-hyperkvasir")


def list_negatives(split):
    """Relative paths of the polyp-free HyperKvasir frames of a fixed split ('train' or 'test')."""
    with open(os.path.join(NORMAL_ROOT, "splits", split + ".txt")) as f:
        return [line.strip() for line in f if line.strip()]


def _load_negative(args):
    rel, size = args
    img = Image.open(os.path.join(NORMAL_ROOT, rel)).convert("RGB")
    im_lb, scale = letterbox(img, size)
    return im_lb, scale, img.size


def build_negative_cache(split, size, workers=2):
    """Letterboxed polyp-free frames like build_cache (masks all zero, no boxes); cached as .npz."""
    path = os.path.join(CACHE_DIR, f"cache_normal_{split}_{size}.npz")
    ids = list_negatives(split)
    if os.path.exists(path):
        z = np.load(path)
        assert list(z["ids"]) == ids
        return dict(ids=ids, images=z["images"], masks=np.zeros(z["images"].shape[:3], np.uint8),
                    scales=z["scales"], sizes=z["sizes"])
    os.makedirs(CACHE_DIR, exist_ok=True)
    res = _map(_load_negative, [(rel, size) for rel in ids], workers)
    images = np.stack([r[0] for r in res])
    scales = np.array([r[1] for r in res], dtype=np.float64)
    sizes = np.array([r[2] for r in res], dtype=np.int64)
    np.savez(path, ids=np.array(ids), images=images, scales=scales, sizes=sizes)
    return dict(ids=ids, images=images, masks=np.zeros(images.shape[:3], np.uint8), scales=scales, sizes=sizes)
