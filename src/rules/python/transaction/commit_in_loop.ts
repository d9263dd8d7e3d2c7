/**
 * PA207 commit_in_loop
 *
 * What it does: finds `session.commit()` that runs on every iteration of a loop over items — a
 * `for`, an `async for` over rows the database streams, a `while` that pops or fetches the next
 * item — whose body writes rows through the same session.
 * Why is this bad? Each commit is a transaction, a WAL flush and a round trip: N rows cost N
 * commits, and a failure half-way leaves half the batch applied.
 *
 * A throttle is a condition on an iteration counter or a clock (`if n % 500 == 0`, `if
 * len(batch) >= 100`, `if time.monotonic() - last > 5`); a condition on the item (`if
 * order.changed:`) still commits per item and is reported.
 * Silent look-alikes: a throttled commit, a commit after which the loop surely ends (`break`/`return`/`raise`; retries, a search that stops at its hit), a
 * per-item `try/except` (failure isolation), a session opened inside the loop (one unit of work
 * per item), `while True:` pollers and `async for` over a message stream (consumers commit per
 * message by design), loops that only read, and a commit after an action outside the database
 * in the same iteration (an email, an HTTP call, a published message: the commit records it),
 * also when the call goes through the project's own client or helper (decided in the repo phase).
 * Through calls (repo phase): a loop that hands each item to a same-repo function which always
 * commits the caller's session, at any depth (`for o in orders: settle(db, o)`, keyword
 * arguments and comprehensions included); not a helper that opens and commits its own session.
 * A helper that changes the item, then calls outside, then commits, is reported `low`.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import { overImportedConstants, callGraphOf, siteCalls, type CallGraph, type FnRef, type Reach } from '../../../analysis/callgraph.js';
import type { Effect, SummaryCall } from '../../../analysis/summary.js';
import { FLUSH_EFFECT, WRITE_EFFECT } from '../query/dbCalls.js';
import { executesMany, leavesAfter } from '../query/semantics.js';
import { alwaysReaches } from './reach.js';
import { flagAtCall, isDictKeyGuard } from '../../../semantic/guards.js';
import { UNTYPED } from '../../../analysis/objects.js';
import { COMMIT_EFFECT, FOUND_RETURN, ROW_LOCK_EFFECT, ROW_LOCK_TEXT, SIDE_EFFECT, TXN_LOOP_CALL } from './effects.js';
import { resolveDomain } from '../query/loops.js';
import { decodeDomain } from '../../../semantic/loopDomain.js';
import { commitKeepsNothing, STAGES } from '../readOnlyCommit.js';
import { outsideEffect } from '../../../semantic/externalCalls.js';
import { loadedModel, loopsDomain, rowsSource } from '../query/dbCalls.js';
import type { CallInfo, FileModel, LoopInfo } from '../../../semantic/model.js';
import {
  boundInLoop, callsOf, enclosingTries, inManagingWith, isCommitCall, isWriteCall,
  receiverKey,
} from './semantics.js';
import { itemNames, overItems } from './loopForms.js';
import { inExceptHandler, isThrottle } from '../../../semantic/controlFlow.js';
import { moreLines } from '../runtime/context.js';

export const commitInLoop: FileRule & RepoRule = {
  meta: {
    code: 'PA207',
    check: 'commit_in_loop',
    family: 'transaction',
    severity: 'medium',
    effort: 'S',
    summary: '`commit()` on every iteration of a loop that writes rows',
    what: 'Finds a `commit()` on a session (or DB-API connection) that runs on every iteration of a loop over items (`for`, `async for` over streamed rows, a `while` that pops or fetches the next item) whose body writes rows through the same session: `add`/`merge`/`delete`, an UPDATE/DELETE/INSERT, attribute changes on the rows being iterated, or a helper the session is handed to. Severity `medium`, `low` when the loop runs over what one request sent (its parameters, a form, the rows selected `in_(...)` those ids; through calls also a service\'s parameter, or a list attribute of a schema-typed one, that every caller in the repo fills with the request\'s input, or with a handful of items it writes out), and when a function on the way is a get-or-create (`found = q.first(); if found: return found` before it creates and commits), or the loop makes the call only when a lookup of the same iteration found nothing (`n = find(label)` then `if not n: n = create(...)`): the commit runs only for the items whose row is missing. A commit in an `except` of the iteration (directly or through a call) runs for the items that failed, not for every item, and is not flagged. A commit after which the loop surely ends (a later `break`, `return` or `raise` of its block, no `continue` on the way: a search that stops at its match) runs once per loop and is not flagged. A commit under a condition on an iteration counter or a clock (`if n % 500 == 0`, `if len(batch) >= 100`) is a throttled milestone and is not flagged; a condition on the item is not a throttle. Neither is a per-item `try/except` with rollback, a session opened per item, a commit that releases a lock the item\'s transaction took before it (`SELECT pg_advisory_xact_lock(...)`, `SELECT ... FOR UPDATE`, `with_for_update()`; directly or in the function whose commit it is), a `while True:` / message-stream consumer loop, nor a commit that records an action outside the database (an email, an HTTP call; also through the project\'s own client class or helper function, `crm.upsert_contact(c.email)`) in the same iteration, or comes before one (the outside world hears only of what is committed), nor a loop over a handful of constants (a literal of at most ten items here, or a module-level one another module of the repo declares and never grows: default rows seeded one by one). Also found through calls: a loop that hands each item to a same-repo function (also one looked up by name, `get_handler(\'store\')(ctx, row)`, resolved to the function of that name beside the caller when exactly one module there defines it, or, for a registry that loads a package by name, asked from another top-level package (a plugin), to the one function of that name in the caller\'s package and below in a module named like the registry\'s package; at any depth, by keyword or in a comprehension) that always commits the session of its caller, or commits under its own flag parameter that the call leaves on (`def save(obj, commit=True): ... if commit: session.commit()` called as `save(row)`; `if not defer_commit:` with `defer_commit=False`), or under `if not context.get(\'defer_commit\'):` on a dict parameter when neither the loop\'s call nor a call on the way sets that key (`update(dict(ctx, defer_commit=True), row)` turns it off). The commit may be a session\'s own method bound to another object (`self.commit = session.commit` in a store class, called as `store.commit()`) — not when the commit keeps nothing: the functions on the way to it, and what they call, stage and send nothing (no write, attribute set, collection change, row staged on a session, statement not known to read, method named for changing its object), and neither the loop\'s iteration nor another call in a loop of the function changes anything (it ends a read-only transaction). Through calls, when the item\'s rows are changed first and an outside call (a search index, a file store, a plugin) runs between the change and the commit, the commit is the change\'s own, cut per item: reported `low`, naming the call, since the call outside weighs more than the commit. `low` where only background jobs reach the loop (a Celery/RQ/Dramatiq task, a function a scheduler runs: APScheduler\'s `scheduled_job`/`add_job`, the `schedule` library\'s `every(...).do(fn)`, a decorator whose arguments say when it runs (`@runner.add(every(1).hours)`, `crontab(...)`, a trigger) or a method of a module-level scheduler object): a periodic sync that commits per item is idempotent by design, its next run redoes what a failure left half applied.',
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
    for (const r of commitLoopReports(ctx.model)) {
      if (r.deferTo.length) continue;
      ctx.report({ node: r.call.node, message: r.message, ...(r.severity ? { severity: r.severity } : {}) });
    }
  },
  /**
   * Through calls: a loop over items that hands each item to a same-repo function which always
   * commits a session it shares with its caller (a parameter, `self.session`, a scoped session),
   * at any depth. A helper that opens and commits its own session is a unit of work per item.
   */
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    reportDeferredCommits(ctx, graph);
    const always = alwaysReaches(graph, COMMIT_EFFECT);
    for (const { ref, file, fn, call, to } of siteCalls(graph, TXN_LOOP_CALLS)) {
      // A handful of constants another module declares (default rows seeded one by one): not items.
      if (overImportedConstants(graph, ref, call)) continue;
      const effects = graph.effectsOf(to, 'any');
      let reach = effects.get(COMMIT_EFFECT);
      // A commit under the callee's own flag (`def save(obj, commit=True): ... if commit:`): per
      // item when this call leaves the flag on.
      const flagged = always(to) ? null : graph.ownEffects(to).find((e) => e.kind === COMMIT_EFFECT && e.guard !== undefined && flagAtCall(call.passes, e.guard) === 'on');
      if (flagged) reach = { kind: COMMIT_EFFECT, effect: flagged, steps: [{ fn: to, call: null }], weak: false };
      if (!reach || (!always(to) && !flagged)) continue;
      // The function that commits first takes a lock its transaction holds (`SELECT
      // pg_advisory_xact_lock(...)`, `SELECT ... FOR UPDATE`, `with_for_update()`): the per-item
      // commit is what releases it. Not a lock somewhere else down the chain.
      const committer = reach.steps[reach.steps.length - 1]!.fn;
      if (graph.ownEffects(committer).some((e) => e.kind === ROW_LOCK_EFFECT && e.line < reach.effect.line)) continue;
      // A commit after an email, an HTTP call, a message: it records what was done outside.
      // Not when the item's rows were changed before that call (a search index told of an
      // uncommitted change, then the commit): the commit is the change's own, cut per item, and
      // reported `low` (the call outside dominates each iteration).
      let outside: string | null = null;
      if (effects.has(SIDE_EFFECT) && !(outside = outsideAfterWrite(graph, reach))) continue;
      // A commit under `if not ctx.get('defer_commit'):` that the loop's call, or a call on the
      // way, turns off (`update(dict(ctx, defer_commit=True), row)`): the caller commits once.
      const keyGuard = reach.effect.guard;
      if (keyGuard !== undefined && isDictKeyGuard(keyGuard) && [call, ...reach.steps.map((s) => s.call)].some((c) => c && flagAtCall(c.passes, keyGuard) === 'off')) continue;
      // A helper that only reads and then commits ends a read-only transaction: per item it is a
      // round trip, not a unit of work cut per item — unless the loop, or a function on the way,
      // wrote something that commit then sends.
      if (readOnlyCommit(graph, reach) && !siteWrites(graph, ref, call) && !siblingStages(graph, ref, call)) continue;
      const weak = reach.weak || call.receiverType === UNTYPED;
      const names = graph.chainNames(reach);
      const missing = onlyWhereMissing(graph, reach);
      const lookedUp = !missing && lookedUpFirst(graph, ref, call);
      ctx.report({
        path: file.path,
        location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
        message: `\`${call.calleeText}()\` commits on every iteration of the loop (\`${names.join('` → `')}()\`): one transaction and one WAL flush per item, and a failure half-way leaves the batch half applied`
          + (outside ? ` (each item also calls out, \`${outside}\`, after changing rows and before the commit)` : '')
          + (missing ? ` — only for the items whose row is missing: \`${missing.fn}\` returns the \`${missing.name}\` it finds first`
            : lookedUp ? ' — only for the items whose row is missing: the loop looks each item\'s row up first and makes the call only when none is found' : '')
          + (weak ? ' (a call resolved by its method name alone)' : ''),
        // N is what one request sent (its chosen items), or a handful every caller writes out:
        // bounded by the client or the code, `low`; so is an
        // iteration that also calls out (the call dominates it), and a get-or-create's commit,
        // which runs only for the rows not found (most items of a repeated run find theirs).
        severity: weak || outside || missing || lookedUp || boundedByCallers(graph, ref, call) ? 'low' : 'medium',
        function: fn.name,
        chain: graph.chainSteps(reach, { ref, call }),
      });
    }
  },
};

