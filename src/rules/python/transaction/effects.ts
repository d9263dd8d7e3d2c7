/**
 * Transaction effects for the repo phase: which functions commit, and which calls run once per
 * item of a loop, so the call graph can tell "this loop commits on every iteration through a
 * helper" (PA207) the way the file rule tells it for a `commit()` in the loop itself.
 *
 * - `commit`: the function's own body always commits a session or connection: a commit call
 *   that no condition, handler or loop of the function guards. A generator (a provider that
 *   commits after `yield`) is left out: a `with provider() as s:` per item is one unit of work
 *   per item by design.
 * - `commit_may`: any commit of the function's own body, conditional or in a provider after its
 *   `yield`: "something here may commit", to keep PA208's request scope quiet.
 * - `request_write`: a request handler's uncommitted write through an injected session (PA208).
 * - `commit_own`: the same, on a session the function opens itself (`with factory() as s:`,
 *   `s = Session()`): a caller's loop then runs one unit of work per item, by design.
 * - `side_effect`: the function acts outside the database (see {@link outsideEffect}); a
 *   commit per item after it records what was done outside, and is kept per item on purpose.
 * - `network`: a network call of the function's own body; `txn_open_call` (a site fact): a call
 *   made inside an open transaction (a `begin()` block, or a session's first write → commit), so
 *   the repo phase can find the helpers that wait on the network while it is open (PA202).
 * - `txn_loop_call` (a site fact): a call that hands the loop's item (positionally, by keyword or
 *   in a comprehension) to something, on every iteration of a loop over items, outside a per-item
 *   `try` and with no `break`/`return` after it.
 */
import { isMemoisedCall } from '../../../semantic/memo.js';
import type { SyntaxNode } from '../../../parse/parser.js';
import type { Effect } from '../../../analysis/summary.js';
import { assignmentsInLoop, assignmentsTo, augAssignmentsInLoop, callAt, isNamedLookupCallee, type CallInfo, type FileModel, type FunctionInfo } from '../../../semantic/model.js';
import { conditionalInFunction, exclusiveArms, inExceptHandler, insideNestedFunction } from '../../../semantic/controlFlow.js';
import { dictKeyGuard, flagGuard, soleFlagGuard } from '../../../semantic/guards.js';
import { pendingHandleMethod } from '../../../semantic/syncDb.js';
import { externalCall, outsideEffect, readOnlyRemote, spawnedTask } from '../../../semantic/externalCalls.js';
import { leavesAfter, notPerRow, perItemLoops } from '../query/semantics.js';
import { classifyDbCall, LIBRARY_CALL, loopsDomain, RELOAD_EFFECT } from '../query/dbCalls.js';
import { flaskRequestWrites, MAY_COMMIT_EFFECT, requestWrites } from './missing_commit.js';
import { callArgs, callsOf, enclosingTries, isCloseCall, isCommitCall, isRollbackCall, isWriteCall, lastAssignment, receiverKey, transactionRegions, unwrap } from './semantics.js';
import { sessionsExpireOnCommit } from '../../../semantic/sessionExpiry.js';
import { variableRefs } from '../../../semantic/model.js';
import type { ProjectContext } from '../../../discovery/context.js';
import { overItems } from './loopForms.js';
import { encodeDomain } from '../../../semantic/loopDomain.js';
import { collectLibraryWriteEffects } from './libraryWrites.js';
import { COLLECTION_MUTATION, stagedEffects } from '../readOnlyCommit.js';

export const COMMIT_EFFECT = 'commit';
/** The function's own `rollback()` on a database handle (its position only: where a transaction ends). */
export const ROLLBACK_EFFECT = 'rollback';
/** The function's own `close()` on a database handle (its position only: the session gives its connection back). */
export const CLOSE_EFFECT = 'close';
/** The function opens a session (or connection) of its own and commits it: one unit of work per call. */
export const OWN_COMMIT_EFFECT = 'commit_own';
export const TXN_LOOP_CALL = 'txn_loop_call';
/** The function makes a network call (HTTP, SMTP, S3, brokers, SDK clients: `externalCall`). */
export const NETWORK_EFFECT = 'network';
/** A network call that sends something, beside its `NETWORK_EFFECT` (not a read: `readOnlyRemote`). */
export const NETWORK_SEND_EFFECT = 'network_send';
/**
 * Own effect: the function takes row locks for its transaction (`.with_for_update()`, raw
 * `SELECT ... FOR UPDATE`/`FOR SHARE`): a wait after it holds those rows, not only a connection.
 */
