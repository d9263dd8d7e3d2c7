/**
 * PA205 long_held_transaction
 *
 * What it does: finds a transaction held open while the code waits: a sleep, a child process, CPU
 * work that is slow by design (password hashing, key derivation, parsing a whole file), or a
 * network call made before the first write (after it, PA202 reports the call). The transaction is
 * a `with session.begin():` body, or the span from a session's first statement — a read begins
 * it too (autobegin) — to its commit in one function.
 * Why is this bad? An open transaction pins a pooled connection, holds its row locks and keeps
 * PostgreSQL from vacuuming rows it might still see; the longer it waits, the more the rest of
 * the service waits for it. Its length in lines says nothing about that, so length alone is
 * never reported.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { CallInfo, FileModel } from '../../../semantic/model.js';
import { blockingIoCall, runsChildProcess, shortSleep } from '../../../semantic/blockingIo.js';
import { awaitedOffloadCall } from '../../../semantic/externalCalls.js';
import { cpuHeavyCall } from '../../../semantic/cpuHeavy.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import { CHILD_PROCESS_EFFECT } from '../../../analysis/effects.js';
import { reportInTransactionCalls } from './reach.js';
import { NETWORK_EFFECT, ROW_LOCK_TEXT } from './effects.js';
import { callsOf, externalCall, openOnPathTo, SLEEP_FUNCTIONS, transactionRegions, type TransactionRegion } from './semantics.js';
import { callAt, receiverIs, usesName } from '../../../semantic/model.js';
import type { Effect } from '../../../analysis/summary.js';
import { callGraphOf } from '../../../analysis/callgraph.js';
import { MAY_COMMIT_EFFECT } from './missing_commit.js';
import { blockWrites } from '../query/dbCalls.js';

interface Wait {
  what: string;
  kind: 'network' | 'sleep' | 'process' | 'cpu';
}

/** What the call waits on, or null when it does not wait. */
function waitOf(model: FileModel, call: CallInfo): Wait | null {
  const q = call.qualifiedName;
  // A sleep of a millisecond (`time.sleep(0)`, `await asyncio.sleep(0)`: a yield) holds nothing.
  if (q && SLEEP_FUNCTIONS.has(q)) return shortSleep(call) !== undefined ? null : { what: call.calleeText, kind: 'sleep' };
  if (q && /^asyncio\.create_subprocess_(exec|shell)$/.test(q)) return { what: q, kind: 'process' };
  const io = blockingIoCall(model, call);
  if (io && runsChildProcess(io)) return { what: io, kind: 'process' };
  const ext = externalCall(model, call) ?? awaitedOffloadCall(model, call);
  if (ext?.kind === 'network') return { what: ext.what, kind: 'network' };
  const cpu = cpuHeavyCall(model, call);
  if (cpu) return { what: cpu, kind: 'cpu' };
  return null;
}

const WAITING: Record<Wait['kind'], string> = {
  network: 'waits on a remote service',
  sleep: 'sleeps',
  process: 'waits for a child process',
  cpu: 'computes (slow by design, or in proportion to a whole payload)',
};

