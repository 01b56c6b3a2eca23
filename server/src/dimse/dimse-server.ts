/**
 * The DICOM network service (DIMSE SCP): C-ECHO, C-STORE, C-FIND, C-MOVE and C-GET, and with the
 * hospital link's store the Modality Worklist (C-FIND, worklist.ts) and MPPS (N-CREATE / N-SET,
 * mpps.ts), on dcmjs-dimse's protocol machine (PDUs, association state, P-DATA fragmentation), behind a `net.Server` of our own so
 * it listens on the configured address only (dcmjs-dimse's `Server.listen(port)` binds every interface).
 *
 * Every handler answers: an exception inside a dcmjs-dimse handler would abort the association with no
 * response, so each one catches and replies with a failure status. A malformed PDU, an A-ABORT, a closed
 * socket or a peer that stops reading (PDU timeout) ends that association only; an unfinished C-STORE
 * data set is dropped (nothing indexed). Logs name AE titles, addresses and counts, never patient data.
 */
import net from 'node:net';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { Archive } from '../archive/archive.js';
import type { DimseConfig } from '../config.js';
import { IdentifierError, findMatches, matchText, parseIdentifier } from './c-find.js';
import { recordDimse } from '../audit/audit-dimse.js';
import { storedObjects, type AuditObject } from '../audit/audit-record.js';
import type { AuditTrail } from '../audit/audit-trail.js';
import { RetrieveIdentifierError, instancesToRetrieve, runSubOperations, withStoreAssociation, type SubOperationCounts } from './c-move-get.js';
import { startIncomingStore, storeStatus, type IncomingStore } from './c-store.js';
import { MODALITY_PERFORMED_PROCEDURE_STEP, MODALITY_WORKLIST_FIND, aeMay, negotiate, type AssociationPolicy } from './association-policy.js';
import type { HisStore } from '../his/his-store.js';
import { WorklistIdentifierError, findWorklist, parseWorklistIdentifier, worklistAuditKeys } from './worklist.js';
import { MppsStatus, createPerformedStep, patientOf, setPerformedStep, type MppsOutcome } from './mpps.js';
import { outcomeOfDimseStatus } from '../audit/audit-record.js';
import {
  Dataset,
  Scp,
  Status,
  responses,
  type Association,
  type CEchoRequest,
  type CFindRequest,
  type CGetRequest,
  type CMoveRequest,
  type CStoreRequest,
  type NCreateRequest,
  type NCreateResponse,
  type NSetRequest,
  type NSetResponse,
  type PresentationContext,
  type Request,
} from './dimse-lib.js';

export interface DimseServerOptions {
  config: Pick<DimseConfig, 'host' | 'port' | 'aeTitle' | 'allowedCallingAeTitles' | 'destinations'> & Partial<Pick<DimseConfig, 'aePermissions'>>;
  archive: Archive;
  logger: Logger;
  /** Rows per catalog query while answering C-FIND / resolving C-MOVE (the QIDO maximum page). */
  pageSize: number;
  /** Seconds of silence before an association is aborted (dcmjs-dimse PDU / association timeouts). */
  timeoutSeconds?: number;
  /** Audit trail: one record per C-STORE, C-FIND, C-MOVE, C-GET, N-CREATE and N-SET with its final status. */
  audit?: AuditTrail | undefined;
  /** The hospital link's store: Modality Worklist (C-FIND) and MPPS (N-CREATE / N-SET) are offered only with it. */
  his?: HisStore | undefined;
}

/**
 * Our maximum receive PDU length (PS3.8 §D.1), announced in every A-ASSOCIATE-AC: dcmjs-dimse's own
 * default limit, which its accept caps the announcement at anyway (256 KiB).
 */
const MAX_RECEIVE_PDU_BYTES = 256 * 1024;

export interface DimseServer {
  /** Where it listens (the port is the real one when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  /** Associations open now. */
  connections(): number;
  /** Stops listening and ends every open association. */
  close(): Promise<void>;
}

type ResponseLike = InstanceType<typeof responses.Response>;

