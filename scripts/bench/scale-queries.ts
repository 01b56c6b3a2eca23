/**
 * The queries of the index-growth benchmark (bench-scale.ts): the usual QIDO-RS searches of a reading
 * room and a series' metadata, each with what it must answer given how many studies of the synthetic
 * corpus (scale-corpus.ts) are loaded, so a fast but wrong answer is a failure, not a figure.
 */
import { dateRangeAround, patientOf, QUERY_MODALITIES, studyPlan, type ScaleShape, type ScaleStudy } from './scale-corpus.js';

type Json = Record<string, { Value?: unknown[] }>[];

export interface ScaleCall {
  /** Path and query below the DICOMweb root. */
  path: string;
  /** What the response must hold: the number of results, and the text of what is wrong, if anything. */
  expectedCount: number;
  check?(json: Json): string | undefined;
}

export interface ScaleQuery {
  id: string;
  /** How the query looks, for the table. */
  label: string;
  /** A call against an index holding studies 0..loaded-1; `pick` draws a random loaded study index. */
  call(loaded: number, pick: () => number): ScaleCall;
}

/** Open-ended study searches ask for this many at most, as a worklist page would. */
export const STUDY_LIMIT = 100;
/** Days of the StudyDate range query. */
export const DATE_RANGE_DAYS = 30;

function valueOf(item: Json[number], tag: string): unknown {
  return item[tag]?.Value?.[0];
}

function everyHas(tag: string, expected: (item: Json[number]) => unknown = () => undefined): (json: Json) => string | undefined {
  return (json) => {
    for (const item of json) {
      const value = valueOf(item, tag);
      const want = expected(item);
      if (value === undefined || (want !== undefined && value !== want)) return `a result has ${tag} = ${JSON.stringify(value)}${want === undefined ? '' : `, expected ${JSON.stringify(want)}`}`;
    }
    return undefined;
  };
}

export function scaleQueries(root: string, shape: ScaleShape): ScaleQuery[] {
  const study = (k: number): ScaleStudy => studyPlan(root, shape, k);
  // Modalities depend on k mod 10 only.
  const modalitiesByClass = Array.from({ length: 10 }, (_, k) => study(k).modalities);
  const studiesOfPatient = (p: number, loaded: number): number => (p < loaded ? Math.floor((loaded - 1 - p) / shape.patients) + 1 : 0);
  return [
    {
      id: 'patientId',
      label: 'studies?PatientID={id}',
      call: (loaded, pick) => {
        const p = pick() % shape.patients;
        const { patientId } = patientOf(p);
        return {
          path: `/studies?PatientID=${encodeURIComponent(patientId)}`,
          expectedCount: studiesOfPatient(p, loaded),
          check: everyHas('00100020', () => patientId),
        };
      },
    },
    {
      id: 'patientName',
      label: `studies?PatientName=ABC*&limit=${STUDY_LIMIT}`,
      call: (loaded, pick) => {
        const prefix = patientOf(pick() % shape.patients).patientName.slice(0, 3);
        let count = 0;
        for (let p = 0; p < Math.min(shape.patients, loaded); p++) if (patientOf(p).patientName.startsWith(prefix)) count += studiesOfPatient(p, loaded);
        return { path: `/studies?PatientName=${encodeURIComponent(`${prefix}*`)}&limit=${STUDY_LIMIT}`, expectedCount: Math.min(STUDY_LIMIT, count) };
      },
    },
    {
      id: 'studyDate',
      label: `studies?StudyDate={from}-{to} (${DATE_RANGE_DAYS} days)&limit=${STUDY_LIMIT}`,
      call: (loaded, pick) => {
        const [from, to] = dateRangeAround(pick(), DATE_RANGE_DAYS);
        let count = 0;
        for (let k = 0; k < loaded; k++) {
          const date = dateRangeAround(k, 1)[0];
          if (date >= from && date <= to) count++;
        }
        return {
          path: `/studies?StudyDate=${from}-${to}&limit=${STUDY_LIMIT}`,
          expectedCount: Math.min(STUDY_LIMIT, count),
          check: (json) => (json.some((item) => { const d = String(valueOf(item, '00080020')); return d < from || d > to; }) ? 'a StudyDate outside the range' : undefined),
        };
      },
    },
    {
      id: 'modalities',
      label: `studies?ModalitiesInStudy={modality}&limit=${STUDY_LIMIT}`,
      call: (loaded, pick) => {
        const modality = QUERY_MODALITIES[pick() % QUERY_MODALITIES.length]!;
        let count = 0;
        for (let k = 0; k < Math.min(10, loaded); k++) {
          if (modalitiesByClass[k]!.includes(modality)) count += Math.floor((loaded - 1 - k) / 10) + 1;
        }
        return { path: `/studies?ModalitiesInStudy=${modality}&limit=${STUDY_LIMIT}`, expectedCount: Math.min(STUDY_LIMIT, count) };
      },
    },
    {
      id: 'accession',
      label: 'studies?AccessionNumber={accession}',
      call: (_loaded, pick) => {
        const s = study(pick());
        return { path: `/studies?AccessionNumber=${s.accessionNumber}`, expectedCount: 1, check: everyHas('0020000D', () => s.studyInstanceUid) };
      },
    },
    {
      id: 'seriesOfStudy',
      label: 'studies/{study}/series',
      call: (_loaded, pick) => {
        const s = study(pick());
        return { path: `/studies/${s.studyInstanceUid}/series`, expectedCount: shape.seriesPerStudy, check: everyHas('0020000E') };
      },
    },
    {
      id: 'instancesOfSeries',
      label: 'studies/{study}/series/{series}/instances?includefield=ImagePositionPatient,SliceLocation',
      call: (_loaded, pick) => {
        const s = study(pick());
        const se = s.series[pick() % s.series.length]!;
        return {
          path: `/studies/${s.studyInstanceUid}/series/${se.seriesInstanceUid}/instances?includefield=00200032,00201041`,
          expectedCount: shape.instancesPerSeries,
          check: everyHas('00200032'),
        };
      },
    },
    {
      id: 'seriesMetadata',
      label: 'studies/{study}/series/{series}/metadata',
      call: (_loaded, pick) => {
        const s = study(pick());
        const se = s.series[pick() % s.series.length]!;
        return {
          path: `/studies/${s.studyInstanceUid}/series/${se.seriesInstanceUid}/metadata`,
          expectedCount: shape.instancesPerSeries,
          check: everyHas('00080018'),
        };
      },
    },
  ];
}

/** Deterministic pseudo-random numbers (mulberry32), so a rerun draws the same studies. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
