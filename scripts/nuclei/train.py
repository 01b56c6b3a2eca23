"""Train the nuclei segmentation net (seeded, CPU, resumable). Usage:
  nice -n 19 /usr/bin/python3 scripts/nuclei/train.py --steps 12000 --crop 192 --eval-every 250 --out /tmp/patho/run2
  nice -n 19 /usr/bin/python3 scripts/nuclei/train.py --resume --out /tmp/patho/run2        # continue
Target: nucleus pixels with no OTHER nucleus within 2 px (common.separated_target), so touching nuclei are
split by a gap and connected components of the mask ~ instances; band pixels get extra loss weight.
Holds out --val tiles of the train split (seeded) for checkpoint / threshold choice; never reads the test split.
The schedule is fixed in advance in STEPS (linear warm-up over --warmup steps, cosine to 2 % of the peak lr at
--steps), so a run can be stopped and resumed on another day and still follow the same schedule. Every
--eval-every steps (and at the last step) it scores the held-out tiles; the best AP50 + centroid F1 goes to
`<out>/best.pt` (what export.py reads). Every --ckpt-every steps (and at the end, and on SIGTERM/SIGINT) it
writes `<out>/last.pt` (model, optimizer, RNG states: python, numpy, torch, step, validation history, best
score/step/weights) and `<out>/run.json` (seed, schedule, steps done, CPU and wall seconds summed and per
session, validation tiles, best step). --resume reads both and refuses a different schedule.
--time-budget (wall seconds in this session) stops early without changing the schedule (resume later).
The run plumbing (schedule check, atomic writes, session accounting, stop flag) is scripts/training/resumable.py.
"""
import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "training"))
import common  # noqa: E402
import resumable  # noqa: E402
from model import NucleiNet  # noqa: E402

p = argparse.ArgumentParser(allow_abbrev=False)
p.add_argument("--steps", type=int, default=4000, help="schedule length in optimizer steps (fixed in advance)")
p.add_argument("--warmup", type=int, default=40, help="linear warm-up steps")
p.add_argument("--crop", type=int, default=160, help="training window (multiple of 16)")
p.add_argument("--width", default="24,32,64,96,128")
p.add_argument("--dec", default="48,32")
p.add_argument("--bs", type=int, default=8)
p.add_argument("--lr", type=float, default=3e-3)
p.add_argument("--wd", type=float, default=1e-4)
p.add_argument("--band-weight", type=float, default=3.0)
p.add_argument("--core-weight", type=float, default=0.0,
               help="> 0: a second output channel learns the nucleus cores (common.core_target), weighted so in the "
                    "loss; validation then splits the interior mask with them (common.seeded_components)")
p.add_argument("--val", type=int, default=12, help="train tiles held out (seeded) for checkpoint choice")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--eval-every", type=int, default=60, help="steps")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--ckpt-every", type=int, default=200, help="steps")
p.add_argument("--time-budget", type=float, default=0,
               help="stop after this many wall seconds in this session (0 = no limit); the schedule is unchanged")
p.add_argument("--resume", action="store_true")
p.add_argument("--out", default="/tmp/patho/run1")
args = p.parse_args()
SCHEDULE_KEYS = ["steps", "warmup", "crop", "width", "dec", "bs", "lr", "wd", "band_weight", "core_weight", "val",
                 "seed", "eval_every"]
run = resumable.Run(p, args, SCHEDULE_KEYS, recorded_before={"core_weight": 0.0})  # --resume: the recorded schedule wins
hist_path = os.path.join(args.out, "history.json")

torch.set_num_threads(args.threads)
random.seed(args.seed)
np.random.seed(args.seed)
torch.manual_seed(args.seed)
data = common.load_split("train")  # the test split is never read here
n = len(data["ids"])
perm = np.random.RandomState(args.seed).permutation(n)
val_idx = np.sort(perm[: args.val])
tr_idx = np.sort(perm[args.val:])
with open(os.path.join(args.out, "split.json"), "w") as f:  # read by evaluate.py --split val --run-dir
    json.dump({"val": [data["ids"][i] for i in val_idx], "train": [data["ids"][i] for i in tr_idx]}, f)