const TXN_LOOP_CALLS: ReadonlySet<string> = new Set([TXN_LOOP_CALL]);

interface CommitLoopReport {
  call: CallInfo;
  message: string;
  severity?: 'low';
  /**
   * Calls of the iteration that may be the repo's own functions (`crm.upsert_contact(c.email)`,
   * `push_remote(c)`): when one of them calls out of the process, the commit records what was done
   * outside, as with a direct HTTP call. Decided in the repo phase; empty when there is none.
   */
  deferTo: CallInfo[];
}

/** Library modules whose functions never act outside the process on the loop's behalf. */
const LOCAL_LIBRARIES = /^(builtins|logging|json|time|datetime|asyncio|math|re|decimal|uuid|itertools|functools|collections|typing|sqlalchemy|sqlmodel)(\.|$)/;

const commitLoopCache = new WeakMap<FileModel, CommitLoopReport[]>();

/**
 * The per-item commits of the file, one per loop and handle: a second commit in the same
 * iteration (progress marked, then the result) is the same unit of work cut per item, listed on
 * the first. Shared by the file rule and the collector that defers the ones whose iteration calls
 * a function of the repo.
 */
function commitLoopReports(model: FileModel): CommitLoopReport[] {
  const cached = commitLoopCache.get(model);
  if (cached) return cached;
  const byLoop = new Map<string, { call: CallInfo; loop: LoopInfo; reason: string; more: number[] }>();
  for (const call of model.calls) {
    if (call.functionIndex < 0 || !call.loops.length || call.method !== 'commit') continue;
    if (!isCommitCall(model, call)) continue;
    const loopIndex = call.loops[call.loops.length - 1]!;
    const loop = model.loops[loopIndex]!;
    const reason = perIterationCommit(model, call, loop);
    if (!reason) continue;
    const key = `${loopIndex}\0${call.calleeText}`;
    const first = byLoop.get(key);
    if (first) first.more.push(call.line);
    else byLoop.set(key, { call, loop, reason, more: [] });
  }
  const out: CommitLoopReport[] = [];
  for (const { call, loop, reason, more } of byLoop.values()) {
    const iter = loop.iterable ? ` over \`${short(loop.iterable.text)}\`` : '';
    const session = receiverKey(call);
    const deferTo = callsOf(model, loop.functionIndex).filter((c) => c.loops.includes(loop.index) && c !== call
      && (session === null || receiverKey(c) !== session) && !(c.qualifiedName && LOCAL_LIBRARIES.test(c.qualifiedName)));
    out.push({
      call,
      message: `\`${call.calleeText}()\` runs on every iteration of the loop${iter} (${reason}): one transaction and one WAL flush per row` + moreLines(more, call.line, 'this loop'),
      ...(loopsDomain(model, [loop]).kind === 'input' ? { severity: 'low' as const } : {}),
      deferTo,
    });
  }
  commitLoopCache.set(model, out);
  return out;
}

