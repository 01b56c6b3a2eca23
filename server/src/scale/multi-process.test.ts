/**
 * Many machines (issue 22), on one: 3 server processes (server/src/main.ts) behind haproxy configured by
 * deploy/haproxy.cfg, 2 BullMQ worker processes (server/src/worker.ts), one PostgreSQL schema, the S3 test
 * server and Redis (own key prefix). Mixed concurrent load goes through the balancer: STOW-RS, QIDO-RS
 * and series metadata, WADO-RS frames, a slide analysis job followed over Server-Sent Events and a live
 * endoscopy session over WebSocket. One server is killed with SIGKILL mid-load and started again on its
 * port. Checked:
 * - during the load, every read that could see an acknowledged instance does (counts, series metadata,
 *   frames byte for byte), whichever server answers: no stale answer after a change made elsewhere;
 *   reads fail only while the killed server's connections break;
 * - afterwards every acknowledged instance is present once and byte-identical (retrieved whole);
 * - the job completed exactly once: every unit done once, no duplicate completion, one result instance;
 * - the live session (on a server that was not killed) stored its recording, visible from every server;
 * - a rejection, a DELETE and a patient correction made through one server are answered by each other
 *   server, asked directly on its own port (the restarted one included), within the change feed's
 *   latency (≤ 1 s);
 * - the servers see the client's address from haproxy's X-Forwarded-For (PACS_TRUSTED_PROXIES), not
 *   what a client claims.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveClient } from '../../../scripts/live/live-client.js';
import { eventually } from '../changes/change-feed.contract.js';
import { TEST_MODELS_DIR } from '../test-support/build-test-app.js';
import { appendCapturedLog } from '../test-support/log-capture.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { createTestSchema, isPostgresAvailable, type TestSchema } from '../test-support/postgres-test-schema.js';
import { startS3TestServer, type S3TestServer } from '../test-support/s3-test-server.js';
import { repoRoot, sharedDataDir } from '../test-support/shared-data.js';
import { describeInstance } from '../test-support/shared-instance.js';
import { freePort, spawnServer, type SpawnedServer } from '../test-support/spawn-server.js';
import { splitMultipart } from '../test-support/split-multipart.js';

type Json = Record<string, { Value?: unknown[] }>;

const HAPROXY = '/usr/sbin/haproxy';
const REDIS_URL = process.env['PACS_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
/** The change feed's latency on PostgreSQL is ~1 ms; a read elsewhere must show a change within this. */
const FEED_LATENCY_MS = 1000;
const FRAMES_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const DICOM_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const ROWS = 32;

async function isRedisAvailable(): Promise<boolean> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

const missing = [
  ...(existsSync(HAPROXY) ? [] : [`haproxy (${HAPROXY})`]),
  ...((await isPostgresAvailable()) ? [] : ['PostgreSQL at 127.0.0.1:5432']),
  ...((await isRedisAvailable()) ? [] : [`Redis at ${REDIS_URL}`]),
];
if (missing.length > 0) console.warn(`The multi-process test is skipped: ${missing.join(', ')} not available`);

