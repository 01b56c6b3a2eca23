/**
 * The whole-command check of the hospital link: every field of a HisCommand against the DICOM value
 * representation it becomes (PS3.5 6.2: SH 16, LO 64, CS 16, PN 64 per component group, DA, TM, UI) and
 * the configured issuers, before anything is applied. All problems are collected, so an HL7 AE (or a
 * REST 400) names each field at once. Messages name fields, never their values (patient data stays out
 * of logs and acknowledgements).
 *
 * `normalizeCommand` first turns what senders commonly send into the model's form: empty optional
 * strings become null, the modality is upper-cased, surrounding spaces of codes and IDs are dropped.
 */
import type { OtherPatientId, PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import type { HisCommand, OrderInput } from './his-model.js';

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** At most `max` characters, no backslash (the DICOM value separator) and no control characters. */
function text(problems: string[], field: string, value: string | null, max: number, required: boolean): void {
  if (value === null || value === '') {
    if (required) problems.push(`${field} is required`);
    return;
  }
  if (value.length > max) problems.push(`${field} must be at most ${max} characters`);
  if (value.includes('\\') || CONTROL.test(value)) problems.push(`${field} must not contain backslashes or control characters`);
}

/** PN (PS3.5 6.2.1): up to 3 component groups of up to 5 components, each group at most 64 characters. */
function personName(problems: string[], field: string, value: string | null): void {
  if (value === null || value === '') return;
  const groups = value.split('=');
  if (groups.length > 3) problems.push(`${field} must have at most 3 component groups (=)`);
  for (const group of groups) {
    if (group.length > 64) problems.push(`${field} must have at most 64 characters per component group`);
    if (group.split('^').length > 5) problems.push(`${field} must have at most 5 components (^) per group`);
  }
  if (value.includes('\\') || CONTROL.test(value)) problems.push(`${field} must not contain backslashes or control characters`);
}

function isRealDate(yyyymmdd: string): boolean {
  const year = Number(yyyymmdd.slice(0, 4));
  const month = Number(yyyymmdd.slice(4, 6));
  const day = Number(yyyymmdd.slice(6, 8));
  const date = new Date(Date.UTC(year, month - 1, day));
  return year >= 1 && date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

/** 'YYYYMMDD', an existing calendar date. */
export function isValidDate(value: string): boolean {
  return /^\d{8}$/.test(value) && isRealDate(value);
}

/** 'YYYYMMDD[HHMM[SS]]' with an existing date and a valid time of day. */
export function isValidDateTime(value: string): boolean {
  const match = /^(\d{8})(?:(\d{2})(\d{2})(\d{2})?)?$/.exec(value);
  if (match === null || !isRealDate(match[1]!)) return false;
  if (match[2] === undefined) return true;
  return Number(match[2]) < 24 && Number(match[3]) < 60 && (match[4] === undefined || Number(match[4]) < 60);
}

/** PS3.5 9.1: digits and dots, at most 64 characters (components with leading zeros, which older systems send, are accepted as they are). */
export function isValidUid(value: string): boolean {
  return value.length <= 64 && /^[0-9]+(\.[0-9]+)*$/.test(value);
}

function issuer(problems: string[], field: string, value: string, issuers: readonly string[]): void {
  text(problems, field, value, 64, false);
  if (issuers.length > 0 && !issuers.includes(value)) problems.push(`${field} is not one of the configured issuers (PACS_HIS_PATIENT_ID_ISSUERS)`);
}

function patientKey(problems: string[], field: string, key: PatientKey, issuers: readonly string[]): void {
  text(problems, `${field}.patientId`, key.patientId, 64, true);
  issuer(problems, `${field}.issuer`, key.issuer, issuers);
}

function otherId(problems: string[], field: string, other: OtherPatientId, issuers: readonly string[]): void {
  text(problems, `${field}.id`, other.id, 64, true);
  issuer(problems, `${field}.issuer`, other.issuer, issuers);
  if (other.type !== undefined) text(problems, `${field}.type`, other.type, 16, false);
}

function patientIdentity(problems: string[], field: string, identity: PatientIdentity, issuers: readonly string[]): void {
  patientKey(problems, field, identity, issuers);
  personName(problems, `${field}.name`, identity.name);
  if (identity.birthDate !== null && !isValidDate(identity.birthDate)) problems.push(`${field}.birthDate must be a date YYYYMMDD`);
  if (identity.sex !== null && !['M', 'F', 'O'].includes(identity.sex)) problems.push(`${field}.sex must be M, F or O`);
  identity.otherIds.forEach((other, i) => otherId(problems, `${field}.otherIds[${i}]`, other, issuers));
}

function order(problems: string[], field: string, input: OrderInput): void {
  text(problems, `${field}.accessionNumber`, input.accessionNumber, 16, true);
  text(problems, `${field}.placerOrderNumber`, input.placerOrderNumber, 64, false);
  text(problems, `${field}.fillerOrderNumber`, input.fillerOrderNumber, 64, false);
  text(problems, `${field}.requestedProcedureId`, input.requestedProcedureId, 16, true);
  text(problems, `${field}.requestedProcedureDescription`, input.requestedProcedureDescription, 64, false);
  if (input.requestedProcedureCode !== null) {
    text(problems, `${field}.requestedProcedureCode.value`, input.requestedProcedureCode.value, 64, true);
    text(problems, `${field}.requestedProcedureCode.scheme`, input.requestedProcedureCode.scheme, 16, true);
    text(problems, `${field}.requestedProcedureCode.meaning`, input.requestedProcedureCode.meaning, 64, true);
  }
  text(problems, `${field}.scheduledProcedureStepId`, input.scheduledProcedureStepId, 16, true);
  text(problems, `${field}.scheduledProcedureStepDescription`, input.scheduledProcedureStepDescription, 64, false);
  if (input.modality === '') problems.push(`${field}.modality is required`);
  else if (!/^[A-Z0-9_ ]{1,16}$/.test(input.modality)) problems.push(`${field}.modality must be a DICOM modality code (CS: up to 16 capital letters, digits, _ or space), e.g. CT, ES`);
  text(problems, `${field}.scheduledStationAeTitle`, input.scheduledStationAeTitle, 16, false);
  if (input.scheduledStart === '') problems.push(`${field}.scheduledStart is required`);
  else if (!isValidDateTime(input.scheduledStart)) problems.push(`${field}.scheduledStart must be a date and time YYYYMMDD[HHMM[SS]]`);
  personName(problems, `${field}.referringPhysicianName`, input.referringPhysicianName);
  personName(problems, `${field}.performingPhysicianName`, input.performingPhysicianName);
  if (input.studyInstanceUid !== null && !isValidUid(input.studyInstanceUid)) problems.push(`${field}.studyInstanceUid must be a UID (digits and dots, at most 64 characters)`);
}

/** Every problem of the command (empty: it may be applied). */
export function commandProblems(command: HisCommand, issuers: readonly string[]): string[] {
  const problems: string[] = [];
  switch (command.kind) {
    case 'patient-upsert':
      patientIdentity(problems, 'patient', command.identity, issuers);
      break;
    case 'patient-merge':
      patientKey(problems, 'prior', command.prior, issuers);
      patientIdentity(problems, 'surviving', command.surviving, issuers);
      if (command.prior.patientId === command.surviving.patientId && command.prior.issuer === command.surviving.issuer) {
        problems.push('prior must be another patient than surviving');
      }
      break;
    case 'order-new':
    case 'order-change':
      patientIdentity(problems, 'patient', command.patient, issuers);
      order(problems, 'order', command.order);
      break;
    case 'order-cancel':
      patientKey(problems, 'patient', command.patient, issuers);
      text(problems, 'placerOrderNumber', command.placerOrderNumber, 64, false);
      text(problems, 'accessionNumber', command.accessionNumber, 16, false);
      if (command.orderId === undefined && (command.placerOrderNumber ?? '') === '' && (command.accessionNumber ?? '') === '') {
        problems.push('placerOrderNumber or accessionNumber is required to find the order');
      }
      break;
  }
  return problems;
}

const orNull = (value: string | null | undefined): string | null => (value === undefined || value === null || value.trim() === '' ? null : value);
const trimmed = (value: string): string => value.trim();

function normalizeIdentity(identity: PatientIdentity): PatientIdentity {
  return {
    patientId: trimmed(identity.patientId ?? ''),
    issuer: trimmed(identity.issuer ?? ''),
    name: orNull(identity.name),
    birthDate: orNull(identity.birthDate),
    sex: orNull(identity.sex)?.toUpperCase() ?? null,
    otherIds: (identity.otherIds ?? []).map((other) => ({
      id: trimmed(other.id ?? ''),
      issuer: trimmed(other.issuer ?? ''),
      ...(orNull(other.type) === null ? {} : { type: other.type!.trim() }),
    })),
  };
}

function normalizeOrder(input: OrderInput): OrderInput {
  return {
    placerOrderNumber: orNull(input.placerOrderNumber)?.trim() ?? null,
    fillerOrderNumber: orNull(input.fillerOrderNumber)?.trim() ?? null,
    accessionNumber: trimmed(input.accessionNumber ?? ''),
    requestedProcedureId: trimmed(input.requestedProcedureId ?? ''),
    requestedProcedureDescription: orNull(input.requestedProcedureDescription),
    requestedProcedureCode: input.requestedProcedureCode ?? null,
    scheduledProcedureStepId: trimmed(input.scheduledProcedureStepId ?? ''),
    scheduledProcedureStepDescription: orNull(input.scheduledProcedureStepDescription),
    modality: trimmed(input.modality ?? '').toUpperCase(),
    scheduledStationAeTitle: orNull(input.scheduledStationAeTitle)?.trim() ?? null,
    scheduledStart: trimmed(input.scheduledStart ?? ''),
    referringPhysicianName: orNull(input.referringPhysicianName),
    performingPhysicianName: orNull(input.performingPhysicianName),
    studyInstanceUid: orNull(input.studyInstanceUid)?.trim() ?? null,
  };
}

/** The command in the model's form (see the module comment); the input is not changed. */
export function normalizeCommand(command: HisCommand): HisCommand {
  switch (command.kind) {
    case 'patient-upsert':
      return { ...command, identity: normalizeIdentity(command.identity) };
    case 'patient-merge':
      return { ...command, prior: { patientId: trimmed(command.prior.patientId ?? ''), issuer: trimmed(command.prior.issuer ?? '') }, surviving: normalizeIdentity(command.surviving) };
    case 'order-new':
    case 'order-change':
      return { ...command, patient: normalizeIdentity(command.patient), order: normalizeOrder(command.order) };
    case 'order-cancel':
      return {
        ...command,
        patient: { patientId: trimmed(command.patient.patientId ?? ''), issuer: trimmed(command.patient.issuer ?? '') },
        placerOrderNumber: orNull(command.placerOrderNumber)?.trim() ?? null,
        accessionNumber: orNull(command.accessionNumber)?.trim() ?? null,
      };
  }
}
