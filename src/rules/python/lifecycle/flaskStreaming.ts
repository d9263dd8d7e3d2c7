/**
 * PA402 for Flask: a streamed response that keeps the request's session, and its connection,
 * for the whole stream.
 *
 * Flask pops the request and application contexts as soon as the view returns its response,
 * before Werkzeug iterates a generator body; Flask-SQLAlchemy's `db.session` (and a project's
 * `scoped_session` removed at `teardown_appcontext`) is then closed, and its connection is back in
 * the pool while the stream runs. `stream_with_context(gen())` (or a generator decorated with
 * `@stream_with_context`) keeps both contexts pushed until the generator is exhausted or closed,
 * so the teardown, and the session's `remove()`, wait for the end of the stream: a session that
 * started a transaction (any query autobegins one) holds its pooled connection for as long as the
 * client stays connected. Measured with Flask 2.2 / Flask-SQLAlchemy 3.0 and a pool of one.
 *
 * Reported for event streams (`text/event-stream`) and long polls (a `while` loop, or a loop that
 * waits), at the query that begins the held transaction:
 * - in the generator's loop (also through a function of the module it calls), unless the same
 *   iteration ends the transaction after it, unconditionally (`commit()`, `rollback()`,
 *   `close()`, `remove()`: a release after the loop, in a `finally` or on one branch only does
 *   not free the connection while the stream waits);
 * - in the view, unless the view ends the transaction before it returns or the generator does
 *   before its loop; a commit or rollback expires the rows it loaded, so a generator that reads
 *   one of them loads it again and holds a connection from then on.
 * A stream is `Response(...)`/`response_class(...)`/`make_response(...)` of a generator, or the
 * generator returned directly (Flask streams a returned iterator). A `with engine.connect()` (or
 * another acquisition) around the generator's streaming loop holds its connection with or without
 * `stream_with_context`; that is the generic PA402 check, run on these generators too.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { CallInfo, FileModel, FunctionInfo } from '../../../semantic/model.js';
import { callAt, callsOf, isFlaskHandle, variableRefs } from '../../../semantic/model.js';
import { conditionalWithin, insideNestedFunction } from '../../../semantic/controlFlow.js';
import { classifyDbCall, flaskQueryEntity, onSharedSession } from '../query/dbCalls.js';
import { callArgs, unwrap } from '../query/semantics.js';
import { generatorFunction, isLongLivedGenerator } from './semantics.js';

/** Werkzeug's and Flask's response classes, the app's `response_class`, `make_response`. */
const FLASK_RESPONSE = /^(flask(\.wrappers)?|werkzeug(\.wrappers)?(\.response)?)\.Response$|(^|\.)response_class$|^flask\.(helpers\.)?make_response$/;
const WITH_CONTEXT = /(^|\.)stream_with_context$/;
/** Ends the session's transaction (its connection goes back to the pool) or the session itself. */
const RELEASES = /^(commit|rollback|close|remove|expunge_all)$/;
/** Ends the transaction and expires what the session loaded: reading a loaded row again queries. */
const EXPIRES = /^(commit|rollback)$/;
/** Calls that return ORM rows (a read of one of their attributes after an expiring commit queries again). */
const ROW_FETCH = /^(get|first|one|one_or_none|get_or_404|first_or_404|one_or_404|all|scalar_one|scalar_one_or_none)$/;

export interface FlaskStream {
  /** The call that makes the response (`Response(...)`), or the `stream_with_context(...)` returned. */
  response: CallInfo;
  generator: FunctionInfo;
  sse: boolean;
  /** Under `stream_with_context`: the app context, and the request's session, live as long as the stream. */
  withContext: boolean;
}

/** The view's responses that stream a generator of this file, as an event stream or a long poll. */
export function flaskStreams(model: FileModel, view: FunctionInfo, every = false): FlaskStream[] {
  const out: FlaskStream[] = [];
  const seen = new Set<number>();
  const viewSse = /event-stream/.test(view.body?.text ?? '');
  for (const call of model.calls) {
    if (call.functionIndex !== view.index) continue;
    const q = call.qualifiedName ?? call.calleeText;
    const isResponse = FLASK_RESPONSE.test(q);
    // `return stream_with_context(generate()), {"Content-Type": ...}`: Flask streams the iterator.
    const isBareContext = !isResponse && WITH_CONTEXT.test(q) && !insideResponse(model, call);
    if (!isResponse && !isBareContext) continue;
    const { positional, keywords } = callArgs(call.node);
    let content = isBareContext ? call.node : unwrap(keywords.get('response') ?? positional[0] ?? null);
    let withContext = false;
    if (content?.type === 'call' && WITH_CONTEXT.test(callAt(model, content)?.qualifiedName ?? content.childForFieldName('function')?.text ?? '')) {
      withContext = true;
      content = unwrap(callArgs(content).positional[0] ?? null);
    }
    if (content?.type === 'identifier') {
      // `stream = generate(); return Response(stream_with_context(stream))`.
      const name = content.text;
      const a = [...model.assignments].reverse().find((x) => x.functionIndex === view.index && x.target === name && x.line <= call.line);
      content = a?.value ? unwrap(a.value) : null;
    }
    if (content?.type !== 'call') continue;
    let generator = generatorFunction(model, view, content);
    // `Response(dump_to(...))` where `dump_to` reads the first page and then returns its nested
    // generator (`return stream(...)`): the nested generator's body is what streams.
    if (generator && generator.yields.length === 0) generator = returnedNestedGenerator(model, generator);
    if (!generator || generator.yields.length === 0 || seen.has(generator.index)) continue;
    withContext ||= generator.decoratorNames.some((d) => WITH_CONTEXT.test(d));
    const mimetype = keywords.get('mimetype') ?? keywords.get('content_type');
    const sse = /event-stream/.test(mimetype?.text ?? '') || (!mimetype && viewSse);
    if (!every && !sse && !isLongLivedGenerator(model, generator)) continue;
    seen.add(generator.index);
    out.push({ response: call, generator, sse, withContext });
  }
  return out;
}

