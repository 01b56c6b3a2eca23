/** Tiny DOM helpers (no framework): element creation and in-page messages (in the page's language). */
import { t } from '../i18n/i18n.js';

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | undefined> = {},
  ...children: Array<Node | string | undefined>
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') el.className = String(v);
    else if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== undefined) el.append(c);
  return el;
}

/** A clear message in the page (role=alert): failures are shown, never a blank or frozen view. */
export function errorBox(message: string, retry?: () => void): HTMLElement {
  const box = h('div', { class: 'error', role: 'alert' }, h('strong', { text: t('common:error') }), message);
  if (retry !== undefined) {
    const button = h('button', { type: 'button', text: t('common:retry') });
    button.addEventListener('click', retry);
    box.append(' ', button);
  }
  return box;
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  // Browser image decoders reject with a bare `error` Event.
  if (typeof Event !== 'undefined' && err instanceof Event) return t('common:imageUndecodable');
  return String(err);
}

/** The page-wide banner for failures outside any view (uncaught errors). */
export function showBanner(message: string): void {
  const banner = document.getElementById('banner');
  if (banner === null) return;
  banner.replaceChildren(errorBox(message));
  banner.hidden = false;
}
