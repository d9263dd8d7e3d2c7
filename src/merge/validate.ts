/**
 * Context validation after all families ran: Rule 1 (a finding an ADR or planned item names
 * becomes advisory) and Rule 6 (execution-context points lower the severity). Every downgrade
 * records which rule and which evidence.
 */
import type { ProjectContext } from '../discovery/context.js';
import { sqliteOnlyEvidence } from '../discovery/sqliteOnly.js';
import { SEVERITIES, SEVERITY_RANK, type Finding, type Severity } from '../types.js';
import { EXECUTION_CONTEXT_CHECKS } from './executionContext.js';
import type { ExecutionContext } from '../analysis/executionContext.js';

/** Findings never downgraded when they sit in a handler: N+1 and N-UPDATE loops. */
const NEVER_DOWNGRADED_IN_HANDLERS = new Set(['PA107', 'PA108', 'PA102']);

export interface ValidationInput {
  finding: Finding;
  /** Rule 6 points gathered in the worker. */
  executionEvidence: string[];
  inHandler: boolean;
  /** The rule's `lowInBackground`: at most low when only background jobs reach the code. */
  lowInBackground?: true;
  /** The rule's `failure`: the code raises, whoever runs it and whatever the database. */
  failure?: true;
  /** The finding's code runs only once (migration, script, startup, import): from the call graph. */
  oneOff?: ExecutionContext | null;
  /** The finding's code is in a coroutine that only ever runs on an event loop of its own: why. */
  privateLoop?: string | null;
}

/**
 * Per-item query work in a background job costs the job's throughput, not a user's wait: at most
 * low (the field review judged every such high N+1 in a scheduled job low or advisory).
 */
const LOWERED_IN_BACKGROUND = new Set(['PA101', 'PA102', 'PA105', 'PA107', 'PA108']);

/**
 * The most other findings claim when only background jobs reach the code. A commit per item in a
 * job (a periodic sync over rows, idempotent by design: a half-applied run is redone by the next
 * one) is `low`; a wait inside a job's open transaction holds its connection and locks for as long,
 * but no user's request is the one waiting on the job: `medium`.
 */
const BACKGROUND_CAPS = new Map<string, Severity>([['PA207', 'low'], ['PA202', 'medium'], ['PA205', 'medium']]);

/**
 * Findings whose cost is one database round trip per statement, and the most they claim when the
 * database is SQLite, a file read in the process (`sqliteOnlyEvidence`): a per-row write, a
 * refetch or a sync call's wait on the event loop is low; an N+1 over rows that grow is still a
 * loop of statements (tens of microseconds each), medium. Not a commit per row (an fsync each
 * there too).
 */
const PER_STATEMENT_COSTS = new Map<string, Severity>([
  ['PA101', 'low'], ['PA102', 'low'], ['PA103', 'low'], ['PA105', 'low'], ['PA110', 'low'], ['PA307', 'low'],
  ['PA107', 'medium'], ['PA108', 'medium'],
]);

/**
 * Per-item work that a job's context makes advisory when its rule already rated it `low`: the
 * query loops lowered in jobs, and a commit per item.
 */
const ADVISORY_WHEN_LOW_IN_BACKGROUND = new Set([...LOWERED_IN_BACKGROUND, 'PA207']);

/** Why a finding in a job that its rule rated low is not worth a report. */
const LOW_WHY = 'already low where it runs (a bounded loop, a per-item workflow), and a job\'s run is all it costs: no user waits on it';

/** Checks whose claim is that the event loop, shared by everything the process serves, waits. */
const EVENT_LOOP_CHECKS = new Set(['blocking_io_in_async', 'sync_sleep_in_async', 'missing_to_thread', 'sync_db_in_async']);

/** Checks about names, not about code that runs: where the code runs does not matter. */
const CONTEXT_FREE_CHECKS = new Set(['event_channel_consistency']);
/** An engine, factory or session registry configured at startup or import is the one that serves the requests. */
const STARTUP_SERVES_REQUESTS = new Set(['pool_configuration', 'scoped_session_not_removed']);

export function validateFinding(input: ValidationInput, context: ProjectContext): Finding {
  const finding = validateSeverity(input, context);
  // A claim about a shared event loop, on a loop nothing else runs on (a job's `asyncio.run`),
  // once the other points have set the severity it would have.
  if (input.privateLoop && !input.inHandler && !finding.advisory && EVENT_LOOP_CHECKS.has(finding.check)) {
    finding.advisory = true;
    finding.downgrades.push({ rule: 'execution_context', from: finding.severity, to: 'advisory', evidence: input.privateLoop });
  }
  return finding;
}

