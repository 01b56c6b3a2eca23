/**
 * The patient names and IDs a test run can put into a server: every DICOM file in the shared data sets
 * and every literal patient name / ID in the test sources. `findPhi` reports any of them in log text.
 */
import { open, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createReadStream } from 'node:fs';
import { scanPart10 } from '../dicom/part10-scanner.js';
import { repoRoot, sharedDataDir } from './shared-data.js';

export interface PhiCorpus {
  names: Set<string>;
  ids: Set<string>;
  /** Values too short or too common-looking to search for without false alarms (reported, not checked). */
  skipped: Set<string>;
  files: number;
}

const SOURCE_LITERAL = /\b(patientName|PatientName|patientId|PatientID)\s*:\s*'([^'\n]+)'/g;

export async function collectPhiCorpus(): Promise<PhiCorpus> {
  const corpus: PhiCorpus = { names: new Set(), ids: new Set(), skipped: new Set(), files: 0 };
  for (const file of await dicomCandidates()) {
    if (!(await hasPart10Preamble(file))) continue;
    corpus.files++;
    try {
      // The archive's own scanner: bounded and fast on every file the server could have stored (dcmjs
      // takes minutes on some of the malformed ones).
      const { dataset } = await scanPart10(createReadStream(file), async () => {}, { maxHeaderBytes: 256 * 1024 * 1024 });
      add(corpus, 'name', nameOf(dataset['00100010']?.Value?.[0]));
      add(corpus, 'id', dataset['00100020']?.Value?.[0]);
    } catch {
      // Malformed on purpose (edge-case sets): the server refuses to store it, so it cannot log its patient either.
    }
  }
  for (const file of await walk(path.join(repoRoot, 'server/src'), (name) => name.endsWith('.ts')).then(async (list) => [...list, ...(await walk(path.join(repoRoot, 'viewer/e2e'), (name) => name.endsWith('.ts')))])) {
    for (const match of (await readFile(file, 'utf8')).matchAll(SOURCE_LITERAL)) add(corpus, /name/i.test(match[1]!) ? 'name' : 'id', match[2]);
  }
  add(corpus, 'name', 'TEST^PATIENT');
  add(corpus, 'id', 'TEST-ID');
  return corpus;
}

/** The shared data sets that hold DICOM files (the image-only sets hold no patient data). */
async function dicomCandidates(): Promise<string[]> {
  const sets = (await readdir(sharedDataDir, { withFileTypes: true })).filter((entry) => entry.isDirectory() && /^(dicom|endoscopy|wsi)-/.test(entry.name));
  const files: string[] = [];
  for (const set of sets) files.push(...(await walk(path.join(sharedDataDir, set.name), (name) => !/\.(png|jpe?g|tiff?|svs|txt|md|csv|json|py|xml|gz|zip|dump)$/i.test(name))));
  return files;
}

async function hasPart10Preamble(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(132);
    const { bytesRead } = await handle.read(head, 0, 132, 0);
    return bytesRead === 132 && head.toString('latin1', 128, 132) === 'DICM';
  } finally {
    await handle.close();
  }
}

function nameOf(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && 'Alphabetic' in value) return (value as { Alphabetic: unknown }).Alphabetic;
  return value;
}

function add(corpus: PhiCorpus, kind: 'name' | 'id', raw: unknown): void {
  if (typeof raw !== 'string') return;
  const value = raw.trim();
  if (value === '') return;
  // Short values ("A", "P1", "123") or short numbers appear in any log as counts and sizes; a test ID
  // spelled like a UID ("1.2.3") would be found in every logged URL.
  if (value.length < 4 || /^\d{1,7}$/.test(value) || /^[\d.]+$/.test(value)) {
    corpus.skipped.add(value);
    return;
  }
  (kind === 'name' ? corpus.names : corpus.ids).add(value);
  // A person name is also logged the way people write it: "Jane Doe", "DOE JANE".
  if (kind === 'name' && value.includes('^')) {
    const parts = value.split('^').filter((part) => part !== '');
    if (parts.length >= 2) corpus.names.add(parts.join(' ')).add(`${parts[1]} ${parts[0]}`);
  }
}

export interface PhiFinding {
  value: string;
  line: string;
}

/**
 * Every occurrence of a corpus value as a whole token (not inside a UID or a longer word). Linear in the
 * text: lines are cut into tokens (runs of letters, digits and `_ . ^ -`) looked up in a set; names
 * written with a space ("JANE DOE") are looked up as two or three consecutive tokens.
 */
export function findPhi(text: string, corpus: Pick<PhiCorpus, 'names' | 'ids'>): PhiFinding[] {
  const values = new Set([...corpus.names, ...corpus.ids]);
  const findings: PhiFinding[] = [];
  if (values.size === 0) return findings;
  const token = /[\p{L}\p{N}_.^-]+/gu;
  for (const line of text.split('\n')) {
    const tokens: Array<{ text: string; start: number; end: number }> = [];
    for (const match of line.matchAll(token)) tokens.push({ text: match[0], start: match.index, end: match.index + match[0].length });
    const hit = tokens.findIndex((current, i) => {
      if (values.has(current.text)) return true;
      let joined = current.text;
      for (let next = i + 1; next < Math.min(tokens.length, i + 3); next++) {
        if (tokens[next]!.start !== tokens[next - 1]!.end + 1 || line[tokens[next - 1]!.end] !== ' ') break;
        joined += ` ${tokens[next]!.text}`;
        if (values.has(joined)) return true;
      }
      return false;
    });
    if (hit !== -1) findings.push({ value: tokens[hit]!.text, line: line.slice(0, 300) });
  }
  return findings;
}

async function walk(dir: string, keep: (name: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== 'dist') out.push(...(await walk(full, keep)));
    } else if (entry.isFile() && keep(entry.name)) out.push(full);
  }
  return out;
}
