/**
 * Facts the transaction-correctness rules share on top of the semantic model: which calls
 * commit or roll back, which write, where a transaction is open (`with x.begin():` bodies and
 * first-write → commit spans), which calls leave the process (network, files), and what the
 * project context says about NOTIFY triggers and their listeners.
 *
 * Everything starts from the model's calls, loops, `with`s and assignments; the few tree reads
 * walk up from a candidate node to its function, never over a whole file.
 *
 * Candidates for the shared layer: `isCommitCall`/`isRollbackCall` (a `commit`/`rollback` fact on
 * calls), `transactionRegions`, `externalCall`, `conditionalWithin`, `modelOfObject`, and the
 * per-subscriber "streaming endpoint" flag, which belongs in the context (see `listenerIsStreaming`).
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { AssignmentInfo, CallInfo, FileModel, LoopInfo } from '../../../semantic/model.js';
import { assignmentsTo, callsOf as fnCalls, isFlaskHandle } from '../../../semantic/model.js';
import { receiverType, typeString } from '../../../semantic/valueTypes.js';
import { conditionalWithin, exclusiveArms } from '../../../semantic/controlFlow.js';
import type { EventSite, ProjectContext } from '../../../discovery/context.js';
import { classifyDbCall, receiverEvidence } from '../query/dbCalls.js';
import { callArgs, lastAssignment, loopTargets, unwrap } from '../query/semantics.js';
import { LIBRARY_READS, LIBRARY_WRITES } from '../../../semantic/repositoryLibrary.js';

export { callArgs, lastAssignment, loopTargets, unwrap, conditionalWithin };

/** Source text of a receiver, whitespace-free: `session`, `self.session`. */
export function receiverKey(call: CallInfo): string | null {
  if (call.dottedReceiver !== null) return call.dottedReceiver;
  const r = call.receiver;
  if (!r || (r.type !== 'identifier' && r.type !== 'attribute')) return null;
  return r.text.replace(/\s+/g, '');
}

const commitCache = new WeakMap<CallInfo, boolean>();

/**
 * A session-like type alias of another module: `db: DbSession`, `session: SessionDep` with
 * `DbSession = Annotated[Session, Depends(get_db)]` defined elsewhere. The file cannot resolve
 * it, and may import no database library at all; the alias's name and the receiver's say enough.
 */
const SESSION_ALIAS = /^@[\w.]+\.\w*(Session|Db|DB)\w*$/;
const SESSION_RECEIVER = /^(?:self\.)?(session|db|db_session|dbsession|sess|async_session|asession|conn|connection|tx)$/;

/** Is the call's receiver a database handle: typed or named like one, or a session alias of another module? */
function isDbHandle(model: FileModel, call: CallInfo): boolean {
  if (receiverEvidence(model, call) !== null) return true;
  const key = receiverKey(call);
  if (!key || !SESSION_RECEIVER.test(key)) return false;
  // A file that works with the project's scoped session (`model.Session.add(...)`) and names a
  // local `session` (`session = context['session']`) commits that session: it imports no
  // database library only because the project's own module wraps it.
  if (usesProjectSession(model)) return true;
  const t = receiverType(model, call);
  return !!t && SESSION_ALIAS.test(t);
}

const projectSessionFiles = new WeakMap<FileModel, boolean>();

/** Does the file call the project's module-level scoped session (`model.Session.query(...)`, `meta.Session.commit()`)? */
function usesProjectSession(model: FileModel): boolean {
  let v = projectSessionFiles.get(model);
  if (v === undefined) {
    v = model.scopedSessions.size > 0 && model.calls.some((c) => {
      const d = c.dottedReceiver;
      return d !== null && model.scopedSessions.has(d.slice(d.lastIndexOf('.') + 1)) && receiverEvidence(model, c) === 'db';
    });
    projectSessionFiles.set(model, v);
  }
  return v;
}

