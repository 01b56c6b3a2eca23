/**
 * DICOM date and time values (PS3.5 §6.2: DA "YYYYMMDD", TM "HHMMSS") of an instant, in UTC, as every
 * instance this server writes (AI reports, slide annotations, live recordings, new live studies) sets
 * its Content / Instance Creation / Series / Study Date and Time. Whole seconds: no fraction.
 */

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** DA of `d` in UTC: YYYYMMDD. */
export function dicomDate(d: Date): string {
  return `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}`;
}

/** TM of `d` in UTC: HHMMSS (whole seconds, no fraction). */
export function dicomTime(d: Date): string {
  return `${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}`;
}
