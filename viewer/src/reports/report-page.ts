/**
 * The reports of a study (`#/study/{uid}/report`) and the report editor (`#/study/{uid}/report/{id}`,
 * one version: `…/{id}/version/{n}`). The list shows each report's kind, state and versions, and makes
 * a new draft of a chosen kind. The editor shows the version's form (endoscopy, pathology, radiology),
 * editable while it is a draft: Save draft (PUT with the revision it was loaded at: a draft saved
 * meanwhile is a 409, shown, and nothing is overwritten), Sign (a confirmation first; a user without the
 * `sign` permission is told so), Amend a final report (a new draft version; the versions before stay
 * readable, a superseded one marked), Download PDF. Failures are messages in the page.
 *
 * Whether the user may sign is known only by asking: the archive's `/api` says whether sign-in is on,
 * not what the user's roles allow. Sign is therefore offered on every draft; a 403 is explained and
 * turns the button off for the rest of the session.
 */
import { errorBox, h, messageOf } from '../ui/dom.js';
import { formatDateTime, onLanguageChange, t } from '../i18n/i18n.js';
import './reports.css';
import type { ReportContent, ReportJson, ReportKind, ReportVersionJson } from '../../../server/src/contracts/reports.js';
import { endoscopyForm } from './endoscopy-form.js';
import type { Kit } from './form-kit.js';
import { pathologyForm } from './pathology-form.js';
import { radiologyForm } from './radiology-form.js';
import { cleanContent, KINDS, label, problemsOf, versionStatusLabel } from './report-model.js';
import { aiFindings, amendReport, createReport, getReport, getVersion, ReportApiError, saveReport, signReport, signRefusedText, studyReports, versionPdf } from './reports-client.js';
import { loadStudyImages, type StudyImages } from './study-images.js';

/** Set once the server refused this user a signature (403): Sign stays off until the page reloads. */
let signRefused = false;

const reportsUrl = (study: string) => `#/study/${study}/report`;
const reportUrl = (study: string, id: string, version?: number) => `#/study/${study}/report/${id}${version === undefined ? '' : `/version/${version}`}`;
const when = (iso: string | null | undefined) => (iso === null || iso === undefined ? '' : formatDateTime(iso));
const person = (p: { subject: string; name: string | null } | null | undefined) => (p === null || p === undefined ? '' : (p.name ?? p.subject));

export async function renderReportPage(root: HTMLElement, study: string, reportId: string | undefined, version: number | undefined): Promise<() => void> {
  const header = h('div', { class: 'report-header' }, h('a', { href: `#/study/${study}`, text: t('reports:backToStudy') }));
  const body = h('div', { class: 'report-body' }, h('p', { class: 'muted loading', text: t('common:loading') }));
  root.replaceChildren(h('div', { class: 'report-page' }, header, body));
  let images: StudyImages;
  try {
    images = await loadStudyImages(study);
  } catch (err) {
    body.replaceChildren(errorBox(messageOf(err), () => void renderReportPage(root, study, reportId, version)));
    return () => undefined;
  }
  const hd = images.header;
  header.append(
    ' ',
    reportId === undefined ? '' : h('a', { href: reportsUrl(study), text: t('reports:allReports') }),
    h('div', { class: 'patient' }, h('strong', { id: 'report-patient', text: hd.patient }), ` ${hd.patientId}`, h('span', { class: 'muted', text: ` · ${hd.date} ${hd.description}` })),
  );
  if (reportId === undefined) {
    await renderList(body, study, images);
    return () => undefined;
  }
  return renderEditor(body, study, images, reportId, version);
}

// ---------------------------------------------------------------------------------------------------
// The study's reports

function defaultKind(modalities: string[]): ReportKind {
  if (modalities.includes('SM')) return 'pathology';
  if (modalities.some((m) => m === 'ES' || m === 'XC' || m === 'GM')) return 'endoscopy';
  return 'radiology';
}

