/**
 * Entry point and router. The URL hash carries UIDs only (`#/study/{uid}[/series/{uid}]`, reports:
 * `#/study/{uid}/report[/{id}[/version/{n}]]`, quality figures: `#/quality`): patient
 * names and IDs never appear in the page URL, so they cannot end up in logs or browser history.
 */
import { renderStudyBrowser } from './browser/study-browser.js';
import { renderStudyView } from './viewer/study-view.js';
import { renderLiveRoom } from './live/live-room.js';
import { authEnabled, onSessionChange, signedInName, signIn, signOut, startAuth } from './auth/session.js';
import { errorBox, h, messageOf, showBanner } from './ui/dom.js';

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
    if (parts[0] === 'study' && parts[1] !== undefined && UID.test(parts[1]) && parts[2] === 'report') {
      // Reports of the study, a report (`…/report/{id}`) or one of its versions (`…/report/{id}/version/{n}`).
      const report = parts[3] !== undefined && REPORT_ID.test(parts[3]) ? parts[3] : undefined;
      const version = parts[4] === 'version' && /^[1-9][0-9]{0,5}$/.test(parts[5] ?? '') ? Number(parts[5]) : undefined;
      const { renderReportPage } = await import('./reports/report-page.js');
      if (mine !== generation) return;
      const dispose = await renderReportPage(app, parts[1], report, version);
      if (mine !== generation) dispose();
      else teardown = dispose;
    } else if (parts[0] === 'quality') {
      const { renderQualityPage } = await import('./reports/quality-page.js');
      if (mine === generation) teardown = renderQualityPage(app);
    } else if (parts[0] === 'study' && parts[1] !== undefined && UID.test(parts[1])) {
      const study = parts[1];
      const series = parts[2] === 'series' && parts[3] !== undefined && UID.test(parts[3]) ? parts[3] : undefined;
      const dispose = await renderStudyView(app, study, series, (s) => (location.hash = `#/study/${study}/series/${s}`));
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
  const button = h('button', { id: 'sign-out', type: 'button', text: 'Sign out' });
  button.addEventListener('click', async () => {
    button.disabled = true;
    teardown?.();
    teardown = undefined;
    try {
      // Normally the provider ends its session and sends the browser back here, then to its login.
      if ((await signOut()) === 'local') showSignedOut();
    } catch (err) {
      button.disabled = false;
      showBanner(`Sign-out failed: ${messageOf(err)}`);
    }
  });
  status.replaceChildren('Signed in as ', h('strong', { id: 'auth-user', text: name }), ' ', button);
  status.hidden = false;
}

/** After a local sign-out (a provider without end_session_endpoint): nothing is shown until sign-in. */
function showSignedOut(): void {
  generation += 1;
  const again = h('button', { id: 'sign-in', type: 'button', text: 'Sign in' });
  again.addEventListener('click', () => void signIn());
  app.replaceChildren(h('div', { class: 'signed-out', role: 'status' }, h('p', { text: 'You are signed out.' }), again));
}

window.addEventListener('error', (e) => showBanner(`Unexpected error: ${e.message}`));
window.addEventListener('unhandledrejection', (e) => {
  // Cornerstone's decoders can reject outside any promise we await: still say what happened.
  e.preventDefault();
  showBanner(e.reason instanceof Event ? `This image ${messageOf(e.reason).replace(/^an image /, '')}` : `Unexpected error: ${messageOf(e.reason)}`);
});

async function start(): Promise<void> {
  let ready: boolean;
  try {
    // Sign-in first when the server requires it (src/auth); with it off this only reads /api.
    ready = await startAuth();
  } catch (err) {
    app.replaceChildren(errorBox(messageOf(err), () => location.reload()));
    return;
  }
  if (!ready) {
    app.replaceChildren(h('p', { class: 'muted', role: 'status', text: 'Signing in…' }));
    return;
  }
  onSessionChange(renderAuthStatus);
  renderAuthStatus();
  window.addEventListener('hashchange', () => void route());
  void route();
}
void start();
