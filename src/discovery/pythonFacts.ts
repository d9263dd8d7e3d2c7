/**
 * What one Python file tells the project context: engines, session factories, pool listeners,
 * session-provider candidates, ORM classes (resolved into models across files later), classic
 * `Table(...)`s, SQL strings, and event publishers/subscribers. Reads the semantic model; names
 * are resolved through its imports.
 */
import type { SqlFacts } from '../rules/sql/parse.js';
import type { SyntaxNode } from '../parse/parser.js';
import type { CallInfo, FileModel } from '../semantic/model.js';
import { assignmentsTo, classViews, declaresGlobal, resolveImported } from '../semantic/model.js';
import { codeText } from '../semantic/codeText.js';
import { wrappedGenerator } from '../semantic/valueTypes.js';
import type {
  AssociationProxyInfo,
  EngineInfo,
  EventSite,
  LiteralValue,
  ModelInfo,
  PoolListenerInfo,
  RelationshipInfo,
  SessionFactoryInfo,
} from './context.js';
import { DYNAMIC, PLACEHOLDER, callArgs, formattedString, literalValue, stringOrigin, stringValue, type LiteralScope } from './pythonLiterals.js';

export interface ProviderCandidate {
  name: string;
  async: boolean;
  /** The callee that made the yielded value (`async_session_maker`, `sqlalchemy.orm.Session`), or null. */
  callee: string | null;
  calleeResolved: string | null;
  returnType: string | null;
  contextManager: boolean;
  /**
   * Its teardown only closes or rolls back: the body names no `commit`, `begin` or autocommit,
   * and calls nothing but the factory and `close`/`rollback`/`remove` (or logging). A write its
   * caller leaves uncommitted is then discarded when the block ends.
   */
  closesOnly?: true;
  line: number;
}

/** A module-level function that returns what a call made (`return SessionLocal()`), or is annotated `-> Session`. */
export interface HelperCandidate {
  name: string;
  /** The callee of the returned call (`SessionLocal`, `engine.connect`), resolved through imports, or null. */
  callee: string | null;
  returnType: string | null;
  line: number;
  /** A class that owns what its `__init__` makes (see `ownerCandidate`). */
  owner?: true;
  /** The function turns autocommit on for what it returns (`conn.autocommit = True`). */
  autocommit?: true;
}

/**
 * A module-level class with its bases, or a module-level function whose returns all call the
 * same callee: discovery keeps those that make a streaming response.
 */
export interface StreamingCandidate {
  /** `module.Name`. */
  name: string;
  kind: 'class' | 'function';
  /** Class: its bases; function: the callee of its returns. Qualified through imports, or `module.name` for a name of this file. */
  targets: string[];
  /** Function: what the returned call passes as content (first positional or `content=`), as the index of the function's parameter. */
  contentParam: number | null;
  /** Function: the returned call sets `media_type="text/event-stream"`. */
  eventStream: boolean;
  line: number;
}

/**
 * A function or method named for an engine (or annotated to return one) whose returns hand out
 * an engine: `return create_engine(url)`, a local or module engine (`return engine`), or the
 * result of another getter (`return get_write_engine()`, `return self._engine_for(url)`).
 */
export interface EngineGetterFact {
  /** `module.function`, or `module.Class.method`. */
  name: string;
  /** A method (callers reach it on an object whose class may not be known). */
  method: boolean;
  /** A return builds or names an engine, or the return annotation is `Engine` / `AsyncEngine`. */
  direct: boolean;
  /** The callees of its returned calls that may be getters: qualified through imports, `module.Class.m` for `self.m()`. */
  calls: string[];
  /** The engine it hands out runs in AUTOCOMMIT (`execution_options(isolation_level="AUTOCOMMIT")`, `isolation_level=`). */
  autocommit?: true;
}

/** `def init(url): ...; return Maker, engine`: a function that returns a session factory at a tuple position. */
export interface TupleBuilderFact {
  /** `module.function`. */
  name: string;
  index: number;
  kind: 'sessionmaker' | 'async_sessionmaker';
}

/** `SessionLocal, engine = init(url)` at module level: names bound from one call's tuple. */
export interface TupleUnpackFact {
  targets: string[];
  /** The callee, resolved through imports (`app.db.init`), or as written. */
  callee: string;
  line: number;
}

/** One engine setting of a Flask-SQLAlchemy app's config (`SQLALCHEMY_ENGINE_OPTIONS`, `SQLALCHEMY_POOL_SIZE`, the URI). */
export interface EngineConfigFact {
  key: string;
  /** Engine options by name (`pool_recycle`) for `SQLALCHEMY_ENGINE_OPTIONS`; `{ value }` for a single setting; null when not literal. */
  options: Record<string, LiteralValue> | null;
  line: number;
}

/** A `flask_sqlalchemy.SQLAlchemy(...)` construction: the engine it makes is configured by the app's config. */
export interface FlaskEngineFact {
  name: string | null;
  function: string | null;
  /** `engine_options={...}` as literal options, `{}` when not given, null when not literal. */
  engineOptions: Record<string, LiteralValue> | null;
  line: number;
}

export interface ClassFacts {
  name: string;
  /** `module.Class`. */
  qualified: string;
  file: string;
  line: number;
  /** Base classes: resolved through imports when possible, else as written. */
  bases: string[];
  tableKeyword: boolean;
  decorators: string[];
  tablename: string | null;
  /** Source of a non-literal `__tablename__` (a `declared_attr`), for derived names. */
  tablenameExpr: string | null;
  abstract: boolean;
  /** `Column(` / `mapped_column(` / `Field(` attributes and annotated `Mapped[...]` attributes. */
  columns: number;
  /** Annotated attributes without a value or with a plain default (columns in SQLModel). */
  plainAnnotated: number;
  /**
   * The names of the column attributes the class body declares (`Column(`, `mapped_column(`,
   * `Field(`, `deferred(...)`, a `Mapped[...]` annotation without a value, a `declared_attr`
   * returning a column); and, apart, the plain annotated names (SQLModel's columns). What a
   * `load_only(...)` of a query leaves unloaded.
   */
  columnNames?: string[];
  plainNames?: string[];
  /** Columns declared `primary_key=True`: always loaded, whatever `load_only(...)` names. */
  primaryKeys?: string[];
  /**
   * Sets of columns the schema keeps unique: a column declared `unique=True`, a
   * `UniqueConstraint(...)`, a `PrimaryKeyConstraint(...)` or an `Index(..., unique=True)` of
   * `__table_args__` (columns by name or as attributes).
   */
  uniqueKeys?: string[][];
  relationships: RelationshipInfo[];
  /** Uses 2.0-only API (`Mapped[`, `mapped_column`). */
  modern: boolean;
  /** Attributes the class's relationships add to their targets (`backref="owner"`). */
  backrefs?: BackrefFact[];
  /**
   * Attributes annotated `Mapped[...]` with no value (set by an imperative mapping or a
   * backref): true for one row (`Mapped[Optional["User"]]`), false for a collection.
   */
  mappedAttrs?: Record<string, boolean>;
  /** Columns with a foreign key: `author_id = Column(ForeignKey(...))`. */
  foreignKeys?: string[];
  /**
   * What those foreign keys reference: a table (`ForeignKey("queries.id")` → `queries`) or a class
   * (`ForeignKey(Query.id)` → `@Query`). A relationship to a model whose table the class
   * references (and that references nothing of the class) is a many-to-one.
   */
  fkTargets?: string[];
  /** Relationships declared with `primaryjoin=`. */
  customJoins?: string[];
  /** Columns loaded on first access, one SELECT per row (see {@link ModelInfo.deferred}). */
  deferred?: string[];
  /** `name = association_proxy("rel", "attr")` (see {@link ModelInfo.proxies}). */
  proxies?: AssociationProxyInfo[];
  /** Columns the class body declares loaded with the row (not deferred): they override a base's deferred one. */
  eagerColumns?: string[];
  /** Class-level string constants (`events_backref_name = "all_notes"`): what a mixin's `cls.<name>` reads. */
  stringAttrs?: Record<string, string>;
  /**
   * Backrefs of a mixin's `declared_attr` relationships whose name the class using the mixin sets
   * (`backref=backref(cls.events_backref_name, lazy="dynamic")`): resolved per model.
   */
  templatedBackrefs?: { attr: string; owner: string; lazy: string; line: number; scalar: boolean | null }[];
}

/**
 * `relationship(Target, backref="name")` (or `backref=backref("name", lazy=...)`): SQLAlchemy
 * adds the relationship `name` to `Target`, back to the declaring class.
 */
export interface BackrefFact {
  /** The class that gets the attribute, as the forward relationship names it. */
  owner: string;
  relationship: RelationshipInfo;
  /**
   * One row, or a collection, when the declaration says (`backref("x", uselist=False)`; the
   * backref of a many-to-one is a collection); null when the owner's annotations must decide.
   */
  scalar: boolean | null;
}

/**
 * A class mapped imperatively: `registry.map_imperatively(Cls, table, properties={...})` or the
 * classic `mapper(Cls, table, properties={...})`, the class's relationships in `properties`.
 */
export interface ImperativeMapping {
  /** The class as written, resolved through the file's imports when it can be. */
  cls: string;
  /** The table argument as written (`package_table`, `tag.tag_table`). */
  table: string | null;
  relationships: RelationshipInfo[];
  backrefs: BackrefFact[];
  file: string;
  line: number;
}

export interface SqlString {
  text: string;
  line: number;
  /** A `text()` / `literal_column()` piece that may be an expression, not a statement: parse failures are not reported. */
  fragment?: boolean;
  /** What the PostgreSQL parser read in it (set by the worker that found the string). */
  facts?: SqlFacts;
}

export interface PythonFileFacts {
  engines: EngineInfo[];
  sessionFactories: SessionFactoryInfo[];
  /** Lines that set `expire_on_commit` other than as a factory's keyword, to anything but `True` (see `ProjectContext.expireOnCommitSettings`). */
  expireSettings?: number[];
  poolListeners: PoolListenerInfo[];
  providers: ProviderCandidate[];
  /** Functions that may return a new session/connection (resolved against the factories in discovery). */
  helpers?: HelperCandidate[];
  /** Functions and methods that may hand out an engine (resolved across modules in discovery). */
  engineGetters?: EngineGetterFact[];
  /** Flask-SQLAlchemy engine settings in app config, and the `SQLAlchemy(...)` constructions they configure. */
  engineConfig?: EngineConfigFact[];
  flaskEngines?: FlaskEngineFact[];
  /** Module-level `name = <handle>.session` (`db_session = db.session`): the handle as imported, qualified when it resolves. */
  sessionAliases?: { name: string; handle: string }[];
  /** Session factories handed out in tuples (`SessionLocal, engine = init(url)`). */
  tupleBuilders?: TupleBuilderFact[];
  tupleUnpacks?: TupleUnpackFact[];
  /** Candidates for the project's streaming responses (see `StreamingCandidate`). */
  streaming?: StreamingCandidate[];
  /** Class-based views of this file (`module.Class`), which other modules' classes may derive from. */
  views?: string[];
  /** `[module.Class, [qualified bases]]` for classes on a base named like a view (`…View`, `…Resource`, `…Endpoint`). */
  viewSubclasses?: [string, string[]][];
  /**
   * `[attribute, qualified name]` for attributes a class binds to a plain name (`maker =
   * SessionLocal` in its body, `self.maker = SessionLocal` in a method): discovery keeps those
   * whose name is a session factory of the project (`ProjectContext.factoryAttributes`).
   */
  classAttrRefs?: [string, string][];
  classes: ClassFacts[];
  imperative?: ImperativeMapping[];
  /** Module-level names bound to `declarative_base()` / `registry().generate_base()`. */
  declarativeRoots: string[];
  tables: ModelInfo[];
  /** SQL passed to execute/text/DDL/RunSQL calls. */
  sqlCalls: SqlString[];
  /** Other string literals that mention NOTIFY / LISTEN / pg_notify / CREATE TRIGGER. */
  sqlMentions: SqlString[];
  publishers: EventSite[];
  subscribers: EventSite[];
  sqlalchemy2: boolean;
  /** The file imports Flask-SQLAlchemy or Flask-AppBuilder (their `db.Model` is a declarative root). */
  flaskSqlalchemy: boolean;
  /** Alembic `revision` / `down_revision` (migrations only), to replay migrations in order. */
  revision: string | null;
  downRevisions: string[];
  /**
   * Module-level `name = callee()` (no arguments) with the callee resolved through the imports:
   * when the callee is a session factory of the project, one session object every caller shares.
   */
  moduleCalls?: ModuleCallFact[];
  /** Module-level `X = Annotated[T, Depends(f)]`: the type and the provider a parameter annotated `X` gets. */
  dependencyAliases?: DependencyAliasFact[];
}

