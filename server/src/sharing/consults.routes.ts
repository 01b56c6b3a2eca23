/**
 * The consults API (docs/api.md, "Consults"). Asking needs `share`; reading and answering need `read`
 * for a signed-in user (the requester or the named specialist) or the consult's own link (`link:
 * 'self'`: the service checks the consult is the link's). Audit (interface `consults`):
 * `consult-request` (the original and the copy's study), `consult-read`, `consult-answer`.
 *
 * - `POST /consults` (201): ask → the consult, and the consult link's URL and token (shown once)
 * - `GET /consults?role=requester|specialist&study=`: yours, newest first
 * - `GET /consults/{id}`: one (the specialist's first read marks it viewed)
 * - `POST /consults/{id}/answer`: the specialist's answer `{"text","regions"?}`
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { principalOf } from '../auth/principal.js';
import { ErrorBody } from '../contracts/ai.js';
import {
  AnswerConsultBody,
  ConsultIdParams,
  ConsultJson,
  ConsultList,
  ConsultQuery,
  CreateConsultBody,
  CreatedConsult,
  type AnswerConsultBody as AnswerBody,
  type CreateConsultBody as CreateBody,
} from '../contracts/sharing.js';
import { routeAccess } from '../http/route-access.js';
import { withSchema } from '../http/route-schema.js';
import type { ConsultService } from './consult-service.js';

const requires = routeAccess('consults');
const TAGS = ['consults'];
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 410: ErrorBody, 422: ErrorBody };

export interface ConsultsRoutesOptions {
  service: ConsultService;
  publicBaseUrl: string;
}

export async function consultsRoutes(app: FastifyInstance, options: ConsultsRoutesOptions): Promise<void> {
  const { service } = options;
  const origin = (request: FastifyRequest) => (options.publicBaseUrl !== '' ? options.publicBaseUrl : `${request.protocol}://${request.host}`);

  app.post<{ Body: CreateBody }>(
    '/consults',
    {
      ...requires('share', { audit: 'consult-request' }),
      ...withSchema({ tags: TAGS, summary: 'Ask a specialist for a second opinion on a study (a de-identified copy by default)', body: CreateConsultBody, response: { 201: CreatedConsult, ...errors } }),
    },
    async (request, reply) => {
      const principal = principalOf(request);
      request.auditObjects = [{ study: request.body.studyInstanceUid }];
      const made = await service.create(request.body, { subject: principal.subject, ...(principal.name === undefined ? {} : { name: principal.name }) });
      request.auditObjects = [{ study: made.consult.originalStudyInstanceUid }, ...(made.copyStudy === made.consult.originalStudyInstanceUid ? [] : [{ study: made.copyStudy }])];
      request.auditDetail = { consultId: made.consult.id, linkId: made.consult.linkId, deidentified: made.consult.deidentified };
      return reply
        .code(201)
        .header('cache-control', 'no-store')
        .header('location', `${origin(request)}/consults/${made.consult.id}`)
        .send({
          consult: await service.json(made.consult, 'requester'),
          link: { url: `${origin(request)}/s/${made.token}`, token: made.token, expiresAt: new Date(made.expiresAt).toISOString() },
        });
    },
  );

  app.get<{ Querystring: { role?: 'requester' | 'specialist'; study?: string } }>(
    '/consults',
    {
      ...requires('read', { audit: 'consult-read' }),
      ...withSchema({ tags: TAGS, summary: 'The consults you asked for, or that were asked of you', querystring: ConsultQuery, response: { 200: ConsultList, ...errors } }),
    },
    async (request) => {
      const consults = await service.list(principalOf(request), request.query.role ?? 'requester', request.query.study);
      request.auditObjects = [...new Set(consults.map((c) => c.originalStudyInstanceUid ?? c.caseStudyInstanceUid))].map((study) => ({ study }));
      return { consults };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/consults/:id',
    {
      ...requires('read', { audit: 'consult-read', link: 'self' }),
      ...withSchema({ tags: TAGS, summary: 'One consult (its requester, its specialist, or its link)', params: ConsultIdParams, response: { 200: ConsultJson, ...errors } }),
    },
    async (request, reply) => {
      const consult = await service.read(request.params.id, principalOf(request));
      request.auditObjects = [{ study: consult.originalStudyInstanceUid ?? consult.caseStudyInstanceUid }];
      request.auditDetail = { consultId: consult.id };
      return reply.header('cache-control', 'private, no-store').send(consult);
    },
  );

  app.post<{ Params: { id: string }; Body: AnswerBody }>(
    '/consults/:id/answer',
    {
      ...requires('read', { audit: 'consult-answer', link: 'self' }),
      ...withSchema({ tags: TAGS, summary: "The specialist's answer: a text and regions on the case's images", params: ConsultIdParams, body: AnswerConsultBody, response: { 200: ConsultJson, ...errors } }),
    },
    async (request) => {
      const consult = await service.answer(request.params.id, request.body, principalOf(request));
      request.auditObjects = [{ study: consult.caseStudyInstanceUid }];
      request.auditDetail = { consultId: consult.id };
      return consult;
    },
  );
}
