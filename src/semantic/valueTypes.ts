/**
 * What an expression holds, as a small "type path" string built from syntax alone:
 * `sqlalchemy.orm.sessionmaker()()` for `SessionLocal()` after `SessionLocal = sessionmaker(...)`,
 * `@sqlalchemy.orm.Session` for a parameter annotated `Session`, `Depends(app.deps.get_db)` for a
 * FastAPI dependency, `psycopg2.connect().cursor()` for a cursor. The head is a qualified name
 * (resolved through imports); `@` marks an instance of an annotated type; `()` a call; `.x` an
 * attribute. Names that live in another module of the repo stay as their qualified name and are
 * resolved in the repo phase (see `src/analysis/callgraph.ts`).
 *
 * Everything here reads the model's facts (assignments, params, yields); no tree walks.
 */
import type { SyntaxNode } from '../parse/parser.js';
import type { AssignmentInfo, CallInfo, FileModel, FunctionInfo } from './model.js';
import { assignmentsTo, resolveName } from './model.js';
import { classifyHandle } from './db.js';

const MAX_DEPTH = 24;
const IDENT = /^[A-Za-z_]\w*$/;

/** The type path of an expression at `line` inside function `fnIndex`, or null when unknown. */
export function typeString(model: FileModel, node: SyntaxNode | null, fnIndex: number, line: number, depth = 0): string | null {
  if (!node || depth > MAX_DEPTH) return null;
  switch (node.type) {
    case 'parenthesized_expression':
      return typeString(model, node.namedChild(0), fnIndex, line, depth + 1);
    case 'await':
      return typeString(model, node.namedChild(0), fnIndex, line, depth + 1);
    case 'identifier':
      return nameType(model, node.text, fnIndex, line, depth + 1);
    case 'attribute': {
      const obj = node.childForFieldName('object');
      const attr = node.childForFieldName('attribute')?.text;
      if (!obj || !attr) return null;
      if (obj.type === 'identifier' && (obj.text === 'self' || obj.text === 'cls')) {
        return selfAttributeType(model, attr, depth + 1);
      }
      const t = typeString(model, obj, fnIndex, line, depth + 1);
      return t ? `${t}.${attr}` : null;
    }
    case 'call': {
      const callee = node.childForFieldName('function');
      // `User.query.filter_by(...).first()`, `session.get(User, pk)`, `session.scalars(select(User)...).one()`:
      // one row of a project model, an instance of that class (its methods are the model's).
      const row = fetchedRow(model, node);
      if (row) return row;
      const t = typeString(model, callee, fnIndex, line, depth + 1);
      if (!t) return node.parent?.type === 'as_pattern' ? contextMethodYield(model, callee, fnIndex, depth) : null;
      // `sqlalchemy.inspect(engine)`: the inspected object's path, marked (`<engine>.__inspect__()`),
      // so that an Inspector on a handle of another module is decided where that handle is known.
      if (/^sqlalchemy\.(inspection\.)?inspect$/.test(t)) {
        // The inspected object is the first positional argument (`inspect(engine, raiseerr=False)`).
        const first = node.childForFieldName('arguments')?.namedChildren.find((a) => a.type !== 'comment' && a.type !== 'keyword_argument') ?? null;
        const inner = first ? typeString(model, first, fnIndex, line, depth + 1) : null;
        return inner ? `${inner}.__inspect__()` : `${t}()`;
      }
      if (/(^|\.)sessionmaker$/.test(t) && /\bclass_\s*=\s*[\w.]*Async/.test(node.childForFieldName('arguments')?.text ?? '')) {
        return 'sqlalchemy.ext.asyncio.async_sessionmaker()';
      }
      if (t === 'sqlalchemy.orm.scoped_session' || t === 'sqlalchemy.orm.scoping.scoped_session') {
        // A scoped_session proxies the session of its factory: type it as that session.
        const first = node.childForFieldName('arguments')?.namedChild(0) ?? null;
        const inner = typeString(model, first, fnIndex, line, depth + 1);
        return inner ? `${inner}()` : null;
      }
      return `${t}()`;
    }
    case 'conditional_expression': {
      // `cls = Lecture if simple else Conference`: the two types when they agree, or the base class
      // of this file that the other derives from (a method called on it may be either's).
      const [a, , b] = node.namedChildren;
      const ta = typeString(model, a ?? null, fnIndex, line, depth + 1);
      const tb = typeString(model, b ?? null, fnIndex, line, depth + 1);
      if (!ta || !tb) return null;
      if (ta === tb) return ta;
      return derivesFrom(model, tb, ta) ? ta : derivesFrom(model, ta, tb) ? tb : null;
    }
    default:
      return null;
  }
}

