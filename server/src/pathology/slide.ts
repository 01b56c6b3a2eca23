/**
 * Slide geometry from the index alone (no blob reads): the levels of a VL Whole Slide Microscopy
 * series (PS3.3 A.32.8), each with its total pixel matrix, tile grid, pixel spacing and where every
 * tile is stored (instance and frame). TILED_FULL instances (C.7.6.17.3) hold their tiles in row-major
 * order, first focal plane and optical path first, continued across concatenations by
 * ConcatenationFrameOffsetNumber; TILED_SPARSE instances (and any instance whose frames carry Plane
 * Position (Slide)) give every frame's position in the total pixel matrix (1-based).
 */
import type { Archive } from '../archive/archive.js';
import { pixelAttributesFromJson, type PixelAttributes } from '../archive/transcode.js';
import type { InstanceWithAttributes, StoredInstance } from '../catalog/catalog.js';
import { firstNumber, firstString, type DicomJsonDataset } from '../dicom/dicom-json.js';
import { AppError } from '../errors.js';

export { WSI_SOP_CLASS } from '../dicom/sop-classes.js';
import { WSI_SOP_CLASS } from '../dicom/sop-classes.js';

const TAG = {
  ImageType: '00080008',
  FrameOfReferenceUID: '00200052',
  DimensionOrganizationType: '00209311',
  ConcatenationFrameOffsetNumber: '00209228',
  TotalPixelMatrixColumns: '00480006',
  TotalPixelMatrixRows: '00480007',
  ImagedVolumeWidth: '00480001',
  ImagedVolumeHeight: '00480002',
  SharedFunctionalGroupsSequence: '52009229',
  PerFrameFunctionalGroupsSequence: '52009230',
  PixelMeasuresSequence: '00289110',
  PixelSpacing: '00280030',
  PlanePositionSlideSequence: '0048021A',
  ColumnPositionInTotalImagePixelMatrix: '0048021E',
  RowPositionInTotalImagePixelMatrix: '0048021F',
} as const;

export interface TileLocation {
  /** Index into SlideLevel.instances. */
  instance: number;
  /** 1-based frame number. */
  frame: number;
}

export interface LevelInstance {
  instance: StoredInstance;
  pixel: PixelAttributes;
}

export interface SlideLevel {
  /** 0 = the base (largest) level. */
  index: number;
  width: number;
  height: number;
  tileWidth: number;
  tileHeight: number;
  tilesAcross: number;
  tilesDown: number;
  /** mm per pixel (mean of row and column spacing); undefined when the level says nothing usable. */
  spacingMm: number | undefined;
  /** Base pixels per pixel of this level, per axis. */
  scaleX: number;
  scaleY: number;
  instances: LevelInstance[];
  /** Tile (row × tilesAcross + column) → where it is stored; missing tiles (sparse) are absent. */
  tiles: Map<number, TileLocation>;
}

export interface Slide {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  /** Base level first, then smaller ones. */
  levels: SlideLevel[];
  /** The base level's first instance: what 2D annotation coordinates refer to. */
  baseInstance: StoredInstance;
  /** Attributes of the base instance (patient/study copied into results). */
  baseAttributes: DicomJsonDataset;
  frameOfReferenceUid: string | undefined;
  /** Every instance of the pyramid (for ReferencedSeriesSequence). */
  allInstances: StoredInstance[];
}

type Item = DicomJsonDataset;
const items = (dataset: Item | undefined, tag: string): Item[] => (dataset?.[tag]?.Value ?? []).filter((v): v is Item => v !== null && typeof v === 'object' && !('Alphabetic' in v));
const numbers = (dataset: Item | undefined, tag: string): number[] => (dataset?.[tag]?.Value ?? []).map((v) => Number(v)).filter((v) => Number.isFinite(v));

/**
 * (row spacing, column spacing) in mm. PixelSpacing of the shared Pixel Measures, unless it disagrees
 * with ImagedVolumeWidth/Height over the matrix (Orthanc WSI 1.1 writes the two axes swapped, e.g.
 * 0.000373\0.000667 for a 0.499 µm/px slide): then the imaged volume wins.
 */
