/**
 * The two halves every "one statement per loop iteration" rule shares (PA102, PA105, PA107):
 * the file half finds DB calls made per item inside a loop; the repo half finds per-item calls
 * of same-repo helpers that reach such a call (through any depth of helpers, sync or awaited)
 * and reports them at the call site with the chain.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { CallInfo, FileModel, LoopInfo } from '../../../semantic/model.js';
import { callsOf } from '../../../semantic/model.js';
import type { Severity } from '../../../types.js';
import type { FileRuleContext, RepoRuleContext } from '../../types.js';
import { callGraphOf, overImportedConstants, ownSites, siteCalls, type CallEdge, type CallGraph, type FnRef, type Reach, type SiteCall } from '../../../analysis/callgraph.js';
import { FN_PROPERTY, UNTYPED } from '../../../analysis/objects.js';
import type { SummaryCall } from '../../../analysis/summary.js';
import { INVARIANT_READ, PARAM_ROW_CALL, ROW_CALL, ROW_QUERY } from './rowCalls.js';
import {
  ARG_DOMAINS, OUTSIDE_CALL, HELD_ID_LOOKUP, isWriteReload, classifyDbCall, rowsSource, FLUSH_EFFECT, readsBeforeLoop, loopsDomain, passesItemForeignKey, foreignKeyTargetLoaded, lookupTargetHeld, invariantRead, INVARIANT_CALL, isFlushingCall, isStagedWrite, iterationCommit, iterationWriter, loadedModel, LOOP_CALL, parseLoopCall, PK_QUERY_EFFECT, QUERY_EFFECT,
  smallLiteralProduct, WRITE_EFFECT, workflowAction, type DbOp, type DbOpKind, type LoopCallFacts,
} from './dbCalls.js';
import { conditionalWithin, inExceptHandler } from '../../../semantic/controlFlow.js';
import { decodeDomain, encodeDomain, passedDomain, type LoopDomain } from '../../../semantic/loopDomain.js';
import type { Effect } from '../../../analysis/summary.js';

const LOOP_CALLS = new Set([LOOP_CALL]);
import { executesMany, lastAssignment, loopTarget, loopTargets, notPerRow, perItemLoops, short, unwrap } from './semantics.js';
import { isMemoisedCall } from '../../../semantic/memo.js';
import { outsideEffect } from '../../../semantic/externalCalls.js';
import { LIBRARY_LOOKUP_WRITES, LIBRARY_READS, libraryReceiver } from '../../../semantic/repositoryLibrary.js';
import { commitKeepsNothing, STAGES } from '../readOnlyCommit.js';

/**
 * A read of an entity this iteration has just written (added, updated, deleted) through the same
 * receiver: it has to run after that write, so it cannot be hoisted out of the loop.
 */
function readsOwnWrite(model: FileModel, read: CallInfo, readOp: DbOp, loop: LoopInfo): boolean {
  const receiver = read.dottedReceiver;
  const entity = loadedModel(model, read, readOp);
  if (!receiver || !entity) return false;
  for (const c of callsOf(model, read.functionIndex)) {
    if (c.functionIndex !== read.functionIndex || !c.loops.includes(loop.index) || c === read || c.dottedReceiver !== receiver) continue;
    if (c.line > read.line || (c.line === read.line && c.column >= read.column)) continue;
    const op = classifyDbCall(model, c);
    if (!op || op.kind === 'read') continue;
    const written = op.statement?.entity ?? constructedClass(c);
    if (written === entity) return true;
  }
  return false;
}

/** `session.add(Model(...))` → `Model`. */
function constructedClass(call: CallInfo): string | null {
  const arg = call.node.childForFieldName('arguments')?.namedChild(0);
  if (arg?.type !== 'call') return null;
  const callee = arg.childForFieldName('function')?.text ?? '';
  return /^[A-Z]\w*$/.test(callee.replace(/^.*\./, '')) ? callee.replace(/^.*\./, '') : null;
}

export interface LoopSite {
  call: CallInfo;
  op: DbOp;
  /** The loops that make the call per item, outermost first. */
  loops: LoopInfo[];
  /** For a staged write (`session.add`/`session.delete`): the call that flushes it in every iteration. */
  flushedBy?: CallInfo;
}

/**
 * The call that makes every iteration of the loop send what `staged` staged (a flush, commit,
 * statement or autoflushing query outside any condition), or null when one flush after the
 * loop batches it.
 */
export function flushPerItem(model: FileModel, staged: CallInfo, loop: LoopInfo): CallInfo | null {
  const body = loop.node.childForFieldName('body') ?? loop.node;
  for (const call of callsOf(model, staged.functionIndex)) {
    if (call === staged || call.functionIndex !== staged.functionIndex || !call.loops.includes(loop.index)) continue;
    // A flush under a condition of its own (`if n % 1000 == 0:`) batches the rows between two
    // flushes; one in the same branch as the staged write (`if new: add(x); flush()`) does not.
    if (conditionalWithin(call.node, commonAncestor(staged.node, call.node, body))) continue;
    if (isFlushingCall(model, call)) return call;
  }
  return null;
}

/**
 * A call in the same iteration as `site` that writes by itself (a statement, a flush, a
 * commit): the loop is a per-item workflow, whose round trips the read does not decide.
 */
export function iterationWrites(model: FileModel, site: LoopSite): CallInfo | null {
  return iterationWriter(model, site.call, site.loops[site.loops.length - 1]!);
}

/** The innermost node holding both `a` and `b`, no higher than `stop`. */
function commonAncestor(a: SyntaxNode, b: SyntaxNode, stop: SyntaxNode): SyntaxNode {
  for (let n: SyntaxNode | null = a.parent; n && n.id !== stop.id; n = n.parent) {
    if (n.startIndex <= b.startIndex && n.endIndex >= b.endIndex) return n;
  }
  return stop;
}

/** DB calls of `kind` made once per item of a loop: reading a name the loop rebinds. */
export function perItemDbCalls(model: FileModel, kind: DbOpKind): LoopSite[] {
  let sites = loopSites.get(model);
  if (!sites) loopSites.set(model, (sites = findLoopSites(model)));
  return sites[kind];
}

/** Three rules ask, one per kind: the calls are classified and sorted into kinds in one pass. */
const loopSites = new WeakMap<FileModel, Record<DbOpKind, LoopSite[]>>();

/**
 * Reads that run unchanged on every iteration of a data loop (see `invariantRead`): the same
 * statement N times, to run once before the loop.
 */
export function invariantReads(model: FileModel): LoopSite[] {
  perItemDbCalls(model, 'read');
  return invariantSites.get(model) ?? [];
}

const invariantSites = new WeakMap<FileModel, LoopSite[]>();

/** Is the statement's table or entity the loop's own item (`delete(t)`, `select(model)`, `session.query(model)...` for each `t`/`model` of the loop)? */
function perTableStatement(st: { root: SyntaxNode; ctor: string } | null | undefined, loop: LoopInfo, call: SyntaxNode): boolean {
  let root: SyntaxNode | null = st && st.root.type === 'call' && ['select', 'update', 'delete', 'insert', 'query'].includes(st.ctor) ? st.root : null;
  // `session.query(model)...`: the legacy Query's entity, at the bottom of the call's chain.
  for (let cur: SyntaxNode | null = call; !root && cur?.type === 'call';) {
    const fn = cur.childForFieldName('function');
    if (fn?.type !== 'attribute') break;
    if (fn.childForFieldName('attribute')?.text === 'query') root = cur;
    else cur = fn.childForFieldName('object');
  }
  const first = root?.childForFieldName('arguments')?.namedChild(0);
  const name = /^([A-Za-z_]\w*)(?:\.(?:__table__|table))?$/.exec(first?.text ?? '')?.[1];
  // The loop's item itself (`for t in tables:`), not one part of a tuple of per-row values
  // (`for model, pk in ...:` fetches one row each time).
  const targets = loopTargets(loop);
  return !!name && targets.size === 1 && targets.has(name);
}

