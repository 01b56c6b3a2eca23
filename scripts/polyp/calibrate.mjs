// Calibration pass for scripts/polyp/quantize.py: runs the probe graph (every tensor to quantize as an
// output) with onnxruntime-node over letterboxed training images and writes each tensor's range.
// usage: node scripts/polyp/calibrate.mjs probe.onnx images.u8 N S ranges.json [percentile]
// Range = [min, max] over all images (onnxruntime's default MinMax calibration), or with a percentile
// (e.g. 99.99) the [100 - p, p] percentiles of a 1-in-16 sample of every tensor's values over all images.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.resolve('package.json'));
const ort = require('onnxruntime-node');
const [model, inFile, nStr, sStr, outFile, pctStr] = process.argv.slice(2);
const pct = pctStr === undefined ? undefined : Number(pctStr);
const samples = {};
const N = Number(nStr), S = Number(sStr);
const sess = await ort.InferenceSession.create(model, { intraOpNumThreads: 2, graphOptimizationLevel: 'all' });
const buf = readFileSync(inFile);
const per = S * S * 3;
const ranges = {};
for (let i = 0; i < N; i++) {
  const t = new ort.Tensor('uint8', new Uint8Array(buf.buffer, buf.byteOffset + i * per, per), [1, S, S, 3]);
  const r = await sess.run({ image: t });
  for (const [name, v] of Object.entries(r)) {
    if (name === 'prob') continue;
    let lo = Infinity, hi = -Infinity;
    for (const x of v.data) { if (x < lo) lo = x; if (x > hi) hi = x; }
    const cur = ranges[name] ?? [Infinity, -Infinity];
    ranges[name] = [Math.min(cur[0], lo), Math.max(cur[1], hi)];
    if (pct !== undefined) {
      const per = Math.ceil(v.data.length / 16);
      const all = (samples[name] ??= new Float32Array(per * N));
      for (let k = 0; k < per; k++) all[i * per + k] = v.data[k * 16] ?? 0;
    }
  }
}
if (pct !== undefined) {
  for (const [name, all] of Object.entries(samples)) {
    all.sort();
    const at = (q) => all[Math.min(all.length - 1, Math.max(0, Math.round((q / 100) * (all.length - 1))))];
    ranges[name] = [Math.min(0, at(100 - pct)), at(pct)];
  }
}
writeFileSync(outFile, JSON.stringify(ranges, null, 1));
console.log(JSON.stringify({ images: N, tensors: Object.keys(ranges).length }));
