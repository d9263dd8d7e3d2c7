/**
 * The semantic model of one Python file: the facts every rule asks about, computed once from
 * the tree. Names are resolved through imports (`from time import sleep as s` makes `s(...)`
 * a call of `time.sleep`), every call knows its enclosing function, loops, `with` scopes and
 * whether it is awaited or handed to a thread, and every function knows its async-ness,
 * decorators and role (handler, background, init).
 *
 * Built from one `descendantsOfType` batch of the node types it needs, in document order;
 * nesting is derived from start offsets with a stack, so only those nodes become JS objects.
 */
import type { PythonParser, SyntaxNode } from '../parse/parser.js';
import type { ImportPrefix } from './importRoots.js';
import { BLOCKING_MODULES } from './blockingModules.js';

export type FunctionRole = 'handler' | 'background' | 'init' | 'other';

export interface ParamInfo {
  name: string;
  annotation: string | null;
  defaultText: string | null;
}

export interface FunctionInfo {
  index: number;
  name: string;
  /** `Class.method`, `outer.inner`, or the plain name at module level. */
  qualifiedName: string;
  isAsync: boolean;
  /** Index of the enclosing function, or -1. */
  parent: number;
  className: string | null;
  decorators: string[];
  /** Decorators resolved through imports, without call arguments: `app.get`, `celery.shared_task`. */
  decoratorNames: string[];
  role: FunctionRole;
  /** For handlers: what kind of route (`get`, `post`, `websocket`, `route`, …). */
  routeKind: string | null;
  params: ParamInfo[];
  returnType: string | null;
  node: SyntaxNode;
  body: SyntaxNode | null;
  startLine: number;
  endLine: number;
  /** Byte offsets of the definition (decorators excluded). */
  readonly start: number;
  readonly end: number;
  /** Does the body contain `yield` (own body, not nested functions)? */
  isGenerator: boolean;
  /** The values of the function's own `yield x` expressions (not nested functions'). */
  yields: SyntaxNode[];
}

export type LoopKind = 'for' | 'async_for' | 'while' | 'comprehension';

export interface LoopInfo {
  index: number;
  kind: LoopKind;
  node: SyntaxNode;
  /** Byte range evaluated on every iteration. */
  iterStart: number;
  iterEnd: number;
  /** A comprehension's first iterable, inside that range but evaluated once: `[start, end)`. */
  once?: [number, number];
  /** The iterable expression, evaluated once (for / comprehension), or null. */
  iterable: SyntaxNode | null;
  /** Index of the enclosing function, or -1. */
  functionIndex: number;
}

export interface WithItemInfo {
  /** The context expression (`Session()` in `with Session() as s`). */
  value: SyntaxNode;
  alias: string | null;
}

export interface WithInfo {
  index: number;
  isAsync: boolean;
  node: SyntaxNode;
  items: WithItemInfo[];
  bodyStart: number;
  bodyEnd: number;
  functionIndex: number;
}

export interface CallInfo {
  node: SyntaxNode;
  /** Byte offset where the call starts. */
  readonly start: number;
  /**
   * Where the innermost statement or expression that runs the call only sometimes begins (an
   * `if` branch, `else`, `except`, `case`, a conditional expression or short-circuit operand, a
   * `for`/`while` statement), or -1. The call is conditional within a function whose body starts
   * at or before it: see {@link conditionalInFunction}.
   */
  readonly conditionalFrom: number;
  /** Source text of the callee expression, whitespace-free: `self.db.execute`, `Path(p).read_text`. */
  calleeText: string;
  /**
   * The callee resolved through imports when it is a dotted name: `time.sleep`, `os.path.exists`,
   * `builtins.open` for an unshadowed builtin, `<local>.name` is never produced — names defined
   * in this module resolve to `<module>.name` via {@link FileModel.moduleName}.
   */
  qualifiedName: string | null;
  /** The last attribute name for `x.y.z(...)`, or the bare name for `f(...)`. */
  method: string;
  /** The receiver expression of a method call, or null for a bare name. */
  readonly receiver: SyntaxNode | null;
  /** Offset just past the `(` of a plain dotted callee's argument list, or -1 when not read from the text. */
  readonly argsOffset: number;
  /** Is there a receiver (`x.m(...)`)? Read from the text for a plain dotted callee. */
  readonly hasReceiver: boolean;
  /** Written with an empty argument list (`f()`), as the text shows; false when it has arguments or the callee was not read from the text. */
  readonly emptyArgs: boolean;
  /**
   * The receiver of a plain dotted callee, from the text (`self.session` for
   * `self.session.execute(...)`); null when the callee is a bare name or not a dotted name.
   */
  readonly dottedReceiver: string | null;
  functionIndex: number;
  /** Enclosing loops whose per-iteration part contains this call, innermost last. */
  loops: number[];
  /** Enclosing `with` statements whose body contains this call, innermost last. */
  withs: number[];
  readonly awaited: boolean;
  /** Runs in a thread: inside a lambda handed to `asyncio.to_thread`, `run_in_executor`, … */
  offloaded: boolean;
  /**
   * Runs later, not when its function runs: inside a lambda the function hands out (returned,
   * alone or in a returned container) or gives a column as its `default=`/`onupdate=`. The
   * function's effects do not include it.
   */
  deferred: boolean;
  /** The call is itself a `with` item's context expression. */
  readonly isWithItem: boolean;
  line: number;
  column: number;
  /**
   * Answers about this call computed on first use by later layers (its receiver's type path, its
   * DB classification). Slots of the call rather than WeakMaps keyed by it: every call of every
   * file is asked, and a WeakMap lookup per call and per question costs more than the answer.
   */
  readonly memo: CallMemo;
}

/** See {@link CallInfo.memo}; `undefined` means not computed yet. */
export interface CallMemo {
  receiverType: string | null | undefined;
  calleeType: string | null | undefined;
  /** The `DbOp` of `classifyDbCall` (rules layer), or null for a call that is not a DB call. */
  dbOp: unknown;
  /** `isMemoisedCall` (semantic/memo.ts). */
  memoised: boolean | undefined;
}

export interface AssignmentInfo {
  target: string;
  value: SyntaxNode | null;
  annotation: string | null;
  functionIndex: number;
  line: number;
  node: SyntaxNode;
  /** `with value as target` binds like an assignment; `value` is the context expression. */
  fromWith?: boolean;
  /** Enclosing loops whose per-iteration part contains the assignment, innermost last. */
  loops: number[];
}

/** Names one unpacking assignment binds (`a, b = pair`). */
export interface UnpackedAssignment {
  names: string[];
  /** The value unpacked (`pair` in `a, b = pair`). */
  value: SyntaxNode | null;
  functionIndex: number;
  line: number;
  /** Enclosing loops whose per-iteration part contains the assignment, innermost last. */
  loops: number[];
}

/** `target op= value` (`s += part`). */
export interface AugAssignmentInfo {
  target: string;
  /** `+=`, `-=`, … */
  operator: string;
  value: SyntaxNode | null;
  functionIndex: number;
  loops: number[];
  line: number;
  node: SyntaxNode;
}

export interface FileModel {
  path: string;
  moduleName: string;
  source: string;
  root: SyntaxNode;
  /** local name → qualified name (`np` → `numpy`, `sleep` → `time.sleep`). */
  imports: Map<string, string>;
  /** Names bound at module level by `def`, `class` or assignment. */
  moduleDefs: Set<string>;
  functions: FunctionInfo[];
  calls: CallInfo[];
  loops: LoopInfo[];
  /** Every `if` statement inside a function, in source order, with the function it belongs to. */
  ifs: { node: SyntaxNode; functionIndex: number }[];
  withs: WithInfo[];
  assignments: AssignmentInfo[];
  augAssignments: AugAssignmentInfo[];
  /** `d[k] += v`, `rows[i] -= 1`: augmented assignments to a subscript (not in `augAssignments`, which rules match by name). */
  augSubscripts: AugAssignmentInfo[];
  /**
   * Names bound by unpacking (`a, b = pair`, `[x, *rest] = items`): not in `assignments`, whose
   * value is one name's; what a loop rebinds on each iteration includes them.
   */
  unpackedAssignments: UnpackedAssignment[];
  /** Every `class` statement, in document order (the model's node batch has them already). */
  classes: SyntaxNode[];
  /** 0-based line of a source offset. */
  lineOf(offset: number): number;
  /** 1-based line → `# noqa` / `# persist-audit: ignore[...]` codes; `*` means all. */
  suppressions: Map<number, Set<string>>;
  isTestFile: boolean;
  /** Under `tasks/`, `jobs/`, `workers/`, `cron/`. */
  isBackgroundFile: boolean;
  /**
   * The class names of the project's ORM models (from the project context; empty when the model
   * is built without one). Flask-SQLAlchemy's `Model.query` is a query only on these.
   */
  modelClasses: ReadonlySet<string>;
  /** The modules defining each of those classes (`Book` → `app.models.book`); set by the engine. */
  modelModules: ReadonlyMap<string, readonly string[]>;
  /** Flask-SQLAlchemy: names of the project's `SQLAlchemy()` objects (`db`), whose `.session` is a session. */
  flaskDbHandles: ReadonlySet<string>;
  /** The project's module-level names for such a handle's session (`app.api.db_session`, see `ProjectContext.flaskSessionAliases`); set by the engine. */
  flaskSessionAliases: ReadonlySet<string>;
  /** The project's module-level `scoped_session(...)` objects: name → the modules defining one (`Session` → `app.meta`); set by the engine. */
  scopedSessions: ReadonlyMap<string, readonly string[]>;
  /** `Model.attr` of the project's `lazy="dynamic"` relationships: `self.attr.filter(...)` in the model runs a query. */
  dynamicRelations: ReadonlySet<string>;
  /**
   * The project's sessions never autoflush: every session factory it makes sets `autoflush=False`
   * (see `sessionsNeverAutoflush`), so a query sends nothing staged. Set by the engine.
   */
  autoflushOff?: boolean;
  /**
   * The project's module-level session factories and engines of other modules, by qualified name
   * (`app.db.SessionLocal` → `sqlalchemy.orm.sessionmaker()`): `SessionLocal()` imported from
   * there is a session in this file too. Set by the engine.
   */
  projectHandles: ReadonlyMap<string, string>;
  /**
   * The tree's top-level module names (see `repoModuleNames`), when the engine knows them: a type
   * path starting with one is the project's own class, whose methods the call graph follows.
   */
  repoModules?: ReadonlySet<string>;
  /** The project's `X = Annotated[T, Depends(f)]` aliases (see semantic/dependencyAliases.ts); set by the engine. */
  dependencyAliases: readonly { name: string; type: string; provider: string }[];
  /**
   * Functions this file starts outside any request: CLI commands (`@click.command`, `@cli.command()`,
   * a module-level `main`), what its `if __name__ == "__main__":` block calls, and startup or
   * shutdown hooks (`@app.on_event("startup")`, `lifespan=`, `on_startup=[...]`,
   * `add_event_handler("startup", f)`). Names are qualified (`app.cli.rebuild`).
   */
  entryPoints: EntryPoint[];
  /**
   * Module-level code that runs only when the module is run as a program: `[first line, last line,
   * why]` (1-based): the `if __name__ == "__main__":` block, or the whole module when its
   * module-level code exits the process or parses the command line (see `scriptModule`).
   */
  scriptCode: [number, number, string][];
}

export interface EntryPoint {
  /** `migrate`: a function that changes the schema through Alembic itself (`command.upgrade`/`downgrade`/`stamp`, `Operations(...)`). */
  kind: 'cli' | 'main' | 'startup' | 'migrate' | 'script';
  /** The function's qualified name, as the call graph resolves it (`app.tasks.rebuild`, `app.svc.Service.run`). */
  name: string;
}

const NO_MODELS: ReadonlySet<string> = new Set();

const BUILTINS = new Set([
  'open', 'input', 'print', 'len', 'list', 'dict', 'set', 'tuple', 'sum', 'any', 'all', 'sorted',
  'min', 'max', 'map', 'filter', 'zip', 'range', 'enumerate', 'str', 'int', 'float', 'bool',
  'bytes', 'iter', 'next', 'isinstance', 'getattr', 'setattr', 'hasattr', 'repr', 'type',
  'frozenset', 'reversed', 'round', 'abs', 'exec', 'eval', 'compile', 'vars', 'super',
]);

/** Qualified names of the functions that run a callable in a worker thread. */
export const OFFLOAD_FUNCTIONS = new Set([
  'asyncio.to_thread',
  'anyio.to_thread.run_sync',
  'starlette.concurrency.run_in_threadpool',
  'fastapi.concurrency.run_in_threadpool',
  'asgiref.sync.sync_to_async',
  'trio.to_thread.run_sync',
]);
/** `loop.run_in_executor(...)`, `executor.submit(...)`, and SQLAlchemy's `AsyncConnection.run_sync(fn)` / `AsyncSession.run_sync(fn)` (the sync code runs in a greenlet whose I/O the loop awaits). */
const OFFLOAD_METHODS = new Set(['run_in_executor', 'submit', 'run_sync']);
/** Every way an offload function may be spelled before imports resolve: `to_thread`, `asyncio.to_thread`, `anyio.to_thread.run_sync`, … */
const OFFLOAD_SPELLINGS = new Set(['to_thread', 'run_in_threadpool', 'run_sync', 'sync_to_async']);
for (const q of OFFLOAD_FUNCTIONS) {
  const parts = q.split('.');
  for (let i = 0; i < parts.length; i++) OFFLOAD_SPELLINGS.add(parts.slice(i).join('.'));
}

