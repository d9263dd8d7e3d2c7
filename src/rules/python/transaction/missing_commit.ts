/**
 * PA208 missing_commit
 *
 * What it does: finds a write on a session or connection the function itself opens — an ORM
 * session (`Session()`, a `sessionmaker` / `async_sessionmaker` factory of the project), a
 * DB-API connection (`psycopg2`, `psycopg`, `pymssql`, `MySQLdb`, `pymysql`, `mysql.connector`,
 * `sqlite3`: autocommit off by default), or, on SQLAlchemy 2.x, `engine.connect()` — when no
 * commit on that handle follows the write before the function is done with it.
 * Why is this bad? Closing a session or connection (or dropping it) rolls its open transaction
 * back: `add`, `delete`, an UPDATE, a changed attribute of a loaded row are all discarded, with
 * no error, and the code looks as if it saved.
 *
 * The request scope (repo phase): a request handler's write through a session injected with
 * `Depends(provider)`, when neither the handler, nor anything it calls, nor the provider after its
 * `yield` commits: the provider closes the session at the end of the request.
 *
 * Flask views (repo phase): a write through Flask-SQLAlchemy's `db.session` in a view (`add`, a
 * changed attribute of a row from `db.get_or_404` or `Model.query`) that nothing commits — not the
 * view, nothing it calls, no project function of a name it calls, no method of its class or a base
 * (a dispatcher that commits after the view), no project decorator that commits, no signal receiver
 * that commits when the view sends a signal, no `after_request` /
 * `teardown_request` / `teardown_appcontext` hook, no `SQLALCHEMY_COMMIT_ON_TEARDOWN`: the session is
 * removed when the request ends, which rolls the write back.
 *
 * Repository libraries (repo phase, see libraryWrites.ts): advanced-alchemy's repository and
 * service writes only flush unless `auto_commit=True`; reported in a block over a standalone
 * session that nothing commits (a job), and when an HTTP error is raised right after the write
 * (the request's session is committed on success only): high there, medium in a job.
 *
 * Severity: high in a request handler (every request loses its write), medium elsewhere.
 * Silent look-alikes: a session handed to anything (a helper, a repository, returned, yielded by
 * a provider that commits after `yield`, stored on `self`): its owner may commit; a session the
 * function receives (the owner commits); `with Session.begin()`, `with session.begin():`,
 * `engine.begin()`; `with conn:` on a DB-API connection (psycopg2 and sqlite3 commit on exit);
 * `autocommit` / `isolation_level` settings in the function, on the factory or on the engine; a
 * write followed by `rollback()` (a dry run); module-level and scoped sessions outside a Flask view,
 * whose commit belongs to the request or the framework.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import type { Effect } from '../../../analysis/summary.js';
import { callGraphOf, siteCalls, type CallGraph, type FnRef, type Reach } from '../../../analysis/callgraph.js';
import { UNTYPED } from '../../../analysis/objects.js';
import type { SummaryCall } from '../../../analysis/summary.js';
import { libraryReach } from './libraryReach.js';
import { COMMITS_ALWAYS, PROVIDES_UNCOMMITTED, TXN_RAISE_AFTER, TXN_SCOPE_CALL, TXN_SCOPE_OPEN, type ScopeCall, type ScopeOpen } from './libraryWrites.js';
import type { CallInfo, FileModel } from '../../../semantic/model.js';
import { assignmentsTo, callAt, effectiveRole, isFlaskHandle, moduleNameOf, resolveImported } from '../../../semantic/model.js';
import { dependencyAliasOf } from '../../../semantic/dependencyAliases.js';
import { fileClasses } from '../../../semantic/classes.js';
import type { ProjectContext, SessionHelperInfo, SessionProviderInfo } from '../../../discovery/context.js';
import { TEARDOWN_COMMIT } from '../../../discovery/discover.js';
import { typeString } from '../../../semantic/valueTypes.js';
import { factoryBehind, projectSessionHelpers } from '../../../semantic/sessionFactories.js';
import { engineGetterCall, engineGetterNamed } from '../../../semantic/engineGetters.js';
import { classifyDbCall, rowsSource, statementInfo } from '../query/dbCalls.js';
import { returnsOf } from '../query/selfRows.js';
import { lastAssignment } from '../query/semantics.js';
import { callArgs, callsOf, objectSource, receiverKey, unwrap, within } from './semantics.js';
import { codeText } from '../../../semantic/codeText.js';

type HandleKind = 'session' | 'connection' | 'dbapi';

/** A session or connection a function opens and keeps to itself. */
interface Owned {
  name: string;
  kind: HandleKind;
  /** `with Session() as s:` (closed at the end of the block) or `s = Session()`. */
  inWith: boolean;
  line: number;
  fnIndex: number;
  /** Flask-SQLAlchemy's extension object (`db`) when the handle is its `db.session`. */
  flask?: string;
  /** Count only calls (`add`, DML), not attribute changes of loaded rows. */
  callsOnly?: boolean;
}