function findLoopSites(model: FileModel): Record<DbOpKind, LoopSite[]> {
  const sites: Record<DbOpKind, LoopSite[]> = { read: [], write: [], add: [] };
  const invariant: LoopSite[] = [];
  invariantSites.set(model, invariant);
  if (model.isTestFile) return sites;
  const calls = model.calls;
  for (let i = 0; i < calls.length; i++) {
    const call = calls[i]!;
    if (!call.loops.length) continue;
    const op = classifyDbCall(model, call);
    if (!op || isWriteReload(model, call, op)) continue;
    // Chunked `in_(...)` statements and pages are the batched form, not the per-item one; so is
    // a statement sent with a list of parameter sets (one executemany).
    if (op.statement?.batched || op.statement?.chain.includes('offset') || executesMany(model, call)) continue;
    // `db.query(Book).filter(Book.id == book_id).first()`: the loop's value may come later in the chain.
    const loops = perItemLoops(model, call.loops, chainArguments(call.node)) ?? heldChainLoops(model, call);
    if (!loops && op.kind === 'read') {
      // The same key on every iteration: after the first, the identity map answers without SQL.
      if (op.identityMap) continue;
      const loop = invariantRead(model, call);
      if (loop) invariant.push({ call, op, loops: [loop] });
      continue;
    }
    if (!loops || notPerRow(model, call, loops, op.kind !== 'read') || isMemoisedCall(model, call)) continue;
    // `for t in tables: delete(t)`: another table on each iteration, so no one statement can
    // stand for the loop (a fixed set of tables, not rows).
    if (perTableStatement(op.statement, loops[loops.length - 1]!, call.node)) continue;
    // Each row's write records what the iteration did outside the database and is committed with
    // it (`refund = stripe.Refund.create(...); update(...); commit()`): one statement after the
    // loop would lose that record for the items done before a failure.
    if (op.kind === 'write' && recordsOutsideEffect(model, call, loops[loops.length - 1]!)) continue;
    // A read that must see what this iteration just wrote cannot be hoisted out of the loop.
    if (op.kind === 'read' && readsOwnWrite(model, call, op, loops[loops.length - 1]!)) continue;
    // SQLAlchemy's unit of work: a staged add or delete costs a round trip per item only when the iteration flushes.
    if (isStagedWrite(call, op)) {
      const flushedBy = flushPerItem(model, call, loops[loops.length - 1]!);
      if (flushedBy) sites[op.kind].push({ call, op, loops, flushedBy });
      continue;
    }
    sites[op.kind].push({ call, op, loops });
  }
  return sites;
}

/**
 * Is `write` preceded in its iteration of `loop` by a call that acts outside the database
 * (`outsideEffect`: a network client, an integration, a call named like sending), and followed
 * by a commit in the same iteration? Then the write is the per-item record of that effect.
 */
function recordsOutsideEffect(model: FileModel, write: CallInfo, loop: LoopInfo): boolean {
  let before = false;
  let commitAfter = false;
  for (const c of callsOf(model, write.functionIndex)) {
    if (c === write || c.functionIndex !== write.functionIndex || !c.loops.includes(loop.index)) continue;
    if (c.node.endIndex <= write.node.startIndex) {
      if (!before && outsideEffect(model, c) !== null) before = true;
    } else if (c.node.startIndex >= write.node.endIndex && c.method === 'commit' && isFlushingCall(model, c)) {
      commitAfter = true;
    }
  }
  return before && commitAfter;
}

/**
 * The call and the method calls chained on it (`q(...).filter(...).first()`), as the node
 * whose names the per-item check reads — without the receiver before the call.
 */
/**
 * `q = row.items.filter(...)` then `q.update({...})` in the same iteration: the statement was
 * built from the loop's value one line up. The loops the held chain is per item of, or null.
 */
function heldChainLoops(model: FileModel, call: CallInfo): LoopInfo[] | null {
  const receiver = call.receiver;
  if (receiver?.type !== 'identifier' || call.functionIndex < 0) return null;
  const a = lastAssignment(model, receiver.text, call.functionIndex, call.line);
  const innermost = call.loops[call.loops.length - 1];
  const value = a && a.functionIndex === call.functionIndex && innermost !== undefined && a.loops.includes(innermost) ? unwrap(a.value) : null;
  return value?.type === 'call' ? perItemLoops(model, call.loops, value) : null;
}

function chainArguments(call: SyntaxNode): SyntaxNode {
  let top = call;
  for (;;) {
    const parent = top.parent;
    const grand = parent?.parent;
    if (parent?.type !== 'attribute' || grand?.type !== 'call' || grand.childForFieldName('function')?.id !== parent.id) break;
    top = grand;
  }
  if (top !== call) return top;
  // `db.query(M).filter(M.id == i).update(...)`: the chain before the call counts too.
  const fn = call.childForFieldName('function');
  if (fn?.type === 'attribute' && fn.childForFieldName('object')?.type === 'call') return call;
  return call.childForFieldName('arguments') ?? call;
}

/**
 * Why a per-item primary-key lookup is advisory: in the field review, every one judged was either
 * answered from rows the code already held (no SQL) or ran over a handful of items.
 */
export const IDENTITY_MAP_EVIDENCE = 'a primary-key lookup: the session\'s identity map answers it without SQL for rows already loaded';

/** Why a primary-key lookup per item is `low`: SQLAlchemy answers it from the session when it can. */
export const IDENTITY_MAP_NOTE = 'an identity-map lookup, a SELECT per item only for rows not yet loaded in the session';

export interface FileReadReport {
  site: LoopSite;
  message: string;
  severity: Severity | undefined;
  advisory?: string;
  /** The severity waits for the repo phase: the loop is over a parameter or a call's result. */
  deferred: boolean;
  /** The loops' domain, encoded (`encodeDomain`). */
  domain: string;
  /** Another rule's finding that is the same defect (see `RuleReport.sameDefectAs`). */
  sameDefectAs?: { code: string; line: number };
}

const fileReadMemo = new WeakMap<FileModel, FileReadReport[]>();

/**
 * Does a primary-key lookup per item fetch rows nothing loaded? It does over the ids a request
 * sent when the function read nothing before the loop: the session of a request starts empty,
 * so the identity map has none of them (a bulk load of those ids first would be the fix).
 */
function idsFromRequest(domain: Domain, readBefore: boolean): boolean {
  return domain === 'input' && !readBefore;
}


/** A note for a primary-key lookup per id of the request: why it is not an identity-map hit. */
const REQUEST_IDS_NOTE = '; the ids come from the request and nothing is loaded before the loop, so each lookup is a SELECT';

/** Why a loop over data shipped with the code is advisory. */
const BUNDLED_EVIDENCE = 'the loop runs over data shipped with the code (a JSON/YAML/TOML file read from beside the module, such as seed data): as many queries as the file has entries, whatever the tables hold';

/**
 * Why a per-item statement made only in an `except` handler is advisory: it runs for the items
 * whose work failed, not for every item (two unseen reviews judged such N+1s FALSE: the lookup
 * only fed a failure notice).
 */
