/**
 * The command line where a developer meets it (issue 21): some files or directories of a project
 * on the command line, the pre-commit hook, the CI recipes of the README, the source under a
 * finding, progress and statistics, and output that a crafted file name cannot forge.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { CLI, runCli as run } from './helpers/cli.js';
import { tempDir, tempTree } from './helpers/tmp.js';
import { Progress } from '../src/cli/progress.js';
import { escapeControl } from '../src/report/escape.js';

const REPO = path.resolve(__dirname, '..');
const SAMPLE = path.join(REPO, 'fixtures/sample-app');

const SLEEP = (name: string) => `import time\n\n\nasync def ${name}():\n    time.sleep(1)\n`;

/** A project with a pyproject.toml at its root and a finding in each of three files. */
function project(extra: Record<string, string> = {}): string {
  return tempTree('pa-wf-', {
    'pyproject.toml': '[project]\nname = "svc"\n',
    'app/a.py': SLEEP('a'),
    'app/b.py': SLEEP('b'),
    'lib/c.py': SLEEP('c'),
    ...extra,
  });
}

/** The paths of the finding lines of a text output. */
function findingPaths(stdout: string): string[] {
  return [...new Set(stdout.split('\n').filter((l) => /^\S+:\d+:\d+ PA\d{3} /.test(l)).map((l) => l.split(':')[0]!))].sort();
}

/** A copy of the sample service, so that its cache and outputs land in a scratch tree. */
function sampleCopy(): string {
  const dir = tempDir('pa-sample-');
  fs.cpSync(SAMPLE, dir, { recursive: true, filter: (src) => !src.includes('.persist-audit-cache') && !src.includes(`${path.sep}project${path.sep}`) });
  return dir;
}

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.email=dev@example.com', '-c', 'user.name=dev', '-c', 'commit.gpgsign=false', ...args], { cwd: dir, encoding: 'utf8' });
}

/** Runs `command` under a pseudo-terminal (util-linux `script`): stdout and stderr are the TTY. */
function onTty(args: string[], cwd: string, env: Record<string, string> = {}): string {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('script', ['-qec', command, '/dev/null'], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env } });
  if (r.error) throw r.error;
  return r.stdout.replace(/\r\n/g, '\n');
}