const SESSION_CTOR = /^(sqlalchemy\.orm(\.session)?\.(sessionmaker\(\)|Session)|sqlmodel(\.orm\.session)?\.Session|sqlalchemy\.ext\.asyncio(\.session)?\.(async_sessionmaker\(\)|AsyncSession)|sqlmodel\.ext\.asyncio\.session\.AsyncSession)\(\)$/;
const DBAPI_CONNECT = /^(psycopg2|psycopg|pymysql|MySQLdb|mysql\.connector|sqlite3|pymssql|cx_Oracle|oracledb)(\.\w+)*\.connect\(\)$/;
/** `engine.connect()` on a SQLAlchemy engine (sync or async). */
const ENGINE_CONNECT = /^sqlalchemy(\.ext\.asyncio)?\.(create_engine|create_async_engine|engine\.create_engine)\(\)\.connect\(\)$/;
const SESSION_WRITES = new Set(['add', 'add_all', 'delete', 'merge', 'bulk_save_objects', 'bulk_insert_mappings', 'bulk_update_mappings']);
/** Calls that load a row a later attribute change is flushed from. */
const LOADS_ROW = /\.(get|get_one|first|one|one_or_none|scalar|scalar_one|scalar_one_or_none|merge|get_or_404|first_or_404|one_or_404)\s*\(/;
const SETTINGS = /autocommit|AUTOCOMMIT|isolation_level/;

export const missingCommit: FileRule & RepoRule = {
  meta: {
    code: 'PA208',
    check: 'missing_commit',
    family: 'transaction',
    severity: 'medium',
    effort: 'S',
    summary: 'A write on a session or connection the function opens, never committed before it is closed',
    what: 'Finds a write — `add`/`delete`/`merge`, an INSERT/UPDATE/DELETE, a changed attribute of a row loaded through it — on a session or connection the function opens itself (`Session()`, a `sessionmaker` factory, `async with factory() as s` — also the project\'s module-level factory reached under another name: a local alias, `maker = SessionLocal; with maker() as s:`, an attribute a class keeps it in, `self.maker = async_sessionmaker(...)` in `__init__` or `maker = SessionLocal` in the body of the class or of a subclass in another module, and a local from a one-line getter returning that attribute, `maker = self.get_maker()`; not a factory handed in as a parameter, nor an attribute some class of the project binds to anything else — `psycopg2.connect()` and other DB-API drivers whose autocommit is off, `engine.connect()` on SQLAlchemy 2.x) when no `commit()` on that handle follows the write. When the function only hands the session to functions of the repo (`with Maker() as s: _save(s, msg)`), never writing or committing through it itself, the write a helper makes through it (two calls deep at most) is reported at the call, unless anything the function reaches may commit. Silent when the handle is handed on to something else (a repository, a provider that yields it and commits after `yield`), for a session over a connection in a transaction another owner ends (`with engine.begin() as conn: s = Session(bind=conn)`, the caller\'s connection passed in, Alembic\'s `op.get_bind()`, a session\'s `.connection()`: the session joins that transaction), for `with x.begin():` blocks, `with factory() as s:` where the factory makes sessions of the project\'s own class (`sessionmaker(class_=ContextSession)`, whose `__exit__` may commit), `with conn:` on a DB-API connection, autocommit settings, and sessions the function receives or shares (scoped sessions; Flask-SQLAlchemy\'s outside a view), whose owner commits. In a Flask view, a write through Flask-SQLAlchemy\'s `db.session` (`db.session.add(...)`, a changed attribute of a row from `db.get_or_404` or `Model.query`) is reported when nothing commits it: not the view, nothing it calls (nor any project function of a name it calls), no method of its class or a base class (a `dispatch_request` that commits after the view), no decorator of the project that commits (a check-only decorator such as `@permission_required(...)` does not count), no blinker receiver that commits when the view sends a signal, no `after_request`/`teardown_request`/`teardown_appcontext` hook, and no `SQLALCHEMY_COMMIT_ON_TEARDOWN`: Flask-SQLAlchemy removes the session when the request ends, and the removal rolls the write back. In a request handler, a write through a session injected with `Depends(provider)` is reported when nothing commits it: not the handler, not anything it calls, not the provider after its `yield`; also a write made by a function the handler hands that session to (`mark_disputed(session, invoice_id)`, by position or keyword: an `add`, a statement or a changed attribute of a row loaded through its session parameter, not committed there), reported at the handler\'s call when the provider is a generator that never commits; also a change the handler makes to a row a helper loaded through that session (`b = find_build(db, build_id); b.status = x`, also each row of a list it returns: `for b in open_builds(db): b.status = x`, and a method of a repository object made with the session: `BuildRepo(db).get(i)`, every return of the helper a row its own query loaded — not a view or schema built from one, `Out.from_orm(db.get(...))`), under the same conditions; and when the provider commits after its `yield` but the handler raises an HTTP error right after the write (`user.failed_logins += 1` then `raise HTTPException(401)`, the write also under a plain `if` on the way): the exception is thrown into the provider at the `yield`, so its commit never runs. Repository libraries that flush rather than commit (advanced-alchemy\'s repositories and services: `create`, `update`, `delete`, `*_many`, `upsert` without `auto_commit=True`) are followed too: a write through them in a block over a session opened outside any request (`config.get_session()`, `Service.new(config=...)`, or a provider of the project that wraps them) that nothing commits, and a write followed on the same path by a raised HTTP error (the request\'s session is committed only after a successful response). Silent with `auto_commit=True`, an explicit `commit()`, a session handed in by the caller, and a request that ends with a 2xx.',
    why: 'Closing a session or connection — or letting it go at the end of the function — rolls its open transaction back. The writes are discarded without an error: the code reads as if it saved, tests that share the session pass, and the rows never reach the database.',
    bad:
      'from sqlalchemy import create_engine\nfrom sqlalchemy.orm import sessionmaker\n\nfrom app.models import AuditEvent\n\n'
      + 'engine = create_engine("postgresql+psycopg2://app@db/app")\nSessionLocal = sessionmaker(bind=engine)\n\n\n'
      + 'def record_login(user_id: int) -> None:\n    with SessionLocal() as session:\n        session.add(AuditEvent(user_id=user_id, kind="login"))\n',
    good:
      'from sqlalchemy import create_engine\nfrom sqlalchemy.orm import sessionmaker\n\nfrom app.models import AuditEvent\n\n'
      + 'engine = create_engine("postgresql+psycopg2://app@db/app")\nSessionLocal = sessionmaker(bind=engine)\n\n\n'
      + 'def record_login(user_id: int) -> None:\n    with SessionLocal.begin() as session:\n        session.add(AuditEvent(user_id=user_id, kind="login"))\n',
    fix: 'commit before the session closes: `with SessionLocal.begin() as session:` (commits on success, rolls back on error), `session.commit()`, or `with conn:` / `conn.commit()` for a DB-API connection',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#opening-and-closing-a-session',
      'https://docs.sqlalchemy.org/en/20/core/connections.html#commit-as-you-go',
      'https://www.psycopg.org/docs/usage.html#transactions-control',
      'https://peps.python.org/pep-0249/#commit',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    const engineAutocommit = engineAutocommits(project);
    for (const owned of ownedHandles(model, project)) {
      if (engineAutocommit && owned.kind !== 'dbapi') continue;
      const fn = model.functions[owned.fnIndex]!;
      if (SETTINGS.test(fn.node.text)) continue;
      const cursors = cursorsOf(model, owned);
      const names = [owned.name, ...cursors];
      if (names.some((n) => escapes(fn.node, n))) continue;
      const write = uncommittedWrite(model, owned, names);
      if (!write) continue;
      const closes = owned.inWith ? 'the `with` block closes it' : 'the function is done with it';
      ctx.report({
        node: write.node,
        message: `\`${write.what}\` writes through \`${owned.name}\`, ${describe(owned)} opened on line ${owned.line}, and no commit follows before ${closes}: the transaction is rolled back and the write is lost`,
        severity: effectiveRole(model, owned.fnIndex) === 'handler' ? 'high' : 'medium',
      });
    }
  },
  /**
   * The request scope: a handler writes through a session its dependency provides
   * (`db: Session = Depends(get_db)`), and neither the provider (after its `yield`) nor the
   * handler nor anything it calls ever commits: the provider closes the session, and the
   * write is rolled back after the response said it succeeded.
   */
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    lostLibraryWrites(ctx, graph);
    // An engine in AUTOCOMMIT mode commits every statement: which engine a provider's session
    // binds is not followed, so any such engine in the project leaves the request scope alone.
    if (ctx.project.engines.some((e) => /^autocommit$/i.test(String(e.kwargs['isolation_level'] ?? '')))) return;
    lostFlaskWrites(ctx, graph);
    lostHelperWrites(ctx, graph);
    for (const { ref, file, fn, site, call, to } of siteCalls(graph, REQUEST_HANDOFFS)) {
      if (call.receiverType === UNTYPED) continue;
      const s = JSON.parse(site.what) as RequestHandOff;
      const through = writeThrough(graph, to, s.position, s.keyword);
      if (!through) continue;
      const write = through.effect;
      // A provider that yields the session and closes it after the request (not a stub, nor one
      // returning a session that is then never closed: another defect).
      const provider = graph.resolveQualified(s.provider);
      if (!provider || !graph.function(provider).isGenerator || graph.reaches(provider, MAY_COMMIT_EFFECT, 'any') || graph.reaches(ref, MAY_COMMIT_EFFECT, 'any')) continue;
      const providerName = graph.function(provider).name;
      const what = write.what.split(':').slice(2).join(':');
      const callee = graph.function(through.fn);
      ctx.report({
        path: file.path,
        location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
        message: `\`${call.calleeText}()\` writes through \`${s.param}\` (\`${what}\`, line ${write.line} of ${graph.fileOf(through.fn).path}, in \`${callee.qualifiedName}\`), the request's session from \`Depends(${providerName})\`, and nothing commits it: not \`${callee.name}\`, not this handler, nothing it calls, nor \`${providerName}\` after its \`yield\`; the session is closed at the end of the request and the write is rolled back`,
        severity: 'high',
        function: fn.name,
        chain: [{ path: file.path, line: call.line, column: call.column, function: fn.name, call: call.calleeText }],
      });
    }
    for (const ref of graph.functionsWithEffects(REQUEST_ROW_WRITES)) {
      const file = graph.fileOf(ref);
      if (file.isTestFile || graph.reaches(ref, MAY_COMMIT_EFFECT, 'any')) continue;
      for (const e of graph.ownEffects(ref)) {
        if (e.kind !== REQUEST_ROW_WRITE) continue;
        const site = JSON.parse(e.what) as RequestRowWrite;
        const hit = graph.resolvedCallAt(ref.file, e.line, e.column);
        const to = hit && hit.call.receiverType !== UNTYPED ? hit.to : null;
        // The helper returns a row it loaded (a query's or a key lookup's), not a schema or a
        // value built from one (`Out.from_orm(db.get(...))`, a dataclass): setting those writes nothing.
        if (!to || !graph.ownEffects(to).some((x) => x.kind === RETURNS_LOADED)) continue;
        const provider = graph.resolveQualified(site.provider);
        if (!provider || !graph.function(provider).isGenerator || graph.reaches(provider, MAY_COMMIT_EFFECT, 'any')) continue;
        const providerName = graph.function(provider).name;
        ctx.report({
          path: file.path,
          location: { line: site.line, column: site.column, endLine: site.endLine, endColumn: site.endColumn },
          message: `\`${site.what}\` changes a row \`${site.helper}()\` loaded through \`${site.param}\`, the request's session from \`Depends(${providerName})\`, and nothing commits it: not this handler, nothing it calls, nor \`${providerName}\` after its \`yield\`; the session is closed at the end of the request and the change is rolled back`,
          severity: 'high',
          function: graph.function(ref).name,
        });
      }
    }
    for (const ref of graph.functionsWithEffects(REQUEST_WRITES)) {
      const file = graph.fileOf(ref);
      const fn = graph.function(ref);
      for (const e of graph.ownEffects(ref)) {
        if (e.kind !== REQUEST_WRITE) continue;
        const site = JSON.parse(e.what) as RequestWrite;
        const provider = graph.resolveQualified(site.provider);
        // A provider the graph cannot see may commit; one that commits (after `yield`, or
        // through a helper) owns the commit; a handler that reaches any commit may commit it.
        if (!provider || graph.reaches(provider, MAY_COMMIT_EFFECT, 'any') || graph.reaches(ref, MAY_COMMIT_EFFECT, 'any')) continue;
        const providerName = graph.function(provider).name;
        ctx.report({
          path: file.path,
          location: { line: e.line, column: e.column, endLine: site.endLine, endColumn: site.endColumn },
          message: `\`${site.what}\` writes through \`${site.param}\`, the request's session from \`Depends(${providerName})\`, and nothing commits it: not this handler, nothing it calls, nor \`${providerName}\` after its \`yield\`; the session is closed at the end of the request and the write is rolled back`,
          severity: 'high',
          function: fn.name,
        });
      }
    }
  },
};

/** Effect kinds this rule reads in the repo phase (produced by `collectTransactionEffects`). */
export const REQUEST_WRITE = 'request_write';
export const MAY_COMMIT_EFFECT = 'commit_may';
const REQUEST_WRITES: ReadonlySet<string> = new Set([REQUEST_WRITE]);

/** A handler's uncommitted write through an injected session (`what` of a `request_write` effect). */
interface RequestWrite {
  param: string;
  /** The provider's qualified name: `app.deps.get_db`. */
  provider: string;
  what: string;
  endLine: number;
  endColumn: number;
}

/**
 * The file half of the request scope: in a request handler, the first write through a session
 * parameter injected with `Depends(provider)` that no commit in the handler follows. The session
 * may be handed to helpers (the repo phase asks whether any of them commits), but not stored,
 * returned or yielded.
 */
