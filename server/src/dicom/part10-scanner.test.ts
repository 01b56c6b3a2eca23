import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { InvalidDicomError } from '../errors.js';
import type { InstanceHeader } from './instance-header.js';
import { scanPart10 } from './part10-scanner.js';
import * as TS from './transfer-syntax.js';
import { chunked, fixed, rng } from '../test-support/chunking.js';

const DATA = '/work/shared/data';
const CORPUS_DIRS = [
  'dicom-pydicom',
  'dicom-orthanc-tests',
  'dicom-dcmjs-tests',
  'dicom-highdicom',
  'wsi-cmu1-small-region',
  'endoscopy-dicom-kvasir',
  'wsi-openslide-python-fixtures',
];
const MAX_HEADER = 64 * 1024 * 1024;

// dcmjs, as the reference parser (full parse, pixel data included).
interface DcmjsElement {
  vr: string;
  Value?: unknown[];
}
interface Dcmjs {
  data: {
    DicomMessage: {
      readFile(b: ArrayBuffer, o?: { ignoreErrors?: boolean }): { dict: Record<string, DcmjsElement>; meta: Record<string, DcmjsElement> };
    };
  };
  log: { setLevel(l: string): void; getLogger(n: string): { setLevel(l: string): void } };
}
const dcmjs = createRequire(import.meta.url)('dcmjs') as Dcmjs;
dcmjs.log.setLevel('silent');
dcmjs.log.getLogger('validation.dcmjs').setLevel('silent');

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out;
}

const random = (seed: number, max: number) => {
  const r = rng(seed);
  return () => 1 + r() * max;
};

interface Outcome {
  header?: InstanceHeader;
  error?: unknown;
  sunk: Buffer;
}

async function scan(buf: Buffer, size: () => number, maxHeaderBytes = MAX_HEADER): Promise<Outcome> {
  const parts: Buffer[] = [];
  try {
    const header = await scanPart10(chunked(buf, size), (c) => void parts.push(Buffer.from(c)), { maxHeaderBytes });
    return { header, sunk: Buffer.concat(parts) };
  } catch (error) {
    return { error, sunk: Buffer.concat(parts) };
  }
}

const bytesOf = (v: unknown): Buffer => {
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return Buffer.concat(v.map(bytesOf));
  throw new Error(`not binary: ${typeof v}`);
};

const frameBytes = (file: Buffer, spans: ReadonlyArray<readonly [number, number]>): Buffer =>
  Buffer.concat(spans.map(([o, l]) => file.subarray(o, o + l)));

function dcmjsFull(buf: Buffer): ReturnType<Dcmjs['data']['DicomMessage']['readFile']> | undefined {
  try {
    return dcmjs.data.DicomMessage.readFile(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer);
  } catch {
    return undefined;
  }
}

const firstValue = (el: DcmjsElement | undefined): string | undefined => {
  const v = el?.Value?.[0];
  return typeof v === 'string' ? v.replace(/[\0 ]+$/, '') : undefined;
};

// Files whose encapsulated frames cannot be located by design and so have frames = [] (see report).
const summary = { accepted: 0, refused: new Map<string, string[]>(), comparedUids: 0, nativeFiles: 0, encapsulatedPerFrame: 0, encapsulatedWhole: 0, multiFrameChecked: [] as string[] };

const corpus = CORPUS_DIRS.flatMap((d) => listFiles(join(DATA, d)));

