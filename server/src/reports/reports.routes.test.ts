/**
 * Reports end to end over HTTP with sign-in on (a real issuer on loopback): a colonoscopy study with a
 * live recording and its AI detection SR → an endoscopy report drafted by a resident with two AI findings
 * accepted and one rejected → the resident may not sign, the physician signs → the Comprehensive SR and
 * the Encapsulated PDF are in the study (QIDO-RS, WADO-RS), Debian's dciodvfy (dicom3tools) reports no
 * error on either, Debian's pdftotext finds the Vietnamese patient name exactly in the PDF → an
 * amendment keeps version 1 readable and superseded, and its SR names version 1's as predecessor. Every
 * request is in the audit trail.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../audit/audit-record.js';
import type { EndoscopyContent, ReportJson } from '../contracts/reports.js';
import { readEncapsulatedPdf } from '../dicom/encapsulated-pdf.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { dciodvfyErrors, requireDciodvfy } from '../test-support/dciodvfy.js';
import { runTool } from '../test-support/dimse-peer.js';
import { storeEndoscopyStudy, type EndoscopyStudy } from '../test-support/endoscopy-study.js';
import { splitMultipart } from '../test-support/split-multipart.js';
import { authEnv, startTestIssuer, type TestIssuer } from '../test-support/test-issuer.js';
import { contentSha256 } from './report-content.js';

dcmjs.log.setLevel('silent');
const { DicomMessage, DicomMetaDictionary } = dcmjs.data;

const PDFTOTEXT = '/usr/bin/pdftotext';
requireDciodvfy();
if (!existsSync(PDFTOTEXT)) throw new Error("poppler-utils' pdftotext is not installed; install it with: apt-get install -y --no-install-recommends poppler-utils");

const PATIENT = 'Nguyễn^Thị Hồng Nhung';
const PATIENT_PRINTED = 'Nguyễn Thị Hồng Nhung';
const COMPREHENSIVE_SR = '1.2.840.10008.5.1.4.1.1.88.33';
const ENCAPSULATED_PDF = '1.2.840.10008.5.1.4.1.1.104.1';

let issuer: TestIssuer;
let t: TestApp;
let work: string;
let study: EndoscopyStudy;
const tokens: Record<'resident' | 'physician' | 'reader', string> = { resident: '', physician: '', reader: '' };

beforeAll(async () => {
  issuer = await startTestIssuer();
  t = await buildTestApp(authEnv(issuer));
  work = await mkdtemp(path.join(os.tmpdir(), 'reports-e2e-'));
  study = await storeEndoscopyStudy(t.services.archive, { patientName: PATIENT });
  tokens.resident = await issuer.token({ sub: 'res-1', roles: ['resident'], extraClaims: { name: 'BS. Phạm Quốc Huy' } });
  tokens.physician = await issuer.token({ sub: 'doc-1', roles: ['physician'], extraClaims: { name: 'BS. Lê Văn Minh' } });
  tokens.reader = await issuer.token({ sub: 'reader-1', roles: ['reader'] });
}, 60_000);

afterAll(async () => {
  await t?.close();
  await issuer?.close();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

function send(as: keyof typeof tokens, method: 'GET' | 'POST' | 'PUT', url: string, body?: unknown) {
  return t.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${tokens[as]}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
}

/** The instance as stored (WADO-RS, the stored transfer syntax). */
async function retrieve(series: string, sop: string): Promise<Buffer> {
  const res = await t.app.inject({
    url: `/dicomweb/studies/${study.studyInstanceUid}/series/${series}/instances/${sop}`,
    headers: { authorization: `Bearer ${tokens.reader}`, accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
  });
  expect(res.statusCode).toBe(200);
  const parts = splitMultipart(res.rawPayload, res.headers['content-type']);
  expect(parts).toHaveLength(1);
  return parts[0]!.body;
}

async function pdfText(pdf: Buffer, name: string): Promise<string> {
  const at = path.join(work, name);
  await writeFile(at, pdf);
  const result = await runTool(PDFTOTEXT, ['-enc', 'UTF-8', at, '-']);
  expect(result.code).toBe(0);
  return result.stdout;
}

type Item = Record<string, unknown>;
const naturalized = (part10: Buffer): Item =>
  DicomMetaDictionary.naturalizeDataset(DicomMessage.readFile(part10.buffer.slice(part10.byteOffset, part10.byteOffset + part10.length) as ArrayBuffer).dict) as Item;
const list = (value: unknown): Item[] => (Array.isArray(value) ? (value as Item[]) : value === undefined ? [] : [value as Item]);
/** Every content item of an SR tree, depth first. */
function items(node: Item): Item[] {
  return list(node['ContentSequence']).flatMap((child) => [child, ...items(child)]);
}
const conceptOf = (item: Item) => list(item['ConceptNameCodeSequence'])[0]?.['CodeValue'];

async function auditRecords(action: AuditRecord['action']): Promise<AuditRecord[]> {
  await t.services.audit!.flush();
  return (await t.services.audit!.store.list({ limit: 200, action })).reverse();
}

describe('an endoscopy report from draft to signed DICOM and PDF, and its amendment', () => {
  let report: ReportJson;
  let signedV1: ReportJson;

  it('offers the AI findings of the stored detection SR', async () => {
    const res = await send('resident', 'GET', `/reports/studies/${study.studyInstanceUid}/ai-findings`);
    expect(res.statusCode).toBe(200);
    const findings = res.json().findings;
    expect(findings.map((f: { frame: number; index: number; report: { sopInstanceUid: string } }) => [f.report.sopInstanceUid, f.frame, f.index])).toEqual(
      study.detections.map((d) => [study.ai.sopInstanceUid, d.frame, d.index]),
    );
    expect(findings[0]).toMatchObject({ label: 'polyp', score: 0.91, box: { x: 10, y: 12, width: 20, height: 18 }, source: { sopInstanceUid: study.video.sopInstanceUid, frame: 2 }, timeOffsetMs: 1000 });
  });

  it('creates a draft with every AI finding pending and the recording found for the withdrawal time', async () => {
    const res = await send('resident', 'POST', '/reports', { studyInstanceUid: study.studyInstanceUid, kind: 'endoscopy' });
    expect(res.statusCode).toBe(201);
    report = res.json();
    expect(res.headers['location']).toBe(`http://localhost:80/reports/${report.id}`);
    expect(report).toMatchObject({ kind: 'endoscopy', status: 'draft', procedureDate: '20260105', signedVersion: null, latestVersion: 1, createdBy: { subject: 'res-1', name: 'BS. Phạm Quốc Huy' } });
    const content = report.version.content as EndoscopyContent;
    expect(content.aiFindings!.map((f) => f.decision)).toEqual(['pending', 'pending', 'pending']);
    // No caecal landmark photographed yet: the start of the withdrawal is unknown.
    expect(content.withdrawal).toEqual({
      seconds: null,
      source: 'recording',
      recording: { seriesInstanceUid: study.video.seriesInstanceUid, sopInstanceUid: study.video.sopInstanceUid, fromFrame: null, toFrame: 10, recordingSeconds: 9 },
    });
    expect((await send('reader', 'POST', '/reports', { studyInstanceUid: study.studyInstanceUid, kind: 'endoscopy' })).statusCode).toBe(403);
  });

  it('refuses content that names what the study does not hold, naming the field', async () => {
    const bad = await send('resident', 'PUT', `/reports/${report.id}`, {
      content: { kind: 'endoscopy', keyImages: [{ seriesInstanceUid: study.video.seriesInstanceUid, sopInstanceUid: '1.2.3.4', frame: 1 }] },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toBe('Body field "content.keyImages[0]": no such image in the study');
    const tooBig = await send('resident', 'PUT', `/reports/${report.id}`, { content: { kind: 'endoscopy', lesions: [{ location: 'sigmoid', sizeMm: 500 }] } });
    expect(tooBig.statusCode).toBe(400);
    expect(tooBig.json().error.message).toBe('Body field "content.lesions[0].sizeMm": must be the size in mm (largest dimension), 0 to 300');
    const frame = await send('resident', 'PUT', `/reports/${report.id}`, { content: { kind: 'endoscopy', keyImages: [{ seriesInstanceUid: study.video.seriesInstanceUid, sopInstanceUid: study.video.sopInstanceUid, frame: 11 }] } });
    expect(frame.json().error.message).toBe('Body field "content.keyImages[0].frame": the image has 10 frames');
    const ai = await send('resident', 'PUT', `/reports/${report.id}`, { content: { kind: 'endoscopy', aiFindings: [{ report: study.ai.sopInstanceUid, frame: 3, index: 1, decision: 'accepted' }] } });
    expect(ai.json().error.message).toBe('Body field "content.aiFindings[0]": the study has no such AI finding (report, frame, index)');
  });

  it('saves the draft: two AI findings accepted (as lesions), one rejected, the withdrawal time from the recording', async () => {
    const video = { seriesInstanceUid: study.video.seriesInstanceUid, sopInstanceUid: study.video.sopInstanceUid };
    const content: EndoscopyContent = {
      kind: 'endoscopy',
      indication: { category: 'positive-fit', text: 'FIT dương tính' },
      bowelPreparation: { right: 3, transverse: 2, left: 3 },
      extent: { reached: 'caecum' },
      landmarks: [
        { landmark: 'appendiceal-orifice', image: { ...video, frame: 3 } },
        { landmark: 'ileocaecal-valve', image: { ...video, frame: 4 } },
      ],
      lesions: [
        {
          location: 'sigmoid',
          sizeMm: 6,
          paris: '0-Is',
          resection: { method: 'cold-snare', completeness: 'complete', retrieved: true },
          histology: { type: 'tubular-adenoma', status: 'suspected' },
          images: [{ ...video, frame: 5 }],
        },
        { location: 'ascending', sizeMm: 3, paris: '0-IIa', resection: { method: 'cold-forceps', completeness: 'complete', retrieved: true }, histology: { type: 'hyperplastic', status: 'suspected' } },
      ],
      aiFindings: [
        { report: study.ai.sopInstanceUid, frame: 2, index: 1, decision: 'accepted', lesion: 2 },
        { report: study.ai.sopInstanceUid, frame: 2, index: 2, decision: 'rejected' },
        { report: study.ai.sopInstanceUid, frame: 5, index: 1, decision: 'accepted', lesion: 1 },
      ],
      keyImages: [
        { ...video, frame: 5, caption: 'Polyp Đại tràng sigma' },
        { ...video, frame: 3, caption: 'Lỗ ruột thừa' },
      ],
      conclusion: 'Polyp Đại tràng sigma 6 mm, đã cắt bằng thòng lọng lạnh.',
      recommendation: 'Nội soi lại sau 3 năm.',
    };
    const res = await send('resident', 'PUT', `/reports/${report.id}`, { content, revision: 0 });
    expect(res.statusCode).toBe(200);
    report = res.json();
    const saved = report.version.content as EndoscopyContent;
    expect(report.version).toMatchObject({ revision: 1, updatedBy: { subject: 'res-1' } });
    // From the first landmark photographed (frame 3, 2 s) to the last frame (10, 9 s) on the capture clock.
    expect(saved.withdrawal).toMatchObject({ seconds: 7, source: 'recording', recording: { fromFrame: 3, toFrame: 10 } });
    expect(saved.bowelPreparation!.total).toBe(8);
    expect(saved.aiFindings![0]).toMatchObject({ decision: 'accepted', lesion: 2, label: 'polyp', score: 0.91, reportSeriesInstanceUid: study.ai.seriesInstanceUid, source: { ...video, frame: 2 } });
    expect(saved.keyImages![0]).toMatchObject({ sopClassUid: study.video.sopClassUid, frame: 5 });
    expect(report.version.summary).toMatchObject({ title: 'Colonoscopy study', code: { value: '18746-8', scheme: 'LN' }, conclusion: content.conclusion });
    // A save based on the old revision is refused (lost update).
    expect((await send('resident', 'PUT', `/reports/${report.id}`, { content, revision: 0 })).statusCode).toBe(409);
  });

  it('serves the draft as a PDF marked as a draft', async () => {
    const res = await send('reader', 'GET', `/reports/${report.id}/pdf`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/pdf');
    const text = await pdfText(res.rawPayload, 'draft.pdf');
    expect(text).toContain('BẢN NHÁP – CHƯA KÝ');
    expect(text).toContain(PATIENT_PRINTED);
  });

  it('lets only a role with the sign permission sign; the signature names the token user, the time and the content hash', async () => {
    const refused = await send('resident', 'POST', `/reports/${report.id}/sign`, { revision: 1 });
    expect(refused.statusCode).toBe(403);
    const res = await send('physician', 'POST', `/reports/${report.id}/sign`, { revision: 1 });
    expect(res.statusCode, res.body).toBe(200);
    signedV1 = res.json();
    expect(signedV1).toMatchObject({ status: 'final', signedVersion: 1, latestVersion: 1, amendmentInProgress: false });
    const version = signedV1.version;
    expect(version.status).toBe('final');
    expect(version.signature!.signer).toEqual({ subject: 'doc-1', name: 'BS. Lê Văn Minh' });
    expect(Date.now() - Date.parse(version.signature!.signedAt)).toBeLessThan(60_000);
    expect(version.signature!.contentSha256).toBe(contentSha256(version.content));
    expect(version.dicom).toMatchObject({ stored: true, sr: { sopClassUid: COMPREHENSIVE_SR }, pdf: { sopClassUid: ENCAPSULATED_PDF } });
    expect((await send('physician', 'POST', `/reports/${report.id}/sign`, {})).statusCode).toBe(409);
    expect((await send('physician', 'PUT', `/reports/${report.id}`, { content: { kind: 'endoscopy' } })).json().error.message).toMatch(/amend/);
  });

  it('stores the SR and the Encapsulated PDF in the study: found by QIDO-RS, retrieved by WADO-RS, dciodvfy-clean', async () => {
    const qido = await t.app.inject({ url: `/dicomweb/studies/${study.studyInstanceUid}/instances?includefield=00080060`, headers: { authorization: `Bearer ${tokens.reader}` } });
    expect(qido.statusCode).toBe(200);
    const classes = (qido.json() as Array<Record<string, { Value?: string[] }>>).map((m) => m['00080016']?.Value?.[0]);
    expect(classes.filter((c) => c === COMPREHENSIVE_SR)).toHaveLength(1);
    expect(classes.filter((c) => c === ENCAPSULATED_PDF)).toHaveLength(1);

    const { sr, pdf } = signedV1.version.dicom!;
    const srBytes = await retrieve(sr.seriesInstanceUid, sr.sopInstanceUid);
    const pdfBytes = await retrieve(pdf.seriesInstanceUid, pdf.sopInstanceUid);
    expect(await dciodvfyErrors(srBytes, 'report-v1-sr.dcm', { withoutValues: true })).toEqual([]);
    expect(await dciodvfyErrors(pdfBytes, 'report-v1-pdf.dcm', { withoutValues: true })).toEqual([]);

    const ds = naturalized(srBytes);
    expect(ds).toMatchObject({ SOPClassUID: COMPREHENSIVE_SR, StudyInstanceUID: study.studyInstanceUid, PatientID: 'BN-2026-0042', CompletionFlag: 'COMPLETE', VerificationFlag: 'VERIFIED', Modality: 'SR' });
    const verifier = list(ds['VerifyingObserverSequence'])[0]!;
    expect(JSON.stringify(verifier['VerifyingObserverName'])).toContain('BS. Lê Văn Minh');
    expect(list(ds['ContentTemplateSequence'])[0]).toMatchObject({ TemplateIdentifier: '2000' });
    const tree = items(ds);
    // The two accepted AI findings cite the detection SR and their frame; the rejected one is not a finding.
    const citations = tree.filter((i) => i['ValueType'] === 'COMPOSITE').map((i) => list(i['ReferencedSOPSequence'])[0]!['ReferencedSOPInstanceUID']);
    expect(citations).toEqual([study.ai.sopInstanceUid, study.ai.sopInstanceUid]);
    const boxes = tree.filter((i) => i['ValueType'] === 'SCOORD').map((i) => list(list(i['ContentSequence'])[0]!['ReferencedSOPSequence'])[0]!['ReferencedFrameNumber']);
    expect(boxes.map(Number).sort()).toEqual([2, 5]);
    // Coded findings: polyp of colon (SCT), sites, size, suspected histology; the withdrawal time in seconds.
    const codes = tree.filter((i) => i['ValueType'] === 'CODE').map((i) => `${conceptOf(i)}=${list(i['ConceptCodeSequence'])[0]!['CodeValue']}`);
    expect(codes).toEqual(expect.arrayContaining(['121071=68496003', '363698007=60184004', '363698007=9040008', 'EXTENT=32713005', 'HISTO-SUSP=444408007', 'HISTO-SUSP=HP']));
    const withdrawal = tree.find((i) => conceptOf(i) === 'WITHDRAWAL')!;
    expect(list(withdrawal['MeasuredValueSequence'])[0]).toMatchObject({ NumericValue: 7 });
    const evidence = list(list(ds['CurrentRequestedProcedureEvidenceSequence'])[0]!['ReferencedSeriesSequence']).map((s) => s['SeriesInstanceUID']);
    expect(evidence.sort()).toEqual([study.ai.seriesInstanceUid, study.video.seriesInstanceUid].sort());

    const encapsulated = naturalized(pdfBytes);
    expect(encapsulated).toMatchObject({ SOPClassUID: ENCAPSULATED_PDF, MIMETypeOfEncapsulatedDocument: 'application/pdf', Modality: 'DOC', StudyInstanceUID: study.studyInstanceUid });
  });

  it("puts the patient's Vietnamese name exactly into the PDF text, with the key images; GET /pdf serves the stored PDF", async () => {
    const { pdf } = signedV1.version.dicom!;
    const inStudy = readEncapsulatedPdf(await retrieve(pdf.seriesInstanceUid, pdf.sopInstanceUid));
    expect(inStudy.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    const text = await pdfText(inStudy, 'report-v1.pdf');
    expect(text).toContain(PATIENT_PRINTED);
    expect(text).toContain('Đại tràng sigma');
    expect(text).toContain('BS. Lê Văn Minh');
    expect(text).toContain(signedV1.version.signature!.contentSha256);
    expect(text).not.toContain('BẢN NHÁP');
    const images = await runTool('/usr/bin/pdfimages', ['-list', path.join(work, 'report-v1.pdf')]);
    expect(images.stdout.split('\n').filter((line) => /\bjpeg\b/.test(line))).toHaveLength(2);
    const served = await send('reader', 'GET', `/reports/${report.id}/pdf`);
    expect(served.statusCode).toBe(200);
    expect(Buffer.compare(served.rawPayload, inStudy)).toBe(0);
  });

  it('amends: version 2 is a draft from version 1; once signed, version 1 is superseded and still readable', async () => {
    const amended = await send('physician', 'POST', `/reports/${report.id}/amend`, { reason: 'Kết quả mô bệnh học' });
    expect(amended.statusCode).toBe(201);
    const draft: ReportJson = amended.json();
    expect(draft).toMatchObject({ status: 'final', signedVersion: 1, latestVersion: 2, amendmentInProgress: true, version: { version: 2, status: 'draft', amends: 1, amendmentReason: 'Kết quả mô bệnh học' } });
    const content = structuredClone(draft.version.content) as EndoscopyContent;
    content.lesions![0]!.histology = { type: 'tubular-adenoma', status: 'confirmed', dysplasia: 'low-grade' };
    expect((await send('physician', 'PUT', `/reports/${report.id}`, { content, revision: 0 })).statusCode).toBe(200);
    const signed = await send('physician', 'POST', `/reports/${report.id}/sign`, null);
    expect(signed.statusCode, signed.body).toBe(200);
    const v2: ReportJson = signed.json();
    expect(v2).toMatchObject({ status: 'amended', signedVersion: 2, latestVersion: 2, amendmentInProgress: false });
    expect(v2.versions.map((v) => [v.version, v.status])).toEqual([
      [1, 'superseded'],
      [2, 'final'],
    ]);

    const v1 = await send('reader', 'GET', `/reports/${report.id}/versions/1`);
    expect(v1.statusCode).toBe(200);
    expect(v1.json()).toMatchObject({ version: 1, status: 'superseded', supersededBy: 2, signature: signedV1.version.signature, content: signedV1.version.content });
    const v1Pdf = await send('reader', 'GET', `/reports/${report.id}/versions/1/pdf`);
    expect(v1Pdf.statusCode).toBe(200);
    expect(await pdfText(v1Pdf.rawPayload, 'report-v1-again.pdf')).toContain(PATIENT_PRINTED);

    const sr2 = await retrieve(v2.version.dicom!.sr.seriesInstanceUid, v2.version.dicom!.sr.sopInstanceUid);
    expect(await dciodvfyErrors(sr2, 'report-v2-sr.dcm', { withoutValues: true })).toEqual([]);
    const predecessor = list(naturalized(sr2)['PredecessorDocumentsSequence'])[0]!;
    expect(list(list(predecessor['ReferencedSeriesSequence'])[0]!['ReferencedSOPSequence'])[0]!['ReferencedSOPInstanceUID']).toBe(signedV1.version.dicom!.sr.sopInstanceUid);
    const codes = items(naturalized(sr2)).filter((i) => i['ValueType'] === 'CODE').map((i) => `${conceptOf(i)}=${list(i['ConceptCodeSequence'])[0]!['CodeValue']}`);
    expect(codes).toEqual(expect.arrayContaining(['HISTOLOGY=444408007', 'DYSPLASIA=LGD']));
    expect(await dciodvfyErrors(await retrieve(v2.version.dicom!.pdf.seriesInstanceUid, v2.version.dicom!.pdf.sopInstanceUid), 'report-v2-pdf.dcm', { withoutValues: true })).toEqual([]);

    const ofStudy = await send('reader', 'GET', `/reports/studies/${study.studyInstanceUid}`);
    expect(ofStudy.json().reports.map((r: ReportJson) => [r.id, r.status])).toEqual([[report.id, 'amended']]);
  });

  it('counts the signed report in the quality figures of its endoscopist (the signer of version 1)', async () => {
    expect((await send('reader', 'GET', '/reports/quality?from=20260101&to=20260131')).statusCode).toBe(403);
    expect((await send('physician', 'GET', '/reports/quality?from=2026-01-01&to=20260131')).json().error.message).toBe('Query parameter "from": is required: the first procedure date, YYYYMMDD');
    const res = await send('physician', 'GET', '/reports/quality?from=20260101&to=20260131');
    expect(res.statusCode).toBe(200);
    const quality = res.json();
    expect(quality.endoscopists).toHaveLength(1);
    expect(quality.endoscopists[0].endoscopist).toEqual({ subject: 'doc-1', name: 'BS. Lê Văn Minh' });
    expect(quality.endoscopists[0].figures).toMatchObject({
      procedures: 1,
      adenomaDetectionRate: { numerator: 1, denominator: 1, value: 1, met: true },
      polypDetectionRate: { value: 1, met: null },
      caecalIntubationRate: { value: 1, met: true },
      adequateBowelPreparationRate: { value: 1, met: true },
      // Lesions were resected: the withdrawal time does not count.
      medianWithdrawalTimeSeconds: { value: null, count: 0, met: null },
      awaitingHistology: 1,
    });
  });

  it('audits every report action, naming the stored SR and PDF of a signature', async () => {
    const writes = (await auditRecords('report-write')).filter((r) => r.detail?.['reportId'] === report.id);
    expect(writes.map((r) => [r.route, r.detail?.['eventActionCode'], r.status])).toEqual(
      expect.arrayContaining([
        ['POST /reports', 'C', 201],
        ['PUT /reports/:id', 'U', 200],
        ['POST /reports/:id/amend', 'U', 201],
      ]),
    );
    const signs = (await auditRecords('report-sign')).filter((r) => r.interface === 'reports');
    const ok = signs.filter((r) => r.status === 200);
    expect(ok).toHaveLength(2);
    expect(ok[0]!.who).toMatchObject({ subject: 'doc-1', name: 'BS. Lê Văn Minh' });
    expect(ok[0]!.objects.map((o) => o.sopClass)).toEqual([COMPREHENSIVE_SR, ENCAPSULATED_PDF]);
    expect(signs.some((r) => r.status === 403 && r.who.subject === 'res-1')).toBe(true);
    expect((await auditRecords('report-export')).filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(3);
    expect((await auditRecords('report-read')).some((r) => r.route === 'GET /reports/:id/versions/:version')).toBe(true);
  });
});
