/**
 * The worker pool: batches of files sized by bytes, both cores busy until the last file, a
 * failed batch retried once (piscina replaces a crashed worker); when the retry fails too, the
 * batch's files run one by one so that only the files that fail are reported, and a clean shutdown (native tree-sitter aborts
 * the process if a worker is killed mid-parse, so in-flight tasks are always awaited).
 */
import { Piscina } from 'piscina';
import type { SourceFile } from '../discovery/walk.js';
import type { BatchResult, BatchTask, FileOutcome, TaskMode, WorkerSetup } from './protocol.js';

export interface PoolOptions {
  jobs: number;
  setup: WorkerSetup & { timings?: boolean };
  /** Target bytes per batch. */
  batchBytes?: number;
  onBatchDone?: (done: number, total: number) => void;
  /** `full` (default) audits; `parse` / `read` are the cost floors `bench` measures. */
  mode?: TaskMode;
}

/** Groups files into batches of about `target` bytes, largest files first for balance. */
export function makeBatches(files: SourceFile[], target: number): BatchTask[] {
  const sorted = [...files].sort((a, b) => b.size - a.size || (a.rel < b.rel ? -1 : 1));
  const batches: BatchTask[] = [];
  let current: BatchTask = { files: [] };
  let bytes = 0;
  for (const f of sorted) {
    current.files.push({ rel: f.rel, abs: f.abs });
    bytes += f.size;
    if (bytes >= target || current.files.length >= 200) {
      batches.push(current);
      current = { files: [] };
      bytes = 0;
    }
  }
  if (current.files.length) batches.push(current);
  return batches;
}

export async function runPool(files: SourceFile[], options: PoolOptions): Promise<{ outcomes: FileOutcome[]; parser: string }> {
  const jobs = Math.max(1, options.jobs);
  const total = files.reduce((s, f) => s + f.size, 0);
  // Small batches at the end keep both threads busy; never fewer than ~4 batches per thread.
  const target = options.batchBytes ?? Math.max(32 * 1024, Math.min(512 * 1024, Math.ceil(total / (jobs * 8))));
  const batches = makeBatches(files, target);
  if (options.mode && options.mode !== 'full') for (const b of batches) b.mode = options.mode;
  const pool = new Piscina({
    filename: new URL('./worker.js', import.meta.url).href,
    minThreads: Math.min(jobs, batches.length || 1),
    maxThreads: jobs,
    idleTimeout: 1000,
    // Native trees are freed by GC finalizers; 'sync' atomics starve the GC between tasks.
    atomics: 'async',
    workerData: options.setup,
  });
  const outcomes: FileOutcome[] = [];
  let parser = 'native';
  let done = 0;
  try {
    await Promise.all(
      batches.map(async (batch) => {
        const result = await runWithRetry(pool, batch);
        parser = result.parser || parser;
        outcomes.push(...result.files);
        options.onBatchDone?.(++done, batches.length);
      }),
    );
  } finally {
    await pool.close();
  }
  return { outcomes, parser };
}

async function runWithRetry(pool: Piscina, batch: BatchTask): Promise<BatchResult> {
  try {
    return (await pool.run(batch)) as BatchResult;
  } catch {
    try {
      return (await pool.run(batch)) as BatchResult;
    } catch (err) {
      if (batch.files.length === 1) return failed(batch, err);
      // Isolate the culprit: every file alone, once; the others' results stand.
      const parts = await Promise.all(
        batch.files.map(async (f) => {
          const single: BatchTask = { ...batch, files: [f] };
          try {
            return (await pool.run(single)) as BatchResult;
          } catch (e) {
            return failed(single, e);
          }
        }),
      );
      return { parser: parts.find((p) => p.parser)?.parser ?? '', parseMs: parts.reduce((s, p) => s + p.parseMs, 0), files: parts.flatMap((p) => p.files) };
    }
  }
}

function failed(batch: BatchTask, err: unknown): BatchResult {
  const message = `worker failed twice on this file: ${(err as Error).message}`;
  return {
    parser: '',
    parseMs: 0,
    files: batch.files.map((f) => ({
      path: f.rel, lines: 0, bytes: 0, parseError: false, findings: [],
      internalErrors: [{ path: f.rel, message }],
    })),
  };
}
