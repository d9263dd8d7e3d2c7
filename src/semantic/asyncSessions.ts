/**
 * Names that hold one asynchronous database handle — an `AsyncSession`, an `AsyncConnection` or
 * an asyncpg connection — at a point of a function: typed by an annotation, made by an
 * `async_sessionmaker` of the project (or `sessionmaker(class_=AsyncSession)`), by
 * `AsyncSession(...)` / `asyncpg.connect(...)` itself, or injected by an async session provider
 * of the project (`Depends(get_session)`). Shared by the rules about how such a handle is used
 * (concurrently, without `await`).
 */
import type { ProjectContext, SessionFactoryInfo, SessionProviderInfo } from '../discovery/context.js';
import { assignmentsTo, moduleNameOf, QualifiedIndex, resolveName, valueTypeOf, type FileModel } from './model.js';
import { typeString } from './valueTypes.js';
import { dependencyAliasOf } from './dependencyAliases.js';
import { fileClasses } from './classes.js';

/** Types that hold one connection and whose I/O methods are coroutines. */
const ASYNC_HANDLE = /(^|\.)(AsyncSession|AsyncConnection|async_scoped_session)$|^asyncpg(\.\w+)*\.(Connection|connect)$|^sqlmodel\.ext\.asyncio\.session\.AsyncSession$/;

export type AsyncHandleKind = 'AsyncSession' | 'AsyncConnection' | 'asyncpg connection';

export interface AsyncHandle {
  kind: AsyncHandleKind;
  /** Offset where the name was last bound before the line (a parameter: the function's start). */
  boundAt: number;
}

export type AsyncHandleTest = (name: string, fnIndex: number, line: number) => AsyncHandle | null;

const memo = new WeakMap<FileModel, AsyncHandleTest>();

export function asyncHandles(model: FileModel, project: ProjectContext): AsyncHandleTest {
  let test = memo.get(model);
  if (test) return test;
  const { factories, providers, ormProviders, engines, pools } = projectHandles(project);
  test = (name, fnIndex, line) => {
    // `self.session`: what the class's `__init__` keeps there from its parameter (`self.session = session`).
    if (name.startsWith('self.')) {
      const kept = keptParameter(model, name.slice(5), fnIndex);
      const held = kept ? test!(kept.param, kept.init, Infinity) : null;
      // Bound before anything the method does, as a parameter is.
      return held ? { kind: held.kind, boundAt: model.functions[fnIndex]!.start } : null;
    }
    let t = valueTypeOf(model, name, fnIndex, line);
    if (!t) return null;
    // `session: SessionDep`, an `Annotated[AsyncSession, Depends(...)]` alias of the project.
    const param = fnIndex >= 0 ? model.functions[fnIndex]!.params.find((p) => p.name === name) : undefined;
    const alias = param ? dependencyAliasOf(model, param.annotation) : null;
    if (alias) t = alias.type;
    const provider = t.startsWith('Depends:') ? t.slice(8) : null;
    // `async with engine.connect() as conn` on an async engine of the project; `pool.acquire()` on an asyncpg pool.
    const viaEngine = /\.(connect|begin)$/.test(t) && known(engines, t.slice(0, t.lastIndexOf('.')));
    const viaPool = /\.acquire$/.test(t) && poolName(model, t.slice(0, t.lastIndexOf('.')), fnIndex, line, pools);
    if (viaEngine) return { kind: 'AsyncConnection', boundAt: boundAt(model, name, fnIndex, line) };
    if (viaPool) return { kind: 'asyncpg connection', boundAt: boundAt(model, name, fnIndex, line) };
    const typed = ASYNC_HANDLE.test(t) || known(factories, t) || (provider !== null && known(providers, provider)) || withProvider(model, name, fnIndex, line, ormProviders);
    if (!typed) return null;
    const kind: AsyncHandleKind = /asyncpg/.test(t) ? 'asyncpg connection' : /AsyncConnection$/.test(t) ? 'AsyncConnection' : 'AsyncSession';
    return { kind, boundAt: boundAt(model, name, fnIndex, line) };
  };
  memo.set(model, test);
  return test;
}

