/**
 * PA211 unawaited_db_call
 *
 * What it does: finds a coroutine method of an `AsyncSession`, `AsyncConnection` or asyncpg
 * connection called without `await`: `db.commit()`, `session.execute(update(...))`,
 * `await`-less `flush()`, `refresh()`, `delete()`, `conn.execute(...)`.
 * Why is this bad? On an async handle these methods only build a coroutine; nothing runs until it
 * is awaited. Without `await` the commit, flush or statement never happens — the request
 * succeeds and the write is rolled back when the session closes — and Python only prints
 * "RuntimeWarning: coroutine ... was never awaited". A read hands back a coroutine instead of
 * rows.
 *
 * Silent: the call awaited, handed to `asyncio.gather`/`create_task`/`ensure_future`/`wait_for`/
 * `shield` or a task group (or any call), returned by a plain `def` (its caller awaits it), or bound to a name the function
 * awaits later; synchronous methods (`add`, `add_all`, `expunge`, `expire`); a sync `Session`;
 * a handle whose type is not known.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import { asyncHandles } from '../../../semantic/asyncSessions.js';
import type { CallInfo, FileModel } from '../../../semantic/model.js';
import { callsOf } from '../../../semantic/model.js';
import { receiverType } from '../../../semantic/valueTypes.js';
import type { FileRule, FileRuleContext } from '../../types.js';

/** Coroutine methods of `AsyncSession` / `AsyncConnection` that reach the database or end the transaction. */
const SESSION_COROUTINES = new Set([
  'execute', 'scalar', 'scalars', 'get', 'get_one', 'commit', 'rollback', 'flush', 'refresh', 'delete', 'merge', 'close',
  'stream', 'stream_scalars', 'run_sync', 'invalidate', 'exec', 'exec_driver_sql',
]);
/** Coroutine methods of an asyncpg connection. */
const ASYNCPG_COROUTINES = new Set(['execute', 'executemany', 'fetch', 'fetchrow', 'fetchval', 'close', 'copy_records_to_table', 'copy_to_table', 'copy_from_query', 'reset']);
/** What the missing `await` costs, by method. */
const LOST: Record<string, string> = {
  commit: 'the commit never happens: the writes are rolled back when the session closes',
  flush: 'the flush never happens',
  rollback: 'the rollback never happens: the session stays in its failed transaction',
  execute: 'the statement never runs',
  exec: 'the statement never runs',
  exec_driver_sql: 'the statement never runs',
  executemany: 'the statements never run',
  delete: 'the row is never deleted',
  merge: 'the object is never merged',
  refresh: 'the row is never reloaded',
  close: 'the session is never closed: its connection stays checked out',
};

