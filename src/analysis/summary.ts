/**
 * File summaries: the compact, plain-data facts a worker returns for each file so that the
 * repo phase can follow calls across functions and files without any syntax tree.
 */
import type { FileModel, FunctionRole } from '../semantic/model.js';
import { effectiveRole } from '../semantic/model.js';
import { exportedTypes } from '../semantic/valueTypes.js';
import { classifyHandle } from '../semantic/db.js';

/** Something a function does that matters to a caller on the event loop or in a loop. */
export interface Effect {
  /** Effect kind, e.g. `blocking_io`, `sync_sleep`, `sync_db`, `cpu`, `query`, `write`, `commit`. */
  kind: string;
  /** What is called, e.g. `time.sleep` or `Path.write_bytes`. */
  what: string;
  line: number;
  column: number;
  /**
   * Set when the file could not decide the effect: a DB call on a receiver whose type path
   * (`Depends(app.deps.get_db)`, `app.db.SessionLocal()`) names another module. The repo phase
   * resolves the path and keeps the effect only when it is a sync handle.
   */
  pending?: { typePath: string; method: string };
}

export interface SummaryCall {
  calleeText: string;
  qualifiedName: string | null;
  method: string;
  functionIndex: number;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  awaited: boolean;
  offloaded: boolean;
  inLoop: boolean;
}

export interface SummaryFunction {
  name: string;
  qualifiedName: string;
  isAsync: boolean;
  role: FunctionRole;
  /** The role inherited from enclosing functions and the file's location (see `effectiveRole`). */
  effectiveRole: FunctionRole;
  isGenerator: boolean;
  routeKind: string | null;
  className: string | null;
  parent: number;
  startLine: number;
  endLine: number;
  effects: Effect[];
}

export interface FileSummary {
  path: string;
  moduleName: string;
  isTestFile: boolean;
  imports: [string, string][];
  moduleDefs: string[];
  functions: SummaryFunction[];
  calls: SummaryCall[];
  suppressions: [number, string[]][];
  /** Module-level names whose values other files use (session factories, providers), as type paths. */
  exportedTypes: [string, string][];
  /** Trimmed source text of the lines that calls start on, for fingerprints of repo findings. */
  lineText: [number, string][];
}

/** Everything the repo phase knows: every file's summary. */
export interface RepoIndex {
  files: FileSummary[];
}

/** Summarises a file for the repo phase; `effects[i]` are the effects found in function i. */
export function summarize(model: FileModel, effects: Effect[][]): FileSummary {
  if (model.isTestFile) effects = [];
  const lines = new Map<number, string>();
  const sourceLines = lazyLines(model.source);
  const calls: SummaryCall[] = model.calls.map((c) => {
    if (!lines.has(c.line)) lines.set(c.line, (sourceLines()[c.line - 1] ?? '').trim());
    return {
      calleeText: c.calleeText,
      qualifiedName: c.qualifiedName,
      method: c.method,
      functionIndex: c.functionIndex,
      line: c.line,
      column: c.column,
      endLine: c.node.endPosition.row + 1,
      endColumn: c.node.endPosition.column + 1,
      // `awaited` costs a parent lookup; only calls that may name a repo function need it.
      awaited: c.functionIndex >= 0 && mayBeRepoCall(c) ? c.awaited : false,
      offloaded: c.offloaded,
      inLoop: c.loops.length > 0,
    };
  });
  return {
    path: model.path,
    moduleName: model.moduleName,
    isTestFile: model.isTestFile,
    imports: [...model.imports],
    moduleDefs: [...model.moduleDefs],
    functions: model.functions.map((f, i) => ({
      name: f.name,
      qualifiedName: f.qualifiedName,
      isAsync: f.isAsync,
      role: f.role,
      effectiveRole: effectiveRole(model, i),
      isGenerator: f.isGenerator,
      routeKind: f.routeKind,
      className: f.className,
      parent: f.parent,
      startLine: f.startLine,
      endLine: f.endLine,
      effects: effects[i] ?? [],
    })),
    calls,
    exportedTypes: exportedTypes(model, (t) => classifyHandle(t) !== null),
    suppressions: [...model.suppressions].map(([line, codes]) => [line, [...codes]]),
    lineText: [...lines],
  };
}

const SIMPLE_DOTTED = /^[A-Za-z_][\w.]*$/;

function mayBeRepoCall(c: { calleeText: string; qualifiedName: string | null }): boolean {
  return SIMPLE_DOTTED.test(c.calleeText) && !c.qualifiedName?.startsWith('builtins.');
}

function lazyLines(source: string): () => string[] {
  let cached: string[] | null = null;
  return () => (cached ??= source.split('\n'));
}
