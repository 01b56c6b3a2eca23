/**
 * The push to the EMR against a real FHIR server on loopback (test-support/fhir-test-server.ts:
 * Medplum's FHIR router and repository, which store, validate and search resources and implement
 * conditional create and update; tokens from an OAuth2 server by client credentials):
 *
 * - a study that arrives is pushed (Patient by conditional create, ImagingStudy by conditional update on
 *   its Study Instance UID), and a signed report as a DiagnosticReport naming the EMR's Patient and
 *   ImagingStudy; the bearer token is fetched once and reused;
 * - the FHIR server down for a while: the outbox retries with back-off and delivers once it is back, and
 *   the study that grew meanwhile is still one ImagingStudy there;
 * - an EMR that stays unreachable: the entry is `failed` after PACS_FHIR_PUSH_MAX_ATTEMPTS, shown to
 *   administrators (GET /admin/fhir-outbox), logged without patient data;
 * - the archive killed (SIGKILL) after the FHIR server applied its ImagingStudy but before the archive
 *   heard back: restarted on the same data, the outbox resumes and every resource exists once there.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DiagnosticReport, ImagingStudy, Patient } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FhirOutboxPage } from '../contracts/fhir.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { PUSH_CLIENT, startFhirTestServer, type FhirTestServer } from '../test-support/fhir-test-server.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { freePort, spawnServer, type SpawnedServer } from '../test-support/spawn-server.js';
import { studyEntryId } from './fhir-push.js';

const MRN = 'https://bvbm.example.vn/sid/mrn';
const CCCD = 'https://moh.example.vn/sid/cccd';

let emr: FhirTestServer;

function pushEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PACS_AI_ENABLED: 'false',
    PACS_PUBLIC_BASE_URL: 'https://pacs.bvbm.example.vn',
    PACS_HIS_PATIENT_ID_ISSUER: 'BVBM',
    PACS_HIS_NATIONAL_ID_ISSUER: 'VNM-CCCD',
    PACS_FHIR_PATIENT_ID_SYSTEM: MRN,
    PACS_FHIR_NATIONAL_ID_SYSTEM: CCCD,
    PACS_FHIR_PUSH_URL: emr.url,
    PACS_FHIR_PUSH_TOKEN_URL: emr.tokenUrl,
    PACS_FHIR_PUSH_CLIENT_ID: PUSH_CLIENT.id,
    PACS_FHIR_PUSH_CLIENT_SECRET: PUSH_CLIENT.secret,
    PACS_FHIR_PUSH_SCOPE: PUSH_CLIENT.scope,
    PACS_FHIR_PUSH_ON_STUDY: 'true',
    PACS_FHIR_PUSH_STUDY_DELAY_SECONDS: '0',
    PACS_FHIR_PUSH_POLL_SECONDS: '1',
    PACS_FHIR_PUSH_BACKOFF_SECONDS: '1',
    PACS_FHIR_PUSH_BACKOFF_MAX_SECONDS: '2',
    PACS_FHIR_PUSH_TIMEOUT_SECONDS: '2',
    PACS_FHIR_PUSH_MAX_ATTEMPTS: '30',
    ...extra,
  };
}

// ASCII names: makeInstance writes no Specific Character Set.
const patient = (n: number) => ({ patientId: `BN-80${n}`, patientName: `DO^MINH KHOA ${n}` });

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const uidIdentifier = (uid: string) => `urn:dicom:uid|urn:oid:${uid}`;

beforeAll(async () => {
  emr = await startFhirTestServer();
}, 30_000);

afterAll(async () => {
  await emr?.close();
});

describe('the push from a running archive', () => {
  let t: TestApp;
  const studyA = newUid();
  let firstVersion: string | undefined;

  beforeAll(async () => {
    t = await buildTestApp(pushEnv());
  }, 60_000);

  afterAll(async () => {
    await t?.close();
  });

  async function store(options: Parameters<typeof makeInstance>[0]): Promise<void> {
    const bytes = makeInstance(options);
    const result = await (await t.services.archive.scanAndStore((async function* () { yield bytes; })())).completion;
    expect(result.ok).toBe(true);
  }

  const outbox = async (query = ''): Promise<FhirOutboxPage> => (await t.app.inject({ method: 'GET', url: `/admin/fhir-outbox${query}` })).json();
  const entry = async (id: string) => (await outbox()).entries.find((e) => e.id === id);

  it('sends an arriving study: the Patient once, the ImagingStudy by conditional update, with one token', async () => {
    await store({ studyInstanceUid: studyA, ...patient(1), modality: 'CT', accessionNumber: 'ACC-801' });
    const sent = await until('the study to be sent', async () => {
      const e = await entry(studyEntryId(studyA));
      return e?.state === 'sent' ? e : undefined;
    });
    expect(sent).toMatchObject({ kind: 'study', subject: studyA, studyInstanceUid: studyA, attempts: 1, lastError: null });
    const [study] = (await emr.search('ImagingStudy', uidIdentifier(studyA))) as ImagingStudy[];
    expect(sent.delivered['ImagingStudy']).toBe(`ImagingStudy/${study!.id}`);
    const patients = (await emr.search('Patient', `${MRN}|BN-801`)) as Patient[];
    expect(patients).toHaveLength(1);
    expect(study!.subject).toEqual({ reference: `Patient/${patients[0]!.id}` });
    expect(patients[0]!.name?.[0]).toMatchObject({ family: 'DO', given: ['MINH KHOA 1'] });
    expect(study!.contained?.[0]).toMatchObject({ resourceType: 'Endpoint', address: 'https://pacs.bvbm.example.vn/dicomweb' });
    expect(emr.tokensIssued()).toBe(1);
    firstVersion = study!.meta?.versionId;
  });

  it('retries while the FHIR server is down and delivers when it is back; the grown study is still one ImagingStudy', async () => {
    await emr.stop();
    const before = emr.requests.length;
    await store({ studyInstanceUid: studyA, ...patient(1), modality: 'SR', accessionNumber: 'ACC-801' });
    const failing = await until('a failed attempt', async () => {
      const e = await entry(studyEntryId(studyA));
      return e !== undefined && e.state === 'pending' && e.attempts >= 2 ? e : undefined;
    });
    expect(failing.lastError).toMatch(/^PUT ImagingStudy failed: ECONNREFUSED|^POST Patient failed: ECONNREFUSED/);
    expect(failing.lastStatus).toBeNull();
    expect(emr.requests.length).toBe(before);
    await emr.start();
    const sent = await until('the study to be sent again', async () => {
      const e = await entry(studyEntryId(studyA));
      return e?.state === 'sent' ? e : undefined;
    });
    expect(sent.lastError).toBeNull();
    const studies = (await emr.search('ImagingStudy', uidIdentifier(studyA))) as ImagingStudy[];
    expect(studies).toHaveLength(1);
    expect(studies[0]!.numberOfSeries).toBe(2);
    expect(studies[0]!.meta?.versionId).not.toBe(firstVersion); // the same resource, updated
    expect(await emr.search('Patient', `${MRN}|BN-801`)).toHaveLength(1);
    expect(emr.tokensIssued()).toBe(1);
  }, 60_000);

  it('sends a signed report as a DiagnosticReport naming the EMR’s Patient and ImagingStudy', async () => {
    const actor = { subject: 'doc-8', name: 'BS. Hoàng Anh', permissions: new Set(['read', 'report', 'sign']) };
    const reports = t.services.reports!.service;
    const created = await reports.create({ studyInstanceUid: studyA, kind: 'radiology', content: { kind: 'radiology', impression: 'Bình thường.' } }, actor);
    try {
      await reports.sign(created.report.id, undefined, actor);
    } catch {
      // The report store may ask to sign again when storing its SR and PDF failed (report-service.ts).
      await reports.sign(created.report.id, undefined, actor);
    }
    const reportSystem = t.config.fhir.reportIdSystem;
    const [report] = await until('the DiagnosticReport at the EMR', async () => {
      const found = (await emr.search('DiagnosticReport', `${reportSystem}|${created.report.id}`)) as DiagnosticReport[];
      return found.length > 0 ? found : undefined;
    });
    const [study] = (await emr.search('ImagingStudy', uidIdentifier(studyA))) as ImagingStudy[];
    expect(report).toMatchObject({ status: 'final', subject: study!.subject, imagingStudy: [{ reference: `ImagingStudy/${study!.id}` }], conclusion: 'Bình thường.' });
    expect(report!.presentedForm?.[0]?.url).toBe(`https://pacs.bvbm.example.vn/reports/${created.report.id}/versions/1/pdf`);
    expect(await emr.search('ImagingStudy', uidIdentifier(studyA))).toHaveLength(1);
  }, 60_000);

  it('records each delivery in the audit trail as an export to the EMR', async () => {
    await t.services.audit!.flush();
    const records = await t.services.audit!.store.list({ limit: 100, action: 'fhir-push' });
    const delivered = records.filter((r) => r.outcome === 0 && r.objects.some((o) => o.study === studyA));
    expect(delivered.length).toBeGreaterThanOrEqual(2);
    expect(delivered[0]).toMatchObject({ interface: 'fhir', who: { subject: `FHIR:${emr.url}`, kind: 'system' } });
    expect(delivered[0]!.objects).toContainEqual({ patient: 'BN-801^^^' });
  });
});

describe('an EMR that stays unreachable', () => {
  it('marks the entry failed after the maximum attempts, shows it to administrators and logs it without patient data', async () => {
    const port = await freePort(); // nothing listens there
    const t = await buildTestApp(pushEnv({ PACS_FHIR_PUSH_URL: `http://127.0.0.1:${port}/fhir`, PACS_FHIR_PUSH_TOKEN_URL: '', PACS_FHIR_PUSH_MAX_ATTEMPTS: '2' }));
    try {
      const study = newUid();
      const bytes = makeInstance({ studyInstanceUid: study, patientId: 'BN-809', patientName: 'VU^THI LAN', modality: 'US' });
      expect((await (await t.services.archive.scanAndStore((async function* () { yield bytes; })())).completion).ok).toBe(true);
      const failed = await until('the entry to fail', async () => {
        const page: FhirOutboxPage = (await t.app.inject({ method: 'GET', url: '/admin/fhir-outbox?state=failed' })).json();
        return page.entries.find((e) => e.studyInstanceUid === study);
      });
      expect(failed).toMatchObject({ state: 'failed', attempts: 2, nextAttemptAt: null });
      expect(failed.lastError).toMatch(/failed: ECONNREFUSED$/);
      const page: FhirOutboxPage = (await t.app.inject({ method: 'GET', url: '/admin/fhir-outbox' })).json();
      expect(page.counts.failed).toBe(1);
      const line = t.logLines.find((l) => l.includes('FHIR push failed for good'));
      expect(line).toBeDefined();
      expect(line).toContain(failed.id);
      for (const phi of ['BN-809', 'VU', 'THI LAN', study]) expect(line).not.toContain(phi);
      // An administrator asks for it again: pending, attempts from zero.
      const retried = await t.app.inject({ method: 'POST', url: `/admin/fhir-outbox/${failed.id}/retry` });
      expect(retried.statusCode).toBe(200);
      expect(retried.json()).toMatchObject({ state: 'pending', attempts: 0 });
    } finally {
      await t.close();
    }
  }, 60_000);
});

describe('the archive killed mid-push', () => {
  let dataDir: string;
  let server: SpawnedServer | undefined;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'fhir-push-kill-'));
  });

  afterAll(async () => {
    await server?.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('resumes from the outbox after a restart and leaves each resource once on the FHIR server', async () => {
    const env = pushEnv({ PACS_DATA_DIR: dataDir });
    server = await spawnServer(env);
    const study = newUid();
    // The FHIR server applies the ImagingStudy, then keeps its answer while the archive is killed.
    const hold = emr.holdWrites('/ImagingStudy');
    const putsBefore = emr.requests.filter((r) => r.startsWith('PUT /ImagingStudy')).length;
    const body = multipartBody([{ body: makeInstance({ studyInstanceUid: study, patientId: 'BN-810', patientName: 'MAI^VAN TUNG', modality: 'ES', accessionNumber: 'ACC-810' }) }]);
    const stow = await fetch(`${server.url}/dicomweb/studies`, { method: 'POST', headers: { 'content-type': STOW_CONTENT_TYPE(), accept: 'application/dicom+json' }, body: new Uint8Array(body) });
    expect(stow.status).toBe(200);
    expect(await hold.applied).toBe('PUT /ImagingStudy');
    await server.kill('SIGKILL');
    server = undefined;
    hold.release();
    expect(await emr.search('ImagingStudy', uidIdentifier(study))).toHaveLength(1);

    // Restarted on the same data: the entry is still pending (its lease runs out), then sent again.
    server = await spawnServer(env);
    const sent = await until(
      'the entry to be sent after the restart',
      async () => {
        const page: FhirOutboxPage = await (await fetch(`${server!.url}/admin/fhir-outbox`)).json();
        const e = page.entries.find((x) => x.studyInstanceUid === study);
        return e?.state === 'sent' ? e : undefined;
      },
      60_000,
    );
    expect(sent.attempts).toBe(2);
    expect(emr.requests.filter((r) => r.startsWith('PUT /ImagingStudy')).length - putsBefore).toBe(2);
    expect(await emr.search('ImagingStudy', uidIdentifier(study))).toHaveLength(1);
    expect(await emr.search('Patient', `${MRN}|BN-810`)).toHaveLength(1);
  }, 120_000);
});
