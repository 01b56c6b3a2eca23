/**
 * Every file of the shared public DICOM corpora (all transfer syntaxes, SR/SEG/RT, malformed and
 * hostile files, non-DICOM files beside them) is either stored or refused with a 4xx — never a 5xx —
 * and what was stored stays byte-identical in blob storage. Also: no patient name or ID of the corpus
 * appears in any log line.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { multipartBody, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { sharedDataDir, sharedFiles } from '../test-support/shared-data.js';

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp();
});
afterAll(async () => t.close());

interface FileResult {
  file: string;
  status: number;
  sopInstanceUid?: string;
  reason?: string;
}

const results: FileResult[] = [];

describe('STOW-RS with every file of the shared DICOM corpora', () => {
  it('stores or refuses each file with a 4xx, never a 5xx', async () => {
    const files = await sharedFiles(['dicom-pydicom', 'dicom-orthanc-tests', 'dicom-dcmjs-tests', 'dicom-highdicom']);
    expect(files.length).toBeGreaterThan(300);
    for (const file of files) {
      const bytes = await readFile(file);
      const response = await t.app.inject({
        method: 'POST',
        url: '/dicomweb/studies',
        payload: multipartBody([{ body: bytes }]),
        headers: { 'content-type': STOW_CONTENT_TYPE() },
      });
      const relative = path.relative(sharedDataDir, file);
      expect(response.statusCode, `${relative}: ${response.body.slice(0, 300)}`).toBeLessThan(500);
      expect([200, 409], relative).toContain(response.statusCode);
      const body = response.json();
      results.push({
        file,
        status: response.statusCode,
        sopInstanceUid: body['00081199']?.Value?.[0]?.['00081155']?.Value?.[0],
        reason: body['00081198']?.Value?.[0]?.['0040A160']?.Value?.[0],
      });
    }
    const stored = results.filter((r) => r.status === 200).length;
    // The corpora are mostly valid DICOM: most must be accepted, the malformed ones refused.
    expect(stored).toBeGreaterThan(200);
    expect(results.some((r) => r.file.endsWith('.dump') && r.status === 409)).toBe(true);
  }, 300_000);

  it('keeps every stored file byte for byte in blob storage', async () => {
    // Several corpus files share a SOP Instance UID: the first stored copy is the one kept (idempotence).
    const firstBySop = new Map<string, FileResult>();
    for (const r of results) if (r.status === 200 && r.sopInstanceUid && !firstBySop.has(r.sopInstanceUid)) firstBySop.set(r.sopInstanceUid, r);
    const stored = [...firstBySop.values()];
    expect(stored.length).toBeGreaterThan(150);
    const blobRoot = t.config.blobStore.kind === 'fs' ? t.config.blobStore.root : '';
    for (const result of stored) {
      const response = await t.app.inject({ method: 'GET', url: `/dicomweb/instances?SOPInstanceUID=${result.sopInstanceUid}` });
      const match = response.json()[0];
      expect(match, result.file).toBeDefined();
      const study = match['0020000D'].Value[0];
      const series = match['0020000E'].Value[0];
      const instances = await archiveInstances(study, series, result.sopInstanceUid!);
      const original = await readFile(result.file);
      const kept = await readFile(path.join(blobRoot, instances.blobKey));
      expect(kept.length, result.file).toBe(original.length);
      expect(kept.equals(original), result.file).toBe(true);
    }
  }, 120_000);

  it('writes no patient name or ID into the log', () => {
    const identifiers = new Set<string>();
    for (const result of results.filter((r) => r.status === 200)) {
      collectIdentifiers(result.file, identifiers);
    }
    expect(identifiers.size).toBeGreaterThan(10);
    const log = t.logLines.join('');
    expect(log.length).toBeGreaterThan(0);
    // Whole-token matches only: a numeric ID such as 95138 must not match inside "responseTime":0.9869513.
    const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const where: string[] = [];
    for (const identifier of identifiers) {
      const match = new RegExp(`(?<![A-Za-z0-9.])${escape(identifier)}(?![A-Za-z0-9])`).exec(log);
      // Printed only on failure, by length and context, so the failure message itself leaks nothing.
      if (match) where.push(`${identifier.length} chars after: ${log.slice(Math.max(0, match.index - 80), match.index)}`);
    }
    expect(where).toEqual([]);
  });
});

async function archiveInstances(study: string, series: string, sop: string) {
  const [instance] = await t.services.catalog.listInstances({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop });
  if (!instance) throw new Error(`instance ${sop} not indexed`);
  return instance;
}

function collectIdentifiers(file: string, into: Set<string>): void {
  try {
    const buffer = readFileSync(file);
    const parsed = dcmjs.data.DicomMessage.readFile(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.length), {
      untilTag: '7FE00010',
      ignoreErrors: true,
    });
    const dataset = dcmjs.data.DicomMetaDictionary.naturalizeDataset(parsed.dict);
    const name = dataset.PatientName?.[0]?.Alphabetic ?? dataset.PatientName;
    for (const value of [name, dataset.PatientID]) {
      // Very short values ("1", "A") would match unrelated log text; names and IDs of 4+ characters are checked.
      if (typeof value === 'string' && value.trim().length >= 4) into.add(value.trim());
    }
  } catch {
    // Unparseable with dcmjs: it was stored by our scanner, but its identifiers cannot be listed here.
  }
}
