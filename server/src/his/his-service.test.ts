/**
 * The hospital link's use cases on a real store (SQLite file) with the stored studies faked in memory:
 * what the HIS sends becomes orders on the worklist, corrections reach the stored studies, repeats and
 * refusals change nothing, and each change is in the audit trail.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../audit/audit-record.js';
import type { PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import { testLogger } from '../test-support/log-capture.js';
import type { HisCommand, HisCommandContext, OrderInput, StoredPatients } from './his-model.js';
import { HisService } from './his-service.js';
import { KyselyHisStore } from './kysely-his-store.js';

const HOSPITAL = 'BV-ENDO';
const NATIONAL = 'VN-CCCD';

/** The catalog's side, in memory: studies stored under a patient key, with the identity they were last given. */
class FakeStoredPatients implements StoredPatients {
  readonly studies = new Map<string, { identity: PatientIdentity | null; uids: string[] }>();
  readonly calls: string[] = [];
  failing = false;

  static key(key: PatientKey): string {
    return `${key.patientId}|${key.issuer}`;
  }

  stored(key: PatientKey, ...uids: string[]): void {
    this.studies.set(FakeStoredPatients.key(key), { identity: null, uids });
  }

  async applyIdentity(identity: PatientIdentity): Promise<string[]> {
    this.calls.push(`identity ${FakeStoredPatients.key(identity)}`);
    if (this.failing) throw Object.assign(new Error('index down'), { code: 'SQLITE_BUSY' });
    const entry = this.studies.get(FakeStoredPatients.key(identity));
    if (entry === undefined) return [];
    entry.identity = identity;
    return [...entry.uids];
  }

  async mergePatient(prior: PatientKey, surviving: PatientIdentity): Promise<string[]> {
    this.calls.push(`merge ${FakeStoredPatients.key(prior)} -> ${FakeStoredPatients.key(surviving)}`);
    if (this.failing) throw new Error('index down');
    const moved = this.studies.get(FakeStoredPatients.key(prior))?.uids ?? [];
    this.studies.delete(FakeStoredPatients.key(prior));
    const target = this.studies.get(FakeStoredPatients.key(surviving)) ?? { identity: null, uids: [] };
    this.studies.set(FakeStoredPatients.key(surviving), { identity: surviving, uids: [...target.uids, ...moved] });
    return moved;
  }
}

const duc: PatientIdentity = {
  patientId: 'HIS-VN-1001',
  issuer: HOSPITAL,
  name: 'Nguyễn^Văn Đức',
  birthDate: '19800214',
  sex: 'M',
  otherIds: [{ id: '001080054321', issuer: NATIONAL }],
};
const lan: PatientIdentity = { patientId: 'HIS-VN-1002', issuer: HOSPITAL, name: 'Trần^Thị Lan', birthDate: '19920501', sex: 'F', otherIds: [] };

function order(overrides: Partial<OrderInput> = {}): OrderInput {
  return {
    placerOrderNumber: 'PL-100',
    fillerOrderNumber: null,
    accessionNumber: 'ACC-100',
    requestedProcedureId: 'RP-100',
    requestedProcedureDescription: 'Nội soi đại tràng',
    requestedProcedureCode: { value: 'ENDO-COLO', scheme: '99HIS', meaning: 'Colonoscopy' },
    scheduledProcedureStepId: 'SPS-100',
    scheduledProcedureStepDescription: null,
    modality: 'ES',
    scheduledStationAeTitle: 'ENDO_ROOM1',
    scheduledStart: '20260105093000',
    referringPhysicianName: 'Lê^Minh',
    performingPhysicianName: null,
    studyInstanceUid: null,
    ...overrides,
  };
}

const hl7 = (messageControlId: string, sendingApplication = 'HIS^BV'): HisCommandContext => ({
  via: 'hl7',
  messageControlId,
  sendingApplication,
  subject: `HL7:${sendingApplication}`,
  clientAddress: '10.0.0.20',
});

let dir: string;
let store: KyselyHisStore;
let stored: FakeStoredPatients;
let records: AuditRecord[];
let service: HisService;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'his-service-'));
  store = await KyselyHisStore.open({ kind: 'sqlite', file: path.join(dir, 'index.sqlite') });
  stored = new FakeStoredPatients();
  records = [];
  service = new HisService(store, stored, { record: (record) => void records.push(record) }, testLogger(), { patientIdIssuers: [HOSPITAL, NATIONAL] });
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** The audit records of one action: action code, command and accession number, as the trail shows them. */
const summary = (action: AuditRecord['action']) =>
  records.filter((r) => r.action === action).map((r) => [r.detail?.['eventActionCode'], r.detail?.['command'], r.detail?.['accessionNumber'] ?? null, r.outcome]);

