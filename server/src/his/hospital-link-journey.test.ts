/**
 * The hospital link as a department lives it, on the real server process (main.ts with its HL7 listener
 * and DIMSE service) and real third-party peers: the HIS sends an order by HL7 (Debian python3-hl7's
 * mllp_send) → the modality finds it on the worklist (dcmtk findscu -W) → images arrive with the
 * order's accession number but a mistyped patient name, by C-STORE (dcmtk storescu) and by STOW-RS (the
 * npm dicomweb-client) → QIDO-RS and C-FIND (dcmtk findscu) show the HIS's identity → the HIS merges the
 * duplicate registration (ADT^A40) → the prior ID finds nothing, the surviving one (and the national
 * ID with its issuer) finds the study, WADO-RS metadata agrees, the blobs are byte-identical to what was
 * sent, and the audit trail holds each step.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { api } from 'dicomweb-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import XMLHttpRequest from 'xhr2';
import { requireDcmtk, runTool } from '../test-support/dimse-peer.js';
import { a40, NATIONAL_ID, orm, PATIENT, PRIOR } from '../test-support/hl7-messages.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { freePort, spawnServer, type SpawnedServer } from '../test-support/spawn-server.js';

const run = promisify(execFile);
const ACCESSION = 'ACCJOURNEY01';
const TYPO_NAME = 'NGUYEN^VAN DUK';
/** The HIS's name as DICOM PN: XPN family^given^middle^suffix^prefix (PID-5 carries the prefix ÔNG) → Family^Given^Middle^Prefix. */
const HIS_NAME = `${PATIENT.patientName}^^ÔNG`;

let dir: string;
let server: SpawnedServer;
let hl7Port: number;
let dimsePort: number;

type Json = Record<string, { Value?: unknown[] } | undefined>;
const value = (ds: Json, tag: string) => ds[tag]?.Value?.[0];
const personName = (ds: Json) => (value(ds, '00100010') as { Alphabetic?: string } | undefined)?.Alphabetic;

async function mllpSend(name: string, ...messages: string[]): Promise<string[]> {
  const file = path.join(dir, `${name}.hl7`);
  await writeFile(file, messages.map((m) => `${m}\x1c\r`).join(''), 'utf8');
  const { stdout } = await run('/usr/bin/mllp_send', ['-p', String(hl7Port), '-f', file, '127.0.0.1'], { timeout: 30_000 });
  return [...stdout.matchAll(/MSA\|(\w+)\|([^\r|]*)/g)].map(([, code, id]) => `${code} ${id}`);
}

async function qido(query: string): Promise<Json[]> {
  const response = await fetch(`${server.url}/dicomweb/studies?${query}`, { headers: { accept: 'application/dicom+json' } });
  expect(response.status === 200 || response.status === 204, `QIDO ${query}: ${response.status}`).toBe(true);
  return response.status === 204 ? [] : ((await response.json()) as Json[]);
}