/** `session.commit()`, `conn.commit()` on a database handle (typed, or named like one in a DB file). */
export function isCommitCall(model: FileModel, call: CallInfo): boolean {
  if (call.method !== 'commit' || !call.hasReceiver) return false;
  let v = commitCache.get(call);
  if (v === undefined) {
    v = callArgs(call.node).positional.length === 0 && isDbHandle(model, call);
    commitCache.set(call, v);
  }
  return v;
}

export function isRollbackCall(model: FileModel, call: CallInfo): boolean {
  return call.method === 'rollback' && call.hasReceiver && isDbHandle(model, call);
}

/** `session.close()`, `conn.close()` on a database handle. */
export function isCloseCall(model: FileModel, call: CallInfo): boolean {
  return call.method === 'close' && call.hasReceiver && isDbHandle(model, call);
}

/** A call that writes through a session: an UPDATE/DELETE/INSERT, `add`, `merge`, `delete`, `flush`. */
export function isWriteCall(model: FileModel, call: CallInfo): boolean {
  if (call.method === 'flush') return call.hasReceiver && isDbHandle(model, call);
  const op = classifyDbCall(model, call);
  return op !== null && (op.kind === 'write' || op.kind === 'add');
}

export { callsOf } from '../../../semantic/model.js';

/** Does `inner` lie inside `outer` (byte ranges)? */
export function within(inner: SyntaxNode, outer: SyntaxNode): boolean {
  return inner.startIndex >= outer.startIndex && inner.endIndex <= outer.endIndex;
}

/** The `try` statements between `node` and `stop` whose body (not handlers) holds `node`. */
export function enclosingTries(node: SyntaxNode, stop: SyntaxNode | null): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  let cur: SyntaxNode | null = node.parent;
  let child: SyntaxNode = node;
  while (cur && (!stop || cur.id !== stop.id)) {
    if (cur.type === 'function_definition' || cur.type === 'lambda') break;
    if (cur.type === 'try_statement' && cur.childForFieldName('body')?.id === child.id) out.push(cur);
    child = cur;
    cur = cur.parent;
  }
  return out;
}

export function exceptClauses(tryNode: SyntaxNode): SyntaxNode[] {
  return tryNode.namedChildren.filter((c) => c.type === 'except_clause' || c.type === 'except_group_clause');
}

export function finallyClause(tryNode: SyntaxNode): SyntaxNode | null {
  return tryNode.namedChildren.find((c) => c.type === 'finally_clause') ?? null;
}

/**
 * Where `obj` came from in the function: the iterable of the loop that binds it (`for obj in
 * s.scalars(...)`; with `followName`, through a name bound to it: `rows = ...; for obj in rows`),
 * else (also when that name leads nowhere) the value of its last assignment in the function.
 * Unwrapped; null when neither is known.
 */
export function objectSource(model: FileModel, obj: string, fnIndex: number, line: number, loops: readonly number[], followName = false): { node: SyntaxNode; fromLoop: boolean } | null {
  for (const li of loops) {
    const loop = model.loops[li]!;
    if (!loopTargets(loop).has(obj)) continue;
    let node = unwrap(loop.iterable);
    if (followName && node?.type === 'identifier') node = unwrap(lastAssignment(model, node.text, fnIndex, loop.node.startPosition.row + 1)?.value ?? null);
    if (node) return { node, fromLoop: true };
    break;
  }
  const a = lastAssignment(model, obj, fnIndex, line);
  if (!a?.value || a.functionIndex !== fnIndex) return null;
  const node = unwrap(a.value);
  return node ? { node, fromLoop: false } : null;
}

/** Is a name (re)bound inside the per-iteration part of `loop`? */
export function boundInLoop(model: FileModel, loop: LoopInfo, name: string): boolean {
  if (loopTargets(loop).has(name)) return true;
  return assignmentsTo(model, name).some((a) => a.target === name && a.loops.includes(loop.index));
}

