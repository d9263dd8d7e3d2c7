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
 * The request scope (repo phase): a handler that writes on the request's session — a
 * repository-library write that only flushes (advanced-alchemy), a session write with a provider
 * that commits after `yield`, or the session Litestar's SQLAlchemy plugin injects — and then makes
 * a network call, with no commit of its own: the request scope commits after the handler returns,
 * so the transaction stays open across the call.
 *
 * Writes a helper sent (repo phase): a function that commits nothing itself, after its own
 * flush or statement, or after a same-repo helper that flushes without committing (on every
 * path), reaches a network call: the commit is a caller's, later (`low`; `medium` per item of a
 * loop; a resolver lookup is not a send).
 *
 * Silent look-alikes: the call before the first write or after the commit, a transaction that
 * only read, a call inside a nested function defined there (not run there).
 */
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import { awaitedOffloadCall, readOnlyRemote } from '../../../semantic/externalCalls.js';
import { callsOf, externalCall, openOnPathTo, transactionRegions } from './semantics.js';
import { COMMIT_EFFECT, NETWORK_EFFECT, NETWORK_SEND_EFFECT, ROLLBACK_EFFECT, TXN_LOOP_CALL, TXN_OPEN_CALL } from './effects.js';
import { lighterClaim, reportInTransactionCalls } from './reach.js';
import { callGraphOf, siteCalls, type CallEdge, type CallGraph, type FnRef } from '../../../analysis/callgraph.js';
import type { Effect } from '../../../analysis/summary.js';
import type { Severity } from '../../../types.js';
import { AUTOCOMMITTED_WRITE, FLUSH_EFFECT, isSqliteDriver, receiverDriver, WRITE_EFFECT } from '../query/dbCalls.js';
import { MAY_COMMIT_EFFECT } from './missing_commit.js';
import { UNTYPED } from '../../../analysis/objects.js';
import { libraryReach } from './libraryReach.js';
import { COMMITS_ALWAYS, TXN_REQUEST_WRITE, type RequestWriteSite } from './libraryWrites.js';
import { yieldDependencyOutlivesStream } from '../lifecycle/semantics.js';

export const scopeTooWide: FileRule & RepoRule = {
  meta: {
    code: 'PA202',
    check: 'scope_too_wide',
    family: 'transaction',
    severity: 'high',
    effort: 'M',
    summary: 'An external call or file I/O inside an open transaction',
    what: 'Finds network calls (`httpx`, `requests`, `aiohttp`, `grpc`, SMTP, `boto3`/S3 and similar clients) and file I/O (`open`, `aiofiles`, `Path.read_*/write_*`, `shutil`) made while a transaction is open: inside `with/async with session.begin():`, or between a session\'s first write and its commit in the same function, or in a request handler after a write on the request\'s session that the request scope commits once the handler returns (a flush-only repository-library write, a provider that commits after `yield`) — directly, or through a same-repo helper that reaches a network call (a project client wrapping `httpx`/`requests`, an SDK such as PyGithub, jira or Slack), with the flags the call passes: a helper that only queues a row unless told otherwise (`def notify(db, ids, queued=True): if queued: db.add(Job(...)); return` before its post) waits on nothing when called without `queued=False`, and a coroutine started as a task nobody waits for (`asyncio.create_task(post(...))`, or handed to a repo function that starts it so) is not waited on here. A function handed to `BackgroundTasks.add_task(...)` there runs after the response: inside that transaction only where the scope\'s commit comes after the background tasks (FastAPI `yield` dependencies before 0.106 and from 0.118; not 0.106–0.117, nor Litestar\'s plugin, which commits before the response). Also a function that commits nothing itself but has sent writes — an explicit `flush()` or a statement of its own, or a same-repo helper that flushes without committing (`draft = make_draft(...)`) on every path — and then reaches a network call: the commit is a caller\'s (a base class around the handler, a request hook), after the call (`low`; `medium` when the call runs per item of a loop; a resolver lookup such as `socket.getaddrinfo` is not one). High for network calls, medium for file I/O; one step lower (`low` becoming advisory) for a call that only reads from the remote side (an HTTP GET, HEAD or OPTIONS, an SDK\'s `retrieve`, `get_*`, `list_*`, `describe_*`, `search`, `fetch`; through a helper, one that reaches no call that sends): nothing is sent that a failed commit would leave behind, but the round trip still holds the connection and the locks. `medium` at most where only background jobs reach the transaction (a Celery/RQ/Dramatiq task, a function a scheduler runs: APScheduler\'s `scheduled_job`/`add_job`, the `schedule` library\'s `every(...).do(fn)`, a decorator whose arguments say when it runs (`@runner.add(every(1).hours)`, `crontab(...)`, a trigger) or a method of a module-level scheduler object): the wait holds a job\'s connection and locks, no user\'s request waits on the job.',
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
        if (at < region.from || at >= region.to || done.has(at) || call.offloaded || !openOnPathTo(model, region, call)) continue;
        // Handed to a thread and awaited (`await asyncio.to_thread(requests.post, ...)`): off the
        // event loop, but the transaction waits all the same.
        const ext = externalCall(model, call) ?? awaitedOffloadCall(model, call);
        if (!ext || (ext.kind === 'file' && fileReported)) continue;
        if (ext.kind === 'file') fileReported = true;
        done.add(at);
        const where = region.kind === 'begin' ? `inside \`${region.session}.${region.block ?? 'begin'}()\`` : `between the first write on \`${region.session}\` (line ${region.startLine}) and its commit (line ${region.endLine})`;
        const reads = ext.kind === 'network' && readOnlyRemote(ext.what);
        ctx.report({
          node: call.node,
          message: ext.kind === 'network'
            ? `network call \`${ext.what}\` ${where}: the transaction holds its connection and locks while waiting${reads ? `; ${READ_ONLY_NOTE}` : UNDO}`
            : `file I/O \`${ext.what}\` ${where}: the transaction stays open while the disk works`,
          // A write transaction on SQLite locks the database file for other writers only: low.
          ...lighterClaim(region.commit && isSqliteDriver(receiverDriver(model, region.commit)) ? 'low' : ext.kind === 'network' ? 'high' : 'medium', reads ? READ_ONLY_NOTE : undefined),
        });
      }
    }
  },
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    reportInTransactionCalls(ctx, NETWORK_EFFECT, 'high', false, (callee, chain, where, reads) =>
      `\`${callee}()\` makes a network call (\`${chain}()\`) ${where}: the transaction holds its connection and locks while waiting${reads ? '' : UNDO}`,
      false, false, (to) => (graph.reaches(to, NETWORK_SEND_EFFECT, 'any') ? undefined : READ_ONLY_NOTE));
    const done = requestTransactionWaits(ctx);
    flushedWriteWaits(ctx, done);
  },
};