/** On a per-item commit whose iteration calls functions the repo phase may resolve: `what` = JSON {@link DeferredCommit}. */
export const DEFERRED_COMMIT = 'deferred_commit';

interface DeferredCommit {
  message: string;
  severity?: 'low';
  end: [number, number];
  /** The iteration's calls, `[line, column]`. */
  calls: [number, number][];
}

/** The per-item commits the repo phase decides (see {@link commitLoopReports}). */
export function collectDeferredCommits(model: FileModel): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return out;
  for (const r of commitLoopReports(model)) {
    if (!r.deferTo.length) continue;
    const end = r.call.node.endPosition;
    const site: DeferredCommit = {
      message: r.message, ...(r.severity ? { severity: r.severity } : {}), end: [end.row + 1, end.column + 1],
      calls: r.deferTo.map((c) => [c.line, c.column]),
    };
    out[r.call.functionIndex]!.push({ kind: DEFERRED_COMMIT, what: JSON.stringify(site), line: r.call.line, column: r.call.column });
  }
  return out;
}

/**
 * The deferred per-item commits: reported as the file rule would, unless a call of the iteration
 * reaches an action outside the database (a project client wrapping `httpx`, a function that
 * sends mail): then the commit records what was done outside, per item on purpose.
 */
function reportDeferredCommits(ctx: RepoRuleContext, graph: CallGraph): void {
  for (const ref of graph.functionsWithEffects(new Set([DEFERRED_COMMIT]))) {
    const file = graph.fileOf(ref);
    if (file.isTestFile) continue;
    for (const e of graph.ownEffects(ref)) {
      if (e.kind !== DEFERRED_COMMIT) continue;
      const site = JSON.parse(e.what) as DeferredCommit;
      const at = new Set(site.calls.map(([l, c]) => `${l}:${c}`));
      const outside = graph.callees(ref).some((edge) => at.has(`${edge.call.line}:${edge.call.column}`) && !edge.call.background && graph.reaches(edge.to, SIDE_EFFECT, 'any'));
      if (outside) continue;
      ctx.report({
        path: file.path,
        location: { line: e.line, column: e.column, endLine: site.end[0], endColumn: site.end[1] },
        message: site.message,
        ...(site.severity ? { severity: site.severity } : {}),
        function: graph.function(ref).name,
      });
    }
  }
}