/** Methods that return one row (or none) of what they read (`first`, `get`, `scalar_one`, …). */
export const ONE_ROW: ReadonlySet<string> = new Set(['first', 'first_or_404', 'one', 'one_or_none', 'one_or_404', 'scalar_one', 'scalar_one_or_none', 'scalar', 'get', 'get_or_404']);
/** Calls handed the statement whose one row they return (`session.scalar(select(M)...)`, Flask-SQLAlchemy 3's `db.first_or_404(stmt)`). */
const STATEMENT_ROW = new Set(['scalar', 'first_or_404', 'one_or_404']);
/** Of these, what `execute(...)` gives: a `Row` (`first`, `one`) unless the method unwraps its first column. */
const SCALAR_OF_RESULT = new Set(['scalar_one', 'scalar_one_or_none', 'scalar']);
/** Methods that narrow or run a query without changing what a row is. */
const ROW_PRESERVING = new Set(['filter', 'filter_by', 'where', 'order_by', 'options', 'limit', 'offset', 'join', 'outerjoin', 'execution_options', 'with_for_update', 'scalars', 'execute', 'unique', 'distinct', 'populate_existing']);

/**
 * `@<model>` for a call that fetches one row of a project ORM model: `M.query….first()`,
 * `session.get(M, pk)` / `M.query.get(pk)`, `session.scalars(select(M)….where(…)).first()`,
 * `session.execute(select(M)).scalar_one()`. Null for anything else (a dict's `get`, a row of
 * several entities, a model the project does not declare).
 */
