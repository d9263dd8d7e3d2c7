/**
 * One engine, one claim. PA404 reads an engine's pool settings as a web service's long-lived
 * pool (stale connections after a restart, pool sizing); PA407 finds the same `create_engine`
 * call reached once per request, session or job — a pool that lives for one unit of work, where
 * nothing goes stale and nothing is shared to size. When a surviving PA407 chain ends at the
 * engine call PA404 reports, the pool advice is moot: that PA404 finding becomes advisory, with
 * the PA407 finding as its evidence (the engine per unit of work is the defect to fix first).
 * Matched on the engine call's position (line and column), so another PA404 claim on the same line
 * (an `async_sessionmaker`'s `expire_on_commit`) keeps its severity. Not under
 * `execution-context: strict`. Left: a constructor that also builds the process's shared engine
 * (a module-level instance) is judged by its per-request use.
 */
import type { Finding } from '../types.js';

export function perUnitEngines(findings: Finding[]): Finding[] {
  const perUnit = new Map<string, Finding>();
  for (const f of findings) {
    // Advisory ones too (an engine per run of a coroutine on a loop of its own, per CLI command):
    // the pool still lives one unit of work.
    if (f.code !== 'PA407') continue;
    // The engine call's own position (the chain's end, or the finding itself when the handler
    // builds the engine in its own body): a sessionmaker on the same line is another PA404 claim.
    const end = f.chain?.length ? f.chain[f.chain.length - 1]! : f;
    const key = `${end.path}:${end.line}:${end.column}`;
    if (!perUnit.has(key)) perUnit.set(key, f);
  }
  if (!perUnit.size) return findings;
  return findings.map((f) => {
    if (f.code !== 'PA404' || f.advisory) return f;
    const by = perUnit.get(`${f.path}:${f.line}:${f.column}`);
    if (!by) return f;
    return {
      ...f,
      advisory: true,
      downgrades: [...f.downgrades, {
        rule: 'execution_context',
        from: f.severity,
        to: 'advisory',
        evidence: `this engine is built once per unit of work (PA407 at ${by.path}:${by.line}): its pool lives that long, so stale connections and pool sizing do not arise`,
      }],
    };
  });
}
