/**
 * The worker pool: batches of files sized by bytes, both cores busy until the last file, a
 * failed batch retried once (piscina replaces a crashed worker); when the retry fails too, the
 * batch's files run one by one so that only the files that fail are reported, and a clean shutdown (native tree-sitter aborts
 * the process if a worker is killed mid-parse, so in-flight tasks are always awaited).
 *
 * A pass too small to pay for threads (a rescan after an edit, a small service) runs on the
 * main thread instead, through the same batch code (batch.ts) and the same retry rules.
 */
import { Piscina } from 'piscina';
import type { SourceFile } from '../discovery/walk.js';
import { shareContext, type BatchResult, type BatchTask, type FactsRead, type FileOutcome, type TaskMode, type WorkerSetup } from './protocol.js';
import type { ProjectContext } from '../discovery/context.js';
import type { PythonFactsResult } from '../discovery/discover.js';
import { decodeSummary } from '../analysis/packedSummary.js';
import type { BatchRunner } from './batch.js';

export interface PoolOptions {
  jobs: number;
  /** The workers' setup, or how to make it when the pool first starts (a warm cache may never start it). */
  setup: (WorkerSetup & { timings?: boolean }) | (() => Promise<WorkerSetup & { timings?: boolean }>);
  /** Target bytes per batch. */
  batchBytes?: number;
  /** After each batch of a pass: files done, files in the pass, and which pass (for a progress line). */
  onBatchDone?: (doneFiles: number, totalFiles: number, pass: 'facts' | 'audit') => void;
  /** `full` (default) audits; `parse` / `read` are the cost floors `bench` measures. */
  mode?: TaskMode;
  /**
   * `objects` (default): each outcome's summary is read from its bytes as it arrives. `bytes`:
   * outcomes keep the bytes only (the scan reads them when the repo phase runs, and the cache
   * stores them), so the main thread does not hold every summary as objects while the workers run.
   */
  summaries?: 'objects' | 'bytes';
  /**
   * A pass over at most this many bytes of files runs on the main thread while no worker is up
   * (default {@link IN_PROCESS_BYTES}; 0: always the workers).
   */
  inProcessBytes?: number;
}

/**
 * A pass over less than this runs on the main thread. Each worker pays its own start (its module
 * graph, its parser) and, above all, its own JIT warm-up, while a single thread already has the
 * other core for V8's compiler and GC threads (1.3-1.45 cores busy). One process per run, on the
 * 2-core machines: stdlib packages of 1 MB took 1.32-1.35 s on the main thread against 1.49-1.56 s
 * with 2 workers, of 2 MB 1.99-2.09 against 2.16-2.29 s; generated FastAPI/SQLAlchemy services of
 * 3.1 MB 5.35-5.61 against 6.00-6.13 s, of 10.6 MB 11.9-15.0 against 10.4-10.9 s (workers ahead).
 * The rescan of a 2M-line tree after one edit used to start the workers for one file.
 */
export const IN_PROCESS_BYTES = 2 * 1024 * 1024;

/** At most this many files per batch. */
const MAX_BATCH_FILES = 200;

/** Groups files into batches of about `target` bytes, largest files first for balance. */
export function makeBatches(files: SourceFile[], target: number): BatchTask[] {
  const sorted = [...files].sort((a, b) => b.size - a.size || (a.rel < b.rel ? -1 : 1));
  const batches: BatchTask[] = [];
  let current: BatchTask = { files: [] };
  let bytes = 0;
  for (const f of sorted) {
    current.files.push({ rel: f.rel, abs: f.abs });
    bytes += f.size;
    if (bytes >= target || current.files.length >= MAX_BATCH_FILES) {
      batches.push(current);
      current = { files: [] };
      bytes = 0;
    }
  }
  if (current.files.length) batches.push(current);
  return batches;
}

/**
 * One piscina pool for a scan's two passes over the repo: the discovery facts pass, then the
 * audit. Workers start on first use and load the parser once for both passes.
 */
export class AuditPool {
  private piscina: Piscina | null = null;
  private readonly jobs: number;

