/**
 * A large generated whole-slide pyramid (VL Whole Slide Microscopy Image, TILED_FULL, JPEG baseline),
 * written tile by tile into Part-10 files so that no level is ever held in memory: a handful of distinct
 * JPEG tiles (H&E-like pink texture with dark purple "nuclei", and white glass) are encoded once and
 * reused as the encapsulated frames of the base level, laid out as an elliptical tissue section so the
 * tissue mask skips the glass around it; a small low-resolution level (≈ 800 px a side) drawn from the
 * same layout is what the server computes its tissue mask on. Both levels carry what slide.ts needs:
 * Total Pixel Matrix Columns/Rows, tile Rows/Columns, DimensionOrganizationType TILED_FULL, PixelSpacing
 * in the Shared Functional Groups' Pixel Measures and Imaged Volume Width/Height.
 *
 * Also `stowFiles`: one STOW-RS request whose multipart body streams the files from disk (exact
 * Content-Length, nothing buffered), for the large-slide test and `npm run bench:wsi`.
 */
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import sharp from 'sharp';
import { writePart10 } from '../dicom/write-part10.js';
import { newUid } from './make-dicom.js';
import { rng } from './chunking.js';

const WSI_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.77.1.6';
const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';

export interface LargeSlideOptions {
  /** Folder the Part-10 files are written to. */
  dir: string;
  /** Base level size in pixels (default 51,200 × 51,200). */
  width?: number;
  height?: number;
  /** Tile side in pixels (default 512). */
  tileSize?: number;
  /** Base pixel spacing in mm (default 0.00025: 0.25 µm/px, "40×"). */
  spacingMm?: number;
  /** Distinct tissue tiles (default 4). */
  variants?: number;
  /** Write a Basic Offset Table (default true); without it the fragments are found by scanning. */
  basicOffsetTable?: boolean;
  /** JPEG quality of the tiles (default 80). */
  quality?: number;
}

export interface LargeSlide {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  baseSopInstanceUid: string;
  width: number;
  height: number;
  tileSize: number;
  tilesAcross: number;
  tilesDown: number;
  spacingMm: number;
  /** Base tiles that are tissue (the rest are white glass). */
  tissueTiles: number;
  /** The Part-10 files, base level first. */
  files: string[];
  bytes: number;
}

/** Raw RGB of one tissue tile: pink eosin background with texture, dark haematoxylin nuclei of 6–9 µm. */
function tissuePixels(size: number, seed: number, spacingMm: number): Buffer {
  const random = rng(seed);
  const out = Buffer.alloc(size * size * 3);
  const phase = random() * 6.28;
  for (let y = 0; y < size; y += 1) {
    for (let x = 0; x < size; x += 1) {
      const wave = Math.sin(x / 23 + phase) * Math.cos(y / 31 - phase) * 12;
      const noise = (random() - 0.5) * 16;
      const i = (y * size + x) * 3;
      out[i] = clamp(232 + wave + noise);
      out[i + 1] = clamp(178 + wave * 1.4 + noise);
      out[i + 2] = clamp(212 + wave + noise);
    }
  }
  const nuclei = Math.round((size * size) / 2600);
  for (let n = 0; n < nuclei; n += 1) {
    const cx = random() * size;
    const cy = random() * size;
    const radius = (0.003 + random() * 0.0015) / spacingMm; // 6–9 µm across
    const ry = radius * (0.7 + random() * 0.3);
    for (let y = Math.max(0, Math.floor(cy - ry)); y < Math.min(size, Math.ceil(cy + ry)); y += 1) {
      for (let x = Math.max(0, Math.floor(cx - radius)); x < Math.min(size, Math.ceil(cx + radius)); x += 1) {
        const d = ((x - cx) / radius) ** 2 + ((y - cy) / ry) ** 2;
        if (d > 1) continue;
        const i = (y * size + x) * 3;
        const shade = (random() - 0.5) * 20;
        out[i] = clamp(88 + shade);
        out[i + 1] = clamp(52 + shade);
        out[i + 2] = clamp(128 + shade);
      }
    }
  }
  return out;
}
const clamp = (v: number) => Math.max(0, Math.min(255, Math.round(v)));

