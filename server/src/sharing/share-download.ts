/**
 * "Download" on the patient's phone page (docs/api.md, "Share links"): what a share link shares as one
 * ZIP file, with the link's credentials (the `pacs_share` cookie serves a plain download link):
 *
 * - `GET /share/view/download/images.zip`: one JPEG per image (each frame of a multi-frame image, up to
 *   MAX_FRAMES_PER_IMAGE), full size, readable on any phone or PC; the signed reports' PDFs when the link
 *   shares them; a README.txt in Vietnamese and English saying the images are not for diagnosis.
 * - `GET /share/view/download/dicom.zip`: the DICOM files for another hospital, each as WADO-RS serves it
 *   to the link (the stored bytes, with the identity of record: archive/zip-export.ts), one folder per
 *   series. No DICOMDIR: PS3.18's `application/zip` (Supplement 211) does not require one, and no
 *   maintained npm library writes DICOMDIRs (dcmjs reads and writes data sets, not file-set directories);
 *   the same archive comes from WADO-RS with `Accept: application/zip` (dicomweb/wado-zip.ts).
 *
 * Both are confined to what the link shares (its study, its chosen series only), streamed with bounded
 * memory (zipStream), `Cache-Control: private, no-store`, named by the study date only (never the
 * patient's name or ID), and audited as `study-export` (ATNA 110106 Export, PS3.15 A.5.3.6) with the link
 * as the user and the study and series as objects.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Archive } from '../archive/archive.js';
import { dicomEntries, numberInstances, pad4, zipStream, type ZipEntry } from '../archive/zip-export.js';
import { principalOf, type LinkScope } from '../auth/principal.js';
import type { StoredInstance } from '../catalog/catalog.js';
import { ErrorBody } from '../contracts/ai.js';
import { isVideo } from '../dicom/transfer-syntax.js';
import { AppError, NotFoundError } from '../errors.js';
import { routeAccess } from '../http/route-access.js';
import { withSchema } from '../http/route-schema.js';
import type { ShareService } from './share-service.js';

const requires = routeAccess('share');
const TAGS = ['share links'];
const errors = { 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 410: ErrorBody };

/** Frames of one multi-frame image put in the JPEG archive (a cine loop of thousands is for the DICOM one). */
export const MAX_FRAMES_PER_IMAGE = 300;
/** JPEG quality of the images in the archive (full size, for looking at, not for diagnosis). */
export const DOWNLOAD_JPEG_QUALITY = 90;

export interface ShareDownloadOptions {
  service: ShareService;
  archive: Archive;
}

function scopeOf(request: FastifyRequest): LinkScope {
  const scope = principalOf(request).scope;
  if (scope === undefined) throw new AppError('NOT_FOUND', 'These credentials are not a share link');
  return scope;
}

/** The instances the link shares, in catalog order (series number, instance number): its series only. */
async function sharedInstances(archive: Archive, scope: LinkScope): Promise<StoredInstance[]> {
  const all = await archive.listInstances({ studyInstanceUid: scope.study });
  const shared = scope.series === undefined ? all : all.filter((instance) => scope.series!.includes(instance.seriesInstanceUid));
  if (shared.length === 0) throw new NotFoundError('Study not found');
  return shared;
}

/** `20260603` → a file name part; anything else (no date) leaves it out. */
const datePart = (date: string | null): string => (date !== null && /^\d{8}$/.test(date) ? `-${date}` : '');

const README = (hospital: string, images: number, left: { video: number; failed: number; frames: number }) =>
  [
    hospital,
    '',
    'Hình ảnh chỉ để người bệnh tham khảo, không dùng để chẩn đoán.',
    'Bác sĩ cần bộ ảnh gốc DICOM: tải "Ảnh DICOM" trên cùng trang.',
    `Số ảnh: ${images}.`,
    ...(left.video > 0 ? [`${left.video} video không có trong tệp này: xem trong tệp DICOM.`] : []),
    ...(left.frames > 0 ? [`Ảnh nhiều khung: chỉ ${MAX_FRAMES_PER_IMAGE} khung đầu của mỗi ảnh.`] : []),
    ...(left.failed > 0 ? [`${left.failed} ảnh không chuyển được sang JPEG: xem trong tệp DICOM.`] : []),
    '',
    "Not for diagnosis: images for the patient's information.",
    'Doctors need the original DICOM images: download "DICOM files" on the same page.',
    `Images: ${images}.`,
    ...(left.video > 0 ? [`${left.video} video(s) are not in this file: see the DICOM download.`] : []),
    ...(left.frames > 0 ? [`Multi-frame images: only the first ${MAX_FRAMES_PER_IMAGE} frames of each.`] : []),
    ...(left.failed > 0 ? [`${left.failed} image(s) could not be made into JPEG: see the DICOM download.`] : []),
    '',
  ].join('\r\n');

