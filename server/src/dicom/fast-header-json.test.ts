import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { sharedDataDir, sharedFiles } from '../test-support/shared-data.js';
import { dcmjsHeaderToJson } from './header-json.js';
import { fastHeaderToJson } from './fast-header-json.js';
import { scanPart10 } from './part10-scanner.js';
import * as TS from './transfer-syntax.js';

// Every header the scanner hands to the direct reader is recorded (a copy of its bytes, and its answer),
// so the corpus test compares exactly what ingest would have stored with what dcmjs makes of the same bytes.
const seen = vi.hoisted(() => [] as Array<{ file: string; bytes: Buffer; syntax: string; result: unknown }>);
const current = vi.hoisted(() => ({ file: '' }));
vi.mock('./fast-header-json.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('./fast-header-json.js')>();
  return {
    ...real,
    fastHeaderToJson: (bytes: Buffer, syntax: string) => {
      const copy = Buffer.from(bytes);
      const result = real.fastHeaderToJson(bytes, syntax);
      seen.push({ file: current.file, bytes: copy, syntax, result });
      return result;
    },
  };
});

const CORPUS_DIRS = ['dicom-pydicom', 'dicom-orthanc-tests', 'dicom-dcmjs-tests', 'dicom-highdicom', 'wsi-cmu1-small-region', 'endoscopy-dicom-kvasir', 'wsi-openslide-python-fixtures'];

const same = (a: unknown, b: unknown) => expect(JSON.stringify(a)).toBe(JSON.stringify(b));