export async function startDimseServer(options: DimseServerOptions): Promise<DimseServer> {
  const { archive, config } = options;
  const log = options.logger.child({ component: 'dimse' });
  const policy: AssociationPolicy = { allowedCallingAeTitles: config.allowedCallingAeTitles, aePermissions: config.aePermissions ?? {}, hospitalLink: options.his !== undefined };
  const timeoutMs = (options.timeoutSeconds ?? 60) * 1000;
  const sockets = new Set<net.Socket>();

  class PacsScp extends Scp {
    private readonly stores = new WeakMap<object, IncomingStore>();
    private current: IncomingStore | undefined;
    private readonly cancelled = new Set<number>();
    private readonly unauthorized = new WeakSet<object>();
    private callingAeTitle = '';
    private resolveEnded!: () => void;
    readonly ended = new Promise<void>((resolve) => (this.resolveEnded = resolve));
    private readonly ownSocket: net.Socket;

    constructor(socket: net.Socket) {
      super(socket, { connectTimeout: timeoutMs, associationTimeout: timeoutMs, pduTimeout: timeoutMs });
      this.ownSocket = socket;
      this.on('networkError', (err: Error) => {
        log.warn({ callingAeTitle: this.callingAeTitle, message: err.message.replace(/^.*-> /, '') }, 'DIMSE association ended by a network error');
        this.endAssociation(new Error('network error'));
        socket.destroy();
      });
      this.on('close', () => this.endAssociation(new Error('connection closed')));
    }

    private audited(service: 'C-STORE' | 'C-FIND' | 'C-MOVE' | 'C-GET', status: number, objects: AuditObject[], extra: { query?: { level: string; keys: Record<string, string> }; detail?: Record<string, string | number> } = {}): void {
      recordDimse(options.audit, { service, callingAeTitle: this.callingAeTitle, clientAddress: this.ownSocket.remoteAddress, status, objects, ...extra });
    }

    private endAssociation(reason: Error): void {
      this.current?.queue.fail(reason);
      this.current = undefined;
      this.resolveEnded();
    }

    override associationRequested(association: Association): void {
      try {
        this.callingAeTitle = association.getCallingAeTitle().trim();
        const decision = negotiate(association, policy);
        if (!decision.accept) {
          log.warn({ callingAeTitle: this.callingAeTitle, remote: this.ownSocket.remoteAddress }, `DIMSE association rejected: ${decision.why}`);
          this.sendAssociationReject(decision.result, decision.source, decision.reason);
          return;
        }
        log.info(
          { callingAeTitle: this.callingAeTitle, calledAeTitle: association.getCalledAeTitle().trim(), accepted: decision.accepted, refused: decision.refused },
          'DIMSE association accepted',
        );
        // PS3.8 §D.1: the A-ASSOCIATE-AC announces the acceptor's own maximum receive PDU length; the
        // peer then sends P-DATA-TF PDUs up to it. dcmjs-dimse announces min(the peer's, its own), which
        // made storescu (16 KiB for itself by default) send a 130 KB CT image in 8 PDUs instead of 2 (it
        // sends at most 128 KiB per PDU). dcmjs-dimse also sends by the association's value, so the
        // peer's own limit is put back once the AC is written.
        const peerMaxPdu = association.getMaxPduLength();
        association.setMaxPduLength(MAX_RECEIVE_PDU_BYTES);
        this.sendAssociationAccept();
        association.setMaxPduLength(peerMaxPdu);
      } catch (err) {
        log.error({ message: (err as Error).message }, 'DIMSE association negotiation failed');
        this.sendAssociationReject(2, 2, 1);
      }
    }

    override associationReleaseRequested(): void {
      this.sendAssociationReleaseResponse();
      // The peer closes the connection after A-RELEASE-RP; close our side too (after the flush).
      this.ownSocket.end();
    }

    override abort(): void {
      log.info({ callingAeTitle: this.callingAeTitle }, 'DIMSE association aborted by the peer');
      this.endAssociation(new Error('association aborted'));
      this.ownSocket.destroy();
    }

    override cEchoRequest(request: CEchoRequest, callback: (response: InstanceType<typeof responses.CEchoResponse>) => void): void {
      const response = responses.CEchoResponse.fromRequest(request);
      response.setStatus(Status.Success);
      callback(response);
    }

    override createStoreWritableStream(context: PresentationContext, request: CStoreRequest) {
      if (!aeMay(policy, this.callingAeTitle, 'store')) {
        // Refused before a byte reaches the archive; the data set is read and dropped, then 0124H.
        this.unauthorized.add(request);
        return new Writable({ write: (_chunk, _encoding, done) => done() });
      }
      const store = startIncomingStore({
        archive,
        socket: this.ownSocket,
        sopClassUid: request.getAffectedSopClassUid(),
        sopInstanceUid: request.getAffectedSopInstanceUid(),
        transferSyntaxUid: context.getAcceptedTransferSyntaxUid() ?? '',
        callingAeTitle: this.callingAeTitle,
      });
      this.stores.set(request, store);
      this.current = store;
      return store.writable;
    }

    override createDatasetFromStoreWritableStream(_writable: unknown, context: PresentationContext, callback: (dataset: InstanceType<typeof Dataset>) => void): void {
      // The bytes went to the archive as they arrived; the library only needs a placeholder.
      callback(new Dataset({}, context.getAcceptedTransferSyntaxUid()));
    }

    override cStoreRequest(request: CStoreRequest, callback: (response: InstanceType<typeof responses.CStoreResponse>) => void): void {
      const store = this.stores.get(request);
      this.stores.delete(request);
      if (this.current === store) this.current = undefined;
      void (async () => {
        const response = responses.CStoreResponse.fromRequest(request);
        let stored: AuditObject[] = [{ instance: request.getAffectedSopInstanceUid(), sopClass: request.getAffectedSopClassUid() }];
        try {
          if (this.unauthorized.has(request)) {
            log.warn({ callingAeTitle: this.callingAeTitle }, 'C-STORE refused: this calling AE may not store');
            response.setStatus(Status.NotAuthorized);
            response.setErrorComment('This calling AE title may not store');
          } else if (store === undefined) {
            response.setStatus(Status.CannotUnderstand);
            response.setErrorComment('No data set received');
          } else {
            const result = await store.result;
            if (result.ok) stored = storedObjects([result.item]);
            const outcome = storeStatus(result);
            response.setStatus(outcome.status);
            if (outcome.errorComment) response.setErrorComment(outcome.errorComment);
            if (outcome.status !== Status.Success) log.warn({ callingAeTitle: this.callingAeTitle, status: outcome.status }, 'C-STORE refused');
          }
        } catch {
          response.setStatus(Status.ProcessingFailure);
        }
        this.audited('C-STORE', response.getStatus(), stored);
        callback(response);
      })();
    }

    override cCancelRequest(request: Request): void {
      this.cancelled.add(request.getCommandDataset().getElement('MessageIDBeingRespondedTo') as unknown as number);
    }

    private isCancelled(request: Request): boolean {
      return this.cancelled.has(request.getMessageId());
    }

    override cFindRequest(request: CFindRequest, answer: (answers: Array<InstanceType<typeof responses.CFindResponse>>) => void): void {
      // Audit: the final answer's status, with the identifier's level and keys (the query as sent).
      const callback = (answers: Array<InstanceType<typeof responses.CFindResponse>>) => {
        try {
          const elements = (request.getDataset()?.getElements() ?? {}) as Record<string, unknown>;
          const keys = Object.fromEntries(Object.entries(elements).filter(([keyword]) => !keyword.startsWith('_')).map(([keyword, value]) => [keyword, matchText(value)]));
          const worklist = request.getAffectedSopClassUid() === MODALITY_WORKLIST_FIND;
          this.audited('C-FIND', answers.at(-1)?.getStatus() ?? Status.ProcessingFailure, [], {
            query: worklist ? { level: 'WORKLIST', keys: worklistAuditKeys(elements) } : { level: matchText(elements['QueryRetrieveLevel']), keys },
            detail: { sopClass: request.getAffectedSopClassUid() },
          });
        } finally {
          answer(answers);
        }
      };
      const respond = (status: number, elements?: Record<string, unknown>, comment?: string) => {
        const response = responses.CFindResponse.fromRequest(request);
        response.setAffectedSopClassUid(request.getAffectedSopClassUid());
        response.setStatus(status);
        if (elements) response.setDataset(new Dataset(elements));
        if (comment) response.setErrorComment(comment.slice(0, 64));
        return response;
      };
      if (!aeMay(policy, this.callingAeTitle, 'read')) {
        log.warn({ callingAeTitle: this.callingAeTitle }, 'C-FIND refused: this calling AE may not query');
        callback([respond(Status.NotAuthorized, undefined, 'This calling AE title may not query')]);
        return;
      }
      if (request.getAffectedSopClassUid() === MODALITY_WORKLIST_FIND) {
        void this.worklistFind(request, respond, callback);
        return;
      }
      void (async () => {
        let matches = 0;
        try {
          const identifier = parseIdentifier(request.getDataset()?.getElements() ?? {});
          for await (const page of findMatches(archive, identifier, options.pageSize, config.aeTitle)) {
            if (this.isCancelled(request)) {
              callback([respond(Status.Cancel)]);
              return;
            }
            matches += page.length;
            // dcmjs-dimse's callback may be called once: pending answers go out directly, the final one through it.
            for (const elements of page) this.sendResponse(request, respond(Status.Pending, elements));
          }
          log.info({ callingAeTitle: this.callingAeTitle, level: identifier.level, matches }, 'C-FIND');
          callback([respond(Status.Success)]);
        } catch (err) {
          if (err instanceof IdentifierError) callback([respond(Status.IdentifierDoesNotMatchSopClass, undefined, err.message)]);
          else {
            log.error({ message: (err as Error).message }, 'C-FIND failed');
            callback([respond(Status.UnableToProcess, undefined, 'The query could not be processed')]);
          }
        }
      })();
    }

    /** Modality Worklist C-FIND (worklist.ts): one pending answer per item, C-CANCEL checked as they go. */
    private async worklistFind(
      request: CFindRequest,
      respond: (status: number, elements?: Record<string, unknown>, comment?: string) => InstanceType<typeof responses.CFindResponse>,
      callback: (answers: Array<InstanceType<typeof responses.CFindResponse>>) => void,
    ): Promise<void> {
      try {
        if (options.his === undefined) throw new Error('no HIS store');
        const identifier = parseWorklistIdentifier(request.getDataset()?.getElements() ?? {});
        const items = await findWorklist(options.his, identifier);
        const pending = identifier.unsupported.length > 0 ? Status.PendingOptionalKeysNotSupported : Status.Pending;
        for (const elements of items) {
          await new Promise((resolve) => setImmediate(resolve)); // lets a C-CANCEL in between answers
          if (this.isCancelled(request)) {
            callback([respond(Status.Cancel)]);
            return;
          }
          this.sendResponse(request, respond(pending, elements));
        }
        log.info({ callingAeTitle: this.callingAeTitle, matches: items.length }, 'Modality Worklist C-FIND');
        callback([respond(Status.Success)]);
      } catch (err) {
        if (err instanceof WorklistIdentifierError) callback([respond(Status.IdentifierDoesNotMatchSopClass, undefined, err.message)]);
        else {
          log.error({ message: (err as Error).message }, 'Modality Worklist C-FIND failed');
          callback([respond(Status.UnableToProcess, undefined, 'The worklist could not be read')]);
        }
      }
    }

    override nCreateRequest(request: NCreateRequest, callback: (response: NCreateResponse) => void): void {
      void this.performedStep('N-CREATE', request, responses.NCreateResponse.fromRequest(request), callback as (response: NCreateResponse | NSetResponse) => void);
    }

    override nSetRequest(request: NSetRequest, callback: (response: NSetResponse) => void): void {
      void this.performedStep('N-SET', request, responses.NSetResponse.fromRequest(request), callback as (response: NCreateResponse | NSetResponse) => void);
    }

    /** MPPS N-CREATE / N-SET (mpps.ts), with the `store` permission; audited as an Order Record event. */
    private async performedStep(
      service: 'N-CREATE' | 'N-SET',
      request: NCreateRequest | NSetRequest,
      response: NCreateResponse | NSetResponse,
      callback: (response: NCreateResponse | NSetResponse) => void,
    ): Promise<void> {
      const elements = (request.getDataset()?.getElements() ?? {}) as Record<string, unknown>;
      const requestedUid = service === 'N-CREATE' ? request.getAffectedSopInstanceUid() : request.getRequestedSopInstanceUid();
      let outcome: MppsOutcome;
      try {
        const sopClass = service === 'N-CREATE' ? request.getAffectedSopClassUid() : request.getRequestedSopClassUid();
        if (options.his === undefined || sopClass !== MODALITY_PERFORMED_PROCEDURE_STEP) {
          outcome = { status: MppsStatus.NoSuchSopClass, sopInstanceUid: requestedUid ?? '', errorComment: 'No such SOP class', orders: [], performedSeries: [] };
        } else if (!aeMay(policy, this.callingAeTitle, 'store')) {
          log.warn({ callingAeTitle: this.callingAeTitle }, `MPPS ${service} refused: this calling AE may not store`);
          outcome = { status: Status.NotAuthorized, sopInstanceUid: requestedUid ?? '', errorComment: 'This calling AE title may not report procedure steps', orders: [], performedSeries: [] };
        } else {
          outcome = service === 'N-CREATE' ? await createPerformedStep(options.his, requestedUid, elements) : await setPerformedStep(options.his, requestedUid ?? '', elements);
        }
      } catch (err) {
        log.error({ message: (err as Error).message }, `MPPS ${service} failed`);
        outcome = { status: MppsStatus.ProcessingFailure, sopInstanceUid: requestedUid ?? '', errorComment: 'The procedure step could not be recorded', orders: [], performedSeries: [] };
      }
      response.setStatus(outcome.status);
      if (outcome.sopInstanceUid !== '') response.setAffectedSopInstanceUid(outcome.sopInstanceUid);
      if (outcome.errorComment !== undefined) response.setErrorComment(outcome.errorComment.slice(0, 64));
      const command = response.getCommandDataset() as unknown as { setElement(keyword: string, value: unknown): void };
      if (outcome.errorId !== undefined) command.setElement('ErrorID', outcome.errorId);
      if (outcome.attributes !== undefined) command.setElement('AttributeIdentifierList', outcome.attributes);
      const level = outcome.status === MppsStatus.Success ? 'info' : 'warn';
      log[level]({ callingAeTitle: this.callingAeTitle, status: outcome.status, ppsStatus: outcome.ppsStatus, orders: outcome.orders.length, series: outcome.performedSeries.length }, `MPPS ${service}`);
      this.auditedStep(service, outcome, elements);
      callback(response);
    }

    private auditedStep(service: 'N-CREATE' | 'N-SET', outcome: MppsOutcome, elements: Record<string, unknown>): void {
      if (options.audit === undefined) return;
      try {
        const patient = patientOf(outcome.orders, elements);
        const studies = [...new Set(outcome.orders.map((order) => order.studyInstanceUid))];
        const objects: AuditObject[] = studies.map((study) => ({ study, ...(patient === undefined ? {} : { patient }) }));
        if (objects.length === 0 && patient !== undefined) objects.push({ patient });
        options.audit.record({
          time: Date.now(),
          action: 'order-record',
          outcome: outcomeOfDimseStatus(outcome.status),
          status: outcome.status,
          who: { subject: `AE:${this.callingAeTitle}`, name: this.callingAeTitle, kind: 'dimse' },
          clientAddress: (this.ownSocket.remoteAddress ?? '').replace(/^::ffff:/, ''),
          interface: 'dimse',
          route: service,
          objects,
          detail: {
            eventActionCode: service === 'N-CREATE' ? 'C' : 'U',
            sopClass: MODALITY_PERFORMED_PROCEDURE_STEP,
            mppsSopInstanceUid: outcome.sopInstanceUid,
            orders: outcome.orders.length,
            performedSeries: outcome.performedSeries.length,
            ...(outcome.ppsStatus === undefined ? {} : { ppsStatus: outcome.ppsStatus }),
          },
        });
      } catch {
        // a malformed request must not break the association
      }
    }

    override cMoveRequest(request: CMoveRequest, callback: (answers: Array<InstanceType<typeof responses.CMoveResponse>>) => void): void {
      const destinationAe = String(request.getCommandDataset().getElement('MoveDestination') ?? '').trim();
      void this.retrieve(request, 'C-MOVE', () => responses.CMoveResponse.fromRequest(request), (r) => callback([r as InstanceType<typeof responses.CMoveResponse>]), async (instances, progress) => {
        const destination = config.destinations[destinationAe];
        if (destination === undefined) return 'unknown-destination';
        return withStoreAssociation({ aeTitle: destinationAe, ...destination }, config.aeTitle, instances, (network, association, ended) =>
          runSubOperations(archive, network, association, instances, Promise.race([ended, this.ended]), () => this.isCancelled(request), progress, log),
        );
      });
    }

    override cGetRequest(request: CGetRequest, callback: (answers: Array<InstanceType<typeof responses.CGetResponse>>) => void): void {
      void this.retrieve(request, 'C-GET', () => responses.CGetResponse.fromRequest(request), (r) => callback([r as InstanceType<typeof responses.CGetResponse>]), (instances, progress) =>
        runSubOperations(archive, this, (this as unknown as { association: Association }).association, instances, this.ended, () => this.isCancelled(request), progress, log),
      );
    }

    /** Shared C-MOVE / C-GET flow: resolve the identifier, run the sub-operations, answer with counts. */
    private async retrieve(
      request: CMoveRequest | CGetRequest,
      kind: 'C-MOVE' | 'C-GET',
      create: () => ResponseLike & { setRemaining(n: number): void; setCompleted(n: number): void; setFailures(n: number): void; setWarnings(n: number): void },
      send: (response: ResponseLike) => void,
      run: (instances: Awaited<ReturnType<typeof instancesToRetrieve>>, progress: (counts: SubOperationCounts) => void) => Promise<SubOperationCounts | 'unknown-destination'>,
    ): Promise<void> {
      let resolved: AuditObject[] = [];
      const respond = (status: number, counts?: SubOperationCounts, final = false, comment?: string, pending = false) => {
        if (!pending) {
          const detail: Record<string, string | number> = counts === undefined ? {} : { completed: counts.completed, failed: counts.failed, warning: counts.warning };
          if (kind === 'C-MOVE') detail['destination'] = String(request.getCommandDataset().getElement('MoveDestination') ?? '').trim();
          this.audited(kind, status, resolved, { detail });
        }
        const response = create();
        response.setAffectedSopClassUid(request.getAffectedSopClassUid());
        response.setStatus(status);
        if (counts) {
          if (!final) response.setRemaining(counts.remaining);
          response.setCompleted(counts.completed);
          response.setFailures(counts.failed);
          response.setWarnings(counts.warning);
          if (final && counts.failedSopInstanceUids.length > 0) {
            response.setDataset(new Dataset({ FailedSOPInstanceUIDList: counts.failedSopInstanceUids.join('\\') }));
          }
        }
        if (comment) response.setErrorComment(comment.slice(0, 64));
        // dcmjs-dimse's callback may be called once: pending answers go out directly, the final one through it.
        if (pending) this.sendResponse(request, response);
        else send(response);
      };
      if (!aeMay(policy, this.callingAeTitle, 'read')) {
        log.warn({ callingAeTitle: this.callingAeTitle }, `${kind} refused: this calling AE may not retrieve`);
        respond(Status.NotAuthorized, undefined, true, 'This calling AE title may not retrieve');
        return;
      }
      try {
        const instances = await instancesToRetrieve(archive, request.getDataset()?.getElements() ?? {}, options.pageSize);
        resolved = storedObjects(instances);
        const counts = await run(instances, (c) => respond(Status.Pending, c, false, undefined, true));
        if (counts === 'unknown-destination') {
          log.warn({ callingAeTitle: this.callingAeTitle }, 'C-MOVE to an unknown destination refused');
          respond(Status.MoveDestinationUnknown, undefined, true, 'Move destination unknown');
          return;
        }
        const status = this.isCancelled(request)
          ? Status.Cancel
          : counts.failed + counts.warning === 0
            ? Status.Success
            : counts.completed === 0 && counts.warning === 0
              ? Status.OutOfResourcesSubOperations
              : Status.SubOperationsWarning;
        log.info({ callingAeTitle: this.callingAeTitle, instances: instances.length, completed: counts.completed, failed: counts.failed }, kind);
        respond(status, counts, true);
      } catch (err) {
        if (err instanceof RetrieveIdentifierError) {
          respond(Status.IdentifierDoesNotMatchSopClass, undefined, true, err.message);
          return;
        }
        log.error({ message: (err as Error).message }, `${kind} failed`);
        respond(Status.OutOfResourcesSubOperations, undefined, true, 'Sub-operations could not be performed');
      }
    }
  }

  const server = net.createServer((socket) => {
    sockets.add(socket);
    // One small response PDU per C-STORE: without this, Nagle + delayed ACK add ~40 ms to each.
    socket.setNoDelay(true);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    try {
      const scp = new PacsScp(socket);
      (scp as unknown as { connected: boolean }).connected = true;
    } catch (err) {
      log.error({ message: (err as Error).message }, 'DIMSE connection setup failed');
      socket.destroy();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: config.host, port: config.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ message: err.message }, 'DIMSE server error'));
  const address = server.address() as net.AddressInfo;
  log.info({ host: address.address, port: address.port, aeTitle: config.aeTitle }, 'DIMSE service listening');
  return {
    host: address.address,
    port: address.port,
    connections: () => sockets.size,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
