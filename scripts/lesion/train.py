"""Train the colon lesion tile classifier (6 classes, from scratch, CPU, seeded, resumable). Usage:
  nice -n 19 /usr/bin/python3 scripts/lesion/train.py --steps 6000 --val-fraction 0.2 --out /tmp/patho/lesion2
  nice -n 19 /usr/bin/python3 scripts/lesion/train.py --resume --out /tmp/patho/lesion2        # continue
Class-balanced sampling, flips/rot90/colour jitter/random resized crops. The schedule is fixed in advance in
STEPS (linear warm-up, cosine to 2 % of the peak lr at --steps), so a run can be stopped and resumed on another
day and still follow the same schedule. Every --ckpt-every steps (and at the end, and on SIGTERM/SIGINT) it writes
`<out>/last.pt` (model, optimizer, RNG states: python, numpy, torch) and `<out>/run.json` (seed, schedule, steps
done, CPU and wall seconds summed over sessions, data split). --resume reads both and refuses a different
schedule. --val-fraction holds out a case-disjoint part of TRAIN (cases in SHA-1 order); the test split is never
read. --time-budget (wall seconds in this session) stops early without changing the schedule (resume later).
The run plumbing (schedule check, atomic writes, session accounting, stop flag) is scripts/training/resumable.py;
--resume also refuses a --out without a run, and a new run refuses a --out that already holds one.
"""
import argparse
import hashlib
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
from model import LesionNet  # noqa: E402

p = argparse.ArgumentParser(allow_abbrev=False)
p.add_argument("--steps", type=int, default=6000, help="schedule length in optimizer steps (fixed in advance)")
p.add_argument("--warmup", type=int, default=30)
p.add_argument("--size", type=int, default=224)
p.add_argument("--bs", type=int, default=16)
p.add_argument("--lr", type=float, default=2e-3)
p.add_argument("--wd", type=float, default=5e-4)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--val-fraction", type=float, default=0.0, help="case-disjoint part of train held out (0 = none)")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--ckpt-every", type=int, default=200)
p.add_argument("--time-budget", type=float, default=0, help="stop after this many wall seconds (0 = no limit)")
p.add_argument("--resume", action="store_true")
p.add_argument("--out", default="/tmp/patho/lesion2")
args = p.parse_args()
SCHEDULE_KEYS = ["steps", "warmup", "size", "bs", "lr", "wd", "seed", "val_fraction"]
run = resumable.Run(p, args, SCHEDULE_KEYS)  # --resume: the recorded schedule wins, a different one is an error
torch.set_num_threads(args.threads)
random.seed(args.seed)
np.random.seed(args.seed)
torch.manual_seed(args.seed)


def val_cases(cases, frac):
    """Case-disjoint hold-out from train: cases in SHA-1 order of the case id, per class, ~frac of each class's
    cases (at least one when the class has 3+ cases)."""
    if frac <= 0:
        return set()
    out = set()
    for k in range(len(common.CLASSES)):
        cs = sorted(set(cases[d["y"] == k]), key=lambda c: hashlib.sha1(c.encode()).hexdigest())
        n = int(round(frac * len(cs))) if len(cs) >= 3 else 0
        out.update(cs[:n])
    return out


d = common.load_split("train")
held = val_cases(d["cases"], args.val_fraction)
# a case whose images span classes goes wholly to validation (case-disjoint)
is_val = np.array([c in held for c in d["cases"]])
tr = np.where(~is_val)[0]
X = torch.from_numpy(d["images"][tr]).permute(0, 3, 1, 2).float()
y = torch.from_numpy(d["y"][tr])
counts = np.bincount(d["y"][tr], minlength=6)
pw = (1.0 / counts[d["y"][tr]])
pw /= pw.sum()
print("train", len(y), "per class", counts.tolist(), "| val", int(is_val.sum()), "images",
      len(held), "cases", flush=True)
net = LesionNet()
opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.wd)
mean = torch.tensor(common.MEAN).view(1, 3, 1, 1) * 255.0
std = torch.tensor(common.STD).view(1, 3, 1, 1) * 255.0
S = args.size
step = 0
ck = run.load()
if ck is not None:
    net.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    resumable.Run.set_rng_state(ck["rng"])
    step = ck["step"]
    print("resumed at step", step, flush=True)


def batch():
    idx = np.random.choice(len(y), args.bs, p=pw)
    xs = []
    for i in idx:
        x = X[i]
        s = int(np.random.uniform(0.6, 1.0) * 224)
        x0, y0 = np.random.randint(0, 225 - s), np.random.randint(0, 225 - s)
        x = F.interpolate(x[None, :, y0:y0 + s, x0:x0 + s], size=(S, S), mode="bilinear", align_corners=False)[0]
        x = torch.rot90(x, np.random.randint(4), (1, 2))
        if np.random.rand() < 0.5:
            x = torch.flip(x, (2,))
        g = torch.empty(3, 1, 1).uniform_(0.8, 1.2)
        o = torch.empty(3, 1, 1).uniform_(-25, 25)
        c = float(np.random.uniform(0.7, 1.3))
        m = x.mean()
        x = (((x - m) * c + m) * g + o).clamp(0, 255)
        xs.append(x)
    x = (torch.stack(xs) - mean) / std
    return x, y[idx]


def save():
    ck = dict(model=net.state_dict(), optimizer=opt.state_dict(), step=step, args=vars(args),
              rng=resumable.Run.rng_state())
    run.save(ck, step, step >= args.steps,
             dict(schedule_formula=resumable.cosine_formula(0.02), train_images=int(len(tr)),
                  val_images=int(is_val.sum()), val_cases=sorted(held), threads=args.threads))


t0 = time.time()
while step < args.steps and not run.should_stop():
    lr = resumable.cosine_lr(step, args.steps, args.lr, args.warmup, 0.02)
    for g in opt.param_groups:
        g["lr"] = lr
    x, t = batch()
    loss = F.cross_entropy(net(x), t, label_smoothing=0.1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    step += 1
    if step % 20 == 0:
        print(f"step {step}/{args.steps} t {time.time() - t0:.0f}s lr {lr:.2e} loss {loss.item():.4f}", flush=True)
    if step % args.ckpt_every == 0:
        save()
save()
print("stopped" if step < args.steps else "done", step, "steps", f"{time.time() - t0:.0f}s this session", flush=True)
