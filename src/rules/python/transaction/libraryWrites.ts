/**
 * Writes through a repository/service library that flushes but does not commit, and the two
 * places such a write is lost (PA208, repo phase).
 *
 * advanced-alchemy (v1.8.2, read from its source): `SQLAlchemyAsyncRepository` /
 * `SQLAlchemySyncRepository` write methods (`add`, `add_many`, `create`…, `update`, `update_many`,
 * `upsert`, `upsert_many`, `delete`, `delete_many`, `delete_where`) end in
 * `_flush_or_commit(auto_commit)`: `auto_commit=None` falls back to the repository's own
 * `auto_commit`, which defaults to False — `session.flush()`, not `commit()`
 * (repository/_async.py:1781-1785, constructor default at :459). The services
 * (`SQLAlchemyAsyncRepositoryService`, service/_async.py) pass `auto_commit` through, default
 * False as well (:116). So a write is committed only with `auto_commit=True`, an explicit
 * `session.commit()`, or by whoever owns the session:
 * - `config.get_session()` outside a request is `async with session_maker() as session: yield
 *   session` (config/asyncio.py:80-91): nothing commits, closing rolls back;
 *   `Service.new(config=...)` uses it too (service/_async.py:534-569);
 * - in a Litestar request, the plugin's session (`provide_session`) is committed by the
 *   `before_send_handler`: the default one only closes it; `'autocommit'` commits on a 2xx
 *   response and rolls back on any other status (plugins/init/config/asyncio.py:72-127). A
 *   write followed by an HTTP error raised on the same path is rolled back either way.
 *
 * Facts (file phase):
 * - `write_flush_only`: the function writes through such a repository/service without
 *   `auto_commit` (its own body); `auto_commit=True` (or a value) counts as `commit_may`.
 * - `provides_uncommitted_session`: a generator that yields inside `async with
 *   X.get_session()` / `X.new(config=...)` and commits nothing (a standalone-session provider);
 *   `what` lists the parameters that hand it a session instead (`session`, `connection`).
 * - `txn_scope_open` / `txn_scope_call` (site facts): a `with` over a call that may open such a
 *   session, and the calls made in its body.
 * - `txn_raise_after` (site facts): the calls made just before an HTTP error is raised in the
 *   same block.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { Effect } from '../../../analysis/summary.js';
import type { CallInfo, FileModel } from '../../../semantic/model.js';
import { LIBRARY_WRITES, repositoryLibraryClasses } from '../../../semantic/repositoryLibrary.js';
import { classifyDbCall, LIBRARY_CALL } from '../query/dbCalls.js';
import { callArgs, callsOf, enclosingTries, lastAssignment, receiverKey, unwrap } from './semantics.js';

export const FLUSH_ONLY_WRITE = 'write_flush_only';
export const PROVIDES_UNCOMMITTED = 'provides_uncommitted_session';
export const TXN_SCOPE_OPEN = 'txn_scope_open';
export const TXN_SCOPE_CALL = 'txn_scope_call';
export const TXN_RAISE_AFTER = 'txn_raise_after';
/** Site fact: a request handler's write on the request's session (`what` = JSON {@link RequestWriteSite}). */
export const TXN_REQUEST_WRITE = 'txn_request_write';

/** A handler's write whose commit the request scope owns: a library write method on a receiver to type, or a session write on a request session. */
export interface RequestWriteSite {
  lib?: true;
  /** The session's provider (qualified), or `plugin`. */
  provider?: string;
}
/** A generator (a provider) that commits in a `finally`: on errors too. */
export const COMMITS_ALWAYS = 'commit_in_finally';
/** A repository/service built with `auto_commit=True` (`CouponService(session, auto_commit=True)`): `what` is the class name. */
export const CTOR_AUTOCOMMIT = 'lib_ctor_autocommit';

/** The site JSON of `txn_scope_open`. */
export interface ScopeOpen {
  /** `get_session` or `new` for the library's own openers, null for a call to resolve. */
  direct: 'get_session' | 'new' | null;
  opener: string;
  /** Keyword names the call passes. */
  keywords: string[];
  positional: number;
}