/** Is the chain's commit one that keeps nothing (see readOnlyCommit.ts)? */
function readOnlyCommit(graph: CallGraph, reach: Reach): boolean {
  return commitKeepsNothing(graph, reach);
}

/** Kinds that change rows or send a change (not a commit: that is what is judged). */
const CHANGE_KINDS = [WRITE_EFFECT, FLUSH_EFFECT, 'request_write', 'flask_write', STAGES];

/**
 * Where, on the way to the chain's commit, rows are changed, then an action outside the database
 * runs, and nothing is changed after it before the commit (`package_update`: save the row, push
 * it to the search index, commit): the outside call's name. The outside system was told of (or
 * acted on) a change the commit only makes durable. Null when every outside call comes before
 * any change, or is followed by one (the commit records what was done outside, or the answer a
 * lookup gave: per item on purpose). Judged in order through each function of the chain, up to
 * the line where the chain goes on (or the commit itself), by its own effects and by the calls
 * it makes that reach them; a call that reaches both counts as an outside call followed by a
 * change.
 */
function outsideAfterWrite(graph: CallGraph, reach: Reach): string | null {
  let changed = false;
  let outside: string | null = null;
  for (const step of reach.steps) {
    const cut = step.call ? step.call.line : reach.effect.line;
    // Outside calls sort before changes on the same line (see above).
    const events: { line: number; change: boolean; what: string }[] = [];
    for (const e of graph.ownEffects(step.fn)) {
      if (e.line >= cut) continue;
      if (e.kind === SIDE_EFFECT) events.push({ line: e.line, change: false, what: e.what });
      else if (CHANGE_KINDS.includes(e.kind)) events.push({ line: e.line, change: true, what: e.what });
    }
    for (const edge of graph.callees(step.fn)) {
      if (edge.call.line >= cut || edge.call.background) continue;
      if (graph.reaches(edge.to, SIDE_EFFECT, 'any')) {
        const end = graph.effectsOf(edge.to, 'any').get(SIDE_EFFECT)?.effect.what;
        events.push({ line: edge.call.line, change: false, what: end && end !== edge.call.calleeText ? `${edge.call.calleeText}\` → \`${end}` : edge.call.calleeText });
      }
      if (CHANGE_KINDS.some((k) => graph.reaches(edge.to, k, 'any'))) events.push({ line: edge.call.line, change: true, what: edge.call.calleeText });
    }
    events.sort((a, b) => a.line - b.line || Number(a.change) - Number(b.change));
    for (const ev of events) {
      if (ev.change) {
        changed = true;
        outside = null;
      } else if (changed) outside ??= ev.what;
    }
  }
  return outside;
}

