/**
 * The errors the Part-10 scanner refuses a file with. Messages say what is wrong and where (offsets,
 * tags), never a value from the file, so they cannot leak patient data. Truncation has its own maker in
 * byte-reader.ts (`truncated`), as the reader is what finds the input ending.
 */
import { InvalidDicomError } from '../errors.js';

export function invalid(message: string): InvalidDicomError {
  return new InvalidDicomError(message);
}

export function headerTooLarge(limit: number): InvalidDicomError {
  return invalid(`DICOM header larger than ${limit} bytes (the elements before Pixel Data)`);
}
