/**
 * Reproduces the polyp model card's metrics from the committed .onnx through the HTTP API:
 *
 *   npm run eval:polyp                      # starts the server in-process on embedded temp storage
 *   npm run eval:polyp -- --url http://127.0.0.1:8080   # against a running server
 *   options: --model polyp-detector  --split test|train  --models-dir models
 *            --polyp-free   also the polyp-free HyperKvasir frames of the split (175 in test): how many
 *                           get a box at the operating threshold (each such box is a false alarm)
 */
import { detectionTable, evaluateOverHttp } from './eval/evaluate-over-http.js';
import { runEvaluation } from './eval/eval-server.js';
import { polypFreeSplit } from './eval/kvasir.js';

runEvaluation('polyp-detector', async (baseUrl, modelId, split) => {
  const started = performance.now();
  const e = await evaluateOverHttp(baseUrl, modelId, split as 'test' | 'train');
  let text = detectionTable(e, `kvasir-seg ${split}`, { images: 'images', boxes: 'boxes' }, (performance.now() - started) / 1000);
  if (process.argv.includes('--polyp-free')) {
    const frames = await evaluateOverHttp(baseUrl, modelId, await polypFreeSplit(split as 'test' | 'train'));
    const withBox = frames.perImage.filter((r) => r.detections.some((d) => d.score >= frames.operatingThreshold)).length;
    text += `Polyp-free HyperKvasir ${split} frames with a box at the operating threshold ${frames.operatingThreshold}: **${withBox} of ${frames.images}** (${frames.atThreshold.fp} boxes)\n`;
  }
  return text;
});