export const unawaitedDbCall: FileRule = {
  meta: {
    code: 'PA211',
    check: 'unawaited_db_call',
    family: 'transaction',
    severity: 'high',
    effort: 'S',
    summary: 'A coroutine method of an AsyncSession or async connection called without await: it never runs',
    what: 'Finds `commit()`, `flush()`, `rollback()`, `execute()`, `scalar(s)()`, `get()`, `refresh()`, `delete()`, `merge()`, `close()` (and asyncpg\'s `execute`/`fetch*`) called without `await` on a name that holds an `AsyncSession`, `AsyncConnection` or asyncpg connection (an annotation, an `async_sessionmaker` of the project, `AsyncSession(...)`, `asyncpg.connect(...)`, or an async session provider behind `Depends`). Silent when the call is awaited, handed to a call (`asyncio.gather`, `create_task`, `wait_for`, a task group, a helper), returned by a plain `def` (its caller awaits it), or bound to a name the function awaits or hands on later; and for the synchronous methods (`add`, `add_all`, `expunge`, `expire`).',
    why: 'On an async handle these methods return a coroutine and do nothing until it is awaited. Without `await` the commit, flush or statement never runs: the handler returns success, the write is rolled back when the session closes, and Python only logs "coroutine ... was never awaited". A read returns a coroutine instead of rows.',
    bad: 'from sqlalchemy.ext.asyncio import AsyncSession\n\n\nasync def rename(session: AsyncSession, item: Item, name: str) -> None:\n    item.name = name\n    session.commit()\n',
    good: 'from sqlalchemy.ext.asyncio import AsyncSession\n\n\nasync def rename(session: AsyncSession, item: Item, name: str) -> None:\n    item.name = name\n    await session.commit()\n',
    fix: '`await` the call',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html#sqlalchemy.ext.asyncio.AsyncSession.commit',
      'https://docs.python.org/3/library/asyncio-dev.html#detect-never-awaited-coroutines',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile || !/\basync\s+def\b|asyncpg|AsyncSession|async_sessionmaker/.test(model.source)) return;
    const handles = asyncHandles(model, project);
    // One answer per name and function: a handle is bound once in the usual function.
    const known = new Map<string, ReturnType<typeof handles>>();
    for (const call of model.calls) {
      const m = call.method;
      if (call.functionIndex < 0 || (!SESSION_COROUTINES.has(m) && !ASYNCPG_COROUTINES.has(m))) continue;
      if (call.awaited || !call.hasReceiver || awaitedAround(call.node)) continue;
      const receiver = call.receiver;
      let handle: ReturnType<typeof handles> = null;
      // In a plain `def`, only a parameter annotated as an async handle: the common sync
      // session there is not worth typing every call for.
      const fn = model.functions[call.functionIndex]!;
      if (!fn.isAsync && !(receiver?.type === 'identifier' && fn.params.some((p) => p.name === receiver.text && /Async(Session|Connection)|asyncpg/.test(p.annotation ?? '')))) continue;
      if (receiver?.type === 'identifier') {
        const key = `${call.functionIndex}|${receiver.text}`;
        handle = known.get(key) ?? null;
        if (!known.has(key)) known.set(key, (handle = handles(receiver.text, call.functionIndex, call.line)));
      } else if (receiver?.type === 'attribute' && /^self\.\w+$/.test(receiver.text)) {
        // `self.session`: typed by the class (an annotation, `__init__`'s parameter).
        const t = receiverType(model, call);
        if (t && ASYNC_ATTRIBUTE.test(t)) handle = { kind: /asyncpg/.test(t) ? 'asyncpg connection' : 'AsyncSession', boundAt: 0 };
      }
      if (!handle) continue;
      if (handle.kind === 'asyncpg connection' ? !ASYNCPG_COROUTINES.has(m) : !SESSION_COROUTINES.has(m)) continue;
      if (runsElsewhere(model, call)) continue;
      ctx.report({
        node: call.node,
        message: `\`${call.calleeText}()\` on ${handle.kind} \`${receiver!.text}\` is not awaited: it only builds a coroutine, so ${LOST[m] ?? 'it never runs and the result is a coroutine, not rows'}`,
      });
    }
  },
};

/** `self.session` typed as an async handle (an instance path, `@...`). */
const ASYNC_ATTRIBUTE = /^@?([\w.]+\.)?(AsyncSession|async_scoped_session)$|^@?asyncpg(\.\w+)*\.Connection$/;

/** Is the call an operand of a conditional or boolean expression that is awaited (`await (a() if c else b())`)? */
function awaitedAround(node: SyntaxNode): boolean {
  let p = node.parent;
  while (p && (p.type === 'parenthesized_expression' || p.type === 'conditional_expression' || p.type === 'boolean_operator')) p = p.parent;
  return p?.type === 'await' && p !== node.parent;
}

/** Is the coroutine run or handed on: passed to a runner, returned, yielded, or bound to a name awaited later? */
function runsElsewhere(model: FileModel, call: CallInfo): boolean {
  let node: SyntaxNode = call.node;
  let p = node.parent;
  while (p?.type === 'parenthesized_expression') {
    node = p;
    p = p.parent;
  }
  if (!p) return false;
  // A plain `def` returning the coroutine hands it to a caller that awaits it; an `async def` that
  // returns it gives its awaiting caller a coroutine, not the result.
  const fn = model.functions[call.functionIndex]!;
  if ((p.type === 'return_statement' && !fn.isAsync) || p.type === 'yield' || p.type === 'lambda') return true;
  // Handed to a call (`gather`, `create_task`, a task group, a helper that awaits it) or put in a
  // collection that is: whoever receives the coroutine may run it.
  if (p.type === 'argument_list' || p.type === 'keyword_argument' || p.type === 'list' || p.type === 'tuple' || p.type === 'generator_expression' || p.type === 'list_comprehension') return true;
  if (p.type === 'assignment') {
    const target = p.childForFieldName('left');
    if (target?.type !== 'identifier') return true;
    const rest = model.source.slice(p.endIndex, fn.end);
    if (new RegExp(`\\bawait\\s+${target.text}\\b${fn.isAsync ? '' : `|\\breturn\\s+${target.text}\\b`}`).test(rest)) return true;
    // Handed to a call later (`gather(ping(), c)`, `tasks.append(c)`): an argument of any call after it.
    return callsOf(model, call.functionIndex).some((c) => c.functionIndex === call.functionIndex && c.node.startIndex >= p!.endIndex
      && (c.node.childForFieldName('arguments')?.namedChildren ?? []).some((a) => (a.type === 'keyword_argument' ? a.childForFieldName('value') : a)?.text === target.text));
  }
  return false;
}
