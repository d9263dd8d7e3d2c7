/**
 * The `--timings` table (stderr), like ESLint's `TIMING=1`: per phase, per-file stages and per
 * rule (summed over files and workers, so they exceed wall time on several threads), slowest
 * first; and the same figures as JSON for `bench --compare`.
 */
import type { ScanOutput } from '../engine/scan.js';

export interface TimingsJson {
  format: 'persist-audit-timings/1';
  parser: string;
  files: number;
  lines: number;
  phases: Record<string, number>;
  stages: Record<string, number>;
  rules: Record<string, number>;
}

export function timingsJson(out: ScanOutput): TimingsJson {
  const t = out.timings;
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return {
    format: 'persist-audit-timings/1',
    parser: out.parser,
    files: out.result.stats.files,
    lines: out.result.stats.lines,
    phases: { discovery: round(t.discoveryMs), perFile: round(t.perFileMs), repo: round(t.repoMs), merge: round(t.mergeMs), cache: round(t.cacheMs) },
    stages: Object.fromEntries(Object.entries(t.stageMs).map(([k, v]) => [k, round(v)])),
    rules: Object.fromEntries(Object.entries(t.ruleMs).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, round(v)])),
  };
}

export function formatTimings(out: ScanOutput): string {
  const t = out.timings;
  const rows: [string, number][] = [
    ['discovery', t.discoveryMs],
    ['per-file (pool)', t.perFileMs],
    ['repo phase', t.repoMs],
    ['merge', t.mergeMs],
  ];
  const lines = ['Phase                 Time (ms)'];
  for (const [name, ms] of rows) lines.push(`${name.padEnd(20)} ${ms.toFixed(1).padStart(10)}`);
  const { mainThread, workers } = out.passes;
  if (mainThread + workers) lines.push(`${'  passes'.padEnd(20)} ${mainThread} on the main thread (small), ${workers} in the workers`);
  if (out.cache) {
    const c = out.cache;
    lines.push(`${'  of which cache'.padEnd(20)} ${t.cacheMs.toFixed(1).padStart(10)}  (${c.hits} hit${c.hashed ? `, ${c.hashed} by hash` : ''}, ${c.misses} analysed, context ${c.contextHit ? 'cached' : c.contextKept ? 'kept (the changed files\' facts are the same)' : c.factsReused ? `discovered, facts of ${c.factsReused} files reused` : 'discovered'}${c.repoKept === 'summaries' ? '; repo phase kept: the edits changed no summary' : ''})`);
  }
  const stages = Object.entries(t.stageMs);
  const stageTotal = stages.reduce((s, [, ms]) => s + ms, 0);
  if (stageTotal > 0) {
    lines.push('', 'Per-file stage        Time (ms)  Relative   (summed over workers)');
    for (const [name, ms] of stages) lines.push(`${name.padEnd(20)} ${ms.toFixed(1).padStart(10)}  ${((ms / stageTotal) * 100).toFixed(1).padStart(7)}%`);
  }
  const rules = Object.entries(t.ruleMs).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const total = rules.reduce((s, [, ms]) => s + ms, 0) || 1;
  lines.push('', 'Rule                  Time (ms)  Relative');
  for (const [code, ms] of rules) lines.push(`${code.padEnd(20)} ${ms.toFixed(1).padStart(10)}  ${((ms / total) * 100).toFixed(1).padStart(7)}%`);
  return lines.join('\n') + '\n';
}
