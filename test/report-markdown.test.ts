import { describe, expect, it } from 'vitest';
import { markdownPieces, renderMarkdown } from '../dist/src/report/markdown.js';
import { finding, ruleMeta, scanResult } from './helpers/result.js';

const SECTIONS = [
  '## Persistence & Performance Audit Report - 2025-01-15',
  '### Executive Summary',
  '### Compliance Score',
  '### Severity Summary',
  '### Findings by Category',
  '#### 1. Query Efficiency',
  '#### 2. Transaction Correctness',
  '#### 3. Runtime Performance',
  '#### 4. Resource Lifecycle',
  '### Recommended Actions (Priority-Sorted)',
  '### Advisory Findings',
  '### Sources Consulted',
];

function sample() {
  return scanResult([
    finding({ code: 'PA301', severity: 'high', path: 'app/api/files.py', line: 42, message: 'open() blocks the event loop', recommendation: 'Use aiofiles' }),
    finding({ code: 'PA303', severity: 'medium', path: 'app/api/files.py', line: 7, message: 'time.sleep in async def' }),
    finding({ code: 'PA107', severity: 'critical', path: 'app/repo.py', line: 3, message: 'query per iteration', chain: [
      { path: 'app/repo.py', line: 3, column: 1, function: 'list_users', call: 'load_user' },
      { path: 'app/repo.py', line: 9, column: 5, function: 'load_user', call: 'session.get(User)' },
    ], effort: 'M' }),
    finding({
      code: 'PA304',
      severity: 'low',
      originalSeverity: 'high',
      advisory: true,
      path: 'app/tasks/x.py',
      line: 1,
      downgrades: [{ rule: 'adr_override', from: 'high', to: 'advisory', evidence: '[Planned: ADR-007]' }],
    }),
  ]);
}

/** Lines of the section that starts with `heading`, up to the next heading of any level. */
function section(md: string, heading: string): string[] {
  const lines = md.split('\n');
  const start = lines.indexOf(heading);
  expect(start).toBeGreaterThanOrEqual(0);
  const out: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (/^#{2,4} /.test(l)) break;
    out.push(l);
  }
  return out.filter((l) => l.length > 0);
}

