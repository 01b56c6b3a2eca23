/**
 * Entry point and router. The URL hash carries UIDs only (`#/study/{uid}[/series/{uid}]`, reports:
 * `#/study/{uid}/report[/{id}[/version/{n}]]`, quality figures: `#/quality`, storage: `#/storage`, curation: `#/curation`): patient
 * names and IDs never appear in the page URL, so they cannot end up in logs or browser history.
 */
import { renderStudyBrowser } from './browser/study-browser.js';
import { renderStudyView } from './viewer/study-view.js';
import { renderLiveRoom } from './live/live-room.js';
import { authEnabled, linkMode, linkSession, onSessionChange, signedInName, signIn, signOut, startAuth } from './auth/session.js';
import { addConsultButton } from './consults/consult-button.js';
import { addCorrectMenu } from './curation/correct-menu.js';
import { errorBox, h, messageOf, showBanner } from './ui/dom.js';
import { initI18n, languageSwitch, onLanguageChange, t } from './i18n/i18n.js';

const app = document.getElementById('app') as HTMLElement;
const UID = /^[0-9.]{1,64}$/;
const REPORT_ID = /^[A-Za-z0-9-]{1,64}$/;
let teardown: (() => void) | undefined;
let generation = 0;

async function route(): Promise<void> {
  generation += 1;
  const mine = generation;
  teardown?.();
  teardown = undefined;
  const banner = document.getElementById('banner');
  if (banner !== null) banner.hidden = true;
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  try {
    if (linkMode() && parts[0] !== 'consult') {
      // A consult link reaches its consult only.
      location.hash = linkSession()?.home ?? '';
    } else if (parts[0] === 'study' && parts[1] !== undefined && UID.test(parts[1]) && parts[2] === 'report') {
      // Reports of the study, a report (`…/report/{id}`) or one of its versions (`…/report/{id}/version/{n}`).
      const report = parts[3] !== undefined && REPORT_ID.test(parts[3]) ? parts[3] : undefined;
      const version = parts[4] === 'version' && /^[1-9][0-9]{0,5}$/.test(parts[5] ?? '') ? Number(parts[5]) : undefined;
      const { renderReportPage } = await import('./reports/report-page.js');
      if (mine !== generation) return;
      const dispose = await renderReportPage(app, parts[1], report, version);
      if (mine !== generation) dispose();
      else teardown = dispose;
    } else if (parts[0] === 'consult' && parts[1] !== undefined && REPORT_ID.test(parts[1])) {
      // A consult asked of the specialist (through its link, or signed in), or one's own.
      const { renderConsultPage } = await import('./consults/consult-page.js');
      if (mine !== generation) return;
      const dispose = await renderConsultPage(app, parts[1]);
      if (mine !== generation) dispose();
      else teardown = dispose;
    } else if (parts[0] === 'consults') {
      const { renderConsultsPage } = await import('./consults/consults-page.js');
      if (mine === generation) teardown = renderConsultsPage(app);
    } else if (parts[0] === 'storage') {
      const { renderStoragePage } = await import('./storage/storage-page.js');
      if (mine === generation) teardown = renderStoragePage(app);
    } else if (parts[0] === 'curation') {
      const { renderCurationPage } = await import('./curation/curation-page.js');
      if (mine === generation) teardown = renderCurationPage(app);
    } else if (parts[0] === 'quality') {
      const { renderQualityPage } = await import('./reports/quality-page.js');
      if (mine === generation) teardown = renderQualityPage(app);
    } else if (parts[0] === 'study' && parts[1] !== undefined && UID.test(parts[1])) {
      const study = parts[1];
      const series = parts[2] === 'series' && parts[3] !== undefined && UID.test(parts[3]) ? parts[3] : undefined;
      const dispose = await renderStudyView(app, study, series, (s) => (location.hash = `#/study/${study}/series/${s}`), { header: addConsultButton, actions: addCorrectMenu });
      if (mine !== generation) dispose();
      else teardown = dispose;
    } else if (parts[0] === 'live') {
      teardown = renderLiveRoom(app);
    } else {
      renderStudyBrowser(app, (study, series) => (location.hash = series === undefined ? `#/study/${study}` : `#/study/${study}/series/${series}`));
    }
  } catch (err) {
    app.replaceChildren(errorBox(messageOf(err)));
  }
}

