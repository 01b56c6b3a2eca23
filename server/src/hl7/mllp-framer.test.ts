/** MLLP frames are found whatever way TCP cuts the bytes, and an unfinished frame never grows past its bound. */
import { describe, expect, it } from 'vitest';
import { MllpFramer, type FrameEvent } from './mllp-framer.js';

const VT = '\x0b';
const END = '\x1c\r';

function feed(framer: MllpFramer, ...chunks: string[]): Array<FrameEvent & { text?: string }> {
  return chunks.flatMap((chunk) => framer.push(Buffer.from(chunk, 'utf8'))).map((event) => (event.kind === 'message' ? { ...event, text: event.bytes.toString('utf8') } : event));
}

describe('MLLP framing', () => {
  it('finds frames across chunk boundaries, several in one chunk, <FS> without <CR>, and a UTF-8 character split in two', () => {
    const framer = new MllpFramer(1024);
    const name = Buffer.from('ĐỨC', 'utf8');
    const events = [
      ...feed(framer, `${VT}MSH|A`, `1${END}${VT}MSH|A2${END}${VT}MSH|A3\x1c`, `${VT}MSH|`),
      ...[framer.push(name.subarray(0, 1)), framer.push(Buffer.concat([name.subarray(1), Buffer.from(END)]))].flat(),
    ];
    expect(events.map((e) => (e.kind === 'message' ? e.bytes.toString('utf8') : e.kind))).toEqual(['MSH|A1', 'MSH|A2', 'MSH|A3', 'MSH|ĐỨC']);
    expect(framer.inside).toBe(false);
    expect(framer.junkBytes).toBe(0);
  });

  it('counts bytes outside frames, drops a frame restarted by <VT>, and reports a frame left open', () => {
    const framer = new MllpFramer(1024);
    expect(feed(framer, 'hello', `${VT}MSH|OLD`, `${VT}MSH|NEW${END}`).map((e) => e.text ?? `${e.kind}:${'droppedBytes' in e ? e.droppedBytes : ''}`)).toEqual(['restart:7', 'MSH|NEW']);
    expect(framer.junkBytes).toBe(5);
    feed(framer, `${VT}MSH|TRUNCATED`);
    expect(framer.inside).toBe(true);
    expect(framer.pendingBytes).toBe(13);
  });

  it('stops at the limit: one oversize event with the frame head, nothing more read', () => {
    const framer = new MllpFramer(1024);
    const events = feed(framer, `${VT}MSH|^~\\&|HIS|BVBM|FILMLESS|RAD|2026||ADT^A08|BIG-1|P|2.5.1\r`, 'x'.repeat(2000), `${END}${VT}MSH|NEXT${END}`);
    expect(events.map((e) => e.kind)).toEqual(['oversize']);
    const head = events[0]!.kind === 'oversize' ? events[0]!.head.toString('utf8') : '';
    expect(head.startsWith('MSH|^~\\&|HIS|BVBM')).toBe(true);
    expect(head.length).toBeLessThanOrEqual(4096);
  });
});