export function requestWrites(model: FileModel): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  model.functions.forEach((fn, fnIndex) => {
    if (fn.role !== 'handler') return;
    let settingsChecked = false;
    for (const p of fn.params) {
      const m = /^Depends\(\s*([A-Za-z_][\w.]*)\s*\)$/.exec(p.defaultText?.replace(/\s+/g, '') ?? '');
      // `session: SessionDep`, an `Annotated[Session, Depends(get_db)]` alias of the project.
      const alias = m || p.defaultText ? null : dependencyAliasOf(model, p.annotation);
      if (!(m && /(^|\.)(Session|AsyncSession)$/.test(p.annotation ?? '')) && !(alias && /(^|\.)(Session|AsyncSession)$/.test(alias.type))) continue;
      // The handler's text only for a handler with an injected session (most have none).
      if (!settingsChecked) {
        if (SETTINGS.test(fn.node.text)) return;
        settingsChecked = true;
      }
      const provider = m ? resolveImported(model, m[1]!) : alias!.provider;
      if (!provider || escapes(fn.node, p.name, true)) continue;
      const owned: Owned = { name: p.name, kind: 'session', inWith: false, line: fn.startLine, fnIndex };
      const write = uncommittedWrite(model, owned, [p.name]);
      if (!write) {
        // A row a helper loaded through it (`b = find_build(db, id)`), then changed here: the repo
        // phase asks whether the helper reads through the session.
        const rowWrite = helperRowWrite(model, fnIndex, p.name);
        if (rowWrite) {
          const site: RequestRowWrite = { param: p.name, provider, what: rowWrite.what, helper: rowWrite.call.calleeText, line: rowWrite.node.startPosition.row + 1, column: rowWrite.node.startPosition.column + 1, endLine: rowWrite.node.endPosition.row + 1, endColumn: rowWrite.node.endPosition.column + 1 };
          out[fnIndex]!.push({ kind: REQUEST_ROW_WRITE, what: JSON.stringify(site), line: rowWrite.call.line, column: rowWrite.call.column });
        }
        // Handed to a function that may write through it (`await rename_product(session, ...)`): the repo phase looks.
        for (const c of callsOf(model, fnIndex)) {
          if (c.functionIndex !== fnIndex || c.method === 'commit' || receiverKey(c) === p.name) continue;
          const handed = handedAt(c, p.name);
          if (!handed) continue;
          const site: RequestHandOff = { param: p.name, provider, ...handed };
          out[fnIndex]!.push({ kind: REQUEST_HANDOFF, what: JSON.stringify(site), line: c.line, column: c.column });
        }
        continue;
      }
      const site: RequestWrite = { param: p.name, provider, what: write.what, endLine: write.node.endPosition.row + 1, endColumn: write.node.endPosition.column + 1 };
      out[fnIndex]!.push({ kind: REQUEST_WRITE, what: JSON.stringify(site), line: write.node.startPosition.row + 1, column: write.node.startPosition.column + 1 });
    }
  });
  return out;
}


/**
 * Own effect at the call of a helper handed the request's session whose returned object the
 * handler then changes (`b = find_build(db, id); b.status = x`), when the handler commits that
 * session nowhere (`what` = JSON {@link RequestRowWrite}). The repo phase reports it when the
 * helper reads through the session (the object is a row it loaded) and nothing commits.
 */
export const REQUEST_ROW_WRITE = 'request_row_write';
const REQUEST_ROW_WRITES: ReadonlySet<string> = new Set([REQUEST_ROW_WRITE]);
interface RequestRowWrite {
  param: string;
  provider: string;
  /** The assignment, for the message: `b.status = …`. */
  what: string;
  helper: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
}

/**
 * The first attribute change (`obj.attr = …`, `obj.attr += …`) in the function on an object bound
 * from a call handed `session` (by position or keyword, awaited or not), when the function calls
 * no `commit()` on that session: the change and the helper's call.
 */
function helperRowWrite(model: FileModel, fnIndex: number, session: string): { node: SyntaxNode; what: string; call: CallInfo } | null {
  const calls = callsOf(model, fnIndex).filter((c) => c.functionIndex === fnIndex);
  if (calls.some((c) => receiverKey(c) === session && (c.method === 'commit' || c.method === 'begin'))) return null;
  let best: { node: SyntaxNode; what: string; call: CallInfo } | null = null;
  for (const a of [...model.assignments, ...model.augAssignments]) {
    if (a.functionIndex !== fnIndex || (best && a.node.startIndex > best.node.startIndex)) continue;
    const m = /^([A-Za-z_]\w*)\.([a-z]\w*)$/.exec(a.target);
    if (!m || m[1] === 'self' || m[1] === session) continue;
    // The object itself, or an item of a loop over what the call returned (`for d in list_dogs(db): d.x = …`).
    const source = objectSource(model, m[1]!, fnIndex, a.line, a.loops, true);
    if (!source) continue;
    let v = unwrap(source.node);
    // `find_dog(db, i).first()`: the handler runs the query the helper built.
    const fnNode = v?.type === 'call' ? v.childForFieldName('function') : null;
    const chained = fnNode?.type === 'attribute' && /^(first|one|one_or_none|scalar|all)$/.test(fnNode.childForFieldName('attribute')?.text ?? '') ? unwrap(fnNode.childForFieldName('object')) : null;
    if (chained?.type === 'call') v = chained;
    const call = v?.type === 'call' ? callAt(model, v) : undefined;
    if (!call || call.functionIndex !== fnIndex || receiverKey(call) === session) continue;
    // The session handed to the call, or to the object it is a method of (`repo = Repo(db);
    // d = repo.get(i)`, `Repo(db).get(i)`): a repository that keeps it.
    if (!handedAt(call, session) && !heldBy(model, call, session, fnIndex)) continue;
    best = { node: a.node, what: `${a.target} = …`, call };
  }
  return best;
}

/** Is `call` a method of an object made by a call handed `session` (`Repo(db).get(i)`, or through a local bound once to one)? */
function heldBy(model: FileModel, call: CallInfo, session: string, fnIndex: number): boolean {
  let receiver = call.hasReceiver ? unwrap(call.receiver) : null;
  if (receiver?.type === 'identifier') {
    const bound = assignmentsTo(model, receiver.text).filter((x) => x.functionIndex === fnIndex);
    receiver = bound.length === 1 && bound[0]!.line < call.line ? unwrap(bound[0]!.value) : null;
  }
  const maker = receiver?.type === 'call' ? callAt(model, receiver) : undefined;
  return !!maker && handedAt(maker, session) !== null;
}

/** Site fact at a handler's call handed its injected session (`what` = JSON {@link RequestHandOff}). */
export const REQUEST_HANDOFF = 'request_handoff';
const REQUEST_HANDOFFS: ReadonlySet<string> = new Set([REQUEST_HANDOFF]);
interface RequestHandOff {
  param: string;
  provider: string;
  /** The argument's position, or -1 when handed by keyword. */
  position: number;
  keyword: string | null;
}

/** Own effect: the function writes through a session parameter and does not commit it (`what` = `position:name:write`, position after self/cls). */
export const PARAM_WRITE = 'param_write';
/** Site fact: a call handing a session parameter on, not committed after it (`what` = `position:name:argPosition:keyword`). */
export const PARAM_HANDOFF = 'param_handoff';

/**
 * The write a function makes through the session given at `position` (or by `keyword`), itself
 * or in a function it hands that session on to (two more levels), with the function that makes it.
 */
function writeThrough(graph: CallGraph, ref: FnRef, position: number, keyword: string | null, depth = 0): { effect: Effect; fn: FnRef } | null {
  for (const e of graph.ownEffects(ref)) {
    const [pos = '', name = '', ...rest] = e.what.split(':');
    if (keyword ? name !== keyword : Number(pos) !== position) continue;
    if (e.kind === PARAM_WRITE) return { effect: e, fn: ref };
    if (e.kind !== PARAM_HANDOFF || depth >= 2) continue;
    const [argAt = '-1', kw = ''] = rest;
    const edge = graph.callees(ref).find((x) => x.call.line === e.line && x.call.column === e.column && !x.weak);
    const found = edge ? writeThrough(graph, edge.to, Number(argAt), kw || null, depth + 1) : null;
    if (found) return found;
  }
  return null;
}

const SESSION_PARAM = /^(s|session|db|db_session|dbsession|sess|async_session|\w+_session|\w+_db)$/;

/** Own effect: every value the function returns is a row a query of its own loaded (`return db.get(M, i)`, `return q.first()`). */
export const RETURNS_LOADED = 'returns_loaded';
/** Own effect: every value the function returns is an object it added to a session or changed (`s.add(run); s.flush(); return run`, `d.name = x; return d`). */
export const RETURNS_ADDED = 'returns_added';

const READ_WORDS = /\b(?:get|get_or_404|query|execute|scalars?|scalar_one(?:_or_none)?|first|one(?:_or_none)?|all|select|filter(?:_by)?|paginate)\b/;

/** {@link RETURNS_LOADED} and {@link RETURNS_ADDED} of a file's functions. */
export function collectReturnFacts(model: FileModel): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile || !model.source.includes('return')) return out;
  // Per function, the names it adds to a session (`s.add(run)`) or changes (`d.name = x`): one pass each.
  const written = new Map<number, Set<string>>();
  const mark = (fn: number, name: string) => (written.get(fn) ?? written.set(fn, new Set()).get(fn)!).add(name);
  for (const c of model.calls) {
    if (c.functionIndex < 0 || !/^(add|merge)$/.test(c.method)) continue;
    const first = unwrap(callArgs(c.node).positional[0] ?? null);
    if (first?.type === 'identifier') mark(c.functionIndex, first.text);
  }
  for (const a of [...model.assignments, ...model.augAssignments]) {
    const m = a.functionIndex >= 0 ? /^([A-Za-z_]\w*)\.[a-z]\w*$/.exec(a.target) : null;
    if (m && m[1] !== 'self') mark(a.functionIndex, m[1]!);
  }
  model.functions.forEach((fn, fnIndex) => {
    if (!fn.body || fn.isGenerator) return;
    // Only a function handed a session (a parameter named or typed as one) or a method of an
    // object that keeps one (`self.session`, `self.db`) is asked about: those are the hand-offs.
    const text = model.source.slice(fn.start, fn.node.endIndex);
    if (!text.includes('return')) return;
    const handed = fn.params.some((p) => SESSION_PARAM.test(p.name) || /(^|\.)(Session|AsyncSession)\b/.test(p.annotation ?? ''));
    if (!handed && !(fn.className && /\bself\.\w*(?:session|db)\b/i.test(text))) return;
    const returns = returnsOf(fn).map((r) => r.namedChild(0)).filter((v): v is SyntaxNode => !!v && v.type !== 'none');
    if (!returns.length) return;
    const line = returns[0]!.startPosition.row + 1;
    const column = returns[0]!.startPosition.column + 1;
    if (returns.every((v) => {
      const node = unwrap(v);
      if (!node) return false;
      // The words of a read, in the value or in what the name was bound to: else no query made it.
      const text = node.type === 'identifier' ? lastAssignment(model, node.text, fnIndex, node.startPosition.row + 1)?.value?.text ?? '' : node.text;
      if (!READ_WORDS.test(text)) return false;
      const rows = rowsSource(model, node, fnIndex, node.startPosition.row + 1);
      // Through the session it was handed (a parameter) or keeps (`self.db`), not one it opened.
      const through = rows?.call.dottedReceiver?.split('.') ?? [];
      return !!rows && (through[0] === 'self' || fn.params.some((p) => p.name === through[0]));
    })) out[fnIndex]!.push({ kind: RETURNS_LOADED, what: '', line, column });
    const added = written.get(fnIndex);
    if (added && returns.every((v) => v.type === 'identifier' && added.has(v.text))) out[fnIndex]!.push({ kind: RETURNS_ADDED, what: '', line, column });
  });
  return out;
}

