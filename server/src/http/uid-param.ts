/** The UIDs in a request path (DICOMweb, AI and admin routes), checked before any lookup. */
import { AppError } from '../errors.js';

/** PS3.5 §9.1: a UID is at most 64 characters of digits and dots. */
const UID = /^[0-9]+(\.[0-9]+)*$/;

/** Checks a UID taken from the request path, so a typo is a 400 that says so, not an empty result. */
export function checkUidParam(value: string | undefined, name: string): void {
  if (value === undefined) return;
  if (value.length > 64 || !UID.test(value)) {
    throw new AppError('BAD_REQUEST', `${name} in the path is not a valid UID (digits and dots, at most 64 characters)`);
  }
}