function spacingOf(dataset: Item, width: number, height: number): number | undefined {
  const shared = items(dataset, TAG.SharedFunctionalGroupsSequence)[0];
  const measures = items(shared, TAG.PixelMeasuresSequence)[0];
  const ps = numbers(measures, TAG.PixelSpacing).filter((v) => v > 0);
  const volumeWidth = firstNumber(dataset, TAG.ImagedVolumeWidth);
  const volumeHeight = firstNumber(dataset, TAG.ImagedVolumeHeight);
  const fromVolume = volumeWidth !== undefined && volumeHeight !== undefined && volumeWidth > 0 && volumeHeight > 0 ? [volumeHeight / height, volumeWidth / width] : undefined;
  if (ps.length === 2) {
    const square = Math.abs(ps[0]! - ps[1]!) / Math.max(ps[0]!, ps[1]!) < 0.05;
    if (!square && fromVolume !== undefined) return (fromVolume[0]! + fromVolume[1]!) / 2;
    return (ps[0]! + ps[1]!) / 2;
  }
  return fromVolume === undefined ? undefined : (fromVolume[0]! + fromVolume[1]!) / 2;
}

function isPyramidImage(found: InstanceWithAttributes): boolean {
  if (found.instance.sopClassUid !== WSI_SOP_CLASS || found.instance.pixelData === undefined) return false;
  const imageType = (found.attributes[TAG.ImageType]?.Value ?? []).map((v) => String(v).toUpperCase());
  return !imageType.includes('LABEL') && !imageType.includes('OVERVIEW') && !imageType.includes('THUMBNAIL');
}

/** The levels of a slide series; a 400 (with the reason) when the series is not a tiled slide. */
export function slideFromInstances(found: InstanceWithAttributes[]): Slide {
  const pyramid = found.filter(isPyramidImage);
  if (pyramid.length === 0) {
    throw new AppError('BAD_REQUEST', 'The series holds no VL Whole Slide Microscopy pyramid image (SOP Class 1.2.840.10008.5.1.4.1.1.77.1.6): nothing to analyse');
  }
  const bySize = new Map<string, SlideLevel>();
  for (const { instance, attributes } of pyramid) {
    const width = firstNumber(attributes, TAG.TotalPixelMatrixColumns);
    const height = firstNumber(attributes, TAG.TotalPixelMatrixRows);
    const tileWidth = instance.columns;
    const tileHeight = instance.rows;
    if (!width || !height || !tileWidth || !tileHeight) continue;
    const key = `${width}x${height}`;
    let level = bySize.get(key);
    if (level === undefined) {
      level = {
        index: 0,
        width,
        height,
        tileWidth,
        tileHeight,
        tilesAcross: Math.ceil(width / tileWidth),
        tilesDown: Math.ceil(height / tileHeight),
        spacingMm: spacingOf(attributes, width, height),
        scaleX: 1,
        scaleY: 1,
        instances: [],
        tiles: new Map(),
      };
      bySize.set(key, level);
    }
    if (tileWidth !== level.tileWidth || tileHeight !== level.tileHeight) continue; // mixed tile sizes in one level: keep the first kind
    const instanceIndex = level.instances.length;
    level.instances.push({ instance, pixel: pixelAttributesFromJson(attributes) });
    placeTiles(level, instanceIndex, instance, attributes);
  }
  const levels = [...bySize.values()].sort((a, b) => b.width * b.height - a.width * a.height);
  if (levels.length === 0) throw new AppError('BAD_REQUEST', 'The slide has no level with a total pixel matrix and tile size: its tiles cannot be placed');
  const base = levels[0]!;
  levels.forEach((level, index) => {
    level.index = index;
    level.scaleX = base.width / level.width;
    level.scaleY = base.height / level.height;
    // A level without usable spacing of its own takes the base's, scaled.
    if (level.spacingMm === undefined && base.spacingMm !== undefined) level.spacingMm = base.spacingMm * (level.scaleX + level.scaleY) / 2;
  });
  const baseFound = pyramid.find((f) => f.instance === base.instances[0]!.instance)!;
  return {
    studyInstanceUid: base.instances[0]!.instance.studyInstanceUid,
    seriesInstanceUid: base.instances[0]!.instance.seriesInstanceUid,
    levels,
    baseInstance: baseFound.instance,
    baseAttributes: baseFound.attributes,
    frameOfReferenceUid: firstString(baseFound.attributes, TAG.FrameOfReferenceUID),
    allInstances: pyramid.map((f) => f.instance),
  };
}

