/**
 * PA408 shared_session
 *
 * What it does: finds one SQLAlchemy session object made at module level — `db = SessionLocal()`
 * where `SessionLocal` is a `sessionmaker` / `async_sessionmaker` of the project, or
 * `session = Session(engine)` — that functions use (in its own module, or imported). Reported at
 * the first function of a file that uses it.
 * Why is this bad? A `Session` is not safe for concurrent use: every request thread (every task,
 * for an `AsyncSession`) shares its one transaction and connection, so one request's rollback or
 * failed flush lands in the others', objects leak between requests, and under load the
 * connection is used by two callers at once. SQLAlchemy's documentation: one session per
 * request, per thread, per task.
 *
 * Silent: a `scoped_session` / `async_scoped_session` registry (a session per thread or task),
 * Flask-SQLAlchemy's `db.session`, a session made inside a function, and a function that binds
 * the name itself. Where the code runs decides the severity as for every finding: one-off
 * scripts and CLI commands are advisory.
 */
import type { ProjectContext, SharedSessionInfo } from '../../../discovery/context.js';
import { assignmentsTo, declaresGlobal, moduleNameOf, QualifiedIndex, resolveImported, sameQualified, variableRefs, type FileModel, type FunctionInfo } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { isWebService } from './semantics.js';

export const sharedSession: FileRule = {
  meta: {
    code: 'PA408',
    check: 'shared_session',
    family: 'lifecycle',
    severity: 'high',
    effort: 'S',
    summary: 'One session object made at import and shared by every caller',
    what: 'Finds a session made once and shared by every caller: at module level (`db = SessionLocal()` where `SessionLocal` is a `sessionmaker`/`async_sessionmaker` of the project, or `session = Session(engine)` / `AsyncSession(engine)`; also held by an object made at import, `repo = Repository(SessionLocal())`, or `cache = ItemCache()` whose class\'s `__init__` makes `self.session = SessionLocal()`) and used by functions of its own module or of modules that import it (`from app.db import db`, `import app.db as database; database.db.query(...)`), reported once per file at the first function that uses it; or as a parameter\'s default value (`def f(db: Session = SessionLocal())`: made once when the `def` runs), reported at the default. High in a web service (requests run concurrently), medium otherwise. Silent for a `scoped_session`/`async_scoped_session` registry and Flask-SQLAlchemy\'s `db.session` (a session per thread or task), a session made inside a function, and a function that binds the name itself (a local or parameter of that name).',
    why: 'A `Session` is not safe for concurrent use. One shared session means one transaction and one connection for every request thread (for an `AsyncSession`, every task): a rollback or failed flush in one request lands in the others, objects and pending changes leak between requests, and under load two callers use the connection at once.',
    bad: 'from fastapi import FastAPI\nfrom sqlalchemy import create_engine, select\nfrom sqlalchemy.orm import sessionmaker\n\nengine = create_engine("postgresql+psycopg://app@db/app", pool_pre_ping=True)\nSessionLocal = sessionmaker(engine)\ndb = SessionLocal()\napp = FastAPI()\n\n\n@app.get("/items")\ndef items():\n    return db.scalars(select(Item)).all()\n',
    good: 'from fastapi import Depends, FastAPI\nfrom sqlalchemy import create_engine, select\nfrom sqlalchemy.orm import Session, sessionmaker\n\nengine = create_engine("postgresql+psycopg://app@db/app", pool_pre_ping=True)\nSessionLocal = sessionmaker(engine)\napp = FastAPI()\n\n\ndef get_db():\n    with SessionLocal() as db:\n        yield db\n\n\n@app.get("/items")\ndef items(db: Session = Depends(get_db)):\n    return db.scalars(select(Item)).all()\n',
    fix: 'open a session per request or unit of work (`Depends(get_db)`, `with SessionLocal() as db:`), or use a `scoped_session` registry',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#is-the-session-thread-safe-is-asyncsession-safe-to-share-in-concurrent-tasks',
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#when-do-i-construct-a-session-when-do-i-commit-it-and-when-do-i-close-it',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile) return;
    sessionDefaults(ctx);
    const shared = project.sharedSessions;
    if (!shared?.length) return;
    const web = isWebService(project);
    reportClassAttributes(ctx, shared, web);
    const names = sharedNames(model, shared);
    if (!names.size) return;
    // Each function's first use of each name, once (the count of users comes from the same table).
    const uses = new Map<string, number[]>();
    for (const [written] of names) uses.set(written, model.functions.map((f) => (f.body ? firstUse(model, f, written) : -1)));
    const reported = new Set<SharedSessionInfo>();
    for (const fn of model.functions) {
      if (!fn.body) continue;
      for (const [written, s] of names) {
        if (reported.has(s)) continue;
        const use = uses.get(written)![fn.index]!;
        if (use < 0) continue;
        reported.add(s);
        const users = uses.get(written)!.filter((u) => u >= 0).length;
        const line = model.lineOf(use) + 1;
        const column = use - model.source.lastIndexOf('\n', use - 1);
        const short = s.name.slice(s.name.lastIndexOf('.') + 1);
        const async = s.kind === 'AsyncSession';
        ctx.report({
          location: { line, column, endLine: line, endColumn: column + written.length },
          message: `\`${written}\` ${s.holder ? `holds` : 'is'} one ${async ? '`AsyncSession`' : '`Session`'} made at import (\`${short} = ${s.holder ? (s.madeInInit ? `${s.holder}()\`, whose \`__init__\` calls \`${s.made.slice(s.made.lastIndexOf('.') + 1)}()` : `${s.holder}(${s.made.slice(s.made.lastIndexOf('.') + 1)}())`) : `${s.made.slice(s.made.lastIndexOf('.') + 1)}()`}\`, ${s.file}:${s.line}) and used by \`${fn.name}\`${users > 1 ? ` and ${users - 1} other function${users > 2 ? 's' : ''} of this file` : ''}: every ${async ? 'task' : 'request thread'} shares its transaction and connection, and a session is not safe for concurrent use`,
          severity: web ? 'high' : 'medium',
          function: fn.name,
        });
      }
    }
  },
};

