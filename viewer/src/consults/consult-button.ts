/**
 * "Ask for a second opinion" in the study header (main.ts gives it to the study view). The viewer cannot
 * know the user's permissions (roles map to them on the server), so the button is always there; a user
 * without `share` is told so plainly by the dialog when the server refuses (403). The dialog's code is
 * loaded on the first click.
 */
import { t } from '../i18n/i18n.js';
import { h, showBanner, messageOf } from '../ui/dom.js';

export function addConsultButton(header: HTMLElement, study: string): void {
  const button = h('button', { type: 'button', id: 'ask-consult', class: 'link-button', text: t('consult:askButton') });
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const { openConsultDialog } = await import('./consult-dialog.js');
      await openConsultDialog(study);
    } catch (err) {
      showBanner(messageOf(err));
    } finally {
      button.disabled = false;
    }
  });
  header.append(' · ', button);
}
