/**
 * De-identification after PS3.15 Annex E (Basic Application Level Confidentiality Profile): the
 * profile's table walked against the output, on an instance holding every attribute of the table and on
 * real instances of the shared corpora; UIDs consistent within a copy and different between copies;
 * the original untouched; dciodvfy (dicom3tools) finding no error in a copy that the original did not
 * have; instances the profile cannot make safe refused.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import dcmjs, { type DcmjsDict, type DcmjsElement } from 'dcmjs';
import { describe, expect, it } from 'vitest';
import { fileMetaOf, topLevelPixelData } from '../dicom/identity-rewrite.js';
import { writePart10 } from '../dicom/write-part10.js';
import { dciodvfyErrors } from '../test-support/dciodvfy.js';
import { requireSharedData } from '../test-support/shared-data.js';
import { BASIC_PROFILE, BASIC_PROFILE_TABLE, type BasicProfileAction } from './basic-profile-table.js';
import { deidentifyPart10, DeidentificationRefusedError, replacementUid } from './deidentify.js';

const data = requireSharedData();
const pydicom = path.join(data, 'dicom-pydicom/debian-python3-pydicom-2.3.1');
const REAL = [
  path.join(pydicom, 'CT_small.dcm'),
  path.join(pydicom, 'MR_small.dcm'),
  path.join(pydicom, 'MR_small_implicit.dcm'),
  path.join(pydicom, 'JPEG-lossy.dcm'),
  path.join(pydicom, 'SC_rgb_rle_2frame.dcm'),
  path.join(pydicom, 'rtdose_rle.dcm'),
  path.join(pydicom, 'charset_files/chrX1.dcm'),
  path.join(pydicom, 'dicomdirtests/77654033/CR1/6154'),
  path.join(pydicom, 'dicomdirtests/98892003/MR1/4919'),
  path.join(data, 'dicom-pydicom/pydicom-data/bad_sequence.dcm'),
  path.join(data, 'dicom-orthanc-tests/misc/ColorTestMalaterre.dcm'),
  path.join(data, 'dicom-orthanc-tests/misc/2021-02-19-MalaterreCP246.dcm'),
];
const options = (secret = 'consult-1') => ({ uidSecret: Buffer.from(secret), patientName: 'CONSULT^AB12CD34', patientId: 'CONSULT-AB12CD34' });

function parse(file: Buffer): DcmjsDict {
  const ab = file.buffer.slice(file.byteOffset, file.byteOffset + file.length) as ArrayBuffer;
  return dcmjs.data.DicomMessage.readFile(ab, { ignoreErrors: true }).dict;
}

/** Every element at any depth, by path (`00081140/0/00081155`). */
function flatten(dict: DcmjsDict, prefix = '', out = new Map<string, DcmjsElement>()): Map<string, DcmjsElement> {
  for (const [tag, element] of Object.entries(dict)) {
    const at = `${prefix}${tag.toUpperCase()}`;
    out.set(at, element);
    if (element.vr === 'SQ') (element.Value ?? []).forEach((item, index) => item && typeof item === 'object' && flatten(item as DcmjsDict, `${at}/${index}/`, out));
  }
  return out;
}

const text = (element: DcmjsElement | undefined): string[] =>
  (element?.Value ?? []).map((value) => {
    if (value instanceof ArrayBuffer) return `bytes:${createHash('sha256').update(Buffer.from(value)).digest('hex')}`;
    if (ArrayBuffer.isView(value)) return `bytes:${createHash('sha256').update(Buffer.from(value.buffer, value.byteOffset, value.byteLength)).digest('hex')}`;
    return value !== null && typeof value === 'object' && 'Alphabetic' in (value as object) ? String((value as { Alphabetic: string }).Alphabetic) : String(value);
  });
const isEmpty = (element: DcmjsElement) => text(element).every((v) => v === '');

