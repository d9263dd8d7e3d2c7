/**
 * The tech stack from dependency manifests and docker-compose files: which database, ORM,
 * drivers and async frameworks the project declares, with the version constraint as written
 * and the file it was found in. Broken TOML/YAML becomes a problem entry; the rest stands.
 */
import { parseYamlQuietly } from './yaml.js';
import { parse as parseToml } from 'smol-toml';
import type { DatabaseService, Problem, StackEntry } from './context.js';

export type ReadFile = (rel: string) => string | null;

type Kind = NonNullable<StackEntry['kind']>;

/** Python distributions we report, by normalized name → [stack key, kind]. */
const PYTHON_PACKAGES: Record<string, [string, Kind]> = {
  sqlalchemy: ['sqlalchemy', 'orm'],
  sqlmodel: ['sqlmodel', 'orm'],
  django: ['django', 'orm'],
  'tortoise-orm': ['tortoise-orm', 'orm'],
  peewee: ['peewee', 'orm'],
  'flask-sqlalchemy': ['flask-sqlalchemy', 'orm'],
  'advanced-alchemy': ['advanced-alchemy', 'orm'],
  databases: ['databases', 'orm'],
  asyncpg: ['asyncpg', 'driver'],
  psycopg2: ['psycopg2', 'driver'],
  'psycopg2-binary': ['psycopg2', 'driver'],
  psycopg: ['psycopg', 'driver'],
  'psycopg-binary': ['psycopg', 'driver'],
  'psycopg-pool': ['psycopg-pool', 'driver'],
  aiosqlite: ['aiosqlite', 'driver'],
  pymysql: ['pymysql', 'driver'],
  aiomysql: ['aiomysql', 'driver'],
  asyncmy: ['asyncmy', 'driver'],
  mysqlclient: ['mysqlclient', 'driver'],
  'mysql-connector-python': ['mysql-connector-python', 'driver'],
  redis: ['redis', 'driver'],
  fastapi: ['fastapi', 'framework'],
  starlette: ['starlette', 'framework'],
  aiohttp: ['aiohttp', 'framework'],
  flask: ['flask', 'framework'],
  celery: ['celery', 'framework'],
  arq: ['arq', 'framework'],
  dramatiq: ['dramatiq', 'framework'],
  huey: ['huey', 'framework'],
  saq: ['saq', 'framework'],
  apscheduler: ['apscheduler', 'framework'],
  uvicorn: ['uvicorn', 'framework'],
  gunicorn: ['gunicorn', 'framework'],
  anyio: ['anyio', 'framework'],
  trio: ['trio', 'framework'],
  alembic: ['alembic', 'migration'],
  pydantic: ['pydantic', 'other'],
  greenlet: ['greenlet', 'other'],
  broadcaster: ['broadcaster', 'other'],
};

/** Drivers that name the database they talk to. */
const DRIVER_DATABASE: Record<string, string> = {
  asyncpg: 'postgresql',
  psycopg2: 'postgresql',
  psycopg: 'postgresql',
  'psycopg-pool': 'postgresql',
  aiosqlite: 'sqlite',
  pymysql: 'mysql',
  aiomysql: 'mysql',
  asyncmy: 'mysql',
  mysqlclient: 'mysql',
  'mysql-connector-python': 'mysql',
  pg: 'postgresql',
  pgx: 'postgresql',
  'lib/pq': 'postgresql',
};

const NODE_PACKAGES: Record<string, [string, Kind]> = {
  pg: ['pg', 'driver'],
  postgres: ['postgres-js', 'driver'],
  prisma: ['prisma', 'orm'],
  '@prisma/client': ['prisma', 'orm'],
  typeorm: ['typeorm', 'orm'],
  sequelize: ['sequelize', 'orm'],
  knex: ['knex', 'orm'],
  'drizzle-orm': ['drizzle-orm', 'orm'],
};

