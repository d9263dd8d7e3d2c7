/**
 * PA401 resource_scope_mismatch
 *
 * What it does: finds a handler that receives a session by injection (`Depends(get_db)`,
 * `session: AsyncSession`), runs a statement through it and then waits on an external call (HTTP,
 * gRPC, SMTP, S3, LLM and vector-store clients) without using it again; or uses it only in the
 * first fifth of its body and then runs more than 50 lines of non-DB work that waits.
 * Why is this bad? The injected session lives until the request ends; after its first query it
 * holds a pooled connection (and an open transaction) through all the slow work that follows,
 * so a few slow upstream calls exhaust the pool for every other endpoint.
 *
 * Precision: a last use that ends the transaction (`commit()`, `close()`, `rollback()`) releases
 * the connection; streaming and WebSocket endpoints are PA402's.
 */
import type { CallInfo, FileModel, FunctionInfo } from '../../../semantic/model.js';
import { callAt, callsOf, resolveName } from '../../../semantic/model.js';
import { routerDependencies } from '../../../semantic/routerIncludes.js';
import { awaitedOffloadTarget, isNetworkClientType } from '../../../semantic/externalCalls.js';
import type { SyntaxNode } from '../../../parse/parser.js';
import { exclusiveArms, ifBranches } from '../../../semantic/controlFlow.js';
import { variableRefs } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import type { Effect, SummaryCall } from '../../../analysis/summary.js';
import type { ProjectContext } from '../../../discovery/context.js';
import { callGraphOf, ownSites, type CallGraph, type FnRef } from '../../../analysis/callgraph.js';
import { sessionEnd } from '../transaction/reach.js';
import { NETWORK_EFFECT } from '../transaction/effects.js';
import { callArgs } from '../query/semantics.js';
import {
  bodyStartLine, endpointDependencies, endsTransaction, injectedSessions, isExternalCall, isWebsocketHandler, routeDependencies,
  commitReleases, handOffCall, runsStatement, sessionRefs, streamingResponses, wrapperCalls, type InjectedSession,
} from './semantics.js';
import { dependencySessionFacts, queriesThrough } from './streaming_resource_holding.js';

const USE_FRACTION = 0.2;
const LONG_TAIL_LINES = 50;

/**
 * Does the function spend time after `line` on something other than the session: a sleep, work
 * handed to a thread, or awaits inside a loop? A single `await add_toast(...)` does not count.
 */
function waitsAfter(calls: CallInfo[], line: number, session: string): boolean {
  return calls.some((c) =>
    c.line > line && c.dottedReceiver !== session &&
    (/(^|\.)sleep$/.test(c.qualifiedName ?? '') || c.offloaded || /(^|\.)(to_thread|run_in_executor|run_in_threadpool|run_sync)$/.test(c.calleeText) ||
      (c.awaited && c.loops.length > 0)));
}

/** A session handed to a call before the wait: its position, and whether the handler reads what it returned before the wait. */
interface HandOff {
  line: number;
  column: number;
  /** The handler reads an attribute of what the call returned before the wait, and commits expire rows: a reload after a commit. */
  reads: boolean;
  /** The call runs on every path to the wait. */
  everyPath: boolean;
  /** Its name says it releases the session (`close_session(db)`): what counts when the call resolves to nothing of the repo. */
  releaseNamed: boolean;
}

interface HeldSession {
  session: InjectedSession;
  lastLine: number;
  external: CallInfo | undefined;
  tail: number;
  /** Hand-offs on the way to the wait, latest first (the repo phase judges them); empty when the file decided. */
  handOffs: HandOff[];
  /** What the use before the hand-offs did: a statement that holds, or a release (or nothing). */
  terminal: 'statement' | 'release';
  /** Its line (0 for none). */
  terminalLine: number;
  /** The session is used again after the wait, on this line: held idle through it, not released too late. */
  usedAgain?: number;
}

/**
 * Between a call and the wait (its arguments included), does the function read an attribute of a
 * row the session holds: a name bound to a value that involves the session (`user =
 * db.get(User, i)`, `t = crud.create(db, x)`) or handed to `db.add(...)`? After a commit that
 * expires rows, that read reloads the row and checks a connection out again.
 */
function rowReadBefore(model: FileModel, fn: FunctionInfo, session: string, call: SyntaxNode, wait: SyntaxNode): boolean {
  if (!fn.body) return false;
  const mentions = new RegExp(`(^|[^\\w.])${session.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`);
  const rows = new Set<string>();
  for (const a of model.assignments) {
    if (a.functionIndex === fn.index && a.value && a.node.startIndex < wait.startIndex && /^[A-Za-z_]\w*$/.test(a.target) && mentions.test(a.value.text)) rows.add(a.target);
  }
  for (const c of callsOf(model, fn.index)) {
    const arg = callArgs(c.node).positional[0];
    if (c.functionIndex === fn.index && c.method === 'add' && c.dottedReceiver === session && arg?.type === 'identifier') rows.add(arg.text);
  }
  for (const name of rows) {
    for (const r of variableRefs(fn.body, name)) {
      if (r.startIndex <= call.endIndex || r.startIndex >= wait.endIndex) continue;
      const p = r.parent;
      if (p?.type !== 'attribute' || p.childForFieldName('object')?.id !== r.id) continue;
      if (p.parent?.type === 'assignment' && p.parent.childForFieldName('left')?.id === p.id) continue;
      return true;
    }
  }
  return false;
}