/** What the table requires of one attribute present in the original, checked on the copy; a message when it is not so. */
function tableProblem(pathOf: string, action: BasicProfileAction, before: DcmjsElement, after: DcmjsElement | undefined, out: Map<string, DcmjsElement>): string | undefined {
  if (pathOf.includes('/')) {
    // Inside a sequence the profile removed or emptied: nothing left to check.
    const parts = pathOf.split('/');
    const parent = out.get(parts.slice(0, -2).join('/'));
    if (parent === undefined || (parent.Value ?? []).length <= Number(parts.at(-2))) return undefined;
  }
  const removed = after === undefined;
  const empty = !removed && isEmpty(after);
  const original = text(before).join('\\');
  // A sequence kept under D or U* is checked through its items.
  const replaced = !removed && (after.vr === 'SQ' || (!empty && (text(after).join('\\') !== original || original === 'ANONYMIZED')));
  const uids = !removed && after.vr === 'UI' && text(after).every((v) => v === '' || (/^2\.25\.\d+$/.test(v) && !text(before).includes(v)));
  const ok: Record<BasicProfileAction, boolean> = {
    X: removed,
    Z: (empty && after?.vr !== 'SQ') || (after?.vr === 'SQ' && (after.Value ?? []).length === 0) || (replaced && after?.vr === 'PN'),
    D: replaced,
    U: uids || (removed === false && after.vr === 'SQ'),
    'Z/D': empty || replaced,
    'X/Z': removed || (empty && (after?.vr !== 'SQ' || (after.Value ?? []).length === 0)),
    'X/D': removed || replaced,
    'X/Z/D': removed || empty || replaced,
    'X/Z/U*': removed || empty || (!removed && after.vr === 'SQ'),
  };
  return ok[action] ? undefined : `${pathOf} (${action}): ${removed ? 'removed' : `"${text(after).join('\\').slice(0, 40)}"`} from "${original.slice(0, 40)}"`;
}

function walkTable(input: Buffer, output: Buffer): { problems: string[]; checked: Set<string> } {
  const before = flatten(parse(input));
  const after = flatten(parse(output));
  const problems: string[] = [];
  const checked = new Set<string>();
  for (const [at, element] of before) {
    const tag = at.split('/').at(-1)!;
    if (tag.startsWith('0002')) continue; // File Meta: rewritten whole
    const group = parseInt(tag.slice(0, 4), 16);
    const action = BASIC_PROFILE.get(tag);
    if (group % 2 === 1 || (group >= 0x5000 && group <= 0x50ff) || (group >= 0x6000 && group <= 0x60ff)) {
      if (after.has(at)) problems.push(`${at}: a private, curve or overlay attribute kept`);
      continue;
    }
    if (action === undefined) continue;
    checked.add(tag);
    const problem = tableProblem(at, action, element, after.get(at), after);
    if (problem !== undefined) problems.push(problem);
  }
  for (const at of after.keys()) {
    const group = parseInt(at.split('/').at(-1)!.slice(0, 4), 16);
    if (group % 2 === 1) problems.push(`${at}: a private attribute in the copy`);
  }
  return { problems, checked };
}

function expectMarkedDeidentified(output: Buffer) {
  const dict = parse(output);
  expect(dict['00120062']?.Value).toEqual(['YES']);
  const method = (dict['00120064']?.Value as DcmjsDict[])[0]!;
  expect([method['00080100']?.Value?.[0], method['00080102']?.Value?.[0], method['00080104']?.Value?.[0]]).toEqual(['113100', 'DCM', 'Basic Application Confidentiality Profile']);
  expect(text(dict['00100010'])).toEqual(['CONSULT^AB12CD34']);
  expect(text(dict['00100020'])).toEqual(['CONSULT-AB12CD34']);
  expect(isEmpty(dict['00100030'] ?? { vr: 'DA', Value: [] })).toBe(true);
}

/** A value of the VR for an instance that holds every attribute of the table. */
function sampleValue(vr: string, tag: string): unknown[] {
  switch (vr) {
    case 'PN':
      return [{ Alphabetic: 'NGUYEN^VAN^SAMPLE' }];
    case 'UI':
      return [`1.2.826.0.1.3680043.8.498.${parseInt(tag, 16)}`];
    case 'DA':
      return ['20240315'];
    case 'TM':
      return ['101530'];
    case 'DT':
      return ['20240315101530'];
    case 'AS':
      return ['045Y'];
    case 'DS':
    case 'IS':
      return [7];
    case 'CS':
      return ['SAMPLE'];
    case 'AE':
      return ['SAMPLE_AE'];
    case 'UR':
      return ['https://example.org/sample'];
    case 'FL':
    case 'FD':
    case 'SL':
    case 'SS':
    case 'UL':
    case 'US':
      return [7];
    case 'OB':
    case 'OW':
    case 'UN':
      return [new Uint8Array([1, 2, 3, 4]).buffer];
    case 'AT':
      return [];
    default:
      return [`sample ${tag}`];
  }
}

