/**
 * WADO-RS rendered and thumbnail resources (PS3.18 §10.4.1.1.3, §10.4.1.1.4, §9.5): one frame as a
 * consumer image, JPEG by default or PNG, with the rendering query parameters of §8.3.5 that we
 * support (`window`, `viewport`, `quality`). Rendering itself is archive/render.ts. The rendered
 * resource of a video instance is its stored bitstream (video/mp4 or video/mpeg, byte ranges honoured).
 * Caching headers and 304s: http-cache.ts.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Archive } from '../archive/archive.js';
import type { RenderedImage, RenderOptions, RenderWindow, VoiLutFunction } from '../archive/render.js';
import type { InstanceScope, StoredInstance } from '../catalog/catalog.js';
import { isVideo, MPEG2_MPHL, MPEG2_MPHL_FRAGMENTABLE, MPEG2_MPML, MPEG2_MPML_FRAGMENTABLE } from '../dicom/transfer-syntax.js';
import { AppError, BadQueryError } from '../errors.js';
import { sendValue } from './bulkdata.routes.js';
import { representationETag, sendIfNotModified, withCacheHeaders, type CachePolicy } from './http-cache.js';
import { parseAccept } from './negotiate.js';
import { checkUidParam } from '../http/uid-param.js';
import { routeAccess } from '../http/route-access.js';

const requires = routeAccess('dicomweb');

export interface RenderedRoutesOptions {
  archive: Archive;
}

interface Params {
  study: string;
  series?: string;
  instance?: string;
  frame?: string;
}

type Query = Record<string, string | string[] | undefined>;

/** Thumbnails fit inside this box unless `viewport` says otherwise. */
export const THUMBNAIL_SIZE = 128;
/** Largest viewport dimension accepted (rendering never enlarges anyway). */
export const MAX_VIEWPORT = 16384;

const WINDOW_FUNCTIONS: Record<string, VoiLutFunction> = { linear: 'LINEAR', 'linear-exact': 'LINEAR_EXACT', sigmoid: 'SIGMOID' };

/**
 * Chooses the image type from Accept: `image/jpeg` (also for no Accept, `*\/*` and `image/*`) or
 * `image/png`, by q-value; JPEG wins a tie. Anything else is a 406.
 */
export function negotiateRendered(acceptHeader: string | undefined): 'jpeg' | 'png' {
  let best: { format: 'jpeg' | 'png'; q: number } | undefined;
  for (const range of parseAccept(acceptHeader)) {
    const candidates: Array<'jpeg' | 'png'> =
      range.type === '*' && range.subtype === '*'
        ? ['jpeg']
        : range.type === 'image' && range.subtype === '*'
          ? ['jpeg']
          : range.type === 'image' && (range.subtype === 'jpeg' || range.subtype === 'png')
            ? [range.subtype]
            : [];
    for (const format of candidates) {
      if (best === undefined || range.q > best.q || (range.q === best.q && format === 'jpeg' && best.format !== 'jpeg')) {
        best = { format, q: range.q };
      }
    }
  }
  if (best === undefined) {
    throw new AppError('NOT_ACCEPTABLE', 'Rendered resources are served as image/jpeg (default) or image/png only');
  }
  return best.format;
}

const MPEG2 = new Set([MPEG2_MPML, MPEG2_MPML_FRAGMENTABLE, MPEG2_MPHL, MPEG2_MPHL_FRAGMENTABLE]);

/** The media type of a stored video bitstream: `video/mpeg` for MPEG-2, `video/mp4` for MPEG-4 AVC and HEVC. */
export function videoMediaType(transferSyntaxUid: string): 'video/mp4' | 'video/mpeg' | undefined {
  if (!isVideo(transferSyntaxUid)) return undefined;
  return MPEG2.has(transferSyntaxUid) ? 'video/mpeg' : 'video/mp4';
}

/**
 * Whether a rendered video instance is returned as its bitstream: Accept names `mediaType`, `video/*`
 * or `*\/*` (also no Accept). Otherwise a 406 that says which type to ask for (single video frames
 * are not rendered as images).
 */
