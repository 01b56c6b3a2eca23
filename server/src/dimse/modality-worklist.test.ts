/**
 * The Modality Worklist as a modality sees it: Debian dcmtk's `findscu -W` (an independent DICOM
 * implementation) lists the orders placed in the hospital link's store, matching on the scheduled date
 * range, modality, station AE title, patient name wildcards (Vietnamese included, checked byte for byte
 * in the answer as dcmtk wrote it), patient ID and accession number; answers carry ISO_IR 192 when a
 * value needs it; C-CANCEL stops the answers; each query is audited; without the store the worklist is
 * refused by presentation context.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PatientIdentity } from '../dicom/patient-identity.js';
import type { OrderInput } from '../his/his-model.js';
import type { HisStore } from '../his/his-store.js';
import { KyselyHisStore } from '../his/kysely-his-store.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { requireDcmtk, runTool, startTestDimse, type TestDimse } from '../test-support/dimse-peer.js';
import { startDimseServer, type DimseServer } from './dimse-server.js';

requireDcmtk();

interface WorklistDimse {
  testApp: TestApp;
  his: HisStore;
  server: DimseServer;
  close(): Promise<void>;
}

/** Our SCP on a test app with the hospital link's store (the app's own when services wire one). */
async function startWorklistDimse(aePermissions: Record<string, Array<'read' | 'store'>> = {}): Promise<WorklistDimse> {
  const testApp = await buildTestApp();
  const { services, config } = testApp;
  const wired = services.his?.store;
  const opened = wired === undefined ? await KyselyHisStore.open(config.index) : undefined;
  const his = wired ?? opened!;
  const server = await startDimseServer({
    config: { host: '127.0.0.1', port: 0, aeTitle: 'FILMLESS', allowedCallingAeTitles: [], aePermissions, destinations: {} },
    archive: services.archive,
    logger: services.logger,
    pageSize: config.qido.maxLimit,
    audit: services.audit,
    his,
  });
  return {
    testApp,
    his,
    server,
    async close() {
      await server.close();
      await opened?.close();
      await testApp.close();
    },
  };
}

const ORDER: OrderInput = {
  placerOrderNumber: null,
  fillerOrderNumber: null,
  accessionNumber: '',
  requestedProcedureId: 'RP1',
  requestedProcedureDescription: null,
  requestedProcedureCode: null,
  scheduledProcedureStepId: 'SPS1',
  scheduledProcedureStepDescription: null,
  modality: 'ES',
  scheduledStationAeTitle: null,
  scheduledStart: '20240315080000',
  referringPhysicianName: null,
  performingPhysicianName: null,
  studyInstanceUid: null,
};

const patient = (patientId: string, name: string, otherIds: PatientIdentity['otherIds'] = []): PatientIdentity => ({
  patientId,
  issuer: 'BVDK',
  name,
  birthDate: '19850412',
  sex: 'F',
  otherIds,
});

/** Vietnamese names in NFC, as the HIS sends them (HL7 UNICODE UTF-8). */
const NHUNG = 'Nguyễn^Thị Hồng Nhung';
const MINH = 'Nguyễn^Văn Minh';

let dimse: WorklistDimse;
let work: string;