/** A `with` item that opens a session or a transaction: `Session()`, `factory()`, `x.begin()`, `engine.connect()`. */
export function withOpensSession(model: FileModel, value: SyntaxNode, fnIndex: number): boolean {
  const v = unwrap(value);
  if (!v || v.type !== 'call') return false;
  const fn = v.childForFieldName('function');
  const text = fn?.text.replace(/\s+/g, '') ?? '';
  if (/(^|\.)(begin|begin_nested|connect|transaction)$/.test(text)) return true;
  // oslo.db's enginefacade: `with main_context_manager.writer.using(context) as session:`.
  if (/(^|\.)(reader|writer)(\.(allow_async|independent))?\.using$/.test(text)) return true;
  if (/(^|\.)(Session|AsyncSession)$/.test(text) || /session|Session|db|Db|DB/.test(text.split('.').pop() ?? '')) return true;
  const t = typeString(model, v, fnIndex, v.startPosition.row + 1);
  if (t && /sessionmaker|Session|async_sessionmaker/.test(t)) return true;
  // A context manager of this module (`@contextmanager def unit(): s = Maker(); ... yield s`):
  // what it yields lives for the block, and its exit runs before any handler around the `with`.
  // Not one that yields what its caller handed it (`def scoped(session): ... yield session`).
  return /^[A-Za-z_]\w*$/.test(text) && model.functions.some((f) => f.parent < 0 && f.name === text && f.isGenerator
    && f.decoratorNames.some((d) => /(^|\.)(async)?contextmanager$/.test(d))
    && f.yields.length > 0 && f.yields.every((y) => !(y.type === 'identifier' && f.params.some((p) => p.name === y.text))));
}

/** Is `call` inside a `with` (in its function) that opens a session or transaction for its receiver? */
export function inManagingWith(model: FileModel, call: CallInfo): boolean {
  const key = receiverKey(call);
  for (const wi of call.withs) {
    const w = model.withs[wi]!;
    for (const item of w.items) {
      if (!withOpensSession(model, item.value, call.functionIndex)) continue;
      // `with factory() as session:` for this receiver, or `with session.begin():` on it, or a
      // `with engine.begin() as conn`.
      if (item.alias && item.alias === key) return true;
      const v = unwrap(item.value);
      const obj = v?.childForFieldName('function')?.childForFieldName('object');
      if (obj && obj.text.replace(/\s+/g, '') === key) return true;
    }
  }
  return false;
}

// --- where a transaction is open ----------------------------------------------------------

export interface TransactionRegion {
  kind: 'begin' | 'span';
  /** The `with` statement, or the first write. */
  start: SyntaxNode;
  /** The commit that closes a span, or null for a `with ….begin()` block. */
  commit: CallInfo | null;
  /** Byte range of the open part. */
  from: number;
  to: number;
  fnIndex: number;
  /** The session expression (`session`, `self.db`). */
  session: string;
  startLine: number;
  endLine: number;
  /** The block's method when not `begin`: `async with conn.transaction():` (asyncpg, psycopg 3). */
  block?: 'transaction';
}

const regionCache = new WeakMap<FileModel, TransactionRegion[]>();
const spanCache = new WeakMap<FileModel, TransactionRegion[]>();

/**
 * Where a transaction is open, per function: the body of `with/async with <handle>.begin()`, and
 * for each session the span from its first write (`add`, `flush`, an UPDATE, …) to the first
 * commit on the same session after it. A span with no commit in the function is left out: the
 * caller owns that transaction, and its extent is not known here.
 *
 * With `fromFirstStatement`, a span starts at the session's first statement of any kind: a read
 * begins the transaction too (SQLAlchemy's autobegin) and holds its connection until the commit.
 */
