/**
 * Behaviour every HisStore must show, run by each engine's test file (kysely-his-store.test.ts: SQLite
 * and PostgreSQL). Each test gets a fresh store from `setup`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PatientIdentity } from '../dicom/patient-identity.js';
import type { OrderInput } from './his-model.js';
import type { HisStore } from './his-store.js';

export interface HisStoreUnderTest {
  store: HisStore;
  /** Another store on the same database (a second process, or a restart): opening again is idempotent. */
  openAgain(): Promise<HisStore>;
  teardown(): Promise<void>;
}

const NATIONAL = 'VN-CCCD';
const HOSPITAL = 'BV-ENDO';

const duc: PatientIdentity = {
  patientId: 'HIS-VN-0001',
  issuer: HOSPITAL,
  name: 'Nguyễn^Văn Đức',
  birthDate: '19800214',
  sex: 'M',
  otherIds: [{ id: '001080012345', issuer: NATIONAL, type: 'TEXT' }],
};
const lan: PatientIdentity = { patientId: 'HIS-VN-0002', issuer: HOSPITAL, name: 'Trần^Thị Lan', birthDate: '19920501', sex: 'F', otherIds: [] };
const smith: PatientIdentity = { patientId: 'HIS-EN-0003', issuer: '', name: 'Smith^John', birthDate: null, sex: null, otherIds: [] };

function order(overrides: Partial<OrderInput> = {}): OrderInput {
  return {
    placerOrderNumber: null,
    fillerOrderNumber: null,
    accessionNumber: 'ACC-0001',
    requestedProcedureId: 'RP-1',
    requestedProcedureDescription: 'Colonoscopy',
    requestedProcedureCode: { value: 'ENDO-COLO', scheme: '99HIS', meaning: 'Colonoscopy' },
    scheduledProcedureStepId: 'SPS-1',
    scheduledProcedureStepDescription: 'Colonoscopy with polypectomy',
    modality: 'ES',
    scheduledStationAeTitle: 'ENDO_ROOM1',
    scheduledStart: '20260105093000',
    referringPhysicianName: 'Lê^Minh',
    performingPhysicianName: null,
    studyInstanceUid: null,
    ...overrides,
  };
}

