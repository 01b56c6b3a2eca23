/**
 * The stack viewer's commands, in one table: each row is a command (`id`, `label`, its `keys` and
 * `run`) and says whether and how it shows on the toolbar. The toolbar and the viewport's keyboard
 * handler are both built from the table, so a new tool is one row.
 *
 * No Cornerstone here (types only): the commands drive the small `StackCommandTarget` surface, which
 * `StackView` (imaging/cornerstone.ts) implements, and the table can be tested in Node.
 */
import type { ToolName } from '../imaging/cornerstone.js';
import { h } from '../ui/dom.js';
import { t } from '../i18n/i18n.js';

/** A CT preset's name in the page's language (`Soft tissue` → `Mô mềm`); an unknown one as given. */
const presetName = (name: string): string => t(`stack:preset.${name.toLowerCase().replace(/\s+/g, '_')}`, { defaultValue: name });

/** What the commands drive: a subset of `StackView`. */
export interface StackCommandTarget {
  scroll(delta: number): Promise<void>;
  setIndex(index: number): Promise<void>;
  reset(): void;
  zoomBy(factor: number): void;
  setWindow(center: number, width: number): void;
  setPrimaryTool(tool: ToolName): void;
  playCine(fps: number): void;
  stopCine(): void;
  readonly playing: boolean;
}

/** A toolbar button. Its tooltip is "label (hint)". */
export interface CommandButton {
  kind: 'button';
  /** The key as the tooltip names it ("R", "↑", "space"). */
  hint: string;
  /**
   * The button's text when it is not the label: an icon (a fixed text; the label then names the
   * button for assistive technology, `aria-label`) or a text that follows the state (Play/Stop).
   */
  text?: string | (() => string);
  /** A toggle: `aria-pressed` follows this. */
  pressed?: () => boolean;
  /** Attributes that tests and styles find the button by (`data-tool`, `data-action`). */
  attributes?: Record<string, string>;
}

/** One option of a toolbar select (rows with the same `select` form one select, at the first one's place). */
export interface CommandOption {
  kind: 'option';
  /** The select's accessible name and its first, empty option. */
  select: string;
  value: string;
  text: string;
}

export interface StackCommand {
  /** Unique in the table. */
  readonly id: string;
  /** What the command does, in words (tooltip, accessible name). */
  readonly label: string;
  /** `KeyboardEvent.key` values that run it in the viewport; empty when it has no key. */
  readonly keys: readonly string[];
  /** How it shows on the toolbar; absent: keyboard only. */
  readonly toolbar?: CommandButton | CommandOption | undefined;
  run(): void | Promise<void>;
}

export interface StackCommandOptions {
  /** The series' modality: CT gets the window presets (select and keys 1–9). */
  modality: string;
  /** Cine rate (frames per second). */
  fps: number;
  /** Images in the stack: cine is on the toolbar only when there are several. */
  count: number;
  /** CT window presets (center, width), in key order. */
  presets: Record<string, { center: number; width: number }>;
}

