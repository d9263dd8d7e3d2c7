/**
 * `npm run bench -- [PATH] [options]`: the cost of a full audit against its floors, in one run
 * (machines are noisy: only figures from the same run compare).
 *
 *   (a) read   — read + UTF-8 decode + line count, through the pool
 *   (b) parse  — (a) + one tree-sitter parse per file, through the same pool and thread count
 *   (w) walk   — (b) + fetching the semantic model's nodes from each tree (one batch call): the
 *                floor of any analysis that reads the tree through the binding
 *   (c) full   — `scan()` with report, log and cache off (+ rendering the text, JSON and
 *                markdown outputs, timed apart)
 *   (g) ast-grep — the peer: `ast-grep scan` with five simple rules (bench/astgrep/), same tree,
 *                same excludes, as many threads as jobs (skipped when the dev dependency is missing)
 * then 1 vs 2 workers (parse and full), and a cold vs warm cached scan (cache in a temp dir).
 * On Linux, each measure's CPU is also split by thread (main, workers, V8's and libuv's helper
 * threads; see threads.ts): where the second worker's extra CPU goes.
 *
 * Options: --repeat N (medians; default 3) · --jobs N (default: cores) · --parser auto|native|wasm
 *   · --no-workers (skip 1 vs 2) · --no-cache-run (skip cold/warm) · --only read,parse,walk,full,astgrep
 *   · --save-timings FILE (per-rule and per-stage times of the median full run, JSON)
 *   · --compare A.json B.json (compare two saved timings and exit) · --json FILE (all figures)
 *   · --no-jit-tuning (V8's default inlining budget instead of the one `persist-audit scan` sets,
 *     see src/engine/jit.ts)
 * Figures only, no assertions. `npm run bench` passes `--expose-gc`, so every measure starts from a
 * collected heap (a warm scan right after a cold one in the same process would otherwise pay for
 * the cold one's garbage, which a real warm run, in a process of its own, never sees).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig, type AuditConfig } from '../src/config/config.js';
import { emptyContext } from '../src/discovery/context.js';
import { walk, type SourceFile } from '../src/discovery/walk.js';
import { scan, type ScanOutput } from '../src/engine/scan.js';
import { runPool } from '../src/pool/pool.js';
import type { TaskMode } from '../src/pool/protocol.js';
import { renderFormat } from '../src/report/index.js';
import { renderMarkdown } from '../src/report/markdown.js';
import { timingsJson, type TimingsJson } from '../src/cli/timings.js';
import type { ParserPreference } from '../src/parse/parser.js';
import { stdlibRoot } from './stdlib.js';
import { median } from './stats.js';
import { splitCpu, threadCpu, type CpuSplit } from './threads.js';
import { tuneJit } from '../src/engine/jit.js';
import { astGrepBinary, runAstGrep, type PeerRun } from './astgrep.js';

interface Args {
  root: string;
  repeat: number;
  jobs: number;
  parser: ParserPreference;
  workers: boolean;
  cacheRun: boolean;
  only: Set<string>;
  saveTimings: string | null;
  compare: [string, string] | null;
  json: string | null;
  jitTuning: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    root: '', repeat: 3, jobs: os.availableParallelism(), parser: 'auto', workers: true, cacheRun: true,
    only: new Set(['read', 'parse', 'walk', 'full', 'astgrep']), saveTimings: null, compare: null, json: null, jitTuning: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--repeat') a.repeat = Math.max(1, Number(next()));
    else if (arg === '--jobs') a.jobs = Math.max(1, Number(next()));
    else if (arg === '--parser') a.parser = next() as ParserPreference;
    else if (arg === '--no-workers') a.workers = false;
    else if (arg === '--no-cache-run') a.cacheRun = false;
    else if (arg === '--no-jit-tuning') a.jitTuning = false;
    else if (arg === '--only') a.only = new Set(next().split(','));
    else if (arg === '--save-timings') a.saveTimings = next();
    else if (arg === '--json') a.json = next();
    else if (arg === '--compare') a.compare = [next(), next()];
    else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}`);
    else a.root = arg;
  }
  if (!a.root && !a.compare) {
    a.root = stdlibRoot();
  }
  return a;
}

/** Peak RSS of the whole process (worker threads included), sampled every 50 ms. */
class RssSampler {
  private peak = 0;
  private timer: NodeJS.Timeout | null = null;
  start(): void {
    this.peak = process.memoryUsage.rss();
    this.timer = setInterval(() => this.sample(), 50);
  }
  sample(): void {
    const rss = process.memoryUsage.rss();
    if (rss > this.peak) this.peak = rss;
  }
  stop(): number {
    this.sample();
    if (this.timer) clearInterval(this.timer);
    return this.peak;
  }
}