describe('the Basic Profile table, walked against the output', () => {
  it('removes or replaces every attribute of Table E.1-1 on an instance that holds them all', () => {
    const dictionary = dcmjs.data.DicomMetaDictionary.dictionary as Record<string, { vr: string } | undefined>;
    const dict: DcmjsDict = {};
    const skipped: string[] = [];
    for (const [tag] of BASIC_PROFILE_TABLE) {
      if (/^000[024]/.test(tag)) continue; // command, File Meta and DICOMDIR groups: not in a stored data set
      const entry = dictionary[`(${tag.slice(0, 4)},${tag.slice(4)})`];
      const vr = entry?.vr.split(/ or |\|/)[0];
      if (vr === undefined || vr === 'AT' || vr === 'OF' || vr === 'OD' || vr === 'OL' || vr === 'OV' || vr === 'SV' || vr === 'UV') {
        skipped.push(tag);
        continue;
      }
      dict[tag] =
        vr === 'SQ'
          ? { vr: 'SQ', Value: [{ '00401101': { vr: 'SQ', Value: [] }, '00081155': { vr: 'UI', Value: ['1.2.826.0.1.3680043.8.498.99'] }, '0040A123': { vr: 'PN', Value: [{ Alphabetic: 'INSIDE^A SEQUENCE' }] } }] }
          : { vr, Value: sampleValue(vr, tag) };
    }
    const naturalized = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict);
    const input = writePart10({ ...naturalized, SOPClassUID: '1.2.840.10008.5.1.4.1.1.7', Modality: 'OT', '_vrMap': {} });
    const output = deidentifyPart10(input, options()).bytes;
    const { problems, checked } = walkTable(input, output);
    expect(problems).toEqual([]);
    // Nearly the whole table is present in the input and was checked (the rest: tags dcmjs's dictionary
    // does not know yet, or VRs it cannot write).
    expect(checked.size).toBeGreaterThan(BASIC_PROFILE_TABLE.length - 60);
    expect(skipped.length).toBeLessThan(60);
    expectMarkedDeidentified(output);
  });

  it('does so on real instances of the shared corpora, pixel data byte for byte', () => {
    const exercised = new Set<string>();
    for (const file of REAL) {
      const input = readFileSync(file);
      const output = deidentifyPart10(input, options()).bytes;
      const { problems, checked } = walkTable(input, output);
      expect(problems, path.basename(file)).toEqual([]);
      checked.forEach((tag) => exercised.add(tag));
      expectMarkedDeidentified(output);
      const pixelsOf = (bytes: Buffer) => {
        const { datasetStart, transferSyntaxUid } = fileMetaOf(bytes);
        const span = topLevelPixelData(bytes.subarray(datasetStart), transferSyntaxUid)!;
        return bytes.subarray(datasetStart + span.start, datasetStart + span.end);
      };
      expect(pixelsOf(output).equals(pixelsOf(input)), path.basename(file)).toBe(true);
    }
    expect(exercised.size).toBeGreaterThan(30);
  });
});