describe('scanPart10 over the shared corpus', () => {
  it('found the corpus', () => {
    expect(corpus.length).toBeGreaterThan(300);
  });

  it.each(corpus.map((f) => [relative(DATA, f), f]))(
    '%s',
    async (_name, file) => {
      const buf = readFileSync(file);
      const a = await scan(buf, fixed(64 * 1024));
      // Chunk-boundary independence: tiny chunks for small files, random ones for all.
      const b = await scan(buf, buf.length <= 64 * 1024 ? fixed(1) : random(buf.length, 97));
      const c = await scan(buf, random(buf.length ^ 0x5eed, buf.length <= 256 * 1024 ? 13 : 4096));
      for (const o of [a, b, c]) {
        if (o.error !== undefined) {
          expect(o.error, String(o.error)).toBeInstanceOf(InvalidDicomError);
          // The sink saw a prefix of the file, in order.
          expect(buf.subarray(0, o.sunk.length).equals(o.sunk)).toBe(true);
        } else {
          expect(o.sunk.equals(buf)).toBe(true);
        }
      }
      expect(b.header).toEqual(a.header);
      expect(c.header).toEqual(a.header);
      expect((b.error as Error | undefined)?.message).toEqual((a.error as Error | undefined)?.message);
      expect((c.error as Error | undefined)?.message).toEqual((a.error as Error | undefined)?.message);

      if (a.error !== undefined) {
        const reason = (a.error as Error).message.replace(/\d+/g, 'N');
        summary.refused.set(reason, [...(summary.refused.get(reason) ?? []), relative(DATA, file)]);
        return;
      }
      summary.accepted++;
      const h = a.header!;
      // Never patient data in JSON keys we rely on; the meta group is excluded.
      expect(Object.keys(h.dataset).some((k) => k.startsWith('0002'))).toBe(false);
      const px = h.pixelData;
      if (px !== undefined && !px.isVideo && !TS.isDeflated(h.transferSyntaxUid)) {
        expect(px.frames.length, 'frames = NumberOfFrames').toBe(h.numberOfFrames);
      }

      const ref = dcmjsFull(buf);
      // Nothing to compare with where dcmjs cannot fully parse the file (some dcmjs failures are silent:
      // e.g. SC_rgb_jpeg.dcm declares an explicit syntax but is implicit, and dcmjs stops after one element).
      if (ref === undefined || ref.dict['0020000D'] === undefined) return;
      const refSop = firstValue(ref.dict['00080018']) ?? firstValue(ref.meta['00020003']);
      expect(h.sopInstanceUid).toBe(refSop);
      expect(h.studyInstanceUid).toBe(firstValue(ref.dict['0020000D']));
      expect(h.seriesInstanceUid).toBe(firstValue(ref.dict['0020000E']));
      summary.comparedUids++;
      if (px === undefined || px.frames.length === 0) return;
      if (px.frames.length > 1) summary.multiFrameChecked.push(`${relative(DATA, file)} (${px.frames.length}${px.encapsulated ? ' encapsulated' : ''})`);
      const refPx = ref.dict[px.tag]?.Value;
      expect(refPx, 'dcmjs sees the same pixel data element').toBeDefined();
      if (!px.encapsulated) {
        summary.nativeFiles++;
        const whole = bytesOf(refPx);
        for (const spans of px.frames) {
          const [[offset, length]] = spans as [[number, number]];
          expect(frameBytes(buf, spans).equals(whole.subarray(offset - px.valueOffset, offset - px.valueOffset + length))).toBe(true);
        }
      } else {
        const refFrames = (refPx as unknown[]).map(bytesOf);
        if (refFrames.length === px.frames.length) {
          summary.encapsulatedPerFrame++;
          px.frames.forEach((spans, i) => expect(frameBytes(buf, spans).equals(refFrames[i]!), `frame ${i}`).toBe(true));
        } else {
          // dcmjs without a Basic Offset Table returns fragments, not frames: compare everything.
          summary.encapsulatedWhole++;
          expect(Buffer.concat(px.frames.map((s) => frameBytes(buf, s))).equals(Buffer.concat(refFrames))).toBe(true);
        }
      }
    },
    30_000,
  );

  it('summary (accepted vs refused, by reason)', () => {
    const refused = [...summary.refused.entries()].map(([reason, files]) => `${files.length} × ${reason}\n    ${files.join('\n    ')}`);
    console.log(
      `accepted ${summary.accepted}, refused ${[...summary.refused.values()].flat().length}\n${refused.join('\n')}\n` +
        `compared with dcmjs: UIDs ${summary.comparedUids}, native frames ${summary.nativeFiles} files, ` +
        `encapsulated per frame ${summary.encapsulatedPerFrame} files, encapsulated as a whole ${summary.encapsulatedWhole} files\n` +
        `multi-frame files checked frame by frame:\n    ${summary.multiFrameChecked.join('\n    ')}`,
    );
  });
});