export function transactionRegions(model: FileModel, fromFirstStatement = false): TransactionRegion[] {
  const cache = fromFirstStatement ? spanCache : regionCache;
  const cached = cache.get(model);
  if (cached) return cached;
  const out: TransactionRegion[] = [];
  for (const w of model.withs) {
    if (w.functionIndex < 0) continue;
    for (const item of w.items) {
      const v = unwrap(item.value);
      if (v?.type !== 'call') continue;
      const fn = v.childForFieldName('function');
      const method = fn?.type === 'attribute' ? fn.childForFieldName('attribute')?.text : undefined;
      if (method !== 'begin' && method !== 'transaction') continue;
      const obj = fn!.childForFieldName('object')!;
      if (!looksLikeDbHandle(model, obj, w.functionIndex)) continue;
      out.push({
        kind: 'begin', start: w.node, commit: null, from: w.bodyStart, to: w.bodyEnd, fnIndex: w.functionIndex,
        // `async with conn.transaction():` names the connection, whatever it binds.
        session: method === 'transaction' ? obj.text.replace(/\s+/g, '') : item.alias ?? obj.text.replace(/\s+/g, ''),
        startLine: w.node.startPosition.row + 1, endLine: w.node.endPosition.row + 1,
        ...(method === 'transaction' ? { block: 'transaction' as const } : {}),
      });
    }
  }
  const byFn = new Map<number, CallInfo[]>();
  // Repository-library services and repositories (a read begins their session's transaction, an
  // `auto_commit=True` write commits it): only for the spans from the first statement.
  const libs = fromFirstStatement ? libraryReceivers(model) : NO_LIBRARY_RECEIVERS;
  const libCall = (c: CallInfo): 'read' | 'commit' | null => {
    if (!libs.size || !c.hasReceiver) return null;
    const key = receiverKey(c);
    if (!key || !libs.get(c.functionIndex)?.has(key)) return null;
    if (LIBRARY_READS.has(c.method)) return 'read';
    return LIBRARY_WRITES.has(c.method) && autoCommits(c) ? 'commit' : null;
  };
  for (const c of model.calls) {
    if (c.functionIndex < 0) continue;
    if (c.method !== 'commit' && c.method !== 'rollback' && c.method !== 'flush' && !['add', 'add_all', 'merge', 'delete', 'execute', 'exec', 'scalars', 'scalar', 'update'].includes(c.method)
      && !(fromFirstStatement && (classifyDbCall(model, c) || libCall(c)))) continue;
    const list = byFn.get(c.functionIndex);
    if (list) list.push(c);
    else byFn.set(c.functionIndex, [c]);
  }
  for (const [fnIndex, calls] of byFn) {
    const open = new Map<string, CallInfo>();
    for (const c of calls) {
      const key = (fromFirstStatement ? flaskSessionRead(model, c) : null) ?? receiverKey(c);
      if (!key) continue;
      const lib = libCall(c);
      if (isCommitCall(model, c) || lib === 'commit') {
        const first = open.get(key);
        open.delete(key);
        if (!first) continue;
        // A commit in a loop the write is not in closes a different unit each time: skip. A
        // library read before the loop is another matter: its transaction is open until that
        // commit, across whatever the first iteration waits on before it.
        if (c.loops.some((l) => !first.loops.includes(l)) && libCall(first) !== 'read') continue;
        // A library service is one session's while its `with` lasts and its name is not bound again.
        if (libCall(first) === 'read' && (first.withs.some((w) => !c.withs.includes(w)) || reboundBetween(model, fnIndex, key, first, c))) continue;
        out.push({
          kind: 'span', start: first.node, commit: c, from: first.node.endIndex, to: c.node.startIndex, fnIndex,
          session: key, startLine: first.line, endLine: c.line,
        });
      } else if (isRollbackCall(model, c)) {
        open.delete(key);
      } else if (!open.has(key) && (isWriteCall(model, c) || (c.method === 'add_all' && receiverEvidence(model, c)) || (fromFirstStatement && (classifyDbCall(model, c) || lib === 'read')))) {
        open.set(key, c);
      }
    }
  }
  cache.set(model, out);
  return out;
}

/**
 * A lock the function holds around its claim (PA213; PA210 asks where the lock is, see check_then_insert.ts): `with redis.lock("sender", blocking=False):`, `with Lock(...)`,
 * a project's helper named for one (`with job_lock(name):`, `with FileLock(...)`, `if not
 * try_lock(...): return`), `lock.acquire()`, an advisory lock.
 */
