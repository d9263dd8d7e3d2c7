/** Helpers shared by the runtime rules: where the event loop runs, severity by role, chains. */
import { BUNDLED_READ, HEAVY_IO, LOOPED_FILE_IO, LOOPED_METADATA, OTHER_BLOCKING } from '../../../analysis/effects.js';
import type { CallInfo, FileModel, FunctionInfo, FunctionRole } from '../../../semantic/model.js';
import { effectiveRole } from '../../../semantic/model.js';
import { SEVERITY_RANK, type Severity } from '../../../types.js';
import type { RepoRuleContext } from '../../types.js';
import { callGraphOf, type CallEdge, type CallGraph, type FnRef } from '../../../analysis/callgraph.js';
import type { Effect } from '../../../analysis/summary.js';

export interface AsyncCallSite {
  call: CallInfo;
  fn: FunctionInfo;
}

/**
 * Calls that run on the event loop: made directly in an `async def` body (not in a nested sync
 * def), not awaited (an awaited call is a coroutine), not handed to a thread.
 */
export function asyncCallSites(model: FileModel): readonly AsyncCallSite[] {
  // Four rules walk these sites: found once per file.
  let sites = asyncSites.get(model);
  if (sites) return sites;
  sites = [];
  if (!model.isTestFile) {
    for (const call of model.calls) {
      if (call.functionIndex < 0 || call.offloaded) continue;
      const fn = model.functions[call.functionIndex]!;
      if (!fn.isAsync || call.awaited) continue;
      sites.push({ call, fn });
    }
  }
  asyncSites.set(model, sites);
  return sites;
}

const asyncSites = new WeakMap<FileModel, AsyncCallSite[]>();

function lowerSeverity(s: Severity): Severity {
  return s === 'critical' ? 'high' : s === 'high' ? 'medium' : 'low';
}

/** The severity a chain's effect decides, never above the role's (`undefined`: the role's). */
function atMost(decided: Severity | undefined, role: Severity): Severity {
  return decided !== undefined && SEVERITY_RANK[decided] < SEVERITY_RANK[role] ? decided : role;
}

export function severityByRole(model: FileModel, fnIndex: number, table: Record<FunctionRole, Severity>): Severity {
  return table[effectiveRole(model, fnIndex)];
}

const NO_EFFECTS: readonly Effect[] = [];
const edgesMemo = new WeakMap<CallGraph, { ref: FnRef; edges: CallEdge[] }[]>();

/**
 * The async functions (outside tests) that have effects or synchronous call edges, with those
 * edges: what the event-loop chains walk, once per graph for all the rules that ask.
 */
function syncGenerator(graph: CallGraph, ref: FnRef): boolean {
  const fn = graph.function(ref);
  return fn.isGenerator && !fn.isAsync;
}

function asyncSyncEdges(graph: CallGraph): { ref: FnRef; edges: CallEdge[] }[] {
  let list = edgesMemo.get(graph);
  if (list) return list;
  list = [];
  for (const ref of graph.asyncFunctions()) {
    // A generator function called to hand its generator on (`StreamingResponse(chunks())`)
    // runs nothing here: Starlette iterates a sync generator in a worker thread.
    const edges = graph.callees(ref).filter((e) => e.sync && !(e.call.handedOn && syncGenerator(graph, e.to)));
    if (edges.length || graph.ownEffects(ref).length) list.push({ ref, edges });
  }
  edgesMemo.set(graph, list);
  return list;
}

/**
 * The repo half of an event-loop rule: every call an `async def` makes to a same-repo sync
 * function whose body reaches an effect of `kind` (through any depth of sync helpers) is
 * reported at the call site, with the chain, the blocking call named and that call as the
 * report's `sink` (the merge reports the chains of three or more coroutines to one sink once, see
 * merge/sharedSinks.ts). Direct calls are the file rule's; an effect that only the repo phase
 * could decide (`pending`, e.g. a session from a provider in another module) is reported here
 * even when it is direct (once per coroutine with `perCoroutine`).
 *
 * `severityOf(what, cheap, light, fileOnly, inLoop)`: the severity the effect decides, over the
 * role's; `inLoop` when the coroutine's call runs per item of one of its loops.
 */
