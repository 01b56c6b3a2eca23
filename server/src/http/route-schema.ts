/**
 * A JSON route's `schema` (Fastify validation and serialization, and the OpenAPI document) with the
 * error a refused request gets: `withSchema({ querystring, body, params, response })` returns route
 * options whose `schemaErrorFormatter` turns the first validation error into the stable AppError codes
 * of errors.ts (BAD_QUERY for the query string, BAD_REQUEST otherwise), named after the parameter or
 * body field and worded by that field's `description` in the schema: the documentation of a field is
 * also the message a client gets when it sends it wrong.
 */
import type { FastifySchema, FastifySchemaValidationError } from 'fastify';

type SchemaErrorDataVar = 'body' | 'headers' | 'params' | 'querystring';
import { AppError, BadQueryError } from '../errors.js';

type SchemaObject = { description?: string; properties?: Record<string, { description?: string }>; anyOf?: SchemaObject[] };

/** The description of a top-level field, also inside a union of objects (a body that may be null). */
function fieldDescription(part: SchemaObject | undefined, name: string): string | undefined {
  if (part === undefined) return undefined;
  return part.properties?.[name]?.description ?? part.anyOf?.map((branch) => fieldDescription(branch, name)).find((d) => d !== undefined);
}

export interface RouteSchema extends FastifySchema {
  /** OpenAPI: the group the route is listed under. */
  tags?: string[];
  /** OpenAPI: one line saying what the route does. */
  summary?: string;
}

export function withSchema(schema: RouteSchema): { schema: RouteSchema; schemaErrorFormatter: (errors: FastifySchemaValidationError[], dataVar: SchemaErrorDataVar) => Error } {
  return { schema, schemaErrorFormatter: (errors, dataVar) => validationError(schema, errors, dataVar) };
}

function validationError(schema: RouteSchema, errors: FastifySchemaValidationError[], dataVar: SchemaErrorDataVar): Error {
  const error = errors[0];
  const part = (schema as Record<string, unknown>)[dataVar] as SchemaObject | undefined;
  if (error === undefined) return new AppError('BAD_REQUEST', `The request's ${dataVar} is not valid`);
  const params = error.params as Record<string, unknown>;
  const name = error.keyword === 'required' ? String(params['missingProperty']) : error.instancePath.split('/')[1];
  const described = name === undefined ? undefined : fieldDescription(part, name);
  const repeated = error.keyword === 'type' && Array.isArray((error as { data?: unknown }).data);
  const why = repeated ? 'may be given once' : (described ?? (error.keyword === 'required' ? 'is required' : `${error.message ?? 'is not valid'}`));
  if (dataVar === 'querystring') return new BadQueryError(name ?? '(query string)', why);
  if (name === undefined) return new AppError('BAD_REQUEST', `The request ${dataVar === 'body' ? 'body' : dataVar} ${part?.description ?? error.message ?? 'is not valid'}`);
  return new AppError('BAD_REQUEST', `${dataVar === 'body' ? 'Body field' : dataVar === 'params' ? 'Path parameter' : 'Header'} "${name}": ${why}`);
}
