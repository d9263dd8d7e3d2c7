/**
 * The object facts a file's summary carries so the repo phase can follow calls through objects:
 * - the type path of each method call's receiver (`@app.repo.UserRepo`, `app.svc.Service()`,
 *   `^app.svc.Service.repo` for `self.repo` when the class's own code does not say its type);
 * - the file's classes: bases and attribute types;
 * - per function: what it returns (annotation, yielded value, or the value of its first
 *   `return`), whether it is a property, and how it uses a callable parameter (calls it, in a
 *   loop or not; hands it to a thread);
 * - references: functions and bound methods passed as values (`loop.call_soon(f)`,
 *   `partial(f, x)`, `to_thread(self.load)`, `paginate(q, render)`), with the call that takes them.
 * Computed from the semantic model in the worker; type paths that name other modules are
 * resolved in the repo phase (`callgraph.ts`).
 */
import { schemaFacts, type SchemaFacts } from '../semantic/schemas.js';
import { classifyHandle } from '../semantic/db.js';
import type { CallInfo, FileModel, FunctionInfo } from '../semantic/model.js';
import type { SyntaxNode } from '../parse/parser.js';
import { assignmentsTo, callAt, callsOf, OFFLOAD_FUNCTIONS, resolveName } from '../semantic/model.js';
import { classOfFunction, fileClasses } from '../semantic/classes.js';
import { annotationType, fetchedRow, nameType, receiverType, typeString } from '../semantic/valueTypes.js';

export interface SummaryClass {
  name: string;
  bases: string[];
  /** `[attribute, type path]`. */
  attrs: [string, string][];
  isInterface: boolean;
  /** `[qualified base, its type argument]` for generic bases (`Service[Team]`), when any. */
  typeArgs?: [string, string][];
  /** The fields it serializes, when the class declares any (see semantic/schemas.ts). */
  schema?: SchemaFacts;
}

/** `f(...).m`, `a.b(...).m`: a method called on what a call returns. */
const CALL_RECEIVER = /^[A-Za-z_][\w.]*\([^()]*\)\.[A-Za-z_]\w*$/;

/**
 * The receiver type of a method call on a value nothing types (`mgr.reload()`): the repo phase
 * resolves it by the method's name when exactly one class of the repo defines it, as a
 * low-confidence edge.
 */
export const UNTYPED = '?';

/**
 * Methods of the builtin and standard-library types (str, bytes, list, dict, set, files, regex
 * matches, dates, paths, loggers…): on an untyped receiver they are almost always those, so
 * they are not looked up by name among the repo's classes.
 */
const COMMON_METHODS = new Set(`append extend insert pop remove clear copy count index sort reverse get items keys values update
setdefault popitem add discard union intersection difference symmetric_difference issubset issuperset isdisjoint join split
rsplit strip lstrip rstrip replace startswith endswith lower upper title capitalize casefold format format_map encode decode
find rfind rindex partition rpartition splitlines zfill center ljust rjust expandtabs isdigit isalpha isalnum isspace isupper
islower isnumeric isidentifier read write readline readlines writelines close flush seek tell fileno truncate group groups
groupdict span start end match search sub subn findall finditer fullmatch isoformat strftime strptime total_seconds timestamp
date time replace astimezone weekday isoweekday exists is_file is_dir mkdir unlink iterdir glob rglob resolve with_suffix
with_name joinpath read_text write_text read_bytes write_bytes open stat debug info warning warn error exception critical log
setLevel addHandler getLogger put get_nowait put_nowait task_done qsize empty full acquire release locked wait notify notify_all
set is_set cancel cancelled done result exception add_done_callback send throw next tolist astype apply map filter reduce
sum mean min max round copy deepcopy hex digest hexdigest to_dict dict json model_dump model_validate dump dumps load loads
__enter__ __exit__ __aenter__ __aexit__ __call__ __init__
execute executemany scalars scalar commit rollback flush refresh query add_all merge expunge begin connect cursor fetch fetchrow
fetchval fetchone fetchall fetchmany post put patch delete head options request send stream json text raise_for_status
hget hset lpush rpush publish subscribe expire incr decr`.split(/\s+/));

/** Ends of a DB handle kept under another name (`self.commit = session.commit`). */
const HANDLE_METHOD_ALIAS = /\.(commit|rollback|flush)$/;

/**
 * `sqlalchemy.orm.Session.commit`: a method of a DB handle bound to an attribute
 * (`self.commit = session.commit`, called later as `repo.commit()`). Kept among a class's
 * attributes although its type is a library's: the repo phase reads the call as that method's.
 */
function boundHandleMethod(t: string): boolean {
  const m = HANDLE_METHOD_ALIAS.exec(t);
  return m !== null && classifyHandle(t.slice(0, m.index))?.kind === 'handle';
}

/**
 * What a method returns when it is `-> Self` (PEP 673) or `return cls(...)`: an instance of the
 * class the call reaches it through, a subclass included (see analysis/types.ts).
 */
