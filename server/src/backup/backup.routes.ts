/**
 * The backup's administrators' API (docs/api.md, "Backup"), all with the `admin` permission:
 *
 * - `GET /api/backup/status`: replication lag (pending copies, oldest pending age, failures), the last
 *   index backup (time, size, instances) and errors; `enabled: false` when no backup store is configured
 *   (audited as a query);
 * - `POST /api/backup/index-backups` (201): takes an index backup now, 409 while one is being taken
 *   (audited as `backup`, ATNA 110106 Export: the whole index leaves for the backup store);
 * - `POST /api/backup/verify[?checksums=true]`: every indexed blob has its copy (of its size, or sha256)
 *   on the backup store (audited as `backup`).
 */
import type { FastifyInstance } from 'fastify';
import { ErrorBody } from '../contracts/ai.js';
import { BackupStatusJson, BackupVerifyJson, BackupVerifyQuery, IndexGenerationJson } from '../contracts/backup.js';
import { AppError } from '../errors.js';
import { routeAccess } from '../http/route-access.js';
import { withSchema } from '../http/route-schema.js';
import { BACKUP_OFF, type BackupService } from './backup-service.js';

const requires = routeAccess('admin');
const TAGS = ['backup'];

export interface BackupRoutesOptions {
  /** Absent when PACS_BACKUP_STORE is not set: the status says so, the other routes answer 409. */
  service?: BackupService;
}

function notConfigured(): AppError {
  return new AppError('CONFLICT', 'No backup store is configured (PACS_BACKUP_STORE, docs/operations.md)');
}

export async function backupRoutes(app: FastifyInstance, options: BackupRoutesOptions): Promise<void> {
  const { service } = options;
  app.get(
    '/api/backup/status',
    {
      ...requires('admin', { audit: 'query', queryLevel: 'backup-status' }),
      ...withSchema({ tags: TAGS, summary: 'Backup state: replication lag, last index backup, errors', response: { 200: BackupStatusJson, 503: ErrorBody } }),
    },
    async () => (service === undefined ? BACKUP_OFF : service.status()),
  );
  app.post(
    '/api/backup/index-backups',
    {
      ...requires('admin', { audit: 'backup' }),
      ...withSchema({ tags: TAGS, summary: 'Take an index backup now', response: { 201: IndexGenerationJson, 409: ErrorBody, 503: ErrorBody } }),
    },
    async (request, reply) => {
      if (service === undefined) throw notConfigured();
      const generation = await service.runIndexBackup();
      request.auditDetail = { backup: generation.id, bytes: generation.bytes, ...(generation.instances === null ? {} : { instances: generation.instances }) };
      return reply.code(201).send(generation);
    },
  );
  app.post<{ Querystring: BackupVerifyQuery }>(
    '/api/backup/verify',
    {
      ...requires('admin', { audit: 'backup' }),
      ...withSchema({ tags: TAGS, summary: 'Check that every indexed blob has its copy on the backup store', querystring: BackupVerifyQuery, response: { 200: BackupVerifyJson, 400: ErrorBody, 409: ErrorBody, 503: ErrorBody } }),
    },
    async (request) => {
      if (service === undefined) throw notConfigured();
      const report = await service.verify(request.query.checksums ?? false);
      request.auditDetail = { verify: true, indexedBlobs: report.indexedBlobs, missing: report.missing, mismatches: report.sizeMismatch + report.checksumMismatch };
      return report;
    },
  );
}