/**
 * `class Service: db = SessionLocal()`: one session made when the class body runs at import,
 * shared by every instance. Reported once, at the first method of the class (in its own module)
 * that reads it as `self.db`, `cls.db` or `Service.db`.
 */
function reportClassAttributes(ctx: FileRuleContext, shared: readonly SharedSessionInfo[], web: boolean): void {
  const { model } = ctx;
  for (const s of shared) {
    if (!s.owner || s.file !== model.path) continue;
    const attr = s.name.slice(s.name.lastIndexOf('.') + 1);
    const read = new RegExp(`(?<![\\w.])(?:self|cls|${s.owner})\\s*\\.\\s*${attr}\\b(?!\\s*=[^=])`);
    for (const fn of model.functions) {
      if (fn.className !== s.owner || !fn.body) continue;
      const m = read.exec(fn.body.text);
      if (!m) continue;
      const at = fn.body.startIndex + m.index;
      const line = model.lineOf(at) + 1;
      const column = at - model.source.lastIndexOf('\n', at - 1);
      const async = s.kind === 'AsyncSession';
      ctx.report({
        location: { line, column, endLine: line, endColumn: column + m[0].length },
        message: `\`${m[0].replace(/\s+/g, '')}\` is one ${async ? '\`AsyncSession\`' : '\`Session\`'} made when the class body of \`${s.owner}\` runs at import (\`${attr} = ${s.made.slice(s.made.lastIndexOf('.') + 1)}()\`, line ${s.line}), shared by every instance: every ${async ? 'task' : 'request thread'} shares its transaction and connection, and a session is not safe for concurrent use`,
        severity: web ? 'high' : 'medium',
        function: fn.name,
      });
      break;
    }
  }
}

/** How the file writes each shared session it can see: its own module-level name, an imported name, `module.name` through an imported module. */
function sharedNames(model: FileModel, shared: readonly SharedSessionInfo[]): Map<string, SharedSessionInfo> {
  const out = new Map<string, SharedSessionInfo>();
  for (const s of shared) {
    // A class attribute is read through the class or its instances (see `classAttributeUses`).
    if (s.owner) continue;
    const dot = s.name.lastIndexOf('.');
    const module = s.name.slice(0, dot);
    const short = s.name.slice(dot + 1);
    if (module === model.moduleName && model.moduleDefs.has(short)) out.set(short, s);
    for (const [local, q] of model.imports) {
      // Imports may be written from a package root below the scanned root (`app.db` for `backend/app/db.py`).
      // A suffix match needs two segments on both sides: a top-level `db` module is not `app.db`
      // (a Flask-SQLAlchemy object imported from the app package).
      if (sameByTwo(q, s.name)) out.set(local, s);
      else if (sameByTwo(q, module)) out.set(`${local}.${short}`, s);
    }
  }
  return out;
}

function sameByTwo(a: string, b: string): boolean {
  return a === b || (sameQualified(a, b) && a.includes('.') && b.includes('.'));
}

/**
 * Offset of the first read of `written` in the function's own body (not a nested def's), or -1;
 * -1 too when the function binds the name itself (a parameter or local of that name).
 */
