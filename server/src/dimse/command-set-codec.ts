/**
 * A fast path for dcmjs-dimse's command sets (PS3.7 §9.3, §E.1: group 0000, always Implicit VR Little
 * Endian). dcmjs-dimse encodes and decodes every command through dcmjs's generic writer and reader
 * (denaturalize → DicomMessage.write into growing buffers, and back), which cost about 0.5 ms per
 * C-STORE-RSP and 0.2 ms per C-STORE-RQ on this machine: a fifth of the CPU of storing a small instance
 * over DIMSE. The command group is a dozen fixed-length or short-string elements, so this module encodes
 * and decodes the common cases directly and hands everything else (a VR or value shape it does not know,
 * an element outside group 0000, odd lengths) to the library's own methods, unchanged. Its output is
 * byte-for-byte (encode) and value-for-value (decode) the library's, which `command-set-codec.test.ts`
 * checks against the original methods for every command the server sends or receives.
 *
 * Installed once by `dimse-lib.ts` (the one place dcmjs-dimse is imported), on `Dataset.prototype`.
 */

/** What the fast path knows of a command element (from the library's own dictionary). */
interface CommandElement {
  tag: number; // element number within group 0000
  vr: 'US' | 'UL' | 'UI' | 'AE' | 'LO' | 'SH' | 'CS';
}

type Naturalized = Record<string, unknown>;

interface DatasetPrototype {
  getElements(): Naturalized;
  getDenaturalizedCommandDataset(options?: unknown): Buffer;
  _fromElementsBuffer(buffer: Buffer, transferSyntaxUid: string, options?: unknown): Naturalized;
}

const IMPLICIT_VR_LE = '1.2.840.10008.1.2';
const FAST_VRS = new Set(['US', 'UL', 'UI', 'AE', 'LO', 'SH', 'CS']);
/** Longest string a fast value may have (LO's 64; dcmjs checks lengths, so longer ones go its way). */
const MAX_STRING = 64;

const INSTALLED = Symbol.for('filmless-pacs.dimse-command-codec');

/**
 * Installs the fast paths on dcmjs-dimse's Dataset. `nameMap` is dcmjs's keyword dictionary (the copy
 * dcmjs-dimse uses), from which the command group's keywords, tags and VRs are taken.
 */
export function installCommandSetCodec(datasetClass: { prototype: unknown }, nameMap: Record<string, { tag: string; vr: string }>): void {
  const proto = datasetClass.prototype as DatasetPrototype & { [INSTALLED]?: true };
  if (proto[INSTALLED]) return;
  const byName = new Map<string, CommandElement>();
  const byTag = new Map<number, { name: string; vr: CommandElement['vr'] }>();
  for (const [name, entry] of Object.entries(nameMap)) {
    const match = /^\(0000,([0-9A-F]{4})\)$/i.exec(entry.tag);
    if (match === null || !FAST_VRS.has(entry.vr)) continue;
    const tag = Number.parseInt(match[1]!, 16);
    if (tag === 0) continue; // CommandGroupLength is computed, never taken from the elements
    byName.set(name, { tag, vr: entry.vr as CommandElement['vr'] });
    byTag.set(tag, { name, vr: entry.vr as CommandElement['vr'] });
  }
  const originalEncode = proto.getDenaturalizedCommandDataset;
  const originalDecode = proto._fromElementsBuffer;
  proto.getDenaturalizedCommandDataset = function (this: DatasetPrototype, options?: unknown): Buffer {
    return encodeCommand(this.getElements(), byName) ?? originalEncode.call(this, options);
  };
  proto._fromElementsBuffer = function (this: DatasetPrototype, buffer: Buffer, transferSyntaxUid: string, options?: unknown): Naturalized {
    return (transferSyntaxUid === IMPLICIT_VR_LE ? decodeCommand(buffer, byTag) : undefined) ?? originalDecode.call(this, buffer, transferSyntaxUid, options);
  };
  proto[INSTALLED] = true;
}

// ---------------------------------------------------------------------------------------------------
// encode

