/** The `--timings` table: per phase, then per rule (summed over workers), slowest first. */
import type { ScanOutput } from '../engine/scan.js';

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
  const rules = Object.entries(t.ruleMs).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const total = rules.reduce((s, [, ms]) => s + ms, 0) || 1;
  lines.push('', 'Rule                  Time (ms)  Relative');
  for (const [code, ms] of rules) lines.push(`${code.padEnd(20)} ${ms.toFixed(1).padStart(10)}  ${((ms / total) * 100).toFixed(1).padStart(7)}%`);
  return lines.join('\n') + '\n';
}
