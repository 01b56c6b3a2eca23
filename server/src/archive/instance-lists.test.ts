/**
 * The archive's instance lists of a study or series (what every study / series retrieve and metadata
 * request starts from): read from the index once, then used again while the index's check of the list
 * (Catalog.instanceListVersion) still matches. An instance stored by another process (straight into the
 * index here, as a second server would) is in the very next list; what changes instances in place is
 * dropped by forgetStudies or a change heard on the feed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fakeInstance } from '../catalog/catalog.contract.js';
import { SqliteCatalog } from '../catalog/sqlite-catalog.js';
import { InProcessChangeFeed } from '../changes/change-feed.js';
import { FsBlobStore } from '../storage/fs-blob-store.js';
import { testLogger } from '../test-support/log-capture.js';
import { Archive } from './archive.js';

describe('instance lists of a study or series', () => {
  let dir: string;
  let blobs: FsBlobStore;
  let catalog: SqliteCatalog;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pacs-instance-lists-'));
    blobs = await FsBlobStore.create(path.join(dir, 'blobs'));
    catalog = new SqliteCatalog(':memory:');
    await catalog.migrate();
    for (const sop of ['7.1.1.1', '7.1.1.2']) await catalog.storeInstance(fakeInstance({ study: '7.1', series: '7.1.1', sop, instanceNumber: Number(sop.slice(-1)) }));
  });
  afterEach(async () => {
    await catalog.close();
    await blobs.close();
    await rm(dir, { recursive: true, force: true });
  });

  const series = { studyInstanceUid: '7.1', seriesInstanceUid: '7.1.1' };
  const sops = (list: { sopInstanceUid: string }[]) => list.map((i) => i.sopInstanceUid);

  it('reads a list from the index once while nothing changes, and gives each caller its own copy', async () => {
    const archive = new Archive(blobs, catalog, testLogger(), { maxHeaderBytes: 1 << 20 });
    const reads = vi.spyOn(catalog, 'listInstances');
    const first = await archive.findInstances(series);
    first.pop();
    const second = await archive.findInstances(series);
    expect(sops(second)).toEqual(['7.1.1.1', '7.1.1.2']);
    expect(reads).toHaveBeenCalledTimes(1);
  });

  it('shows an instance another process stored into the series in the very next list', async () => {
    const archive = new Archive(blobs, catalog, testLogger(), { maxHeaderBytes: 1 << 20 });
    expect(sops(await archive.findInstances(series))).toEqual(['7.1.1.1', '7.1.1.2']);
    expect(sops(await archive.findInstances({ studyInstanceUid: '7.1' }))).toEqual(['7.1.1.1', '7.1.1.2']);
    await catalog.storeInstance(fakeInstance({ study: '7.1', series: '7.1.1', sop: '7.1.1.3', instanceNumber: 3 }));
    expect(sops(await archive.findInstances(series))).toEqual(['7.1.1.1', '7.1.1.2', '7.1.1.3']);
    expect(sops(await archive.findInstances({ studyInstanceUid: '7.1' }))).toEqual(['7.1.1.1', '7.1.1.2', '7.1.1.3']);
  });

  it('drops the lists of a study whose instances change in place: forgetStudies, or a change heard on the feed', async () => {
    const feed = new InProcessChangeFeed(testLogger());
    const archive = new Archive(blobs, catalog, testLogger(), { maxHeaderBytes: 1 << 20, changes: feed });
    const reads = vi.spyOn(catalog, 'listInstances');
    await archive.findInstances(series);
    archive.forgetStudies(['7.1']);
    await archive.findInstances(series);
    expect(reads).toHaveBeenCalledTimes(2);
    await feed.publish({ kind: 'instances-changed', studies: ['7.1'] });
    await archive.findInstances(series);
    expect(reads).toHaveBeenCalledTimes(3);
    // Another study's change leaves this list alone.
    await feed.publish({ kind: 'instances-changed', studies: ['7.2'] });
    await archive.findInstances(series);
    expect(reads).toHaveBeenCalledTimes(3);
  });

  it('answers an unknown series as not found, and does not keep that answer', async () => {
    const archive = new Archive(blobs, catalog, testLogger(), { maxHeaderBytes: 1 << 20 });
    await expect(archive.findInstances({ studyInstanceUid: '7.1', seriesInstanceUid: '7.1.2' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await catalog.storeInstance(fakeInstance({ study: '7.1', series: '7.1.2', sop: '7.1.2.1' }));
    expect(sops(await archive.findInstances({ studyInstanceUid: '7.1', seriesInstanceUid: '7.1.2' }))).toEqual(['7.1.2.1']);
  });
});
