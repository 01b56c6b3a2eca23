import { describe, expect, it } from 'vitest';
import { formatBytes, savedShare, syntaxName } from './storage-format.js';

describe('storage page numbers', () => {
  it('sizes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1,023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(5 * 1024 ** 3)).toBe('5.0 GiB');
    expect(formatBytes(300 * 1024 ** 2)).toBe('300 MiB');
    expect(formatBytes(-1)).toBe('–');
    expect(formatBytes(1536, 'vi')).toBe('1,5 KiB');
  });
  it('the share saved, and syntax names', () => {
    expect(savedShare(25, 100)).toBe('25.0 %');
    expect(savedShare(0, 0)).toBe('–');
    expect(syntaxName('1.2.840.10008.1.2.4.80')).toBe('JPEG-LS Lossless');
    expect(syntaxName('1.2.3')).toBe('1.2.3');
  });
});
