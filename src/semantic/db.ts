/**
 * Database handles: is a receiver a sync SQLAlchemy session/connection/engine, a DB-API
 * connection or cursor (psycopg2, pymysql, sqlite3, …), a sync redis client — or their async
 * counterparts? Works on the type paths of `valueTypes.ts`, so it needs no syntax tree and the
 * repo phase can finish what a file could not decide (a provider or a session factory defined
 * in another module).
 */

/** What a handle is; `sync` handles block the event loop on I/O methods. */
export type HandleState =
  | 'sessionmaker' | 'session' | 'engine' | 'connection' | 'query'
  | 'dbapi' | 'cursor' | 'dbapipool' | 'redis' | 'pipeline' | 'async'
  /** `sqlalchemy.inspect(engine)`: its `get_*`/`has_*` methods query the catalog, one connection each. */
  | 'inspector';

/** Shared between callers (memoised): never mutated. */
export type HandleResult =
  | { readonly kind: 'handle'; readonly state: HandleState; readonly label: string }
  /** The head names something in another repo module: `ref` is the qualified name, `rest` the ops after it. */
  | { readonly kind: 'ref'; readonly ref: string; readonly wrapper: '' | '@' | 'Depends'; readonly rest: string }
  | null;

interface Base {
  /** State of the value the name holds, used as an annotation (`@T`) or directly. */
  inst?: HandleState;
  /** State of the value a call of the name returns. */
  call?: HandleState;
  label: string;
}

const SESSION_CLASS: Base = { inst: 'session', call: 'session', label: 'Session' };
const BASES: Record<string, Base> = {
  'sqlalchemy.orm.sessionmaker': { call: 'sessionmaker', label: 'Session' },
  'sqlalchemy.orm.session.sessionmaker': { call: 'sessionmaker', label: 'Session' },
  'sqlalchemy.orm.Session': SESSION_CLASS,
  'sqlalchemy.orm.session.Session': SESSION_CLASS,
  'sqlmodel.Session': SESSION_CLASS,
  'sqlmodel.orm.session.Session': SESSION_CLASS,
  'sqlalchemy.orm.scoped_session': { inst: 'session', call: 'session', label: 'Session' },
  'sqlalchemy.orm.scoping.scoped_session': { inst: 'session', call: 'session', label: 'Session' },
  'sqlalchemy.orm.ScopedSession': SESSION_CLASS,
  'sqlalchemy.orm.scoping.ScopedSession': SESSION_CLASS,
  'sqlalchemy.create_engine': { call: 'engine', label: 'Engine' },
  'sqlalchemy.engine.create_engine': { call: 'engine', label: 'Engine' },
  'sqlalchemy.engine_from_config': { call: 'engine', label: 'Engine' },
  'sqlmodel.create_engine': { call: 'engine', label: 'Engine' },
  'sqlalchemy.Engine': { inst: 'engine', label: 'Engine' },
  'sqlalchemy.engine.Engine': { inst: 'engine', label: 'Engine' },
  'sqlalchemy.engine.base.Engine': { inst: 'engine', label: 'Engine' },
  'sqlalchemy.Connection': { inst: 'connection', label: 'Connection' },
  'sqlalchemy.engine.Connection': { inst: 'connection', label: 'Connection' },
  'sqlalchemy.engine.base.Connection': { inst: 'connection', label: 'Connection' },
  'psycopg2.connect': { call: 'dbapi', label: 'psycopg2' },
  'psycopg2.extensions.connection': { inst: 'dbapi', label: 'psycopg2' },
  'psycopg2.pool.SimpleConnectionPool': { call: 'dbapipool', label: 'psycopg2' },
  'psycopg2.pool.ThreadedConnectionPool': { call: 'dbapipool', label: 'psycopg2' },
  'psycopg.connect': { call: 'dbapi', label: 'psycopg' },
  'psycopg.Connection.connect': { call: 'dbapi', label: 'psycopg' },
  'psycopg.Connection': { inst: 'dbapi', label: 'psycopg' },
  'pymysql.connect': { call: 'dbapi', label: 'pymysql' },
  'pymysql.connections.Connection': { inst: 'dbapi', label: 'pymysql' },
  'MySQLdb.connect': { call: 'dbapi', label: 'MySQLdb' },
  'mysql.connector.connect': { call: 'dbapi', label: 'mysql.connector' },
  'sqlite3.connect': { call: 'dbapi', label: 'sqlite3' },
  'sqlite3.Connection': { inst: 'dbapi', label: 'sqlite3' },
  'sqlite3.Cursor': { inst: 'cursor', label: 'sqlite3' },
  'pymssql.connect': { call: 'dbapi', label: 'pymssql' },
  'cx_Oracle.connect': { call: 'dbapi', label: 'cx_Oracle' },
  'oracledb.connect': { call: 'dbapi', label: 'oracledb' },
  'redis.Redis': { inst: 'redis', call: 'redis', label: 'redis.Redis' },
  'redis.StrictRedis': { inst: 'redis', call: 'redis', label: 'redis.Redis' },
  'redis.client.Redis': { inst: 'redis', call: 'redis', label: 'redis.Redis' },
  'redis.client.StrictRedis': { inst: 'redis', call: 'redis', label: 'redis.Redis' },
  'redis.from_url': { call: 'redis', label: 'redis.Redis' },
  'redis.Redis.from_url': { call: 'redis', label: 'redis.Redis' },
  'redis.StrictRedis.from_url': { call: 'redis', label: 'redis.Redis' },
};

