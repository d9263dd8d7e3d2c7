/**
 * PA402 streaming_resource_holding
 *
 * What it does: finds streaming endpoints — SSE (`EventSourceResponse`, `text/event-stream`),
 * long-poll `StreamingResponse` generators, WebSocket endpoints that loop — that keep a session
 * or connection open for the whole stream:
 * - a session injected into the endpoint and used by the stream's generator;
 * - a session injected and used before the response, still open while the stream runs: FastAPI
 *   before 0.106 and from 0.118 closes `yield` dependencies after the response is sent (0.106–
 *   0.117 closed them before; `Depends(..., scope="function")`, 0.121+, closes them early);
 * - a session/connection opened in the generator (or the WebSocket endpoint) with `with`
 *   around the loop that streams;
 * - a session injected into a sub-dependency of the endpoint (`get_repo(db = Depends(get_db))`,
 *   endpoint `repo = Depends(get_repo)`), reported at the dependency's parameter: when the stream
 *   uses what the dependency returns, or the session is used (by the dependency or through its
 *   result before the response) and not released (`close()`, `rollback()`, or `commit()` when the
 *   project's factories set `expire_on_commit=False`; after an expiring commit, only when the
 *   endpoint reads the returned objects). A dependency of another module is judged in the repo
 *   phase from the facts both files leave in their summaries (see collectStreamDependencies).
 * Why is this bad? Each open stream pins one pooled connection (often with an open
 * transaction) for minutes; a few dozen clients exhaust the pool and every other endpoint waits.
 *
 * A response streams when built from `StreamingResponse`/`EventSourceResponse`, from a project
 * subclass of them (any module) or a project function that returns one (its content parameter
 * feeds the generator), or when the handler's return annotation names one of those classes.
 * Limits: a wrapper is found only in a module that the discovery pass parses (one that mentions a
 * streaming response, `stream` or `sse`), and a generator only when it is defined in the
 * handler's own file.
 *
 * Flask (flaskStreaming.ts): `stream_with_context` keeps the request's session, and the
 * connection of a transaction it began, until the stream ends. A plain `send_file` does not: Flask
 * pops the app context (Flask-SQLAlchemy removes its session) when `wsgi_app` returns, before the
 * server iterates the body (measured on Flask 2.2 / Flask-SQLAlchemy 3.0).
 *
 * Downloads (`reportDownloads`, `downloadDependencySites`): `FileResponse` and a `StreamingResponse`
 * over a file or a byte generator are sent after the handler returns, for as long as the file and
 * the client's bandwidth make it; on FastAPI versions that close `yield` dependencies after the
 * response, a session used before it and not released holds its connection for the transfer (medium).
 *
 * Precision: a stream whose length is the data's (`for row in rows: yield row` exports) is not a
 * long-poll; a session whose last use in the endpoint ends its transaction (`commit`, `close`)
 * holds no connection.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { CallInfo, FileModel, FunctionInfo } from '../../../semantic/model.js';
import { callArgs } from '../query/semantics.js';
import { FLUSH_EFFECT, PK_QUERY_EFFECT, QUERY_EFFECT } from '../query/dbCalls.js';
import { dependencyAliasOf } from '../../../semantic/dependencyAliases.js';
import { callAt, callsOf, variableRefs } from '../../../semantic/model.js';
import { insideNestedFunction } from '../../../semantic/controlFlow.js';
import type { Severity } from '../../../types.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import type { Effect, FileSummary } from '../../../analysis/summary.js';
import type { ProjectContext } from '../../../discovery/context.js';
import { callGraphOf, ownSites, type CallGraph, type FnRef } from '../../../analysis/callgraph.js';
import { flaskStreams, heldSessionCall, releasedEachRound } from './flaskStreaming.js';
import {
  acquireKind, endsTransaction, handedToReleaser, isLongLivedLoop, generatorUsesSession, websocketHoldsSession, hasOwnLoop, injectedSessions, isBoundedGenerator, isLongLivedGenerator, isWebsocketHandler,
  ownRefs, releasesConnection, sessionSubDependencies, streamingResponses, yieldDependencyOutlivesStream, downloadResponses, type StreamingUse,
  dependencySessions, dependencyTargets, importedDependencies, localAlias, routeDependencies,
} from './semantics.js';

/**
 * A call that gives the handle `name` back: its transaction ended (`commit`, `rollback`, a
 * `with name.begin():` block), closed, or released to its pool (`pool.release(name)`).
 */
function releasesHandle(name: string): (c: CallInfo) => boolean {
  return (c) => (c.dottedReceiver === name && (/^(commit|rollback|close|release)$/.test(c.method) || (c.method === 'begin' && c.isWithItem)))
    || (c.method === 'release' && callArgs(c.node).positional.some((x) => x.text === name));
}

/**
 * Is the call that `ref` is an argument of what its function returns (`return await f(..., ref)`,
 * also through a wrapper that waits for it: `return await asyncio.wait_for(f(..., ref), 30)`)?
 */
function returnedCall(ref: SyntaxNode): boolean {
  const call = (ref.parent?.type === 'keyword_argument' ? ref.parent : ref).parent?.parent ?? null;
  if (call?.type !== 'call') return false;
  let up = call.parent;
  for (let depth = 0; depth < 3 && up; depth++) {
    if (up.type === 'await') up = up.parent;
    if (up?.type === 'return_statement') return true;
    if (up?.type !== 'argument_list' || up.parent?.type !== 'call') return false;
    up = up.parent.parent;
  }
  return false;
}

