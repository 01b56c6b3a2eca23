/**
 * The start of a Part-10 file (PS3.10 §7.1): the 128-byte preamble and "DICM", then the File Meta
 * Information group 0002, always Explicit VR Little Endian, which names the Transfer Syntax of the data
 * set that follows. That name is then checked against the data set's first bytes, because writers get
 * the VR encoding wrong often enough that pydicom and dcmtk tolerate it too.
 */
import type { ByteReader } from './byte-reader.js';
import { truncated } from './byte-reader.js';
import { hex4, isVrByte, LONG_VRS, SHORT_VRS, UNDEFINED_LENGTH } from './element-encoding.js';
import { headerTooLarge, invalid } from './scan-errors.js';
import {
  EXPLICIT_VR_BIG_ENDIAN,
  EXPLICIT_VR_LITTLE_ENDIAN,
  IMPLICIT_VR_LITTLE_ENDIAN,
  isBigEndian,
  isDeflated,
  isImplicitVR,
} from './transfer-syntax.js';

export interface FileMeta {
  transferSyntaxUid: string | undefined;
  mediaStorageSopClassUid: string | undefined;
  mediaStorageSopInstanceUid: string | undefined;
}

/** How the data set after the File Meta group is encoded. */
export interface DatasetEncoding {
  /** The declared Transfer Syntax UID; for a file without one, the syntax its data set turned out to be in. */
  transferSyntaxUid: string;
  /** The whole data set is one raw deflate stream (PS3.5 §A.5), Explicit VR Little Endian once inflated. */
  deflated: boolean;
  implicit: boolean;
  little: boolean;
  /** The native syntax the elements are actually in, once inflated (what dcmjs is told to parse). */
  elementSyntax: string;
}

const NOT_PART10 =
  'not a DICOM Part-10 file: no "DICM" prefix after a 128-byte preamble (STOW-RS requires Part-10 files ' +
  'with File Meta Information, PS3.10 §7.1)';

const IN_FILE_META = 'the File Meta Information';

/** Consumes the preamble and "DICM" (PS3.10 §7.1). Files without them are raw data sets, refused. */
export async function readPreamble(r: ByteReader): Promise<void> {
  if (!(await r.ensure(132)) || r.buf.toString('latin1', r.pos + 128, r.pos + 132) !== 'DICM') throw invalid(NOT_PART10);
  r.pos += 132;
}

/**
 * Reads the File Meta group (PS3.10 §7.1), keeping the UIDs ingest needs, and leaves the reader at the
 * first data set element (or the end of input).
 */
export async function readFileMeta(r: ByteReader, maxHeaderBytes: number): Promise<FileMeta> {
  const meta: FileMeta = { transferSyntaxUid: undefined, mediaStorageSopClassUid: undefined, mediaStorageSopInstanceUid: undefined };
  let groupEnd: number | undefined;
  for (;;) {
    // The group ends where group 0002 ends. For a deflated data set the next bytes are deflate output and
    // could start with 02 00 by chance, so there the group length (0002,0000) is trusted instead.
    if (groupEnd !== undefined && r.position >= groupEnd && meta.transferSyntaxUid !== undefined && isDeflated(meta.transferSyntaxUid)) break;
    if (!(await r.ensure(8))) {
      if (r.available === 0) break; // nothing after the meta group
      throw truncated(IN_FILE_META);
    }
    if (r.buf.readUInt16LE(r.pos) !== 0x0002) break;
    const element = r.buf.readUInt16LE(r.pos + 2);
    const length = await readMetaElementHeader(r, element, maxHeaderBytes);
    if (element === 0x0000 || element === 0x0002 || element === 0x0003 || element === 0x0010) {
      const value = await r.read(length, IN_FILE_META);
      if (element !== 0x0000) keepUid(meta, element, uidText(value));
      else if (length === 4) groupEnd = r.position + value.readUInt32LE(0);
    } else {
      await r.skip(length, IN_FILE_META);
    }
  }
  return meta;
}

/**
 * Consumes the VR and length of the meta element whose tag is at the reader (8 bytes buffered), and
 * returns its value length once it is known to fit the header limit.
 */
async function readMetaElementHeader(r: ByteReader, element: number, maxHeaderBytes: number): Promise<number> {
  const tagPos = r.position;
  const c0 = r.buf[r.pos + 4]!;
  const c1 = r.buf[r.pos + 5]!;
  let length: number;
  let headerLength = 8;
  if (!isVrByte(c0) || !isVrByte(c1)) {
    // Some old writers put the meta group in Implicit VR: accept it.
    length = r.buf.readUInt32LE(r.pos + 4);
  } else if (SHORT_VRS.has((c0 << 8) | c1)) {
    length = r.buf.readUInt16LE(r.pos + 6);
  } else {
    if (!(await r.ensure(12))) throw truncated(IN_FILE_META);
    length = r.buf.readUInt32LE(r.pos + 8);
    headerLength = 12;
  }
  if (length === UNDEFINED_LENGTH) throw invalid(`File Meta element (0002,${hex4(element)}) has an undefined length`);
  if (tagPos + headerLength + length > maxHeaderBytes) throw headerTooLarge(maxHeaderBytes);
  r.pos += headerLength;
  return length;
}

function keepUid(meta: FileMeta, element: number, uid: string): void {
  if (element === 0x0002) meta.mediaStorageSopClassUid = uid;
  else if (element === 0x0003) meta.mediaStorageSopInstanceUid = uid;
  else meta.transferSyntaxUid = uid;
}

function uidText(value: Buffer): string {
  return value.toString('latin1').replace(/[\0\s]+$/, '').trim();
}

/**
 * The encoding of the data set at the reader, from the declared Transfer Syntax UID, corrected by a look
 * at the first element where the meta group names the wrong VR encoding (or none). Consumes nothing.
 */
export async function detectDatasetEncoding(r: ByteReader, declaredTs: string | undefined): Promise<DatasetEncoding> {
  let implicit: boolean;
  let little: boolean;
  const deflated = declaredTs !== undefined && isDeflated(declaredTs);
  if (deflated) {
    implicit = false;
    little = true;
  } else {
    little = !(declaredTs !== undefined && isBigEndian(declaredTs));
    implicit = declaredTs !== undefined && isImplicitVR(declaredTs);
    if (little) {
      // Tolerate a meta group that names the wrong VR encoding (or none), as pydicom and dcmtk do.
      const explicit = await looksExplicit(r);
      if (explicit !== undefined) implicit = !explicit;
    }
  }
  return {
    transferSyntaxUid: declaredTs ?? (implicit ? IMPLICIT_VR_LITTLE_ENDIAN : EXPLICIT_VR_LITTLE_ENDIAN),
    deflated,
    implicit,
    little,
    elementSyntax: implicit ? IMPLICIT_VR_LITTLE_ENDIAN : little ? EXPLICIT_VR_LITTLE_ENDIAN : EXPLICIT_VR_BIG_ENDIAN,
  };
}

/** A known VR in bytes 4–5 of the first element means explicit VR (how pydicom and dcmtk guess too). */
async function looksExplicit(r: ByteReader): Promise<boolean | undefined> {
  if (!(await r.ensure(6))) return undefined;
  const vr = (r.buf[r.pos + 4]! << 8) | r.buf[r.pos + 5]!;
  return SHORT_VRS.has(vr) || LONG_VRS.has(vr);
}
