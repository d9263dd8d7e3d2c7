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
 * - An import's head (`app` of `app.db`) starts at the nearest of the source root and its
 *   ancestors below the scanned root that has a child of that name (a package, a directory of
 *   Python files, or a `.py` module). The scanned root itself is where imports started before,
 *   so a file whose source root is the scanned root, or a head found only there, is unchanged.
 *
 * Pure and cheap: built once per scan from the walked paths, shipped to the workers.
 */
import { moduleNameOf } from './model.js';

/**
 * The standard library's top-level modules (`sys.stdlib_module_names`, Python 3.11): a project module
 * of the same name beside a file shadows it only when that file runs as a script, so an import of
 * one of these names is left to the standard library.
 */
const STDLIB = new Set([
  'abc', 'aifc', 'antigravity', 'argparse', 'array', 'ast', 'asynchat', 'asyncio', 'asyncore',
  'atexit', 'audioop', 'base64', 'bdb', 'binascii', 'bisect', 'builtins', 'bz2', 'cProfile',
  'calendar', 'cgi', 'cgitb', 'chunk', 'cmath', 'cmd', 'code', 'codecs', 'codeop', 'collections',
  'colorsys', 'compileall', 'concurrent', 'configparser', 'contextlib', 'contextvars', 'copy',
  'copyreg', 'crypt', 'csv', 'ctypes', 'curses', 'dataclasses', 'datetime', 'dbm', 'decimal',
  'difflib', 'dis', 'distutils', 'doctest', 'email', 'encodings', 'ensurepip', 'enum', 'errno',
  'faulthandler', 'fcntl', 'filecmp', 'fileinput', 'fnmatch', 'fractions', 'ftplib', 'functools',
  'gc', 'genericpath', 'getopt', 'getpass', 'gettext', 'glob', 'graphlib', 'grp', 'gzip',
  'hashlib', 'heapq', 'hmac', 'html', 'http', 'idlelib', 'imaplib', 'imghdr', 'imp', 'importlib',
  'inspect', 'io', 'ipaddress', 'itertools', 'json', 'keyword', 'lib2to3', 'linecache', 'locale',
  'logging', 'lzma', 'mailbox', 'mailcap', 'marshal', 'math', 'mimetypes', 'mmap',
  'modulefinder', 'msilib', 'msvcrt', 'multiprocessing', 'netrc', 'nis', 'nntplib', 'nt',
  'ntpath', 'nturl2path', 'numbers', 'opcode', 'operator', 'optparse', 'os', 'ossaudiodev',
  'pathlib', 'pdb', 'pickle', 'pickletools', 'pipes', 'pkgutil', 'platform', 'plistlib',
  'poplib', 'posix', 'posixpath', 'pprint', 'profile', 'pstats', 'pty', 'pwd', 'py_compile',
  'pyclbr', 'pydoc', 'pydoc_data', 'pyexpat', 'queue', 'quopri', 'random', 're', 'readline',
  'reprlib', 'resource', 'rlcompleter', 'runpy', 'sched', 'secrets', 'select', 'selectors',
  'shelve', 'shlex', 'shutil', 'signal', 'site', 'smtpd', 'smtplib', 'sndhdr', 'socket',
  'socketserver', 'spwd', 'sqlite3', 'sre_compile', 'sre_constants', 'sre_parse', 'ssl', 'stat',
  'statistics', 'string', 'stringprep', 'struct', 'subprocess', 'sunau', 'symtable', 'sys',
  'sysconfig', 'syslog', 'tabnanny', 'tarfile', 'telnetlib', 'tempfile', 'termios', 'textwrap',
  'this', 'threading', 'time', 'timeit', 'tkinter', 'token', 'tokenize', 'tomllib', 'trace',
  'traceback', 'tracemalloc', 'tty', 'turtle', 'turtledemo', 'types', 'typing', 'unicodedata',
  'unittest', 'urllib', 'uu', 'uuid', 'venv', 'warnings', 'wave', 'weakref', 'webbrowser',
  'winreg', 'winsound', 'wsgiref', 'xdrlib', 'xml', 'xmlrpc', 'zipapp', 'zipfile', 'zipimport',
  'zlib', 'zoneinfo'
]);

export interface ImportRoots {
  /** Directories that hold an `__init__.py` (or `.pyi`), sorted. */
  packageDirs: string[];
  /** Per source root (other than the scanned root): each head and the module prefix it starts at. */
  tables: [dir: string, entries: [head: string, prefix: string][]][];
}

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
  // Per directory, the import names directly under it: `x.py` modules and directories holding Python files.
  const children = new Map<string, Set<string>>();
  const addChild = (dir: string, name: string) => {
    let set = children.get(dir);
    if (!set) children.set(dir, (set = new Set()));
    set.add(name);
  };
  for (const p of paths) {
    const dir = parentOf(p);
    const base = p.slice(dir === '' ? 0 : dir.length + 1);
    if (/^__init__\.pyi?$/.test(base)) packages.add(dir);
    else if (/^[A-Za-z_]\w*\.pyi?$/.test(base)) addChild(dir, base.replace(/\.pyi?$/, ''));
    for (let d = dir; d !== ''; d = parentOf(d)) {
      const name = d.slice(d.lastIndexOf('/') + 1);
      if (/^[A-Za-z_]\w*$/.test(name)) addChild(parentOf(d), name);
    }
  }
  const roots = new Set<string>();
  for (const p of paths) {
    const r = sourceRoot(p, packages);
    if (r !== '') roots.add(r);
  }
  const tables: ImportRoots['tables'] = [];
  for (const root of [...roots].sort()) {
    const table = new Map<string, string>();
    for (let dir = root; dir !== ''; dir = parentOf(dir)) {
      const prefix = prefixOf(dir);
      for (const head of children.get(dir) ?? []) if (!table.has(head) && !STDLIB.has(head)) table.set(head, prefix);
    }
    const entries = [...table].filter(([, prefix]) => prefix !== '').sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (entries.length) tables.push([root, entries]);
  }
  return { packageDirs: [...packages].sort(), tables };
}

/** Rewrites an absolute import's dotted name for one file: `app.db` → `services.billing.app.db`. */
export type ImportPrefix = (dotted: string) => string;

/** For each file, its import rewriting, or undefined when its imports start at the scanned root. */
export function importPrefixer(roots: ImportRoots | undefined): (file: string) => ImportPrefix | undefined {
  if (!roots || roots.tables.length === 0) return () => undefined;
  const packages = new Set(roots.packageDirs);
  const tables = new Map(roots.tables.map(([dir, entries]) => [dir, new Map(entries)]));
  const made = new Map<string, ImportPrefix | undefined>();
  return (file) => {
    const root = sourceRoot(file.replace(/\\/g, '/'), packages);
    const table = tables.get(root);
    if (!table) {
      made.set(root, undefined);
      return undefined;
    }
    let fn = made.get(root);
    if (!fn) {
      fn = (dotted) => {
        const dot = dotted.indexOf('.');
        const prefix = table.get(dot < 0 ? dotted : dotted.slice(0, dot));
        return prefix ? `${prefix}.${dotted}` : dotted;
      };
      made.set(root, fn);
    }
    // `import redis` inside `redis.py`: a module never imports itself; the name is a library's.
    const slash = file.lastIndexOf('/');
    const own = file.slice(slash + 1).replace(/\.pyi?$/, '');
    if (!table.has(own) || parentOf(file.replace(/\\/g, '/')) !== root) return fn;
    const base = fn;
    return (dotted) => (dotted === own || dotted.startsWith(`${own}.`) ? dotted : base(dotted));
  };
}
