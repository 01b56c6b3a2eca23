"""Export a nuclei checkpoint to ONNX (uint8 NHWC RGB input 'image' [N,S,S,3] -> float32 'prob' [N,1,S/2,S/2]).
  /usr/bin/python3 scripts/nuclei/export.py --ckpt /tmp/patho/run1/best.pt --size 320 \
      --out models/nuclei-detector-1.0.0.onnx
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import ExportWrapper, NucleiNet  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--ckpt", required=True)
p.add_argument("--size", type=int, default=320)
p.add_argument("--flip-tta", action="store_true", help="average with the left-right flip (the polyp wrapper's TTA)")
p.add_argument("--tta", choices=["none", "flips4"], default="none",
               help="flips4: average the output over the image as is, flipped left-right, up-down and both")
p.add_argument("--opset", type=int, default=13)
p.add_argument("--out", required=True)
args = p.parse_args()
torch.set_num_threads(2)

ck = torch.load(args.ckpt, map_location="cpu")
a = ck.get("args", {})
net = NucleiNet(tuple(int(v) for v in a.get("width", "24,32,64,96,128").split(",")),
                tuple(int(v) for v in a.get("dec", "48,32").split(",")), out=2 if a.get("core_weight", 0) > 0 else 1)
net.load_state_dict(ck["model"])
net.eval()
wrap = ExportWrapper(net, flip_tta=args.flip_tta).eval()


class Flips4(torch.nn.Module):
    """The wrapper's output averaged over the four flips of the input (each flipped back before averaging)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, image):  # uint8 NHWC: W is dim 2, H dim 1; the output is NCHW
        p = self.inner(image)
        p = p + torch.flip(self.inner(torch.flip(image, [2])), [3])
        p = p + torch.flip(self.inner(torch.flip(image, [1])), [2])
        p = p + torch.flip(self.inner(torch.flip(image, [1, 2])), [2, 3])
        return p * 0.25


if args.tta == "flips4":
    wrap = Flips4(wrap).eval()
S, st = args.size, NucleiNet.stride
dummy = torch.randint(0, 256, (1, S, S, 3), dtype=torch.uint8)
torch.onnx.export(wrap, dummy, args.out, input_names=["image"], output_names=["prob"],
                  dynamic_axes={"image": {0: "N"}, "prob": {0: "N"}}, opset_version=args.opset,
                  do_constant_folding=True)
import onnx  # noqa: E402

ref_channels = 2 if a.get("core_weight", 0) > 0 else 1
m = onnx.load(args.out)
onnx.checker.check_model(m)
m.producer_name = "filmless-pacs scripts/nuclei"
m.doc_string = ("nuclei-detector: input image uint8 [N,%d,%d,3] RGB letterboxed top-left (pad 0); "
                "output prob float32 [N,%d,%d,%d] sigmoid nucleus-interior probability%s, stride %d"
                % (S, S, ref_channels, S // st, S // st, " (channel 0) and nucleus-core probability (channel 1)"
                   if ref_channels == 2 else "", st))
onnx.save(m, args.out)
with torch.no_grad():
    x = torch.randint(0, 256, (2, S, S, 3), dtype=torch.uint8)
    ref = wrap(x).numpy()
os.makedirs("/tmp/patho", exist_ok=True)
base = os.path.join("/tmp/patho", os.path.basename(args.out))  # self-test tensors, never in the repo
np.save(base + ".selftest_in.npy", x.numpy())
np.save(base + ".selftest_out.npy", ref)
print("exported", args.out, os.path.getsize(args.out), "bytes; out shape", ref.shape,
      "step", ck.get("step"), "val", ck.get("val"))
