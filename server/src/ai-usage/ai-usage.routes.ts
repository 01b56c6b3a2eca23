/**
 * "AI in use, measured" (docs/api.md, "AI in use"), under `/ai`, every request audited (interface `ai`):
 *
 * - `POST /ai/findings/{sop}/{item}/verdict` `{"verdict":"right"|"wrong","comment"?}`: a clinician marks
 *   one stored AI finding right (accepted) or wrong (rejected) outside a report. Permission `report`:
 *   the people who write reports judge findings; a `read`-only user (a referring physician) does not
 *   count toward the figures. Audited `ai-verdict` (110111 Procedure Record, C), the AI result named.
 * - `GET /ai/usage?from=YYYYMMDD&to=YYYYMMDD`: per model id + version, findings shown, accepted,
 *   rejected and the acceptance rate beside the model card's test-set precision. Permission `admin`;
 *   audited `ai-read` (no patient data in the answer).
 */
import type { FastifyInstance } from 'fastify';
import { principalOf } from '../auth/principal.js';
import { ErrorBody } from '../contracts/ai.js';
import { FindingParams, UsageQuery, UsageReport, VerdictBody, VerdictResult } from '../contracts/ai-usage.js';
import { routeAccess } from '../http/route-access.js';
import { withSchema } from '../http/route-schema.js';
import type { AiUsageService } from './ai-usage-service.js';

const requires = routeAccess('ai');
const TAGS = ['ai'];
const errors = { 400: ErrorBody, 403: ErrorBody, 404: ErrorBody };

export interface AiUsageRoutesOptions {
  service: AiUsageService;
}

export async function aiUsageRoutes(app: FastifyInstance, options: AiUsageRoutesOptions): Promise<void> {
  const { service } = options;

  app.post<{ Params: FindingParams; Body: VerdictBody }>(
    '/findings/:sop/:item/verdict',
    {
      ...requires('report', { audit: 'ai-verdict' }),
      ...withSchema({
        tags: TAGS,
        summary: 'Mark one stored AI finding right (accepted) or wrong (rejected): counted in the AI usage figures of its model version',
        params: FindingParams,
        body: VerdictBody,
        response: { 200: VerdictResult, ...errors },
      }),
    },
    async (request) => {
      const principal = principalOf(request);
      const result = await service.verdict(request.params.sop, request.params.item, request.body, { subject: principal.subject, ...(principal.name === undefined ? {} : { name: principal.name }) });
      request.auditObjects = [{ study: result.finding.studyInstanceUid, series: result.finding.seriesInstanceUid, instance: result.finding.sopInstanceUid }];
      request.auditDetail = { item: result.finding.item, verdict: request.body.verdict, model: `${result.finding.model.id} ${result.finding.model.version}` };
      return result;
    },
  );

  app.get<{ Querystring: UsageQuery }>(
    '/usage',
    {
      ...requires('admin', { audit: 'ai-read' }),
      ...withSchema({
        tags: TAGS,
        summary: 'AI in use: per model id + version, findings shown, accepted and rejected in a period, the acceptance rate beside the test-set precision',
        querystring: UsageQuery,
        response: { 200: UsageReport, ...errors },
      }),
    },
    async (request) => service.usage(request.query.from, request.query.to),
  );
}
