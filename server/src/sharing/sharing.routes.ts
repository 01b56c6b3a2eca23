/**
 * The share links API (docs/api.md, "Share links"). Staff routes need `share`; opening a link is public
 * (the token is the credential); what a link shows is served to the link's own principal (`link:
 * 'self'`, confined here). Audit (interface `share`): `share-link` (C made, R listed or printed, D
 * revoked), `share-open` (recorded by ShareService: PIN checks and the link's page), the view and the
 * report PDF under the link as the user.
 *
 * - `POST /share/links` (201): a link for a study → its token, URL and PIN, shown once
 * - `GET /share/links?study=`: the study's links, newest first (no tokens)
 * - `DELETE /share/links/{id}`: revoke
 * - `POST /share/links/{id}/slip.pdf?size=A5|A4` `{"token","pin"?}`: the printable result slip
 * - `POST /share/{token}/session` `{"pin"?}`: open a link (the PIN checked) → a session credential,
 *   also set as an HttpOnly cookie; `DELETE /share/session`: forget the cookie
 * - `GET /share/view`, `GET /share/view/reports/{id}/pdf` (with the link's credentials): what it shares
 * - `GET /share/view/download/images.zip`, `…/dicom.zip` (with the link's credentials): share-download.ts
 * - `GET /share/hospital-logo` (public): PACS_HOSPITAL_LOGO_FILE
 * - `GET /s/{token}` (public): the patient page (a consult link: the viewer in link mode), or a clear page when the link is unknown, expired or revoked
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { principalOf, SHARE_BEARER_PREFIX, SHARE_COOKIE } from '../auth/principal.js';
import { ErrorBody } from '../contracts/ai.js';
import {
  CreatedShareLink,
  CreateShareLinkBody,
  OpenShareBody,
  ReportIdParams,
  SharedView,
  ShareLinkIdParams,
  ShareLinkJson,
  ShareLinkList,
  ShareLinkQuery,
  ShareSession,
  SlipBody,
  SlipQuery,
  TokenParams,
  type CreateShareLinkBody as CreateBody,
  type OpenShareBody as OpenBody,
  type SlipBody as SlipBodyType,
} from '../contracts/sharing.js';
import { AppError } from '../errors.js';
import { PUBLIC, routeAccess } from '../http/route-access.js';
import { withSchema } from '../http/route-schema.js';
import { DEFAULT_VIEWER_DIR } from '../http/viewer-static.js';
import type { Archive } from '../archive/archive.js';
import { shareDownloadRoutes } from './share-download.js';
import { linkPage } from './share-pages.js';
import { linkPrincipal, PinLockedError, type ShareService } from './share-service.js';

const requires = routeAccess('share');
const TAGS = ['share links'];
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 410: ErrorBody, 429: ErrorBody };

export interface SharingRoutesOptions {
  service: ShareService;
  publicBaseUrl: string;
  dicomwebPrefix: string;
  /** The built viewer (its `share.html` is the patient page); default viewer/dist or PACS_VIEWER_DIR. */
  viewerDir?: string;
  /** The archive, for the downloads of what a link shares (share-download.ts); without it there are none. */
  archive?: Archive;
}