function placeTiles(level: SlideLevel, instanceIndex: number, instance: StoredInstance, attributes: Item): void {
  const frames = instance.numberOfFrames;
  const perFrame = items(attributes, TAG.PerFrameFunctionalGroupsSequence);
  const tiledFull = firstString(attributes, TAG.DimensionOrganizationType)?.trim() === 'TILED_FULL';
  if (!tiledFull && perFrame.length === frames) {
    perFrame.forEach((item, i) => {
      const position = items(item, TAG.PlanePositionSlideSequence)[0];
      const column = firstNumber(position ?? {}, TAG.ColumnPositionInTotalImagePixelMatrix);
      const row = firstNumber(position ?? {}, TAG.RowPositionInTotalImagePixelMatrix);
      if (column === undefined || row === undefined) return;
      const tileColumn = Math.floor((column - 1) / level.tileWidth);
      const tileRow = Math.floor((row - 1) / level.tileHeight);
      if (tileColumn < 0 || tileRow < 0 || tileColumn >= level.tilesAcross || tileRow >= level.tilesDown) return;
      const key = tileRow * level.tilesAcross + tileColumn;
      // Further focal planes / optical paths at the same position: the first one is analysed.
      if (!level.tiles.has(key)) level.tiles.set(key, { instance: instanceIndex, frame: i + 1 });
    });
    return;
  }
  // TILED_FULL (or a single-frame level): row-major tiles, across a concatenation by its frame offset.
  const offset = firstNumber(attributes, TAG.ConcatenationFrameOffsetNumber) ?? 0;
  const perPlane = level.tilesAcross * level.tilesDown;
  for (let frame = 1; frame <= frames; frame += 1) {
    const tile = offset + frame - 1;
    if (tile >= perPlane) break;
    if (!level.tiles.has(tile)) level.tiles.set(tile, { instance: instanceIndex, frame });
  }
}

/** The slide of a series, from the index (one query, no blob reads). Unknown series: 404. */
export async function loadSlide(archive: Archive, studyInstanceUid: string, seriesInstanceUid: string): Promise<Slide> {
  return slideFromInstances(await archive.findInstancesWithAttributes({ studyInstanceUid, seriesInstanceUid }));
}

/**
 * The level to analyse at for a model trained at `targetMm` per pixel: the coarsest level that is not
 * coarser than the target by more than 5% (a model must not be fed upsampled pixels), or the finest
 * level when all are coarser. Windows are then read at `targetMm / level spacing` level pixels per
 * model pixel and resized, so a 20× model on a 40×-only slide still sees 20× tissue.
 */
export function chooseLevel(slide: Slide, targetMm: number): SlideLevel {
  const base = slide.levels[0]!;
  if (base.spacingMm === undefined) {
    throw new AppError(
      'BAD_REQUEST',
      'The slide has no pixel spacing (no PixelSpacing in its Pixel Measures and no Imaged Volume Width/Height): the level matching the model\'s training resolution cannot be chosen',
    );
  }
  let chosen = base;
  for (const level of slide.levels) {
    if (level.spacingMm !== undefined && level.spacingMm <= targetMm * 1.05 && level.spacingMm >= chosen.spacingMm!) chosen = level;
  }
  return chosen;
}
