/**
 * HL7 v2.5.1 messages as hospital-link commands, as IHE Radiology Scheduled Workflow maps them
 * (RAD TF-2: RAD-1/RAD-12 Patient Registration / Update, RAD-2/RAD-4 Placer Order Management /
 * Procedure Scheduled; docs/hl7-conformance.md lists every field read):
 *
 * - ADT^A01, A04, A08 → `patient-upsert`; ADT^A40 (PID + MRG) → `patient-merge`.
 * - ORM^O01 (ORC, OBR; ZDS) and OMI^O23 (ORC, TQ1, OBR, IPC) → `order-new` / `order-change` /
 *   `order-cancel` by ORC-1 (NW, XO, CA, DC).
 *
 * A message becomes exactly one command or is refused whole: every problem found is collected and the
 * message answered AE (content) or AR (a message type or event this listener does not take). One order
 * (one ORC/OBR/IPC) and one patient per message: a message carrying more is refused (100), not applied
 * in part.
 */
import type { OtherPatientId, PatientIdentity, PatientKey } from '../dicom/patient-identity.js';
import type { CodedValue, HisCommand, OrderInput } from '../his/his-model.js';
import { FieldProblem, type ParsedHl7, type SegmentView } from './hl7-message.js';
import { Hl7Rejection, fieldName, type Hl7Location, type Hl7Problem } from './hl7-problem.js';

export interface Hl7MappingOptions {
  /** PACS_HIS_PATIENT_ID_ISSUER: assigning authority of the hospital's record number ('' = the CX-5 MR repetition). */
  patientIdIssuer: string;
  /** PACS_HIS_NATIONAL_ID_ISSUER: assigning authority of the national citizen ID ('' = taken from CX-4). */
  nationalIdIssuer: string;
  /**
   * The issuers the hospital link accepts (PACS_HIS_PATIENT_ID_ISSUERS; empty: any). Other identifiers
   * (passport…) of an authority not listed are left out rather than refusing the whole message.
   */
  acceptedIssuers?: readonly string[];
}

/** The message types and trigger events this listener takes. */
export const SUPPORTED_EVENTS: Readonly<Record<string, readonly string[]>> = {
  ADT: ['A01', 'A04', 'A08', 'A40'],
  ORM: ['O01'],
  OMI: ['O23'],
};

/** The message's one command; throws Hl7Rejection (AR for an unsupported type or event, AE for the content). */
export function mapMessage(message: ParsedHl7, options: Hl7MappingOptions): HisCommand {
  const { messageCode, triggerEvent } = message.header;
  const events = SUPPORTED_EVENTS[messageCode];
  const msh9 = { segment: 'MSH', sequence: 1, field: 9 };
  if (events === undefined) {
    throw new Hl7Rejection('AR', [{ code: 200, location: { ...msh9, component: 1 }, message: `MSH-9: message type not supported (accepted: ADT^A01/A04/A08/A40, ORM^O01, OMI^O23)` }]);
  }
  if (!events.includes(triggerEvent)) {
    throw new Hl7Rejection('AR', [{ code: 201, location: { ...msh9, component: 2 }, message: `MSH-9: event not supported for ${messageCode} (accepted: ${events.join(', ')})` }]);
  }
  const reader = new Reader(message, options);
  const command = reader.read(messageCode, triggerEvent);
  if (reader.problems.length > 0 || command === undefined) throw new Hl7Rejection('AE', reader.problems);
  return command;
}

/** Table 0203 identifier types of a national person identifier: NI, and NNxxx (xxx an ISO 3166 country code, e.g. NNVNM). */
const isNationalType = (type: string) => type === 'NI' || /^NN[A-Z]{3}$/.test(type);

/** HL7 table 0001 (administrative sex) → DICOM Patient's Sex (M, F, O; null when unknown). */
const SEX: Readonly<Record<string, string | null>> = { M: 'M', F: 'F', O: 'O', A: 'O', U: null, N: null };

