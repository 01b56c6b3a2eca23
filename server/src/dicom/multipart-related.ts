/**
 * Streaming multipart/related (RFC 2387 over the RFC 2046 §5.1 multipart syntax), as STOW-RS bodies use
 * (PS3.18 §10.5). Written by hand because part bodies can be gigabytes: every part body is handed on in
 * the chunks it arrives in and never held whole. Only a boundary-length tail is kept between chunks, so
 * memory is bounded by the source's chunk size plus the part-header limit.
 *
 * Grammar (RFC 2046 §5.1.1), with the CRLF before each delimiter belonging to the delimiter:
 *   preamble  CRLF "--" boundary *LWSP CRLF  headers CRLF  body
 *             CRLF "--" boundary *LWSP CRLF  headers CRLF  body …
 *             CRLF "--" boundary "--"  epilogue
 * A virtual CRLF is put before the first byte so an opening delimiter at offset 0 (no preamble) matches.
 */
import { MalformedMultipartError } from '../errors.js';

export interface ContentType {
  /** `type/subtype`, lower-cased, e.g. `multipart/related`. */
  mediaType: string;
  /** The `type` parameter (RFC 2387 root type), e.g. `application/dicom`, as sent (case kept). */
  type: string | undefined;
  boundary: string | undefined;
  /** The `start` parameter (Content-ID of the root part), if any. */
  start: string | undefined;
  /** Every parameter, names lower-cased, values unquoted. */
  params: Record<string, string>;
}

/** RFC 2045 §5.1 token characters: any CHAR except SPACE, CTLs and tspecials. */
const TSPECIALS = new Set('()<>@,;:\\"/[]?='.split(''));

function isTokenChar(ch: string): boolean {
  const c = ch.charCodeAt(0);
  return c > 0x20 && c < 0x7f && !TSPECIALS.has(ch);
}

/**
 * Parses a Content-Type header value (RFC 2045 §5.1, RFC 9110 §8.3): `type/subtype *(";" name=value)`,
 * values a token or a quoted-string with backslash escapes; parameter names are case-insensitive. Lenient
 * where real clients are sloppy: unquoted values may contain '/' (e.g. `type=application/dicom`) and
 * empty `;;` segments are skipped. Throws MalformedMultipartError for a header that cannot be read.
 */
export function parseContentType(header: string): ContentType {
  const text = header.trim();
  let i = 0;
  const n = text.length;
  const semicolon = text.indexOf(';');
  const mediaEnd = semicolon === -1 ? n : semicolon;
  const mediaType = text.slice(0, mediaEnd).trim().toLowerCase();
  const slash = mediaType.indexOf('/');
  if (
    slash <= 0 ||
    slash === mediaType.length - 1 ||
    ![...mediaType].every((ch) => ch === '/' || isTokenChar(ch)) ||
    mediaType.indexOf('/', slash + 1) !== -1
  ) {
    throw new MalformedMultipartError(`Content-Type "${truncate(text)}" is not a type/subtype media type`);
  }
  i = mediaEnd;
  const params: Record<string, string> = {};
  while (i < n) {
    // At a ';' (or past the media type): skip it and whitespace.
    if (text[i] === ';') i++;
    while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
    if (i >= n) break;
    if (text[i] === ';') continue;
    const nameStart = i;
    while (i < n && isTokenChar(text[i]!)) i++;
    const name = text.slice(nameStart, i).toLowerCase();
    while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
    if (name === '' || text[i] !== '=') {
      throw new MalformedMultipartError(`Content-Type parameter near "${truncate(text.slice(nameStart))}" has no name=value form`);
    }
    i++; // '='
    while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
    let value = '';
    if (text[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const ch = text[i]!;
        if (ch === '\\' && i + 1 < n) {
          value += text[i + 1];
          i += 2;
        } else if (ch === '"') {
          i++;
          closed = true;
          break;
        } else {
          value += ch;
          i++;
        }
      }
      if (!closed) throw new MalformedMultipartError(`Content-Type parameter "${name}" has an unterminated quoted value`);
      while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
      if (i < n && text[i] !== ';') {
        throw new MalformedMultipartError(`Content-Type parameter "${name}" has text after its quoted value`);
      }
    } else {
      const valueStart = i;
      while (i < n && text[i] !== ';') i++;
      value = text.slice(valueStart, i).trim();
    }
    // First occurrence wins (a repeated parameter is an error in RFC 9110; be lenient).
    if (!(name in params)) params[name] = value;
  }
  return {
    mediaType,
    type: params['type'],
    boundary: params['boundary'],
    start: params['start'],
    params,
  };
}