export function reportEventLoopChains(
  ctx: RepoRuleContext,
  kind: string,
  severity: Record<FunctionRole, Severity>,
  message: (what: string, asyncFn: string, chain: string[]) => string,
  /** Effect kinds whose presence at the same call site makes this one redundant. */
  coveredBy: string[] = [],
  /**
   * A severity decided by what the effect calls, over the role's (a cheap metadata lookup);
   * `light` when the chain reaches no blocking I/O but metadata operations (no `HEAVY_IO`),
   * `cheap` when, besides, none of them runs per item of a loop.
   */
  severityOf: (what: string, cheap: boolean, light: boolean, fileOnly: boolean, inLoop: boolean) => Severity | undefined = () => undefined,
  /** The fix to name for what the effect calls (the async alternative), over the rule's own. */
  recommendationOf?: (what: string) => string,
  /** Why a chain is advisory whatever its severity (`cheap`: it reaches only single metadata operations). */
  advisoryOf: (what: string, cheap: boolean) => string | undefined = () => undefined,
  options: { perCoroutine?: boolean } = {},
): void {
  const graph = callGraphOf(ctx.index);
  // Async functions with an effect of this kind of their own (most have none).
  const own = new Set<FnRef>(graph.functionsWithEffects(new Set([kind])));
  for (const { ref, edges } of asyncSyncEdges(graph)) {
    const file = graph.fileOf(ref);
    const fn = graph.function(ref);
    const sev = severity[fn.effectiveRole];
    // Effects only this phase could decide (`pending`, e.g. a session from a provider in
    // another module). With `perCoroutine` (PA307): one finding per coroutine, at the first, with
    // the lines of the others, and none when the file rule reported the coroutine already.
    const ownOfKind = own.has(ref) ? graph.ownEffects(ref).filter((e) => e.kind === kind) : NO_EFFECTS;
    const pending = ownOfKind.filter((e) => e.pending && graph.callAt(ref.file, e.line, e.column));
    const reportPending = (e: Effect, more: number[]) => {
      const call = graph.callAt(ref.file, e.line, e.column)!;
      ctx.report({
        path: file.path,
        location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
        message: message(e.what, fn.name, []) + moreLines(more, e.line),
        severity: severityOf(e.what, false, false, false, false) ?? sev,
        ...(recommendationOf ? { recommendation: recommendationOf(e.what) } : {}),
        function: fn.name,
      });
    };
    if (!options.perCoroutine) for (const e of pending) reportPending(e, []);
    else if (pending.length && !ownOfKind.some((e) => !e.pending)) reportPending(pending[0]!, pending.slice(1).map((x) => x.line));
    // With `perCoroutine`, a coroutine reported for its own calls (above, or by the file rule)
    // has its finding; a context manager it enters (`with create_session() as s:`, whose exit
    // commits the session the block then uses) is the same session and the same defect. Other
    // helpers it calls are their own findings: fixing the coroutine's call leaves them.
    const reported = options.perCoroutine && (pending.length > 0 || ownOfKind.some((e) => !e.pending));
    const seen = new Set<string>();
    for (const edge of edges) {
      if (reported && edge.call.withItem) continue;
      if (!graph.reaches(edge.to, kind, 'sync') || coveredBy.some((k) => graph.reaches(edge.to, k, 'sync'))) continue;
      const key = `${edge.call.line}:${edge.call.column}`;
      if (seen.has(key)) continue;
      seen.add(key);
      // The evidence: the heaviest wait the call reaches (a socket connect, a file read), not
      // the first blocking call on the way, which may be a stat before it.
      // (Only a heavy wait that is a blocking call as decided: a call typed in another file may
      // have turned out not to block.)
      const heavy = kind === 'blocking_io' ? graph.effectOf(edge.to, HEAVY_IO, 'sync') : undefined;
      const first = graph.effectOf(edge.to, kind, 'sync')!;
      const decided = heavy && graph.ownEffects(heavy.steps[heavy.steps.length - 1]!.fn).some((e) => e.kind === kind && e.line === heavy.effect.line && e.column === heavy.effect.column);
      const reach = heavy && decided && (!heavy.weak || first.weak) ? heavy : first;
      const names = [fn.qualifiedName, ...graph.chainNames(reach)];
      const chain = graph.chainSteps(reach, { ref, call: edge.call });
      // A chain through a call resolved by the method's name alone is a weaker claim.
      const weak = reach.weak || edge.weak === true;
      // One metadata lookup only when nothing heavier is reachable through this call.
      // Not when the call runs per item of a loop: the lookups add up, as they do inline.
      // A shipped file read once is light; read per item of the caller's loop, it is file I/O.
      const light = kind === 'blocking_io' && !graph.reaches(edge.to, HEAVY_IO, 'sync') && !(edge.call.inLoop && graph.reaches(edge.to, BUNDLED_READ, 'sync'));
      const cheap = light && !edge.call.inLoop && !graph.reaches(edge.to, LOOPED_METADATA, 'sync');
      // Only single local files opened, read or written, once each: no network, process or tree
      // operation reachable, and no file work per item of a loop (here or in the callee).
      const fileOnly = kind === 'blocking_io' && !edge.call.inLoop && !graph.reaches(edge.to, OTHER_BLOCKING, 'sync') && !graph.reaches(edge.to, LOOPED_FILE_IO, 'sync');
      const sinkFn = reach.steps[reach.steps.length - 1]!.fn;
      const sinkCall = graph.callAt(sinkFn.file, reach.effect.line, reach.effect.column);
      ctx.report({
        path: file.path,
        location: { line: edge.call.line, column: edge.call.column, endLine: edge.call.endLine, endColumn: edge.call.endColumn },
        message: message(reach.effect.what, fn.name, names) + (weak ? ' (a call resolved by its method name alone)' : ''),
        severity: weak ? lowerSeverity(atMost(severityOf(reach.effect.what, cheap, light, fileOnly, edge.call.inLoop), sev)) : atMost(severityOf(reach.effect.what, cheap, light, fileOnly, edge.call.inLoop), sev),
        ...(recommendationOf ? { recommendation: recommendationOf(reach.effect.what) } : {}),
        ...(advisoryOf(reach.effect.what, cheap) ? { advisory: advisoryOf(reach.effect.what, cheap)! } : {}),
        function: fn.name,
        chain,
        // Where the chain ends: the merge reports one finding there for three or more
        // coroutines whose findings survive suppressions and execution context.
        sink: {
          path: graph.fileOf(sinkFn).path,
          line: reach.effect.line,
          column: reach.effect.column,
          endLine: sinkCall?.endLine ?? reach.effect.line,
          endColumn: sinkCall?.endColumn ?? reach.effect.column + reach.effect.what.length,
          function: graph.function(sinkFn).name,
          qualifiedName: graph.function(sinkFn).qualifiedName,
          what: reach.effect.what,
        },
      });
    }
  }
}

/** `" (and 2 more in this function: lines 13, 14)"` for the other lines of one finding, or `""`. */
export function moreLines(lines: readonly number[], first: number, where = 'this function'): string {
  const others = [...new Set(lines.filter((l) => l !== first))];
  if (!others.length) return '';
  return ` (and ${others.length === 1 ? 'one more' : `${others.length} more`} in ${where}: line${others.length === 1 ? '' : 's'} ${others.join(', ')})`;
}