/**
 * The handler's own injected sessions used only in the first fifth of its body and then held
 * through an external call, or through more than 50 lines that wait on something (the file rule's
 * findings; also what the dependency check leaves to them).
 */
function ownSessionsHeld(model: FileModel, project: ProjectContext, fn: FunctionInfo, forced?: Wait): HeldSession[] {
  const out: HeldSession[] = [];
  const sessions = injectedSessions(model, project, fn);
  if (sessions.length === 0 || streamingResponses(model, project, fn).length > 0) return out;
  const start = bodyStartLine(fn);
  const total = fn.endLine - start + 1;
  // A finding needs an external call in the body, or a tail of more than 50 lines: most
  // handlers have neither, and finding a session's references is the costly part.
  const inBody = model.calls.filter((c) => insideOf(model, c.functionIndex, fn.index));
  if (!forced && fn.endLine - start <= LONG_TAIL_LINES && !inBody.some((c) => isExternalCall(model, c))) return out;
  for (const s of sessions) {
    const refs = sessionRefs(fn, s.name);
    const last = refs[refs.length - 1];
    if (!last) continue;
    const lastLine = last.startPosition.row + 1;
    // The handler's first wait after the session's last use: an external call of its own, or a
    // call of a local function that makes one (`r = await call()` around a retried request); not
    // a nested callback handed elsewhere.
    let wait = forced ? (forced.line > lastLine ? forced : null) : firstWaitAfter(model, fn, lastLine);
    // Used again after a wait (`rows = db.execute(q); plan = await llm(...); db.execute(q2)`): the
    // connection sits idle in the transaction the first statement began, through the call.
    let before = refs;
    let usedAgain: number | undefined;
    if (!wait && refs.length > 1) {
      const w = forced ?? firstWaitAfter(model, fn, refs[0]!.startPosition.row + 1);
      const after = w && w.line > refs[0]!.startPosition.row + 1 ? refs.find((r) => r.startPosition.row + 1 > w.line) : undefined;
      const later = w ? refs.filter((r) => r.startPosition.row + 1 > w.line) : [];
      // Only a session the handler uses itself after the wait (`db.execute(...)`), never ending a
      // transaction there (a commit after it makes the span PA205's); an object built on it or a
      // function handed it may commit (`repo.done()`, a unit of work's exit), which the file cannot see.
      // The same before the wait: the handler's own statements, and no release anywhere (a commit
      // per item of a loop gives the connection back too).
      const direct = (r: SyntaxNode) => r.text === s.name && r.parent?.type === 'attribute' && r.parent.childForFieldName('object')?.id === r.id && !handOffCall(r);
      const earlier = w ? refs.filter((r) => r.startPosition.row + 1 < w.line) : [];
      if (w && after && later.every((r) => direct(r) && !endsTransaction(r)) && earlier.every((r) => direct(r) && !endsTransaction(r))) {
        wait = w;
        before = refs.filter((r) => r.startPosition.row + 1 < w.line);
        usedAgain = after.startPosition.row + 1;
      }
    }
    if (forced && !wait) continue;
    // What the session did last that matters on the way to the wait: a statement (a connection
    // checked out), or a release after it. Staging (`add()`), a statement inside `begin()`, and a
    // statement or release in a branch that leaves before the wait do not count.
    // Before a wait, a session handed to a function of the repo (`await crud.create_chat(db, data)`)
    // may have run a statement, or not, and may have ended the transaction before returning: the
    // repo phase decides those, latest first, down to the last use the file can judge.
    const onPath = (r: SyntaxNode) => !inLeavingBranch(r, fn, wait?.node ?? null);
    const handOffs: HandOff[] = [];
    let decisive: SyntaxNode | undefined;
    for (const r of [...before].reverse()) {
      if (!onPath(r)) continue;
      const everyPath = onEveryPath(r, fn, wait?.node ?? null);
      const releases = endsTransaction(r) && everyPath;
      if (!releases && !runsStatement(r, fn, wait?.line ?? fn.endLine)) continue;
      const judged = wait && !closedByWith(r, s.name, wait.node);
      const handOff = judged ? handOffCall(r) : null;
      // Handed to a function (`close_ticket(db, i)` too, whatever its name says), or to an object
      // whose methods the handler then calls (latest first).
      const all = handOff ? [handOff] : judged && !releases ? [...(wrapperCalls(r, fn, wait!.line) ?? [])].reverse() : [];
      // The object's method calls on the wait's path (not in a branch that leaves, nor another arm).
      const calls = handOff ? all : all.filter((c) => !inLeavingBranch(c, fn, wait!.node));
      if (wait && all.length && !calls.length) continue;
      const infos = calls.map((c) => ({ node: c, info: callAt(model, c) }));
      if (wait && infos.length && infos.every((x) => x.info)) {
        for (const { node, info } of infos) {
          handOffs.push({
            line: info!.line, column: info!.column, reads: !commitReleases(project) && rowReadBefore(model, fn, s.name, node, wait.node),
            everyPath: handOff ? everyPath : onEveryPath(node, fn, wait.node), releaseNamed: releases,
          });
        }
        continue;
      }
      decisive = r;
      break;
    }
    const released = !decisive || endsTransaction(decisive) || closedByWith(decisive, s.name, wait?.node ?? null);
    if (handOffs.length && wait) {
      out.push({ session: s, lastLine: handOffs[0]!.line, external: wait.external, tail: fn.endLine - lastLine, handOffs, terminal: released ? 'release' : 'statement', terminalLine: decisive ? decisive.startPosition.row + 1 : 0, ...(usedAgain ? { usedAgain } : {}) });
      continue;
    }
    if (!decisive || released) continue;
    const tail = fn.endLine - lastLine;
    // Without a wait, a long tail counts only after a use in the first fifth of the body, and only
    // when it waits on something (fifty lines of template rendering take a millisecond).
    if (!wait && ((lastLine - start + 1) / total >= USE_FRACTION || tail <= LONG_TAIL_LINES || !waitsAfter(inBody, lastLine, s.name))) continue;
    // With a wait, the use that holds it on the way there (a later one may sit in another arm).
    out.push({ session: s, lastLine: wait ? decisive.startPosition.row + 1 : lastLine, external: wait?.external, tail, handOffs: [], terminal: 'statement', terminalLine: decisive.startPosition.row + 1, ...(usedAgain ? { usedAgain } : {}) });
  }
  return out;
}

