/**
 * Which calls talk to the database, and how: a read (SELECT), a write (UPDATE / DELETE), a
 * single-row add (`session.add`, `session.merge`, single-row `insert`). Shared by the file
 * rules of the query family and by the effects the repo phase propagates (`query`, `write`),
 * so "this helper queries" means exactly what the file rule would flag in a loop.
 *
 * A call counts when both sides agree:
 * - the receiver is a database handle: typed as a SQLAlchemy/SQLModel session, connection or
 *   engine (sync or async), a DB-API connection/cursor or an asyncpg connection — or, when its
 *   type is unknown or lives in another module, it is named like one (`session`, `db`,
 *   `self.session`, `conn`, `cursor`) in a file that imports a database library;
 * - the arguments have the shape of a query: a `select/update/delete/insert/text` construct (or
 *   a name assigned one), a SQL string, a model class (`session.get(User, id)`), an ORM object.
 * Receivers known to be something else (`asyncio.Queue`, a dict, `aiohttp.ClientSession`,
 * redis) never count.
 */
import { leavesProcess } from '../../../semantic/externalCalls.js';
import type { SyntaxNode } from '../../../parse/parser.js';
import { conditionalWithin, isThrottle } from '../../../semantic/controlFlow.js';
import type { CallInfo, FileModel, LoopInfo } from '../../../semantic/model.js';
import { nameThen } from '../../../semantic/codeText.js';
import { assignmentsInLoop, chainTop, assignmentsTo, augAssignmentsInLoop, callAt, callsInLoop, callsOf, inTreeModule, isFlaskHandle, isNamedLookupCallee, receiverIs, resolveName, selfOffset, usesName } from '../../../semantic/model.js';
import { classOfFunction, fileClasses } from '../../../semantic/classes.js';
import { LIBRARY_BULK_WRITES, LIBRARY_READS, repositoryLibraryClasses } from '../../../semantic/repositoryLibrary.js';
import { formattedString } from '../../../discovery/pythonLiterals.js';
import { flagGuard } from '../../../semantic/guards.js';
import { ONE_ROW, ownModuleLookup, receiverType } from '../../../semantic/valueTypes.js';
import { resolveHandle, type NameLookup } from '../../../semantic/db.js';
import type { Effect } from '../../../analysis/summary.js';
import { argumentDomains, decodeDomain, encodeDomain, nestedLoopDomain, positionalSlot, type LoopDomain, type RowsOracle } from '../../../semantic/loopDomain.js';
import { typePathHead } from '../../../analysis/objects.js';
import { encodePassed, EXECUTES_PARAM, FORWARDS_PARAM, PASSES_STATEMENT, type PassedStatement } from '../../../analysis/statementFlow.js';
import { callArgs, chainCallsDown, invariantIn, lastAssignment, loopTarget, notPerRow, perIterationNames, perItemLoops, perLoop, literalSize, repeatsReads, unwrap } from './semantics.js';
import { isMemoisedCall } from '../../../semantic/memo.js';
import { sqlKind, type SqlKind } from './rawSql.js';

export type DbOpKind = 'read' | 'write' | 'add';

export interface DbOp {
  kind: DbOpKind;
  /** Readable name of the operation, for messages and chains: `session.get(User)`. */
  what: string;
  /** The statement construct when there is one (`select(Item).where(...)`). */
  statement: StatementInfo | null;
  /**
   * A primary-key lookup through the session's identity map (`session.get(M, pk)`,
   * `M.query.get(pk)`, `session.query(M).get(pk)`): no SQL when the row is already in the
   * session, a SELECT otherwise. `Query.first()`, `.one()` and `select(...)` always send one.
   */
  identityMap?: true;
}

export interface StatementInfo {
  kind: SqlKind;
  /** The `select(...)` / `update(...)` / `text(...)` call at the root of the chain, or the SQL string. */
  root: SyntaxNode;
  /** Constructor name: `select`, `update`, `delete`, `insert`, `text`, `sql`, `query`. */
  ctor: string;
  /** Methods chained on the root, in order: `where`, `options`, `order_by`, … */
  chain: string[];
  /** The chained method calls themselves, same order as `chain`. */
  chainCalls: SyntaxNode[];
  /** The single ORM entity selected (`select(Item)` → `Item`), or null (columns, several entities). */
  entity: string | null;
  /** Raw SQL text, when the statement is `text("...")` or a string. */
  sql: string | null;
  /** Uses `.in_(...)` / `any_(...)`: a statement built for a batch of ids. */
  batched: boolean;
}

type Evidence = 'db' | 'named' | null;

const STATEMENT_METHODS = new Set(['execute', 'scalars', 'scalar', 'exec', 'stream', 'stream_scalars', 'exec_driver_sql']);
const RAW_SQL_METHODS = new Set(['execute', 'fetch', 'fetchrow', 'fetchval', 'fetch_all', 'fetch_one', 'fetch_val']);
const GET_METHODS = new Set(['get', 'get_one', 'get_or_404']);
/** Options that make a primary-key lookup go to the database even for a row the session holds. */
const BYPASSES_IDENTITY_MAP = /\b(populate_existing|with_for_update)\b/;
/**
 * Names a database handle goes by: `session`, `db`, and a qualified session (`sa_session`,
 * `read_session`, `tenant_db`) — not an HTTP or cloud client's (`http_session`, `aiohttp_session`,
 * `boto_session`).
 */
const SESSION_NAMES = /^(session|db|db_session|dbsession|sess|async_session|asession|db_sess|conn|connection|cursor|cur|tx)$|^(?!(?:https?|client|web|aiohttp|requests?|api|browser|ws|boto3?|s3|aws|gcp|oauth|cookie|user|login|auth)_)[a-z][a-z0-9]*_(?:session|db)$/;
const DB_LIBRARIES = /^(sqlalchemy|sqlmodel|asyncpg|psycopg|psycopg2|pymysql|sqlite3|aiosqlite|aiomysql)(\.|$)/;
/** Libraries whose objects are never database sessions (HTTP sessions, queues, caches). */
const NOT_DB_HEADS = /^(requests|aiohttp|httpx|urllib3|boto3|botocore|aiobotocore|redis|aioredis|asyncio|queue|collections|builtins|typing|celery|kombu|multiprocessing|threading|concurrent|cachetools|functools|fastapi|starlette|pydantic)(\.|$)/;
const STATEMENT_CTORS: Record<string, SqlKind> = { select: 'read', update: 'write', delete: 'write', insert: 'insert' };
const ASYNC_SQLALCHEMY = /(^|\.)(AsyncSession|async_sessionmaker|AsyncConnection|AsyncEngine|create_async_engine|async_scoped_session)\b|^sqlmodel\.ext\.asyncio/;
/** Repository-style receivers whose class the call graph cannot see (`self.repo`, `user_repo`). */
const REPO_NAME = /(^|_)(repo|repository)$/i;
const REPO_READ = /^(get|get_by_\w+|get_\w+_by_\w+|find\w*|fetch\w*|load\w*|one|first)$/;
/** A method named for what it returns unexecuted: `get_by_owner_statement()`, `get_base_select()` (not `find_by_query()`). */
const BUILDS_STATEMENT = /_(statement|stmt|select|subquery|clause)s?$/;
/** Repository writes that commonly set attributes and stage the row rather than run a statement. */
const STAGING_WRITE = /^(update|save)$/;
const REPO_WRITE = /^(update\w*|delete\w*|remove\w*|save\w*|mark_\w+|set_\w+)$/;

const lookups = new WeakMap<FileModel, NameLookup>();
const fileUsesDb = new WeakMap<FileModel, boolean>();

function importsDbLibrary(model: FileModel): boolean {
  let v = fileUsesDb.get(model);
  if (v === undefined) {
    v = [...model.imports.values()].some((q) => DB_LIBRARIES.test(q));
    fileUsesDb.set(model, v);
  }
  return v;
}

/**
 * `conn=Depends(get_conn)`, `db: Annotated[Any, Depends(get_db)]`: a parameter of the call's
 * function, named like a session or connection, that the framework injects. What the provider
 * yields may be typed nowhere (an asyncpg connection from a pool of another module).
 */
