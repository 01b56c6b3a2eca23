/**
 * The change feed: how the server processes sharing one index (a SQLite file on one machine, or one
 * PostgreSQL behind a load balancer) tell each other what changed, so that no cache of any process
 * answers from before a change another process made (docs/architecture.md, "Change feed").
 *
 * A change is announced right after its transaction committed (never before: a process that hears of
 * it and reads the index again finds the new state). Listeners of the announcing process are told
 * synchronously, inside `publish`; other processes hear of it through the backend (in-process only,
 * SQLite change table, PostgreSQL LISTEN/NOTIFY, Redis pub/sub). A process that may have missed a
 * message (connection lost, table rows pruned before it read them) tells its listeners `flush`:
 * drop everything. While `live` is false (connection down) caches must not serve or keep entries.
 *
 * Messages carry UIDs, blob keys and link ids only, never a patient's name or ID.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';

/** One instance. */
export interface InstanceRef {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
}

/**
 * Instances of these studies were added, removed (rejected, deleted, purged), changed (restored,
 * moved, their blob replaced) or their patient's identity of record changed.
 */
export interface InstancesChange {
  kind: 'instances-added' | 'instances-removed' | 'instances-changed' | 'patient-changed';
  /** Every study concerned: what is cached about them is dropped (unless `instances` narrows it). */
  studies: string[];
  /** When given, only these instances of `studies` changed. */
  instances?: InstanceRef[];
  /** Blob keys rewritten in place or removed: stores drop what they keep open of them (read handles). */
  blobKeys?: string[];
}

/** A share link was revoked: credentials of it cached anywhere stop at once. */
export interface LinkRevoked {
  kind: 'link-revoked';
  linkId: string;
}

/** Anything may have changed (a message may have been missed): drop every cached entry. */
export interface Flush {
  kind: 'flush';
  reason: 'lost' | 'regained' | 'gap' | 'announced';
}

export type Change = InstancesChange | LinkRevoked | Flush;
export type ChangeListener = (change: Change) => void;

export type ChangeFeedBackend = 'memory' | 'sqlite' | 'postgres' | 'redis';

export interface ChangeFeed {
  readonly backend: ChangeFeedBackend;
  /**
   * True while every change any process publishes reaches this process's listeners. False while a
   * subscription is lost: caches then neither serve nor keep entries (they were flushed and are again
   * when it is regained).
   */
  readonly live: boolean;
  /**
   * Announces a committed change: this process's listeners synchronously, before it returns; then the
   * other processes. Never rejects: a backend failure is logged (the others flush when their own
   * subscription breaks).
   */
  publish(change: Change): Promise<void>;
  /** Every change, this process's and the others', and `flush`. Returns the unsubscribe function. */
  subscribe(listener: ChangeListener): () => void;
  close(): Promise<void>;
}

/** Largest message on the wire (PostgreSQL's NOTIFY payload limit is 8000 bytes). */
export const MAX_MESSAGE_BYTES = 7000;

interface WireMessage {
  /** The publishing feed (its own messages come back on some backends and are skipped). */
  o: string;
  c: Change;
}

/** The messages of one change on the wire: split so that each stays under MAX_MESSAGE_BYTES. */
export function encodeChange(origin: string, change: Change): string[] {
  const encode = (c: Change) => JSON.stringify({ o: origin, c } satisfies WireMessage);
  const text = encode(change);
  if (Buffer.byteLength(text) <= MAX_MESSAGE_BYTES) return [text];
  const flush = [encode({ kind: 'flush', reason: 'announced' })];
  if (change.kind === 'link-revoked' || change.kind === 'flush') return flush;
  const parts = splitChange(change).map(encode);
  return parts.every((part) => Buffer.byteLength(part) <= MAX_MESSAGE_BYTES) ? parts : flush;
}

/**
 * A large change as several that together name the same studies, instances and blob keys (listeners
 * act on their union): the studies in chunks, the instances in chunks with their own studies, the
 * blob keys in chunks of their own.
 */
