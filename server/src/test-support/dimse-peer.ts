/**
 * DIMSE test helpers: our SCP on a test app (temp storage, free loopback port), Debian dcmtk's command
 * line peers run as child processes (echoscu, storescu, findscu, movescu, getscu), and a dcmtk storescp
 * receiving into a temp folder as a C-MOVE destination.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Archive } from '../archive/archive.js';
import { startDimseServer, type DimseServer } from '../dimse/dimse-server.js';
import { buildTestApp, type TestApp } from './build-test-app.js';
import { freePort } from './spawn-server.js';

const INSTALL = 'apt-get install -y --no-install-recommends dcmtk';

export function requireDcmtk(): void {
  for (const tool of ['echoscu', 'storescu', 'findscu', 'movescu', 'getscu', 'storescp']) {
    if (!existsSync(`/usr/bin/${tool}`)) throw new Error(`dcmtk's ${tool} is not installed; install it with: ${INSTALL}`);
  }
}

export interface TestDimse {
  testApp: TestApp;
  archive: Archive;
  server: DimseServer;
  port: number;
  aeTitle: string;
  close(): Promise<void>;
}

export interface TestDimseOptions {
  host?: string;
  aeTitle?: string;
  allowedCallingAeTitles?: string[];
  aePermissions?: Record<string, Array<'read' | 'store'>>;
  destinations?: Record<string, { host: string; port: number }>;
  timeoutSeconds?: number;
}

export async function startTestDimse(options: TestDimseOptions = {}, testApp?: TestApp): Promise<TestDimse> {
  const app = testApp ?? (await buildTestApp());
  const { services, config } = app;
  const { archive } = services;
  const aeTitle = options.aeTitle ?? 'FILMLESS';
  const server = await startDimseServer({
    config: {
      host: options.host ?? '127.0.0.1',
      port: 0,
      aeTitle,
      allowedCallingAeTitles: options.allowedCallingAeTitles ?? [],
      aePermissions: options.aePermissions ?? {},
      destinations: options.destinations ?? {},
    },
    archive,
    logger: services.logger,
    pageSize: config.qido.maxLimit,
    audit: services.audit,
    ...(options.timeoutSeconds !== undefined && { timeoutSeconds: options.timeoutSeconds }),
  });
  return {
    testApp: app,
    archive,
    server,
    port: server.port,
    aeTitle,
    async close() {
      await server.close();
      if (testApp === undefined) await app.close();
    },
  };
}

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a dcmtk tool to completion (killed after `timeoutMs`). */
export function runTool(tool: string, args: string[], timeoutMs = 60_000, cwd?: string): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(cwd !== undefined && { cwd }) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface StoreScp {
  port: number;
  aeTitle: string;
  dir: string;
  output(): string;
  stop(): Promise<void>;
}

/** dcmtk storescp on a free loopback port, accepting every syntax it knows (+xa), writing what it receives (as received: +B) into a temp folder. */
export async function startStorescp(aeTitle = 'STORESCP', extraArgs: string[] = []): Promise<StoreScp> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-storescp-'));
  const port = await freePort();
  const child: ChildProcess = spawn('storescp', ['--aetitle', aeTitle, '--output-directory', dir, '+B', ...(extraArgs.length > 0 ? extraArgs : ['+xa']), String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForPort(port);
  return {
    port,
    aeTitle,
    dir,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