export function negotiateRenderedVideo(acceptHeader: string | undefined, mediaType: string): void {
  const accepted = parseAccept(acceptHeader).some(
    (range) => (range.type === '*' && range.subtype === '*') || (range.type === 'video' && (range.subtype === '*' || `video/${range.subtype}` === mediaType)),
  );
  if (!accepted) {
    throw new AppError('NOT_ACCEPTABLE', `The instance is a video: it is rendered as ${mediaType} only (frames of a video are not rendered as images)`);
  }
}

/** One value of a query parameter; a repeated parameter is a 400. */
function single(query: Query, name: string): string | undefined {
  const value = query[name];
  if (Array.isArray(value)) throw new BadQueryError(name, 'must be given once');
  return value;
}

function parseNumber(text: string, parameter: string, what: string): number {
  const trimmed = text.trim();
  const value = Number(trimmed);
  if (trimmed === '' || !Number.isFinite(value)) throw new BadQueryError(parameter, `${what} must be a number`);
  return value;
}

function parseInteger(text: string, parameter: string, what: string, min: number, max: number): number {
  if (!/^\s*[0-9]+\s*$/.test(text)) throw new BadQueryError(parameter, `${what} must be a whole number from ${min} to ${max}`);
  const value = Number(text.trim());
  if (value < min || value > max) throw new BadQueryError(parameter, `${what} must be a whole number from ${min} to ${max}`);
  return value;
}

/**
 * The rendering parameters of PS3.18 §8.3.5 that we support: `window=center,width[,function]`
 * (function linear | linear-exact | sigmoid), `viewport=width,height` (no cropping), `quality=1..100`.
 * Every mistake is a 400 naming the parameter; other parameters (annotation, charset, ...) are ignored.
 */
export function parseRenderingParams(query: Query): Pick<RenderOptions, 'window' | 'viewport' | 'quality'> {
  const result: Pick<RenderOptions, 'window' | 'viewport' | 'quality'> = {};
  const window = single(query, 'window');
  if (window !== undefined) {
    const parts = window.split(',');
    if (parts.length < 2 || parts.length > 3) {
      throw new BadQueryError('window', 'must be center,width or center,width,function (e.g. window=40,400)');
    }
    const center = parseNumber(parts[0]!, 'window', 'the window center');
    const width = parseNumber(parts[1]!, 'window', 'the window width');
    if (width < 1) throw new BadQueryError('window', 'the window width must be at least 1');
    const parsed: RenderWindow = { center, width };
    if (parts.length === 3) {
      const fn = WINDOW_FUNCTIONS[parts[2]!.trim().toLowerCase()];
      if (fn === undefined) throw new BadQueryError('window', 'the function must be linear, linear-exact or sigmoid');
      parsed.function = fn;
    }
    result.window = parsed;
  }
  const viewport = single(query, 'viewport');
  if (viewport !== undefined) {
    const parts = viewport.split(',');
    if (parts.length === 6) throw new BadQueryError('viewport', 'source cropping (sx,sy,sw,sh) is not supported: give width,height only');
    if (parts.length !== 2) throw new BadQueryError('viewport', 'must be width,height (e.g. viewport=256,256)');
    result.viewport = {
      width: parseInteger(parts[0]!, 'viewport', 'the width', 1, MAX_VIEWPORT),
      height: parseInteger(parts[1]!, 'viewport', 'the height', 1, MAX_VIEWPORT),
    };
  }
  const quality = single(query, 'quality');
  if (quality !== undefined) result.quality = parseInteger(quality, 'quality', 'the quality', 1, 100);
  return result;
}

function parseFrameNumber(text: string): number {
  if (!/^[0-9]+$/.test(text)) {
    throw new AppError('BAD_REQUEST', 'The rendered frame must be a single frame number (1, 2, ...); render one frame per request');
  }
  const frame = Number(text);
  if (frame === 0) throw new AppError('BAD_REQUEST', 'Frame numbers start at 1: frame 0 does not exist');
  if (!Number.isSafeInteger(frame)) throw new AppError('BAD_REQUEST', 'Frame number is too large');
  return frame;
}

