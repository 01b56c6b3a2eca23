/**
 * The curation API (docs/api.md, "Curation"): IHE IOCM rejection, restore and purge, DELETE, move /
 * split / merge. Everything needs the `admin` permission except DELETE, which needs `delete` (default
 * role: only `admin`). Every request is audited by the hook, with what changed as its objects and
 * details (studies, series and instances by UID, counts; patients by ID, never by name):
 *
 * - `POST /curation/rejections` (201): a rejection note written into the study (reject, 110103 U)
 * - `GET /curation/rejected`: rejected instances, voided notes, purged tombstones (query)
 * - `POST /curation/rejected/{sop}/restore`, `POST /curation/notes/{note}/restore` (restore, 110103 U)
 * - `POST /curation/purge`: purge what is due now, as the timer does (delete, 110105 D)
 * - `DELETE {dicomweb}/studies/{study}[/series/{series}[/instances/{instance}]]` (delete, 110105 D): an
 *   extension of PS3.18, which defines no DELETE, as dcm4chee-arc offers it under its DICOMweb root
 * - `POST /curation/move`, `POST /curation/studies/{study}/split`, `POST /curation/studies/{study}/merge`
 *   (move, 110103 U; `detail` holds the source and target study, the counts and whether the patient changed)
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { routeAccess, storedObjects, type AuditObject } from '../http/route-access.js';
import type { MoveOutcome, RejectedEntry } from '../catalog/catalog.js';
import { ErrorBody } from '../contracts/ai.js';
import {
  DeleteResult,
  MergeBody,
  MoveBody,
  MoveResult,
  NoteParams,
  PurgeResult,
  RejectBody,
  RejectedList,
  RejectedQuery,
  RejectResult,
  RestoreResult,
  SopParams,
  SplitBody,
  StudyParams,
  type PatientTargetJson,
  type RejectedJson,
  type StudyAttributesJson,
} from '../contracts/curation.js';
import type { PatientIdentity } from '../dicom/patient-identity.js';
import { KEY_OBJECT_SELECTION } from '../dicom/rejection-note.js';
import { withSchema } from '../http/route-schema.js';
import { checkUidParam } from '../http/uid-param.js';
import { patientObject, reasonOf, type CurationService, type RestoreOutcome } from './curation-service.js';

const requires = routeAccess('curation');
const TAGS = ['curation'];
const errors = { 400: ErrorBody, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody };

export interface CurationRoutesOptions {
  service: CurationService;
  /** The DICOMweb root (PACS_DICOMWEB_PREFIX): DELETE lives beside the resources it removes. */
  dicomwebPrefix: string;
}

function rejectedJson(entry: RejectedEntry): RejectedJson {
  return {
    sopInstanceUid: entry.sopInstanceUid,
    studyInstanceUid: entry.studyInstanceUid,
    seriesInstanceUid: entry.seriesInstanceUid,
    sopClassUid: entry.sopClassUid,
    kind: entry.kind,
    reason: reasonOf(entry.reasonCode),
    noteUid: entry.noteUid,
    rejectedAt: entry.rejectedAt,
    purgeAfter: entry.purgeAfter,
    purgedAt: entry.purgedAt,
    stored: entry.stored,
  };
}

function patientOf(json: PatientTargetJson): PatientIdentity {
  return { patientId: json.patientId.trim(), issuer: (json.issuer ?? '').trim(), name: json.name ?? null, birthDate: json.birthDate ?? null, sex: json.sex ?? null, otherIds: [] };
}

function attributesOf(json: StudyAttributesJson | undefined) {
  if (json === undefined) return undefined;
  return Object.fromEntries(Object.entries(json).filter(([, value]) => value !== undefined)) as StudyAttributesJson;
}

/** What a move did, as the request's audit record names it: before and after, counts, no patient names. */
function auditMove(request: FastifyRequest, outcome: MoveOutcome): void {
  const patientChanged = outcome.fromPatient.patientId !== outcome.toPatient.patientId || outcome.fromPatient.issuer !== outcome.toPatient.issuer;
  request.auditObjects = [{ study: outcome.fromStudy }, ...(outcome.toStudy === outcome.fromStudy ? [] : [{ study: outcome.toStudy }]), ...(patientChanged ? [patientObject(outcome.fromPatient), patientObject(outcome.toPatient)] : [])];
  request.auditDetail = {
    fromStudy: outcome.fromStudy,
    toStudy: outcome.toStudy,
    series: outcome.series,
    instances: outcome.instances,
    patientChanged,
    sourceRemoved: outcome.sourceRemoved,
  };
}

