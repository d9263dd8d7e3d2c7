/** Repo-phase questions the transaction rules ask of the call graph. */
import { callGraphOf, siteCalls, type CallEdge, type CallGraph, type FnRef, type Reach } from '../../../analysis/callgraph.js';
import type { SummaryCall } from '../../../analysis/summary.js';
import { UNTYPED } from '../../../analysis/objects.js';
import { flagAtCall } from '../../../semantic/guards.js';
import type { RepoRuleContext } from '../../types.js';
import type { Severity } from '../../../types.js';
import { CLOSE_EFFECT, COMMIT_EFFECT, ROLLBACK_EFFECT, ROW_LOCK_EFFECT, TXN_OPEN_CALL, type OpenSite } from './effects.js';
import { FLUSH_EFFECT, PK_QUERY_EFFECT, QUERY_EFFECT, RELOAD_EFFECT, WRITE_EFFECT } from '../query/dbCalls.js';
import { MAY_COMMIT_EFFECT } from './missing_commit.js';

const TXN_OPEN_CALLS: ReadonlySet<string> = new Set([TXN_OPEN_CALL]);

/**
 * Reports the calls made inside an open transaction whose callee reaches an effect of `kind`
 * (always, when `alwaysOnly`): `describe` gets the chain's names and where the transaction is open
 * (`inside \`db.begin()\`` or `between the first write on \`db\` (line 3) and its commit (line 9)`).
 * A chain through a call resolved by its method name alone is reported one severity lower.
 */
export function reportInTransactionCalls(
  ctx: RepoRuleContext, kind: string, severity: Severity, alwaysOnly: boolean,
  describe: (callee: string, chain: string, where: string, lightened: boolean) => string,
  /** Also the spans a read began, before any write; `pending`: only where a changed row's attribute waits for the commit; `only`: those spans alone. */
  reads: boolean | 'pending' | 'only' = false,
  /** The report's `lowInBackground` (a read-only span: a job's connection, no request waits on it). */
  lowInBackground = false,
  /**
   * Half of the claim does not hold for this callee (a network call that only reads: nothing to
   * undo, the round trip still holds the transaction): the note to add ({@link lighterClaim};
   * `describe` is told, to leave that half out).
   */
  lighter?: (to: FnRef) => string | undefined,
): void {
  const graph = callGraphOf(ctx.index);
  const always = alwaysOnly ? alwaysReaches(graph, kind) : null;
  for (const { ref, file, fn, site, call, to } of siteCalls(graph, TXN_OPEN_CALLS)) {
    // In the read-only spans (`only`): what this call reaches with the flags it passes (a branch
    // behind `if urgent:` left off calls nothing), through no task it starts without waiting.
    const reach = graph.effectOfCall(ref, call, to, kind, 'any');
    if (!reach || (always && !always(to))) continue;
    const open = JSON.parse(site.what) as OpenSite;
    if (open.kind === 'read' && (!reads || (reads === 'pending' && !open.pending))) continue;
    if (reads === 'only') {
      if (open.kind !== 'read' || call.spawned || reach.steps.some((s) => s.call?.spawned || s.call?.background)) continue;
      // A helper that commits before it calls out (its own `save()`, then the post): the span is
      // over by then. Not one that commits after the call, or rolls back when it fails.
      const out = reach.steps[0]?.call?.line ?? reach.effect.line;
      const commitsFirst = graph.ownEffects(to).some((e) => (e.kind === COMMIT_EFFECT || e.kind === MAY_COMMIT_EFFECT) && e.line < out)
        || graph.callees(to).some((e) => e.call.line < out && graph.reaches(e.to, MAY_COMMIT_EFFECT, 'any'));
      if (commitsFirst) continue;
    }
    const weak = reach.weak || call.receiverType === UNTYPED;
    const where = open.kind === 'begin' ? `inside \`${open.session}.${open.block ?? 'begin'}()\``
      : open.kind === 'read' && open.pending ? `between the change of \`${open.pending.what}\` (line ${open.pending.line}) and the commit of \`${open.session}\` (line ${open.to})`
      : open.kind === 'read' ? `in the transaction the first statement on \`${open.session}\` began (line ${open.from}), before its commit (line ${open.to})`
      : `between the first write on \`${open.session}\` (line ${open.from}) and its commit (line ${open.to})`;
    const note = lighter?.(to);
    // In a span only a read began: a row lock taken on the way to the wait (`with_for_update()`
    // in the function or a helper on the chain) holds those rows too: one step higher.
    const locked = reads === 'only' && open.kind === 'read' && rowLockOnChain(graph, ref, to, reach);
    const claimed = locked && severity === 'low' ? 'medium' : severity;
    ctx.report({
      path: file.path,
      location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
      message: describe(call.calleeText, graph.chainNames(reach).join('` → `'), where, !!note) + (locked ? ', after a row lock (`with_for_update`) on the way: the locked rows wait too' : '') + (weak ? ' (a call resolved by its method name alone)' : '') + (note ? `; ${note}` : ''),
      ...lighterClaim(weak ? lower(claimed) : claimed, note),
      function: fn.name,
      chain: graph.chainSteps(reach, { ref, call }),
      ...(lowInBackground ? { lowInBackground: true as const } : {}),
    });
  }
}

/**
 * A claim with half of it gone (`note` says which: a call that only reads has nothing to undo):
 * one step lower, `low` becoming advisory with the note as evidence.
 */
