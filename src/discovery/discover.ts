/**
 * Builds the {@link ProjectContext} on the main thread: manifests and compose files, then the few
 * Python files whose text mentions engines, sessions, models, migrations or channels (a cheap
 * substring test picks them; only those are parsed), then `.sql` files and ADRs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PythonParser } from '../parse/parser.js';
import { buildFileModel, isTestPath, moduleNameOf, QualifiedIndex, sameQualified } from '../semantic/model.js';
import { importPrefixer, importRootsOf, type ImportPrefix } from '../semantic/importRoots.js';
import { DRIVER_CONNECT, SESSION_CLASS } from '../semantic/resources.js';
import { extractSqlFacts, loadSqlParser } from '../rules/sql/parse.js';
import { discoverAdrs } from './adrs.js';
import {
  emptyContext,
  type EngineInfo,
  type EventSite,
  type LiteralValue,
  type AssociationProxyInfo,
  type ModelInfo,
  type NotifyFunctionInfo,
  type ProjectContext,
  type RelationshipInfo,
  type SessionFactoryInfo,
  type SessionHelperInfo,
  type EngineGetterInfo,
  type StreamingFactoryInfo,
  type SessionProviderInfo,
  type SharedSessionInfo,
  type StackEntry,
  type TriggerInfo,
} from './context.js';
import { discoverStack, firstLine, normalizePath, sortKeys, underDirectories, type ReadFile } from './manifests.js';
import { ENGINE_GETTER_HINT, isDeclarativeRootBase, isLibraryModelBase, pythonFileFacts, type BackrefFact, type ClassFacts, type EngineGetterFact, type HelperCandidate, type ImperativeMapping, type ProviderCandidate, type StreamingCandidate, type PythonFileFacts, type SqlString } from './pythonFacts.js';
import { DYNAMIC, PLACEHOLDER, type LiteralScope } from './pythonLiterals.js';

/** A Python project's manifest: its directory is a project of the tree. */
const PROJECT_MANIFEST = /(^|\/)(pyproject\.toml|setup\.py|setup\.cfg|Pipfile|requirements[\w.-]*\.txt)$/;

/** Problems listed per file for SQL that does not parse; the rest are counted in one line. */
const MAX_SQL_PROBLEMS_PER_FILE = 5;

/** Files larger than this are not read for the context. */
const MAX_BYTES = 2 * 1024 * 1024;

/**
 * A Python file is parsed for the context only when its text matches one of these: cheap tests
 * that keep the main thread away from the bulk of a repository.
 */