/** The layout: which tiles are tissue, and which variant. An ellipse with two holes of glass. */
function tileKind(row: number, column: number, tilesAcross: number, tilesDown: number, variants: number): number {
  const u = (column + 0.5) / tilesAcross - 0.5;
  const v = (row + 0.5) / tilesDown - 0.5;
  const inside = (u / 0.42) ** 2 + (v / 0.34) ** 2 <= 1;
  const hole = ((u - 0.15) / 0.08) ** 2 + (v / 0.1) ** 2 <= 1 || ((u + 0.2) / 0.06) ** 2 + ((v - 0.12) / 0.06) ** 2 <= 1;
  if (!inside || hole) return -1;
  return ((row * 7919 + column * 104_729) >>> 0) % variants;
}

async function jpeg(raw: Buffer, width: number, height: number, quality: number): Promise<Buffer> {
  return sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality, chromaSubsampling: '4:2:0' }).toBuffer();
}

interface LevelHeader {
  sopInstanceUid: string;
  width: number;
  height: number;
  tileSize: number;
  frames: number;
  spacingMm: number;
  imageType: string[];
}

function levelDataset(ids: { study: string; series: string; frameOfReference: string }, level: LevelHeader, instanceNumber: number): Record<string, unknown> {
  return {
    SOPClassUID: WSI_SOP_CLASS,
    SOPInstanceUID: level.sopInstanceUid,
    StudyInstanceUID: ids.study,
    SeriesInstanceUID: ids.series,
    FrameOfReferenceUID: ids.frameOfReference,
    ImageType: level.imageType,
    PatientName: 'LARGE^SLIDE',
    PatientID: 'LARGE-SLIDE-1',
    StudyDate: '20261125',
    StudyTime: '120000',
    AccessionNumber: 'WSI50K',
    Modality: 'SM',
    SeriesNumber: '1',
    InstanceNumber: String(instanceNumber),
    DimensionOrganizationType: 'TILED_FULL',
    TotalPixelMatrixColumns: level.width,
    TotalPixelMatrixRows: level.height,
    TotalPixelMatrixFocalPlanes: 1,
    NumberOfOpticalPaths: 1,
    ImagedVolumeWidth: level.width * level.spacingMm,
    ImagedVolumeHeight: level.height * level.spacingMm,
    ImagedVolumeDepth: 0.001,
    SharedFunctionalGroupsSequence: [
      { PixelMeasuresSequence: [{ PixelSpacing: [level.spacingMm, level.spacingMm], SliceThickness: 0.001 }] },
    ],
    NumberOfFrames: String(level.frames),
    Rows: level.tileSize,
    Columns: level.tileSize,
    SamplesPerPixel: 3,
    PhotometricInterpretation: 'YBR_FULL_422',
    PlanarConfiguration: 0,
    BitsAllocated: 8,
    BitsStored: 8,
    HighBit: 7,
    PixelRepresentation: 0,
    LossyImageCompression: '01',
    BurnedInAnnotation: 'NO',
    SpecimenLabelInImage: 'NO',
    VolumetricProperties: 'VOLUME',
  };
}

const item = (length: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(0xfffe, 0);
  b.writeUInt16LE(0xe000, 2);
  b.writeUInt32LE(length, 4);
  return b;
};

