/**
 * The worker entry: piscina loads this file once per thread. The parser, the compiled queries
 * and the rule list are made once per worker; each task is a batch of files.
 */
import { workerData } from 'piscina';
import { createParser, type PythonParser } from '../parse/parser.js';
import { analyzeFile } from '../engine/analyzeFile.js';
import { ALL_RULES } from '../rules/registry.js';
import { isFileRule, type FileRule } from '../rules/types.js';
import type { BatchResult, BatchTask, FileOutcome, WorkerSetup } from './protocol.js';

const setup = workerData as WorkerSetup & { timings?: boolean };
const enabled = new Set(setup.codes);
const rules: FileRule[] = ALL_RULES.filter(isFileRule).filter((r) => enabled.has(r.meta.code));
let parserPromise: Promise<PythonParser> | null = null;

export default async function runBatch(task: BatchTask): Promise<BatchResult> {
  parserPromise ??= createParser(setup.parser);
  const parser = await parserPromise;
  const files: FileOutcome[] = [];
  const t0 = performance.now();
  for (const f of task.files) {
    try {
      files.push(analyzeFile(f.rel, f.abs, parser, rules, setup.context, { timings: setup.timings, rootDir: setup.rootDir }));
    } catch (err) {
      files.push({
        path: f.rel, lines: 0, bytes: 0, parseError: false, findings: [],
        internalErrors: [{ path: f.rel, message: `analysis failed: ${(err as Error).message}` }],
      });
    }
  }
  return { files, parser: parser.kind, parseMs: performance.now() - t0 };
}