function splitChange(change: InstancesChange): InstancesChange[] {
  const budget = MAX_MESSAGE_BYTES - 200;
  const { kind } = change;
  const parts: InstancesChange[] = chunks(change.studies, budget).map((studies) => ({ kind, studies }));
  for (const refs of chunks(change.instances ?? [], budget / 2)) {
    parts.push({ kind, studies: [...new Set(refs.map((ref) => ref.studyInstanceUid))], instances: refs });
  }
  for (const blobKeys of chunks(change.blobKeys ?? [], budget)) parts.push({ kind, studies: [], blobKeys });
  return parts;
}

/** Consecutive pieces of `items` whose JSON stays under `budget` bytes each. */
function chunks<T>(items: readonly T[], budget: number): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const item of items) {
    const bytes = Buffer.byteLength(JSON.stringify(item)) + 1;
    if (current.length > 0 && size + bytes > budget) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += bytes;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** A message from the wire, or undefined when it is not one (ignored). */
export function decodeChange(text: string): { origin: string; change: Change } | undefined {
  try {
    const message = JSON.parse(text) as Partial<WireMessage>;
    if (typeof message.o !== 'string' || typeof message.c !== 'object' || message.c === null || typeof message.c.kind !== 'string') return undefined;
    return { origin: message.o, change: message.c };
  } catch {
    return undefined;
  }
}

/**
 * What the backends share: local listeners, the origin that marks this feed's messages, `live` and
 * the flushes when a subscription is lost and regained. A backend implements `send` (to the other
 * processes) and calls `received`, `lost` and `regained`.
 */
export abstract class BaseChangeFeed implements ChangeFeed {
  abstract readonly backend: ChangeFeedBackend;
  readonly origin = randomUUID();
  private readonly listeners = new Set<ChangeListener>();
  private connected = true;
  protected closed = false;

  constructor(protected readonly log: Logger) {}

  get live(): boolean {
    return this.connected && !this.closed;
  }

  async publish(change: Change): Promise<void> {
    this.deliver(change);
    if (this.closed) return;
    try {
      await this.send(encodeChange(this.origin, change));
    } catch (err) {
      this.log.warn({ err: errorSummary(err), backend: this.backend, kind: change.kind }, 'a change could not be announced to the other server processes');
    }
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  abstract close(): Promise<void>;

  /** Sends these messages to the other processes. */
  protected abstract send(messages: string[]): Promise<void>;

  /** A message from the backend: delivered unless it is this feed's own. */
  protected received(text: string): void {
    if (this.closed) return;
    const decoded = decodeChange(text);
    if (decoded === undefined || decoded.origin === this.origin) return;
    this.deliver(decoded.change);
  }

  /** The subscription broke: caches are flushed and stay unused until `regained`. */
  protected lost(err: unknown): void {
    if (!this.connected || this.closed) return;
    this.connected = false;
    this.log.warn({ err: errorSummary(err), backend: this.backend }, 'change feed subscription lost: caches flushed and bypassed until it is back');
    this.deliver({ kind: 'flush', reason: 'lost' });
  }

  /** Subscribed again: what was missed meanwhile is unknown, so everything is flushed once more. */
  protected regained(): void {
    if (this.connected || this.closed) return;
    this.connected = true;
    this.log.info({ backend: this.backend }, 'change feed subscription back: caches flushed');
    this.deliver({ kind: 'flush', reason: 'regained' });
  }

  /** Tells every listener; a failing listener is logged and the others still told. */
  protected deliver(change: Change): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(change);
      } catch (err) {
        this.log.warn({ err: errorSummary(err), kind: change.kind }, 'a change listener failed');
      }
    }
  }
}

/** In-process only: one server process on the index (tests, an in-memory index, PACS_CHANGE_FEED=memory). */
export class InProcessChangeFeed extends BaseChangeFeed {
  readonly backend = 'memory' as const;

  protected async send(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** The studies a change concerns, or 'all' (flush). Link revocations concern none. */
export function studiesOf(change: Change): readonly string[] | 'all' {
  if (change.kind === 'flush') return 'all';
  if (change.kind === 'link-revoked') return [];
  return change.studies;
}

/** Only type, code and message: errors of drivers may quote statements. */
export function errorSummary(err: unknown): Record<string, unknown> {
  if (err instanceof Error) return { type: err.name, code: (err as { code?: unknown }).code, message: err.message.slice(0, 200) };
  return { type: typeof err };
}
