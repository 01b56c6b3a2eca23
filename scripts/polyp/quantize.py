"""Static int8 quantization (QDQ) of a detector's ONNX graph for onnxruntime's CPU kernels.

Why by hand: onnxruntime's own quantizer (onnxruntime.quantization) is a Python package that is not in
Debian and not reachable here; the graph is small and regular (Conv, Relu, Add, Resize, ReduceMean,
Sigmoid, BatchNorm already folded), so the QDQ form onnxruntime documents is written directly:

- every Conv weight becomes int8, symmetric, one scale per output channel (axis 0), behind a
  DequantizeLinear; its bias becomes int32 with scale = input scale × weight scale (the form
  onnxruntime's QDQ Conv selector fuses into QLinearConv);
- every activation that a Conv, a Relu or an Add produces is passed through QuantizeLinear →
  DequantizeLinear (uint8, asymmetric; a Relu after a Conv or an Add is folded into that Q with zero
  point 0, whose clamp at 0 is the Relu);
- the outputs of LeakyReLU, Concat and MaxPool nodes (the COCO backbone's, after fold_constants.mjs;
  PolypNet has none, so 1.2.0 is unchanged) get a Q/DQ pair too, so that onnxruntime forms
  QLinearLeakyRelu and QLinearConcat and every convolution's input is quantized;
- the graph's first layers (uint8 → float normalisation) and the last Conv and Sigmoid (the
  probabilities the post-processing thresholds) stay in float.

Ranges come from a calibration pass (scripts/polyp/calibrate.mjs) over training images only (1.2.0: the
99.999th percentile of a sample of each tensor's values; models/polyp-detector.md says how it was chosen).

usage (the whole recipe of polyp-detector 1.2.0: scripts/polyp/README.md, "int8"):
  python3 scripts/polyp/quantize.py tensors IN.onnx OUT_probe.onnx          # graph that outputs every tensor to calibrate
  node scripts/polyp/calibrate.mjs OUT_probe.onnx calib.u8 200 256 ranges.json 99.999
  python3 scripts/polyp/quantize.py quantize IN.onnx RANGES.json OUT.onnx   # the QDQ model
  option --only-prefix=/net/backbone/ (both commands): quantize only the nodes whose names start with it
"""
import json
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def consumers(graph):
    out = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def producers(graph):
    return {o: n for n in graph.node for o in n.output}


def plan(graph, only_prefix=None):
    """Tensors to quantize: {tensor: relu_folded_from_tensor_or_None}. The last Conv stays float; with
    `only_prefix`, so does every node whose name does not start with it (e.g. "/net/backbone/": the
    backbone in int8, the decoder in float; its inputs are the backbone's quantized outputs, dequantized)."""
    cons = consumers(graph)
    convs = [n for n in graph.node if n.op_type == "Conv"]
    last_conv = convs[-1]
    targets = {}
    for n in graph.node:
        if n is last_conv or (only_prefix is not None and not n.name.startswith(only_prefix)):
            continue
        if n.op_type in ("Conv", "Add"):
            y = n.output[0]
            users = cons.get(y, [])
            if len(users) == 1 and users[0].op_type == "Relu":
                targets[users[0].output[0]] = y  # Q after the Relu; the Relu is folded into it
            else:
                targets[y] = None
        if n.op_type in ("LeakyRelu", "Concat", "MaxPool"):
            # (the NanoDet backbone's ops; PolypNet has none) Q/DQ after each, so onnxruntime's QDQ
            # selectors form QLinearLeakyRelu / QLinearConcat / an int8 MaxPool around them
            targets.setdefault(n.output[0], None)
        if n.op_type == "Conv":
            x = n.input[0]
            # the first Conv's input (normalised image) too
            if x not in targets and producers(graph).get(x) is not None and producers(graph)[x].op_type not in ("Conv", "Add", "Relu"):
                targets[x] = None
    return targets, last_conv


def probe(src, dst, only_prefix=None):
    m = onnx.load(src)
    targets, _ = plan(m.graph, only_prefix)
    names = list(targets)
    for t in names:
        m.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    onnx.save(m, dst)
    print(json.dumps(names))


