/**
 * An empty binary number (value length 0, PS3.5 §7.1) shows as an element without a Value in the stored
 * metadata (PS3.18 §F.2.5), never as 0, on both header readers; and dcmjs writes it back empty
 * (dcmjs-empty-numbers.ts works around dcmjs 0.51 reading it as its default 0).
 */
import dcmjs from 'dcmjs';
import { describe, expect, it } from 'vitest';
import './dcmjs-fixes.js';
import { dcmjsHeaderToJson } from './header-json.js';
import { scanPart10 } from './part10-scanner.js';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';

/** One explicit VR little endian element with a 2-byte length (PS3.5 §7.1.2). */
function element(group: number, elementNo: number, vr: string, value: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(elementNo, 2);
  head.write(vr, 4, 'latin1');
  head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}
function text(s: string): Buffer {
  return Buffer.from(s.length % 2 === 0 ? s : `${s}\0`, 'latin1');
}
/** A sequence of defined length holding one item of defined length. */
function sequence(group: number, elementNo: number, item: Buffer): Buffer {
  const itemHead = Buffer.alloc(8);
  itemHead.writeUInt16LE(0xfffe, 0);
  itemHead.writeUInt16LE(0xe000, 2);
  itemHead.writeUInt32LE(item.length, 4);
  const head = Buffer.alloc(12);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(elementNo, 2);
  head.write('SQ', 4, 'latin1');
  head.writeUInt32LE(8 + item.length, 8);
  return Buffer.concat([head, itemHead, item]);
}

/** The data set: empty US, FD and SL at the top and an empty FL in an item, beside filled ones. */
function dataset(): Buffer {
  return Buffer.concat([
    element(0x0008, 0x0016, 'UI', text('1.2.840.10008.5.1.4.1.1.7')),
    element(0x0008, 0x0018, 'UI', text('1.2.826.0.1.3680043.10.1234.90.1')),
    element(0x0018, 0x0050, 'DS', text('1.5')),
    element(0x0018, 0x1310, 'US', Buffer.alloc(0)), // Acquisition Matrix, empty
    element(0x0018, 0x9219, 'SS', Buffer.alloc(0)), // Tag Angle Second Axis, empty
    element(0x0020, 0x000d, 'UI', text('1.2.826.0.1.3680043.10.1234.90.2')),
    element(0x0020, 0x000e, 'UI', text('1.2.826.0.1.3680043.10.1234.90.3')),
    element(0x0028, 0x0010, 'US', Buffer.from([2, 0])),
    element(0x0028, 0x0106, 'US', Buffer.alloc(0)), // Smallest Image Pixel Value, empty
    element(0x0028, 0x0107, 'US', Buffer.from([7, 0])), // Largest Image Pixel Value 7
    element(0x0028, 0x1052, 'DS', text('0')),
    sequence(0x0040, 0x9096, Buffer.concat([
      element(0x0040, 0x9224, 'FD', Buffer.alloc(0)), // Real World Value Intercept, empty
      element(0x0040, 0x9225, 'FD', Buffer.from(new Float64Array([2.5]).buffer)), // Slope 2.5
    ])),
  ]);
}

function part10(body: Buffer): Buffer {
  const meta = Buffer.concat([
    element(0x0002, 0x0002, 'UI', text('1.2.840.10008.5.1.4.1.1.7')),
    element(0x0002, 0x0003, 'UI', text('1.2.826.0.1.3680043.10.1234.90.1')),
    element(0x0002, 0x0010, 'UI', text(EXPLICIT_LE)),
  ]);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(meta.length);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), element(0x0002, 0x0000, 'UL', length), meta, body]);
}

async function* once(buffer: Buffer) {
  yield buffer;
}

type Json = Record<string, { vr: string; Value?: unknown[] }>;

function expectEmptyNumbersWithoutValue(json: Json): void {
  for (const tag of ['00181310', '00189219', '00280106']) {
    expect(json[tag], tag).toEqual({ vr: tag === '00189219' ? 'SS' : 'US' });
  }
  expect(json['00280107']).toEqual({ vr: 'US', Value: [7] });
  expect(json['00280010']).toEqual({ vr: 'US', Value: [2] });
  const item = (json['00409096']!.Value![0] as Json);
  expect(item['00409224']).toEqual({ vr: 'FD' });
  expect(item['00409225']).toEqual({ vr: 'FD', Value: [2.5] });
}

describe('an empty binary number in a stored header', () => {
  it('has no Value in the metadata ingest keeps (direct reader), not 0', async () => {
    const header = await scanPart10(once(part10(dataset())), () => {}, { maxHeaderBytes: 1 << 20 });
    expectEmptyNumbersWithoutValue(header.dataset as Json);
  });

  it('has no Value through dcmjs either (the reference the direct reader is compared with)', () => {
    expectEmptyNumbersWithoutValue(dcmjsHeaderToJson(dataset(), 0, [], EXPLICIT_LE) as Json);
  });

  it('is written back empty by dcmjs (a corrected or de-identified copy keeps it as it was)', () => {
    const file = part10(dataset());
    const bytes = new ArrayBuffer(file.length);
    new Uint8Array(bytes).set(file);
    // dcmjs's DicomDict (readFile's result) writes itself back; vendor.d.ts types only what the server uses
    const read = dcmjs.data.DicomMessage.readFile(bytes, { ignoreErrors: true }) as unknown as { write(): ArrayBuffer };
    const written = Buffer.from(read.write());
    // (0028,0106) US, length 0, followed directly by (0028,0107)
    const at = written.indexOf(Buffer.from([0x28, 0x00, 0x06, 0x01]));
    expect(at).toBeGreaterThan(0);
    expect(written.subarray(at, at + 12).toString('hex')).toBe('28000601555300002800' + '0701');
    const fd = written.indexOf(Buffer.from([0x40, 0x00, 0x24, 0x92]));
    expect(written.subarray(fd + 4, fd + 8).toString('hex')).toBe('46440000');
  });
});
