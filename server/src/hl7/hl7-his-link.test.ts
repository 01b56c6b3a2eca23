/**
 * End to end through the real hospital link: Debian's `mllp_send` → the HL7 listener → HisService →
 * the HIS store on SQLite. What the HIS sees (acknowledgements) and what the archive then holds
 * (patients, orders on the worklist, the audit trail with each message control ID).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../audit/audit-record.js';
import type { PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import type { StoredPatients } from '../his/his-model.js';
import { HisService } from '../his/his-service.js';
import { KyselyHisStore } from '../his/kysely-his-store.js';
import { testLogger } from '../test-support/log-capture.js';
import { NATIONAL_ID, PATIENT, PRIOR, a40, adt, omi, orm } from '../test-support/hl7-messages.js';
import { startHl7Listener, type Hl7Listener } from './hl7-listener.js';

const run = promisify(execFile);

/** No stored studies in this test: the catalog's side only records what it was asked. */
class NoStudies implements StoredPatients {
  readonly calls: string[] = [];
  async applyIdentity(identity: PatientIdentity): Promise<string[]> {
    this.calls.push(`identity ${identity.issuer}`);
    return [];
  }
  async mergePatient(prior: PatientKey, surviving: PatientIdentity): Promise<string[]> {
    this.calls.push(`merge ${prior.issuer} -> ${surviving.issuer}`);
    return [];
  }
}

let dir: string;
let store: KyselyHisStore;
let listener: Hl7Listener;
const records: AuditRecord[] = [];
let sent = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'hl7-his-'));
  store = await KyselyHisStore.open({ kind: 'sqlite', file: path.join(dir, 'index.sqlite') });
  const issuers = ['BVBM', 'VNM-CCCD'];
  const service = new HisService(store, new NoStudies(), { record: (record) => void records.push(record) }, testLogger(), { patientIdIssuers: issuers });
  listener = await startHl7Listener({
    config: { host: '127.0.0.1', port: 0, allowedSenders: [{ application: 'HIS', facility: null }], maxMessageBytes: 1024 * 1024, patientIdIssuer: 'BVBM', nationalIdIssuer: 'VNM-CCCD' },
    link: service,
    logger: testLogger(),
    acceptedIssuers: issuers,
  });
});

