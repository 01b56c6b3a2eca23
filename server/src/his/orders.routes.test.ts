/**
 * The orders REST API end to end (the whole app on embedded storage): a hospital without HL7 creates,
 * changes and cancels orders, the live room and the study browser read the worklist and the orders of
 * studies, patients are updated and merged; refusals are 400/404/409 with messages that say what is
 * wrong, every request and change is in the audit trail, and no patient ID reaches the log.
 * (401/403 for every route: auth/access-control.test.ts walks the route table.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../audit/audit-record.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';

let t: TestApp;

beforeAll(async () => {
  t = await buildTestApp({ PACS_AI_ENABLED: 'false', PACS_HIS_PATIENT_ID_ISSUERS: 'BV-ENDO,VN-CCCD' });
}, 60_000);

afterAll(async () => {
  await t?.close();
});

const json = (method: 'POST' | 'PUT' | 'GET', url: string, body?: unknown) =>
  t.app.inject({ method, url, ...(body === undefined ? {} : { payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });

const patient = { patientId: 'REST-VN-2001', issuer: 'BV-ENDO', name: 'Phạm^Thị Hương', birthDate: '19750320', sex: 'F', otherIds: [{ id: '001175067890', issuer: 'VN-CCCD' }] };
const orderBody = (overrides: Record<string, unknown> = {}) => ({
  patient,
  accessionNumber: 'REST-ACC-1',
  placerOrderNumber: 'REST-PL-1',
  modality: 'ES',
  scheduledStationAeTitle: 'ENDO_ROOM3',
  scheduledStart: '20260112083000',
  requestedProcedureDescription: 'Nội soi dạ dày',
  ...overrides,
});

async function auditRecords(action: AuditRecord['action']): Promise<AuditRecord[]> {
  await t.services.audit!.flush();
  return (await t.services.audit!.store.list({ limit: 100, action })).reverse();
}

describe('orders', () => {
  let id: string;

  it('creates an order with its patient: 201, Location, and the order with a new Study Instance UID', async () => {
    const response = await json('POST', '/his/orders', orderBody());
    expect(response.statusCode).toBe(201);
    const body = response.json();
    expect(body.status).toBe('applied');
    id = body.order.id;
    expect(response.headers.location).toMatch(new RegExp(`^http://localhost(:\\d+)?/his/orders/${id}$`));
    expect(body.order).toMatchObject({
      status: 'SCHEDULED',
      accessionNumber: 'REST-ACC-1',
      requestedProcedureId: 'REST-ACC-1', // defaults to the accession number
      scheduledProcedureStepId: 'REST-ACC-1',
      modality: 'ES',
      patient: { ...patient, otherIds: [{ id: '001175067890', issuer: 'VN-CCCD' }] },
      performedSeries: [],
    });
    expect(body.order.studyInstanceUid).toMatch(/^2\.25\.\d+$/);

    const read = await json('GET', `/his/orders/${id}`);
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual(body.order);
  });

  it("lists it on the station's worklist for its day, matching the Vietnamese name case-insensitively", async () => {
    const worklist = async (query: string) => {
      const response = await json('GET', `/his/worklist?${query}`);
      expect(response.statusCode).toBe(200);
      return (response.json().items as Array<{ id: string }>).map((item) => item.id);
    };
    expect(await worklist('date=20260112&modality=ES&station=ENDO_ROOM3')).toEqual([id]);
    expect(await worklist('date=20260110-20260111')).toEqual([]);
    expect(await worklist('date=20260112-&time=0800-0900')).toEqual([id]);
    expect(await worklist(`patientName=${encodeURIComponent('phạm^thị*')}`)).toEqual([id]);
    expect(await worklist(`patientName=${encodeURIComponent('*HƯƠNG')}`)).toEqual([id]);
    expect(await worklist('patientId=001175067890&issuer=VN-CCCD')).toEqual([id]);
    expect(await worklist('accessionNumber=REST-ACC-1&status=SCHEDULED,IN_PROGRESS')).toEqual([id]);
    expect(await worklist('station=ENDO_ROOM1')).toEqual([]);
  });

  it('changes the order, then cancels it; the orders of its study show the state', async () => {
    const changed = await json('PUT', `/his/orders/${id}`, orderBody({ scheduledStart: '202601121000', scheduledStationAeTitle: 'ENDO_ROOM4' }));
    expect(changed.statusCode).toBe(200);
    expect(changed.json().order).toMatchObject({ id, status: 'SCHEDULED', scheduledStart: '202601121000', scheduledStationAeTitle: 'ENDO_ROOM4' });
    const study = changed.json().order.studyInstanceUid as string;

    const cancelled = await t.app.inject({ method: 'POST', url: `/his/orders/${id}/cancel` });
    expect(cancelled.statusCode).toBe(200);
    expect(cancelled.json().order.status).toBe('CANCELLED');

    const ofStudies = await json('GET', `/his/orders?study=${study}&study=1.2.840.99999`);
    expect(ofStudies.statusCode).toBe(200);
    expect(ofStudies.json().orders.map((o: { id: string; status: string }) => [o.id, o.status])).toEqual([[id, 'CANCELLED']]);
    expect((await json('GET', '/his/worklist?station=ENDO_ROOM4')).json().items).toEqual([]);
  });

  it('audits every request with its Order Record action code, and each change the hospital link made', async () => {
    const requests = (await auditRecords('order-record')).filter((r) => r.route.startsWith('POST /his') || r.route.startsWith('PUT /his') || r.route.startsWith('GET /his'));
    expect(requests.map((r) => [r.route, r.detail?.['eventActionCode'], r.status])).toEqual([
      ['POST /his/orders', 'C', 201],
      ['GET /his/orders/:id', 'R', 200],
      ['PUT /his/orders/:id', 'U', 200],
      ['POST /his/orders/:id/cancel', 'D', 200],
    ]);
    expect(requests[0]).toMatchObject({ interface: 'his', objects: [{ patient: 'REST-VN-2001^^^BV-ENDO' }, { study: expect.stringMatching(/^2\.25\./) }], detail: { orderId: id, accessionNumber: 'REST-ACC-1' } });
    const changes = (await auditRecords('order-record')).filter((r) => r.route.startsWith('REST '));
    expect(changes.map((r) => [r.route, r.detail?.['eventActionCode'], r.detail?.['accessionNumber']])).toEqual([
      ['REST order-new', 'C', 'REST-ACC-1'],
      ['REST order-change', 'U', 'REST-ACC-1'],
      ['REST order-cancel', 'D', 'REST-ACC-1'],
    ]);
    const queries = (await auditRecords('query')).filter((r) => r.interface === 'his');
    expect(queries[0]).toMatchObject({ route: 'GET /his/worklist', query: { level: 'worklist', keys: { date: '20260112', modality: 'ES', station: 'ENDO_ROOM3' } } });
    // And the ATNA view of one: Order Record (110109) with the route's action code.
    await t.services.audit!.flush();
    const one = await json('GET', `/admin/audit/${requests[0]!.id}`);
    expect(one.json().atna).toEqual({ eventId: { code: '110109', codeSystemName: 'DCM', meaning: 'Order Record' }, eventActionCode: 'C' });
    const xml = await t.app.inject({ url: `/admin/audit/${requests[0]!.id}`, headers: { accept: 'application/xml' } });
    expect(xml.body).toContain('<EventIdentification EventActionCode="C"');
    expect(xml.body).toContain('ParticipantObjectID="REST-VN-2001^^^BV-ENDO" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"');
  });
});

describe('refused requests say what is wrong', () => {
  it('400 for a body that misses a field or has a wrong type, naming the field', async () => {
    const { accessionNumber: _left, ...noAccession } = orderBody({ accessionNumber: 'X' });
    const missing = await json('POST', '/his/orders', noAccession);
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error).toEqual({ code: 'BAD_REQUEST', message: 'Body field "accessionNumber": the Accession Number (0008,0050), 1 to 16 characters' });
    const wrongType = await json('POST', '/his/orders', orderBody({ patient: 'REST-VN-2001' }));
    expect(wrongType.statusCode).toBe(400);
    expect(wrongType.json().error.message).toMatch(/^Body field "patient": must be a patient \{"patientId", "issuer"/);
  });

  it('400 HIS_INVALID for values the hospital link refuses, every field named, no value quoted', async () => {
    const response = await json('POST', '/his/orders', orderBody({ accessionNumber: 'REST-ACC-12345678', scheduledStart: '2026-01-12', patient: { ...patient, issuer: 'OTHER-HOSPITAL', sex: 'X' } }));
    expect(response.statusCode).toBe(400);
    const { code, message } = response.json().error;
    expect(code).toBe('HIS_INVALID');
    expect(message).toBe(
      'New order refused: patient.issuer is not one of the configured issuers (PACS_HIS_PATIENT_ID_ISSUERS); patient.sex must be M, F or O; ' +
        'order.accessionNumber must be at most 16 characters; order.scheduledStart must be a date and time YYYYMMDD[HHMM[SS]]',
    );
  });

  it('400 for worklist and order queries that are malformed', async () => {
    const badDate = await json('GET', '/his/worklist?date=2026-01-12');
    expect(badDate.statusCode).toBe(400);
    expect(badDate.json().error).toEqual({ code: 'BAD_QUERY', message: 'Query parameter "date": must be a date YYYYMMDD or a range YYYYMMDD-YYYYMMDD (either end may be left open)' });
    expect((await json('GET', '/his/worklist?date=20261332')).json().error.code).toBe('BAD_QUERY');
    const badStatus = await json('GET', '/his/worklist?status=DONE');
    expect(badStatus.json().error.message).toMatch(/^Query parameter "status": must be a comma-separated list of SCHEDULED, IN PROGRESS/);
    const noStudy = await json('GET', '/his/orders');
    expect(noStudy.statusCode).toBe(400);
    expect(noStudy.json().error.message).toMatch(/^Query parameter "study": is required/);
    expect((await json('GET', '/his/orders?study=not-a-uid')).statusCode).toBe(400);
  });

  it('404 for an unknown order, 409 for a second order with the same accession number', async () => {
    expect((await json('GET', '/his/orders/no-such-order')).json().error.code).toBe('HIS_UNKNOWN_ORDER');
    expect((await json('PUT', '/his/orders/no-such-order', orderBody())).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'POST', url: '/his/orders/no-such-order/cancel' })).statusCode).toBe(404);
    const first = await json('POST', '/his/orders', orderBody({ accessionNumber: 'REST-ACC-2', placerOrderNumber: null }));
    expect(first.statusCode).toBe(201);
    const second = await json('POST', '/his/orders', orderBody({ accessionNumber: 'REST-ACC-2', placerOrderNumber: null }));
    expect(second.statusCode).toBe(409);
    expect(second.json().error).toEqual({ code: 'HIS_CONFLICT', message: 'New order refused: an order with this accession number exists already' });
  });
});

describe('patients', () => {
  const prior = { patientId: 'REST-VN-2002', issuer: 'BV-ENDO' };

  it('updates a patient (the path names issuer and ID) and merges it into another; its orders move', async () => {
    const updated = await json('PUT', `/his/patients/BV-ENDO/${prior.patientId}`, { name: 'Hoàng^Văn Nam', sex: 'M' });
    expect(updated.statusCode).toBe(200);
    expect(updated.json()).toEqual({ status: 'applied', patient: { ...prior, name: 'Hoàng^Văn Nam', birthDate: null, sex: 'M', otherIds: [] }, studiesUpdated: [] });
    const placed = await json('POST', '/his/orders', orderBody({ patient: prior, accessionNumber: 'REST-ACC-3', placerOrderNumber: 'REST-PL-3' }));
    expect(placed.statusCode).toBe(201);

    const merged = await json('POST', '/his/patients/merge', { prior, surviving: patient });
    expect(merged.statusCode).toBe(200);
    expect(merged.json().patient.patientId).toBe(patient.patientId);
    expect((await json('GET', `/his/orders/${placed.json().order.id}`)).json().patient.patientId).toBe(patient.patientId);
    expect((await json('GET', `/his/worklist?patientId=${prior.patientId}`)).json().items).toEqual([]);

    const again = await json('POST', '/his/patients/merge', { prior, surviving: patient });
    expect(again.statusCode).toBe(404);
    expect(again.json().error).toEqual({ code: 'HIS_UNKNOWN_PATIENT', message: 'Patient merge refused: the prior patient is not known to the hospital link' });

    const records = await auditRecords('patient-record');
    // The hospital link's changes: the first order created its patient; an order naming a known patient by ID alone changed nothing.
    expect(records.filter((r) => r.route.startsWith('REST ')).map((r) => [r.detail?.['command'], r.detail?.['eventActionCode'], r.objects[0]?.patient])).toEqual([
      ['order-new', 'C', 'REST-VN-2001^^^BV-ENDO'],
      ['patient-upsert', 'C', 'REST-VN-2002^^^BV-ENDO'],
      ['patient-merge', 'D', 'REST-VN-2002^^^BV-ENDO'],
      ['patient-merge', 'U', 'REST-VN-2001^^^BV-ENDO'],
    ]);
    // The requests: the update as declared (U), the merge (D), the refused second merge too.
    expect(records.filter((r) => !r.route.startsWith('REST ')).map((r) => [r.route, r.detail?.['eventActionCode'], r.status])).toEqual([
      ['PUT /his/patients/:issuer/:id', 'U', 200],
      ['POST /his/patients/merge', 'D', 200],
      ['POST /his/patients/merge', 'D', 404],
    ]);
  });

  it('keeps patient IDs out of the log, also where the URL path carries one', () => {
    const log = t.logLines.join('');
    expect(log).toContain('/his/patients/{issuer}/{id}');
    for (const value of ['REST-VN-2001', 'REST-VN-2002', '001175067890', 'Phạm', 'Hoàng']) expect(log).not.toContain(value);
  });
});