function injectedHandle(model: FileModel, call: CallInfo, name: string): boolean {
  if (call.dottedReceiver !== name || call.functionIndex < 0) return false;
  const p = model.functions[call.functionIndex]!.params.find((x) => x.name === name);
  return !!p && /\bDepends\(/.test(`${p.annotation ?? ''} ${p.defaultText ?? ''}`);
}

/**
 * `with cursor() as cur:` / `async with unit() as session:` (or `with next(get_db()) as db:`) where the context manager is a
 * function of the repo (imported from one of its modules, or defined here), and the alias is
 * named like a session, connection or cursor: the project's own way to lend one.
 */
function projectBlockHandle(model: FileModel, call: CallInfo, name: string): boolean {
  if (call.dottedReceiver !== name || !call.withs.length) return false;
  for (const wi of call.withs) {
    const w = model.withs[wi]!;
    if (w.functionIndex !== call.functionIndex) continue;
    for (const item of w.items) {
      if (item.alias !== name || item.value.type !== 'call') continue;
      // `with next(get_db()) as db:`: the session the project's provider yields.
      const value = nextOfProvider(item.value) ?? item.value;
      const inner = callAt(model, value);
      if (!inner || inner.hasReceiver && inner.qualifiedName === null) continue;
      const q = inner.qualifiedName;
      if (q ? (model.repoModules ? inTreeModule(model.repoModules, q) : q.startsWith(`${model.moduleName}.`)) : model.functions.some((f) => f.parent < 0 && f.name === inner.calleeText)) return true;
    }
  }
  return false;
}

/** The provider call of `next(provider(...))`, or null. */
function nextOfProvider(value: SyntaxNode): SyntaxNode | null {
  if (value.childForFieldName('function')?.text !== 'next') return null;
  const args = value.childForFieldName('arguments')?.namedChildren.filter((a) => a.type !== 'comment') ?? [];
  return args.length === 1 && args[0]!.type === 'call' ? args[0]! : null;
}

const fileImportsModels = new WeakMap<FileModel, boolean>();

/**
 * Does the file import one of the project's mapped classes: a store or service module that is
 * handed its session and imports only the models (`def runs(session, eid): return
 * session.query(SqlRun)...`) works with the database as surely as one that imports SQLAlchemy.
 */
function importsProjectModels(model: FileModel): boolean {
  if (!model.modelModules.size) return false;
  let v = fileImportsModels.get(model);
  if (v === undefined) {
    // By where it comes from: the module that defines the model or a package above it that
    // re-exports it (`app.models`), not a schema of the same name (`app.schemas.Book`).
    v = [...model.imports.values()].some((q) => {
      const dot = q.lastIndexOf('.');
      const from = q.slice(0, dot);
      return dot > 0 && (model.modelModules.get(q.slice(dot + 1)) ?? []).some((m) => m === from || m.startsWith(`${from}.`));
    });
    fileImportsModels.set(model, v);
  }
  return v;
}

/** Last name segment of a call's receiver: `self.session` → `session`; null unless a name or attribute. */
function receiverName(call: CallInfo): string | null {
  const dotted = call.dottedReceiver;
  if (dotted !== null) return dotted.slice(dotted.lastIndexOf('.') + 1);
  const receiver = call.receiver;
  if (receiver?.type === 'identifier') return receiver.text;
  if (receiver?.type === 'attribute') return receiver.childForFieldName('attribute')?.text ?? null;
  // A handle kept in a context dict under its name: `context['connection']`, `ctx["session"]`.
  if (receiver?.type === 'subscript') {
    const key = receiver.childForFieldName('subscript');
    if (key?.type === 'string') return /^[rRuU]?(["'])([A-Za-z_]\w*)\1$/.exec(key.text)?.[2] ?? null;
  }
  return null;
}

/**
 * The DB-API driver a call's receiver is a connection or cursor of (`sqlite3`, `psycopg2`, …),
 * by its type; null when it is not one of those (a SQLAlchemy session, or not known).
 */
export function receiverDriver(model: FileModel, call: CallInfo): string | null {
  if (!call.hasReceiver) return null;
  const t = receiverType(model, call);
  if (!t) return null;
  let lookup = lookups.get(model);
  if (!lookup) lookups.set(model, (lookup = ownModuleLookup(model)));
  const h = resolveHandle(t, lookup);
  return h?.kind === 'handle' && (h.state === 'dbapi' || h.state === 'cursor') ? h.label : null;
}

/** SQLite through the standard library: a file opened in the process, no server, no network round trip. */
export function isSqliteDriver(label: string | null): boolean {
  return label !== null && /^(sqlite3|aiosqlite)\b/.test(label);
}

/** How sure we are that a call's receiver is a database handle. */
export function receiverEvidence(model: FileModel, call: CallInfo): Evidence {
  if (!call.hasReceiver) return null;
  // `object_session(self).execute(...)`, `Session.object_session(row).query(...)`: the session a row belongs to.
  const receiver = call.receiver;
  if (receiver?.type === 'call' && /(^|\.)object_session$/.test(receiver.childForFieldName('function')?.text ?? '')) return 'db';
  const t = receiverType(model, call);
  if (t) {
    let lookup = lookups.get(model);
    if (!lookup) lookups.set(model, (lookup = ownModuleLookup(model)));
    const h = resolveHandle(t, lookup);
    if (h?.kind === 'handle') {
      switch (h.state) {
        case 'session':
        case 'connection':
        case 'engine':
        case 'query':
        case 'dbapi':
        case 'cursor':
          return 'db';
        case 'async':
          if (ASYNC_SQLALCHEMY.test(t) || /^@?asyncpg\b/.test(t) || ASYNC_SQLALCHEMY.test(model.projectHandles.get(/^@?([\w.]+)/.exec(t)?.[1] ?? '') ?? '')) return 'db';
          // An async handle a project helper gives (`async with unit() as session:`): a session
          // by its name, as an untyped one would be.
          break;
        default:
          return null;
      }
    }
    const head = t.replace(/^@|^Depends\(/, '');
    // What `next(gen)` returns is whatever the generator yields (`next(get_db())`: a session),
    // not a builtin's object: the name decides, as for an untyped value.
    if (NOT_DB_HEADS.test(head) && !/^builtins\.next\(\)$/.test(head)) return null;
    if (h === null && !t.includes('.')) return null;
  }
  const name = receiverName(call);
  if (name && SESSION_NAMES.test(name) && (importsDbLibrary(model) || importsProjectModels(model) || injectedHandle(model, call, name) || projectBlockHandle(model, call, name))) return 'named';
  return onSharedSession(model, call) ? 'db' : null;
}

/**
 * Is the call's receiver a session shared by every request of the process: Flask-SQLAlchemy's
 * `db.session` of the project's `SQLAlchemy()` object (imported from anywhere), or a project's
 * module-level `scoped_session(...)` (`Session` in `app/meta.py`) used through a module of the
 * project (`model.Session.query(...)`) or imported by name — a session in every file, which need
 * not import SQLAlchemy itself.
 */
export function onSharedSession(model: FileModel, call: CallInfo): boolean {
  const dotted = call.dottedReceiver;
  if (isFlaskHandle(model, dotted, 'session')) return true;
  const name = receiverName(call);
  return !!name && !!dotted && model.scopedSessions.has(name) && projectScopedSession(model, dotted, name);
}

/** Is `dotted` (ending in `name`) the project's scoped session: reached through a module of this project, or bound here? */
function projectScopedSession(model: FileModel, dotted: string, name: string): boolean {
  const head = dotted.split('.')[0]!;
  const q = model.imports.get(head);
  if (q === undefined) return dotted === name && model.moduleDefs.has(name);
  // The module that defines it, the package that re-exports it, or the name itself from either
  // (also when the tree is scanned from above the package root: `backend.app.meta` for `app.meta`).
  const path = dotted === name ? q.slice(0, -name.length - 1) : q;
  if (path.split('.')[0] === model.moduleName.split('.')[0]) return true;
  return (model.scopedSessions.get(name) ?? []).some((m) => `.${m}.`.includes(`.${path}.`));
}

const MODEL_FIRST_ARG = /\s*(?:[A-Za-z_]\w*\s*\.\s*)*[A-Z][a-z0-9]\w*\s*,/y;

/**
 * Can the argument list at `offset` (just past its `(`) start with a model class and a second
 * argument (`User, id`)? False only when the text rules it out; a comment before the first
 * comma, or an offset not read from the text (-1), leaves it to the tree.
 */
function mayBeModelFirstArg(source: string, offset: number): boolean {
  if (offset < 0) return true;
  MODEL_FIRST_ARG.lastIndex = offset;
  if (MODEL_FIRST_ARG.test(source)) return true;
  const comma = source.indexOf(',', offset);
  const close = source.indexOf(')', offset);
  const stop = Math.min(comma < 0 ? source.length : comma, close < 0 ? source.length : close);
  const head = source.slice(offset, stop);
  return head.includes('#') || head.includes('\\');
}

/** A model class argument: `User`, `models.User`. */
/**
 * The model a statement names: `User`, or `models.User` / `app.models.User` (a module path of
 * lower-case names, then the class). Null for anything else (`User.id`, `func.count()`).
 */
function entityName(node: SyntaxNode): string | null {
  if (node.type === 'identifier') return isModelName(node) ? node.text : null;
  if (node.type !== 'attribute' || !isModelName(node)) return null;
  const obj = node.childForFieldName('object')?.text ?? '';
  return /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$/.test(obj) ? node.childForFieldName('attribute')!.text : null;
}

function isModelName(node: SyntaxNode | undefined): boolean {
  if (!node) return false;
  const last = node.type === 'attribute' ? node.childForFieldName('attribute') : node.type === 'identifier' ? node : null;
  return !!last && /^[A-Z][a-z0-9]\w*$/.test(last.text);
}

function isStringish(node: SyntaxNode): boolean {
  return node.type === 'string' || node.type === 'concatenated_string' || (node.type === 'binary_operator' && /^["'fFrRbB]/.test(node.text));
}

/** The text of a string literal (interpolations kept as written), or null. */
function stringText(node: SyntaxNode): string | null {
  if (node.type === 'string') return node.text.replace(/^[rRbBuUfF]*("""|'''|"|')/, '').replace(/("""|'''|"|')$/, '');
  if (node.type === 'concatenated_string') return node.namedChildren.map((c) => stringText(c) ?? '').join('');
  return null;
}

/**
 * The SQL text an argument holds: a literal, a literal formatted in place (`'''UPDATE {t} ...'''.format(t=...)`,
 * `"... %s" % x`: discovery's `formattedString`, slots it cannot fill left as placeholders), or a
 * name bound to one before `line` in the function. The statement's kind comes from the literal's words.
 */
function sqlTextOf(model: FileModel, expr: SyntaxNode, fnIndex: number, line: number, depth = 0): string | null {
  const node = unwrap(expr);
  if (!node || depth > 3) return null;
  if (node.type === 'string' || node.type === 'concatenated_string') return stringText(node);
  if (node.type === 'call' || node.type === 'binary_operator') return formattedString(node, { model });
  if (node.type === 'identifier' && fnIndex >= 0) {
    const a = lastAssignment(model, node.text, fnIndex, line);
    if (!a?.value) return null;
    if (a.functionIndex === fnIndex) return sqlTextOf(model, a.value, fnIndex, a.line - 1, depth + 1);
    // A module constant bound once to a literal (`DELETE_ITEMS = "DELETE FROM ..."`).
    if (a.functionIndex === -1 && assignmentsTo(model, node.text).length === 1) return stringText(a.value);
  }
  return null;
}

/** Qualified statement constructor of a root call: `sqlalchemy.select` → `select`. */
function statementCtor(model: FileModel, root: SyntaxNode): string | null {
  const call = callAt(model, root);
  const q = call?.qualifiedName;
  // Flask-SQLAlchemy 3 re-exports SQLAlchemy's constructs on the extension: `db.select(User)`.
  const viaFlask = !!call && call.hasReceiver && isFlaskHandle(model, call.dottedReceiver);
  if (!viaFlask && (!q || !DB_LIBRARIES.test(q))) return null;
  const last = viaFlask ? call!.method : q!.slice(q!.lastIndexOf('.') + 1);
  if (last in STATEMENT_CTORS || last === 'text') return last;
  return null;
}

/**
 * What a statement expression is: follows method chains to their root construct and names to
 * their last assignment before `line` (`stmt = select(Job)`; `stmt = stmt.where(...)`).
 */
export function statementInfo(model: FileModel, expr: SyntaxNode | null, fnIndex: number, line: number, depth = 0): StatementInfo | null {
  const node = unwrap(expr);
  if (!node || depth > 6) return null;
  if (node.type === 'string' || node.type === 'concatenated_string') {
    const sql = stringText(node);
    if (sql === null) return null;
    const kind = sqlKind(sql);
    if (kind === 'other') return null;
    return { kind, root: node, ctor: 'sql', chain: [], chainCalls: [], entity: null, sql, batched: /\bANY\s*\(|\bIN\s*\(/i.test(sql) };
  }
  if (node.type === 'identifier') {
    const a = lastAssignment(model, node.text, fnIndex, line);
    if (!a?.value || a.value === expr) return null;
    return statementInfo(model, a.value, a.functionIndex, a.line - 1, depth + 1);
  }
  if (node.type !== 'call') return null;
  // Walk down `a(...).b(...).c(...)` to the root call, collecting the chained methods.
  const chain: string[] = [];
  const chainCalls: SyntaxNode[] = [];
  let cur: SyntaxNode = node;
  for (;;) {
    const fn = cur.childForFieldName('function');
    if (fn?.type !== 'attribute') break;
    const obj = unwrap(fn.childForFieldName('object'));
    if (!obj || (obj.type !== 'call' && obj.type !== 'identifier')) break;
    const method = fn.childForFieldName('attribute')?.text ?? '';
    if (obj.type === 'identifier') {
      // `stmt.where(...)`: a statement held in a name, or a module function (`sa.select(...)`).
      if (statementCtor(model, cur)) break;
      const base = statementInfo(model, obj, fnIndex, line, depth + 1);
      if (!base) return null;
      chain.unshift(method);
      chainCalls.unshift(cur);
      return finishChain(base, chain, chainCalls, node);
    }
    chain.unshift(method);
    chainCalls.unshift(cur);
    cur = obj;
  }
  const ctor = statementCtor(model, cur);
  if (!ctor) return null;
  const args = callArgs(cur).positional;
  let info: StatementInfo;
  if (ctor === 'text') {
    const sql = args[0] ? sqlTextOf(model, args[0], fnIndex, line) : null;
    const kind = sql === null ? 'other' : sqlKind(sql);
    if (kind === 'other') return null;
    info = { kind, root: cur, ctor, chain: [], chainCalls: [], entity: null, sql, batched: !!sql && /\bANY\s*\(|\bIN\s*\(/i.test(sql) };
  } else {
    const entity = ctor === 'select' && args.length === 1 ? entityName(args[0]!) : ctor !== 'select' && args[0] && isModelName(args[0]) ? args[0]!.text : null;
    info = { kind: STATEMENT_CTORS[ctor]!, root: cur, ctor, chain: [], chainCalls: [], entity, sql: null, batched: false };
  }
  return finishChain(info, chain, chainCalls, node);
}

function finishChain(base: StatementInfo, chain: string[], chainCalls: SyntaxNode[], whole: SyntaxNode): StatementInfo {
  const batched = base.batched || /\.in_\s*\(|\bany_\s*\(|\.any_\s*\(/.test(whole.text);
  // `insert(M).values([...])` with a list is a bulk insert, not a single row.
  return { ...base, chain: [...base.chain, ...chain], chainCalls: [...base.chainCalls, ...chainCalls], batched };
}

function opFromStatement(st: StatementInfo, receiverLabel: string, method: string): DbOp | null {
  const label = `${receiverLabel}.${method}(${st.ctor === 'sql' || st.ctor === 'text' ? 'text' : st.ctor}${st.entity ? ` ${st.entity}` : ''})`;
  switch (st.kind) {
    case 'read':
      return { kind: 'read', what: label, statement: st };
    case 'write':
      return { kind: 'write', what: label, statement: st };
    case 'insert':
      if (isBulkInsert(st)) return null;
      return { kind: 'add', what: label, statement: st };
    default:
      return null;
  }
}

/** `insert(M).values([...])`, `insert(M)` executed with a list of parameter dicts. */
function isBulkInsert(st: StatementInfo): boolean {
  if (st.ctor === 'sql') return false;
  const i = st.chain.indexOf('values');
  if (i < 0) return false;
  const first = callArgs(st.chainCalls[i]!).positional[0];
  return !!first && (first.type === 'list' || first.type === 'list_comprehension' || first.type === 'identifier');
}

const fileMayTouchDb = new WeakMap<FileModel, boolean>();

/**
 * Can any call of this file be a database call? Every form the classifier accepts needs one of
 * these words in the file (a DB library, a handle's name or type, a repository, raw SQL); most
 * files of a large tree that do no DB work are passed over without typing a single receiver.
 */
const DB_WORDS = /sql|session|Session|cursor|conn|engine|Engine|repo|Repo|\bdb\b|_db\b|\bdb_|asyncpg|psycopg|SELECT|UPDATE|DELETE|INSERT|\.query\b/;

/** Classifies a call as a database read, write or single-row add; null for anything else. */
/**
 * Is the expression a database read: the call itself or one down its method chain
 * (`db.scalars(select(...)).first()`, `await svc.get_one_or_none(...)`)?
 */
export function readsDatabase(model: FileModel, node: SyntaxNode | null): boolean {
  let v = unwrap(node);
  if (v?.type === 'await') v = unwrap(v.namedChild(0));
  for (let n = v; n?.type === 'call'; n = unwrap(n.childForFieldName('function')?.childForFieldName('object') ?? null)) {
    const c = callAt(model, n);
    if (c && classifyDbCall(model, c)?.kind === 'read') return true;
  }
  return false;
}

export function classifyDbCall(model: FileModel, call: CallInfo): DbOp | null {
  let may = fileMayTouchDb.get(model);
  if (may === undefined) fileMayTouchDb.set(model, (may = DB_WORDS.test(model.source)));
  if (!may) return null;
  const hit = call.memo.dbOp as DbOp | null | undefined;
  if (hit !== undefined) return hit;
  const op = classify(model, call);
  call.memo.dbOp = op;
  return op;
}

/**
 * Flask-SQLAlchemy's query property: `Event.query.filter_by(...)`, `models.Event.query.get(1)`,
 * `cls.query...` in a model's classmethod. Only on the project's model classes (an HTTP request's
 * `request.query` is not one). Returns the model's class name, or null.
 */
export function flaskQueryEntity(model: FileModel, receiver: string, fnIndex: number): string | null {
  const m = /^(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*)\.query$/.exec(receiver);
  if (!m) return null;
  let name = m[1]!;
  if (name === 'cls' || name === 'self') {
    let i = fnIndex;
    while (i >= 0 && !model.functions[i]!.className) i = model.functions[i]!.parent;
    name = i >= 0 ? model.functions[i]!.className! : '';
    // A project's own base of its models (`class Base(db.Model)`, `class Base(flask_sqlalchemy.model.Model)`):
    // `cls.query` in its classmethods is the query property of whichever model it is called on.
    if (name && !model.modelClasses.has(name) && isFlaskModelBase(model, name)) return name;
    // A mixin of a Flask-SQLAlchemy project (`class OwnedMixin:` that models inherit): `cls.query`
    // in its methods is the query property of the model it is mixed into, unless the class
    // defines a `query` of its own.
    if (name && !model.modelClasses.has(name) && flaskMixin(model, name)) return name;
  }
  return model.modelClasses.has(name) ? name : null;
}

/**
 * A class of a Flask-SQLAlchemy project with no base of its own (a mixin) and no `query`
 * attribute, property or method of its own.
 */
function flaskMixin(model: FileModel, className: string): boolean {
  if (!model.flaskDbHandles.size) return false;
  const cls = fileClasses(model).find((c) => c.name === className);
  if (!cls || cls.bases.some((b) => b !== 'object')) return false;
  return !cls.names.has('query') && !model.functions.some((f) => f.className === className && f.name === 'query');
}

/** A project model, or the project's own Flask-SQLAlchemy model base defined in this file. */
export function isModelClassName(model: FileModel, className: string): boolean {
  return model.modelClasses.has(className) || isFlaskModelBase(model, className);
}

/** A class of the file derived directly from Flask-SQLAlchemy's `Model` (`db.Model`, `flask_sqlalchemy.model.Model`). */
function isFlaskModelBase(model: FileModel, className: string): boolean {
  const cls = fileClasses(model).find((c) => c.name === className);
  if (!cls) return false;
  // `db.Model` / `app.ext.db.Model` where `db` is the project's `SQLAlchemy()` object.
  return cls.bases.some((b) => /^flask_sqlalchemy(\.model)?\.Model$/.test(b) || isFlaskHandle(model, b, 'Model'));
}

/**
 * A primary-key lookup served from the identity map: `get(pk)` unless it asks for fresh rows or
 * a lock, or runs on a session the function opened itself (`with Session() as db:`), whose
 * identity map starts empty on every call.
 */
function identityMapGet(model: FileModel, call: CallInfo): boolean {
  return !BYPASSES_IDENTITY_MAP.test(call.node.text) && !openedHere(model, call);
}

function openedHere(model: FileModel, call: CallInfo): boolean {
  const dotted = call.dottedReceiver;
  if (!dotted || dotted.includes('.') || call.functionIndex < 0) return false;
  const a = lastAssignment(model, dotted, call.functionIndex, call.line);
  if (!a || a.functionIndex !== call.functionIndex) return false;
  const value = unwrap(a.value);
  return value?.type === 'call';
}

/** Flask-SQLAlchemy 3's query helpers on the extension object (`db.get_or_404`, …): each runs a query. */
const FLASK_EXTENSION_READS: ReadonlySet<string> = new Set(['get_or_404', 'first_or_404', 'one_or_404', 'paginate']);

/** Query methods that run the query of a dynamic relationship or a query property. */
const RUNS_QUERY = /^(filter|filter_by|order_by|all|first|one|one_or_none|scalar|count|exists|limit|offset|join|options|with_parent|get|paginate)$/;

/**
 * A model method's query on its own row: `type(self).query...`, or `self.items.filter(...)` on
 * a `lazy="dynamic"` relationship of the class (each access builds a query; the call sends it).
 */
function ownRowQuery(model: FileModel, call: CallInfo): DbOp | null {
  const receiver = call.receiver;
  if (!receiver || receiver.type !== 'attribute' || !RUNS_QUERY.test(call.method)) return null;
  const obj = receiver.childForFieldName('object');
  const attr = receiver.childForFieldName('attribute')?.text ?? '';
  const cls = classOfFunction(model, call.functionIndex);
  if (!cls) return null;
  if (attr === 'query' && obj?.type === 'call' && obj.text.replace(/\s+/g, '') === 'type(self)') {
    return model.modelClasses.has(cls) || isFlaskModelBase(model, cls) ? { kind: 'read', what: `${cls}.query`, statement: null } : null;
  }
  if (obj?.type === 'identifier' && obj.text === 'self' && model.dynamicRelations.has(`${cls}.${attr}`)) {
    // `self.items.filter_by(...).update({...})`: the refinement is part of one bulk statement (a
    // write, see `dynamicRelationQuery`), not a read of its own.
    const then = chainedMethods(call.node);
    if (then.some((m) => m === 'update' || m === 'delete')) return null;
    return { kind: 'read', what: `${cls}.${attr} (dynamic)`, statement: null };
  }
  return null;
}

const DYNAMIC_NAMES = new WeakMap<ReadonlySet<string>, Set<string>>();
/** Methods that refine a query and return one. */
const REFINES = new Set(['filter', 'filter_by', 'order_by', 'join', 'outerjoin', 'options', 'with_entities', 'where', 'limit', 'offset', 'distinct']);

/**
 * `row.items.filter(...).update({...})`, or the same refined query held in a name first: a bulk
 * UPDATE/DELETE on a `lazy="dynamic"` relationship (an `AppenderQuery`), named by the relation's
 * attribute (any model's: the row's own type is rarely known). Null when the chain does not start
 * at such an attribute.
 */
function dynamicRelationQuery(model: FileModel, call: CallInfo): string | null {
  return dynamicRelationChain(model, call.receiver, call.functionIndex, call.line);
}

/**
 * The `lazy="dynamic"` relationship attribute an expression's query chain starts at
 * (`row.items.filter(...).order_by(...)`, or a name in the function holding one), or null.
 */
export function dynamicRelationChain(model: FileModel, expr: SyntaxNode | null, fnIndex: number, line: number, refined = false): string | null {
  if (!model.dynamicRelations.size) return null;
  let names = DYNAMIC_NAMES.get(model.dynamicRelations);
  if (!names) DYNAMIC_NAMES.set(model.dynamicRelations, (names = new Set([...model.dynamicRelations].map((r) => r.slice(r.lastIndexOf('.') + 1)))));
  let node = unwrap(expr);
  if (node?.type === 'identifier') {
    const a = lastAssignment(model, node.text, fnIndex, line);
    node = a?.functionIndex === fnIndex ? unwrap(a.value) : null;
  }
  let depth = 0;
  for (; node?.type === 'call' && depth < 8; depth++) {
    const fn = node.childForFieldName('function');
    if (fn?.type !== 'attribute' || !REFINES.has(fn.childForFieldName('attribute')?.text ?? '')) return null;
    node = unwrap(fn.childForFieldName('object'));
  }
  // `refined`: a bare attribute (`self.items`) names a dynamic relationship only by its name,
  // which any object may have; a query method on it says it is one.
  if (node?.type !== 'attribute' || (refined && depth === 0)) return null;
  const attr = node.childForFieldName('attribute')?.text ?? '';
  return names.has(attr) ? attr : null;
}

function classify(model: FileModel, call: CallInfo): DbOp | null {
  const m = call.method;
  const dotted = call.dottedReceiver;
  if (call.functionIndex >= 0 && (model.dynamicRelations.size || model.modelClasses.size) && call.receiver?.type === 'attribute') {
    const own = ownRowQuery(model, call);
    if (own) return own;
  }
  if (dotted !== null && dotted.endsWith('.query') && model.modelClasses.size) {
    const entity = flaskQueryEntity(model, dotted, call.functionIndex);
    if (entity) {
      if (m === 'delete' || m === 'update') return { kind: 'write', what: `${entity}.query.${m}`, statement: null };
      // `Model.query.filter(...).update()/delete()` is the write on the outer call, not a read
      // (as `session.query(M)...update()` below).
      if (endsInBulkWrite(call.node)) return null;
      // `Model.query.get(pk)`, `Model.query.options(...).get(pk)`: Query.get looks in the identity map first.
      const getter = m === 'get' || m === 'get_or_404' ? m : m === 'options' ? pkGetAfter(call.node) : null;
      if (getter && identityMapGet(model, call)) return { kind: 'read', what: `${entity}.query.${getter}`, statement: null, identityMap: true };
      return { kind: 'read', what: `${entity}.query`, statement: null };
    }
  }
  if ((m === 'update' || m === 'delete') && model.dynamicRelations.size && call.functionIndex >= 0) {
    const relation = dynamicRelationQuery(model, call);
    if (relation) return { kind: 'write', what: `${relation}.${m}`, statement: null };
  }
  // Flask-SQLAlchemy 3's loaders on the extension object: `db.get_or_404(User, id)` (a `session.get`),
  // `db.first_or_404(stmt)`, `db.one_or_404(stmt)`, `db.paginate(stmt)`.
  if (FLASK_EXTENSION_READS.has(m) && call.hasReceiver && isFlaskHandle(model, dotted)) {
    const first = callArgs(call.node).positional[0];
    if (!first) return null;
    if (m === 'get_or_404') return isModelName(first) ? { kind: 'read', what: `${dotted}.get_or_404(${first.text})`, statement: null, ...(identityMapGet(model, call) ? { identityMap: true } : {}) } : null;
    return { kind: 'read', what: `${dotted}.${m}`, statement: null };
  }
  // A repository library's inherited reads and bulk writes, on `self` in a subclass.
  if (call.dottedReceiver === 'self' && (LIBRARY_READS.has(m) || LIBRARY_BULK_WRITES.has(m)) && call.functionIndex >= 0) {
    const cls = classOfFunction(model, call.functionIndex);
    if (cls && repositoryLibraryClasses(model).has(cls)) return { kind: LIBRARY_READS.has(m) ? 'read' : 'write', what: `${cls}.${m}`, statement: null };
  }
  const candidate = STATEMENT_METHODS.has(m) || RAW_SQL_METHODS.has(m) || GET_METHODS.has(m) || m === 'query' || m === 'delete'
    || m === 'update' || m === 'add' || m === 'merge' || m === 'refresh' || REPO_READ.test(m) || REPO_WRITE.test(m);
  if (!candidate || !call.hasReceiver) return null;
  const repo = repositoryOp(model, call);
  if (repo !== undefined) return repo;
  // `d.get(key)`, `environ.get("X", "")`: most `get` calls are not `session.get(Model, id)`, and
  // their first argument says so without typing the receiver.
  if (GET_METHODS.has(m) && !mayBeModelFirstArg(model.source, call.argsOffset)) return null;
  // `result.scalars()`, `conn.execute()`: a statement method without a statement is not a query.
  if ((STATEMENT_METHODS.has(m) || RAW_SQL_METHODS.has(m)) && call.emptyArgs) return null;
  // `session.query(M).filter(...).delete()` / `.update({...})`: a bulk statement per call.
  const receiver = (m === 'delete' || m === 'update') && call.dottedReceiver === null ? call.receiver : null;
  if (receiver?.type === 'call' && /^[\w.]+\.query[(.]/.test(receiver.text)) {
    const inner = callAt(model, rootCall(receiver));
    if (inner && inner.method === 'query' && receiverEvidence(model, inner)) {
      return { kind: 'write', what: `Query.${m}`, statement: null };
    }
    // `Event.query.filter(...).delete()`: a bulk statement of Flask-SQLAlchemy's query.
    const entity = inner?.dottedReceiver ? flaskQueryEntity(model, inner.dottedReceiver, inner.functionIndex) : null;
    if (entity) return { kind: 'write', what: `${entity}.query.${m}`, statement: null };
    return null;
  }
  const ev = receiverEvidence(model, call);
  if (!ev) return null;
  const label = receiverName(call) ?? 'session';
  const { positional } = callArgs(call.node);
  const first = positional[0];
  if (STATEMENT_METHODS.has(m) || RAW_SQL_METHODS.has(m)) {
    if (!first) return null;
    const st = statementInfo(model, first, call.functionIndex, call.line);
    if (!st) return null;
    if (st.ctor === 'sql' && m === 'executemany') return null;
    return opFromStatement(st, label, m);
  }
  if (GET_METHODS.has(m)) {
    if (positional.length < 2 || !isModelName(first)) return null;
    const what = `${label}.${m}(${first!.text})`;
    return identityMapGet(model, call) ? { kind: 'read', what, statement: null, identityMap: true } : { kind: 'read', what, statement: null };
  }
  if (m === 'query') {
    // `db.query(M).filter(...).update()/delete()` is the write on the outer call, not a read.
    if (endsInBulkWrite(call.node)) return null;
    const chained = chainedMethods(call.node);
    // `session.query("stock", isbn=i)`: an entity or column, never a string, for SQLAlchemy.
    if (!first || first.type === 'string') return null;
    // A query that only becomes part of another statement (`query(X).filter(...).exists()` inside
    // `query(literal(True)).filter(...)`, `.subquery()`, `.cte()`), directly or through a name
    // used only that way: it runs as part of that statement, which is the read.
    if (chained.some((x) => SUBQUERY_METHODS.has(x)) || onlyEmbedded(model, call) || operandOfComparison(call)) return null;
    const what = `${label}.query(${first.text.length <= 30 ? first.text : '…'})`;
    // `session.query(M).get(pk)` (options first or not): the legacy Query.get, an identity-map lookup.
    const getter = pkGetAfter(call.node);
    if (getter && identityMapGet(model, call)) {
      return { kind: 'read', what: `${what}.${getter}`, statement: null, identityMap: true };
    }
    return { kind: 'read', what, statement: null };
  }
  if (m === 'delete') {
    if (positional.length !== 1 || isStringish(first!) || !deleteAwaitMatches(model, call)) return null;
    return { kind: 'write', what: `${label}.delete`, statement: null };
  }
  if (m === 'add' || m === 'merge') {
    return positional.length === 1 && !isStringish(first!) ? { kind: 'add', what: `${label}.${m}`, statement: null } : null;
  }
  // `session.refresh(obj)`: always a SELECT of the row (it never answers from the identity map).
  if (m === 'refresh') {
    return positional.length >= 1 && !isStringish(first!) && refreshAwaitMatches(model, call) ? { kind: 'read', what: `${label}.refresh`, statement: null } : null;
  }
  return null;
}

/** `AsyncSession.refresh` is awaited, `Session.refresh` is not; a receiver known only by name may be either. */
function refreshAwaitMatches(model: FileModel, call: CallInfo): boolean {
  return deleteAwaitMatches(model, call);
}

/**
 * `AsyncSession.delete` is a coroutine and is awaited; a sync `Session.delete` is not. A mismatch
 * means the receiver is something else. A receiver known only by name may be either.
 */
function deleteAwaitMatches(model: FileModel, call: CallInfo): boolean {
  const t = receiverType(model, call);
  if (t && ASYNC_SQLALCHEMY.test(t)) return call.awaited;
  if (t && /^@?(sqlalchemy\.orm|sqlmodel\.Session)/.test(t)) return !call.awaited;
  return true;
}

/**
 * `get` / `get_or_404` when the methods chained on `call` are only `options(...)` calls and then
 * that one (`q.options(...).get(pk)`): a primary-key lookup of the query. Null otherwise.
 */
function pkGetAfter(call: SyntaxNode): string | null {
  const chained = chainedMethods(call);
  const last = chained[chained.length - 1];
  if (last !== 'get' && last !== 'get_or_404') return null;
  return chained.slice(0, -1).every((x) => x === 'options') ? last : null;
}

/** Methods called on a call's result in a chain: `q(...).filter(...).first()` → `filter`, `first`. */
/** `Query` methods that turn a query into a part of another statement (no round trip of their own). */
const SUBQUERY_METHODS = new Set(['exists', 'subquery', 'scalar_subquery', 'as_scalar', 'cte', 'label']);

/** Column operators that take a query as their operand and embed it (`File.id.in_(session.query(...))`). */
const SUBQUERY_OPERATORS = new Set(['in_', 'notin_', 'not_in', 'any_', 'all_', 'exists']);

/**
 * Is the `session.query(...)` chain the operand of a column operator that embeds it
 * (`Model.id.in_(q)`, `~Model.id.notin_(q)`, `exists(q)`)? It is then a subquery of the statement
 * the expression ends up in, with no round trip of its own.
 */
function operandOfComparison(call: CallInfo): boolean {
  const top = chainTop(call.node);
  const list = top.parent;
  if (list?.type !== 'argument_list') return false;
  const fn = list.parent?.childForFieldName('function');
  const name = fn?.type === 'attribute' ? fn.childForFieldName('attribute')?.text : fn?.type === 'identifier' ? fn.text : undefined;
  return !!name && SUBQUERY_OPERATORS.has(name);
}

/**
 * Is `call` (a `session.query(...)` chain) bound to a local whose every later use in the function
 * turns it into part of another statement (`q.exists()`, `q.subquery()`) or refines it into the
 * same name (`q = q.filter(...)`)? Then that statement runs it, not this call.
 */
function onlyEmbedded(model: FileModel, call: CallInfo): boolean {
  const top = chainTop(call.node);
  const assign = top.parent;
  if (assign?.type !== 'assignment' || assign.childForFieldName('right')?.id !== top.id) return false;
  const name = assign.childForFieldName('left');
  if (name?.type !== 'identifier' || call.functionIndex < 0) return false;
  const body = model.functions[call.functionIndex]!.node;
  const after = model.source.slice(assign.endIndex, body.endIndex);
  let uses = 0;
  for (const m of after.matchAll(new RegExp(`(?<![\\w.])${name.text}\\b(\\s*\\.\\s*(\\w+))?`, 'g'))) {
    const method = m[2];
    // `q = q.filter(...)`: a refinement bound to the name again (not `q.order_by(x).first()`, which runs it).
    if (method && /^(filter|filter_by|join|outerjoin|where|order_by|options|with_entities)$/.test(method)
      && new RegExp(`(^|[\\s;])${name.text}\\s*=\\s*$`).test(after.slice(Math.max(0, m.index! - 80), m.index!))) continue;
    if (!method || !SUBQUERY_METHODS.has(method)) {
      // The left side of `q = ...` is a rebinding, not a use.
      if (!method && /^\s*=[^=]/.test(after.slice(m.index! + m[0].length))) continue;
      return false;
    }
    uses++;
  }
  return uses > 0;
}

/**
 * Does the query chain on `call` end in a bulk `update()`/`delete()` (`q.filter(...).update({...})`)?
 * Only through the Query's own refining methods: `q.filter(...).first().delete()` deletes the row
 * the SELECT found (a model's own method), which is a read first.
 */
function endsInBulkWrite(call: SyntaxNode): boolean {
  for (const m of chainedMethods(call)) {
    if (m === 'update' || m === 'delete') return true;
    if (!QUERY_REFINERS.has(m)) return false;
  }
  return false;
}

const QUERY_REFINERS = new Set([
  'filter', 'filter_by', 'where', 'join', 'outerjoin', 'order_by', 'group_by', 'having', 'distinct', 'options', 'limit', 'offset',
  'with_for_update', 'execution_options', 'params', 'select_from', 'with_entities', 'enable_eagerloads', 'correlate', 'populate_existing',
  'yield_per', 'with_parent', 'reset_joinpoint', 'autoflush', 'with_hint', 'prefix_with', 'suffix_with',
]);

function chainedMethods(call: SyntaxNode): string[] {
  const out: string[] = [];
  let top = call;
  for (;;) {
    const parent = top.parent;
    const grand = parent?.parent;
    if (parent?.type !== 'attribute' || grand?.type !== 'call' || grand.childForFieldName('function')?.id !== parent.id) break;
    out.push(parent.childForFieldName('attribute')?.text ?? '');
    top = grand;
  }
  return out;
}

function rootCall(node: SyntaxNode): SyntaxNode {
  let cur = node;
  for (;;) {
    const fn = cur.childForFieldName('function');
    const obj = fn?.type === 'attribute' ? unwrap(fn.childForFieldName('object')) : null;
    if (obj?.type !== 'call') return cur;
    cur = obj;
  }
}

/**
 * `self.repo.get(id)`, `await user_repo.mark_sent(n)`: a repository object the call graph cannot
 * follow (an instance, not a module). Undefined when the receiver is not repository-like.
 */
function repositoryOp(model: FileModel, call: CallInfo): DbOp | null | undefined {
  const name = receiverName(call);
  if (!name || !REPO_NAME.test(name)) return undefined;
  // A module imported under a repo-like name is followed through the call graph instead.
  if (call.dottedReceiver === name && (model.imports.has(name) || model.moduleDefs.has(name))) return undefined;
  if (!importsDbLibrary(model) && !call.awaited) return undefined;
  // `repo.update(obj, ...)` / `repo.save(obj)` on a repository class of the project's own
  // (`repo = OrderRepository(session)`): such a method often only sets attributes and stages the
  // row, which sends nothing; the call graph follows the call into the method and its body
  // decides. Other writes stay by name (`delete_by_user` may be inherited from a library base
  // the graph cannot follow), and so do reads (their statement is often run by a generic
  // executor, see analysis/statementFlow.ts).
  if (STAGING_WRITE.test(call.method) && projectTyped(model, call)) return undefined;
  if (REPO_READ.test(call.method) && !BUILDS_STATEMENT.test(call.method) && callArgs(call.node).positional.length >= 1) {
    return { kind: 'read', what: `${name}.${call.method}`, statement: null };
  }
  if (REPO_WRITE.test(call.method)) return { kind: 'write', what: `${name}.${call.method}`, statement: null };
  return null;
}

/** Is the call's receiver typed as a class of the tree (its type path starts with one of the tree's modules)? */
function projectTyped(model: FileModel, call: CallInfo): boolean {
  if (!model.repoModules) return false;
  const t = receiverType(model, call);
  return !!t && model.repoModules.has(typePathHead(t));
}

const STATEMENT_WORDS = /\b(?:select|update|delete|text)\s*\(|\b(?:stmt|statement|query|Select|Executable)\b/;
/** A parameter that holds a statement: by its annotation, or by its name. */
const STATEMENT_ANNOTATION = /\b(?:Select|Executable|Update|Delete|ReturningUpdate|ReturningDelete|ClauseElement|TextClause|StatementLambdaElement|Query)\b/;
const STATEMENT_PARAM = /^(?:stmt|statement|query|q|sql|select|sel)$|_(?:stmt|statement|query|select)$/;

/**
 * The statement flow facts of a call that is not itself a database call (see
 * analysis/statementFlow.ts): `session.execute(<parameter>)` runs whatever the caller passes; a
 * statement parameter handed on to another call; statements built here and passed to a call.
 */
function statementFlowFacts(model: FileModel, call: CallInfo, out: Effect[]): void {
  const at = { line: call.line, column: call.column };
  const args = (call.node.childForFieldName('arguments')?.namedChildren ?? []).filter((a) => a.type !== 'comment');
  const fn = model.functions[call.functionIndex]!;
  const isMethod = fn.className !== null;
  const statementParam = (node: SyntaxNode | null): { position: number; name: string } | null => {
    if (node?.type !== 'identifier') return null;
    const p = fn.params.find((x) => x.name === node.text);
    if (!p || p.name === 'self' || p.name === 'cls') return null;
    if (!STATEMENT_PARAM.test(p.name) && !(p.annotation && STATEMENT_ANNOTATION.test(p.annotation))) return null;
    // Rebound before the call: no longer what the caller passed.
    if (lastAssignment(model, p.name, call.functionIndex, call.line)) return null;
    return { position: positionalSlot(fn.node, p.name, isMethod), name: p.name };
  };
  // `await self.session.execute(statement)`: the executor.
  if (STATEMENT_METHODS.has(call.method) && call.hasReceiver) {
    const first = args[0] && args[0].type !== 'keyword_argument' ? args[0] : null;
    const param = statementParam(unwrap(first));
    if (param && receiverEvidence(model, call)) {
      out.push({ kind: EXECUTES_PARAM, what: `${param.position}|${param.name}|${receiverName(call) ?? 'session'}.${call.method}`, ...at });
      return;
    }
  }
  const passed: PassedStatement[] = [];
  let index = 0;
  for (const a of args) {
    if (a.type === 'list_splat' || a.type === 'dictionary_splat') break;
    const keyword = a.type === 'keyword_argument' ? a.childForFieldName('name')?.text ?? null : null;
    const value = unwrap(keyword !== null ? a.childForFieldName('value') : a);
    const position = keyword !== null ? -1 : index++;
    const param = statementParam(value);
    if (param) {
      out.push({ kind: FORWARDS_PARAM, what: `${param.position}|${param.name}>${keyword !== null ? `k:${keyword}` : position}`, ...at });
      continue;
    }
    if (value?.type !== 'call' && value?.type !== 'identifier') continue;
    if (value.type === 'call' && !STATEMENT_CALL.test(value.text)) continue;
    const st = statementInfo(model, value, call.functionIndex, call.line);
    if (!st || st.batched || st.chain.includes('offset') || (st.kind !== 'read' && st.kind !== 'write')) continue;
    const label = `${st.ctor === 'sql' || st.ctor === 'text' ? 'text' : st.ctor}${st.entity ? ` ${st.entity}` : ''}`;
    passed.push({ position, keyword, kind: st.kind === 'read' ? QUERY_EFFECT : WRITE_EFFECT, label });
  }
  // Under a flag of the function (`if load_orders:`), as the statement's own execution would be.
  if (passed.length) out.push(guarded(model, call, { kind: PASSES_STATEMENT, what: encodePassed(passed), ...at }));
}

/** An argument that may be a statement construct: `select(...)`, `sa.update(...)`, `text(...)`, or a chain on one. */
const STATEMENT_CALL = /^(?:[\w.]*\.)?(?:select|update|delete|text)\s*\(/;

/** Session methods that send pending objects to the database (or autoflush before they query). */
const FLUSHING_METHODS = new Set(['flush', 'commit', 'refresh', 'execute', 'scalars', 'scalar', 'get', 'query', 'exec']);
/** Of those, the ones that flush whatever the session's `autoflush` says. */
const ALWAYS_FLUSHING = new Set(['flush', 'commit']);

/**
 * `session.add(obj)` / `session.delete(obj)`: staged in the unit of work, sent at the next flush
 * together with every other pending change of the same mapper (executemany / insertmanyvalues).
 */
export function isStagedWrite(call: CallInfo, op: DbOp): boolean {
  // `session.delete(obj)` stages a row; `query.filter(...).delete()` (no row given) is a statement.
  return !op.statement && (call.method === 'add' || (call.method === 'delete' && passesArguments(call)));
}

/** Does the call pass anything? (`emptyArgs` is known only for calls whose argument list was located in the text.) */
function passesArguments(call: CallInfo): boolean {
  if (call.emptyArgs) return false;
  const args = call.node.childForFieldName('arguments');
  return !!args && args.namedChildren.some((c) => c.type !== 'comment');
}

/** Does the call send what the session has staged: a flush, commit or refresh, a statement, or a query (autoflush)? */
export function isFlushingCall(model: FileModel, call: CallInfo): boolean {
  const op = classifyDbCall(model, call);
  // A query inside `with session.no_autoflush:`, or of a project whose sessions never autoflush, sends nothing staged.
  if (op) return op.kind === 'read' ? !model.autoflushOff && !inNoAutoflush(model, call) : !isStagedWrite(call, op);
  if (model.autoflushOff && !ALWAYS_FLUSHING.has(call.method)) return false;
  return FLUSHING_METHODS.has(call.method) && receiverEvidence(model, call) !== null;
}

/** Is the call inside a `with <session>.no_autoflush:` block of its function (autoflush off there)? */
function inNoAutoflush(model: FileModel, call: CallInfo): boolean {
  return call.withs.some((i) => model.withs[i]!.items.some((item) => /(^|\.)no_autoflush$/.test(item.value?.text.replace(/\s+/g, '') ?? '')));
}

/** Is a staged write followed, in its function, by a call that sends it? (Else the caller's flush batches it.) */
function flushedInFunction(model: FileModel, staged: CallInfo): boolean {
  for (const c of callsOf(model, staged.functionIndex)) {
    if (c.functionIndex !== staged.functionIndex || c === staged) continue;
    if (c.line < staged.line || (c.line === staged.line && c.column <= staged.column)) continue;
    if (isFlushingCall(model, c)) return true;
  }
  return false;
}

/** Library calls that are never same-repo helpers: no loop-call site is recorded for them. */
export const LIBRARY_CALL = /^(builtins|asyncio|logging|json|os|re|math|time|datetime|typing|collections|itertools|functools|sqlalchemy|sqlmodel|pydantic|fastapi|starlette|httpx|requests)\./;

/** A callee resolved without imports: a local function, or a method of the caller's class. */
const LOCAL_HELPER = /^(?:(?:self|cls)\.)?[A-Za-z_]\w*$/;

/**
 * Own effect beside a `WRITE_EFFECT`: the statement commits as it runs. asyncpg runs each statement
 * in a transaction of its own unless it is inside `async with conn.transaction():` — a statement
 * with its `$1` placeholders, outside such a block, leaves nothing open for a later wait to hold.
 */
export const AUTOCOMMITTED_WRITE = 'autocommitted_write';

function autocommittedStatement(model: FileModel, call: CallInfo): boolean {
  if (call.method !== 'execute' && call.method !== 'executemany') return false;
  const first = call.node.childForFieldName('arguments')?.namedChildren.find((a) => a.type !== 'comment');
  if (first?.type !== 'string' || !/\$\d/.test(first.text)) return false;
  return !call.withs.some((wi) => model.withs[wi]!.items.some((i) => /\.transaction\(\s*\)$/.test(i.value.text.replace(/^await\s+/, ''))));
}

/**
 * A method called on a parameter the function declares with a class (`svc: TeamService`,
 * `svc: TeamService = Depends(service)`, `repo: Annotated[Repo, Depends(...)]`): the call graph
 * follows it by the type, so what it passes may decide the callee's loops (a handler's list handed
 * to a service method).
 */
function typedParamReceiver(model: FileModel, call: CallInfo): boolean {
  const r = call.dottedReceiver;
  if (!r || r.includes('.') || call.functionIndex < 0) return false;
  const p = model.functions[call.functionIndex]!.params.find((x) => x.name === r);
  // The class named first (`Shelf`, `"Shelf"`, `Optional[Shelf]`, `Annotated[Shelf, Depends(...)]`, `Shelf | None`).
  const name = /^(?:(?:typing\.)?(?:Annotated|Optional)\[\s*)*["']?([A-Za-z_][\w.]*)/.exec(p?.annotation?.trim() ?? '')?.[1];
  return !!name && treeClass(model, name);
}

/** A class of this module, or of another module of the tree: not a library's (`Session`, `BackgroundTasks`). */
function treeClass(model: FileModel, name: string): boolean {
  if (!name.includes('.') && fileClasses(model).some((c) => c.name === name)) return true;
  const q = resolveName(model, name);
  return !!q && !!model.repoModules && inTreeModule(model.repoModules, q);
}
/**
 * A method called on an object of the tree made on the spot or bound once in the function: an
 * instance of a class of the tree (`TeamService(db).invite(...)`, `svc = TeamService(db)` then
 * `svc.invite(...)`), or what a function of the tree returns (`card = one_card(code)` then
 * `card.set_labels(...)`).
 */
function constructedReceiver(model: FileModel, call: CallInfo): boolean {
  let r = call.receiver;
  if (!r || call.functionIndex < 0) return false;
  if (r.type === 'identifier') {
    const bound = assignmentsTo(model, r.text).filter((a) => a.functionIndex === call.functionIndex);
    r = bound.length === 1 && bound[0]!.line <= call.line ? bound[0]!.value : null;
  }
  if (r?.type === 'await') r = r.namedChild(0);
  if (r?.type !== 'call') return false;
  const name = r.childForFieldName('function')?.text.replace(/\s+/g, '') ?? '';
  if (/^(?:[A-Za-z_]\w*\.)*[A-Z]\w*$/.test(name) && treeClass(model, name)) return true;
  // A function this file defines or imports from the tree, whose return annotation the call graph follows.
  const fn = callAt(model, r);
  return !!fn && !fn.hasReceiver && (fn.qualifiedName === null ? LOCAL_HELPER.test(fn.calleeText) : !!model.repoModules && inTreeModule(model.repoModules, fn.qualifiedName));
}
/** A callee the repo phase may resolve: a plain or dotted name. */
const MAY_BE_HELPER = /^[A-Za-z_][\w.]*$/;
/** Methods of builtin containers, strings and loggers: never a project helper worth a site. */
const NOT_A_HELPER = /^(append|extend|insert|add|update|pop|setdefault|items|keys|values|copy|format|join|split|strip|lower|upper|replace|startswith|endswith|encode|decode|debug|info|warning|warn|error|exception|critical|isoformat|strftime)$/;

/** Effect kinds produced here. `loop_call` is a site fact: a per-item call in a loop, for the repo phase. */
export const QUERY_EFFECT = 'query';
/**
 * A primary-key lookup through the identity map (`DbOp.identityMap`): a SELECT only for a row
 * the session does not hold yet. Kept apart from `query` so that a function that also runs a
 * real query reaches that one.
 */
export const PK_QUERY_EFFECT = 'pk_query';
export const WRITE_EFFECT = 'write';
export const LOOP_CALL = 'loop_call';
/** Site fact: a call in a data loop that reads nothing the loop changes (`what` = the loop's position), for the repo phase. */
export const INVARIANT_CALL = 'invariant_call';
/**
 * `session.refresh(obj)` after the function's own flush or commit (see {@link isWriteReload}): not a
 * read to batch, but a SELECT all the same, which begins a new transaction after a commit.
 */
export const RELOAD_EFFECT = 'reload';
/** The function sends the unit of work itself: an explicit `flush()` or `commit()` on a session. */
export const FLUSH_EFFECT = 'flushes';
/** Site fact: the function loads a model by one of its parameters (`what` = `position:name:Model`). */
export const RELOADS_PARAM = 'reloads_param';
/**
 * Site fact: a call passes rows or request input positionally (`what` = one character per
 * positional argument, see `argumentDomains`): decides a callee's loop over that parameter.
 */
export const ARG_DOMAINS = 'arg_domains';
/** Site fact: a call passes `obj.id` of an entity loaded earlier in the function (`what` = JSON {@link PassedId}). */
/**
 * Site fact: a row's id handed back to the service or repository object that loaded it
 * (`svc.update(data, item_id=row.id)`, see redundant_fetch.ts). PA101 reports it in a project
 * that declares the library, so PA107's per-item library calls leave it alone.
 */
export const HELD_ID_LOOKUP = 'held_id_lookup';
/** A call that leaves the process (see `leavesProcess`): an iteration that makes one per item is a workflow that call dominates. */
export const OUTSIDE_CALL = 'outside_call';
export const PASSES_LOADED_ID = 'passes_loaded_id';

export interface PassedId {
  /** Positional index among the call's arguments, or the keyword name. */
  arg: number | string;
  variable: string;
  /** The model of a load decided in the file, or '' when the load is a call the repo phase follows. */
  model: string;
  /** Line and column of the loading call. */
  source: [number, number];
}

/**
 * `db.scalars(stmt)` where the function bound `stmt` to a statement that locks or refreshes the
 * row (`select(...).with_for_update()`, `.execution_options(populate_existing=True)`).
 */
function lockedStatement(model: FileModel, call: CallInfo): boolean {
  const first = unwrap(callArgs(call.node).positional[0] ?? null);
  if (first?.type !== 'identifier' || call.functionIndex < 0) return false;
  const a = lastAssignment(model, first.text, call.functionIndex, call.line);
  return !!a?.value && /with_for_update|populate_existing/.test(a.value.text);
}

/**
 * Effects for the repo phase: `query` / `write` for every DB read / write a function makes
 * (batched `in_` statements and pagination left out: in a loop they are the fix, not the bug),
 * and a `loop_call` site for every per-item call inside a loop that is not itself a DB call
 * (`what` holds the literal iterable size when every loop around it is a small literal).
 */
export function collectQueryEffects(model: FileModel): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return effects;
  // A call can only pass `obj.id` in a file whose text has one.
  const mayPassIds = model.source.includes('.id');
  // A statement can only be built or handed on in a file that names one.
  const mayPassStatements = STATEMENT_WORDS.test(model.source);
  for (const call of model.calls) {
    // `get_handler('x')` of `get_handler('x')(ctx, row)`: its site facts would be read as the outer call's.
    if (call.functionIndex < 0 || isNamedLookupCallee(model, call)) continue;
    const at = { line: call.line, column: call.column };
    const op = classifyDbCall(model, call);
    if (!op) {
      const out = leavesProcess(model, call);
      if (out) effects[call.functionIndex]!.push({ kind: OUTSIDE_CALL, what: out, ...at });
    }
    const reload = op?.kind === 'read' ? reloadedParam(model, call, op) : null;
    // `:pk` when the reload is a primary-key lookup through the identity map (`session.get`);
    // `:lock` when it reads the row again on purpose (`with_for_update()` locks it,
    // `populate_existing()` refreshes it): the row the caller holds cannot stand in for it.
    if (reload) {
      const purpose = /with_for_update|populate_existing/.test(chainTop(call.node).text) || lockedStatement(model, call) ? ':lock' : op!.identityMap ? ':pk' : '';
      effects[call.functionIndex]!.push({ kind: RELOADS_PARAM, what: `${reload}${purpose}`, ...at });
    }
    const passed = mayPassIds ? passedLoadedId(model, call) : null;
    if (passed) effects[call.functionIndex]!.push({ kind: PASSES_LOADED_ID, what: JSON.stringify(passed), ...at });
    if (op) {
      if (op.statement?.batched || op.statement?.chain.includes('offset')) continue;
      // A query that fills a cache runs once (per key), not once per call of its function.
      if (isMemoisedCall(model, call)) continue;
      if (op.kind === 'read') {
        if (!isWriteReload(model, call, op)) effects[call.functionIndex]!.push(guarded(model, call, { kind: op.identityMap ? PK_QUERY_EFFECT : QUERY_EFFECT, what: op.what, ...at }));
        else effects[call.functionIndex]!.push(guarded(model, call, { kind: RELOAD_EFFECT, what: op.what, ...at }));
      }
      // A staged delete is a round trip of this function's only when the function also flushes it.
      else if (op.kind === 'write' && (!isStagedWrite(call, op) || flushedInFunction(model, call))) {
        effects[call.functionIndex]!.push(guarded(model, call, { kind: WRITE_EFFECT, what: op.what, ...at }));
        if (autocommittedStatement(model, call)) effects[call.functionIndex]!.push({ kind: AUTOCOMMITTED_WRITE, what: op.what, ...at });
      }
      continue;
    }
    if (isExplicitFlush(model, call) && !isMemoisedCall(model, call)) {
      effects[call.functionIndex]!.push(guarded(model, call, { kind: FLUSH_EFFECT, what: call.calleeText, ...at }));
    }
    if (mayPassStatements && !call.emptyArgs && !isMemoisedCall(model, call)) statementFlowFacts(model, call, effects[call.functionIndex]!);
    if (call.qualifiedName && LIBRARY_CALL.test(call.qualifiedName)) continue;
    // Only calls the call graph can follow by name (an import, `self.m()`, a local def): an edge
    // through an untyped receiver is no caller evidence, and argument facts cost a lookup per name.
    // Not into a module outside the tree: what such a call passes decides no loop of the repo's.
    if (!call.emptyArgs && (call.qualifiedName !== null || LOCAL_HELPER.test(call.calleeText) || typedParamReceiver(model, call) || constructedReceiver(model, call)) && !NOT_A_HELPER.test(call.method ?? '') && (call.qualifiedName === null || !model.repoModules || inTreeModule(model.repoModules, call.qualifiedName))) {
      const domains = argumentDomains(model, call, call.functionIndex, call.line, rowsOracle(model));
      if (domains) effects[call.functionIndex]!.push({ kind: ARG_DOMAINS, what: domains, ...at });
    }
    if (!call.loops.length) continue;
    const invariantLoop = MAY_BE_HELPER.test(call.calleeText) && !NOT_A_HELPER.test(call.method ?? '') ? invariantRead(model, call) : null;
    if (invariantLoop) {
      effects[call.functionIndex]!.push({ kind: INVARIANT_CALL, what: `${invariantLoop.node.startPosition.row + 1}:${invariantLoop.node.startPosition.column}|${encodeDomain(loopsDomain(model, [invariantLoop]))}`, ...at });
      continue;
    }
    // `f()`: no argument can change per item; known from the text without the tree.
    if (call.emptyArgs) continue;
    const args = call.node.childForFieldName('arguments');
    if (!args || args.namedChildCount === 0) continue;
    const loops = perItemLoops(model, call.loops, args);
    if (!loops) continue;
    // Followed by a way out of the loop: a search for what the callee reads, but still one write
    // per item for what it writes, unless the loop surely ends after it.
    const stopsEarly = notPerRow(model, call, loops);
    if (stopsEarly && notPerRow(model, call, loops, true)) continue;
    effects[call.functionIndex]!.push({ kind: LOOP_CALL, what: loopCallWhat(model, call, loops, stopsEarly), ...at });
  }
  return effects;
}

/** The effect with the flag guard its call runs under (`if allow_email:`), when there is one. */
function guarded(model: FileModel, call: CallInfo, effect: Effect): Effect {
  const guard = flagGuard(model, call.node, call.functionIndex);
  return guard ? { ...effect, guard } : effect;
}

/**
 * A loop call site's facts, for the repo phase: the literal iteration count (or ''), the
 * innermost loop's position (sites of one loop are siblings), and `w` when that loop's iteration
 * writes on its own (a statement, a flush, a commit).
 */
export interface LoopCallFacts {
  size: number | null;
  loop: string;
  writes: boolean;
  /** The iteration commits itself, or runs in a transaction or session of its own (`iterationCommit`). */
  commits: boolean;
  /** The call passes a foreign key of the loop's item (`job.owner_id`): see {@link passesItemForeignKey}. */
  foreignKey: boolean;
  /** The loop is over a request's input and its function read the database before it (`readsBeforeLoop`). */
  readBefore: boolean;
  /**
   * A way out of the loop follows the call, not surely taken after it (a quota, an error budget):
   * what the callee reads is a search, what it writes is still one statement per item.
   */
  stopsEarly: boolean;
  /** The iteration sets an attribute of an object (`cert.rotation = True`): a commit in it keeps that. */
  stages: boolean;
  /** How the loops' N grows (semantic/loopDomain.ts); a `call` domain is for the repo phase to resolve. */
  domain: LoopDomain;
  /** Positions of the positional arguments that are the loop's item itself. */
  items: number[];
}

function loopCallWhat(model: FileModel, call: CallInfo, loops: LoopInfo[], stopsEarly = false): string {
  const loop = loops[loops.length - 1]!;
  const size = smallLiteralProduct(loops);
  const writes = iterationWriter(model, call, loop) !== null;
  const commits = iterationCommit(model, call, loop) !== null;
  // By each item's foreign key, unless the loop's query eager-loads that relationship: then the
  // identity map holds the targets and the lookup is the primary-key kind.
  const fk = passesItemForeignKey(model, call, loops) && !foreignKeyTargetLoaded(model, call, loops);
  const domain = loopsDomain(model, loops);
  // Only asked of loops over a request's input (see `LoopCallFacts.readBefore`).
  const before = domain.kind === 'input' && readsBeforeLoop(model, call.functionIndex, loops[0]!);
  const stages = assignmentsInLoop(model, loop.index).some((a) => a.functionIndex === call.functionIndex && /^(?!self\.\w+$)\w+(\.\w+)+$/.test(a.target))
    || augAssignmentsInLoop(model, loop.index).some((a) => a.functionIndex === call.functionIndex && /^(?!self\.\w+$)\w+(\.\w+)+$/.test(a.target));
  return `${size ?? ''}|${loop.node.startPosition.row + 1}:${loop.node.startPosition.column}|${commits ? 'c' : writes ? 'w' : ''}|${fk ? 'k' : ''}${before ? 'r' : ''}${stopsEarly ? 'b' : ''}${stages ? 's' : ''}|${encodeDomain(domain)}|${itemArguments(model, call, loops).join('.')}`;
}

/**
 * Does function `fnIndex` read the database itself (a query, batched `in_(...)` loads included)
 * before `loop` starts? Then rows may already sit in the session's identity map.
 */
export function readsBeforeLoop(model: FileModel, fnIndex: number, loop: LoopInfo): boolean {
  const start = loop.node.startIndex;
  return callsOf(model, fnIndex).some((c) => c.functionIndex === fnIndex && c.node.startIndex < start && classifyDbCall(model, c)?.kind === 'read');
}

/**
 * `session.get(User, p.author_id)` in a loop over rows whose query eager-loads `author`
 * (`joinedload(Post.author)`, `selectinload`, `lazy="joined"` aside): the related rows came with
 * the loop's rows, so each lookup finds its row in the identity map.
 */
export function foreignKeyTargetLoaded(model: FileModel, call: CallInfo, loops: LoopInfo[]): boolean {
  const args = call.node.childForFieldName('arguments')?.text ?? '';
  for (const loop of loops) {
    const t = loopTarget(loop);
    if (!t) continue;
    const m = new RegExp(`(?<![\\w.])${t.name}\\s*\\.\\s*(\\w+)_id\\b`).exec(args);
    if (!m) continue;
    const rows = rowsSource(model, t.iterable, loop.functionIndex, loop.node.startPosition.row + 1);
    // An eager loader on the rows' own relationship (`joinedload(Post.author)`), not one deeper
    // in a chain (`selectinload(Post.items).joinedload(Item.author)`), nor `noload`/`raiseload`.
    const entity = rows?.entity?.replace(/^.*\./, '');
    if (rows && entity && new RegExp(`\\b(selectinload|joinedload|subqueryload|immediateload|contains_eager)\\(\\s*(?:[\\w.]*\\.)?${entity}\\.${m[1]!}\\b`).test(rows.text)) return true;
  }
  return false;
}

/**
 * Did the function, before the loops, load rows of the entity a primary-key lookup asks for and
 * keep them in a name (`authors = (await s.scalars(select(User).where(User.id.in_(ids)))).all()`,
 * `users = list(db.scalars(select(User)))`, `User.query.all()`)? A local name holds its rows until
 * it is bound again or the function returns, so the identity map answers the lookups it covers:
 * the prefetch that fixes an N+1 by foreign key, then `session.get(User, post.author_id)` per row.
 */
export function lookupTargetHeld(model: FileModel, call: CallInfo, loops: LoopInfo[]): boolean {
  const first = callArgs(call.node).positional[0];
  const entity = call.method === 'get' && first && /^[A-Z]\w*$/.test(entityName(first) ?? '') ? entityName(first)
    : /^([A-Z]\w*)\.query\.get(_or_404)?$/.exec(call.calleeText)?.[1] ?? null;
  const outer = loops[0];
  // A lookup that must read the row (`with_for_update`, `populate_existing`) is a SELECT whatever is held.
  if (!entity || !outer || /with_for_update|populate_existing/.test(call.node.text)) return false;
  const start = outer.node.startIndex;
  const body = model.functions[call.functionIndex]?.body;
  return model.assignments.some((a) => {
    if (a.functionIndex !== call.functionIndex || a.node.endIndex > start || !a.value || !/^[A-Za-z_]\w*$/.test(a.target)) return false;
    // Bound in a loop of its own (`for b in books: rows = ....all()`): it holds the last round's rows only.
    if (!a.loops.every((l) => call.loops.includes(l))) return false;
    // Bound on every path to the loop (not only under an `if` the loop is not in).
    const cond = body ? conditionalWithin(a.node, body) : null;
    if (cond && !(outer.node.startIndex >= cond.startIndex && outer.node.endIndex <= cond.endIndex)) return false;
    // Rows materialised into the name, not a result left to iterate (it loads nothing until then).
    const v = unwrap(a.value);
    const text = v?.text ?? '';
    if (!/\.(all|fetchall)\(\s*\)\s*$/.test(text) && !/^(list|tuple)\(/.test(text)) return false;
    // Bound again, deleted or dropped from the session between it and the loop: another story.
    if (model.assignments.some((b) => b !== a && b.functionIndex === a.functionIndex && b.target === a.target && b.node.startIndex > a.node.endIndex && b.node.startIndex < start)) return false;
    // ... or expired (a commit, `expire_all()`): then each lookup reloads its row.
    if (new RegExp(`\\b(expunge(_all)?|expire(_all)?|commit|rollback)\\s*\\(|\\bdel\\s+${a.target}\\b`).test(model.source.slice(a.node.endIndex, start))) return false;
    const rows = rowsSource(model, /^(list|tuple)\(/.test(text) ? callArgs(v!).positional[0] ?? null : a.value, a.functionIndex, a.line);
    if (rows?.op.kind !== 'read' || rows.entity?.replace(/^.*\./, '') !== entity) return false;
    // On the session the lookups use, and covering them: every row of the entity, or the ones
    // asked for by a list of keys (`.in_(ids)`), not a filtered subset or one row.
    if ((rows.call.dottedReceiver ?? '') !== (call.dottedReceiver ?? '')) return false;
    if (!/\b(where|filter|filter_by|limit|first|one|one_or_none)\s*\(/.test(rows.text)) return true;
    // Keys taken from the rows the loop walks (`.in_({b.author_id for b in books})`), and no other condition.
    const keys = /\.in_\(([^()]*(?:\([^()]*\)[^()]*)*)\)/.exec(rows.text)?.[1] ?? '';
    const walked = outer.iterable?.text ?? '';
    const conditions = rows.text.match(/==|!=|<=|>=|\.is_\(|\.isnot\(|\.like\(|\.ilike\(|\.in_\(|\band_\(|\bor_\(|\blimit\(/g) ?? [];
    return !!keys && /^[A-Za-z_][\w.]*$/.test(walked) && new RegExp(`\\b${walked.replace(/\./g, '\\.')}\\b`).test(keys) && conditions.length === 1;
  });
}

/** The positions of the call's positional arguments that are the loop's item (a name the loops bind per iteration). */
function itemArguments(model: FileModel, call: CallInfo, loops: LoopInfo[]): number[] {
  const out: number[] = [];
  callArgs(call.node).positional.forEach((arg, i) => {
    if (arg.type === 'identifier' && loops.some((l) => perIterationNames(model, l).has(arg.text))) out.push(i);
  });
  return out;
}

/** How the N of these nested loops grows: over rows of a query, over request input, or unknown (semantic/loopDomain.ts). */
export function loopsDomain(model: FileModel, loops: readonly LoopInfo[]): LoopDomain {
  // Asked per call and per attribute read inside the same loops: once per loop nest.
  let memo = domainMemo.get(model);
  if (!memo) domainMemo.set(model, (memo = new Map()));
  const key = loops.map((l) => l.index).join(',');
  let d = memo.get(key);
  if (!d) memo.set(key, (d = nestedLoopDomain(model, loops, rowsOracle(model))));
  return d;
}

const domainMemo = new WeakMap<FileModel, Map<string, LoopDomain>>();

/** Is an expression a query's rows (`rowsSource`), for the semantic layer's domain questions. */
function rowsOracle(model: FileModel): RowsOracle {
  return (expr, fnIndex, line) => rowsSource(model, expr, fnIndex, line) !== null;
}

/** After an item's name (`nameThen`: sticky): a foreign key read, `.owner_id` or `["owner_id"]`. */
const FOREIGN_KEY_READ = /\s*(\.\s*\w+_id\b|\[\s*(['"])\w+_id\2\s*\])/y;

/**
 * Does the call pass a foreign key of a loop's item (`job.owner_id`, `row["author_id"]`)? A
 * primary-key lookup by it fetches each item's parent: rows nothing has loaded yet, one SELECT
 * per distinct key — the classic N+1, which the identity map does not answer.
 */
export function passesItemForeignKey(model: FileModel, call: CallInfo, loops: LoopInfo[]): boolean {
  // The call and what is chained on it: `session.query(M).get(item.parent_id)`.
  const top = chainTop(call.node);
  const args = top === call.node ? (call.node.childForFieldName('arguments')?.text ?? '') : top.text.slice(call.node.endIndex - top.startIndex);
  if (!/_id\b/.test(args)) return false;
  for (const loop of loops) {
    for (const name of perIterationNames(model, loop)) {
      if (nameThen(args, name, FOREIGN_KEY_READ)) return true;
    }
  }
  return false;
}

/**
 * The innermost loop of which `call` repeats the same read on every iteration: the loop is a
 * data loop that changes nothing a read could see ({@link repeatsReads}), writes nothing to the
 * database, and nothing in the call (receiver, arguments, chained methods) is rebound by it.
 * Null otherwise, and for a memoised call. The caller decides whether the call reads.
 */
export function invariantRead(model: FileModel, call: CallInfo): LoopInfo | null {
  if (!call.loops.length || isMemoisedCall(model, call)) return null;
  const loop = model.loops[call.loops[call.loops.length - 1]!]!;
  // The iterable of a comprehension's first clause is evaluated once.
  if (call.node.startIndex < loop.iterStart || call.node.endIndex > loop.iterEnd) return null;
  const it = loop.iterable;
  if (it && call.node.startIndex >= it.startIndex && call.node.endIndex <= it.endIndex) return null;
  if (!repeatsReads(model, loop)) return null;
  const top = chainTop(call.node);
  if (!invariantIn(model, top, loop)) return null;
  return loopWritesDb(model, loop) ? null : loop;
}

/** Does any call of the loop's iteration write to the database (a statement, a staged write, a flush, a commit)? */
export const loopWritesDb = perLoop((model, loop) => callsInLoop(model, loop.index).some((c) => {
  if (c.functionIndex !== loop.functionIndex) return false;
  const op = classifyDbCall(model, c);
  return op ? op.kind !== 'read' : isExplicitFlush(model, c);
}));

/** Does the loop's iteration commit on a DB handle (a `commit()` in its body)? */
export const commitsPerIteration = perLoop((model, loop) => callsInLoop(model, loop.index).some((c) =>
  c.method === 'commit' && c.functionIndex === loop.functionIndex && isFlushingCall(model, c)));

/**
 * `session.refresh(obj)` after the function's own flush or commit: the write reloading what it
 * stored (the reload half of `add(obj); commit(); refresh(obj)`), a cost of the write that
 * commit-per-item rules judge, not a read to batch into one query.
 */
export function isWriteReload(model: FileModel, call: CallInfo, op: DbOp): boolean {
  if (op.kind !== 'read') return false;
  // In the same iteration (the same loops): a commit before a loop of refreshes is not this one's write.
  const sameLoops = (c: CallInfo) => c.loops.length === call.loops.length && c.loops.every((l, i) => l === call.loops[i]);
  const earlier = (test: (c: CallInfo) => boolean) => callsOf(model, call.functionIndex).some((c) => c.functionIndex === call.functionIndex && c.start < call.start && sameLoops(c) && test(c));
  if (op.what.endsWith('.refresh')) return earlier((c) => isExplicitFlush(model, c));
  // A select of the model the function has just inserted into (`insert(Tag).values(...)
  // .on_conflict_do_nothing()`, then `select(Tag).where(Tag.name == name)`): the row the write
  // made or found, read back; part of the write, not a read to batch on its own.
  const entity = op.statement?.ctor === 'select' ? op.statement.entity : null;
  if (!entity) return false;
  return earlier((c) => {
    const w = c === call ? null : classifyDbCall(model, c);
    return !!w && (w.kind === 'add' || w.kind === 'write') && w.statement?.ctor === 'insert' && w.statement.entity === entity;
  });
}

/** `session.flush()` / `session.commit()` on a DB handle. */
function isExplicitFlush(model: FileModel, c: CallInfo): boolean {
  return (c.method === 'flush' || c.method === 'commit') && isFlushingCall(model, c);
}

/**
 * A commit (or a transaction or session of the item's own) in the same iteration of `loop` as
 * `call`, and holding it when it is a block: each item is a unit of work by design. A read beside
 * it can only be batched by restructuring the transactions (PA207 reports the commits). Null when
 * there is none.
 */
export function iterationCommit(model: FileModel, call: Pick<CallInfo, 'functionIndex'> & { node?: SyntaxNode }, loop: LoopInfo): CallInfo | null {
  let commit: CallInfo | null = null;
  let writes = assignmentsInLoop(model, loop.index).some((a) => a.functionIndex === call.functionIndex && /^[A-Za-z_]\w*\.\w+$/.test(a.target));
  for (const c of callsInLoop(model, loop.index)) {
    if (c === call || c.functionIndex !== call.functionIndex) continue;
    // A throttled commit (`if i % 500 == 0: db.commit()`) batches items: not one unit per item;
    // nor does one in a branch the read is not on (`if kind == "bool": ... commit()` `else: read`).
    if (c.method === 'commit' && isExplicitFlush(model, c) && !throttled(model, c.node, loop) && !(call.node && apartFrom(c.node, call.node, loop))) commit ??= c;
    else if (!writes) {
      const op = classifyDbCall(model, c);
      writes = op ? op.kind !== 'read' : c.method === 'flush' && isExplicitFlush(model, c);
    }
  }
  // A commit that ends a read-only iteration is a round trip, not a unit of work.
  if (commit && writes) return commit;
  return perItemTransactions(model, loop).find((t) => !call.node || (call.node.startIndex >= t.from && call.node.startIndex < t.to))?.opener ?? null;
}

/**
 * Does `node` run only on a branch that `other` is not on: an `if`/`elif`/`else` arm, an `except`
 * handler or a `case` between `node` and the loop, that does not hold `other`?
 */
function apartFrom(node: SyntaxNode, other: SyntaxNode, loop: LoopInfo): boolean {
  const holds = (n: SyntaxNode) => n.startIndex <= other.startIndex && other.endIndex <= n.endIndex;
  for (let child = node, cur = node.parent; cur && cur.id !== loop.node.id; child = cur, cur = cur.parent) {
    if (holds(child)) return false;
    const branch = cur.type === 'if_statement' || cur.type === 'elif_clause' || cur.type === 'else_clause' || cur.type === 'except_clause' || cur.type === 'case_clause';
    if (branch && child.type === 'block' && !holds(child)) return true;
  }
  return false;
}

/** Is `node` under an `if` in the loop's body whose test is a throttle (`isThrottle`: a counter or a clock)? */
function throttled(model: FileModel, node: SyntaxNode, loop: LoopInfo): boolean {
  for (let p = node.parent; p && p.id !== loop.node.id; p = p.parent) {
    const cond = p.type === 'if_statement' ? p.childForFieldName('condition') : null;
    if (cond && isThrottle(model, cond, loop)) return true;
  }
  return false;
}

/**
 * A call other than `call`, in the same iteration of `loop`, that writes on its own: a
 * statement, a flush or a commit (a staged `add`/`delete` waits for one of those).
 */
export function iterationWriter(model: FileModel, call: Pick<CallInfo, 'functionIndex'> & { node?: SyntaxNode }, loop: LoopInfo): CallInfo | null {
  for (const c of callsOf(model, call.functionIndex)) {
    if (c === call || c.functionIndex !== call.functionIndex || !c.loops.includes(loop.index)) continue;
    const op = classifyDbCall(model, c);
    if (op ? op.kind !== 'read' && !isStagedWrite(c, op) : isExplicitFlush(model, c)) return c;
  }
  const own = perItemTransactions(model, loop);
  // The block must hold the call the finding is about: a read outside it is not part of the unit.
  return own.find((t) => !call.node || (call.node.startIndex >= t.from && call.node.startIndex < t.to))?.opener ?? null;
}

const perItemMemo = new WeakMap<LoopInfo, { opener: CallInfo; from: number; to: number }[]>();

/**
 * The blocks of a loop's body that give each item a transaction or a session of its own:
 * `with session.begin():` on a database handle, or `with factory() as s:` / `async with
 * unit_of_work() as s:` whose session the block uses for database calls (directly, or by handing
 * it to helpers when the opener and the name say session). Each item is one unit of work by
 * design, committed on its own; batching the reads across items would change that. A savepoint
 * (`begin_nested()`) is not one: it is part of the outer transaction.
 */
function perItemTransactions(model: FileModel, loop: LoopInfo): { opener: CallInfo; from: number; to: number }[] {
  const hit = perItemMemo.get(loop);
  if (hit) return hit;
  const out: { opener: CallInfo; from: number; to: number }[] = [];
  perItemMemo.set(loop, out);
  const body = model.withs.length ? loop.node.childForFieldName('body') : null;
  if (!body) return out;
  const calls = callsOf(model, loop.functionIndex);
  for (const w of model.withs) {
    if (w.functionIndex !== loop.functionIndex || w.node.startIndex < body.startIndex || w.node.endIndex > body.endIndex) continue;
    for (const item of w.items) {
      if (item.value.type !== 'call') continue;
      const opener = callAt(model, item.value);
      if (!opener) continue;
      const block = { opener, from: w.bodyStart, to: w.bodyEnd };
      const uses = calls.filter((c) => c.node.startIndex >= w.bodyStart && c.node.startIndex < w.bodyEnd);
      // A unit of work writes: a block that only reads per item is a session per item, not a unit.
      if (!uses.some((c) => blockWrites(model, c)) && !model.assignments.some((a) => a.node.startIndex >= w.bodyStart && a.node.startIndex < w.bodyEnd && /^[A-Za-z_]\w*\.\w+$/.test(a.target))) continue;
      if (opener.method === 'begin' && opener.hasReceiver && receiverEvidence(model, opener)) {
        out.push(block);
        continue;
      }
      const alias = item.alias;
      if (!alias || (opener.qualifiedName && NOT_SESSION_OPENERS.test(opener.qualifiedName)) || /http|client|request/i.test(opener.calleeText)) continue;
      const direct = uses.some((c) => receiverIs(c, alias) && classifyDbCall(model, c));
      const handed = SESSION_OPENER.test(opener.method || opener.calleeText) && SESSION_ALIAS.test(alias) && uses.some((c) => usesName(c, alias));
      if (direct || handed) out.push(block);
    }
  }
  return out;
}

/** What a per-item workflow's call does, for a message: `writes (\`x\`)`, or `runs in a transaction of its own (\`s.begin()\`)`. */
export function workflowAction(writer: CallInfo): string {
  return writer.isWithItem ? `runs in a transaction of its own (\`${writer.calleeText}()\`)` : `writes (\`${writer.calleeText}\`)`;
}

/** A callee named for what opens a database session: `Session()`, `SessionLocal()`, `async_session_maker()`, `automations_session(...)`, `unit_of_work()`. */
const SESSION_OPENER = /(^|[._])\w*([Ss]ession\w*|unit_of_work|uow)$/;

/** Does the call write, stage, flush or commit (the work of a unit; what a later network wait holds)? */
export function blockWrites(model: FileModel, call: CallInfo): boolean {
  const op = classifyDbCall(model, call);
  return op ? op.kind !== 'read' : call.method === 'commit' || isExplicitFlush(model, call);
}
/** A name that holds a session: `session`, `db`, `s`, `tx_session`. */
const SESSION_ALIAS = /^(\w*session|db|db_\w+|\w+_db|s|tx|conn|connection|uow)$/;
/** Openers of other libraries' sessions and transactions: HTTP clients, tracing, cloud SDKs. */
const NOT_SESSION_OPENERS = /^(requests|httpx|aiohttp|boto3|botocore|aioboto3|sentry_sdk|opentelemetry|ddtrace|newrelic|elasticapm|urllib3|grpc)\./;

export function parseLoopCall(what: string): LoopCallFacts {
  const [size = '', loop = '', w = '', k = '', domain = '', items = ''] = what.split('|');
  return {
    size: size === '' ? null : Number(size), loop, writes: w === 'w' || w === 'c', commits: w === 'c', foreignKey: k.includes('k'), readBefore: k.includes('r'), stopsEarly: k.includes('b'), stages: k.includes('s'), domain: decodeDomain(domain),
    items: items === '' ? [] : items.split('.').map(Number),
  };
}

/** The number of iterations when every loop is a literal collection, else null. */
export function smallLiteralProduct(loops: LoopInfo[]): number | null {
  let product = 1;
  for (const l of loops) {
    const n = literalSize(l);
    if (n === null) return null;
    product *= n;
  }
  return product;
}

export interface RowsSource {
  /** The DB read that produced the rows. */
  call: CallInfo;
  op: DbOp;
  /** The single ORM entity the rows are (`select(User)`, `session.query(User)`), or null. */
  entity: string | null;
  /** Source text of the statement and everything chained on it, to look for loader options. */
  text: string;
}

/**
 * Where the rows an expression holds come from: follows names to their last assignment and
 * `.all()` / `.scalars()` / `.unique()` chains down to a DB read. Null when not a query result.
 */
export function rowsSource(model: FileModel, expr: SyntaxNode | null, fnIndex: number, line: number, depth = 0, viaSelf?: SelfRows): RowsSource | null {
  const node = unwrap(expr);
  // Each refinement by reassignment (`q = q.filter(...)`) costs two steps (the name, its chain):
  // room for four (`if start: q = q.filter(...)`, then `q = q.order_by(...).limit(n)`).
  if (!node || depth > 8) return null;
  // `list(db.scalars(...))`, `sorted(rows, key=...)`, `[*db.scalars(...)]`: the same rows, held.
  const held = heldRows(node);
  if (held) return rowsSource(model, held, fnIndex, line, depth + 1, viaSelf);
  if (node.type === 'identifier') {
    const a = lastAssignment(model, node.text, fnIndex, line);
    return a?.value ? rowsSource(model, a.value, a.functionIndex, a.line - 1, depth + 1, viaSelf) : null;
  }
  if (viaSelf?.handles(node)) return viaSelf.rows(node);
  for (const c of chainCallsDown(node)) {
    const call = callAt(model, c);
    const op = call ? classifyDbCall(model, call) : null;
    if (!call || op?.kind !== 'read') continue;
    if (op.statement) {
      const st = op.statement;
      const text = [st.root.text, ...st.chainCalls.map((x) => x.text)].join(' ');
      return { call, op, entity: st.ctor === 'select' ? st.entity : null, text };
    }
    // `User.query.filter_by(...).first()`, and the key lookups on the query (`User.query.get(i)`, `get_or_404`).
    const flask = /^(\w+)\.query(?:\.(?:get|get_or_404))?$/.exec(op.what);
    if (flask) return { call, op, entity: flask[1]!, text: node.text };
    // Flask-SQLAlchemy 3's `db.paginate(db.select(User)...)`: the page's items are the statement's rows.
    if (call.method === 'paginate' && op.what.endsWith('.paginate')) {
      const first = callArgs(call.node).positional[0];
      const st = first ? statementInfo(model, first, fnIndex, line) : null;
      if (st?.ctor === 'select' && st.entity) return { call, op, entity: st.entity, text: [st.root.text, ...st.chainCalls.map((x) => x.text), node.text].join(' ') };
    }
    if (call.method === 'query') {
      const first = callArgs(call.node).positional[0];
      const single = callArgs(call.node).positional.length === 1 && first ? entityName(first) : null;
      return { call, op, entity: single, text: node.text };
    }
    // `q.all()` where `q = db.query(User)` was built (and refined) before: the rows of that query.
    const earlier = rebuiltFrom(model, node, fnIndex, line, depth, viaSelf);
    return earlier ?? { call, op, entity: null, text: node.text };
  }
  // `q = q.filter(...)`: the chain starts from an earlier query held in a name.
  return rebuiltFrom(model, node, fnIndex, line, depth, viaSelf);
}

/** The rows a copy holds: the argument of `list(x)`/`tuple(x)`/`sorted(x, ...)`, the `x` of `[*x]`, of `[r for r in x if ...]`. */
function heldRows(node: SyntaxNode): SyntaxNode | null {
  if (node.type === 'call' && /^(list|tuple|sorted)$/.test(node.childForFieldName('function')?.text ?? '')) {
    const positional = node.childForFieldName('arguments')?.namedChildren.filter((a) => a.type !== 'comment' && a.type !== 'keyword_argument') ?? [];
    return positional.length === 1 && positional[0]!.type !== 'list_splat' && positional[0]!.type !== 'generator_expression' ? positional[0]! : null;
  }
  if (node.type === 'list') {
    const items = node.namedChildren.filter((c) => c.type !== 'comment');
    return items.length === 1 && items[0]!.type === 'list_splat' ? items[0]!.namedChild(0) : null;
  }
  // `[d for d in rows if d.active]`: some of the same rows, unchanged.
  if (node.type === 'list_comprehension') {
    const clauses = node.namedChildren.filter((c) => c.type === 'for_in_clause');
    const target = clauses[0]?.childForFieldName('left');
    const body = node.childForFieldName('body');
    if (clauses.length === 1 && target?.type === 'identifier' && body?.type === 'identifier' && body.text === target.text) return clauses[0]!.childForFieldName('right');
  }
  return null;
}

/**
 * Expressions a caller can follow further than this file's function: `self.name` / `self.name()`
 * (an instance attribute's assignments, a property's or method's returned value), `helper()` of
 * a function of the file. `handles` is cheap (syntax and an index); `rows` does the work.
 */
export interface SelfRows {
  handles(node: SyntaxNode): boolean;
  rows(node: SyntaxNode): RowsSource | null;
}

/** `self.name` or `self.name(...)`. */
export function selfMember(node: SyntaxNode): boolean {
  const attr = node.type === 'call' ? unwrap(node.childForFieldName('function')) : node;
  return attr?.type === 'attribute' && attr.childForFieldName('object')?.text === 'self';
}

/** The rows of the query a chain's root name held, with this chain's text added (for its loader options). */
function rebuiltFrom(model: FileModel, node: SyntaxNode, fnIndex: number, line: number, depth: number, viaSelf?: SelfRows): RowsSource | null {
  let root: SyntaxNode | null = node;
  // An attribute read that is not a method call (`self.event.contributions`): other rows.
  let readsData = false;
  while (root && (root.type === 'call' || root.type === 'attribute')) {
    // `self.q.filter(...)`, `helper().filter(...)`: the chain starts from what the caller can follow.
    if (viaSelf && root.id !== node.id && viaSelf.handles(root)) break;
    if (root.type === 'attribute' && root.parent?.childForFieldName('function')?.id !== root.id) readsData = true;
    root = unwrap(root.type === 'call' ? root.childForFieldName('function') : root.childForFieldName('object'));
  }
  if (!root || root.id === node.id) return null;
  const prior = viaSelf?.handles(root) ? (readsData ? null : viaSelf.rows(root))
    : root.type === 'identifier' ? rowsSource(model, root, fnIndex, line, depth + 1, viaSelf) : null;
  // `user = ….first(); user.get_solves()`: a method or attribute of one loaded row is not that
  // query refined; its rows (if any) are the method's, which the repo phase follows.
  if (prior && root.type === 'identifier' && fetchesOneRow(lastAssignment(model, root.text, fnIndex, line)?.value ?? null)) return null;
  if (!prior && root.type === 'identifier' && node.type === 'call') {
    // `q = Model.query` (Flask-SQLAlchemy's query, not yet refined), then `q = q.filter(...)`: its rows.
    const held = unwrap(lastAssignment(model, root.text, fnIndex, line)?.value ?? null);
    const object = held?.type === 'attribute' && held.childForFieldName('attribute')?.text === 'query' ? held.childForFieldName('object') : null;
    const entity = object && /^[A-Za-z_][\w.]*$/.test(object.text) ? object.text.slice(object.text.lastIndexOf('.') + 1) : null;
    const call = entity && model.modelClasses.has(entity) ? callAt(model, node) : undefined;
    if (call) return { call, op: { kind: 'read', what: `${entity}.query`, statement: null }, entity: entity!, text: `${held!.text} ${node.text}` };
  }
  return prior ? { ...prior, text: `${prior.text} ${node.text}` } : null;
}

/** `….first()`, `session.get(M, pk)`, `await ….scalar_one()`: an expression whose value is one row. */
function fetchesOneRow(value: SyntaxNode | null): boolean {
  const call = unwrap(value);
  const fn = call?.type === 'call' ? unwrap(call.childForFieldName('function')) : null;
  return fn?.type === 'attribute' && ONE_ROW.has(fn.childForFieldName('attribute')?.text ?? '');
}

/** The model a read loads, when it names one: `session.get(User, …)`, `select(User)`. */
export function loadedModel(model: FileModel, call: CallInfo, op: DbOp): string | null {
  if (op.statement) return op.statement.entity;
  if (GET_METHODS.has(call.method)) {
    const first = callArgs(call.node).positional[0];
    return first && isModelName(first) ? (first.type === 'attribute' ? first.childForFieldName('attribute')!.text : first.text) : null;
  }
  return null;
}

/** Methods of a legacy `Query` that read something other than the rows (a column, a count) or write in bulk. */
const NARROWING = new Set(['with_entities', 'value', 'values', 'count', 'exists', 'update', 'delete', 'add_columns']);
/** A call of one of them in a chain's text. */
const NARROWING_CALL = new RegExp(String.raw`\.(${[...NARROWING].join('|')})\s*\(`);

/** The method names of a chain from `node` out to `top`, in order (not what their arguments contain). */
function chainMethods(node: SyntaxNode, top: SyntaxNode): string[] {
  const out: string[] = [];
  for (let n: SyntaxNode = node; n.id !== top.id && n.parent?.type === 'attribute' && n.parent.parent?.type === 'call';) {
    out.push(n.parent.childForFieldName('attribute')?.text ?? '');
    n = n.parent.parent;
  }
  return out;
}


/** A Flask-SQLAlchemy query property's read (`DbOp.what` of `Order.query...`): the model, and the getter when it is `get`/`get_or_404`. */
const FLASK_QUERY_READ = /^([A-Za-z_]\w*)\.query(?:\.(get|get_or_404))?$/;

/** `session.get(Job, job_id)` / `select(Job).where(Job.id == job_id)` where `job_id` is a parameter. */
function reloadedParam(model: FileModel, call: CallInfo, op: DbOp): string | null {
  const fn = model.functions[call.functionIndex]!;
  // On a session the function opens itself (`with Maker() as s:`, `s = Maker()`): the caller's
  // object belongs to another session, which this one cannot use; reading the row again is needed.
  const head = call.dottedReceiver?.split('.')[0];
  if (head && head !== 'self' && !fn.params.some((p) => p.name === head)) {
    // A call of the project's `scoped_session` registry (`s = Registry()`) hands back the thread's
    // session, the caller's too: not one of its own.
    const opener = (v: SyntaxNode | null | undefined): boolean => {
      const u = unwrap(v ?? null);
      if (u?.type !== 'call') return false;
      const f = u.childForFieldName('function')?.text ?? '';
      const name = f.slice(f.lastIndexOf('.') + 1);
      if (!model.scopedSessions.has(name) || !projectScopedSession(model, f, name)) return true;
      // Bound in this module: it must be this module's registry (not a sessionmaker of that name).
      if (f === name && !model.imports.has(name) && !(model.scopedSessions.get(name) ?? []).includes(model.moduleName)) return true;
      // `Registry.remove()` first: the registry hands back a new session, not the caller's.
      const removed = new RegExp(String.raw`(?<![\w.])${f.replace(/\./g, '\\.')}\.remove\(\s*\)`);
      return removed.test(model.source.slice(fn.start, call.node.startIndex));
    };
    const opened = call.withs.some((wi) => model.withs[wi]!.items.some((i) => i.alias === head && opener(i.value)))
      || opener(lastAssignment(model, head, call.functionIndex, call.line)?.value);
    if (opened) return null;
  }
  // `session.query(Order)` of a legacy `Query` chain: its one entity.
  const queried = call.method === 'query' && callArgs(call.node).positional.length === 1 ? callArgs(call.node).positional[0]! : null;
  // Flask-SQLAlchemy's `Order.query...`: the model whose query property it is.
  const flask = FLASK_QUERY_READ.exec(op.what);
  const entity = loadedModel(model, call, op) ?? (queried && isModelName(queried) ? (queried.type === 'attribute' ? queried.childForFieldName('attribute')!.text : queried.text) : null) ?? flask?.[1] ?? null;
  if (!entity) return null;
  let key: string | null = null;
  if (flask?.[2]) {
    // `Order.query.get(i)` / `.get_or_404(i)`: the legacy Query.get, by its first argument.
    const first = callArgs(call.node).positional[0];
    if (first?.type === 'identifier') key = first.text;
  } else if (GET_METHODS.has(call.method)) {
    const second = callArgs(call.node).positional[1];
    if (second?.type === 'identifier') key = second.text;
  } else {
    // A statement (`select(Order).where(Order.id == i)`), or a legacy `Query` chain read whole
    // (`db.query(Order).filter(Order.id == i).one()`, `.filter_by(id=i).first()`): a `Query` by
    // id always goes to the database, unlike `get()`.
    const top = chainTop(call.node);
    // A legacy chain that narrows what it reads (`.with_entities(Order.total)`, `.value(...)`,
    // `.count()`, a bulk `.update()`/`.delete()`): not the row again.
    if (!op.statement && (NARROWING.has(call.method) || chainMethods(call.node, top).some((m) => NARROWING.has(m)))) return null;
    const text = [...(op.statement ? [op.statement.root.text, ...op.statement.chainCalls.map((c) => c.text)] : []), top.text].join(' ');
    const m = new RegExp(`\\b${entity}\\.id\\s*==\\s*([A-Za-z_]\\w*)\\b(?!\\s*[.(\\[])`).exec(text)
      ?? /\bfilter_by\(\s*id\s*=\s*([A-Za-z_]\w*)\s*\)/.exec(top.text);
    if (m) key = m[1]!;
  }
  if (!key) return null;
  const offset = selfOffset(fn);
  const index = fn.params.findIndex((p) => p.name === key);
  if (index < offset) return null;
  return `${index - offset}:${key}:${entity}`;
}

/**
 * A call that hands on `obj.id` where `obj` was loaded earlier in the function: by a read the
 * file decides (`obj = await session.get(Job, id)`), or by a call the repo phase may follow.
 */
function passedLoadedId(model: FileModel, call: CallInfo): PassedId | null {
  // Cheap gates first: this runs for every call of every file.
  if (call.functionIndex < 0 || !/^[\w.]+$/.test(call.calleeText) || (call.qualifiedName && LIBRARY_CALL.test(call.qualifiedName))) return null;
  if (!call.node.text.includes('.id')) return null;
  const { positional, keywords } = callArgs(call.node);
  const candidates: [number | string, SyntaxNode][] = [...positional.map((n, i): [number, SyntaxNode] => [i, n]), ...keywords];
  for (const [arg, node] of candidates) {
    if (node.type !== 'attribute' || node.childForFieldName('attribute')?.text !== 'id') continue;
    const obj = node.childForFieldName('object');
    if (obj?.type !== 'identifier') continue;
    const a = lastAssignment(model, obj.text, call.functionIndex, call.line);
    if (!a || a.functionIndex !== call.functionIndex || !a.value) continue;
    // `signal = get(signal_id=signal.id)`: the argument is the name's earlier value (a loop's
    // item, a parameter), not what this assignment loads.
    if (a.node.startIndex <= call.node.startIndex && a.node.endIndex >= call.node.endIndex) continue;
    const value = unwrap(a.value);
    if (value?.type !== 'call') continue;
    // A read in the value's chain (`db.scalars(select(Book)...).one()`) decides here; otherwise
    // the outermost call may be a same-repo loader the repo phase follows.
    const read = rowsSource(model, value, a.functionIndex, a.line - 1);
    if (read) {
      // A legacy `Query` chain has no statement: its entity is the rows source's.
      // Flask-SQLAlchemy's `Model.query.get_or_404(i)` / `.filter_by(...).first()`: its model.
      const entity = loadedModel(model, read.call, read.op) ?? (read.call.method === 'query' ? read.entity?.replace(/^.*\./, '') ?? null : null)
        // (not a query that narrows what it reads: `with_entities(...)`, `values(...)`)
        ?? (NARROWING_CALL.test(value.text) ? null : FLASK_QUERY_READ.exec(read.op.what)?.[1] ?? null);
      if (entity) return { arg, variable: obj.text, model: entity, source: [read.call.line, read.call.column] };
      // A read known by its method alone (`repo.get(oid)` on a repository object): the repo
      // phase follows the call to what it loads.
      if (read.call.node.id !== value.id || !read.call.hasReceiver) continue;
    }
    const loader = callAt(model, value);
    if (!loader || (!read && classifyDbCall(model, loader))) continue;
    return { arg, variable: obj.text, model: '', source: [loader.line, loader.column] };
  }
  return null;
}