describe('scanPart10 on specific corpus files', () => {
  const scanFile = async (rel: string) => {
    const out = await scan(readFileSync(join(DATA, rel)), fixed(4096));
    if (out.error) throw out.error;
    return out.header!;
  };

  it('multi-frame JPEG baseline (34 frames, BOT): one fragment per frame', async () => {
    const h = await scanFile('dicom-orthanc-tests/misc/Issue16.dcm');
    expect(h.numberOfFrames).toBe(34);
    expect(h.pixelData?.frames).toHaveLength(34);
    const file = readFileSync(join(DATA, 'dicom-orthanc-tests/misc/Issue16.dcm'));
    for (const f of h.pixelData!.frames) expect(frameBytes(file, f).subarray(0, 2).toString('hex')).toBe('ffd8');
  });

  it('WSI TILED_FULL level 0 (30 frames) and Orthanc TILED_SPARSE (108 frames)', async () => {
    expect((await scanFile('wsi-cmu1-small-region/tiled-full-gcp-wsi2dcm/level-0-frames-0-30.dcm')).pixelData?.frames).toHaveLength(30);
    expect((await scanFile('wsi-cmu1-small-region/tiled-sparse-orthanc-wsi/cmu1-level-00.dcm')).pixelData?.frames).toHaveLength(108);
  });

  it('JPEG-LS without a Basic Offset Table: 25 frames, one fragment each', async () => {
    const h = await scanFile('dicom-highdicom/sm_image_jpegls_nobot.dcm');
    expect(h.pixelData?.frames).toHaveLength(25);
  });

  it('RLE multi-frame and JPEG 2000 multi-frame', async () => {
    expect((await scanFile('dicom-pydicom/pydicom-data/emri_small_RLE.dcm')).pixelData?.frames).toHaveLength(10);
    expect((await scanFile('dicom-pydicom/pydicom-data/emri_small_jpeg_2k_lossless.dcm')).pixelData?.frames).toHaveLength(10);
    expect((await scanFile('dicom-pydicom/debian-python3-pydicom-2.3.1/SC_rgb_rle_32bit_2frame.dcm')).pixelData?.frames).toHaveLength(2);
  });

  it('TILED_FULL segmentation with 1250 bit-packed frames', async () => {
    const h = await scanFile('dicom-highdicom/seg_image_sm_dots_tiled_full.dcm');
    expect(h.pixelData?.bitPacked).toBe(true);
    expect(h.pixelData?.frames).toHaveLength(1250);
    // 10x10 bits = 100 bits per frame: frame 1 covers bits 100..199 = bytes 12..24.
    const [f0, f1] = h.pixelData!.frames.map((f) => f[0]!);
    expect(f1![0] - f0![0]).toBe(12);
    expect(f1![1]).toBe(13);
  });

  it('video: one entry holding every fragment', async () => {
    const h = await scanFile('endoscopy-dicom-kvasir/video-endoscopic-h264-high41-720x576-200frames.dcm');
    expect(h.transferSyntaxUid).toBe(TS.MPEG4_HP41);
    expect(h.numberOfFrames).toBe(200);
    expect(h.pixelData?.isVideo).toBe(true);
    expect(h.pixelData?.frames).toHaveLength(1);
  });

  it('deflated data set: header parsed, frames empty, offsets meaningless', async () => {
    for (const rel of ['dicom-orthanc-tests/TransferSyntaxes/1.2.840.10008.1.2.1.99.dcm', 'dicom-pydicom/debian-python3-pydicom-2.3.1/image_dfl.dcm']) {
      const h = await scanFile(rel);
      expect(h.transferSyntaxUid).toBe(TS.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN);
      const ref = dcmjsFull(readFileSync(join(DATA, rel)))!;
      expect(h.sopInstanceUid).toBe(firstValue(ref.dict['00080018']));
      expect(h.rows).toBe(ref.dict['00280010']?.Value?.[0]);
      expect(h.pixelData?.frames).toEqual([]);
      expect(h.pixelData?.valueOffset).toBe(-1);
    }
  });

  it('Explicit VR Big Endian and Implicit VR', async () => {
    const be = await scanFile('dicom-pydicom/pydicom-data/SC_rgb_expb_16bit_2frame.dcm');
    expect(be.pixelData?.frames).toHaveLength(2);
    expect(be.pixelData?.frames[1]![0]![1]).toBe(100 * 100 * 3 * 2);
    const imp = await scanFile('dicom-dcmjs-tests/cine-test.dcm');
    expect(imp.pixelData?.frames).toHaveLength(8);
  });

  it('sequences sent as UN with undefined length (CP-246) come out as parsed sequences', async () => {
    const h = await scanFile('dicom-orthanc-tests/misc/2021-02-19-MalaterreCP246.dcm');
    const item = h.dataset['00081110']?.Value?.[0] as Record<string, { Value?: unknown[] }>;
    expect(h.dataset['00081110']?.vr).toBe('SQ');
    expect(item['00081150']?.Value?.[0]).toBe('1.2.840.10008.3.1.2.3.1');
  });

  it('refuses raw data sets without preamble, deep nesting and out-of-range images', async () => {
    for (const [rel, message] of [
      ['dicom-pydicom/debian-python3-pydicom-2.3.1/no_meta.dcm', /Part-10/],
      ['dicom-orthanc-tests/edge-cases/2026-05-06-Deeply-Nested-Sequence.dcm', /nested deeper/],
      ['dicom-orthanc-tests/edge-cases/2026-05-26-oob-monochrome-65535.dcm', /Pixel Data holds/],
      ['dicom-pydicom/debian-python3-pydicom-2.3.1/MR_truncated.dcm', /truncated/],
    ] as const) {
      await expect(scanFile(rel), rel).rejects.toThrow(message);
    }
  });

  it('messages never include patient names or IDs', async () => {
    const file = readFileSync(join(DATA, 'dicom-pydicom/debian-python3-pydicom-2.3.1/CT_small.dcm'));
    const ref = dcmjsFull(file)!;
    const name = (ref.dict['00100010']?.Value?.[0] as { Alphabetic: string }).Alphabetic;
    const id = firstValue(ref.dict['00100020'])!;
    for (let cut = 140; cut < file.length; cut += 97) {
      const o = await scan(file.subarray(0, cut), fixed(512));
      // A cut exactly between two header elements leaves a well-formed file without Pixel Data.
      if (o.error === undefined) continue;
      expect(o.error).toBeInstanceOf(InvalidDicomError);
      expect((o.error as Error).message).not.toContain(name);
      expect((o.error as Error).message).not.toContain(id);
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// Hand-built files

type El = [tag: number, vr: string, value: Buffer | string | number[]];

function encodeValue(vr: string, value: Buffer | string | number[]): Buffer {
  if (Buffer.isBuffer(value)) return value.length % 2 ? Buffer.concat([value, Buffer.alloc(1)]) : value;
  if (typeof value === 'string') {
    const pad = vr === 'UI' ? '\0' : ' ';
    return Buffer.from(value.length % 2 ? value + pad : value, 'latin1');
  }
  if (vr === 'US') {
    const b = Buffer.alloc(value.length * 2);
    value.forEach((v, i) => b.writeUInt16LE(v, i * 2));
    return b;
  }
  if (vr === 'OV') {
    const b = Buffer.alloc(value.length * 8);
    value.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), i * 8));
    return b;
  }
  throw new Error(vr);
}

const LONG = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

function explicitLE(tag: number, vr: string, value: Buffer, undefinedLength = false): Buffer {
  const long = LONG.has(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(tag >>> 16, 0);
  h.writeUInt16LE(tag & 0xffff, 2);
  h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(undefinedLength ? 0xffffffff : value.length, 8);
  else h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}

const item = (content: Buffer, undefinedLength = false): Buffer => {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(0xe000fffe, 0);
  h.writeUInt32LE(undefinedLength ? 0xffffffff : content.length, 4);
  return undefinedLength ? Buffer.concat([h, content, Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0])]) : Buffer.concat([h, content]);
};
const SEQ_DELIM = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);

