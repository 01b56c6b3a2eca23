/**
 * What the hospital's HL7 v2.5.1 messages become: one hospital-link command each (IHE RAD-1/RAD-12 ADT,
 * RAD-2/RAD-4 ORM and OMI), or a refusal naming the field (AE) or the reason it cannot be processed (AR),
 * and the acknowledgement the HIS reads back.
 */
import { describe, expect, it } from 'vitest';
import type { HisCommand } from '../his/his-model.js';
import { NATIONAL_ID, PATIENT, PRIOR, a40, adt, message, msh, omi, orm, pid, segment } from '../test-support/hl7-messages.js';
import { buildAck } from './hl7-ack.js';
import { mapMessage, type Hl7MappingOptions } from './hl7-mapping.js';
import { parseHl7, headerOf, unescapeHl7, STANDARD_DELIMITERS } from './hl7-message.js';
import { Hl7Rejection, type Hl7Problem } from './hl7-problem.js';

const ISSUERS: Hl7MappingOptions = { patientIdIssuer: 'BVBM', nationalIdIssuer: 'VNM-CCCD' };

function command(text: string, options: Hl7MappingOptions = ISSUERS): HisCommand {
  return mapMessage(parseHl7(Buffer.from(text, 'utf8')), options);
}

/** The refusal of a message: its ack code and its problems as `code LOCATION`. */
function refusal(text: string | Buffer, options: Hl7MappingOptions = ISSUERS): { ack: string; problems: string[]; messages: string[] } {
  try {
    mapMessage(parseHl7(typeof text === 'string' ? Buffer.from(text, 'utf8') : text), options);
  } catch (err) {
    if (!(err instanceof Hl7Rejection)) throw err;
    const where = (p: Hl7Problem) => (p.location === undefined ? '' : ` ${p.location.segment}${p.location.field === undefined ? '' : `-${p.location.field}`}${p.location.component === undefined ? '' : `.${p.location.component}`}`);
    return { ack: err.ackCode, problems: err.problems.map((p) => `${p.code}${where(p)}`), messages: err.problems.map((p) => p.message) };
  }
  throw new Error('the message was accepted');
}

const patient = {
  patientId: PATIENT.patientId,
  issuer: 'BVBM',
  name: `${PATIENT.patientName}^^ÔNG`,
  birthDate: '19800215',
  sex: 'M',
  otherIds: [{ id: NATIONAL_ID.patientId, issuer: 'VNM-CCCD', type: 'TEXT' }],
};

describe('orders from the HIS (ORM^O01, RAD-2)', () => {
  it('a new order (ORC-1 NW) becomes a scheduled order with accession number, procedure, modality, start and referring physician', () => {
    expect(command(orm('NW', 'ORM0001'))).toEqual({
      kind: 'order-new',
      patient,
      order: {
        placerOrderNumber: 'PL20261201001',
        fillerOrderNumber: null,
        accessionNumber: 'ACC26120101',
        requestedProcedureId: 'RP26120101',
        requestedProcedureDescription: 'Nội soi đại tràng & sinh thiết',
        requestedProcedureCode: { value: 'ES-COLO', meaning: 'Nội soi đại tràng & sinh thiết', scheme: '99BVBM' },
        scheduledProcedureStepId: 'SPS26120101',
        scheduledProcedureStepDescription: 'Nội soi đại tràng & sinh thiết',
        modality: 'ES',
        scheduledStationAeTitle: null,
        // OBR-27.4 in local time; the +0700 offset is dropped (the worklist serves local times).
        scheduledStart: '20261202090000',
        // PV1-8 (XCN: ID^family^given^middle^suffix^prefix) → PN Family^Given^Middle^Prefix.
        referringPhysicianName: 'TRẦN^THỊ^BÍCH^BS.',
        performingPhysicianName: null,
        studyInstanceUid: null,
      },
    } satisfies HisCommand);
  });

  it('a changed order (XO) is a change, a cancelled one (CA) a cancel, a discontinued one (DC) a discontinue', () => {
    expect(command(orm('XO', 'ORM0002'))).toMatchObject({ kind: 'order-change', order: { accessionNumber: 'ACC26120101' } });
    expect(command(orm('CA', 'ORM0003'))).toEqual({ kind: 'order-cancel', patient: { patientId: PATIENT.patientId, issuer: 'BVBM' }, placerOrderNumber: 'PL20261201001', accessionNumber: 'ACC26120101', discontinue: false });
    expect(command(orm('DC', 'ORM0004'))).toMatchObject({ kind: 'order-cancel', discontinue: true });
  });

  it('takes the start from ORC-7.4 when OBR-27 is empty, the referring physician from ORC-12 without PV1-8, and the Study Instance UID from ZDS-1', () => {
    const text = orm('NW', 'ORM0005', { obr: { 27: '' } })
      .replace(/\rPV1\|[^\r]*/, '')
      .concat(`${segment('ZDS', { 1: '1.2.826.0.1.3680043.10.1234.99^FILMLESS^Application^DICOM' })}\r`);
    expect(command(text)).toMatchObject({ order: { scheduledStart: '20261202090000', referringPhysicianName: 'LÊ^VĂN^CƯỜNG', studyInstanceUid: '1.2.826.0.1.3680043.10.1234.99' } });
  });

  it('names every missing field of an order in one AE (accession, requested procedure, step, modality, start)', () => {
    const result = refusal(orm('NW', 'ORM0006', { obr: { 18: '', 19: '', 20: '', 24: '', 27: '' } }).replace(/\rORC\|[^\r]*/, `\r${segment('ORC', { 1: 'NW', 2: 'PL1' })}`));
    expect(result.ack).toBe('AE');
    expect(result.problems).toEqual(['101 OBR-18', '101 OBR-19', '101 OBR-20', '101 OBR-24', '101 OBR-27.4']);
    expect(result.messages[0]).toBe('OBR-18 (accession number) is missing');
  });

  it('refuses an order control it does not take (ORC-1 SC) with 103, and a message of two orders whole (100)', () => {
    expect(refusal(orm('SC', 'ORM0007'))).toMatchObject({ ack: 'AE', problems: ['103 ORC-1'] });
    const two = orm('NW', 'ORM0008').concat(`${segment('ORC', { 1: 'NW', 2: 'PL2' })}\r${segment('OBR', { 1: '2', 18: 'ACC2' })}\r`);
    expect(refusal(two)).toMatchObject({ ack: 'AE', problems: ['100 ORC', '100 OBR'] });
  });

  it('refuses an order without PID (100)', () => {
    expect(refusal(orm('NW', 'ORM0009').replace(/\rPID\|[^\r]*/, ''))).toMatchObject({ ack: 'AE', problems: ['100 PID'] });
  });
});

