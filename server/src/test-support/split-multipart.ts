/** Splits a buffered multipart/related response body into parts (headers + exact body bytes), for tests. */

export interface ResponsePart {
  headers: Record<string, string>;
  body: Buffer;
}

/** `contentType` as Fastify's inject gives it (string | string[] | number | undefined). */
export function boundaryOf(contentType: unknown): string {
  const match = /;\s*boundary=("?)([^";]+)\1/i.exec(String(contentType ?? ''));
  if (!match) throw new Error(`no boundary in ${contentType}`);
  return match[2]!;
}

export function splitMultipart(body: Buffer, contentType: unknown): ResponsePart[] {
  const boundary = boundaryOf(contentType);
  const delimiter = Buffer.from(`--${boundary}`, 'latin1');
  const parts: ResponsePart[] = [];
  let pos = body.indexOf(delimiter);
  if (pos !== 0) throw new Error('body does not start with the boundary');
  for (;;) {
    pos += delimiter.length;
    if (body.subarray(pos, pos + 2).toString('latin1') === '--') return parts;
    if (body.subarray(pos, pos + 2).toString('latin1') !== '\r\n') throw new Error('boundary not followed by CRLF');
    pos += 2;
    const headerEnd = body.indexOf('\r\n\r\n', pos, 'latin1');
    if (headerEnd === -1) throw new Error('part without header end');
    const headers: Record<string, string> = {};
    for (const line of body.subarray(pos, headerEnd).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const bodyStart = headerEnd + 4;
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), bodyStart);
    if (next === -1) throw new Error('part without closing boundary');
    parts.push({ headers, body: body.subarray(bodyStart, next) });
    pos = next + 2;
  }
}