export const ROW_LOCK_EFFECT = 'row_lock';
/** A row lock written in code: `.with_for_update(...)`, or a raw `FOR UPDATE` / `FOR SHARE`. */
export const ROW_LOCK_TEXT = /\.with_for_update\s*\(|\bFOR\s+(NO\s+KEY\s+)?(UPDATE|SHARE)\b|\bpg_(try_)?advisory_xact_lock(_shared)?\s*\(/i;
/**
 * `found = <query>` then `if found: return found` (or `is not None`), with more after it: what
 * follows runs only when the lookup found nothing — a get-or-create, whose commit is per new row,
 * not per call. `what` = the name, `line` = the `if`'s.
 */
export const FOUND_RETURN = 'found_return';
/** Site fact: a call made while a transaction is open (`what` = JSON {@link OpenSite}). */
export const TXN_OPEN_CALL = 'txn_open_call';

/** Where an in-transaction call sits: the session, and the lines that open and close the transaction. */
export interface OpenSite {
  session: string;
  /** `read`: a span a read began, before any write (only waits that hold the connection matter there). */
  kind: 'begin' | 'span' | 'read';
  from: number;
  to: number;
  /** A `transaction()` block rather than `begin()` (asyncpg, psycopg 3). */
  block?: 'transaction';
  /** In a `read` span: an attribute of a row loaded through the session changed before the call (`account.status = "x"`), which the commit will write. */
  pending?: { line: number; what: string };
}


/**
 * Does the loop around a per-item call write on its own (`session.add(x)`, a DML statement, an
 * attribute of a row set), so that a commit in the callee commits that per item too?
 */
function loopWritesOwn(model: FileModel, call: CallInfo): boolean {
  const loop = call.loops[call.loops.length - 1]!;
  // An attribute or item set in the loop may be a row's: counted, to stay on the side of reporting.
  if (assignmentsInLoop(model, loop).some((a) => !/^[A-Za-z_]\w*$/.test(a.target))) return true;
  if (augAssignmentsInLoop(model, loop).some((a) => a.target.includes('.'))) return true;
  // A collection attribute changed in place (`order.tags.append(t)`), `setattr(order, k, v)`.
  return callsOf(model, call.functionIndex).some((c) => c !== call && c.loops.includes(loop)
    && (isWriteCall(model, c) || (c.calleeText === 'setattr' && !c.hasReceiver) || (COLLECTION_MUTATION.test(c.method) && (c.dottedReceiver ?? '').includes('.'))));
}

/** The function acts outside the database: a network client call, or a call named like sending (`msg.send()`, `notify_user()`). */
export const SIDE_EFFECT = 'side_effect';


/** `db.commit()` with `db` a parameter of the function, or `self.<attr>.commit()`, with no arguments. */
function handedHandleCommit(fn: FunctionInfo, call: CallInfo): boolean {
  if (!call.emptyArgs) return false;
  const r = call.dottedReceiver;
  if (!r) return false;
  return /^self\.\w+$/.test(r) || fn.params.some((p) => p.name === r && p.name !== 'self' && p.name !== 'cls');
}

/**
 * `session.commit()` in a generator that yields `session` (a dependency provider: `session =
 * request.state.db; try: yield session ... else: await session.commit()`): whatever the handle's
 * origin, the provider commits the work of whoever it handed the handle to.
 */
function yieldedHandleCommit(model: FileModel, fn: FunctionInfo, call: CallInfo): boolean {
  if (!fn.isGenerator || !call.emptyArgs) return false;
  const r = call.dottedReceiver;
  if (!r || !/^[A-Za-z_]\w*$/.test(r)) return false;
  return new RegExp(`(^|[^\\w.])yield\\s+${r}\\s*(#.*)?$`, 'm').test(model.source.slice(fn.start, fn.end));
}

/** A `commit()` whose receiver only the repo phase can type (see {@link pendingHandleMethod}). */
function pendingCommit(model: FileModel, call: CallInfo): { typePath: string; method: string } | null {
  if (!call.emptyArgs || call.offloaded) return null;
  return pendingHandleMethod(model, call);
}

export function collectTransactionEffects(model: FileModel): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return effects;
  for (const call of model.calls) {
    // `get_handler('x')` of `get_handler('x')(ctx, row)`: its site facts would be read as the outer call's.
    if (call.functionIndex < 0 || isNamedLookupCallee(model, call)) continue;
    const fn = model.functions[call.functionIndex]!;
    const at = { line: call.line, column: call.column };
    if (call.method === 'with_for_update' || (call.method === 'text' && ROW_LOCK_TEXT.test(call.node.text))) effects[call.functionIndex]!.push({ kind: ROW_LOCK_EFFECT, what: call.calleeText, ...at });
    // `with session.begin():` / `async with Maker.begin() as s:` commits when the block exits.
    if ((call.method === 'begin' || call.method === 'transaction') && call.isWithItem && call.hasReceiver) {
      effects[call.functionIndex]!.push({ kind: MAY_COMMIT_EFFECT, what: call.calleeText, ...at });
      continue;
    }
    // `session.rollback()`: the transaction ends there too (the writes are gone): PA202's
    // helper-sent path stops at it.
    if (call.method === 'rollback' && isRollbackCall(model, call)) effects[call.functionIndex]!.push({ kind: ROLLBACK_EFFECT, what: call.calleeText, ...at });
    // `session.close()`: the connection goes back to the pool (what a caller waiting after the call holds).
    if (isCloseCall(model, call)) effects[call.functionIndex]!.push({ kind: CLOSE_EFFECT, what: call.calleeText, ...at });
    if (call.method === 'commit') {
      // `repo.commit()` on an object of another module (or one whose `commit` is a session's
      // bound method, `self.commit = session.commit`): the repo phase decides, by the type.
      const pending = isCommitCall(model, call) || yieldedHandleCommit(model, fn, call) ? null : pendingCommit(model, call);
      if (pending) {
        effects[call.functionIndex]!.push({ kind: MAY_COMMIT_EFFECT, what: call.calleeText, ...at, pending });
        const guard = fn.isGenerator ? null : alwaysRuns(model, call) ? '' : (soleFlagGuard(model, call) ?? dictKeyGuard(model, call));
        if (guard !== null) effects[call.functionIndex]!.push({ kind: COMMIT_EFFECT, what: call.calleeText, ...at, pending, ...(guard ? { guard } : {}) });
        continue;
      }
      // `may commit` is the conservative side: a commit on a handle the function was handed (a
      // parameter, `self.session`) counts even when nothing types it as a session.
      if (isCommitCall(model, call) || handedHandleCommit(fn, call) || yieldedHandleCommit(model, fn, call)) effects[call.functionIndex]!.push({ kind: MAY_COMMIT_EFFECT, what: call.calleeText, ...at });
      if (!fn.isGenerator && alwaysRuns(model, call) && isCommitCall(model, call)) {
        effects[call.functionIndex]!.push({ kind: opensOwnSession(model, call) ? OWN_COMMIT_EFFECT : COMMIT_EFFECT, what: call.calleeText, ...at });
      } else if (!fn.isGenerator && isCommitCall(model, call)) {
        // `if commit: session.commit()` with `commit=True`, `if not defer: ...` with `defer=False`:
        // a commit on every call that leaves the flag as it is (the repo phase reads the call).
        const guard = soleFlagGuard(model, call) ?? dictKeyGuard(model, call);
        if (guard && !opensOwnSession(model, call)) effects[call.functionIndex]!.push({ kind: COMMIT_EFFECT, what: call.calleeText, ...at, guard });
      }
      continue;
    }
    // A request a cache answers after its first time (`@cached(TTLCache(...))`, `lru_cache`, a
    // guard on a module-level cache) waits once per process or period, not inside every transaction.
    // A request started as a task of its own (`asyncio.create_task(client.post(...))`) is waited on by nobody here.
    // Under a flag of the function's own (`if urgent: requests.post(...)`): the guard says which
    // calls reach it (a caller that leaves the flag off sends nothing).
    if (!call.offloaded && externalCall(model, call)?.kind === 'network' && !isMemoisedCall(model, call) && !spawnedTask(call.node)) {
      const guard = flagGuard(model, call.node, call.functionIndex);
      const what = externalCall(model, call)!.what;
      effects[call.functionIndex]!.push({ kind: NETWORK_EFFECT, what, ...at, ...(guard ? { guard } : {}) });
      // Beside it, a call that sends something (not a read: `readOnlyRemote`).
      if (!readOnlyRemote(what)) effects[call.functionIndex]!.push({ kind: NETWORK_SEND_EFFECT, what, ...at, ...(guard ? { guard } : {}) });
    }
    // A cache being filled (a registry built on first use, `if _actions: return ...` then the
    // plugins asked once) acts outside once per process, not on every call.
    const outside = outsideEffect(model, call);
    if (outside && !isMemoisedCall(model, call)) effects[call.functionIndex]!.push({ kind: SIDE_EFFECT, what: outside, ...at });
    // `w` when the loop writes on its own; then `|` and the loop's domain (`encodeDomain`: `i` when
    // it runs over what one request sent; a parameter's, decided by the callers in the repo phase).
    if (perItemCall(model, call)) {
      const domain = loopsDomain(model, [model.loops[call.loops[call.loops.length - 1]!]!]);
      effects[call.functionIndex]!.push({ kind: TXN_LOOP_CALL, what: `${loopWritesOwn(model, call) ? 'w' : ''}${onlyWhereLookupMissed(model, call) ? 'm' : ''}|${encodeDomain(domain)}`, ...at });
    }
  }
  foundReturns(model, effects);
  requestWrites(model).forEach((list, i) => effects[i]!.push(...list));
  // What a later commit would keep: a staged row, an attribute set (see readOnlyCommit.ts).
  stagedEffects(model).forEach((list, i) => effects[i]!.push(...list));
  flaskRequestWrites(model).forEach((list, i) => effects[i]!.push(...list));
  collectLibraryWriteEffects(model, effects);
  // Which of a function's possible repo calls do not always run is on each summary call
  // (`SummaryCall.conditional`): a commit reached only through them is not a commit on every call.
  // Then the spans a read begins (from a session's first statement to its commit): the calls in
  // them that no write-begun span holds, as `read` sites (a wait there holds the connection).
  const seen = new Set<CallInfo>();
  for (const [regions, read] of [[transactionRegions(model), false], [transactionRegions(model, true), true]] as const) {
    for (const region of regions) {
      for (const call of callsOf(model, region.fnIndex)) {
        const at = call.node.startIndex;
        if (at < region.from || at >= region.to || call.offloaded || receiverKey(call) === region.session || isNamedLookupCallee(model, call)) continue;
        if ((call.qualifiedName && LIBRARY_CALL.test(call.qualifiedName)) || externalCall(model, call)) continue;
        if (seen.has(call)) continue;
        seen.add(call);
        const pending = read ? pendingChange(model, region.fnIndex, region.session, region.from, call) : null;
        const site: OpenSite = { session: region.session, kind: read ? 'read' : region.kind, from: region.startLine, to: region.endLine, ...(region.block ? { block: region.block } : {}), ...(pending ? { pending } : {}) };
        effects[region.fnIndex]!.push({ kind: TXN_OPEN_CALL, what: JSON.stringify(site), line: call.line, column: call.column });
      }
    }
  }
  return effects;
}

/**
 * An attribute of a row the function loaded through `session` (`account = db.get(Account, i)`,
 * `inv = db.query(Invoice).filter(...).first()`, or the item of a loop over such rows), changed
 * after `from` and done before `call` starts (not `x.ref = call(...)`), not in another arm: a
 * change the session's commit will write, pending while the call runs.
 */
function pendingChange(model: FileModel, fnIndex: number, session: string, from: number, call: CallInfo): { line: number; what: string } | null {
  const body = model.functions[fnIndex]?.body ?? null;
  const throughSession = (value: SyntaxNode | null, line: number): boolean => {
    let v = unwrap(value);
    // `rows = db.scalars(...).all()` … `for r in rows:`.
    if (v?.type === 'identifier') v = unwrap(lastAssignment(model, v.text, fnIndex, line)?.value ?? null);
    if (!v) return false;
    const inside = callsOf(model, fnIndex).filter((x) => x.node.startIndex >= v.startIndex && x.node.endIndex <= v.endIndex);
    return inside.some((x) => receiverKey(x) === session) && inside.some((x) => classifyDbCall(model, x)?.kind === 'read');
  };
  for (const a of [...model.assignments, ...model.augAssignments]) {
    if (a.functionIndex !== fnIndex || a.node.startIndex < from || a.node.endIndex > call.node.startIndex) continue;
    const m = /^([A-Za-z_]\w*)\.(\w+)$/.exec(a.target);
    if (!m || m[2]!.startsWith('_') || exclusiveArms(a.node, call.node, body)) continue;
    const name = m[1]!;
    // Changed in a loop the call is not in: only the loop's item of rows read through the session.
    const ownLoops = a.loops.filter((l) => !call.loops.includes(l));
    // The item of a loop over rows read through the session (the call in that loop or after it).
    const itemLoop = a.loops.map((l) => model.loops[l]!).find((l) => {
      const target = l.node.childForFieldName('left');
      return target?.type === 'identifier' && target.text === name;
    });
    if (itemLoop) {
      if (!throughSession(itemLoop.iterable, itemLoop.node.startPosition.row + 1)) continue;
      return { line: a.line, what: a.target };
    }
    if (ownLoops.length) continue;
    if (!throughSession(lastAssignment(model, name, fnIndex, a.line)?.value ?? null, a.line)) continue;
    return { line: a.line, what: a.target };
  }
  return null;
}

/**
 * Reads, after a function's own commit, of a row it added to or loaded through that session
 * (`db.add(t); db.commit(); return t.id`): with sessions that expire on commit, each is a reload
 * — a SELECT that begins a new transaction — recorded as {@link RELOAD_EFFECT} at the read (what
 * a caller waiting after the call holds; see `sessionEnd`). One per function: the first.
 */
export function collectExpiredAttributeReads(model: FileModel, project?: ProjectContext): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (!project || model.isTestFile || !model.source.includes('commit') || !sessionsExpireOnCommit(project)) return out;
  const byFn = new Map<number, CallInfo[]>();
  for (const c of model.calls) if (c.functionIndex >= 0 && c.method === 'commit' && isCommitCall(model, c)) byFn.set(c.functionIndex, [...(byFn.get(c.functionIndex) ?? []), c]);
  for (const [fnIndex, commits] of byFn) {
    const fn = model.functions[fnIndex]!;
    if (!fn.body) continue;
    const last = commits[commits.length - 1]!;
    const session = receiverKey(last);
    if (!session) continue;
    // Rows the session holds when it commits: added to it, or loaded through it before the commit.
    const rows = new Set<string>();
    for (const c of callsOf(model, fnIndex)) {
      if (c.node.startIndex > last.node.startIndex || receiverKey(c) !== session) continue;
      const arg = callArgs(c.node).positional[0];
      if ((c.method === 'add' || c.method === 'merge') && arg?.type === 'identifier') rows.add(arg.text);
    }
    // A row handed in and changed before the commit (`ticket.status = "closed"`): the session holds it.
    for (const a of model.assignments) {
      const m = /^([A-Za-z_]\w*)\.\w+$/.exec(a.target);
      if (a.functionIndex === fnIndex && m && a.node.startIndex < last.node.startIndex && fn.params.some((p) => p.name === m[1] && p.name !== 'self')) rows.add(m[1]!);
    }
    for (const a of model.assignments) {
      if (a.functionIndex !== fnIndex || a.node.startIndex > last.node.startIndex || !/^[A-Za-z_]\w*$/.test(a.target) || !a.value) continue;
      const v = unwrap(a.value);
      const call = v?.type === 'call' ? callsOf(model, fnIndex).find((x) => x.node.id === v.id) : undefined;
      if (call && receiverKey(call) === session && classifyDbCall(model, call)?.kind === 'read') rows.add(a.target);
    }
    let first: SyntaxNode | null = null;
    for (const name of rows) {
      // Bound again after the commit: what follows reads another object.
      const rebound = model.assignments.find((b) => b.functionIndex === fnIndex && b.target === name && b.node.startIndex > last.node.endIndex);
      for (const r of variableRefs(fn.body, name)) {
        if (r.startIndex <= last.node.endIndex || (first && r.startIndex >= first.startIndex)) continue;
        if ((rebound && r.startIndex >= rebound.node.startIndex) || insideNestedFunction(r, fn.body)) continue;
        const p = r.parent;
        if (p?.type !== 'attribute' || p.childForFieldName('object')?.id !== r.id) continue;
        // Set again, or a method called: no reload of what it reads.
        if ((p.parent?.type === 'assignment' && p.parent.childForFieldName('left')?.id === p.id) || (p.parent?.type === 'call' && p.parent.childForFieldName('function')?.id === p.id)) continue;
        // Refreshed in between: the refresh is the reload (its own effect).
        if (new RegExp(`\\brefresh\\(\\s*${name}\\b`).test(model.source.slice(last.node.endIndex, r.startIndex))) continue;
        first = p;
      }
    }
    if (first) out[fnIndex]!.push({ kind: RELOAD_EFFECT, what: first.text, line: first.startPosition.row + 1, column: first.startPosition.column + 1 });
  }
  return out;
}