describe('orders from the HIS', () => {
  it('puts a new order on the worklist, changes it, then cancels it, each audited with its message control ID', async () => {
    const created = await service.apply({ kind: 'order-new', patient: duc, order: order() }, hl7('MSG-1'));
    expect(created.status).toBe('applied');
    const [placed] = created.orders;
    expect(placed).toMatchObject({ accessionNumber: 'ACC-100', status: 'SCHEDULED', patient: { patientId: duc.patientId, issuer: HOSPITAL } });
    expect(placed!.studyInstanceUid).toMatch(/^2\.25\.\d+$/);
    expect((await store.worklist({ scheduledStationAeTitle: 'ENDO_ROOM1', dateFrom: '20260105', dateTo: '20260105' })).map((i) => i.order.id)).toEqual([placed!.id]);
    expect(await store.getPatient(duc)).toEqual(duc);

    const changed = await service.apply({ kind: 'order-change', patient: duc, order: order({ scheduledStart: '202601051400', scheduledStationAeTitle: 'ENDO_ROOM2' }) }, hl7('MSG-2'));
    expect(changed.orders[0]).toMatchObject({ id: placed!.id, status: 'SCHEDULED', scheduledStart: '202601051400', scheduledStationAeTitle: 'ENDO_ROOM2', studyInstanceUid: placed!.studyInstanceUid });
    expect(await store.worklist({ scheduledStationAeTitle: 'ENDO_ROOM1' })).toEqual([]);

    const cancelled = await service.apply({ kind: 'order-cancel', patient: duc, placerOrderNumber: 'PL-100', accessionNumber: null, discontinue: false }, hl7('MSG-3'));
    expect(cancelled.orders[0]).toMatchObject({ id: placed!.id, status: 'CANCELLED' });
    expect(await store.worklist({})).toEqual([]);
    expect((await store.worklist({ statuses: ['CANCELLED'] })).map((i) => i.order.id)).toEqual([placed!.id]);

    expect(summary('order-record')).toEqual([
      ['C', 'order-new', 'ACC-100', 0],
      ['U', 'order-change', 'ACC-100', 0],
      ['D', 'order-cancel', 'ACC-100', 0],
    ]);
    expect(summary('patient-record')).toEqual([['C', 'order-new', null, 0]]);
    const first = records.find((r) => r.action === 'order-record')!;
    expect(first).toMatchObject({
      interface: 'his',
      who: { subject: 'HL7:HIS^BV', kind: 'hl7' },
      clientAddress: '10.0.0.20',
      objects: [{ patient: `${duc.patientId}^^^${HOSPITAL}` }, { study: placed!.studyInstanceUid }],
      detail: { messageControlId: 'MSG-1', sendingApplication: 'HIS^BV', via: 'hl7', orderId: placed!.id },
    });
    // Patient data only as the record's patient object: never in the detail.
    for (const record of records) expect(JSON.stringify(record.detail)).not.toMatch(/Nguyễn|Đức|HIS-VN-1001|001080054321/);
  });

  it('discontinues a started step, and refuses to change or cancel an order that ended', async () => {
    await service.apply({ kind: 'order-new', patient: duc, order: order() }, hl7('MSG-10'));
    const [placed] = (await store.worklist({})).map((i) => i.order);
    await store.transaction((tx) => tx.setOrderStatus(placed!.id, 'IN PROGRESS'));
    const stopped = await service.apply({ kind: 'order-cancel', patient: duc, placerOrderNumber: null, accessionNumber: 'ACC-100', discontinue: true }, hl7('MSG-11'));
    expect(stopped.orders[0]!.status).toBe('DISCONTINUED');
    await expect(service.apply({ kind: 'order-change', patient: duc, order: order() }, hl7('MSG-12'))).rejects.toMatchObject({ code: 'HIS_CONFLICT', message: expect.stringContaining('ended (DISCONTINUED)') });
    await expect(service.apply({ kind: 'order-cancel', patient: duc, placerOrderNumber: 'PL-100', accessionNumber: null, discontinue: false }, hl7('MSG-13'))).rejects.toMatchObject({ code: 'HIS_CONFLICT' });
    // Refused HL7 commands are audited as minor failures.
    expect(summary('order-record').slice(-2)).toEqual([
      ['U', 'order-change', 'ACC-100', 4],
      ['D', 'order-cancel', null, 4],
    ]);
  });

  it('refuses a second new order with the same accession number, and a change or cancel of an unknown order, changing nothing', async () => {
    await service.apply({ kind: 'order-new', patient: duc, order: order() }, hl7('MSG-20'));
    await expect(service.apply({ kind: 'order-new', patient: lan, order: order({ placerOrderNumber: 'PL-101' }) }, hl7('MSG-21'))).rejects.toMatchObject({ code: 'HIS_CONFLICT' });
    await expect(service.apply({ kind: 'order-change', patient: lan, order: order({ placerOrderNumber: 'PL-404', accessionNumber: 'ACC-404' }) }, hl7('MSG-22'))).rejects.toMatchObject({
      code: 'HIS_UNKNOWN_ORDER',
    });
    await expect(service.apply({ kind: 'order-cancel', patient: lan, placerOrderNumber: 'PL-404', accessionNumber: null, discontinue: false }, hl7('MSG-23'))).rejects.toMatchObject({ code: 'HIS_UNKNOWN_ORDER' });
    // The refused commands' patient was not created, and their control IDs are free for a corrected message.
    expect(await store.getPatient(lan)).toBeUndefined();
    expect(await store.transaction((tx) => tx.findMessage('HIS^BV', 'MSG-21'))).toBeUndefined();
  });
});