describe('procedures scheduled by the HIS (OMI^O23, RAD-4, v2.5.1)', () => {
  it('reads the DICOM keys from IPC (accession, requested procedure, Study Instance UID, step, modality, station AE) and the start from TQ1-7', () => {
    expect(command(omi('NW', 'OMI0001'))).toMatchObject({
      kind: 'order-new',
      patient: { patientId: PATIENT.patientId, issuer: 'BVBM' },
      order: {
        placerOrderNumber: 'PL20261201002',
        fillerOrderNumber: 'FL20261201002',
        accessionNumber: 'ACC26120102',
        requestedProcedureId: 'RP26120102',
        studyInstanceUid: '1.2.826.0.1.3680043.10.1234.20261201.2',
        scheduledProcedureStepId: 'SPS26120102',
        modality: 'CT',
        scheduledStationAeTitle: 'CT_PHONG2',
        scheduledStart: '202612021430',
        requestedProcedureCode: { value: 'CT-BUNG', meaning: 'CT bụng có cản quang', scheme: '99BVBM' },
      },
    });
  });

  it('points a missing accession number at IPC-1', () => {
    expect(refusal(omi('NW', 'OMI0002', { ipc: { 1: '' } }))).toMatchObject({ ack: 'AE', problems: ['101 IPC-1'] });
  });

  it('refuses a message with two scheduled procedure steps (two IPC) whole', () => {
    const text = omi('NW', 'OMI0003').concat(`${segment('IPC', { 1: 'ACC26120102', 2: 'RP26120102', 4: 'SPS2', 5: 'CT' })}\r`);
    expect(refusal(text)).toMatchObject({ ack: 'AE', problems: ['100 IPC'] });
  });
});

