/**
 * What a worker does with a batch of files, as a function of the worker's setup: the parser,
 * the compiled queries and the rule list are made once per runner; each task is a batch of
 * files. A batch's `mode` selects the audit (`full`), the discovery facts (`facts`) or one of
 * the cost floors `bench` measures (`parse`, `walk`, `read`).
 *
 * The pool's threads each make one runner (worker.ts); the pool also makes one on the main
 * thread for a pass too small to be worth starting threads (see `AuditPool`).
 */
import fs from 'node:fs';
import { createParser, type PythonParser } from '../parse/parser.js';
import { analyzeFile, floorFile } from '../engine/analyzeFile.js';
import { encodeSummary, encodeSummaryWithDigest } from '../analysis/packedSummary.js';
import { ALL_RULES } from '../rules/registry.js';
import { isFileRule, type FileRule } from '../rules/types.js';
import { readSharedContext, type BatchResult, type BatchTask, type FactsRead, type FileOutcome, type WorkerSetup } from './protocol.js';
import type { ProjectContext } from '../discovery/context.js';
import { importPrefixer, type ImportPrefix } from '../semantic/importRoots.js';
import { cachedReader, externalConstants, pythonFactsOf, readPythonSql, type PythonFactsResult } from '../discovery/discover.js';

export type BatchRunner = (task: BatchTask) => Promise<BatchResult>;

export function createBatchRunner(setup: WorkerSetup & { timings?: boolean }): BatchRunner {
  const enabled = new Set(setup.codes);
  const repoModules = setup.repoModules ? new Set(setup.repoModules) : undefined;
  const prefixer = importPrefixer(setup.importRoots);
  const rules: FileRule[] = ALL_RULES.filter(isFileRule).filter((r) => enabled.has(r.meta.code));
  let parserPromise: Promise<PythonParser> | null = null;
  let sharedContext: { id: number; context: ProjectContext } | null = null;

  function contextOf(task: BatchTask): ProjectContext {
    if (task.context) {
      if (sharedContext?.id !== task.context.id) sharedContext = { id: task.context.id, context: readSharedContext(task.context) };
      return sharedContext.context;
    }
    if (!setup.context) throw new Error('no project context was sent to the worker');
    return setup.context;
  }

  async function runBatch(task: BatchTask): Promise<BatchResult> {
    injectedFailure(task);
    const mode = task.mode ?? 'full';
    if (mode !== 'read') parserPromise ??= createParser(setup.parser);
    const parser = mode === 'read' ? null : await parserPromise!;
    if (mode === 'facts') {
      const t = performance.now();
      const { facts, read } = await runFacts(task, parser!, setup.rootDir, prefixer);
      return { files: [], facts, factsRead: read, parser: parser!.kind, parseMs: performance.now() - t };
    }
    const context = mode === 'full' ? contextOf(task) : null;
    const files: FileOutcome[] = [];
    const t0 = performance.now();
    for (const f of task.files) {
      try {
        const outcome =
          mode === 'full'
            ? analyzeFile(f.rel, f.abs, parser!, rules, context!, { timings: setup.timings, rootDir: setup.rootDir, hash: setup.hashContent, repoModules, importPrefix: prefixer(f.rel) })
            : floorFile(f.rel, f.abs, parser, mode === 'walk');
        if (outcome.summary) {
          // With the cache on, the summary's digest too: the repo phase's input by content.
          if (setup.hashContent) {
            const { bytes, digest } = encodeSummaryWithDigest(outcome.summary);
            outcome.summaryBytes = bytes;
            outcome.summaryHash = digest;
          } else outcome.summaryBytes = encodeSummary(outcome.summary);
          delete outcome.summary;
        }
        files.push(outcome);
      } catch (err) {
        files.push({
          path: f.rel, lines: 0, bytes: 0, parseError: false, findings: [],
          internalErrors: [{ path: f.rel, message: `analysis failed: ${(err as Error).message}` }],
        });
      }
    }
    return { files, parser: parser?.kind ?? '', parseMs: performance.now() - t0 };
  }

  return runBatch;
}

/** The discovery pass: Python facts of the files worth parsing for the project context, their SQL read. */
async function runFacts(task: BatchTask, parser: PythonParser, rootDir: string, prefixer: (file: string) => ImportPrefix | undefined): Promise<{ facts: PythonFactsResult[]; read: FactsRead[] }> {
  const read = cachedReader(rootDir);
  // The files the current file's constant lookups tried: its facts depend on those too.
  let deps: Set<string> | null = null;
  const lookup = externalConstants((rel) => {
    deps?.add(rel);
    return read(rel);
  });
  const external = (qualified: string) => {
    deps ??= new Set();
    return lookup(qualified);
  };
  const out: PythonFactsResult[] = [];
  const seen: FactsRead[] = [];
  for (const f of task.files) {
    const source = read(f.rel);
    if (source === null) continue;
    deps = null;
    let r: PythonFactsResult;
    try {
      r = pythonFactsOf(f.rel, source, f.migration ?? false, parser, external, prefixer(f.rel));
    } catch (err) {
      r = { file: f.rel, migration: f.migration ?? false, problem: `context extraction failed: ${(err as Error).message}` };
    }
    if (r.facts || r.problem || r.releases || r.flask) out.push(r);
    const asked: Set<string> | null = deps;
    seen.push(r.problem ? [f.rel, 'problem'] : asked ? [f.rel, 'external', [...asked].sort()] : [f.rel, 'self']);
  }
  await readPythonSql(out);
  return { facts: out, read: seen };
}

/**
 * Test-only failure injection (never set in normal use): a batch holding a file whose path
 * contains `PERSIST_AUDIT_TEST_WORKER_FAIL` throws; with `PERSIST_AUDIT_TEST_WORKER_FAIL_ONCE`
 * naming a marker file, it throws only while that marker does not exist yet (and creates it).
 */
function injectedFailure(task: BatchTask): void {
  const needle = process.env.PERSIST_AUDIT_TEST_WORKER_FAIL;
  if (!needle || !task.files.some((f) => f.rel.includes(needle))) return;
  const marker = process.env.PERSIST_AUDIT_TEST_WORKER_FAIL_ONCE;
  if (marker) {
    try {
      fs.writeFileSync(marker, 'failed once\n', { flag: 'wx' });
    } catch {
      return; // already failed once
    }
  }
  throw new Error(`injected worker failure (${needle})`);
}