const GO_MODULES: Record<string, [string, Kind]> = {
  'github.com/jackc/pgx/v5': ['pgx', 'driver'],
  'github.com/jackc/pgx/v4': ['pgx', 'driver'],
  'github.com/lib/pq': ['lib/pq', 'driver'],
  'gorm.io/gorm': ['gorm', 'orm'],
};

export interface StackFacts {
  stack: Record<string, StackEntry>;
  database: DatabaseService[];
  problems: Problem[];
}

export function normalizePackage(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

const REQUIREMENTS = /(^|\/)requirements[^/]*\.(txt|in)$|(^|\/)requirements\/[^/]+\.(txt|in)$/;
const COMPOSE = /(^|\/)(docker-)?compose[^/]*\.ya?ml$/;

/** Manifest files among `files`, in the order they are read (shallow first, then by path). */
export function manifestFiles(files: string[]): string[] {
  const picked = files.filter((f) => {
    const base = f.slice(f.lastIndexOf('/') + 1);
    return (
      REQUIREMENTS.test(f) ||
      COMPOSE.test(f) ||
      base === 'pyproject.toml' ||
      base === 'setup.cfg' ||
      base === 'Pipfile' ||
      base === 'package.json' ||
      base === 'go.mod' ||
      f === 'docs/project/tech_stack.md'
    );
  });
  return picked.sort(byDepthThenPath);
}

export function byDepthThenPath(a: string, b: string): number {
  const da = a.split('/').length;
  const db = b.split('/').length;
  return da - db || (a < b ? -1 : a > b ? 1 : 0);
}

class StackBuilder {
  readonly stack: Record<string, StackEntry> = {};
  /** A later source only fills in a version the earlier one lacked. */
  add(key: string, version: string | null, source: string, kind: Kind): void {
    const v = version && version !== '*' ? version : null;
    const existing = this.stack[key];
    if (!existing) this.stack[key] = { version: v, source, kind };
    else if (existing.version === null && v !== null) this.stack[key] = { version: v, source, kind };
  }
  addPython(name: string, version: string | null, source: string): void {
    const hit = PYTHON_PACKAGES[normalizePackage(name)];
    if (!hit) return;
    this.add(hit[0], version, source, hit[1]);
    const db = DRIVER_DATABASE[hit[0]];
    if (db) this.add(db, null, source, 'database');
  }
}

export function discoverStack(files: string[], read: ReadFile): StackFacts {
  const builder = new StackBuilder();
  const database: DatabaseService[] = [];
  const problems: Problem[] = [];
  const manifests = manifestFiles(files);
  const fileSet = new Set(files);
  const techStackDoc = manifests.filter((f) => f === 'docs/project/tech_stack.md');
  // Compose files first: their database versions are the most precise.
  for (const f of manifests.filter((m) => COMPOSE.test(m))) {
    const text = read(f);
    if (text === null) continue;
    readCompose(f, text, database, problems);
  }
  for (const db of database) builder.add(db.engine, db.version, db.file, 'database');
  const seenRequirements = new Set<string>();
  for (const f of manifests) {
    if (COMPOSE.test(f) || f === 'docs/project/tech_stack.md') continue;
    const text = read(f);
    if (text === null) continue;
    const base = f.slice(f.lastIndexOf('/') + 1);
    try {
      if (REQUIREMENTS.test(f)) readRequirements(f, text, builder, read, fileSet, seenRequirements);
      else if (base === 'pyproject.toml') readPyproject(f, text, builder);
      else if (base === 'Pipfile') readPipfile(f, text, builder);
      else if (base === 'setup.cfg') readSetupCfg(f, text, builder);
      else if (base === 'package.json') readPackageJson(f, text, builder);
      else if (base === 'go.mod') readGoMod(f, text, builder);
    } catch (err) {
      const line = (err as { line?: unknown }).line;
      const where = typeof line === 'number' ? ` (line ${line})` : '';
      problems.push({ file: f, reason: `cannot parse: ${firstLine(err)}${where}` });
    }
  }
  for (const f of techStackDoc) {
    const text = read(f);
    if (text !== null) readTechStackDoc(f, text, builder);
  }
  return { stack: sortKeys(builder.stack), database: database.sort(compareDb), problems };
}

function compareDb(a: DatabaseService, b: DatabaseService): number {
  return a.file < b.file ? -1 : a.file > b.file ? 1 : a.service < b.service ? -1 : a.service > b.service ? 1 : 0;
}

export function sortKeys<T>(rec: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of Object.keys(rec).sort()) out[k] = rec[k]!;
  return out;
}

