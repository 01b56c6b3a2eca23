"""Train the polyp segmentation net (seeded). Usage:
  /usr/bin/python3 scripts/polyp/train.py --epochs 90 --out /tmp/polyp/run1
Holds out --val images of the train split (seeded) for checkpoint / threshold selection.
The test split is never read here.
"""
import argparse
import copy
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from model import PolypNet  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--size", type=int, default=256)
p.add_argument("--crop", type=int, default=192, help="training window (multiple of 32)")
p.add_argument("--src-size", type=int, default=320, help="cache size used as augmentation source")
p.add_argument("--epochs", type=int, default=90)
p.add_argument("--time-budget", type=float, default=0,
               help="seconds; if >0 the cosine schedule runs on elapsed wall time instead of steps and training "
                    "stops at the first epoch end past the budget (robust to a shared CPU; epochs/steps are logged)")
p.add_argument("--width", default="32,48,96,160,256", help="encoder widths")
p.add_argument("--dec", default="64,48", help="decoder widths")
p.add_argument("--warmup", type=int, default=100, help="warm-up steps")
p.add_argument("--bs", type=int, default=16)
p.add_argument("--lr", type=float, default=2e-3)
p.add_argument("--wd", type=float, default=1e-4)
p.add_argument("--val", type=int, default=80)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--eval-every", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--out", default="/tmp/polyp/run1")
p.add_argument("--max-batches", type=int, default=0, help="debug: stop epoch after n batches")
args = p.parse_args()

torch.set_num_threads(args.threads)
random.seed(args.seed)
np.random.seed(args.seed)
torch.manual_seed(args.seed)
os.makedirs(args.out, exist_ok=True)

S = args.size
src = common.build_cache("train", args.src_size)
ev = common.build_cache("train", S)
n = len(src["ids"])
perm = np.random.RandomState(args.seed).permutation(n)
val_idx = np.sort(perm[: args.val])
tr_idx = np.sort(perm[args.val:]) if args.val > 0 else np.arange(n)
with open(os.path.join(args.out, "split.json"), "w") as f:
    json.dump({"val": [src["ids"][i] for i in val_idx], "train": [src["ids"][i] for i in tr_idx]}, f)
print(f"train {len(tr_idx)} val {len(val_idx)}", flush=True)

src_img = torch.from_numpy(src["images"])  # uint8 [n,R,R,3]
src_msk = torch.from_numpy(src["masks"])   # uint8 [n,R,R]
R = args.src_size
# content extent (pixels) of each source image inside its R canvas
content_wh = []
for i in range(n):
    w, h = src["sizes"][i]
    _, nw, nh = common.letterbox_params(w, h, R)
    content_wh.append((nw, nh))
content_wh = np.array(content_wh)
mean = torch.tensor(common.MEAN).view(1, 3, 1, 1)
std = torch.tensor(common.STD).view(1, 3, 1, 1)


