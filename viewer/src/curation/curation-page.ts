/**
 * The curation page (`#/curation`, administrators): the rejected instances not purged yet, one row per
 * rejection note (study, series, reason, when, by whom, purge date) with Restore (the whole note, or
 * one instance of it), and the recent curation actions of the audit trail (rejections, restores,
 * moves, deletions; who, when, what, by UID). "By whom" and the actions come from `/admin/audit`; when
 * the trail cannot be read the rest of the page still works and says so.
 */
import { errorBox, h, messageOf } from '../ui/dom.js';
import { formatDateTime, formatDicomDate, formatPersonName, t } from '../i18n/i18n.js';
import { studyAttributes } from '../dicomweb/client.js';
import { str, TAG, type DicomJson } from '../dicomweb/dicom-json.js';
import { auditRecords, listRejected, restoreInstance, restoreNote } from './curation-client.js';
import { detailText, groupByNote, recentActions, rejectersByNote, whoOf, type AuditRecordJson, type RejectionGroup } from './curation-format.js';
import './curation.css';

const ACTIONS = ['reject', 'restore', 'move', 'delete'] as const;

function table(id: string, caption: string, headers: string[], rows: HTMLElement[]): HTMLElement {
  return h('table', { class: 'curation-table', id }, h('caption', { text: caption }), h('thead', {}, h('tr', {}, ...headers.map((text) => h('th', { scope: 'col', text })))), h('tbody', {}, ...rows));
}

function studyCell(uid: string, attrs: DicomJson | undefined): HTMLElement {
  const link = h('a', { href: `#/study/${uid}`, text: attrs === undefined ? uid : `${formatDicomDate(str(attrs, TAG.StudyDate)) || '—'} ${str(attrs, TAG.StudyDescription) ?? ''}`.trim() });
  return h('td', {}, link, attrs === undefined ? '' : h('div', { class: 'muted small', text: `${formatPersonName(str(attrs, TAG.PatientName)) || t('curation:noName')} · ${str(attrs, TAG.PatientID) ?? ''}` }));
}

export function renderCurationPage(root: HTMLElement): () => void {
  let gone = false;
  const status = h('div', { id: 'curation-status', role: 'status' });
  const rejected = h('section', { id: 'curation-rejected', 'aria-label': t('curation:page.rejected') }, h('p', { class: 'muted', text: t('curation:working') }));
  const actions = h('section', { id: 'curation-actions', 'aria-label': t('curation:page.actions') });
  root.replaceChildren(h('div', { class: 'curation-page' }, h('h2', { text: t('curation:page.title') }), h('p', { class: 'muted', text: t('curation:page.intro') }), status, rejected, actions));

  const load = async () => {
    let entries;
    try {
      entries = await listRejected();
    } catch (err) {
      if (!gone) rejected.replaceChildren(errorBox(messageOf(err), () => void load()));
      actions.replaceChildren();
      return;
    }
    // The audit trail: who rejected, and the recent actions. Its failure leaves the list usable.
    let records: AuditRecordJson[][] | undefined;
    let auditError: string | undefined;
    try {
      records = await Promise.all(ACTIONS.map((a) => auditRecords(a, 50)));
    } catch (err) {
      auditError = messageOf(err);
    }
    const groups = groupByNote(entries);
    const studies = new Map<string, DicomJson | undefined>();
    await Promise.all([...new Set(groups.map((g) => g.studyInstanceUid))].map(async (uid) => studies.set(uid, await studyAttributes(uid).catch(() => undefined))));
    if (gone) return;
    const by = records === undefined ? new Map<string, string>() : rejectersByNote(records[0] ?? []);
    rejected.replaceChildren(...rejectedTable(groups, studies, by, restore));
    actions.replaceChildren(
      h('h3', { text: t('curation:page.actions') }),
      records === undefined
        ? errorBox(t('curation:page.auditUnavailable', { why: auditError ?? '' }))
        : actionsTable(recentActions(records, 30), studies),
    );
  };

  const restore = async (what: { note: string } | { sop: string }, button: HTMLButtonElement) => {
    button.disabled = true;
    status.replaceChildren(h('p', { class: 'muted', text: t('curation:working') }));
    try {
      const out = 'note' in what ? await restoreNote(what.note) : await restoreInstance(what.sop);
      status.replaceChildren(h('p', { class: 'curation-flash', id: 'curation-restored', text: t('curation:page.restored', { count: out.restored.length }) }));
      await load();
    } catch (err) {
      button.disabled = false;
      status.replaceChildren(errorBox(messageOf(err)));
    }
  };

  void load();
  return () => {
    gone = true;
  };
}

