/**
 * C-MOVE and C-GET SCP (PS3.4 Annex C.4.2, C.4.3): the identifier names studies, series or instances
 * (UID lists allowed; patient level by Patient ID); the instances come from `Archive.findInstances` and
 * are sent by C-STORE sub-operations with their stored bytes (`Archive.openInstance`), in the stored
 * transfer syntax when the receiver accepted it, else decoded to Explicit VR Little Endian (or Implicit,
 * re-encoded by dcmjs-dimse). C-MOVE opens its own association to a destination listed in config;
 * C-GET sends on the requester's association. Pending responses carry the sub-operation counts.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import type { Archive } from '../archive/archive.js';
import { canTranscodeToExplicitLittleEndian } from '../archive/transcode.js';
import type { StoredInstance } from '../catalog/catalog.js';
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from '../dicom/transfer-syntax.js';
import { isAppError } from '../errors.js';
import { matchText } from './c-find.js';
import { Dataset, Scp, associationModule, constants, requests, type Association, type CStoreRequest, type Scp as ScpInstance } from './dimse-lib.js';
import { datasetStart } from './part10.js';

export type RetrieveLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

export class RetrieveIdentifierError extends Error {}

function uidList(value: unknown): string[] {
  return matchText(value)
    .split('\\')
    .map((uid) => uid.replace(/[\0\s]+$/, '').trim())
    .filter((uid) => uid !== '');
}

/** The stored instances an identifier names, in series / instance order, without duplicates. */
export async function instancesToRetrieve(archive: Archive, elements: Record<string, unknown>, pageSize: number): Promise<StoredInstance[]> {
  const level = matchText(elements['QueryRetrieveLevel']).toUpperCase();
  const studies = uidList(elements['StudyInstanceUID']);
  const series = uidList(elements['SeriesInstanceUID']);
  const sops = uidList(elements['SOPInstanceUID']);
  const found: StoredInstance[] = [];
  const add = async (scope: { studyInstanceUid: string; seriesInstanceUid?: string; sopInstanceUid?: string }) => {
    try {
      found.push(...(await archive.findInstances(scope)));
    } catch (err) {
      if (!(isAppError(err) && err.code === 'NOT_FOUND')) throw err;
    }
  };
  switch (level) {
    case 'PATIENT': {
      const patientId = matchText(elements['PatientID']);
      if (patientId === '') throw new RetrieveIdentifierError('Patient ID (0010,0020) is required at PATIENT level');
      for (const study of await searchUids(archive, 'study', [{ tag: '00100020', value: patientId }], pageSize)) {
        await add({ studyInstanceUid: study.study });
      }
      break;
    }
    case 'STUDY':
      if (studies.length === 0) throw new RetrieveIdentifierError('Study Instance UID (0020,000D) is required at STUDY level');
      for (const study of studies) await add({ studyInstanceUid: study });
      break;
    case 'SERIES':
      if (series.length === 0) throw new RetrieveIdentifierError('Series Instance UID (0020,000E) is required at SERIES level');
      for (const hit of studies.length === 1
        ? series.map((uid) => ({ study: studies[0]!, series: uid }))
        : await searchUids(archive, 'series', [{ tag: '0020000E', value: series.join('\\') }], pageSize)) {
        await add({ studyInstanceUid: hit.study, seriesInstanceUid: hit.series! });
      }
      break;
    case 'IMAGE':
      if (sops.length === 0) throw new RetrieveIdentifierError('SOP Instance UID (0008,0018) is required at IMAGE level');
      for (const hit of studies.length === 1 && series.length === 1
        ? sops.map((uid) => ({ study: studies[0]!, series: series[0]!, sop: uid }))
        : await searchUids(archive, 'instance', [{ tag: '00080018', value: sops.join('\\') }], pageSize)) {
        await add({ studyInstanceUid: hit.study, seriesInstanceUid: hit.series!, sopInstanceUid: hit.sop! });
      }
      break;
    default:
      throw new RetrieveIdentifierError('Query/Retrieve Level (0008,0052) must be PATIENT, STUDY, SERIES or IMAGE');
  }
  const seen = new Set<string>();
  return found.filter((instance) => !seen.has(instance.sopInstanceUid) && seen.add(instance.sopInstanceUid));
}

