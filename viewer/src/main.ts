/**
 * Entry point and router. The URL hash carries UIDs only (`#/study/{uid}[/series/{uid}]`): patient
 * names and IDs never appear in the page URL, so they cannot end up in logs or browser history.
 */
import { renderStudyBrowser } from './browser/study-browser.js';
import { renderStudyView } from './viewer/study-view.js';
import { renderLiveRoom } from './live/live-room.js';
import { errorBox, messageOf, showBanner } from './ui/dom.js';

const app = document.getElementById('app') as HTMLElement;
const UID = /^[0-9.]{1,64}$/;
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
    if (parts[0] === 'study' && parts[1] !== undefined && UID.test(parts[1])) {
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

window.addEventListener('hashchange', () => void route());
window.addEventListener('error', (e) => showBanner(`Unexpected error: ${e.message}`));
window.addEventListener('unhandledrejection', (e) => {
  // Cornerstone's decoders can reject outside any promise we await: still say what happened.
  e.preventDefault();
  showBanner(e.reason instanceof Event ? `This image ${messageOf(e.reason).replace(/^an image /, '')}` : `Unexpected error: ${messageOf(e.reason)}`);
});
void route();
