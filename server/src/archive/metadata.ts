/**
 * WADO-RS metadata (PS3.18 §10.4.1.1.2, Annex F): the DICOM JSON of each instance in scope, built
 * from the header JSON indexed at ingest, so no blob is read. Added per instance: Transfer Syntax UID
 * (0002,0010), as common servers do, and the pixel data element with a BulkDataURI (§F.2.7) when its
 * bytes can be read from the stored file.
 *
 * Binary values larger than 4 KiB other than pixel data were kept as `{vr}` only at ingest (so were
 * empty ones): each gets a BulkDataURI too, at any nesting depth (e.g. the Point Coordinates Data of a
 * Microscopy Bulk Simple Annotations group, an ICC profile in the Optical Path Sequence), because `{vr}`
 * alone would tell clients the value is empty (§F.2.5). The URI's path names the element as
 * `TAG[/ITEM/TAG...]`, items numbered from 1; bulkdata.routes.ts serves it (an empty value as 0 bytes).
 */
import { createHash } from 'node:crypto';
import type { InstanceWithAttributes, StoredInstance } from '../catalog/catalog.js';
import { firstNumber, type DicomJsonDataset, type DicomJsonElement } from '../dicom/dicom-json.js';
import { withChangesJson } from '../dicom/identity-rewrite.js';
import { IMPLICIT_VR_LITTLE_ENDIAN } from '../dicom/transfer-syntax.js';
import { readChangesOf, readsAsStored } from './identity-on-read.js';

/** Changes whenever the shape of metadata responses changes, so cached copies become stale. */
const METADATA_FORMAT_VERSION = 'metadata-v2';

const TRANSFER_SYNTAX_UID = '00020010';
const BITS_ALLOCATED = '00280100';
/** VRs whose DICOM JSON value is InlineBinary or BulkDataURI (PS3.18 §F.2.7). */
const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
const PIXEL_DATA_TAGS = new Set(['7FE00008', '7FE00009', '7FE00010']);

/** Builds the bulk data URI of one element of one instance (the HTTP layer knows the base URL). */
export type BulkDataUriOf = (instance: StoredInstance, tag: string) => string;

/** Whether the stored pixel data value can be read by byte ranges of the file (not in a deflated data set). */
export function pixelDataReadable(instance: StoredInstance): boolean {
  return instance.pixelData !== undefined && instance.pixelData.valueOffset >= 0;
}

/**
 * VR of the pixel data element in DICOM JSON: OF / OD for float pixel data; OB when encapsulated;
 * OW in Implicit VR Little Endian (PS3.5 §A.1) and for BitsAllocated above 8; OB otherwise.
 */
export function pixelDataVr(instance: StoredInstance, attributes: DicomJsonDataset): string {
  return pixelDataVrOf(instance, () => firstNumber(attributes, BITS_ALLOCATED));
}

/** pixelDataVr with Bits Allocated asked for only when the VR depends on it. */
function pixelDataVrOf(instance: StoredInstance, bitsAllocated: () => number | undefined): string {
  const pixelData = instance.pixelData;
  if (pixelData?.tag === '7FE00008') return 'OF';
  if (pixelData?.tag === '7FE00009') return 'OD';
  if (pixelData?.encapsulated === true) return 'OB';
  if (instance.transferSyntaxUid === IMPLICIT_VR_LITTLE_ENDIAN) return 'OW';
  return (bitsAllocated() ?? 8) > 8 ? 'OW' : 'OB';
}

/** A binary element anywhere in indexed JSON text (it may need a BulkDataURI: withBulkDataUris). */
const BINARY_ELEMENT_TEXT = /"vr":"(?:OB|OD|OF|OL|OV|OW|UN)"/;

/**
 * metadataDataset as JSON text. The common case (no binary element at any depth, e.g. most CT and MR
 * headers) splices the indexed JSON text between the Transfer Syntax UID and the pixel data element
 * instead of parsing and re-serialising it: for a 500-instance series that parse is most of the time.
 * The result is the same data set (tested against the general path on every shared sample); only the
 * order of all-digit tags (e.g. 30060010), which JavaScript objects put first, may differ, and JSON
 * objects are unordered.
 */
export function metadataText(entry: InstanceWithAttributes, bulkDataUriOf: BulkDataUriOf): string {
  const { instance, attributesJson: raw } = entry;
  const pixelData = instance.pixelData;
  const general = () => JSON.stringify(metadataDataset(entry, bulkDataUriOf));
  // A corrected patient identity, a moved instance's study: overlaid on the parsed attributes.
  if (!readsAsStored(instance)) return general();
  if (raw === undefined || !raw.startsWith('{') || !raw.endsWith('}') || BINARY_ELEMENT_TEXT.test(raw)) return general();
  if (raw.includes(`"${TRANSFER_SYNTAX_UID}":`) || (pixelData !== undefined && raw.includes(`"${pixelData.tag}":`))) return general();
  let vr: string | undefined;
  if (pixelData !== undefined) {
    let unknownBits = false;
    vr = pixelDataVrOf(instance, () => {
      unknownBits = entry.bitsAllocated === undefined;
      return entry.bitsAllocated;
    });
    if (unknownBits) return general();
  }
  let text = `{"${TRANSFER_SYNTAX_UID}":${JSON.stringify({ vr: 'UI', Value: [instance.transferSyntaxUid] })}`;
  if (raw !== '{}') text += `,${raw.slice(1, -1)}`;
  if (pixelData !== undefined) {
    const element: DicomJsonElement = { vr: vr! };
    if (pixelDataReadable(instance)) element.BulkDataURI = bulkDataUriOf(instance, pixelData.tag);
    text += `,"${pixelData.tag}":${JSON.stringify(element)}`;
  }
  return `${text}}`;
}

