/** The command line as a user meets it: exit codes, one-line errors, outputs, files written. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli as run } from './helpers/cli.js';
import { tempDir, tempTree } from './helpers/tmp.js';

function project(files: Record<string, string>): string {
  return tempTree('pa-cli-', files);
}

const SLEEPY = { 'app/api.py': 'import time\n\nasync def handler():\n    time.sleep(1)\n' };

describe('exit codes and errors', () => {
  it('exits 1 on a high finding and 0 with --fail-on never', () => {
    const dir = project(SLEEPY);
    expect(run(['scan', dir, '--no-write']).code).toBe(1);
    expect(run(['scan', dir, '--no-write', '--fail-on', 'never']).code).toBe(0);
    expect(run([dir, '--no-write', '--fail-on', 'critical']).code).toBe(0);
  });

  it('exits 0 and says so on a clean tree', () => {
    const dir = project({ 'app/ok.py': 'import asyncio\n\nasync def f():\n    await asyncio.sleep(1)\n' });
    const r = run(['scan', dir, '--no-write']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/No findings in 1 file/);
  });

  it('a bad flag, a bad value and a missing path are one line on stderr and exit 2', () => {
    for (const args of [['scan', '--no-such-flag'], ['scan', '--fail-on', 'sometimes'], ['scan', '/no/such/dir'], ['scan', '.', '--select', 'XYZ']]) {
      const r = run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^persist-audit: /);
    }
  });

  it('a bad config file names the key and the file', () => {
    const dir = project({ ...SLEEPY, 'persist-audit.yaml': 'fail_on: high\nselcet: [PA3]\n' });
    const r = run(['scan', dir, '--no-write']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/persist-audit\.yaml: unknown key "selcet"/);
  });

  it('reads settings from [tool.persist-audit] in pyproject.toml', () => {
    const dir = project({ ...SLEEPY, 'pyproject.toml': '[tool.persist-audit]\nfail-on = "never"\n' });
    const r = run(['scan', dir, '--no-write']);
    expect(r.code, r.stderr).toBe(0);
  });
});

describe('outputs', () => {
  it('text lines are path:line:col CODE message', () => {
    const r = run(['scan', project(SLEEPY), '--no-write']);
    expect(r.stdout.split('\n')[0]).toMatch(/^app\/api\.py:4:5 PA303 /);
  });

  it('--select and --ignore filter rules by code or prefix', () => {
    const dir = project(SLEEPY);
    expect(run(['scan', dir, '--no-write', '--ignore', 'PA303']).code).toBe(0);
    expect(run(['scan', dir, '--no-write', '--select', 'PA30']).code).toBe(1);
    expect(run(['scan', dir, '--no-write', '--select', 'PA1']).code).toBe(0);
  });

  it('writes the report and appends to the log; a second run has a delta', () => {
    const dir = project(SLEEPY);
    run(['scan', dir]);
    const report = fs.readFileSync(path.join(dir, 'docs/project/persistence_audit.md'), 'utf8');
    expect(report).toMatch(/^## Persistence & Performance Audit Report - \d{4}-\d{2}-\d{2}/);
    run(['scan', dir]);
    const log = fs.readFileSync(path.join(dir, 'docs/project/.audit/results_log.md'), 'utf8');
    const rows = log.split('\n').filter((l) => l.includes('| ln-650 |'));
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(/\| baseline \|/);
    expect(rows[1]).toMatch(/\| stable \| [+-]?0\.0 \|/);
  });

  it('--no-write leaves the tree untouched and --output writes the format to a file', () => {
    const dir = project(SLEEPY);
    const out = path.join(tempDir('pa-out-'), 'out.sarif');
    run(['scan', dir, '--no-write', '--format', 'sarif', '--output', out]);
    expect(fs.readdirSync(dir).sort()).toEqual(['app']); // no docs/, no .persist-audit-cache/
    const sarif = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(sarif.version).toBe('2.1.0');
    expect(sarif.runs[0].results[0].ruleId).toBe('PA303');
  });

  it('json output is the same bytes twice, apart from the duration', () => {
    const dir = project(SLEEPY);
    const a = run(['scan', dir, '--no-write', '--format', 'json', '--no-cache']).stdout.replace(/"durationMs": \d+/, '');
    const b = run(['scan', dir, '--no-write', '--format', 'json', '--no-cache']).stdout.replace(/"durationMs": \d+/, '');
    expect(a).toBe(b);
    expect(JSON.parse(a.replace(/,(\s*})/, '$1')).findings[0].code).toBe('PA303');
  });

  it('suppressions: noqa with the code, bare noqa, persist-audit: ignore', () => {
    const dir = project({
      'app/api.py': [
        'import time',
        'async def a():',
        '    time.sleep(1)  # noqa: PA303',
        '    time.sleep(1)  # noqa',
        '    time.sleep(1)  # persist-audit: ignore[PA303]',
        '    time.sleep(1)  # noqa: PA301',
        '',
      ].join('\n'),
    });
    const r = run(['scan', dir, '--no-write']);
    expect(r.stdout.split('\n').filter((l) => l.includes('PA303'))).toEqual([expect.stringMatching(/^app\/api\.py:6:5 PA303/)]);
  });

  it('a baseline hides known findings, matched without line numbers', () => {
    const dir = project(SLEEPY);
    const baseline = path.join(dir, 'baseline.json');
    run(['scan', dir, '--no-write', '--write-baseline', baseline]);
    // Move the finding down two lines: still known.
    fs.writeFileSync(path.join(dir, 'app/api.py'), 'import time\n\n\n\nasync def handler():\n    time.sleep(1)\n');
    expect(run(['scan', dir, '--no-write', '--baseline', baseline]).code).toBe(0);
  });
});

describe('warm rescan with the default outputs', () => {
  it('the report and trend log it wrote into the tree do not make the next scan rediscover the context', () => {
    const dir = project({ ...SLEEPY, 'requirements.txt': 'fastapi\nsqlalchemy>=2\n' });
    // Every input an hour old: the cache's racy-mtime check then has no say.
    const hourAgo = new Date(Date.now() - 3600_000);
    for (const f of ['app/api.py', 'requirements.txt']) fs.utimesSync(path.join(dir, f), hourAgo, hourAgo);
    const first = run(['scan', dir, '--fail-on', 'never', '--timings']);
    expect(first.stderr).toMatch(/context discovered/);
    expect(fs.existsSync(path.join(dir, 'docs/project/persistence_audit.md'))).toBe(true);
    const second = run(['scan', dir, '--fail-on', 'never', '--timings', '--output', path.join(dir, 'out.txt')]);
    expect(second.stderr).toMatch(/1 hit, 0 analysed, context cached/);
    // The trend log has two rows now, and --output wrote a file inside the tree: still cached.
    const third = run(['scan', dir, '--fail-on', 'never', '--timings', '--output', path.join(dir, 'out.txt')]);
    expect(third.stderr).toMatch(/context cached/);
    // A real input changing still invalidates it.
    fs.appendFileSync(path.join(dir, 'requirements.txt'), 'asyncpg\n');
    expect(run(['scan', dir, '--fail-on', 'never', '--timings']).stderr).toMatch(/context discovered/);
  });
});

describe('info commands', () => {
  it('rules lists codes; explain documents one; explain of an unknown code exits 2', () => {
    expect(run(['rules']).stdout).toMatch(/PA303\s+sync_sleep_in_async\s+runtime\s+high/);
    const e = run(['explain', 'pa303']);
    expect(e.code).toBe(0);
    expect(e.stdout).toMatch(/## Why is this bad\?/);
    expect(run(['explain', 'PA999']).code).toBe(2);
  });

  it('context prints JSON', () => {
    const r = run(['context', project(SLEEPY)]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveProperty('stack');
  });
});
