/**
 * Who may import what: the table docs/architecture.md ("Modules") describes, as data the architecture
 * test (architecture.test.ts) checks against the import graph of server/src and viewer/src. Change the
 * design here and in the doc together.
 *
 * A module is a folder of server/src (`archive`), a top-level file of it (`app.ts`), or a folder of
 * viewer/src (`viewer/imaging`). Tests, contract suites and test-support are outside the rules: they may
 * wire anything together.
 */

/** Modules a module may import (besides itself). `*` = anything. */
export const ALLOWED_IMPORTS: Readonly<Record<string, readonly string[]>> = {
  // Leaves and pure code
  'errors.ts': [],
  contracts: ['errors.ts', 'audit/audit-vocabulary.ts'],
  dicom: ['errors.ts'],
  'config.ts': ['config', 'errors.ts'],
  config: ['auth/permissions.ts', 'errors.ts'],
  storage: ['config.ts', 'errors.ts'],
  catalog: ['config.ts', 'dicom', 'errors.ts'],
  // The change feed of the processes sharing the index (in-process, SQLite table, PostgreSQL LISTEN/NOTIFY, Redis pub/sub)
  changes: ['catalog/open-side-database.ts', 'config.ts', 'errors.ts'],
  archive: ['catalog', 'changes', 'dicom', 'errors.ts', 'storage'],
  inference: ['archive', 'catalog', 'dicom', 'errors.ts'],
  pathology: ['archive', 'catalog', 'config.ts', 'contracts', 'dicom', 'errors.ts', 'inference'],
  // HTTP plumbing shared by every route file: access declarations, schemas, errors, path checks
  http: ['audit/audit-vocabulary.ts', 'auth/permissions.ts', 'config.ts', 'errors.ts'],
  auth: ['config.ts', 'errors.ts', 'http/route-access.ts'],
  audit: ['auth', 'catalog', 'config.ts', 'contracts', 'errors.ts', 'http'],
  // Front ends: receive the use cases as options, never build them
  dicomweb: ['archive', 'catalog', 'config.ts', 'dicom', 'errors.ts', 'http'],
  ai: ['contracts', 'errors.ts', 'http', 'inference', 'pathology'],
  live: ['archive', 'auth', 'config.ts', 'contracts', 'dicom', 'errors.ts', 'http', 'inference'],
  dimse: ['archive', 'audit', 'catalog', 'config.ts', 'dicom', 'errors.ts', 'his'],
  // The hospital link: HIS commands, orders and worklist (his/), HL7 v2 over MLLP (hl7/)
  his: ['archive', 'audit', 'catalog', 'config.ts', 'contracts', 'dicom', 'errors.ts', 'http'],
  hl7: ['config.ts', 'dicom', 'errors.ts', 'his'],
  // Reports: drafts, signing, SR + Encapsulated PDF writers, PDF rendering, quality figures, the /reports API
  reports: ['archive', 'auth', 'catalog', 'config.ts', 'contracts', 'dicom', 'errors.ts', 'http', 'inference'],
  // The FHIR R4 link: the /fhir API over the index (side database), the HIS store and the reports; the
  // push outbox, sent through the job queue interface of pathology/ (no queue engine of its own)
  fhir: ['audit/audit-record.ts', 'catalog', 'config.ts', 'contracts', 'dicom', 'errors.ts', 'his', 'http', 'pathology/job-queue.ts', 'reports'],
  // De-identification (PS3.15 Annex E Basic Profile): pure, on Part-10 bytes
  deid: ['dicom', 'errors.ts'],
  // Share links, result slips, the patient page's API and consults (with de-identified copies)
  sharing: ['archive', 'audit', 'auth', 'catalog', 'changes', 'config.ts', 'contracts', 'deid', 'dicom', 'errors.ts', 'http', 'reports'],
  // Curation: IOCM rejection (notes written and received), restore, purge, DELETE, move / split / merge
  curation: ['archive', 'audit', 'catalog', 'contracts', 'dicom', 'errors.ts', 'http'],
  // Backup: blob copies on a second store through the job queue interface, index backups, status API, the restore procedure
  backup: ['audit/audit-record.ts', 'catalog', 'config.ts', 'contracts', 'errors.ts', 'http', 'pathology/job-queue.ts', 'storage'],
  // Storage lifecycle: lossless recompression, retention expiry (through a rejection port), usage, housekeeping jobs on the queue interface
  lifecycle: ['archive', 'audit/audit-record.ts', 'catalog', 'config.ts', 'contracts', 'dicom', 'errors.ts', 'http', 'pathology/job-queue.ts', 'storage'],
  // AI in use, measured: findings shown and clinicians' decisions per model version (own side tables), the verdict and usage routes under /ai
  'ai-usage': ['archive', 'auth', 'catalog', 'config.ts', 'contracts', 'dicom', 'errors.ts', 'http', 'inference', 'reports'],
  // Every core of one machine: the cluster's primary (forks, replaces, drains workers) and a worker's slot
  cluster: ['config.ts', 'errors.ts'],
  // The composition module and the entry points at the top
  'services.ts': ['*'],
  'app.ts': ['*'],
  'main.ts': ['*'],
  'worker.ts': ['*'],
  'fsck.ts': ['*'],
  'restore.ts': ['*'],
  // Viewer
  // Texts in Vietnamese and English (i18next), dates and names as written in Vietnam: a leaf every page uses.
  'viewer/i18n': [],
  'viewer/auth': ['viewer/i18n'],
  'viewer/dicomweb': ['viewer/auth', 'viewer/i18n'],
  'viewer/ui': ['viewer/i18n'],
  'viewer/imaging': ['viewer/auth', 'viewer/dicomweb', 'viewer/i18n'],
  'viewer/ai': ['contracts', 'viewer/dicomweb', 'viewer/i18n'],
  'viewer/overlays': ['viewer/dicomweb', 'viewer/i18n'],
  // The hospital link's read API (/his): the live room's worklist, the study browser's order states.
  'viewer/his': ['contracts', 'viewer/dicomweb', 'viewer/i18n'],
  'viewer/browser': ['viewer/auth', 'viewer/dicomweb', 'viewer/his', 'viewer/i18n', 'viewer/ui'],
  'viewer/wsi': ['viewer/ai', 'viewer/dicomweb', 'viewer/i18n', 'viewer/ui', 'viewer/viewer/display.ts'],
  'viewer/live': ['contracts', 'viewer/ai', 'viewer/auth', 'viewer/dicomweb', 'viewer/his', 'viewer/i18n', 'viewer/overlays', 'viewer/ui'],
  // The study page; the stack's measurements go to the radiology report through viewer/reports (measurement-report.ts, add-to-report.ts).
  'viewer/viewer': ['viewer/ai', 'viewer/auth', 'viewer/dicomweb', 'viewer/i18n', 'viewer/imaging', 'viewer/overlays', 'viewer/reports', 'viewer/ui', 'viewer/wsi'],
  // The report editor and the endoscopy quality figures (/reports): the wire contracts as types, DICOMweb for the study's images.
  'viewer/reports': ['contracts', 'viewer/auth', 'viewer/dicomweb', 'viewer/i18n', 'viewer/ui'],
  // Second opinions: the ask dialog, the consults page, a consult's page (the case in the study view, regions from the stack's drawings and the slide viewer's), a consult link's opening.
  'viewer/consults': ['contracts', 'viewer/auth', 'viewer/dicomweb', 'viewer/i18n', 'viewer/imaging', 'viewer/ui', 'viewer/viewer', 'viewer/wsi'],
  // The patient's phone page of a share link (share.html): fetch only, the wire contracts as types.
  'viewer/share': ['contracts', 'viewer/i18n', 'viewer/ui'],
  // Storage usage and housekeeping (/api/storage), for administrators: the wire contracts as types.
  'viewer/storage': ['contracts', 'viewer/auth', 'viewer/i18n', 'viewer/ui'],
  // Curation for administrators: the study view's "Correct" menu (reject, move, split, merge, delete) and the curation page (/curation, DELETE, the audit trail's curation records).
  'viewer/curation': ['contracts', 'viewer/auth', 'viewer/dicomweb', 'viewer/i18n', 'viewer/ui'],
  'viewer/main.ts': ['*'],
};

