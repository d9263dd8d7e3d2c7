/**
 * The project context: what the main thread learns about the project before any rule runs.
 * Plain data, structured-cloneable: built once and handed to every worker once. Every array is
 * sorted and every path is relative to the root with `/`, so two runs give the same bytes.
 */

export interface Problem {
  file: string;
  reason: string;
}

/** A technology found in a manifest (or inferred from one), with the constraint written there. */
export interface StackEntry {
  /** The version constraint as written (`^0.110`, `>=2.0,<3`, `16`), or null when none. */
  version: string | null;
  /** The file it was found in. */
  source: string;
  /** What the technology is; absent on entries built by hand. */
  kind?: 'database' | 'orm' | 'driver' | 'framework' | 'migration' | 'other';
}

/** A human summary of the stack, derived from {@link ProjectContext.stack}. */
export interface StackSummary {
  /** `PostgreSQL 16`, `PostgreSQL`, `SQLite`, … */
  databases: string[];
  /** `SQLAlchemy 2.x`, `SQLAlchemy 1.x`, `SQLModel`, `Django ORM`, `Tortoise ORM`. */
  orms: string[];
  drivers: string[];
  /** `FastAPI`, `Starlette`, `aiohttp`, `Celery`, `arq`, `dramatiq`, `asyncio`. */
  frameworks: string[];
}

/** A database service from docker-compose. */
export interface DatabaseService {
  /** `postgresql`, `mysql`, `mariadb`, `mongodb`, `redis`. */
  engine: string;
  /** Major version from the image tag (`postgres:16-alpine` → `16`), or null. */
  version: string | null;
  image: string;
  service: string;
  file: string;
}

/** A literal Python value as JSON, or `"dynamic"` when it is not a literal. */
export type LiteralValue = string | number | boolean | null | LiteralValue[] | { [key: string]: LiteralValue };

export interface EngineInfo {
  /** The variable it is assigned to, or null. */
  name: string | null;
  async: boolean;
  /** The enclosing function (`create_engine` wrappers, `lifespan`), or null at module level. */
  function: string | null;
  /** `create_engine` / `create_async_engine` (or a `*_from_config` variant), or `asyncpg.create_pool`. */
  factory: string;
  /** URL scheme (`postgresql+asyncpg`) when the URL is literal (or a literal prefix), else null. Never the full URL. */
  urlScheme: string | null;
  /** Every keyword argument: literal value, or `"dynamic"`. */
  kwargs: Record<string, LiteralValue>;
  /** `poolclass=` as written (`NullPool`), or null. */
  poolClass: string | null;
  file: string;
  line: number;
}

export interface EngineGetterInfo {
  /** `module.function` or `module.Class.method`. */
  name: string;
  method: boolean;
  /** A method whose name no other method of the project named for an engine has: a call of that name on an object of unknown class is this one. */
  byName?: true;
  /** The engine runs in AUTOCOMMIT: each statement commits on its own. */
  autocommit?: true;
}

export interface SessionFactoryInfo {
  /** `sessionmaker`, `async_sessionmaker`, `scoped_session`, `Session`, `AsyncSession`. */
  kind: string;
  name: string | null;
  /** The enclosing function, or null at module level. */
  function: string | null;
  /** The bind (`engine`) as written, or null. */
  bind: string | null;
  /** `class_=` as written (`AsyncSession`), or null. */
  class: string | null;
  /** Literal value, `"dynamic"`, or null when not given (SQLAlchemy's default is true). */
  expireOnCommit: LiteralValue | null;
  autoflush: LiteralValue | null;
  kwargs: Record<string, LiteralValue>;
  file: string;
  line: number;
}

export interface PoolListenerInfo {
  /** The listened target as written: `engine.sync_engine`, `Pool`, `engine`. */
  target: string;
  event: string;
  /** The listener function name. */
  function: string | null;
  file: string;
  line: number;
}