/** The site JSON of `txn_scope_call` and `txn_raise_after`. */
export interface ScopeCall {
  /** `[line, column]` of the scope's opener call (scope calls only). */
  opener?: [number, number];
  /** A library write made directly here (`svc.create(...)`, `self.delete_many(...)`), or null. */
  direct: string | null;
  /** A library write method without `auto_commit` on a receiver the repo phase may type as a service of the library. */
  lib?: true;
  /**
   * A write on the request's session made directly here (raise sites only): the handler's
   * parameter, and its provider's qualified name (`Depends(provider)`), or `plugin` for a session
   * Litestar's SQLAlchemy plugin injects.
   */
  session?: { param: string; provider: string; what: string; attr?: true };
  /** Where the write is when it is not the site's call: a changed attribute of a row the call loaded (`[line, column, endLine, endColumn]`). */
  at?: [number, number, number, number];
  /** The raise (raise sites only). */
  exception?: string;
  raiseLine?: number;
}

/** Context managers of the standard library and common tools: never a session provider of the project. */
const NOT_OPENERS = /^(builtins|alembic|contextlib|tempfile|unittest|pytest|zipfile|tarfile|threading|multiprocessing|concurrent|subprocess|socket|ssl|io|shutil|pathlib|os|anyio|trio|structlog|click|typer|redis|aiohttp|boto3|botocore|sqlite3|psycopg|psycopg2|asyncpg|warnings|decimal|codecs|gzip|bz2|lzma|csv|urllib|http|smtplib|ftplib|paramiko|jinja2|PIL|openpyxl|xlsxwriter|celery|kombu|saq|mock|freezegun|responses|respx)\./;
/** Parameters through which a provider is handed an existing session (its lifecycle then the caller's). */
const SESSION_PARAM = /^(db_)?(session|connection|conn|db|db_session)$/;
const WEB_FRAMEWORKS = /^(litestar|starlette|fastapi|werkzeug|django|rest_framework|falcon|sanic|aiohttp\.web|flask)\b/;
const HTTP_ERROR = /^(HTTP\w*(Exception|Error)|\w*(NotAuthorized|PermissionDenied|NotFound|Client|Validation|Forbidden|Unauthorized|BadRequest|Conflict|TooManyRequests|ServiceUnavailable|InternalServer)\w*(Exception|Error))$/;
const RAISE_HINT = /raise\s+[\w.]*(HTTP|NotAuthorized|PermissionDenied|NotFound|Client|Validation|Forbidden|Unauthorized|BadRequest|Conflict|TooManyRequests|ServiceUnavailable|InternalServer)\w*/g;

/** `auto_commit=` of a call: 'off' (absent or False), 'on' (anything else). */
function autoCommit(call: CallInfo): 'off' | 'on' {
  const kw = callArgs(call.node).keywords.get('auto_commit');
  return !kw || kw.text === 'False' ? 'off' : 'on';
}

/** A write through the library: on `self`/`self.repository` in a library class, or on one of `aliases`. */
function libraryWrite(call: CallInfo, inLibraryClass: boolean, aliases: ReadonlySet<string>): boolean {
  if (!LIBRARY_WRITES.has(call.method)) return false;
  const key = receiverKey(call);
  if (!key) return false;
  if (inLibraryClass && (key === 'self' || key === 'self.repository' || key === 'self.repo')) return true;
  return aliases.has(key) && call.method !== 'add';
}

