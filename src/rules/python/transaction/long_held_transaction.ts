/**
 * PA205 long_held_transaction
 *
 * What it does: finds a transaction held open while the code waits — on a network service or a
 * sleep — or one that spans more than 50 lines: `with session.begin():` bodies and first-write →
 * commit spans in one function.
 * Why is this bad? An open transaction pins a pooled connection, holds its row locks and keeps
 * PostgreSQL from vacuuming rows it might still see; the longer it stays open, the more the rest
 * of the service waits for it.
 */
import type { FileRule, FileRuleContext } from '../../types.js';
import { callsOf, externalCall, SLEEP_FUNCTIONS, transactionRegions } from './semantics.js';

const MAX_LINES = 50;

export const longHeldTransaction: FileRule = {
  meta: {
    code: 'PA205',
    check: 'long_held_transaction',
    family: 'transaction',
    severity: 'medium',
    effort: 'M',
    summary: 'A transaction held open across external calls, sleeps or a long stretch of code',
    what: `Finds a transaction (a \`with/async with session.begin():\` body, or the span from a session's first write to its commit in one function) that waits on a network service (high), sleeps (\`time.sleep\`, \`asyncio.sleep\`; medium), or spans more than ${MAX_LINES} lines (medium).`,
    why: 'An open transaction pins a pooled connection, keeps its row locks and holds back PostgreSQL\'s vacuum horizon for as long as it lives. A transaction that waits on a remote service or a timer makes every request that needs those rows, or a connection, wait with it.',
    bad:
      'import asyncio\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\nfrom app.models import Job\n\n\n'
      + 'async def claim(session: AsyncSession, job: Job) -> None:\n    async with session.begin():\n        job.status = "claimed"\n        await asyncio.sleep(5)\n        job.status = "running"\n',
    good:
      'import asyncio\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\nfrom app.models import Job\n\n\n'
      + 'async def claim(session: AsyncSession, job: Job) -> None:\n    async with session.begin():\n        job.status = "claimed"\n    await asyncio.sleep(5)\n    async with session.begin():\n        job.status = "running"\n',
    fix: 'prepare everything first, open the transaction for the DB work only and commit right after it',
    references: [
      'https://www.postgresql.org/docs/current/routine-vacuuming.html',
      'https://docs.sqlalchemy.org/en/20/orm/session_transaction.html',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    const regions = transactionRegions(model);
    if (!regions.length) return;
    const done = new Set<number>();
    for (const region of regions) {
      const where = region.kind === 'begin' ? `inside \`${region.session}.begin()\`` : `while \`${region.session}\` has uncommitted writes (line ${region.startLine} to the commit on line ${region.endLine})`;
      let waits = false;
      for (const call of callsOf(model, region.fnIndex)) {
        const at = call.node.startIndex;
        if (at < region.from || at >= region.to || done.has(at) || call.offloaded) continue;
        const ext = externalCall(model, call);
        if (ext?.kind === 'network') {
          done.add(at);
          waits = true;
          ctx.report({ node: call.node, message: `the transaction stays open while \`${ext.what}\` waits on a remote service, ${where}`, severity: 'high' });
        } else if (call.qualifiedName && SLEEP_FUNCTIONS.has(call.qualifiedName)) {
          done.add(at);
          waits = true;
          ctx.report({ node: call.node, message: `the transaction stays open across \`${call.calleeText}()\`, ${where}`, severity: 'medium' });
        }
      }
      const lines = region.endLine - region.startLine;
      if (!waits && lines > MAX_LINES) {
        ctx.report({
          node: region.start,
          message: `the transaction opened here stays open for ${lines} lines (until line ${region.endLine}): commit right after the DB work`,
          severity: 'medium',
        });
      }
    }
  },
};
