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
  archive: ['catalog', 'dicom', 'errors.ts', 'storage'],
  inference: ['archive', 'catalog', 'dicom', 'errors.ts'],
  pathology: ['archive', 'catalog', 'config.ts', 'contracts', 'dicom', 'errors.ts', 'inference'],
  // HTTP plumbing shared by every route file: access declarations, schemas, errors, path checks
  http: ['audit/audit-vocabulary.ts', 'auth/permissions.ts', 'config.ts', 'errors.ts'],
  auth: ['config.ts', 'errors.ts', 'http/route-access.ts'],
  audit: ['auth', 'catalog', 'config.ts', 'contracts', 'errors.ts', 'http'],
  // Front ends: receive the use cases as options, never build them
  dicomweb: ['archive', 'catalog', 'config.ts', 'dicom', 'errors.ts', 'http'],
  ai: ['contracts', 'errors.ts', 'http', 'inference', 'pathology'],
  live: ['archive', 'auth', 'contracts', 'dicom', 'errors.ts', 'http', 'inference'],
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
  sharing: ['archive', 'audit', 'auth', 'catalog', 'config.ts', 'contracts', 'deid', 'dicom', 'errors.ts', 'http', 'reports'],
  // Curation: IOCM rejection (notes written and received), restore, purge, DELETE, move / split / merge
  curation: ['archive', 'audit', 'catalog', 'contracts', 'dicom', 'errors.ts', 'http'],
  // The composition module and the entry points at the top
  'services.ts': ['*'],
  'app.ts': ['*'],
  'main.ts': ['*'],
  'worker.ts': ['*'],
  'fsck.ts': ['*'],
  // Viewer
  'viewer/auth': [],
  'viewer/dicomweb': ['viewer/auth'],
  'viewer/ui': [],
  'viewer/imaging': ['viewer/auth', 'viewer/dicomweb'],
  'viewer/ai': ['contracts', 'viewer/dicomweb'],
  'viewer/overlays': ['viewer/dicomweb'],
  // The hospital link's read API (/his): the live room's worklist, the study browser's order states.
  'viewer/his': ['contracts', 'viewer/dicomweb'],
  'viewer/browser': ['viewer/auth', 'viewer/dicomweb', 'viewer/his', 'viewer/ui'],
  'viewer/wsi': ['viewer/dicomweb', 'viewer/ui', 'viewer/viewer/display.ts'],
  'viewer/live': ['contracts', 'viewer/ai', 'viewer/auth', 'viewer/dicomweb', 'viewer/his', 'viewer/overlays', 'viewer/ui'],
  // The study page; the stack's measurements go to the radiology report through viewer/reports (measurement-report.ts, add-to-report.ts).
  'viewer/viewer': ['viewer/ai', 'viewer/auth', 'viewer/dicomweb', 'viewer/imaging', 'viewer/overlays', 'viewer/reports', 'viewer/ui', 'viewer/wsi'],
  // The report editor and the endoscopy quality figures (/reports): the wire contracts as types, DICOMweb for the study's images.
  'viewer/reports': ['contracts', 'viewer/auth', 'viewer/dicomweb', 'viewer/ui'],
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
];

/** Where those may be built: the top, and the module that defines each (its own factory). */
export const CONSTRUCTION_ALLOWED_IN: readonly string[] = ['server/src/services.ts', 'server/src/main.ts', 'server/src/worker.ts', 'server/src/fsck.ts'];

/** Packages only some modules may import: Fastify stays in routes and HTTP plumbing, Cornerstone in the viewer's imaging. */
export const PACKAGE_OWNERS: Readonly<Record<string, readonly string[]>> = {
  fastify: ['app.ts', 'http', 'auth', 'audit', 'dicomweb', 'ai', 'live', 'his', 'reports', 'fhir', 'sharing', 'curation'],
  '@cornerstonejs/core': ['viewer/imaging'],
  '@cornerstonejs/tools': ['viewer/imaging'],
  '@cornerstonejs/dicom-image-loader': ['viewer/imaging'],
};
