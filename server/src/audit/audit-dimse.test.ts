/**
 * DIMSE operations in the audit trail, driven by Debian dcmtk's storescu / findscu / getscu against our
 * SCP: each C-STORE, C-FIND and C-GET is recorded once with the calling AE title, the peer's address,
 * the instances or the query, and the outcome from the DIMSE status; a refused operation too.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireDcmtk, runTool, startTestDimse, type TestDimse } from '../test-support/dimse-peer.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import type { AuditRecord } from './audit-record.js';

requireDcmtk();

let dimse: TestDimse;
let work: string;
const study = newUid();
const series = newUid();
const sops = [newUid(), newUid()];

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pacs-audit-dimse-'));
  // STORER may store only, QUERIER may read only: a refused operation is audited as well.
  dimse = await startTestDimse({ aePermissions: { STORER: ['store'], QUERIER: ['read'] } });
}, 60_000);

afterAll(async () => {
  await dimse?.close();
  await rm(work, { recursive: true, force: true });
});

const peer = (callingAe: string) => ['-aet', callingAe, '-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port)];

async function recordsOf(subject: string): Promise<AuditRecord[]> {
  const audit = dimse.testApp.services.audit!;
  await audit.flush();
  return (await audit.store.list({ subject, limit: 1000 })).reverse();
}

describe('DIMSE operations in the audit trail', () => {
  it('records each C-STORE from storescu once, naming the stored instance and the calling AE', async () => {
    const files: string[] = [];
    for (const sop of sops) {
      const file = path.join(work, `${sop}.dcm`);
      await writeFile(file, makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, patientName: 'DIMSE^AUDITED' }));
      files.push(file);
    }
    const result = await runTool('storescu', [...peer('STORER'), ...files]);
    expect(result.code, result.stdout + result.stderr).toBe(0);

    const records = await recordsOf('AE:STORER');
    expect(records).toHaveLength(2);
    records.forEach((record, i) => {
      expect(record).toMatchObject({
        action: 'store',
        outcome: 0,
        status: 0,
        who: { subject: 'AE:STORER', name: 'STORER', kind: 'dimse' },
        clientAddress: '127.0.0.1',
        interface: 'dimse',
        route: 'C-STORE',
        objects: [{ study, series, instance: sops[i], sopClass: '1.2.840.10008.5.1.4.1.1.7' }],
      });
    });
  });

  it('records a C-FIND from findscu once, with its level and keys', async () => {
    const result = await runTool('findscu', ['-S', '-k', 'QueryRetrieveLevel=STUDY', '-k', 'PatientName=DIMSE^AUDIT*', '-k', 'StudyInstanceUID', ...peer('QUERIER')]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const records = await recordsOf('AE:QUERIER');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      action: 'query',
      outcome: 0,
      status: 0,
      route: 'C-FIND',
      clientAddress: '127.0.0.1',
      query: { level: 'STUDY', keys: { PatientName: 'DIMSE^AUDIT*', StudyInstanceUID: '' } },
      detail: { sopClass: '1.2.840.10008.5.1.4.1.2.2.1' },
    });
    // The patient name queried is in the audit store only, not in the application log.
    expect(dimse.testApp.logLines.join('')).not.toContain('DIMSE^AUDIT');
  });

  it('records operations an AE may not perform, with a failure outcome', async () => {
    const find = await runTool('findscu', ['-v', '-S', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${study}`, ...peer('STORER')]);
    expect(find.stdout + find.stderr).toMatch(/Status: 0x124/);
    await runTool('getscu', ['-S', '--output-directory', work, '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${study}`, ...peer('STORER')]);
    const records = (await recordsOf('AE:STORER')).slice(2);
    expect(records.map((r) => [r.route, r.outcome, r.status])).toEqual([
      ['C-FIND', 8, 0x0124],
      ['C-GET', 8, 0x0124],
    ]);
  });

  it('records a C-GET once, naming every instance sent', async () => {
    const result = await runTool('getscu', ['-S', '--output-directory', work, '-k', 'QueryRetrieveLevel=SERIES', '-k', `StudyInstanceUID=${study}`, '-k', `SeriesInstanceUID=${series}`, ...peer('QUERIER')]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const records = (await recordsOf('AE:QUERIER')).filter((r) => r.route === 'C-GET');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ action: 'retrieve', outcome: 0, detail: { completed: 2, failed: 0, warning: 0 } });
    expect(records[0]!.objects.map((o) => o.instance).sort()).toEqual([...sops].sort());
  });
});
