/**
 * QIDO-RS latency: typical queries against the loaded index, each with the result count expected from
 * the generated corpus, so a fast-but-wrong answer is caught rather than timed.
 */
import type { TargetServer } from './target.js';
import type { StudyPlan } from './generate.js';
import { httpRequest } from './util.js';

export interface QidoCall {
  /** Path and query below the DICOMweb root, e.g. /studies?PatientName=SMI* */
  path: string;
  expectedCount: number;
}

export interface QidoQueryType {
  id: string;
  /** How the query looks, for the table. */
  label: string;
  /** The i-th variant of this query (varied parameters so no single answer can be cached). */
  call(i: number): QidoCall;
}

function dateRange(from: string, days: number): [string, string] {
  const d = new Date(`${from.slice(0, 4)}-${from.slice(4, 6)}-${from.slice(6, 8)}T00:00:00Z`);
  const to = new Date(d.getTime() + days * 86_400_000);
  return [from, to.toISOString().slice(0, 10).replace(/-/g, '')];
}

/** Builds the query mix for an index of `studies`. `studyLimit` caps the open-ended study queries. */
export function queryTypes(studies: StudyPlan[], studyLimit = 25): QidoQueryType[] {
  const n = studies.length;
  const pick = (i: number, stride: number): StudyPlan => studies[(i * stride) % n]!;
  const modalities = ['MR', 'PT', 'CR', 'US', 'CT'];
  return [
    {
      id: 'name',
      label: `studies?PatientName=ABC*&limit=100`,
      call: (i) => {
        const prefix = pick(i, 7).patientName.slice(0, 3);
        return {
          path: `/studies?PatientName=${encodeURIComponent(`${prefix}*`)}&limit=100`,
          expectedCount: Math.min(100, studies.filter((s) => s.patientName.startsWith(prefix)).length),
        };
      },
    },
    {
      id: 'patientId',
      label: 'studies?PatientID=BENCH-P0042',
      call: (i) => {
        const id = pick(i, 11).patientId;
        return { path: `/studies?PatientID=${encodeURIComponent(id)}`, expectedCount: studies.filter((s) => s.patientId === id).length };
      },
    },
    {
      id: 'date',
      label: `studies?StudyDate=YYYYMMDD-YYYYMMDD (1 year)&limit=100`,
      call: (i) => {
        const [from, to] = dateRange(pick(i, 13).studyDate, 365);
        return {
          path: `/studies?StudyDate=${from}-${to}&limit=100`,
          expectedCount: Math.min(100, studies.filter((s) => s.studyDate >= from && s.studyDate <= to).length),
        };
      },
    },
    {
      id: 'modality',
      label: `studies?ModalitiesInStudy=MR&limit=${studyLimit}`,
      call: (i) => {
        const m = modalities[i % modalities.length]!;
        return {
          path: `/studies?ModalitiesInStudy=${m}&limit=${studyLimit}`,
          expectedCount: Math.min(studyLimit, studies.filter((s) => s.modalities.includes(m)).length),
        };
      },
    },
    {
      id: 'page',
      label: `studies?limit=${studyLimit}&offset=k`,
      call: (i) => {
        const offset = (i * 17) % Math.max(1, n - studyLimit);
        return { path: `/studies?limit=${studyLimit}&offset=${offset}`, expectedCount: Math.min(studyLimit, n - offset) };
      },
    },
    {
      id: 'series',
      label: 'studies/{study}/series',
      call: (i) => {
        const s = pick(i, 3);
        return { path: `/studies/${s.studyInstanceUid}/series`, expectedCount: s.series.length };
      },
    },
    {
      id: 'instances',
      label: 'studies/{study}/series/{series}/instances',
      call: (i) => {
        const s = pick(i, 5);
        const se = s.series[i % s.series.length]!;
        return {
          path: `/studies/${s.studyInstanceUid}/series/${se.seriesInstanceUid}/instances`,
          expectedCount: se.instances.length,
        };
      },
    },
  ];
}

export interface QidoSample {
  elapsedMs: number;
  /** Size of the response body (shows whether servers return comparable attribute sets). */
  bytes: number;
  ok: boolean;
  error?: string;
}

export async function runQido(server: TargetServer, call: QidoCall): Promise<QidoSample> {
  const url = `${server.dicomwebRoot}${call.path}`;
  try {
    const res = await httpRequest(url, { headers: { Accept: 'application/dicom+json' }, timeoutMs: 60_000 });
    let count = -1;
    if (res.status === 200) {
      try {
        const json: unknown = JSON.parse(res.body.toString('utf8'));
        count = Array.isArray(json) ? json.length : -1;
      } catch {
        count = -1;
      }
    } else if (res.status === 204) {
      count = 0; // some servers answer an empty match with 204 No Content
    }
    const ok = count === call.expectedCount;
    return {
      elapsedMs: res.elapsedMs,
      bytes: res.body.length,
      ok,
      error: ok
        ? undefined
        : `GET ${call.path} -> HTTP ${res.status}, ${count} results, expected ${call.expectedCount}; ` +
          `body: ${res.body.toString('utf8').slice(0, 200).replace(/\s+/g, ' ')}`,
    };
  } catch (err) {
    return { elapsedMs: Number.NaN, bytes: 0, ok: false, error: `GET ${call.path} -> ${(err as Error).message}` };
  }
}

/** Studies in the index, and the total of NumberOfStudyRelatedInstances when the server reports it. */
export async function indexSummary(server: TargetServer, maxStudies: number): Promise<{ studies: number; instances?: number; error?: string }> {
  const res = await httpRequest(`${server.dicomwebRoot}/studies?limit=${maxStudies}&includefield=00201208`, {
    headers: { Accept: 'application/dicom+json' },
    timeoutMs: 120_000,
  });
  if (res.status !== 200) return { studies: -1, error: `HTTP ${res.status}: ${res.body.toString('utf8').slice(0, 200)}` };
  const json = JSON.parse(res.body.toString('utf8')) as Record<string, { Value?: unknown[] }>[];
  let instances: number | undefined = 0;
  for (const study of json) {
    const v = study['00201208']?.Value?.[0];
    if (v === undefined || v === null) {
      instances = undefined;
      break;
    }
    instances += Number(v);
  }
  return { studies: json.length, instances };
}

/** Checks that one study is findable and holds `instances` instances; returns an error text or undefined. */
export async function verifyStudy(server: TargetServer, studyInstanceUid: string, instances: number): Promise<string | undefined> {
  try {
    const res = await httpRequest(`${server.dicomwebRoot}/studies?StudyInstanceUID=${studyInstanceUid}&includefield=00201208`, {
      headers: { Accept: 'application/dicom+json' },
      timeoutMs: 60_000,
    });
    const json = res.status === 200 ? (JSON.parse(res.body.toString('utf8')) as Record<string, { Value?: unknown[] }>[]) : [];
    const count = Number(json[0]?.['00201208']?.Value?.[0] ?? Number.NaN);
    if (res.status === 200 && json.length === 1 && (count === instances || Number.isNaN(count))) return undefined;
    return `QIDO for uploaded study ${studyInstanceUid}: HTTP ${res.status}, ${json.length} studies, NumberOfStudyRelatedInstances ${count}, expected 1 study with ${instances}`;
  } catch (err) {
    return `QIDO for uploaded study ${studyInstanceUid}: ${(err as Error).message}`;
  }
}