/** The loop-call site fact of `call` (`TXN_LOOP_CALL`: `w`/`m` flags, `|`, the loop's domain). */
function loopSite(graph: CallGraph, ref: FnRef, call: SummaryCall): Effect | undefined {
  return graph.ownEffects(ref).find((e) => e.kind === TXN_LOOP_CALL && e.line === call.line && e.column === call.column);
}

/**
 * Does the loop around the site run over what one request sent, or over a handful of items every
 * caller writes out (the site fact's domain after `|`: request input, or a parameter the callers
 * fill so, as PA107 reads it)?
 */
function boundedByCallers(graph: CallGraph, ref: FnRef, call: SummaryCall): boolean {
  const site = loopSite(graph, ref, call);
  const code = site?.what.slice(site.what.indexOf('|') + 1) ?? '';
  if (!code) return false;
  const domain = resolveDomain(graph, ref.file, decodeDomain(code), ref);
  return domain === 'input' || domain === 'fixed' || domain === 'fixedOne';
}

/**
 * A function on the way to the commit returns the row its lookup found before it goes on
 * (`found = q.first(); if found: return found`, {@link FOUND_RETURN}): the commit runs only for a
 * row that was missing. The function and the name; null when none does.
 */
function onlyWhereMissing(graph: CallGraph, reach: Reach): { fn: string; name: string } | null {
  for (const step of reach.steps) {
    const cut = step.call ? step.call.line : reach.effect.line;
    const found = graph.ownEffects(step.fn).find((e) => e.kind === FOUND_RETURN && e.line < cut);
    if (found) return { fn: graph.function(step.fn).name, name: found.what };
  }
  return null;
}