async function place(who: PatientIdentity, order: Partial<OrderInput>) {
  return dimse.his.transaction(async (tx) => {
    await tx.upsertPatient(who);
    return tx.createOrder(who, { ...ORDER, ...order });
  });
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pacs-mwl-'));
  dimse = await startWorklistDimse({ ENDO1: ['read', 'store'], CT1: ['read'], STORER: ['store'] });
  await place(patient('BN1001', NHUNG, [{ id: '079185001234', issuer: 'VN-CCCD' }]), {
    accessionNumber: 'ES24001',
    requestedProcedureDescription: 'Nội soi dạ dày',
    requestedProcedureCode: { value: 'NS-DD', scheme: '99BVDK', meaning: 'Nội soi dạ dày' },
    scheduledStationAeTitle: 'ENDO1',
    scheduledStart: '20240315083000',
    referringPhysicianName: 'Trần^Quốc Bảo',
    performingPhysicianName: 'Lê^Thu Hà',
  });
  await place(patient('BN1002', 'Tran^Van Binh'), { accessionNumber: 'CT24002', modality: 'CT', scheduledStationAeTitle: 'CT1', scheduledStart: '20240315140000', requestedProcedureId: 'RP2', scheduledProcedureStepId: 'SPS2' });
  await place(patient('BN1003', MINH), { accessionNumber: 'ES24003', scheduledStationAeTitle: 'ENDO2', scheduledStart: '20240316090000', requestedProcedureId: 'RP3', scheduledProcedureStepId: 'SPS3' });
  const done = await place(patient('BN1004', 'Pham^Thi Lan'), { accessionNumber: 'ES24004', scheduledStationAeTitle: 'ENDO1', scheduledStart: '20240315100000' });
  await dimse.his.transaction((tx) => tx.setOrderStatus(done.id, 'COMPLETED'));
}, 60_000);

afterAll(async () => {
  await dimse?.close();
  await rm(work, { recursive: true, force: true });
});

interface Answer {
  file: string;
  bytes: Buffer;
  dump: string;
}

/** findscu -W with these keys; every answer extracted to a file (-X) and dumped by dcmtk's dcmdump. */
async function worklist(keys: string[], callingAe = 'ENDO1', extra: string[] = [], dump = true): Promise<{ output: string; answers: Answer[]; code: number | null }> {
  const dir = await mkdtemp(path.join(work, 'q-'));
  const result = await runTool('findscu', ['-W', '-v', '--show-responses', '-X', '-od', dir, '-aet', callingAe, '-aec', 'FILMLESS', ...extra, ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(dimse.server.port)]);
  const answers: Answer[] = [];
  for (const file of (await readdir(dir)).sort()) {
    const full = path.join(dir, file);
    answers.push({ file: full, bytes: await readFile(full), dump: dump ? (await runTool('dcmdump', [full])).stdout : '' });
  }
  return { output: result.stdout + result.stderr, answers, code: result.code };
}

const RETURN_KEYS = [
  'PatientName',
  'PatientID',
  'IssuerOfPatientID',
  'PatientBirthDate',
  'PatientSex',
  'AccessionNumber',
  'RequestedProcedureID',
  'RequestedProcedureDescription',
  'StudyInstanceUID',
  'ReferringPhysicianName',
  'ScheduledProcedureStepSequence[0].Modality',
  'ScheduledProcedureStepSequence[0].ScheduledStationAETitle',
  'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate',
  'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime',
  'ScheduledProcedureStepSequence[0].ScheduledPerformingPhysicianName',
  'ScheduledProcedureStepSequence[0].ScheduledProcedureStepID',
  'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus',
];

const accessions = (answers: Answer[]) => answers.map((a) => /\(0008,0050\) SH \[([^\]]*)\]/.exec(a.dump)?.[1] ?? '?').sort();

