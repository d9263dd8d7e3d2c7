/**
 * `node dist/bench/ab.js OTHER [PATH] [--rounds N]`: this build against another one (OTHER: a
 * directory holding a built checkout, e.g. `git worktree add /tmp/base <rev> && (cd /tmp/base &&
 * npm ci)`), in ONE process, single thread, per-file analysis only (read, parse, model, rules,
 * summary) over the same files with the same parser.
 *
 * The passes alternate (other then this, this then other, …) and the medians are printed: on a shared
 * machine whose speed drifts by ±25 % within a minute, two separate runs do not compare, but
 * alternating passes see the same drift. Each build discovers its own project context first
 * (not timed). Figures only, no assertions; the findings count of each build is printed so a
 * speed-up that changed the results shows.
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stdlibRoot } from './stdlib.js';
import { median } from './stats.js';

interface Stages {
  read: number;
  parse: number;
  model: number;
  /** 0 for a build from before the classification had its own stage (its rules include it). */
  classify: number;
  rules: number;
  summary: number;
}

interface Pass {
  ms: number;
  stages: Stages;
  findings: number;
}

interface Build {
  label: string;
  run(): Pass;
}

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: node dist/bench/ab.js OTHER_BUILD_DIR [PATH] [--rounds N]\n`);
  process.exit(2);
}

async function loadBuild(dist: string, label: string, root: string): Promise<Build> {
  const load = (rel: string) => import(pathToFileURL(path.join(dist, rel)).href);
  const { createParser } = await load('src/parse/parser.js');
  const { analyzeFile } = await load('src/engine/analyzeFile.js');
  const { ALL_RULES } = await load('src/rules/registry.js');
  const { isFileRule } = await load('src/rules/types.js');
  const { walk } = await load('src/discovery/walk.js');
  const { discoverContext } = await load('src/discovery/discover.js');
  const { repoModuleNames } = await load('src/analysis/summary.js');
  const parser = await createParser('wasm');
  const walked = walk(root) as { python: { rel: string; abs: string }[]; others: string[] };
  const context = await discoverContext(root, [...walked.python.map((f) => f.rel), ...walked.others], parser);
  const rules = (ALL_RULES as unknown[]).filter(isFileRule);
  const repoModules = new Set(repoModuleNames(walked.python.map((f) => f.rel)));
  return {
    label,
    run(): Pass {
      const stages: Stages = { read: 0, parse: 0, model: 0, classify: 0, rules: 0, summary: 0 };
      let findings = 0;
      const t = performance.now();
      for (const f of walked.python) {
        const out = analyzeFile(f.rel, f.abs, parser, rules, context, { timings: true, repoModules });
        findings += out.findings?.length ?? 0;
        for (const k of Object.keys(stages) as (keyof Stages)[]) stages[k] += out.stageMs?.[k] ?? 0;
      }
      return { ms: performance.now() - t, stages, findings };
    },
  };
}


async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let rounds = 3;
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--rounds') rounds = Math.max(1, Number(args[++i]));
    else positional.push(args[i]!);
  }
  const other = positional[0];
  if (!other) usage('missing OTHER_BUILD_DIR');
  const otherDist = path.join(path.resolve(other), 'dist');
  const thisDist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const root = path.resolve(positional[1] ?? stdlibRoot());
  let builds: Build[];
  try {
    builds = [await loadBuild(otherDist, `other (${other})`, root), await loadBuild(thisDist, 'this build', root)];
  } catch (err) {
    usage(`cannot load a build: ${(err as Error).message}`);
  }
  console.log(`A/B over ${root} · ${rounds} rounds, alternating · single thread, per-file analysis only\n`);
  const passes: Pass[][] = builds.map(() => []);
  for (let r = 0; r < rounds; r++) {
    // Each build goes first every other round: the first pass of a round is not always the same one's.
    const order = r % 2 === 0 ? [0, 1] : [1, 0];
    for (const b of order) passes[b]!.push(builds[b]!.run());
    process.stderr.write(`  round ${r + 1}/${rounds} done\n`);
  }
  const header = ['build', 'total', 'parse', 'model', 'classify', 'rules', 'summary', 'non-parse / parse', 'findings'];
  console.log(header.map((h, i) => (i === 0 ? h.padEnd(28) : h.padStart(i === 7 ? 18 : 9))).join(''));
  for (let b = 0; b < builds.length; b++) {
    const ps = passes[b]!;
    const s = (k: keyof Stages) => `${(median(ps.map((p) => p.stages[k])) / 1000).toFixed(2)} s`;
    const cells = [
      builds[b]!.label.padEnd(28),
      `${(median(ps.map((p) => p.ms)) / 1000).toFixed(2)} s`.padStart(9),
      s('parse').padStart(9),
      s('model').padStart(9),
      s('classify').padStart(9),
      s('rules').padStart(9),
      s('summary').padStart(9),
      `${median(ps.map((p) => (p.ms - p.stages.parse) / p.stages.parse)).toFixed(2)}×`.padStart(18),
      String(ps[0]!.findings).padStart(9),
    ];
    console.log(cells.join(''));
  }
  const [a, b] = passes.map((ps) => median(ps.map((p) => p.ms)));
  console.log(`\nthis build / other = ${(b! / a!).toFixed(3)} (total time, medians of alternating passes)`);
}

await main();