export function lighterClaim(severity: Severity, note: string | undefined): { severity: Severity; advisory?: string } {
  if (!note) return { severity };
  return severity === 'low' ? { severity, advisory: note } : { severity: lower(severity) };
}

export function lower(s: Severity): Severity {
  return s === 'critical' ? 'high' : s === 'high' ? 'medium' : 'low';
}

/**
 * Does calling a function always have an effect of `kind` (a commit): its own body has it, or a
 * call it always makes (not under a condition, a handler or a loop) always has it? Cycles count
 * as no.
 */
export function alwaysReaches(graph: CallGraph, kind: string): (ref: FnRef) => boolean {
  const memo = new Map<string, boolean>();
  const visit = (ref: FnRef): boolean => {
    const key = `${ref.file}:${ref.fn}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    memo.set(key, false);
    const own = graph.ownEffects(ref);
    // A commit under a flag (`if commit:`) runs on the calls that leave it on: the caller decides.
    let result = own.some((e) => e.kind === kind && e.guard === undefined);
    // A callee's own commit under a flag this call leaves on (`save(row)` of `def save(row, commit=True)`,
    // `update(ctx, d)` of a commit under `if not ctx.get('defer_commit'):`) runs on this call too.
    if (!result) {
      result = graph.callees(ref).some((edge) => !edge.call.conditional
        && (visit(edge.to) || graph.ownEffects(edge.to).some((e) => e.kind === kind && e.guard !== undefined && flagAtCall(edge.call.passes, e.guard) === 'on')));
    }
    memo.set(key, result);
    return result;
  };
  return visit;
}

/** What a session handed to `ref` is left with when it returns: untouched, a transaction it began, or one it ended. */
export type SessionEnd = 'none' | 'holds' | 'releases' | 'closes';

const STATEMENT_KINDS = [QUERY_EFFECT, PK_QUERY_EFFECT, WRITE_EFFECT, RELOAD_EFFECT, FLUSH_EFFECT];

/**
 * What a function handed a session does with it (PA401: is the connection still out when it
 * returns; PA111: did it expire the rows the caller holds), read from its effects and those of what it
 * calls: nothing that reaches the database (staging `add()` only, or nothing), a statement last
 * (the transaction it began stays open: a reload after the commit, `refresh()`, counts), or an
 * unconditional commit, rollback or close after its last statement (the connection goes back to the
 * pool; the rows it held are expired). `call`, when given, says which of the function's own flags
 * it leaves on (`save(db, t)` of `def save(db, t, commit=True)`).
 */
export function sessionEnd(graph: CallGraph, ref: FnRef, depth = 0, call?: SummaryCall): SessionEnd {
  const reaches = (r: FnRef) => STATEMENT_KINDS.some((k) => graph.effectOf(r, k, 'any')) || !!graph.effectOf(r, COMMIT_EFFECT, 'any') || !!graph.effectOf(r, ROLLBACK_EFFECT, 'any') || !!graph.effectOf(r, CLOSE_EFFECT, 'any');
  if (!reaches(ref)) return 'none';
  if (depth > 3) return 'holds';
  // A step under the function's own flag (`if commit: db.commit()`) runs when the call leaves it on.
  const flag = (guard: string | undefined) => (guard === undefined ? 'on' : call ? flagAtCall(call.passes, guard) : 'unknown');
  type Step = { line: number; column: number; ends?: boolean; closes?: boolean; edge?: CallEdge };
  const steps: Step[] = [];
  for (const e of graph.ownEffects(ref)) {
    const ends = e.kind === COMMIT_EFFECT || e.kind === ROLLBACK_EFFECT || e.kind === CLOSE_EFFECT;
    if (!ends && !STATEMENT_KINDS.includes(e.kind)) continue;
    const f = flag(e.guard);
    if (f === 'off') continue;
    steps.push({ line: e.line, column: e.column, ends: ends && f === 'on', closes: e.kind === CLOSE_EFFECT && f === 'on' });
  }
  for (const e of graph.callees(ref)) if (reaches(e.to)) steps.push({ line: e.call.line, column: e.call.column, edge: e });
  // The last step; at one position a commit (also a flush) wins.
  steps.sort((a, b) => a.line - b.line || a.column - b.column || Number(!!a.ends) - Number(!!b.ends));
  const last = steps[steps.length - 1];
  // Every step under a flag this call leaves off (`save(db, t, commit=False)` only stages): nothing runs.
  if (!last) return 'none';
  if (last.edge) {
    const end = last.edge.call.conditional ? 'holds' : sessionEnd(graph, last.edge.to, depth + 1, last.edge.call);
    return end === 'releases' || end === 'closes' ? end : 'holds';
  }
  // A close gives the connection back but expires nothing: the rows leave detached with their state.
  return last.closes ? 'closes' : last.ends ? 'releases' : 'holds';
}

/** Does the caller, the callee or a function on the chain to the wait take a row lock (`ROW_LOCK_EFFECT`) before calling on? */
function rowLockOnChain(graph: CallGraph, ref: FnRef, to: FnRef, reach: Reach): boolean {
  const fns = [ref, to, ...reach.steps.map((st) => st.fn)];
  return fns.some((f) => graph.ownEffects(f).some((e) => e.kind === ROW_LOCK_EFFECT));
}
