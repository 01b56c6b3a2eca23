/**
 * The identity rewrite of a stored file's head (dicom/identity-rewrite.ts) on real files of every
 * encoding (explicit / implicit VR, big endian, deflated, compressed pixel data, undefined-length
 * sequences, group lengths): checked with dcmtk's dcmdump, an independent parser, that the identity
 * elements are the new ones, every other element is as it was, and the pixel data bytes are unchanged.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireDcmtk, runTool } from '../test-support/dimse-peer.js';
import { sharedDataDir } from '../test-support/shared-data.js';
import { readChanges, withChangesHead, withChangesJson, withIdentityHead, withIdentityJson, type HeaderChanges } from './identity-rewrite.js';
import type { StudyPlacement } from './study-identity.js';
import type { PatientIdentity } from './patient-identity.js';
import { scanPart10 } from './part10-scanner.js';
import { DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN } from './transfer-syntax.js';

requireDcmtk();

const IDENTITY: PatientIdentity = {
  patientId: 'H100',
  issuer: 'HOSP',
  name: 'TRAN^THI^B',
  birthDate: '19800102',
  sex: 'F',
  otherIds: [{ id: '001080012345', issuer: 'VN-CITIZEN', type: 'TEXT' }],
};

const FILES = [
  'dicom-orthanc-tests/TransferSyntaxes/1.2.840.10008.1.2.1.dcm',
  'dicom-orthanc-tests/TransferSyntaxes/1.2.840.10008.1.2.2.dcm',
  'dicom-orthanc-tests/TransferSyntaxes/1.2.840.10008.1.2.1.99.dcm',
  'dicom-orthanc-tests/TransferSyntaxes/1.2.840.10008.1.2.4.50.dcm',
  'dicom-orthanc-tests/TransferSyntaxes/1.2.840.10008.1.2.4.90.dcm',
  'dicom-orthanc-tests/TransferSyntaxes/1.2.840.10008.1.2.5.dcm',
  'dicom-dcmjs-tests/cine-test.dcm',
  'dicom-pydicom/debian-python3-pydicom-2.3.1/MR_small_bigendian.dcm',
  'dicom-pydicom/debian-python3-pydicom-2.3.1/CT_small.dcm',
  'dicom-pydicom/debian-python3-pydicom-2.3.1/rtplan.dcm',
  'dicom-pydicom/pydicom-data/liver_deflate.dcm',
];

const IDENTITY_TAGS = ['0010,0010', '0010,0020', '0010,0021', '0010,0030', '0010,0040', '0010,1002'];

/** The file as read with `identity`, the way archive/identity-on-read.ts builds it. */
async function corrected(file: Buffer, identity: PatientIdentity): Promise<Buffer> {
  return correctedWith(file, (head) => withIdentityHead(head, identity));
}

/** The file as read with any changes (a moved instance: its study and series of record too). */
async function correctedWith(file: Buffer, rewrite: (head: Buffer) => Buffer): Promise<Buffer> {
  const header = await scanPart10(
    (async function* () {
      yield file;
    })(),
    async () => {},
    { maxHeaderBytes: 64 << 20 },
  );
  const deflated = header.transferSyntaxUid === DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN;
  const headEnd = deflated || header.pixelData === undefined || header.pixelData.valueOffset <= 0 ? file.length : header.pixelData.valueOffset;
  return Buffer.concat([rewrite(file.subarray(0, headEnd)), file.subarray(headEnd)]);
}