/**
 * Does the node run on every path to the wait: not inside a branch, handler or loop of the
 * function (an `except` that swallows the error and goes on, an `if`), unless that block holds
 * the wait too? A release there leaves the other paths holding the connection.
 */
function onEveryPath(node: SyntaxNode, fn: FunctionInfo, wait: SyntaxNode | null): boolean {
  const release = new RegExp(`(^|[^\\w.])${node.text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*\\.\\s*(commit|rollback|close|aclose)\\s*\\(`);
  for (let p = node.parent; p && p.id !== fn.body?.id; p = p.parent) {
    if (p.type !== 'block' || !/^(if_statement|elif_clause|else_clause|except_clause|except_group_clause|for_statement|while_statement|match_statement|case_clause)$/.test(p.parent?.type ?? '')) continue;
    if (wait && wait.startIndex >= p.startIndex && wait.endIndex <= p.endIndex) continue;
    // `if ...: db.commit() else: db.rollback()`: every branch of the `if` releases it.
    const ifNode = p.parent?.type === 'if_statement' ? p.parent : p.parent?.parent?.type === 'if_statement' ? p.parent.parent : null;
    if (ifNode && everyBranchReleases(ifNode, release)) {
      p = ifNode;
      continue;
    }
    return false;
  }
  return true;
}

/** Does an `if` statement have an `else`, and does each of its branches release the session? */
function everyBranchReleases(ifNode: SyntaxNode, release: RegExp): boolean {
  const { branches, hasElse } = ifBranches(ifNode);
  return hasElse && branches.every((b) => !!b && release.test(b.text));
}

/** Is the node inside `with <session>:` / `async with <session>:` (which closes it on exit) that ends before the wait? */
function closedByWith(node: SyntaxNode, session: string, wait: SyntaxNode | null): boolean {
  for (let p = node.parent; p; p = p.parent) {
    if (p.type === 'function_definition') return false;
    if (p.type !== 'with_statement') continue;
    const items = p.namedChildren.find((c) => c.type === 'with_clause')?.namedChildren ?? [];
    const closes = items.some((i) => {
      const v = i.childForFieldName('value') ?? i.namedChild(0);
      const expr = v?.type === 'as_pattern' ? v.namedChild(0) : v;
      return expr?.text === session;
    });
    if (closes && (!wait || wait.startIndex >= p.endIndex)) return true;
  }
  return false;
}

/**
 * The handler's first wait on another system after a line: its own external call, or its call of
 * a function defined inside it that makes one (the wait happens there and then).
 */
interface Wait { line: number; node: SyntaxNode; external: CallInfo }

function firstWaitAfter(model: FileModel, fn: FunctionInfo, line: number): Wait | null {
  let best: Wait | null = null;
  for (const c of callsOf(model, fn.index)) {
    if (c.functionIndex !== fn.index || c.line <= line || (best && c.line >= best.line)) continue;
    if (isExternalCall(model, c)) { best = { line: c.line, node: c.node, external: c }; continue; }
    // A local function called here and now (`r = await call()`), not handed to something that
    // runs it later (`asyncio.create_task(ping())`, `tasks.add_task(...)`).
    if (c.hasReceiver || c.node.parent?.type === 'argument_list' || c.node.parent?.parent?.type === 'argument_list') continue;
    const local = model.functions.find((f) => f.parent === fn.index && f.name === c.calleeText);
    const inner = local ? model.calls.find((x) => x.functionIndex === local.index && isExternalCall(model, x)) : undefined;
    if (inner) best = { line: c.line, node: c.node, external: inner };
  }
  return best;
}

/**
 * Is the node inside a branch of the handler that leaves it (an `if`/`elif`/`else`/`except`
 * block ending in `return` or `raise`) and does not hold the wait, or in another arm of an `if`
 * or `match` than the wait: on the path that goes on to the wait it never ran.
 */
function inLeavingBranch(node: SyntaxNode, fn: FunctionInfo, wait: SyntaxNode | null): boolean {
  // `if cached: rows = db.query(...) else: rows = await client.get(...)`: another arm than the wait's.
  if (wait && exclusiveArms(node, wait, fn.body)) return true;
  for (let p = node.parent; p && p.id !== fn.body?.id; p = p.parent) {
    if (p.type !== 'block' || !/^(if_statement|elif_clause|else_clause|except_clause|except_group_clause)$/.test(p.parent?.type ?? '')) continue;
    if (wait && wait.startIndex >= p.startIndex && wait.endIndex <= p.endIndex) continue;
    const last = p.namedChildren.filter((c) => c.type !== 'comment').pop();
    if (last && (last.type === 'return_statement' || last.type === 'raise_statement')) return true;
  }
  return false;
}

