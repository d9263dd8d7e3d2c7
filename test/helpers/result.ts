/**
 * Hand-built scan results for the report tests: a finding factory with sensible defaults and a
 * result factory that scores the findings the way the engine does.
 */
import type { ScanResult } from '../../src/engine/result.js';
import type { RuleMeta } from '../../src/rules/types.js';
import type { Family, Finding, Severity } from '../../src/types.js';
import { compareFindings, fingerprint, scoreFindings } from '../../dist/src/merge/score.js';

const CHECKS: Record<string, { check: string; category: Family }> = {
  PA101: { check: 'redundant_fetch', category: 'query' },
  PA107: { check: 'query_in_loop', category: 'query' },
  PA201: { check: 'missing_intermediate_commits', category: 'transaction' },
  PA204: { check: 'missing_rollback', category: 'transaction' },
  PA301: { check: 'blocking_io_in_async', category: 'runtime' },
  PA303: { check: 'sync_sleep_in_async', category: 'runtime' },
  PA304: { check: 'string_concat_in_loop', category: 'runtime' },
  PA403: { check: 'missing_cleanup', category: 'lifecycle' },
};

export function finding(over: Partial<Finding> & { code?: string } = {}): Finding {
  const code = over.code ?? 'PA301';
  const known = CHECKS[code] ?? { check: 'some_check', category: 'runtime' as Family };
  const severity: Severity = over.severity ?? 'high';
  const line = over.line ?? 10;
  const f: Finding = {
    code,
    check: known.check,
    category: known.category,
    severity,
    originalSeverity: severity,
    advisory: false,
    path: 'app/api/files.py',
    line,
    column: 5,
    endLine: line,
    endColumn: 20,
    function: 'handler',
    message: `${known.check} found here`,
    recommendation: 'Do the right thing.',
    effort: 'S',
    downgrades: [],
    fingerprint: '',
    ...over,
  };
  if (!over.fingerprint) f.fingerprint = fingerprint(f.code, f.path, `line ${f.line} ${f.message}`, f.function);
  return f;
}

export function ruleMeta(code: string, over: Partial<RuleMeta> = {}): RuleMeta {
  const known = CHECKS[code] ?? { check: 'some_check', category: 'runtime' as Family };
  return {
    code,
    check: known.check,
    family: known.category,
    severity: 'high',
    effort: 'S',
    summary: `Finds ${known.check.replace(/_/g, ' ')}.`,
    what: `What ${code} does.`,
    why: `Why ${code} matters.`,
    bad: 'async def f():\n    time.sleep(1)\n',
    good: 'async def f():\n    await asyncio.sleep(1)\n',
    fix: 'Fix it.',
    references: [`https://docs.python.org/3/library/asyncio-dev.html#${code.toLowerCase()}`],
    ...over,
  };
}

export function scanResult(findings: Finding[], over: Partial<ScanResult> = {}): ScanResult {
  const families: Family[] = over.families ?? ['query', 'runtime'];
  const sorted = [...findings].sort(compareFindings);
  const codes = [...new Set(Object.keys(CHECKS))].filter((c) => families.includes(CHECKS[c]!.category));
  return {
    toolVersion: '0.1.0',
    rootPath: '/tmp/project',
    root: '.',
    date: '2025-01-15',
    commit: 'abc1234',
    context: { root: '.', stack: { fastapi: { version: '0.115.0', source: 'pyproject.toml' }, sqlalchemy: { version: '2.0.36', source: 'pyproject.toml' } }, problems: [] },
    findings: sorted,
    scores: scoreFindings(sorted, families),
    stats: { files: 12, lines: 3400, bytes: 120000, parseErrors: 0, parseErrorFiles: [], skipped: [], internalErrors: [], durationMs: 123 },
    rules: codes.map((c) => ruleMeta(c)),
    families,
    ...over,
  };
}

/** A chain as the names the text output shows: each function, then what the last one calls. */
export function chainNames(chain: { function: string; call: string }[] | undefined): string[] | undefined {
  if (!chain) return undefined;
  return [...chain.map((s) => s.function), chain[chain.length - 1]!.call];
}