/** A child process whose output is kept (and appended to the captured log when it exits). */
interface Child {
  child: ChildProcess;
  output: () => string;
  exited: Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function startChild(command: string, args: string[], env: Record<string, string>, name: string): Child {
  const child = spawn(command, args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      appendCapturedLog(name, output);
      resolve();
    }),
  );
  return {
    child,
    output: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms: number, output?: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${ms} ms${output ? `: ${output().slice(-3000)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** One line of haproxy's `show stat` per server of the backend. */
async function haproxyServers(socket: string): Promise<Array<{ name: string; status: string; current: number; total: number }>> {
  const text = await new Promise<string>((resolve, reject) => {
    const connection = net.connect(socket);
    let out = '';
    connection.on('data', (chunk) => (out += chunk.toString()));
    connection.on('end', () => resolve(out));
    connection.on('error', reject);
    connection.write('show stat\n');
  });
  const [header, ...lines] = text.trim().split('\n');
  const columns = header!.replace(/^# /, '').split(',');
  const at = (name: string) => columns.indexOf(name);
  return lines
    .map((line) => line.split(','))
    .filter((cells) => cells[at('pxname')] === 'servers' && cells[at('svname')] !== 'BACKEND')
    .map((cells) => ({ name: cells[at('svname')]!, status: cells[at('status')]!, current: Number(cells[at('scur')]), total: Number(cells[at('stot')]) }));
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** An HTTP GET from a chosen loopback source address (fetch cannot pick one). */
function getFrom(localAddress: string, url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { localAddress, headers }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('error', reject);
  });
}

describe.skipIf(missing.length > 0)('3 servers behind haproxy, 2 BullMQ workers, PostgreSQL + S3 + Redis', () => {
  let dir: string;
  let schema: TestSchema;
  let s3: S3TestServer;
  const prefix = `filmless-scale-${randomUUID().slice(0, 8)}`;
  let env: Record<string, string>;
  const ports: number[] = [];
  const servers: SpawnedServer[] = [];
  const workers: Child[] = [];
  let haproxy: Child;
  let lb: string;
  let statsSocket: string;

  const serverEnv = (i: number) => ({ ...env, PACS_DATA_DIR: path.join(dir, `server-${i}`), PACS_PORT: String(ports[i]) });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-scale-'));
    schema = createTestSchema('pacs_scale');
    s3 = await startS3TestServer();
    env = {
      PACS_INDEX: 'postgres',
      PACS_POSTGRES_URL: schema.connectionString,
      PACS_POSTGRES_SCHEMA: schema.schema,
      PACS_POSTGRES_POOL_SIZE: '4',
      PACS_BLOB_STORE: 's3',
      PACS_S3_ENDPOINT: s3.endPoint,
      PACS_S3_PORT: String(s3.port),
      PACS_S3_ACCESS_KEY: s3.accessKey,
      PACS_S3_SECRET_KEY: s3.secretKey,
      PACS_S3_BUCKET: s3.bucket,
      PACS_JOBS_QUEUE: 'bullmq',
      PACS_REDIS_URL: REDIS_URL,
      PACS_REDIS_PREFIX: prefix,
      PACS_JOBS_WORKERS_IN_PROCESS: 'false',
      PACS_JOBS_WINDOWS_PER_UNIT: '4',
      PACS_JOBS_STALLED_SECONDS: '2',
      PACS_MODELS_DIR: TEST_MODELS_DIR,
      PACS_AI_THREADS: '1',
      PACS_TRUSTED_PROXIES: '127.0.0.1',
      PACS_LOG_LEVEL: 'warn',
    };
    for (let i = 0; i < 3; i += 1) ports.push(await freePort());
    // All at once, as `docker compose up --scale server=3` starts them: they race to create the schema.
    const started = await Promise.allSettled([0, 1, 2].map((i) => spawnServer(serverEnv(i), { readyTimeoutMs: 90_000 })));
    for (const result of started) if (result.status === 'fulfilled') servers.push(result.value);
    for (const result of started) if (result.status === 'rejected') throw result.reason;
    const startWorker = async (id: string) => {
      const worker = startChild(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'server/src/worker.ts')], { ...env, PACS_DATA_DIR: path.join(dir, id), PACS_WORKER_ID: id, PACS_LOG_LEVEL: 'info' }, `worker-${id}`);
      workers.push(worker);
      await waitFor(`worker ${id} ready`, () => worker.output().includes('slide analysis worker ready'), 90_000, worker.output);
    };
    await Promise.all([startWorker('w1'), startWorker('w2')]);

    const lbPort = await freePort();
    lb = `http://127.0.0.1:${lbPort}`;
    statsSocket = path.join(dir, 'haproxy.sock');
    // The repository's configuration as it is, plus a test-only file for the admin socket.
    const testCfg = path.join(dir, 'haproxy-test.cfg');
    await writeFile(testCfg, `global\n    stats socket ${statsSocket} mode 600 level admin\n`);
    haproxy = startChild(
      HAPROXY,
      ['-db', '-f', path.join(repoRoot, 'deploy/haproxy.cfg'), '-f', testCfg],
      { PACS_LB_BIND: `127.0.0.1:${lbPort}`, ...Object.fromEntries(ports.map((port, i) => [`PACS_LB_SERVER_${i + 1}`, `127.0.0.1:${port}`])) },
      'haproxy',
    );
    await waitFor(
      'haproxy up with 3 servers UP',
      async () => existsSync(statsSocket) && (await haproxyServers(statsSocket).catch(() => [])).filter((s) => s.status === 'UP').length === 3,
      20_000,
      haproxy.output,
    );
  }, 180_000);

  afterAll(async () => {
    await haproxy?.stop();
    await Promise.all(workers.map((w) => w.stop()));
    await Promise.all(servers.map((s) => s.kill()));
    const queue = new Queue('slide-analysis', { connection: { url: REDIS_URL } as never, prefix });
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    await s3?.close();
    await schema?.drop();
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  /** What the clients were told was stored: SOP → its bytes' sha256 and pixels, by study and series. */
  interface Stored {
    study: string;
    series: string;
    sop: string;
    sha: string;
    pixels: Buffer;
    bytes: Buffer;
  }
  const acknowledged = new Map<string, Stored>();
  const unacknowledged: Stored[][] = [];
  const studies = Array.from({ length: 3 }, (_, i) => ({ study: newUid(), patientId: `SCALE-${i}-${randomUUID().slice(0, 6)}` }));
  const wrong: string[] = [];
  const failures: Array<{ at: number; what: string }> = [];
  let killedAt = 0;
  let restartedAt = 0;
  let killed = -1;
  /** What the killed server had written before it was killed (its restarted process has its own output). */
  const killedOutputs: string[] = [];
  let jobId = '';
  let liveRecording: { studyInstanceUid: string; video: { seriesInstanceUid: string; sopInstanceUid: string; frames: number } } | undefined;

  const makeBatch = (client: number): Stored[] => {
    const { study, patientId } = studies[client]!;
    const series = newUid();
    return Array.from({ length: 4 }, () => {
      const sop = newUid();
      const pixels = randomBytes(ROWS * ROWS);
      const bytes = makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, patientId, patientName: 'SCALE^LOAD', rows: ROWS, columns: ROWS, pixels });
      return { study, series, sop, sha: sha256(bytes), pixels, bytes };
    });
  };

  const stowBatch = async (base: string, batch: Stored[]): Promise<boolean> => {
    const response = await fetch(`${base}/dicomweb/studies`, {
      method: 'POST',
      headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' },
      body: new Uint8Array(multipartBody(batch.map((b) => ({ body: b.bytes })))),
    });
    const body = (await response.json().catch(() => ({}))) as Json;
    // What a refusal said, for the failure list (reasons only, no patient data: the instances are synthetic).
    const failed = ((body['00081198']?.Value ?? []) as Json[]).map((item) => item['00081197']?.Value?.[0]);
    if (response.status !== 200) throw new Error(`not acknowledged: HTTP ${response.status}, failure reasons ${JSON.stringify(failed)}`);
    const referenced = new Set(((body['00081199']?.Value ?? []) as Json[]).map((item) => item['00081155']?.Value?.[0] as string));
    // Each instance the response references is acknowledged, even when others of the batch are not.
    for (const b of batch) if (referenced.has(b.sop)) acknowledged.set(b.sop, b);
    const missing = batch.filter((b) => !referenced.has(b.sop)).length;
    if (missing > 0) throw new Error(`not acknowledged: HTTP 200 without ${missing} of ${batch.length} instances, failure reasons ${JSON.stringify(failed)}`);
    return true;
  };

  it('serves mixed concurrent load through haproxy while one server is killed (SIGKILL) and restarted', async () => {
    // The slide for the analysis job, stored through the balancer.
    const folder = path.join(sharedDataDir, 'wsi-cmu1-small-region', 'tiled-full-gcp-wsi2dcm');
    const slideFiles = await Promise.all((await readdir(folder)).filter((n) => n.endsWith('.dcm')).map((n) => readFile(path.join(folder, n))));
    const slideStow = await fetch(`${lb}/dicomweb/studies`, { method: 'POST', headers: { 'content-type': STOW_CONTENT_TYPE() }, body: new Uint8Array(multipartBody(slideFiles.map((body) => ({ body })))) });
    expect(slideStow.status).toBe(200);
    const slide = describeInstance(slideFiles[0]!);
    // A first batch per client, so that readers have something from the start.
    for (let client = 0; client < studies.length; client += 1) expect(await stowBatch(lb, makeBatch(client))).toBe(true);

    // The live session (WebSocket through haproxy): which server holds it (the only open connection now).
    const live = await LiveClient.connect(`${lb.replace('http', 'ws')}/live`);
    live.sendJson({ type: 'start', model: 'bright-spot', fps: 10, study: { patientName: 'SCALE^LIVE', patientId: `SCALE-LIVE-${randomUUID().slice(0, 6)}` } });
    expect((await live.next((m) => m.type === 'started')).model).toMatchObject({ id: 'bright-spot' });
    const liveServer = (await haproxyServers(statsSocket)).find((s) => s.current > 0)?.name;
    expect(liveServer).toBeDefined();

    // The slide analysis job and its progress over SSE, both through haproxy.
    const created = await fetch(`${lb}/ai/studies/${slide.study}/series/${slide.series}/analyses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'dark-spot' }) });
    expect(created.status).toBe(202);
    jobId = ((await created.json()) as { id: string }).id;
    const sse = await fetch(`${lb}/ai/analyses/${jobId}/events`, { headers: { accept: 'text/event-stream' } });
    expect(sse.status).toBe(200);
    expect(sse.headers.get('content-type')).toMatch(/^text\/event-stream/);
    let sseServer: string | undefined;
    await waitFor('the SSE stream on a server', async () => {
      sseServer = (await haproxyServers(statsSocket)).find((s) => s.current > 0 && s.name !== liveServer)?.name;
      return sseServer !== undefined;
    }, 5000);
    const events: Array<{ event: string; data: { state: string; progress: { unitsDone: number } } }> = [];
    const sseDone = (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of sse.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event !== undefined && data !== undefined) events.push({ event, data: JSON.parse(data) });
        }
      }
    })();

    // Kill the server holding neither the WebSocket nor the SSE stream.
    const names = ['s1', 's2', 's3'];
    killed = names.findIndex((n) => n !== liveServer && n !== sseServer);
    expect(killed).toBeGreaterThanOrEqual(0);

    let stop = false;
    const stowsDone = { count: 0 };
    const stowClient = async (client: number) => {
      while (!stop) {
        const batch = makeBatch(client);
        try {
          if (await stowBatch(lb, batch)) stowsDone.count += 1;
        } catch (err) {
          unacknowledged.push(batch);
          failures.push({ at: Date.now(), what: `STOW: ${(err as Error).message}` });
        }
      }
    };
    const pick = (): Stored => {
      const all = [...acknowledged.values()].filter((s) => studies.some((st) => st.study === s.study));
      return all[Math.floor(Math.random() * all.length)]!;
    };
    /** A read that must show everything acknowledged before it was sent, from whichever server answers. */
    const readClient = async () => {
      while (!stop) {
        const target = pick();
        const ackedInStudy = [...acknowledged.values()].filter((s) => s.study === target.study).length;
        const ackedInSeries = [...acknowledged.values()].filter((s) => s.series === target.series).map((s) => s.sop).sort();
        try {
          const qido = await fetch(`${lb}/dicomweb/studies?StudyInstanceUID=${target.study}&includefield=00201208`);
          if (qido.status !== 200) throw new Error(`QIDO ${qido.status}`);
          const count = ((await qido.json()) as Json[])[0]?.['00201208']?.Value?.[0] as number;
          if (!(count >= ackedInStudy)) wrong.push(`QIDO counted ${count} instances, ${ackedInStudy} were acknowledged before`);
          const metadata = await fetch(`${lb}/dicomweb/studies/${target.study}/series/${target.series}/metadata`);
          if (metadata.status !== 200) throw new Error(`series metadata ${metadata.status}`);
          const sops = ((await metadata.json()) as Json[]).map((item) => item['00080018']?.Value?.[0] as string).sort();
          if (JSON.stringify(sops) !== JSON.stringify(ackedInSeries)) wrong.push(`series metadata listed ${sops.length} instances, ${ackedInSeries.length} acknowledged`);
          const frame = await fetch(`${lb}/dicomweb/studies/${target.study}/series/${target.series}/instances/${target.sop}/frames/1`, { headers: { accept: FRAMES_ACCEPT } });
          if (frame.status !== 200) throw new Error(`frame ${frame.status}`);
          const [part] = splitMultipart(Buffer.from(await frame.arrayBuffer()), frame.headers.get('content-type'));
          if (!part || !part.body.equals(target.pixels)) wrong.push('a frame differed from the stored pixels');
        } catch (err) {
          failures.push({ at: Date.now(), what: `read: ${(err as Error).message}` });
        }
      }
    };
    let seq = 0;
    let jobStateAtKill = '';
    const liveClient = async () => {
      const frames = await Promise.all([20, 60, 100].map((x) => squareJpeg(x)));
      while (!stop) {
        live.sendJpeg(seq, frames[seq % frames.length]!, seq * 100);
        await live.next((m) => m.type === 'detections' && m.seq === seq, 30_000);
        seq += 1;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };

    const load = Promise.all([stowClient(0), stowClient(1), stowClient(2), readClient(), readClient(), liveClient()]);
    try {
      await waitFor('STOW under load', () => stowsDone.count >= 15, 60_000);
      const jobAtKill = (await (await fetch(`${lb}/ai/analyses/${jobId}`)).json()) as { state: string; progress: { unitsDone: number; unitsTotal: number } };
      jobStateAtKill = `${jobAtKill.state} ${jobAtKill.progress.unitsDone}/${jobAtKill.progress.unitsTotal}`;
      killedAt = Date.now();
      await servers[killed]!.kill('SIGKILL');
      killedOutputs.push(servers[killed]!.output());
      await waitFor('haproxy to mark the killed server DOWN', async () => (await haproxyServers(statsSocket))[killed]?.status.startsWith('DOWN') === true, 10_000);
      const atDown = stowsDone.count;
      await waitFor('STOW to go on without it', () => stowsDone.count >= atDown + 10, 60_000);
      servers[killed] = await spawnServer(serverEnv(killed), { readyTimeoutMs: 90_000 });
      await waitFor('haproxy to take the restarted server back', async () => (await haproxyServers(statsSocket))[killed]?.status === 'UP', 15_000);
      restartedAt = Date.now();
      const before = (await haproxyServers(statsSocket))[killed]!.total;
      await waitFor('the restarted server to get requests', async () => (await haproxyServers(statsSocket))[killed]!.total >= before + 10, 30_000);
    } finally {
      stop = true;
      await load;
    }

    // The balancer hid the kill from reads and writes, but for requests the killed server had already
    // started (their connection broke): those only, within a moment of the kill.
    console.info(
      `multi-process load: ${acknowledged.size} instances acknowledged, ${unacknowledged.length} STOW-RS not, ${failures.length} failed requests (${failures.map((f) => f.what).join('; ').slice(0, 300)}), ` +
        `server s${killed + 1} killed after ${stowsDone.count} STOW-RS, back ${restartedAt - killedAt} ms later; ${seq} live frames; job at the kill: ${jobStateAtKill}; job events so far: ${events.map((e) => `${e.event}:${e.data.progress?.unitsDone}`).join(' ').slice(-200)}`,
    );
    expect(wrong).toEqual([]);
    const outsideKill = failures.filter((f) => f.at < killedAt || f.at > killedAt + 5000);
    // On a failure, what the servers logged as errors says why (codes and messages; no patient data).
    const serverErrors = () => [...killedOutputs, ...servers.map((s) => s.output())].flatMap((o) => o.split('\n').filter((line) => /"level":(50|60)/.test(line))).slice(0, 10);
    expect(outsideKill, `${JSON.stringify(outsideKill.slice(0, 5).map((f) => ({ ...f, msAfterKill: f.at - killedAt })))}; server errors: ${serverErrors().join('\n')}`).toEqual([]);
    expect(acknowledged.size).toBeGreaterThanOrEqual(4 * 30);

    // The live session went on through the kill; its recording is stored and visible on every server.
    live.sendJson({ type: 'stop' });
    const stopped = await live.next((m) => m.type === 'stopped', 60_000);
    live.ws.close();
    expect(stopped.stats.processed).toBe(seq);
    liveRecording = stopped.recording;
    expect(liveRecording?.video.frames).toBe(seq);
    for (const server of servers) {
      const response = await fetch(`${server.url}/dicomweb/studies/${liveRecording!.studyInstanceUid}/series/${liveRecording!.video.seriesInstanceUid}/metadata`);
      expect(response.status).toBe(200);
    }

    // The job finished, once, seen through SSE.
    await Promise.race([sseDone, new Promise((_, reject) => setTimeout(() => reject(new Error(`SSE not ended: ${JSON.stringify(events.at(-1))}`)), 120_000))]);
    expect(events.at(-1)?.event, JSON.stringify(events.at(-1))).toBe('completed');
    expect(events.filter((e) => e.event === 'completed')).toHaveLength(1);
  }, 240_000);

  it('after the kill: every acknowledged instance is stored once and byte-identical; unacknowledged ones can be sent again', async () => {
    // A STOW-RS whose answer was lost in the kill is sent again, as a client would: storing is idempotent.
    for (const batch of unacknowledged) expect(await stowBatch(lb, batch)).toBe(true);
    for (const { study } of studies) {
      const expected = [...acknowledged.values()].filter((s) => s.study === study);
      // Whole study, from a server that was not killed and from the restarted one.
      for (const server of [servers[(killed + 1) % 3]!, servers[killed]!]) {
        const response = await fetch(`${server.url}/dicomweb/studies/${study}`, { headers: { accept: DICOM_ACCEPT } });
        expect(response.status).toBe(200);
        const parts = splitMultipart(Buffer.from(await response.arrayBuffer()), response.headers.get('content-type'));
        const got = parts.map((part) => sha256(part.body)).sort();
        expect(got).toEqual(expected.map((s) => s.sha).sort());
      }
    }
    // The index: one row per SOP Instance UID, as many as acknowledged (plus the slide, job result, live).
    const client = new pg.Client({ connectionString: schema.connectionString });
    await client.connect();
    try {
      const rows = await client.query<{ sop: string; n: string }>(`select sop_instance_uid as sop, count(*) as n from "${schema.schema}".instances group by 1 having count(*) > 1`);
      expect(rows.rows).toEqual([]);
      const ours = await client.query<{ n: string }>(
        `select count(*) as n from "${schema.schema}".instances i join "${schema.schema}".series se on se.id = i.series_fk join "${schema.schema}".studies st on st.id = se.study_fk where st.study_uid = any($1)`,
        [studies.map((s) => s.study)],
      );
      expect(Number(ours.rows[0]!.n)).toBe(acknowledged.size);

      // The job: completed once, every unit done once, no second completion, one result instance.
      const job = await client.query(`select state, units_total, duplicate_completions, result_series_uid, result_sop_uid from "${schema.schema}".analysis_job where id = $1`, [jobId]);
      expect(job.rows[0]).toMatchObject({ state: 'completed', duplicate_completions: 0 });
      const units = await client.query<{ state: string; completed_by: string }>(`select state, completed_by from "${schema.schema}".analysis_unit where job_id = $1`, [jobId]);
      expect(units.rows).toHaveLength(job.rows[0].units_total);
      for (const unit of units.rows) {
        expect(unit.state).toBe('done');
        expect(['w1', 'w2']).toContain(unit.completed_by);
      }
      const results = await client.query(`select count(*) as n from "${schema.schema}".instances i join "${schema.schema}".series se on se.id = i.series_fk where se.series_uid = $1`, [job.rows[0].result_series_uid]);
      expect(Number(results.rows[0].n)).toBe(1);
    } finally {
      await client.end();
    }
  }, 120_000);

  it('a rejection, a DELETE and a patient correction made on one server are answered by every other at once', async () => {
    const { study, patientId } = studies[0]!;
    const series = [...new Set([...acknowledged.values()].filter((s) => s.study === study).map((s) => s.series))];
    const [rejected, deleted, kept] = [...acknowledged.values()].filter((s) => s.series === series[1]);
    const others = (i: number) => servers.filter((_, j) => j !== i);
    const instance = (s: Stored) => `/dicomweb/studies/${s.study}/series/${s.series}/instances/${s.sop}`;
    const seriesSops = async (server: SpawnedServer) =>
      ((await (await fetch(`${server.url}/dicomweb/studies/${study}/series/${series[1]}/metadata`)).json()) as Json[]).map((item) => item['00080018']?.Value?.[0]).sort();
    // Every server holds what will change in its caches: lookups, frames' read handles, metadata.
    for (const server of servers) {
      for (const s of [rejected!, deleted!, kept!]) {
        expect((await fetch(`${server.url}${instance(s)}/frames/1`, { headers: { accept: FRAMES_ACCEPT } })).status).toBe(200);
        expect((await fetch(`${server.url}${instance(s)}/metadata`)).status).toBe(200);
      }
      expect(await seriesSops(server)).toHaveLength(4);
    }

    // A rejection on the restarted server.
    const rejection = await fetch(`${servers[killed]!.url}/curation/rejections`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ studyInstanceUid: study, sopInstanceUids: [rejected!.sop], reason: '113001' }),
    });
    expect(rejection.status).toBe(201);
    for (const server of others(killed)) {
      await eventually(async () => {
        expect((await fetch(`${server.url}${instance(rejected!)}/frames/1`, { headers: { accept: FRAMES_ACCEPT } })).status).toBe(404);
        expect(await seriesSops(server)).not.toContain(rejected!.sop);
      }, FEED_LATENCY_MS, 20);
    }

    // A DELETE on another: the restarted server hears it too.
    const deleter = (killed + 1) % 3;
    expect((await fetch(`${servers[deleter]!.url}${instance(deleted!)}`, { method: 'DELETE' })).status).toBeLessThan(300);
    for (const server of others(deleter)) {
      await eventually(async () => {
        expect((await fetch(`${server.url}${instance(deleted!)}/frames/1`, { headers: { accept: FRAMES_ACCEPT } })).status).toBe(404);
        expect((await fetch(`${server.url}${instance(deleted!)}/metadata`)).status).toBe(404);
      }, FEED_LATENCY_MS, 20);
    }

    // A patient correction through the HIS API on the third: new name in metadata everywhere (the old
    // ETag no longer matches), and in the file retrieved.
    const corrector = (killed + 2) % 3;
    const etags = await Promise.all(servers.map(async (server) => (await fetch(`${server.url}${instance(kept!)}/metadata`)).headers.get('etag')!));
    const corrected = await fetch(`${servers[corrector]!.url}/his/patients/BV-SCALE/${patientId}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'SCALE^CORRECTED', sex: 'F' }),
    });
    expect(corrected.status).toBe(200);
    for (const [i, server] of servers.entries()) {
      if (i === corrector) continue;
      await eventually(async () => {
        const response = await fetch(`${server.url}${instance(kept!)}/metadata`, { headers: { 'if-none-match': etags[i]! } });
        expect(response.status).toBe(200);
        expect(((await response.json()) as Json[])[0]!['00100010']?.Value?.[0]).toEqual({ Alphabetic: 'SCALE^CORRECTED' });
      }, FEED_LATENCY_MS, 20);
    }
  }, 60_000);

  it("the servers see the client's address from haproxy's X-Forwarded-For, never one a client claims", async () => {
    const { study } = studies[1]!;
    const status = await getFrom('127.0.0.2', `${lb}/dicomweb/studies/${study}/series`, { 'x-forwarded-for': '203.0.113.9' });
    expect(status).toBe(200);
    await eventually(async () => {
      const audit = (await (await fetch(`${lb}/admin/audit?study=${study}&action=query&limit=5`)).json()) as { records: Array<{ clientAddress: string }> };
      expect(audit.records[0]?.clientAddress).toBe('127.0.0.2');
    }, 5000, 100);
  }, 30_000);
});

/** 160×120 black JPEG with a white 40×40 square at (x, 40): one detection for the bright-spot model. */
async function squareJpeg(x: number): Promise<Buffer> {
  const pixels = Buffer.alloc(160 * 120 * 3);
  for (let y = 40; y < 80; y += 1) for (let c = x; c < x + 40; c += 1) pixels.fill(255, (y * 160 + c) * 3, (y * 160 + c) * 3 + 3);
  return sharp(pixels, { raw: { width: 160, height: 120, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}