const HANDLER_EVIDENCE = 'the call runs only in an `except` handler: once per item whose work failed, not once per item, and nothing batches a failure path';

/**
 * PA107's findings of a file: reads per item of a loop (directly in the loop body) and reads
 * that repeat unchanged on every iteration, with their message and severity. A loop whose N is a
 * parameter or another function's result is `deferred`: the repo phase knows what the callers
 * pass and what the function returns (`collectDeferredReports`, `reportDeferredLoopFindings`).
 */
export function fileReadReports(model: FileModel): FileReadReport[] {
  const known = fileReadMemo.get(model);
  if (known) return known;
  const out: FileReadReport[] = [];
  const deferrable = (site: LoopSite, d: LoopDomain) => (d.kind === 'param' || d.kind === 'call') && site.call.functionIndex >= 0;
  const decided = (d: LoopDomain) => (d.kind === 'call' || d.kind === 'param' ? 'unknown' : d.kind);
  for (const site of perItemDbCalls(model, 'read')) {
    const d = loopsDomain(model, site.loops);
    const writes = iterationWrites(model, site);
    // The iteration commits what it writes (or is a transaction or session of its own): one unit of work per item.
    const unitCall = writes ? iterationCommit(model, site.call, site.loops[site.loops.length - 1]!) : null;
    // By each item's foreign key the target rows are usually not loaded (the classic N+1),
    // unless the loop's query loaded that relationship with its rows: then the identity map has them.
    const fk = passesItemForeignKey(model, site.call, site.loops);
    const pk = site.op.identityMap && (!fk || foreignKeyTargetLoaded(model, site.call, site.loops) || lookupTargetHeld(model, site.call, site.loops)) && !idsFromRequest(decided(d), readsBeforeLoop(model, site.call.functionIndex, site.loops[0]!));
    const loop = describeLoop(site.loops[site.loops.length - 1]!);
    const message = (pk
      ? `primary-key lookup \`${site.op.what}\` runs once per item of ${loop}: ${IDENTITY_MAP_NOTE}`
      : `N+1: query \`${site.op.what}\` runs once per item of ${loop}`)
      + (writes ? `; each iteration also ${workflowAction(writes)}: a per-item workflow, where batching the read alone saves little` : '');
    const forcedLow = pk || writes !== null;
    const requestIds = site.op.identityMap && !pk && decided(d) === 'input' && !passesItemForeignKey(model, site.call, site.loops);
    const deferred = !forcedLow && deferrable(site, d);
    out.push({
      site,
      message: message + (requestIds ? REQUEST_IDS_NOTE : forcedLow || deferred ? '' : domainNote(decided(d))),
      severity: forcedLow ? 'low' : domainSeverity(decided(d)),
      ...(pk ? { advisory: IDENTITY_MAP_EVIDENCE } : unitCall ? { advisory: unitEvidence(unitCall.calleeText) } : inExceptHandler(site.call.node, model.functions[site.call.functionIndex]?.node ?? site.loops[0]!.node) ? { advisory: HANDLER_EVIDENCE } : domainAdvisory(decided(d))),
      deferred,
      domain: encodeDomain(d),
    });
  }
  for (const site of invariantReads(model)) {
    const d = loopsDomain(model, site.loops);
    const deferred = deferrable(site, d);
    out.push({
      site,
      message: `query \`${site.op.what}\` runs unchanged on every iteration of ${describeLoop(site.loops[0]!)}: nothing it reads changes in the loop; run it once before the loop` + (deferred ? '' : domainNote(decided(d))),
      severity: domainSeverity(decided(d)),
      deferred,
      domain: encodeDomain(d),
    });
  }
  fileReadMemo.set(model, out);
  return out;
}


/** Site fact: a PA107 finding of the file whose severity the repo phase decides (`what` = domain|endLine|endColumn|message). */
export const DEFERRED_READ = 'deferred_read';

/** Site fact: the same for a PA102 finding (a statement that writes per item of a loop). */
export const DEFERRED_WRITE = 'deferred_write';

/** The deferred findings of {@link fileReadReports} (and of `extra`), as site facts of their functions. */
export function collectDeferredReports(model: FileModel, extra: (model: FileModel) => readonly FileReadReport[] = () => []): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return effects;
  const push = (r: FileReadReport, kind: string) => {
    if (!r.deferred) return;
    const { call } = r.site;
    const end = call.node.endPosition;
    const same = r.sameDefectAs ? `${r.sameDefectAs.code}@${r.sameDefectAs.line}` : '';
    effects[call.functionIndex]!.push({ kind, what: `${r.domain}|${end.row + 1}|${end.column + 1}|${same}|${r.message}`, line: call.line, column: call.column });
  };
  for (const r of fileReadReports(model)) push(r, DEFERRED_READ);
  for (const r of extra(model)) push(r, DEFERRED_WRITE);
  return effects;
}

/**
 * Reports the deferred findings of one kind (`DEFERRED_READ` for PA107, `DEFERRED_WRITE` for
 * PA102), at the severity what the loop's N is decides (see `resolveDomain`).
 */
export function reportDeferredLoopFindings(ctx: RepoRuleContext, kind: string = DEFERRED_READ): void {
  const graph = callGraphOf(ctx.index);
  for (const ref of graph.functionsWithEffects(new Set([kind]))) {
    const file = graph.fileOf(ref);
    if (file.isTestFile) continue;
    for (const e of graph.ownEffects(ref)) {
      if (e.kind !== kind) continue;
      const [code = '', endLine = '', endColumn = '', same = ''] = e.what.split('|', 4);
      const message = e.what.slice(code.length + endLine.length + endColumn.length + same.length + 4);
      const [sameCode, sameLine] = same.split('@');
      const domain = resolveDomain(graph, ref.file, decodeDomain(code), ref);
      ctx.report({
        path: file.path,
        location: { line: e.line, column: e.column, endLine: Number(endLine), endColumn: Number(endColumn) },
        message: message + domainNote(domain),
        severity: domainSeverity(domain),
        ...domainAdvisory(domain),
        ...(sameCode && sameLine ? { sameDefectAs: { code: sameCode, line: Number(sameLine) } } : {}),
        function: graph.function(ref).name,
      });
    }
  }
}

/** `the loop over \`jobs\``, `the while loop`, for messages. */
export function describeLoop(loop: LoopInfo): string {
  if (loop.kind === 'while') return 'the `while` loop';
  if (!loop.iterable) return 'the loop';
  return `the loop over \`${short(loop.iterable, 40)}\``;
}

/**
 * Per-item calls of same-repo functions that reach an effect of `effectKind` (`query`,
 * `write`). `literalSize` is the iteration count when every loop around the call is a literal
 * collection, else null.
 */
