/**
 * Test helpers for DICOM files as the WADO-RS tests see them: a file's UIDs, transfer syntax and pixel
 * data as dcmjs reads them, plus STOW-RS and instance URL shorthands.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import dcmjs, { type DcmjsDict } from 'dcmjs';
import type { FastifyInstance } from 'fastify';
import { multipartBody, STOW_CONTENT_TYPE } from './make-dicom.js';
import { sharedDataDir } from './shared-data.js';

dcmjs.log.setLevel('silent');

/** A DICOM file with its UIDs and, for images, its pixel data as dcmjs reads it. */
export interface SharedInstance {
  bytes: Buffer;
  study: string;
  series: string;
  sop: string;
  transferSyntax: string;
  dict: DcmjsDict;
  /** The pixel data value(s) as dcmjs reads them: native = one buffer, encapsulated = one per frame. */
  frames: Buffer[];
}

/** The bytes of a binary value (ArrayBuffer or typed array) without copying. */
export const bytesOf = (v: unknown): Buffer => {
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new Error(`not binary: ${typeof v}`);
};

/** Parses a DICOM file; `pixelTag` picks the element read into `frames`. */
export function describeInstance(bytes: Buffer, pixelTag = '7FE00010'): SharedInstance {
  const parsed = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
  const first = (tag: string, from = parsed.dict) => String(from[tag]?.Value?.[0]);
  return {
    bytes,
    study: first('0020000D'),
    series: first('0020000E'),
    sop: first('00080018'),
    transferSyntax: first('00020010', parsed.meta),
    dict: parsed.dict,
    frames: (parsed.dict[pixelTag]?.Value ?? []).map(bytesOf),
  };
}

/** A file of the shared test data (path relative to the shared-data folder), parsed. */
export async function loadShared(relative: string, pixelTag = '7FE00010'): Promise<SharedInstance> {
  return describeInstance(await readFile(path.join(sharedDataDir, relative)), pixelTag);
}

/** STOW-RS of the given files in one multipart request. */
export const stow = (app: FastifyInstance, files: Buffer[]) =>
  app.inject({
    method: 'POST',
    url: '/dicomweb/studies',
    payload: multipartBody(files.map((body) => ({ body }))),
    headers: { 'content-type': STOW_CONTENT_TYPE() },
  });

/** The WADO-RS URL of an instance, under `base` (the DICOMweb root). */
export const instanceUrl = (i: { study: string; series: string; sop: string }, base = '/dicomweb') =>
  `${base}/studies/${i.study}/series/${i.series}/instances/${i.sop}`;
