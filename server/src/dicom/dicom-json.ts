/**
 * The DICOM JSON Model (PS3.18 §F.2): the shape of QIDO-RS results and WADO-RS metadata, and what
 * dcmjs's `DicomMessage.readFile(...).dict` yields. Keys are 8-digit upper-case hex tags.
 */
export interface DicomJsonPersonName {
  Alphabetic?: string;
  Ideographic?: string;
  Phonetic?: string;
}

export interface DicomJsonElement {
  vr: string;
  Value?: Array<string | number | DicomJsonPersonName | DicomJsonDataset | null>;
  InlineBinary?: string;
  BulkDataURI?: string;
}

export type DicomJsonDataset = Record<string, DicomJsonElement>;

/** First value of an element as a string, or undefined. Person names give their Alphabetic group. */
export function firstString(dataset: DicomJsonDataset, tag: string): string | undefined {
  const value = dataset[tag]?.Value?.[0];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if ('Alphabetic' in value || 'Ideographic' in value || 'Phonetic' in value) {
    const pn = value as DicomJsonPersonName;
    return pn.Alphabetic ?? pn.Ideographic ?? pn.Phonetic;
  }
  return undefined;
}

/** First value of an element as a number, or undefined (IS/DS strings are parsed). */
export function firstNumber(dataset: DicomJsonDataset, tag: string): number | undefined {
  const value = dataset[tag]?.Value?.[0];
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && value.trim() !== '') {
    const parsed = Number(value.trim());
    return Number.isFinite(parsed) ? parsed : undefined;
  }
  return undefined;
}