const REQUEST_WRITES: ReadonlySet<string> = new Set([TXN_REQUEST_WRITE]);
const before = (a: { line: number; column: number }, b: { line: number; column: number }) => a.line < b.line || (a.line === b.line && a.column < b.column);

/**
 * A request handler writes on the request's session — a repository-library write (a flush), a
 * session write — whose commit the request scope makes after the response (advanced-alchemy's
 * Litestar plugin, a provider that commits after `yield`), then makes a network call with no
 * commit in between: the transaction, and the locks of the flushed rows, stay open for the call.
 */
function requestTransactionWaits(ctx: RepoRuleContext): Set<string> {
  const graph = callGraphOf(ctx.index);
  const lib = libraryReach(graph);
  const committing = (provider: string): boolean => {
    if (provider === 'plugin') return true;
    const ref = graph.resolveQualified(provider);
    return !!ref && lib.mayCommit([ref]) && !graph.ownEffects(ref).some((e) => e.kind === COMMITS_ALWAYS);
  };
  const seen = new Set<string>();
  const reported = new Set<string>();
  // Background tasks inside the request scope's transaction: FastAPI's `yield` dependencies whose
  // exit code runs after them. Elsewhere (Litestar's plugin commits before the response) not.
  const fastapi = 'fastapi' in ctx.project.stack;
  const backgroundInScope = fastapi && yieldDependencyOutlivesStream(ctx.project);
  const handlers: FnRef[] = [...graph.functionsWithEffects(REQUEST_WRITES)];
  for (const f of graph.functions()) if (graph.function(f).role === 'handler' && graph.callees(f).some((e) => lib.flushOnly([e.to]))) handlers.push(f);
  for (const ref of handlers) {
    const key = `${ref.file}:${ref.fn}`;
    if (seen.has(key) || graph.fileOf(ref).isTestFile) continue;
    seen.add(key);
    const own = graph.ownEffects(ref);
    // The first write whose commit the request scope owns.
    let write: { line: number; column: number; what: string } | null = null;
    const consider = (w: { line: number; column: number; what: string }) => {
      if (!write || before(w, write)) write = w;
    };
    let viaPlugin = false;
    for (const e of own) {
      if (e.kind !== TXN_REQUEST_WRITE) continue;
      const site = JSON.parse(e.what) as RequestWriteSite;
      const call = graph.callAt(ref.file, e.line, e.column);
      if (!call) continue;
      if (site.lib ? lib.libraryTyped(call.receiverType) : site.provider && committing(site.provider)) {
        consider({ line: e.line, column: e.column, what: call.calleeText });
        viaPlugin ||= site.provider === 'plugin' || (!!site.lib && !fastapi);
      }
    }
    for (const edge of graph.callees(ref)) {
      if (!lib.flushOnly([edge.to])) continue;
      consider({ line: edge.call.line, column: edge.call.column, what: edge.call.calleeText });
      viaPlugin ||= !fastapi;
    }
    const w = write as { line: number; column: number; what: string } | null;
    if (!w) continue;
    const commits = [...own.filter((e) => e.kind === 'commit_may'), ...graph.callees(ref).filter((e) => lib.mayCommit([e.to])).map((e) => e.call)].filter((c) => before(w, c));
    // A handler that commits after the write owns its transaction: the in-function rule's case.
    if (commits.length) continue;
    const open = (at: { line: number; column: number }) => before(w, at);
    const where = `after \`${w.what}()\` (line ${w.line}) wrote through the request's session, whose transaction the request scope commits only once the handler has returned`;
    const direct = own.find((e) => e.kind === NETWORK_EFFECT && open(e));
    // A background task (`tasks.add_task(notify, ...)`) runs after the response: inside the
    // transaction only where the scope's commit comes after it — FastAPI's `yield` dependencies
    // before 0.106 and from 0.118; not Litestar's plugin, which commits before the response.
    const inScope = (e: CallEdge) => !e.call.background || (!viaPlugin && backgroundInScope);
    const edge = graph.callees(ref).find((e) => open(e.call) && inScope(e) && graph.reaches(e.to, NETWORK_EFFECT, 'any') && !!graph.effectOfCall(ref, e.call, e.to, NETWORK_EFFECT, 'any'));
    if (direct || edge) reported.add(key);
    // Medium: the cost is the ordering (a sent call and a rolled-back write), not a long lock:
    // in the field review every such handler held only the rows it had just written.
    reportWait(ctx, graph, ref, direct, edge, `${where}: the transaction holds its connection and the written rows' locks while waiting`, () => 'medium');
  }
  return reported;
}