/** Is function `inner` (a call's function index) `outer` or nested in it? */
function insideOf(model: FileModel, inner: number, outer: number): boolean {
  for (let i = inner; i >= 0; i = model.functions[i]!.parent) if (i === outer) return true;
  return false;
}

export const resourceScopeMismatch: FileRule & RepoRule = {
  meta: {
    code: 'PA401',
    check: 'resource_scope_mismatch',
    family: 'lifecycle',
    severity: 'high',
    effort: 'M',
    summary: 'Injected session held through a handler\'s external call or long non-DB work, by the handler or by a dependency',
    what: 'Finds handlers that receive a session by injection (`Depends(get_db)` and the like, `session: AsyncSession`, `db: Session`), run a statement through it (outside a `begin()` block: staging with `add()` checks nothing out) and do not use it again before an external call — or use it again after the call but end no transaction there, so the first statement\'s transaction holds the connection idle through the call (`medium`: commit or roll back before the call; with a commit after the call the span is PA205\'s) — (`httpx`, `aiohttp`, `requests`, gRPC, SMTP, S3 clients, language-model and vector-store SDKs; made by the handler, or, when the handler makes none of its own, inside a function or method of the repo it calls, `await send_webhook(...)`, or a sync one the handler awaits in a thread, `await asyncio.to_thread(fetch_rates, code)`, or a method of a client another module of the repo makes at import, `from app.clients import llm` then `await llm.chat.completions.create(...)`: the first of its next few calls that reaches one, not one started as a task) — high, wherever in the body that last use is — or, after a use in the first 20 % of the body, run more than 50 lines of non-DB work that takes time (sleeps, work handed to a thread, awaits in a loop) — medium. A last use that commits, rolls back or closes the session is fine: it releases the connection. A session handed to a function of the repo before the call (`await crud.create_chat(db, data)`, or to an object whose methods the handler calls, `store = Store(db)` … `await store.save()`) is judged by what that function does, latest call first: one that reaches no database (it only stages with `add()`) is passed over; one that commits after its last statement, unconditionally, releases the connection (not when it reloads after the commit, `refresh()`, nor when the handler reads an attribute of what it returned before the call while commits expire rows: that read reloads it); one that queries last holds it. A use in another arm of an `if`/`match` than the call is not on its path. Also a session a dependency of the handler takes by injection (`user: User = Depends(current_user)` or `Security(...)`, an `Annotated` alias of either, with `current_user(db = Depends(get_db))`, in any module, or a dependency of that dependency; also one the route gets from where its router is mounted: `app.include_router(router, dependencies=[Depends(current_tenant)])`, or an application or router made with `dependencies=[...]` that includes it, through routers of routers; a callable instance `Depends(RequireRole("x"))` runs its `__call__`, and a factory `Depends(require_role("x"))` the function it returns) and runs a statement through (outside a `session.begin()` block, whose end gives the connection back; staging with `add()` checks nothing out) without releasing it, when the handler then waits on an external call — an HTTP client, a language model\'s or a vector store\'s SDK (medium, reported once at the dependency\'s session parameter): the provider closes that session only after the endpoint, so its connection sits idle in the transaction the dependency\'s query began, whether or not the handler writes with it afterwards. Silent when the handler releases its own session of the same provider before the call (FastAPI hands the same session to every dependency of a request, per provider), when the handler itself used that session before the call (then the finding above is the handler\'s), or when the dependency hands the handler something that carries the session and the handler uses it after the call.',
    why: 'After its first query the session keeps its pooled connection, usually inside an open transaction, until the dependency closes it at the end of the request. Everything slow that follows — an upstream HTTP call with a 30 s timeout — holds that connection too; under load the pool runs dry while it sits idle.',
    bad: 'import httpx\nfrom fastapi import Depends, FastAPI, HTTPException\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\napp = FastAPI()\n\n\n@app.post("/jobs/{job_id}/publish")\nasync def publish(job_id: int, session: AsyncSession = Depends()):\n    job = await session.get(Job, job_id)\n    if job is None:\n        raise HTTPException(404)\n    payload = {"id": job.id, "status": job.status}\n    async with httpx.AsyncClient(timeout=30) as client:\n        first = await client.post("https://a.example/hook", json=payload)\n        second = await client.post("https://b.example/hook", json=payload)\n        third = await client.post("https://c.example/hook", json=payload)\n    return {"delivered": [first.is_success, second.is_success, third.is_success]}\n',
    good: 'import httpx\nfrom fastapi import Depends, FastAPI, HTTPException\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\napp = FastAPI()\n\n\n@app.post("/jobs/{job_id}/publish")\nasync def publish(job_id: int, session: AsyncSession = Depends()):\n    job = await session.get(Job, job_id)\n    if job is None:\n        raise HTTPException(404)\n    payload = {"id": job.id, "status": job.status}\n    await session.close()\n    async with httpx.AsyncClient(timeout=30) as client:\n        first = await client.post("https://a.example/hook", json=payload)\n        second = await client.post("https://b.example/hook", json=payload)\n        third = await client.post("https://c.example/hook", json=payload)\n    return {"delivered": [first.is_success, second.is_success, third.is_success]}\n',
    fix: 'open a scoped session only around the DB work (`async with factory() as s:`), or end the transaction and close the session before the slow part',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#when-do-i-construct-a-session-when-do-i-commit-it-and-when-do-i-close-it',
      'https://fastapi.tiangolo.com/tutorial/dependencies/dependencies-with-yield/',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile) return;
    for (const fn of model.functions) {
      if (fn.role !== 'handler' || !fn.body || isWebsocketHandler(fn)) continue;
      for (const h of ownSessionsHeld(model, project, fn)) {
        // Handed to functions on the way to the wait: the repo phase reads what they do.
        if (h.handOffs.length) continue;
        ctx.report({
          node: h.session.node,
          message: h.external && h.usedAgain
            ? `injected session \`${h.session.name}\` runs a statement on line ${h.lastLine} of \`${fn.name}\`, then holds its connection idle in that transaction through an external call (\`${h.external.calleeText}\`, line ${h.external.line}) before it is used again on line ${h.usedAgain}: commit or roll back before the call (the next statement begins a new transaction), or make the call first`
            : h.external
            ? `injected session \`${h.session.name}\` is used on line ${h.lastLine} of \`${fn.name}\`, then held through external calls (\`${h.external.calleeText}\`, line ${h.external.line})`
            : `injected session \`${h.session.name}\` is last used on line ${h.lastLine} of \`${fn.name}\`, then held through ${h.tail} lines of non-DB work`,
          // Used again after the call: the connection is needed, held idle meanwhile (as a dependency's is, medium).
          severity: h.external ? (h.usedAgain ? 'medium' : 'high') : 'medium',
          function: fn.name,
          // Rows written and not committed at the call: PA202 reports the wait there, one defect.
          ...(h.external ? { sameDefectAs: { code: 'PA202', line: h.external.line } } : {}),
        });
      }
    }
  },
  /**
   * A dependency's session held through the handler's external call: the handler's file leaves a
   * site per dependency (see {@link collectWaitDependencies}); the dependency's file what it does
   * with the session (PA402's `SESSION_DEPENDENCY` facts, and `DEPENDS_ON` for its own dependencies).
   */
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    for (const { ref, file, site } of ownSites(graph, HANDED_WAIT)) {
      const s = JSON.parse(site.what) as HandedWaitSite;
      const line = holdingLine(graph, ref, s);
      if (line === null) continue;
      reportHeldThrough(ctx, graph, ref, file.path, site, s, line, `\`${s.wait}\``);
    }
    // A wait in a function of the repo the handler calls: the first candidate that reaches a network call, per session.
    const helperDone = new Set<string>();
    for (const { ref, file, site } of ownSites(graph, HELPER_WAIT)) {
      const key = `${file.path}:${site.line}:${site.column}`;
      if (helperDone.has(key)) continue;
      const s = JSON.parse(site.what) as HelperWaitSite;
      const edge = graph.callees(ref).find((e) => e.call.line === s.call[0] && e.call.column === s.call[1] && !e.weak);
      const reach = edge ? graph.effectOfCall(ref, edge.call, edge.to, NETWORK_EFFECT, 'any') : undefined;
      if (!edge || !reach || edge.call.background || !waitedThrough(graph, edge, reach, s.thread)) {
        // A method of a client another module of the repo makes at import (`from app.clients
        // import llm` then `await llm.chat.completions.create(...)`): a round trip, waited for.
        const client = !edge && !s.thread ? importedClient(graph, ref, s.call) : null;
        if (!client) continue;
        helperDone.add(key);
        const line = holdingLine(graph, ref, s);
        if (line !== null) reportHeldThrough(ctx, graph, ref, file.path, site, s, line, `\`${s.wait}()\` (\`${client}\`)`);
        continue;
      }
      helperDone.add(key);
      const line = holdingLine(graph, ref, s);
      if (line === null) continue;
      reportHeldThrough(ctx, graph, ref, file.path, site, s, line, `\`${[s.wait, ...graph.chainNames(reach).slice(1)].join('` → `')}()\``, graph.chainSteps(reach, { ref, call: edge.call }));
    }
    const held = new Map<string, { at: { path: string; line: number; column: number; endLine: number; endColumn: number }; dep: FnRef; session: string; why: string; endpoints: { ref: FnRef; path: string; site: WaitDependencySite }[] }>();
    let mounted: Map<string, Set<string>> | null = null;
    for (const { ref, file, site } of ownSites(graph, WAIT_DEPENDENCY)) {
      const s = JSON.parse(site.what) as WaitDependencySite;
      let targets = [s.target];
      if (s.target.startsWith(MOUNTED)) {
        mounted ??= routerDependencies(ctx.index.files.flatMap((f) => f.routerIncludes ?? []));
        targets = [...(mounted.get(s.target.slice(MOUNTED.length)) ?? [])];
      }
      for (const target of targets)
      for (const { dep, depth, depFile, effect: e, fact: d } of dependencySessionFacts(graph, target)) {
        // A statement outside a `begin()` block (its own, or a helper's it hands the session to
        // then), and no release after it: the connection stays checked out.
        if (d.lastUse !== 'holds' || !queriesThrough(graph, dep, d)) continue;
        // What the dependency hands over keeps the session, and the handler uses it after the wait: needed there.
        if (depth === 0 && d.carrier && s.usedAfter) continue;
        // The handler's own session from the same provider (FastAPI hands the same one to every
        // dependency of the request): released before the wait, nothing is held; reported by the
        // handler's own finding (the file rule), that finding speaks for the hold.
        const same = (providers: string[]) => providers.some((p) => p === '?' || !d.provider || p === d.provider);
        if (!d.uncached && (same(s.released) || same(s.usedBefore))) continue;
        const key = `${depFile.path}:${e.line}:${e.column}`;
        let entry = held.get(key);
        if (!entry) {
          const depFn = graph.function(dep);
          // `RequireScope.__call__`, not a bare `__call__`.
          const name = /^__\w+__$/.test(depFn.name) ? depFn.qualifiedName : depFn.name;
          entry = {
            at: { path: depFile.path, line: e.line, column: e.column, endLine: d.endLine, endColumn: d.endColumn },
            dep, session: d.name,
            why: depth > 0 ? `\`${name}\` (a dependency of another dependency) queries through it and does not release it` : `\`${name}\` queries through it and does not release it`,
            endpoints: [],
          };
          held.set(key, entry);
        }
        if (!entry.endpoints.some((x) => x.ref.file === ref.file && x.ref.fn === ref.fn)) entry.endpoints.push({ ref, path: file.path, site: s });
      }
    }
    for (const h of held.values()) {
      const [one, ...others] = h.endpoints.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.site.waitLine - b.site.waitLine));
      if (!one) continue;
      const more = others.length ? ` (and ${others.length} other endpoint${others.length > 1 ? 's that wait' : ' that waits'} the same way)` : '';
      ctx.report({
        path: h.at.path,
        location: { line: h.at.line, column: h.at.column, endLine: h.at.endLine, endColumn: h.at.endColumn },
        message: `session \`${h.session}\` of dependency \`${graph.function(h.dep).qualifiedName}\` stays checked out, idle in the transaction its query began, while \`${graph.function(one.ref).qualifiedName}\` (${one.path}) waits on \`${one.site.wait}\` (line ${one.site.waitLine})${more}: ${h.why}, and the provider closes it only after the endpoint ends`,
        severity: 'medium',
        function: graph.function(h.dep).name,
      });
    }
  },
};

