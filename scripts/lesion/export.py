"""Export the lesion classifier: uint8 NHWC RGB 'image' [N,224,224,3] -> float32 'prob' [N,6] (softmax, classes
in common.CLASSES order).
  /usr/bin/python3 scripts/lesion/export.py --ckpt /tmp/patho/lesion1/last.pt --out /tmp/patho/lesion-classifier-0.1.0.onnx
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import ExportWrapper, LesionNet  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--ckpt", required=True)
p.add_argument("--size", type=int, default=224)
p.add_argument("--out", required=True)
args = p.parse_args()
ck = torch.load(args.ckpt, map_location="cpu")
net = LesionNet()
net.load_state_dict(ck["model"])
wrap = ExportWrapper(net.eval()).eval()
S = args.size
torch.onnx.export(wrap, torch.randint(0, 256, (1, S, S, 3), dtype=torch.uint8), args.out, input_names=["image"],
                  output_names=["prob"], dynamic_axes={"image": {0: "N"}, "prob": {0: "N"}}, opset_version=13,
                  do_constant_folding=True)
import onnx  # noqa: E402
m = onnx.load(args.out)
onnx.checker.check_model(m)
m.producer_name = "filmless-pacs scripts/lesion"
m.doc_string = "colon lesion tile classifier: image uint8 [N,224,224,3] RGB -> prob [N,6] softmax " \
               "(normal, polyp, low_grade_in, high_grade_in, serrated_adenoma, adenocarcinoma)"
onnx.save(m, args.out)
print("exported", args.out, os.path.getsize(args.out), "bytes; step", ck.get("step"))