/** Every blob file of the folder store. */
async function blobs(): Promise<Buffer[]> {
  const found: Buffer[] = [];
  const walk = async (folder: string): Promise<void> => {
    for (const entry of await readdir(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if ((await stat(full)).size > 0) found.push(await readFile(full));
    }
  };
  await walk(path.join(dir, 'data', 'blobs'));
  return found;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A Part-10 file's data set: what follows the preamble, "DICM" and the File Meta group (PS3.10 §7.1). */
function dataSetOf(part10: Buffer): Buffer {
  const metaLength = part10.readUInt32LE(132 + 8); // (0002,0000) UL: the bytes of the rest of group 0002
  return part10.subarray(132 + 12 + metaLength);
}

beforeAll(async () => {
  requireDcmtk();
  (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = XMLHttpRequest;
  dir = await mkdtemp(path.join(os.tmpdir(), 'hospital-link-'));
  hl7Port = await freePort();
  dimsePort = await freePort();
  server = await spawnServer({
    PACS_DATA_DIR: path.join(dir, 'data'),
    PACS_AI_ENABLED: 'false',
    PACS_HL7_ENABLED: 'true',
    PACS_HL7_PORT: String(hl7Port),
    PACS_HL7_ALLOWED_SENDERS: 'HIS^BVBM',
    PACS_HIS_PATIENT_ID_ISSUER: 'BVBM',
    PACS_HIS_NATIONAL_ID_ISSUER: 'VNM-CCCD',
    PACS_DIMSE_ENABLED: 'true',
    PACS_DIMSE_PORT: String(dimsePort),
    PACS_DIMSE_AE_TITLE: 'FILMLESS',
    PACS_DIMSE_AE_PERMISSIONS: 'ES_TOWER=read,store;WORKSTATION=read',
  });
  for (let tries = 0; tries < 100 && !server.output().includes('HL7 listener ready'); tries++) await new Promise((resolve) => setTimeout(resolve, 100));
}, 60_000);

afterAll(async () => {
  await server?.kill('SIGTERM').catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('an order from the HIS to corrected, merged images', () => {
  it('follows the patient from the HL7 order through the worklist, ingest and a merge, keeping the originals', async () => {
    // 1. The HIS registers the order for a duplicate record (PRIOR), with the patient's real name.
    expect(await mllpSend('order', orm('NW', 'JOURNEY-ORM', { pid: { 3: `${PRIOR.patientId}^^^BVBM^MR` }, obr: { 18: ACCESSION } }))).toEqual(['AA JOURNEY-ORM']);

    // 2. The endoscopy tower finds it on the worklist (dcmtk findscu -W), Vietnamese name and all.
    const worklistDir = await mkdtemp(path.join(dir, 'wl-'));
    const find = await runTool('findscu', [
      '-W', '--show-responses', '-X', '-od', worklistDir, '-aet', 'ES_TOWER', '-aec', 'FILMLESS',
      '-k', `AccessionNumber=${ACCESSION}`, '-k', 'PatientName', '-k', 'PatientID', '-k', 'StudyInstanceUID',
      '-k', 'ScheduledProcedureStepSequence[0].Modality', '127.0.0.1', String(dimsePort),
    ]);
    expect(find.code, find.stdout + find.stderr).toBe(0);
    const answers = await readdir(worklistDir);
    expect(answers).toHaveLength(1);
    const item = await readFile(path.join(worklistDir, answers[0]!));
    expect(item.includes(Buffer.from(PATIENT.patientName, 'utf8'))).toBe(true);
    expect(item.includes(Buffer.from(PRIOR.patientId))).toBe(true);
    const dump = await runTool('dcmdump', ['+P', 'StudyInstanceUID', path.join(worklistDir, answers[0]!)]);
    const studyUid = /\[([0-9.]+)\]/.exec(dump.stdout)![1]!;

    // 3. Images arrive with the order's accession number under a mistyped name: C-STORE and STOW-RS.
    const cstoreFile = makeInstance({ studyInstanceUid: studyUid, seriesInstanceUid: newUid(), patientName: TYPO_NAME, patientId: 'UNKNOWN', accessionNumber: ACCESSION, modality: 'ES' });
    const cstorePath = path.join(dir, 'cstore.dcm');
    await writeFile(cstorePath, cstoreFile);
    const store = await runTool('storescu', ['-aet', 'ES_TOWER', '-aec', 'FILMLESS', '127.0.0.1', String(dimsePort), cstorePath]);
    expect(store.code, store.stdout + store.stderr).toBe(0);
    const stowFile = makeInstance({ studyInstanceUid: studyUid, seriesInstanceUid: newUid(), patientName: TYPO_NAME, patientId: 'UNKNOWN', accessionNumber: ACCESSION, modality: 'ES' });
    const client = new api.DICOMwebClient({ url: `${server.url}/dicomweb`, singlepart: false });
    await client.storeInstances({ datasets: [Uint8Array.from(stowFile).buffer] });

    // 4. QIDO-RS and C-FIND show the HIS's identity of the order, not the typed one.
    const [study] = await qido(`AccessionNumber=${ACCESSION}`);
    expect(value(study!, '0020000D')).toBe(studyUid);
    expect(personName(study!)).toBe(HIS_NAME);
    expect(value(study!, '00100020')).toBe(PRIOR.patientId);
    expect(value(study!, '00201208')).toBe(2);
    expect(await qido(`PatientName=${encodeURIComponent('NGUYEN^VAN DUK')}`)).toEqual([]);
    const cfind = await runTool('findscu', ['-S', '--show-responses', '-aet', 'WORKSTATION', '-aec', 'FILMLESS', '-k', 'QueryRetrieveLevel=STUDY', '-k', `AccessionNumber=${ACCESSION}`, '-k', 'PatientID', '-k', 'PatientName', '127.0.0.1', String(dimsePort)]);
    expect(cfind.code, cfind.stdout + cfind.stderr).toBe(0);
    // dcmtk shows values as sent, padded to an even length.
    expect(cfind.stdout + cfind.stderr).toMatch(new RegExp(`\\(0010,0020\\) LO \\[${PRIOR.patientId} ?\\]`));
    expect(cfind.stdout + cfind.stderr).toContain(`[${HIS_NAME}]`);

    // 5. The HIS merges the duplicate record into the patient's real one (ADT^A40).
    expect(await mllpSend('merge', a40('JOURNEY-A40'))).toEqual(['AA JOURNEY-A40']);
    expect(await qido(`PatientID=${PRIOR.patientId}`)).toEqual([]);
    const bySurviving = await qido(`PatientID=${PATIENT.patientId}&IssuerOfPatientID=BVBM`);
    expect(bySurviving.map((s) => value(s, '0020000D'))).toEqual([studyUid]);
    const byNationalId = await qido(`PatientID=${NATIONAL_ID.patientId}&IssuerOfPatientID=VNM-CCCD`);
    expect(byNationalId.map((s) => value(s, '0020000D'))).toEqual([studyUid]);

    // 6. WADO-RS metadata says the same of every instance.
    const metadata = (await (await fetch(`${server.url}/dicomweb/studies/${studyUid}/metadata`, { headers: { accept: 'application/dicom+json' } })).json()) as Json[];
    expect(metadata).toHaveLength(2);
    for (const instance of metadata) {
      expect(personName(instance)).toBe(HIS_NAME);
      expect(value(instance, '00100020')).toBe(PATIENT.patientId);
      expect(value(instance, '00100021')).toBe('BVBM');
    }

    // 7. The originals are kept: the STOW-RS blob is byte-identical to the file the client sent; the
    //    C-STORE blob holds the data set exactly as the modality sent it (its File Meta is written from
    //    the C-STORE command, PS3.10 §7.1, as the DIMSE section of docs/architecture.md says).
    const stored = await blobs();
    expect(stored.map(sha256)).toContain(sha256(stowFile));
    expect(stored.map((blob) => sha256(dataSetOf(blob)))).toContain(sha256(dataSetOf(cstoreFile)));

    // 8. The audit trail holds each step: the order, the two stores, the merge, the searches.
    const audit = (await (await fetch(`${server.url}/admin/audit?study=${studyUid}&limit=100`)).json()) as { records: Array<{ action: string; interface: string; detail?: Record<string, unknown> }> };
    const steps = audit.records.map((r) => `${r.interface}:${r.action}`);
    expect(steps).toEqual(expect.arrayContaining(['his:order-record', 'dimse:store', 'dicomweb:store', 'his:patient-record', 'dicomweb:retrieve']));
    const merge = audit.records.find((r) => r.action === 'patient-record' && r.detail?.['messageControlId'] === 'JOURNEY-A40');
    expect(merge, JSON.stringify(audit.records.map((r) => [r.action, r.detail]))).toBeDefined();
  }, 120_000);
});
