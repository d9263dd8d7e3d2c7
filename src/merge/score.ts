/**
 * Scores, finding order and fingerprints: the parts of merging that every output must agree on.
 *
 * Scores are computed in integer tenths so that `0.2 · 3` is exactly `0.6` and two runs (or two
 * machines) never disagree in the last bit of a float.
 */
import { createHash } from 'node:crypto';
import type { Family, Finding, Scores, Severity } from '../types.js';
import { FAMILIES, SEVERITY_RANK } from '../types.js';

/** Penalty per non-advisory finding, in tenths of a point (2.0, 1.0, 0.5, 0.2). */
const PENALTY_TENTHS: Record<Severity, number> = { critical: 20, high: 10, medium: 5, low: 2 };

/**
 * Category score = max(0, 10 − (2.0·critical + 1.0·high + 0.5·medium + 0.2·low)); advisory
 * findings do not count. Only families in `familiesRun` get a score; the overall score is the
 * mean of those, rounded to one decimal (the category scores are exact to one decimal already).
 * With no family run, nothing was penalised and the overall score is 10.
 */
export function scoreFindings(findings: readonly Finding[], familiesRun: Iterable<Family>): Scores {
  const ran = new Set(familiesRun);
  const penalty = new Map<Family, number>();
  for (const f of findings) {
    if (f.advisory || !ran.has(f.category)) continue;
    penalty.set(f.category, (penalty.get(f.category) ?? 0) + PENALTY_TENTHS[f.severity]);
  }
  const scores: Scores = { overall: 10 };
  let sumTenths = 0;
  let count = 0;
  for (const family of FAMILIES) {
    if (!ran.has(family)) continue;
    const tenths = Math.max(0, 100 - (penalty.get(family) ?? 0));
    scores[family] = tenths / 10;
    sumTenths += tenths;
    count++;
  }
  if (count > 0) scores.overall = Math.round(sumTenths / count) / 10;
  // Rebuild so the key order is always query, transaction, runtime, lifecycle, overall.
  const ordered: Scores = {} as Scores;
  for (const family of FAMILIES) if (scores[family] !== undefined) ordered[family] = scores[family];
  ordered.overall = scores.overall;
  return ordered;
}

/** A score as every output shows it: one decimal. */
export function formatScore(score: number): string {
  return score.toFixed(1);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The one order of findings: path, line, column, code (then end position and message, so that
 * the order is total and stable however the findings arrived). Code-unit string comparison,
 * not locale-dependent.
 */
export function compareFindings(a: Finding, b: Finding): number {
  return (
    compareStrings(a.path, b.path) ||
    a.line - b.line ||
    a.column - b.column ||
    compareStrings(a.code, b.code) ||
    a.endLine - b.endLine ||
    a.endColumn - b.endColumn ||
    compareStrings(a.message, b.message)
  );
}

/**
 * A line-number-free identity of a finding: survives code moving up or down the file, changes
 * when the flagged line itself changes. 16 hex chars of sha1 over the rule code, the path, the
 * enclosing function and the whitespace-normalised line text. Two identical lines in one file get
 * the same value; `assignOccurrenceSuffixes` separates them.
 */
export function fingerprint(code: string, path: string, lineText: string, functionName?: string | null): string {
  const normalised = lineText.trim().replace(/\s+/g, ' ');
  return createHash('sha1')
    .update(['persist-audit/v1', code, path, functionName ?? '', normalised].join('\0'))
    .digest('hex')
    .slice(0, 16);
}

/**
 * Findings sorted by `compareFindings`, where the second, third… finding sharing a fingerprint
 * in the same file gets `:2`, `:3`… appended (in sorted order, so the result is deterministic).
 * Expects unsuffixed fingerprints; does not modify its input.
 */
export function assignOccurrenceSuffixes(findings: readonly Finding[]): Finding[] {
  const sorted = [...findings].sort(compareFindings);
  const seen = new Map<string, number>();
  return sorted.map((f) => {
    const key = `${f.path}\0${f.fingerprint}`;
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    return n === 1 ? f : { ...f, fingerprint: `${f.fingerprint}:${n}` };
  });
}

/**
 * The single most important finding: the most severe non-advisory one, the first in finding
 * order among equals. Null when there is none.
 */
export function mostSevereFinding(findings: readonly Finding[]): Finding | null {
  let best: Finding | null = null;
  for (const f of findings) {
    if (f.advisory) continue;
    if (!best || SEVERITY_RANK[f.severity] > SEVERITY_RANK[best.severity] || (SEVERITY_RANK[f.severity] === SEVERITY_RANK[best.severity] && compareFindings(f, best) < 0)) {
      best = f;
    }
  }
  return best;
}

/** Non-advisory findings per severity. */
export function countBySeverity(findings: readonly Finding[]): Record<Severity, number> {
  const counts: Record<Severity, number> = { critical: 0, high: 0, medium: 0, low: 0 };
  for (const f of findings) if (!f.advisory) counts[f.severity]++;
  return counts;
}
