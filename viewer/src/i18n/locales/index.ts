/**
 * Every namespace of texts. One file per part of the viewer, each with both languages; add a new
 * namespace here. Keys are checked by ../i18n.test.ts (same keys in both languages; every
 * `t('ns:key')` used in viewer/src exists).
 */
import { ai } from './ai.js';
import { aiusage } from './aiusage.js';
import { auth } from './auth.js';
import { browser } from './browser.js';
import { common } from './common.js';
import { consult } from './consult.js';
import { curation } from './curation.js';
import { live } from './live.js';
import { reports } from './reports.js';
import { share } from './share.js';
import { stack } from './stack.js';
import { storage } from './storage.js';
import { study } from './study.js';
import { wsi } from './wsi.js';

type Texts = { readonly en: Record<string, unknown>; readonly vi: Record<string, unknown> };

export const NAMESPACES: Record<string, Texts> = {
  common,
  ai,
  aiusage,
  consult,
  curation,
  auth,
  browser,
  live,
  reports,
  share,
  stack,
  storage,
  study,
  wsi,
};