export function collectLibraryWriteEffects(model: FileModel, effects: Effect[][]): void {
  requestWriteSites(model, effects);
  const hinted = /auto_commit|SQLAlchemy(Async|Sync)|get_session|\.new\s*\(|raise\s/.test(model.source);
  if (!hinted && !model.withs.length) return;
  const libClasses = hinted ? repositoryLibraryClasses(model) : new Set<string>();
  const inLib = (fnIndex: number) => {
    const cls = model.functions[fnIndex]?.className;
    return !!cls && libClasses.has(cls);
  };
  // No call passes `auto_commit=` in a file that never writes it (asking each call's arguments cost).
  const flags = model.source.includes('auto_commit');
  for (const call of model.calls) {
    if (flags && call.functionIndex >= 0 && /^[A-Z]\w*$/.test(call.method) && autoCommit(call) === 'on' && callArgs(call.node).keywords.has('auto_commit')) {
      effects[call.functionIndex]!.push({ kind: CTOR_AUTOCOMMIT, what: call.method, line: call.line, column: call.column });
    }
    if (call.functionIndex < 0 || !LIBRARY_WRITES.has(call.method)) continue;
    const at = { line: call.line, column: call.column };
    const hasFlag = flags && callArgs(call.node).keywords.has('auto_commit');
    if (hasFlag && autoCommit(call) === 'on') {
      effects[call.functionIndex]!.push({ kind: 'commit_may', what: call.calleeText, ...at });
    } else if (libraryWrite(call, inLib(call.functionIndex), new Set())) {
      effects[call.functionIndex]!.push({ kind: FLUSH_ONLY_WRITE, what: call.calleeText, ...at });
    }
  }
  model.functions.forEach((fn, fnIndex) => {
    // A provider that commits in `finally` commits whatever the handler did, errors included.
    if (fn.isGenerator && callsOf(model, fnIndex).some((c) => c.method === 'commit' && insideFinally(c.node, fn.node))) {
      effects[fnIndex]!.push({ kind: COMMITS_ALWAYS, what: fn.name, line: fn.startLine, column: 1 });
    }
    if (fn.isGenerator && standaloneProvider(model, fnIndex)) {
      const params = fn.params.map((p) => p.name).filter((n) => SESSION_PARAM.test(n));
      effects[fnIndex]!.push({ kind: PROVIDES_UNCOMMITTED, what: JSON.stringify(params), line: fn.startLine, column: 1 });
    }
  });
  scopeSites(model, effects, inLib);
  if (hinted) raiseSites(model, effects, inLib);
}

/** The library's own session openers: `config.get_session()`, `Service.new(config=...)` without a session. */
function directOpener(call: CallInfo): 'get_session' | 'new' | null {
  if (!call.hasReceiver) return null;
  if (call.method === 'get_session' && call.emptyArgs) return 'get_session';
  if (call.method === 'new') {
    const args = callArgs(call.node);
    if (args.keywords.has('config') && !args.keywords.has('session') && !args.positional.length) return 'new';
  }
  return null;
}

/** A generator yielding inside a `with` over a library opener, with no commit in its body. */
function standaloneProvider(model: FileModel, fnIndex: number): boolean {
  const fn = model.functions[fnIndex]!;
  if (/\.commit\s*\(|auto_commit\s*=\s*(?!False)/.test(fn.node.text)) return false;
  return model.withs.some((w) => w.functionIndex === fnIndex && w.items.some((i) => {
    const v = unwrap(i.value);
    const c = v?.type === 'call' ? callsOf(model, fnIndex).find((x) => x.node.startIndex === v.startIndex && x.node.endIndex === v.endIndex) : undefined;
    return !!c && directOpener(c) !== null;
  }) && fn.yields.some((y) => y.startIndex >= w.bodyStart && y.endIndex <= w.bodyEnd));
}

/** Names a `with` item binds: `as s`, `as (a, b)`. */
function aliasesOf(alias: string | null): string[] {
  if (!alias) return [];
  return alias.replace(/[()[\]\s]/g, '').split(',').filter((n) => /^[A-Za-z_]\w*$/.test(n));
}

function scopeSites(model: FileModel, effects: Effect[][], inLib: (fnIndex: number) => boolean): void {
  for (const w of model.withs) {
    if (w.functionIndex < 0) continue;
    const body = model.source.slice(w.bodyStart, w.bodyEnd);
    // A block that commits (or asks the library to) is not a lost write.
    if (/\.commit\s*\(|auto_commit\s*=\s*(?!False)/.test(body)) continue;
    const calls = callsOf(model, w.functionIndex);
    for (const item of w.items) {
      const v = unwrap(item.value);
      if (v?.type !== 'call') continue;
      const call = calls.find((c) => c.node.startIndex === v.startIndex && c.node.endIndex === v.endIndex);
      if (!call) continue;
      const direct = directOpener(call);
      if (!direct && (!item.alias || (call.qualifiedName && (LIBRARY_CALL.test(call.qualifiedName) || NOT_OPENERS.test(call.qualifiedName))) || /(^|\.)(begin|begin_nested|connect|open|transaction)$/.test(call.calleeText))) continue;
      const aliases = new Set(aliasesOf(item.alias));
      const inner = calls.filter((c) => c.node.startIndex >= w.bodyStart && c.node.endIndex <= w.bodyEnd && !c.offloaded);
      if (!inner.length) continue;
      const args = callArgs(call.node);
      const open: ScopeOpen = { direct, opener: call.calleeText, keywords: [...args.keywords.keys()], positional: args.positional.length };
      const at = { line: call.line, column: call.column };
      effects[w.functionIndex]!.push({ kind: TXN_SCOPE_OPEN, what: JSON.stringify(open), ...at });
      for (const c of inner) {
        const site: ScopeCall = { opener: [call.line, call.column], direct: libraryWrite(c, inLib(c.functionIndex), aliases) && autoCommit(c) === 'off' ? c.calleeText : null };
        if (!site.direct && LIBRARY_WRITES.has(c.method) && c.hasReceiver && autoCommit(c) === 'off') site.lib = true;
        effects[w.functionIndex]!.push({ kind: TXN_SCOPE_CALL, what: JSON.stringify(site), line: c.line, column: c.column });
      }
    }
  }
}

/** Writes in request handlers whose commit the request scope owns (for PA202: what holds the request's transaction open). */
function requestWriteSites(model: FileModel, effects: Effect[][]): void {
  model.functions.forEach((fn, fnIndex) => {
    if (fn.role !== 'handler') return;
    const sessions = requestSessions(model, fnIndex);
    for (const c of callsOf(model, fnIndex)) {
      if (c.offloaded || !c.hasReceiver) continue;
      let site: RequestWriteSite | null = null;
      const key = receiverKey(c);
      const provider = key ? sessions.get(key) : undefined;
      if (provider) site = isSessionWrite(model, c) ? { provider } : null;
      else if (LIBRARY_WRITES.has(c.method) && !callArgs(c.node).keywords.has('auto_commit')) site = { lib: true };
      if (site) effects[fnIndex]!.push({ kind: TXN_REQUEST_WRITE, what: JSON.stringify(site), line: c.line, column: c.column });
    }
  });
}

/**
 * A changed attribute of a row the handler loaded through the request's session, among the
 * statements before an HTTP error (`user.failed_logins += 1` then `raise HTTPException(401)`):
 * recorded at the read that loaded the row, with the write's place.
 */
function attributeWritesBeforeRaise(model: FileModel, fnIndex: number, before: SyntaxNode[], sessions: Map<string, string>, exception: string, raise: SyntaxNode, effects: Effect[][]): void {
  if (!sessions.size) return;
  for (const st of before) {
    const a = st.namedChild(0);
    if (a?.type !== 'assignment' && a?.type !== 'augmented_assignment') continue;
    const left = a.childForFieldName('left');
    const row = left?.type === 'attribute' ? left.childForFieldName('object') : null;
    if (!left || row?.type !== 'identifier' || left.childForFieldName('attribute')?.text.startsWith('_')) continue;
    const bound = lastAssignment(model, row.text, fnIndex, a.startPosition.row + 1);
    const value = unwrap(bound?.value ?? null);
    if (!bound || bound.functionIndex !== fnIndex || !value) continue;
    // The read that loaded the row: the outermost call whose chain reaches a session call.
    const read = callsOf(model, fnIndex).find((c) => c.node.startIndex >= value.startIndex && c.node.endIndex <= value.endIndex
      && sessions.has(receiverKey(c) ?? '') && classifyDbCall(model, c)?.kind === 'read');
    if (!read) continue;
    const key = receiverKey(read)!;
    const s = a.startPosition;
    const e = a.endPosition;
    const site: ScopeCall = {
      direct: null, exception, raiseLine: raise.startPosition.row + 1,
      session: { param: key, provider: sessions.get(key)!, what: a.text.replace(/\s+/g, ' '), attr: true },
      at: [s.row + 1, s.column + 1, e.row + 1, e.column + 1],
    };
    effects[fnIndex]!.push({ kind: TXN_RAISE_AFTER, what: JSON.stringify(site), line: read.line, column: read.column });
  }
}

/** The exception a `raise` names, when it is an HTTP error of a web framework: `NotAuthorizedException`. */
function httpError(model: FileModel, raise: SyntaxNode): string | null {
  let e: SyntaxNode | null = raise.namedChildren[0] ?? null;
  if (e?.type === 'call') e = e.childForFieldName('function') ?? null;
  if (!e || (e.type !== 'identifier' && e.type !== 'attribute')) return null;
  const text = e.text.replace(/\s+/g, '');
  const name = text.split('.').pop()!;
  const head = text.split('.')[0]!;
  const q = model.imports.get(head);
  if (q && WEB_FRAMEWORKS.test(q)) return name;
  return /^HTTP\w*(Exception|Error)$/.test(name) || (HTTP_ERROR.test(name) && !q) ? name : null;
}

function raiseSites(model: FileModel, effects: Effect[][], inLib: (fnIndex: number) => boolean): void {
  const src = model.source;
  RAISE_HINT.lastIndex = 0;
  const seen = new Set<number>();
  for (let m = RAISE_HINT.exec(src); m; m = RAISE_HINT.exec(src)) {
    let raise = model.root.descendantForIndex(m.index, m.index + 5);
    while (raise && raise.type !== 'raise_statement') raise = raise.parent;
    if (!raise || seen.has(raise.startIndex)) continue;
    seen.add(raise.startIndex);
    const block = raise.parent;
    if (block?.type !== 'block') continue;
    const fnIndex = functionAt(model, raise.startIndex);
    if (fnIndex < 0) continue;
    const fn = model.functions[fnIndex]!;
    if (enclosingTries(raise, fn.node).length) continue;
    const exception = httpError(model, raise);
    if (!exception) continue;
    // The simple statements before the raise, back to a commit: they all run, then the raise.
    // A plain `if` of simple statements may run on the way (`if user: user.failures += 1`).
    const before: SyntaxNode[] = [];
    const siblings = block.namedChildren;
    for (let i = siblings.findIndex((s) => s.startIndex === raise!.startIndex) - 1; i >= 0; i--) {
      const s = siblings[i]!;
      if (s.type === 'comment') continue;
      if (/\.commit\s*\(|auto_commit\s*=\s*(?!False)/.test(s.text)) break;
      if (s.type === 'if_statement' && !s.childForFieldName('alternative')) {
        const body = s.childForFieldName('consequence')?.namedChildren.filter((c) => c.type !== 'comment') ?? [];
        if (!body.length || !body.every((c) => c.type === 'expression_statement')) break;
        before.push(...body);
        continue;
      }
      if (s.type !== 'expression_statement') break;
      before.push(s);
    }
    if (!before.length) continue;
    const sessions = requestSessions(model, fnIndex);
    attributeWritesBeforeRaise(model, fnIndex, before, sessions, exception, raise, effects);
    for (const c of callsOf(model, fnIndex)) {
      if (c.offloaded || !before.some((s) => c.node.startIndex >= s.startIndex && c.node.endIndex <= s.endIndex)) continue;
      const site: ScopeCall = { direct: libraryWrite(c, inLib(fnIndex), new Set()) && autoCommit(c) === 'off' ? c.calleeText : null, exception, raiseLine: raise.startPosition.row + 1 };
      if (!site.direct && LIBRARY_WRITES.has(c.method) && c.hasReceiver && autoCommit(c) === 'off') site.lib = true;
      const key = receiverKey(c);
      const provider = key ? sessions.get(key) : undefined;
      if (provider && isSessionWrite(model, c)) site.session = { param: key!, provider, what: c.calleeText };
      effects[fnIndex]!.push({ kind: TXN_RAISE_AFTER, what: JSON.stringify(site), line: c.line, column: c.column });
    }
  }
}

const SESSION_WRITES = new Set(['add', 'add_all', 'delete', 'merge', 'flush']);

/** `session.add(...)`, `session.delete(...)`, an INSERT/UPDATE/DELETE executed on it. */
function isSessionWrite(model: FileModel, call: CallInfo): boolean {
  if (SESSION_WRITES.has(call.method)) return true;
  const op = classifyDbCall(model, call);
  return op !== null && (op.kind === 'write' || (op.kind === 'add' && op.statement !== null));
}

/**
 * A request handler's session parameters whose commit the request scope owns: `db: Session =
 * Depends(get_db)` (→ the provider's qualified name), and in a Litestar app a session parameter
 * with no default (`db_session: AsyncSession`), which its SQLAlchemy plugin injects (→ `plugin`).
 */
function requestSessions(model: FileModel, fnIndex: number): Map<string, string> {
  const out = new Map<string, string>();
  const fn = model.functions[fnIndex]!;
  if (fn.role !== 'handler') return out;
  const litestar = [...model.imports.values()].some((q) => /^litestar\b/.test(q));
  for (const p of fn.params) {
    if (!/(^|\.)(Session|AsyncSession)$/.test(p.annotation ?? '')) continue;
    const m = /^Depends\(\s*([A-Za-z_][\w.]*)\s*\)$/.exec(p.defaultText?.replace(/\s+/g, '') ?? '');
    if (m) {
      const [head, ...rest] = m[1]!.split('.');
      const imported = model.imports.get(head!);
      const q = imported ? [imported, ...rest].join('.') : model.moduleDefs.has(head!) ? `${model.moduleName}.${m[1]}` : null;
      if (q) out.set(p.name, q);
    } else if (litestar && p.defaultText === null) out.set(p.name, 'plugin');
  }
  return out;
}

function insideFinally(node: SyntaxNode, stop: SyntaxNode): boolean {
  for (let n = node.parent; n && n.startIndex >= stop.startIndex && n !== stop; n = n.parent) {
    if (n.type === 'finally_clause') return true;
    if (n.type === 'function_definition') return false;
  }
  return false;
}

/** The innermost function whose body holds an offset. */
function functionAt(model: FileModel, offset: number): number {
  let best = -1;
  for (const fn of model.functions) {
    if (offset >= fn.start && offset < fn.end && (best < 0 || fn.start >= model.functions[best]!.start)) best = fn.index;
  }
  return best;
}