/** ORC-1 order control codes (table 0119) this listener takes. */
const ORDER_CONTROLS = ['NW', 'XO', 'CA', 'DC'];

/** Collects problems while reading; each accessor returns a usable value even after a problem. */
class Reader {
  readonly problems: Hl7Problem[] = [];

  constructor(
    private readonly message: ParsedHl7,
    private readonly options: Hl7MappingOptions,
  ) {}

  read(code: string, event: string): HisCommand | undefined {
    if (code === 'ADT') return event === 'A40' ? this.merge() : this.upsert(event as 'A01' | 'A04' | 'A08');
    return this.order(code as 'ORM' | 'OMI');
  }

  private problem(code: Hl7Problem['code'], location: Hl7Location, message: string): void {
    this.problems.push({ code, location, message });
  }

  /** Field text, a bad escape recorded as a problem ('' then). */
  private text(segment: SegmentView | undefined, field: number, component = 1, sub = 1, rep = 1): string {
    if (segment === undefined) return '';
    try {
      return segment.text(field, component, sub, rep).trim();
    } catch (err) {
      if (err instanceof FieldProblem) {
        this.problems.push(err.problem);
        return '';
      }
      throw err;
    }
  }

  /** The one segment of that name the message must hold (100 when missing or repeated). */
  private one(name: string, purpose: string, required = true): SegmentView | undefined {
    const found = this.message.all(name);
    if (found.length === 0) {
      if (required) this.problem(100, { segment: name }, `The ${name} segment (${purpose}) is missing`);
      return undefined;
    }
    if (found.length > 1) {
      this.problem(100, found[1]!.location(), `The message holds ${found.length} ${name} segments: this listener takes one ${purpose} per message`);
    }
    return found[0];
  }

  private required(value: string, segment: SegmentView | undefined, location: Hl7Location, what: string): string {
    if (value === '' && segment !== undefined) this.problem(101, location, `${fieldName(location)} (${what}) is missing`);
    return value;
  }

  // --- ADT -------------------------------------------------------------------------------------------

  private upsert(event: 'A01' | 'A04' | 'A08'): HisCommand | undefined {
    const pid = this.one('PID', 'patient');
    if (pid === undefined) return undefined;
    const identity = this.identity(pid);
    return identity === undefined ? undefined : { kind: 'patient-upsert', event, identity };
  }

  private merge(): HisCommand | undefined {
    const pid = this.one('PID', 'surviving patient');
    const mrg = this.one('MRG', 'prior patient');
    const surviving = pid === undefined ? undefined : this.identity(pid);
    const prior = mrg === undefined ? undefined : this.priorKey(mrg);
    return surviving === undefined || prior === undefined ? undefined : { kind: 'patient-merge', prior, surviving };
  }

  // --- Orders ----------------------------------------------------------------------------------------

