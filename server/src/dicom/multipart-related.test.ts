import { describe, expect, it } from 'vitest';
import { MalformedMultipartError } from '../errors.js';
import { parseContentType, readMultipart, type MultipartPart } from './multipart-related.js';
import { chunked, fixed, rng } from '../test-support/chunking.js';


interface Collected {
  index: number;
  headers: Record<string, string>;
  body: Buffer;
  chunks: number;
}

async function collect(source: AsyncIterable<Buffer>, boundary: string, maxPartHeaderBytes?: number): Promise<Collected[]> {
  const out: Collected[] = [];
  for await (const part of readMultipart(source, boundary, { maxPartHeaderBytes })) {
    const chunks: Buffer[] = [];
    for await (const c of part.body) chunks.push(Buffer.from(c));
    out.push({ index: part.index, headers: part.headers, body: Buffer.concat(chunks), chunks: chunks.length });
  }
  return out;
}

function build(boundary: string, parts: Array<{ headers: string[]; body: Buffer }>, preamble = '', epilogue = ''): Buffer {
  const pieces: Buffer[] = [Buffer.from(preamble)];
  parts.forEach((p, i) => {
    // The CRLF before a delimiter belongs to it; only a delimiter at offset 0 has none.
    const crlf = i === 0 && preamble === '' ? '' : '\r\n';
    pieces.push(Buffer.from(`${crlf}--${boundary}\r\n${p.headers.map((h) => `${h}\r\n`).join('')}\r\n`));
    pieces.push(p.body);
  });
  pieces.push(Buffer.from(`\r\n--${boundary}--${epilogue}`));
  return Buffer.concat(pieces);
}

const random = (seed: number, max: number) => {
  const r = rng(seed);
  return () => 1 + r() * max;
};

describe('parseContentType', () => {
  it('reads media type and parameters, quoted or not, names case-insensitive', () => {
    const ct = parseContentType('Multipart/Related; type="application/dicom"; BOUNDARY=abc123 ; start="<root@x>"');
    expect(ct.mediaType).toBe('multipart/related');
    expect(ct.type).toBe('application/dicom');
    expect(ct.boundary).toBe('abc123');
    expect(ct.start).toBe('<root@x>');
    expect(ct.params).toEqual({ type: 'application/dicom', boundary: 'abc123', start: '<root@x>' });
  });

  it('handles quoted values with ";", escapes and spaces, and unquoted type with "/"', () => {
    const ct = parseContentType('multipart/related;boundary="a;b \\"c\\" d";type=application/dicom+xml');
    expect(ct.boundary).toBe('a;b "c" d');
    expect(ct.type).toBe('application/dicom+xml');
    expect(parseContentType('application/dicom').params).toEqual({});
  });

  it('refuses what is not a media type or has broken parameters', () => {
    for (const bad of ['', 'multipart', '/related', 'multipart/', 'multipart/related; boundary', 'multipart/related; boundary="abc', 'a b/c']) {
      expect(() => parseContentType(bad), bad).toThrow(MalformedMultipartError);
    }
  });
});