function rejectedTable(groups: RejectionGroup[], studies: Map<string, DicomJson | undefined>, by: Map<string, string>, restore: (what: { note: string } | { sop: string }, button: HTMLButtonElement) => Promise<void>): HTMLElement[] {
  const heading = h('h3', { text: t('curation:page.rejected') });
  if (groups.length === 0) return [heading, h('p', { class: 'muted', id: 'curation-none', text: t('curation:page.none') })];
  const rows = groups.map((g) => {
    const all = h('button', { type: 'button', class: 'curation-restore', 'data-note': g.noteUid, text: t('curation:page.restore', { count: g.instances.length }) });
    all.addEventListener('click', () => void restore({ note: g.noteUid }, all));
    const each = h(
      'details',
      {},
      h('summary', { text: t('curation:images', { count: g.instances.length }) }),
      h(
        'ul',
        {},
        ...g.instances.map((i) => {
          const one = h('button', { type: 'button', class: 'curation-restore-one', 'data-sop': i.sopInstanceUid, text: t('curation:page.restoreOne') });
          one.addEventListener('click', () => void restore({ sop: i.sopInstanceUid }, one));
          return h('li', {}, h('code', { text: i.sopInstanceUid }), i.stored ? ' ' : ` ${t('curation:page.notStored')} `, one);
        }),
      ),
    );
    return h(
      'tr',
      { 'data-note': g.noteUid, 'data-study': g.studyInstanceUid, 'data-series': g.seriesInstanceUids.join(' ') },
      studyCell(g.studyInstanceUid, studies.get(g.studyInstanceUid)),
      h('td', {}, ...g.seriesInstanceUids.map((s) => h('div', {}, h('code', { text: s }))), each),
      h('td', { class: 'curation-reason', 'data-reason': g.reason.code, text: t(`curation:reason.${g.reason.code}`, { defaultValue: g.reason.meaning }) }),
      h('td', { text: formatDateTime(g.rejectedAt) }),
      h('td', { class: 'curation-by', text: by.get(g.noteUid) ?? t('curation:page.byUnknown') }),
      h('td', { text: formatDateTime(g.purgeAfter) }),
      h('td', {}, all),
    );
  });
  return [heading, table('curation-rejected-table', t('curation:page.rejectedCaption'), [t('curation:col.study'), t('curation:col.series'), t('curation:col.reason'), t('curation:col.when'), t('curation:col.by'), t('curation:col.purge'), ''], rows)];
}

function actionsTable(records: AuditRecordJson[], studies: Map<string, DicomJson | undefined>): HTMLElement {
  if (records.length === 0) return h('p', { class: 'muted', text: t('curation:page.noActions') });
  const rows = records.map((r) => {
    const study = r.objects.find((o) => o.study !== undefined)?.study;
    return h(
      'tr',
      { 'data-action': r.action, 'data-status': r.status },
      h('td', { text: formatDateTime(r.time) }),
      h('td', { text: t(`curation:action.${r.action}`, { defaultValue: r.action }) + (r.status >= 400 ? ` (${t('curation:page.refused', { status: r.status })})` : '') }),
      h('td', { text: whoOf(r) }),
      study === undefined ? h('td', { text: '—' }) : studyCell(study, studies.get(study)),
      h('td', { text: detailText(r) }),
    );
  });
  return table('curation-actions-table', t('curation:page.actionsCaption'), [t('curation:col.when'), t('curation:col.action'), t('curation:col.by'), t('curation:col.study'), t('curation:col.detail')], rows);
}