async function searchUids(
  archive: Archive,
  level: 'study' | 'series' | 'instance',
  matches: Array<{ tag: string; value: string }>,
  pageSize: number,
): Promise<Array<{ study: string; series?: string; sop?: string }>> {
  const out: Array<{ study: string; series?: string; sop?: string }> = [];
  for (let offset = 0; ; offset += pageSize) {
    const { matches: page } = await archive.search({ level, matches, includeFields: [], limit: pageSize, offset, fuzzyMatching: false });
    for (const json of page) {
      const text = (tag: string) => {
        const v = json[tag]?.Value?.[0];
        return typeof v === 'string' ? v : undefined;
      };
      const study = text('0020000D');
      if (study === undefined) continue;
      out.push({ study, ...(text('0020000E') && { series: text('0020000E')! }), ...(text('00080018') && { sop: text('00080018')! }) });
    }
    if (page.length < pageSize) return out;
  }
}

export interface SubOperationCounts {
  remaining: number;
  completed: number;
  failed: number;
  warning: number;
  failedSopInstanceUids: string[];
}

const ACCEPT = (constants.PresentationContextResult as Record<string, number>)['Accept']!;

/** A data set whose encoded bytes are given (the stored ones): dcmjs-dimse sends them unchanged. */
class EncodedDataset extends Dataset {
  constructor(
    private readonly encoded: Buffer,
    sopClassUid: string,
    sopInstanceUid: string,
    transferSyntaxUid: string,
  ) {
    super({ SOPClassUID: sopClassUid, SOPInstanceUID: sopInstanceUid }, transferSyntaxUid);
  }

  override getDenaturalizedDataset(): Buffer {
    return this.encoded;
  }
}

async function readAll(archive: Archive, instance: StoredInstance): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await archive.openInstance(instance)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The C-STORE request for one instance over an association whose presentation contexts are settled:
 * stored syntax if accepted, else Explicit VR LE (decoded if needed), else Implicit VR LE. Undefined when
 * the receiver accepted no context for the SOP class (or the instance cannot be converted).
 */
export async function storeRequestFor(archive: Archive, association: Association, instance: StoredInstance): Promise<CStoreRequest | undefined> {
  const accepted = new Set<string>();
  for (const { context } of association.getPresentationContexts()) {
    const syntax = context.getAcceptedTransferSyntaxUid();
    if (context.getAbstractSyntaxUid() === instance.sopClassUid && context.getResult() === ACCEPT && syntax) accepted.add(syntax);
  }
  const stored = instance.transferSyntaxUid;
  let dataset: InstanceType<typeof Dataset> | undefined;
  if (accepted.has(stored)) {
    const file = await readAll(archive, instance);
    dataset = new EncodedDataset(file.subarray(datasetStart(file)), instance.sopClassUid, instance.sopInstanceUid, stored);
  } else if (accepted.has(EXPLICIT_VR_LITTLE_ENDIAN) || accepted.has(IMPLICIT_VR_LITTLE_ENDIAN)) {
    let explicit: Buffer;
    if (stored === EXPLICIT_VR_LITTLE_ENDIAN) {
      const file = await readAll(archive, instance);
      explicit = file.subarray(datasetStart(file));
    } else if (canTranscodeToExplicitLittleEndian(stored)) {
      const file = await archive.transcodeInstance(instance);
      explicit = file.subarray(datasetStart(file));
    } else {
      return undefined;
    }
    dataset = accepted.has(EXPLICIT_VR_LITTLE_ENDIAN)
      ? new EncodedDataset(explicit, instance.sopClassUid, instance.sopInstanceUid, EXPLICIT_VR_LITTLE_ENDIAN)
      : // Implicit only: parsed here, re-encoded by dcmjs-dimse when it sends.
        new Dataset(explicit, EXPLICIT_VR_LITTLE_ENDIAN);
  }
  if (dataset === undefined) return undefined;
  const request = new requests.CStoreRequest(dataset);
  request.setAffectedSopClassUid(instance.sopClassUid);
  request.setAffectedSopInstanceUid(instance.sopInstanceUid);
  return request;
}

/**
 * dcmjs-dimse keeps every request it sent in `pending` for the life of the association (and matches
 * responses by message ID, which wraps at 65536): drop an answered one, so a C-GET / C-MOVE of a large
 * study does not keep every instance's bytes in memory until the association ends.
 */
function forget(network: ScpInstance, request: CStoreRequest): void {
  const pending = (network as unknown as { pending?: unknown[] }).pending;
  if (!Array.isArray(pending)) return;
  const at = pending.indexOf(request);
  if (at >= 0) pending.splice(at, 1);
}

