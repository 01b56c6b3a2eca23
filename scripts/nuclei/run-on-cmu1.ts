/**
 * End-to-end check: one whole-slide job with the trained nuclei detector on the TILED_FULL CMU-1 pyramid.
 *   cd /work/main && npx tsx scripts/nuclei/run-on-cmu1.ts [modelId]
 * Builds a test app on a temp folder with PACS_MODELS_DIR=models, stores the 12 level instances via STOW-RS,
 * POSTs an analysis, polls the job until it ends, prints the job summary, annotation count and timing.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTestApp } from '../../server/src/test-support/build-test-app.js';
import { multipartBody, STOW_CONTENT_TYPE } from '../../server/src/test-support/make-dicom.js';
import { describeInstance } from '../../server/src/test-support/shared-instance.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const folder = '/work/shared/data/wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm';
const modelId = process.argv[2] ?? 'nuclei-detector';

const t = await buildTestApp({ PACS_MODELS_DIR: path.join(repo, 'models') });
try {
  const names = (await readdir(folder)).filter((n) => n.endsWith('.dcm')).sort();
  const files = await Promise.all(names.map((n) => readFile(path.join(folder, n))));
  const first = describeInstance(files[0]!);
  const stow = await t.app.inject({
    method: 'POST',
    url: '/dicomweb/studies',
    payload: multipartBody(files.map((body) => ({ body }))),
    headers: { 'content-type': STOW_CONTENT_TYPE() },
  });
  console.log(`STOW ${names.length} instances -> ${stow.statusCode}`);
  if (stow.statusCode !== 200) throw new Error(stow.body);

  const t0 = Date.now();
  const created = await t.app.inject({
    method: 'POST',
    url: `/ai/studies/${first.study}/series/${first.series}/analyses`,
    payload: { model: modelId },
  });
  console.log(`POST analyses -> ${created.statusCode}`, created.statusCode >= 300 ? created.body : '');
  const id = created.json().id as string;
  let job: any;
  let lastPrint = 0;
  for (;;) {
    job = (await t.app.inject({ url: `/ai/analyses/${id}` })).json();
    if (['completed', 'failed', 'cancelled'].includes(job.state)) break;
    if (Date.now() - lastPrint > 5000) {
      lastPrint = Date.now();
      console.log(`  ${job.state} units ${job.progress.unitsDone}/${job.progress.unitsTotal} tiles ${job.progress.tilesDone}/${job.progress.tilesTotal} annotations ${job.progress.annotations}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const wallMs = Date.now() - t0;
  console.log('job', JSON.stringify({ state: job.state, reason: job.reason, model: job.model, level: job.level, progress: job.progress, elapsedMs: job.elapsedMs }));
  if (job.state === 'completed') {
    const geo = (await t.app.inject({ url: `/ai/analyses/${id}/result` })).json();
    const feats = geo.features as Array<{ properties: { score: number; box: number[] } }>;
    const scores = feats.map((f) => f.properties.score).sort((a, b) => a - b);
    const sizes = feats.map((f) => Math.sqrt((f.properties.box[2]! - f.properties.box[0]!) * (f.properties.box[3]! - f.properties.box[1]!))).sort((a, b) => a - b);
    const med = (a: number[]) => (a.length ? a[a.length >> 1]! : NaN);
    console.log(`annotations ${feats.length} (GeoJSON features); median score ${med(scores).toFixed(3)}; median box sqrt(area) ${med(sizes).toFixed(1)} base px`);
    console.log(`wall time POST -> completed: ${(wallMs / 1000).toFixed(1)} s`);
  }
} finally {
  await t.close();
}
