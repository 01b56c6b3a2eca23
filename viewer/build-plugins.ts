/**
 * Vite plugins of the viewer build (viewer/vite.config.ts), for thin links: what a first screen needs
 * and nothing else, sent compressed.
 *
 * - `precompress`: a brotli (`.br`, quality 11) and a gzip (`.gz`, level 9) copy next to every
 *   compressible file of the build, which the server sends by content negotiation
 *   (server/src/http/viewer-static.ts, @fastify/static `preCompressed`). A post-build step on node:zlib
 *   rather than a plugin from npm: node:zlib has both encoders, the step is ~40 lines, and the npm
 *   plugins either lag Vite majors (vite-plugin-compression: unmaintained since 2021) or add a dependency
 *   tree for the same zlib calls.
 * - `decodersInWorkerOnly` (main build): @cornerstonejs/dicom-image-loader's index re-exports the frame
 *   decoders (`decodeImageFrame`, `decoders`, `initializers`), which statically pulls the five WASM codecs'
 *   JavaScript glue and pako into the main-thread chunk, although decoding only ever runs in its web
 *   worker. The two re-exports become undefined here (nothing in the viewer uses them).
 * - `lazyCodecs` (worker build): each decoder module imports its codec's Emscripten factory statically,
 *   so the worker loads all five (~330 kB of JavaScript) before decoding anything. Here each becomes a
 *   dynamic import made on the first frame of that transfer syntax: a CT series stored uncompressed
 *   loads no codec, a JPEG-LS one only CharLS. The WebAssembly itself was already fetched lazily.
 *
 * The two rewrites match exact source text of the installed version and fail the build when it is not
 * found (a new dicom-image-loader release must be checked, not silently left unoptimised).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import type { Plugin } from 'vite';

const brotli = promisify(brotliCompress);
const gzipAsync = promisify(gzip);

/** File types worth compressing (images and fonts are compressed already). */
const COMPRESSIBLE = /\.(?:js|mjs|css|html|svg|json|wasm|txt|map)$/;
/** Below this, a compressed copy saves less than its own request overhead. */
const MIN_BYTES = 1024;

/**
 * Brotli quality: 11 (the default) for what users download; VIEWER_BROTLI_QUALITY lowers it for builds
 * made by tests (quality 11 costs ~10 s of CPU for the imaging chunk; 5 takes 0.5 s and is ~14% larger).
 */
function brotliQuality(): number {
  const asked = Number(process.env['VIEWER_BROTLI_QUALITY'] ?? '');
  return Number.isInteger(asked) && asked >= 1 && asked <= 11 ? asked : constants.BROTLI_MAX_QUALITY;
}

export function precompress(): Plugin {
  return {
    name: 'pacs-precompress',
    apply: 'build',
    async writeBundle(options, bundle) {
      const dir = options.dir ?? (options.file !== undefined ? path.dirname(options.file) : undefined);
      if (dir === undefined) return;
      await Promise.all(
        Object.keys(bundle)
          .filter((name) => COMPRESSIBLE.test(name))
          .map(async (name) => {
            const file = path.join(dir, name);
            const source = await readFile(file);
            if (source.length < MIN_BYTES) return;
            const text = !name.endsWith('.wasm');
            const [br, gz] = await Promise.all([
              brotli(source, {
                params: {
                  [constants.BROTLI_PARAM_QUALITY]: brotliQuality(),
                  [constants.BROTLI_PARAM_MODE]: text ? constants.BROTLI_MODE_TEXT : constants.BROTLI_MODE_GENERIC,
                  [constants.BROTLI_PARAM_SIZE_HINT]: source.length,
                },
              }),
              gzipAsync(source, { level: 9 }),
            ]);
            // A copy that is not smaller is useless: the server then sends the file itself.
            if (br.length < source.length) await writeFile(`${file}.br`, br);
            if (gz.length < source.length) await writeFile(`${file}.gz`, gz);
          }),
      );
    },
  };
}