export function reportHelperSites(
  ctx: RepoRuleContext,
  effectKind: string,
  message: (callee: string, what: string) => string,
  severity: (literalSize: number | null) => Severity | undefined = () => undefined,
  identityMapMessage?: (callee: string, what: string) => string,
  byDomain = false,
): void {
  const graph = callGraphOf(ctx.index);
  const { sites, workflow, outside, unit } = loopFacts(graph);
  /**
   * The chain to report: to a query of `effectKind`, else (for reads, when asked) to a
   * primary-key lookup, which is at most `low`: the identity map answers it for rows the session
   * already holds. A chain with a call resolved by the method's name alone is none.
   */
  const reachOf = (effects: Map<string, Reach>): { reach: Reach; pk: boolean } | null => {
    const reach = effects.get(effectKind);
    if (reach && !reach.weak) return { reach, pk: false };
    const pk = identityMapMessage ? effects.get(PK_QUERY_EFFECT) : undefined;
    return pk && !pk.weak ? { reach: pk, pk: true } : null;
  };
  for (const { ref, file, fn, call, to, facts } of sites) {
    // A call followed by a way out of the loop: a search for reads, per item for writes.
    if (facts.stopsEarly && effectKind !== WRITE_EFFECT) continue;
    // A handful of constants another module declares: a fixed cost, as a literal here would be.
    if (overImportedConstants(graph, ref, call)) continue;
    // A chain with a call resolved by the method's name alone (its receiver untyped) is not
    // evidence enough for a per-row claim: in the field review every such N+1 had followed a
    // same-named method of an unrelated class (a mixin's attribute typed from one subclass).
    if (call.receiverType === UNTYPED) continue;
    const found = reachOf(graph.effectsOfCall(ref, call, to, 'any'));
    if (!found) continue;
    const { reach } = found;
    // A lookup by each item's foreign key fetches rows nothing loaded: the classic N+1.
    const domain = byDomain || found.pk ? resolveDomain(graph, ref.file, facts.domain, ref) : null;
    const requestIds = found.pk && !facts.foreignKey && idsFromRequest(domain!, facts.readBefore);
    const pk = found.pk && !facts.foreignKey && !requestIds;
    const chain = graph.chainSteps(reach, { ref, call });
    const alsoWrites = effectKind === QUERY_EFFECT ? workflow(file.path, facts.loop, facts.writes) : null;
    const unitOf = alsoWrites !== null && !pk ? unit(file.path, facts.loop, facts.commits) : null;
    // A write reached per item of a loop whose iteration also calls a service or sends a message:
    // each UPDATE records what that item's call did (a transfer reversed, an email sent), and one
    // set-based statement cannot stand in for per-item work outside the database.
    const sends = effectKind === WRITE_EFFECT ? outside(ref, file.path, facts.loop) : null;
    // The helper commits what it wrote, per item: a unit of work per item (PA207 reports the
    // commits), where one set-based statement would change what each commit keeps.
    const commits = effectKind === WRITE_EFFECT && sends === null ? strongReach(graph.effectsOfCall(ref, call, to, 'any'), TRANSACTION_COMMIT) : null;
    const text = pk ? identityMapMessage!(graph.function(to).qualifiedName, reach.effect.what) : message(graph.function(to).qualifiedName, reach.effect.what);
    // A write inside a helper that does more for its item than that write (writes other rows,
    // commits, opens a session, calls out): an entity's own workflow, where one set-based
    // statement replaces the loop only once the rest is rebuilt around it. A helper that is the
    // write alone (directly or through its repository), or reads the rows it then writes, is the
    // per-row statement.
    const entityWork = effectKind === WRITE_EFFECT ? helperWork(graph, to, reach) : null;
    ctx.report({
      path: file.path,
      location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
      message: text + (alsoWrites !== null ? workflowNote(alsoWrites) : sends !== null ? outsideWorkflowNote(sends) : commits ? `; each iteration commits it (\`${graph.chainNames(commits).join('` → `')}()\`): a unit of work per item` : requestIds ? REQUEST_IDS_NOTE : domain ? domainNote(domain) : ''),
      severity: alsoWrites !== null || sends !== null || commits || pk ? 'low' : domain ? domainSeverity(domain) : severity(facts.size),
      ...domainAdvisory(domain),
      ...(pk ? { advisory: IDENTITY_MAP_EVIDENCE } : unitOf !== null ? { advisory: unitEvidence(unitOf) } : entityWork !== null ? { advisory: entityWorkEvidence(graph.function(to).qualifiedName, entityWork) } : call.inHandler ? { advisory: HANDLER_EVIDENCE } : {}),
      function: fn.name,
      chain,
    });
  }
  // Functions handed to a callee that calls them once per item of its loop (`paginate(rows, render)`).
  for (const edge of perItemCallbacks(graph)) {
    if (edge.weak) continue;
    const found = reachOf(graph.effectsOf(edge.to, 'any'));
    if (!found) continue;
    const { reach, pk } = found;
    const file = graph.fileOf(edge.from);
    const call = edge.call;
    const text = pk ? identityMapMessage!(graph.function(edge.to).qualifiedName, reach.effect.what) : message(graph.function(edge.to).qualifiedName, reach.effect.what);
    ctx.report({
      path: file.path,
      location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
      message: text + ` (\`${call.perItemIn}\` calls it for each item)`,
      severity: pk ? 'low' : severity(null),
      ...(pk ? { advisory: IDENTITY_MAP_EVIDENCE } : {}),
      function: graph.function(edge.from).name,
      chain: graph.chainSteps(reach, { ref: edge.from, call }),
    });
  }
}

/**
 * What a per-item helper does besides the one write `reach` found, or null when it is that write
 * (with the reads that pick its rows, and however many calls down it sits): the helper (itself or
 * through its callees) also writes something else, commits, opens a session or calls out of the
 * process.
 */
function helperWork(graph: CallGraph, to: FnRef, reach: Reach): string | null {
  // The write itself, wherever it sits along the chain (a service handing it to its repository
  // is one statement, not two).
  const last = reach.steps[reach.steps.length - 1]!.fn;
  const same = (fn: FnRef, e: { line: number; column: number }) => fn.file === last.file && fn.fn === last.fn && e.line === reach.effect.line && e.column === reach.effect.column;
  for (const e of graph.ownEffects(to)) {
    if (!HELPER_WORK_KINDS.includes(e.kind) || same(to, e)) continue;
    return `it also runs \`${e.what}\``;
  }
  for (const edge of graph.callees(to)) {
    if (edge.weak) continue;
    // What the callee reaches as `to` calls it (a flag `to` leaves off closes its branch).
    const effects = graph.effectsOfCall(to, edge.call, edge.to, 'any');
    for (const kind of HELPER_WORK_KINDS) {
      const r = effects.get(kind);
      if (!r || r.weak || same(r.steps[r.steps.length - 1]!.fn, r.effect)) continue;
      return `it also runs \`${r.effect.what}\` (through \`${graph.function(edge.to).qualifiedName}\`)`;
    }
  }
  return null;
}

function entityWorkEvidence(helper: string, work: string): string {
  return `the UPDATE/DELETE is one step of \`${helper}\`, which does its item's whole work (${work}): one set-based statement replaces the loop only once that work is rebuilt around it, so the per-row statement is a design question, not a drop-in fix`;
}

/**
 * A method or property of the loop's own row that queries about that row (see rowCalls.ts):
 * `for r in rows: r.open_items` where `open_items` is a model's property running
 * `Item.query.with_parent(self)`. When the loop's query names the rows' model, that model's
 * method decides, at the loop's severity; otherwise the name decides, only when every method or
 * property of that name in the repo is such a model method, and one severity lower (`medium`).
 * `low` in a per-item workflow.
 */
