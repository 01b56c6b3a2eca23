/**
 * Starts Debian's Orthanc with its DICOMweb plugin as a private child process for interoperability
 * tests (never the system service): temp storage, loopback only, DIMSE off, no authentication, and
 * `DicomWeb.Servers` naming the given DICOMweb peers. Throws (with the apt-get line) when Orthanc or
 * the plugin is not installed: CI installs them, so a missing one is a failure, not a skip.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './spawn-server.js';

const BINARY_CANDIDATES = ['/usr/sbin/Orthanc', '/usr/bin/Orthanc', '/usr/local/bin/Orthanc'];
const PLUGIN_CANDIDATES = ['/usr/share/orthanc/plugins/libOrthancDicomWeb.so', '/usr/lib/orthanc/libOrthancDicomWeb.so'];
const INSTALL = 'apt-get update && apt-get install -y --no-install-recommends orthanc orthanc-dicomweb';

export interface OrthancPeer {
  /** Orthanc's REST root, e.g. http://127.0.0.1:port */
  url: string;
  version: string;
  pluginVersion: string;
  /** Its DICOM (DIMSE) port and AE title: only listening when started with `dimse`. */
  dicomPort: number;
  dicomAeTitle: string;
  log(): string;
  /** Stops the process and removes its temp folder. */
  stop(): Promise<void>;
}

export function findOrthanc(): { binary: string; plugin: string } {
  const binary = BINARY_CANDIDATES.find((candidate) => existsSync(candidate));
  if (!binary) throw new Error(`Orthanc is not installed (looked for ${BINARY_CANDIDATES.join(', ')}); install it with: ${INSTALL}`);
  let plugin = PLUGIN_CANDIDATES.find((candidate) => existsSync(candidate));
  if (!plugin) {
    try {
      plugin = execFileSync('dpkg', ['-L', 'orthanc-dicomweb'], { encoding: 'utf8' })
        .split('\n')
        .find((file) => /libOrthancDicomWeb\.so/.test(file) && existsSync(file));
    } catch {
      // package not installed
    }
  }
  if (!plugin) throw new Error(`The Orthanc DICOMweb plugin (orthanc-dicomweb) is not installed; install it with: ${INSTALL}`);
  return { binary, plugin };
}

/** Orthanc's DICOM port on loopback, for DIMSE interoperability tests and benchmarks. */
export interface OrthancDimseOptions {
  /** Orthanc's own AE title (default ORTHANC). */
  aeTitle?: string;
  /** Its DICOM port (default: a free one), for peers that must know it before Orthanc starts. */
  port?: number;
  /** `DicomModalities`: name → AE title, host, port of the peers it may send to (C-STORE, C-MOVE). */
  modalities?: Record<string, { aeTitle: string; host: string; port: number }>;
}

/**
 * `peers`: name → DICOMweb root URL (with a trailing slash), for `DicomWeb.Servers`. With `dimse`, its
 * DICOM server listens on a loopback port too (any calling AE accepted) and knows the given modalities.
 */
export async function startOrthancPeer(peers: Record<string, string>, dimse?: OrthancDimseOptions): Promise<OrthancPeer> {
  const { binary, plugin } = findOrthanc();
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'pacs-orthanc-peer-'));
  const port = await freePort();
  const dicomPort = dimse?.port ?? (await freePort());
  const dicomAeTitle = dimse?.aeTitle ?? 'ORTHANC';
  const config = {
    Name: 'interop-orthanc',
    StorageDirectory: path.join(workDir, 'storage'),
    IndexDirectory: path.join(workDir, 'storage'),
    HttpServerEnabled: true,
    HttpPort: port,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    DicomServerEnabled: dimse !== undefined,
    DicomPort: dicomPort,
    DicomAet: dicomAeTitle,
    DicomCheckCalledAet: false,
    DicomAlwaysAllowEcho: true,
    DicomAlwaysAllowStore: true,
    DicomModalities: Object.fromEntries(
      Object.entries(dimse?.modalities ?? {}).map(([name, m]) => [name, { AET: m.aeTitle, Host: m.host, Port: m.port }]),
    ),
    WebDavEnabled: false,
    Plugins: [plugin],
    DicomWeb: {
      Enable: true,
      Root: '/dicom-web/',
      EnableWado: false,
      Servers: Object.fromEntries(Object.entries(peers).map(([name, url]) => [name, [url]])),
    },
  };
  const configFile = path.join(workDir, 'orthanc.json');
  await writeFile(configFile, JSON.stringify(config, null, 2));

  let output = '';
  const child = spawn(binary, [configFile], { cwd: workDir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(workDir, { recursive: true, force: true });
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  let system: { Version?: string } | undefined;
  while (!system) {
    const failed = await Promise.race([spawnError, new Promise<undefined>((resolve) => setTimeout(resolve, 100))]);
    if (failed || child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`Orthanc did not start (${failed?.message ?? `exit code ${child.exitCode}`}):\n${output.slice(-4000)}`);
    }
    try {
      const response = await fetch(`${url}/system`);
      if (response.ok) system = (await response.json()) as { Version?: string };
    } catch {
      // not listening yet
    }
  }
  const pluginInfo = (await (await fetch(`${url}/plugins/dicom-web`)).json()) as { Version?: string };
  return {
    url,
    version: String(system.Version),
    pluginVersion: String(pluginInfo.Version),
    dicomPort,
    dicomAeTitle,
    log: () => output,
    stop,
  };
}