function truncate(s: string, max = 60): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

export interface MultipartPart {
  /** 0-based position of the part in the body. */
  index: number;
  /** Part headers, names lower-cased; a repeated header's values are joined with ", ". */
  headers: Record<string, string>;
  /**
   * The part's body, in the chunks it arrives in. Consume it fully (or call `skip()`) before asking the
   * generator for the next part; if you don't, the generator drains what is left. Iterable once.
   */
  body: AsyncIterable<Buffer>;
  /** Discards the rest of this part's body. */
  skip(): Promise<void>;
}

export interface MultipartLimits {
  /** Largest header block of one part, in bytes (default 16 KiB). */
  maxPartHeaderBytes?: number;
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');
const DEFAULT_MAX_PART_HEADER_BYTES = 16 * 1024;

/**
 * Reads a multipart body part by part. `boundary` is the Content-Type `boundary` parameter (without the
 * leading "--"). The preamble and the epilogue are ignored; the epilogue is not read at all (the source is
 * left where the close delimiter ended). Errors (MalformedMultipartError): no opening delimiter, a body
 * that ends before the close delimiter, a part header block over `maxPartHeaderBytes`, a header line
 * without "name:", garbage after a delimiter.
 */
export async function* readMultipart(
  source: AsyncIterable<Buffer | Uint8Array>,
  boundary: string,
  limits: MultipartLimits = {},
): AsyncGenerator<MultipartPart, void, undefined> {
  // RFC 2046 §5.1.1: 1–70 characters; accept longer ones but refuse empty and CR/LF.
  if (boundary.length === 0 || /[\r\n]/.test(boundary)) {
    throw new MalformedMultipartError('multipart boundary is empty or contains a line break');
  }
  const maxHeader = limits.maxPartHeaderBytes ?? DEFAULT_MAX_PART_HEADER_BYTES;
  const delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
  const dlen = delimiter.length;
  const iterator = source[Symbol.asyncIterator]();

  // Unconsumed bytes. Starts with the virtual CRLF so that an opening delimiter at offset 0 matches.
  let buf: Buffer = CRLF;
  let eof = false;
  let failure: Error | undefined;
  /** True while the current part's body has not reached its closing delimiter. */
  let inBody = false;
  let index = -1;

  const fail = (message: string): never => {
    failure = new MalformedMultipartError(message);
    throw failure;
  };

  /** Pulls one more chunk; returns it (or undefined at end of input) without touching `buf`. */
  const pullChunk = async (): Promise<Buffer | undefined> => {
    if (eof) return undefined;
    const r = await iterator.next();
    if (r.done) {
      eof = true;
      return undefined;
    }
    const v = r.value;
    return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  };

  /** Appends one more chunk to `buf`; false at end of input. For small, bounded buffers only. */
  const pullAppend = async (): Promise<boolean> => {
    const c = await pullChunk();
    if (c === undefined) return false;
    if (c.length > 0) buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
    return true;
  };

  /**
   * Next chunk of the current part's body, or undefined once its closing delimiter has been reached
   * (then `buf` starts right after the delimiter). Never holds more than the current chunk plus a
   * delimiter-length tail.
   */
  const nextBodyChunk = async (): Promise<Buffer | undefined> => {
    if (failure) throw failure;
    for (;;) {
      if (!inBody) return undefined;
      const at = buf.indexOf(delimiter);
      if (at !== -1) {
        const out = buf.subarray(0, at);
        buf = buf.subarray(at + dlen);
        inBody = false;
        if (out.length > 0) return out;
        return undefined;
      }
      // No full delimiter in `buf`: everything except a tail that could be the start of one is body.
      const keep = Math.min(buf.length, dlen - 1);
      const out = buf.subarray(0, buf.length - keep);
      const tail = Buffer.from(buf.subarray(buf.length - keep)); // copy: don't pin the whole chunk
      if (out.length > 0) {
        buf = tail;
        return out;
      }
      const c = await pullChunk();
      if (c === undefined) {
        return fail(`multipart body ended inside part ${index} (no closing "--${truncate(boundary, 40)}--" delimiter)`);
      }
      if (c.length < dlen) {
        // Tiny chunk: just append (bounded: tail < dlen).
        buf = Buffer.concat([tail, c]);
        continue;
      }
      // Large chunk: look for a delimiter straddling the junction without copying the chunk.
      const junction = Buffer.concat([tail, c.subarray(0, dlen - 1)]);
      const j = junction.indexOf(delimiter);
      if (j !== -1 && j < tail.length) {
        buf = c.subarray(j + dlen - tail.length);
        inBody = false;
        if (j > 0) return tail.subarray(0, j);
        return undefined;
      }
      buf = c;
      if (tail.length > 0) return tail;
    }
  };

  const drainBody = async (): Promise<void> => {
    while ((await nextBodyChunk()) !== undefined) {
      /* discard */
    }
  };

  /**
   * Just after a delimiter (`buf` starts after "--boundary"): "--" closes the multipart; otherwise
   * optional transport padding then CRLF. Returns false for the close delimiter.
   */
  const afterDelimiter = async (): Promise<boolean> => {
    while (buf.length < 2) {
      if (!(await pullAppend())) {
        return fail('multipart body ended right after a boundary delimiter (no closing "--")');
      }
    }
    if (buf[0] === 0x2d && buf[1] === 0x2d) return false;
    // Transport padding (RFC 2046 §5.1.1: *LWSP-char before CRLF).
    for (;;) {
      let k = 0;
      while (k < buf.length && (buf[k] === 0x20 || buf[k] === 0x09)) k++;
      if (k > 1024) fail('multipart delimiter line has more than 1 KiB of padding');
      if (k + 2 <= buf.length) {
        if (buf[k] !== 0x0d || buf[k + 1] !== 0x0a) {
          return fail(`multipart delimiter for part ${index + 1} is followed by unexpected bytes (expected CRLF)`);
        }
        buf = buf.subarray(k + 2);
        return true;
      }
      if (!(await pullAppend())) {
        return fail('multipart body ended inside a boundary delimiter line');
      }
    }
  };

  const readHeaders = async (): Promise<Record<string, string>> => {
    let end: number;
    // An empty header block: the body starts right after one CRLF (RFC 2046 §5.1.1 body-part).
    for (;;) {
      if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) {
        buf = buf.subarray(2);
        return {};
      }
      end = buf.indexOf(HEADER_END);
      if (end !== -1) break;
      if (buf.length > maxHeader + HEADER_END.length) {
        fail(`multipart part ${index} header is larger than ${maxHeader} bytes`);
      }
      if (!(await pullAppend())) return fail(`multipart body ended inside the headers of part ${index}`);
    }
    if (end > maxHeader) fail(`multipart part ${index} header is larger than ${maxHeader} bytes`);
    const block = buf.subarray(0, end).toString('utf8');
    buf = buf.subarray(end + HEADER_END.length);
    const headers: Record<string, string> = {};
    let lastName: string | undefined;
    for (const line of block.split('\r\n')) {
      if ((line.startsWith(' ') || line.startsWith('\t')) && lastName !== undefined) {
        // Obsolete line folding (RFC 5322 §2.2.3): continuation of the previous header.
        headers[lastName] = `${headers[lastName]} ${line.trim()}`.trim();
        continue;
      }
      const colon = line.indexOf(':');
      const name = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : '';
      if (name === '' || ![...name].every(isTokenChar)) {
        fail(`multipart part ${index} has a malformed header line (expected "Name: value")`);
      }
      const value = line.slice(colon + 1).trim();
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
      lastName = name;
    }
    return headers;
  };