describe('UIDs', () => {
  it('are consistent across the instances of one copy, and different in another consult', () => {
    const series = ['17106', '17136', '17166', '17196'].map((name) => readFileSync(path.join(pydicom, 'dicomdirtests/77654033/CT2', name)));
    const copies = series.map((file) => deidentifyPart10(file, options('consult-1')));
    const originals = series.map((file) => parse(file));
    const studies = new Set(copies.map((c) => c.studyInstanceUid));
    const seriesUids = new Set(copies.map((c) => c.seriesInstanceUid));
    const frames = new Set(copies.map((c) => text(parse(c.bytes)['00200052'])[0]));
    expect([studies.size, seriesUids.size, frames.size]).toEqual([1, 1, 1]);
    expect(new Set(copies.map((c) => c.sopInstanceUid)).size).toBe(4);
    const secret = Buffer.from('consult-1');
    copies.forEach((copy, i) => {
      expect(copy.studyInstanceUid).toBe(replacementUid(secret, text(originals[i]!['0020000D'])[0]!));
      expect(copy.sopInstanceUid).toBe(replacementUid(secret, text(originals[i]!['00080018'])[0]!));
      expect(copy.uids.get(text(originals[i]!['00080018'])[0]!)).toBe(copy.sopInstanceUid);
      expect(copy.studyInstanceUid).toMatch(/^2\.25\.\d{1,39}$/);
    });
    // The same image in another transfer syntax keeps its UIDs within the consult.
    const explicit = deidentifyPart10(readFileSync(path.join(pydicom, 'MR_small.dcm')), options('consult-1'));
    const implicit = deidentifyPart10(readFileSync(path.join(pydicom, 'MR_small_implicit.dcm')), options('consult-1'));
    expect(implicit.sopInstanceUid).toBe(explicit.sopInstanceUid);
    // Another consult: nothing in common.
    const other = deidentifyPart10(series[0]!, options('consult-2'));
    expect(other.studyInstanceUid).not.toBe(copies[0]!.studyInstanceUid);
    expect(other.sopInstanceUid).not.toBe(copies[0]!.sopInstanceUid);
  });
});

describe('the original', () => {
  it('is never touched', () => {
    for (const file of REAL) {
      const input = readFileSync(file);
      const digest = createHash('sha256').update(input).digest('hex');
      deidentifyPart10(input, options());
      expect(createHash('sha256').update(input).digest('hex')).toBe(digest);
    }
  });
});

describe('dciodvfy (dicom3tools)', () => {
  // Values differ between original and copy (UIDs, names): compare the kind of error.
  const errorsOf = async (part10: Buffer, name: string): Promise<Set<string>> =>
    new Set((await dciodvfyErrors(part10, name)).map((line) => line.replace(/<[^>]*>/g, '<>').replace(/"[^"]*"/g, '""')));

  it('finds no error in a de-identified instance that it did not find in the original', async () => {
    for (const file of REAL) {
      const original = readFileSync(file);
      const before = await errorsOf(original, path.basename(file));
      const fresh = [...(await errorsOf(deidentifyPart10(original, options()).bytes, `${path.basename(file)}.deid.dcm`))].filter((line) => !before.has(line));
      expect(fresh, path.basename(file)).toEqual([]);
    }
  });
});

describe('instances the Basic Profile cannot make safe', () => {
  const refusal = (file: string) => {
    try {
      deidentifyPart10(readFileSync(file), options());
      return 'copied';
    } catch (err) {
      expect(err).toBeInstanceOf(DeidentificationRefusedError);
      return (err as DeidentificationRefusedError).reason;
    }
  };

  it('refuses burned-in annotation, structured reports and encapsulated documents', () => {
    expect(refusal(path.join(data, 'dicom-orthanc-tests/misc/2023-04-21-RLEPlanarConfigurationYBR_FULL.dcm'))).toMatch(/Burned In Annotation \(0028,0301\) is YES/);
    expect(refusal(path.join(pydicom, 'reportsi.dcm'))).toMatch(/structured report/);
    expect(refusal(path.join(data, 'dicom-orthanc-tests/misc/sample-pdf.dcm'))).toMatch(/encapsulated document/);
  });

  it("is not what dcmjs's anonymizer does: cleanTags leaves UIDs and private attributes in place", () => {
    const anonymizer = (dcmjs as unknown as { anonymizer: { cleanTags(dict: DcmjsDict): void } }).anonymizer;
    const dict = parse(readFileSync(path.join(pydicom, 'CT_small.dcm')));
    const sop = text(dict['00080018'])[0];
    anonymizer.cleanTags(dict);
    expect(text(dict['00080018'])[0]).toBe(sop);
    expect(Object.keys(dict).some((tag) => parseInt(tag.slice(0, 4), 16) % 2 === 1)).toBe(true);
  });
});