const ROUTE_METHODS = new Set([
  'get', 'post', 'put', 'patch', 'delete', 'head', 'options', 'trace', 'route', 'api_route',
  'websocket', 'websocket_route',
]);
const RARE_ROUTE_METHODS = new Set(['trace', 'options', 'head']);
/** Pyramid's view decorators (`pyramid.view`): the function answers requests of a route, or of the not-found/forbidden/exception view. */
const PYRAMID_VIEW = /^pyramid\.view\.(view_config|notfound_view_config|forbidden_view_config|exception_view_config)$/;

/** Is the function a Pyramid view (decorated by one of `pyramid.view`'s view decorators)? */
export function isPyramidView(fn: { decoratorNames: readonly string[] }): boolean {
  return fn.decoratorNames.some((d) => PYRAMID_VIEW.test(d));
}
const TASK_DECORATORS = /(^|\.)(task|shared_task|actor|job|periodic_task|cron|scheduled_job|on_message|consumer)$/;
const INIT_NAME = /(^|_)(init|initialize|initialise|setup|set_up|bootstrap|boot|migrate|migrations?|startup|start_up|lifespan|on_startup|create_tables|seed)(_|$)|^__init__$/i;
/** Test code (`tests/`, end-to-end suites `e2e/` and `cypress/`, `test_*.py`, `*_test.py`, `conftest.py`): never flagged (spec, rules). */
export function isTestPath(path: string): boolean {
  return TEST_PATH.test(path);
}

const TEST_PATH = /(^|\/)(tests?|testing|e2e|[\w-]+[-_]e2e|e2e[-_](?:tests?|specs?|suite)|cypress)\/|(^|\/)test_[^/]*\.py$|_test\.py$|(^|\/)conftest\.py$/;
const BACKGROUND_PATH = /(^|\/)(tasks|jobs|workers|worker|cron)(\/|\.py$)/;

/** Node types the model is built from, fetched in one batch call in document order. */
export const MODEL_NODE_TYPES = [
  'function_definition', 'class_definition', 'call', 'for_statement', 'while_statement',
  'list_comprehension', 'set_comprehension', 'dictionary_comprehension', 'generator_expression',
  'with_statement', 'lambda', 'import_statement', 'import_from_statement', 'yield',
  'assignment', 'augmented_assignment', 'decorator',
  // Only for where a call runs sometimes (`CallInfo.conditionalFrom`): a parent walk per call cost
  // more than these nodes (`ts_node_parent` descends from the root each time).
  'if_statement', 'else_clause', 'except_clause', 'except_group_clause', 'case_clause',
  'conditional_expression', 'boolean_operator',
];

/** The node types of {@link MODEL_NODE_TYPES} that only open a conditional region. */
const CONDITIONAL_TYPES = new Set(['else_clause', 'except_clause', 'except_group_clause', 'case_clause', 'conditional_expression', 'boolean_operator']);

/**
 * Do two qualified names name the same thing, one written from a package root deeper than the
 * other (`app.db.Maker` in an import, `backend.app.db.Maker` from the scanned root)?
 */
export function sameQualified(a: string, b: string): boolean {
  return a === b || a.endsWith(`.${b}`) || b.endsWith(`.${a}`);
}

/**
 * Items named by qualified names, looked up by a name that may be written from another package
 * root ({@link sameQualified}): indexed by the last segment, so a lookup compares a name with
 * the few items that end like it, not with all of them.
 */
export class QualifiedIndex<T> {
  private readonly byLast = new Map<string, { name: string; item: T }[]>();
  constructor(items: Iterable<T>, nameOf: (item: T) => string) {
    for (const item of items) {
      const name = nameOf(item);
      const last = name.slice(name.lastIndexOf('.') + 1);
      const list = this.byLast.get(last);
      if (list) list.push({ name, item });
      else this.byLast.set(last, [{ name, item }]);
    }
  }
  /** The item named `q`, exactly or across package roots; undefined when none. */
  get(q: string): T | undefined {
    const list = this.byLast.get(q.slice(q.lastIndexOf('.') + 1));
    return (list?.find((e) => e.name === q) ?? list?.find((e) => sameQualified(e.name, q)))?.item;
  }
  /** Every item whose last name segment is the same as `q`'s, with its name. */
  sameLast(q: string): readonly { name: string; item: T }[] {
    return this.byLast.get(q.slice(q.lastIndexOf('.') + 1)) ?? [];
  }
}

export function moduleNameOf(path: string): string {
  let p = path.replace(/\\/g, '/').replace(/\.pyi?$/, '');
  p = p.replace(/^(src|lib)\//, '');
  p = p.replace(/\/__init__$/, '');
  return p.split('/').join('.');
}

interface Frame {
  kind: 'function' | 'class' | 'loop' | 'with' | 'lambda';
  end: number;
  index: number;
  /** For lambdas: handed to an offload function. */
  offload?: boolean;
  /** For lambdas: stored to run later (see `CallInfo.deferred`). */
  deferred?: boolean;
  name?: string;
}

/** `a.b.c(` at a call's start: the callee is exactly that dotted name. */
const SIMPLE_CALLEE = /([A-Za-z_][A-Za-z0-9_]*(?:[ \t]*\.[ \t]*[A-Za-z_][A-Za-z0-9_]*)*)[ \t]*\(/y;

/**
 * Builds the semantic model of one parsed file.
 *
 * Cost matters here (it runs on every file of a monorepo): the nodes come from one
 * `descendantsOfType` batch call, nesting is derived from start offsets with a stack, and a
 * call whose callee is a plain dotted name is read from the source text rather than through
 * child-node round trips; the rarer facts (receiver, awaited) are computed on first use.
 */
/**
 * `importPrefix` rewrites the file's absolute imports where the tree holds several projects
 * (see importRoots.ts): `app.db` in `services/billing/...` is `services.billing.app.db`.
 */
export function buildFileModel(path: string, source: string, root: SyntaxNode, parser: PythonParser, importPrefix?: ImportPrefix): FileModel {
  const lineStarts = computeLineStarts(source);
  const model: FileModel = {
    path,
    moduleName: moduleNameOf(path),
    source,
    root,
    imports: new Map(),
    moduleDefs: new Set(),
    functions: [],
    calls: [],
    loops: [],
    ifs: [],
    withs: [],
    assignments: [],
    augAssignments: [],
    augSubscripts: [],
    unpackedAssignments: [],
    classes: [],
    suppressions: collectSuppressions(source, lineStarts),
    isTestFile: isTestPath(path),
    isBackgroundFile: BACKGROUND_PATH.test(path) && !runsOwnFunctionAsMain(source),
    entryPoints: [],
    scriptCode: [],
    modelClasses: NO_MODELS,
    modelModules: new Map(),
    flaskDbHandles: NO_MODELS,
    flaskSessionAliases: NO_MODELS,
    scopedSessions: new Map(),
    projectHandles: new Map(),
    dynamicRelations: NO_MODELS,
    dependencyAliases: [],
    lineOf: (offset: number) => lineOfOffset(lineStarts, offset),
  };
  const rawAssignments: RawAssignment[] = [];
  lazyAssignments(model, rawAssignments);

  const nodes = root.descendantsOfType(MODEL_NODE_TYPES);
  const starts = nodes.map((n) => parser.startIndexOf(n));
  const stack: Frame[] = [];
  const offloadLambdaStarts = new Set<number>();
  /** `map(lambda x: ..., items)`: the lambda runs once per item, a loop over `items` (by the lambda's start). */
  const mapLambdas = new Map<number, SyntaxNode>();
  /** Line of the current node: the batch is in document order, so it only moves forward. */
  let row = 0;
  /** Decorators seen since the last definition: they belong to the next one. */
  let decorators: SyntaxNode[] = [];

  /** The next node's type when a call already asked for it (each `type` is a call into the binding). */
  let nextType: string | null = null;
  /** Open conditional regions: `[from, end)`; an `if` opens at its consequence, not its condition. */
  const regions: { from: number; end: number }[] = [];
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i]!;
    const type = nextType ?? node.type;
    nextType = null;
    const start = starts[i]!;
    while (stack.length && stack[stack.length - 1]!.end <= start) stack.pop();
    while (regions.length && regions[regions.length - 1]!.end <= start) regions.pop();
    const fnIndex = currentFunction(stack);

    switch (type) {
      case 'if_statement':
        regions.push({ from: node.childForFieldName('consequence')?.startIndex ?? node.endIndex, end: node.endIndex });
        if (fnIndex >= 0) model.ifs.push({ node, functionIndex: fnIndex });
        break;
      case 'call': {
        // A call whose callee contains another call (`a(x).b(y)`) starts where that call starts.
        const nextIsInner = i + 1 < nodes.length && starts[i + 1] === start && (nextType = nodes[i + 1]!.type) === 'call';
        while (row + 1 < lineStarts.length && lineStarts[row + 1]! <= start) row++;
        let from = -1;
        for (const r of regions) if (r.from <= start && r.from > from) from = r.from;
        const call = new CallInfoImpl(model, node, start, fnIndex, nextIsInner ? null : source, row, lineStarts[row]!, from);
        attachScopes(model, call, stack, start);
        model.calls.push(call);
        if (isOffloadCall(call)) {
          for (const arg of node.childForFieldName('arguments')?.namedChildren ?? []) {
            const value = arg.type === 'keyword_argument' ? arg.childForFieldName('value') : arg;
            if (value?.type === 'lambda') offloadLambdaStarts.add(parser.startIndexOf(value));
          }
        }
        if (call.calleeText === 'map') {
          const [fn, items] = node.childForFieldName('arguments')?.namedChildren ?? [];
          if (fn?.type === 'lambda' && items && items.type !== 'keyword_argument') mapLambdas.set(parser.startIndexOf(fn), items);
        }
        break;
      }
      case 'yield': {
        const top = innermostCallable(stack);
        if (top?.kind === 'function') {
          const fn = model.functions[top.index]!;
          fn.isGenerator = true;
          const value = node.namedChild(0);
          if (value) fn.yields.push(value);
        }
        break;
      }
      case 'import_statement':
      case 'import_from_statement':
        collectImport(model, node, type === 'import_from_statement', importPrefix);
        break;
      case 'assignment':
      case 'augmented_assignment':
        // Read on first use only (most assignments are never asked about): keep the node and
        // the scope facts the stack knows now.
        rawAssignments.push({ node, start, augmented: type === 'augmented_assignment', functionIndex: fnIndex, loops: loopsAround(model, stack, start) });
        if (type === 'assignment' && atModuleLevel(stack)) {
          MODULE_TARGET.lastIndex = start;
          const m = MODULE_TARGET.exec(source);
          if (m) model.moduleDefs.add(m[1]!);
        }
        break;
      case 'decorator':
        decorators.push(node);
        break;
      case 'function_definition': {
        const end = node.endIndex;
        const info = new FunctionInfoImpl(model, node, start, end, fnIndex, stack, ownDecorators(source, decorators, start));
        decorators = [];
        model.functions.push(info);
        if (atModuleLevel(stack)) model.moduleDefs.add(info.name);
        stack.push({ kind: 'function', end, index: info.index, name: info.name });
        break;
      }
      case 'class_definition': {
        decorators = [];
        CLASS_NAME.lastIndex = start;
        const cname = CLASS_NAME.exec(source)?.[1] ?? node.childForFieldName('name')?.text ?? '';
        if (atModuleLevel(stack) && cname) model.moduleDefs.add(cname);
        model.classes.push(node);
        stack.push({ kind: 'class', end: node.endIndex, index: -1, name: cname });
        break;
      }
      case 'for_statement':
      case 'while_statement': {
        const loop = loopInfo(model, node, type === 'for_statement' ? 'for' : 'while', fnIndex);
        stack.push({ kind: 'loop', end: node.endIndex, index: loop.index });
        regions.push({ from: start, end: node.endIndex });
        break;
      }
      case 'with_statement': {
        const w = withInfo(model, node, fnIndex);
        stack.push({ kind: 'with', end: node.endIndex, index: w.index });
        break;
      }
      case 'lambda': {
        stack.push({ kind: 'lambda', end: node.endIndex, index: -1, offload: offloadLambdaStarts.has(start), deferred: storedLambda(node) });
        // `map(lambda o: ..., rows)` is `(... for o in rows)`: a comprehension over the second argument.
        const items = mapLambdas.get(start);
        if (items && !model.moduleDefs.has('map') && !model.imports.has('map')) {
          const loop = mapLoopInfo(model, node, items, fnIndex);
          if (loop) stack.push({ kind: 'loop', end: node.endIndex, index: loop.index });
        }
        break;
      }
      default: {
        if (CONDITIONAL_TYPES.has(type)) {
          regions.push({ from: start, end: node.endIndex });
          break;
        }
        // comprehensions
        const loop = loopInfo(model, node, 'comprehension', fnIndex);
        stack.push({ kind: 'loop', end: node.endIndex, index: loop.index });
      }
    }
  }

  // Imports may follow their first use in the file (inside functions, or late imports);
  // resolve qualified names once all imports are known.
  for (const call of model.calls) call.qualifiedName = resolveCallee(model, call.calleeText);
  if (MODULE_ALIAS_HINT.test(source)) resolveModuleAliases(model);
  for (const fn of model.functions) {
    fn.decoratorNames = fn.decorators.map((d) => resolveName(model, stripCall(d)) ?? stripCall(d));
    classifyRole(model, fn);
  }
  if (IMPERATIVE_HINT.test(model.source)) collectImperativeRoutes(model);
  if (SCHEDULE_HINT.test(model.source)) collectScheduledJobs(model);
  if (model.classes.length && VIEW_BASE_HINT.test(model.source)) collectClassViews(model, null);
  collectEntryPoints(model);
  return model;
}

