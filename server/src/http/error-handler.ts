/**
 * The one place errors become HTTP responses. AppError codes map through `httpStatusOf`; Fastify's own
 * client errors (bad content type, body too large, malformed JSON) keep their 4xx status; anything else
 * is a 500 whose details stay in the log, never in the response.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { httpStatusOf, isAppError, ServiceBusyError } from '../errors.js';

export interface ErrorBody {
  error: { code: string; message: string };
}

const FASTIFY_MESSAGES: Record<string, string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'Unsupported Content-Type',
  FST_ERR_CTP_BODY_TOO_LARGE: 'Request body is larger than allowed',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'Request body is empty',
};

export function errorHandler(err: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toResponse(err);
  if (err instanceof ServiceBusyError) {
    request.log.warn({ code: body.error.code, status }, 'request refused: busy');
  } else if (status >= 500) {
    request.log.error({ err: { type: err.name, code: (err as FastifyError).code, message: err.message, stack: err.stack } }, 'request failed');
  } else {
    request.log.info({ code: body.error.code, status }, 'request refused');
  }
  // A request refused before its body was read to the end (413, malformed multipart): close the
  // connection after answering, or a client still sending would wait on a socket nobody reads.
  // HTTP/1.1 only: HTTP/2 has no Connection header (the stream is reset instead, by Node).
  if (!request.raw.complete && request.raw.httpVersionMajor < 2) void reply.header('connection', 'close');
  if (err instanceof ServiceBusyError) void reply.header('retry-after', String(err.retryAfterSeconds));
  const challenge = bearerChallenge(body.error.code, body.error.message, request);
  if (challenge !== undefined) void reply.header('www-authenticate', challenge);
  void reply.code(status).type('application/json').send(body);
}

export function toResponse(err: unknown): { status: number; body: ErrorBody } {
  if (isAppError(err)) {
    const status = httpStatusOf(err.code);
    const message = status >= 500 && err.code !== 'STORAGE_FAILURE' && err.code !== 'INDEX_FAILURE' && err.code !== 'SERVICE_BUSY' && err.code !== 'AUTH_UNAVAILABLE' ? 'Internal server error' : err.message;
    return { status, body: { error: { code: err.code, message } } };
  }
  const fastifyError = err as Partial<FastifyError>;
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code = fastifyError.code ?? 'BAD_REQUEST';
    const message = (code && FASTIFY_MESSAGES[code]) ?? fastifyError.message ?? 'Bad request';
    return { status, body: { error: { code, message } } };
  }
  return { status: 500, body: { error: { code: 'INTERNAL', message: 'Internal server error' } } };
}

/**
 * RFC 6750 §3: a 401 names the Bearer scheme; with a token that was refused, error="invalid_token";
 * a 403 for missing rights, error="insufficient_scope".
 */
function bearerChallenge(code: string, message: string, request: FastifyRequest): string | undefined {
  const description = message.replace(/["\\]/g, "'");
  if (code === 'UNAUTHENTICATED') {
    const sentToken = request.headers.authorization !== undefined || Object.hasOwn((request.query ?? {}) as object, 'access_token');
    return sentToken ? `Bearer realm="filmless-pacs", error="invalid_token", error_description="${description}"` : 'Bearer realm="filmless-pacs"';
  }
  if (code === 'FORBIDDEN') return `Bearer realm="filmless-pacs", error="insufficient_scope", error_description="${description}"`;
  return undefined;
}
