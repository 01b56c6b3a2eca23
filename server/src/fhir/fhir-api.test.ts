/**
 * The FHIR R4 API end to end (the whole app on embedded storage, listening on loopback): a patient and
 * two orders from the hospital link (REST), three studies stored through the archive (two coerced to
 * the patient by accession number, one of a patient only the index knows), a radiology report signed
 * and then amended. Patient, ImagingStudy and DiagnosticReport are read and searched (identifier with
 * system incl. the national ID, patient, accession, date ranges, `_lastUpdated`, `_count` paging with
 * Bundle links on the configured public base URL), errors are OperationOutcomes, every resource the
 * API returns validates against the official R4 definitions (test-support/fhir-validate.ts), a real
 * FHIR client library (npm `fhir-kit-client`) reads, searches and pages over HTTP, and reads and
 * searches are in the audit trail.
 */
import { createHash } from 'node:crypto';
import { Client } from 'fhir-kit-client';
import type { Bundle, DiagnosticReport, ImagingStudy, OperationOutcome, Patient } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../audit/audit-record.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { fhirProblems, resourcesOf } from '../test-support/fhir-validate.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { freePort } from '../test-support/spawn-server.js';

const MRN = 'https://bvbm.example.vn/sid/mrn';
const CCCD = 'https://moh.example.vn/sid/cccd';
const ACCESSION = 'https://bvbm.example.vn/sid/accession';
const PLACER = 'https://his.bvbm.example.vn/sid/placer';
const REPORTS = 'https://bvbm.example.vn/sid/report';

let t: TestApp;
let base: string;
const studyA = newUid();
const studyB = newUid();
const studyD = newUid();
const seriesA1 = newUid();
const seriesA2 = newUid();
let patientId: string;
let reportId: string;
/** Every FHIR resource any response carried, validated at the end. */
const returned: Array<{ url: string; resource: object }> = [];

async function fhir<T = Bundle>(url: string, init: { method?: 'GET' | 'POST' | 'PUT'; headers?: Record<string, string>; payload?: string } = {}): Promise<{ status: number; body: T; headers: Record<string, unknown> }> {
  const response = await t.app.inject({ method: init.method ?? 'GET', url, ...(init.headers === undefined ? {} : { headers: init.headers }), ...(init.payload === undefined ? {} : { payload: init.payload }) });
  const body = response.json() as T & { resourceType?: string };
  expect(response.headers['content-type']).toBe('application/fhir+json; charset=utf-8');
  for (const resource of resourcesOf(body as never)) returned.push({ url, resource });
  return { status: response.statusCode, body, headers: response.headers };
}

async function store(options: Parameters<typeof makeInstance>[0]): Promise<void> {
  const bytes = makeInstance(options);
  const result = await (await t.services.archive.scanAndStore((async function* () { yield bytes; })())).completion;
  expect(result.ok).toBe(true);
}

const actor = { subject: 'doc-7', name: 'BS. Lê Thị Mai', permissions: new Set(['read', 'report', 'sign']) };

