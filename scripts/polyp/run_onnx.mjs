// Runs an ONNX model with onnxruntime-node (the runtime the server uses).
// usage: node scripts/polyp/run_onnx.mjs model.onnx input.u8 N S out.f32 [threads] [latencyRuns]
// input.u8: raw uint8 [N,S,S,3]; writes the raw float32 output of all N images (run at batch 1; the model's
// first input and output, 'image' -> 'prob' for the detector, 'crop' -> 'prob' for the box verifier),
// prints JSON {outShape, latency: {batch1: {...}, batchB: {...}}}.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.resolve('package.json'));
const ort = require('onnxruntime-node');
const [model, inFile, nStr, sStr, outFile, thrStr = '2', runsStr = '30'] = process.argv.slice(2);
const N = Number(nStr), S = Number(sStr), threads = Number(thrStr), runs = Number(runsStr);
const sess = await ort.InferenceSession.create(model, {
  intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
});
const [inputName] = sess.inputNames;
const [outputName] = sess.outputNames;
const buf = readFileSync(inFile);
const per = S * S * 3;
const chunks = [];
let outShape;
for (let i = 0; i < N; i++) {
  const t = new ort.Tensor('uint8', new Uint8Array(buf.buffer, buf.byteOffset + i * per, per), [1, S, S, 3]);
  const out = (await sess.run({ [inputName]: t }))[outputName];
  outShape = out.dims;
  chunks.push(Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
}
writeFileSync(outFile, Buffer.concat(chunks));
const stats = (a) => { a.sort((x, y) => x - y); return { median_ms: a[a.length >> 1], p90_ms: a[Math.floor(a.length * 0.9)], min_ms: a[0] }; };
const latency = {};
for (const B of [1, 8]) {
  if (runs <= 0 || B > N) continue;
  const data = new Uint8Array(buf.buffer, buf.byteOffset, per * B);
  const t = new ort.Tensor('uint8', data, [B, S, S, 3]);
  for (let w = 0; w < 3; w++) await sess.run({ [inputName]: t });
  const times = [];
  const n = B === 1 ? runs : Math.max(5, Math.floor(runs / 4));
  for (let k = 0; k < n; k++) { const t0 = process.hrtime.bigint(); await sess.run({ [inputName]: t }); times.push(Number(process.hrtime.bigint() - t0) / 1e6); }
  const s = stats(times);
  latency[`batch${B}`] = { ...s, per_frame_median_ms: s.median_ms / B, runs: n };
}
console.log(JSON.stringify({ outShape, threads, ortVersion: ort.env.versions?.common ?? null, latency }));
