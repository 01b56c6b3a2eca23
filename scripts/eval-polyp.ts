/**
 * Reproduces the polyp model card's metrics from the committed .onnx through the HTTP API:
 *
 *   npm run eval:polyp                      # starts the server in-process on embedded temp storage
 *   npm run eval:polyp -- --url http://127.0.0.1:8080   # against a running server
 *   options: --model polyp-detector  --split test|train  --models-dir models
 */
import { BUNDLED_MODELS_DIR } from '../server/src/config.js';
import { evaluateOverHttp } from './eval/evaluate-over-http.js';
import { option } from './bench/cli.js';
import { evalServer } from './eval/eval-server.js';


async function main(): Promise<void> {
  const modelId = option('model', 'polyp-detector');
  const split = option('split', 'test') as 'test' | 'train';
  const { baseUrl, close } = await evalServer(option('url', ''), option('models-dir', BUNDLED_MODELS_DIR));
  try {
    const started = performance.now();
    const e = await evaluateOverHttp(baseUrl, modelId, split);
    const seconds = (performance.now() - started) / 1000;
    const f = (v: number) => v.toFixed(4);
    process.stdout.write(
      [
        `| model | split | images | boxes | AP50 | AP50:95 | threshold | precision | recall | TP | FP | FN |`,
        `|---|---|---|---|---|---|---|---|---|---|---|---|`,
        `| ${e.model.id} ${e.model.version} | kvasir-seg ${split} | ${e.images} | ${e.boxes} | ${f(e.ap50)} | ${f(e.ap50_95)} | ${e.operatingThreshold} | ${f(e.atThreshold.precision)} | ${f(e.atThreshold.recall)} | ${e.atThreshold.tp} | ${e.atThreshold.fp} | ${e.atThreshold.fn} |`,
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