describe('1. paths: files and directories, any number', () => {
  it('reports only the given files, reads the whole project, and writes no report or log row', () => {
    const dir = project();
    const r = run(['scan', 'app/a.py', 'lib/c.py'], dir);
    expect(r.code, r.stderr).toBe(1);
    expect(findingPaths(r.stdout)).toEqual(['app/a.py', 'lib/c.py']);
    expect(r.stdout).toMatch(/in 2 files\./);
    expect(fs.existsSync(path.join(dir, 'docs'))).toBe(false);
    // A directory is everything under it.
    expect(findingPaths(run(['scan', 'app'], dir).stdout)).toEqual(['app/a.py', 'app/b.py']);
    // The root itself is a full scan, which writes the report and the trend row as before.
    expect(findingPaths(run(['scan', '.'], dir).stdout)).toEqual(['app/a.py', 'app/b.py', 'lib/c.py']);
    expect(fs.existsSync(path.join(dir, 'docs/project/persistence_audit.md'))).toBe(true);
  });

  it('a report and a log row for a subset only when the command line names them', () => {
    const dir = project();
    run(['scan', 'app/a.py', '--report', 'partial.md', '--log', 'partial-log.md'], dir);
    expect(fs.readFileSync(path.join(dir, 'partial.md'), 'utf8')).toMatch(/^## Persistence & Performance Audit Report/);
    expect(fs.readFileSync(path.join(dir, 'partial-log.md'), 'utf8')).toMatch(/\| ln-650 \|/);
    expect(fs.existsSync(path.join(dir, 'docs'))).toBe(false);
  });

  it('finds the root from the paths: nearest persist-audit.yaml, pyproject.toml, setup.cfg or .git', () => {
    for (const marker of ['persist-audit.yaml', 'pyproject.toml', 'setup.cfg', '.git']) {
      const dir = tempTree('pa-root-', { 'svc/app/a.py': SLEEP('a'), 'svc/app/b.py': SLEEP('b') });
      if (marker === '.git') fs.mkdirSync(path.join(dir, 'svc/.git'));
      else fs.writeFileSync(path.join(dir, 'svc', marker), marker === 'persist-audit.yaml' ? 'fail-on: high\n' : '');
      // Run from inside app/: the paths printed are the root's, so the root is svc/.
      const r = run(['scan', 'a.py'], path.join(dir, 'svc/app'));
      expect(r.code, `${marker}: ${r.stderr}`).toBe(1);
      expect(findingPaths(r.stdout), marker).toEqual(['app/a.py']);
    }
  });

  it("the root's configuration applies to a file given from a subdirectory", () => {
    const dir = project({ 'persist-audit.yaml': 'ignore: [PA303]\n' });
    const r = run(['scan', 'a.py'], path.join(dir, 'app'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/No findings in 1 file/);
  });

  it('--root names the root; a path outside it is exit 2', () => {
    const dir = tempTree('pa-root-', { 'x/svc/app/a.py': SLEEP('a'), 'x/pyproject.toml': '' });
    const r = run(['scan', 'x/svc/app/a.py', '--root', 'x/svc'], dir);
    expect(r.code, r.stderr).toBe(1);
    expect(findingPaths(r.stdout)).toEqual(['app/a.py']);
    expect(run(['scan', 'x/svc/app/a.py'], dir).stdout).toMatch(/^svc\/app\/a\.py:/m);
    const far = run(['scan', 'x/svc/app/a.py', '--root', 'x/svc/app/..//../nope'], dir);
    expect(far.code).toBe(2);
    expect(far.stderr.trim()).toMatch(/^persist-audit: cannot read x\/svc\/app\/\.\.\/\/\.\.\/nope: no such file or directory$/);
    const other = tempTree('pa-other-', { 'b.py': SLEEP('b') });
    const out = run(['scan', path.join(other, 'b.py'), '--root', 'x/svc'], dir);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/b\.py is outside the project root .*svc \(--root\)/);
  });

  it('a non-Python file given is skipped with a note; a missing path is exit 2 with one line', () => {
    const dir = project({ 'README.md': '# svc\n' });
    const r = run(['scan', 'README.md', 'app/a.py'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('persist-audit: README.md: not a Python file (.py), skipped\n');
    expect(findingPaths(r.stdout)).toEqual(['app/a.py']);
    expect(run(['scan', 'README.md', 'app/a.py', '--quiet'], dir).stderr).toBe('');
    const missing = run(['scan', 'app/a.py', 'app/nope.py'], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('persist-audit: cannot read app/nope.py: no such file or directory\n');
    expect(missing.stdout).toBe('');
  });

  it('file names after a list option stay paths (pre-commit appends them after the args)', () => {
    const dir = project();
    const r = run(['scan', '--exclude', 'nothing/**', 'app/a.py', '--select', 'PA3', 'lib/c.py'], dir);
    expect(r.code, r.stderr).toBe(1);
    expect(findingPaths(r.stdout)).toEqual(['app/a.py', 'lib/c.py']);
    expect(run(['scan', '--select', 'PA1', '--select', 'PA3', 'app/a.py'], dir).code).toBe(1);
    expect(run(['scan', '--select', 'PA1', 'app/a.py'], dir).code).toBe(0);
  });

  it('a file given that the excludes leave out is named on stderr, not audited', () => {
    const dir = project({ '.gitignore': 'lib/\n', 'persist-audit.yaml': 'exclude: ["app/b.py"]\n' });
    const r = run(['scan', 'app/a.py', 'app/b.py', 'lib/c.py'], dir);
    expect(r.code).toBe(1);
    expect(findingPaths(r.stdout)).toEqual(['app/a.py']);
    expect(r.stderr).toBe([
      'persist-audit: app/b.py: excluded by .gitignore, --exclude or the default excludes; not audited',
      'persist-audit: lib/c.py: excluded by .gitignore, --exclude or the default excludes; not audited',
      '',
    ].join('\n'));
  });

  it('the sample service: one file exits 1 with only its findings, a chain through another file among them', () => {
    const dir = sampleCopy();
    const r = run(['scan', 'app/api/routes.py'], dir);
    expect(r.code, r.stderr).toBe(1);
    expect(findingPaths(r.stdout)).toEqual(['app/api/routes.py']);
    // The N+1 at line 39 is reached through `repo.get_user`, which lives in app/repositories.py.
    expect(r.stdout).toMatch(/^app\/api\/routes\.py:39:\d+ PA107 .*\n {4}app\/api\/routes\.py:39:\d+ in list_jobs_with_owners: repo\.get_user\n {4}app\/repositories\.py:\d+:\d+ in get_user: session\.get\(User\)$/m);
    expect(fs.existsSync(path.join(dir, 'docs/project/persistence_audit.md'))).toBe(false);
    // The README's quick start, `persist-audit scan fixtures/sample-app`, is still the full audit.
    const full = run(['scan', path.relative(path.dirname(dir), dir)], path.dirname(dir));
    expect(full.code).toBe(1);
    expect(findingPaths(full.stdout).length).toBeGreaterThan(5);
    expect(fs.existsSync(path.join(dir, 'docs/project/persistence_audit.md'))).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'docs/project/.audit/results_log.md'), 'utf8')).toMatch(/\| ln-650 \|/);
  });
});

describe('2. pre-commit', () => {
  const manifest = parseYaml(fs.readFileSync(path.join(REPO, '.pre-commit-hooks.yaml'), 'utf8')) as Record<string, unknown>[];
  const hook = manifest.find((h) => h.id === 'persist-audit')!;

  it('the hook runs the scan on the Python files a commit changes, serially', () => {
    expect(hook).toMatchObject({ language: 'node', types: ['python'], pass_filenames: true, require_serial: true });
    expect(String(hook.entry).split(' ')[0]).toBe(Object.keys(JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')).bin)[0]);
  });

  /** A scratch git repository holding the sample service, everything committed. */
  function scratchRepo(): string {
    const dir = sampleCopy();
    git(dir, 'init', '-q');
    git(dir, 'add', '-A');
    git(dir, 'commit', '-qm', 'sample');
    return dir;
  }

  it('what the hook runs, as pre-commit runs it: the entry with the changed Python files; the tree stays clean', () => {
    const dir = scratchRepo();
    // pre-commit passes the files of `types: [python]` among those changed: here a route file, a
    // helper it calls and a README, which the type filter drops.
    const changed = ['app/api/routes.py', 'app/repositories.py', 'README.md'].filter((f) => f.endsWith('.py'));
    const entry = String(hook.entry).split(' ').slice(1);
    // pre-commit puts the hook's `args` between the entry and the file names.
    const r = run([...entry, '--exclude', 'legacy/**', ...changed], dir);
    expect(r.code, r.stderr).toBe(1);
    expect(findingPaths(r.stdout)).toEqual(['app/api/routes.py']);
    // A hook that changes files fails the commit: the scan must leave the work tree as it was.
    expect(git(dir, 'status', '--porcelain')).toBe('');
    // Every Python file of the repository (pre-commit run --all-files) is a scan of some paths too.
    const all = git(dir, 'ls-files', '*.py').trim().split('\n');
    expect(run([...entry, ...all], dir).code).toBe(1);
    expect(git(dir, 'status', '--porcelain')).toBe('');
  });

  const hasPreCommit = spawnSync('pre-commit', ['--version'], { encoding: 'utf8' }).status === 0;
  const real = 'pre-commit itself runs the hook over the sample service in a scratch repository';
  (hasPreCommit ? it : it.skip)(hasPreCommit ? real : `${real}: SKIPPED, pre-commit is not installed (apt-get install pre-commit)`, () => {
    const dir = scratchRepo();
    // `language: node` would install this package from the registry into pre-commit's own
    // environment; the test has no network, so the same hook runs as a local one with the
    // built command line as its entry: the same file selection, filenames and serial run.
    const local = {
      ...hook,
      language: 'system',
      entry: `${process.execPath} ${CLI} ${String(hook.entry).split(' ').slice(1).join(' ')}`,
      args: ['--exclude', 'legacy/**'],
    };
    fs.writeFileSync(path.join(dir, '.pre-commit-config.yaml'), JSON.stringify({ repos: [{ repo: 'local', hooks: [local] }] }));
    git(dir, 'add', '.pre-commit-config.yaml');
    git(dir, 'commit', '-qm', 'hook');
    const env = { ...process.env, PRE_COMMIT_HOME: tempDir('pa-pch-'), NO_COLOR: '1', PRE_COMMIT_COLOR: 'never' };
    const r = spawnSync('pre-commit', ['run', 'persist-audit', '--files', 'app/api/routes.py', 'README.md'], { cwd: dir, encoding: 'utf8', env });
    expect(r.status, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/persist-audit\.+Failed/);
    expect(findingPaths(r.stdout)).toEqual(['app/api/routes.py']);
    expect(r.stdout).not.toMatch(/files were modified by this hook/);
    const clean = tempTree('pa-clean-', { 'svc.py': 'import asyncio\n\n\nasync def f():\n    await asyncio.sleep(1)\n' });
    git(clean, 'init', '-q');
    fs.writeFileSync(path.join(clean, '.pre-commit-config.yaml'), JSON.stringify({ repos: [{ repo: 'local', hooks: [local] }] }));
    git(clean, 'add', '-A');
    git(clean, 'commit', '-qm', 'clean');
    const ok = spawnSync('pre-commit', ['run', '--all-files'], { cwd: clean, encoding: 'utf8', env });
    expect(ok.status, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/persist-audit\.+Passed/);
  });
});

describe('3. the CI recipes of the README', () => {
  const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const workflows = [...readme.matchAll(/```yaml\n(name: [\s\S]*?)```/g)].map((m) => parseYaml(m[1]!) as { jobs: Record<string, { steps: Record<string, unknown>[] }> });
  const scanSteps = workflows.flatMap((w) => Object.values(w.jobs).flatMap((j) => j.steps)).filter((s) => String(s.run ?? '').includes('persist-audit scan'));

  it('has a job uploading SARIF to code scanning and one with --format github, both with a baseline', () => {
    const runs = scanSteps.map((s) => String(s.run));
    expect(runs.some((r) => /--format sarif/.test(r) && /--baseline /.test(r))).toBe(true);
    expect(runs.some((r) => /--format github/.test(r) && /--baseline /.test(r))).toBe(true);
    const upload = workflows.flatMap((w) => Object.values(w.jobs).flatMap((j) => j.steps)).find((s) => String(s.uses ?? '').startsWith('github/codeql-action/upload-sarif'));
    expect(upload).toBeDefined();
    // The file the scan writes is the one the upload reads.
    const sarifRun = runs.find((r) => /--format sarif/.test(r))!;
    expect(sarifRun).toContain(`--output ${(upload!.with as Record<string, string>).sarif_file}`);
  });

  it("each recipe's scan command runs as written on a project with a baseline", () => {
    const dir = project();
    for (const step of scanSteps) {
      const line = String(step.run).replace(/\\\n\s*/g, ' ').split('\n').find((l) => l.includes('persist-audit scan'))!;
      const args = line.trim().replace(/^npx\s+(--yes\s+)?/, '').split(/\s+/).slice(1);
      const baseline = args[args.indexOf('--baseline') + 1]!;
      // Adopting on a legacy repository: write the baseline once, then only new findings fail.
      expect(run(['scan', '--no-write', '--write-baseline', baseline], dir).code).toBe(1);
      const r = run(args, dir);
      expect(r.code, `${line}\n${r.stderr}`).toBe(0);
      fs.writeFileSync(path.join(dir, 'app/new.py'), SLEEP('fresh'));
      const fresh = run(args, dir);
      expect(fresh.code, line).toBe(1);
      const output = args.includes('--output') ? fs.readFileSync(path.join(dir, args[args.indexOf('--output') + 1]!), 'utf8') : fresh.stdout;
      expect(output).toContain('app/new.py');
      expect(output).not.toContain('app/a.py');
      fs.rmSync(path.join(dir, 'app/new.py'));
    }
  });
});

describe('4. the source under a finding', () => {
  const tree = () => tempTree('pa-src-', { 'app/api.py': 'import time\n\n\nasync def handler():\n    x = "é\u001b[2J"; time.sleep(1)\n' });
  const snippet = [
    '    |',
    '  5 |     x = "é\\x1b[2J"; time.sleep(1)',
    // The caret moves right with the escape: `\x1b` takes four columns where ESC took one.
    `    | ${' '.repeat('    x = "é\\x1b[2J"; '.length)}^^^^^^^^^^^^^`,
  ].join('\n');

  it('--show-source prints the line with a caret under the finding, control characters escaped', () => {
    const r = run(['scan', tree(), '--no-write', '--show-source']);
    expect(r.stdout).toContain(`app/api.py:5:18 PA303 \`time.sleep()\` blocks the event loop inside \`async def handler\`\n${snippet}\n`);
  });

  it('is off in a pipe, on by default on a terminal, and --no-show-source turns it off there', () => {
    const dir = tree();
    expect(run(['scan', dir, '--no-write']).stdout).not.toContain('|');
    expect(onTty(['scan', dir, '--no-write'], dir)).toContain(snippet);
    // As a setting of the project: `show-source: true` shows it in a pipe too.
    fs.writeFileSync(path.join(dir, 'persist-audit.yaml'), 'show-source: true\n');
    expect(run(['scan', dir, '--no-write']).stdout).toContain(snippet);
    const off = onTty(['scan', dir, '--no-write', '--no-show-source'], dir);
    expect(off).toMatch(/app\/api\.py:5:18 PA303/);
    expect(off).not.toContain(' |');
  });
});

describe('5. progress, library warnings, statistics', () => {
  it('a YAML warning becomes a context problem, never a line on stderr', () => {
    const dir = project({ 'docker-compose.yml': 'services:\n  db:\n    image: postgres:16\n    environment:\n      X: !GetAtt Foo.Bar\n' });
    const r = run(['scan', dir, '--no-write', '--format', 'json']);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout).context.problems).toEqual([{ file: 'docker-compose.yml', reason: 'YAML: Unresolved tag: !GetAtt at line 5, column 10' }]);
    expect(JSON.parse(r.stdout).context.database).toEqual([expect.objectContaining({ engine: 'postgresql', version: '16' })]);
  });

  it('a YAML warning in the config file is an error naming the file, not a stray stderr line', () => {
    const dir = project({ 'persist-audit.yaml': 'fail-on: !Ref high\n' });
    const r = run(['scan', dir, '--no-write']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('persist-audit: persist-audit.yaml: not valid YAML: Unresolved tag: !Ref at line 1, column 10\n');
  });

  it('progress on a terminal only: phases and files on one erased line; never in a pipe or with --quiet', () => {
    const dir = project();
    // No delay, so that a small scan shows the line it would show after two seconds.
    const now = { PERSIST_AUDIT_PROGRESS_DELAY_MS: '0' };
    const tty = onTty(['scan', dir, '--no-write'], dir, now);
    expect(tty).toMatch(/\rpersist-audit: discovering the project \(0 s\)/);
    expect(tty).toMatch(/\rpersist-audit: (auditing: 3\/3 files|merging findings) \(0 s\)/);
    // Erased before the findings are printed.
    expect(tty).toMatch(/\r +\rapp\/a\.py:5:5 PA303/);
    expect(run(['scan', dir, '--no-write'], REPO, now).stderr).toBe('');
    const quiet = onTty(['scan', dir, '--no-write', '--quiet'], dir, now);
    expect(quiet).toMatch(/Found 3 findings/);
    expect(quiet).not.toMatch(/\r|persist-audit:/);
  });

  it('the progress line appears after the delay, shows phase and files, and is erased', () => {
    let now = 0;
    let written = '';
    const p = new Progress({ write: (s: string) => (written += s), columns: 80 }, () => now, 2000);
    p.phase('discovery');
    p.files(10, 100, 'audit');
    expect(written).toBe('');
    now = 2500;
    p.files(50, 100, 'audit');
    expect(written).toBe('\rpersist-audit: auditing: 50/100 files (3 s)');
    now = 2550;
    p.files(60, 100, 'audit'); // within the redraw interval: not drawn
    p.phase('call graph');
    expect(written.endsWith('\rpersist-audit: following calls across files (3 s)')).toBe(true);
    p.done();
    expect(written.endsWith(`\r${' '.repeat('persist-audit: following calls across files (3 s)'.length)}\r`)).toBe(true);
  });

  it('--statistics prints a count per rule, most first; as JSON with --format json', () => {
    const dir = project({ 'app/d.py': 'import asyncio\nimport requests\n\n\nasync def d():\n    requests.get("u")\n' });
    const r = run(['scan', dir, '--no-write', '--statistics']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('3\tPA303\tsync_sleep_in_async\n1\tPA301\tblocking_io_in_async\n');
    const json = JSON.parse(run(['scan', dir, '--no-write', '--statistics', '--format', 'json']).stdout);
    expect(json).toEqual([
      { code: 'PA303', check: 'sync_sleep_in_async', count: 3, advisory: 0 },
      { code: 'PA301', check: 'blocking_io_in_async', count: 1, advisory: 0 },
    ]);
  });
});

describe('6. output a crafted file name cannot forge', () => {
  const crafted = 'evil\nforged.py:1:1 PA999 forged finding\r::error file=x.py::forged\u001b[2J.py';

  it('text: the name is escaped on its one line; no line is forged', () => {
    const dir = tempTree('pa-evil-', { [crafted]: SLEEP('x') });
    const r = run(['scan', dir, '--no-write', '--show-source']);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`${escapeControl(crafted)}:5:5 PA303 \`time.sleep()\` blocks the event loop inside \`async def x\``);
    expect(lines[0]).toContain('evil\\nforged.py:1:1 PA999 forged finding\\r::error file=x.py::forged\\x1b[2J.py');
    expect(lines.filter((l) => /PA999|^::/.test(l) && !l.startsWith('evil\\n'))).toEqual([]);
    expect(r.stdout).not.toMatch(/[\r\u001b]/);
  });

  it('github: one command line per finding, the name escaped as a property', () => {
    const dir = tempTree('pa-evil-', { [crafted]: SLEEP('x'), 'ok.py': SLEEP('y') });
    const r = run(['scan', dir, '--no-write', '--format', 'github']);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l).toMatch(/^::error file=[^\n]*::/);
    expect(lines[0]).toContain('file=evil%0Aforged.py%3A1%3A1 PA999 forged finding%0D%3A%3Aerror file=x.py%3A%3Aforged\u001b[2J.py,line=5,');
  });

  it('escapeControl shows controls, line separators and bidi overrides, and nothing else', () => {
    expect(escapeControl('a\tb\r\n\u0000\u007f\u0085\u2028\u202e\u2066 é ü ∑')).toBe('a\\tb\\r\\n\\x00\\x7f\\x85\\u2028\\u202e\\u2066 é ü ∑');
    expect(escapeControl('a\r\nb\u001b', true)).toBe('a\r\nb\\x1b');
  });
});