/**
 * The nested generator function a function returns a call of, when every `return` of it with a
 * value returns a call of that one (`def dump_to(...): ...; return stream_dump(...)`); else null.
 */
function returnedNestedGenerator(model: FileModel, fn: FunctionInfo): FunctionInfo | null {
  if (!fn.body) return null;
  let found: FunctionInfo | null = null;
  for (const r of fn.body.descendantsOfType('return_statement')) {
    if (insideNestedFunction(r, fn.body)) continue;
    const v = unwrap(r.namedChild(0));
    if (!v) continue;
    const callee = v.type === 'call' ? v.childForFieldName('function') : null;
    const gen = callee?.type === 'identifier' ? model.functions.find((f) => f.parent === fn.index && f.name === callee.text && f.yields.length > 0) : undefined;
    if (!gen || (found && found !== gen)) return null;
    found = gen;
  }
  return found;
}

/** Is the call an argument of a response constructor (`Response(stream_with_context(g()))`)? */
function insideResponse(model: FileModel, call: CallInfo): boolean {
  const outer = call.node.parent?.type === 'argument_list' ? call.node.parent.parent : null;
  const c = outer?.type === 'call' ? callAt(model, outer) : undefined;
  return !!c && FLASK_RESPONSE.test(c.qualifiedName ?? c.calleeText);
}

/** Flask-SQLAlchemy 3's loaders on the extension object: each runs its query on `db.session`. */
const EXTENSION_LOADERS = /^(get_or_404|first_or_404|one_or_404|paginate)$/;

/** A query or write through the request's shared session: `db.session`, a scoped session, `Model.query`, `db.get_or_404(...)`. */
function sharedSessionCall(model: FileModel, call: CallInfo): boolean {
  if (!classifyDbCall(model, call)) return false;
  return onSharedSession(model, call) || (!!call.dottedReceiver && flaskQueryEntity(model, call.dottedReceiver, call.functionIndex) !== null)
    || (EXTENSION_LOADERS.test(call.method) && isFlaskHandle(model, call.dottedReceiver));
}

function releaseCall(model: FileModel, call: CallInfo): boolean {
  return RELEASES.test(call.method) && onSharedSession(model, call);
}

/** The shared-session query a call reaches: its own, or one in a function of the module it calls (one level). */
function queryOf(model: FileModel, call: CallInfo): CallInfo | null {
  if (sharedSessionCall(model, call)) return call;
  if (call.hasReceiver || !/^[A-Za-z_]\w*$/.test(call.calleeText)) return null;
  const helper = model.functions.find((f) => f.parent < 0 && !f.className && f.name === call.calleeText && f.yields.length === 0);
  if (!helper) return null;
  return callsOf(model, helper.index).find((c) => c.functionIndex === helper.index && sharedSessionCall(model, c)) ?? null;
}

/**
 * The first query or write on the request's shared session (`db.session`, a project scoped
 * session, `Model.query`) that the generator runs, itself or through a function of its module
 * (one level): the generator's call (`at`) and the query; null when it runs none.
 */
export function generatorSessionUse(model: FileModel, gen: FunctionInfo): { at: CallInfo; query: CallInfo } | null {
  for (const c of model.calls) {
    if (c.functionIndex !== gen.index) continue;
    const q = queryOf(model, c);
    if (q) return { at: c, query: q };
  }
  return null;
}

/** The innermost non-comprehension loop of the call in its function, or null. */
function innermostLoop(model: FileModel, call: CallInfo): number | null {
  for (let i = call.loops.length - 1; i >= 0; i--) if (model.loops[call.loops[i]!]!.kind !== 'comprehension') return call.loops[i]!;
  return null;
}

/** Does `node` run whenever `block` does: inside it, under no branch, handler, nested loop or nested def? */
export function unconditionalIn(node: SyntaxNode, block: SyntaxNode): boolean {
  return node.startIndex >= block.startIndex && node.endIndex <= block.endIndex && !conditionalWithin(node, block) && !insideNestedFunction(node, block);
}

