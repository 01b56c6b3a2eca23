/**
 * The model registry's file format: `manifest.json` in the models folder lists every model the server
 * may run, with what a caller and an auditor need to know (task, labels, input contract, training data,
 * licence, card) and the sha256 that pins the exact weights. `parseManifest` checks every field and
 * reports all problems at once, each naming the model, so a broken deployment is fixed in one pass.
 */
import { AppError } from '../errors.js';

export interface ModelInputSpec {
  name: string;
  layout: 'NHWC';
  dtype: 'uint8';
  width: number;
  height: number;
  colorSpace: 'RGB';
  /** Scaled to fit, aspect kept, placed at the top-left of a canvas of `padValue`. */
  resize: 'letterbox-top-left';
  padValue: number;
  /** Human-readable: normalisation happens inside the graph. */
  normalisation: string;
  /**
   * Optional: the resolution the model was trained at, in mm per input pixel (0.0005 = 0.5 µm/px, about
   * 20×). Whole-slide analysis (server/src/pathology) needs it to pick the pyramid level; absent, a
   * model cannot run on slides.
   */
  pixelSpacingMm?: number;
}

/** A probability mask turned into boxes by connected components (mask-components.ts). */
export interface MaskComponentsOutput {
  name: string;
  format: 'mask-components';
  /** Input pixels per mask cell. */
  stride: number;
  maskThreshold: number;
  /** Components smaller than this fraction of the mask are dropped. */
  minAreaFraction: number;
  /**
   * Optional: split touching objects first, with seeds where the seed map reaches this value
   * (mask-components.ts `seedThreshold`; models/nuclei-detector.md, "Splitting touching nuclei with seeds").
   */
  seedThreshold?: number;
  /**
   * The output channel holding the seed map ([N, C, h, w]; channel 0 is always the mask). Default 0: seeds
   * from the mask itself, so `seedThreshold` should then lie above `maskThreshold`.
   */
  seedChannel?: number;
  /**
   * Optional: a second model that looks again at each candidate box (box-verifier.ts): a candidate is
   * reported only if the verifier's probability reaches `gate` (models/polyp-detector.md, "crop verifier").
   */
  verifier?: BoxVerifierSpec;
}

/**
 * A box verifier: a classifier run on a square crop around each candidate box, cut from the detector's own
 * letterboxed input (side `context` × the box's longer side, at least `minSide` input pixels), sampled to
 * `size` × `size` (uint8 NHWC RGB, input `input`); its output `output` is [N, 1], the probability that the
 * box shows the object.
 */
export interface BoxVerifierSpec {
  file: string;
  sha256: string;
  input: string;
  output: string;
  size: number;
  context: number;
  minSide: number;
  gate: number;
}

/**
 * Per-input class probabilities: an output tensor [N, C] (C = the manifest's labels, in order), each row
 * already a probability distribution (softmax inside the graph). A tile is *positive* when the sum of the
 * probabilities of `positiveLabels` reaches the model's operating threshold.
 */
export interface ClassProbabilitiesOutput {
  name: string;
  format: 'class-probabilities';
  /** Labels (a non-empty subset of `labels`) whose summed probability is the tile's positive score. */
  positiveLabels: string[];
  /**
   * Optional: one annotation group of this name for every positive region (e.g. "neoplastic"). Absent,
   * each positive tile takes its most probable positive label and regions are grouped per label.
   */
  regionLabel?: string;
}

interface ModelSpecBase {
  id: string;
  version: string;
  description: string;
  labels: string[];
  file: string;
  sha256: string;
  licence: string;
  trainingData: string;
  card: string;
  input: ModelInputSpec;
  /** Default minimum score of a reported detection; for classification, of a positive tile. */
  operatingThreshold: number;
  metrics: Record<string, unknown>;
}

/** A detector: a probability mask turned into boxes. */
export interface DetectionModelSpec extends ModelSpecBase {
  task: 'detection';
  output: MaskComponentsOutput;
}