describe('the direct header reader gives what dcmjs gives', () => {
  it('on every header of the shared DICOM corpus it reads, and it reads most of them', async () => {
    const files = await sharedFiles(CORPUS_DIRS);
    expect(files.length).toBeGreaterThan(300);
    seen.length = 0;
    for (const file of files) {
      current.file = relative(sharedDataDir, file);
      const buf = readFileSync(file);
      try {
        await scanPart10((async function* () { yield buf; })(), () => {}, { maxHeaderBytes: 64 * 1024 * 1024 });
      } catch {
        // refused files (part10-scanner.test.ts checks why); whatever reached the reader is still compared
      }
    }
    let accepted = 0;
    for (const call of seen) {
      if (call.result === undefined) continue;
      accepted++;
      const reference = dcmjsHeaderToJson(Buffer.from(call.bytes), 0, [], call.syntax);
      expect(JSON.stringify(call.result), call.file).toBe(JSON.stringify(reference));
    }
    const declinedBySyntax = seen.filter((c) => c.result === undefined && c.syntax === TS.EXPLICIT_VR_BIG_ENDIAN).length;
    const declinedOther = seen.length - accepted - declinedBySyntax;
    const implicit = seen.filter((c) => c.result !== undefined && c.syntax === TS.IMPLICIT_VR_LITTLE_ENDIAN).length;
    console.log(`direct header reader: ${accepted} of ${seen.length} headers read (${implicit} of them implicit VR; ${declinedBySyntax} big endian and ${declinedOther} others left to dcmjs)`);
    expect(implicit).toBeGreaterThan(10);
    expect(accepted).toBeGreaterThan(150);
    expect(declinedOther).toBeLessThan(accepted / 4);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------------
// Hand-made headers for the rules the corpus may not reach.

function el(group: number, element: number, vr: string, value: Buffer | string, longLength?: boolean): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  const long = longLength ?? ['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT', 'UV', 'SV'].includes(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(v.length, 8);
  else h.writeUInt16LE(v.length, 6);
  return Buffer.concat([h, v]);
}
function item(content: Buffer, undefinedLength = false): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(0xfffe, 0);
  h.writeUInt16LE(0xe000, 2);
  h.writeUInt32LE(undefinedLength ? 0xffffffff : content.length, 4);
  const end = Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]);
  return Buffer.concat(undefinedLength ? [h, content, end] : [h, content]);
}
function sq(group: number, element: number, items: Buffer[], undefinedLength = false): Buffer {
  const body = Buffer.concat(items);
  const h = Buffer.alloc(12);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.write('SQ', 4, 'latin1');
  h.writeUInt32LE(undefinedLength ? 0xffffffff : body.length, 8);
  const end = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  return Buffer.concat(undefinedLength ? [h, body, end] : [h, body]);
}
const ELE = TS.EXPLICIT_VR_LITTLE_ENDIAN;
const viaDcmjs = (b: Buffer) => dcmjsHeaderToJson(Buffer.from(b), 0, [], ELE);

describe('the direct header reader on hand-made headers', () => {
  it('reads every value kind as dcmjs does: padding, trims, multiple values, numbers, names, binary', () => {
    const fl = Buffer.alloc(8);
    fl.writeFloatLE(0.3, 0);
    fl.writeFloatLE(-2.5, 4);
    const us = Buffer.from([1, 0, 0xff, 0xff]);
    const at = Buffer.from([0x28, 0x00, 0x09, 0x00]);
    const header = Buffer.concat([
      el(0x0002, 0x0010, 'UI', '1.2.840.10008.1.2.1\0'), // File Meta in the data set: left out of the JSON
      el(0x0008, 0x0016, 'UI', '1.2.840.10008.5.1.4.1.1.7\0'),
      el(0x0008, 0x0018, 'UI', '1.2.3\\4.5\0'),
      el(0x0008, 0x0020, 'DA', '20240102'),
      el(0x0008, 0x0030, 'TM', '101010.5\t'),
      el(0x0008, 0x0050, 'SH', ' ACC 1 '),
      el(0x0008, 0x0054, 'AE', '  STORE_SCP\\ B '),
      el(0x0008, 0x0060, 'CS', ' OT \\SM '),
      el(0x0008, 0x0090, 'PN', 'Doe^Jane=Ideo^X\\\\Roe^R '),
      el(0x0008, 0x1030, 'LO', '  a\\b  '),
      el(0x0008, 0x2111, 'ST', ' keep leading\\and split  '),
      el(0x0008, 0x4000, 'LT', 'ends in NUL \0'),
      el(0x0010, 0x0010, 'PN', ''),
      el(0x0010, 0x1010, 'AS', '045Y'),
      el(0x0018, 0x0050, 'DS', ' 1.5\\abc\\2e1 \\ '),
      el(0x0020, 0x0013, 'IS', '12 '),
      el(0x0020, 0x4000, 'LT', 'line one\\line two \r\n '),
      el(0x0028, 0x0009, 'AT', at),
      el(0x0028, 0x0010, 'US', us),
      el(0x0028, 0x1052, 'FL', fl),
      el(0x0040, 0xa120, 'DT', '20240102101010 '),
      el(0x0042, 0x0011, 'OB', Buffer.from([1, 2, 3, 4])),
      el(0x0009, 0x0010, 'LO', 'PRIVATE CREATOR '),
      el(0x0009, 0x1001, 'OB', Buffer.alloc(5000, 7)),
      el(0x0040, 0x0280, 'UT', 'unlimited text  '),
    ]);
    const fast = fastHeaderToJson(header, ELE);
    expect(fast).toBeDefined();
    same(fast, viaDcmjs(header));
    expect(fast!['00180050']!.Value).toEqual([1.5, null, 20, null]);
    expect(fast!['00080090']!.Value).toEqual([{ Alphabetic: 'Doe^Jane', Ideographic: 'Ideo^X' }, { Alphabetic: 'Roe^R' }]);
    expect(fast!['00280009']!.Value).toEqual(['00280009']);
    expect(fast!['00020010']).toBeUndefined();
    expect(fast!['00080054']!.Value).toEqual(['STORE_SCP', ' B']);
    expect(fast!['00084000']!.Value).toEqual(['ends in NUL ']); // rtrim leaves the NUL, which goes after
    expect(fast!['00080030']!.Value).toEqual(['101010.5']);
    expect(fast!['00080060']!.Value).toEqual(['OT', 'SM']);
    expect(fast!['00080018']!.Value).toEqual(['1.2.3', '4.5']);
    expect(fast!['00081030']!.Value).toEqual(['a', 'b']);
    expect(fast!['00082111']!.Value).toEqual([' keep leading', 'and split']);
    expect(fast!['00091001']).toEqual({ vr: 'OB' }); // over 4 KiB: left for bulk data
  });

  it('decodes text in the declared character set, in nested items too, and says ISO_IR 192 as dcmjs does', () => {
    for (const [term, text] of [['ISO_IR 100', 'Müller^Zoë'], ['ISO_IR 192', 'Nội soi^Đại tràng']] as const) {
      const encoded = term === 'ISO_IR 100' ? Buffer.from(text, 'latin1') : Buffer.from(text, 'utf8');
      const inner = Buffer.concat([el(0x0008, 0x0104, 'LO', encoded.length % 2 ? Buffer.concat([encoded, Buffer.from(' ')]) : encoded)]);
      const header = Buffer.concat([
        el(0x0008, 0x0005, 'CS', term.length % 2 ? `${term} ` : term),
        sq(0x0008, 0x1032, [item(inner), item(inner, true)], true),
        el(0x0010, 0x0010, 'PN', encoded.length % 2 ? Buffer.concat([encoded, Buffer.from(' ')]) : encoded),
      ]);
      const fast = fastHeaderToJson(header, ELE);
      expect(fast, term).toBeDefined();
      same(fast, viaDcmjs(header));
      expect(fast!['00080005']!.Value).toEqual(['ISO_IR 192']);
      expect((fast!['00100010']!.Value![0] as { Alphabetic: string }).Alphabetic).toBe(text);
      const items = fast!['00081032']!.Value as Array<Record<string, { Value: string[] }>>;
      expect(items.map((i) => i['00080104']!.Value[0])).toEqual([text, text]);
    }
    // Without (0008,0005), dcmjs decodes encoded VRs as windows-1252 (TextDecoder 'latin1'): 0x80 is '€'.
    const noCharset = el(0x0010, 0x0010, 'PN', Buffer.from([0x41, 0x80]));
    same(fastHeaderToJson(noCharset, ELE), viaDcmjs(noCharset));
  });

  it('reads defined- and undefined-length sequences and items, empty sequences, and sorts keys as dcmjs', () => {
    const inner = el(0x0008, 0x0100, 'SH', 'CODE');
    const header = Buffer.concat([
      sq(0x0008, 0x1110, [item(inner), item(Buffer.concat([inner, sq(0x0008, 0x1199, [item(inner, true)], true)]), true)]),
      sq(0x0008, 0x1115, []),
      sq(0x0008, 0x1120, [], true),
      el(0x0008, 0x0020, 'DA', '20240101'), // out of order: the JSON is sorted anyway
    ]);
    const fast = fastHeaderToJson(header, ELE);
    expect(fast).toBeDefined();
    same(fast, viaDcmjs(header));
    expect(Object.keys(fast!)).toEqual(['00080020', '00081110', '00081115', '00081120']);
    expect(fast!['00081115']).toEqual({ vr: 'SQ' });
  });

  it('reads implicit VR by the dcmjs dictionary: known tags, xs as US, private creators, unknown sequences', () => {
    const implicitEl = (group: number, element: number, value: Buffer | string, undefinedLength = false) => {
      const v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
      const h = Buffer.alloc(8);
      h.writeUInt16LE(group, 0);
      h.writeUInt16LE(element, 2);
      h.writeUInt32LE(undefinedLength ? 0xffffffff : v.length, 4);
      return Buffer.concat([h, v]);
    };
    const seqEnd = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
    const header = Buffer.concat([
      implicitEl(0x0008, 0x0020, '20240101'),
      implicitEl(0x0008, 0x1110, Buffer.concat([item(implicitEl(0x0008, 0x1150, '1.2.3\0')), seqEnd]), true),
      implicitEl(0x0009, 0x0010, 'ACME 1.0'),
      implicitEl(0x0009, 0x1010, Buffer.concat([item(implicitEl(0x0010, 0x0010, 'Doe^J ')), seqEnd]), true),
      implicitEl(0x0010, 0x0010, 'Roe^R '),
      implicitEl(0x0028, 0x0106, Buffer.from([5, 0])),
    ]);
    const fast = fastHeaderToJson(header, TS.IMPLICIT_VR_LITTLE_ENDIAN);
    expect(fast).toBeDefined();
    same(fast, dcmjsHeaderToJson(Buffer.from(header), 0, [], TS.IMPLICIT_VR_LITTLE_ENDIAN));
    expect(fast!['00090010']).toEqual({ vr: 'LO', Value: ['ACME 1.0'] });
    expect(fast!['00280106']).toEqual({ vr: 'US', Value: [5] });
    expect(fast!['00091010']!.vr).toBe('SQ');
    // an unknown private element of defined length is UN for dcmjs: left to it
    expect(fastHeaderToJson(implicitEl(0x0009, 0x1011, 'AB'), TS.IMPLICIT_VR_LITTLE_ENDIAN)).toBeUndefined();
  });

  it('leaves to dcmjs what it does not read the same way: big endian, UN, several character sets, empty items and ragged numbers', () => {
    const plain = el(0x0008, 0x0020, 'DA', '20240101');
    expect(fastHeaderToJson(plain, TS.EXPLICIT_VR_BIG_ENDIAN)).toBeUndefined();
    expect(fastHeaderToJson(plain, TS.JPEG_BASELINE_8BIT)).toBeDefined(); // read as explicit VR LE, as dcmjs does
    expect(fastHeaderToJson(Buffer.concat([plain, el(0x0009, 0x1001, 'UN', 'AB')]), ELE)).toBeUndefined();
    expect(fastHeaderToJson(el(0x0008, 0x0005, 'CS', 'ISO 2022 IR 6\\ISO 2022 IR 87'), ELE)).toBeUndefined();
    expect(fastHeaderToJson(el(0x0008, 0x0005, 'CS', 'ISO_IR 999'), ELE)).toBeUndefined();
    expect(fastHeaderToJson(sq(0x0008, 0x1110, [item(Buffer.alloc(0))]), ELE)).toBeUndefined();
    // an empty number is read (no Value, as dcmjs-empty-numbers.ts makes dcmjs read it); a ragged one is not
    expect(fastHeaderToJson(el(0x0028, 0x0010, 'US', Buffer.alloc(0)), ELE)).toEqual({ '00280010': { vr: 'US' } });
    expect(fastHeaderToJson(el(0x0028, 0x0010, 'US', Buffer.alloc(3)), ELE)).toBeUndefined();
    expect(fastHeaderToJson(plain.subarray(0, plain.length - 2), ELE)).toBeUndefined(); // truncated
  });
});