export function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0]!.trim().slice(0, 200);
}

/** `SQLAlchemy[asyncio] >= 2.0 ; python_version > "3.8"` → name + constraint. */
export function parseRequirement(spec: string): { name: string; version: string | null } | null {
  const s = spec.split(';')[0]!.trim();
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$/.exec(s);
  if (!m) return null;
  let rest = m[3]!.trim();
  if (rest.startsWith('@')) rest = '';
  rest = rest.replace(/\s+/g, '').replace(/^\((.*)\)$/, '$1');
  return { name: m[1]!, version: rest || null };
}

function readRequirements(
  file: string,
  text: string,
  builder: StackBuilder,
  read: ReadFile,
  fileSet: Set<string>,
  seen: Set<string>,
): void {
  if (seen.has(file)) return;
  seen.add(file);
  const dir = file.includes('/') ? file.slice(0, file.lastIndexOf('/') + 1) : '';
  for (const rawLine of text.split(/\r?\n/)) {
    // Comments, and the `\` that continues a line into `--hash=` options.
    const line = rawLine.replace(/(^|\s)#.*$/, '').replace(/\\$/, '').trim();
    if (!line) continue;
    const include = /^(?:-r|--requirement|-c|--constraint)\s*=?\s*(\S+)/.exec(line);
    if (include) {
      const target = normalizePath(dir + include[1]!);
      if (fileSet.has(target) && !seen.has(target)) {
        const t = read(target);
        if (t !== null) readRequirements(target, t, builder, read, fileSet, seen);
      }
      continue;
    }
    if (line.startsWith('-')) continue;
    const req = parseRequirement(line);
    if (req) builder.addPython(req.name, req.version, file);
  }
}

/** The deepest project directory (one with a manifest, `ProjectContext.projects`) that holds `path`; `''` for none. */
export function projectDirOf(projects: readonly string[], path: string): string {
  let best = '';
  for (const d of projects) if (path.startsWith(`${d}/`) && d.length > best.length) best = d;
  return best;
}

/** `a/./b/../c` → `a/c`, relative paths only. */
/**
 * Whether a path lies under one of the given directories (relative, no trailing slash; `''` is
 * ignored). It looks up each ancestor directory of the path in a set, so a monorepo with hundreds
 * of migration script locations costs a path's depth, not the number of locations.
 */
export function underDirectories(dirs: Iterable<string>): (path: string) => boolean {
  const set = new Set<string>();
  for (const d of dirs) if (d !== '') set.add(d.replace(/\/+$/, ''));
  if (set.size === 0) return () => false;
  return (path) => {
    for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
      if (set.has(path.slice(0, i))) return true;
    }
    return false;
  };
}

export function normalizePath(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

type Toml = Record<string, unknown>;

function obj(v: unknown): Toml {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Toml) : {};
}

function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function readPep508List(items: unknown, file: string, builder: StackBuilder): void {
  for (const item of list(items)) {
    if (typeof item !== 'string') continue;
    const req = parseRequirement(item);
    if (req) builder.addPython(req.name, req.version, file);
  }
}

/** Poetry / Pipfile style: `name = "^1.2"` or `name = {version = "^1.2", extras = [...]}`. */
function readDependencyTable(table: unknown, file: string, builder: StackBuilder): void {
  for (const [name, spec] of Object.entries(obj(table))) {
    if (name.toLowerCase() === 'python') continue;
    let version: string | null = null;
    if (typeof spec === 'string') version = spec;
    else if (Array.isArray(spec)) version = typeof obj(spec[0]).version === 'string' ? (obj(spec[0]).version as string) : null;
    else if (typeof obj(spec).version === 'string') version = obj(spec).version as string;
    builder.addPython(name, version ? version.replace(/\s+/g, '') : null, file);
  }
}

