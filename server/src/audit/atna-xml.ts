/**
 * An audit record as a DICOM Audit Message (PS3.15 A.5.1 schema, the format of IHE ATNA): one
 * EventIdentification, the requesting user and this archive as ActiveParticipants, the
 * AuditSourceIdentification, and one ParticipantObjectIdentification per study (or the query).
 * Codes: DCM (PS3.16) for events, roles and object ID types; RFC-3881 for the URI object ID type.
 */
import { atnaEventOf, type AuditObject, type AuditRecord } from './audit-record.js';

export interface AuditSource {
  /** AuditSourceID and this archive's UserID (e.g. "filmless-pacs"). */
  sourceId: string;
  /** This machine (NetworkAccessPointID of the archive). */
  hostname: string;
  /** DIMSE AE title of the archive, when DIMSE is on. */
  aeTitle?: string;
}

export interface XmlOptions {
  /** Leave out the Instance elements (keep counts): for transports with a size limit (UDP syslog). */
  compact?: boolean;
}

/** Requestor's role for each action (PS3.15 A.5.3): who is the source of the data and who the destination. */
function requestorRole(record: AuditRecord): 'source' | 'destination' | undefined {
  switch (record.action) {
    case 'store':
    case 'query':
    case 'live-session-start':
    case 'live-session-end':
      return 'source';
    // The push: the record's `who` is the EMR that received the data (`FHIR:<base URL>`); this archive is the source.
    case 'fhir-push':
      return 'destination';
    // A report's PDF (Export): the user it was exported to is the destination.
    case 'report-export':
    case 'study-export':
      return 'destination';
    case 'retrieve':
      return 'destination';
    default:
      return undefined;
  }
}

const ROLE = {
  source: { code: '110153', meaning: 'Source Role ID' },
  destination: { code: '110152', meaning: 'Destination Role ID' },
} as const;