export const longHeldTransaction: FileRule & RepoRule = {
  meta: {
    code: 'PA205',
    check: 'long_held_transaction',
    family: 'transaction',
    severity: 'medium',
    effort: 'M',
    summary: 'A transaction held open while the code sleeps, waits for a process or a remote service, or hashes a password',
    what: 'Finds a transaction (a `with/async with session.begin():` body, or the span from a session\'s first statement — a read begins it too, a repository-library service\'s read as well (`svc.list()` on a service whose writes take `auto_commit=`) — to its commit in one function) that waits: `time.sleep`/`asyncio.sleep` (medium), a child process (`subprocess`, `os.system`, `asyncio.create_subprocess_*`; medium), CPU work that is slow by design or sized by a payload (`bcrypt`, PBKDF2, scrypt, argon2, parsing a whole file; medium), or a network call before the first write (`low`: the transaction is read-only so far and holds a connection idle for the call\'s length, no row locks — medium when the span took one first, `with_for_update()` or `FOR UPDATE`, in the function or a helper on the way; after the first write PA202 reports it). Also through calls: a same-repo helper called inside the transaction (a read begins it) that sleeps or waits for a child process at any depth, or, in a span that only a read began (no write yet), that reaches a network call (a project client, a search or mail service; `low`, as above). Also a wait inside `with provider() as s:` / `async with provider() as s:` where the project\'s provider is a generator that yields the session and commits after the `yield` (SQLAlchemy\'s `session_scope()` pattern): the block is one transaction from its first statement on the session until it ends (not after a commit or rollback of the session, or of an object built around it, made before the wait; a network call after the block wrote is PA202\'s). A long transaction that does not wait is not reported: lines are not time. `medium` at most where only background jobs reach the transaction (a Celery/RQ/Dramatiq task, a function a scheduler runs: APScheduler\'s `scheduled_job`/`add_job`, the `schedule` library\'s `every(...).do(fn)`, a decorator whose arguments say when it runs (`@runner.add(every(1).hours)`, `crontab(...)`, a trigger) or a method of a module-level scheduler object).',
    why: 'An open transaction pins a pooled connection, keeps its row locks and holds back PostgreSQL\'s vacuum horizon for as long as it lives. A transaction that waits on a timer, a process, a remote service or a long computation makes every request that needs those rows, or a connection, wait with it.',
    bad:
      'import asyncio\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\nfrom app.models import Job\n\n\n'
      + 'async def claim(session: AsyncSession, job: Job) -> None:\n    async with session.begin():\n        job.status = "claimed"\n        await asyncio.sleep(5)\n        job.status = "running"\n',
    good:
      'import asyncio\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\nfrom app.models import Job\n\n\n'
      + 'async def claim(session: AsyncSession, job: Job) -> None:\n    async with session.begin():\n        job.status = "claimed"\n    await asyncio.sleep(5)\n    async with session.begin():\n        job.status = "running"\n',
    fix: 'prepare everything first (hash, compute, call out), open the transaction for the DB work only and commit right after it',
    references: [
      'https://www.postgresql.org/docs/current/routine-vacuuming.html',
      'https://docs.sqlalchemy.org/en/20/orm/session_transaction.html',
    ],
  },
  /** Through calls: a same-repo helper, called inside the open transaction, that sleeps (`time.sleep`), waits for a child process or (before any write) calls out, at any depth. */
  checkRepo(ctx: RepoRuleContext): void {
    reportProviderBlockWaits(ctx);
    reportInTransactionCalls(ctx, 'sync_sleep', 'medium', false, (callee, chain, at) =>
      `the transaction stays open while \`${callee}()\` sleeps (\`${chain}()\`), ${at}`, true);
    reportInTransactionCalls(ctx, CHILD_PROCESS_EFFECT, 'medium', false, (callee, chain, at) =>
      `the transaction stays open while \`${callee}()\` waits for a child process (\`${chain}()\`), ${at}`, true);
    // A helper that calls out, in a span only a read began (after a write, PA202 reports it): the
    // connection waits on the remote side as it does for a call made here.
    reportInTransactionCalls(ctx, NETWORK_EFFECT, 'low', false, (callee, chain, at) =>
      `the transaction stays open while \`${callee}()\` waits on a remote service (\`${chain}()\`), ${at}`, 'only', true);
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    const regions = transactionRegions(model, true);
    if (!regions.length) return;
    // Network calls inside a write span or a begin() block are PA202's.
    const writeRegions = transactionRegions(model);
    const inWriteRegion = (fnIndex: number, at: number) => writeRegions.some((r) => r.fnIndex === fnIndex && at >= r.from && at < r.to);
    const done = new Set<number>();
    for (const region of regions) {
      for (const call of callsOf(model, region.fnIndex)) {
        const at = call.node.startIndex;
        if (at < region.from || at >= region.to || done.has(at) || call.offloaded || !openOnPathTo(model, region, call)) continue;
        const wait = waitOf(model, call);
        if (!wait || (wait.kind === 'network' && inWriteRegion(region.fnIndex, at))) continue;
        done.add(at);
        // A row lock the span took before the wait (`with_for_update()`, `FOR UPDATE`) is held too.
        const locked = wait.kind === 'network' && ROW_LOCK_TEXT.test(model.source.slice(Math.min(region.from, region.start.startIndex), at));
        ctx.report({
          node: call.node,
          message: `the transaction stays open while \`${wait.what}\` ${WAITING[wait.kind]}, ${where(region)}${locked ? ', after a row lock (`with_for_update`/`FOR UPDATE`) in it: the locked rows wait too' : ''}`,
          // A read-only span holds a connection (idle in transaction), not row locks: a network
          // wait there costs a pool slot for its length, `low` (two unseen reviews judged such
          // waits low on a login callback and advisory on an admin action, none medium).
          severity: wait.kind === 'network' && !locked ? 'low' : 'medium',
          ...(wait.kind === 'network' ? { lowInBackground: true as const } : {}),
        });
      }
    }
  },
};