/**
 * Functions that write through a session they take as a parameter (`add`, DML, an attribute of a
 * row loaded through it) and leave the commit to their caller: the request scope's writes when
 * a handler hands them its injected session (see {@link REQUEST_HANDOFF}).
 */
export function collectParamWrites(model: FileModel): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile || !/\b(add|add_all|delete|merge|execute)\s*\(|\.\w+\s*=[^=]/.test(model.source)) return out;
  model.functions.forEach((fn, fnIndex) => {
    const params = fn.params.filter((p) => p.name !== 'self' && p.name !== 'cls');
    params.forEach((p, position) => {
      if (!SESSION_PARAM.test(p.name) && !/(^|\.)(Session|AsyncSession)\b/.test(p.annotation ?? '')) return;
      const write = uncommittedWrite(model, { name: p.name, kind: 'session', inWith: false, line: fn.startLine, fnIndex }, [p.name]);
      if (write) {
        out[fnIndex]!.push({ kind: PARAM_WRITE, what: `${position}:${p.name}:${write.what}`, line: write.node.startPosition.row + 1, column: write.node.startPosition.column + 1 });
        return;
      }
      // Handed on to another function (a service calling its CRUD layer), with no commit of it after.
      const calls = callsOf(model, fnIndex);
      for (const c of calls) {
        if (c.functionIndex !== fnIndex || receiverKey(c) === p.name) continue;
        const handed = handedAt(c, p.name);
        if (!handed) continue;
        if (calls.some((d) => d.method === 'commit' && receiverKey(d) === p.name && d.node.startIndex > c.node.startIndex)) continue;
        out[fnIndex]!.push({ kind: PARAM_HANDOFF, what: `${position}:${p.name}:${handed.position}:${handed.keyword ?? ''}`, line: c.line, column: c.column });
      }
    });
  });
  return out;
}

/** Where a call is handed `name`: its positional index (-1 when by keyword) and keyword; null when not handed. */
function handedAt(c: CallInfo, name: string): { position: number; keyword: string | null } | null {
  const { positional, keywords } = callArgs(c.node);
  const position = positional.findIndex((a) => a.text === name);
  const keyword = [...keywords].find(([, v]) => v.text === name)?.[0] ?? null;
  return position < 0 && !keyword ? null : { position, keyword };
}

/** Site fact: a call handed a session the function opened itself and never commits (`what` = JSON {@link OwnHandOff}). */
export const OWN_HANDOFF = 'own_handoff';
const OWN_HANDOFFS: ReadonlySet<string> = new Set([OWN_HANDOFF]);

interface OwnHandOff {
  name: string;
  /** The line the session was opened on. */
  opened: number;
  inWith: boolean;
  position: number;
  keyword: string | null;
}

/**
 * A session the function opens itself (`with Maker() as s:`, `s = Maker()`) and hands to helpers
 * of the repo (`_save(s, msg)`) without writing through it itself and without any commit of it:
 * the repo phase asks whether a helper writes through it (then the write is lost when the
 * session closes). Not a session that leaves the function otherwise (returned, stored, yielded).
 */
export function collectOwnHandOffs(model: FileModel, project?: ProjectContext): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (!project || model.isTestFile || engineAutocommits(project)) return out;
  for (const owned of ownedHandles(model, project)) {
    if (owned.kind !== 'session') continue;
    const fn = model.functions[owned.fnIndex]!;
    if (SETTINGS.test(fn.node.text) || escapes(fn.node, owned.name, true) || !escapes(fn.node, owned.name)) continue;
    const calls = callsOf(model, owned.fnIndex).filter((c) => c.functionIndex === owned.fnIndex);
    // Any commit or rollback of it (or a write of its own, the file rule's): the function owns the end.
    if (calls.some((c) => (c.method === 'commit' || c.method === 'rollback') && receiverKey(c) === owned.name)) continue;
    if (new RegExp(String.raw`(?<![\w.])${owned.name}\s*\.\s*(commit|rollback)\b`).test(fn.node.text)) continue;
    if (uncommittedWrite(model, owned, [owned.name])) continue;
    for (const c of calls) {
      if (receiverKey(c) === owned.name) continue;
      const handed = handedAt(c, owned.name);
      if (!handed) continue;
      const site: OwnHandOff = { name: owned.name, opened: owned.line, inWith: owned.inWith, ...handed };
      out[owned.fnIndex]!.push({ kind: OWN_HANDOFF, what: JSON.stringify(site), line: c.line, column: c.column });
    }
  }
  return out;
}

/** PA208's repo half for sessions a function opens and hands to helpers (see {@link collectOwnHandOffs}). */
function lostHelperWrites(ctx: RepoRuleContext, graph: CallGraph): void {
  for (const { ref, file, fn, site, call, to } of siteCalls(graph, OWN_HANDOFFS)) {
    if (call.receiverType === UNTYPED) continue;
    const s = JSON.parse(site.what) as OwnHandOff;
    const through = writeThrough(graph, to, s.position, s.keyword);
    // Anything this function reaches may commit (a helper that commits it): the commit is owned.
    if (!through || graph.reaches(ref, MAY_COMMIT_EFFECT, 'any')) continue;
    const write = through.effect;
    const what = write.what.split(':').slice(2).join(':');
    const callee = graph.function(through.fn);
    const closes = s.inWith ? 'the `with` block closes it' : 'the function is done with it';
    ctx.report({
      path: file.path,
      location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
      message: `\`${call.calleeText}()\` writes through \`${s.name}\` (\`${what}\`, line ${write.line} of ${graph.fileOf(through.fn).path}, in \`${callee.qualifiedName}\`), a session opened on line ${s.opened}, and nothing commits it before ${closes}: not \`${callee.name}\`, not this function, nothing it calls; the transaction is rolled back and the write is lost`,
      severity: fn.effectiveRole === 'handler' ? 'high' : 'medium',
      function: fn.name,
      chain: [{ path: file.path, line: call.line, column: call.column, function: fn.name, call: call.calleeText }],
    });
  }
}

