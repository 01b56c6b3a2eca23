/**
 * Starts Debian's Orthanc + DICOMweb plugin as a private child process (never the system service):
 * temp storage, loopback only, DIMSE off, no auth. Performance settings are the values shipped in
 * Debian's /etc/orthanc/orthanc.json (which equal Orthanc's built-in defaults), written out explicitly
 * so the report can show them.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { spawnLogged, type TargetServer } from './target.js';
import { freePort, httpRequest, waitForHttp200 } from './util.js';

const PLUGIN_CANDIDATES = [
  '/usr/share/orthanc/plugins/libOrthancDicomWeb.so',
  '/usr/lib/orthanc/libOrthancDicomWeb.so',
];

export const INSTALL_HINT =
  'Orthanc with the DICOMweb plugin is required for the comparison. Install it with:\n' +
  '  sudo apt-get update && sudo apt-get install -y orthanc orthanc-dicomweb\n' +
  '(the benchmark starts its own private Orthanc process; the system service may stay stopped).\n' +
  'To benchmark only our server, run: npm run bench:archive -- --servers ours';

export interface OrthancInstall {
  binary: string;
  plugin: string;
  version: string;
}

/** Locates the Orthanc binary and the DICOMweb plugin; undefined when either is missing. */
export function findOrthanc(): OrthancInstall | undefined {
  let binary: string | undefined;
  for (const candidate of ['/usr/sbin/Orthanc', '/usr/bin/Orthanc', '/usr/local/bin/Orthanc']) {
    if (fs.existsSync(candidate)) binary = candidate;
  }
  if (!binary) return undefined;
  let plugin = PLUGIN_CANDIDATES.find((p) => fs.existsSync(p));
  if (!plugin) {
    try {
      const files = execFileSync('dpkg', ['-L', 'orthanc-dicomweb'], { encoding: 'utf8' }).split('\n');
      plugin = files.find((f) => /libOrthancDicomWeb\.so/.test(f) && fs.existsSync(f));
    } catch {
      /* not installed */
    }
  }
  if (!plugin) return undefined;
  let version = 'unknown';
  try {
    version = execFileSync(binary, ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  } catch {
    /* keep unknown */
  }
  return { binary, plugin, version };
}

export interface OrthancOptions {
  /** Orthanc's SyncStorageArea (fsync of every stored file). Default true, as shipped. */
  syncStorageArea: boolean;
  /** Further plugin libraries to load after the DICOMweb plugin (e.g. GDCM). Default none. */
  extraPlugins?: string[];
  /** Enables Orthanc's DICOM (DIMSE) server on this loopback port (AE title ORTHANC). Default off. */
  dicomPort?: number;
}

const GDCM_PLUGIN_CANDIDATES = ['/usr/share/orthanc/plugins/libOrthancGdcm.so', '/usr/lib/orthanc/libOrthancGdcm.so'];

/** Path of Debian's orthanc-gdcm plugin (decodes JPEG 2000, JPEG-LS, ... for Orthanc), if installed. */
export function findGdcmPlugin(): string | undefined {
  return GDCM_PLUGIN_CANDIDATES.find((p) => fs.existsSync(p));
}

/** Performance-relevant settings, equal to Debian's shipped orthanc.json / Orthanc 1.10 defaults. */
function performanceSettings(options: OrthancOptions): Record<string, unknown> {
  return {
    HttpThreadsCount: 50,
    KeepAlive: true,
    TcpNoDelay: true,
    HttpCompressionEnabled: true, // only used when the client sends Accept-Encoding (we do not)
    StorageCompression: false,
    StoreMD5ForAttachments: true,
    SyncStorageArea: options.syncStorageArea,
    StorageAccessOnFind: 'Always',
    MaximumStorageCacheSize: 128,
    MallocArenaMax: 5,
    OverwriteInstances: false,
    LimitFindResults: 0,
    LimitFindInstances: 0,
    ConcurrentJobs: 2,
    HttpRequestTimeout: 30,
  };
}

export async function startOrthanc(
  install: OrthancInstall,
  workDir: string,
  options: OrthancOptions,
): Promise<TargetServer> {
  const port = await freePort();
  const storage = path.join(workDir, 'orthanc-storage');
  fs.mkdirSync(storage, { recursive: true });
  const perf = performanceSettings(options);
  const config = {
    Name: 'bench-orthanc',
    StorageDirectory: storage,
    IndexDirectory: storage,
    HttpServerEnabled: true,
    HttpPort: port,
    RemoteAccessAllowed: false, // loopback only
    AuthenticationEnabled: false,
    DicomServerEnabled: options.dicomPort !== undefined,
    DicomPort: options.dicomPort ?? (await freePort()),
    DicomAet: 'ORTHANC',
    DicomCheckCalledAet: false,
    WebDavEnabled: false,
    Plugins: [install.plugin, ...(options.extraPlugins ?? [])],
    DicomWeb: { Enable: true, Root: '/dicom-web/', EnableWado: false },
    ...perf,
  };
  const configFile = path.join(workDir, 'orthanc.json');
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2));

  const proc = spawnLogged(install.binary, [configFile], {
    cwd: workDir,
    logFile: path.join(workDir, 'orthanc.log'),
  });
  const pid = proc.child.pid;
  if (pid === undefined) throw new Error(`could not spawn ${install.binary}: ${proc.logTail()}`);
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp200(`${base}/dicom-web/studies?limit=1`, 60_000, proc.alive);
  } catch (err) {
    await proc.stop();
    throw new Error(`Orthanc did not start: ${(err as Error).message}\n${proc.logTail()}`);
  }

  let pluginVersion = 'unknown';
  try {
    const res = await httpRequest(`${base}/plugins/dicom-web`);
    pluginVersion = String((JSON.parse(res.body.toString('utf8')) as { Version?: string }).Version ?? 'unknown');
  } catch {
    /* keep unknown */
  }

  const settings = Object.entries(perf)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(', ');
  return {
    name: 'orthanc',
    dicomwebRoot: `${base}/dicom-web`,
    pid,
    describe: [
      `${install.version}, DICOMweb plugin ${pluginVersion} (${install.plugin})` +
        (options.extraPlugins?.length ? `; also loaded: ${options.extraPlugins.join(', ')}` : ''),
      `Orthanc settings: ${settings}; DicomServerEnabled=${options.dicomPort !== undefined}, RemoteAccessAllowed=false, ` +
        `AuthenticationEnabled=false, storage+index (SQLite) in a temp dir; everything else built-in defaults`,
    ],
    alive: proc.alive,
    logTail: proc.logTail,
    stop: proc.stop,
  };
}
