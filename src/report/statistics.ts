/**
 * `--statistics`: instead of one line per finding, one line per rule with how many findings it
 * has, most first (like Ruff's `--statistics`): `count  code  check`, and how many of them are
 * advisory. With `--format json`, the same rows as a JSON list.
 */
import type { ScanResult } from '../engine/result.js';

export interface RuleCount {
  code: string;
  check: string;
  count: number;
  advisory: number;
}

export function ruleCounts(result: ScanResult): RuleCount[] {
  const byCode = new Map<string, RuleCount>();
  for (const f of result.findings) {
    const row = byCode.get(f.code) ?? { code: f.code, check: f.check, count: 0, advisory: 0 };
    row.count++;
    if (f.advisory) row.advisory++;
    byCode.set(f.code, row);
  }
  return [...byCode.values()].sort((a, b) => b.count - a.count || (a.code < b.code ? -1 : 1));
}

export function renderStatistics(result: ScanResult, format: 'text' | 'json'): string {
  const rows = ruleCounts(result);
  if (format === 'json') return `${JSON.stringify(rows, null, 2)}\n`;
  if (rows.length === 0) return '';
  const width = String(rows[0]!.count).length;
  return rows
    .map((r) => `${String(r.count).padStart(width)}\t${r.code}\t${r.check}${r.advisory ? ` (${r.advisory} advisory)` : ''}\n`)
    .join('');
}
