import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NAMESPACES } from './locales/index.js';
import { formatDateTime, formatDicomDate, formatPersonName, initI18n, setLanguage, t } from './i18n.js';

function keysOf(obj: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(obj).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' ? keysOf(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`],
  );
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return /\.ts$/.test(name) && !/\.test\.ts$/.test(name) ? [p] : [];
  });
}

describe('viewer texts in Vietnamese and English', () => {
  it('every namespace has the same texts in both languages, none empty', () => {
    for (const [ns, texts] of Object.entries(NAMESPACES)) {
      const en = keysOf(texts.en).sort();
      const vi = keysOf(texts.vi).sort();
      // Vietnamese has one plural form (`_other`); English needs `_one` too.
      const strip = (keys: string[]) => [...new Set(keys.map((k) => k.replace(/_(one|other)$/, '')))].sort();
      expect(strip(vi), `namespace ${ns}`).toEqual(strip(en));
      for (const [lng, obj] of [['en', texts.en], ['vi', texts.vi]] as const) {
        for (const key of keysOf(obj)) {
          const value = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], obj);
          expect(typeof value === 'string' && value.trim() !== '', `${lng} ${ns}:${key} is empty`).toBe(true);
        }
      }
    }
  });

  it('every t("ns:key") in the viewer sources names a text that exists', () => {
    const root = path.join(import.meta.dirname, '..');
    const missing: string[] = [];
    for (const file of sources(root).filter((f) => !f.includes(`${path.sep}i18n${path.sep}`))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\bt\(\s*'([a-zA-Z]+):([A-Za-z0-9_.]+)'/g)) {
        const [, ns, key] = m as unknown as [string, string, string];
        const texts = NAMESPACES[ns];
        const keys = texts === undefined ? [] : keysOf(texts.en);
        if (!keys.includes(key) && !keys.includes(`${key}_other`)) missing.push(`${path.relative(root, file)}: ${ns}:${key}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('dates read day first in Vietnamese and with the month spelled out in English', async () => {
    initI18n();
    await setLanguage('vi');
    expect(formatDicomDate('20260603')).toBe('03/06/2026');
    // Local time (no zone in the string): the date first, then the time.
    expect(formatDateTime('2026-12-06T09:40:00')).toBe('06/12/2026 09:40');
    expect(t('common:retry')).toBe('Thử lại');
    await setLanguage('en');
    expect(formatDicomDate('20260603')).toBe('3 Jun 2026');
    expect(formatDicomDate('2026')).toBe('2026');
    expect(formatDicomDate('20260231')).toBe('20260231');
    expect(t('common:retry')).toBe('Retry');
  });

  it('names read family name first, as written in Vietnam', () => {
    expect(formatPersonName('TRẦN^THỊ HOA')).toBe('TRẦN THỊ HOA');
    expect(formatPersonName('Nguyen^An^Van')).toBe('Nguyen Van An');
    expect(formatPersonName('^^^^')).toBe('');
    expect(formatPersonName('=陳^華')).toBe('陳 華');
  });

  afterAll(async () => {
    await setLanguage('en');
  });
});
