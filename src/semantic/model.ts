/**
 * The semantic model of one Python file: the facts every rule asks about, computed once from
 * the tree. Names are resolved through imports (`from time import sleep as s` makes `s(...)`
 * a call of `time.sleep`), every call knows its enclosing function, loops, `with` scopes and
 * whether it is awaited or handed to a thread, and every function knows its async-ness,
 * decorators and role (handler, background, init).
 *
 * Built from one tree-sitter query whose captures arrive in document order; nesting is
 * derived from byte ranges with a stack, so no JS object is made per syntax node.
 */
import type { CompiledQuery, PythonParser, SyntaxNode } from '../parse/parser.js';

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
  /** Does the body contain `yield` (own body, not nested functions)? */
  isGenerator: boolean;
}

export type LoopKind = 'for' | 'async_for' | 'while' | 'comprehension';

export interface LoopInfo {
  index: number;
  kind: LoopKind;
  node: SyntaxNode;
  /** Byte range evaluated on every iteration. */
  iterStart: number;
  iterEnd: number;
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
  receiver: SyntaxNode | null;
  functionIndex: number;
  /** Enclosing loops whose per-iteration part contains this call, innermost last. */
  loops: number[];
  /** Enclosing `with` statements whose body contains this call, innermost last. */
  withs: number[];
  awaited: boolean;
  /** Runs in a thread: inside a lambda handed to `asyncio.to_thread`, `run_in_executor`, … */
  offloaded: boolean;
  /** The call is itself a `with` item's context expression. */
  isWithItem: boolean;
  line: number;
  column: number;
}

export interface AssignmentInfo {
  target: string;
  value: SyntaxNode | null;
  annotation: string | null;
  functionIndex: number;
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
  withs: WithInfo[];
  assignments: AssignmentInfo[];
  /** 1-based line → `# noqa` / `# persist-audit: ignore[...]` codes; `*` means all. */
  suppressions: Map<number, Set<string>>;
  isTestFile: boolean;
  /** Under `tasks/`, `jobs/`, `workers/`, `cron/`. */
  isBackgroundFile: boolean;
}

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
const OFFLOAD_METHODS = new Set(['run_in_executor', 'submit']);

const ROUTE_METHODS = new Set([
  'get', 'post', 'put', 'patch', 'delete', 'head', 'options', 'trace', 'route', 'api_route',
  'websocket', 'websocket_route',
]);
const TASK_DECORATORS = /(^|\.)(task|shared_task|actor|job|periodic_task|cron|scheduled_job|on_message|consumer)$/;
const INIT_NAME = /(^|_)(init|initialize|initialise|setup|set_up|bootstrap|migrate|migrations?|startup|start_up|lifespan|on_startup|create_tables|seed)(_|$)|^__init__$/i;
const TEST_PATH = /(^|\/)(tests?|testing)\/|(^|\/)test_[^/]*\.py$|_test\.py$|(^|\/)conftest\.py$/;
const BACKGROUND_PATH = /(^|\/)(tasks|jobs|workers|worker|cron)(\/|\.py$)/;

const SEMANTIC_QUERY = `
(function_definition) @function
(class_definition) @class
(call) @call
(for_statement) @for
(while_statement) @while
[(list_comprehension) (set_comprehension) (dictionary_comprehension) (generator_expression)] @comprehension
(with_statement) @with
(lambda) @lambda
(import_statement) @import
(import_from_statement) @import_from
(assignment) @assign
(comment) @comment
`;

const queryCache = new WeakMap<PythonParser, CompiledQuery>();

/** The compiled semantic query for a parser, compiled once per parser (= once per worker). */
export function semanticQuery(parser: PythonParser): CompiledQuery {
  let q = queryCache.get(parser);
  if (!q) {
    q = parser.query(SEMANTIC_QUERY);
    queryCache.set(parser, q);
  }
  return q;
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
  name?: string;
}

