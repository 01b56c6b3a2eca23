/**
 * STOW templates for the soak benchmark (scripts/bench-soak.ts): real Part-10 files from the shared
 * data whose Study/Series/SOP Instance UIDs, Patient ID and Patient Name are rewritten in place for
 * every upload. Each new value has exactly the length of the original, so no element length, item
 * length or File Meta group length changes and the file stays valid whatever its transfer syntax
 * (JPEG fragments included); the byte positions are found once, so an upload costs one copy.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { DicomElement } from './generate.js';

const dcmjsData = (
  createRequire(import.meta.url)('dcmjs') as {
    data: { DicomMessage: { readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): { dict: Record<string, DicomElement> } } };
  }
).data;

/** Header values of a Part-10 file (pixel data not parsed). */
export interface TemplateInfo {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
  modality: string;
  patientId: string;
  patientName: string;
  frames: number;
}

export function readTemplateInfo(bytes: Buffer): TemplateInfo {
  const parsed = dcmjsData.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer, {
    untilTag: '7FE00010',
    includeUntilTagValue: false,
  });
  const v = (tag: string): unknown => parsed.dict[tag]?.Value?.[0];
  const name = v('00100010');
  return {
    studyInstanceUid: String(v('0020000D') ?? ''),
    seriesInstanceUid: String(v('0020000E') ?? ''),
    sopInstanceUid: String(v('00080018') ?? ''),
    sopClassUid: String(v('00080016') ?? ''),
    modality: String(v('00080060') ?? ''),
    patientId: String(v('00100020') ?? '').trim(),
    patientName: String(typeof name === 'object' && name !== null ? ((name as { Alphabetic?: string }).Alphabetic ?? '') : (name ?? '')).trim(),
    frames: Number(v('00280008') ?? 1) || 1,
  };
}

type Field = 'study' | 'series' | 'sop' | 'patientId' | 'patientName';

/** Offsets of every whole-value occurrence of `value` (not part of a longer UID or word). */
function occurrences(bytes: Buffer, value: string): number[] {
  if (value.length === 0) return [];
  const needle = Buffer.from(value, 'latin1');
  const inWord = (b: number | undefined) => b !== undefined && ((b >= 0x30 && b <= 0x39) || b === 0x2e || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a));
  const found: number[] = [];
  for (let at = bytes.indexOf(needle); at >= 0; at = bytes.indexOf(needle, at + 1)) {
    if (!inWord(bytes[at - 1]) && !inWord(bytes[at + needle.length])) found.push(at);
  }
  return found;
}

/** A digits-only UID under the 2.25 root (UUID-derived arc) of exactly `length` characters. */
export function uidOfLength(length: number): string {
  const digits = length - 5;
  if (digits < 12) throw new Error(`cannot make a unique UID of ${length} characters`);
  let arc = String(crypto.randomInt(1, 10));
  while (arc.length < digits) arc += crypto.randomInt(0, 1e9).toString().padStart(9, '0');
  return `2.25.${arc.slice(0, digits)}`;
}

function fit(text: string, length: number, pad: string): string {
  return text.length >= length ? text.slice(0, length) : text + pad.repeat(length - text.length);
}

export class StowTemplate {
  readonly info: TemplateInfo;
  private readonly positions = new Map<Field, { at: number[]; length: number }>();

  constructor(
    readonly label: string,
    readonly file: string,
    readonly bytes: Buffer,
    /** An endoscopy colour image the polyp detector can run on. */
    readonly endoscopy: boolean,
  ) {
    this.info = readTemplateInfo(bytes);
    const values: Array<[Field, string]> = [
      ['study', this.info.studyInstanceUid],
      ['series', this.info.seriesInstanceUid],
      ['sop', this.info.sopInstanceUid],
      ['patientId', this.info.patientId],
      ['patientName', this.info.patientName],
    ];
    for (const [field, value] of values) {
      const at = occurrences(bytes, value);
      if (field === 'study' || field === 'series' || field === 'sop') {
        if (at.length === 0 || value.length < 17) throw new Error(`${label}: cannot locate its ${field} UID "${value}" for rewriting`);
      }
      // Too short to carry a recognisable soak value: left as it is.
      if (field === 'patientId' && value.length < 6) continue;
      if (field === 'patientName' && value.length < 10) continue;
      if (at.length > 0) this.positions.set(field, { at, length: value.length });
    }
  }

  get uidLengths(): { study: number; series: number; sop: number } {
    return { study: this.info.studyInstanceUid.length, series: this.info.seriesInstanceUid.length, sop: this.info.sopInstanceUid.length };
  }

  /**
   * A copy with the given study/series UIDs (lengths must be the template's: see newStudy/newSeries), a
   * fresh SOP Instance UID and, where the template's values are long enough, patient `patientNo`'s ID
   * (`SK000042…`) and name (`SOAK000042^…`).
   */
  instance(study: string, series: string, patientNo: number): { bytes: Buffer; sopInstanceUid: string; patientId?: string; patientName?: string } {
    const out = Buffer.from(this.bytes);
    const sopInstanceUid = uidOfLength(this.uidLengths.sop);
    const write = (field: Field, value: string): string | undefined => {
      const p = this.positions.get(field);
      if (!p) return undefined;
      if (value.length !== p.length) throw new Error(`${this.label}: ${field} must be ${p.length} characters`);
      for (const at of p.at) out.write(value, at, 'latin1');
      return value;
    };
    write('study', study);
    write('series', series);
    write('sop', sopInstanceUid);
    const id = this.positions.get('patientId');
    const name = this.positions.get('patientName');
    const patientId = id ? write('patientId', fit(`SK${String(patientNo).padStart(6, '0')}`, id.length, '0')) : undefined;
    const patientName = name ? write('patientName', fit(`SOAK${String(patientNo).padStart(6, '0')}^`, name.length, 'X')) : undefined;
    return { bytes: out, sopInstanceUid, patientId, patientName };
  }

  newStudy(): string {
    return uidOfLength(this.uidLengths.study);
  }

  newSeries(): string {
    return uidOfLength(this.uidLengths.series);
  }
}

export function loadTemplate(label: string, file: string, endoscopy = false): StowTemplate {
  return new StowTemplate(label, file, fs.readFileSync(file), endoscopy);
}
