/**
 * The repo phase: the interprocedural rules over every file's summary, and the execution context
 * (request, job, or only once) of each finding's line. A pure function of its inputs, so that it
 * runs the same on the main thread and in the repo worker (see repoWorker.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FileSummary, RepoIndex } from '../analysis/summary.js';
import { callGraphOf, type CallGraph } from '../analysis/callgraph.js';
import { IMPORTED_ITERABLE } from '../analysis/effects.js';
import { executionContexts } from '../analysis/executionContext.js';
import type { RepoResult } from '../cache/cache.js';
import type { ProjectContext } from '../discovery/context.js';
import type { RawFinding } from '../pool/protocol.js';
import { isMigrationFile } from '../rules/projectFacts.js';
import type { RepoRule } from '../rules/types.js';
import type { InternalError } from '../types.js';
import { isSuppressed } from './analyzeFile.js';

export interface RepoPhaseOutput extends RepoResult {
  ruleMs: Record<string, number>;
}

/**
 * Runs `repoRules` on `summaries` (in path order) and finds the execution context of every
 * finding's line: the per-file findings' (`fileFindings`, `[path, line]` in their order) and the
 * repo phase's own.
 */
export function runRepoPhase(
  summaries: FileSummary[], project: ProjectContext, repoRules: RepoRule[], rootPath: string, fileFindings: [string, number][],
): RepoPhaseOutput {
  const index: RepoIndex = { files: summaries };
  const findings: RawFinding[] = [];
  const internalErrors: InternalError[] = [];
  const ruleMs: Record<string, number> = {};
  if (repoRules.length) {
    const suppressionsByPath = new Map(summaries.map((s) => [s.path, new Map(s.suppressions.map(([l, c]) => [l, new Set(c)]))]));
    // The text of a repo finding's line, for its fingerprint: read from disk for the few
    // findings there are, rather than carried for every call line of every summary.
    const fileLines = new Map<string, string[]>();
    const lineText = (file: string, line: number): string => {
      let lines = fileLines.get(file);
      if (!lines) {
        try {
          lines = fs.readFileSync(path.join(rootPath, file), 'utf8').split('\n');
        } catch {
          lines = [];
        }
        fileLines.set(file, lines);
      }
      return (lines[line - 1] ?? '').trim();
    };
    const summaryByPath = new Map(summaries.map((s) => [s.path, s]));
    // Handler-ness for the never-downgraded rules (N+1 and N-UPDATE through helpers).
    const inHandler = (file: string, line: number) =>
      summaryByPath.get(file)?.functions.some((f) => f.role === 'handler' && line >= f.startLine && line <= f.endLine) ?? false;
    for (const rule of repoRules) {
      const tr = performance.now();
      try {
        rule.checkRepo({
          index,
          project,
          report: (r) => {
            const sup = suppressionsByPath.get(r.path);
            if (sup && isSuppressed(sup, rule.meta.code, [r.location.line, r.location.endLine])) return;
            const f: RawFinding = {
              code: rule.meta.code,
              path: r.path,
              ...r.location,
              severity: r.severity ?? rule.meta.severity,
              message: r.message,
              lineText: lineText(r.path, r.location.line),
              inHandler: inHandler(r.path, r.location.line),
            };
            if (r.recommendation) f.recommendation = r.recommendation;
            if (r.advisory) f.advisory = r.advisory;
            if (r.lowInBackground) f.lowInBackground = true;
            if (r.failure) f.failure = true;
            if (r.function) f.function = r.function;
            if (r.chain) f.chain = r.chain;
            if (r.callers) f.callers = r.callers;
            if (r.sink) f.sink = { ...r.sink, lineText: lineText(r.sink.path, r.sink.line) };
            if (r.sameDefectAs) f.sameDefectAs = r.sameDefectAs;
            findings.push(f);
          },
        });
      } catch (err) {
        internalErrors.push({ path: '.', rule: rule.meta.code, message: (err as Error).message });
      }
      ruleMs[rule.meta.code] = (ruleMs[rule.meta.code] ?? 0) + performance.now() - tr;
    }
  }
  const positions = fileFindings.concat(findings.map((f) => [f.path, f.line] as [string, number]));
  return { findings, internalErrors, ruleMs, ...findingContexts(index, positions, project) };
}

/**
 * A previous result of the repo phase for a tree whose summaries did not change, with the line
 * texts (the fingerprints' input) of the findings in the files analysed again read afresh: an
 * edit that changes no summary can still change the text of a finding's line.
 */
export function withLineTexts(result: RepoResult, analysed: ReadonlySet<string>, rootPath: string): RepoResult {
  const lines = new Map<string, string[]>();
  const findings = result.findings.map((f) => {
    if (!analysed.has(f.path)) return f;
    let text = lines.get(f.path);
    if (!text) {
      try {
        text = fs.readFileSync(path.join(rootPath, f.path), 'utf8').split('\n');
      } catch {
        text = [];
      }
      lines.set(f.path, text);
    }
    return { ...f, lineText: (text[f.line - 1] ?? '').trim() };
  });
  return { ...result, findings };
}

/** The one-off execution context of each finding's line, where it has one; the lines in coroutines on a loop of their own; and those in functions a framework dispatches. */
function findingContexts(index: RepoIndex, positions: [string, number][], project: ProjectContext): Pick<RepoResult, 'contexts' | 'privateLoops' | 'entries' | 'fixedLoops'> {
  const contexts: RepoResult['contexts'] = [];
  const privateLoops: NonNullable<RepoResult['privateLoops']> = [];
  const entries: NonNullable<RepoResult['entries']> = [];
  const fixedLoops: NonNullable<RepoResult['fixedLoops']> = [];
  if (positions.length === 0) return { contexts, privateLoops, entries, fixedLoops };
  const graph = callGraphOf(index);
  const where = executionContexts(graph, (p) => isMigrationFile(project, p));
  const fixed = loopsOverImportedConstants(graph);
  const seen = new Set<string>();
  for (const [file, line] of positions) {
    const key = `${file}:${line}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const c = where.at(file, line);
    if (c) contexts.push([file, line, c.kind, c.evidence]);
    const loop = where.privateLoop(file, line);
    if (loop) privateLoops.push([file, line, loop]);
    if (where.entry(file, line)) entries.push([file, line]);
  }
  // Per call, not per line: a query over rows nested on the same line is not the constant loop's.
  if (fixed.size) {
    const lines = new Set(positions.map(([file, line]) => `${file}:${line}`));
    for (const [at, constant] of fixed) {
      const [file, line, column] = at.split(':');
      if (lines.has(`${file}:${line}`)) fixedLoops.push([file!, Number(line), Number(column), constant]);
    }
  }
  return { contexts, privateLoops, entries, fixedLoops };
}

/**
 * `path:line:column` of the calls in a loop over a handful of constants another module declares
 * (`for kind in KIND_LABELS:` with `KIND_LABELS` a small literal in `app.constants`), with the
 * constant: what a file rule reported per item there runs as often whatever the tables hold.
 */
function loopsOverImportedConstants(graph: CallGraph): Map<string, string> {
  const out = new Map<string, string>();
  graph.index.files.forEach((f, file) => {
    if (f.isTestFile) return;
    f.functions.forEach((_, fn) => {
      for (const e of graph.ownEffects({ file, fn })) {
        if (e.kind === IMPORTED_ITERABLE && graph.smallConstant(e.what)) out.set(`${f.path}:${e.line}:${e.column}`, e.what);
      }
    });
  });
  return out;
}
