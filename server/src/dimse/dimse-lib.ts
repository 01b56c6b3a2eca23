/**
 * The one place dcmjs-dimse (a CommonJS bundle) is imported. Its logger (loglevel) is silenced: at its
 * default level it prints every association, command and private tag, and with dataset logging on it
 * would print patient names and IDs. Our own pino lines say what happened, without patient data.
 */
import { createRequire } from 'node:module';
import dcmjs from 'dcmjs';
import dcmjsDimse from 'dcmjs-dimse';
import { installEmptyNumbers, type FixedVr } from '../dicom/dcmjs-empty-numbers.js';
import { installCommandSetCodec } from './command-set-codec.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './part10.js';

dcmjsDimse.log.setLevel('silent');
// Our identity in A-ASSOCIATE-RQ/AC, the same as in the File Meta of stored instances.
dcmjsDimse.Implementation.setImplementationClassUid(IMPLEMENTATION_CLASS_UID);
dcmjsDimse.Implementation.setImplementationVersion(IMPLEMENTATION_VERSION_NAME);
// Command sets (group 0000) are written and read directly, not through dcmjs's generic codec: a fifth of
// the CPU of a small C-STORE went there (command-set-codec.ts; byte-identical, checked by its test).
installCommandSetCodec(dcmjsDimse.Dataset, dcmjs.data.DicomMetaDictionary.nameMap as Record<string, { tag: string; vr: string }>);

// dcmjs-dimse reads request data sets (C-FIND/C-MOVE/C-GET identifiers) with its own copy of dcmjs: an
// empty binary number there (a return key such as Rows) must read as empty, not 0 (dcmjs-empty-numbers.ts).
const dimseDcmjs = createRequire(createRequire(import.meta.url).resolve('dcmjs-dimse'))('dcmjs') as { data?: { ValueRepresentation?: { prototype: FixedVr } } };
installEmptyNumbers(dimseDcmjs.data?.ValueRepresentation);

export const { Scp, Dataset, constants, requests, responses, association: associationModule } = dcmjsDimse;
export type Scp = InstanceType<typeof dcmjsDimse.Scp>;
export type Dataset = InstanceType<typeof dcmjsDimse.Dataset>;
export type Association = InstanceType<typeof dcmjsDimse.association.Association>;
export type PresentationContext = InstanceType<typeof dcmjsDimse.association.PresentationContext>;
export type CStoreRequest = InstanceType<typeof dcmjsDimse.requests.CStoreRequest>;
export type CFindRequest = InstanceType<typeof dcmjsDimse.requests.CFindRequest>;
export type CMoveRequest = InstanceType<typeof dcmjsDimse.requests.CMoveRequest>;
export type CGetRequest = InstanceType<typeof dcmjsDimse.requests.CGetRequest>;
export type CEchoRequest = InstanceType<typeof dcmjsDimse.requests.CEchoRequest>;
export type Request = InstanceType<typeof dcmjsDimse.requests.Request>;
export type CFindResponse = InstanceType<typeof dcmjsDimse.responses.CFindResponse>;
export type CMoveResponse = InstanceType<typeof dcmjsDimse.responses.CMoveResponse>;
export type CGetResponse = InstanceType<typeof dcmjsDimse.responses.CGetResponse>;
export type NCreateRequest = InstanceType<typeof dcmjsDimse.requests.NCreateRequest>;
export type NSetRequest = InstanceType<typeof dcmjsDimse.requests.NSetRequest>;
export type NCreateResponse = InstanceType<typeof dcmjsDimse.responses.NCreateResponse>;
export type NSetResponse = InstanceType<typeof dcmjsDimse.responses.NSetResponse>;
export type CStoreResponse = InstanceType<typeof dcmjsDimse.responses.CStoreResponse>;

/** DIMSE status codes used here (PS3.7 Annex C, PS3.4 Annexes B and C). */
export const Status = {
  Success: 0x0000,
  Pending: 0xff00,
  /** C-FIND pending, one or more optional keys were not supported for matching (worklist, PS3.4 K.4.1.3). */
  PendingOptionalKeysNotSupported: 0xff01,
  Cancel: 0xfe00,
  /** Sub-operations complete, one or more failures or warnings (C-MOVE / C-GET). */
  SubOperationsWarning: 0xb000,
  ProcessingFailure: 0x0110,
  DuplicateSopInstance: 0x0111,
  OutOfResources: 0xa700,
  /** C-MOVE / C-GET: out of resources, unable to calculate number of matches. */
  OutOfResourcesMatches: 0xa701,
  /** C-MOVE / C-GET: out of resources, unable to perform sub-operations. */
  OutOfResourcesSubOperations: 0xa702,
  MoveDestinationUnknown: 0xa801,
  DataSetSopClassMismatch: 0xa900,
  IdentifierDoesNotMatchSopClass: 0xa900,
  CannotUnderstand: 0xc000,
  UnableToProcess: 0xc001,
  /** PS3.7 C.5.x general status "Refused: Not Authorized" (0124H). */
  NotAuthorized: 0x0124,
} as const;