/**
 * Does every round of the loop run a call of function `fnIndex` that `releases` (after `after`,
 * when given): one in the loop's own body, under no branch or handler of it, and before the round
 * waits (a sleep between the round's first use of the handle, `after` or `used`, and the release
 * holds the connection through it)?
 */
export function releasedEachRound(model: FileModel, fnIndex: number, loop: SyntaxNode, releases: (c: CallInfo) => boolean, after?: CallInfo, used?: (c: CallInfo) => boolean): boolean {
  const body = loop.childForFieldName('body');
  if (!body) return false;
  const inBody = (c: CallInfo) => c.functionIndex === fnIndex && c.node.startIndex >= body.startIndex && c.node.endIndex <= body.endIndex;
  // The round's first use of the handle: from there until the release, a wait holds the connection.
  const from = after?.node.endIndex ?? model.calls.filter((c) => inBody(c) && !!used?.(c)).reduce((m, c) => Math.min(m, c.node.startIndex), Infinity);
  const waits = model.calls.filter((c) => inBody(c) && ROUND_WAIT.test(c.calleeText) && c.node.startIndex > (Number.isFinite(from) ? from : body.startIndex));
  return callsOf(model, fnIndex).some((c) => c.functionIndex === fnIndex && (!after || c.node.startIndex > after.node.endIndex) && releases(c) && unconditionalIn(c.node, body)
    && !waits.some((w) => w.node.startIndex < c.node.startIndex));
}

/** What a streaming round waits on: a sleep, an event, a timeout. */
const ROUND_WAIT = /(^|\.)(sleep|wait|wait_for)$/;

/**
 * The shared-session call that leaves a transaction open across the stream, or null:
 * - a query in the generator's streaming loop with no release on every iteration after it;
 * - else a query in the view, unless the view releases after its last one (before it returns)
 *   or the generator releases before its loop — and then, after a commit or rollback, unless
 *   the generator reads a row the view loaded (an expired row loads again).
 */
export function heldSessionCall(model: FileModel, stream: FlaskStream, view: FunctionInfo): CallInfo | null {
  const gen = stream.generator;
  const genCalls = model.calls.filter((c) => c.functionIndex === gen.index);
  for (const c of genCalls) {
    const q = queryOf(model, c);
    if (!q) continue;
    const loop = innermostLoop(model, c);
    if (loop === null) {
      // Before the streaming loop: released only by a release that also comes before it.
      const firstLoop = model.loops.find((l) => l.functionIndex === gen.index && l.kind !== 'comprehension' && l.node.startIndex > c.node.endIndex);
      const released = genCalls.some((r) => r.node.startIndex > c.node.endIndex && releaseCall(model, r) && !!gen.body && unconditionalIn(r.node, gen.body)
        && (!firstLoop || r.node.endIndex <= firstLoop.node.startIndex));
      if (!released) return q;
      continue;
    }
    if (!releasedEachRound(model, gen.index, model.loops[loop]!.node, (r) => releaseCall(model, r), c)) return q;
  }
  const viewCalls = model.calls.filter((c) => c.functionIndex === view.index);
  const queries = viewCalls.filter((c) => sharedSessionCall(model, c));
  if (!queries.length) return null;
  const last = queries[queries.length - 1]!;
  const firstLoop = model.loops.find((l) => l.functionIndex === gen.index && l.kind !== 'comprehension');
  const releases = [
    ...viewCalls.filter((c) => c.node.startIndex > last.node.endIndex && releaseCall(model, c) && view.body && unconditionalIn(c.node, view.body)),
    ...genCalls.filter((c) => releaseCall(model, c) && (!firstLoop || c.node.endIndex <= firstLoop.node.startIndex) && gen.body && unconditionalIn(c.node, gen.body)),
  ];
  if (!releases.length) return queries[0]!;
  // Only commit/rollback expire; close/remove detach the rows (reading an unloaded attribute then raises instead).
  if (!releases.every((r) => EXPIRES.test(r.method))) return null;
  return readsExpiredRow(model, view, gen, queries) ? queries[0]! : null;
}

/** Does the generator read a name the view bound to rows of a shared-session query (`job = Job.query.get(i)`)? */
function readsExpiredRow(model: FileModel, view: FunctionInfo, gen: FunctionInfo, queries: CallInfo[]): boolean {
  if (!gen.body) return false;
  for (const a of model.assignments) {
    if (a.functionIndex !== view.index || !/^[A-Za-z_]\w*$/.test(a.target) || !a.value) continue;
    const v = unwrap(a.value);
    const call = v?.type === 'call' ? callAt(model, v) : undefined;
    if (!call || !ROW_FETCH.test(call.method) || !queries.some((q) => q === call || (q.node.startIndex >= v!.startIndex && q.node.endIndex <= v!.endIndex))) continue;
    if (variableRefs(gen.body, a.target).some((r) => r.parent?.type === 'attribute' && r.parent.childForFieldName('object')?.id === r.id)) return true;
  }
  return false;
}
