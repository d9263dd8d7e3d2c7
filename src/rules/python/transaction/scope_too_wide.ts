/**
 * PA202 scope_too_wide
 *
 * What it does: finds an external call — HTTP, gRPC, SMTP, S3 and other network clients, or file
 * I/O — made while a transaction is open: inside `with session.begin():`, or between a session's
 * first write (`add`, `flush`, an UPDATE, …) and its commit in the same function.
 * Why is this bad? The transaction holds its connection (and, once flushed, its row locks) for as
 * long as the remote side takes; and the two cannot be made atomic: if the commit fails after
 * the request went out, the remote system acts on data that never existed.
 *
 * Through calls (repo phase): a same-repo function called inside the open transaction that
 * reaches a network call at any depth (a project client wrapping `httpx`, an SDK call).
 *
 * Silent look-alikes: the call before the first write or after the commit, a transaction that
 * only read, a call inside a nested function defined there (not run there).
 */
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import { callsOf, externalCall, transactionRegions } from './semantics.js';
import { NETWORK_EFFECT } from './effects.js';
import { reportInTransactionCalls } from './reach.js';

export const scopeTooWide: FileRule & RepoRule = {
  meta: {
    code: 'PA202',
    check: 'scope_too_wide',
    family: 'transaction',
    severity: 'high',
    effort: 'M',
    summary: 'An external call or file I/O inside an open transaction',
    what: 'Finds network calls (`httpx`, `requests`, `aiohttp`, `grpc`, SMTP, `boto3`/S3 and similar clients) and file I/O (`open`, `aiofiles`, `Path.read_*/write_*`, `shutil`) made while a transaction is open: inside `with/async with session.begin():`, or between a session\'s first write and its commit in the same function — directly, or through a same-repo helper that reaches a network call (a project client wrapping `httpx`/`requests`, an SDK such as PyGithub, jira or Slack). High for network calls, medium for file I/O.',
    why: 'An open transaction keeps its pooled connection, and after a flush its row locks, for as long as the remote side takes to answer. Worse, the external effect and the commit are not atomic: when the commit fails after the request went out, the other system acts on rows that were rolled back.',
    bad:
      'import httpx\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\nfrom app.models import Order\n\n\n'
      + 'async def place(session: AsyncSession, order: Order) -> None:\n    session.add(order)\n    await session.flush()\n'
      + '    async with httpx.AsyncClient() as client:\n        await client.post("https://payments.example/charge", json={"order": order.id})\n    await session.commit()\n',
    good:
      'import httpx\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\nfrom app.models import Order\n\n\n'
      + 'async def place(session: AsyncSession, order: Order) -> None:\n    session.add(order)\n    await session.flush()\n    order_id = order.id\n    await session.commit()\n'
      + '    async with httpx.AsyncClient() as client:\n        await client.post("https://payments.example/charge", json={"order": order_id})\n',
    fix: 'do the external call before the first write or after the commit; for "write and notify", use an outbox table',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#when-do-i-construct-a-session-when-do-i-commit-it-and-when-do-i-close-it',
      'https://microservices.io/patterns/data/transactional-outbox.html',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    const regions = transactionRegions(model);
    if (!regions.length) return;
    const done = new Set<number>();
    for (const region of regions) {
      // One file-I/O finding per transaction: `open()` and the writes to its handle are one act.
      let fileReported = false;
      for (const call of callsOf(model, region.fnIndex)) {
        const at = call.node.startIndex;
        if (at < region.from || at >= region.to || done.has(at) || call.offloaded) continue;
        const ext = externalCall(model, call);
        if (!ext || (ext.kind === 'file' && fileReported)) continue;
        if (ext.kind === 'file') fileReported = true;
        done.add(at);
        const where = region.kind === 'begin' ? `inside \`${region.session}.begin()\`` : `between the first write on \`${region.session}\` (line ${region.startLine}) and its commit (line ${region.endLine})`;
        ctx.report({
          node: call.node,
          message: ext.kind === 'network'
            ? `network call \`${ext.what}\` ${where}: the transaction holds its connection and locks while waiting, and the call cannot be undone if the commit fails`
            : `file I/O \`${ext.what}\` ${where}: the transaction stays open while the disk works`,
          severity: ext.kind === 'network' ? 'high' : 'medium',
        });
      }
    }
  },
  checkRepo(ctx: RepoRuleContext): void {
    reportInTransactionCalls(ctx, NETWORK_EFFECT, 'high', false, (callee, chain, where) =>
      `\`${callee}()\` makes a network call (\`${chain}()\`) ${where}: the transaction holds its connection and locks while waiting, and the call cannot be undone if the commit fails`);
  },
};
