/**
 * PA210 check_then_insert
 *
 * What it does: finds a check-then-insert on a key: a row of model `M` looked up by a column
 * (`select(M).where(M.email == e)` … `.first()` / `.one_or_none()` / `scalar_one_or_none()`,
 * `session.query(M).filter_by(email=e).first()`, `M.query.filter_by(...).first()`), a test of the
 * result (`if row is None:`, `if not row:`, `if row: return/raise`), then a new `M(...)` built
 * with that same column, `add`ed, and committed (or flushed) in the same function — with no
 * `ON CONFLICT` / `merge`, and no `IntegrityError` handled around the insert. A row lock on the
 * check (`with_for_update`) locks nothing when no row is found, so it does not count.
 *
 * Why is this bad? Under READ COMMITTED (PostgreSQL's default) two concurrent calls both run the
 * SELECT before either commits, both see no row and both insert: a duplicate where the column
 * is not unique, an `IntegrityError` (a 500) where it is.
 *
 * Advisory when the model's schema keeps the key unique (its primary key, a `unique=True` column,
 * a `UniqueConstraint`/`PrimaryKeyConstraint`/unique `Index` of `__table_args__`): the race then
 * cannot leave a duplicate, the slower call fails with an `IntegrityError`. Reviewers of real code,
 * on the field set and on unseen services, judged every such case worth at most a note, and
 * every race on a key nothing keeps unique worth fixing. Silent when the lookup names one row by
 * a unique key (its primary key) and the new row gets another key (`Widget(id=uuid4(), ...)`):
 * it looked for one row and inserts a different one.
 *
 * Severity: low, in a request handler too. The race needs two concurrent first writes of one key
 * (a double submit, a retry); in six blind reviews of real services every one judged worth
 * keeping was judged worth `low` (a rare 500 or a duplicate row), and most were rarer still.
 * Also on a repository library's service (advanced-alchemy): `get_one_or_none(col=v)` tested,
 * then `self.create({"col": v, ...})` where nothing was found.
 *
 * Also a generic get-or-create (`def get_or_create(self, model, **kwargs)`: `filter_by(**kwargs)`,
 * then `model(**kwargs)` where nothing was found).
 *
 * Silent look-alikes: the insert (or its commit) in a `try` whose handler catches
 * `IntegrityError`; `on_conflict_do_nothing/update` or
 * `merge` in the function; a new row built without the looked-up column; a lookup whose result
 * is never tested.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import { declaresGlobal } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import type { Effect } from '../../../analysis/summary.js';
import { callGraphOf, siteCalls } from '../../../analysis/callgraph.js';
import { UNTYPED } from '../../../analysis/objects.js';
import { returnedValues } from '../query/selfRows.js';
import type { AssignmentInfo, CallInfo, FileModel } from '../../../semantic/model.js';
import { callAt, resolveImported, selfOffset } from '../../../semantic/model.js';
import { classOfFunction } from '../../../semantic/classes.js';
import { libraryClassModel, repositoryLibraryClasses } from '../../../semantic/repositoryLibrary.js';
import { assignmentsByFunction, callArgs, callsOf, enclosingTries, exceptClauses, lastAssignment, unwrap } from './semantics.js';

/** A single-row lookup: the model and the columns it filters on. */
/**
 * A lookup of one row, or of whether one exists (`.count()`, `exists()` read with `.scalar()`,
 * or the list `.all()` gives, tested for emptiness: `if q.all(): raise Duplicate`).
 */