/** Writes one level: header, then every frame as a fragment; `frameAt(i)` picks the (reused) JPEG. */
async function writeLevel(file: string, dataset: Record<string, unknown>, frames: number, frameAt: (index: number) => Buffer, withOffsets: boolean): Promise<number> {
  const header = writePart10(dataset, JPEG_BASELINE);
  const pixelData = Buffer.alloc(12);
  pixelData.writeUInt16LE(0x7fe0, 0);
  pixelData.writeUInt16LE(0x0010, 2);
  pixelData.write('OB', 4, 'latin1');
  pixelData.writeUInt32LE(0xffffffff, 8);
  const handle = await open(file, 'w');
  let written = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    if (pending.length === 0) return;
    await handle.write(Buffer.concat(pending));
    written += pendingBytes;
    pending = [];
    pendingBytes = 0;
  };
  const push = async (b: Buffer) => {
    pending.push(b);
    pendingBytes += b.length;
    if (pendingBytes >= 4 * 1024 * 1024) await flush();
  };
  try {
    await push(header);
    await push(pixelData);
    // Fragments are even-length (a JPEG of odd length gets a 0 pad byte after its EOI).
    const fragmentLength = (i: number) => frameAt(i).length + (frameAt(i).length & 1);
    if (withOffsets) {
      const table = Buffer.alloc(frames * 4);
      let offset = 0;
      for (let i = 0; i < frames; i += 1) {
        table.writeUInt32LE(offset, i * 4);
        offset += 8 + fragmentLength(i);
      }
      await push(item(table.length));
      await push(table);
    } else {
      await push(item(0));
    }
    const pad = Buffer.alloc(1);
    for (let i = 0; i < frames; i += 1) {
      const bytes = frameAt(i);
      await push(item(fragmentLength(i)));
      await push(bytes);
      if (bytes.length & 1) await push(pad);
    }
    const end = Buffer.alloc(8);
    end.writeUInt16LE(0xfffe, 0);
    end.writeUInt16LE(0xe0dd, 2);
    await push(end);
    await flush();
  } finally {
    await handle.close();
  }
  return written;
}