/** Libraries whose names are classified here; any other head is a repo name or unknown. */
const ASYNC_PREFIXES = [
  'sqlalchemy.ext.asyncio', 'sqlmodel.ext.asyncio', 'redis.asyncio', 'aioredis', 'asyncpg', 'aiosqlite',
  'aiomysql', 'psycopg.AsyncConnection', 'psycopg_pool.AsyncConnectionPool', 'databases', 'motor',
  'tortoise', 'coredis',
];
const LIBRARY_HEADS = new Set([
  'sqlalchemy', 'sqlmodel', 'psycopg2', 'psycopg', 'pymysql', 'MySQLdb', 'mysql', 'sqlite3', 'pymssql',
  'cx_Oracle', 'oracledb', 'redis', 'aioredis', 'asyncpg', 'aiosqlite', 'aiomysql', 'databases', 'motor',
  'tortoise', 'coredis', 'builtins', 'fastapi', 'starlette', 'typing', 'os', 'json', 'logging',
]);

/** Methods that do I/O, per sync handle state. */
const IO_METHODS: Partial<Record<HandleState, Set<string>>> = {
  session: new Set(['execute', 'query', 'scalars', 'scalar', 'get', 'get_one', 'commit', 'flush', 'refresh', 'rollback', 'merge', 'exec', 'connection']),
  connection: new Set(['execute', 'exec_driver_sql', 'scalar', 'scalars', 'commit', 'rollback']),
  engine: new Set(['connect', 'begin', 'execute', 'raw_connection']),
  // Not `exists`: `Query.exists()` builds an EXISTS clause for another statement; it sends nothing.
  query: new Set(['all', 'first', 'one', 'one_or_none', 'scalar', 'count', 'delete', 'update', 'get']),
  dbapi: new Set(['execute', 'executemany', 'executescript', 'commit', 'rollback']),
  cursor: new Set(['execute', 'executemany', 'executescript', 'fetchone', 'fetchall', 'fetchmany', 'callproc', 'copy_expert', 'copy_from', 'copy_to']),
  dbapipool: new Set(['getconn']),
  pipeline: new Set(['execute']),
  inspector: new Set([
    'get_schema_names', 'get_table_names', 'get_view_names', 'get_materialized_view_names', 'get_sequence_names', 'get_temp_table_names',
    'get_columns', 'get_indexes', 'get_foreign_keys', 'get_pk_constraint', 'get_unique_constraints', 'get_check_constraints',
    'get_table_comment', 'get_table_options', 'get_multi_columns', 'get_multi_indexes', 'get_multi_foreign_keys', 'get_sorted_table_and_fkc_names',
    'has_table', 'has_schema', 'has_index', 'has_sequence',
  ]),
};
/** Redis client methods that do no I/O; every other method sends a command. */
const REDIS_NON_IO = new Set(['pipeline', 'pubsub', 'lock', 'register_script', 'get_connection_kwargs', 'get_encoder', 'monitor']);
/** Redis commands common enough to look for on a client defined in another module. */
const REDIS_COMMON = new Set([
  'get', 'set', 'setex', 'setnx', 'getset', 'mget', 'mset', 'delete', 'exists', 'expire', 'ttl', 'incr', 'incrby',
  'decr', 'hget', 'hset', 'hgetall', 'hdel', 'hmset', 'hincrby', 'lpush', 'rpush', 'lpop', 'rpop', 'lrange', 'llen',
  'sadd', 'srem', 'smembers', 'sismember', 'zadd', 'zrange', 'zrem', 'zscore', 'publish', 'keys', 'scan', 'eval',
  'flushdb', 'ping', 'xadd', 'xread', 'blpop', 'brpop',
]);