const LOADER = '/@cornerstonejs/dicom-image-loader/dist/esm/';

function replaceExactly(code: string, id: string, from: string | RegExp, to: string): string {
  const found = typeof from === 'string' ? code.includes(from) : from.test(code);
  if (!found) {
    throw new Error(`viewer/build-plugins.ts: ${path.basename(id)} of @cornerstonejs/dicom-image-loader no longer contains ${String(from)}; check the rewrite against the installed version`);
  }
  return code.replace(from, to);
}

export function decodersInWorkerOnly(): Plugin {
  return {
    name: 'pacs-decoders-in-worker-only',
    apply: 'build',
    enforce: 'pre',
    transform(code, id) {
      if (!id.replaceAll('\\', '/').endsWith(`${LOADER}index.js`)) return undefined;
      let out = replaceExactly(code, id, "import { decodeImageFrame, postProcessDecodedPixels, } from './decodeImageFrameWorker.js';", 'const decodeImageFrame = undefined, postProcessDecodedPixels = undefined;');
      out = replaceExactly(out, id, "import { initializers, decoders } from './shared/decoders/index.js';", 'const initializers = undefined, decoders = undefined;');
      return { code: out, map: null };
    },
  };
}

/** `import name from '@cornerstonejs/codec-…';` (openjph's adds `, {}`). */
const CODEC_IMPORT = /import (\w+)(?:, \{\})? from '(@cornerstonejs\/codec-[\w-]+\/[\w]+)';/;
const LAZY_DECODERS = ['decodeJPEGLS', 'decodeJPEG2000', 'decodeHTJ2K', 'decodeJPEGBaseline8Bit', 'decodeJPEGXL'];

export function lazyCodecs(): Plugin {
  return {
    name: 'pacs-lazy-codecs',
    apply: 'build',
    enforce: 'pre',
    transform(code, id) {
      const normalised = id.replaceAll('\\', '/');
      const decoder = LAZY_DECODERS.find((d) => normalised.endsWith(`${LOADER}shared/decoders/${d}.js`));
      if (decoder === undefined) return undefined;
      // The factory is only ever called as `factory({ locateFile })` and its result awaited (Emscripten's
      // MODULARIZE factories return a promise): a function that imports first behaves the same.
      const match = CODEC_IMPORT.exec(code);
      const factoryCalls = match === null ? 0 : code.split(`${match[1]}(`).length - 1;
      if (match === null || factoryCalls !== 1) {
        throw new Error(`viewer/build-plugins.ts: ${decoder}.js of @cornerstonejs/dicom-image-loader no longer imports its codec factory once and calls it once; check the rewrite against the installed version`);
      }
      const [statement, name, specifier] = match as unknown as [string, string, string];
      const out = code.replace(statement, `const ${name} = (moduleOptions) => import('${specifier}').then((m) => m.default(moduleOptions));`);
      return { code: out, map: null };
    },
  };
}

/**
 * One dcmjs in the bundle: @cornerstonejs/metadata and @cornerstonejs/utils each depend on dcmjs
 * 0.52.0, which npm installs twice (nested under each, beside the server's 0.51 at the top), so the
 * imaging chunk carried two identical ~900 kB copies. Every dcmjs import from a Cornerstone package
 * resolves to @cornerstonejs/metadata's copy.
 */
export function oneDcmjs(): Plugin {
  let metadataEntry: string | undefined;
  return {
    name: 'pacs-one-dcmjs',
    apply: 'build',
    enforce: 'pre',
    async resolveId(source, importer) {
      if (source !== 'dcmjs' || importer === undefined || !importer.replaceAll('\\', '/').includes('/@cornerstonejs/')) return null;
      metadataEntry ??= (await this.resolve('@cornerstonejs/metadata', importer, { skipSelf: true }))?.id;
      if (metadataEntry === undefined) return null;
      return this.resolve('dcmjs', metadataEntry, { skipSelf: true });
    },
  };
}
