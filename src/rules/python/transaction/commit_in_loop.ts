/**
 * PA207 commit_in_loop
 *
 * What it does: finds `session.commit()` that runs on every iteration of a `for` loop whose body
 * writes rows through the same session.
 * Why is this bad? Each commit is a transaction, a WAL flush and a round trip: N rows cost N
 * commits, and a failure half-way leaves half the batch applied.
 *
 * Silent look-alikes: a commit under a condition (`if n % 500 == 0:` — a throttled milestone),
 * a commit followed by `break`/`return` (retries), a per-item `try/except` (failure isolation),
 * a session opened inside the loop (one unit of work per item), `while` / `async for` loops
 * (consumers and polling loops commit per message by design), loops that only read.
 */
import type { FileRule, FileRuleContext } from '../../types.js';
import type { CallInfo, FileModel, LoopInfo } from '../../../semantic/model.js';
import {
  boundInLoop, callsOf, conditionalWithin, enclosingTries, inManagingWith, isCommitCall, isWriteCall,
  loopTargets, nextStatement, receiverKey,
} from './semantics.js';

export const commitInLoop: FileRule = {
  meta: {
    code: 'PA207',
    check: 'commit_in_loop',
    family: 'transaction',
    severity: 'medium',
    effort: 'S',
    summary: '`commit()` on every iteration of a loop that writes rows',
    what: 'Finds a `commit()` on a session (or DB-API connection) that runs unconditionally on every iteration of a `for` loop whose body writes rows through the same session: `add`/`merge`/`delete`, an UPDATE/DELETE/INSERT, attribute changes on the rows being iterated, or a helper the session is handed to. A commit under a condition (`if n % 500 == 0`) is a throttled milestone and is not flagged; neither is a per-item `try/except` with rollback, a session opened per item, nor a `while`/`async for` consumer loop.',
    why: 'Every commit is a transaction: a round trip, a WAL flush to disk and, with `expire_on_commit`, the expiry of every loaded object (the next attribute access reloads it). A thousand rows cost a thousand commits, and a failure half-way leaves the batch half applied.',
    bad:
      'from sqlalchemy import select\nfrom sqlalchemy.orm import Session\n\nfrom app.models import Job\n\n\n'
      + 'def fail_stale(session: Session) -> None:\n    for job in session.scalars(select(Job).where(Job.status == "running")).all():\n'
      + '        job.status = "failed"\n        session.commit()\n',
    good:
      'from sqlalchemy import select\nfrom sqlalchemy.orm import Session\n\nfrom app.models import Job\n\n\n'
      + 'def fail_stale(session: Session) -> None:\n    for n, job in enumerate(session.scalars(select(Job).where(Job.status == "running")).all(), start=1):\n'
      + '        job.status = "failed"\n        if n % 500 == 0:\n            session.commit()\n    session.commit()\n',
    fix: 'commit once after the loop, or every N rows (`if n % 500 == 0: session.commit()`)',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#committing',
      'https://www.postgresql.org/docs/current/wal-async-commit.html',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    for (const call of model.calls) {
      if (call.functionIndex < 0 || !call.loops.length || call.method !== 'commit') continue;
      if (!isCommitCall(model, call)) continue;
      const loop = model.loops[call.loops[call.loops.length - 1]!]!;
      const reason = perIterationCommit(model, call, loop);
      if (!reason) continue;
      const iter = loop.iterable ? ` over \`${short(loop.iterable.text)}\`` : '';
      ctx.report({
        node: call.node,
        message: `\`${call.calleeText}()\` runs on every iteration of the loop${iter} (${reason}): one transaction and one WAL flush per row`,
      });
    }
  },
};

function short(t: string): string {
  const s = t.replace(/\s+/g, ' ');
  return s.length > 50 ? s.slice(0, 49) + '…' : s;
}

/** Why the commit is a per-row commit (what the loop writes), or null when it is not one. */
function perIterationCommit(model: FileModel, commit: CallInfo, loop: LoopInfo): string | null {
  if (loop.kind !== 'for') return null;
  const body = loop.node.childForFieldName('body');
  if (!body) return null;
  if (conditionalWithin(commit.node, body)) return null;
  if (enclosingTries(commit.node, body).some((t) => t.startIndex >= body.startIndex)) return null;
  const next = nextStatement(commit.node);
  if (next && (next.type === 'break_statement' || next.type === 'return_statement')) return null;
  const session = receiverKey(commit);
  if (!session) return null;
  // A session bound per item (`with factory() as s:` inside the loop, `s = Session()`): one
  // unit of work per item, by design.
  const head = session.split('.')[0]!;
  if (boundInLoop(model, loop, head)) return null;
  if (commit.withs.some((wi) => {
    const w = model.withs[wi]!;
    return w.node.startIndex >= body.startIndex && w.items.some((i) => i.alias === head);
  })) return null;
  if (inManagingWith(model, commit) && commit.withs.some((wi) => model.withs[wi]!.node.startIndex >= body.startIndex)) return null;
  return loopWrites(model, loop, session, commit);
}

/** What the loop body writes through `session` before the commit, or null when it only reads. */
function loopWrites(model: FileModel, loop: LoopInfo, session: string, commit: CallInfo): string | null {
  for (const c of callsOf(model, loop.functionIndex)) {
    if (!c.loops.includes(loop.index) || c === commit) continue;
    if (receiverKey(c) === session && isWriteCall(model, c)) return `it writes with \`${c.calleeText}()\``;
  }
  // Attribute changes on the rows the loop walks: flushed by the commit.
  const targets = loopTargets(loop);
  for (const a of [...model.assignments, ...model.augAssignments]) {
    if (a.functionIndex !== loop.functionIndex || !a.loops.includes(loop.index)) continue;
    const m = /^([A-Za-z_]\w*)\.(\w+)$/.exec(a.target);
    if (m && targets.has(m[1]!) && !m[2]!.startsWith('_')) return `it changes \`${a.target}\``;
  }
  // The session handed to a helper inside the loop: the helper works in the transaction the
  // loop commits each time.
  for (const c of callsOf(model, loop.functionIndex)) {
    if (!c.loops.includes(loop.index) || c === commit || receiverKey(c) === session) continue;
    if (c.qualifiedName && /^(builtins|logging|asyncio|json|time|datetime)\./.test(c.qualifiedName)) continue;
    const args = c.node.childForFieldName('arguments');
    if (args?.namedChildren.some((x) => x.text === session)) return `it hands the session to \`${c.calleeText}()\``;
  }
  return null;
}
