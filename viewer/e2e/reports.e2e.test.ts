/**
 * The report editor and the quality figures in Debian's headless Chromium against a real server on
 * loopback (sign-in off: the server's anonymous user may sign; the refusal of a user without `sign` is
 * reports-auth.e2e.test.ts, with real sign-in). A study as a live session leaves it (a Video Endoscopic
 * Image from the live recorder and an AI detection SR with three findings, test-support/endoscopy-study.ts)
 * → a new endoscopy draft in the page: Boston scale, extent and a caecal landmark photographed in the
 * recording (so the server times the withdrawal from it), a lesion, two AI findings accepted and one
 * rejected, key images picked from the recording's frames, a Vietnamese conclusion → saved; a save over
 * a draft changed meanwhile is refused (409) and said so → signed: final, the PDF downloads (bytes
 * `%PDF`, Debian's pdftotext finds the Vietnamese patient name exactly), the study lists the report's SR
 * and PDF series → amended: version 2 is a draft, then signed, and version 1 stays readable, marked
 * superseded. Then, with more reports signed by two other endoscopists, the quality figures page.
 * Screenshots: .artifacts/viewer/reports-*.png.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EndoscopyContent, PathologyContent, QualityReport, RadiologyContent, ReportJson } from '../../server/src/contracts/reports.js';
import type { ReportActor } from '../../server/src/reports/report-service.js';
import { storeEndoscopyStudy, storeImageStudy, type EndoscopyStudy } from '../../server/src/test-support/endoscopy-study.js';
import { makePolygonAnnotations } from './make-annotations.js';
import { buildViewer, launchChromium, removeViewerBuild, shoot, startServer, stowAll, watchErrors, watchFailedResponses, type RunningServer } from './harness.js';

const PDFTOTEXT = '/usr/bin/pdftotext';
if (!existsSync(PDFTOTEXT)) throw new Error("poppler-utils' pdftotext is not installed; install it with: apt-get install -y --no-install-recommends poppler-utils");

const PATIENT = 'Nguyễn^Thị Hồng Nhung';
const PATIENT_PRINTED = 'Nguyễn Thị Hồng Nhung';
const INDICATION = 'Tầm soát ung thư đại trực tràng, tiền sử gia đình';
const CAPTION = 'Polyp đại tràng sigma';
const CONCLUSION = 'Polyp đại tràng sigma 6 mm (Paris 0-Is), đã cắt bằng thòng lọng lạnh. Không thấy tổn thương khác.';
const REASON = 'Bổ sung kết quả giải phẫu bệnh: u tuyến ống, loạn sản độ thấp';

let server: RunningServer;
let browser: Browser;
let page: Page;
let errors: string[];
let failed: string[];
let tmp: string;
let study: EndoscopyStudy;
let reportId: string;
let signed: ReportJson;

const api = async <T>(url: string, init: RequestInit = {}): Promise<{ status: number; body: T }> => {
  const res = await fetch(`${server.url}${url}`, { ...init, headers: { accept: 'application/json', ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) } });
  return { status: res.status, body: (await res.json()) as T };
};

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'reports-e2e-'));
  buildViewer();
  server = await startServer();
  study = await storeEndoscopyStudy(server.t.services.archive, { patientName: PATIENT, studyDate: '20260105' });
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 1400 }, acceptDownloads: true });
  page = await context.newPage();
  errors = watchErrors(page);
  failed = watchFailedResponses(page);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.t.close();
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  removeViewerBuild();
});

const finding = (frame: number, index: number) => page.locator(`.ai-finding[data-frame="${frame}"][data-index="${index}"]`);

describe('report editor (endoscopy)', () => {
  it('drafts an endoscopy report from the study: AI findings accepted and rejected, key images, Vietnamese text', async () => {
    // From the study: its Report link.
    await page.goto(`${server.url}/#/study/${study.studyInstanceUid}`);
    await page.click('#study-reports');
    await page.waitForSelector('#no-reports');
    expect(await page.locator('#report-patient').innerText()).toBe(PATIENT_PRINTED);
    // The kind offered for an endoscopy study (modality ES).
    expect(await page.locator('#report-kind').inputValue()).toBe('endoscopy');
    await page.click('#report-create');
    await page.waitForURL(/#\/study\/[0-9.]+\/report\/[0-9a-f-]{36}$/);
    reportId = page.url().split('/').at(-1)!;
    await page.waitForSelector('.report-form[data-kind="endoscopy"]');

    // The study's three AI findings, each on its frame with its box, to review.
    await expect.poll(() => page.locator('.ai-finding').count(), { timeout: 30_000 }).toBe(3);
    expect(await page.locator('.ai-finding[data-decision="pending"]').count()).toBe(3);
    expect(await finding(2, 1).locator('.report-box').count()).toBe(1);
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('.ai-finding img')].every((i) => i.complete && i.naturalWidth > 0));

    await page.selectOption('select[name="indication.category"]', 'screening');
    await page.fill('input[name="indication.text"]', INDICATION);
    await page.selectOption('select[name="bbps.right"]', '3');
    await page.selectOption('select[name="bbps.transverse"]', '2');
    expect(await page.locator('#bbps-total').innerText()).toBe('–');
    await page.selectOption('select[name="bbps.left"]', '3');
    expect(await page.locator('#bbps-total').innerText()).toBe('8');
    await page.selectOption('select[name="extent.reached"]', 'caecum');

    // Key images from the recording's frames: 3 (the appendiceal orifice) and 5 (the polyp).
    await page.click('details.picker summary');
    await page.click(`.picker-item[data-sop="${study.video.sopInstanceUid}"][data-frame="3"]`);
    await page.click(`.picker-item[data-sop="${study.video.sopInstanceUid}"][data-frame="5"]`);
    await expect.poll(() => page.locator('.key-image').count(), { timeout: 30_000 }).toBe(2);
    await page.fill('.key-image[data-frame="5"] input[name="caption"]', CAPTION);
    await page.check('input[name="landmark.appendiceal-orifice"]');
    await page.selectOption('select[name="landmark.appendiceal-orifice.image"]', { index: 1 });

    // A lesion.
    await page.click('#add-lesion');
    const lesion = page.locator('tr[data-lesion="1"]');
    await lesion.locator('select[name="location"]').selectOption('sigmoid');
    await lesion.locator('input[name="sizeMm"]').fill('6');
    await lesion.locator('select[name="paris"]').selectOption('0-Is');
    await lesion.locator('select[name="resection"]').selectOption('cold-snare');
    await lesion.locator('select[name="completeness"]').selectOption('complete');
    await lesion.locator('input[name="retrieved"]').check();
    await lesion.locator('select[name="histology"]').selectOption('tubular-adenoma');
    await lesion.locator('select[name="histologyStatus"]').selectOption('suspected');

    // Two AI findings accepted (one recorded as the lesion), one rejected.
    await finding(2, 1).locator('.ai-accept').click();
    await finding(2, 2).locator('.ai-reject').click();
    await finding(5, 1).locator('.ai-accept').click();
    await finding(5, 1).locator('select[name="ai.lesion"]').selectOption('1');
    expect(await finding(5, 1).locator('.ai-citation').innerText()).toContain('frame 5');
    expect(await page.locator('#ai-summary').innerText()).toContain('2 accepted, 1 rejected, 0 to review');

    await page.fill('textarea[name="conclusion"]', CONCLUSION);
    await shoot(page, 'reports-1-draft-filled');

    await page.click('#report-save');
    await page.locator('.report-ok', { hasText: 'Draft saved (revision 1)' }).waitFor();
    // The server timed the withdrawal from the landmark's frame (3) to the recording's last (10): 7 s.
    expect(await page.locator('#withdrawal').inputValue()).toBe('0:07');
    expect(await page.locator('#withdrawal').getAttribute('data-source')).toBe('recording');
    expect(await page.locator('#withdrawal-source').innerText()).toContain('frame 3');

    // What the server holds: exactly what was typed, the decisions, the key images.
    const stored = (await api<ReportJson>(`/reports/${reportId}`)).body;
    const content = stored.version.content as EndoscopyContent;
    expect(stored.version.revision).toBe(1);
    expect(content.indication).toEqual({ category: 'screening', text: INDICATION });
    expect(content.conclusion).toBe(CONCLUSION);
    expect(content.bowelPreparation).toEqual({ right: 3, transverse: 2, left: 3, total: 8 });
    expect(content.extent).toEqual({ reached: 'caecum' });
    expect(content.landmarks).toEqual([{ landmark: 'appendiceal-orifice', image: { seriesInstanceUid: study.video.seriesInstanceUid, sopInstanceUid: study.video.sopInstanceUid, sopClassUid: study.video.sopClassUid, frame: 3 } }]);
    expect(content.keyImages?.map((k) => [k.frame, k.caption])).toEqual([
      [3, undefined],
      [5, CAPTION],
    ]);
    expect(content.lesions).toEqual([
      { location: 'sigmoid', sizeMm: 6, paris: '0-Is', resection: { method: 'cold-snare', completeness: 'complete', retrieved: true }, histology: { type: 'tubular-adenoma', status: 'suspected' } },
    ]);
    expect(content.aiFindings?.map((f) => [f.frame, f.index, f.decision, f.lesion])).toEqual([
      [2, 1, 'accepted', undefined],
      [2, 2, 'rejected', undefined],
      [5, 1, 'accepted', 1],
    ]);
    expect(errors).toEqual([]);
  }, 120_000);

  it('refuses to overwrite a draft saved meanwhile (409) and says so, keeping the form', async () => {
    // Someone else saves the draft (revision 1 → 2) while the page still holds revision 1.
    const current = (await api<ReportJson>(`/reports/${reportId}`)).body;
    const theirs = { ...(current.version.content as EndoscopyContent), recommendation: 'Nội soi lại sau 3 năm.' };
    expect((await api(`/reports/${reportId}`, { method: 'PUT', body: JSON.stringify({ content: theirs, revision: 1 }) })).status).toBe(200);

    await page.fill('textarea[name="recommendation"]', 'Nội soi lại sau 5 năm.');
    await page.click('#report-save');
    const conflict = page.locator('#report-conflict');
    await conflict.waitFor();
    expect(await conflict.innerText()).toContain('Not saved: this draft was changed since you opened it');
    expect(await page.locator('textarea[name="recommendation"]').inputValue()).toBe('Nội soi lại sau 5 năm.');
    await shoot(page, 'reports-2-conflict');
    await page.click('#report-reload');
    await page.locator('.report-ok', { hasText: 'Reloaded' }).waitFor();
    expect(await page.locator('textarea[name="recommendation"]').inputValue()).toBe('Nội soi lại sau 3 năm.');
    expect(await page.locator('#report-revision').getAttribute('data-revision')).toBe('2');
    // The conflict was the server's 409, not a failure of the page.
    expect(failed.filter((f) => !f.startsWith('409 '))).toEqual([]);
    failed.length = 0;
  }, 60_000);

  it('signs: the report is final, its PDF downloads with the Vietnamese name, the study lists the SR and PDF', async () => {
    await page.click('#report-sign');
    await page.click('#report-sign-confirm');
    await page.locator('.report-ok', { hasText: 'Version 1 signed' }).waitFor({ timeout: 60_000 });
    expect(await page.locator('.report-info .report-status').getAttribute('data-status')).toBe('final');
    expect(await page.locator('#report-signer').innerText()).toBe('anonymous');
    expect(await page.locator('#report-stored').isVisible()).toBe(true);
    // A signed version is read-only; Sign and Save are gone, Amend is offered.
    expect(await page.locator('textarea[name="conclusion"]').isDisabled()).toBe(true);
    expect(await page.locator('#report-save').count()).toBe(0);
    expect(await page.locator('#report-amend').isVisible()).toBe(true);
    await shoot(page, 'reports-3-signed');

    signed = (await api<ReportJson>(`/reports/${reportId}`)).body;
    expect(signed.status).toBe('final');
    expect(signed.version.signature?.contentSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await page.locator('#report-signature').innerText()).toContain(signed.version.signature!.contentSha256);

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#report-pdf')]);
    expect(download.suggestedFilename()).toBe('report-endoscopy-v1.pdf');
    const file = path.join(tmp, 'v1.pdf');
    await download.saveAs(file);
    const pdf = await readFile(file);
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    const text = execFileSync(PDFTOTEXT, ['-enc', 'UTF-8', file, '-'], { encoding: 'utf8' });
    expect(text).toContain(PATIENT_PRINTED);
    expect(text.replace(/\s+/g, ' ')).toContain('Polyp đại tràng sigma 6 mm');
    expect(text).not.toMatch(/BẢN NHÁP|DRAFT/);

    // The study now has the report's SR and Encapsulated PDF series, listed in the study view.
    const dicom = signed.version.dicom!;
    await page.goto(`${server.url}/#/study/${study.studyInstanceUid}`);
    await page.waitForSelector(`.series-item[data-series="${dicom.sr.seriesInstanceUid}"]`);
    expect(await page.locator(`.series-item[data-series="${dicom.sr.seriesInstanceUid}"]`).innerText()).toContain('SR');
    expect(await page.locator(`.series-item[data-series="${dicom.pdf.seriesInstanceUid}"]`).innerText()).toContain('DOC');
    await shoot(page, 'reports-4-study-series');

    // The study's reports list shows it final.
    await page.click('#study-reports');
    await page.waitForSelector(`tr[data-report="${reportId}"][data-status="final"]`);
    expect(errors).toEqual([]);
  }, 120_000);

  it('amends: version 2 is a draft, then signed; version 1 stays readable, marked superseded', async () => {
    await page.click(`tr[data-report="${reportId}"] .open-report`);
    await page.waitForSelector('#report-amend');
    await page.click('#report-amend');
    await page.fill('#amend-reason', REASON);
    await page.click('#amend-confirm');
    await page.locator('.report-ok', { hasText: 'Version 2 is a draft' }).waitFor();
    expect(await page.locator('.report-info .report-status').getAttribute('data-status')).toBe('draft');
    expect(await page.locator('.version-link[data-version="1"]').getAttribute('data-status')).toBe('final');
    expect(await page.locator('#amendment-reason').innerText()).toContain(REASON);
    // The amendment is the signed content, editable: histology confirmed by pathology.
    expect(await page.locator('textarea[name="conclusion"]').inputValue()).toBe(CONCLUSION);
    const lesion = page.locator('tr[data-lesion="1"]');
    await lesion.locator('select[name="histologyStatus"]').selectOption('confirmed');
    await lesion.locator('select[name="dysplasia"]').selectOption('low-grade');
    await page.fill('textarea[name="conclusion"]', `${CONCLUSION} Giải phẫu bệnh: u tuyến ống, loạn sản độ thấp.`);
    await shoot(page, 'reports-5-amendment-draft');
    // Sign saves the unsaved changes first.
    await page.click('#report-sign');
    await page.click('#report-sign-confirm');
    await page.locator('.report-ok', { hasText: 'Version 2 signed' }).waitFor({ timeout: 60_000 });
    expect(await page.locator('.version-link[data-version="1"]').getAttribute('data-status')).toBe('superseded');
    expect(await page.locator('.version-link[data-version="2"]').getAttribute('data-status')).toBe('final');

    // Version 1: readable, marked superseded, its content as signed.
    await page.click('.version-link[data-version="1"]');
    await page.waitForSelector('#superseded-note');
    expect(await page.locator('#superseded-note').innerText()).toContain('by version 2');
    expect(await page.locator('.report-info .report-status').getAttribute('data-status')).toBe('superseded');
    expect(await page.locator('textarea[name="conclusion"]').inputValue()).toBe(CONCLUSION);
    expect(await page.locator('textarea[name="conclusion"]').isDisabled()).toBe(true);
    expect(await page.locator('#report-amend').count()).toBe(0);
    await shoot(page, 'reports-6-v1-superseded');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#report-pdf')]);
    const file = path.join(tmp, 'v1-again.pdf');
    await download.saveAs(file);
    expect(execFileSync(PDFTOTEXT, ['-enc', 'UTF-8', file, '-'], { encoding: 'utf8' })).toContain(PATIENT_PRINTED);

    const report = (await api<ReportJson>(`/reports/${reportId}`)).body;
    expect(report.status).toBe('amended');
    expect(report.versions.map((v) => v.status)).toEqual(['superseded', 'final']);
    expect(errors).toEqual([]);
  }, 120_000);
});

describe('quality figures', () => {
  it('shows ADR, PDR, caecal intubation, median withdrawal and bowel preparation per endoscopist against the ESGE targets', async () => {
    // More final colonoscopy reports in January 2026, signed by two other endoscopists (through the service).
    const { service } = server.t.services.reports!;
    const actor = (subject: string, name: string): ReportActor => ({ subject, name, permissions: new Set(['read', 'report', 'sign']) });
    const lan = actor('bs.lan', 'BS. Nguyễn Thị Lan');
    const minh = actor('bs.minh', 'BS. Trần Văn Minh');
    const colonoscopy = (o: { reached: NonNullable<EndoscopyContent['extent']>['reached']; bbps: [number, number, number]; seconds: number; adenoma?: boolean }): EndoscopyContent => ({
      kind: 'endoscopy',
      extent: { reached: o.reached },
      bowelPreparation: { right: o.bbps[0], transverse: o.bbps[1], left: o.bbps[2] },
      withdrawal: { seconds: o.seconds, source: 'manual' },
      lesions: o.adenoma ? [{ location: 'ascending', sizeMm: 4, paris: '0-IIa', histology: { type: 'adenoma', status: 'confirmed' } }] : [],
      conclusion: 'Nội soi đại tràng toàn bộ.',
    });
    const signedBy = async (who: ReportActor, date: string, content: EndoscopyContent) => {
      const s = await storeImageStudy(server.t.services.archive, { studyDate: date, patientName: 'LE^VAN TAM' });
      const created = await service.create({ studyInstanceUid: s.studyInstanceUid, kind: 'endoscopy', content }, who);
      await service.sign(created.report.id, undefined, who);
    };
    await signedBy(lan, '20260106', colonoscopy({ reached: 'caecum', bbps: [3, 3, 3], seconds: 400, adenoma: true }));
    await signedBy(lan, '20260112', colonoscopy({ reached: 'terminal-ileum', bbps: [2, 2, 3], seconds: 420 }));
    await signedBy(lan, '20260120', colonoscopy({ reached: 'caecum', bbps: [3, 2, 2], seconds: 380 }));
    await signedBy(minh, '20260108', colonoscopy({ reached: 'sigmoid', bbps: [1, 2, 2], seconds: 300 }));
    await signedBy(minh, '20260115', colonoscopy({ reached: 'caecum', bbps: [2, 2, 2], seconds: 240 }));
    // Outside the period: not counted.
    await signedBy(minh, '20251231', colonoscopy({ reached: 'caecum', bbps: [3, 3, 3], seconds: 500, adenoma: true }));

    await page.click('#nav-quality');
    await page.waitForSelector('#quality-from');
    await page.fill('#quality-from', '2026-01-01');
    await page.fill('#quality-to', '2026-01-31');
    await page.click('#quality-show');
    await page.waitForSelector('tr[data-endoscopist="bs.minh"]');

    const expected = (await api<QualityReport>('/reports/quality?from=20260101&to=20260131')).body;
    expect(expected.overall.procedures).toBe(6);
    const cell = (who: string, measure: string) => page.locator(`tr[data-endoscopist="${who}"] [data-measure="${measure}"]`);
    expect(await page.locator('#quality-table tbody tr').count()).toBe(3);
    // BS. Lan: 1 adenoma in 3 (33.3 % ≥ 25 %), caecum 3/3, preparation 3/3, median 6:40.
    expect(await page.locator('tr[data-endoscopist="bs.lan"] th').innerText()).toBe('BS. Nguyễn Thị Lan');
    expect(await cell('bs.lan', 'procedures').innerText()).toBe('3');
    expect(await cell('bs.lan', 'adenomaDetectionRate').getAttribute('data-state')).toBe('met');
    expect(await cell('bs.lan', 'adenomaDetectionRate').innerText()).toContain('33.3 %');
    expect(await cell('bs.lan', 'caecalIntubationRate').getAttribute('data-state')).toBe('met');
    expect(await cell('bs.lan', 'adequateBowelPreparationRate').getAttribute('data-state')).toBe('met');
    expect(await cell('bs.lan', 'medianWithdrawalTimeSeconds').innerText()).toContain('6:40');
    expect(await cell('bs.lan', 'medianWithdrawalTimeSeconds').getAttribute('data-state')).toBe('met');
    expect(await cell('bs.lan', 'polypDetectionRate').getAttribute('data-state')).toBe('no-target');
    // BS. Minh: no adenoma, caecum 1/2, preparation 1/2, median 4:30: none met.
    for (const m of ['adenomaDetectionRate', 'caecalIntubationRate', 'adequateBowelPreparationRate', 'medianWithdrawalTimeSeconds']) expect(await cell('bs.minh', m).getAttribute('data-state')).toBe('not-met');
    expect(await cell('bs.minh', 'caecalIntubationRate').innerText()).toContain('1/2');
    expect(await cell('bs.minh', 'medianWithdrawalTimeSeconds').innerText()).toContain('4:30');
    // The report signed in the page (anonymous): the adenoma confirmed by the amendment, the lesion resected.
    expect(await cell('anonymous', 'adenomaDetectionRate').innerText()).toContain('100 %');
    expect(await cell('anonymous', 'medianWithdrawalTimeSeconds').getAttribute('data-state')).toBe('no-data');
    // Every figure as the API computed it.
    for (const e of expected.endoscopists) {
      expect(await cell(e.endoscopist.subject, 'adenomaDetectionRate').innerText()).toContain(`${e.figures.adenomaDetectionRate.numerator}/${e.figures.adenomaDetectionRate.denominator}`);
      expect(await cell(e.endoscopist.subject, 'polypDetectionRate').innerText()).toContain(`${e.figures.polypDetectionRate.numerator}/${e.figures.polypDetectionRate.denominator}`);
    }
    expect(await cell('*', 'procedures').innerText()).toBe('6');

    const shot = await shoot(page, 'reports-quality');
    // Met (green) and not met (red) badges are drawn.
    let green = 0;
    let red = 0;
    for (let y = 0; y < shot.height; y += 1) {
      for (let x = 0; x < shot.width; x += 1) {
        const [r, g, b] = shot.at(x, y);
        if (g > 100 && g > r + 40 && g > b + 30) green += 1;
        if (r > 140 && r > g + 70 && r > b + 70) red += 1;
      }
    }
    expect(green).toBeGreaterThan(200);
    expect(red).toBeGreaterThan(200);

    // A period with nothing in it, and one that ends before it starts.
    await page.fill('#quality-from', '2020-01-01');
    await page.fill('#quality-to', '2020-01-31');
    await page.click('#quality-show');
    await page.locator('#quality-table', { hasText: 'No final colonoscopy reports in this period.' }).waitFor();
    await page.fill('#quality-from', '2026-02-01');
    await page.click('#quality-show');
    await page.locator('.quality-result [role="alert"]', { hasText: 'starts after it ends' }).waitFor();
    expect(errors).toEqual([]);
  }, 180_000);
});

/** The synthetic annotations of make-annotations.ts with their group numbered (Annotation Group Number, 0040,A180). */
function numberedAnnotations(study: string, slideSeries: string): Buffer {
  const { part10 } = makePolygonAnnotations({ study, slideSeries, width: 32, height: 32, count: 5 });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const parsed = dcmjs.data.DicomMessage.readFile(part10.buffer.slice(part10.byteOffset, part10.byteOffset + part10.length) as ArrayBuffer) as any;
  parsed.dict['006A0002'].Value[0]['0040A180'] = { vr: 'US', Value: [1] };
  return Buffer.from(parsed.write());
}