export function auditMessageXml(record: AuditRecord, source: AuditSource, options: XmlOptions = {}): string {
  const event = atnaEventOf(record);
  const role = requestorRole(record);
  const archiveRole = role === 'source' ? 'destination' : role === 'destination' ? 'source' : undefined;
  const lines: string[] = ['<?xml version="1.0" encoding="UTF-8"?>', '<AuditMessage>'];

  lines.push(
    `  <EventIdentification EventActionCode="${event.actionCode}" EventDateTime="${new Date(record.time).toISOString()}" EventOutcomeIndicator="${record.outcome}">`,
    `    ${code('EventID', event.code, 'DCM', event.meaning)}`,
    `    ${code('EventTypeCode', record.action, '99FILMLESS', `${record.action} (${record.interface} ${record.route})`)}`,
  );
  if (record.outcome !== 0) lines.push(`    <EventOutcomeDescription>${text(`status ${record.status}`)}</EventOutcomeDescription>`);
  lines.push('  </EventIdentification>');

  // The requesting user (or calling AE) at the client's address.
  const isAe = record.who.kind === 'dimse';
  const userAttributes = [
    attr('UserID', record.who.subject),
    isAe ? attr('AlternativeUserID', `AETITLES=${record.who.name ?? record.who.subject.replace(/^AE:/, '')}`) : '',
    !isAe && record.who.name !== undefined ? attr('UserName', record.who.name) : '',
    attr('UserIsRequestor', 'true'),
    record.clientAddress === '' ? '' : `${attr('NetworkAccessPointID', record.clientAddress)}${attr('NetworkAccessPointTypeCode', '2')}`,
  ].join('');
  lines.push(`  <ActiveParticipant${userAttributes}>`);
  if (role !== undefined) lines.push(`    ${code('RoleIDCode', ROLE[role].code, 'DCM', ROLE[role].meaning)}`);
  lines.push('  </ActiveParticipant>');

  // This archive.
  const archiveAttributes = [
    attr('UserID', source.sourceId),
    source.aeTitle === undefined ? '' : attr('AlternativeUserID', `AETITLES=${source.aeTitle}`),
    attr('UserIsRequestor', 'false'),
    attr('NetworkAccessPointID', source.hostname),
    attr('NetworkAccessPointTypeCode', '1'),
  ].join('');
  if (archiveRole === undefined) lines.push(`  <ActiveParticipant${archiveAttributes}/>`);
  else lines.push(`  <ActiveParticipant${archiveAttributes}>`, `    ${code('RoleIDCode', ROLE[archiveRole].code, 'DCM', ROLE[archiveRole].meaning)}`, '  </ActiveParticipant>');

  lines.push(
    `  <AuditSourceIdentification${attr('AuditSourceID', source.sourceId)}>`,
    `    ${code('AuditSourceTypeCode', '4', 'DCM', 'Application Server Process Tier in a Multi-tier System')}`,
    '  </AuditSourceIdentification>',
  );

  // The query (ATNA Query message: a system object in the role of a query, its text base64).
  if (record.query !== undefined) {
    const dimse = record.interface === 'dimse';
    lines.push(
      `  <ParticipantObjectIdentification${attr('ParticipantObjectID', dimse ? (record.detail?.['sopClass'] as string | undefined) ?? record.route : record.route.replace(/^\S+ /, ''))}${attr('ParticipantObjectTypeCode', '2')}${attr('ParticipantObjectTypeCodeRole', '24')}>`,
      dimse ? `    ${code('ParticipantObjectIDTypeCode', '110181', 'DCM', 'SOP Class UID')}` : `    ${code('ParticipantObjectIDTypeCode', '12', 'RFC-3881', 'URI')}`,
      `    <ParticipantObjectQuery>${Buffer.from(JSON.stringify({ level: record.query.level, keys: record.query.keys }), 'utf8').toString('base64')}</ParticipantObjectQuery>`,
      `    <ParticipantObjectDetail${attr('type', 'QueryEncoding')}${attr('value', Buffer.from('UTF-8').toString('base64'))}/>`,
      '  </ParticipantObjectIdentification>',
    );
  }

  // The patients of Patient Record / Order Record events (PS3.15 A.5.3: Person, role Patient, Patient Number).
  for (const patient of new Set(record.objects.map((object) => object.patient).filter((id): id is string => id !== undefined && id !== ''))) {
    lines.push(
      `  <ParticipantObjectIdentification${attr('ParticipantObjectID', patient)}${attr('ParticipantObjectTypeCode', '1')}${attr('ParticipantObjectTypeCodeRole', '1')}>`,
      `    ${code('ParticipantObjectIDTypeCode', '2', 'RFC-3881', 'Patient Number')}`,
      '  </ParticipantObjectIdentification>',
    );
  }

  // One participant object per study, with its instances grouped by SOP class.
  const byStudy = new Map<string, AuditObject[]>();
  for (const object of record.objects.filter((o) => o.study !== undefined || o.instance !== undefined)) {
    const key = object.study ?? '';
    byStudy.set(key, [...(byStudy.get(key) ?? []), object]);
  }
  for (const [study, objects] of byStudy) {
    const instances = objects.filter((object) => object.instance !== undefined);
    const series = [...new Set(objects.map((object) => object.series).filter((uid): uid is string => uid !== undefined))];
    if (study === '') {
      // Instances whose study is unknown (a refused C-STORE): named by SOP Instance UID.
      for (const object of instances) {
        lines.push(
          `  <ParticipantObjectIdentification${attr('ParticipantObjectID', object.instance!)}${attr('ParticipantObjectTypeCode', '2')}${attr('ParticipantObjectTypeCodeRole', '3')}>`,
          `    ${code('ParticipantObjectIDTypeCode', '110181', 'DCM', 'SOP Class UID')}`,
          ...(object.sopClass === undefined ? [] : [`    <ParticipantObjectDescription><SOPClass${attr('UID', object.sopClass)}${attr('NumberOfInstances', '1')}/></ParticipantObjectDescription>`]),
          '  </ParticipantObjectIdentification>',
        );
      }
      continue;
    }
    lines.push(
      `  <ParticipantObjectIdentification${attr('ParticipantObjectID', study)}${attr('ParticipantObjectTypeCode', '2')}${attr('ParticipantObjectTypeCodeRole', '3')}>`,
      `    ${code('ParticipantObjectIDTypeCode', '110180', 'DCM', 'Study Instance UID')}`,
    );
    for (const uid of series) lines.push(`    <ParticipantObjectDetail${attr('type', 'SeriesInstanceUID')}${attr('value', Buffer.from(uid).toString('base64'))}/>`);
    if (instances.length > 0) {
      const byClass = new Map<string, string[]>();
      for (const object of instances) byClass.set(object.sopClass ?? '', [...(byClass.get(object.sopClass ?? '') ?? []), object.instance!]);
      lines.push('    <ParticipantObjectDescription>');
      for (const [sopClass, uids] of byClass) {
        const head = `      <SOPClass${sopClass === '' ? '' : attr('UID', sopClass)}${attr('NumberOfInstances', String(uids.length))}`;
        if (options.compact === true) lines.push(`${head}/>`);
        else lines.push(`${head}>`, ...uids.map((uid) => `        <Instance${attr('UID', uid)}/>`), '      </SOPClass>');
      }
      lines.push('    </ParticipantObjectDescription>');
    }
    lines.push('  </ParticipantObjectIdentification>');
  }
  lines.push('</AuditMessage>');
  return lines.join('\n');
}

function code(element: string, csdCode: string, system: string, meaning: string): string {
  return `<${element}${attr('csd-code', csdCode)}${attr('codeSystemName', system)}${attr('originalText', meaning)}/>`;
}

function attr(name: string, value: string): string {
  return ` ${name}="${text(value).replace(/"/g, '&quot;')}"`;
}

/** XML text: escaped, and without characters XML 1.0 cannot carry. */
function text(value: string): string {
  return value
    .replace(/[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '\uFFFD')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;');
}