/**
 * `async with get_session() as s:` / `async with self._db.begin_readonly_session() as s:`: the
 * alias of an async session provider of the project used as a context manager, a function or a
 * method of a class (typed on the object: `self._db: Database`, `db = Database(url)`).
 */
function withProvider(model: FileModel, name: string, fnIndex: number, line: number, providers: QualifiedIndex<string>): boolean {
  let a = null as ReturnType<typeof assignmentsTo>[number] | null;
  for (const x of assignmentsTo(model, name)) if (x.functionIndex === fnIndex && x.line <= line && (!a || x.line >= a.line)) a = x;
  if (!a?.fromWith) return false;
  const v = a.value?.type === 'await' ? a.value.namedChild(0) : a.value;
  const callee = v?.type === 'call' ? v.childForFieldName('function') : null;
  if (!callee) return false;
  if (callee.type === 'identifier') return known(providers, resolveName(model, callee.text) ?? `${model.moduleName}.${callee.text}`);
  if (callee.type !== 'attribute') return false;
  const object = typeString(model, callee.childForFieldName('object'), fnIndex, line);
  const cls = object ? /^@?([A-Za-z_][\w.]*?)(\(\))?$/.exec(object) : null;
  return !!cls && known(providers, `${cls[1]}.${callee.childForFieldName('attribute')?.text ?? ''}`);
}

/**
 * The parameter of the class's `__init__` (or a base's of the file) that a method's `self.<attr>`
 * holds: the one `__init__` binds it to (`self.session = session`), when no other method rebinds it.
 */
function keptParameter(model: FileModel, attr: string, fnIndex: number): { init: number; param: string } | null {
  const cls = fnIndex >= 0 ? model.functions[fnIndex]!.className : null;
  if (!cls) return null;
  // The class and its bases defined in the file (`class Svc(BaseService)` whose `__init__` keeps it).
  const chain = new Set<string>();
  const classes = new Map(fileClasses(model).map((c) => [c.name, c.bases.map((b) => b.slice(b.lastIndexOf('.') + 1))]));
  for (const todo = [cls]; todo.length;) {
    const c = todo.pop()!;
    if (chain.has(c)) continue;
    chain.add(c);
    todo.push(...(classes.get(c) ?? []).filter((b) => classes.has(b)));
  }
  const binds = model.assignments.filter((a) => a.target === `self.${attr}` && a.functionIndex >= 0 && chain.has(model.functions[a.functionIndex]!.className ?? ''));
  if (binds.length !== 1) return null;
  const init = binds[0]!.functionIndex;
  const value = binds[0]!.value;
  if (model.functions[init]!.name !== '__init__' || value?.type !== 'identifier' || !model.functions[init]!.params.some((p) => p.name === value.text)) return null;
  return { init, param: value.text };
}

interface ProjectHandles {
  factories: QualifiedIndex<string>;
  providers: QualifiedIndex<string>;
  /** Async providers that yield SQLAlchemy's session or a project factory's (not an HTTP client's). */
  ormProviders: QualifiedIndex<string>;
  /** Async engines (`create_async_engine`). */
  engines: QualifiedIndex<string>;
  /** asyncpg pools (`asyncpg.create_pool`). */
  pools: QualifiedIndex<string>;
}

const projectMemo = new WeakMap<ProjectContext, ProjectHandles>();

/**
 * Does a session provider of the project yield SQLAlchemy's session: `Session`/`AsyncSession`
 * itself, or a call of one of the project's session factories — not an `aiohttp.ClientSession()`
 * or `requests.Session()` a provider may hand out too.
 */
export function yieldsOrmSession(project: ProjectContext): (p: Pick<SessionProviderInfo, 'yields'>) => boolean {
  const factoryNames = new Set(project.sessionFactories.map((f) => f.name?.slice(f.name.lastIndexOf('.') + 1)).filter((n): n is string => !!n));
  return (p) => p.yields === 'Session' || p.yields === 'AsyncSession' || factoryNames.has(p.yields.slice(p.yields.lastIndexOf('.') + 1));
}