function where(region: TransactionRegion): string {
  return region.kind === 'begin'
    ? `inside \`${region.session}.begin()\``
    : `between the first statement on \`${region.session}\` (line ${region.startLine}) and its commit (line ${region.endLine})`;
}

/**
 * A wait inside `with provider() as s:` / `async with provider() as s:` after the block's first
 * use of `s`, where `provider` is a call the repo phase may resolve: `what` = JSON
 * {@link ProviderBlockWait}, at the provider's call.
 */
export const PROVIDER_BLOCK_WAIT = 'provider_block_wait';
/** A generator that yields a name and then commits it: what the block over it ends with. */
export const COMMITS_YIELDED = 'commits_yielded';

interface ProviderBlockWait {
  session: string;
  what: string;
  kind: Wait['kind'];
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
}

/**
 * The waits of the blocks over a session a project's context manager gives: the SQLAlchemy
 * documentation's `session_scope()` pattern (`yield session` then `session.commit()`) commits when
 * the block ends, so the block is one transaction from its first statement on. Which providers
 * commit is the repo phase's to decide; here only blocks that wait are kept.
 */
export function collectProviderBlockWaits(model: FileModel): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return effects;
  // The providers: a generator that yields a name and commits it (`yield session` … `session.commit()`),
  // whatever the name's type (a session from another context manager the file cannot type).
  for (const fn of model.functions) {
    if (!fn.isGenerator || !fn.yields.length) continue;
    const yielded = new Set(fn.yields.map((y) => y.text));
    const commit = callsOf(model, fn.index).find((c) => c.method === 'commit' && c.dottedReceiver !== null && yielded.has(c.dottedReceiver)
      && fn.yields.some((y) => y.startIndex < c.node.startIndex));
    if (commit) effects[fn.index]!.push({ kind: COMMITS_YIELDED, what: commit.calleeText, line: commit.line, column: commit.column });
  }
  if (!model.withs.length) return effects;
  for (const w of model.withs) {
    if (w.functionIndex < 0) continue;
    for (const item of w.items) {
      if (!item.alias || item.value.type !== 'call') continue;
      const provider = callAt(model, item.value);
      // A method of a handle (`session.begin()`, `engine.connect()`) is not a provider of the project.
      if (!provider || provider.hasReceiver && provider.qualifiedName === null) continue;
      // The block's own calls, not those of a lambda or a def written in it (they run elsewhere).
      const body = callsOf(model, w.functionIndex).filter((c) => c.node.startIndex >= w.bodyStart && c.node.startIndex < w.bodyEnd && !inLambda(c.node, w.bodyStart));
      const alias = item.alias;
      // The first statement: a call on the session, or a helper given it (not an object built around it).
      const first = body.find((c) => receiverIs(c, alias) || (usesName(c, alias) && !/^[A-Z]/.test(c.calleeText.split('.').pop() ?? '')));
      if (!first) continue;
      // An explicit commit of the session in the block after the wait, with a first statement on the
      // session itself: the in-function rule's span (from that statement to the commit).
      const commitsInBlock = receiverIs(first, alias) && body.some((c) => c.method === 'commit' && receiverIs(c, alias));
      // Objects built around the session in the block (`batches = Batches(session)`): their commit is the session's.
      const wrappers = new Set(model.assignments.filter((a) => a.functionIndex === w.functionIndex && a.node.startIndex >= w.bodyStart && a.node.startIndex < w.bodyEnd && /^[A-Za-z_]\w*$/.test(a.target)
        && a.value?.type === 'call' && (a.value.childForFieldName('arguments')?.namedChildren ?? []).some((x) => (x.type === 'keyword_argument' ? x.childForFieldName('value') : x)?.text === alias)).map((a) => a.target));
      const ends = (u: CallInfo) => ENDS_TRANSACTION.has(u.method) && (receiverIs(u, alias) || (u.dottedReceiver !== null && wrappers.has(u.dottedReceiver)));
      for (const c of body) {
        if (c.node.startIndex <= first.node.startIndex || c.offloaded) continue;
        const wait = waitOf(model, c);
        if (!wait) continue;
        // A network call after the block wrote is PA202's (its writes are sent and held).
        if (wait.kind === 'network' && body.some((u) => u.node.startIndex < c.node.startIndex && blockWrites(model, u))) continue;
        if (commitsInBlock && body.some((d) => d.method === 'commit' && receiverIs(d, alias) && d.node.startIndex > c.node.startIndex)) break;
        // Committed (or rolled back) right before the wait, on the session or through a wrapper
        // (`await service.commit()`): the next statement begins a new transaction.
        const last = body.filter((u) => u.node.startIndex < c.node.startIndex && (usesName(u, alias) || ends(u))).pop();
        if (last && ends(last)) continue;
        const fact: ProviderBlockWait = { session: alias, what: wait.what, kind: wait.kind, line: c.line, column: c.column, endLine: c.node.endPosition.row + 1, endColumn: c.node.endPosition.column + 1 };
        effects[w.functionIndex]!.push({ kind: PROVIDER_BLOCK_WAIT, what: JSON.stringify(fact), line: provider.line, column: provider.column });
        break;
      }
    }
  }
  return effects;
}

