/**
 * Every core of one machine (issue 22): the real server (main.ts) started with PACS_WORKERS=2 on the
 * embedded default (blob folder + SQLite index file). Each request goes over a connection of its own,
 * which the primary hands to the workers in turn, so both serve; which one answered is read from the
 * logs (every line names its worker). Checked:
 * - many concurrent STOW-RS requests, and the same requests again at once (duplicates racing in the other
 *   process): every one acknowledged, every instance retrieved byte for byte, one index row each;
 * - worker 0 (the one with the background duties) killed with SIGKILL: requests keep being answered by
 *   the other, a replacement takes slot 0 and the duties, and serves;
 * - a rejection made through one worker: every following request, whichever worker answers, gets 404
 *   within the change feed's latency, both workers having had the instance cached before;
 * - the purge of the rejected instances (a background duty): done by worker 0 only, each instance
 *   purged and audited exactly once;
 * - SIGTERM to the primary: a STOW-RS request in flight is drained (200, stored), then every process exits.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../changes/change-feed.contract.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { spawnServer, type SpawnedServer } from '../test-support/spawn-server.js';
import { splitMultipart } from '../test-support/split-multipart.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

interface LogLine {
  msg?: string;
  time?: number;
  worker?: number | string;
  pid?: number;
  slot?: number;
  backgroundDuties?: boolean;
  purged?: number;
  req?: { method?: string; path?: string };
}

const RETRIEVE = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const FEED_LATENCY_MS = 1000;

/** One request on a connection of its own (no keep-alive): the primary picks the next worker for it. */
function request(base: string, method: string, url: string, options: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = { ...options.headers, ...(options.body === undefined ? {} : { 'content-length': String(options.body.length) }) };
    const req = http.request(new URL(url, base), { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('PACS_WORKERS=2 on a SQLite index: one server, every core', () => {
  let dir: string;
  let server: SpawnedServer;
  const study = newUid();
  const seriesUids = [newUid(), newUid(), newUid()];
  const sent = new Map<string, { series: string; bytes: Buffer }>();

  const logs = (): LogLine[] =>
    server
      .output()
      .split('\n')
      .flatMap((line) => {
        if (!line.startsWith('{')) return [];
        try {
          return [JSON.parse(line) as LogLine];
        } catch {
          return [];
        }
      });
  /** The pid of the worker now in `slot` (the primary logs each it starts). */
  const workerPid = (slot: number): number | undefined => logs().filter((l) => l.msg === 'cluster worker starting' && l.slot === slot).at(-1)?.pid;
  /** Which workers logged a request to `path` (optionally from `since`, epoch ms). */
  const workersServing = (method: string, urlPath: string, since = 0): Set<number | string> =>
    new Set(logs().filter((l) => l.msg === 'incoming request' && l.req?.method === method && l.req?.path === urlPath && (l.time ?? 0) >= since).map((l) => l.worker!));
  const stow = (parts: Buffer[]) =>
    request(server.url, 'POST', '/dicomweb/studies', { headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' }, body: multipartBody(parts.map((body) => ({ body }))) });
  const instanceUrl = (series: string, sop: string) => `/dicomweb/studies/${study}/series/${series}/instances/${sop}`;
  const index = () => new Database(path.join(dir, 'index.sqlite'), { readonly: true, fileMustExist: true });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-cluster-'));
    server = await spawnServer({
      PACS_DATA_DIR: dir,
      PACS_WORKERS: '2',
      PACS_AI_ENABLED: 'false',
      PACS_LOG_LEVEL: 'info',
      // The purge is the background duty watched here: due at once, swept every second.
      PACS_REJECTION_PURGE_DAYS: '0',
      PACS_REJECTION_PURGE_INTERVAL_SECONDS: '1',
      PACS_SHUTDOWN_GRACE_SECONDS: '20',
    });
    // /healthz answered by worker 0; wait for worker 1 too.
    await eventually(() => expect(logs().some((l) => l.msg === 'cluster ready: every worker listens')).toBe(true), 60_000, 100);
    // Each worker writes its own lines to the shared stdout: its "ready" line may arrive after the primary's.
    await eventually(() => expect(new Set(logs().filter((l) => l.msg === 'filmless-pacs ready').map((l) => l.worker)).size).toBe(2), 10_000, 50);
  }, 120_000);

  afterAll(async () => {
    await server?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('starts two workers; only worker 0 runs the background duties; every log line names its worker', () => {
    const ready = logs().filter((l) => l.msg === 'filmless-pacs ready');
    expect(ready.map((l) => l.worker).sort()).toEqual([0, 1]);
    expect(ready.filter((l) => l.backgroundDuties).map((l) => l.worker)).toEqual([0]);
    expect(workerPid(0)).not.toBe(workerPid(1));
    expect(workerPid(0)).not.toBe(server.pid);
  });

  it('concurrent STOW-RS through both workers, sent twice at once: all acknowledged, each instance stored once and byte for byte', async () => {
    const batches: Buffer[][] = [];
    for (let b = 0; b < 12; b += 1) {
      const batch: Buffer[] = [];
      for (let i = 0; i < 5; i += 1) {
        const series = seriesUids[b % seriesUids.length]!;
        const sop = newUid();
        const bytes = makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, modality: 'CT', patientId: 'CLUSTER-1', patientName: 'CLUSTER^TEST' });
        sent.set(sop, { series, bytes });
        batch.push(bytes);
      }
      batches.push(batch);
    }
    // Each batch twice, all 24 requests at once: the copy of a batch races its original in the other worker.
    const answers = await Promise.all([...batches, ...batches].map((batch) => stow(batch)));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    expect([...workersServing('POST', '/dicomweb/studies')].sort()).toEqual([0, 1]);

    for (const [sop, { series, bytes }] of sent) {
      const answer = await request(server.url, 'GET', instanceUrl(series, sop), { headers: { accept: RETRIEVE } });
      expect(answer.status).toBe(200);
      const [part] = splitMultipart(answer.body, answer.headers['content-type']);
      expect(part!.body.equals(bytes)).toBe(true);
    }
    const db = index();
    try {
      const rows = db.prepare('SELECT COUNT(*) AS n, COUNT(DISTINCT sop_instance_uid) AS distinct_uids FROM instances').get() as { n: number; distinct_uids: number };
      expect(rows).toEqual({ n: sent.size, distinct_uids: sent.size });
      const studies = db.prepare('SELECT COUNT(*) AS n FROM studies').get() as { n: number };
      expect(studies.n).toBe(1);
      const series = db.prepare('SELECT COUNT(*) AS n FROM series').get() as { n: number };
      expect(series.n).toBe(seriesUids.length);
    } finally {
      db.close();
    }
  }, 120_000);

  it('worker 0 killed with SIGKILL: requests keep being answered, a replacement takes slot 0 and the duties', async () => {
    const killed = workerPid(0)!;
    const other = workerPid(1)!;
    const killedAt = Date.now();
    process.kill(killed, 'SIGKILL');
    await eventually(() => expect(logs().some((l) => l.msg === 'cluster worker died; a replacement is started' && l.pid === killed)).toBe(true), 5000, 20);
    // From the moment the primary knows, every request is answered (by worker 1 until the replacement listens).
    const statuses: number[] = [];
    await eventually(
      async () => {
        statuses.push((await request(server.url, 'GET', `/dicomweb/studies?StudyInstanceUID=${study}`, { headers: { accept: 'application/dicom+json' } })).status);
        const replacement = workerPid(0);
        expect(replacement).not.toBe(killed);
        expect(logs().some((l) => l.msg === 'filmless-pacs ready' && l.worker === 0 && l.backgroundDuties === true && (l.time ?? 0) > killedAt)).toBe(true);
      },
      60_000,
      50,
    );
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(alive(killed)).toBe(false);
    expect(workerPid(1)).toBe(other);
    // The replacement serves: requests over new connections reach both slots again.
    const since = Date.now();
    await eventually(async () => {
      expect((await request(server.url, 'GET', '/dicomweb/studies', { headers: { accept: 'application/dicom+json' } })).status).toBe(200);
      expect([...workersServing('GET', '/dicomweb/studies', since)].sort()).toEqual([0, 1]);
    }, 10_000, 20);
  }, 90_000);

  it('a rejection made through one worker is seen by the other at once; the purge (a duty) runs once, in worker 0', async () => {
    const [rejectedSop, { series }] = [...sent.entries()][0]!;
    const rejectedToo = [...sent.entries()].filter(([, v]) => v.series === series).slice(1, 4).map(([sop]) => sop);
    const metadata = `${instanceUrl(series, rejectedSop)}/metadata`;
    // Both workers look the instance up (and keep the lookup) before the change.
    await eventually(async () => {
      expect((await request(server.url, 'GET', metadata)).status).toBe(200);
      expect([...workersServing('GET', metadata)].sort()).toEqual([0, 1]);
    }, 10_000, 10);

    const rejectedAt = Date.now();
    const rejection = await request(server.url, 'POST', '/curation/rejections', {
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ studyInstanceUid: study, sopInstanceUids: [rejectedSop, ...rejectedToo], reason: '113001' })),
    });
    expect(rejection.status).toBe(201);
    // Within the feed's latency, every answer (each on a new connection: the workers in turn) is a 404.
    await eventually(async () => {
      for (let i = 0; i < 4; i += 1) expect((await request(server.url, 'GET', metadata)).status).toBe(404);
    }, FEED_LATENCY_MS, 10);
    const since = Date.now();
    for (let i = 0; i < 6; i += 1) expect((await request(server.url, 'GET', metadata)).status).toBe(404);
    expect([...workersServing('GET', metadata, since)].sort()).toEqual([0, 1]);

    // The purge: rows gone, done by worker 0 alone, each instance audited once.
    const purged = [rejectedSop, ...rejectedToo];
    await eventually(() => {
      const db = index();
      try {
        const left = db.prepare(`SELECT COUNT(*) AS n FROM instances WHERE sop_instance_uid IN (${purged.map(() => '?').join(',')})`).get(...purged) as { n: number };
        expect(left.n).toBe(0);
        const records = (db.prepare("SELECT record FROM audit_event WHERE action = 'delete' AND record LIKE '%purge of rejected instances%'").all() as Array<{ record: string }>).map((r) => r.record);
        for (const sop of purged) expect(records.filter((record) => record.includes(sop))).toHaveLength(1);
      } finally {
        db.close();
      }
    }, 15_000, 200);
    const sweeps = logs().filter((l) => l.msg === 'rejected instances purged' && (l.time ?? 0) >= rejectedAt);
    expect(sweeps.length).toBeGreaterThan(0);
    expect(new Set(sweeps.map((l) => l.worker))).toEqual(new Set([0]));
    expect(sweeps.reduce((sum, l) => sum + (l.purged ?? 0), 0)).toBe(purged.length);
  }, 60_000);

  it('SIGTERM to the primary: a STOW-RS request in flight is drained, then every process exits', async () => {
    const workers = [workerPid(0)!, workerPid(1)!];
    const sop = newUid();
    const bytes = makeInstance({ studyInstanceUid: study, seriesInstanceUid: seriesUids[0]!, sopInstanceUid: sop, modality: 'CT', patientId: 'CLUSTER-1', patientName: 'CLUSTER^TEST' });
    const body = multipartBody([{ body: bytes }]);
    const startedAt = Date.now();
    const answer = new Promise<Answer>((resolve, reject) => {
      const req = http.request(new URL('/dicomweb/studies', server.url), { method: 'POST', agent: false, headers: { 'content-type': STOW_CONTENT_TYPE(), 'content-length': String(body.length), accept: 'application/dicom+json' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      // Half the body now; the rest once the server has been told to stop.
      req.write(body.subarray(0, body.length >> 1));
      void eventually(() => expect(workersServing('POST', '/dicomweb/studies', startedAt).size).toBe(1), 10_000, 10).then(async () => {
        process.kill(server.pid, 'SIGTERM');
        await eventually(() => expect(logs().filter((l) => l.msg === 'shutting down' && (l.time ?? 0) >= startedAt)).toHaveLength(2), 5000, 10);
        req.end(body.subarray(body.length >> 1));
      }, reject);
    });
    expect((await answer).status).toBe(200);
    await server.kill();
    for (const pid of workers) expect(alive(pid)).toBe(false);
    const db = index();
    try {
      expect((db.prepare('SELECT COUNT(*) AS n FROM instances WHERE sop_instance_uid = ?').get(sop) as { n: number }).n).toBe(1);
    } finally {
      db.close();
    }
  }, 60_000);
});
