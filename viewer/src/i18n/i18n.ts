/**
 * Vietnamese and English for every page of the viewer and the patient page (i18next: the field's
 * maintained i18n library; i18next-browser-languagedetector picks the language).
 *
 * Language: `?lang=vi|en` in the page URL, else the one chosen before with the switch (localStorage
 * `pacs.lang`), else the browser's (`navigator.languages`), else English. `languageSwitch()` changes it
 * and calls the page's re-render; nothing is reloaded.
 *
 * Texts live in `locales/<namespace>.ts`, one file per part of the viewer, each holding both languages
 * side by side (`{ en: {...}, vi: {...} }`) so a text is never added in one language only
 * (i18n.test.ts checks the key sets match and every `t('ns:key')` in the sources exists). Keys are
 * `namespace:key`; interpolation `{{name}}`; plurals `_one`/`_other` (i18next's Intl.PluralRules:
 * Vietnamese has one form, `_other`).
 *
 * Dates and names as people in Vietnam write them (formatDicomDate, formatPersonName below).
 */
import i18next, { type TOptions } from 'i18next';
import LanguageDetector from 'i18next-browser-languagedetector';
import { NAMESPACES } from './locales/index.js';

export type Language = 'vi' | 'en';
export const LANGUAGES: readonly Language[] = ['vi', 'en'];
const STORAGE_KEY = 'pacs.lang';

function resources(): Record<Language, Record<string, Record<string, unknown>>> {
  const out: Record<Language, Record<string, Record<string, unknown>>> = { vi: {}, en: {} };
  for (const [ns, texts] of Object.entries(NAMESPACES)) {
    out.vi[ns] = texts.vi;
    out.en[ns] = texts.en;
  }
  return out;
}

let ready = false;

/** Sets the language up (synchronously: the texts are bundled). Safe to call more than once. */
export function initI18n(): void {
  if (ready) return;
  ready = true;
  const inBrowser = typeof document !== 'undefined';
  // Outside a browser (unit tests) there is nothing to detect from: English unless set.
  void (inBrowser ? i18next.use(LanguageDetector) : i18next).init({
    resources: resources(),
    ns: Object.keys(NAMESPACES),
    defaultNS: 'common',
    fallbackLng: 'en',
    supportedLngs: [...LANGUAGES],
    nonExplicitSupportedLngs: true,
    load: 'languageOnly',
    initAsync: false,
    // Texts go into the page through textContent (ui/dom.ts `h`), never innerHTML: no double escaping.
    interpolation: { escapeValue: false },
    returnNull: false,
    detection: {
      order: ['querystring', 'localStorage', 'navigator'],
      lookupQuerystring: 'lang',
      lookupLocalStorage: STORAGE_KEY,
      caches: [],
    },
  });
  if (inBrowser) document.documentElement.lang = language();
}

/** The text of `key` (`namespace:key`) in the current language. */
export function t(key: string, options?: TOptions): string {
  initI18n();
  return (options === undefined ? i18next.t(key) : i18next.t(key, options)) as string;
}

/** The language shown now. */
export function language(): Language {
  const lng = (i18next.resolvedLanguage ?? i18next.language ?? 'en').slice(0, 2);
  return lng === 'vi' ? 'vi' : 'en';
}

const listeners = new Set<() => void>();
let changing = false;

/** True while the pages are told of a language change: a display torn down now is rendered again at once. */
export function isLanguageChanging(): boolean {
  return changing;
}

/** Called after every language change (pages re-render themselves). Returns the unsubscribe. */
export function onLanguageChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Switches the language, remembers the choice on this device, and tells the pages. */
export async function setLanguage(lng: Language): Promise<void> {
  initI18n();
  try {
    localStorage.setItem(STORAGE_KEY, lng);
  } catch {
    // Private mode without storage: the choice lasts for this page only.
  }
  // The language shown already (its button pressed again): kept, nothing rendered again.
  if (lng === language() && i18next.language?.slice(0, 2) === lng) return;
  await i18next.changeLanguage(lng);
  if (typeof document !== 'undefined') document.documentElement.lang = lng;
  changing = true;
  try {
    for (const listener of listeners) listener();
  } finally {
    changing = false;
  }
}