function part10(ts: string, elements: Buffer[]): Buffer {
  const meta = Buffer.concat([
    explicitLE(0x00020001, 'OB', Buffer.from([0, 1])),
    explicitLE(0x00020002, 'UI', encodeValue('UI', '1.2.840.10008.5.1.4.1.1.7')),
    explicitLE(0x00020003, 'UI', encodeValue('UI', '1.2.3.4.5.6')),
    explicitLE(0x00020010, 'UI', encodeValue('UI', ts)),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(meta.length);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), explicitLE(0x00020000, 'UL', groupLength), meta, ...elements]);
}

const ids = (): Buffer[] =>
  (
    [
      [0x00080016, 'UI', '1.2.840.10008.5.1.4.1.1.7'],
      [0x00080018, 'UI', '1.2.3.4.5.6'],
      [0x00100010, 'PN', 'SECRET^PATIENT'],
      [0x0020000d, 'UI', '1.2.3.4'],
      [0x0020000e, 'UI', '1.2.3.4.5'],
    ] as El[]
  ).map(([t, vr, v]) => explicitLE(t, vr, encodeValue(vr, v)));

const image = (rows: number, cols: number, bits: number, frames: number, spp = 1): Buffer[] => [
  explicitLE(0x00280002, 'US', encodeValue('US', [spp])),
  explicitLE(0x00280004, 'CS', encodeValue('CS', spp === 3 ? 'RGB' : 'MONOCHROME2')),
  explicitLE(0x00280008, 'IS', encodeValue('IS', String(frames))),
  explicitLE(0x00280010, 'US', encodeValue('US', [rows])),
  explicitLE(0x00280011, 'US', encodeValue('US', [cols])),
  explicitLE(0x00280100, 'US', encodeValue('US', [bits])),
];

