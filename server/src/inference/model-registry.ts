/**
 * Loads the model registry at start: the manifest, then every model file, whose sha256 must match the
 * manifest (weights are pinned: a model card's metrics hold for those exact bytes only). A missing or
 * altered file stops the server with an error that names the model, rather than serving another model.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';
import { parseManifest, type ModelSpec } from './model-manifest.js';

export interface RegisteredModel {
  spec: ModelSpec;
  /** Absolute path of the verified .onnx file. */
  path: string;
  /** Absolute path of the verified box verifier's .onnx file (a detector whose output names one). */
  verifierPath?: string;
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function loadModelRegistry(modelsDir: string): Promise<RegisteredModel[]> {
  const manifestPath = path.join(modelsDir, 'manifest.json');
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch (err) {
    throw new AppError('CONFIG_INVALID', `Model manifest ${manifestPath} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); set PACS_MODELS_DIR or PACS_AI_ENABLED=false`);
  }
  const specs = parseManifest(text, manifestPath);
  const problems: string[] = [];
  const models: RegisteredModel[] = [];
  /** The verified absolute path of one pinned file, or undefined with the problem recorded. */
  const verified = async (id: string, name: string, sha256: string): Promise<string | undefined> => {
    const file = path.join(modelsDir, name);
    let digest: string;
    try {
      digest = await sha256Of(file);
    } catch (err) {
      problems.push(`model "${id}": file ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      return undefined;
    }
    if (digest !== sha256) {
      problems.push(`model "${id}": ${name} has sha256 ${digest}, the manifest pins ${sha256} (wrong or damaged file)`);
      return undefined;
    }
    return file;
  };
  for (const spec of specs) {
    const file = await verified(spec.id, spec.file, spec.sha256);
    const verifier = spec.task === 'detection' ? spec.output.verifier : undefined;
    const verifierPath = verifier === undefined ? undefined : await verified(spec.id, verifier.file, verifier.sha256);
    if (file === undefined || (verifier !== undefined && verifierPath === undefined)) continue;
    models.push({ spec, path: file, ...(verifierPath !== undefined ? { verifierPath } : {}) });
  }
  if (problems.length > 0) throw new AppError('CONFIG_INVALID', `Model registry ${modelsDir} is broken:\n  - ${problems.join('\n  - ')}`);
  return models;
}
