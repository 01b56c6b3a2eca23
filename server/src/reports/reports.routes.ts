/**
 * The reports REST API (docs/api.md, "Reports (`/reports`)"). Writing drafts needs the `report`
 * permission, signing `sign`, reading `read`. Every request is audited (interface `reports`):
 *
 * - `POST /reports` (201 + Location): a draft for a study (`report-write`, C)
 * - `GET /reports/{id}`, `GET /reports/{id}/versions/{n}` (`report-read`)
 * - `PUT /reports/{id}`: replace the draft's content (`report-write`, U)
 * - `POST /reports/{id}/sign`: finalise; the SR and the Encapsulated PDF are stored in the study (`report-sign`)
 * - `POST /reports/{id}/amend` (201): the next version, a draft copied from the final one (`report-write`, U)
 * - `GET /reports/{id}/pdf`, `GET /reports/{id}/versions/{n}/pdf`: the PDF for print or the patient (`report-export`)
 * - `GET /reports/studies/{study}`: the study's reports (`report-read`)
 * - `GET /reports/studies/{study}/ai-findings`: the AI findings of its stored detection SRs (`retrieve`)
 * - `GET /reports/quality?from=YYYYMMDD&to=YYYYMMDD[&endoscopist=…]`: endoscopy quality figures (`query`)
 */
import type { FastifyInstance, FastifyRequest, FastifySchemaValidationError } from 'fastify';
import { principalOf } from '../auth/principal.js';
import { ErrorBody } from '../contracts/ai.js';
import {
  AiFindingList,
  AmendReportBody,
  CreateReportBody,
  QualityQuery,
  QualityReport,
  ReportIdParams,
  ReportJson,
  ReportList,
  ReportVersionJson,
  ReportVersionParams,
  SignReportBody,
  StudyParams,
  UpdateReportBody,
  type ReportJson as ReportJsonType,
  type ReportStatus,
  type ReportVersionJson as ReportVersionJsonType,
} from '../contracts/reports.js';
import { AppError } from '../errors.js';
import { dicomwebBaseUrl } from '../http/base-url.js';
import { routeAccess } from '../http/route-access.js';
import { withSchema, type RouteSchema } from '../http/route-schema.js';
import { summaryOf } from './report-content.js';
import type { ReportService, ReportView } from './report-service.js';
import { COMPREHENSIVE_SR } from './report-sr.js';
import type { StoredVersion } from './report-store.js';
import { ENCAPSULATED_PDF } from '../dicom/encapsulated-pdf.js';

const requires = routeAccess('reports');
const TAGS = ['reports'];
const errors = { 400: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody };

export interface ReportsRoutesOptions {
  service: ReportService;
  publicBaseUrl: string;
  dicomwebPrefix: string;
}

type ValidationError = FastifySchemaValidationError & { parentSchema?: { description?: string; properties?: Record<string, { description?: string }> } };