export const SELF_TYPE = 'Self';
const SELF_ANNOTATION = /^["']?(?:typing(?:_extensions)?\.)?Self["']?$/;

/** Function kinds the call graph treats apart. */
export const FN_PROPERTY = 1;
export const FN_CLASSMETHOD = 2;
export const FN_STATICMETHOD = 4;
/** Body is only `...`, `pass`, a docstring or `raise NotImplementedError`: an interface's declaration. */
export const FN_STUB = 8;
/** A request handler only administrators reach (semantic/adminOnly.ts): set by the summary. */
export const FN_ADMIN = 16;

/** How a function uses one of its parameters as a callable. */
export type ParamUse = 'call' | 'call_loop' | 'offload' | 'schedule';

export interface FunctionObjects {
  /** Type path of what a call returns, or null. */
  returns: string | null;
  flags: number;
  /** `[parameter position (after self/cls), name, use]` for parameters the function calls or hands on. */
  paramUses: [number, string, ParamUse][];
}

export interface SummaryRef {
  /** Type path of the function or bound method passed (`app.tasks.flush`, `^app.cache.Cache._reload`). */
  target: string;
  functionIndex: number;
  line: number;
  column: number;
  /** The call that takes it: qualified name when known, else its callee text (`loop.call_soon`). */
  consumer: string;
  /** The consuming call's position (to look it up as a call of the summary), `line:column`. */
  consumerAt: string;
  /** Argument position, or the keyword name. */
  arg: number | string;
  /** The consuming call runs per item of a loop. */
  inLoop: boolean;
}

const PROPERTY_DECORATORS = /(^|\.)(property|cached_property|hybrid_property|declared_attr)$/;
/** Methods of a loop that take a callable and run it later, on the loop. */
const SCHEDULING_NAMES = new Set(['call_soon', 'call_later', 'call_at', 'call_soon_threadsafe', 'add_done_callback', 'add_reader', 'add_writer', 'add_signal_handler']);
/** Functions and methods that run a callable in a worker thread. */
const OFFLOAD_METHOD_NAMES = new Set(['run_in_executor', 'to_thread', 'run_in_threadpool', 'run_sync', 'submit', 'sync_to_async']);

/** The head of a type path: `@app.x.Y` → `app`, `Depends(app.deps.f)` → `app`, `^app.svc.S.repo` → `app`. */
export function typePathHead(t: string): string {
  const s = t.replace(/^[@^]/, '').replace(/^Depends\(/, '');
  const m = /^[A-Za-z_]\w*/.exec(s);
  return m ? m[0] : '';
}

export interface ObjectFacts {
  classes: SummaryClass[];
  functions: FunctionObjects[];
  refs: SummaryRef[];
  /** A call's receiver type path, when the repo phase may resolve it. */
  receiverTypeOf(call: CallInfo): string | null;
  /** A method call on a receiver syntax cannot type, by a name that is no builtin type's method. */
  untypedCandidate(call: CallInfo): boolean;
}

/**
 * `isRepo(t)`: can the type path name something of this repo (its head is a module of the tree,
 * or this file's own)? Paths of library types (`sqlalchemy.orm.Session`) are left out.
 */
export function objectFacts(model: FileModel, isRepo: (t: string) => boolean): ObjectFacts {
  const classes = fileClasses(model);
  const schemas = schemaFacts(model);
  const own = model.moduleName;
  const holders = repoObjectHolders(model, isRepo);
  const classAttr = new Map(classes.map((c) => [c.name, c.attrs]));
  const repoBases = new Set(classes.filter((c) => c.bases.some((b) => isRepo(b))).map((c) => c.name));
  let props: Set<string> | null = null;
  const ownProperty = (cls: string, name: string): boolean => {
    if (!props) {
      props = new Set();
      for (const fn of model.functions) {
        if (fn.className && fn.parent < 0 && fn.decoratorNames.some((d) => PROPERTY_DECORATORS.test(d))) props.add(`${fn.className}.${fn.name}`);
      }
    }
    return props.has(`${cls}.${name}`);
  };
  const receiverTypeOf = (call: CallInfo): string | null => {
    if (call.functionIndex < 0 || !call.hasReceiver) return null;
    const dotted = call.dottedReceiver;
    if (dotted && (dotted === 'self' || dotted === 'cls' || dotted.startsWith('self.') || dotted.startsWith('cls.'))) {
      const cls = call.functionIndex >= 0 ? classOfFunction(model, call.functionIndex) : null;
      if (!cls) return null;
      const parts = dotted.split('.');
      if (parts.length === 1) return `^${own}.${cls}`;
      const known = classAttr.get(cls)?.get(parts[1]!);
      // An attribute the class's own code does not type can only come from a base of the repo,
      // or be the class's own property (the repo phase types it by the getter).
      if (!known && !repoBases.has(cls) && !ownProperty(cls, parts[1]!)) return null;
      let path = known ?? `^${own}.${cls}.${parts[1]}`;
      for (let i = 2; i < parts.length; i++) path += `.${parts[i]}`;
      return isRepo(path) ? path : null;
    }
    // Typing a receiver costs; most receivers are strings, lists, library objects. Only a name
    // that may hold an object of the repo is typed (see `mayHoldRepoObject`).
    let head: string;
    if (dotted) {
      const dot = dotted.indexOf('.');
      head = dot < 0 ? dotted : dotted.slice(0, dot);
    } else {
      // `f(...).m()`, `a.b(...).m()`: what a call returns; anything else (`rows[0].x()`) is left untyped.
      if (!CALL_RECEIVER.test(call.calleeText)) return null;
      head = call.calleeText.slice(0, call.calleeText.search(/[.(]/));
    }
    if (!holders.has(head, call.functionIndex)) return null;
    const t = receiverType(model, call);
    return t && isRepo(t) ? t : null;
  };
  return {
    classes: classes.map((c) => {
      const out: SummaryClass = { name: c.name, bases: c.bases, attrs: [...c.attrs].filter(([, t]) => isRepo(t) || boundHandleMethod(t)), isInterface: c.isInterface };
      const schema = schemas.get(c.name);
      if (schema) out.schema = schema;
      if (c.typeArgs.size) out.typeArgs = [...c.typeArgs];
      return out;
    }),
    functions: model.functions.map((fn) => functionObjects(model, fn)),
    refs: [...findRefs(model, isRepo), ...findAttributeReads(model, isRepo, classes)],
    receiverTypeOf,
    untypedCandidate(call: CallInfo): boolean {
      if (!call.hasReceiver || COMMON_METHODS.has(call.method) || call.method.startsWith('_') && call.method.endsWith('__')) return false;
      const dotted = call.dottedReceiver;
      if (!dotted) return false;
      // A receiver imported from a library is that library's object.
      const dot = dotted.indexOf('.');
      const imported = model.imports.get(dot < 0 ? dotted : dotted.slice(0, dot));
      if (imported !== undefined && !isRepo(imported)) return false;
      // So is a local made from a library's object: `template = env.get_template(...)` with a
      // module-level `env = jinja2.Environment(...)`, `md = request.app.state.md` with
      // `app.state.md = markdown.Markdown()` in the file.
      return dot >= 0 || !madeFromLibrary(model, dotted, call.functionIndex, call.line, isRepo);
    },
  };
}

/** Does the name's last assignment before `line` in the function build its value from a library object? */
function madeFromLibrary(model: FileModel, name: string, fnIndex: number, line: number, isRepo: (t: string) => boolean): boolean {
  let last: { value: SyntaxNode | null; line: number } | null = null;
  for (const a of assignmentsTo(model, name)) {
    if (a.functionIndex === fnIndex && a.line < line && !a.fromWith && (!last || a.line >= last.line)) last = a;
  }
  let v = last?.value ?? null;
  if (v?.type === 'await') v = v.namedChild(0);
  if (!v) return false;
  // `container.resolve(Mailer)`, `copy.deepcopy(obj)`, `Session.get(User, pk)`: a library call
  // handed a name may give back the repo's object; only literal arguments say it does not.
  if (v.type === 'call') {
    const args = v.childForFieldName('arguments')?.namedChildren ?? [];
    const literal = (a: SyntaxNode): boolean => {
      const x = a.type === 'keyword_argument' ? a.childForFieldName('value') : a;
      return !!x && ['string', 'concatenated_string', 'integer', 'float', 'true', 'false', 'none'].includes(x.type);
    };
    if (!args.every(literal)) return false;
  }
  const text = (v.type === 'call' ? v.childForFieldName('function')?.text ?? '' : v.text).replace(/\s+/g, '');
  if (!/^[A-Za-z_][\w.]*$/.test(text)) return false;
  const libraryCall = (node: SyntaxNode | null | undefined): boolean => {
    if (node?.type !== 'call') return false;
    const callee = node.childForFieldName('function')?.text.replace(/\s+/g, '') ?? '';
    const q = /^[A-Za-z_][\w.]*$/.test(callee) ? resolveName(model, callee) : null;
    return q !== null && !q.startsWith('builtins.') && !isRepo(q);
  };
  // `request.app.state.md`: what the file stores there.
  const state = /(^|\.)state\.(\w+)$/.exec(text);
  if (state) {
    const slot = `state.${state[2]}`;
    const stored = model.assignments.filter((a) => a.target === slot || a.target.endsWith(`.${slot}`));
    return stored.length > 0 && stored.every((a) => libraryCall(a.value));
  }
  const head = text.split('.')[0]!;
  if (head === 'self' || head === 'cls' || head === name) return false;
  const imported = model.imports.get(head);
  if (imported !== undefined) return !isRepo(imported) && text.includes('.');
  // A module-level object of the file made by a library's constructor.
  if (!text.includes('.')) return false;
  const module = assignmentsTo(model, head).filter((a) => a.functionIndex === -1 && !a.fromWith);
  return module.length > 0 && module.every((a) => libraryCall(a.value));
}

/**
 * Can a name hold an object of the repo at a call in function `fnIndex`? A name imported from
 * the repo or defined at module level; a parameter annotated with (or injected from) a repo
 * name; a local bound from a call of a repo name or with such an annotation. A syntactic
 * over-approximation, decided lazily per function and name, that keeps the typing of receivers
 * to the few calls it can matter for.
 */
function repoObjectHolders(model: FileModel, isRepo: (t: string) => boolean): { has(name: string, fnIndex: number): boolean } {
  const repoName = (text: string): boolean => {
    const m = HEAD_NAME.exec(text);
    if (!m) return false;
    const q = resolveName(model, m[1]!);
    return q !== null && !q.startsWith('builtins.') && isRepo(q);
  };
  /** Per function, then per name; names of the module (imports, module-level bindings) in slot -1. */
  const memo = new Map<number, Map<string, boolean>>();
  const moduleLevel = (name: string): boolean | undefined => {
    const imported = model.imports.get(name);
    if (imported !== undefined) return isRepo(imported);
    return undefined;
  };
  const decide = (name: string, fnIndex: number): boolean => {
    for (let i = fnIndex; i >= 0; i = model.functions[i]!.parent) {
      const p = model.functions[i]!.params.find((x) => x.name === name);
      if (p) {
        const text = `${p.annotation ?? ''} ${p.defaultText ?? ''}`;
        const dep = /\bDepends\(\s*([A-Za-z_][\w.]*)/.exec(text);
        return (p.annotation !== null && repoName(p.annotation)) || (dep !== null && repoName(dep[1]!)) || /\bAnnotated\[/.test(text);
      }
    }
    for (const a of assignmentsTo(model, name)) {
      if (a.annotation ? repoName(a.annotation) : isRepoCall(model, a.value, isRepo)) return true;
      // `user = User.query.filter_by(...).first()`: one row of a model of the repo.
      if (!a.annotation && fetchedRow(model, a.value)) return true;
      // `cls = Lecture if simple else Conference`: one of two classes of the repo.
      if (a.value?.type === 'conditional_expression') {
        const [x, , y] = a.value.namedChildren;
        if (x && y && [x, y].every((v) => (v.type === 'identifier' || v.type === 'attribute') && repoName(v.text))) return true;
      }
    }
    const imported = model.imports.get(name);
    if (imported !== undefined) return isRepo(imported);
    return model.moduleDefs.has(name);
  };
  return {
    has(name: string, fnIndex: number): boolean {
      // An import decides the same way in every function (unless a local shadows it: rare, and
      // only an over-approximation when it does).
      let byName = memo.get(-1);
      if (!byName) memo.set(-1, (byName = new Map()));
      let v = byName.get(name);
      if (v === undefined) {
        const m = moduleLevel(name);
        if (m !== undefined) byName.set(name, m);
      }
      if (v !== undefined) return v;
      let own = memo.get(fnIndex);
      if (!own) memo.set(fnIndex, (own = new Map()));
      v = own.get(name);
      if (v === undefined) own.set(name, (v = decide(name, fnIndex)));
      return v;
    },
  };
}

/** Is a value the call (or awaited call) of a repo function or class? */
function isRepoCall(model: FileModel, value: SyntaxNode | null, isRepo: (t: string) => boolean): boolean {
  const q = calledName(model, value);
  return q !== null && isRepo(q);
}

/** The qualified name of the function a value is the call (or awaited call) of, from the model's call facts. */
function calledName(model: FileModel, value: SyntaxNode | null): string | null {
  let v = value;
  if (v?.type === 'await') v = v.namedChild(0);
  if (v?.type !== 'call') return null;
  const q = callAt(model, v)?.qualifiedName ?? null;
  return q && !q.startsWith('builtins.') ? q : null;
}

/** The first name of an expression, past `await`, `Optional[`, `Annotated[`, `@`, `^`. */
const HEAD_NAME = /^(?:await\s+)?(?:(?:typing\.)?(?:Annotated|Optional|Union)\[\s*)?[@^]?([A-Za-z_]\w*)/;

function functionObjects(model: FileModel, fn: FunctionInfo): FunctionObjects {
  let flags = 0;
  for (const d of fn.decoratorNames) {
    if (PROPERTY_DECORATORS.test(d)) flags |= FN_PROPERTY;
    else if (/(^|\.)classmethod$/.test(d)) flags |= FN_CLASSMETHOD;
    else if (/(^|\.)staticmethod$/.test(d)) flags |= FN_STATICMETHOD;
  }
  const source = model.source;
  const colon = bodyStart(source, fn.start, fn.end);
  const from = colon >= 0 ? colon + 1 : fn.end;
  if (fn.className && fn.end - from < 400 && STUB_BODY.test(source.slice(from, fn.end).replace(/#[^\n]*/g, ''))) flags |= FN_STUB;
  // What a nested def returns matters to no caller outside it.
  return { returns: fn.parent < 0 ? returnsOf(model, fn, from) : null, flags, paramUses: paramUses(model, fn) };
}

/** The `:` that ends a `def` header (after the parameters and the return annotation), or -1. */
function bodyStart(source: string, start: number, end: number): number {
  let depth = 0;
  for (let i = start; i < end; i++) {
    const c = source.charCodeAt(i);
    if (c === 40 || c === 91 || c === 123) depth++;
    else if (c === 41 || c === 93 || c === 125) depth--;
    else if (c === 58 && depth === 0) return i;
  }
  return -1;
}

const STUB_BODY = /^\s*(?:(?:"""[\s\S]*?"""|'''[\s\S]*?'''|"[^"\n]*"|'[^'\n]*')\s*)?(?:\.\.\.|pass|raise\s+NotImplementedError\b[^\n]*)?\s*$/;
const RETURN_CALL = /return\s+(?:await\s+)?([A-Za-z_][\w.]*)\s*\(/y;
const RETURN_NAME = /return\s+([A-Za-z_][\w.]*)[ \t]*(?:#[^\n]*)?(?=\n|$)/y;

const RETURN_WORDS = new WeakMap<FileModel, number[]>();

/** Where the text `return` occurs in the file, in order (once per file). */
function returnWords(model: FileModel): number[] {
  let out = RETURN_WORDS.get(model);
  if (!out) {
    out = [];
    const source = model.source;
    for (let at = source.indexOf('return'); at >= 0; at = source.indexOf('return', at + 6)) out.push(at);
    RETURN_WORDS.set(model, out);
  }
  return out;
}

/** What calling the function gives: its annotation, what it yields (a provider), or its first returned value. */
function returnsOf(model: FileModel, fn: FunctionInfo, bodyFrom: number): string | null {
  if (fn.className && fn.returnType && SELF_ANNOTATION.test(fn.returnType.trim())) return SELF_TYPE;
  if (fn.returnType && !/^(None|Any|typing\.Any|object)$/.test(fn.returnType.trim())) {
    const t = annotationType(model, fn.returnType);
    if (t) return t;
  }
  for (const y of fn.yields) {
    const t = typeString(model, y, fn.index, y.startPosition.row + 1);
    if (t) return t;
  }
  // The first `return` of the body that returns a call or a name.
  const source = model.source;
  let call: RegExpExecArray | null = null;
  let name: RegExpExecArray | null = null;
  const returns = returnWords(model);
  // The first `return` word at or after the body (binary search: `indexOf` from there ran on to
  // the end of the file for every function with no `return`, quadratic in the file).
  let lo = 0;
  for (let hi = returns.length; lo < hi; ) {
    const mid = (lo + hi) >> 1;
    if (returns[mid]! < bodyFrom) lo = mid + 1;
    else hi = mid;
  }
  for (let k = lo, at = returns[k] ?? -1; at >= 0 && at < fn.end; at = returns[++k] ?? -1) {
    const before = source.charCodeAt(at - 1);
    if ((before >= 48 && before <= 57) || (before >= 65 && before <= 90) || (before >= 97 && before <= 122) || before === 95 || before === 46) continue;
    RETURN_CALL.lastIndex = at;
    call = RETURN_CALL.exec(source);
    if (call) break;
    RETURN_NAME.lastIndex = at;
    name = RETURN_NAME.exec(source);
    if (name) break;
  }
  const dotted = call?.[1] ?? name?.[1];
  if (!dotted) return null;
  const parts = dotted.split('.');
  let t: string | null;
  // `return cls(...)` in a classmethod: an instance of the class it is called on.
  if (call && dotted === 'cls' && fn.className && fn.params[0]?.name === 'cls' && fn.decoratorNames.some((d) => /(^|\.)classmethod$/.test(d))) return SELF_TYPE;
  if (parts[0] === 'self' || parts[0] === 'cls') {
    const cls = classOfFunction(model, fn.index);
    if (!cls) return null;
    t = `^${model.moduleName}.${cls}${parts.length > 1 ? '.' + parts.slice(1).join('.') : ''}`;
  } else {
    const head = nameType(model, parts[0]!, fn.index, fn.endLine);
    t = head ? [head, ...parts.slice(1)].join('.') : null;
  }
  return t && call ? `${t}()` : t;
}

/** The parameters the function calls (in a loop or not) or hands to a thread or the loop. */
function paramUses(model: FileModel, fn: FunctionInfo): [number, string, ParamUse][] {
  const out: [number, string, ParamUse][] = [];
  // Cheap gate: no bare-name call and no offload in the function's own calls, no parameter use.
  const own = callsOf(model, fn.index);
  if (!own.length) return out;
  let params: string[] | null = null;
  const position = (name: string): number => {
    params ??= fn.params.map((p) => p.name);
    const i = params.indexOf(name);
    if (i < 0) return -1;
    const offset = fn.className && /^(self|cls)$/.test(params[0] ?? '') ? 1 : 0;
    return i - offset;
  };
  for (const c of own) {
    // A parameter is no import, builtin or module name: its call has no qualified name.
    if (c.qualifiedName === null && !c.hasReceiver && /^[A-Za-z_]\w*$/.test(c.calleeText)) {
      const i = position(c.calleeText);
      if (i >= 0) out.push([i, c.calleeText, c.loops.length ? 'call_loop' : 'call']);
      continue;
    }
    const offload = OFFLOAD_METHOD_NAMES.has(c.method) || (c.qualifiedName !== null && OFFLOAD_FUNCTIONS.has(c.qualifiedName));
    const schedule = SCHEDULING_NAMES.has(c.method);
    if (!offload && !schedule) continue;
    for (const arg of c.node.childForFieldName('arguments')?.namedChildren ?? []) {
      if (arg.type !== 'identifier') continue;
      const i = position(arg.text);
      if (i >= 0) out.push([i, arg.text, offload ? 'offload' : 'schedule']);
    }
  }
  return out;
}



/**
 * Calls that take a callable: threads, the event loop, background tasks, `partial`, the builtins
 * that call what they are given, and a project function's callable parameter (by name: a
 * `callback=`/`fn=`-style keyword). A file with none of these words hands no callable on.
 */
const CONSUMER_WORDS = /to_thread|run_in_executor|run_in_threadpool|run_sync|sync_to_async|submit\(|call_soon|call_later|call_at\(|add_done_callback|add_reader|add_writer|add_signal_handler|add_task|BackgroundTask|partial\(|\b(?:callback|on_[a-z]+|fn|func|handler|serializer|target)\s*=/;

/** Callees that take a callable to run: threads, executors, the loop, background tasks, `partial`, threads and processes. */
const CONSUMER_CALL = /(^|\.)(to_thread|run_in_executor|run_in_threadpool|run_sync|sync_to_async|submit|call_soon|call_later|call_at|call_soon_threadsafe|add_done_callback|add_reader|add_writer|add_signal_handler|add_task|BackgroundTask|partial|Thread|Process|create_task|ensure_future)$/;

/**
 * A test for an argument list that hands one of the module's functions on bare (`(to_dict)`,
 * `, render)`), or null when the source never does.
 */
function handedFunctions(source: string, names: ReadonlySet<string>): RegExp | null {
  if (!names.size) return null;
  const listed = new Set<string>();
  BARE_ARG.lastIndex = 0;
  for (let m = BARE_ARG.exec(source); m; m = BARE_ARG.exec(source)) if (names.has(m[1]!)) listed.add(m[1]!);
  return listed.size ? new RegExp(`[(,]\\s*(?:${[...listed].join('|')})\\s*[,)]`) : null;
}
/** A bare name in argument position: after `(` or `,`, before `,` or `)`. */
const BARE_ARG = /[(,]\s*([A-Za-z_]\w*)(?=\s*[,)])/g;

/** Is `name` the function `fnIndex` itself or one that encloses it? */
function enclosingNamed(model: FileModel, fnIndex: number, name: string): boolean {
  for (let i = fnIndex; i >= 0; i = model.functions[i]!.parent) if (model.functions[i]!.name === name) return true;
  return false;
}

/** Functions and bound methods passed as arguments, with the call that takes them. */
function findRefs(model: FileModel, isRepo: (t: string) => boolean): SummaryRef[] {
  const out: SummaryRef[] = [];
  const calls = model.calls;
  if (!calls.length) return out;
  const source = model.source;
  const moduleFunctions = new Set(model.functions.filter((f) => f.parent < 0 && !f.className).map((f) => f.name));
  // What can name a function: `self.x`/`cls.x`, a function of the module, a name imported from
  // the repo (and its attributes), in argument position: after `(`, `,` or `name=`, before `,` or `)`.
  const heads = new Set(['self', 'cls', ...moduleFunctions]);
  for (const [local, q] of model.imports) if (IDENT.test(local) && isRepo(q)) heads.add(local);
  // A function of the module handed bare to any call (`pager.map(to_dict)`): the callee may run
  // it, once or per item (its parameter's use says which). Else only the words of the known takers.
  const handed = handedFunctions(source, moduleFunctions);
  if (!handed && !CONSUMER_WORDS.test(source)) return out;
  // Only the argument lists of the calls that may take a callable are scanned.
  const spans: [number, number][] = [];
  for (const c of calls) {
    if (c.argsOffset < 0 && !c.calleeText) continue;
    if (!CONSUMER_CALL.test(c.calleeText) && !(c.qualifiedName !== null && isRepo(c.qualifiedName) && /\b(?:callback|on_[a-z]+|fn|func|handler|serializer|target)\s*=|\(\s*[A-Za-z_][\w.]*\s*[,)]/.test(source.slice(c.start, Math.min(c.node.endIndex, c.start + 400))))
      && !(handed && c.hasReceiver && c.argsOffset >= 0 && handed.test(source.slice(c.argsOffset - 1, Math.min(c.node.endIndex, c.argsOffset + 400))))) continue;
    const from = c.argsOffset >= 0 ? c.argsOffset - 1 : c.start;
    const last = spans[spans.length - 1];
    const end = c.node.endIndex;
    if (last && from <= last[1]) last[1] = Math.max(last[1], end);
    else spans.push([from, end]);
  }
  let m: RegExpExecArray | null;
  for (const [from, to] of spans) {
  ARG_REF.lastIndex = from;
  while ((m = ARG_REF.exec(source)) && m.index < to) {
    const text = m[2]!;
    const dot = text.indexOf('.');
    const head = dot < 0 ? text : text.slice(0, dot);
    // A bound method of any typed value (`client.fetch` of `client = RateClient()`, module-level
    // or local): `refTarget` asks its type.
    if ((!heads.has(head) && dot < 0) || text === 'self' || text === 'cls') continue;
    // `(`, `,`, or the `=` of a keyword argument (not `==`, `<=`, …).
    if (m[1] === '=' && /[=!<>]/.test(source[m.index - 1] ?? '')) continue;
    const at = m.index + m[0].length - text.length;
    const consumer = innermostCall(calls, at);
    if (!consumer) continue;
    const target = refTarget(model, text, consumer, moduleFunctions);
    if (!target || !isRepo(target)) continue;
    // A function handing itself on (`ordering.confirmed(evaluate, event)`, which calls it back for
    // the events that waited on this one) recurses: the work per item is its own, not a loop's N+1.
    if (dot < 0 && enclosingNamed(model, consumer.functionIndex, text)) continue;
    // `partial(f, x)` is called by whoever takes the partial: classify by that call.
    let taker = consumer;
    if (/(^|\.)partial$/.test(consumer.qualifiedName ?? consumer.calleeText)) taker = innermostCall(calls, consumer.start, consumer) ?? consumer;
    const args = consumer.node.childForFieldName('arguments')?.namedChildren ?? [];
    let arg: number | string = -1;
    let pos = 0;
    for (const a of args) {
      if (a.type === 'keyword_argument') {
        if (at >= a.startIndex && at < a.endIndex) arg = a.childForFieldName('name')?.text ?? '';
      } else {
        if (at >= a.startIndex && at < a.endIndex) arg = pos;
        pos++;
      }
    }
    if (arg === -1) continue;
    const row = model.lineOf(at);
    out.push({
      target,
      functionIndex: taker.functionIndex,
      line: row + 1,
      column: at - (source.lastIndexOf('\n', at - 1) + 1) + 1,
      consumer: taker.qualifiedName ?? taker.calleeText,
      consumerAt: `${taker.line}:${taker.column}`,
      arg: taker === consumer ? arg : 0,
      inLoop: taker.loops.length > 0,
    });
  }
  }
  return out;
}

/** The consumer of an attribute read: the attribute's getter runs (a `@property`), if it is one. */
export const ATTRIBUTE_READ = '.get';

/**
 * Attribute reads that may run a property getter: `settings.dsn` on a module-level object or an
 * imported name, `self.total` where `total` is a property of the class itself. Recorded once per function and name; the repo phase
 * keeps those that are properties.
 */
function findAttributeReads(model: FileModel, isRepo: (t: string) => boolean, classes: readonly { name: string }[]): SummaryRef[] {
  const out: SummaryRef[] = [];
  if (!model.functions.length) return out;
  const names = new Set<string>();
  // Objects imported from the repo (`from app.config import settings`): lower-case names, not
  // classes, not whole modules (`import app.config`), and not functions (the file calls those).
  const called = new Set<string>();
  for (const c of model.calls) if (!c.hasReceiver) called.add(c.calleeText);
  for (const [local, q] of model.imports) if (q !== local && /^[a-z_]\w*$/.test(local) && !called.has(local) && isRepo(q)) names.add(local);
  for (const a of model.assignments) {
    if (a.functionIndex >= 0 || !IDENT.test(a.target) || !model.moduleDefs.has(a.target)) continue;
    const q = calledName(model, a.value);
    if (q && isRepo(q)) names.add(a.target);
  }
  const ownProps = new Set<string>();
  /** The names of those properties: a `self.x` read of another name is never one (most `self.` reads of a file). */
  const propNames = new Set<string>();
  for (const fn of model.functions) {
    if (fn.className && fn.parent < 0 && fn.decoratorNames.some((d) => PROPERTY_DECORATORS.test(d))) {
      ownProps.add(`${fn.className}.${fn.name}`);
      propNames.add(fn.name);
    }
  }
  if (ownProps.size) names.add('self');
  const seen = new Set<string>();
  /** Each `name.attr` read (not a call, not assigned) of `names` between `from` and `to`, found with indexOf. */
  const scanNames = (source: string, names: Set<string>, from: number, to: number, fnFor: (at: number) => number, typeOf: (name: string, fnIndex: number) => string | null) => {
    for (const name of names) {
      const needle = `${name}.`;
      for (let at = source.indexOf(needle, from); at >= 0 && at < to; at = source.indexOf(needle, at + needle.length)) {
        const before = source.charCodeAt(at - 1);
        if (isWordChar(before) || before === 46) continue;
        ATTR_AFTER.lastIndex = at + needle.length;
        const attr = ATTR_AFTER.exec(source);
        if (attr && (name !== 'self' || propNames.has(attr[1]!))) visit(at, name, attr[1]!, fnFor, typeOf);
      }
    }
  };
  const visit = (at: number, name: string, attr: string, fnFor: (at: number) => number, typeOf: (name: string, fnIndex: number) => string | null) => {
    {
      const fnIndex = fnFor(at);
      if (fnIndex < 0) return;
      const key = `${fnIndex}:${name}.${attr}`;
      if (seen.has(key)) return;
      seen.add(key);
      const t = typeOf(name, fnIndex);
      if (!t || !isRepo(t)) return;
      const row = model.lineOf(at);
      out.push({
        target: `${t}.${attr}`, functionIndex: fnIndex, line: row + 1, column: at - (model.source.lastIndexOf('\n', at - 1) + 1) + 1,
        consumer: ATTRIBUTE_READ, consumerAt: '', arg: 0, inLoop: false,
      });
    }
  };
  const fns = model.functions;
  /** Functions are in document order and a nested def follows its parent: the last one that holds `at` is the innermost. */
  const innermost = (at: number): number => {
    let lo = 0;
    let hi = fns.length - 1;
    let last = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (fns[mid]!.start <= at) {
        last = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    for (let i = last; i >= 0; i = fns[i]!.parent) if (at < fns[i]!.end) return i;
    // A later sibling at a shallower level: walk back to the enclosing one.
    for (let i = last; i >= 0; i--) if (at < fns[i]!.end) return i;
    return -1;
  };
  if (names.size) {
    scanNames(model.source, names, 0, model.source.length, innermost, (name, fnIndex) => {
      if (name === 'self') {
        const cls = classOfFunction(model, fnIndex);
        return cls && classes.some((c) => c.name === cls) ? `^${model.moduleName}.${cls}` : null;
      }
      if (model.functions[fnIndex]!.params.some((p) => p.name === name)) return null;
      return resolveName(model, name);
    });
  }
  // `self.x` reads: only the class's own properties are worth a reference.
  return out.filter((r) => !r.target.startsWith('^') || ownProps.has(r.target.slice(r.target.lastIndexOf('.', r.target.lastIndexOf('.') - 1) + 1)));
}

const IDENT = /^[A-Za-z_]\w*$/;
/** The attribute after `name.`, when it is read: not called, not assigned. */
const ATTR_AFTER = /([A-Za-z_]\w*)\b(?![ \t]*(?:\(|=[^=]))/y;

function isWordChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}
/** A plain name or dotted name in argument position: after `(`, `,` or `=`, before `,` or `)`. */
const ARG_REF = /([(,=])\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?=\s*[,)])/g;

/** The innermost call whose argument list holds offset `at` (calls are in document order by start). */
function innermostCall(calls: readonly CallInfo[], at: number, outside?: CallInfo): CallInfo | null {
  let lo = 0;
  let hi = calls.length - 1;
  let last = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (calls[mid]!.start < at) {
      last = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  for (let i = last; i >= 0 && i > last - 64; i--) {
    const c = calls[i]!;
    if (c === outside || at >= c.node.endIndex) continue;
    // The callee of a plain dotted call ends at its `(`; otherwise ask the tree where the arguments start.
    if (c.argsOffset >= 0) {
      if (at >= c.argsOffset) return c;
      continue;
    }
    const args = c.node.childForFieldName('arguments');
    if (args && at >= args.startIndex && at < args.endIndex) return c;
  }
  return null;
}

/** The type path of what a reference names, or null when it is not a function or method reference we can follow. */
function refTarget(model: FileModel, text: string, consumer: CallInfo, moduleFunctions: Set<string>): string | null {
  const parts = text.split('.');
  const fnIndex = consumer.functionIndex;
  if (parts[0] === 'self' || parts[0] === 'cls') {
    if (parts.length < 2 || fnIndex < 0) return null;
    const cls = classOfFunction(model, fnIndex);
    return cls ? `^${model.moduleName}.${cls}.${parts.slice(1).join('.')}` : null;
  }
  if (parts.length === 1) {
    // A parameter or a local holds a value, not a function the graph knows by name.
    if (fnIndex >= 0 && model.functions[fnIndex]!.params.some((p) => p.name === text)) return null;
    if (moduleFunctions.has(text)) return `${model.moduleName}.${text}`;
    const q = model.imports.get(text);
    if (q) return q;
    return null;
  }
  const head = resolveName(model, parts[0]!);
  if (head && model.imports.has(parts[0]!)) return [head, ...parts.slice(1)].join('.');
  // `obj.method` on a typed local or global.
  const t = nameType(model, parts[0]!, fnIndex, consumer.line);
  return t ? [t, ...parts.slice(1)].join('.') : null;
}