const TXN_OPEN_CALLS: ReadonlySet<string> = new Set([TXN_OPEN_CALL]);

/**
 * A function that has sent writes to the database — its own DML statement or explicit `flush()`,
 * or a same-repo helper that flushes and does not commit (`make_draft()` adding and flushing a
 * row) — and then, with no commit of its own in between, reaches a network call: the transaction
 * those writes began is still open (whoever commits it — the caller, a request hook, a base
 * class's method around the handler — does so later), and the flushed rows stay locked while the
 * remote side answers. The case the other two leave: a write that reaches the database through
 * a helper, and a commit outside the function. Silent when the function commits (or calls
 * something that may commit) between the write and the call, when the write is only staged
 * (`add` with no flush), and where the in-function rule already spans the call.
 */
function flushedWriteWaits(ctx: RepoRuleContext, done: ReadonlySet<string>): void {
  const graph = callGraphOf(ctx.index);
  const lib = libraryReach(graph);
  const inSpan = new Set<string>();
  for (const { ref, call } of siteCalls(graph, TXN_OPEN_CALLS)) inSpan.add(`${ref.file}:${call.line}:${call.column}`);
  const sends = (to: FnRef) => (graph.reaches(to, WRITE_EFFECT, 'any') || graph.reaches(to, FLUSH_EFFECT, 'any')) && !lib.mayCommit([to]);
  /** Functions that write and then wait on the network, leaving the commit to their caller: key → the network call. */
  const waiting = new Map<string, string>();
  for (const ref of graph.functions()) {
    const file = graph.fileOf(ref);
    if (file.isTestFile || done.has(`${ref.file}:${ref.fn}`)) continue;
    const own = graph.ownEffects(ref);
    const edges = graph.callees(ref);
    // Cheap test first: something here reaches the network.
    if (!own.some((e) => e.kind === NETWORK_EFFECT) && !edges.some((e) => graph.reaches(e.to, NETWORK_EFFECT, 'any'))) continue;
    type Mark = { line: number; column: number; what: string };
    let write: Mark | null = null;
    const consider = (w: Mark) => {
      if (!write || before(w, write)) write = w;
    };
    // A `with x.begin():` block commits where it ends, which no effect marks: not followed here.
    const commitsOwn = own.filter((e) => e.kind === MAY_COMMIT_EFFECT || e.kind === COMMIT_EFFECT);
    if (commitsOwn.some((e) => /(^|\.)(begin|transaction)$/.test(e.what))) continue;
    // The function's own writes are the in-function rule's when it commits them itself.
    if (!commitsOwn.length) {
      // A statement that commits as it runs (asyncpg outside `conn.transaction()`) leaves nothing open.
      const autocommitted = new Set(own.filter((e) => e.kind === AUTOCOMMITTED_WRITE).map((e) => `${e.line}:${e.column}`));
      for (const e of own) if ((e.kind === WRITE_EFFECT && !autocommitted.has(`${e.line}:${e.column}`)) || (e.kind === FLUSH_EFFECT && /(^|\.)flush$/.test(e.what))) consider(e);
    }
    // A helper's writes count where they run on every path through here: one under a condition
    // may sit in a branch that returns (`if form.ok: return self._save(form)`) or excludes the call.
    // Not through a call resolved by its method name alone: no evidence of what it writes.
    for (const edge of edges) {
      if (edge.weak || edge.call.receiverType === UNTYPED || edge.call.conditional || edge.call.handedOn || !sends(edge.to)) continue;
      consider({ line: edge.call.line, column: edge.call.column, what: edge.call.calleeText });
    }
    const w = write as Mark | null;
    if (!w) continue;
    // The transaction ends at the function's first commit (or call that may commit) after the write.
    const ends = [
      ...own.filter((e) => e.kind === MAY_COMMIT_EFFECT || e.kind === ROLLBACK_EFFECT || (e.kind === FLUSH_EFFECT && /(^|\.)commit$/.test(e.what))),
      ...edges.filter((e) => lib.mayCommit([e.to])).map((e) => e.call),
    ].filter((c) => before(w, c));
    const end = ends.reduce<{ line: number; column: number } | null>((a, c) => (!a || before(c, a) ? c : a), null);
    const open = (at: { line: number; column: number }) => before(w, at) && (!end || before(at, end)) && !inSpan.has(`${ref.file}:${at.line}:${at.column}`);
    const where = `after \`${w.what}()\` (line ${w.line}) sent writes whose transaction is committed only later${end ? '' : ', outside this function'}`;
    // A name lookup (`socket.getaddrinfo`) asks the resolver and changes nothing remotely.
    const direct = own.find((e) => e.kind === NETWORK_EFFECT && open(e) && !NAME_LOOKUP.test(e.what));
    // Not a background task: it runs after the response, when whoever commits may have done so.
    // What the call reaches with the flags it passes (`notify(..., queued=True)` only queues a row).
    const network = (e: CallEdge) => (graph.reaches(e.to, NETWORK_EFFECT, 'any') ? graph.effectOfCall(ref, e.call, e.to, NETWORK_EFFECT, 'any') : undefined);
    const waits = (e: CallEdge) => {
      const n = network(e);
      return n !== undefined && !NAME_LOOKUP.test(n.effect.what);
    };
    const edge = edges.find((e) => open(e.call) && !e.call.background && waits(e));
    if (!end && (direct || edge)) waiting.set(`${ref.file}:${ref.fn}`, direct?.what ?? graph.chainNames(network(edge!)!).join('` → `'));
    // Low: one remote call while the rows this code just wrote are locked (the review of the field
    // cases: the order was often deliberate, the locks on rows few others touch); medium when the
    // call runs per item of a loop, each round trip adding to the time the locks are held.
    reportWait(ctx, graph, ref, direct, edge, `${where}: the flushed rows stay locked while it waits`, (inLoop) => (inLoop ? 'medium' : 'low'));
  }
  if (waiting.size) perItemWaits(ctx, graph, waiting);
}