afterAll(async () => {
  await listener?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

/** mllp_send over one connection; MSA-1, MSA-2 and the ERR-3 codes of each acknowledgement. */
async function send(...messages: string[]): Promise<Array<[string, string, string[]]>> {
  const file = path.join(dir, `batch-${++sent}.hl7`);
  await writeFile(file, messages.map((m) => `${m}\x1c\r`).join(''), 'utf8');
  const { stdout } = await run('/usr/bin/mllp_send', ['-p', String(listener.port), '-f', file, '127.0.0.1'], { timeout: 60_000 });
  return [...stdout.matchAll(/\x0b([^\x1c]*)\x1c/g)].map(([, ack]) => {
    const segments = ack!.split('\r');
    const msa = segments.find((s) => s.startsWith('MSA|'))!.split('|');
    return [msa[1]!, msa[2]!, segments.filter((s) => s.startsWith('ERR|')).map((s) => s.split('|')[3]!.split('^')[0]!)];
  });
}

const hisKey = { patientId: PATIENT.patientId, issuer: 'BVBM' };

describe('the HIS drives the worklist and patient identity over HL7', () => {
  it('registers the patient (A01) with the record number, the national citizen ID and the Vietnamese name byte for byte', async () => {
    expect(await send(adt('A01', 'E2E-A01'))).toEqual([['AA', 'E2E-A01', []]]);
    const patient = await store.getPatient(hisKey);
    expect(patient).toMatchObject({ patientId: PATIENT.patientId, issuer: 'BVBM', birthDate: '19800215', sex: 'M', otherIds: [{ id: NATIONAL_ID.patientId, issuer: 'VNM-CCCD' }] });
    expect(Buffer.from(patient!.name!, 'utf8').equals(Buffer.from(`${PATIENT.patientName}^^ÔNG`, 'utf8'))).toBe(true);
    expect((await store.findPatientByIdentifier(NATIONAL_ID.patientId, 'VNM-CCCD'))?.patientId).toBe(PATIENT.patientId);
  });

  it('puts an ORM order on the worklist once, however often the HIS resends it, and refuses a second order with its accession number', async () => {
    expect(await send(orm('NW', 'E2E-ORM-1'), orm('NW', 'E2E-ORM-1'), orm('NW', 'E2E-ORM-2'))).toEqual([
      ['AA', 'E2E-ORM-1', []],
      ['AA', 'E2E-ORM-1', ['0']],
      ['AE', 'E2E-ORM-2', ['205']],
    ]);
    const item = await store.findOrderByAccession('ACC26120101');
    expect(item?.order).toMatchObject({ status: 'SCHEDULED', modality: 'ES', requestedProcedureId: 'RP26120101', scheduledProcedureStepId: 'SPS26120101', scheduledStart: '20261202090000' });
    expect(item?.patient.patientId).toBe(PATIENT.patientId);
    expect((await store.worklist({ accessionNumber: 'ACC26120101' })).length).toBe(1);
  });

  it('changes the order (XO) and then cancels it (CA)', async () => {
    expect(await send(orm('XO', 'E2E-ORM-3', { obr: { 27: '^^^20261203100000' } }), orm('CA', 'E2E-ORM-4'))).toEqual([
      ['AA', 'E2E-ORM-3', []],
      ['AA', 'E2E-ORM-4', []],
    ]);
    expect((await store.findOrderByAccession('ACC26120101'))?.order).toMatchObject({ status: 'CANCELLED', scheduledStart: '20261203100000' });
    // An order that ended cannot be cancelled again: the hospital link's conflict is an AE.
    expect(await send(orm('XO', 'E2E-ORM-5'))).toEqual([['AE', 'E2E-ORM-5', ['205']]]);
  });

  it('schedules an OMI procedure for its station with the HIS-assigned Study Instance UID', async () => {
    expect(await send(omi('NW', 'E2E-OMI-1'))).toEqual([['AA', 'E2E-OMI-1', []]]);
    const items = await store.worklist({ scheduledStationAeTitle: 'CT_PHONG2', modality: 'CT' });
    expect(items.map((i) => [i.order.accessionNumber, i.order.studyInstanceUid, i.order.status])).toEqual([['ACC26120102', '1.2.826.0.1.3680043.10.1234.20261201.2', 'SCHEDULED']]);
  });

  it("refuses what the hospital link's validation refuses (AE 102 naming the field) and applies nothing of it", async () => {
    expect(await send(orm('NW', 'E2E-BAD-1', { obr: { 18: 'ACC-MUCH-TOO-LONG-FOR-DICOM' } }))).toEqual([['AE', 'E2E-BAD-1', ['102']]]);
    expect(await store.findOrderByAccession('ACC-MUCH-TOO-LONG-FOR-DICOM')).toBeUndefined();
  });

  it('merges the prior record number into the surviving patient (A40)', async () => {
    expect(await send(adt('A01', 'E2E-PRIOR', { 3: `${PRIOR.patientId}^^^BVBM^MR` }), a40('E2E-A40'))).toEqual([
      ['AA', 'E2E-PRIOR', []],
      ['AA', 'E2E-A40', []],
    ]);
    expect(await store.getPatient({ patientId: PRIOR.patientId, issuer: 'BVBM' })).toBeUndefined();
    expect(await store.getPatient(hisKey)).toBeDefined();
  });

  it('leaves each applied message in the audit trail with its message control ID and sending application', () => {
    const applied = records.filter((r) => r.outcome === 0).map((r) => r.detail?.['messageControlId']);
    expect(applied).toEqual(expect.arrayContaining(['E2E-A01', 'E2E-ORM-1', 'E2E-ORM-3', 'E2E-ORM-4', 'E2E-OMI-1', 'E2E-A40']));
    expect(records.find((r) => r.detail?.['messageControlId'] === 'E2E-A40')?.detail?.['sendingApplication']).toBe('HIS^BVBM');
  });
});