describe('patients from the HIS (ADT, RAD-1 / RAD-12)', () => {
  it.each(['A01', 'A04', 'A08'] as const)('ADT^%s registers or updates the patient with both identifiers, the name in DICOM order, birth date and sex', (event) => {
    expect(command(adt(event, `ADT${event}`))).toEqual({ kind: 'patient-upsert', event, identity: patient });
  });

  it('ADT^A40 merges the prior record number (MRG-1) into the surviving patient', () => {
    expect(command(a40('ADT0040'))).toEqual({ kind: 'patient-merge', prior: { patientId: PRIOR.patientId, issuer: 'BVBM' }, surviving: patient });
  });

  it('refuses an A40 without MRG (100)', () => {
    expect(refusal(a40('ADT0041').replace(/\rMRG\|[^\r]*/, ''))).toMatchObject({ ack: 'AE', problems: ['100 MRG'] });
  });

  it('keeps a Vietnamese name exactly, and a name sent as "" (delete) becomes unknown', () => {
    const identity = (cmd: HisCommand) => (cmd.kind === 'patient-upsert' ? cmd.identity : undefined);
    expect(identity(command(adt('A08', 'ADT0050', { 5: 'ĐẶNG^THỊ NGỌC ÁNH' })))?.name).toBe('ĐẶNG^THỊ NGỌC ÁNH');
    expect(Buffer.from(identity(command(adt('A08', 'ADT0051')))!.name!, 'utf8')).toEqual(Buffer.from(`${PATIENT.patientName}^^ÔNG`, 'utf8'));
    expect(identity(command(adt('A08', 'ADT0052', { 5: '""' })))?.name).toBeNull();
  });

  it('takes the legal name (XPN-7 L) when PID-5 repeats, and decodes HL7 escapes (\\X..\\ as UTF-8)', () => {
    const cmd = command(adt('A08', 'ADT0053', { 5: 'BÉ TÍ^^^^^^N~TR\\XE1BAA6\\N^BẢO AN^^^^^L' }));
    expect(cmd.kind === 'patient-upsert' && cmd.identity.name).toBe('TRẦN^BẢO AN');
  });

  it('maps sex by table 0001 (U unknown, A other) and leaves a birth date known only to the year unknown', () => {
    const identity = (overrides: Record<number, string>) => {
      const cmd = command(adt('A08', 'ADT0054', overrides));
      return cmd.kind === 'patient-upsert' ? cmd.identity : undefined;
    };
    expect(identity({ 8: 'U', 7: '1952' })).toMatchObject({ sex: null, birthDate: null });
    expect(identity({ 8: 'A', 7: '19520101120000+0700' })).toMatchObject({ sex: 'O', birthDate: '19520101' });
    expect(refusal(adt('A08', 'ADT0055', { 8: 'X', 7: 'hôm qua' }))).toMatchObject({ ack: 'AE', problems: ['102 PID-7', '103 PID-8'] });
  });
});

describe('which PID-3 identifier is which', () => {
  const ids = (pid3: string, options: Hl7MappingOptions = ISSUERS) => {
    const cmd = command(adt('A08', 'ADT0060', { 3: pid3 }), options);
    return cmd.kind === 'patient-upsert' ? { key: [cmd.identity.patientId, cmd.identity.issuer], others: cmd.identity.otherIds.map((o) => [o.id, o.issuer]) } : undefined;
  };

  it('gives the configured issuers to identifiers sent without an assigning authority (MR, NNVNM)', () => {
    expect(ids(`${NATIONAL_ID.patientId}^^^^NNVNM~${PATIENT.patientId}^^^^MR`)).toEqual({ key: [PATIENT.patientId, 'BVBM'], others: [[NATIONAL_ID.patientId, 'VNM-CCCD']] });
  });

  it('keeps a passport (PPN) with its authority, unless the hospital link does not accept that issuer', () => {
    const pid3 = `${PATIENT.patientId}^^^BVBM^MR~C1234567^^^VNM^PPN`;
    expect(ids(pid3)?.others).toEqual([['C1234567', 'VNM']]);
    expect(ids(pid3, { ...ISSUERS, acceptedIssuers: ['BVBM', 'VNM-CCCD'] })?.others).toEqual([]);
  });

  it('without configured issuers takes the MR repetition and the national ID by type, each with the authority it carries', () => {
    expect(ids(`${NATIONAL_ID.patientId}^^^VNM-CCCD^NNVNM~${PATIENT.patientId}^^^BVBM^MR`, { patientIdIssuer: '', nationalIdIssuer: '' })).toEqual({
      key: [PATIENT.patientId, 'BVBM'],
      others: [[NATIONAL_ID.patientId, 'VNM-CCCD']],
    });
    expect(ids(PATIENT.patientId, { patientIdIssuer: '', nationalIdIssuer: '' })).toEqual({ key: [PATIENT.patientId, ''], others: [] });
  });

  it('refuses a PID-3 without the hospital record number (another hospital\'s MRN is not ours)', () => {
    const result = refusal(adt('A08', 'ADT0061', { 3: `${PATIENT.patientId}^^^BVXYZ^MR~${NATIONAL_ID.patientId}^^^VNM-CCCD^NNVNM` }));
    expect(result).toMatchObject({ ack: 'AE', problems: ['101 PID-3'] });
    expect(result.messages[0]).toBe('PID-3 holds no patient record number of the assigning authority BVBM (CX-4)');
  });
});