/** A tile classifier: class probabilities per input image (slide jobs turn positive tiles into regions). */
export interface ClassificationModelSpec extends ModelSpecBase {
  task: 'classification';
  output: ClassProbabilitiesOutput;
}

export type ModelSpec = DetectionModelSpec | ClassificationModelSpec;

const ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

type Json = Record<string, unknown>;

class FieldChecker {
  constructor(
    private readonly problems: string[],
    private readonly where: string,
    private readonly object: Json,
  ) {}

  has(field: string): boolean {
    return this.object[field] !== undefined;
  }

  string(field: string, pattern?: RegExp): string {
    const value = this.object[field];
    if (typeof value !== 'string' || value.trim() === '') {
      this.problems.push(`${this.where}: "${field}" must be a non-empty string`);
      return '';
    }
    if (pattern !== undefined && !pattern.test(value)) this.problems.push(`${this.where}: "${field}" has an invalid value "${value}"`);
    return value;
  }

  literal<T extends string>(field: string, allowed: readonly T[]): T {
    const value = this.object[field];
    if (!(allowed as readonly unknown[]).includes(value)) {
      this.problems.push(`${this.where}: "${field}" must be ${allowed.map((a) => `"${a}"`).join(' or ')}`);
      return allowed[0]!;
    }
    return value as T;
  }

  number(field: string, min: number, max: number, integer = false): number {
    const value = this.object[field];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
      this.problems.push(`${this.where}: "${field}" must be a${integer ? 'n integer' : ' number'} between ${min} and ${max}`);
      return min;
    }
    return value;
  }

  object_(field: string): Json {
    const value = this.object[field];
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.problems.push(`${this.where}: "${field}" must be an object`);
      return {};
    }
    return value as Json;
  }

  labels(field: string): string[] {
    const value = this.object[field];
    if (!Array.isArray(value) || value.length === 0 || !value.every((l) => typeof l === 'string' && l !== '')) {
      this.problems.push(`${this.where}: "${field}" must be a non-empty list of label names`);
      return [];
    }
    return value as string[];
  }
}

