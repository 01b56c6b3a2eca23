#!/usr/bin/env python3
"""Builds test-fixtures/models/bright-spot-1.0.0.onnx: a tiny, hand-wired "detector" whose output
follows the same contract as the polyp model (uint8 NHWC input, `prob` mask [N,1,h,w]) and marks
bright pixels: prob = sigmoid((mean(R,G,B) - 128) / 10). Tests use it to check the engine, the HTTP
API and the SR writer with boxes that are known exactly, without depending on the trained model.

It also builds dark-spot-1.0.0.onnx for the whole-slide analysis jobs (server/src/pathology): a 256x256
input, prob = sigmoid((128 - mean(R,G,B)) / 10) averaged over 4x4 cells (mask 64x64, stride 4), i.e. it
marks dark (haematoxylin-stained, nuclei-ish) regions of an H&E slide. Its manifest entry declares the
training resolution `input.pixelSpacingMm` = 0.0005 (0.5 um/px, about 20x). Not a medical model.

And dark-tissue-1.0.0.onnx, a hand-wired tile *classifier* (task "classification", output
"class-probabilities") for slide jobs that produce POLYGON regions: a 32x32 input, output `prob` [N,2] =
softmax([0, (170 - mean(R,G,B over the tile)) / 10]) over the labels [normal, lesion], i.e. P(lesion) =
sigmoid((170 - mean) / 10): tiles darker than mean RGB 170 (densely stained tissue) are "lesion". Trained
"at" 2 um/px (`input.pixelSpacingMm` = 0.002). Not a medical model.

And red-box-1.0.0.onnx, a hand-wired *box verifier* (manifest `output.verifier`, server/src/inference/
box-verifier.ts): a 16x16 crop in, `prob` [N,1] = sigmoid((mean(R) - mean(G)) / 10) out, i.e. "the box is
reddish". Not listed in the manifest: tests attach it to bright-spot in a copy of the manifest.

Run with Debian's python3-onnx:  /usr/bin/python3 scripts/make-test-model.py
"""
import hashlib
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 64
HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, '..', 'test-fixtures', 'models')
FILE = 'bright-spot-1.0.0.onnx'