/** `post = functools.partial(requests.post, URL)`, `fetch = lambda u: requests.get(u)`, `get = requests.get` at module level. */
const MODULE_ALIAS_HINT = /^[A-Za-z_]\w*[ \t]*=[ \t]*(?:(?:functools\.)?partial\(|lambda\b|[A-Za-z_]\w*\.[\w.]+[ \t]*(?:#.*)?$)/m;
const MODULE_ALIAS = /^([A-Za-z_]\w*)[ \t]*=[ \t]*(?:(?:functools\.)?partial\([ \t]*([A-Za-z_][\w.]*)[ \t]*[,)]|lambda\b[^:\n]*:[ \t]*([A-Za-z_][\w.]*)[ \t]*\(|([A-Za-z_]\w*\.[\w.]+)[ \t]*(?:#.*)?$)/gm;

/** Is `name` a parameter of the function (or an enclosing one), assigned in it, or a def nested in it? */
function boundInFunction(model: FileModel, name: string, fnIndex: number): boolean {
  for (let i = fnIndex; i >= 0; i = model.functions[i]!.parent) {
    const fn = model.functions[i]!;
    if (fn.params.some((p) => p.name === name)) return true;
    if (assignmentsTo(model, name).some((a) => a.functionIndex === i)) return true;
    if (model.functions.some((f) => f.parent === i && f.name === name)) return true;
  }
  return false;
}

/**
 * A module-level name bound once to a library function through `functools.partial`, a lambda
 * that only calls it, or a plain alias: a bare call of the name calls that function
 * (`post_to_chat(json=...)` is `requests.post`), unless the calling function rebinds the name.
 * Only functions of the libraries the blocking catalogue names (`BLOCKING_MODULES`), never a
 * repo function, whose parameters a partial would shift.
 */
function resolveModuleAliases(model: FileModel): void {
  const aliases = new Map<string, string | null>();
  for (const m of model.source.matchAll(MODULE_ALIAS)) {
    const name = m[1]!;
    const target = m[2] ?? m[3] ?? m[4]!;
    if (aliases.has(name)) {
      aliases.set(name, null);
      continue;
    }
    const head = target.split('.')[0]!;
    const imported = model.imports.get(head);
    // `import requests` binds the module itself; `partial(post, ...)` after `from requests import post` names a function.
    const ok = target.includes('.') ? imported === head || (imported !== undefined && !imported.includes('.')) : imported !== undefined && imported.includes('.');
    const resolved = ok && !model.functions.some((f) => f.parent < 0 && !f.className && f.name === name) ? resolveName(model, target) : null;
    aliases.set(name, resolved && BLOCKING_MODULES.test(resolved) ? resolved : null);
  }
  for (const call of model.calls) {
    if (call.qualifiedName !== `${model.moduleName}.${call.calleeText}` && call.qualifiedName !== null) continue;
    const target = aliases.get(call.calleeText);
    if (!target) continue;
    // The name rebound in the calling function (a parameter, a local, a nested def) is not the module's.
    if (call.functionIndex >= 0 && boundInFunction(model, call.calleeText, call.functionIndex)) continue;
    call.qualifiedName = target;
  }
}

/**
 * The classes of this file that are class-based views: deriving from a library's view base, from
 * a view class of the project (`projectViews`, qualified names that discovery found: redash's
 * `BaseResource(Resource)` in another module) or from a view class of this file.
 */
export function classViews(model: FileModel, projectViews: ReadonlySet<string> | null): Set<string> {
  const views = new Set<string>();
  // Bases in source order: a subclass of a view class of this file is a view too.
  for (const c of model.classes) {
    const name = c.childForFieldName('name')?.text;
    const bases = c.childForFieldName('superclasses')?.namedChildren ?? [];
    const isView = (b: SyntaxNode) => {
      if (!/^[A-Za-z_][\w.]*$/.test(b.text)) return false;
      if (views.has(b.text)) return true;
      const q = resolveName(model, b.text) ?? '';
      return VIEW_BASE.test(q) || (projectViews?.has(q) ?? false);
    };
    // Or a view the project's closure found (its base re-exported by a package, say).
    if (name && (bases.some(isView) || (bases.length > 0 && (projectViews?.has(`${model.moduleName}.${name}`) ?? false)))) views.add(name);
  }
  return views;
}

/** Marks the request methods of classes deriving from the project's view classes (see {@link classViews}) as handlers. */
export function markProjectViews(model: FileModel, projectViews: ReadonlySet<string>): void {
  if (model.classes.length) collectClassViews(model, projectViews);
}

/** Class-based views of the libraries: aiohttp's `web.View`, Flask's `MethodView`, Starlette's `HTTPEndpoint`. */
const VIEW_BASE = /^(aiohttp\.web(_urldispatcher)?\.View|flask\.views\.MethodView|starlette\.endpoints\.HTTPEndpoint|flask_restful\.Resource|flask_restx\.Resource|flask_smorest\.MethodView)$/;
const VIEW_BASE_HINT = /\b(View|MethodView|HTTPEndpoint|Resource)\b/;
/** The methods such a view dispatches a request to. */
const VIEW_METHODS = new Set(['get', 'post', 'put', 'patch', 'delete', 'head', 'options']);

/**
 * The request methods (`async def get(self)`) of a class of this file that derives from a
 * library's class-based view, directly or through a class of this file: handlers of that route
 * kind (aiohttp's `app.router.add_view(path, Feed)` or `web.view(...)` registers the class).
 */
function collectClassViews(model: FileModel, projectViews: ReadonlySet<string> | null): void {
  const views = classViews(model, projectViews);
  if (!views.size) return;
  for (const fn of model.functions) {
    if (fn.parent >= 0 || !fn.className || !views.has(fn.className) || !VIEW_METHODS.has(fn.name) || fn.role === 'handler') continue;
    fn.role = 'handler';
    fn.routeKind = fn.name;
  }
}

/** A CLI command decorator: `click.command`, `cli.command()`, `app.cli.command`, typer's `app.command()`, click groups. */
const CLI_DECORATOR = /(^|\.)command$|^(click|typer|flask\.cli|asyncclick)\.(group|command)$/;
/** Chat-bot frameworks whose `command` decorators register message handlers, not CLI commands. */
const CHAT_BOTS = /^(discord|nextcord|disnake|interactions|hikari|lightbulb|slack_bolt|aiogram|pyrogram|telegram)(\.|$)/;
/**
 * Does the module's `if __name__ == "__main__":` block call a function the module defines at top
 * level (`main()`, `seed(...)`)? Then a module under `tasks/` is a program run by hand, not a
 * job module (a worker module's block starts the worker of a library instead).
 */
function runsOwnFunctionAsMain(source: string): boolean {
  const at = mainBlock(source);
  if (!at) return false;
  const block = source.slice(at.start, at.end);
  for (const m of source.matchAll(/^(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)/gm)) {
    if (new RegExp(`(^|[^\\w.])${m[1]}\\s*\\(`).test(block)) return true;
  }
  return false;
}

/**
 * Where the module's `if __name__ == "__main__":` block is: from the end of its header to the next
 * line that starts at column 0 with code. Null when there is none.
 */
function mainBlock(source: string): { start: number; end: number } | null {
  if (!source.includes('__main__')) return null;
  const guard = MAIN_GUARD.exec(source);
  if (!guard) return null;
  const start = guard.index + guard[0].length;
  const next = /\n(?=[^\s#])/g;
  next.lastIndex = start;
  return { start, end: next.exec(source)?.index ?? source.length };
}

const MAIN_GUARD = /^if[ \t]+(?:__name__[ \t]*==[ \t]*(['"])__main__\1|(['"])__main__\2[ \t]*==[ \t]*__name__)[ \t]*:/m;
/** `on_startup=[f, g]`, `on_shutdown=[...]` (Starlette, Litestar), `lifespan=f`, `add_event_handler("startup", f)`. */
const STARTUP_REFS = /\b(?:on_startup|on_shutdown)[ \t]*=[ \t]*[[(]([^\])]*)[\])]|\blifespan[ \t]*=[ \t]*([A-Za-z_][\w.]*)|\badd_event_handler\([ \t]*(['"])(?:startup|shutdown)\3[ \t]*,[ \t]*([A-Za-z_][\w.]*)/g;

/**
 * SQLAlchemy's schema events (`listen(metadata, "before_create", f)`, `@listens_for(table,
 * "after_create")`): they run when `create_all()`/`drop_all()` builds or drops the schema, at
 * setup, never per request.
 */
const DDL_EVENT = /(['"])(?:before|after)_(?:create|drop)\1/;
const DDL_LISTEN = /\blisten\([ \t]*[^,()]+(?:\([^()]*\))?[ \t]*,[ \t]*(['"])(?:before|after)_(?:create|drop)\1[ \t]*,[ \t]*([A-Za-z_][\w.]*)/g;

/**
 * Alembic's ways to change the schema from code: its commands, or operations on a migration
 * context. Not `MigrationContext.configure` or `ScriptDirectory.from_config` alone: a health
 * check reads the current revision with them.
 */
const ALEMBIC_RUNNER = /^alembic\.(command\.(upgrade|downgrade|stamp)|operations\.(base\.)?Operations)$/;

/**
 * A function that only a command line reaches: one handed the parsed command line (a parameter
 * annotated `argparse.Namespace`, or cliff's `parsed_args`: `Command.take_action(self,
 * parsed_args)` and the hooks a project's base command calls with it), or Django's
 * `BaseCommand.handle(self, *args, **options)` in a class that also declares `add_arguments`.
 */
function commandClassMethod(model: FileModel, fn: FunctionInfo): boolean {
  if (fn.params.some((p) => p.name === 'parsed_args' || p.annotation === 'argparse.Namespace' || (p.annotation === 'Namespace' && model.imports.get('Namespace') === 'argparse.Namespace'))) return true;
  if (fn.className && fn.name === 'handle') return model.functions.some((f) => f.className === fn.className && f.name === 'add_arguments');
  return false;
}

/**
 * A chat bot's command decorator (`@bot.command()` on a discord.py `commands.Bot`, discord's
 * `@commands.command()`, Slack Bolt's `@app.command("/x")`): its commands answer users on the
 * bot's running loop — requests, not a command line. Known by what the decorator's object is: a
 * chat framework's module, or a module-level name made by one of its classes.
 */
function chatBotCommand(model: FileModel, decorator: string): boolean {
  if (CHAT_BOTS.test(decorator)) return true;
  // A name of this module comes qualified with it (`app.bot.command` in `app.py`).
  const local = decorator.startsWith(`${model.moduleName}.`) ? decorator.slice(model.moduleName.length + 1) : decorator;
  const head = local.split('.')[0]!;
  if (head === local) return false;
  const imported = model.imports.get(head);
  if (imported !== undefined) return CHAT_BOTS.test(imported);
  const made = assignmentsTo(model, head).filter((a) => a.functionIndex < 0);
  const value = made.length === 1 ? made[0]!.value : null;
  const callee = value?.type === 'call' ? value.childForFieldName('function')?.text ?? '' : '';
  return !!callee && CHAT_BOTS.test(resolveName(model, callee) ?? '');
}

/** A `__main__` block that starts a server: what it builds serves the requests. */
const SERVER_START = /\b(?:uvicorn|hypercorn|waitress|gunicorn|web|socketio|app|application|server)\.(?:run|serve|run_app|serve_forever)\s*\(|\brun_app\s*\(|\bserve_forever\s*\(/;
/** Module-level calls that only a program run by hand makes: it exits, or reads its command line. */
const SCRIPT_CALL = /^(?:builtins\.)?(?:exit|quit)$|^sys\.exit$|^os\._exit$|\.parse_args$|^argparse\.ArgumentParser\.parse_args$/;

/**
 * Is the module a script, its module-level code run once as a program (a wait-for-database check,
 * a report run by hand)? When module-level code outside any function exits the process
 * (`exit(0)`, `sys.exit(1)`) or parses the command line (`parser.parse_args()`): no server imports
 * such a module. Why, or null.
 */
function scriptModule(model: FileModel): string | null {
  if (model.isTestFile) return null;
  const main = mainBlock(model.source);
  for (const call of model.calls) {
    if (call.functionIndex >= 0 || (main && call.node.startIndex >= main.start && call.node.startIndex < main.end)) continue;
    const name = call.qualifiedName ?? call.calleeText;
    if (SCRIPT_CALL.test(name) || (call.method === 'parse_args' && call.receiver)) {
      return `a script: its module-level code ${call.method === 'parse_args' ? 'parses the command line' : 'exits the process'} (\`${call.calleeText}()\` at line ${call.line}), so it runs as a program, once`;
    }
  }
  return null;
}

/** See {@link FileModel.entryPoints}. */
function collectEntryPoints(model: FileModel): void {
  const out = model.entryPoints;
  const seen = new Set<string>();
  const add = (kind: EntryPoint['kind'], name: string) => {
    const key = `${kind}:${name}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ kind, name });
  };
  const qualify = (fn: FunctionInfo) => `${model.moduleName}.${fn.qualifiedName}`;
  for (const fn of model.functions) {
    if (fn.decoratorNames.some((d) => CLI_DECORATOR.test(d) && !chatBotCommand(model, d)) || commandClassMethod(model, fn)) add('cli', qualify(fn));
    else if (fn.decoratorNames.some((d) => /(^|\.)on_event$/.test(d))) add('startup', qualify(fn));
    else if (fn.decorators.some((d) => /listens_for\(/.test(d) && DDL_EVENT.test(d))) add('startup', qualify(fn));
    else if (fn.parent < 0 && !fn.className && (fn.name === 'main' || fn.name === 'lifespan')) add(fn.name === 'main' ? 'cli' : 'startup', qualify(fn));
  }
  // A function that runs migrations itself: Alembic's command API or its migration context.
  if (model.source.includes('alembic')) {
    for (const call of model.calls) {
      if (call.functionIndex >= 0 && call.qualifiedName && ALEMBIC_RUNNER.test(call.qualifiedName)) add('migrate', qualify(model.functions[call.functionIndex]!));
    }
  }
  const source = model.source;
  const main = mainBlock(source);
  if (main) {
    for (const call of model.calls) {
      if (call.functionIndex >= 0 || call.node.startIndex < main.start || call.node.startIndex >= main.end) continue;
      if (call.qualifiedName && !call.qualifiedName.startsWith('builtins.')) add('main', call.qualifiedName);
    }
    // What the block itself runs (an engine it makes), unless it starts a server that serves with it.
    if (!SERVER_START.test(source.slice(main.start, main.end))) {
      model.scriptCode.push([model.lineOf(main.start) + 1, model.lineOf(main.end) + 1, 'module-level code under `if __name__ == "__main__":`: runs once, when the module is run as a program']);
    }
  }
  const script = scriptModule(model);
  if (script) {
    model.scriptCode.push([1, model.lineOf(source.length) + 1, script]);
    for (const call of model.calls) {
      if (call.functionIndex >= 0 || (main && call.node.startIndex >= main.start && call.node.startIndex < main.end)) continue;
      if (call.qualifiedName && !call.qualifiedName.startsWith('builtins.')) add('script', call.qualifiedName);
    }
  }
  if (source.includes('listen(') && /_(?:create|drop)['"]/.test(source)) {
    DDL_LISTEN.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = DDL_LISTEN.exec(source))) add('startup', resolveName(model, m[2]!) ?? `${model.moduleName}.${m[2]}`);
  }
  if (/on_startup|on_shutdown|lifespan|add_event_handler/.test(source)) {
    STARTUP_REFS.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = STARTUP_REFS.exec(source))) {
      const names = m[1] !== undefined ? m[1].split(',') : [m[2] ?? m[4] ?? ''];
      for (const raw of names) {
        const name = raw.trim();
        if (!DOTTED.test(name)) continue;
        add('startup', resolveName(model, name) ?? `${model.moduleName}.${name}`);
      }
    }
  }
}

function computeLineStarts(source: string): number[] {
  const starts = [0];
  let i = -1;
  while ((i = source.indexOf('\n', i + 1)) !== -1) starts.push(i + 1);
  return starts;
}

/** 0-based line of an offset. */
function lineOfOffset(lineStarts: number[], offset: number): number {
  let lo = 0;
  let hi = lineStarts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (lineStarts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** No enclosing function or class: a binding here is a module name (also under `if`/`try`). */
function atModuleLevel(stack: Frame[]): boolean {
  for (const f of stack) if (f.kind === 'function' || f.kind === 'class' || f.kind === 'lambda') return false;
  return true;
}

/** `name =` / `name: T =` / `name: T` at an assignment's start. */
const MODULE_TARGET = /([A-Za-z_][A-Za-z0-9_]*)[ \t]*(?:=(?!=)|:)/y;
const CLASS_NAME = /class[ \t]+([A-Za-z_][A-Za-z0-9_]*)(?=[ \t]*[(:[])/y;
const DEF_HEAD = /(async[ \t]+)?def[ \t]+([A-Za-z_][A-Za-z0-9_]*)(?=[ \t]*[([])/y;

/**
 * The decorators written right before a definition at `start`: the batch gives them just
 * before it (nodes inside a decorator come in between). Only whitespace and comments may
 * separate the last one from the `def`; anything else means they belong elsewhere (broken code).
 */
function ownDecorators(source: string, pending: SyntaxNode[], start: number): string[] {
  if (pending.length === 0) return [];
  const last = pending[pending.length - 1]!;
  if (!/^(?:\s|#[^\n]*)*$/.test(source.slice(last.endIndex, start))) return [];
  return pending.map((d) => d.text.replace(/^@\s*/, ''));
}

/** `# noqa`, `# noqa: PA301,PA303`, `# persist-audit: ignore[PA301]` by line, from the text. */
function collectSuppressions(source: string, lineStarts: number[]): Map<number, Set<string>> {
  const out = new Map<number, Set<string>>();
  if (!source.includes('noqa') && !source.includes('persist-audit')) return out;
  const re = /#[^\n]*?(?:\bnoqa\b(?::[ \t]*([A-Z]+[0-9]+(?:[ \t]*,[ \t]*[A-Z]+[0-9]+)*))?|persist-audit:[ \t]*ignore(?:\[([^\]\n]*)\])?)/gi;
  let m: RegExpExecArray | null;
  while ((m = re.exec(source))) {
    const codes = new Set<string>();
    const list = m[1] ?? m[2];
    if (list) for (const c of list.split(',')) codes.add(c.trim().toUpperCase());
    else codes.add('*');
    const line = lineOfOffset(lineStarts, m.index) + 1;
    const existing = out.get(line);
    if (existing) for (const c of codes) existing.add(c);
    else out.set(line, codes);
  }
  return out;
}

function innermostCallable(stack: Frame[]): Frame | undefined {
  for (let i = stack.length - 1; i >= 0; i--) {
    const f = stack[i]!;
    if (f.kind === 'function' || f.kind === 'lambda' || f.kind === 'class') return f;
  }
  return undefined;
}

function currentFunction(stack: Frame[]): number {
  for (let i = stack.length - 1; i >= 0; i--) {
    const f = stack[i]!;
    if (f.kind === 'function') return f.index;
  }
  return -1;
}

function currentClass(stack: Frame[]): string | null {
  // The class directly enclosing the innermost definition, not crossing a function.
  for (let i = stack.length - 1; i >= 0; i--) {
    const f = stack[i]!;
    if (f.kind === 'class') return f.name ?? null;
    if (f.kind === 'function') return null;
  }
  return null;
}

/**
 * `src.app.db` → `app.db`: a tree's top-level `src/` (and `lib/`) is left out of module names
 * (`moduleNameOf`), for the src layout where `src/` is only a source root; a project whose
 * `src/` is itself a package imports through it (`from src.common.passwords import ...`), and
 * those imports name the same modules.
 */
const TOP_SOURCE_DIR = /^(src|lib)\.(?=\w)/;

function collectImport(model: FileModel, node: SyntaxNode, isFrom: boolean, prefix: ImportPrefix | undefined): void {
  const absolute = (dotted: string) => (prefix && dotted ? prefix(dotted) : dotted).replace(TOP_SOURCE_DIR, '');
  if (!isFrom) {
    for (const child of node.childrenForFieldName('name')) {
      if (child.type === 'aliased_import') {
        const full = child.childForFieldName('name')?.text ?? '';
        const alias = child.childForFieldName('alias')?.text;
        if (alias) model.imports.set(alias, absolute(full));
      } else {
        // `import os.path` binds `os`; qualified lookups keep the full dotted text.
        const full = child.text;
        const head = full.split('.')[0]!;
        if (!model.imports.has(head)) model.imports.set(head, absolute(head));
      }
    }
    return;
  }
  const moduleNode = node.childForFieldName('module_name');
  let mod = moduleNode?.text ?? '';
  if (mod.startsWith('.')) mod = resolveRelative(model.moduleName, mod, model.path);
  else mod = absolute(mod);
  for (const child of node.childrenForFieldName('name')) {
    if (child.type === 'aliased_import') {
      const name = child.childForFieldName('name')?.text ?? '';
      const alias = child.childForFieldName('alias')?.text ?? name;
      model.imports.set(alias, mod ? `${mod}.${name}` : name);
    } else {
      model.imports.set(child.text, mod ? `${mod}.${child.text}` : child.text);
    }
  }
}

/** `from .storage import x` inside `app/api/files.py` → `app.api.storage`. */
function resolveRelative(moduleName: string, rel: string, path: string): string {
  const dots = /^\.+/.exec(rel)![0].length;
  const rest = rel.slice(dots);
  const parts = moduleName.split('.');
  // A package's __init__ is its own package; a module's package is its parent.
  const isInit = /(^|\/)__init__\.pyi?$/.test(path);
  const base = isInit ? parts : parts.slice(0, -1);
  const up = base.slice(0, Math.max(0, base.length - (dots - 1)));
  return [...up, ...(rest ? [rest] : [])].join('.');
}

function stripCall(text: string): string {
  const paren = text.indexOf('(');
  return (paren >= 0 ? text.slice(0, paren) : text).replace(/\s+/g, '');
}

/**
 * Is the module a qualified name starts with one of the tree's (`repoModules`: every directory
 * and module name of its Python files)? A name resolved through an import of a module that is
 * nowhere in the tree (`json.dumps`, `sqlalchemy.select`) can never be a function of the repo.
 */
export function inTreeModule(repoModules: ReadonlySet<string>, qualified: string): boolean {
  const dot = qualified.indexOf('.');
  return repoModules.has(dot < 0 ? qualified : qualified.slice(0, dot));
}

/** Resolves a dotted name through the file's imports and module names, and an unshadowed builtin; null otherwise. */
export function resolveName(model: FileModel, dotted: string): string | null {
  const resolved = resolveImported(model, dotted);
  if (resolved !== null) return resolved;
  return !dotted.includes('.') && BUILTINS.has(dotted) ? `builtins.${dotted}` : null;
}

/** Resolves a dotted name through the file's imports and module-level names only; null otherwise. */
export function resolveImported(model: FileModel, dotted: string): string | null {
  const dot = dotted.indexOf('.');
  const head = dot >= 0 ? dotted.slice(0, dot) : dotted;
  const tail = dot >= 0 ? dotted.slice(dot) : '';
  const imported = model.imports.get(head);
  if (imported !== undefined) return imported + tail;
  if (model.moduleDefs.has(head)) return `${model.moduleName}.${head}${tail}`;
  return null;
}

const DOTTED = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

function resolveCallee(model: FileModel, calleeText: string): string | null {
  if (!DOTTED.test(calleeText)) return null;
  return resolveName(model, calleeText);
}

/**
 * A function definition. Name, async-ness, lines and decorators are read from the text and the
 * batch; parameters, body and return annotation are read from the tree on first use.
 */
class FunctionInfoImpl implements FunctionInfo {
  index: number;
  name: string;
  qualifiedName: string;
  isAsync: boolean;
  parent: number;
  className: string | null;
  decoratorNames: string[] = [];
  role: FunctionRole = 'other';
  routeKind: string | null = null;
  startLine: number;
  endLine: number;
  isGenerator = false;
  yields: SyntaxNode[] = [];
  private paramsValue: ParamInfo[] | undefined;
  private bodyValue: SyntaxNode | null | undefined;
  private returnTypeValue: string | null | undefined;

  /** Offset just past the `(` of the parameter list when the header was read from the text, else -1. */
  private readonly paramsOffset: number;
  private readonly source: string;

  constructor(model: FileModel, readonly node: SyntaxNode, readonly start: number, readonly end: number, parent: number, stack: Frame[], readonly decorators: string[]) {
    DEF_HEAD.lastIndex = start;
    const head = DEF_HEAD.exec(model.source);
    this.source = model.source;
    PARAMS_OPEN.lastIndex = head ? start + head[0].length : 0;
    this.paramsOffset = head && PARAMS_OPEN.test(model.source) ? PARAMS_OPEN.lastIndex : -1;
    this.name = head ? head[2]! : (node.childForFieldName('name')?.text ?? '<anonymous>');
    this.isAsync = head ? head[1] !== undefined : node.child(0)?.type === 'async';
    this.index = model.functions.length;
    this.parent = parent;
    const className = currentClass(stack);
    this.className = className;
    const parentFn = parent >= 0 ? model.functions[parent] : undefined;
    this.qualifiedName = className
      ? parentFn
        ? `${parentFn.qualifiedName}.${className}.${this.name}`
        : `${className}.${this.name}`
      : parentFn
        ? `${parentFn.qualifiedName}.${this.name}`
        : this.name;
    this.startLine = model.lineOf(start) + 1;
    this.endLine = model.lineOf(end) + 1;
  }

  get params(): ParamInfo[] {
    if (this.paramsValue === undefined) {
      this.paramsValue = (this.paramsOffset >= 0 ? paramsFromText(this.source, this.paramsOffset) : null)
        ?? (this.node.childForFieldName('parameters')?.namedChildren ?? []).filter((p) => p.type !== 'comment').map(paramInfo);
    }
    return this.paramsValue;
  }

  get body(): SyntaxNode | null {
    if (this.bodyValue === undefined) this.bodyValue = this.node.childForFieldName('body');
    return this.bodyValue;
  }

  get returnType(): string | null {
    if (this.returnTypeValue === undefined) this.returnTypeValue = this.node.childForFieldName('return_type')?.text ?? null;
    return this.returnTypeValue;
  }
}

/** The `(` of a parameter list right after the name (no type parameters). */
const PARAMS_OPEN = /[ \t]*\(/y;
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const WS = /^[ \t\r\n\f]+|[ \t\r\n\f]+$/g;

/**
 * A parameter list read from the text, from just past its `(`: the same answer as
 * {@link paramInfo} over the tree's parameters, for lists without comments, strings, line
 * continuations or lambdas (null for those, and for anything unexpected: the tree decides).
 */
function paramsFromText(source: string, from: number): ParamInfo[] | null {
  const out: ParamInfo[] = [];
  let depth = 0;
  let segStart = from;
  let colon = -1;
  let equals = -1;
  for (let i = from; i < source.length; i++) {
    const c = source.charCodeAt(i);
    switch (c) {
      case 35: // #
      case 34: // "
      case 39: // '
      case 92: // backslash
        return null;
      case 40: // (
      case 91: // [
      case 123: // {
        depth++;
        break;
      case 93: // ]
      case 125: // }
        depth--;
        break;
      case 41: // )
        if (depth > 0) {
          depth--;
          break;
        }
        if (!pushParam(source, segStart, i, colon, equals, out)) return null;
        return out;
      case 44: // ,
        if (depth === 0) {
          if (!pushParam(source, segStart, i, colon, equals, out)) return null;
          segStart = i + 1;
          colon = -1;
          equals = -1;
        }
        break;
      case 58: // :
        if (depth === 0 && colon < 0 && equals < 0) colon = i;
        break;
      case 61: // =
        if (depth === 0 && equals < 0) equals = i;
        break;
      case 108: // l: `lambda` has a parameter list of its own
        if (source.startsWith('lambda', i)) return null;
        break;
    }
  }
  return null;
}

function pushParam(source: string, start: number, end: number, colon: number, equals: number, out: ParamInfo[]): boolean {
  const trim = (a: number, b: number) => source.slice(a, b).replace(WS, '');
  const whole = trim(start, end);
  if (whole === '') return true; // a trailing comma, or no parameters
  if (whole === '*' || whole === '/') {
    out.push({ name: whole === '*' ? '' : '/', annotation: null, defaultText: null });
    return true;
  }
  const nameEnd = colon >= 0 ? colon : equals >= 0 ? equals : end;
  let name = trim(start, nameEnd);
  const stars = /^\*{1,2}/.exec(name)?.[0].length ?? 0;
  if (stars) {
    if (equals >= 0) return false;
    name = name.slice(stars);
  }
  if (!PARAM_NAME.test(name)) return false;
  const annotation = colon >= 0 ? trim(colon + 1, equals >= 0 ? equals : end) : null;
  const defaultText = equals >= 0 ? trim(equals + 1, end) : null;
  if (annotation === '' || defaultText === '') return false;
  out.push({ name, annotation, defaultText });
  return true;
}

function paramInfo(p: SyntaxNode): ParamInfo {
  switch (p.type) {
    case 'identifier':
      return { name: p.text, annotation: null, defaultText: null };
    case 'typed_parameter':
      return {
        name: p.namedChild(0)?.text.replace(/^\*+\s*/, '') ?? '',
        annotation: p.childForFieldName('type')?.text ?? null,
        defaultText: null,
      };
    case 'default_parameter':
    case 'typed_default_parameter':
      return {
        name: p.childForFieldName('name')?.text ?? '',
        annotation: p.childForFieldName('type')?.text ?? null,
        defaultText: p.childForFieldName('value')?.text ?? null,
      };
    default:
      return { name: p.text.replace(/^\*+\s*/, ''), annotation: null, defaultText: null };
  }
}

/** Text that may register a route without a decorator. */
const IMPERATIVE_HINT = /\.(?:get|post|put|patch|delete|head|options|trace|route|api_route|websocket|websocket_route)\([^()\n]*(?:\([^()\n]*\)[^()\n]*)*\)\(\s*[A-Za-z_]|\.add_(?:api_route|api_websocket_route|websocket_route|route|url_rule|get|post|put|patch|delete|head|view|request_method)\(|Route\(|\bweb\.(?:get|post|put|patch|delete|head|route|view)\(/;
/** Route-registering methods, by name → route kind: FastAPI/Starlette routers and apps, Flask `add_url_rule`, aiohttp's `router.add_get` & co. */
const REGISTER_METHODS: Record<string, string> = {
  add_api_route: 'api_route', add_route: 'route', add_url_rule: 'route', add_view: 'route',
  add_api_websocket_route: 'websocket', add_websocket_route: 'websocket',
  add_get: 'get', add_post: 'post', add_put: 'put', add_patch: 'patch', add_delete: 'delete', add_head: 'head',
  // Pyramid's `config.add_request_method(fn, "db", reify=True)`: `fn` runs for each request that reads `request.db`.
  add_request_method: 'request_method',
};
/** Route objects of the libraries (`Route(path, endpoint)`, aiohttp's `web.get(path, handler)`), by qualified name. */
const ROUTE_CONSTRUCTOR = /^(?:(?:starlette\.routing|fastapi\.routing|fastapi)\.(Route|WebSocketRoute|APIRoute|APIWebSocketRoute)|aiohttp\.web\.(get|post|put|patch|delete|head|route|view))$/;
/** Keywords that name the endpoint of a registration. */
const ENDPOINT_KEYWORDS = new Set(['endpoint', 'view_func', 'handler', 'callable']);

/**
 * Handlers registered by a call rather than a decorator: `router.add_api_route(path, fn)`,
 * `app.add_url_rule(rule, view_func=fn)`, `app.router.add_get(path, fn)`, `Route(path, fn)`,
 * `web.get(path, fn)`. The endpoint must be a function of this file (module level, or defined in
 * the function that registers it); it becomes a handler of that route kind.
 */
function collectImperativeRoutes(model: FileModel): void {
  for (const call of model.calls) {
    let kind: string | undefined;
    if (call.receiver || call.calleeText.includes('.')) kind = REGISTER_METHODS[call.method];
    if (kind === undefined && call.qualifiedName) {
      const m = ROUTE_CONSTRUCTOR.exec(call.qualifiedName);
      if (m) kind = m[1] ? (/WebSocket/.test(m[1]) ? 'websocket' : 'route') : m[2];
    }
    // A route decorator applied by a call: `app.get("/r/{slug}")(serve_recipe)`.
    const applied = call.node.childForFieldName('function');
    if (kind === undefined && applied?.type === 'call') {
      const decorator = applied.childForFieldName('function');
      const method = decorator?.type === 'attribute' ? decorator.childForFieldName('attribute')?.text ?? '' : '';
      // Its first argument a path (`"/..."`): not `handlers.get(kind)(job)`.
      const path = applied.childForFieldName('arguments')?.namedChildren[0];
      if (ROUTE_METHODS.has(method) && path?.type === 'string' && /^[rRfFuU]?['"]\//.test(path.text)) kind = method;
    }
    if (kind === undefined) continue;
    const args = call.node.childForFieldName('arguments')?.namedChildren ?? [];
    let target: SyntaxNode | null = null;
    for (const a of args) {
      if (a.type === 'keyword_argument') {
        if (ENDPOINT_KEYWORDS.has(a.childForFieldName('name')?.text ?? '')) target = a.childForFieldName('value');
      } else if (!target && a.type === 'identifier' && endpointNamed(model, call.functionIndex, a.text)) target = a;
    }
    if (target?.type !== 'identifier') continue;
    const fn = endpointNamed(model, call.functionIndex, target.text);
    if (!fn || fn.role === 'handler') continue;
    fn.role = 'handler';
    fn.routeKind = kind;
  }
}

/** A function of this file named `name` as seen from the function `at` (-1: module level): nested in `at`, or at module level. */
function endpointNamed(model: FileModel, at: number, name: string): FunctionInfo | null {
  return model.functions.find((f) => f.name === name && !f.className && (f.parent === at && at >= 0)) ?? model.functions.find((f) => f.name === name && !f.className && f.parent < 0) ?? null;
}

/**
 * A value that says when a job runs, in a decorator's or a registration's arguments: the
 * `schedule` library's `every(n).hours`, Celery's `crontab(...)`, APScheduler's triggers and its
 * `'interval'`/`'cron'` trigger names, a `cron=`/`interval=`/`run_every=`/`trigger=` keyword.
 */
const SCHEDULE_VALUE = /(?:^|[^\w.]|schedule\.)every\s*\(|\bcrontab\s*\(|\b(?:Cron|Interval|Date)Trigger\s*\(|\b(?:cron|interval|run_every|trigger)\s*=|^\s*['"](?:cron|interval)['"]/;
/** An object named as a scheduler (`scheduler`, `sched`, `cron`, `periodic`, `beat`), or built by a class so named. */
const SCHEDULER_NAME = /^(?:\w+_)?(?:scheduler|schedulers|sched|cron|crons|periodic|beat)$|^(?:\w*[a-z])?(?:Scheduler|Cron|Periodic)$/;
const SCHEDULE_HINT = /\.do\(|\.add_job\(/;

/** Is `name` (an object's name, a module-level one) a scheduler by its name or its constructor (`jobs = BackgroundScheduler()`)? */
function schedulerObject(model: FileModel, name: string): boolean {
  const last = name.slice(name.lastIndexOf('.') + 1);
  if (SCHEDULER_NAME.test(last)) return true;
  if (name.includes('.')) return false;
  const made = assignmentsTo(model, name).filter((a) => a.functionIndex < 0);
  const value = made.length === 1 ? made[0]!.value : null;
  const callee = value?.type === 'call' ? value.childForFieldName('function')?.text ?? '' : '';
  return !!callee && SCHEDULER_NAME.test(callee.slice(callee.lastIndexOf('.') + 1));
}

/**
 * A decorator that registers the function with a periodic runner: a call whose arguments say when
 * (`@scheduler.add(every(1).hours, name="sync")`, `@periodic(crontab(minute=0))`), or a method of
 * a scheduler object (`@sched.register(...)`, `@scheduler.add(...)`; a project's own scheduler that
 * stores the function for its loop). Not a decorator without arguments of any other object.
 */
function scheduledBy(model: FileModel, raw: string): boolean {
  const text = raw.replace(/^@/, '').trim();
  const paren = text.indexOf('(');
  if (paren < 0) return false;
  const args = text.slice(paren + 1, text.lastIndexOf(')'));
  if (SCHEDULE_VALUE.test(args)) return true;
  const callee = text.slice(0, paren);
  const dot = callee.lastIndexOf('.');
  return dot > 0 && schedulerObject(model, callee.slice(0, dot));
}

/**
 * Jobs registered by a call: `schedule.every(10).minutes.do(job)`, APScheduler's
 * `scheduler.add_job(job, "interval", ...)` (`func=` too). The job, a function of this file,
 * becomes a background job.
 */
function collectScheduledJobs(model: FileModel): void {
  for (const call of model.calls) {
    const every = call.method === 'do' && SCHEDULE_VALUE.test(call.calleeText);
    const added = call.method === 'add_job' && (schedulerObject(model, call.calleeText.slice(0, call.calleeText.lastIndexOf('.'))) || /^apscheduler\./.test(call.qualifiedName ?? ''));
    if (!every && !added) continue;
    const args = call.node.childForFieldName('arguments')?.namedChildren ?? [];
    let target: SyntaxNode | null = null;
    for (const a of args) {
      if (a.type === 'keyword_argument') {
        if (a.childForFieldName('name')?.text === 'func') target = a.childForFieldName('value');
      } else if (!target) target = a;
    }
    if (target?.type !== 'identifier') continue;
    const fn = endpointNamed(model, call.functionIndex, target.text);
    if (fn && fn.role === 'other') fn.role = 'background';
  }
}

function classifyRole(model: FileModel, fn: FunctionInfo): void {
  for (const [at, d] of fn.decoratorNames.entries()) {
    const parts = d.split('.');
    const last = parts[parts.length - 1]!;
    if (parts.length >= 2 && ROUTE_METHODS.has(last)) {
      // `trace`, `options` and `head` name other decorators too (`@utils.trace` logs a method's
      // calls): a route only when it is called with a path (`@router.trace("/ping")`).
      if (RARE_ROUTE_METHODS.has(last) && !/^[^(]*\(\s*(?:[rbfu]?["']|path\s*=)/i.test(fn.decorators[at] ?? '')) continue;
      fn.role = 'handler';
      fn.routeKind = last;
      return;
    }
    if (PYRAMID_VIEW.test(d)) {
      // Pyramid's `@view_config(route_name=..., request_method='POST')`: a view of a route the
      // configurator declares elsewhere; its method only when one literal names it.
      fn.role = 'handler';
      fn.routeKind = /\brequest_method\s*=\s*["'](\w+)["']/.exec(fn.decorators[at] ?? '')?.[1]?.toLowerCase() ?? 'view';
      return;
    }
    if (TASK_DECORATORS.test(d) || scheduledBy(model, fn.decorators[at] ?? d)) {
      fn.role = 'background';
      return;
    }
    if (/(^|\.)on_event$/.test(d)) {
      fn.role = 'init';
      return;
    }
  }
  if (INIT_NAME.test(fn.name)) fn.role = 'init';
  else if (model.isBackgroundFile) fn.role = 'background';
}

function loopInfo(model: FileModel, node: SyntaxNode, name: string, fnIndex: number): LoopInfo {
  let kind: LoopKind;
  let iterStart = node.startIndex;
  const iterEnd = node.endIndex;
  let iterable: SyntaxNode | null = null;
  let excludeElse = node.endIndex;
  if (name === 'for') {
    kind = node.child(0)?.type === 'async' ? 'async_for' : 'for';
    iterable = node.childForFieldName('right');
    const body = node.childForFieldName('body');
    iterStart = body?.startIndex ?? node.endIndex;
    const alt = node.childForFieldName('alternative');
    if (alt) excludeElse = alt.startIndex;
  } else if (name === 'while') {
    kind = 'while';
    iterStart = node.childForFieldName('condition')?.startIndex ?? node.startIndex;
    const alt = node.childForFieldName('alternative');
    if (alt) excludeElse = alt.startIndex;
  } else {
    kind = 'comprehension';
    // The first clause's iterable is evaluated once; everything else per item.
    const firstFor = node.namedChildren.find((c) => c.type === 'for_in_clause');
    iterable = firstFor?.childForFieldName('right') ?? null;
  }
  const loop: LoopInfo = {
    index: model.loops.length,
    kind,
    node,
    iterStart,
    iterEnd: Math.min(iterEnd, excludeElse),
    iterable,
    functionIndex: fnIndex,
    ...(kind === 'comprehension' && iterable ? { once: [iterable.startIndex, iterable.endIndex] as [number, number] } : {}),
  };
  model.loops.push(loop);
  return loop;
}

/** The comprehension `map(lambda o: body, items)` stands for: `body` runs per item of `items`, bound to the lambda's one parameter. */
function mapLoopInfo(model: FileModel, lambda: SyntaxNode, items: SyntaxNode, fnIndex: number): LoopInfo | null {
  const params = lambda.childForFieldName('parameters');
  const body = lambda.childForFieldName('body');
  if (params?.namedChildCount !== 1 || params.namedChild(0)?.type !== 'identifier' || !body) return null;
  const loop: LoopInfo = { index: model.loops.length, kind: 'comprehension', node: lambda, iterStart: body.startIndex, iterEnd: lambda.endIndex, iterable: items, functionIndex: fnIndex };
  model.loops.push(loop);
  return loop;
}

/**
 * The pattern a `for` loop or comprehension binds per item (`left` of the statement or of the
 * first `for` clause), or the parameter of the lambda of `map(lambda o: ..., rows)`.
 */
export function loopTargetNode(loop: LoopInfo): SyntaxNode | null {
  if (loop.kind === 'for' || loop.kind === 'async_for') return loop.node.childForFieldName('left');
  if (loop.kind !== 'comprehension') return null;
  if (loop.node.type === 'lambda') return loop.node.childForFieldName('parameters')?.namedChild(0) ?? null;
  return loop.node.namedChildren.find((c) => c.type === 'for_in_clause')?.childForFieldName('left') ?? null;
}

function withInfo(model: FileModel, node: SyntaxNode, fnIndex: number): WithInfo {
  const items: WithItemInfo[] = [];
  const clause = node.namedChildren.find((c) => c.type === 'with_clause');
  for (const item of clause?.namedChildren ?? []) {
    if (item.type !== 'with_item') continue;
    let value = item.childForFieldName('value');
    if (!value) continue;
    let alias: string | null = null;
    if (value.type === 'as_pattern') {
      alias = value.childForFieldName('alias')?.text ?? null;
      value = value.namedChild(0) ?? value;
    }
    items.push({ value, alias });
  }
  const body = node.childForFieldName('body');
  for (const item of items) {
    if (!item.alias || !/^[A-Za-z_]\w*$/.test(item.alias)) continue;
    withAliases(model).push({
      target: item.alias, value: item.value, annotation: null, functionIndex: fnIndex,
      line: node.startPosition.row + 1, node, fromWith: true, loops: [],
    });
  }
  const w: WithInfo = {
    index: model.withs.length,
    isAsync: node.child(0)?.type === 'async',
    node,
    items,
    bodyStart: body?.startIndex ?? node.endIndex,
    bodyEnd: node.endIndex,
    functionIndex: fnIndex,
  };
  model.withs.push(w);
  return w;
}

const WITH_ITEM_STARTS = new WeakMap<FileModel, Map<number, number>>();

/**
 * The calls that are `with` items (`with X() as x`, `async with await f():`): start to end (a
 * call on a call's result, `a().b()`, starts where its receiver does).
 */
function withItemStarts(model: FileModel): Map<number, number> {
  let set = WITH_ITEM_STARTS.get(model);
  if (!set) {
    set = new Map();
    for (const w of model.withs) {
      for (const item of w.items) {
        const v = item.value.type === 'await' ? item.value.namedChild(0) : item.value;
        if (v?.type === 'call') set.set(v.startIndex, v.endIndex);
      }
    }
    WITH_ITEM_STARTS.set(model, set);
  }
  return set;
}

const WITH_ALIASES = new WeakMap<FileModel, AssignmentInfo[]>();

function withAliases(model: FileModel): AssignmentInfo[] {
  let list = WITH_ALIASES.get(model);
  if (!list) WITH_ALIASES.set(model, (list = []));
  return list;
}



interface RawAssignment {
  node: SyntaxNode;
  start: number;
  augmented: boolean;
  functionIndex: number;
  loops: number[];
}

/** `name =` / `a.b =` / `name += ` at an assignment's start: the target and the operator, from the text. */
const PLAIN_TARGET = /([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)[ \t]*(=(?!=)|(?:\*\*|\/\/|>>|<<|[-+*/%&^|@])=)/y;

/** An (augmented) assignment read from the text, whose value node is fetched on first use. */
abstract class LazyValue {
  private valueNode: SyntaxNode | null | undefined;
  constructor(readonly node: SyntaxNode) {}

  get value(): SyntaxNode | null {
    if (this.valueNode === undefined) this.valueNode = this.node.childForFieldName('right');
    return this.valueNode;
  }
}

class LazyAssignment extends LazyValue implements AssignmentInfo {
  readonly annotation = null;
  constructor(node: SyntaxNode, readonly target: string, readonly functionIndex: number, readonly line: number, readonly loops: number[]) {
    super(node);
  }
}

class LazyAugAssignment extends LazyValue implements AugAssignmentInfo {
  constructor(node: SyntaxNode, readonly target: string, readonly operator: string, readonly functionIndex: number, readonly line: number, readonly loops: number[]) {
    super(node);
  }
}

/**
 * Assignments and augmented assignments. Their nodes come with the model's batch (a second
 * walk of the tree costs as much as all of them); their fields are read on first use only. A
 * target written as a plain dotted name followed by `=` or `op=` is read from the text; any
 * other form (annotations, tuples, subscripts, spaces inside the name) asks the tree.
 */
function collectAssignments(model: FileModel, raw: RawAssignment[]): { plain: AssignmentInfo[]; augmented: AugAssignmentInfo[]; subscripts: AugAssignmentInfo[]; unpacked: UnpackedAssignment[] } {
  const plain: AssignmentInfo[] = [...withAliases(model)];
  const augmented: AugAssignmentInfo[] = [];
  const subscripts: AugAssignmentInfo[] = [];
  const unpacked: UnpackedAssignment[] = [];
  const source = model.source;
  for (const { node, start, augmented: isAug, functionIndex, loops } of raw) {
    PLAIN_TARGET.lastIndex = start;
    const m = PLAIN_TARGET.exec(source);
    if (m && (m[2] === '=') === !isAug) {
      const line = model.lineOf(start) + 1;
      if (isAug) augmented.push(new LazyAugAssignment(node, m[1]!, m[2]!, functionIndex, line, loops));
      else plain.push(new LazyAssignment(node, m[1]!, functionIndex, line, loops));
      continue;
    }
    const left = node.childForFieldName('left');
    if (!isAug && left && UNPACKING.has(left.type)) {
      const names: string[] = [];
      patternNames(left, names);
      if (names.length) unpacked.push({ names, value: node.childForFieldName('right'), functionIndex, line: model.lineOf(start) + 1, loops });
      continue;
    }
    if (isAug && left?.type === 'subscript') {
      const operator = node.childForFieldName('operator')?.text ?? node.child(1)?.text ?? '';
      subscripts.push({ target: left.text, operator, value: node.childForFieldName('right'), functionIndex, loops, line: model.lineOf(start) + 1, node });
      continue;
    }
    if (!left || (left.type !== 'identifier' && left.type !== 'attribute')) continue;
    const line = model.lineOf(start) + 1;
    const value = node.childForFieldName('right');
    if (!isAug) {
      const annotation = node.childForFieldName('type')?.text ?? null;
      plain.push({ target: left.text, value, annotation, functionIndex, line, node, loops });
    } else {
      const operator = node.childForFieldName('operator')?.text ?? node.child(1)?.text ?? '';
      augmented.push({ target: left.text, operator, value, functionIndex, loops, line, node });
    }
  }
  plain.sort((x, y) => x.line - y.line);
  return { plain, augmented, subscripts, unpacked };
}

/** Left sides that unpack: `a, b = …`, `(a, b) = …`, `[a, *rest] = …`. */
const UNPACKING = new Set(['pattern_list', 'tuple_pattern', 'list_pattern', 'tuple', 'list']);

/** The plain names a target pattern binds, nested patterns and `*rest` included. */
function patternNames(node: SyntaxNode, out: string[]): void {
  for (const c of node.namedChildren) {
    if (c.type === 'identifier') out.push(c.text);
    else if (c.type === 'list_splat_pattern' || c.type === 'list_splat') {
      const inner = c.namedChild(0);
      if (inner?.type === 'identifier') out.push(inner.text);
    } else if (UNPACKING.has(c.type) || c.type === 'parenthesized_expression') patternNames(c, out);
  }
}

function lazyAssignments(model: FileModel, raw: RawAssignment[]): void {
  let cache: ReturnType<typeof collectAssignments> | null = null;
  const get = () => (cache ??= collectAssignments(model, raw));
  Object.defineProperty(model, 'assignments', { get: () => get().plain, enumerable: true, configurable: true });
  Object.defineProperty(model, 'augAssignments', { get: () => get().augmented, enumerable: true, configurable: true });
  Object.defineProperty(model, 'augSubscripts', { get: () => get().subscripts, enumerable: true, configurable: true });
  Object.defineProperty(model, 'unpackedAssignments', { get: () => get().unpacked, enumerable: true, configurable: true });
}

/** Loops of the innermost function whose per-iteration part contains `start`, innermost last (a class body in a loop runs per iteration). */
/** Does the code starting at `start` run on every iteration of `loop` (not its comprehension's first iterable)? */
function perIteration(loop: LoopInfo, start: number): boolean {
  return start >= loop.iterStart && start < loop.iterEnd && !(loop.once && start >= loop.once[0] && start < loop.once[1]);
}

function loopsAround(model: FileModel, stack: Frame[], start: number): number[] {
  const out: number[] = [];
  for (let i = stack.length - 1; i >= 0; i--) {
    const f = stack[i]!;
    if (f.kind === 'function') break;
    if (f.kind !== 'loop') continue;
    const loop = model.loops[f.index]!;
    if (perIteration(loop, start)) out.unshift(f.index);
  }
  return out;
}

/** Keywords whose lambda value a library calls later: a column's default, a field's factory. */
const DEFERRED_KEYWORDS = new Set(['default', 'onupdate', 'default_factory', 'server_default']);

/**
 * Is the lambda handed out to run later rather than called where it is made: returned (alone or
 * inside the list, tuple, set or dict literal, or the comprehension's element, that is returned),
 * or a column's `default=`-style keyword? A lambda assigned to a name or stored in a local
 * container may still be called in the same function (`f = lambda: ...; f()`): not this.
 */
function storedLambda(node: SyntaxNode): boolean {
  let child: SyntaxNode = node;
  let p = node.parent;
  for (;;) {
    while (p?.type === 'parenthesized_expression') {
      child = p;
      p = p.parent;
    }
    if (!p) return false;
    if (p.type === 'return_statement') return true;
    if (p.type === 'keyword_argument') return DEFERRED_KEYWORDS.has(p.childForFieldName('name')?.text ?? '');
    const container = p.type === 'list' || p.type === 'tuple' || p.type === 'set' || p.type === 'pair' || p.type === 'dictionary' || p.type === 'expression_list'
      // The element a comprehension builds, not its iterable or filter.
      || (/^(list|set|dictionary)_comprehension$|^generator_expression$/.test(p.type) && p.namedChild(0)?.id === child.id);
    if (!container) return false;
    child = p;
    p = p.parent;
  }
}

/** Loops, `with` bodies and offload lambdas around a call, inside its innermost function. */
function attachScopes(model: FileModel, call: CallInfoImpl, stack: Frame[], start: number): void {
  for (let i = stack.length - 1; i >= 0; i--) {
    const f = stack[i]!;
    // A loop outside a nested def does not run the def's body per iteration.
    if (f.kind === 'function' || f.kind === 'class') break;
    if (f.kind === 'lambda' && f.offload) call.offloaded = true;
    if (f.kind === 'lambda' && f.deferred) call.deferred = true;
    if (f.kind === 'loop') {
      const loop = model.loops[f.index]!;
      if (perIteration(loop, start)) call.loops.unshift(f.index);
    } else if (f.kind === 'with') {
      if (start >= model.withs[f.index]!.bodyStart) call.withs.unshift(f.index);
    }
  }
}

const CALLS_BY_START = new WeakMap<FileModel, Map<number, CallInfoImpl[]>>();

/** `items` grouped by `key`, built once per model and kept in `memo`. */
function groupedOnce<K, T>(memo: WeakMap<FileModel, Map<K, T[]>>, model: FileModel, items: readonly T[], key: (t: T) => K): Map<K, T[]> {
  let groups = memo.get(model);
  if (!groups) {
    groups = new Map();
    for (const item of items) {
      const k = key(item);
      const list = groups.get(k);
      if (list) list.push(item);
      else groups.set(k, [item]);
    }
    memo.set(model, groups);
  }
  return groups;
}

const assignmentIndex = new WeakMap<FileModel, Map<string, AssignmentInfo[]>>();

/** Assignments (and `with … as` bindings) to `target`, in source order; indexed once per model. */
/**
 * Names the function binds to a call given `value` as an argument, by position or keyword
 * (`repo = UserRepo(session)`, `svc = Service(db=session)`): objects that may keep it. Each name
 * with the call it was (last) bound to.
 */
export function namesBuiltWith(model: FileModel, fnIndex: number, value: string): Map<string, SyntaxNode> {
  const out = new Map<string, SyntaxNode>();
  for (const a of model.assignments) {
    if (a.functionIndex !== fnIndex || a.value?.type !== 'call' || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
    const args = a.value.childForFieldName('arguments')?.namedChildren ?? [];
    if (args.some((x) => (x.type === 'keyword_argument' ? x.childForFieldName('value') : x)?.text === value)) out.set(a.target, a.value);
  }
  return out;
}

export function assignmentsTo(model: FileModel, target: string): AssignmentInfo[] {
  return groupedOnce(assignmentIndex, model, model.assignments, byTarget).get(target) ?? [];
}

// The grouping keys, made once: an arrow written in the call is a new closure on every call, and
// `assignmentsTo` alone is asked ~150 000 times per pass over ckan (29 MB of closures in the heap
// profile of three passes, 2.4 % of all the bytes the analysis allocated).
const byTarget = (a: { target: string }): string => a.target;
const byFunction = (x: { functionIndex: number }): number => x.functionIndex;

const callsByFunction = new WeakMap<FileModel, Map<number, CallInfo[]>>();

/** `lookup('name')`: a dotted function called with one literal identifier-like string (`get_handler('order_save')`, also a `u'...'` literal). */
export const NAMED_LOOKUP = /^([A-Za-z_][\w.]*)\([uU]?(['"])([A-Za-z_]\w*)\2\)$/;

/**
 * Is the call the lookup of a call of what it returns: `get_handler('x')` in
 * `get_handler('x')(ctx, data)`? Both start at the same position, where the repo phase looks
 * site facts up and finds the outer call: facts of the lookup would be read as the outer call's.
 */
export function isNamedLookupCallee(model: FileModel, call: CallInfo): boolean {
  if (call.emptyArgs) return false;
  // From the text first: a call followed by `(` (most calls are not).
  const end = call.node.endIndex;
  if (model.source[end] !== '(' && !followedByParen(model.source, end)) return false;
  const p = call.node.parent;
  if (p?.type !== 'call' || p.childForFieldName('function')?.id !== call.node.id) return false;
  return NAMED_LOOKUP.test(call.node.text.replace(/\s+/g, ''));
}

/** `(` after `end`, past at most 19 whitespace characters: `/^\s*\(/` on the 20 characters from `end`, without copying them. */
const PAREN_AFTER = /\s{0,19}\(/y;
function followedByParen(source: string, end: number): boolean {
  PAREN_AFTER.lastIndex = end;
  return PAREN_AFTER.test(source);
}

/** Calls of one function's own body (not nested defs), in source order; indexed once per file. */
export function callsOf(model: FileModel, fnIndex: number): CallInfo[] {
  return groupedOnce(callsByFunction, model, model.calls, byFunction).get(fnIndex) ?? [];
}

/**
 * Items grouped by each loop they sit in (an item in nested loops is in each one's list), in
 * source order, once per file. Questions about one loop ("is a row's attribute set in it", "does
 * it write") were asked by scanning every assignment or call of the file, once per loop or per
 * call in a loop: quadratic on a large module.
 */
function byLoopOnce<T extends { loops: readonly number[] }>(memo: WeakMap<FileModel, T[][]>, model: FileModel, items: readonly T[]): T[][] {
  let groups = memo.get(model);
  if (!groups) {
    groups = model.loops.map(() => []);
    for (const item of items) {
      for (const l of item.loops) {
        const list = (groups[l] ??= []);
        if (list[list.length - 1] !== item) list.push(item);
      }
    }
    memo.set(model, groups);
  }
  return groups;
}

const assignmentsByLoop = new WeakMap<FileModel, AssignmentInfo[][]>();
const augAssignmentsByLoop = new WeakMap<FileModel, AugAssignmentInfo[][]>();
const callsByLoop = new WeakMap<FileModel, CallInfo[][]>();

/** The assignments inside loop `loopIndex` (its body and nested loops), in source order; indexed once per file. */
export function assignmentsInLoop(model: FileModel, loopIndex: number): readonly AssignmentInfo[] {
  return byLoopOnce(assignmentsByLoop, model, model.assignments)[loopIndex] ?? [];
}

/** The augmented assignments inside loop `loopIndex`, in source order; indexed once per file. */
export function augAssignmentsInLoop(model: FileModel, loopIndex: number): readonly AugAssignmentInfo[] {
  return byLoopOnce(augAssignmentsByLoop, model, model.augAssignments)[loopIndex] ?? [];
}

/** The calls inside loop `loopIndex`, in source order; indexed once per file. */
export function callsInLoop(model: FileModel, loopIndex: number): readonly CallInfo[] {
  return byLoopOnce(callsByLoop, model, model.calls)[loopIndex] ?? [];
}

const assignmentsByFunction = new WeakMap<FileModel, Map<number, AssignmentInfo[]>>();
const augAssignmentsByFunction = new WeakMap<FileModel, Map<number, AugAssignmentInfo[]>>();

/** Assignments (and `with … as` bindings) of one function's own body, in the model's order; grouped once per file. */
export function assignmentsOf(model: FileModel, fnIndex: number): readonly AssignmentInfo[] {
  return groupedOnce(assignmentsByFunction, model, model.assignments, byFunction).get(fnIndex) ?? [];
}

/** Augmented assignments of one function's own body, in the model's order; grouped once per file. */
export function augAssignmentsOf(model: FileModel, fnIndex: number): readonly AugAssignmentInfo[] {
  return groupedOnce(augAssignmentsByFunction, model, model.augAssignments, byFunction).get(fnIndex) ?? [];
}

const ifsByFunction = new WeakMap<FileModel, Map<number, FileModel['ifs'][number][]>>();

/** The `if` statements of one function (not of the functions nested in it), grouped once per file. */
export function ifsOf(model: FileModel, fnIndex: number): SyntaxNode[] {
  return (groupedOnce(ifsByFunction, model, model.ifs, byFunction).get(fnIndex) ?? []).map((i) => i.node);
}

/** Is the call a method of `name` or of one of its attributes (`name.execute(...)`, `name.x.y()`)? */
export function receiverIs(call: CallInfo, name: string): boolean {
  const r = call.dottedReceiver;
  return r === name || (r !== null && r.startsWith(`${name}.`));
}

/** Does the call act on `name` ({@link receiverIs}) or hand it on as an argument (`load(name, ...)`, `f(db=name)`)? */
export function usesName(call: CallInfo, name: string): boolean {
  if (receiverIs(call, name)) return true;
  const args = call.node.childForFieldName('arguments');
  return !!args && args.namedChildren.some((a) => (a.type === 'keyword_argument' ? a.childForFieldName('value') : a)?.text === name);
}

/** The call whose node is `node`, if any. */
export function callAt(model: FileModel, node: SyntaxNode): CallInfo | undefined {
  let byStart = CALLS_BY_START.get(model);
  if (!byStart) {
    byStart = new Map();
    for (const c of model.calls as CallInfoImpl[]) {
      const list = byStart.get(c.start);
      if (list) list.push(c);
      else byStart.set(c.start, [c]);
    }
    CALLS_BY_START.set(model, byStart);
  }
  const list = byStart.get(node.startIndex);
  if (!list) return undefined;
  if (list.length === 1) return list[0];
  const end = node.endIndex;
  return list.find((c) => c.node.endIndex === end);
}

/**
 * A call site. The callee of a plain dotted call (`a.b.c(...)`) is read from the source; the
 * receiver node and the `await`/`with` context are looked up only when a rule asks.
 */
class CallInfoImpl implements CallInfo {
  private readonly model: FileModel;
  calleeText: string;
  qualifiedName: string | null = null;
  method: string;
  loops: number[] = [];
  withs: number[] = [];
  offloaded = false;
  deferred = false;
  line: number;
  column: number;
  private calleeNode: SyntaxNode | null | undefined;
  private receiverNode: SyntaxNode | null | undefined;
  private parentChecked = false;
  private awaitedValue = false;
  private withItemValue = false;
  private readonly source: string;
  argsOffset = -1;
  readonly memo: CallMemo = { receiverType: undefined, calleeType: undefined, dbOp: undefined, memoised: undefined };
  /** The callee is a plain dotted name (`a.b.c`), so its receiver is known from the text. */
  private readonly dotted: boolean;

  constructor(
    model: FileModel,
    readonly node: SyntaxNode,
    readonly start: number,
    readonly functionIndex: number,
    /** The source when the callee may be read from the text, or null to use the tree. */
    source: string | null,
    /** 0-based line of `start` and that line's start offset. */
    row: number,
    lineStart: number,
    readonly conditionalFrom: number,
  ) {
    this.line = row + 1;
    this.column = start - lineStart + 1;
    let text: string | null = null;
    if (source) {
      SIMPLE_CALLEE.lastIndex = start;
      const m = SIMPLE_CALLEE.exec(source);
      if (m) {
        this.argsOffset = start + m[0].length;
        text = m[1]!;
        if (text.includes(' ') || text.includes('\t')) text = text.replace(/[ \t]+/g, '');
      }
    }
    if (text === null) {
      this.calleeNode = node.childForFieldName('function');
      text = this.calleeNode ? this.calleeNode.text.replace(/\s+/g, '') : '';
      this.method = this.calleeNode?.type === 'attribute' ? (this.calleeNode.childForFieldName('attribute')?.text ?? '') : text;
      this.dotted = DOTTED.test(text);
    } else {
      const dot = text.lastIndexOf('.');
      this.method = dot >= 0 ? text.slice(dot + 1) : text;
      this.dotted = true;
    }
    this.calleeText = text;
    this.source = model.source;
    this.model = model;
  }

  get dottedReceiver(): string | null {
    if (!this.dotted) return null;
    const dot = this.calleeText.lastIndexOf('.');
    return dot > 0 ? this.calleeText.slice(0, dot) : null;
  }

  get hasReceiver(): boolean {
    return this.dotted ? this.calleeText.includes('.') : this.receiver !== null;
  }

  get emptyArgs(): boolean {
    if (this.argsOffset < 0) return false;
    EMPTY_ARGS.lastIndex = this.argsOffset;
    return EMPTY_ARGS.test(this.source);
  }

  get receiver(): SyntaxNode | null {
    // Asked of the same call by many rules and collectors: one tree lookup, one node (whose own
    // answers, type and children, the node keeps).
    if (this.receiverNode === undefined) {
      if (this.calleeNode === undefined) this.calleeNode = this.node.childForFieldName('function');
      this.receiverNode = this.calleeNode?.type === 'attribute' ? this.calleeNode.childForFieldName('object') : null;
    }
    return this.receiverNode;
  }

  get awaited(): boolean {
    // Only a call written right after the keyword can be an `await`'s operand: most calls are
    // settled from the text, without a parent lookup in the tree.
    if (!this.parentChecked && !followsAwait(this.source, this.start)) return false;
    this.checkParent();
    return this.awaitedValue;
  }

  get isWithItem(): boolean {
    // From the model's `with` statements (a parent lookup per call cost more).
    if (!this.parentChecked) return withItemStarts(this.model).get(this.start) === this.node.endIndex;
    return this.withItemValue;
  }

  private checkParent(): void {
    if (this.parentChecked) return;
    this.parentChecked = true;
    const parent = this.node.parent;
    this.awaitedValue = parent?.type === 'await';
    let p: SyntaxNode | null = this.awaitedValue ? parent!.parent : parent;
    if (p?.type === 'as_pattern') p = p.parent;
    this.withItemValue = p?.type === 'with_item';
  }
}

/** Only whitespace before the `)` of an argument list. */
const EMPTY_ARGS = /\s*\)/y;

/** Is the text before `start` (past spaces and line continuations) the keyword `await`? */
function followsAwait(source: string, start: number): boolean {
  let i = start - 1;
  for (;;) {
    const c = source.charCodeAt(i);
    if (c === 32 || c === 9 || c === 12) i--;
    else if (c === 10 && source.charCodeAt(i - 1) === 92) i -= 2;
    else if (c === 10 && source.charCodeAt(i - 1) === 13 && source.charCodeAt(i - 2) === 92) i -= 3;
    else break;
  }
  if (i < 4 || source.slice(i - 4, i + 1) !== 'await') return false;
  const before = i >= 5 ? source.charCodeAt(i - 5) : 32;
  return !(before === 46 || before === 95 || (before >= 48 && before <= 57) || (before >= 65 && before <= 90) || (before >= 97 && before <= 122) || before > 127);
}

function isOffloadCall(call: CallInfo): boolean {
  return isOffloadCallee(call.calleeText);
}

/**
 * Does a call with this callee text run what it is handed in a worker thread (`asyncio.to_thread`,
 * `run_in_threadpool`, `loop.run_in_executor`, `executor.submit`)? Resolution through imports
 * happens later; the plain spellings count as well.
 */
/** The outermost call of the method chain a call starts: `q.filter(...).one()` of `q`'s call. */
export function chainTop(node: SyntaxNode): SyntaxNode {
  let top = node;
  while (top.parent?.type === 'attribute' && top.parent.parent?.type === 'call') top = top.parent.parent;
  return top;
}

export function isOffloadCallee(calleeText: string): boolean {
  return OFFLOAD_METHODS.has(calleeText.slice(calleeText.lastIndexOf('.') + 1)) || OFFLOAD_SPELLINGS.has(calleeText);
}

/** How many leading parameters a caller does not pass: `self`/`cls` of a method, else none. */
export function selfOffset(fn: { className: string | null; params: readonly { name: string }[] }): number {
  return fn.className && /^(self|cls)$/.test(fn.params[0]?.name ?? '') ? 1 : 0;
}

/** The innermost function enclosing a call, or undefined at module level. */
export function functionOf(model: FileModel, index: number): FunctionInfo | undefined {
  return index >= 0 ? model.functions[index] : undefined;
}

/** Is the function (not a nested sync def inside one) a coroutine? */
export function isAsyncContext(model: FileModel, fnIndex: number): boolean {
  return fnIndex >= 0 && model.functions[fnIndex]!.isAsync;
}

/** The nearest enclosing function that has a role other than `other` (a nested def inherits it). */
/**
 * Is `dotted` the project's Flask-SQLAlchemy object (`db`, `app.ext.db`), or, with `attr`, that
 * object's attribute (`db.session`, `db.engine`)? By the last name of the object's path.
 */
export function isFlaskHandle(model: FileModel, dotted: string | null, attr?: string): boolean {
  if (!dotted || !model.flaskDbHandles.size) return false;
  let obj = dotted;
  if (attr !== undefined) {
    if (!dotted.endsWith(`.${attr}`)) return false;
    obj = dotted.slice(0, -attr.length - 1);
  }
  return model.flaskDbHandles.has(obj.slice(obj.lastIndexOf('.') + 1));
}

/**
 * The Flask-SQLAlchemy session a plain name stands for (`db.session` for `db_session`): bound to
 * `<handle>.session` at module level in this file, or imported from a module of the project that
 * binds it so (`from . import db_session`). Null for anything else.
 */
function classBodyAssignment(node: SyntaxNode): boolean {
  for (let p = node.parent; p; p = p.parent) if (p.type === 'class_definition') return true;
  return false;
}

export function flaskSessionAlias(model: FileModel, name: string): string | null {
  if (!model.flaskDbHandles.size || !/^[A-Za-z_]\w*$/.test(name)) return null;
  // Module level only: `session = db.session` in a class body is that class's attribute.
  const own = assignmentsTo(model, name).filter((a) => a.functionIndex < 0 && !classBodyAssignment(a.node));
  if (own.length) {
    const v = own.length === 1 ? own[0]!.value : null;
    const obj = v?.type === 'attribute' && v.childForFieldName('attribute')?.text === 'session' ? v.childForFieldName('object')?.text ?? '' : '';
    return model.flaskDbHandles.has(obj.slice(obj.lastIndexOf('.') + 1)) ? `${obj}.session` : null;
  }
  const q = model.imports.get(name);
  if (!q || !model.flaskSessionAliases.size) return null;
  for (const a of model.flaskSessionAliases) {
    // Either side may carry a package root the other lacks (`src.app.api.x` / `app.api.x`).
    if (a === q || a.endsWith(`.${q}`) || q.endsWith(`.${a}`)) return `${[...model.flaskDbHandles][0]!}.session`;
  }
  return null;
}

export function effectiveRole(model: FileModel, fnIndex: number): FunctionRole {
  let i = fnIndex;
  while (i >= 0) {
    const fn = model.functions[i]!;
    if (fn.role !== 'other') return fn.role;
    i = fn.parent;
  }
  return model.isBackgroundFile ? 'background' : 'other';
}

/**
 * What a local name holds at a point in a function, as far as syntax tells: the qualified name
 * of its annotation, or of the constructor/function whose call was assigned to it last before
 * `beforeLine`. Looks in the function, then its parents, then module level.
 */
export function valueTypeOf(model: FileModel, name: string, fnIndex: number, beforeLine = Infinity): string | null {
  let scope = fnIndex;
  for (;;) {
    let best: AssignmentInfo | null = null;
    for (const a of assignmentsTo(model, name)) {
      if (a.functionIndex !== scope || a.line > beforeLine) continue;
      if (!best || a.line >= best.line) best = a;
    }
    // A parameter, unless the body rebinds it before the line (`f: int = 7` over `f: TextIOWrapper`).
    if (!best && scope >= 0) {
      const fn = model.functions[scope]!;
      const param = fn.params.find((p) => p.name === name);
      if (param?.annotation) return resolveAnnotation(model, param.annotation);
      if (param?.defaultText) {
        const dep = /^Depends\(\s*([A-Za-z_][\w.]*)/.exec(param.defaultText);
        if (dep) return `Depends:${resolveName(model, dep[1]!) ?? dep[1]}`;
      }
      if (param) return null;
    }
    if (best) {
      if (best.annotation) return resolveAnnotation(model, best.annotation);
      let v = best.value;
      if (v?.type === 'await') v = v.namedChild(0);
      if (v?.type === 'call') {
        const callee = v.childForFieldName('function')?.text.replace(/\s+/g, '') ?? '';
        return DOTTED.test(callee) ? (resolveName(model, callee) ?? callee) : callee;
      }
      return null;
    }
    if (scope < 0) return null;
    scope = model.functions[scope]!.parent;
  }
}

function resolveAnnotation(model: FileModel, annotation: string): string {
  const inner = annotationHead(annotation);
  return resolveName(model, inner) ?? inner;
}

/**
 * The class an annotation names: `Annotated[T, …]`, `Optional[T]`, `Union[T, None]`, `T | None`
 * and `None | T` all name `T`; a quoted annotation is read inside its quotes.
 */
export function annotationHead(annotation: string): string {
  let t = annotation.trim().replace(/^["']|["']$/g, '');
  for (let i = 0; i < 3; i++) t = t.replace(/^(typing\.|typing_extensions\.)?(Annotated|Optional|Union)\[\s*/, '');
  const parts = t.split(/\s*[|,]\s*/).map((p) => p.replace(/[\[\]].*$/s, '').trim()).filter((p) => p && p !== 'None');
  return parts[0] ?? '';
}

/**
 * The identifier nodes named `name` inside `node`, in document order: each whole-word occurrence
 * in the node's text, looked up as the node that spans it. Identifiers are the most numerous
 * nodes of a body and a name occurs a few times in it, so this reads far fewer nodes than
 * `descendantsOfType('identifier')`; occurrences in strings and comments are not identifiers.
 */
function identifiersNamed(node: SyntaxNode, name: string): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  const text = node.text;
  if (!/^[A-Za-z_]\w*$/.test(name) || !text.includes(name)) return out;
  const base = node.startIndex;
  // Whole-word occurrences, found with indexOf (what `(?<!\w)name(?!\w)` finds, without trying
  // the pattern at every offset of the text); the next search starts after a match.
  for (let at = text.indexOf(name); at >= 0; ) {
    if (isWordCode(text.charCodeAt(at - 1)) || isWordCode(text.charCodeAt(at + name.length))) {
      at = text.indexOf(name, at + 1);
      continue;
    }
    const id = node.descendantForIndex(base + at, base + at + name.length);
    if (id?.type === 'identifier' && id.text === name) out.push(id);
    at = text.indexOf(name, at + name.length);
  }
  return out;
}

/** Is the UTF-16 code a `\w` character (ASCII letter, digit or `_`)? NaN (outside the text) is not. */
function isWordCode(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

/**
 * The identifiers inside `node` that read or bind the variable `name`: {@link identifiersNamed}
 * without attribute names (`x.name`) and keyword names (`f(name=…)`).
 */
export function variableRefs(node: SyntaxNode, name: string): SyntaxNode[] {
  return identifiersNamed(node, name).filter((id) => {
    const p = id.parent;
    if (p?.type === 'attribute' && p.childForFieldName('attribute')?.id === id.id) return false;
    if (p?.type === 'keyword_argument' && p.childForFieldName('name')?.id === id.id) return false;
    return true;
  });
}

/**
 * Does the function (its own body, not nested defs) declare `global name` (or, with
 * `nonlocal`, `nonlocal name` too)? Read from the statements themselves, so a comment or string
 * that mentions it does not count.
 */
export function declaresGlobal(fn: FunctionInfo, name: string, nonlocal = false): boolean {
  const body = fn.body;
  if (!body || !(body.text.includes('global') || (nonlocal && body.text.includes('nonlocal')))) return false;
  for (const g of body.descendantsOfType(nonlocal ? ['global_statement', 'nonlocal_statement'] : 'global_statement')) {
    let p = g.parent;
    while (p && p.id !== body.id && p.type !== 'function_definition' && p.type !== 'lambda') p = p.parent;
    if (p?.id !== body.id) continue;
    if (g.namedChildren.some((c) => c.type === 'identifier' && c.text === name)) return true;
  }
  return false;
}

/** Text of a node with a length cap, for messages. */
export function snippet(node: SyntaxNode, max = 60): string {
  const t = node.text.replace(/\s+/g, ' ');
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}
