"""Train the colon lesion tile classifier (6 classes, from scratch, CPU, seeded). Usage:
  /usr/bin/python3 scripts/lesion/train.py --time-budget 480 --out /tmp/patho/lesion1
Class-balanced sampling, flips/rot90/colour jitter/random resized crops. No validation split (240 images,
134 cases): fixed wall-time cosine schedule, the last checkpoint is the model. Never reads the test split.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from model import LesionNet  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--time-budget", type=float, default=480)
p.add_argument("--size", type=int, default=224)
p.add_argument("--bs", type=int, default=16)
p.add_argument("--lr", type=float, default=2e-3)
p.add_argument("--wd", type=float, default=5e-4)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--out", default="/tmp/patho/lesion1")
args = p.parse_args()
torch.set_num_threads(args.threads)
np.random.seed(args.seed)
torch.manual_seed(args.seed)
os.makedirs(args.out, exist_ok=True)
d = common.load_split("train")
X = torch.from_numpy(d["images"]).permute(0, 3, 1, 2).float()
y = torch.from_numpy(d["y"])
counts = np.bincount(d["y"], minlength=6)
pw = (1.0 / counts[d["y"]])
pw /= pw.sum()
print("train", len(y), "per class", counts.tolist(), flush=True)
net = LesionNet()
opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.wd)
mean = torch.tensor(common.MEAN).view(1, 3, 1, 1) * 255.0
std = torch.tensor(common.STD).view(1, 3, 1, 1) * 255.0
S = args.size


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


t0, step = time.time(), 0
while time.time() - t0 < args.time_budget:
    frac = (time.time() - t0) / args.time_budget
    lr = args.lr * min(1.0, (step + 1) / 30) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
    for g in opt.param_groups:
        g["lr"] = lr
    x, t = batch()
    loss = F.cross_entropy(net(x), t, label_smoothing=0.1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    step += 1
    if step % 20 == 0:
        print(f"step {step} t {time.time() - t0:.0f}s lr {lr:.2e} loss {loss.item():.4f}", flush=True)
torch.save(dict(model=net.state_dict(), step=step, args=vars(args)), os.path.join(args.out, "last.pt"))
json.dump(dict(steps=step, seconds=time.time() - t0, args=vars(args)), open(os.path.join(args.out, "train.json"), "w"))
print("done", step, "steps", f"{time.time() - t0:.0f}s", flush=True)