describe('Modality Worklist with dcmtk findscu -W', () => {
  it('lists the scheduled orders of a day and modality with every Type 1 / Type 2 return key', async () => {
    const { output, answers, code } = await worklist([
      ...RETURN_KEYS.filter((k) => !/StartDate|\.Modality/.test(k)),
      'ScheduledProcedureStepSequence[0].Modality=ES',
      'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20240315',
    ]);
    expect(code, output).toBe(0);
    // The completed order of that day (ES24004) is no longer on the worklist.
    expect(accessions(answers)).toEqual(['ES24001']);
    const [answer] = answers;
    const dump = answer!.dump;
    expect(dump).toMatch(/\(0008,0005\) CS \[ISO_IR 192\]/);
    expect(dump).toContain('(0010,0020) LO [BN1001]');
    expect(dump).toContain('(0010,0021) LO [BVDK]');
    expect(dump).toContain('(0010,0030) DA [19850412]');
    expect(dump).toContain('(0040,1001) SH [RP1]');
    expect(dump).toMatch(/\(0020,000d\) UI \[2\.25\.\d+\]/);
    expect(dump).toContain('(0040,0001) AE [ENDO1]');
    expect(dump).toContain('(0040,0002) DA [20240315]');
    expect(dump).toContain('(0040,0003) TM [083000]');
    expect(dump).toContain('(0040,0009) SH [SPS1]');
    expect(dump).toContain('(0040,0020) CS [SCHEDULED]');
    // Vietnamese text is UTF-8 in the answer, byte for byte, and dcmtk shows it as such.
    for (const text of [NHUNG, 'Trần^Quốc Bảo', 'Lê^Thu Hà', 'Nội soi dạ dày']) {
      expect(answer!.bytes.includes(Buffer.from(text, 'utf8')), text).toBe(true);
      expect(dump).toContain(text);
    }
    // findscu's own display of the answer.
    expect(output).toContain(NHUNG);
    // Keys not asked for are not returned.
    expect(dump).not.toContain('(0010,1002)');
    expect(dump).not.toContain('(0032,1064)');
  });

  it('matches a date range, a station AE title and a time range', async () => {
    const range = await worklist(['AccessionNumber', 'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20240315-20240316']);
    expect(accessions(range.answers)).toEqual(['CT24002', 'ES24001', 'ES24003']);
    const open = await worklist(['AccessionNumber', 'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20240316-']);
    expect(accessions(open.answers)).toEqual(['ES24003']);
    const station = await worklist(['AccessionNumber', 'ScheduledProcedureStepSequence[0].ScheduledStationAETitle=ENDO2']);
    expect(accessions(station.answers)).toEqual(['ES24003']);
    const afternoon = await worklist(['AccessionNumber', 'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime=1200-1800']);
    expect(accessions(afternoon.answers)).toEqual(['CT24002']);
  });

  it('matches patient names with wildcards, case-insensitively, Vietnamese included', async () => {
    const nguyen = await worklist(['SpecificCharacterSet=ISO_IR 192', 'PatientName=nguyễn*', 'AccessionNumber']);
    expect(accessions(nguyen.answers)).toEqual(['ES24001', 'ES24003']);
    const minh = await worklist(['SpecificCharacterSet=ISO_IR 192', 'PatientName=NGUYỄN^V?N*', 'AccessionNumber']);
    expect(accessions(minh.answers)).toEqual(['ES24003']);
    expect(minh.answers[0]!.bytes.includes(Buffer.from(MINH, 'utf8'))).toBe(true);
    const ascii = await worklist(['PatientName=tran*', 'AccessionNumber']);
    expect(accessions(ascii.answers)).toEqual(['CT24002']);
    // Every value plain ASCII: no Specific Character Set in the answer.
    expect(ascii.answers[0]!.dump).not.toContain('(0008,0005)');
  });

  it('matches the patient ID (or the national ID) with its issuer, and the accession number', async () => {
    const byId = await worklist(['PatientID=BN1001', 'IssuerOfPatientID=BVDK', 'AccessionNumber']);
    expect(accessions(byId.answers)).toEqual(['ES24001']);
    const byNationalId = await worklist(['PatientID=079185001234', 'IssuerOfPatientID=VN-CCCD', 'AccessionNumber']);
    expect(accessions(byNationalId.answers)).toEqual(['ES24001']);
    // Answered with the patient's own ID and issuer (the keys of the identifier), not the national ID it matched.
    expect(byNationalId.answers[0]!.dump).toContain('(0010,0020) LO [BN1001]');
    expect(byNationalId.answers[0]!.dump).toContain('(0010,0021) LO [BVDK]');
    const otherIssuer = await worklist(['PatientID=BN1001', 'IssuerOfPatientID=ELSEWHERE', 'AccessionNumber']);
    expect(otherIssuer.answers).toHaveLength(0);
    const byAccession = await worklist(['AccessionNumber=CT24002', 'PatientName']);
    expect(byAccession.answers).toHaveLength(1);
    expect(byAccession.answers[0]!.dump).toContain('Tran^Van Binh');
    const wildcardAccession = await worklist(['AccessionNumber=ES24*']);
    expect(accessions(wildcardAccession.answers)).toEqual(['ES24001', 'ES24003']);
  });

  it('returns a sequence asked for without an item whole (the national ID in Other Patient IDs, the procedure code)', async () => {
    const { answers } = await worklist(['AccessionNumber=ES24001', '(0010,1002)', '(0032,1064)', '(0040,0100)']);
    const dump = answers[0]!.dump;
    expect(dump).toContain('(0010,0020) LO [079185001234]');
    expect(dump).toContain('(0010,0021) LO [VN-CCCD]');
    expect(dump).toContain('(0008,0100) SH [NS-DD]');
    expect(dump).toContain('(0040,0006) PN [Lê^Thu Hà]');
  });

  it('answers FF01 for a key the archive does not keep, and A900 for an invalid date', async () => {
    const unsupported = await worklist(['AccessionNumber=ES24001', 'AdmissionID=ADM-7']);
    expect(unsupported.answers).toHaveLength(1);
    expect(unsupported.output).toMatch(/Pending: WarningUnsupportedOptionalKeys/);
    const invalid = await worklist(['ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=15/03/2024']);
    expect(invalid.answers).toHaveLength(0);
    expect(invalid.output).toMatch(/Error: DataSetDoesNotMatchSOPClass/);
  });

  it('stops answering when findscu cancels (C-CANCEL → FE00)', async () => {
    await dimse.his.transaction(async (tx) => {
      for (let i = 0; i < 120; i++) {
        const who = patient(`BN9${String(i).padStart(3, '0')}`, `Bulk^Patient ${i}`);
        await tx.upsertPatient(who);
        await tx.createOrder(who, { ...ORDER, accessionNumber: `BULK${i}`, scheduledStationAeTitle: 'BULK', scheduledStart: '20240401080000', requestedProcedureId: `RPB${i}`, scheduledProcedureStepId: `SPB${i}` });
      }
    });
    const cancelled = await worklist(['AccessionNumber', 'ScheduledProcedureStepSequence[0].ScheduledStationAETitle=BULK'], 'ENDO1', ['--cancel', '1'], false);
    expect(cancelled.output).toContain('Received Final Find Response (Cancel: MatchingTerminatedDueToCancelRequest)');
    expect(cancelled.answers.length).toBeLessThan(120);
    const all = await worklist(['AccessionNumber', 'ScheduledProcedureStepSequence[0].ScheduledStationAETitle=BULK'], 'ENDO1', [], false);
    expect(all.answers).toHaveLength(120);
  }, 120_000);

  it('audits each worklist query with the calling AE title and its keys, and refuses an AE without read', async () => {
    await worklist(['PatientName=Tran*', 'ScheduledProcedureStepSequence[0].Modality=CT'], 'CT1');
    const refused = await worklist(['PatientName'], 'STORER');
    expect(refused.output).toMatch(/Unknown Status: 0x124|Not Authorized/i);
    expect(refused.answers).toHaveLength(0);
    const audit = dimse.testApp.services.audit!;
    await audit.flush();
    const ct1 = await audit.store.list({ subject: 'AE:CT1', limit: 10 });
    expect(ct1[0]).toMatchObject({
      action: 'query',
      interface: 'dimse',
      route: 'C-FIND',
      outcome: 0,
      query: { level: 'WORKLIST', keys: { PatientName: 'Tran*', 'ScheduledProcedureStepSequence.Modality': 'CT' } },
      detail: { sopClass: '1.2.840.10008.5.1.4.31' },
    });
    const storer = await audit.store.list({ subject: 'AE:STORER', limit: 10 });
    expect(storer[0]).toMatchObject({ action: 'query', status: 0x0124, outcome: 8 });
  });
});

describe('Modality Worklist without the hospital link', () => {
  let plain: TestDimse;
  beforeAll(async () => {
    plain = await startTestDimse();
  }, 60_000);
  afterAll(async () => {
    await plain?.close();
  });

  it('refuses the worklist presentation context as before', async () => {
    const result = await runTool('findscu', ['-W', '-v', '-k', 'PatientName', '-aec', plain.aeTitle, '127.0.0.1', String(plain.port)]);
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toMatch(/No Acceptable Presentation Contexts/i);
  });
});
