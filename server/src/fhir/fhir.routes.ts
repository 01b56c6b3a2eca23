/**
 * The FHIR R4 API (docs/api.md, "FHIR R4 (`/fhir`)"): JSON (`application/fhir+json`), read and search of
 * Patient, ImagingStudy and DiagnosticReport over the FhirService it is given, the CapabilityStatement at
 * `/fhir/metadata`. Same sign-in and audit as the rest: reads need `read` and are recorded as `retrieve`
 * (interface `fhir`), searches as `query` with the resource type as level. `metadata` is public (it
 * holds no patient data, and FHIR clients read it before they sign in). Every error is an
 * OperationOutcome with the archive's status for it.
 *
 * FHIR specifies these routes, so they declare no TypeBox schema and stay out of the OpenAPI document,
 * like DICOMweb's.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CapabilityStatement, CapabilityStatementRestResource, FhirResource, Resource } from 'fhir/r4.js';
import { AppError, NotFoundError } from '../errors.js';
import { PUBLIC, routeAccess, type AuditObject } from '../http/route-access.js';
import { DIAGNOSTIC_REPORT_SEARCH, IMAGING_STUDY_SEARCH, PATIENT_SEARCH, type BaseUrls, type FhirService } from './fhir-service.js';
import { checkFormat, FHIR_JSON, outcomeOf, searchsetBundle } from './fhir-http.js';
import { pageOf, type RawQuery } from './fhir-search.js';

const requires = routeAccess('fhir');

export interface FhirRoutesOptions {
  service: FhirService;
  /** PACS_PUBLIC_BASE_URL ('' : from the request). */
  publicBaseUrl: string;
  dicomwebPrefix: string;
  defaultCount: number;
  maxCount: number;
  /** The archive's version for CapabilityStatement.software (left out when unknown). */
  softwareVersion?: string;
}

type ResourceType = 'Patient' | 'ImagingStudy' | 'DiagnosticReport';

const SEARCH_PARAMS: Record<ResourceType, Array<{ name: string; type: 'token' | 'reference' | 'date'; documentation: string }>> = {
  Patient: [{ name: 'identifier', type: 'token', documentation: 'system|value: the hospital record number, the national ID or another identifier with its issuer system' }],
  ImagingStudy: [
    { name: 'patient', type: 'reference', documentation: 'Patient/{id}' },
    { name: 'subject', type: 'reference', documentation: 'Patient/{id}' },
    { name: 'identifier', type: 'token', documentation: 'urn:dicom:uid|urn:oid:{StudyInstanceUID}, or the accession number ([accession system]|value)' },
    { name: 'started', type: 'date', documentation: 'the study date, matched at day precision (prefixes eq, ne, gt, lt, ge, le, sa, eb)' },
    { name: '_lastUpdated', type: 'date', documentation: 'when the newest instance of the study was stored' },
  ],
  DiagnosticReport: [
    { name: 'patient', type: 'reference', documentation: 'Patient/{id} (a search needs patient, subject, identifier or _id)' },
    { name: 'subject', type: 'reference', documentation: 'Patient/{id}' },
    { name: 'identifier', type: 'token', documentation: 'the report id (report id system|id)' },
    { name: 'date', type: 'date', documentation: 'effective: the study date, day precision' },
    { name: 'issued', type: 'date', documentation: 'when the version in force was signed' },
    { name: 'status', type: 'token', documentation: 'final or amended' },
    { name: 'category', type: 'token', documentation: 'v2-0074: GE, SP, RAD' },
    { name: 'code', type: 'token', documentation: 'LOINC: 18746-8, 11526-1, 18748-4' },
    { name: '_lastUpdated', type: 'date', documentation: 'when the version in force was signed' },
  ],
};