/** Sends one C-STORE on `network` and resolves with its status (0xFFFF when the association ended first). */
export function sendStore(network: ScpInstance, request: CStoreRequest, ended: Promise<void>): Promise<number> {
  return new Promise<number>((resolve) => {
    let settled = false;
    const finish = (status: number) => {
      if (!settled) {
        settled = true;
        forget(network, request);
        resolve(status);
      }
    };
    request.on('response', (response: { getStatus(): number }) => finish(response.getStatus()));
    request.on('done', () => finish(0xffff));
    void ended.then(() => finish(0xffff));
    network.sendRequests(request);
  });
}

/** Runs the sub-operations: one C-STORE per instance, counting outcomes, reporting after each. */
export async function runSubOperations(
  archive: Archive,
  network: ScpInstance,
  association: Association,
  instances: StoredInstance[],
  ended: Promise<void>,
  isCancelled: () => boolean,
  progress: (counts: SubOperationCounts) => void,
  log: Logger,
): Promise<SubOperationCounts> {
  const counts: SubOperationCounts = { remaining: instances.length, completed: 0, failed: 0, warning: 0, failedSopInstanceUids: [] };
  let associationGone = false;
  void ended.then(() => (associationGone = true));
  for (const instance of instances) {
    if (isCancelled()) break;
    let status = 0xffff;
    if (!associationGone) {
      try {
        const request = await storeRequestFor(archive, association, instance);
        if (request !== undefined) status = await sendStore(network, request, ended);
      } catch (err) {
        log.warn({ err: { type: (err as Error).name, message: (err as Error).message } }, 'a C-STORE sub-operation could not be sent');
      }
    }
    counts.remaining -= 1;
    if (status === 0x0000) counts.completed += 1;
    else if ((status & 0xf000) === 0xb000) counts.warning += 1;
    else {
      counts.failed += 1;
      counts.failedSopInstanceUids.push(instance.sopInstanceUid);
    }
    if (counts.remaining > 0) progress(counts);
  }
  return counts;
}

export interface Destination {
  aeTitle: string;
  host: string;
  port: number;
}

/**
 * Opens an association from `callingAeTitle` to a C-MOVE destination proposing, per SOP class, the
 * stored syntaxes (one context each) and Explicit/Implicit VR LE; runs `work` on it, then releases.
 */
export async function withStoreAssociation<T>(
  destination: Destination,
  callingAeTitle: string,
  instances: StoredInstance[],
  work: (network: ScpInstance, association: Association, ended: Promise<void>) => Promise<T>,
): Promise<T> {
  const association = new associationModule.Association(callingAeTitle, destination.aeTitle);
  const bySopClass = new Map<string, Set<string>>();
  for (const instance of instances) {
    const set = bySopClass.get(instance.sopClassUid) ?? new Set<string>();
    set.add(instance.transferSyntaxUid);
    bySopClass.set(instance.sopClassUid, set);
  }
  let contexts = 0;
  for (const [sopClass, syntaxes] of bySopClass) {
    for (const syntax of syntaxes) {
      if (contexts >= 126) continue;
      const id = association.addPresentationContext(sopClass);
      association.addTransferSyntaxToPresentationContext(id, syntax);
      contexts++;
    }
    if (contexts >= 127) break;
    const id = association.addPresentationContext(sopClass);
    association.addTransferSyntaxToPresentationContext(id, EXPLICIT_VR_LITTLE_ENDIAN);
    association.addTransferSyntaxToPresentationContext(id, IMPLICIT_VR_LITTLE_ENDIAN);
    contexts++;
  }

  const socket = net.connect({ host: destination.host, port: destination.port, noDelay: true });
  const network = new Scp(socket, { connectTimeout: 15_000, associationTimeout: 30_000, pduTimeout: 60_000 });
  let resolveEnded!: () => void;
  const ended = new Promise<void>((resolve) => (resolveEnded = resolve));
  network.on('close', () => resolveEnded());
  network.on('networkError', () => {
    socket.destroy();
    resolveEnded();
  });
  socket.on('error', () => {});
  try {
    await new Promise<void>((resolve, reject) => {
      network.on('associationAccepted', () => resolve());
      network.on('associationRejected', () => reject(new Error('the destination rejected the association')));
      void ended.then(() => reject(new Error('the destination could not be reached')));
      socket.once('connect', () => network.sendAssociationRequest(association));
    });
    const result = await work(network, association, ended);
    await Promise.race([
      new Promise<void>((resolve) => {
        network.on('associationReleaseResponse', () => resolve());
        network.sendAssociationReleaseRequest();
      }),
      ended,
      new Promise<void>((resolve) => setTimeout(resolve, 10_000).unref()),
    ]);
    return result;
  } finally {
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
  }
}
