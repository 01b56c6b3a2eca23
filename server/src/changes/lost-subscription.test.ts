/**
 * A lost change-feed subscription never leaves a stale answer and never fails a request: two servers
 * (two apps in this process, each with its own SQLite change feed, on one data folder) share an index;
 * B's feed cannot read the change table (as if the file were unreadable for a moment), so B flushes
 * and answers from the index alone; a DELETE made through A meanwhile, which B never hears of, is a 404
 * on B at once. When the table is back B's feed is live again and its caches are used as before.
 */
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { makeInstance, multipartBody, newUid, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { eventually } from './change-feed.contract.js';

const FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';

describe('a lost change feed subscription', () => {
  let a: TestApp;
  let b: TestApp;
  const study = newUid();
  const series = newUid();
  const [kept, deleted] = [newUid(), newUid()];
  const url = (sop: string) => `/dicomweb/studies/${study}/series/${series}/instances/${sop}`;

  beforeAll(async () => {
    a = await buildTestApp({ PACS_AI_ENABLED: 'false', PACS_CHANGE_FEED_POLL_MS: '20' });
    b = await buildTestApp({ PACS_AI_ENABLED: 'false', PACS_CHANGE_FEED_POLL_MS: '20', PACS_DATA_DIR: a.dataDir });
  });
  afterAll(async () => {
    await b?.app.close();
    await a?.close();
  });

  it('bypasses the caches (no stale answer, no error) until it is back', async () => {
    expect(b.services.changes.backend).toBe('sqlite');
    const stored = await a.app.inject({
      method: 'POST',
      url: '/dicomweb/studies',
      headers: { 'content-type': STOW_CONTENT_TYPE() },
      payload: multipartBody([kept, deleted].map((sop) => ({ body: makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop }) }))),
    });
    expect(stored.statusCode).toBe(200);
    // B's instance lookups and open read handles.
    for (const sop of [kept, deleted]) {
      expect((await b.app.inject(`${url(sop)}/metadata`)).statusCode).toBe(200);
      expect((await b.app.inject({ url: `${url(sop)}/frames/1`, headers: { accept: FRAMES } })).statusCode).toBe(200);
    }

    const index = new Database(a.config.index.kind === 'sqlite' ? a.config.index.file : '');
    try {
      index.exec('ALTER TABLE change_feed RENAME TO change_feed_unreadable');
      await eventually(() => expect(b.services.changes.live).toBe(false));
      // Read while lost: nothing of it may be kept (B would not hear what comes next).
      expect((await b.app.inject({ url: `${url(deleted)}/frames/1`, headers: { accept: FRAMES } })).statusCode).toBe(200);
      // A's announcement of the DELETE cannot be written either: B never hears of it.
      expect((await a.app.inject({ method: 'DELETE', url: url(deleted) })).statusCode).toBeLessThan(300);
      expect((await b.app.inject(`${url(deleted)}/metadata`)).statusCode).toBe(404);
      expect((await b.app.inject({ url: `${url(deleted)}/frames/1`, headers: { accept: FRAMES } })).statusCode).toBe(404);
      expect((await b.app.inject(`${url(kept)}/metadata`)).statusCode).toBe(200);
      expect(b.logLines.join('\n')).toMatch(/change feed subscription lost/);
    } finally {
      index.exec('ALTER TABLE change_feed_unreadable RENAME TO change_feed');
      index.close();
    }
    await eventually(() => expect(b.services.changes.live).toBe(true));
    expect((await b.app.inject(`${url(kept)}/metadata`)).statusCode).toBe(200);
    expect((await b.app.inject(`${url(deleted)}/metadata`)).statusCode).toBe(404);
  });
});
