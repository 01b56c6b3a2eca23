/**
 * MPPS as a modality reports it (PS3.4 Annex F), with the npm dcmjs-dimse Client as the SCU (an
 * implementation independent of our SCP code; dcmtk has no MPPS SCU): N-CREATE puts the worklist order
 * IN PROGRESS (dcmtk's findscu -W then says STARTED), N-SET COMPLETED completes it with its performed
 * series; DISCONTINUED discontinues it; the refusals get PS3.4 / PS3.7 statuses (unknown instance 0112,
 * a final step changed again 0110 + Error ID A710, duplicate 0111, missing 0120 / 0121, invalid 0106,
 * not authorized 0124); each request is audited as an Order Record event.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import dcmjsDimse from 'dcmjs-dimse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PatientIdentity } from '../dicom/patient-identity.js';
import type { Order, OrderInput } from '../his/his-model.js';
import type { HisStore } from '../his/his-store.js';
import { KyselyHisStore } from '../his/kysely-his-store.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { newUid } from '../test-support/make-dicom.js';
import { requireDcmtk, runTool } from '../test-support/dimse-peer.js';
import { startDimseServer, type DimseServer } from './dimse-server.js';

requireDcmtk();

const { Client, Dataset, requests } = dcmjsDimse;
type DimseResponse = InstanceType<typeof dcmjsDimse.responses.Response>;
const MPPS = '1.2.840.10008.3.1.2.3.3';

let testApp: TestApp;
let his: HisStore;
let opened: KyselyHisStore | undefined;
let server: DimseServer;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'pacs-mpps-'));
  testApp = await buildTestApp();
  const { services, config } = testApp;
  const wired = services.his?.store;
  opened = wired === undefined ? await KyselyHisStore.open(config.index) : undefined;
  his = wired ?? opened!;
  server = await startDimseServer({
    config: { host: '127.0.0.1', port: 0, aeTitle: 'FILMLESS', allowedCallingAeTitles: [], aePermissions: { ENDO1: ['read', 'store'], VIEWER: ['read'] }, destinations: {} },
    archive: services.archive,
    logger: services.logger,
    pageSize: config.qido.maxLimit,
    audit: services.audit,
    his,
  });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await opened?.close();
  await testApp?.close();
  await rm(work, { recursive: true, force: true });
});

const NHUNG = 'Nguyễn^Thị Hồng Nhung';
let nextAccession = 1;

async function placeOrder(patientId = 'BN2001', name = NHUNG): Promise<Order> {
  const who: PatientIdentity = { patientId, issuer: 'BVDK', name, birthDate: '19850412', sex: 'F', otherIds: [] };
  const n = nextAccession++;
  const order: OrderInput = {
    placerOrderNumber: null,
    fillerOrderNumber: null,
    accessionNumber: `ES25${String(n).padStart(3, '0')}`,
    requestedProcedureId: `RP${n}`,
    requestedProcedureDescription: 'Nội soi dạ dày',
    requestedProcedureCode: null,
    scheduledProcedureStepId: `SPS${n}`,
    scheduledProcedureStepDescription: null,
    modality: 'ES',
    scheduledStationAeTitle: 'ENDO1',
    scheduledStart: '20240315083000',
    referringPhysicianName: null,
    performingPhysicianName: null,
    studyInstanceUid: null,
  };
  return his.transaction(async (tx) => {
    await tx.upsertPatient(who);
    return tx.createOrder(who, order);
  });
}

/** The N-CREATE data set a modality sends for an order (PS3.4 Table F.7.2-1, Type 1 and 2 attributes). */
function creation(order: Order | undefined, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    SpecificCharacterSet: 'ISO_IR 192',
    Modality: 'ES',
    ProcedureCodeSequence: [],
    ReferencedPatientSequence: [],
    PatientName: NHUNG,
    PatientID: order?.patient.patientId ?? 'UNKNOWN1',
    PatientBirthDate: '19850412',
    PatientSex: 'F',
    StudyID: '',
    PerformedStationAETitle: 'ENDO1',
    PerformedStationName: '',
    PerformedLocation: '',
    PerformedProcedureStepStartDate: '20240315',
    PerformedProcedureStepStartTime: '083500',
    PerformedProcedureStepEndDate: '',
    PerformedProcedureStepEndTime: '',
    PerformedProcedureStepStatus: 'IN PROGRESS',
    PerformedProcedureStepID: 'PPS-1',
    PerformedProcedureStepDescription: 'Nội soi dạ dày',
    PerformedProcedureTypeDescription: '',
    PerformedSeriesSequence: [],
    ScheduledStepAttributesSequence: [
      {
        StudyInstanceUID: order?.studyInstanceUid ?? newUid(),
        ReferencedStudySequence: [],
        AccessionNumber: order?.accessionNumber ?? '',
        RequestedProcedureID: order?.requestedProcedureId ?? '',
        RequestedProcedureDescription: '',
        ScheduledProcedureStepID: order?.scheduledProcedureStepId ?? '',
        ScheduledProcedureStepDescription: '',
        ScheduledProtocolCodeSequence: [],
      },
    ],
    ...overrides,
  };
}