export function reportRowSites(ctx: RepoRuleContext, message: (owner: string, name: string, property: boolean, what: string) => string): void {
  const graph = callGraphOf(ctx.index);
  const sites = [...ownSites(graph, ROW_CALL)];
  if (!sites.length) return;
  const byName = methodsNamed(graph);
  const { workflow, unit } = loopFacts(graph);
  for (const { ref, file, site } of sites) {
    const [kind = '', name = '', end = '', entity = ''] = site.what.split('|', 4);
    const facts = parseLoopCall(site.what.slice(kind.length + name.length + end.length + entity.length + 4));
    const property = kind === 'p';
    const definers = (byName.get(name) ?? []).filter((d) => ((graph.function(d).flags & FN_PROPERTY) !== 0) === property);
    const rowQuery = (d: FnRef) => graph.ownEffects(d).some((e) => e.kind === ROW_QUERY);
    // The rows' model known from the loop's query: its own method decides.
    const typed = entity ? definers.find((d) => graph.function(d).className === entity) : undefined;
    if (typed ? !rowQuery(typed) : !definers.length || !definers.every(rowQuery)) continue;
    const to = typed ?? definers[0]!;
    const effects = graph.effectsOf(to, 'any');
    const reach = effects.get(QUERY_EFFECT);
    if (!reach || reach.weak) continue;
    // A method that also writes its row (a flush, a statement) is a per-item workflow on its own.
    const ownWrite = strongReach(effects, FLUSH_EFFECT) ?? strongReach(effects, WRITE_EFFECT);
    const alsoWrites = ownWrite ? `${graph.function(to).qualifiedName}: ${ownWrite.effect.what}` : workflow(file.path, facts.loop, facts.writes);
    const callee = graph.function(to);
    const text = `${site.what.startsWith('m') ? `${name}()` : name}`;
    // The loop is over rows by construction; only what a request sent bounds it lower.
    const input = resolveDomain(graph, ref.file, facts.domain, ref) === 'input';
    ctx.report({
      path: file.path,
      location: { line: site.line, column: site.column, endLine: site.line, endColumn: Number(end) },
      message: message(callee.qualifiedName, text, property, reach.effect.what) + (alsoWrites !== null ? workflowNote(alsoWrites) : input ? domainNote('input') : ''),
      severity: alsoWrites !== null || input ? 'low' : typed ? undefined : 'medium',
      ...(alsoWrites !== null && !ownWrite && unit(file.path, facts.loop, facts.commits) !== null ? { advisory: unitEvidence(unit(file.path, facts.loop, facts.commits)!) } : {}),
      function: graph.function(ref).name,
      chain: graph.chainSteps(reach, { ref, call: { calleeText: text, line: site.line, column: site.column } as SummaryCall }),
    });
  }
}



/**
 * Per-item calls of a repository library's inherited methods on an object of a repo class that
 * derives from it (`self.tags.upsert(...)`, `self.users.get_one(...)` with the attribute typed
 * by an annotation, a property or a constructor): reads are one SELECT each; `upsert`,
 * `update`, `delete` look the row up and flush it, a per-item workflow (`low`). The graph has no
 * body to follow for them: the library's catalogue (semantic/repositoryLibrary.ts) says.
 */
export function reportLibrarySites(ctx: RepoRuleContext, message: (callee: string, owner: string, lookupWrite: boolean) => string): void {
  const graph = callGraphOf(ctx.index);
  const { workflow, unit } = loopFacts(graph);
  for (const { ref, file, site } of ownSites(graph, LOOP_CALL)) {
    if (parseLoopCall(site.what).stopsEarly) continue;
    const call = graph.callAt(ref.file, site.line, site.column);
    if (!call?.method) continue;
    const lookupWrite = LIBRARY_LOOKUP_WRITES.has(call.method);
    if (!lookupWrite && !LIBRARY_READS.has(call.method)) continue;
    const owner = libraryReceiver(graph, ref.file, call);
    if (!owner) continue;
    // A row's id handed back to the object that loaded it: PA101's, when the project declares the library.
    if (ctx.project.stack['advanced-alchemy'] && graph.ownEffects(ref).some((e) => e.kind === HELD_ID_LOOKUP && e.line === call.line && e.column === call.column)) continue;
    const facts = parseLoopCall(site.what);
    const alsoWrites = lookupWrite ? null : workflow(file.path, facts.loop, facts.writes);
    const domain = resolveDomain(graph, ref.file, facts.domain, ref);
    ctx.report({
      path: file.path,
      location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
      message: message(call.calleeText, owner, lookupWrite) + (alsoWrites !== null ? workflowNote(alsoWrites) : domainNote(domain)),
      severity: lookupWrite || alsoWrites !== null ? 'low' : domainSeverity(domain),
      ...domainAdvisory(domain),
      ...(alsoWrites !== null && unit(file.path, facts.loop, facts.commits) !== null ? { advisory: unitEvidence(unit(file.path, facts.loop, facts.commits)!) } : {}),
      function: graph.function(ref).name,
    });
  }
}

/**
 * `obj.name` read on every iteration of a data loop (`INVARIANT_READ` sites), where `name` is a
 * property of `obj`'s class whose getter reaches a query and writes nothing: the same query per
 * item. Every class of that name in the repo that defines the property must be such a one.
 */
export function reportInvariantPropertyReads(ctx: RepoRuleContext, message: (getter: string, text: string, what: string) => string): void {
  const graph = callGraphOf(ctx.index);
  const sites = [...ownSites(graph, INVARIANT_READ)];
  if (!sites.length) return;
  const byName = methodsNamed(graph);
  const { workflow } = loopFacts(graph);
  for (const { ref, file, site } of sites) {
    const [name = '', end = '', owner = '', obj = '', loop = '', code = ''] = site.what.split('|');
    const getters = (byName.get(name) ?? []).filter((d) => (graph.function(d).flags & FN_PROPERTY) !== 0 && graph.function(d).className === owner);
    if (!getters.length) continue;
    let reach: Reach | undefined;
    let ok = true;
    for (const g of getters) {
      const effects = graph.effectsOf(g, 'any');
      const r = effects.get(QUERY_EFFECT);
      if (!r || r.weak || effects.has(FLUSH_EFFECT) || effects.has(WRITE_EFFECT)) ok = false;
      reach ??= r;
    }
    if (!ok || !reach) continue;
    const alsoWrites = workflow(file.path, loop, false);
    const domain = resolveDomain(graph, ref.file, decodeDomain(code), ref);
    const text = `${obj}.${name}`;
    ctx.report({
      path: file.path,
      location: { line: site.line, column: site.column, endLine: site.line, endColumn: Number(end) },
      message: message(graph.function(getters[0]!).qualifiedName, text, reach.effect.what) + (alsoWrites !== null ? workflowNote(alsoWrites) : domainNote(domain)),
      severity: alsoWrites !== null ? 'low' : domainSeverity(domain),
      ...domainAdvisory(domain),
      function: graph.function(ref).name,
      chain: graph.chainSteps(reach, { ref, call: { calleeText: text, line: site.line, column: site.column } as SummaryCall }),
    });
  }
}


/**
 * A helper that calls a querying method of a row it was given (`def render(user): ...
 * user.count_posts(...)`), called once per item of a loop with that item (`for u in users:
 * render(u)`): the method's query about its row runs once per item. Reported in the helper, at
 * the method call, with the first such loop; the method must be a model method whose own body
 * queries about `self` (`row_query`), resolved through the parameter's type, not by name alone.
 */