async function renderList(body: HTMLElement, study: string, images: StudyImages): Promise<void> {
  const kind = h('select', { id: 'report-kind', name: 'kind' }, ...KINDS.map((k) => h('option', { value: k, text: label(k) })));
  kind.value = defaultKind(images.header.modalities);
  const create = h('button', { type: 'button', id: 'report-create', text: t('reports:newDraft') });
  const message = h('div', { class: 'report-message' });
  create.addEventListener('click', async () => {
    create.disabled = true;
    message.replaceChildren();
    try {
      const created = await createReport(study, kind.value as ReportKind);
      location.hash = reportUrl(study, created.id);
    } catch (err) {
      message.replaceChildren(errorBox(messageOf(err)));
      create.disabled = false;
    }
  });
  const list = h('div', { class: 'report-list' }, h('p', { class: 'muted', text: t('reports:loadingReports') }));
  body.replaceChildren(h('h2', { text: t('reports:title') }), list, h('h3', { text: t('reports:newReport') }), h('div', { class: 'report-row' }, h('label', { for: 'report-kind', text: t('reports:kind') }), kind, ' ', create), message);
  try {
    const reports = await studyReports(study);
    list.replaceChildren(reports.length === 0 ? h('p', { class: 'muted', id: 'no-reports', text: t('reports:none') }) : reportTable(study, reports));
  } catch (err) {
    list.replaceChildren(errorBox(messageOf(err)));
  }
}

function reportTable(study: string, reports: ReportJson[]): HTMLElement {
  return h(
    'table',
    { class: 'study-table report-table' },
    h('thead', {}, h('tr', {}, ...[t('reports:col.kind'), t('reports:col.state'), t('reports:col.versions'), t('reports:col.created'), t('reports:col.signedBy'), ''].map((text) => h('th', { text })))),
    h(
      'tbody',
      {},
      ...reports.map((r) => {
        const inForce = r.versions.find((v) => v.version === r.signedVersion);
        return h(
          'tr',
          { 'data-report': r.id, 'data-status': r.status },
          h('td', { text: label(r.kind) }),
          h('td', {}, statusBadge(r.status), r.amendmentInProgress ? h('span', { class: 'muted', text: t('reports:amendmentInProgress') }) : undefined),
          h('td', {}, ...r.versions.map((v) => h('a', { href: reportUrl(study, r.id, v.version), class: `version-link status-${v.status}`, 'data-version': v.version, text: `v${v.version} ${label(v.status).toLowerCase()}` }))),
          h('td', { text: `${when(r.createdAt)} ${person(r.createdBy)}` }),
          h('td', { text: inForce?.signature ? `${person(inForce.signature.signer)}, ${when(inForce.signature.signedAt)}` : '' }),
          h('td', {}, h('a', { href: reportUrl(study, r.id), class: 'open-report', text: r.version.status === 'draft' ? t('reports:edit') : t('reports:open') })),
        );
      }),
    ),
  );
}

const statusBadge = (status: string) => h('span', { class: `report-status status-${status}`, 'data-status': status, text: status === 'draft' || status === 'final' || status === 'superseded' ? versionStatusLabel(status) : label(status) });

// ---------------------------------------------------------------------------------------------------
// The editor

