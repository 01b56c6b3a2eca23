/**
 * The S3-protocol server of the tests (server/src/test-support/s3-test-server.ts: s3rver on loopback)
 * in a process of its own, for benchmarks of our server on the S3 backend: in the benchmark's own
 * process it would compete with the client for the event loop and skew every latency measured.
 *
 *   tsx scripts/bench/s3-server.ts     # prints one JSON line {port, accessKey, secretKey, bucket}
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startS3TestServer } from '../../server/src/test-support/s3-test-server.js';
import { spawnLogged } from './target.js';
import { log, sleep } from './util.js';

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = await startS3TestServer();
  process.stdout.write(`${JSON.stringify({ port: server.port, accessKey: server.accessKey, secretKey: server.secretKey, bucket: server.bucket })}\n`);
  const stop = () => void server.close().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

export interface S3Process {
  /** PACS_* variables that point our server at it. */
  env: Record<string, string>;
  describe: string;
  stop(): Promise<void>;
}

/** Starts this file as a child process and waits for its JSON line. */
export async function startS3Process(repoRoot: string, workDir: string): Promise<S3Process> {
  const proc = spawnLogged(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
    cwd: repoRoot,
    env: process.env,
    logFile: path.join(workDir, 's3.log'),
  });
  for (let waited = 0; waited < 60_000; waited += 100) {
    const line = proc.logTail().split('\n').find((l) => l.startsWith('{"port"'));
    if (line !== undefined) {
      const info = JSON.parse(line) as { port: number; accessKey: string; secretKey: string; bucket: string };
      log(`S3 test server (s3rver) on 127.0.0.1:${info.port}, pid ${proc.child.pid}`);
      return {
        env: {
          PACS_BLOB_STORE: 's3',
          PACS_S3_ENDPOINT: '127.0.0.1',
          PACS_S3_PORT: String(info.port),
          PACS_S3_ACCESS_KEY: info.accessKey,
          PACS_S3_SECRET_KEY: info.secretKey,
          PACS_S3_BUCKET: info.bucket,
        },
        describe: `our blobs on S3: s3rver (the tests' S3-protocol server, JavaScript, one process) on loopback; MinIO in production is faster`,
        stop: proc.stop,
      };
    }
    if (!proc.alive()) break;
    await sleep(100);
  }
  await proc.stop();
  throw new Error(`the S3 test server did not start:\n${proc.logTail()}`);
}
