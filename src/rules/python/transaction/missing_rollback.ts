/**
 * PA204 missing_rollback
 *
 * What it does: finds a database failure that is not rolled back:
 * - a `try` around a commit, flush, statement or query whose handler catches database errors
 *   (bare `except`, `Exception`, `SQLAlchemyError`, `IntegrityError`, …) and neither rolls back
 *   nor re-raises (a `raise` of the handler's own block, or a call that always raises such as
 *   Flask's `abort(400)`) while the session is used again; or
 *   uses the session again before its rollback;
 * - a commit outside any `try` and outside a session/transaction `with`, after the function has
 *   written on the session and then made a call that can fail outside the database (a network
 *   call, file I/O): when that call raises, the flushed writes stay on a session nobody rolls back
 *   (not a session handed in, which its owner closes, nor Flask-SQLAlchemy's `db.session`).
 * Why is this bad? After a failed flush or commit the session refuses all work until `rollback()`
 * (`PendingRollbackError`); a swallowed error leaves it, and its connection, in that state.
 *
 * Through calls (repo phase): the same swallowing handler, in a loop that goes on, around a call
 * of a same-repo function that reaches the database (a query, a statement, a flush or commit) and
 * does not open a session of its own: after the first database error every later iteration meets
 * the failed transaction (`ckan search-index rebuild --force`-style batch loops). Low: the helper
 * fails in other ways too; a session provider called there (`with scope() as s:`) is a fresh session.
 *
 * Severity: medium; low when a `with` around the commit already rolls back on exit, or when the
 * `try` only reads (its usual failure, `NoResultFound`, leaves the session usable): advisory then
 * if the handler leaves the function, or ends a retry loop whose passes start with `rollback()`.
 * Silent look-alikes: `async with session.begin():`, a session `with` inside the `try` (it has
 * exited, rolling back, before the handler runs), `try/except: rollback(); raise`, a handler that
 * only catches unrelated errors, a `finally` that closes the session (or hands it to a helper), a
 * request handler's injected session when the handler only answers (the dependency's teardown
 * closes it), a session of the function's own that nothing uses after the handler, and a staged
 * `add`/`delete` (nothing reaches the database inside the `try`).
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import { exclusiveArms, ifBranches } from '../../../semantic/controlFlow.js';
import { catchesDbErrors, catchesOnlyConstraintViolations, caughtNames, isDbErrorName } from '../../../semantic/dbErrors.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import type { Effect } from '../../../analysis/summary.js';
import { callGraphOf, siteCalls, type CallGraph, type FnRef } from '../../../analysis/callgraph.js';
import { UNTYPED } from '../../../analysis/objects.js';
import { FLUSH_EFFECT, QUERY_EFFECT, WRITE_EFFECT } from '../query/dbCalls.js';
import { COMMIT_EFFECT, OWN_COMMIT_EFFECT, TXN_LOOP_CALL } from './effects.js';
import type { CallInfo, FileModel } from '../../../semantic/model.js';
import type { ProjectContext } from '../../../discovery/context.js';
import { assignmentsTo, callAt, effectiveRole, flaskSessionAlias, isFlaskHandle, variableRefs } from '../../../semantic/model.js';
import { typeString } from '../../../semantic/valueTypes.js';
import { sessionHelperOfCall } from '../../../semantic/sessionFactories.js';
import {
  callsOf, enclosingTries, exceptClauses, externalCall, finallyClause, inManagingWith, isCommitCall, isWriteCall, receiverKey,
  callArgs, unwrap, withOpensSession,
} from './semantics.js';
import { classifyDbCall, flaskQueryEntity, isSqliteDriver, readsDatabase, receiverDriver, receiverEvidence } from '../query/dbCalls.js';


export const missingRollback: FileRule & RepoRule = {
  meta: {
    code: 'PA204',
    check: 'missing_rollback',
    family: 'transaction',
    severity: 'medium',
    effort: 'S',
    summary: 'A failed commit, flush or statement whose session is never rolled back before it is used again',
    what: 'Finds a `try` around a commit, flush, statement or query whose `except` catches database errors (bare, `Exception`, `SQLAlchemyError`, `IntegrityError`, …) and neither calls `rollback()` nor re-raises while the session is used again — after the `try`, or by the next iteration of a loop around it (`for row in rows: db.add(...); try: db.commit() except IntegrityError: continue`: after the first duplicate every commit fails; also a DB-API cursor, whose transaction refuses every statement after an error; not inside `begin_nested()`, nor on an autocommit connection) — or uses the session before its rollback; and a commit outside any `try` and session `with` that follows a write and a call that can fail outside the database (network, file I/O), so a failure there leaves the flushed writes on a session nobody rolls back — only for a session that outlives the function and that no caller owns (a module-level session, one the function keeps open itself): a session handed in as a parameter is closed, and rolled back, by whoever handed it in, and Flask-SQLAlchemy\'s `db.session` by the app context\'s teardown. A handler that hands the session to a helper (`reset(session)`) before using it is taken to clean it up. Low when a session `with` around the commit rolls back on exit anyway, and when the session is the function\'s parameter and nothing after the handler uses it here: only a caller that goes on with it meets it failed, and its next statement raises `PendingRollbackError` then, loudly. Also through calls: in a loop that goes on, a `try` around a call of a same-repo function that reaches the database (not a session provider called as a `with` item, nor a function that opens a session of its own — with a factory or a project helper that returns a new one on every call, `session = get_session_sync()` — nor one whose writes all sit in a `try` that rolls back and re-raises: the caller\'s handler then gets a session already rolled back; nor, under a handler of constraint violations only, `except IntegrityError:`, a function that reaches no write, which raises none) whose handler swallows the error: `low`, since the helper fails in other ways too. On Flask\'s request-scoped session (`db.session`, `g.session`) in a function that does not use it again and whose handler answers the request (`return jsonify(...)`, `return body, 409`), advisory when nothing in the repo calls that function (a project\'s own view classes, dispatched by its router); not in a background job, nor in a module that pushes one app context for a whole worker: the request\'s teardown removes the session, rolling back, before anyone meets it failed. A module-level name for that session (`db_session = db.session`, in the same file or imported from a module of the project such as the blueprint package\'s `__init__`) is the same session. A `try` whose body only reads (queries and statements that read, the methods down their chains such as `.one()`, library calls; no commit, flush, DML, staged write, nor call of the project\'s own code — unless the session is the function\'s own parameter or local and the call, of a function the module imports or defines, is not handed it) is `low`: its usual failure, `NoResultFound`/`MultipleResultsFound`, is raised by SQLAlchemy after the rows came back and leaves the session usable, and only a statement failing on the server (PostgreSQL\'s aborted transaction) makes the next statement fail; advisory when the handler then leaves the function (a `return`, or a retry loop whose every pass starts with `rollback()` and after which the function does not use the session), medium still in a loop that goes on. A handler that catches only those result errors (`except NoResultFound:`, `except orm.exc.NoResultFound or exc.InterfaceError:`, which Python evaluates to the first class) is not one that catches database errors. Also a function whose own `try` (outside any loop) swallows such a call\'s failure when a caller of the repo runs it once per item of a loop and opens no session of its own (a queue consumer\'s `for msg in consumer: on_message(msg)` in one app context, `on_message` catching everything around a helper that commits): low, reported at the call in the `try`. And a handler that catches what a callee raised out of a failed session operation without rolling back — the callee\'s `except IntegrityError: raise NotUnique(name) from e` with no rollback (or savepoint) before it, or a flush, commit or write outside any `try` of the callee, whose database error goes up as it is — and then uses the same session (a call through the same repository object, or handed the same session, that reaches the database: `except NotUnique: return repo.get_by_name(name)`): medium, at that call, which meets the failed transaction (`PendingRollbackError`). Silent when the callee rolls back before raising or uses `begin_nested()`, when the `try` itself runs the call inside a savepoint (`with session.begin_nested(): create(...)`), and when the handler does not use the session.',
    why: 'After a failed flush or commit a SQLAlchemy session refuses all further work until `rollback()` is called (`PendingRollbackError`), and its connection stays inside the failed transaction. An error swallowed without a rollback, or an exception between the writes and the commit, leaves the session and its connection in that state for whoever uses them next.',
    bad:
      'import logging\n\nfrom sqlalchemy.exc import SQLAlchemyError\nfrom sqlalchemy.orm import Session\n\nfrom app.models import User\n\nlog = logging.getLogger(__name__)\n\n\n'
      + 'def save(db: Session, user: User) -> bool:\n    db.add(user)\n    try:\n        db.commit()\n    except SQLAlchemyError:\n        log.exception("could not save user")\n        return False\n    return True\n',
    good:
      'import logging\n\nfrom sqlalchemy.exc import SQLAlchemyError\nfrom sqlalchemy.orm import Session\n\nfrom app.models import User\n\nlog = logging.getLogger(__name__)\n\n\n'
      + 'def save(db: Session, user: User) -> bool:\n    db.add(user)\n    try:\n        db.commit()\n    except SQLAlchemyError:\n        db.rollback()\n        log.exception("could not save user")\n        return False\n    return True\n',
    fix: 'use `async with session.begin():` (or `with Session.begin()`), or `try: … commit() except: rollback(); raise`',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#framing-out-a-begin-commit-rollback-block',
      'https://docs.sqlalchemy.org/en/20/errors.html#error-7s2a',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    const reported = new Set<string>();
    for (const call of model.calls) {
      if (call.functionIndex < 0 || !canFailOnSession(model, call)) continue;
      const session = receiverKey(call);
      if (!session) continue;
      const fn = model.functions[call.functionIndex]!;
      const tries = enclosingTries(call.node, fn.node);
      const managed = inManagingWith(model, call);
      if (tries.length) {
        // SQLite through the standard library keeps its transaction after a failed statement
        // (only the statement is undone; `PendingRollbackError` is SQLAlchemy's, and PostgreSQL's
        // aborted transaction has no counterpart): the session is not left failed.
        if (isSqliteDriver(receiverDriver(model, call))) continue;
        const verdict = handlerVerdict(model, call, session, tries, removedRegistries(ctx.project));
        if (!verdict) continue;
        const key = `${verdict.tryNode.id}:${session}`;
        if (reported.has(key)) continue;
        reported.add(key);
        const header = verdict.handler.text.slice(0, Math.max(0, verdict.handler.text.indexOf(':'))).replace(/\s+/g, ' ').trim();
        ctx.report({
          node: call.node,
          message: verdict.reuse
            ? `\`${call.calleeText}()\` can fail in this \`try\`, and its \`${header}\` handler uses \`${session}\` again (\`${verdict.reuse}\`) before any rollback: `
              + (verdict.raiser === verdict.reuse ? 'that call raises `PendingRollbackError`'
                : verdict.raiser ? `it only stages, and \`${verdict.raiser}\` then raises \`PendingRollbackError\``
                : 'it only stages, and the session\'s next statement or commit raises `PendingRollbackError`')
            : verdict.readOnly
              ? `\`${call.calleeText}()\` only reads in a \`try\` whose \`${header}\` handler neither rolls back nor re-raises: a missing or duplicate row (\`NoResultFound\`, \`MultipleResultsFound\`) leaves the session usable, but a statement that fails on the server leaves the transaction aborted (\`InFailedSqlTransaction\` on PostgreSQL) for ${verdict.readOnly === 'leaves' ? 'the caller' : 'the rest of the function'}, whose next statement or commit then fails`
            : verdict.nextIteration
              ? `\`${call.calleeText}()\` is in a \`try\` whose \`${header}\` handler neither rolls back nor re-raises, inside a loop that goes on: the next iteration uses \`${session}\` in its failed transaction, so after the first error every later one fails too (\`PendingRollbackError\`, or \`InFailedSqlTransaction\` on a DB-API connection)`
              : `\`${call.calleeText}()\` is in a \`try\` whose \`${header}\` handler neither rolls back nor re-raises: the session is left in a failed transaction`
                + (verdict.callersOnly ? ` for the callers of \`${fn.name}\`, which handed it in: one that goes on with \`${session}\` gets \`PendingRollbackError\` at its next statement` : ''),
          severity: (managed && !verdict.nextIteration) || verdict.readOnly || verdict.callersOnly ? 'low' : 'medium',
          // Only a server-side failure of a read leaves the session failed, and the handler leaves:
          // the caller's next statement raises instead of going on with lost writes.
          ...(verdict.readOnly === 'leaves' ? { advisory: 'the `try` only reads and its handler leaves the function: the usual failure of a read (`NoResultFound`, `MultipleResultsFound`) is raised by SQLAlchemy after the rows came back and leaves the session usable; a statement that fails on the server makes the caller\'s next statement fail loudly, losing nothing silently' } : {}),
          ...(verdict.requestScoped ? { rolledBackAtTeardown: `\`${session}\` is Flask's request-scoped session, which the request's teardown removes (rolling back), and nothing in the repo calls \`${fn.name}\`, which does not use the session again after the handler: no one meets it failed` } : {}),
        });
        continue;
      }
      if (call.method !== 'commit' || managed || inFinallyClosedScope(call, session)) continue;
      // The call's failure reaches whoever owns the session: a caller that handed it in (its
      // `with`, `finally` or the request's teardown closes it, rolling back), or Flask-SQLAlchemy,
      // whose app-context teardown removes `db.session`. Only a session this function keeps
      // open itself is left holding the flushed writes for the next commit.
      if (ownedElsewhere(model, call, session)) continue;
      const risky = failingCallBeforeCommit(model, call);
      if (!risky) continue;
      ctx.report({
        node: call.node,
        message: `\`${call.calleeText}()\` is outside any \`try\` or session \`with\`, after \`${risky.write}\` and \`${risky.call}\`: if that call fails, the flushed writes stay on a session nobody rolls back`,
      });
    }
  },
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    reportHandledReuses(ctx, graph);
    const done = new Set<string>();
    for (const { ref, file, fn, site, call, to } of siteCalls(graph, SWALLOWED_CALLS)) {
      // A session provider (`with session_scope() as s:`, a generator): each item gets a session
      // of its own, and the `with` exits, rolling back, before the handler runs.
      if (call.receiverType === UNTYPED || call.withItem || graph.function(to).isGenerator) continue;
      const reach = graph.effectOf(to, QUERY_EFFECT, 'any') ?? graph.effectOf(to, WRITE_EFFECT, 'any') ?? graph.effectOf(to, FLUSH_EFFECT, 'any');
      if (!reach || reach.weak) continue;
      // A helper that opens a session of its own (the callee, or a function on the way to the
      // statement: `Database.execute` → `async with self.connect()`) starts each item afresh.
      // (Only on the chain to the statement, not any function below: deep in a large graph some
      // function always does.)
      const opensOwn = (f: FnRef) => graph.ownEffects(f).some((e) => e.kind === OWN_COMMIT_EFFECT || e.kind === OPENS_SESSION || e.kind === OWN_SCOPE);
      if (opensOwn(to) || reach.steps.some((st) => opensOwn(st.fn))) continue;
      // Through the alias of a `with` in the `try` whose manager opens a session of its own: its
      // exit ended that session before the handler ran, and the next item gets a new one.
      const unit = (JSON.parse(site.what) as { unit?: { line: number; column: number } }).unit;
      const manager = unit ? graph.callAt(ref.file, unit.line, unit.column) : undefined;
      const managerFn = manager ? graph.resolveCall(ref.file, manager) : null;
      if (managerFn && graph.ownEffects(managerFn).some((e) => e.kind === OPENS_SESSION)) continue;
      // A helper that wraps its own writes in `except: session.rollback(); raise` hands the
      // caller's handler a clean session: the writes that fail on the database are rolled back
      // where they failed (what else it runs is a read, whose usual error — no row — is not one).
      if (cleansUp(graph, to)) continue;
      const fact = JSON.parse(site.what) as { header: string; top?: number };
      // A handler of unique violations only (`except IntegrityError:`): a callee that reaches no
      // write raises none (nothing of its own to flush), so it is not what the handler catches.
      if (catchesOnlyConstraintViolations({ text: fact.header }) && !WRITES.some((k) => graph.reaches(to, k, 'any'))) continue;
      // A `try` outside any loop of its function: a caller must run the function once per item
      // of a loop (a consumer's `for msg in consumer: on_message(msg)`) on the same session.
      const perItem = fact.top ? perItemCaller(graph, ref) : null;
      if (fact.top && !perItem) continue;
      const key = `${file.path}:${site.what}`;
      if (done.has(key)) continue;
      done.add(key);
      // Where the next use of the failed session comes from: the loop around the `try`, or a caller's.
      const loop = perItem
        ? `, and \`${fn.name}\` runs once per item of a loop in \`${graph.function(perItem.ref).qualifiedName}\` (${graph.fileOf(perItem.ref).path}:${perItem.line}) on the same session`
        : ', inside a loop that goes on';
      ctx.report({
        path: file.path,
        location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
        message: `\`${call.calleeText}()\` reaches the database (\`${graph.chainNames(reach).join('` → `')}()\`) in a \`try\` whose \`${fact.header}\` handler neither rolls back nor re-raises${loop}: after a failed flush or commit the session refuses all work (\`PendingRollbackError\`), and on PostgreSQL any failed statement aborts the transaction (\`InFailedSqlTransaction\`), so every later ${perItem ? 'item' : 'iteration'} fails too; roll back in the handler`,
        // Low: the helper can fail in many ways besides the database; only a database error
        // leaves the session failed (a statement or commit written in the `try` is the file rule's, medium).
        severity: 'low',
        function: fn.name,
        chain: graph.chainSteps(reach, { ref, call }),
      });
    }
  },
};

const WRITES: readonly string[] = [WRITE_EFFECT, FLUSH_EFFECT, COMMIT_EFFECT];

/** A loop whose every iteration starts afresh (`what` = its first and last line, `a-b`). */
const LOOP_RESETS = 'loop_resets';
/** What starts an iteration afresh: a rollback, a scoped session's removal, a close, a context or session opened in it. */
const ITERATION_RESET = /\.(rollback|remove|close)\s*\(|\b(app_context|test_request_context|request_context|session_scope)\s*\(|\bwith\s+[\w.]*(Session|session|Maker|maker)\w*\s*\(|\.begin\s*\(/;

/**
 * A caller that runs `fn` once per item of a loop (a `TXN_LOOP_CALL` site at the call) and opens
 * no session of its own (which could be a fresh one per item): the first such call.
 */
function perItemCaller(graph: CallGraph, fn: FnRef): { ref: FnRef; line: number } | null {
  for (const edge of graph.callers(fn)) {
    if (edge.weak || edge.from.file === fn.file && edge.from.fn === fn.fn) continue;
    const own = graph.ownEffects(edge.from);
    if (own.some((e) => e.kind === OPENS_SESSION || e.kind === OWN_COMMIT_EFFECT || e.kind === OWN_SCOPE)) continue;
    // A loop that starts each iteration afresh (a context per item, a rollback or removal in it).
    if (own.some((e) => {
      if (e.kind !== LOOP_RESETS) return false;
      const [a = 0, b = 0] = e.what.split('-').map(Number);
      return edge.call.line >= a && edge.call.line <= b;
    })) continue;
    if (own.some((e) => e.kind === TXN_LOOP_CALL && e.line === edge.call.line && e.column === edge.call.column)) return { ref: edge.from, line: edge.call.line };
  }
  return null;
}

/**
 * Does every write the function makes, itself or through its callees, fail into a rollback and
 * re-raise ({@link CLEANS_UP})? A function that cleans up does; one with writes of its own outside
 * such a `try` does not; otherwise each callee that reaches a write must (a few levels deep). A
 * function that reaches no write at all is not one: its reads can still fail on the session.
 */
function cleansUp(graph: CallGraph, fn: FnRef, depth = 0): boolean {
  const own = graph.ownEffects(fn);
  if (own.some((e) => e.kind === CLEANS_UP)) return true;
  if (depth >= 3 || own.some((e) => WRITES.includes(e.kind))) return false;
  const writing = graph.callees(fn).filter((e) => WRITES.some((k) => graph.reaches(e.to, k, 'any')));
  return writing.length > 0 && writing.every((e) => e.to !== fn && cleansUp(graph, e.to, depth + 1));
}

/**
 * Site fact: a call in a loop's `try` whose handler swallows every error and goes on (`what` = JSON
 * {header, try, top?}); `top` when the `try` is in no loop of its function (a caller's loop decides).
 */
export const SWALLOWED_CALL = 'swallowed_call';
const SWALLOWED_CALLS: ReadonlySet<string> = new Set([SWALLOWED_CALL]);

/**
 * PA204's facts for the repo phase: calls of functions that may reach the database, made in the
 * body of a `try` inside a loop whose handler catches database errors and then neither rolls
 * back, re-raises, closes, nor leaves the loop. Calls on a session itself are the file rule's.
 */
export function collectSwallowedCalls(model: FileModel, project?: ProjectContext): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return out;
  // Functions that open a session of their own (`with Maker() as s:`, `s = Session()`): what they
  // run is on a fresh session each call.
  for (const w of model.withs) {
    if (w.functionIndex >= 0 && w.items.some((i) => withOpensSession(model, i.value, w.functionIndex))) out[w.functionIndex]!.push({ kind: OPENS_SESSION, what: '', line: w.node.startPosition.row + 1, column: w.node.startPosition.column + 1 });
  }
  for (const a of model.assignments) {
    if (a.functionIndex < 0 || !a.value || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
    // A session factory called, or a project helper that makes a new session on every call
    // (`session = get_session_sync()` where it returns `Session(engine)`).
    const v = unwrap(a.value);
    if (opensSessionValue(model, a.value, a.functionIndex) || (project && v && sessionHelperOfCall(model, project, v))) out[a.functionIndex]!.push({ kind: OPENS_SESSION, what: '', line: a.line, column: 1 });
  }
  // oslo.db's enginefacade (`@main_context_manager.writer`, `@enginefacade.reader`): each call
  // runs in a transaction of its own on the request context, rolled back when it raises.
  if (/\b(reader|writer)\b/.test(model.source)) {
    model.functions.forEach((f, i) => {
      if (f.decoratorNames.some((d) => ENGINEFACADE_SCOPE.test(d))) out[i]!.push({ kind: OWN_SCOPE, what: '', line: f.node.startPosition.row + 1, column: 1 });
    });
  }
  // Loops whose every iteration starts afresh: a context or session opened in the loop
  // (`with app.app_context():`, `with Maker() as s:`), or a rollback/removal in its body.
  if (/rollback|remove|close|app_context|request_context|Session|session_scope|begin\(/.test(model.source)) {
    for (const loop of model.loops) {
      if (loop.functionIndex < 0 || loop.kind === 'comprehension') continue;
      const body = loop.node.childForFieldName('body');
      if (!body || !ITERATION_RESET.test(body.text)) continue;
      out[loop.functionIndex]!.push({ kind: LOOP_RESETS, what: `${loop.node.startPosition.row + 1}-${loop.node.endPosition.row + 1}`, line: loop.node.startPosition.row + 1, column: loop.node.startPosition.column + 1 });
    }
  }
  if (!/\btry\s*:/.test(model.source) || !/\bexcept\b/.test(model.source)) return out;
  if (model.source.includes('rollback')) cleanUpFunctions(model, out);
  const autocommit = new Map<number, boolean>();
  for (const call of model.calls) {
    // Outside a loop too: the function may be what a caller's loop runs per item (`on_message`
    // of a consumer): the repo phase asks for such a caller (`top`).
    if (call.functionIndex < 0 || call.offloaded || canFailOnSession(model, call)) continue;
    if (call.qualifiedName?.startsWith('builtins.') || (call.qualifiedName && /^(logging|json|re|os|sys|time|datetime)\./.test(call.qualifiedName))) continue;
    const fn = model.functions[call.functionIndex]!;
    const tries = enclosingTries(call.node, fn.node);
    const t = tries.find((x) => exceptClauses(x).some((h) => catchesDbErrors(h)));
    if (!t) continue;
    const body = t.childForFieldName('body');
    const fin = finallyClause(t);
    if (fin && /\b(close|rollback|remove)\s*\(/.test(fin.text)) continue;
    if (!autocommit.has(call.functionIndex)) autocommit.set(call.functionIndex, /\bautocommit\s*=\s*True\b/.test(fn.node.text));
    if (/\bbegin_nested\s*\(/.test(body?.text ?? '') || autocommit.get(call.functionIndex)) continue;
    // A statement or commit written in the `try` itself is the file rule's (one finding a `try`).
    if (body && model.calls.some((c) => c.functionIndex === call.functionIndex && c.node.startIndex >= body.startIndex && c.node.endIndex <= body.endIndex && canFailOnSession(model, c))) continue;
    // Inside a session `with` in the `try` (`with unit() as s: helper(s)`): it has exited, rolling
    // back, before the handler runs.
    const inTry = (wi: number) => !!body && model.withs[wi]!.node.startIndex >= body.startIndex && model.withs[wi]!.node.endIndex <= body.endIndex;
    if (call.withs.some((wi) => inTry(wi) && model.withs[wi]!.items.some((i) => withOpensSession(model, i.value, call.functionIndex)))) continue;
    // A call through the alias of a `with` in the `try` whose context manager is a call of the
    // repo handed nothing of the caller's (`async with deps.chat_repository() as repo:
    // await repo.reset(id)`): the repo phase decides, by whether that function opens a session of
    // its own, which its exit ends before the handler runs. Not `open(p)`, nor a manager handed
    // the caller's session (`with scoped(db) as s`, `with Repository(db) as r`).
    const unit = call.withs.some(inTry) ? unitThrough(model, call, fn.params, call.withs.filter(inTry)) : undefined;
    // The loop must be around the `try`, inside the function, and not make a session per item;
    // without one, the `try` must be the function's own (not in a nested def or a branch that
    // another `try` holds), and a caller's loop decides.
    const loop = enclosingLoop(t, fn.node);
    const top = !loop;
    if (top ? (call.loops.length > 0 || enclosingTries(t, fn.node).length > 0) : loopOpensSession(model, call, loop, t)) continue;
    const handler = exceptClauses(t).find((h) => catchesDbErrors(h))!;
    const hb = handler.namedChildren.find((c) => c.type === 'block') ?? handler;
    if (/\b\w*rollback\w*\s*\(|\b(close|invalidate|remove)\s*\(/.test(hb.text)) continue;
    // A re-raise of the handler's own block, unless a branch before it goes on with the loop
    // (`if force: continue` then `raise`); one under a branch leaves the other branch going on.
    if (hb.namedChildren.some(raises) && !hb.descendantsOfType('continue_statement').length) continue;
    if (top && hb.descendantsOfType('raise_statement').length) continue;
    const last = hb.namedChildren.filter((c) => c.type !== 'comment').pop();
    if (!top && last && (last.type === 'return_statement' || last.type === 'break_statement')) continue;
    const header = handler.text.slice(0, Math.max(0, handler.text.indexOf(':'))).replace(/\s+/g, ' ').trim();
    out[call.functionIndex]!.push({ kind: SWALLOWED_CALL, what: JSON.stringify({ header, try: t.startPosition.row + 1, ...(unit ? { unit } : {}), ...(top ? { top: 1 } : {}) }), line: call.line, column: call.column });
  }
  raisedUnrolled(model, out);
  handledReuses(model, out);
  return out;
}

/**
 * A function whose `try` around a session operation (a flush, commit or statement) catches the
 * database error and raises without rolling back (`except IntegrityError as e: raise
 * NotUnique(name) from e`, or a bare `raise`): the caller gets the exception with the session
 * still in its failed transaction. `what` = the classes the caller can catch, space-separated.
 */
export const RAISES_UNROLLED = 'raises_unrolled';
/** {@link RAISES_UNROLLED} for a write, flush or commit outside any `try`: the database's own error goes up. */
const DB_RAISED = '<database error>';

/**
 * Site fact: a call in a `try` whose handler catches a named exception class and then uses the
 * session again (`except NotUnique: return repo.get_by_name(name)`): `what` = JSON {caught,
 * reuse: [line, column, text]}. The repo phase reports it when the call raises that class
 * without rolling back ({@link RAISES_UNROLLED}) and the reuse reaches the database.
 */
export const HANDLED_REUSE = 'handled_reuse';

function raisedUnrolled(model: FileModel, out: Effect[][]): void {
  const seen = new Set<number>();
  for (const call of model.calls) {
    if (call.functionIndex < 0 || !canFailOnSession(model, call) || !receiverKey(call)) continue;
    const fn = model.functions[call.functionIndex]!;
    // A session `with` (or `begin()` block) around it rolls back as the error leaves it; a
    // generator (a provider) is another protocol.
    if (fn.isGenerator || inManagingWith(model, call)) continue;
    const t = enclosingTries(call.node, fn.node)[0];
    // Outside any `try`: the database error itself goes up, the session left failed.
    if (!t) {
      if (call.method === 'flush' || call.method === 'commit' || classifyDbCall(model, call)?.kind === 'write') {
        out[call.functionIndex]!.push({ kind: RAISES_UNROLLED, what: DB_RAISED, line: call.line, column: call.column });
      }
      continue;
    }
    if (seen.has(t.id)) continue;
    const fin = finallyClause(t);
    if (fin && /\b(close|rollback|remove)\s*\(/.test(fin.text)) continue;
    const names = new Set<string>();
    for (const h of exceptClauses(t)) {
      if (!catchesDbErrors(h)) continue;
      const hb = h.namedChildren.find((c) => c.type === 'block') ?? h;
      if (/\b\w*rollback\w*\s*\(|\b(close|invalidate|remove)\s*\(|\bbegin_nested\s*\(/.test(hb.text)) continue;
      const last = hb.namedChildren.filter((c) => c.type !== 'comment').pop();
      if (last?.type !== 'raise_statement') continue;
      const raised = last.namedChild(0);
      // A bare `raise` (or `raise e` of the handler's own name): the caught classes go on; else
      // the class raised (`raise Conflict`, `raise Conflict(...) from e`).
      const alias = /\bas\s+([A-Za-z_]\w*)\s*$/.exec(h.text.slice(0, Math.max(0, h.text.indexOf(':'))))?.[1];
      const head = raised?.type === 'call' ? raised.childForFieldName('function') : raised;
      const cls = !raised || (raised.type === 'identifier' && raised.text === alias) ? caughtClassNames(h) : [head?.text.split('.').pop() ?? ''];
      for (const n of cls) if (/^[A-Za-z_]\w*$/.test(n)) names.add(n);
    }
    seen.add(t.id);
    if (names.size) out[call.functionIndex]!.push({ kind: RAISES_UNROLLED, what: [...names].join(' '), line: call.line, column: call.column });
  }
}

/** The class names an `except` clause names, unqualified (bare: `BaseException`). */
function caughtClassNames(handler: SyntaxNode): string[] {
  const names = caughtNames(handler) ?? [];
  return names.length ? names.map((x) => x.split('.').pop()!) : ['BaseException'];
}

/** Arguments that carry a session: a session or connection, a repository or unit of work built on one. */
const SESSION_LIKE = /(^|[._])(db|session|sess|conn|connection|repo|repository|uow|unit_of_work|store|dao|tx|transaction)(_\w*)?$|^s$/i;
/** Names that only point at a session (an id, a URL, a name): not one. */
const NOT_A_SESSION = /_(id|ids|url|uri|name|names|key|string|str|config|settings|factory|maker)$/i;

/** Is the call inside a `with`/`async with ...begin_nested():` block that lies within `outer`? */
function inSavepointWithin(model: FileModel, call: CallInfo, outer: SyntaxNode): boolean {
  return model.withs.some((w) => w.functionIndex === call.functionIndex && w.node.startIndex > outer.startIndex && w.node.endIndex <= outer.endIndex
    && w.bodyStart <= call.node.startIndex && call.node.endIndex <= w.bodyEnd && w.items.some((i) => /\.begin_nested\s*\(/.test(i.value.text)));
}

function handledReuses(model: FileModel, out: Effect[][]): void {
  for (const call of model.calls) {
    if (call.functionIndex < 0 || call.offloaded || canFailOnSession(model, call)) continue;
    const fn = model.functions[call.functionIndex]!;
    const t = enclosingTries(call.node, fn.node)[0];
    if (!t) continue;
    // Inside a savepoint the try opens (`async with session.begin_nested(): await create(...)`):
    // the failure rolls back to the savepoint as the block exits, and the session stays usable.
    if (inSavepointWithin(model, call, t)) continue;
    // The receiver the try's call goes through (`repo`, `self.repo`) or the names it hands on
    // (`create(db, ...)`): a handler call on the same, or handed the same, shares its session.
    const receiver = call.hasReceiver ? receiverKey(call) ?? call.dottedReceiver : null;
    const handed = callArgs(call.node).positional.filter((a) => (a.type === 'identifier' || a.type === 'attribute') && SESSION_LIKE.test(a.text) && !NOT_A_SESSION.test(a.text)).map((a) => a.text);
    if (!receiver && !handed.length) continue;
    for (const h of exceptClauses(t)) {
      const caught = caughtClassNames(h);
      if (!caught.length) continue;
      const hb = h.namedChildren.find((c) => c.type === 'block') ?? h;
      const rollbackAt = firstMatch(hb.text, /\b\w*rollback\w*\s*\(/);
      const reuse = callsOf(model, call.functionIndex).find((c) => c.node.startIndex >= hb.startIndex && c.node.endIndex <= hb.endIndex
        && (rollbackAt < 0 || c.node.startIndex - hb.startIndex < rollbackAt)
        && ((receiver !== null && c.hasReceiver && (receiverKey(c) ?? c.dottedReceiver) === receiver && c.method !== 'rollback')
          || callArgs(c.node).positional.some((a) => handed.includes(a.text))));
      if (!reuse) continue;
      out[call.functionIndex]!.push({ kind: HANDLED_REUSE, what: JSON.stringify({ caught, reuse: [reuse.line, reuse.column, reuse.calleeText] }), line: call.line, column: call.column });
      break;
    }
  }
}

/**
 * The context manager of a `with` (among `withs`) that `call` is a method of (`desk.reopen(id)`
 * in `with desk_for() as desk:`), when it is a call of the repo handed nothing of the caller's
 * ({@link unitManagerCall}) and the method is handed nothing the function got from outside the
 * loop (a parameter, `self`, a module name: `audit.retitle(db, id)` may work on the shared `db`).
 */
function unitThrough(model: FileModel, call: CallInfo, params: readonly { name: string }[], withs: readonly number[]): { line: number; column: number } | undefined {
  const receiverRoot = call.receiver ? /^[A-Za-z_]\w*/.exec(call.receiver.text)?.[0] : undefined;
  if (!receiverRoot) return undefined;
  const outer = (call.node.childForFieldName('arguments')?.namedChildren ?? []).some((a) => {
    const v = a.type === 'keyword_argument' ? a.childForFieldName('value') : a;
    const root = v && /^[A-Za-z_]\w*/.exec(v.text)?.[0];
    return !!root && (v!.type === 'identifier' || v!.type === 'attribute') && (params.some((p) => p.name === root) || root === 'self'
      || assignmentsTo(model, root).some((b) => b.functionIndex < 0 && b.value !== null && !inClassBody(b.node)));
  });
  if (outer) return undefined;
  let unit: { line: number; column: number } | undefined;
  for (const wi of withs) {
    for (const i of model.withs[wi]!.items) {
      const c = i.alias === receiverRoot ? unitManagerCall(model, i.value) : undefined;
      if (c) unit = { line: c.line, column: c.column };
    }
  }
  return unit;
}

/** Is the statement in a class body (a field declaration, not a module name)? */
function inClassBody(node: SyntaxNode): boolean {
  for (let p = node.parent; p; p = p.parent) if (p.type === 'class_definition') return true;
  return false;
}

/** An oslo.db enginefacade transaction scope as a decorator: `main_context_manager.writer`, `enginefacade.reader.allow_async`. */
const ENGINEFACADE_SCOPE = /(^|\.)(enginefacade|\w*context_manager|\w*_CONTEXT)\.(reader|writer)(\.(allow_async|independent))?$/;

/**
 * Own effect: each call of the function is a transaction scope of its own that rolls back when
 * it raises (oslo.db's enginefacade decorators). Unlike {@link OPENS_SESSION} it says nothing of
 * the work per call: a reader so decorated is a plain read to the query rules.
 */
const OWN_SCOPE = 'own_scope';

/** Own effect: the function opens a session of its own (a `with` or an assignment from a factory). */
export const OPENS_SESSION = 'opens_session';

/** The call of a `with` item that may be a unit of the repo's own: not a builtin, and handed no name or attribute (`scoped(db)`, `Repository(db)`, `open(p)` are not). */
function unitManagerCall(model: FileModel, value: SyntaxNode): CallInfo | undefined {
  const v = unwrap(value);
  if (v?.type !== 'call') return undefined;
  const args = (v.childForFieldName('arguments')?.namedChildren ?? []).filter((a) => a.type !== 'comment');
  if (args.some((a) => a.type === 'identifier' || a.type === 'attribute' || (a.type === 'keyword_argument' && /^(identifier|attribute)$/.test(a.childForFieldName('value')?.type ?? '')))) return undefined;
  const c = callAt(model, v);
  return c && !c.qualifiedName?.startsWith('builtins.') ? c : undefined;
}

/**
 * Own effect: the function's writes that can fail on the database (a flush, a commit, a
 * statement) all sit in `try` blocks whose handler rolls the session back and re-raises: a caller
 * that swallows the error gets a session already rolled back.
 */
export const CLEANS_UP = 'cleans_up';

/** The functions of the file whose failing writes are all rolled back and re-raised in place (see {@link CLEANS_UP}). */
function cleanUpFunctions(model: FileModel, out: Effect[][]): void {
  const guarded = new Map<number, { line: number; column: number }>();
  const unguarded = new Set<number>();
  for (const call of model.calls) {
    if (call.functionIndex < 0 || call.method === 'rollback' || !canFailOnSession(model, call)) continue;
    const op = call.method === 'commit' || call.method === 'flush' ? null : classifyDbCall(model, call);
    if (op?.kind === 'read') continue;
    const fnNode = model.functions[call.functionIndex]!.node;
    const safe = enclosingTries(call.node, fnNode).some((t) => {
      const handlers = exceptClauses(t).filter((h) => catchesDbErrors(h));
      return handlers.length > 0 && handlers.every((h) => {
        const hb = h.namedChildren.find((c) => c.type === 'block') ?? h;
        return /\b\w*rollback\s*\(/.test(hb.text) && hb.namedChildren.some(raises);
      });
    });
    if (!safe) unguarded.add(call.functionIndex);
    else if (!guarded.has(call.functionIndex)) guarded.set(call.functionIndex, { line: call.line, column: call.column });
  }
  for (const [fn, at] of guarded) if (!unguarded.has(fn)) out[fn]!.push({ kind: CLEANS_UP, what: '', ...at });
}

/** `Maker()`, `Session(bind=...)`, `factory()` typed as a sessionmaker: a new session. */
function opensSessionValue(model: FileModel, value: SyntaxNode, fnIndex: number): boolean {
  const v = unwrap(value);
  if (v?.type !== 'call') return false;
  const fn = v.childForFieldName('function');
  const callee = fn?.text.replace(/\s+/g, '') ?? '';
  // A factory called by its name (not a chain such as `s.execute(q).scalar_one()`).
  if (!fn || !/^[A-Za-z_][\w.]*$/.test(callee)) return false;
  if (/(^|\.)(Session|AsyncSession)$/.test(callee)) return true;
  // Only a name that could be a factory is typed (typing every assignment of a large tree costs).
  if (!/(session|maker|factory|db)\w*$/i.test(callee)) return false;
  const t = typeString(model, fn, fnIndex, v.startPosition.row + 1);
  return !!t && /(^|\.)(async_)?sessionmaker\(\)$|(^|\.)(async_)?sessionmaker$/.test(t);
}

/**
 * Does the loop around the `try` make a session of its own each iteration, before the `try`
 * (`for x in xs: s = Maker(); try: work(s, x) except: log`, or a session `with` around the `try`)?
 * The next iteration starts afresh.
 */
function loopOpensSession(model: FileModel, call: CallInfo, loop: SyntaxNode, tryNode: SyntaxNode): boolean {
  const body = loop.childForFieldName('body');
  if (!body) return false;
  // `for x in xs: with Maker() as s: try: ...`: a session `with` inside the loop, around the `try`.
  if (model.withs.some((w) => w.functionIndex === call.functionIndex && w.node.startIndex >= body.startIndex && w.bodyStart <= tryNode.startIndex && tryNode.endIndex <= w.bodyEnd
    && w.items.some((i) => withOpensSession(model, i.value, call.functionIndex)))) return true;
  return model.assignments.some((a) => a.functionIndex === call.functionIndex && a.value && a.node.startIndex >= body.startIndex && a.node.endIndex <= tryNode.startIndex
    && opensSessionValue(model, a.value, call.functionIndex));
}

/** Is the session a parameter of the function (`self.session` included) or Flask-SQLAlchemy's `db.session`? */
function ownedElsewhere(model: FileModel, call: CallInfo, session: string): boolean {
  if (isFlaskHandle(model, call.dottedReceiver, 'session') || flaskSessionAlias(model, session) !== null) return true;
  const head = session.split('.')[0]!;
  return model.functions[call.functionIndex]!.params.some((p) => p.name === head);
}

/** Session calls that send something to the database and can fail there: a commit, a flush, a statement or a query. */
function canFailOnSession(model: FileModel, call: CallInfo): boolean {
  if (call.method === 'commit') return isCommitCall(model, call);
  if (call.method === 'flush' || call.method === 'refresh') return call.hasReceiver && receiverEvidence(model, call) !== null;
  const op = classifyDbCall(model, call);
  // A staged add/delete sends nothing until the flush: it cannot fail on the database.
  return op !== null && !(!op.statement && (call.method === 'add' || call.method === 'delete'));
}

interface HandlerVerdict {
  tryNode: SyntaxNode;
  handler: SyntaxNode;
  /** The session call the handler makes before any rollback, when that is the problem. */
  reuse: string | null;
  /** The first of them that reaches the database and raises (`add()` only stages); null when none does in the handler. */
  raiser?: string | null;
  /** The `try` sits in a loop that goes on to its next iteration, which uses the session again. */
  nextIteration?: boolean;
  /**
   * The session is Flask's request-scoped one (`db.session`, `g.session`) and the function does not
   * use it after the handler: only a caller could meet it failed. When nothing in the repo calls
   * the function (the framework does), the request's teardown removes it first.
   */
  requestScoped?: boolean;
  /**
   * The session is the function's parameter and nothing after the handler uses it here: only a
   * caller that goes on with it meets it failed, and its next statement raises then
   * (`PendingRollbackError`), loudly. One step lower.
   */
  callersOnly?: boolean;
  /**
   * The `try` body only reads (see {@link readOnlyTry}): `leaves` when the handler then leaves the
   * function (a `return`), `stays` when the function goes on after it.
   */
  readOnly?: 'leaves' | 'stays';
}

/**
 * Does the handler go on to the loop's next iteration: it does not end in `return`, `break` or a raise?
 */
function goesOn(handlerBody: SyntaxNode): boolean {
  const last = handlerBody.namedChildren.filter((c) => c.type !== 'comment').pop();
  return !(last && (last.type === 'return_statement' || last.type === 'break_statement' || raises(last)));
}

/** Does the function's code after `node` name the session (its root name)? */
function mentionsAfter(fnBody: SyntaxNode | null, node: SyntaxNode, session: string): boolean {
  if (!fnBody) return true;
  const root = session.split('.')[0]!;
  return variableRefs(fnBody, root).some((r) => r.startIndex >= node.endIndex);
}

/**
 * Does the `try` body only read: every call in it is a query or statement that reads (not a
 * commit, flush, refresh, DML or staged `add`/`delete`), a method down such a read's chain
 * (`.one()`, `.first()`, `.scalar()`), a call in a read's arguments (a key computed for the
 * filter), or a library function or builtin; at least one read. A call of the project's own
 * code, or of a method nothing resolves, may write or commit: not read-only — unless the session
 * is the function's own name and the call is not handed it (an embedding service called between
 * two queries writes nothing through it).
 */
function readOnlyTry(model: FileModel, fnIndex: number, tryBody: SyntaxNode, session: string): boolean {
  let reads = 0;
  // A session the function holds in a name of its own (a parameter or a local, not a scoped
  // registry or an attribute): project code reaches it only when handed it.
  const own = /^[A-Za-z_]\w*$/.test(session) && (model.functions[fnIndex]!.params.some((p) => p.name === session) || assignmentsTo(model, session).some((a) => a.functionIndex === fnIndex));
  const mentions = own ? new RegExp(`\\b${session}\\b`) : null;
  for (const c of callsOf(model, fnIndex)) {
    if (c.node.startIndex < tryBody.startIndex || c.node.endIndex > tryBody.endIndex) continue;
    // A rollback at the head of a retry's pass only settles what came before.
    if (c.method === 'rollback') continue;
    if (c.method === 'commit' || c.method === 'flush' || c.method === 'refresh') return false;
    const op = classifyDbCall(model, c);
    if (op) {
      if (op.kind !== 'read') return false;
      reads++;
      continue;
    }
    if (readsDatabase(model, c.node) || inReadArguments(model, c.node, tryBody)) continue;
    const q = c.qualifiedName;
    if (q && (q.startsWith('builtins.') || !model.repoModules?.has(q.split('.')[0]!)) && !/(^|\.)(add|add_all|delete|merge|execute|commit|flush)$/.test(q)) continue;
    // The project's own code, named through an import or a definition of the module (not a method
    // of `self` or of a local object, which may keep the session) and not handed the session:
    // whatever it does, it does not write through this session.
    const head = c.calleeText.split('.')[0]!;
    if (mentions && q && (model.imports.has(head) || model.moduleDefs.has(head)) && !mentions.test(c.node.text)) continue;
    return false;
  }
  return reads > 0;
}

/** Is the node inside the arguments of a call that reads the database (below `stop`)? */
function inReadArguments(model: FileModel, node: SyntaxNode, stop: SyntaxNode): boolean {
  for (let p = node.parent; p && p.id !== stop.id; p = p.parent) {
    if (p.type === 'argument_list' && p.parent?.type === 'call' && readsDatabase(model, p.parent)) return true;
  }
  return false;
}

/**
 * The handler that leaves the session failed: it catches database errors around the call and
 * neither rolls back nor re-raises, or uses the session again before rolling back. Null when
 * the innermost `try` that catches database errors handles it, or when something else cleans
 * up: a `finally` that closes the session (itself or through a helper handed the session), a
 * session `with` inside the `try` that has exited before the handler runs, or — for a session
 * injected into a request handler — the dependency's teardown, when the handler only answers.
 */
/** The project's scoped-session registries that a module with a request teardown hook ends with `remove()`. */
function removedRegistries(project: ProjectContext): ReadonlySet<string> {
  let names = REMOVED.get(project);
  if (!names) {
    names = new Set((project.sessionReleases ?? []).filter((r) => r.startsWith('teardown:')).map((r) => r.slice('teardown:'.length)));
    REMOVED.set(project, names);
  }
  return names;
}
const REMOVED = new WeakMap<ProjectContext, ReadonlySet<string>>();

function handlerVerdict(model: FileModel, call: CallInfo, session: string, tries: SyntaxNode[], removed: ReadonlySet<string>): HandlerVerdict | null {
  const fn = model.functions[call.functionIndex]!;
  for (const t of tries) {
    const fin = finallyClause(t);
    if (fin && closesSession(fin, session)) return null;
    const handlers = exceptClauses(t).filter((h) => catchesDbErrors(h));
    if (!handlers.length) continue;
    const tryBody = t.childForFieldName('body');
    // A savepoint (`with session.begin_nested():`) rolls back to itself on the error: the session
    // stays usable. So does a connection in autocommit mode (each statement its own transaction).
    if (/\bbegin_nested\s*\(/.test(tryBody?.text ?? '') || /\bautocommit\s*=\s*True\b|set_session\s*\([^)]*autocommit\s*=\s*True/.test(fn.node.text)) return null;
    const exitedWith = call.withs.some((wi) => {
      const w = model.withs[wi]!;
      if (!tryBody || w.node.startIndex < tryBody.startIndex || w.node.endIndex > tryBody.endIndex) return false;
      return w.items.some((i) => withOpensSession(model, i.value, call.functionIndex)
        && (i.alias === session || unwrap(i.value)?.childForFieldName('function')?.childForFieldName('object')?.text.replace(/\s+/g, '') === session));
    });
    if (exitedWith) return null;
    for (const h of handlers) {
      const body = h.namedChildren.find((c) => c.type === 'block') ?? h;
      const rollbackAt = firstMatch(body.text, /\b\w*rollback\w*\s*\(/);
      const reuse = sessionReuse(body.text, session, rollbackAt);
      // Only staged, and the handler leaves (`raise`, `return`): nothing raises, the staged row is
      // dropped with the failed transaction.
      const leaves = /^(raise_statement|return_statement)$/.test(body.namedChildren.filter((c) => c.type !== 'comment').pop()?.type ?? '');
      if (reuse && !(reuse.raiser === null && leaves) && (rollbackAt < 0 || reuse.at < rollbackAt)) return { tryNode: t, handler: h, reuse: reuse.text, raiser: reuse.raiser };
      if (rollbackAt >= 0) continue;
      // A re-raise that runs on this path: a `raise` statement of the handler's own block, or a
      // call that always raises (`abort(400)`: Flask's request teardown then removes the session).
      if (body.namedChildren.some(raises)) continue;
      if (/\b(close|invalidate)\s*\(/.test(body.text)) continue;
      // The session handed to a helper before any other use (`reset(session)`,
      // `cleanup(db=session)`): such a helper is there to clean it up, as in a `finally`.
      if (handsSessionOn(body, session)) continue;
      // In a loop that goes on after the handler, the next iteration meets the session failed.
      const nextIteration = loopReuse(t, body, fn.node, session);
      // A request handler's injected session, when the handler does not use it again: the
      // dependency's teardown closes it, rolling back. Used again after the `try`, it fails there.
      if (!nextIteration && fn.role === 'handler' && fn.params.some((p) => p.name === session) && !meetsFailedSession(fn.body, t, body, session)) continue;
      // A Flask view's request-scoped session (`flask.g.session`, Flask-SQLAlchemy's `db.session`)
      // that the view does not use again: the request's teardown removes it, rolling back.
      // Also a project's `scoped_session` registry that a teardown removes (`db_session.remove()`
      // in `teardown_appcontext`): the request's session goes with it.
      // A module-level name for `db.session` (`db_session = db.session`, here or imported from
      // the project's package) is that same session.
      const alias = flaskSessionAlias(model, session);
      const flaskScoped = /^(flask\.)?g\.\w+$/.test(session) || (session.endsWith('.session') && model.flaskDbHandles.has(session.slice(0, -'.session'.length)))
        || alias !== null || (model.scopedSessions.has(session) && removed.has(session));
      if (!nextIteration && flaskScoped && !usedAfter(fn.body, t, body, session) && !(alias && usedAfter(fn.body, t, body, alias))
        && !flaskQueriesAfter(model, call.functionIndex, t, body, alias ?? session)) {
        if (fn.role === 'handler') continue;
        // A view of the project's own routing: the handler answers the request (`return
        // jsonify(...)`, `return body, 409`). Not a job or a message callback: a worker that pushes
        // one app context for the process keeps the same scoped session across tasks.
        if (answersRequest(body) && effectiveRole(model, call.functionIndex) !== 'background' && !APP_CONTEXT_PUSH.test(model.source)) {
          return { tryNode: t, handler: h, reuse: null, requestScoped: true };
        }
      }
      // A session of this function's own that nothing uses after the handler: no one meets it
      // failed (leaving it unclosed is PA403/PA405's finding).
      if (!nextIteration && ownSession(model, call.functionIndex, session) && !usedAfter(fn.body, t, body, session)) continue;
      // A retry loop whose every pass starts by rolling back (`for i in range(5): try:
      // session.rollback(); return q.one() except Exception: sleep(...)`): the next pass begins
      // clean; only the last pass's failure outlives the loop, and when nothing after the loop
      // uses the session it goes back to the caller as if the handler had returned.
      const loop = nextIteration ? null : enclosingLoop(t, fn.node);
      const retryLeaves = !!loop && goesOn(body) && (startsWithRollback(loop.childForFieldName('body')) || startsWithRollback(tryBody))
        && !mentionsAfter(fn.body, loop, session);
      // A `try` that only reads: its usual failure is SQLAlchemy's `NoResultFound` or
      // `MultipleResultsFound`, raised after the rows came back, which leaves the session and its
      // transaction usable. Only a statement that fails on the server (an aborted PostgreSQL
      // transaction) leaves it failed, and then the session's next statement or commit raises.
      if (!nextIteration && tryBody && readOnlyTry(model, call.functionIndex, tryBody, session)) {
        return { tryNode: t, handler: h, reuse: null, readOnly: retryLeaves || blockLeaves(body) ? 'leaves' : 'stays' };
      }
      // A session handed in as a parameter, unused after the handler: the caller's to meet failed.
      const callersOnly = !nextIteration && fn.params.some((p) => p.name === session) && !usedAfter(fn.body, t, body, session);
      return { tryNode: t, handler: h, reuse: null, ...(nextIteration ? { nextIteration } : {}), ...(callersOnly ? { callersOnly } : {}) };
    }
    return null;
  }
  return null;
}

/** `app.app_context().push()`: one app context (and one scoped session) for a whole worker. */
const APP_CONTEXT_PUSH = /\bapp_context\s*\(\s*\)\s*\.\s*push\s*\(/;

/** Does the handler end by answering a request: `return <call>` (`jsonify(...)`, `make_response(...)`) or `return <body>, <status>`? */
function answersRequest(handlerBody: SyntaxNode): boolean {
  const last = handlerBody.namedChildren.filter((c) => c.type !== 'comment').pop();
  if (last?.type !== 'return_statement') return false;
  const value = last.namedChild(0);
  return value?.type === 'call' || value?.type === 'expression_list' || value?.type === 'tuple';
}

/** A plain name bound in the function itself (not a parameter, attribute or global). */
function ownSession(model: FileModel, fnIndex: number, session: string): boolean {
  if (!/^[A-Za-z_]\w*$/.test(session)) return false;
  const fn = model.functions[fnIndex]!;
  if (fn.params.some((p) => p.name === session)) return false;
  return assignmentsTo(model, session).some((a) => a.functionIndex === fnIndex);
}

/**
 * After the `try`, does the function query Flask-SQLAlchemy's `db.session` another way: a model's
 * `Model.query…` or the extension's loaders (`db.get_or_404(...)`, `db.paginate(...)`)? Both run
 * on that session (unless the handler leaves the function).
 */
function flaskQueriesAfter(model: FileModel, fnIndex: number, tryNode: SyntaxNode, handlerBody: SyntaxNode, session: string): boolean {
  if (!session.endsWith('.session')) return false;
  const last = handlerBody.namedChildren[handlerBody.namedChildCount - 1];
  if (last && (last.type === 'return_statement' || raises(last))) return false;
  const handle = session.slice(0, -'.session'.length);
  const body = model.functions[fnIndex]?.body ?? null;
  return callsOf(model, fnIndex).some((c) => c.node.startIndex >= tryNode.endIndex && !!c.dottedReceiver && !exclusiveArms(tryNode, c.node, body)
    && ((/\.query$/.test(c.dottedReceiver) && flaskQueryEntity(model, c.dottedReceiver, fnIndex) !== null)
      || (c.dottedReceiver === handle && /^(get_or_404|first_or_404|one_or_404|paginate)$/.test(c.method))));
}

/** Is the session used again once the handler is done: after the `try`, unless the handler leaves the function? */
function usedAfter(fnBody: SyntaxNode | null, tryNode: SyntaxNode, handlerBody: SyntaxNode, session: string): boolean {
  const last = handlerBody.namedChildren[handlerBody.namedChildCount - 1];
  if (last && (last.type === 'return_statement' || raises(last))) return false;
  if (!fnBody) return true;
  const rest = fnBody.text.slice(tryNode.endIndex - fnBody.startIndex);
  return new RegExp(`(?<![\\w.])${session.replace(/\./g, '\\.')}(?![\\w])`).test(rest);
}

/**
 * Does the code after the `try` use the session while its transaction is failed: the handler does
 * not leave on every path (a `return` or `raise` closing each branch), and a reference to the
 * session after the `try` — a name in the code, not a comment or a string, nested functions and
 * lambdas included — comes before any `rollback()`/`close()` that settles it? A rollback settles it
 * when it runs unconditionally, or under a condition the handler set (a flag assigned in it) or
 * on the session's own state (`if not db.is_active:`); a rollback under another condition
 * (`if reset:`) leaves the other path to the uses after it. Reading `db.is_active` is no use.
 */
function meetsFailedSession(fnBody: SyntaxNode | null, tryNode: SyntaxNode, handlerBody: SyntaxNode, session: string): boolean {
  if (!fnBody || blockLeaves(handlerBody)) return false;
  const root = session.split('.')[0]!;
  const refs = variableRefs(fnBody, root)
    .filter((r) => r.startIndex >= tryNode.endIndex)
    .map((r) => {
      // `db` for `db`, the `db.session` attribute for `db.session`.
      let n: SyntaxNode = r;
      while (n.text.replace(/\s+/g, '') !== session && n.parent?.type === 'attribute' && n.parent.childForFieldName('object')?.id === n.id) n = n.parent;
      return n;
    })
    .filter((n) => n.text.replace(/\s+/g, '') === session);
  const flags = new Set(handlerBody.descendantsOfType('assignment').map((a) => a.childForFieldName('left')?.text ?? ''));
  for (const ref of refs) {
    const member = ref.parent?.type === 'attribute' && ref.parent.childForFieldName('object')?.id === ref.id ? ref.parent.childForFieldName('attribute')?.text ?? '' : '';
    if (SESSION_STATE.test(member)) continue;
    if (!/^(rollback|close)$/.test(member)) return true;
    const condition = enclosingCondition(ref, fnBody);
    if (!condition) return false;
    const names = condition.descendantsOfType('identifier').map((n) => n.text);
    if (names.some((n) => flags.has(n)) || SESSION_STATE_TEST.test(condition.text)) return false;
  }
  return false;
}

/** Attributes that read the session's state (`db.is_active`), not statements. */
const SESSION_STATE = /^(is_active|in_transaction|in_nested_transaction|dirty|new|deleted|info)$/;
const SESSION_STATE_TEST = /\b(is_active|in_transaction)\b/;

/** The condition of the nearest `if`/`elif`/`while` around a node, inside the function body; null when none. */
function enclosingCondition(node: SyntaxNode, stop: SyntaxNode): SyntaxNode | null {
  for (let p = node.parent; p && p.id !== stop.id; p = p.parent) {
    if (p.type === 'if_statement' || p.type === 'elif_clause' || p.type === 'while_statement') return p.childForFieldName('condition');
    if (p.type === 'else_clause') return p.parent?.childForFieldName('condition') ?? null;
  }
  return null;
}

/**
 * Does a block leave on every path: it ends in `return`/`raise` (or a call that never returns), in
 * an `if` each of whose branches does (with an `else`), in a `with` whose body does, in a `try`
 * whose body and every handler do, or in a `match` with a wildcard case whose every case does?
 */
function blockLeaves(block: SyntaxNode): boolean {
  const last = block.namedChildren.filter((n) => n.type !== 'comment').pop();
  if (!last) return false;
  if (last.type === 'return_statement' || raises(last)) return true;
  const bodyOf = (n: SyntaxNode | null | undefined) => n?.childForFieldName('body') ?? n?.childForFieldName('consequence') ?? n?.namedChildren.find((c) => c.type === 'block') ?? null;
  if (last.type === 'with_statement') {
    const b = bodyOf(last);
    return !!b && blockLeaves(b);
  }
  if (last.type === 'try_statement') {
    const b = bodyOf(last);
    const handlers = last.namedChildren.filter((c) => c.type === 'except_clause' || c.type === 'except_group_clause');
    const fin = last.namedChildren.find((c) => c.type === 'finally_clause');
    const finBody = fin ? bodyOf(fin) : null;
    if (finBody && blockLeaves(finBody)) return true;
    return !!b && blockLeaves(b) && handlers.every((h) => { const hb = bodyOf(h); return !!hb && blockLeaves(hb); });
  }
  if (last.type === 'match_statement') {
    const cases = last.descendantsOfType('case_clause').filter((c) => c.parent?.parent?.id === last.id || c.parent?.id === last.id);
    const wildcard = cases.some((c) => /^case\s+_\s*:/.test(c.text));
    return wildcard && cases.every((c) => { const cb = bodyOf(c); return !!cb && blockLeaves(cb); });
  }
  if (last.type !== 'if_statement') return false;
  const { branches, hasElse } = ifBranches(last);
  return hasElse && branches.every((b) => !!b && blockLeaves(b));
}


/**
 * Is the `try` inside a loop of the function whose next iteration runs after the handler (it
 * does not end in `return`, `raise` or `break`) and whose body uses the session?
 */
function loopReuse(tryNode: SyntaxNode, handlerBody: SyntaxNode, fnNode: SyntaxNode, session: string): boolean {
  const last = handlerBody.namedChildren.filter((c) => c.type !== 'comment').pop();
  if (last && (last.type === 'return_statement' || last.type === 'break_statement' || raises(last))) return false;
  const use = new RegExp(`(?<![\\w.])${session.replace(/\./g, '\\.')}\\s*\\.\\s*\\w+\\s*\\(`);
  const loop = enclosingLoop(tryNode, fnNode);
  if (!loop || boundPerIteration(tryNode, loop, session)) return false;
  // A retry loop whose every pass starts by rolling back (`for i in range(3): try: session.rollback();
  // ...`): the next iteration begins clean.
  if (startsWithRollback(loop.childForFieldName('body')) || startsWithRollback(tryNode.childForFieldName('body'))) return false;
  return use.test(loop.childForFieldName('body')?.text ?? '');
}

/** Is the block's first statement (comments aside) a `rollback()` call? */
function startsWithRollback(block: SyntaxNode | null): boolean {
  const first = block?.namedChildren.find((c) => c.type !== 'comment');
  if (first?.type === 'try_statement') return startsWithRollback(first.childForFieldName('body'));
  return first?.type === 'expression_statement' && /^[\w.]*\.rollback\s*\(\s*\)$/.test(first.text.trim());
}

/**
 * Is `session` bound anew on each iteration around the `try`: the alias of a `with` inside the loop
 * that holds it (`for t in ts: with open_session(t) as session: try: ...`), whose exit ends that
 * session's transaction, or assigned from a call in the loop body before it? The next iteration
 * then works on another session, whatever the opener is called.
 */
function boundPerIteration(tryNode: SyntaxNode, loop: SyntaxNode, session: string): boolean {
  const alias = new RegExp(`\\bas\\s+${session.replace(/\./g, '\\.')}\\s*(,|:|\\)|$)`);
  for (let p = tryNode.parent; p && p.id !== loop.id; p = p.parent) {
    if (p.type !== 'with_statement') continue;
    const clause = p.namedChildren.find((c) => c.type === 'with_clause');
    if (clause && alias.test(clause.text)) return true;
  }
  const body = loop.childForFieldName('body');
  if (!body || session.includes('.')) return false;
  // An unconditional `session = Factory()` of the loop body itself, before the `try`; not a
  // registry that hands back the same session (`scoped_session`, `.get(...)`, `current_...`).
  return body.namedChildren.some((st) => {
    if (st.endIndex > tryNode.startIndex || st.type !== 'expression_statement') return false;
    const a = st.namedChild(0);
    const right = a?.type === 'assignment' && a.childForFieldName('left')?.text === session ? a.childForFieldName('right') : null;
    const callee = right?.type === 'call' ? right.childForFieldName('function')?.text ?? '' : '';
    return !!callee && !/scoped|registry|current|(^|\.)get$/i.test(callee);
  });
}

/** The innermost `for`/`while` of the function around the `try`, or null (not across a nested def or lambda). */
function enclosingLoop(tryNode: SyntaxNode, fnNode: SyntaxNode): SyntaxNode | null {
  for (let p = tryNode.parent; p && p.id !== fnNode.id; p = p.parent) {
    if (p.type === 'function_definition' || p.type === 'lambda') return null;
    if (p.type === 'for_statement' || p.type === 'while_statement') return p;
  }
  return null;
}

/** Functions that never return: they raise (`abort(404)`, `flask.abort`) or end the process. */
/** Calls that never return: `abort(403)`, `sys.exit()`, and a Celery task's `retry(exc=...)`, which raises `Retry` (or the error once retries run out). */
const NO_RETURN = /^(?:(?:flask|werkzeug\.exceptions|api)\.)?abort\s*\(|^sys\.exit\s*\(|^os\._exit\s*\(|^[A-Za-z_][\w.]*\.retry\s*\((?=[^)]*\bexc\s*=)(?![^)]*\bthrow\s*=\s*False)/;

/** A statement that leaves by an exception: `raise …`, or a call of a function that always raises. */
function raises(st: SyntaxNode): boolean {
  if (st.type === 'raise_statement' || (st.type === 'expression_statement' && NO_RETURN.test(st.text))) return true;
  // `if retry: task.retry(exc=exc) else: raise exc`: every branch ends raising.
  if (st.type !== 'if_statement') return false;
  const { branches, hasElse } = ifBranches(st);
  return hasElse && branches.every((b) => {
    const last = b?.namedChildren.filter((n) => n.type !== 'comment').pop();
    return !!last && raises(last);
  });
}

function firstMatch(text: string, re: RegExp): number {
  const m = re.exec(text);
  return m ? m.index : -1;
}

/** A call on the session in a handler's text other than cleaning up: `session.execute(...)`, `session.commit()`. */
function sessionReuse(text: string, session: string, rollbackAt: number): { at: number; text: string; raiser: string | null } | null {
  const re = new RegExp(`(?<![\\w.])${session.replace(/\./g, '\\.')}\\s*\\.\\s*(\\w+)\\s*\\(`, 'g');
  let m: RegExpExecArray | null;
  let first: { at: number; text: string } | null = null;
  while ((m = re.exec(text))) {
    if (/^(rollback|close|invalidate|expunge|expunge_all|remove|in_transaction|is_active)$/.test(m[1]!)) continue;
    if (rollbackAt >= 0 && m.index > rollbackAt) break;
    const call = `${session}.${m[1]}()`;
    // `add()` only stages: the session's next statement or commit is what raises.
    if (!STAGING.test(m[1]!)) return first ? { ...first, raiser: call } : { at: m.index, text: call, raiser: call };
    first ??= { at: m.index, text: call };
  }
  // Only staged before the rollback, which discards it: nothing raised.
  return first && rollbackAt < 0 ? { ...first, raiser: null } : null;
}

/** Session methods that only stage work in memory (measured: `add()` after a failed commit does not raise; the next `commit()` does). */
const STAGING = /^(add|add_all|expire|expire_all)$/;

/** Does the clause hand the session to a call as an argument (`reset(session)`, `undo(db=session)`)? */
function handsSessionOn(clause: SyntaxNode, session: string): boolean {
  if (!clause.text.includes(session)) return false;
  return clause.descendantsOfType('argument_list').some((args) => args.namedChildren.some((a) =>
    (a.type === 'keyword_argument' ? a.childForFieldName('value') : a)?.text === session));
}

/** Does a `finally` close (or roll back) the session, itself or through a helper handed the session? */
function closesSession(fin: SyntaxNode, session: string): boolean {
  return /\b(close|rollback|remove)\s*\(/.test(fin.text) || handsSessionOn(fin, session);
}

/** A commit after a `try` whose `finally` closes the session is covered by that close. */
function inFinallyClosedScope(commit: CallInfo, session: string): boolean {
  let cur: SyntaxNode | null = commit.node.parent;
  while (cur && cur.type !== 'function_definition') {
    if (cur.type === 'try_statement') {
      const fin = finallyClause(cur);
      if (fin && closesSession(fin, session)) return true;
    }
    cur = cur.parent;
  }
  return false;
}

/** The first write on the commit's session and a later fallible external call, both before the commit. */
function failingCallBeforeCommit(model: FileModel, commit: CallInfo): { write: string; call: string } | null {
  const session = receiverKey(commit);
  if (!session) return null;
  let write: CallInfo | null = null;
  for (const c of callsOf(model, commit.functionIndex)) {
    if (c.node.startIndex >= commit.node.startIndex) break;
    const key = receiverKey(c);
    if (key === session && (c.method === 'commit' || c.method === 'rollback')) {
      write = null;
      continue;
    }
    if (!write) {
      if (key === session && isWriteCall(model, c)) write = c;
      continue;
    }
    // A call inside its own `try` has its failure handled there; the commit still runs.
    if (c.offloaded || enclosingTries(c.node, model.functions[commit.functionIndex]!.node).length) continue;
    const ext = externalCall(model, c);
    if (ext) return { write: `${write.calleeText}()`, call: `${ext.what}()` };
  }
  return null;
}

const HANDLED_REUSES: ReadonlySet<string> = new Set([HANDLED_REUSE]);

/**
 * A caller's handler that catches what a callee raised out of a failed session operation without
 * rolling back ({@link RAISES_UNROLLED}, in the callee or a function it calls directly) and then
 * uses the same session (a call that reaches the database): that call meets the failed transaction.
 */
function reportHandledReuses(ctx: RepoRuleContext, graph: CallGraph): void {
  // One finding per use of the failed session: several calls of the `try` that may leave it failed
  // meet the same handler's reuse, one defect with one fix (a rollback at the handler's head).
  const byReuse = new Map<string, { report: Parameters<RepoRuleContext['report']>[0]; first: string; also: string[]; text: string }>();
  for (const { ref, file, fn, site, call, to } of siteCalls(graph, HANDLED_REUSES)) {
    if (call.receiverType === UNTYPED) continue;
    const fact = JSON.parse(site.what) as { caught: string[]; reuse: [number, number, string] };
    // Handled in a loop by PA204's swallowed-call report already.
    if (graph.ownEffects(ref).some((e) => e.kind === SWALLOWED_CALL && e.line === call.line && e.column === call.column && !(JSON.parse(e.what) as { top?: number }).top)) continue;
    const catchesAll = fact.caught.some((n) => n === 'Exception' || n === 'BaseException');
    const catchesDb = catchesAll || fact.caught.some(isDbErrorName);
    const matches = (what: string) => what === DB_RAISED ? catchesDb : catchesAll || what.split(' ').some((n) => fact.caught.includes(n));
    const raiser = [to, ...graph.callees(to).filter((e) => !e.call.conditional && e.call.receiverType !== UNTYPED).map((e) => e.to)]
      .map((f) => ({ f, e: graph.ownEffects(f).find((x) => x.kind === RAISES_UNROLLED && matches(x.what)) }))
      .find((x) => x.e);
    if (!raiser?.e) continue;
    const [line, column, text] = fact.reuse;
    const reused = graph.resolvedCallAt(ref.file, line, column);
    if (!reused || reused.call.receiverType === UNTYPED) continue;
    const reach = graph.effectOf(reused.to, QUERY_EFFECT, 'any') ?? graph.effectOf(reused.to, WRITE_EFFECT, 'any') ?? graph.effectOf(reused.to, FLUSH_EFFECT, 'any') ?? graph.effectOf(reused.to, COMMIT_EFFECT, 'any');
    if (!reach || reach.weak || graph.ownEffects(reused.to).some((e) => e.kind === OPENS_SESSION || e.kind === OWN_COMMIT_EFFECT)) continue;
    const raised = raiser.e.what === DB_RAISED ? 'the database error' : `\`${raiser.e.what.split(' ').find((n) => catchesAll || fact.caught.includes(n)) ?? raiser.e.what}\``;
    const where = `${graph.fileOf(raiser.f).path}:${raiser.e.line}`;
    const key = `${file.path}:${line}:${column}`;
    const seen = byReuse.get(key);
    if (seen) {
      if (call.calleeText !== seen.first && !seen.also.includes(call.calleeText)) seen.also.push(call.calleeText);
      continue;
    }
    byReuse.set(key, {
      text,
      first: call.calleeText,
      also: [],
      report: {
        path: file.path,
        location: { line, column, endLine: line, endColumn: column + text.length },
        message: `\`${call.calleeText}()\` raises ${raised} out of a failed session operation without rolling back (\`${graph.function(raiser.f).qualifiedName}\`, ${where})`,
        severity: 'medium',
        function: fn.name,
        chain: graph.chainSteps(reach, { ref, call: reused.call }),
      },
    });
  }
  for (const { report, also, text } of byReuse.values()) {
    const others = also.length ? ` (so may ${also.length === 1 ? '' : 'each of '}${also.map((c) => `\`${c}()\``).join(', ')} in the same \`try\`)` : '';
    ctx.report({
      ...report,
      message: `${report.message}${others}, and this handler then uses the same session (\`${text}()\` reaches the database): the session is still in its failed transaction, so that call raises \`PendingRollbackError\` (on PostgreSQL any statement fails until a rollback); roll back before raising, or use a savepoint (\`begin_nested()\`) around the failing step`,
    });
  }
}