/** "Signed in as …" and Sign out in the page header (only with sign-in on). */
function renderAuthStatus(): void {
  const status = document.getElementById('auth-status');
  if (status === null) return;
  const name = signedInName();
  if (!authEnabled() || name === undefined) {
    status.hidden = true;
    return;
  }
  const button = h('button', { id: 'sign-out', type: 'button', text: t('auth:signOut') });
  button.addEventListener('click', async () => {
    button.disabled = true;
    teardown?.();
    teardown = undefined;
    try {
      // Normally the provider ends its session and sends the browser back here, then to its login.
      if ((await signOut()) === 'local') showSignedOut();
    } catch (err) {
      button.disabled = false;
      showBanner(t('auth:signOutFailed', { message: messageOf(err) }));
    }
  });
  status.replaceChildren(t('auth:signedInAs'), h('strong', { id: 'auth-user', text: name }), ' ', button);
  status.hidden = false;
}

/** After a local sign-out (a provider without end_session_endpoint): nothing is shown until sign-in. */
function showSignedOut(): void {
  generation += 1;
  const again = h('button', { id: 'sign-in', type: 'button', text: t('auth:signIn') });
  again.addEventListener('click', () => void signIn());
  app.replaceChildren(h('div', { class: 'signed-out', role: 'status' }, h('p', { text: t('auth:signedOut') }), again));
}

window.addEventListener('error', (e) => showBanner(t('common:unexpectedError', { message: e.message })));
window.addEventListener('unhandledrejection', (e) => {
  // Cornerstone's decoders can reject outside any promise we await: still say what happened.
  e.preventDefault();
  showBanner(e.reason instanceof Event ? t('common:thisImageUndecodable') : t('common:unexpectedError', { message: messageOf(e.reason) }));
});

/** The header's static texts (index.html) in the page's language, and the language switch. */
function renderHeader(): void {
  document.title = t('common:pageTitle');
  const set = (id: string, text: string) => {
    const el = document.getElementById(id);
    if (el !== null) el.textContent = text;
  };
  set('brand-sub', t('common:viewer'));
  set('nav-studies', t('common:nav.studies'));
  set('nav-live', t('common:nav.live'));
  set('nav-quality', t('common:nav.quality'));
  set('nav-consults', t('consult:nav'));
  set('nav-storage', t('storage:nav'));
  set('nav-curation', t('curation:nav'));
  document.getElementById('top-nav')?.setAttribute('aria-label', t('common:nav.label'));
}

/** Set once the pages are shown: a language change then renders the current page again, in place. */
let routing = false;

function startI18n(): void {
  initI18n();
  renderHeader();
  const slot = document.getElementById('lang-switch-slot');
  if (slot !== null && slot.childElementCount === 0) slot.append(languageSwitch());
  onLanguageChange(() => {
    renderHeader();
    renderAuthStatus();
    // The same route again (the URL is the place; the study browser keeps its search and page). A page
    // with work that a new render would lose (a report with unsaved changes, a live session) marks
    // itself and updates its own texts or keeps them until the user leaves it.
    if (routing && app.querySelector('[data-keep-on-language-change]') === null) void route();
  });
}

async function start(): Promise<void> {
  startI18n();
  let ready: boolean;
  try {
    // Sign-in first when the server requires it (src/auth); with it off this only reads /api. A consult
    // link's page (/s/{token}) signs nobody in: it opens the link (consults/link-open.ts).
    if (linkMode()) {
      const nav = document.getElementById('top-nav');
      if (nav !== null) nav.hidden = true;
      ready = await (await import('./consults/link-open.js')).openLinkMode(app);
    } else ready = await startAuth();
  } catch (err) {
    app.replaceChildren(errorBox(messageOf(err), () => location.reload()));
    return;
  }
  if (!ready) {
    // (A link that could not be opened has said why in the page.)
    if (!linkMode()) app.replaceChildren(h('p', { class: 'muted', role: 'status', text: t('auth:signingIn') }));
    return;
  }
  onSessionChange(renderAuthStatus);
  renderAuthStatus();
  window.addEventListener('hashchange', () => void route());
  routing = true;
  void route();
}
void start();