/**
 * One instance's metadata data set: stored attributes, Transfer Syntax UID first, pixel data last. When
 * the patient's identity was corrected after the instance was stored (hospital link), the identity
 * elements are the identity of record's (dicom/identity-rewrite.ts), as in a retrieved copy; an
 * instance moved by curation has its study's identity of record and its series.
 */
export function metadataDataset({ instance, attributes }: InstanceWithAttributes, bulkDataUriOf: BulkDataUriOf): DicomJsonDataset {
  const changes = readChangesOf(instance);
  const stored = changes === undefined ? attributes : withChangesJson(attributes, changes);
  const withUris = withBulkDataUris(stored, (path) => bulkDataUriOf(instance, path), '');
  const dataset: DicomJsonDataset = { [TRANSFER_SYNTAX_UID]: { vr: 'UI', Value: [instance.transferSyntaxUid] }, ...withUris };
  const pixelData = instance.pixelData;
  if (pixelData !== undefined) {
    const element: DicomJsonElement = { vr: pixelDataVr(instance, attributes) };
    if (pixelDataReadable(instance)) element.BulkDataURI = bulkDataUriOf(instance, pixelData.tag);
    // Delete first so the element comes last, after every stored tag (keys stay in tag order).
    delete dataset[pixelData.tag];
    dataset[pixelData.tag] = element;
  }
  return dataset;
}

/**
 * The data set with a BulkDataURI on every binary element that has no value in the index (`{vr}` only),
 * at any depth; `prefix` is the path of the enclosing item. Pixel data is left to metadataDataset.
 * Copies only what changes: the indexed attributes may be shared.
 */
function withBulkDataUris(dataset: DicomJsonDataset, uriOf: (path: string) => string, prefix: string): DicomJsonDataset {
  let out: DicomJsonDataset | undefined;
  for (const [tag, element] of Object.entries(dataset)) {
    let replaced: DicomJsonElement | undefined;
    if (element.vr === 'SQ' && element.Value !== undefined) {
      const items = element.Value;
      const mapped = items.map((item, index) =>
        item !== null && typeof item === 'object' && !('Alphabetic' in item || 'Ideographic' in item || 'Phonetic' in item)
          ? withBulkDataUris(item as DicomJsonDataset, uriOf, `${prefix}${tag}/${index + 1}/`)
          : item,
      );
      if (mapped.some((item, index) => item !== items[index])) replaced = { ...element, Value: mapped };
    } else if (
      BINARY_VRS.has(element.vr) &&
      element.InlineBinary === undefined &&
      element.BulkDataURI === undefined &&
      element.Value === undefined &&
      !(prefix === '' && PIXEL_DATA_TAGS.has(tag))
    ) {
      replaced = { ...element, BulkDataURI: uriOf(`${prefix}${tag}`) };
    }
    if (replaced !== undefined) {
      out ??= { ...dataset };
      out[tag] = replaced;
    }
  }
  return out ?? dataset;
}

/**
 * What a metadata response of one instance depends on beyond its stored file: the patient identity of
 * record it is read with (version and digest of the patient row) and, for an instance curation moved,
 * the study and series it is read with; '' while none is applied.
 */
export function identityKey(instance: StoredInstance): string {
  const patient = instance.patient;
  const identity = patient === undefined ? '' : `${patient.version}:${patient.digest}:${patient.differs ? 1 : 0}`;
  return instance.placement === undefined ? identity : `${identity}|study:${instance.placement.digest}`;
}

/**
 * A strong validator of a metadata response: the stored instances never change under a blob key, so
 * their SOP Instance UIDs and blob keys (with the base URL, which bulk data URIs contain, and the
 * format version) determine the body, with the patient identity of record each is read with (a
 * correction or merge changes the tag).
 */
export function metadataETag(instances: readonly StoredInstance[], base: string): string {
  const hash = createHash('sha1').update(METADATA_FORMAT_VERSION).update('\0').update(base);
  for (const instance of instances) {
    hash.update('\0').update(instance.sopInstanceUid).update('\0').update(instance.blobKey);
    const identity = identityKey(instance);
    if (identity !== '') hash.update('\0').update(identity);
  }
  return `"${hash.digest('hex')}"`;
}
