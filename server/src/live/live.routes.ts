/**
 * `GET /live` (WebSocket): the live endoscopy stream (live-session.ts; protocol in live-protocol.ts and
 * docs/api.md). When the server closes, @fastify/websocket closes the sockets (preClose); the app then
 * waits for the sessions' recordings to be stored (live-session-registry.ts) before closing storage.
 *
 * A plain GET (no Upgrade) is answered 426 Upgrade Required with `Upgrade: websocket` (RFC 9110
 * §15.5.22), not 404: the route exists, it only speaks WebSocket. Keepalive: the server pings every
 * HEARTBEAT_MS (RFC 6455 §5.5.2; browsers answer with a pong by themselves) and terminates a connection
 * that did not answer the previous ping, so a dead client's session is stored instead of left open, and
 * an idle connection between sessions is not cut by a proxy's read timeout.
 */
import type { FastifyInstance } from 'fastify';
import { LiveSession, type LiveDeps } from './live-session.js';
import { principalOf } from '../auth/principal.js';
import { routeAccess } from '../http/route-access.js';
import type { LiveSessionRegistry } from './live-session-registry.js';

const requires = routeAccess('live');
/** Ping period; a connection silent (no pong) for one whole period is terminated (close code 1006 at the client). */
export const HEARTBEAT_MS = 30_000;

export interface LiveRoutesOptions extends LiveDeps {
  sessions: LiveSessionRegistry;
}

export async function liveRoutes(app: FastifyInstance, options: LiveRoutesOptions): Promise<void> {
  const { sessions, ...deps } = options;
  // @fastify/websocket is registered by app.ts at the root (maxPayload from the live frame limit).
  app.route({
    method: 'GET',
    url: '/live',
    ...requires('ai', { audit: 'live-session-start', selfRecorded: true, tokenInQuery: true }),
    handler: async (_request, reply) =>
      reply
        .code(426)
        .header('upgrade', 'websocket')
        .header('connection', 'Upgrade')
        .send({ error: { code: 'UPGRADE_REQUIRED', message: 'GET /live is a WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket), see docs/api.md "Live endoscopy"' } }),
    wsHandler: (socket, request) => {
      let alive = true;
      socket.on('pong', () => {
        alive = true;
      });
      const heartbeat = setInterval(() => {
        if (!alive) {
          socket.terminate();
          return;
        }
        alive = false;
        socket.ping();
      }, HEARTBEAT_MS);
      heartbeat.unref();
      const session = new LiveSession(deps, socket, principalOf(request), request.recordLive, request.ip ?? '');
      socket.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
        const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
        session.onMessage(bytes, isBinary);
      });
      socket.on('error', () => {});
      socket.once('close', () => {
        clearInterval(heartbeat);
        const done = session.onClose().catch((err: unknown) => deps.log.error({ err: { message: (err as Error).message } }, 'closing a live session failed'));
        sessions.track(done);
      });
    },
  });
}
