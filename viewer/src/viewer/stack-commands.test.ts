/** The stack viewer's command table: unique ids and keys, and keys dispatched to their row's `run`. */
import { describe, expect, it, vi } from 'vitest';
import { CommandTable, stackCommands, type StackCommand, type StackCommandOptions, type StackCommandTarget } from './stack-commands.js';

const PRESETS = { 'Soft tissue': { center: 40, width: 400 }, Lung: { center: -600, width: 1500 }, Bone: { center: 400, width: 1800 } };

function fakeView() {
  let playing = false;
  const view = {
    scroll: vi.fn(async (_delta: number) => undefined),
    setIndex: vi.fn(async (_index: number) => undefined),
    reset: vi.fn(),
    zoomBy: vi.fn(),
    setWindow: vi.fn(),
    setPrimaryTool: vi.fn(),
    playCine: vi.fn(() => {
      playing = true;
    }),
    stopCine: vi.fn(() => {
      playing = false;
    }),
    get playing() {
      return playing;
    },
  } satisfies StackCommandTarget;
  return view;
}

const options = (over: Partial<StackCommandOptions> = {}): StackCommandOptions => ({ modality: 'CT', fps: 12, count: 5, presets: PRESETS, ...over });

function press(table: CommandTable, key: string): boolean {
  const preventDefault = vi.fn();
  table.onKeyDown({ key, preventDefault });
  return preventDefault.mock.calls.length > 0;
}

describe('stack command table', () => {
  it('has unique ids and unique keys, on CT (with presets) and other modalities', () => {
    for (const modality of ['CT', 'MR', 'ES']) {
      const rows = stackCommands(fakeView(), options({ modality }));
      const ids = rows.map((r) => r.id);
      expect(new Set(ids).size).toBe(ids.length);
      const keys = rows.flatMap((r) => r.keys);
      expect(new Set(keys).size).toBe(keys.length);
      expect(() => new CommandTable(rows)).not.toThrow();
    }
  });

  it('refuses a table with a repeated id or key', () => {
    const run = () => undefined;
    expect(() => new CommandTable([{ id: 'a', label: 'A', keys: ['a'], run }, { id: 'a', label: 'B', keys: ['b'], run }])).toThrow(/id "a"/);
    expect(() => new CommandTable([{ id: 'a', label: 'A', keys: ['x'], run }, { id: 'b', label: 'B', keys: ['x'], run }])).toThrow(/key "x"/);
  });

  it('dispatches every key to its row’s run, and nothing else', () => {
    const rows: StackCommand[] = stackCommands(fakeView(), options()).map((r) => ({ ...r, run: vi.fn() }));
    const table = new CommandTable(rows);
    for (const row of rows) {
      for (const key of row.keys) {
        for (const r of rows) vi.mocked(r.run).mockClear();
        expect(press(table, key), key).toBe(true);
        expect(vi.mocked(row.run), key).toHaveBeenCalledTimes(1);
        expect(rows.filter((r) => r !== row && vi.mocked(r.run).mock.calls.length > 0).map((r) => r.id), key).toEqual([]);
      }
    }
    // A key of no command is left to the browser.
    for (const r of rows) vi.mocked(r.run).mockClear();
    expect(press(table, 'x')).toBe(false);
    expect(rows.filter((r) => vi.mocked(r.run).mock.calls.length > 0)).toEqual([]);
  });

  it('keeps the viewer’s keys: scroll, first/last, reset, tools, zoom, cine and CT presets', () => {
    const view = fakeView();
    const table = new CommandTable(stackCommands(view, options()));
    press(table, 'ArrowDown');
    press(table, 'ArrowRight');
    press(table, 'PageDown');
    press(table, 'ArrowUp');
    press(table, 'ArrowLeft');
    press(table, 'PageUp');
    expect(view.scroll.mock.calls.map((c) => c[0])).toEqual([1, 1, 10, -1, -1, -10]);
    press(table, 'Home');
    press(table, 'End');
    expect(view.setIndex.mock.calls.map((c) => c[0])).toEqual([0, Number.MAX_SAFE_INTEGER]);
    press(table, 'r');
    press(table, 'R');
    expect(view.reset).toHaveBeenCalledTimes(2);
    for (const key of ['w', 'P', 'z', 'W']) press(table, key);
    expect(view.setPrimaryTool.mock.calls.map((c) => c[0])).toEqual(['windowLevel', 'pan', 'zoom', 'windowLevel']);
    for (const key of ['+', '=', '-']) press(table, key);
    expect(view.zoomBy.mock.calls.map((c) => c[0])).toEqual([1.25, 1.25, 0.8]);
    press(table, ' ');
    expect(view.playCine).toHaveBeenCalledWith(12);
    expect(view.playing).toBe(true);
    press(table, ' ');
    expect(view.stopCine).toHaveBeenCalledTimes(1);
    expect(view.playing).toBe(false);
    expect(press(table, '3')).toBe(true);
    expect(view.setWindow).toHaveBeenCalledWith(400, 1800);
    expect(press(table, '4')).toBe(false);
  });

  it('measures with L and A on the left button while chosen; chosen again, or W, window/level comes back', () => {
    const view = fakeView();
    const table = new CommandTable(stackCommands(view, options()));
    for (const key of ['l', 'L', 'a', 'A', 'A', 'w', 'z', 'l']) press(table, key);
    expect(view.setPrimaryTool.mock.calls.map((c) => c[0])).toEqual(['length', 'windowLevel', 'area', 'windowLevel', 'area', 'windowLevel', 'zoom', 'length']);
    const rows = stackCommands(fakeView(), options());
    expect(rows.find((r) => r.id === 'tool-length')).toMatchObject({ label: 'Measure length', toolbar: { kind: 'button', hint: 'L', attributes: { 'data-tool': 'length' } } });
    expect(rows.find((r) => r.id === 'tool-area')).toMatchObject({ label: 'Measure area', toolbar: { kind: 'button', hint: 'A', attributes: { 'data-tool': 'area' } } });
  });

  it('has no preset keys or options outside CT, and cine on the toolbar only for several images', () => {
    const mr = stackCommands(fakeView(), options({ modality: 'MR', count: 1 }));
    expect(mr.some((r) => r.id.startsWith('preset-'))).toBe(false);
    expect(new CommandTable(mr).forKey('1')).toBeUndefined();
    const cine = mr.find((r) => r.id === 'cine')!;
    expect(cine.toolbar).toBeUndefined();
    expect(cine.keys).toEqual([' ']);
    expect(stackCommands(fakeView(), options({ count: 2 })).find((r) => r.id === 'cine')!.toolbar).toMatchObject({ kind: 'button', attributes: { 'data-action': 'cine' } });
  });
});
