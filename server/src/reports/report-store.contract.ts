/**
 * Behaviour every ReportStore must show, run by each engine's test file (kysely-report-store.test.ts:
 * SQLite and PostgreSQL). Each test gets a fresh store from `setup`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EndoscopyContent, Person } from '../contracts/reports.js';
import type { ReportStore, VersionDicom } from './report-store.js';

export interface ReportStoreUnderTest {
  store: ReportStore;
  /** Another store on the same database (a second process, or a restart): opening again is idempotent. */
  openAgain(): Promise<ReportStore>;
  teardown(): Promise<void>;
}

const lan: Person = { subject: 'user-lan', name: 'BS. Trần Thị Lan' };
const minh: Person = { subject: 'user-minh', name: null };
const content = (overrides: Partial<EndoscopyContent> = {}): EndoscopyContent => ({
  kind: 'endoscopy',
  procedure: 'colonoscopy',
  landmarks: [],
  lesions: [],
  aiFindings: [],
  keyImages: [],
  conclusion: 'Đại tràng sigma bình thường',
  ...overrides,
});
const dicom = (version: number): VersionDicom => ({
  srSeriesInstanceUid: '2.25.1',
  srSopInstanceUid: `2.25.1${version}`,
  pdfSeriesInstanceUid: '2.25.2',
  pdfSopInstanceUid: `2.25.2${version}`,
  storedAt: null,
});