function completion(status: 'COMPLETED' | 'DISCONTINUED', series: string[], overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    PerformedProcedureStepStatus: status,
    PerformedProcedureStepEndDate: '20240315',
    PerformedProcedureStepEndTime: '091000',
    PerformedSeriesSequence: series.map((uid) => ({
      SeriesInstanceUID: uid,
      SeriesDescription: 'Nội soi',
      ProtocolName: 'GASTRO',
      RetrieveAETitle: 'FILMLESS',
      PerformingPhysicianName: '',
      OperatorsName: '',
      ReferencedImageSequence: [],
      ReferencedNonImageCompositeSOPInstanceSequence: [],
    })),
    ...overrides,
  };
}

function nCreate(uid: string | undefined, elements: Record<string, unknown>) {
  const request = new requests.NCreateRequest(MPPS, uid as string);
  request.setDataset(new Dataset(elements, '1.2.840.10008.1.2.1'));
  return request;
}

function nSet(uid: string, elements: Record<string, unknown>) {
  const request = new requests.NSetRequest(MPPS, uid);
  request.setDataset(new Dataset(elements, '1.2.840.10008.1.2.1'));
  return request;
}

interface Answer {
  status: number;
  comment: string;
  errorId: number | undefined;
  attributes: number[];
  affected: string;
}

/** Sends the requests on one association of the dcmjs-dimse Client; the response to each, in order. */
function exchange(list: Array<ReturnType<typeof nCreate> | ReturnType<typeof nSet>>, callingAe = 'ENDO1'): Promise<Answer[]> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    const answers: Answer[] = [];
    for (const request of list) {
      request.on('response', (response: DimseResponse) => {
        const command = response.getCommandDataset();
        const ids = command.getElement('AttributeIdentifierList') as unknown;
        answers.push({
          status: response.getStatus(),
          comment: String(command.getElement('ErrorComment') ?? ''),
          errorId: command.getElement('ErrorID') as unknown as number | undefined,
          attributes: ids === undefined ? [] : ([] as number[]).concat(ids as number | number[]),
          affected: String(command.getElement('AffectedSOPInstanceUID') ?? ''),
        });
      });
      client.addRequest(request);
    }
    client.on('networkError', (err: Error) => reject(err));
    client.on('associationRejected', () => reject(new Error('association rejected')));
    client.on('closed', () => resolve(answers));
    client.send('127.0.0.1', server.port, callingAe, 'FILMLESS', { associationLingerTimeout: 10 });
  });
}

/** The order's Scheduled Procedure Step Status as dcmtk's findscu -W reads it from the worklist. */
async function worklistStatus(accession: string): Promise<string | undefined> {
  const dir = await mkdtemp(path.join(work, 'mwl-'));
  await runTool('findscu', ['-W', '-X', '-od', dir, '-aet', 'ENDO1', '-aec', 'FILMLESS', '-k', `AccessionNumber=${accession}`, '-k', 'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus=SCHEDULED\\STARTED\\COMPLETED\\DISCONTINUED', '127.0.0.1', String(server.port)]);
  const [file] = await readdir(dir);
  if (file === undefined) return undefined;
  const dump = (await runTool('dcmdump', [path.join(dir, file)])).stdout;
  expect((await readFile(path.join(dir, file))).length).toBeGreaterThan(0);
  return /\(0040,0020\) CS \[([^\]]*)\]/.exec(dump)?.[1];
}