describe('renderMarkdown', () => {
  it('the pieces the CLI writes are the rendered report, line by line', () => {
    const result = sample();
    const pieces = [...markdownPieces(result)];
    expect(pieces.length).toBeGreaterThan(10);
    expect(pieces.join('')).toBe(renderMarkdown(result));
  });

  it('has every section, in order', () => {
    const md = renderMarkdown(sample());
    const headings = md.split('\n').filter((l) => /^#{2,4} /.test(l) && !l.startsWith('#### Detected') && !l.startsWith('#### Rules'));
    expect(headings).toEqual(SECTIONS);
  });

  it('writes an executive summary from the numbers', () => {
    const [summary] = section(renderMarkdown(sample()), '### Executive Summary');
    expect(summary).toContain('overall compliance score is 8.3/10 across 2 audited categories'); // (8.0 + 8.5) / 2
    expect(summary).toMatch(/weakest is Query Efficiency at 8\.0\/10/);
    expect(summary).toMatch(/2 critical or high-severity issues \(1 critical, 1 high\)/);
    expect(summary).toContain('PA107 query_in_loop (critical) at `app/repo.py:3`');
    expect(summary!.split(/(?<=\.) (?=[A-Z])/).length).toBeLessThanOrEqual(3);
  });

  it('scores categories, marks unimplemented ones and leaves them out of Overall', () => {
    const rows = section(renderMarkdown(sample()), '### Compliance Score');
    expect(rows).toEqual([
      '| Category | Score | Notes |',
      '|---|---|---|',
      '| Query Efficiency | 8.0/10 | 1 critical |',
      '| Transaction Correctness | - | not yet audited (no rules implemented) |',
      '| Runtime Performance | 8.5/10 | 1 high, 1 medium; 1 advisory |',
      '| Resource Lifecycle | - | not yet audited (no rules implemented) |',
      '| **Overall** | **8.3/10** | mean of 2 audited categories |',
    ]);
  });

  it('tells deselected families from unimplemented ones when told which exist', () => {
    const md = renderMarkdown(sample(), { implementedFamilies: ['query', 'transaction', 'runtime'] });
    expect(md).toContain('| Transaction Correctness | - | not audited (rules not selected) |');
    expect(md).toContain('| Resource Lifecycle | - | not yet audited (no rules implemented) |');
  });

  it('counts non-advisory findings by severity', () => {
    const rows = section(renderMarkdown(sample()), '### Severity Summary');
    expect(rows.slice(0, 6)).toEqual(['| Severity | Count |', '|---|---|', '| Critical | 1 |', '| High | 1 |', '| Medium | 1 |', '| Low | 0 |']);
    expect(rows[6]).toBe('Advisory findings (not scored): 1.');
  });

  it('lists findings per category, most severe first, and "No findings." for an empty one', () => {
    const md = renderMarkdown(sample());
    expect(section(md, '#### 1. Query Efficiency')).toEqual([
      '| Severity | Location | Issue | Recommendation | Effort |',
      '|---|---|---|---|---|',
      '| Critical | `app/repo.py:3` | PA107 query_in_loop: query per iteration<br>Call chain:<br>1. `app/repo.py:3:1 in list_users: load_user`<br>2. `app/repo.py:9:5 in load_user: session.get(User)` | Do the right thing. | M |',
    ]);
    const runtime = section(md, '#### 3. Runtime Performance');
    expect(runtime[2]).toMatch(/^\| High \| `app\/api\/files\.py:42` \| PA301 blocking_io_in_async: open\(\) blocks the event loop \| Use aiofiles \| S \|$/);
    expect(runtime[3]).toMatch(/^\| Medium \| `app\/api\/files\.py:7` /);
    expect(runtime).toHaveLength(4); // the advisory PA304 is not here
    expect(section(md, '#### 4. Resource Lifecycle')).toEqual(['Not yet audited (no rules implemented).']);
    const empty = renderMarkdown(scanResult([finding({ code: 'PA301' })]));
    expect(section(empty, '#### 1. Query Efficiency')).toEqual(['No findings.']);
  });

  it('sorts recommended actions critical first, then by path and line', () => {
    const rows = section(renderMarkdown(sample()), '### Recommended Actions (Priority-Sorted)');
    expect(rows[0]).toBe('| Priority | Category | Location | Issue | Recommendation | Effort |');
    expect(rows.slice(2).map((r) => r.split(' | ').slice(0, 3).join(' | '))).toEqual([
      '| 1 | Query Efficiency | `app/repo.py:3`',
      '| 2 | Runtime Performance | `app/api/files.py:42`',
      '| 3 | Runtime Performance | `app/api/files.py:7`',
    ]);
  });

  it('lists advisory findings with their original severity and the reason', () => {
    const rows = section(renderMarkdown(sample()), '### Advisory Findings');
    expect(rows[2]).toBe(
      '| High | `app/tasks/x.py:1` | PA304 string_concat_in_loop: string_concat_in_loop found here | adr_override (high → advisory): [Planned: ADR-007] |',
    );
    expect(section(renderMarkdown(scanResult([])), '### Advisory Findings')).toEqual(['No advisory findings.']);
  });

  it('cites sources for detected technologies and for the rules that fired', () => {
    const result = sample();
    result.rules = result.rules.map((m) => (m.code === 'PA107' ? ruleMeta('PA107', { references: ['https://docs.sqlalchemy.org/en/20/orm/queryguide/relationships.html#selectin-eager-loading'] }) : m));
    const md = renderMarkdown(result);
    expect(md).toContain('#### Detected technologies');
    expect(md).toContain('- **FastAPI 0.115.0**');
    expect(md).toContain('- **SQLAlchemy 2.0.36**');
    expect(md).toContain('https://fastapi.tiangolo.com/async/');
    expect(md).toContain('#### Rules that fired');
    expect(md).toContain('- **PA107 query_in_loop**\n  - <https://docs.sqlalchemy.org/en/20/orm/queryguide/relationships.html#selectin-eager-loading>');
    expect(md).not.toContain('#pa403'); // a rule that ran but did not fire is not cited
  });

  it('reads an unexpected context shape without failing', () => {
    const md = renderMarkdown(scanResult([], { context: { root: '.', problems: [] } as never, families: [] }));
    expect(md).toContain('No technologies detected and no rules fired.');
    expect(md).toContain('nothing audited');
  });

  it('escapes pipes and newlines inside table cells', () => {
    const md = renderMarkdown(scanResult([finding({ message: 'a | b\nc\r\nd', recommendation: 'x|y', path: 'we|rd.py' })]));
    const row = md.split('\n').find((l) => l.startsWith('| High | `'))!;
    expect(row).toBe('| High | `we\\|rd.py:10` | PA301 blocking_io_in_async: a \\| b<br>c<br>d | x\\|y | S |');
  });

  it('is deterministic: same input, same bytes, whatever the finding order', () => {
    const a = sample();
    const b = sample();
    b.findings = [...b.findings].reverse();
    expect(renderMarkdown(a)).toBe(renderMarkdown(a));
    expect(renderMarkdown(b)).toBe(renderMarkdown(a));
  });
});