export function fetchedRow(model: FileModel, value: SyntaxNode | null, clsName?: string, follow?: (name: string) => SyntaxNode | null): string | null {
  if (!model.modelClasses.size || !value) return null;
  const call = value.type === 'await' ? value.namedChild(0) : value;
  if (call?.type !== 'call') return null;
  const fn = call.childForFieldName('function');
  if (fn?.type !== 'attribute') return null;
  const method = fn.childForFieldName('attribute')?.text ?? '';
  if (!ONE_ROW.has(method)) return null;
  const asModel = (n: SyntaxNode | null | undefined): string | null => {
    if (!n || (n.type !== 'identifier' && n.type !== 'attribute')) return null;
    // `select(cls)` in a classmethod of a model: the class the method is on.
    if (clsName && n.text === 'cls' && model.modelClasses.has(clsName)) return `@${resolveName(model, clsName) ?? clsName}`;
    const last = n.text.slice(n.text.lastIndexOf('.') + 1);
    if (!model.modelClasses.has(last)) return null;
    return `@${resolveName(model, n.text) ?? n.text}`;
  };
  const args = call.childForFieldName('arguments')?.namedChildren.filter((a) => a.type !== 'comment') ?? [];
  let recv: SyntaxNode | null = fn.childForFieldName('object');
  let unwrapped = false;
  // `session.get(User, pk)`: the model is the first argument.
  if ((method === 'get' || method === 'get_or_404') && args.length >= 2) return asModel(args[0]);
  // `session.scalar(select(User)...)`, `db.first_or_404(select(User)...)`: the statement is the argument.
  if (STATEMENT_ROW.has(method) && args.length >= 1 && (args[0]!.type === 'call' || (follow && args[0]!.type === 'identifier'))) recv = args[0]!;
  // Down the chain to `M.query` or to `select(M)`.
  for (let i = 0; recv && i < 12; i++) {
    // `(await session.execute(select(M)...)).scalar_one()`: the awaited statement's result.
    if (recv.type === 'parenthesized_expression' || recv.type === 'await') {
      recv = recv.namedChild(0);
      continue;
    }
    // `stmt = select(M).where(...)` / `q = session.query(M)...` held in a name, when the caller follows names.
    if (recv.type === 'identifier' && follow) {
      recv = follow(recv.text);
      continue;
    }
    if (recv.type === 'attribute') {
      const attr = recv.childForFieldName('attribute')?.text;
      const obj = recv.childForFieldName('object');
      if (attr === 'query') return asModel(obj);
      return null;
    }
    if (recv.type !== 'call') return null;
    const f = recv.childForFieldName('function');
    const inner = recv.childForFieldName('arguments')?.namedChildren.filter((a) => a.type !== 'comment') ?? [];
    if (f?.type === 'identifier' || (f?.type === 'attribute' && /^(select|query)$/.test(f.childForFieldName('attribute')?.text ?? '') && f.text !== 'self.query')) {
      const name = f.type === 'identifier' ? f.text : f.childForFieldName('attribute')!.text;
      // `select(M)` / `session.query(M)`: one entity only.
      return (name === 'select' || name === 'query') && inner.length === 1 ? asModel(inner[0]) : null;
    }
    if (f?.type !== 'attribute') return null;
    const m = f.childForFieldName('attribute')?.text ?? '';
    if (!ROW_PRESERVING.has(m)) return null;
    // `session.execute(select(M)).first()` is a Row, not an M: a scalar method unwraps it, or a
    // `.scalars()` on the way (`execute(stmt).scalars().first()`).
    if (m === 'execute' && !SCALAR_OF_RESULT.has(method) && !unwrapped) return null;
    if (m === 'scalars') unwrapped = true;
    // `session.scalars(select(M))`: the statement is the argument; `q.filter(...)`: the receiver.
    recv = (m === 'scalars' || m === 'execute') && inner.length ? inner[0]! : f.childForFieldName('object');
  }
  return null;
}

/** Is `sub` a class of this file whose bases name `base` (by its last name)? */
function derivesFrom(model: FileModel, sub: string, base: string): boolean {
  const subName = sub.slice(sub.lastIndexOf('.') + 1);
  const baseName = base.slice(base.lastIndexOf('.') + 1);
  if (!IDENT.test(subName) || !IDENT.test(baseName)) return false;
  for (const c of model.classes) {
    if (c.childForFieldName('name')?.text !== subName) continue;
    const bases = c.childForFieldName('superclasses')?.namedChildren ?? [];
    if (bases.some((x) => x.type !== 'keyword_argument' && x.text.slice(x.text.lastIndexOf('.') + 1) === baseName)) return true;
  }
  return false;
}

/**
 * The type path of a method call's receiver, once per call. A plain dotted receiver
 * (`self.session`, `db`) is typed from its text, without reading the tree: the same answer
 * {@link typeString} gives for its identifier/attribute nodes.
 */
export function receiverType(model: FileModel, call: CallInfo): string | null {
  const hit = call.memo.receiverType;
  if (hit !== undefined) return hit;
  const dotted = call.dottedReceiver;
  const t = dotted !== null
    ? dottedType(model, dotted.split('.'), call.functionIndex, call.line)
    : call.hasReceiver ? typeString(model, call.receiver, call.functionIndex, call.line) : null;
  call.memo.receiverType = t;
  return t;
}