const patterned = (n: number, seed: number): Buffer => {
  const r = rng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
};

function encapsulated(fragments: Buffer[], bot: number[] = []): Buffer {
  const botBuf = Buffer.alloc(bot.length * 4);
  bot.forEach((o, i) => botBuf.writeUInt32LE(o, i * 4));
  return Buffer.concat([explicitLE(0x7fe00010, 'OB', Buffer.alloc(0), true), item(botBuf), ...fragments.map((f) => item(f)), SEQ_DELIM]);
}

const jpegFrag = (n: number, seed: number, first: boolean): Buffer => {
  const b = patterned(n, seed);
  b[0] = first ? 0xff : 0x12;
  b[1] = first ? 0xd8 : 0x34;
  return b;
};

describe('scanPart10 on generated files', () => {
  it('native multi-frame: spans, trailing elements after Pixel Data, dcmjs agrees', async () => {
    const pixels = patterned(3 * 4 * 5 * 2, 1);
    const file = part10(TS.EXPLICIT_VR_LITTLE_ENDIAN, [
      ...ids(),
      ...image(4, 5, 16, 3),
      explicitLE(0x7fe00010, 'OW', pixels),
      explicitLE(0xfffcfffc, 'OB', Buffer.alloc(10)),
    ]);
    for (const size of [fixed(1), fixed(7), random(3, 50), fixed(file.length)]) {
      const o = await scan(file, size);
      expect(o.error).toBeUndefined();
      expect(o.sunk.equals(file)).toBe(true);
      const px = o.header!.pixelData!;
      expect(o.header!.numberOfFrames).toBe(3);
      expect(px.frames).toHaveLength(3);
      px.frames.forEach((f, i) => expect(frameBytes(file, f).equals(pixels.subarray(i * 40, (i + 1) * 40))).toBe(true));
      expect(o.header!.dataset['00100010']?.Value?.[0]).toEqual({ Alphabetic: 'SECRET^PATIENT' });
    }
    const ref = dcmjsFull(file)!;
    expect(bytesOf(ref.dict['7FE00010']?.Value).equals(pixels)).toBe(true);
  });

  it('bit-packed frames (BitsAllocated 1, 15 bits per frame) get byte spans covering each frame', async () => {
    const pixels = patterned(6, 2);
    const file = part10(TS.EXPLICIT_VR_LITTLE_ENDIAN, [...ids(), ...image(3, 5, 1, 3), explicitLE(0x7fe00010, 'OB', pixels)]);
    const { header } = await scan(file, fixed(5));
    const px = header!.pixelData!;
    expect(px.bitPacked).toBe(true);
    const v = px.valueOffset;
    expect(px.frames).toEqual([[[v, 2]], [[v + 1, 3]], [[v + 3, 3]]]);
  });

  it('encapsulated without offset table: frames split at JPEG SOI markers', async () => {
    const frags = [jpegFrag(30, 1, true), jpegFrag(21, 2, false), jpegFrag(40, 3, true), jpegFrag(10, 4, true), jpegFrag(12, 5, false), jpegFrag(9, 6, false)];
    const file = part10(TS.JPEG_BASELINE_8BIT, [...ids(), ...image(8, 8, 8, 3), encapsulated(frags)]);
    const { header, error } = await scan(file, random(9, 11));
    expect(error).toBeUndefined();
    const frames = header!.pixelData!.frames.map((f) => frameBytes(file, f));
    expect(frames).toEqual([Buffer.concat(frags.slice(0, 2)), frags[2], Buffer.concat(frags.slice(3))]);
  });

  it('encapsulated with a Basic Offset Table, and with an Extended Offset Table', async () => {
    const frags = [jpegFrag(30, 1, true), jpegFrag(22, 2, false), jpegFrag(40, 3, true), jpegFrag(10, 4, true)];
    // Offsets of each frame's first item tag, relative to the first fragment's item tag.
    const rel = [0, 8 + 30 + 8 + 22, 8 + 30 + 8 + 22 + 8 + 40];
    const expected = [Buffer.concat([frags[0]!, frags[1]!]), frags[2]!, frags[3]!];
    const withBot = part10(TS.JPEG_BASELINE_8BIT, [...ids(), ...image(8, 8, 8, 3), encapsulated(frags, rel)]);
    const a = await scan(withBot, fixed(3));
    expect(a.header!.pixelData!.frames.map((f) => frameBytes(withBot, f))).toEqual(expected);
    const withEot = part10(TS.JPEG_BASELINE_8BIT, [
      ...ids(),
      ...image(8, 8, 8, 3),
      explicitLE(0x7fe00001, 'OV', encodeValue('OV', rel)),
      explicitLE(0x7fe00002, 'OV', encodeValue('OV', [30 + 22, 40, 10])),
      encapsulated(frags),
    ]);
    const b = await scan(withEot, fixed(5));
    expect(b.header!.pixelData!.frames.map((f) => frameBytes(withEot, f))).toEqual(expected);
  });

  it('video transfer syntax: all fragments in one entry even with many frames', async () => {
    const frags = [patterned(100, 1), patterned(50, 2), patterned(70, 3)];
    const file = part10(TS.HEVC_MP51, [...ids(), ...image(8, 8, 8, 60), encapsulated(frags)]);
    const { header } = await scan(file, fixed(64));
    expect(header!.pixelData!.isVideo).toBe(true);
    expect(header!.pixelData!.frames).toHaveLength(1);
    expect(frameBytes(file, header!.pixelData!.frames[0]!).equals(Buffer.concat(frags))).toBe(true);
  });

  it('nested undefined/defined-length sequences, UN of undefined length, icon with encapsulated pixel data', async () => {
    const inner = explicitLE(0x00080100, 'SH', encodeValue('SH', 'CODE1'));
    const definedSeq = explicitLE(0x00081115, 'SQ', Buffer.concat([item(inner), item(inner)]));
    const nested = explicitLE(0x0040a730, 'SQ', Buffer.concat([item(Buffer.concat([inner, definedSeq]), true), SEQ_DELIM]), true);
    // UN with undefined length: content in Implicit VR LE (PS3.5 §6.2.2).
    const implicitEl = Buffer.alloc(8 + 6);
    implicitEl.writeUInt32LE(0x01000008, 0); // (0008,0100)
    implicitEl.writeUInt32LE(6, 4);
    implicitEl.write('CODE2 ', 8, 'latin1');
    const un = explicitLE(0x00081032, 'UN', Buffer.concat([item(implicitEl, true), SEQ_DELIM]), true);
    const icon = explicitLE(
      0x00880200,
      'SQ',
      Buffer.concat([item(Buffer.concat([explicitLE(0x7fe00010, 'OB', Buffer.alloc(0), true), item(Buffer.alloc(0)), item(jpegFrag(20, 1, true)), SEQ_DELIM]), true), SEQ_DELIM]),
      true,
    );
    const file = part10(TS.JPEG_BASELINE_8BIT, [...ids(), un, nested, icon, ...image(8, 8, 8, 1), encapsulated([jpegFrag(44, 2, true)])]);
    const { header, error } = await scan(file, fixed(3));
    expect(error).toBeUndefined();
    const ds = header!.dataset;
    expect(ds['00081032']).toEqual({ vr: 'SQ', Value: [{ '00080100': { vr: 'SH', Value: ['CODE2'] } }] });
    const nestedItem = ds['0040A730']?.Value?.[0] as Record<string, { Value?: unknown[] }>;
    expect(nestedItem['00081115']?.Value).toHaveLength(2);
    expect(header!.pixelData!.frames).toHaveLength(1);
  });

  it('deflated data set generated here (inflated only as far as the header)', async () => {
    const dataset = Buffer.concat([...ids(), ...image(4, 4, 8, 1), explicitLE(0x7fe00010, 'OB', patterned(16, 1))]);
    const file = Buffer.concat([part10(TS.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, []), deflateRawSync(dataset)]);
    for (const size of [fixed(1), fixed(100)]) {
      const o = await scan(file, size);
      expect(o.error).toBeUndefined();
      expect(o.sunk.equals(file)).toBe(true);
      expect(o.header!.rows).toBe(4);
    }
    // A corrupt deflate stream is an InvalidDicomError, not a zlib error.
    const corrupt = Buffer.concat([part10(TS.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, []), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x13])]);
    expect((await scan(corrupt, fixed(2))).error).toBeInstanceOf(InvalidDicomError);
  });

  it('truncated copies of a valid file are refused with InvalidDicomError', async () => {
    const file = readFileSync(join(DATA, 'dicom-pydicom/debian-python3-pydicom-2.3.1/CT_small.dcm'));
    for (const cut of [0, 100, 131, 132, 140, 300, 1000, file.length - 1000, file.length - 1]) {
      const o = await scan(file.subarray(0, cut), fixed(256));
      expect(o.error, `cut at ${cut}`).toBeInstanceOf(InvalidDicomError);
    }
    const rle = readFileSync(join(DATA, 'dicom-pydicom/pydicom-data/emri_small_RLE.dcm'));
    const o = await scan(rle.subarray(0, rle.length - 100), fixed(256));
    expect((o.error as Error).message).toMatch(/truncated/);
  });

  it('header limit, missing UIDs, nonsensical lengths', async () => {
    const big = part10(TS.EXPLICIT_VR_LITTLE_ENDIAN, [...ids(), explicitLE(0x00091010, 'OB', Buffer.alloc(100_000))]);
    expect(((await scan(big, fixed(4096), 50_000)).error as Error).message).toMatch(/header larger than 50000/);
    const noStudy = part10(TS.EXPLICIT_VR_LITTLE_ENDIAN, ids().filter((_, i) => i !== 3));
    expect(((await scan(noStudy, fixed(4096))).error as Error).message).toMatch(/Study Instance UID/);
    const overrun = part10(TS.EXPLICIT_VR_LITTLE_ENDIAN, [
      ...ids(),
      explicitLE(0x00081115, 'SQ', item(Buffer.from([0x08, 0x00, 0x00, 0x01, 0x53, 0x48, 0xf0, 0xff, 0x41, 0x41]))),
    ]);
    expect(((await scan(overrun, fixed(4096))).error as Error).message).toMatch(/longer than its enclosing/);
    // The frame/fragment index is bounded by maxHeaderBytes / 16 entries (3125 here).
    const manyFrames = part10(TS.EXPLICIT_VR_LITTLE_ENDIAN, [...ids(), ...image(1, 1, 8, 1_000_000_000), explicitLE(0x7fe00010, 'OB', Buffer.alloc(4000))]);
    expect(((await scan(manyFrames, fixed(4096), 50_000)).error as Error).message).toMatch(/Number of Frames 1000000000 is more than the 3125/);
    const flood = part10(TS.JPEG_BASELINE_8BIT, [...ids(), ...image(8, 8, 8, 1), encapsulated(Array.from({ length: 5000 }, () => Buffer.alloc(0)))]);
    expect(((await scan(flood, fixed(4096), 50_000)).error as Error).message).toMatch(/more than 3125 fragments/);
  });

  it('works behind readMultipart: a bad part fails alone, the next part is still read', async () => {
    const good = readFileSync(join(DATA, 'dicom-pydicom/debian-python3-pydicom-2.3.1/CT_small.dcm'));
    const bad = Buffer.concat([good.subarray(0, 1000), Buffer.alloc(5000, 0xee)]);
    const boundary = 'xyz';
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`),
      bad,
      Buffer.from(`\r\n--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`),
      good,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const { readMultipart } = await import('./multipart-related.js');
    const results: string[] = [];
    for await (const part of readMultipart(chunked(body, random(7, 3000)), boundary)) {
      const stored: Buffer[] = [];
      try {
        const h = await scanPart10(part.body, (c) => void stored.push(Buffer.from(c)), { maxHeaderBytes: MAX_HEADER });
        expect(Buffer.concat(stored).equals(good)).toBe(true);
        results.push(h.sopInstanceUid);
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidDicomError);
        results.push('invalid');
      }
    }
    expect(results).toEqual(['invalid', firstValue(dcmjsFull(good)!.dict['00080018'])]);
  });

  it('errors do not wait for more input; source and sink errors pass through untouched', async () => {
    // A source that sends garbage and then never ends.
    async function* stalled(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(200, 0x41);
      await new Promise(() => {});
    }
    await expect(scanPart10(stalled(), () => {}, { maxHeaderBytes: MAX_HEADER })).rejects.toBeInstanceOf(InvalidDicomError);

    const file = part10(TS.EXPLICIT_VR_LITTLE_ENDIAN, [...ids(), ...image(4, 5, 16, 3), explicitLE(0x7fe00010, 'OW', Buffer.alloc(120))]);
    const boom = new Error('client went away');
    async function* failing(): AsyncGenerator<Buffer> {
      yield file.subarray(0, 300);
      throw boom;
    }
    await expect(scanPart10(failing(), () => {}, { maxHeaderBytes: MAX_HEADER })).rejects.toBe(boom);
    const full = new Error('disk full');
    let calls = 0;
    const sink = () => {
      if (++calls === 3) throw full;
    };
    await expect(scanPart10(chunked(file, fixed(64)), sink, { maxHeaderBytes: MAX_HEADER })).rejects.toBe(full);
    expect(calls).toBe(3);
    // Also when the sink fails on the very last chunk (after Pixel Data), and for a deflated file.
    const withTail = Buffer.concat([file, explicitLE(0xfffcfffc, 'OB', Buffer.alloc(64))]);
    const lastChunk = Math.ceil(withTail.length / 64);
    let n = 0;
    const failLast = () => {
      if (++n === lastChunk) throw full;
    };
    await expect(scanPart10(chunked(withTail, fixed(64)), failLast, { maxHeaderBytes: MAX_HEADER })).rejects.toBe(full);
    const deflated = Buffer.concat([
      part10(TS.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, []),
      deflateRawSync(Buffer.concat([...ids(), ...image(4, 5, 16, 3), explicitLE(0x7fe00010, 'OW', patterned(120, 3))])),
    ]);
    const lastDeflated = Math.ceil(deflated.length / 16);
    n = 0;
    const failLastDeflated = () => {
      if (++n === lastDeflated) throw full;
    };
    await expect(scanPart10(chunked(deflated, fixed(16)), failLastDeflated, { maxHeaderBytes: MAX_HEADER })).rejects.toBe(full);

    // After an error, the sink is not called again even if the source keeps going.
    let after = 0;
    const bad = Buffer.concat([file.subarray(0, 200), Buffer.alloc(5000, 0xee)]);
    await expect(
      scanPart10(chunked(bad, fixed(100)), () => void after++, { maxHeaderBytes: MAX_HEADER }),
    ).rejects.toBeInstanceOf(InvalidDicomError);
    expect(after).toBeLessThan(bad.length / 100);
  });

  it('sink backpressure is awaited, in order', async () => {
    const file = part10(TS.EXPLICIT_VR_LITTLE_ENDIAN, [...ids(), ...image(4, 5, 16, 3), explicitLE(0x7fe00010, 'OW', Buffer.alloc(120))]);
    const seen: Buffer[] = [];
    let inFlight = 0;
    await scanPart10(
      chunked(file, fixed(33)),
      async (c) => {
        expect(inFlight).toBe(0);
        inFlight++;
        await new Promise((r) => setTimeout(r, 1));
        seen.push(c);
        inFlight--;
      },
      { maxHeaderBytes: MAX_HEADER },
    );
    expect(Buffer.concat(seen).equals(file)).toBe(true);
  });

  it('speed: 100 MB native and 20 000-fragment encapsulated files scan well under a second', async () => {
    const frameSize = 1024 * 1024;
    const pixels = Buffer.alloc(100 * frameSize, 7);
    const native = part10(TS.EXPLICIT_VR_LITTLE_ENDIAN, [...ids(), ...image(512, 1024, 16, 100), explicitLE(0x7fe00010, 'OW', pixels)]);
    const chunks: Buffer[] = [];
    for (let i = 0; i < native.length; i += 64 * 1024) chunks.push(native.subarray(i, i + 64 * 1024));
    async function* replay(list: Buffer[]): AsyncGenerator<Buffer> {
      yield* list;
    }
    let t = performance.now();
    const h = await scanPart10(replay(chunks), () => {}, { maxHeaderBytes: MAX_HEADER });
    const nativeMs = performance.now() - t;
    expect(h.pixelData!.frames).toHaveLength(100);

    const frags = Array.from({ length: 20_000 }, (_, i) => jpegFrag(200, i, true));
    const tiles = part10(TS.JPEG_BASELINE_8BIT, [...ids(), ...image(256, 256, 8, 20_000), encapsulated(frags)]);
    const tileChunks: Buffer[] = [];
    for (let i = 0; i < tiles.length; i += 64 * 1024) tileChunks.push(tiles.subarray(i, i + 64 * 1024));
    t = performance.now();
    const w = await scanPart10(replay(tileChunks), () => {}, { maxHeaderBytes: MAX_HEADER });
    const tilesMs = performance.now() - t;
    expect(w.pixelData!.frames).toHaveLength(20_000);
    console.log(`100 MB native: ${nativeMs.toFixed(1)} ms; 20k fragments (${(tiles.length / 1e6).toFixed(1)} MB): ${tilesMs.toFixed(1)} ms`);
    expect(nativeMs).toBeLessThan(1000);
    expect(tilesMs).toBeLessThan(1000);
  });
});
