/**
 * Hospital IT and integrators generate clients from GET /api/openapi.json: the JSON APIs (AI, slide
 * analysis, audit) are in it with the schemas their routes validate and serialize by; a request that
 * breaks a schema is refused with a stable code and a message naming the field.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../test-support/build-test-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp();
});
afterAll(async () => t?.close());

describe('the OpenAPI document', () => {
  it('describes the AI, slide analysis and audit routes with their parameters and responses, and not DICOMweb', async () => {
    const res = await t.app.inject({ url: '/api/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    const paths = Object.keys(doc.paths);
    expect(paths).toEqual(
      expect.arrayContaining([
        '/ai/models',
        '/ai/models/{id}',
        '/ai/models/{id}/detect',
        '/ai/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/detections',
        '/ai/studies/{study}/series/{series}/analyses',
        '/ai/analyses/{id}',
        '/admin/audit',
        '/admin/audit/{id}',
      ]),
    );
    // DICOMweb is PS3.18's; only its DELETE extension (curation/) is described here.
    expect(paths.filter((p) => p.startsWith('/dicomweb') && Object.keys(doc.paths[p]).some((method) => method !== 'delete'))).toEqual([]);
    const create = doc.paths['/ai/studies/{study}/series/{series}/analyses'].post;
    expect(create.responses['202'].content['application/json'].schema.properties.links.properties.self.type).toBe('string');
    expect(create.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`)).toEqual(expect.arrayContaining(['path:study', 'path:series', 'query:model', 'query:recompute']));
    const audit = doc.paths['/admin/audit'].get;
    expect(audit.parameters.find((p: { name: string }) => p.name === 'limit').description).toBe('must be a whole number from 1 to 1000');
    expect(Object.keys(audit.responses['200'].content['application/json'].schema.properties)).toEqual(['records', 'next']);
  });
});

describe('requests that break a route schema', () => {
  it('are refused 400 with the stable code and the field named, in the words of its description', async () => {
    const cases: Array<[string, string, number, string, RegExp]> = [
      ['GET', '/admin/audit?limit=abc', 400, 'BAD_QUERY', /^Query parameter "limit": must be a whole number from 1 to 1000$/],
      ['GET', '/admin/audit?limit=5000', 400, 'BAD_QUERY', /"limit"/],
      ['GET', '/admin/audit?action=destroy', 400, 'BAD_QUERY', /"action": must be one of query, retrieve/],
      ['GET', '/admin/audit?user=a&user=b', 400, 'BAD_QUERY', /^Query parameter "user": may be given once$/],
      ['POST', '/ai/models/bright-spot/detect?minScore=2', 400, 'BAD_QUERY', /^Query parameter "minScore": must be a number between 0 and 1$/],
    ];
    for (const [method, url, status, code, message] of cases) {
      const res = await t.app.inject({ method: method as 'GET' | 'POST', url, headers: { 'content-type': 'image/png' }, payload: method === 'POST' ? Buffer.from([1]) : undefined });
      expect(res.statusCode, url).toBe(status);
      expect(res.json().error, url).toMatchObject({ code });
      expect(res.json().error.message, url).toMatch(message);
    }
  });

  it('a slide analysis body that is not an object, or a region that is not whole numbers, is a 400 naming it', async () => {
    const url = '/ai/studies/1.2.3/series/1.2.4/analyses';
    const array = await t.app.inject({ method: 'POST', url, payload: [1, 2] });
    expect(array.statusCode).toBe(400);
    expect(array.json().error).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/body must be a JSON object such as \{"model":"dark-spot"\}/) });
    const region = await t.app.inject({ method: 'POST', url, payload: { model: 'dark-spot', region: { x: 0.5, y: 0, width: 10, height: 10 } } });
    expect(region.statusCode).toBe(400);
    expect(region.json().error.message).toMatch(/^Body field "region": /);
  });
});
