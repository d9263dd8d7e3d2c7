import { describe, expect, it } from 'vitest';
import {
  assignOccurrenceSuffixes,
  compareFindings,
  countBySeverity,
  fingerprint,
  mostSevereFinding,
  scoreFindings,
} from '../dist/src/merge/score.js';
import { finding } from './helpers/result.js';

describe('scoreFindings', () => {
  it('applies 2.0 / 1.0 / 0.5 / 0.2 per critical / high / medium / low', () => {
    const findings = [
      finding({ code: 'PA301', severity: 'critical' }),
      finding({ code: 'PA301', severity: 'high' }),
      finding({ code: 'PA301', severity: 'medium' }),
      finding({ code: 'PA301', severity: 'low' }),
      finding({ code: 'PA301', severity: 'low' }),
      finding({ code: 'PA301', severity: 'low' }),
    ];
    const s = scoreFindings(findings, ['runtime']);
    // 10 - (2 + 1 + 0.5 + 0.6) = 5.9, exactly (no 5.8999999)
    expect(s.runtime).toBe(5.9);
    expect(s.overall).toBe(5.9);
  });

  it('excludes advisory findings', () => {
    const s = scoreFindings(
      [finding({ severity: 'critical', advisory: true }), finding({ severity: 'medium' })],
      ['runtime'],
    );
    expect(s.runtime).toBe(9.5);
  });

  it('floors at zero', () => {
    const many = Array.from({ length: 8 }, (_, i) => finding({ severity: 'critical', line: i + 1 }));
    expect(scoreFindings(many, ['runtime']).runtime).toBe(0);
  });

  it('averages only the families that ran, omitting the others', () => {
    const s = scoreFindings(
      [finding({ code: 'PA107', severity: 'high' }), finding({ code: 'PA301', severity: 'critical' }), finding({ code: 'PA301', severity: 'high' })],
      ['query', 'runtime'],
    );
    expect(s).toEqual({ query: 9, runtime: 7, overall: 8 });
    expect(Object.keys(s)).toEqual(['query', 'runtime', 'overall']);
    expect('transaction' in s).toBe(false);
  });

  it('rounds the overall mean to one decimal (7.5, 10, 6, 8 -> 7.9)', () => {
    const f = [
      finding({ code: 'PA107', severity: 'high' }),
      finding({ code: 'PA107', severity: 'high', line: 2 }),
      finding({ code: 'PA107', severity: 'medium', line: 3 }),
      finding({ code: 'PA301', severity: 'critical' }),
      finding({ code: 'PA301', severity: 'critical', line: 2 }),
      finding({ code: 'PA403', severity: 'critical' }),
    ];
    const s = scoreFindings(f, ['query', 'transaction', 'runtime', 'lifecycle']);
    expect(s).toEqual({ query: 7.5, transaction: 10, runtime: 6, lifecycle: 8, overall: 7.9 });
  });

  it('gives 10 when nothing ran', () => {
    expect(scoreFindings([], [])).toEqual({ overall: 10 });
  });

  it('ignores findings of families that did not run', () => {
    expect(scoreFindings([finding({ code: 'PA403', severity: 'critical' })], ['runtime'])).toEqual({ runtime: 10, overall: 10 });
  });
});

describe('compareFindings', () => {
  it('orders by path, line, column, code', () => {
    const a = finding({ path: 'a.py', line: 2, column: 1, code: 'PA303' });
    const b = finding({ path: 'a.py', line: 2, column: 1, code: 'PA301' });
    const c = finding({ path: 'a.py', line: 1, column: 9 });
    const d = finding({ path: 'B.py', line: 1 });
    const e = finding({ path: 'a.py', line: 2, column: 3 });
    const sorted = [a, b, c, d, e].sort(compareFindings);
    expect(sorted.map((f) => `${f.path}:${f.line}:${f.column}:${f.code}`)).toEqual([
      'B.py:1:5:PA301', // code-unit order: uppercase before lowercase, not locale order
      'a.py:1:9:PA301',
      'a.py:2:1:PA301',
      'a.py:2:1:PA303',
      'a.py:2:3:PA301',
    ]);
  });
});

describe('fingerprint', () => {
  it('is 16 hex chars, independent of the line number and of whitespace', () => {
    const a = fingerprint('PA303', 'app/x.py', '    time.sleep(1)', 'handler');
    const b = fingerprint('PA303', 'app/x.py', 'time.sleep( 1)'.replace('( ', '('), 'handler');
    const c = fingerprint('PA303', 'app/x.py', '\ttime.sleep(1)   ', 'handler');
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect(fingerprint('PA303', 'app/x.py', 'time.sleep(2)', 'handler')).not.toBe(a);
    expect(fingerprint('PA301', 'app/x.py', 'time.sleep(1)', 'handler')).not.toBe(a);
  });

  it('suffixes repeated fingerprints in one file with an occurrence counter, in sorted order', () => {
    const fp = fingerprint('PA303', 'a.py', 'time.sleep(1)', 'f');
    const input = [
      finding({ code: 'PA303', path: 'a.py', line: 30, fingerprint: fp }),
      finding({ code: 'PA303', path: 'a.py', line: 10, fingerprint: fp }),
      finding({ code: 'PA303', path: 'b.py', line: 5, fingerprint: fp }),
      finding({ code: 'PA303', path: 'a.py', line: 20, fingerprint: fp }),
    ];
    const out = assignOccurrenceSuffixes(input);
    expect(out.map((f) => `${f.path}:${f.line} ${f.fingerprint}`)).toEqual([
      `a.py:10 ${fp}`,
      `a.py:20 ${fp}:2`,
      `a.py:30 ${fp}:3`,
      `b.py:5 ${fp}`,
    ]);
    expect(input[0]!.fingerprint).toBe(fp); // input untouched
    // Same input in another order: same output.
    expect(assignOccurrenceSuffixes([...input].reverse())).toEqual(out);
  });
});

describe('mostSevereFinding / countBySeverity', () => {
  it('picks the most severe non-advisory finding, first in order among equals', () => {
    const f = [
      finding({ path: 'z.py', severity: 'high' }),
      finding({ path: 'a.py', severity: 'critical', advisory: true }),
      finding({ path: 'b.py', severity: 'high' }),
      finding({ path: 'a.py', severity: 'medium' }),
    ];
    expect(mostSevereFinding(f)!.path).toBe('b.py');
    expect(countBySeverity(f)).toEqual({ critical: 0, high: 2, medium: 1, low: 0 });
    expect(mostSevereFinding([finding({ advisory: true })])).toBeNull();
  });
});
