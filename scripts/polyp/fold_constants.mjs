// usage: node scripts/polyp/fold_constants.mjs in.onnx out.onnx
// Writes the graph as onnxruntime's basic (hardware-independent) optimizations leave it: constant
// subgraphs folded and zero Pads fused into their Conv's pads. The NanoDet-backbone export computes every
// F.pad's amounts with Shape/Slice/Concat chains and puts a Pad before each Conv; quantize.py needs plain
// Conv inputs to place its Q/DQ pairs (scripts/polyp/README.md, "int8").
import ort from 'onnxruntime-node';

const [src, dst] = process.argv.slice(2);
if (!src || !dst) throw new Error('usage: node scripts/polyp/fold_constants.mjs in.onnx out.onnx');
await ort.InferenceSession.create(src, { graphOptimizationLevel: 'basic', optimizedModelFilePath: dst });
console.log(`wrote ${dst}`);
