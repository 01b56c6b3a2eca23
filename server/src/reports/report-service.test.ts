/**
 * The reports use cases on a real archive (embedded storage): the content hash (RFC 8785 canonical
 * JSON), the states (only an actor with `sign` finalises; an endoscopy report with unreviewed AI
 * findings is not signed; a signed version never changes; an amendment keeps version 1 readable, then
 * superseded), radiology measurements and pathology annotation regions (the AI's included) in SRs that
 * dciodvfy finds no error in, and the ESGE quality figures over several reports and endoscopists.
 */
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Archive } from '../archive/archive.js';
import type { EndoscopyContent, PathologyContent, RadiologyContent } from '../contracts/reports.js';
import { buildAnnotationInstance } from '../pathology/annotations/ann-writer.js';
import { groupByLabel } from '../pathology/annotations/groups.js';
import { AnnotationBuffer, recordsOf } from '../pathology/annotations/records.js';
import type { Slide } from '../pathology/slide.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { dciodvfyErrors, requireDciodvfy } from '../test-support/dciodvfy.js';
import { storeEndoscopyStudy, storeImageStudy } from '../test-support/endoscopy-study.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { canonicalJson, contentSha256 } from './report-content.js';
import type { ReportActor, ReportService } from './report-service.js';

dcmjs.log.setLevel('silent');
requireDciodvfy();
const WSI = '1.2.840.10008.5.1.4.1.1.77.1.6';

let t: TestApp;
let service: ReportService;
let archive: Archive;
const physician = (subject = 'doc-1', name = 'BS. Lê Văn Minh'): ReportActor => ({ subject, name, permissions: new Set(['read', 'report', 'sign']) });
const resident: ReportActor = { subject: 'res-1', name: 'BS. Phạm Quốc Huy', permissions: new Set(['read', 'report']) };

beforeAll(async () => {
  t = await buildTestApp();
  service = t.services.reports!.service;
  archive = t.services.archive;
}, 60_000);

afterAll(async () => {
  await t?.close();
});