/**
 * The type of a network client another module of the repo makes at import, when the call at
 * `at` is a method of it reached through an imported name (`svc.integrations.llm.chat.completions.create`
 * with `llm = AsyncOpenAI()` there, an exported type: `openai.AsyncOpenAI()`); else null.
 */
function importedClient(graph: CallGraph, ref: FnRef, at: [number, number]): string | null {
  const call = graph.callAt(ref.file, at[0], at[1]);
  const q = call?.qualifiedName;
  if (!call || !q || !call.awaited) return null;
  for (const f of graph.index.files) {
    if (f.isTestFile || !q.startsWith(`${f.moduleName}.`)) continue;
    const name = q.slice(f.moduleName.length + 1).split('.')[0]!;
    const t = f.exportedTypes.find(([n]) => n === name)?.[1];
    if (t && isNetworkClientType(t)) return t.replace(/\(\)$/, '');
  }
  return null;
}

/**
 * PA401's repo-phase finding at the handler's session parameter: used on `line`, then held through
 * the wait. Rows written and not committed at the wait are PA202's finding there: one defect.
 */
function reportHeldThrough(
  ctx: RepoRuleContext, graph: CallGraph, ref: FnRef, path: string, site: { line: number; column: number }, s: HandedWaitSite, line: number, wait: string,
  chain?: ReturnType<CallGraph['chainSteps']>,
): void {
  const fn = graph.function(ref);
  ctx.report({
    path,
    location: { line: site.line, column: site.column, endLine: s.endLine, endColumn: s.endColumn },
    message: s.usedAgain
      ? `injected session \`${s.session}\` runs a statement on line ${line} of \`${fn.name}\`, then holds its connection idle in that transaction through external calls (${wait}, line ${s.waitLine}) before it is used again on line ${s.usedAgain}: commit or roll back before the call (the next statement begins a new transaction), or make the call first`
      : `injected session \`${s.session}\` is used on line ${line} of \`${fn.name}\`, then held through external calls (${wait}, line ${s.waitLine})`,
    // Used again after the call: the connection is needed, held idle meanwhile (as a dependency's is, medium).
    severity: s.usedAgain ? 'medium' : 'high',
    function: fn.name,
    ...(chain ? { chain } : {}),
    sameDefectAs: { code: 'PA202', line: s.waitLine },
  });
}