  constructor(private readonly options: Omit<PoolOptions, 'mode'>) {
    this.jobs = Math.max(1, options.jobs);
  }

  private starting: Promise<Piscina> | null = null;

  /**
   * Starts the workers now (they load the parser while the caller goes on); later passes use
   * them. Without it, the first pass starts them.
   */
  warm(files: SourceFile[]): void {
    // As many threads as the batches of these files can use: a one-file scan starts one.
    const total = files.reduce((s, f) => s + f.size, 0);
    if (this.inProcess(total)) return;
    const batches = Math.max(1, Math.ceil(total / this.batchTarget(total)), Math.ceil(files.length / MAX_BATCH_FILES));
    this.start(Math.min(this.jobs, batches)).catch(() => {
      // The pass that needs the pool reports the failure.
      this.starting = null;
    });
  }

  private setupMemo: Promise<WorkerSetup & { timings?: boolean }> | null = null;
  private local: Promise<BatchRunner> | null = null;

  private setup(): Promise<WorkerSetup & { timings?: boolean }> {
    const { setup } = this.options;
    // A setup that failed is tried again by the next pass, as before there was a main-thread runner.
    this.setupMemo ??= (typeof setup === 'function' ? setup() : Promise.resolve(setup)).catch((err: unknown) => {
      this.setupMemo = null;
      throw err;
    });
    return this.setupMemo;
  }

  /** Whether a pass over `total` bytes runs on the main thread: small, and no worker is up to take it. */
  private inProcess(total: number): boolean {
    return !this.starting && total <= (this.options.inProcessBytes ?? IN_PROCESS_BYTES);
  }

  /** How many passes ran on the main thread and how many in the workers (`--timings`, tests). */
  readonly passes = { mainThread: 0, workers: 0 };

  /** How this pass's batches run: on the main thread when it is small, else in the workers. */
  private async runner(files: SourceFile[], batches: number): Promise<Run> {
    // Not with the native binding: a crash in its C code would take the whole scan down, where a
    // worker that dies is replaced and its batch retried. WASM faults are exceptions.
    if (this.inProcess(files.reduce((s, f) => s + f.size, 0)) && (await this.setup()).parser !== 'native') {
      this.passes.mainThread++;
      this.local ??= Promise.all([import('./batch.js'), this.setup()]).then(([{ createBatchRunner }, setup]) => createBatchRunner(setup));
      const local = await this.local;
      return Object.assign((task: BatchTask) => local(task), { where: 'main-thread analysis' });
    }
    this.passes.workers++;
    const pool = await this.start(batches);
    return Object.assign(async (task: BatchTask) => (await pool.run(task)) as BatchResult, { where: 'worker' });
  }

  private start(batches: number): Promise<Piscina> {
    if (!this.starting) this.closing = null;
    this.starting ??= this.create(batches);
    return this.starting;
  }

  private async create(batches: number): Promise<Piscina> {
    const setup = await this.setup();
    this.piscina = new Piscina({
      filename: new URL('./worker.js', import.meta.url).href,
      minThreads: Math.min(this.jobs, batches || 1),
      maxThreads: this.jobs,
      idleTimeout: 1000,
      // Native trees are freed by GC finalizers; 'sync' atomics starve the GC between tasks.
      atomics: 'async',
      workerData: setup,
    });
    return this.piscina;
  }

  /** Bytes per batch for `total` bytes of files. */
  private batchTarget(total: number): number {
    // Small batches at the end keep both threads busy; never fewer than ~4 batches per thread.
    return this.options.batchBytes ?? Math.max(32 * 1024, Math.min(512 * 1024, Math.ceil(total / (this.jobs * 8))));
  }

  private batches(files: SourceFile[]): BatchTask[] {
    return makeBatches(files, this.batchTarget(files.reduce((s, f) => s + f.size, 0)));
  }

