/**
 * `GET /live` (WebSocket): the live endoscopy stream (live-session.ts; protocol in live-protocol.ts and
 * docs/api.md). When the server closes, @fastify/websocket closes the sockets (preClose); the app then
 * waits for the sessions' recordings to be stored (LiveSessionRegistry) before closing storage.
 */
import type { FastifyInstance } from 'fastify';
import { LiveSession, type LiveDeps } from './live-session.js';
import { principalOf, requires } from '../auth/principal.js';
import { liveAuditRecorder } from '../audit/audit-http.js';
import type { AuditTrail } from '../audit/audit-trail.js';

/** Sessions finishing (storing their recording); the app waits for them before closing storage. */
export class LiveSessionRegistry {
  private readonly finishing = new Set<Promise<void>>();
  track(done: Promise<void>): void {
    this.finishing.add(done);
    void done.finally(() => this.finishing.delete(done));
  }
  async drain(): Promise<void> {
    while (this.finishing.size > 0) await Promise.all(this.finishing);
  }
}

export interface LiveRoutesOptions extends LiveDeps {
  sessions: LiveSessionRegistry;
  /** Records each session's start and end (an upgraded WebSocket has no HTTP response to audit). */
  audit?: AuditTrail | undefined;
}

export async function liveRoutes(app: FastifyInstance, options: LiveRoutesOptions): Promise<void> {
  const { sessions, audit, ...deps } = options;
  // @fastify/websocket is registered by app.ts at the root (maxPayload from the live frame limit).
  app.get('/live', { websocket: true, ...requires('ai', { tokenInQuery: true }) }, (socket, request) => {
    const session = new LiveSession(deps, socket, principalOf(request), liveAuditRecorder(audit, request, principalOf(request)));
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