function parseModel(raw: unknown, index: number, problems: string[]): ModelSpec | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push(`models[${index}] must be an object`);
    return undefined;
  }
  const object = raw as Json;
  const label = typeof object['id'] === 'string' ? `model "${object['id']}"` : `models[${index}]`;
  const check = new FieldChecker(problems, label, object);
  const inputCheck = new FieldChecker(problems, `${label} input`, check.object_('input'));
  const outputCheck = new FieldChecker(problems, `${label} output`, check.object_('output'));
  const task = check.literal('task', ['detection', 'classification'] as const);
  const base: ModelSpecBase = {
    id: check.string('id', ID_PATTERN),
    version: check.string('version', /^[0-9A-Za-z.+-]{1,32}$/),
    description: check.string('description'),
    labels: check.labels('labels'),
    // A bare file name: the manifest may not point outside the models folder.
    file: check.string('file', /^[A-Za-z0-9][A-Za-z0-9._-]*\.onnx$/),
    sha256: check.string('sha256', /^[0-9a-f]{64}$/),
    licence: check.string('licence'),
    trainingData: check.string('trainingData'),
    card: check.string('card', /^[A-Za-z0-9][A-Za-z0-9._-]*$/),
    input: {
      name: inputCheck.string('name'),
      layout: inputCheck.literal('layout', ['NHWC'] as const),
      dtype: inputCheck.literal('dtype', ['uint8'] as const),
      width: inputCheck.number('width', 8, 4096, true),
      height: inputCheck.number('height', 8, 4096, true),
      colorSpace: inputCheck.literal('colorSpace', ['RGB'] as const),
      resize: inputCheck.literal('resize', ['letterbox-top-left'] as const),
      padValue: inputCheck.number('padValue', 0, 255, true),
      normalisation: inputCheck.string('normalisation'),
      ...(inputCheck.has('pixelSpacingMm') ? { pixelSpacingMm: inputCheck.number('pixelSpacingMm', 1e-6, 1) } : {}),
    },
    operatingThreshold: check.number('operatingThreshold', 0, 1),
    metrics: check.object_('metrics'),
  };
  if (base.input.width !== base.input.height) problems.push(`${label} input: width and height must be equal (square letterbox)`);
  if (task === 'classification') {
    const output: ClassProbabilitiesOutput = {
      name: outputCheck.string('name'),
      format: outputCheck.literal('format', ['class-probabilities'] as const),
      positiveLabels: outputCheck.labels('positiveLabels'),
      ...(outputCheck.has('regionLabel') ? { regionLabel: outputCheck.string('regionLabel') } : {}),
    };
    if (base.labels.length < 2) problems.push(`${label}: a classification model needs at least 2 labels (one per output column)`);
    if (new Set(base.labels).size !== base.labels.length) problems.push(`${label}: "labels" must not repeat a label`);
    const unknown = output.positiveLabels.filter((l) => !base.labels.includes(l));
    if (unknown.length > 0) problems.push(`${label} output: "positiveLabels" names ${unknown.map((l) => `"${l}"`).join(', ')}, not in "labels"`);
    if (new Set(output.positiveLabels).size !== output.positiveLabels.length) problems.push(`${label} output: "positiveLabels" must not repeat a label`);
    if (output.positiveLabels.length > 0 && output.positiveLabels.length === base.labels.length) problems.push(`${label} output: "positiveLabels" must leave at least one label negative`);
    return { ...base, task, output };
  }
  const output: MaskComponentsOutput = {
    name: outputCheck.string('name'),
    format: outputCheck.literal('format', ['mask-components'] as const),
    stride: outputCheck.number('stride', 1, 64, true),
    maskThreshold: outputCheck.number('maskThreshold', 0, 1),
    minAreaFraction: outputCheck.number('minAreaFraction', 0, 1),
    ...(outputCheck.has('seedThreshold') ? { seedThreshold: outputCheck.number('seedThreshold', 0, 1) } : {}),
    ...(outputCheck.has('seedChannel') ? { seedChannel: outputCheck.number('seedChannel', 0, 15, true) } : {}),
    ...(outputCheck.has('verifier') ? { verifier: parseVerifier(new FieldChecker(problems, `${label} output verifier`, outputCheck.object_('verifier'))) } : {}),
  };
  if (output.seedChannel !== undefined && output.seedThreshold === undefined) problems.push(`${label} output: "seedChannel" needs "seedThreshold"`);
  if (base.input.width % output.stride !== 0) problems.push(`${label} output: stride must divide the input size`);
  return { ...base, task, output };
}

function parseVerifier(check: FieldChecker): BoxVerifierSpec {
  return {
    file: check.string('file', /^[A-Za-z0-9][A-Za-z0-9._-]*\.onnx$/),
    sha256: check.string('sha256', /^[0-9a-f]{64}$/),
    input: check.string('input'),
    output: check.string('output'),
    size: check.number('size', 8, 1024, true),
    context: check.number('context', 1, 10),
    minSide: check.number('minSide', 1, 4096),
    gate: check.number('gate', 0, 1),
  };
}

/** Parses and validates manifest text; throws CONFIG_INVALID listing every problem. */
export function parseManifest(text: string, source: string): ModelSpec[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new AppError('CONFIG_INVALID', `Model manifest ${source} is not valid JSON: ${(err as Error).message}`);
  }
  const models = (json as Json | null)?.['models'];
  if (!Array.isArray(models)) throw new AppError('CONFIG_INVALID', `Model manifest ${source} must have a "models" list`);
  const problems: string[] = [];
  const specs = models.map((raw, index) => parseModel(raw, index, problems)).filter((s): s is ModelSpec => s !== undefined);
  const seen = new Set<string>();
  for (const spec of specs) {
    if (seen.has(spec.id)) problems.push(`model "${spec.id}" is listed twice`);
    seen.add(spec.id);
  }
  if (problems.length > 0) {
    throw new AppError('CONFIG_INVALID', `Model manifest ${source} is invalid:\n  - ${problems.join('\n  - ')}`);
  }
  return specs;
}
