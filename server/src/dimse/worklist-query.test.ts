/**
 * The Modality Worklist identifier as the store's query, and the answer's shape: what a modality asks
 * (PS3.4 Annex K) and what it gets back, without a network.
 */
import { describe, expect, it } from 'vitest';
import type { Order } from '../his/his-model.js';
import type { WorklistItem } from '../his/his-store.js';
import { WorklistIdentifierError, matchesKeys, parseWorklistIdentifier, responseIdentifier, worklistAttributes, worklistAuditKeys } from './worklist.js';

const sps = (keys: Record<string, unknown>) => ({ ScheduledProcedureStepSequence: [keys] });

function item(order: Partial<Order> = {}, name: string | null = 'Nguyễn^Văn An'): WorklistItem {
  return {
    order: {
      id: 'o1',
      patient: { patientId: 'BN001', issuer: 'HOSP' },
      placerOrderNumber: 'P1',
      fillerOrderNumber: null,
      accessionNumber: 'ACC1',
      requestedProcedureId: 'RP1',
      requestedProcedureDescription: 'Nội soi dạ dày',
      requestedProcedureCode: { value: 'GASTRO', scheme: '99HOSP', meaning: 'Gastroscopy' },
      scheduledProcedureStepId: 'SPS1',
      scheduledProcedureStepDescription: null,
      modality: 'ES',
      scheduledStationAeTitle: 'ENDO1',
      scheduledStart: '20240315093000',
      referringPhysicianName: 'Trần^Bình',
      performingPhysicianName: null,
      studyInstanceUid: '1.2.3.4',
      status: 'SCHEDULED',
      mppsSopInstanceUid: null,
      performedSeries: [],
      createdAt: '',
      updatedAt: '',
      ...order,
    },
    patient: { patientId: 'BN001', issuer: 'HOSP', name, birthDate: '19800101', sex: 'M', otherIds: [{ id: '001080012345', issuer: 'VN-CCCD' }] },
  };
}

describe('Modality Worklist identifier → store query', () => {
  it('maps the scheduled step keys: date range, time range, modality and station AE title', () => {
    const { query, handledByStore, unsupported } = parseWorklistIdentifier(
      sps({ ScheduledProcedureStepStartDate: '20240301-20240331', ScheduledProcedureStepStartTime: '0800-1015', Modality: 'ES', ScheduledStationAETitle: 'ENDO1', ScheduledPerformingPhysicianName: '' }),
    );
    expect(query).toEqual({ dateFrom: '20240301', dateTo: '20240331', timeFrom: '080000', timeTo: '101559', modality: 'ES', scheduledStationAeTitle: 'ENDO1' });
    expect(handledByStore.size).toBe(4);
    expect(unsupported).toEqual([]);
  });

  it('maps a single date to a one-day range and open ranges to one bound', () => {
    expect(parseWorklistIdentifier(sps({ ScheduledProcedureStepStartDate: '20240315' })).query).toEqual({ dateFrom: '20240315', dateTo: '20240315' });
    expect(parseWorklistIdentifier(sps({ ScheduledProcedureStepStartDate: '20240315-' })).query).toEqual({ dateFrom: '20240315' });
    expect(parseWorklistIdentifier(sps({ ScheduledProcedureStepStartDate: '-20240315' })).query).toEqual({ dateTo: '20240315' });
    expect(parseWorklistIdentifier(sps({ ScheduledProcedureStepStartTime: '14' })).query).toEqual({ timeFrom: '140000', timeTo: '145959' });
  });

  it('maps the patient and order keys; wildcards on exactly matched keys are matched here instead', () => {
    const { query } = parseWorklistIdentifier({ PatientName: 'nguyen*', PatientID: 'BN001', IssuerOfPatientID: 'HOSP', AccessionNumber: 'ACC1', RequestedProcedureID: 'RP1' });
    expect(query).toEqual({ patientName: 'nguyen*', patientId: 'BN001', issuerOfPatientId: 'HOSP', accessionNumber: 'ACC1' });
    const wildcard = parseWorklistIdentifier({ AccessionNumber: 'ACC*', ...sps({ Modality: 'E?' }) });
    expect(wildcard.query).toEqual({});
    expect(matchesKeys(wildcard.keys, worklistAttributes(item()), wildcard.handledByStore)).toBe(true);
    expect(matchesKeys(parseWorklistIdentifier({ AccessionNumber: 'X*' }).keys, worklistAttributes(item()), new Set())).toBe(false);
  });

  it('normalises a decomposed Vietnamese name to NFC before the store matches it', () => {
    const decomposed = 'Nguyễn*'.normalize('NFD');
    expect(parseWorklistIdentifier({ PatientName: decomposed }).query.patientName).toBe('Nguyễn*'.normalize('NFC'));
  });

  it('maps Scheduled Procedure Step Status to the states the store keeps', () => {
    expect(parseWorklistIdentifier(sps({ ScheduledProcedureStepStatus: 'STARTED' })).query.statuses).toEqual(['IN PROGRESS']);
    expect(parseWorklistIdentifier(sps({ ScheduledProcedureStepStatus: 'SCHEDULED\\CANCELED' })).query.statuses).toEqual(['SCHEDULED', 'CANCELLED']);
    expect(parseWorklistIdentifier(sps({ ScheduledProcedureStepStatus: 'ARRIVED' })).query.statuses).toEqual([]);
  });

  it('matches the other kept keys here: Requested Procedure ID, Study Instance UID list, SPS ID, birth date range', () => {
    const attributes = worklistAttributes(item());
    const match = (elements: Record<string, unknown>) => {
      const identifier = parseWorklistIdentifier(elements);
      return matchesKeys(identifier.keys, attributes, identifier.handledByStore);
    };
    expect(match({ RequestedProcedureID: 'RP1' })).toBe(true);
    expect(match({ RequestedProcedureID: 'RP2' })).toBe(false);
    expect(match({ StudyInstanceUID: '9.9\\1.2.3.4' })).toBe(true);
    expect(match(sps({ ScheduledProcedureStepID: 'SPS2' }))).toBe(false);
    expect(match({ PatientBirthDate: '19700101-19851231' })).toBe(true);
    expect(match({ PatientBirthDate: '19900101-' })).toBe(false);
    expect(match({ ReferringPhysicianName: 'TRẦN*' })).toBe(true);
  });

  it('answers keys it does not keep empty and reports them as not supported for matching (FF01)', () => {
    const identifier = parseWorklistIdentifier({ AdmissionID: 'ADM7', PatientName: '' });
    expect(identifier.unsupported).toEqual(['AdmissionID']);
    expect(matchesKeys(identifier.keys, worklistAttributes(item()), identifier.handledByStore)).toBe(true);
    expect(responseIdentifier(identifier.keys, item())['AdmissionID']).toBeNull();
  });

  it('refuses an invalid matching value and a sequence key with two items (A900)', () => {
    expect(() => parseWorklistIdentifier(sps({ ScheduledProcedureStepStartDate: 'tomorrow' }))).toThrow(WorklistIdentifierError);
    expect(() => parseWorklistIdentifier({ ScheduledProcedureStepSequence: [{ Modality: 'ES' }, { Modality: 'CT' }] })).toThrow(WorklistIdentifierError);
  });
});

