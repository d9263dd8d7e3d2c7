/**
 * Facts the lifecycle rules share: what acquires a session/connection/file, whether a name is
 * closed on every path, which handler parameters are injected sessions, which responses stream
 * and which generator feeds them, and what the project is (web service, FastAPI version).
 *
 * Candidates for the shared semantic layer (see the final notes of the family): acquisition
 * classification, injected-session parameters, streaming responses.
 */
import { isEngineGetterCall, isEngineGetterName } from '../../../semantic/engineGetters.js';
import { conditionalWithin, insideNestedFunction } from '../../../semantic/controlFlow.js';
import { isMigrationFile } from '../../projectFacts.js';
import { externalCall, spawnedTask } from '../../../semantic/externalCalls.js';
import type { SyntaxNode } from '../../../parse/parser.js';
import type { AssignmentInfo, CallInfo, FileModel, FunctionInfo } from '../../../semantic/model.js';
import { assignmentsTo, callAt, callsOf, declaresGlobal, effectiveRole, isFlaskHandle, moduleNameOf, resolveImported, resolveName, valueTypeOf, variableRefs } from '../../../semantic/model.js';
import { dependencyAliasOf } from '../../../semantic/dependencyAliases.js';
import { isSessionFactoryType, projectFactories } from '../../../semantic/sessionFactories.js';
import { listedDependencies } from '../../../semantic/routerIncludes.js';
import { callArgs } from '../query/semantics.js';
import { annotationType, calleeType, receiverType } from '../../../semantic/valueTypes.js';
import type { ProjectContext, SessionHelperInfo, SessionProviderInfo, StreamingFactoryInfo } from '../../../discovery/context.js';
import { CLOSE_METHODS, DRIVER_CONNECT, SESSION_CLASS, closeableClient, type CloseableClient } from '../../../semantic/resources.js';

// ---------------------------------------------------------------------------------------------
// Project facts

const WEB_FRAMEWORKS = ['fastapi', 'starlette', 'flask', 'django', 'litestar', 'quart', 'sanic', 'aiohttp'];

/** FastAPI/Starlette/Flask/Django (…) in the stack. */
export function isWebService(project: ProjectContext): boolean {
  if (WEB_FRAMEWORKS.some((k) => project.stack[k])) return true;
  return project.summary.frameworks.some((f) => /^(FastAPI|Starlette|Flask|Django|aiohttp)$/i.test(f));
}

/** `[major, minor, patch]` of a version string. */
type Version = [number, number, number];

