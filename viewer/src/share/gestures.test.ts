import { describe, expect, it } from 'vitest';
import { clamp, IDENTITY, isDoubleTap, pan, pinch, swipeOf, zoomAt } from './gestures.js';

const stage = { width: 400, height: 600 };

describe('phone image gestures', () => {
  it('pinch zooms by how far the fingers spread, keeping the point between them still', () => {
    const t = pinch(IDENTITY, [{ x: 150, y: 300 }, { x: 250, y: 300 }], [{ x: 100, y: 300 }, { x: 300, y: 300 }], stage);
    expect(t.scale).toBeCloseTo(2);
    // The content point under (200, 300) stays under it: (200 - x) / scale = 200.
    expect((200 - t.x) / t.scale).toBeCloseTo(200);
    expect((300 - t.y) / t.scale).toBeCloseTo(300);
  });

  it('never zooms out below the whole image nor past 8×, and never opens an empty band at an edge', () => {
    expect(pinch(IDENTITY, [{ x: 100, y: 300 }, { x: 300, y: 300 }], [{ x: 190, y: 300 }, { x: 210, y: 300 }], stage)).toEqual(IDENTITY);
    expect(zoomAt(IDENTITY, { x: 0, y: 0 }, 100, stage).scale).toBe(8);
    const zoomed = zoomAt(IDENTITY, { x: 200, y: 300 }, 2, stage);
    expect(pan(zoomed, { x: 0, y: 0 }, { x: 1000, y: 1000 }, stage)).toEqual({ scale: 2, x: 0, y: 0 });
    expect(pan(zoomed, { x: 0, y: 0 }, { x: -1000, y: -1000 }, stage)).toEqual({ scale: 2, x: -400, y: -600 });
    expect(clamp({ scale: 0.5, x: 10, y: 10 }, stage)).toEqual(IDENTITY);
  });

  it('reads a sideways stroke as a swipe, a short, slow or vertical one as none', () => {
    expect(swipeOf({ x: 350, y: 300 }, { x: 50, y: 310 }, 200)).toBe('next');
    expect(swipeOf({ x: 50, y: 300 }, { x: 350, y: 290 }, 200)).toBe('previous');
    expect(swipeOf({ x: 200, y: 300 }, { x: 190, y: 300 }, 50)).toBeUndefined();
    expect(swipeOf({ x: 200, y: 200 }, { x: 150, y: 400 }, 100)).toBeUndefined();
    // 40 px: a slow drag is not a swipe, a flick is.
    expect(swipeOf({ x: 200, y: 300 }, { x: 160, y: 300 }, 1000)).toBeUndefined();
    expect(swipeOf({ x: 200, y: 300 }, { x: 160, y: 300 }, 60)).toBe('next');
  });

  it('takes two quick taps at one place as a double tap', () => {
    expect(isDoubleTap({ at: { x: 100, y: 100 }, time: 1000 }, { x: 105, y: 98 }, 1200)).toBe(true);
    expect(isDoubleTap({ at: { x: 100, y: 100 }, time: 1000 }, { x: 105, y: 98 }, 1500)).toBe(false);
    expect(isDoubleTap({ at: { x: 100, y: 100 }, time: 1000 }, { x: 200, y: 100 }, 1100)).toBe(false);
    expect(isDoubleTap(undefined, { x: 100, y: 100 }, 1100)).toBe(false);
  });
});