describe('message control IDs', () => {
  it('applies a repeated message control ID once and answers the repeat with the same order', async () => {
    const command: HisCommand = { kind: 'order-new', patient: duc, order: order() };
    const first = await service.apply(command, hl7('MSG-DUP'));
    const auditedBefore = records.length;
    const again = await service.apply(command, hl7('MSG-DUP'));
    expect(again.status).toBe('duplicate');
    expect(again.orders.map((o) => o.id)).toEqual(first.orders.map((o) => o.id));
    expect(again.studiesUpdated).toEqual([]);
    expect(await store.worklist({ statuses: ['SCHEDULED', 'IN PROGRESS', 'CANCELLED'] })).toHaveLength(1);
    expect(records).toHaveLength(auditedBefore);
    // The same ID from another sending application is another message.
    const other = await service.apply({ kind: 'patient-upsert', event: 'A08', identity: lan }, hl7('MSG-DUP', 'LAB^BV'));
    expect(other.status).toBe('applied');
  });

  it('after the stored studies could not follow, a repeat of the message updates them', async () => {
    stored.stored(duc, '1.2.840.77.1');
    await service.apply({ kind: 'patient-upsert', event: 'A04', identity: duc }, hl7('MSG-30'));
    stored.failing = true;
    const corrected = { ...duc, name: 'Nguyễn^Văn Đức Anh' };
    await expect(service.apply({ kind: 'patient-upsert', event: 'A08', identity: corrected }, hl7('MSG-31'))).rejects.toMatchObject({ code: 'INDEX_FAILURE' });
    expect(await store.getPatient(duc)).toEqual(corrected); // the HIS store has it
    expect(records.at(-1)).toMatchObject({ action: 'patient-record', outcome: 8, detail: { messageControlId: 'MSG-31' } });
    stored.failing = false;
    const retry = await service.apply({ kind: 'patient-upsert', event: 'A08', identity: corrected }, hl7('MSG-31'));
    expect(retry).toMatchObject({ status: 'duplicate', studiesUpdated: ['1.2.840.77.1'] });
    expect(stored.studies.get(FakeStoredPatients.key(duc))!.identity).toEqual(corrected);
    expect(records.at(-1)).toMatchObject({ action: 'patient-record', outcome: 0, objects: [{ patient: `${duc.patientId}^^^${HOSPITAL}` }, { study: '1.2.840.77.1' }], detail: { duplicate: true } });
  });
});

