/**
 * Third-party web clients for interoperability tests (OHIF Viewer, dicom-microscopy-viewer: the library
 * Slim draws slides with), taken as their published, already-built npm tarballs.
 *
 * Why not devDependencies: `@ohif/app` declares ~40 runtime dependencies (React, webpack loaders, the
 * OHIF monorepo packages) that its `dist/` bundle already contains; installing them would add hundreds
 * of packages to every `npm ci` for one test. So the tests fetch the pinned tarball from the npm
 * registry (the only network source the product allows), check its sha512 integrity against the value
 * pinned here, and unpack it once into node_modules/.cache/interop/, where later runs find it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './shared-data.js';

export interface PinnedBundle {
  name: string;
  version: string;
  /** The registry's `dist.integrity` of that version (sha512, base64). */
  integrity: string;
}

export const OHIF_APP: PinnedBundle = {
  name: '@ohif/app',
  version: '3.13.2',
  integrity: 'sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA==',
};

export const DICOM_MICROSCOPY_VIEWER: PinnedBundle = {
  name: 'dicom-microscopy-viewer',
  version: '0.48.24',
  integrity: 'sha512-016o/23eNqXMxgX5EjnDmFz1ROSMQmU7vmRlTVPUgshl6NaBrZzEyWkzq4BNaFFPfrE274AWdR5crW51cWh+9g==',
};

const CACHE_DIR = path.join(repoRoot, 'node_modules', '.cache', 'interop');

/**
 * Folder holding the unpacked package (its `package/` contents: `dist/`, `package.json`, ...).
 * Downloads it with `npm pack` the first time; throws with the reason when that fails.
 */
export function unpackedBundle(bundle: PinnedBundle): string {
  const folderName = `${bundle.name.replace('@', '').replace('/', '-')}-${bundle.version}`;
  const target = path.join(CACHE_DIR, folderName);
  if (existsSync(path.join(target, 'package.json'))) return target;

  mkdirSync(CACHE_DIR, { recursive: true });
  const work = path.join(CACHE_DIR, `${folderName}.partial-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    execFileSync('npm', ['pack', `${bundle.name}@${bundle.version}`, '--pack-destination', work, '--silent'], {
      cwd: work,
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 300_000,
    });
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
    if (tarball === undefined) throw new Error('npm pack wrote no tarball');
    const integrity = `sha512-${createHash('sha512').update(readFileSync(path.join(work, tarball))).digest('base64')}`;
    if (integrity !== bundle.integrity) {
      throw new Error(`integrity ${integrity} differs from the pinned ${bundle.integrity}`);
    }
    execFileSync('tar', ['-xzf', tarball], { cwd: work });
    // Rename is atomic: a parallel test file sees either nothing or the whole package.
    try {
      renameSync(path.join(work, 'package'), target);
    } catch (err) {
      if (!existsSync(path.join(target, 'package.json'))) throw err;
    }
    return target;
  } catch (err) {
    throw new Error(`Could not fetch ${bundle.name}@${bundle.version} from the npm registry: ${(err as Error).message}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