/** Builds the semantic model of one parsed file. */
export function buildFileModel(
  path: string,
  source: string,
  root: SyntaxNode,
  query: CompiledQuery,
): FileModel {
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
    withs: [],
    assignments: [],
    suppressions: new Map(),
    isTestFile: TEST_PATH.test(path),
    isBackgroundFile: BACKGROUND_PATH.test(path),
  };

  const captures = query.captures(root);
  // Document order, outer node first when two start at the same byte.
  captures.sort((a, b) => a.node.startIndex - b.node.startIndex || b.node.endIndex - a.node.endIndex);

  const stack: Frame[] = [];
  const offloadLambdas = new Set<number>();
  const pendingCalls: { call: CallInfo; fnFrame: number }[] = [];

  for (const { name, node } of captures) {
    const start = node.startIndex;
    while (stack.length && stack[stack.length - 1]!.end <= start) stack.pop();
    const fnIndex = currentFunction(stack);

    switch (name) {
      case 'comment':
        collectSuppression(model, node);
        break;
      case 'import':
      case 'import_from':
        collectImport(model, node, name === 'import_from');
        break;
      case 'function': {
        const info = functionInfo(model, node, fnIndex, stack);
        model.functions.push(info);
        if (fnIndex < 0 && !currentClass(stack)) model.moduleDefs.add(info.name);
        stack.push({ kind: 'function', end: node.endIndex, index: info.index, name: info.name });
        break;
      }
      case 'class': {
        const nameNode = node.childForFieldName('name');
        const cname = nameNode?.text ?? '';
        if (fnIndex < 0 && !currentClass(stack)) model.moduleDefs.add(cname);
        stack.push({ kind: 'class', end: node.endIndex, index: -1, name: cname });
        break;
      }
      case 'for':
      case 'while':
      case 'comprehension': {
        const loop = loopInfo(model, node, name, fnIndex);
        stack.push({ kind: 'loop', end: node.endIndex, index: loop.index });
        break;
      }
      case 'with': {
        const w = withInfo(model, node, fnIndex);
        stack.push({ kind: 'with', end: node.endIndex, index: w.index });
        break;
      }
      case 'lambda':
        stack.push({ kind: 'lambda', end: node.endIndex, index: -1, offload: offloadLambdas.has(node.id) });
        break;
      case 'assign':
        collectAssignment(model, node, fnIndex, stack);
        break;
      case 'call': {
        const call = callInfo(model, node, fnIndex, stack);
        model.calls.push(call);
        pendingCalls.push({ call, fnFrame: fnIndex });
        if (isOffloadCall(call)) {
          for (const arg of node.childForFieldName('arguments')?.namedChildren ?? []) {
            const value = arg.type === 'keyword_argument' ? arg.childForFieldName('value') : arg;
            if (value?.type === 'lambda') offloadLambdas.add(value.id);
          }
        }
        break;
      }
    }
  }

  // Imports may follow their first use in the file (inside functions, or late imports);
  // resolve qualified names once all imports are known.
  for (const { call } of pendingCalls) call.qualifiedName = resolveCallee(model, call.calleeText);
  for (const fn of model.functions) {
    fn.decoratorNames = fn.decorators.map((d) => resolveName(model, stripCall(d)) ?? stripCall(d));
    classifyRole(model, fn);
  }
  return model;
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

function collectSuppression(model: FileModel, node: SyntaxNode): void {
  const text = node.text;
  let codes: Set<string> | null = null;
  const noqa = /#\s*noqa(?::\s*([A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*))?/i.exec(text);
  if (noqa) {
    codes = new Set(noqa[1] ? noqa[1].split(',').map((c) => c.trim().toUpperCase()) : ['*']);
  }
  const ignore = /persist-audit:\s*ignore(?:\[([^\]]*)\])?/i.exec(text);
  if (ignore) {
    codes ??= new Set();
    if (ignore[1]) for (const c of ignore[1].split(',')) codes.add(c.trim().toUpperCase());
    else codes.add('*');
  }
  if (!codes) return;
  const line = node.startPosition.row + 1;
  const existing = model.suppressions.get(line);
  if (existing) for (const c of codes) existing.add(c);
  else model.suppressions.set(line, codes);
}

