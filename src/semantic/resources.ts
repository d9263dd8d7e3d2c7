/**
 * Closeable resources that are not database handles: HTTP client sessions, Redis clients and
 * thread/process pools. Each keeps sockets or threads alive until it is closed (or until the
 * garbage collector finds it), so one made per call and never closed leaks them per call.
 *
 * A catalogue of qualified names (as `CallInfo.qualifiedName` resolves them) → what it is and
 * how it is closed, for messages. Rules decide what to do with it; this layer imports no rule.
 */

export interface CloseableClient {
  /** What it is, for messages: `aiohttp.ClientSession`, `httpx.AsyncClient`. */
  label: string;
  /** How its owner closes it: `await session.close()`, `client.close()`, `executor.shutdown()`. */
  close: string;
  /** What stays alive until it is closed. */
  holds: 'sockets' | 'threads';
  /**
   * Keyword arguments that make it borrow someone else's pool, so that leaving it unclosed leaks
   * nothing (`redis.Redis(connection_pool=POOL)`: `close()` does not even disconnect that pool).
   */
  borrowsWith?: string[];
  /**
   * A plain (sync) client whose sockets close when the object is freed: under CPython's reference
   * counting a local one left unclosed is freed, and its connections closed, when the call returns
   * (redis-py's `Redis.__del__` closes it; the pool's connections disconnect as they are freed;
   * httpx's sockets close with their objects). Nothing leaks; each call pays for new connections.
   */
  freedOnReturn?: true;
}

const http = (label: string, close: string): CloseableClient => ({ label, close, holds: 'sockets' });
const redisClient = (label: string, close: string): CloseableClient => ({ label, close, holds: 'sockets', borrowsWith: ['connection_pool'] });
const syncRedis: CloseableClient = { ...redisClient('redis.Redis', 'client.close()'), freedOnReturn: true };

const CLIENTS = new Map<string, CloseableClient>([
  // aiohttp: an unclosed session keeps its connector's sockets and logs "Unclosed client session".
  ['aiohttp.ClientSession', { ...http('aiohttp.ClientSession', 'await session.close()'), borrowsWith: ['connector_owner'] }],
  ['aiohttp.client.ClientSession', { ...http('aiohttp.ClientSession', 'await session.close()'), borrowsWith: ['connector_owner'] }],
  // httpx: the client owns a connection pool; `close()` / `aclose()` releases it.
  ['httpx.Client', { ...http('httpx.Client', 'client.close()'), freedOnReturn: true }],
  ['httpx.AsyncClient', http('httpx.AsyncClient', 'await client.aclose()')],
  // redis-py: a client owns a connection pool of its own unless it is given one (`connection_pool=`).
  ['redis.Redis', syncRedis],
  ['redis.StrictRedis', syncRedis],
  ['redis.client.Redis', syncRedis],
  ['redis.from_url', syncRedis],
  ['redis.Redis.from_url', syncRedis],
  ['redis.StrictRedis.from_url', syncRedis],
  ['redis.asyncio.Redis', redisClient('redis.asyncio.Redis', 'await client.aclose()')],
  ['redis.asyncio.client.Redis', redisClient('redis.asyncio.Redis', 'await client.aclose()')],
  ['redis.asyncio.from_url', redisClient('redis.asyncio.Redis', 'await client.aclose()')],
  ['redis.asyncio.Redis.from_url', redisClient('redis.asyncio.Redis', 'await client.aclose()')],
  ['aioredis.Redis', redisClient('aioredis.Redis', 'await client.close()')],
  ['aioredis.from_url', redisClient('aioredis.Redis', 'await client.close()')],
  // Pools of worker threads/processes: they idle until `shutdown()` or garbage collection.
  ['concurrent.futures.ThreadPoolExecutor', { label: 'ThreadPoolExecutor', close: 'executor.shutdown()', holds: 'threads' }],
  ['concurrent.futures.thread.ThreadPoolExecutor', { label: 'ThreadPoolExecutor', close: 'executor.shutdown()', holds: 'threads' }],
  ['concurrent.futures.ProcessPoolExecutor', { label: 'ProcessPoolExecutor', close: 'executor.shutdown()', holds: 'threads' }],
  ['concurrent.futures.process.ProcessPoolExecutor', { label: 'ProcessPoolExecutor', close: 'executor.shutdown()', holds: 'threads' }],
]);

/** The closeable client a call constructs, by the call's qualified name; null for anything else. */
export function closeableClient(qualifiedName: string | null): CloseableClient | null {
  return qualifiedName ? CLIENTS.get(qualifiedName) ?? null : null;
}

/** Methods that close a resource of any kind: sessions, connections, files, clients, pools. */
export const CLOSE_METHODS = new Set(['close', 'aclose', 'dispose', 'terminate', 'release', 'shutdown']);

/**
 * Calls that build a new engine, and with it a new connection pool: `create_engine`,
 * `create_async_engine`, `engine_from_config`. Made once per process they are the pool; made
 * per request or per job they open fresh connections every time and leave pools behind.
 */
const ENGINE_CONSTRUCTORS = new Set([
  'sqlalchemy.create_engine', 'sqlalchemy.engine.create_engine', 'sqlalchemy.engine.create.create_engine', 'sqlmodel.create_engine',
  'sqlalchemy.ext.asyncio.create_async_engine', 'sqlalchemy.ext.asyncio.engine.create_async_engine', 'sqlmodel.ext.asyncio.create_async_engine',
  'sqlalchemy.engine_from_config', 'sqlalchemy.engine.engine_from_config', 'sqlalchemy.ext.asyncio.async_engine_from_config',
]);

/** Does a call with this qualified name build a new engine (a new pool)? */
export function isEngineConstructor(qualifiedName: string | null): boolean {
  return !!qualifiedName && ENGINE_CONSTRUCTORS.has(qualifiedName);
}

/** DB-API driver `connect()` functions: each returns a new connection its caller must close. */
export const DRIVER_CONNECT: ReadonlySet<string> = new Set([
  'psycopg2.connect', 'psycopg.connect', 'psycopg.Connection.connect', 'psycopg.AsyncConnection.connect', 'pymysql.connect',
  'MySQLdb.connect', 'mysql.connector.connect', 'sqlite3.connect', 'asyncpg.connect', 'aiosqlite.connect', 'aiomysql.connect',
  'pymssql.connect', 'cx_Oracle.connect', 'oracledb.connect',
]);

/** SQLAlchemy session classes: constructing one opens a session its caller must close. */
export const SESSION_CLASS = /^(sqlalchemy\.orm(\.session)?\.Session|sqlmodel(\.orm\.session)?\.Session|sqlalchemy\.ext\.asyncio(\.session)?\.AsyncSession|sqlmodel\.ext\.asyncio\.session\.AsyncSession)$/;