/** Effect kinds of Flask views' writes through Flask-SQLAlchemy's `db.session` (see {@link flaskRequestWrites}). */
export const FLASK_WRITE = 'flask_write';
/** A Flask request handler of a Flask-SQLAlchemy project (see {@link flaskRequestWrites}). */
export const FLASK_VIEW = 'flask_view';
/** A function Flask runs at the end of every request (`@app.after_request`, `teardown_request`, `teardown_appcontext`). */
export const REQUEST_END_HOOK = 'request_end_hook';
/** A blinker signal receiver (`@signal.connect`): it runs inside whatever request sends the signal. */
export const SIGNAL_RECEIVER = 'signal_receiver';
const SIGNAL_RECEIVERS: ReadonlySet<string> = new Set([SIGNAL_RECEIVER]);
const FLASK_VIEWS: ReadonlySet<string> = new Set([FLASK_VIEW]);
const REQUEST_END_HOOKS: ReadonlySet<string> = new Set([REQUEST_END_HOOK]);
const REQUEST_END_METHODS: ReadonlySet<string> = new Set(['after_request', 'after_app_request', 'teardown_request', 'teardown_app_request', 'teardown_appcontext']);
/** `@app.after_request`, `@bp.teardown_app_request`, …: the decorator's last name, without `@` or arguments. */
const decoratorName = (d: string) => d.replace(/^@\s*/, '').replace(/\(.*$/s, '').trim().split('.').pop() ?? '';

/** A write through `db.session` that the function does not commit (`what` of a `flask_write` effect). */
interface FlaskWrite {
  handle: string;
  what: string;
  endLine: number;
  endColumn: number;
}

/** What the repo phase needs of a Flask view (`what` of a `flask_view` effect). */
interface FlaskView {
  /** The names the view calls: a project function of one of these names that commits may be the callee. */
  calls: string[];
  /** The view's decorators other than its route, resolved: a project decorator that commits may do it after the view. */
  decorators: string[];
  /** The view sends a signal (`x.send(...)`): a receiver of the project may commit. */
  signals?: true;
}

/**
 * The file half of Flask's request scope. Flask-SQLAlchemy removes `db.session` when the request's
 * app context ends, which rolls back whatever was not committed (3.x has no commit on teardown).
 * Records, in any function, the first write through `db.session` — `add`/`delete`/`merge`, a DML
 * statement, a changed attribute of a row loaded through it (`db.get_or_404`, `Model.query`) — that
 * no commit in the function follows; the request handlers (what they call, their decorators); and
 * the functions registered to run at the end of a request.
 */
export function flaskRequestWrites(model: FileModel): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (!model.flaskDbHandles.size) return out;
  model.functions.forEach((fn, fnIndex) => {
    if (fn.decorators.some((d) => REQUEST_END_METHODS.has(decoratorName(d)))) out[fnIndex]!.push({ kind: REQUEST_END_HOOK, what: '', line: fn.startLine, column: 1 });
    // `@post_deleted.connect`, `@signal.connect_via(app)`: a blinker receiver, run by `signal.send(...)`.
    if (fn.decorators.some((d) => /^(connect|connect_via)$/.test(decoratorName(d)) && d.includes('.'))) out[fnIndex]!.push({ kind: SIGNAL_RECEIVER, what: '', line: fn.startLine, column: 1 });
    if (fn.role === 'handler') {
      // The names of the calls nothing resolves (a method on an untyped object): a project function
      // of that name may be the callee. Calls on `db.session`, `request`, … are the library's.
      const calls = new Set<string>();
      let defers = false;
      let signals = false;
      for (const c of callsOf(model, fnIndex)) {
        const name = c.method ?? c.calleeText.split('.').pop() ?? '';
        // `user_datastore.commit()`, `uow.commit()`: a commit of some library or wrapper; `after_this_request(fn)` runs `fn` after the view.
        if (name === 'commit' || name === 'after_this_request') defers = true;
        // `post_deleted.send(app, post=post)`: the signal's receivers run now, inside the request.
        if ((name === 'send' || name === 'send_async') && c.hasReceiver) signals = true;
        // `with UnitOfWork():` — the class whose `__exit__` may commit, resolved or not.
        if (c.isWithItem && /^[A-Za-z_]\w*$/.test(name)) calls.add(name);
        if (c.qualifiedName !== null || !/^[A-Za-z_]\w*$/.test(name) || LIBRARY_RECEIVER.test(receiverKey(c) ?? '') || isFlaskHandle(model, receiverKey(c), 'session')) continue;
        calls.add(name);
      }
      // `decorators = [...]` (MethodView) / `method_decorators = [...]` (flask-restful) on the view's class.
      const names = fn.className !== null ? fileClasses(model).find((c) => c.name === fn.className)?.names : undefined;
      if (names?.has('decorators') || names?.has('method_decorators')) defers = true;
      // `@after_this_request` on a function nested in the view.
      if (model.functions.some((f) => f.parent === fnIndex && f.decorators.some((d) => decoratorName(d) === 'after_this_request'))) defers = true;
      if (!defers) {
        const decorators = fn.decoratorNames.filter((d, i) => !ROUTE_OR_HOOK.has(decoratorName(fn.decorators[i]!)));
        const view: FlaskView = { calls: [...calls].sort(), decorators, ...(signals ? { signals: true } : {}) };
        out[fnIndex]!.push({ kind: FLASK_VIEW, what: JSON.stringify(view), line: fn.startLine, column: 1 });
      }
    }
    const text = fn.node.text;
    // `db.session…`, `db.get_or_404(…)`, or a model's `Model.query…`.
    if (!text.includes('.session') && !text.includes('_or_404') && !text.includes('.query')) return;
    if (SETTINGS.test(text)) return;
    for (const handle of model.flaskDbHandles) {
      // A GET view that sets an attribute of a row is usually decorating it for the template (`post.excerpt = …`): only explicit writes count there.
      const owned: Owned = { name: `${handle}.session`, kind: 'session', inWith: false, line: fn.startLine, fnIndex, flask: handle, callsOnly: readOnlyRoute(fn) };
      const write = uncommittedWrite(model, owned, [owned.name]);
      if (!write) continue;
      const site: FlaskWrite = { handle, what: write.what, endLine: write.node.endPosition.row + 1, endColumn: write.node.endPosition.column + 1 };
      out[fnIndex]!.push({ kind: FLASK_WRITE, what: JSON.stringify(site), line: write.node.startPosition.row + 1, column: write.node.startPosition.column + 1 });
      break;
    }
  });
  // `app.teardown_appcontext(close_db)`: the hook is a function of this file.
  for (const c of model.calls) {
    if (!c.method || !REQUEST_END_METHODS.has(c.method) || !c.hasReceiver) continue;
    const arg = c.node.childForFieldName('arguments')?.namedChildren[0];
    if (!arg) continue;
    const i = arg.type === 'identifier' ? model.functions.findIndex((f) => f.name === arg.text && f.className === null) : -1;
    if (i >= 0) {
      out[i]!.push({ kind: REQUEST_END_HOOK, what: '', line: model.functions[i]!.startLine, column: 1 });
      continue;
    }
    // A hook of another module (`teardown_request(commit_session)`, `hooks.finish`) is named for the repo
    // phase; a bound method (`self._commit`) or anything else is taken as one that may commit.
    const named = arg.type === 'identifier' || arg.type === 'attribute' ? resolveImported(model, arg.text) ?? arg.text : '';
    const what = named && !named.startsWith('self.') ? named : UNKNOWN_HOOK;
    // Recorded on the function that registers it, else on any function of the file: the repo phase only asks whether the project has one.
    const at = c.functionIndex >= 0 ? c.functionIndex : 0;
    if (out[at]) out[at]!.push({ kind: REQUEST_END_HOOK, what, line: c.line, column: c.column });
  }
  return out;
}

/** A request-end hook the file half could not name (a bound method, an expression). */
const UNKNOWN_HOOK = '?';
/** Receivers of library calls in a view: never a project function. */
const LIBRARY_RECEIVER = /^(request|request\.\w+|session|g|current_app|current_user|flask|json|os|re|datetime|jsonify)$/;