export function reportParamRowCalls(ctx: RepoRuleContext, message: (text: string, method: string, what: string, helper: string, caller: string, where: string) => string): void {
  const graph = callGraphOf(ctx.index);
  const { workflow } = loopFacts(graph);
  for (const { ref, file, fn, call, to, site } of siteCalls(graph, PARAM_ROW_CALLS)) {
    if (call.receiverType === UNTYPED || !graph.ownEffects(to).some((e) => e.kind === ROW_QUERY)) continue;
    const reach = graph.effectOf(to, QUERY_EFFECT, 'any');
    if (!reach || reach.weak) continue;
    const [position = '', end = ''] = site.what.split('|');
    for (const edge of graph.callers(ref)) {
      if (edge.weak || graph.fileOf(edge.from).isTestFile) continue;
      const loopSite = graph.ownEffects(edge.from).find((e) => e.kind === LOOP_CALL && e.line === edge.call.line && e.column === edge.call.column);
      if (!loopSite) continue;
      const facts = parseLoopCall(loopSite.what);
      if (facts.stopsEarly || !facts.items.includes(Number(position))) continue;
      const callerFile = graph.fileOf(edge.from);
      const alsoWrites = workflow(callerFile.path, facts.loop, facts.writes);
      const domain = resolveDomain(graph, edge.from.file, facts.domain, edge.from);
      const text = `${call.calleeText}()`;
      ctx.report({
        path: file.path,
        location: { line: site.line, column: site.column, endLine: site.line, endColumn: Number(end) },
        message: message(text, graph.function(to).qualifiedName, reach.effect.what, fn.name, graph.function(edge.from).qualifiedName, `${callerFile.path}:${edge.call.line}`)
          + (alsoWrites !== null ? workflowNote(alsoWrites) : domainNote(domain)),
        severity: alsoWrites !== null ? 'low' : domainSeverity(domain),
        ...domainAdvisory(domain),
        function: fn.name,
        chain: graph.chainSteps(reach, { ref, call }),
      });
      break;
    }
  }
}

const PARAM_ROW_CALLS = new Set([PARAM_ROW_CALL]);



const callbackCache = new WeakMap<object, CallEdge[]>();

/** Call edges from a function handed to a callee that calls it per item of a loop, in file and source order. */
function perItemCallbacks(graph: CallGraph): CallEdge[] {
  let list = callbackCache.get(graph);
  if (list) return list;
  list = [];
  for (const ref of graph.functions()) {
    if (graph.fileOf(ref).isTestFile) continue;
    for (const edge of graph.callees(ref)) if (edge.call.perItemIn) list.push(edge);
  }
  callbackCache.set(graph, list);
  return list;
}

/**
 * Calls in a data loop that read nothing the loop changes, of same-repo functions that reach a
 * query and write nothing: the same query on every iteration.
 */
export function reportInvariantHelperSites(ctx: RepoRuleContext, message: (callee: string, what: string, loop: string) => string): void {
  const graph = callGraphOf(ctx.index);
  for (const { ref, file, fn, call, to, site } of siteCalls(graph, INVARIANT_CALLS)) {
    if (call.receiverType === UNTYPED) continue;
    const effects = graph.effectsOfCall(ref, call, to, 'any');
    const reach = effects.get(QUERY_EFFECT);
    if (!reach || reach.weak || effects.has(FLUSH_EFFECT) || effects.has(WRITE_EFFECT)) continue;
    const [loop = '', code = ''] = site.what.split('|');
    const alsoWrites = loopFacts(graph).workflow(file.path, loop, false);
    const domain = resolveDomain(graph, ref.file, decodeDomain(code), ref);
    ctx.report({
      path: file.path,
      location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
      message: message(graph.function(to).qualifiedName, reach.effect.what, loop) + (alsoWrites !== null ? workflowNote(alsoWrites) : domainNote(domain)),
      severity: alsoWrites !== null ? 'low' : domainSeverity(domain),
      ...domainAdvisory(domain),
      function: fn.name,
      chain: graph.chainSteps(reach, { ref, call }),
    });
  }
}

const INVARIANT_CALLS = new Set([INVARIANT_CALL]);

type LoopCallSite = SiteCall & { facts: LoopCallFacts };

interface LoopFacts {
  sites: LoopCallSite[];
  /**
   * What else an iteration of the loop at `loop` (file, position) writes: `helper: what` for a
   * helper called per item that writes, '' for a write in the loop body (`inLoop`), else null.
   */
  workflow(file: string, loop: string, inLoop: boolean): string | null;
  /**
   * A call outside the process that an iteration of the loop at `loop` of function `ref` makes,
   * itself (`what`) or through a per-item helper (`helper: what`), or null.
   */
  outside(ref: FnRef, file: string, loop: string): string | null;
  /**
   * Whether each iteration of the loop at `loop` is a unit of work of its own: it commits, or runs
   * in a transaction or session of its own, in the loop body (`own`, from the site's facts) or in a
   * helper called per item (`helper: what`); '' for the body's own, null when it is not.
   */
  unit(file: string, loop: string, own: boolean): string | null;
}

const loopFactsCache = new WeakMap<object, LoopFacts>();

/**
 * Evidence for a read in an iteration that is a unit of work of its own (it commits, or runs in a
 * transaction or session of its own): one transaction per item is the design, and the read can
 * only be batched by restructuring them. Advisory; PA207 reports the commits per item.
 */
export function unitEvidence(unit: string): string {
  return `each iteration commits what it writes (a unit of work per item${unit ? `: \`${unit}\`` : ''}): with SQLAlchemy's default expire_on_commit, rows read before the loop are expired by each commit and loaded again, so batching the read means restructuring the transactions, which is the question to ask first`;
}


/**
 * The transaction family's effect of a function that commits (transaction/effects.ts
 * `COMMIT_EFFECT`; named here to keep the families' modules free of a cycle): a commit sends
 * what the iteration staged, so a helper that commits writes on its own.
 */
const TRANSACTION_COMMIT = 'commit';
/**
 * May the loop around a per-item call have staged something for the callee's commit to keep? Its
 * transaction site fact says whether the iteration sets an attribute or item, changes a
 * collection in place or calls `setattr` (`w`); what the function stages outside the loop is not
 * the iteration's.
 */
function loopStages(graph: CallGraph, ref: FnRef, call: SummaryCall): boolean {
  const own = graph.ownEffects(ref);
  const site = own.find((e) => e.kind === 'txn_loop_call' && e.line === call.line && e.column === call.column);
  return site?.what.startsWith('w') ?? false;
}

/** Do two chains end in the same function? */
function sameFn(a: Reach, b: Reach): boolean {
  const x = a.steps[a.steps.length - 1]!.fn;
  const y = b.steps[b.steps.length - 1]!.fn;
  return x.file === y.file && x.fn === y.fn;
}
/** transaction/missing_rollback.ts `OPENS_SESSION`: the function opens a session of its own. */
const TRANSACTION_OPENS_SESSION = 'opens_session';
/** Kinds of work besides one write that make a helper an entity's workflow (see {@link helperWork}). */
const HELPER_WORK_KINDS: readonly string[] = [WRITE_EFFECT, TRANSACTION_COMMIT, OUTSIDE_CALL, TRANSACTION_OPENS_SESSION];
/** Marks a workflow whose per-item work is a session of its own (see {@link loopFacts}). */
const SESSION_MARK = 'session:';
/** Marks a workflow (see {@link loopFacts}) whose per-item work is a call outside the process. */
const OUTSIDE_MARK = 'outside:';

/**
 * The per-item call sites of the repo and, per loop, whether its iteration writes on its own: in
 * the loop itself, or in a helper called per item. A read in such an iteration is one part of a
 * per-item workflow: its round trips are there anyway, and batching the read alone saves little.
 */
