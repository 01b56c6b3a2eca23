/**
 * The storage API (docs/api.md, "Storage lifecycle"), for administrators (`admin`), every request
 * audited (interface `storage`; studies named by UID, never a patient):
 *
 * - `GET /api/storage/usage`: bytes and counts in total, by modality and transfer syntax, the largest
 *   studies (`limit`, `offset`), what recompression saved (storage-read, 110103 R)
 * - `GET /api/storage/usage/studies/{study}`: one study, by series and transfer syntax (storage-read)
 * - `GET /api/storage/housekeeping`: the lifecycle rules in force and the last run (storage-read)
 * - `POST /api/storage/housekeeping`: start a run now (202; 409 when every rule is off) (recompress, 110103 U)
 */
import type { FastifyInstance } from 'fastify';
import type { Catalog } from '../catalog/catalog.js';
import { ErrorBody } from '../contracts/ai.js';
import { HousekeepingStatusJson, StorageUsageJson, StudyUsageJson, StudyUsageParams, UsageQuery, type StudyUsageJson as StudyUsage } from '../contracts/storage.js';
import { AppError, NotFoundError } from '../errors.js';
import { routeAccess } from '../http/route-access.js';
import { withSchema } from '../http/route-schema.js';
import type { Housekeeping } from './housekeeping.js';

const requires = routeAccess('storage');
const TAGS = ['storage'];
const errors = { 400: ErrorBody, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody };

export interface StorageRoutesOptions {
  catalog: Catalog;
  housekeeping: Housekeeping;
}

const saved = <T extends { bytes: number; receivedBytes: number }>(f: T): T & { savedBytes: number } => ({ ...f, savedBytes: Math.max(0, f.receivedBytes - f.bytes) });

export async function storageRoutes(app: FastifyInstance, options: StorageRoutesOptions): Promise<void> {
  const { catalog, housekeeping } = options;

  app.get<{ Querystring: UsageQuery }>(
    '/api/storage/usage',
    {
      ...requires('admin', { audit: 'storage-read' }),
      ...withSchema({ tags: TAGS, summary: 'Storage used by the archive: in total, by modality, by transfer syntax, largest studies first; what lossless recompression saved', querystring: UsageQuery, response: { 200: StorageUsageJson, ...errors } }),
    },
    async (request) => {
      const usage = await catalog.storageUsage({ limit: request.query.limit ?? 50, offset: request.query.offset ?? 0 });
      request.auditObjects = usage.studies.map((s) => ({ study: s.studyInstanceUid }));
      request.auditDetail = { studies: usage.total.studies, instances: usage.total.instances };
      return {
        total: saved(usage.total),
        byModality: usage.byModality.map(saved),
        byTransferSyntax: usage.byTransferSyntax.map(saved),
        studies: usage.studies.map(saved),
      };
    },
  );

  app.get<{ Params: { study: string } }>(
    '/api/storage/usage/studies/:study',
    {
      ...requires('admin', { audit: 'storage-read' }),
      ...withSchema({ tags: TAGS, summary: 'Storage used by one study, by series and transfer syntax', params: StudyUsageParams, response: { 200: StudyUsageJson, ...errors } }),
    },
    async (request): Promise<StudyUsage> => {
      request.auditObjects = [{ study: request.params.study }];
      const usage = await catalog.studyStorageUsage(request.params.study);
      if (usage === undefined) throw new NotFoundError('Study not found');
      return { ...saved(usage), series: usage.series.map(saved), byTransferSyntax: usage.byTransferSyntax.map(saved) };
    },
  );

  app.get(
    '/api/storage/housekeeping',
    {
      ...requires('admin', { audit: 'storage-read' }),
      ...withSchema({ tags: TAGS, summary: 'The storage lifecycle rules in force (all off by default) and what the last housekeeping run did', response: { 200: HousekeepingStatusJson, ...errors } }),
    },
    async () => housekeeping.status(),
  );

  app.post(
    '/api/storage/housekeeping',
    {
      ...requires('admin', { audit: 'recompress' }),
      ...withSchema({ tags: TAGS, summary: 'Start a housekeeping run now (the server also runs one every PACS_LIFECYCLE_INTERVAL_SECONDS)', response: { 202: HousekeepingStatusJson, ...errors } }),
    },
    async (request, reply) => {
      if (!housekeeping.enabled) {
        throw new AppError('CONFLICT', 'Every storage lifecycle rule is off (PACS_LIFECYCLE_COMPRESS, PACS_LIFECYCLE_RETENTION_YEARS): there is nothing to run');
      }
      const run = await housekeeping.runNow();
      request.auditDetail = { run: run?.id ?? '' };
      void reply.code(202);
      return housekeeping.status();
    },
  );
}
