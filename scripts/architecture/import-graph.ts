/**
 * The project's import graph, read from the sources: every `import … from`, `export … from`,
 * `import '…'` and `import('…')` of each TypeScript file under the given roots, relative specifiers
 * resolved to files (`.js` → `.ts`), bare ones kept as package names. Type-only imports count: they are
 * dependencies of the design even when erased at build.
 *
 * Written here rather than with dependency-cruiser or madge: both resolve TypeScript through the
 * `typescript` package's compiler API, which the TypeScript 7 compiler this project uses does not
 * ship; what the rules need is a list of specifiers per file, which these few lines read exactly.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

export interface SourceFile {
  /** Repository-relative path with forward slashes, e.g. `server/src/app.ts`. */
  file: string;
  /** Repository-relative files this one imports (resolved relative specifiers). */
  imports: string[];
  /** Packages this one imports (`fastify`, `@fastify/websocket`, `node:fs`). */
  packages: string[];
  /** The source text (for rules about what a file constructs). */
  text: string;
}

const SPECIFIER = /(?:^|[\s;{}(])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The specifiers a TypeScript source imports (comments removed first, so examples in prose do not count). */
export function importSpecifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const found: string[] = [];
  for (const match of code.matchAll(SPECIFIER)) found.push((match[1] ?? match[2])!);
  return found;
}

function packageName(specifier: string): string {
  if (specifier.startsWith('node:')) return specifier;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...listTs(full));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

/** Reads every `.ts` file under `roots` (repository-relative folders) of the repository at `repoRoot`. */
export function readImportGraph(repoRoot: string, roots: readonly string[]): SourceFile[] {
  const files: SourceFile[] = [];
  for (const root of roots) {
    for (const full of listTs(path.join(repoRoot, root))) {
      const text = readFileSync(full, 'utf8');
      const file = path.relative(repoRoot, full).split(path.sep).join('/');
      const imports: string[] = [];
      const packages: string[] = [];
      for (const specifier of importSpecifiers(text)) {
        if (specifier.startsWith('.')) {
          const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier)).replace(/\.js$/, '.ts');
          imports.push(resolved.endsWith('.ts') ? resolved : `${resolved}.ts`);
        } else {
          packages.push(packageName(specifier));
        }
      }
      files.push({ file, imports, packages, text });
    }
  }
  return files;
}

/** Every import circle among `files`, each as the list of files around it (Tarjan's strongly connected components). */
export function importCycles(files: readonly SourceFile[]): string[][] {
  const edges = new Map(files.map((f) => [f.file, f.imports.filter((i) => i !== f.file)]));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  let counter = 0;
  const visit = (node: string) => {
    index.set(node, counter);
    low.set(node, counter);
    counter += 1;
    stack.push(node);
    onStack.add(node);
    for (const next of edges.get(node) ?? []) {
      if (!edges.has(next)) continue;
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1) cycles.push(component.sort());
    }
  };
  for (const node of edges.keys()) if (!index.has(node)) visit(node);
  return cycles;
}