/**
 * The loop calls the committing function only when a lookup of the same iteration found nothing
 * (`n = find(label); if not n: n = create(...)`, the site's `m` flag): a get-or-create written in
 * the loop, whose commit runs for the missing rows only.
 */
function lookedUpFirst(graph: CallGraph, ref: FnRef, call: SummaryCall): boolean {
  const site = loopSite(graph, ref, call);
  return !!site && site.what.slice(0, site.what.indexOf('|')).includes('m');
}

/**
 * Does another call in a loop of the same function change something (`mark(order)` before
 * `audit(db, order)` whose commit then keeps it)? On the side of writing: any loop of the
 * function counts; the loop body's own changes are the site fact's (`siteWrites`).
 */
function siblingStages(graph: CallGraph, ref: FnRef, call: SummaryCall): boolean {
  return graph.callees(ref).some((e) => e.call.inLoop && !(e.call.line === call.line && e.call.column === call.column)
    && (graph.reaches(e.to, STAGES, 'any') || graph.reaches(e.to, WRITE_EFFECT, 'any')));
}

/** Does the loop around the site write on its own (the site fact's `w`)? */
function siteWrites(graph: CallGraph, ref: FnRef, call: SummaryCall): boolean {
  return loopSite(graph, ref, call)?.what.startsWith('w') ?? false;
}

function short(t: string): string {
  const s = t.replace(/\s+/g, ' ');
  return s.length > 50 ? s.slice(0, 49) + '…' : s;
}

/** Why the commit is a per-row commit (what the loop writes), or null when it is not one. */
function perIterationCommit(model: FileModel, commit: CallInfo, loop: LoopInfo): string | null {
  if (!overItems(model, loop)) return null;
  const body = loop.node.childForFieldName('body');
  if (!body) return null;
  const guard = commitGuard(model, commit, loop, body);
  if (guard === 'throttle' || guard === 'other') return null;
  if (enclosingTries(commit.node, body).some((t) => t.startIndex >= body.startIndex)) return null;
  // In an `except` of the iteration: a commit for the items that failed (a failure recorded), not for every item.
  if (inExceptHandler(commit.node, body)) return null;
  // The loop surely ends after it (a `break`, `return` or `raise` later in its block, no
  // `continue` on the way): once per loop (a retry, a search).
  if (leavesAfter(commit.node, loop)) return null;
  const session = receiverKey(commit);
  if (!session) return null;
  // The iteration takes a lock its transaction holds before the commit (`pg_advisory_xact_lock`,
  // `FOR UPDATE`): the per-item commit releases it, by design.
  if (callsOf(model, loop.functionIndex).some((c) => c.loops.includes(loop.index) && c.node.startIndex < commit.node.startIndex
    && (c.method === 'with_for_update' || (c.method === 'text' && ROW_LOCK_TEXT.test(c.node.text))))) return null;
  // A session bound per item (`with factory() as s:` inside the loop, `s = Session()`): one
  // unit of work per item, by design.
  const head = session.split('.')[0]!;
  if (boundInLoop(model, loop, head)) return null;
  if (commit.withs.some((wi) => {
    const w = model.withs[wi]!;
    return w.node.startIndex >= body.startIndex && w.items.some((i) => i.alias === head);
  })) return null;
  if (inManagingWith(model, commit) && commit.withs.some((wi) => model.withs[wi]!.node.startIndex >= body.startIndex)) return null;
  const writes = loopWrites(model, loop, session, commit);
  return writes && guard ? `${writes}; under \`${guard}\`, a condition on the item, not a throttle` : writes;
}


