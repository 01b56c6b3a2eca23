/**
 * Collects per-run values, reduces them to medians and renders the markdown report.
 * Ratio columns always read "ours vs Orthanc, > 1 = ours better" whatever the unit's direction.
 */
import os from 'node:os';
import { median, percentile } from './util.js';

export const OURS = 'ours';
export const ORTHANC = 'orthanc';

export interface Metric {
  label: string;
  unit: string;
  higherIsBetter: boolean;
  /** One value per run and server (NaN for a failed run). */
  runs: Map<string, number[]>;
  digits?: number;
  /** False where a ratio means nothing (e.g. a difference that can be ~0). */
  showRatio?: boolean;
}

export function metric(label: string, unit: string, higherIsBetter: boolean, digits = 1, showRatio = true): Metric {
  return { label, unit, higherIsBetter, runs: new Map(), digits, showRatio };
}

export function record(m: Metric, server: string, value: number): void {
  const list = m.runs.get(server) ?? [];
  list.push(value);
  m.runs.set(server, list);
}

function finite(values: number[] | undefined): number[] {
  return (values ?? []).filter((v) => Number.isFinite(v));
}

function fmt(value: number, digits: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** ours vs Orthanc, > 1 means ours is better (faster / smaller). */
function ratio(ours: number, orthanc: number, higherIsBetter: boolean): string {
  if (!Number.isFinite(ours) || !Number.isFinite(orthanc) || ours <= 0 || orthanc <= 0) return 'n/a';
  const r = higherIsBetter ? ours / orthanc : orthanc / ours;
  return `**${r.toFixed(2)}×**`;
}

function cell(values: number[] | undefined, digits: number): string {
  const v = finite(values);
  const failed = (values?.length ?? 0) - v.length;
  if (v.length === 0) return values && values.length ? 'failed' : '–';
  const range = v.length > 1 ? ` (${fmt(Math.min(...v), digits)}–${fmt(Math.max(...v), digits)})` : '';
  return `${fmt(median(v), digits)}${range}${failed ? ` ⚠ ${failed} failed` : ''}`;
}

/** Table of medians: one row per metric, ranges in parentheses. */
export function medianTable(metrics: Metric[], servers: string[]): string {
  const header = ['Measurement', ...servers.map((s) => `${s} median (min–max)`)];
  const both = servers.includes(OURS) && servers.includes(ORTHANC);
  if (both) header.push('ours vs Orthanc (>1 = ours better)');
  header.push('runs');
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const m of metrics) {
    const d = m.digits ?? 1;
    const row = [`${m.label} [${m.unit}]`, ...servers.map((s) => cell(m.runs.get(s), d))];
    if (both) {
      row.push(m.showRatio === false ? '–' : ratio(median(finite(m.runs.get(OURS))), median(finite(m.runs.get(ORTHANC))), m.higherIsBetter));
    }
    row.push(String(Math.max(...servers.map((s) => m.runs.get(s)?.length ?? 0))));
    lines.push(`| ${row.join(' | ')} |`);
  }
  return lines.join('\n');
}

export interface LatencySeries {
  label: string;
  /** Per server, per round: the latencies of that round (ms). */
  rounds: Map<string, number[][]>;
  errors: Map<string, number>;
  /** Per server: response body sizes. */
  bytes: Map<string, number[]>;
}

/** p50/p95 per round, median over rounds; the ratio compares those medians. */
export function latencyTable(series: LatencySeries[], servers: string[], firstColumn = 'QIDO-RS query'): string {
  const both = servers.includes(OURS) && servers.includes(ORTHANC);
  const header = [firstColumn];
  for (const s of servers) header.push(`${s} p50 ms`, `${s} p95 ms`);
  if (both) header.push('p50 ours vs Orthanc (>1 = ours faster)', 'p95 ours vs Orthanc (>1 = ours faster)');
  header.push('samples/server', `median response bytes (${servers.join(' / ')})`);
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const q of series) {
    const stats = new Map<string, { p50: number; p95: number; n: number; errors: number }>();
    for (const s of servers) {
      const rounds = (q.rounds.get(s) ?? []).map(finite).filter((r) => r.length > 0);
      stats.set(s, {
        p50: median(rounds.map((r) => percentile(r, 50))),
        p95: median(rounds.map((r) => percentile(r, 95))),
        n: rounds.reduce((k, r) => k + r.length, 0),
        errors: q.errors.get(s) ?? 0,
      });
    }
    const row = [q.label];
    for (const s of servers) {
      const st = stats.get(s)!;
      const warn = st.errors ? ` ⚠ ${st.errors} wrong/failed` : '';
      row.push(`${fmt(st.p50, 1)}${warn}`, fmt(st.p95, 1));
    }
    if (both) {
      const o = stats.get(OURS)!;
      const t = stats.get(ORTHANC)!;
      row.push(ratio(o.p50, t.p50, false), ratio(o.p95, t.p95, false));
    }
    row.push(String(Math.max(...servers.map((s) => stats.get(s)!.n))));
    row.push(servers.map((s) => fmt(median(q.bytes.get(s) ?? []), 0)).join(' / '));
    lines.push(`| ${row.join(' | ')} |`);
  }
  return lines.join('\n');
}

export function machineInfo(): string[] {
  const cpus = os.cpus();
  return [
    `CPU: ${cpus[0]?.model ?? 'unknown'} × ${cpus.length} logical cores (os.availableParallelism ${os.availableParallelism()})`,
    `Memory: ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB; kernel ${os.release()}; ${os.platform()} ${os.arch()}`,
    `Node ${process.version}`,
  ];
}