function loopFacts(graph: CallGraph): LoopFacts {
  const known = loopFactsCache.get(graph);
  if (known) return known;
  const sites = [...siteCalls(graph, LOOP_CALLS)].map((s) => ({ ...s, facts: parseLoopCall(s.site.what) }));
  // The workflow of a loop: its iterations, not a search's last one.
  const perItem = sites.filter((s) => !s.facts.stopsEarly);
  /**
   * Has the iteration around a per-item call staged something for a commit to keep: the loop's
   * own writes (`w`), its attribute and collection changes, or another per-item call of the same
   * loop that changes something (`mark(order); audit(db, order)`)?
   */
  const stagesByLoop = new Map<string, boolean>();
  const iterationStages = (s: (typeof sites)[number]): boolean => {
    if (s.facts.writes || s.facts.stages || loopStages(graph, s.ref, s.call)) return true;
    const key = `${s.file.path}\0${s.facts.loop}`;
    let v = stagesByLoop.get(key);
    if (v === undefined) {
      // Another per-item call of the loop that changes something, or whose transaction fact says
      // the iteration sets an attribute (`cert.rotation = True; database.update(cert)`).
      v = sites.some((o) => o.file.path === s.file.path && o.facts.loop === s.facts.loop && o !== s
        && (loopStages(graph, o.ref, o.call) || graph.reaches(o.to, STAGES, 'any') || graph.reaches(o.to, WRITE_EFFECT, 'any')));
      stagesByLoop.set(key, v);
    }
    return v;
  };
  const writer = (s: (typeof sites)[number]): Reach | null => {
    const effects = graph.effectsOfCall(s.ref, s.call, s.to, 'any');
    // A commit counts too: it sends what the iteration changed (a staged row, or an attribute of
    // a loaded row that no effect records).
    // A commit that keeps nothing (the helper only read) sends nothing either.
    const commit = strongReach(effects, TRANSACTION_COMMIT);
    const flush = strongReach(effects, FLUSH_EFFECT);
    // (Unless the loop's own iteration wrote something for it to keep.)
    const keepsNothing = (r: Reach | null) => r !== null && commit !== null && !iterationStages(s) && r.effect.line === commit.effect.line && r.effect.column === commit.effect.column && sameFn(r, commit) && commitKeepsNothing(graph, commit);
    const written = (keepsNothing(flush) ? null : flush) ?? strongReach(effects, WRITE_EFFECT) ?? (keepsNothing(commit) ? null : commit);
    if (written) return written;
    // A helper that opens a session of its own for each call: each item is a unit apart.
    return strongReach(effects, TRANSACTION_OPENS_SESSION);
  };
  // An iteration that sends a message or calls a service per item is dominated by that call:
  // the read beside it is one part of a per-item workflow, like a write is.
  const outside = (s: SiteCall) => strongReach(graph.effectsOfCall(s.ref, s.call, s.to, 'any'), OUTSIDE_CALL);
  const byLoop = new Map<string, string | null>();
  const workflow = (file: string, loop: string, inLoop: boolean): string | null => {
    const key = `${file}\0${loop}`;
    if (!byLoop.has(key)) {
      let what: string | null = null;
      let sends: string | null = null;
      for (const s of perItem) {
        if (s.file.path !== file || s.facts.loop !== loop) continue;
        const w = writer(s);
        if (w) {
          what = w.effect.kind === TRANSACTION_OPENS_SESSION ? `${SESSION_MARK}${graph.function(s.to).qualifiedName}` : `${graph.function(s.to).qualifiedName}: ${w.effect.what}`;
          break;
        }
        const o: Reach | null = sends === null ? outside(s) : null;
        if (o) sends = `${OUTSIDE_MARK}${graph.function(s.to).qualifiedName}: ${o.effect.what}`;
      }
      byLoop.set(key, what ?? sends);
    }
    return byLoop.get(key) ?? (inLoop ? '' : null);
  };
  const outsideByLoop = new Map<string, string | null>();
  const outsideOf = (ref: FnRef, file: string, loop: string): string | null => {
    const key = `${file}\0${loop}`;
    if (!outsideByLoop.has(key)) {
      let found: string | null = null;
      // The loop's own per-item calls that leave the process (`stripe.Customer.retrieve(...)`).
      const own = graph.ownEffects(ref);
      for (const e of own) {
        if (e.kind !== LOOP_CALL || parseLoopCall(e.what).loop !== loop) continue;
        const out = own.find((o) => o.kind === OUTSIDE_CALL && o.line === e.line && o.column === e.column);
        if (out) {
          found = out.what;
          break;
        }
      }
      for (const s of found === null ? perItem : []) {
        if (s.file.path !== file || s.facts.loop !== loop) continue;
        const o = outside(s);
        if (o) {
          found = `${graph.function(s.to).qualifiedName}: ${o.effect.what}`;
          break;
        }
      }
      outsideByLoop.set(key, found);
    }
    return outsideByLoop.get(key)!;
  };
  const unitByLoop = new Map<string, string | null>();
  const unit = (file: string, loop: string, own: boolean): string | null => {
    if (own) return '';
    const key = `${file}\0${loop}`;
    if (!unitByLoop.has(key)) {
      let found: string | null = null;
      for (const s of perItem) {
        if (s.file.path !== file || s.facts.loop !== loop) continue;
        if (s.facts.commits) {
          found = '';
          break;
        }
        // A helper per item that commits (or opens a session of its own), with a write in the
        // iteration for it to keep: the loop body's own, or the helper's.
        const effects = graph.effectsOfCall(s.ref, s.call, s.to, 'any');
        const r = strongReach(effects, TRANSACTION_COMMIT) ?? strongReach(effects, TRANSACTION_OPENS_SESSION);
        // A commit that keeps nothing (readOnlyCommit.ts), in an iteration that staged nothing, is no unit.
        const readOnly = r !== null && r.effect.kind === TRANSACTION_COMMIT && !iterationStages(s) && commitKeepsNothing(graph, r);
        if (r && !readOnly && (s.facts.writes || strongReach(effects, WRITE_EFFECT) || r.effect.kind === TRANSACTION_COMMIT)) {
          found = `${graph.function(s.to).qualifiedName}: ${r.effect.what}`;
          break;
        }
      }
      unitByLoop.set(key, found);
    }
    return unitByLoop.get(key)!;
  };
  const facts = { sites, workflow, outside: outsideOf, unit };
  loopFactsCache.set(graph, facts);
  return facts;
}

/**
 * A loop domain with its `call` decided: the rows of a same-repo function that reaches a query
 * (through typed calls) grow with the data; any other call's result is unknown.
 */
export function resolveDomain(graph: CallGraph, file: number, domain: LoopDomain, fn?: FnRef): Domain {
  if (domain.kind === 'param') return fn ? paramDomain(graph, fn, domain) : domain.held && !domain.dto ? 'rows' : 'unknown';
  if (domain.kind !== 'call') return domain.kind;
  const call = graph.callAt(file, domain.line!, domain.column!);
  if (!call) return 'unknown';
  const to = call.receiverType !== UNTYPED ? graph.resolveCall(file, call) : null;
  if (to) return queries(graph, to) ? 'rows' : 'unknown';
  // Severity only, not whether to report: a method known by its name alone counts when every
  // method of that name in the repo queries (`FollowerClass.follower_list(...)` on a class parameter).
  const named = call.method ? methodsNamed(graph).get(call.method) : undefined;
  return named?.length && named.every((r) => queries(graph, r)) ? 'rows' : 'unknown';
}

/**
 * A loop over the function's parameter (by position, or by name for a keyword-only one): rows
 * when a caller (outside tests) passes rows there, input when every caller passes request input,
 * else unknown (no caller seen, or one passes something else). One level up: a caller passing
 * its own parameter on is unknown. A loop over an attribute of the parameter (`held`) is over a
 * loaded object's collection, rows, unless every caller passes request input; over an attribute
 * of a parameter typed with a schema class (`dto`), it is what the callers send (input) unless
 * one passes rows.
 */