/** `with`/`async with` items in `fn` that open a session/connection and whose body holds a loop that streams. */
function sessionsAroundStreamLoop(ctx: FileRuleContext, fn: FunctionInfo, streams: (loopNode: SyntaxNode) => boolean): SyntaxNode[] {
  const { model, project } = ctx;
  const out: SyntaxNode[] = [];
  for (const w of model.withs) {
    if (w.functionIndex !== fn.index) continue;
    const loops = model.loops.filter((l) => l.functionIndex === fn.index && l.kind !== 'comprehension' && l.node.startIndex >= w.bodyStart && l.node.endIndex <= w.bodyEnd && streams(l.node));
    if (!loops.length) continue;
    for (const item of w.items) {
      let v: SyntaxNode | null = item.value;
      if (v.type === 'await') v = v.namedChild(0);
      if (v?.type !== 'call') continue;
      const call = callAt(model, v);
      const kind = call ? acquireKind(model, project, call) : null;
      // `async with pool.acquire() as conn:` (asyncpg, aiopg), also a pool kept in app state
      // (`request.app["pool"].acquire()`): the pool's context manager holds one connection.
      const pooled = call?.method === 'acquire' && POOL_RECEIVER.test(call.receiver?.text ?? '');
      // Sessions and database connections: an HTTP or cache client opened around the loop is no
      // pool slot of the database (a proxy's upstream stream must stay open as long as it streams).
      if (!(kind && kind.kind !== 'file' && kind.kind !== 'client') && !pooled) continue;
      // A session gives its connection back when its transaction ends: one that commits or rolls
      // back on every round of the streaming loop holds none while the stream waits.
      const alias = item.alias;
      if (kind?.kind === 'session' && alias && loops.every((l) => releasedEachRound(model, fn.index, l.node, releasesHandle(alias), undefined, (c) => c.dottedReceiver === alias))) continue;
      out.push(v);
    }
  }
  // `session = Maker()` / `conn = await pool.acquire()` before the loop, released only after it
  // (in a `finally`, or after the loop ends): held the same way as by a `with`.
  for (const a of model.assignments) {
    // (`with Maker() as s:` binds like an assignment, but its block gives the session back where it
    // ends: the `with` items above, held only when the loop is inside the block.)
    if (a.functionIndex !== fn.index || a.loops.length || a.fromWith || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
    let v: SyntaxNode | null = a.value;
    if (v?.type === 'await') v = v.namedChild(0);
    if (v?.type !== 'call') continue;
    const call = callAt(model, v);
    if (!call) continue;
    const kind = acquireKind(model, project, call);
    const pooled = call.method === 'acquire' && POOL_RECEIVER.test(call.receiver?.text ?? '');
    if (!(kind && kind.kind !== 'file' && kind.kind !== 'client') && !pooled) continue;
    const loop = model.loops.find((l) => l.functionIndex === fn.index && l.kind !== 'comprehension' && l.node.startIndex > a.node.endIndex && streams(l.node));
    if (!loop) continue;
    const releases = releasesHandle(a.target);
    // Given back before the stream starts, or at the end of every round.
    if (callsOf(model, fn.index).some((c) => c.functionIndex === fn.index && c.node.startIndex > a.node.endIndex && c.node.startIndex < loop.node.startIndex && releases(c))) continue;
    if (kind?.kind === 'session' && releasedEachRound(model, fn.index, loop.node, releases, undefined, (c) => c.dottedReceiver === a.target)) continue;
    if (!out.some((n) => n.id === v!.id)) out.push(v);
  }
  return out;
}

/** A pool object: `pool`, `db_pool`, `self.pool`, `request.app["pool"]`, `app[db_pool]`. */
const POOL_RECEIVER = /((^|[._])pool|\[\s*['"]?\w*pool\w*['"]?\s*\])$/i;

/**
 * A Flask view's streams: under `stream_with_context`, a transaction of the request's session
 * left open for the stream; with or without it, a connection opened around the generator's loop.
 */
function reportFlaskStreams(ctx: FileRuleContext, view: FunctionInfo, reportedGenerators: Set<number>): void {
  for (const stream of flaskStreams(ctx.model, view)) {
    const kind = stream.sse ? 'SSE' : 'long-poll';
    const severity: Severity = isBoundedGenerator(ctx.model, stream.generator) ? 'medium' : stream.sse ? 'critical' : 'high';
    const held = stream.withContext ? heldSessionCall(ctx.model, stream, view) : null;
    if (held) {
      const where = held.functionIndex === view.index ? `\`${view.name}\`` : held.functionIndex === stream.generator.index ? `the generator \`${stream.generator.name}\`` : `\`${ctx.model.functions[held.functionIndex]!.name}\`, called by the generator \`${stream.generator.name}\``;
      ctx.report({
        node: held.node,
        message: `\`${held.calleeText}\` in ${where} begins a transaction on the request's session that stays open for the whole ${kind} stream: \`stream_with_context\` keeps the app context, and the session with its pooled connection, until the generator ends`,
        severity,
        function: view.name,
        recommendation: 'end the transaction before the stream waits (`db.session.commit()`/`rollback()` on every iteration after its queries, or before returning when the stream needs no row), or load what the stream needs before returning the response, without `stream_with_context`',
      });
    }
    const gen = stream.generator;
    if (reportedGenerators.has(gen.index)) continue;
    reportedGenerators.add(gen.index);
    for (const node of sessionsAroundStreamLoop(ctx, gen, (loop) => containsYieldOf(gen, loop))) {
      ctx.report({
        node,
        message: `\`${node.text.replace(/\s+/g, ' ').slice(0, 60)}\` stays open around the streaming loop of \`${gen.name}\`: one connection per open stream`,
        severity,
        function: gen.name,
      });
    }
  }
}

/** aiohttp's streamed responses: `web.StreamResponse`, aiohttp-sse's `EventSourceResponse`/`sse_response`. */
const AIOHTTP_STREAM = /^(aiohttp\.web(_response|_ws)?\.(StreamResponse|WebSocketResponse)|aiohttp_sse\.(EventSourceResponse|sse_response))$/;

/**
 * An aiohttp handler that streams itself (`resp = web.StreamResponse(); await resp.prepare(request)`
 * then `await resp.write(...)` in a loop, or aiohttp-sse's `sse_response`): a session or
 * connection opened with `with` around the loop that writes is held for the whole stream. An
 * event stream (`text/event-stream`, aiohttp-sse) or a loop that waits; a loop as long as the data
 * (an export) is not a stream the client holds open.
 */
function reportAiohttpStreams(ctx: FileRuleContext, fn: FunctionInfo): void {
  const { model } = ctx;
  const names = new Map<string, boolean>();
  for (const call of callsOf(model, fn.index)) {
    if (call.functionIndex !== fn.index || !AIOHTTP_STREAM.test(call.qualifiedName ?? '')) continue;
    // `resp = web.StreamResponse(...)`, or `async with sse_response(request) as resp:`.
    const stmt = call.node.parent?.type === 'await' ? call.node.parent.parent : call.node.parent;
    let name: string | null = null;
    if (stmt?.type === 'assignment') name = stmt.childForFieldName('left')?.text ?? null;
    const item = model.withs.flatMap((w) => w.items).find((i) => i.value.startIndex <= call.node.startIndex && call.node.endIndex <= i.value.endIndex);
    if (item?.alias) name = item.alias;
    if (!name || !/^[A-Za-z_]\w*$/.test(name)) continue;
    // A WebSocket is held open by the client like an event stream.
    const sse = /sse|WebSocketResponse/i.test(call.qualifiedName ?? '') || /event-stream/.test(call.node.text);
    names.set(name, sse || names.get(name) === true);
  }
  if (!names.size) return;
  // `resp.content_type = "text/event-stream"` set after the constructor.
  for (const a of model.assignments) {
    if (a.functionIndex !== fn.index || !a.target.endsWith('.content_type')) continue;
    const name = a.target.slice(0, -'.content_type'.length);
    if (names.has(name) && /event-stream/.test(a.value?.text ?? '')) names.set(name, true);
  }
  // The loop talks to the client: writes to the response, or (a WebSocket) iterates or receives from it.
  const writesIn = (loop: SyntaxNode, name: string) => model.loops.some((l) => l.node.id === loop.id && l.iterable?.text === name)
    || callsOf(model, fn.index).some((c) => c.functionIndex === fn.index && c.dottedReceiver === name
      && /^(write|send|send_json|send_str|send_bytes|write_eof|receive|receive_str|receive_json|receive_bytes)$/.test(c.method)
      && c.node.startIndex >= loop.startIndex && c.node.endIndex <= loop.endIndex);
  for (const [name, sse] of names) {
    // The loop the client holds open: one that waits (a sleep, a queue), or, for an event stream,
    // a `while` loop or an `async for` over a subscription. A loop as long as the data (an export,
    // a batch sent inside one round) is not.
    const waits = (loop: SyntaxNode) => callsOf(model, fn.index).some((c) => c.functionIndex === fn.index && c.awaited
      && c.node.startIndex >= loop.startIndex && c.node.endIndex <= loop.endIndex && /(^|\.)(sleep|wait_for|wait|get)$/.test(c.calleeText));
    const streaming = (loop: SyntaxNode) => writesIn(loop, name)
      && (waits(loop) || (sse && (loop.type === 'while_statement' || (loop.type === 'for_statement' && /^async\b/.test(loop.text)))));
    for (const node of sessionsAroundStreamLoop(ctx, fn, streaming)) {
      ctx.report({
        node,
        message: `\`${node.text.replace(/\s+/g, ' ').slice(0, 60)}\` stays open around the loop that streams \`${name}\` in \`${fn.name}\`: one connection per open stream`,
        severity: sse ? 'critical' : 'high',
        function: fn.name,
      });
    }
  }
}

function containsYieldOf(gen: FunctionInfo, loop: SyntaxNode): boolean {
  return gen.yields.some((y) => y.startIndex >= loop.startIndex && y.endIndex <= loop.endIndex);
}

/**
 * Critical for an event stream or a WebSocket, high for a long poll; `medium` for a stream whose
 * generator yields a fixed number of times and ends (`isBoundedGenerator`): the connection is
 * held for the seconds its steps take, not for as long as a client listens.
 */
function severityOf(model: FileModel, use: StreamingUse | null): Severity {
  if (use?.generator && isBoundedGenerator(model, use.generator)) return 'medium';
  return !use || use.sse ? 'critical' : 'high';
}

function isLongLived(model: FileModel, use: StreamingUse): boolean {
  return use.sse || (use.generator !== null && isLongLivedGenerator(model, use.generator));
}

/** The FastAPI versions whose `yield` dependencies exit after the response, as the message says. */
const OUTLIVING_VERSIONS = 'FastAPI < 0.106 and ≥ 0.118 run a `yield` dependency\'s exit code after the response has been sent';

/**
 * A row the handler loaded through session `name` (an assignment before `commit` whose value
 * uses the session: `track = db.get(Track, id)`, `track = find_track(db, id)`) and reads after
 * that commit (`track.path`): with `expire_on_commit` on, the read loads it again, on a new
 * transaction that keeps a connection until the session closes. The read, or null.
 */
function readsExpiredRow(fn: FunctionInfo, name: string, commit: SyntaxNode): SyntaxNode | null {
  if (!fn.body) return null;
  const uses = new Set(ownRefs(fn, name).map((r) => r.id));
  for (const a of fn.body.descendantsOfType('assignment')) {
    if (a.endIndex > commit.startIndex || insideNestedFunction(a, fn.body)) continue;
    const left = a.childForFieldName('left');
    const right = a.childForFieldName('right');
    if (left?.type !== 'identifier' || !right || left.text === name) continue;
    if (!right.descendantsOfType('identifier').some((i) => uses.has(i.id))) continue;
    // A wrapper of the session (`repo = Repo(db)`) is the session itself: its uses are in `uses`.
    if (variableRefs(fn.body, left.text).some((r) => uses.has(r.id))) continue;
    const read = variableRefs(fn.body, left.text).find((r) => r.startIndex > commit.endIndex && r.parent?.type === 'attribute' && r.parent.childForFieldName('object')?.id === r.id);
    if (read) return read;
  }
  return null;
}

/**
 * A handler with no event stream that returns a download (`FileResponse`, a `StreamingResponse`
 * over a file or a byte generator, see `downloadResponses`): a session injected through a
 * `yield` dependency (its own parameter, or a same-file sub-dependency's) and used before the
 * response without giving its connection back stays checked out — idle in the transaction its
 * first statement began — while the body is sent, when FastAPI closes such dependencies after the
 * response. Medium: a download ends, but a large file to a slow client holds a pool slot for
 * minutes. A body generator that uses the session itself needs it (an export from the database).
 */
/**
 * Why a sub-dependency's session (`sd`) is still checked out when the endpoint's response goes
 * out, or null: the endpoint's own last use of it (`holds` says whether that use keeps the
 * connection; `endpointWhy` is the reason then), else the dependency's last use — a statement or
 * a hand-off it does not release, or a commit with `expire_on_commit` on whose returned row the
 * endpoint reads again (a commit that only expires the objects holds nothing until one is read).
 */
function subDependencyHold(project: ProjectContext, fn: FunctionInfo, sd: ReturnType<typeof sessionSubDependencies>[number], generators: FunctionInfo[],
  holds: (last: NonNullable<ReturnType<typeof ownRefs>[number]>) => boolean, endpointWhy: string): string | null {
  const endpointRefs = sd.carrier ? ownRefs(fn, sd.param, generators) : [];
  const last = endpointRefs[endpointRefs.length - 1];
  if (last) return holds(last) ? endpointWhy : null;
  if (!sd.lastUse || releasesConnection(project, sd.lastUse)) return null;
  const expiredOnly = endsTransaction(sd.lastUse);
  if (!expiredOnly && (sd.queries || sd.handedOn.length > 0)) return `\`${sd.dependency.name}\` uses it and does not release it`;
  if (expiredOnly && sd.returnsRow && fn.body && variableRefs(fn.body, sd.param).length > 0) return `\`${sd.dependency.name}\` commits with \`expire_on_commit\` on, and \`${fn.name}\` reads what it returned, which loads it again`;
  return null;
}

function reportDownloads(ctx: FileRuleContext, fn: FunctionInfo, reportedDependencies: Set<string>): void {
  const { model, project } = ctx;
  if (!/FileResponse|StreamingResponse/.test(model.source) && !project.streamingFactories?.length) return;
  if (!yieldDependencyOutlivesStream(project)) return;
  const downloads = downloadResponses(model, project, fn);
  if (!downloads.length) return;
  const cls = downloads[0]!.cls;
  const generators = downloads.map((d) => d.generator).filter((g): g is FunctionInfo => g !== null);
  const feeds = (param: string) => downloads.some((d) => generatorUsesSession({ call: d.call, sse: false, generatorCall: d.generatorCall, generator: d.generator }, param));
  for (const s of injectedSessions(model, project, fn)) {
    if (!s.viaDepends || s.functionScope || feeds(s.name)) continue;
    const refs = ownRefs(fn, s.name, generators);
    const last = refs[refs.length - 1];
    if (!last || releasesConnection(project, last)) continue;
    const reread = endsTransaction(last) ? readsExpiredRow(fn, s.name, last) : null;
    if (endsTransaction(last) && !reread) continue;
    const why = reread
      ? `\`${reread.parent!.text}\` after the commit loads the expired row again, on a transaction that`
      : 'its first statement began a transaction that';
    ctx.report({
      node: s.node,
      message: `injected session \`${s.name}\` of \`${fn.name}\` is closed only after the \`${cls}\` download has been sent (${OUTLIVING_VERSIONS}): ${why} keeps a pooled connection checked out, idle, for the whole transfer`,
      severity: 'medium',
      function: fn.name,
    });
  }
  const released = releasedOwnSessions(model, project, fn, generators);
  for (const sd of sessionSubDependencies(model, project, fn)) {
    const key = `${sd.dependency.index}:${sd.session.name}`;
    if (reportedDependencies.has(key) || sd.session.functionScope || (sd.carrier && feeds(sd.param))) continue;
    // The endpoint released its own session of the same (cached) provider: the dependency's is that session.
    if (!sd.session.uncached && released.some((p) => p === '?' || !sd.session.provider || p === sd.session.provider)) continue;
    // The endpoint's own last use: any end of its transaction gives the connection back before the body is sent.
    const why = subDependencyHold(project, fn, sd, generators, (last) => !endsTransaction(last), `\`${fn.name}\` uses \`${sd.param}\` before the response and does not release it`);
    if (!why) continue;
    reportedDependencies.add(key);
    ctx.report({
      node: sd.session.node,
      message: `session \`${sd.session.name}\` of dependency \`${sd.dependency.name}\` is held for the whole \`${cls}\` download of \`${fn.name}\` (through \`${sd.param}\`): ${why}, and the dependency closes it only after the response has been sent (${OUTLIVING_VERSIONS})`,
      severity: 'medium',
      function: sd.dependency.name,
    });
  }
}

export const streamingResourceHolding: FileRule & RepoRule = {
  meta: {
    code: 'PA402',
    check: 'streaming_resource_holding',
    family: 'lifecycle',
    severity: 'critical',
    effort: 'M',
    summary: 'Streaming endpoint (SSE, long-poll, WebSocket) or file download keeps a session/connection open for the whole stream',
    what: 'Finds SSE endpoints (`EventSourceResponse`, `StreamingResponse(media_type="text/event-stream")`), long-poll `StreamingResponse` generators (a `while` loop, or a loop that waits) and looping WebSocket endpoints that hold a session or connection while they stream: an injected session used by the generator; an injected session used before the response and still open during the stream (version-aware: FastAPI < 0.106 and ≥ 0.118 close `yield` dependencies after the response, 0.106–0.117 before it, `Depends(..., scope="function")` early); a session or connection opened with `with` around the streaming loop, or assigned before it and given back only after it (`session = Maker()` … `finally: session.close()`); a session injected into a sub-dependency, of the endpoint\'s module or another (`get_repo(db = Depends(get_db))` behind `repo = Depends(get_repo)`, `user = Depends(deps.current_user)`) whose result the stream uses, or that is used and not released before the response (reported at the parameter of the dependency). A response streams when built from these classes, a project subclass or a project function returning one, or when the handler is annotated to return one; handlers registered by a call (`add_api_route`, `Route(...)`, `add_url_rule(view_func=...)`, aiohttp `router.add_get`) count. Flask: a view that returns `Response(stream_with_context(gen()))` (or a generator decorated with `@stream_with_context`) as an event stream or a long poll keeps the app context, and with it Flask-SQLAlchemy\'s `db.session` (or a scoped session removed at teardown), until the stream ends: a query in the generator or in the view before the response, with no `commit()`/`rollback()`/`close()`/`remove()` after it, holds a pooled connection for the whole stream (reported at that query; a plain `Response(gen())` is silent: the contexts, and the session, are gone before the body streams). aiohttp: a handler that streams itself (`web.StreamResponse` + `prepare`, or aiohttp-sse\'s `sse_response`) with a session or connection opened by `with` around the loop that writes to it (`async with pool.acquire()`, `engine.connect()`), when the stream is an event stream or its loop waits. Critical for SSE/WebSocket, high for long-poll. `medium` when the stream\'s generator yields a fixed number of times and ends (every `yield` outside any loop, no `yield from`, nothing that waits for new data: a progress stream of a few steps): the connection is held for the seconds its work takes, not for as long as the client listens. Downloads, `medium`: a handler that returns Starlette\'s `FileResponse` (or a project subclass, a project function or method returning one, what it returns when annotated `-> FileResponse`, or a bare path on a route declared `response_class=FileResponse`) or a `StreamingResponse` that is not an event stream or long poll — over a file (`open(path, "rb")`, a generator reading one) or a generator of bytes — while an injected session (its own `Depends(get_db)`, a same-file sub-dependency\'s, or another module\'s dependency such as `user = Depends(current_user)`) has run a statement and not given its connection back (no `close()`/`rollback()`, nor a commit that releases it; after a commit with `expire_on_commit` on, when the handler reads a row it loaded before, which begins a new transaction): the connection stays checked out, idle in transaction, until the whole body has been sent, only on FastAPI < 0.106 and ≥ 0.118 (0.106–0.117: silent). A download ends, unlike a feed, but a large file to a slow client holds a pool slot for minutes. Silent: a body built in memory (`Response(content=...)`, `JSONResponse`, `StreamingResponse(io.BytesIO(data))`, or a value another module returns that is not a file or chunk reader), a session never used, a session the handler releases before returning (also one a sub-dependency got from the same provider: FastAPI caches a dependency per request, unless `use_cache=False`), and a body generator that reads through the session itself (an export streamed from the database needs its connection). Flask\'s `send_file` holds nothing: the app context (and Flask-SQLAlchemy\'s session) is torn down when the WSGI app returns, before the server sends the body.',
    why: 'A stream lasts as long as the client stays connected. A session held for it pins a pooled connection — often inside an open transaction, which also holds back vacuum — for minutes or hours; with the default pool of 5 + 10 overflow, fifteen open streams stop every other endpoint.',
    bad: 'import asyncio\n\nfrom fastapi import Depends, FastAPI\nfrom sqlalchemy import select\nfrom sqlalchemy.ext.asyncio import AsyncSession\nfrom sse_starlette.sse import EventSourceResponse\n\napp = FastAPI()\n\n\n@app.get("/jobs/{job_id}/events")\nasync def job_events(job_id: int, session: AsyncSession = Depends()):\n    async def stream():\n        while True:\n            job = await session.get(Job, job_id)\n            yield {"data": job.status}\n            await asyncio.sleep(1)\n\n    return EventSourceResponse(stream())\n',
    good: 'import asyncio\n\nfrom fastapi import FastAPI\nfrom sqlalchemy.ext.asyncio import async_sessionmaker\nfrom sse_starlette.sse import EventSourceResponse\n\napp = FastAPI()\nsession_factory = async_sessionmaker(expire_on_commit=False)\n\n\n@app.get("/jobs/{job_id}/events")\nasync def job_events(job_id: int):\n    async def stream():\n        while True:\n            async with session_factory() as session:\n                job = await session.get(Job, job_id)\n            yield {"data": job.status}\n            await asyncio.sleep(1)\n\n    return EventSourceResponse(stream())\n',
    fix: 'check auth and load what the stream needs, release the session, then stream; open a short `async with factory() as s:` per DB touch inside the loop (or listen on a dedicated connection outside the pool)',
    references: [
      'https://fastapi.tiangolo.com/tutorial/dependencies/dependencies-with-yield/',
      'https://fastapi.tiangolo.com/release-notes/#01180',
      'https://github.com/sysid/sse-starlette',
      'https://docs.sqlalchemy.org/en/20/core/pooling.html',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile || !/Response|websocket/i.test(model.source)) return;
    // Flask streams (see flaskStreaming.ts).
    const flask = /\bflask\b|werkzeug/.test(model.source) && /yield/.test(model.source);
    const aiohttp = /StreamResponse|WebSocketResponse|sse_response|EventSourceResponse/.test(model.source) && /aiohttp/.test(model.source);
    const reportedGenerators = new Set<number>();
    const reportedDependencies = new Set<string>();
    for (const fn of model.functions) {
      if (fn.role !== 'handler') continue;
      if (flask) reportFlaskStreams(ctx, fn, reportedGenerators);
      if (aiohttp) reportAiohttpStreams(ctx, fn);
      const streams = streamingResponses(model, project, fn).filter((u) => isLongLived(model, u));
      const websocket = isWebsocketHandler(fn) && hasOwnLoop(model, fn);
      if (streams.length === 0 && !websocket) {
        reportDownloads(ctx, fn, reportedDependencies);
        continue;
      }
      const generators = streams.map((u) => u.generator).filter((g): g is FunctionInfo => g !== null);
      for (const s of injectedSessions(model, project, fn)) {
        const used = streams.find((u) => generatorUsesSession(u, s.name));
        if (used) {
          ctx.report({
            node: s.node,
            message: `injected session \`${s.name}\` is used by the ${used.sse ? 'SSE' : 'long-poll'} generator of \`${fn.name}\`: one pooled connection stays checked out for the whole stream`,
            severity: severityOf(model, used),
            function: fn.name,
            // FastAPI 0.106-0.117 closes the dependency before the stream: PA406 says what happens
            // then (the closed session opens a connection nothing returns), at the same parameter.
            ...(s.viaDepends && (!yieldDependencyOutlivesStream(project) || s.functionScope) ? { sameDefectAs: { code: 'PA406', line: s.node.startPosition.row + 1 } } : {}),
          });
          continue;
        }
        if (websocket) {
          if (!s.viaDepends || !websocketHoldsSession(model, project, fn, s.name)) continue;
          ctx.report({
            node: s.node,
            message: `injected session \`${s.name}\` stays open for the whole WebSocket connection of \`${fn.name}\``,
            severity: 'critical',
            function: fn.name,
          });
          continue;
        }
        // Alive during the stream: used before the response, not ended, closed only after it.
        if (!s.viaDepends || s.functionScope || !yieldDependencyOutlivesStream(project)) continue;
        const refs = ownRefs(fn, s.name, generators);
        const last = refs[refs.length - 1];
        if (!last || endsTransaction(last) || handedToReleaser(model, last)) continue;
        // `return await _stream(request, session, ...)`: every stream is built by a function of the
        // file that the endpoint returns from after handing it the session, and that function
        // releases the session before it builds the response (other branches use it after).
        const released = refs.filter((r) => handedToReleaser(model, r) && returnedCall(r));
        if (released.length && streams.every((u) => u.call.functionIndex !== fn.index || released.some((r) => r.startIndex >= u.call.node.startIndex && r.endIndex <= u.call.node.endIndex))) continue;
        const use = streams[0]!;
        ctx.report({
          node: s.node,
          message: `injected session \`${s.name}\` of \`${fn.name}\` is closed only after the ${use.sse ? 'SSE' : 'long-poll'} stream ends (FastAPI closes \`yield\` dependencies after the response): its connection is held for the whole stream`,
          severity: severityOf(model, use),
          function: fn.name,
        });
      }
      // A session injected into a sub-dependency (`repo = Depends(get_repo)`, `get_repo(db = Depends(get_db))`):
      // its provider closes it with the endpoint's dependencies, so it is held for the stream
      // when the stream uses what the dependency returns, or when it is used and not released
      // before the response.
      for (const sd of sessionSubDependencies(model, project, fn)) {
        const key = `${sd.dependency.index}:${sd.session.name}`;
        if (reportedDependencies.has(key)) continue;
        const what = websocket && streams.length === 0 ? 'WebSocket connection' : streams[0]?.sse ? 'SSE stream' : 'long-poll stream';
        let why: string | null = null;
        const inGenerator = sd.carrier ? streams.find((u) => generatorUsesSession(u, sd.param)) : undefined;
        if (inGenerator) why = `the stream's generator uses \`${sd.param}\``;
        else if (websocket || (!sd.session.functionScope && yieldDependencyOutlivesStream(project))) {
          why = subDependencyHold(project, fn, sd, generators, (last) => !releasesConnection(project, last),
            streams.length === 0 ? `\`${fn.name}\` uses \`${sd.param}\` while connected` : `\`${fn.name}\` uses \`${sd.param}\` before the response and does not release it`);
        }
        if (!why) continue;
        reportedDependencies.add(key);
        ctx.report({
          node: sd.session.node,
          message: `session \`${sd.session.name}\` of dependency \`${sd.dependency.name}\` is held for the whole ${what} of \`${fn.name}\` (through \`${sd.param}\`): ${why}${inGenerator ? '' : ', and the dependency closes it only after the endpoint ends'}`,
          severity: inGenerator ? severityOf(model, inGenerator) : websocket && streams.length === 0 ? 'critical' : severityOf(model, streams[0] ?? null),
          function: sd.dependency.name,
        });
      }
      // Opened in the generator (or the WebSocket endpoint) around the streaming loop.
      for (const use of streams) {
        const gen = use.generator;
        if (!gen || reportedGenerators.has(gen.index)) continue;
        reportedGenerators.add(gen.index);
        // A generator that listens (a `while` loop, a wait) and also replays what it fetched (a
        // `for` over rows, yielding each) holds a session opened around the replay only for it.
        const listens = isLongLivedGenerator(model, gen);
        const streamLoop = (loop: SyntaxNode) => containsYieldOf(gen, loop) && (!listens || isLongLivedLoop(model, gen, loop));
        for (const node of sessionsAroundStreamLoop(ctx, gen, streamLoop)) {
          ctx.report({
            node,
            message: `\`${node.text.replace(/\s+/g, ' ').slice(0, 60)}\` stays open around the streaming loop of \`${gen.name}\`: one connection per open stream`,
            severity: severityOf(model, use),
            function: gen.name,
          });
        }
      }
      if (websocket) {
        for (const node of sessionsAroundStreamLoop(ctx, fn, () => true)) {
          ctx.report({
            node,
            message: `\`${node.text.replace(/\s+/g, ' ').slice(0, 60)}\` stays open around the receive loop of WebSocket endpoint \`${fn.name}\``,
            severity: 'critical',
            function: fn.name,
          });
        }
      }
    }
  },
  /**
   * A streaming endpoint's dependency of another module that takes a session
   * (`user = Depends(deps.current_user)`, `current_user(db = Depends(get_db))`): the endpoint's
   * file leaves a site per such parameter, the dependency's file what it does with the session.
   */
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    const outlives = yieldDependencyOutlivesStream(ctx.project);
    const reported = new Set<string>();
    for (const { ref, file, site } of ownSites(graph, STREAM_DEPENDENCY)) {
      const s = JSON.parse(site.what) as StreamDependencySite;
      for (const { first, dep, depth, depFile, effect: e, fact: d } of dependencySessionFacts(graph, s.target)) {
        // The endpoint released its own session of the same (cached) provider: the same object.
        if (!d.uncached && s.released?.some((p) => p === '?' || !d.provider || p === d.provider)) continue;
        let why: string | null = null;
        // A session of a sub-dependency is held when that dependency uses it and lets it be.
        if (depth > 0) {
          if ((s.kind === 'WebSocket connection' || (!d.functionScope && outlives)) && d.lastUse === 'holds' && queriesThrough(graph, dep, d)) why = `\`${graph.function(dep).name}\` (a dependency of \`${graph.function(first).name}\`) uses it and does not release it`;
        } else if (d.carrier && s.inGenerator) why = `the stream's generator uses \`${s.param}\``;
        else if (s.kind === 'WebSocket connection' || (!d.functionScope && outlives)) {
          if (d.carrier && s.endpointLast !== 'none') {
            if (s.endpointLast === 'holds') why = s.kind === 'WebSocket connection' ? `\`${graph.function(ref).name}\` uses \`${s.param}\` while connected` : `\`${graph.function(ref).name}\` uses \`${s.param}\` before the response and does not release it`;
          } else if (d.lastUse === 'holds' && queriesThrough(graph, dep, d)) why = `\`${graph.function(dep).name}\` uses it and does not release it`;
          else if (d.lastUse === 'expires' && d.returnsRow && s.endpointReads) why = `\`${graph.function(dep).name}\` commits with \`expire_on_commit\` on, and \`${graph.function(ref).name}\` reads what it returned, which loads it again`;
        }
        const key = `${depFile.path}:${e.line}:${e.column}`;
        if (!why || reported.has(key)) continue;
        reported.add(key);
        ctx.report({
          path: depFile.path,
          location: { line: e.line, column: e.column, endLine: d.endLine, endColumn: d.endColumn },
          message: `session \`${d.name}\` of dependency \`${graph.function(dep).qualifiedName}\` is held for the whole ${s.kind} of \`${graph.function(ref).qualifiedName}\` (${file.path}, through \`${s.param}\`): ${why}${s.inGenerator && d.carrier ? '' : s.kind.endsWith(' download') ? `, and the dependency closes it only after the response has been sent (${OUTLIVING_VERSIONS})` : ', and the dependency closes it only after the endpoint ends'}`,
          severity: s.severity,
          function: graph.function(dep).name,
        });
      }
    }
  },
};

/**
 * Does the dependency run a statement through its session: its own (outside a `begin()` block),
 * or in a function of the repo it hands the session to then, one that reaches a query or flush?
 */
export function queriesThrough(graph: CallGraph, dep: FnRef, d: SessionDependencyFact): boolean {
  if (d.queries) return true;
  const lines = new Set(d.handedOn ?? []);
  if (!lines.size) return false;
  // The functions called on those lines (not the dependency's own statements, which may sit in a `begin()` block).
  return graph.callees(dep).some((e) => lines.has(e.call.line) && [QUERY_EFFECT, PK_QUERY_EFFECT, FLUSH_EFFECT].some((k) => graph.effectOf(e.to, k, 'any')));
}

/**
 * What each dependency of {@link dependencyChain} (outside test files) does with a session it takes
 * by injection: the `SESSION_DEPENDENCY` facts its module left, with the chain's first dependency.
 */
export function* dependencySessionFacts(graph: CallGraph, target: string): Generator<{ first: FnRef; dep: FnRef; depth: number; depFile: FileSummary; effect: Effect; fact: SessionDependencyFact }> {
  const chain = dependencyChain(graph, target);
  const first = chain[0]?.dep;
  if (!first) return;
  for (const { dep, depth } of chain) {
    const depFile = graph.fileOf(dep);
    if (depFile.isTestFile) continue;
    for (const effect of graph.ownEffects(dep)) {
      if (effect.kind === SESSION_DEPENDENCY) yield { first, dep, depth, depFile, effect, fact: JSON.parse(effect.what) as SessionDependencyFact };
    }
  }
}

/**
 * The dependency a qualified name runs (a function, or a class whose `__init__` FastAPI calls),
 * then the ones it depends on in turn, two more levels down: FastAPI resolves them all for the
 * request before the endpoint, and closes the sessions they were given only after it. Empty when
 * the name resolves to nothing of the repo.
 */
export function dependencyChain(graph: CallGraph, target: string): { dep: FnRef; depth: number }[] {
  const dependencyRef = (q: string) => graph.resolveQualified(q) ?? graph.resolveQualified(`${q}.__init__`) ?? factoryDependency(graph, q);
  const first = dependencyRef(target);
  if (!first) return [];
  const chain: { dep: FnRef; depth: number }[] = [{ dep: first, depth: 0 }];
  for (let i = 0; i < chain.length && chain.length < 8; i++) {
    if (chain[i]!.depth >= 2) continue;
    for (const e of graph.ownEffects(chain[i]!.dep)) {
      if (e.kind !== DEPENDS_ON) continue;
      for (const q of e.what.split(' ')) {
        const next = dependencyRef(q);
        if (next && !chain.some((c) => c.dep.file === next.file && c.dep.fn === next.fn)) chain.push({ dep: next, depth: chain[i]!.depth + 1 });
      }
    }
  }
  return chain;
}

/**
 * `Depends(require_role("admin"))`, recorded as `require_role.__call__`: when `require_role` is a
 * function (not a class), what FastAPI runs per request is the function it returns, its one
 * nested `def` (`def checker(db = Depends(get_db)): ...; return checker`).
 */
function factoryDependency(graph: CallGraph, q: string): FnRef | null {
  if (!q.endsWith('.__call__')) return null;
  const factory = graph.resolveQualified(q.slice(0, -'.__call__'.length));
  if (!factory || graph.function(factory).className) return null;
  const file = graph.fileOf(factory);
  const inner = file.functions.map((f, fn) => ({ f, fn })).filter(({ f }) => f.parent === factory.fn);
  return inner.length === 1 ? { file: factory.file, fn: inner[0]!.fn } : null;
}

/** An annotation that may be a dependency alias: a bare or dotted name (`SessionDep`, `deps.CurrentUser`). */
const INJECTED_ALIAS = /^[A-Za-z_][\w.]*$/;

/** On a streaming endpoint, at a parameter filled by a dependency of another module. */
export const STREAM_DEPENDENCY = 'stream_dependency';
/**
 * On a function that may serve as a dependency: the dependencies its own parameters name
 * (space-separated). On a route handler: those of its parameters and its route's
 * `dependencies=[...]`, which FastAPI runs for every request to it.
 */
export const DEPENDS_ON = 'depends_on';
/** On a function that may serve as a dependency, at a session it takes by injection. */
export const SESSION_DEPENDENCY = 'session_dependency';

interface StreamDependencySite {
  param: string;
  /** The dependency's qualified name. */
  target: string;
  /** What the endpoint sends: a stream, a WebSocket connection, or a download (`` `FileResponse` download ``). */
  kind: 'SSE stream' | 'long-poll stream' | 'WebSocket connection' | `\`${string}\` download`;
  severity: Severity;
  /** The stream's generator uses the parameter. */
  inGenerator: boolean;
  /** The endpoint's own last use of the parameter outside the generator. */
  endpointLast: 'none' | 'releases' | 'holds';
  /** The endpoint reads the parameter at all. */
  endpointReads: boolean;
  /**
   * Providers of the endpoint's own injected sessions whose last use releases the connection
   * (`close()`, `rollback()`, a commit that gives it back): FastAPI caches a dependency per request
   * (`use_cache=True`, its default), so a sub-dependency of the same provider got that very
   * session, released too. `?` for a provider not known by name.
   */
  released?: string[];
}

export interface SessionDependencyFact {
  name: string;
  endLine: number;
  endColumn: number;
  functionScope: boolean;
  /** The dependency returns or yields the session, or something that keeps it. */
  carrier: boolean;
  /** Its own last use of the session: none, one that releases the connection, an expiring commit, or one that holds it. */
  lastUse: 'none' | 'releases' | 'expires' | 'holds';
  /** It returns what the session loaded: an expired row that reloads when the endpoint reads it. */
  returnsRow: boolean;
  /** It runs a statement through the session outside a `session.begin()` block (a connection stays checked out). */
  queries?: boolean;
  /** Lines where it hands the session to a function that runs now; whether that queries is the repo phase's to ask. */
  handedOn?: number[];
  /** Its `Depends(..., use_cache=False)`: a session of its own, not the request's shared one. */
  uncached?: boolean;
  /** The provider its `Depends(...)` names, qualified when known. */
  provider?: string;
}

/**
 * A download endpoint's sites (see `downloadResponses`): each parameter filled by a dependency of
 * another module that does not feed the body's generator, and the route's `dependencies=[...]`.
 * Only where FastAPI closes `yield` dependencies after the response.
 */
/** The providers of `fn`'s own injected (cached) sessions whose last use releases the connection (see `StreamDependencySite.released`). */
function releasedOwnSessions(model: FileModel, project: ProjectContext, fn: FunctionInfo, generators: FunctionInfo[]): string[] {
  const out: string[] = [];
  for (const s of injectedSessions(model, project, fn)) {
    if (!s.viaDepends || s.uncached) continue;
    const refs = ownRefs(fn, s.name, generators);
    const last = refs[refs.length - 1];
    if (last && releasesConnection(project, last)) out.push(s.provider ?? '?');
  }
  return out;
}

function downloadDependencySites(model: FileModel, project: ProjectContext, fn: FunctionInfo, imported: { param: string; paramNode: SyntaxNode; target: string }[], routeDeps: string[], out: Effect[]): void {
  if (!yieldDependencyOutlivesStream(project)) return;
  const downloads = downloadResponses(model, project, fn);
  if (!downloads.length) return;
  const kind = `\`${downloads[0]!.cls}\` download` as const;
  const generators = downloads.map((d) => d.generator).filter((g): g is FunctionInfo => g !== null);
  const released = releasedOwnSessions(model, project, fn, generators);
  for (const d of imported) {
    if (downloads.some((u) => generatorUsesSession({ call: u.call, sse: false, generatorCall: u.generatorCall, generator: u.generator }, d.param))) continue;
    const refs = ownRefs(fn, d.param, generators);
    const last = refs[refs.length - 1];
    const site: StreamDependencySite = {
      param: d.param, target: d.target, kind, severity: 'medium', inGenerator: false,
      endpointLast: !last ? 'none' : endsTransaction(last) ? 'releases' : 'holds',
      endpointReads: !!fn.body && variableRefs(fn.body, d.param).length > 0,
      ...(released.length ? { released } : {}),
    };
    out.push({ kind: STREAM_DEPENDENCY, what: JSON.stringify(site), line: d.paramNode.startPosition.row + 1, column: d.paramNode.startPosition.column + 1 });
  }
  for (const target of routeDeps) {
    const site: StreamDependencySite = { param: 'dependencies=[...]', target, kind, severity: 'medium', inGenerator: false, endpointLast: 'none', endpointReads: false };
    out.push({ kind: STREAM_DEPENDENCY, what: JSON.stringify(site), line: fn.startLine, column: 1 });
  }
}

/**
 * The facts PA402 needs across modules: on a streaming endpoint, each parameter filled by a
 * dependency of another module ({@link STREAM_DEPENDENCY}); on any module-level function,
 * `__init__` or `__call__` that takes a session by `Depends`, what it does with it ({@link SESSION_DEPENDENCY}).
 */
export function collectStreamDependencies(model: FileModel, project?: ProjectContext): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (!project || model.isTestFile) return out;
  const at = (node: SyntaxNode) => ({ line: node.startPosition.row + 1, column: node.startPosition.column + 1 });
  // A parameter that may be injected: `Depends(...)` in its default or annotation, or an
  // annotation that is a bare name (an `Annotated[..., Depends(...)]` alias). Cheap text tests
  // first: most functions of most files have none.
  const aliasName = (annotation: string): boolean => {
    const name = annotation.trim();
    return INJECTED_ALIAS.test(name) && (/(Dep|Dependency)$/.test(name) || localAlias(model, name) !== null || dependencyAliasOf(model, name) !== null);
  };
  const maybeInjected = (fn: FunctionInfo) => fn.params.some((p) => p.defaultText?.includes('Depends') || (p.annotation !== null && (p.annotation.includes('Depends') || aliasName(p.annotation))));
  if (/Response|websocket/i.test(model.source)) {
    for (const fn of model.functions) {
      if (fn.role !== 'handler') continue;
      const imported = maybeInjected(fn) ? importedDependencies(model, project, fn) : [];
      const routeDeps = fn.decorators.some((d) => /dependencies|^[A-Za-z_]\w*\./.test(d)) && model.source.includes('dependencies') ? routeDependencies(model, project, fn) : [];
      if (!imported.length && !routeDeps.length) continue;
      const streams = streamingResponses(model, project, fn).filter((u) => isLongLived(model, u));
      const websocket = isWebsocketHandler(fn) && hasOwnLoop(model, fn);
      if (streams.length === 0 && !websocket) {
        downloadDependencySites(model, project, fn, imported, routeDeps, out[fn.index]!);
        continue;
      }
      const generators = streams.map((u) => u.generator).filter((g): g is FunctionInfo => g !== null);
      const kind = websocket && streams.length === 0 ? 'WebSocket connection' : streams[0]?.sse ? 'SSE stream' : 'long-poll stream';
      for (const d of imported) {
        const refs = ownRefs(fn, d.param, generators);
        const last = refs[refs.length - 1];
        const usedBy = streams.find((u) => generatorUsesSession(u, d.param));
        const site: StreamDependencySite = {
          param: d.param,
          target: d.target,
          kind,
          severity: streams.length ? severityOf(model, usedBy ?? streams[0]!) : 'critical',
          inGenerator: usedBy !== undefined,
          endpointLast: !last ? 'none' : releasesConnection(project, last) ? 'releases' : 'holds',
          endpointReads: !!fn.body && variableRefs(fn.body, d.param).length > 0,
        };
        out[fn.index]!.push({ kind: STREAM_DEPENDENCY, what: JSON.stringify(site), ...at(d.paramNode) });
      }
      // A route's own `dependencies=[...]`: nothing in the endpoint holds their result.
      for (const target of routeDeps) {
        const site: StreamDependencySite = { param: 'dependencies=[...]', target, kind, severity: streams.length ? severityOf(model, streams[0]!) : 'critical', inGenerator: false, endpointLast: 'none', endpointReads: false };
        out[fn.index]!.push({ kind: STREAM_DEPENDENCY, what: JSON.stringify(site), line: fn.startLine, column: 1 });
      }
    }
  }
  for (const fn of model.functions) {
    // What a handler runs per request before its body (PA407: an engine built there is built per request).
    if (fn.role !== 'handler' || fn.parent >= 0) continue;
    const targets = maybeInjected(fn) ? dependencyTargets(model, project, fn) : [];
    if (fn.decorators.some((d) => /dependencies|^[A-Za-z_]\w*\./.test(d)) && model.source.includes('dependencies')) targets.push(...routeDependencies(model, project, fn));
    if (targets.length) out[fn.index]!.push({ kind: DEPENDS_ON, what: [...new Set(targets)].join(' '), line: fn.startLine, column: 1 });
  }
  for (const dep of model.functions) {
    // A route handler is rarely another endpoint's dependency; its own session is PA402's file rule's.
    // A class serves as one by its `__init__` (`Depends(Repo)`) or its instances by `__call__` (`Depends(RequireRole("admin"))`).
    // Or the function a dependency factory returns (`def require_role(r): def checker(db = Depends(get_db)): ...`).
    const nestedInFactory = dep.parent >= 0 && model.functions[dep.parent]!.parent < 0 && !model.functions[dep.parent]!.className;
    if ((dep.parent >= 0 && !nestedInFactory) || (dep.className && dep.name !== '__init__' && dep.name !== '__call__') || !dep.body || dep.role === 'handler' || !maybeInjected(dep)) continue;
    // Its own sub-dependencies (`get_current_active_user(user = Depends(get_current_user))`).
    const subs = dependencyTargets(model, project, dep);
    if (subs.length) out[dep.index]!.push({ kind: DEPENDS_ON, what: subs.join(' '), line: dep.startLine, column: 1 });
    for (const d of dependencySessions(model, project, dep)) {
      const fact: SessionDependencyFact = {
        name: d.session.name,
        endLine: d.session.node.endPosition.row + 1,
        endColumn: d.session.node.endPosition.column + 1,
        functionScope: d.session.functionScope,
        carrier: d.carrier,
        lastUse: !d.lastUse ? 'none' : releasesConnection(project, d.lastUse) ? 'releases' : endsTransaction(d.lastUse) ? 'expires' : 'holds',
        returnsRow: d.returnsRow,
        ...(d.queries ? { queries: true } : {}),
        ...(d.handedOn.length ? { handedOn: d.handedOn } : {}),
        ...(d.session.uncached ? { uncached: true } : {}),
        ...(d.session.provider ? { provider: d.session.provider } : {}),
      };
      out[dep.index]!.push({ kind: SESSION_DEPENDENCY, what: JSON.stringify(fact), ...at(d.session.node) });
    }
  }
  return out;
}
