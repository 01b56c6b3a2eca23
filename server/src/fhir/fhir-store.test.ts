/**
 * The FHIR link's storage on both index engines: the outbox's state machine (fhir-store.ts: enqueue,
 * claim with a lease, sent only for the generation claimed, back-off, failed, retry, counts) and the
 * FHIR searches over the catalog's tables (fhir-index.ts through the whole app: patient, identifiers,
 * date ranges at day precision, `_lastUpdated`, paging), on SQLite and on PostgreSQL (the machine's
 * server, a schema of its own); plus the pure parts: Patient ids, identifier systems, search parameters.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Bundle, ImagingStudy } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import type { IndexConfig } from '../config.js';
import { loadConfig } from '../config.js';
import { buildTestApp } from '../test-support/build-test-app.js';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { createTestSchema, isPostgresAvailable, TEST_POSTGRES_URL } from '../test-support/postgres-test-schema.js';
import { IdentifierSystems, parsePatientId, patientIdOf } from './fhir-ids.js';
import { dayRangesOf, dicomDateTime, instantRangesOf, pageOf, referencesOf, tokensOf } from './fhir-search.js';
import { FhirStore } from './fhir-store.js';

const postgres = await isPostgresAvailable();

interface Engine {
  name: string;
  index(): Promise<{ config: IndexConfig; env: Record<string, string>; drop(): Promise<void> }>;
}

const engines: Engine[] = [
  {
    name: 'SQLite',
    async index() {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'fhir-store-'));
      return { config: { kind: 'sqlite', file: path.join(dir, 'index.sqlite') }, env: {}, drop: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  ...(postgres
    ? [
        {
          name: 'PostgreSQL',
          async index() {
            const schema = createTestSchema('pacs_fhir');
            const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
            await client.connect();
            await client.query(`create schema if not exists ${schema.schema}`);
            await client.end();
            return {
              config: { kind: 'postgres' as const, connectionString: schema.connectionString, schema: schema.schema, poolSize: 2 },
              env: { PACS_INDEX: 'postgres', PACS_POSTGRES_URL: schema.connectionString, PACS_POSTGRES_SCHEMA: schema.schema },
              drop: () => schema.drop(),
            };
          },
        },
      ]
    : []),
];

if (!postgres && process.env.PACS_TEST_SKIP_POSTGRES !== '1') {
  describe('the FHIR store on PostgreSQL', () => {
    it('needs the PostgreSQL test server', () => {
      throw new Error(`No PostgreSQL at ${TEST_POSTGRES_URL.replace(/\/\/[^@]*@/, '//')}: start it (.ci/run does) or set PACS_TEST_POSTGRES_URL; PACS_TEST_SKIP_POSTGRES=1 skips explicitly`);
    });
  });
}

for (const engine of engines) {
  describe(`the FHIR outbox on ${engine.name}`, () => {
    it('claims a due row once, marks it sent only for the generation it claimed, backs off, fails, and is retried', async () => {
      const index = await engine.index();
      const store = await FhirStore.open(index.config);
      try {
        const t0 = 1_000_000;
        await store.enqueue({ id: 's-1', kind: 'study', subject: '1.2.3', studyInstanceUid: '1.2.3' }, t0 + 100, t0);
        expect(await store.due(t0, 10)).toEqual([]); // not yet due (settle delay)
        expect(await store.due(t0 + 100, 10)).toEqual(['s-1']);
        const claimed = await store.claim('s-1', t0 + 100, 1000);
        expect(claimed).toMatchObject({ state: 'pending', attempts: 1, generation: 0, leaseUntil: t0 + 1100 });
        expect(await store.claim('s-1', t0 + 200, 1000)).toBeUndefined(); // leased
        expect(await store.due(t0 + 200, 10)).toEqual([]);
        // Asked for again while being sent: the send does not count as the new generation's.
        await store.enqueue({ id: 's-1', kind: 'study', subject: '1.2.3', studyInstanceUid: '1.2.3' }, t0 + 300, t0 + 250);
        expect(await store.markSent(claimed!, { ImagingStudy: 'ImagingStudy/9' }, t0 + 400)).toBe(false);
        const again = await store.get('s-1');
        expect(again).toMatchObject({ state: 'pending', generation: 1, attempts: 0, leaseUntil: null, result: { ImagingStudy: 'ImagingStudy/9' } });
        // Now sent.
        const second = (await store.claim('s-1', t0 + 500, 1000))!;
        expect(await store.markSent(second, { ImagingStudy: 'ImagingStudy/9' }, t0 + 600)).toBe(true);
        expect(await store.get('s-1')).toMatchObject({ state: 'sent', sentAt: t0 + 600, lastError: null });
        expect(await store.due(t0 + 10_000, 10)).toEqual([]);

        // A report entry: a failed attempt waits for its retry time, the last one fails for good.
        await store.enqueue({ id: 'r-1', kind: 'report', subject: 'rep-1', studyInstanceUid: '1.2.3' }, t0, t0);
        const first = (await store.claim('r-1', t0, 1000))!;
        await store.markAttemptFailed(first, 'PUT ImagingStudy answered 503', 503, t0 + 5000, t0 + 10);
        expect(await store.due(t0 + 4999, 10)).toEqual([]);
        // Asking again while a retry is scheduled keeps the retry time.
        await store.enqueue({ id: 'r-1', kind: 'report', subject: 'rep-1', studyInstanceUid: '1.2.3' }, t0 + 20, t0 + 20);
        expect(await store.get('r-1')).toMatchObject({ nextAttemptAt: t0 + 5000, attempts: 1, lastError: 'PUT ImagingStudy answered 503', lastStatus: 503 });
        const last = (await store.claim('r-1', t0 + 5000, 1000))!;
        expect(last.attempts).toBe(2);
        await store.markAttemptFailed(last, 'PUT ImagingStudy answered 503', 503, null, t0 + 5010);
        expect(await store.get('r-1')).toMatchObject({ state: 'failed', attempts: 2 });
        expect(await store.claim('r-1', t0 + 99_999, 1000)).toBeUndefined();
        expect(await store.counts()).toEqual({ pending: 0, sent: 1, failed: 1 });
        expect((await store.list({ state: 'failed', limit: 10, offset: 0 })).map((e) => e.id)).toEqual(['r-1']);
        const retried = await store.retry('r-1', t0 + 6000);
        expect(retried).toMatchObject({ state: 'pending', attempts: 0, nextAttemptAt: t0 + 6000 });
        expect(await store.retry('nope')).toBeUndefined();

        // Hashed Patient ids: remembered once, found again.
        await store.rememberPatientAlias('x123', { patientId: 'P', issuer: 'I' });
        await store.rememberPatientAlias('x123', { patientId: 'P', issuer: 'I' });
        expect(await store.patientAlias('x123')).toEqual({ patientId: 'P', issuer: 'I' });
      } finally {
        await store.close();
        await index.drop();
      }
    });
  });

  describe(`FHIR searches on ${engine.name}`, () => {
    it('finds studies by patient, identifier, date range and last update, paged, newest first', async () => {
      const index = await engine.index();
      const t = await buildTestApp({ PACS_AI_ENABLED: 'false', ...index.env });
      try {
        const [a, b, c] = [newUid(), newUid(), newUid()];
        for (const [study, date, id, accession] of [
          [a, '20240105', 'PT-1', 'AC-1'],
          [b, '20240220', 'PT-1', 'AC-2'],
          [c, '20231231', 'PT-2', 'AC-3'],
        ] as const) {
          const bytes = makeInstance({ studyInstanceUid: study, studyDate: date, patientId: id, accessionNumber: accession });
          expect((await (await t.services.archive.scanAndStore((async function* () { yield bytes; })())).completion).ok).toBe(true);
        }
        const search = async (query: string) => {
          const response = await t.app.inject({ method: 'GET', url: `/fhir/ImagingStudy?${query}` });
          expect(response.statusCode, query).toBe(200);
          const bundle = response.json() as Bundle;
          return { total: bundle.total, ids: (bundle.entry ?? []).map((e) => (e.resource as ImagingStudy).id) };
        };
        const patient = patientIdOf({ patientId: 'PT-1', issuer: '' }).id;
        expect(await search(`patient=${patient}`)).toEqual({ total: 2, ids: [b, a] });
        expect(await search(`patient=${patient}&_count=1&_offset=1`)).toEqual({ total: 2, ids: [a] });
        expect(await search('started=ge2024-01-05&started=lt2024-02-20')).toEqual({ total: 1, ids: [a] });
        expect(await search('started=2024')).toEqual({ total: 2, ids: [b, a] });
        expect(await search('started=ne2024-01')).toEqual({ total: 2, ids: [b, c] });
        expect(await search('started=eb2024&identifier=AC-3,AC-1')).toEqual({ total: 1, ids: [c] });
        expect(await search(`identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${c}`)}`)).toEqual({ total: 1, ids: [c] });
        expect(await search(`_lastUpdated=gt${new Date(Date.now() + 60_000).toISOString()}`)).toEqual({ total: 0, ids: [] });
        expect((await search(`_lastUpdated=ge${new Date(Date.now() - 600_000).toISOString().slice(0, 19)}Z`)).total).toBe(3);
        expect(await search('patient=Patient/pzzzz')).toEqual({ total: 0, ids: [] });
      } finally {
        await t.close();
        await index.drop();
      }
    }, 60_000);
  });
}

describe('Patient ids, identifier systems and search parameters', () => {
  it('encodes a patient key as a case-insensitive FHIR id and back; long keys are hashed', () => {
    const key = { issuer: 'VNM-CCCD', patientId: 'Nguyễn-01' };
    const { id, long } = patientIdOf(key);
    expect(long).toBe(false);
    expect(id).toMatch(/^p[a-z2-7]+$/);
    expect(parsePatientId(id)).toEqual({ kind: 'key', key });
    expect(parsePatientId(id.toUpperCase())).toBeUndefined();
    const longKey = { issuer: 'A'.repeat(30), patientId: 'B'.repeat(30) };
    const hashed = patientIdOf(longKey);
    expect(hashed.long).toBe(true);
    expect(hashed.id).toMatch(/^x[0-9a-f]{40}$/);
    expect(parsePatientId(hashed.id)).toEqual({ kind: 'alias', id: hashed.id });
    expect(parsePatientId('r42')).toEqual({ kind: 'row', rowId: 42 });
    for (const bad of ['p', 'pzzzz', 'r0', '../x', 'p'.repeat(65)]) expect(parsePatientId(bad)).toBeUndefined();
  });

  it('maps issuers to systems from the configuration, IDs without issuer to the record number system', () => {
    const config = loadConfig({
      PACS_DATA_DIR: '/tmp/x',
      PACS_HIS_PATIENT_ID_ISSUER: 'BVBM',
      PACS_HIS_NATIONAL_ID_ISSUER: 'VNM-CCCD',
      PACS_FHIR_PATIENT_ID_SYSTEM: 'https://bvbm.example.vn/sid/mrn',
      PACS_FHIR_NATIONAL_ID_SYSTEM: 'https://moh.example.vn/sid/cccd',
      PACS_FHIR_ISSUER_SYSTEMS: 'LAB=urn:oid:1.2.3.4',
    });
    const f = config.fhir;
    const systems = new IdentifierSystems(f.issuerSystems, f.issuerSystemPrefix, f.patientIdSystem, f.nationalIdSystem);
    expect(systems.systemOf('BVBM')).toBe('https://bvbm.example.vn/sid/mrn');
    expect(systems.systemOf('')).toBe('https://bvbm.example.vn/sid/mrn');
    expect(systems.systemOf('VNM-CCCD')).toBe('https://moh.example.vn/sid/cccd');
    expect(systems.systemOf('LAB')).toBe('urn:oid:1.2.3.4');
    expect(systems.systemOf('OTHER HOSP')).toBe('urn:filmless-pacs:issuer:OTHER%20HOSP');
    expect(systems.issuersOf('https://bvbm.example.vn/sid/mrn').sort()).toEqual(['', 'BVBM']);
    expect(systems.issuersOf('urn:filmless-pacs:issuer:OTHER%20HOSP')).toEqual(['OTHER HOSP']);
    expect(systems.issuersOf('https://elsewhere.example')).toEqual([]);
    expect(systems.typeOf('https://moh.example.vn/sid/cccd')?.code).toBe('NI');
    expect(f.push).toBeNull();
  });

  it('refuses bad FHIR settings all at once', () => {
    expect(() =>
      loadConfig({ PACS_DATA_DIR: '/tmp/x', PACS_FHIR_PATIENT_ID_SYSTEM: 'not a uri', PACS_FHIR_PUSH_URL: 'ftp://emr', PACS_FHIR_PUSH_TOKEN_URL: 'https://idp/token', PACS_FHIR_PUSH_MAX_ATTEMPTS: '0' }),
    ).toThrow(
      /PACS_FHIR_PATIENT_ID_SYSTEM must be an absolute URI[\s\S]*PACS_FHIR_PUSH_URL must be an http\(s\) URL[\s\S]*PACS_PUBLIC_BASE_URL is required when PACS_FHIR_PUSH_URL is set[\s\S]*PACS_FHIR_PUSH_CLIENT_ID is required[\s\S]*PACS_FHIR_PUSH_MAX_ATTEMPTS must be between 1 and 1000/,
    );
  });

  it('reads tokens, references, dates at day and instant precision, and pages', () => {
    expect(tokensOf({ identifier: ['a|b,c', 'x\\,y'] }, 'identifier')).toEqual([[{ system: 'a', value: 'b' }, { system: undefined, value: 'c' }], [{ system: undefined, value: 'x,y' }]]);
    expect(() => tokensOf({ identifier: 'sys|' }, 'identifier')).toThrow(/value after "\|"/);
    expect(referencesOf({ patient: 'https://pacs/fhir/Patient/p1,p2' }, 'patient', 'Patient')).toEqual([['p1', 'p2']]);
    expect(() => referencesOf({ patient: 'Group/g1' }, 'patient', 'Patient')).toThrow(/must reference a Patient/);
    expect(dayRangesOf({ started: ['ge2024-02', 'le2024'] }, 'started')).toEqual([
      { prefix: 'ge', from: '20240201', to: '20240229' },
      { prefix: 'le', from: '20240101', to: '20241231' },
    ]);
    expect(() => dayRangesOf({ started: '2023-02-29' }, 'started')).toThrow(/day that month does not have/);
    expect(instantRangesOf({ _lastUpdated: 'gt2024-03-01T10:00+07:00' }, '_lastUpdated')).toEqual([{ prefix: 'gt', from: '2024-03-01T03:00:00.000Z', to: '2024-03-01T03:01:00.000Z' }]);
    expect(instantRangesOf({ _lastUpdated: '2024-03-01' }, '_lastUpdated')).toEqual([{ prefix: 'eq', from: '2024-03-01T00:00:00.000Z', to: '2024-03-02T00:00:00.000Z' }]);
    expect(pageOf({ _count: '5000', _offset: '40' }, 20, 200)).toEqual({ count: 200, offset: 40 });
    expect(() => pageOf({ _count: ['1', '2'] }, 20, 200)).toThrow(/once/);
    expect(dicomDateTime('20240105', '101500', '+0700')).toBe('2024-01-05T10:15:00+07:00');
    expect(dicomDateTime('20240105', null, null)).toBe('2024-01-05');
    expect(dicomDateTime('2024', '10', null)).toBeUndefined();
  });
});
