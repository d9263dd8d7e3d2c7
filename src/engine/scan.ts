/**
 * The engine: walk → context → per-file phase in the pool → repo phase → merge. It knows
 * nothing of yargs or of output formats; it returns a ScanResult.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import ignoreFactory from 'ignore';
import type { AuditConfig } from '../config/config.js';
import { walk, type WalkResult } from '../discovery/walk.js';
import { AuditPool, unpackOutcome } from '../pool/pool.js';
import { createParser } from '../parse/parser.js';
import { finishDiscovery, planDiscovery } from '../discovery/discover.js';
import type { FileOutcome, RawFinding, StageMs } from '../pool/protocol.js';
import { ScanCache, type CacheStats, type RepoResult } from '../cache/cache.js';
import { selectRules } from '../rules/registry.js';
import { isFileRule, isRepoRule, type RuleMeta } from '../rules/types.js';
import { importRootsOf } from '../semantic/importRoots.js';
import { repoModuleNames, type FileSummary, type RepoIndex } from '../analysis/summary.js';
import { runRepoPhase, withLineTexts } from './repoPhase.js';
import type { ProjectContext } from '../discovery/context.js';
import { assignOccurrenceSuffixes, compareFindings, fingerprint, scoreFindings } from '../merge/score.js';
import { validateFinding } from '../merge/validate.js';
import { groupSharedSinks } from '../merge/sharedSinks.js';
import { perUnitEngines } from '../merge/perUnitEngines.js';
import { dropSameDefects, type SameDefect } from '../merge/sameDefect.js';
import { SEVERITIES, type Family, type Finding, type ScanStats, type SinkRef } from '../types.js';
import type { ScanResult } from './result.js';
import { TOOL_VERSION } from '../version.js';
import { loadBaseline } from './baseline.js';

export class ScanError extends Error {}

export interface ScanHooks {
  /** One-line notices for stderr (parser fallback, …). */
  notice?: (message: string) => void;
  /** Files done of the files in the current pass: `facts` (the project context) or `audit`. */
  progress?: (doneFiles: number, totalFiles: number, pass: 'facts' | 'audit') => void;
  /** The phase the scan enters: `discovery`, `audit`, `call graph`, `merge`. */
  phase?: (name: ScanPhase) => void;
  /** Receives the repo index (every file's summary) once it is built: debugging tools, tests. */
  index?: (index: RepoIndex) => void;
  /** Where the incremental cache lives instead of `<root>/.persist-audit-cache` (bench, tests). */
  cacheDir?: string;
  /** Passes over at most this many bytes run on the main thread (see `AuditPool`; 0: always the workers). Bench, tests. */
  inProcessBytes?: number;
  /**
   * Root-relative paths (`/`-separated files or directories) to report on. The whole root is
   * still read, for the context and the call graph; findings and the file counts in `stats` come
   * from these paths only. Absent: the whole tree.
   */
  scope?: string[];
  /** How the outputs name the root (default: `rootArg` as given). */
  display?: string;
}

export type ScanPhase = 'discovery' | 'audit' | 'call graph' | 'merge';

export interface PhaseTimings {
  discoveryMs: number;
  perFileMs: number;
  repoMs: number;
  mergeMs: number;
  /** Cache load, lookup and save (included in the phases above: discovery and per-file). */
  cacheMs: number;
  /** Per rule: summed time over all files and workers, ms. */
  ruleMs: Record<string, number>;
  /** Per-file stages summed over the analysed (not cached) files and workers, ms. */
  stageMs: StageMs;
}

export interface ScanOutput {
  result: ScanResult;
  timings: PhaseTimings;
  parser: string;
  /** Null when the cache is off. */
  cache: CacheStats | null;
  /** Passes over Python files (discovery facts, audit) run on the main thread and in the workers. */
  passes: { mainThread: number; workers: number };
}

type Ignore = ReturnType<typeof ignoreFactory>;
const createIgnore = ignoreFactory as unknown as () => Ignore;
/** Claims made per item of a loop: a loop over a handful of constants runs them a handful of times. */
const PER_ITEM_CODES: ReadonlySet<string> = new Set(['PA102', 'PA105', 'PA107', 'PA108', 'PA207']);

/**
 * The files a scan writes inside the tree (report, trend log, `--output`, `--write-baseline`),
 * relative to the root: the report and log paths are relative to the root, the others to the
 * working directory, as the CLI writes them.
 */
