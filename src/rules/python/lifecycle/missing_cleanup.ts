/**
 * PA403 missing_cleanup
 *
 * What it does: finds a session, connection or file assigned to a local variable outside
 * `with` / `async with` — `Session(engine)`, a `sessionmaker` factory called, `engine.connect()`,
 * `await pool.acquire()`, `psycopg2.connect()`, `await asyncpg.connect()`, `open()` — that is
 * not closed on every path: no `close()` in a `finally` around its use.
 * Why is this bad? The first exception between the acquisition and the `close()` leaks the
 * handle: a pooled connection stays checked out (and its transaction open) until the garbage
 * collector finds it, a file descriptor stays open.
 *
 * Precision: a value that leaves the function (returned, stored on an object or in a
 * container, handed to `ExitStack.enter_context` / `closing()` / a `.callback(x.close)`) or is
 * used as a context manager later is the caller's; a close in `finally`, or in a catch-all
 * `except` plus the normal path, counts. Module-level handles are long-lived by design.
 */
import type { FileRule, FileRuleContext } from '../../types.js';
import { acquisitions, closeFacts } from './semantics.js';

export const missingCleanup: FileRule = {
  meta: {
    code: 'PA403',
    check: 'missing_cleanup',
    family: 'lifecycle',
    severity: 'high',
    effort: 'S',
    summary: 'Session, connection or file acquired outside `with` and not closed on every path',
    what: 'Finds `Session()`, `sessionmaker()()` (a session factory called), `engine.connect()`, `engine.raw_connection()`, `await pool.acquire()`, driver `connect()` calls (`psycopg2`, `psycopg`, `asyncpg`, `sqlite3`, `pymysql`, …) and `open()` assigned to a local variable outside `with` / `async with`, and not closed on all paths: a `close()` only at the end of the normal path does not count, a `close()` in `finally` does. Values returned to the caller, stored on an object or registered with an `ExitStack` are not flagged.',
    why: 'Any exception between the acquisition and the `close()` skips the close: the pooled connection stays checked out with its transaction open until garbage collection, and under load the pool runs dry (`QueuePool limit … reached`). For files, descriptors leak and buffered writes may be lost.',
    bad: 'from sqlalchemy import create_engine, text\nfrom sqlalchemy.orm import sessionmaker\n\nengine = create_engine("postgresql://app@db/app", pool_pre_ping=True)\nSessionLocal = sessionmaker(engine)\n\n\ndef count_users() -> int:\n    db = SessionLocal()\n    n = db.execute(text("SELECT count(*) FROM users")).scalar_one()\n    db.close()\n    return n\n',
    good: 'from sqlalchemy import create_engine, text\nfrom sqlalchemy.orm import sessionmaker\n\nengine = create_engine("postgresql://app@db/app", pool_pre_ping=True)\nSessionLocal = sessionmaker(engine)\n\n\ndef count_users() -> int:\n    with SessionLocal() as db:\n        return db.execute(text("SELECT count(*) FROM users")).scalar_one()\n',
    fix: 'acquire with `with` / `async with`, or close in `try: … finally: x.close()`',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#opening-and-closing-a-session',
      'https://docs.sqlalchemy.org/en/20/core/connections.html#basic-usage',
      'https://docs.python.org/3/reference/compound_stmts.html#the-with-statement',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    for (const acq of acquisitions(ctx.model, ctx.project)) {
      const facts = closeFacts(acq);
      if (facts.escapes || facts.closedInFinally || facts.closedOnBothPaths) continue;
      const closedSomewhere = facts.closedNormally || facts.closingExcepts.size > 0;
      const what = acq.kind === 'file' ? 'file' : acq.kind;
      ctx.report({
        node: acq.call.node,
        message: closedSomewhere
          ? `${what} \`${acq.target} = ${acq.label}\` is closed only on the normal path: an exception before \`${acq.target}.close()\` leaks it`
          : `${what} \`${acq.target} = ${acq.label}\` is never closed`,
        severity: acq.kind === 'file' ? 'medium' : 'high',
        function: acq.fn.name,
      });
    }
  },
};
