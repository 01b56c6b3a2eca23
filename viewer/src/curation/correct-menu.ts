/**
 * The study view's "Correct" menu (docs/api.md "Curation"): reject a series or the image shown (IHE
 * IOCM, with one of the four reasons of CID 7011), move series to another study or patient, split the
 * study, merge it into another, delete. The viewer cannot know the user's permissions in advance
 * (auth/session.ts has no roles), so the menu is always there and a refusal says which permission is
 * missing (curation-client.ts). The dialogs' code (curation-dialogs.ts) is fetched on first use.
 *
 * After an action the page is rendered again from the server (QIDO counts, metadata and ETags are
 * right at once), and what was done is said above the menu (`#curation-flash`) on that new page.
 * This module is in the study view's first chunk: it has no stylesheet of its own (curation.css comes
 * with the dialogs), the list's layout is set through the CSSOM (allowed by the page's CSP).
 */
import { h } from '../ui/dom.js';
import { t } from '../i18n/i18n.js';
import { takeFlash, type CorrectAction, type CorrectContext } from './curation-nav.js';

const ITEMS: Array<{ action: CorrectAction; key: string }> = [
  { action: 'reject-series', key: 'curation:menu.rejectSeries' },
  { action: 'reject-instance', key: 'curation:menu.rejectInstance' },
  { action: 'move', key: 'curation:menu.move' },
  { action: 'split', key: 'curation:menu.split' },
  { action: 'merge', key: 'curation:menu.merge' },
  { action: 'delete', key: 'curation:menu.delete' },
];

/** Adds the menu (and the last action's message) to the study header's slot. */
export function addCorrectMenu(slot: HTMLElement, context: CorrectContext): void {
  const flash = takeFlash(context.study);
  if (flash !== undefined) {
    const message = h('p', { id: 'curation-flash', class: 'curation-flash', role: 'status' }, flash.text);
    if (flash.link !== undefined) message.append(' ', h('a', { href: flash.link.href, text: flash.link.text }));
    slot.append(message);
  }
  const list = h('div', { class: 'correct-items', role: 'menu' });
  Object.assign(list.style, { display: 'flex', flexDirection: 'column', alignItems: 'flex-start', gap: '0.25rem', padding: '0.4rem 0 0.2rem 0.6rem' });
  const menu = h('details', { class: 'correct-menu', id: 'correct-menu' }, h('summary', { text: t('curation:menu.title') }), list);
  for (const item of ITEMS) {
    const button = h('button', { type: 'button', role: 'menuitem', id: `correct-${item.action}`, text: t(item.key) });
    button.addEventListener('click', () => {
      menu.open = false;
      void import('./curation-dialogs.js').then(({ openCurationDialog }) => openCurationDialog(item.action, context));
    });
    list.append(button);
  }
  list.append(h('p', { class: 'muted small', text: t('curation:menu.note') }));
  slot.append(menu);
}