  // Preamble: find the opening delimiter, keeping only a delimiter-length tail.
  for (;;) {
    const at = buf.indexOf(delimiter);
    if (at !== -1) {
      buf = buf.subarray(at + dlen);
      break;
    }
    if (buf.length >= dlen) buf = Buffer.from(buf.subarray(buf.length - (dlen - 1)));
    if (!(await pullAppend())) {
      fail(`multipart body has no opening "--${truncate(boundary, 40)}" delimiter`);
    }
  }

  while (await afterDelimiter()) {
    index++;
    const headers = await readHeaders();
    inBody = true;
    const partIndex = index;
    let started = false;
    const body: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator](): AsyncIterator<Buffer> {
        if (started) throw new Error(`body of multipart part ${partIndex} can be iterated only once`);
        started = true;
        return {
          async next(): Promise<IteratorResult<Buffer>> {
            // A body iterated after the generator moved on is simply finished.
            if (partIndex !== index) return { done: true, value: undefined };
            const chunk = await nextBodyChunk();
            return chunk === undefined ? { done: true, value: undefined } : { done: false, value: chunk };
          },
          // Abandoning the body (break / return()) is allowed: the generator drains the rest later.
          async return(): Promise<IteratorResult<Buffer>> {
            return { done: true, value: undefined };
          },
        };
      },
    };
    const skip = async (): Promise<void> => {
      if (partIndex === index) await drainBody();
    };
    yield { index: partIndex, headers, body, skip };
    await drainBody();
  }
}
