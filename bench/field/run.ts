/**
 * `npm run bench:field -- [options]`: scans the field repositories of `manifest.json` that are on
 * this machine, at their pinned commits, and scores the findings against the committed verdicts
 * (`verdicts.tsv`) and known bugs (`known-bugs.tsv`). Figures only, no assertions.
 *
 * Options:
 *   --dir DIR        where the repositories are, one folder `<owner>+<name>` each
 *                    (default: $PERSIST_AUDIT_FIELD_DIR, else ../field next to this checkout)
 *   --extract DIR    first extract missing repositories from snapshots `DIR/<owner>+<name>/repo`
 *                    (bare git directories, as the search tool's fetch leaves them) at the pinned commit
 *   --repo NAME      only this repository (repeatable)
 *   --sample N       unreviewed findings listed per family (default 10)
 *   --seed N         the order of that list (default 1)
 *   --sheet FILE     write a review sheet of every unreviewed finding, in the seeded order
 *   --json FILE      the figures and every finding, as JSON
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigFile, resolveConfig } from '../../src/config/config.js';
import { scan } from '../../src/engine/scan.js';
import { formatScore, readKnownBugs, readVerdicts, reviewSheet, scoreField, type ScannedRepo } from './score.js';

interface ManifestRepo {
  repo: string;
  commit: string;
  stack: string;
}
interface Manifest {
  repos: ManifestRepo[];
  unavailable: { repo: string; why: string }[];
}

/** Marks an extracted tree with the commit it came from (an archive has no git metadata). */
const MARKER = '.persist-audit-field-commit';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The source folder (`bench/field`), also when run from `dist/bench/field`. */
const sourceDir = fs.existsSync(path.join(here, 'manifest.json')) ? here : path.resolve(here, '../../../bench/field');

interface Args {
  dir: string;
  extract: string | null;
  repos: string[];
  sample: number;
  seed: number;
  sheet: string | null;
  json: string | null;
}

function parseArgs(argv: string[]): Args {
  const checkout = path.resolve(sourceDir, '../..');
  const a: Args = {
    dir: process.env.PERSIST_AUDIT_FIELD_DIR ?? path.resolve(checkout, '../field'),
    extract: null, repos: [], sample: 10, seed: 1, sheet: null, json: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--dir') a.dir = path.resolve(next());
    else if (arg === '--extract') a.extract = path.resolve(next());
    else if (arg === '--repo') a.repos.push(next());
    else if (arg === '--sample') a.sample = Number(next());
    else if (arg === '--seed') a.seed = Number(next());
    else if (arg === '--sheet') a.sheet = path.resolve(next());
    else if (arg === '--json') a.json = path.resolve(next());
    else throw new Error(`unknown option ${arg}`);
  }
  return a;
}

const folderOf = (repo: string) => repo.replace('/', '+');

/** Extracts `repo` at its pinned commit from a bare snapshot; returns a reason when it cannot. */
function extract(mirrors: string, r: ManifestRepo, target: string): string | null {
  const gitDir = path.join(mirrors, folderOf(r.repo), 'repo');
  if (!fs.existsSync(gitDir)) return `no snapshot at ${gitDir}`;
  fs.mkdirSync(target, { recursive: true });
  try {
    const archive = execFileSync('git', ['--git-dir', gitDir, 'archive', r.commit], { maxBuffer: 1 << 30 });
    execFileSync('tar', ['-x', '-C', target], { input: archive, maxBuffer: 1 << 30 });
  } catch (err) {
    fs.rmSync(target, { recursive: true, force: true });
    return `git archive ${r.commit.slice(0, 12)} failed: ${(err as Error).message.split('\n')[0]}`;
  }
  fs.writeFileSync(path.join(target, MARKER), `${r.commit}\n`);
  return null;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const manifest = JSON.parse(fs.readFileSync(path.join(sourceDir, 'manifest.json'), 'utf8')) as Manifest;
  const verdicts = readVerdicts(path.join(sourceDir, 'verdicts.tsv'));
  const bugs = readKnownBugs(path.join(sourceDir, 'known-bugs.tsv'));
  const wanted = manifest.repos.filter((r) => args.repos.length === 0 || args.repos.includes(r.repo));

  const scanned: ScannedRepo[] = [];
  const missing: string[] = [];
  for (const r of wanted) {
    const dir = path.join(args.dir, folderOf(r.repo));
    if (!fs.existsSync(dir) && args.extract) {
      const why = extract(args.extract, r, dir);
      if (why) {
        missing.push(`${r.repo}: ${why}`);
        continue;
      }
    }
    if (!fs.existsSync(dir)) {
      missing.push(`${r.repo}: not at ${dir}`);
      continue;
    }
    const marker = path.join(dir, MARKER);
    const at = fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8').trim() : null;
    if (at !== null && at !== r.commit) {
      missing.push(`${r.repo}: ${dir} holds ${at.slice(0, 12)}, the manifest pins ${r.commit.slice(0, 12)}`);
      continue;
    }
    if (at === null) process.stderr.write(`bench:field: ${dir} has no ${MARKER}; assuming it is ${r.commit.slice(0, 12)}\n`);
    const { config: fileConfig, file } = loadConfigFile(dir);
    const config = resolveConfig({ report: null, log: null, cache: false, failOn: 'never', quiet: true }, fileConfig, file);
    const t0 = performance.now();
    const out = await scan(dir, config, { notice: (m) => process.stderr.write(`bench:field: ${r.repo}: ${m}\n`) });
    process.stderr.write(`bench:field: ${r.repo}: ${out.result.findings.length} findings in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    scanned.push({ repo: r.repo, commit: r.commit, lines: out.result.stats.lines, findings: out.result.findings });
  }

  const score = scoreField(scanned, verdicts, bugs, args.seed);
  const lines = [formatScore(score, args.sample)];
  if (missing.length || manifest.unavailable.length) {
    lines.push('', 'Not scanned:');
    for (const m of missing) lines.push(`  ${m}`);
    for (const u of manifest.unavailable) if (args.repos.length === 0 || args.repos.includes(u.repo)) lines.push(`  ${u.repo}: ${u.why}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  if (args.sheet) fs.writeFileSync(args.sheet, reviewSheet(score.unreviewed, new Map(scanned.map((r) => [r.repo, r.commit]))));
  if (args.json) {
    const json = {
      ...score,
      rules: Object.fromEntries(score.rules),
      findings: scanned.flatMap((r) => r.findings.map((f) => ({ repo: r.repo, ...f }))),
      missing,
    };
    fs.writeFileSync(args.json, JSON.stringify(json, null, 2) + '\n');
  }
}

main().catch((err) => {
  process.stderr.write(`bench:field: ${(err as Error).message}\n`);
  process.exit(2);
});
