/**
 * How the study view shows a series, from its instances' metadata: a whole-slide pyramid, a video, images
 * (a Cornerstone stack, cine for multi-frame), bulk annotations, or a non-image document.
 */
import { isVideoTransferSyntax, num, SOP_CLASS, str, TAG, type DicomJson } from '../dicomweb/dicom-json.js';

export type SeriesKind = 'wsi' | 'video' | 'image' | 'annotation' | 'document';

export function kindOf(instances: DicomJson[]): SeriesKind {
  const first = instances[0];
  const sopClass = str(first, TAG.SOPClassUID);
  if (sopClass === SOP_CLASS.wsi) return 'wsi';
  if (sopClass === SOP_CLASS.bulkAnnotations) return 'annotation';
  const ts = str(first, TAG.TransferSyntaxUID) ?? str(first, TAG.AvailableTransferSyntaxUID);
  // A video SOP class is played as video only when its frames are one video bitstream (MPEG-2/4, HEVC):
  // the live room records Video Endoscopic Images as JPEG frames, which the stack viewer shows (cine).
  const videoClass = sopClass === SOP_CLASS.videoEndoscopic || sopClass === SOP_CLASS.videoMicroscopic || sopClass === SOP_CLASS.videoPhotographic;
  if (isVideoTransferSyntax(ts) || (videoClass && ts === undefined)) return 'video';
  if (instances.some((i) => num(i, TAG.Rows) !== undefined && i['7FE00010'] !== undefined) || instances.some((i) => num(i, TAG.Rows) !== undefined)) return 'image';
  return 'document';
}