describe('Modality Worklist answers', () => {
  it('returns exactly the keys asked for, empty when the order has none, shaped as the SCU structured the sequence', () => {
    const { keys } = parseWorklistIdentifier({
      PatientName: '',
      PatientID: '',
      AccessionNumber: '',
      RequestedProcedureCodeSequence: [],
      ...sps({ Modality: '', ScheduledStationAETitle: '', ScheduledProcedureStepStartDate: '', ScheduledPerformingPhysicianName: '', ScheduledProcedureStepStatus: '' }),
    });
    const answer = responseIdentifier(keys, item());
    expect(answer).toMatchObject({
      SpecificCharacterSet: 'ISO_IR 192',
      PatientName: [{ Alphabetic: 'Nguyễn^Văn An' }],
      PatientID: 'BN001',
      AccessionNumber: 'ACC1',
      RequestedProcedureCodeSequence: [{ CodeValue: 'GASTRO', CodingSchemeDesignator: '99HOSP', CodeMeaning: 'Gastroscopy' }],
    });
    const [step] = answer['ScheduledProcedureStepSequence'] as Array<Record<string, unknown>>;
    expect(Object.keys(step!).filter((k) => !k.startsWith('_')).sort()).toEqual(
      ['Modality', 'ScheduledPerformingPhysicianName', 'ScheduledProcedureStepStartDate', 'ScheduledProcedureStepStatus', 'ScheduledStationAETitle'].sort(),
    );
    expect(step).toMatchObject({ Modality: 'ES', ScheduledStationAETitle: 'ENDO1', ScheduledProcedureStepStartDate: '20240315', ScheduledProcedureStepStatus: 'SCHEDULED' });
    expect(step!['ScheduledPerformingPhysicianName']).toBeNull();
    expect(Object.keys(answer).filter((k) => !k.startsWith('_')).sort()).toEqual(
      ['AccessionNumber', 'PatientID', 'PatientName', 'RequestedProcedureCodeSequence', 'ScheduledProcedureStepSequence', 'SpecificCharacterSet'].sort(),
    );
  });

  it('returns a sequence sent without an item whole, and leaves Specific Character Set out when every value is ASCII', () => {
    const { keys } = parseWorklistIdentifier({ PatientName: '', ScheduledProcedureStepSequence: [], OtherPatientIDsSequence: [] });
    const answer = responseIdentifier(keys, item({ requestedProcedureDescription: 'Gastroscopy' }, 'Nguyen^Van An'));
    expect(answer['SpecificCharacterSet']).toBeUndefined();
    const [step] = answer['ScheduledProcedureStepSequence'] as Array<Record<string, unknown>>;
    expect(step).toMatchObject({ Modality: 'ES', ScheduledProcedureStepStartTime: '093000', ScheduledProcedureStepID: 'SPS1', ScheduledProcedureStepDescription: 'Gastroscopy' });
    expect(answer['OtherPatientIDsSequence']).toMatchObject([{ PatientID: '001080012345', IssuerOfPatientID: 'VN-CCCD', TypeOfPatientID: 'TEXT' }]);
  });

  it('says STARTED for a step in progress (PS3.3 C.4.10)', () => {
    const { keys } = parseWorklistIdentifier(sps({ ScheduledProcedureStepStatus: '' }));
    const [step] = responseIdentifier(keys, item({ status: 'IN PROGRESS' }))['ScheduledProcedureStepSequence'] as Array<Record<string, unknown>>;
    expect(step!['ScheduledProcedureStepStatus']).toBe('STARTED');
  });

  it('keeps the query for the audit record with sequence item keys spelled out', () => {
    expect(worklistAuditKeys({ PatientName: 'Nguyễn*', ...sps({ Modality: 'ES', ScheduledStationAETitle: '' }) })).toEqual({
      PatientName: 'Nguyễn*',
      'ScheduledProcedureStepSequence.Modality': 'ES',
      'ScheduledProcedureStepSequence.ScheduledStationAETitle': '',
    });
  });
});
