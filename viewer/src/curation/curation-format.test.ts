import { describe, expect, it } from 'vitest';
import type { RejectedJson } from '../../../server/src/contracts/curation.js';
import { initI18n, setLanguage } from '../i18n/i18n.js';
import { asUid, confirmsDeletion, detailText, groupByNote, reasonText, recentActions, rejectersByNote, type AuditRecordJson } from './curation-format.js';

const entry = (sop: string, note: string, series: string, rejectedAt: string, kind: RejectedJson['kind'] = 'rejected'): RejectedJson => ({
  sopInstanceUid: sop,
  studyInstanceUid: '1.2.3',
  seriesInstanceUid: series,
  sopClassUid: '1.2.840.10008.5.1.4.1.1.7',
  kind,
  reason: { code: '113037', scheme: 'DCM', meaning: 'Rejected for Patient Safety Reasons' },
  noteUid: note,
  rejectedAt,
  purgeAfter: '2026-02-01T00:00:00.000Z',
  purgedAt: null,
  stored: true,
});

const record = (id: number, action: string, time: string, detail: AuditRecordJson['detail'], status = 200, name?: string): AuditRecordJson => ({
  id,
  time,
  action,
  outcome: status < 400 ? 0 : 4,
  status,
  who: { subject: `sub-${id}`, kind: 'token', ...(name === undefined ? {} : { name }) },
  clientAddress: '127.0.0.1',
  interface: 'curation',
  route: 'POST /curation/rejections',
  objects: [{ study: '1.2.3' }],
  ...(detail === undefined ? {} : { detail }),
  atna: { eventId: { code: '110103', codeSystemName: 'DCM', meaning: 'DICOM Instances Accessed' }, eventActionCode: 'U' },
});

describe('curation formatting', () => {
  it('groups rejected instances by note, newest first, leaving voided notes out', () => {
    const groups = groupByNote([entry('1', 'n1', 's1', '2026-01-01T10:00:00Z'), entry('2', 'n1', 's2', '2026-01-01T10:00:00Z'), entry('3', 'n2', 's1', '2026-01-02T10:00:00Z'), entry('4', 'n3', 's9', '2026-01-03T10:00:00Z', 'voided-note')]);
    expect(groups.map((g) => [g.noteUid, g.instances.length, g.seriesInstanceUids])).toEqual([
      ['n2', 1, ['s1']],
      ['n1', 2, ['s1', 's2']],
    ]);
  });

  it('finds who wrote each note in the audit trail, refused requests left out', () => {
    const by = rejectersByNote([record(3, 'reject', '2026-01-01T10:00:02Z', { noteUid: 'n1', reason: '113037', rejected: 2 }, 200, 'dr.admin'), record(2, 'reject', '2026-01-01T10:00:01Z', { noteUid: 'n2' }, 403)]);
    expect([...by]).toEqual([['n1', 'dr.admin']]);
  });

  it('merges actions newest first and words their details', async () => {
    initI18n();
    await setLanguage('en');
    const merged = recentActions([[record(5, 'reject', '2026-01-01T10:00:05Z', { reason: '113037', rejected: 2 })], [record(7, 'move', '2026-01-01T10:00:07Z', { fromStudy: '1.2.3', toStudy: '1.2.4', series: 1, instances: 2, patientChanged: true, sourceRemoved: false })], [record(5, 'reject', '2026-01-01T10:00:05Z', {})]], 10);
    expect(merged.map((r) => r.id)).toEqual([7, 5]);
    expect(detailText(merged[0]!)).toBe('1 series · 2 images · to study 1.2.4 · patient changed');
    expect(detailText(merged[1]!)).toBe('Rejected for Patient Safety Reasons · 2 rejected');
    await setLanguage('vi');
    expect(reasonText('113037')).toBe('Loại bỏ vì lý do an toàn người bệnh');
    expect(reasonText('999999', 'Other')).toBe('Other');
    await setLanguage('en');
  });

  it('checks the typed confirmation and recognises UIDs', () => {
    expect(confirmsDeletion(' delete ', 'DELETE')).toBe(true);
    expect(confirmsDeletion('xóa', 'XÓA')).toBe(true);
    expect(confirmsDeletion('DELET', 'DELETE')).toBe(false);
    expect(asUid('1.2.840.5')).toBe('1.2.840.5');
    expect(asUid('ACC123')).toBeUndefined();
    expect(asUid('12345')).toBeUndefined();
  });
});