/** Signs; the report service asks to sign again when storing the SR and PDF in the study failed (report-service.ts). */
async function signed(id: string): Promise<void> {
  try {
    await t.services.reports!.service.sign(id, undefined, actor);
  } catch {
    await t.services.reports!.service.sign(id, undefined, actor);
  }
}

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  t = await buildTestApp({
    PACS_AI_ENABLED: 'false',
    PACS_PUBLIC_BASE_URL: base,
    PACS_HIS_PATIENT_ID_ISSUER: 'BVBM',
    PACS_HIS_NATIONAL_ID_ISSUER: 'VNM-CCCD',
    PACS_FHIR_PATIENT_ID_SYSTEM: MRN,
    PACS_FHIR_NATIONAL_ID_SYSTEM: CCCD,
    PACS_FHIR_ACCESSION_SYSTEM: ACCESSION,
    PACS_FHIR_PLACER_ORDER_SYSTEM: PLACER,
    PACS_FHIR_REPORT_ID_SYSTEM: REPORTS,
  });
  await t.app.listen({ port, host: '127.0.0.1' });
  const patient = { patientId: 'BN-7001', issuer: 'BVBM', name: 'Trần^Văn Bình', birthDate: '19800115', sex: 'M', otherIds: [{ id: '079080001234', issuer: 'VNM-CCCD' }] };
  for (const order of [
    { accessionNumber: 'ACC-7001', placerOrderNumber: 'PL-7001', studyInstanceUid: studyA, modality: 'CT', requestedProcedureCode: { value: '24627-2', scheme: 'LN', meaning: 'CT Chest' } },
    { accessionNumber: 'ACC-7002', studyInstanceUid: studyD, modality: 'CT' },
  ]) {
    const response = await t.app.inject({ method: 'POST', url: '/his/orders', payload: { patient, scheduledStart: '20260110080000', ...order } });
    expect(response.statusCode).toBe(201);
  }
  // The modality sends its own idea of the patient; the accession number makes the order's identity the one of record.
  await store({ studyInstanceUid: studyA, seriesInstanceUid: seriesA1, patientId: 'BN-7001', patientName: 'TRAN^VAN BINH', accessionNumber: 'ACC-7001', modality: 'CT', studyDate: '20260110' });
  await store({ studyInstanceUid: studyA, seriesInstanceUid: seriesA1, patientId: 'BN-7001', patientName: 'TRAN^VAN BINH', accessionNumber: 'ACC-7001', modality: 'CT', studyDate: '20260110' });
  await store({ studyInstanceUid: studyA, seriesInstanceUid: seriesA2, patientId: 'BN-7001', patientName: 'TRAN^VAN BINH', accessionNumber: 'ACC-7001', modality: 'SR', studyDate: '20260110' });
  await store({ studyInstanceUid: studyD, patientId: 'BN-7001', accessionNumber: 'ACC-7002', modality: 'CT', studyDate: '20260120' });
  await store({ studyInstanceUid: studyB, patientId: 'IDX-55', patientName: 'LY^THU', accessionNumber: 'ACC-OTHER', modality: 'MR', studyDate: '20250601' });

  const reports = t.services.reports!.service;
  const created = await reports.create(
    {
      studyInstanceUid: studyA,
      kind: 'radiology',
      content: { kind: 'radiology', procedure: 'CT ngực', impression: 'Nốt phổi thùy trên phải 6 mm.', findingCodes: [{ value: '427359005', scheme: 'SCT', meaning: 'Solitary nodule of lung' }] },
    },
    actor,
  );
  reportId = created.report.id;
  await signed(reportId);
}, 120_000);

afterAll(async () => {
  await t?.close();
});