/**
 * On a handler that waits on an external call after handing its injected session to functions of
 * the repo (see {@link collectWaitDependencies}), at the session's parameter: `what` = JSON
 * {@link HandedWaitSite}.
 */
export const HANDED_WAIT = 'handed_wait';

interface HandedWaitSite {
  session: string;
  /** The session is used again after the wait, on this line (see {@link HeldSession.usedAgain}). */
  usedAgain?: number;
  /** Latest first. */
  handOffs: HandOff[];
  terminal: 'statement' | 'release';
  terminalLine: number;
  wait: string;
  waitLine: number;
  endLine: number;
  endColumn: number;
}

/**
 * The line of the use that leaves the session's transaction open at the wait, reading the
 * hand-offs of a site latest first, or null when none does (each call in turn: one that reaches
 * no database is passed over; one that commits last releases the connection when it runs on
 * every path and nothing it returned is read before the wait).
 */
function holdingLine(graph: CallGraph, ref: FnRef, site: HandedWaitSite): number | null {
  for (const h of site.handOffs) {
    const edge = graph.callees(ref).find((e) => e.call.line === h.line && e.call.column === h.column && !e.weak);
    // A function of no known body: as the file would judge it, by its name (`close_session(db)`) or else as a statement.
    if (!edge) return h.releaseNamed ? null : h.line;
    const end = sessionEnd(graph, edge.to, 0, edge.call);
    if (end === 'none') continue;
    // After a close nothing reloads through the session (a read of an expired row raises instead).
    if (end === 'holds' || (h.reads && end === 'releases')) return h.line;
    if (h.everyPath) return null;
  }
  return site.terminal === 'statement' ? site.terminalLine : null;
}

