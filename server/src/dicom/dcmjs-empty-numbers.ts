/**
 * Workaround for a dcmjs defect (0.51): a binary number element of length 0 (US, SS, UL, SL, FL, FD, UV —
 * an element present without a value, as Type 2 attributes often are: PS3.5 §7.1, §7.4) is read as
 * one value 0, its VR's "default value" (`ValueRepresentation.read` returns `defaultValue` for a fixed-size
 * VR when the length is 0). So an empty Smallest Image Pixel Value showed as 0 in WADO-RS metadata, where
 * PS3.18 §F.2.5 says an element without a value has no "Value", and dcmjs wrote such an element back as two
 * bytes of 0 (a de-identified or corrected copy changed a value nobody touched).
 *
 * Installed once when this module is imported (through dcmjs-fixes.ts): the empty value reads as no value
 * (`[]`), which header-json.ts turns into an element with no Value and dcmjs writes back with length 0.
 * AT keeps dcmjs's behaviour (its default is undefined, already read as no value). Remove when dcmjs
 * reads an empty binary number as empty (dcmjs-empty-numbers.test.ts then still passes on its own).
 */
import dcmjs from 'dcmjs';

interface ReadResult {
  rawValue: unknown;
  value: unknown;
}
export interface FixedVr {
  fixed?: boolean;
  maxLength?: number | null;
  defaultValue?: unknown;
  read(stream: unknown, length: number, syntax: unknown, options?: unknown): ReadResult;
}

const PATCHED = Symbol.for('filmless-pacs.dcmjs.empty-numbers');

/**
 * Installs the workaround on one copy of dcmjs's ValueRepresentation class (once per copy). The top-level
 * dcmjs gets it below; dimse/dimse-lib.ts gives it to the copy dcmjs-dimse depends on (0.50), which reads the
 * data sets of C-FIND, C-MOVE and C-GET requests: there an empty Rows return key read as 0 became a match
 * on Rows = 0, and an IMAGE-level C-FIND asking for Rows found nothing.
 */
export function installEmptyNumbers(vrClass: { prototype: FixedVr } | undefined): boolean {
  if (vrClass === undefined) return false;
  const prototype = vrClass.prototype as FixedVr & Record<symbol, boolean>;
  if (prototype[PATCHED]) return true;
  const read = prototype.read;
  prototype.read = function readEmptyNumberAsEmpty(this: FixedVr, stream: unknown, length: number, syntax: unknown, options?: unknown): ReadResult {
    if (!length && this.fixed === true && typeof this.maxLength === 'number' && this.maxLength > 0 && typeof this.defaultValue === 'number') {
      return { rawValue: [], value: [] };
    }
    return read.call(this, stream, length, syntax, options);
  };
  prototype[PATCHED] = true;
  return true;
}

installEmptyNumbers((dcmjs.data as unknown as { ValueRepresentation?: { prototype: FixedVr } }).ValueRepresentation);
