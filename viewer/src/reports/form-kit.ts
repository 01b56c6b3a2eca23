/**
 * Form controls bound to the report content the editor holds: each control shows a value and writes
 * the user's change back through its setter, then tells the editor (`changed`) so it can mark the
 * draft unsaved. Text is taken exactly as typed (Vietnamese included); no framework.
 */
import { h } from '../ui/dom.js';
import { label } from './report-model.js';

export interface Bound<T> {
  get(): T;
  set(value: T): void;
}

export interface Kit {
  readOnly: boolean;
  changed(): void;
}

let nextId = 0;
const idFor = (name: string) => `rf-${name.replace(/[^A-Za-z0-9]+/g, '-')}-${(nextId += 1)}`;

/** A labelled control (`label` above it); `wide` spans the row. */
export function field(text: string, control: HTMLElement, options: { wide?: boolean; hint?: string } = {}): HTMLElement {
  if (control.id === '') control.id = idFor(text);
  return h('div', { class: `report-field${options.wide ? ' wide' : ''}` }, h('label', { for: control.id, text }), control, options.hint === undefined ? undefined : h('small', { class: 'muted', text: options.hint }));
}

export function textInput(kit: Kit, name: string, bound: Bound<string | undefined>, attrs: Record<string, string | number> = {}): HTMLInputElement {
  const input = h('input', { type: 'text', name, autocomplete: 'off', disabled: kit.readOnly, ...attrs });
  input.value = bound.get() ?? '';
  input.addEventListener('input', () => {
    bound.set(input.value);
    kit.changed();
  });
  return input;
}

export function textArea(kit: Kit, name: string, bound: Bound<string | undefined>, rows = 3, maxLength?: number): HTMLTextAreaElement {
  const area = h('textarea', { name, rows, disabled: kit.readOnly, ...(maxLength === undefined ? {} : { maxlength: maxLength }) });
  area.value = bound.get() ?? '';
  area.addEventListener('input', () => {
    bound.set(area.value);
    kit.changed();
  });
  return area;
}

/** A number input; empty → undefined. */
export function numberInput(kit: Kit, name: string, bound: Bound<number | undefined>, attrs: Record<string, string | number> = {}): HTMLInputElement {
  const input = h('input', { type: 'number', name, disabled: kit.readOnly, ...attrs });
  const v = bound.get();
  input.value = v === undefined ? '' : String(v);
  input.addEventListener('input', () => {
    const n = input.value.trim() === '' ? undefined : Number(input.value);
    bound.set(n === undefined || Number.isFinite(n) ? n : undefined);
    kit.changed();
  });
  return input;
}

/** A select of `values` (labels from report-model `label`, or given); `empty` adds a "none" choice → undefined. */
export function selectInput<T extends string>(
  kit: Kit,
  name: string,
  values: readonly T[],
  bound: Bound<T | undefined>,
  options: { empty?: string; labels?: (v: T) => string; onChange?: () => void } = {},
): HTMLSelectElement {
  const select = h('select', { name, disabled: kit.readOnly });
  if (options.empty !== undefined) select.append(h('option', { value: '', text: options.empty }));
  for (const v of values) select.append(h('option', { value: v, text: (options.labels ?? label)(v) }));
  const current = bound.get();
  select.value = current ?? '';
  select.addEventListener('change', () => {
    bound.set(select.value === '' ? undefined : (select.value as T));
    kit.changed();
    options.onChange?.();
  });
  return select;
}

export function checkbox(kit: Kit, name: string, text: string, bound: Bound<boolean>, onChange?: () => void): HTMLLabelElement {
  const box = h('input', { type: 'checkbox', name, checked: bound.get(), disabled: kit.readOnly });
  box.addEventListener('change', () => {
    bound.set(box.checked);
    kit.changed();
    onChange?.();
  });
  return h('label', { class: 'report-check' }, box, ` ${text}`);
}

export function section(title: string, name: string, ...children: Array<Node | string | undefined>): HTMLElement {
  return h('fieldset', { class: 'report-section', 'data-section': name }, h('legend', { text: title }), ...children);
}

export function smallButton(text: string, onClick: () => void, attrs: Record<string, string | boolean | undefined> = {}): HTMLButtonElement {
  const b = h('button', { type: 'button', ...attrs, text });
  b.addEventListener('click', onClick);
  return b;
}
