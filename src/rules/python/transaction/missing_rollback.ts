/**
 * PA204 missing_rollback
 *
 * What it does: finds a commit whose failure is not rolled back:
 * - a `try` around `commit()` whose handler catches database errors (bare `except`, `Exception`,
 *   `SQLAlchemyError`, `IntegrityError`, …) and neither rolls back nor re-raises;
 * - a commit outside any `try` and outside a session/transaction `with`, after the function has
 *   written on the session and then made a call that can fail outside the database (a network
 *   call, file I/O): when that call raises, the flushed writes stay on a session nobody rolls back.
 * Why is this bad? After a failed flush or commit the session refuses all work until `rollback()`
 * (`PendingRollbackError`); a swallowed error leaves it, and its connection, in that state.
 *
 * Severity: medium; low when a `with` around the commit already rolls back on exit.
 * Silent look-alikes: `async with session.begin():`, a `with Session() as s:` block, `try/except:
 * rollback(); raise`, a handler that only catches unrelated errors, a `finally: close()`.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import type { CallInfo, FileModel } from '../../../semantic/model.js';
import {
  callsOf, enclosingTries, exceptClauses, externalCall, finallyClause, inManagingWith, isCommitCall, isWriteCall, receiverKey,
} from './semantics.js';

const DB_ERROR = /(^|\.)(Exception|BaseException|SQLAlchemyError|DBAPIError|DatabaseError|IntegrityError|OperationalError|DataError|StatementError|InterfaceError|InternalError|ProgrammingError|PendingRollbackError|InvalidRequestError|PostgresError|Error)$/;

export const missingRollback: FileRule = {
  meta: {
    code: 'PA204',
    check: 'missing_rollback',
    family: 'transaction',
    severity: 'medium',
    effort: 'S',
    summary: 'A commit whose failure is never rolled back',
    what: 'Finds a `try` around `commit()` whose `except` catches database errors (bare, `Exception`, `SQLAlchemyError`, `IntegrityError`, …) and neither calls `rollback()` nor re-raises; and a commit outside any `try` and session `with` that follows a write and a call that can fail outside the database (network, file I/O), so a failure there leaves the flushed writes on a session nobody rolls back. Low when a session `with` around the commit rolls back on exit anyway.',
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
    for (const call of model.calls) {
      if (call.method !== 'commit' || call.functionIndex < 0 || !isCommitCall(model, call)) continue;
      const fn = model.functions[call.functionIndex]!;
      const tries = enclosingTries(call.node, fn.node);
      const managed = inManagingWith(model, call);
      if (tries.length) {
        const swallow = swallowingHandler(model, call, tries);
        if (!swallow) continue;
        ctx.report({
          node: call.node,
          message: `\`${call.calleeText}()\` is in a \`try\` whose \`${swallow.text.slice(0, Math.max(0, swallow.text.indexOf(':'))).replace(/\s+/g, ' ').trim()}\` handler neither rolls back nor re-raises: the session is left in a failed transaction`,
          severity: managed ? 'low' : 'medium',
        });
        continue;
      }
      if (managed || inFinallyClosedScope(call)) continue;
      const risky = failingCallBeforeCommit(model, call);
      if (!risky) continue;
      ctx.report({
        node: call.node,
        message: `\`${call.calleeText}()\` is outside any \`try\` or session \`with\`, after \`${risky.write}\` and \`${risky.call}\`: if that call fails, the flushed writes stay on a session nobody rolls back`,
      });
    }
  },
};

/** The handler that catches DB errors around the commit without rollback or raise, or null. */
function swallowingHandler(model: FileModel, commit: CallInfo, tries: SyntaxNode[]): SyntaxNode | null {
  // The innermost try that catches DB errors decides.
  for (const t of tries) {
    if (finallyClause(t) && /\b(close|rollback|remove)\s*\(/.test(finallyClause(t)!.text)) return null;
    const handlers = exceptClauses(t).filter((h) => catchesDbErrors(h));
    if (!handlers.length) continue;
    for (const h of handlers) {
      if (/\brollback\s*\(|\braise\b|\b\w*rollback\w*\s*\(/.test(h.text)) continue;
      if (/\b(close|invalidate)\s*\(/.test(h.text)) continue;
      void commit;
      void model;
      return h;
    }
    return null;
  }
  return null;
}

/** Does an `except` clause catch database errors (bare, broad, or a DB exception class)? */
function catchesDbErrors(handler: SyntaxNode): boolean {
  const header = handler.text.slice(0, handler.text.indexOf(':') >= 0 ? handler.text.indexOf(':') : handler.text.length);
  const m = /^except\*?\s*(.*)$/s.exec(header.trim());
  if (!m) return false;
  const spec = m[1]!.replace(/\s+as\s+\w+\s*$/, '').trim();
  if (spec === '') return true;
  const names = spec.replace(/^\(|\)$/g, '').split(',').map((s) => s.trim()).filter(Boolean);
  return names.some((n) => DB_ERROR.test(n) && !/^(ValueError|KeyError|TypeError|HTTPError|RequestError|TimeoutError)$/.test(n));
}

/** A commit after a `try` whose `finally` closes the session is covered by that close. */
function inFinallyClosedScope(commit: CallInfo): boolean {
  let cur: SyntaxNode | null = commit.node.parent;
  while (cur && cur.type !== 'function_definition') {
    if (cur.type === 'try_statement') {
      const fin = finallyClause(cur);
      if (fin && /\b(close|rollback|remove)\s*\(/.test(fin.text)) return true;
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
