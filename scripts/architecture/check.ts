/**
 * Checks an import graph (import-graph.ts) against the rules (rules.ts) and says every violation in
 * one line each: an import a module's row does not allow, a module without a row, an import circle, a
 * concrete object built below the composition root, a package outside its owners, and a viewer file
 * importing server code other than the wire contracts as types.
 */
import { importCycles, type SourceFile } from './import-graph.js';

export interface Rules {
  allowedImports: Readonly<Record<string, readonly string[]>>;
  constructedAtTheTop: readonly RegExp[];
  constructionAllowedIn: readonly string[];
  packageOwners: Readonly<Record<string, readonly string[]>>;
}

/** Tests, contract suites and test helpers may wire anything together. */
export function isRuled(file: string): boolean {
  return !/\.test\.ts$|\.contract\.ts$/.test(file) && !file.includes('/test-support/') && !file.startsWith('viewer/e2e/') && !file.startsWith('scripts/');
}

/** `archive`, `app.ts`, `viewer/imaging`, `viewer/main.ts`; undefined outside server/src and viewer/src. */
export function moduleOf(file: string): string | undefined {
  const server = /^server\/src\/(.+)$/.exec(file);
  if (server !== null) return server[1]!.split('/')[0]!;
  const viewer = /^viewer\/src\/(.+)$/.exec(file);
  if (viewer !== null) return `viewer/${viewer[1]!.split('/')[0]!}`;
  return undefined;
}

/** The path of a file relative to its root, the form rules use for single files (`auth/permissions.ts`, `viewer/viewer/display.ts`). */
function shortName(file: string): string {
  return file.replace(/^server\/src\//, '').replace(/^viewer\/src\//, 'viewer/');
}

function allows(allowed: readonly string[], target: string): boolean {
  const module = moduleOf(target);
  return allowed.includes('*') || (module !== undefined && allowed.includes(module)) || allowed.includes(shortName(target));
}

export function checkArchitecture(files: readonly SourceFile[], rules: Rules): string[] {
  const problems: string[] = [];
  const ruled = files.filter((f) => isRuled(f.file));
  for (const source of ruled) {
    const module = moduleOf(source.file);
    if (module === undefined) continue;
    const allowed = rules.allowedImports[module];
    if (allowed === undefined) {
      problems.push(`${source.file}: module "${module}" has no row in the allowed-imports table (scripts/architecture/rules.ts)`);
      continue;
    }
    for (const target of source.imports) {
      if (moduleOf(target) === module) continue;
      if (!isRuled(target)) problems.push(`${source.file} imports test code ${target}`);
      else if (!allows(allowed, target)) problems.push(`${source.file} imports ${target}: "${module}" may import ${allowed.length === 0 ? 'nothing' : allowed.join(', ')}`);
    }
    for (const pkg of source.packages) {
      const owners = rules.packageOwners[pkg];
      if (owners !== undefined && !owners.includes(module)) problems.push(`${source.file} imports ${pkg}, which only ${owners.join(', ')} may import`);
    }
    if (module.startsWith('viewer/')) {
      for (const line of source.text.split('\n')) {
        if (/from\s+['"][^'"]*server\/src\//.test(line) && !/^\s*import\s+type\s/.test(line)) problems.push(`${source.file}: the viewer takes server code as types only (import type): ${line.trim()}`);
        if (/from\s+['"][^'"]*server\/src\/(?!contracts\/)/.test(line)) problems.push(`${source.file}: the viewer imports only the wire contracts (server/src/contracts/): ${line.trim()}`);
      }
    }
    if (!rules.constructionAllowedIn.includes(source.file)) {
      for (const line of source.text.split('\n')) {
        if (/^\s*(export\s+)?(async\s+)?function\s/.test(line) || /^\s*(\/\/|\*|\/\*)/.test(line)) continue;
        for (const pattern of rules.constructedAtTheTop) {
          if (pattern.test(line)) problems.push(`${source.file} builds ${pattern.source.replace(/\\b|\\/g, '')}: only the composition module (services.ts) and entry points construct it`);
        }
      }
    }
  }
  for (const cycle of importCycles(ruled)) problems.push(`import circle: ${cycle.join(' → ')}`);
  return problems;
}
