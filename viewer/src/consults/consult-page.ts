/**
 * One consult (`#/consult/{id}`): what the specialist opens, through the consult link (link mode, no
 * account) or signed in as the named specialist. The question and who asks it, the case study
 * (`caseStudyInstanceUid`: the de-identified copy, under its pseudonym) in the ordinary study view, and
 * the answer form: a text and the regions drawn on the case's stack images with the measurement tools
 * (area: a closed outline, A; length: a line, L), taken as image-pixel points of the case's instances,
 * and on its whole-slide images with the slide viewer's "Draw region" (offered while this page is up:
 * polygons in the total pixel matrix, wsi/slide-regions.ts) (`POST /consults/{id}/answer`, docs/api.md
 * "Consults"). Once answered the page shows the answer.
 * Opened by the requester, it shows the question and the answer on the original study instead.
 *
 * Changing series re-renders the case only, never the page: the text being written and the regions
 * drawn on other series stay.
 */
import { formatDateTime, t } from '../i18n/i18n.js';
import { errorBox, h, messageOf } from '../ui/dom.js';
import { renderStudyView } from '../viewer/study-view.js';
import { answerConsult, getConsult, type ConsultJson } from './consults-client.js';
import { toRegion, type Drawn } from './consult-format.js';
import { answerView, consultTimes, statusBadge } from './consults-page.js';
import { drawnOnSlides, offerSlideRegionDrawing, onDrawnOnSlides, removeSlideRegion } from '../wsi/slide-regions.js';
import './consults.css';

/** The API's limit on the regions of an answer (server/src/contracts/sharing.ts AnswerConsultBody). */
const MAX_REGIONS = 100;