/** dcmdump's lines of the data set, top level and nested, split into identity lines and the others. */
function dumpParts(dump: string): { identity: string[]; others: string[] } {
  const lines = dump.split('\n').filter((line) => /^\s*\([0-9a-f]{4},[0-9a-f]{4}\)/.test(line) && !/^\s*\(0002,/.test(line));
  const identity: string[] = [];
  const others: string[] = [];
  let inOtherIds = false;
  for (const line of lines) {
    const tag = /\(([0-9a-f]{4},[0-9a-f]{4})\)/.exec(line)![1]!;
    const topLevel = !line.startsWith(' ');
    if (topLevel) inOtherIds = tag === '0010,1002';
    if (inOtherIds || (topLevel && IDENTITY_TAGS.includes(tag))) identity.push(line.trim());
    // Group lengths and delimitation items follow the content (dcmdump prints "for re-encoding" ones).
    else if (!/\([0-9a-f]{4},0000\)/.test(line) && !/\(fffe,e0[0-9a-f]d\)/.test(line)) others.push(line.trim());
  }
  return { identity, others };
}

describe('identity rewrite of stored files', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'pacs-identity-rewrite-'));
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  const dump = async (bytes: Buffer, name: string) => {
    const at = path.join(work, name);
    await writeFile(at, bytes);
    const result = await runTool('dcmdump', ['-q', '+L', at]);
    expect(result.code, result.stderr).toBe(0);
    return result.stdout;
  };

  for (const relative of FILES) {
    it(`${relative}: only the identity elements change (dcmdump)`, async () => {
      const original = await readFile(path.join(sharedDataDir, relative));
      const out = await corrected(original, IDENTITY);
      const before = dumpParts(await dump(original, 'before.dcm'));
      const after = dumpParts(await dump(out, 'after.dcm'));
      expect(after.others).toEqual(before.others);
      const text = after.identity.join('\n');
      expect(text).toContain('[TRAN^THI^B]');
      expect(text).toContain('(0010,0020) LO [H100]');
      expect(text).toContain('(0010,0021) LO [HOSP]');
      expect(text).toContain('(0010,0030) DA [19800102]');
      expect(text).toContain('(0010,0040) CS [F]');
      expect(text).toContain('[001080012345]');
      expect(text).toContain('[VN-CITIZEN]');
      // The file's encoding is kept (File Meta unchanged).
      expect(out.subarray(0, 132).equals(original.subarray(0, 132))).toBe(true);

      // Applying the stored identity back gives the same elements as before.
      const again = dumpParts(await dump(await corrected(out, { ...IDENTITY, issuer: '', otherIds: [] }), 'again.dcm'));
      expect(again.others).toEqual(before.others);
      expect(again.identity.join('\n')).not.toContain('0010,1002');
      expect(again.identity.join('\n')).not.toContain('0010,0021');
    });
  }

  it('a group length of group 0010 is recomputed (as dcmtk recomputes it)', async () => {
    for (const relative of [FILES[0]!, FILES[1]!]) {
      const out = await corrected(await readFile(path.join(sharedDataDir, relative)), IDENTITY);
      const at = path.join(work, 'group-length.dcm');
      await writeFile(at, out);
      const recomputed = path.join(work, 'group-length-dcmtk.dcm');
      expect((await runTool('dcmconv', ['+g=', at, recomputed])).code).toBe(0);
      const groupLength = async (file: string) => /\(0010,0000\) UL (\d+)/.exec((await runTool('dcmdump', ['-q', '+P', '0010,0000', file])).stdout)?.[1];
      expect(await groupLength(at), relative).toBeDefined();
      expect(await groupLength(at), relative).toBe(await groupLength(recomputed));
    }
  });

  it('an identity without issuer and other IDs removes them; a Type 2 value without one is written empty', async () => {
    const original = await readFile(path.join(sharedDataDir, FILES[0]!));
    const withIds = await corrected(original, IDENTITY);
    const without = await corrected(withIds, { patientId: 'H100', issuer: '', name: null, birthDate: null, sex: null, otherIds: [] });
    const text = dumpParts(await dump(without, 'empty.dcm')).identity.join('\n');
    expect(text).toContain('(0010,0010) PN (no value available)');
    expect(text).toContain('(0010,0030) DA (no value available)');
    expect(text).not.toContain('(0010,0021)');
    expect(text).not.toContain('(0010,1002)');
  });

  it('a non-ASCII name: UTF-8 with ISO_IR 192 added to a file that had no character set, Latin-1 kept where it suffices', async () => {
    const plain = await readFile(path.join(sharedDataDir, FILES[0]!));
    const vietnamese = await dump(await corrected(plain, { ...IDENTITY, name: 'NGUYỄN^VĂN AN' }), 'utf8.dcm');
    expect(vietnamese).toContain('(0008,0005) CS [ISO_IR 192]');
    expect(vietnamese).toContain('NGUYỄN^VĂN AN');
    const latin1File = await readFile(path.join(sharedDataDir, 'dicom-pydicom/debian-python3-pydicom-2.3.1/CT_small.dcm'));
    const german = await corrected(latin1File, { ...IDENTITY, name: 'MÜLLER^JÖRG' });
    expect(german.includes(Buffer.from('MÜLLER^JÖRG', 'latin1'))).toBe(true);
    expect((await dump(german, 'latin1.dcm'))).toContain('(0008,0005) CS [ISO_IR 100]');
  });

  // A moved instance (curation: move, split, merge) reads with its study of record: an odd-length UID
  // (NUL-padded), a Type 3 description left out when the study has none.
  const PLACEMENT: StudyPlacement = {
    study: { studyInstanceUid: '1.2.826.0.1.3680043.99.12345', studyDate: '20240302', studyTime: '090000', accessionNumber: 'ACC-B', studyId: 'SB', studyDescription: 'Brain (split)', referringPhysicianName: 'VO^BAC SI' },
    seriesInstanceUid: '1.2.826.0.1.3680043.99.123456',
  };
  const STUDY_TAGS = ['0008,0020', '0008,0030', '0008,0050', '0008,0090', '0008,1030', '0020,000d', '0020,000e', '0020,0010', '0008,0005'];
  const withoutTags = (lines: string[], tags: string[]) => lines.filter((line) => !tags.some((tag) => line.startsWith(`(${tag})`)));

  for (const relative of [FILES[0]!, FILES[1]!, FILES[2]!, FILES[5]!, FILES[7]!, FILES[10]!]) {
    it(`${relative}: a moved instance's study and series are spliced in, nothing else changes (dcmdump)`, async () => {
      const original = await readFile(path.join(sharedDataDir, relative));
      const changes: HeaderChanges = readChanges(IDENTITY, PLACEMENT);
      const out = await correctedWith(original, (head) => withChangesHead(head, changes));
      const text = await dump(out, 'moved.dcm');
      expect(text).toContain('(0020,000d) UI [1.2.826.0.1.3680043.99.12345]');
      expect(text).toContain('(0020,000e) UI [1.2.826.0.1.3680043.99.123456]');
      expect(text).toContain('(0008,0050) SH [ACC-B]');
      expect(text).toContain('(0008,0020) DA [20240302]');
      expect(text).toContain('(0020,0010) SH [SB]');
      expect(text).toContain('[Brain (split)]');
      expect(text).toContain('[TRAN^THI^B]');
      const before = dumpParts(await dump(original, 'before.dcm'));
      const after = dumpParts(text);
      expect(withoutTags(after.others, STUDY_TAGS)).toEqual(withoutTags(before.others, STUDY_TAGS));
      // An odd-length UID is padded with NUL, never a space (PS3.5 §9.1); a deflated data set is not readable here.
      if (!relative.includes('deflate') && !relative.endsWith('.1.99.dcm')) expect(out.includes(Buffer.from(`${PLACEMENT.seriesInstanceUid}\0`, 'latin1'))).toBe(true);
      // Without a description, the Type 3 element is left out.
      const bare = await correctedWith(original, (head) => withChangesHead(head, readChanges(undefined, { ...PLACEMENT, study: { ...PLACEMENT.study, studyDescription: null } })));
      expect(await dump(bare, 'bare.dcm')).not.toContain('(0008,1030)');
    });
  }

  it("a moved instance's non-ASCII study description makes a file without a character set UTF-8", async () => {
    const plain = await readFile(path.join(sharedDataDir, FILES[0]!));
    const out = await correctedWith(plain, (head) => withChangesHead(head, readChanges(undefined, { ...PLACEMENT, study: { ...PLACEMENT.study, studyDescription: 'Não bộ' } })));
    const text = await dump(out, 'moved-utf8.dcm');
    expect(text).toContain('(0008,0005) CS [ISO_IR 192]');
    expect(text).toContain('Não bộ');
  });

  it('the JSON overlay of a moved instance sets its study and series', () => {
    const json = withChangesJson({ '0020000D': { vr: 'UI', Value: ['9.9'] }, '00081030': { vr: 'LO', Value: ['OLD'] }, '00080060': { vr: 'CS', Value: ['CT'] } }, readChanges(undefined, PLACEMENT));
    expect(json['0020000D']).toEqual({ vr: 'UI', Value: [PLACEMENT.study.studyInstanceUid] });
    expect(json['0020000E']).toEqual({ vr: 'UI', Value: [PLACEMENT.seriesInstanceUid] });
    expect(json['00080090']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'VO^BAC SI' }] });
    expect(json['00080060']).toEqual({ vr: 'CS', Value: ['CT'] });
  });

  it('the JSON overlay sets the same elements', () => {
    const json = withIdentityJson({ '00100010': { vr: 'PN', Value: [{ Alphabetic: 'OLD' }] }, '00100021': { vr: 'LO', Value: ['OLD'] }, '00080060': { vr: 'CS', Value: ['CT'] } }, { ...IDENTITY, issuer: '' });
    expect(json['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'TRAN^THI^B' }] });
    expect(json['00100021']).toBeUndefined();
    expect(json['00080060']).toEqual({ vr: 'CS', Value: ['CT'] });
    expect(json['00101002']?.Value).toHaveLength(1);
  });
});
