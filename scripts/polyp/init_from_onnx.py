"""Start a PolypNet from the weights of an exported polyp-detector .onnx (issue 23: "a run longer than one
sitting continues later from a committed or reproducible checkpoint").

The shipped .onnx files are the only weights that persist here (checkpoints live in /tmp, which does not
survive a session), so a fine-tuning run starts from the committed model. torch's ONNX export in eval mode
folds every BatchNorm into the convolution before it, leaving each Conv node with a weight and a bias;
this loader walks the graph's Conv nodes in order and the net's convolutions in execution order (forward
hooks on a dummy input), checks that every shape matches, and writes
  - a convolution followed by a BatchNorm: the folded weight into the conv, the folded bias into the
    BatchNorm's bias, the BatchNorm set to the identity (weight 1, running mean 0, running variance 1 - eps);
  - a convolution with its own bias (laterals, head): weight and bias as they are.
The net then computes the .onnx's function exactly as long as its BatchNorms stay in eval mode (the
trainer's --freeze-bn); `check()` compares both on real inputs through onnxruntime-node.
Written by hand: no maintained library maps a folded ONNX graph back onto a torch module.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import sha256  # noqa: E402,F401  (train.py records the starting file by it)
from model import ExportWrapper  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def _convs_in_execution_order(net, size):
    order = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod))
             for m in net.modules() if isinstance(m, nn.Conv2d)]
    was = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    net.train(was)
    for h in hooks:
        h.remove()
    return order


def _bn_after(net):
    """conv -> the BatchNorm registered right after it (cbr, Res, stem, ctx), else None."""
    mods = list(net.modules())
    return {id(m): (mods[k + 1] if k + 1 < len(mods) and isinstance(mods[k + 1], nn.BatchNorm2d) else None)
            for k, m in enumerate(mods) if isinstance(m, nn.Conv2d)}


def load(net, onnx_path, size=256):
    """Writes the .onnx's weights into `net` (a PolypNet of the same widths). Returns the number of convs."""
    model = onnx.load(onnx_path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    onnx_convs = [n for n in model.graph.node if n.op_type == "Conv"]
    convs = _convs_in_execution_order(net, size)
    if len(onnx_convs) != len(convs):
        raise ValueError(f"{onnx_path}: {len(onnx_convs)} Conv nodes, the net has {len(convs)} convolutions")
    bn_after = _bn_after(net)
    with torch.no_grad():
        for k, (node, conv) in enumerate(zip(onnx_convs, convs)):
            w = inits[node.input[1]]
            b = inits[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise ValueError(f"conv {k}: .onnx weight {w.shape} vs net {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(np.array(w)))
            bn = bn_after[id(conv)]
            if conv.bias is not None:
                conv.bias.copy_(torch.from_numpy(np.array(b)))
            elif bn is not None:
                bn.weight.fill_(1.0)
                bn.bias.copy_(torch.from_numpy(np.array(b)))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
            elif np.any(b != 0):
                raise ValueError(f"conv {k}: .onnx has a bias, the net's conv has none and no BatchNorm")
    return len(convs)


def check(net, onnx_path, images_u8, threads=2):
    """Max |prob difference| between the net (eval mode) and the .onnx run by onnxruntime-node (the
    server's runtime) on images_u8 [N,S,S,3]."""
    n, s = images_u8.shape[0], images_u8.shape[1]
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.u8"), os.path.join(tmp, "out.f32")
        np.ascontiguousarray(images_u8, dtype=np.uint8).tofile(inp)
        subprocess.run(["node", os.path.join(REPO, "scripts", "polyp", "run_onnx.mjs"), onnx_path, inp, str(n),
                        str(s), out, str(threads), "0"], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        ref = np.fromfile(out, dtype=np.float32)
    wrapper = ExportWrapper(net).eval()
    with torch.no_grad():
        mine = wrapper(torch.from_numpy(np.ascontiguousarray(images_u8))).numpy().ravel()
    return float(np.abs(mine - ref).max())