/** "Tiếng Việt | English": two buttons, the current one pressed. */
export function languageSwitch(): HTMLElement {
  initI18n();
  const box = document.createElement('span');
  box.className = 'lang-switch';
  box.setAttribute('role', 'group');
  box.setAttribute('aria-label', t('common:language'));
  const render = (): void => {
    // Keep the keyboard user's place: the pressed button gets the focus back after the change.
    const hadFocus = box.contains(document.activeElement);
    box.setAttribute('aria-label', t('common:language'));
    box.replaceChildren(
      ...LANGUAGES.map((lng) => {
        const button = document.createElement('button');
        button.type = 'button';
        button.lang = lng;
        button.dataset.lang = lng;
        button.textContent = lng === 'vi' ? 'Tiếng Việt' : 'English';
        button.setAttribute('aria-pressed', String(language() === lng));
        button.addEventListener('click', () => void setLanguage(lng));
        return button;
      }),
    );
    if (hadFocus) box.querySelector<HTMLButtonElement>(`button[data-lang="${language()}"]`)?.focus();
  };
  render();
  onLanguageChange(render);
  return box;
}

function locale(): string {
  return language() === 'vi' ? 'vi-VN' : 'en-GB';
}

/**
 * A DICOM DA (`YYYYMMDD`) as people write it: `03/06/2026` in Vietnamese (day first, PS3.5 §6.2 DA
 * gives only the stored form), `3 Jun 2026` in English (month spelled out: no day/month ambiguity).
 * Anything that is not a valid date is returned unchanged.
 */
export function formatDicomDate(da: string | undefined): string {
  if (da === undefined || da === '') return '';
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(da.trim()) ?? /^(\d{4})-(\d{2})-(\d{2})/.exec(da.trim());
  if (m === null) return da;
  const date = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  if (Number.isNaN(date.getTime()) || date.getUTCDate() !== Number(m[3])) return da;
  return language() === 'vi'
    ? `${m[3]}/${m[2]}/${m[1]}`
    : new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' }).format(date);
}

/** An order's state (`IN PROGRESS`…) in the page's language; an unknown state as sent. */
export function orderStateText(status: string): string {
  return t(`common:orderState.${status.replace(/ /g, '_')}`, { defaultValue: status });
}

/** A DICOM TM (`HHMMSS.frac`) as `10:15`. */
export function formatDicomTime(tm: string | undefined): string {
  const m = /^(\d{2})(\d{2})?/.exec((tm ?? '').trim());
  if (m === null) return tm ?? '';
  return `${m[1]}:${m[2] ?? '00'}`;
}

/** An instant (ISO 8601) in local time: `06/12/2026 09:40` (vi) or `6 Dec 2026, 09:40` (en). */
export function formatDateTime(iso: string | undefined): string {
  if (iso === undefined || iso === '') return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  if (language() === 'vi') {
    // Intl's vi-VN puts the time first ("09:40 06/12/2026"); forms and slips here write the date first.
    const p = (n: number) => String(n).padStart(2, '0');
    return `${p(date.getDate())}/${p(date.getMonth() + 1)}/${date.getFullYear()} ${p(date.getHours())}:${p(date.getMinutes())}`;
  }
  return new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false }).format(date);
}

/**
 * A DICOM PN (PS3.5 §6.2.1: `Family^Given^Middle^Prefix^Suffix`, `=`-separated alphabetic, ideographic
 * and phonetic groups) as a name is written in Vietnam: family name first, then middle, then given
 * (`TRẦN^THỊ HOA` and `TRẦN^HOA^THỊ` both read `TRẦN THỊ HOA`), in either language, case kept as
 * registered (HIS systems often store capitals; diacritics are kept). The first non-empty group is shown.
 */
export function formatPersonName(pn: string | undefined): string {
  if (pn === undefined) return '';
  const group = pn.split('=').find((g) => g.replace(/\^/g, '').trim() !== '') ?? '';
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = group.split('^').map((s) => s.trim());
  return [prefix, family, middle, given, suffix].filter((s) => s !== '').join(' ');
}