describe('Patient', () => {
  it('is found by the national citizen ID with its system, by the record number, and by value alone', async () => {
    const byNational = await fhir(`/fhir/Patient?identifier=${encodeURIComponent(`${CCCD}|079080001234`)}`);
    expect(byNational.status).toBe(200);
    expect(byNational.body).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: 1 });
    const patient = byNational.body.entry![0]!.resource as Patient;
    patientId = patient.id!;
    expect(byNational.body.entry![0]!.fullUrl).toBe(`${base}/fhir/Patient/${patientId}`);
    expect(patient.identifier).toEqual([
      { use: 'usual', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical record number' }] }, system: MRN, value: 'BN-7001' },
      { use: 'official', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'NI', display: 'National unique individual identifier' }] }, system: CCCD, value: '079080001234' },
    ]);
    // The hospital link's identity, not what the modality wrote.
    expect(patient.name).toEqual([{ use: 'official', text: 'Trần Văn Bình', family: 'Trần', given: ['Văn Bình'] }]);
    expect(patient.gender).toBe('male');
    expect(patient.birthDate).toBe('1980-01-15');

    for (const query of [`${MRN}|BN-7001`, 'BN-7001', '079080001234', `${CCCD}|079080001234,${MRN}|nobody`]) {
      const found = await fhir(`/fhir/Patient?identifier=${encodeURIComponent(query)}`);
      expect(found.body.total, query).toBe(1);
      expect((found.body.entry![0]!.resource as Patient).id).toBe(patientId);
    }
    expect((await fhir(`/fhir/Patient?identifier=${encodeURIComponent(`${CCCD}|BN-7001`)}`)).body.total).toBe(0);
    expect((await fhir(`/fhir/Patient?identifier=${encodeURIComponent(`${MRN}|079080001234`)}`)).body.total).toBe(0);
  });

  it('is read by id; a patient only the index knows (sent without issuer) too', async () => {
    const read = await fhir<Patient>(`/fhir/Patient/${patientId}`);
    expect(read.status).toBe(200);
    expect(read.body.id).toBe(patientId);
    const other = await fhir(`/fhir/Patient?identifier=IDX-55`);
    expect(other.body.total).toBe(1);
    const otherPatient = other.body.entry![0]!.resource as Patient;
    // Sent without an issuer: taken as a hospital record number.
    expect(otherPatient.identifier).toEqual([{ use: 'usual', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical record number' }] }, system: MRN, value: 'IDX-55' }]);
    expect((await fhir<Patient>(`/fhir/Patient/${otherPatient.id}`)).body.name?.[0]?.family).toBe('LY');
  });

  it('refuses a search without identifier, and answers 404 with an OperationOutcome for an unknown id', async () => {
    const all = await fhir<OperationOutcome>('/fhir/Patient');
    expect(all.status).toBe(400);
    expect(all.body).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid', expression: ['identifier'] }] });
    const unknown = await fhir<OperationOutcome>('/fhir/Patient/pzzzzzzzz');
    expect(unknown.status).toBe(404);
    expect(unknown.body.issue[0]).toMatchObject({ severity: 'error', code: 'not-found' });
  });
});

describe('ImagingStudy', () => {
  it('has the study UID and accession number, the order as basedOn, the DICOMweb Endpoint, series and instances', async () => {
    const read = await fhir<ImagingStudy>(`/fhir/ImagingStudy/${studyA}`);
    expect(read.status).toBe(200);
    const s = read.body;
    expect(s.identifier).toEqual([
      { use: 'official', system: 'urn:dicom:uid', value: `urn:oid:${studyA}` },
      { use: 'usual', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'ACSN', display: 'Accession ID' }] }, system: ACCESSION, value: 'ACC-7001' },
    ]);
    expect(s.status).toBe('available');
    expect(s.subject).toEqual({ reference: `Patient/${patientId}` });
    expect(s.basedOn).toEqual([{ type: 'ServiceRequest', identifier: { type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PLAC', display: 'Placer Identifier' }] }, system: PLACER, value: 'PL-7001' } }]);
    expect(s.procedureCode).toEqual([{ coding: [{ system: 'http://loinc.org', code: '24627-2', display: 'CT Chest' }], text: 'CT Chest' }]);
    expect(s.endpoint).toEqual([{ reference: '#dicomweb' }]);
    expect(s.contained).toEqual([
      expect.objectContaining({ resourceType: 'Endpoint', id: 'dicomweb', status: 'active', address: `${base}/dicomweb`, connectionType: expect.objectContaining({ code: 'dicom-wado-rs' }) }),
    ]);
    expect(s.started).toMatch(/^2026-01-10T10:15:00[+-]\d{2}:\d{2}$/);
    // The CT and SR series, and the signed report's SR and Encapsulated PDF (DOC).
    expect(s.modality?.map((m) => m.code).sort()).toEqual(['CT', 'DOC', 'SR']);
    const ct = s.series!.find((x) => x.uid === seriesA1)!;
    expect(ct).toMatchObject({ modality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'CT' }, numberOfInstances: 2 });
    expect(ct.instance).toHaveLength(2);
    expect(ct.instance![0]!.sopClass).toEqual({ system: 'urn:ietf:rfc:3986', code: 'urn:oid:1.2.840.10008.5.1.4.1.1.7' });
    expect(s.numberOfInstances).toBe(s.series!.reduce((n, x) => n + x.numberOfInstances!, 0));
    expect(s.meta?.lastUpdated).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  it('is searched by patient with _count paging: Bundle total and self / next / previous links on the public base URL', async () => {
    const first = await fhir(`/fhir/ImagingStudy?patient=Patient/${patientId}&_count=1`);
    expect(first.body.total).toBe(2);
    expect(first.body.entry).toHaveLength(1);
    expect((first.body.entry![0]!.resource as ImagingStudy).id).toBe(studyD); // newest study date first
    const link = (bundle: Bundle, relation: string) => bundle.link?.find((l) => l.relation === relation)?.url;
    expect(link(first.body, 'self')).toBe(`${base}/fhir/ImagingStudy?patient=Patient%2F${patientId}&_count=1`);
    const next = link(first.body, 'next')!;
    expect(next).toBe(`${base}/fhir/ImagingStudy?patient=Patient%2F${patientId}&_count=1&_offset=1`);
    const second = await fhir(next.slice(base.length));
    expect((second.body.entry![0]!.resource as ImagingStudy).id).toBe(studyA);
    expect(link(second.body, 'next')).toBeUndefined();
    expect(link(second.body, 'previous')).toBe(`${base}/fhir/ImagingStudy?patient=Patient%2F${patientId}&_count=1`);
    // subject= is the same search; _count=0 gives the total only.
    const countOnly = await fhir(`/fhir/ImagingStudy?subject=${patientId}&_count=0`);
    expect(countOnly.body.total).toBe(2);
    expect(countOnly.body.entry).toBeUndefined();
  });

  it('is searched by Study Instance UID, by accession number (with or without system), by date range and by _lastUpdated', async () => {
    const ids = async (query: string) => ((await fhir(`/fhir/ImagingStudy?${query}`)).body.entry ?? []).map((e) => (e.resource as ImagingStudy).id).sort();
    expect(await ids(`identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${studyA}`)}`)).toEqual([studyA]);
    expect(await ids(`identifier=${encodeURIComponent(`${ACCESSION}|ACC-7001`)}`)).toEqual([studyA]);
    expect(await ids('identifier=ACC-7002')).toEqual([studyD]);
    expect(await ids(`identifier=${encodeURIComponent('https://elsewhere.example/acc|ACC-7001')}`)).toEqual([]);
    expect(await ids('started=ge2026-01-01&started=le2026-01-31')).toEqual([studyA, studyD].sort());
    expect(await ids('started=2026-01-10')).toEqual([studyA]);
    expect(await ids('started=lt2026')).toEqual([studyB]);
    expect(await ids(`patient=${patientId}&started=gt2026-01-15`)).toEqual([studyD]);
    const today = new Date().toISOString().slice(0, 10);
    expect(await ids(`_lastUpdated=ge${today}`)).toEqual([studyA, studyB, studyD].sort());
    expect(await ids('_lastUpdated=lt2000-01-01')).toEqual([]);
    expect(await ids(`_id=${studyB}`)).toEqual([studyB]);
  });

  it('answers mistakes with OperationOutcomes: bad dates 400, unknown study 404, XML 406, strict handling of unknown parameters', async () => {
    const bad = await fhir<OperationOutcome>('/fhir/ImagingStudy?started=yesterday');
    expect(bad.status).toBe(400);
    expect(bad.body.issue[0]).toMatchObject({ severity: 'error', code: 'invalid', expression: ['started'] });
    expect((await fhir<OperationOutcome>('/fhir/ImagingStudy?_count=many')).status).toBe(400);
    expect((await fhir<OperationOutcome>('/fhir/ImagingStudy/1.2.3.999')).status).toBe(404);
    expect((await fhir<OperationOutcome>('/fhir/ImagingStudy/not..a-uid')).status).toBe(404);
    const xml = await fhir<OperationOutcome>('/fhir/ImagingStudy?_format=xml');
    expect(xml.status).toBe(406);
    expect(xml.body.issue[0]!.code).toBe('not-supported');
    expect((await fhir<OperationOutcome>('/fhir/metadata', { headers: { accept: 'application/fhir+xml' } })).status).toBe(406);
    // Lenient by default: an unknown parameter is ignored and left out of the self link.
    const lenient = await fhir(`/fhir/ImagingStudy?identifier=ACC-7002&color=blue`);
    expect(lenient.body.total).toBe(1);
    expect(lenient.body.link![0]!.url).not.toContain('color');
    const strict = await fhir<OperationOutcome>(`/fhir/ImagingStudy?identifier=ACC-7002&color=blue`, { headers: { prefer: 'handling=strict' } });
    expect(strict.status).toBe(400);
    expect(strict.body.issue[0]!.expression).toEqual(['color']);
    const other = await fhir<OperationOutcome>('/fhir/Observation?patient=x');
    expect(other.status).toBe(404);
    expect(other.body.resourceType).toBe('OperationOutcome');
    const write = await fhir<OperationOutcome>(`/fhir/Patient/${patientId}`, { method: 'PUT', headers: { 'content-type': 'application/fhir+json' }, payload: '{"resourceType":"Patient"}' });
    expect(write.status).toBeGreaterThanOrEqual(400);
    expect(write.status).toBeLessThan(500);
    expect(write.body.resourceType).toBe('OperationOutcome');
  });

  it('is searched by POST _search with a form body', async () => {
    const response = await fhir(`/fhir/ImagingStudy/_search`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `patient=${patientId}&started=ge2026-01-15` });
    expect(response.status).toBe(200);
    expect(response.body.total).toBe(1);
  });
});

describe('DiagnosticReport', () => {
  it('is the signed report: status, LOINC code, category, subject, study, conclusion, coded conclusion, the PDF with its hash', async () => {
    const read = await fhir<DiagnosticReport>(`/fhir/DiagnosticReport/${reportId}`);
    expect(read.status).toBe(200);
    const r = read.body;
    expect(r.status).toBe('final');
    expect(r.identifier).toEqual([
      { use: 'official', system: REPORTS, value: reportId },
      { use: 'secondary', system: `${REPORTS}-version`, value: `${reportId}.1` },
    ]);
    expect(r.code.coding).toEqual([{ system: 'http://loinc.org', code: '18748-4', display: 'Diagnostic Imaging Report' }]);
    expect(r.category).toEqual([{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'RAD', display: 'Radiology' }] }]);
    expect(r.subject).toEqual({ reference: `Patient/${patientId}` });
    expect(r.imagingStudy).toEqual([{ reference: `ImagingStudy/${studyA}` }]);
    expect(r.basedOn?.[0]?.identifier?.value).toBe('PL-7001');
    expect(r.effectiveDateTime).toMatch(/^2026-01-10T10:15:00/);
    expect(r.resultsInterpreter).toEqual([{ display: 'BS. Lê Thị Mai' }]);
    expect(r.conclusion).toBe('Nốt phổi thùy trên phải 6 mm.');
    expect(r.conclusionCode).toEqual([{ coding: [{ system: 'http://snomed.info/sct', code: '427359005', display: 'Solitary nodule of lung' }], text: 'Solitary nodule of lung' }]);
    const form = r.presentedForm![0]!;
    expect(form).toMatchObject({ contentType: 'application/pdf', url: `${base}/reports/${reportId}/versions/1/pdf`, title: 'Diagnostic Imaging Report (v1)' });
    const pdf = await t.app.inject({ method: 'GET', url: `/reports/${reportId}/versions/1/pdf` });
    expect(pdf.statusCode).toBe(200);
    expect(form.hash).toBe(createHash('sha1').update(pdf.rawPayload).digest('base64'));
    expect(form.size).toBe(pdf.rawPayload.length);
  });

  it('is searched by patient and date, identifier, status and code; a search without patient or identifier is refused', async () => {
    const ids = async (query: string) => ((await fhir(`/fhir/DiagnosticReport?${query}`)).body.entry ?? []).map((e) => (e.resource as DiagnosticReport).id);
    expect(await ids(`patient=Patient/${patientId}`)).toEqual([reportId]);
    expect(await ids(`patient=${patientId}&date=ge2026-01-01&date=le2026-01-31`)).toEqual([reportId]);
    expect(await ids(`patient=${patientId}&date=lt2026`)).toEqual([]);
    expect(await ids(`identifier=${encodeURIComponent(`${REPORTS}|${reportId}`)}`)).toEqual([reportId]);
    expect(await ids(`patient=${patientId}&status=final&code=${encodeURIComponent('http://loinc.org|18748-4')}`)).toEqual([reportId]);
    expect(await ids(`patient=${patientId}&code=11526-1`)).toEqual([]);
    expect(await ids(`patient=${patientId}&_lastUpdated=ge${new Date().toISOString().slice(0, 10)}`)).toEqual([reportId]);
    const refused = await fhir<OperationOutcome>('/fhir/DiagnosticReport?date=ge2026-01-01');
    expect(refused.status).toBe(400);
    expect((await fhir<OperationOutcome>('/fhir/DiagnosticReport/no-such-report')).status).toBe(404);
  });

  it('is amended when a later version is signed; a draft is no DiagnosticReport', async () => {
    const reports = t.services.reports!.service;
    const draft = await reports.create({ studyInstanceUid: studyD, kind: 'radiology', content: { kind: 'radiology', impression: 'Bản nháp' } }, actor);
    expect((await fhir<OperationOutcome>(`/fhir/DiagnosticReport/${draft.report.id}`)).status).toBe(404);
    await reports.amend(reportId, 'Bổ sung kích thước', actor);
    const latest = (await reports.get(reportId)).versions.at(-1)!;
    await reports.update(reportId, { ...latest.content, kind: 'radiology', impression: 'Nốt phổi thùy trên phải 7 mm.' } as never, undefined, actor);
    // While the amendment is a draft, version 1 is in force.
    expect((await fhir<DiagnosticReport>(`/fhir/DiagnosticReport/${reportId}`)).body.status).toBe('final');
    await signed(reportId);
    const amended = (await fhir<DiagnosticReport>(`/fhir/DiagnosticReport/${reportId}`)).body;
    expect(amended.status).toBe('amended');
    expect(amended.conclusion).toBe('Nốt phổi thùy trên phải 7 mm.');
    expect(amended.identifier![1]!.value).toBe(`${reportId}.2`);
    expect(amended.presentedForm![0]!.url).toBe(`${base}/reports/${reportId}/versions/2/pdf`);
  });
});

describe('the API as a whole', () => {
  it('publishes its CapabilityStatement without sign-in', async () => {
    const response = await fhir<{ resourceType: string; fhirVersion: string; rest: Array<{ resource: Array<{ type: string }> }> }>('/fhir/metadata');
    expect(response.status).toBe(200);
    expect(response.body.resourceType).toBe('CapabilityStatement');
    expect(response.body.fhirVersion).toBe('4.0.1');
    expect(response.body.rest[0]!.resource.map((r) => r.type)).toEqual(['Patient', 'ImagingStudy', 'DiagnosticReport']);
  });

  it('is read, searched and paged by a real FHIR client library (fhir-kit-client) over HTTP', async () => {
    const client = new Client({ baseUrl: `${base}/fhir` });
    const capability = (await client.capabilityStatement()) as unknown as { fhirVersion: string };
    expect(capability.fhirVersion).toBe('4.0.1');
    const patient = (await client.read({ resourceType: 'Patient', id: patientId })) as unknown as Patient;
    expect(patient.identifier?.[0]?.value).toBe('BN-7001');
    const byNational = (await client.search({ resourceType: 'Patient', searchParams: { identifier: `${CCCD}|079080001234` } })) as unknown as Bundle;
    expect(byNational.entry?.[0]?.resource?.id).toBe(patientId);
    const page1 = (await client.search({ resourceType: 'ImagingStudy', searchParams: { patient: `Patient/${patientId}`, _count: 1 } })) as unknown as Bundle;
    expect(page1.total).toBe(2);
    const page2 = (await client.nextPage({ bundle: page1 as never })) as unknown as Bundle;
    expect(page2.entry?.[0]?.resource?.id).toBe(studyA);
    expect(client.nextPage({ bundle: page2 as never })).toBeUndefined();
    const study = (await client.read({ resourceType: 'ImagingStudy', id: studyA })) as unknown as ImagingStudy;
    expect(study.subject.reference).toBe(`Patient/${patientId}`);
    const reports = (await client.search({ resourceType: 'DiagnosticReport', searchParams: { patient: patientId } })) as unknown as Bundle;
    expect(reports.entry?.map((e) => e.resource?.id)).toEqual([reportId]);
    await expect(client.read({ resourceType: 'ImagingStudy', id: '1.2.3.4.5' })).rejects.toMatchObject({ response: { status: 404 } });
  });

  it('returned only resources that validate against the official R4 definitions', () => {
    const kinds = new Set(returned.map((r) => (r.resource as { resourceType: string }).resourceType));
    expect([...kinds].sort()).toEqual(['Bundle', 'CapabilityStatement', 'DiagnosticReport', 'ImagingStudy', 'OperationOutcome', 'Patient']);
    const invalid = returned.map((r) => ({ url: r.url, problems: fhirProblems(r.resource) })).filter((r) => r.problems.length > 0);
    expect(invalid).toEqual([]);
    expect(returned.length).toBeGreaterThan(60);
  });

  it('has a validator that does refuse what R4 does not allow', () => {
    const study = returned.find((r) => (r.resource as { resourceType: string }).resourceType === 'ImagingStudy')!.resource as ImagingStudy;
    const patient = returned.find((r) => (r.resource as { resourceType: string }).resourceType === 'Patient')!.resource as Patient;
    expect(fhirProblems({ ...study, status: undefined })).not.toEqual([]); // status 1..1
    expect(fhirProblems({ ...study, series: [{ ...study.series![0]!, uid: undefined }] })).not.toEqual([]);
    expect(fhirProblems({ ...patient, gender: 'M' })).not.toEqual([]); // required binding (the JSON schema's enum)
    expect(fhirProblems({ ...patient, birthDate: '19800115' })).not.toEqual([]); // date format
    expect(fhirProblems({ ...patient, nickname: 'x' })).not.toEqual([]); // unknown property
  });

  it('records reads as retrieve and searches as query, interface fhir, naming the study and the patient', async () => {
    await t.services.audit!.flush();
    const records = (await t.services.audit!.store.list({ limit: 1000 })) as AuditRecord[];
    const fhirRecords = records.filter((r) => r.interface === 'fhir');
    const studyRead = fhirRecords.find((r) => r.action === 'retrieve' && r.route === 'GET /fhir/ImagingStudy/:id' && r.objects.some((o) => o.study === studyA));
    expect(studyRead).toBeDefined();
    const patientRead = fhirRecords.find((r) => r.action === 'retrieve' && r.route === 'GET /fhir/Patient/:id' && r.status === 200);
    expect(patientRead?.objects).toContainEqual({ patient: 'BN-7001^^^BVBM' });
    const search = fhirRecords.find((r) => r.action === 'query' && r.query?.level === 'ImagingStudy' && r.query.keys['started'] !== undefined);
    expect(search).toBeDefined();
    expect(fhirRecords.some((r) => r.route.startsWith('GET /fhir/metadata'))).toBe(false); // public
  });
});