/** A view that answers GET only: `@bp.get`, `@bp.route(...)` without `methods=`, a class view's `get`. */
function readOnlyRoute(fn: FileModel['functions'][number]): boolean {
  if (fn.routeKind === 'get') return true;
  if (fn.routeKind !== 'route') return false;
  // Registered by `add_url_rule(..., methods=...)` the methods are not in a decorator: not known to be GET.
  const routes = fn.decorators.filter((d) => /(^|\.)route\s*\(/.test(d));
  return routes.length > 0 && !routes.some((d) => /\bmethods\s*=/.test(d));
}

/** Route registrations and the request-end hooks themselves: not decorators that may commit. */
const ROUTE_OR_HOOK: ReadonlySet<string> = new Set(['route', 'get', 'post', 'put', 'patch', 'delete', 'api_route', 'websocket', ...REQUEST_END_METHODS]);

/**
 * The repo half: a Flask view's write through `db.session` is lost when nothing commits it — not
 * the view, nothing it calls (or any project function of a name it calls), no method of its class
 * or of a base (a dispatcher such as `dispatch_request` that commits after the view), no project
 * decorator of the view that commits, no signal receiver that commits when the view sends one, and
 * no function run at the end of every request; and the project does not set
 * `SQLALCHEMY_COMMIT_ON_TEARDOWN`. A `with db.session.begin_nested():` block releases a savepoint,
 * not the transaction: it commits nothing.
 */
function lostFlaskWrites(ctx: RepoRuleContext, graph: CallGraph): void {
  const views = [...graph.functionsWithEffects(FLASK_VIEWS)];
  if (!views.length || (ctx.project.sessionReleases ?? []).includes(TEARDOWN_COMMIT)) return;
  for (const ref of graph.functionsWithEffects(REQUEST_END_HOOKS)) {
    for (const e of graph.ownEffects(ref)) {
      if (e.kind !== REQUEST_END_HOOK) continue;
      if (e.what === UNKNOWN_HOOK) return;
      const hook = e.what ? graph.resolveQualified(e.what) : ref;
      if (hook && graph.reaches(hook, MAY_COMMIT_EFFECT, 'any')) return;
    }
  }
  let committing: Set<string> | null = null;
  let receiversCommit: boolean | undefined;
  const commits = (ref: FnRef) => graph.reaches(ref, MAY_COMMIT_EFFECT, 'any');
  for (const ref of views) {
    // The write, in the view or in a function it calls (a helper that leaves the commit to its caller).
    const reach = graph.effectOf(ref, FLASK_WRITE, 'any');
    if (!reach || reach.weak || commits(ref)) continue;
    const fn = graph.function(ref);
    if (fn.className !== null && graph.selfClasses(ref).some((c) => ctx.index.files[c.file]!.functions.some((m, i) => m.className === c.cls.name && !(c.file === ref.file && i === ref.fn) && commits({ file: c.file, fn: i })))) continue;
    const viewEffect = graph.ownEffects(ref).find((e) => e.kind === FLASK_VIEW);
    if (!viewEffect) continue;
    const view = JSON.parse(viewEffect.what) as FlaskView;
    if (view.decorators.some((d) => decoratorCommits(graph, d))) continue;
    if (view.signals && (receiversCommit ??= [...graph.functionsWithEffects(SIGNAL_RECEIVERS)].some(commits))) continue;
    if (!committing) {
      committing = new Set();
      for (const r of graph.functions()) {
        if (!commits(r)) continue;
        const f = graph.function(r);
        committing.add(f.name);
        // `with UnitOfWork():` whose `__exit__` commits: the view calls the class.
        if ((f.name === '__exit__' || f.name === '__aexit__') && f.className) committing.add(f.className);
      }
    }
    if (view.calls.some((n) => committing!.has(n))) continue;
    const site = JSON.parse(reach.effect.what) as FlaskWrite;
    const first = reach.steps[0]!.call;
    const tail = 'and nothing commits it: not the view, nothing it calls, no request-end hook; Flask-SQLAlchemy removes the session when the request ends, which rolls the write back';
    if (!first) {
      ctx.report({
        path: graph.fileOf(ref).path,
        location: { line: reach.effect.line, column: reach.effect.column, endLine: site.endLine, endColumn: site.endColumn },
        message: `\`${site.what}\` writes through \`${site.handle}.session\` in this view, ${tail}`,
        severity: 'high',
        function: fn.name,
      });
      continue;
    }
    const names = reach.steps.map((st) => graph.function(st.fn).name);
    ctx.report({
      path: graph.fileOf(ref).path,
      location: { line: first.line, column: first.column, endLine: first.endLine, endColumn: first.endColumn },
      message: `\`${first.calleeText}()\` writes through \`${site.handle}.session\` (\`${names.join('` → `')}\`: \`${site.what}\`) and leaves the commit to its caller, ${tail.replace('not the view', 'not this view')}`,
      severity: 'high',
      function: fn.name,
      // The last step names the write, not the effect's record.
      chain: graph.chainSteps(reach).map((st, i, all) => (i === all.length - 1 ? { ...st, call: site.what } : st)),
    });
  }
}

/**
 * Does a decorator of the project commit: the decorator, or a function defined inside it (the
 * wrapper, or the decorator a factory returns)? `@permission_required(...)` that only checks does not.
 */
function decoratorCommits(graph: CallGraph, qualified: string): boolean {
  const ref = graph.resolveQualified(qualified);
  if (!ref) return false;
  const fns = graph.fileOf(ref).functions;
  const inside = (i: number): boolean => i === ref.fn || (i >= 0 && inside(fns[i]!.parent));
  return fns.some((_, i) => inside(i) && graph.reaches({ file: ref.file, fn: i }, MAY_COMMIT_EFFECT, 'any'));
}

function describe(owned: Owned): string {
  switch (owned.kind) {
    case 'session': return 'a session';
    case 'connection': return 'a SQLAlchemy 2.x connection (commit-as-you-go)';
    case 'dbapi': return 'a DB-API connection (autocommit off)';
  }
}

/** Sessions and connections opened in a function: `x = Session()` and `with factory() as x:`. */
function ownedHandles(model: FileModel, project: ProjectContext): Owned[] {
  const out: Owned[] = [];
  // Every handle `openedHandle` accepts is typed `…connect()`, `…Session()`, `…sessionmaker()()`
  // or a project factory's call: a file that names none of them opens none (typing every
  // assigned call was most of this rule's cost).
  const source = model.source;
  if (!/Session|sessionmaker|connect/.test(source) && !otherFactoryNames(project)?.test(source)) return out;
  for (const a of model.assignments) {
    if (a.functionIndex < 0 || a.fromWith || !a.value || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
    const kind = openedHandle(model, project, a.value, a.functionIndex, a.line);
    if (kind) out.push({ name: a.target, kind, inWith: false, line: a.line, fnIndex: a.functionIndex });
  }
  for (const w of model.withs) {
    if (w.functionIndex < 0) continue;
    for (const item of w.items) {
      if (!item.alias || !/^[A-Za-z_]\w*$/.test(item.alias)) continue;
      const line = w.node.startPosition.row + 1;
      const kind = openedHandle(model, project, item.value, w.functionIndex, line, true);
      // `with psycopg2.connect() as conn:` commits on exit (psycopg2, sqlite3); other drivers
      // close instead, and which one depends on the driver's version: left alone.
      if (kind && kind !== 'dbapi' && !customSessionClass(project, item.value)) out.push({ name: item.alias, kind, inWith: true, line, fnIndex: w.functionIndex });
    }
  }
  return out;
}

/**
 * `Session(conn)` / `Session(bind=conn)` over a connection in a transaction someone else ends:
 * one from `with engine.begin() as conn:` (committed when the block ends) or the function's
 * parameter (the caller's). The session joins that transaction (SQLAlchemy's
 * `join_transaction_mode`), so its flushed writes are committed with it.
 */
function joinsConnection(model: FileModel, call: SyntaxNode, fnIndex: number): boolean {
  const { positional, keywords } = callArgs(call);
  const bind = unwrap(keywords.get('bind') ?? positional[0] ?? null);
  // A connection someone else opened and ends: Alembic's `op.get_bind()`, a session's `.connection()`.
  const borrowed = (n: SyntaxNode | null) => !!n && /\.(get_bind|connection)\(\s*\)$/.test(n.text.replace(/\s+/g, ''));
  if (borrowed(bind)) return true;
  if (bind?.type !== 'identifier') return false;
  const bound = assignmentsTo(model, bind.text).filter((a) => a.functionIndex === fnIndex);
  if (bound.length === 1 && borrowed(unwrap(bound[0]!.value))) return true;
  const fn = model.functions[fnIndex];
  // A parameter that is a connection (annotated so, or named so and not annotated an engine).
  const param = fn?.params.find((p) => p.name === bind.text);
  if (param) return /Connection\b/.test(param.annotation ?? '') || (/^(conn|connection|\w+_conn(ection)?)$/.test(param.name) && !/Engine\b/.test(param.annotation ?? ''));
  // The `with X.begin() as conn:` block the session is made in.
  return model.withs.some((w) => w.functionIndex === fnIndex && call.startIndex >= w.bodyStart && call.endIndex <= w.bodyEnd
    && w.items.some((i) => i.alias === bind.text && /\.begin\(\s*\)$/.test(unwrap(i.value)?.text ?? '')));
}

/**
 * `with Factory() as s:` where the factory makes sessions of a class of the project's own
 * (`sessionmaker(class_=ContextSession)`): what its `__exit__` does (commit when the block ends
 * without error is a common reason to subclass) is that class's, not `Session`'s close.
 */
function customSessionClass(project: ProjectContext, value: SyntaxNode): boolean {
  const v = unwrap(value);
  if (v?.type !== 'call') return false;
  const name = v.childForFieldName('function')?.text.replace(/\s+/g, '').split('.').pop() ?? '';
  const factory = project.sessionFactories.find((f) => f.name === name);
  const cls = factory?.class?.split('.').pop();
  return !!cls && cls !== 'Session' && cls !== 'AsyncSession';
}

/** What a value opens, when it is a fresh session or connection the caller owns. */
function openedHandle(model: FileModel, project: ProjectContext, value: SyntaxNode, fnIndex: number, line: number, withItem = false): HandleKind | null {
  const v = unwrap(value);
  if (v?.type !== 'call' || !mayOpenHandle(model, project, v) || /autocommit\s*=\s*True|isolation_level/.test(v.text)) return null;
  // `get_write_engine().connect()`, `backend._get_write_engine().connect()`: a project getter's engine.
  const fnNode = v.childForFieldName('function');
  const getter = fnNode?.type === 'attribute' && fnNode.childForFieldName('attribute')?.text === 'connect' ? engineGetterCall(model, project, fnNode.childForFieldName('object'), fnIndex) : null;
  // An AUTOCOMMIT engine commits each statement: nothing is left to commit.
  if (getter) return project.summary.orms.includes('SQLAlchemy 2.x') && !getter.autocommit ? 'connection' : null;
  const t = typeString(model, v, fnIndex, line);
  if (!t) return behindFactory(model, project, v, fnIndex, line);
  if (DBAPI_CONNECT.test(t)) return 'dbapi';
  // `with get_db() as db:` over a project context manager that makes a session and only closes
  // it: the block owns a fresh session, and whatever it leaves uncommitted is rolled back.
  if (withItem && closingProvider(project, t)) return 'session';
  // A project helper that returns a new DB-API connection (`def get_conn(): return psycopg2.connect(DSN)`)
  // or a new session: its caller owns what it gets.
  const helper = sessionHelperCalled(project, t);
  if (helper?.autocommit) return null;
  if (helper?.kind === 'connection' && DBAPI_CONNECT.test(`${helper.returns}()`)) return 'dbapi';
  if (helper?.kind === 'session' && !project.sessionProviders.some((p) => p.name === helper.name)) return 'session';
  if (ENGINE_CONNECT.test(t) || engineOfProject(project, t)) return project.summary.orms.includes('SQLAlchemy 2.x') ? 'connection' : null;
  const callee = v.childForFieldName('function')?.text.replace(/\s+/g, '') ?? '';
  const name = callee.split('.').pop() ?? '';
  const factory = project.sessionFactories.find((f) => f.name === name);
  if (factory && 'autocommit' in factory.kwargs && factory.kwargs.autocommit !== false) return null;
  if (SESSION_CTOR.test(t)) return joinsConnection(model, v, fnIndex) ? null : 'session';
  // A factory of another module: a `sessionmaker` the project defines at module level, and not
  // a provider (`session_scope()`, `get_db()`) that may commit for its callers.
  if (!factory) return behindFactory(model, project, v, fnIndex, line);
  if (!/^[\w.]+\(\)$/.test(t) || factory.function !== null) return null;
  if (factory.kind !== 'sessionmaker' && factory.kind !== 'async_sessionmaker') return null;
  if (project.sessionProviders.some((p) => p.name === name)) return null;
  return 'session';
}

/**
 * A module-level factory of the project called under another name: a local alias (`maker =
 * SessionLocal; with maker() as s:`), an attribute a class keeps it in (`self.session_source()`),
 * a local from a getter returning that attribute (`maker = self.get_maker()`). Not one that
 * commits on its own (`autocommit`) or makes sessions of the project's own class.
 */
function behindFactory(model: FileModel, project: ProjectContext, call: SyntaxNode, fnIndex: number, line: number): HandleKind | null {
  const factory = factoryBehind(model, project, call.childForFieldName('function'), fnIndex, line);
  if (!factory || ('autocommit' in factory.kwargs && factory.kwargs.autocommit !== false)) return null;
  const cls = factory.class?.split('.').pop();
  if (cls && cls !== 'Session' && cls !== 'AsyncSession') return null;
  if (project.sessionProviders.some((p) => p.name === factory.name)) return null;
  return 'session';
}

/**
 * The context-manager provider a call's type string names (`app.db.get_db()`) when it yields a
 * fresh session (a `sessionmaker` factory's, `Session()`; not a scoped session's registry) and
 * its teardown only closes or rolls back (`closesOnly`).
 */
function closingProvider(project: ProjectContext, t: string): SessionProviderInfo | null {
  const m = /^([\w.]+)\(\)$/.exec(t);
  if (!m) return null;
  for (const p of project.sessionProviders) {
    if (!p.contextManager || !p.closesOnly || m[1] !== `${moduleNameOf(p.file)}.${p.name}`) continue;
    if (/^(Async)?Session$/.test(p.yields)) return p;
    const factory = project.sessionFactories.find((f) => f.name === p.yields.split('.').pop());
    // Not a factory of the project's own session class (`class_=CommittingSession`): its
    // `__exit__` may commit when the provider's block ends (as for `with Factory() as s:`).
    const cls = factory?.class?.split('.').pop();
    if (cls && cls !== 'Session' && cls !== 'AsyncSession') continue;
    if (factory && (factory.kind === 'sessionmaker' || factory.kind === 'async_sessionmaker') && !('autocommit' in factory.kwargs && factory.kwargs.autocommit !== false)) return p;
  }
  return null;
}

/** The project helper (`SessionHelperInfo`, not an owner class) a call's type string names (`app.db.get_conn()`), or null. */
function sessionHelperCalled(project: ProjectContext, t: string): SessionHelperInfo | null {
  const m = /^([\w.]+)\(\)$/.exec(t);
  return m ? projectSessionHelpers(project).get(m[1]!) ?? null : null;
}

/** `app.db.engine.connect()`: `connect()` on a module-level engine the project creates. */
/**
 * Can the call be one `openedHandle` accepts, from its callee's text? Every handle it accepts
 * is typed `…connect()`, `…Session()`, `…sessionmaker()()` or a project factory's call: the
 * callee's last name says `connect`, `Session` or `maker`, or names a project factory, or is an
 * import of such a thing, or the file builds a `sessionmaker` of its own (whose name can be
 * anything). Typing every assigned call of a file that names a session was 7.6 s of a 2M-line
 * tree's audit.
 */
function mayOpenHandle(model: FileModel, project: ProjectContext, call: SyntaxNode): boolean {
  let own = ownSessionmaker.get(model);
  if (own === undefined) ownSessionmaker.set(model, (own = model.source.includes('sessionmaker')));
  if (own) return true;
  const callee = call.childForFieldName('function');
  if (!callee || (callee.type !== 'identifier' && callee.type !== 'attribute')) return true;
  const text = callee.text;
  const last = text.slice(text.lastIndexOf('.') + 1);
  if (HANDLE_NAME.test(last) || factoryNames(project).has(last)) return true;
  const dot = text.indexOf('.');
  const imported = model.imports.get(dot < 0 ? text : text.slice(0, dot));
  if (imported !== undefined && HANDLE_NAME.test(imported)) return true;
  // A name bound to another name (`opener = LedgerSession`) or to what a method of its object
  // returns (`opener = self.source()`): `factoryBehind` follows it.
  if (callee.type !== 'identifier') return false;
  return assignmentsTo(model, text).some((a) => {
    const v = a.value;
    if (v?.type === 'identifier' || v?.type === 'attribute') return true;
    return v?.type === 'call' && /^(self|cls)\.\w+$/.test(v.childForFieldName('function')?.text ?? '') && !v.childForFieldName('arguments')?.namedChildren.length;
  });
}

const HANDLE_NAME = /connect|session|maker/i;
const FACTORY_NAMES = new WeakMap<ProjectContext, Set<string | null>>();

/** The project's session factory names (a monorepo has hundreds: a scan of the list per call cost). */
function factoryNames(project: ProjectContext): Set<string | null> {
  let names = FACTORY_NAMES.get(project);
  if (!names) {
    names = new Set<string | null>(project.sessionFactories.map((f) => f.name));
    // The project's helpers that return a new session or connection (`get_conn()`), by name.
    for (const h of project.sessionHelpers ?? []) if (!h.owner) names.add(h.name);
    // Context-manager providers that only close what they yield (`with get_db() as db:`).
    for (const p of project.sessionProviders) if (p.contextManager && p.closesOnly) names.add(p.name);
    // Attributes a class keeps a factory in (`self.session_source()`).
    for (const attr of Object.keys(project.factoryAttributes ?? {})) names.add(attr);
    FACTORY_NAMES.set(project, names);
  }
  return names;
}

const OTHER_FACTORY_NAMES = new WeakMap<ProjectContext, RegExp | null>();

/** The project's factory names that the file gate's own words do not cover, as one pattern (null: none). */
function otherFactoryNames(project: ProjectContext): RegExp | null {
  let re = OTHER_FACTORY_NAMES.get(project);
  if (re === undefined) {
    const names = [...factoryNames(project)].filter((n): n is string => !!n && !/Session|sessionmaker|connect/.test(n));
    re = names.length ? new RegExp(names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')) : null;
    OTHER_FACTORY_NAMES.set(project, re);
  }
  return re;
}

const ENGINE_AUTOCOMMIT = new WeakMap<ProjectContext, boolean>();

/** Does an engine of the project run in AUTOCOMMIT (once per project, not per file)? */
function engineAutocommits(project: ProjectContext): boolean {
  let v = ENGINE_AUTOCOMMIT.get(project);
  if (v === undefined) ENGINE_AUTOCOMMIT.set(project, (v = project.engines.some((e) => Object.values(e.kwargs).some((x) => typeof x === 'string' && /AUTOCOMMIT/i.test(x)))));
  return v;
}
/** Does the file name `sessionmaker` (once per file, not per call)? */
const ownSessionmaker = new WeakMap<FileModel, boolean>();

function engineOfProject(project: ProjectContext, t: string): boolean {
  // `engine = get_engine(); engine.connect()`: the getter's call, typed `app.db.get_engine().connect()`.
  const getter = /^([\w.]+)\(\)\.connect\(\)$/.exec(t);
  const named = getter ? engineGetterNamed(project, getter[1]!) : undefined;
  if (named) return !named.autocommit;
  const m = /^[\w.]*?(\w+)\.connect\(\)$/.exec(t);
  return !!m && project.engines.some((e) => e.name === m[1] && e.function === null && e.factory !== 'asyncpg.create_pool');
}

/** Cursors taken from a connection: `cur = conn.cursor()`, `with conn.cursor() as cur:`. */
function cursorsOf(model: FileModel, owned: Owned): string[] {
  if (owned.kind === 'session') return [];
  const re = new RegExp(`^${owned.name}\\s*\\.\\s*cursor\\s*\\(`);
  const out: string[] = [];
  for (const a of model.assignments) {
    if (a.functionIndex === owned.fnIndex && a.value && re.test(unwrap(a.value)?.text ?? '') && /^[A-Za-z_]\w*$/.test(a.target)) out.push(a.target);
  }
  return out;
}

/**
 * Does the handle leave the function's hands: passed to a call, returned, yielded, stored,
 * captured? Every use must be an attribute or method (`s.add`), a test (`if s:`, `s is None`)
 * or its own binding.
 */
function escapes(fnNode: SyntaxNode, name: string, allowArguments = false): boolean {
  const text = codeText(fnNode);
  const re = new RegExp(`(?<![\\w.])${name}(?!\\w)`, 'g');
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    const after = text.slice(m.index + name.length, m.index + name.length + 40);
    const before = text.slice(Math.max(0, m.index - 12), m.index);
    if (/^\s*(\.|:|=(?!=)|is\b|and\b|or\b)/.test(after) || /\b(as|del)\s+$/.test(before)) continue;
    // Handed to a call (`helper(db, x)`, `helper(session=db)`): the repo phase follows it.
    if (allowArguments && /^\s*[,)]/.test(after) && /[(,=]\s*$/.test(before)) continue;
    return true;
  }
  return false;
}

interface Write {
  node: SyntaxNode;
  what: string;
}

/** The first write through the handle that no commit (or rollback) follows, or null. */
function uncommittedWrite(model: FileModel, owned: Owned, names: string[]): Write | null {
  const fn = model.functions[owned.fnIndex]!;
  const alt = names.join('|');
  // Commits and rollbacks on the handle (a rollback after a write is a deliberate discard).
  const ends: SyntaxNode[] = [];
  for (const c of callsOf(model, owned.fnIndex)) {
    const key = receiverKey(c);
    if ((c.method === 'commit' || c.method === 'rollback') && key && new RegExp(`^(${alt})(\\.connection)?$`).test(key)) ends.push(c.node);
  }
  // Any other mention, as a value (`on_done=conn.commit`) or a call in a nested def or lambda.
  const valueRe = new RegExp(`(?<![\\w.])(${alt})\\s*\\.\\s*(connection\\s*\\.\\s*)?(commit|rollback)\\b`, 'g');
  const fnText = fn.node.text;
  const valueEnds: number[] = [];
  for (let m = valueRe.exec(fnText); m; m = valueRe.exec(fnText)) valueEnds.push(fn.node.startIndex + m.index);
  const committedAfter = (node: SyntaxNode) =>
    valueEnds.some((at) => at > node.startIndex)
    || ends.some((e) => e.startIndex > node.startIndex || sharesLoop(model, owned.fnIndex, e, node));
  const managed = (node: SyntaxNode) => model.withs.some((w) => w.functionIndex === owned.fnIndex && node.startIndex >= w.bodyStart && node.endIndex <= w.bodyEnd
    && w.items.some((i) => {
      const v = unwrap(i.value)?.text.replace(/\s+/g, '') ?? '';
      // `begin_nested()` only releases a savepoint: the outer transaction still needs its commit.
      return new RegExp(`^(${alt})\\.begin\\(.*\\)$`, 's').test(v) || (owned.kind === 'dbapi' && new RegExp(`^(${alt})$`).test(v));
    }));
  const withBody = owned.inWith ? model.withs.find((w) => w.functionIndex === owned.fnIndex && w.items.some((i) => i.alias === owned.name) && w.node.startPosition.row + 1 === owned.line) : undefined;
  const inScope = (node: SyntaxNode) => !withBody || (node.startIndex >= withBody.bodyStart && node.endIndex <= withBody.bodyEnd);
  let first: Write | null = null;
  for (const c of callsOf(model, owned.fnIndex)) {
    const key = receiverKey(c);
    if (!key || !names.includes(key) || !inScope(c.node)) continue;
    if (!isHandleWrite(model, owned, c.method, c)) continue;
    if (managed(c.node) || committedAfter(c.node)) continue;
    first = { node: c.node, what: `${c.calleeText}()` };
    break;
  }
  if (owned.kind !== 'session' || owned.callsOnly) return first;
  // Attribute changes on rows loaded through the session: flushed, then discarded, at close.
  // The first write of either kind is the one reported.
  for (const a of [...model.assignments, ...model.augAssignments]) {
    if (a.functionIndex !== owned.fnIndex || !inScope(a.node) || (first && a.node.startIndex > first.node.startIndex)) continue;
    const m = /^([A-Za-z_]\w*)\.([a-z]\w*)$/.exec(a.target);
    if (!m || !(loadedThrough(model, owned, m[1]!, a.line, a.loops) || handedRowFlushed(model, owned, m[1]!, a.node))) continue;
    if (managed(a.node) || committedAfter(a.node)) continue;
    if (!first || a.node.startIndex < first.node.startIndex) first = { node: a.node, what: `${a.target} = …` };
  }
  return first;
}

function isHandleWrite(model: FileModel, owned: Owned, method: string, call: Parameters<typeof classifyDbCall>[1]): boolean {
  if (owned.kind === 'session' && SESSION_WRITES.has(method)) return true;
  if (method === 'flush') return false;
  const op = classifyDbCall(model, call);
  if (op !== null) return op.kind === 'write' || (op.kind === 'add' && op.statement !== null);
  // A cursor of a DB-API connection the function owns (one a project helper made, in a module
  // that imports no driver): the statement's own words say whether it writes.
  if (owned.kind === 'dbapi' && (method === 'execute' || method === 'executemany')) {
    const first = call.node.childForFieldName('arguments')?.namedChildren.find((a) => a.type !== 'comment');
    const st = first ? statementInfo(model, first, call.functionIndex, call.line) : null;
    return st?.ctor === 'sql' && (st.kind === 'write' || st.kind === 'insert');
  }
  return false;
}

/**
 * A row handed in beside the session (`def mark(db: Session, build: Build, ...)`: a parameter
 * typed with a model of the project, not rebound) whose change the function then sends with
 * `db.flush()`: the caller loaded it through that session, and the flush writes it.
 */
function handedRowFlushed(model: FileModel, owned: Owned, obj: string, change: SyntaxNode): boolean {
  const fn = model.functions[owned.fnIndex]!;
  const p = fn.params.find((x) => x.name === obj);
  const type = p?.annotation?.replace(/\s*\|\s*None$|^Optional\[(.*)\]$/, '$1').trim() ?? '';
  if (!p || !model.modelClasses.has(type.slice(type.lastIndexOf('.') + 1))) return false;
  if (assignmentsTo(model, obj).some((a) => a.functionIndex === owned.fnIndex && a.target === obj)) return false;
  return callsOf(model, owned.fnIndex).some((c) => c.functionIndex === owned.fnIndex && c.method === 'flush' && receiverKey(c) === owned.name && c.node.startIndex > change.startIndex);
}

/** Was `obj` loaded through the session: `obj = s.get(M, id)`, `for obj in s.scalars(...)`? */
function loadedThrough(model: FileModel, owned: Owned, obj: string, line: number, loops: number[]): boolean {
  const source = objectSource(model, obj, owned.fnIndex, line, loops);
  if (!source) return false;
  const text = source.node.text;
  if (!source.fromLoop && !LOADS_ROW.test(text)) return false;
  if (text.startsWith(`${owned.name}.`)) return true;
  // Flask-SQLAlchemy's other ways to `db.session`: `db.get_or_404(User, id)`, `User.query.filter_by(...).first()`
  // — a read the query family classifies, on the extension object or a model's query property.
  if (owned.flask === undefined) return false;
  for (let node: SyntaxNode | null = unwrap(source.node); node?.type === 'call'; node = unwrap(node.childForFieldName('function')?.childForFieldName('object') ?? null)) {
    const call = callAt(model, node);
    if (!call || classifyDbCall(model, call)?.kind !== 'read') continue;
    const r = call.dottedReceiver;
    return isFlaskHandle(model, r) || isFlaskHandle(model, r, 'session') || (r !== null && r.endsWith('.query'));
  }
  return false;
}

/** Do two nodes sit in one loop of the function (a commit that runs again after the write)? */
function sharesLoop(model: FileModel, fnIndex: number, a: SyntaxNode, b: SyntaxNode): boolean {
  return model.loops.some((l) => l.functionIndex === fnIndex && within(a, l.node) && within(b, l.node));
}

// --- writes through a repository library that only flushes (see libraryWrites.ts) ---------

const SCOPE_OPENS: ReadonlySet<string> = new Set([TXN_SCOPE_OPEN]);
const RAISE_SITES: ReadonlySet<string> = new Set([TXN_RAISE_AFTER]);
const LIBRARY_NOTE = 'the repository library flushes without `auto_commit=True`, it does not commit';

/**
 * Two ways a flush-only library write is lost: in a block over a standalone session that nothing
 * commits (a job opening `config.get_session()`, directly or through a provider of the project),
 * and just before an HTTP error is raised (the request's session is committed only on success).
 */
function lostLibraryWrites(ctx: RepoRuleContext, graph: CallGraph): void {
  const { targets, byNameCalls, mayCommit, flushOnly, libraryTyped, autoCommitted } = libraryReach(graph);
  interface Hit { call: SummaryCall; what: string; reach: Reach | null; ref: FnRef }
  const describeHit = (hit: Hit) => hit.reach
    ? `\`${hit.call.calleeText}()\` writes through the repository library (\`${graph.chainNames(hit.reach).join('` → `')}()\`, no \`auto_commit\`${byNameCalls.has(hit.call) ? `; the receiver's type is unknown, and every \`${hit.call.method}\` of the project does this` : ''})`
    : `\`${hit.what}()\` writes through the repository library (no \`auto_commit\`)`;
  const report = (hit: Hit, message: string, severity: 'high' | 'medium') => {
    const file = graph.fileOf(hit.ref);
    ctx.report({
      path: file.path,
      location: { line: hit.call.line, column: hit.call.column, endLine: hit.call.endLine, endColumn: hit.call.endColumn },
      message,
      severity,
      function: graph.function(hit.ref).name,
      chain: hit.reach ? graph.chainSteps(hit.reach, { ref: hit.ref, call: hit.call }) : undefined,
    });
  };

  // A block over a session nothing commits.
  for (const ref of graph.functionsWithEffects(SCOPE_OPENS)) {
    if (graph.fileOf(ref).isTestFile) continue;
    const own = graph.ownEffects(ref);
    for (const open of own) {
      if (open.kind !== TXN_SCOPE_OPEN) continue;
      const info = JSON.parse(open.what) as ScopeOpen;
      const opener = graph.callAt(ref.file, open.line, open.column);
      if (!opener) continue;
      const provider = graph.resolveCall(ref.file, opener);
      let how: string;
      if (provider) {
        const fact = graph.ownEffects(provider).find((e) => e.kind === PROVIDES_UNCOMMITTED);
        if (!fact || info.keywords.some((k) => (JSON.parse(fact.what) as string[]).includes(k))) continue;
        how = `\`${info.opener}()\` (line ${open.line}), which opens its own session and never commits it`;
      } else if (info.direct) {
        how = info.direct === 'get_session'
          ? `\`${info.opener}()\` (line ${open.line}), a standalone session that is closed, not committed, at the end of the block`
          : `\`${info.opener}(config=…)\` (line ${open.line}), a service on a standalone session that is closed, not committed, at the end of the block`;
      } else continue;
      let committed = false;
      let hit: Hit | null = null;
      for (const e of own) {
        if (e.kind !== TXN_SCOPE_CALL) continue;
        const site = JSON.parse(e.what) as ScopeCall;
        if (!site.opener || site.opener[0] !== open.line || site.opener[1] !== open.column) continue;
        const call = graph.callAt(ref.file, e.line, e.column);
        if (!call) continue;
        if (site.direct || (site.lib && libraryTyped(call.receiverType))) {
          hit ??= { call, what: site.direct ?? call.calleeText, reach: null, ref };
          continue;
        }
        const refs = targets(ref, call);
        if (mayCommit(refs)) {
          committed = true;
          break;
        }
        const reach = flushOnly(refs);
        if (reach) hit ??= { call, what: call.calleeText, reach, ref };
      }
      if (committed || !hit) continue;
      report(hit, `${describeHit(hit)} on the session of ${how}: ${LIBRARY_NOTE}, and nothing in the block commits, so the write is rolled back when the session closes`, 'medium');
    }
  }

  // A write, then an HTTP error on the same path.
  for (const ref of graph.functionsWithEffects(RAISE_SITES)) {
    if (graph.fileOf(ref).isTestFile) continue;
    const done = new Set<number>();
    for (const e of graph.ownEffects(ref)) {
      if (e.kind !== TXN_RAISE_AFTER) continue;
      const site = JSON.parse(e.what) as ScopeCall;
      if (done.has(site.raiseLine!)) continue;
      const call = graph.callAt(ref.file, e.line, e.column);
      if (!call) continue;
      let hit: Hit | null = null;
      if (site.session) {
        // A provider that commits after `yield` skips the commit when the handler raises (the
        // exception is thrown into it at the `yield`); one that never commits is the request
        // scope's finding above; the Litestar plugin commits on a 2xx only, or never.
        const provider = site.session.provider === 'plugin' ? null : graph.resolveQualified(site.session.provider);
        if (site.session.provider !== 'plugin' && (!provider || !graph.reaches(provider, MAY_COMMIT_EFFECT, 'any') || graph.ownEffects(provider).some((x) => x.kind === COMMITS_ALWAYS))) continue;
        done.add(site.raiseLine!);
        const scope = site.session.provider === 'plugin'
          ? 'the session Litestar\'s SQLAlchemy plugin injects is committed only after a successful response (the `autocommit` handler rolls back any other status, the default one never commits)'
          : `\`${graph.function(provider!).name}\` commits after its \`yield\` only when the handler returns: the exception is thrown into it at the \`yield\`, so the commit is skipped and the session closed`;
        const at = site.at ? { ...call, line: site.at[0], column: site.at[1], endLine: site.at[2], endColumn: site.at[3] } : call;
        const wrote = site.session.attr
          ? `\`${site.session.what}\` changes a row loaded through \`${site.session.param}\`, the request's session,`
          : `\`${site.session.what}()\` writes through \`${site.session.param}\`, the request's session,`;
        report({ call: at, what: site.session.what, reach: null, ref }, `${wrote} then \`raise ${site.exception}\` (line ${site.raiseLine}) ends the request with an error and nothing commits in between: ${scope}; the write is rolled back with the error`, 'high');
        continue;
      }
      if (site.direct && autoCommitted.has(graph.function(ref).className ?? '')) continue;
      if (site.direct || (site.lib && libraryTyped(call.receiverType))) hit = { call, what: site.direct ?? call.calleeText, reach: null, ref };
      else {
        const reach = flushOnly(targets(ref, call));
        if (reach) hit = { call, what: call.calleeText, reach, ref };
      }
      if (!hit) continue;
      done.add(site.raiseLine!);
      report(hit, `${describeHit(hit)}, then \`raise ${site.exception}\` (line ${site.raiseLine}) ends the request with an error: ${LIBRARY_NOTE}, and a request's session is committed only after a successful response (advanced-alchemy's \`autocommit\` handler rolls back on any other status, the default one never commits), so the write is rolled back with the error`, 'high');
    }
  }
}
