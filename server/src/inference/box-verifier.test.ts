import { describe, expect, it } from 'vitest';
import { verifierCrops } from './box-verifier.js';

const SPEC = { size: 64, context: 1.5, minSide: 16 };

/** A 256² RGB test card whose values vary in every direction (the same formula as the Python check below). */
function testCard(): Uint8Array {
  const pixels = new Uint8Array(256 * 256 * 3);
  for (let y = 0; y < 256; y++) {
    for (let x = 0; x < 256; x++) {
      const o = (y * 256 + x) * 3;
      pixels[o] = (x * 7 + y * 3) % 256;
      pixels[o + 1] = (x * x + y) % 256;
      pixels[o + 2] = (x ^ y) % 256;
    }
  }
  return pixels;
}

const pixelAt = (crops: Buffer, n: number, row: number, col: number) => {
  const o = ((n * 64 + row) * 64 + col) * 3;
  return [crops[o], crops[o + 1], crops[o + 2]];
};

describe('box verifier crops (what the verifier sees of each candidate box)', () => {
  it('cuts the same windows as the training script', () => {
    // Expected values from scripts/polyp/verifier.py crop_box on the same test card, the crop the
    // verifier was trained on: sum of all values, and the pixels at (0,0), (31,17), (63,63).
    const boxes = [
      { x0: 40, y0: 60, x1: 100, y1: 90, sum: 1296231, p: [[11, 154, 6], [53, 154, 122], [129, 65, 5]] },
      { x0: 200, y0: 220, x1: 260, y1: 270, sum: 591685, p: [[105, 145, 113], [147, 139, 36], [0, 0, 0]] },
      { x0: 10, y0: 10, x1: 14, y1: 12, sum: 922624, p: [[33, 16, 4], [86, 72, 4], [191, 138, 3]] },
      { x0: 0, y0: 0, x1: 256, y1: 256, sum: 674604, p: [[0, 0, 0], [145, 101, 84], [0, 0, 0]] },
    ];
    const crops = verifierCrops(testCard(), 256, boxes, SPEC);
    expect(crops.length).toBe(boxes.length * 64 * 64 * 3);
    boxes.forEach((box, n) => {
      let sum = 0;
      for (let i = n * 64 * 64 * 3; i < (n + 1) * 64 * 64 * 3; i++) sum += crops[i]!;
      expect(sum).toBe(box.sum);
      expect(pixelAt(crops, n, 0, 0)).toEqual(box.p[0]);
      expect(pixelAt(crops, n, 31, 17)).toEqual(box.p[1]);
      expect(pixelAt(crops, n, 63, 63)).toEqual(box.p[2]);
    });
  });

  it('copies pixels one to one when the window is as large as the crop', () => {
    const card = testCard();
    // side = 1.5 × 64/1.5 = 64 input pixels → one input pixel per crop pixel, at the window's pixel centres.
    const side = 64 / 1.5;
    const box = { x0: 100 - side / 2, y0: 50 - side / 2, x1: 100 + side / 2, y1: 50 + side / 2 };
    const crops = verifierCrops(card, 256, [box], SPEC);
    for (const [row, col] of [[0, 0], [10, 20], [63, 63]] as const) {
      const x = 100 - 32 + col;
      const y = 50 - 32 + row;
      const o = (y * 256 + x) * 3;
      expect(pixelAt(crops, 0, row, col)).toEqual([card[o], card[o + 1], card[o + 2]]);
    }
  });

  it('fills what lies outside the input with zeros and keeps tiny boxes at the least window', () => {
    const white = new Uint8Array(256 * 256 * 3).fill(255);
    const [corner] = [verifierCrops(white, 256, [{ x0: 246, y0: 246, x1: 256, y1: 256 }], SPEC)];
    expect(pixelAt(corner!, 0, 0, 0)).toEqual([255, 255, 255]);
    expect(pixelAt(corner!, 0, 63, 63)).toEqual([0, 0, 0]);
    // A 2-pixel box still gets a 16-pixel window: the crop of a box of that window's size, same centre.
    const card = testCard();
    const tiny = verifierCrops(card, 256, [{ x0: 100, y0: 100, x1: 102, y1: 102 }], SPEC);
    const half = 16 / 1.5 / 2;
    expect(tiny.equals(verifierCrops(card, 256, [{ x0: 101 - half, y0: 101 - half, x1: 101 + half, y1: 101 + half }], SPEC))).toBe(true);
    expect(tiny.equals(verifierCrops(card, 256, [{ x0: 95, y0: 95, x1: 107, y1: 107 }], SPEC))).toBe(false);
  });
});