function collectImport(model: FileModel, node: SyntaxNode, isFrom: boolean): void {
  if (!isFrom) {
    for (const child of node.childrenForFieldName('name')) {
      if (child.type === 'aliased_import') {
        const full = child.childForFieldName('name')?.text ?? '';
        const alias = child.childForFieldName('alias')?.text;
        if (alias) model.imports.set(alias, full);
      } else {
        // `import os.path` binds `os`; qualified lookups keep the full dotted text.
        const full = child.text;
        const head = full.split('.')[0]!;
        if (!model.imports.has(head)) model.imports.set(head, head);
      }
    }
    return;
  }
  const moduleNode = node.childForFieldName('module_name');
  let mod = moduleNode?.text ?? '';
  if (mod.startsWith('.')) mod = resolveRelative(model.moduleName, mod, model.path);
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

/** Resolves a dotted name through the file's imports; null when the head is not imported. */
export function resolveName(model: FileModel, dotted: string): string | null {
  const dot = dotted.indexOf('.');
  const head = dot >= 0 ? dotted.slice(0, dot) : dotted;
  const tail = dot >= 0 ? dotted.slice(dot) : '';
  const imported = model.imports.get(head);
  if (imported !== undefined) return imported + tail;
  if (model.moduleDefs.has(head)) return `${model.moduleName}.${head}${tail}`;
  if (!tail && BUILTINS.has(head)) return `builtins.${head}`;
  return null;
}

const DOTTED = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

function resolveCallee(model: FileModel, calleeText: string): string | null {
  if (!DOTTED.test(calleeText)) return null;
  return resolveName(model, calleeText);
}

function functionInfo(model: FileModel, node: SyntaxNode, parent: number, stack: Frame[]): FunctionInfo {
  const name = node.childForFieldName('name')?.text ?? '<anonymous>';
  const className = currentClass(stack);
  const parentFn = parent >= 0 ? model.functions[parent] : undefined;
  const qualifiedName = className
    ? parentFn
      ? `${parentFn.qualifiedName}.${className}.${name}`
      : `${className}.${name}`
    : parentFn
      ? `${parentFn.qualifiedName}.${name}`
      : name;
  const decorators: string[] = [];
  const decorated = node.parent;
  if (decorated?.type === 'decorated_definition') {
    for (const child of decorated.namedChildren) {
      if (child.type === 'decorator') decorators.push(child.text.replace(/^@\s*/, ''));
    }
  }
  const params: ParamInfo[] = [];
  for (const p of node.childForFieldName('parameters')?.namedChildren ?? []) {
    params.push(paramInfo(p));
  }
  const body = node.childForFieldName('body');
  const returnType = node.childForFieldName('return_type')?.text ?? null;
  return {
    index: model.functions.length,
    name,
    qualifiedName,
    isAsync: node.child(0)?.type === 'async',
    parent,
    className,
    decorators,
    decoratorNames: [],
    role: 'other',
    routeKind: null,
    params,
    returnType,
    node,
    body,
    startLine: node.startPosition.row + 1,
    endLine: node.endPosition.row + 1,
    isGenerator: body ? ownBodyYields(body) : false,
  };
}

function ownBodyYields(body: SyntaxNode): boolean {
  for (const y of body.descendantsOfType('yield')) {
    let p = y.parent;
    while (p && p.id !== body.id && p.type !== 'function_definition' && p.type !== 'lambda') p = p.parent;
    if (p && p.id === body.id) return true;
  }
  return false;
}

function paramInfo(p: SyntaxNode): ParamInfo {
  switch (p.type) {
    case 'identifier':
      return { name: p.text, annotation: null, defaultText: null };
    case 'typed_parameter':
      return {
        name: p.namedChild(0)?.text.replace(/^\*+/, '') ?? '',
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
      return { name: p.text.replace(/^\*+/, ''), annotation: null, defaultText: null };
  }
}

function classifyRole(model: FileModel, fn: FunctionInfo): void {
  for (const d of fn.decoratorNames) {
    const parts = d.split('.');
    const last = parts[parts.length - 1]!;
    if (parts.length >= 2 && ROUTE_METHODS.has(last)) {
      fn.role = 'handler';
      fn.routeKind = last;
      return;
    }
    if (TASK_DECORATORS.test(d)) {
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
  };
  model.loops.push(loop);
  return loop;
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

function collectAssignment(model: FileModel, node: SyntaxNode, fnIndex: number, stack: Frame[]): void {
  const left = node.childForFieldName('left');
  if (!left) return;
  const value = node.childForFieldName('right');
  const annotation = node.childForFieldName('type')?.text ?? null;
  const targets = left.type === 'identifier' || left.type === 'attribute' ? [left.text] : [];
  for (const target of targets) {
    model.assignments.push({ target, value, annotation, functionIndex: fnIndex, line: node.startPosition.row + 1, node });
    if (fnIndex < 0 && !currentClass(stack) && left.type === 'identifier') model.moduleDefs.add(target);
  }
}

function callInfo(model: FileModel, node: SyntaxNode, fnIndex: number, stack: Frame[]): CallInfo {
  const fn = node.childForFieldName('function');
  const calleeText = fn ? fn.text.replace(/\s+/g, '') : '';
  let method = calleeText;
  let receiver: SyntaxNode | null = null;
  if (fn?.type === 'attribute') {
    method = fn.childForFieldName('attribute')?.text ?? '';
    receiver = fn.childForFieldName('object');
  }
  const loops: number[] = [];
  const withs: number[] = [];
  let offloaded = false;
  const start = node.startIndex;
  // Only frames inside the innermost function count: a loop outside a nested def does not
  // run the def's body per iteration.
  for (let i = stack.length - 1; i >= 0; i--) {
    const f = stack[i]!;
    if (f.kind === 'function' || f.kind === 'class') break;
    if (f.kind === 'lambda' && f.offload) offloaded = true;
    if (f.kind === 'loop') {
      const loop = model.loops[f.index]!;
      if (start >= loop.iterStart && start < loop.iterEnd) loops.unshift(f.index);
    } else if (f.kind === 'with') {
      const w = model.withs[f.index]!;
      if (start >= w.bodyStart) withs.unshift(f.index);
    }
  }
  const parent = node.parent;
  const awaited = parent?.type === 'await';
  let isWithItem = false;
  let p: SyntaxNode | null = awaited ? parent!.parent : parent;
  if (p?.type === 'as_pattern') p = p.parent;
  if (p?.type === 'with_item') isWithItem = true;
  return {
    node,
    calleeText,
    qualifiedName: null,
    method,
    receiver,
    functionIndex: fnIndex,
    loops,
    withs,
    awaited,
    offloaded,
    isWithItem,
    line: node.startPosition.row + 1,
    column: node.startPosition.column + 1,
  };
}

function isOffloadCall(call: CallInfo): boolean {
  // Resolution through imports happens later; accept the plain spellings here as well.
  const t = call.calleeText;
  if (OFFLOAD_METHODS.has(call.method)) return true;
  if (t === 'to_thread' || t === 'run_in_threadpool' || t === 'run_sync' || t === 'sync_to_async') return true;
  for (const q of OFFLOAD_FUNCTIONS) if (q.endsWith('.' + t) || q === t) return true;
  return false;
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
    if (scope >= 0) {
      const fn = model.functions[scope]!;
      const param = fn.params.find((p) => p.name === name);
      if (param?.annotation) return resolveAnnotation(model, param.annotation);
      if (param?.defaultText) {
        const dep = /^Depends\(\s*([A-Za-z_][\w.]*)/.exec(param.defaultText);
        if (dep) return `Depends:${resolveName(model, dep[1]!) ?? dep[1]}`;
      }
    }
    let best: AssignmentInfo | null = null;
    for (const a of model.assignments) {
      if (a.functionIndex !== scope || a.target !== name || a.line > beforeLine) continue;
      if (!best || a.line >= best.line) best = a;
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
  const inner = annotation.replace(/^Annotated\[\s*/, '').replace(/^Optional\[\s*/, '').replace(/[\[,|].*$/s, '').trim();
  return resolveName(model, inner) ?? inner;
}

/** Text of a node with a length cap, for messages. */
export function snippet(node: SyntaxNode, max = 60): string {
  const t = node.text.replace(/\s+/g, ' ');
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}
