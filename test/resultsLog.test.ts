import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendEntry, appendResultsLog, entryFromResult, readRows } from '../dist/src/report/resultsLog.js';
import { writeFileAtomic } from '../dist/src/report/atomic.js';
import { finding, scanResult } from './helpers/result.js';

const HEADER = '| Date | Skill | Metric | Scale | Score | Status | Delta | Key Finding | Commit |';
const entry = (score: number, over: Record<string, string> = {}) => ({ date: '2025-01-15', score, keyFinding: 'none', commit: '-', ...over });

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-log-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('appendEntry', () => {
  it('creates the table, then tracks delta and status against the previous ln-650 row', () => {
    let text = '';
    const steps: [number, string, string][] = [
      [7.5, 'baseline', 'N/A'],
      [8.0, 'improving', '+0.5'],
      [7.8, 'stable', '-0.2'],
      [6.6, 'declining', '-1.2'],
      [6.6, 'stable', '0.0'],
      [6.9, 'stable', '+0.3'], // exactly +0.3 is not "above +0.3"
      [6.5, 'declining', '-0.4'],
    ];
    for (const [score, status, delta] of steps) {
      const next = appendEntry(text, entry(score));
      expect([next.row.status, next.row.delta]).toEqual([status, delta]);
      text = next.text;
    }
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe(HEADER);
    expect(lines[2]).toBe('| 2025-01-15 | ln-650 | overall_score | 0-10 | 7.5 | baseline | N/A | none | - |');
    expect(readRows(text).map((r: { score: string }) => r.score)).toEqual(['7.5', '8.0', '7.8', '6.6', '6.6', '6.9', '6.5']);
  });

  it('takes the delta from the previous row of the same skill, ignoring other skills', () => {
    const text = [HEADER, '|---|---|---|---|---|---|---|---|---|', '| 2025-01-01 | ln-650 | overall_score | 0-10 | 6.0 | baseline | N/A | none | - |', '| 2025-01-02 | ln-640 | coverage | 0-100 | 91.0 | stable | 0.0 | x | - |', ''].join('\n');
    const { row } = appendEntry(text, entry(9.1));
    expect(row).toMatchObject({ status: 'improving', delta: '+3.1', score: '9.1' });
  });

  it('keeps the text around the table and other skills untouched', () => {
    const other = '| 2025-01-02 | ln-640 | coverage | 0-100 | 91.0 | stable | 0.0 | weird \\| cell | deadbee |';
    const text = ['# Audit log', '', 'Some notes.', '', HEADER, '|------|------|------|------|------|------|------|------|------|', other, '', 'Footer text.', ''].join('\n');
    const out = appendEntry(text, entry(5)).text;
    expect(out.startsWith('# Audit log\n\nSome notes.\n\n' + HEADER + '\n')).toBe(true);
    expect(out).toContain(`${other}\n| 2025-01-15 | ln-650 |`);
    expect(out.endsWith('\n\nFooter text.\n')).toBe(true);
  });

  it('appends a table after existing text that has none', () => {
    const out = appendEntry('# Results\n\nNothing yet.\n\n\n', entry(5)).text;
    expect(out).toBe(`# Results\n\nNothing yet.\n\n${HEADER}\n|------|------|------|------|------|------|------|------|------|\n| 2025-01-15 | ln-650 | overall_score | 0-10 | 5.0 | baseline | N/A | none | - |\n`);
  });

  it('keeps at most 50 data rows, dropping the oldest ln-650 rows and never other skills', () => {
    let text = '';
    for (let i = 0; i < 10; i++) text = appendEntry(text, entry(5, { commit: `c${i}` })).text;
    // interleave 5 rows of another skill near the start
    const lines = text.split('\n');
    const others = Array.from({ length: 5 }, (_, i) => `| 2024-12-0${i + 1} | ln-620 | score | 0-10 | 4.0 | stable | 0.0 | none | o${i} |`);
    lines.splice(3, 0, ...others);
    text = lines.join('\n');
    for (let i = 10; i < 60; i++) text = appendEntry(text, entry(5, { commit: `c${i}` })).text;
    const rows = readRows(text);
    expect(rows).toHaveLength(50);
    expect(rows.filter((r: { skill: string }) => r.skill === 'ln-620').map((r: { commit: string }) => r.commit)).toEqual(['o0', 'o1', 'o2', 'o3', 'o4']);
    const ours = rows.filter((r: { skill: string }) => r.skill === 'ln-650').map((r: { commit: string }) => r.commit);
    expect(ours).toHaveLength(45);
    expect(ours[0]).toBe('c15');
    expect(ours.at(-1)).toBe('c59');
  });

  it('never drops other skills even when they alone fill the window', () => {
    const others = Array.from({ length: 55 }, (_, i) => `| 2024-12-01 | ln-620 | score | 0-10 | 4.0 | stable | 0.0 | none | o${i} |`);
    const text = [HEADER, '|---|---|---|---|---|---|---|---|---|', ...others, ''].join('\n');
    const rows = readRows(appendEntry(text, entry(5)).text);
    expect(rows).toHaveLength(56);
    expect(rows.at(-1).skill).toBe('ln-650');
  });
});

