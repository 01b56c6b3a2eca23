/**
 * The command-set fast path (command-set-codec.ts) writes exactly the bytes dcmjs-dimse's own encoder
 * writes and reads back exactly what its decoder reads, for every command the server sends or receives;
 * what it does not know goes to the library unchanged. The library's methods are taken before the fast
 * path is installed, so both sides of each comparison really run.
 */
import dcmjs from 'dcmjs';
import dcmjsDimse from 'dcmjs-dimse';
import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, installCommandSetCodec } from './command-set-codec.js';

const { Dataset, requests, responses } = dcmjsDimse;
type Proto = {
  getDenaturalizedCommandDataset(this: unknown): Buffer;
  _fromElementsBuffer(this: unknown, buffer: Buffer, syntax: string, options?: unknown): Record<string, unknown>;
};
const proto = Dataset.prototype as unknown as Proto;
const libraryEncode = proto.getDenaturalizedCommandDataset;
const libraryDecode = proto._fromElementsBuffer;
const nameMap = dcmjs.data.DicomMetaDictionary.nameMap as Record<string, { tag: string; vr: string }>;

const byName = new Map<string, { tag: number; vr: 'US' | 'UL' | 'UI' | 'AE' | 'LO' | 'SH' | 'CS' }>();
const byTag = new Map<number, { name: string; vr: 'US' | 'UL' | 'UI' | 'AE' | 'LO' | 'SH' | 'CS' }>();
for (const [name, e] of Object.entries(nameMap)) {
  const m = /^\(0000,([0-9A-F]{4})\)$/i.exec(e.tag);
  if (!m || !['US', 'UL', 'UI', 'AE', 'LO', 'SH', 'CS'].includes(e.vr) || m[1] === '0000') continue;
  byName.set(name, { tag: Number.parseInt(m[1]!, 16), vr: e.vr as 'US' });
  byTag.set(Number.parseInt(m[1]!, 16), { name, vr: e.vr as 'US' });
}

const CT = '1.2.840.10008.5.1.4.1.1.2';
const IMPLICIT = '1.2.840.10008.1.2';
const instance = (): InstanceType<typeof Dataset> => new Dataset({ SOPClassUID: CT, SOPInstanceUID: '1.2.826.0.1.3680043.8.498.12345', PatientName: 'A' });

function commands(): Array<[string, { getCommandDataset(): InstanceType<typeof Dataset> }]> {
  const store = new requests.CStoreRequest(instance());
  store.setMessageId(7);
  const moved = new requests.CStoreRequest(instance());
  moved.setMessageId(8);
  const movedElements = moved.getCommandDataset().getElements() as Record<string, unknown>;
  movedElements['MoveOriginatorApplicationEntityTitle'] = 'MOVESCU';
  movedElements['MoveOriginatorMessageID'] = 3;
  const ok = responses.CStoreResponse.fromRequest(store);
  ok.setStatus(0x0000);
  const failed = responses.CStoreResponse.fromRequest(store);
  failed.setStatus(0x0110);
  failed.setErrorComment('The index could not be written; nothing was stored');
  const tooLong = responses.CStoreResponse.fromRequest(store);
  tooLong.setStatus(0xa900);
  tooLong.setErrorComment('x'.repeat(80)); // longer than LO: the library's way
  const echo = new requests.CEchoRequest();
  echo.setMessageId(1);
  const echoRsp = responses.CEchoResponse.fromRequest(echo);
  echoRsp.setStatus(0);
  const find = requests.CFindRequest.createStudyFindRequest({ PatientID: 'X' });
  find.setMessageId(2);
  const pending = responses.CFindResponse.fromRequest(find);
  pending.setStatus(0xff00);
  const move = requests.CMoveRequest.createStudyMoveRequest('STORESCP', '1.2.3');
  move.setMessageId(4);
  const moveRsp = responses.CMoveResponse.fromRequest(move);
  moveRsp.setStatus(0xff00);
  moveRsp.setRemaining(12);
  moveRsp.setCompleted(3);
  moveRsp.setFailures(0);
  moveRsp.setWarnings(1);
  const get = requests.CGetRequest.createStudyGetRequest('1.2.3');
  get.setMessageId(5);
  const nCreate = new requests.NCreateRequest('1.2.840.10008.3.1.2.3.3', '1.2.3.4');
  nCreate.setMessageId(6);
  const nCreateRsp = responses.NCreateResponse.fromRequest(nCreate);
  nCreateRsp.setStatus(0);
  return [
    ['C-STORE-RQ', store],
    ['C-STORE-RQ of a C-MOVE', moved],
    ['C-STORE-RSP success', ok],
    ['C-STORE-RSP failure with a comment', failed],
    ['C-STORE-RSP with a comment longer than LO', tooLong],
    ['C-ECHO-RQ', echo],
    ['C-ECHO-RSP', echoRsp],
    ['C-FIND-RQ', find],
    ['C-FIND-RSP pending', pending],
    ['C-MOVE-RQ', move],
    ['C-MOVE-RSP with counts', moveRsp],
    ['C-GET-RQ', get],
    ['N-CREATE-RQ', nCreate],
    ['N-CREATE-RSP', nCreateRsp],
  ];
}