/** The type path of a call's callee (`SessionLocal` → `sqlalchemy.orm.sessionmaker()`), once per call. */
export function calleeType(model: FileModel, call: CallInfo): string | null {
  const hit = call.memo.calleeType;
  if (hit !== undefined) return hit;
  const t = call.dottedReceiver !== null || /^[A-Za-z_]\w*$/.test(call.calleeText)
    ? dottedType(model, call.calleeText.split('.'), call.functionIndex, call.line)
    : typeString(model, call.node.childForFieldName('function'), call.functionIndex, call.line);
  call.memo.calleeType = t;
  return t;
}

/** {@link typeString} of a dotted name given as its parts, with the same depths. */
function dottedType(model: FileModel, parts: string[], fnIndex: number, line: number): string | null {
  const n = parts.length;
  let t: string | null;
  let next: number;
  if (n >= 2 && (parts[0] === 'self' || parts[0] === 'cls')) {
    t = selfAttributeType(model, parts[1]!, n - 1);
    next = 2;
  } else {
    t = nameType(model, parts[0]!, fnIndex, line, n);
    next = 1;
  }
  for (let i = next; t !== null && i < n; i++) t = `${t}.${parts[i]}`;
  return t;
}

const nameTypeMemo = new WeakMap<FileModel, Map<string, string | null>>();

/**
 * A name's type path: parameter annotation or dependency, last assignment before `line`, import.
 * Memoised per file: the same receiver (`session`, `db`) is asked about at every call, and the
 * answer only changes with the assignment that reaches the line.
 */
export function nameType(model: FileModel, name: string, fnIndex: number, line: number, depth = 0): string | null {
  if (depth > MAX_DEPTH) return null;
  const reaching = lastAssignment(model, name, fnIndex, line)?.line ?? -1;
  const key = `${fnIndex}\0${name}\0${reaching}`;
  let memo = nameTypeMemo.get(model);
  if (!memo) nameTypeMemo.set(model, (memo = new Map()));
  const hit = memo.get(key);
  if (hit !== undefined) return hit;
  const t = nameTypeUncached(model, name, fnIndex, line, depth);
  // A deep call may have been cut short by MAX_DEPTH: only shallow answers are complete.
  if (depth <= 2) memo.set(key, t);
  return t;
}

function nameTypeUncached(model: FileModel, name: string, fnIndex: number, line: number, depth: number): string | null {
  let scope = fnIndex;
  for (;;) {
    if (scope >= 0) {
      const fn = model.functions[scope]!;
      const param = fn.params.find((p) => p.name === name);
      if (param) {
        if (param.annotation) {
          const dep = dependsTarget(model, param.annotation);
          const ann = annotationType(model, param.annotation);
          if (ann) return ann;
          if (dep) return dep;
        }
        if (param.defaultText) {
          const dep = dependsTarget(model, param.defaultText);
          if (dep) return dep;
        }
        return null;
      }
    }
    const best = lastAssignment(model, name, scope, scope === fnIndex ? line : Infinity);
    if (best) {
      if (best.annotation) return annotationType(model, best.annotation);
      // `x = x.y()` refers to the previous x: look before this line.
      return typeString(model, best.value, best.functionIndex, best.line - 1, depth + 1);
    }
    if (scope < 0) break;
    scope = model.functions[scope]!.parent;
  }
  if (!IDENT.test(name)) return null;
  return resolveName(model, name);
}

function lastAssignment(model: FileModel, target: string, scope: number, beforeLine: number): AssignmentInfo | null {
  let best: AssignmentInfo | null = null;
  for (const a of assignmentsTo(model, target)) {
    if (a.functionIndex !== scope || a.line > beforeLine) continue;
    if (!best || a.line >= best.line) best = a;
  }
  return best;
}

const selfTypeMemo = new WeakMap<FileModel, Map<string, string | null>>();

/**
 * `self.db = db` (or `self.db: Session`) anywhere in the file types `self.db`. The answer is the
 * same for every method of the file, so it is kept per file (shallow answers only, as in
 * {@link nameType}): a repository asks about `self.session` at every query.
 */