/** Does a call run whenever its function does: not under a condition, a handler, a loop? */
function alwaysRuns(model: FileModel, call: CallInfo): boolean {
  if (!model.functions[call.functionIndex]!.body || call.loops.length) return false;
  return !conditionalInFunction(model, call);
}

/** A call that runs once per item of its innermost loop and hands it the item. */
function perItemCall(model: FileModel, call: CallInfo): boolean {
  if (!call.loops.length || call.emptyArgs || call.offloaded) return false;
  if (call.qualifiedName && LIBRARY_CALL.test(call.qualifiedName)) return false;
  const loop = model.loops[call.loops[call.loops.length - 1]!]!;
  if (loop.kind !== 'comprehension' && !overItems(model, loop)) return false;
  const args = call.node.childForFieldName('arguments');
  if (!args || !perItemLoops(model, [loop.index], args) || notPerRow(model, call, [loop])) return false;
  // A loop that acts outside the database per item commits per item to record it (and to keep
  // its transaction off the network wait).
  if (actingLoops(model).get(loop.index)?.some((c) => c !== call && c.functionIndex === call.functionIndex)) return false;
  const body = loop.node.childForFieldName('body');
  if (body) {
    if (enclosingTries(call.node, body).some((t) => t.startIndex >= body.startIndex)) return false;
    if (leavesAfter(call.node, loop)) return false;
    // In an `except` of the iteration: it runs for the items that failed, not for every item.
    if (inExceptHandler(call.node, body)) return false;
  }
  return true;
}

