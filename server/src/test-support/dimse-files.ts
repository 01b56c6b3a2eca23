/**
 * Shared-data files for the DIMSE tests and benchmark, and a dcmtk storescu configuration that proposes
 * each file's own transfer syntax (one presentation context per compressed syntax), so storescu sends
 * compressed files as they are instead of failing to decompress them.
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { requireSharedData } from './shared-data.js';

/** A mixed folder: every transfer syntax of orthanc-tests (compressed ones included) plus PET, PDF and colour files. */
export function mixedDicomFiles(): string[] {
  const root = path.join(requireSharedData(), 'dicom-orthanc-tests');
  const syntaxes = [
    '1.2.840.10008.1.2',
    '1.2.840.10008.1.2.1',
    '1.2.840.10008.1.2.1.99',
    '1.2.840.10008.1.2.2',
    '1.2.840.10008.1.2.4.50',
    '1.2.840.10008.1.2.4.51',
    '1.2.840.10008.1.2.4.57',
    '1.2.840.10008.1.2.4.70',
    '1.2.840.10008.1.2.4.80',
    '1.2.840.10008.1.2.4.81',
    '1.2.840.10008.1.2.4.90',
    '1.2.840.10008.1.2.4.91',
    '1.2.840.10008.1.2.5',
  ].map((uid) => path.join(root, 'TransferSyntaxes', `${uid}.dcm`));
  const misc = ['ColorTestMalaterre.dcm', 'sample-pdf.dcm', '2022-11-14-RLEPlanarConfiguration.dcm'].map((name) =>
    path.join(root, 'misc', name),
  );
  return [...syntaxes, ...misc];
}

const STORAGE_CLASSES = [
  '1.2.840.10008.5.1.4.1.1.2', // CT
  '1.2.840.10008.5.1.4.1.1.4', // MR
  '1.2.840.10008.5.1.4.1.1.6.1', // US
  '1.2.840.10008.5.1.4.1.1.6', // US (retired)
  '1.2.840.10008.5.1.4.1.1.7', // SC
  '1.2.840.10008.5.1.4.1.1.128', // PET
  '1.2.840.10008.5.1.4.1.1.104.1', // Encapsulated PDF
];
const SYNTAXES = [
  '1.2.840.10008.1.2.1',
  '1.2.840.10008.1.2',
  '1.2.840.10008.1.2.2',
  '1.2.840.10008.1.2.1.99',
  '1.2.840.10008.1.2.4.50',
  '1.2.840.10008.1.2.4.51',
  '1.2.840.10008.1.2.4.57',
  '1.2.840.10008.1.2.4.70',
  '1.2.840.10008.1.2.4.80',
  '1.2.840.10008.1.2.4.81',
  '1.2.840.10008.1.2.4.90',
  '1.2.840.10008.1.2.4.91',
  '1.2.840.10008.1.2.5',
];

/** Writes the storescu config (`--config-file FILE AsReceived`) and returns its path. */
export async function writeStorescuConfig(file: string): Promise<string> {
  const lines: string[] = ['[[TransferSyntaxes]]'];
  SYNTAXES.forEach((uid, i) => lines.push(`[TS${i}]`, `TransferSyntax1 = ${uid}`));
  lines.push('[[PresentationContexts]]', '[AsReceived]');
  let n = 1;
  for (const sopClass of STORAGE_CLASSES) {
    SYNTAXES.forEach((_uid, i) => lines.push(`PresentationContext${n++} = ${sopClass}\\TS${i}`));
  }
  lines.push('[[Profiles]]', '[AsReceived]', 'PresentationContexts = AsReceived');
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

/** Byte offset of the data set in a Part-10 file (after the File Meta group), for comparisons. */
export function datasetBytes(file: Buffer): Buffer {
  let at = 132;
  while (at + 8 <= file.length && file.readUInt16LE(at) === 0x0002) {
    const vr = file.toString('latin1', at + 4, at + 6);
    at += ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr) ? 12 + file.readUInt32LE(at + 8) : 8 + file.readUInt16LE(at + 6);
  }
  return file.subarray(at);
}

export function readDataset(file: string): Buffer {
  return datasetBytes(readFileSync(file));
}

/** A storescp config (`--config-file FILE AnyAsSent`) accepting every syntax of the mixed files, as sent. */
export async function writeStorescpConfig(file: string): Promise<string> {
  const lines: string[] = ['[[TransferSyntaxes]]', '[Any]'];
  [...SYNTAXES].reverse().forEach((uid, i) => lines.push(`TransferSyntax${i + 1} = ${uid}`));
  lines.push('[[PresentationContexts]]', '[AnyAsSent]');
  STORAGE_CLASSES.forEach((sopClass, i) => lines.push(`PresentationContext${i + 1} = ${sopClass}\\Any`));
  lines.push('[[Profiles]]', '[AnyAsSent]', 'PresentationContexts = AnyAsSent');
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}
