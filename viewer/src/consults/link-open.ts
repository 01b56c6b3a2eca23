/**
 * Link mode's start (main.ts, instead of sign-in): the page is a consult link's URL (`/s/{token}`).
 * The link is opened with `POST /share/{token}/session` (a PIN asked for when the link has one); its
 * `share.…` credential is kept by auth/session.ts (memory and this tab's sessionStorage) and sent as
 * the Bearer of every request; the page then shows the link's consult (`#/consult/{id}`). A link that
 * cannot be opened (expired, revoked, locked after wrong PINs) is said so in the page.
 */
import { linkSession, linkToken, setLinkSession } from '../auth/session.js';
import { t } from '../i18n/i18n.js';
import { errorBox, h, messageOf } from '../ui/dom.js';
import { ConsultApiError, openShareLink } from './consults-client.js';

/**
 * Resolves `true` once the link is open (the hash then names the link's consult), `false` when the page
 * shows why it cannot be (nothing more to render). Waits for the PIN when the link has one.
 */
export async function openLinkMode(root: HTMLElement): Promise<boolean> {
  const token = linkToken();
  if (token === undefined) return false;
  document.body.classList.add('link-mode');
  const existing = linkSession();
  if (existing !== undefined) {
    showHome(existing.home);
    return true;
  }
  root.replaceChildren(h('p', { class: 'muted', role: 'status', text: t('consult:opening') }));
  return new Promise<boolean>((resolve) => {
    const attempt = async (pin?: string, form?: { status: HTMLElement; button: HTMLButtonElement }) => {
      try {
        const session = await openShareLink(token, pin);
        if (session.view.purpose !== 'consult' || session.view.consultId === null) {
          root.replaceChildren(errorBox(t('consult:notConsultLink')));
          resolve(false);
          return;
        }
        const home = `#/consult/${session.view.consultId}`;
        setLinkSession({ accessToken: session.accessToken, expiresAt: session.expiresAt, home });
        showHome(home);
        resolve(true);
      } catch (err) {
        const code = err instanceof ConsultApiError ? err.code : undefined;
        if (code === 'PIN_REQUIRED' || code === 'PIN_INVALID') {
          if (form === undefined) root.replaceChildren(pinForm((entered, f) => void attempt(entered, f)));
          else {
            form.status.replaceChildren(errorBox(messageOf(err)));
            form.button.disabled = false;
          }
          return;
        }
        if (form !== undefined && code === 'PIN_LOCKED') {
          form.status.replaceChildren(errorBox(messageOf(err)));
          return;
        }
        root.replaceChildren(errorBox(messageOf(err), () => location.reload()));
        resolve(false);
      }
    };
    void attempt();
  });
}

function showHome(home: string): void {
  if (!location.hash.startsWith('#/consult/')) history.replaceState(null, '', location.pathname + home);
}

function pinForm(submit: (pin: string, form: { status: HTMLElement; button: HTMLButtonElement }) => void): HTMLElement {
  const input = h('input', { id: 'link-pin', name: 'pin', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', required: true, maxlength: 6 });
  const button = h('button', { type: 'submit', text: t('consult:pinOpen') });
  const status = h('div', { role: 'status', 'aria-live': 'polite' });
  const form = h('form', { class: 'consult-pin' }, h('h2', { text: t('consult:pinTitle') }), h('p', { text: t('consult:pinHelp') }), h('label', { for: 'link-pin', text: t('consult:pinLabel') }), ' ', input, ' ', button, status);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    button.disabled = true;
    status.replaceChildren();
    submit(input.value.trim(), { status, button });
  });
  return form;
}
