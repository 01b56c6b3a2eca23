"""Evaluate the lesion classifier .onnx on the EBHI test split (94 images, 47 cases) with onnxruntime-node.
  /usr/bin/python3 scripts/lesion/evaluate.py --onnx /tmp/patho/lesion-classifier-0.1.0.onnx --json /tmp/patho/lesion_test.json
Reports accuracy, per-class one-vs-rest sensitivity/specificity (argmax) and AUC, normal-vs-abnormal and
non-neoplastic-vs-neoplastic sensitivity/specificity at p >= 0.5 and AUC, the confusion matrix.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import common  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--onnx", required=True)
p.add_argument("--json", default=None)
p.add_argument("--tmp", default="/tmp/patho/eval")
args = p.parse_args()
d = common.load_split("test")
N, S = len(d["y"]), d["images"].shape[1]
os.makedirs(args.tmp, exist_ok=True)
fin, fout = os.path.join(args.tmp, "lesion_in.u8"), os.path.join(args.tmp, "lesion_out.f32")
np.ascontiguousarray(d["images"]).tofile(fin)
r = subprocess.run(["node", os.path.join(REPO, "scripts", "polyp", "run_onnx.mjs"), os.path.abspath(args.onnx), fin,
                    str(N), str(S), fout, "2", "20"], cwd=REPO, capture_output=True, text=True)
if r.returncode != 0:
    sys.exit("onnxruntime-node failed:\n" + r.stderr)
prob = np.fromfile(fout, dtype=np.float32).reshape(N, 6)
rep = common.full_report(prob, d["y"])
rep["ort"] = json.loads(r.stdout.strip().splitlines()[-1])
print(json.dumps(rep, indent=1))
if args.json:
    json.dump(rep, open(args.json, "w"), indent=1)