export async function fhirRoutes(app: FastifyInstance, options: FhirRoutesOptions): Promise<void> {
  const { service } = options;
  const started = new Date().toISOString();

  // POST [type]/_search sends the parameters as a form (FHIR R4 §3.1.1.3).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 65_536 }, (_request, body, done) => {
    const parsed: RawQuery = {};
    for (const [key, value] of new URLSearchParams(body as string)) {
      const existing = parsed[key];
      parsed[key] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
    }
    done(null, parsed);
  });

  // Every error of these routes (refusals of access control included) is an OperationOutcome.
  app.setErrorHandler((err, request, reply) => {
    const { status, outcome } = outcomeOf(err);
    if (status >= 500) request.log.error({ err: { type: (err as Error).name, code: (err as { code?: string }).code, message: (err as Error).message } }, 'FHIR request failed');
    else request.log.info({ status, code: (err as { code?: string }).code }, 'FHIR request refused');
    if (status === 401) void reply.header('www-authenticate', 'Bearer realm="filmless-pacs"');
    if (status === 403) void reply.header('www-authenticate', 'Bearer realm="filmless-pacs", error="insufficient_scope"');
    if (status === 503) void reply.header('retry-after', '5');
    void reply.code(status).type(FHIR_JSON).send(JSON.stringify(outcome));
  });

  const urlsOf = (request: FastifyRequest): BaseUrls => {
    const base = options.publicBaseUrl !== '' ? options.publicBaseUrl : `${request.protocol}://${request.host}`;
    return { base, dicomweb: `${base}${options.dicomwebPrefix}` };
  };
  const fhirBaseOf = (request: FastifyRequest) => `${urlsOf(request).base}/fhir`;
  const send = (reply: FastifyReply, resource: Resource) => reply.type(FHIR_JSON).send(JSON.stringify(resource));
  const negotiate = (request: FastifyRequest, query: RawQuery) => checkFormat(query['_format'], request.headers.accept);
  const strictOf = (request: FastifyRequest) => /handling\s*=\s*strict/i.test(String(request.headers['prefer'] ?? ''));

  app.get('/metadata', PUBLIC, async (request, reply) => {
    negotiate(request, request.query as RawQuery);
    const types: ResourceType[] = ['Patient', 'ImagingStudy', ...(service.hasReports ? (['DiagnosticReport'] as const) : [])];
    const resource: CapabilityStatement = {
      resourceType: 'CapabilityStatement',
      status: 'active',
      date: started,
      publisher: 'filmless-pacs',
      kind: 'instance',
      software: { name: 'filmless-pacs', ...(options.softwareVersion === undefined ? {} : { version: options.softwareVersion }) },
      implementation: { description: 'filmless-pacs FHIR R4 API: patients, imaging studies and signed reports of the archive', url: fhirBaseOf(request) },
      fhirVersion: '4.0.1',
      format: ['json', 'application/fhir+json'],
      rest: [
        {
          mode: 'server',
          security: {
            cors: false,
            service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'OAuth', display: 'OAuth' }] }],
            description: 'OpenID Connect bearer tokens (RFC 6750) of the archive\'s issuer when sign-in is on; reads need the "read" permission. Every request is audited.',
          },
          resource: types.map(
            (type): CapabilityStatementRestResource => ({
              type,
              interaction: [{ code: 'read' }, { code: 'search-type' }],
              versioning: 'no-version',
              readHistory: false,
              updateCreate: false,
              conditionalCreate: false,
              conditionalRead: 'not-supported',
              conditionalUpdate: false,
              conditionalDelete: 'not-supported',
              searchParam: SEARCH_PARAMS[type].map((p) => ({ name: p.name, type: p.type, documentation: p.documentation })),
            }),
          ),
          searchParam: [
            { name: '_id', type: 'token', documentation: 'the logical id' },
            { name: '_count', type: 'number', documentation: `page size (default ${options.defaultCount}, at most ${options.maxCount}; 0: the total only)` },
          ],
        },
      ],
    };
    return send(reply, resource);
  });

  const searchHandler = (type: ResourceType) => async (request: FastifyRequest, reply: FastifyReply) => {
    const query = (request.method === 'POST' ? { ...(request.query as RawQuery), ...((request.body ?? {}) as RawQuery) } : request.query) as RawQuery;
    negotiate(request, query);
    const page = pageOf(query, options.defaultCount, options.maxCount);
    const urls = urlsOf(request);
    const strict = strictOf(request);
    const result =
      type === 'Patient'
        ? await service.searchPatients(query, page, strict)
        : type === 'ImagingStudy'
          ? await service.searchImagingStudies(query, page, urls, strict)
          : await service.searchDiagnosticReports(query, page, urls, strict);
    request.auditObjects = auditObjectsOf(result.resources, service);
    return send(reply, searchsetBundle({ fhirBase: fhirBaseOf(request), type, query, used: result.used, count: page.count, offset: page.offset, total: result.total, resources: result.resources }));
  };

  const readHandler = (type: ResourceType) => async (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
    negotiate(request, request.query as RawQuery);
    const { id } = request.params;
    const urls = urlsOf(request);
    const resource =
      type === 'Patient' ? await service.readPatient(id) : type === 'ImagingStudy' ? await service.readImagingStudy(id, urls) : await service.readDiagnosticReport(id, urls);
    if (resource === undefined) throw new NotFoundError(`${type}/${id.slice(0, 64)} is not known`);
    request.auditObjects = auditObjectsOf([resource], service);
    return send(reply, resource);
  };

  for (const type of ['Patient', 'ImagingStudy', 'DiagnosticReport'] as const) {
    if (type === 'DiagnosticReport' && !service.hasReports) continue;
    const searchAccess = requires('read', { audit: 'query', queryLevel: type });
    app.get(`/${type}`, searchAccess, searchHandler(type));
    app.post(`/${type}/_search`, searchAccess, searchHandler(type));
    app.get(`/${type}/:id`, requires('read', { audit: 'retrieve' }), readHandler(type));
  }

  // Anything else under /fhir: an OperationOutcome rather than the archive's JSON 404.
  app.route({
    method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/*',
    ...requires('read', { audit: 'query', queryLevel: 'unsupported' }),
    handler: async (request) => {
      const path = request.url.split('?')[0]!;
      if (request.method !== 'GET' && request.method !== 'POST') throw new AppError('BAD_REQUEST', `${request.method} is not supported: this FHIR server is read-only (read and search)`);
      throw new NotFoundError(`No FHIR interaction at ${path.slice(0, 200)}: resource types served are Patient, ImagingStudy${service.hasReports ? ', DiagnosticReport' : ''}`);
    },
  });
}

/** What a response discloses, for the audit record: studies, and patients as HL7 CX Patient IDs. */
function auditObjectsOf(resources: readonly FhirResource[], service: FhirService): AuditObject[] {
  const objects: AuditObject[] = [];
  for (const resource of resources) {
    if (resource.resourceType === 'ImagingStudy' && resource.id !== undefined) objects.push({ study: resource.id });
    if (resource.resourceType === 'DiagnosticReport') {
      const study = resource.imagingStudy?.[0]?.reference?.replace(/^ImagingStudy\//, '');
      if (study !== undefined) objects.push({ study });
    }
    if (resource.resourceType === 'Patient') {
      const usual = resource.identifier?.find((i) => i.use === 'usual') ?? resource.identifier?.[0];
      if (usual?.value !== undefined) objects.push({ patient: `${usual.value}^^^${usual.system === undefined ? '' : (service.systems.issuerOf(usual.system) ?? usual.system)}` });
    }
  }
  return objects;
}