/**
 * A wait inside a block over a session a project's generator context manager gives, when that
 * provider commits (after its `yield`): the transaction the block's first statement began is open
 * until the block ends.
 */
function reportProviderBlockWaits(ctx: RepoRuleContext): void {
  const graph = callGraphOf(ctx.index);
  for (const ref of graph.functionsWithEffects(PROVIDER_BLOCK_WAITS)) {
    const file = graph.fileOf(ref);
    for (const e of graph.ownEffects(ref)) {
      if (e.kind !== PROVIDER_BLOCK_WAIT) continue;
      const call = graph.callAt(ref.file, e.line, e.column);
      const provider = call ? graph.resolveCall(ref.file, call) : null;
      if (!provider || !graph.function(provider).isGenerator) continue;
      if (!graph.ownEffects(provider).some((p) => p.kind === COMMITS_YIELDED) && !graph.reaches(provider, MAY_COMMIT_EFFECT, 'any')) continue;
      const site = JSON.parse(e.what) as ProviderBlockWait;
      ctx.report({
        path: file.path,
        location: { line: site.line, column: site.column, endLine: site.endLine, endColumn: site.endColumn },
        message: `the transaction stays open while \`${site.what}\` ${WAITING[site.kind]}, inside the block over \`${site.session}\` from \`${graph.function(provider).qualifiedName}()\`, which commits only when the block ends`,
        // A network call here comes before the block writes (after, PA202 reports it): read-only.
        severity: site.kind === 'network' ? 'low' : 'medium',
        function: graph.function(ref).name,
        ...(site.kind === 'network' ? { lowInBackground: true as const } : {}),
      });
    }
  }
}

const PROVIDER_BLOCK_WAITS: ReadonlySet<string> = new Set([PROVIDER_BLOCK_WAIT]);
const ENDS_TRANSACTION = new Set(['commit', 'rollback']);

/** Is the node inside a `lambda` written within the block (it runs when called, not here)? */
function inLambda(node: SyntaxNode, blockStart: number): boolean {
  for (let p = node.parent; p && p.startIndex >= blockStart; p = p.parent) if (p.type === 'lambda') return true;
  return false;
}