function validateSeverity(input: ValidationInput, context: ProjectContext): Finding {
  const { finding } = input;
  // A crash is not a cost that a small audience (an admin page, a background job) makes smaller.
  const once = input.failure && (input.oneOff?.kind === 'admin' || input.oneOff?.kind === 'background') ? null : input.oneOff;
  if (once?.kind === 'admin') {
    // A page only administrators open, now and then: a per-row cost there is one admin's wait,
    // not every visitor's (the reviews judged such high N+1s medium at most).
    if (LOWERED_IN_BACKGROUND.has(finding.code) && (finding.severity === 'high' || finding.severity === 'critical')) {
      finding.downgrades.push({ rule: 'execution_context', from: finding.severity, to: 'medium', evidence: once.evidence });
      finding.severity = 'medium';
      return finding;
    }
  } else if (once?.kind === 'background') {
    const cap = LOWERED_IN_BACKGROUND.has(finding.code) || input.lowInBackground ? 'low' : BACKGROUND_CAPS.get(finding.code);
    if (cap && SEVERITY_RANK[finding.severity] > SEVERITY_RANK[cap]) {
      finding.downgrades.push({ rule: 'execution_context', from: finding.severity, to: cap, evidence: once.evidence });
      finding.severity = cap;
      return finding;
    }
    // Low by the rule's own reading before any job was considered (a loop over a few items, a
    // per-item workflow whose round trips are there anyway), in a job: a few round trips of a
    // job's run, which no user waits on. The reviews of never-seen services judged such findings
    // advisory nearly every time.
    if (ADVISORY_WHEN_LOW_IN_BACKGROUND.has(finding.code) && finding.severity === 'low' && !finding.advisory) {
      finding.advisory = true;
      finding.downgrades.push({ rule: 'execution_context', from: 'low', to: 'advisory', evidence: `${once.evidence}; ${LOW_WHY}` });
      return finding;
    }
  } else if (once && !CONTEXT_FREE_CHECKS.has(finding.check) && !(once.kind === 'startup' && STARTUP_SERVES_REQUESTS.has(finding.check))) {
    finding.advisory = true;
    finding.downgrades.push({ rule: 'execution_context', from: finding.severity, to: 'advisory', evidence: once.evidence });
    return finding;
  }
  if (finding.severity !== 'high' && finding.severity !== 'medium') return finding;
  // Nor one that a database without round trips makes cheaper.
  const cap = (f: Finding) => (input.failure ? f : capForSqlite(f, context));
  if (input.inHandler && NEVER_DOWNGRADED_IN_HANDLERS.has(finding.code)) return cap(finding);

  const adr = matchingAdr(finding, context);
  if (adr) {
    finding.advisory = true;
    finding.downgrades.push({ rule: 'adr_override', from: finding.severity, to: 'advisory', evidence: `[Planned: ${adr.id}] ${adr.reason}` });
    return finding;
  }
  cap(finding);
  if (EXECUTION_CONTEXT_CHECKS.has(finding.check) && input.executionEvidence.length > 0) {
    const points = input.executionEvidence.length;
    const evidence = input.executionEvidence.join('; ');
    if (points >= 3) {
      finding.advisory = true;
      finding.downgrades.push({ rule: 'execution_context', from: finding.severity, to: 'advisory', evidence });
    } else {
      const to = lower(finding.severity);
      finding.downgrades.push({ rule: 'execution_context', from: finding.severity, to, evidence });
      finding.severity = to;
    }
  }
  return finding;
}

/** Round trips that SQLite does not make: a per-statement cost there is a library call's (`PER_STATEMENT_COSTS`). */
function capForSqlite(finding: Finding, context: ProjectContext): Finding {
  const cap = PER_STATEMENT_COSTS.get(finding.code);
  if (!cap || SEVERITY_RANK[finding.severity] <= SEVERITY_RANK[cap]) return finding;
  const sqlite = sqliteOnlyEvidence(context);
  if (sqlite) {
    finding.downgrades.push({ rule: 'database', from: finding.severity, to: cap, evidence: sqlite });
    finding.severity = cap;
  }
  return finding;
}

function lower(s: Severity): Severity {
  const i = SEVERITIES.indexOf(s);
  return SEVERITIES[Math.min(SEVERITIES.length - 1, i + 1)]!;
}

const CLOSED_STATUS = /\b(rejected|superseded|deprecated|withdrawn)\b/i;

function matchingAdr(finding: Finding, context: ProjectContext): { id: string; reason: string } | null {
  const adrs = context.adrs.filter((a) => !CLOSED_STATUS.test(a.status ?? ''));
  for (const adr of adrs) {
    const text = adr.text ?? '';
    if (!text) continue;
    if (text.includes(finding.path)) return { id: adr.id, reason: `names ${finding.path}` };
    if (new RegExp(`\\b${finding.check}\\b`).test(text)) return { id: adr.id, reason: `names ${finding.check}` };
    const fn = finding.function;
    if (fn && fn.length >= 4 && new RegExp(`(\`${escape(fn)}(\\(\\))?\`|\\b${escape(fn)}\\(\\))`).test(text)) {
      return { id: adr.id, reason: `names ${fn}()` };
    }
  }
  return null;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