export function ownOutputs(rootPath: string, config: Pick<AuditConfig, 'report' | 'log' | 'output' | 'writeBaseline'>): Set<string> {
  const out = new Set<string>();
  const add = (abs: string) => {
    const rel = path.relative(rootPath, abs);
    if (rel && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel)) out.add(rel.split(path.sep).join('/'));
  };
  if (config.report) add(path.resolve(rootPath, config.report));
  if (config.log) add(path.resolve(rootPath, config.log));
  if (config.output) add(path.resolve(config.output));
  if (config.writeBaseline) add(path.resolve(config.writeBaseline));
  return out;
}

export async function scan(rootArg: string, config: AuditConfig, hooks: ScanHooks = {}): Promise<ScanOutput> {
  const t0 = performance.now();
  hooks.phase?.('discovery');
  const rootPath = resolveRoot(rootArg);
  const rules = selectRules(config.select, config.ignore);
  const fileRuleCodes = rules.filter(isFileRule).map((r) => r.meta.code);
  const metaByCode = new Map<string, RuleMeta>(rules.map((r) => [r.meta.code, r.meta]));

  // 1. Discover: the walk and the manifests on the main thread, the Python facts in the pool.
  // The context comes from the cache when no walked file changed.
  const walked = walk(rootPath, { exclude: config.exclude, maxFileBytes: config.maxFileSize });
  if (hooks.scope) excludedTargets(hooks.scope, walked, hooks.notice);
  // The scan's own outputs are rewritten on every run: as inputs they would make every context
  // look changed (the trend log grows each time) and a warm rescan would rediscover it.
  const outputs = ownOutputs(rootPath, config);
  if (outputs.size) walked.others = walked.others.filter((f) => !outputs.has(f));
  let cacheMs = 0;
  const tc = performance.now();
  const cache = config.cache ? ScanCache.open(rootPath, hooks.notice, hooks.cacheDir) : null;
  // Where each file's absolute imports start, when the tree holds several projects.
  const importRoots = importRootsOf(walked.python.map((f) => f.rel));
  cache?.setLayout(JSON.stringify(importRoots));
  let context = cache?.cachedContext(walked.python, walked.others) ?? null;
  cacheMs += performance.now() - tc;
  const pool = new AuditPool({
    jobs: config.jobs,
    // Probing the parser once here gives one fallback notice, and the workers a binding that loads.
    setup: async () => ({
      rootDir: rootPath,
      parser: (await createParser(config.parser, hooks.notice)).kind,
      codes: fileRuleCodes,
      repoModules: repoModuleNames(walked.python.map((f) => f.rel)),
      importRoots: importRoots.tables.length ? importRoots : undefined,
      timings: config.timings,
      hashContent: cache !== null,
    }),
    onBatchDone: hooks.progress,
    summaries: 'bytes',
    inProcessBytes: hooks.inProcessBytes,
  });
  try {
    // Only Python files changed: read their facts again, and keep the context if they are the same.
    const quick = !context && cache ? cache.quickContext(walked.python) : null;
    if (quick) {
      if (quick.files.length) pool.warm(quick.files);
      const pass = quick.files.length ? await pool.facts(quick.files, quick.migration) : { results: [], read: [] };
      context = cache!.keepContext(pass.results, pass.read);
    }
    if (!context) {
      // Manifests on the main thread while the workers start (warming twice is a no-op); the
      // Python facts in the workers, in parallel.
      if (!cache) pool.warm(walked.python);
      const plan = planDiscovery(rootPath, [...walked.python.map((f) => f.rel), ...walked.others]);
      // Files that did not change keep the facts the cache recorded for them: only the rest is read again.
      const known = cache ? cache.cachedFacts(walked.python, plan.isMigration) : { reused: [], missing: walked.python };
      // With a cache, the workers start only now, and only as many as the files to read again can use.
      if (known.missing.length) pool.warm(known.missing);
      const pass = known.missing.length ? await pool.facts(known.missing, plan.isMigration) : { results: [], read: [] };
      cache?.storeFacts(pass.results, pass.read, plan.isMigration);
      context = await finishDiscovery(plan, [...known.reused, ...pass.results]);
    }
    const t1 = performance.now();
    hooks.phase?.('audit');

    // 2. Per-file phase: cached outcomes, then the pool for the rest (not started when none is left).
    let toAnalyse = walked.python;
    let cached: FileOutcome[] = [];
    const repoRules = rules.filter(isRepoRule);
    const repoCodes = repoRules.map((r) => r.meta.code);
    let repoCached: RepoResult | null = null;
    if (cache) {
      const tl = performance.now();
      cache.setKey({ codes: fileRuleCodes, severity: config.severity, context });
      ({ hits: cached, misses: toAnalyse } = cache.lookup(walked.python));
      // Nothing changed: the repo phase's last result stands and no summary is even loaded.
      if (toAnalyse.length === 0) repoCached = cache.cachedRepo(cache.repoKey(sortByPath(cached), repoCodes));
      // Hits whose summary the pack lacks are analysed again; the others' summaries are read only
      // if the repo phase must run (below), which an edit that changes no summary spares.
      if (!repoCached && cached.length) {
        const lost = cache.missingSummaries(cached);
        if (lost.size) {
          cached = cached.filter((o) => !lost.has(o.path));
          const again = new Set(toAnalyse);
          toAnalyse = walked.python.filter((f) => lost.has(f.rel) || again.has(f));
        }
      }
      cacheMs += performance.now() - tl;
    }
    let outcomes: FileOutcome[] = cached;
    let parser = 'none (all files cached)';
    const analysed = new Set<string>();
    const audit = async (files: typeof toAnalyse) => {
      const pooled = await pool.audit(files, context);
      parser = pooled.parser;
      if (cache) {
        const ts = performance.now();
        cache.store(pooled.outcomes);
        cacheMs += performance.now() - ts;
      }
      for (const o of pooled.outcomes) analysed.add(o.path);
      outcomes = outcomes.length ? outcomes.concat(pooled.outcomes) : pooled.outcomes;
    };
    if (toAnalyse.length) await audit(toAnalyse);
    // Edits that left every summary (and every per-file finding's line) as it was: the repo
    // phase would give what it gave last time, but for the text of the edited files' lines.
    if (cache && !repoCached && analysed.size && !hooks.index) {
      const ts = performance.now();
      const last = cache.cachedRepoBySummaries(cache.summariesKey(sortByPath(outcomes), repoCodes));
      if (last) repoCached = withLineTexts(last, analysed, rootPath);
      cacheMs += performance.now() - ts;
    }
    if (cache && !repoCached && cached.length) {
      const ts = performance.now();
      const lost = cache.attachSummaries(cached);
      cacheMs += performance.now() - ts;
      // Summaries the pack holds but that do not read back: those files are analysed again.
      if (lost.size) {
        outcomes = outcomes.filter((o) => !lost.has(o.path));
        await audit(walked.python.filter((f) => lost.has(f.rel)));
      }
    }
    // The workers' heaps and parser memory are not needed past this point: they go now, not
    // after the repo phase and the report. Awaited: the threads exit through this thread's
    // event loop, and the summaries, the repo phase and the cache write below run without
    // yielding to it. Started without the await, the workers' ~260 MB on the 2M-line tree
    // stayed resident until the scan returned, under the repo phase's own peak.
    await pool.close();
    sortByPath(outcomes);
    // The summaries are final: into the next pack now, before the repo phase's peak.
    if (cache) {
      const ts = performance.now();
      cache.writeSummaries();
      cacheMs += performance.now() - ts;
    }
    const t2 = performance.now();
    hooks.phase?.('call graph');

    const stats: ScanStats = {
      files: 0, lines: 0, bytes: 0, parseErrors: 0, parseErrorFiles: [], skipped: [...walked.skipped], internalErrors: [], durationMs: 0,
    };
    const inScope = scopeMatcher(hooks.scope);
    if (inScope) stats.skipped = stats.skipped.filter((k) => inScope(k.path));
    const raw: RawFinding[] = [];
    const summaries: FileSummary[] = [];
    const ruleMs: Record<string, number> = {};
    const stageMs: StageMs = { read: 0, parse: 0, model: 0, classify: 0, rules: 0, summary: 0 };
    // Out of scope, a file still gives its summary to the call graph, but nothing to the counts.
    const outside: ScanStats = { ...stats, skipped: [], parseErrorFiles: [], internalErrors: [] };
    for (const o of outcomes) collectOutcome(o, !inScope || inScope(o.path) ? stats : outside, raw, summaries, ruleMs, stageMs);

    // 3. Repo phase: interprocedural rules on the summaries (or their cached result when no input changed).
    const index = { files: summaries };
    hooks.index?.(index);
    let repo: RepoResult;
    if (repoCached) {
      repo = repoCached;
    } else {
      const fileFindings = raw.map((r) => [r.path, r.line] as [string, number]);
      const out = runRepoPhase(summaries, context, repoRules, rootPath, fileFindings);
      for (const [code, ms] of Object.entries(out.ruleMs)) ruleMs[code] = (ruleMs[code] ?? 0) + ms;
      repo = { findings: out.findings, internalErrors: out.internalErrors, contexts: out.contexts, privateLoops: out.privateLoops, entries: out.entries, fixedLoops: out.fixedLoops };
    }
    raw.push(...repo.findings);
    stats.internalErrors.push(...repo.internalErrors);
    const contexts = repo.contexts;
    // The summaries have served: nothing after the repo phase reads them. Let them go before the
    // cache's index is serialized, the scan's last large allocation (on the 2M-line tree the two
    // together were the peak). A hook that was handed the index keeps it whole.
    if (!hooks.index) {
      summaries.length = 0;
      index.files = [];
      for (const o of outcomes) {
        o.summary = undefined;
        o.summaryBytes = undefined;
      }
    }
    if (cache) {
      const ts = performance.now();
      if (!repoCached || analysed.size) cache.setRepo(cache.repoKey(outcomes, repoCodes), repo, cache.summariesKey(outcomes, repoCodes));
      cache.save();
      cacheMs += performance.now() - ts;
    }
    const t3 = performance.now();
    hooks.phase?.('merge');

    // 4. Merge: test globs, severity overrides, downgrades, fingerprints, baseline, order, scores.
    const testMatcher = config.tests.length ? createIgnore().add(config.tests) : null;
    const oneOff = new Map(contexts.map(([p, line, kind, evidence]) => [`${p}:${line}`, { kind, evidence }]));
    const privateLoops = new Map((repo.privateLoops ?? []).map(([p, line, evidence]) => [`${p}:${line}`, evidence]));
    const entries = new Set((repo.entries ?? []).map(([p, line]) => `${p}:${line}`));
    // A file rule's per-item claim in a loop over another module's handful of constants: the
    // same loop over the module's own constants is silent (the repo phase knows the other module).
    const fixedLoops = new Set((repo.fixedLoops ?? []).map(([p, line, column]) => `${p}:${line}:${column}`));
    let findings: Finding[] = [];
    // One finding per place and claim: two ways to the same report (a call inside two spans of
    // one function) say the same thing once.
    const keyOf = (r: RawFinding) => `${r.code}\0${r.path}\0${r.line}:${r.column}-${r.endLine}:${r.endColumn}\0${r.message}`;
    const kept = new Map<string, RawFinding>();
    const sinks = new Map<Finding, SinkRef>();
    const sameDefect = new Map<Finding, SameDefect>();
    for (const r of raw) {
      const k = keyOf(r);
      const other = kept.get(k);
      // The most severe of the copies (a copy may come with a rule's own advisory).
      if (!other || (!r.advisory && other.advisory) || (!!r.advisory === !!other.advisory && SEVERITIES.indexOf(r.severity) < SEVERITIES.indexOf(other.severity))) kept.set(k, r);
    }
    for (const r of raw) {
      if (kept.get(keyOf(r)) !== r) continue;
      if (testMatcher?.ignores(r.path)) continue;
      if (inScope && !inScope(r.path)) continue;
      if (PER_ITEM_CODES.has(r.code) && fixedLoops.has(`${r.path}:${r.line}:${r.column}`)) continue;
      const meta = metaByCode.get(r.code);
      if (!meta) continue;
      const severity = config.severity[r.code] ?? r.severity;
      const finding: Finding = {
        code: r.code,
        check: meta.check,
        category: meta.family,
        severity,
        originalSeverity: severity,
        advisory: false,
        path: r.path,
        line: r.line,
        column: r.column,
        endLine: r.endLine,
        endColumn: r.endColumn,
        ...(r.function ? { function: r.function } : {}),
        message: r.message,
        recommendation: r.recommendation ?? meta.fix,
        effort: meta.effort,
        ...(r.chain ? { chain: r.chain } : {}),
        downgrades: [],
        fingerprint: fingerprint(r.code, r.path, r.lineText, r.function),
      };
      if (r.sink) sinks.set(finding, r.sink);
      if (r.sameDefectAs) sameDefect.set(finding, r.sameDefectAs);
      // The rule's own judgement: advisory wherever the code runs; or, for a request-scoped session's
      // cleanup, when the function is one only a framework calls.
      const advisory = r.advisory ?? (r.rolledBackAtTeardown && entries.has(`${r.path}:${r.line}`) ? r.rolledBackAtTeardown : undefined);
      if (advisory) {
        finding.advisory = true;
        finding.downgrades.push({ rule: 'library_semantics', from: severity, to: 'advisory', evidence: advisory });
        findings.push(finding);
        continue;
      }
      findings.push(validateFinding({
        finding,
        executionEvidence: r.evidence ?? [],
        inHandler: r.inHandler,
        ...(r.lowInBackground ? { lowInBackground: true as const } : {}),
        ...(r.failure ? { failure: true as const } : {}),
        oneOff: config.executionContext === 'strict' ? null : (oneOff.get(`${r.path}:${r.line}`) ?? null),
        privateLoop: config.executionContext === 'strict' ? null : (privateLoops.get(`${r.path}:${r.line}`) ?? null),
      }, context));
    }
    // One defect, one finding (after suppressions and execution context).
    findings = dropSameDefects(findings, sameDefect);
    // After suppressions and execution context, per caller: what survives of one blocking call.
    findings = groupSharedSinks(findings, sinks);
    if (config.executionContext !== 'strict') findings = perUnitEngines(findings);
    findings = assignOccurrenceSuffixes(findings);
    if (config.baseline) {
      const known = loadBaseline(path.resolve(config.baseline));
      findings = findings.filter((f) => !known.has(`${f.code}\0${f.path}\0${f.fingerprint}`));
    }
    findings.sort(compareFindings);
    const families = [...new Set(rules.map((r) => r.meta.family))].sort() as Family[];
    const scores = scoreFindings(findings, families);
    const t4 = performance.now();
    stats.durationMs = Math.round(t4 - t0);

    return {
      result: {
        toolVersion: TOOL_VERSION,
        rootPath,
        root: displayRoot(hooks.display ?? rootArg),
        date: localDate(new Date()),
        commit: gitShortHash(rootPath),
        context,
        findings,
        scores,
        stats,
        rules: rules.map((r) => r.meta),
        families,
      },
      timings: { discoveryMs: t1 - t0, perFileMs: t2 - t1, repoMs: t3 - t2, mergeMs: t4 - t3, cacheMs, ruleMs, stageMs },
      parser,
      cache: cache?.stats ?? null,
      passes: { ...pool.passes },
    };
  } finally {
    cache?.discard();
    await pool.close();
  }
}

