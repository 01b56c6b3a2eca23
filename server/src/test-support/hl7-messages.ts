/**
 * Real-looking HL7 v2.5.1 messages for the HL7 listener tests (server/src/hl7): what a Vietnamese HIS sends
 * (IHE RAD-1/RAD-12 ADT, RAD-2/RAD-4 ORM and OMI). Fields are placed by number so that each fixture
 * reads like the standard's tables. The people are made up.
 */

/** The patients of the fixtures (the log check of `npm test` searches every log line for these). */
export const PATIENT = { patientName: 'NGUYỄN^VĂN ĐỨC', patientId: 'BV0012345' } as const;
export const NATIONAL_ID = { patientId: '079080001234' } as const;
export const PRIOR = { patientId: 'BV0099999' } as const;
export const OTHER_PATIENT = { patientName: 'PHẠM^THỊ HỒNG NHUNG', patientId: 'BV0054321' } as const;

/** A segment with its fields at their numbers (`{ 3: 'x', 18: 'ACC' }` → `OBR|||x|…|ACC`). */
export function segment(name: string, fields: Record<number, string>): string {
  const last = Math.max(0, ...Object.keys(fields).map(Number));
  const parts = [name];
  for (let i = 1; i <= last; i++) parts.push(fields[i] ?? '');
  return parts.join('|');
}

export interface MshOptions {
  type: string;
  controlId: string;
  version?: string;
  charset?: string;
  sendingApplication?: string;
  sendingFacility?: string;
  processingId?: string;
}

/** MSH (MSH-1 is the field separator itself, MSH-2 the encoding characters). */
export function msh(options: MshOptions): string {
  return [
    'MSH',
    '^~\\&',
    options.sendingApplication ?? 'HIS',
    options.sendingFacility ?? 'BVBM',
    'FILMLESS',
    'RAD',
    '20261201083000+0700',
    '',
    options.type,
    options.controlId,
    options.processingId ?? 'P',
    options.version ?? '2.5.1',
    '',
    '',
    'AL',
    'NE',
    'VNM',
    options.charset ?? 'UNICODE UTF-8',
  ].join('|');
}

/** PID of the fixture patient: record number (BVBM, MR) and national citizen ID (VNM-CCCD, NNVNM). */
export function pid(overrides: Record<number, string> = {}): string {
  return segment('PID', {
    1: '1',
    3: `${PATIENT.patientId}^^^BVBM^MR~${NATIONAL_ID.patientId}^^^VNM-CCCD^NNVNM`,
    5: `${PATIENT.patientName}^^^ÔNG`,
    7: '19800215',
    8: 'M',
    11: '12 ĐƯỜNG LÁNG^^HÀ NỘI^^^VNM',
    ...overrides,
  });
}

const pv1 = segment('PV1', { 1: '1', 2: 'O', 3: 'NS^101^1', 8: 'BS001^TRẦN^THỊ^BÍCH^^BS.' });

/** Segments joined with <CR>, as HL7 v2 separates them. */
export const message = (...segments: string[]) => `${segments.join('\r')}\r`;

/** ORM^O01 (RAD-2 placer order): ORC-1 NW/XO/CA/DC, OBR-18 accession, -19 requested procedure, -20 step, -24 modality, -27.4 start. */
export function orm(control: string, controlId: string, overrides: { obr?: Record<number, string>; pid?: Record<number, string> } = {}): string {
  return message(
    msh({ type: 'ORM^O01^ORM_O01', controlId }),
    pid(overrides.pid),
    pv1,
    segment('ORC', { 1: control, 2: 'PL20261201001', 5: 'SC', 7: '^^^20261202090000+0700', 9: '20261201083000+0700', 12: 'BS002^LÊ^VĂN^CƯỜNG' }),
    segment('OBR', {
      1: '1',
      2: 'PL20261201001',
      4: 'ES-COLO^Nội soi đại tràng \\T\\ sinh thiết^99BVBM',
      16: 'BS002^LÊ^VĂN^CƯỜNG',
      18: 'ACC26120101',
      19: 'RP26120101',
      20: 'SPS26120101',
      24: 'ES',
      27: '^^^20261202090000+0700',
      ...overrides.obr,
    }),
  );
}

/** OMI^O23 (RAD-4 procedure scheduled, v2.5.1): ORC, TQ1-7 start, OBR-4, IPC-1..9. */
export function omi(control: string, controlId: string, overrides: { ipc?: Record<number, string> } = {}): string {
  return message(
    msh({ type: 'OMI^O23^OMI_O23', controlId }),
    pid(),
    pv1,
    segment('ORC', { 1: control, 2: 'PL20261201002', 3: 'FL20261201002', 5: 'SC' }),
    segment('TQ1', { 1: '1', 7: '202612021430+0700' }),
    segment('OBR', { 1: '1', 2: 'PL20261201002', 3: 'FL20261201002', 4: 'CT-BUNG^CT bụng có cản quang^99BVBM' }),
    segment('IPC', {
      1: 'ACC26120102',
      2: 'RP26120102',
      3: '1.2.826.0.1.3680043.10.1234.20261201.2',
      4: 'SPS26120102',
      5: 'CT',
      9: 'CT_PHONG2',
      ...overrides.ipc,
    }),
  );
}

/** ADT^A01/A04/A08 (RAD-1 / RAD-12): EVN, PID, PV1. */
export function adt(event: string, controlId: string, pidOverrides: Record<number, string> = {}): string {
  return message(msh({ type: `ADT^${event}^ADT_A01`, controlId }), segment('EVN', { 1: event, 2: '20261201083000' }), pid(pidOverrides), pv1);
}

/** ADT^A40 (RAD-12 merge): PID of the surviving patient, MRG-1 the prior record number. */
export function a40(controlId: string): string {
  return message(
    msh({ type: 'ADT^A40^ADT_A39', controlId }),
    segment('EVN', { 1: 'A40', 2: '20261201090000' }),
    pid(),
    segment('MRG', { 1: `${PRIOR.patientId}^^^BVBM^MR` }),
  );
}