describe('readMultipart', () => {
  const boundary = 'DICOMwebBoundary-7d1f';
  // Binary bodies containing CRLF, "--", a near-miss of the delimiter, and the boundary without "--".
  const tricky = Buffer.concat([
    Buffer.from('\r\n--DICOMwebBoundary-7d1\r\n'),
    Buffer.from([0, 255, 13, 10, 45, 45, 13, 10, 13]),
    Buffer.from(`${boundary}\r\n--\r\n\r\n`),
    Buffer.from('\r\n-'),
  ]);
  const r = rng(42);
  const big = Buffer.alloc(300_000);
  for (let i = 0; i < big.length; i++) big[i] = Math.floor(r() * 256);
  const parts = [
    { headers: ['Content-Type: application/dicom', 'Content-Location: a'], body: tricky },
    { headers: ['content-type: application/dicom'], body: Buffer.alloc(0) },
    { headers: ['Content-Type: application/dicom'], body: big },
    { headers: [], body: Buffer.from('no headers at all') },
  ];
  const body = build(boundary, parts, 'This is the preamble.\r\n--not-it\r\n', '\r\nepilogue -- ignored');

  for (const [name, size] of [
    ['one chunk', fixed(body.length)],
    ['1-byte chunks', fixed(1)],
    ['7-byte chunks', fixed(7)],
    ['random chunks ≤ 64', random(1, 64)],
    ['random chunks ≤ 70 000', random(2, 70_000)],
  ] as const) {
    it(`splits parts exactly (${name})`, async () => {
      const got = await collect(chunked(body, size), boundary);
      expect(got.map((p) => p.index)).toEqual([0, 1, 2, 3]);
      expect(got[0]!.headers).toEqual({ 'content-type': 'application/dicom', 'content-location': 'a' });
      expect(got[3]!.headers).toEqual({});
      got.forEach((p, i) => expect(p.body.equals(parts[i]!.body), `part ${i}`).toBe(true));
    }, 30_000);
  }

  it('streams bodies in chunks as they arrive (never whole)', async () => {
    const got = await collect(chunked(body, fixed(4096)), boundary);
    expect(got[2]!.chunks).toBeGreaterThan(50);
  });

  it('works without a preamble and with Uint8Array chunks', async () => {
    const plain = build('b', [{ headers: ['A: 1'], body: Buffer.from('x') }]);
    expect(plain.subarray(0, 3).toString()).toBe('--b');
    async function* u8(): AsyncGenerator<Buffer> {
      yield new Uint8Array(plain) as Buffer;
    }
    const got = await collect(u8(), 'b');
    expect(got).toHaveLength(1);
    expect(got[0]!.body.toString()).toBe('x');
  });

  it('a body with no parts (only the close delimiter) yields nothing', async () => {
    expect(await collect(chunked(Buffer.from('--b--\r\n'), fixed(1)), 'b')).toEqual([]);
    expect(await collect(chunked(Buffer.from('preamble\r\n--b--'), fixed(3)), 'b')).toEqual([]);
  });

  it('drains a part the consumer skipped or abandoned', async () => {
    const seen: string[] = [];
    for await (const part of readMultipart(chunked(body, fixed(1000)), boundary)) {
      if (part.index === 0) continue; // not consumed at all
      if (part.index === 1) {
        await part.skip();
        continue;
      }
      if (part.index === 2) {
        for await (const c of part.body) {
          seen.push(`2:${c.length > 0}`);
          break; // abandoned mid-body
        }
        continue;
      }
      const chunks: Buffer[] = [];
      for await (const c of part.body) chunks.push(c);
      seen.push(Buffer.concat(chunks).toString());
    }
    expect(seen).toEqual(['2:true', 'no headers at all']);
  });

  const malformed = async (input: string | Buffer, message: RegExp, opts?: number) => {
    const err = await collect(chunked(Buffer.from(input), fixed(3)), 'b', opts).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MalformedMultipartError);
    expect((err as Error).message).toMatch(message);
  };

  it('errors: no opening boundary, empty body', async () => {
    await malformed('just some text', /no opening/);
    await malformed('', /no opening/);
  });

  it('errors: truncated body (no close delimiter)', async () => {
    await malformed('--b\r\nA: 1\r\n\r\npartial body', /ended inside part 0/);
    await malformed('--b\r\nA: 1\r\n\r\nbody\r\n--b', /ended right after a boundary/);
    await malformed('--b\r\nA: 1\r\n', /ended inside the headers/);
  });

  it('errors: oversized part header, bad header line, garbage after delimiter', async () => {
    await malformed(`--b\r\nX: ${'y'.repeat(200)}\r\n\r\nbody\r\n--b--`, /header is larger than 100/, 100);
    await malformed(`--b\r\nX: ${'y'.repeat(200)}`, /header is larger than 100/, 100);
    await malformed('--b\r\nno colon here\r\n\r\nbody\r\n--b--', /malformed header line/);
    await malformed('--b\r\nA: 1\r\n\r\nbody\r\n--bXYZ\r\n', /unexpected bytes/);
  });

  it('accepts transport padding after a delimiter and folded headers', async () => {
    const got = await collect(chunked(Buffer.from('--b  \t\r\nA: 1\r\n  more\r\n\r\nbody\r\n--b--'), fixed(2)), 'b');
    expect(got[0]!.headers).toEqual({ a: '1 more' });
    expect(got[0]!.body.toString()).toBe('body');
  });

  it('the body can be read only once, and after the generator moved on it is finished', async () => {
    const gen = readMultipart(chunked(body, fixed(512)), boundary);
    const first = (await gen.next()).value as MultipartPart;
    first.body[Symbol.asyncIterator]();
    expect(() => first.body[Symbol.asyncIterator]()).toThrow(/only once/);
    const second = (await gen.next()).value as MultipartPart;
    expect(second.index).toBe(1);
    await gen.return(undefined);
  });
});
