/**
 * Logger options. Patient data must never reach the logs: QIDO query strings carry patient names and
 * IDs (PatientName=DOE*), so requests are logged by path only, and headers are not logged at all.
 */
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.js';

export function loggerOptions(config: Pick<Config, 'logLevel'>) {
  return {
    level: config.logLevel,
    serializers: {
      req(request: FastifyRequest) {
        return { method: request.method, path: pathOnly(request.url), remoteAddress: request.ip };
      },
    },
  };
}

/**
 * The URL without its query string. Path segments are UIDs, which identify no person; the exceptions
 * are replaced: a patient's issuer and ID in `/his/patients/{issuer}/{id}` (the orders API), and a share
 * link's token in `/s/{token}` and `/share/{token}/…` (a credential: sharing/).
 */
export function pathOnly(url: string): string {
  const question = url.indexOf('?');
  const path = question === -1 ? url : url.slice(0, question);
  return path
    .replace(/^\/his\/patients\/(?!merge(?:\/|$))[^/]*(?:\/[^/]*)?/, '/his/patients/{issuer}/{id}')
    .replace(/^\/s\/[^/]+/, '/s/{token}')
    .replace(/^\/share\/(?!(?:links|view|hospital-logo)(?:\/|$))[^/]+/, '/share/{token}');
}
