/**
 * A guard for the test app (test-support/build-test-app.ts): every JSON response of a route that
 * declares a response schema is checked against it before it is serialized. Fastify's serializer
 * silently leaves out a field its schema does not name; in tests that would hide a field the server
 * meant to send (or one it should never send), so here the response fails loudly instead (500, with
 * the schema path in the log). Production servers skip the check: the serializer alone is the guard
 * against sending undeclared fields.
 */
import type { FastifyInstance } from 'fastify';
import { Compile, type Validator } from 'typebox/compile';

export function installResponseCheck(app: FastifyInstance): void {
  // Strict: no coercion, no removal; every schema object is closed (contracts/), so an extra field fails.
  const compiled = new WeakMap<object, Validator>();
  app.addHook('preSerialization', async (request, reply, payload) => {
    const responses = (request.routeOptions.schema as { response?: Record<string, object> } | undefined)?.response;
    const schema = responses?.[String(reply.statusCode)];
    if (schema === undefined || payload === null || typeof payload !== 'object' || Buffer.isBuffer(payload)) return payload;
    let validator = compiled.get(schema);
    if (validator === undefined) {
      validator = Compile(schema as never) as Validator;
      compiled.set(schema, validator);
    }
    if (!validator.Check(payload)) {
      const problems = [...validator.Errors(payload)].map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`).join('; ');
      throw new Error(`Response of ${request.method} ${request.routeOptions.url} (${reply.statusCode}) does not match its schema: ${problems}`);
    }
    return payload;
  });
}