export async function sharingRoutes(app: FastifyInstance, options: SharingRoutesOptions): Promise<void> {
  const { service } = options;
  const origin = (request: FastifyRequest) => (options.publicBaseUrl !== '' ? options.publicBaseUrl : `${request.protocol}://${request.host}`);
  const linkUrl = (request: FastifyRequest, token: string) => `${origin(request)}/s/${token}`;
  const viewerDir = options.viewerDir ?? process.env['PACS_VIEWER_DIR'] ?? DEFAULT_VIEWER_DIR;
  const context = (request: FastifyRequest) => ({ clientAddress: request.ip ?? '', route: `${request.method} ${request.routeOptions.url ?? ''}` });
  const actor = (request: FastifyRequest) => {
    const principal = principalOf(request);
    return { subject: principal.subject, ...(principal.name === undefined ? {} : { name: principal.name }) };
  };

  app.post<{ Body: CreateBody }>(
    '/share/links',
    {
      ...requires('share', { audit: 'share-link', actionCode: 'C' }),
      ...withSchema({ tags: TAGS, summary: 'Make a share link for a study (patient result slip or consult)', body: CreateShareLinkBody, response: { 201: CreatedShareLink, ...errors } }),
    },
    async (request, reply) => {
      const made = await service.create(request.body, actor(request));
      request.auditObjects = [{ study: made.link.studyInstanceUid }];
      request.auditDetail = { linkId: made.link.id, purpose: made.link.purpose, pin: made.pin !== null };
      return reply.code(201).header('cache-control', 'no-store').send({
        link: service.json(made.link),
        token: made.token,
        url: linkUrl(request, made.token),
        pin: made.pin,
        slip: `${origin(request)}/share/links/${made.link.id}/slip.pdf`,
      });
    },
  );

  app.get<{ Querystring: { study: string } }>(
    '/share/links',
    {
      ...requires('share', { audit: 'share-link', actionCode: 'R' }),
      ...withSchema({ tags: TAGS, summary: "A study's share links", querystring: ShareLinkQuery, response: { 200: ShareLinkList, ...errors } }),
    },
    async (request) => {
      request.auditObjects = [{ study: request.query.study }];
      return { links: (await service.list(request.query.study)).map((link) => service.json(link)) };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/share/links/:id',
    {
      ...requires('share', { audit: 'share-link', actionCode: 'D' }),
      ...withSchema({ tags: TAGS, summary: 'Revoke a share link', params: ShareLinkIdParams, response: { 200: ShareLinkJson, ...errors } }),
    },
    async (request) => {
      const link = await service.revoke(request.params.id, actor(request));
      request.auditObjects = [{ study: link.studyInstanceUid }];
      request.auditDetail = { linkId: link.id };
      return service.json(link);
    },
  );

  app.post<{ Params: { id: string }; Querystring: { size?: 'A5' | 'A4' }; Body: SlipBodyType }>(
    '/share/links/:id/slip.pdf',
    {
      ...requires('share', { audit: 'share-link', actionCode: 'R' }),
      ...withSchema({ tags: TAGS, summary: 'The printable result slip (PDF) of a link just made', params: ShareLinkIdParams, querystring: SlipQuery, body: SlipBody, response: errors }),
    },
    async (request, reply) => {
      const link = await service.get(request.params.id);
      request.auditObjects = [{ study: link.studyInstanceUid }];
      request.auditDetail = { linkId: link.id, slip: request.query.size ?? 'A5' };
      const pdf = await service.slip(link.id, request.body.token, request.body.pin, request.query.size ?? 'A5', linkUrl(request, request.body.token));
      return reply.type('application/pdf').header('cache-control', 'private, no-store').header('content-disposition', 'inline; filename="result-slip.pdf"').send(pdf);
    },
  );

  // ------------------------------------------------------------------------------------- opening a link

  app.post<{ Params: { token: string }; Body: OpenBody | undefined }>(
    '/share/:token/session',
    {
      ...PUBLIC,
      ...withSchema({ tags: TAGS, summary: 'Open a share link (its PIN checked): a session credential, also set as a cookie', params: TokenParams, body: OpenShareBody, response: { 200: ShareSession, ...errors } }),
    },
    async (request, reply) => {
      try {
        const opened = await service.open(request.params.token, request.body?.pin, context(request));
        const maxAge = Math.max(1, Math.floor((opened.expiresAt - Date.now()) / 1000));
        const secure = request.protocol === 'https' || options.publicBaseUrl.startsWith('https:') ? '; Secure' : '';
        const view = await service.view(linkPrincipal(opened.link).scope!, opened.link, origin(request), options.dicomwebPrefix);
        return reply
          .header('cache-control', 'no-store')
          .header('set-cookie', `${SHARE_COOKIE}=${opened.credential}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure}`)
          .send({ accessToken: `${SHARE_BEARER_PREFIX}${opened.credential}`, tokenType: 'Bearer', expiresAt: new Date(opened.expiresAt).toISOString(), view });
      } catch (err) {
        if (err instanceof PinLockedError) void reply.header('retry-after', String(err.retryAfterSeconds));
        throw err;
      }
    },
  );

  app.delete('/share/session', PUBLIC, async (_request, reply) =>
    reply.header('set-cookie', `${SHARE_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`).code(204).send(),
  );

  // ------------------------------------------------------------------------------- what a link shows

  const scopeOf = (request: FastifyRequest) => {
    const scope = principalOf(request).scope;
    if (scope === undefined) throw new AppError('NOT_FOUND', 'These credentials are not a share link');
    return scope;
  };

  app.get(
    '/share/view',
    {
      ...requires('read', { audit: 'retrieve', link: 'self' }),
      ...withSchema({ tags: TAGS, summary: 'What the share link of these credentials shows', response: { 200: SharedView, ...errors } }),
    },
    async (request, reply) => {
      const scope = scopeOf(request);
      request.auditObjects = [{ study: scope.study }];
      const link = await service.get(scope.linkId);
      return reply.header('cache-control', 'private, no-store').send(await service.view(scope, link, origin(request), options.dicomwebPrefix));
    },
  );

  app.get<{ Params: { id: string } }>(
    '/share/view/reports/:id/pdf',
    {
      ...requires('read', { audit: 'report-export', link: 'self' }),
      ...withSchema({ tags: TAGS, summary: "The PDF of a signed report of the link's study", params: ReportIdParams, response: errors }),
    },
    async (request, reply) => {
      const scope = scopeOf(request);
      request.auditObjects = [{ study: scope.study }];
      request.auditDetail = { reportId: request.params.id };
      const pdf = await service.reportPdf(scope, request.params.id);
      return reply.type('application/pdf').header('cache-control', 'private, no-store').send(pdf);
    },
  );

  // GET /share/view/download/images.zip and dicom.zip: what the link shares as a ZIP (share-download.ts).
  if (options.archive !== undefined) await app.register(shareDownloadRoutes, { service, archive: options.archive });

  app.get('/share/hospital-logo', PUBLIC, async (_request, reply) => {
    const logo = await service.hospitalLogo();
    if (logo === undefined) throw new AppError('NOT_FOUND', 'No hospital logo is configured');
    return reply.type(logo.type).header('cache-control', 'public, max-age=3600').send(logo.bytes);
  });

  // The link's own URL: the patient page (the viewer's share.html), or a clear page of why not.
  app.get<{ Params: { token: string } }>('/s/:token', PUBLIC, async (request, reply) => {
    const page = (status: number, html: string) => reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').header('x-robots-tag', 'noindex').send(html);
    const token = request.params.token;
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return page(404, linkPage('unknown', service.config.hospitalName));
    const { state, purpose } = await service.pageState(token, context(request));
    if (state !== 'active') return page(state === 'unknown' ? 404 : 410, linkPage(state, service.config.hospitalName));
    // A consult link opens the full viewer (stacks and slides) in its link mode (viewer/src/consults/link-open.ts).
    if (purpose === 'consult') return page(200, await consultViewerPage(viewerDir, service.config.hospitalName));
    return page(200, await patientPage(viewerDir, service.config.hospitalName));
  });
}

let shareHtml: { file: string; html: string } | undefined;

/** The built patient page (viewer/dist/share.html), or a page saying it is not built. */
async function patientPage(viewerDir: string, hospitalName: string): Promise<string> {
  const file = path.join(viewerDir, 'share.html');
  if (shareHtml?.file === file) return shareHtml.html;
  if (!existsSync(file)) return linkPage('not-built', hospitalName);
  shareHtml = { file, html: await readFile(file, 'utf8') };
  return shareHtml.html;
}

let viewerHtml: { file: string; html: string } | undefined;

/**
 * The viewer's index.html for a consult link: served at `/s/{token}`, where relative URLs resolve under
 * `/s/`. The built page's own files are absolute (Vite `base: '/'`); its one relative URL, the preload
 * of the sign-in settings (`api`), is dropped: link mode does not sign in.
 */
async function consultViewerPage(viewerDir: string, hospitalName: string): Promise<string> {
  const file = path.join(viewerDir, 'index.html');
  if (viewerHtml?.file === file) return viewerHtml.html;
  if (!existsSync(file)) return linkPage('not-built', hospitalName);
  const html = (await readFile(file, 'utf8')).replace(/<link\s+rel="preload"\s+href="api"[^>]*>\s*/, '');
  viewerHtml = { file, html };
  return html;
}