async function stored(studyInstanceUid: string, series: string, sop: string): Promise<Buffer> {
  const [instance] = await archive.findInstances({ studyInstanceUid, seriesInstanceUid: series, sopInstanceUid: sop });
  const chunks: Buffer[] = [];
  for await (const chunk of await archive.openInstance(instance!)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

type Item = Record<string, unknown>;
const list = (value: unknown): Item[] => (Array.isArray(value) ? (value as Item[]) : value === undefined ? [] : [value as Item]);
const tree = (part10: Buffer): Item[] => {
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dcmjs.data.DicomMessage.readFile(part10.buffer.slice(part10.byteOffset, part10.byteOffset + part10.length) as ArrayBuffer).dict) as Item;
  const walk = (node: Item): Item[] => list(node['ContentSequence']).flatMap((child) => [child, ...walk(child)]);
  return walk(ds);
};

describe('the content hash', () => {
  it('is SHA-256 of RFC 8785 canonical JSON: keys sorted, no white space, the same whatever the key order', () => {
    // RFC 8785 §3.2.3 sorting example (UTF-16 code unit order), and ECMAScript number forms.
    expect(canonicalJson({ b: [1, 1e21, 0.000001, -0], a: { z: 'é', y: null, x: true }, '\u20ac': 1, '\r': 2, '1': 3 })).toBe(
      '{"\\r":2,"1":3,"a":{"x":true,"y":null,"z":"é"},"b":[1,1e+21,0.000001,0],"€":1}',
    );
    const a: RadiologyContent = { kind: 'radiology', findings: 'Nốt mờ thùy trên phổi phải', impression: 'Theo dõi', keyImages: [] };
    const b = JSON.parse('{"keyImages":[],"impression":"Theo dõi","findings":"Nốt mờ thùy trên phổi phải","kind":"radiology"}') as RadiologyContent;
    expect(contentSha256(a)).toBe(contentSha256(b));
    expect(contentSha256(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(contentSha256({ ...a, impression: 'Theo dõi.' })).not.toBe(contentSha256(a));
  });
});

describe('states and versions', () => {
  it('a radiology report: only sign finalises, a signed version never changes, an amendment keeps version 1 readable and then superseded', async () => {
    const image = await storeImageStudy(archive, { modality: 'CT', studyDate: '20260201' });
    const ref = { seriesInstanceUid: image.seriesInstanceUid, sopInstanceUid: image.sopInstanceUid };
    const content: RadiologyContent = {
      kind: 'radiology',
      procedure: 'CT ngực không tiêm thuốc cản quang',
      clinicalInformation: 'Ho kéo dài',
      findings: 'Nốt đặc thùy trên phổi phải.',
      findingCodes: [{ value: '4147007', scheme: 'SCT', meaning: 'Mass' }],
      impression: 'Nốt phổi 8 mm, đề nghị chụp lại sau 3 tháng.',
      measurements: [
        { type: 'length', value: 8.2, image: ref, points: [3, 4, 11, 10], label: 'Nốt 1' },
        { type: 'area', value: 41.5, image: ref, points: [2, 2, 12, 2, 12, 9, 2, 9] },
      ],
      keyImages: [{ ...ref, frame: 1, caption: 'Nốt phổi' }],
    };
    const created = await service.create({ studyInstanceUid: image.studyInstanceUid, kind: 'radiology', content }, resident);
    const id = created.report.id;
    // A single-frame image is referenced without a frame number.
    expect(created.versions[0]!.content.keyImages![0]!.frame).toBeUndefined();
    await expect(service.sign(id, undefined, resident)).rejects.toMatchObject({ code: 'FORBIDDEN' });
    expect((await service.get(id)).versions[0]!.status).toBe('draft');

    const signed = await service.sign(id, 0, physician());
    const v1 = signed.versions[0]!;
    expect(v1).toMatchObject({ status: 'final', signature: { signer: { subject: 'doc-1', name: 'BS. Lê Văn Minh' } } });
    expect(v1.signature!.contentSha256).toBe(contentSha256(v1.content));
    await expect(service.update(id, content, undefined, physician())).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(service.sign(id, undefined, physician())).rejects.toMatchObject({ code: 'CONFLICT' });

    const sr1 = await stored(image.studyInstanceUid, v1.dicom!.srSeriesInstanceUid, v1.dicom!.srSopInstanceUid);
    expect(await dciodvfyErrors(sr1, 'radiology-v1.dcm', { withoutValues: true })).toEqual([]);
    const items = tree(sr1);
    const nums = items.filter((i) => i['ValueType'] === 'NUM').map((i) => [list(i['ConceptNameCodeSequence'])[0]!['CodeValue'], list(i['MeasuredValueSequence'])[0]!['NumericValue'], list(list(i['MeasuredValueSequence'])[0]!['MeasurementUnitsCodeSequence'])[0]!['CodeValue']]);
    expect(nums).toEqual([
      ['410668003', 8.2, 'mm'],
      ['42798000', 41.5, 'mm2'],
    ]);
    const shapes = items.filter((i) => i['ValueType'] === 'SCOORD').map((i) => [i['GraphicType'], (i['GraphicData'] as number[]).length]);
    expect(shapes).toEqual([
      ['POLYLINE', 4],
      ['POLYLINE', 10],
    ]);

    const amendment = await service.amend(id, 'Bổ sung so sánh phim cũ', physician('doc-2', 'BS. Đỗ Thu Hà'));
    expect(amendment.versions.map((v) => [v.version, v.status])).toEqual([
      [1, 'final'],
      [2, 'draft'],
    ]);
    await expect(service.amend(id, 'twice', physician())).rejects.toMatchObject({ code: 'CONFLICT' });
    await service.update(id, { ...content, impression: 'Nốt phổi 8 mm, không thay đổi so với phim cũ.' }, 0, physician('doc-2', 'BS. Đỗ Thu Hà'));
    const final = await service.sign(id, 1, physician('doc-2', 'BS. Đỗ Thu Hà'));
    expect(final.versions.map((v) => [v.version, v.status, v.supersededBy])).toEqual([
      [1, 'superseded', 2],
      [2, 'final', null],
    ]);
    const again = (await service.version(id, 1)).version;
    expect(again.content).toEqual(v1.content);
    expect(again.signature).toEqual(v1.signature);
    expect(contentSha256(again.content)).toBe(v1.signature!.contentSha256);
    // Both SRs stay in the study.
    expect(await stored(image.studyInstanceUid, v1.dicom!.srSeriesInstanceUid, v1.dicom!.srSopInstanceUid)).toEqual(sr1);
    const v2 = final.versions[1]!;
    expect(await dciodvfyErrors(await stored(image.studyInstanceUid, v2.dicom!.srSeriesInstanceUid, v2.dicom!.srSopInstanceUid), 'radiology-v2.dcm', { withoutValues: true })).toEqual([]);
  });

  it('an endoscopy report with AI findings not reviewed is not signed', async () => {
    const study = await storeEndoscopyStudy(archive, { patientName: 'Võ^Thanh Tâm' });
    const created = await service.create({ studyInstanceUid: study.studyInstanceUid, kind: 'endoscopy' }, resident);
    await expect(service.sign(created.report.id, undefined, physician())).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/3 AI finding\(s\) are not reviewed/) });
  });

  it('refuses references the study does not hold, naming the field', async () => {
    const image = await storeImageStudy(archive);
    await expect(
      service.create({ studyInstanceUid: image.studyInstanceUid, kind: 'radiology', content: { kind: 'radiology', measurements: [{ type: 'length', value: 1, image: { seriesInstanceUid: image.seriesInstanceUid, sopInstanceUid: newUid() }, points: [0, 0, 1, 1] }] } }, resident),
    ).rejects.toMatchObject({ code: 'BAD_REQUEST', message: 'Body field "content.measurements[0].image": no such image in the study' });
    await expect(
      service.create({ studyInstanceUid: image.studyInstanceUid, kind: 'radiology', content: { kind: 'radiology', measurements: [{ type: 'area', value: 1, image: { seriesInstanceUid: image.seriesInstanceUid, sopInstanceUid: image.sopInstanceUid }, points: [0, 0, 1, 1] }] } }, resident),
    ).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/an area is a polygon of at least three points/) });
    await expect(service.create({ studyInstanceUid: newUid(), kind: 'radiology' }, resident)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(service.create({ studyInstanceUid: image.studyInstanceUid, kind: 'pathology', content: { kind: 'radiology' } }, resident)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});

describe('a pathology report', () => {
  it('links findings to annotation regions of the slide (the AI’s marked as such) and cites them in a dciodvfy-clean SR', async () => {
    const studyInstanceUid = newUid();
    const slideSeries = newUid();
    const slideSop = newUid();
    await (await archive.scanAndStore((async function* () { yield makeInstance({ studyInstanceUid, seriesInstanceUid: slideSeries, sopInstanceUid: slideSop, sopClassUid: WSI, numberOfFrames: 4, rows: 16, columns: 16, patientName: 'Hoàng^Minh Châu', modality: 'SM' }); })())).completion;
    const buffer = new AnnotationBuffer();
    for (let i = 0; i < 5; i += 1) buffer.push(10 + i, 20 + i, 0, 0, 1, 1, 0.9, 0);
    const groups = await groupByLabel(['tumour cell'], (async function* () { yield recordsOf(buffer.toBuffer()); })());
    const slide = { studyInstanceUid, seriesInstanceUid: slideSeries, levels: [], baseInstance: { sopClassUid: WSI, sopInstanceUid: slideSop }, baseAttributes: {}, frameOfReferenceUid: '1.2.3.9', allInstances: [{ sopClassUid: WSI, sopInstanceUid: slideSop }] } as unknown as Slide;
    const ann = buildAnnotationInstance({ jobId: `job-${studyInstanceUid}`, slide, model: { id: 'dark-spot', version: '1.0.0', sha256: 'a'.repeat(64), operatingThreshold: 0.5 }, groups, patientStudy: { StudyInstanceUID: studyInstanceUid, PatientName: 'Hoàng^Minh Châu', PatientID: 'GPB-7' } });
    expect((await (await archive.scanAndStore((async function* () { yield ann.part10; })())).completion).ok).toBe(true);

    const content: PathologyContent = {
      kind: 'pathology',
      specimen: { identifier: 'GPB-2026-77', description: 'Polyp đại tràng sigma, 6 mm', collection: 'polypectomy', site: { value: '60184004', scheme: 'SCT', meaning: 'Sigmoid colon' } },
      diagnosis: { text: 'U tuyến ống, loạn sản độ thấp', code: { value: '444408007', scheme: 'SCT', meaning: 'Tubular adenoma' } },
      grade: 'low-grade-dysplasia',
      findings: [{ text: 'Các tuyến ống loạn sản', regions: [{ seriesInstanceUid: ann.seriesInstanceUid, sopInstanceUid: ann.sopInstanceUid, group: 1, annotation: 3 }] }],
      keyImages: [{ seriesInstanceUid: slideSeries, sopInstanceUid: slideSop, frame: 2, caption: 'Vùng u tuyến' }],
    };
    await expect(
      service.create({ studyInstanceUid, kind: 'pathology', content: { ...content, findings: [{ text: 'x', regions: [{ seriesInstanceUid: ann.seriesInstanceUid, sopInstanceUid: ann.sopInstanceUid, group: 2 }] }] } }, resident),
    ).rejects.toMatchObject({ message: 'Body field "content.findings[0].regions[0].group": the annotation instance has no group 2' });
    const created = await service.create({ studyInstanceUid, kind: 'pathology', content }, resident);
    const region = (created.versions[0]!.content as PathologyContent).findings![0]!.regions![0]!;
    expect(region).toMatchObject({ group: 1, annotation: 3, groupLabel: 'tumour cell', ai: true, groupUid: expect.stringMatching(/^2\.25\./) });
    const signed = await service.sign(created.report.id, undefined, physician('path-1', 'BS. Ngô Bảo Ngọc'));
    const v1 = signed.versions[0]!;
    const sr = await stored(studyInstanceUid, v1.dicom!.srSeriesInstanceUid, v1.dicom!.srSopInstanceUid);
    expect(await dciodvfyErrors(sr, 'pathology-v1.dcm', { withoutValues: true })).toEqual([]);
    const items = tree(sr);
    expect(items.filter((i) => i['ValueType'] === 'COMPOSITE').map((i) => list(i['ReferencedSOPSequence'])[0]!['ReferencedSOPInstanceUID'])).toEqual([ann.sopInstanceUid]);
    expect(items.filter((i) => i['ValueType'] === 'UIDREF').map((i) => i['UID'])).toEqual([region.groupUid]);
    const key = items.find((i) => i['ValueType'] === 'IMAGE')!;
    expect(list(key['ReferencedSOPSequence'])[0]).toMatchObject({ ReferencedSOPInstanceUID: slideSop, ReferencedFrameNumber: 2 });
    const { pdf } = await service.pdf(created.report.id);
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(await dciodvfyErrors(await stored(studyInstanceUid, v1.dicom!.pdfSeriesInstanceUid, v1.dicom!.pdfSopInstanceUid), 'pathology-pdf.dcm', { withoutValues: true })).toEqual([]);
  });
});

describe('endoscopy quality figures (ESGE 2017)', () => {
  it('counts adenoma, polyp and caecal intubation rates, adequate preparation and the median withdrawal time per endoscopist', async () => {
    const lan = physician('endo-lan', 'BS. Trần Thị Lan');
    const tuan = physician('endo-tuan', 'BS. Nguyễn Anh Tuấn');
    const base = (overrides: Partial<EndoscopyContent>): EndoscopyContent => ({
      kind: 'endoscopy',
      bowelPreparation: { right: 2, transverse: 2, left: 2 },
      extent: { reached: 'caecum' },
      withdrawal: { seconds: 420, source: 'manual' },
      ...overrides,
    });
    const adenoma = { location: 'sigmoid' as const, sizeMm: 5, resection: { method: 'cold-snare' as const, completeness: 'complete' as const }, histology: { type: 'tubular-adenoma' as const, status: 'confirmed' as const } };
    const hyperplastic = { location: 'rectum' as const, sizeMm: 3, resection: { method: 'cold-forceps' as const }, histology: { type: 'hyperplastic' as const, status: 'suspected' as const } };
    const procedures: Array<[ReportActor, string, EndoscopyContent]> = [
      [lan, '20260301', base({ lesions: [adenoma], withdrawal: { seconds: 900, source: 'manual' } })],
      [lan, '20260302', base({ withdrawal: { seconds: 300, source: 'manual' } })],
      [lan, '20260303', base({ lesions: [hyperplastic], bowelPreparation: { right: 1, transverse: 2, left: 3 } })],
      [lan, '20260304', base({ extent: { reached: 'transverse', limitation: 'Gập góc' }, withdrawal: { seconds: 480, source: 'manual' } })],
      [tuan, '20260305', base({ lesions: [adenoma] })],
      [tuan, '20260306', base({ withdrawal: { seconds: 200, source: 'manual' } })],
      [lan, '20260420', base({ lesions: [adenoma] })], // outside the period
    ];
    for (const [actor, date, content] of procedures) {
      const image = await storeImageStudy(archive, { studyDate: date });
      const created = await service.create({ studyInstanceUid: image.studyInstanceUid, kind: 'endoscopy', content }, actor);
      await service.sign(created.report.id, undefined, actor);
    }
    // A draft does not count.
    const draftStudy = await storeImageStudy(archive, { studyDate: '20260310' });
    await service.create({ studyInstanceUid: draftStudy.studyInstanceUid, kind: 'endoscopy', content: base({ lesions: [adenoma] }) }, lan);

    const quality = await service.quality('20260301', '20260331');
    expect(quality.source).toMatch(/Kaminski MF.*European Society of Gastrointestinal Endoscopy \(ESGE\).*Endoscopy 2017;49:378-397/);
    expect(quality.endoscopists.map((e) => e.endoscopist.subject)).toEqual(['endo-tuan', 'endo-lan']);
    const lanFigures = quality.endoscopists.find((e) => e.endoscopist.subject === 'endo-lan')!.figures;
    expect(lanFigures.procedures).toBe(4);
    expect(lanFigures.adenomaDetectionRate).toMatchObject({ numerator: 1, denominator: 4, value: 0.25, target: { minimum: 0.25 }, met: true });
    expect(lanFigures.polypDetectionRate).toMatchObject({ numerator: 2, denominator: 4, value: 0.5, target: { minimum: null }, met: null });
    expect(lanFigures.caecalIntubationRate).toMatchObject({ numerator: 3, denominator: 4, value: 0.75, target: { minimum: 0.9 }, met: false });
    expect(lanFigures.adequateBowelPreparationRate).toMatchObject({ numerator: 3, denominator: 4, met: false });
    // Withdrawal times of procedures without a resection: 300 and 480 s.
    expect(lanFigures.medianWithdrawalTimeSeconds).toMatchObject({ value: 390, count: 2, target: { minimum: 360 }, met: true });
    expect(lanFigures.awaitingHistology).toBe(1);
    const tuanFigures = quality.endoscopists.find((e) => e.endoscopist.subject === 'endo-tuan')!.figures;
    expect(tuanFigures).toMatchObject({ procedures: 2, adenomaDetectionRate: { value: 0.5, met: true }, medianWithdrawalTimeSeconds: { value: 200, met: false } });
    expect(quality.overall.procedures).toBe(6);
    const onlyTuan = await service.quality('20260301', '20260331', 'endo-tuan');
    expect(onlyTuan.endoscopists).toHaveLength(1);
    expect(onlyTuan.overall.procedures).toBe(2);
    await expect(service.quality('20260331', '20260301')).rejects.toMatchObject({ code: 'BAD_QUERY' });
  });
});
