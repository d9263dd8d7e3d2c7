/**
 * Statements handed to a helper that executes them: a repository's generic executor
 * (`def _run(self, statement: Select): return await self.session.execute(statement)`) and the
 * methods that build a statement and pass it on (`return await self._run(select(User).where(...))`).
 * On its own, neither side is a query: the executor runs whatever it is given, the builder only
 * builds. The workers record three facts and the call graph joins them:
 *
 * - {@link EXECUTES_PARAM} on the executor: `session.execute(<parameter>)` —
 *   `what` = `<position>|<name>|<call label>` (position after `self`/`cls`, -1 for keyword-only);
 * - {@link FORWARDS_PARAM} on a function that hands its statement parameter on
 *   (`self._run(statement)`): `what` = `<position>|<name>><argument>` with `<argument>` the
 *   callee's position or `k:<keyword>`, at the call's line and column;
 * - {@link PASSES_STATEMENT} on the builder's call: `what` = `<argument>=<kind>|<label>;…` with
 *   `<kind>` the effect the statement makes when run (`query`, `write`) and `<label>` what it is
 *   (`select User`).
 *
 * When the called function executes the argument (itself or through functions it forwards it
 * to), the call becomes a `<kind>` effect of the builder, labelled with the executor's call:
 * `session.execute(select User)`.
 */
import type { Effect } from './summary.js';

export const EXECUTES_PARAM = 'exec_param';
export const FORWARDS_PARAM = 'fwd_param';
export const PASSES_STATEMENT = 'passes_stmt';

/** One statement a call passes: the callee's parameter it fills, and what running it does. */
export interface PassedStatement {
  position: number;
  keyword: string | null;
  kind: string;
  label: string;
}

export function encodePassed(list: PassedStatement[]): string {
  return list.map((p) => `${p.keyword !== null ? `k:${p.keyword}` : p.position}=${p.kind}|${p.label}`).join(';');
}

export function decodePassed(what: string): PassedStatement[] {
  const out: PassedStatement[] = [];
  for (const part of what.split(';')) {
    const m = /^(?:k:([^=]+)|(\d+))=([a-z_]+)\|(.*)$/.exec(part);
    if (m) out.push({ position: m[2] !== undefined ? Number(m[2]) : -1, keyword: m[1] ?? null, kind: m[3]!, label: m[4]! });
  }
  return out;
}

/** Does a parameter fact (`<position>|<name>…`) name the parameter an argument fills? */
function fills(fact: string, position: number, keyword: string | null): boolean {
  const bar = fact.indexOf('|');
  const at = Number(fact.slice(0, bar));
  const rest = fact.slice(bar + 1);
  const name = rest.split(/[|>]/)[0]!;
  return keyword !== null ? name === keyword : at >= 0 && at === position;
}

export interface StatementFlowGraph {
  /** The raw effects of a function (as its file's summary wrote them). */
  effectsOf(fn: number): readonly Effect[];
  /** The function a non-weak edge at `line:column` of `fn` reaches, or undefined. */
  calleeAt(fn: number, line: number, column: number): number | undefined;
}

const MAX_DEPTH = 4;

/**
 * The executing call's label (`session.execute`) when function `fn` runs the statement passed
 * as its parameter `position` / `keyword`, itself or through the functions it forwards it to.
 */
export function executesParam(graph: StatementFlowGraph, fn: number, position: number, keyword: string | null, depth = 0, seen = new Set<string>()): string | null {
  const key = `${fn}:${position}:${keyword ?? ''}`;
  if (depth > MAX_DEPTH || seen.has(key)) return null;
  seen.add(key);
  for (const e of graph.effectsOf(fn)) {
    if (e.kind === EXECUTES_PARAM && fills(e.what, position, keyword)) return e.what.slice(e.what.indexOf('|', e.what.indexOf('|') + 1) + 1);
  }
  for (const e of graph.effectsOf(fn)) {
    if (e.kind !== FORWARDS_PARAM || !fills(e.what, position, keyword)) continue;
    const to = graph.calleeAt(fn, e.line, e.column);
    if (to === undefined) continue;
    const arg = e.what.slice(e.what.indexOf('>') + 1);
    const label = arg.startsWith('k:') ? executesParam(graph, to, -1, arg.slice(2), depth + 1, seen) : executesParam(graph, to, Number(arg), null, depth + 1, seen);
    if (label) return label;
  }
  return null;
}

/**
 * The effects a function's calls make by handing a statement to a function that executes it:
 * one `<kind>` effect per such call, at the call, labelled `<executor call>(<statement>)`.
 */
export function passedStatementEffects(graph: StatementFlowGraph, fn: number): Effect[] {
  const out: Effect[] = [];
  for (const e of graph.effectsOf(fn)) {
    if (e.kind !== PASSES_STATEMENT) continue;
    const to = graph.calleeAt(fn, e.line, e.column);
    if (to === undefined) continue;
    for (const p of decodePassed(e.what)) {
      const label = executesParam(graph, to, p.position, p.keyword);
      if (label) {
        out.push({ kind: p.kind, what: `${label}(${p.label})`, line: e.line, column: e.column, ...(e.guard !== undefined ? { guard: e.guard } : {}) });
        break;
      }
    }
  }
  return out;
}
