/**
 * The consults page (`#/consults`): the second opinions I asked for and those asked of me, newest
 * first (`GET /consults?role=requester|specialist`). Each shows its status (requested → viewed →
 * answered), when it was asked, first opened and answered, the turnaround time, the specialist, the
 * question; an answered one its answer and the regions drawn on the images: on the requester's side the
 * ORIGINAL study's images (the server maps the de-identified copy's UIDs back), with a link to open the
 * original study. A consult asked of me opens at `#/consult/{id}` to answer.
 */
import { formatDateTime, t } from '../i18n/i18n.js';
import { errorBox, h, messageOf } from '../ui/dom.js';
import { formatDuration } from './consult-format.js';
import { listConsults, type ConsultJson } from './consults-client.js';
import { regionFigure } from './region-figure.js';
import './consults.css';

export function renderConsultsPage(root: HTMLElement): () => void {
  let live = true;
  const mine = h('section', { class: 'consult-list', 'data-role': 'requester', 'aria-labelledby': 'consults-mine' });
  const asked = h('section', { class: 'consult-list', 'data-role': 'specialist', 'aria-labelledby': 'consults-asked' });
  const refresh = h('button', { type: 'button', id: 'consults-refresh', text: t('consult:refresh') });
  root.replaceChildren(h('div', { class: 'consults-page' }, h('div', { class: 'consults-head' }, h('h1', { text: t('consult:pageTitle') }), refresh), mine, asked));

  const load = async () => {
    refresh.disabled = true;
    await Promise.all(
      ([['requester', mine, 'consults-mine', t('consult:mine'), t('consult:noneMine')], ['specialist', asked, 'consults-asked', t('consult:askedOfMe'), t('consult:noneAsked')]] as const).map(
        async ([role, section, id, title, none]) => {
          const heading = h('h2', { id, text: title });
          section.replaceChildren(heading, h('p', { class: 'muted', text: t('common:loading') }));
          try {
            const consults = await listConsults(role);
            if (!live) return;
            section.replaceChildren(heading, ...(consults.length === 0 ? [h('p', { class: 'muted', text: none })] : consults.map((c) => consultItem(c, role))));
          } catch (err) {
            if (live) section.replaceChildren(heading, errorBox(messageOf(err)));
          }
        },
      ),
    );
    refresh.disabled = false;
  };
  refresh.addEventListener('click', () => void load());
  void load();
  return () => {
    live = false;
  };
}

export function statusBadge(consult: ConsultJson): HTMLElement {
  return h('span', { class: `consult-badge status-${consult.status}`, 'data-testid': 'consult-status', text: t(`consult:status.${consult.status}`) });
}

/** The times of a consult: asked, opened, answered, turnaround. */
export function consultTimes(consult: ConsultJson): HTMLElement {
  const row = (key: string, label: string, value: string | null) => [h('dt', { text: label }), h('dd', { 'data-time': key, text: value ?? '—' })];
  return h(
    'dl',
    { class: 'consult-times' },
    ...row('requested', t('consult:requestedAt'), formatDateTime(consult.requestedAt)),
    ...row('viewed', t('consult:viewedAt'), consult.viewedAt === null ? null : formatDateTime(consult.viewedAt)),
    ...row('answered', t('consult:answeredAt'), consult.answeredAt === null ? null : formatDateTime(consult.answeredAt)),
    ...row('turnaround', t('consult:turnaround'), consult.turnaroundSeconds === null ? null : formatDuration(consult.turnaroundSeconds)),
  );
}

function consultItem(consult: ConsultJson, role: 'requester' | 'specialist'): HTMLElement {
  const specialist = `${consult.specialist.name}${consult.specialist.contact === null ? '' : ` (${consult.specialist.contact})`}`;
  const who =
    role === 'requester'
      ? t('consult:askedOf', { name: specialist })
      : t('consult:askedBy', { name: consult.requestedBy.name ?? consult.requestedBy.subject });
  const links: HTMLElement[] = [];
  if (role === 'requester' && consult.originalStudyInstanceUid !== null) links.push(h('a', { href: `#/study/${consult.originalStudyInstanceUid}`, 'data-action': 'open-original', text: t('consult:openOriginal') }));
  if (role === 'specialist') links.push(h('a', { href: `#/consult/${consult.id}`, 'data-action': 'open-case', text: consult.status === 'answered' ? t('consult:openCase') : t('consult:openToAnswer') }));
  const answerStudy = role === 'requester' ? (consult.originalStudyInstanceUid ?? consult.caseStudyInstanceUid) : consult.caseStudyInstanceUid;
  return h(
    'article',
    { class: 'consult-item', 'data-consult': consult.id, 'data-status': consult.status },
    h('header', {}, statusBadge(consult), ' ', h('strong', { text: who })),
    h('p', { class: 'consult-message', 'data-testid': 'consult-message', text: consult.message }),
    h('p', { class: 'muted' }, consult.deidentified ? t('consult:deidentifiedCopy') : t('consult:asStored'), ' · ', t('consult:linkUntil', { date: formatDateTime(consult.expiresAt) })),
    consultTimes(consult),
    consult.answer === null ? undefined : answerView(consult, answerStudy),
    links.length === 0 ? undefined : h('p', { class: 'consult-links' }, ...links),
  );
}

/** The answer: its text, who and when, and each region on its image. */
export function answerView(consult: ConsultJson, study: string): HTMLElement | undefined {
  const answer = consult.answer;
  if (answer === null) return undefined;
  return h(
    'section',
    { class: 'consult-answer', 'aria-label': t('consult:answer') },
    h('h3', { text: t('consult:answerBy', { name: answer.answeredBy.name ?? answer.answeredBy.subject, date: formatDateTime(answer.answeredAt) }) }),
    h('p', { class: 'consult-answer-text', 'data-testid': 'answer-text', text: answer.text }),
    answer.regions.length === 0 ? h('p', { class: 'muted', text: t('consult:noRegions') }) : h('div', { class: 'region-figures' }, ...answer.regions.map((r, i) => regionFigure(study, r, i))),
  );
}
