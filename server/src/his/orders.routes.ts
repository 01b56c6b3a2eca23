/**
 * The orders REST API (docs/api.md, "Orders and worklist (`/his`)"), for hospitals without HL7 and for
 * the viewer: writes become the same HisCommands the HL7 listener sends (`HisLink.apply`, via `rest`,
 * same validation, same audit records), reads come from the HIS store. Writing needs the `his`
 * permission, reading `read`.
 *
 * - `POST /his/orders` (201 + Location), `PUT /his/orders/{id}`, `POST /his/orders/{id}/cancel`,
 *   `GET /his/orders/{id}`
 * - `GET /his/worklist`: Modality Worklist matching (the live endoscopy room, the study browser)
 * - `GET /his/orders?study=UID&study=UID`: the orders of studies (the study browser's order state)
 * - `PUT /his/patients/{issuer}/{id}` (a patient update, "-" for no issuer), `POST /his/patients/merge`
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ErrorBody } from '../contracts/ai.js';
import {
  CancelOrderBody,
  HisOrderJson,
  OrderBody,
  OrderIdParams,
  OrderList,
  OrderResult,
  OrdersOfStudiesQuery,
  PatientMergeBody,
  PatientParams,
  PatientResult,
  PatientUpdateBody,
  STEP_STATUSES,
  WorklistPage,
  WorklistQueryJson,
  type PatientInput,
} from '../contracts/his.js';
import type { PatientIdentity } from '../dicom/patient-identity.js';
import { AppError, BadQueryError } from '../errors.js';
import { routeAccess } from '../http/route-access.js';
import { withSchema } from '../http/route-schema.js';
import type { HisCommandContext, HisLink, Order, OrderInput, StepStatus } from './his-model.js';
import { patientObject } from './his-service.js';
import type { HisStore, WorklistQuery } from './his-store.js';
import { isValidDate, isValidUid } from './validate-command.js';

const requires = routeAccess('his');

export interface OrdersRoutesOptions {
  /** The hospital link's use cases (his-service.ts, built by services.ts). */
  link: HisLink;
  store: HisStore;
  publicBaseUrl: string;
}

const DEFAULT_WORKLIST_LIMIT = 200;
const TAGS = ['hospital link'];
const errors = { 400: ErrorBody, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody };

/** The command context of a REST request: the signed-in user. */
function contextOf(request: FastifyRequest): HisCommandContext {
  const principal = request.principal;
  return {
    via: 'rest',
    subject: principal?.subject ?? 'anonymous',
    clientAddress: request.ip ?? '',
    user: {
      kind: principal?.kind === 'token' ? 'token' : 'anonymous',
      ...(principal?.name === undefined ? {} : { name: principal.name }),
      ...(principal === undefined || principal.roles.length === 0 ? {} : { roles: principal.roles }),
    },
  };
}

function identityOf(patient: PatientInput): PatientIdentity {
  return {
    patientId: patient.patientId,
    issuer: patient.issuer,
    name: patient.name ?? null,
    birthDate: patient.birthDate ?? null,
    sex: patient.sex ?? null,
    otherIds: (patient.otherIds ?? []).map((o) => ({ id: o.id, issuer: o.issuer, ...(o.type === undefined ? {} : { type: o.type }) })),
  };
}

function orderInputOf(body: OrderBody): OrderInput {
  // Default IDs: the accession number (cut to its 16 characters, so a too long one is reported once, as itself).
  const defaultId = body.accessionNumber.slice(0, 16);
  return {
    placerOrderNumber: body.placerOrderNumber ?? null,
    fillerOrderNumber: body.fillerOrderNumber ?? null,
    accessionNumber: body.accessionNumber,
    requestedProcedureId: body.requestedProcedureId ?? defaultId,
    requestedProcedureDescription: body.requestedProcedureDescription ?? null,
    requestedProcedureCode: body.requestedProcedureCode ?? null,
    scheduledProcedureStepId: body.scheduledProcedureStepId ?? defaultId,
    scheduledProcedureStepDescription: body.scheduledProcedureStepDescription ?? null,
    modality: body.modality,
    scheduledStationAeTitle: body.scheduledStationAeTitle ?? null,
    scheduledStart: body.scheduledStart,
    referringPhysicianName: body.referringPhysicianName ?? null,
    performingPhysicianName: body.performingPhysicianName ?? null,
    studyInstanceUid: body.studyInstanceUid ?? null,
  };
}