/** Only the composition module and the entry points build these; everyone else receives them. */
export const CONSTRUCTED_AT_THE_TOP: readonly RegExp[] = [
  /\bnew Archive\(/,
  /\bcreateBlobStore\(/,
  /\bcreateCatalog\(/,
  /\bInferenceEngine\.start\(/,
  /\bnew FrameDetections\(/,
  /\bnew AnalysisService\(/,
  /\bJobStore\.open\(/,
  /\bnew BullmqQueue\(/,
  /\bnew InProcessQueue\(/,
  /\bcreateAuditTrail\(/,
  /\bnew LiveSessionRegistry\(/,
  /\bKyselyHisStore\.open\(/,
  /\bnew HisService\(/,
  /\bFhirStore\.open\(/,
  /\bFhirIndex\.open\(/,
  /\bnew FhirPush\(/,
  /\bKyselyReportStore\.open\(/,
  /\bnew ReportService\(/,
  /\bShareStore\.open\(/,
  /\bnew ShareService\(/,
  /\bnew ConsultService\(/,
  /\bnew CurationService\(/,
  /\bBackupStore\.open\(/,
  /\bnew BlobReplicator\(/,
  /\bnew Housekeeping\(/,
  /\bAiUsageStore\.open\(/,
  /\bnew AiUsageService\(/,
];

/** Where those may be built: the top, and the module that defines each (its own factory). */
export const CONSTRUCTION_ALLOWED_IN: readonly string[] = ['server/src/services.ts', 'server/src/main.ts', 'server/src/worker.ts', 'server/src/fsck.ts', 'server/src/restore.ts'];

/** Packages only some modules may import: Fastify stays in routes and HTTP plumbing, Cornerstone in the viewer's imaging. */
export const PACKAGE_OWNERS: Readonly<Record<string, readonly string[]>> = {
  fastify: ['app.ts', 'http', 'auth', 'audit', 'dicomweb', 'ai', 'live', 'his', 'reports', 'fhir', 'sharing', 'curation', 'lifecycle', 'backup', 'ai-usage'],
  '@cornerstonejs/core': ['viewer/imaging'],
  '@cornerstonejs/tools': ['viewer/imaging'],
  '@cornerstonejs/dicom-image-loader': ['viewer/imaging'],
};
