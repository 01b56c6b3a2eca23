/**
 * The design in docs/architecture.md ("Modules", "Composition root") holds in the code: every import
 * of server/src and viewer/src is one its module's row allows (scripts/architecture/rules.ts), there
 * is no import circle, nothing below the composition module builds the archive, stores, engine or
 * queues, Fastify stays in route and HTTP code, Cornerstone in the viewer's imaging, and the viewer
 * takes only the server's wire contracts, as types. The checker itself is shown to catch each kind of
 * violation on small made-up graphs.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkArchitecture, type Rules } from './check.js';
import { importSpecifiers, readImportGraph, type SourceFile } from './import-graph.js';
import { ALLOWED_IMPORTS, CONSTRUCTED_AT_THE_TOP, CONSTRUCTION_ALLOWED_IN, PACKAGE_OWNERS } from './rules.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const rules: Rules = { allowedImports: ALLOWED_IMPORTS, constructedAtTheTop: CONSTRUCTED_AT_THE_TOP, constructionAllowedIn: CONSTRUCTION_ALLOWED_IN, packageOwners: PACKAGE_OWNERS };

describe('the architecture of this repository', () => {
  it('has no import the allowed-imports table forbids, no circle, and concrete objects built only at the top', () => {
    const files = readImportGraph(repoRoot, ['server/src', 'viewer/src']);
    expect(files.length).toBeGreaterThan(150);
    expect(checkArchitecture(files, rules)).toEqual([]);
  });

  it('lets no feature folder import the app, the composition module or an entry point', () => {
    const files = readImportGraph(repoRoot, ['server/src']);
    const top = ['server/src/app.ts', 'server/src/services.ts', 'server/src/main.ts', 'server/src/worker.ts', 'server/src/fsck.ts', 'server/src/restore.ts'];
    const upward = files.filter((f) => !top.includes(f.file) && !f.file.includes('/test-support/') && !f.file.endsWith('.test.ts')).flatMap((f) => f.imports.filter((i) => top.includes(i)).map((i) => `${f.file} → ${i}`));
    expect(upward).toEqual([]);
  });
});

/** A made-up source file for the checker's own tests. */
function file(name: string, imports: string[] = [], text = '', packages: string[] = []): SourceFile {
  return { file: name, imports, packages, text };
}

describe('the architecture check', () => {
  it('reports an import the table forbids (storage importing the archive)', () => {
    const problems = checkArchitecture([file('server/src/storage/fs-blob-store.ts', ['server/src/archive/archive.ts']), file('server/src/archive/archive.ts')], rules);
    expect(problems).toEqual(['server/src/storage/fs-blob-store.ts imports server/src/archive/archive.ts: "storage" may import config.ts, errors.ts']);
  });

  it('reports a feature folder importing the app upwards', () => {
    const problems = checkArchitecture([file('server/src/dimse/start.ts', ['server/src/app.ts']), file('server/src/app.ts')], rules);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/dimse\/start\.ts imports server\/src\/app\.ts/);
  });

  it('reports an import circle', () => {
    const problems = checkArchitecture([file('server/src/dicom/a.ts', ['server/src/dicom/b.ts']), file('server/src/dicom/b.ts', ['server/src/dicom/a.ts'])], rules);
    expect(problems).toEqual(['import circle: server/src/dicom/a.ts → server/src/dicom/b.ts']);
  });

  it('reports a route that builds its own archive, a module without a row, and Fastify outside the HTTP layer', () => {
    const problems = checkArchitecture(
      [
        file('server/src/ai/x.routes.ts', [], 'const archive = new Archive(blobs, catalog, log, {});'),
        file('server/src/billing/invoice.ts'),
        file('server/src/catalog/c.ts', [], '', ['fastify']),
      ],
      rules,
    );
    expect(problems).toEqual([
      'server/src/ai/x.routes.ts builds new Archive(: only the composition module (services.ts) and entry points construct it',
      'server/src/billing/invoice.ts: module "billing" has no row in the allowed-imports table (scripts/architecture/rules.ts)',
      `server/src/catalog/c.ts imports fastify, which only ${PACKAGE_OWNERS.fastify!.join(', ')} may import`,
    ]);
  });

  it('reports a viewer file that takes server code at run time, or more than the contracts', () => {
    const problems = checkArchitecture(
      [
        file('viewer/src/live/a.ts', ['server/src/contracts/live.ts'], "import { X } from '../../../server/src/contracts/live.js';"),
        file('viewer/src/live/b.ts', ['server/src/errors.ts'], "import type { ErrorCode } from '../../../server/src/errors.js';"),
        file('server/src/contracts/live.ts'),
        file('server/src/errors.ts'),
      ],
      rules,
    );
    expect(problems.map((p) => p.split(':')[0]! + ':' + p.split(':')[1]!)).toEqual([
      'viewer/src/live/a.ts: the viewer takes server code as types only (import type)',
      'viewer/src/live/b.ts imports server/src/errors.ts: "viewer/live" may import contracts, viewer/ai, viewer/auth, viewer/dicomweb, viewer/his, viewer/i18n, viewer/overlays, viewer/ui',
      'viewer/src/live/b.ts: the viewer imports only the wire contracts (server/src/contracts/)',
    ]);
  });

  it('reads every kind of import and ignores commented-out ones', () => {
    const source = [
      "import a from './a.js';",
      "import type { B } from './b.js';",
      "import { c,\n  d } from './c.js';",
      "export { e } from './e.js';",
      "export * from './f.js';",
      "import './g.js';",
      "const h = await import('./h.js');",
      "// import x from './commented.js';",
      "/* import y from './block.js'; */",
    ].join('\n');
    expect(importSpecifiers(source)).toEqual(['./a.js', './b.js', './c.js', './e.js', './f.js', './g.js', './h.js']);
  });
});
