/**
 * The pyramid of a VL Whole Slide Microscopy series from its WADO-RS metadata: one level per total
 * pixel matrix size, each with its tile grid and where every tile is (instance and frame). TILED_FULL
 * frames are in row-major order (first focal plane and optical path); TILED_SPARSE (and any instance
 * with per-frame Plane Position (Slide)) give each frame's position explicitly.
 */
import { num, nums, seq, str, TAG, values, type DicomJson } from '../dicomweb/dicom-json.js';

export interface TileRef {
  sop: string;
  frame: number;
  transferSyntax: string | undefined;
}

export interface Level {
  width: number;
  height: number;
  tileWidth: number;
  tileHeight: number;
  tilesAcross: number;
  tilesDown: number;
  /** level-0 pixels per pixel of this level (1 for the base). */
  downsample: number;
  /** mm per pixel (row spacing, column spacing) of this level, when known. */
  pixelSpacing: [number, number] | undefined;
  tiles: Map<string, TileRef>;
  /** The SOP Instance UIDs of this level (one per focal plane / optical path or part); they share its total pixel matrix. */
  instances: string[];
}

export const tileKey = (col: number, row: number) => `${col},${row}`;

function pixelSpacingOf(instance: DicomJson): [number, number] | undefined {
  const shared = seq(instance, TAG.SharedFunctionalGroupsSequence)[0];
  const measures = seq(shared, TAG.PixelMeasuresSequence)[0];
  const ps = nums(measures, TAG.PixelSpacing);
  if (ps.length === 2 && ps[0]! > 0 && ps[1]! > 0) return [ps[0]!, ps[1]!];
  // From the imaged volume (mm) over the total matrix.
  const w = num(instance, TAG.ImagedVolumeWidth);
  const h = num(instance, TAG.ImagedVolumeHeight);
  const cols = num(instance, TAG.TotalPixelMatrixColumns);
  const rows = num(instance, TAG.TotalPixelMatrixRows);
  if (w && h && cols && rows) return [h / rows, w / cols];
  return undefined;
}

export function buildPyramid(instances: DicomJson[]): Level[] {
  const bySize = new Map<string, Level>();
  for (const instance of instances) {
    const imageType = values(instance, TAG.ImageType).map(String);
    if (imageType.includes('LABEL') || imageType.includes('OVERVIEW')) continue;
    const sop = str(instance, TAG.SOPInstanceUID);
    const width = num(instance, TAG.TotalPixelMatrixColumns);
    const height = num(instance, TAG.TotalPixelMatrixRows);
    const tileWidth = num(instance, TAG.Columns);
    const tileHeight = num(instance, TAG.Rows);
    if (sop === undefined || !width || !height || !tileWidth || !tileHeight) continue;
    const key = `${width}x${height}`;
    let level = bySize.get(key);
    if (level === undefined) {
      level = {
        width,
        height,
        tileWidth,
        tileHeight,
        tilesAcross: Math.ceil(width / tileWidth),
        tilesDown: Math.ceil(height / tileHeight),
        downsample: 1,
        pixelSpacing: pixelSpacingOf(instance),
        tiles: new Map(),
        instances: [],
      };
      bySize.set(key, level);
    }
    level.instances.push(sop);
    const transferSyntax = str(instance, TAG.TransferSyntaxUID) ?? str(instance, TAG.AvailableTransferSyntaxUID);
    const frames = num(instance, TAG.NumberOfFrames) ?? 1;
    const perFrame = seq(instance, TAG.PerFrameFunctionalGroupsSequence);
    const sparse = str(instance, TAG.DimensionOrganizationType) !== 'TILED_FULL' && perFrame.length === frames;
    if (sparse) {
      perFrame.forEach((item, i) => {
        const pos = seq(item, TAG.PlanePositionSlideSequence)[0];
        const col = num(pos, TAG.ColumnPositionInTotalImagePixelMatrix);
        const row = num(pos, TAG.RowPositionInTotalImagePixelMatrix);
        if (col === undefined || row === undefined) return;
        const key2 = tileKey(Math.floor((col - 1) / tileWidth), Math.floor((row - 1) / tileHeight));
        // First focal plane / optical path wins.
        if (!level.tiles.has(key2)) level.tiles.set(key2, { sop, frame: i + 1, transferSyntax });
      });
    } else {
      const count = Math.min(frames, level.tilesAcross * level.tilesDown);
      for (let i = 0; i < count; i += 1) {
        level.tiles.set(tileKey(i % level.tilesAcross, Math.floor(i / level.tilesAcross)), { sop, frame: i + 1, transferSyntax });
      }
    }
  }
  const levels = [...bySize.values()].sort((a, b) => b.width - a.width);
  const base = levels[0];
  for (const level of levels) {
    level.downsample = base === undefined ? 1 : base.width / level.width;
    if (level.pixelSpacing === undefined && base?.pixelSpacing !== undefined) {
      level.pixelSpacing = [base.pixelSpacing[0] * level.downsample, base.pixelSpacing[1] * level.downsample];
    }
  }
  return levels;
}

/** The level to show at `scale` screen pixels per base pixel: the coarsest with at least one level pixel per screen pixel. */
export function levelFor(levels: Level[], scale: number): number {
  let chosen = 0;
  levels.forEach((level, i) => {
    if (level.downsample * scale <= 1.0001) chosen = i;
  });
  return chosen;
}

/** A length that reads well for a scale bar: 1, 2 or 5 × 10^k micrometres, about `target` µm or less. */
export function niceLength(targetUm: number): number {
  const exp = Math.floor(Math.log10(targetUm));
  const base = 10 ** exp;
  for (const m of [5, 2, 1]) if (m * base <= targetUm) return m * base;
  return base;
}
