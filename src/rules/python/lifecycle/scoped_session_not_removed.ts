/**
 * PA410 scoped_session_not_removed
 *
 * What it does: finds a `scoped_session(...)` / `async_scoped_session(...)` registry kept for the
 * process (module level, a class body, `cls._registry = ...` in a classmethod, `self.registry =
 * ...` in `__init__`) of a web service or task worker that no module of the project ever ends: no `remove()` (or
 * `close()`) on it, called or handed over as a callback (`app.teardown_appcontext`, a middleware,
 * Celery's `task_postrun`), anywhere.
 * Why is this bad? The registry keeps one session per thread (per task, for the async one). A
 * request that reads begins a transaction on its thread's session and, when nothing ends it,
 * leaves it open with its pooled connection checked out ("idle in transaction") until that
 * thread serves another request; the next request then inherits its identity map and its
 * pending state. With a `scopefunc` per request the registry also grows by one session per
 * request. SQLAlchemy's contextual-session guide: call `remove()` at the end of each request.
 *
 * Silent: Flask-SQLAlchemy's `db.session` (it removes itself at teardown), a registry made
 * inside a function, a project that is not a service, and any project where some module calls
 * `remove()`/`close()` on a session-like name (`Session.remove()`, `db_session.close`): the
 * check is by name across the whole project, so an alias that is removed counts. When every
 * name the project calls `remove()` on is one of its registries, each registry is judged by its
 * own name: the one nobody removes (a replica's beside the writer's) is reported.
 */
import type { ProjectContext, SessionFactoryInfo } from '../../../discovery/context.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { isWebService } from './semantics.js';
import { TEARDOWN_COMMIT } from '../../../discovery/discover.js';

const SCOPED = /^(async_)?scoped_session$/;
/** Task queues whose workers reuse threads or an event loop across jobs. */
const WORKERS = ['celery', 'rq', 'dramatiq', 'huey', 'arq', 'saq', 'apscheduler'];
const WEB_IMPORT = /^(flask|fastapi|starlette|django|aiohttp|litestar|quart|sanic|falcon|tornado|pyramid)(\.|$)/;
const WORKER_IMPORT = /^(celery|rq|dramatiq|huey|arq|saq|apscheduler)(\.|$)/;

const registryMemo = new WeakMap<ProjectContext, Map<string, SessionFactoryInfo[]>>();

/** The project's module-level scoped registries by file (one pass over the factories per scan, not per file). */
function registriesOf(project: ProjectContext): Map<string, SessionFactoryInfo[]> {
  let byFile = registryMemo.get(project);
  if (!byFile) {
    byFile = new Map();
    for (const f of project.sessionFactories) {
      if (!SCOPED.test(f.kind) || f.name === null || (f.function !== null && !classRegistry(f))) continue;
      const list = byFile.get(f.file);
      if (list) list.push(f);
      else byFile.set(f.file, [f]);
    }
    registryMemo.set(project, byFile);
  }
  return byFile;
}

