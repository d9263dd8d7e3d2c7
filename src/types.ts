/** Shared plain-data types: everything here crosses thread boundaries by structured clone. */

export type Severity = 'critical' | 'high' | 'medium' | 'low';
export const SEVERITIES: readonly Severity[] = ['critical', 'high', 'medium', 'low'];
export const SEVERITY_RANK: Record<Severity, number> = { critical: 4, high: 3, medium: 2, low: 1 };

export type Family = 'query' | 'transaction' | 'runtime' | 'lifecycle';
export const FAMILIES: readonly Family[] = ['query', 'transaction', 'runtime', 'lifecycle'];
export const FAMILY_TITLES: Record<Family, string> = {
  query: 'Query Efficiency',
  transaction: 'Transaction Correctness',
  runtime: 'Runtime Performance',
  lifecycle: 'Resource Lifecycle',
};

export type Effort = 'S' | 'M' | 'L' | 'S-M' | 'M-L';

export interface Downgrade {
  rule: string;
  from: Severity;
  to: Severity | 'advisory';
  evidence: string;
}

/**
 * One hop of a finding reached through calls: the function, and the call it makes at that
 * place (the next function of the chain, or at the last step what it does: `requests.get`).
 */
export interface ChainStep {
  path: string;
  line: number;
  column: number;
  function: string;
  call: string;
}

/**
 * The blocking call at the end of an event-loop chain, for findings that several coroutines may
 * share (see merge/sharedSinks.ts): where it is, the function it is in, and what it calls.
 */
export interface SinkRef {
  path: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  /** The function with the blocking call: its name, and its qualified name for messages. */
  function: string;
  qualifiedName: string;
  /** What the call does, as messages name it (`time.sleep`, `Session.execute`). */
  what: string;
  /** Trimmed text of its line, for the grouped finding's fingerprint (set by the repo phase). */
  lineText?: string;
}

export interface Finding {
  code: string;
  check: string;
  category: Family;
  severity: Severity;
  originalSeverity: Severity;
  advisory: boolean;
  path: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  function?: string;
  message: string;
  recommendation: string;
  effort: Effort;
  chain?: ChainStep[];
  /**
   * The call sites a finding reported once stands for (a blocking call that several coroutines
   * reach through the same helper): each caller's call into the chain.
   */
  callers?: ChainStep[];
  downgrades: Downgrade[];
  fingerprint: string;
}

export interface SkippedFile {
  path: string;
  reason: string;
}

export interface InternalError {
  path: string;
  rule?: string;
  message: string;
}

export interface ScanStats {
  files: number;
  lines: number;
  bytes: number;
  parseErrors: number;
  parseErrorFiles: string[];
  skipped: SkippedFile[];
  internalErrors: InternalError[];
  durationMs: number;
}

export interface Scores {
  query?: number;
  transaction?: number;
  runtime?: number;
  lifecycle?: number;
  overall: number;
}
