"""Shared code for the colon lesion tile classifier (EBHI-Seg subset): data, metrics.
Classes are listed in index order, which is the model's output order."""
import csv
import os

import numpy as np
from PIL import Image

DATA_ROOT = os.environ.get("EBHI_ROOT", "/work/shared/data/histo-ebhi-seg-colon")
CACHE_DIR = os.environ.get("LESION_CACHE", "/tmp/patho")
CLASSES = ["normal", "polyp", "low_grade_in", "high_grade_in", "serrated_adenoma", "adenocarcinoma"]
# Binary groupings reported: "abnormal" = every class but normal; "neoplastic" = IN (low/high grade),
# serrated adenoma, adenocarcinoma (EBHI's "polyp" class is left on the non-neoplastic side).
NEOPLASTIC = [2, 3, 4, 5]
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def load_split(split):
    path = os.path.join(CACHE_DIR, f"ebhi_{split}.npz")
    rows = [r for r in csv.DictReader(open(os.path.join(DATA_ROOT, "index.csv"))) if r["split"] == split]
    rows.sort(key=lambda r: r["image"])
    if os.path.exists(path):
        z = np.load(path)
        images = z["images"]
    else:
        images = np.stack([np.asarray(Image.open(os.path.join(DATA_ROOT, r["image"])).convert("RGB")) for r in rows])
        os.makedirs(CACHE_DIR, exist_ok=True)
        np.savez(path, images=images)
    y = np.array([CLASSES.index(r["class"]) for r in rows])
    cases = np.array([r["case"] for r in rows])
    return dict(images=images, y=y, cases=cases, names=[r["image"] for r in rows])


def auc(score, pos):
    """Rank-based ROC AUC (ties averaged)."""
    score = np.asarray(score, np.float64)
    pos = np.asarray(pos, bool)
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    s = score[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    npos, nneg = pos.sum(), (~pos).sum()
    if npos == 0 or nneg == 0:
        return float("nan")
    return float((ranks[pos].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def binary_report(score, pos, thr=0.5):
    pred = np.asarray(score) >= thr
    pos = np.asarray(pos, bool)
    tp, fn = int((pred & pos).sum()), int((~pred & pos).sum())
    tn, fp = int((~pred & ~pos).sum()), int((pred & ~pos).sum())
    return dict(threshold=thr, sensitivity=tp / max(tp + fn, 1), specificity=tn / max(tn + fp, 1),
                auc=auc(score, pos), tp=tp, fn=fn, tn=tn, fp=fp)


def full_report(prob, y):
    """prob [N,6] softmax, y [N] -> per-class one-vs-rest + binary groupings + accuracy + confusion."""
    pred = prob.argmax(1)
    per = {}
    for k, c in enumerate(CLASSES):
        pos = y == k
        pk = pred == k
        per[c] = dict(n=int(pos.sum()), sensitivity=float((pk & pos).sum() / max(pos.sum(), 1)),
                      specificity=float((~pk & ~pos).sum() / max((~pos).sum(), 1)), auc=auc(prob[:, k], pos))
    conf = np.zeros((6, 6), int)
    for a, b in zip(y, pred):
        conf[a, b] += 1
    return dict(
        n=int(len(y)), accuracy=float((pred == y).mean()),
        per_class=per,
        normal_vs_abnormal=binary_report(1 - prob[:, 0], y != 0),
        nonneoplastic_vs_neoplastic=binary_report(prob[:, NEOPLASTIC].sum(1), np.isin(y, NEOPLASTIC)),
        confusion_rows_true_cols_pred=conf.tolist(), classes=CLASSES)