describe('refused commands', () => {
  it('refuses an invalid command whole, naming every field and no value, and applies nothing', async () => {
    const bad: HisCommand = {
      kind: 'order-new',
      patient: { ...duc, issuer: 'UNKNOWN-AUTHORITY', birthDate: '19801332' },
      order: order({ accessionNumber: 'ACC-12345678901234', scheduledStart: '20260230', modality: '', studyInstanceUid: '1.2.abc' }),
    };
    const refusal = service.apply(bad, hl7('MSG-BAD'));
    await expect(refusal).rejects.toMatchObject({ code: 'HIS_INVALID' });
    const message = ((await refusal.catch((err: Error) => err)) as Error).message;
    expect(message).toMatch(/^New order refused: /);
    for (const field of ['patient.issuer is not one of the configured issuers', 'patient.birthDate must be a date YYYYMMDD', 'order.accessionNumber must be at most 16 characters', 'order.scheduledStart must be a date and time', 'order.modality is required', 'order.studyInstanceUid must be a UID']) {
      expect(message).toContain(field);
    }
    expect(message).not.toMatch(/ACC-1234|UNKNOWN-AUTHORITY|19801332|HIS-VN/);
    // Nothing applied: no patient, no order, no logged message (a corrected resend with the same ID applies).
    expect(await store.getPatient(duc)).toBeUndefined();
    expect(await store.getPatient({ patientId: duc.patientId, issuer: 'UNKNOWN-AUTHORITY' })).toBeUndefined();
    expect(await store.worklist({ statuses: ['SCHEDULED', 'CANCELLED'] })).toEqual([]);
    expect(stored.calls).toEqual([]);
    const fixed = await service.apply({ kind: 'order-new', patient: duc, order: order() }, hl7('MSG-BAD'));
    expect(fixed.status).toBe('applied');
  });

  it('refuses a patient without an ID, a cancel that names no order, and a merge of a patient into itself', async () => {
    await expect(service.apply({ kind: 'patient-upsert', event: 'A01', identity: { ...duc, patientId: '  ' } }, hl7('MSG-40'))).rejects.toThrow(/patient\.patientId is required/);
    await expect(service.apply({ kind: 'order-cancel', patient: duc, placerOrderNumber: '', accessionNumber: null, discontinue: false }, hl7('MSG-41'))).rejects.toThrow(
      /placerOrderNumber or accessionNumber is required/,
    );
    await expect(service.apply({ kind: 'patient-merge', prior: duc, surviving: duc }, hl7('MSG-42'))).rejects.toThrow(/prior must be another patient/);
  });

  it('records refusals of REST commands through the HTTP audit hook only (not twice)', async () => {
    const rest: HisCommandContext = { via: 'rest', subject: 'clerk-7', clientAddress: '127.0.0.1', user: { kind: 'token', name: 'Clerk' } };
    await expect(service.apply({ kind: 'order-change', patient: duc, order: order() }, rest)).rejects.toMatchObject({ code: 'HIS_UNKNOWN_ORDER' });
    expect(records).toEqual([]);
  });
});

