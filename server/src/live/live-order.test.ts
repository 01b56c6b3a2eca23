/**
 * Live endoscopy from the worklist (issue 17): an order created through the orders API (`POST /his/orders`,
 * a Vietnamese patient with the hospital's record number and the national citizen ID) is started over the
 * live WebSocket with `{"orderId"}`. The recording (Video Endoscopic Image) and its SR, read back with
 * dcmjs, carry the order's patient, accession number, Study Instance UID, requested procedure and
 * referring physician, with the Request Attributes Sequence (recording) and Referenced Request Sequence
 * (SR); the order is IN PROGRESS during the session and COMPLETED after it, with the two series linked;
 * dciodvfy (dicom3tools) finds no error in them that a session started by typing the patient does not
 * have too. Unknown, ended and non-endoscopy orders are refused (ORDER_NOT_STARTABLE), a session that
 * stores nothing discontinues its order, and the order's changes are in the audit trail.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveClient, type LiveMessage } from '../../../scripts/live/live-client.js';
import type { AuditRecord } from '../audit/audit-record.js';
import { dciodvfyErrors, requireDciodvfy } from '../test-support/dciodvfy.js';
import { runTool } from '../test-support/dimse-peer.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';

dcmjs.log.setLevel('silent');

requireDciodvfy();

const VIDEO_ENDOSCOPIC = '1.2.840.10008.5.1.4.1.1.77.1.1.1';

let t: TestApp;
let url: string;
let work: string;

beforeAll(async () => {
  t = await buildTestApp({ PACS_LIVE_MAX_WAIT_MS: '60000', PACS_HIS_PATIENT_ID_ISSUERS: 'BV-NOISOI,VN-CCCD' });
  url = `${(await t.app.listen({ host: '127.0.0.1', port: 0 })).replace('http', 'ws')}/live`;
  work = await mkdtemp(path.join(os.tmpdir(), 'live-order-'));
}, 60_000);

afterAll(async () => {
  await t?.close();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

const today = () => {
  const d = new Date();
  return `${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, '0')}${String(d.getDate()).padStart(2, '0')}`;
};

const patient = {
  patientId: 'NS-2026-0417',
  issuer: 'BV-NOISOI',
  name: 'Trần^Thị Ngọc Ánh',
  birthDate: '19790912',
  sex: 'F',
  otherIds: [{ id: '079179004417', issuer: 'VN-CCCD' }],
};
const orderBody = (accessionNumber: string, overrides: Record<string, unknown> = {}) => ({
  patient,
  accessionNumber,
  placerOrderNumber: `PL-${accessionNumber}`,
  requestedProcedureId: `RP-${accessionNumber}`.slice(0, 16),
  scheduledProcedureStepId: `SPS-${accessionNumber}`.slice(0, 16),
  modality: 'ES',
  scheduledStationAeTitle: 'NOISOI_P1',
  scheduledStart: `${today()}0900`,
  requestedProcedureDescription: 'Nội soi đại tràng',
  requestedProcedureCode: { value: 'NS-DT', scheme: '99BVNS', meaning: 'Nội soi đại tràng' },
  scheduledProcedureStepDescription: 'Nội soi đại tràng có sinh thiết',
  referringPhysicianName: 'Lê^Minh Khoa',
  ...overrides,
});

async function createOrder(body: Record<string, unknown>): Promise<Record<string, any>> {
  const res = await t.app.inject({ method: 'POST', url: '/his/orders', payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  expect(res.statusCode).toBe(201);
  return res.json().order;
}

const getOrder = async (id: string) => (await t.app.inject({ url: `/his/orders/${id}` })).json();

/** 160×120 black frame with a white 40×40 square at (x, 40). */
async function squareJpeg(x: number): Promise<Buffer> {
  const pixels = Buffer.alloc(160 * 120 * 3);
  for (let y = 40; y < 80; y += 1) for (let c = x; c < x + 40; c += 1) pixels.fill(255, (y * 160 + c) * 3, (y * 160 + c) * 3 + 3);
  return sharp(pixels, { raw: { width: 160, height: 120, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

/** A whole session: start with `study`, four frames, stop; the started and stopped messages. */
async function session(study: Record<string, unknown>, during?: (started: LiveMessage) => Promise<void>): Promise<{ started: LiveMessage; stopped: LiveMessage }> {
  const client = await LiveClient.connect(url);
  try {
    client.sendJson({ type: 'start', model: 'bright-spot', fps: 25, study });
    const started = await client.next((m) => m.type === 'started' || m.type === 'error');
    if (started.type === 'error') throw new Error(`start refused: ${started.code} ${started.message}`);
    for (let seq = 0; seq < 4; seq += 1) {
      client.sendJpeg(seq, await squareJpeg(20 + seq * 20));
      await client.next((m) => m.type === 'detections' && m.seq === seq);
    }
    await during?.(started);
    client.sendJson({ type: 'stop' });
    return { started, stopped: await client.next((m) => m.type === 'stopped') };
  } finally {
    client.ws.close();
  }
}

async function readStored(study: string, series: string): Promise<Buffer> {
  const [instance] = await t.services.catalog.listInstances({ studyInstanceUid: study, seriesInstanceUid: series });
  const chunks: Buffer[] = [];
  for await (const c of await t.services.blobStore.get(instance!.blobKey)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The file read back with dcmjs, whose reading of text inside sequence items the archive corrects
 * (dicom/dcmjs-sequence-charset.ts: the data set's ISO_IR 192 applies to its items).
 */
function naturalized(bytes: Buffer): Record<string, any> {
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer).dict) as Record<string, any>;
  // dcmjs's bookkeeping (`_vrMap`) inside sequence items is not part of the data set.
  const plain = (value: unknown): unknown =>
    Array.isArray(value) ? value.map(plain) : value !== null && typeof value === 'object' ? Object.fromEntries(Object.entries(value).filter(([k]) => k !== '_vrMap').map(([k, v]) => [k, plain(v)])) : value;
  for (const [keyword, value] of Object.entries(ds)) if (keyword.endsWith('Sequence')) ds[keyword] = plain(value);
  return ds;
}

/** dciodvfy's error lines (warnings left out), without the values they quote, each once, sorted. */
async function distinctErrors(file: Buffer, name: string): Promise<string[]> {
  return [...new Set(await dciodvfyErrors(file, name, { withoutValues: true }))].sort();
}

async function auditRecords(action: AuditRecord['action']): Promise<AuditRecord[]> {
  await t.services.audit!.flush();
  return (await t.services.audit!.store.list({ limit: 200, action })).reverse();
}

describe('live endoscopy from the worklist', () => {
  let order: Record<string, any>;
  let recording: { video: Buffer; report: Buffer };

  it('starts from an order: IN PROGRESS during the session, COMPLETED after it with the recording and its SR linked', async () => {
    order = await createOrder(orderBody('NS-ACC-0417'));
    expect(order.status).toBe('SCHEDULED');
    // The live room's list: today's ES items of its station.
    const worklist = (await t.app.inject({ url: `/his/worklist?date=${today()}&modality=ES&station=NOISOI_P1` })).json();
    expect(worklist.items.map((item: { id: string }) => item.id)).toContain(order.id);

    const { started, stopped } = await session({ orderId: order.id }, async () => {
      expect((await getOrder(order.id)).status).toBe('IN PROGRESS');
    });
    expect(started.studyInstanceUid).toBe(order.studyInstanceUid);
    expect(started.order).toEqual({ id: order.id, accessionNumber: 'NS-ACC-0417', status: 'IN PROGRESS' });
    expect(stopped.recording).toMatchObject({ studyInstanceUid: order.studyInstanceUid, video: { frames: 4 } });
    expect(stopped.order).toEqual({ id: order.id, accessionNumber: 'NS-ACC-0417', status: 'COMPLETED' });

    const after = await getOrder(order.id);
    expect(after.status).toBe('COMPLETED');
    expect(after.performedSeries).toEqual(expect.arrayContaining([stopped.recording.video.seriesInstanceUid, stopped.recording.report.seriesInstanceUid]));
    // The study browser's request: the order of the study, COMPLETED.
    const ofStudy = (await t.app.inject({ url: `/his/orders?study=${order.studyInstanceUid}` })).json();
    expect(ofStudy.orders.map((o: { id: string; status: string }) => [o.id, o.status])).toEqual([[order.id, 'COMPLETED']]);

    recording = {
      video: await readStored(order.studyInstanceUid, stopped.recording.video.seriesInstanceUid),
      report: await readStored(order.studyInstanceUid, stopped.recording.report.seriesInstanceUid),
    };
  });

  it("writes the order's patient, accession number, study, request and referring physician into the recording and its SR", async () => {
    const patientStudy = {
      SpecificCharacterSet: 'ISO_IR 192',
      PatientName: [{ Alphabetic: 'Trần^Thị Ngọc Ánh' }],
      PatientID: 'NS-2026-0417',
      IssuerOfPatientID: 'BV-NOISOI',
      PatientBirthDate: '19790912',
      PatientSex: 'F',
      OtherPatientIDsSequence: [{ PatientID: '079179004417', IssuerOfPatientID: 'VN-CCCD', TypeOfPatientID: 'TEXT' }],
      StudyInstanceUID: order.studyInstanceUid,
      AccessionNumber: 'NS-ACC-0417',
      ReferringPhysicianName: [{ Alphabetic: 'Lê^Minh Khoa' }],
      StudyID: 'RP-NS-ACC-0417',
      StudyDescription: 'Nội soi đại tràng',
      ProcedureCodeSequence: [{ CodeValue: 'NS-DT', CodingSchemeDesignator: '99BVNS', CodeMeaning: 'Nội soi đại tràng' }],
    };
    const code = { CodeValue: 'NS-DT', CodingSchemeDesignator: '99BVNS', CodeMeaning: 'Nội soi đại tràng' };
    const video = naturalized(recording.video);
    expect(video).toMatchObject({ ...patientStudy, SOPClassUID: VIDEO_ENDOSCOPIC, Modality: 'ES', NumberOfFrames: 4 });
    expect(video.RequestAttributesSequence).toEqual([
      {
        RequestedProcedureID: 'RP-NS-ACC-0417',
        AccessionNumber: 'NS-ACC-0417',
        StudyInstanceUID: order.studyInstanceUid,
        RequestedProcedureDescription: 'Nội soi đại tràng',
        RequestedProcedureCodeSequence: [code],
        ScheduledProcedureStepID: 'SPS-NS-ACC-0417',
        ScheduledProcedureStepDescription: 'Nội soi đại tràng có sinh thiết',
      },
    ]);
    const report = naturalized(recording.report);
    expect(report).toMatchObject({ ...patientStudy, Modality: 'SR' });
    expect(report.ReferencedRequestSequence).toMatchObject([
      {
        StudyInstanceUID: order.studyInstanceUid,
        AccessionNumber: 'NS-ACC-0417',
        RequestedProcedureID: 'RP-NS-ACC-0417',
        RequestedProcedureDescription: 'Nội soi đại tràng',
        RequestedProcedureCodeSequence: [code],
        PlacerOrderNumberImagingServiceRequest: 'PL-NS-ACC-0417',
      },
    ]);
    expect(report.RequestAttributesSequence).toBeUndefined(); // an SR's series module has none
    expect(video.ReferencedRequestSequence).toBeUndefined();
    // A third-party reader (dcmtk) sees the same UTF-8 text, in sequence items too.
    await writeFile(path.join(work, 'order-video.dcm'), recording.video);
    const dump = (await runTool('dcmdump', ['+U8', path.join(work, 'order-video.dcm')])).stdout;
    expect(dump).toMatch(/\(0008,0104\) LO \[Nội soi đại tràng\]/);
    expect(dump).toMatch(/\(0040,0007\) LO \[Nội soi đại tràng có sinh thiết\]/);
    expect(dump).toMatch(/\(0010,0010\) PN \[Trần\^Thị Ngọc Ánh\]/);

    // QIDO-RS finds the study by the HIS's identity, with the name as the HIS spelled it.
    const found = (await t.app.inject({ url: `/dicomweb/studies?AccessionNumber=NS-ACC-0417&includefield=00081030` })).json();
    expect(found).toHaveLength(1);
    expect(found[0]['00100010'].Value[0].Alphabetic).toBe('Trần^Thị Ngọc Ánh');
    expect(found[0]['00100020'].Value[0]).toBe('NS-2026-0417');
    expect(found[0]['0020000D'].Value[0]).toBe(order.studyInstanceUid);
    expect(t.logLines.join('')).not.toMatch(/NS-2026-0417|079179004417|Trần|Ngọc/);
  });

  it('writes no DICOM error (dciodvfy) that a session started by typing the patient does not have', async () => {
    const { stopped } = await session({ patientName: 'GO^TYPED', patientId: 'TYPED-17', accessionNumber: 'TYPED-ACC' });
    const typed = {
      video: await readStored(stopped.recording.studyInstanceUid, stopped.recording.video.seriesInstanceUid),
      report: await readStored(stopped.recording.studyInstanceUid, stopped.recording.report.seriesInstanceUid),
    };
    for (const kind of ['video', 'report'] as const) {
      const baseline = await distinctErrors(typed[kind], `typed-${kind}.dcm`);
      const fromOrder = await distinctErrors(recording[kind], `order-${kind}.dcm`);
      expect(fromOrder.filter((line) => !baseline.includes(line)), `${kind}: errors only the order's file has`).toEqual([]);
    }
  });

  it('refuses unknown, ended and non-endoscopy orders with ORDER_NOT_STARTABLE, and a malformed order id with BAD_START', async () => {
    const ct = await createOrder(orderBody('NS-ACC-CT1', { modality: 'CT', placerOrderNumber: 'PL-CT1' }));
    const client = await LiveClient.connect(url);
    try {
      const refusal = async (study: Record<string, unknown>) => {
        client.sendJson({ type: 'start', model: 'bright-spot', study });
        return client.next((m) => m.type === 'error' || m.type === 'started');
      };
      expect(await refusal({ orderId: '00000000-0000-0000-0000-000000000000' })).toMatchObject({ type: 'error', code: 'ORDER_NOT_STARTABLE', message: expect.stringMatching(/Unknown order/) });
      expect(await refusal({ orderId: order.id })).toMatchObject({ type: 'error', code: 'ORDER_NOT_STARTABLE', message: expect.stringMatching(/has ended \(COMPLETED\)/) });
      expect(await refusal({ orderId: ct.id })).toMatchObject({ type: 'error', code: 'ORDER_NOT_STARTABLE', message: expect.stringMatching(/modality CT/) });
      expect(await refusal({ orderId: '../x' })).toMatchObject({ type: 'error', code: 'BAD_START' });
      expect(await refusal({ orderId: ct.id, patientName: 'X^Y', patientId: 'X' })).toMatchObject({ type: 'error', code: 'BAD_START' });
      expect((await getOrder(ct.id)).status).toBe('SCHEDULED');
      expect((await getOrder(order.id)).status).toBe('COMPLETED');
    } finally {
      client.ws.close();
    }
  });

  it('discontinues the order of a session that stored nothing', async () => {
    const unrecorded = await createOrder(orderBody('NS-ACC-0418', { placerOrderNumber: 'PL-0418' }));
    const client = await LiveClient.connect(url);
    try {
      client.sendJson({ type: 'start', model: 'bright-spot', study: { orderId: unrecorded.id } });
      expect((await client.next((m) => m.type === 'started')).order.status).toBe('IN PROGRESS');
      client.sendJson({ type: 'stop' });
      const stopped = await client.next((m) => m.type === 'stopped');
      expect(stopped.recording).toBeNull();
      expect(stopped.order).toMatchObject({ id: unrecorded.id, status: 'DISCONTINUED' });
    } finally {
      client.ws.close();
    }
    expect((await getOrder(unrecorded.id)).status).toBe('DISCONTINUED');
  });

  it("records the order's state changes in the audit trail as Order Record events of the live interface", async () => {
    const changes = (await auditRecords('order-record')).filter((r) => r.interface === 'live' && r.detail?.['orderId'] === order.id);
    expect(changes.map((r) => [r.route, r.detail?.['status'], r.detail?.['eventActionCode'], r.outcome])).toEqual([
      ['LIVE live-session-start', 'IN PROGRESS', 'U', 0],
      ['LIVE live-session-end', 'COMPLETED', 'U', 0],
    ]);
    expect(changes[1]!.objects).toEqual(expect.arrayContaining([{ patient: 'NS-2026-0417^^^BV-NOISOI' }, { study: order.studyInstanceUid }]));
    expect(changes[1]!.detail).toMatchObject({ accessionNumber: 'NS-ACC-0417' });
    const refused = (await auditRecords('live-session-start')).filter((r) => r.detail?.['code'] === 'ORDER_NOT_STARTABLE');
    expect(refused.length).toBeGreaterThanOrEqual(3);
    expect(refused.every((r) => r.outcome === 4 && typeof r.detail?.['orderId'] === 'string')).toBe(true);
  });
});