def quantize(src, ranges_file, dst, only_prefix=None):
    m = onnx.load(src)
    g = m.graph
    ranges = json.load(open(ranges_file))
    targets, last_conv = plan(g, only_prefix)
    inits = {i.name: i for i in g.initializer}
    prod = producers(g)
    new_nodes = []
    qparams = {}  # tensor -> (scale, zero_point)
    for t, relu_src in targets.items():
        lo, hi = ranges[t]
        lo = min(0.0, lo)
        hi = max(hi, lo + 1e-6)
        if relu_src is not None:
            lo = 0.0
        scale = (hi - lo) / 255.0
        zp = int(np.clip(round(-lo / scale), 0, 255))
        qparams[t] = (scale, zp)
    # Remove folded Relus: their output is produced by the Q/DQ pair from the Conv/Add output.
    folded = {t: src_t for t, src_t in targets.items() if src_t is not None}
    renamed = {}  # tensor name consumers should read instead (the DQ output)
    for t, (scale, zp) in qparams.items():
        s_name, z_name = f"{t}_qscale", f"{t}_qzp"
        g.initializer.extend([numpy_helper.from_array(np.array(scale, dtype=np.float32), s_name),
                              numpy_helper.from_array(np.array(zp, dtype=np.uint8), z_name)])
        src_t = folded.get(t, t)
        new_nodes.append((src_t, [
            helper.make_node("QuantizeLinear", [src_t, s_name, z_name], [f"{t}_q"], name=f"{t}_Q"),
            helper.make_node("DequantizeLinear", [f"{t}_q", s_name, z_name], [f"{t}_dq"], name=f"{t}_DQ"),
        ]))
        renamed[t] = f"{t}_dq"
    relus_to_drop = {id(n) for n in g.node if n.op_type == "Relu" and n.output[0] in folded}
    # Conv weights (int8 per channel) and biases (int32), for every Conv whose input is quantized.
    weight_nodes = []
    for n in g.node:
        if n.op_type != "Conv" or n is last_conv:
            continue
        if only_prefix is not None and not n.name.startswith(only_prefix):
            continue
        x = n.input[0]
        if x not in qparams:
            continue
        w = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
        absmax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        ws = np.maximum(absmax, 1e-8) / 127.0
        wq = np.clip(np.round(w / ws.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127).astype(np.int8)
        wn = n.input[1]
        g.initializer.extend([numpy_helper.from_array(wq, f"{wn}_q"),
                              numpy_helper.from_array(ws.astype(np.float32), f"{wn}_wscale"),
                              numpy_helper.from_array(np.zeros_like(ws, dtype=np.int8), f"{wn}_wzp")])
        weight_nodes.append(helper.make_node("DequantizeLinear", [f"{wn}_q", f"{wn}_wscale", f"{wn}_wzp"], [f"{wn}_dq"], axis=0, name=f"{wn}_DQ"))
        n.input[1] = f"{wn}_dq"
        if len(n.input) > 2 and n.input[2]:
            b = numpy_helper.to_array(inits[n.input[2]]).astype(np.float32)
            bs = (qparams[x][0] * ws).astype(np.float32)
            bq = np.round(b / bs).astype(np.int32)
            bn = n.input[2]
            g.initializer.extend([numpy_helper.from_array(bq, f"{bn}_q"),
                                  numpy_helper.from_array(bs, f"{bn}_bscale"),
                                  numpy_helper.from_array(np.zeros_like(bq, dtype=np.int32), f"{bn}_bzp")])
            weight_nodes.append(helper.make_node("DequantizeLinear", [f"{bn}_q", f"{bn}_bscale", f"{bn}_bzp"], [f"{bn}_dq"], axis=0, name=f"{bn}_DQ"))
            n.input[2] = f"{bn}_dq"
    # Rewire consumers to the DQ outputs, drop folded Relus, and insert Q/DQ right after their source.
    inserted_after = {src: nodes for src, nodes in new_nodes}
    out_nodes = list(weight_nodes)
    for n in g.node:
        if id(n) in relus_to_drop:
            continue
        for i, name in enumerate(n.input):
            if name in renamed:
                n.input[i] = renamed[name]
        out_nodes.append(n)
        for o in n.output:
            if o in inserted_after:
                out_nodes.extend(inserted_after[o])
    del g.node[:]
    g.node.extend(out_nodes)
    # The float weights and biases the int8 ones replace are no longer read by any node.
    used = {i for n in g.node for i in n.input}
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    # Graph outputs keep their names (the last Conv/Sigmoid are untouched).
    onnx.checker.check_model(m)
    onnx.save(m, dst)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="static int8 quantization (QDQ) of a detector graph; see the module docstring")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--only-prefix", default=None, help="quantize only the nodes whose names start with this (e.g. /net/backbone/)")
    commands = parser.add_subparsers(dest="command", required=True)
    tensors = commands.add_parser("tensors", parents=[common], help="write a graph that outputs every tensor to calibrate")
    tensors.add_argument("src")
    tensors.add_argument("dst")
    quant = commands.add_parser("quantize", parents=[common], help="write the QDQ model from calibrated ranges")
    quant.add_argument("src")
    quant.add_argument("ranges")
    quant.add_argument("dst")
    a = parser.parse_args()
    if a.command == "tensors":
        probe(a.src, a.dst, a.only_prefix)
    else:
        quantize(a.src, a.ranges, a.dst, a.only_prefix)
