/**
 * `--format json`: the object described in product.md ("JSON"), with a fixed key order so two runs
 * over the same tree give the same bytes (apart from `stats.durationMs`). The shape is described
 * by `schema/persist-audit.schema.json`; change both together.
 */
import type { ScanResult } from '../engine/result.js';
import { compareFindings } from '../merge/score.js';
import type { Finding, ScanStats, Scores } from '../types.js';
import { FAMILIES } from '../types.js';

export interface JsonReport {
  tool: { name: 'persist-audit'; version: string };
  root: string;
  context: unknown;
  findings: Finding[];
  scores: Scores;
  stats: ScanStats;
}

/** The JSON report as a plain object, keys in output order. */
export function toJsonReport(result: ScanResult): JsonReport {
  return {
    tool: { name: 'persist-audit', version: result.toolVersion },
    root: result.root,
    context: result.context,
    findings: [...result.findings].sort(compareFindings).map(findingJson),
    scores: scoresJson(result.scores),
    stats: statsJson(result.stats),
  };
}

/** The JSON report as text: two-space indentation, trailing newline. */
export function renderJson(result: ScanResult): string {
  return `${JSON.stringify(toJsonReport(result), null, 2)}\n`;
}

function findingJson(f: Finding): Finding {
  const out: Finding = {
    code: f.code,
    check: f.check,
    category: f.category,
    severity: f.severity,
    originalSeverity: f.originalSeverity,
    advisory: f.advisory,
    path: f.path,
    line: f.line,
    column: f.column,
    endLine: f.endLine,
    endColumn: f.endColumn,
  } as Finding;
  if (f.function !== undefined) out.function = f.function;
  out.message = f.message;
  out.recommendation = f.recommendation;
  out.effort = f.effort;
  if (f.chain !== undefined && f.chain.length > 0) out.chain = f.chain.map((s) => ({ path: s.path, line: s.line, column: s.column, function: s.function, call: s.call }));
  if (f.callers !== undefined && f.callers.length > 0) out.callers = f.callers.map((s) => ({ path: s.path, line: s.line, column: s.column, function: s.function, call: s.call }));
  out.downgrades = f.downgrades.map((d) => ({ rule: d.rule, from: d.from, to: d.to, evidence: d.evidence }));
  out.fingerprint = f.fingerprint;
  return out;
}

function scoresJson(s: Scores): Scores {
  const out = {} as Scores;
  for (const family of FAMILIES) if (s[family] !== undefined) out[family] = s[family];
  out.overall = s.overall;
  return out;
}

function statsJson(s: ScanStats): ScanStats {
  return {
    files: s.files,
    lines: s.lines,
    bytes: s.bytes,
    parseErrors: s.parseErrors,
    parseErrorFiles: [...s.parseErrorFiles],
    skipped: s.skipped.map((k) => ({ path: k.path, reason: k.reason })),
    internalErrors: s.internalErrors.map((e) => (e.rule === undefined ? { path: e.path, message: e.message } : { path: e.path, rule: e.rule, message: e.message })),
    durationMs: s.durationMs,
  };
}
