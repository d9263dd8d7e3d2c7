/**
 * The peer in `npm run bench`: ast-grep's `scan` with five simple rules (bench/astgrep/) over the
 * same tree, with the same default excludes as the walk and as many threads as the audit has
 * workers. ast-grep parses with tree-sitter's C library: the ratio says what the audit costs
 * over a tool that only parses and pattern-matches.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { DEFAULT_EXCLUDES } from '../src/discovery/walk.js';

const require = createRequire(import.meta.url);

export interface PeerRun {
  ms: number;
  /** The child's user + system CPU (bash's `times`), or null where it cannot be read. */
  cpuMs: number | null;
  matches: number;
}

/**
 * The ast-grep binary of the dev dependency, or null when it is not installed or does not run:
 * the platform package's own binary first (the one `@ast-grep/cli`'s install script copies, so
 * it is there even when install scripts are off), then the copy.
 */
export function astGrepBinary(): string | null {
  const exe = process.platform === 'win32' ? 'ast-grep.exe' : 'ast-grep';
  const libc = process.platform === 'linux' ? '-gnu' : process.platform === 'win32' ? '-msvc' : '';
  for (const pkg of [`@ast-grep/cli-${process.platform}-${process.arch}${libc}`, '@ast-grep/cli']) {
    try {
      const bin = path.join(path.dirname(require.resolve(`${pkg}/package.json`)), exe);
      if (fs.existsSync(bin) && /^ast-grep /.test(spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout ?? '')) return bin;
    } catch {
      // not installed for this platform
    }
  }
  return null;
}

/** The rule set's config, next to this file in the source tree (bench/astgrep/sgconfig.yml). */
export function astGrepConfig(): string {
  // Compiled to dist/bench/: the YAML stays in bench/.
  const here = path.dirname(new URL(import.meta.url).pathname);
  for (const dir of [path.join(here, 'astgrep'), path.join(here, '../../bench/astgrep')]) {
    const file = path.join(dir, 'sgconfig.yml');
    if (fs.existsSync(file)) return file;
  }
  throw new Error('bench/astgrep/sgconfig.yml not found');
}

/** One `ast-grep scan` of `root`; the CPU through bash's `times` when bash is there. */
export function runAstGrep(bin: string, root: string, threads: number): PeerRun {
  const args = ['scan', '-c', astGrepConfig(), '--threads', String(threads), '--json=stream'];
  for (const e of DEFAULT_EXCLUDES) args.push('--globs', `!${e}`);
  args.push(root);
  const t0 = performance.now();
  // `times` prints the shell's own CPU, then its children's: the second line is ast-grep's.
  const r = spawnSync('bash', ['-c', '"$0" "$@" | wc -l; times', bin, ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  const ms = performance.now() - t0;
  if (r.error || r.status !== 0) {
    // No bash: run it directly, without the CPU figure.
    const d = spawnSync(bin, args, { encoding: 'utf8', maxBuffer: 1 << 30 });
    if (d.error || (d.status !== 0 && d.status !== 1)) throw new Error(`ast-grep failed: ${d.error?.message ?? d.stderr}`);
    return { ms: performance.now() - t0, cpuMs: null, matches: d.stdout.split('\n').filter(Boolean).length };
  }
  const lines = r.stdout.trim().split('\n');
  const matches = Number(lines[0]);
  const children = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/.exec(lines[2] ?? '');
  const cpuMs = children ? (Number(children[1]) * 60 + Number(children[2]) + Number(children[3]) * 60 + Number(children[4])) * 1000 : null;
  return { ms, cpuMs, matches };
}
