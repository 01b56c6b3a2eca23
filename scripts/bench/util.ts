/**
 * Small helpers shared by the archive benchmark: free ports, waiting for HTTP readiness, statistics,
 * /proc memory readings and a tiny HTTP client built on node:http (so bodies can be streamed with an
 * exact Content-Length and nothing is buffered by the client).
 */
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';

export const MB = 1_000_000;
export const MiB = 1024 * 1024;

/** `unref`: the timer does not keep the process alive (a give-up timeout that usually loses its race). */
export function sleep(ms: number, options: { unref?: boolean } = {}): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (options.unref === true) timer.unref();
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// Statistics

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest-rank on a linear interpolation between closest ranks (same as numpy's default).
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const loValue = sorted[lo]!;
  const hiValue = sorted[hi]!;
  return loValue + (hiValue - loValue) * (rank - lo);
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

// ---------------------------------------------------------------------------------------------------
// /proc memory

export interface ProcMemory {
  rssBytes: number;
  hwmBytes: number;
}

/**
 * `pid` and its descendants (our server with PACS_WORKERS > 1 is a primary and its workers): memory
 * and CPU readings add them all up.
 */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return [pid];
  }
  for (const name of entries) {
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(name)]);
    } catch {
      // gone meanwhile
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i += 1) tree.push(...(parents.get(tree[i]!) ?? []));
  return tree;
}

/** RSS and peak RSS of `pid` and its descendants, summed (the peak: the sum of each process's own peak). */
export function readProcMemory(pid: number): ProcMemory | undefined {
  const readings = processTree(pid).map(readOneProcMemory);
  if (readings[0] === undefined) return undefined;
  const present = readings.filter((m): m is ProcMemory => m !== undefined);
  return { rssBytes: present.reduce((sum, m) => sum + m.rssBytes, 0), hwmBytes: present.reduce((sum, m) => sum + m.hwmBytes, 0) };
}

function readOneProcMemory(pid: number): ProcMemory | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : Number.NaN;
  };
  return { rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM') };
}

/** Resets the kernel's peak-RSS counter (VmHWM) of a process and its descendants; false when not permitted. */
export function resetPeakRss(pid: number): boolean {
  try {
    for (const one of processTree(pid)) fs.writeFileSync(`/proc/${one}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Samples VmRSS every `intervalMs` until stopped; the peak sampled RSS is returned by stop(). */
export function sampleRss(pid: number, intervalMs = 25): { stop: () => number } {
  let peak = readProcMemory(pid)?.rssBytes ?? 0;
  const timer = setInterval(() => {
    const m = readProcMemory(pid);
    if (m && m.rssBytes > peak) peak = m.rssBytes;
  }, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      const m = readProcMemory(pid);
      if (m && m.rssBytes > peak) peak = m.rssBytes;
      return peak;
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// HTTP

/** The benchmarks' one keep-alive agent (as a viewer keeps its connections). */
export const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const agent = httpAgent;

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Milliseconds from the start of the request to the last byte of the response. */
  elapsedMs: number;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string | number>;
  /** A whole body, or a stream (then headers must carry Content-Length or it is sent chunked). */
  body?: Buffer | Readable;
  timeoutMs?: number;
}

export function httpRequest(url: string, options: HttpRequestOptions = {}): Promise<HttpResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: options.method ?? 'GET', headers: options.headers, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
            elapsedMs: performance.now() - started,
          }),
        );
      },
    );
    req.on('error', reject);
    if (options.timeoutMs) {
      req.setTimeout(options.timeoutMs, () => req.destroy(new Error(`timeout after ${options.timeoutMs} ms: ${url}`)));
    }
    const body = options.body;
    if (body === undefined) {
      req.end();
    } else if (Buffer.isBuffer(body)) {
      req.end(body);
    } else {
      body.on('error', (err) => req.destroy(err));
      // pipe() honours backpressure: the generator only produces as fast as the server reads.
      body.pipe(req);
    }
  });
}

/** Polls `url` until it answers 200 or `timeoutMs` elapses; `alive()` false aborts early. */
export async function waitForHttp200(url: string, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let first4xx: number | undefined;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`process exited before ${url} answered`);
    try {
      const res = await httpRequest(url, { headers: { Accept: 'application/dicom+json' }, timeoutMs: 5000 });
      if (res.status === 200) return;
      last = `HTTP ${res.status}: ${res.body.toString('utf8').slice(0, 300)}`;
      // A running server that keeps answering 4xx will not get better by waiting.
      first4xx ??= Date.now();
      if (res.status >= 400 && res.status < 500 && Date.now() - first4xx > 5000) break;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (last: ${last})`);
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'n/a';
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(0)} MiB`;
  return `${(bytes / 1024).toFixed(0)} KiB`;
}

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** Total size of the regular files below `dir` (what a server actually wrote to disk). */
export function directoryBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) {
      try {
        total += fs.statSync(`${entry.parentPath ?? entry.path}/${entry.name}`).size;
      } catch {
        /* vanished */
      }
    }
  }
  return total;
}

/** CPU time (user + system, all threads) the process has used so far, in seconds. */
export function cpuSeconds(pid: number): number {
  try {
    let ticks = 0;
    for (const [i, one] of processTree(pid).entries()) {
      const stat = fs.readFileSync(`/proc/${one}/stat`, 'utf8');
      // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based),
      // cutime and cstime (children waited for: a cluster worker that died) 16 and 17.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]) + (i === 0 ? Number(fields[13]) + Number(fields[14]) : 0);
    }
    return ticks / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}
const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux x86-64/arm64