function stringBytes(value: unknown, vr: CommandElement['vr']): Buffer | undefined {
  if (typeof value !== 'string' || value === '' || value.length > MAX_STRING || !/^[\x20-\x7e]*$/.test(value) || value.includes('\\')) return undefined;
  // PS3.5 §6.2: UI is padded with NUL, the other string VRs with a space; dcmjs pads the same way.
  const padded = value.length % 2 === 0 ? value : value + (vr === 'UI' ? '\0' : ' ');
  return Buffer.from(padded, 'latin1');
}

function valueBytes(value: unknown, vr: CommandElement['vr']): Buffer | undefined {
  if (vr === 'US' || vr === 'UL') {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > (vr === 'US' ? 0xffff : 0xffffffff)) return undefined;
    const b = Buffer.alloc(vr === 'US' ? 2 : 4);
    if (vr === 'US') b.writeUInt16LE(value, 0);
    else b.writeUInt32LE(value, 0);
    return b;
  }
  return stringBytes(value, vr);
}

/** The command set as the library would write it, or undefined to let the library write it. */
export function encodeCommand(elements: Naturalized, byName: ReadonlyMap<string, CommandElement>): Buffer | undefined {
  const parts: Array<{ tag: number; bytes: Buffer }> = [];
  for (const [name, value] of Object.entries(elements)) {
    if (value === undefined) continue; // not written at all, as dcmjs's denaturalizer leaves it out
    const element = byName.get(name);
    if (element === undefined) return undefined;
    const bytes = valueBytes(value, element.vr);
    if (bytes === undefined) return undefined;
    parts.push({ tag: element.tag, bytes });
  }
  parts.sort((a, b) => a.tag - b.tag);
  const bodyLength = parts.reduce((n, p) => n + 8 + p.bytes.length, 0);
  const out = Buffer.alloc(12 + bodyLength);
  // (0000,0000) CommandGroupLength UL: the bytes that follow it (PS3.7 §E.1).
  out.writeUInt16LE(0, 0);
  out.writeUInt16LE(0, 2);
  out.writeUInt32LE(4, 4);
  out.writeUInt32LE(bodyLength, 8);
  let at = 12;
  for (const p of parts) {
    out.writeUInt16LE(0, at);
    out.writeUInt16LE(p.tag, at + 2);
    out.writeUInt32LE(p.bytes.length, at + 4);
    p.bytes.copy(out, at + 8);
    at += 8 + p.bytes.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// decode

/** The naturalized command the library would read, or undefined to let the library read it. */
export function decodeCommand(buffer: Buffer, byTag: ReadonlyMap<number, { name: string; vr: CommandElement['vr'] }>): Naturalized | undefined {
  // dcmjs's naturalized data sets carry an (here empty) map of VRs it could not infer.
  const out: Naturalized = { _vrMap: {} };
  let at = 0;
  while (at < buffer.length) {
    if (at + 8 > buffer.length) return undefined;
    const group = buffer.readUInt16LE(at);
    const tag = buffer.readUInt16LE(at + 2);
    const length = buffer.readUInt32LE(at + 4);
    at += 8;
    if (group !== 0 || length % 2 !== 0 || at + length > buffer.length) return undefined;
    const value = buffer.subarray(at, at + length);
    at += length;
    if (tag === 0) {
      if (length !== 4) return undefined;
      out['CommandGroupLength'] = value.readUInt32LE(0);
      continue;
    }
    const element = byTag.get(tag);
    if (element === undefined) return undefined;
    if (element.vr === 'US' || element.vr === 'UL') {
      if (length !== (element.vr === 'US' ? 2 : 4)) return undefined;
      out[element.name] = element.vr === 'US' ? value.readUInt16LE(0) : value.readUInt32LE(0);
      continue;
    }
    const text = value.toString('latin1');
    // Only plain, single, already-trimmed values with the usual padding: anything else is the library's.
    if (!/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?[\0 ]?$/.test(text) || text.includes('\\')) return undefined;
    const pad = text.endsWith('\0') || text.endsWith(' ') ? text.at(-1) : undefined;
    if (pad !== undefined && pad !== (element.vr === 'UI' ? '\0' : ' ')) return undefined;
    out[element.name] = pad === undefined ? text : text.slice(0, -1);
  }
  return out;
}
