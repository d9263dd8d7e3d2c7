/**
 * PA307 sync_db_in_async
 *
 * What it does: finds synchronous database calls made on the event loop inside `async def`:
 * methods of a sync SQLAlchemy `Session` / `Connection` / `Engine`, DB-API drivers (`psycopg2`,
 * `pymysql`, `sqlite3`, …) and a sync `redis` client.
 * Why is this bad? A sync driver waits for the database on the calling thread; on the event
 * loop that stops every other coroutine for the length of the round trip (and of the lock wait).
 *
 * A receiver counts only when it is known to be sync: annotated `Session`, built by a sync
 * `sessionmaker()` / `Session()` / `create_engine().connect()`, or injected with
 * `Depends(provider)` whose provider yields such a session — when the provider or the factory
 * lives in another module, the repo phase decides. `AsyncSession` and awaited calls never count.
 */
import { syncDbCall } from '../../../semantic/syncDb.js';
import type { CallInfo, FunctionInfo } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import { asyncCallSites, moreLines, reportEventLoopChains, severityByRole } from './context.js';


const SEVERITY = { handler: 'high', background: 'medium', init: 'low', other: 'high' } as const;


export const syncDbInAsync: FileRule & RepoRule = {
  meta: {
    code: 'PA307',
    check: 'sync_db_in_async',
    family: 'runtime',
    severity: 'high',
    effort: 'M',
    summary: 'Synchronous database call (sync SQLAlchemy session, psycopg2, sqlite3, sync redis) inside `async def`',
    what: 'Finds sync SQLAlchemy `Session`/`Connection`/`Engine` methods (`execute`, `query`, `scalars`, `scalar`, `get`, `commit`, `flush`, `refresh`, …), DB-API calls (`psycopg2`, `psycopg`, `pymysql`, `sqlite3`: `connect`, `execute`, `fetch*`, `commit`), the catalog queries of an Inspector on a sync engine or connection (`sqlalchemy.inspect(engine).get_schema_names()`, `get_table_names`, `has_table`, …; not `inspect()` of a mapped object, which reads its state in memory) and sync `redis.Redis` commands made on the event loop inside `async def` — when the receiver is known to be sync: annotated `Session`, made by a sync `sessionmaker()`/`Session()`/`engine.connect()`, or injected through `Depends(provider)` whose provider yields a sync session (also across modules). One finding per coroutine, at its first direct sync call, with the lines of the others. Calls through same-repo sync helpers are followed and reported with the chain. `AsyncSession` and awaited calls are never flagged. A blocking call that three or more coroutines reach through helpers is reported once, at the call, with their call sites (`callers`). Advisory in a coroutine that only ever runs on an event loop of its own (every call of it is a sync function\'s `asyncio.run(c())`, `run_until_complete(c())` or `asyncio.Runner().run(c())`, or an await from such a coroutine, and nothing it reaches starts coroutines beside it with `gather`, `create_task` or a task group; never a route): nothing else waits on that loop.',
    why: 'A sync driver blocks the calling thread until the database answers. On the event loop, every other request waits for each round trip, so one slow query stalls the whole service; tools that only know `time.sleep` and `requests` do not see it.',
    bad: 'from sqlalchemy.orm import sessionmaker\n\nSessionLocal = sessionmaker(bind=engine)\n\n@app.get("/users/{uid}")\nasync def read_user(uid: int):\n    with SessionLocal() as db:\n        return db.get(User, uid)\n',
    good: 'from sqlalchemy.ext.asyncio import async_sessionmaker\n\nSessionLocal = async_sessionmaker(bind=async_engine)\n\n@app.get("/users/{uid}")\nasync def read_user(uid: int):\n    async with SessionLocal() as db:\n        return await db.get(User, uid)\n',
    fix: 'use `AsyncSession` / an async driver (`asyncpg`, `aiosqlite`, `redis.asyncio`), declare the endpoint with plain `def`, or `await asyncio.to_thread(...)`',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html',
      'https://fastapi.tiangolo.com/async/#path-operation-functions',
      'https://redis.readthedocs.io/en/stable/examples/asyncio_examples.html',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    // One finding per coroutine, at its first sync call: the fix (an async session, a plain
    // `def`, a thread) is the function's, and its query and its commit are one defect.
    const byFunction = new Map<number, { call: CallInfo; fn: FunctionInfo; what: string; more: number[] }>();
    for (const { call, fn } of asyncCallSites(ctx.model)) {
      const verdict = syncDbCall(ctx.model, call);
      if (!verdict || !('what' in verdict)) continue;
      // A call suppressed on its own line (`# noqa: PA307`) is neither the finding nor in its list.
      if (suppressedHere(ctx, call)) continue;
      const first = byFunction.get(call.functionIndex);
      if (first) first.more.push(call.line);
      else byFunction.set(call.functionIndex, { call, fn, what: verdict.what, more: [] });
    }
    for (const { call, fn, what, more } of byFunction.values()) {
      ctx.report({
        node: call.node,
        message: `sync database call \`${what}\` on the event loop inside \`async def ${fn.name}\`` + moreLines(more, call.line),
        severity: severityByRole(ctx.model, call.functionIndex, SEVERITY),
      });
    }
  },
  checkRepo(ctx: RepoRuleContext): void {
    reportEventLoopChains(ctx, 'sync_db', SEVERITY, (what, fn, chain) =>
      `sync database call \`${what}\` on the event loop inside \`async def ${fn}\``, [], undefined, undefined, undefined, { perCoroutine: true });
  },
};

/** Is the call's line (or its last) marked `# noqa: PA307` (or a bare `# noqa`)? */
function suppressedHere(ctx: FileRuleContext, call: CallInfo): boolean {
  for (const line of [call.line, call.node.endPosition.row + 1]) {
    const codes = ctx.model.suppressions.get(line);
    if (codes && (codes.has('*') || codes.has('PA307'))) return true;
  }
  return false;
}
