/**
 * C-STORE SCP (PS3.4 Annex B) through the archive's ingest use case (`Archive.scanAndStore`, the one
 * STOW-RS uses): same validation, frame index, series metadata, idempotence and atomicity.
 *
 * The data set is not buffered whole: dcmjs-dimse hands each received P-DATA fragment to the Writable
 * we create (`createStoreWritableStream`), and those bytes go on, as received, behind a File Meta group
 * built from the command (SOP class and instance) and the negotiated transfer syntax, into the scanner
 * and the blob store. When storage is slower than the network the socket is paused (TCP backpressure).
 * An association that ends mid-data-set fails the source: the scanner stops, the blob is deleted, and
 * nothing is indexed.
 */
import { Writable } from 'node:stream';
import type { Socket } from 'node:net';
import type { Archive, StoreResult } from '../archive/archive.js';
import { FailureReason } from '../archive/stow-outcome.js';
import { part10Prefix } from './part10.js';
import { Status } from './dimse-lib.js';

/** Received bytes held between the network and storage before the socket is paused. */
const HIGH_WATER_BYTES = 8 * 1024 * 1024;
const LOW_WATER_BYTES = 2 * 1024 * 1024;

/** An async iterable of received chunks, fed by the library's writes, with socket-level backpressure. */
export class ChunkQueue implements AsyncIterable<Buffer> {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private discarding = false;
  private paused = false;
  private wake: (() => void) | undefined;

  constructor(private readonly socket: Pick<Socket, 'pause' | 'resume'> | undefined) {}

  push(chunk: Buffer): void {
    if (this.discarding || this.ended || this.failure) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (!this.paused && this.bytes > HIGH_WATER_BYTES) {
      this.paused = true;
      this.socket?.pause();
    }
    this.notify();
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  /** The association ended before the data set did: the reader fails with `error`. */
  fail(error: Error): void {
    if (this.ended) return;
    this.failure = error;
    this.release();
    this.notify();
  }

  /** The reader stopped early (a refused file): drop what is queued and whatever still arrives. */
  discard(): void {
    this.discarding = true;
    this.release();
  }

  get finished(): boolean {
    return this.ended || this.failure !== undefined;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk !== undefined) {
        this.bytes -= chunk.length;
        if (this.paused && this.bytes < LOW_WATER_BYTES) {
          this.paused = false;
          this.socket?.resume();
        }
        yield chunk;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private release(): void {
    this.chunks = [];
    this.bytes = 0;
    if (this.paused) {
      this.paused = false;
      this.socket?.resume();
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

export interface IncomingStore {
  /** What the library writes the data set fragments into. */
  writable: Writable;
  queue: ChunkQueue;
  /** Settles (never rejects) once the instance is stored or refused. */
  result: Promise<StoreResult>;
}

export interface IncomingStoreOptions {
  archive: Archive;
  socket: Socket | undefined;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  callingAeTitle: string;
}

/** Starts storing one C-STORE data set as its fragments arrive. */
export function startIncomingStore(options: IncomingStoreOptions): IncomingStore {
  const queue = new ChunkQueue(options.socket);
  const writable = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _encoding, callback) {
      queue.push(chunk);
      callback();
    },
    final(callback) {
      queue.end();
      callback();
    },
  });
  writable.on('error', () => {});
  const prefix = part10Prefix({
    sopClassUid: options.sopClassUid,
    sopInstanceUid: options.sopInstanceUid,
    transferSyntaxUid: options.transferSyntaxUid,
    sourceAeTitle: options.callingAeTitle,
  });
  async function* source(): AsyncGenerator<Buffer> {
    yield prefix;
    yield* queue;
  }
  const result = (async (): Promise<StoreResult> => {
    try {
      const scanned = await options.archive.scanAndStore(source(), {
        sopClassUid: options.sopClassUid,
        sopInstanceUid: options.sopInstanceUid,
      });
      // A refused file stops the scanner early: the rest of the data set must not pause the socket.
      if (!queue.finished) queue.discard();
      return await scanned.completion;
    } catch {
      queue.discard();
      return { ok: false, failure: { failureReason: FailureReason.ProcessingFailure, message: 'The instance could not be processed' } };
    }
  })();
  return { writable, queue, result };
}

/** DIMSE status and Error Comment (0000,0902; LO, at most 64 characters) of a store outcome. */
export function storeStatus(result: StoreResult): { status: number; errorComment?: string } {
  if (result.ok) return { status: Status.Success };
  const comment = result.failure.message.slice(0, 64);
  switch (result.failure.failureReason) {
    case FailureReason.OutOfResources:
      return { status: Status.OutOfResources, errorComment: comment };
    case FailureReason.DataSetMismatch:
      return { status: Status.DataSetSopClassMismatch, errorComment: comment };
    case FailureReason.CannotUnderstand:
      return { status: Status.CannotUnderstand, errorComment: comment };
    case FailureReason.DuplicateSopInstance:
      return { status: Status.DuplicateSopInstance, errorComment: comment };
    default:
      return { status: Status.ProcessingFailure, errorComment: comment };
  }
}