function selfAttributeType(model: FileModel, attr: string, depth: number): string | null {
  let memo = selfTypeMemo.get(model);
  if (!memo) selfTypeMemo.set(model, (memo = new Map()));
  const hit = memo.get(attr);
  if (hit !== undefined) return hit;
  const t = selfAttributeTypeUncached(model, attr, depth);
  if (depth <= 2) memo.set(attr, t);
  return t;
}

function selfAttributeTypeUncached(model: FileModel, attr: string, depth: number): string | null {
  for (const a of assignmentsTo(model, `self.${attr}`)) {
    if (a.annotation) return annotationType(model, a.annotation);
    const t = typeString(model, a.value, a.functionIndex, a.line - 1, depth + 1);
    if (t) return t;
  }
  // A class-level annotation `db: Session` in a dataclass / pydantic model.
  for (const a of assignmentsTo(model, attr)) {
    if (a.annotation && a.functionIndex < 0) return annotationType(model, a.annotation);
  }
  return propertyType(model, attr);
}

const PROPERTY_DECORATOR = /(^|\.)(property|cached_property|hybrid_property)$/;

/** `self.<attr>` read through a property of a class of the file, typed by its return annotation (`def lock_file(self) -> Path`). */
export function propertyType(model: FileModel, attr: string): string | null {
  for (const fn of model.functions) {
    if (fn.name !== attr || !fn.className || !fn.returnType) continue;
    if (fn.decoratorNames.some((d) => PROPERTY_DECORATOR.test(d))) return annotationType(model, fn.returnType);
  }
  return null;
}