function firstUse(model: FileModel, fn: FunctionInfo, written: string): number {
  const body = fn.body!;
  const text = body.text;
  const head = written.split('.')[0]!;
  // Bound by the function or by a function it is nested in (a closure's variable).
  for (let i = fn.index; i >= 0; i = model.functions[i]!.parent) {
    const scope = model.functions[i]!;
    if (scope.params.some((p) => p.name === head)) return -1;
    if (!written.includes('.') && scope.body && bindsLocally(model, scope, head)) return -1;
  }
  if (!text.includes(written)) return -1;
  // The name as the parser reads it (not in a string, a comment or an attribute name);
  // `database.raw`: the module name as the object of that attribute.
  for (const id of variableRefs(body, head)) {
    if (written.includes('.') && id.parent?.text.replace(/\s+/g, '') !== written) continue;
    if (insideNestedDef(model, fn, id.startIndex)) continue;
    return id.startIndex;
  }
  return -1;
}

function bindsLocally(model: FileModel, fn: FunctionInfo, name: string): boolean {
  if (declaresGlobal(fn, name)) return false;
  return assignmentsTo(model, name).some((a) => a.functionIndex === fn.index && a.target === name)
    || model.unpackedAssignments.some((u) => u.functionIndex === fn.index && u.names.includes(name))
    || new RegExp(`\\b(for|as)\\s+${name}\\b|\\b${name}\\s*:=`).test(fn.body!.text);
}

function insideNestedDef(model: FileModel, fn: FunctionInfo, at: number): boolean {
  return model.functions.some((f) => f.index !== fn.index && f.start > fn.start && f.end <= fn.end && at >= f.start && at < f.end);
}


/**
 * `def f(db: Session = SessionLocal()):` — a default value is made once, when the `def` runs at
 * import: every call that leaves it out shares that one session.
 */
function sessionDefaults(ctx: FileRuleContext): void {
  const { model, project } = ctx;
  if (!model.source.includes('Session') && !model.source.includes('()')) return;
  const qualified = factoriesByLast(project);
  let web: boolean | undefined;
  for (const fn of model.functions) {
    for (const p of fn.params) {
      if (!p.defaultText?.endsWith(')')) continue;
      const m = /^([A-Za-z_][\w.]*)\((.*)\)$/s.exec(p.defaultText.trim());
      const q = m ? resolveImported(model, m[1]!) : null;
      // `SessionLocal()` of a project factory, or `Session(engine)` / `AsyncSession(engine)` itself.
      const direct = q && /^sqlalchemy\.(orm|ext\.asyncio)(\.session)?\.(Session|AsyncSession)$/.test(q) ? { name: q, async: q.endsWith('AsyncSession') } : undefined;
      const factory = direct ?? (q && !m![2]!.trim() ? qualified.get(q) : undefined);
      if (!factory) continue;
      // The default after this parameter's own name (two parameters may share a default).
      const named = new RegExp(`(?<![\\w.])${p.name}\\s*(?::[^=]*)?=\\s*`, 'g');
      named.lastIndex = fn.start;
      const found = named.exec(model.source);
      const at = found ? model.source.indexOf(p.defaultText!.trim(), found.index) : -1;
      if (at < 0) continue;
      const line = model.lineOf(at) + 1;
      const column = at - model.source.lastIndexOf('\n', at - 1);
      ctx.report({
        location: { line, column, endLine: line, endColumn: column + p.defaultText!.trim().length },
        message: `\`${p.name}\` defaults to \`${p.defaultText!.trim()}\`, made once when \`${fn.name}\` is defined: every call that leaves it out shares that one ${factory.async ? '`AsyncSession`' : '`Session`'}, and a session is not safe for concurrent use; default to \`None\` and open one per call, or inject it (\`Depends(get_db)\`)`,
        severity: (web ??= isWebService(project)) ? 'high' : 'medium',
        function: fn.name,
      });
    }
  }
}

const factoryMemo = new WeakMap<ProjectContext, QualifiedIndex<{ name: string; async: boolean }>>();

/** The project's session factories, indexed once per project, not per file. */
function factoriesByLast(project: ProjectContext): QualifiedIndex<{ name: string; async: boolean }> {
  let out = factoryMemo.get(project);
  if (!out) {
    const factories = project.sessionFactories
      .filter((f) => f.name && (f.kind === 'sessionmaker' || f.kind === 'async_sessionmaker'))
      .map((f) => ({ name: `${moduleNameOf(f.file)}.${f.name}`, async: f.kind === 'async_sessionmaker' || /AsyncSession$/.test(f.class ?? '') }));
    factoryMemo.set(project, (out = new QualifiedIndex(factories, (f) => f.name)));
  }
  return out;
}
