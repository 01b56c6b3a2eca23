/**
 * AI in use, measured, over HTTP with sign-in on (a real issuer on loopback) and the real archive,
 * reports and AI usage store (SQLite): the AI findings of a colonoscopy study offered in the report
 * editor are counted as shown, once; a physician signs the report with two accepted and one rejected →
 * the figures of the detector's version say so; a clinician marks a stored finding right or wrong through
 * the verdict API (unknown finding 404, bad body 400, without the permission 403); the usage figures are
 * for administrators only, and every request is in the audit trail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../audit/audit-record.js';
import type { UsageReport } from '../contracts/ai-usage.js';
import type { EndoscopyContent, ReportJson } from '../contracts/reports.js';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';
import { storeEndoscopyStudy, type EndoscopyStudy } from '../test-support/endoscopy-study.js';
import { authEnv, startTestIssuer, type TestIssuer } from '../test-support/test-issuer.js';

let issuer: TestIssuer;
let t: TestApp;
let reported: EndoscopyStudy;
let judged: EndoscopyStudy;
const tokens: Record<'resident' | 'physician' | 'reader' | 'admin', string> = { resident: '', physician: '', reader: '', admin: '' };
const MODEL = { id: 'bright-spot', version: '1.0.0' };

const today = () => {
  const d = new Date();
  return `${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, '0')}${String(d.getDate()).padStart(2, '0')}`;
};

beforeAll(async () => {
  issuer = await startTestIssuer();
  t = await buildTestApp(authEnv(issuer));
  reported = await storeEndoscopyStudy(t.services.archive, { patientName: 'Trần^Văn Bình' });
  judged = await storeEndoscopyStudy(t.services.archive, { patientName: 'Lê^Thị Mai' });
  tokens.resident = await issuer.token({ sub: 'res-1', roles: ['resident'], extraClaims: { name: 'BS. Phạm Quốc Huy' } });
  tokens.physician = await issuer.token({ sub: 'doc-1', roles: ['physician'], extraClaims: { name: 'BS. Lê Văn Minh' } });
  tokens.reader = await issuer.token({ sub: 'reader-1', roles: ['reader'] });
  tokens.admin = await issuer.token({ sub: 'admin-1', roles: ['admin'] });
}, 60_000);

afterAll(async () => {
  await t?.close();
  await issuer?.close();
});

function send(as: keyof typeof tokens, method: 'GET' | 'POST' | 'PUT', url: string, body?: unknown) {
  return t.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${tokens[as]}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
}

async function usage(): Promise<UsageReport> {
  const res = await send('admin', 'GET', `/ai/usage?from=${today()}&to=${today()}`);
  expect(res.statusCode).toBe(200);
  return res.json();
}

async function auditRecords(action: AuditRecord['action']): Promise<AuditRecord[]> {
  await t.services.audit!.flush();
  return (await t.services.audit!.store.list({ limit: 200, action })).reverse();
}

describe('AI findings accepted or rejected in a signed report', () => {
  it('counts the findings offered in the report editor as shown, once', async () => {
    const offered = await send('resident', 'GET', `/reports/studies/${reported.studyInstanceUid}/ai-findings`);
    expect(offered.statusCode).toBe(200);
    expect(offered.json().findings).toHaveLength(3);
    expect((await usage()).models).toEqual([expect.objectContaining({ model: MODEL, shown: 3, accepted: 0, rejected: 0, acceptanceRate: null })]);
    // The draft offers the same findings again: still three shown.
    const created = await send('resident', 'POST', '/reports', { studyInstanceUid: reported.studyInstanceUid, kind: 'endoscopy' });
    expect(created.statusCode).toBe(201);
    expect((await usage()).models[0]).toMatchObject({ shown: 3 });
  });

  it('records each decision of the signed report with its model version, signer and report', async () => {
    const [report] = (await send('resident', 'GET', `/reports/studies/${reported.studyInstanceUid}`)).json().reports as ReportJson[];
    const content: EndoscopyContent = {
      kind: 'endoscopy',
      aiFindings: [
        { report: reported.ai.sopInstanceUid, frame: 2, index: 1, decision: 'accepted' },
        { report: reported.ai.sopInstanceUid, frame: 2, index: 2, decision: 'rejected' },
        { report: reported.ai.sopInstanceUid, frame: 5, index: 1, decision: 'accepted' },
      ],
      conclusion: 'Hai polyp nhỏ.',
    };
    expect((await send('resident', 'PUT', `/reports/${report!.id}`, { content })).statusCode).toBe(200);
    // Saving a draft decides nothing yet.
    expect((await usage()).models[0]).toMatchObject({ accepted: 0, rejected: 0 });
    const signed = await send('physician', 'POST', `/reports/${report!.id}/sign`, {});
    expect(signed.statusCode).toBe(200);
    const figures = await usage();
    expect(figures.models).toEqual([
      { model: MODEL, shown: 3, accepted: 2, rejected: 1, acceptanceRate: 0.6667, testSet: { split: 'none (test fixture)', precisionAtThreshold: null, card: 'README.md' } },
    ]);
    expect(Object.keys(figures.definitions)).toEqual(['shown', 'accepted', 'rejected', 'acceptanceRate']);
    const history = await t.services.aiUsage!.service.decisions(reported.ai.sopInstanceUid, '2-2');
    expect(history).toEqual([expect.objectContaining({ decision: 'rejected', source: 'report', reportId: report!.id, reportVersion: 1, by: { subject: 'doc-1', name: 'BS. Lê Văn Minh' } })]);
  });
});

describe('the verdict on a stored AI finding (POST /ai/findings/{sop}/{item}/verdict)', () => {
  const url = (item: string, sop = judged.ai.sopInstanceUid) => `/ai/findings/${sop}/${item}/verdict`;

  it('marks a finding right (accepted) or wrong (rejected), the latest verdict counting', async () => {
    const right = await send('resident', 'POST', url('2-1'), { verdict: 'right' });
    expect(right.statusCode).toBe(200);
    expect(right.json()).toMatchObject({
      finding: { sopInstanceUid: judged.ai.sopInstanceUid, item: '2-1', studyInstanceUid: judged.studyInstanceUid, seriesInstanceUid: judged.ai.seriesInstanceUid, model: MODEL, label: 'polyp' },
      decision: 'accepted',
      decidedBy: { subject: 'res-1', name: 'BS. Phạm Quốc Huy' },
    });
    expect((await send('physician', 'POST', url('5-1'), { verdict: 'wrong', comment: 'bọt khí' })).json()).toMatchObject({ decision: 'rejected' });
    // A second opinion on 2-1 replaces the first.
    expect((await send('physician', 'POST', url('2-1'), { verdict: 'wrong' })).statusCode).toBe(200);
    // Shown 3 (report) + 2 (a verdict implies it was seen); accepted 2 + 0; rejected 1 + 2.
    expect((await usage()).models[0]).toMatchObject({ model: MODEL, shown: 5, accepted: 2, rejected: 3, acceptanceRate: 0.4 });
    const history = await t.services.aiUsage!.service.decisions(judged.ai.sopInstanceUid, '2-1');
    expect(history.map((d) => [d.decision, d.by.subject, d.source])).toEqual([
      ['accepted', 'res-1', 'verdict'],
      ['rejected', 'doc-1', 'verdict'],
    ]);
  });

  it('answers 404 for a finding that is not stored', async () => {
    const noSuchItem = await send('resident', 'POST', url('2-3'), { verdict: 'right' });
    expect(noSuchItem.statusCode).toBe(404);
    expect(noSuchItem.json().error.message).toBe('The detection report has no finding 2-3 (frame 2, detection 3)');
    expect((await send('resident', 'POST', url('2'), { verdict: 'right' })).statusCode).toBe(404);
    const noSuchSop = await send('resident', 'POST', url('1-1', '2.25.999999'), { verdict: 'right' });
    expect(noSuchSop.statusCode).toBe(404);
    // The video is stored, but it is not an AI result.
    const notAi = await send('resident', 'POST', url('1-1', judged.video.sopInstanceUid), { verdict: 'right' });
    expect(notAi.statusCode).toBe(404);
    expect(notAi.json().error.message).toBe('The instance is not a stored AI result (a detection report or bulk annotations)');
  });

  it('answers 400 for a bad body or path, naming what is wrong', async () => {
    const bad = await send('resident', 'POST', url('2-1'), { verdict: 'maybe' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toContain('right (the finding is true');
    const missing = await send('resident', 'POST', url('2-1'), {});
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.message).toContain('Body field "verdict"');
    expect((await send('resident', 'POST', url('2-1'), '{not json')).statusCode).toBe(400);
    expect((await send('resident', 'POST', url('2-1'), { verdict: 'right', comment: 'x'.repeat(501) })).statusCode).toBe(400);
    const badItem = await send('resident', 'POST', url('first'), { verdict: 'right' });
    expect(badItem.statusCode).toBe(400);
    expect(badItem.json().error.message).toContain('Path parameter "item"');
  });

  it('refuses a user without the report permission (403), and the figures to anyone but an administrator', async () => {
    expect((await send('reader', 'POST', url('2-2'), { verdict: 'right' })).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'POST', url: url('2-2'), headers: { 'content-type': 'application/json' }, payload: '{"verdict":"right"}' })).statusCode).toBe(401);
    expect((await send('physician', 'GET', `/ai/usage?from=${today()}&to=${today()}`)).statusCode).toBe(403);
    expect((await usage()).models[0]).toMatchObject({ accepted: 2, rejected: 3 });
  });

  it('checks the period', async () => {
    expect((await send('admin', 'GET', '/ai/usage?from=20260101')).statusCode).toBe(400);
    const reversed = await send('admin', 'GET', '/ai/usage?from=20260201&to=20260101');
    expect(reversed.statusCode).toBe(400);
    expect(reversed.json().error.message).toBe('Query parameter "from": must not be after "to"');
    expect((await send('admin', 'GET', '/ai/usage?from=20260230&to=20260301')).statusCode).toBe(400);
    expect((await send('admin', 'GET', '/ai/usage?from=20200101&to=20200131')).json().models).toEqual([]);
  });

  it('audits every verdict (the AI result named) and every read of the figures', async () => {
    const verdicts = await auditRecords('ai-verdict');
    expect(verdicts.filter((r) => r.outcome === 0)).toHaveLength(3);
    expect(verdicts[0]).toMatchObject({ interface: 'ai', who: { subject: 'res-1' }, objects: [{ study: judged.studyInstanceUid, series: judged.ai.seriesInstanceUid, instance: judged.ai.sopInstanceUid }], detail: expect.objectContaining({ item: '2-1', verdict: 'right', model: 'bright-spot 1.0.0' }) });
    expect(verdicts.some((r) => r.who.subject === 'reader-1' && r.outcome !== 0)).toBe(true);
    const reads = (await auditRecords('ai-read')).filter((r) => r.who.subject === 'admin-1');
    expect(reads.length).toBeGreaterThanOrEqual(8);
  });
});