export interface SessionProviderInfo {
  name: string;
  async: boolean;
  /** What is yielded: `AsyncSession`, `Session`, or the session factory's name. */
  yields: string;
  /** Decorated with `contextmanager` / `asynccontextmanager` (or wrapped by one: `get_db = contextmanager(get_session)`). */
  contextManager: boolean;
  /** Its teardown only closes or rolls back the session (see `ProviderCandidate.closesOnly`). */
  closesOnly?: true;
  file: string;
  line: number;
}

/** A project function that returns a new session or connection its caller must close (`def new_session() -> Session: return Maker()`). */
export interface SessionHelperInfo {
  name: string;
  kind: 'session' | 'connection';
  /** What it returns: the callee (`SessionLocal`, `engine.connect`) or its return annotation. */
  returns: string;
  file: string;
  line: number;
  /** A class whose instances make the session in `__init__` and close it in `close()`/`__exit__`. */
  owner?: true;
  /** What it returns commits each statement itself (`conn.autocommit = True`, `autocommit=True`). */
  autocommit?: true;
}

/**
 * A project class or function that makes a streaming response: `class SSE(EventSourceResponse)`
 * (and subclasses of it), `def sse(gen): return EventSourceResponse(gen)` (and wrappers of it).
 */
export interface StreamingFactoryInfo {
  /** Qualified name (`app.streams.SSE`, `app.streams.sse`). */
  name: string;
  kind: 'class' | 'function';
  /** An event stream (sse-starlette, `media_type="text/event-stream"`). */
  sse: boolean;
  /** For a function: the index of its parameter that becomes the response's content, or null. */
  contentParam: number | null;
  /** Derives from (or returns) Starlette's `FileResponse`: a file download, not a stream. */
  download?: true;
  file: string;
  line: number;
}

export interface TriggerInfo {
  name: string;
  table: string;
  /** `BEFORE`, `AFTER`, `INSTEAD OF`. */
  timing: string;
  /** `INSERT`, `UPDATE`, `DELETE`, `TRUNCATE`. */
  events: string[];
  forEach: 'ROW' | 'STATEMENT';
  function: string;
  /** Channels the trigger's function notifies on (empty when it does not notify). */
  channels: string[];
  file: string;
  line: number;
}

export interface NotifyFunctionInfo {
  name: string;
  /** Literal channel names, or `"dynamic"`. */
  channels: string[];
  returnsTrigger: boolean;
  file: string;
  line: number;
}

export interface ListenInfo {
  channel: string;
  file: string;
  line: number;
}

export interface MigrationsInfo {
  /** alembic `script_location` values found in alembic.ini files. */
  scriptLocations: string[];
  files: string[];
  triggers: TriggerInfo[];
  notifyFunctions: NotifyFunctionInfo[];
  listens: ListenInfo[];
  /** SQL statements that did not parse (each also has a `problems` entry). */
  sqlErrors: number;
}

export interface RelationshipInfo {
  name: string;
  target: string | null;
  /** Loader strategy: the literal `lazy=` value, `select` by default, `unknown` when not literal. */
  lazy: string;
  /** Where it is declared: the model's file, or a mixin's. */
  file: string;
  line: number;
  /**
   * One related row, not a collection (a many-to-one): `Mapped["User"]`, `uselist=False`, or a
   * foreign-key column `<name>_id` in the same class. Absent when not known to be scalar.
   */
  scalar?: true;
  /**
   * The side of a one-to-one without the foreign key (a `backref(..., uselist=False)`): one row,
   * but loaded by the other table's key, so never from the identity map.
   */
  reverse?: true;
  /**
   * The relationship on the target that is this one's other side, when the code pairs them
   * (`back_populates="x"`, `backref="x"` / `backref("x", ...)`, or the backref this one was made by).
   */
  inverse?: string;
  /** The column of `foreign_keys=` (`"Task.assignee_id"`, `[assignee_id]`) when it names one. */
  foreignKey?: string;
  /** `overlaps="a,b"`: relationships SQLAlchemy is told share its columns. */
  overlaps?: string[];
  /** Through an association table (`secondary=`): a many-to-many. */
  secondary?: true;
  /** Declared a collection (`Mapped[list[...]]`, `uselist=True`, `order_by=`, `collection_class=`). */
  collection?: true;
}

