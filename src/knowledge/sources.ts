/**
 * The curated knowledge base behind "Sources Consulted": official best-practice documentation
 * keyed by technology. A TS module rather than a YAML file so that it is compiled into `dist/`
 * with everything else and needs no path resolution at run time.
 *
 * Only well-known, stable documentation pages belong here: the report cites them as sources.
 * Rule-specific references live in each rule's metadata (`RuleMeta.references`).
 */

export interface Source {
  title: string;
  url: string;
}

export interface Technology {
  /** Display name. */
  name: string;
  sources: readonly Source[];
}

/** Technologies in display order. Keys match `ProjectContext.stack` keys (see `TECH_ALIASES`). */
export const TECHNOLOGIES: Readonly<Record<string, Technology>> = {
  sqlalchemy: {
    name: 'SQLAlchemy',
    sources: [
      { title: 'Session basics', url: 'https://docs.sqlalchemy.org/en/20/orm/session_basics.html' },
      { title: 'Transactions and connection management', url: 'https://docs.sqlalchemy.org/en/20/orm/session_transaction.html' },
      { title: 'Relationship loading techniques', url: 'https://docs.sqlalchemy.org/en/20/orm/queryguide/relationships.html' },
      { title: 'ORM-enabled INSERT, UPDATE and DELETE', url: 'https://docs.sqlalchemy.org/en/20/orm/queryguide/dml.html' },
      { title: 'Connection pooling', url: 'https://docs.sqlalchemy.org/en/20/core/pooling.html' },
      { title: 'Performance FAQ', url: 'https://docs.sqlalchemy.org/en/20/faq/performance.html' },
    ],
  },
  'sqlalchemy-async': {
    name: 'SQLAlchemy asyncio',
    sources: [
      { title: 'Asynchronous I/O (asyncio) extension', url: 'https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html' },
      {
        title: 'Preventing implicit IO when using AsyncSession',
        url: 'https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html#preventing-implicit-io-when-using-asyncsession',
      },
    ],
  },
  sqlmodel: {
    name: 'SQLModel',
    sources: [
      { title: 'SQLModel documentation', url: 'https://sqlmodel.tiangolo.com/' },
      { title: 'Session with FastAPI dependency', url: 'https://sqlmodel.tiangolo.com/tutorial/fastapi/session-with-dependency/' },
    ],
  },
  fastapi: {
    name: 'FastAPI',
    sources: [
      { title: 'Concurrency and async / await', url: 'https://fastapi.tiangolo.com/async/' },
      { title: 'Dependencies with yield', url: 'https://fastapi.tiangolo.com/tutorial/dependencies/dependencies-with-yield/' },
      { title: 'SQL (relational) databases', url: 'https://fastapi.tiangolo.com/tutorial/sql-databases/' },
      { title: 'Background tasks', url: 'https://fastapi.tiangolo.com/tutorial/background-tasks/' },
      { title: 'Release notes', url: 'https://fastapi.tiangolo.com/release-notes/' },
    ],
  },
  starlette: {
    name: 'Starlette',
    sources: [
      { title: 'Responses (StreamingResponse)', url: 'https://www.starlette.io/responses/' },
      { title: 'Thread pool', url: 'https://www.starlette.io/threadpool/' },
      { title: 'Lifespan', url: 'https://www.starlette.io/lifespan/' },
    ],
  },
  asyncio: {
    name: 'asyncio',
    sources: [
      { title: 'Developing with asyncio', url: 'https://docs.python.org/3/library/asyncio-dev.html' },
      { title: 'Running in threads', url: 'https://docs.python.org/3/library/asyncio-task.html#running-in-threads' },
    ],
  },
  anyio: {
    name: 'AnyIO',
    sources: [{ title: 'Working with threads', url: 'https://anyio.readthedocs.io/en/stable/threads.html' }],
  },
  httpx: {
    name: 'HTTPX',
    sources: [{ title: 'Async support', url: 'https://www.python-httpx.org/async/' }],
  },
  asyncpg: {
    name: 'asyncpg',
    sources: [
      { title: 'asyncpg documentation', url: 'https://magicstack.github.io/asyncpg/current/' },
      { title: 'Connection pools', url: 'https://magicstack.github.io/asyncpg/current/usage.html#connection-pools' },
    ],
  },
  psycopg: {
    name: 'psycopg',
    sources: [
      { title: 'Psycopg 3 documentation', url: 'https://www.psycopg.org/psycopg3/docs/' },
      { title: 'Transactions management', url: 'https://www.psycopg.org/psycopg3/docs/basic/transactions.html' },
      { title: 'Connection pools', url: 'https://www.psycopg.org/psycopg3/docs/advanced/pool.html' },
    ],
  },
  postgresql: {
    name: 'PostgreSQL',
    sources: [
      { title: 'Performance tips', url: 'https://www.postgresql.org/docs/current/performance-tips.html' },
      { title: 'Concurrency control (MVCC)', url: 'https://www.postgresql.org/docs/current/mvcc.html' },
      { title: 'NOTIFY', url: 'https://www.postgresql.org/docs/current/sql-notify.html' },
      { title: 'LISTEN', url: 'https://www.postgresql.org/docs/current/sql-listen.html' },
      { title: 'Client connection defaults (idle_in_transaction_session_timeout)', url: 'https://www.postgresql.org/docs/current/runtime-config-client.html' },
    ],
  },
  alembic: {
    name: 'Alembic',
    sources: [
      { title: 'Operation reference', url: 'https://alembic.sqlalchemy.org/en/latest/ops.html' },
      { title: 'Cookbook', url: 'https://alembic.sqlalchemy.org/en/latest/cookbook.html' },
    ],
  },
  aiohttp: {
    name: 'aiohttp',
    sources: [
      { title: 'Client quickstart', url: 'https://docs.aiohttp.org/en/stable/client_quickstart.html' },
      { title: 'Advanced client usage', url: 'https://docs.aiohttp.org/en/stable/client_advanced.html' },
    ],
  },
  uvicorn: {
    name: 'Uvicorn',
    sources: [{ title: 'Deployment', url: 'https://www.uvicorn.org/deployment/' }],
  },
  sqlite: {
    name: 'SQLite',
    sources: [
      { title: 'sqlite3 module', url: 'https://docs.python.org/3/library/sqlite3.html' },
      { title: 'Write-ahead logging', url: 'https://www.sqlite.org/wal.html' },
    ],
  },
  mysql: {
    name: 'MySQL',
    sources: [{ title: 'Optimization', url: 'https://dev.mysql.com/doc/refman/8.0/en/optimization.html' }],
  },
  celery: {
    name: 'Celery',
    sources: [
      { title: 'Tasks', url: 'https://docs.celeryq.dev/en/stable/userguide/tasks.html' },
      { title: 'Optimizing', url: 'https://docs.celeryq.dev/en/stable/userguide/optimizing.html' },
    ],
  },
  redis: {
    name: 'Redis (redis-py)',
    sources: [
      { title: 'redis-py documentation', url: 'https://redis.readthedocs.io/en/stable/' },
      { title: 'Advanced features (pipelines, pub/sub)', url: 'https://redis.readthedocs.io/en/stable/advanced_features.html' },
    ],
  },
};

