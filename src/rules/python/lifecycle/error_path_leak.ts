/**
 * PA405 error_path_leak
 *
 * What it does: finds the error paths that leak a session or connection: a generator
 * dependency / context-manager generator that acquires one, yields it and closes it after the
 * `yield` without `try/finally` (`def get_db(): db = Session(); yield db; db.close()`); and an
 * `except` clause that returns or raises after the acquisition without closing it, in a function
 * that closes it on the normal path.
 * Why is this bad? An exception raised by the request handler is thrown into the dependency at
 * its `yield`: the `close()` after it never runs. An `except` that exits early skips the
 * `close()` written further down. Each failing request then keeps a pooled connection checked
 * out, so errors turn into pool exhaustion.
 *
 * Also a `return`/`raise` between the acquisition and the `try` whose `finally` closes the value
 * (files too): that path never reaches the `finally`.
 *
 * Also `finally: s.commit(); s.close()`: when the commit raises, the close is skipped (silent
 * when the close has a `finally` of its own). (A pool's connection given back only on the normal
 * path is PA403's, like a session closed only on the normal path.)
 *
 * Precision: a `yield` inside `try` whose `finally` (or catch-all `except`) closes the value is
 * fine, so is `with`/`async with`; a value that leaves the function is the caller's.
 */
import { insideNestedFunction } from '../../../semantic/controlFlow.js';
import type { FunctionInfo } from '../../../semantic/model.js';
import { callsOf, effectiveRole, moduleNameOf } from '../../../semantic/model.js';
import type { Severity } from '../../../types.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import type { SyntaxNode } from '../../../parse/parser.js';
import { variableRefs } from '../../../semantic/model.js';
import {
  acquisitions, catchesAll, closeFacts, closesIn, errorPathLeakSeverity, exceptExitLeaving, exitsOf, isWebService, leakSeverity, projectNames, protectedByTry, raisesBeforeClose, type Acquisition,
} from './semantics.js';

/**
 * A `return`/`raise` of the statements between the acquisition and the `try` (in the same block)
 * whose `finally` (or catch-all `except`) closes the value: that path leaves with it open. A
 * statement that closes the value itself, or hands it on, is left alone.
 */
function exitBeforeProtection(acq: Acquisition): { exit: SyntaxNode; guard: SyntaxNode } | null {
  let stmt: SyntaxNode | null = acq.assignment.node;
  while (stmt && stmt.parent && stmt.parent.type !== 'block' && stmt.parent.type !== 'module') stmt = stmt.parent;
  const block = stmt?.parent;
  if (!stmt || !block || block.type !== 'block') return null;
  const siblings = block.namedChildren;
  const from = siblings.findIndex((c) => c.id === stmt!.id);
  if (from < 0) return null;
  const guardAt = siblings.findIndex((c, i) => i > from && c.type === 'try_statement' && c.namedChildren.some((clause) =>
    (clause.type === 'finally_clause' || ((clause.type === 'except_clause' || clause.type === 'except_group_clause') && catchesAll(clause))) && closesIn(clause, acq.target)));
  if (guardAt < 0) return null;
  // An enclosing `try` whose `finally` or catch-all handler closes it covers every exit.
  if (protectedByTry(stmt, acq.target, acq.fn.node)) return null;
  for (const between of siblings.slice(from + 1, guardAt)) {
    // A nested `def`/`class` only defines: its `return` is its own.
    if (between.type === 'function_definition' || between.type === 'class_definition' || between.type === 'decorated_definition') continue;
    // Rebound, closed or handed on before the `try`: not this value's path any more.
    if (variableRefs(between, acq.target).length) return null;
    // A `raise` in the body of a `try` with handlers may be caught a line later: not counted.
    const exit = exitsOf(between).find((e) => !(e.type === 'raise_statement' && caughtNearby(e, between)));
    if (exit) return { exit, guard: siblings[guardAt]! };
  }
  return null;
}

/** A connection taken from a driver's pool, which garbage collection does not give back. */
const POOL_TAKE = /^(acquire|getconn|get_connection)$/;

