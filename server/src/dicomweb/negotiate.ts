/**
 * Accept header negotiation (PS3.18 §8.7). Small on purpose: DICOMweb media types carry a `type`
 * parameter that generic negotiators ignore.
 */
export interface MediaRange {
  type: string;
  subtype: string;
  params: Record<string, string>;
  q: number;
}

export function parseAccept(header: string | undefined): MediaRange[] {
  if (header === undefined || header.trim() === '') return [{ type: '*', subtype: '*', params: {}, q: 1 }];
  return splitOutsideQuotes(header, ',')
    .map((part) => parseMediaRange(part.trim()))
    .filter((range): range is MediaRange => range !== undefined && range.q > 0);
}

function parseMediaRange(text: string): MediaRange | undefined {
  const [essence = '', ...paramTexts] = splitOutsideQuotes(text, ';');
  const [type, subtype] = essence.trim().toLowerCase().split('/');
  if (!type || !subtype) return undefined;
  const params: Record<string, string> = {};
  let q = 1;
  for (const paramText of paramTexts) {
    const eq = paramText.indexOf('=');
    if (eq === -1) continue;
    const name = paramText.slice(0, eq).trim().toLowerCase();
    const value = paramText.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    if (name === 'q') q = Number.isFinite(Number(value)) ? Number(value) : 0;
    else params[name] = value;
  }
  return { type, subtype, params, q };
}

function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (const char of text) {
    if (char === '"') quoted = !quoted;
    if (char === separator && !quoted) {
      parts.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts;
}

/**
 * Whether the client accepts a DICOM JSON response: application/dicom+json, application/json, or a
 * wildcard. PS3.18 §8.7.3.1: `multipart/related; type="application/dicom+json"` is not a valid QIDO
 * response type, so it does not count.
 */
export function acceptsDicomJson(acceptHeader: string | undefined): boolean {
  return parseAccept(acceptHeader).some(
    (range) =>
      (range.type === '*' && range.subtype === '*') ||
      (range.type === 'application' && ['*', 'dicom+json', 'json'].includes(range.subtype)),
  );
}