/** Generates the pyramid into `options.dir` (streamed: memory is a few tiles whatever the size). */
export async function writeLargeSlide(options: LargeSlideOptions): Promise<LargeSlide> {
  const width = options.width ?? 51_200;
  const height = options.height ?? 51_200;
  const tileSize = options.tileSize ?? 512;
  const spacingMm = options.spacingMm ?? 0.00025;
  const variants = options.variants ?? 4;
  const quality = options.quality ?? 80;
  const tilesAcross = Math.ceil(width / tileSize);
  const tilesDown = Math.ceil(height / tileSize);
  const ids = { study: newUid(), series: newUid(), frameOfReference: newUid() };

  const raws = Array.from({ length: variants }, (_, k) => tissuePixels(tileSize, 1000 + k, spacingMm));
  const tissueJpegs = await Promise.all(raws.map((raw) => jpeg(raw, tileSize, tileSize, quality)));
  const white = await jpeg(Buffer.alloc(tileSize * tileSize * 3, 255), tileSize, tileSize, quality);
  const meanColour = raws.map((raw) => {
    const sum = [0, 0, 0];
    for (let i = 0; i < raw.length; i += 3) for (let c = 0; c < 3; c += 1) sum[c] = sum[c]! + raw[i + c]!;
    return sum.map((s) => Math.round(s / (raw.length / 3)));
  });

  let tissueTiles = 0;
  const kinds = new Int8Array(tilesAcross * tilesDown);
  for (let r = 0; r < tilesDown; r += 1) {
    for (let c = 0; c < tilesAcross; c += 1) {
      const kind = tileKind(r, c, tilesAcross, tilesDown, variants);
      kinds[r * tilesAcross + c] = kind;
      if (kind >= 0) tissueTiles += 1;
    }
  }

  const baseSop = newUid();
  const files: string[] = [];
  let bytes = 0;
  const baseFile = path.join(options.dir, 'level-0.dcm');
  bytes += await writeLevel(
    baseFile,
    levelDataset(ids, { sopInstanceUid: baseSop, width, height, tileSize, frames: tilesAcross * tilesDown, spacingMm, imageType: ['ORIGINAL', 'PRIMARY', 'VOLUME', 'NONE'] }, 1),
    tilesAcross * tilesDown,
    (i) => (kinds[i]! < 0 ? white : tissueJpegs[kinds[i]!]!),
    options.basicOffsetTable ?? true,
  );
  files.push(baseFile);

  // The low-resolution level: ≈ 800 px on the long side, each base tile a block of its mean colour.
  const scale = Math.max(1, 2 ** Math.ceil(Math.log2(Math.max(width, height) / 800)));
  const lowWidth = Math.ceil(width / scale);
  const lowHeight = Math.ceil(height / scale);
  const lowTile = 512;
  const lowAcross = Math.ceil(lowWidth / lowTile);
  const lowDown = Math.ceil(lowHeight / lowTile);
  const lowTiles: Buffer[] = [];
  for (let tr = 0; tr < lowDown; tr += 1) {
    for (let tc = 0; tc < lowAcross; tc += 1) {
      const raw = Buffer.alloc(lowTile * lowTile * 3, 255);
      for (let y = 0; y < lowTile; y += 1) {
        const ly = tr * lowTile + y;
        if (ly >= lowHeight) break;
        const row = Math.min(tilesDown - 1, Math.floor((ly * scale) / tileSize));
        for (let x = 0; x < lowTile; x += 1) {
          const lx = tc * lowTile + x;
          if (lx >= lowWidth) break;
          const kind = kinds[row * tilesAcross + Math.min(tilesAcross - 1, Math.floor((lx * scale) / tileSize))]!;
          if (kind < 0) continue;
          const colour = meanColour[kind]!;
          raw.set(colour, (y * lowTile + x) * 3);
        }
      }
      lowTiles.push(await jpeg(raw, lowTile, lowTile, quality));
    }
  }
  const lowFile = path.join(options.dir, 'level-1.dcm');
  bytes += await writeLevel(
    lowFile,
    levelDataset(ids, { sopInstanceUid: newUid(), width: lowWidth, height: lowHeight, tileSize: lowTile, frames: lowTiles.length, spacingMm: spacingMm * scale, imageType: ['DERIVED', 'PRIMARY', 'VOLUME', 'RESAMPLED'] }, 2),
    lowTiles.length,
    (i) => lowTiles[i]!,
    options.basicOffsetTable ?? true,
  );
  files.push(lowFile);

  return { studyInstanceUid: ids.study, seriesInstanceUid: ids.series, baseSopInstanceUid: baseSop, width, height, tileSize, tilesAcross, tilesDown, spacingMm, tissueTiles, files, bytes };
}

/**
 * STOW-RS of Part-10 files in one request, each part streamed from disk (the body is never held).
 * Returns the HTTP status and the response body.
 */
export async function stowFiles(baseUrl: string, files: string[], headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const boundary = `large-slide-${Date.now().toString(36)}`;
  const partHead = Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
  const crlf = Buffer.from('\r\n');
  const close = Buffer.from(`--${boundary}--\r\n`);
  const sizes = await Promise.all(files.map(async (f) => (await stat(f)).size));
  const length = sizes.reduce((sum, size) => sum + partHead.length + size + crlf.length, close.length);
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${baseUrl}/dicomweb/studies`,
      {
        method: 'POST',
        headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`, 'content-length': length, accept: 'application/dicom+json', ...headers },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('error', reject);
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    request.on('error', reject);
    void (async () => {
      const write = (chunk: Buffer) => new Promise<void>((ok, fail) => (request.write(chunk, (err) => (err ? fail(err) : ok()))));
      for (const file of files) {
        await write(partHead);
        for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
          if (!request.write(chunk as Buffer)) await new Promise((ok) => request.once('drain', ok));
        }
        await write(crlf);
      }
      request.end(close);
    })().catch((err: unknown) => request.destroy(err as Error));
  });
}