const SINGLE = /\.(first|one_or_none|scalar_one_or_none|scalar|one|count|all)\s*\(\s*\)\s*$|^\s*(await\s+)?[\w.]+\.scalar\s*\(/;
/** `select(User)`, `query(User)`, or one of its columns: `select(User.id)`. */
const MODEL_OF_STATEMENT = /\b(?:select|query)\(\s*(?:[\w.]*\.)?([A-Z]\w*)(?:\.[a-z_]\w*)?\s*\)/;
/** `exists().where(User.email == e)`: the model of its first criterion. */
const MODEL_OF_EXISTS = /\bexists\(\s*\)\s*\.where\(\s*(?:[\w.]*\.)?([A-Z]\w*)\.[a-z_]\w*\s*==/;
/** Flask-SQLAlchemy's query property: `Tag.query.filter_by(...)` (not `Session.query(...)`). */
const MODEL_QUERY_PROPERTY = /\b([A-Z]\w*)\.query\s*\./;
const CONFLICT_SAFE = /on_conflict_do_(nothing|update)|\.merge\s*\(|insert\([^)]*\)\.prefix_with\(\s*["']OR (IGNORE|REPLACE)|ON CONFLICT/i;

export const checkThenInsert: FileRule & RepoRule = {
  meta: {
    code: 'PA210',
    check: 'check_then_insert',
    family: 'transaction',
    severity: 'low',
    effort: 'S',
    summary: 'A row looked up by a key, then inserted with that key when missing, with no lock, ON CONFLICT or IntegrityError handling',
    what: 'Finds a check-then-insert: a row of a model looked up by a column (`select(M).where(M.col == v)` with `.first()`/`.one_or_none()`/`scalar_one_or_none()`, `query(M).filter_by(col=v).first()`, `M.query.filter_by(...)`; or only whether one exists: `query(exists().where(M.col == v)).scalar()`, `scalar(select(M.id).where(...)) is not None`, `.count()` / `.count() > 0`), the result tested (`if row is None:`, `if not row:`, `if rows:` for the list `.all()` gives, a guard that returns or raises, or the lookup tested inline: `if <lookup> is not None: raise`), and a new `M(col=...)` with the same column (or one copied from the object the value came from: `M.model_validate(body)`, `M(**body.model_dump())` with the lookup on `body.col`) `add`ed and committed or flushed in the same function (also per item: a lookup in a loop and the insert in the same iteration, after `if row is None:` or past `if row: continue` — a get-or-create of each tag a request names), when nothing uses `ON CONFLICT`/`merge`, and no `except IntegrityError` surrounds the insert (nor a handler of one of its base classes, `SQLAlchemyError`, `Exception`, that answers the error itself instead of raising it on: `rollback(); raise HTTPException(409)`, or nothing raised; `raise`, `raise e` or any other error, `HTTPException(500)` included, is still a 500). A `with_for_update()` on the check does not make it safe: it locks the row when there is one, and nothing when there is none. Also when a uniqueness guard of the same module or class is called first, at the top level of the function (`cls.refuse_taken(slug)`, `check_free(db, email)`: a function whose own `if <lookup by a column == its parameter>:` raises or returns), and the function then adds a row with the value it passed. Also when the lookup is a helper of the repo that returns one row by a column compared with its parameter (`tag = find_tag(db, slug)`, `def find_tag(db, slug): return db.scalars(select(Tag).where(Tag.slug == slug)).first()`) and the caller adds a row built with the argument it passed there. Also in a service or repository built on a repository library (advanced-alchemy): `existing = await self.get_one_or_none(user_id=u, provider=p)`, a test of `existing`, then `self.create({...})`/`self.add(...)` with the same values for every looked-up field where none was found (the library flushes the INSERT), with no `upsert` in the function and no handler for the library\'s `IntegrityError`/`DuplicateKeyError`/`RepositoryError`. Silent when the function holds a lock around it (a PostgreSQL advisory lock, `with redis.lock(...)`, `lock.acquire()`, `with self._lock:`, a project helper named for a lock; not a lock made in the `with` itself, `with threading.Lock():`, which every call makes anew): a second caller waits for the first to commit and then finds its row. Also a generic get-or-create, where the model is a parameter and the key the caller\'s keywords (`def get_or_create(self, model, defaults=None, **kwargs)`: `query(model).filter_by(**kwargs).first()`, tested, then `model(**kwargs)` or `model(**params)` with `params` made from `kwargs`, added and flushed or committed): every get-or-create of the project goes through it. Low: it takes two concurrent first writes of the same key (a double submit, a retry). Advisory when the model\'s schema keeps the key unique (its primary key, a `unique=True` column, a `UniqueConstraint`, `PrimaryKeyConstraint` or unique `Index` in `__table_args__`, its own or a mixin\'s): the slower of two racing calls then fails with an `IntegrityError` and no duplicate is left. Silent when the lookup names one row by a unique key (`Widget.id == widget_id`) and the new row is built with another (`Widget(id=str(uuid4()), ...)`): it inserts a different row.',
    why: 'Under READ COMMITTED, PostgreSQL\'s default, two concurrent calls both run the SELECT before either commits, both find nothing, and both insert. Without a unique constraint the table gets a duplicate; with one, the slower call fails with an `IntegrityError` the code never expected, which a request answers with a 500.',
    bad:
      'from sqlalchemy import String, select\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column\n\n\n'
      + 'class Base(DeclarativeBase):\n    pass\n\n\nclass Tag(Base):\n    __tablename__ = "tags"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    name: Mapped[str] = mapped_column(String(40), index=True)\n\n\n'
      + 'def ensure_tag(session: Session, name: str) -> Tag:\n    tag = session.scalars(select(Tag).where(Tag.name == name)).first()\n    if tag is None:\n        tag = Tag(name=name)\n        session.add(tag)\n        session.commit()\n    return tag\n',
    good:
      'from sqlalchemy import String, select\nfrom sqlalchemy.dialects.postgresql import insert\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column\n\n\n'
      + 'class Base(DeclarativeBase):\n    pass\n\n\nclass Tag(Base):\n    __tablename__ = "tags"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    name: Mapped[str] = mapped_column(String(40), unique=True)\n\n\n'
      + 'def ensure_tag(session: Session, name: str) -> Tag:\n    session.execute(insert(Tag).values(name=name).on_conflict_do_nothing(index_elements=[Tag.name]))\n    session.commit()\n    return session.scalars(select(Tag).where(Tag.name == name)).one()\n',
    fix: 'insert with `ON CONFLICT` (`insert(M).on_conflict_do_nothing()` / `do_update()`) and read the row back, or catch `IntegrityError` around the insert (in a `begin_nested()` savepoint) and load the row the other call created; `with_for_update()` on the check only helps when the row already exists',
    references: [
      'https://docs.sqlalchemy.org/en/20/dialects/postgresql.html#insert-on-conflict-upsert',
      'https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED',
      'https://docs.sqlalchemy.org/en/20/orm/session_transaction.html#using-savepoint',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile) return;
    checkLibraryServices(ctx);
    if (!/\.add\s*\(/.test(model.source)) return;
    const models = modelNames(project);
    model.functions.forEach((fn, fnIndex) => {
      const text = model.source.slice(fn.start, fn.end);
      // (The lookup may sit in a guard of the same module, `guardLookups`: the file's text has it.)
      if (!/\.add\s*\(/.test(text) || !/(first|one_or_none|scalar|count|all)\s*\(/.test(model.source) || CONFLICT_SAFE.test(text)) return;
      checkFunction(ctx, model, fnIndex, models, assignmentsByFunction(model).get(fnIndex) ?? []);
      if (text.includes('**')) checkGenericGetOrCreate(ctx, model, fnIndex);
    });
  },
  /**
   * The check in a helper of the repo (`tag = find_tag(db, slug)` where `find_tag` returns
   * `session.scalars(select(Tag).where(Tag.slug == slug)).first()`), the insert in the caller.
   */
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    for (const { ref, file, fn, site, call, to } of siteCalls(graph, HELPER_CHECK_SITES)) {
      if (call.receiverType === UNTYPED) continue;
      const source = graph.ownEffects(to).find((e) => e.kind === LOOKUP_SOURCE);
      if (!source) continue;
      const [entity = '', spec = ''] = source.what.split('|');
      const fact = JSON.parse(site.what) as HelperCheck;
      if (fact.model !== entity) continue;
      // Column → the caller's argument for the parameter the helper compares it with.
      const keys: string[] = [];
      for (const part of spec.split(',')) {
        const [column = '', position = '', param = ''] = part.split(':');
        const passed = fact.keywords[param] ?? fact.positional[Number(position)];
        if (passed !== undefined && fact.built[column] === passed) keys.push(column);
      }
      if (!keys.length) continue;
      const schema = schemaKey(ctx.project, entity, spec.split(',').map((part) => part.split(':')[0] ?? ''), keys);
      if (schema === 'other-row') continue;
      const key = keys.join('`, `');
      const on = keys.map((k) => `${entity}.${k}`).join('`, `');
      const helper = graph.function(to).qualifiedName;
      ctx.report({
        path: file.path,
        location: fact.add,
        message: `check-then-insert on \`${on}\`: \`${fact.name}\` is looked up by \`${key}\` in \`${helper}()\` (line ${source.line} of ${graph.fileOf(to).path}) and a new \`${entity}\` with the same \`${key}\` is added here when none is found, then ${fact.end}; no lock, no \`ON CONFLICT\` and no \`IntegrityError\` handling: two concurrent calls both find nothing and both insert, ${schema ? 'and the slower one fails with an `IntegrityError`' : 'leaving a duplicate or failing with an `IntegrityError`'}`,
        severity: 'low',
        ...(schema ? { advisory: uniqueNote(entity, schema) } : {}),
        function: fn.name,
        chain: [{ path: file.path, line: call.line, column: call.column, function: fn.name, call: helper }],
      });
    }
  },
};

/**
 * A generic get-or-create: the model is a parameter and the key whatever the caller passes as
 * keywords (`def get_or_create(self, model, defaults=None, **kwargs)`): a row of `model` looked up
 * with `filter_by(**kwargs)`, tested, then `model(**kwargs)` (or `model(**params)`, `params` built
 * from `kwargs`) added and flushed or committed where none was found. Every get-or-create of the
 * project goes through it: one race for all of them.
 */
function checkGenericGetOrCreate(ctx: FileRuleContext, model: FileModel, fnIndex: number): void {
  const fn = model.functions[fnIndex]!;
  const params = fn.node.childForFieldName('parameters');
  const splat = params?.namedChildren.find((p) => p.type === 'dictionary_splat_pattern')?.namedChild(0)?.text;
  if (!splat) return;
  const names = fn.params.slice(selfOffset(fn)).map((p) => p.name);
  const calls = callsOf(model, fnIndex);
  for (const a of assignmentsByFunction(model).get(fnIndex) ?? []) {
    if (!a.value || !/^[A-Za-z_]\w*$/.test(a.target) || a.loops.length) continue;
    const t = unwrap(a.value)!.text.replace(/\s+/g, '');
    if (!SINGLE.test(t) || /with_for_update/.test(t)) continue;
    // `query(model).filter_by(**kwargs)`, `select(model).filter_by(**kwargs)`: the model a parameter.
    const m = /\b(?:query|select)\(([A-Za-z_]\w*)\)/.exec(t);
    const cls = m?.[1];
    if (!cls || !names.includes(cls) || !t.includes(`.filter_by(**${splat})`)) continue;
    // Under a lock the function (or a project helper named for one) holds: a second caller waits.
    if (lockHeldBefore(fn.node, a.node.startIndex, model, fnIndex)) continue;
    const look: Lookup = { name: a.target, model: cls, columns: new Map(), line: a.line, node: a.node, locked: false };
    const regions = missingRegions(fn.node, look);
    if (!regions.length) continue;
    for (const { add, ctor } of addsWhereMissing(model, calls, a, regions, fnIndex)) {
      if (ctor.childForFieldName('function')?.text !== cls) continue;
      // Built from the same keywords: `model(**kwargs)`, or `model(**params)` with `params` made from them.
      const splats = (ctor.childForFieldName('arguments')?.namedChildren ?? []).filter((x) => x.type === 'dictionary_splat').map((x) => x.namedChild(0)?.text ?? '');
      const fromKwargs = splats.some((n) => n === splat || new RegExp(`(^|[^\\w])${splat}([^\\w]|$)`).test(unwrap(lastAssignment(model, n, fnIndex, add.line)?.value ?? null)?.text ?? ''));
      if (!fromKwargs) continue;
      const end = calls.find((c) => (c.method === 'commit' || c.method === 'flush') && c.hasReceiver && c.node.startIndex > add.node.startIndex);
      if (!end || guarded(add.node, fn.node) || guarded(end.node, fn.node)) continue;
      ctx.report({
        node: add.node,
        message: `check-then-insert in a generic get-or-create: a \`${cls}\` row is looked up by the caller's keywords (\`filter_by(**${splat})\`, line ${a.line}) and a new one built from the same keywords is added here when none is found, then ${end.method === 'commit' ? 'committed' : 'flushed'} (line ${end.line}); no lock, no \`ON CONFLICT\` and no \`IntegrityError\` handling: two concurrent calls with the same keys both find nothing and both insert, leaving a duplicate or failing with an \`IntegrityError\` — for every model that goes through it`,
        severity: 'low',
      });
      return;
    }
  }
}

/** Own effect: the function returns one row of `Model` looked up by columns compared with its parameters (`what` = `Model|col:position:param,...`). */
export const LOOKUP_SOURCE = 'lookup_source';
/** Site fact: a row bound from a call, tested, and a new row built and added where it was missing (`what` = JSON {@link HelperCheck}). */
export const HELPER_CHECK = 'helper_check';
const HELPER_CHECK_SITES: ReadonlySet<string> = new Set([HELPER_CHECK]);

interface HelperCheck {
  name: string;
  model: string;
  /** Column → the value text the new row is built with. */
  built: Record<string, string>;
  positional: string[];
  keywords: Record<string, string>;
  add: { line: number; column: number; endLine: number; endColumn: number };
  end: string;
}

/** PA210's facts for a check in a helper: lookups functions return, and the callers' inserts after a tested call. */
export function collectCheckFacts(model: FileModel): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return out;
  const byFn = assignmentsByFunction(model);
  model.functions.forEach((fn, fnIndex) => {
    const text = model.source.slice(fn.start, fn.end);
    if (/\breturn\b/.test(text) && SINGLE_HINT.test(text)) {
      const source = returnedLookup(model, fnIndex);
      if (source) out[fnIndex]!.push({ kind: LOOKUP_SOURCE, what: source.what, line: source.line, column: 1 });
    }
    if (!/\.add\s*\(/.test(text) || CONFLICT_SAFE.test(text) || !/\.(commit|flush)\s*\(/.test(text)) return;
    const calls = callsOf(model, fnIndex);
    for (const a of byFn.get(fnIndex) ?? []) {
      if (!a.value || !/^[A-Za-z_]\w*$/.test(a.target) || a.loops.length) continue;
      const v = unwrap(a.value)!;
      if (v.type !== 'call' || SINGLE.test(v.text) || /\b(select|query)\s*\(/.test(v.text)) continue;
      const look: Lookup = { name: a.target, model: '', columns: new Map(), line: a.line, node: a.node, locked: false };
      const regions = missingRegions(fn.node, look);
      if (!regions.length) continue;
      for (const { add, ctor } of addsWhereMissing(model, calls, a, regions, fnIndex)) {
        const ctorName = ctorModel(ctor);
        if (!ctorName) continue;
        const end = calls.find((c) => (c.method === 'commit' || c.method === 'flush') && c.hasReceiver && c.node.startIndex > add.node.startIndex);
        if (!end || guarded(add.node, fn.node) || guarded(end.node, fn.node)) continue;
        const built: Record<string, string> = {};
        for (const [k, val] of callArgs(ctor).keywords) built[k] = val.text.replace(/\s+/g, '');
        const args = callArgs(v);
        const keywords: Record<string, string> = {};
        for (const [k, val] of args.keywords) keywords[k] = val.text.replace(/\s+/g, '');
        const s = add.node.startPosition;
        const e = add.node.endPosition;
        const fact: HelperCheck = {
          name: a.target, model: ctorName, built, positional: args.positional.map((p) => p.text.replace(/\s+/g, '')), keywords,
          add: { line: s.row + 1, column: s.column + 1, endLine: e.row + 1, endColumn: e.column + 1 },
          end: `${end.method === 'commit' ? 'committed' : 'flushed'} (line ${end.line})`,
        };
        const call = callAt(model, v);
        if (call) out[fnIndex]!.push({ kind: HELPER_CHECK, what: JSON.stringify(fact), line: call.line, column: call.column });
        break;
      }
    }
  });
  return out;
}

const SINGLE_HINT = /(first|one_or_none|scalar)\s*\(/;

/** The single-row lookup a function returns, by columns compared with its parameters: `Model|col:position:param,...`. */
function returnedLookup(model: FileModel, fnIndex: number): { what: string; line: number } | null {
  const fn = model.functions[fnIndex]!;
  const offset = selfOffset(fn);
  for (const v of returnedValues(model, fnIndex)) {
    if (!SINGLE.test(v.text) || /with_for_update/.test(v.text)) continue;
    const name = MODEL_OF_STATEMENT.exec(v.text)?.[1] ?? MODEL_QUERY_PROPERTY.exec(v.text)?.[1];
    if (!name) continue;
    const parts: string[] = [];
    // `id` too, when a natural key is there as well: the schema's primary key decides the race.
    for (const [column, value] of comparedColumns(v.text, name)) {
      const index = fn.params.findIndex((q) => q.name === value);
      if (index >= offset) parts.push(`${column}:${index - offset}:${value}`);
    }
    if (parts.some((p) => !p.startsWith('id:'))) return { what: `${name}|${parts.join(',')}`, line: v.startPosition.row + 1 };
  }
  return null;
}

const MODEL_NAMES = new WeakMap<object, Set<string>>();

/** The project's model names, once per project (a monorepo has thousands: a Set per file cost). */
function modelNames(project: FileRuleContext['project']): Set<string> {
  let names = MODEL_NAMES.get(project);
  if (!names) MODEL_NAMES.set(project, (names = new Set((project.models ?? []).map((m) => m.name))));
  return names;
}

interface Lookup {
  /** The name the row is bound to; null for a lookup tested inline (`if <lookup> is not None:`). */
  name: string | null;
  model: string;
  /** Column → the value expression it is compared with (whitespace-free). */
  columns: Map<string, string>;
  line: number;
  node: SyntaxNode;
  /** The lookup takes `with_for_update()`: that locks a row that exists, not one that is missing. */
  locked: boolean;
  /** Every column the lookup compares, `id` included, when read from its text. */
  compared?: Map<string, string>;
  /** The `if` that tests an inline lookup, and whether its condition is true when a row is found. */
  test?: SyntaxNode;
  foundWhenTrue?: boolean;
  /** The loop the lookup runs in (a get-or-create per item: `for label in labels: tag = ...first()`), or -1. */
  loop?: number;
  /** Where that loop ends: after `if tag: continue`, the rest of the iteration is where the row is missing. */
  loopEnd?: number;
  /** Where the row is known missing, when a guard helper decided it (see `guardLookups`). */
  regions?: { from: number; to: number }[];
}

/** A `with` item that takes a lock (`with redis.lock("k"):`, `with job_lock(name):`, `with FileLock(p):`; a name: {@link LOCK_NAME}). */
const WITH_LOCK_ITEM = /(?:(?:\b|_)(?:lock|mutex|semaphore)|(?:\b|_|(?<=[a-z]))(?:Lock|Mutex|Semaphore))\w*\s*\(/;
/**
 * A lock made right there, in the `with` (`with threading.Lock():`, `with asyncio.Lock():`): each
 * call makes its own, so no two callers ever wait on the same one.
 */
const FRESH_LOCK = /^(?:(\w+)\.)?(?:Lock|RLock|Semaphore|BoundedSemaphore|Condition)\s*\(/;
/** The standard libraries whose locks live in one process: one made per call guards nothing. */
const LOCAL_LOCK_MODULES = /^(threading|asyncio|multiprocessing|trio|anyio)(\.|$)/;

/**
 * Is the text a lock made right there, of a process-local library: `threading.Lock()`,
 * `mp.Lock()` with `import multiprocessing as mp`, `Lock()` imported from `threading`? A lock
 * class of another library (`redis_lock.Lock(conn, key)`, kazoo's `zk.Lock(path)`) is named by a
 * key that other callers share.
 */
function freshLock(text: string, model?: FileModel): boolean {
  const m = FRESH_LOCK.exec(text);
  if (!m) return false;
  if (!model) return !m[1] || LOCAL_LOCK_MODULES.test(m[1]);
  if (m[1]) return LOCAL_LOCK_MODULES.test(model.imports.get(m[1]) ?? m[1]);
  const name = /^\w+/.exec(text)![0];
  const from = model.imports.get(name);
  return from === undefined ? !model.moduleDefs.has(name) : LOCAL_LOCK_MODULES.test(from);
}
/** A lock held by name, made once elsewhere (`with _label_lock:`, `with self._mutex:`). */
const LOCK_NAME = /^(?:\w+\.)*(?:_*(?:\w+_)?r?(?:lock|mutex|semaphore|sem)(?:_\w+)?|\w*[a-z0-9](?:Lock|Mutex|Semaphore))$/i;
/** CamelCase parts need their capital: `writeLock`, not `clock` or `block` read case-blind. */
const LOCK_NAME_CASED = /^(?:\w+\.)*(?:_*(?:\w+_)?[rR]?(?:lock|Lock|LOCK|mutex|Mutex|MUTEX|semaphore|Semaphore|sem)(?:_\w+)?|\w*[a-z0-9](?:Lock|Mutex|Semaphore))$/;
/** A lock taken by a call: `lock.acquire()`, `try_lock(...)`, a PostgreSQL advisory lock. */
const CALL_LOCK = /\.acquire\s*\(|\b\w*(?:try_lock|acquire_lock)\w*\s*\(|pg_(try_)?advisory_(xact_)?lock/g;

/**
 * Does the function hold a lock at its first lookup: a `with` that takes one around it, or a
 * lock taken by a call before it (in code: not a comment or a docstring; not a pool's
 * `acquire()` of a connection)?
 */
function lockHeldBefore(fnNode: SyntaxNode, before: number, model?: FileModel, fnIndex = -1): boolean {
  /** A lock held by name, unless the function made it itself just before (`lock = threading.Lock()`). */
  const sharedByName = (text: string) => {
    if (!LOCK_NAME.test(text) || !LOCK_NAME_CASED.test(text)) return false;
    if (!model || !/^\w+$/.test(text)) return true;
    // A module-level lock filled on first use (`global _lock; if _lock is None: _lock = Lock()`) is shared.
    const fn = fnIndex >= 0 ? model.functions[fnIndex] : undefined;
    if (fn && declaresGlobal(fn, text)) return true;
    const own = model.assignments.filter((a) => a.functionIndex === fnIndex && a.target === text);
    return !own.some((a) => !!a.value && freshLock(a.value.text.trim(), model));
  };
  for (const w of fnNode.descendantsOfType('with_statement')) {
    if (w.startIndex >= before || w.endIndex <= before) continue;
    const items = w.namedChildren.find((c) => c.type === 'with_clause')?.namedChildren.filter((c) => c.type === 'with_item') ?? [];
    if (items.some((i) => (WITH_LOCK_ITEM.test(i.text) && !freshLock(i.text.trim(), model)) || sharedByName(i.text.trim()))) return true;
  }
  let text = fnNode.text.slice(0, Math.max(0, before - fnNode.startIndex));
  const blank = (n: SyntaxNode) => {
    if (n.startIndex >= before) return;
    const from = n.startIndex - fnNode.startIndex;
    const to = Math.min(n.endIndex, before) - fnNode.startIndex;
    text = text.slice(0, from) + ' '.repeat(to - from) + text.slice(to);
  };
  for (const c of fnNode.descendantsOfType('comment')) blank(c);
  // Docstrings and other bare strings: text, not code.
  for (const e of fnNode.descendantsOfType('expression_statement')) if (e.namedChildCount === 1 && e.namedChild(0)?.type === 'string') blank(e);
  for (const m of text.matchAll(CALL_LOCK)) {
    if (/^\.acquire/.test(m[0]) && /(^|[^\w])(\w+_)?pool\s*$/i.test(text.slice(0, m.index))) continue;
    return true;
  }
  return false;
}

function checkFunction(ctx: FileRuleContext, model: FileModel, fnIndex: number, models: Set<string>, assignments: readonly AssignmentInfo[]): void {
  const fn = model.functions[fnIndex]!;
  const lookups: Lookup[] = [];
  for (const a of assignments) {
    if (!a.value || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
    const v = unwrap(a.value)!;
    const t = v.text;
    if (!SINGLE.test(t)) continue;
    const name = MODEL_OF_STATEMENT.exec(t)?.[1] ?? MODEL_OF_EXISTS.exec(t)?.[1] ?? MODEL_QUERY_PROPERTY.exec(t)?.[1];
    if (!name) continue;
    const columns = filterColumns(t, name);
    if (!columns.size) continue;
    lookups.push({ name: a.target, model: name, columns, compared: comparedColumns(t, name), line: a.line, node: a.node, locked: /with_for_update/.test(t), loop: a.loops.length ? a.loops[a.loops.length - 1]! : -1, ...(a.loops.length ? { loopEnd: model.loops[a.loops[a.loops.length - 1]!]!.node.endIndex } : {}) });
  }
  // Tested inline: `if session.scalars(select(User).where(User.email == e)).first() is not None: raise`.
  for (const node of fn.node.descendantsOfType('if_statement')) {
    const cond = node.childForFieldName('condition');
    const parsed = cond ? inlineLookupTest(cond) : null;
    if (!cond || !parsed) continue;
    const { text: t, name, foundWhenTrue } = parsed;
    const columns = filterColumns(t, name);
    if (!columns.size) continue;
    lookups.push({ name: null, model: name, columns, compared: comparedColumns(t, name), line: node.startPosition.row + 1, node: cond, locked: /with_for_update/.test(t), test: node, foundWhenTrue });
  }
  lookups.push(...guardLookups(model, fnIndex));
  // A lock the function holds (`pg_advisory_xact_lock(...)` on the key, `with redis.lock(...)`):
  // a second caller waits for the first to commit, then its check sees the row.
  if (!lookups.length || lockHeldBefore(fn.node, Math.min(...lookups.map((l) => l.node.startIndex)), model, fnIndex)) return;
  const calls = callsOf(model, fnIndex);
  const done = new Set<number>();
  /** The constructors of the rows already reported. */
  const rows = new Set<number>();
  for (const look of lookups) {
    const regions = look.regions ?? (look.test ? inlineMissingRegions(fn.node, look.test, look.foundWhenTrue!) : missingRegions(fn.node, look));
    if (!regions.length) continue;
    for (const add of calls) {
      if (add.method !== 'add' || !add.hasReceiver || add.node.startIndex <= look.node.endIndex || done.has(add.node.startIndex)) continue;
      // A lookup in a loop (get-or-create per item): the insert in the same iteration.
      if (look.loop !== undefined && look.loop >= 0 && !add.loops.includes(look.loop)) continue;
      const arg = unwrap(callArgs(add.node).positional[0] ?? null);
      if (!arg) continue;
      // The new row is built where the lookup found nothing (`add` there, or after it).
      const ctor = constructorOf(model, arg, fnIndex, add.line);
      if (!ctor || ctorModel(ctor) !== look.model || !regions.some((r) => ctor.startIndex >= r.from && ctor.endIndex <= r.to)) continue;
      // One insert per new row: a later `add` of the same object (after the branches join, of a
      // row found or made) is the same race, reported at its first add.
      if (rows.has(ctor.startIndex)) continue;
      // The new row carries the looked-up value in the looked-up column(s).
      const kw = callArgs(ctor).keywords;
      // Or built from the object the looked-up value was read from: `Hero.model_validate(body)`,
      // `Hero(**body.model_dump())` with the lookup on `body.name`.
      const source = copiedFrom(ctor);
      const keys = [...look.columns].filter(([c, v]) => kw.get(c)?.text.replace(/\s+/g, '') === v || (source !== null && v === `${source}.${c}`)).map(([c]) => c);
      if (!keys.length) continue;
      // Committed or flushed after the add, in this function.
      const end = calls.find((c) => (c.method === 'commit' || c.method === 'flush') && c.hasReceiver && c.node.startIndex > add.node.startIndex);
      if (!end) continue;
      if (guarded(add.node, fn.node) || guarded(end.node, fn.node)) continue;
      // What the schema says, over every compared column (`id` too: a new row reusing the looked-up key).
      const compared = look.compared ?? look.columns;
      const reused = [...compared].filter(([c, v]) => kw.get(c)?.text.replace(/\s+/g, '') === v || (source !== null && v === `${source}.${c}`)).map(([c]) => c);
      const schema = schemaKey(ctx.project, look.model, [...compared.keys()], reused, model);
      const key = reused.join('`, `');
      const on = reused.map((k) => `${look.model}.${k}`).join('`, `');
      if (schema === 'other-row') continue;
      done.add(add.node.startIndex);
      rows.add(ctor.startIndex);
      ctx.report({
        node: add.node,
        message: `check-then-insert on \`${on}\`: ${look.name ? `\`${look.name}\`` : `a \`${look.model}\``} is looked up by \`${key}\` (line ${look.line}) and a new \`${look.model}\` with the same \`${key}\` is added when none is found, then ${end.method === 'commit' ? 'committed' : 'flushed'} (line ${end.line}); ${look.locked ? '`with_for_update()` locks only a row that exists (when none is found it locks nothing), and' : 'no lock,'} no \`ON CONFLICT\` and no \`IntegrityError\` handling: two concurrent calls both find nothing and both insert, ${schema ? 'and the slower one fails with an `IntegrityError`' : 'leaving a duplicate or failing with an `IntegrityError`'}`,
        severity: 'low',
        ...(schema ? { advisory: uniqueNote(look.model, schema) } : {}),
      });
    }
  }
}

/**
 * An `if` condition that tests a lookup inline (`if session.scalars(select(User).where(...)).first()
 * is not None:`, `if not q.first():`, `if q.count() > 0:`): the lookup's text, its model, and
 * whether the condition holds when a row is found. Null for anything else, and for a comparison
 * this cannot read (`if q.count() > 1:` is no existence test).
 */
function inlineLookupTest(cond: SyntaxNode): { text: string; name: string; foundWhenTrue: boolean } | null {
  const m = /^(not\s+)?([\s\S]+?)(\s+is\s+(not\s+)?None|\s*(>|>=|!=|==)\s*([01]))?$/.exec(cond.text.trim());
  if (!m) return null;
  const t = m[2]!;
  if (!SINGLE.test(t)) return null;
  const name = MODEL_OF_STATEMENT.exec(t)?.[1] ?? MODEL_OF_EXISTS.exec(t)?.[1] ?? MODEL_QUERY_PROPERTY.exec(t)?.[1];
  if (!name) return null;
  // Found when the test is true: `if <lookup>:`, `if <lookup> is not None:`, `if <count> > 0:`.
  let positive = m[3] === undefined || (m[3].includes('None') && m[4] !== undefined);
  if (m[5]) {
    const op = `${m[5]}${m[6]}`;
    if (op === '>0' || op === '>=1' || op === '!=0') positive = true;
    else if (op === '==0') positive = false;
    else return null;
  }
  return { text: t, name, foundWhenTrue: !m[1] === positive };
}

/**
 * A uniqueness guard of the same module or class called first (`cls.ensure_unique(owner, name)`,
 * `check_free(db, slug)`): a function whose own `if <lookup of M by a column == its parameter>:
 * raise` (or `return`) refuses a duplicate. After the call, at the top level of the caller's
 * body, the row is known missing: an insert of `M` with the value passed for that parameter is
 * the same check-then-insert, split over two functions.
 */
function guardLookups(model: FileModel, fnIndex: number): Lookup[] {
  const fn = model.functions[fnIndex]!;
  const out: Lookup[] = [];
  if (!fn.body) return out;
  for (const call of callsOf(model, fnIndex)) {
    if (call.functionIndex !== fnIndex) continue;
    // A statement of the function's own body (not under a branch, a loop or a `try`).
    const stmt = call.node.parent?.type === 'expression_statement' ? call.node.parent : null;
    if (stmt?.parent?.id !== fn.body.id) continue;
    const recv = call.receiver?.text;
    const target = !call.hasReceiver
      ? model.functions.find((f) => f.name === call.method && f.parent < 0 && !f.className)
      : (recv === 'self' || recv === 'cls') && fn.className ? model.functions.find((f) => f.name === call.method && f.className === fn.className) : undefined;
    if (!target || target.index === fnIndex || !target.body) continue;
    for (const test of target.body.descendantsOfType('if_statement')) {
      const cond = test.childForFieldName('condition');
      const parsed = cond ? inlineLookupTest(cond) : null;
      if (!parsed?.foundWhenTrue) continue;
      const { text: t, name } = parsed;
      const body = test.childForFieldName('consequence');
      if (test.childForFieldName('alternative') || !/^(raise|return)_statement$/.test(body?.namedChildren.filter((c) => c.type !== 'comment').pop()?.type ?? '')) continue;
      const { positional, keywords } = callArgs(call.node);
      const offset = selfOffset(target);
      const columns = new Map<string, string>();
      for (const [column, value] of filterColumns(t, name)) {
        const index = target.params.findIndex((q) => q.name === value);
        if (index < offset) continue;
        const arg = keywords.get(value) ?? positional[index - offset];
        if (arg) columns.set(column, arg.text.replace(/\s+/g, ''));
      }
      if (!columns.size) continue;
      out.push({ name: null, model: name, columns, line: call.line, node: call.node, locked: /with_for_update/.test(t), regions: [{ from: call.node.endIndex, to: fn.node.endIndex }] });
      break;
    }
  }
  return out;
}

/** Columns a lookup filters on, with the value: `M.col == v` in `where`/`filter`, `filter_by(col=v)`. */
function filterColumns(text: string, modelName: string): Map<string, string> {
  const out = comparedColumns(text, modelName);
  out.delete('id');
  return out;
}

/** Every column a lookup compares with a value, `id` included (for what the schema keeps unique). */
function comparedColumns(text: string, modelName: string): Map<string, string> {
  const out = new Map<string, string>();
  const value = /\s*([\w.]+(?:\[[^\]]*\])?)\s*(?=[,)]|$)/y;
  const eq = new RegExp(`\\b${modelName}\\.([a-z_]\\w*)\\s*==`, 'g');
  for (let m = eq.exec(text); m; m = eq.exec(text)) {
    value.lastIndex = eq.lastIndex;
    const v = value.exec(text);
    if (v) out.set(m[1]!, v[1]!.replace(/\s+/g, ''));
  }
  const by = /\bfilter_by\s*\(([^()]*)\)/g;
  for (let m = by.exec(text); m; m = by.exec(text)) {
    for (const k of m[1]!.matchAll(/(?:^|,)\s*([a-z_]\w*)\s*=(?!=)\s*([\w.]+(?:\[[^\]]*\])?)\s*(?=,|$)/g)) out.set(k[1]!, k[2]!.replace(/\s+/g, ''));
  }
  return out;
}

/**
 * Where the lookup's row is known to be missing, after the `if` that tests it: the body of
 * `if row is None:` / `if not row:`, the `else` of `if row:`, and everything after an
 * `if row: return/raise` (or, for a lookup in a loop, the rest of the iteration after `if row:
 * continue`). Empty when nothing tests the result.
 */
function missingRegions(fnNode: SyntaxNode, look: Lookup): { from: number; to: number }[] {
  const n = look.name;
  const missing = new RegExp(`^(not\\s+${n}|${n}\\s+is\\s+None|${n}\\s*==\\s*None)$`);
  const present = new RegExp(`^(${n}|${n}\\s+is\\s+not\\s+None)$`);
  const out: { from: number; to: number }[] = [];
  // The first `if` after the lookup, in the order a walk down the tree meets them, that tests it.
  for (const node of ownIfs(fnNode)) {
    if (node.startIndex <= look.node.endIndex) continue;
    const cond = node.childForFieldName('condition')?.text.replace(/\s+/g, ' ').trim() ?? '';
    const body = node.childForFieldName('consequence');
    if (body && missing.test(cond)) {
      out.push({ from: body.startIndex, to: body.endIndex });
      return out;
    }
    if (body && present.test(cond)) {
      const alt = node.childForFieldName('alternative');
      if (alt?.type === 'else_clause') out.push({ from: alt.startIndex, to: alt.endIndex });
      const last = body.namedChildren.filter((c) => c.type !== 'comment').pop()?.type ?? '';
      if (/^(return|raise)_statement$/.test(last)) out.push({ from: node.endIndex, to: fnNode.endIndex });
      // `if tag: continue` in the loop of a get-or-create: the rest of the iteration.
      else if (last === 'continue_statement' && look.loopEnd !== undefined) out.push({ from: node.endIndex, to: look.loopEnd });
      if (out.length) return out;
    }
  }
  return out;
}

const IF_OR_DEF = ['if_statement', 'function_definition'];
const ownIfsMemo = new WeakMap<SyntaxNode, SyntaxNode[]>();

/**
 * The `if` statements under `fnNode`, in document order, not those of a def nested in it: one
 * batch from the parser, once per function (a walk down the tree crossed into it for every
 * node's children, for every lookup of the function).
 */
function ownIfs(fnNode: SyntaxNode): SyntaxNode[] {
  let ifs = ownIfsMemo.get(fnNode);
  if (ifs) return ifs;
  ifs = [];
  let hiddenUntil = -1;
  for (const node of fnNode.descendantsOfType(IF_OR_DEF)) {
    if (node.startIndex < hiddenUntil) continue;
    if (node.type === 'if_statement') ifs.push(node);
    else if (node.startIndex !== fnNode.startIndex) hiddenUntil = node.endIndex;
  }
  ownIfsMemo.set(fnNode, ifs);
  return ifs;
}

/** Where an inline lookup found nothing: the branch of the `if` taken then, and after it when the other branch leaves. */
function inlineMissingRegions(fnNode: SyntaxNode, test: SyntaxNode, foundWhenTrue: boolean): { from: number; to: number }[] {
  const body = test.childForFieldName('consequence');
  const alt = test.childForFieldName('alternative');
  const leaves = (b: SyntaxNode | null | undefined) => /^(return|raise)_statement$/.test(b?.namedChildren.filter((c) => c.type !== 'comment').pop()?.type ?? '');
  if (!foundWhenTrue) return body ? [{ from: body.startIndex, to: body.endIndex }] : [];
  const out: { from: number; to: number }[] = [];
  if (alt?.type === 'else_clause') out.push({ from: alt.startIndex, to: alt.endIndex });
  if (leaves(body)) out.push({ from: test.endIndex, to: fnNode.endIndex });
  return out;
}

/** The name a new row copies its fields from: `M.model_validate(x)`, `M.from_orm(x)`, `M(**x.model_dump())`, `M(**x)`. */
function copiedFrom(ctor: SyntaxNode): string | null {
  const callee = ctor.childForFieldName('function')?.text.replace(/\s+/g, '') ?? '';
  const args = ctor.childForFieldName('arguments')?.namedChildren ?? [];
  if (/\.(model_validate|from_orm|parse_obj|model_construct|validate)$/.test(callee)) {
    return args[0]?.type === 'identifier' ? args[0].text : null;
  }
  const splat = args.find((a) => a.type === 'dictionary_splat');
  const m = splat ? /^\*\*\s*([A-Za-z_]\w*)(?:\.(?:model_dump|dict)\(\s*\))?$/.exec(splat.text) : null;
  return m ? m[1]! : null;
}

/** The `M(...)` call an `add` argument is: inline, or the last assignment of a name. */
function constructorOf(model: FileModel, arg: SyntaxNode, fnIndex: number, line: number): SyntaxNode | null {
  if (arg.type === 'call') return arg;
  if (arg.type !== 'identifier') return null;
  const a = lastAssignment(model, arg.text, fnIndex, line);
  const v = unwrap(a?.value ?? null);
  return v?.type === 'call' ? v : null;
}

/** The `session.add(X(...))` calls after the lookup whose new object is built where the lookup found nothing. */
function* addsWhereMissing(model: FileModel, calls: readonly CallInfo[], lookup: AssignmentInfo, regions: { from: number; to: number }[], fnIndex: number): Generator<{ add: CallInfo; ctor: SyntaxNode }> {
  for (const add of calls) {
    if (add.method !== 'add' || !add.hasReceiver || add.node.startIndex <= lookup.node.endIndex) continue;
    const arg = unwrap(callArgs(add.node).positional[0] ?? null);
    const ctor = arg ? constructorOf(model, arg, fnIndex, add.line) : null;
    if (ctor && regions.some((r) => ctor.startIndex >= r.from && ctor.endIndex <= r.to)) yield { add, ctor };
  }
}

function ctorModel(call: SyntaxNode): string | null {
  const fn = (call.childForFieldName('function')?.text.replace(/\s+/g, '') ?? '').replace(/\.(model_validate|from_orm|parse_obj|model_construct|validate)$/, '');
  const last = fn.split('.').pop() ?? '';
  return /^[A-Z]\w*$/.test(last) ? last : null;
}

/**
 * Inside a `try` (in the function) with a handler that catches `IntegrityError` (or a repository
 * library's wrapper of it)? Or one of its base classes (`SQLAlchemyError`, `DBAPIError`,
 * `Exception`, a bare `except:`) when the handler does not raise the error on (`raise`, `raise
 * e`): it answers the duplicate itself (`rollback(); raise HTTPException(409)`).
 */
function guarded(node: SyntaxNode, fnNode: SyntaxNode): boolean {
  return enclosingTries(node, fnNode).some((t) => exceptClauses(t).some((h) => {
    const head = h.text.split('\n')[0] ?? '';
    if (/IntegrityError|UniqueViolation|DuplicateKey|RepositoryError|ConflictError/.test(head)) return true;
    if (!/^except\s*(\*\s*)?(:|\(?\s*[\w.]*\b(SQLAlchemyError|DBAPIError|DatabaseError|StatementError|Exception|BaseException)\b)/.test(head)) return false;
    // It answers the duplicate when it raises nothing, or raises a conflict or a client error
    // (`HTTPException(409)`, `abort(400)`, `ConflictError(...)`); raising anything else on (`raise`,
    // `raise e`, `raise HTTPException(500) from e`, `raise RuntimeError(...)`) is still a 500.
    return h.descendantsOfType('raise_statement').every((r) => answersConflict(r.namedChild(0)));
  }));
}

/**
 * What the model's schema says about a check-then-insert's key: `other-row` when the lookup
 * names a row by a unique key (its primary key, a unique column or constraint) that the new row
 * does not reuse — it looked for one row and inserts another, no race on a key; the unique
 * column set the inserted key covers, when it does — two racing calls cannot leave a duplicate,
 * the slower one fails with an `IntegrityError`; null when the schema keeps the key unique
 * nowhere the model declares (or the model is unknown).
 */
function schemaKey(project: FileRuleContext['project'], modelName: string, lookedUp: readonly string[], inserted: readonly string[], file?: FileModel): 'other-row' | string[] | null {
  // A model imported under another name (`from app.models import Server as ServerRow`).
  const qualified = file ? resolveImported(file, modelName) : null;
  const name = qualified ? qualified.slice(qualified.lastIndexOf('.') + 1) : modelName;
  const info = (project.models ?? []).find((m) => m.name === name);
  if (!info) return null;
  const sets = [...(info.primaryKey?.length ? [info.primaryKey] : []), ...(info.uniqueKeys ?? [])];
  const covered = sets.find((k) => k.every((c) => inserted.includes(c)));
  if (covered) return covered;
  if (sets.some((k) => k.every((c) => lookedUp.includes(c)))) return 'other-row';
  return null;
}

/** The advisory note of a check-then-insert whose key the schema keeps unique. */
function uniqueNote(modelName: string, key: readonly string[]): string {
  return `the schema keeps \`${key.map((k) => `${modelName}.${k}`).join('`, `')}\` unique: the race cannot leave a duplicate, the slower of two concurrent first writes fails with an \`IntegrityError\` (a rare error, no bad data)`;
}

/** A raised exception that tells the client about the conflict (a 4xx, or named for one). */
function answersConflict(raised: SyntaxNode | null): boolean {
  if (!raised) return false;
  const text = raised.text.replace(/\s+/g, ' ');
  if (/^\w*(Conflict|Duplicate|AlreadyExists|Taken)\w*\s*\(/.test(text.replace(/^[\w.]*\./, ''))) return true;
  const http = /^(?:[\w.]*\.)?(HTTPException|HTTPError|abort|APIException|ClientException)\s*\((.*)\)$/.exec(text);
  if (!http) return /^(?:[\w.]*\.)?(Conflict|BadRequest|UnprocessableEntity|Forbidden|NotFound)\s*\(/.test(text);
  // The status, first or by keyword: `409`, `status_code=409`, `status.HTTP_409_CONFLICT`, `HTTPStatus.CONFLICT`.
  const args = http[2]!;
  const code = /(?:^|,)\s*(?:status_code\s*=\s*)?([^,]+)/.exec(/status_code\s*=/.test(args) ? args.slice(args.search(/status_code\s*=/)) : args)?.[1]?.trim() ?? '';
  return /^4\d\d$|HTTP_4\d\d|HTTPStatus\.(BAD_REQUEST|CONFLICT|UNPROCESSABLE_ENTITY|FORBIDDEN|NOT_FOUND|PRECONDITION_FAILED)/.test(code);
}

/** Keywords of the library's lookups that are options, not fields to filter by. */
const LIBRARY_OPTIONS = new Set(['id', 'load', 'execution_options', 'auto_expunge', 'statement', 'uniquify', 'error_messages', 'use_cache', 'with_for_update']);

/** A repository library's lookup of one row by fields, on the service or its repository. */
const LIBRARY_LOOKUP = /^(?:await\s+)?self(?:\.repository)?\.get_one_or_none\s*\(/;
/** A repository library's insert of one row: `create` / `add` (the library flushes it). */
const LIBRARY_INSERT = /^self(?:\.repository)?\.(create|add)$/;

/**
 * The check-then-insert of a service or repository built on a repository library
 * (advanced-alchemy): `existing = await self.get_one_or_none(user_id=u, provider=p)`, a test of
 * `existing`, then `await self.create({"user_id": u, "provider": p, ...})` where none was found.
 * The library's `create`/`add` flushes the INSERT; nothing locks a row that is missing.
 */
function checkLibraryServices(ctx: FileRuleContext): void {
  const { model } = ctx;
  if (!/get_one_or_none/.test(model.source)) return;
  const services = repositoryLibraryClasses(model);
  if (!services.size) return;
  const byFn = assignmentsByFunction(model);
  model.functions.forEach((fn, fnIndex) => {
    const cls = classOfFunction(model, fnIndex);
    if (!cls || !services.has(cls)) return;
    const text = model.source.slice(fn.start, fn.end);
    if (CONFLICT_SAFE.test(text) || /\.(upsert|get_or_upsert)\s*\(/.test(text)) return;
    const assignments = byFn.get(fnIndex) ?? [];
    for (const a of assignments) {
      if (!a.value || !/^[A-Za-z_]\w*$/.test(a.target) || a.loops.length) continue;
      const v = unwrap(a.value)!;
      if (!LIBRARY_LOOKUP.test(v.text)) continue;
      const call = v.type === 'await' ? v.namedChild(0) : v;
      if (call?.type !== 'call') continue;
      const columns = new Map<string, string>();
      for (const [k, val] of callArgs(call).keywords) if (!LIBRARY_OPTIONS.has(k)) columns.set(k, val.text.replace(/\s+/g, ''));
      if (!columns.size) continue;
      const look: Lookup = { name: a.target, model: libraryClassModel(model, cls) ?? 'row', columns, line: a.line, node: a.node, locked: false };
      const regions = missingRegions(fn.node, look);
      if (!regions.length) continue;
      for (const c of callsOf(model, fnIndex)) {
        if (c.node.startIndex <= a.node.endIndex || !LIBRARY_INSERT.test(c.calleeText) || !regions.some((r) => c.node.startIndex >= r.from && c.node.endIndex <= r.to)) continue;
        const args = callArgs(c.node);
        const data = unwrap(args.keywords.get('data') ?? args.positional[0] ?? null);
        const fields = data ? insertedFields(model, data, fnIndex, c.line) : null;
        if (!fields) continue;
        const keys = [...columns].filter(([k, val]) => fields.get(k) === val).map(([k]) => k);
        if (keys.length !== columns.size) continue;
        if (guarded(c.node, fn.node)) continue;
        const schema = look.model === 'row' ? null : schemaKey(ctx.project, look.model, keys, keys, model);
        const key = keys.join('`, `');
        ctx.report({
          node: c.node,
          message: `check-then-insert on \`${key}\`: \`${a.target}\` is looked up by \`${key}\` (line ${a.line}) and \`${c.calleeText}()\` inserts a ${look.model === 'row' ? 'row' : `\`${look.model}\``} with the same \`${key}\` when none is found; the library flushes the INSERT, but nothing locks a row that is missing, and there is no upsert and no \`IntegrityError\` handling: two concurrent calls both find nothing and both insert, ${schema ? 'and the slower one fails with an `IntegrityError`' : 'leaving a duplicate (and every later `get_one_or_none` on that key raising `MultipleResultsFound`) or failing with an `IntegrityError`'}`,
          severity: 'low',
          ...(schema && schema !== 'other-row' ? { advisory: uniqueNote(look.model, schema) } : {}),
          function: fn.name,
          recommendation: 'put a unique constraint on the key and insert with `upsert(..., match_fields=[...])` (or `ON CONFLICT`), or catch the library\'s `IntegrityError`/`DuplicateKeyError` and load the row the other call created',
        });
        break;
      }
    }
  });
}

/**
 * The fields a library insert is given, by name → value text (whitespace-free): a dict literal
 * (inline, or the literal a local was last bound to; items added to it later are not read), or a
 * model's constructor with keywords. Null when it cannot be read.
 */
function insertedFields(model: FileModel, data: SyntaxNode, fnIndex: number, line: number): Map<string, string> | null {
  let node: SyntaxNode | null = data;
  let local: string | null = null;
  if (node.type === 'identifier') {
    local = node.text;
    node = unwrap(lastAssignment(model, node.text, fnIndex, line)?.value ?? null);
  }
  if (!node) return null;
  const out = new Map<string, string>();
  if (node.type === 'dictionary') {
    for (const pair of node.namedChildren) {
      if (pair.type !== 'pair') continue;
      const k = /^["'](\w+)["']$/.exec(pair.childForFieldName('key')?.text ?? '');
      const v = pair.childForFieldName('value');
      if (k && v) out.set(k[1]!, v.text.replace(/\s+/g, ''));
    }
    return out;
  }
  if (node.type === 'call' && ctorModel(node)) {
    for (const [k, v] of callArgs(node).keywords) out.set(k, v.text.replace(/\s+/g, ''));
    return out;
  }
  return null;
}