/**
 * Is the `raise` in the body of a `try` (within `top`) whose handler catches it: a bare `except`,
 * `Exception`/`BaseException`, or the class the `raise` names?
 */
function caughtNearby(raise: SyntaxNode, top: SyntaxNode): boolean {
  const raised = /^raise\b\s*\(?\s*([\w.]+)/.exec(raise.text)?.[1]?.split('.').pop() ?? null;
  for (let child: SyntaxNode = raise, p = raise.parent; p; child = p, p = p.parent) {
    if (p.type === 'try_statement' && child.type === 'block' && p.childForFieldName('body')?.id === child.id) {
      for (const h of p.namedChildren) {
        if (h.type !== 'except_clause' && h.type !== 'except_group_clause') continue;
        const caught = (h.namedChildren.find((c) => c.type !== 'block' && c.type !== 'comment')?.text ?? '').replace(/#[^\n]*/g, '');
        if (!caught || /\b(Exception|BaseException)\b/.test(caught) || (raised && new Set(caught.replace(/\s+as\s+\w+$/, '').replace(/[()]/g, '').split(',').map((t) => t.trim().split('.').pop())).has(raised))) return true;
      }
    }
    if (p.id === top.id) break;
  }
  return false;
}

function isProvider(ctx: FileRuleContext, fn: FunctionInfo): boolean {
  if (fn.parent >= 0 || fn.className) return false;
  if (projectNames(ctx.project).providers.has(`${moduleNameOf(ctx.model.path)}.${fn.name}`)) return true;
  return new RegExp(`\\bDepends\\(\\s*${fn.name}\\b`).test(ctx.model.source);
}


/**
 * A provider that yields a `scoped_session` registry made elsewhere (a module-level
 * `async_scoped_session(...)`, or the session it gives: `yield registry()`) and calls
 * `registry.remove()` after the `yield`, with no `try/finally` around it: an exception at the
 * `yield` skips the `remove()`, and the registry keeps that scope's session (and the connection
 * its transaction holds) under a key nobody asks for again (a finished task, a finished thread).
 * (A session the function acquires itself is the acquisitions' check.)
 */
function reportYieldedRegistries(ctx: FileRuleContext): void {
  const { model } = ctx;
  if (!model.source.includes('.remove()')) return;
  for (const fn of model.functions) {
    if (!fn.isGenerator || !fn.body) continue;
    for (const y of fn.yields) {
      // `yield registry`, `yield self._registry`, or the session it gives: `yield registry()`.
      const value = y.type === 'call' && !y.childForFieldName('arguments')?.namedChildren.length ? y.childForFieldName('function') : y;
      if (!value || !/^(self\.)?[A-Za-z_]\w*$/.test(value.text)) continue;
      const name = value.text;
      // Acquired in the function: the acquisitions' check reports it.
      if (model.assignments.some((a) => a.functionIndex === fn.index && a.target === name)) continue;
      const removal = callsOf(model, fn.index).find((c) => c.functionIndex === fn.index && c.dottedReceiver === name && c.method === 'remove'
        && c.node.startIndex > y.endIndex && !c.node.childForFieldName('arguments')?.namedChildren.length);
      if (!removal || removedInFinally(y, name, fn.node)) continue;
      ctx.report({
        node: y,
        message: `\`${fn.name}\` yields the scoped-session registry \`${name}\` and calls \`${name}.remove()\` after the \`yield\` without \`try/finally\`: an exception raised at the \`yield\` skips the \`remove()\`, and the registry keeps that scope's session and its connection`,
        severity: isProvider(ctx, fn) && isWebService(ctx.project) ? 'critical' : leakSeverity(model, fn.index),
        function: fn.name,
        recommendation: `\`try: yield ${y.text} finally: await ${name}.remove()\` (\`${name}.remove()\` in a sync provider)`,
      });
      break;
    }
  }
}

/** Is `inner` in the body of a `try` (inside `stop`) whose `finally` calls `name.remove()`? */
function removedInFinally(inner: SyntaxNode, name: string, stop: SyntaxNode): boolean {
  const removes = new RegExp(`(^|[^\\w.])${name.replace(/\./g, '\\.')}\\s*\\.\\s*remove\\(\\s*\\)`);
  for (let p: SyntaxNode | null = inner.parent, child: SyntaxNode = inner; p && p.id !== stop.id; child = p, p = p.parent) {
    if (p.type === 'function_definition' || p.type === 'lambda') return false;
    if (p.type !== 'try_statement' || child.type !== 'block') continue;
    if (p.namedChildren.some((c) => c.type === 'finally_clause' && removes.test(c.text))) return true;
  }
  return false;
}

export const errorPathLeak: FileRule = {
  meta: {
    code: 'PA405',
    check: 'error_path_leak',
    family: 'lifecycle',
    severity: 'high',
    effort: 'S',
    summary: 'Session or connection leaked on an error path: generator dependency without try/finally, an `except` that exits before closing, a `finally` that commits before closing',
    what: 'Finds a generator (a FastAPI `yield` dependency, a `@contextmanager`) that acquires a session or connection, yields it and closes it after the `yield` with no `try/finally` around the `yield`; and an `except` clause that returns or raises after a session/connection was acquired, without closing it, in a function that otherwise closes it on the normal path (medium in a request handler, low in a job: only failing calls leak it, until the garbage collector frees it); and a `finally` that calls the database through it (`commit()`, `flush()`, `execute()`) before its `close()`, outside a `try` of its own; and a `return` or `raise` between the acquisition of a session, connection or file and the `try` whose `finally` closes it (`f = open(p)`, `if not ok: raise ...`, `try: ... finally: f.close()`): that path leaves with it open until CPython frees it (files and connections; a session takes no connection before its first use): advisory, since nothing builds up past the failing call (`medium` in a request handler or provider, else `low`). A provider that yields a `scoped_session`/`async_scoped_session` registry made elsewhere (or the session it gives, `yield registry()`) and calls `registry.remove()` after the `yield` with no `try/finally` is reported the same way: the registry keeps the failed scope\'s session. A provider of a web service is critical: every failing request leaks.',
    why: 'FastAPI throws the endpoint\'s exception into a `yield` dependency at the `yield`, and a `@contextmanager` does the same: code after the `yield` is skipped, so the session is never closed and its connection stays checked out (with an open transaction). An early `return`/`raise` in an `except` skips the `close()` written below it. Under a burst of errors the pool runs dry and healthy requests start timing out.',
    bad: 'from sqlalchemy import create_engine\nfrom sqlalchemy.orm import sessionmaker\nfrom fastapi import Depends, FastAPI\n\nengine = create_engine("postgresql://app@db/app", pool_pre_ping=True)\nSessionLocal = sessionmaker(engine)\napp = FastAPI()\n\n\ndef get_db():\n    db = SessionLocal()\n    yield db\n    db.close()\n',
    good: 'from sqlalchemy import create_engine\nfrom sqlalchemy.orm import sessionmaker\nfrom fastapi import Depends, FastAPI\n\nengine = create_engine("postgresql://app@db/app", pool_pre_ping=True)\nSessionLocal = sessionmaker(engine)\napp = FastAPI()\n\n\ndef get_db():\n    db = SessionLocal()\n    try:\n        yield db\n    finally:\n        db.close()\n',
    fix: 'acquire with a context manager before anything can fail (`with SessionLocal() as db: yield db`), or `try: yield db finally: db.close()`',
    references: [
      'https://fastapi.tiangolo.com/tutorial/dependencies/dependencies-with-yield/',
      'https://docs.python.org/3/library/contextlib.html#contextlib.contextmanager',
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#opening-and-closing-a-session',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    reportYieldedRegistries(ctx);
    for (const acq of acquisitions(ctx.model, ctx.project)) {
      if (acq.kind === 'client' || acq.provider) continue;
      // `f = open(p)` or `conn = engine.connect()`, then `if bad: raise ...`, then `try: ...
      // finally: f.close()`. The `finally` says the function owns the value, whatever it hands it
      // to inside the `try`. A session holds no connection until its first use, and nothing uses
      // it before such an exit: only files and connections. Advisory: CPython frees the object
      // (closing the file, giving the connection back to its pool) once the last reference goes —
      // at once on a `return`, when the exception is handled on a `raise` — so nothing builds up.
      const early = acq.kind === 'session' ? null : exitBeforeProtection(acq);
      if (early && !(acq.kind === 'file' && early.exit.type === 'return_statement')) {
        const exit = early.exit.type === 'raise_statement' ? '`raise`' : '`return`';
        const role = effectiveRole(ctx.model, acq.fn.index);
        ctx.report({
          node: early.exit,
          message: `this ${exit} leaves \`${acq.fn.name}\` after \`${acq.target} = ${acq.label}\` and before the \`try\` (line ${early.guard.startPosition.row + 1}) whose \`finally\` closes it: on this path it is not closed by the code`
            + (early.exit.type === 'raise_statement' ? ', only when the exception is handled and its traceback, which keeps the frame, is freed' : ', only when the function\'s frame is freed'),
          severity: role === 'handler' || isProvider(ctx, acq.fn) ? 'medium' : 'low',
          // A connection taken from a driver's own pool (`await pool.acquire()`, `pool.getconn()`)
          // is not given back when it is garbage: that pool slot is lost.
          ...(POOL_TAKE.test(acq.call.method) ? {} : { advisory: `CPython frees the ${acq.kind === 'file' ? 'file handle' : 'connection (a SQLAlchemy pool takes it back)'} once the last reference goes: hygiene, nothing builds up past the failing call` }),
          function: acq.fn.name,
          recommendation: `acquire it just before the \`try\` (after the checks that can leave), or use \`with\``,
        });
      }
      if (acq.kind === 'file') continue;
      const facts = closeFacts(acq);
      if (facts.escapes) continue;
      // `finally: s.commit(); s.close()`: the commit raises, the close is skipped.
      const failing = raisesBeforeClose(acq);
      if (failing) {
        ctx.report({
          node: failing,
          message: `\`${failing.text.replace(/\s+/g, ' ')}\` runs before \`${acq.target}.close()\` in the same \`finally\`: when it raises, \`${acq.target} = ${acq.label}\` is never closed`,
          severity: isProvider(ctx, acq.fn) || effectiveRole(ctx.model, acq.fn.index) === 'handler' ? 'high' : 'medium',
          function: acq.fn.name,
          recommendation: `close in a \`finally\` of its own: \`try: ${acq.target}.commit() finally: ${acq.target}.close()\``,
        });
        continue;
      }
      const stop = acq.fn.node;
      // A generator that hands the value out at an unprotected `yield`.
      const unprotected = acq.fn.yields.find((y) => y.type === 'identifier' && y.text === acq.target && !protectedByTry(y, acq.target, stop));
      // (One never closed at all is PA403's "never closed".)
      if (unprotected && acq.fn.isGenerator && facts.closedNormally) {
        const provider = isProvider(ctx, acq.fn);
        ctx.report({
          node: acq.call.node,
          message: `\`${acq.fn.name}\` yields \`${acq.target} = ${acq.label}\` without \`try/finally\`: an exception raised at the \`yield\` skips \`${acq.target}.close()\``,
          severity: provider && isWebService(ctx.project) ? 'critical' : leakSeverity(ctx.model, acq.fn.index),
          function: acq.fn.name,
        });
        continue;
      }
      // An `except` that exits without closing, in a function that closes on the normal path.
      if (!facts.closedNormally || facts.closedInFinally) continue;
      // (PA403 leaves this function's normal-path-only close to this finding: one report.)
      const exit = exceptExitLeaving(acq);
      if (exit) {
        ctx.report({
          node: exit,
          message: `this \`except\` path leaves \`${acq.fn.name}\` without closing \`${acq.target} = ${acq.label}\`: each failing call holds its connection until the garbage collector frees the ${acq.kind}`,
          severity: errorPathLeakSeverity(ctx.model, acq.fn.index),
          function: acq.fn.name,
        });
      }
    }
  },
};