/**
 * A function that writes and then waits on the network, leaving the commit to its caller, called
 * once per item of a loop (the item handed to it) by a caller that commits nothing itself, nor
 * through a call: every item's writes and remote calls run in one transaction, committed after
 * the loop (by a request hook, a base class): N round trips while the rows stay locked, and a
 * failure at item k rolls back every item's writes though the remote side was told about the
 * items before it. Medium, at the loop's call.
 */
function perItemWaits(ctx: RepoRuleContext, graph: CallGraph, waiting: ReadonlyMap<string, string>): void {
  const lib = libraryReach(graph);
  for (const { ref, file, fn, call, to } of siteCalls(graph, TXN_LOOP_CALLS)) {
    const network = waiting.get(`${to.file}:${to.fn}`);
    if (network === undefined || file.isTestFile || call.receiverType === UNTYPED) continue;
    const own = graph.ownEffects(ref);
    if (own.some((e) => e.kind === MAY_COMMIT_EFFECT || e.kind === COMMIT_EFFECT || e.kind === ROLLBACK_EFFECT)) continue;
    if (graph.callees(ref).some((e) => lib.mayCommit([e.to]))) continue;
    const helper = graph.function(to).qualifiedName;
    ctx.report({
      path: file.path,
      location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
      message: `\`${call.calleeText}()\` runs once per item of this loop, and each call sends writes and then waits on the network (\`${helper}\` → \`${network}\`) in the same transaction, which nothing here commits (it ends after the loop, outside this function): one remote round trip per item while the written rows stay locked, and a failure at one item rolls back every item's writes though the remote side was already told about the items before it`,
      severity: 'medium',
      function: fn.name,
      recommendation: 'commit each item before its remote call (or after it, per item), or collect the remote calls and make them after the commit (a job queued on commit)',
    });
  }
}

