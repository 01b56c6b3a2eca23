/**
 * Behaviour every Catalog implementation must show, run by each backend's test file. Each test gets a
 * fresh, migrated catalog from `setup`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import type { PixelDataLocation } from '../dicom/instance-header.js';
import type { Catalog, NewInstance } from './catalog.js';
import { parseQidoQuery } from './parse-qido-query.js';
import type { QidoLevel } from './qido-query.js';

export interface CatalogUnderTest {
  catalog: Catalog;
  teardown(): Promise<void>;
}

const CT_IMAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

export interface FakeInstance {
  study: string;
  series: string;
  sop: string;
  patientName?: string;
  patientId?: string;
  birthDate?: string;
  sex?: string;
  studyDate?: string;
  studyTime?: string;
  accession?: string;
  referring?: string;
  studyDescription?: string;
  studyId?: string;
  modality?: string;
  seriesDescription?: string;
  seriesNumber?: number;
  instanceNumber?: number;
  sopClass?: string;
  frames?: number;
  pixelData?: PixelDataLocation;
  extra?: DicomJsonDataset;
}

const str = (vr: string, value: string | undefined) => (value === undefined ? undefined : { vr, Value: [value] });
const num = (vr: string, value: number | undefined) => (value === undefined ? undefined : { vr, Value: [value] });
const pn = (value: string | undefined) => (value === undefined ? undefined : { vr: 'PN', Value: [{ Alphabetic: value }] });

function dataset(f: FakeInstance): DicomJsonDataset {
  const elements: Record<string, DicomJsonDataset[string] | undefined> = {
    '00080005': str('CS', 'ISO_IR 100'),
    '00080016': str('UI', f.sopClass ?? CT_IMAGE),
    '00080018': str('UI', f.sop),
    '00080020': str('DA', f.studyDate),
    '00080030': str('TM', f.studyTime),
    '00080050': str('SH', f.accession),
    '00080060': str('CS', f.modality ?? 'CT'),
    '00080090': pn(f.referring),
    '00081030': str('LO', f.studyDescription),
    '0008103E': str('LO', f.seriesDescription),
    '00100010': pn(f.patientName),
    '00100020': str('LO', f.patientId),
    '00100030': str('DA', f.birthDate),
    '00100040': str('CS', f.sex),
    '0020000D': str('UI', f.study),
    '0020000E': str('UI', f.series),
    '00200010': str('SH', f.studyId),
    '00200011': str('IS', f.seriesNumber === undefined ? undefined : String(f.seriesNumber)),
    '00200013': num('IS', f.instanceNumber),
    '00280010': num('US', 4),
    '00280011': num('US', 4),
    '00280100': num('US', 16),
  };
  const defined = Object.entries(elements).filter((e): e is [string, DicomJsonDataset[string]] => e[1] !== undefined);
  return { ...Object.fromEntries(defined), ...f.extra };
}

export function fakeInstance(f: FakeInstance): NewInstance {
  const frames = f.frames ?? 1;
  return {
    blobKey: `blobs/${f.sop}.dcm`,
    blobSize: 1000 + frames * 32,
    header: {
      sopClassUid: f.sopClass ?? CT_IMAGE,
      sopInstanceUid: f.sop,
      studyInstanceUid: f.study,
      seriesInstanceUid: f.series,
      transferSyntaxUid: EXPLICIT_LE,
      dataset: dataset(f),
      numberOfFrames: frames,
      rows: 4,
      columns: 4,
      bitsAllocated: 16,
      samplesPerPixel: 1,
      pixelData: f.pixelData ?? {
        tag: '7FE00010',
        valueOffset: 1000,
        valueLength: frames * 32,
        encapsulated: false,
        frames: Array.from({ length: frames }, (_, i) => [[1000 + i * 32, 32]]),
        isVideo: false,
      },
    },
  };
}

const LIMITS = { defaultLimit: 100, maxLimit: 1000 };

type Params = Record<string, string | string[]>;

function query(level: QidoLevel, params: Params = {}, scope: { studyInstanceUid?: string; seriesInstanceUid?: string } = {}) {
  return parseQidoQuery(level, scope, params, LIMITS);
}

const value = (ds: DicomJsonDataset | undefined, tag: string) => ds?.[tag]?.Value;
const first = (ds: DicomJsonDataset | undefined, tag: string) => ds?.[tag]?.Value?.[0];

export function runCatalogContract(name: string, setup: () => Promise<CatalogUnderTest>): void {
  describe(`${name} catalog`, () => {
    let under: CatalogUnderTest;
    let catalog: Catalog;

    beforeEach(async () => {
      under = await setup();
      catalog = under.catalog;
    });
    afterEach(async () => {
      await under.teardown();
    });

    const store = async (...instances: FakeInstance[]) => {
      for (const f of instances) expect(await catalog.storeInstance(fakeInstance(f))).toEqual({ status: 'stored' });
    };
    const search = async (level: QidoLevel, params: Params = {}, scope = {}) =>
      (await catalog.search(query(level, params, scope))).matches;
    const uidsOf = async (level: QidoLevel, params: Params, tag: string, scope = {}) =>
      (await search(level, params, scope)).map((ds) => first(ds, tag));

    const STUDY = '0020000D';
    const SERIES = '0020000E';
    const SOP = '00080018';

    describe('storing and finding', () => {
      it('finds a stored instance at the study, series and instance level', async () => {
        await store({ study: '1.1', series: '1.1.1', sop: '1.1.1.1', patientName: 'DOE^JANE', patientId: 'P1' });
        expect(await uidsOf('study', {}, STUDY)).toEqual(['1.1']);
        expect(await uidsOf('series', {}, SERIES, { studyInstanceUid: '1.1' })).toEqual(['1.1.1']);
        expect(await uidsOf('instance', {}, SOP, { studyInstanceUid: '1.1', seriesInstanceUid: '1.1.1' })).toEqual(['1.1.1.1']);
      });

      it('returns the default study attributes with their VRs', async () => {
        await store({
          study: '1.2', series: '1.2.1', sop: '1.2.1.1', patientName: 'DOE^JANE', patientId: 'P1', birthDate: '19700101',
          sex: 'F', studyDate: '20240102', studyTime: '101530', accession: 'ACC1', referring: 'WHO^DR',
          studyDescription: 'CHEST', studyId: 'S1',
        });
        const [study] = await search('study');
        expect(study).toMatchObject({
          '00080005': { vr: 'CS', Value: ['ISO_IR 100'] },
          '00080020': { vr: 'DA', Value: ['20240102'] },
          '00080030': { vr: 'TM', Value: ['101530'] },
          '00080050': { vr: 'SH', Value: ['ACC1'] },
          '00080056': { vr: 'CS', Value: ['ONLINE'] },
          '00080061': { vr: 'CS', Value: ['CT'] },
          '00080090': { vr: 'PN', Value: [{ Alphabetic: 'WHO^DR' }] },
          '00081030': { vr: 'LO', Value: ['CHEST'] },
          '00100010': { vr: 'PN', Value: [{ Alphabetic: 'DOE^JANE' }] },
          '00100020': { vr: 'LO', Value: ['P1'] },
          '00100030': { vr: 'DA', Value: ['19700101'] },
          '00100040': { vr: 'CS', Value: ['F'] },
          '0020000D': { vr: 'UI', Value: ['1.2'] },
          '00200010': { vr: 'SH', Value: ['S1'] },
          '00201206': { vr: 'IS', Value: [1] },
          '00201208': { vr: 'IS', Value: [1] },
        });
        expect(study).not.toHaveProperty('00080201'); // TimezoneOffsetFromUTC only when present
      });

      it('returns the default series and instance attributes with their VRs', async () => {
        await store({ study: '1.3', series: '1.3.1', sop: '1.3.1.1', modality: 'MR', seriesDescription: 'T1', seriesNumber: 7, instanceNumber: 3 });
        const [series] = await search('series', {}, { studyInstanceUid: '1.3' });
        expect(series).toMatchObject({
          '00080060': { vr: 'CS', Value: ['MR'] },
          '0008103E': { vr: 'LO', Value: ['T1'] },
          '0020000D': { vr: 'UI', Value: ['1.3'] },
          '0020000E': { vr: 'UI', Value: ['1.3.1'] },
          '00200011': { vr: 'IS', Value: [7] },
          '00201209': { vr: 'IS', Value: [1] },
        });
        const [instance] = await search('instance', {}, { studyInstanceUid: '1.3', seriesInstanceUid: '1.3.1' });
        expect(instance).toMatchObject({
          '00080016': { vr: 'UI', Value: [CT_IMAGE] },
          '00080018': { vr: 'UI', Value: ['1.3.1.1'] },
          '00080056': { vr: 'CS', Value: ['ONLINE'] },
          '00200013': { vr: 'IS', Value: [3] },
          '00280008': { vr: 'IS', Value: [1] },
          '00280010': { vr: 'US', Value: [4] },
          '00280011': { vr: 'US', Value: [4] },
          '00280100': { vr: 'US', Value: [16] },
          '0020000D': { vr: 'UI', Value: ['1.3'] },
          '0020000E': { vr: 'UI', Value: ['1.3.1'] },
        });
      });

      it('indexes an instance prepared ahead (prepareInstance, during its blob write) exactly as one that was not', async () => {
        const fields = { patientName: 'DOE^JOHN', patientId: 'P4', modality: 'MR', seriesNumber: 2, instanceNumber: 5, studyDate: '20240301', accession: 'ACC4' };
        const prepared = fakeInstance({ study: '1.4', series: '1.4.1', sop: '1.4.1.1', ...fields });
        const plain = fakeInstance({ study: '1.5', series: '1.5.1', sop: '1.5.1.1', ...fields });
        catalog.prepareInstance?.(prepared.header);
        expect(await catalog.storeInstance(prepared)).toEqual({ status: 'stored' });
        expect(await catalog.storeInstance(plain)).toEqual({ status: 'stored' });
        const found = async (study: string, series: string) => ({
          study: await search('study', { StudyInstanceUID: study }),
          series: await search('series', {}, { studyInstanceUid: study }),
          instances: await search('instance', {}, { studyInstanceUid: study, seriesInstanceUid: series }),
        });
        const asPlain = JSON.stringify(await found('1.4', '1.4.1')).replaceAll('"1.4', '"1.5');
        expect(asPlain).toBe(JSON.stringify(await found('1.5', '1.5.1')));
        expect(asPlain).toContain('DOE^JOHN');
      });

      it('keeps nothing of an instance prepared but never stored (its blob write failed)', async () => {
        const instance = fakeInstance({ study: '1.6', series: '1.6.1', sop: '1.6.1.1', patientId: 'P6' });
        catalog.prepareInstance?.(instance.header);
        expect(await search('study', { StudyInstanceUID: '1.6' })).toEqual([]);
        expect(await search('instance', { SOPInstanceUID: '1.6.1.1' })).toEqual([]);
        // …and a later store of the same header indexes it normally.
        expect(await catalog.storeInstance(instance)).toEqual({ status: 'stored' });
        expect(await uidsOf('instance', { SOPInstanceUID: '1.6.1.1' }, SOP)).toEqual(['1.6.1.1']);
      });

      it('counts the series and instances of each study and series', async () => {
        await store(
          { study: '2.1', series: '2.1.1', sop: '2.1.1.1' },
          { study: '2.1', series: '2.1.1', sop: '2.1.1.2' },
          { study: '2.1', series: '2.1.2', sop: '2.1.2.1' },
        );
        const [study] = await search('study');
        expect(first(study, '00201206')).toBe(2);
        expect(first(study, '00201208')).toBe(3);
        const series = await search('series', {}, { studyInstanceUid: '2.1' });
        expect(series.map((s) => first(s, '00201209'))).toEqual([2, 1]);
      });

      it('lists ModalitiesInStudy of a two-modality study and matches on any of them', async () => {
        await store(
          { study: '3.1', series: '3.1.1', sop: '3.1.1.1', modality: 'MR' },
          { study: '3.1', series: '3.1.2', sop: '3.1.2.1', modality: 'CT' },
          { study: '3.2', series: '3.2.1', sop: '3.2.1.1', modality: 'US' },
        );
        const [study] = await search('study', { StudyInstanceUID: '3.1' });
        expect(value(study, '00080061')).toEqual(['CT', 'MR']);
        expect(await uidsOf('study', { ModalitiesInStudy: 'MR' }, STUDY)).toEqual(['3.1']);
        expect(await uidsOf('study', { ModalitiesInStudy: 'CT' }, STUDY)).toEqual(['3.1']);
        expect(await uidsOf('study', { '00080061': 'CT\\US' }, STUDY)).toEqual(['3.1', '3.2']);
        expect(await uidsOf('study', { ModalitiesInStudy: 'US,MR' }, STUDY)).toEqual(['3.1', '3.2']);
        expect(await uidsOf('study', { ModalitiesInStudy: 'XA' }, STUDY)).toEqual([]);
      });
    });

    describe('matching', () => {
      it('matches a single value exactly and case-sensitively for non-name strings', async () => {
        await store(
          { study: '4.1', series: '4.1.1', sop: '4.1.1.1', accession: 'ABC', studyDescription: 'Chest' },
          { study: '4.2', series: '4.2.1', sop: '4.2.1.1', accession: 'ABCD', studyDescription: 'chest' },
        );
        expect(await uidsOf('study', { AccessionNumber: 'ABC' }, STUDY)).toEqual(['4.1']);
        expect(await uidsOf('study', { StudyDescription: 'Chest' }, STUDY)).toEqual(['4.1']);
        expect(await uidsOf('study', { StudyDescription: 'Ch*' }, STUDY)).toEqual(['4.1']);
        expect(await uidsOf('study', { AccessionNumber: 'abc' }, STUDY)).toEqual([]);
      });

      it('matches person names case-insensitively', async () => {
        await store(
          { study: '5.1', series: '5.1.1', sop: '5.1.1.1', patientName: 'Doe^John', patientId: 'A', referring: 'House^Gregory' },
          { study: '5.2', series: '5.2.1', sop: '5.2.1.1', patientName: 'DOE^JANE', patientId: 'B' },
        );
        expect(await uidsOf('study', { PatientName: 'DOE^JOHN' }, STUDY)).toEqual(['5.1']);
        expect(await uidsOf('study', { PatientName: 'doe^john' }, STUDY)).toEqual(['5.1']);
        expect(await uidsOf('study', { PatientName: 'doe*' }, STUDY)).toEqual(['5.1', '5.2']);
        expect(await uidsOf('study', { ReferringPhysicianName: 'house*' }, STUDY)).toEqual(['5.1']);
        const [study] = await search('study', { PatientName: 'doe^john' });
        expect(first(study, '00100010')).toEqual({ Alphabetic: 'Doe^John' });
      });

      it('with fuzzymatching finds a name by the start of any component', async () => {
        await store(
          { study: '6.1', series: '6.1.1', sop: '6.1.1.1', patientName: 'SMITH^ANNA', patientId: 'A' },
          { study: '6.2', series: '6.2.1', sop: '6.2.1.1', patientName: 'ANDERSON^BOB', patientId: 'B' },
          { study: '6.3', series: '6.3.1', sop: '6.3.1.1', patientName: 'JONES^CARL', patientId: 'C' },
        );
        expect(await uidsOf('study', { PatientName: 'an', fuzzymatching: 'true' }, STUDY)).toEqual(['6.1', '6.2']);
        expect(await uidsOf('study', { PatientName: 'an', fuzzymatching: 'false' }, STUDY)).toEqual([]);
      });

      it('matches a list of UIDs separated by commas or backslashes', async () => {
        await store(
          { study: '7.1', series: '7.1.1', sop: '7.1.1.1' },
          { study: '7.2', series: '7.2.1', sop: '7.2.1.1' },
          { study: '7.3', series: '7.3.1', sop: '7.3.1.1' },
        );
        expect(await uidsOf('study', { StudyInstanceUID: '7.1,7.3' }, STUDY)).toEqual(['7.1', '7.3']);
        expect(await uidsOf('study', { StudyInstanceUID: '7.2\\7.3' }, STUDY)).toEqual(['7.2', '7.3']);
        expect(await uidsOf('instance', { SOPInstanceUID: '7.1.1.1,7.3.1.1' }, SOP)).toEqual(['7.1.1.1', '7.3.1.1']);
      });

      it('matches wildcards * and ? and treats SQL LIKE characters literally', async () => {
        await store(
          { study: '8.1', series: '8.1.1', sop: '8.1.1.1', accession: 'A1_X' },
          { study: '8.2', series: '8.2.1', sop: '8.2.1.1', accession: 'A12X' },
          { study: '8.3', series: '8.3.1', sop: '8.3.1.1', accession: '100%' },
        );
        expect(await uidsOf('study', { AccessionNumber: 'A1?X' }, STUDY)).toEqual(['8.1', '8.2']);
        expect(await uidsOf('study', { AccessionNumber: 'A1_*' }, STUDY)).toEqual(['8.1']);
        expect(await uidsOf('study', { AccessionNumber: '*%' }, STUDY)).toEqual(['8.3']);
        expect(await uidsOf('study', { AccessionNumber: 'A*' }, STUDY)).toEqual(['8.1', '8.2']);
      });

      it('matches closed and open date ranges, also given as ISO dates', async () => {
        await store(
          { study: '9.1', series: '9.1.1', sop: '9.1.1.1', studyDate: '20230115' },
          { study: '9.2', series: '9.2.1', sop: '9.2.1.1', studyDate: '20230601' },
          { study: '9.3', series: '9.3.1', sop: '9.3.1.1', studyDate: '20240101' },
        );
        expect(await uidsOf('study', { StudyDate: '20230601' }, STUDY)).toEqual(['9.2']);
        expect(await uidsOf('study', { StudyDate: '20230101-20230601' }, STUDY)).toEqual(['9.1', '9.2']);
        expect(await uidsOf('study', { StudyDate: '-20230531' }, STUDY)).toEqual(['9.1']);
        expect(await uidsOf('study', { StudyDate: '20230601-' }, STUDY)).toEqual(['9.2', '9.3']);
        expect(await uidsOf('study', { StudyDate: '2023-06-01-2024-01-01' }, STUDY)).toEqual(['9.2', '9.3']);
      });

      it('matches time ranges, an upper bound covering its whole minute', async () => {
        await store(
          { study: '10.1', series: '10.1.1', sop: '10.1.1.1', studyTime: '080000' },
          { study: '10.2', series: '10.2.1', sop: '10.2.1.1', studyTime: '101530.5' },
          { study: '10.3', series: '10.3.1', sop: '10.3.1.1', studyTime: '23:59:59' },
        );
        expect(await uidsOf('study', { StudyTime: '0800-1015' }, STUDY)).toEqual(['10.1', '10.2']);
        expect(await uidsOf('study', { StudyTime: '1016-' }, STUDY)).toEqual(['10.3']);
        expect(await uidsOf('study', { StudyTime: '-08' }, STUDY)).toEqual(['10.1']);
      });

      it('universal matching returns the attribute without filtering', async () => {
        await store(
          { study: '11.1', series: '11.1.1', sop: '11.1.1.1', studyDescription: 'HEAD' },
          { study: '11.2', series: '11.2.1', sop: '11.2.1.1' },
        );
        const results = await search('instance', { StudyDescription: '', SeriesDescription: '*' });
        expect(results.map((r) => first(r, SOP))).toEqual(['11.1.1.1', '11.2.1.1']);
        expect(results[0]).toHaveProperty('00081030', { vr: 'LO', Value: ['HEAD'] });
        expect(results[1]).toHaveProperty('00081030', { vr: 'LO' });
        expect(results[0]).toHaveProperty('0008103E');
      });

      it('searches series and instances across all studies by study attributes', async () => {
        await store(
          { study: '12.1', series: '12.1.1', sop: '12.1.1.1', patientId: 'PX', patientName: 'X^Y', modality: 'MR' },
          { study: '12.2', series: '12.2.1', sop: '12.2.1.1', patientId: 'PZ', patientName: 'Z^Y', modality: 'MR' },
        );
        const series = await search('series', { PatientID: 'PX', Modality: 'MR' });
        expect(series.map((s) => first(s, SERIES))).toEqual(['12.1.1']);
        expect(first(series[0], '00100020')).toBe('PX');
        expect(first(series[0], STUDY)).toBe('12.1');
        expect(await uidsOf('instance', { StudyInstanceUID: '12.2' }, SOP)).toEqual(['12.2.1.1']);
        expect(await uidsOf('instance', { Modality: 'MR', PatientName: 'z*' }, SOP)).toEqual(['12.2.1.1']);
      });

      it('scopes series and instance searches to the study and series of the path', async () => {
        await store(
          { study: '13.1', series: '13.1.1', sop: '13.1.1.1' },
          { study: '13.1', series: '13.1.2', sop: '13.1.2.1' },
          { study: '13.2', series: '13.2.1', sop: '13.2.1.1' },
        );
        expect(await uidsOf('series', {}, SERIES, { studyInstanceUid: '13.1' })).toEqual(['13.1.1', '13.1.2']);
        expect(await uidsOf('instance', {}, SOP, { studyInstanceUid: '13.1' })).toEqual(['13.1.1.1', '13.1.2.1']);
        expect(await uidsOf('instance', {}, SOP, { studyInstanceUid: '13.1', seriesInstanceUid: '13.1.2' })).toEqual(['13.1.2.1']);
        expect(await uidsOf('instance', {}, SOP, { studyInstanceUid: '13.2', seriesInstanceUid: '13.1.2' })).toEqual([]);
      });

      it('matches integer attributes such as SeriesNumber and InstanceNumber', async () => {
        await store(
          { study: '14.1', series: '14.1.1', sop: '14.1.1.1', seriesNumber: 1, instanceNumber: 1 },
          { study: '14.1', series: '14.1.2', sop: '14.1.2.1', seriesNumber: 2, instanceNumber: 1 },
          { study: '14.1', series: '14.1.2', sop: '14.1.2.2', seriesNumber: 2, instanceNumber: 2 },
        );
        expect(await uidsOf('series', { SeriesNumber: '2' }, SERIES)).toEqual(['14.1.2']);
        expect(await uidsOf('instance', { InstanceNumber: '1' }, SOP)).toEqual(['14.1.1.1', '14.1.2.1']);
      });

      it('reports matching keys it cannot index as ignored and still answers', async () => {
        await store({ study: '15.1', series: '15.1.1', sop: '15.1.1.1', extra: { '00101030': { vr: 'DS', Value: [70] } } });
        const result = await catalog.search(query('study', { PatientWeight: '70', '00091001': 'x', PatientAge: '' }));
        expect(result.ignoredKeys).toEqual(['PatientWeight', '00091001']);
        expect(result.matches).toHaveLength(1);
        expect(result.matches[0]).toHaveProperty('00101030', { vr: 'DS', Value: [70] });
        expect(result.matches[0]).toHaveProperty('00101010', { vr: 'AS' }); // universal key: returned, not ignored
      });

      it('returns an empty list when nothing matches', async () => {
        expect(await search('study')).toEqual([]);
        await store({ study: '16.1', series: '16.1.1', sop: '16.1.1.1', patientId: 'P1' });
        expect(await search('study', { PatientID: 'nobody' })).toEqual([]);
        expect(await search('series', {}, { studyInstanceUid: '9.9.9' })).toEqual([]);
      });
    });

    describe('results', () => {
      const extra: DicomJsonDataset = {
        '00181030': { vr: 'LO', Value: ['PROTOCOL'] },
        '00080070': { vr: 'LO', Value: ['ACME'] },
        '00101010': { vr: 'AS', Value: ['042Y'] },
        '00200052': { vr: 'UI', Value: ['9.8.7'] },
        '00280030': { vr: 'DS', Value: [0.5, 0.5] },
      };

      it('adds includefield attributes given by tag or keyword', async () => {
        await store({ study: '17.1', series: '17.1.1', sop: '17.1.1.1', extra });
        const [study] = await search('study', { includefield: ['00101010', 'ProtocolName'] });
        expect(study).toHaveProperty('00101010', { vr: 'AS', Value: ['042Y'] });
        expect(study).toHaveProperty('00181030', { vr: 'LO', Value: ['PROTOCOL'] });
        const [instance] = await search('instance', { includefield: 'PixelSpacing,Manufacturer' });
        expect(instance).toHaveProperty('00280030', { vr: 'DS', Value: [0.5, 0.5] });
        expect(instance).toHaveProperty('00080070', { vr: 'LO', Value: ['ACME'] });
      });

      it('includefield=all returns the level-appropriate stored attributes', async () => {
        await store({ study: '18.1', series: '18.1.1', sop: '18.1.1.1', extra });
        const [study] = await search('study', { includefield: 'all' });
        expect(study).toHaveProperty('00101010'); // PatientAge: Patient Study module
        expect(study).not.toHaveProperty('00280030'); // PixelSpacing: an image attribute
        const [series] = await search('series', { includefield: 'all' });
        expect(series).toHaveProperty('00080070'); // Manufacturer: General Equipment module
        expect(series).toHaveProperty('00181030'); // ProtocolName: General Series module
        expect(series).not.toHaveProperty('00280030');
        const [instance] = await search('instance', { includefield: 'all' });
        expect(instance).toHaveProperty('00280030');
        expect(instance).toHaveProperty('00101010');
      });

      it('pages with limit and offset without skipping or repeating', async () => {
        const all: string[] = [];
        for (let i = 1; i <= 7; i++) {
          all.push(`19.${i}`);
          await store({ study: `19.${i}`, series: `19.${i}.1`, sop: `19.${i}.1.1` });
        }
        const seen: unknown[] = [];
        for (let offset = 0; offset < 9; offset += 3) {
          seen.push(...(await uidsOf('study', { limit: '3', offset: String(offset) }, STUDY)));
        }
        expect(seen).toEqual(all);
        expect(await uidsOf('study', { limit: '2', offset: '6' }, STUDY)).toEqual(['19.7']);
      });
    });

    describe('ingest', () => {
      it('storing the same instance twice is idempotent', async () => {
        const f = { study: '20.1', series: '20.1.1', sop: '20.1.1.1' };
        await store(f);
        const again = { ...fakeInstance(f), blobKey: 'other-key' };
        expect(await catalog.storeInstance(again)).toEqual({ status: 'duplicate', existingBlobKey: 'blobs/20.1.1.1.dcm' });
        const [study] = await search('study');
        expect(first(study, '00201208')).toBe(1);
        expect(await catalog.listInstances({ studyInstanceUid: '20.1' })).toHaveLength(1);
      });

      it('refuses the same SOP Instance UID under another study or series as a conflict', async () => {
        await store({ study: '21.1', series: '21.1.1', sop: '21.1.1.1' });
        const otherSeries = await catalog.storeInstance(fakeInstance({ study: '21.1', series: '21.1.2', sop: '21.1.1.1' }));
        expect(otherSeries.status).toBe('conflict');
        const otherStudy = await catalog.storeInstance(fakeInstance({ study: '21.2', series: '21.2.1', sop: '21.1.1.1' }));
        expect(otherStudy.status).toBe('conflict');
        const seriesElsewhere = await catalog.storeInstance(fakeInstance({ study: '21.3', series: '21.1.1', sop: '21.3.1.1' }));
        expect(seriesElsewhere.status).toBe('conflict');
        expect(await uidsOf('study', {}, STUDY)).toEqual(['21.1']);
        const [study] = await search('study');
        expect(first(study, '00201206')).toBe(1);
        expect(first(study, '00201208')).toBe(1);
      });

      it('stores 20 instances of one new study concurrently with exact counters', async () => {
        const instances = Array.from({ length: 20 }, (_, i) =>
          fakeInstance({ study: '22.1', series: `22.1.${i % 2}`, sop: `22.1.${i % 2}.${i}`, modality: i % 2 ? 'MR' : 'CT', patientId: 'PC' }),
        );
        const outcomes = await Promise.all(instances.map((i) => catalog.storeInstance(i)));
        expect(outcomes.every((o) => o.status === 'stored')).toBe(true);
        const studies = await search('study');
        expect(studies).toHaveLength(1);
        expect(first(studies[0], '00201206')).toBe(2);
        expect(first(studies[0], '00201208')).toBe(20);
        expect(value(studies[0], '00080061')).toEqual(['CT', 'MR']);
        expect(await catalog.listInstances({ studyInstanceUid: '22.1' })).toHaveLength(20);
      });

      it('concurrent stores where some conflict and one repeats: those alone are refused or deduplicated (with no row left behind), the rest stored with exact counters', async () => {
        await store({ study: '24.1', series: '24.1.1', sop: '24.1.1.1', modality: 'CT' });
        const arriving = [
          fakeInstance({ study: '24.1', series: '24.1.1', sop: '24.1.1.2', modality: 'CT' }),
          fakeInstance({ study: '24.1', series: '24.1.2', sop: '24.1.1.1', modality: 'MR' }), // stored before under 24.1.1
          fakeInstance({ study: '24.1', series: '24.1.2', sop: '24.1.2.1', modality: 'MR' }),
          fakeInstance({ study: '24.1', series: '24.1.1', sop: '24.1.1.2', modality: 'CT' }), // the first of this batch again
          fakeInstance({ study: '24.3', series: '24.1.1', sop: '24.3.1.1', modality: 'CT' }), // a new study claiming 24.1's series
          fakeInstance({ study: '24.2', series: '24.2.1', sop: '24.2.1.1', modality: 'US' }),
        ];
        const outcomes = await Promise.all(arriving.map((i) => catalog.storeInstance(i)));
        const statuses = outcomes.map((o) => o.status);
        // The same instance twice at once (0 and 3): whichever commits first is stored, the other is its duplicate.
        expect([statuses[0], statuses[3]].sort()).toEqual(['duplicate', 'stored']);
        expect([statuses[1], statuses[2], statuses[4], statuses[5]]).toEqual(['conflict', 'stored', 'conflict', 'stored']);
        // The refused instance's new study row went with it.
        expect(await uidsOf('study', {}, STUDY)).toEqual(['24.1', '24.2']);
        const studies = await search('study');
        const byUid = new Map(studies.map((ds) => [first(ds, '0020000D'), ds]));
        expect(first(byUid.get('24.1'), '00201206')).toBe(2);
        expect(first(byUid.get('24.1'), '00201208')).toBe(3);
        expect(value(byUid.get('24.1'), '00080061')).toEqual(['CT', 'MR']);
        expect(first(byUid.get('24.2'), '00201208')).toBe(1);
        expect((await catalog.listInstances({ studyInstanceUid: '24.1' })).map((i) => i.sopInstanceUid).sort()).toEqual(['24.1.1.1', '24.1.1.2', '24.1.2.1']);
      });

      it('concurrent stores of the same instance store it once', async () => {
        const instance = fakeInstance({ study: '23.1', series: '23.1.1', sop: '23.1.1.1' });
        const outcomes = await Promise.all(Array.from({ length: 5 }, () => catalog.storeInstance(instance)));
        expect(outcomes.filter((o) => o.status === 'stored')).toHaveLength(1);
        expect(outcomes.filter((o) => o.status === 'duplicate')).toHaveLength(4);
        const [study] = await search('study');
        expect(first(study, '00201208')).toBe(1);
      });

      it('returns frame byte spans exactly as stored', async () => {
        const pixelData: PixelDataLocation = {
          tag: '7FE00010',
          valueOffset: 4_294_967_296,
          valueLength: undefined,
          encapsulated: true,
          frames: [[[4_294_967_304, 1234], [4_294_968_546, 99]], [[4_294_968_653, 5_000_000]]],
          isVideo: false,
        };
        await store({ study: '24.1', series: '24.1.1', sop: '24.1.1.1', frames: 2, pixelData });
        const [stored] = await catalog.listInstances({ studyInstanceUid: '24.1', sopInstanceUid: '24.1.1.1' });
        expect(stored?.pixelData).toEqual(pixelData);
        expect(stored).toMatchObject({ numberOfFrames: 2, rows: 4, columns: 4, blobKey: 'blobs/24.1.1.1.dcm', blobSize: 1064, transferSyntaxUid: EXPLICIT_LE });
      });

      it('lists instances in series then instance order, within the requested scope', async () => {
        await store(
          { study: '25.1', series: '25.1.2', sop: '25.1.2.2', seriesNumber: 2, instanceNumber: 2 },
          { study: '25.1', series: '25.1.2', sop: '25.1.2.1', seriesNumber: 2, instanceNumber: 1 },
          { study: '25.1', series: '25.1.1', sop: '25.1.1.1', seriesNumber: 1, instanceNumber: 1 },
        );
        const all = await catalog.listInstances({ studyInstanceUid: '25.1' });
        expect(all.map((i) => i.sopInstanceUid)).toEqual(['25.1.1.1', '25.1.2.1', '25.1.2.2']);
        const series = await catalog.listInstances({ studyInstanceUid: '25.1', seriesInstanceUid: '25.1.2' });
        expect(series.map((i) => i.sopInstanceUid)).toEqual(['25.1.2.1', '25.1.2.2']);
        expect(await catalog.listInstances({ studyInstanceUid: '25.9' })).toEqual([]);
      });

      it('lists instances with their stored attribute JSON in the same scope and order as listInstances', async () => {
        const extra: DicomJsonDataset = {
          '00081140': { vr: 'SQ', Value: [{ '00081150': { vr: 'UI', Value: ['1.2.3'] }, '00091001': { vr: 'OB', InlineBinary: 'AAEC' } }] },
          '00189999': { vr: 'OB' },
        };
        await store(
          { study: '27.1', series: '27.1.2', sop: '27.1.2.2', seriesNumber: 2, instanceNumber: 2, patientName: 'DOE^JANE' },
          { study: '27.1', series: '27.1.2', sop: '27.1.2.1', seriesNumber: 2, instanceNumber: 1, extra },
          { study: '27.1', series: '27.1.1', sop: '27.1.1.1', seriesNumber: 1, instanceNumber: 1 },
        );
        const all = await catalog.listInstancesWithAttributes({ studyInstanceUid: '27.1' });
        expect(all.map((e) => e.instance)).toEqual(await catalog.listInstances({ studyInstanceUid: '27.1' }));
        expect(all.map((e) => first(e.attributes, SOP))).toEqual(['27.1.1.1', '27.1.2.1', '27.1.2.2']);
        expect(all[2]!.attributes['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'DOE^JANE' }] });
        expect(all[1]!.attributes).toEqual(fakeInstance({ study: '27.1', series: '27.1.2', sop: '27.1.2.1', seriesNumber: 2, instanceNumber: 1, extra }).header.dataset);

        const one = await catalog.listInstancesWithAttributes({ studyInstanceUid: '27.1', seriesInstanceUid: '27.1.2', sopInstanceUid: '27.1.2.2' });
        expect(one.map((e) => e.instance.sopInstanceUid)).toEqual(['27.1.2.2']);
        expect(await catalog.listInstancesWithAttributes({ studyInstanceUid: '27.1', seriesInstanceUid: '27.1.9' })).toEqual([]);
      });

      it('keeps the checksum recorded at ingest and walks every blob reference page by page', async () => {
        const sha = (n: number) => n.toString(16).padStart(64, '0');
        const stored = Array.from({ length: 7 }, (_, i) => ({ ...fakeInstance({ study: '28.1', series: `28.1.${i % 2}`, sop: `28.1.${i % 2}.${i}` }), checksum: sha(i) }));
        for (const instance of stored) expect(await catalog.storeInstance(instance)).toEqual({ status: 'stored' });
        // Rows indexed before checksums were recorded have none.
        await store({ study: '28.2', series: '28.2.1', sop: '28.2.1.1' });
        const seen: Awaited<ReturnType<Catalog['listIndexedBlobs']>> = [];
        let after: number | undefined;
        for (;;) {
          const page = await catalog.listIndexedBlobs(after, 3);
          expect(page.length).toBeLessThanOrEqual(3);
          if (page.length === 0) break;
          seen.push(...page);
          after = page[page.length - 1]!.cursor;
        }
        expect(seen.map((b) => b.sopInstanceUid)).toEqual([...stored.map((i) => i.header.sopInstanceUid), '28.2.1.1']);
        expect(seen[2]).toEqual({ cursor: seen[2]!.cursor, studyInstanceUid: '28.1', seriesInstanceUid: '28.1.0', sopInstanceUid: '28.1.0.2', blobKey: 'blobs/28.1.0.2.dcm', blobSize: 1032, checksum: sha(2), rejected: false });
        expect(seen[7]!.checksum).toBeUndefined();
      });

      it('tells which blob keys an instance references', async () => {
        await store({ study: '29.1', series: '29.1.1', sop: '29.1.1.1' }, { study: '29.1', series: '29.1.1', sop: '29.1.1.2' });
        expect(await catalog.referencedBlobKeys(['blobs/29.1.1.1.dcm', 'blobs/nothing.dcm', 'blobs/29.1.1.2.dcm'])).toEqual(new Set(['blobs/29.1.1.1.dcm', 'blobs/29.1.1.2.dcm']));
        expect(await catalog.referencedBlobKeys([])).toEqual(new Set());
      });

      it('removing an instance keeps counters and ModalitiesInStudy exact and drops emptied series, studies and patients', async () => {
        await store(
          { study: '30.1', series: '30.1.1', sop: '30.1.1.1', modality: 'CT', patientId: 'P30' },
          { study: '30.1', series: '30.1.1', sop: '30.1.1.2', modality: 'CT', patientId: 'P30' },
          { study: '30.1', series: '30.1.2', sop: '30.1.2.1', modality: 'MR', patientId: 'P30' },
          { study: '30.2', series: '30.2.1', sop: '30.2.1.1', modality: 'US', patientId: 'P31' },
        );
        // Only while the row still references the given blob.
        expect(await catalog.removeInstance('30.1.1.1', 'blobs/other.dcm')).toBe(false);
        expect(await catalog.removeInstance('30.1.1.1', 'blobs/30.1.1.1.dcm')).toBe(true);
        expect(await catalog.removeInstance('30.1.1.1', 'blobs/30.1.1.1.dcm')).toBe(false);
        let [study] = await search('study', { StudyInstanceUID: '30.1' });
        expect(first(study, '00201206')).toBe(2);
        expect(first(study, '00201208')).toBe(2);
        expect(value(study, '00080061')).toEqual(['CT', 'MR']);

        expect(await catalog.removeInstance('30.1.2.1', 'blobs/30.1.2.1.dcm')).toBe(true);
        [study] = await search('study', { StudyInstanceUID: '30.1' });
        expect(first(study, '00201206')).toBe(1);
        expect(first(study, '00201208')).toBe(1);
        expect(value(study, '00080061')).toEqual(['CT']);
        expect(await uidsOf('series', {}, SERIES, { studyInstanceUid: '30.1' })).toEqual(['30.1.1']);

        expect(await catalog.removeInstance('30.2.1.1', 'blobs/30.2.1.1.dcm')).toBe(true);
        expect(await uidsOf('study', {}, STUDY)).toEqual(['30.1']);
        expect(await search('study', { PatientID: 'P31' })).toEqual([]);
        // The same instance can be stored again afterwards.
        await store({ study: '30.2', series: '30.2.1', sop: '30.2.1.1', modality: 'US', patientId: 'P31' });
        expect(await uidsOf('study', {}, STUDY)).toEqual(['30.1', '30.2']);
      });

      it('migrate can run again on an up-to-date schema', async () => {
        await store({ study: '26.1', series: '26.1.1', sop: '26.1.1.1' });
        await catalog.migrate();
        expect(await uidsOf('study', {}, STUDY)).toEqual(['26.1']);
      });
    });

    describe('patient identity (hospital link)', () => {
      const NATIONAL = 'VN-CITIZEN';
      const otherIds = (...ids: Array<[string, string]>) => ({
        '00101002': { vr: 'SQ', Value: ids.map(([id, issuer]) => ({ '00100020': { vr: 'LO', Value: [id] }, '00100021': { vr: 'LO', Value: [issuer] } })) },
      });
      const issued = (issuer: string, more: DicomJsonDataset = {}): DicomJsonDataset => ({ '00100021': { vr: 'LO', Value: [issuer] }, ...more });
      const corrected = {
        patientId: 'H100',
        issuer: 'HOSP',
        name: 'NGUYEN^VAN AN',
        birthDate: '19800102',
        sex: 'M',
        otherIds: [{ id: '001080012345', issuer: NATIONAL, type: 'TEXT' }],
      };
      const PATIENT_NAME = '00100010';
      const PATIENT_ID = '00100020';

      it('indexes the Other Patient IDs Sequence and matches Patient ID with its issuer on any identifier', async () => {
        await store(
          { study: '40.1', series: '40.1.1', sop: '40.1.1.1', patientId: 'H1', extra: issued('HOSP', otherIds(['0790', NATIONAL])) },
          { study: '40.2', series: '40.2.1', sop: '40.2.1.1', patientId: '0790', extra: issued('OTHER') },
        );
        expect(await uidsOf('study', { PatientID: '0790', IssuerOfPatientID: NATIONAL }, STUDY)).toEqual(['40.1']);
        expect(await uidsOf('study', { PatientID: 'H1', IssuerOfPatientID: 'HOSP' }, STUDY)).toEqual(['40.1']);
        expect(await uidsOf('study', { PatientID: '0790', IssuerOfPatientID: 'OTHER' }, STUDY)).toEqual(['40.2']);
        expect(await uidsOf('study', { PatientID: '0790', IssuerOfPatientID: 'NOBODY' }, STUDY)).toEqual([]);
        // Either key alone matches any identifier (or issuer) of the patient; wildcards too.
        expect(await uidsOf('study', { PatientID: '0790' }, STUDY)).toEqual(['40.1', '40.2']);
        expect(await uidsOf('study', { IssuerOfPatientID: NATIONAL }, STUDY)).toEqual(['40.1']);
        expect(await uidsOf('instance', { PatientID: '07*', IssuerOfPatientID: NATIONAL }, SOP)).toEqual(['40.1.1.1']);
        const [study] = await search('study', { PatientID: 'H1', includefield: 'OtherPatientIDsSequence' });
        expect(study?.['00101002']).toEqual({
          vr: 'SQ',
          Value: [{ '00100020': { vr: 'LO', Value: ['0790'] }, '00100021': { vr: 'LO', Value: [NATIONAL] }, '00100022': { vr: 'CS', Value: ['TEXT'] } }],
        });
        // Stored as the first instance said: not managed, nothing applied on read.
        const [instance] = await catalog.listInstances({ studyInstanceUid: '40.1' });
        expect(instance?.patient).toBeUndefined();
        expect(await catalog.patientOfStudy('40.1')).toMatchObject({ version: 0, identity: { patientId: 'H1', issuer: 'HOSP' } });
      });

      it('applies an identity to the patient row: search answers it at every level, instances know they differ', async () => {
        await store(
          { study: '41.1', series: '41.1.1', sop: '41.1.1.1', patientId: 'H100', patientName: 'NGUYEN^VAN AMN', sex: 'F', extra: issued('HOSP') },
          { study: '41.2', series: '41.2.1', sop: '41.2.1.1', patientId: 'H100', patientName: 'NGUYEN^VAN AMN', extra: issued('HOSP') },
          { study: '41.3', series: '41.3.1', sop: '41.3.1.1', patientId: 'H100', patientName: 'SOMEONE^ELSE', extra: issued('ELSEWHERE') },
        );
        expect((await catalog.applyPatientIdentity(corrected)).sort()).toEqual(['41.1', '41.2']);
        for (const level of ['study', 'series', 'instance'] as const) {
          const found = await search(level, { PatientID: 'H100', IssuerOfPatientID: 'HOSP', includefield: 'all' });
          expect(found.length).toBeGreaterThan(0);
          for (const ds of found) {
            expect(first(ds, PATIENT_NAME)).toEqual({ Alphabetic: 'NGUYEN^VAN AN' });
            expect(first(ds, '00100030')).toBe('19800102');
            expect(first(ds, '00100040')).toBe('M');
            expect(first(ds, '00100021')).toBe('HOSP');
            expect(value(ds, '00101002')).toHaveLength(1);
          }
        }
        expect(await uidsOf('study', { PatientID: '001080012345', IssuerOfPatientID: NATIONAL }, STUDY)).toEqual(['41.1', '41.2']);
        expect(await uidsOf('study', { PatientName: 'nguyen^van an' }, STUDY)).toEqual(['41.1', '41.2']);
        expect(await uidsOf('study', { PatientName: 'NGUYEN^VAN AMN' }, STUDY)).toEqual([]);
        const [instance] = await catalog.listInstances({ studyInstanceUid: '41.1' });
        expect(instance?.patient).toMatchObject({ version: 1, differs: true, identity: { patientId: 'H100', issuer: 'HOSP', name: 'NGUYEN^VAN AN' } });
        const [withAttributes] = await catalog.listInstancesWithAttributes({ studyInstanceUid: '41.1' });
        expect(withAttributes?.instance.patient).toEqual(instance?.patient);
        expect((await catalog.listInstances({ studyInstanceUid: '41.3' }))[0]?.patient).toBeUndefined();

        // The same identity again changes nothing; an unknown patient has no stored study.
        expect(await catalog.applyPatientIdentity({ ...corrected, name: 'NGUYEN^VAN AN^', birthDate: '1980-01-02' })).toEqual([]);
        expect(await catalog.applyPatientIdentity({ ...corrected, patientId: 'H999' })).toEqual([]);
        expect((await catalog.patientOfStudy('41.2'))?.version).toBe(1);

        // An instance stored with the identity of record needs nothing applied.
        await store({ study: '41.1', series: '41.1.1', sop: '41.1.1.2', patientId: 'H100', patientName: 'NGUYEN^VAN AN', birthDate: '19800102', sex: 'M', extra: issued('HOSP', otherIds(['001080012345', NATIONAL])) });
        const byUid = new Map((await catalog.listInstances({ studyInstanceUid: '41.1' })).map((i) => [i.sopInstanceUid, i.patient]));
        expect(byUid.get('41.1.1.2')).toMatchObject({ version: 1, differs: false });
        expect(byUid.get('41.1.1.1')?.digest).toBe(byUid.get('41.1.1.2')?.digest);

        // A further change bumps the version and changes the digest.
        expect((await catalog.applyPatientIdentity({ ...corrected, sex: 'O' })).sort()).toEqual(['41.1', '41.2']);
        const [after] = await catalog.listInstances({ studyInstanceUid: '41.1' });
        expect(after?.patient?.version).toBe(2);
        expect(after?.patient?.digest).not.toBe(byUid.get('41.1.1.1')?.digest);
        expect(await uidsOf('study', { PatientSex: 'O' }, STUDY)).toEqual(['41.1', '41.2']);
      });

      it('applies an identity with an issuer to the row of the same Patient ID stored without one', async () => {
        await store({ study: '44.1', series: '44.1.1', sop: '44.1.1.1', patientId: 'H44', patientName: 'PHAM^D' });
        expect(await catalog.applyPatientIdentity({ ...corrected, patientId: 'H44', name: 'PHAM^DUNG' })).toEqual(['44.1']);
        expect(await uidsOf('study', { PatientID: 'H44', IssuerOfPatientID: 'HOSP' }, STUDY)).toEqual(['44.1']);
        const [study] = await search('study', { PatientID: 'H44' });
        expect(first(study, PATIENT_NAME)).toEqual({ Alphabetic: 'PHAM^DUNG' });
        // Once a qualified row exists, an unqualified one of the same ID is left alone.
        await store({ study: '44.2', series: '44.2.1', sop: '44.2.1.1', patientId: 'H44', patientName: 'PHAM^D' });
        expect(await catalog.applyPatientIdentity({ ...corrected, patientId: 'H44', name: 'PHAM^VAN DUNG' })).toEqual(['44.1']);
        expect(await uidsOf('study', { PatientName: 'PHAM^D' }, STUDY)).toEqual(['44.2']);
      });

      it('merges a prior patient into the surviving one: the prior ID finds nothing, the surviving ID every study', async () => {
        await store(
          { study: '42.1', series: '42.1.1', sop: '42.1.1.1', patientId: 'OLD7', patientName: 'TRAN^THI B', extra: issued('HOSP') },
          { study: '42.2', series: '42.2.1', sop: '42.2.1.1', patientId: 'OLD7', patientName: 'TRAN^THI B', extra: issued('HOSP') },
        );
        const surviving = { ...corrected, patientId: 'NEW7', name: 'TRAN^THI BINH', otherIds: [] };
        expect((await catalog.mergePatients({ patientId: 'OLD7', issuer: 'HOSP' }, surviving)).sort()).toEqual(['42.1', '42.2']);
        expect(await search('study', { PatientID: 'OLD7' })).toEqual([]);
        expect(await uidsOf('study', { PatientID: 'NEW7', IssuerOfPatientID: 'HOSP' }, STUDY)).toEqual(['42.1', '42.2']);
        const [study] = await search('study', { PatientID: 'NEW7' });
        expect(first(study, PATIENT_NAME)).toEqual({ Alphabetic: 'TRAN^THI BINH' });
        expect(first(study, PATIENT_ID)).toBe('NEW7');
        expect((await catalog.listInstances({ studyInstanceUid: '42.2' }))[0]?.patient).toMatchObject({ version: 1, differs: true });
        // The prior row is gone: nothing to apply to or merge from any more.
        expect(await catalog.applyPatientIdentity({ ...surviving, patientId: 'OLD7' })).toEqual([]);
        expect(await catalog.mergePatients({ patientId: 'OLD7', issuer: 'HOSP' }, surviving)).toEqual([]);

        // Into a surviving patient that has studies of its own: those change too when its identity does.
        await store({ study: '42.3', series: '42.3.1', sop: '42.3.1.1', patientId: 'OLD8', extra: issued('HOSP') });
        const moved = await catalog.mergePatients({ patientId: 'OLD8', issuer: 'HOSP' }, { ...surviving, sex: 'F' });
        expect(moved.sort()).toEqual(['42.1', '42.2', '42.3']);
        expect(await uidsOf('study', { PatientID: 'NEW7', PatientSex: 'F' }, STUDY)).toEqual(['42.1', '42.2', '42.3']);
        expect((await catalog.patientOfStudy('42.3'))?.version).toBe(2);
      });

      it('coerces an instance to its order patient at ingest: the row takes the identity, an earlier study follows it', async () => {
        await store({ study: '43.1', series: '43.1.1', sop: '43.1.1.1', patientId: 'TYPO1', patientName: 'LE^VAN C', accession: 'A43' });
        const order = { ...corrected, patientId: 'H43', name: 'LE^VAN CUONG', otherIds: [] };
        const outcome = await catalog.storeInstance({ ...fakeInstance({ study: '43.1', series: '43.1.1', sop: '43.1.1.2', patientId: 'TYPO1', accession: 'A43' }), identity: order });
        expect(outcome).toEqual({ status: 'stored', identityChangedStudies: ['43.1'] });
        expect(await search('study', { PatientID: 'TYPO1' })).toEqual([]);
        const [study] = await search('study', { PatientID: 'H43', IssuerOfPatientID: 'HOSP' });
        expect(first(study, PATIENT_NAME)).toEqual({ Alphabetic: 'LE^VAN CUONG' });
        expect(first(study, '00201208')).toBe(2);
        const instances = await catalog.listInstances({ studyInstanceUid: '43.1' });
        expect(instances.map((i) => i.patient?.differs)).toEqual([true, true]);
        // A new study of the same order patient: the row already holds the identity, nothing else changes.
        expect(await catalog.storeInstance({ ...fakeInstance({ study: '43.2', series: '43.2.1', sop: '43.2.1.1', patientId: 'TYPO1' }), identity: order })).toEqual({ status: 'stored' });
        expect(await uidsOf('study', { PatientID: 'H43' }, STUDY)).toEqual(['43.1', '43.2']);
      });
    });

    describe('curation (IOCM rejection, delete, move)', () => {
      const KOS = '1.2.840.10008.5.1.4.1.1.88.59';
      const NUM_SERIES = '00201206';
      const NUM_INSTANCES = '00201208';
      const MODALITIES = '00080061';
      const SERIES_INSTANCES = '00201209';
      const soon = new Date(Date.now() + 3600_000).toISOString();
      const past = new Date(Date.now() - 1000).toISOString();
      const now = () => new Date().toISOString();
      const ref = (study: string, series: string, sop: string) => ({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, sopClassUid: CT_IMAGE });
      /** A rejection note stored into `study` naming `refs`. */
      const note = (study: string, sop: string, refs: ReturnType<typeof ref>[], purgeAfter = soon, code = '113001') => ({
        ...fakeInstance({ study, series: `${study}.9`, sop, modality: 'KO', sopClass: KOS }),
        rejection: { code, references: refs, rejectedAt: now(), purgeAfter },
      });
      const studyRow = async (uid: string) => (await search('study', { StudyInstanceUID: uid }))[0];

      it("an instance list's version changes when the list does (stored, rejected, restored, removed), and only then", async () => {
        await store({ study: '49.1', series: '49.1.1', sop: '49.1.1.1' }, { study: '49.1', series: '49.1.2', sop: '49.1.2.1' });
        const series = { studyInstanceUid: '49.1', seriesInstanceUid: '49.1.1' };
        const whole = { studyInstanceUid: '49.1' };
        const v0 = await catalog.instanceListVersion(series);
        const s0 = await catalog.instanceListVersion(whole);
        expect(await catalog.instanceListVersion(series)).toBe(v0);
        expect(await catalog.instanceListVersion({ studyInstanceUid: '49.9' })).toBe(await catalog.instanceListVersion({ studyInstanceUid: '49.8', seriesInstanceUid: 'x' }));
        // Another series of the study: the study's list changes, this series' does not.
        await store({ study: '49.1', series: '49.1.2', sop: '49.1.2.2' });
        expect(await catalog.instanceListVersion(series)).toBe(v0);
        const s1 = await catalog.instanceListVersion(whole);
        expect(s1).not.toBe(s0);
        await store({ study: '49.1', series: '49.1.1', sop: '49.1.1.2' });
        const v1 = await catalog.instanceListVersion(series);
        expect(v1).not.toBe(v0);
        expect((await catalog.storeInstance(note('49.1', '49.1.9.1', [ref('49.1', '49.1.1', '49.1.1.1')]))).status).toBe('stored');
        const v2 = await catalog.instanceListVersion(series);
        expect([v0, v1]).not.toContain(v2);
        await catalog.restoreRejected(['49.1.1.1'], now(), soon);
        const v3 = await catalog.instanceListVersion(series);
        expect([v0, v2]).not.toContain(v3);
        expect(await catalog.removeInstance('49.1.1.2', 'blobs/49.1.1.2.dcm')).toBe(true);
        const v4 = await catalog.instanceListVersion(series);
        expect([v1, v3]).not.toContain(v4);
        // A store refused as a duplicate changes nothing.
        expect((await catalog.storeInstance(fakeInstance({ study: '49.1', series: '49.1.1', sop: '49.1.1.1' }))).status).not.toBe('stored');
        expect(await catalog.instanceListVersion(series)).toBe(v4);
      });

      it('a rejection note hides what it names from searches, lists and counters; the note itself stays', async () => {
        await store(
          { study: '50.1', series: '50.1.1', sop: '50.1.1.1', modality: 'CT' },
          { study: '50.1', series: '50.1.1', sop: '50.1.1.2', modality: 'CT' },
          { study: '50.1', series: '50.1.2', sop: '50.1.2.1', modality: 'MR' },
        );
        const outcome = await catalog.storeInstance(note('50.1', '50.1.9.1', [ref('50.1', '50.1.1', '50.1.1.1'), ref('50.1', '50.1.2', '50.1.2.1')]));
        expect(outcome).toEqual({ status: 'stored', rejection: { noteUid: '50.1.9.1', code: '113001', named: 2, hidden: 2, studies: ['50.1'] } });
        const study = await studyRow('50.1');
        expect(first(study, NUM_INSTANCES)).toBe(2);
        expect(first(study, NUM_SERIES)).toBe(2);
        expect(value(study, MODALITIES)).toEqual(['CT', 'KO']);
        expect(await uidsOf('study', { ModalitiesInStudy: 'MR' }, STUDY)).toEqual([]);
        expect(await uidsOf('series', {}, SERIES, { studyInstanceUid: '50.1' })).toEqual(['50.1.1', '50.1.9']);
        expect(await uidsOf('instance', {}, SOP, { studyInstanceUid: '50.1' })).toEqual(['50.1.1.2', '50.1.9.1']);
        expect(first((await search('series', { SeriesInstanceUID: '50.1.1' }, { studyInstanceUid: '50.1' }))[0], SERIES_INSTANCES)).toBe(1);
        expect((await catalog.listInstances({ studyInstanceUid: '50.1' })).map((i) => i.sopInstanceUid)).toEqual(['50.1.1.2', '50.1.9.1']);
        const all = await catalog.listInstances({ studyInstanceUid: '50.1' }, { includeRejected: true });
        expect(all.filter((i) => i.rejected === true).map((i) => i.sopInstanceUid).sort()).toEqual(['50.1.1.1', '50.1.2.1']);
        const listed = await catalog.listRejected({ studyInstanceUid: '50.1', limit: 10, offset: 0 });
        expect(listed.map((e) => [e.sopInstanceUid, e.kind, e.reasonCode, e.noteUid, e.stored]).sort()).toEqual([
          ['50.1.1.1', 'rejected', '113001', '50.1.9.1', true],
          ['50.1.2.1', 'rejected', '113001', '50.1.9.1', true],
        ]);
        // fsck sees the rejected rows as rows (not orphans), flagged.
        const blobs = await catalog.listIndexedBlobs(undefined, 100);
        expect(blobs.filter((b) => b.rejected).map((b) => b.sopInstanceUid).sort()).toEqual(['50.1.1.1', '50.1.2.1']);
        expect((await catalog.referencedBlobKeys(['blobs/50.1.1.1.dcm'])).size).toBe(1);
      });

      it('searching by ModalitiesInStudy finds what each study lists, through rejection, restore, move and removal', async () => {
        await store(
          { study: '70.1', series: '70.1.1', sop: '70.1.1.1', modality: 'CT' },
          { study: '70.1', series: '70.1.1', sop: '70.1.1.2', modality: 'CT' },
          { study: '70.1', series: '70.1.2', sop: '70.1.2.1', modality: 'MR' },
          { study: '70.2', series: '70.2.1', sop: '70.2.1.1', modality: 'US' },
        );
        const found = async (modality: string) => ((await uidsOf('study', { ModalitiesInStudy: modality }, STUDY)) as string[]).sort();
        // Every modality a study lists finds it, and no other does.
        const agree = async () => {
          const studies = await search('study', {});
          for (const modality of ['CT', 'MR', 'US', 'KO']) {
            const listing = studies.filter((st) => ((value(st, MODALITIES) ?? []) as string[]).includes(modality)).map((st) => first(st, STUDY) as string);
            expect(await found(modality), modality).toEqual(listing.sort());
          }
        };
        expect([await found('MR'), await found('C*'), await found('US')]).toEqual([['70.1'], ['70.1'], ['70.2']]);
        await agree();
        // The only MR instance rejected: MR no longer finds 70.1; the note's KO does.
        await catalog.storeInstance(note('70.1', '70.1.9.1', [ref('70.1', '70.1.2', '70.1.2.1')]));
        expect([await found('MR'), await found('KO')]).toEqual([[], ['70.1']]);
        await agree();
        // Restored: found by MR again (the voided note no longer counts).
        await catalog.restoreRejected(['70.1.2.1'], now(), soon);
        expect([await found('MR'), await found('KO')]).toEqual([['70.1'], []]);
        await agree();
        // The MR series moved to 70.2: MR finds 70.2 only.
        await catalog.moveInstances({ from: { studyInstanceUid: '70.1', seriesInstanceUids: ['70.1.2'] }, to: { kind: 'study', studyInstanceUid: '70.2' } }, now());
        expect(await found('MR')).toEqual(['70.2']);
        await agree();
        // Removed: nothing is found by MR; 70.1's last visible instances removed, nothing by CT either.
        expect(await catalog.removeInstance('70.1.2.1', 'blobs/70.1.2.1.dcm')).toBe(true);
        expect(await found('MR')).toEqual([]);
        for (const sop of ['70.1.1.1', '70.1.1.2']) expect(await catalog.removeInstance(sop, `blobs/${sop}.dcm`)).toBe(true);
        expect(await found('CT')).toEqual([]);
        await agree();
        // Stored again: found again.
        await store({ study: '70.1', series: '70.1.1', sop: '70.1.1.1', modality: 'CT' });
        expect(await found('CT')).toEqual(['70.1']);
      });

      it('an instance named before it arrives is stored hidden; restore shows it and voids the note', async () => {
        await store({ study: '51.1', series: '51.1.1', sop: '51.1.1.1' });
        expect((await catalog.storeInstance(note('51.1', '51.1.9.1', [ref('51.1', '51.1.1', '51.1.1.2')]))).status).toBe('stored');
        expect(await catalog.storeInstance(fakeInstance({ study: '51.1', series: '51.1.1', sop: '51.1.1.2' }))).toEqual({ status: 'stored', hidden: true });
        expect(first(await studyRow('51.1'), NUM_INSTANCES)).toBe(2);
        const restored = await catalog.restoreRejected(['51.1.1.2'], now(), soon);
        expect(restored.restored.map((e) => e.sopInstanceUid)).toEqual(['51.1.1.2']);
        expect(restored.voidedNotes).toEqual(['51.1.9.1']);
        expect(restored.studies).toEqual(['51.1']);
        // Visible again; the note rejects nothing any more and is hidden itself.
        expect(await uidsOf('instance', {}, SOP, { studyInstanceUid: '51.1' })).toEqual(['51.1.1.1', '51.1.1.2']);
        const study = await studyRow('51.1');
        expect(first(study, NUM_INSTANCES)).toBe(2);
        expect(value(study, MODALITIES)).toEqual(['CT']);
        expect((await catalog.listRejected({ studyInstanceUid: '51.1', limit: 10, offset: 0 })).map((e) => [e.sopInstanceUid, e.kind])).toEqual([['51.1.9.1', 'voided-note']]);
        // Nothing left to restore.
        expect((await catalog.restoreRejected(['51.1.1.2'], now(), soon)).restored).toEqual([]);
      });

      it('a whole study rejected shows only its note; a purge removes the rows for good, queues the blobs and keeps tombstones', async () => {
        await store({ study: '52.1', series: '52.1.1', sop: '52.1.1.1' }, { study: '52.1', series: '52.1.1', sop: '52.1.1.2' });
        await catalog.storeInstance(note('52.1', '52.1.9.1', [ref('52.1', '52.1.1', '52.1.1.1'), ref('52.1', '52.1.1', '52.1.1.2')], past, '113039'));
        expect(first(await studyRow('52.1'), NUM_INSTANCES)).toBe(1);
        expect(await catalog.duePurges(now(), 10)).toHaveLength(2);
        const purged = await catalog.purgeRejected('52.1.1.1', now());
        expect(purged?.removed).toMatchObject({ sopInstanceUid: '52.1.1.1', blobKey: 'blobs/52.1.1.1.dcm' });
        await catalog.purgeRejected('52.1.1.2', now());
        expect(await catalog.purgeRejected('52.1.1.2', now())).toBeUndefined();
        expect((await catalog.pendingBlobDeletes(10)).sort()).toEqual(['blobs/52.1.1.1.dcm', 'blobs/52.1.1.2.dcm']);
        expect((await catalog.referencedBlobKeys(['blobs/52.1.1.1.dcm'])).size).toBe(0);
        await catalog.clearPendingBlobDeletes(['blobs/52.1.1.1.dcm', 'blobs/52.1.1.2.dcm']);
        expect(await catalog.pendingBlobDeletes(10)).toEqual([]);
        // The series held only purged rows: it is gone; the note's series stays.
        expect(await uidsOf('series', {}, SERIES, { studyInstanceUid: '52.1' })).toEqual(['52.1.9']);
        expect((await catalog.listInstances({ studyInstanceUid: '52.1' }, { includeRejected: true })).map((i) => i.sopInstanceUid)).toEqual(['52.1.9.1']);
        expect((await catalog.listRejected({ studyInstanceUid: '52.1', state: 'purged', limit: 10, offset: 0 })).map((e) => e.sopInstanceUid).sort()).toEqual(['52.1.1.1', '52.1.1.2']);
        // Sent again: hidden again, and due for the next purge.
        expect(await catalog.storeInstance(fakeInstance({ study: '52.1', series: '52.1.1', sop: '52.1.1.1' }))).toEqual({ status: 'stored', hidden: true });
        expect((await catalog.duePurges(now(), 10)).map((e) => e.sopInstanceUid)).toEqual(['52.1.1.1']);
      });

      it('DELETE removes the rows of an instance, a series and a study, rejected ones included; their blobs are queued', async () => {
        await store(
          { study: '53.1', series: '53.1.1', sop: '53.1.1.1', modality: 'CT' },
          { study: '53.1', series: '53.1.1', sop: '53.1.1.2', modality: 'CT' },
          { study: '53.1', series: '53.1.2', sop: '53.1.2.1', modality: 'MR' },
          { study: '53.2', series: '53.2.1', sop: '53.2.1.1', patientId: 'P53' },
        );
        const one = await catalog.deleteInstances({ studyInstanceUid: '53.1', seriesInstanceUid: '53.1.1', sopInstanceUid: '53.1.1.1' }, now());
        expect(one.removed.map((r) => r.blobKey)).toEqual(['blobs/53.1.1.1.dcm']);
        expect(first(await studyRow('53.1'), NUM_INSTANCES)).toBe(2);
        await catalog.deleteInstances({ studyInstanceUid: '53.1', seriesInstanceUid: '53.1.2' }, now());
        expect(value(await studyRow('53.1'), MODALITIES)).toEqual(['CT']);
        await catalog.storeInstance(note('53.1', '53.1.9.1', [ref('53.1', '53.1.1', '53.1.1.2')]));
        const study = await catalog.deleteInstances({ studyInstanceUid: '53.1' }, now());
        expect(study.removed.map((r) => r.sopInstanceUid).sort()).toEqual(['53.1.1.2', '53.1.9.1']);
        expect(await uidsOf('study', {}, STUDY)).toEqual(['53.2']);
        expect(await catalog.listRejected({ studyInstanceUid: '53.1', state: 'all', limit: 10, offset: 0 })).toEqual([]);
        expect((await catalog.pendingBlobDeletes(10)).sort()).toEqual(['blobs/53.1.1.1.dcm', 'blobs/53.1.1.2.dcm', 'blobs/53.1.2.1.dcm', 'blobs/53.1.9.1.dcm']);
        expect((await catalog.deleteInstances({ studyInstanceUid: '53.1' }, now())).removed).toEqual([]);
      });

      it('moves series and instances to another study, splits, merges and changes patient: counters, placement, patient of record', async () => {
        await store(
          { study: '60.1', series: '60.1.1', sop: '60.1.1.1', patientId: 'P60', patientName: 'WRONG^ONE', modality: 'CT', accession: 'A60', studyDate: '20240101' },
          { study: '60.1', series: '60.1.1', sop: '60.1.1.2', patientId: 'P60', patientName: 'WRONG^ONE', modality: 'CT', accession: 'A60', studyDate: '20240101' },
          { study: '60.1', series: '60.1.2', sop: '60.1.2.1', patientId: 'P60', patientName: 'WRONG^ONE', modality: 'MR', accession: 'A60', studyDate: '20240101' },
          { study: '60.2', series: '60.2.1', sop: '60.2.1.1', patientId: 'P61', patientName: 'RIGHT^ONE', modality: 'CT', accession: 'A61', studyDate: '20240202' },
        );
        // A series to another patient's study.
        const series = await catalog.moveInstances({ from: { studyInstanceUid: '60.1', seriesInstanceUids: ['60.1.2'] }, to: { kind: 'study', studyInstanceUid: '60.2' } }, now());
        expect(series).toMatchObject({ fromStudy: '60.1', toStudy: '60.2', fromPatient: { patientId: 'P60' }, toPatient: { patientId: 'P61' }, series: 1, instances: 1, sourceRemoved: false });
        expect([first(await studyRow('60.1'), NUM_INSTANCES), value(await studyRow('60.1'), MODALITIES)]).toEqual([2, ['CT']]);
        expect([first(await studyRow('60.2'), NUM_INSTANCES), first(await studyRow('60.2'), NUM_SERIES), value(await studyRow('60.2'), MODALITIES)]).toEqual([2, 2, ['CT', 'MR']]);
        const [moved] = await catalog.listInstances({ studyInstanceUid: '60.2', seriesInstanceUid: '60.1.2' });
        expect(moved?.placement).toMatchObject({ seriesInstanceUid: '60.1.2', study: { studyInstanceUid: '60.2', accessionNumber: 'A61', studyDate: '20240202' } });
        expect(moved?.patient).toMatchObject({ differs: true, identity: { patientId: 'P61', name: 'RIGHT^ONE' } });
        // The study's own instance: same patient identity, never moved.
        const [own] = await catalog.listInstances({ studyInstanceUid: '60.2', seriesInstanceUid: '60.2.1' });
        expect([own?.placement, own?.patient?.differs]).toEqual([undefined, false]);
        expect(await catalog.listInstances({ studyInstanceUid: '60.1', seriesInstanceUid: '60.1.2' })).toEqual([]);
        // The same file sent again (its header still says 60.1): a duplicate, not a conflict.
        expect((await catalog.storeInstance(fakeInstance({ study: '60.1', series: '60.1.2', sop: '60.1.2.1', patientId: 'P60' }))).status).toBe('duplicate');

        // One instance out of a series: a series made for it in the target study.
        const one = await catalog.moveInstances({ from: { studyInstanceUid: '60.1', sopInstanceUids: ['60.1.1.1'] }, to: { kind: 'study', studyInstanceUid: '60.2' } }, now());
        expect([one.series, one.instances]).toEqual([1, 1]);
        const [split] = await catalog.listInstances({ studyInstanceUid: '60.2', sopInstanceUid: '60.1.1.1', seriesInstanceUid: (await uidsOf('instance', { SOPInstanceUID: '60.1.1.1' }, SERIES))[0] as string });
        expect(split?.placement?.seriesInstanceUid).not.toBe('60.1.1');
        expect(split?.placement?.study.studyInstanceUid).toBe('60.2');
        expect(first(await studyRow('60.2'), NUM_INSTANCES)).toBe(3);

        // Split: a series into a new study of the same patient, with its own accession number.
        const made = await catalog.moveInstances(
          { from: { studyInstanceUid: '60.2', seriesInstanceUids: ['60.2.1'] }, to: { kind: 'new-study', studyInstanceUid: '60.3', attributes: { accessionNumber: 'A63', studyDescription: 'Split off' } } },
          now(),
        );
        expect(made).toMatchObject({ toStudy: '60.3', toPatient: { patientId: 'P61' }, instances: 1 });
        const newStudy = await studyRow('60.3');
        expect([first(newStudy, '00080050'), first(newStudy, '00081030'), first(newStudy, '00080020'), first(newStudy, '00100020')]).toEqual(['A63', 'Split off', '20240202', 'P61']);
        expect((await catalog.listInstances({ studyInstanceUid: '60.3' }))[0]?.placement?.study).toMatchObject({ studyInstanceUid: '60.3', accessionNumber: 'A63' });

        // Merge what is left of 60.1 into 60.2: 60.1 and its patient row are gone.
        const merged = await catalog.moveInstances({ from: { studyInstanceUid: '60.1' }, to: { kind: 'study', studyInstanceUid: '60.2' } }, now());
        expect(merged.sourceRemoved).toBe(true);
        expect(await uidsOf('study', { PatientID: 'P60' }, STUDY)).toEqual([]);
        expect(first(await studyRow('60.2'), NUM_INSTANCES)).toBe(3);
        // Moved back where its file says: read as stored again.
        const back = await catalog.moveInstances({ from: { studyInstanceUid: '60.2', seriesInstanceUids: ['60.1.2'] }, to: { kind: 'new-study', studyInstanceUid: '60.1' } }, now());
        expect(back.toStudy).toBe('60.1');
        expect((await catalog.listInstances({ studyInstanceUid: '60.1' }))[0]?.placement).toBeUndefined();

        // The whole study to another patient, new to the archive.
        const patient = await catalog.moveInstances({ from: { studyInstanceUid: '60.3' }, to: { kind: 'patient', patient: { patientId: 'P99', issuer: 'HOSP', name: 'NEW^PATIENT', birthDate: null, sex: 'F', otherIds: [] } } }, now());
        expect(patient).toMatchObject({ fromStudy: '60.3', toStudy: '60.3', toPatient: { patientId: 'P99', issuer: 'HOSP' } });
        expect(first(await studyRow('60.3'), '00100010')).toEqual({ Alphabetic: 'NEW^PATIENT' });
        expect((await catalog.listInstances({ studyInstanceUid: '60.3' }))[0]?.patient).toMatchObject({ differs: true, identity: { patientId: 'P99' } });

        // Refusals.
        await expect(catalog.moveInstances({ from: { studyInstanceUid: '60.404' }, to: { kind: 'study', studyInstanceUid: '60.2' } }, now())).rejects.toMatchObject({ code: 'NOT_FOUND' });
        await expect(catalog.moveInstances({ from: { studyInstanceUid: '60.2' }, to: { kind: 'study', studyInstanceUid: '60.2' } }, now())).rejects.toMatchObject({ code: 'BAD_REQUEST' });
        await expect(catalog.moveInstances({ from: { studyInstanceUid: '60.2', seriesInstanceUids: ['60.9.9'] }, to: { kind: 'study', studyInstanceUid: '60.3' } }, now())).rejects.toMatchObject({ code: 'NOT_FOUND' });
      });
    });
  });
}
