/**
 * One finding for a blocking call that many coroutines reach. An event-loop chain's finding is
 * reported at the coroutine's call into the chain, with the blocking call it ends at (`sink`).
 * When the findings of three or more coroutines that end at the same blocking call survive
 * suppressions and execution context (run per caller, before this), they are one defect — a
 * library's `time.sleep` in a constructor that every handler builds, one sync repository method
 * every async route calls — and are reported once, at that call: at the worst severity among
 * them, with each caller's call site in `callers` (advisory findings are grouped apart, into an
 * advisory one). The fix is that function's (make it async,
 * drop the wait) or the same change at each listed caller.
 */
import { SEVERITY_RANK, type ChainStep, type Finding, type SinkRef } from '../types.js';
import { fingerprint } from './score.js';

/** From this many coroutines, their findings at one blocking call are reported once. */
export const SHARED_SINK_CALLERS = 3;

export function groupSharedSinks(findings: Finding[], sinks: ReadonlyMap<Finding, SinkRef>): Finding[] {
  const groups = new Map<string, Finding[]>();
  for (const f of findings) {
    const s = sinks.get(f);
    if (!s) continue;
    // Advisory findings group among themselves: out of the scores, they never raise a group's claim.
    const key = `${f.code}\0${s.path}\0${s.line}:${s.column}\0${f.advisory ? 'a' : ''}`;
    let list = groups.get(key);
    if (!list) groups.set(key, (list = []));
    list.push(f);
  }
  const grouped = new Set<Finding>();
  const added: Finding[] = [];
  for (const members of groups.values()) {
    // Coroutines, not names: `handle` in three modules is three callers.
    const callers = new Set(members.map((m) => `${m.path}\0${m.function ?? m.line}`));
    if (callers.size < SHARED_SINK_CALLERS) continue;
    const worst = members.reduce((a, b) => (SEVERITY_RANK[b.severity] > SEVERITY_RANK[a.severity] ? b : a));
    const s = sinks.get(worst)!;
    const sites = members.map(callSite).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.line - b.line || a.column - b.column));
    const names = [...new Set(sites.map((c) => c.function))].sort();
    const shown = names.slice(0, 4).map((n) => `\`${n}\``).join(', ') + (names.length > 4 ? ', …' : '');
    const what = s.what.endsWith(')') ? s.what : `${s.what}()`;
    for (const m of members) grouped.add(m);
    added.push({
      ...worst,
      path: s.path,
      line: s.line,
      column: s.column,
      endLine: s.endLine,
      endColumn: s.endColumn,
      function: s.function,
      message: `\`${what}\` in \`${s.qualifiedName}\` blocks the event loop of the ${callers.size} coroutines that call it synchronously (${shown}); reported once, at the call they all reach`,
      callers: sites,
      downgrades: worst.downgrades.map((d) => ({ ...d })),
      fingerprint: fingerprint(worst.code, s.path, s.lineText ?? '', s.function),
    });
  }
  return grouped.size ? findings.filter((f) => !grouped.has(f)).concat(added) : findings;
}

/** A caller's call into the chain: the chain's first hop, or the finding's own place. */
function callSite(f: Finding): ChainStep {
  return f.chain?.[0] ?? { path: f.path, line: f.line, column: f.column, function: f.function ?? '', call: '' };
}
