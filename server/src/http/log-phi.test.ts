/**
 * The machinery behind the run-wide check that logs never name a patient (test-support/log-phi-global.ts):
 * the corpus holds the names and IDs of the shared DICOM files and the test sources, the matcher finds
 * them as people write them without false alarms on UIDs, and a test app's lines reach the capture.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../test-support/build-test-app.js';
import { TEST_LOG_DIR_ENV } from '../test-support/log-capture.js';
import { makeInstance, multipartBody, STOW_CONTENT_TYPE } from '../test-support/make-dicom.js';
import { collectPhiCorpus, findPhi, type PhiCorpus } from '../test-support/phi-corpus.js';

let corpus: PhiCorpus;
beforeAll(async () => {
  corpus = await collectPhiCorpus();
}, 60_000);

describe('the patient names and IDs the log check looks for', () => {
  it('come from the shared DICOM files and the names written in the tests', () => {
    expect(corpus.files).toBeGreaterThan(200);
    expect(corpus.names.size).toBeGreaterThan(20);
    expect(corpus.ids.size).toBeGreaterThan(20);
    for (const literal of ['DOE^JANE', 'VIEWTEST^ALICE', 'ROOM^ONE', 'TEST^PATIENT', 'QIDO-1', 'TEST-ID']) {
      expect([...corpus.names, ...corpus.ids]).toContain(literal);
    }
  });

  it('are found in a log line however the name is written, but not inside UIDs or longer words', () => {
    const sample = { names: new Set(['DOE^JANE', 'JANE DOE', 'DOE JANE']), ids: new Set(['PID-4711', '12345678']) };
    expect(findPhi('{"msg":"stored","patient":"DOE^JANE"}', sample)).toHaveLength(1);
    expect(findPhi('query for JANE DOE failed', sample)).toHaveLength(1);
    expect(findPhi('{"patientId":"PID-4711"}', sample)).toHaveLength(1);
    expect(findPhi('{"study":"1.2.826.0.1.12345678.5"}', sample)).toHaveLength(0);
    expect(findPhi('{"path":"/dicomweb/studies/2.25.123456789"}\n{"id":"PID-47110"}', sample)).toHaveLength(0);
  });
});

describe('a server under test', () => {
  it('writes its log lines where the end-of-run check reads them, free of the patient it handled', async () => {
    const dir = process.env[TEST_LOG_DIR_ENV];
    expect(dir, 'vitest.config.ts global setup gives every run a capture folder').toBeTruthy();
    const t = await buildTestApp();
    try {
      const stored = await t.app.inject({
        method: 'POST',
        url: '/dicomweb/studies',
        headers: { 'content-type': STOW_CONTENT_TYPE() },
        payload: multipartBody([{ body: makeInstance({ patientName: 'CAPTURE^CHECK', patientId: 'CAPTURE-7731' }) }]),
      });
      expect(stored.statusCode).toBe(200);
      const found = await t.app.inject('/dicomweb/studies?PatientName=CAPTURE*&PatientID=CAPTURE-7731');
      expect(found.json()).toHaveLength(1);
    } finally {
      await t.close();
    }
    const captured = readFileSync(path.join(dir!, `worker-${process.pid}.log`), 'utf8');
    expect(captured).toContain('"path":"/dicomweb/studies"');
    expect(findPhi(captured, { names: new Set(['CAPTURE^CHECK', 'CAPTURE CHECK']), ids: new Set(['CAPTURE-7731']) })).toEqual([]);
  });
});