def make_batch(idx, rng):
    """Augmented batch: geometry is drawn on the S x S letterbox canvas (random scale, aspect,
    placement; 40% top-left like inference), then a random C x C window of that canvas is rendered
    (C = --crop, cheaper than full S on this CPU; the scale matches inference at S)."""
    b = len(idx)
    C = args.crop
    img = src_img[idx].permute(0, 3, 1, 2).float() / 255.0  # [b,3,R,R]
    msk = src_msk[idx].float().unsqueeze(1) / 255.0
    valid = torch.zeros(b, 1, R, R)
    for k, i in enumerate(idx):
        nw, nh = content_wh[i]
        valid[k, :, :nh, :nw] = 1.0
    theta = torch.zeros(b, 2, 3)
    for k in range(b):
        z = rng.uniform(0.6, 1.3) if rng.rand() < 0.8 else 1.0
        asp = math.exp(rng.uniform(-0.1, 0.1))
        kx, ky = S * z * asp / R, S * z / asp / R  # canvas px per source px
        nw, nh = content_wh[idx[k]]
        tw, th = nw * kx, nh * ky
        if rng.rand() < 0.4:
            ox, oy = 0.0, 0.0
        else:
            ox = rng.uniform(min(0.0, S - tw), max(0.0, S - tw))
            oy = rng.uniform(min(0.0, S - th), max(0.0, S - th))
        # crop window of the canvas; keep it over the content most of the time
        if C < S:
            cx = rng.uniform(max(0.0, min(ox, S - C)), max(0.0, min(ox + tw - C, S - C))) if tw > C else rng.uniform(0, S - C)
            cy = rng.uniform(max(0.0, min(oy, S - C)), max(0.0, min(oy + th - C, S - C))) if th > C else rng.uniform(0, S - C)
            if rng.rand() < 0.25:
                cx, cy = 0.0, 0.0
            ox, oy = ox - cx, oy - cy
        theta[k, 0, 0] = C / (kx * R)
        theta[k, 0, 2] = (C - 2 * ox) / (kx * R) - 1
        theta[k, 1, 1] = C / (ky * R)
        theta[k, 1, 2] = (C - 2 * oy) / (ky * R) - 1
    grid = F.affine_grid(theta, (b, 1, C, C), align_corners=False)
    stack = torch.cat([img, msk, valid], 1)
    out = F.grid_sample(stack, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    img, msk, valid = out[:, :3], out[:, 3:4], out[:, 4:5]
    # colour jitter on the content; padding stays black
    br = torch.from_numpy(rng.uniform(0.7, 1.3, (b, 1, 1, 1))).float()
    ct = torch.from_numpy(rng.uniform(0.7, 1.3, (b, 1, 1, 1))).float()
    sat = torch.from_numpy(rng.uniform(0.7, 1.3, (b, 1, 1, 1))).float()
    ch = torch.from_numpy(rng.uniform(0.92, 1.08, (b, 3, 1, 1))).float()
    gam = torch.from_numpy(rng.uniform(0.8, 1.25, (b, 1, 1, 1))).float()
    m = (img * valid).sum((1, 2, 3), keepdim=True) / (3 * valid.sum((1, 2, 3), keepdim=True) + 1e-6)
    img = (img - m) * ct + m
    gray = img.mean(1, keepdim=True)
    img = (img - gray) * sat + gray
    img = (img * br * ch).clamp(0, 1) ** gam
    img = img * valid
    # blur some
    sel = [k for k in range(b) if rng.rand() < 0.2]
    if sel:
        s = rng.uniform(0.5, 1.2)
        ax = torch.arange(-2, 3).float()
        g = torch.exp(-ax ** 2 / (2 * s * s))
        g = g / g.sum()
        kern = (g[:, None] * g[None, :]).view(1, 1, 5, 5).repeat(3, 1, 1, 1)
        img[sel] = F.conv2d(F.pad(img[sel], (2, 2, 2, 2), mode="reflect"), kern, groups=3)
    img = img + torch.randn_like(img) * torch.from_numpy(rng.uniform(0, 0.02, (b, 1, 1, 1))).float()
    img = (img.clamp(0, 1) * 255).round() / 255  # emulate uint8 input
    # flips / rot90 (whole window)
    for k in range(b):
        dims = []
        if rng.rand() < 0.5:
            dims.append(2)
        if rng.rand() < 0.5:
            dims.append(1)
        if dims:
            img[k] = torch.flip(img[k], dims)
            msk[k] = torch.flip(msk[k], dims)
        r = rng.randint(4)
        if r:
            img[k] = torch.rot90(img[k], r, [1, 2])
            msk[k] = torch.rot90(msk[k], r, [1, 2])
    x = (img - mean) / std
    y = F.avg_pool2d(msk, PolypNet.stride)
    return x, y


def loss_fn(logits, y):
    bce = F.binary_cross_entropy_with_logits(logits, y)
    pr = torch.sigmoid(logits)
    inter = (pr * y).sum((1, 2, 3))
    dice = 1 - (2 * inter + 1) / (pr.sum((1, 2, 3)) + y.sum((1, 2, 3)) + 1)
    return bce + dice.mean()


@torch.no_grad()
def predict(net, data, idx, flip=False, bs=16):
    net.eval()
    out = []
    for s in range(0, len(idx), bs):
        ii = idx[s:s + bs]
        x = torch.from_numpy(data["images"][ii]).permute(0, 3, 1, 2).float() / 255.0
        x = (x - mean) / std
        pr = torch.sigmoid(net(x))
        if flip:
            pr = 0.5 * (pr + torch.flip(torch.sigmoid(net(torch.flip(x, [3]))), [3]))
        out.append(pr[:, 0].numpy())
    return np.concatenate(out)


net = PolypNet(tuple(int(v) for v in args.width.split(',')), tuple(int(v) for v in args.dec.split(',')))
print("params", sum(p.numel() for p in net.parameters()), flush=True)
ema = copy.deepcopy(net)
for q in ema.parameters():
    q.requires_grad_(False)
opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.wd)
steps_per_epoch = len(tr_idx) // args.bs
if args.max_batches:
    steps_per_epoch = min(steps_per_epoch, args.max_batches)