export interface DependencyAliasFact {
  name: string;
  /** `T`, qualified through the file's imports when it can be. */
  type: string;
  /** `f`, qualified the same way. */
  provider: string;
}

export interface ModuleCallFact {
  name: string;
  /** The callee, qualified through the file's imports (or its own module). */
  callee: string;
  line: number;
  /** Assigned in the body of this class (a class attribute), not at module level. */
  owner?: string;
  /** The call is the only argument of this constructor (`repo = Repository(SessionLocal())`). */
  holder?: string;
  /** The holder's `__init__` makes the call itself (`cache = ItemCache()`, `self.session = SessionLocal()` in it). */
  madeInInit?: true;
}

const ENGINE_FACTORIES = new Set(['create_engine', 'create_async_engine', 'engine_from_config', 'async_engine_from_config']);
const SESSION_FACTORIES = new Set(['sessionmaker', 'async_sessionmaker', 'scoped_session', 'async_scoped_session', 'Session', 'AsyncSession']);
const SQL_CALLS = new Set(['execute', 'exec_driver_sql', 'executescript', 'text', 'DDL', 'RunSQL', 'literal_column']);
const POOL_ENGINE_EVENTS = new Set([
  'connect', 'first_connect', 'checkout', 'checkin', 'reset', 'invalidate', 'soft_invalidate', 'close', 'detach',
  'close_detached', 'engine_connect', 'engine_disposed', 'before_cursor_execute', 'after_cursor_execute',
  'before_execute', 'after_execute', 'handle_error', 'begin', 'commit', 'rollback', 'do_connect',
]);
const SQL_MENTION = /pg_notify|\bNOTIFY\s|\bLISTEN\s|CREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?TRIGGER/i;
const ROOT_BASES = /(^|\.)(DeclarativeBase|DeclarativeBaseNoMeta|AdvancedDeclarativeBase)$/;

/**
 * advanced-alchemy's ready-made declarative bases (`UUIDAuditBase`, `BigIntBase`, ...; also
 * re-exported by Litestar and the library's framework extensions): abstract, already on a
 * declarative root, so a class on one is a mapped model.
 */
const LIBRARY_MODEL_BASES = /^(advanced_alchemy|litestar)(\.\w+)*\.((UUID(v6|v7)?|NanoID|BigInt|Identity)(Audit)?Base|DefaultBase)$/;

export function isLibraryModelBase(base: string): boolean {
  return LIBRARY_MODEL_BASES.test(base);
}

/**
 * Is the callee the library's function? Resolved names must come from the library; an unresolved
 * bare name counts unless a parameter or local of the enclosing functions shadows it
 * (`async with sessionmaker() as s` where `sessionmaker` is an argument).
 */
function fromLibrary(call: CallInfo, libs: RegExp, model: FileModel): boolean {
  if (call.receiver === null) {
    // The semantic model resolves through imports without looking at local scopes.
    for (let i = call.functionIndex; i >= 0; i = model.functions[i]!.parent) {
      const fn = model.functions[i]!;
      if (fn.params.some((p) => p.name === call.method)) return false;
      if (assignmentsTo(model, call.method).some((a) => a.functionIndex === i && a.target === call.method)) return false;
    }
  }
  return call.qualifiedName === null || libs.test(call.qualifiedName);
}

/**
 * `server.create_engine()`: a method of an object that no import resolves, called with nothing —
 * SQLAlchemy's factories need a URL or a configuration, so this is a project's own getter (whose
 * body, with the real `create_engine(url, ...)` and its options, is judged where it is).
 */
function projectEngineGetter(call: CallInfo): boolean {
  if (call.qualifiedName !== null || !call.hasReceiver) return false;
  const args = call.node.childForFieldName('arguments');
  return !!args && !args.namedChildren.some((a) => a.type !== 'comment');
}

/** SQL in a migration's `downgrade()` undoes the upgrade: the triggers it re-creates are not the schema. */
function inDowngrade(model: FileModel, call: CallInfo): boolean {
  for (let i = call.functionIndex; i >= 0; i = model.functions[i]!.parent) {
    if (/^downgrade/.test(model.functions[i]!.name)) return true;
  }
  return false;
}

/**
 * The function the call is in, or null at module level. An engine or factory bound to a name the
 * function declares `global` (`global SessionLocal; SessionLocal = sessionmaker(...)` in an init
 * function) is a module-level one: the function only fills it.
 */
function enclosingFunction(model: FileModel, call: CallInfo): string | null {
  if (call.functionIndex < 0) return null;
  const fn = model.functions[call.functionIndex]!;
  const name = assignedName(call.node);
  if (name && /^[A-Za-z_]\w*$/.test(name) && declaresGlobal(fn, name)) return null;
  return fn.qualifiedName;
}

/** The called function's own name: `_cae(...)` after `import create_async_engine as _cae` is `create_async_engine`. */
function calledName(call: CallInfo): string {
  const q = call.qualifiedName;
  return q ? q.slice(q.lastIndexOf('.') + 1) : call.method;
}

const SQLA = /^(sqlalchemy|sqlmodel|sqlalchemy_utils|flask_sqlalchemy)(\.|$)/;

/** The variable a call's value is assigned to: `engine = create_engine(...)`, `self.engine = ...`, `e = AsyncEngine(create_engine(...))`. */
function assignedName(node: SyntaxNode): string | null {
  const wrapper = asyncEngineWrapper(node);
  if (wrapper) return assignedName(wrapper);
  let p = node.parent;
  if (p?.type === 'await') p = p.parent;
  if (p?.type === 'assignment' && p.childForFieldName('right')?.id === (node.parent?.type === 'await' ? node.parent.id : node.id)) {
    return p.childForFieldName('left')?.text ?? null;
  }
  return null;
}

/** `AsyncEngine(create_engine(...))` (SQLModel's older async recipe): the wrapping call. */
function asyncEngineWrapper(node: SyntaxNode): SyntaxNode | null {
  const args = node.parent;
  const call = args?.type === 'argument_list' ? args.parent : null;
  if (call?.type !== 'call') return null;
  return /(^|\.)AsyncEngine$/.test(call.childForFieldName('function')?.text ?? '') ? call : null;
}

function valueOrDynamic(node: SyntaxNode | null | undefined, scope: LiteralScope): LiteralValue {
  const v = literalValue(node ?? null, scope);
  return v === undefined ? DYNAMIC : v;
}