/** The stack viewer's command table, in toolbar order. */
export function stackCommands(view: StackCommandTarget, options: StackCommandOptions): StackCommand[] {
  // The view starts with window/level on the primary button (imaging/cornerstone.ts).
  let tool: ToolName = 'windowLevel';
  // A measurement tool is a toggle: chosen again (button or key), window/level comes back.
  const toolCommand = (name: ToolName, label: string, key: string, toggle = false): StackCommand => ({
    id: `tool-${name}`,
    label,
    keys: [key.toLowerCase(), key],
    toolbar: { kind: 'button', hint: key, pressed: () => tool === name, attributes: { 'data-tool': name } },
    run: () => {
      tool = toggle && tool === name ? 'windowLevel' : name;
      view.setPrimaryTool(tool);
    },
  });
  const presets: StackCommand[] =
    options.modality !== 'CT'
      ? []
      : Object.entries(options.presets).map(([name, p], i) => ({
          id: `preset-${name}`,
          label: t('stack:cmd.presetNamed', { name: presetName(name) }),
          keys: i < 9 ? [String(i + 1)] : [],
          toolbar: { kind: 'option', select: t('stack:cmd.preset'), value: name, text: `${presetName(name)} (${i + 1})` },
          run: () => view.setWindow(p.center, p.width),
        }));
  return [
    toolCommand('windowLevel', t('stack:cmd.windowLevel'), 'W'),
    toolCommand('pan', t('stack:cmd.pan'), 'P'),
    toolCommand('zoom', t('stack:cmd.zoom'), 'Z'),
    toolCommand('length', t('stack:cmd.length'), 'L', true),
    toolCommand('area', t('stack:cmd.area'), 'A', true),
    { id: 'reset', label: t('stack:cmd.reset'), keys: ['r', 'R'], toolbar: { kind: 'button', hint: 'R' }, run: () => view.reset() },
    ...presets,
    { id: 'previous', label: t('stack:cmd.previous'), keys: ['ArrowUp', 'ArrowLeft'], toolbar: { kind: 'button', hint: '↑', text: '◀' }, run: () => view.scroll(-1) },
    { id: 'next', label: t('stack:cmd.next'), keys: ['ArrowDown', 'ArrowRight'], toolbar: { kind: 'button', hint: '↓', text: '▶' }, run: () => view.scroll(1) },
    {
      id: 'cine',
      label: t('stack:cmd.cine'),
      keys: [' '],
      toolbar:
        options.count > 1
          ? { kind: 'button', hint: t('stack:cmd.space'), text: () => (view.playing ? t('stack:cmd.stop') : t('stack:cmd.play')), pressed: () => view.playing, attributes: { 'data-action': 'cine' } }
          : undefined,
      run: () => {
        if (view.playing) view.stopCine();
        else view.playCine(options.fps);
      },
    },
    { id: 'page-back', label: t('stack:cmd.back10'), keys: ['PageUp'], run: () => view.scroll(-10) },
    { id: 'page-forward', label: t('stack:cmd.forward10'), keys: ['PageDown'], run: () => view.scroll(10) },
    { id: 'first', label: t('stack:cmd.first'), keys: ['Home'], run: () => view.setIndex(0) },
    { id: 'last', label: t('stack:cmd.last'), keys: ['End'], run: () => view.setIndex(Number.MAX_SAFE_INTEGER) },
    { id: 'zoom-in', label: t('stack:cmd.zoomIn'), keys: ['+', '='], run: () => view.zoomBy(1.25) },
    { id: 'zoom-out', label: t('stack:cmd.zoomOut'), keys: ['-'], run: () => view.zoomBy(0.8) },
  ];
}

/** The key handler and the toolbar of a command table. */
export class CommandTable {
  private readonly byKey = new Map<string, StackCommand>();
  /** Updates the state shown on the toolbar (pressed toggles, Play/Stop). */
  private readonly syncs: Array<() => void> = [];

  /** Throws when two rows share an id or a key (a programming error). */
  constructor(readonly commands: readonly StackCommand[]) {
    const ids = new Set<string>();
    for (const c of commands) {
      if (ids.has(c.id)) throw new Error(`Two commands have the id "${c.id}"`);
      ids.add(c.id);
      for (const key of c.keys) {
        const other = this.byKey.get(key);
        if (other !== undefined) throw new Error(`The key "${key}" runs both "${other.id}" and "${c.id}"`);
        this.byKey.set(key, c);
      }
    }
  }

  forKey(key: string): StackCommand | undefined {
    return this.byKey.get(key);
  }

  run(command: StackCommand): void {
    void command.run();
    for (const sync of this.syncs) sync();
  }

  /** For `keydown` on the viewport: runs the key's command; a key that runs one does nothing else. */
  readonly onKeyDown = (e: Pick<KeyboardEvent, 'key' | 'preventDefault'>): void => {
    const command = this.forKey(e.key);
    if (command === undefined) return;
    this.run(command);
    e.preventDefault();
  };

  /** The toolbar's buttons and selects, in table order. */
  toolbarItems(): HTMLElement[] {
    const items: HTMLElement[] = [];
    const selects = new Map<string, HTMLSelectElement>();
    for (const command of this.commands) {
      const spec = command.toolbar;
      if (spec === undefined) continue;
      if (spec.kind === 'option') {
        let select = selects.get(spec.select);
        if (select === undefined) {
          const created = h('select', { 'aria-label': spec.select }, h('option', { value: '', text: spec.select }));
          created.addEventListener('change', () => {
            const chosen = this.commands.find((c) => c.toolbar?.kind === 'option' && c.toolbar.select === spec.select && c.toolbar.value === created.value);
            if (chosen !== undefined) this.run(chosen);
          });
          selects.set(spec.select, created);
          items.push(created);
          select = created;
        }
        select.append(h('option', { value: spec.value, text: spec.text }));
        continue;
      }
      const { text, pressed } = spec;
      const button = h('button', {
        type: 'button',
        text: typeof text === 'function' ? text() : (text ?? command.label),
        title: `${command.label} (${spec.hint})`,
        'aria-label': typeof text === 'string' ? command.label : undefined,
        'aria-pressed': pressed === undefined ? undefined : String(pressed()),
        ...spec.attributes,
      });
      button.addEventListener('click', () => this.run(command));
      if (pressed !== undefined) this.syncs.push(() => button.setAttribute('aria-pressed', String(pressed())));
      if (typeof text === 'function') this.syncs.push(() => (button.textContent = text()));
      items.push(button);
    }
    return items;
  }
}