function moveResult(outcome: MoveOutcome) {
  return {
    fromStudy: outcome.fromStudy,
    toStudy: outcome.toStudy,
    fromPatient: outcome.fromPatient,
    toPatient: outcome.toPatient,
    series: outcome.series,
    instances: outcome.instances,
    sourceRemoved: outcome.sourceRemoved,
  };
}

function restoreResult(request: FastifyRequest, outcome: RestoreOutcome) {
  request.auditObjects = [
    ...outcome.restored.map((e): AuditObject => ({ study: e.studyInstanceUid, series: e.seriesInstanceUid, instance: e.sopInstanceUid, sopClass: e.sopClassUid })),
    ...outcome.reissuedNotes.map((n): AuditObject => ({ study: n.studyInstanceUid, series: n.seriesInstanceUid, instance: n.sopInstanceUid })),
  ];
  request.auditDetail = { restored: outcome.restored.length, voidedNotes: outcome.voidedNotes.join(','), reissuedNotes: outcome.reissuedNotes.length };
  return { restored: outcome.restored.map((e) => e.sopInstanceUid), voidedNotes: outcome.voidedNotes, reissuedNotes: outcome.reissuedNotes };
}

export async function curationRoutes(app: FastifyInstance, options: CurationRoutesOptions): Promise<void> {
  const { service } = options;
  const dicomweb = options.dicomwebPrefix.replace(/\/+$/, '');

  app.post<{ Body: RejectBody }>(
    '/curation/rejections',
    {
      ...requires('admin', { audit: 'reject' }),
      ...withSchema({ tags: TAGS, summary: 'Reject instances (IHE IOCM): a Key Object Selection rejection note is written into the study; what it names is hidden from every interface', body: RejectBody, response: { 201: RejectResult, ...errors } }),
    },
    async (request, reply) => {
      const body = request.body;
      request.auditObjects = [{ study: body.studyInstanceUid }];
      const outcome = await service.reject({
        studyInstanceUid: body.studyInstanceUid,
        reason: body.reason,
        ...(body.seriesInstanceUids === undefined ? {} : { seriesInstanceUids: body.seriesInstanceUids }),
        ...(body.sopInstanceUids === undefined ? {} : { sopInstanceUids: body.sopInstanceUids }),
        ...(body.description === undefined ? {} : { description: body.description }),
      });
      request.auditObjects = storedObjects([...outcome.rejected, { ...outcome.note, sopClassUid: KEY_OBJECT_SELECTION }]);
      request.auditDetail = { reason: outcome.code, noteUid: outcome.note.sopInstanceUid, rejected: outcome.rejected.length };
      void reply.code(201);
      return { note: outcome.note, reason: reasonOf(outcome.code), rejected: outcome.rejected.length, purgeAfter: outcome.purgeAfter };
    },
  );

  app.get<{ Querystring: RejectedQuery }>(
    '/curation/rejected',
    {
      ...requires('admin', { audit: 'query', queryLevel: 'rejected' }),
      ...withSchema({ tags: TAGS, summary: 'Rejected instances, newest first (state=active: restorable, not purged yet; purged; all)', querystring: RejectedQuery, response: { 200: RejectedList, ...errors } }),
    },
    async (request) => {
      const query = request.query;
      const entries = await service.listRejected({
        ...(query.study === undefined ? {} : { studyInstanceUid: query.study }),
        ...(query.note === undefined ? {} : { noteUid: query.note }),
        state: query.state ?? 'active',
        limit: query.limit ?? 100,
        offset: query.offset ?? 0,
      });
      return { rejected: entries.map(rejectedJson) };
    },
  );

  app.post<{ Params: { sop: string } }>(
    '/curation/rejected/:sop/restore',
    {
      ...requires('admin', { audit: 'restore' }),
      ...withSchema({ tags: TAGS, summary: 'Restore a rejected instance: visible again; its rejection note is voided (and reissued for what else it rejects)', params: SopParams, response: { 200: RestoreResult, ...errors } }),
    },
    async (request) => restoreResult(request, await service.restore([request.params.sop])),
  );

  app.post<{ Params: { note: string } }>(
    '/curation/notes/:note/restore',
    {
      ...requires('admin', { audit: 'restore' }),
      ...withSchema({ tags: TAGS, summary: 'Restore everything a rejection note rejects; the note is voided', params: NoteParams, response: { 200: RestoreResult, ...errors } }),
    },
    async (request) => restoreResult(request, await service.restoreNote(request.params.note)),
  );

  app.post(
    '/curation/purge',
    {
      ...requires('admin', { audit: 'delete' }),
      ...withSchema({ tags: TAGS, summary: 'Purge now the rejected instances whose purge time has come (the server also does it on a timer)', response: { 200: PurgeResult, ...errors } }),
    },
    async (request) => {
      const outcome = await service.purgeDue();
      request.auditDetail = { purged: outcome.purged, instancesRemoved: outcome.instancesRemoved };
      return outcome;
    },
  );

  app.post<{ Body: MoveBody }>(
    '/curation/move',
    {
      ...requires('admin', { audit: 'move' }),
      ...withSchema({ tags: TAGS, summary: 'Move a study, series or instances to another study (existing or new) or patient; the stored files stay as received', body: MoveBody, response: { 200: MoveResult, ...errors } }),
    },
    async (request) => {
      const { from, to } = request.body;
      request.auditObjects = [{ study: from.studyInstanceUid }];
      const outcome = await service.move({
        from: {
          studyInstanceUid: from.studyInstanceUid,
          ...(from.seriesInstanceUids === undefined ? {} : { seriesInstanceUids: from.seriesInstanceUids }),
          ...(from.sopInstanceUids === undefined ? {} : { sopInstanceUids: from.sopInstanceUids }),
        },
        to:
          'studyInstanceUid' in to
            ? { studyInstanceUid: to.studyInstanceUid }
            : 'newStudy' in to
              ? {
                  newStudy: {
                    ...(to.newStudy.attributes === undefined ? {} : { attributes: attributesOf(to.newStudy.attributes)! }),
                    ...(to.newStudy.patient === undefined ? {} : { patient: patientOf(to.newStudy.patient) }),
                  },
                }
              : { patient: patientOf(to.patient) },
      });
      auditMove(request, outcome);
      return moveResult(outcome);
    },
  );

  app.post<{ Params: { study: string }; Body: SplitBody }>(
    '/curation/studies/:study/split',
    {
      ...requires('admin', { audit: 'move' }),
      ...withSchema({ tags: TAGS, summary: 'Split a study: the chosen series go to a new study (same patient, or the one given)', params: StudyParams, body: SplitBody, response: { 200: MoveResult, ...errors } }),
    },
    async (request) => {
      const { seriesInstanceUids, attributes, patient } = request.body;
      const outcome = await service.split(request.params.study, seriesInstanceUids, attributesOf(attributes), patient === undefined ? undefined : patientOf(patient));
      auditMove(request, outcome);
      return moveResult(outcome);
    },
  );

  app.post<{ Params: { study: string }; Body: MergeBody }>(
    '/curation/studies/:study/merge',
    {
      ...requires('admin', { audit: 'move' }),
      ...withSchema({ tags: TAGS, summary: 'Merge a study into another: its series move there and it is gone', params: StudyParams, body: MergeBody, response: { 200: MoveResult, ...errors } }),
    },
    async (request) => {
      const outcome = await service.merge(request.params.study, request.body.into);
      auditMove(request, outcome);
      return moveResult(outcome);
    },
  );

  // DELETE (an extension of PS3.18, as dcm4chee-arc and Orthanc offer): rows first, blobs after.
  const remove = async (request: FastifyRequest<{ Params: { study: string; series?: string; instance?: string } }>) => {
    const { study, series, instance } = request.params;
    checkUidParam(study, 'StudyInstanceUID');
    checkUidParam(series, 'SeriesInstanceUID');
    checkUidParam(instance, 'SOPInstanceUID');
    const removed = await service.deleteInstances({ studyInstanceUid: study, ...(series === undefined ? {} : { seriesInstanceUid: series }), ...(instance === undefined ? {} : { sopInstanceUid: instance }) });
    request.auditObjects = storedObjects(removed);
    request.auditDetail = { instancesRemoved: removed.length };
    return { studyInstanceUid: study, ...(series === undefined ? {} : { seriesInstanceUid: series }), ...(instance === undefined ? {} : { sopInstanceUid: instance }), instancesRemoved: removed.length };
  };
  const deleteRoute = (summary: string) => ({
    ...requires('delete', { audit: 'delete' }),
    ...withSchema({ tags: TAGS, summary, response: { 200: DeleteResult, ...errors } }),
  });
  app.delete(`${dicomweb}/studies/:study/series/:series/instances/:instance`, deleteRoute('Delete an instance for good (index row, then its blob); needs the delete permission'), remove);
  app.delete(`${dicomweb}/studies/:study/series/:series`, deleteRoute('Delete a series for good; needs the delete permission'), remove);
  app.delete(`${dicomweb}/studies/:study`, deleteRoute('Delete a study for good; needs the delete permission'), remove);
}
