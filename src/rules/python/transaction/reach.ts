/** Repo-phase questions the transaction rules ask of the call graph. */
import type { CallGraph, FnRef } from '../../../analysis/callgraph.js';
import { COND_CALLS } from './effects.js';

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
    let result = own.some((e) => e.kind === kind);
    if (!result) {
      const cond = new Set<string>();
      for (const e of own) if (e.kind === COND_CALLS) for (const [l, c] of JSON.parse(e.what) as [number, number][]) cond.add(`${l}:${c}`);
      result = graph.callees(ref).some((edge) => !cond.has(`${edge.call.line}:${edge.call.column}`) && visit(edge.to));
    }
    memo.set(key, result);
    return result;
  };
  return visit;
}