export async function renderConsultPage(root: HTMLElement, id: string): Promise<() => void> {
  root.replaceChildren(h('p', { class: 'muted', role: 'status', text: t('common:loading') }));
  let consult: ConsultJson;
  try {
    consult = await getConsult(id);
  } catch (err) {
    root.replaceChildren(errorBox(messageOf(err), () => void renderConsultPage(root, id)));
    return () => undefined;
  }
  const disposers: Array<() => void> = [];
  const brief = h('section', { class: 'consult-brief', 'aria-label': t('consult:brief'), 'data-consult': consult.id });
  const caseBox = h('div', { class: 'consult-case' });
  // A language change keeps this page as it is (the answer being written, the regions drawn, main.ts).
  root.replaceChildren(h('div', { class: 'consult-page', 'data-keep-on-language-change': true }, brief, caseBox));

  const requester = consult.originalStudyInstanceUid !== null;
  const header = (c: ConsultJson) => [
    h('h1', { text: t('consult:caseTitle') }),
    h('p', {}, statusBadge(c), ' ', h('span', { text: t('consult:askedBy', { name: c.requestedBy.name ?? c.requestedBy.subject }) })),
    h('p', { class: 'consult-message', 'data-testid': 'consult-message', text: c.message }),
    h('p', { class: 'muted' }, c.deidentified ? t('consult:deidentifiedCase') : t('consult:asStored'), ' · ', t('consult:linkUntil', { date: formatDateTime(c.expiresAt) })),
    consultTimes(c),
  ];

  if (requester) {
    // The requester's own consult: the answer on the original study, and the way to it.
    const study = consult.originalStudyInstanceUid!;
    brief.replaceChildren(...header(consult), answerView(consult, study) ?? h('p', { class: 'muted', text: t('consult:notAnswered') }), h('p', {}, h('a', { href: `#/study/${study}`, 'data-action': 'open-original', text: t('consult:openOriginal') })));
    caseBox.remove();
    brief.parentElement?.classList.add('requester');
    return () => undefined;
  }

  // The specialist: the case in the study view (no way out of it: no study list, no reports).
  let disposeCase: () => void = () => undefined;
  let caseGeneration = 0;
  const showCase = async (series: string | undefined) => {
    caseGeneration += 1;
    const mine = caseGeneration;
    disposeCase();
    disposeCase = () => undefined;
    const dispose = await renderStudyView(caseBox, consult.caseStudyInstanceUid, series, (s) => void showCase(s), {
      header: (studyHeader) => studyHeader.replaceChildren(h('strong', { text: t('consult:caseStudy') })),
    });
    if (mine !== caseGeneration) dispose();
    else disposeCase = dispose;
  };
  disposers.push(() => disposeCase());

  // Regions drawn on any stack of the case, kept across series (keyed by annotation).
  const drawn = new Map<string, Drawn>();
  const labels = new Map<string, string>();
  const regionList = h('ol', { class: 'consult-regions', 'data-testid': 'consult-regions' });
  const regionsEmpty = h('p', { class: 'muted', text: t('consult:noRegionsYet') });
  let removeDrawn: (uid: string) => void = () => undefined;
  const renderRegions = () => {
    regionsEmpty.hidden = drawn.size > 0;
    regionList.replaceChildren(
      ...[...drawn.values()].map((m, i) => {
        const label = h('input', { type: 'text', maxlength: 64, value: labels.get(m.uid) ?? '', placeholder: t('consult:regionLabel'), 'aria-label': t('consult:regionLabelOf', { n: i + 1 }) });
        label.addEventListener('input', () => labels.set(m.uid, label.value));
        const remove = h('button', { type: 'button', text: '✕', 'aria-label': t('consult:removeRegion', { n: i + 1 }), 'data-action': 'remove-region' });
        remove.addEventListener('click', () => {
          drawn.delete(m.uid);
          if (m.type === 'slide') removeSlideRegion(m.uid);
          else removeDrawn(m.uid);
          renderRegions();
        });
        const kind = m.type === 'area' ? t('consult:regionArea') : m.type === 'slide' ? t('consult:regionSlide') : t('consult:regionLine');
        return h('li', { 'data-region': m.uid, 'data-type': m.type, 'data-sop': m.sop }, h('span', { text: kind }), ' ', label, ' ', remove);
      }),
    );
  };

  const text = h('textarea', { id: 'consult-answer', name: 'answer', rows: 6, maxlength: 8000, required: true });
  const send = h('button', { type: 'submit', text: t('consult:sendAnswer'), 'data-action': 'send-answer' });
  const status = h('div', { role: 'status', 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'consult-answer-form' },
    h('h2', { text: t('consult:yourAnswer') }),
    h('p', { class: 'muted', text: t('consult:drawHelp') }),
    h('p', { class: 'muted', text: t('consult:drawHelpSlide') }),
    regionsEmpty,
    regionList,
    h('label', { for: 'consult-answer', text: t('consult:answerText') }),
    text,
    h('div', { class: 'consult-actions' }, send),
    status,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (drawn.size > MAX_REGIONS) {
      status.replaceChildren(errorBox(t('consult:tooManyRegions', { max: MAX_REGIONS })));
      return;
    }
    send.disabled = true;
    status.replaceChildren(h('span', { class: 'muted', text: t('consult:sendingAnswer') }));
    try {
      const regions = [...drawn.values()].map((m) => toRegion(m, labels.get(m.uid)));
      consult = await answerConsult(consult.id, { text: text.value.trim(), regions });
      showAnswered();
    } catch (err) {
      status.replaceChildren(errorBox(messageOf(err)));
      send.disabled = false;
    }
  });

  const showAnswered = () => {
    brief.replaceChildren(...header(consult), h('p', { class: 'consult-done', 'data-testid': 'answered', role: 'status', text: t('consult:answeredDone') }), answerView(consult, consult.caseStudyInstanceUid) ?? '');
  };
  if (consult.status === 'answered') showAnswered();
  else brief.replaceChildren(...header(consult), form);

  if (consult.status !== 'answered') {
    // Slides of the case offer "Draw region" while this page is up; its polygons are regions too.
    offerSlideRegionDrawing(true);
    const collectSlides = () => {
      const now = drawnOnSlides();
      const ids = new Set(now.map((r) => r.uid));
      for (const [uid, m] of drawn) if (m.type === 'slide' && !ids.has(uid)) drawn.delete(uid);
      for (const r of now) drawn.set(r.uid, { uid: r.uid, type: 'slide', sop: r.sop, series: r.series, points: r.points });
      renderRegions();
    };
    const stopSlides = onDrawnOnSlides(collectSlides);
    disposers.push(() => {
      stopSlides();
      offerSlideRegionDrawing(false);
    });
  }
  await showCase(undefined);
  if (consult.status !== 'answered') {
    try {
      // The imaging module (Cornerstone) is loaded by the stack display already; here only its drawn shapes.
      const imaging = await import('../imaging/cornerstone.js');
      removeDrawn = imaging.removeDrawn;
      const collect = () => {
        // The shown stacks say what is on their series now; regions of series not shown stay as they were.
        const now = imaging.drawnOnStacks();
        const shown = new Set(now.series);
        for (const [uid, m] of drawn) if (shown.has(m.series) && !now.measurements.some((n) => n.uid === uid)) drawn.delete(uid);
        for (const m of now.measurements) drawn.set(m.uid, m);
        renderRegions();
      };
      // Cornerstone's events come before its annotation state settles (a drawing closes on release).
      const stop = imaging.onDrawnOnStacks(() => setTimeout(collect, 0));
      disposers.push(stop);
      collect();
    } catch (err) {
      status.replaceChildren(errorBox(messageOf(err)));
    }
  }
  return () => {
    caseGeneration += 1;
    for (const d of disposers) d();
  };
}