/**
 * The JPEG archive's entries, made one at a time as the archive is read: each image rendered when its
 * turn comes (an image that cannot be rendered is left out and counted in README.txt, at the end).
 */
async function* jpegEntries(archive: Archive, instances: readonly StoredInstance[], reports: Array<{ id: string; pdf: () => Promise<Buffer> }>, hospital: string): AsyncGenerator<ZipEntry> {
  const left = { video: 0, failed: 0, frames: 0 };
  let images = 0;
  for (const { instance, folder, index } of numberInstances(instances.filter((i) => i.pixelData !== undefined))) {
    if (isVideo(instance.transferSyntaxUid) || instance.pixelData?.isVideo === true) {
      left.video += 1;
      continue;
    }
    const frames = Math.min(instance.numberOfFrames, MAX_FRAMES_PER_IMAGE);
    if (instance.numberOfFrames > frames) left.frames += 1;
    for (let frame = 1; frame <= frames; frame += 1) {
      let body: Buffer;
      try {
        body = (await archive.renderFrame(instance, { frame, format: 'jpeg', quality: DOWNLOAD_JPEG_QUALITY })).body;
      } catch {
        left.failed += 1;
        break;
      }
      images += 1;
      const name = instance.numberOfFrames > 1 ? `${folder}/image-${pad4(index)}-frame-${String(frame).padStart(3, '0')}.jpg` : `${folder}/image-${pad4(index)}.jpg`;
      yield { name, compress: false, size: body.length, open: async () => body };
    }
  }
  for (const [i, report] of reports.entries()) {
    yield { name: reports.length === 1 ? 'report.pdf' : `report-${i + 1}.pdf`, compress: false, open: report.pdf };
  }
  yield { name: 'README.txt', compress: true, open: async () => Buffer.from(README(hospital, images, left), 'utf8') };
}

export async function shareDownloadRoutes(app: FastifyInstance, options: ShareDownloadOptions): Promise<void> {
  const { service, archive } = options;

  /** Everything both archives need: the scope, the instances, the study date, the link's reports; the audit record filled in. */
  const prepare = async (request: FastifyRequest, format: 'jpeg' | 'dicom') => {
    const scope = scopeOf(request);
    const instances = await sharedInstances(archive, scope);
    const link = await service.get(scope.linkId);
    const view = await service.view(scope, link, '', '');
    const series = [...new Set(instances.map((i) => i.seriesInstanceUid))];
    request.auditObjects = [{ study: scope.study }, ...series.map((uid) => ({ study: scope.study, series: uid }))];
    request.auditDetail = { linkId: scope.linkId, format, instances: instances.length };
    return { scope, instances, view };
  };

  const send = (reply: FastifyReply, name: string, entries: Iterable<ZipEntry> | AsyncIterable<ZipEntry>) =>
    reply
      .type('application/zip')
      .header('cache-control', 'private, no-store')
      .header('content-disposition', `attachment; filename="${name}"`)
      .send(zipStream(entries));

  app.get(
    '/share/view/download/images.zip',
    {
      ...requires('read', { audit: 'study-export', link: 'self' }),
      ...withSchema({ tags: TAGS, summary: 'What the link shares as a ZIP of JPEG images (one per image) and the report PDFs, for the patient', response: errors }),
    },
    async (request, reply) => {
      const { scope, instances, view } = await prepare(request, 'jpeg');
      const reports = view.reports.map((report) => ({ id: report.id, pdf: () => service.reportPdf(scope, report.id) }));
      return send(reply, `images${datePart(view.study.studyDate)}.zip`, jpegEntries(archive, instances, reports, view.hospital.name));
    },
  );

  app.get(
    '/share/view/download/dicom.zip',
    {
      ...requires('read', { audit: 'study-export', link: 'self' }),
      ...withSchema({ tags: TAGS, summary: 'What the link shares as a ZIP of its DICOM files (one folder per series), for another hospital', response: errors }),
    },
    async (request, reply) => {
      const { instances, view } = await prepare(request, 'dicom');
      return send(reply, `dicom${datePart(view.study.studyDate)}.zip`, dicomEntries(archive, instances));
    },
  );
}