export function runReportStoreContract(name: string, setup: () => Promise<ReportStoreUnderTest>): void {
  describe(`the report store on ${name}`, () => {
    let t: ReportStoreUnderTest;
    beforeEach(async () => {
      t = await setup();
    });
    afterEach(async () => {
      await t.teardown();
    });

    it('keeps a draft with its content (Vietnamese text exact), finds it by id and by study, and saves it with a revision', async () => {
      const { report, version } = await t.store.create({ id: 'r-1', studyInstanceUid: '1.2.3', kind: 'endoscopy', procedureDate: '20260105', content: content(), by: lan, at: 1000 });
      expect(report).toEqual({ id: 'r-1', studyInstanceUid: '1.2.3', kind: 'endoscopy', procedureDate: '20260105', createdAt: 1000, createdBy: lan, latestVersion: 1 });
      expect(version).toMatchObject({ version: 1, status: 'draft', revision: 0, createdBy: lan, signature: null, dicom: null, amends: null });
      expect(version.content).toEqual(content());
      await t.store.create({ id: 'r-2', studyInstanceUid: '1.2.3', kind: 'radiology', procedureDate: '20260105', content: { kind: 'radiology' }, by: minh, at: 2000 });
      await t.store.create({ id: 'r-3', studyInstanceUid: '9.9', kind: 'pathology', procedureDate: '20260105', content: { kind: 'pathology' }, by: minh, at: 3000 });
      expect((await t.store.ofStudy('1.2.3')).map((r) => r.id)).toEqual(['r-1', 'r-2']);
      expect(await t.store.get('nope')).toBeUndefined();

      const saved = await t.store.updateDraft('r-1', { content: content({ conclusion: 'Polyp đại tràng sigma' }), expectedRevision: 0, by: minh, at: 1500 });
      expect(saved).toMatchObject({ revision: 1, updatedBy: minh, updatedAt: 1500, createdBy: lan });
      expect((saved.content as EndoscopyContent).conclusion).toBe('Polyp đại tràng sigma');
      // A save based on an old revision is refused: no lost update.
      await expect(t.store.updateDraft('r-1', { content: content(), expectedRevision: 0, by: lan, at: 1600 })).rejects.toMatchObject({ code: 'CONFLICT' });
      await expect(t.store.updateDraft('nope', { content: content(), by: lan, at: 1600 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
      const other = await t.openAgain();
      try {
        expect(await other.version('r-1', 1)).toEqual(saved);
      } finally {
        await other.close();
      }
    });

    it('signs a draft once; a signed version cannot change; an amendment is the next draft and its signature supersedes the first', async () => {
      await t.store.create({ id: 'r-1', studyInstanceUid: '1.2.3', kind: 'endoscopy', procedureDate: '20260105', content: content(), by: lan, at: 1000 });
      const signature = { signer: lan, signedAt: 2000, contentSha256: 'a'.repeat(64) };
      await expect(t.store.sign('r-1', { version: 1, expectedRevision: 3, signature, dicom: dicom(1) })).rejects.toMatchObject({ code: 'CONFLICT' });
      const signed = await t.store.sign('r-1', { version: 1, expectedRevision: 0, signature, dicom: dicom(1) });
      expect(signed).toMatchObject({ status: 'final', signature, dicom: dicom(1) });
      await expect(t.store.sign('r-1', { version: 1, signature, dicom: dicom(1) })).rejects.toMatchObject({ code: 'CONFLICT' });
      await expect(t.store.updateDraft('r-1', { content: content(), by: lan, at: 2100 })).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/amend/) });
      await t.store.markStored('r-1', 1, 2200);
      expect((await t.store.version('r-1', 1))!.dicom!.storedAt).toBe(2200);

      const amendment = await t.store.amend('r-1', { reason: 'Kết quả mô bệnh học', by: minh, at: 3000 });
      expect(amendment).toMatchObject({ version: 2, status: 'draft', amends: 1, amendmentReason: 'Kết quả mô bệnh học', revision: 0, createdBy: minh, signature: null });
      expect(amendment.content).toEqual(signed.content);
      // Only one amendment at a time: the latest is a draft now.
      await expect(t.store.amend('r-1', { reason: 'again', by: minh, at: 3100 })).rejects.toMatchObject({ code: 'CONFLICT' });
      expect((await t.store.version('r-1', 1))!.status).toBe('final');
      await t.store.updateDraft('r-1', { content: content({ conclusion: 'U tuyến ống' }), expectedRevision: 0, by: minh, at: 3200 });
      await t.store.sign('r-1', { version: 2, signature: { signer: minh, signedAt: 4000, contentSha256: 'b'.repeat(64) }, dicom: dicom(2) });
      const versions = await t.store.versions('r-1');
      expect(versions.map((v) => [v.version, v.status, v.supersededBy, v.supersededAt])).toEqual([
        [1, 'superseded', 2, 4000],
        [2, 'final', null, null],
      ]);
      // Version 1 stays readable as it was signed.
      expect(versions[0]).toMatchObject({ signature, content: signed.content });
      expect((await t.store.get('r-1'))!.latestVersion).toBe(2);
    });

    it('lists the versions in force of final endoscopy reports in a period, with the signer of version 1 as endoscopist', async () => {
      const make = async (id: string, date: string, kind: 'endoscopy' | 'radiology' = 'endoscopy') => {
        await t.store.create({ id, studyInstanceUid: `1.2.${id.length}`, kind, procedureDate: date, content: kind === 'endoscopy' ? content() : { kind }, by: lan, at: 1000 });
      };
      await make('a', '20260101');
      await make('b', '20260115');
      await make('c', '20260201');
      await make('d', '20260110', 'radiology');
      await make('e', '20260112'); // stays a draft
      for (const id of ['a', 'b', 'c', 'd']) await t.store.sign(id, { version: 1, signature: { signer: lan, signedAt: 2000, contentSha256: 'c'.repeat(64) }, dicom: dicom(1) });
      await t.store.amend('b', { reason: 'histology', by: minh, at: 3000 });
      await t.store.sign('b', { version: 2, signature: { signer: minh, signedAt: 4000, contentSha256: 'd'.repeat(64) }, dicom: dicom(2) });
      const found = await t.store.finalEndoscopyReports('20260101', '20260131');
      expect(found.map((f) => [f.report.id, f.version.version, f.endoscopist.subject])).toEqual([
        ['a', 1, 'user-lan'],
        ['b', 2, 'user-lan'],
      ]);
      expect(await t.store.finalEndoscopyReports('20250101', '20251231')).toEqual([]);
    });
  });
}
