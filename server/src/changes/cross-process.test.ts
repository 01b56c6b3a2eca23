/**
 * Two real server processes on one index (a SQLite file; PostgreSQL) and one blob folder, as behind a
 * load balancer: a change made through one is seen by the other at once, within the change feed's
 * latency (each check polls for at most 1 s, no sleep): QIDO counts and ModalitiesInStudy, series
 * metadata and its ETag, an instance whose lookup and open file the other process had cached (404 after
 * DELETE and after a rejection), the patient's name after a correction through the HIS API, a share
 * link revoked (410). B is warmed first so that each answer could come from its caches.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multipartBody, makeInstance, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { createTestSchema, isPostgresAvailable, type TestSchema } from '../test-support/postgres-test-schema.js';
import { spawnServer, type SpawnedServer } from '../test-support/spawn-server.js';
import { splitMultipart } from '../test-support/split-multipart.js';
import { eventually } from './change-feed.contract.js';

type Json = Record<string, { Value?: unknown[] }>;
const FEED_LATENCY_MS = 1000;
const BASE = 'http://pacs.test';

const postgres = await isPostgresAvailable();
if (!postgres) console.warn('PostgreSQL at 127.0.0.1:5432 is not reachable: the PostgreSQL run of the two-process test is skipped');

const backends: Array<{ name: string; env: (dir: string) => Promise<{ env: Record<string, string>; drop(): Promise<void> }> }> = [
  { name: 'SQLite file (polled change table)', env: async () => ({ env: { PACS_CHANGE_FEED: 'auto' }, drop: async () => undefined }) },
  ...(postgres
    ? [
        {
          name: 'PostgreSQL (LISTEN/NOTIFY)',
          env: async () => {
            const schema: TestSchema = createTestSchema('pacs_feed');
            return { env: { PACS_INDEX: 'postgres', PACS_POSTGRES_URL: schema.connectionString, PACS_POSTGRES_SCHEMA: schema.schema }, drop: () => schema.drop() };
          },
        },
      ]
    : []),
];

describe.each(backends)('two server processes on one index: $name', ({ env: backendEnv }) => {
  let dir: string;
  let a: SpawnedServer;
  let b: SpawnedServer;
  let drop: () => Promise<void>;
  const study = newUid();
  const seriesX = newUid();
  const seriesY = newUid();
  const [x1, x2, x3, y1] = [newUid(), newUid(), newUid(), newUid()];
  const patientId = `FEED-${Date.now()}`;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-two-processes-'));
    const backend = await backendEnv(dir);
    drop = backend.drop;
    const env = { PACS_DATA_DIR: dir, PACS_AI_ENABLED: 'false', PACS_PUBLIC_BASE_URL: BASE, PACS_LOG_LEVEL: 'warn', ...backend.env };
    // One after the other: the first creates the schema, the second finds it.
    a = await spawnServer(env);
    b = await spawnServer(env);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([a?.kill(), b?.kill()]);
    await drop?.();
    await rm(dir, { recursive: true, force: true });
  });

  const stow = async (server: SpawnedServer, parts: Buffer[]) => {
    const response = await fetch(`${server.url}/dicomweb/studies`, { method: 'POST', headers: { 'content-type': STOW_CONTENT_TYPE() }, body: new Uint8Array(multipartBody(parts.map((body) => ({ body })))) });
    expect(response.status).toBe(200);
  };
  const instance = (series: string, sop: string, modality: string) =>
    makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, modality, patientId, patientName: 'FEED^BEFORE' });
  const get = (server: SpawnedServer, url: string, headers: Record<string, string> = {}) => fetch(`${server.url}${url}`, { headers });
  const studyRow = async (server: SpawnedServer) => {
    const rows = (await (await get(server, `/dicomweb/studies?StudyInstanceUID=${study}&includefield=00201208,00080061`)).json()) as Json[];
    return { instances: rows[0]?.['00201208']?.Value?.[0], modalities: [...((rows[0]?.['00080061']?.Value ?? []) as string[])].sort() };
  };
  const seriesMetadata = async (server: SpawnedServer) => {
    const response = await get(server, `/dicomweb/studies/${study}/series/${seriesX}/metadata`);
    const sops = ((await response.json()) as Json[]).map((item) => item['00080018']?.Value?.[0]).sort();
    return { etag: response.headers.get('etag'), sops };
  };
  const instanceUrl = (series: string, sop: string) => `/dicomweb/studies/${study}/series/${series}/instances/${sop}`;
  /** B's answer equals A's (the process that made the change answers from the index or dropped its caches). */
  const agree = async <T>(read: (server: SpawnedServer) => Promise<T>): Promise<T> => {
    const expected = await read(a);
    await eventually(async () => expect(await read(b)).toEqual(expected), FEED_LATENCY_MS, 20);
    return expected;
  };

  it('stores through A and warms B', async () => {
    await stow(a, [instance(seriesX, x1, 'MR'), instance(seriesX, x2, 'MR'), instance(seriesY, y1, 'CT')]);
    expect(await studyRow(b)).toEqual({ instances: 3, modalities: ['CT', 'MR'] });
    expect((await seriesMetadata(b)).sops).toEqual([x1, x2].sort());
    // B's instance lookups, open read handles and metadata of what later changes.
    expect((await get(b, `${instanceUrl(seriesY, y1)}/frames/1`, { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' })).status).toBe(200);
    expect((await get(b, `${instanceUrl(seriesX, x1)}/metadata`)).status).toBe(200);
  });

  it('a new instance stored through A into the existing series: counts, series metadata and its ETag on B', async () => {
    const before = await seriesMetadata(b);
    await stow(a, [instance(seriesX, x3, 'MR')]);
    expect(await agree(studyRow)).toEqual({ instances: 4, modalities: ['CT', 'MR'] });
    const after = await agree(seriesMetadata);
    expect(after.sops).toEqual([x1, x2, x3].sort());
    expect(after.etag).not.toBe(before.etag);
    expect((await get(b, `/dicomweb/studies/${study}/series/${seriesX}/metadata`, { 'if-none-match': before.etag! })).status).toBe(200);
    expect((await get(b, `${instanceUrl(seriesX, x3)}/metadata`)).status).toBe(200);
  });

  it('a rejection through the curation API on A hides the instance on B at once', async () => {
    const rejected = await fetch(`${a.url}/curation/rejections`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ studyInstanceUid: study, sopInstanceUids: [x3], reason: '113001' }),
    });
    expect(rejected.status).toBe(201);
    await eventually(async () => expect((await get(b, `${instanceUrl(seriesX, x3)}/metadata`)).status).toBe(404), FEED_LATENCY_MS, 20);
    expect((await agree(seriesMetadata)).sops).toEqual([x1, x2].sort());
    await agree(studyRow);
  });

  it('a DELETE through A: the instance B had open answers 404 on B, ModalitiesInStudy loses CT', async () => {
    const frames = `${instanceUrl(seriesY, y1)}/frames/1`;
    const accept = { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' };
    expect((await get(b, frames, accept)).status).toBe(200);
    // B's instance list of the whole study (study metadata and retrieve start from it) holds y1 now.
    const studySops = async (server: SpawnedServer) =>
      ((await (await get(server, `/dicomweb/studies/${study}/metadata`)).json()) as Json[]).map((item) => item['00080018']?.Value?.[0]).sort();
    expect(await studySops(b)).toContain(y1);
    expect((await fetch(`${a.url}${instanceUrl(seriesY, y1)}`, { method: 'DELETE' })).status).toBeLessThan(300);
    await eventually(async () => {
      expect((await get(b, frames, accept)).status).toBe(404);
      expect((await get(b, instanceUrl(seriesY, y1))).status).toBe(404);
    }, FEED_LATENCY_MS, 20);
    const row = await agree(studyRow);
    expect(row.modalities).not.toContain('CT');
    expect(await agree(studySops)).not.toContain(y1);
  });

  it("a patient correction through the HIS API on A: B's metadata, ETag and retrieved file carry the new name", async () => {
    const url = `${instanceUrl(seriesX, x1)}/metadata`;
    // B's instance list of the series and its finished metadata answer, both read before the correction.
    const namesInSeries = async (server: SpawnedServer) =>
      ((await (await get(server, `/dicomweb/studies/${study}/series/${seriesX}/metadata`)).json()) as Json[]).map((item) => JSON.stringify(item['00100010']?.Value?.[0]));
    expect(new Set(await namesInSeries(b))).toEqual(new Set([JSON.stringify({ Alphabetic: 'FEED^BEFORE' })]));
    const before = await get(b, url);
    const etag = before.headers.get('etag')!;
    expect(((await before.json()) as Json[])[0]!['00100010']?.Value?.[0]).toEqual({ Alphabetic: 'FEED^BEFORE' });
    const corrected = await fetch(`${a.url}/his/patients/BV-FEED/${patientId}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'FEED^AFTER', sex: 'F' }),
    });
    expect(corrected.status).toBe(200);
    expect(((await corrected.json()) as { studiesUpdated: string[] }).studiesUpdated).toEqual([study]);
    await eventually(async () => {
      const response = await get(b, url, { 'if-none-match': etag });
      expect(response.status).toBe(200);
      expect(((await response.json()) as Json[])[0]!['00100010']?.Value?.[0]).toEqual({ Alphabetic: 'FEED^AFTER' });
    }, FEED_LATENCY_MS, 20);
    await eventually(async () => expect(new Set(await namesInSeries(b))).toEqual(new Set([JSON.stringify({ Alphabetic: 'FEED^AFTER' })])), FEED_LATENCY_MS, 20);
    // The whole instance as B sends it: the identity of record in its header.
    const retrieved = await get(b, instanceUrl(seriesX, x1), { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' });
    const [part] = splitMultipart(Buffer.from(await retrieved.arrayBuffer()), retrieved.headers.get('content-type'));
    const bytes = part!.body;
    const parsed = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer, { ignoreErrors: true });
    expect(JSON.stringify(dcmjs.data.DicomMetaDictionary.naturalizeDataset(parsed.dict).PatientName)).toContain('FEED^AFTER');
  });

  it('a share link revoked through A stops on B at once (410)', async () => {
    const made = await fetch(`${a.url}/share/links`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ studyInstanceUid: study }) });
    expect(made.status).toBe(201);
    const { token, link } = (await made.json()) as { token: string; link: { id: string } };
    const withLink = { authorization: `Bearer share.${token}` };
    // Used on B first, so that B holds the credential in its cache.
    expect((await get(b, '/dicomweb/studies', withLink)).status).toBe(200);
    expect((await get(b, '/dicomweb/studies', withLink)).status).toBe(200);
    expect((await fetch(`${a.url}/share/links/${link.id}`, { method: 'DELETE' })).status).toBe(200);
    await eventually(async () => expect((await get(b, '/dicomweb/studies', withLink)).status).toBe(410), FEED_LATENCY_MS, 20);
  });
});