function parseVersion(s: string): Version | null {
  const m = /(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(s);
  if (!m) return null;
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

function cmp(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/**
 * The FastAPI version the project runs, as far as its constraint says: the pinned version
 * (`==0.115.12`, `~=0.110`, `^0.112`, `0.110.*`), the upper bound of a closed range, or null
 * (unconstrained or only a lower bound: whatever is newest gets installed).
 */
export function fastapiVersion(project: ProjectContext): Version | null {
  const c = project.stack['fastapi']?.version;
  if (!c) return null;
  const parts = c.split(',').map((p) => p.trim());
  for (const p of parts) {
    if (/^(==|===|~=|\^|~)?\s*\d/.test(p) && !/^[<>]/.test(p)) return parseVersion(p);
  }
  const upper = parts.find((p) => /^<=?\s*\d/.test(p));
  if (upper) {
    const v = parseVersion(upper);
    if (!v) return null;
    if (upper.startsWith('<=')) return v;
    // `<0.118` allows 0.117.x at most.
    if (v[2] > 0) return [v[0], v[1], v[2] - 1];
    if (v[1] > 0) return [v[0], v[1] - 1, 999];
    return null;
  }
  return null;
}

/**
 * Does FastAPI run the exit code of `yield` dependencies after a streaming response has been
 * sent (so an injected session stays open for the whole stream)? Before 0.106 and from 0.118:
 * yes; 0.106–0.117: no, the exit code ran before the response was sent. Unknown → the newest.
 */
export function yieldDependencyOutlivesStream(project: ProjectContext): boolean {
  const v = fastapiVersion(project);
  if (!v) return true;
  return cmp(v, [0, 106, 0]) < 0 || cmp(v, [0, 118, 0]) >= 0;
}

// ---------------------------------------------------------------------------------------------
// Acquisitions

export type ResourceKind = 'session' | 'connection' | 'file' | 'client';

export interface AcquireKind {
  kind: ResourceKind;
  /** What is acquired, for messages: `ReportSession()`, `engine.connect()`, `open()`. */
  label: string;
  /** For a `client`: what it is and how it is closed. */
  client?: CloseableClient;
  /** A session provider's generator taken out of its protocol (`gen = get_db()`): the provider's name. */
  provider?: string;
  /** An instance of a project class that owns a session (`SessionHelperInfo.owner`): its methods' results are not the session. */
  owner?: true;
  /**
   * Made by a method of the caller's own class (`self._session()`): its name. With `registry`,
   * that method builds a new `scoped_session(...)` on every call, so the registry, and the
   * session it makes, belong to this call alone.
   */
  via?: string;
  registry?: true;
}

const ENGINE_FACTORIES = /^(sqlalchemy(\.engine)?\.create_engine|sqlmodel\.create_engine|sqlalchemy\.ext\.asyncio(\.engine)?\.create_async_engine)\(\)$/;
const ENGINE_ANNOTATIONS = /^@(sqlalchemy(\.engine(\.base)?)?\.Engine|sqlalchemy\.ext\.asyncio(\.engine)?\.AsyncEngine)$/;
const FILE_OPEN = new Set(['builtins.open', 'io.open', 'aiofiles.open']);

/** Module-level session factories and engines the context found, by qualified name. */
interface ProjectNames {
  factories: Set<string>;
  engines: Set<string>;
  providers: Set<string>;
  /** Session providers (generators yielding a session), by qualified name. */
  providerInfo: Map<string, SessionProviderInfo>;
  /** Functions returning a new session/connection, by qualified name. */
  helpers: Map<string, SessionHelperInfo>;
}

const namesCache = new WeakMap<ProjectContext, ProjectNames>();

export function projectNames(project: ProjectContext): ProjectNames {
  let names = namesCache.get(project);
  if (names) return names;
  names = { factories: new Set(), engines: new Set(), providers: new Set(), providerInfo: new Map(), helpers: new Map() };
  for (const q of projectFactories(project).keys()) names.factories.add(q);
  for (const e of project.engines) {
    if (e.name && !e.function && e.factory !== 'asyncpg.create_pool') names.engines.add(`${moduleNameOf(e.file)}.${e.name}`);
  }
  for (const p of project.sessionProviders) {
    names.providers.add(`${moduleNameOf(p.file)}.${p.name}`);
    names.providerInfo.set(`${moduleNameOf(p.file)}.${p.name}`, p);
  }
  for (const h of project.sessionHelpers ?? []) names.helpers.set(`${moduleNameOf(h.file)}.${h.name}`, h);
  namesCache.set(project, names);
  return names;
}

function isEngineType(project: ProjectContext, t: string | null): boolean {
  if (!t) return false;
  if (ENGINE_FACTORIES.test(t) || ENGINE_ANNOTATIONS.test(t)) return true;
  // `engine = get_engine()`: what one of the project's engine getters returns.
  if (t.endsWith('()') && /^[\w.]+\(\)$/.test(t) && isEngineGetterName(project, t.slice(0, -2))) return true;
  return projectNames(project).engines.has(t);
}

/**
 * A leaked session's or connection's claim: high where a request leaks it (a leak per request),
 * medium in a background job or startup code (a leak per run).
 */
export function leakSeverity(model: FileModel, fnIndex: number): 'high' | 'medium' {
  const role = effectiveRole(model, fnIndex);
  return role === 'background' || role === 'init' ? 'medium' : 'high';
}

/**
 * The claim of a session or connection leaked only when something fails (closed on the normal
 * path, not on an exception or an `except` that leaves): one step below {@link leakSeverity}.
 * The object is garbage once the failing call's traceback is dropped, and SQLAlchemy's pool
 * takes back a connection whose holder is collected (with a warning): the leak lasts until the
 * next collection, and only failing calls make it.
 */
export function errorPathLeakSeverity(model: FileModel, fnIndex: number): 'medium' | 'low' {
  return leakSeverity(model, fnIndex) === 'high' ? 'medium' : 'low';
}

/**
 * The first `return`/`raise` of an `except` clause after the acquisition that leaves the function
 * without closing the value, in a `try` with no `finally` that closes it and no `try` around it
 * that protects it: the error path a function that closes on the normal path leaks on. Null when
 * there is none.
 */
export function exceptExitLeaving(acq: Acquisition): SyntaxNode | null {
  const stop = acq.fn.node;
  const start = acq.assignment.node.endIndex;
  for (const tryStmt of (acq.fn.body ?? stop).descendantsOfType('try_statement')) {
    if (tryStmt.startIndex < start || insideNestedFunction(tryStmt, acq.fn.body ?? stop)) continue;
    const clauses = tryStmt.namedChildren;
    if (clauses.some((c) => c.type === 'finally_clause' && closesIn(c, acq.target))) continue;
    if (protectedByTry(tryStmt, acq.target, stop)) continue;
    const exit = clauses
      .filter((c) => (c.type === 'except_clause' || c.type === 'except_group_clause') && !closesIn(c, acq.target))
      .flatMap((c) => exitsOf(c))[0];
    if (exit) return exit;
  }
  return null;
}

/**
 * Does this call acquire a resource that must be closed? Sessions (`Session(engine)`, a
 * `sessionmaker` factory called, `sessionmaker(...)()`), connections (`engine.connect()`,
 * `engine.raw_connection()`, `await pool.acquire()`, driver `connect()`), files (`open()`).
 */
export function acquireKind(model: FileModel, project: ProjectContext, call: CallInfo, seen: Set<number> = new Set()): AcquireKind | null {
  const q = call.qualifiedName;
  if (q && FILE_OPEN.has(q)) return { kind: 'file', label: q === 'builtins.open' ? 'open()' : `${q}()` };
  if (q && DRIVER_CONNECT.has(q)) return { kind: 'connection', label: `${q}()` };
  if (q && SESSION_CLASS.test(q)) return bindsBorrowedConnection(model, call) ? null : { kind: 'session', label: `${call.calleeText}()` };
  // A method of an engine (`engine.connect()`); a bare `raw_connection()` is a function of the
  // project's, looked up among its helpers below.
  if ((call.method === 'connect' || call.method === 'raw_connection') && call.hasReceiver) {
    if ((isEngineType(project, receiverType(model, call)) || isEngineGetterCall(model, project, call.receiver, call.functionIndex))) {
      return { kind: 'connection', label: `${call.dottedReceiver ?? call.receiver!.text}.${call.method}()` };
    }
    // Flask-SQLAlchemy's engine: `db.engine.connect()` on the project's `SQLAlchemy()` object
    // (the module-level name, not a parameter or local that happens to be called `db`).
    const dotted = call.dottedReceiver ?? '';
    const head = dotted.split('.')[0]!;
    const fn = call.functionIndex >= 0 ? model.functions[call.functionIndex] : undefined;
    const shadowed = !!fn && (fn.params.some((p) => p.name === head) || assignmentsTo(model, head).some((a) => a.functionIndex === fn.index && a.target === head));
    if (!shadowed && isFlaskHandle(model, dotted, 'engine')) {
      return { kind: 'connection', label: `${dotted}.${call.method}()` };
    }
    return null;
  }
  if (call.method === 'acquire') {
    const recv = call.receiver;
    // `pool.acquire()`, `self.db_pool.acquire()`, or a pool kept under a key (`request.app["pool"]`).
    if (recv && call.awaited && (/(^|[._])pool$/i.test(recv.text) || /\[\s*["'](\w*_)?pool["']\s*\]$/i.test(recv.text))) return { kind: 'connection', label: `${recv.text}.acquire()` };
    return null;
  }
  // psycopg2's pools (`SimpleConnectionPool`, `ThreadedConnectionPool`): `pool.getconn()` checks a
  // connection out, `pool.putconn(conn)` gives it back; the pool keeps a reference, so a connection
  // never given back is lost to it for good (no garbage collector returns it).
  if (call.method === 'getconn' && call.receiver && !call.awaited) {
    const recv = call.receiver;
    const t = receiverType(model, call) ?? '';
    if (/(^|[._])pool$/i.test(recv.text) || /psycopg2?\.pool\.\w*ConnectionPool/.test(t)) return { kind: 'connection', label: `${recv.text}.getconn()` };
    return null;
  }
  // A project factory by the name it is bound to (`OrderSession, engine = build(url)`: its value's type is not known).
  if (isSessionFactoryType(project, calleeType(model, call)) || projectNames(project).factories.has(boundName(model, call) ?? '')) {
    return { kind: 'session', label: `${call.calleeText}()` };
  }
  const client = closeableClient(q);
  if (client) {
    const { keywords } = callArgs(call.node);
    if (client.borrowsWith?.some((k) => keywords.has(k))) return null;
    return { kind: 'client', label: `${call.calleeText}()`, client };
  }
  // `db = new_session()`: a project helper that returns a new session or connection.
  const helperName = boundName(model, call);
  const helper = helperName ? projectNames(project).helpers.get(helperName) : undefined;
  if (helper && helper.name !== model.functions[call.functionIndex]?.qualifiedName) {
    return helper.owner ? { kind: helper.kind, label: `${call.calleeText}()`, owner: true } : { kind: helper.kind, label: `${call.calleeText}()` };
  }
  // `gen = get_db()`: the provider's generator, whose cleanup runs when it is closed or exhausted.
  const provider = sessionProviderOf(model, project, call);
  if (provider && !provider.contextManager && !call.isWithItem) return { kind: 'session', label: `${call.calleeText}()`, provider: provider.name };
  // `s = self._session()`: a method of the same class that returns a new session or connection.
  const made = ownMethodAcquires(model, project, call, seen);
  if (made) return { kind: made.kind, label: `${call.calleeText}()`, via: made.via, ...(made.registry ? { registry: true as const } : {}) };
  return null;
}

const SCOPED_SESSION = /^sqlalchemy(\.ext\.asyncio)?(\.orm)?(\.scoping)?\.(async_)?scoped_session$/;

/**
 * `self._session()` / `cls._session()` / `Store._session()` called in a method of `Store`, where
 * `Store._session` (in this module) returns on every path what a call made anew: a session
 * (`return self.maker()`, `s = Session(engine); return s`), a connection, or a fresh
 * `scoped_session(self.maker)` registry (whose session no one else can reach to remove). A
 * method returning a stored object (`return self.session`, `return self._registry()`: the
 * thread's shared session) makes nothing. Null for anything else.
 */
function ownMethodAcquires(model: FileModel, project: ProjectContext, call: CallInfo, seen: Set<number>): { kind: ResourceKind; via: string; registry?: true } | null {
  if (!call.receiver || call.receiver.type !== 'identifier' || call.functionIndex < 0) return null;
  const caller = model.functions[call.functionIndex]!;
  const cls = caller.className;
  const recv = call.receiver.text;
  if (!cls || (recv !== 'self' && recv !== 'cls' && recv !== cls)) return null;
  const method = model.functions.find((f) => f.className === cls && f.qualifiedName === `${cls}.${call.method}` && f.body && !f.isGenerator);
  if (!method || seen.has(method.index) || method.index === caller.index) return null;
  // A `@contextmanager`-like or abstract method is no plain maker.
  if (method.decoratorNames.some((d) => /contextmanager$|abstractmethod$|property$/.test(d))) return null;
  seen.add(method.index);
  try {
    return methodMakes(model, project, method, seen);
  } finally {
    seen.delete(method.index);
  }
}

function methodMakes(model: FileModel, project: ProjectContext, method: FunctionInfo, seen: Set<number>): { kind: ResourceKind; via: string; registry?: true } | null {
  let kind: ResourceKind | null = null;
  let registry = false;
  let returns = 0;
  for (const r of method.body!.descendantsOfType('return_statement')) {
    if (enclosingDef(r)?.id !== method.node.id) continue;
    let value = r.namedChild(0);
    if (!value) continue;
    returns++;
    if (value.type === 'await') value = value.namedChild(0);
    if (value?.type === 'identifier') {
      // A local bound from a call before this return (the last binding decides).
      const local: string = value.text;
      const bound = model.assignments.filter((a) => a.functionIndex === method.index && a.target === local && a.node.startIndex < r.startIndex && !a.fromWith);
      let v = bound.length ? bound[bound.length - 1]!.value : null;
      if (v?.type === 'await') v = v.namedChild(0);
      value = v;
    }
    if (value?.type !== 'call') return null;
    const inner = callAt(model, value);
    if (!inner) return null;
    let k: ResourceKind | null = null;
    if (SCOPED_SESSION.test(inner.qualifiedName ?? '')) {
      k = 'session';
      registry = true;
    } else {
      const made = acquireKind(model, project, inner, seen);
      if (!made || made.kind === 'file' || made.kind === 'client' || made.provider || made.owner) return null;
      k = made.kind;
    }
    if (kind && kind !== k) return null;
    kind = k;
  }
  if (!kind || returns === 0) return null;
  return { kind, via: method.qualifiedName, ...(registry ? { registry: true as const } : {}) };
}

/** The function or lambda definition a node sits in. */
function enclosingDef(n: SyntaxNode): SyntaxNode | null {
  for (let p = n.parent; p; p = p.parent) if (p.type === 'function_definition' || p.type === 'lambda') return p;
  return null;
}

/** The qualified name a call's callee is bound to: through imports, or a bare name of this module (a tuple target the model does not list). */
function boundName(model: FileModel, call: CallInfo): string | null {
  return call.qualifiedName ?? resolveName(model, call.calleeText) ?? (/^[A-Za-z_]\w*$/.test(call.calleeText) ? `${model.moduleName}.${call.calleeText}` : null);
}

/** The session provider (a generator yielding a session) a call calls, or null. */
export function sessionProviderOf(model: FileModel, project: ProjectContext, call: CallInfo): SessionProviderInfo | null {
  const q = boundName(model, call);
  return q ? projectNames(project).providerInfo.get(q) ?? null : null;
}

/**
 * `Session(bind=conn)` / `Session(conn)` over a connection someone else opened (`engine.connect()`,
 * `op.get_bind()`, a `conn` handed in): closing the session would not close that connection and
 * leaving it open leaks no pooled connection; the connection's owner closes it.
 */
function bindsBorrowedConnection(model: FileModel, call: CallInfo): boolean {
  const { positional, keywords } = callArgs(call.node);
  const bind = keywords.get('bind') ?? positional[0];
  if (!bind) return false;
  const text = bind.text.replace(/\s+/g, '');
  if (/\.(connect|get_bind|connection)\(\)$/.test(text)) return true;
  if (bind.type !== 'identifier' && bind.type !== 'attribute') return false;
  const name = text.slice(text.lastIndexOf('.') + 1);
  if (/^(conn|connection|connectable|bind|db_conn|sync_conn|sync_connection)$/.test(name)) return true;
  const t = bind.type === 'identifier' ? valueTypeOf(model, bind.text, call.functionIndex, call.line) : null;
  return !!t && /(^|\.)(Connection|AsyncConnection)$|\.(connect|get_bind)$/.test(t);
}

export interface Acquisition extends AcquireKind {
  /** The variable bound. */
  target: string;
  assignment: AssignmentInfo;
  /** The acquiring call. */
  call: CallInfo;
  fn: FunctionInfo;
}

/** `x = <acquire>` / `x = await <acquire>` statements inside functions (not `with` bindings). */
export function acquisitions(model: FileModel, project: ProjectContext): Acquisition[] {
  let out = acquisitionsMemo.get(model);
  if (!out) acquisitionsMemo.set(model, (out = findAcquisitions(model, project)));
  return out;
}

/** Several rules ask; a model is audited against one project context. */
const acquisitionsMemo = new WeakMap<FileModel, Acquisition[]>();

function findAcquisitions(model: FileModel, project: ProjectContext): Acquisition[] {
  // A migration's session is bound to the connection the migration tool opens and closes.
  if (model.isTestFile || !mayAcquire(model, project) || isMigrationFile(project, model.path)) return [];
  const out: Acquisition[] = [];
  for (const a of model.assignments) {
    if (a.functionIndex < 0 || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
    let v = a.value;
    if (v?.type === 'await') v = v.namedChild(0);
    if (v?.type !== 'call') continue;
    const call = callAt(model, v);
    if (!call) continue;
    const kind = acquireKind(model, project, call);
    // `with psycopg2.connect(dsn) as conn:` ends a transaction and leaves the connection open;
    // any other `with` item closes what it binds.
    if (!kind || (a.fromWith && !WITH_KEEPS_OPEN.test(kind.label))) continue;
    out.push({ ...kind, target: a.target, assignment: a, call, fn: model.functions[a.functionIndex]! });
  }
  return out;
}

const ACQUIRE_HINT = /Session|session|connect|acquire|getconn|open\(|Client|Redis|redis|Executor/;

/**
 * A cheap text test before the walk: an acquiring name, or the name of one of the project's
 * session providers, helpers, factories or engines (`from app.db import Maker as new_db` still
 * names `Maker`; a file that only says `db.Maker()` too).
 */
function mayAcquire(model: FileModel, project: ProjectContext): boolean {
  if (ACQUIRE_HINT.test(model.source)) return true;
  const names = acquireNames(project);
  if (!names.length) return false;
  return names.some((n) => model.source.includes(n));
}

const acquireNameMemo = new WeakMap<ProjectContext, string[]>();

/**
 * The distinct short names of the project's providers, helpers, factories and engines, once per
 * project: a monorepo declares the same few names in every service, and each file asked about
 * every declaration.
 */
function acquireNames(project: ProjectContext): string[] {
  let names = acquireNameMemo.get(project);
  if (names) return names;
  const set = new Set<string>();
  const add = (name: string | null | undefined) => {
    if (name) set.add(name.slice(name.lastIndexOf('.') + 1));
  };
  for (const p of project.sessionProviders) add(p.name);
  for (const h of project.sessionHelpers ?? []) add(h.name);
  for (const f of project.sessionFactories) add(f.name);
  for (const e of project.engines) add(e.name);
  names = [...set].sort();
  acquireNameMemo.set(project, names);
  return names;
}

// ---------------------------------------------------------------------------------------------
// Closing

/** Methods that take ownership of the value handed to them. */
const OWNERSHIP_METHODS = new Set([
  'enter_context', 'enter_async_context', 'push', 'push_async_exit', 'callback', 'push_async_callback', 'closing', 'aclosing',
  'append', 'appendleft', 'extend', 'add', 'put', 'put_nowait', 'setdefault', 'register', 'release', 'putconn',
]);

/** Is `ref` (an identifier of the variable) closing it: `x.close()`, `await x.aclose()`, `pool.release(x)`? */
function isCloseRef(ref: SyntaxNode): boolean {
  const p = ref.parent;
  if (p?.type === 'attribute' && p.childForFieldName('object')?.id === ref.id) {
    const attr = p.childForFieldName('attribute')?.text ?? '';
    if (CLOSE_METHODS.has(attr)) return true;
    // A `scoped_session` registry's `remove()` (no argument: not a list's) closes its session.
    if (attr === 'remove' && p.parent?.type === 'call' && p.parent.childForFieldName('arguments')?.namedChildren.length === 0) return true;
  }
  if (p?.type === 'argument_list') {
    const call = p.parent;
    const callee = call?.childForFieldName('function');
    const method = callee?.type === 'attribute' ? callee.childForFieldName('attribute')?.text : callee?.text;
    if (method && (method === 'release' || method === 'putconn' || method === 'close')) return true;
  }
  return false;
}

/**
 * `next(gen, None)` / `await anext(gen, None)`: resumes a provider's generator past its single
 * `yield`, so its cleanup runs and the default is returned: as good as `gen.close()`.
 */
function exhaustsGenerator(ref: SyntaxNode): boolean {
  const args = ref.parent;
  if (args?.type !== 'argument_list' || args.namedChildren[0]?.id !== ref.id || args.namedChildren.length !== 2) return false;
  const callee = args.parent?.childForFieldName('function');
  return callee?.type === 'identifier' && NEXT_BUILTINS.has(callee.text);
}

/**
 * Methods whose result holds no reference to the session: rows materialised, a scalar, a count;
 * asyncpg's `fetch`/`fetchrow`/`fetchval` return records already read.
 */
const MATERIALISING = /^(all|first|one|one_or_none|scalar|scalar_one|scalar_one_or_none|scalars_all|fetchall|fetchone|fetchmany|fetch|fetchrow|fetchval|count|exists|get|get_one|rowcount|keys|mappings_all)$/;

/**
 * `return s.execute(q).scalar_one()`: the returned value is computed with the session but does
 * not hold it. A chain from the reference whose last call materialises rows is a use, not an
 * escape; `return s.query(M)` (a lazy query bound to the session) still escapes.
 */
function usedNotReturned(ref: SyntaxNode): boolean {
  let top: SyntaxNode = ref;
  let lastMethod: string | null = null;
  for (;;) {
    const p = top.parent;
    if (p?.type === 'attribute' && p.childForFieldName('object')?.id === top.id) {
      const gp = p.parent;
      if (gp?.type === 'call' && gp.childForFieldName('function')?.id === p.id) {
        lastMethod = p.childForFieldName('attribute')?.text ?? null;
        top = gp;
        continue;
      }
      lastMethod = p.childForFieldName('attribute')?.text ?? null;
      top = p;
      continue;
    }
    if (p?.type === 'await' || p?.type === 'parenthesized_expression') {
      top = p;
      continue;
    }
    break;
  }
  return top !== ref && lastMethod !== null && MATERIALISING.test(lastMethod);
}

/** Is `ref` the object of an attribute (`client.get(...)`): the value is used, not handed on. */
function isReceiver(ref: SyntaxNode): boolean {
  return ref.parent?.type === 'attribute' && ref.parent.childForFieldName('object')?.id === ref.id;
}

/** Is `ref` the whole value of a `with` item (`with conn:`, `with conn as c:`)? */
function withItemIs(item: SyntaxNode, ref: SyntaxNode): boolean {
  let v = item.childForFieldName('value') ?? item.namedChild(0);
  if (v?.type === 'as_pattern') v = v.namedChild(0);
  while (v?.type === 'parenthesized_expression') v = v.namedChild(0);
  return v?.id === ref.id;
}

/** Connections whose own context manager ends a transaction and does not close them (psycopg2, sqlite3). */
export const WITH_KEEPS_OPEN = /^(psycopg2|sqlite3)\.connect\(\)$/;

/** Calls that run a function on another thread or process with the arguments given. */
const HANDS_TO_WORKER = /^(Thread|Process|Timer|submit|run_in_executor|to_thread|start_new_thread|apply_async)$/;

/** The variable escapes the function: returned, stored in an attribute or container, handed to an owner, managed by `with`. */
function escapesOrManaged(ref: SyntaxNode, kind: ResourceKind, owner = false, withKeepsOpen = false): boolean {
  for (let p: SyntaxNode | null = ref.parent; p; p = p.parent) {
    if (p.type === 'return_statement') return !(kind === 'client' || owner ? isReceiver(ref) : usedNotReturned(ref));
    if (p.type === 'function_definition' || p.type === 'lambda' || p.type === 'block' || p.type === 'expression_statement') break;
    // `with x:` / `with closing(x):` manage it. A method's result in the item is another object:
    // `with conn.cursor() as cur:` closes the cursor, `async with http.get(url) as resp` the
    // response, `with conn.begin():` ends a transaction (a session's `begin()` is below).
    // A psycopg2 or sqlite3 connection's own `with conn:` ends the transaction and leaves the
    // connection open.
    if (p.type === 'with_item') {
      if (isReceiver(ref)) break;
      return !(withKeepsOpen && withItemIs(p, ref));
    }
    if (p.type === 'assignment' || p.type === 'augmented_assignment') {
      const left = p.childForFieldName('left');
      const right = p.childForFieldName('right');
      if (left && right && ref.startIndex >= right.startIndex && left.type !== 'identifier') return true;
      // `rows = (s.query(M).all())`: parentheses around a call are still a call's result, not an alias.
      let value = right;
      while (value?.type === 'parenthesized_expression' && value.namedChild(0)) value = value.namedChild(0)!;
      if (left?.type === 'identifier' && value && ref.startIndex >= value.startIndex && value.type !== 'call' && value.type !== 'await') return true;
      break;
    }
    if (p.type === 'argument_list') {
      // Handed to another thread or process with its work (`Thread(target=run, args=(q, conn))`,
      // `pool.submit(run, conn)`, `asyncio.to_thread(run, conn)`): that work owns, and closes, it.
      const spawner = p.parent?.childForFieldName('function')?.text.replace(/^.*\./, '') ?? '';
      if (HANDS_TO_WORKER.test(spawner) && !isReceiver(ref)) return true;
      // What is handed over is the argument itself (`closing(conn)`), not what it makes (`closing(conn.cursor())`).
      if (ref.parent?.id !== p.id && !(ref.parent?.type === 'keyword_argument' && ref.parent.parent?.id === p.id)) continue;
      const callee = p.parent?.childForFieldName('function');
      const method = callee?.type === 'attribute' ? callee.childForFieldName('attribute')?.text : callee?.text;
      if (method && OWNERSHIP_METHODS.has(method.replace(/^.*\./, ''))) return true;
      // A setter keeps what it is given (`source.setByteStream(f)`, `obj.set_stream(f)`).
      if (method && /^set(_|[A-Z])/.test(method.replace(/^.*\./, ''))) return true;
      // `self.initfp(f)`: the object's own method takes the handle over (it usually keeps it).
      if (callee?.type === 'attribute' && /^(self|cls)$/.test(callee.childForFieldName('object')?.text ?? '')) return true;
      // `GitHubApi(session=http)`: a client handed to an object that keeps and closes it.
      if (kind === 'client' && method && /^[A-Z]/.test(method.replace(/^.*\./, ''))) return true;
    }
    if (p.type === 'list' || p.type === 'tuple' || p.type === 'dictionary' || p.type === 'set' || p.type === 'pair') {
      // `(conn, cur)` returned or stored: handled by the enclosing return/assignment.
      continue;
    }
  }
  // `x.close` handed over as a callback (`stack.callback(x.close)`, `BackgroundTask(db.close)`).
  const p = ref.parent;
  if (p?.type === 'attribute' && p.childForFieldName('object')?.id === ref.id) {
    const attr = p.childForFieldName('attribute')?.text ?? '';
    const gp = p.parent;
    if (CLOSE_METHODS.has(attr) && gp?.type !== 'call') return true;
    // `with x.begin():` on a session releases its connection at the end of the block.
    if (kind === 'session' && attr === 'begin' && gp?.type === 'call' && (gp.parent?.type === 'with_item' || gp.parent?.parent?.type === 'with_item')) return true;
  }
  return false;
}

/** The innermost ancestor of `node` of one of `types`, not crossing a function boundary. */
export function ancestorOf(node: SyntaxNode, types: string[], stop: SyntaxNode): SyntaxNode | null {
  for (let p = node.parent; p && p.id !== stop.id; p = p.parent) {
    if (types.includes(p.type)) return p;
    if (p.type === 'function_definition' || p.type === 'lambda') return null;
  }
  return null;
}

function enclosingClauses(node: SyntaxNode, stop: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (let p = node.parent; p && p.id !== stop.id; p = p.parent) {
    if (p.type === 'finally_clause' || p.type === 'except_clause' || p.type === 'except_group_clause') out.push(p);
  }
  return out;
}

/** Catches everything (bare `except:`, `Exception`, `BaseException`). */
export function catchesAll(clause: SyntaxNode): boolean {
  const kids = clause.namedChildren.filter((c) => c.type !== 'block' && c.type !== 'comment');
  if (kids.length === 0) return true;
  const t = kids[0]!.type === 'as_pattern' ? kids[0]!.namedChild(0)?.text ?? '' : kids[0]!.text;
  return /^\(?\s*(BaseException|Exception)\b/.test(t);
}

export interface CloseFacts {
  /** The variable leaves the function or is managed elsewhere. */
  escapes: boolean;
  /** Closed in a `finally` whose `try` contains the acquisition or starts after it. */
  closedInFinally: boolean;
  /** Closed in an `except` of a `try` around its use, and also on the normal path. */
  closedOnBothPaths: boolean;
  /** Closed outside any `finally`/`except` (the normal path). */
  closedNormally: boolean;
  /** `except` clauses (of a `try` after the acquisition) that close it. */
  closingExcepts: Set<number>;
  refs: SyntaxNode[];
}

/** Is `ref` in the statement that directly follows the acquisition's statement (or its `else:`)? */
function closesRightAfter(ref: SyntaxNode, acquisition: SyntaxNode): boolean {
  let stmt: SyntaxNode | null = acquisition;
  while (stmt && stmt.parent && stmt.parent.type !== 'block') stmt = stmt.parent;
  let refStmt: SyntaxNode | null = ref;
  while (refStmt && refStmt.parent && refStmt.parent.type !== 'block') refStmt = refStmt.parent;
  if (!stmt || !refStmt) return false;
  const block = stmt.parent;
  if (block && refStmt.parent?.id === block.id) {
    const siblings = block.namedChildren.filter((c) => c.type !== 'comment');
    const i = siblings.findIndex((c) => c.id === stmt!.id);
    // Log lines in between (`logger.info("connected")`) do not fail in practice.
    let j = i + 1;
    while (j < siblings.length && siblings[j]!.id !== refStmt.id && cannotFail(siblings[j]!)) j++;
    return i >= 0 && siblings[j]?.id === refStmt.id;
  }
  // `try: f = open(p)` … `else: f.close()`: the first statement of the try's else clause.
  const tryStmt = block?.parent;
  const elseBlock = refStmt.parent;
  if (tryStmt?.type === 'try_statement' && elseBlock?.parent?.type === 'else_clause' && elseBlock.parent.parent?.id === tryStmt.id) {
    const body = tryStmt.childForFieldName('body');
    const last = body?.namedChildren.filter((c) => c.type !== 'comment').pop();
    const first = elseBlock.namedChildren.filter((c) => c.type !== 'comment')[0];
    return last?.id === stmt.id && first?.id === refStmt.id;
  }
  return false;
}

/**
 * A log line whose arguments cannot raise, or `pass`: a statement that does not fail in practice.
 * The logging module formats lazily and reports its own errors (`Handler.handleError`), so
 * `logger.info("%s connected", url)` cannot raise in the caller; an argument evaluated here can
 * (`"%d" % None`, `f"{row['id']}"`, `extra={"name": ...}` on a reserved key): only string
 * literals (f-strings interpolating plain names), plain names and `+` of them, no keywords.
 */
function cannotFail(stmt: SyntaxNode): boolean {
  if (stmt.type === 'pass_statement') return true;
  if (stmt.type !== 'expression_statement') return false;
  const call = stmt.namedChild(0);
  if (call?.type !== 'call') return false;
  const fn = call.childForFieldName('function')?.text ?? '';
  if (!LOG_CALL.test(fn)) return false;
  const args = (call.childForFieldName('arguments')?.namedChildren ?? []).filter((a) => a.type !== 'comment');
  return args.every(plainText);
}

/** A plain name, a string literal (f-strings interpolating plain names), or a `+` of them (`"connected to " + url`). */
function plainText(a: SyntaxNode): boolean {
  if (a.type === 'identifier') return true;
  // An f-string interpolating a plain name, no format spec (`{x:.1f}` raises on a str).
  if (a.type === 'string') return a.namedChildren.every((c) => c.type !== 'interpolation' || (c.namedChildren.length === 1 && c.namedChild(0)?.type === 'identifier'));
  if (a.type === 'concatenated_string') return a.namedChildren.every(plainText);
  // `"connected to " + url`: a name concatenated to a literal (a TypeError only when it is not a str).
  return a.type === 'binary_operator' && a.childForFieldName('operator')?.text === '+' && plainText(a.childForFieldName('left')!) && plainText(a.childForFieldName('right')!)
    && [a.childForFieldName('left')!, a.childForFieldName('right')!].some((x) => x.type === 'string');
}

const LOG_CALL = /^((self|cls)\.)?_*(log|logger|logging|LOG|LOGGER|LOGGING)\.(debug|info|warning|warn|error|exception|critical)$/;

/** PA403 and PA405 both ask about each acquisition (acquisitions are computed once per file). */
const closeFactsMemo = new WeakMap<Acquisition, CloseFacts>();

export function closeFacts(acq: Acquisition): CloseFacts {
  let facts = closeFactsMemo.get(acq);
  if (!facts) closeFactsMemo.set(acq, (facts = findCloseFacts(acq)));
  return facts;
}

function findCloseFacts(acq: Acquisition): CloseFacts {
  const fnNode = acq.fn.node;
  const body = acq.fn.body ?? fnNode;
  const stmtStart = acq.assignment.node.startIndex;
  // After the acquisition: for a `with` item, its body too (the assignment's node is the whole `with`).
  const after = acq.assignment.fromWith ? acq.call.node.endIndex : acq.assignment.node.endIndex;
  const refs = variableRefs(body, acq.target).filter((r) => r.startIndex >= after && r.parent?.type !== 'as_pattern_target');
  const facts: CloseFacts = { escapes: false, closedInFinally: false, closedOnBothPaths: false, closedNormally: false, closingExcepts: new Set(), refs };
  let closedInCatchAll = false;
  // A `global` name outlives the call by design, like a value stored on an object.
  if (declaresGlobal(acq.fn, acq.target)) facts.escapes = true;
  for (const ref of refs) {
    if (escapesOrManaged(ref, acq.kind, acq.owner, WITH_KEEPS_OPEN.test(acq.label))) facts.escapes = true;
    const closes = isCloseRef(ref) || (!!acq.provider && exhaustsGenerator(ref));
    // Handed to a helper in `finally` (`finally: _sync_close(f)`): a cleanup path of its own.
    const handedOver = !closes && ref.parent?.type === 'argument_list';
    if (!closes && !handedOver) continue;
    const clauses = enclosingClauses(ref, fnNode);
    if (clauses.length === 0 || (closes && closesRightAfter(ref, acq.assignment.node))) {
      if (closes) facts.closedNormally = true;
      // Closed by the very next statement (`f = open(p); f.close()`): nothing in between can fail.
      if (closes && closesRightAfter(ref, acq.assignment.node)) facts.closedInFinally = true;
      continue;
    }
    for (const clause of clauses) {
      const tryStmt = clause.parent;
      if (!tryStmt || tryStmt.type !== 'try_statement') continue;
      const coversAcquisition = tryStmt.startIndex > stmtStart || (stmtStart >= tryStmt.startIndex && stmtStart < clause.startIndex);
      if (!coversAcquisition) continue;
      if (clause.type === 'finally_clause') facts.closedInFinally = true;
      else if (!closes) continue;
      else {
        facts.closingExcepts.add(clause.id);
        if (catchesAll(clause)) closedInCatchAll = true;
      }
    }
  }
  // A close in the `except` that handles the expected failure plus one on the normal path: the
  // author covered the error path; an unexpected exception type is not worth a finding.
  facts.closedOnBothPaths = (closedInCatchAll || facts.closingExcepts.size > 0) && facts.closedNormally;
  return facts;
}

// ---------------------------------------------------------------------------------------------
// Injected sessions

export interface InjectedSession {
  name: string;
  /** The parameter node. */
  node: SyntaxNode;
  /** Through `Depends(...)` (a FastAPI dependency), or by annotation only. */
  viaDepends: boolean;
  /** `Depends(..., scope="function")`: closed when the endpoint returns (FastAPI ≥ 0.121). */
  functionScope: boolean;
  /** The provider `Depends(...)` names, qualified when it resolves (FastAPI hands one session per provider and request). */
  provider?: string;
  /** `Depends(provider, use_cache=False)`: a session of its own, not the one the request's other dependencies share. */
  uncached?: true;
}

const SESSION_ANNOTATION = /(^|\.)(Session|AsyncSession|scoped_session|async_scoped_session)$/;
const SESSION_ALIAS = /(^|\.)(Async)?(Db|DB)?Session(Dep|Dependency)$|(^|\.)(Async)?(Db|DB)Dep$/;

function isSessionAnnotation(model: FileModel, annotation: string): boolean {
  const t = annotationType(model, annotation);
  if (!t) return false;
  const q = t.slice(1);
  if (SESSION_ANNOTATION.test(q)) {
    const head = q.split('.')[0]!;
    return q === 'Session' || q === 'AsyncSession' || head === 'sqlalchemy' || head === 'sqlmodel';
  }
  if (SESSION_ALIAS.test(q)) return true;
  const alias = localAlias(model, annotation);
  return alias ? isSessionAnnotation(model, alias.text) : false;
}

/** A module-level `SessionDep = Annotated[Session, Depends(get_db)]` of this file that an annotation names. */
export function localAlias(model: FileModel, annotation: string | null): SyntaxNode | null {
  if (!annotation || !/^[A-Za-z_]\w*$/.test(annotation.trim())) return null;
  const name = annotation.trim();
  const a = assignmentsTo(model, name).find((x) => x.functionIndex < 0 && !x.fromWith);
  return a?.value && a.value.type === 'subscript' && /^(typing\.)?Annotated\b/.test(a.value.text) ? a.value : null;
}

/** Is `Depends(target)` a session dependency: a known provider, or a generator of this file yielding a session? */
function isSessionProvider(model: FileModel, project: ProjectContext, target: string): boolean {
  const q = resolveName(model, target) ?? target;
  if (projectNames(project).providers.has(q)) return true;
  return false;
}

/** `Depends(provider, ...)`, and FastAPI's `Security(provider, scopes=[...])`: a dependency with scopes. */
const DEPENDS = /\b(?:Depends|Security)\(\s*(?:dependency\s*=\s*)?([A-Za-z_][\w.]*)?([^)]*)\)/;

/** Parameters of `fn` that receive a session by injection. */
export function injectedSessions(model: FileModel, project: ProjectContext, fn: FunctionInfo): InjectedSession[] {
  const out: InjectedSession[] = [];
  const paramNodes = fn.node.childForFieldName('parameters')?.namedChildren ?? [];
  fn.params.forEach((p, i) => {
    const node = paramNodes[i];
    if (!node || p.name === 'self' || p.name === 'cls') return;
    const alias = dependencyAliasOf(model, p.annotation);
    const texts = [p.defaultText ?? '', p.annotation ?? '', localAlias(model, p.annotation)?.text ?? ''];
    let viaDepends = false;
    let functionScope = false;
    let isSession = false;
    let provider: string | undefined;
    let uncached = false;
    // An alias of another module names its provider qualified already: not to be resolved here
    // (`app.db.get_db` in a module with `app = FastAPI()` would resolve to the app object).
    if (alias) {
      viaDepends = true;
      provider = alias.provider;
      if (projectNames(project).providers.has(alias.provider)) isSession = true;
    }
    for (const text of texts) {
      const m = DEPENDS.exec(text);
      if (!m) continue;
      viaDepends = true;
      if (/\bscope\s*=\s*["']function["']/.test(m[2] ?? '')) functionScope = true;
      if (/\buse_cache\s*=\s*False\b/.test(m[2] ?? '')) uncached = true;
      if (m[1] && isSessionProvider(model, project, m[1])) {
        isSession = true;
        provider ??= resolveName(model, m[1]) ?? (m[1].includes('.') ? m[1] : `${model.moduleName}.${m[1]}`);
      }
    }
    if (!isSession && p.annotation && isSessionAnnotation(model, p.annotation)) {
      isSession = true;
      if (!viaDepends && SESSION_ALIAS.test(annotationType(model, p.annotation) ?? '')) viaDepends = true;
    }
    if (isSession) out.push({ name: p.name, node, viaDepends, functionScope, ...(provider ? { provider } : {}), ...(uncached ? { uncached: true as const } : {}) });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Streaming

const STREAMING_CLASSES = /(^|\.)(StreamingResponse|EventSourceResponse)$/;

export interface StreamingUse {
  /** The `StreamingResponse(...)` / `EventSourceResponse(...)` call. */
  call: CallInfo;
  sse: boolean;
  /** The call that makes the generator (`event_stream()`), or null. */
  generatorCall: SyntaxNode | null;
  /** The generator function, when it is defined in this file. */
  generator: FunctionInfo | null;
}

/** A library streaming response class, by qualified name. */
function isLibraryStreaming(q: string): boolean {
  return STREAMING_CLASSES.test(q) && /^(fastapi|starlette|sse_starlette)\./.test(q);
}

/**
 * Streaming response classes of this module: `class NdjsonResponse(StreamingResponse)`, and
 * subclasses of those, by qualified name → whether it is an event stream.
 */
function localStreamingClasses(model: FileModel): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (let grew = true; grew; ) {
    grew = false;
    for (const c of model.classes) {
      const name = c.childForFieldName('name')?.text;
      if (!name || out.has(`${model.moduleName}.${name}`)) continue;
      for (const b of c.childForFieldName('superclasses')?.namedChildren ?? []) {
        const q = resolveName(model, b.text) ?? `${model.moduleName}.${b.text}`;
        const sse = isLibraryStreaming(q) ? /EventSourceResponse$/.test(q) : out.get(q);
        if (sse === undefined) continue;
        out.set(`${model.moduleName}.${name}`, sse);
        grew = true;
        break;
      }
    }
  }
  return out;
}

const streamingMemo = new WeakMap<ProjectContext, Map<string, StreamingFactoryInfo>>();

/** The project's streaming response classes and the functions that return one, by qualified name. */
function projectStreaming(project: ProjectContext): Map<string, StreamingFactoryInfo> {
  let out = streamingMemo.get(project);
  if (!out) streamingMemo.set(project, (out = new Map((project.streamingFactories ?? []).map((f) => [f.name, f]))));
  return out;
}

/** What a streaming call passes as content: `content=` or the first positional argument; for a project wrapper, the positional argument of its content parameter. */
function contentArgument(args: SyntaxNode[], wrapper: StreamingFactoryInfo | null): SyntaxNode | null {
  const isWrapper = wrapper?.kind === 'function';
  const wanted = isWrapper ? wrapper.contentParam : 0;
  if (wanted === null) return null;
  let content: SyntaxNode | null = null;
  let positional = 0;
  for (const a of args) {
    if (a.type === 'keyword_argument') {
      if (!isWrapper && a.childForFieldName('name')?.text === 'content') content = a.childForFieldName('value');
    } else if (a.type !== 'list_splat' && a.type !== 'dictionary_splat') {
      if (positional === wanted && !content) content = a;
      positional++;
    }
  }
  return content;
}

/** Does a return annotation name a streaming response (`-> EventSourceResponse`, `-> StreamingResponse`, a project subclass)? Its event-stream flag, or undefined. */
function annotatedStreaming(model: FileModel, project: ProjectContext, fn: FunctionInfo, local: Map<string, boolean>): boolean | undefined {
  const t = fn.returnType?.replace(/\s+/g, '');
  if (!t || !/^[A-Za-z_][\w.]*$/.test(t)) return undefined;
  const q = resolveName(model, t) ?? `${model.moduleName}.${t}`;
  if (isLibraryStreaming(q)) return /EventSourceResponse$/.test(q);
  const l = local.get(q);
  if (l !== undefined) return l;
  const p = projectStreaming(project).get(q);
  return p?.kind === 'class' && !p.download ? p.sse : undefined;
}

/**
 * Streaming responses built in `fn` (its own body), with the generator that feeds each: a library
 * streaming response, a project subclass of one, a project function that returns one (its content
 * parameter), and for a handler annotated `-> EventSourceResponse` (or another streaming type)
 * what it returns.
 */
export function streamingResponses(model: FileModel, project: ProjectContext, fn: FunctionInfo): StreamingUse[] {
  const out: StreamingUse[] = [];
  const local = model.classes.length > 0 ? localStreamingClasses(model) : new Map<string, boolean>();
  const known = projectStreaming(project);
  for (const call of model.calls) {
    if (call.functionIndex !== fn.index) continue;
    const q = call.qualifiedName ?? boundName(model, call) ?? '';
    const localSse = local.get(q);
    const factory = localSse === undefined && !isLibraryStreaming(q) ? known.get(q) ?? null : null;
    if (factory?.download) continue;
    if (!isLibraryStreaming(q) && localSse === undefined && !factory) continue;
    const args = call.node.childForFieldName('arguments')?.namedChildren ?? [];
    let sse = localSse ?? factory?.sse ?? /EventSourceResponse$/.test(q);
    for (const a of args) {
      if (a.type === 'keyword_argument' && a.childForFieldName('name')?.text === 'media_type' && /event-stream/.test(a.childForFieldName('value')?.text ?? '')) sse = true;
    }
    out.push(streamingUse(model, fn, call, sse, contentArgument(args, factory)));
  }
  if (out.length === 0 && fn.body) {
    const sse = annotatedStreaming(model, project, fn, local);
    if (sse !== undefined) {
      for (const r of fn.body.descendantsOfType('return_statement')) {
        if (insideNestedFunction(r, fn.body)) continue;
        let v = r.namedChild(0);
        if (v?.type === 'await') v = v.namedChild(0);
        const call = v?.type === 'call' ? callAt(model, v) : null;
        if (!call) continue;
        out.push(streamingUse(model, fn, call, sse, contentArgument(call.node.childForFieldName('arguments')?.namedChildren ?? [], null)));
      }
    }
  }
  return out;
}

/** Starlette's file response (re-exported by FastAPI), by qualified name. */
const LIBRARY_FILE_RESPONSE = /^(fastapi|starlette)\.([\w.]+\.)?FileResponse$/;

/** A response body built in memory: `io.BytesIO(data)`, `StringIO(text)`, `iter([payload])`, a bytes/str literal. */
const IN_MEMORY_BODY = /^((io\.)?(BytesIO|StringIO)\(|iter\(\s*[[(]|[bfru]*["'])/i;

/** A call whose result is a file or chunk iterator: `open(path, "rb")`, `aiofiles.open`, `p.open("rb")`, `r.iter_content(...)`, `resp.aiter_bytes()`. */
const FILE_BODY_CALL = /(^|\.)(open|a?iter_(bytes|raw|content|chunks?|chunked|lines)|iter_content|stream)$/;

export interface DownloadUse {
  /** The response call (`FileResponse(path)`, `StreamingResponse(chunks())`, a project subclass or wrapper). */
  call: CallInfo;
  /** The class (or wrapper) it names, as written. */
  cls: string;
  /** For a streamed body: the generator feeding it, when defined in this file. */
  generator: FunctionInfo | null;
  /** For a streamed body: the call that makes it (`chunks()`), or null. */
  generatorCall: SyntaxNode | null;
}

/**
 * Responses built in `fn` whose body is sent after the handler returns, for as long as the file
 * and the client's bandwidth make it: Starlette's `FileResponse` (a project subclass or a project
 * function returning one), and a `StreamingResponse` that is not an event stream or long poll —
 * over a file (`open(path, "rb")`, a chunked reader such as `resp.aiter_bytes()`) or a generator
 * of this file that loops over its data. Not a streamed body built in memory (`BytesIO(data)`,
 * `iter([csv_text])`, a value of unknown kind from another module), nor a generator that yields
 * a fixed number of times (`isBoundedGenerator`): its size is what the handler already holds.
 */
export function downloadResponses(model: FileModel, project: ProjectContext, fn: FunctionInfo): DownloadUse[] {
  const out: DownloadUse[] = [];
  const known = projectStreaming(project);
  const localFiles = model.classes.length > 0 ? localFileResponseClasses(model) : new Set<string>();
  for (const call of model.calls) {
    if (call.functionIndex !== fn.index) continue;
    const q = call.qualifiedName ?? boundName(model, call) ?? '';
    if (LIBRARY_FILE_RESPONSE.test(q) || localFiles.has(q) || known.get(q)?.download) {
      out.push({ call, cls: call.calleeText, generator: null, generatorCall: null });
    }
  }
  // A route declared with `response_class=FileResponse` (a project subclass): FastAPI wraps what
  // the handler returns, a path, in that class.
  if (!out.length && fn.node.parent?.type === 'decorated_definition') {
    for (const d of fn.node.parent.namedChildren) {
      const deco = d.type === 'decorator' ? d.namedChild(0) : null;
      if (deco?.type !== 'call') continue;
      const kw = deco.childForFieldName('arguments')?.namedChildren.find((a) => a.type === 'keyword_argument' && a.childForFieldName('name')?.text === 'response_class');
      const cls = kw?.childForFieldName('value');
      if (!cls || !/^[A-Za-z_][\w.]*$/.test(cls.text)) continue;
      const q = resolveImported(model, cls.text) ?? `${model.moduleName}.${cls.text}`;
      const call = callAt(model, deco);
      if (call && (LIBRARY_FILE_RESPONSE.test(q) || localFiles.has(q) || known.get(q)?.download)) out.push({ call, cls: cls.text, generator: null, generatorCall: null });
    }
  }
  // Annotated to return a file response (`-> FileResponse`, a project subclass): what it returns
  // is one, wherever it was built (`response = await files.fetch_download(...)`; `return response`).
  if (!out.length && fn.returnType && fn.body) {
    const written = fn.returnType.replace(/\s+/g, '');
    const annotated = resolveImported(model, written) ?? `${model.moduleName}.${written}`;
    if (LIBRARY_FILE_RESPONSE.test(annotated) || localFiles.has(annotated) || known.get(annotated)?.download) {
      for (const r of fn.body.descendantsOfType('return_statement')) {
        if (insideNestedFunction(r, fn.body)) continue;
        let value: SyntaxNode | null = r.namedChild(0);
        if (value?.type === 'identifier') {
          const name = value.text;
          value = [...model.assignments].reverse().find((a) => a.functionIndex === fn.index && a.target === name && a.node.startIndex < r.startIndex)?.value ?? null;
        }
        if (value?.type === 'await') value = value.namedChild(0);
        const call = value?.type === 'call' ? callAt(model, value) : undefined;
        if (call && !out.some((o) => o.call === call)) out.push({ call, cls: fn.returnType.trim(), generator: null, generatorCall: null });
      }
    }
  }
  for (const use of streamingResponses(model, project, fn)) {
    if (use.sse || (use.generator && (isLongLivedGenerator(model, use.generator) || isBoundedGenerator(model, use.generator)))) continue;
    const args = use.call.node.childForFieldName('arguments')?.namedChildren ?? [];
    const factory = known.get(use.call.qualifiedName ?? '') ?? null;
    let content = contentArgument(args, factory?.kind === 'function' ? factory : null);
    if (!content) continue;
    if (content.type === 'identifier') {
      const name = content.text;
      const a = [...model.assignments].reverse().find((x) => x.functionIndex === fn.index && x.target === name && x.line <= use.call.line);
      if (a?.value) content = a.value;
    }
    if (IN_MEMORY_BODY.test(content.text) || content.type === 'string' || content.type === 'list') continue;
    // A generator of this file that loops over its data, a file opened for the body, or a chunked
    // reader (`resp.aiter_bytes()`, `blob.iter_chunks()`); not a value of unknown size from elsewhere
    // (`render_pdf(...)` most often hands back a buffer already in memory).
    if (!use.generator && !(content.type === 'call' && FILE_BODY_CALL.test(content.childForFieldName('function')?.text ?? ''))) continue;
    out.push({ call: use.call, cls: use.call.calleeText, generator: use.generator, generatorCall: use.generatorCall });
  }
  return out;
}

/** `class AttachmentResponse(FileResponse)` of this module, and subclasses of those, by qualified name. */
function localFileResponseClasses(model: FileModel): Set<string> {
  const out = new Set<string>();
  for (let grew = true; grew; ) {
    grew = false;
    for (const c of model.classes) {
      const name = c.childForFieldName('name')?.text;
      if (!name || out.has(`${model.moduleName}.${name}`)) continue;
      const bases = c.childForFieldName('superclasses')?.namedChildren ?? [];
      if (!bases.some((b) => { const q = resolveName(model, b.text) ?? `${model.moduleName}.${b.text}`; return LIBRARY_FILE_RESPONSE.test(q) || out.has(q); })) continue;
      out.add(`${model.moduleName}.${name}`);
      grew = true;
    }
  }
  return out;
}

function streamingUse(model: FileModel, fn: FunctionInfo, call: CallInfo, sse: boolean, content: SyntaxNode | null): StreamingUse {
  let generatorCall: SyntaxNode | null = null;
  if (content?.type === 'call') generatorCall = content;
  else if (content?.type === 'identifier') {
    // `gen = event_stream(); return StreamingResponse(gen)`.
    const a = [...model.assignments].reverse().find((x) => x.functionIndex === fn.index && x.target === content.text && x.line <= call.line);
    if (a?.value?.type === 'call') generatorCall = a.value;
  }
  return { call, sse, generatorCall, generator: generatorCall ? generatorFunction(model, fn, generatorCall) : null };
}

/** The function a generator call names: a def nested in `fn`, or one at module level in this file. */
export function generatorFunction(model: FileModel, fn: FunctionInfo, call: SyntaxNode): FunctionInfo | null {
  const callee = call.childForFieldName('function');
  if (callee?.type !== 'identifier') return null;
  const name = callee.text;
  const nested = model.functions.find((f) => f.parent === fn.index && f.name === name);
  if (nested) return nested;
  return model.functions.find((f) => f.parent < 0 && !f.className && f.name === name) ?? null;
}

/** A websocket endpoint. */
export function isWebsocketHandler(fn: FunctionInfo): boolean {
  return fn.role === 'handler' && (fn.routeKind === 'websocket' || fn.routeKind === 'websocket_route');
}

/** Does the function's own body contain a loop (`while`, `for`, `async for`)? */
export function hasOwnLoop(model: FileModel, fn: FunctionInfo): boolean {
  return model.loops.some((l) => l.functionIndex === fn.index && l.kind !== 'comprehension');
}

const WAIT_CALLS = /(^|\.)(sleep|wait_for|wait|is_disconnected|receive|receive_text|receive_json|receive_bytes|iter_text|iter_json|listen|get_message)$/;

/**
 * Does a generator run for long (a long-poll / event stream): a `while` loop, or a loop that
 * waits (`asyncio.sleep`, `queue.get()`, `wait_for`, `request.is_disconnected()`)? A `for row in
 * result: yield row` export is not: its length is the data's, not the client's.
 */
export function isLongLivedGenerator(model: FileModel, gen: FunctionInfo): boolean {
  const loops = model.loops.filter((l) => l.functionIndex === gen.index && l.kind !== 'comprehension');
  if (loops.some((l) => l.kind === 'while' && !readsToEnd(l))) return true;
  return callsOf(model, gen.index).some((call) => call.functionIndex === gen.index && call.loops.length > 0 && waitsForData(call));
}

/** A call that waits for new data: a sleep, a wait, a disconnect check, a receive, a queue's `get`. */
function waitsForData(call: CallInfo): boolean {
  return WAIT_CALLS.test(call.calleeText) || (call.method === 'get' && /queue/i.test(call.receiver?.text ?? ''));
}

/**
 * Is this loop of the generator one that runs for as long as the client listens: a `while` loop
 * that is no read to the end of a body, or a loop that waits for new data (`isLongLivedGenerator`'s
 * tests, for one loop)? A `for` over rows already fetched (a replay of missed events) is not.
 */
export function isLongLivedLoop(model: FileModel, gen: FunctionInfo, loopNode: SyntaxNode): boolean {
  const loop = model.loops.find((l) => l.node.id === loopNode.id);
  if (loop?.kind === 'while' && !readsToEnd(loop)) return true;
  return callsOf(model, gen.index).some((call) => call.functionIndex === gen.index && call.node.startIndex >= loopNode.startIndex && call.node.endIndex <= loopNode.endIndex && waitsForData(call));
}

/**
 * `_stream(request, session, ...)`: the last use of a session hands it to a function of this file
 * that closes (or rolls back) that parameter in a statement of its own body's top level, before it
 * returns (`await session.close()` right after the work, then build the response): the caller's
 * session holds no connection after the call.
 */
export function handedToReleaser(model: FileModel, ref: SyntaxNode): boolean {
  const call = handOffCall(ref);
  if (!call) return false;
  const kw = ref.parent?.type === 'keyword_argument' ? ref.parent : null;
  const list = call.childForFieldName('arguments')!;
  const callee = call.childForFieldName('function');
  let name: string | null = null;
  if (callee?.type === 'identifier') name = callee.text;
  else if (callee?.type === 'attribute' && /^(self|cls)$/.test(callee.childForFieldName('object')?.text ?? '')) name = callee.childForFieldName('attribute')?.text ?? null;
  if (!name) return false;
  const targets = model.functions.filter((f) => f.name === name && f.parent < 0);
  if (targets.length !== 1) return false;
  const target = targets[0]!;
  let param: string | undefined;
  if (kw) param = kw.childForFieldName('name')?.text;
  else {
    const position = list.namedChildren.filter((a) => a.type !== 'comment' && a.startIndex < ref.startIndex).length;
    if (list.namedChildren.some((a) => a.startIndex < ref.startIndex && (a.type === 'keyword_argument' || a.type === 'list_splat' || a.type === 'dictionary_splat'))) return false;
    const params = target.params.filter((p, i) => !(i === 0 && target.className && /^(self|cls)$/.test(p.name)));
    param = params[position]?.name;
  }
  if (!param || !target.body) return false;
  const releases = new RegExp(`^(await\\s+)?${param}\\.(close|rollback)\\(\\s*\\)$`);
  return target.body.namedChildren.some((st) => st.type === 'expression_statement' && releases.test(st.text.trim()));
}

/**
 * Does a generator end on its own after a fixed number of steps: every `yield` of it outside any
 * loop (a progress stream of five steps, then the result), no `yield from`, and nothing that waits
 * for new data (`isLongLivedGenerator`)? Such a stream lasts as long as its work, seconds, not as
 * long as the client stays connected.
 */
export function isBoundedGenerator(model: FileModel, gen: FunctionInfo): boolean {
  if (!gen.yields.length || isLongLivedGenerator(model, gen)) return false;
  const loops = model.loops.filter((l) => l.functionIndex === gen.index && l.kind !== 'comprehension');
  return gen.yields.every((y) => !/^yield\s+from\b/.test(y.parent?.text ?? '')
    && !loops.some((l) => y.startIndex >= l.node.startIndex && y.endIndex <= l.node.endIndex));
}

/** A read of the next chunk or batch: `f.read(8192)`, `await resp.content.read(n)`, `cur.fetchmany(500)`. */
const CHUNK_READ = /\.(read|read1|readline|readinto|fetchmany|fetch_many|iter_chunk)\s*\(/;

/**
 * A `while` loop that reads a file, a body or a cursor chunk by chunk and stops at the end
 * (`while chunk := f.read(n):`, or `chunk = f.read(n)` then `if not chunk: break`): its length
 * is the data's, like a `for` over rows, not the client's.
 */
function readsToEnd(loop: { node: SyntaxNode }): boolean {
  const cond = loop.node.childForFieldName('condition');
  if (cond && cond.type === 'named_expression' && CHUNK_READ.test(cond.text)) return true;
  const body = loop.node.childForFieldName('body');
  if (!body) return false;
  for (const stmt of body.namedChildren) {
    const a = stmt.type === 'expression_statement' ? stmt.namedChild(0) : null;
    if (a?.type !== 'assignment' || !CHUNK_READ.test(a.childForFieldName('right')?.text ?? '')) continue;
    const name = a.childForFieldName('left')?.text ?? '';
    if (!/^[A-Za-z_]\w*$/.test(name)) continue;
    const stop = new RegExp(`^if\\s+(not\\s+${name}|${name}\\s*(==|is)\\s*(b?["']{2}|None|\\[\\]))\\s*:\\s*(break|return)\\b`);
    if (body.namedChildren.some((s) => s.type === 'if_statement' && stop.test(s.text.replace(/\s+/g, ' ')))) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// External calls

/** A network call (not file I/O): an HTTP/gRPC/SMTP/S3/broker client call, as the shared classifier sees it. */
export function isExternalCall(model: FileModel, call: CallInfo): boolean {
  return externalCall(model, call)?.kind === 'network' && !spawnedTask(call.node);
}

/** The first statement's line of a function body, skipping a docstring. */
export function bodyStartLine(fn: FunctionInfo): number {
  const body = fn.body;
  if (!body) return fn.startLine;
  for (const stmt of body.namedChildren) {
    if (stmt.type === 'comment') continue;
    if (stmt.type === 'expression_statement' && stmt.namedChild(0)?.type === 'string') continue;
    return stmt.startPosition.row + 1;
  }
  return body.startPosition.row + 1;
}

// ---------------------------------------------------------------------------------------------
// Error paths

/** Does `node` (inside a clause) close `name`? */
/**
 * A pool's connection given back only on the normal path: `conn = await pool.acquire()` … an awaited
 * call … `await pool.release(conn)`, with no `try/finally` around either. An exception or a
 * cancellation in between skips the release, and asyncpg-style pools do not take the connection
 * back when the proxy is collected. The release call, or null.
 */
export function poolReleaseOnNormalPathOnly(acq: Acquisition, facts: CloseFacts): SyntaxNode | null {
  const sync = /\.getconn\(\)$/.test(acq.label);
  if ((!sync && !/\.acquire\(\)$/.test(acq.label)) || !facts.closedNormally || facts.closedInFinally) return null;
  const stop = acq.fn.node;
  if (protectedByTry(acq.call.node, acq.target, stop)) return null;
  const start = acq.assignment.node.endIndex;
  const body = acq.fn.body ?? stop;
  const releases = body.descendantsOfType('call').filter((c) => c.startIndex > start && closesIn(c, acq.target));
  // Given back in a catch-all handler too (`except Exception: pool.putconn(conn); raise`): the
  // error path is covered as a `finally` would.
  if (releases.some((r) => { const h = handlerOf(r, stop); return !!h && catchesAll(h); })) return null;
  const release = releases.find((r) => !handlerOf(r, stop));
  if (!release || protectedByTry(release, acq.target, stop)) return null;
  // Something in between that can fail or be cancelled: an await (asyncpg), a call (psycopg2's
  // sync pool; not one that only looks at a value, `print`, a log line).
  const between = sync
    ? body.descendantsOfType('call').some((c) => c.startIndex > start && c.endIndex < release.startIndex && !LOOKS_ONLY.test(c.childForFieldName('function')?.text.replace(/\s+/g, '') ?? ''))
    : body.descendantsOfType('await').some((a) => a.startIndex > start && a.endIndex < release.startIndex && !a.text.includes('.release('));
  return between ? release : null;
}

/** The `except` clause (inside `stop`) whose body holds `node`, or undefined. */
function handlerOf(node: SyntaxNode, stop: SyntaxNode): SyntaxNode | undefined {
  return enclosingClauses(node, stop).find((c) => c.type === 'except_clause' || c.type === 'except_group_clause');
}

export function closesIn(node: SyntaxNode, name: string): boolean {
  return variableRefs(node, name).some(isCloseRef);
}

/** Calls that only look at a value: logging, printing, formatting. */
const LOOKS_ONLY = /(^|\.)(print|repr|str|id|len|type|isinstance|format|debug|info|warning|warn|error|exception|critical|log)$/;

/** `release(db)` in a `finally`: the value handed to a function that is not one that only looks at it (`log.debug("%r", db)`). */
function handedToRelease(ref: SyntaxNode): boolean {
  if (ref.parent?.type !== 'argument_list') return false;
  const call = ref.parent.parent;
  const callee = call?.type === 'call' ? call.childForFieldName('function')?.text.replace(/\s+/g, '') ?? '' : '';
  return !!callee && !LOOKS_ONLY.test(callee);
}

/**
 * Is `inner` protected by a `try` (inside `stop`) whose `finally` closes `name`, or whose
 * catch-all `except` does? `inner` must sit in the `try` body, not in its handlers.
 */
export function protectedByTry(inner: SyntaxNode, name: string, stop: SyntaxNode): boolean {
  for (let p: SyntaxNode | null = inner.parent, child: SyntaxNode = inner; p && p.id !== stop.id; child = p, p = p.parent) {
    if (p.type === 'function_definition' || p.type === 'lambda') return false;
    if (p.type !== 'try_statement' || child.type !== 'block') continue;
    for (const clause of p.namedChildren) {
      // A `finally` that hands it to a function (`finally: release(db)`) runs on every exit: what
      // the function does with it is that function's (its own cleanup is judged there).
      if (clause.type === 'finally_clause' && (closesIn(clause, name) || variableRefs(clause, name).some((r) => handedToRelease(r)))) return true;
      if ((clause.type === 'except_clause' || clause.type === 'except_group_clause') && catchesAll(clause) && closesIn(clause, name)) return true;
    }
  }
  return false;
}

/** `return` / `raise` statements of a clause's own body (not of nested functions). */
export function exitsOf(clause: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (const n of clause.descendantsOfType(['return_statement', 'raise_statement'])) {
    if (!insideNestedFunction(n, clause)) out.push(n);
  }
  return out;
}



// ---------------------------------------------------------------------------------------------
// Sessions in long-lived code

/** Is a use of the session the end of its transaction (`commit`, `rollback`, `close`, a `commit_or_rollback(s)` helper)? */
export function endsTransaction(ref: SyntaxNode): boolean {
  const p = ref.parent;
  if (p?.type === 'attribute' && p.childForFieldName('object')?.id === ref.id) {
    return /^(commit|rollback|close|aclose)$/.test(p.childForFieldName('attribute')?.text ?? '');
  }
  if (p?.type === 'argument_list') {
    const callee = p.parent?.childForFieldName('function')?.text ?? '';
    // `close_session(db)`, `safe_close(db)`, `commit_or_rollback(db)`; not `find_close_matches(db)`.
    return /^(safe_|_)?(commit|rollback|close)(_\w+)?$/i.test(callee.slice(callee.lastIndexOf('.') + 1));
  }
  return false;
}

/**
 * Does a looping WebSocket endpoint hold its injected session `name` while connected? Not when
 * it never uses it (a session unused takes no connection). The connection's loop is the one that
 * receives from the socket (`receive_text()`, `async for m in websocket.iter_json()`), else the
 * function's first loop. When that loop uses the session: not when every use there sits in a
 * `with name.begin():` block (which ends its transaction with the block), or each round ends
 * by giving the connection back on every path (`rollback()`, `close()`, a `commit()` that
 * releases it, see {@link releasesConnection}: as the round's last use of it, in every arm of an
 * `if`/`else`, in a `finally`, or in the `try` body and each of its handlers) — and a use before
 * the loop is released before it too (else the connection waits for the first message). When
 * only code before the loop uses it: not when its last use there gives it back on every path.
 * A release in an `except`/`finally` after the loop comes after the connection's life.
 */
export function websocketHoldsSession(model: FileModel, project: ProjectContext, fn: FunctionInfo, name: string): boolean {
  const refs = ownRefs(fn, name);
  if (!refs.length) return false;
  const loops = model.loops.filter((l) => l.functionIndex === fn.index && l.kind !== 'comprehension').map((l) => l.node);
  const loop = loops.find((l) => RECEIVES.test(l.text)) ?? loops[0];
  const releases = (r: SyntaxNode) => releasesConnection(project, r) && endsTransaction(r);
  const beforeReleased = (before: SyntaxNode[]) => {
    const last = before[before.length - 1];
    return !last || insideBeginBlock(last) || (releases(last) && !conditionalWithin(last, fn.body ?? fn.node));
  };
  if (!loop) {
    const last = refs[refs.length - 1]!;
    return !releases(last) && !insideBeginBlock(last);
  }
  const inLoop = refs.filter((r) => r.startIndex >= loop.startIndex && r.endIndex <= loop.endIndex);
  const before = refs.filter((r) => r.endIndex <= loop.startIndex);
  if (!inLoop.length) return !beforeReleased(before);
  if (!beforeReleased(before)) return true;
  if (inLoop.every((r) => insideBeginBlock(r))) return false;
  const body = loop.childForFieldName('body');
  return !body || !blockReleases(body, name, releases);
}

/** Calls that wait on the socket's next message: the loop that runs them is the connection's. */
const RECEIVES = /\.(receive|receive_text|receive_json|receive_bytes|iter_text|iter_json|iter_bytes|receive_str)\s*\(|\basync\s+for\s+\w+\s+in\s+\w*(ws|socket)\w*\s*:/i;

/**
 * Does every path through the block end with the session's connection given back: its last
 * statement that uses the session releases it (a release call; an `if` whose every arm, `else`
 * included, releases; a `try` whose `finally` releases, or whose body and every handler do; a
 * `with name.begin():` block)?
 */
function blockReleases(block: SyntaxNode, name: string, releases: (r: SyntaxNode) => boolean): boolean {
  const uses = (n: SyntaxNode) => variableRefs(n, name).length > 0;
  const statements = block.namedChildren.filter((c) => c.type !== 'comment');
  for (let i = statements.length - 1; i >= 0; i--) {
    const st = statements[i]!;
    if (!uses(st)) continue;
    return statementReleases(st, name, releases);
  }
  return false;
}

function statementReleases(st: SyntaxNode, name: string, releases: (r: SyntaxNode) => boolean): boolean {
  const refs = variableRefs(st, name);
  switch (st.type) {
    case 'expression_statement':
      return refs.length > 0 && releases(refs[refs.length - 1]!);
    case 'if_statement': {
      const arms = [st.childForFieldName('consequence'), ...st.namedChildren.filter((c) => c.type === 'elif_clause').map((c) => c.childForFieldName('consequence'))];
      const other = st.namedChildren.find((c) => c.type === 'else_clause');
      if (!other) return false;
      arms.push(other.childForFieldName('body') ?? other.namedChildren.find((c) => c.type === 'block') ?? null);
      return arms.every((b) => !!b && blockReleases(b, name, releases));
    }
    case 'try_statement': {
      const fin = st.namedChildren.find((c) => c.type === 'finally_clause');
      const finBlock = fin?.namedChildren.find((c) => c.type === 'block');
      if (finBlock && blockReleases(finBlock, name, releases)) return true;
      const body = st.childForFieldName('body');
      const handlers = st.namedChildren.filter((c) => c.type === 'except_clause' || c.type === 'except_group_clause');
      return !!body && blockReleases(body, name, releases)
        && handlers.every((h) => {
          const b = h.namedChildren.find((c) => c.type === 'block');
          return !!b && (blockReleases(b, name, releases) || leaves(b));
        });
    }
    case 'with_statement':
      return refs.every((r) => insideBeginBlock(r));
    default:
      return false;
  }
}

/** Does the block end by leaving the loop or the function (`raise`, `return`, `break`)? */
function leaves(block: SyntaxNode): boolean {
  const last = block.namedChildren.filter((c) => c.type !== 'comment').pop();
  return !!last && /^(raise_statement|return_statement|break_statement)$/.test(last.type);
}

/** Does the generator use the session: a closure reference in its body, or the session handed to the generator call? */
export function generatorUsesSession(use: StreamingUse, name: string): boolean {
  const args = use.generatorCall?.childForFieldName('arguments');
  if (args && variableRefs(args, name).length > 0) return true;
  const gen = use.generator;
  if (!gen?.body || gen.parent < 0) return false;
  if (gen.params.some((p) => p.name === name)) return false;
  return variableRefs(gen.body, name).length > 0;
}

/** References to `name` in the function's own body, outside the given nested functions. */
export function ownRefs(fn: FunctionInfo, name: string, exclude: FunctionInfo[] = []): SyntaxNode[] {
  return sessionRefs(fn, name).filter((r) => !exclude.some((g) => r.startIndex >= g.node.startIndex && r.startIndex < g.node.endIndex));
}

/**
 * `session` itself, `Repo(session)`, `Repository.from_session(session)`: a value that keeps the
 * session. A query result (`user = await get_user(session, id)`, `crud.get(db, id)`) does not.
 */
function isWrapperOf(value: SyntaxNode, names: Set<string>): boolean {
  if (value.type === 'identifier') return names.has(value.text);
  if (value.type !== 'call') return false;
  const callee = value.childForFieldName('function')?.text.replace(/\s+/g, '') ?? '';
  const last = callee.slice(callee.lastIndexOf('.') + 1);
  if (!/^[A-Z]/.test(last) && !/^(from|for|with)_(session|db|connection)$/.test(last)) return false;
  const args = value.childForFieldName('arguments');
  return !!args && [...names].some((n) => variableRefs(args, n).length > 0);
}

/**
 * References to a session and to the names that wrap it (`repo = Repo(session)`,
 * `repository = Repository.from_session(session)`), in source order: using the wrapper is using
 * the session.
 */
export function sessionRefs(fn: FunctionInfo, name: string): SyntaxNode[] {
  if (!fn.body) return [];
  const names = new Set([name]);
  for (const a of fn.body.descendantsOfType('assignment')) {
    const left = a.childForFieldName('left');
    const right = a.childForFieldName('right');
    if (!left || !right || left.type !== 'identifier') continue;
    if (!isWrapperOf(right, names)) continue;
    names.add(left.text);
  }
  const refs: SyntaxNode[] = [];
  for (const n of names) refs.push(...variableRefs(fn.body, n));
  return refs.sort((x, y) => x.startIndex - y.startIndex);
}

// ---------------------------------------------------------------------------------------------
// Providers used outside their protocol

export interface ProviderMisuse {
  /** Where to report: the `next(...)` call, or the provider call used as a session. */
  node: SyntaxNode;
  fn: FunctionInfo;
  provider: SessionProviderInfo;
  /** `next`: `next(get_db())` drops the generator; `no-with`: a context-manager provider used without `with`. */
  kind: 'next' | 'no-with';
  /** The provider call as written: `get_db()`. */
  label: string;
}

const NEXT_BUILTINS = new Set(['next', 'anext']);
/** Uses of a context-manager object that are its protocol (or hand it to one). */
const CM_PROTOCOL = new Set(['__enter__', '__aenter__', '__exit__', '__aexit__']);

/**
 * A session provider called outside its protocol: `next(get_db())` / `anext(...)` /
 * `get_db().__anext__()` take the session and drop the generator, so the provider's cleanup is
 * left to the garbage collector; a `@contextmanager` provider called without `with`
 * (`s = get_session(); s.execute(...)`, `await get_session()`) yields no session at all. The
 * protocol is silent: `with provider() as s`, `stack.enter_context(provider())`, a generator
 * kept and closed (`gen = get_db(); s = next(gen) … finally: gen.close()`, an acquisition of its
 * own), or the provider call returned to a caller.
 */
export function providerMisuses(model: FileModel, project: ProjectContext): ProviderMisuse[] {
  if (model.isTestFile || project.sessionProviders.length === 0 || !mayAcquire(model, project)) return [];
  const out: ProviderMisuse[] = [];
  for (const call of model.calls) {
    if (call.functionIndex < 0 || call.isWithItem) continue;
    const provider = sessionProviderOf(model, project, call);
    if (!provider) continue;
    const fn = model.functions[call.functionIndex]!;
    const label = `${call.calleeText}()`;
    let up: SyntaxNode = call.node;
    while (up.parent?.type === 'parenthesized_expression') up = up.parent;
    const parent = up.parent;
    if (!provider.contextManager) {
      // `next(get_db())`, `await anext(get_db())`, `await get_db().__anext__()`.
      const outer = parent?.type === 'argument_list' ? parent.parent : parent?.type === 'attribute' ? parent.parent : null;
      if (outer?.type !== 'call') continue;
      const callee = outer.childForFieldName('function');
      const viaBuiltin = parent!.type === 'argument_list' && callee?.type === 'identifier' && NEXT_BUILTINS.has(callee.text) && parent!.namedChildren[0]?.id === up.id;
      const viaDunder = parent!.type === 'attribute' && callee?.id === parent!.id && /^__a?next__$/.test(parent!.childForFieldName('attribute')?.text ?? '');
      if (!viaBuiltin && !viaDunder) continue;
      // `Session(next(get_db()).bind)`: only the engine is read; a session checks out no
      // connection until it runs something, so nothing is held.
      const use = outer.parent;
      if (use?.type === 'attribute' && use.childForFieldName('object')?.id === outer.id && /^(bind|get_bind)$/.test(use.childForFieldName('attribute')?.text ?? '')) continue;
      // `s = next(get_db()) … s.close()`: the caller closes the session itself.
      if (use?.type === 'assignment' && use.childForFieldName('left')?.type === 'identifier' && closedLater(fn, use.childForFieldName('left')!.text, use.endIndex)) continue;
      out.push({ node: outer, fn, provider, kind: 'next', label });
      continue;
    }
    if (cmUsedAsSession(model, fn, up)) out.push({ node: call.node, fn, provider, kind: 'no-with', label });
  }
  return out;
}

/** Does the function call `name.close()` after `from` (on some path)? */
function closedLater(fn: FunctionInfo, name: string, from: number): boolean {
  const body = fn.body;
  if (!body) return false;
  for (const ref of variableRefs(body, name)) {
    if (ref.startIndex < from) continue;
    const p = ref.parent;
    if (p?.type === 'attribute' && p.childForFieldName('object')?.id === ref.id && p.childForFieldName('attribute')?.text === 'close' && p.parent?.type === 'call') return true;
  }
  return false;
}

/** Is the context-manager object made by `call` used as if it were the session? */
function cmUsedAsSession(model: FileModel, fn: FunctionInfo, call: SyntaxNode): boolean {
  const parent = call.parent;
  if (!parent) return false;
  // `await get_session()`, `get_session().execute(...)`.
  if (parent.type === 'await') return true;
  if (parent.type === 'attribute' && parent.childForFieldName('object')?.id === call.id) {
    return !CM_PROTOCOL.has(parent.childForFieldName('attribute')?.text ?? '');
  }
  if (parent.type !== 'assignment' || parent.childForFieldName('left')?.type !== 'identifier') return false;
  const name = parent.childForFieldName('left')!.text;
  const body = fn.body;
  if (!body) return false;
  let usedAsSession = false;
  for (const ref of variableRefs(body, name)) {
    if (ref.startIndex < parent.endIndex) continue;
    if (ancestorOf(ref, ['with_item'], body) || ref.parent?.type === 'return_statement') return false;
    const p = ref.parent;
    if (p?.type === 'argument_list') {
      const callee = p.parent?.childForFieldName('function');
      const method = (callee?.type === 'attribute' ? callee.childForFieldName('attribute')?.text : callee?.text) ?? '';
      if (OWNERSHIP_METHODS.has(method)) return false;
      continue;
    }
    if (p?.type === 'attribute' && p.childForFieldName('object')?.id === ref.id) {
      if (CM_PROTOCOL.has(p.childForFieldName('attribute')?.text ?? '')) return false;
      usedAsSession = true;
    }
  }
  return usedAsSession;
}

/**
 * `db: Session = Depends(get_session)` where `get_session` is a `@contextmanager` provider:
 * FastAPI runs a dependency as a generator only when the function itself is one; the decorated
 * function is a plain callable, so the handler receives the context manager, not a session.
 */
export function contextManagerDependencies(model: FileModel, project: ProjectContext): { node: SyntaxNode; fn: FunctionInfo; provider: SessionProviderInfo; param: string }[] {
  if (model.isTestFile || project.sessionProviders.every((p) => !p.contextManager) || !model.source.includes('Depends')) return [];
  const out: { node: SyntaxNode; fn: FunctionInfo; provider: SessionProviderInfo; param: string }[] = [];
  for (const fn of model.functions) {
    const paramNodes = fn.node.childForFieldName('parameters')?.namedChildren ?? [];
    fn.params.forEach((p, i) => {
      const node = paramNodes[i];
      if (!node) return;
      for (const text of [p.defaultText ?? '', p.annotation ?? '', localAlias(model, p.annotation)?.text ?? '']) {
        const target = DEPENDS.exec(text)?.[1];
        const q = target ? resolveName(model, target) ?? (/^[A-Za-z_]\w*$/.test(target) ? `${model.moduleName}.${target}` : target) : null;
        const provider = q ? projectNames(project).providerInfo.get(q) : undefined;
        if (provider?.contextManager) {
          out.push({ node, fn, provider, param: p.name });
          return;
        }
      }
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// A `finally` that can fail before its `close()`

/** Session/connection methods that talk to the database and can raise (`commit`, `flush`, `execute`, …). */
const RAISING_BEFORE_CLOSE = /^(commit|flush|execute|exec|scalar|scalars|refresh|merge|bulk_save_objects|bulk_insert_mappings|bulk_update_mappings)$/;

/**
 * `finally: s.commit(); s.close()`: a statement of the same `finally` block, before the one that
 * closes `acq.target`, that calls the database through it outside a `try` of its own. When it
 * raises, the `close()` after it never runs. A nested `try: s.commit() finally: s.close()` is
 * silent: there the close is in a `finally` of its own.
 */
export function raisesBeforeClose(acq: Acquisition): SyntaxNode | null {
  const body = acq.fn.body;
  if (!body || (acq.kind !== 'session' && acq.kind !== 'connection') || acq.provider) return null;
  for (const clause of body.descendantsOfType('finally_clause')) {
    if (insideNestedFunction(clause, body)) continue;
    for (const ref of variableRefs(clause, acq.target)) {
      if (!isCloseRef(ref)) continue;
      // The statement of the close, and the block it is a statement of, with no `try` in between up to the clause.
      let stmt: SyntaxNode = ref;
      while (stmt.parent && stmt.parent.type !== 'block') stmt = stmt.parent;
      const block = stmt.parent;
      if (!block || crossesTry(block, clause)) continue;
      for (const before of block.namedChildren) {
        if (before.startIndex >= stmt.startIndex) break;
        if (before.type === 'try_statement') continue;
        const failing = variableRefs(before, acq.target).find((r) => {
          const attr = r.parent;
          return attr?.type === 'attribute' && attr.childForFieldName('object')?.id === r.id && attr.parent?.type === 'call'
            && RAISING_BEFORE_CLOSE.test(attr.childForFieldName('attribute')?.text ?? '') && !ancestorOf(r, ['try_statement'], before);
        });
        if (failing) return before;
      }
    }
  }
  return null;
}

/** Is there a `try` statement between `node` and the clause that holds it? */
function crossesTry(node: SyntaxNode, clause: SyntaxNode): boolean {
  for (let p: SyntaxNode | null = node.parent; p && p.id !== clause.id; p = p.parent) if (p.type === 'try_statement') return true;
  return false;
}

// ---------------------------------------------------------------------------------------------
// Stored without an owner who closes

export interface StoredAcquisition {
  /** Where it is stored: `self.session`, `request.state.db`, `g.conn`. */
  target: string;
  acquire: AcquireKind;
  call: CallInfo;
  fn: FunctionInfo;
}

/** Per-request storage (`request.state.x`, Flask's `g.x`) and an object's own attributes. */
const STORE_TARGET = /^(self\.\w+|\w+\.state\.\w+|g\.\w+)$/;

/**
 * Sessions and connections stored on an object or on per-request state with nothing that closes
 * them: `self.session = SessionLocal()` in a class none of whose methods closes
 * `self.session`, `request.state.db = SessionLocal()` that no code of the module closes (after
 * `call_next`, in a teardown). A store is a hand-off only when its owner closes it. Silent: a
 * class whose `close`/`__exit__`/`__aexit__`/`__del__` touches the attribute, a class with a base
 * this module does not define (the base may close it), a class instantiated at module level (a
 * process-lifetime singleton).
 */
export function unownedStores(model: FileModel, project: ProjectContext): StoredAcquisition[] {
  if (model.isTestFile || !mayAcquire(model, project) || isMigrationFile(project, model.path)) return [];
  const out: StoredAcquisition[] = [];
  const consider = (target: string, call: CallInfo, acquire: AcquireKind) => {
    if (acquire.kind !== 'session' && acquire.kind !== 'connection') return;
    if (acquire.provider || !STORE_TARGET.test(target)) return;
    const fn = model.functions[call.functionIndex];
    if (!fn || ownerCloses(model, fn, target)) return;
    out.push({ target, acquire, call, fn });
  };
  for (const a of model.assignments) {
    if (a.fromWith || a.functionIndex < 0 || !STORE_TARGET.test(a.target)) continue;
    let v = a.value;
    if (v?.type === 'await') v = v.namedChild(0);
    const call = v?.type === 'call' ? callAt(model, v) : undefined;
    const kind = call ? acquireKind(model, project, call) : null;
    if (call && kind) consider(a.target, call, kind);
  }
  // `db = SessionLocal(); self.db = db`.
  for (const acq of acquisitions(model, project)) {
    for (const ref of closeFacts(acq).refs) {
      const asg = ref.parent;
      if (asg?.type !== 'assignment' || asg.childForFieldName('right')?.id !== ref.id) continue;
      const left = asg.childForFieldName('left')?.text.replace(/\s+/g, '') ?? '';
      if (STORE_TARGET.test(left)) consider(left, acq.call, acq);
    }
  }
  return out;
}

const OWNER_CLOSE_METHODS = /^(close|aclose|__exit__|__aexit__|__del__|dispose|shutdown|teardown|cleanup|release)$/;

function ownerCloses(model: FileModel, fn: FunctionInfo, target: string): boolean {
  const attr = target.slice(target.lastIndexOf('.') + 1);
  const esc = attr.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  if (!target.startsWith('self.')) {
    // Per-request state: closed after `call_next`, or in a teardown hook of the module.
    return new RegExp(`\\.${esc}\\s*\\.\\s*(close|aclose|release)\\s*\\(|pop\\(\\s*['"]${esc}['"]|(close|release)\\w*\\([^)]*\\.${esc}\\b`).test(model.source);
  }
  const cls = fn.className;
  if (!cls) return true;
  const methods = model.functions.filter((f) => f.className === cls);
  const selfAttr = new RegExp(`\\bself\\.${esc}\\b`);
  for (const m of methods) {
    if (!m.body) continue;
    if (OWNER_CLOSE_METHODS.test(m.name) && selfAttr.test(m.body.text)) return true;
    if (new RegExp(`\\bself\\.${esc}\\s*\\.\\s*(close|aclose|dispose|release)\\s*\\(`).test(m.body.text)) return true;
  }
  const def = model.classes.find((c) => c.childForFieldName('name')?.text === cls);
  const bases = def?.childForFieldName('superclasses')?.namedChildren.map((b) => b.text) ?? [];
  const localClasses = new Set(model.classes.map((c) => c.childForFieldName('name')?.text));
  if (bases.some((b) => !/^(object|ABC|abc\.ABC|Protocol|typing\.Protocol|Generic\[.*\])$/.test(b) && !localClasses.has(b) && !b.includes('='))) return true;
  // A module-level instance lives as long as the process.
  return model.calls.some((c) => c.functionIndex < 0 && c.calleeText === cls);
}

// ---------------------------------------------------------------------------------------------
// Sub-dependencies that carry a session

/** A parameter of an endpoint filled by `Depends(dep)` where `dep` is a function of this file that takes a session itself. */
export interface SessionSubDependency {
  /** The endpoint's parameter name and node. */
  param: string;
  paramNode: SyntaxNode;
  /** The dependency function and its injected session. */
  dependency: FunctionInfo;
  session: InjectedSession;
  /** The dependency returns (or yields) the session or a value that keeps it (`Repo(db)`). */
  carrier: boolean;
  /** The dependency's own last use of the session (not the hand-over), or null when it only hands it over. */
  lastUse: SyntaxNode | null;
  /** It returns what the session loaded (see `returnsLoaded`). */
  returnsRow: boolean;
  /** It runs a statement through the session outside a `begin()` block (see `statementOutsideBegin`). */
  queries: boolean;
  /** Lines where it hands the session to a function that runs now (`find_account(db, key)`): the repo phase asks whether that queries. */
  handedOn: number[];
}

/**
 * Does a commit hand the connection back for good? Only when the project's session factories all
 * set `expire_on_commit=False`: otherwise the objects loaded before it are expired, and the next
 * attribute read (in the stream) checks a connection out again until the session closes.
 */
export function commitReleases(project: ProjectContext): boolean {
  const makers = project.sessionFactories.filter((f) => /sessionmaker$/.test(f.kind));
  return makers.length > 0 && makers.every((f) => f.expireOnCommit === false);
}

/** Is a use of a session the release of its connection: `close()`/`rollback()`, or a commit when commits release (see `commitReleases`)? */
export function releasesConnection(project: ProjectContext, ref: SyntaxNode): boolean {
  if (!endsTransaction(ref)) return false;
  const p = ref.parent;
  const what = p?.type === 'attribute' ? p.childForFieldName('attribute')?.text ?? '' : p?.parent?.childForFieldName('function')?.text ?? '';
  return !/commit/i.test(what) || commitReleases(project);
}

function insideReturnOrYield(node: SyntaxNode, stop: SyntaxNode): boolean {
  for (let p = node.parent; p && p.id !== stop.id; p = p.parent) {
    if (p.type === 'return_statement' || p.type === 'yield') return true;
    if (p.type === 'function_definition' || p.type === 'lambda') return false;
  }
  return false;
}

/** The endpoint's parameters filled by a same-file dependency that itself takes a session (`repo: Repo = Depends(get_repo)`). */
export function sessionSubDependencies(model: FileModel, project: ProjectContext, fn: FunctionInfo): SessionSubDependency[] {
  const out: SessionSubDependency[] = [];
  for (const { param, paramNode, target } of dependencyParams(model, project, fn)) {
    // A function, or a class whose `__init__` FastAPI calls (`Depends(OrderService)`).
    const dep = target.includes('.') ? undefined : localDependency(model, fn, target);
    if (!dep) continue;
    for (const d of dependencySessions(model, project, dep)) out.push({ param, paramNode, dependency: dep, ...d });
  }
  return out;
}

/** The function of this file that `Depends(target)` runs, or a class's `__init__`. */
function localDependency(model: FileModel, fn: FunctionInfo, target: string): FunctionInfo | undefined {
  const dep = model.functions.find((f) => f.parent < 0 && !f.className && f.name === target && f.index !== fn.index)
    ?? model.functions.find((f) => f.className === target && f.name === '__init__');
  return dep?.body ? dep : undefined;
}

/**
 * The parameters of `fn` filled by `Depends(target)` (or `Depends()` on a class annotation) with a
 * target that is not a session provider: `target` as written.
 */
function dependencyParams(model: FileModel, project: ProjectContext, fn: FunctionInfo): { param: string; paramNode: SyntaxNode; target: string; qualified?: string }[] {
  const out: { param: string; paramNode: SyntaxNode; target: string; qualified?: string }[] = [];
  const paramNodes = fn.node.childForFieldName('parameters')?.namedChildren ?? [];
  fn.params.forEach((p, i) => {
    const node = paramNodes[i];
    if (!node) return;
    for (const text of [p.defaultText ?? '', p.annotation ?? '', localAlias(model, p.annotation)?.text ?? '']) {
      const m = DEPENDS.exec(text);
      if (!m) continue;
      // `svc: OrderService = Depends()`: the annotation is the dependency; `Depends(RequireRole("admin"))`:
      // an instance made once, whose `__call__` FastAPI runs per request.
      const target = m[1] ? (/^\s*\(/.test(m[2] ?? '') ? `${m[1]}.__call__` : m[1]) : (p.annotation && /^[A-Za-z_][\w.]*$/.test(p.annotation) ? p.annotation : null);
      if (target && !isSessionProvider(model, project, target)) out.push({ param: p.name, paramNode: node, target });
      return;
    }
    // `user: CurrentUser` with `CurrentUser = Annotated[User, Depends(get_current_user)]` in another module.
    const alias = p.defaultText ? null : dependencyAliasOf(model, p.annotation);
    if (alias && !projectNames(project).providers.has(alias.provider)) out.push({ param: p.name, paramNode: node, target: alias.provider, qualified: alias.provider });
  });
  return out;
}

/**
 * The qualified name of the dependency `Depends(name)` names in `fn`'s module (`deps.current_user`,
 * an imported or a local function), with whether it is defined in this module; null when unknown.
 */
function qualifiedDependency(model: FileModel, fn: FunctionInfo, name: string, qualified?: string): { q: string; local: boolean } | null {
  if (qualified) return { q: qualified, local: false };
  if (!name.includes('.') && localDependency(model, fn, name)) return { q: `${model.moduleName}.${name}`, local: true };
  const q = resolveName(model, name);
  return q && q.includes('.') ? { q, local: q.startsWith(`${model.moduleName}.`) } : null;
}

/**
 * The endpoint's parameters filled by a dependency of another module (`user = Depends(deps.current_user)`,
 * `from app.deps import current_user`): the qualified name, for the repo phase to look the
 * dependency up (see {@link dependencySessions}).
 */
export function importedDependencies(model: FileModel, project: ProjectContext, fn: FunctionInfo): { param: string; paramNode: SyntaxNode; target: string }[] {
  const out: { param: string; paramNode: SyntaxNode; target: string }[] = [];
  for (const d of dependencyParams(model, project, fn)) {
    const dep = qualifiedDependency(model, fn, d.target, d.qualified);
    if (dep && !dep.local) out.push({ param: d.param, paramNode: d.paramNode, target: dep.q });
  }
  return out;
}

/**
 * Every parameter of the endpoint filled by a dependency that is not a session provider, in this
 * module or another: the qualified name, for the repo phase to look the dependency up.
 */
export function endpointDependencies(model: FileModel, project: ProjectContext, fn: FunctionInfo): { param: string; paramNode: SyntaxNode; target: string }[] {
  const out: { param: string; paramNode: SyntaxNode; target: string }[] = [];
  for (const d of dependencyParams(model, project, fn)) {
    const dep = qualifiedDependency(model, fn, d.target, d.qualified);
    if (dep) out.push({ param: d.param, paramNode: d.paramNode, target: dep.q });
  }
  return out;
}

/**
 * The dependencies a route runs without a parameter for them: `@router.get(..., dependencies=[Depends(auth)])`,
 * and those of the router the decorator registers on (`router = APIRouter(dependencies=[Depends(auth)])`
 * in this module). Qualified names, session providers left out (a bare `Depends(get_db)` uses nothing).
 */
export function routeDependencies(model: FileModel, project: ProjectContext, fn: FunctionInfo): string[] {
  const texts: string[] = [];
  for (const d of fn.decorators) {
    if (d.includes('dependencies')) texts.push(d);
    const router = /^([A-Za-z_]\w*)\./.exec(d)?.[1];
    const a = router ? assignmentsTo(model, router).find((x) => x.functionIndex < 0 && !!x.value && x.value.text.includes('dependencies')) : undefined;
    if (a) texts.push(a.value!.text);
  }
  const out = new Set<string>();
  for (const t of texts) {
    const list = /dependencies\s*=\s*\[([\s\S]*?)\]/.exec(t)?.[1] ?? '';
    for (const name of listedDependencies(list)) {
      const dep = qualifiedDependency(model, fn, name);
      if (dep && !projectNames(project).providers.has(dep.q)) out.add(dep.q);
    }
  }
  return [...out];
}

/** Qualified names of the dependencies (not session providers) a function's parameters name: its own sub-dependencies. */
export function dependencyTargets(model: FileModel, project: ProjectContext, fn: FunctionInfo): string[] {
  return dependencyParams(model, project, fn).map((d) => qualifiedDependency(model, fn, d.target, d.qualified)?.q).filter((q): q is string => !!q);
}

/** The sessions a dependency function takes by injection, whether it hands them on, and its own last use. */
export function dependencySessions(model: FileModel, project: ProjectContext, dep: FunctionInfo): { session: InjectedSession; carrier: boolean; lastUse: SyntaxNode | null; returnsRow: boolean; queries: boolean; handedOn: number[] }[] {
  const out: { session: InjectedSession; carrier: boolean; lastUse: SyntaxNode | null; returnsRow: boolean; queries: boolean; handedOn: number[] }[] = [];
  if (!dep.body) return out;
  for (const s of injectedSessions(model, project, dep)) {
    if (!s.viaDepends) continue;
    const refs = sessionRefs(dep, s.name);
    // The session itself returned, yielded or kept (`return db`, `yield Repo(db)`, `self.db = db`);
    // not a statement whose result is returned (`return await db.scalar(...)`: a use).
    const handOver = refs.filter((r) => (insideReturnOrYield(r, dep.body!) && !isStatementReceiver(r) && !handedToHelper(r)) || (dep.name === '__init__' && storedOnSelf(r)));
    const uses = refs.filter((r) => !handOver.includes(r) && !isWrapperAssignment(r));
    out.push({
      session: s, carrier: handOver.length > 0, lastUse: uses[uses.length - 1] ?? null, returnsRow: returnsLoaded(model, dep, s.name),
      queries: uses.some((r) => statementOutsideBegin(r)),
      handedOn: refs.filter((r) => handedToHelper(r) && !insideBeginBlock(r)).map((r) => r.startPosition.row + 1),
    });
  }
  return out;
}

/**
 * Is the reference an argument of a function or method call that runs now (`return await
 * repo.user_by_token(db, token)`), not of a class that keeps it (`return Repo(db)`)?
 */
function handedToHelper(ref: SyntaxNode): boolean {
  const args = ref.parent?.type === 'keyword_argument' ? ref.parent.parent : ref.parent;
  if (args?.type !== 'argument_list' || args.parent?.type !== 'call') return false;
  const callee = args.parent.childForFieldName('function')?.text ?? '';
  const name = callee.slice(callee.lastIndexOf('.') + 1);
  // A factory that wraps the session (`make_repo(db)`, `get_user_service(db)`) hands it on too;
  // a builtin or `partial` only looks at it or keeps it.
  return /^[a-z_]/.test(name) && !SESSION_WRAPPER_FACTORY.test(name) && !NOT_A_RUN.has(name);
}

const NOT_A_RUN = new Set(['id', 'print', 'repr', 'str', 'type', 'isinstance', 'hasattr', 'getattr', 'setattr', 'len', 'bool', 'dict', 'list', 'tuple', 'format',
  'partial', 'wraps', 'append', 'setdefault', 'update', 'add_task', 'create_task', 'debug', 'info', 'warning', 'warn', 'error', 'exception', 'critical', 'log']);

/**
 * The call a session is handed to as an argument (`await crud.create_chat(db, data)`), when that
 * is all the file can say of the use: whether the function called runs a statement, and whether
 * it ends the transaction before it returns, is for the repo phase. Null for a statement of the
 * session's own, a wrapper (`UserRepo(db)`), a `begin()` block, or a call that only looks at it.
 */
export function handOffCall(ref: SyntaxNode): SyntaxNode | null {
  if (insideBeginBlock(ref) || statementOutsideBegin(ref) || !handedToHelper(ref)) return null;
  const args = ref.parent?.type === 'keyword_argument' ? ref.parent.parent : ref.parent;
  return args?.parent ?? null;
}

/**
 * Does this use of a session run a statement, as far as the file can tell: a statement outside a
 * `begin()` block ({@link statementOutsideBegin}); the session handed to a function that runs now
 * (`await repo.get_job(session, job_id)`), taken to query with it; or handed to a wrapper the
 * function then asks before `untilLine` (`UserRepo(db).by_token(t)`, `users = UserRepo(db)` …
 * `users.by_token(t)`).
 */
export function runsStatement(ref: SyntaxNode, fn?: FunctionInfo, untilLine?: number): boolean {
  if (insideBeginBlock(ref)) return false;
  if (statementOutsideBegin(ref) || handedToHelper(ref)) return true;
  return !!fn && wrapperAsked(ref, fn, untilLine ?? fn.endLine);
}

/**
 * The method calls the function makes, before `untilLine`, on the object of a class the session is
 * handed to (`repo = ProductRepo(db)` … `repo.add(p)`, `await repo.save()`; `UserRepo(db).by_token(t)`),
 * in source order: what the session runs through that object, for the repo phase. Null when the
 * use is no such hand-off.
 */
export function wrapperCalls(ref: SyntaxNode, fn: FunctionInfo, untilLine: number): SyntaxNode[] | null {
  if (insideBeginBlock(ref)) return null;
  const args = ref.parent?.type === 'keyword_argument' ? ref.parent.parent : ref.parent;
  const call = args?.type === 'argument_list' ? args.parent : null;
  if (call?.type !== 'call') return null;
  const callee = call.childForFieldName('function')?.text ?? '';
  if (!/^[A-Z]/.test(callee.slice(callee.lastIndexOf('.') + 1))) return null;
  if (call.parent?.type === 'attribute' && call.parent.parent?.type === 'call') return [call.parent.parent];
  const out = attributeUsesOfResult(call, fn, untilLine).filter((r) => r.parent?.parent?.type === 'call').map((r) => r.parent!.parent!);
  return out.length ? out : null;
}

/**
 * The name a call's value is bound to (`repo = Repo(db)`, `chat = await crud.create(db, x)`), and
 * its uses as an object (`repo.save`, `chat.id`) after the call and up to `untilLine`.
 */
export function attributeUsesOfResult(call: SyntaxNode, fn: FunctionInfo, untilLine: number): SyntaxNode[] {
  let top: SyntaxNode = call;
  while (top.parent?.type === 'await' || top.parent?.type === 'parenthesized_expression') top = top.parent;
  const left = top.parent?.type === 'assignment' && top.parent.childForFieldName('right')?.id === top.id ? top.parent.childForFieldName('left') : null;
  if (left?.type !== 'identifier' || !fn.body) return [];
  return variableRefs(fn.body, left.text).filter((r) => r.startIndex > top.endIndex && r.startPosition.row + 1 <= untilLine
    && r.parent?.type === 'attribute' && r.parent.childForFieldName('object')?.id === r.id);
}

/** Is the session handed to a class (`UserRepo(db)`) whose object the function calls a method of, before a line? */
function wrapperAsked(ref: SyntaxNode, fn: FunctionInfo, untilLine: number): boolean {
  return wrapperCalls(ref, fn, untilLine) !== null;
}

function insideBeginBlock(ref: SyntaxNode): boolean {
  for (let a = ref.parent; a; a = a.parent) {
    if (a.type === 'function_definition' || a.type === 'lambda') break;
    if (a.type !== 'with_statement') continue;
    const items = a.namedChildren.find((c) => c.type === 'with_clause')?.text ?? '';
    if (new RegExp(`(^|[^\\w.])${ref.text}\\s*\\.\\s*begin\\s*\\(`).test(items)) return true;
  }
  return false;
}

const SESSION_WRAPPER_FACTORY = /(repo|repository|service|store|dao|uow|unit_of_work|manager|crud|gateway|client)s?$/i;

/** Is the reference the object of a method call (`db.scalar(...)`), not the session handed on? */
function isStatementReceiver(ref: SyntaxNode): boolean {
  const p = ref.parent;
  return p?.type === 'attribute' && p.childForFieldName('object')?.id === ref.id && p.parent?.type === 'call' && p.parent.childForFieldName('function')?.id === p.id;
}

/** Session methods that stage or configure, without a statement: no connection is checked out for them. */
/** Session methods that run a statement (and check a connection out for the session's transaction). */
const STATEMENT_METHODS = /^(execute|scalar|scalars|scalar_one|get|get_one|query|exec|flush|refresh|merge|stream|stream_scalars|connection|run_sync|delete|bulk_save_objects|bulk_insert_mappings|bulk_update_mappings)$/;

/**
 * Is this use of a session a statement that checks a connection out and leaves it in the
 * session's transaction: a call of a method that talks to the database (`execute`, `scalar`,
 * `get`, `query`, `flush`, ...) outside a `with`/`async with <session>.begin():` block, whose end
 * commits and gives the connection back? The session named anywhere else (`Repo(db)`,
 * `helper(db)`, `db.autoflush = False`, `db.add(x)`) runs nothing here.
 */
export function statementOutsideBegin(ref: SyntaxNode): boolean {
  const p = ref.parent;
  const method = p?.type === 'attribute' && p.childForFieldName('object')?.id === ref.id && p.parent?.type === 'call' && p.parent.childForFieldName('function')?.id === p.id
    ? p.childForFieldName('attribute')?.text ?? '' : null;
  if (method === null || !STATEMENT_METHODS.test(method)) return false;
  return !insideBeginBlock(ref);
}

/**
 * Does the dependency return what the session loaded or took in (`user = db.get(User, id); return
 * user`, `return db.scalar(...)`, `db.add(visit); ...; return visit`)? An expired row reloads
 * when read; a value built from it (`Principal(id=user.id)`) does not.
 */
function returnsLoaded(model: FileModel, dep: FunctionInfo, session: string): boolean {
  const uses = new RegExp(`(^|[^\\w.])${session}\\s*\\.`);
  for (const r of dep.body!.descendantsOfType('return_statement')) {
    if (insideNestedFunction(r, dep.body!)) continue;
    let v = r.namedChild(0);
    if (v?.type === 'await') v = v.namedChild(0);
    if (!v) continue;
    if (v.type === 'identifier') {
      const a = assignmentsTo(model, v.text).filter((x) => x.functionIndex === dep.index && x.node.startIndex < r.startIndex).pop();
      if (a?.value && uses.test(a.value.text)) return true;
      // A new row the session took in (`db.add(visit)`): after the commit it is expired like a loaded one.
      if (new RegExp(`(^|[^\\w.])${session}\\s*\\.\\s*(add|merge|refresh)\\s*\\(\\s*${v.text}\\s*\\)`).test(dep.body!.text)) return true;
    } else if (uses.test(v.text)) return true;
  }
  return false;
}

/** `self.session = db`, `self.repo = Repo(db)`: the object keeps the session. */
function storedOnSelf(ref: SyntaxNode): boolean {
  for (let p = ref.parent; p; p = p.parent) {
    if (p.type === 'assignment') return /^self\.\w+$/.test(p.childForFieldName('left')?.text ?? '');
    if (p.type === 'expression_statement' || p.type === 'block' || p.type === 'function_definition') return false;
  }
  return false;
}

/** `repo = Repo(db)`: the reference that makes a wrapper, not a use. */
function isWrapperAssignment(ref: SyntaxNode): boolean {
  for (let p = ref.parent; p; p = p.parent) {
    if (p.type === 'assignment') {
      const right = p.childForFieldName('right');
      return !!right && p.childForFieldName('left')?.type === 'identifier' && isWrapperOf(right, new Set([ref.text]));
    }
    if (p.type === 'expression_statement' || p.type === 'block' || p.type === 'function_definition') return false;
  }
  return false;
}