export function runHisStoreContract(name: string, setup: () => Promise<HisStoreUnderTest>): void {
  describe(`the HIS store on ${name}`, () => {
    let t: HisStoreUnderTest;
    beforeEach(async () => {
      t = await setup();
    });
    afterEach(async () => {
      await t.teardown();
    });

    it('keeps a patient with a Vietnamese name, its other IDs, and finds it by any identifier with its issuer', async () => {
      await t.store.transaction(async (tx) => {
        await tx.upsertPatient(duc);
        await tx.upsertPatient(smith);
      });
      expect(await t.store.getPatient({ patientId: duc.patientId, issuer: HOSPITAL })).toEqual(duc);
      expect(await t.store.getPatient({ patientId: duc.patientId, issuer: '' })).toBeUndefined();
      expect(await t.store.findPatientByIdentifier('001080012345', NATIONAL)).toEqual(duc);
      expect(await t.store.findPatientByIdentifier('001080012345', HOSPITAL)).toBeUndefined();
      expect(await t.store.findPatientByIdentifier(duc.patientId, HOSPITAL)).toEqual(duc);
      expect(await t.store.findPatientByIdentifier(smith.patientId, '')).toEqual(smith);

      // An update replaces the identity, other IDs included.
      const corrected: PatientIdentity = { ...duc, name: 'Nguyễn^Văn Đức Anh', otherIds: [{ id: '001080099999', issuer: NATIONAL }] };
      await t.store.transaction((tx) => tx.upsertPatient(corrected));
      expect(await t.store.getPatient(duc)).toEqual(corrected);
      expect(await t.store.findPatientByIdentifier('001080012345', NATIONAL)).toBeUndefined();
      expect(await t.store.findPatientByIdentifier('001080099999', NATIONAL)).toEqual(corrected);
    });

    it('creates orders SCHEDULED with the HIS study UID or a new 2.25 one, and finds them by id, placer or accession number', async () => {
      const { given, generated } = await t.store.transaction(async (tx) => {
        await tx.upsertPatient(duc);
        return {
          given: await tx.createOrder(duc, order({ placerOrderNumber: 'PL-1', studyInstanceUid: '1.2.840.99.1' })),
          generated: await tx.createOrder(duc, order({ accessionNumber: 'ACC-0002', scheduledProcedureStepId: 'SPS-2' })),
        };
      });
      expect(given).toMatchObject({ status: 'SCHEDULED', studyInstanceUid: '1.2.840.99.1', patient: { patientId: duc.patientId, issuer: HOSPITAL }, performedSeries: [], mppsSopInstanceUid: null });
      expect(given.requestedProcedureCode).toEqual({ value: 'ENDO-COLO', scheme: '99HIS', meaning: 'Colonoscopy' });
      expect(generated.studyInstanceUid).toMatch(/^2\.25\.[1-9][0-9]*$/);
      expect(generated.studyInstanceUid.length).toBeLessThanOrEqual(64);
      expect(generated.id).not.toBe(given.id);
      expect(Date.parse(given.createdAt)).not.toBeNaN();

      expect(await t.store.getOrder(given.id)).toEqual(given);
      expect(await t.store.getOrder('no-such-order')).toBeUndefined();
      await t.store.transaction(async (tx) => {
        expect((await tx.findOrder({ id: given.id }))?.id).toBe(given.id);
        expect((await tx.findOrder({ placerOrderNumber: 'PL-1' }))?.id).toBe(given.id);
        expect((await tx.findOrder({ placerOrderNumber: 'PL-UNKNOWN', accessionNumber: 'ACC-0002' }))?.id).toBe(generated.id);
        // The accession number's order has another placer order number: a different order of the HIS.
        expect(await tx.findOrder({ placerOrderNumber: 'PL-OTHER', accessionNumber: 'ACC-0001' })).toBeUndefined();
        expect(await tx.findOrder({ accessionNumber: 'ACC-9999' })).toBeUndefined();
      });
      expect(await t.store.findOrderByAccession('ACC-0001')).toEqual({ order: given, patient: duc });
      expect(await t.store.findOrderByAccession('ACC-9999')).toBeUndefined();
    });

    it('changes an order without touching its state or performed series, and sets its state', async () => {
      const created = await t.store.transaction(async (tx) => {
        await tx.upsertPatient(duc);
        await tx.upsertPatient(lan);
        return tx.createOrder(duc, order({ studyInstanceUid: '1.2.840.99.2' }));
      });
      await t.store.transaction(async (tx) => {
        await tx.setOrderStatus(created.id, 'IN PROGRESS');
        await tx.addPerformedSeries(created.id, ['1.2.840.99.2.1']);
      });
      const changed = await t.store.transaction((tx) => tx.updateOrder(created.id, lan, order({ scheduledStart: '202601061400', modality: 'GM', studyInstanceUid: null })));
      expect(changed).toMatchObject({ id: created.id, status: 'IN PROGRESS', modality: 'GM', scheduledStart: '202601061400', studyInstanceUid: '1.2.840.99.2', performedSeries: ['1.2.840.99.2.1'] });
      expect(changed.patient).toEqual({ patientId: lan.patientId, issuer: HOSPITAL });
      const ended = await t.store.transaction((tx) => tx.setOrderStatus(created.id, 'COMPLETED'));
      expect(ended.status).toBe('COMPLETED');
      await expect(t.store.transaction((tx) => tx.setOrderStatus('no-such-order', 'CANCELLED'))).rejects.toMatchObject({ code: 'HIS_UNKNOWN_ORDER' });
    });

    it('applies a transaction whole or not at all', async () => {
      await expect(
        t.store.transaction(async (tx) => {
          await tx.upsertPatient(duc);
          await tx.createOrder(duc, order());
          await tx.logMessage({ sendingApplication: 'HIS', messageControlId: 'MSG-ROLLBACK', ackCode: 'AA', outcome: '{}', receivedAt: new Date().toISOString() });
          throw new Error('the command failed half-way');
        }),
      ).rejects.toThrow('half-way');
      expect(await t.store.getPatient(duc)).toBeUndefined();
      expect(await t.store.findOrderByAccession('ACC-0001')).toBeUndefined();
      expect(await t.store.transaction((tx) => tx.findMessage('HIS', 'MSG-ROLLBACK'))).toBeUndefined();
      // The store is usable after the rollback.
      await t.store.transaction((tx) => tx.upsertPatient(duc));
      expect(await t.store.getPatient(duc)).toEqual(duc);
    });

    it('refuses a second order with the same accession or placer order number', async () => {
      await t.store.transaction(async (tx) => {
        await tx.upsertPatient(duc);
        await tx.createOrder(duc, order({ placerOrderNumber: 'PL-9' }));
      });
      await expect(t.store.transaction((tx) => tx.createOrder(duc, order({ placerOrderNumber: 'PL-10' })))).rejects.toThrow();
      await expect(t.store.transaction((tx) => tx.createOrder(duc, order({ accessionNumber: 'ACC-0003', placerOrderNumber: 'PL-9' })))).rejects.toThrow();
      // Orders without placer numbers are many.
      await t.store.transaction(async (tx) => {
        await tx.createOrder(duc, order({ accessionNumber: 'ACC-0004' }));
        await tx.createOrder(duc, order({ accessionNumber: 'ACC-0005' }));
      });
    });

    it('logs message control IDs per sending application, once each', async () => {
      const entry = { sendingApplication: 'HIS^BV', messageControlId: 'MSG-0001', ackCode: 'AA', outcome: '{"orderIds":["x"]}', receivedAt: '2026-01-05T09:30:00.000Z' };
      await t.store.transaction((tx) => tx.logMessage(entry));
      expect(await t.store.transaction((tx) => tx.findMessage('HIS^BV', 'MSG-0001'))).toEqual(entry);
      expect(await t.store.transaction((tx) => tx.findMessage('OTHER', 'MSG-0001'))).toBeUndefined();
      await expect(t.store.transaction((tx) => tx.logMessage({ ...entry, outcome: '{}' }))).rejects.toThrow();
      await t.store.transaction((tx) => tx.logMessage({ ...entry, sendingApplication: 'OTHER' }));
    });

    it('merges a patient: its orders move to the surviving patient and the prior one is gone', async () => {
      const [a, b] = await t.store.transaction(async (tx) => {
        await tx.upsertPatient(duc);
        await tx.upsertPatient(lan);
        return [await tx.createOrder(lan, order({ accessionNumber: 'ACC-M1' })), await tx.createOrder(lan, order({ accessionNumber: 'ACC-M2' }))];
      });
      await t.store.transaction(async (tx) => {
        expect((await tx.ordersOfPatient(lan)).map((o) => o.id).sort()).toEqual([a!.id, b!.id].sort());
        await tx.mergePatient(lan, duc);
      });
      expect(await t.store.getPatient(lan)).toBeUndefined();
      expect((await t.store.getOrder(a!.id))?.patient).toEqual({ patientId: duc.patientId, issuer: HOSPITAL });
      expect((await t.store.findOrderByAccession('ACC-M2'))?.patient).toEqual(duc);
      expect(await t.store.worklist({ patientId: lan.patientId })).toEqual([]);
      expect((await t.store.worklist({ patientId: duc.patientId })).map((i) => i.order.accessionNumber)).toEqual(['ACC-M1', 'ACC-M2']);
    });

    it('keeps MPPS steps and links performed series once, found again from the study they were stored in', async () => {
      const created = await t.store.transaction(async (tx) => {
        await tx.upsertPatient(duc);
        return tx.createOrder(duc, order({ studyInstanceUid: '1.2.840.99.3' }));
      });
      const step = { sopInstanceUid: '1.2.840.99.3.900', status: 'IN PROGRESS' as const, orderIds: [created.id], performedSeries: [], attributes: { '00400252': { vr: 'CS', Value: ['IN PROGRESS'] } }, updatedAt: '2026-01-05T09:31:00.000Z' };
      await t.store.transaction((tx) => tx.putPerformedStep(step));
      expect(await t.store.getPerformedStep(step.sopInstanceUid)).toEqual(step);
      const done = { ...step, status: 'COMPLETED' as const, performedSeries: ['1.2.840.99.3.1'], updatedAt: '2026-01-05T10:00:00.000Z' };
      await t.store.transaction(async (tx) => {
        await tx.putPerformedStep(done);
        expect(await tx.getPerformedStep(step.sopInstanceUid)).toEqual(done);
        await tx.addPerformedSeries(created.id, ['1.2.840.99.3.1'], step.sopInstanceUid);
        await tx.addPerformedSeries(created.id, ['1.2.840.99.3.1', '1.2.840.99.3.2']);
      });
      expect(await t.store.getPerformedStep('1.2.840.99.404')).toBeUndefined();
      const linked = await t.store.getOrder(created.id);
      expect(linked).toMatchObject({ mppsSopInstanceUid: step.sopInstanceUid, performedSeries: ['1.2.840.99.3.1', '1.2.840.99.3.2'] });

      // A modality that made its own Study Instance UID: the series stored there links the study to the order.
      await t.store.transaction((tx) => tx.addPerformedSeries(created.id, ['1.2.840.99.4.1'], undefined, '1.2.840.99.4'));
      expect((await t.store.ordersOfStudies(['1.2.840.99.3'])).map((o) => o.id)).toEqual([created.id]);
      expect((await t.store.ordersOfStudies(['1.2.840.99.4', '1.2.840.99.3'])).map((o) => o.id)).toEqual([created.id]);
      expect(await t.store.ordersOfStudies(['1.2.840.99.5'])).toEqual([]);
    });

    describe('worklist matching (PS3.4 K.6.1.2)', () => {
      beforeEach(async () => {
        await t.store.transaction(async (tx) => {
          await tx.upsertPatient(duc);
          await tx.upsertPatient(lan);
          await tx.upsertPatient(smith);
          await tx.createOrder(duc, order({ accessionNumber: 'WL-1', scheduledStart: '20260105093000' }));
          await tx.createOrder(duc, order({ accessionNumber: 'WL-2', scheduledStart: '20260105150000', scheduledStationAeTitle: 'ENDO_ROOM2' }));
          await tx.createOrder(lan, order({ accessionNumber: 'WL-3', scheduledStart: '20260106', modality: 'CT', scheduledStationAeTitle: 'CT1' }));
          await tx.createOrder(smith, order({ accessionNumber: 'WL-4', scheduledStart: '202601070800' }));
          const cancelled = await tx.createOrder(lan, order({ accessionNumber: 'WL-5', scheduledStart: '20260105100000' }));
          await tx.setOrderStatus(cancelled.id, 'CANCELLED');
          const started = await tx.createOrder(smith, order({ accessionNumber: 'WL-6', scheduledStart: '20260105110000' }));
          await tx.setOrderStatus(started.id, 'IN PROGRESS');
        });
      });
      const accessions = async (query: Parameters<HisStore['worklist']>[0]) => (await t.store.worklist(query)).map((item) => item.order.accessionNumber);

      it('lists scheduled and in-progress steps by default, in scheduled order, with their patients', async () => {
        expect(await accessions({})).toEqual(['WL-1', 'WL-6', 'WL-2', 'WL-3', 'WL-4']);
        const items = await t.store.worklist({ accessionNumber: 'WL-3' });
        expect(items[0]!.patient).toEqual(lan);
        expect(await accessions({ statuses: ['CANCELLED'] })).toEqual(['WL-5']);
        expect(await accessions({ statuses: ['SCHEDULED', 'CANCELLED', 'IN PROGRESS'] })).toEqual(['WL-1', 'WL-5', 'WL-6', 'WL-2', 'WL-3', 'WL-4']);
        expect(await accessions({ limit: 2 })).toEqual(['WL-1', 'WL-6']);
      });

      it('matches date and time ranges, either end open; a step with a date only matches any time', async () => {
        expect(await accessions({ dateFrom: '20260105', dateTo: '20260105' })).toEqual(['WL-1', 'WL-6', 'WL-2']);
        expect(await accessions({ dateFrom: '20260106' })).toEqual(['WL-3', 'WL-4']);
        expect(await accessions({ dateTo: '20260105' })).toEqual(['WL-1', 'WL-6', 'WL-2']);
        expect(await accessions({ dateFrom: '20260105', dateTo: '20260106', timeFrom: '1000', timeTo: '1500' })).toEqual(['WL-6', 'WL-2', 'WL-3']);
        expect(await accessions({ timeTo: '0930' })).toEqual(['WL-1', 'WL-3', 'WL-4']);
        expect(await accessions({ timeFrom: '150001' })).toEqual(['WL-3']);
      });

      it('matches modality, scheduled station AE title and accession number exactly; "*" matches anything', async () => {
        expect(await accessions({ modality: 'CT' })).toEqual(['WL-3']);
        expect(await accessions({ modality: 'es' })).toEqual(['WL-1', 'WL-6', 'WL-2', 'WL-4']);
        expect(await accessions({ scheduledStationAeTitle: 'ENDO_ROOM2' })).toEqual(['WL-2']);
        expect(await accessions({ scheduledStationAeTitle: 'ENDO_ROOM', accessionNumber: '*' })).toEqual([]);
        expect(await accessions({ accessionNumber: 'WL-4', modality: '*' })).toEqual(['WL-4']);
      });

      it('matches Vietnamese patient names case-insensitively, with * and ? wildcards', async () => {
        expect(await accessions({ patientName: 'Nguyễn^Văn Đức' })).toEqual(['WL-1', 'WL-2']);
        expect(await accessions({ patientName: 'NGUYỄN^VĂN ĐỨC' })).toEqual(['WL-1', 'WL-2']);
        expect(await accessions({ patientName: 'nguyễn*' })).toEqual(['WL-1', 'WL-2']);
        expect(await accessions({ patientName: '*đức' })).toEqual(['WL-1', 'WL-2']);
        expect(await accessions({ patientName: 'ng?yễn^v?n*' })).toEqual(['WL-1', 'WL-2']);
        expect(await accessions({ patientName: 'trần*' })).toEqual(['WL-3']);
        // Decomposed diacritics (as some HL7 senders write them) match the composed name.
        expect(await accessions({ patientName: 'Nguyễn*'.normalize('NFD') })).toEqual(['WL-1', 'WL-2']);
        expect(await accessions({ patientName: 'nguyen*' })).toEqual([]);
        expect(await accessions({ patientName: 'SMITH^JOHN' })).toEqual(['WL-6', 'WL-4']);
        // LIKE's own special characters are plain characters here.
        expect(await accessions({ patientName: 'SMITH%' })).toEqual([]);
        expect(await accessions({ patientName: '*' })).toEqual(['WL-1', 'WL-6', 'WL-2', 'WL-3', 'WL-4']);
      });

      it('matches the patient ID, with its issuer when given, or another identifier of the patient', async () => {
        expect(await accessions({ patientId: duc.patientId })).toEqual(['WL-1', 'WL-2']);
        expect(await accessions({ patientId: duc.patientId, issuerOfPatientId: HOSPITAL })).toEqual(['WL-1', 'WL-2']);
        expect(await accessions({ patientId: duc.patientId, issuerOfPatientId: NATIONAL })).toEqual([]);
        expect(await accessions({ patientId: '001080012345', issuerOfPatientId: NATIONAL })).toEqual(['WL-1', 'WL-2']);
        expect(await accessions({ patientId: smith.patientId, issuerOfPatientId: '' })).toEqual(['WL-6', 'WL-4']);
        expect(await accessions({ issuerOfPatientId: '' })).toEqual(['WL-6', 'WL-4']);
      });
    });

    it('opens again on the same database (tables created once, data kept)', async () => {
      await t.store.transaction((tx) => tx.upsertPatient(duc));
      const again = await t.openAgain();
      try {
        expect(await again.getPatient(duc)).toEqual(duc);
      } finally {
        await again.close();
      }
    });
  });
}
