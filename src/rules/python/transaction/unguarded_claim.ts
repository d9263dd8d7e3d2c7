/**
 * PA213 unguarded_claim
 *
 * What it does: finds a claim that two workers can both win: rows of a model read by a state
 * column (`select(Job).where(Job.status == "queued")`, `query(Job).filter_by(state=State.NEW)`,
 * `Job.locked_at.is_(None)`), then the same column of the row read set to another value and
 * committed (or flushed) in the same function — with no row lock on the read
 * (`with_for_update(skip_locked=True)`) and no conditional `UPDATE … WHERE status = 'queued'`
 * whose row count says who won.
 *
 * Why is this bad? Under READ COMMITTED two workers (or two requests) run the SELECT before
 * either commits, both see the row in its old state and both "claim" it: the job runs twice,
 * the coupon is spent twice, the email goes out twice. The write of the new state does not
 * conflict: the second UPDATE simply waits for the first and then overwrites it.
 *
 * Severity: medium in a request handler or a background job (concurrency is their normal
 * state), low elsewhere.
 * Also a row read by any key (its primary key, a code) whose state is then checked in Python
 * before the function moves it out of that state, commits and acts on the row with a call
 * (`if v.spent_at is not None: raise` … `v.spent_at = now()` … `credit(v.amount)`): two requests
 * both pass the check (see `guardedReads`).
 *
 * Silent look-alikes: the read with `with_for_update(...)`; an UPDATE with the old state in its
 * WHERE and a check of `rowcount` (or `.returning(...)`) in the function; a row read by its
 * primary key or by a value that is not a state (the column compared with a variable), unless
 * its state is checked in Python as above; a new value equal to the old one; for a Python check,
 * a write before the check, a write back to the state the check let through, a row only
 * returned afterwards (an idempotent cancel), a model with `version_id_col` in the module.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import type { AssignmentInfo, FileModel, FunctionInfo } from '../../../semantic/model.js';
import { mayBeRepoCall, type Effect } from '../../../analysis/summary.js';
import { callGraphOf, siteCalls, type CallEdge, type CallGraph, type FnRef } from '../../../analysis/callgraph.js';
import { callAt, effectiveRole } from '../../../semantic/model.js';
import { insideNestedFunction } from '../../../semantic/controlFlow.js';
import { classOfFunction } from '../../../semantic/classes.js';
import { libraryClassModel, repositoryLibraryClasses } from '../../../semantic/repositoryLibrary.js';
import { assignmentsByFunction, callArgs, callsOf, HELD_LOCK, lastAssignment, unwrap } from './semantics.js';
import { returnedValues, returnsOf } from '../query/selfRows.js';
import { classifyDbCall, readsDatabase } from '../query/dbCalls.js';

const MODEL_OF_STATEMENT = /\b(?:select|query)\(\s*(?:[\w.]*\.)?([A-Z]\w*)\s*\)/;
const MODEL_QUERY_PROPERTY = /\b([A-Z]\w*)\.query\s*\./;
/** The read ends in one row or in a list of rows. */
const ROWS_READ = /\.(first|one_or_none|scalar_one_or_none|one|all|scalar)\s*\(\s*\)\s*$|^\s*(await\s+)?[\w.]+\.(scalar|get_one)\s*\(/;
/** A commit, a flush, or a `with …begin():` block that commits when it ends. */
const ENDS_TRANSACTION = /\.(commit|flush)\s*\(|\.begin\(\s*\)/;
/** A conditional UPDATE whose result says whether this call won the row (both parts in the function). */
const CONDITIONAL_UPDATE = /\bupdate\s*\(/;
const UPDATE_RESULT = /\.rowcount\b|\.returning\s*\(/;
/** A literal state: a string, a `None`/`False`/`True`, an enum member (`JobState.QUEUED`, `Status.queued`). */
const STATE_VALUE = /^(["'][\w\- ]*["']|None|False|True|-?\d+|(false|true|null)\(\)|[A-Z][A-Z0-9_]+|(?:[a-z_]\w*\.)*[A-Z]\w*\.[A-Za-z_]\w*(?:\.value)?|\[[^\]]*\]|\([^)]*\))$/;
/** The value after a comparison: a name, a literal, `false()`, a list or tuple of states. */
const VALUE = /([\w.]+\(\)|[\w.]+|"[^"\n]*"|'[^'\n]*'|\[[^\]\n]*\]|\([^)\n]*\))/y;

export const unguardedClaim: FileRule & RepoRule = {
  meta: {
    code: 'PA213',
    check: 'unguarded_claim',
    family: 'transaction',
    severity: 'medium',
    effort: 'S',
    summary: 'Rows read in one state and moved to another without a lock: two workers can claim the same row',
    what: 'Finds a claim without a lock: rows of a model read by a state column compared with a literal (`select(M).where(M.status == "queued")`, `query(M).filter_by(state=State.NEW)`, `M.locked_at.is_(None)`, `M.sent == False`), a single row (`.first()`, `.one_or_none()`, `scalar_one_or_none()`) or each row of the result in a loop, then that same column of the row set to another value (`job.status = "running"`) and committed or flushed in the same function, and the row (or its id) then handed to a call or returned (rows marked in one loop and committed once: then walked again and each handed to a call, `for j in jobs: run.delay(j.id)`, or returned when the new state or the column says work is under way, `running`, `picked_at`), or handed first to a call that is a statement of its own and marked after (`send(n); n.sent_at = now()`: two overlapping runs both send) — the claim is taken to act on the row alone; a sweep that only moves rows to a final state claims nothing, nor one that only checks a row with a call (`if stale(job):`) — when the read takes no lock (`with_for_update(skip_locked=True)`) and the function checks no conditional UPDATE (`rowcount`, `.returning(...)`) and holds no lock of its own (`with redis.lock(...)`, a project helper named for a lock, `lock.acquire()`, an advisory lock). Also a row read by a key (`session.get(M, pk)`, `select(M).where(M.code == c)`, a library `get_one_or_none(code=c)`) whose state is checked in Python before it is marked (`if v is None or v.spent_at is not None: raise` then `v.spent_at = now()`, committed, and the row acted on): two requests both pass the check (a single-use token or code used twice); a row marked in a column named for its use (`used_at`, `redeemed`, `consumed_on`, `spent_at`, `claimed_by`) and then only returned counts when a request handler that calls the function binds what it gets back and hands it to a call that is not a lookup (`tok = use_token(t)` then `reset_password(tok.user_id, pw)`, not only `db.get(User, tok.user_id)`): the use is the caller\'s, while a cancel or a publish answered with the row acts on nothing twice. Also across a call: a helper of the repo that returns the one row it read by state without a lock (`def oldest_waiting(s): return s.scalars(select(Job).where(Job.status == "queued")).first()`), and a caller that moves that column on the row it got, commits and acts on it. Medium in a request handler or a background job, low elsewhere.',
    why: 'Under READ COMMITTED, PostgreSQL\'s default, two workers run the SELECT before either commits, both see the row in its old state and both claim it: the job runs twice, the coupon is spent twice, the email is sent twice. Writing the new state does not conflict — the second UPDATE waits for the first and then overwrites it.',
    bad:
      'from sqlalchemy import String, select\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column\n\n\n'
      + 'class Base(DeclarativeBase):\n    pass\n\n\nclass Job(Base):\n    __tablename__ = "jobs"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    status: Mapped[str] = mapped_column(String(16))\n\n\n'
      + 'def claim_next(session: Session) -> Job | None:\n    job = session.scalars(select(Job).where(Job.status == "queued").limit(1)).first()\n    if job is None:\n        return None\n    job.status = "running"\n    session.commit()\n    return job\n',
    good:
      'from sqlalchemy import String, select\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column\n\n\n'
      + 'class Base(DeclarativeBase):\n    pass\n\n\nclass Job(Base):\n    __tablename__ = "jobs"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    status: Mapped[str] = mapped_column(String(16))\n\n\n'
      + 'def claim_next(session: Session) -> Job | None:\n    stmt = select(Job).where(Job.status == "queued").limit(1).with_for_update(skip_locked=True)\n    job = session.scalars(stmt).first()\n    if job is None:\n        return None\n    job.status = "running"\n    session.commit()\n    return job\n',
    fix: 'lock the rows you claim (`.with_for_update(skip_locked=True)` on the SELECT), or claim with one conditional statement (`update(M).where(M.id == id, M.status == "queued").values(status="running")`) and go on only when its `rowcount` is 1',
    references: [
      'https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE',
      'https://docs.sqlalchemy.org/en/20/orm/queryguide/query.html#sqlalchemy.orm.Query.with_for_update',
      'https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    for (const c of fileClaims(ctx.model)) {
      if (!c.returnedOnly) ctx.report({ node: c.node, message: c.message, severity: c.severity });
    }
  },
  /**
   * A claim split across a call: a helper of the repo returns the row it read by state
   * (`def next_waiting(s): return s.scalars(select(Job).where(Job.status == "queued")).first()`)
   * and the caller moves that column, commits and acts on the row.
   */
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    for (const { ref, file, fn, site, to } of siteCalls(graph, CLAIM_CALLS)) {
      const source = graph.ownEffects(to).find((e) => e.kind === CLAIM_SOURCE);
      if (!source) continue;
      const [entity = '', stateText = '', kind = '', linesText = ''] = source.what.split('|');
      const checkLines = new Map(linesText.split(',').filter(Boolean).map((kl) => [kl.slice(0, kl.lastIndexOf(':')), Number(kl.slice(kl.lastIndexOf(':') + 1))] as const));
      const states = new Map(stateText.split(',').filter(Boolean).map((kv) => kv.split('=', 2) as [string, string]));
      const fact = JSON.parse(site.what) as ClaimCallFact;
      // A row the helper checked in Python must be acted on by a call here (as in one function).
      const guarded = kind === 'g';
      // Or a single-use row marked and returned, acted on by a caller of this function.
      const acting = guarded && !fact.byCall && fact.returned ? actingCaller(graph, ref) : null;
      if (guarded && !fact.byCall && !acting) continue;
      for (const w of fact.writes) {
        const state = stateOf(states, w.column);
        if (!state || (guarded ? !movesFrom(state.value, w.value) : state.value === w.value)) continue;
        const old = state.value;
        const helper = graph.function(to).qualifiedName;
        ctx.report({
          path: file.path,
          location: { line: w.line, column: w.col, endLine: w.endLine, endColumn: w.endCol },
          message: guarded
            ? `unguarded check-then-set on \`${entity}.${w.column}\`: \`${fact.row}\` comes from \`${helper}()\`, which reads it by a key and checks \`${state.checked}\` in Python (line ${checkLines.get(state.checked) ?? source.line}), and its \`${w.column}\` is set to \`${w.value.slice(0, 40)}\` here, then ${fact.end} (line ${fact.endAt}), and the row is acted on${acting ? ` by \`${graph.function(acting.from).qualifiedName}()\` (${graph.fileOf(acting.from).path}:${acting.call.line}), which gets it back` : ''}, with no row lock (\`with_for_update()\`) and no conditional UPDATE: two requests can both pass the check before either commits (a single-use token or code used twice)`
            : `unguarded claim on \`${entity}.${w.column}\`: \`${fact.row}\` comes from \`${helper}()\`, which reads it where \`${w.column}\` is \`${old}\` (line ${source.line}), and is moved to \`${w.value.slice(0, 40)}\` here, then ${fact.end} (line ${fact.endAt}), with no row lock (\`with_for_update(skip_locked=True)\` in the helper's query) and no conditional UPDATE: two workers can both read the row in its old state and both claim it`,
          severity: fn.effectiveRole === 'handler' || fn.effectiveRole === 'background' ? 'medium' : 'low',
          function: fn.name,
          chain: [{ path: file.path, line: site.line, column: site.column, function: fn.name, call: helper }],
        });
        break;
      }
    }
    // A single-use row checked, marked and returned (`def use_token(t): tok = get(t); if
    // tok.used_at: raise; tok.used_at = now(); flush; return tok`): the caller that acts on what it
    // got back (`reset_password(tok.user_id, ...)`) is where the row is used twice.
    for (const ref of graph.functions()) {
      const claims = graph.ownEffects(ref).filter((e) => e.kind === CLAIM_RETURNED);
      if (!claims.length) continue;
      const caller = actingCaller(graph, ref);
      if (!caller) continue;
      const file = graph.fileOf(ref);
      const fn = graph.function(ref);
      const callerFn = graph.function(caller.from);
      for (const claim of claims) {
        const fact = JSON.parse(claim.what) as ReturnedClaim;
        ctx.report({
          path: file.path,
          location: { line: fact.line, column: fact.col, endLine: fact.endLine, endColumn: fact.endCol },
          message: `${fact.message}; \`${fn.name}()\` returns the row to \`${callerFn.qualifiedName}()\` (${graph.fileOf(caller.from).path}:${caller.call.line}), which acts on it`,
          severity: fact.severity,
          function: fn.name,
          chain: [{ path: graph.fileOf(caller.from).path, line: caller.call.line, column: caller.call.column, function: callerFn.name, call: fn.qualifiedName }],
        });
      }
    }
  },
};

/** A caller (outside tests) that binds what `ref` returns and hands it to a call that acts on it (its `RESULT_ACTED` site fact). */
function actingCaller(graph: CallGraph, ref: FnRef): CallEdge | undefined {
  return graph.callers(ref).find((e) => !graph.fileOf(e.from).isTestFile
    && graph.ownEffects(e.from).some((x) => x.kind === RESULT_ACTED && x.line === e.call.line && x.column === e.call.column));
}

/**
 * Own effect: a single-use row (see {@link SINGLE_USE}) the function checks in Python, marks, ends
 * the transaction of and returns, acting on nothing itself (`what` = JSON {@link ReturnedClaim}).
 */
export const CLAIM_RETURNED = 'claim_returned';
/**
 * Own effect at a call's position: the call's result is bound to a name that is then handed to a call
 * that acts on it (`tok = use(t); reset(tok.user_id)`). Not a site kind: it keeps no call the
 * summary would drop (only a kept call is an edge to the function whose claim it completes).
 */
export const RESULT_ACTED = 'result_acted';

interface ReturnedClaim {
  message: string;
  severity: 'medium' | 'low';
  line: number;
  col: number;
  endLine: number;
  endCol: number;
}

/**
 * A column whose setting records that a single-use row was used (`used_at`, `redeemed`,
 * `consumed_on`): marking it is the use, so the row handed back after the mark is used by the
 * caller. A cancel or a publish (`cancelled_at`, `status`) answered with the row acts on nothing.
 */
const SINGLE_USE = /^(is_)?(used|consumed|redeemed|spent|claimed)(_(at|on|time|date|by))?$/;

/**
 * Own effect: the function returns one row it read by a state column, unlocked (`what` =
 * `Model|col=value,...`), or one it read by a key and checked in Python (`Model|col=value,...|g|col:line,...`,
 * with the line of each column's check).
 */
export const CLAIM_SOURCE = 'claim_source';
/** Site fact: a row bound from a call whose state columns the function then moves, commits and acts on (`what` = JSON {@link ClaimCallFact}). */
export const CLAIM_CALL = 'claim_call';
const CLAIM_CALLS: ReadonlySet<string> = new Set([CLAIM_CALL]);

interface ClaimCallFact {
  row: string;
  writes: { column: string; value: string; line: number; col: number; endLine: number; endCol: number }[];
  end: string;
  endAt: number;
  /** The row is acted on by a call after the write (not only returned). */
  byCall?: boolean;
  /** A single-use column is marked (see {@link SINGLE_USE}) and the row returned: acted on if a caller acts on it. */
  returned?: boolean;
}

/**
 * The state a check left on a column, by the column's name or by a boolean property named for
 * it (`is_used` checked, `used_at` written; `is_revoked` / `revoked_at`), with what was checked.
 */
function stateOf(states: ReadonlyMap<string, string>, column: string): { value: string; checked: string } | null {
  const direct = states.get(column);
  if (direct !== undefined) return { value: direct, checked: column };
  const stem = /^(\w+?)(?:_(?:at|on|time|date))$/.exec(column)?.[1];
  const alias = stem ? `is_${stem}` : null;
  const v = alias ? states.get(alias) : undefined;
  // `is_used` true means the column is set: the check let the row through only when it was not.
  return v !== undefined ? { value: v, checked: alias! } : null;
}

/** A repository library's write (see {@link LIBRARY_WRITE}) in a method of a class of the file built on the library. */
function libraryWrite(model: FileModel, fnIndex: number, node: SyntaxNode): boolean {
  if (!LIBRARY_WRITE.test(node.text)) return false;
  const cls = classOfFunction(model, fnIndex);
  return !!cls && repositoryLibraryClasses(model).has(cls);
}

/** A repository library's write on the service or its repository: it flushes (commits with `auto_commit=True`). */
const LIBRARY_WRITE = /^(?:await\s+)?self(?:\.repository)?\.(update|add|upsert|create)\s*\(/;

/**
 * PA213's facts for the repo phase: functions that return one row read by state without a lock
 * (`CLAIM_SOURCE`), and rows bound from a call that the function then moves to another state,
 * commits and acts on (`CLAIM_CALL`).
 */
export function collectClaimFacts(model: FileModel): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return effects;
  const byFn = assignmentsByFunction(model);
  resultsActedOn(model, byFn, effects);
  if (!/\b(select|query)\b/.test(model.source) && !ENDS_TRANSACTION.test(model.source) && !LIBRARY_WRITE_TEXT.test(model.source) && !guardedReadText(model.source)) return effects;
  // A single-use row marked and returned: the repo phase asks whether a caller acts on it.
  for (const c of fileClaims(model)) {
    if (!c.returnedOnly) continue;
    const s = c.node.startPosition;
    const e = c.node.endPosition;
    const fact: ReturnedClaim = { message: c.message, severity: c.severity, line: s.row + 1, col: s.column + 1, endLine: e.row + 1, endCol: e.column + 1 };
    effects[c.fnIndex]!.push({ kind: CLAIM_RETURNED, what: JSON.stringify(fact), line: s.row + 1, column: s.column + 1 });
  }
  model.functions.forEach((fn, fnIndex) => {
    const text = model.source.slice(fn.start, fn.end);
    if (/\breturn\b/.test(text) && /(==|filter_by|is_\(|in_\()/.test(text)) {
      const source = returnedStateRead(model, fnIndex);
      if (source) effects[fnIndex]!.push({ kind: CLAIM_SOURCE, what: `${source.model}|${[...source.states].map(([k, v]) => `${k}=${v}`).join(',')}`, line: source.line, column: 1 });
    }
    // A row read by a key, checked in Python and returned (`def validate(code): tok = get(...);
    // if tok.is_used: raise ...; return tok`): the caller that marks it claims it.
    if (/\breturn\b/.test(text) && guardedReadText(text) && !effects[fnIndex]!.some((e) => e.kind === CLAIM_SOURCE)) {
      const returned = new Set(fn.node.descendantsOfType('return_statement').filter((r) => !insideNestedFunction(r, fn.node)).map((r) => unwrap(r.namedChild(0))?.text ?? ''));
      const read = guardedReads(model, fnIndex, byFn.get(fnIndex) ?? []).find((r) => returned.has(r.row));
      if (read) effects[fnIndex]!.push({ kind: CLAIM_SOURCE, what: `${read.model}|${[...read.states].map(([k, v]) => `${k}=${v}`).join(',')}|g|${[...(read.checkLines ?? [])].map(([k, l]) => `${k}:${l}`).join(',')}`, line: read.guard ?? read.line, column: 1 });
    }
    if (!(ENDS_TRANSACTION.test(text) || LIBRARY_WRITE_TEXT.test(text)) || (CONDITIONAL_UPDATE.test(text) && UPDATE_RESULT.test(text)) || HELD_LOCK.test(text)) return;
    const assignments = byFn.get(fnIndex) ?? [];
    for (const a of assignments) {
      if (!a.value || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
      let value = unwrap(a.value) ?? a.value;
      if (value.type === 'await') value = unwrap(value.namedChild(0)) ?? value;
      if (value.type !== 'call' || ROWS_READ.test(value.text) || /\b(select|query)\s*\(/.test(value.text)) continue;
      const call = callAt(model, value);
      if (!call) continue;
      const fact = claimAfter(model, fnIndex, assignments, a.target, a.node.endIndex, fn.end);
      if (fact) effects[fnIndex]!.push({ kind: CLAIM_CALL, what: JSON.stringify(fact), line: call.line, column: call.column });
    }
  });
  return effects;
}

/**
 * `RESULT_ACTED` facts: in a request handler, a call whose result is bound to a name (`tok = await
 * svc.use(t)`) that the handler then hands to a call that acts on it (`await reset(tok.user_id,
 * pw)`; see {@link usedAfter}). The test is cheap on text first (the name, or an attribute of it,
 * is a later call's argument).
 */
function resultsActedOn(model: FileModel, byFn: Map<number, AssignmentInfo[]>, effects: Effect[][]): void {
  for (const [fnIndex, assignments] of byFn) {
    const fn = model.functions[fnIndex];
    // The use that a returned single-use row is for happens where a request is answered: in a handler.
    if (!fn || effectiveRole(model, fnIndex) !== 'handler') continue;
    let nodes: FunctionNodes | null = null;
    for (const a of assignments) {
      if (!a.value || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
      let value = unwrap(a.value) ?? a.value;
      if (value.type === 'await') value = unwrap(value.namedChild(0)) ?? value;
      if (value.type !== 'call' || ROWS_READ.test(value.text)) continue;
      // The name, or an attribute of it, as an argument of a later call (`reset(tok.user_id)`, `f(x, user=tok.user)`).
      const after = model.source.slice(a.node.endIndex, fn.end);
      if (!new RegExp(`[(,=]\\s*(?:\\*\\*?)?${a.target}(?:\\.\\w+)*\\s*[,)]`).test(after)) continue;
      const call = callAt(model, value);
      if (!call || !mayBeRepoCall(call)) continue;
      nodes ??= functionNodes(fn.node);
      // A lookup with it (`db.get(User, tok.user_id)`) is no use of the row yet.
      if (!usedAfter(fn.node, a.target, a.node.endIndex, fn.end, true, nodes, false)) continue;
      effects[fnIndex]!.push({ kind: RESULT_ACTED, what: '', line: call.line, column: call.column });
    }
  }
}

/** The state read a function returns as one row (`return <read>`, or a name bound to one), or null. */
function returnedStateRead(model: FileModel, fnIndex: number): { model: string; states: Map<string, string>; line: number } | null {
  for (const v of returnedValues(model, fnIndex)) {
    if (!ROWS_READ.test(v.text) || /\.all\s*\(\s*\)\s*$/.test(v.text)) continue;
    const read = stateRead(readText(model, fnIndex, v.text, v.startPosition.row + 1), true);
    if (read) return { ...read, line: v.startPosition.row + 1 };
  }
  return null;
}

/**
 * After `row` is bound (at `from`), the columns the function sets on it with a transaction end
 * after the write and the row acted on (handed to a call, returned), or null.
 */
function claimAfter(model: FileModel, fnIndex: number, assignments: readonly AssignmentInfo[], row: string, from: number, to: number): ClaimCallFact | null {
  const fn = model.functions[fnIndex]!;
  const calls = callsOf(model, fnIndex);
  const writes: ClaimCallFact['writes'] = [];
  let end: { what: string; line: number } | null = null;
  let byCall = false;
  let returned = false;
  for (const a of assignments) {
    if (a.node.startIndex < from || a.node.endIndex > to || !a.value) continue;
    const m = /^([A-Za-z_]\w*)\.([a-z_]\w*)$/.exec(a.target);
    if (!m || m[1] !== row) continue;
    const commit = calls.find((c) => (((c.method === 'commit' || c.method === 'flush') && c.hasReceiver) || libraryWrite(model, fnIndex, c.node)) && c.node.startIndex > a.node.endIndex);
    if (!commit) continue;
    if (!usedAfter(fn.node, row, a.node.endIndex, to) && !actedOnBefore(fn.node, row, from, a.node.startIndex)) continue;
    byCall ||= usedAfter(fn.node, row, commit.node.endIndex, to, true);
    returned ||= SINGLE_USE.test(m[2]!) && returnedAfter(fn, row, commit.node.endIndex, to);
    end ??= { what: endWhat(commit), line: commit.line };
    const s = a.node.startPosition;
    const e = a.node.endPosition;
    writes.push({ column: m[2]!, value: a.value.text.replace(/\s+/g, ''), line: s.row + 1, col: s.column + 1, endLine: e.row + 1, endCol: e.column + 1 });
  }
  // The library's update of the row by its id with the new values: `self.update(item_id=row.id,
  // data={"used_at": now})` (or the values first, positionally).
  for (const c of calls) {
    if (c.node.startIndex < from || c.node.endIndex > to || !/^(?:self(?:\.repository)?\.)update$/.test(c.calleeText) || !libraryWrite(model, fnIndex, c.node)) continue;
    const args = callArgs(c.node);
    if (args.keywords.get('item_id')?.text.replace(/\s+/g, '') !== `${row}.id`) continue;
    const data = unwrap(args.keywords.get('data') ?? args.positional[0] ?? null);
    if (data?.type !== 'dictionary') continue;
    if (!usedAfter(fn.node, row, c.node.endIndex, to)) continue;
    byCall ||= usedAfter(fn.node, row, c.node.endIndex, to, true);
    returned ||= [...data.namedChildren].some((pair) => SINGLE_USE.test(/^["']([a-z_]\w*)["']$/.exec(pair.childForFieldName('key')?.text ?? '')?.[1] ?? '')) && returnedAfter(fn, row, c.node.endIndex, to);
    end ??= { what: endWhat(c), line: c.line };
    const s = c.node.startPosition;
    const e = c.node.endPosition;
    for (const pair of data.namedChildren) {
      const k = /^["']([a-z_]\w*)["']$/.exec(pair.childForFieldName('key')?.text ?? '')?.[1];
      const v = pair.childForFieldName('value');
      if (pair.type === 'pair' && k && v) writes.push({ column: k, value: v.text.replace(/\s+/g, ''), line: s.row + 1, col: s.column + 1, endLine: e.row + 1, endCol: e.column + 1 });
    }
  }
  return end && writes.length ? { row, writes, end: end.what, endAt: end.line, ...(byCall ? { byCall } : {}), ...(returned && !byCall ? { returned } : {}) } : null;
}

/** How the write is sent: a commit, a flush, or the library's write (which commits with `auto_commit=True`). */
function endWhat(c: { method: string; node: SyntaxNode }): string {
  if (c.method === 'commit') return 'committed';
  if (c.method === 'flush') return 'flushed';
  return /auto_commit\s*=\s*True/.test(c.node.text) ? `committed by \`${c.method}(auto_commit=True)\`` : `flushed by the library's \`${c.method}()\``;
}

interface StateRead {
  /** The name the row (or each row) is bound to. */
  row: string;
  model: string;
  /** State column → the literal it was read at. */
  states: Map<string, string>;
  line: number;
  /** Where the row's writes count: after the read, or inside the loop over the rows. */
  from: number;
  to: number;
  /** The row was read by its key and its state checked in Python (`if tok.used_at: raise`) at this line. */
  guard?: number;
  /** Where that check starts: a write before it is not guarded by it. */
  guardAt?: number;
  /** For a row checked in Python: the line of the first check of each column. */
  checkLines?: Map<string, number>;
  /** For rows claimed in a loop over a name (`for j in jobs:`): that name, which may be acted on after the commit. */
  rows?: string;
}

interface ClaimCandidate {
  fnIndex: number;
  node: SyntaxNode;
  message: string;
  severity: 'medium' | 'low';
  /** Acted on by nothing here, but a single-use row returned after its mark: the caller decides (repo phase). */
  returnedOnly?: boolean;
}

const claimsMemo = new WeakMap<FileModel, ClaimCandidate[]>();

/** PA213's one-function claims of the file (asked by the rule and by the summary's facts), once per file. */
function fileClaims(model: FileModel): ClaimCandidate[] {
  let out = claimsMemo.get(model);
  if (out) return out;
  out = [];
  claimsMemo.set(model, out);
  if (model.isTestFile || !(ENDS_TRANSACTION.test(model.source) || LIBRARY_WRITE_TEXT.test(model.source))) return out;
  model.functions.forEach((fn, fnIndex) => {
    const text = model.source.slice(fn.start, fn.end);
    if (!ENDS_TRANSACTION.test(text) && !LIBRARY_WRITE_TEXT.test(text)) return;
    if (!/(==|filter_by|is_\(|in_\()/.test(text) && !guardedReadText(text)) return;
    if ((CONDITIONAL_UPDATE.test(text) && UPDATE_RESULT.test(text)) || HELD_LOCK.test(text)) return;
    out!.push(...claimsOf(model, fnIndex, assignmentsByFunction(model).get(fnIndex) ?? []));
  });
  return out;
}

function claimsOf(model: FileModel, fnIndex: number, assignments: readonly AssignmentInfo[]): ClaimCandidate[] {
  const found: ClaimCandidate[] = [];
  const fn = model.functions[fnIndex]!;
  const reads: StateRead[] = [];
  for (const a of assignments) {
    if (!a.value || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
    const value = unwrap(a.value) ?? a.value;
    const text = readText(model, fnIndex, value.text, a.line);
    const loops = model.loops.filter((l) => l.functionIndex === fnIndex && l.iterable?.text === a.target && l.node.startIndex > a.node.endIndex);
    const single = ROWS_READ.test(value.text) && !/\.all\s*\(\s*\)\s*$/.test(value.text);
    if (!single && !loops.length) continue;
    const read = stateRead(text, true);
    if (!read) continue;
    if (!single) {
      // Rows: each is claimed in a loop over the name.
      for (const loop of loops) {
        const target = loop.node.childForFieldName('left');
        if (target?.type === 'identifier') reads.push({ row: target.text, ...read, line: a.line, from: loop.node.startIndex, to: loop.node.endIndex, rows: a.target });
      }
      continue;
    }
    reads.push({ row: a.target, ...read, line: a.line, from: a.node.endIndex, to: fn.end });
  }
  // `if (job := session.scalars(...).first()) is not None:`
  for (const w of fn.node.descendantsOfType('named_expression')) {
    const name = w.childForFieldName('name')?.text;
    const value = unwrap(w.childForFieldName('value'));
    if (!name || !value || !ROWS_READ.test(value.text) || /\.all\s*\(\s*\)\s*$/.test(value.text)) continue;
    const read = stateRead(readText(model, fnIndex, value.text, w.startPosition.row + 1), true);
    if (read) reads.push({ row: name, ...read, line: w.startPosition.row + 1, from: w.endIndex, to: fn.end });
  }
    // `for job in session.scalars(select(Job).where(Job.status == "queued")):`
  for (const loop of model.loops) {
    if (loop.functionIndex !== fnIndex || !loop.iterable || loop.kind === 'comprehension') continue;
    const read = stateRead(readText(model, fnIndex, loop.iterable.text, loop.node.startPosition.row + 1), true);
    const target = loop.node.childForFieldName('left');
    if (read && target?.type === 'identifier') reads.push({ row: target.text, ...read, line: loop.node.startPosition.row + 1, from: loop.node.startIndex, to: loop.node.endIndex });
  }
  reads.push(...guardedReads(model, fnIndex, assignments));
  if (!reads.length) return found;
  const calls = callsOf(model, fnIndex);
  for (const read of reads) {
    // The state written on the row (`job.status = "running"`), or by an UPDATE of that row alone
    // whose WHERE does not name the old state (`update(Job).where(Job.id == job.id).values(status=...)`).
    const writes: { node: SyntaxNode; column: string; value: string }[] = [];
    for (const a of assignments) {
      if (a.node.startIndex < read.from || a.node.endIndex > read.to) continue;
      const m = /^([A-Za-z_]\w*)\.([a-z_]\w*)$/.exec(a.target);
      if (m && m[1] === read.row) writes.push({ node: a.node, column: m[2]!, value: a.value?.text.replace(/\s+/g, '') ?? '' });
    }
    for (const c of calls) {
      if (c.method !== 'execute' || c.node.startIndex < read.from || c.node.endIndex > read.to) continue;
      const t = c.node.text.replace(/\s+/g, '');
      if (!t.includes(`update(${read.model})`) || !t.includes(`${read.row}.id`)) continue;
      for (const [column] of read.states) {
        const v = new RegExp(`\\.values\\([^)]*\\b${column}=([^,)]+)`).exec(t)?.[1];
        if (v && !t.includes(`${read.model}.${column}`)) writes.push({ node: c.node, column, value: v });
      }
    }
    writes.sort((x, y) => x.node.startIndex - y.node.startIndex);
    for (const w of writes) {
      const old = stateOf(read.states, w.column)?.value;
      if (old === undefined || !movesFrom(old, w.value)) continue;
      if (read.guardAt !== undefined && w.node.startIndex < read.guardAt) continue;
      const call = calls.find((c) => (((c.method === 'commit' || c.method === 'flush') && c.hasReceiver) || libraryWrite(model, fnIndex, c.node)) && c.node.startIndex > w.node.endIndex);
      // `with Session.begin() as s:` around the write commits when the block ends.
      const block = call ? null : model.withs.find((b) => b.functionIndex === fnIndex && b.bodyStart <= w.node.startIndex && w.node.endIndex <= b.bodyEnd
        && b.items.some((i) => /\.begin\(\s*\)$/.test(i.value.text.replace(/^await\s+/, ''))));
      const end = call ? { what: endWhat(call), line: call.line } : block ? { what: 'committed when its `begin()` block ends', line: block.node.endPosition.row + 1 } : null;
      if (!end) continue;
      // A claim is taken to act on the row alone: the function goes on to hand it (or its id) to a
      // call, or returns it. A sweep that only moves rows to a final state (`expire`, `fail`)
      // claims nothing: two sweeps write the same state.
      // Or it acts on the row first and marks it after (send, then set `sent_at`): two runs that
      // overlap both act on every row they read before either marks it.
      // A row checked in Python must be acted on by a call: returning it (an idempotent cancel
      // or publish that answers with the row) acts on nothing twice.
      const acted = usedAfter(fn.node, read.row, w.node.endIndex, read.to, read.guard !== undefined) || actedOnBefore(fn.node, read.row, read.from, w.node.startIndex)
        // Rows marked in one loop, committed once, then acted on after the commit: another loop
        // hands each on (`for j in jobs: run.delay(j.id)`), or the rows (or their ids) are returned.
        || (!!read.rows && !!call && rowsActedOnAfter(fn.node, read.rows, call.node.endIndex, read.to, inProgress(w.value, w.column)));
      const returnedOnly = !acted && read.guard !== undefined && SINGLE_USE.test(w.column) && returnedAfter(fn, read.row, w.node.endIndex, read.to);
      if (!acted && !returnedOnly) continue;
      const role = effectiveRole(model, fnIndex);
      found.push({
        fnIndex,
        node: w.node,
        ...(returnedOnly ? { returnedOnly } : {}),
        message: read.guard !== undefined
          ? `unguarded check-then-set on \`${read.model}.${w.column}\`: \`${read.row}\` is read (line ${read.line}) and its \`${w.column}\` checked in Python (line ${read.checkLines?.get(stateOf(read.states, w.column)?.checked ?? '') ?? read.guard}), then set to \`${w.value.slice(0, 40)}\` and ${end.what} (line ${end.line}), with no row lock (\`with_for_update()\`) and no conditional UPDATE: two requests can both pass the check before either commits, and both act on the row (a single-use token or code used twice)`
          : `unguarded claim on \`${read.model}.${w.column}\`: \`${read.row}\` is read where \`${w.column}\` is \`${old}\` (line ${read.line}) and moved to \`${w.value.slice(0, 40)}\`, then ${end.what} (line ${end.line}), with no row lock (\`with_for_update(skip_locked=True)\`) and no conditional UPDATE: two workers can both read the row in its old state and both claim it`,
        severity: role === 'handler' || role === 'background' ? 'medium' : 'low',
      });
      break;
    }
  }
  return found;
}

/** A state value that says work on the row is under way (claimed for a worker), not finished. */
const IN_PROGRESS = /(?<![A-Za-z])(?<!not_|un)(running|processing|in_?progress|claimed|locked|started|working|sending|picked|leased|taken|reserved)(?![A-Za-z])/i;

/**
 * After `from` (a commit), the claimed rows' list is handed to a call, returned (also as a
 * comprehension of their ids), or walked by a loop whose item is handed to a call.
 */
function rowsActedOnAfter(fnNode: SyntaxNode, rows: string, from: number, claimLoopEnd: number, returnedActs: boolean): boolean {
  if (from < claimLoopEnd) return false;
  // Returned (`return [j.id for j in jobs]`) only when they were moved to a state of work under
  // way: rows a sweep moved to a final state and returned (to count or log) are acted on by nobody.
  const nodes = functionNodes(fnNode);
  // Nor is collecting them into a list that is then returned (`ids.append(job.id)`), then.
  const quiet = returnedActs ? nodes : { identifiers: nodes.identifiers, returned: new Set<string>() };
  if (usedAfter(fnNode, rows, from, fnNode.endIndex, !returnedActs, quiet)) return true;
  for (const loop of fnNode.descendantsOfType('for_statement')) {
    if (loop.startIndex < from || loop.childForFieldName('right')?.text !== rows) continue;
    const item = loop.childForFieldName('left');
    if (item?.type === 'identifier' && usedAfter(fnNode, item.text, loop.startIndex, loop.endIndex, true, quiet)) return true;
  }
  return false;
}

/** The new value (or, for a timestamp, the column: `picked_at = now()`) says work on the row is under way. */
function inProgress(value: string, column: string): boolean {
  if (IN_PROGRESS.test(value)) return true;
  // A timestamp or owner written into a column named for the claim.
  return !/^["'A-Z]/.test(value.trim()) && /^(picked|claimed|locked|leased|started|taken|reserved)_(at|on|by|until)$/.test(column);
}

/** A function's identifiers, and the names it returns as they are (`return taken`, `return jobs, n`; not `len(expired)`). */
interface FunctionNodes {
  identifiers: SyntaxNode[];
  returned: Set<string>;
}

const functionNodesMemo = new WeakMap<SyntaxNode, FunctionNodes>();

/** {@link functionNodesUncached}, once per function: `usedAfter` asks it several times per write and commit. */
function functionNodes(fnNode: SyntaxNode): FunctionNodes {
  let nodes = functionNodesMemo.get(fnNode);
  if (!nodes) functionNodesMemo.set(fnNode, (nodes = functionNodesUncached(fnNode)));
  return nodes;
}

function functionNodesUncached(fnNode: SyntaxNode): FunctionNodes {
  const returned = new Set<string>();
  for (const r of fnNode.descendantsOfType('return_statement')) {
    const v = r.namedChild(0);
    const items = v?.type === 'identifier' ? [v] : v && /^(tuple|list|expression_list)$/.test(v.type) ? v.namedChildren : [];
    for (const id of items) if (id.type === 'identifier') returned.add(id.text);
  }
  return { identifiers: fnNode.descendantsOfType('identifier'), returned };
}

/**
 * Is `row` returned after `from` (within `to`): `return row`, or the library's write of it that
 * answers with the row (`return await self.update(row)`)?
 */
function returnedAfter(fn: FunctionInfo, row: string, from: number, to: number): boolean {
  for (const r of returnsOf(fn)) {
    if (r.startIndex < from || r.startIndex > to) continue;
    let v = unwrap(r.namedChild(0));
    if (v?.type === 'await') v = unwrap(v.namedChild(0));
    if (!v) continue;
    if (v.type === 'identifier' && v.text === row) return true;
    if (v.type === 'call' && /^(?:self(?:\.repository)?\.)?(update|save|upsert|merge)$/.test(v.childForFieldName('function')?.text ?? '')) {
      const args = v.childForFieldName('arguments')?.namedChildren ?? [];
      if (args.length === 1 && args[0]!.type === 'identifier' && args[0]!.text === row) return true;
    }
  }
  return false;
}

/**
 * Is `row` acted on after `from` (within `to`): handed to a call or returned, directly or through
 * a name bound from it (`job_id = job.id`)? Logging it, handing it back to the session
 * (`session.add(job)`) or collecting it in a list that is not returned is no action on the row.
 */
function usedAfter(fnNode: SyntaxNode, row: string, from: number, to: number, callsOnly = false, nodes: FunctionNodes = functionNodes(fnNode), readsAct = true): boolean {
  const names = new Set([row]);
  const returned = nodes.returned;
  for (const id of nodes.identifiers) {
    if (id.startIndex < from || id.startIndex > to || !names.has(id.text)) continue;
    // A call that only builds the returned answer (`return Out.model_validate(row)`,
    // `jsonify(row)`, `Out(**row)`) acts on nothing; one that does something (`return await
    // self.create_successor(user_id=row.user_id)`) does.
    if (callsOnly && insideReturn(id, fnNode) && buildsAnswer(id)) continue;
    for (let p = id.parent, child: SyntaxNode = id; p && p.id !== fnNode.id; child = p, p = p.parent) {
      if (p.type === 'return_statement' || p.type === 'yield') {
        if (callsOnly) break;
        return true;
      }
      if (p.type === 'argument_list') {
        const { method, receiver } = calleeParts(p.parent);
        if (!acting(method, receiver) || (!readsAct && READS.test(method))) break;
        if (COLLECTS.test(method) && receiver && !returned.has(receiver)) break;
        return true;
      }
      if (p.type === 'assignment') {
        // `job_id = job.id`: the name now stands for the row.
        const left = p.childForFieldName('left');
        if (left?.type === 'identifier' && p.childForFieldName('right')?.id === child.id) names.add(left.text);
        break;
      }
      if (p.type === 'augmented_assignment' || p.type === 'expression_statement' || p.type === 'block') break;
    }
  }
  return false;
}

/**
 * Does every call `node` is an argument of, up to its `return`, serialize or construct a value
 * (`return Out.model_validate(row)`, `return jsonify(Out(**row.dict()))`)? One that does
 * something (`return await notify(Out.model_validate(row))`) acts on the row.
 */
function buildsAnswer(node: SyntaxNode): boolean {
  let any = false;
  for (let p = node.parent; p && p.type !== 'return_statement' && p.type !== 'yield'; p = p.parent) {
    if (p.type !== 'argument_list') continue;
    const callee = p.parent?.childForFieldName('function');
    const name = (callee?.type === 'attribute' ? callee.childForFieldName('attribute')?.text : callee?.text) ?? '';
    if (!SERIALIZES.test(name) && !/^[A-Z]/.test(name)) return false;
    any = true;
  }
  return any;
}

const SERIALIZES = /^(model_validate|model_validate_json|from_orm|parse_obj|jsonify|to_dict|to_json|dict|asdict|dump|dumps|serialize|model_dump|as_dict|make_response|render_template|render|json_response|json|response|ok|success|created|accepted|str|repr|list|tuple)$/;

/** Is `node` part of a `return` or `yield` of the function? */
function insideReturn(node: SyntaxNode, fnNode: SyntaxNode): boolean {
  for (let p = node.parent; p && p.id !== fnNode.id; p = p.parent) {
    if (p.type === 'return_statement' || p.type === 'yield') return true;
    if (p.type === 'function_definition' || p.type === 'lambda') return false;
  }
  return false;
}

/**
 * Is `row` handed to a call that is a statement of its own (`deliver(job)`, `await
 * notify(job.owner, job.id)`) between `from` and `to`? Its result unused, the call is done for
 * what it does: an action on the row, not a check (`if is_stale(job):`) or a computation.
 */
function actedOnBefore(fnNode: SyntaxNode, row: string, from: number, to: number): boolean {
  for (const id of fnNode.descendantsOfType('identifier')) {
    if (id.startIndex < from || id.startIndex >= to || id.text !== row) continue;
    let p = id.parent;
    while (p && p.type !== 'argument_list' && p.type !== 'block' && p.id !== fnNode.id) p = p.parent;
    const call = p?.type === 'argument_list' ? p.parent : null;
    if (!call || call.type !== 'call') continue;
    const stmt = call.parent?.type === 'await' ? call.parent.parent : call.parent;
    if (stmt?.type !== 'expression_statement') continue;
    const { method, receiver } = calleeParts(call);
    if (!acting(method, receiver) || COLLECTS.test(method) || /^(setdefault|discard|remove)$/.test(method)) continue;
    return true;
  }
  return false;
}

/** Calls that hand the row back to the session or inspect it, not act on it. */
const NOT_ACTING = /^(add|add_all|merge|refresh|expunge|flush|commit|len|str|repr|isinstance|getattr|hasattr|setattr)$/;
const LOGGER = /(^|\.)(log|logger|logging|_log|_logger|LOG|LOGGER)$/;
/** Reads that take something of the row (`db.get(User, tok.user_id)`): a lookup, not a use of it. */
const READS = /^(get|get_one|get_one_or_none|get_or_404|scalar|scalars|scalar_one|scalar_one_or_none|execute|query|filter|filter_by|where|select|first|one|one_or_none|all|count|exists|fetch|fetchrow|fetchval)$/;

/** Methods that put the row in a collection: an action on it only when the collection leaves the function. */
const COLLECTS = /^(append|extend|add|insert|update)$/;

/** A call's method name and receiver text (`deliver(job)`: `deliver`, ``; `log.info(...)`: `info`, `log`). */
function calleeParts(call: SyntaxNode | null): { method: string; receiver: string } {
  const callee = call?.childForFieldName('function');
  if (callee?.type === 'attribute') return { method: callee.childForFieldName('attribute')?.text ?? '', receiver: callee.childForFieldName('object')?.text ?? '' };
  return { method: callee?.text ?? '', receiver: '' };
}

/** Is a call with this method and receiver one that acts on a row it is handed (not a session's bookkeeping, an inspection or a log line)? */
function acting(method: string, receiver: string): boolean {
  return !NOT_ACTING.test(method) && !LOGGER.test(receiver) && method !== 'print';
}

/** The read's text with the names it is built from (`stmt`, `result`) replaced by their assignments in the function. */
function readText(model: FileModel, fnIndex: number, text: string, line: number): string {
  let out = text;
  const seen = new Set<string>();
  for (let depth = 0; depth < 2; depth++) {
    let changed = false;
    for (const m of out.matchAll(/(?<![\w.])([a-z_]\w*)(?=\s*[.)\],])/g)) {
      const name = m[1]!;
      if (seen.has(name) || /^(self|cls|session|db|await|select|query)$/.test(name)) continue;
      seen.add(name);
      const a = lastAssignment(model, name, fnIndex, line);
      const v = unwrap(a?.value ?? null);
      if (v && /\b(select|query)\s*\(|\.query\s*\./.test(v.text)) {
        out += `\n${v.text}`;
        changed = true;
      }
    }
    if (!changed) break;
  }
  return out;
}

/**
 * A read of `M` rows by state: the model and the state columns with their literals, or null. A
 * loop's iterable (`rowsLoop`) may end in the query itself (`session.scalars(stmt)`, `.all()`).
 */
function stateRead(text: string, rowsLoop = false): { model: string; states: Map<string, string> } | null {
  if (/with_for_update|skip_locked|FOR\s+UPDATE/i.test(text)) return null;
  if (!rowsLoop && !ROWS_READ.test(text)) return null;
  const name = MODEL_OF_STATEMENT.exec(text)?.[1] ?? MODEL_QUERY_PROPERTY.exec(text)?.[1];
  if (!name) return null;
  const states = new Map<string, string>();
  let byKey = false;
  const eq = new RegExp(`\\b${name}\\.([a-z_]\\w*)\\s*(==|\\.is_\\(|\\.in_\\()\\s*`, 'g');
  for (let m = eq.exec(text); m; m = eq.exec(text)) {
    VALUE.lastIndex = eq.lastIndex;
    const v = VALUE.exec(text)?.[1];
    if (m[1] === 'id') byKey = true;
    else if (v && STATE_VALUE.test(v)) states.set(m[1]!, v.replace(/\s+/g, ''));
  }
  for (const m of text.matchAll(/\bfilter_by\s*\(([^()]*)\)/g)) {
    for (const k of m[1]!.matchAll(/(?:^|,)\s*([a-z_]\w*)\s*=(?!=)\s*([\w.]+\(\)|[\w.]+|"[^"\n]*"|'[^'\n]*')\s*(?=,|$)/g)) {
      if (k[1] === 'id') byKey = true;
      else if (STATE_VALUE.test(k[2]!)) states.set(k[1]!, k[2]!);
    }
  }
  // A row picked by its primary key is the caller's to act on, not the next one in a queue.
  if (byKey) return null;
  return states.size ? { model: name, states } : null;
}

/**
 * Does writing `value` move the row out of the state `old` it was read (or checked) in? `old` is
 * a literal, or from a Python check: `!LIT` (it passed because it was not LIT: moving it to LIT),
 * `(set)` (it passed because the column was set: clearing it), `(unset)` (it passed because the
 * column was falsy: setting it).
 */
function movesFrom(old: string, value: string): boolean {
  if (old.startsWith('!')) return value === old.slice(1);
  if (old === '(set)') return FALSY.test(value);
  if (old === '(unset)') return !FALSY.test(value);
  return value !== old;
}

const FALSY = /^(None|False|0|""|''|\[\]|\{\}|\(\))$/;

/** Text test for a repository library's write on the service (see {@link LIBRARY_WRITE}). */
const LIBRARY_WRITE_TEXT = /\bself(?:\.repository)?\.(update|add|upsert|create)\s*\(/;

/** One operand of a Python check on a row's column: `[not] row.col [is [not] None | == V | != V]`. */
const CHECK = /^(not\s+)?([A-Za-z_]\w*)\.([a-z_]\w*)(?:\s+(is not None|is None)|\s*(!=|==)\s*(.+))?$/;

/** A one-row read's method call. */
const ONE_ROW_READ = /\.(first|one_or_none|scalar_one_or_none|one|scalar|get_one_or_none|get_one|get)\s*\(/;

/**
 * Cheap text test for {@link guardedReads}: a one-row read, then an `if`, then a way out, in that
 * order — three linear searches (one regex would backtrack cubically).
 */
function guardedReadText(text: string): boolean {
  const read = ONE_ROW_READ.exec(text);
  if (!read) return false;
  const ifAt = text.slice(read.index).search(/\bif\b/);
  return ifAt >= 0 && /\b(raise|return|abort)\b/.test(text.slice(read.index + ifAt));
}

/** One row read by whatever key, with no lock: `session.get(M, pk)`, `….first()`, `svc.get_one_or_none(code=c)`. */
const KEY_READ = /\.(first|one_or_none|scalar_one_or_none|one|scalar)\s*\(\s*\)\s*$|^\s*(await\s+)?[\w.]+\.(scalar|get_one|get_one_or_none|get)\s*\(/;

/**
 * Rows read by a key and then checked in Python before they are marked: `tok = s.scalar(select(
 * Token).where(Token.code == c)); if tok is None or tok.used_at is not None: raise ...` — the
 * state the row had to be in to get past the check, per column (see {@link movesFrom}). The
 * check must leave the function (raise, return, abort). A model with optimistic locking
 * (`version_id_col` in the same module) fails the second writer: not a race.
 */
function guardedReads(model: FileModel, fnIndex: number, assignments: readonly AssignmentInfo[]): StateRead[] {
  const fn = model.functions[fnIndex]!;
  const out: StateRead[] = [];
  if (model.source.includes('version_id_col')) return out;
  const ifs = fn.node.descendantsOfType('if_statement');
  if (!ifs.length) return out;
  for (const a of assignments) {
    if (!a.value || !/^[A-Za-z_]\w*$/.test(a.target) || a.loops.length) continue;
    let v = unwrap(a.value);
    if (v?.type === 'await') v = unwrap(v.namedChild(0));
    if (v?.type !== 'call' || !KEY_READ.test(v.text)) continue;
    // The read is the call or one down its chain (`db.scalars(select(...)).first()`).
    if (!readsDatabase(model, v)) continue;
    const text = readText(model, fnIndex, v.text, a.line);
    if (/with_for_update|skip_locked|FOR\s+UPDATE/i.test(text)) continue;
    // A library service's own read (`self.get_one_or_none(...)`): the model the service is specialised with.
    const cls = /^(?:await\s+)?self(?:\.repository)?\./.test(v.text) ? classOfFunction(model, fnIndex) : null;
    const entity = MODEL_OF_STATEMENT.exec(text)?.[1] ?? MODEL_QUERY_PROPERTY.exec(text)?.[1] ?? /\.get\(\s*(?:[\w.]*\.)?([A-Z]\w*)\s*,/.exec(text)?.[1] ?? (cls ? libraryClassModel(model, cls) : null) ?? a.target;
    const states = new Map<string, string>();
    let guard: number | undefined;
    let guardAt: number | undefined;
    const checkLines = new Map<string, number>();
    for (const i of ifs) {
      if (i.startIndex < a.node.endIndex) continue;
      const body = i.childForFieldName('consequence');
      const last = body?.namedChildren.filter((c) => c.type !== 'comment').pop();
      if (!last || !(last.type === 'raise_statement' || last.type === 'return_statement' || /^(?:[\w.]+\.)?abort\s*\(/.test(last.text))) continue;
      const cond = (i.childForFieldName('condition')?.text ?? '').replace(/\s+/g, ' ');
      for (const part of cond.split(/\s+or\s+/)) {
        const t = part.replace(/^\(|\)$/g, '').trim();
        const m = CHECK.exec(t);
        if (!m || m[2] !== a.target) continue;
        const [, not, , column, test, op, operand] = m;
        const value = operand?.replace(/\s+/g, '');
        if (not) {
          if (test || op) continue;
          states.set(column!, '(set)');
        } else if (test === 'is None') states.set(column!, '(set)');
        else if (test === 'is not None') states.set(column!, 'None');
        else if (!op) states.set(column!, '(unset)');
        else if (value && STATE_VALUE.test(value)) states.set(column!, op === '!=' ? value : `!${value}`);
        else continue;
        guard ??= i.startPosition.row + 1;
        guardAt ??= i.startIndex;
        if (!checkLines.has(column!)) checkLines.set(column!, i.startPosition.row + 1);
      }
    }
    if (states.size) out.push({ row: a.target, model: entity, states, line: a.line, from: a.node.endIndex, to: fn.end, guard, guardAt, checkLines });
  }
  return out;
}