describe('patients', () => {
  it('merges a patient: orders and stored studies move to the surviving patient, audited as delete and update', async () => {
    stored.stored(lan, '1.2.840.77.10', '1.2.840.77.11');
    await service.apply({ kind: 'order-new', patient: lan, order: order({ placerOrderNumber: 'PL-L1', accessionNumber: 'ACC-L1' }) }, hl7('MSG-50'));
    await service.apply({ kind: 'order-new', patient: lan, order: order({ placerOrderNumber: 'PL-L2', accessionNumber: 'ACC-L2' }) }, hl7('MSG-51'));
    records.length = 0;

    const merged = await service.apply({ kind: 'patient-merge', prior: { patientId: lan.patientId, issuer: HOSPITAL }, surviving: duc }, hl7('MSG-52'));
    expect(merged.status).toBe('applied');
    expect(merged.studiesUpdated).toEqual(['1.2.840.77.10', '1.2.840.77.11']);
    expect(merged.orders.map((o) => [o.accessionNumber, o.patient.patientId])).toEqual([
      ['ACC-L1', duc.patientId],
      ['ACC-L2', duc.patientId],
    ]);
    expect(await store.getPatient(lan)).toBeUndefined();
    expect((await store.worklist({ patientId: duc.patientId })).map((i) => i.order.accessionNumber)).toEqual(['ACC-L1', 'ACC-L2']);
    expect(stored.calls.at(-1)).toBe(`merge ${lan.patientId}|${HOSPITAL} -> ${duc.patientId}|${HOSPITAL}`);

    expect(summary('patient-record')).toEqual([
      ['D', 'patient-merge', null, 0],
      ['C', 'patient-merge', null, 0],
    ]);
    expect(records.find((r) => r.detail?.['eventActionCode'] === 'D')!.objects).toEqual([{ patient: `${lan.patientId}^^^${HOSPITAL}` }, { study: '1.2.840.77.10' }, { study: '1.2.840.77.11' }]);
    expect(summary('order-record')).toEqual([
      ['U', 'patient-merge', 'ACC-L1', 0],
      ['U', 'patient-merge', 'ACC-L2', 0],
    ]);
  });

  it('refuses a merge whose prior patient is unknown, creating nothing', async () => {
    await expect(service.apply({ kind: 'patient-merge', prior: { patientId: 'HIS-VN-4040', issuer: HOSPITAL }, surviving: duc }, hl7('MSG-60'))).rejects.toMatchObject({
      code: 'HIS_UNKNOWN_PATIENT',
    });
    expect(await store.getPatient(duc)).toBeUndefined();
  });

  it('applies a patient update to the stored studies; an order message that leaves fields empty keeps what is known', async () => {
    stored.stored(duc, '1.2.840.77.20');
    await service.apply({ kind: 'patient-upsert', event: 'A04', identity: duc }, hl7('MSG-70'));
    const corrected: PatientIdentity = { ...duc, name: 'Nguyễn^Văn Đức', birthDate: '19800215' };
    const update = await service.apply({ kind: 'patient-upsert', event: 'A08', identity: corrected }, hl7('MSG-71'));
    expect(update.studiesUpdated).toEqual(['1.2.840.77.20']);
    expect(stored.studies.get(FakeStoredPatients.key(duc))!.identity).toEqual(corrected);
    expect(records.at(-1)).toMatchObject({ action: 'patient-record', detail: { eventActionCode: 'U', hl7Event: 'A08', studies: 1 }, objects: [{ patient: expect.any(String) }, { study: '1.2.840.77.20' }] });

    // An order whose PID carries only the ID: the patient's name, birth date and other IDs stay; nothing to propagate.
    const callsBefore = stored.calls.length;
    await service.apply({ kind: 'order-new', patient: { patientId: duc.patientId, issuer: HOSPITAL, name: null, birthDate: null, sex: null, otherIds: [] }, order: order() }, hl7('MSG-72'));
    expect(await store.getPatient(duc)).toEqual(corrected);
    expect(stored.calls.length).toBe(callsBefore);
  });

  it('keeps Vietnamese names as sent and matches them case-insensitively with wildcards', async () => {
    await service.apply({ kind: 'order-new', patient: duc, order: order() }, hl7('MSG-80'));
    await service.apply({ kind: 'order-new', patient: lan, order: order({ placerOrderNumber: 'PL-200', accessionNumber: 'ACC-200' }) }, hl7('MSG-81'));
    expect((await store.getPatient(duc))!.name).toBe('Nguyễn^Văn Đức');
    const names = async (patientName: string) => (await store.worklist({ patientName })).map((i) => i.patient.name);
    expect(await names('nguyễn^văn đức')).toEqual(['Nguyễn^Văn Đức']);
    expect(await names('NGUYỄN*')).toEqual(['Nguyễn^Văn Đức']);
    expect(await names('*thị*')).toEqual(['Trần^Thị Lan']);
    expect(await names('tr?n^*')).toEqual(['Trần^Thị Lan']);
    expect(await names('*')).toEqual(['Nguyễn^Văn Đức', 'Trần^Thị Lan']);
  });
});

describe('ingest reconciliation', () => {
  it("gives an instance with the order's accession number the order's patient, and links its series to the order once", async () => {
    const [placed] = (await service.apply({ kind: 'order-new', patient: duc, order: order({ studyInstanceUid: '1.2.840.77.30' }) }, hl7('MSG-90'))).orders;
    const reconciliation = service.reconciliation();
    expect(await reconciliation.identityFor('ACC-100')).toEqual(duc);
    expect(await reconciliation.identityFor(' ACC-100 ')).toEqual(duc);
    expect(await reconciliation.identityFor('ACC-404')).toBeUndefined();
    expect(await reconciliation.identityFor('')).toBeUndefined();

    // The modality used a Study Instance UID of its own: the order is found from that study too.
    for (let i = 0; i < 5; i++) reconciliation.stored('ACC-100', '1.2.840.77.31', '1.2.840.77.31.1');
    reconciliation.stored('ACC-404', '1.2.840.77.32', '1.2.840.77.32.1'); // no such order: nothing, no error
    await expect.poll(async () => (await store.getOrder(placed!.id))?.performedSeries).toEqual(['1.2.840.77.31.1']);
    expect((await store.ordersOfStudies(['1.2.840.77.31'])).map((o) => o.id)).toEqual([placed!.id]);
  });
});