const ACTING_LOOPS = new WeakMap<FileModel, Map<number, CallInfo[]>>();

/** The calls with an outside effect, by each loop they run in (once per file, not per call of every loop). */
function actingLoops(model: FileModel): Map<number, CallInfo[]> {
  let map = ACTING_LOOPS.get(model);
  if (!map) {
    map = new Map();
    for (const c of model.calls) {
      if (!c.loops.length || !outsideEffect(model, c)) continue;
      for (const l of c.loops) {
        const list = map.get(l);
        if (list) list.push(c);
        else map.set(l, [c]);
      }
    }
    ACTING_LOOPS.set(model, map);
  }
  return map;
}

/** Is the committed handle one the function opens: a local bound to a call (`Session()`, `factory()`, `connect()`)? */
function opensOwnSession(model: FileModel, call: CallInfo): boolean {
  const key = receiverKey(call);
  const head = key?.split('.')[0];
  if (!head || head === 'self' || head === 'cls') return false;
  const fn = model.functions[call.functionIndex]!;
  if (fn.params.some((p) => p.name === head)) return false;
  const a = lastAssignment(model, head, call.functionIndex, call.line);
  return !!a && a.functionIndex === call.functionIndex && unwrap(a.value)?.type === 'call';
}


/** {@link FOUND_RETURN}: a top-level `if found: return found` of a function, `found` bound to a query's row. */
function foundReturns(model: FileModel, effects: Effect[][]): void {
  model.functions.forEach((fn, i) => {
    const body = fn.body;
    if (!body || !/\breturn\b/.test(body.text)) return;
    const statements = body.namedChildren.filter((c) => c.type !== 'comment');
    statements.forEach((st, k) => {
      if (st.type !== 'if_statement' || k === statements.length - 1 || st.namedChildren.some((c) => c.type === 'else_clause' || c.type === 'elif_clause')) return;
      const m = /^([A-Za-z_]\w*)(\s+is\s+not\s+None)?$/.exec(st.childForFieldName('condition')?.text.trim() ?? '');
      const only = st.childForFieldName('consequence')?.namedChildren.filter((c) => c.type !== 'comment') ?? [];
      if (!m || only.length !== 1 || only[0]!.type !== 'return_statement' || only[0]!.namedChild(0)?.text !== m[1]) return;
      const bound = lastAssignment(model, m[1]!, i, st.startPosition.row + 1);
      let value = unwrap(bound?.value ?? null);
      if (value?.type === 'await') value = value.namedChild(0);
      // A read anywhere along the chain (`db.query(M).filter_by(...).first()`: the `query` call is the read).
      // Through one name holding the statement (`q = db.query(M).filter(...)`, then `found = q.first()`).
      let reads = false;
      let hops = 0;
      for (let n = value; n && !reads; ) {
        if (n.type === 'call') {
          const c = callAt(model, n);
          reads = !!c && classifyDbCall(model, c)?.kind === 'read';
          n = n.childForFieldName('function');
        } else if (n.type === 'attribute') n = n.childForFieldName('object');
        else if (n.type === 'identifier' && hops++ === 0) n = unwrap(lastAssignment(model, n.text, i, bound!.line - 1)?.value ?? null);
        else break;
      }
      if (!reads) return;
      effects[i]!.push({ kind: FOUND_RETURN, what: m[1]!, line: st.startPosition.row + 1, column: st.startPosition.column + 1 });
    });
  });
}