/** Transitions by a method call on a handle that returns another handle. */
const METHOD_RESULT: Partial<Record<HandleState, Record<string, HandleState>>> = {
  sessionmaker: { begin: 'session' },
  session: { connection: 'connection', query: 'query', begin: 'session' },
  // `.__inspect__` stands for `sqlalchemy.inspect(x)` (see valueTypes.ts): an Inspector on an engine or connection.
  engine: { connect: 'connection', begin: 'connection', raw_connection: 'dbapi', __inspect__: 'inspector' },
  connection: { begin: 'connection', __inspect__: 'inspector' },
  dbapi: { cursor: 'cursor' },
  dbapipool: { getconn: 'dbapi' },
  redis: { pipeline: 'pipeline' },
  pipeline: {},
  query: { filter: 'query', filter_by: 'query', join: 'query', options: 'query', order_by: 'query', limit: 'query', offset: 'query', where: 'query' },
};

/** Parses a type path into its head, wrapper and the operations after the head. */
function splitTypePath(t: string): { wrapper: '' | '@' | 'Depends'; head: string; ops: string[] } | null {
  let wrapper: '' | '@' | 'Depends' = '';
  let rest = t;
  let head: string;
  if (rest.startsWith('@')) {
    wrapper = '@';
    rest = rest.slice(1);
  }
  const dep = /^Depends\(([\w.]+)\)/.exec(rest);
  if (dep) {
    wrapper = 'Depends';
    head = dep[1]!;
    rest = rest.slice(dep[0].length);
    return { wrapper, head, ops: parseOps(rest) ?? [] };
  }
  const m = /^[\w.]+/.exec(rest);
  if (!m) return null;
  head = m[0];
  const ops = parseOps(rest.slice(head.length));
  if (!ops) return null;
  return { wrapper, head, ops };
}

function parseOps(s: string): string[] | null {
  const ops: string[] = [];
  const re = /\(\)|\.\w+/y;
  let i = 0;
  while (i < s.length) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) return null;
    ops.push(m[0]);
    i += m[0].length;
  }
  return ops;
}

/**
 * Classifies a type path. The head may be a dotted name whose leading part is a known library
 * attribute path (`sqlalchemy.orm.sessionmaker`), or a repo name (returned as a ref).
 */
export function classifyHandle(t: string | null): HandleResult {
  if (!t) return null;
  // A pure function of the type path, and the same few paths (`@sqlalchemy.orm.Session`,
  // `Depends(app.db.get_db)`) come back at every call of every file: kept, within a bound.
  const hit = handleMemo.get(t);
  if (hit !== undefined) return hit;
  if (handleMemo.size >= HANDLE_MEMO_MAX) handleMemo.clear();
  const r = classifyHandleUncached(t);
  handleMemo.set(t, r);
  return r;
}

const HANDLE_MEMO_MAX = 20_000;
const handleMemo = new Map<string, HandleResult>();

function classifyHandleUncached(t: string): HandleResult {
  const parts = splitTypePath(t);
  if (!parts) return null;
  let { head, ops } = parts;
  // The longest prefix of head + attribute ops that names a known base.
  const segs = head.split('.');
  const headRoot = segs[0]!;
  let state: HandleState | null = null;
  let label = '';
  let qualified = head;
  let k = 0;
  while (k < ops.length && ops[k]!.startsWith('.') && !BASES[qualified] && !isAsyncName(qualified)) {
    qualified += ops[k];
    k++;
  }
  if (isAsyncName(qualified) || isAsyncName(head)) return { kind: 'handle', state: 'async', label: 'async' };
  let base = BASES[qualified];
  if (!base) {
    // Retry with head only (the attribute ops may be methods of the handle).
    base = BASES[head];
    k = 0;
    qualified = head;
  }
  if (!base) {
    if (LIBRARY_HEADS.has(headRoot)) return null;
    if (parts.wrapper === 'Depends' || parts.wrapper === '@' || segs.length >= 2) {
      return { kind: 'ref', ref: head, wrapper: parts.wrapper, rest: ops.join('') };
    }
    return null;
  }
  label = base.label;
  if (parts.wrapper === '@') state = base.inst ?? null;
  else if (ops[k] === '()') {
    state = base.call ?? null;
    k++;
  } else state = base.inst ?? null;
  if (parts.wrapper === 'Depends') return null;
  return applyOps(state, label, ops.slice(k));
}