export const HELD_LOCK = /\bwith\s+[^\n:]*(?:(?:\b|_)(?:lock|mutex|semaphore)|(?:\b|_|(?<=[a-z]))(?:Lock|Mutex|Semaphore))\w*\s*\(|\.acquire\s*\(|\b\w*(?:try_lock|acquire_lock)\w*\s*\(|pg_(try_)?advisory_(xact_)?lock/;
/**
 * Is the span's transaction open when `call` runs: the span's first statement, or another one on
 * its session before the call, is on the call's path (`if remote: httpx.post(...) else:
 * db.add(n); db.commit()` opens nothing on the path of the request). `begin()` blocks always are.
 */
export function openOnPathTo(model: FileModel, region: TransactionRegion, call: CallInfo): boolean {
  if (region.kind !== 'span') return true;
  const fn = model.functions[region.fnIndex];
  const stop = fn?.body ?? null;
  if (!exclusiveArms(region.start, call.node, stop)) return true;
  return fnCalls(model, region.fnIndex).some((u) => u.node.startIndex > region.start.startIndex && u.node.startIndex < call.node.startIndex
    && receiverKey(u) === region.session && u.method !== 'commit' && u.method !== 'rollback' && !exclusiveArms(u.node, call.node, stop));
}

/**
 * A read through Flask-SQLAlchemy's query property or loaders (`Post.query.get(i)`,
 * `Post.query.filter_by(...).first()`, `db.get_or_404(Post, i)`) runs on the project's
 * `db.session`: its key (`db.session`), when the file has one Flask-SQLAlchemy object; else null.
 */
export function flaskSessionRead(model: FileModel, c: CallInfo): string | null {
  if (model.flaskDbHandles.size !== 1) return null;
  const db = [...model.flaskDbHandles][0]!;
  const key = receiverKey(c);
  if (key && /_or_404$/.test(c.method) && isFlaskHandle(model, key)) return `${key}.session`;
  const op = classifyDbCall(model, c);
  return op?.kind === 'read' && /\.query(\.(get|get_or_404))?$/.test(op.what) ? `${key && isFlaskHandle(model, key) ? key : db}.session` : null;
}

/** Is the head name of `key` assigned between two calls of a function (`links = Service(...)` again)? */
function reboundBetween(model: FileModel, fnIndex: number, key: string, from: CallInfo, to: CallInfo): boolean {
  const head = key.split('.')[0]!;
  return assignmentsTo(model, head).some((a) => a.functionIndex === fnIndex && a.target === head && a.node.startIndex > from.node.startIndex && a.node.startIndex < to.node.startIndex);
}

const NO_LIBRARY_RECEIVERS: ReadonlyMap<number, ReadonlySet<string>> = new Map();
const libraryReceiverCache = new WeakMap<FileModel, Map<number, Set<string>>>();

/** Does a library write pass `auto_commit=` with a value other than `False`? */
function autoCommits(call: CallInfo): boolean {
  const kw = callArgs(call.node).keywords.get('auto_commit');
  return !!kw && kw.text !== 'False';
}

/**
 * Per function, the receivers that are a repository library's service or repository by their
 * own calls: a library write method passed `auto_commit=` (the library's keyword) on the same
 * receiver (`svc.update(..., auto_commit=True)`). The file cannot type a service another module
 * provides (`async with provide(...) as (svc,)`); that keyword says what it is.
 */
function libraryReceivers(model: FileModel): Map<number, Set<string>> {
  let out = libraryReceiverCache.get(model);
  if (out) return out;
  out = new Map();
  if (model.source.includes('auto_commit')) {
    for (const c of model.calls) {
      if (c.functionIndex < 0 || !c.hasReceiver || !LIBRARY_WRITES.has(c.method) || !callArgs(c.node).keywords.has('auto_commit')) continue;
      const key = receiverKey(c);
      if (!key) continue;
      const set = out.get(c.functionIndex);
      if (set) set.add(key);
      else out.set(c.functionIndex, new Set([key]));
    }
  }
  libraryReceiverCache.set(model, out);
  return out;
}

function looksLikeDbHandle(model: FileModel, obj: SyntaxNode, fnIndex: number): boolean {
  const t = typeString(model, obj, fnIndex, obj.startPosition.row + 1);
  if (t && /(sessionmaker|Session|Engine|engine|Connection|create_engine|create_async_engine)\b/.test(t)) return true;
  if (t && /^@?(httpx|aiohttp|requests|redis|asyncio)\b/.test(t)) return false;
  const last = obj.type === 'attribute' ? obj.childForFieldName('attribute')?.text ?? '' : obj.type === 'call' ? (obj.childForFieldName('function')?.text ?? '') : obj.text;
  return /(^|_|\.)(session|sess|db|engine|conn|connection|tx|SessionLocal|Session|session_factory|async_session|sessionmaker)(\(\))?$/i.test(last);
}

/** The regions of a function that hold an offset. */
export function regionsAt(model: FileModel, fnIndex: number, offset: number): TransactionRegion[] {
  return transactionRegions(model).filter((r) => r.fnIndex === fnIndex && offset >= r.from && offset < r.to);
}

export { externalCall, type ExternalCall, type ExternalKind } from '../../../semantic/externalCalls.js';

export const SLEEP_FUNCTIONS = new Set(['time.sleep', 'asyncio.sleep', 'anyio.sleep', 'trio.sleep', 'gevent.sleep']);

// --- what an object is --------------------------------------------------------------------

const SINGLE_ROW = /\.(first|one|one_or_none|scalar_one|scalar_one_or_none|scalar|get)\s*\(\s*\)\s*$/;

/**
 * The ORM model class an object name holds at `line` of function `fnIndex`, as far as syntax
 * tells: a parameter annotated with a model, `session.get(M, …)`, `M(...)`, a single-row
 * `select(M)` / `query(M)` result. Only names in `models` count.
 */
export function modelOfObject(model: FileModel, name: string, fnIndex: number, line: number, models: Set<string>): string | null {
  const fn = fnIndex >= 0 ? model.functions[fnIndex] : undefined;
  const param = fn?.params.find((p) => p.name === name);
  if (param) {
    const ann = param.annotation?.replace(/\s*\|\s*None$/, '').replace(/^Optional\[(.*)\]$/, '$1').split('.').pop() ?? '';
    return models.has(ann) ? ann : null;
  }
  const a = lastAssignment(model, name, fnIndex, line);
  if (!a) return null;
  if (a.annotation) {
    const ann = a.annotation.replace(/\s*\|\s*None$/, '').split('.').pop() ?? '';
    if (models.has(ann)) return ann;
  }
  const v = unwrap(a.value);
  if (!v) return null;
  const text = v.text;
  let m = /\bget(?:_one|_or_404)?\(\s*(?:[\w.]*\.)?([A-Z]\w*)\s*,/.exec(text);
  if (m && models.has(m[1]!)) return m[1]!;
  // Flask-SQLAlchemy 3's loaders over a statement: `db.first_or_404(db.select(Post).filter_by(...))`.
  m = /\b(?:first|one)_or_404\(\s*(?:[\w.]*\.)?select\(\s*(?:[\w.]*\.)?([A-Z]\w*)\s*\)/.exec(text);
  if (m && models.has(m[1]!)) return m[1]!;
  // Flask-SQLAlchemy's query property: `Post.query.get(i)`, `Post.query.filter_by(...).first_or_404()`.
  m = /^(?:[\w.]*\.)?([A-Z]\w*)\.query\b/.exec(text);
  if (m && models.has(m[1]!) && (/^(?:[\w.]*\.)?[A-Z]\w*\.query\.get(?:_or_404)?\(/.test(text) || SINGLE_ROW.test(text) || /\.(first|one)_or_404\(\s*\)\s*$/.test(text))) return m[1]!;
  m = /^(?:[\w.]*\.)?([A-Z]\w*)\s*\(/.exec(text);
  if (m && models.has(m[1]!)) return m[1]!;
  if (SINGLE_ROW.test(text)) {
    m = /\b(?:select|query)\(\s*(?:[\w.]*\.)?([A-Z]\w*)\s*\)/.exec(text);
    if (m && models.has(m[1]!)) return m[1]!;
  }
  return null;
}

// --- NOTIFY triggers and their listeners --------------------------------------------------

export interface NotifyTable {
  table: string;
  triggers: string[];
  channels: string[];
}

const notifyCache = new WeakMap<ProjectContext, { byModel: Map<string, NotifyTable>; }>();

/**
 * Models whose table carries a row trigger on UPDATE that notifies on a literal channel, keyed
 * by model class name.
 */
export function notifyModels(project: ProjectContext): Map<string, NotifyTable> {
  const cached = notifyCache.get(project);
  if (cached) return cached.byModel;
  const byTable = new Map<string, NotifyTable>();
  const key = (t: string) => t.toLowerCase().replace(/^public\./, '').replace(/"/g, '');
  for (const t of project.migrations?.triggers ?? []) {
    if (!t.events.some((e) => e.toUpperCase() === 'UPDATE')) continue;
    const channels = t.channels.filter((c) => c !== 'dynamic');
    if (!channels.length && !t.channels.length) continue;
    const k = key(t.table);
    const entry = byTable.get(k) ?? { table: t.table, triggers: [], channels: [] };
    entry.triggers.push(t.name);
    for (const c of t.channels) if (!entry.channels.includes(c)) entry.channels.push(c);
    byTable.set(k, entry);
  }
  const byModel = new Map<string, NotifyTable>();
  for (const m of project.models ?? []) {
    if (!m.table) continue;
    const entry = byTable.get(key(m.table));
    if (entry) byModel.set(m.name, entry);
  }
  notifyCache.set(project, { byModel });
  return byModel;
}

const STREAMING_PATH = /(^|\/)(api|apis|routes?|routers?|views?|endpoints?|handlers?|web|http|ws|websockets?|sse|streams?|streaming|realtime|live|push|events?|channels|consumers)(\/|\.py$)|(^|\/)[^/]*(stream|sse|websocket|_ws|realtime|events?)[^/]*\.py$/i;
const BACKGROUND_PATH = /(^|\/)(tasks|jobs|workers?|cron|scripts|management|commands)(\/|\.py$)/;

/**
 * Does a subscriber site serve clients over a stream (SSE, WebSocket, long poll)? The context
 * records only the site's file and line, so this reads the path: a listener in the web layer
 * (`api/`, `routes/`, `stream.py`, `ws/`) serves a stream; one under `tasks/` or `workers/` is a
 * background relay. A `streaming` flag on the site, when discovery provides one, wins.
 */
export function listenerIsStreaming(site: EventSite): boolean {
  const flag = (site as EventSite & { streaming?: boolean }).streaming;
  if (typeof flag === 'boolean') return flag;
  if (BACKGROUND_PATH.test(site.file)) return false;
  return STREAMING_PATH.test(site.file);
}

/** Subscriber sites listening on a channel (code and migrations' `LISTEN`). */
export function subscribersOf(project: ProjectContext, channel: string): EventSite[] {
  const subs = project.events?.subscribers ?? [];
  return subs.filter((s) => s.channel === channel);
}

const assignmentsMemo = new WeakMap<FileModel, Map<number, AssignmentInfo[]>>();

/** The file's assignments grouped by function, once per file (a scan per function was quadratic: 4.4 s on a 2M-line tree). */
export function assignmentsByFunction(model: FileModel): Map<number, AssignmentInfo[]> {
  let byFunction = assignmentsMemo.get(model);
  if (!byFunction) {
    byFunction = new Map();
    for (const a of model.assignments) {
      let list = byFunction.get(a.functionIndex);
      if (!list) byFunction.set(a.functionIndex, (list = []));
      list.push(a);
    }
    assignmentsMemo.set(model, byFunction);
  }
  return byFunction;
}
