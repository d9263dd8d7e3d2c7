/**
 * The rule API. A rule is one module exporting its metadata (the source of `explain`, `rules`,
 * SARIF rule metadata and the docs) and its check. File rules see one file's semantic model;
 * repo rules see every file's summary and the call graph built from them.
 */
import type { SyntaxNode } from '../parse/parser.js';
import type { FileModel } from '../semantic/model.js';
import type { ProjectContext } from '../discovery/context.js';
import type { ChainStep, Effort, Family, Severity, SinkRef } from '../types.js';
import type { RepoIndex } from '../analysis/summary.js';

export interface RuleMeta {
  code: string;
  check: string;
  family: Family;
  severity: Severity;
  effort: Effort;
  /** One line: what the rule finds. */
  summary: string;
  /** What it does, in a paragraph. */
  what: string;
  /** Why it is bad. */
  why: string;
  /** A Python example that the rule flags. */
  bad: string;
  /** The fixed version. */
  good: string;
  /** The fix in one line, used as the finding's recommendation. */
  fix: string;
  references: string[];
}

export interface Location {
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
}

export interface RuleReport {
  /** The node to point at, or an explicit location. */
  node?: SyntaxNode;
  location?: Location;
  message: string;
  /** Defaults to the rule's severity. */
  severity?: Severity;
  /**
   * The rule's own judgement that the finding is only advisory, with its evidence (a library's
   * semantics that make it cheap in the common case): kept in the report, out of the scores and
   * the exit code, recorded as a downgrade.
   */
  advisory?: string;
  /**
   * Only a job's throughput is at stake when background jobs alone reach the code (a read-only
   * transaction held across a remote call): `low` there, as execution context decides.
   */
  lowInBackground?: true;
  /**
   * The finding claims the code fails (raises), not that it is slow: no cost-based lowering
   * applies (SQLite's missing round trips, a background job's or an admin page's small audience).
   */
  failure?: true;
  recommendation?: string;
  /** Name of the function the finding is in. */
  function?: string;
  chain?: ChainStep[];
  /** The call sites this one report stands for (see `Finding.callers`). */
  callers?: ChainStep[];
  /**
   * The blocking call an event-loop chain ends at: the merge reports the chains of three or more
   * coroutines that survive suppressions and execution context once, there (merge/sharedSinks.ts).
   */
  sink?: SinkRef;
  /**
   * The same defect as the finding another rule reports at this line of the same file (PA105's
   * INSERT per row flushed by a commit per item is PA207's commit per item): dropped at merge
   * when that finding survives, not advisory; kept otherwise.
   */
  sameDefectAs?: { code: string; line: number };
  /**
   * Advisory, with this evidence, when nothing in the repo calls the function the finding is in
   * (a framework dispatches it): a request-scoped session's teardown then cleans up before anyone
   * else can use it (PA204 on Flask's `db.session`). Decided in the repo phase.
   */
  rolledBackAtTeardown?: string;
}

export interface FileRuleContext {
  model: FileModel;
  project: ProjectContext;
  report(r: RuleReport): void;
}

export interface FileRule {
  meta: RuleMeta;
  checkFile(ctx: FileRuleContext): void;
}

export interface RepoReport extends RuleReport {
  path: string;
  /** The finding's source line text, for the fingerprint and suppressions. */
  location: Location;
}

export interface RepoRuleContext {
  index: RepoIndex;
  project: ProjectContext;
  report(r: RepoReport): void;
}

export interface RepoRule {
  meta: RuleMeta;
  checkRepo(ctx: RepoRuleContext): void;
}

export type Rule = FileRule | RepoRule;

export function isFileRule(rule: Rule): rule is FileRule {
  return typeof (rule as FileRule).checkFile === 'function';
}

export function isRepoRule(rule: Rule): rule is RepoRule {
  return typeof (rule as RepoRule).checkRepo === 'function';
}

/** Location of a node, 1-based. */
export function nodeLocation(node: SyntaxNode): Location {
  return {
    line: node.startPosition.row + 1,
    column: node.startPosition.column + 1,
    endLine: node.endPosition.row + 1,
    endColumn: node.endPosition.column + 1,
  };
}