describe('entryFromResult', () => {
  it('names the most severe non-advisory finding and the commit', () => {
    const r = scanResult([
      finding({ code: 'PA303', severity: 'medium', path: 'a.py', line: 1 }),
      finding({ code: 'PA107', severity: 'critical', path: 'z.py', line: 9, advisory: true }),
      finding({ code: 'PA301', severity: 'high', path: 'b.py', line: 4 }),
    ]);
    expect(entryFromResult(r)).toEqual({ date: '2025-01-15', score: r.scores.overall, keyFinding: 'PA301 b.py:4', commit: 'abc1234' });
    expect(entryFromResult(scanResult([], { commit: null }))).toMatchObject({ keyFinding: 'none', commit: '-' });
  });
});

describe('appendResultsLog', () => {
  it('creates the file (and its directory) with the header, and appends to it', () => {
    const file = path.join(dir, 'docs/project/.audit/results_log.md');
    appendResultsLog(file, scanResult([]));
    appendResultsLog(file, scanResult([finding({ severity: 'critical' })]));
    const rows = readRows(fs.readFileSync(file, 'utf8'));
    expect(rows.map((r: { status: string; delta: string }) => `${r.status} ${r.delta}`)).toEqual(['baseline N/A', 'declining -1.0']);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['results_log.md']); // no lock or temp files left
  });

  it('breaks a stale lock left by a crashed scan', () => {
    const file = path.join(dir, 'log.md');
    fs.writeFileSync(`${file}.lock`, '999999 crashed\n');
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(`${file}.lock`, old, old);
    appendResultsLog(file, entry(5), { staleMs: 1000, timeoutMs: 5000 });
    expect(readRows(fs.readFileSync(file, 'utf8'))).toHaveLength(1);
    expect(fs.existsSync(`${file}.lock`)).toBe(false);
  });

  it('times out on a live lock', () => {
    const file = path.join(dir, 'log.md');
    fs.writeFileSync(`${file}.lock`, `${process.pid}\n`);
    expect(() => appendResultsLog(file, entry(5), { staleMs: 60_000, timeoutMs: 100 })).toThrow(/could not lock/);
  });

  it('loses no row when several processes append at once', async () => {
    const file = path.join(dir, 'log.md');
    const moduleUrl = pathToFileURL(path.resolve(__dirname, '../dist/src/report/resultsLog.js')).href;
    const PROCS = 4;
    const EACH = 6;
    const script = (p: number) => `
      import { appendResultsLog } from ${JSON.stringify(moduleUrl)};
      for (let i = 0; i < ${EACH}; i++) appendResultsLog(${JSON.stringify(file)}, { date: '2025-01-15', score: 5, keyFinding: 'none', commit: 'p${p}-' + i });
    `;
    const runs = Array.from({ length: PROCS }, (_, p) =>
      new Promise<number>((resolve, reject) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script(p)], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        child.stderr.on('data', (d) => (err += d));
        child.on('error', reject);
        child.on('exit', (code) => (code === 0 ? resolve(code) : reject(new Error(`child ${p} exited ${code}: ${err}`))));
      }),
    );
    await Promise.all(runs);
    const rows = readRows(fs.readFileSync(file, 'utf8'));
    expect(rows).toHaveLength(PROCS * EACH);
    expect(new Set(rows.map((r: { commit: string }) => r.commit)).size).toBe(PROCS * EACH);
    expect(rows.filter((r: { status: string }) => r.status === 'baseline')).toHaveLength(1);
    expect(fs.readdirSync(dir)).toEqual(['log.md']);
  });
});

describe('writeFileAtomic', () => {
  it('writes pieces in order, across its batches, without a separator', () => {
    const file = path.join(dir, 'pieces.md');
    // ~2.4 MB in 40 000 pieces: more than one batch of about a megabyte.
    const pieces = Array.from({ length: 40_000 }, (_, i) => `| ${i} | ${'x'.repeat(50)} |\n`);
    writeFileAtomic(file, pieces.values());
    expect(fs.readFileSync(file, 'utf8')).toBe(pieces.join(''));
    writeFileAtomic(file, [].values());
    expect(fs.readFileSync(file, 'utf8')).toBe('');
  });

  it('creates directories, replaces content, keeps the mode and leaves no temp file', () => {
    const file = path.join(dir, 'a/b/report.md');
    writeFileAtomic(file, 'one');
    fs.chmodSync(file, 0o640);
    writeFileAtomic(file, 'two');
    expect(fs.readFileSync(file, 'utf8')).toBe('two');
    expect(fs.statSync(file).mode & 0o777).toBe(0o640);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['report.md']);
  });

  it('removes its temp file when the rename fails', () => {
    const target = path.join(dir, 'adir');
    fs.mkdirSync(path.join(target, 'child'), { recursive: true }); // renaming a file over a non-empty dir fails
    expect(() => writeFileAtomic(target, 'x')).toThrow();
    expect(fs.readdirSync(dir)).toEqual(['adir']);
  });
});