function renderEditor(body: HTMLElement, study: string, images: StudyImages, id: string, wanted: number | undefined): () => void {
  let report: ReportJson | undefined;
  let shown: ReportVersionJson | undefined;
  let content: ReportContent | undefined;
  let dirty = false;
  let busy = false;
  let destroyed = false;
  let offered: Awaited<ReturnType<typeof aiFindings>> = [];

  const message = h('div', { class: 'report-message', id: 'report-message', 'aria-live': 'polite' });
  const toolbar = h('div', { class: 'report-toolbar toolbar' });
  const info = h('div', { class: 'report-info' });
  const formBox = h('div', { class: 'report-form-box' });
  body.replaceChildren(h('h2', { id: 'report-title', text: t('reports:report') }), info, toolbar, message, formBox);

  const say = (text: string) => message.replaceChildren(h('p', { class: 'report-ok', role: 'status', text }));
  const fail = (err: unknown, retry?: () => void) => message.replaceChildren(errorBox(messageOf(err), retry));
  const warnUnsaved = (e: BeforeUnloadEvent) => {
    if (dirty) e.preventDefault();
  };
  window.addEventListener('beforeunload', warnUnsaved);

  const latest = () => report?.version;
  const editable = () => shown !== undefined && shown.status === 'draft' && shown.version === latest()?.version;

  const show = (next: ReportJson, version?: ReportVersionJson) => {
    report = next;
    shown = version ?? next.version;
    content = structuredClone(shown.content) as ReportContent;
    dirty = false;
    render();
  };

  const load = async () => {
    try {
      const [r, ai] = await Promise.all([getReport(id), aiFindings(study).catch(() => [])]);
      if (r.studyInstanceUid !== study) throw new Error(t('reports:otherStudy'));
      offered = ai;
      const version = wanted === undefined || wanted === r.latestVersion ? undefined : await getVersion(id, wanted);
      if (!destroyed) show(r, version);
    } catch (err) {
      if (!destroyed) {
        formBox.replaceChildren();
        fail(err, () => void load());
      }
    }
  };

  const kit: Kit = {
    readOnly: true,
    changed() {
      if (!dirty) {
        dirty = true;
        renderToolbar();
      }
    },
  };

  const render = () => {
    if (report === undefined || shown === undefined || content === undefined) return;
    const title = document.getElementById('report-title');
    if (title !== null) title.textContent = t('reports:reportOfKind', { kind: label(report.kind) });
    renderInfo();
    renderToolbar();
    kit.readOnly = !editable();
    formBox.replaceChildren(formFor(kit, study, images, content, offered));
  };

  const renderInfo = () => {
    if (report === undefined || shown === undefined) return;
    const r = report;
    const v = shown;
    const lines: Array<HTMLElement | undefined> = [];
    lines.push(
      h(
        'div',
        { class: 'report-row' },
        h('span', { text: t('reports:version', { version: v.version }) }),
        statusBadge(v.status),
        h('span', { class: 'muted', id: 'report-revision', 'data-revision': v.revision, text: t('reports:revision', { revision: v.revision, when: when(v.updatedAt), who: person(v.updatedBy) }) }),
      ),
    );
    lines.push(
      h(
        'nav',
        { class: 'report-versions', 'aria-label': t('reports:versionsLabel') },
        h('span', { class: 'muted', text: t('reports:versions') }),
        ...r.versions.map((item) =>
          h('a', {
            href: reportUrl(r.studyInstanceUid, r.id, item.version === r.latestVersion ? undefined : item.version),
            class: `version-link status-${item.status}`,
            'data-version': item.version,
            'data-status': item.status,
            'aria-current': item.version === v.version ? 'page' : undefined,
            text: `v${item.version} ${versionStatusLabel(item.status).toLowerCase()}${item.signature ? ` (${person(item.signature.signer)}, ${when(item.signature.signedAt)})` : ''}`,
          }),
        ),
      ),
    );
    if (v.status === 'superseded') {
      lines.push(
        h('div', { class: 'superseded-note', id: 'superseded-note', role: 'note' }, h('strong', { text: t('reports:supersededTitle') }), t('reports:supersededBy', { version: v.supersededBy ?? '?', when: when(v.supersededAt) }), h('a', { href: reportUrl(r.studyInstanceUid, r.id), text: t('reports:openCurrent') })),
      );
    }
    if (v.amends !== null) lines.push(h('div', { class: 'muted', id: 'amendment-reason', text: t('reports:amends', { version: v.amends, reason: v.amendmentReason ?? '' }) }));
    if (v.signature !== null) {
      lines.push(
        h(
          'div',
          { class: 'signature', id: 'report-signature' },
          t('reports:signedBy'),
          h('strong', { id: 'report-signer', text: person(v.signature.signer) }),
          t('reports:signedOn', { when: when(v.signature.signedAt) }),
          h('div', { class: 'muted hash', text: t('reports:hash', { hash: v.signature.contentSha256 }) }),
        ),
      );
    }
    if (v.dicom !== null) {
      lines.push(
        v.dicom.stored
          ? h('div', { class: 'muted', id: 'report-stored', text: t('reports:stored') })
          : h('div', { class: 'error', id: 'report-not-stored', text: t('reports:notStored') }),
      );
    }
    info.replaceChildren(...lines.filter((l): l is HTMLElement => l !== undefined));
  };

  const renderToolbar = () => {
    if (report === undefined || shown === undefined) return;
    const r = report;
    const v = shown;
    const buttons: HTMLElement[] = [];
    if (editable()) {
      const save = h('button', { type: 'button', id: 'report-save', text: dirty ? t('reports:saveDraftDirty') : t('reports:saveDraft'), disabled: busy });
      save.addEventListener('click', () => void saveDraft());
      buttons.push(save);
      const sign = h('button', { type: 'button', id: 'report-sign', text: t('reports:sign'), disabled: busy || signRefused, title: signRefused ? signRefusedText() : t('reports:signTitle') });
      sign.addEventListener('click', () => confirmSign());
      buttons.push(sign);
    }
    if (v.status === 'final' && v.version === r.latestVersion) {
      const amend = h('button', { type: 'button', id: 'report-amend', text: t('reports:amend'), disabled: busy });
      amend.addEventListener('click', () => askAmendment());
      buttons.push(amend);
    }
    if (v.dicom !== null && !v.dicom.stored) {
      const store = h('button', { type: 'button', id: 'report-store', text: t('reports:store'), disabled: busy });
      store.addEventListener('click', () => void sign());
      buttons.push(store);
    }
    const pdf = h('button', { type: 'button', id: 'report-pdf', text: v.status === 'draft' ? t('reports:pdfDraft') : t('reports:pdf'), disabled: busy });
    pdf.addEventListener('click', () => void download());
    buttons.push(pdf);
    if (dirty) buttons.push(h('span', { class: 'muted', id: 'report-dirty', text: t('reports:unsaved') }));
    // Unsaved changes survive a language change: the page is not rendered again (main.ts), the form is (below).
    body.toggleAttribute('data-keep-on-language-change', dirty);
    toolbar.replaceChildren(...buttons);
  };

  const run = async (task: () => Promise<void>) => {
    if (busy) return;
    busy = true;
    renderToolbar();
    try {
      await task();
    } finally {
      busy = false;
      renderToolbar();
    }
  };

  /** Saves the form; true when saved (or nothing to save). */
  const persist = async (): Promise<boolean> => {
    if (report === undefined || shown === undefined || content === undefined) return false;
    const cleaned = cleanContent(content);
    const problems = problemsOf(cleaned);
    if (problems.length > 0) {
      message.replaceChildren(errorBox(t('reports:notSaved', { problems: problems.join('; ') })));
      return false;
    }
    try {
      const saved = await saveReport(report.id, cleaned, shown.revision);
      show(saved);
      return true;
    } catch (err) {
      if (err instanceof ReportApiError && err.status === 409) {
        // Keep what the user typed; offer to load the version saved meanwhile.
        const reload = h('button', { type: 'button', id: 'report-reload', text: t('reports:reload') });
        reload.addEventListener('click', () => {
          dirty = false;
          void load().then(() => say(t('reports:reloaded')));
        });
        message.replaceChildren(h('div', { class: 'error', role: 'alert', id: 'report-conflict' }, h('strong', { text: t('reports:conflict') }), err.message, ' ', reload));
      } else fail(err);
      return false;
    }
  };

  const saveDraft = () =>
    run(async () => {
      if (await persist()) say(t('reports:saved', { revision: shown?.revision ?? '?' }));
    });

  const confirmSign = () => {
    if (shown === undefined) return;
    const ok = h('button', { type: 'button', id: 'report-sign-confirm', text: t('reports:signConfirm', { version: shown.version }) });
    const cancel = h('button', { type: 'button', text: t('common:cancel') });
    const pending = (content?.kind === 'endoscopy' ? (content.aiFindings ?? []) : []).filter((f) => f.decision === 'pending').length;
    cancel.addEventListener('click', () => message.replaceChildren());
    ok.addEventListener('click', () => void sign());
    message.replaceChildren(
      h(
        'div',
        { class: 'confirm', role: 'dialog', 'aria-label': t('reports:signDialog') },
        h('p', {
          text: `${t('reports:signText')}${dirty ? t('reports:signUnsaved') : ''}${pending > 0 ? t('reports:signPending', { count: pending }) : ''}`,
        }),
        ok,
        ' ',
        cancel,
      ),
    );
    ok.focus();
  };

  /** Signs the draft at the revision shown (saving unsaved changes first); on a signed version not yet stored, stores it. */
  const sign = () =>
    run(async () => {
      if (report === undefined) return;
      if (dirty && !(await persist())) return;
      try {
        const signed = await signReport(report.id, shown?.status === 'draft' ? shown.revision : undefined);
        show(signed);
        const v = signed.version;
        say(v.dicom?.stored === false ? t('reports:signedNotStored', { version: v.version }) : t('reports:signedStored', { version: v.version }));
      } catch (err) {
        if (err instanceof ReportApiError && err.status === 403) {
          signRefused = true;
          message.replaceChildren(h('div', { class: 'error', role: 'alert', id: 'sign-refused' }, h('strong', { text: t('reports:notSigned') }), signRefusedText()));
        } else {
          fail(err);
          // A 503 leaves the version signed but not stored: show that state.
          if (err instanceof ReportApiError && err.status === 503) void load();
        }
      }
    });

  const askAmendment = () => {
    const reason = h('textarea', { id: 'amend-reason', rows: 2, maxlength: 1000, placeholder: t('reports:amendPlaceholder') });
    const ok = h('button', { type: 'button', id: 'amend-confirm', text: t('reports:amendCreate') });
    const cancel = h('button', { type: 'button', text: t('common:cancel') });
    cancel.addEventListener('click', () => message.replaceChildren());
    ok.addEventListener('click', () =>
      void run(async () => {
        if (report === undefined) return;
        if (reason.value.trim() === '') {
          reason.setCustomValidity(t('reports:amendRequired'));
          reason.reportValidity();
          return;
        }
        try {
          const amended = await amendReport(report.id, reason.value);
          show(amended);
          say(t('reports:amended', { version: amended.version.version, amends: amended.version.amends ?? '?' }));
        } catch (err) {
          fail(err);
        }
      }),
    );
    reason.addEventListener('input', () => reason.setCustomValidity(''));
    message.replaceChildren(h('div', { class: 'confirm', role: 'dialog', 'aria-label': t('reports:amendDialog') }, h('label', { for: 'amend-reason', text: t('reports:amendReason') }), reason, h('div', {}, ok, ' ', cancel)));
    reason.focus();
  };

  const download = () =>
    run(async () => {
      if (report === undefined || shown === undefined) return;
      try {
        const blob = await versionPdf(report.id, shown.version);
        const url = URL.createObjectURL(blob);
        const a = h('a', { href: url, download: `report-${report.kind}-v${shown.version}${shown.status === 'draft' ? '-draft' : ''}.pdf`, hidden: true });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60_000);
      } catch (err) {
        fail(err);
      }
    });

  // With unsaved changes the editor re-renders its form from the content being edited, in the new language.
  const stopTranslating = onLanguageChange(() => {
    if (dirty && !destroyed) render();
  });
  void load();
  return () => {
    destroyed = true;
    stopTranslating();
    window.removeEventListener('beforeunload', warnUnsaved);
  };
}

function formFor(kit: Kit, study: string, images: StudyImages, content: ReportContent, offered: Awaited<ReturnType<typeof aiFindings>>): HTMLElement {
  switch (content.kind) {
    case 'endoscopy':
      return endoscopyForm(kit, study, images, offered, content);
    case 'pathology':
      return pathologyForm(kit, study, images, content);
    case 'radiology':
      return radiologyForm(kit, study, images, content);
  }
}