function paramDomain(graph: CallGraph, fn: FnRef, param: LoopDomain, depth = 0): Domain {
  let input = 0;
  let fixed = 0;
  let callers = 0;
  for (const edge of graph.callers(fn)) {
    if (graph.fileOf(edge.from).isTestFile) continue;
    callers++;
    const site = graph.ownEffects(edge.from).find((e) => e.kind === ARG_DOMAINS && e.line === edge.call.line && e.column === edge.call.column);
    const code = site ? passedDomain(site.what, param.position!, param.name) : undefined;
    if (!code) continue;
    // A call's result (`members_of(group)`): rows when it is a repo function that queries. The
    // caller's own parameter passed on (`tok.set_groups(groups)` in a wrapper handed `groups`):
    // what that caller's callers pass, up to three wrappers up.
    const passed = decodeDomain(code);
    const d = code.startsWith('c') ? resolveDomain(graph, edge.from.file, passed)
      : passed.kind === 'param' && !passed.held && depth < 3 && !(edge.from.file === fn.file && edge.from.fn === fn.fn) ? paramDomain(graph, edge.from, passed, depth + 1)
      : passed.kind;
    if (d === 'rows') return 'rows';
    if (d === 'input') input++;
    else if (d === 'fixed') fixed++;
  }
  // Every caller writes out the few items it passes (`notify([owner])`): N is the code's, not the
  // data's — unless the loop is nested with one whose N is not known. With one caller seen, the
  // function may have others the graph does not show (a scheduler's `args=`, `getattr`): low.
  if (callers > 0 && fixed === callers && !param.held && !param.nested) return callers >= 2 ? 'fixed' : 'fixedOne';
  if (callers > 0 && input > 0 && input + fixed === callers) return 'input';
  // A schema-typed parameter's list (`item_in.tags`): what the callers send, unless one passes rows.
  if (param.dto) return callers > 0 ? 'input' : 'unknown';
  return param.held ? 'rows' : 'unknown';
}

function queries(graph: CallGraph, ref: FnRef): boolean {
  const reach = graph.effectOf(ref, QUERY_EFFECT, 'any');
  return reach !== undefined && !reach.weak;
}

const methodsByName = new WeakMap<CallGraph, Map<string, FnRef[]>>();

/** The repo's methods (not in tests), by name. */
function methodsNamed(graph: CallGraph): Map<string, FnRef[]> {
  let map = methodsByName.get(graph);
  if (map) return map;
  map = new Map();
  for (const ref of graph.functions()) {
    const fn = graph.function(ref);
    if (!fn.className || fn.parent >= 0 || graph.fileOf(ref).isTestFile) continue;
    const list = map.get(fn.name);
    if (list) list.push(ref);
    else map.set(fn.name, [ref]);
  }
  methodsByName.set(graph, map);
  return map;
}

/**
 * Severity is a claim about how bad it gets: `high` (the rule's own) only when N grows with the
 * stored data; `low` when N is what one client sent in one request; `medium` when not known.
 */
export function domainSeverity(domain: Domain): Severity | undefined {
  return domain === 'rows' ? undefined : domain === 'input' || domain === 'fixed' || domain === 'fixedOne' || domain === 'bundled' || domain === 'fields' ? 'low' : 'medium';
}

export function domainNote(domain: Domain): string {
  return domain === 'input' ? '; the loop runs over what the request sent, so N is bounded by one request'
    : domain === 'fixed' ? '; every caller passes a handful of items it writes out, so N is fixed by the code'
    : domain === 'fixedOne' ? '; its one caller in the repo passes a handful of items it writes out'
    : domain === 'bundled' ? '; the loop runs over data shipped with the code (a file read from beside the module), so N is fixed by the code'
    : domain === 'fields' ? '; the loop runs over the fields of one object (a model\'s dump, a dataclass\'s `asdict`), so N is fixed by its class' : '';
}

/**
 * A loop whose every caller passes a few items it writes out (`notify([owner])`) runs as often
 * whatever the tables hold: a fixed cost, kept as advisory with that evidence.
 */
export function domainAdvisory(domain: Domain | null): { advisory?: string } {
  return domain === 'fixed' ? { advisory: 'every caller passes the loop a handful of items written out in the code (a literal, a local bound once to one, or a module-level name of the caller\'s file bound once to one and never grown): a fixed number of queries, not one per stored row' }
    : domain === 'bundled' ? { advisory: BUNDLED_EVIDENCE }
    : domain === 'fields' ? { advisory: 'the loop runs over the fields of one object (`model_dump()`, `dict()`, `asdict()`, `vars()`): as many queries as its class declares fields, not one per stored row' } : {};
}

/**
 * What a loop's N grows with, once the repo phase has decided: stored rows, one request's input,
 * the code's own few items (`fixed`: from two callers or more; `fixedOne`: the one caller seen),
 * or not known.
 */
export type Domain = 'rows' | 'input' | 'fixed' | 'fixedOne' | 'bundled' | 'fields' | 'unknown';

/** What a per-item workflow does besides the read, for a message: `writes (\`x\`)`, `calls outside the database (\`x\`)`. */
export function workflowDoes(alsoWrites: string): string {
  if (alsoWrites.startsWith(OUTSIDE_MARK)) return `calls outside the database (\`${alsoWrites.slice(OUTSIDE_MARK.length)}\`)`;
  if (alsoWrites.startsWith(SESSION_MARK)) return `opens a session of its own (\`${alsoWrites.slice(SESSION_MARK.length)}\`)`;
  return `writes${alsoWrites ? ` (\`${alsoWrites}\`)` : ''}`;
}

function outsideWorkflowNote(sends: string): string {
  return `; each iteration also calls outside the database (\`${sends}\`): a per-item workflow, where one set-based statement cannot replace the per-item calls`;
}

function workflowNote(alsoWrites: string): string {
  // A session per item: batching the reads means restructuring the units, not one IN query.
  if (alsoWrites.startsWith(SESSION_MARK)) return `; each iteration ${workflowDoes(alsoWrites)}: a unit per item, so batching the reads means restructuring those units`;
  const dominated = alsoWrites.startsWith(OUTSIDE_MARK) ? ' that call dominates' : '';
  return `; each iteration also ${workflowDoes(alsoWrites)}: a per-item workflow${dominated}, where batching the read alone saves little`;
}

export { smallLiteralProduct };

/**
 * What makes the loop at `loopKey` (`line:column`, 0-based column, of `path`) a per-item
 * workflow: a call in its iteration of a repo function that writes, flushes or commits (see
 * `loopFacts`), or null.
 */
export function loopWorkflow(graph: CallGraph, path: string, loopKey: string): string | null {
  return loopFacts(graph).workflow(path, loopKey, false);
}

function strongReach(effects: Map<string, Reach>, kind: string): Reach | null {
  const r = effects.get(kind);
  return r && !r.weak ? r : null;
}

/**
 * The `commit()` of the write's session that follows it on every pass of `loop` (the innermost loop
 * of both, under no branch or handler of the loop body), or null.
 */
export function commitAfter(model: FileModel, add: CallInfo, loop: LoopInfo): CallInfo | null {
  const body = loop.node.childForFieldName('body');
  const session = add.dottedReceiver;
  if (!body || !session) return null;
  return callsOf(model, add.functionIndex).find((c) => c.method === 'commit' && c.dottedReceiver === session && c.loops[c.loops.length - 1] === loop.index
    && c.node.startIndex > add.node.endIndex && !conditionalWithin(c.node, body)) ?? null;
}