interface Measure {
  ms: number;
  /** CPU time of the whole process (main thread, workers, GC and compiler threads). */
  cpuMs: number;
  /** {@link cpuMs} by thread, where `/proc` tells (Linux). */
  split: CpuSplit | null;
  rss: number;
  files: number;
  lines: number;
  bytes: number;
}

interface FullMeasure extends Measure {
  out: ScanOutput;
  renderMs: number;
}

async function floor(files: SourceFile[], root: string, mode: TaskMode, jobs: number, parser: ParserPreference): Promise<Measure> {
  global.gc?.();
  const sampler = new RssSampler();
  sampler.start();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const th0 = threadCpu();
  // Always the workers (even for a tree small enough to run on the main thread): the floors and
  // the 1-vs-2-worker figures are about the pool.
  const { outcomes } = await runPool(files, { jobs, mode, setup: { context: emptyContext(root), rootDir: root, parser, codes: [] }, inProcessBytes: 0 });
  const ms = performance.now() - t0;
  const cpuMs = cpuSince(c0);
  const split = cpuSplit(th0, cpuMs);
  const rss = sampler.stop();
  let lines = 0;
  let bytes = 0;
  for (const o of outcomes) {
    lines += o.lines;
    bytes += o.bytes;
  }
  return { ms, cpuMs, split, rss, files: outcomes.length, lines, bytes };
}

function config(jobs: number, parser: ParserPreference, cache: boolean): AuditConfig {
  return resolveConfig({ report: null, log: null, cache, jobs, parser, timings: true, quiet: true, failOn: 'never' }, {}, null);
}

async function full(root: string, jobs: number, parser: ParserPreference, cache = false, cacheDir?: string): Promise<FullMeasure> {
  global.gc?.();
  const sampler = new RssSampler();
  sampler.start();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const th0 = threadCpu();
  const out = await scan(root, config(jobs, parser, cache), { cacheDir, inProcessBytes: 0, notice: (m) => process.stderr.write(`bench: ${m}\n`) });
  const tr = performance.now();
  renderFormat(out.result, 'text', { color: false });
  renderFormat(out.result, 'json', { color: false });
  renderMarkdown(out.result);
  const t1 = performance.now();
  const cpuMs = cpuSince(c0);
  const split = cpuSplit(th0, cpuMs);
  const rss = sampler.stop();
  const s = out.result.stats;
  return { ms: t1 - t0, cpuMs, split, rss, files: s.files, lines: s.lines, bytes: s.bytes, out, renderMs: t1 - tr };
}

function cpuSplit(before: ReturnType<typeof threadCpu>, cpuMs: number): CpuSplit | null {
  const after = before && threadCpu();
  return before && after ? splitCpu(before, after, cpuMs) : null;
}

/** The median split of the runs that have one (each part's own median), or null. */
function medianSplit(runs: Measure[]): CpuSplit | null {
  const splits = runs.map((r) => r.split).filter((x): x is CpuSplit => x !== null);
  if (!splits.length) return null;
  const m = (k: keyof CpuSplit) => Math.round(median(splits.map((x) => x[k])));
  return { mainMs: m('mainMs'), workersMs: m('workersMs'), helpersMs: m('helpersMs') };
}

function splitText(runs: Measure[]): string | null {
  const m = medianSplit(runs);
  return m && `main ${sec(m.mainMs)} · workers ${sec(m.workersMs)} · helpers ${sec(m.helpersMs)}`;
}

function cpuSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

const mb = (bytes: number) => bytes / (1024 * 1024);
const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const pad = (s: string, n: number) => s.padStart(n);