/** `@qualified.Type` for an annotation (`Annotated[T, …]`, `Optional[T]`, `T | None` → T). */
export function annotationType(model: FileModel, annotation: string): string | null {
  let inner = annotation.trim().replace(/^["']|["']$/g, '');
  for (let i = 0; i < 3; i++) {
    inner = inner.replace(/^(typing\.|typing_extensions\.|collections\.abc\.)?(Annotated|Optional|Union|Generator|Iterator|AsyncGenerator|AsyncIterator|Iterable)\[\s*/, '');
  }
  // `None | T` / `Union[None, T]`: the first part that is not None.
  inner = inner.split(/\s*[|,]\s*/).map((p) => p.replace(/[\[\]].*$/s, '').trim()).filter((p) => p && p !== 'None')[0] ?? '';
  if (!/^[A-Za-z_][\w.]*$/.test(inner)) return null;
  const q = resolveName(model, inner) ?? inner;
  return `@${q}`;
}

/** `Depends(get_db)` in a default or inside `Annotated[...]` → `Depends(<qualified get_db>)`. */
function dependsTarget(model: FileModel, text: string): string | null {
  const m = /\bDepends\(\s*(?:dependency\s*=\s*)?([A-Za-z_][\w.]*)/.exec(text);
  if (!m) return null;
  return `Depends(${resolveName(model, m[1]!) ?? m[1]})`;
}

/**
 * What a function hands out: its return annotation when that names a DB handle or client
 * (`-> Session`), else the type of its first `yield`ed value (a `Depends` provider or a
 * `@contextmanager`), else null.
 */
export function providerType(model: FileModel, fnIndex: number, keep: (t: string) => boolean = () => true): string | null {
  const fn = model.functions[fnIndex]!;
  if (fn.returnType) {
    const r = annotationType(model, fn.returnType);
    if (r && keep(r)) return r;
  }
  for (const y of fn.yields) {
    const t = typeString(model, y, fnIndex, y.startPosition.row + 1);
    if (t) return t;
  }
  // `def create_db_engine(url): ...; return create_engine(url, **opts)`: a builder of an engine
  // or session factory, unannotated. Only bodies that name such a constructor are read.
  if (!fn.yields.length && fn.body && BUILDER_HINT.test(model.source.slice(fn.body.startIndex, fn.body.endIndex))) {
    for (const r of fn.body.descendantsOfType('return_statement')) {
      let owner = r.parent;
      while (owner && owner.type !== 'function_definition' && owner.type !== 'lambda') owner = owner.parent;
      if (owner?.startIndex !== fn.node.startIndex) continue;
      const value = r.namedChild(0);
      const t = value?.type === 'call' ? typeString(model, value, fnIndex, r.startPosition.row + 1) : null;
      if (t && keep(t)) return t;
    }
  }
  return null;
}

/**
 * `with self.session() as s:` where `session` is a `@contextmanager` (or `@asynccontextmanager`)
 * method of the enclosing class in this file: the alias is what the method yields
 * (`s = self.Session(); yield s`, `self.Session` a sessionmaker), as for a provider function.
 */
function contextMethodYield(model: FileModel, callee: SyntaxNode | null, fnIndex: number, depth: number): string | null {
  if (callee?.type !== 'attribute' || !/^(self|cls)$/.test(callee.childForFieldName('object')?.text ?? '') || fnIndex < 0) return null;
  const name = callee.childForFieldName('attribute')?.text;
  let i = fnIndex;
  while (i >= 0 && !model.functions[i]!.className) i = model.functions[i]!.parent;
  const cls = i >= 0 ? model.functions[i]!.className : null;
  const method = cls ? model.functions.find((f) => f.className === cls && f.parent < 0 && f.name === name && f.isGenerator
    && f.decoratorNames.some((d) => /(^|\.)(async)?contextmanager$/.test(d))) : undefined;
  if (!method) return null;
  for (const y of method.yields) {
    const t = typeString(model, y, method.index, y.startPosition.row + 1, depth + 1);
    if (t) return t;
  }
  return null;
}

/** A function body that may build an engine or a session factory. */
const BUILDER_HINT = /\bcreate_(?:async_)?engine\b|\b(?:async_)?sessionmaker\b/;

/**
 * Module-level names of this file whose values matter to other files, as type paths: session
 * factories, engines, clients, `Annotated[...]` aliases, and provider functions (`=>T` for a
 * function that yields T). `keep` decides which paths are worth exporting.
 */
export function exportedTypes(model: FileModel, keep: (t: string) => boolean): [string, string][] {
  const out = new Map<string, string>();
  // A cheap text gate first: most files define no session, engine, client or provider, and
  // typing their names would collect every assignment of the file. Module-level objects built
  // by a call (`settings = Settings()`, `svc = Service(repo)`, `broker: Broker = OutboxBroker()`)
  // are typed in every file: other files call their methods.
  const handles = mayDefineHandle(model.source);
  for (const a of model.assignments) {
    if (a.functionIndex >= 0 || !IDENT.test(a.target) || a.fromWith) continue;
    if (!handles && a.value?.type !== 'call') continue;
    const t = moduleAssignmentType(model, a);
    if (t && keep(t.startsWith('=>') ? t.slice(2) : t)) out.set(a.target, t);
  }
  if (!handles) return [...out];
  for (const fn of model.functions) {
    if (fn.parent >= 0 || fn.className) continue;
    const t = providerType(model, fn.index, keep);
    if (t && keep(t)) out.set(fn.name, `=>${t}`);
  }
  return [...out];
}

/** A module-level assignment's type path; an `Annotated[T, Depends(f)]` alias gives `@T` or `Depends(f)`. */
function moduleAssignmentType(model: FileModel, a: AssignmentInfo): string | null {
  const v = a.value;
  if (a.annotation) {
    // `broker: Broker = OutboxBroker()`: an instance of a class of this file, made right here, is
    // that class, whatever protocol or base class the annotation names (its methods are the ones called).
    const callee = v?.type === 'call' ? v.childForFieldName('function') : null;
    if (callee?.type === 'identifier' && model.classes.some((c) => c.childForFieldName('name')?.text === callee.text)) {
      const t = typeString(model, v!, -1, a.line - 1);
      if (t) return t;
    }
    return annotationType(model, a.annotation);
  }
  if (!v) return null;
  if (v.type === 'subscript' && /^(typing\.)?Annotated\b/.test(v.text)) {
    return annotationType(model, v.text) ?? dependsTarget(model, v.text);
  }
  // A generic alias of a handle class (`AlchemySession = ScopedSession[Any]`): annotations that
  // name it type a handle.
  if (v.type === 'subscript') {
    const t = annotationType(model, v.text);
    return t && classifyHandle(t)?.kind === 'handle' ? t : null;
  }
  // `get_db = contextmanager(get_session)`: the decorator applied as a call hands out what the
  // generator yields, as `@contextmanager def get_db()` would.
  const wrapped = v.type === 'call' ? wrappedGenerator(model, v) : null;
  if (wrapped) {
    const t = providerType(model, wrapped.index, (x) => classifyHandle(x) !== null);
    return t ? `=>${t}` : null;
  }
  return typeString(model, v, -1, a.line - 1);
}

/** The module-level generator of this file that `contextmanager(f)` / `asynccontextmanager(f)` wraps, or null. */
export function wrappedGenerator(model: FileModel, call: SyntaxNode): FunctionInfo | null {
  const callee = call.childForFieldName('function')?.text.replace(/\s+/g, '') ?? '';
  if (!/^(?:contextlib\.)?(?:async)?contextmanager$/.test(callee)) return null;
  const resolved = resolveName(model, callee);
  if (resolved && !resolved.startsWith('contextlib.')) return null;
  const args = call.childForFieldName('arguments')?.namedChildren ?? [];
  if (args.length !== 1 || args[0]!.type !== 'identifier') return null;
  return model.functions.find((f) => f.parent < 0 && !f.className && f.name === args[0]!.text && f.isGenerator) ?? null;
}

/** {@link HANDLE_HINT}, after substring tests that every one of its forms needs (the regex alone scans slowly). */
function mayDefineHandle(source: string): boolean {
  const some = source.includes('ession') || source.includes('onn') || source.includes('ngine') || source.includes('Redis')
    || source.includes('from_url') || source.includes('Annotated') || source.includes('db');
  return some && HANDLE_HINT.test(source);
}

/** Words without which a file defines no DB handle or provider worth exporting. */
const HANDLE_HINT = /sessionmaker|scoped_session|ScopedSession\[|create_(async_)?engine|Session\(|\.connect\(|Redis\(|from_url\(|Annotated\[|->\s*[\w.]*(Session|Connection|Engine|Redis)\b|yield\s+\w*(session|db|conn)/;

/**
 * Looks up names of this file's own module for {@link resolveHandle}; of other modules, only the
 * project's module-level session factories and engines (`FileModel.projectHandles`): the rest
 * stay unknown, for the repo phase.
 */
export function ownModuleLookup(model: FileModel): (qualified: string) => string | null | undefined {
  const prefix = model.moduleName + '.';
  return (q) => {
    if (!q.startsWith(prefix)) return model.projectHandles.get(q);
    const rest = q.slice(prefix.length);
    const dot = rest.indexOf('.');
    const name = dot >= 0 ? rest.slice(0, dot) : rest;
    if (!IDENT.test(name)) return null;
    if (dot >= 0) {
      // `engine.connect` of this module: the type of `engine`, then the attribute ops.
      const a = lastAssignment(model, name, -1, Infinity);
      const t = a && !a.fromWith ? moduleAssignmentType(model, a) : null;
      return t ? t + rest.slice(dot) : null;
    }
    const fn = model.functions.find((f) => f.parent < 0 && !f.className && f.name === name);
    if (fn) {
      const t = providerType(model, fn.index, (x) => classifyHandle(x) !== null);
      return t ? `=>${t}` : null;
    }
    const a = lastAssignment(model, name, -1, Infinity);
    if (a && !a.fromWith) return moduleAssignmentType(model, a);
    return null;
  };
}