/** `/content/lesions/0/sizeMm` → `content.lesions[0].sizeMm`. */
function fieldPath(instancePath: string, missing?: string): string {
  const parts = instancePath.split('/').filter((p) => p !== '');
  if (missing !== undefined) parts.push(missing);
  return parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/**
 * Route schema whose body errors name the nested field (`content.lesions[0].sizeMm`) with that field's
 * description: report content is deep, the top-level field alone would not say what is wrong.
 */
function withNestedSchema(schema: RouteSchema) {
  const base = withSchema(schema);
  return {
    ...base,
    schemaErrorFormatter: (validation: FastifySchemaValidationError[], dataVar: 'body' | 'headers' | 'params' | 'querystring') => {
      const error = validation[0] as ValidationError | undefined;
      if (dataVar !== 'body' || error === undefined || error.instancePath.split('/').filter((p) => p !== '').length < 2) return base.schemaErrorFormatter(validation, dataVar);
      const params = error.params as Record<string, unknown>;
      if (error.keyword === 'required') {
        const missing = String(params['missingProperty']);
        const why = error.parentSchema?.properties?.[missing]?.description ?? 'is required';
        return new AppError('BAD_REQUEST', `Body field "${fieldPath(error.instancePath, missing)}": is required (${why})`);
      }
      if (error.keyword === 'additionalProperties') {
        return new AppError('BAD_REQUEST', `Body field "${fieldPath(error.instancePath, String(params['additionalProperty']))}": is not a field here`);
      }
      const why = error.parentSchema?.description ?? error.message ?? 'is not valid';
      return new AppError('BAD_REQUEST', `Body field "${fieldPath(error.instancePath)}": ${why}`);
    },
  };
}

export async function reportsRoutes(app: FastifyInstance, options: ReportsRoutesOptions): Promise<void> {
  const { service } = options;
  const origin = (request: FastifyRequest) => (options.publicBaseUrl !== '' ? options.publicBaseUrl : `${request.protocol}://${request.host}`);

  const versionJson = (request: FastifyRequest, view: ReportView, version: StoredVersion): ReportVersionJsonType => {
    const { report } = view;
    const wado = (series: string, sop: string) => `${dicomwebBaseUrl(request, options.publicBaseUrl, options.dicomwebPrefix)}/studies/${report.studyInstanceUid}/series/${series}/instances/${sop}`;
    const iso = (ms: number) => new Date(ms).toISOString();
    const d = version.dicom;
    return {
      reportId: report.id,
      version: version.version,
      status: version.status,
      kind: report.kind,
      studyInstanceUid: report.studyInstanceUid,
      revision: version.revision,
      content: version.content,
      summary: summaryOf(version.content),
      createdAt: iso(version.createdAt),
      createdBy: version.createdBy,
      updatedAt: iso(version.updatedAt),
      updatedBy: version.updatedBy,
      amends: version.amends,
      amendmentReason: version.amendmentReason,
      signature: version.signature === null ? null : { signer: version.signature.signer, signedAt: iso(version.signature.signedAt), contentSha256: version.signature.contentSha256 },
      supersededAt: version.supersededAt === null ? null : iso(version.supersededAt),
      supersededBy: version.supersededBy,
      dicom:
        d === null
          ? null
          : {
              sr: { seriesInstanceUid: d.srSeriesInstanceUid, sopInstanceUid: d.srSopInstanceUid, sopClassUid: COMPREHENSIVE_SR, url: wado(d.srSeriesInstanceUid, d.srSopInstanceUid) },
              pdf: { seriesInstanceUid: d.pdfSeriesInstanceUid, sopInstanceUid: d.pdfSopInstanceUid, sopClassUid: ENCAPSULATED_PDF, url: wado(d.pdfSeriesInstanceUid, d.pdfSopInstanceUid) },
              stored: d.storedAt !== null,
            },
      pdf: `${origin(request)}/reports/${encodeURIComponent(report.id)}/versions/${version.version}/pdf`,
    };
  };

  const reportJson = (request: FastifyRequest, view: ReportView): ReportJsonType => {
    const { report, versions } = view;
    const latest = versions.at(-1)!;
    const inForce = versions.filter((v) => v.status === 'final').at(-1);
    const status: ReportStatus = inForce === undefined ? 'draft' : inForce.version === 1 ? 'final' : 'amended';
    return {
      id: report.id,
      studyInstanceUid: report.studyInstanceUid,
      kind: report.kind,
      status,
      procedureDate: report.procedureDate,
      createdAt: new Date(report.createdAt).toISOString(),
      createdBy: report.createdBy,
      signedVersion: inForce?.version ?? null,
      latestVersion: latest.version,
      amendmentInProgress: inForce !== undefined && latest.status === 'draft',
      versions: versions.map((v) => ({
        version: v.version,
        status: v.status,
        createdAt: new Date(v.createdAt).toISOString(),
        signature: v.signature === null ? null : { signer: v.signature.signer, signedAt: new Date(v.signature.signedAt).toISOString(), contentSha256: v.signature.contentSha256 },
        supersededAt: v.supersededAt === null ? null : new Date(v.supersededAt).toISOString(),
      })),
      version: versionJson(request, view, latest),
    };
  };

  const audited = (request: FastifyRequest, view: ReportView, version?: StoredVersion) => {
    const v = version ?? view.versions.at(-1)!;
    request.auditObjects = [{ study: view.report.studyInstanceUid }];
    request.auditDetail = { reportId: view.report.id, kind: view.report.kind, version: v.version, versionStatus: v.status };
  };
  const actor = (request: FastifyRequest) => {
    const principal = principalOf(request);
    return { subject: principal.subject, ...(principal.name === undefined ? {} : { name: principal.name }), permissions: principal.permissions };
  };
  const location = (request: FastifyRequest, id: string) => `${origin(request)}/reports/${encodeURIComponent(id)}`;

  app.post<{ Body: CreateReportBody }>(
    '/',
    {
      ...requires('report', { audit: 'report-write', actionCode: 'C' }),
      ...withNestedSchema({ tags: TAGS, summary: 'Create a draft report for a stored study (201 + Location)', body: CreateReportBody, response: { 201: ReportJson, ...errors } }),
    },
    async (request, reply) => {
      request.auditObjects = [{ study: request.body.studyInstanceUid }];
      const view = await service.create(request.body, actor(request));
      audited(request, view);
      void reply.code(201).header('location', location(request, view.report.id));
      return reportJson(request, view);
    },
  );

  app.get<{ Querystring: QualityQuery }>(
    '/quality',
    {
      ...requires('report', { audit: 'query', queryLevel: 'report-quality' }),
      ...withSchema({ tags: TAGS, summary: 'Endoscopy quality figures per endoscopist and period, against the ESGE 2017 targets', querystring: QualityQuery, response: { 200: QualityReport, ...errors } }),
    },
    async (request) => service.quality(request.query.from, request.query.to, request.query.endoscopist),
  );

  app.get<{ Params: { study: string } }>(
    '/studies/:study',
    {
      ...requires('read', { audit: 'report-read' }),
      ...withSchema({ tags: TAGS, summary: "A study's reports with their latest versions", params: StudyParams, response: { 200: ReportList, ...errors } }),
    },
    async (request) => {
      const views = await service.ofStudy(request.params.study);
      request.auditDetail = { reports: views.length };
      return { reports: views.map((view) => reportJson(request, view)) };
    },
  );

  app.get<{ Params: { study: string } }>(
    '/studies/:study/ai-findings',
    {
      ...requires('read', { audit: 'retrieve' }),
      ...withSchema({ tags: TAGS, summary: "The AI findings of the study's stored detection reports, to accept or reject in an endoscopy report", params: StudyParams, response: { 200: AiFindingList, ...errors } }),
    },
    async (request) => {
      const findings = await service.aiFindings(request.params.study);
      const reports = [...new Map(findings.map((f) => [f.report.sopInstanceUid, f.report])).values()];
      request.auditObjects = reports.map((r) => ({ study: request.params.study, series: r.seriesInstanceUid, instance: r.sopInstanceUid }));
      return { findings };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/:id',
    {
      ...requires('read', { audit: 'report-read' }),
      ...withSchema({ tags: TAGS, summary: 'A report with its latest version and the list of its versions', params: ReportIdParams, response: { 200: ReportJson, ...errors } }),
    },
    async (request) => {
      const view = await service.get(request.params.id);
      audited(request, view);
      return reportJson(request, view);
    },
  );

  app.put<{ Params: { id: string }; Body: UpdateReportBody }>(
    '/:id',
    {
      ...requires('report', { audit: 'report-write', actionCode: 'U' }),
      ...withNestedSchema({ tags: TAGS, summary: "Replace the draft's content", params: ReportIdParams, body: UpdateReportBody, response: { 200: ReportJson, ...errors } }),
    },
    async (request) => {
      const view = await service.update(request.params.id, request.body.content, request.body.revision, actor(request));
      audited(request, view);
      return reportJson(request, view);
    },
  );

  app.post<{ Params: { id: string }; Body: SignReportBody }>(
    '/:id/sign',
    {
      ...requires('sign', { audit: 'report-sign' }),
      ...withSchema({ tags: TAGS, summary: 'Sign the draft: final, stored in the study as a Comprehensive SR and an Encapsulated PDF', params: ReportIdParams, body: SignReportBody, response: { 200: ReportJson, ...errors } }),
    },
    async (request) => {
      const view = await service.sign(request.params.id, request.body?.revision, actor(request));
      const signed = view.versions.filter((v) => v.status === 'final').at(-1) ?? view.versions.at(-1)!;
      audited(request, view, signed);
      const d = signed.dicom;
      if (d !== null) {
        request.auditObjects = [
          { study: view.report.studyInstanceUid, series: d.srSeriesInstanceUid, instance: d.srSopInstanceUid, sopClass: COMPREHENSIVE_SR },
          { study: view.report.studyInstanceUid, series: d.pdfSeriesInstanceUid, instance: d.pdfSopInstanceUid, sopClass: ENCAPSULATED_PDF },
        ];
        if (signed.signature !== null) request.auditDetail = { ...request.auditDetail, contentSha256: signed.signature.contentSha256 };
      }
      return reportJson(request, view);
    },
  );

  app.post<{ Params: { id: string }; Body: AmendReportBody }>(
    '/:id/amend',
    {
      ...requires('report', { audit: 'report-write', actionCode: 'U' }),
      ...withSchema({ tags: TAGS, summary: 'Amend a signed report: the next version, a draft copied from the final one (201)', params: ReportIdParams, body: AmendReportBody, response: { 201: ReportJson, ...errors } }),
    },
    async (request, reply) => {
      const view = await service.amend(request.params.id, request.body.reason, actor(request));
      audited(request, view);
      void reply.code(201);
      return reportJson(request, view);
    },
  );

  app.get<{ Params: { id: string; version: number } }>(
    '/:id/versions/:version',
    {
      ...requires('read', { audit: 'report-read' }),
      ...withSchema({ tags: TAGS, summary: 'One version of a report (superseded ones stay readable)', params: ReportVersionParams, response: { 200: ReportVersionJson, ...errors } }),
    },
    async (request) => {
      const { report, version } = await service.version(request.params.id, request.params.version);
      const view = { report, versions: [version] };
      audited(request, view, version);
      return versionJson(request, view, version);
    },
  );

  const sendPdf = async (request: FastifyRequest<{ Params: { id: string; version?: number } }>, reply: import('fastify').FastifyReply) => {
    const { pdf, version } = await service.pdf(request.params.id, request.params.version);
    const view = await service.get(request.params.id);
    audited(request, view, version);
    return reply
      .type('application/pdf')
      .header('content-disposition', `inline; filename="report-${version.version}.pdf"`)
      .header('cache-control', 'private, no-store')
      .send(pdf);
  };

  app.get<{ Params: { id: string } }>(
    '/:id/pdf',
    { ...requires('read', { audit: 'report-export' }), ...withSchema({ tags: TAGS, summary: 'The report as PDF: the version in force, else the draft (marked as such)', params: ReportIdParams }) },
    (request, reply) => sendPdf(request, reply),
  );

  app.get<{ Params: { id: string; version: number } }>(
    '/:id/versions/:version/pdf',
    { ...requires('read', { audit: 'report-export' }), ...withSchema({ tags: TAGS, summary: 'One version as PDF', params: ReportVersionParams }) },
    (request, reply) => sendPdf(request, reply),
  );
}
