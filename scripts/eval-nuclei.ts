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
import { nucleiSplit } from './eval/dsb-nuclei.js';
import { detectionTable, evaluateOverHttp } from './eval/evaluate-over-http.js';
import { runEvaluation } from './eval/eval-server.js';

runEvaluation('nuclei-detector', async (baseUrl, modelId, split) => {
  const started = performance.now();
  const e = await evaluateOverHttp(baseUrl, modelId, await nucleiSplit(split as 'test' | 'train'));
  return detectionTable(e, `dsb2018-he ${split}`, { images: 'tiles', boxes: 'nuclei' }, (performance.now() - started) / 1000);
});