function collectOutcome(
  o: FileOutcome, stats: ScanStats, raw: RawFinding[], summaries: FileSummary[], ruleMs: Record<string, number>, stageMs: StageMs,
): void {
  // A fresh outcome's summary is read from its bytes only now (the cache has stored them).
  unpackOutcome(o);
  stats.internalErrors.push(...o.internalErrors);
  if (o.skipped) {
    stats.skipped.push(o.skipped);
    return;
  }
  stats.files++;
  stats.lines += o.lines;
  stats.bytes += o.bytes;
  if (o.parseError) {
    stats.parseErrors++;
    stats.parseErrorFiles.push(o.path);
  }
  raw.push(...o.findings);
  if (o.summary) summaries.push(o.summary);
  if (o.ruleMs) for (const [code, ms] of Object.entries(o.ruleMs)) ruleMs[code] = (ruleMs[code] ?? 0) + ms;
  if (o.stageMs) for (const k of Object.keys(stageMs) as (keyof StageMs)[]) stageMs[k] += o.stageMs[k] ?? 0;
}

/**
 * A Python file named on the command line that the walk left out (`.gitignore`, `--exclude`, the
 * default excludes) is not audited: say so, or an empty result would look like a clean file.
 */
function excludedTargets(scope: string[], walked: WalkResult, notice: ScanHooks['notice']): void {
  const seen = new Set([...walked.python.map((f) => f.rel), ...walked.skipped.map((k) => k.path)]);
  for (const s of scope) {
    if (s.endsWith('.py') && !seen.has(s)) notice?.(`${s}: excluded by .gitignore, --exclude or the default excludes; not audited`);
  }
}

/** Whether a root-relative path lies in one of `scope`'s files or directories; null for the whole tree. */
export function scopeMatcher(scope: string[] | undefined): ((rel: string) => boolean) | null {
  if (!scope) return null;
  return (rel) => scope.some((s) => rel === s || rel.startsWith(`${s}/`));
}

function sortByPath(outcomes: FileOutcome[]): FileOutcome[] {
  return outcomes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function resolveRoot(rootArg: string): string {
  const rootPath = path.resolve(rootArg);
  let st: fs.Stats;
  try {
    st = fs.statSync(rootPath);
  } catch (err) {
    throw new ScanError(`cannot read ${rootArg}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
  }
  if (!st.isDirectory()) throw new ScanError(`${rootArg} is not a directory`);
  try {
    fs.readdirSync(rootPath);
  } catch (err) {
    throw new ScanError(`cannot read ${rootArg}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return rootPath;
}

function displayRoot(rootArg: string): string {
  const p = rootArg.replace(/\\/g, '/').replace(/\/+$/, '');
  return p === '' ? '.' : p;
}

function localDate(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function gitShortHash(dir: string): string | null {
  try {
    const out = execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
    return out.toString().trim() || null;
  } catch {
    return null;
  }
}