def save(graph, name):
    """Checks and writes one hand-wired model (opset 13, IR 7) into OUT_DIR; returns its path and sha256."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)], producer_name='filmless-pacs tests')
    model.ir_version = 7
    onnx.checker.check_model(model)
    os.makedirs(OUT_DIR, exist_ok=True)
    file = os.path.join(OUT_DIR, name)
    onnx.save(model, file)
    return file, hashlib.sha256(open(file, 'rb').read()).hexdigest()


image = helper.make_tensor_value_info('image', TensorProto.UINT8, ['N', SIZE, SIZE, 3])
prob = helper.make_tensor_value_info('prob', TensorProto.FLOAT, ['N', 1, SIZE, SIZE])
inits = [
    numpy_helper.from_array(np.array([128.0], dtype=np.float32), 'offset'),
    numpy_helper.from_array(np.array([0.1], dtype=np.float32), 'gain'),
]
nodes = [
    helper.make_node('Cast', ['image'], ['image_f'], to=TensorProto.FLOAT),
    helper.make_node('ReduceMean', ['image_f'], ['luma'], axes=[3], keepdims=1),
    helper.make_node('Transpose', ['luma'], ['luma_nchw'], perm=[0, 3, 1, 2]),
    helper.make_node('Sub', ['luma_nchw', 'offset'], ['centred']),
    helper.make_node('Mul', ['centred', 'gain'], ['logits']),
    helper.make_node('Sigmoid', ['logits'], ['prob']),
]
graph = helper.make_graph(nodes, 'bright-spot', [image], [prob], inits)
path, digest = save(graph, FILE)

# dark-spot: prob = sigmoid((128 - mean(R,G,B)) / 10), averaged over 4x4 cells.
DARK_SIZE = 256
DARK_STRIDE = 4
DARK_FILE = 'dark-spot-1.0.0.onnx'
dark_image = helper.make_tensor_value_info('image', TensorProto.UINT8, ['N', DARK_SIZE, DARK_SIZE, 3])
dark_prob = helper.make_tensor_value_info('prob', TensorProto.FLOAT, ['N', 1, DARK_SIZE // DARK_STRIDE, DARK_SIZE // DARK_STRIDE])
dark_inits = [
    numpy_helper.from_array(np.array([128.0], dtype=np.float32), 'offset'),
    numpy_helper.from_array(np.array([-0.1], dtype=np.float32), 'gain'),
]
dark_nodes = [
    helper.make_node('Cast', ['image'], ['image_f'], to=TensorProto.FLOAT),
    helper.make_node('ReduceMean', ['image_f'], ['luma'], axes=[3], keepdims=1),
    helper.make_node('Transpose', ['luma'], ['luma_nchw'], perm=[0, 3, 1, 2]),
    helper.make_node('AveragePool', ['luma_nchw'], ['pooled'], kernel_shape=[DARK_STRIDE, DARK_STRIDE], strides=[DARK_STRIDE, DARK_STRIDE]),
    helper.make_node('Sub', ['pooled', 'offset'], ['centred']),
    helper.make_node('Mul', ['centred', 'gain'], ['logits']),
    helper.make_node('Sigmoid', ['logits'], ['prob']),
]
dark_graph = helper.make_graph(dark_nodes, 'dark-spot', [dark_image], [dark_prob], dark_inits)
dark_path, dark_digest = save(dark_graph, DARK_FILE)

# dark-tissue: P(lesion) = softmax([0, (170 - mean(R,G,B)) / 10])[1], a [N,2] output.
TISSUE_SIZE = 32
TISSUE_FILE = 'dark-tissue-1.0.0.onnx'
tissue_image = helper.make_tensor_value_info('image', TensorProto.UINT8, ['N', TISSUE_SIZE, TISSUE_SIZE, 3])
tissue_prob = helper.make_tensor_value_info('prob', TensorProto.FLOAT, ['N', 2])
tissue_inits = [
    numpy_helper.from_array(np.array([170.0], dtype=np.float32), 'offset'),
    numpy_helper.from_array(np.array([0.1], dtype=np.float32), 'gain'),
    numpy_helper.from_array(np.array([0.0], dtype=np.float32), 'zero'),
    numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), 'column'),
]
tissue_nodes = [
    helper.make_node('Cast', ['image'], ['image_f'], to=TensorProto.FLOAT),
    helper.make_node('ReduceMean', ['image_f'], ['mean4'], axes=[1, 2, 3], keepdims=1),
    helper.make_node('Reshape', ['mean4', 'column'], ['mean']),
    helper.make_node('Sub', ['offset', 'mean'], ['centred']),
    helper.make_node('Mul', ['centred', 'gain'], ['lesion_logit']),
    helper.make_node('Mul', ['lesion_logit', 'zero'], ['normal_logit']),
    helper.make_node('Concat', ['normal_logit', 'lesion_logit'], ['logits'], axis=1),
    helper.make_node('Softmax', ['logits'], ['prob'], axis=1),
]
tissue_graph = helper.make_graph(tissue_nodes, 'dark-tissue', [tissue_image], [tissue_prob], tissue_inits)
tissue_path, tissue_digest = save(tissue_graph, TISSUE_FILE)

# red-box: a box verifier, P = sigmoid((mean(R) - mean(G)) / 10) over a 16x16 crop, a [N,1] output.
VERIFIER_SIZE = 16
VERIFIER_FILE = 'red-box-1.0.0.onnx'
crop = helper.make_tensor_value_info('crop', TensorProto.UINT8, ['N', VERIFIER_SIZE, VERIFIER_SIZE, 3])
crop_prob = helper.make_tensor_value_info('prob', TensorProto.FLOAT, ['N', 1])
verifier_inits = [
    numpy_helper.from_array(np.array([0.1], dtype=np.float32), 'gain'),
    numpy_helper.from_array(np.array([-1, 3], dtype=np.int64), 'rgb'),
    numpy_helper.from_array(np.array([1.0, -1.0, 0.0], dtype=np.float32).reshape(3, 1), 'red_minus_green'),
]
verifier_nodes = [
    helper.make_node('Cast', ['crop'], ['crop_f'], to=TensorProto.FLOAT),
    helper.make_node('ReduceMean', ['crop_f'], ['channel_means'], axes=[1, 2], keepdims=1),
    helper.make_node('Reshape', ['channel_means', 'rgb'], ['means']),
    helper.make_node('MatMul', ['means', 'red_minus_green'], ['difference']),
    helper.make_node('Mul', ['difference', 'gain'], ['logit']),
    helper.make_node('Sigmoid', ['logit'], ['prob']),
]
verifier_graph = helper.make_graph(verifier_nodes, 'red-box', [crop], [crop_prob], verifier_inits)
verifier_path, verifier_digest = save(verifier_graph, VERIFIER_FILE)

manifest = {
    'models': [
        {
            'id': 'bright-spot',
            'version': '1.0.0',
            'task': 'detection',
            'description': 'Test fixture: marks bright regions (mean RGB above 128). Not a medical model.',
            'labels': ['polyp'],
            'file': FILE,
            'sha256': digest,
            'licence': 'Same as this repository',
            'trainingData': 'None: weights are set by hand in scripts/make-test-model.py',
            'card': 'README.md',
            'input': {
                'name': 'image', 'layout': 'NHWC', 'dtype': 'uint8', 'width': SIZE, 'height': SIZE,
                'colorSpace': 'RGB', 'resize': 'letterbox-top-left', 'padValue': 0,
                'normalisation': 'inside the graph: mean over R, G, B',
            },
            'output': {'name': 'prob', 'format': 'mask-components', 'stride': 1, 'maskThreshold': 0.5, 'minAreaFraction': 0.002},
            'operatingThreshold': 0.5,
            'metrics': {'split': 'none (test fixture)'},
        },
        {
            'id': 'dark-spot',
            'version': '1.0.0',
            'task': 'detection',
            'description': 'Test fixture for slide analysis: marks dark regions (mean RGB below 128, e.g. haematoxylin-stained nuclei). Not a medical model.',
            'labels': ['nucleus'],
            'file': DARK_FILE,
            'sha256': dark_digest,
            'licence': 'Same as this repository',
            'trainingData': 'None: weights are set by hand in scripts/make-test-model.py',
            'card': 'README.md',
            'input': {
                'name': 'image', 'layout': 'NHWC', 'dtype': 'uint8', 'width': DARK_SIZE, 'height': DARK_SIZE,
                'colorSpace': 'RGB', 'resize': 'letterbox-top-left', 'padValue': 255,
                'normalisation': 'inside the graph: mean over R, G, B, averaged over 4x4 pixels',
                'pixelSpacingMm': 0.0005,
            },
            'output': {'name': 'prob', 'format': 'mask-components', 'stride': DARK_STRIDE, 'maskThreshold': 0.5, 'minAreaFraction': 0.001},
            'operatingThreshold': 0.5,
            'metrics': {'split': 'none (test fixture)'},
        },
        {
            'id': 'dark-tissue',
            'version': '1.0.0',
            'task': 'classification',
            'description': 'Test fixture for slide tile classification: calls a tile "lesion" when its mean RGB is below 170 (densely stained tissue). Not a medical model.',
            'labels': ['normal', 'lesion'],
            'file': TISSUE_FILE,
            'sha256': tissue_digest,
            'licence': 'Same as this repository',
            'trainingData': 'None: weights are set by hand in scripts/make-test-model.py',
            'card': 'README.md',
            'input': {
                'name': 'image', 'layout': 'NHWC', 'dtype': 'uint8', 'width': TISSUE_SIZE, 'height': TISSUE_SIZE,
                'colorSpace': 'RGB', 'resize': 'letterbox-top-left', 'padValue': 255,
                'normalisation': 'inside the graph: mean over all pixels and R, G, B',
                'pixelSpacingMm': 0.002,
            },
            'output': {'name': 'prob', 'format': 'class-probabilities', 'positiveLabels': ['lesion']},
            'operatingThreshold': 0.5,
            'metrics': {'split': 'none (test fixture)'},
        },
    ]
}
with open(os.path.join(OUT_DIR, 'manifest.json'), 'w') as f:
    json.dump(manifest, f, indent=2)
    f.write('\n')
print(path, digest)
print(dark_path, dark_digest)
print(tissue_path, tissue_digest)
print(verifier_path, verifier_digest)
