/** The parts of a `multipart/related` body (WADO-RS frames, instances), as byte views without copying. */
export interface Part {
  headers: Record<string, string>;
  body: Uint8Array;
}

export function boundaryOf(contentType: string): string {
  const m = /boundary="?([^";]+)"?/i.exec(contentType);
  if (m?.[1] === undefined) throw new Error('multipart response without a boundary');
  return m[1];
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0];
  outer: for (let i = haystack.indexOf(first as number, from); i !== -1 && i <= haystack.length - needle.length; i = haystack.indexOf(first as number, i + 1)) {
    for (let j = 1; j < needle.length; j += 1) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

export function parseMultipart(body: Uint8Array, contentType: string): Part[] {
  const enc = new TextEncoder();
  const delimiter = enc.encode(`--${boundaryOf(contentType)}`);
  const parts: Part[] = [];
  let pos = indexOf(body, delimiter, 0);
  while (pos !== -1) {
    let start = pos + delimiter.length;
    if (body[start] === 0x2d && body[start + 1] === 0x2d) break; // closing delimiter
    if (body[start] === 0x0d && body[start + 1] === 0x0a) start += 2;
    const headerEnd = indexOf(body, enc.encode('\r\n\r\n'), start);
    if (headerEnd === -1) throw new Error('truncated multipart part header');
    const headers: Record<string, string> = {};
    for (const line of new TextDecoder().decode(body.subarray(start, headerEnd)).split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const next = indexOf(body, delimiter, headerEnd + 4);
    if (next === -1) throw new Error('truncated multipart body');
    // The CRLF before the next delimiter belongs to the delimiter.
    parts.push({ headers, body: body.subarray(headerEnd + 4, next - 2) });
    pos = next;
  }
  return parts;
}