function orderJson(order: Order, patient: PatientIdentity): HisOrderJson {
  return {
    id: order.id,
    status: order.status,
    patient: { patientId: patient.patientId, issuer: patient.issuer, name: patient.name, birthDate: patient.birthDate, sex: patient.sex, otherIds: patient.otherIds.map((o) => ({ ...o })) },
    accessionNumber: order.accessionNumber,
    placerOrderNumber: order.placerOrderNumber,
    fillerOrderNumber: order.fillerOrderNumber,
    requestedProcedureId: order.requestedProcedureId,
    requestedProcedureDescription: order.requestedProcedureDescription,
    requestedProcedureCode: order.requestedProcedureCode,
    scheduledProcedureStepId: order.scheduledProcedureStepId,
    scheduledProcedureStepDescription: order.scheduledProcedureStepDescription,
    modality: order.modality,
    scheduledStationAeTitle: order.scheduledStationAeTitle,
    scheduledStart: order.scheduledStart,
    referringPhysicianName: order.referringPhysicianName,
    performingPhysicianName: order.performingPhysicianName,
    studyInstanceUid: order.studyInstanceUid,
    mppsSopInstanceUid: order.mppsSopInstanceUid,
    performedSeries: [...order.performedSeries],
    createdAt: order.createdAt,
    updatedAt: order.updatedAt,
  };
}

/** 'A', 'A-B', '-B', 'A-' → inclusive bounds. */
function range(value: string): { from?: string; to?: string } {
  const [from, to] = value.includes('-') ? value.split('-', 2) : [value, value];
  return { ...(from ? { from } : {}), ...(to ? { to } : {}) };
}

function worklistQuery(query: WorklistQueryJson): WorklistQuery {
  const given = (value: string | undefined) => (value === undefined || value.trim() === '' ? undefined : value.trim());
  const result: WorklistQuery = { limit: query.limit === undefined || query.limit === '' ? DEFAULT_WORKLIST_LIMIT : query.limit };
  const date = given(query.date);
  if (date !== undefined) {
    const { from, to } = range(date);
    if ((from !== undefined && !isValidDate(from)) || (to !== undefined && !isValidDate(to))) throw new BadQueryError('date', 'must be a date YYYYMMDD or a range YYYYMMDD-YYYYMMDD (either end may be left open)');
    if (from !== undefined) result.dateFrom = from;
    if (to !== undefined) result.dateTo = to;
  }
  const time = given(query.time);
  if (time !== undefined) {
    const { from, to } = range(time);
    if (from !== undefined) result.timeFrom = from;
    if (to !== undefined) result.timeTo = to;
  }
  const modality = given(query.modality);
  if (modality !== undefined) result.modality = modality;
  const station = given(query.station);
  if (station !== undefined) result.scheduledStationAeTitle = station;
  const name = given(query.patientName);
  if (name !== undefined) result.patientName = name;
  const patientId = given(query.patientId);
  if (patientId !== undefined) result.patientId = patientId;
  if (query.issuer !== undefined && query.issuer !== '') result.issuerOfPatientId = query.issuer;
  const accession = given(query.accessionNumber);
  if (accession !== undefined) result.accessionNumber = accession;
  const status = given(query.status);
  if (status !== undefined) {
    const statuses = status.split(',').map((s) => s.trim().toUpperCase().replace(/_/g, ' '));
    const unknown = statuses.filter((s) => !(STEP_STATUSES as readonly string[]).includes(s));
    if (unknown.length > 0) throw new BadQueryError('status', `must be a comma-separated list of ${STEP_STATUSES.join(', ')}`);
    result.statuses = statuses as StepStatus[];
  }
  return result;
}

