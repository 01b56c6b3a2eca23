"""Export a checkpoint to ONNX (uint8 NHWC RGB input 'image' -> float32 'prob' [N,1,S/4,S/4]).
  /usr/bin/python3 scripts/polyp/export.py --ckpt /tmp/polyp/run1/best.pt --size 256 [--flip-tta] \
      --out models/polyp-detector-1.0.0.onnx
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import ExportWrapper, build_net  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--ckpt", required=True)
p.add_argument("--size", type=int, default=256)
p.add_argument("--flip-tta", action="store_true")
p.add_argument("--opset", type=int, default=13)
p.add_argument("--out", required=True)
p.add_argument("--version", default="1.0.0", help="model version written into the graph's doc string")
args = p.parse_args()
torch.set_num_threads(2)

ck = torch.load(args.ckpt, map_location="cpu")
a = ck.get("args", {})
net = build_net({"width": "32,32,64,96,160", "dec": "48,32", **a})
net.load_state_dict(ck["model"])
net.eval()
wrap = ExportWrapper(net, flip_tta=args.flip_tta).eval()
S = args.size
dummy = torch.randint(0, 256, (1, S, S, 3), dtype=torch.uint8)
torch.onnx.export(wrap, dummy, args.out, input_names=["image"], output_names=["prob"],
                  dynamic_axes={"image": {0: "N"}, "prob": {0: "N"}}, opset_version=args.opset,
                  do_constant_folding=True)
import onnx  # noqa: E402

m = onnx.load(args.out)
onnx.checker.check_model(m)
m.producer_name = "filmless-pacs scripts/polyp"
m.doc_string = ("polyp-detector " + args.version + ": input image uint8 [N,%d,%d,3] RGB letterboxed top-left (pad 0); "
                "output prob float32 [N,1,%d,%d] sigmoid polyp probability, stride %d" % (S, S, S // 4, S // 4, 4))
onnx.save(m, args.out)
with torch.no_grad():
    x = torch.randint(0, 256, (2, S, S, 3), dtype=torch.uint8)
    ref = wrap(x).numpy()
st = os.path.join("/tmp/polyp", os.path.basename(args.out))  # self-test tensors, never in the repo
os.makedirs("/tmp/polyp", exist_ok=True)
np.save(st + ".selftest_in.npy", x.numpy())
np.save(st + ".selftest_out.npy", ref)
print("exported", args.out, os.path.getsize(args.out), "bytes; out shape", ref.shape,
      "epoch", ck.get("epoch"), "step", ck.get("step"), "val", ck.get("val"))