  private order(code: 'ORM' | 'OMI'): HisCommand | undefined {
    const pid = this.one('PID', 'patient');
    const orc = this.one('ORC', 'order');
    const obr = this.one('OBR', 'order');
    const ipc = code === 'OMI' ? this.one('IPC', 'scheduled procedure step', false) : undefined;
    // TQ1 may repeat (several timings): the first one's start is the scheduled start.
    const tq1 = this.message.segment('TQ1');
    const control = this.text(orc, 1).toUpperCase();
    if (orc !== undefined) {
      if (control === '') this.problem(101, orc.location(1), 'ORC-1 (order control) is missing');
      else if (!ORDER_CONTROLS.includes(control)) this.problem(103, orc.location(1), 'ORC-1: order control code not supported (accepted: NW, XO, CA, DC)');
    }
    if (pid === undefined || orc === undefined || obr === undefined) return undefined;

    const placerOrderNumber = this.text(orc, 2) || this.text(obr, 2);
    const fillerOrderNumber = this.text(orc, 3) || this.text(obr, 3);
    // OMI carries the DICOM keys in IPC; OBR's IHE fields are read when IPC lacks them.
    const accessionNumber = this.text(ipc, 1) || this.text(obr, 18);
    const at = (ipcField: number, obrField: number) => (code === 'OMI' && ipc !== undefined ? ipc.location(ipcField) : obr.location(obrField));

    if (control === 'CA' || control === 'DC') {
      const patient = this.patientKeyOf(pid);
      if (placerOrderNumber === '' && accessionNumber === '') {
        this.problem(101, orc.location(2), `ORC-2 (placer order number) or ${fieldName(at(1, 18))} (accession number) is required to find the order`);
      }
      return patient === undefined || this.problems.length > 0
        ? undefined
        : { kind: 'order-cancel', patient, placerOrderNumber: placerOrderNumber || null, accessionNumber: accessionNumber || null, discontinue: control === 'DC' };
    }

    const patient = this.identity(pid);
    this.required(accessionNumber, obr, at(1, 18), 'accession number');
    const requestedProcedureId = this.required(this.text(ipc, 2) || this.text(obr, 19), obr, at(2, 19), 'requested procedure ID');
    const scheduledProcedureStepId = this.required(this.text(ipc, 4) || this.text(obr, 20), obr, at(4, 20), 'scheduled procedure step ID');
    const modality = this.required(this.text(ipc, 5) || this.text(obr, 24), obr, at(5, 24), 'modality');
    const scheduledStart = this.scheduledStart(tq1, obr, orc);
    // Requested procedure: OBR-44 (procedure code) when the HIS sends it, else OBR-4 (universal service ID).
    const requestedProcedureCode = this.coded(obr, this.text(obr, 44) !== '' ? 44 : 4);
    const input: OrderInput = {
      placerOrderNumber: placerOrderNumber || null,
      fillerOrderNumber: fillerOrderNumber || null,
      accessionNumber,
      requestedProcedureId,
      requestedProcedureDescription: requestedProcedureCode?.meaning ?? null,
      requestedProcedureCode,
      scheduledProcedureStepId,
      scheduledProcedureStepDescription: this.text(obr, 4, 2) || null,
      modality: modality.toUpperCase(),
      scheduledStationAeTitle: this.text(ipc, 9) || null,
      scheduledStart,
      referringPhysicianName: this.doctor(this.message.segment('PV1'), 8) ?? this.doctor(orc, 12) ?? this.doctor(obr, 16) ?? null,
      performingPhysicianName: null,
      studyInstanceUid: this.text(ipc, 3) || this.text(this.message.segment('ZDS'), 1) || null,
    };
    if (patient === undefined || this.problems.length > 0) return undefined;
    return control === 'NW' ? { kind: 'order-new', patient, order: input } : { kind: 'order-change', patient, order: input };
  }

  /** CE/CWE: identifier^text^coding system; no coding system: L (HL7 table 0396, local code). */
  private coded(segment: SegmentView, field: number): CodedValue | null {
    const value = this.text(segment, field, 1);
    if (value === '') return null;
    const meaning = this.text(segment, field, 2) || value;
    return { value, meaning, scheme: this.text(segment, field, 3) || 'L' };
  }

  /** TQ1-7, else OBR-27.4, else ORC-7.4 (TS start date/time) as 'YYYYMMDD[HHMM[SS]]'. */
  private scheduledStart(tq1: SegmentView | undefined, obr: SegmentView, orc: SegmentView): string {
    const candidates: Array<[SegmentView | undefined, number, number]> = [
      [tq1, 7, 1],
      [obr, 27, 4],
      [orc, 7, 4],
    ];
    for (const [segment, field, component] of candidates) {
      const value = this.text(segment, field, component);
      if (value === '') continue;
      const location = segment!.location(field, component === 1 ? undefined : component);
      const converted = dateTime(value);
      if (converted === null) this.problem(102, location, `${fieldName(location)} (scheduled start) must be a date/time YYYYMMDD[HHMM[SS]][+ZZZZ]`);
      return converted ?? '';
    }
    this.problem(101, tq1?.location(7) ?? obr.location(27, 4), `${tq1 === undefined ? 'OBR-27.4' : 'TQ1-7'} (scheduled start date/time) is missing`);
    return '';
  }