/**
 * What runs the commit conditionally inside the loop body: null when nothing does, `throttle`
 * when a condition is on an iteration counter or a clock (`if n % 500 == 0`, `if len(batch) >=
 * 100`, `if time.monotonic() - last > 5`), `other` for a guard this cannot read (a boolean
 * operator, an `except`), else the condition's text: a condition on the item commits per item.
 */
function commitGuard(model: FileModel, commit: CallInfo, loop: LoopInfo, body: SyntaxNode): 'throttle' | 'other' | string | null {
  let guard: string | null = null;
  let cur: SyntaxNode | null = commit.node.parent;
  let child: SyntaxNode = commit.node;
  while (cur && cur.id !== body.id) {
    let cond: SyntaxNode | null = null;
    if (cur.type === 'if_statement' && cur.childForFieldName('condition')?.id !== child.id) cond = cur.childForFieldName('condition');
    else if (cur.type === 'elif_clause') cond = cur.childForFieldName('condition');
    else if (cur.type === 'else_clause') cond = cur.parent?.type === 'if_statement' ? cur.parent.childForFieldName('condition') : null;
    else if (['except_clause', 'except_group_clause', 'conditional_expression', 'case_clause', 'boolean_operator', 'while_statement', 'for_statement'].includes(cur.type)) return 'other';
    if (cond) {
      if (isThrottle(model, cond, loop)) return 'throttle';
      guard ??= `if ${cond.text.replace(/\s+/g, ' ').slice(0, 40)}`;
    } else if (cur.type === 'else_clause' || cur.type === 'elif_clause') return 'other';
    child = cur;
    cur = cur.parent;
  }
  return guard;
}


/**
 * Names the loop body binds to a row it loads (`job = session.get(Job, job_id)`, `u = await
 * db.scalar(select(User).where(...))`, `t = Task.query.filter_by(...).first()`): a change to
 * such a row is a write the next commit sends.
 */
function rowsLoadedInLoop(model: FileModel, loop: LoopInfo): string[] {
  const out: string[] = [];
  for (const a of model.assignments) {
    if (a.functionIndex !== loop.functionIndex || !a.loops.includes(loop.index) || !a.value || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
    const read = rowsSource(model, a.value, a.functionIndex, a.line - 1);
    if (read && read.op.kind === 'read' && (read.entity || loadedModel(model, read.call, read.op))) out.push(a.target);
  }
  return out;
}

/** What the loop body writes through `session` before the commit, or null when it only reads. */
function loopWrites(model: FileModel, loop: LoopInfo, session: string, commit: CallInfo): string | null {
  // A commit next to an email, an HTTP call, a published message in the same round is per item
  // on purpose: after the action it records what was done outside (a later failure must not roll
  // back the record of a sent email); before it, it makes sure the outside world hears only of
  // what is committed ("commit, then notify").
  if (callsOf(model, loop.functionIndex).some((c) => c.loops.includes(loop.index) && c !== commit && outsideEffect(model, c))) return null;
  for (const c of callsOf(model, loop.functionIndex)) {
    if (!c.loops.includes(loop.index) || c === commit) continue;
    // A statement with a list of parameter sets is a batch: committed per batch.
    if (receiverKey(c) === session && isWriteCall(model, c) && !executesMany(model, c)) return `it writes with \`${c.calleeText}()\``;
  }
  // Attribute changes on the rows the loop walks, or on a row it loads per item (`job =
  // session.get(Job, job_id)`, `row = q.filter_by(...).first()`): flushed by the commit.
  const targets = itemNames(model, loop);
  for (const name of rowsLoadedInLoop(model, loop)) targets.add(name);
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
    // Positionally or by keyword: `apply(db, row)`, `apply(row, session=db)`.
    if (args?.namedChildren.some((x) => (x.type === 'keyword_argument' ? x.childForFieldName('value') : x)?.text === session)) return `it hands the session to \`${c.calleeText}()\``;
  }
  return null;
}
