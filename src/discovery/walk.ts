/**
 * The file walk: every file under the root that the scan may read, honouring `.gitignore`
 * files (at every level), the default excludes and `--exclude` globs. Symlinks are followed
 * only when they stay inside the tree and do not lead back into a directory already seen.
 */
import fs from 'node:fs';
import path from 'node:path';
import ignoreFactory from 'ignore';
import type { SkippedFile } from '../types.js';

type Ignore = ReturnType<typeof ignoreFactory>;
// `ignore` is CommonJS with `export =`; under NodeNext its default import is the factory.
const createIgnore = ignoreFactory as unknown as () => Ignore;

export const DEFAULT_EXCLUDES = [
  '.git', 'node_modules', '.venv', 'venv', '.tox', '.nox', '__pycache__', 'site-packages', 'build',
  'dist', '.mypy_cache', '.pytest_cache', '.ruff_cache', '.persist-audit-cache', '.eggs', '*.egg-info',
];

export interface SourceFile {
  /** Path relative to the root, `/`-separated. */
  rel: string;
  abs: string;
  size: number;
  /** The walk's stat of the file, which the incremental cache uses instead of a second one. */
  mtimeMs?: number;
  ino?: number;
}

export interface WalkResult {
  /** Python sources to audit, sorted by path. */
  python: SourceFile[];
  /** Every other file the walk kept (relative paths), for manifests, migrations and docs. */
  others: string[];
  skipped: SkippedFile[];
}

export interface WalkOptions {
  exclude?: string[];
  /** Python files larger than this are skipped with a reason. */
  maxFileBytes?: number;
}

interface IgnoreLayer {
  /** Directory of the .gitignore, relative to root ('' for the root). */
  base: string;
  matcher: Ignore;
}

export function walk(root: string, options: WalkOptions = {}): WalkResult {
  const maxBytes = options.maxFileBytes ?? 2 * 1024 * 1024;
  const defaults = createIgnore().add(DEFAULT_EXCLUDES);
  const user = createIgnore().add(options.exclude ?? []);
  const result: WalkResult = { python: [], others: [], skipped: [] };
  const rootReal = fs.realpathSync(root);
  const seenDirs = new Set<string>([rootReal]);
  const seenFiles = new Set<string>();

  const isIgnored = (rel: string, isDir: boolean, layers: IgnoreLayer[]): boolean => {
    const probe = isDir ? rel + '/' : rel;
    if (defaults.ignores(probe) || user.ignores(probe)) return true;
    for (const layer of layers) {
      const sub = layer.base ? probe.slice(layer.base.length + 1) : probe;
      if (sub && layer.matcher.ignores(sub)) return true;
    }
    return false;
  };

  /** `dirReal`: the directory's real path, for loop detection (a plain subdirectory's is its parent's plus its name). */
  const visit = (dirAbs: string, dirRel: string, dirReal: string, parentLayers: IgnoreLayer[]): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dirAbs, { withFileTypes: true });
    } catch (err) {
      result.skipped.push({ path: dirRel || '.', reason: `unreadable directory (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
      return;
    }
    let layers = parentLayers;
    // Only where the listing has one: a failed open per directory costs more than the listing.
    if (entries.some((e) => e.name === '.gitignore')) {
      try {
        const text = fs.readFileSync(path.join(dirAbs, '.gitignore'), 'utf8');
        layers = [...parentLayers, { base: dirRel, matcher: createIgnore().add(text) }];
      } catch {
        // unreadable, or not a file
      }
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const rel = dirRel ? `${dirRel}/${entry.name}` : entry.name;
      const abs = path.join(dirAbs, entry.name);
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      let real = abs;
      if (entry.isSymbolicLink()) {
        try {
          real = fs.realpathSync(abs);
          const st = fs.statSync(real);
          isDir = st.isDirectory();
          isFile = st.isFile();
        } catch {
          if (rel.endsWith('.py')) result.skipped.push({ path: rel, reason: 'broken symlink' });
          continue;
        }
        if (real !== rootReal && !real.startsWith(rootReal + path.sep)) {
          if (isFile && rel.endsWith('.py')) result.skipped.push({ path: rel, reason: 'symlink points outside the scanned tree' });
          continue;
        }
      }
      if (isIgnored(rel, isDir, layers)) continue;
      if (isDir) {
        const childReal = entry.isSymbolicLink() ? real : path.join(dirReal, entry.name);
        if (seenDirs.has(childReal)) continue; // a loop, or a second way into a directory already walked
        seenDirs.add(childReal);
        visit(abs, rel, childReal, layers);
      } else if (isFile) {
        if (entry.isSymbolicLink()) {
          if (seenFiles.has(real)) continue;
          seenFiles.add(real);
        }
        if (rel.endsWith('.py') || rel.endsWith('.pyi')) {
          if (rel.endsWith('.pyi')) continue; // stubs carry no behaviour
          let st: fs.Stats;
          try {
            st = fs.statSync(abs);
          } catch (err) {
            result.skipped.push({ path: rel, reason: `unreadable (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
            continue;
          }
          if (st.size > maxBytes) {
            result.skipped.push({ path: rel, reason: `larger than the size limit (${st.size} > ${maxBytes} bytes)` });
            continue;
          }
          result.python.push({ rel, abs, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino });
        } else {
          result.others.push(rel);
        }
      }
    }
  };

  visit(rootReal, '', rootReal, []);
  return result;
}