  /**
   * The discovery pass: Python facts for the project context, in parallel; `read` lists every
   * file read, and what its result depends on (see {@link FactsRead}).
   */
  async facts(files: SourceFile[], migration: (rel: string) => boolean): Promise<{ results: PythonFactsResult[]; read: FactsRead[] }> {
    const batches = this.batches(files);
    for (const b of batches) {
      b.mode = 'facts';
      for (const f of b.files) f.migration = migration(f.rel);
    }
    const run = await this.runner(files, batches.length);
    let done = 0;
    const results = await Promise.all(batches.map(async (b) => {
      const result = await runWithRetry(run, b);
      this.options.onBatchDone?.((done += b.files.length), files.length, 'facts');
      return result;
    }));
    return { results: results.flatMap((r) => r.facts ?? []), read: results.flatMap((r) => r.factsRead ?? []) };
  }

  /** The audit pass (or a cost floor, by `mode`), with the context shared once in memory. */
  async audit(files: SourceFile[], context: ProjectContext | null, mode: TaskMode = 'full'): Promise<{ outcomes: FileOutcome[]; parser: string }> {
    const batches = this.batches(files);
    const shared = context ? shareContext(context) : undefined;
    for (const b of batches) {
      if (mode !== 'full') b.mode = mode;
      if (shared) b.context = shared;
    }
    const run = await this.runner(files, batches.length);
    const outcomes: FileOutcome[] = [];
    let parser = 'native';
    let done = 0;
    await Promise.all(
      batches.map(async (batch) => {
        const result = await runWithRetry(run, batch);
        parser = result.parser || parser;
        if (this.options.summaries !== 'bytes') for (const o of result.files) unpackOutcome(o);
        outcomes.push(...result.files);
        this.options.onBatchDone?.((done += batch.files.length), files.length, 'audit');
      }),
    );
    return { outcomes, parser };
  }

  private closing: Promise<void> | null = null;

  /**
   * Waits for in-flight tasks, then stops the workers (never kill a worker mid-parse). Every
   * call until the pool is started again shares one shutdown.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.starting?.catch(() => undefined);
      await this.piscina?.close();
      this.piscina = null;
      this.starting = null;
    })();
    return this.closing;
  }
}

export async function runPool(files: SourceFile[], options: PoolOptions): Promise<{ outcomes: FileOutcome[]; parser: string }> {
  const pool = new AuditPool(options);
  try {
    return await pool.audit(files, null, options.mode ?? 'full');
  } finally {
    await pool.close();
  }
}

/** Gives an outcome from a worker its summary as objects; bytes that do not read back are an internal error. */
export function unpackOutcome(o: FileOutcome): void {
  const bytes = o.summaryBytes;
  if (!bytes) return;
  delete o.summaryBytes;
  try {
    o.summary = decodeSummary(bytes);
  } catch (err) {
    o.internalErrors.push({ path: o.path, rule: 'summary', message: `summary unreadable: ${(err as Error).message}` });
  }
}

/** Runs a batch, where {@link Run.where} says (for the message of a file that keeps failing). */
type Run = ((task: BatchTask) => Promise<BatchResult>) & { where: string };

async function runWithRetry(run: Run, batch: BatchTask): Promise<BatchResult> {
  try {
    return await run(batch);
  } catch {
    try {
      return await run(batch);
    } catch (err) {
      if (batch.files.length === 1) return failed(batch, err, run.where);
      // Isolate the culprit: every file alone, once; the others' results stand.
      const parts = await Promise.all(
        batch.files.map(async (f) => {
          const single: BatchTask = { ...batch, files: [f] };
          try {
            return await run(single);
          } catch (e) {
            return failed(single, e, run.where);
          }
        }),
      );
      return { parser: parts.find((p) => p.parser)?.parser ?? '', parseMs: parts.reduce((s, p) => s + p.parseMs, 0), files: parts.flatMap((p) => p.files) };
    }
  }
}

function failed(batch: BatchTask, err: unknown, where: string): BatchResult {
  const message = `${where} failed twice on this file: ${(err as Error).message}`;
  return {
    parser: '',
    parseMs: 0,
    files: batch.files.map((f) => ({
      path: f.rel, lines: 0, bytes: 0, parseError: false, findings: [],
      internalErrors: [{ path: f.rel, message }],
    })),
  };
}