/** Other spellings of stack keys (package names, extras) mapped to knowledge-base keys. */
export const TECH_ALIASES: Readonly<Record<string, string>> = {
  'sqlalchemy[asyncio]': 'sqlalchemy-async',
  'sqlalchemy-asyncio': 'sqlalchemy-async',
  psycopg2: 'psycopg',
  'psycopg2-binary': 'psycopg',
  psycopg3: 'psycopg',
  'psycopg-binary': 'psycopg',
  'psycopg[binary]': 'psycopg',
  'psycopg-pool': 'psycopg',
  postgres: 'postgresql',
  'redis-py': 'redis',
  'redis.asyncio': 'redis',
};

/** Async drivers whose presence next to SQLAlchemy means SQLAlchemy is used through asyncio. */
const ASYNC_SQLALCHEMY_DRIVERS = ['asyncpg', 'aiosqlite', 'aiomysql', 'asyncmy'];

/**
 * Knowledge-base keys for a set of detected stack keys, in `TECHNOLOGIES` order, unknown keys
 * dropped. Case-insensitive; aliases resolved; `sqlalchemy-async` implied by SQLAlchemy plus an
 * async driver.
 */
export function technologiesFor(stackKeys: Iterable<string>): string[] {
  const found = new Set<string>();
  const raw = new Set<string>();
  for (const key of stackKeys) {
    const k = key.toLowerCase();
    raw.add(k);
    found.add(TECH_ALIASES[k] ?? k);
  }
  if (found.has('sqlalchemy') && ASYNC_SQLALCHEMY_DRIVERS.some((d) => raw.has(d))) found.add('sqlalchemy-async');
  return Object.keys(TECHNOLOGIES).filter((k) => found.has(k));
}
