/**
 * DELETE of a study, series and instance (an extension of DICOMweb, as dcm4chee-arc and Orthanc offer)
 * as a user sees it with sign-in on: refused without the `delete` permission (401 without a token, 403
 * for a reader, a physician and an administrator whose role lacks `delete`), done with it (the index rows,
 * then the files; counts right at once, cached lookups dropped), audited as DICOM Study Deleted (110105);
 * fsck agrees afterwards, and a delete interrupted between the rows and the files is finished by fsck
 * --repair.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_ROLE_PERMISSIONS } from '../config.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { runFsckScript } from '../test-support/fsck-script.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { authEnv, startTestIssuer, type TestIssuer } from '../test-support/test-issuer.js';

type Json = Record<string, { Value?: unknown[] }>;

describe('DELETE of studies, series and instances', () => {
  let issuer: TestIssuer;
  let t: TestApp;
  const study = newUid();
  const seriesA = newUid();
  const seriesB = newUid();
  const [a1, a2, b1] = [newUid(), newUid(), newUid()];
  const token = async (...roles: string[]) => `Bearer ${await issuer.token({ sub: `user-${roles.join('-')}`, roles })}`;
  const send = async (method: 'GET' | 'DELETE', url: string, roles?: string[], accept?: string) =>
    t.app.inject({ method, url, headers: { ...(roles === undefined ? {} : { authorization: await token(...roles) }), ...(accept === undefined ? {} : { accept }) } });
  const blobPath = (key: string) => path.join((t.config.blobStore as { root: string }).root, key);
  const blobs = new Map<string, string>();

  beforeAll(async () => {
    issuer = await startTestIssuer();
    // The default roles, and an administrator whose role lacks `delete`.
    const roles = { ...DEFAULT_ROLE_PERMISSIONS, curator: ['read', 'admin'] };
    // No purge sweep (it would also finish the interrupted delete the last test leaves for fsck).
    t = await buildTestApp(
      authEnv(issuer, { PACS_AUTH_ROLE_PERMISSIONS: Object.entries(roles).map(([role, permissions]) => `${role}=${permissions.join(',')}`).join(';'), PACS_REJECTION_PURGE_INTERVAL_SECONDS: '0' }),
    );
    const instance = (series: string, sop: string, modality: string) => makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop, modality, rows: 8, columns: 8 });
    const stored = await t.app.inject({
      method: 'POST',
      url: '/dicomweb/studies',
      headers: { 'content-type': STOW_CONTENT_TYPE(), authorization: await token('admin') },
      payload: multipartBody([{ body: instance(seriesA, a1, 'OT') }, { body: instance(seriesA, a2, 'OT') }, { body: instance(seriesB, b1, 'MR') }]),
    });
    expect(stored.statusCode, stored.body).toBe(200);
    for (const i of await t.services.archive.listInstances({ studyInstanceUid: study })) blobs.set(i.sopInstanceUid, i.blobKey);
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    await issuer?.close();
  });

  const studyRow = async () => ((await send('GET', `/dicomweb/studies?StudyInstanceUID=${study}`, ['admin'])).json() as Json[])[0];

  it('gives the delete permission to administrators only, by default', () => {
    const withDelete = Object.entries(DEFAULT_ROLE_PERMISSIONS).filter(([, permissions]) => (permissions as readonly string[]).includes('delete')).map(([role]) => role);
    expect(withDelete).toEqual(['admin']);
  });

  it('refuses a DELETE without the permission: no token 401, reader, physician and an administrator without delete 403', async () => {
    const url = `/dicomweb/studies/${study}/series/${seriesA}/instances/${a1}`;
    expect((await send('DELETE', url)).statusCode).toBe(401);
    for (const role of ['reader', 'physician', 'curator']) {
      const refused = await send('DELETE', url, [role]);
      expect(refused.statusCode, role).toBe(403);
      expect(String(refused.headers['www-authenticate'])).toContain('insufficient_scope');
      expect(refused.json().error.message).toContain('"delete" permission');
    }
    // Nothing changed.
    expect((await studyRow())?.['00201208']?.Value).toEqual([3]);
    expect(existsSync(blobPath(blobs.get(a1)!))).toBe(true);
  });

  it('deletes an instance with it: gone from QIDO-RS and WADO-RS at once (cached lookups too), its file removed', async () => {
    const url = `/dicomweb/studies/${study}/series/${seriesA}/instances/${a1}`;
    // Warm the instance lookup and metadata caches.
    expect((await send('GET', `${url}/frames/1`, ['reader'], 'multipart/related; type="application/octet-stream"; transfer-syntax=*')).statusCode).toBe(200);
    const before = await send('GET', `/dicomweb/studies/${study}/series/${seriesA}/metadata`, ['reader']);
    const deleted = await send('DELETE', url, ['admin']);
    expect(deleted.statusCode, deleted.body).toBe(200);
    expect(deleted.json()).toEqual({ studyInstanceUid: study, seriesInstanceUid: seriesA, sopInstanceUid: a1, instancesRemoved: 1 });
    expect((await send('GET', `${url}/frames/1`, ['reader'], 'multipart/related; type="application/octet-stream"; transfer-syntax=*')).statusCode).toBe(404);
    const after = await send('GET', `/dicomweb/studies/${study}/series/${seriesA}/metadata`, ['reader']);
    expect(after.headers.etag).not.toBe(before.headers.etag);
    expect((after.json() as Json[]).map((i) => i['00080018']?.Value?.[0])).toEqual([a2]);
    expect((await studyRow())?.['00201208']?.Value).toEqual([2]);
    expect(existsSync(blobPath(blobs.get(a1)!))).toBe(false);
    expect((await send('DELETE', url, ['admin'])).statusCode).toBe(404);
  });

  it('deletes a series, then the study: counts and ModalitiesInStudy follow, then nothing is left', async () => {
    const series = await send('DELETE', `/dicomweb/studies/${study}/series/${seriesB}`, ['admin']);
    expect(series.json()).toMatchObject({ instancesRemoved: 1 });
    const row = await studyRow();
    expect([row?.['00201208']?.Value, row?.['00201206']?.Value, row?.['00080061']?.Value]).toEqual([[1], [1], ['OT']]);
    const whole = await send('DELETE', `/dicomweb/studies/${study}`, ['admin']);
    expect(whole.statusCode, whole.body).toBe(200);
    expect(whole.json()).toEqual({ studyInstanceUid: study, instancesRemoved: 1 });
    expect(await studyRow()).toBeUndefined();
    for (const key of blobs.values()) expect(existsSync(blobPath(key))).toBe(false);
    expect((await send('DELETE', `/dicomweb/studies/${study}`, ['admin'])).statusCode).toBe(404);
  });

  it('audits every DELETE as DICOM Study Deleted, refused ones included, naming what was removed', async () => {
    await t.services.audit!.flush();
    const records = ((await send('GET', `/admin/audit?action=delete&study=${study}&limit=100`, ['admin'])).json() as {
      records: Array<{ outcome: number; status: number; who: { subject: string }; objects: Array<{ instance?: string }>; atna: { eventId: { code: string }; eventActionCode: string } }>;
    }).records;
    const done = records.filter((r) => r.status === 200);
    expect(done).toHaveLength(3);
    expect(done.every((r) => r.atna.eventId.code === '110105' && r.atna.eventActionCode === 'D' && r.outcome === 0 && r.who.subject === 'user-admin')).toBe(true);
    expect([...new Set(done.flatMap((r) => r.objects.map((o) => o.instance)).filter((i) => i !== undefined))].sort()).toEqual([a1, a2, b1].sort());
    expect(records.filter((r) => r.status === 403).map((r) => r.who.subject).sort()).toEqual(['user-curator', 'user-physician', 'user-reader']);
  });

  it('fsck agrees afterwards; a delete interrupted between the rows and the files is finished by fsck --repair', async () => {
    const clean = await runFsckScript({ PACS_DATA_DIR: t.dataDir });
    expect(clean.code, clean.output).toBe(0);
    // The rows go, the process dies before the file is deleted: the file's key stays queued.
    const other = newUid();
    const sop = newUid();
    const stored = await t.app.inject({
      method: 'POST',
      url: '/dicomweb/studies',
      headers: { 'content-type': STOW_CONTENT_TYPE(), authorization: await token('admin') },
      payload: multipartBody([{ body: makeInstance({ studyInstanceUid: other, sopInstanceUid: sop }) }]),
    });
    expect(stored.statusCode).toBe(200);
    const [instance] = await t.services.archive.listInstances({ studyInstanceUid: other });
    await t.services.catalog.deleteInstances({ studyInstanceUid: other }, new Date().toISOString());
    expect(existsSync(blobPath(instance!.blobKey))).toBe(true);
    const found = await runFsckScript({ PACS_DATA_DIR: t.dataDir });
    expect(found.code, found.output).toBe(1);
    expect(found.output).toContain('pending-delete');
    expect(found.output).not.toContain('orphan-blob');
    const repaired = await runFsckScript({ PACS_DATA_DIR: t.dataDir }, ['--repair']);
    expect(repaired.code, repaired.output).toBe(0);
    expect(existsSync(blobPath(instance!.blobKey))).toBe(false);
    expect((await runFsckScript({ PACS_DATA_DIR: t.dataDir })).code).toBe(0);
  }, 60_000);
});