  // --- Patient identity --------------------------------------------------------------------------------

  /** PID → the patient's identity (PID-3 identifiers, PID-5 name, PID-7 birth date, PID-8 sex). */
  private identity(pid: SegmentView): PatientIdentity | undefined {
    const ids = this.identifiers(pid, 3);
    const name = pid.isNull(5) ? null : this.personName(pid, 5);
    const birthDate = this.birthDate(pid);
    const sex = this.sex(pid);
    if (ids === undefined) return undefined;
    return { ...ids.key, name, birthDate, sex, otherIds: ids.others };
  }

  private patientKeyOf(pid: SegmentView): PatientKey | undefined {
    return this.identifiers(pid, 3)?.key;
  }

  /** MRG-1 (prior patient identifier list): the prior record number. */
  private priorKey(mrg: SegmentView): PatientKey | undefined {
    return this.identifiers(mrg, 1)?.key;
  }

  /**
   * The CX repetitions of a patient identifier list (PID-3, MRG-1): which one is the hospital's record
   * number (Patient ID + Issuer of Patient ID) and which are other identifiers (Other Patient IDs
   * Sequence), by assigning authority (CX-4) and identifier type (CX-5):
   *
   * - the record number: CX-4 is PACS_HIS_PATIENT_ID_ISSUER; or no CX-4 and CX-5 MR or empty (it takes the
   *   configured issuer); with no issuer configured, the first repetition of type MR, else the first
   *   one that is not a national ID;
   * - the national ID: CX-4 is PACS_HIS_NATIONAL_ID_ISSUER; or CX-5 NI / NNxxx with no CX-4 (it takes
   *   the configured issuer), or with any CX-4 when no national issuer is configured;
   * - any other repetition with an assigning authority (a passport, CX-5 PPN) is another identifier
   *   when the hospital link accepts its issuer; one without an authority is left out.
   */
  private identifiers(segment: SegmentView, field: number): { key: PatientKey; others: OtherPatientId[] } | undefined {
    const { patientIdIssuer, nationalIdIssuer } = this.options;
    const accepted = this.options.acceptedIssuers ?? [];
    const count = segment.repetitions(field);
    const list: Array<{ id: string; authority: string; type: string; rep: number }> = [];
    for (let rep = 1; rep <= count; rep++) {
      const id = this.text(segment, field, 1, 1, rep);
      if (id === '') continue;
      // CX-4 is HD (namespace ID & universal ID & type): the namespace ID, else the universal ID.
      const authority = this.text(segment, field, 4, 1, rep) || this.text(segment, field, 4, 2, rep);
      list.push({ id, authority, type: this.text(segment, field, 5, 1, rep).toUpperCase(), rep });
    }
    const location = segment.location(field);
    if (list.length === 0) {
      this.problem(101, location, `${fieldName(location)} (patient identifier list) has no identifier`);
      return undefined;
    }
    type Entry = (typeof list)[number];
    const national = (entry: Entry) =>
      !(patientIdIssuer !== '' && entry.authority === patientIdIssuer) &&
      ((nationalIdIssuer !== '' && entry.authority === nationalIdIssuer) || (isNationalType(entry.type) && (entry.authority === '' || nationalIdIssuer === '')));
    const recordNumber = (entry: Entry) =>
      !national(entry) &&
      (patientIdIssuer !== '' ? entry.authority === patientIdIssuer || (entry.authority === '' && (entry.type === 'MR' || entry.type === '')) : entry.type === 'MR');
    const record = list.find(recordNumber) ?? (patientIdIssuer === '' ? list.find((entry) => !national(entry)) : undefined);
    if (record === undefined) {
      this.problem(
        101,
        location,
        patientIdIssuer === ''
          ? `${fieldName(location)} holds no patient record number (an identifier of type MR, CX-5)`
          : `${fieldName(location)} holds no patient record number of the assigning authority ${patientIdIssuer} (CX-4)`,
      );
      return undefined;
    }
    const key: PatientKey = { patientId: record.id, issuer: record.authority || patientIdIssuer };
    const others: OtherPatientId[] = [];
    for (const entry of list) {
      if (entry === record) continue;
      const issuer = national(entry) ? entry.authority || nationalIdIssuer : entry.authority;
      if (issuer === '' && !national(entry)) continue;
      if (!national(entry) && accepted.length > 0 && !accepted.includes(issuer)) continue;
      if (others.some((other) => other.id === entry.id && other.issuer === issuer) || (entry.id === key.patientId && issuer === key.issuer)) continue;
      others.push({ id: entry.id, issuer, type: 'TEXT' });
    }
    return { key, others };
  }

