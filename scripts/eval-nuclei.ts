/**
 * Reproduces the nuclei model card's box AP from the committed .onnx through the HTTP API: each of the
 * 21 DSB 2018 H&E test tiles (../shared/data/histo-dsb2018-he-nuclei) is POSTed as PNG to
 * /ai/models/nuclei-detector/detect?minScore=0 and the boxes are scored against the annotated nuclei.
 * (The card's centroid P/R/F1 come from scripts/nuclei/evaluate.py on the same .onnx.)
 *
 *   npm run eval:nuclei                      # starts the server in-process on embedded temp storage
 *   npm run eval:nuclei -- --url http://127.0.0.1:8080   # against a running server
 *   options: --model nuclei-detector  --split test|train  --models-dir models
 */
import { BUNDLED_MODELS_DIR } from '../server/src/config.js';
import { option } from './bench/cli.js';
import { nucleiSplit } from './eval/dsb-nuclei.js';
import { evalServer } from './eval/eval-server.js';
import { evaluateOverHttp } from './eval/evaluate-over-http.js';

async function main(): Promise<void> {
  const modelId = option('model', 'nuclei-detector');
  const split = option('split', 'test') as 'test' | 'train';
  const { baseUrl, close } = await evalServer(option('url', ''), option('models-dir', BUNDLED_MODELS_DIR));
  try {
    const started = performance.now();
    const e = await evaluateOverHttp(baseUrl, modelId, await nucleiSplit(split));
    const seconds = (performance.now() - started) / 1000;
    const f = (v: number) => v.toFixed(4);
    process.stdout.write(
      [
        `| model | split | tiles | nuclei | box AP50 | AP50:95 | threshold | precision (IoU ≥ 0.5) | recall | TP | FP | FN |`,
        `|---|---|---|---|---|---|---|---|---|---|---|---|`,
        `| ${e.model.id} ${e.model.version} | dsb2018-he ${split} | ${e.images} | ${e.boxes} | ${f(e.ap50)} | ${f(e.ap50_95)} | ${e.operatingThreshold} | ${f(e.atThreshold.precision)} | ${f(e.atThreshold.recall)} | ${e.atThreshold.tp} | ${e.atThreshold.fp} | ${e.atThreshold.fn} |`,
        '',
        `(${e.images} HTTP detect calls in ${seconds.toFixed(1)} s)`,
        '',
      ].join('\n'),
    );
  } finally {
    await close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