export interface DependencyAliasInfo {
  /** `module.X`. */
  name: string;
  type: string;
  provider: string;
}

export interface SharedSessionInfo {
  /** `module.name` of the module-level name. */
  name: string;
  /** `AsyncSession` (a factory of them, or the class) or `Session`. */
  kind: 'Session' | 'AsyncSession';
  /** The factory or class called, as qualified. */
  made: string;
  file: string;
  line: number;
  /** A class attribute of this class (`class Service: db = SessionLocal()`): `name` is `module.Class.attr`. */
  owner?: string;
  /** Held by an object made at import (`repo = Repository(SessionLocal())`): that constructor. */
  holder?: string;
  /** The holder's `__init__` makes the session (`cache = ItemCache()`). */
  madeInInit?: true;
}

export interface ModelInfo {
  name: string;
  table: string | null;
  /** `declarative`, `sqlmodel`, `mapped` (registry.mapped), `imperative` (`map_imperatively`/`mapper`), `table` (classic Table()). */
  kind: string;
  file: string;
  line: number;
  columnCount: number;
  relationships: RelationshipInfo[];
  /**
   * Columns that load on first access, one SELECT per row: `deferred(Column(...))`,
   * `mapped_column(..., deferred=True)`, `column_property(..., deferred=True)` in the class body
   * (or a mixin's, a base's); `name` or `name:group`. Absent when none.
   */
  deferred?: string[];
  /**
   * The names of its column attributes (its class body's, its mixins' and bases'; SQLModel's
   * annotated fields), its primary-key columns (`primary_key=True`) and its foreign-key columns:
   * what a query's `load_only(...)` leaves unloaded. Absent when none is known.
   */
  columns?: string[];
  primaryKey?: string[];
  /**
   * Column sets the schema keeps unique besides the primary key: `unique=True` columns,
   * `UniqueConstraint`/`PrimaryKeyConstraint`/`Index(..., unique=True)` of `__table_args__` (its
   * own, its mixins' and bases'). Absent when none is known.
   */
  uniqueKeys?: string[][];
  foreignKeyColumns?: string[];
  /**
   * `name = association_proxy("rel", "attr")` in the class body (or a mixin's, a base's): reading
   * `name` on a row reads `rel` first, so it loads `rel` as a read of `rel` does. Absent when none.
   */
  proxies?: AssociationProxyInfo[];
}

/** An attribute that reads through one of the model's relationships (`sqlalchemy.ext.associationproxy`). */
export interface AssociationProxyInfo {
  /** The attribute: `template_name`. */
  name: string;
  /** The relationship it goes through: `template`. */
  relationship: string;
  /** What it reads on the related row (or on each row of a collection): `name`. */
  attribute: string;
  file: string;
  line: number;
}

export interface EventSite {
  /** Channel name, or `"dynamic"`. */
  channel: string;
  file: string;
  line: number;
  /** `pg_notify`, `notify`, `publish`, `listen`, `add_listener`, `subscribe`. */
  kind: string;
}

export interface AdrInfo {
  id: string;
  title: string;
  status: string | null;
  file: string;
  /** The document text, capped at {@link ADR_TEXT_LIMIT} characters. */
  text: string;
}

export const ADR_TEXT_LIMIT = 20_000;

