/**
 * Records a live stream as one multi-frame Video Endoscopic Image (PS3.3 A.32.5) whose frames are the
 * JPEG images as the camera sent them (JPEG Baseline, 1.2.840.10008.1.2.4.50, one fragment per frame,
 * PS3.5 §8.2.1 and A.4): no re-encoding, so what the endoscopist saw is what is kept, and no ffmpeg in
 * the live path. Raw RGB frames are JPEG-encoded once (sharp, quality 90). Frame times come from the
 * capture clock (Cine module Frame Time Vector), so a replay runs at the speed of the procedure.
 *
 * Frames go to a temporary file as they arrive (bounded memory for any procedure length); `finish`
 * streams header + encapsulated pixel data from that file into the archive's ordinary ingest path.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { dicomDate, dicomTime } from '../dicom/dicom-datetime.js';
import { writePart10 } from '../dicom/write-part10.js';

export const VIDEO_ENDOSCOPIC = '1.2.840.10008.5.1.4.1.1.77.1.1.1';
const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';

interface RecordedFrame {
  offset: number;
  length: number;
  capturedAt: number;
}

export interface RecordingIdentity {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
}

export class Recording {
  private readonly frames: RecordedFrame[] = [];
  private size = 0;
  private width = 0;
  private height = 0;
  private appending: Promise<void> = Promise.resolve();
  /** Set when a frame could not be written: the recording would have a hole, so it is not stored. */
  private writeError: Error | undefined;
  readonly startedAt = new Date();

  private constructor(
    private readonly file: string,
    private readonly handle: FileHandle,
    readonly identity: RecordingIdentity,
    /** Patient and study attributes (dcmjs naturalized), copied into the recording. */
    private readonly studyAttributes: Record<string, unknown>,
    private readonly fps: number,
  ) {}

  static async open(tmpDir: string, identity: RecordingIdentity, studyAttributes: Record<string, unknown>, fps: number): Promise<Recording> {
    await mkdir(tmpDir, { recursive: true });
    const file = path.join(tmpDir, `live-${randomUUID()}.frames`);
    return new Recording(file, await open(file, 'w+'), identity, studyAttributes, fps);
  }

  get frameCount(): number {
    return this.frames.length;
  }

  /** Frame dimensions (fixed by the first frame: all frames of one image have one size). */
  get dimensions(): { width: number; height: number } | undefined {
    return this.frames.length === 0 && this.width === 0 ? undefined : { width: this.width, height: this.height };
  }

  /** Appends one JPEG frame; resolves with its 1-based frame number once written. */
  add(jpeg: Buffer, width: number, height: number, capturedAt: number): Promise<number> {
    if (this.width === 0) {
      this.width = width;
      this.height = height;
    }
    const frameNumber = this.frames.length + 1;
    const frame = { offset: this.size, length: jpeg.length, capturedAt };
    this.frames.push(frame);
    this.size += jpeg.length;
    const write = this.appending.then(async () => {
      try {
        await this.handle.write(jpeg, 0, jpeg.length, frame.offset);
      } catch (err) {
        this.writeError ??= err as Error;
        throw err;
      }
    });
    this.appending = write.catch(() => {});
    return write.then(() => frameNumber);
  }

  /** Milliseconds from the first frame to frame `n` (1-based), on the capture clock. */
  timeOffsetMs(frameNumber: number): number {
    const times = this.frameTimes();
    let offset = 0;
    for (let i = 1; i < frameNumber && i < times.length; i += 1) offset += times[i]!;
    return offset;
  }

  /**
   * The Part-10 file as a stream: header (built with dcmjs, every element before Pixel Data) and
   * encapsulated pixel data (Basic Offset Table, one item per frame) read back from the temp file.
   */
  async *part10(): AsyncGenerator<Buffer> {
    await this.appending;
    if (this.writeError !== undefined) throw new Error(`a frame could not be written to the temporary file (${this.writeError.message})`);
    yield this.header();
    const itemLengths = this.frames.map((f) => f.length + (f.length % 2));
    const total = itemLengths.reduce((a, b) => a + b + 8, 0);
    // The Basic Offset Table can only address 4 GiB: beyond that it stays empty (PS3.5 A.4).
    const offsets = total < 2 ** 32 ? itemLengths : [];
    const bot = Buffer.alloc(8 + offsets.length * 4);
    bot.writeUInt16LE(0xfffe, 0);
    bot.writeUInt16LE(0xe000, 2);
    bot.writeUInt32LE(offsets.length * 4, 4);
    let position = 0;
    offsets.forEach((length, i) => {
      bot.writeUInt32LE(position, 8 + i * 4);
      position += length + 8;
    });
    yield bot;
    for (const frame of this.frames) {
      const padded = frame.length + (frame.length % 2);
      const item = Buffer.alloc(8 + padded);
      item.writeUInt16LE(0xfffe, 0);
      item.writeUInt16LE(0xe000, 2);
      item.writeUInt32LE(padded, 4);
      await this.handle.read(item, 8, frame.length, frame.offset);
      yield item;
    }
    const delimiter = Buffer.alloc(8);
    delimiter.writeUInt16LE(0xfffe, 0);
    delimiter.writeUInt16LE(0xe0dd, 2);
    yield delimiter;
  }

  async discard(): Promise<void> {
    await this.appending;
    await this.handle.close().catch(() => {});
    await rm(this.file, { force: true });
  }

  /** Gaps between consecutive frames (ms), first entry 0; the nominal frame period where the clock is unusable. */
  private frameTimes(): number[] {
    const nominal = 1000 / this.fps;
    return this.frames.map((f, i) => {
      if (i === 0) return 0;
      const gap = f.capturedAt - this.frames[i - 1]!.capturedAt;
      return gap > 0 && gap < 60_000 ? gap : nominal;
    });
  }

  private header(): Buffer {
    const d = this.startedAt;
    const date = dicomDate(d);
    const time = dicomTime(d);
    const times = this.frameTimes().map((t) => Number(t.toFixed(3)));
    const dataset: Record<string, unknown> = {
      ...this.studyAttributes,
      SpecificCharacterSet: 'ISO_IR 192',
      SOPClassUID: VIDEO_ENDOSCOPIC,
      SOPInstanceUID: this.identity.sopInstanceUid,
      StudyInstanceUID: this.identity.studyInstanceUid,
      SeriesInstanceUID: this.identity.seriesInstanceUid,
      Modality: 'ES',
      SeriesNumber: '1',
      SeriesDescription: 'Live endoscopy recording',
      SeriesDate: date,
      SeriesTime: time,
      Manufacturer: 'filmless-pacs',
      InstanceNumber: '1',
      ContentDate: date,
      ContentTime: time,
      AcquisitionDateTime: `${date}${time}`,
      ImageType: ['ORIGINAL', 'PRIMARY'],
      LossyImageCompression: '01',
      LossyImageCompressionMethod: 'ISO_10918_1',
      SamplesPerPixel: 3,
      PhotometricInterpretation: 'YBR_FULL_422',
      PlanarConfiguration: 0,
      Rows: this.height,
      Columns: this.width,
      BitsAllocated: 8,
      BitsStored: 8,
      HighBit: 7,
      PixelRepresentation: 0,
      NumberOfFrames: String(this.frames.length),
      // AT: the tag as a number (dcmjs would read a string as a decimal integer).
      FrameIncrementPointer: 0x00181065,
      FrameTimeVector: times,
      CineRate: String(Math.round(this.fps)),
      AcquisitionContextSequence: [],
    };
    const withoutPixels = writePart10(dataset, JPEG_BASELINE);
    // Pixel Data (7FE0,0010) OB, undefined length: the encapsulated items follow.
    const element = Buffer.alloc(12);
    element.writeUInt16LE(0x7fe0, 0);
    element.writeUInt16LE(0x0010, 2);
    element.write('OB', 4, 'latin1');
    element.writeUInt32LE(0xffffffff, 8);
    return Buffer.concat([withoutPixels, element]);
  }
}