/**
 * On a handler that makes no external call of its own, at an injected session's parameter: a
 * call of the handler that may reach one through the repo's functions (`await send_webhook(...)`
 * with `send_webhook` posting with httpx), and how the session stands if it does: `what` = JSON
 * {@link HelperWaitSite}. The repo phase keeps the first such call, in order, that reaches a
 * network call, and judges the session as for {@link HANDED_WAIT}.
 */
export const HELPER_WAIT = 'helper_wait';

interface HelperWaitSite extends HandedWaitSite {
  /** The candidate call's position in the handler (for `await asyncio.to_thread(f, ...)`, the position of `f`). */
  call: [number, number];
  /** The handler awaits a thread that runs the function (`await asyncio.to_thread(f, ...)`): it waits for it all the same. */
  thread?: true;
}


/** At most this many candidate calls per handler: the first calls after the session's first use. */
const HELPER_WAIT_CANDIDATES = 4;
/** Builtins and in-memory helpers: no wait on another system. */
const LOCAL_CALLEE = /^(print|len|str|int|float|bool|dict|list|set|tuple|sorted|min|max|sum|any|all|isinstance|getattr|setattr|hasattr|range|enumerate|zip|map|filter|repr|format|round|abs|iter|next|type|super|open|HTTPException|JSONResponse|Response)$/;

function helperWaits(model: FileModel, project: ProjectContext, fn: FunctionInfo, out: Effect[]): void {
  const sessions = injectedSessions(model, project, fn);
  if (!sessions.length) return;
  const firstUse = Math.min(...sessions.map((s) => sessionRefs(fn, s.name)[0]?.startPosition.row ?? Infinity)) + 1;
  if (!Number.isFinite(firstUse)) return;
  const names = new Set(sessions.map((s) => s.name));
  const candidates = callsOf(model, fn.index).filter((c) => c.functionIndex === fn.index && c.line > firstUse && !c.offloaded
    // Not a statement on the session itself, nor a builtin.
    && !(c.hasReceiver ? names.has((c.dottedReceiver ?? '').split('.')[0]!) : LOCAL_CALLEE.test(c.calleeText))
    && !(c.node.childForFieldName('arguments')?.namedChildren.some((a) => names.has((a.type === 'keyword_argument' ? a.childForFieldName('value') : a)?.text ?? '')))
    && !(c.node.parent?.type === 'argument_list' && /(^|\.)(create_task|ensure_future|add_task|start_soon)$/.test(c.node.parent.parent?.childForFieldName('function')?.text ?? '')))
    .slice(0, HELPER_WAIT_CANDIDATES);
  for (const c of candidates) {
    for (const h of ownSessionsHeld(model, project, fn, { line: c.line, node: c.node, external: c })) {
      if (!h.external) continue;
      const n = h.session.node;
      // `await asyncio.to_thread(fetch, x)`: the edge to `fetch` sits where the name is passed.
      const thread = awaitedOffloadTarget(c);
      const site: HelperWaitSite = {
        session: h.session.name, ...(h.usedAgain ? { usedAgain: h.usedAgain } : {}), handOffs: h.handOffs, terminal: h.terminal, terminalLine: h.terminalLine, wait: thread?.text ?? c.calleeText, waitLine: c.line,
        endLine: n.endPosition.row + 1, endColumn: n.endPosition.column + 1,
        call: thread ? [thread.startPosition.row + 1, thread.startPosition.column + 1] : [c.line, c.column],
        ...(thread ? { thread: true as const } : {}),
      };
      out.push({ kind: HELPER_WAIT, what: JSON.stringify(site), line: n.startPosition.row + 1, column: n.startPosition.column + 1 });
    }
  }
}

/**
 * Does every call on the way to the network call run while its caller waits: not a coroutine
 * started as a task of its own (`create_task(f())`), nor work handed to a background task or a
 * thread? (A coroutine awaited through `gather`/`wait_for` is waited for.)
 */
function waitedThrough(graph: CallGraph, first: { to: FnRef; call: SummaryCall }, reach: { steps: { fn: FnRef; call: SummaryCall | null }[] }, thread = false): boolean {
  const calls: { to: FnRef; call: SummaryCall }[] = [first];
  for (let i = 0; i + 1 < reach.steps.length; i++) {
    const call = reach.steps[i]!.call;
    if (call) calls.push({ to: reach.steps[i + 1]!.fn, call });
  }
  // The first hop may be a thread the handler awaits (`await asyncio.to_thread(f)`): waited for.
  return calls.every(({ call }, i) => !call.background && !(call.offloaded && !(thread && i === 0)) && !call.spawned);
}

/** A site's target that stands for the dependencies of the router the handler is registered on, wherever it is mounted. */
const MOUNTED = '@mounted:';