describe('DIMSE command sets on the fast path', () => {
  it.each(commands())('%s is written byte for byte as dcmjs-dimse writes it, and read back as it reads it', (label, command) => {
    const dataset = command.getCommandDataset();
    const library = libraryEncode.call(dataset);
    const fast = encodeCommand(dataset.getElements() as Record<string, unknown>, byName);
    if (label.includes('longer than LO')) expect(fast).toBeUndefined();
    else expect(fast?.equals(library), label).toBe(true);
    expect(decodeCommand(library, byTag)).toEqual(libraryDecode.call(dataset, library, IMPLICIT, { ignoreErrors: true }));
  });

  it('leaves to the library what it does not know: another group, an odd length, an unknown element, a padded value', () => {
    const good = encodeCommand({ CommandField: 0x8001, Status: 0 }, byName)!;
    const otherGroup = Buffer.from(good);
    otherGroup.writeUInt16LE(8, 12);
    expect(decodeCommand(otherGroup, byTag)).toBeUndefined();
    const odd = Buffer.concat([good, Buffer.from([0, 0, 0x02, 0x09, 3, 0, 0, 0, 0x41, 0x42, 0x43])]);
    expect(decodeCommand(odd, byTag)).toBeUndefined();
    const unknown = Buffer.concat([good, Buffer.from([0, 0, 0xfe, 0x0f, 2, 0, 0, 0, 1, 0])]);
    expect(decodeCommand(unknown, byTag)).toBeUndefined();
    // An AE title with leading spaces: the library decides how it is trimmed.
    const ae = Buffer.concat([good, Buffer.from([0, 0, 0x30, 0x10, 4, 0, 0, 0]), Buffer.from(' AE ', 'latin1')]);
    expect(decodeCommand(ae, byTag)).toBeUndefined();
    expect(encodeCommand({ CommandField: 0x8001, PatientName: 'A' }, byName)).toBeUndefined();
    expect(encodeCommand({ CommandField: 0x8001, ErrorComment: '' }, byName)).toBeUndefined();
    expect(encodeCommand({ CommandField: -1 }, byName)).toBeUndefined();
  });

  it('once installed, the library itself answers through the fast path with the same bytes', () => {
    const expected = commands().map(([, c]) => libraryEncode.call(c.getCommandDataset()));
    installCommandSetCodec(Dataset, nameMap);
    const actual = commands().map(([, c]) => c.getCommandDataset().getDenaturalizedCommandDataset());
    expect(actual.map((b) => b.toString('hex'))).toEqual(expected.map((b) => b.toString('hex')));
    const parsed = new Dataset(expected[2]!, IMPLICIT).getElements();
    expect(parsed).toMatchObject({ CommandField: 0x8001, MessageIDBeingRespondedTo: 7, Status: 0, AffectedSOPClassUID: CT });
  });
});