describe('messages this listener cannot process (AR)', () => {
  it.each([
    ['an unsupported message type', message(msh({ type: 'SIU^S12^SIU_S12', controlId: 'X1' }), pid()), '200 MSH-9.1'],
    ['an unsupported ADT event', message(msh({ type: 'ADT^A31^ADT_A05', controlId: 'X2' }), pid()), '201 MSH-9.2'],
    ['an unsupported version', message(msh({ type: 'ADT^A08^ADT_A01', controlId: 'X3', version: '2.8' }), pid()), '203 MSH-12'],
    ['another character set', message(msh({ type: 'ADT^A08^ADT_A01', controlId: 'X4', charset: '8859/1' }), pid()), '103 MSH-18'],
    ['an unknown processing ID', message(msh({ type: 'ADT^A08^ADT_A01', controlId: 'X5', processingId: 'Q' }), pid()), '202 MSH-11'],
    ['no message control ID', message(msh({ type: 'ADT^A08^ADT_A01', controlId: '' }), pid()), '101 MSH-10'],
    ['no MSH first', message(pid(), msh({ type: 'ADT^A08^ADT_A01', controlId: 'X6' })), '100 MSH'],
    ['unusable delimiters', message(msh({ type: 'ADT^A08^ADT_A01', controlId: 'X7' }).replace('MSH|^~\\&|', 'MSH|^^^^|'), pid()), '102 MSH-2'],
  ])('%s', (_what, text, problem) => {
    expect(refusal(text)).toMatchObject({ ack: 'AR', problems: [problem] });
  });

  it('bytes that are not UTF-8 (a Latin-1 name) are refused, and the AR still echoes MSH-10', () => {
    const bytes = Buffer.concat([Buffer.from(`${msh({ type: 'ADT^A08^ADT_A01', controlId: 'X8', charset: '' })}\rPID|1||${PATIENT.patientId}^^^BVBM^MR||`), Buffer.from('NGUY\xC9N', 'latin1'), Buffer.from('\r')]);
    expect(refusal(bytes)).toMatchObject({ ack: 'AR', problems: ['102 MSH-18'] });
    let header;
    try {
      parseHl7(bytes);
    } catch (err) {
      header = headerOf(err);
    }
    expect(header?.controlId).toBe('X8');
  });

  it('a message whose segments use other separators than MSH declares lacks the fields (AE 101/100), nothing applied', () => {
    const text = orm('NW', 'X9').replace(/\r(PID|ORC|OBR)\|([^\r]*)/g, (_m, name: string, rest: string) => `\r${name}#${rest.replaceAll('|', '#')}`);
    const result = refusal(text);
    expect(result.ack).toBe('AE');
    expect(result.problems).toContain('100 PID');
  });
});

describe('escape sequences (HL7 v2.5.1 §2.7)', () => {
  it('decodes the delimiter escapes and \\X..\\, drops highlighting, and refuses charset switches', () => {
    expect(unescapeHl7('A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\F', STANDARD_DELIMITERS)).toBe('A|B^C&D~E\\F');
    expect(unescapeHl7('\\H\\ĐẬM\\N\\ \\XC3A1\\', STANDARD_DELIMITERS)).toBe('ĐẬM á');
    expect(() => unescapeHl7('\\C2842\\x', STANDARD_DELIMITERS)).toThrow();
    expect(() => unescapeHl7('open \\F', STANDARD_DELIMITERS)).toThrow();
  });
});

describe('acknowledgements (HL7 v2.5.1 §2.9, original mode)', () => {
  it('echo MSH-10 in MSA-2, answer to the sender, and carry one ERR per problem with location, table 0357 code and message', () => {
    const header = parseHl7(Buffer.from(orm('NW', 'ORM0100'))).header;
    const ack = buildAck({
      header,
      code: 'AE',
      problems: [{ code: 101, location: { segment: 'OBR', sequence: 1, field: 18 }, message: 'OBR-18 (accession number) is missing' }],
      controlId: 'FLACK1',
      now: new Date(2026, 11, 1, 8, 30, 5),
    });
    const segments = ack.split('\r');
    expect(segments[0]).toMatch(/^MSH\|\^~\\&\|FILMLESS\|RAD\|HIS\|BVBM\|20261201083005[+-]\d{4}\|\|ACK\^O01\^ACK\|FLACK1\|P\|2\.5\.1(\|){6}UNICODE UTF-8$/);
    expect(segments[1]).toBe('MSA|AE|ORM0100|OBR-18 (accession number) is missing');
    expect(segments[2]).toBe('ERR||OBR^1^18^1|101^Required field missing^HL70357|E||||OBR-18 (accession number) is missing');
    expect(segments[3]).toBe('');
  });

  it('answer a message with no usable MSH with an AR that says why', () => {
    const ack = buildAck({ header: null, code: 'AR', problems: [{ code: 100, location: { segment: 'MSH' }, message: 'The message does not start with an MSH segment' }], controlId: 'FLACK2' });
    expect(ack.split('\r').slice(1, 3)).toEqual(['MSA|AR||The message does not start with an MSH segment', 'ERR||MSH|100^Segment sequence error^HL70357|E||||The message does not start with an MSH segment']);
  });
});
