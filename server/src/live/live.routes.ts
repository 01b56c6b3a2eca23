/**
 * `GET /live` (WebSocket): the live endoscopy stream (live-session.ts; protocol in live-protocol.ts and
 * docs/api.md). When the server closes, @fastify/websocket closes the sockets (preClose); the app then
 * waits for the sessions' recordings to be stored (live-session-registry.ts) before closing storage.
 */
import type { FastifyInstance } from 'fastify';
import { LiveSession, type LiveDeps } from './live-session.js';
import { principalOf } from '../auth/principal.js';
import { routeAccess } from '../http/route-access.js';
import type { LiveSessionRegistry } from './live-session-registry.js';

const requires = routeAccess('live');

export interface LiveRoutesOptions extends LiveDeps {
  sessions: LiveSessionRegistry;
}

export async function liveRoutes(app: FastifyInstance, options: LiveRoutesOptions): Promise<void> {
  const { sessions, ...deps } = options;
  // @fastify/websocket is registered by app.ts at the root (maxPayload from the live frame limit).
  app.get('/live', { websocket: true, ...requires('ai', { audit: 'live-session-start', selfRecorded: true, tokenInQuery: true }) }, (socket, request) => {
    const session = new LiveSession(deps, socket, principalOf(request), request.recordLive, request.ip ?? '');
    socket.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      session.onMessage(bytes, isBinary);
    });
    socket.on('error', () => {});
    socket.once('close', () => {
      const done = session.onClose().catch((err: unknown) => deps.log.error({ err: { message: (err as Error).message } }, 'closing a live session failed'));
      sessions.track(done);
    });
  });
}