const TXN_LOOP_CALLS: ReadonlySet<string> = new Set([TXN_LOOP_CALL]);

/**
 * Reports the first of a network call of the function's own (`direct`) and a call whose callee
 * reaches one (`edge`), after `tail` (where the transaction stands and what it costs). A call
 * resolved by its method name alone is `low` and says so; otherwise `severity(inLoop)`.
 */
function reportWait(
  ctx: RepoRuleContext, graph: CallGraph, ref: FnRef, direct: Effect | undefined, edge: CallEdge | undefined, tail: string, severity: (inLoop: boolean) => Severity,
): void {
  const file = graph.fileOf(ref);
  const fn = graph.function(ref);
  if (direct && (!edge || before(direct, edge.call))) {
    const call = graph.callAt(ref.file, direct.line, direct.column);
    const reads = readOnlyRemote(direct.what);
    ctx.report({
      path: file.path,
      location: { line: direct.line, column: direct.column, endLine: call?.endLine ?? direct.line, endColumn: call?.endColumn ?? direct.column + 1 },
      message: `network call \`${direct.what}\` ${tail}${reads ? `; ${READ_ONLY_NOTE}` : UNDO}`,
      ...lighterClaim(severity(call?.inLoop ?? false), reads ? READ_ONLY_NOTE : undefined),
      function: fn.name,
    });
  } else if (edge) {
    const reach = graph.effectOfCall(ref, edge.call, edge.to, NETWORK_EFFECT, 'any') ?? graph.effectOf(edge.to, NETWORK_EFFECT, 'any')!;
    const weak = reach.weak || edge.weak || edge.call.receiverType === UNTYPED;
    const reads = !graph.reaches(edge.to, NETWORK_SEND_EFFECT, 'any');
    ctx.report({
      path: file.path,
      location: { line: edge.call.line, column: edge.call.column, endLine: edge.call.endLine, endColumn: edge.call.endColumn },
      message: `\`${edge.call.calleeText}()\` makes a network call (\`${graph.chainNames(reach).join('` → `')}()\`) ${tail}${reads ? '' : UNDO}`
        + (edge.call.background ? '; it is a background task, which runs after the response is sent but before the request scope\'s exit code (FastAPI before 0.106 and from 0.118), so still inside that transaction' : '')
        + (weak ? ' (a call resolved by its method name alone)' : '')
        + (reads ? `; ${READ_ONLY_NOTE}` : ''),
      ...lighterClaim(weak ? 'low' : severity(edge.call.inLoop), reads ? READ_ONLY_NOTE : undefined),
      function: fn.name,
      chain: graph.chainSteps(reach, { ref, call: edge.call }),
    });
  }
}

/**
 * The remote side is only read (an HTTP GET, an SDK's `retrieve`/`list`/`describe`): the round
 * trip still holds the transaction, but nothing was sent that a failed commit would leave behind.
 */
const READ_ONLY_NOTE = 'the call only reads from the remote side (a GET, a retrieve, a list), so nothing is left behind if the commit fails: the cost is the connection and the locks held for the round trip';

/** The half of the claim a call that sends something carries: what it did outside stays done. */
const UNDO = ', and the call cannot be undone if the commit fails';

/** Resolver lookups: a wait, but nothing sent that a failed commit would leave behind. */
const NAME_LOOKUP = /^socket\.(getaddrinfo|gethostbyname|gethostbyname_ex|gethostbyaddr|getfqdn|getnameinfo)$/;