/** Applies the remaining ops (`.connect`, `()`) to a handle state. */
export function applyOps(state: HandleState | null, label: string, ops: string[]): HandleResult {
  for (let i = 0; state && i < ops.length; i++) {
    const op = ops[i]!;
    if (op === '()') {
      if (state === 'sessionmaker') state = 'session';
      else if (state === 'session') state = 'session'; // scoped_session() returns the session
      else state = null;
      continue;
    }
    const method = op.slice(1);
    if (ops[i + 1] !== '()') return null; // attribute access: unknown
    const next = METHOD_RESULT[state]?.[method];
    if (!next) return null;
    state = next;
    i++;
  }
  return state ? { kind: 'handle', state, label } : null;
}

function isAsyncName(q: string): boolean {
  return ASYNC_PREFIXES.some((p) => q === p || q.startsWith(p + '.')) || /(^|\.)(AsyncSession|AsyncEngine|AsyncConnection|async_sessionmaker|create_async_engine|async_scoped_session)$/.test(q);
}

/** Does `method` on a handle in `state` do blocking I/O? */
export function isBlockingDbMethod(state: HandleState, method: string): boolean {
  if (state === 'redis') return !REDIS_NON_IO.has(method) && !method.startsWith('_');
  return IO_METHODS[state]?.has(method) ?? false;
}

/** Could `method` be blocking DB I/O on some sync handle? For receivers decided in the repo phase. */
export function mayBeBlockingDbMethod(method: string): boolean {
  return ANY_BLOCKING_METHOD.has(method);
}

/** Every method {@link mayBeBlockingDbMethod} accepts, in one set: it is asked for every call on the event loop. */
const ANY_BLOCKING_METHOD = new Set([...REDIS_COMMON, ...Object.values(IO_METHODS).flatMap((set) => [...(set ?? [])])]);

/** A readable name of the handle's method, for messages: `Session.execute`, `sqlite3 cursor.fetchall`. */
export function handleMethodLabel(state: HandleState, label: string, method: string): string {
  switch (state) {
    case 'session':
      return `Session.${method}`;
    case 'query':
      return `Query.${method}`;
    case 'engine':
      return `Engine.${method}`;
    case 'connection':
      return `Connection.${method}`;
    case 'dbapi':
      return `${label} connection.${method}`;
    case 'cursor':
      return `${label} cursor.${method}`;
    case 'dbapipool':
      return `${label} pool.${method}`;
    case 'redis':
      return `redis.Redis.${method}`;
    case 'pipeline':
      return `redis pipeline.${method}`;
    case 'inspector':
      return `Inspector.${method}`;
    default:
      return method;
  }
}

/** Calls that are blocking DB I/O by themselves: `psycopg2.connect(...)`, `sqlite3.connect(...)`. */
export function blockingDbFunction(qualifiedName: string | null): string | null {
  if (!qualifiedName) return null;
  const base = BASES[qualifiedName];
  if (base?.call === 'dbapi') return qualifiedName;
  // pandas runs the query itself, on the sync engine or connection it is handed, and waits for every row.
  if (PANDAS_SQL.test(qualifiedName)) return qualifiedName;
  return null;
}

const PANDAS_SQL = /^pandas\.(read_sql|read_sql_query|read_sql_table)$/;

/**
 * Looks a repo name up: the type path it holds (`=>T` for a provider function that yields T),
 * null when it is a repo name with nothing DB-like, undefined when it is not known here.
 */
export type NameLookup = (qualified: string) => string | null | undefined;

/** Classifies a type path, following repo names through `lookup` (a few steps at most). */
export function resolveHandle(t: string | null, lookup: NameLookup): HandleResult {
  let r = classifyHandle(t);
  for (let depth = 0; r?.kind === 'ref' && depth < 6; depth++) {
    const target = lookup(r.ref);
    if (target === undefined) return r;
    if (target === null) return null;
    let next: string;
    if (r.wrapper === 'Depends') {
      if (!target.startsWith('=>')) return null;
      next = target.slice(2) + r.rest;
    } else if (r.wrapper === '@') {
      // `@app.db.Database.begin_session()`: an instance's method that hands out a handle (a
      // project's session provider method, `=>T`), called.
      if (target.startsWith('=>') && r.rest.startsWith('()')) next = target.slice(2) + r.rest.slice(2);
      else if (!target.startsWith('@') && !target.startsWith('Depends(')) return null;
      else next = target + r.rest;
    } else if (target.startsWith('=>')) {
      // A call of a function that hands out a handle (`-> Session`, a `@contextmanager`).
      if (!r.rest.startsWith('()')) return null;
      next = target.slice(2) + r.rest.slice(2);
    } else {
      next = target + r.rest;
    }
    r = classifyHandle(next);
  }
  return r?.kind === 'ref' ? null : r;
}