print(f"train {len(tr_idx)} val {len(val_idx)}", flush=True)

CORE = args.core_weight > 0
net = NucleiNet(tuple(int(v) for v in args.width.split(",")), tuple(int(v) for v in args.dec.split(",")),
                out=2 if CORE else 1)
print("params", sum(q.numel() for q in net.parameters()), flush=True)
opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.wd)
mean = torch.tensor(common.MEAN).view(1, 3, 1, 1) * 255.0
std = torch.tensor(common.STD).view(1, 3, 1, 1) * 255.0
S = net.stride
imgs = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float()  # [N,3,320,320] letterboxed canvas
tgt = torch.from_numpy(data["target"]).float()[:, None]
bnd = torch.from_numpy(data["band"]).float()[:, None]
if CORE:  # the core rides along with the band through every crop, rotation, flip and rescale
    bnd = torch.cat([bnd, torch.from_numpy(common.load_core("train")).float()[:, None]], 1)
step, hist, best = 0, [], dict(score=-1.0, step=None, val=None, model=None)
ck = run.load()  # also re-writes best.pt as of the checkpoint (a killed session may have written a later one)
if ck is not None:
    net.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    resumable.Run.set_rng_state(ck["rng"])
    step, hist, best = ck["step"], ck["history"], ck["best"]
    print("resumed at step", step, "best step", best["step"], flush=True)


def batch():
    C = args.crop
    xs, ts, bs = [], [], []
    for _ in range(args.bs):
        i = int(np.random.choice(tr_idx))
        w, h = data["sizes"][i]
        # mostly inside the tile, sometimes touching the zero pad (the letterbox canvas the model sees)
        x0 = np.random.randint(0, max(1, min(320, w + 16) - C + 1))
        y0 = np.random.randint(0, max(1, min(320, h + 16) - C + 1))
        x = imgs[i, :, y0:y0 + C, x0:x0 + C]
        t = tgt[i, :, y0:y0 + C, x0:x0 + C]
        b = bnd[i, :, y0:y0 + C, x0:x0 + C]
        k = np.random.randint(4)
        x, t, b = (torch.rot90(v, k, (1, 2)) for v in (x, t, b))
        if np.random.rand() < 0.5:
            x, t, b = (torch.flip(v, (2,)) for v in (x, t, b))
        valid = (x.sum(0, keepdim=True) > 0).float()
        # colour: per-channel gain/offset, global contrast, gamma (stain / scanner variation)
        g = torch.empty(3, 1, 1).uniform_(0.85, 1.15)
        o = torch.empty(3, 1, 1).uniform_(-20, 20)
        c = float(np.random.uniform(0.75, 1.3))
        m = x.mean()
        x = ((x - m) * c + m) * g + o
        gam = float(np.random.uniform(0.8, 1.25))
        x = 255.0 * (x.clamp(0, 255) / 255.0) ** gam
        if np.random.rand() < 0.2:  # grey-ish / washed-out stain
            x = 0.6 * x + 0.4 * x.mean(0, keepdim=True)
        xs.append(x * valid)
        ts.append(t)
        bs.append(b)
    x, t, b = torch.stack(xs), torch.stack(ts), torch.stack(bs)
    if np.random.rand() < 0.5:  # scale jitter (unknown mpp on slides)
        s = float(np.random.uniform(0.8, 1.25))
        C2 = max(64, int(round(C * s / 16)) * 16)
        x = F.interpolate(x, size=(C2, C2), mode="bilinear", align_corners=False)
        t = F.interpolate(t, size=(C2, C2), mode="nearest")
        b = F.interpolate(b, size=(C2, C2), mode="nearest")
    x = x + torch.randn_like(x) * float(np.random.uniform(0, 6))
    x = (x.clamp(0, 255) - mean) / std
    return x, F.avg_pool2d(t, S), F.avg_pool2d(b, S)