total = steps_per_epoch * args.epochs
n_epochs = args.epochs


def progress(step):
    if args.time_budget > 0:
        return min(1.0, (time.time() - t0) / args.time_budget)
    total = n_epochs * steps_per_epoch
    return min(1.0, (step - args.warmup) / max(1, total - args.warmup))


def lr_at(step):
    """linear warm-up (fixed steps) then cosine to lr/200 (over steps, or over wall time with --time-budget)."""
    if step < args.warmup:
        return args.lr * (0.05 + 0.95 * step / args.warmup)
    f = progress(step)
    return args.lr * (0.005 + 0.995 * 0.5 * (1 + math.cos(math.pi * f)))


rng = np.random.RandomState(args.seed + 1)
best = -1.0
hist = []
t0 = time.time()
step = 0
ep = 0
while True:
    net.train()
    order = rng.permutation(tr_idx)
    tl = 0.0
    te = time.time()
    for bi in range(steps_per_epoch):
        idx = order[bi * args.bs:(bi + 1) * args.bs]
        x, y = make_batch(idx, rng)
        logits = net(x)
        loss = loss_fn(logits, y)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        d = min(0.995, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pn in zip(ema.parameters(), net.parameters()):
                pe.mul_(d).add_(pn.detach(), alpha=1 - d)
            for be, bn in zip(ema.buffers(), net.buffers()):
                be.copy_(bn)
        tl += loss.item()
    f_now = progress(step)
    last = (args.time_budget > 0 and f_now >= 1.0) or (args.time_budget <= 0 and ep + 1 == n_epochs)
    msg = f"ep {ep + 1} prog {f_now:.3f} step {step} loss {tl / steps_per_epoch:.4f} lr {lr_at(step):.2e} " \
          f"ep_s {time.time() - te:.1f} tot_s {time.time() - t0:.0f}"
    if len(val_idx) and ((ep + 1) % args.eval_every == 0 or last or f_now > 0.7):
        probs = predict(ema, ev, val_idx)
        r = common.evaluate_probs(probs, ev, PolypNet.stride, val_idx)
        msg += f" | val ap50 {r['ap50']:.4f} ap50_95 {r['ap50_95']:.4f}"
        score = r["ap50"] + 0.25 * r["ap50_95"]
        hist.append(dict(epoch=ep + 1, ap50=r["ap50"], ap50_95=r["ap50_95"]))
        if score > best:
            best = score
            torch.save({"model": ema.state_dict(), "epoch": ep + 1, "step": step, "val": hist[-1], "args": vars(args)},
                       os.path.join(args.out, "best.pt"))
            msg += " *"
    torch.save({"model": ema.state_dict(), "epoch": ep + 1, "args": vars(args)}, os.path.join(args.out, "last.pt"))
    print(msg, flush=True)
    ep += 1
    if last:
        break
with open(os.path.join(args.out, "history.json"), "w") as f:
    json.dump(dict(hist=hist, wall_s=time.time() - t0, epochs=ep, steps=step), f)
print("done", time.time() - t0, flush=True)
