/**
 * DIMSE has no sign-in: the calling AE title is the identity, and PACS_DIMSE_AE_PERMISSIONS says what
 * each may do (store for C-STORE, read for C-FIND / C-MOVE / C-GET). Checked with dcmtk's tools.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeInstance, newUid } from '../test-support/make-dicom.js';
import { requireDcmtk, runTool, startTestDimse, type TestDimse } from '../test-support/dimse-peer.js';

requireDcmtk();

let dimse: TestDimse;
let dir: string;
const study = newUid();

beforeAll(async () => {
  dimse = await startTestDimse({ aePermissions: { ENDO1: ['store'], WS1: ['read'], PEER: ['read', 'store'] } });
  dir = await mkdtemp(path.join(os.tmpdir(), 'ae-permissions-'));
});

afterAll(async () => {
  await dimse?.close();
  await rm(dir, { recursive: true, force: true });
});

const peer = (ae: string) => ['-aet', ae, '-aec', dimse.aeTitle, '127.0.0.1', String(dimse.port)];

async function instanceFile(): Promise<string> {
  const file = path.join(dir, `${newUid()}.dcm`);
  await writeFile(file, makeInstance({ studyInstanceUid: study }));
  return file;
}

const studiesStored = async () => JSON.parse((await dimse.testApp.app.inject(`/dicomweb/studies/${study}/instances`)).body || '[]') as unknown[];

describe('DIMSE permissions per calling AE title', () => {
  it('lets an endoscopy modality store but not query', async () => {
    const stored = await runTool('storescu', peer('ENDO1').concat(await instanceFile()));
    expect(stored.code, stored.stdout + stored.stderr).toBe(0);
    expect(await studiesStored()).toHaveLength(1);
    const find = await runTool('findscu', ['-v', '-S', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${study}`, ...peer('ENDO1')]);
    expect(find.stdout + find.stderr).toMatch(/0x0?124|Not Authorized/i);
    expect(find.stdout + find.stderr).not.toMatch(/\(Pending\)/);
  });

  it('lets a workstation query and retrieve but refuses what it tries to store, storing nothing', async () => {
    const refused = await runTool('storescu', ['-v', ...peer('WS1'), await instanceFile()]);
    expect(refused.stdout + refused.stderr).toMatch(/0x0?124|Not Authorized/i);
    expect(await studiesStored()).toHaveLength(1);
    const find = await runTool('findscu', ['-v', '-S', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${study}`, ...peer('WS1')]);
    expect(find.code).toBe(0);
    expect(find.stdout + find.stderr).toContain(study);
    const get = await runTool('getscu', ['-v', '-od', dir, '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${study}`, ...peer('WS1')]);
    expect(get.stdout + get.stderr).toMatch(/Completed Suboperations\s*:\s*1/);
  });

  it('refuses the association of an AE title that has no permissions at all', async () => {
    const echo = await runTool('echoscu', ['-v', ...peer('STRANGER')]);
    expect(echo.code).not.toBe(0);
    expect(echo.stdout + echo.stderr).toMatch(/Association Rejected|Calling AE Title Not Recognized/i);
    expect((await runTool('echoscu', peer('PEER'))).code).toBe(0);
  });
});