/**
 * Does the loop's call run only when a lookup of the same iteration found nothing (`n =
 * find(label)` then `if not n: n = create(...)`, also `if n is None:`)? A get-or-create written
 * in the loop: the call, and a commit in it, runs for the items whose row is missing.
 */
function onlyWhereLookupMissed(model: FileModel, call: CallInfo): boolean {
  const loop = model.loops[call.loops[call.loops.length - 1]!];
  const body = loop?.node.childForFieldName('body');
  if (!loop || !body) return false;
  let child: SyntaxNode = call.node;
  for (let cur = call.node.parent; cur && cur.id !== body.id; child = cur, cur = cur.parent) {
    if (cur.type !== 'if_statement') continue;
    if (cur.childForFieldName('consequence')?.id !== child.id) continue;
    let cond = cur.childForFieldName('condition');
    while (cond?.type === 'parenthesized_expression') cond = cond.namedChild(0);
    let name: string | null = null;
    if (cond?.type === 'not_operator' && cond.childForFieldName('argument')?.type === 'identifier') name = cond.childForFieldName('argument')!.text;
    else if (cond?.type === 'comparison_operator' && cond.namedChildCount === 2 && cond.namedChild(0)?.type === 'identifier' && cond.namedChild(1)?.type === 'none'
      && /^\S+\s+is\s+None$/.test(cond.text)) name = cond.namedChild(0)!.text;
    if (!name) return false;
    const ifStart = cur.startIndex;
    return assignmentsTo(model, name).some((a) => {
      if (a.functionIndex !== call.functionIndex || a.node.startIndex < body.startIndex || a.node.startIndex >= ifStart) return false;
      let v = a.value;
      if (v?.type === 'await') v = v.namedChild(0);
      return v?.type === 'call';
    });
  }
  return false;
}
