/**
 * Where an absolute import starts, for trees that hold several Python projects.
 *
 * A module's name is its path from the scanned root (`services/billing/app/db.py` is
 * `services.billing.app.db`), but its code imports `app.db`: Python finds `app` on `sys.path`,
 * which for a service is the service's own directory. When two services of a monorepo both have
 * an `app` package, `app.db` is ambiguous by name alone, and every call across that service's
 * files went unresolved. This module says, from the tree's layout only, which directory an
 * absolute import of a file starts from.
 *
 * - A file's **source root** is the first directory above it that is not a package: climb from
 *   the file's directory while it holds an `__init__.py`. `services/billing/app/api/x.py` has
 *   `services/billing`; a script in a directory without `__init__.py` has its own directory
 *   (Python puts a script's directory first on `sys.path`).
 * - An import's head (`app` of `app.db`) starts at the source root when a package of that name
 *   (a directory with `__init__.py`) is directly in it. A script directly in its source root
 *   (`services/billing/scripts/backfill.py`) also reaches the packages of the directories above
 *   it, nearest first (it is usually run from the service's directory). A module or a folder
 *   without `__init__.py` is never a head here: beside a file it shadows a library of the same
 *   name only when that file runs as a script. The scanned root itself is where imports started
 *   before, so a file whose source root is the scanned root, or a head found only there, is
 *   unchanged.
 *
 * Pure and cheap: built once per scan from the walked paths, shipped to the workers.
 */
import { moduleNameOf } from './model.js';

export interface ImportRoots {
  /** Directories that hold an `__init__.py` (or `.pyi`), sorted. */
  packageDirs: string[];
  /**
   * Per source root (other than the scanned root): the packages directly in it, and for a file
   * directly in the root (a script), also the packages of the directories above it (nearest
   * first): each head and the module prefix it starts at.
   */
  tables: [dir: string, own: [head: string, prefix: string][], above: [head: string, prefix: string][]][];
}

/** Past this many entries in all, the tables keep each root's own packages only (a tree of thousands of script folders). */
const MAX_ENTRIES = 100_000;

const parentOf = (dir: string) => {
  const slash = dir.lastIndexOf('/');
  return slash < 0 ? '' : dir.slice(0, slash);
};

/** The module prefix of a directory: what `moduleNameOf` puts before the names under it (`src/` dropped). */
function prefixOf(dir: string): string {
  const name = moduleNameOf(`${dir}/__x__.py`);
  return name === '__x__' ? '' : name.slice(0, -'.__x__'.length);
}

function sourceRoot(file: string, packages: ReadonlySet<string>): string {
  let dir = parentOf(file);
  while (dir !== '' && packages.has(dir)) dir = parentOf(dir);
  return dir;
}

/** The import tables of a tree, from its Python files' paths (relative, `/`-separated). */
export function importRootsOf(pythonPaths: Iterable<string>): ImportRoots {
  const paths = [...pythonPaths].map((p) => p.replace(/\\/g, '/'));
  const packages = new Set<string>();
  for (const p of paths) if (/(^|\/)__init__\.pyi?$/.test(p)) packages.add(parentOf(p));
  // Per directory, the packages directly in it. Only packages: a module or a folder without
  // `__init__.py` beside a file shadows a library of the same name only when that file runs as
  // a script, which the layout cannot tell; a package is what a service's code imports.
  const children = new Map<string, Set<string>>();
  for (const dir of packages) {
    const name = dir.slice(dir.lastIndexOf('/') + 1);
    if (!/^[A-Za-z_]\w*$/.test(name)) continue;
    const parent = parentOf(dir);
    let set = children.get(parent);
    if (!set) children.set(parent, (set = new Set()));
    set.add(name);
  }
  const roots = new Map<string, boolean>();
  for (const p of paths) {
    const r = sourceRoot(p, packages);
    if (r === '') continue;
    const script = parentOf(p) === r;
    roots.set(r, (roots.get(r) ?? false) || script);
  }
  const sorted = (m: Map<string, string>) => [...m].filter(([, prefix]) => prefix !== '').sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
  const tables: ImportRoots['tables'] = [];
  let total = 0;
  for (const [root, hasScripts] of [...roots].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
    const own = new Map<string, string>();
    for (const head of children.get(root) ?? []) own.set(head, prefixOf(root));
    const above = new Map<string, string>();
    if (hasScripts && total < MAX_ENTRIES) {
      for (let dir = parentOf(root); dir !== ''; dir = parentOf(dir)) {
        const prefix = prefixOf(dir);
        for (const head of children.get(dir) ?? []) if (!own.has(head) && !above.has(head)) above.set(head, prefix);
      }
    }
    const o = sorted(own);
    const a = sorted(above);
    total += o.length + a.length;
    if (o.length || a.length) tables.push([root, o, a]);
  }
  return { packageDirs: [...packages].sort(), tables };
}

/** Rewrites an absolute import's dotted name for one file: `app.db` → `services.billing.app.db`. */
export type ImportPrefix = (dotted: string) => string;

/** For each file, its import rewriting, or undefined when its imports start at the scanned root. */
export function importPrefixer(roots: ImportRoots | undefined): (file: string) => ImportPrefix | undefined {
  if (!roots || roots.tables.length === 0) return () => undefined;
  const packages = new Set(roots.packageDirs);
  const tables = new Map(roots.tables.map(([dir, own, above]) => [dir, { own: new Map(own), all: new Map([...above, ...own]) }]));
  const made = new Map<string, ImportPrefix>();
  return (file) => {
    const path = file.replace(/\\/g, '/');
    const root = sourceRoot(path, packages);
    const t = tables.get(root);
    if (!t) return undefined;
    // A file inside a package imports from its root; a script directly in the root also reaches the packages above it.
    const script = parentOf(path) === root;
    const table = script ? t.all : t.own;
    if (table.size === 0) return undefined;
    const key = `${script ? 's' : 'p'}:${root}`;
    let fn = made.get(key);
    if (!fn) {
      fn = (dotted) => {
        const dot = dotted.indexOf('.');
        const prefix = table.get(dot < 0 ? dotted : dotted.slice(0, dot));
        return prefix ? `${prefix}.${dotted}` : dotted;
      };
      made.set(key, fn);
    }
    return fn;
  };
}