export async function renderedRoutes(app: FastifyInstance, options: RenderedRoutesOptions): Promise<void> {
  const { archive } = options;

  const scopeOf = (params: Params): InstanceScope => {
    checkUidParam(params.study, 'StudyInstanceUID');
    checkUidParam(params.series, 'SeriesInstanceUID');
    checkUidParam(params.instance, 'SOPInstanceUID');
    return { studyInstanceUid: params.study, seriesInstanceUid: params.series, sopInstanceUid: params.instance };
  };

  const send = (reply: FastifyReply, image: RenderedImage, policy: CachePolicy) =>
    withCacheHeaders(reply, policy).type(image.mediaType).send(image.body);

  /**
   * The stored bitstream of a video instance (its pixel data fragments, concatenated), streamed by
   * bounded ranged reads with HTTP Range support, as the bulk data route does.
   */
  const video = (request: FastifyRequest, reply: FastifyReply, instance: StoredInstance, mediaType: string) => {
    negotiateRenderedVideo(request.headers.accept, mediaType);
    const value = archive.bulkData(instance, instance.pixelData!.tag);
    const policy: CachePolicy = { immutable: true, etag: representationETag(['rendered-video', instance.blobKey, mediaType, value.length]) };
    if (sendIfNotModified(request, reply, policy)) return reply;
    request.log.info({ bytes: value.length, range: request.headers.range !== undefined }, 'WADO-RS rendered video');
    return sendValue(request, reply, archive, instance, value, mediaType, policy);
  };

  /**
   * Validation order: path UIDs, frame number, query, Accept; then the index, then the file. For the
   * instance resource Accept is checked after the index lookup: a video instance answers with its
   * bitstream (`video/mp4` / `video/mpeg`), any other with an image.
   */
  const rendered = async (request: FastifyRequest<{ Params: Params; Querystring: Query }>, reply: FastifyReply) => {
    const scope = scopeOf(request.params);
    const framePath = request.params.frame !== undefined;
    const frame = framePath ? parseFrameNumber(request.params.frame!) : 1;
    const params = parseRenderingParams(request.query);
    if (framePath) negotiateRendered(request.headers.accept);
    const [instance] = await archive.findInstances(scope);
    const videoType = !framePath && instance!.pixelData?.isVideo === true ? videoMediaType(instance!.transferSyntaxUid) : undefined;
    if (videoType !== undefined) return video(request, reply, instance!, videoType);
    const format = negotiateRendered(request.headers.accept);
    return renderInstance(request, reply, instance!, { ...params, frame, format }, true);
  };

  const renderInstance = async (request: FastifyRequest, reply: FastifyReply, instance: StoredInstance, renderOptions: RenderOptions, immutable: boolean) => {
    const policy: CachePolicy = {
      immutable,
      etag: representationETag(['rendered', instance.blobKey, JSON.stringify(renderOptions)]),
    };
    if (sendIfNotModified(request, reply, policy)) return reply;
    return send(reply, await archive.renderFrame(instance, renderOptions), policy);
  };

  const thumbnail = async (request: FastifyRequest<{ Params: Params; Querystring: Query }>, reply: FastifyReply) => {
    const scope = scopeOf(request.params);
    const params = parseRenderingParams(request.query);
    const format = negotiateRendered(request.headers.accept);
    const viewport = params.viewport ?? { width: THUMBNAIL_SIZE, height: THUMBNAIL_SIZE };
    const { instance, frame } = await archive.thumbnailSource(scope);
    // An instance's thumbnail never changes; a study's or series' may show another instance later.
    return renderInstance(request, reply, instance, { ...params, viewport, frame, format }, request.params.instance !== undefined);
  };

  app.get('/studies/:study/series/:series/instances/:instance/rendered', requires('read', { audit: 'retrieve' }), rendered);
  app.get('/studies/:study/series/:series/instances/:instance/frames/:frame/rendered', requires('read', { audit: 'retrieve' }), rendered);
  app.get('/studies/:study/series/:series/instances/:instance/thumbnail', requires('read', { audit: 'retrieve' }), thumbnail);
  app.get('/studies/:study/series/:series/thumbnail', requires('read', { audit: 'retrieve' }), thumbnail);
  app.get('/studies/:study/thumbnail', requires('read', { audit: 'retrieve' }), thumbnail);
}