describe('MPPS with the dcmjs-dimse Client as the modality', () => {
  it('N-CREATE puts the order in progress with the MPPS UID; N-SET COMPLETED completes it with its performed series', async () => {
    const order = await placeOrder();
    expect(await worklistStatus(order.accessionNumber)).toBe('SCHEDULED');
    const mpps = newUid();
    const [created] = await exchange([nCreate(mpps, creation(order))]);
    expect(created).toMatchObject({ status: 0x0000, affected: mpps });
    expect(await his.getOrder(order.id)).toMatchObject({ status: 'IN PROGRESS', mppsSopInstanceUid: mpps });
    expect(await worklistStatus(order.accessionNumber)).toBe('STARTED');
    expect(await his.getPerformedStep(mpps)).toMatchObject({ status: 'IN PROGRESS', orderIds: [order.id] });

    const series = [newUid(), newUid()];
    const [completed] = await exchange([nSet(mpps, completion('COMPLETED', series))]);
    expect(completed).toMatchObject({ status: 0x0000, affected: mpps });
    const done = await his.getOrder(order.id);
    expect(done).toMatchObject({ status: 'COMPLETED', mppsSopInstanceUid: mpps });
    expect([...done!.performedSeries].sort()).toEqual([...series].sort());
    const step = await his.getPerformedStep(mpps);
    expect(step).toMatchObject({ status: 'COMPLETED', performedSeries: series });
    // The step keeps what the modality sent, Vietnamese text included.
    expect(JSON.stringify(step!.attributes)).toContain('Nội soi dạ dày');
    // Completed: off the default worklist, and shown COMPLETED when asked for.
    expect(await worklistStatus(order.accessionNumber)).toBe('COMPLETED');
    expect((await his.worklist({ accessionNumber: order.accessionNumber })).length).toBe(0);
  });

  it('N-SET DISCONTINUED discontinues the order; an intermediate N-SET keeps it in progress', async () => {
    const order = await placeOrder();
    const mpps = newUid();
    const series = newUid();
    const progress = await exchange([nCreate(mpps, creation(order)), nSet(mpps, { PerformedSeriesSequence: completion('COMPLETED', [series])['PerformedSeriesSequence'] })]);
    expect(progress.map((a) => a.status)).toEqual([0, 0]);
    expect(await his.getOrder(order.id)).toMatchObject({ status: 'IN PROGRESS', performedSeries: [series] });
    // Stopped part-way (the patient could not tolerate it): the series taken stay linked to the order.
    const [discontinued] = await exchange([nSet(mpps, completion('DISCONTINUED', [series]))]);
    expect(discontinued!.status).toBe(0);
    expect(await his.getOrder(order.id)).toMatchObject({ status: 'DISCONTINUED', performedSeries: [series] });
    expect(await his.getPerformedStep(mpps)).toMatchObject({ status: 'DISCONTINUED', performedSeries: [series] });
  });

  it('finds the order by its Study Instance UID when the modality sends no accession number', async () => {
    const order = await placeOrder();
    const mpps = newUid();
    const byStudy = creation(order);
    byStudy['ScheduledStepAttributesSequence'] = [{ StudyInstanceUID: order.studyInstanceUid, AccessionNumber: '', RequestedProcedureID: '', ScheduledProcedureStepID: '' }];
    const [created] = await exchange([nCreate(mpps, byStudy)]);
    expect(created!.status).toBe(0);
    expect(await his.getOrder(order.id)).toMatchObject({ status: 'IN PROGRESS', mppsSopInstanceUid: mpps });
  });

  it('keeps an unscheduled step (no known order) and assigns a UID when the modality gives none', async () => {
    const [unscheduled] = await exchange([nCreate(undefined, creation(undefined))]);
    expect(unscheduled!.status).toBe(0x0000);
    expect(unscheduled!.affected).toMatch(/^2\.25\.\d+$/);
    expect(await his.getPerformedStep(unscheduled!.affected)).toMatchObject({ status: 'IN PROGRESS', orderIds: [] });
  });

  it('refuses what PS3.4 refuses, with the right statuses, and changes nothing', async () => {
    const order = await placeOrder();
    const mpps = newUid();
    const [
      unknown,
      missing,
      empty,
      badStatus,
      created,
      duplicate,
      noEndTime,
      changedPatient,
      completeWithoutSeries,
      completed,
      again,
      discontinueAfter,
    ] = await exchange([
      nSet(newUid(), completion('COMPLETED', [newUid()])),
      nCreate(newUid(), creation(order, { PerformedProcedureStepStatus: undefined })),
      nCreate(newUid(), creation(order, { PerformedStationAETitle: '' })),
      nCreate(newUid(), creation(order, { PerformedProcedureStepStatus: 'COMPLETED' })),
      nCreate(mpps, creation(order)),
      nCreate(mpps, creation(order)),
      nSet(mpps, completion('COMPLETED', [newUid()], { PerformedProcedureStepEndTime: '' })),
      nSet(mpps, { PatientID: 'SOMEONE-ELSE' }),
      nSet(mpps, completion('COMPLETED', [])),
      nSet(mpps, completion('COMPLETED', [newUid()])),
      nSet(mpps, completion('COMPLETED', [newUid()])),
      nSet(mpps, completion('DISCONTINUED', [])),
    ]);
    expect(unknown).toMatchObject({ status: 0x0112 });
    expect(missing).toMatchObject({ status: 0x0120, attributes: [0x00400252] });
    expect(empty).toMatchObject({ status: 0x0121, attributes: [0x00400241] });
    expect(badStatus).toMatchObject({ status: 0x0106, attributes: [0x00400252] });
    expect(created).toMatchObject({ status: 0x0000 });
    expect(duplicate).toMatchObject({ status: 0x0111 });
    expect(noEndTime).toMatchObject({ status: 0x0121, attributes: [0x00400251] });
    expect(changedPatient).toMatchObject({ status: 0x0106, attributes: [0x00100020] });
    expect(completeWithoutSeries).toMatchObject({ status: 0x0121, attributes: [0x00400340] });
    expect(completed).toMatchObject({ status: 0x0000 });
    // PS3.4 F.7.2.2: a final state may not be changed again.
    for (const refused of [again, discontinueAfter]) {
      expect(refused).toMatchObject({ status: 0x0110, errorId: 0xa710 });
      expect(refused!.comment).toMatch(/may no longer be updated/);
    }
    const final = await his.getOrder(order.id);
    expect(final).toMatchObject({ status: 'COMPLETED', mppsSopInstanceUid: mpps });
    expect(final!.performedSeries).toHaveLength(1);
    expect((await his.getPerformedStep(mpps))?.status).toBe('COMPLETED');
  });

  it('needs the store permission, and audits every request as an Order Record event', async () => {
    const order = await placeOrder('BN2009', 'Pham^Thi Lan');
    const mpps = newUid();
    const [refused] = await exchange([nCreate(mpps, creation(order))], 'VIEWER');
    expect(refused).toMatchObject({ status: 0x0124 });
    expect(await his.getPerformedStep(mpps)).toBeUndefined();
    expect((await his.getOrder(order.id))?.status).toBe('SCHEDULED');
    await exchange([nCreate(mpps, creation(order)), nSet(mpps, completion('COMPLETED', [newUid()]))]);

    const audit = testApp.services.audit!;
    await audit.flush();
    const endo = (await audit.store.list({ subject: 'AE:ENDO1', limit: 1000 })).filter((r) => r.detail?.['mppsSopInstanceUid'] === mpps).reverse();
    expect(endo.map((r) => [r.route, r.action, r.detail?.['eventActionCode'], r.outcome])).toEqual([
      ['N-CREATE', 'order-record', 'C', 0],
      ['N-SET', 'order-record', 'U', 0],
    ]);
    expect(endo[0]).toMatchObject({ interface: 'dimse', objects: [{ study: order.studyInstanceUid, patient: 'BN2009^^^BVDK' }], detail: { ppsStatus: 'IN PROGRESS', orders: 1 } });
    expect(endo[1]).toMatchObject({ detail: { ppsStatus: 'COMPLETED', performedSeries: 1 } });
    const viewer = await audit.store.list({ subject: 'AE:VIEWER', limit: 10 });
    expect(viewer[0]).toMatchObject({ action: 'order-record', route: 'N-CREATE', status: 0x0124, outcome: 8 });
  });
});