export async function ordersRoutes(app: FastifyInstance, options: OrdersRoutesOptions): Promise<void> {
  const { link, store } = options;

  const patientOf = async (order: Order): Promise<PatientIdentity> =>
    (await store.getPatient(order.patient)) ?? { ...order.patient, name: null, birthDate: null, sex: null, otherIds: [] };
  const audited = (request: FastifyRequest, order: Order) => {
    request.auditObjects = [patientObject(order.patient), { study: order.studyInstanceUid }];
    request.auditDetail = { orderId: order.id, accessionNumber: order.accessionNumber };
  };
  const orderResult = async (request: FastifyRequest, result: { status: 'applied' | 'duplicate'; orders: Order[]; studiesUpdated: string[] }): Promise<OrderResult> => {
    const order = result.orders[0];
    if (order === undefined) throw new AppError('INTERNAL', 'The command returned no order');
    audited(request, order);
    return { status: result.status, order: orderJson(order, await patientOf(order)), studiesUpdated: result.studiesUpdated };
  };
  const location = (request: FastifyRequest, id: string) => `${options.publicBaseUrl !== '' ? options.publicBaseUrl : `${request.protocol}://${request.host}`}/his/orders/${encodeURIComponent(id)}`;

  app.post<{ Body: OrderBody }>(
    '/orders',
    {
      ...requires('his', { audit: 'order-record', actionCode: 'C' }),
      ...withSchema({ tags: TAGS, summary: 'Create an order with its patient (201 + Location): a scheduled procedure step on the worklist', body: OrderBody, response: { 201: OrderResult, ...errors } }),
    },
    async (request, reply) => {
      const body = request.body;
      const result = await link.apply({ kind: 'order-new', patient: identityOf(body.patient), order: orderInputOf(body) }, contextOf(request));
      const answer = await orderResult(request, result);
      void reply.code(201).header('location', location(request, answer.order.id));
      return answer;
    },
  );

  app.put<{ Params: { id: string }; Body: OrderBody }>(
    '/orders/:id',
    {
      ...requires('his', { audit: 'order-record', actionCode: 'U' }),
      ...withSchema({ tags: TAGS, summary: "Change an order (its details, or its patient); state and performed series stay", params: OrderIdParams, body: OrderBody, response: { 200: OrderResult, ...errors } }),
    },
    async (request) => {
      const body = request.body;
      const result = await link.apply({ kind: 'order-change', orderId: request.params.id, patient: identityOf(body.patient), order: orderInputOf(body) }, contextOf(request));
      return orderResult(request, result);
    },
  );

  app.post<{ Params: { id: string }; Body: CancelOrderBody | undefined }>(
    '/orders/:id/cancel',
    {
      ...requires('his', { audit: 'order-record', actionCode: 'D' }),
      ...withSchema({
        tags: TAGS,
        summary: 'Cancel an order (CANCELLED), or with {"discontinue": true} discontinue a step that started (DISCONTINUED)',
        params: OrderIdParams,
        body: CancelOrderBody,
        response: { 200: OrderResult, ...errors },
      }),
    },
    async (request) => {
      const order = await store.getOrder(request.params.id);
      if (order === undefined) throw new AppError('HIS_UNKNOWN_ORDER', 'No order with this id');
      const discontinue = request.body?.discontinue === true;
      const result = await link.apply(
        { kind: 'order-cancel', orderId: order.id, patient: order.patient, placerOrderNumber: null, accessionNumber: null, discontinue },
        contextOf(request),
      );
      return orderResult(request, result);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/orders/:id',
    {
      ...requires('read', { audit: 'order-record', actionCode: 'R' }),
      ...withSchema({ tags: TAGS, summary: 'One order with its patient and state', params: OrderIdParams, response: { 200: HisOrderJson, 404: ErrorBody } }),
    },
    async (request) => {
      const order = await store.getOrder(request.params.id);
      if (order === undefined) throw new AppError('HIS_UNKNOWN_ORDER', 'No order with this id');
      audited(request, order);
      return orderJson(order, await patientOf(order));
    },
  );

  app.get<{ Querystring: OrdersOfStudiesQuery }>(
    '/orders',
    {
      ...requires('read', { audit: 'query', queryLevel: 'order' }),
      ...withSchema({ tags: TAGS, summary: 'The orders of studies (study=UID&study=UID): the study browser shows their state', querystring: OrdersOfStudiesQuery, response: { 200: OrderList, 400: ErrorBody } }),
    },
    async (request) => {
      const studies = request.query.study.flatMap((value) => value.split(',')).map((uid) => uid.trim()).filter((uid) => uid !== '');
      if (studies.length === 0 || studies.length > 200 || !studies.every(isValidUid)) throw new BadQueryError('study', 'is required: one to 200 Study Instance UIDs (study=UID&study=UID, or comma-separated)');
      const orders = await store.ordersOfStudies(studies);
      const patients = new Map<string, PatientIdentity>();
      const json: HisOrderJson[] = [];
      for (const order of orders) {
        const key = `${order.patient.patientId}\u0000${order.patient.issuer}`;
        let patient = patients.get(key);
        if (patient === undefined) patients.set(key, (patient = await patientOf(order)));
        json.push(orderJson(order, patient));
      }
      return { orders: json };
    },
  );

  app.get<{ Querystring: WorklistQueryJson }>(
    '/worklist',
    {
      ...requires('read', { audit: 'query', queryLevel: 'worklist' }),
      ...withSchema({
        tags: TAGS,
        summary: 'Worklist items (scheduled procedure steps) matching date, time, modality, station, patient and accession number; by date and time',
        querystring: WorklistQueryJson,
        response: { 200: WorklistPage, 400: ErrorBody },
      }),
    },
    async (request) => {
      const items = await store.worklist(worklistQuery(request.query));
      return { items: items.map((item) => orderJson(item.order, item.patient)) };
    },
  );

  app.put<{ Params: { issuer: string; id: string }; Body: PatientUpdateBody }>(
    '/patients/:issuer/:id',
    {
      ...requires('his', { audit: 'patient-record', actionCode: 'U' }),
      ...withSchema({
        tags: TAGS,
        summary: "Create or update a patient (the HIS's identity replaces what was known); the stored studies follow",
        params: PatientParams,
        body: PatientUpdateBody,
        response: { 200: PatientResult, ...errors },
      }),
    },
    async (request) => {
      const issuer = request.params.issuer === '-' ? '' : request.params.issuer;
      const identity = identityOf({ patientId: request.params.id, issuer, ...request.body });
      const result = await link.apply({ kind: 'patient-upsert', event: 'A08', identity }, contextOf(request));
      request.auditObjects = [patientObject(identity), ...result.studiesUpdated.map((study) => ({ study }))];
      const patient = (await store.getPatient(identity)) ?? identity;
      return { status: result.status, patient, studiesUpdated: result.studiesUpdated };
    },
  );

  app.post<{ Body: PatientMergeBody }>(
    '/patients/merge',
    {
      ...requires('his', { audit: 'patient-record', actionCode: 'D' }),
      ...withSchema({
        tags: TAGS,
        summary: "Merge the prior patient into the surviving one: the prior's orders and stored studies move, the prior patient is removed",
        body: PatientMergeBody,
        response: { 200: PatientResult, ...errors },
      }),
    },
    async (request) => {
      const { prior, surviving } = request.body;
      const identity = identityOf(surviving);
      const result = await link.apply({ kind: 'patient-merge', prior: { patientId: prior.patientId, issuer: prior.issuer }, surviving: identity }, contextOf(request));
      request.auditObjects = [patientObject(prior), patientObject(identity), ...result.studiesUpdated.map((study) => ({ study }))];
      const patient = (await store.getPatient(identity)) ?? identity;
      return { status: result.status, patient, studiesUpdated: result.studiesUpdated };
    },
  );
}