/** App config keys that configure the engine Flask-SQLAlchemy makes. */
const ENGINE_CONFIG_KEY = /^(SQLALCHEMY_ENGINE_OPTIONS|SQLALCHEMY_POOL_SIZE|SQLALCHEMY_POOL_RECYCLE|SQLALCHEMY_POOL_TIMEOUT|SQLALCHEMY_MAX_OVERFLOW|SQLALCHEMY_DATABASE_URI)$/;
const ENGINE_CONFIG_HINT = /SQLALCHEMY_(ENGINE_OPTIONS|POOL_|MAX_OVERFLOW|DATABASE_URI)|flask_sqlalchemy|\.config\.from_(?:envvar|prefixed_env|file|pyfile)\s*\(/;
/** Flask config read from outside the code (an env var's file, `FLASK_*` variables, a file): the engine options may be there. */
const EXTERNAL_CONFIG = /^from_(envvar|prefixed_env|file|pyfile)$/;

/** `{ "pool_recycle": 300, "pool_size": cfg.SIZE }`: options by key (values literal or `"dynamic"`); null for anything but a dict display. */
function optionsOf(node: SyntaxNode | null | undefined, scope: LiteralScope): Record<string, LiteralValue> | null {
  if (node?.type !== 'dictionary') return null;
  const out: Record<string, LiteralValue> = {};
  for (const pair of node.namedChildren) {
    if (pair.type !== 'pair') return null;
    const k = literalValue(pair.childForFieldName('key'), scope);
    if (typeof k !== 'string') return null;
    out[k] = valueOrDynamic(pair.childForFieldName('value'), scope);
  }
  return out;
}

function configFact(key: string, value: SyntaxNode | null | undefined, line: number, scope: LiteralScope): EngineConfigFact {
  // The URI is kept as its scheme only (`postgresql+psycopg2`), as engines' URLs are.
  const options = key === 'SQLALCHEMY_ENGINE_OPTIONS' ? optionsOf(value, scope)
    : key === 'SQLALCHEMY_DATABASE_URI' ? { value: urlScheme(value ?? undefined, scope) }
    : { value: valueOrDynamic(value, scope) };
  return { key, options, line };
}

/**
 * Flask-SQLAlchemy's engine settings: `SQLALCHEMY_ENGINE_OPTIONS = {...}` (module or config
 * class), `app.config["SQLALCHEMY_POOL_RECYCLE"] = 300`, `app.config.update(KEY=...)` /
 * `.setdefault("KEY", ...)` / `.update({...})`, and every `SQLAlchemy(...)` construction; config
 * read from a file or the environment (`from_envvar`, `from_prefixed_env`, `from_file`,
 * `from_pyfile`) makes the options unknown.
 */
function collectEngineConfig(model: FileModel, scope: LiteralScope, facts: PythonFileFacts): void {

  for (const a of model.assignments) {
    if (!a.fromWith && ENGINE_CONFIG_KEY.test(a.target)) facts.engineConfig!.push(configFact(a.target, a.value, a.line, scope));
  }
  // `app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {...}`: subscript targets are not in the model's assignments.
  for (const node of model.root.descendantsOfType('assignment')) {
    const left = node.childForFieldName('left');
    if (left?.type !== 'subscript') continue;
    const sub = literalValue(left.childForFieldName('subscript'), scope);
    if (typeof sub === 'string' && ENGINE_CONFIG_KEY.test(sub)) facts.engineConfig!.push(configFact(sub, node.childForFieldName('right'), node.startPosition.row + 1, scope));
  }
  for (const call of model.calls) {
    // `app.config.from_envvar("SETTINGS")`: settings the code does not show; the engine's options are unknown.
    // (A test's `app.config.from_pyfile("testing.cfg")` is not the app's configuration.)
    if (call.method && EXTERNAL_CONFIG.test(call.method) && /(^|\.)config\.from_\w+$/.test(call.calleeText) && !model.isTestFile) {
      facts.engineConfig!.push({ key: 'SQLALCHEMY_ENGINE_OPTIONS', options: null, line: call.line });
      continue;
    }
    const args = call.method === 'update' || call.method === 'setdefault' || call.method === 'from_mapping' ? callArgs(call.node) : null;
    if (args) {
      for (const [k, v] of args.keywords) if (ENGINE_CONFIG_KEY.test(k)) facts.engineConfig!.push(configFact(k, v, call.line, scope));
      const first = args.positional[0];
      const firstKey = first ? literalValue(first, scope) : undefined;
      if (call.method === 'setdefault' && typeof firstKey === 'string' && ENGINE_CONFIG_KEY.test(firstKey)) {
        facts.engineConfig!.push(configFact(firstKey, args.positional[1], call.line, scope));
      }
      if (first?.type === 'dictionary') {
        for (const pair of first.namedChildren) {
          const k = pair.type === 'pair' ? literalValue(pair.childForFieldName('key'), scope) : undefined;
          if (typeof k === 'string' && ENGINE_CONFIG_KEY.test(k)) facts.engineConfig!.push(configFact(k, pair.childForFieldName('value'), call.line, scope));
        }
      }
      continue;
    }
    const q = call.qualifiedName ?? '';
    if (/^flask_sqlalchemy(\.extension)?\.SQLAlchemy$/.test(q)) {
      const ca = callArgs(call.node);
      const opts = ca.keywords.get('engine_options');
      facts.flaskEngines!.push({
        name: assignedName(call.node),
        function: enclosingFunction(model, call),
        engineOptions: opts ? optionsOf(opts, scope) : {},
        line: call.line,
      });
    }
  }
}

function kwargsOf(args: ReturnType<typeof callArgs>, scope: LiteralScope): Record<string, LiteralValue> {
  const out: Record<string, LiteralValue> = {};
  for (const k of [...args.keywords.keys()].sort()) out[k] = valueOrDynamic(args.keywords.get(k), scope);
  return out;
}

function short(text: string, max = 80): string {
  const t = text.replace(/\s+/g, ' ');
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}

function urlScheme(node: SyntaxNode | undefined, scope: LiteralScope, depth = 0): string | null {
  if (!node || depth > 3) return null;
  // `URL.create(drivername="postgresql+asyncpg", …)`, `make_url("…")`, or a name bound to one.
  let value: SyntaxNode | null = node;
  if (value.type === 'identifier') {
    const a = [...scope.model.assignments].reverse().find((x) => x.target === value!.text && x.functionIndex < 0);
    if (a?.value?.type === 'call') value = a.value;
  }
  if (value.type === 'call') {
    const callee = value.childForFieldName('function')?.text ?? '';
    const args = callArgs(value);
    if (/(^|\.)URL(\.create)?$/.test(callee)) {
      const d = stringValue(args.keywords.get('drivername') ?? args.positional[0] ?? null, scope);
      return d && !d.includes(PLACEHOLDER) ? d : null;
    }
    if (/(^|\.)(make_url|str)$/.test(callee)) return urlScheme(args.positional[0], scope, depth + 1);
    // `"sqlite:///{0}".format(path)`: the template's literal prefix.
    const fn = value.childForFieldName('function');
    if (fn?.type === 'attribute' && fn.childForFieldName('attribute')?.text === 'format') return urlScheme(fn.childForFieldName('object') ?? undefined, scope, depth + 1);
    // `db_url()` / `self.db_url(path)`: a function of this file that returns one expression.
    const name = fn?.type === 'identifier' ? fn.text : fn?.type === 'attribute' && /^(self|cls)$/.test(fn.childForFieldName('object')?.text ?? '') ? fn.childForFieldName('attribute')?.text : undefined;
    const returned = name ? onlyReturn(scope.model, name) : null;
    return returned ? urlScheme(returned, scope, depth + 1) : null;
  }
  // `"sqlite:///%s" % path`: the template's literal prefix.
  if (value.type === 'binary_operator' && value.childForFieldName('operator')?.text === '%') return urlScheme(value.childForFieldName('left') ?? undefined, scope, depth + 1);
  const s = stringValue(node, scope);
  if (s === null) return null;
  const prefix = s.split(PLACEHOLDER)[0]!;
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(prefix);
  return m ? m[1]! : null;
}

/** The expression a function of the file named `name` returns, when its body is that one `return` (a docstring aside). */
function onlyReturn(model: FileModel, name: string): SyntaxNode | null {
  const fns = model.functions.filter((f) => f.name === name);
  if (fns.length !== 1) return null;
  const stmts = fns[0]!.body?.namedChildren.filter((c) => c.type !== 'comment' && !(c.type === 'expression_statement' && c.namedChild(0)?.type === 'string')) ?? [];
  return stmts.length === 1 && stmts[0]!.type === 'return_statement' ? stmts[0]!.namedChild(0) : null;
}

/**
 * `connect_args={"check_same_thread": False}`, a dict written in place: an argument only
 * `sqlite3.connect` takes (a server driver refuses it). Not the conditional idiom
 * (`{...} if url.startswith("sqlite") else {}`), written for a URL that may be anything.
 */
function sqliteByArgs(args: ReturnType<typeof callArgs>): string | null {
  const connect = args.keywords.get('connect_args');
  return connect?.type === 'dictionary' && /["']check_same_thread["']\s*:/.test(connect.text) ? 'sqlite' : null;
}

export function pythonFileFacts(model: FileModel, isMigration: boolean, scope: LiteralScope): PythonFileFacts {
  /** The session factories' calls (`[start, end)`), whose `expire_on_commit=` keyword the factory records. */
  const factoryCalls: [number, number][] = [];
  const facts: PythonFileFacts = {
    engines: [],
    sessionFactories: [],
    poolListeners: [],
    providers: [],
    helpers: [],
    engineConfig: [],
    flaskEngines: [],
    tupleBuilders: [],
    tupleUnpacks: [],
    classes: [],
    declarativeRoots: [],
    tables: [],
    sqlCalls: [],
    sqlMentions: [],
    publishers: [],
    subscribers: [],
    sqlalchemy2: false,
    flaskSqlalchemy: [...model.imports.values()].some((q) => /^(flask_sqlalchemy|flask_appbuilder)(\.|$)/.test(q)),
    revision: null,
    downRevisions: [],
  };
  if (isMigration) {
    for (const a of model.assignments) {
      if (a.functionIndex >= 0) continue;
      const v = literalValue(a.value, scope);
      if (a.target === 'revision' && typeof v === 'string') facts.revision = v;
      if (a.target === 'down_revision') {
        facts.downRevisions = (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === 'string');
      }
    }
  }
  const file = model.path;
  const sqlNodes = new Set<number>();
  for (const a of model.assignments) {
    if (a.functionIndex >= 0 || a.fromWith || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
    // `db_session = db.session`: whether `db` is a Flask-SQLAlchemy handle, discovery decides.
    if (a.value?.type === 'attribute' && a.value.childForFieldName('attribute')?.text === 'session' && a.value.childForFieldName('object')?.type === 'identifier' && !inClassBody(a.node)) {
      const obj = a.value.childForFieldName('object')!.text;
      (facts.sessionAliases ??= []).push({ name: a.target, handle: resolveImported(model, obj) ?? obj });
      continue;
    }
    if (a.value?.type === 'subscript') {
      const alias = dependencyAlias(model, a.value.text);
      if (alias) (facts.dependencyAliases ??= []).push({ name: a.target, ...alias });
      continue;
    }
    if (a.value?.type !== 'call') continue;
    // In a class body (`class Service: db = SessionLocal()`): the class's attribute, made at import.
    let owner: string | undefined;
    for (let p = a.node.parent; p && p.type !== 'module'; p = p.parent) {
      if (p.type === 'class_definition') {
        owner = p.childForFieldName('name')?.text;
        break;
      }
    }
    let made = a.value;
    let holder: string | undefined;
    const args = a.value.childForFieldName('arguments')?.namedChildren.filter((c) => c.type !== 'comment') ?? [];
    // `repo = Repository(SessionLocal())`: an object holding one session made at import.
    let madeInInit = false;
    if (!owner && args.length === 1 && args[0]!.type === 'call' && (args[0]!.childForFieldName('arguments')?.namedChildCount ?? 1) === 0) {
      holder = a.value.childForFieldName('function')?.text;
      made = args[0]!;
    } else {
      // `item_cache = ItemCache()` where the class of this file makes a session in its
      // `__init__` (`self.session = SessionLocal()`): one instance, one session, at import.
      const cls = owner ? undefined : a.value.childForFieldName('function')?.text;
      // Not a `threading.local` subclass: its `__init__` runs again in every thread.
      const def = cls && /^[A-Z]\w*$/.test(cls) ? model.source.match(new RegExp(`^class\\s+${cls}\\s*(\\([^)]*\\))?\\s*:`, 'm'))?.[1] ?? '' : null;
      const init = def !== null && !/\blocal\b/.test(def) ? model.functions.find((f) => f.className === cls && f.name === '__init__' && f.parent < 0) : undefined;
      // Each `self.x = Factory()` of it: which one makes a session, the project context decides.
      const inner = init ? model.assignments.filter((x) => x.functionIndex === init.index && /^self\.\w+$/.test(x.target) && x.value?.type === 'call'
        && (x.value.childForFieldName('arguments')?.namedChildren.filter((c) => c.type !== 'comment').length ?? 1) === 0) : [];
      if (inner.length) {
        for (const x of inner.slice(1)) {
          const callee = x.value!.childForFieldName('function')?.text ?? '';
          const q = /^[A-Za-z_][\w.]*$/.test(callee) ? resolveImported(model, callee) : null;
          if (q) (facts.moduleCalls ??= []).push({ name: a.target, callee: q, line: a.line, holder: cls!, madeInInit: true });
        }
        holder = cls;
        made = inner[0]!.value!;
        madeInInit = true;
      } else if (args.length !== 0) continue;
    }
    const callee = made.childForFieldName('function')?.text ?? '';
    if (!/^[A-Za-z_][\w.]*$/.test(callee)) continue;
    const qualified = resolveImported(model, callee);
    if (qualified) (facts.moduleCalls ??= []).push({ name: a.target, callee: qualified, line: a.line, ...(owner ? { owner } : {}), ...(holder ? { holder } : {}), ...(madeInInit ? { madeInInit: true as const } : {}) });
  }

  for (const call of model.calls) {
    const m = calledName(call);
    const asyncpgPool = m === 'create_pool' && (call.qualifiedName === 'asyncpg.create_pool' || call.qualifiedName === 'asyncpg.pool.create_pool');
    if ((ENGINE_FACTORIES.has(m) && fromLibrary(call, SQLA, model) && !projectEngineGetter(call)) || asyncpgPool) {
      const args = callArgs(call.node);
      const url = args.positional[0] ?? args.keywords.get('url') ?? args.keywords.get('dsn');
      const poolclass = args.keywords.get('poolclass');
      facts.engines.push({
        name: assignedName(call.node),
        function: enclosingFunction(model, call),
        async: asyncpgPool || m.startsWith('async') || m === 'create_async_engine' || asyncEngineWrapper(call.node) !== null,
        factory: asyncpgPool ? 'asyncpg.create_pool' : m,
        urlScheme: m.endsWith('_from_config') ? null : urlScheme(url, scope) ?? sqliteByArgs(args),
        kwargs: kwargsOf(args, scope),
        poolClass: poolclass ? poolclass.text.replace(/^.*\./, '') : null,
        file,
        line: call.line,
      });
    } else if (SESSION_FACTORIES.has(m) && fromLibrary(call, SQLA, model) && (call.receiver === null || /^(sa|sqlalchemy|orm|sqlmodel|asyncio)$/.test(call.receiver.text) || call.qualifiedName !== null)) {
      if (m === 'async_sessionmaker') facts.sqlalchemy2 = true;
      const args = callArgs(call.node);
      const bind = args.keywords.get('bind') ?? args.positional[0];
      const cls = args.keywords.get('class_');
      const expire = args.keywords.get('expire_on_commit');
      const autoflush = args.keywords.get('autoflush');
      factoryCalls.push([call.node.startIndex, call.node.endIndex]);
      facts.sessionFactories.push({
        kind: m,
        name: assignedName(call.node),
        function: enclosingFunction(model, call),
        bind: bind ? short(bind.text) : null,
        class: cls ? cls.text : null,
        // `**options` may carry it: not known.
        expireOnCommit: expire ? valueOrDynamic(expire, scope) : call.node.childForFieldName('arguments')?.namedChildren.some((a) => a.type === 'dictionary_splat') ? 'dynamic' : null,
        autoflush: autoflush ? valueOrDynamic(autoflush, scope) : null,
        kwargs: kwargsOf(args, scope),
        file,
        line: call.line,
      });
    } else if (m === 'listens_for' || (m === 'listen' && (call.qualifiedName === 'sqlalchemy.event.listen' || call.calleeText === 'event.listen'))) {
      const args = callArgs(call.node);
      const event = args.positional[1] ? stringValue(args.positional[1], scope) : null;
      if (!event || !POOL_ENGINE_EVENTS.has(event)) continue;
      let fnName: string | null = null;
      if (m === 'listens_for') {
        const def = call.node.parent?.type === 'decorator' ? call.node.parent.parent : null;
        fnName = def?.type === 'decorated_definition' ? (def.childForFieldName('definition')?.childForFieldName('name')?.text ?? null) : null;
      } else {
        fnName = args.positional[2]?.text ?? null;
      }
      facts.poolListeners.push({ target: short(args.positional[0]?.text ?? ''), event, function: fnName, file, line: call.line });
    } else if (m === 'declarative_base' || m === 'generate_base') {
      const name = assignedName(call.node);
      if (name && call.functionIndex < 0) facts.declarativeRoots.push(`${model.moduleName}.${name}`);
    } else if ((m === 'map_imperatively' || (m === 'mapper' && fromLibrary(call, SQLA, model) && callArgs(call.node).positional.length >= 2)) && !isMigration) {
      const mapping = imperativeMapping(call, model, scope);
      if (mapping) (facts.imperative ??= []).push(mapping);
    } else if (m === 'Table' && fromLibrary(call, SQLA, model) && !isMigration) {
      const t = classicTable(call, scope);
      if (t) facts.tables.push(t);
    } else if (m === 'publish' || m === 'subscribe' || m === 'psubscribe' || m === 'add_listener') {
      eventCall(call, scope, facts);
    }
    if (m === 'mapped_column' || m === 'DeclarativeBase') facts.sqlalchemy2 = true;
    if (SQL_CALLS.has(m) && !inDowngrade(model, call)) {
      const args = callArgs(call.node);
      const arg = args.positional[0] ?? args.keywords.get('sql') ?? args.keywords.get('statement') ?? args.keywords.get('text');
      if (!arg || arg.type === 'await') continue;
      const text = arg.type === 'call' || arg.type === 'binary_operator' ? formattedString(arg, scope) : stringValue(arg, scope);
      if (text === null) continue;
      const origin = arg.type === 'call' ? arg : stringOrigin(arg, scope);
      // Read once: the string literals inside are not SQL mentions of their own.
      for (const n of [arg, origin]) {
        sqlNodes.add(n.id);
        if (n.type === 'call' || n.type === 'binary_operator') {
          for (const inner of n.descendantsOfType(['string', 'concatenated_string'])) sqlNodes.add(inner.id);
        }
      }
      // `server_default=sa.text("now()")` is an expression; `op.execute(sa.text(...))` a statement.
      const outer = call.node.parent?.parent;
      const executed = outer?.type === 'call' && /(^|\.)(execute|exec_driver_sql)$/.test(outer.childForFieldName('function')?.text ?? '');
      const fragment = (m === 'text' || m === 'literal_column') && !executed;
      if (isMigration || SQL_MENTION.test(text)) facts.sqlCalls.push({ text, line: origin.startPosition.row + 1, ...(fragment ? { fragment } : {}) });
    }
  }

  // SQL in other string literals (a constant executed later, a DDL built elsewhere).
  if (!isMigration && SQL_MENTION.test(model.source)) {
    for (const node of model.root.descendantsOfType(['string', 'concatenated_string'])) {
      if (node.type === 'string' && node.parent?.type === 'concatenated_string') continue;
      if (sqlNodes.has(node.id) || (node.parent?.type === 'parenthesized_expression' && sqlNodes.has(node.parent.id))) continue;
      if (node.parent?.type === 'expression_statement') continue; // docstrings
      const text = stringValue(node, scope);
      if (text !== null && SQL_MENTION.test(text)) facts.sqlMentions.push({ text, line: node.startPosition.row + 1 });
    }
  }

  if (ENGINE_CONFIG_HINT.test(model.source)) collectEngineConfig(model, scope, facts);

  for (const cls of model.classes) {
    const c = classFacts(cls, model, scope);
    if (c) facts.classes.push(c);
    if (c?.modern) facts.sqlalchemy2 = true;
  }

  if (model.classes.length) {
    const refs = classAttrRefs(model);
    if (refs.length) facts.classAttrRefs = refs;
  }
  if (/sessionmaker/.test(model.source) || /^[A-Za-z_]\w*\s*,\s*[A-Za-z_][\w\s,]*=\s*[\w.]+\(/m.test(model.source)) collectTuples(model, facts);
  const engineNamed = ENGINE_GETTER_HINT.test(model.source);
  for (const fn of model.functions) {
    if (!fn.body) continue;
    if (engineNamed && !fn.isGenerator) {
      const getter = engineGetterCandidate(model, fn.index, facts.engines);
      if (getter) (facts.engineGetters ??= []).push(getter);
    }
    if (!fn.isGenerator) {
      const helper = fn.name === '__init__' ? ownerCandidate(model, fn.index) : helperCandidate(model, fn.index);
      if (helper) facts.helpers!.push(helper);
      continue;
    }
    const cand = providerCandidate(model, fn.index);
    if (cand) facts.providers.push(cand);
  }
  if (facts.providers.length && CONTEXTMANAGER_CALL.test(model.source)) wrappedProviders(model, facts.providers);
  if (STREAMING_HINT.test(model.source)) facts.streaming = streamingCandidates(model);
  if (model.classes.length) {
    const views = classViews(model, null);
    if (views.size) facts.views = [...views].map((v) => `${model.moduleName}.${v}`);
    // Classes on a base named like a view of another module (`AuthView(BaseView)`): views when
    // that base is one, which discovery decides once every file's facts are in.
    for (const c of model.classes) {
      const name = c.childForFieldName('name')?.text;
      if (!name || views.has(name)) continue;
      const bases = (c.childForFieldName('superclasses')?.namedChildren ?? []).map((b) => b.text).filter((b) => VIEW_LIKE_BASE.test(b));
      if (bases.length) (facts.viewSubclasses ??= []).push([`${model.moduleName}.${name}`, bases.map((b) => resolveImported(model, b) ?? `${model.moduleName}.${b}`)]);
    }
  }
  const settings = expireSettings(model, factoryCalls);
  if (settings.length) facts.expireSettings = settings;
  return facts;
}

/**
 * The lines that set `expire_on_commit` outside the factory calls (`[start, end)`) to anything
 * but `True`: a keyword of another call (`Maker(expire_on_commit=False)`, `Maker.configure(...)`),
 * an attribute assigned (`s.sync_session.expire_on_commit = False`), a key of a dict of options
 * (`{"expire_on_commit": False}`). Read from the tree and the dict keys' quotes, so prose in
 * comments and docstrings does not count.
 */
function expireSettings(model: FileModel, factoryCalls: readonly [number, number][]): number[] {
  const lines = new Set<number>();
  if (!model.source.includes('expire_on_commit')) return [];
  const off = (text: string | undefined) => text !== undefined && text.trim() !== 'True';
  for (const call of model.calls) {
    if (factoryCalls.some(([a, b]) => call.node.startIndex >= a && call.node.startIndex < b)) continue;
    const value = callArgs(call.node).keywords.get('expire_on_commit');
    if (value && off(value.text)) lines.add(value.startPosition.row + 1);
  }
  for (const a of model.assignments) {
    if (/(^|\.)expire_on_commit$/.test(a.target) && a.target.includes('.') && off(a.value?.text)) lines.add(a.line);
  }
  // `{"expire_on_commit": False}` in code: a dictionary's pair, not the same words in a string or comment.
  for (const d of model.root.descendantsOfType('pair')) {
    const key = d.childForFieldName('key');
    if (key?.type === 'string' && /^["']expire_on_commit["']$/.test(key.text) && off(d.childForFieldName('value')?.text)) lines.add(d.startPosition.row + 1);
  }
  return [...lines].sort((x, y) => x - y);
}

/** See `PythonFileFacts.classAttrRefs`. */
function classAttrRefs(model: FileModel): [string, string][] {
  const out: [string, string][] = [];
  for (const a of model.assignments) {
    const v = a.value;
    if (a.fromWith || !v || (v.type !== 'identifier' && v.type !== 'attribute') || /^(None|True|False|self|cls)(\.|$)/.test(v.text)) continue;
    let attr: string | null = null;
    if (a.functionIndex < 0) {
      // Directly in a class body: `class Repo: maker = SessionLocal`.
      const stmt = a.node.parent?.type === 'expression_statement' ? a.node.parent : a.node;
      if (stmt.parent?.type === 'block' && stmt.parent.parent?.type === 'class_definition' && /^[A-Za-z_]\w*$/.test(a.target)) attr = a.target;
    } else if (model.functions[a.functionIndex]!.className) {
      attr = /^self\.([A-Za-z_]\w*)$/.exec(a.target)?.[1] ?? null;
    }
    const q = attr ? qualifyHere(model, v.text.replace(/\s+/g, '')) : null;
    if (attr && q && !out.some(([x, y]) => x === attr && y === q)) out.push([attr, q]);
  }
  return out;
}

/** A base class named like a class-based view of the project. */
const VIEW_LIKE_BASE = /^[A-Za-z_][\w.]*(View|Resource|Endpoint)$/;

/** Text that may define a streaming response class or a function returning one. */
export const STREAMING_HINT = /Response|EventSource|stream|sse/i;

/** A bare or dotted name as this module binds it: through imports, or `module.name`. */
function qualifyHere(model: FileModel, text: string): string | null {
  if (!/^[A-Za-z_][\w.]*$/.test(text)) return null;
  return resolveImported(model, text) ?? (text.includes('.') ? text : `${model.moduleName}.${text}`);
}

/** See `StreamingCandidate`. */
function streamingCandidates(model: FileModel): StreamingCandidate[] {
  const out: StreamingCandidate[] = [];
  for (const c of model.classes) {
    if (c.parent?.type !== 'module' && c.parent?.parent?.type !== 'module') continue;
    const name = c.childForFieldName('name')?.text;
    if (!name) continue;
    const targets: string[] = [];
    for (const b of c.childForFieldName('superclasses')?.namedChildren ?? []) {
      const q = b.type === 'keyword_argument' ? null : qualifyHere(model, b.text);
      if (q) targets.push(q);
    }
    if (targets.length) out.push({ name: `${model.moduleName}.${name}`, kind: 'class', targets, contentParam: null, eventStream: false, line: c.startPosition.row + 1 });
  }
  for (const fn of model.functions) {
    // Module-level functions, and methods of module-level classes (`InvoiceFiles.as_attachment`,
    // a static, class or instance method), named `module.Class.method` as calls of them resolve.
    if (fn.parent >= 0 || !fn.body) continue;
    const owner = fn.className ? `${model.moduleName}.${fn.className}` : null;
    // The arguments of a call fill the parameters after `self`/`cls`, except for a static method.
    const shift = owner && !fn.decorators.some((d) => /^@?staticmethod$/.test(d)) ? 1 : 0;
    let callee: string | null = null;
    let contentParam: number | null = null;
    let eventStream = false;
    let ok = true;
    for (const r of ownNodes(fn.body, 'return_statement')) {
      let value = r.namedChild(0);
      if (value?.type === 'await') value = value.namedChild(0);
      if (value?.type !== 'call') { ok = false; break; }
      const calleeText = value.childForFieldName('function')?.text ?? '';
      // `return self._as_attachment(...)` / `cls.build(...)`: a method of the same class.
      const q = owner && /^(self|cls)\.\w+$/.test(calleeText) ? `${owner}.${calleeText.slice(calleeText.indexOf('.') + 1)}` : qualifyHere(model, calleeText);
      if (!q || (callee && callee !== q)) { ok = false; break; }
      callee = q;
      let content: SyntaxNode | null = null;
      for (const a of value.childForFieldName('arguments')?.namedChildren ?? []) {
        if (a.type === 'keyword_argument') {
          const k = a.childForFieldName('name')?.text;
          const v = a.childForFieldName('value');
          if (k === 'content') content = v;
          if (k === 'media_type' && v && /event-stream/.test(v.text)) eventStream = true;
        } else if (!content && a.type !== 'list_splat' && a.type !== 'dictionary_splat') content = a;
      }
      const i = content?.type === 'identifier' ? fn.params.findIndex((p) => p.name === content!.text) : -1;
      if (i - shift >= 0) contentParam = i - shift;
    }
    if (ok && callee) out.push({ name: `${owner ?? model.moduleName}.${fn.name}`, kind: 'function', targets: [callee], contentParam, eventStream, line: fn.startLine });
  }
  return out;
}

function eventCall(call: CallInfo, scope: LiteralScope, facts: PythonFileFacts): void {
  const args = callArgs(call.node);
  const name = calledName(call);
  const kind = name === 'psubscribe' ? 'subscribe' : name;
  const nodes: SyntaxNode[] = [];
  const kw = args.keywords.get('channel') ?? args.keywords.get('channels') ?? args.keywords.get('topic');
  if (kw) nodes.push(kw);
  else if (kind === 'subscribe') nodes.push(...args.positional);
  else if (args.positional[0]) nodes.push(args.positional[0]);
  const channels: string[] = [];
  for (const n of nodes) {
    if (n.type === 'list' || n.type === 'tuple') {
      for (const c of n.namedChildren) channels.push(...channelOf(c, scope));
    } else {
      channels.push(...channelOf(n, scope));
    }
  }
  const target = kind === 'publish' ? facts.publishers : facts.subscribers;
  for (const channel of channels) target.push({ channel, file: scope.model.path, line: call.line, kind });
}

/** A channel argument: its literal value, `dynamic` for a channel-like expression, nothing otherwise. */
function channelOf(node: SyntaxNode, scope: LiteralScope): string[] {
  const s = stringValue(node, scope);
  if (s !== null) return [s.includes(PLACEHOLDER) ? DYNAMIC : s];
  // `scheduler.add_listener(callback, MASK)` is not a channel; `channel_name` is.
  if (/channel|topic|subject|queue|room|stream/i.test(node.text)) return [DYNAMIC];
  return [];
}

function classicTable(call: CallInfo, scope: LiteralScope): ModelInfo | null {
  const args = callArgs(call.node);
  const name = args.positional[0] ? stringValue(args.positional[0], scope) : null;
  if (name === null || name.includes(PLACEHOLDER)) return null;
  let columns = 0;
  const primaryKey: string[] = [];
  const uniqueKeys: string[][] = [];
  for (const a of args.positional.slice(1)) {
    if (a.type !== 'call') continue;
    const callee = a.childForFieldName('function')?.text ?? '';
    if (/(^|\.)Column$/.test(callee)) {
      columns++;
      // `Column("user_id", ..., primary_key=True)`, `Column("email", ..., unique=True)`.
      const col = callArgs(a);
      const colName = col.positional[0] ? stringValue(col.positional[0], scope) : null;
      if (colName === null || !/^[A-Za-z_]\w*$/.test(colName)) continue;
      if (col.keywords.get('primary_key')?.type === 'true') primaryKey.push(colName);
      if (col.keywords.get('unique')?.type === 'true') uniqueKeys.push([colName]);
    } else {
      uniqueKeys.push(...tableArgKeys(a, scope));
    }
  }
  return {
    name: assignedName(call.node) ?? name,
    table: name,
    kind: 'table',
    file: scope.model.path,
    line: call.line,
    columnCount: columns,
    relationships: [],
    ...(primaryKey.length ? { primaryKey } : {}),
    ...(uniqueKeys.length ? { uniqueKeys } : {}),
  };
}

function calleeName(value: SyntaxNode | null): string | null {
  let v = value;
  if (v?.type === 'await') v = v.namedChild(0);
  if (v?.type !== 'call') return null;
  return v.childForFieldName('function')?.text.replace(/\s+/g, '') ?? null;
}

const LAZY_BOOL: Record<string, string> = { true: 'select', false: 'joined' };

function lazyOf(args: ReturnType<typeof callArgs>, scope: LiteralScope): string {
  let node = args.keywords.get('lazy');
  const saKwargs = args.keywords.get('sa_relationship_kwargs');
  if (!node && saKwargs) {
    const v = literalValue(saKwargs, scope);
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const lazy = (v as Record<string, LiteralValue>).lazy;
      if (typeof lazy === 'string') return lazy;
      if (lazy === undefined) return 'select';
      return 'unknown';
    }
    if (saKwargs.type === 'dictionary') {
      for (const pair of saKwargs.namedChildren) {
        if (pair.type === 'pair' && stringValue(pair.childForFieldName('key'), scope) === 'lazy') node = pair.childForFieldName('value') ?? undefined;
      }
      if (!node) return 'select';
    } else {
      return 'unknown';
    }
  }
  const sa = args.keywords.get('sa_relationship');
  if (!node && sa?.type === 'call') return lazyOf(callArgs(sa), scope);
  if (!node) return 'select';
  const v = literalValue(node, scope);
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return LAZY_BOOL[String(v)]!;
  if (v === null) return 'noload';
  return 'unknown';
}

/** `Mapped[List["Address"]]` → `Address`; `list["Hero"] | None` → `Hero`. */
export function targetFromAnnotation(annotation: string | null): string | null {
  if (!annotation) return null;
  let t = annotation.replace(/\s+/g, '');
  for (let i = 0; i < 6; i++) {
    t = t.replace(/^['"](.*)['"]$/, '$1');
    const parts = t.split('|').filter((p) => p !== 'None' && p !== '"None"');
    if (parts.length === 1) t = parts[0]!;
    const m = /^(?:[\w.]+\.)?(Mapped|WriteOnlyMapped|DynamicMapped|Optional|List|list|Set|set|Sequence|Iterable|Collection|FrozenSet|frozenset|Relationship|RelationshipProperty)\[(.*)\]$/.exec(t);
    if (!m) break;
    t = m[2]!;
  }
  t = t.replace(/^['"](.*)['"]$/, '$1');
  return /^[A-Za-z_][\w.]*$/.test(t) ? t : null;
}

const RELATIONSHIP_CALLS = new Set(['relationship', 'Relationship', 'dynamic_loader', 'relation']);

/**
 * A `relationship(...)` call declaring `attr` on the class `owner`: the relationship, and the
 * attribute its `backref=` adds to the target (lazy `select` unless `backref("x", lazy=...)`
 * says otherwise). The backref of a collection without `secondary=` is a many-to-one; of a
 * many-to-one or a many-to-many, a collection (unless `backref("x", uselist=False)`).
 */
function relationshipFact(call: SyntaxNode, last: string, attr: string, annotation: string | null, file: string, line: number, scope: LiteralScope, owner: string): { rel: RelationshipInfo; backref: BackrefFact | null } {
  const args = callArgs(call);
  const first = args.positional[0] ?? args.keywords.get('argument');
  let target: string | null = null;
  if (first) {
    const s = stringValue(first, scope);
    if (s !== null) target = s;
    else if (first.type === 'identifier' || first.type === 'attribute') target = first.text;
    else if (first.type === 'lambda') target = first.childForFieldName('body')?.text ?? null;
  }
  target ??= targetFromAnnotation(annotation);
  // `uselist=False` is what a one-to-one needs on the side without the foreign key (a many-to-one
  // is one row already): that side is loaded by the other table's key, a SELECT every time.
  // SQLModel passes it through: `Relationship(sa_relationship_kwargs={"uselist": False})`.
  const oneToOneParent = args.keywords.get('uselist')?.type === 'false'
    || (last === 'Relationship' && /["']uselist["']\s*:\s*False\b/.test(args.keywords.get('sa_relationship_kwargs')?.text ?? ''));
  // SQLModel's plain annotation (`team: Optional[Team]`) does not say which side holds the key: a
  // one-row relationship is a many-to-one only next to its `<name>_id` foreign key (read below).
  const scalar = oneToOneParent || scalarAnnotation(annotation);
  // A collection the declaration says is one: `Mapped[list[...]]`, `list["Hero"]`, `uselist=True`,
  // a `collection_class=` or an `order_by=` (which only orders a collection).
  const collection = !scalar && (collectionAnnotation(annotation) || args.keywords.get('uselist')?.type === 'true'
    || args.keywords.has('collection_class') || args.keywords.has('order_by'));
  const rel: RelationshipInfo = {
    name: attr, target, lazy: last === 'dynamic_loader' ? 'dynamic' : lazyOf(args, scope), file, line,
    ...(scalar ? { scalar: true as const } : {}),
    ...(oneToOneParent ? { reverse: true as const } : {}),
    ...(collection ? { collection: true as const } : {}),
  };
  const paired = args.keywords.get('back_populates');
  const pairedName = paired ? stringValue(paired, scope) : null;
  if (pairedName && /^[A-Za-z_]\w*$/.test(pairedName)) rel.inverse = pairedName;
  // `foreign_keys="Task.assignee_id"`, `foreign_keys=[assignee_id]`, `foreign_keys=assignee_id`: one column.
  const fk = args.keywords.get('foreign_keys');
  if (fk) {
    const cols = (stringValue(fk, scope) ?? fk.text).replace(/[\[\]()'"\s]/g, '').split(',').filter(Boolean);
    const col = cols.length === 1 ? cols[0]!.slice(cols[0]!.lastIndexOf('.') + 1) : null;
    if (col && /^[A-Za-z_]\w*$/.test(col)) rel.foreignKey = col;
  }
  const overlaps = args.keywords.get('overlaps');
  const overlapsText = overlaps ? stringValue(overlaps, scope) : null;
  if (overlapsText) rel.overlaps = overlapsText.split(',').map((x) => x.trim()).filter((x) => /^[A-Za-z_]\w*$/.test(x));
  if (args.keywords.has('secondary')) rel.secondary = true;
  const b = args.keywords.get('backref');
  if (!b || !target) return { rel, backref: null };
  let name: string | null = stringValue(b, scope);
  let lazy = 'select';
  let backScalar: boolean | null = scalar || args.keywords.has('secondary') ? false : null;
  if (name === null && b.type === 'call' && /(^|\.)backref$/.test(b.childForFieldName('function')?.text ?? '')) {
    const bargs = callArgs(b);
    name = bargs.positional[0] ? stringValue(bargs.positional[0], scope) : null;
    lazy = lazyOf(bargs, scope);
    const uselist = bargs.keywords.get('uselist')?.type;
    if (uselist === 'false') backScalar = true;
    else if (uselist === 'true') backScalar = false;
  }
  if (name === null || !/^[A-Za-z_]\w*$/.test(name)) return { rel, backref: null };
  rel.inverse = name;
  return {
    rel,
    backref: { owner: target, relationship: { name, target: owner, lazy, file, line, inverse: attr }, scalar: backScalar },
  };
}

/**
 * `registry.map_imperatively(Cls, table, properties={...})` / `mapper(Cls, table, properties=...)`:
 * the class and the relationships of its `properties` (a dict display or `dict(name=...)`).
 */
function imperativeMapping(call: CallInfo, model: FileModel, scope: LiteralScope): ImperativeMapping | null {
  const args = callArgs(call.node);
  const cls = args.positional[0] ?? args.keywords.get('class_');
  const table = args.positional[1] ?? args.keywords.get('local_table');
  if (!cls || (cls.type !== 'identifier' && cls.type !== 'attribute')) return null;
  const written = cls.text.replace(/\s+/g, '');
  const short = written.slice(written.lastIndexOf('.') + 1);
  const out: ImperativeMapping = {
    cls: resolveImported(model, written) ?? (model.moduleDefs.has(written) ? `${model.moduleName}.${written}` : written),
    table: table && (table.type === 'identifier' || table.type === 'attribute') ? table.text.replace(/\s+/g, '') : null,
    relationships: [],
    backrefs: [],
    file: model.path,
    line: call.line,
  };
  const props = args.keywords.get('properties') ?? args.positional[2];
  const entries: [string, SyntaxNode][] = [];
  if (props?.type === 'dictionary') {
    for (const pair of props.namedChildren) {
      if (pair.type !== 'pair') continue;
      const key = stringValue(pair.childForFieldName('key'), scope);
      const value = pair.childForFieldName('value');
      if (key !== null && value) entries.push([key, value]);
    }
  } else if (props?.type === 'call' && props.childForFieldName('function')?.text === 'dict') {
    for (const [key, value] of callArgs(props).keywords) entries.push([key, value]);
  }
  for (const [key, value] of entries) {
    const callee = calleeName(value);
    const last = callee ? callee.slice(callee.lastIndexOf('.') + 1) : null;
    if (!last || !RELATIONSHIP_CALLS.has(last)) continue;
    const { rel, backref } = relationshipFact(value, last, key, null, model.path, value.startPosition.row + 1, scope, short);
    out.relationships.push(rel);
    if (backref) out.backrefs.push(backref);
  }
  return out;
}

function classFacts(cls: SyntaxNode, model: FileModel, scope: LiteralScope): ClassFacts | null {
  const name = cls.childForFieldName('name')?.text;
  if (!name) return null;
  const bases: string[] = [];
  let tableKeyword = false;
  for (const arg of cls.childForFieldName('superclasses')?.namedChildren ?? []) {
    if (arg.type === 'keyword_argument') {
      if (arg.childForFieldName('name')?.text === 'table' && arg.childForFieldName('value')?.type === 'true') tableKeyword = true;
      continue;
    }
    const text = arg.text.replace(/\s+/g, '').replace(/\[.*$/, '');
    if (!/^[A-Za-z_][\w.]*$/.test(text)) continue;
    bases.push(resolveImported(model, text) ?? text);
  }
  const decorators: string[] = [];
  if (cls.parent?.type === 'decorated_definition') {
    for (const d of cls.parent.namedChildren) {
      if (d.type !== 'decorator') continue;
      const t = d.text.replace(/^@\s*/, '').replace(/\(.*$/s, '').replace(/\s+/g, '');
      decorators.push(t);
    }
  }
  // Qualify nested classes by their enclosing class so names stay unique.
  let qualifiedPrefix = model.moduleName;
  const enclosing: string[] = [];
  for (let p = cls.parent; p; p = p.parent) {
    if (p.type === 'class_definition') enclosing.unshift(p.childForFieldName('name')?.text ?? '');
    if (p.type === 'function_definition') return null; // classes made inside functions are not static models
  }
  if (enclosing.length) qualifiedPrefix += '.' + enclosing.join('.');
  const facts: ClassFacts = {
    name,
    qualified: `${qualifiedPrefix}.${name}`,
    file: model.path,
    line: cls.startPosition.row + 1,
    bases,
    tableKeyword,
    decorators,
    tablename: null,
    tablenameExpr: null,
    abstract: false,
    columns: 0,
    plainAnnotated: 0,
    relationships: [],
    modern: false,
  };
  const body = cls.childForFieldName('body');
  /** Columns of the class holding a foreign key: `author_id = Column(ForeignKey(...))`. */
  const fkColumns = new Set<string>();
  const fkTargets = new Set<string>();
  for (const stmt of body?.namedChildren ?? []) {
    let node = stmt;
    if (node.type === 'decorated_definition') {
      const def = node.childForFieldName('definition');
      const defName = def?.childForFieldName('name')?.text;
      if (defName === '__tablename__') {
        facts.tablenameExpr = def!.childForFieldName('body')?.text ?? '';
      } else if (def && defName && !defName.startsWith('__') && /declared_attr/.test(node.text.slice(0, def.startIndex - node.startIndex))) {
        declaredAttr(def, defName, facts, scope);
      }
      continue;
    }
    if (node.type === 'function_definition' && node.childForFieldName('name')?.text === '__tablename__') {
      facts.tablenameExpr = node.childForFieldName('body')?.text ?? '';
      continue;
    }
    if (node.type !== 'expression_statement') continue;
    node = node.namedChild(0)!;
    if (node?.type !== 'assignment') continue;
    const left = node.childForFieldName('left');
    if (left?.type !== 'identifier') continue;
    const attr = left.text;
    const right = node.childForFieldName('right');
    const annotation = node.childForFieldName('type')?.text ?? null;
    if (attr === '__tablename__') {
      const v = stringValue(right, scope);
      if (v !== null && !v.includes(PLACEHOLDER)) facts.tablename = v;
      else facts.tablenameExpr = right?.text ?? null;
      continue;
    }
    if (attr === '__abstract__') {
      facts.abstract = right?.type === 'true';
      continue;
    }
    if (attr === '__table_args__') {
      for (const key of tableArgKeys(right, scope)) (facts.uniqueKeys ??= []).push(key);
      continue;
    }
    if (attr.startsWith('__')) continue;
    if (right?.type === 'string') {
      const text = stringValue(right, scope);
      if (text !== null && /^[A-Za-z_]\w*$/.test(text)) (facts.stringAttrs ??= {})[attr] = text;
    }
    const isMapped = annotation !== null && /^(?:[\w.]+\.)?(Mapped|WriteOnlyMapped|DynamicMapped)\[/.test(annotation.replace(/\s+/g, ''));
    if (isMapped) facts.modern = true;
    const callee = calleeName(right);
    const last = callee ? callee.slice(callee.lastIndexOf('.') + 1) : null;
    const lazyColumn = last ? deferredColumn(right!, last, attr, scope) : null;
    if (lazyColumn) (facts.deferred ??= []).push(lazyColumn);
    else if (last && COLUMN_CALLS.has(last)) (facts.eagerColumns ??= []).push(attr);
    if (last && callee && ASSOCIATION_PROXY.test(proxyCallee(model, callee))) {
      const proxy = associationProxy(right!, attr, facts.file, node.startPosition.row + 1, scope);
      if (proxy) (facts.proxies ??= []).push(proxy);
      continue;
    }
    if (RELATIONSHIP_CALLS.has(last ?? '')) {
      const call = right!.type === 'await' ? right!.namedChild(0)! : right!;
      const { rel, backref } = relationshipFact(call, last!, attr, annotation, facts.file, node.startPosition.row + 1, scope, name);
      facts.relationships.push(rel);
      // A join the code spells out (`primaryjoin=`): its direction is not read from the keys.
      if (callArgs(call).keywords.has('primaryjoin')) (facts.customJoins ??= []).push(attr);
      if (backref) (facts.backrefs ??= []).push(backref);
      continue;
    }
    if (last === 'Column' || last === 'mapped_column' || last === 'Field') {
      if (last === 'mapped_column') facts.modern = true;
      facts.columns++;
      (facts.columnNames ??= []).push(attr);
      const keywords = callArgs(right!.type === 'await' ? right!.namedChild(0)! : right!).keywords;
      if (keywords.get('primary_key')?.type === 'true') (facts.primaryKeys ??= []).push(attr);
      if (keywords.get('unique')?.type === 'true') (facts.uniqueKeys ??= []).push([attr]);
      // SQLModel: `team_id: int | None = Field(default=None, foreign_key="team.id")`.
      if (/\bForeignKey\s*\(/.test(right!.text) || (last === 'Field' && /\bforeign_key\s*=/.test(right!.text))) {
        fkColumns.add(attr);
        const target = fkTarget(right!.text);
        if (target) fkTargets.add(target);
      }
      continue;
    }
    // `team_id = column_property(db.Column(db.ForeignKey("teams.id")), Base.team_id)` (a joined
    // subclass restating its base's key), `deferred(Column(ForeignKey(...)))`: a foreign key too.
    if ((last === 'column_property' || last === 'deferred') && /\bForeignKey\s*\(/.test(right!.text)) {
      fkColumns.add(attr);
      const target = fkTarget(right!.text);
      if (target) fkTargets.add(target);
    }
    if (isMapped) {
      if (right === null) (facts.mappedAttrs ??= {})[attr] = scalarAnnotation(annotation);
      if (right === null || last === 'deferred' || last === 'synonym' || last === 'composite' || last === 'query_expression') {
        facts.columns++;
        if (right === null || last === 'deferred') (facts.columnNames ??= []).push(attr);
      }
      continue;
    }
    if (last === 'deferred') {
      facts.columns++;
      (facts.columnNames ??= []).push(attr);
      continue;
    }
    if (annotation !== null && !/^(ClassVar|typing\.ClassVar)\b/.test(annotation) && (right === null || right.type !== 'call' || last === 'Field')) {
      facts.plainAnnotated++;
      (facts.plainNames ??= []).push(attr);
    }
  }
  // `author = relationship(...)` next to `author_id = Column(ForeignKey(...))`: a many-to-one.
  for (const r of facts.relationships) if (!r.scalar && fkColumns.has(`${r.name}_id`)) r.scalar = true;
  if (fkColumns.size) facts.foreignKeys = [...fkColumns];
  // Foreign keys declared anywhere else in the body (a `declared_attr`, `__table_args__`'s
  // `ForeignKeyConstraint([...], ["posts.id"])`) reference tables too.
  const bodyText = body?.text ?? '';
  if (/ForeignKey|foreign_key/.test(bodyText)) {
    for (const m of bodyText.matchAll(/\bForeignKey\s*\(\s*(?:["'][\w.]+["']|[A-Za-z_][\w.]*)|\bforeign_key\s*=\s*["'][\w.]+["']/g)) {
      const t = fkTarget(`${m[0]})`);
      if (t) fkTargets.add(t);
    }
    for (const m of bodyText.matchAll(/\bForeignKeyConstraint\s*\([^\]]*\]\s*,\s*\[([^\]]*)\]/g)) {
      for (const ref of m[1]!.matchAll(/["']([\w.]+)\.\w+["']/g)) fkTargets.add(ref[1]!.slice(ref[1]!.lastIndexOf('.') + 1));
    }
  }
  if (fkTargets.size) facts.fkTargets = [...fkTargets].sort();
  return facts;
}

/**
 * The table (or `@Class`) a column's foreign key references: `ForeignKey("queries.id")`,
 * `ForeignKey("public.queries.id")`, `ForeignKey(Query.id)`, SQLModel's `foreign_key="team.id"`.
 */
function fkTarget(text: string): string | null {
  const quoted = /\bForeignKey\s*\(\s*["']([\w.]+)\.\w+["']|\bforeign_key\s*=\s*["']([\w.]+)\.\w+["']/.exec(text);
  if (quoted) {
    const t = quoted[1] ?? quoted[2]!;
    return t.slice(t.lastIndexOf('.') + 1);
  }
  const attr = /\bForeignKey\s*\(\s*([A-Za-z_][\w.]*)\.\w+\s*[,)]/.exec(text);
  return attr ? `@${attr[1]!.slice(attr[1]!.lastIndexOf('.') + 1)}` : null;
}

/**
 * `association_proxy(...)` / `AssociationProxy(...)` of `sqlalchemy.ext.associationproxy`, also
 * imported under another name (`from sqlalchemy.ext.associationproxy import association_proxy as
 * proxy`) or reached through the module (`associationproxy.association_proxy`).
 */
const ASSOCIATION_PROXY = /^(?:[\w.]*\.)?(?:association_proxy|AssociationProxy)$/;

/** The callee as its import names it (`proxy` → `sqlalchemy.ext.associationproxy.association_proxy`). */
function proxyCallee(model: FileModel, callee: string): string {
  return /^[A-Za-z_][\w.]*$/.test(callee) ? resolveImported(model, callee) ?? callee : callee;
}

/**
 * `name = association_proxy("rel", "attr")` (or `target_collection=`/`attr=` keywords): the
 * relationship it reads through and the attribute it returns, when both are literal.
 */
function associationProxy(call: SyntaxNode, name: string, file: string, line: number, scope: LiteralScope): AssociationProxyInfo | null {
  if (call.type !== 'call') return null;
  const args = callArgs(call);
  const relNode = args.positional[0] ?? args.keywords.get('target_collection') ?? null;
  const attrNode = args.positional[1] ?? args.keywords.get('attr') ?? null;
  const relationship = relNode ? stringValue(relNode, scope) : null;
  const attribute = attrNode ? stringValue(attrNode, scope) : null;
  if (!relationship || !attribute || !/^[A-Za-z_]\w*$/.test(relationship) || !/^[A-Za-z_]\w*$/.test(attribute)) return null;
  return { name, relationship, attribute, file, line };
}

/** Calls that declare a column of a mapped class. */
const COLUMN_CALLS: ReadonlySet<string> = new Set(['Column', 'mapped_column', 'column_property', 'deferred']);

/**
 * A column that loads on first access: `deferred(Column(...))`, `mapped_column(..., deferred=True)`,
 * `column_property(..., deferred=True)`; `name` or `name:group` (its `group=`/`deferred_group=`).
 * Null for anything else, and for `deferred_raiseload=True` (access raises instead of loading).
 */
function deferredColumn(call: SyntaxNode, last: string, name: string, scope: LiteralScope): string | null {
  if (last !== 'deferred' && last !== 'mapped_column' && last !== 'column_property') return null;
  const args = callArgs(call.type === 'await' ? call.namedChild(0)! : call);
  if (args.keywords.get('deferred_raiseload')?.type === 'true' || args.keywords.get('raiseload')?.type === 'true') return null;
  if (last !== 'deferred' && args.keywords.get('deferred')?.type !== 'true') return null;
  const groupNode = args.keywords.get(last === 'deferred' ? 'group' : 'deferred_group');
  const group = groupNode ? stringValue(groupNode, scope) : null;
  return group ? `${name}:${group}` : name;
}

/** `Mapped["User"]`, `Mapped[Optional[User]]`: one row; `Mapped[list[...]]` and dynamic/write-only: a collection. */
/** `Mapped[list["X"]]`, `list["X"]`, `List[X]`, `set[X]`: a collection's annotation. */
function collectionAnnotation(annotation: string | null): boolean {
  if (!annotation) return false;
  const inner = (/^(?:[\w.]+\.)?Mapped\[\s*(.*)\]\s*$/s.exec(annotation.trim())?.[1] ?? annotation).replace(/^["']|["']$/g, '').trim();
  return /^(?:typing\.)?(list|List|set|Set|frozenset|FrozenSet|Sequence|Collection|Iterable|dict|Dict|tuple|Tuple)\b/.test(inner);
}

function scalarAnnotation(annotation: string | null): boolean {
  if (!annotation) return false;
  const m = /^(?:[\w.]+\.)?Mapped\[\s*(.*)\]\s*$/s.exec(annotation.trim());
  if (!m) return false;
  const inner = m[1]!.replace(/^["']|["']$/g, '').trim();
  return !/^(?:typing\.)?(list|List|set|Set|frozenset|FrozenSet|Sequence|Collection|Iterable|dict|Dict|tuple|Tuple)\b|^["']?(list|set)\[/.test(inner);
}

/** `@declared_attr def owner(cls) -> Mapped["User"]: return relationship(...)` (mixins' way to add attributes). */
function declaredAttr(def: SyntaxNode, name: string, facts: ClassFacts, scope: LiteralScope): void {
  const body = def.childForFieldName('body');
  const ret = body?.namedChildren.find((c) => c.type === 'return_statement');
  const value = ret?.namedChild(0) ?? null;
  const callee = calleeName(value);
  const last = callee ? callee.slice(callee.lastIndexOf('.') + 1) : null;
  const annotation = def.childForFieldName('return_type')?.text ?? null;
  if (last === 'relationship' || last === 'Relationship') {
    const args = callArgs(value!);
    const first = args.positional[0] ?? args.keywords.get('argument');
    let target: string | null = null;
    if (first) {
      const s = stringValue(first, scope);
      target = s ?? (first.type === 'identifier' || first.type === 'attribute' ? first.text : null);
    }
    target ??= targetFromAnnotation(annotation);
    facts.relationships.push({ name, target, lazy: lazyOf(args, scope), file: facts.file, line: def.startPosition.row + 1 });
    // `backref=backref(cls.<attr>, ...)` / `backref=cls.<attr>`: the class using the mixin names it.
    const b = args.keywords.get('backref');
    const call = b?.type === 'call' && /(^|\.)backref$/.test(b.childForFieldName('function')?.text ?? '') ? b : null;
    const nameExpr = call ? (callArgs(call).positional[0] ?? null) : b ?? null;
    const attr = nameExpr?.type === 'attribute' && nameExpr.childForFieldName('object')?.text === 'cls' ? nameExpr.childForFieldName('attribute')?.text : undefined;
    if (attr && target) {
      const uselist = call ? callArgs(call).keywords.get('uselist')?.type : undefined;
      (facts.templatedBackrefs ??= []).push({
        attr, owner: target, lazy: call ? lazyOf(callArgs(call), scope) : 'select', line: def.startPosition.row + 1,
        scalar: uselist === 'false' ? true : uselist === 'true' ? false : null,
      });
    }
  } else if (last === 'mapped_column' || last === 'Column' || last === 'column_property') {
    facts.columns++;
    if (last !== 'column_property') {
      (facts.columnNames ??= []).push(name);
      const keywords = callArgs(value!).keywords;
      if (keywords.get('primary_key')?.type === 'true') (facts.primaryKeys ??= []).push(name);
      if (keywords.get('unique')?.type === 'true') (facts.uniqueKeys ??= []).push([name]);
    }
  }
}

/**
 * The unique column sets a class's `__table_args__` declares: `UniqueConstraint("org_id", "slug")`,
 * `PrimaryKeyConstraint(...)`, `Index("ix", "email", unique=True)` (its first argument is the
 * index's name); columns as strings or as attributes (`Tag.slug`, `slug`). An argument that is
 * an expression (`func.lower(email)`) makes the set unknown: it is left out.
 */
function tableArgKeys(value: SyntaxNode | null, scope: LiteralScope): string[][] {
  const out: string[][] = [];
  const visit = (n: SyntaxNode) => {
    if (n.type === 'call') {
      const fn = n.childForFieldName('function')?.text ?? '';
      const last = fn.slice(fn.lastIndexOf('.') + 1);
      const args = callArgs(n);
      const unique = last === 'UniqueConstraint' || last === 'PrimaryKeyConstraint' || (last === 'Index' && args.keywords.get('unique')?.type === 'true');
      if (unique) {
        const cols: string[] = [];
        let known = true;
        for (const a of last === 'Index' ? args.positional.slice(1) : args.positional) {
          const name = a.type === 'string' ? stringValue(a, scope) ?? '' : a.type === 'identifier' ? a.text : a.type === 'attribute' ? a.childForFieldName('attribute')?.text ?? '' : '';
          if (!/^[A-Za-z_]\w*$/.test(name)) known = false;
          else cols.push(name);
        }
        if (known && cols.length) out.push(cols);
        return;
      }
    }
    for (const c of n.namedChildren) visit(c);
  };
  if (value) visit(value);
  return out;
}

/** `Annotated[AsyncSession, Depends(get_db)]` → the type and the provider, qualified; null for anything else. */
function dependencyAlias(model: FileModel, text: string): { type: string; provider: string } | null {
  const m = /^(?:typing(?:_extensions)?\.)?Annotated\[\s*([A-Za-z_][\w.]*)\s*,\s*(?:[\w.]*\.)?Depends\(\s*(?:dependency\s*=\s*)?([A-Za-z_][\w.]*)/s.exec(text);
  if (!m) return null;
  return { type: resolveImported(model, m[1]!) ?? m[1]!, provider: resolveImported(model, m[2]!) ?? m[2]! };
}

export function isDeclarativeRootBase(base: string): boolean {
  return ROOT_BASES.test(base);
}

/** The names a tuple display binds or holds: `a, b` / `(a, b)` / `[a, b]`; null when an element is not a plain name or call. */
function tupleElements(node: SyntaxNode | null): SyntaxNode[] | null {
  if (!node) return null;
  if (node.type === 'parenthesized_expression') return tupleElements(node.namedChild(0));
  if (!['tuple', 'expression_list', 'pattern_list', 'tuple_pattern', 'list', 'list_pattern'].includes(node.type)) return null;
  return node.namedChildren.filter((c) => c.type !== 'comment');
}

/**
 * `def init(url): ...; return Maker, engine` (a module-level function returning a session
 * factory at a tuple position, made there or bound from `sessionmaker(...)`), and the
 * module-level `SessionLocal, engine = init(url)` that unpack a call's tuple.
 */
function collectTuples(model: FileModel, facts: PythonFileFacts): void {
  for (const fn of model.functions) {
    if (!fn.body || fn.parent >= 0 || fn.className) continue;
    for (const r of ownNodes(fn.body, 'return_statement')) {
      const elements = tupleElements(r.namedChild(0));
      elements?.forEach((el, index) => {
        const made = el.type === 'call' ? calleeName(el) : el.type === 'identifier' ? originOf(model, fn.index, el.text, r.startIndex) : null;
        const last = made?.slice(made.lastIndexOf('.') + 1);
        if (last === 'sessionmaker' || last === 'async_sessionmaker') facts.tupleBuilders!.push({ name: `${model.moduleName}.${fn.qualifiedName}`, index, kind: last });
      });
    }
  }
  for (const stmt of model.root.namedChildren) {
    const a = stmt.type === 'expression_statement' ? stmt.namedChild(0) : null;
    if (a?.type !== 'assignment') continue;
    const targets = tupleElements(a.childForFieldName('left'));
    const right = a.childForFieldName('right');
    if (!targets || right?.type !== 'call' || targets.some((t) => t.type !== 'identifier')) continue;
    const callee = calleeName(right);
    if (!callee || !/^[A-Za-z_][\w.]*$/.test(callee)) continue;
    const local = model.functions.some((f) => f.parent < 0 && !f.className && f.name === callee);
    facts.tupleUnpacks!.push({ targets: targets.map((t) => t.text), callee: local ? `${model.moduleName}.${callee}` : resolveImported(model, callee) ?? callee, line: a.startPosition.row + 1 });
  }
}

/** The nodes of a type in a function body's own code, not in the functions and lambdas nested in it. */
function ownNodes(body: SyntaxNode, type: string): SyntaxNode[] {
  return body.descendantsOfType(type).filter((n) => {
    let p = n.parent;
    while (p && p.id !== body.id && p.type !== 'function_definition' && p.type !== 'lambda') p = p.parent;
    return p?.id === body.id;
  });
}

/** `get_db = contextmanager(get_session)`: the decorator applied as a call at module level. */
const CONTEXTMANAGER_CALL = /^[A-Za-z_]\w*\s*=\s*(?:contextlib\.)?(?:async)?contextmanager\(\s*[A-Za-z_]\w*\s*\)/m;

/**
 * Module-level `get_db = contextmanager(get_session)` (or `asynccontextmanager`) over a provider
 * of the same module: a context-manager provider of its own name, what the decorator would make.
 */
function wrappedProviders(model: FileModel, providers: ProviderCandidate[]): void {
  for (const a of model.assignments) {
    if (a.functionIndex >= 0 || a.value?.type !== 'call' || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
    const fn = wrappedGenerator(model, a.value);
    const wrapped = fn ? providers.find((p) => p.name === fn.qualifiedName && !p.contextManager) : undefined;
    if (wrapped && !providers.some((p) => p.name === a.target)) providers.push({ ...wrapped, name: a.target, contextManager: true, line: a.line });
  }
}

/** Calls a teardown that only releases the session may make (besides the factory's). */
const RELEASE_ONLY_CALL = /^(?:[\w.]+\.)?(?:close|aclose|rollback|remove|expunge_all|debug|info|warning|error|exception|critical|log)$/;

/** The body makes the session and releases it, nothing else (see {@link ProviderCandidate.closesOnly}). */
function closesOnly(model: FileModel, body: SyntaxNode, callee: string | null): boolean {
  if (/commit|begin|autocommit|isolation_level|flush/.test(codeText(body))) return false;
  for (const call of ownNodes(body, 'call')) {
    const name = call.childForFieldName('function')?.text.replace(/\s+/g, '') ?? '';
    if (name === callee || RELEASE_ONLY_CALL.test(name)) continue;
    return false;
  }
  return true;
}

function providerCandidate(model: FileModel, fnIndex: number): ProviderCandidate | null {
  const fn = model.functions[fnIndex]!;
  const body = fn.body!;
  let callee: string | null = null;
  for (const y of ownNodes(body, 'yield')) {
    const value = y.namedChild(0);
    if (!value) continue;
    if (value.type === 'call' || value.type === 'await') {
      callee = calleeName(value);
    } else if (value.type === 'identifier') {
      callee = originOf(model, fnIndex, value.text, y.startIndex);
    }
    if (callee) break;
  }
  const returnType = fn.returnType;
  if (!callee && !(returnType && /Session/.test(returnType))) return null;
  const calleeResolved = callee && /^[A-Za-z_][\w.]*$/.test(callee) ? (resolveImported(model, callee) ?? callee) : callee;
  return {
    name: fn.qualifiedName,
    async: fn.isAsync,
    callee,
    calleeResolved,
    returnType,
    contextManager: fn.decoratorNames.some((d) => /(^|\.)(async)?contextmanager$/.test(d)),
    ...(closesOnly(model, body, callee) ? { closesOnly: true as const } : {}),
    line: fn.startLine,
  };
}

/**
 * A module-level function whose returns are all the same new value made by a call
 * (`return Maker()`, `s = Maker(); ...; return s`); a function returning a shared object (a
 * bare module global, `self.x`) is not one. Discovery keeps those whose callee makes a session
 * or connection. Null for anything else.
 */
function helperCandidate(model: FileModel, fnIndex: number): HelperCandidate | null {
  const fn = model.functions[fnIndex]!;
  if (fn.parent >= 0 || fn.className) return null;
  const body = fn.body!;
  let callee: string | null = null;
  let returns = 0;
  for (const r of ownNodes(body, 'return_statement')) {
    const value = r.namedChild(0);
    if (!value) continue;
    returns++;
    let c: string | null = null;
    if (value.type === 'call' || value.type === 'await') c = calleeName(value);
    else if (value.type === 'identifier') {
      // A local bound from a call; a name bound nowhere in the function is a shared (module) object.
      if (!assignmentsTo(model, value.text).some((a) => a.functionIndex === fnIndex && a.target === value.text)) return null;
      c = originOf(model, fnIndex, value.text, r.startIndex);
    } else return null;
    if (!c) return null;
    if (callee && callee !== c) return null;
    callee = c;
  }
  if (returns === 0) return null;
  const returnType = fn.returnType;
  if (!callee) return null;
  if (!/session|Session|connect|Maker|maker/.test(callee) && !(returnType && /Session|Connection/.test(returnType))) return null;
  const resolved = /^[A-Za-z_][\w.]*$/.test(callee) ? (resolveImported(model, callee) ?? callee) : callee;
  // `conn.autocommit = True`, `connect(dsn, autocommit=True)`, `set_session(autocommit=True)`,
  // sqlite's `isolation_level=None`: each statement commits itself.
  const autocommit = AUTOCOMMIT_SETTING.test(model.source.slice(fn.start, fn.end));
  return { name: fn.qualifiedName, callee: resolved, returnType, line: fn.startLine, ...(autocommit ? { autocommit: true as const } : {}) };
}

const AUTOCOMMIT_SETTING = /\bautocommit\s*=\s*True\b|\bisolation_level\s*=\s*None\b|ISOLATION_LEVEL_AUTOCOMMIT|["']AUTOCOMMIT["']/;

/** A function whose name or return annotation says engine (see {@link EngineGetterFact}). */
export const ENGINE_GETTER_HINT = /\bdef\s+\w*[Ee]ngine\w*\s*\(|->[^:\n]*Engine\b/;
/** The engine classes of SQLAlchemy (and SQLModel's re-export) a return annotation may name. */
const SQLA_ENGINE_CLASS = /^(sqlalchemy|sqlmodel)(\.[\w.]+)?\.(Async)?Engine$/;
const SQLA_MODULE = /^(sqlalchemy|sqlmodel)(\.|$)/;

/** Is the return annotation (`Engine`, `Optional[AsyncEngine]`, `"sa.Engine"`, `Engine | None`) SQLAlchemy's engine? */
function annotatedEngine(model: FileModel, annotation: string | null): boolean {
  if (!annotation) return false;
  for (const m of annotation.matchAll(/[A-Za-z_][\w.]*/g)) {
    if (!/(^|\.)(Async)?Engine$/.test(m[0])) continue;
    if (SQLA_ENGINE_CLASS.test(resolveImported(model, m[0]) ?? '')) return true;
  }
  return false;
}

/**
 * See {@link EngineGetterFact}: a module function or a method of a module-level class. A method
 * named for an engine that hands out nothing known (`return self._index`) is returned too, with
 * neither `direct` nor `calls`: its name is then no evidence for a call on an unknown object.
 */
function engineGetterCandidate(model: FileModel, fnIndex: number, engines: readonly EngineInfo[]): EngineGetterFact | null {
  const fn = model.functions[fnIndex]!;
  if (fn.parent >= 0 || !fn.body) return null;
  const annotated = annotatedEngine(model, fn.returnType);
  if (!/engine/i.test(fn.name) && !annotated) return null;
  // An abstract stub (`...`, `pass`, `raise NotImplementedError`, `@abstractmethod`) says nothing either way.
  const statements = fn.body.namedChildren.filter((c) => c.type !== 'comment' && !(c.type === 'expression_statement' && c.namedChild(0)?.type === 'string'));
  if (fn.decoratorNames.some((d) => /(^|\.)abstractmethod$/.test(d)) || statements.length === 0 || (statements.length === 1 && /^(\.\.\.|pass|raise\s+NotImplementedError\b.*)$/s.test(statements[0]!.text))) return null;
  // AUTOCOMMIT said by the call that makes or rebinds the returned engine, in a statement of the
  // function's own body (not under a branch: the other path needs its commits).
  let autocommit = false;
  const saysAutocommit = (n: SyntaxNode | null | undefined) => !!n && /isolation_level\s*=\s*["']AUTOCOMMIT["']/.test(n.text) && (n.parent?.parent?.id === fn.body!.id || n.parent?.id === fn.body!.id);
  const ownClass = fn.className;
  let direct = annotated;
  const calls: string[] = [];
  // An engine the discovery saw built in this function (SQLAlchemy's factories only), at this line.
  const builtAt = (line: number) => engines.some((e) => e.function === fn.qualifiedName && e.line === line);
  // A callee of a returned value: SQLAlchemy's engine factory, or a call that may be another getter's.
  const classify = (callee: string, line: number): void => {
    const last = callee.slice(callee.lastIndexOf('.') + 1);
    if (ENGINE_FACTORIES.has(last)) {
      if (builtAt(line) || SQLA_MODULE.test(resolveImported(model, callee) ?? '')) direct = true;
      return;
    }
    const self = /^(self|cls)\.(\w+)$/.exec(callee);
    if (self) {
      if (ownClass) calls.push(`${model.moduleName}.${ownClass}.${self[2]}`);
      return;
    }
    if (!/^[A-Za-z_][\w.]*$/.test(callee)) return;
    calls.push(resolveImported(model, callee) ?? (callee.includes('.') ? callee : `${model.moduleName}.${callee}`));
  };
  for (const r of ownNodes(fn.body, 'return_statement')) {
    let value = r.namedChild(0);
    if (value?.type === 'await') value = value.namedChild(0);
    if (!value) continue;
    // `return engine.execution_options(...)`: the engine it was called on.
    const wrapped = value.type === 'call' ? /^([A-Za-z_]\w*)\.execution_options$/.exec(calleeName(value) ?? '') : null;
    if (wrapped && saysAutocommit(value.parent)) autocommit = true;
    if (value.type === 'call' && !wrapped) {
      const c = calleeName(value);
      if (c) classify(c, value.startPosition.row + 1);
      if (saysAutocommit(value.parent)) autocommit = true;
    } else if (value.type === 'identifier' || wrapped) {
      const name = wrapped ? wrapped[1]! : value.text;
      // The local's last binding before the return decides (`engine = create_engine(...)`, not a
      // later `engine = wrap(engine)`); a name the function never binds is the module's engine.
      // `engine = engine.execution_options(...)` keeps the engine it was: look past it.
      const bindings = model.assignments
        .filter((a) => a.functionIndex === fnIndex && a.target === name && a.node.startIndex < r.startIndex)
        .sort((x, y) => x.node.startIndex - y.node.startIndex);
      let last = bindings.pop();
      while (last && new RegExp(`^${name}(\\.execution_options)?$`).test(calleeName(last.value) ?? last.value?.text ?? '')) {
        if (saysAutocommit(last.node)) autocommit = true;
        last = bindings.pop();
      }
      if (last && saysAutocommit(last.node)) autocommit = true;
      if (!last) {
        if (engines.some((e) => e.name === name && e.function === null)) direct = true;
        continue;
      }
      const c = calleeName(last.value);
      if (c) classify(c, last.value!.startPosition.row + 1);
    }
  }
  if (!direct && !calls.length && !ownClass) return null;
  const fact: EngineGetterFact = { name: `${model.moduleName}.${fn.qualifiedName}`, method: ownClass !== null, direct, calls: [...new Set(calls)].sort() };
  if (autocommit) fact.autocommit = true;
  return fact;
}

/** Methods that end an object's life: where an owning class closes what it made. */
const RELEASE_METHODS = new Set(['close', 'aclose', '__exit__', '__aexit__', 'dispose', 'shutdown']);

/**
 * A module-level class whose `__init__` makes a new value by a call and keeps it on `self`
 * (`self.session = SessionLocal()`) and which closes it in `close()`/`__exit__` (`self.session.close()`):
 * making an instance acquires what it owns, and only `with` or the instance's `close()` gives
 * it back. Discovery keeps those whose callee makes a session or connection, as helpers.
 * (A class that never closes what it keeps is PA403's own report at the `__init__`.)
 */
function ownerCandidate(model: FileModel, fnIndex: number): HelperCandidate | null {
  const init = model.functions[fnIndex]!;
  const cls = init.className;
  if (!cls || init.parent >= 0 || init.qualifiedName !== `${cls}.__init__`) return null;
  const releases = model.functions.filter((f) => f.parent < 0 && f.className === cls && f.qualifiedName === `${cls}.${f.name}` && RELEASE_METHODS.has(f.name) && f.body);
  if (releases.length === 0) return null;
  for (const a of model.assignments) {
    if (a.functionIndex !== fnIndex || a.fromWith) continue;
    const attr = /^self\.(\w+)$/.exec(a.target)?.[1];
    if (!attr) continue;
    const callee = calleeName(a.value);
    if (!callee || !/session|Session|connect|Maker|maker/.test(callee)) continue;
    // `self.session = session` in another branch: an instance may hold a borrowed session.
    if (model.assignments.some((b) => b !== a && b.functionIndex === fnIndex && b.target === a.target)) continue;
    const closes = new RegExp(`\\bself\\.${attr}\\s*\\.\\s*(close|aclose|dispose)\\s*\\(`);
    if (!releases.some((f) => closes.test(f.body!.text))) continue;
    const resolved = /^[A-Za-z_][\w.]*$/.test(callee) ? (resolveImported(model, callee) ?? callee) : callee;
    return { name: cls, callee: resolved, returnType: null, line: init.startLine, owner: true };
  }
  return null;
}

/** The callee that produced a local name: `async with X() as name`, `name = X()`. */
function originOf(model: FileModel, fnIndex: number, name: string, before: number): string | null {
  for (const w of model.withs) {
    if (w.functionIndex !== fnIndex || w.node.startIndex > before) continue;
    for (const item of w.items) {
      if (item.alias === name) {
        const c = calleeName(item.value);
        if (c) return c;
      }
    }
  }
  let best: string | null = null;
  for (const a of model.assignments) {
    if (a.functionIndex !== fnIndex || a.target !== name || a.node.startIndex > before) continue;
    const c = calleeName(a.value);
    if (c) best = c;
  }
  return best;
}

/** Is the assignment in a class body (not at module level), outside any function? */
function inClassBody(node: SyntaxNode): boolean {
  for (let p = node.parent; p; p = p.parent) if (p.type === 'class_definition') return true;
  return false;
}
