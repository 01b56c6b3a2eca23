/**
 * WADO-RS retrieve of a study, series or instance as one ZIP file: `Accept: application/zip` (PS3.18
 * §8.7.3.5.2 "DICOM ZIP media types", Table 10.4.4-1, added by Supplement 211 so that a browser can
 * download a study without parsing multipart/related). Each instance is a Part-10 file in it, one folder
 * per series (archive/zip-export.ts). The `transfer-syntax` parameter works as for application/dicom
 * (wado-accept.ts `negotiateInstances`): `*` or the stored UID for the stored bytes, none for the default
 * Explicit VR Little Endian (instances stored otherwise are transcoded when they can be, else 406).
 * No DICOMDIR: the web ZIP of PS3.18 does not require one (the media profiles of PS3.11/PS3.12 do).
 * Share links are confined here as on every DICOMweb read (auth/link-scope.ts): the same UIDs in the
 * path, the same 404 and 403.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Archive } from '../archive/archive.js';
import { dicomEntries, zipStream } from '../archive/zip-export.js';
import type { StoredInstance } from '../catalog/catalog.js';
import { EXPLICIT_VR_LITTLE_ENDIAN } from '../dicom/transfer-syntax.js';
import { parseAccept } from './negotiate.js';
import { negotiateInstances } from './wado-accept.js';

/**
 * The transfer syntax asked for when Accept prefers `application/zip` to the multipart types (higher q,
 * or the same q and listed first); undefined when the client did not ask for a ZIP.
 */
export function zipRequested(acceptHeader: string | undefined): { transferSyntax: string } | undefined {
  let zip: { q: number; index: number; transferSyntax: string } | undefined;
  let other: { q: number; index: number } | undefined;
  for (const [index, range] of parseAccept(acceptHeader).entries()) {
    if (range.type === 'application' && range.subtype === 'zip') {
      if (zip === undefined || range.q > zip.q) zip = { q: range.q, index, transferSyntax: range.params['transfer-syntax'] ?? EXPLICIT_VR_LITTLE_ENDIAN };
    } else if (other === undefined || range.q > other.q) {
      other = { q: range.q, index };
    }
  }
  if (zip === undefined) return undefined;
  if (other !== undefined && (other.q > zip.q || (other.q === zip.q && other.index < zip.index))) return undefined;
  return { transferSyntax: zip.transferSyntax };
}

/** Sends `instances` as a ZIP of Part-10 files, streamed (one instance open at a time). */
export function sendInstancesZip(request: FastifyRequest, reply: FastifyReply, archive: Archive, instances: readonly StoredInstance[], transferSyntax: string): FastifyReply {
  const transcode = negotiateInstances(`multipart/related; type="application/dicom"; transfer-syntax=${transferSyntax}`, instances, archive.decodeMaxBytes);
  const params = request.params as { series?: string; instance?: string };
  const level = params.instance !== undefined ? 'instance' : params.series !== undefined ? 'series' : 'study';
  request.log.info({ instances: instances.length, transcoded: transcode.size }, 'WADO-RS instances as application/zip');
  return reply
    .type('application/zip')
    .header('cache-control', 'private, no-store')
    .header('content-disposition', `attachment; filename="${level}.zip"`)
    .send(zipStream(dicomEntries(archive, instances, transcode)));
}
