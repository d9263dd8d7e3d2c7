/**
 * The field benchmark's scorer on a small self-made tree: a real scan, verdicts and known bugs
 * written as the committed files are, and the figures the bench prints.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir, tempTree } from './helpers/tmp.js';
import { resolveConfig } from '../dist/src/config/config.js';
import { scan } from '../dist/src/engine/scan.js';
import {
  deservedSeverity, FieldFileError, formatScore, readKnownBugs, readVerdicts, reviewSheet, scoreField, seededShuffle, settledBySeverity,
} from '../dist/bench/field/score.js';

const TREE = {
  'app/api.py': [
    'import time',
    'import requests',
    '',
    'async def slow():',
    '    time.sleep(1)',
    '',
    'async def fetch(url):',
    '    return requests.get(url)',
    '',
    'def build(parts):',
    '    out = ""',
    '    for p in parts:',
    '        out += p',
    '    return out',
    '',
  ].join('\n'),
};

async function findingsOf(dir: string) {
  const config = resolveConfig({ report: null, log: null, cache: false, failOn: 'never', quiet: true, jobs: 1 }, {}, null);
  const out = await scan(dir, config, { inProcessBytes: Infinity });
  return { findings: out.result.findings, lines: out.result.stats.lines };
}

function write(dir: string, name: string, rows: string[][]): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, ['# a comment', ...rows.map((r) => r.join('\t'))].join('\n') + '\n');
  return file;
}

describe('field benchmark scorer', () => {
  it('scores a real scan against verdicts and known bugs', async () => {
    const root = tempTree('pa-field-', TREE);
    const { findings, lines } = await findingsOf(root);
    const codes = findings.map((f) => `${f.code}@${f.line}`).sort();
    expect(codes).toContain('PA303@5');
    expect(codes).toContain('PA301@8');

    const files = tempDir('pa-field-files-');
    const verdicts = readVerdicts(write(files, 'verdicts.tsv', [
      ['repo', 'commit', 'path', 'line', 'code', 'verdict', 'reason'],
      ['me/app', 'c1', 'app/api.py', '5', 'PA303', 'TRUE', 'sleeps on the loop per request'],
      ['me/app', 'c1', 'app/api.py', '8', 'PA301', 'false', 'pretend the reviewer disagreed'],
      ['me/app', 'c1', 'app/api.py', '99', 'PA303', 'TRUE', 'a finding that is gone'],
      ['me/app', 'c0', 'app/api.py', '5', 'PA303', 'FALSE', 'an older commit: not scored'],
    ]));
    const bugs = readKnownBugs(write(files, 'bugs.tsv', [
      ['repo', 'commit', 'path', 'lines', 'family', 'code', 'what'],
      ['me/app', 'c1', 'app/api.py', '4-6', 'runtime', 'PA303', 'sleep on the loop'],
      ['me/app', 'c1', 'app/api.py', '20-30', 'query', '-', 'an N+1 the tool does not see'],
    ]));
    const score = scoreField([{ repo: 'me/app', commit: 'c1', lines, findings }], verdicts, bugs);

    const runtime = score.families.runtime;
    expect(runtime.reviewed).toBe(2);
    expect(runtime.TRUE).toBe(1);
    expect(runtime.FALSE).toBe(1);
    expect(runtime.bugs).toBe(1);
    expect(runtime.bugsFound).toBe(1);
    expect(score.families.query.bugs).toBe(1);
    expect(score.families.query.bugsFound).toBe(0);
    expect(score.rules.get('PA303')).toMatchObject({ reviewed: 1, TRUE: 1 });
    expect(score.gone.map((v) => v.line)).toEqual([99]);
    expect(score.notScanned).toBe(1);
    // Every non-advisory finding without a verdict is listed for review.
    const unreviewed = findings.filter((f) => !f.advisory && !(f.line === 5 && f.code === 'PA303') && !(f.line === 8 && f.code === 'PA301'));
    expect(score.unreviewed).toHaveLength(unreviewed.length);

    const text = formatScore(score);
    expect(text).toMatch(/runtime\s+\d+\s+\d+\s+2\s+1\s+1\s+0\s+0\s+50 %\s+50 %\s+1\/1/);
    expect(text).toMatch(/missed {2}me\/app app\/api\.py:20-30 \[query\] an N\+1/);
    expect(text).toMatch(/TRUE {6}me\/app app\/api\.py:99 PA303/);

    const sheet = reviewSheet(score.unreviewed, new Map([['me/app', 'c1']])).trim().split('\n');
    expect(sheet[0]!.split('\t').slice(0, 7)).toEqual(['repo', 'commit', 'path', 'line', 'code', 'verdict', 'reason']);
    expect(sheet).toHaveLength(unreviewed.length + 1);
  });

  it('an advisory finding is not counted in precision, and its verdict is not gone', () => {
    const base = { check: 'x', category: 'query' as const, originalSeverity: 'high' as const, column: 1, endLine: 3, endColumn: 2, message: 'm', recommendation: 'r', effort: 'S' as const, downgrades: [], fingerprint: 'f' };
    const findings = [
      { ...base, code: 'PA107', severity: 'high' as const, advisory: true, path: 'm/v1.py', line: 3 },
      { ...base, code: 'PA107', severity: 'high' as const, advisory: false, path: 'a.py', line: 7 },
    ];
    const verdicts = [
      { repo: 'r', commit: 'c', path: 'm/v1.py', line: 3, code: 'PA107', verdict: 'DEBATABLE' as const, reason: 'migration', deserves: null },
      { repo: 'r', commit: 'c', path: 'a.py', line: 7, code: 'PA107', verdict: 'TRUE' as const, reason: 'real', deserves: null },
    ];
    const score = scoreField([{ repo: 'r', commit: 'c', lines: 10_000, findings }], verdicts, []);
    expect(score.families.query).toMatchObject({ findings: 2, advisory: 1, reviewed: 1, TRUE: 1, DEBATABLE: 0 });
    expect(score.gone).toEqual([]);
  });

  it('a finding reported once for several callers finds the known bugs at its call sites', () => {
    const base = { check: 'x', category: 'runtime' as const, originalSeverity: 'high' as const, severity: 'high' as const, column: 1, endLine: 3, endColumn: 2, message: 'm', recommendation: 'r', effort: 'S' as const, downgrades: [], fingerprint: 'f', code: 'PA303' };
    const callers = [3, 9, 15].map((line) => ({ path: 'app/api.py', line, column: 5, function: `h${line}`, call: 'throttle' }));
    const findings = [{ ...base, advisory: false, path: 'app/pace.py', line: 4, callers }];
    const bug = (lines: string, p = 'app/api.py') => ({ repo: 'r', commit: 'c', path: p, startLine: Number(lines.split('-')[0]), endLine: Number(lines.split('-').pop()), family: 'runtime' as const, code: 'PA303', what: 'w' });
    const score = scoreField([{ repo: 'r', commit: 'c', lines: 100, findings }], [], [bug('9'), bug('14-16'), bug('20-22'), bug('4', 'app/pace.py')]);
    expect(score.bugs.map((b) => b.foundBy)).toEqual(['PA303@app/pace.py:4', 'PA303@app/pace.py:4', null, 'PA303@4']);
  });

  it('a DEBATABLE verdict is settled once the finding is reported at the severity the reviewer gave', () => {
    const base = { check: 'x', category: 'query' as const, originalSeverity: 'high' as const, column: 1, endLine: 3, endColumn: 2, message: 'm', recommendation: 'r', effort: 'S' as const, downgrades: [], fingerprint: 'f', advisory: false };
    const findings = [
      { ...base, code: 'PA107', severity: 'low' as const, path: 'a.py', line: 1 },
      { ...base, code: 'PA107', severity: 'medium' as const, path: 'b.py', line: 1 },
      { ...base, code: 'PA107', severity: 'low' as const, path: 'c.py', line: 1 },
      { ...base, code: 'PA107', severity: 'low' as const, path: 'd.py', line: 1 },
    ];
    const reasons = ['low/advisory: per-item workflow', 'low: small list', 'advisory: runs nightly', 'the loop is small'];
    const verdicts = ['a.py', 'b.py', 'c.py', 'd.py'].map((p, i) => ({
      repo: 'r', commit: 'c', path: p, line: 1, code: 'PA107', verdict: 'DEBATABLE' as const, reason: reasons[i]!, deserves: deservedSeverity(reasons[i]!),
    }));
    expect(verdicts.map((v) => v.deserves)).toEqual(['low', 'low', 'advisory', null]);
    const score = scoreField([{ repo: 'r', commit: 'c', lines: 10_000, findings }], verdicts, []);
    // a.py is reported at low as asked; b.py is still medium; c.py asks for advisory; d.py names no severity.
    expect(score.families.query).toMatchObject({ reviewed: 4, TRUE: 1, settled: 1, DEBATABLE: 3 });
    expect(settledBySeverity(verdicts[0]!, 'medium')).toBe(false);
    expect(settledBySeverity({ ...verdicts[0]!, verdict: 'FALSE' }, 'low')).toBe(false);
  });

  it('rejects malformed verdict and known-bug files with the file and row', () => {
    const dir = tempDir('pa-field-bad-');
    const head = ['repo', 'commit', 'path', 'line', 'code', 'verdict', 'reason'];
    expect(() => readVerdicts(write(dir, 'a.tsv', [head, ['r', 'c', 'p', '3', 'PA1', 'MAYBE', 'x']]))).toThrow(/row 1: verdict "MAYBE"/);
    expect(() => readVerdicts(write(dir, 'b.tsv', [head, ['r', 'c', 'p', 'x', 'PA1', 'TRUE', 'x']]))).toThrow(FieldFileError);
    expect(() => readVerdicts(write(dir, 'c.tsv', [head, ['r', 'c', 'p', '3', 'PA1', 'TRUE', '']]))).toThrow(/needs its reason/);
    expect(() => readVerdicts(write(dir, 'd.tsv', [head, ['r', 'c', 'p']]))).toThrow(/3 columns/);
    const bugHead = ['repo', 'commit', 'path', 'lines', 'family', 'code', 'what'];
    expect(() => readKnownBugs(write(dir, 'e.tsv', [bugHead, ['r', 'c', 'p', '3-', 'query', '-', 'x']]))).toThrow(/lines "3-"/);
    expect(() => readKnownBugs(write(dir, 'f.tsv', [bugHead, ['r', 'c', 'p', '3', 'speed', '-', 'x']]))).toThrow(/family "speed"/);
  });

  it('the shuffle is seeded: the same seed gives the same order, another seed another', () => {
    const xs = Array.from({ length: 30 }, (_, i) => i);
    expect(seededShuffle(xs, 7)).toEqual(seededShuffle(xs, 7));
    expect(seededShuffle(xs, 7)).not.toEqual(seededShuffle(xs, 8));
    expect([...seededShuffle(xs, 7)].sort((a, b) => a - b)).toEqual(xs);
  });
});