/** The routers (by qualified name) a handler's route decorators register it on: `router` of `@router.get(...)`. */
function mountedRouters(model: FileModel, fn: FunctionInfo): string[] {
  const out: string[] = [];
  for (const d of fn.decorators) {
    const head = /^([A-Za-z_][\w.]*)\.(?:get|post|put|patch|delete|head|options|api_route|route)\(/.exec(d)?.[1];
    const q = head ? resolveName(model, head) : null;
    if (q && q.includes('.') && !out.includes(q)) out.push(q);
  }
  return out;
}

/** On a handler that waits on an external call, at a parameter filled by a dependency (see {@link collectWaitDependencies}). */
export const WAIT_DEPENDENCY = 'wait_dependency';

interface WaitDependencySite {
  param: string;
  /** The dependency's qualified name. */
  target: string;
  /** The handler's first external call, and its line. */
  wait: string;
  waitLine: number;
  /** The handler uses the parameter after the wait. */
  usedAfter: boolean;
  /** Providers of the handler's own injected sessions released before the wait (`?` when unknown). */
  released: string[];
  /** Providers of the handler's own injected sessions the handler's own finding reports (`?` when unknown). */
  usedBefore: string[];
}

/**
 * The handler side of PA401 through dependencies: on a (non-streaming, non-WebSocket) handler whose
 * body waits on an external call, one site per dependency it runs, unless the handler itself
 * releases its injected session before the wait (FastAPI hands the same session to every
 * dependency of the request) or uses one after it (then the session is needed there, and the
 * handler's own use is the file rule's).
 */
export function collectWaitDependencies(model: FileModel, project?: ProjectContext): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (!project || model.isTestFile) return out;
  for (const fn of model.functions) {
    if (fn.role !== 'handler' || !fn.body || isWebsocketHandler(fn)) continue;
    // A dependency needs a default (`Depends(...)`), an annotation (an `Annotated` alias), the
    // route's `dependencies=` or a router that may be mounted with some.
    if (!fn.params.some((p) => p.defaultText || p.annotation) && !fn.decorators.some((d) => d.includes('dependencies')) && !mountedRouters(model, fn).length) continue;
    // The handler's own call: one in a nested function (a callback, a task) may run later, or never.
    const found = firstWaitAfter(model, fn, 0);
    if (!found) {
      helperWaits(model, project, fn, out[fn.index]!);
      continue;
    }
    const held = ownSessionsHeld(model, project, fn);
    // The handler's own sessions handed to functions on the way to its wait: judged in the repo phase.
    for (const h of held) {
      if (!h.handOffs.length || !h.external) continue;
      const n = h.session.node;
      const site: HandedWaitSite = {
        session: h.session.name, ...(h.usedAgain ? { usedAgain: h.usedAgain } : {}), handOffs: h.handOffs, terminal: h.terminal, terminalLine: h.terminalLine, wait: h.external.calleeText, waitLine: h.external.line,
        endLine: n.endPosition.row + 1, endColumn: n.endPosition.column + 1,
      };
      out[fn.index]!.push({ kind: HANDED_WAIT, what: JSON.stringify(site), line: n.startPosition.row + 1, column: n.startPosition.column + 1 });
    }
    const wait = { line: found.line, node: found.node, calleeText: found.external.calleeText };
    const deps = [
      ...endpointDependencies(model, project, fn),
      ...routeDependencies(model, project, fn).map((target) => ({ param: 'dependencies=[...]', paramNode: null, target })),
      // The dependencies of the router where another file mounts this one's (`include_router(router,
      // dependencies=[...])`, an application made with `dependencies=`): the repo phase looks them up.
      ...mountedRouters(model, fn).map((router) => ({ param: 'dependencies=[...]', paramNode: null, target: `${MOUNTED}${router}` })),
    ];
    if (!deps.length || streamingResponses(model, project, fn).length > 0) continue;
    // The handler's own sessions, shared with its dependencies when FastAPI caches the provider
    // (its default): released by their last use before the wait, or held by the handler's own
    // finding (the file rule's).
    const released: string[] = [];
    // Released by a commit only: with `expire_on_commit`, reading a row the dependency loaded
    // after that commit and before the wait loads it again, and the connection is out again.
    const committed: { provider: string; line: number }[] = [];
    const usedBefore: string[] = [];
    const covered = new Set(held.map((h) => h.session.name));
    for (const s of injectedSessions(model, project, fn)) {
      if (s.uncached) continue;
      // Its last statement or release on the way to the wait: a commit, rollback or close gives
      // the connection back.
      const before = sessionRefs(fn, s.name).filter((r) => r.startPosition.row + 1 < wait.line && !inLeavingBranch(r, fn, wait.node));
      const decisive = [...before].reverse().find((r) => (endsTransaction(r) && onEveryPath(r, fn, wait.node)) || runsStatement(r, fn, wait.line));
      if (decisive && endsTransaction(decisive)) {
        if (/commit/.test(decisive.parent?.text ?? '') && !commitReleases(project)) committed.push({ provider: s.provider ?? '?', line: decisive.startPosition.row + 1 });
        else released.push(s.provider ?? '?');
      } else if (covered.has(s.name)) usedBefore.push(s.provider ?? '?');
    }
    for (const d of deps) {
      const refs = d.paramNode !== null ? variableRefs(fn.body, d.param) : [];
      const usedAfter = refs.some((r) => r.startPosition.row + 1 > wait.line);
      const mine = [...released, ...committed.filter((c) => !refs.some((r) => r.startPosition.row + 1 > c.line && r.startPosition.row + 1 <= wait.line)).map((c) => c.provider)];
      const site: WaitDependencySite = { param: d.param, target: d.target, wait: `${wait.calleeText}()`, waitLine: wait.line, usedAfter, released: mine, usedBefore };
      const at = d.paramNode ?? fn.node;
      out[fn.index]!.push({ kind: WAIT_DEPENDENCY, what: JSON.stringify(site), line: at.startPosition.row + 1, column: at.startPosition.column + 1 });
    }
  }
  return out;
}