export interface ProjectContext {
  root: string;
  /** Detected technologies by key (`fastapi`, `sqlalchemy`, `postgresql`, …) with version and source. */
  stack: Record<string, StackEntry>;
  summary: StackSummary;
  database: DatabaseService[];
  engines: EngineInfo[];
  sessionFactories: SessionFactoryInfo[];
  /**
   * Class attributes bound to a module-level session factory of the project somewhere in it
   * (`session_source = LedgerSession` in a class body, `self.maker = SessionLocal`), by attribute
   * name, each to the factory's qualified name. Absent when none.
   */
  factoryAttributes?: Record<string, string>;
  /**
   * `expire_on_commit` set other than by a factory's keyword (`s.sync_session.expire_on_commit =
   * False`, `Maker(expire_on_commit=False)` per session, `Maker.configure(...)`, a kwargs dict), to
   * a value other than `True`, outside tests: sessions the factories alone do not describe.
   * Absent when none.
   */
  expireOnCommitSettings?: { file: string; line: number }[];
  poolListeners: PoolListenerInfo[];
  sessionProviders: SessionProviderInfo[];
  /** Functions that return a new session/connection (acquisitions for their callers). */
  sessionHelpers: SessionHelperInfo[];
  /**
   * Functions and methods that hand out an engine, through any chain of the project's getters
   * (`get_write_engine()` → `_get_engine_from_url()` → `create_engine(...)`): a `.connect()` on
   * what they return opens a connection. Absent when none.
   */
  engineGetters?: EngineGetterInfo[];
  /** Methods named for an engine that hand out something else (`SearchClient.get_engine`): `module.Class.method`. Absent when none. */
  engineNamedMethods?: string[];
  /**
   * One session object made at module level (`db = SessionLocal()`, `session = Session(engine)`)
   * that every function importing it shares. Absent when none.
   */
  sharedSessions?: SharedSessionInfo[];
  /**
   * Module-level `X = Annotated[T, Depends(f)]` aliases (`SessionDep`): a parameter annotated
   * `X` in another module is injected by `f` and holds a `T`. Absent when none.
   */
  dependencyAliases?: DependencyAliasInfo[];
  /** Project subclasses of streaming responses and functions that return one. */
  streamingFactories?: StreamingFactoryInfo[];
  /** The project's class-based views (`module.Class`): classes deriving from them are views too. */
  viewClasses?: string[];
  /** Session-like names some module calls `remove()`/`close()` on (`Session.remove()` in a teardown). */
  sessionReleases?: string[];
  /**
   * Directories below the root that hold a Python manifest of their own (`pyproject.toml`,
   * `setup.py`, `setup.cfg`, `requirements*.txt`, `Pipfile`): the projects of a monorepo. Absent
   * when there are none.
   */
  projects?: string[];
  migrations: MigrationsInfo;
  models: ModelInfo[];
  /**
   * Flask-SQLAlchemy: the names of the `SQLAlchemy()` objects whose `.Model` the project's models
   * derive from (`db` for `class Event(db.Model)`); `db.session` is their scoped session.
   */
  flaskDbHandles: string[];
  /**
   * Module-level names bound to such a handle's session (`db_session = db.session` in a package
   * `__init__`), qualified by their module (`app.api.db_session`): the same request-scoped session
   * wherever they are imported. Absent when there are none.
   */
  flaskSessionAliases?: string[];
  events: { publishers: EventSite[]; subscribers: EventSite[] };
  adrs: AdrInfo[];
  problems: Problem[];
}

export function emptyContext(root: string): ProjectContext {
  return {
    root,
    stack: {},
    summary: { databases: [], orms: [], drivers: [], frameworks: [] },
    database: [],
    engines: [],
    sessionFactories: [],
    poolListeners: [],
    sessionProviders: [],
    sessionHelpers: [],
    migrations: { scriptLocations: [], files: [], triggers: [], notifyFunctions: [], listens: [], sqlErrors: 0 },
    models: [],
    flaskDbHandles: [],
    events: { publishers: [], subscribers: [] },
    adrs: [],
    problems: [],
  };
}

export { discoverContext } from './discover.js';