/** Does the factory make `AsyncSession`s: `async_sessionmaker(...)`, or `sessionmaker(class_=AsyncSession)`? */
export function makesAsyncSessions(f: Pick<SessionFactoryInfo, 'kind' | 'class'>): boolean {
  return f.kind === 'async_sessionmaker' || (f.kind === 'sessionmaker' && /AsyncSession$/.test(f.class ?? ''));
}

const asyncOnlyMemo = new WeakMap<ProjectContext, boolean>();

/**
 * Does the project reach its database only through asyncio sessions at run time? Every engine
 * and session factory outside `offline` files (tests, migrations, one-off scripts: the caller's
 * answer) is an asyncio one (`create_async_engine`, {@link makesAsyncSessions}, `AsyncSession`,
 * `async_scoped_session`), and there is at least one. Then an implicit lazy load anywhere in its
 * service code raises `MissingGreenlet` (SQLAlchemy's asyncio extension allows no implicit IO
 * outside `run_sync`): code that reads a relationship on rows whose loading it cannot see works
 * only because whoever loaded them loaded the relationship eagerly.
 */
export function asyncOnlyOrm(project: ProjectContext, offline: (file: string) => boolean): boolean {
  let got = asyncOnlyMemo.get(project);
  if (got !== undefined) return got;
  const engines = project.engines.filter((e) => !offline(e.file) && e.factory !== 'asyncpg.create_pool');
  const factories = project.sessionFactories.filter((f) => !offline(f.file));
  got = (engines.length > 0 || factories.length > 0) && engines.every((e) => e.async)
    && factories.every((f) => makesAsyncSessions(f) || f.kind === 'AsyncSession' || f.kind === 'async_scoped_session');
  asyncOnlyMemo.set(project, got);
  return got;
}

/** The project's async session factories, providers, engines and pools, qualified: once per project, not per file. */
function projectHandles(project: ProjectContext): ProjectHandles {
  let v = projectMemo.get(project);
  if (!v) {
    const index = (names: string[]) => new QualifiedIndex(names, (n) => n);
    const factories = index(
      project.sessionFactories
        .filter((f) => f.name && makesAsyncSessions(f))
        .map((f) => `${moduleNameOf(f.file)}.${f.name}`),
    );
    const providers = index(project.sessionProviders.filter((p) => p.async).map((p) => `${moduleNameOf(p.file)}.${p.name}`));
    const orm = yieldsOrmSession(project);
    const ormProviders = index(project.sessionProviders.filter((p) => p.async && orm(p)).map((p) => `${moduleNameOf(p.file)}.${p.name}`));
    const named = project.engines.filter((e) => e.name && !e.function);
    const engines = index(named.filter((e) => e.async && !/create_pool$/.test(e.factory)).map((e) => `${moduleNameOf(e.file)}.${e.name}`));
    const pools = index(named.filter((e) => /create_pool$/.test(e.factory)).map((e) => `${moduleNameOf(e.file)}.${e.name}`));
    projectMemo.set(project, (v = { factories, providers, ormProviders, engines, pools }));
  }
  return v;
}

/** Is `t` one of these names, also when written from a package root below the scanned root (`app.db.Maker` for `backend/app/db.py`)? */
function known(names: QualifiedIndex<string>, t: string): boolean {
  return names.get(t) !== undefined;
}

/** Is the name a pool of asyncpg: a project pool, `asyncpg.create_pool(...)`, or annotated `asyncpg.Pool`? */
function poolName(model: FileModel, path: string, fnIndex: number, line: number, pools: QualifiedIndex<string>): boolean {
  if (known(pools, path)) return true;
  if (!/^[A-Za-z_]\w*$/.test(path)) return false;
  const t = valueTypeOf(model, path, fnIndex, line);
  return !!t && /^asyncpg(\.\w+)*\.(create_pool|Pool)$/.test(t);
}

function boundAt(model: FileModel, name: string, fnIndex: number, line: number): number {
  let best = -1;
  for (const a of model.assignments) {
    if (a.functionIndex === fnIndex && a.target === name && a.line <= line) best = Math.max(best, a.node.startIndex);
  }
  return best >= 0 ? best : fnIndex >= 0 ? model.functions[fnIndex]!.start : 0;
}