def predict(idx):
    net.eval()
    out = []
    with torch.no_grad():
        for i in idx:
            x = (imgs[i:i + 1] - mean) / std
            out.append(torch.sigmoid(net(x))[0].numpy())
    net.train()
    return np.stack(out)  # [N, channels, h, w]


def val_metrics():
    """Held-out train tiles only; consumes no random numbers (so evaluation does not change the training stream).
    With cores: the interior mask at 0.5 split by the cores at 0.5 (seeded_components)."""
    probs = predict(val_idx)
    dets = common.postprocess_all(probs[:, 0], data, val_idx, S, seed_threshold=0.5 if CORE else None,
                                  seeds=probs[:, 1] if CORE else None)
    gts = [data["gts"][i] for i in val_idx]
    cents = [data["cents"][i] for i in val_idx]
    ap50 = common.pc.average_precision(dets, gts, 0.5)
    bt = common.best_centroid_threshold(dets, cents, 6.0)
    return dict(ap50=ap50, f1=bt["f1"], p=bt["precision"], r=bt["recall"], thr=bt["threshold"])


def evaluate():
    m = val_metrics()
    score = m["ap50"] + m["f1"]
    hist.append(dict(step=step, t=round(run.elapsed(), 1), **m))
    print("VAL", json.dumps(hist[-1]), flush=True)
    if score > best["score"]:
        best.update(score=score, step=step, val=m, model={k: v.clone() for k, v in net.state_dict().items()})
        run.save_best(best["model"], step, m)


def save():
    last_val = hist[-1] if hist and hist[-1]["step"] == step else None
    ck = dict(model=net.state_dict(), optimizer=opt.state_dict(), step=step, val=last_val, args=vars(args),
              rng=resumable.Run.rng_state(), history=hist, best=best)
    run.save(ck, step, step >= args.steps,
             dict(schedule_formula=resumable.cosine_formula(0.02), best_step=best["step"], best_score=best["score"],
                  best_val=best["val"], train_tiles=int(len(tr_idx)), val_tiles=[data["ids"][i] for i in val_idx],
                  threads=args.threads))
    resumable.atomic_json(dict(history=hist, steps=step, seconds=run.elapsed(), args=vars(args)), hist_path)


t0 = time.time()
while step < args.steps and not run.should_stop():
    lr = resumable.cosine_lr(step, args.steps, args.lr, args.warmup, 0.02)
    for gq in opt.param_groups:
        gq["lr"] = lr
    x, t, b = batch()
    logits = net(x)
    logit = logits[:, :1]
    w = 1.0 + args.band_weight * b[:, :1]
    bce = F.binary_cross_entropy_with_logits(logit, t, weight=w)
    pr = torch.sigmoid(logit)
    dice = 1 - (2 * (pr * t).sum() + 1) / (pr.sum() + t.sum() + 1)
    loss = bce + dice
    if CORE:
        c = b[:, 1:]
        pc_ = torch.sigmoid(logits[:, 1:])
        loss = loss + args.core_weight * (F.binary_cross_entropy_with_logits(logits[:, 1:], c)
                                          + 1 - (2 * (pc_ * c).sum() + 1) / (pc_.sum() + c.sum() + 1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    step += 1
    if step % 20 == 0:
        print(f"step {step}/{args.steps} t {time.time() - t0:.0f}s lr {lr:.2e} loss {loss.item():.4f} "
              f"bce {bce.item():.4f} dice {dice.item():.4f}", flush=True)
    if step % args.eval_every == 0 or step == args.steps:  # the last step is always scored
        evaluate()
    if step % args.ckpt_every == 0:
        save()
save()
print("stopped" if step < args.steps else "done", step, "steps", f"{time.time() - t0:.0f}s this session",
      "| best step", best["step"], "score", f"{best['score']:.4f}", flush=True)
