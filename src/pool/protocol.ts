/** Messages between the engine and its workers: plain data only, never syntax trees. */
import type { FileSummary } from '../analysis/summary.js';
import type { ProjectContext } from '../discovery/context.js';
import type { PythonFactsResult } from '../discovery/discover.js';
import type { ParserPreference } from '../parse/parser.js';
import type { ImportRoots } from '../semantic/importRoots.js';
import type { ChainStep, InternalError, Severity, SinkRef, SkippedFile } from '../types.js';

/** Set once per worker through piscina's `workerData`. */
export interface WorkerSetup {
  /** The project context, when known before the pool starts (else each task carries it). */
  context?: ProjectContext;
  /** Absolute path of the scanned root. */
  rootDir: string;
  parser: ParserPreference;
  /** Codes of the enabled file rules. */
  codes: string[];
  /** Directory and module names of the tree (see `repoModuleNames`): summaries keep only calls that may be ours. */
  repoModules?: string[];
  /** Where absolute imports start in a tree of several projects (see semantic/importRoots.ts). */
  importRoots?: ImportRoots;
  /** Return each file's content hash (the incremental cache is on). */
  hashContent?: boolean;
}

/**
 * What a batch does with each file: `full` is the audit; `parse` reads, decodes and parses
 * only, `walk` also fetches the semantic model's nodes (one `descendantsOfType` batch), and
 * `read` only reads and decodes — the cost floors `bench` compares the audit with.
 */
export type TaskMode = 'full' | 'parse' | 'walk' | 'read' | 'facts';

/**
 * The project context in shared memory: JSON bytes in a SharedArrayBuffer, so every task can
 * carry it at no copying cost and each worker decodes it once (by id).
 */
export interface SharedContext {
  id: number;
  buffer: SharedArrayBuffer;
}

export interface BatchTask {
  /** `migration` is set for the `facts` pass. */
  files: { rel: string; abs: string; migration?: boolean }[];
  context?: SharedContext;
  /** Default `full`. */
  mode?: TaskMode;
}

/** Per-file stage times in ms (when timings were asked for), summed over files by the engine. */
export interface StageMs {
  read: number;
  parse: number;
  model: number;
  /** The DB classification of every call in a function, which the rules and the summary share (see analyzeFile). */
  classify: number;
  rules: number;
  summary: number;
}

/** A finding as a file rule reported it, before merge (downgrades, fingerprints, baseline). */
export interface RawFinding {
  code: string;
  path: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  severity: Severity;
  message: string;
  recommendation?: string;
  function?: string;
  chain?: ChainStep[];
  callers?: ChainStep[];
  sink?: SinkRef;
  /** Trimmed text of the finding's first line, for the fingerprint. */
  lineText: string;
  /** Rule 6 (execution context) evidence, one entry per point. */
  evidence?: string[];
  /** The finding sits in a request handler. */
  inHandler: boolean;
  /** The rule judged it advisory: the evidence (`RuleReport.advisory`). */
  advisory?: string;
  /** `RuleReport.lowInBackground`. */
  lowInBackground?: true;
  /** `RuleReport.failure`. */
  failure?: true;
  /** `RuleReport.sameDefectAs`. */
  sameDefectAs?: { code: string; line: number };
  /** `RuleReport.rolledBackAtTeardown`. */
  rolledBackAtTeardown?: string;
}

export interface FileOutcome {
  path: string;
  lines: number;
  bytes: number;
  parseError: boolean;
  /** Set when the file could not be audited at all. */
  skipped?: SkippedFile;
  findings: RawFinding[];
  summary?: FileSummary;
  /**
   * The summary as it crosses from a worker (`encodeSummary`, see packedSummary.ts), read into
   * `summary` by `unpackOutcome`: by the pool as batches arrive, or by the scan when the repo
   * phase starts (after the cache has stored the bytes as they are).
   */
  summaryBytes?: Uint8Array;
  internalErrors: InternalError[];
  /** Per-rule time in ms, when timings were asked for. */
  ruleMs?: Record<string, number>;
  stageMs?: StageMs;
  /** sha256 of the bytes analysed, when the cache asked for it; never stored in the cache. */
  hash?: string;
  /**
   * sha256 of the summary's bytes ('' when the file has no summary), set by the cache when it
   * stores the outcome: the repo phase's input from this file, by content (see
   * `ScanCache.summariesKey`).
   */
  summaryHash?: string;
  /**
   * Files outside this one whose state the outcome depends on (Rule 6's small-file evidence
   * stats a path named in the flagged call): root-relative path and the size seen (-1: not a
   * regular file). The cache re-checks them before trusting the outcome.
   */
  deps?: [string, number][];
}

/**
 * What a file's discovery facts depend on: its own text only (`self`), also the modules it
 * looked a constant up in (`external`, with the paths it tried), or nothing sure (`problem`: the
 * pass failed on it). The cache reuses only `self` results; the others are recorded so that a
 * rescan can tell whether they changed.
 */
export type FactsKind = 'self' | 'external' | 'problem';
export type FactsRead = [file: string, kind: FactsKind, deps?: string[]];

export interface BatchResult {
  files: FileOutcome[];
  /** The `facts` pass's results, one per file that was worth parsing or failed. */
  facts?: PythonFactsResult[];
  /** Every file the `facts` pass read, with what its result (possibly none) depends on (see {@link FactsRead}). */
  factsRead?: FactsRead[];
  parser: string;
  parseMs: number;
}

let nextContextId = 1;

export function shareContext(context: ProjectContext): SharedContext {
  const bytes = new TextEncoder().encode(JSON.stringify(context));
  const buffer = new SharedArrayBuffer(bytes.length);
  new Uint8Array(buffer).set(bytes);
  return { id: nextContextId++, buffer };
}

export function readSharedContext(shared: SharedContext): ProjectContext {
  // TextDecoder does not accept views on shared memory: copy out first.
  const bytes = new Uint8Array(shared.buffer.byteLength);
  bytes.set(new Uint8Array(shared.buffer));
  return JSON.parse(new TextDecoder().decode(bytes)) as ProjectContext;
}