export const scopedSessionNotRemoved: FileRule = {
  meta: {
    code: 'PA410',
    check: 'scoped_session_not_removed',
    family: 'lifecycle',
    severity: 'high',
    effort: 'S',
    summary: 'A scoped_session registry that nothing removes at the end of a request or job',
    what: 'Finds a `scoped_session(...)` / `async_scoped_session(...)` registry kept for the process — at module level, in a class body, or on a class by one of its methods (`cls._registry = scoped_session(...)` in a classmethod, `Manager.registry = ...`, `self.registry = ...` in `__init__`) — of a web service (FastAPI, Flask, Django, aiohttp, Starlette) or a task worker (Celery, RQ, Dramatiq, Huey, arq, SAQ, APScheduler: its jobs run on a pool of reused threads) when no module of the project calls `remove()` or `close()` on it, or hands that method over as a callback (`app.teardown_appcontext(lambda exc: Session.remove())`, `task_postrun.connect(...)`, a middleware). Any module other than a test that calls `remove()` with no argument on any name (an alias counts), closes a session-like name, or opens its sessions with `with Registry() as s:` keeps it silent: precision first; but when every name the project calls `remove()` on is one of its registries, a registry it never removes or closes by its own name is reported (`WriteSession.remove()` at teardown, `ReadSession` never). A class-held registry is matched by its attribute name (`cls._registry.remove()` in a classmethod the teardown calls ends it). Silent for Flask-SQLAlchemy\'s `db.session`, which removes itself at teardown, and for a registry made inside a function into a local or returned (a method that builds one per call is PA403\'s: its session is that call\'s to close). High for a web service, medium for a worker alone.',
    why: 'The registry keeps one session per thread (or task). A request that reads begins a transaction on its thread\'s session; when nothing ends it, the transaction stays open with its pooled connection checked out ("idle in transaction") until the thread serves another request, which then inherits the previous request\'s identity map and pending state. With a per-request `scopefunc`, the registry also keeps one session per request forever.',
    bad: 'from flask import Flask\nfrom sqlalchemy import create_engine, select\nfrom sqlalchemy.orm import scoped_session, sessionmaker\n\nengine = create_engine("postgresql+psycopg://app@db/app", pool_pre_ping=True)\nSession = scoped_session(sessionmaker(bind=engine))\napp = Flask(__name__)\n\n\n@app.get("/items")\ndef items():\n    return [i.name for i in Session.scalars(select(Item))]\n',
    good: 'from flask import Flask\nfrom sqlalchemy import create_engine, select\nfrom sqlalchemy.orm import scoped_session, sessionmaker\n\nengine = create_engine("postgresql+psycopg://app@db/app", pool_pre_ping=True)\nSession = scoped_session(sessionmaker(bind=engine))\napp = Flask(__name__)\n\n\n@app.teardown_appcontext\ndef remove_session(exc):\n    Session.remove()\n\n\n@app.get("/items")\ndef items():\n    return [i.name for i in Session.scalars(select(Item))]\n',
    fix: 'call `Session.remove()` when each request or job ends (`teardown_appcontext`, a middleware, Celery\'s `task_postrun`), or open a session per request instead',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/contextual.html#using-thread-local-scope-with-web-applications',
      'https://flask.palletsprojects.com/en/stable/patterns/sqlalchemy/#declarative',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile) return;
    const registries = registriesOf(project).get(model.path);
    if (!registries) return;
    // The manifests say what the project is; a file with no manifest around it, its own imports.
    const imported = [...model.imports.values()];
    const web = isWebService(project) || imported.some((q) => WEB_IMPORT.test(q));
    const worker = WORKERS.some((k) => project.stack[k]) || imported.some((q) => WORKER_IMPORT.test(q));
    if (!web && !worker) return;
    // Some module (not a test) ends a registry: a no-argument `remove()` on any name (an alias
    // counts), a session-like name closed, or sessions opened with `with Registry() as s:`.
    const releases = project.sessionReleases ?? [];
    // (`teardown:Name` repeats a `remove:Name` of a module with a request teardown hook.)
    const ends = releases.filter((r) => !r.startsWith('with:') && !r.startsWith('teardown:') && r !== TEARDOWN_COMMIT);
    const ended = (f: SessionFactoryInfo) => releases.includes(`with:${shortName(f)}`) || ends.includes(`remove:${shortName(f)}`);
    if (ends.length === 0) {
      for (const f of registries) if (!ended(f)) report(ctx, f, web);
      return;
    }
    // A project that ends its registries only by `remove()`, and only by their own names: a
    // registry it never removes is still left open (a read replica's beside the writer's). A
    // close of anything else (`g.pop("db").close()`, a session-like name) may end the others'
    // sessions: then no claim.
    if (!ends.every((r) => r.startsWith('remove:'))) return;
    const names = allRegistryNames(project);
    const removed = ends.map((r) => r.slice('remove:'.length));
    if (!removed.every((n) => names.has(n))) return;
    for (const f of registries) if (!ended(f)) report(ctx, f, web, removed);
  },
};

/**
 * A registry kept on a class, made by one of its methods: `cls._registry = scoped_session(...)`
 * in a classmethod, `Manager.registry = ...`, or `self.registry = ...` in `__init__`. The
 * class (or the one instance a service builds at startup) lives as long as the process, as a
 * module global does; each instance made per call would leak its own registry all the same.
 */
function classRegistry(f: SessionFactoryInfo): boolean {
  const fn = f.function!;
  const dot = fn.indexOf('.');
  if (dot < 0) return false;
  const cls = fn.slice(0, dot);
  const method = fn.slice(dot + 1);
  const m = /^(\w+)\.\w+$/.exec(f.name!);
  if (!m) return false;
  return m[1] === 'cls' || m[1] === cls || (m[1] === 'self' && method === '__init__');
}

/** The name a release names the registry by: `cls._registry.remove()` is recorded as `remove:_registry`. */
function shortName(f: SessionFactoryInfo): string {
  return f.name!.slice(f.name!.lastIndexOf('.') + 1);
}

function allRegistryNames(project: ProjectContext): Set<string> {
  const names = new Set<string>();
  for (const list of registriesOf(project).values()) for (const f of list) names.add(shortName(f));
  return names;
}

function report(ctx: FileRuleContext, f: SessionFactoryInfo, web: boolean, others: string[] = []): void {
  const line = ctx.model.source.split('\n')[f.line - 1] ?? '';
  const column = Math.max(1, line.indexOf(f.name!) + 1);
  ctx.report({
    location: { line: f.line, column, endLine: f.line, endColumn: column + f.name!.length },
    message: `\`${f.name}\` is ${/^[aeiou]/.test(f.kind) ? 'an' : 'a'} \`${f.kind}\` registry that no module of the project removes (no \`${f.name}.remove()\` at the end of a request or job): each ${f.kind.startsWith('async') ? 'task' : 'thread'} keeps its session, and any transaction a request began stays open with its pooled connection until that ${f.kind.startsWith('async') ? 'task' : 'thread'} is used again${others.length ? ` (the project removes ${others.map((n) => `\`${n}\``).join(', ')}, not this one)` : ''}`,
    severity: web ? 'high' : 'medium',
  });
}