function compareTimings(aFile: string, bFile: string): void {
  const a = JSON.parse(fs.readFileSync(aFile, 'utf8')) as TimingsJson;
  const b = JSON.parse(fs.readFileSync(bFile, 'utf8')) as TimingsJson;
  const rows = (title: string, x: Record<string, number>, y: Record<string, number>) => {
    const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])].sort((k1, k2) => (y[k2] ?? 0) - (y[k1] ?? 0));
    console.log(`${title.padEnd(22)} ${pad('A (ms)', 10)} ${pad('B (ms)', 10)} ${pad('B/A', 8)}`);
    for (const k of keys) {
      const va = x[k] ?? 0;
      const vb = y[k] ?? 0;
      console.log(`${k.padEnd(22)} ${pad(va.toFixed(1), 10)} ${pad(vb.toFixed(1), 10)} ${pad(va ? (vb / va).toFixed(2) + '×' : '—', 8)}`);
    }
    console.log('');
  };
  console.log(`A: ${aFile} (${a.files} files, ${a.parser})\nB: ${bFile} (${b.files} files, ${b.parser})\n`);
  rows('Phase', a.phases, b.phases);
  rows('Per-file stage', a.stages, b.stages);
  rows('Rule', a.rules, b.rules);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.compare) {
    compareTimings(...args.compare);
    return;
  }
  // What `persist-audit scan` runs under (before any code here is optimised).
  const jit = args.jitTuning && tuneJit();
  const root = path.resolve(args.root);
  const walked = walk(root);
  const files = walked.python;
  console.log(`persist-audit bench: ${root}`);
  console.log(`${files.length} Python files · jobs ${args.jobs} · parser ${args.parser} · repeat ${args.repeat} · node ${process.version} · V8 inlining ${jit ? 'tuned' : 'default'} · ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(2)}\n`);

  const reads: Measure[] = [];
  const parses: Measure[] = [];
  const walks: Measure[] = [];
  const fulls: FullMeasure[] = [];
  const peers: PeerRun[] = [];
  const astGrep = args.only.has('astgrep') ? astGrepBinary() : null;
  if (args.only.has('astgrep') && !astGrep) console.log('ast-grep: @ast-grep/cli is not installed (npm ci installs it): the peer is skipped\n');
  for (let r = 0; r < args.repeat; r++) {
    if (args.only.has('read')) reads.push(await floor(files, root, 'read', args.jobs, args.parser));
    if (args.only.has('parse')) parses.push(await floor(files, root, 'parse', args.jobs, args.parser));
    if (args.only.has('walk')) walks.push(await floor(files, root, 'walk', args.jobs, args.parser));
    if (args.only.has('full')) fulls.push(await full(root, args.jobs, args.parser));
    if (astGrep) peers.push(runAstGrep(astGrep, root, args.jobs));
    process.stderr.write(`  round ${r + 1}/${args.repeat} done\n`);
  }
  const ref = reads[0] ?? parses[0] ?? fulls[0];
  const figures: Record<string, unknown> = { root, files: files.length, jobs: args.jobs, parser: args.parser, repeat: args.repeat, jitTuned: jit };
  if (ref) {
    console.log(`files ${ref.files} · lines ${ref.lines.toLocaleString('en-US')} · ${mb(ref.bytes).toFixed(1)} MB\n`);
    Object.assign(figures, { lines: ref.lines, bytes: ref.bytes });
  }
  console.log(`${'Measure'.padEnd(18)} ${pad('wall (median)', 14)} ${pad('min', 9)} ${pad('max', 9)} ${pad('MB/s', 7)} ${pad('peak RSS', 9)} ${pad('CPU', 9)} ${pad('cores', 6)}`);
  const row = (name: string, runs: Measure[]) => {
    const ms = runs.map((x) => x.ms);
    const m = median(ms);
    const cpu = median(runs.map((x) => x.cpuMs));
    const rss = Math.max(...runs.map((x) => x.rss));
    console.log(`${name.padEnd(18)} ${pad(sec(m), 14)} ${pad(sec(Math.min(...ms)), 9)} ${pad(sec(Math.max(...ms)), 9)} ${pad((mb(runs[0]!.bytes) / (m / 1000)).toFixed(1), 7)} ${pad(mb(rss).toFixed(0) + ' MB', 9)} ${pad(sec(cpu), 9)} ${pad((cpu / m).toFixed(2), 6)}`);
    figures[name] = { medianMs: Math.round(m), runs: ms.map(Math.round), cpuMs: Math.round(cpu), cpuByThread: medianSplit(runs), peakRssMb: Math.round(mb(rss)) };
  };
  if (reads.length) row('(a) read', reads);
  if (parses.length) row('(b) parse', parses);
  if (walks.length) row('(w) parse+walk', walks);
  if (fulls.length) row('(c) full', fulls);
  console.log('(CPU: the whole process, workers and GC threads included; cores = CPU / wall)');
  const splits: [string, Measure[]][] = [['(b) parse', parses], ['(w) parse+walk', walks], ['(c) full', fulls]];
  if (splits.some(([, runs]) => runs.length && splitText(runs))) {
    console.log("CPU by thread (helpers: V8's compiler and GC threads, which serve the workers' isolates too, and libuv's pool)");
    for (const [name, runs] of splits) {
      const text = runs.length ? splitText(runs) : null;
      if (text) console.log(`  ${name.padEnd(16)} ${text}`);
    }
  }
  if (parses.length && fulls.length) {
    const ratio = median(fulls.map((x) => x.ms)) / median(parses.map((x) => x.ms));
    console.log(`\nfull / parse = ${ratio.toFixed(2)}×   (target ≤ 1.30×)`);
    figures.fullOverParse = Number(ratio.toFixed(3));
  }
  if (peers.length) {
    const ms = peers.map((x) => x.ms);
    const m = median(ms);
    const cpus = peers.map((x) => x.cpuMs).filter((x): x is number => x !== null);
    const cpu = cpus.length ? median(cpus) : null;
    console.log(`${'(g) ast-grep'.padEnd(18)} ${pad(sec(m), 14)} ${pad(sec(Math.min(...ms)), 9)} ${pad(sec(Math.max(...ms)), 9)} ${pad(ref ? (mb(ref.bytes) / (m / 1000)).toFixed(1) : '—', 7)} ${pad('—', 9)} ${pad(cpu === null ? '—' : sec(cpu), 9)} ${pad(cpu === null ? '—' : (cpu / m).toFixed(2), 6)}`);
    console.log(`    5 rules (bench/astgrep), ${peers[0]!.matches} matches; ast-grep's CPU is its process's, from bash's \`times\``);
    figures.astGrep = { medianMs: Math.round(m), runs: ms.map(Math.round), cpuMs: cpu === null ? null : Math.round(cpu), matches: peers[0]!.matches };
    if (fulls.length) {
      const ratio = median(fulls.map((x) => x.ms)) / m;
      console.log(`full / ast-grep = ${ratio.toFixed(2)}×   (target ≤ 2.00×)`);
      figures.fullOverAstGrep = Number(ratio.toFixed(3));
    }
  }
  if (parses.length && walks.length) {
    const ratio = median(walks.map((x) => x.ms)) / median(parses.map((x) => x.ms));
    console.log(`walk / parse = ${ratio.toFixed(2)}×   (the model's node batch alone, before any analysis)`);
    figures.walkOverParse = Number(ratio.toFixed(3));
  }

  if (fulls.length) {
    const ph = (k: (o: ScanOutput) => number) => median(fulls.map((f) => k(f.out)));
    const phases: [string, number][] = [
      ['discovery', ph((o) => o.timings.discoveryMs)],
      ['per-file (pool)', ph((o) => o.timings.perFileMs)],
      ['repo phase', ph((o) => o.timings.repoMs)],
      ['merge', ph((o) => o.timings.mergeMs)],
      ['render', median(fulls.map((f) => f.renderMs))],
    ];
    console.log('\nFull audit, per phase (median ms)');
    for (const [name, ms] of phases) console.log(`  ${name.padEnd(18)} ${pad(ms.toFixed(1), 9)}`);
    figures.phases = Object.fromEntries(phases.map(([k, v]) => [k, Math.round(v)]));
    const stageKeys = Object.keys(fulls[0]!.out.timings.stageMs) as (keyof ScanOutput['timings']['stageMs'])[];
    console.log('Per-file stages, summed over workers (median ms)');
    for (const k of stageKeys) console.log(`  ${k.padEnd(18)} ${pad(median(fulls.map((f) => f.out.timings.stageMs[k])).toFixed(1), 9)}`);
    const rules = Object.keys(fulls[0]!.out.timings.ruleMs).sort();
    console.log('Rules, summed over workers (median ms)');
    for (const code of rules) console.log(`  ${code.padEnd(18)} ${pad(median(fulls.map((f) => f.out.timings.ruleMs[code] ?? 0)).toFixed(1), 9)}`);
    console.log(`parser used: ${fulls[0]!.out.parser} · findings ${fulls[0]!.out.result.findings.length}`);
    if (args.saveTimings) {
      const mid = [...fulls].sort((x, y) => x.ms - y.ms)[fulls.length >> 1]!;
      fs.writeFileSync(args.saveTimings, JSON.stringify(timingsJson(mid.out), null, 2) + '\n');
      console.log(`timings saved to ${args.saveTimings} (compare: npm run bench -- --compare A.json B.json)`);
    }
  }

  if (args.workers) {
    console.log('\n1 vs 2 workers (medians)');
    const one: { parse: Measure[]; full: Measure[] } = { parse: [], full: [] };
    const two: { parse: Measure[]; full: Measure[] } = { parse: [], full: [] };
    for (let r = 0; r < args.repeat; r++) {
      if (args.only.has('parse')) {
        one.parse.push(await floor(files, root, 'parse', 1, args.parser));
        two.parse.push(await floor(files, root, 'parse', 2, args.parser));
      }
      if (args.only.has('full')) {
        one.full.push(await full(root, 1, args.parser));
        two.full.push(await full(root, 2, args.parser));
      }
    }
    const w: Record<string, unknown> = {};
    const cores = os.cpus().length;
    for (const k of ['parse', 'full'] as const) {
      if (!one[k].length) continue;
      const a = median(one[k].map((x) => x.ms));
      const b = median(two[k].map((x) => x.ms));
      const ca = median(one[k].map((x) => x.cpuMs));
      const cb = median(two[k].map((x) => x.cpuMs));
      // A 1-worker run already keeps other threads busy (the main thread, V8's GC and compiler
      // threads); with `cores` cores its CPU time cannot finish faster than CPU / cores.
      const ceiling = Math.min(2, cores) * (a / ca);
      console.log(`  ${k.padEnd(6)} 1 worker ${pad(sec(a), 9)}   2 workers ${pad(sec(b), 9)}   speed-up ${(a / b).toFixed(2)}×   (target ≥ 1.70×)`);
      console.log(`  ${''.padEnd(6)} cores used ${(ca / a).toFixed(2)} → ${(cb / b).toFixed(2)} · CPU ${sec(ca)} → ${sec(cb)} (${((cb / ca - 1) * 100).toFixed(0)} %) · ceiling on ${Math.min(2, cores)} cores without contention ${ceiling.toFixed(2)}×`);
      const sa = splitText(one[k]);
      const sb = splitText(two[k]);
      if (sa && sb) console.log(`  ${''.padEnd(6)} by thread, 1 worker: ${sa}\n  ${''.padEnd(6)} by thread, 2 workers: ${sb}`);
      w[k] = { oneMs: Math.round(a), twoMs: Math.round(b), speedup: Number((a / b).toFixed(3)), oneCpuMs: Math.round(ca), twoCpuMs: Math.round(cb), oneByThread: medianSplit(one[k]), twoByThread: medianSplit(two[k]), ceiling: Number(ceiling.toFixed(3)) };
    }
    figures.workers = w;
  }

  if (args.cacheRun) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'persist-audit-bench-cache-'));
    try {
      const cold = await full(root, args.jobs, args.parser, true, dir);
      const warms: FullMeasure[] = [];
      for (let r = 0; r < args.repeat; r++) warms.push(await full(root, args.jobs, args.parser, true, dir));
      const w = median(warms.map((x) => x.ms));
      const packMb = mb(fs.statSync(path.join(dir, 'pack-v1.bin')).size);
      const c = warms[0]!.out.cache!;
      console.log(`\nIncremental cache: cold ${sec(cold.ms)} · warm ${sec(w)} (median of ${warms.length}) = ${((w / cold.ms) * 100).toFixed(1)} % of cold   (target ≤ 5 %)`);
      console.log(`  warm: ${c.hits} hits (${c.hashed} hashed), ${c.misses} analysed, context ${c.contextHit ? 'cached' : 'rediscovered'}, pack ${packMb.toFixed(1)} MB, peak RSS ${mb(Math.max(...warms.map((x) => x.rss))).toFixed(0)} MB`);
      const wp = warms[0]!.out.timings;
      console.log(`  warm phases: discovery ${wp.discoveryMs.toFixed(0)} ms · per-file ${wp.perFileMs.toFixed(0)} ms · repo ${wp.repoMs.toFixed(0)} ms · merge ${wp.mergeMs.toFixed(0)} ms · cache I/O ${wp.cacheMs.toFixed(0)} ms · render ${warms[0]!.renderMs.toFixed(0)} ms`);
      figures.cache = { coldMs: Math.round(cold.ms), warmMs: Math.round(w), percent: Number(((w / cold.ms) * 100).toFixed(2)), packMb: Number(packMb.toFixed(1)) };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const maxRss = process.resourceUsage().maxRSS * 1024;
  console.log(`\nprocess max RSS over the whole bench: ${mb(maxRss).toFixed(0)} MB`);
  figures.processMaxRssMb = Math.round(mb(maxRss));
  if (args.json) fs.writeFileSync(args.json, JSON.stringify(figures, null, 2) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(2);
});
