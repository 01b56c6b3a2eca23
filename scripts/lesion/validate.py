"""Score checkpoints on the case-disjoint validation part of TRAIN recorded in their run.json (never the test split).
  /usr/bin/python3 scripts/lesion/validate.py /tmp/patho/lesion2 /tmp/patho/lesion3 [--json out.json]
Prints, per run folder, the full report (accuracy, per-class, binary groupings, confusion) on the held-out cases.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from model import ExportWrapper, LesionNet  # noqa: E402

torch.set_num_threads(2)
d = common.load_split("train")
args = sys.argv[1:]
json_out = None
if "--json" in args:
    i = args.index("--json")
    json_out = args[i + 1]
    del args[i:i + 2]
out = {}
for folder in args:
    run = json.load(open(os.path.join(folder, "run.json")))
    held = set(run["val_cases"])
    idx = np.array([i for i, c in enumerate(d["cases"]) if c in held])
    ck = torch.load(os.path.join(folder, "last.pt"), map_location="cpu")
    net = LesionNet()
    net.load_state_dict(ck["model"])
    wrap = ExportWrapper(net.eval()).eval()
    with torch.no_grad():
        prob = wrap(torch.from_numpy(d["images"][idx])).numpy()
    rep = common.full_report(prob, d["y"][idx])
    rep["step"], rep["val_cases"] = ck["step"], len(held)
    out[folder] = rep
    print(folder, "step", ck["step"], "val images", len(idx), "cases", len(held), "acc %.3f" % rep["accuracy"],
          "nonneo-vs-neo AUC %.3f" % rep["nonneoplastic_vs_neoplastic"]["auc"],
          "normal-vs-abnormal AUC %.3f" % rep["normal_vs_abnormal"]["auc"], flush=True)
print(json.dumps(out, indent=1))
if json_out:
    json.dump(out, open(json_out, "w"), indent=1)
