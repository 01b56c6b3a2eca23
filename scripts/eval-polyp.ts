/**
 * Reproduces the polyp model card's metrics from the committed .onnx through the HTTP API:
 *
 *   npm run eval:polyp                      # starts the server in-process on embedded temp storage
 *   npm run eval:polyp -- --url http://127.0.0.1:8080   # against a running server
 *   options: --model polyp-detector  --split test|train  --models-dir models
 */
import { detectionTable, evaluateOverHttp } from './eval/evaluate-over-http.js';
import { runEvaluation } from './eval/eval-server.js';

runEvaluation('polyp-detector', async (baseUrl, modelId, split) => {
  const started = performance.now();
  const e = await evaluateOverHttp(baseUrl, modelId, split as 'test' | 'train');
  return detectionTable(e, `kvasir-seg ${split}`, { images: 'images', boxes: 'boxes' }, (performance.now() - started) / 1000);
});
