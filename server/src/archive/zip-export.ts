/**
 * A study as a ZIP file, streamed (yazl, a maintained streaming ZIP writer with ZIP64 for archives over
 * 4 GiB): the DICOM files of instances as WADO-RS serves them (PS3.18 §8.7.3.5.2 / Supplement 211
 * `application/zip`), or one JPEG per image for a phone or a PC. Entries are made one at a time: the
 * next instance is opened (or rendered) only once the previous entry has been read whole into the
 * archive, and the archive is read only as fast as the client takes it, so memory stays bounded by one
 * entry (a rendered JPEG, or one read-ahead window of a stored file) whatever the study's size.
 */
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import yazl from 'yazl';
import type { StoredInstance } from '../catalog/catalog.js';
import { isDeflated, isEncapsulated, isVideo } from '../dicom/transfer-syntax.js';

/** One file of the archive: its name, whether to deflate it, and how to get its bytes when its turn comes. */
export interface ZipEntry {
  name: string;
  /** Deflate (text, uncompressed pixel data); stored as is for data already compressed (JPEG, MPEG, PDF). */
  compress: boolean;
  open: () => Promise<Readable | Buffer>;
  /** Bytes, when known in advance (checked by yazl). */
  size?: number;
}

/**
 * The ZIP of `entries` as a byte stream. An entry that fails to open or read ends the stream with that
 * error (the client sees a truncated, invalid archive rather than a silently incomplete one).
 */
export function zipStream(entries: Iterable<ZipEntry> | AsyncIterable<ZipEntry>, mtime: Date = new Date()): Readable {
  const zip = new yazl.ZipFile();
  const output = zip.outputStream as Readable;
  let stopped = false;
  let current: Readable | undefined;
  // The client went away: the entry being read is closed (its blob stream, its read-ahead), no other opened.
  output.once('close', () => {
    stopped = true;
    current?.destroy();
  });
  void (async () => {
    try {
      for await (const entry of entries) {
        if (stopped) return;
        const opened = await entry.open();
        const source = Buffer.isBuffer(opened) ? Readable.from([opened], { objectMode: false }) : opened;
        if (stopped) {
          source.destroy();
          return;
        }
        current = source;
        const done = finished(source);
        zip.addReadStream(source, entry.name, { compress: entry.compress, mtime, ...(entry.size === undefined ? {} : { size: entry.size }) });
        // Wait until yazl has read this entry whole: the next one is opened only then (bounded memory).
        await done;
        current = undefined;
      }
      zip.end();
    } catch (err) {
      if (!stopped) output.destroy(err as Error);
    }
  })();
  return output;
}

/** Whether a stored file gains from deflate: not when its pixel data is already compressed (or the file deflated). */
export function worthDeflating(instance: StoredInstance): boolean {
  const syntax = instance.transferSyntaxUid;
  return !isDeflated(syntax) && !isEncapsulated(syntax) && !isVideo(syntax);
}

/**
 * Names of the series folders and files: `series-01/image-0001.dcm`, by the catalog's order (series
 * number, then instance number). No UID, name or ID of the patient in any name: the archive is given to
 * the patient, who may pass it on. Returns the instances with their folder and 1-based index.
 */
export function numberInstances(instances: readonly StoredInstance[]): Array<{ instance: StoredInstance; folder: string; index: number }> {
  const folders = new Map<string, string>();
  const counts = new Map<string, number>();
  const width = Math.max(2, String(new Set(instances.map((i) => i.seriesInstanceUid)).size).length);
  return instances.map((instance) => {
    let folder = folders.get(instance.seriesInstanceUid);
    if (folder === undefined) {
      folder = `series-${String(folders.size + 1).padStart(width, '0')}`;
      folders.set(instance.seriesInstanceUid, folder);
    }
    const index = (counts.get(folder) ?? 0) + 1;
    counts.set(folder, index);
    return { instance, folder, index };
  });
}

/** `0001`: at least four digits. */
export const pad4 = (n: number): string => String(n).padStart(4, '0');

/** What `dicomEntries` needs of the archive (archive.ts `Archive`). */
export interface InstanceSource {
  openInstance(instance: StoredInstance): Promise<Readable>;
  transcodeInstance(instance: StoredInstance): Promise<Buffer>;
}

/**
 * The Part-10 files of `instances` as WADO-RS serves them (Archive.openInstance: the stored bytes, with
 * the patient identity and study of record in the header when the hospital link or curation changed
 * them), those named in `transcode` as Explicit VR Little Endian; one folder per series.
 */
export function* dicomEntries(archive: InstanceSource, instances: readonly StoredInstance[], transcode: ReadonlySet<string> = new Set()): Generator<ZipEntry> {
  for (const { instance, folder, index } of numberInstances(instances)) {
    const transcoded = transcode.has(instance.sopInstanceUid);
    yield {
      name: `${folder}/image-${pad4(index)}.dcm`,
      compress: transcoded || worthDeflating(instance),
      open: () => (transcoded ? archive.transcodeInstance(instance) : archive.openInstance(instance)),
    };
  }
}
