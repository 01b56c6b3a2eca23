import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createServices } from '../services.js';
import { loadConfig } from '../config.js';
import { TEST_MODELS_DIR } from '../test-support/build-test-app.js';
import { loadModelRegistry } from './model-registry.js';

const dirs: string[] = [];
async function modelsCopy(edit?: (manifest: any) => void): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'models-'));
  dirs.push(dir);
  await cp(TEST_MODELS_DIR, dir, { recursive: true });
  if (edit !== undefined) {
    const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
    edit(manifest);
    await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  }
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe('the model registry loaded at start', () => {
  it('lists the models of a valid manifest with their verified files', async () => {
    const models = await loadModelRegistry(TEST_MODELS_DIR);
    expect(models.map((m) => [m.spec.id, m.spec.version, m.spec.task])).toEqual([
      ['bright-spot', '1.0.0', 'detection'],
      ['dark-spot', '1.0.0', 'detection'],
      ['dark-tissue', '1.0.0', 'classification'],
    ]);
    expect(models[1]!.spec.input.pixelSpacingMm).toBe(0.0005);
    expect(models[0]!.path).toBe(path.join(TEST_MODELS_DIR, 'bright-spot-1.0.0.onnx'));
  });

  it('refuses a model whose file does not match the pinned sha256, naming the model', async () => {
    const dir = await modelsCopy();
    const file = path.join(dir, 'bright-spot-1.0.0.onnx');
    const bytes = await readFile(file);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    await writeFile(file, bytes);
    await expect(loadModelRegistry(dir)).rejects.toThrow(/model "bright-spot": bright-spot-1\.0\.0\.onnx has sha256 [0-9a-f]{64}, the manifest pins/);
  });

  it('refuses a manifest whose model file is missing, naming the model and the file', async () => {
    const dir = await modelsCopy((m) => (m.models[0].file = 'gone.onnx'));
    await expect(loadModelRegistry(dir)).rejects.toThrow(/model "bright-spot": file .*gone\.onnx cannot be read \(ENOENT\)/);
  });

  it('reports every problem of a bad manifest at once', async () => {
    const dir = await modelsCopy((m) => {
      delete m.models[0].sha256;
      m.models[0].input.layout = 'NCHW';
      m.models[0].output.stride = 0;
      m.models.push({ ...m.models[0] });
    });
    const error = await loadModelRegistry(dir).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toMatch(/"sha256" must be a non-empty string/);
    expect(message).toMatch(/model "bright-spot" input: "layout" must be "NHWC"/);
    expect(message).toMatch(/model "bright-spot" output: "stride" must be an integer between 1 and 64/);
    expect(message).toMatch(/model "bright-spot" is listed twice/);
  });

  it('refuses a manifest that is not JSON, and a missing manifest, saying where it looked', async () => {
    const dir = await modelsCopy();
    await writeFile(path.join(dir, 'manifest.json'), '{ not json');
    await expect(loadModelRegistry(dir)).rejects.toThrow(/manifest\.json is not valid JSON/);
    await expect(loadModelRegistry(path.join(dir, 'nowhere'))).rejects.toThrow(/nowhere\/manifest\.json cannot be read \(ENOENT\).*PACS_MODELS_DIR/);
  });

  it('reads the optional training resolution (input.pixelSpacingMm) and refuses one that is not a positive number', async () => {
    expect((await loadModelRegistry(TEST_MODELS_DIR))[0]!.spec.input.pixelSpacingMm).toBeUndefined();
    const dir = await modelsCopy((m) => (m.models[0].input.pixelSpacingMm = 0));
    await expect(loadModelRegistry(dir)).rejects.toThrow(/model "bright-spot" input: "pixelSpacingMm" must be a number between/);
  });

  it('reads a classification model: labels, positive labels, training resolution', async () => {
    const tissue = (await loadModelRegistry(TEST_MODELS_DIR)).find((m) => m.spec.id === 'dark-tissue')!.spec;
    expect(tissue).toMatchObject({ task: 'classification', labels: ['normal', 'lesion'], output: { name: 'prob', format: 'class-probabilities', positiveLabels: ['lesion'] }, operatingThreshold: 0.5 });
    expect(tissue.input.pixelSpacingMm).toBe(0.002);
  });

  it('refuses a classification model whose output does not fit its task, naming every problem', async () => {
    const dir = await modelsCopy((m) => {
      const tissue = m.models.find((x: any) => x.id === 'dark-tissue');
      tissue.output.positiveLabels = ['lesion', 'tumour'];
      tissue.output.regionLabel = '';
      const spot = m.models.find((x: any) => x.id === 'dark-spot');
      spot.output.format = 'class-probabilities';
      m.models.push({ ...tissue, id: 'one-label', labels: ['lesion'], output: { name: 'prob', format: 'mask-components', positiveLabels: ['lesion'] } });
      m.models.push({ ...tissue, id: 'all-positive', output: { name: 'prob', format: 'class-probabilities', positiveLabels: ['normal', 'lesion'] } });
      m.models.push({ ...tissue, id: 'segmenter', task: 'segmentation' });
    });
    const message = ((await loadModelRegistry(dir).catch((e: Error) => e)) as Error).message;
    expect(message).toMatch(/model "dark-tissue" output: "positiveLabels" names "tumour", not in "labels"/);
    expect(message).toMatch(/model "dark-tissue" output: "regionLabel" must be a non-empty string/);
    expect(message).toMatch(/model "dark-spot" output: "format" must be "mask-components"/);
    expect(message).toMatch(/model "one-label": a classification model needs at least 2 labels/);
    expect(message).toMatch(/model "one-label" output: "format" must be "class-probabilities"/);
    expect(message).toMatch(/model "all-positive" output: "positiveLabels" must leave at least one label negative/);
    expect(message).toMatch(/model "segmenter": "task" must be "detection" or "classification"/);
  });

  it('stops the server from starting when a classification model outputs another number of classes than it has labels', async () => {
    const dir = await modelsCopy((m) => (m.models.find((x: any) => x.id === 'dark-tissue').labels = ['normal', 'lesion', 'other']));
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-'));
    dirs.push(dataDir);
    const config = loadConfig({ PACS_DATA_DIR: dataDir, PACS_MODELS_DIR: dir });
    await expect(createServices(config, { logger: pino({ level: 'silent' }) })).rejects.toThrow(/model "dark-tissue": output "prob" gives 2 values per image, the manifest lists 3 labels/);
  });

  it('reads a seeded split of a detector (seedThreshold, seedChannel) and refuses a seed channel without a threshold', async () => {
    const seeded = await modelsCopy((m) => Object.assign(m.models[0].output, { seedThreshold: 0.8 }));
    expect((await loadModelRegistry(seeded))[0]!.spec.output).toMatchObject({ format: 'mask-components', seedThreshold: 0.8 });
    const bad = await modelsCopy((m) => Object.assign(m.models[0].output, { seedChannel: 1, seedThreshold: 2 }));
    const message = ((await loadModelRegistry(bad).catch((e: Error) => e)) as Error).message;
    expect(message).toMatch(/model "bright-spot" output: "seedThreshold" must be a number between 0 and 1/);
    const lone = await modelsCopy((m) => Object.assign(m.models[0].output, { seedChannel: 1 }));
    await expect(loadModelRegistry(lone)).rejects.toThrow(/model "bright-spot" output: "seedChannel" needs "seedThreshold"/);
  });

  it('reads a box verifier of a detector, checks its file like the model\'s, and names every bad field', async () => {
    const { createHash } = await import('node:crypto');
    const sha256 = createHash('sha256').update(await readFile(path.join(TEST_MODELS_DIR, 'red-box-1.0.0.onnx'))).digest('hex');
    const verifier = { file: 'red-box-1.0.0.onnx', sha256, input: 'crop', output: 'prob', size: 16, context: 1.5, minSide: 4, gate: 0.3 };
    const good = await modelsCopy((m) => (m.models[0].output.verifier = verifier));
    const [model] = await loadModelRegistry(good);
    expect(model!.spec.output).toMatchObject({ verifier });
    expect(model!.verifierPath).toBe(path.join(good, 'red-box-1.0.0.onnx'));
    const missing = await modelsCopy((m) => (m.models[0].output.verifier = { ...verifier, file: 'gone.onnx' }));
    await expect(loadModelRegistry(missing)).rejects.toThrow(/model "bright-spot": file .*gone\.onnx cannot be read \(ENOENT\)/);
    const bad = await modelsCopy((m) => (m.models[0].output.verifier = { ...verifier, size: 0, gate: 2, input: '' }));
    const message = ((await loadModelRegistry(bad).catch((e: Error) => e)) as Error).message;
    expect(message).toMatch(/model "bright-spot" output verifier: "input" must be a non-empty string/);
    expect(message).toMatch(/model "bright-spot" output verifier: "size" must be an integer between 8 and 1024/);
    expect(message).toMatch(/model "bright-spot" output verifier: "gate" must be a number between 0 and 1/);
  });

  it('stops the server from starting when a detector takes seeds from an output channel its model does not have', async () => {
    const dir = await modelsCopy((m) => Object.assign(m.models[0].output, { seedChannel: 1, seedThreshold: 0.8 }));
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-'));
    dirs.push(dataDir);
    const config = loadConfig({ PACS_DATA_DIR: dataDir, PACS_MODELS_DIR: dir });
    await expect(createServices(config, { logger: pino({ level: 'silent' }) })).rejects.toThrow(/model "bright-spot": the manifest takes seeds from output channel 1 \("seedChannel"\), output "prob" has 1 channel\(s\)/);
  });

  it('refuses a model file pointing outside the models folder', async () => {
    const dir = await modelsCopy((m) => (m.models[0].file = '../etc/passwd.onnx'));
    await expect(loadModelRegistry(dir)).rejects.toThrow(/"file" has an invalid value/);
  });

  it('stops the server from starting when a model is broken (startup error names it)', async () => {
    const dir = await modelsCopy((m) => (m.models[0].sha256 = '0'.repeat(64)));
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-'));
    dirs.push(dataDir);
    const config = loadConfig({ PACS_DATA_DIR: dataDir, PACS_MODELS_DIR: dir });
    await expect(createServices(config, { logger: pino({ level: 'silent' }) })).rejects.toThrow(/model "bright-spot"/);
  });

  it('starts without models when AI is disabled', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-'));
    dirs.push(dataDir);
    const services = await createServices(loadConfig({ PACS_DATA_DIR: dataDir, PACS_AI_ENABLED: 'false', PACS_MODELS_DIR: '/nonexistent' }), { logger: pino({ level: 'silent' }) });
    expect(services.inference).toBeUndefined();
    expect(services.analyses).toBeUndefined();
    await services.close();
  });
});