const MODEL_HINTS =
  /DeclarativeBase|declarative_base|generate_base|\.mapped\b|mapped_as_dataclass|declared_attr|table=True|__tablename__|__mapper_args__|mapped_column|Mapped\[|relationship\(|Relationship\(|SQLModel|\.Model\s*[,)]|\.Column\(/;
/** Engines and sessions: only SQLAlchemy's own, so an import from it or a qualified call (not a project wrapper of the same name). */
const SQLALCHEMY_IMPORT =
  /\bfrom\s+(?:sqlalchemy|sqlmodel)[\w.]*\s+import\s+(?:\([^)]*|[^\n]*)\b(?:create_engine|create_async_engine|engine_from_config|async_engine_from_config|sessionmaker|async_sessionmaker|scoped_session|async_scoped_session|Session|AsyncSession|Table|Column|event|listens_for)\b/;
/**
 * Importing `Session`/`AsyncSession` for annotations is what nearly every repository and route
 * file does; only a file that calls one of these names can define an engine, factory or table.
 */
const SQLALCHEMY_CONSTRUCTION =
  /\b(?:create_engine|create_async_engine|engine_from_config|async_engine_from_config|sessionmaker|async_sessionmaker|scoped_session|async_scoped_session|Session|AsyncSession|Table|Column|listens_for|listen)\s*\(/;
const QUALIFIED_CALL = /\.(?:create_engine|create_async_engine|engine_from_config|async_engine_from_config|sessionmaker|async_sessionmaker|scoped_session|Table)\(|event\.listen/;
const EVENT_HINTS = /pg_notify|NOTIFY|LISTEN|add_listener|subscribe\(|publish\(|DDL\(|RunSQL|op\.execute/;
const ASYNCPG_POOL = /\bcreate_pool\(/;
const PROVIDER_HINT = /yield\s+[\w.]*(session|db\b|database)|return\s+[\w.]*(Session|session|Maker|maker|connect)\w*\(/i;

/** `SQLAlchemy(...)` called: with a Flask-SQLAlchemy import, the extension is made here. */
const FLASK_SQLALCHEMY_CALL = /\bSQLAlchemy\s*\(/;
/** A Flask-SQLAlchemy (or Flask-AppBuilder) extension: its `db` handle is what views and models use. */
const FLASK_SQLALCHEMY_IMPORT = /^\s*(?:from\s+(?:flask_sqlalchemy|flask_appbuilder)[\w.]*\s+import|import\s+(?:flask_sqlalchemy|flask_appbuilder)\b)/m;

/** A module-level `name = handle.session`. */
const MODULE_SESSION_ALIAS = /^[A-Za-z_]\w*\s*=\s*[A-Za-z_]\w*\.session\s*(#.*)?$/m;

function worthParsing(source: string): boolean {
  // Every test below reads the whole text of every Python file of the tree (the facts pass's
  // largest cost after the parse). A multi-line pattern that cannot match without a literal
  // (`Depends(`, a session/maker name, `engine`) runs only when the text holds that literal:
  // `includes` scans several times faster than a `^`-anchored pattern tried at every offset.
  // Each guard is implied by its pattern, so the answer is the same.
  let sessionWord: boolean | undefined;
  const sessionLike = () => (sessionWord ??= source.includes('ession') || source.includes('aker'));
  return (
    MODEL_HINTS.test(source) ||
    EVENT_HINTS.test(source) ||
    ((source.includes('sqlalchemy') || source.includes('sqlmodel')) && SQLALCHEMY_CONSTRUCTION.test(source) && SQLALCHEMY_IMPORT.test(source)) ||
    QUALIFIED_CALL.test(source) ||
    PROVIDER_HINT.test(source) ||
    FLASK_ENGINE_CONFIG.test(source) ||
    TUPLE_UNPACK.test(source) ||
    (ASYNCPG_POOL.test(source) && source.includes('asyncpg')) ||
    (source.includes('Response') && STREAMING_RESPONSE_HINT.test(source)) ||
    VIEW_CLASS_HINT.test(source) ||
    (sessionLike() && MODULE_SESSION_HINT.test(source)) ||
    (source.includes('Depends(') && DEPENDENCY_ALIAS_HINT.test(source)) ||
    // `db = SQLAlchemy()` alone in an extensions module (the app-factory layout): the engine PA404 judges.
    (FLASK_SQLALCHEMY_CALL.test(source) && importsFlaskSqlalchemy(source)) ||
    // `db_session = db.session` at module level: another name for a Flask-SQLAlchemy handle's session.
    (source.includes('.session') && MODULE_SESSION_ALIAS.test(source)) ||
    // The rarer `def close`/`__exit__` first: the owner pattern is tried at every line.
    (RELEASE_METHOD_HINT.test(source) && OWNER_HINT.test(source)) ||
    // `cache = ItemCache()` at module level, whose `__init__` makes `self.session = SessionLocal()`.
    (sessionLike() && INIT_SESSION_HINT.test(source) && MODULE_INSTANCE_HINT.test(source)) ||
    // `def get_write_engine(): return _engine_for(url)`: a getter other modules call `.connect()` on.
    (source.includes('ngine') && ENGINE_GETTER_HINT.test(source)) ||
    // `s.sync_session.expire_on_commit = False`: a session setting no factory call shows.
    source.includes('expire_on_commit') ||
    // `session_source = LedgerSession` in a class body (a subclass choosing its base's factory).
    (sessionLike() && source.includes('class ') && CLASS_FACTORY_ATTR_HINT.test(source))
  );
}

/** A class attribute (or `self.` attribute) bound to a bare name, the one or the other named like a session factory. */
const CLASS_FACTORY_ATTR_HINT = /^[ \t]+(?:self\.)?(?:\w*(?:ession|aker)\w*[ \t]*=[ \t]*[A-Za-z_][\w.]*|\w+[ \t]*=[ \t]*[\w.]*(?:ession|aker)\w*)[ \t]*$/m;

/** {@link FLASK_SQLALCHEMY_IMPORT}, tried only when the text names one of its packages (six files of the 6,500 of the field and held-out repositories do). */
function importsFlaskSqlalchemy(source: string): boolean {
  return (source.includes('flask_sqlalchemy') || source.includes('flask_appbuilder')) && FLASK_SQLALCHEMY_IMPORT.test(source);
}
/** `SessionDep = Annotated[AsyncSession, Depends(get_db)]`: a dependency alias other modules annotate with. */
const DEPENDENCY_ALIAS_HINT = /^[A-Za-z_]\w*\s*=\s*(?:typing\.)?Annotated\[[^=]*?Depends\(/m;
/** `db = SessionLocal()` at module level: maybe one session every importer shares (decided against the factories). */
/**
 * `db = SessionLocal()`, `repo = Repo(SessionLocal())` at module level, or `db = SessionLocal()` in a
 * class body (within 20 lines of the `class`). Each skipped line is matched one way only (`[ \t]` then
 * the rest): a pattern with two ways per line backtracks exponentially over 20 lines.
 */
const MODULE_SESSION_HINT = /^[A-Za-z_]\w*\s*=\s*(?:[\w.]+\(\s*)?[\w.]*(Session|session|Maker|maker)\w*\(\s*\)|^class\s[^\n]*\n(?:[ \t][^\n]*\n){0,20}?[ \t]+[A-Za-z_]\w*\s*=\s*[\w.]*(Session|session|Maker|maker)\w*\(\s*\)/m;
/** `self.session = SessionLocal()` in a class that may close it (`def close`/`__exit__`): an owner whose instances acquire a session. */
const OWNER_HINT = /^\s+self\.\w+\s*=\s*[\w.]*(Session|session|Maker|maker|connect)\w*\(/m;
const RELEASE_METHOD_HINT = /\bdef\s+(close|aclose|__exit__|__aexit__|dispose|shutdown)\s*\(/;
/** `self.session = SessionLocal()`: a session made with no argument in a method. */
const INIT_SESSION_HINT = /^[ \t]+self\.\w+[ \t]*=[ \t]*[\w.]*(?:Session|session|Maker|maker)\w*\([ \t]*\)/m;
/** `cache = ItemCache()`: an instance of a class made at module level. */
const MODULE_INSTANCE_HINT = /^[A-Za-z_]\w*[ \t]*=[ \t]*[A-Z]\w*\(/m;
/** A class deriving from a library's class-based view: the project's own view base may be defined here. */
const VIEW_CLASS_HINT = /^class\s+\w+\s*\([^)]*(?:Resource|View|Endpoint)\s*[,)]/m;
/** A streaming (or file) response of the libraries, named: a project subclass or wrapper of one may be defined here. */
const STREAMING_RESPONSE_HINT = /StreamingResponse|EventSourceResponse|FileResponse/;
/** Flask-SQLAlchemy's engine settings in app config (see `flaskEngines`). */
const FLASK_ENGINE_CONFIG = /SQLALCHEMY_(ENGINE_OPTIONS|POOL_|MAX_OVERFLOW|DATABASE_URI)|\.config\.from_(?:envvar|prefixed_env|file|pyfile)\s*\(/;
/** `SessionLocal, engine = init(url)` at module level (see `unpackedFactories`). */
const TUPLE_UNPACK = /^[A-Za-z_]\w*\s*,\s*[A-Za-z_][\w\s,]*=\s*[\w.]+\(/m;
const MIGRATION_SQL_HINT = /execute|text\(|DDL|RunSQL/;

/** What the main thread learns before any Python file is parsed; the input of the per-file facts pass. */
export interface DiscoveryPlan {
  root: string;
  /** Every walked file, relative, sorted, de-duplicated. */
  files: string[];
  /** Python files with whether each is a migration. */
  python: { file: string; migration: boolean }[];
  ctx: ProjectContext;
  read: ReadFile;
  isMigration(file: string): boolean;
}

/** Per-file facts from the Python pass (a worker or the main thread). */
export interface PythonFactsResult {
  file: string;
  migration: boolean;
  facts?: PythonFileFacts;
  problem?: string;
  /** Session-like names the file calls `remove()`/`close()` on, or hands those methods over (see {@link sessionReleases}). */
  releases?: string[];
  /**
   * The file imports Flask-SQLAlchemy (or Flask-AppBuilder), read from its text whether parsed or
   * not: the extension usually sits alone in a module (`db = SQLAlchemy()`) that nothing else
   * makes worth parsing, and a project without a manifest would not be known to use it.
   */
  flask?: true;
}

/**
 * `Session.remove()`, `db_session.close`, `meta.Session.remove()`: the names (session-like ones
 * only) whose `remove`/`close` the file calls or hands over as a callback. Read from the text of
 * every file, parsed or not: the teardown that removes a scoped session is often in a module
 * discovery has no other reason to parse. A file that turns on Flask-SQLAlchemy's commit at teardown
 * adds {@link TEARDOWN_COMMIT}.
 */
/** A request teardown hook registered in the module (decorator or call). */
const REQUEST_TEARDOWN = /\b(teardown_appcontext|teardown_request|after_request|after_this_request)\b/;

export function sessionReleases(source: string): string[] | undefined {
  const teardownCommit = source.includes('SQLALCHEMY_COMMIT_ON_TEARDOWN') && COMMIT_ON_TEARDOWN.test(source);
  if (!teardownCommit && !source.includes('.remove') && !source.includes('.close') && !source.includes('with ')) return undefined;
  let out: Set<string> | undefined;
  const add = (name: string) => (out ??= new Set()).add(name);
  // Flask-SQLAlchemy before 3.0 commits every request's session at teardown with this setting on.
  if (teardownCommit) add(TEARDOWN_COMMIT);
  // `registry.remove()` takes no argument (a list's `remove(x)` does), or is handed over (`atexit.register(S.remove)`): any name.
  // Recorded as `remove:Name`, so that a rule can tell which registry a project removes.
  // In a module that registers a request teardown (`teardown_appcontext`, `teardown_request`,
  // `after_request`), also `teardown:Name`: the registry is removed when each request ends.
  // Each pattern below is tried only when the text holds the word it needs (`with ` alone lets
  // most files through the test above), and the teardown hook is looked for only once a
  // `remove` is found: the same names, for less of a pass over every file.
  let teardown: boolean | undefined;
  if (source.includes('remove')) {
    for (const name of namesBefore(source, /\.\s*remove\b(?!\s*\(\s*[^\s)])/g)) {
      add(`remove:${name}`);
      if ((teardown ??= REQUEST_TEARDOWN.test(source))) add(`teardown:${name}`);
    }
  }
  if (source.includes('close')) {
    // `g.pop("db").close()`: something closed that has no name here (recorded as `close:?`).
    if (/[)\]]\s*\.\s*close\s*\(/.test(source)) add('close:?');
    // `db_session.close()`: session-like names.
    for (const name of namesBefore(source, /\.\s*close\b/g)) if (RELEASED_SESSION_LIKE.test(name)) add(name);
  }
  // `with Session() as s:` closes that factory's session: recorded as `with:Session`, for that name only.
  if (source.includes('with')) for (const m of source.matchAll(/\bwith\s+([A-Za-z_]\w*)\s*\(\s*\)\s+as\b/g)) if (RELEASED_SESSION_LIKE.test(m[1]!)) add(`with:${m[1]!}`);
  return out ? [...out].sort() : undefined;
}

/**
 * The name before each match of `dotted` (a pattern that starts at the dot): `db_session .close`
 * gives `db_session`, as `([A-Za-z_]\w*)\s*` + `dotted` would, without that pattern's scan from
 * every identifier character of the file (a fifth of the discovery pass on large trees).
 */
function namesBefore(source: string, dotted: RegExp): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(dotted)) {
    let end = m.index;
    while (end > 0 && /\s/.test(source[end - 1]!)) end--;
    let start = end;
    while (start > 0 && /\w/.test(source[start - 1]!)) start--;
    while (start < end && /\d/.test(source[start]!)) start++;
    if (start < end) out.push(source.slice(start, end));
  }
  return out;
}

/** Recorded among a file's releases when it sets `SQLALCHEMY_COMMIT_ON_TEARDOWN`: every request's session is committed, then removed. */
export const TEARDOWN_COMMIT = 'teardown:commit';
const RELEASED_SESSION_LIKE = /sess|db/i;
/** Files Flask loads configuration from besides Python modules: `*.cfg`, `*.ini`, `.env*`, and JSON/YAML/TOML named like config or settings. */
const FLASK_CONFIG_FILE = /(^|\/)(\.env[\w.-]*|[^/]+\.(cfg|ini)|[^/]*(config|settings)[^/]*\.(json|ya?ml|toml))$/i;
/** The setting on in such a file: `= True`, `: true`, `=1` (`FLASK_SQLALCHEMY_COMMIT_ON_TEARDOWN=1` through `from_prefixed_env`). */
const COMMIT_ON_TEARDOWN_CONFIG = /SQLALCHEMY_COMMIT_ON_TEARDOWN['"]?\s*[=:]\s*['"]?(true|1)\b/i;
/** `SQLALCHEMY_COMMIT_ON_TEARDOWN = True`, `app.config['SQLALCHEMY_COMMIT_ON_TEARDOWN'] = True`, `SQLALCHEMY_COMMIT_ON_TEARDOWN=True`. */
const COMMIT_ON_TEARDOWN = /SQLALCHEMY_COMMIT_ON_TEARDOWN['"]?\s*\]?\s*[=:]\s*True\b/;

export function cachedReader(root: string): ReadFile {
  const cache = new Map<string, string | null>();
  return (rel) => {
    if (cache.has(rel)) return cache.get(rel)!;
    let text: string | null = null;
    try {
      const buf = readFileSync(join(root, rel));
      if (buf.length <= MAX_BYTES && !buf.includes(0)) text = buf.toString('utf8');
    } catch {
      text = null;
    }
    cache.set(rel, text);
    return text;
  };
}

/** Manifests, compose files and the migration layout: cheap, no Python parsed. */
export function planDiscovery(root: string, files: string[]): DiscoveryPlan {
  // Every path in the context is relative to the scanned directory; an absolute root would make
  // the JSON output differ between machines and leak the local path.
  const ctx = emptyContext('.');
  const read = cachedReader(root);
  const sorted = [...new Set(files.map((f) => f.replace(/\\/g, '/').replace(/^(\.\/)+/, '')))].sort();
  const stack = discoverStack(sorted, read);
  ctx.stack = stack.stack;
  ctx.database = stack.database;
  ctx.problems.push(...stack.problems);
  const migrations = migrationLayout(sorted, read);
  ctx.migrations.scriptLocations = migrations.scriptLocations;
  const projects = [...new Set(sorted.filter((f) => PROJECT_MANIFEST.test(f)).map((f) => f.slice(0, Math.max(0, f.lastIndexOf('/')))))].filter((d) => d !== '').sort();
  if (projects.length) ctx.projects = projects;
  const python = sorted.filter((f) => f.endsWith('.py')).map((file) => ({ file, migration: migrations.isMigration(file) }));
  const known = new Map(python.map((p) => [p.file, p.migration]));
  return { root, files: sorted, python, ctx, read, isMigration: (f) => known.get(f) ?? migrations.isMigration(f) };
}

/**
 * A module-level string constant of another module of the repo (`settings.CHANNEL`), looked up
 * on disk by module name: `a.b.C` in `a/b.py`, `a/b/__init__.py`, under `src/` or `lib/` too.
 */
export function externalConstants(read: ReadFile): (qualified: string) => string | null {
  return (qualified) => {
    const dot = qualified.lastIndexOf('.');
    if (dot < 0) return null;
    const modPath = qualified.slice(0, dot).replace(/\./g, '/');
    let text: string | null = null;
    for (const prefix of ['', 'src/', 'lib/']) {
      text = read(`${prefix}${modPath}.py`) ?? read(`${prefix}${modPath}/__init__.py`);
      if (text) break;
    }
    if (!text) return null;
    const name = qualified.slice(dot + 1).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const m = new RegExp(`^${name}\\s*(?::[^=\\n]+)?=\\s*(['"])([^'"\\n\\\\]*)\\1\\s*(?:#.*)?$`, 'm').exec(text);
    return m ? m[2]! : null;
  };
}

/**
 * The Python part of discovery for one file: a cheap text test, then parse and extract. Runs in
 * the workers during a scan (one pass over the repo in parallel), on the main thread for
 * `persist-audit context`. Null facts when the file is not worth parsing.
 */
export function pythonFactsOf(
  file: string,
  source: string,
  migration: boolean,
  parser: PythonParser,
  external: (qualified: string) => string | null,
  importPrefix?: ImportPrefix,
): PythonFactsResult {
  const wanted = worthParsing(source) || (migration && MIGRATION_SQL_HINT.test(source));
  // A removal only a test or a seed script makes does not end a request's session.
  const releases = isTestPath(file) ? undefined : sessionReleases(source);
  const flask = importsFlaskSqlalchemy(source);
  const base: PythonFactsResult = releases ? { file, migration, releases } : { file, migration };
  if (flask) base.flask = true;
  if (!wanted) return base;
  let tree;
  try {
    tree = parser.parse(source);
  } catch (err) {
    return { ...base, problem: `cannot parse Python: ${firstLine(err)}` };
  }
  try {
    const model = buildFileModel(file, source, tree.rootNode, parser, importPrefix);
    const scope: LiteralScope = { model, external };
    return { ...base, facts: pythonFileFacts(model, migration, scope) };
  } catch (err) {
    return { ...base, problem: `context extraction failed: ${firstLine(err)}` };
  } finally {
    tree.release();
  }
}

/**
 * Reads the SQL strings of a batch of Python facts with the PostgreSQL parser, where the facts
 * were found: in the workers the SQL of a migration-heavy tree is parsed in parallel instead of
 * on the main thread after the pass. The parser loads only when there is SQL to read.
 */
export async function readPythonSql(results: PythonFactsResult[]): Promise<void> {
  const strings: { file: string; sql: SqlString }[] = [];
  for (const r of results) {
    if (!r.facts) continue;
    for (const sql of r.facts.sqlCalls) strings.push({ file: r.file, sql });
    for (const sql of r.facts.sqlMentions) strings.push({ file: r.file, sql });
  }
  if (!strings.length) return;
  try {
    await loadSqlParser();
  } catch {
    return; // finishDiscovery loads it again and says why it cannot
  }
  for (const { file, sql } of strings) {
    try {
      sql.facts = extractSqlFacts(withPgParams(sql).text, file, sql.line);
    } catch {
      // Left to finishDiscovery, which reads it again and reports what it can.
    }
  }
}

/** Builds the context on the main thread alone (the `context` command, tests). */
export async function discoverContext(root: string, files: string[], parser: PythonParser): Promise<ProjectContext> {
  const plan = planDiscovery(root, files);
  const external = externalConstants(plan.read);
  const prefixer = importPrefixer(importRootsOf(plan.python.map((p) => p.file)));
  const results: PythonFactsResult[] = [];
  for (const { file, migration } of plan.python) {
    const source = plan.read(file);
    if (source !== null) results.push(pythonFactsOf(file, source, migration, parser, external, prefixer(file)));
  }
  return finishDiscovery(plan, results);
}

/** Joins the per-file facts (in any order) into the context: models, providers, SQL, ADRs. */
export async function finishDiscovery(plan: DiscoveryPlan, results: PythonFactsResult[]): Promise<ProjectContext> {
  const { ctx, read } = plan;
  const sorted = plan.files;
  const pyFiles = plan.python.map((p) => p.file);
  const perFile: { file: string; facts: PythonFileFacts; migration: boolean }[] = [];
  for (const r of [...results].sort((x, y) => cmp(x.file, y.file))) {
    if (r.problem) ctx.problems.push({ file: r.file, reason: r.problem });
    if (r.facts) perFile.push({ file: r.file, facts: r.facts, migration: r.migration });
  }

  const classes: ClassFacts[] = [];
  const roots: string[] = [];
  const providers: { file: string; cand: ProviderCandidate }[] = [];
  const helpers: { file: string; cand: HelperCandidate }[] = [];
  const getters: EngineGetterFact[] = [];
  const streaming: { file: string; cand: StreamingCandidate }[] = [];
  let sqlalchemy2 = false;
  for (const { file, facts } of perFile) {
    ctx.engines.push(...facts.engines);
    ctx.sessionFactories.push(...facts.sessionFactories);
    ctx.poolListeners.push(...facts.poolListeners);
    ctx.models.push(...facts.tables);
    ctx.events.publishers.push(...facts.publishers);
    ctx.events.subscribers.push(...facts.subscribers);
    classes.push(...facts.classes);
    roots.push(...facts.declarativeRoots);
    for (const cand of facts.providers) providers.push({ file, cand });
    for (const cand of facts.helpers ?? []) helpers.push({ file, cand });
    getters.push(...(facts.engineGetters ?? []));
    for (const cand of facts.streaming ?? []) streaming.push({ file, cand });
    sqlalchemy2 ||= facts.sqlalchemy2;
  }
  // Flask-SQLAlchemy and Flask-AppBuilder: `class Event(db.Model)` where `db = SQLAlchemy(app)`.
  const flaskSqlalchemy = Object.keys(ctx.stack).some((k) => /^flask[-_](sqlalchemy|appbuilder)$/i.test(k))
    || perFile.some(({ facts }) => facts.flaskSqlalchemy) || results.some((r) => r.flask);
  const imperative = perFile.flatMap(({ facts }) => facts.imperative ?? []);
  const tables = perFile.flatMap(({ facts }) => facts.tables);
  const derivedBackrefs: BackrefFact[] = [];
  ctx.models.push(...resolveModels(classes, roots, flaskSqlalchemy, derivedBackrefs));
  ctx.models.push(...imperativeModels(imperative, classes, tables, ctx.models));
  markManyToOnes(classes, ctx.models);
  addBackrefs(ctx.models, classes, imperative, derivedBackrefs);
  if (flaskSqlalchemy) ctx.flaskDbHandles = flaskHandles(classes);
  // `db_session = db.session` at module level, `db` being one of those handles: the request's session.
  const sessionAliases = perFile.flatMap(({ file, facts }) => (facts.sessionAliases ?? [])
    .filter((a) => ctx.flaskDbHandles.includes(a.handle.slice(a.handle.lastIndexOf('.') + 1)))
    .map((a) => `${moduleNameOf(file)}.${a.name}`));
  if (sessionAliases.length) ctx.flaskSessionAliases = [...new Set(sessionAliases)].sort();
  ctx.sessionProviders = resolveProviders(providers, ctx.sessionFactories.map((f) => f.name).filter((n): n is string => !!n));
  ctx.sessionHelpers = resolveHelpers(helpers, ctx);
  const engineGetters = resolveEngineGetters(getters);
  if (engineGetters.length) ctx.engineGetters = engineGetters;
  const otherEngineMethods = [...new Set(getters.filter((g) => g.method && !engineGetters.some((e) => e.name === g.name)).map((g) => g.name))].sort();
  if (otherEngineMethods.length && engineGetters.length) ctx.engineNamedMethods = otherEngineMethods;
  const streamingFactories = resolveStreaming(streaming);
  if (streamingFactories.length) ctx.streamingFactories = streamingFactories;
  // Views through any number of the project's own bases, across modules.
  const views = new Set(perFile.flatMap(({ facts }) => facts.views ?? []));
  const subclasses = perFile.flatMap(({ facts }) => facts.viewSubclasses ?? []);
  // A base imported from a package that re-exports it (`from app.views import BaseView`, with
  // `BaseView` defined in `app/views/base.py`): a view of that name in a module under the package.
  const isView = (b: string): boolean => {
    if (views.has(b)) return true;
    const dot = b.lastIndexOf('.');
    if (dot <= 0) return false;
    const pkg = b.slice(0, dot + 1);
    const name = b.slice(dot);
    for (const v of views) if (v.startsWith(pkg) && v.endsWith(name) && v.indexOf('.', pkg.length) === v.length - name.length) return true;
    return false;
  };
  for (let grown = views.size > 0; grown; ) {
    grown = false;
    for (const [cls, bases] of subclasses) {
      if (views.has(cls) || !bases.some(isView)) continue;
      views.add(cls);
      grown = true;
    }
  }
  if (views.size) ctx.viewClasses = [...views].sort();
  const releases = new Set(results.flatMap((r) => r.releases ?? []));
  // Flask's config files outside Python (`app.config.from_pyfile("app.cfg")`, `from_file(...json)`, a `.env`).
  if (!releases.has(TEARDOWN_COMMIT) && sorted.some((f) => FLASK_CONFIG_FILE.test(f) && COMMIT_ON_TEARDOWN_CONFIG.test(read(f) ?? ''))) releases.add(TEARDOWN_COMMIT);
  if (releases.size) ctx.sessionReleases = [...releases].sort();
  const fsqla = Object.entries(ctx.stack).find(([k]) => /^flask[-_]sqlalchemy$/i.test(k))?.[1];
  ctx.engines.push(...flaskEngines(perFile, majorOf(fsqla?.version ?? null)));
  ctx.sessionFactories.push(...unpackedFactories(perFile));
  const attrs = factoryAttributes(perFile, ctx.sessionFactories);
  if (Object.keys(attrs).length) ctx.factoryAttributes = attrs;
  const settings = perFile.filter(({ file }) => !isTestPath(file)).flatMap(({ file, facts }) => (facts.expireSettings ?? []).map((line) => ({ file, line })));
  if (settings.length) ctx.expireOnCommitSettings = settings;
  const shared = sharedSessions(perFile, ctx.sessionFactories);
  if (shared.length) ctx.sharedSessions = shared;
  const aliases = perFile.flatMap(({ file, facts }) => (facts.dependencyAliases ?? []).map((a) => ({ ...a, name: `${moduleNameOf(file)}.${a.name}` })));
  if (aliases.length) ctx.dependencyAliases = aliases.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  // SQL: migrations' calls, code strings that mention channels/triggers, and .sql files.
  const work: { file: string; sql: SqlString; migration: boolean }[] = [];
  for (const { file, facts, migration } of perFile) {
    for (const s of facts.sqlCalls) work.push({ file, sql: withPgParams(s), migration });
    for (const s of facts.sqlMentions) work.push({ file, sql: withPgParams(s), migration: false });
  }
  const migrationFiles = new Set(perFile.filter((p) => p.migration).map((p) => p.file));
  for (const f of pyFiles) if (plan.isMigration(f) && !/(^|\/)__init__\.py$/.test(f)) migrationFiles.add(f);
  for (const f of sorted) {
    if (!f.toLowerCase().endsWith('.sql')) continue;
    migrationFiles.add(f);
    const text = read(f);
    if (text !== null) work.push({ file: f, sql: { text: withoutPsqlCommands(text), line: 1 }, migration: true });
  }
  ctx.migrations.files = [...migrationFiles].sort();
  // Migrations replay in revision order (alembic's down_revision chain), then by path.
  const rank = revisionDepths(perFile);
  const seq = new Map(work.map((w, i) => [w, i]));
  work.sort((a, b) => (rank.get(a.file) ?? 0) - (rank.get(b.file) ?? 0) || cmp(a.file, b.file) || seq.get(a)! - seq.get(b)!);
  // The PostgreSQL parser (WASM) loads only when there is SQL left to read here.
  if (work.some((w) => !w.sql.facts)) await loadSqlParser();
  const sql = new SqlCollector(ctx);
  for (const w of work) sql.add(w.file, w.sql, w.migration, w.migration);
  sql.finish();

  ctx.adrs = discoverAdrs(sorted, read);
  addEngineDatabases(ctx);
  ctx.stack = sortKeys(ctx.stack);
  ctx.summary = summarize(ctx.stack, ctx, sqlalchemy2);
  sortContext(ctx);
  return ctx;
}

/**
 * Driver and SQLAlchemy bind parameters (`:name`, `%(name)s`, `%s`) become PostgreSQL's `$1` so
 * that the statement parses; `::type` casts and `:=` are left alone. Lines do not move.
 */
function withPgParams(s: SqlString): SqlString {
  const text = s.text.replace(/%\([A-Za-z_]\w*\)s|%s\b|(?<![:\w]):[A-Za-z_]\w*/g, '$$1');
  return text === s.text ? s : { ...s, text };
}

/**
 * psql scripts: `\\connect db` lines are client commands, and `:var` / `:'var'` / `:"var"` are
 * client-side variables; neither is SQL. Blank the commands and make the variables parse.
 */
function withoutPsqlCommands(text: string): string {
  if (!/^\s*\\|:['"]?[A-Za-z_]/m.test(text)) return text;
  return text
    .replace(/^[ \t]*\\.*$/gm, '')
    .replace(/(?<![:\w]):'([A-Za-z_]\w*)'/g, "'$1'")
    .replace(/(?<![:\w]):"([A-Za-z_]\w*)"/g, '"$1"')
    .replace(/(?<![:\w'"$]):([A-Za-z_]\w*)/g, '$1');
}

interface MigrationLayout {
  scriptLocations: string[];
  isMigration(file: string): boolean;
}

function migrationLayout(files: string[], read: ReadFile): MigrationLayout {
  const locations: string[] = [];
  for (const f of files) {
    if (!/(^|\/)alembic\.ini$/.test(f)) continue;
    const text = read(f);
    const m = text ? /^\s*script_location\s*=\s*(.+?)\s*$/m.exec(text) : null;
    if (!m) continue;
    const dir = f.includes('/') ? f.slice(0, f.lastIndexOf('/') + 1) : '';
    let loc = m[1]!.replace(/%\(here\)s\/?/g, '').replace(/^\.\//, '').replace(/\/+$/, '');
    // `package:resource` form: the resource lives inside the package, wherever that is in the tree.
    const pkg = /^([\w.]+):([\w./]+)$/.exec(loc);
    if (pkg) {
      const pkgPath = pkg[1]!.replace(/\./g, '/');
      const inits = files.filter((x) => x === `${pkgPath}/__init__.py` || x.endsWith(`/${pkgPath}/__init__.py`));
      const pkgDir = inits.sort((a, b) => a.length - b.length || (a < b ? -1 : 1))[0];
      if (pkgDir) {
        locations.push(normalizePath(`${pkgDir.slice(0, -'__init__.py'.length)}${pkg[2]}`));
        continue;
      }
      loc = `${pkgPath}/${pkg[2]}`;
    }
    locations.push(normalizePath(dir + loc));
  }
  const envDirs = new Set(files.filter((f) => /(^|\/)env\.py$/.test(f)).map((f) => f.slice(0, f.lastIndexOf('/') + 1)));
  const underLocation = underDirectories(locations);
  return {
    scriptLocations: [...new Set(locations)].sort(),
    isMigration(file: string): boolean {
      if (!file.endsWith('.py')) return false;
      if (/(^|\/)migrations\//.test(file)) return true;
      // A module of its own for the migrations (`core/migrations.py`, an extension's
      // `migrations.py` of `m001_...` functions a runner applies in order).
      if (/(^|\/)migrations\.py$/.test(file)) return true;
      if (/(^|\/)alembic\/(.*\/)?versions\//.test(file)) return true;
      if (underLocation(file)) return true;
      const v = /^(.*\/)?versions\/[^/]+\.py$/.exec(file);
      if (v && envDirs.has(v[1] ?? '')) return true;
      return false;
    },
  };
}


/** Alembic revisions by distance from the first one; files without a revision are 0. */
function revisionDepths(perFile: { file: string; facts: PythonFileFacts }[]): Map<string, number> {
  const byRevision = new Map<string, { file: string; down: string[] }>();
  for (const { file, facts } of perFile) {
    if (facts.revision) byRevision.set(facts.revision, { file, down: facts.downRevisions });
  }
  const depth = new Map<string, number>();
  const visit = (rev: string, guard: number): number => {
    const known = depth.get(rev);
    if (known !== undefined) return known;
    const node = byRevision.get(rev);
    if (!node || guard > 10_000) return 0;
    depth.set(rev, 0); // a cycle ends here
    let d = 1;
    for (const down of node.down) d = Math.max(d, visit(down, guard + 1) + 1);
    depth.set(rev, d);
    return d;
  };
  const out = new Map<string, number>();
  for (const [rev, node] of byRevision) out.set(node.file, visit(rev, 0));
  return out;
}

/** A name built by an f-string: `dynamic` when wholly unknown, `{dynamic}` marks the unknown part. */
function dynamicName(name: string): string {
  if (!name.includes(PLACEHOLDER)) return name;
  return name === PLACEHOLDER ? DYNAMIC : name.split(PLACEHOLDER).join('{dynamic}');
}

/** Turns SQL text into triggers, notify functions, LISTENs and publishers. */
class SqlCollector {
  /** The schema as the migrations leave it, replayed in order: later definitions and drops win. */
  private readonly functions = new Map<string, NotifyFunctionInfo & { rawChannels: string[] }>();
  private readonly triggers = new Map<string, TriggerInfo & { args: string[] }>();
  private readonly errorsByFile = new Map<string, number>();
  constructor(private readonly ctx: ProjectContext) {}

  add(file: string, s: SqlString, reportErrors: boolean, isMigration: boolean): void {
    const facts = s.facts ?? extractSqlFacts(s.text, file, s.line);
    // f-strings with unknown parts and text() expression pieces are not bad SQL when they do not parse.
    if (s.fragment || s.text.includes(PLACEHOLDER)) reportErrors = false;
    const channel = (c: string): string => (c.includes(PLACEHOLDER) ? DYNAMIC : c);
    // Replay in statement order; at one statement a function's (re)definition precedes its notify facts.
    const steps: { index: number; order: number; run: () => void }[] = [];
    for (const c of facts.changes) {
      const name = dynamicName(c.name);
      steps.push({
        index: c.index,
        order: 0,
        run: () => {
          if (c.kind === 'drop_trigger') this.triggers.delete(triggerKey(name, dynamicName(c.table ?? '')));
          else this.functions.delete(objectKey(name));
        },
      });
    }
    for (const f of facts.notifyFunctions) {
      const raw = f.channels.map(channel);
      const info = {
        name: dynamicName(f.name),
        channels: [...new Set(raw.map((c) => (c.startsWith('$argv[') ? DYNAMIC : c)))].sort(),
        returnsTrigger: f.returnsTrigger,
        file,
        line: f.line,
        rawChannels: raw,
      };
      steps.push({ index: f.index, order: 1, run: () => this.functions.set(objectKey(info.name), info) });
    }
    for (const t of facts.triggers) {
      const info = {
        name: dynamicName(t.name),
        table: dynamicName(t.table),
        timing: t.timing,
        events: t.events,
        forEach: t.forEach,
        function: dynamicName(t.function),
        channels: [],
        file,
        line: t.line,
        args: t.args,
      };
      steps.push({ index: t.index, order: 1, run: () => this.triggers.set(triggerKey(info.name, info.table), info) });
    }
    steps.sort((a, b) => a.index - b.index || a.order - b.order);
    for (const step of steps) step.run();
    for (const l of facts.listens) {
      if (isMigration) this.ctx.migrations.listens.push({ channel: channel(l.channel), file, line: l.line });
      else this.ctx.events.subscribers.push({ channel: channel(l.channel), file, line: l.line, kind: 'listen' });
    }
    for (const n of facts.notifies) this.ctx.events.publishers.push({ channel: channel(n.channel), file, line: n.line, kind: n.kind });
    if (reportErrors) {
      for (const e of facts.errors) {
        this.ctx.migrations.sqlErrors++;
        const n = (this.errorsByFile.get(file) ?? 0) + 1;
        this.errorsByFile.set(file, n);
        if (n <= MAX_SQL_PROBLEMS_PER_FILE) {
          this.ctx.problems.push({ file, reason: `SQL at line ${e.line} does not parse, skipped: ${e.reason}` });
        }
      }
    }
  }

  /** Joins triggers to the channels their functions notify on (`TG_ARGV[n]` → the trigger's argument). */
  finish(): void {
    // A dump in another dialect should not bury every other problem.
    for (const [file, n] of this.errorsByFile) {
      if (n > MAX_SQL_PROBLEMS_PER_FILE) {
        this.ctx.problems.push({ file, reason: `${n - MAX_SQL_PROBLEMS_PER_FILE} more SQL statements do not parse, skipped` });
      }
    }
    for (const t of this.triggers.values()) {
      const raw = this.functions.get(objectKey(t.function))?.rawChannels ?? [];
      const channels = raw.map((c) => {
        const argv = /^\$argv\[(\d+)\]$/.exec(c);
        return argv ? (t.args[Number(argv[1])] ?? DYNAMIC) : c;
      });
      const { args: _args, ...rest } = t;
      void _args;
      this.ctx.migrations.triggers.push({ ...rest, channels: [...new Set(channels)].sort() });
    }
    for (const f of this.functions.values()) {
      const { rawChannels: _raw, ...rest } = f;
      void _raw;
      this.ctx.migrations.notifyFunctions.push(rest);
    }
  }
}

/** Names compare case-insensitively and without the default `public.` schema. */
function objectKey(name: string): string {
  return name.toLowerCase().replace(/^public\./, '');
}

/** A trigger is named per table: `DROP TRIGGER t ON x`. */
function triggerKey(name: string, table: string): string {
  return `${objectKey(name)}\0${objectKey(table)}`;
}

type ClassKind = 'root' | 'mapped' | 'sqlmodel' | 'none';

/** `db` of every `<...>.db.Model` base (Flask-SQLAlchemy's model base is an attribute of its `SQLAlchemy()` object). */
function flaskHandles(classes: ClassFacts[]): string[] {
  const names = new Set<string>();
  for (const c of classes) {
    for (const b of c.bases) {
      const m = /(?:^|\.)([A-Za-z_]\w*)\.Model$/.exec(b);
      if (m && !isDeclarativeRootBase(b)) names.add(m[1]!);
    }
  }
  return [...names].sort();
}

/** ORM models from class facts of every parsed file: a class is a model when it derives from a declarative root. */
function resolveModels(classes: ClassFacts[], rootNames: string[], flaskSqlalchemy: boolean, derivedBackrefs: BackrefFact[] = []): ModelInfo[] {
  // `db.Model` (any `<name>.Model` base) is the declarative base of a Flask-SQLAlchemy project:
  // a class on it is a model.
  const flaskModel = (b: string) => /^flask_appbuilder(\.models\.sqla)?\.Model$/.test(b)
    || (flaskSqlalchemy && /^[A-Za-z_][\w.]*\.Model$/.test(b) && !isDeclarativeRootBase(b));
  const byQualified = new Map<string, ClassFacts>();
  const byShort = new Map<string, ClassFacts[]>();
  for (const c of classes) {
    byQualified.set(c.qualified, c);
    byShort.set(c.name, [...(byShort.get(c.name) ?? []), c]);
  }
  const roots = new Set(rootNames);
  const rootShorts = new Set(rootNames.map((r) => r.slice(r.lastIndexOf('.') + 1)));
  const shortOf = (n: string): string => n.slice(n.lastIndexOf('.') + 1);
  const lookup = (base: string, from: ClassFacts): ClassFacts | undefined => {
    const exact = byQualified.get(base);
    if (exact) return exact;
    // Re-exports (`from app.db import Base`) and unresolved names: match by name when unambiguous.
    const candidates = (byShort.get(shortOf(base)) ?? []).filter((c) => c !== from);
    return candidates.length === 1 ? candidates[0] : undefined;
  };
  const memo = new Map<ClassFacts, ClassKind>();
  const classify = (c: ClassFacts, seen: Set<ClassFacts>): ClassKind => {
    const known = memo.get(c);
    if (known) return known;
    if (seen.has(c)) return 'none';
    seen.add(c);
    let kind: ClassKind = 'none';
    if (c.bases.some(isDeclarativeRootBase)) kind = 'root';
    else if (c.bases.some(flaskModel) || c.bases.some(isLibraryModelBase)) kind = 'mapped';
    else if (c.decorators.some((d) => /(^|\.)(mapped|mapped_as_dataclass)$/.test(d))) kind = 'mapped';
    else {
      for (const base of c.bases) {
        let k: ClassKind = 'none';
        const parent = lookup(base, c);
        if (parent) {
          const pk = classify(parent, seen);
          k = pk === 'root' ? 'mapped' : pk;
        } else if (roots.has(base) || rootShorts.has(shortOf(base))) {
          k = 'mapped';
        } else if (/(^|\.)SQLModel$/.test(base)) {
          k = 'sqlmodel';
        }
        if (k === 'mapped') {
          kind = 'mapped';
          break;
        }
        if (k === 'sqlmodel') kind = 'sqlmodel';
      }
    }
    memo.set(c, kind);
    return kind;
  };
  const isModel = (c: ClassFacts): boolean => {
    const k = classify(c, new Set());
    return (k === 'mapped' && !c.abstract) || (k === 'sqlmodel' && c.tableKeyword);
  };
  const parentsOf = (c: ClassFacts): ClassFacts[] => c.bases.map((b) => lookup(b, c)).filter((p): p is ClassFacts => !!p);
  const hasModelChildren = new Set<ClassFacts>();
  for (const c of classes) if (isModel(c)) for (const p of parentsOf(c)) hasModelChildren.add(p);

  interface Described {
    table: string | null;
    columns: number;
    relationships: ModelInfo['relationships'];
    deferred: string[];
    proxies: AssociationProxyInfo[];
    /** Column attribute names, primary keys and foreign-key columns of the class and its lineage. */
    columnNames: string[];
    primaryKeys: string[];
    uniqueKeys: string[][];
    foreignKeys: string[];
    sqlmodel: boolean;
    /** No table and extended by models: an unmarked abstract base, not reported. */
    skip: boolean;
  }
  const described = new Map<ClassFacts, Described>();
  const describe = (c: ClassFacts, depth = 0): Described => {
    const known = described.get(c);
    if (known) return known;
    const sqlmodel = classify(c, new Set()) === 'sqlmodel';
    let columns = c.columns + (sqlmodel ? c.plainAnnotated : 0);
    const relationships = [...c.relationships];
    const deferred = [...(c.deferred ?? [])];
    const proxies = [...(c.proxies ?? [])];
    const columnNames = [...(c.columnNames ?? []), ...(sqlmodel ? c.plainNames ?? [] : [])];
    const primaryKeys = [...(c.primaryKeys ?? [])];
    const uniqueKeys = [...(c.uniqueKeys ?? [])];
    const foreignKeys = [...(c.foreignKeys ?? [])];
    let tableExpr: string | null = c.tablenameExpr;
    let parentTable: string | null = null;
    // Attributes of mixins and abstract bases are inherited; mapped parents keep theirs in their own table.
    const seen = new Set<ClassFacts>([c]);
    const queue = parentsOf(c);
    const lineage: ClassFacts[] = [c];
    while (queue.length) {
      const p = queue.shift()!;
      if (seen.has(p)) continue;
      seen.add(p);
      lineage.push(p);
      if (isModel(p)) {
        if (depth < 20) {
          const parent = describe(p, depth + 1);
          parentTable ??= parent.table;
          // A mapped parent keeps its columns in its own table, but its relationships are the
          // subclass's too (single- and joined-table inheritance): `section.children` of an item model.
          for (const r of parent.relationships) if (!relationships.some((x) => x.name === r.name)) relationships.push(r);
          deferred.push(...parent.deferred);
          proxies.push(...parent.proxies);
          // Inherited mapping: the parent's columns are attributes of the subclass's rows too.
          columnNames.push(...parent.columnNames);
          primaryKeys.push(...parent.primaryKeys);
          uniqueKeys.push(...parent.uniqueKeys);
          foreignKeys.push(...parent.foreignKeys);
        }
        continue;
      }
      columns += p.columns + (sqlmodel ? p.plainAnnotated : 0);
      columnNames.push(...(p.columnNames ?? []), ...(sqlmodel ? p.plainNames ?? [] : []));
      primaryKeys.push(...(p.primaryKeys ?? []));
      uniqueKeys.push(...(p.uniqueKeys ?? []));
      foreignKeys.push(...(p.foreignKeys ?? []));
      relationships.push(...p.relationships);
      deferred.push(...(p.deferred ?? []));
      proxies.push(...(p.proxies ?? []));
      // A mixin's backref named by the class: the nearest class of the lineage that sets the name.
      for (const t of p.templatedBackrefs ?? []) {
        const name = lineage.map((x) => x.stringAttrs?.[t.attr]).find((v) => v !== undefined)
          ?? queue.map((x) => x.stringAttrs?.[t.attr]).find((v) => v !== undefined);
        if (name && isModel(c)) derivedBackrefs.push({ owner: t.owner, relationship: { name, target: c.name, lazy: t.lazy, file: p.file, line: t.line }, scalar: t.scalar });
      }
      tableExpr ??= p.tablenameExpr;
      queue.push(...parentsOf(p));
    }
    let table = c.tablename;
    if (table === null) {
      // A subclass of a mapped class shares its table (single-table inheritance) unless a
      // declared_attr names one per class without checking `has_inherited_table`.
      const perClass = tableExpr !== null && !/has_inherited_table/.test(tableExpr);
      if (sqlmodel) table = c.name.toLowerCase();
      else if (parentTable && !perClass) table = parentTable;
      else if (tableExpr) table = derivedTableName(tableExpr, c.name);
      // Flask-SQLAlchemy names the table of a model that declares columns itself (snake case):
      // such a model is not an abstract base even when other models extend it.
      else if (flaskSqlalchemy && c.columns > 0) table = c.name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
    }
    // A column the class declares itself, not deferred, overrides a mixin's or a base's deferred one.
    const own = new Set(c.eagerColumns ?? []);
    const kept = own.size ? deferred.filter((x) => !own.has(x.split(':')[0]!)) : deferred;
    const d: Described = { table, columns, relationships, deferred: kept, proxies, columnNames, primaryKeys, uniqueKeys, foreignKeys, sqlmodel, skip: table === null && !parentTable && hasModelChildren.has(c) };
    described.set(c, d);
    return d;
  };

  const models: ModelInfo[] = [];
  for (const c of classes) {
    if (!isModel(c)) continue;
    const d = describe(c);
    if (d.skip) continue;
    models.push({
      name: c.name,
      table: d.table,
      kind: d.sqlmodel ? 'sqlmodel' : c.decorators.some((x) => /(^|\.)(mapped|mapped_as_dataclass)$/.test(x)) ? 'mapped' : 'declarative',
      file: c.file,
      line: c.line,
      columnCount: d.columns,
      relationships: [...d.relationships].sort(byDeclaration),
      ...(d.deferred.length ? { deferred: [...new Set(d.deferred)] } : {}),
      ...(d.columnNames.length ? { columns: [...new Set(d.columnNames)] } : {}),
      ...(d.primaryKeys.length ? { primaryKey: [...new Set(d.primaryKeys)] } : {}),
      ...(d.uniqueKeys.length ? { uniqueKeys: d.uniqueKeys.filter((k, i) => d.uniqueKeys.findIndex((x) => x.join() === k.join()) === i) } : {}),
      ...(d.foreignKeys.length ? { foreignKeyColumns: [...new Set(d.foreignKeys)] } : {}),
      // The class's own declaration of a name wins over a base's (the first listed).
      ...(d.proxies.length ? { proxies: d.proxies.filter((x, i) => d.proxies.findIndex((y) => y.name === x.name) === i) } : {}),
    });
  }
  return models;
}

/**
 * Classes mapped imperatively (`registry.map_imperatively(Cls, table, properties={...})`,
 * `mapper(...)`): models of kind `imperative`, declared where the class is, with the table's
 * name and columns when the table argument names a `Table(...)` of the project.
 */
function imperativeModels(mappings: ImperativeMapping[], classes: ClassFacts[], tables: ModelInfo[], known: ModelInfo[]): ModelInfo[] {
  const short = (n: string) => n.slice(n.lastIndexOf('.') + 1);
  const byQualified = new Map(classes.map((c) => [c.qualified, c]));
  const out: ModelInfo[] = [];
  const seen = new Set<string>();
  for (const m of mappings) {
    const name = short(m.cls);
    const cls = byQualified.get(m.cls) ?? (() => {
      const c = classes.filter((x) => x.name === name);
      return c.length === 1 ? c[0] : undefined;
    })();
    const key = cls?.qualified ?? m.cls;
    // The class's `Mapped[...]` annotations say which relationships are one row.
    for (const r of m.relationships) if (cls && oneRow(cls, r.name)) r.scalar = true;
    if (seen.has(key)) continue;
    // Already a declarative model (mapped twice is an error in SQLAlchemy): keep that one.
    if (cls && known.some((k) => k.name === cls.name && k.file === cls.file)) continue;
    seen.add(key);
    const tableVar = m.table ? short(m.table) : null;
    const sameFile = tables.filter((t) => t.name === tableVar && t.file === m.file);
    const anyFile = tables.filter((t) => t.name === tableVar);
    const table = sameFile[0] ?? (anyFile.length === 1 ? anyFile[0] : undefined);
    out.push({
      name,
      table: table?.table ?? null,
      kind: 'imperative',
      file: cls?.file ?? m.file,
      line: cls?.line ?? m.line,
      columnCount: table?.columnCount ?? 0,
      relationships: [...m.relationships].sort(byDeclaration),
      // The keys the table declares: what a check-then-insert on them can and cannot leave.
      ...(table?.primaryKey ? { primaryKey: table.primaryKey } : {}),
      ...(table?.uniqueKeys ? { uniqueKeys: table.uniqueKeys } : {}),
    });
  }
  return out;
}

/**
 * SQLAlchemy's own rule for a relationship's direction: the side whose table holds the foreign
 * key to the other's is the many-to-one. A relationship the declaration leaves open (no
 * `Mapped[...]`, no `uselist=`, no `<name>_id` column beside it: `query_rel = relationship(Query)`
 * next to `query_id = Column(ForeignKey("queries.id"))`) is one row when its class references the
 * target's table and the target references nothing of the class's. Not for a self-reference
 * (an adjacency list holds both directions), an association table (`secondary=`), a collection
 * the declaration says is one, or `foreign_keys=` naming a column the class does not hold.
 */
function markManyToOnes(classes: ClassFacts[], models: ModelInfo[]): void {
  const byName = new Map<string, ModelInfo[]>();
  for (const m of models) if (m.kind !== 'table') byName.set(m.name, [...(byName.get(m.name) ?? []), m]);
  const classOf = new Map(classes.map((c) => [`${c.file}\0${c.name}`, c]));
  const short = (n: string) => n.slice(n.lastIndexOf('.') + 1);
  // The tables a class references, its mixins' and bases' included (by name: a mixin's
  // `declared_attr` foreign key is the class's column too).
  const classesByName = new Map<string, ClassFacts[]>();
  for (const c of classes) classesByName.set(c.name, [...(classesByName.get(c.name) ?? []), c]);
  const refsMemo = new Map<ClassFacts, Set<string>>();
  const refsOf = (c: ClassFacts, depth = 0): Set<string> => {
    let out = refsMemo.get(c);
    if (out) return out;
    out = new Set(c.fkTargets ?? []);
    refsMemo.set(c, out);
    if (depth < 8) {
      for (const b of c.bases) {
        const named = classesByName.get(short(b)) ?? [];
        const base = named.find((x) => x.qualified === b) ?? (named.length === 1 ? named[0] : undefined);
        if (base && base !== c) for (const t of refsOf(base, depth + 1)) out.add(t);
      }
    }
    return out;
  };
  for (const c of classes) {
    if (!c.relationships.length) continue;
    const refs = refsOf(c);
    if (!refs.size) continue;
    const own = byName.get(c.name)?.find((m) => m.file === c.file);
    for (const r of c.relationships) {
      if (r.scalar || r.secondary || r.collection || !r.target || /^(dynamic|write_only|noload)$/.test(r.lazy) || c.customJoins?.includes(r.name)) continue;
      const name = short(r.target.replace(/^["']|["']$/g, ''));
      if (name === c.name) continue;
      const targets = byName.get(name) ?? [];
      const t = targets.length === 1 ? targets[0]! : null;
      if (!t) continue;
      if (!refs.has(`@${name}`) && !(t.table && refs.has(t.table))) continue;
      if (r.foreignKey && !c.foreignKeys?.includes(r.foreignKey)) continue;
      // The target references the class back (either side may be the many): left as declared.
      const targetClass = classOf.get(`${t.file}\0${t.name}`);
      const back = targetClass ? refsOf(targetClass) : new Set<string>();
      if (back.has(`@${c.name}`) || (own?.table && back.has(own.table))) continue;
      r.scalar = true;
    }
  }
}

/** Relationships in declaration order: file, line, name. */
const byDeclaration = (a: RelationshipInfo, b: RelationshipInfo): number => cmp(a.file, b.file) || a.line - b.line || cmp(a.name, b.name);

/** Is `name` one row of the class: annotated `Mapped["User"]`, or beside a `<name>_id` foreign key? */
function oneRow(cls: ClassFacts, name: string): boolean {
  const annotated = cls.mappedAttrs?.[name];
  if (annotated !== undefined) return annotated;
  return cls.foreignKeys?.includes(`${name}_id`) ?? false;
}

/**
 * `backref="name"` on a relationship adds `name` to the target model: added to every model of
 * the target's name that does not declare that attribute itself (`back_populates` pairs do).
 */
function addBackrefs(models: ModelInfo[], classes: ClassFacts[], mappings: ImperativeMapping[], derived: BackrefFact[] = []): void {
  const backrefs = [...classes.flatMap((c) => c.backrefs ?? []), ...mappings.flatMap((m) => m.backrefs), ...derived];
  if (!backrefs.length) return;
  const byName = new Map<string, ModelInfo[]>();
  for (const m of models) if (m.kind !== 'table') byName.set(m.name, [...(byName.get(m.name) ?? []), m]);
  const classOf = new Map(classes.map((c) => [`${c.file}\0${c.name}`, c]));
  for (const b of backrefs) {
    const owner = b.owner.slice(b.owner.lastIndexOf('.') + 1);
    for (const m of byName.get(owner) ?? []) {
      if (m.relationships.some((r) => r.name === b.relationship.name)) continue;
      const cls = classOf.get(`${m.file}\0${m.name}`);
      const scalar = b.scalar ?? (cls ? oneRow(cls, b.relationship.name) : false);
      // `backref(..., uselist=False)`: the one-to-one's side without the foreign key.
      m.relationships.push({ ...b.relationship, ...(scalar ? { scalar: true as const } : {}), ...(b.scalar === true ? { reverse: true as const } : {}) });
    }
  }
  for (const m of models) m.relationships.sort(byDeclaration);
}

/** A `declared_attr` `__tablename__`: lower-case or snake_case of the class name, maybe plural. */
function derivedTableName(expr: string, name: string): string | null {
  let base: string | null = null;
  if (/re\.sub|snake|underscore|camel/i.test(expr)) base = name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
  else if (/__name__\.lower\(\)/.test(expr)) base = name.toLowerCase();
  if (base === null) return null;
  if (/\+\s*['"]s['"]|f['"]\{[^}]*\}s['"]/.test(expr)) base += 's';
  return base;
}

/** Callee names that make sessions: `async_session`, `SessionLocal`, `get_db_session`, `session_factory` — not `SessionTestClient`. */
const SESSION_LIKE = /session(_?maker|_?factory|_?local|_?scope)?$|^(get|create|new|make|open)_\w*session/i;

function resolveProviders(cands: { file: string; cand: ProviderCandidate }[], factoryNames: string[]): SessionProviderInfo[] {
  const factories = new Set(factoryNames.map((n) => n.slice(n.lastIndexOf('.') + 1)));
  const out: SessionProviderInfo[] = [];
  for (const { file, cand } of cands) {
    let yields: string | null = null;
    const resolved = cand.calleeResolved ?? '';
    const last = resolved.slice(resolved.lastIndexOf('.') + 1);
    if (/^(sqlalchemy|sqlmodel)\b.*\.AsyncSession$|^AsyncSession$/.test(resolved)) yields = 'AsyncSession';
    else if (/^(sqlalchemy|sqlmodel)\b.*\.Session$|^Session$/.test(resolved)) yields = 'Session';
    else if (cand.callee && (factories.has(last) || SESSION_LIKE.test(last))) yields = cand.callee;
    else if (cand.returnType && /AsyncSession/.test(cand.returnType)) yields = 'AsyncSession';
    else if (cand.returnType && /\bSession\b/.test(cand.returnType)) yields = 'Session';
    if (!yields) continue;
    out.push({ name: cand.name, async: cand.async, yields, contextManager: cand.contextManager, ...(cand.closesOnly ? { closesOnly: true as const } : {}), file, line: cand.line });
  }
  return out;
}

/**
 * The helpers that return a new session (a session class or a factory of the project called) or
 * a new connection (a driver `connect()`, `<engine>.connect()` / `.raw_connection()` on one of
 * the project's engines); a `-> Session` annotation alone does not make one.
 */
/**
 * The getters that hand out an engine: those that build or name one, then, until nothing changes,
 * those that return another getter's result. A callee written from a package root below the
 * scanned root (`datastore.backend.get_engine` for `ckanext.datastore.backend.get_engine`) matches
 * on whole dotted segments.
 */
function resolveEngineGetters(cands: readonly EngineGetterFact[]): EngineGetterInfo[] {
  const known = new Set(cands.filter((c) => c.direct).map((c) => c.name));
  const isKnown = (callee: string): boolean => {
    if (known.has(callee)) return true;
    for (const k of known) if (sameQualified(k, callee)) return true;
    return false;
  };
  for (let grown = true; grown; ) {
    grown = false;
    for (const c of cands) {
      if (known.has(c.name) || !c.calls.some(isKnown)) continue;
      known.add(c.name);
      grown = true;
    }
  }
  // A method named like a getter that hands out no engine (`SearchClient.get_engine`): that name
  // alone says nothing about a call on an object whose class is not known.
  const last = (n: string) => n.slice(n.lastIndexOf('.') + 1);
  const otherMethods = new Set(cands.filter((c) => c.method && !known.has(c.name)).map((c) => last(c.name)));
  const out = new Map<string, EngineGetterInfo>();
  // Through a chain, AUTOCOMMIT is the last getter's: one that returns an autocommit getter's engine.
  const autocommit = new Set(cands.filter((c) => c.autocommit).map((c) => c.name));
  for (let grown = true; grown; ) {
    grown = false;
    for (const c of cands) {
      if (autocommit.has(c.name) || !c.calls.length || !c.calls.every((x) => [...autocommit].some((a) => sameQualified(a, x)))) continue;
      autocommit.add(c.name);
      grown = true;
    }
  }
  for (const c of cands) {
    if (!known.has(c.name) || out.has(c.name)) continue;
    const info: EngineGetterInfo = c.method && !otherMethods.has(last(c.name)) ? { name: c.name, method: true, byName: true } : { name: c.name, method: c.method };
    if (autocommit.has(c.name)) info.autocommit = true;
    out.set(c.name, info);
  }
  return [...out.values()].sort((a, b) => cmp(a.name, b.name));
}

/** Modules whose `Session`/`Client` classes are HTTP clients, whatever the project names its own factories. */
const HTTP_CLIENT_MODULE = /^(requests|httpx|aiohttp|urllib3|niquests|requests_futures|boto3|botocore)$/;

function resolveHelpers(cands: { file: string; cand: HelperCandidate }[], ctx: ProjectContext): SessionHelperInfo[] {
  const factories = new Set(ctx.sessionFactories.filter((f) => f.kind === 'sessionmaker' || f.kind === 'async_sessionmaker').map((f) => f.name).filter((n): n is string => !!n).map((n) => n.slice(n.lastIndexOf('.') + 1)));
  const engines = new Set(ctx.engines.map((e) => e.name).filter((n): n is string => !!n).map((n) => n.slice(n.lastIndexOf('.') + 1)));
  const out: SessionHelperInfo[] = [];
  for (const { file, cand } of cands) {
    const callee = cand.callee ?? '';
    const last = callee.slice(callee.lastIndexOf('.') + 1);
    const receiver = callee.slice(0, Math.max(0, callee.lastIndexOf('.')));
    let kind: SessionHelperInfo['kind'] | null = null;
    // `sessionmaker(bind=schema_engine)()`: a factory made and called on the spot. A factory
    // known by its name alone (`Session`) is not `requests.Session()`: an HTTP client module's
    // class of the same name.
    const httpClient = HTTP_CLIENT_MODULE.test(receiver.slice(receiver.lastIndexOf('.') + 1));
    if (SESSION_CLASS.test(callee) || (factories.has(last) && !httpClient) || /^([\w.]+\.)?(async_)?sessionmaker\(.*\)$/s.test(callee)) kind = 'session';
    else if (DRIVER_CONNECT.has(callee)) kind = 'connection';
    else if ((last === 'connect' || last === 'raw_connection') && engines.has(receiver.slice(receiver.lastIndexOf('.') + 1))) kind = 'connection';
    if (!kind) continue;
    out.push({ name: cand.name, kind, returns: callee, file, line: cand.line, ...(cand.owner ? { owner: true as const } : {}), ...(cand.autocommit ? { autocommit: true as const } : {}) });
  }
  return out;
}

/**
 * Session objects made once at module level: `db = SessionLocal()` where `SessionLocal` is a
 * `sessionmaker`/`async_sessionmaker` of the project, or `session = Session(engine)` /
 * `AsyncSession(engine)` itself. A `scoped_session` registry is not one (each thread gets its own).
 */
function sharedSessions(perFile: { file: string; facts: PythonFileFacts }[], factories: SessionFactoryInfo[]): SharedSessionInfo[] {
  const makers = new Map<string, 'Session' | 'AsyncSession'>();
  for (const f of factories) {
    if (!f.name || f.function || (f.kind !== 'sessionmaker' && f.kind !== 'async_sessionmaker')) continue;
    const async = f.kind === 'async_sessionmaker' || /AsyncSession$/.test(f.class ?? '');
    makers.set(`${moduleNameOf(f.file)}.${f.name}`, async ? 'AsyncSession' : 'Session');
  }
  const index = new QualifiedIndex(makers.keys(), (m) => m);
  const out: SharedSessionInfo[] = [];
  for (const f of factories) {
    // `session = Session(engine)` at module level.
    if ((f.kind === 'Session' || f.kind === 'AsyncSession') && f.name && !f.function && /^[A-Za-z_]\w*$/.test(f.name)) {
      out.push({ name: `${moduleNameOf(f.file)}.${f.name}`, kind: f.kind, made: f.kind, file: f.file, line: f.line });
    }
  }
  for (const { file, facts } of perFile) {
    for (const c of facts.moduleCalls ?? []) {
      // The callee as imported may be written from a package root below the scanned root.
      const match = index.get(c.callee);
      const kind = match ? makers.get(match) : undefined;
      if (kind) {
        out.push({
          name: `${moduleNameOf(file)}.${c.owner ? `${c.owner}.` : ''}${c.name}`, kind, made: c.callee, file, line: c.line,
          ...(c.owner ? { owner: c.owner } : {}), ...(c.holder ? { holder: c.holder } : {}), ...(c.madeInInit ? { madeInInit: true as const } : {}),
        });
      }
    }
  }
  return out.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line));
}

/** A streaming response of the libraries, by qualified name; Starlette's `FileResponse` sends a file in chunks. */
const LIBRARY_STREAMING = /^(fastapi|starlette|sse_starlette)\.([\w.]+\.)?(StreamingResponse|EventSourceResponse|FileResponse)$/;

/**
 * The project's streaming responses: classes deriving from a library streaming response (or from
 * one of these), functions whose every return builds one, to a fixpoint across modules. Those
 * whose library root is `FileResponse` are marked `download`.
 */
function resolveStreaming(cands: { file: string; cand: StreamingCandidate }[]): StreamingFactoryInfo[] {
  const known = new Map<string, { sse: boolean; download: boolean }>();
  for (const { cand } of cands) {
    for (const t of cand.targets) if (LIBRARY_STREAMING.test(t)) known.set(t, { sse: t.endsWith('EventSourceResponse'), download: t.endsWith('FileResponse') });
  }
  const out: StreamingFactoryInfo[] = [];
  for (let grew = true; grew; ) {
    grew = false;
    for (const { file, cand } of cands) {
      if (known.has(cand.name)) continue;
      const hit = cand.targets.find((t) => known.has(t));
      if (hit === undefined) continue;
      const root = known.get(hit)!;
      const sse = root.sse || (cand.eventStream && !root.download);
      known.set(cand.name, { sse, download: root.download });
      out.push({ name: cand.name, kind: cand.kind, sse, contentParam: cand.contentParam, ...(root.download ? { download: true as const } : {}), file, line: cand.line });
      grew = true;
    }
  }
  return out;
}

/**
 * `SessionLocal, engine = init(url)` where `init` returns a session factory at that tuple
 * position: a module-level factory like `SessionLocal = sessionmaker(...)`.
 */
/**
 * Attributes some class of the project binds to a module-level `sessionmaker` /
 * `async_sessionmaker` of the project (`session_source = LedgerSession` in a subclass,
 * `self.maker = SessionLocal`), each with that factory's qualified name: `self.<attr>()` opens a
 * session, whichever class of the hierarchy the method calling it is written in. An attribute
 * two classes bind to different things is left out.
 */
function factoryAttributes(perFile: { file: string; facts: PythonFileFacts }[], factories: SessionFactoryInfo[]): Record<string, string> {
  const known = new Set(factories.filter((f) => f.name && !f.function && (f.kind === 'sessionmaker' || f.kind === 'async_sessionmaker')).map((f) => `${moduleNameOf(f.file)}.${f.name}`));
  const out: Record<string, string> = {};
  const other = new Set<string>();
  if (!known.size) return out;
  for (const { file, facts } of perFile) {
    if (isTestPath(file)) continue;
    for (const [attr, ref] of facts.classAttrRefs ?? []) {
      if (!known.has(ref)) other.add(attr);
      else if (out[attr] === undefined || out[attr] === ref) out[attr] = ref;
      else other.add(attr);
    }
  }
  for (const attr of other) delete out[attr];
  return out;
}

function unpackedFactories(perFile: { file: string; facts: PythonFileFacts }[]): SessionFactoryInfo[] {
  const builders = new Map<string, { index: number; kind: string }[]>();
  for (const { facts } of perFile) for (const b of facts.tupleBuilders ?? []) builders.set(b.name, [...(builders.get(b.name) ?? []), b]);
  const out: SessionFactoryInfo[] = [];
  for (const { file, facts } of perFile) {
    for (const u of facts.tupleUnpacks ?? []) {
      for (const b of builders.get(u.callee) ?? []) {
        const name = u.targets[b.index];
        if (!name || out.some((f) => f.file === file && f.name === name)) continue;
        out.push({ kind: b.kind, name, function: null, bind: null, class: null, expireOnCommit: null, autoflush: null, kwargs: {}, file, line: u.line });
      }
    }
  }
  return out;
}

/** Flask-SQLAlchemy's pool settings in app config, as the engine option each one becomes. */
const FLASK_POOL_KEYS: Record<string, string> = {
  SQLALCHEMY_POOL_SIZE: 'pool_size', SQLALCHEMY_POOL_RECYCLE: 'pool_recycle', SQLALCHEMY_POOL_TIMEOUT: 'pool_timeout', SQLALCHEMY_MAX_OVERFLOW: 'max_overflow',
};

/**
 * The engines `flask_sqlalchemy.SQLAlchemy(...)` makes, with the options the app's config gives
 * them anywhere in the project (`SQLALCHEMY_ENGINE_OPTIONS`, the 2.x `SQLALCHEMY_POOL_*` keys
 * unless the project pins 3.x,
 * `engine_options=`), so PA404 judges them like `create_engine`. Options that are not a literal
 * mapping make the settings unknown: no engine is recorded. Flask-SQLAlchemy itself sets
 * `pool_recycle=7200` for MySQL.
 */
function flaskEngines(perFile: { file: string; facts: PythonFileFacts }[], flaskSqlalchemyMajor: number | null): EngineInfo[] {
  // Flask-SQLAlchemy 3.0 removed the `SQLALCHEMY_POOL_*` keys (deprecated in 2.4): its engine
  // reads `SQLALCHEMY_ENGINE_OPTIONS` only. Unpinned, they are taken as read (no claim either way).
  const legacyKeys = flaskSqlalchemyMajor === null || flaskSqlalchemyMajor < 3;
  const configs = perFile.flatMap(({ facts }) => facts.engineConfig ?? []);
  const out: EngineInfo[] = [];
  for (const { file, facts } of perFile) {
    for (const fe of facts.flaskEngines ?? []) {
      let unknown = fe.engineOptions === null;
      let scheme: string | null = null;
      const kwargs: Record<string, LiteralValue> = {};
      for (const c of configs) {
        if (c.options === null) unknown = true;
        else if (c.key === 'SQLALCHEMY_ENGINE_OPTIONS') Object.assign(kwargs, c.options);
        else if (c.key === 'SQLALCHEMY_DATABASE_URI') scheme ??= typeof c.options.value === 'string' ? c.options.value : null;
        else if (FLASK_POOL_KEYS[c.key] && legacyKeys) kwargs[FLASK_POOL_KEYS[c.key]!] = c.options.value ?? DYNAMIC;
      }
      if (unknown) continue;
      Object.assign(kwargs, fe.engineOptions);
      if (scheme && /^(mysql|mariadb)/.test(scheme) && !('pool_recycle' in kwargs)) kwargs['pool_recycle'] = 7200;
      const poolclass = kwargs['poolclass'];
      out.push({
        name: fe.name, function: fe.function, async: false, factory: 'SQLAlchemy', urlScheme: scheme,
        kwargs: Object.fromEntries(Object.keys(kwargs).sort().map((k) => [k, kwargs[k]!])),
        poolClass: typeof poolclass === 'string' ? poolclass.replace(/^.*\./, '') : null,
        file, line: fe.line,
      });
    }
  }
  return out;
}

const SCHEME_DATABASE: [RegExp, string][] = [
  [/^postgres(ql)?(\+|$)/, 'postgresql'],
  [/^(mysql|mariadb)(\+|$)/, 'mysql'],
  [/^sqlite(\+|$)/, 'sqlite'],
];

function addEngineDatabases(ctx: ProjectContext): void {
  for (const e of ctx.engines) {
    // Test code often runs on SQLite or a throwaway URL: it says nothing about the project's database.
    if (!e.urlScheme || isTestPath(e.file)) continue;
    const hit = SCHEME_DATABASE.find(([re]) => re.test(e.urlScheme!));
    if (hit && !ctx.stack[hit[1]]) ctx.stack[hit[1]] = { version: null, source: e.file, kind: 'database' };
  }
}

const DATABASE_NAMES: Record<string, string> = { postgresql: 'PostgreSQL', mysql: 'MySQL', mariadb: 'MariaDB', sqlite: 'SQLite', mongodb: 'MongoDB' };
const DRIVER_NAMES: Record<string, string> = {
  asyncpg: 'asyncpg', psycopg2: 'psycopg2', psycopg: 'psycopg', aiosqlite: 'aiosqlite', pymysql: 'PyMySQL', aiomysql: 'aiomysql',
  asyncmy: 'asyncmy', mysqlclient: 'mysqlclient', 'mysql-connector-python': 'mysql-connector-python', pg: 'pg', pgx: 'pgx', 'lib/pq': 'lib/pq',
};
const FRAMEWORK_NAMES: Record<string, string> = {
  fastapi: 'FastAPI', starlette: 'Starlette', aiohttp: 'aiohttp', celery: 'Celery', arq: 'arq', dramatiq: 'dramatiq', flask: 'Flask',
};

/** Major version from a constraint: `^2.0.1` → 2, `>=1.4,<2.0` → 1, `<2.0` → 1. */
export function majorOf(constraint: string | null): number | null {
  if (!constraint) return null;
  const c = constraint.trim();
  const upperOnly = /^<=?\s*(\d+)(?:\.(\d+))?/.exec(c);
  if (upperOnly) {
    const major = Number(upperOnly[1]);
    return c.startsWith('<=') || Number(upperOnly[2] ?? 0) > 0 ? major : major - 1;
  }
  const m = /(\d+)/.exec(c);
  return m ? Number(m[1]) : null;
}

function summarize(stack: Record<string, StackEntry>, ctx: ProjectContext, sqlalchemy2: boolean): ProjectContext['summary'] {
  const databases: string[] = [];
  for (const [key, name] of Object.entries(DATABASE_NAMES)) {
    const e = stack[key];
    if (!e) continue;
    const v = e.version && /^\d+(\.\d+)?$/.test(e.version) ? ` ${e.version}` : '';
    databases.push(name + v);
  }
  const orms: string[] = [];
  // SQLModel and Flask-SQLAlchemy bring SQLAlchemy along; name it only when it shows on its own.
  if (stack.sqlalchemy || sqlalchemy2 || (ctx.engines.length > 0 && !stack.sqlmodel)) {
    const major = majorOf(stack.sqlalchemy?.version ?? null);
    orms.push(major !== null ? `SQLAlchemy ${major}.x` : sqlalchemy2 ? 'SQLAlchemy 2.x' : 'SQLAlchemy');
  }
  if (stack.sqlmodel) orms.push('SQLModel');
  if (stack.django) orms.push('Django ORM');
  if (stack['tortoise-orm']) orms.push('Tortoise ORM');
  if (stack.peewee) orms.push('peewee');
  const drivers = Object.keys(DRIVER_NAMES).filter((k) => stack[k]).map((k) => DRIVER_NAMES[k]!);
  const frameworks = Object.keys(FRAMEWORK_NAMES).filter((k) => stack[k]).map((k) => FRAMEWORK_NAMES[k]!);
  const asyncUse =
    ctx.engines.some((e) => e.async) ||
    ctx.sessionFactories.some((f) => f.kind.startsWith('async') || f.kind === 'AsyncSession') ||
    ['asyncpg', 'aiosqlite', 'aiomysql', 'asyncmy', 'fastapi', 'starlette', 'aiohttp', 'arq'].some((k) => stack[k]);
  if (asyncUse) frameworks.push('asyncio');
  return { databases, orms, drivers, frameworks };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function bySite<T extends { file: string; line: number }>(key: (x: T) => string = () => '') {
  return (a: T, b: T): number => cmp(a.file, b.file) || a.line - b.line || cmp(key(a), key(b));
}

function sortContext(ctx: ProjectContext): void {
  ctx.engines.sort(bySite((e) => e.name ?? ''));
  ctx.sessionFactories.sort(bySite((f) => f.kind));
  ctx.poolListeners.sort(bySite((l) => l.event));
  ctx.sessionProviders.sort(bySite((p) => p.name));
  ctx.sessionHelpers.sort(bySite((h) => h.name));
  ctx.streamingFactories?.sort(bySite((h) => h.name));
  ctx.models.sort(bySite((m) => m.name));
  ctx.migrations.triggers.sort(bySite((t) => t.name));
  ctx.migrations.notifyFunctions.sort(bySite((f) => f.name));
  ctx.migrations.listens.sort(bySite((l) => l.channel));
  const ev = bySite<EventSite>((e) => `${e.kind}\0${e.channel}`);
  ctx.events.publishers = dedupe(ctx.events.publishers.sort(ev));
  ctx.events.subscribers = dedupe(ctx.events.subscribers.sort(ev));
  ctx.problems.sort((a, b) => cmp(a.file, b.file) || cmp(a.reason, b.reason));
}

function dedupe(sites: EventSite[]): EventSite[] {
  const seen = new Set<string>();
  return sites.filter((s) => {
    const k = `${s.file}\0${s.line}\0${s.kind}\0${s.channel}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
