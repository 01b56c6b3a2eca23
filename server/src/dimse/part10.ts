/**
 * Part-10 framing (PS3.10 §7.1) for DIMSE: a C-STORE carries the bare data set in the negotiated
 * transfer syntax, the archive keeps Part-10 files. `part10Prefix` is the preamble, "DICM" and the File
 * Meta group put in front of the received data set bytes (which go on unchanged); `datasetStart` finds
 * where the data set begins in a stored file, so C-MOVE / C-GET send the stored bytes as they are.
 */
import { InvalidDicomError } from '../errors.js';

import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../dicom/write-part10.js';

export { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME };

export interface FileMetaFields {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Source Application Entity Title (0002,0016): the peer that sent the instance. */
  sourceAeTitle?: string;
}

/** Preamble (128 zero bytes), "DICM" and the File Meta group in Explicit VR Little Endian. */
export function part10Prefix(fields: FileMetaFields): Buffer {
  const elements = [
    element(0x0001, 'OB', Buffer.from([0x00, 0x01])),
    element(0x0002, 'UI', uidBytes(fields.sopClassUid)),
    element(0x0003, 'UI', uidBytes(fields.sopInstanceUid)),
    element(0x0010, 'UI', uidBytes(fields.transferSyntaxUid)),
    element(0x0012, 'UI', uidBytes(IMPLEMENTATION_CLASS_UID)),
    element(0x0013, 'SH', textBytes(IMPLEMENTATION_VERSION_NAME)),
    ...(fields.sourceAeTitle ? [element(0x0016, 'AE', textBytes(fields.sourceAeTitle))] : []),
  ];
  const body = Buffer.concat(elements);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), element(0x0000, 'UL', groupLength), body]);
}

/** Byte offset of the data set in a Part-10 file (just after the File Meta group). */
export function datasetStart(file: Buffer): number {
  if (file.length < 132 || file.toString('latin1', 128, 132) !== 'DICM') {
    throw new InvalidDicomError('the stored file has no Part-10 header');
  }
  let at = 132;
  while (at + 8 <= file.length && file.readUInt16LE(at) === 0x0002) {
    const vr = file.toString('latin1', at + 4, at + 6);
    if (['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr)) {
      if (at + 12 > file.length) break;
      at += 12 + file.readUInt32LE(at + 8);
    } else {
      at += 8 + file.readUInt16LE(at + 6);
    }
  }
  if (at > file.length) throw new InvalidDicomError('the stored file has a truncated File Meta group');
  return at;
}

function element(elementNumber: number, vr: string, value: Buffer): Buffer {
  const longForm = vr === 'OB';
  const header = Buffer.alloc(longForm ? 12 : 8);
  header.writeUInt16LE(0x0002, 0);
  header.writeUInt16LE(elementNumber, 2);
  header.write(vr, 4, 'latin1');
  if (longForm) header.writeUInt32LE(value.length, 8);
  else header.writeUInt16LE(value.length, 6);
  return Buffer.concat([header, value]);
}

/** UI values are padded to even length with NUL (PS3.5 §6.2). */
function uidBytes(uid: string): Buffer {
  const bytes = Buffer.from(uid.replace(/[\0\s]+$/, ''), 'latin1');
  return bytes.length % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.from([0])]);
}

/** Text values are padded to even length with a space. */
function textBytes(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  return bytes.length % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.from(' ')]);
}