  /**
   * XPN → DICOM PN (PS3.5 6.2.1: Family^Given^Middle^Prefix^Suffix): XPN-1.1 surname, -2 given name,
   * -3 further given names, -5 prefix, -4 suffix. The legal name (XPN-7 L) when the field repeats.
   */
  private personName(segment: SegmentView, field: number): string | null {
    const count = segment.repetitions(field);
    if (count === 0) return null;
    let rep = 1;
    for (let r = 1; r <= count; r++) {
      const type = this.text(segment, field, 7, 1, r).toUpperCase();
      if (type === 'L') {
        rep = r;
        break;
      }
    }
    const part = (component: number) => this.text(segment, field, component, 1, rep);
    return this.pn(segment.location(field, undefined, rep), [part(1), part(2), part(3), part(5), part(4)]);
  }

  /** XCN (doctors: PV1-8, ORC-12, OBR-16) → PN: -2.1 family, -3 given, -4 middle, -6 prefix, -5 suffix; null when absent. */
  private doctor(segment: SegmentView | undefined, field: number): string | undefined {
    if (segment === undefined || segment.repetitions(field) === 0) return undefined;
    const part = (component: number) => this.text(segment, field, component);
    return this.pn(segment.location(field), [part(2), part(3), part(4), part(6), part(5)]) ?? undefined;
  }

  private pn(location: Hl7Location, components: string[]): string | null {
    if (components.some((component) => /[\\^=]/.test(component))) {
      this.problem(102, location, `${fieldName(location)}: a name component holds a character DICOM names cannot carry (\\, ^ or =)`);
      return null;
    }
    while (components.length > 0 && components[components.length - 1] === '') components.pop();
    return components.length === 0 ? null : components.join('^');
  }

  /** PID-7 (DTM): the date part; a birth date known only to the year or month is not a DICOM date and is left unknown. */
  private birthDate(pid: SegmentView): string | null {
    const value = this.text(pid, 7);
    if (value === '') return null;
    const digits = /^(\d{4,14})(\.\d+)?([+-]\d{4})?$/.exec(value);
    if (digits === null) {
      this.problem(102, pid.location(7), 'PID-7 (date of birth) must be a date YYYY[MM[DD]]');
      return null;
    }
    return digits[1]!.length >= 8 ? digits[1]!.slice(0, 8) : null;
  }

  private sex(pid: SegmentView): string | null {
    const value = this.text(pid, 8).toUpperCase();
    if (value === '') return null;
    if (!(value in SEX)) {
      this.problem(103, pid.location(8), 'PID-8 (administrative sex) must be one of M, F, O, U, A, N (HL7 table 0001)');
      return null;
    }
    return SEX[value]!;
  }
}

/** DTM 'YYYYMMDD[HH[MM[SS[.S…]]]][+/-ZZZZ]' → 'YYYYMMDD[HHMM[SS]]' (the time zone is dropped: local time, as the worklist serves it); null when not a date/time. */
export function dateTime(value: string): string | null {
  const match = /^(\d{8})(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?$/.exec(value);
  if (match === null) return null;
  const [, date, hour, minute, second] = match;
  if (hour === undefined) return date!;
  return `${date}${hour}${minute ?? '00'}${second ?? ''}`;
}