describe('pathology and radiology forms', () => {
  it('drafts a pathology report with a finding linked to an annotation group of the slide and a key tile', async () => {
    const slide = await storeImageStudy(server.t.services.archive, { modality: 'SM', studyDate: '20260109', patientName: 'LE^VAN TAM' });
    await stowAll(server.url, [numberedAnnotations(slide.studyInstanceUid, slide.seriesInstanceUid)]);
    await page.goto(`${server.url}/#/study/${slide.studyInstanceUid}/report`);
    await page.waitForSelector('#no-reports');
    expect(await page.locator('#report-kind').inputValue()).toBe('pathology');
    await page.click('#report-create');
    await page.waitForSelector('.report-form[data-kind="pathology"]');
    await page.fill('input[name="specimen.identifier"]', 'GPB-2026-001');
    await page.selectOption('select[name="specimen.collection"]', 'polypectomy');
    await page.fill('input[name="specimen.siteText"]', 'Đại tràng sigma');
    await page.fill('textarea[name="diagnosis"]', 'U tuyến ống, loạn sản độ thấp');
    await page.selectOption('select[name="grade"]', 'low-grade-dysplasia');
    await page.click('#add-finding');
    await page.fill('.pathology-finding[data-finding="1"] textarea[name="finding"]', 'Nhân tế bào tăng sắc');
    await page.check('.pathology-finding[data-finding="1"] input[name="region"][data-group="1"]');
    expect(await page.locator('.pathology-finding .ai-tag').count()).toBe(1);
    await page.click('details.picker summary');
    await page.click(`.picker-item[data-sop="${slide.sopInstanceUid}"]`);
    await page.click('#report-save');
    await page.locator('.report-ok', { hasText: 'Draft saved' }).waitFor();
    await shoot(page, 'reports-7-pathology-draft');
    const id = page.url().split('/').at(-1)!;
    const content = (await api<ReportJson>(`/reports/${id}`)).body.version.content as PathologyContent;
    expect(content.specimen).toEqual({ identifier: 'GPB-2026-001', collection: 'polypectomy', siteText: 'Đại tràng sigma' });
    expect(content.diagnosis).toEqual({ text: 'U tuyến ống, loạn sản độ thấp' });
    expect(content.grade).toBe('low-grade-dysplasia');
    expect(content.findings?.[0]?.text).toBe('Nhân tế bào tăng sắc');
    expect(content.findings?.[0]?.regions?.[0]).toMatchObject({ group: 1, groupLabel: 'nuclei', ai: true });
    expect(content.keyImages?.map((k) => k.sopInstanceUid)).toEqual([slide.sopInstanceUid]);
    expect(errors).toEqual([]);
  }, 90_000);

  it('drafts a radiology report with a length measurement entered as numbers on an image', async () => {
    const ct = await storeImageStudy(server.t.services.archive, { modality: 'CT', studyDate: '20260110', patientName: 'LE^VAN TAM' });
    await page.goto(`${server.url}/#/study/${ct.studyInstanceUid}/report`);
    await page.waitForSelector('#no-reports');
    expect(await page.locator('#report-kind').inputValue()).toBe('radiology');
    await page.click('#report-create');
    await page.waitForSelector('.report-form[data-kind="radiology"]');
    await page.fill('textarea[name="findings"]', 'Nốt đặc thùy dưới phổi phải.');
    await page.fill('textarea[name="impression"]', 'Nốt phổi 8 mm, theo dõi sau 6 tháng.');
    await page.click('#add-measurement');
    const m = page.locator('tr[data-measurement="1"]');
    await m.locator('input[name="value"]').fill('8.2');
    await m.locator('input[name="points"]').fill('10,12,18');
    await m.locator('input[name="label"]').fill('Nốt phổi');
    await page.click('#report-save');
    // The form's own check: a length needs two points.
    await page.locator('#report-message [role=alert]', { hasText: 'a length needs two points' }).waitFor();
    await m.locator('input[name="points"]').fill('10,12,18,20');
    await page.click('#report-save');
    await page.locator('.report-ok', { hasText: 'Draft saved' }).waitFor();
    await shoot(page, 'reports-8-radiology-draft');
    const id = page.url().split('/').at(-1)!;
    const content = (await api<ReportJson>(`/reports/${id}`)).body.version.content as RadiologyContent;
    expect(content.impression).toBe('Nốt phổi 8 mm, theo dõi sau 6 tháng.');
    expect(content.measurements).toEqual([{ type: 'length', value: 8.2, image: { seriesInstanceUid: ct.seriesInstanceUid, sopInstanceUid: ct.sopInstanceUid, sopClassUid: expect.any(String) }, points: [10, 12, 18, 20], label: 'Nốt phổi' }]);
    expect(errors).toEqual([]);
  }, 90_000);
});