function readPyproject(file: string, text: string, builder: StackBuilder): void {
  const doc = parseToml(text) as Toml;
  const project = obj(doc.project);
  readPep508List(project.dependencies, file, builder);
  for (const group of Object.values(obj(project['optional-dependencies']))) readPep508List(group, file, builder);
  for (const group of Object.values(obj(doc['dependency-groups']))) readPep508List(group, file, builder);
  const tool = obj(doc.tool);
  const poetry = obj(tool.poetry);
  readDependencyTable(poetry.dependencies, file, builder);
  readDependencyTable(poetry['dev-dependencies'], file, builder);
  for (const group of Object.values(obj(poetry.group))) readDependencyTable(obj(group).dependencies, file, builder);
  const uv = obj(tool.uv);
  readPep508List(uv['dev-dependencies'], file, builder);
  const pdm = obj(tool.pdm);
  for (const group of Object.values(obj(pdm['dev-dependencies']))) readPep508List(group, file, builder);
}

function readPipfile(file: string, text: string, builder: StackBuilder): void {
  const doc = parseToml(text) as Toml;
  readDependencyTable(doc.packages, file, builder);
  readDependencyTable(doc['dev-packages'], file, builder);
}

/** `[options] install_requires =` and `[options.extras_require]` continuation lines. */
function readSetupCfg(file: string, text: string, builder: StackBuilder): void {
  let section = '';
  let inList = false;
  for (const raw of text.split(/\r?\n/)) {
    const sec = /^\s*\[([^\]]+)\]\s*$/.exec(raw);
    if (sec) {
      section = sec[1]!.trim();
      inList = false;
      continue;
    }
    const line = raw.replace(/(^|\s)[#;].*$/, '');
    const key = /^([A-Za-z_][\w.-]*)\s*[=:]\s*(.*)$/.exec(line);
    if (key) {
      inList = (section === 'options' && key[1] === 'install_requires') || section === 'options.extras_require';
      if (inList && key[2]!.trim()) addRequirementLine(key[2]!, file, builder);
      continue;
    }
    if (inList && /^\s+\S/.test(line)) addRequirementLine(line, file, builder);
    else if (line.trim()) inList = false;
  }
}

function addRequirementLine(line: string, file: string, builder: StackBuilder): void {
  const req = parseRequirement(line.trim());
  if (req) builder.addPython(req.name, req.version, file);
}

function readPackageJson(file: string, text: string, builder: StackBuilder): void {
  const doc = obj(JSON.parse(text));
  for (const section of ['dependencies', 'devDependencies']) {
    for (const [name, version] of Object.entries(obj(doc[section]))) {
      const hit = NODE_PACKAGES[name];
      if (!hit) continue;
      builder.add(hit[0], typeof version === 'string' ? version : null, file, hit[1]);
      const db = DRIVER_DATABASE[hit[0]];
      if (db) builder.add(db, null, file, 'database');
    }
  }
}

function readGoMod(file: string, text: string, builder: StackBuilder): void {
  for (const m of text.matchAll(/^\s*(?:require\s+)?([\w.\-/]+)\s+(v[\w.\-+]+)/gm)) {
    const hit = GO_MODULES[m[1]!];
    if (!hit) continue;
    builder.add(hit[0], m[2]!, file, hit[1]);
    const db = DRIVER_DATABASE[hit[0]];
    if (db) builder.add(db, null, file, 'database');
  }
}

/** Names a tech-stack document may use, → stack key. Only fills gaps the manifests left. */
const DOC_NAMES: [RegExp, string, Kind][] = [
  [/\bpostgres(?:ql)?\b/i, 'postgresql', 'database'],
  [/\bmysql\b/i, 'mysql', 'database'],
  [/\bsqlite\b/i, 'sqlite', 'database'],
  [/\bsqlalchemy\b/i, 'sqlalchemy', 'orm'],
  [/\bsqlmodel\b/i, 'sqlmodel', 'orm'],
  [/\bfastapi\b/i, 'fastapi', 'framework'],
  [/\bstarlette\b/i, 'starlette', 'framework'],
  [/\baiohttp\b/i, 'aiohttp', 'framework'],
  [/\bcelery\b/i, 'celery', 'framework'],
  [/\basyncpg\b/i, 'asyncpg', 'driver'],
  [/\bpsycopg2\b/i, 'psycopg2', 'driver'],
  [/\bpsycopg(?:3)?\b(?!2)/i, 'psycopg', 'driver'],
  [/\balembic\b/i, 'alembic', 'migration'],
  [/\bredis\b/i, 'redis', 'driver'],
];

function readTechStackDoc(file: string, text: string, builder: StackBuilder): void {
  for (const line of text.split(/\r?\n/)) {
    for (const [re, key, kind] of DOC_NAMES) {
      const m = re.exec(line);
      if (!m) continue;
      const after = line.slice(m.index + m[0].length);
      const v = /^[\s|:*_`-]*v?(\d+(?:\.\d+){0,2}(?:\.x)?)/.exec(after);
      if (builder.stack[key]?.version) continue;
      builder.add(key, v ? v[1]! : null, file, kind);
    }
  }
}

const DB_IMAGES: [RegExp, string][] = [
  [/(^|\/)(postgres|postgresql|postgis|timescaledb(-ha)?|pgvector|supabase-postgres|cloudnative-pg)$/, 'postgresql'],
  [/(^|\/)mysql(-server)?$/, 'mysql'],
  [/(^|\/)mariadb$/, 'mariadb'],
  [/(^|\/)mongo(db)?$/, 'mongodb'],
  [/(^|\/)(redis|redis-stack|valkey)$/, 'redis'],
];

function readCompose(file: string, text: string, out: DatabaseService[], problems: Problem[]): void {
  let doc: unknown;
  try {
    const parsed = parseYamlQuietly(text);
    doc = parsed.value;
    for (const w of parsed.warnings) problems.push({ file, reason: `YAML: ${w}` });
  } catch (err) {
    problems.push({ file, reason: `cannot parse YAML: ${firstLine(err)}` });
    return;
  }
  for (const [service, def] of Object.entries(obj(obj(doc).services))) {
    const rawImage = obj(def).image;
    if (typeof rawImage !== 'string') continue;
    // `${POSTGRES_IMAGE:-postgres:16}` → its default.
    const image = rawImage.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}/g, '$1').trim();
    const at = image.indexOf('@');
    const noDigest = at >= 0 ? image.slice(0, at) : image;
    const colon = noDigest.lastIndexOf(':');
    const slash = noDigest.lastIndexOf('/');
    const name = colon > slash ? noDigest.slice(0, colon) : noDigest;
    const tag = colon > slash ? noDigest.slice(colon + 1) : '';
    const hit = DB_IMAGES.find(([re]) => re.test(name.toLowerCase()));
    if (!hit) continue;
    out.push({ engine: hit[1], version: imageVersion(hit[1], tag), image, service, file });
  }
}

/** Major version from an image tag: `16-alpine` → 16, `15-3.4` (postgis) → 15, `latest-pg16` → 16. */
function imageVersion(engine: string, tag: string): string | null {
  if (engine === 'postgresql') {
    const pg = /pg(\d+)/.exec(tag);
    if (pg && !/^\d/.test(tag)) return pg[1]!;
  }
  const m = /^v?(\d+)(?:\.(\d+))?/.exec(tag);
  if (!m) return null;
  // PostgreSQL ≥ 10 has one-number majors; 9.6 keeps two; MySQL keeps 8.0.
  if (engine === 'postgresql') return Number(m[1]) >= 10 || !m[2] ? m[1]! : `${m[1]}.${m[2]}`;
  return m[2] !== undefined ? `${m[1]}.${m[2]}` : m[1]!;
}
