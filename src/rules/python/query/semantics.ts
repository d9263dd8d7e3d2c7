/**
 * Facts the query-efficiency rules need on top of the shared semantic model: what a loop binds
 * per iteration, whether its iterable is a small literal, whether it polls, and small syntax
 * helpers. Everything starts from the model's calls, loops and assignments; the few tree reads
 * happen on candidate nodes only (a call already known to be a DB call, a loop around it).
 *
 * Candidates for the shared layer: `perIterationNames`, `literalSize`, `unwrap`, `positionalArgs`.
 */
import { insideNestedFunction } from '../../../semantic/controlFlow.js';
import { GROWS, grownIn, iterationSource, returnsSmallLiteral, SMALL_BOUND, smallLiteral } from '../../../semantic/smallLiterals.js';
import type { SyntaxNode } from '../../../parse/parser.js';
import type { AssignmentInfo, CallInfo, FileModel, LoopInfo } from '../../../semantic/model.js';
import { assignmentsInLoop, assignmentsTo, augAssignmentsInLoop, callsOf, loopTargetNode, variableRefs } from '../../../semantic/model.js';
import { nameThen } from '../../../semantic/codeText.js';
import { operands } from '../../../semantic/guards.js';

/** Strips `await`, parentheses and `list(...)`-free wrappers that do not change the value. */
export function unwrap(node: SyntaxNode | null): SyntaxNode | null {
  let n = node;
  while (n && (n.type === 'await' || n.type === 'parenthesized_expression')) n = n.namedChild(0);
  return n;
}

type CallArgs = { positional: SyntaxNode[]; keywords: Map<string, SyntaxNode> };

/** A model's call nodes are kept, so several rules asking about one call share the answer. */
const argsMemo = new WeakMap<SyntaxNode, CallArgs>();

/** The argument nodes of a call: positional ones in order and keyword ones by name. */
export function callArgs(call: SyntaxNode): CallArgs {
  let args = argsMemo.get(call);
  if (!args) argsMemo.set(call, (args = readCallArgs(call)));
  return args;
}

function readCallArgs(call: SyntaxNode): CallArgs {
  const positional: SyntaxNode[] = [];
  const keywords = new Map<string, SyntaxNode>();
  const args = call.childForFieldName('arguments');
  if (!args || args.type !== 'argument_list') return { positional, keywords };
  for (const a of args.namedChildren) {
    if (a.type === 'comment') continue;
    if (a.type === 'keyword_argument') {
      const name = a.childForFieldName('name')?.text;
      const value = a.childForFieldName('value');
      if (name && value) keywords.set(name, value);
    } else positional.push(a);
  }
  return { positional, keywords };
}

export function positionalArgs(call: SyntaxNode): SyntaxNode[] {
  return callArgs(call).positional;
}

/**
 * The names a node reads, leaving out attribute names (`Item.id` reads `Item`, not `id`) and
 * keyword names. Used on small candidate nodes only.
 */
export function namesRead(node: SyntaxNode): Set<string> {
  const out = new Set<string>();
  const visit = (n: SyntaxNode) => {
    if (n.type === 'identifier') {
      out.add(n.text);
      return;
    }
    if (n.type === 'attribute') {
      const obj = n.childForFieldName('object');
      if (obj) visit(obj);
      return;
    }
    if (n.type === 'keyword_argument') {
      const v = n.childForFieldName('value');
      if (v) visit(v);
      return;
    }
    for (const c of n.namedChildren) visit(c);
  };
  visit(node);
  return out;
}

/** Identifiers bound by a `for` target or a comprehension clause target (`a`, `(i, row)`). */
function targetNames(target: SyntaxNode | null, out: Set<string>): void {
  if (!target) return;
  if (target.type === 'identifier') {
    out.add(target.text);
    return;
  }
  if (target.type === 'attribute' || target.type === 'subscript') return;
  for (const c of target.namedChildren) targetNames(c, out);
}

const perIterationCache = new WeakMap<LoopInfo, Set<string>>();

/**
 * Names that take a new value on every iteration of `loop`: its targets (every `for` clause of
 * a comprehension) and the plain names assigned inside its per-iteration part.
 */
export function perIterationNames(model: FileModel, loop: LoopInfo): Set<string> {
  let names = perIterationCache.get(loop);
  if (names) return names;
  names = new Set();
  if (loop.kind === 'for' || loop.kind === 'async_for' || loop.node.type === 'lambda') {
    targetNames(loopTargetNode(loop), names);
  } else if (loop.kind === 'comprehension') {
    for (const clause of loop.node.namedChildren) {
      if (clause.type === 'for_in_clause') targetNames(clause.childForFieldName('left'), names);
    }
  }
  for (const a of assignmentsInLoop(model, loop.index)) {
    if (/^[A-Za-z_]\w*$/.test(a.target)) names.add(a.target);
  }
  // `user_id, label = pair` and `offset += 100` in the body: rebound on every iteration too.
  for (const u of model.unpackedAssignments) if (u.loops.includes(loop.index)) for (const n of u.names) names.add(n);
  for (const a of augAssignmentsInLoop(model, loop.index)) if (/^[A-Za-z_]\w*$/.test(a.target)) names.add(a.target);
  // `if (uid := parse(key)):` binds per iteration as well.
  if (loop.node.text.includes(':=')) {
    for (const w of loop.node.descendantsOfType('named_expression')) {
      const target = w.childForFieldName('name');
      if (target?.type === 'identifier') names.add(target.text);
    }
  }
  perIterationCache.set(loop, names);
  return names;
}

/** Number of items when the loop's iterable is a list/tuple/set literal, else null. */
export function literalSize(loop: LoopInfo): number | null {
  // `reversed(range(1, 5))`, `enumerate([a, b])`: a wrapper keeps the count of what it wraps.
  const it = iterationSource(loop.iterable);
  // `range(3)`, `range(1, 4)`, `range(0, 10, 2)` with integer literals: a count the code states.
  if (it?.type === 'call' && it.childForFieldName('function')?.text === 'range') {
    const args = it.childForFieldName('arguments')?.namedChildren ?? [];
    if (!args.length || args.length > 3 || args.some((a) => a.type !== 'integer')) return null;
    const [a, b, step = 1] = args.length === 1 ? [0, Number(args[0]!.text)] : args.map((x) => Number(x.text));
    return step > 0 && b! > a! ? Math.ceil((b! - a!) / step) : 0;
  }
  if (!it || (it.type !== 'list' && it.type !== 'tuple' && it.type !== 'set')) return null;
  if (it.namedChildren.some((c) => c.type === 'list_splat' || c.type === 'comment')) return null;
  return it.namedChildCount;
}


/**
 * Is the loop bounded by a small number the code states: a literal (or a module- or class-level
 * constant) of at most ten items, the function's own `**kwargs`, or a setting of the
 * application's configuration?
 */
export const smallBoundedLoop = perLoop(smallBoundedLoopUncached);

/**
 * A loop fact computed once per loop: the rules ask about the loops around every candidate call,
 * and a loop holds many calls.
 */
export function perLoop(fact: (model: FileModel, loop: LoopInfo) => boolean): (model: FileModel, loop: LoopInfo) => boolean {
  const memo = new WeakMap<LoopInfo, boolean>();
  return (model, loop) => {
    let v = memo.get(loop);
    if (v === undefined) memo.set(loop, (v = fact(model, loop)));
    return v;
  };
}

function smallBoundedLoopUncached(model: FileModel, loop: LoopInfo): boolean {
  const size = literalSize(loop);
  if (size !== null) return size <= SMALL_BOUND;
  const src = iterationSource(loop.iterable);
  if (!src) return false;
  // `for s in Status:`: iterating a class is iterating an `Enum`'s few members.
  if (src.type === 'identifier' && /^[A-Z][a-z]\w*$/.test(src.text) && (namesClass(model, src.text, loop.functionIndex) || importedEnumLoop(model, src.text, loop))) return true;
  // `for t in Subscription.Type:`: a class nested in a class (or one a module exports) named in
  // CamelCase; iterating a class is iterating an `Enum`'s members (any other class raises).
  if (src.type === 'attribute' && /^[A-Z][a-z]\w*$/.test(src.childForFieldName('attribute')?.text ?? '') && nestedEnum(model, src, loop.functionIndex)) return true;
  if (smallLiteral(src) || configuredSetting(src) || appSetting(model, src, loop.functionIndex) || callsSmallLiteralFunction(model, src) || smallSelfLiteral(model, src, loop)) return true;
  if (fixedByCode(src)) return true;
  if (smallLimit(model, src, loop)) return true;
  if (intersectsSmallConstant(model, src, loop) || lengthGuarded(model, src, loop)) return true;
  const name = src.type === 'identifier' ? src.text : src.type === 'attribute' && /^(self|cls)$/.test(src.childForFieldName('object')?.text ?? '') ? src.childForFieldName('attribute')!.text : null;
  if (!name) return false;
  if (src.type === 'identifier' && loop.functionIndex >= 0) {
    // The function's own `**kwargs` or `*args`: as many as a call site writes out.
    // A header (`def` up to the body) without a `*` has no splat: the tree is asked only when it has one.
    const fn = model.functions[loop.functionIndex]!;
    const header = fn.body ? model.source.slice(fn.start, fn.body.startIndex) : '*';
    const params = header.includes('*') ? fn.node.childForFieldName('parameters')?.text ?? '' : '';
    if (params.includes('*') && new RegExp(`(^|[(,\\s])\\*{1,2}\\s*${name}\\b`).test(params)) return true;
    if (boundOnceTo(model, name, loop, fixedByCode)) return true;
    // A setting read into a local before the loop (`intervals = current_app.config.get("X", [30, 15, 2])`).
    // Not as a parameter's fallback: callers may pass anything there (request data, rows).
    if (boundOnceTo(model, name, loop, (v) => configuredSetting(v) || appSetting(model, v, loop.functionIndex))
      && !model.functions[loop.functionIndex]!.params.some((p) => p.name === name)) return true;
    // Bound in each branch to a setting, a handful of items or something the code fixes.
    if (boundOnlyTo(model, name, loop, (v) => smallLiteral(v) || fixedByCode(v) || configuredSetting(v) || appSetting(model, v, loop.functionIndex))
      && !model.functions[loop.functionIndex]!.params.some((p) => p.name === name)) return true;
  }
  return smallLiteralName(model, name, loop, src.type === 'identifier');
}

/**
 * A collection whose size the code or its deployment fixes, not the stored data: a setting read
 * from the environment (`os.environ["HOSTS"].split(",")`, `os.getenv(...)`) or from the
 * application's configuration, the segments of one path or dotted name (`path.split("/")`,
 * `name.split(".")`, `Path(p).parts`, `.parents`), the classes of a hierarchy
 * (`Base.__subclasses__()`), the tables and mappers of the metadata, or a model's columns and keys
 * (`Model.__table__.columns`, `inspect(Model).relationships`). A loop over one runs as
 * often whatever the tables hold: a fixed cost, not an N+1.
 */
function fixedByCode(n: SyntaxNode): boolean {
  const text = n.text;
  if (ENVIRONMENT.test(text)) return true;
  if (n.type === 'attribute') {
    const attr = n.childForFieldName('attribute')?.text ?? '';
    if (/^(sorted_tables|mappers)$/.test(attr)) return true;
    // A model's columns and keys (`Model.__table__.columns`, `inspect(Model).relationships`):
    // as many as the schema declares.
    const owner = n.childForFieldName('object')?.text ?? '';
    if (/^(columns|c|foreign_keys|primary_key|relationships|column_attrs|attrs)$/.test(attr) && /(\.__table__|\.__mapper__|^inspect\(.*\)|^sa\.inspect\(.*\))$/.test(owner)) return true;
    // A path's segments (`Path(p).parts`, `path.parents`), not a row's `parts` relationship.
    const object = n.childForFieldName('object');
    return /^(parts|parents)$/.test(attr) && !!object && (/^(pathlib\.)?(Pure)?Path\(/.test(object.text) || /(^|_)(path|dir|directory|folder|file)$/i.test(object.text));
  }
  if (n.type !== 'call') return false;
  const fn = n.childForFieldName('function');
  if (fn?.type !== 'attribute') return false;
  const method = fn.childForFieldName('attribute')?.text ?? '';
  const receiver = fn.childForFieldName('object');
  if (method === '__subclasses__') return true;
  if (method !== 'split' && method !== 'rsplit') return false;
  // A setting split into its items (`settings.ALLOWED_HOSTS.split(",")`, `os.getenv("X", "").split(",")`).
  if (receiver && (configuredSetting(receiver) || ENVIRONMENT.test(receiver.text))) return true;
  // One path cut into its segments (`/`, `os.sep`, `::`); not text cut into sentences or fields.
  const sep = n.childForFieldName('arguments')?.namedChildren[0];
  return sep?.type === 'string' && /^['"](\/|::|\\\\)['"]$/.test(sep.text) || sep?.text === 'os.sep';
}

const ENVIRONMENT = /^os\.(environ\s*\[|environ\.get\s*\(|getenv\s*\()/;

/** The value of `name`, a local of the loop's function bound once, before the loop and outside any loop; else null. */
function boundOnceBefore(model: FileModel, name: string, loop: LoopInfo): SyntaxNode | null {
  const own = assignmentsTo(model, name).filter((b) => b.functionIndex === loop.functionIndex);
  return own.length === 1 && !own[0]!.loops.length && own[0]!.line <= loop.node.startPosition.row + 1 ? unwrap(own[0]!.value) : null;
}

/**
 * Is `name` bound more than once before the loop, outside any loop, each time to a value `test`
 * accepts, and grown nowhere in the function (`langs = current_app.config["LANGS"]` in one branch,
 * `langs = [lang]` in the other)? Whichever binding reaches the loop fixes its length.
 */
function boundOnlyTo(model: FileModel, name: string, loop: LoopInfo, test: (n: SyntaxNode) => boolean): boolean {
  const own = assignmentsTo(model, name).filter((b) => b.functionIndex === loop.functionIndex);
  if (own.length < 2 || own.some((b) => b.loops.length || b.line > loop.node.startPosition.row + 1)) return false;
  if (!own.every((b) => {
    const v = iterationSource(unwrap(b.value));
    return !!v && test(v);
  })) return false;
  return !grownIn(model.functions[loop.functionIndex]!.node.text, name);
}

/** Is `name` bound once before the loop (see {@link boundOnceBefore}) to a value that `test` accepts? */
function boundOnceTo(model: FileModel, name: string, loop: LoopInfo, test: (n: SyntaxNode) => boolean): boolean {
  const v = iterationSource(boundOnceBefore(model, name, loop));
  return !!v && test(v);
}

/**
 * `set(keys).intersection(SETTINGS)`, `keys & SETTINGS`: what both hold, at most the small
 * constant's items (a literal, or a name bound once to one).
 */
function intersectsSmallConstant(model: FileModel, src: SyntaxNode, loop: LoopInfo): boolean {
  const small = (n: SyntaxNode | null | undefined): boolean => {
    const v = unwrap(n ?? null);
    if (!v) return false;
    if (smallLiteral(v)) return true;
    return v.type === 'identifier' && smallLiteralName(model, v.text, loop, true);
  };
  if (src.type === 'binary_operator' && src.childForFieldName('operator')?.text === '&') {
    return small(src.childForFieldName('left')) || small(src.childForFieldName('right'));
  }
  if (src.type !== 'call') return false;
  const fn = src.childForFieldName('function');
  if (fn?.type !== 'attribute' || fn.childForFieldName('attribute')?.text !== 'intersection') return false;
  if (small(fn.childForFieldName('object'))) return true;
  return (src.childForFieldName('arguments')?.namedChildren ?? []).some((a) => small(a));
}

/**
 * A loop over a collection whose length an enclosing `if` of the function bounds
 * (`if len(realms) == 1:`, `len(xs) <= 3`): as many iterations as the test lets through.
 */
function lengthGuarded(model: FileModel, src: SyntaxNode, loop: LoopInfo): boolean {
  if (loop.functionIndex < 0) return false;
  const fnNode = model.functions[loop.functionIndex]!.node;
  const target = src.text.replace(/\s+/g, '');
  for (let cur = loop.node.parent; cur && cur.id !== fnNode.id; cur = cur.parent) {
    if (cur.type !== 'block' || cur.parent?.type !== 'if_statement' || cur.parent.childForFieldName('consequence')?.id !== cur.id) continue;
    for (const c of operands(cur.parent.childForFieldName('condition'), 'and')) {
      const m = /^len\((.+)\)(==|<=|<)(\d+)$/.exec(c.text.replace(/\s+/g, ''));
      if (m && m[1] === target && Number(m[3]) <= SMALL_BOUND) return true;
    }
  }
  return false;
}

/**
 * Rows fetched with a small limit the code states: `repo.list(org, limit=8)`,
 * `select(X).limit(5)`, `limit=MAX_ITEMS` with `MAX_ITEMS = 8` at module level — the loop over
 * them (or over a name bound once to them before the loop) runs at most that many times.
 */
function smallLimit(model: FileModel, src: SyntaxNode, loop: LoopInfo): boolean {
  let value: SyntaxNode | null = src;
  if (src.type === 'identifier' && loop.functionIndex >= 0) value = boundOnceBefore(model, src.text, loop);
  if (value?.type !== 'call' || !value.text.includes('limit')) return false;
  // The outermost call's own `limit=` (not a page size it then walks: `list(limit=10).auto_paging_iter()`),
  // or a `.limit(K)` on the outer chain of it or of the statement it runs (not a subquery's).
  // `limit=` of a call that is not an SDK's pager (`client.jobs.list(limit=10)` walks every page when iterated).
  const kw = /\.list\s*\(|paginat|pager|auto_paging/i.test(value.text) ? null : keywordArgument(value, 'limit');
  const bound = kw ?? outerChainLimit(value, true);
  if (!bound) return false;
  if (bound.type === 'integer') return Number(bound.text) <= SMALL_BOUND;
  if (bound.type !== 'identifier' || !/^_?[A-Z][A-Z0-9_]*$/.test(bound.text)) return false;
  const bindings = assignmentsTo(model, bound.text);
  const v = bindings.length === 1 && bindings[0]!.functionIndex < 0 ? unwrap(bindings[0]!.value) : null;
  return v?.type === 'integer' && Number(v.text) <= SMALL_BOUND;
}

/** The value of the call's keyword argument `name`, or null. */
function keywordArgument(call: SyntaxNode, name: string): SyntaxNode | null {
  for (const a of call.childForFieldName('arguments')?.namedChildren ?? []) {
    if (a.type === 'keyword_argument' && a.childForFieldName('name')?.text === name) return a.childForFieldName('value');
  }
  return null;
}

/**
 * The argument of a `.limit(K)` among the methods chained on `node` (`select(X).where(...).limit(5)`),
 * or (`statement`) on the statement a call of that chain runs (`db.scalars(select(X).limit(5)).all()`);
 * never one inside a filter's subquery. Null when there is none.
 */
function outerChainLimit(node: SyntaxNode | null, statement: boolean): SyntaxNode | null {
  for (let n = node, depth = 0; n?.type === 'call' && depth < 12; depth++) {
    const fn = n.childForFieldName('function');
    if (fn?.type !== 'attribute') return null;
    const method = fn.childForFieldName('attribute')?.text ?? '';
    // A set operation after the limit adds the other statement's rows.
    if (/^(union|union_all|except_|except_all|intersect|intersect_all)$/.test(method)) return null;
    if (method === 'limit') return callArgs(n).positional[0] ?? null;
    if (statement) {
      const run = outerChainLimit(unwrap(callArgs(n).positional[0] ?? null), false);
      if (run) return run;
    }
    n = unwrap(fn.childForFieldName('object'));
  }
  return null;
}

/**
 * A setting of the application's configuration: an upper-case attribute of a config object
 * (`config.CLEANUP_RULES`, `settings.ALLOWED_HOSTS`) or a literal key of one
 * (`app.config["PLUGINS"]`, `current_app.config.get("X")`). People write these by hand: a loop
 * over one runs a handful of times, not once per row.
 */
function configuredSetting(n: SyntaxNode): boolean {
  const text = n.text;
  return CONFIG_ATTRIBUTE.test(text) || CONFIG_KEY.test(text) || APP_CONFIG_KEY.test(text);
}

/**
 * `settings.indexed_channels`: an attribute of the application's settings object, a name the
 * module imports or binds at module level (not a local or parameter called `settings`, which may
 * be a user's settings row), or of `current_app.config`.
 */
function appSetting(model: FileModel, n: SyntaxNode, fnIndex: number): boolean {
  const m = APP_SETTING.exec(n.text);
  if (!m) return false;
  const root = m[1];
  if (!root) return true;
  if (fnIndex >= 0) {
    const fn = model.functions[fnIndex]!;
    if (fn.params.some((p) => p.name === root) || assignmentsTo(model, root).some((a) => a.functionIndex === fnIndex)) return false;
  }
  return model.imports.has(root) || assignmentsTo(model, root).some((a) => a.functionIndex < 0);
}

/**
 * The application's own settings object, by the names it goes by (`settings`, `self.config`,
 * `self._config`, `current_app.config`): any of its attributes (`settings.indexed_channels`, a
 * pydantic settings field) or keys, nested (`self._config["exchange"]["pairs"]`), is configured.
 * A bare `config` is left out: a local of that name is as often a record a request sent.
 */
const APP_SETTINGS_ROOT = String.raw`(?:(?:self|cls|app|current_app|flask\.current_app)\._?(?:config|settings|conf|cfg|app_config|app_settings)|_?(?:settings|app_settings|app_config|CONFIG|SETTINGS))`;
/** `current_app.config.X` (group 1 empty), or a bare settings name (group 1: the name, to check its binding). */
const APP_SETTING = /^(?:(?:app|current_app|flask\.current_app)\.config|(_?(?:settings|app_settings|app_config|CONFIG|SETTINGS)))\.[A-Za-z_]\w*$/;
const APP_CONFIG_KEY = new RegExp(String.raw`^${APP_SETTINGS_ROOT}(?:\[\s*(['"])[\w.-]+\1\s*\]|\.get\(\s*(['"])[\w.-]+\2\s*(?:,[^()]*)?\))(?:\[\s*(['"])[\w.-]+\3\s*\]|\.get\(\s*(['"])[\w.-]+\4\s*(?:,[^()]*)?\))*$`);

const CONFIG_ATTRIBUTE = /^(?:[A-Za-z_]\w*\.)*(?:config|settings|conf|cfg|app_config|app_settings)\.[A-Z][A-Z0-9_]*$/;
const CONFIG_KEY = /^(?:[A-Za-z_]\w*\.)*(?:config|settings)(?:\[\s*(['"])[A-Za-z_][\w.]*\1\s*\]|\.get\(\s*(['"])[A-Za-z_][\w.]*\2\s*(?:,[^()]*)?\))$/;


/**
 * Is `name`, as `loop` sees it, a small literal: a module- or class-level constant bound once,
 * or (`local`) a name of the loop's function bound once, before the loop and outside any loop,
 * and never grown (`ranges = [7, 30, 365]`)?
 */
function smallLiteralName(model: FileModel, name: string, loop: LoopInfo, local = true): boolean {
  const bindings = assignmentsTo(model, name);
  // `X = cast(list[T], [a, b])`, `X = sorted([...])`: the literal the wrapper hands back.
  const literal = (v: SyntaxNode | null | undefined) => smallLiteral(iterationSource(unwrap(v ?? null)));
  if (bindings.length === 1 && bindings[0]!.functionIndex < 0 && literal(bindings[0]!.value)) return true;
  if (!local || loop.functionIndex < 0) return false;
  const own = bindings.filter((b) => b.functionIndex === loop.functionIndex);
  if (own.length !== 1 || own[0]!.loops.length || own[0]!.line > loop.node.startPosition.row + 1 || !literal(own[0]!.value)) return false;
  return !callsOf(model, loop.functionIndex).some((c) => c.functionIndex === loop.functionIndex && c.dottedReceiver === name && GROWS.test(c.method ?? ''))
    && !model.augAssignments.some((a) => a.functionIndex === loop.functionIndex && a.target === name);
}


/**
 * `keys()` where `keys` is a function of this module that takes nothing and only returns a small
 * literal (after its docstring): its N is written in the code (`def _fields(): return ['a', 'b']`).
 */
function callsSmallLiteralFunction(model: FileModel, src: SyntaxNode): boolean {
  if (src.type !== 'call' || src.childForFieldName('arguments')?.namedChildCount !== 0) return false;
  const callee = src.childForFieldName('function');
  if (callee?.type !== 'identifier') return false;
  const defs = model.functions.filter((f) => f.parent < 0 && !f.className && f.name === callee.text);
  return defs.length === 1 && returnsSmallLiteral(defs[0]!);
}

/**
 * `self.items` bound once in the file, to a small literal, in a method of the loop's own class
 * (`self.columns = ('title', 'email')` in `__init__`), and never grown or rebound.
 */
function smallSelfLiteral(model: FileModel, src: SyntaxNode, loop: LoopInfo): boolean {
  if (src.type !== 'attribute' || src.childForFieldName('object')?.text !== 'self' || loop.functionIndex < 0) return false;
  const cls = model.functions[loop.functionIndex]!.className;
  const target = src.text.replace(/\s+/g, '');
  const bindings = assignmentsTo(model, target);
  const bound = bindings.length === 1 ? unwrap(bindings[0]!.value) : null;
  // Bound once by the class to a small literal, or to a setting of the application's
  // configuration (`self.group_roles = current_app.config.get("GROUP_ROLES")` in `__init__`).
  const fixed = !!bound && (smallLiteral(bound) || configuredSetting(bound) || appSetting(model, bound, bindings[0]!.functionIndex));
  if (bindings.length !== 1 || !cls || model.functions[bindings[0]!.functionIndex]?.className !== cls || !fixed) return false;
  return !model.calls.some((c) => c.dottedReceiver === target && GROWS.test(c.method ?? '')) && !model.augAssignments.some((a) => a.target === target);
}

/**
 * Does `node` run only for the iterations where the loop's item equals a literal
 * (`if field == 'email':`, `elif kind in ('a', 'b'):`)? Then it runs at most once per distinct
 * value, however long the loop: a dispatch on the item, not work per item.
 */
export function guardedByItemValue(node: SyntaxNode, loop: LoopInfo, names: Set<string>, invariant: (name: string) => boolean = () => false): boolean {
  const body = loop.node.childForFieldName('body');
  if (!body) return false;
  let child: SyntaxNode = node;
  for (let cur = node.parent; cur && cur.id !== body.id; child = cur, cur = cur.parent) {
    if (cur.type !== 'if_statement' && cur.type !== 'elif_clause') continue;
    // The node must sit in this branch's own block, not in its condition or an `else` after it.
    const consequence = cur.childForFieldName('consequence');
    if (!consequence || consequence.id !== child.id) continue;
    if (comparesItemToLiteral(cur.childForFieldName('condition'), names, invariant)) return true;
  }
  return false;
}

function comparesItemToLiteral(cond: SyntaxNode | null, names: Set<string>, invariant: (name: string) => boolean): boolean {
  const c = unwrap(cond);
  if (!c) return false;
  // `a == 'x' and other`: the branch needs every operand of an `and`, so one equality is enough.
  if (c.type === 'boolean_operator' && c.childForFieldName('operator')?.text === 'and') {
    return comparesItemToLiteral(c.childForFieldName('left'), names, invariant) || comparesItemToLiteral(c.childForFieldName('right'), names, invariant);
  }
  if (c.type !== 'comparison_operator' || c.namedChildCount !== 2) return false;
  const [a, b] = [unwrap(c.namedChild(0)), unwrap(c.namedChild(1))];
  if (!a || !b) return false;
  const op = c.text.slice(c.namedChild(0)!.endIndex - c.startIndex, c.namedChild(1)!.startIndex - c.startIndex).trim();
  const isItem = (n: SyntaxNode) => n.type === 'identifier' && names.has(n.text);
  const isConst = (n: SyntaxNode) => ['string', 'integer', 'float', 'true', 'false', 'none'].includes(n.type) || /^[A-Z][A-Z0-9_]*(\.[A-Z][A-Z0-9_]*)?$/.test(n.text) || (n.type === 'attribute' && /^[A-Z]\w*\.[A-Za-z_]\w*$/.test(n.text));
  if (op === '==' || op === 'is') {
    if ((isItem(a) && isConst(b)) || (isItem(b) && isConst(a))) return true;
    // `if entry.principal == principal:` — the entry for one key the function was given (a
    // name the loop never changes): a lookup among the items, not work on each of them.
    const itemAttr = (n: SyntaxNode) => n.type === 'attribute' && isItem(unwrap(n.childForFieldName('object')) ?? n);
    // A name or an attribute chain of one (`principal`, `self.editable.type`) the loop never
    // rebinds; not a class's or a constant's (`Kind.ARCHIVED`, `_Type.group`): those name a
    // category of items, as many as match.
    const key = (n: SyntaxNode) => {
      const root = /^([A-Za-z_]\w*)(\.[A-Za-z_]\w*)*$/.exec(n.text.replace(/\s+/g, ''))?.[1];
      return (n.type === 'identifier' || n.type === 'attribute') && !!root && !/^_*[A-Z]/.test(root) && !names.has(root) && invariant(root);
    };
    return (itemAttr(a) && key(b)) || (itemAttr(b) && key(a));
  }
  if (op === 'in') {
    const small = ['tuple', 'list', 'set'].includes(b.type) && b.namedChildCount <= SMALL_BOUND && b.namedChildren.every(isConst);
    return isItem(a) && small;
  }
  return false;
}

/**
 * Does `node` run only for the items that match one key the loop does not change — in the body
 * of `if item.key == key:` (or `if item == 'literal':`), or after a comprehension's
 * `if item.key == key` filter (`[x for e in rows if e.kind == wanted for x in e.parts]`)? Then it
 * runs for the entries of that key, not once per item: a lookup among the items.
 */
export function lookupByKey(model: FileModel, node: SyntaxNode, loop: LoopInfo): boolean {
  const names = loopTargets(loop);
  // A key an enclosing loop changes (`for label in labels: [b for b in books if b.kind == label]`)
  // partitions the items: every one of them is kept once over the outer loop.
  const outer = new Set<string>();
  for (const l of model.loops) {
    if (l !== loop && l.functionIndex === loop.functionIndex && l.node.startIndex <= loop.node.startIndex && loop.node.endIndex <= l.node.endIndex) {
      for (const n of loopTargets(l)) outer.add(n);
    }
  }
  const invariant = (name: string) => !outer.has(name) && !perIterationNames(model, loop).has(name);
  if (loop.kind !== 'comprehension') return guardedByItemValue(node, loop, names, invariant);
  // The body (`[s.as_json() for s in shelves if s.id == wanted]`) runs for the items every
  // `if` clause keeps, though it is written before them; a clause runs after those before it.
  const body = loop.node.childForFieldName('body');
  const inBody = !!body && node.startIndex >= body.startIndex && node.endIndex <= body.endIndex;
  for (const clause of loop.node.namedChildren) {
    const after = clause.startIndex >= node.startIndex;
    if (!inBody && after) break;
    if (clause.type !== 'if_clause' || !comparesItemToLiteral(clause.namedChild(0), names, invariant)) continue;
    // A filter written after the body keeps one item only when it compares a key that names one
    // row (`s.id == wanted`); `s.kind == kind` keeps as many as share it.
    if (!after || comparesKey(clause.namedChild(0), names)) return true;
  }
  return false;
}

/** `item.id == x` (or `pk`, `uuid`), in an `and` too: the comparison names one row. */
function comparesKey(cond: SyntaxNode | null, names: Set<string>): boolean {
  const c = unwrap(cond);
  if (!c) return false;
  if (c.type === 'boolean_operator' && c.childForFieldName('operator')?.text === 'and') {
    return comparesKey(c.childForFieldName('left'), names) || comparesKey(c.childForFieldName('right'), names);
  }
  if (c.type !== 'comparison_operator' || c.namedChildCount !== 2) return false;
  const key = (n: SyntaxNode | null) => {
    const u = unwrap(n);
    return u?.type === 'attribute' && names.has(u.childForFieldName('object')?.text ?? '') && /^(id|pk|uuid|guid)$/.test(u.childForFieldName('attribute')?.text ?? '');
  };
  return key(c.namedChild(0)) || key(c.namedChild(1));
}

/** The names a `for` loop binds to its item (its targets), not the ones assigned in the body. */
export function loopTargets(loop: LoopInfo): Set<string> {
  const out = new Set<string>();
  if (loop.kind === 'for' || loop.kind === 'async_for' || loop.node.type === 'lambda') targetNames(loopTargetNode(loop), out);
  else if (loop.kind === 'comprehension') {
    for (const clause of loop.node.namedChildren) if (clause.type === 'for_in_clause') targetNames(clause.childForFieldName('left'), out);
  }
  return out;
}

/**
 * Work in a loop that is not per row even though it reads the loop's item: every loop around it
 * is small and bounded by the code, the loop stops (`return`/`break`) after it (a find-first
 * search that runs until the first hit), or it runs only for one value of the item.
 */
export function notPerRow(model: FileModel, call: { node: SyntaxNode; line: number }, loops: LoopInfo[], write = false): boolean {
  if (loops.every((l) => smallBoundedLoop(model, l))) return true;
  // One incoming message per iteration: each is its own request (not a loop nested in it).
  if (messageLoop(loops[loops.length - 1]!, model)) return true;
  const inner = loops[loops.length - 1]!;
  // Attempts, not items: the same statement again until it takes (`for attempt in range(N):`).
  if (attemptLoop(inner)) return true;
  // The step of a `while` loop: its value is what the loop tests next (`while children:
  // children = get_children(ids)`, `while page: page = fetch(page.next)`): one level or page per
  // iteration, each fetched whole.
  if (advancesWhile(model, call.node, inner)) return true;
  // A read in a `while` loop's condition decides when the loop stops (`while await slug_taken(s, c):
  // c = next_candidate()`): a probe that runs until the first miss, not once per row.
  if (!write && inWhileCondition(call.node, inner)) return true;
  // A loop over batches (`range(0, n, size)` slicing the keys, `chunked(ids, 500)`): one statement per batch is the remedy, not an N+1.
  if (overKeyBatches(model, inner)) return true;
  // A read followed by any way out is a search, per row only until the hit. A write is once
  // only when the loop surely ends after it (`update(row); break`); a stop elsewhere (a quota,
  // an error budget) leaves one statement per item until then.
  // In a walk along a chain (the next key read from what this read returned), a handler's exit
  // is where a step failed; in a search for a free key (`except NoResultFound: return slug`)
  // it is the hit.
  if (write ? leavesAfter(call.node, inner) : stopsAfter(call.node, inner, !walksChain(model, call.node, inner))) return true;
  // A dispatch on the item's value (`if field == 'email':`) runs once per distinct value, not per item.
  if (loops.some((l) => guardedByItemValue(call.node, l, loopTargets(l), (name) => !perIterationNames(model, l).has(name)))) return true;
  if (missFallback(model, call.node, inner)) return true;
  if (loopMemo(model, call.node, inner)) return true;
  if (firstPassOnly(model, call.node, inner)) return true;
  return loops.some((l) => keysLookedUpInSmallTable(model, l, call.node));
}

/** Is `node` part of the condition of `loop`, a `while` loop? */
function inWhileCondition(node: SyntaxNode, loop: LoopInfo): boolean {
  if (loop.kind !== 'while') return false;
  const cond = loop.node.childForFieldName('condition');
  return !!cond && node.startIndex >= cond.startIndex && node.endIndex <= cond.endIndex;
}

/**
 * Does `node` run only when a lookup in a mapping built before the loop misses: in the
 * `except KeyError:` (or `LookupError`) handler of a `try` whose body subscripts a name bound
 * outside the loop (`try: by_id[i].position = n  except KeyError: <query>`)? The mapping was
 * loaded for the loop's items; the query is the fallback for the odd one missing.
 */
function missFallback(model: FileModel, node: SyntaxNode, loop: LoopInfo): boolean {
  const body = loop.node.childForFieldName('body');
  if (!body || !/\bexcept\s*\(?\s*(KeyError|LookupError)\b/.test(body.text)) return false;
  for (let cur = node.parent; cur && cur.id !== body.id; cur = cur.parent) {
    if (cur.type !== 'except_clause') continue;
    const caught = cur.namedChildren.find((c) => c.type !== 'block' && c.type !== 'comment');
    if (!caught || !/^\(?\s*(KeyError|LookupError)\s*\)?(\s+as\s+\w+)?$/.test(caught.text)) return false;
    const tryBody = cur.parent?.type === 'try_statement' ? cur.parent.childForFieldName('body') : null;
    if (!tryBody) return false;
    return tryBody.descendantsOfType('subscript').some((sub) => {
      const table = sub.childForFieldName('value');
      return table?.type === 'identifier' && boundBefore(model, table.text, loop);
    });
  }
  return false;
}

/**
 * Attributes whose values many items share (a plan, a category, a currency, the owner or the
 * vendor written out by name): a cache keyed by one answers the items after the first. Any other
 * attribute may be the item's own (`sku`, `isbn`, `email`, `created_at`): a dedupe of distinct
 * items, still a query per item (a breaker measured 201 statements for 200 products keyed by `sku`).
 */
const SHARED_VALUE = /^(?:\w+_)?(plan|type|kind|category|status|state|currency|country|language|lang|locale|region|tier|level|group|team|owner|org|organization|tenant|project|account|department|brand|vendor|supplier|publisher|author|source|channel|provider|platform|role|unit|format|domain|host|site|store|warehouse|zone|city|timezone)$|^\w+_(uid|by)$/i;

/**
 * A cache the loop keeps for itself: a mapping or set bound before the loop and filled inside it
 * (`cache[key] = ...`, `seen.add(key)`), tested before `node` — `node` in the body of
 * `if key not in cache:`, or after `if key in cache: ... continue` in the loop's body — with a
 * key that the item refers to (`item.owner_id`): the work runs once per referenced row, shared by
 * many items, not once per item.
 */
function loopMemo(model: FileModel, node: SyntaxNode, loop: LoopInfo): boolean {
  const body = loop.node.childForFieldName('body');
  if (!body || !/\bin\s+[A-Za-z_]/.test(body.text)) return false;
  const targets = loopTargets(loop);
  const cacheOf = (cond: SyntaxNode | null, missing: boolean): string | null => {
    const m = cond ? (missing ? /^(.+)\snot in\s+([A-Za-z_]\w*)$/ : /^(.+)\s(?<!not )in\s+([A-Za-z_]\w*)$/).exec(cond.text.replace(/\s+/g, ' ').trim()) : null;
    if (!m) return null;
    // Keyed by what the item refers to (`tool.server_id`: many items share one; `acct.plan`, a
    // value many accounts share: {@link SHARED_VALUE}), not by the item itself (its name, its own
    // id, its e-mail, its SKU): a dedupe of distinct items is still one query per item.
    const noun = (w: string) => w.split('_').pop()!.toLowerCase();
    const items = /([A-Za-z_]\w*?)s?\W*$/.exec(loop.iterable?.text ?? '')?.[1];
    // `item["owner_id"]` reads like `item.owner_id`; a local bound in the loop from such a read of
    // something the item led to (`task = get_task(c["task_id"]); project_id = task["project_id"]`)
    // is keyed the same way.
    let keyText = m[1]!.replace(/\[\s*["'](\w+)["']\s*\]/g, '.$1');
    let derived = false;
    if (/^[A-Za-z_]\w*$/.test(keyText) && !targets.has(keyText)) {
      const bound = boundInLoop(model, keyText, loop, cond!);
      if (!bound) return null;
      keyText = bound;
      derived = true;
    }
    const key = /^([A-Za-z_]\w*)(?:\.\w+)*\.(\w+)_id$/.exec(keyText);
    if (key) {
      if (!derived && !targets.has(key[1]!)) return null;
      // `node.raw_node_id` of a loop over nodes, `b.book_id` of a loop over books: the item's own id.
      if (noun(key[2]!) === noun(key[1]!) || (items && noun(items) === noun(key[2]!))) return null;
    } else {
      const attr = /^([A-Za-z_]\w*)(?:\.\w+)*\.([A-Za-z_]\w*)$/.exec(keyText);
      if (!attr || (!derived && (!targets.has(attr[1]!) || keyText.split('.').length !== 2)) || !SHARED_VALUE.test(attr[2]!)) return null;
    }
    const name = m[2]!;
    const fills = new RegExp(`(^|[^\\w.])${name}(\\[[^\\n]*\\]\\s*=(?!=)|\\.(add|setdefault|update)\\()`, 'm');
    return fills.test(body.text) && boundBefore(model, name, loop) ? name : null;
  };
  // `node` inside `if key not in cache:` (within the loop body).
  for (let cur = node.parent; cur && cur.id !== body.id; cur = cur.parent) {
    if (cur.type === 'block' && cur.parent?.type === 'if_statement' && cur.parent.childForFieldName('consequence')?.id === cur.id) {
      if (cacheOf(cur.parent.childForFieldName('condition'), true)) return true;
    }
  }
  // `if key in cache: ...; continue` earlier in the block holding `node`, or in one around it
  // within the loop's body.
  for (let cur: SyntaxNode | null = node; cur && cur.id !== body.id; cur = cur.parent) {
    const block = cur.parent;
    if (block?.type !== 'block') continue;
    for (const stmt of block.namedChildren) {
      if (stmt.startIndex >= cur.startIndex) break;
      if (stmt.type !== 'if_statement' || stmt.childForFieldName('alternative')) continue;
      const consequence = stmt.childForFieldName('consequence');
      const last = consequence?.namedChildren[consequence.namedChildCount - 1];
      if (last?.type === 'continue_statement' && cacheOf(stmt.childForFieldName('condition'), false)) return true;
    }
  }
  return false;
}

/**
 * What a local tested as a cache key was last bound to in the loop's body before the test, when
 * that is a read of a named field: `task["project_id"]` → `task.project_id`, `row.owner.team_id`.
 * Null for anything else (a call, arithmetic, a name bound outside the loop).
 */
function boundInLoop(model: FileModel, name: string, loop: LoopInfo, before: SyntaxNode): string | null {
  const body = loop.node.childForFieldName('body');
  if (!body) return null;
  let value: string | null = null;
  for (const a of model.assignments) {
    if (a.target !== name || a.functionIndex !== loop.functionIndex || !a.value) continue;
    if (a.node.startIndex < body.startIndex || a.node.endIndex > before.startIndex) continue;
    const text = a.value.text.replace(/\s+/g, '').replace(/\[["'](\w+)["']\]/g, '.$1');
    value = /^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$/.test(text) ? text : null;
  }
  return value;
}

/** Is `name` bound in the loop's function before the loop, and not rebound inside it? */
/**
 * Does `node` run only until a local is filled: inside `if not x:` / `if x is None:` in the loop,
 * whose body binds `x` (`event, fees = get_event_fee(ticket)`), with `x` bound before the loop and
 * nowhere else in it? Once it holds a value, later iterations skip the call: once per loop.
 */
function firstPassOnly(model: FileModel, node: SyntaxNode, loop: LoopInfo): boolean {
  const body = loop.node.childForFieldName('body');
  if (!body) return false;
  for (let cur = node.parent; cur && cur.id !== body.id; cur = cur.parent) {
    if (cur.type !== 'block' || cur.parent?.type !== 'if_statement' || cur.parent.childForFieldName('consequence')?.id !== cur.id) continue;
    const cond = cur.parent.childForFieldName('condition')?.text.replace(/\s+/g, ' ').trim() ?? '';
    const name = /^not ([A-Za-z_]\w*)$/.exec(cond)?.[1] ?? /^([A-Za-z_]\w*) is None$/.exec(cond)?.[1];
    if (!name) continue;
    const binds = new RegExp(`^\\s*(?:[\\w.]+\\s*,\\s*)*${name}\\s*(?:,\\s*[\\w.]+\\s*)*=(?!=)`, 'm');
    if (!binds.test(cur.text)) continue;
    // Bound before the loop, and in the loop only there.
    const fn = loop.functionIndex >= 0 ? model.functions[loop.functionIndex]! : null;
    const before = model.source.slice(fn ? fn.start : 0, loop.node.startIndex);
    const assigned = `(^|[^\\w.])${name}\\s*(?:,\\s*[\\w.]+\\s*)*(:[^=\\n]*)?=(?!=)|,\\s*${name}\\s*(?:,[^=\\n]*)?=(?!=)`;
    const count = (text: string) => [...text.matchAll(new RegExp(assigned, 'gm'))].length;
    if (count(before) > 0 && count(body.text) === count(cur.text)) return true;
  }
  return false;
}

function boundBefore(model: FileModel, name: string, loop: LoopInfo): boolean {
  const fn = loop.functionIndex >= 0 ? model.functions[loop.functionIndex]! : null;
  const before = model.source.slice(fn ? fn.start : 0, loop.node.startIndex);
  const binds = new RegExp(`(^|[^\\w.])${name}\\s*(:[^=\\n]*)?=(?!=)`, 'm');
  return binds.test(before) && !binds.test(loop.node.text);
}


/**
 * A loop over a mapping's keys (`for role, x in changes.items():`) whose body looks each key up
 * in a small literal table before `node` (`column = ROLE_COLUMNS[role]`): keys are distinct and a
 * key missing from the table raises, so the loop runs at most as many times as the table has entries.
 */
function keysLookedUpInSmallTable(model: FileModel, loop: LoopInfo, node: SyntaxNode): boolean {
  if (loop.kind !== 'for' && loop.kind !== 'async_for') return false;
  const it = unwrap(loop.iterable);
  const fn = it?.type === 'call' ? it.childForFieldName('function') : null;
  if (fn?.type !== 'attribute' || !/^(items|keys)$/.test(fn.childForFieldName('attribute')?.text ?? '')) return false;
  const left = loop.node.childForFieldName('left');
  const key = left?.type === 'identifier' ? left : left?.namedChild(0)?.type === 'identifier' ? left.namedChild(0) : null;
  const body = loop.node.childForFieldName('body');
  if (!key || !body || !body.text.includes(`[${key.text}]`)) return false;
  for (const sub of body.descendantsOfType('subscript')) {
    if (sub.startIndex >= node.startIndex || sub.childForFieldName('subscript')?.text !== key.text) continue;
    const table = sub.childForFieldName('value');
    if (table?.type === 'identifier' && smallLiteralName(model, table.text, loop)) return true;
  }
  return false;
}

/** Does the loop's body leave the loop (`return`, or a `break` of this loop) after `node`? */
export function stopsAfter(node: SyntaxNode, loop: LoopInfo, failuresStop = true): boolean {
  const stops = loopStops(loop);
  if (!(stops.length > 0 && stops[stops.length - 1]! >= node.endIndex)) return false;
  if (failuresStop) return true;
  // A stop in a handler of the `try` around the read is where the read failed (`except
  // NotFound: return abort(404)`), not a hit that ends a search.
  const handlers = failureHandlers(node, loop);
  return !handlers.length || stops.some((at) => at >= node.endIndex && !handlers.some((h) => h.startIndex <= at && at < h.endIndex));
}

/** The `except` clauses of the `try` statements inside the loop's body whose body holds `node`. */
function failureHandlers(node: SyntaxNode, loop: LoopInfo): SyntaxNode[] {
  const body = loop.node.childForFieldName('body');
  const out: SyntaxNode[] = [];
  for (let n: SyntaxNode = node, p = node.parent; p && body && n.id !== body.id; n = p, p = p.parent) {
    if (p.type !== 'try_statement' || p.childForFieldName('body')?.id !== n.id) continue;
    for (const c of p.namedChildren) if (c.type === 'except_clause' || c.type === 'except_group_clause') out.push(c);
  }
  return out;
}

/**
 * Does the loop surely end once `node` has run: `node` is part of a `return`, or a `return` or a
 * `break` of this loop follows it in its own block or in a block around it inside the loop's body
 * (`x = row.owner; break`), with no `continue` of the loop between them? Not
 * a stop behind a condition that `node` is part of or precedes (`if row.owner.active: return row`):
 * that search reads `node` on every row until the hit.
 */
export function leavesAfter(node: SyntaxNode, loop: LoopInfo): boolean {
  if (loop.kind === 'comprehension') return false;
  const body = loop.node.childForFieldName('body');
  if (!body || (loopStops(loop).length === 0 && !body.text.includes('raise'))) return false;
  for (let n: SyntaxNode = node, p = node.parent; p && n.id !== body.id; n = p, p = p.parent) {
    if (p.type === 'function_definition' || p.type === 'lambda' || p.type === 'class_definition') return false;
    // `return row.owner.name`: the value of the statement that leaves.
    if (p.type === 'return_statement') return true;
    if (p.type !== 'block') continue;
    for (const s of p.namedChildren) {
      if (s.startIndex < n.endIndex) continue;
      if (s.type === 'return_statement' || s.type === 'raise_statement') return true;
      if (s.type === 'break_statement' && breaksLoop(p, body)) return true;
      // A `continue` of the loop on the way (`if skip: continue`) goes round again on some items.
      if (s.type === 'continue_statement' || s.descendantsOfType('continue_statement').some((c) => breaksLoop(c.parent!, body))) break;
    }
  }
  return false;
}

/** Is a `break` in `block` one of `loop` (no inner `for`/`while` between them)? */
function breaksLoop(block: SyntaxNode, body: SyntaxNode): boolean {
  for (let p: SyntaxNode | null = block; p && p.id !== body.id; p = p.parent) {
    if (p.type === 'for_statement' || p.type === 'while_statement') return false;
  }
  return true;
}

const stopsMemo = new WeakMap<LoopInfo, number[]>();

/** Where the loop's body leaves the loop (`return`, a `break` of this loop), ascending; once per loop. */
function loopStops(loop: LoopInfo): number[] {
  let stops = stopsMemo.get(loop);
  if (stops) return stops;
  stops = [];
  stopsMemo.set(loop, stops);
  if (loop.kind === 'comprehension') return stops;
  const body = loop.node.childForFieldName('body');
  if (!body || !/\b(return|break)\b/.test(body.text)) return stops;
  for (const stop of body.descendantsOfType(['return_statement', 'break_statement'])) {
    if (stop.type === 'return_statement') {
      if (!insideNestedDef(stop, body)) stops.push(stop.startIndex);
      continue;
    }
    // A `break` of an inner loop does not leave this one.
    let inner = false;
    for (let p = stop.parent; p && p.id !== body.id; p = p.parent) {
      if (p.type === 'for_statement' || p.type === 'while_statement' || p.type === 'function_definition' || p.type === 'lambda') {
        inner = true;
        break;
      }
    }
    if (!inner) stops.push(stop.startIndex);
  }
  stops.sort((a, b) => a - b);
  return stops;
}

/** Is `node` inside a function or lambda nested in `stop` (not `stop`'s own code)? */
export function insideNestedDef(node: SyntaxNode, stop: SyntaxNode): boolean {
  return insideNestedFunction(node, stop);
}

/**
 * Is `loop` a data loop whose iterations can only repeat the same read: a `for` or a
 * comprehension over more than a handful of items, that does not stop early (a retry or a
 * search), and whose body changes nothing a read could see (no attribute or item assignment,
 * which autoflush would send; the caller checks the DB writes)?
 */
export const repeatsReads = perLoop(repeatsReadsUncached);

function repeatsReadsUncached(model: FileModel, loop: LoopInfo): boolean {
  if (loop.kind === 'while') return false;
  if (smallBoundedLoop(model, loop)) return false;
  const body = loop.kind === 'comprehension' ? loop.node : loop.node.childForFieldName('body');
  if (!body) return false;
  if (loop.kind !== 'comprehension' && /\b(return|break|yield|raise)\b/.test(body.text)) return false;
  for (const a of assignmentsInLoop(model, loop.index)) {
    if (!/^[A-Za-z_]\w*$/.test(a.target)) return false;
  }
  if (augAssignmentsInLoop(model, loop.index).some((a) => !/^[A-Za-z_]\w*$/.test(a.target))) return false;
  return !loopSleeps(model, loop);
}

/** Does `node` read none of the names `loop` rebinds per iteration (so it is the same on every one)? */
export function invariantIn(model: FileModel, node: SyntaxNode, loop: LoopInfo): boolean {
  const names = perIterationNames(model, loop);
  for (const n of namesRead(node)) if (names.has(n)) return false;
  return true;
}

/**
 * Does the `while` loop advance `name` as a page position: `name += n` in the loop (not an index
 * into a collection, `ids[i]`), or `name` taken from the page this call returned by an item or key
 * (`page = fetch(cursor)` … `cursor = page[-1].id`, `token = resp["next"]`)?
 */
function advancesPosition(model: FileModel, loop: LoopInfo, name: string, node: SyntaxNode): boolean {
  // A counter that indexes a collection (`ids[i]`, `i += 1`) walks items, not pages.
  const refs = variableRefs(node, name);
  if (!refs.length || refs.every((r) => r.parent?.type === 'subscript' && r.parent.childForFieldName('value')?.id !== r.id)) return false;
  // Advanced by a page's size (`offset += size`, `offset += 200`); a step of one walks ids or
  // items, unless the name is a page number's (`page += 1`).
  if (augAssignmentsInLoop(model, loop.index).some((a) => a.target === name && (a.operator === '+=' || a.operator === '-=') && (a.value?.text.trim() !== '1' || PAGE_NUMBER.test(name)))) return true;
  // `rows, cursor = fetch(cursor)`: the call hands back the next position itself.
  if (model.unpackedAssignments.some((u) => u.loops.includes(loop.index) && u.names.length > 1 && u.names.includes(name) && !!u.value && u.value.startIndex <= node.startIndex && u.value.endIndex >= node.endIndex)) return true;
  const results = resultNames(model, node, loop);
  if (!results.size) return false;
  // The page itself handed back: a position taken by an index from it (`page = fetch(page[-1].id)`)
  // pages; by a key (`node = fetch(node["parent_id"])`) it walks a chain, one row per step.
  if (results.has(name)) return refs.some((r) => r.parent?.type === 'subscript' && r.parent.childForFieldName('value')?.id === r.id && /^-?\d+$/.test(r.parent.childForFieldName('subscript')?.text ?? ''));
  // Taken from the page as a collection or a response (`page[-1].id`, `resp["next"]`,
  // `result.get("next_page")`), not a row's own field (`current = parent`: one row per step).
  return assignmentsInLoop(model, loop.index).some((a) => a.target === name && !!a.value && takenFromPage(a.value, results));
}

/** The names the statement holding `node` binds in the loop (`page = fetch(cursor)` → `page`). */
function resultNames(model: FileModel, node: SyntaxNode, loop: LoopInfo): Set<string> {
  let stmt: SyntaxNode | null = node;
  while (stmt && stmt.type !== 'expression_statement' && stmt.type !== 'assignment' && stmt.parent) stmt = stmt.parent;
  const holds = (n: SyntaxNode) => !!stmt && n.startIndex <= stmt.startIndex && n.endIndex >= stmt.endIndex;
  return new Set(assignmentsInLoop(model, loop.index).filter((a) => holds(a.node)).map((a) => a.target));
}

/**
 * Is `loop` a `while` that walks a chain with the read `node`: a name the read is handed is
 * set, in the loop, from what the read returned (`current = diff["activities"][0]["id"]`)?
 */
function walksChain(model: FileModel, node: SyntaxNode, loop: LoopInfo): boolean {
  if (loop.kind !== 'while') return false;
  const results = resultNames(model, node, loop);
  if (!results.size) return false;
  const read = namesRead(node);
  return assignmentsInLoop(model, loop.index).some((a) => read.has(a.target) && !!a.value
    && a.value.descendantsOfType('identifier').some((id) => results.has(id.text)));
}

/** A page number's name: `page`, `page_no`, `page_number`, `pageno`, `current_page`. */
const PAGE_NUMBER = /(^|_)page(_?(no|num|number|index|idx))?$/i;

/**
 * Does `value` take an item or a key of one of `pages` (`page[-1].id`, `resp["next"]`,
 * `result.get("next")`) as a position to fetch from? Not when the path names only a row's own
 * fields (`rev["previous_id"]`, `diff["items"][0]["id"]`): that is the next link of a chain,
 * walked one fetch per step.
 */
function takenFromPage(value: SyntaxNode, pages: ReadonlySet<string>): boolean {
  for (const n of [value, ...value.descendantsOfType(['subscript', 'call'])]) {
    // The page may be kept in a name or an attribute (`state.page[-1].id`).
    const named = (v: SyntaxNode | null | undefined) => !!v && (v.type === 'identifier' || v.type === 'attribute') && pages.has(v.text.replace(/\s+/g, ''));
    if (n.type === 'subscript') {
      if (named(n.childForFieldName('value'))) return pagePosition(value);
    } else if (n.type === 'call') {
      const f = n.childForFieldName('function');
      if (f?.type === 'attribute' && f.childForFieldName('attribute')?.text === 'get' && named(f.childForFieldName('object'))) return pagePosition(value);
    }
  }
  return false;
}

/** Words of a paging position: a cursor, a token, the next page or link, an offset, the last item. */
const PAGE_WORDS = new Set(['next', 'cursor', 'token', 'marker', 'offset', 'continuation', 'continue', 'after', 'before', 'page', 'last', 'scroll', 'since', 'until', 'start', 'end', 'bookmark']);
/** Words only a page position has (`next_page_id`, `cursor_id`), unlike a row's link to the next (`next_id`). */
const PAGE_ONLY_WORDS = new Set(['cursor', 'token', 'marker', 'offset', 'continuation', 'page', 'scroll', 'bookmark']);

/** Does a key or attribute name a paging position (`next`, `nextPageToken`, `end_cursor`), by its whole words? */
function pageWord(name: string): boolean {
  const words = name.replace(/^['"]|['"]$/g, '').replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
  // `next_id`, `last_parent_id`: a row's link to another row, one step of a chain.
  if (words[words.length - 1] === 'id' && !words.some((w) => PAGE_ONLY_WORDS.has(w))) return false;
  return words.some((w) => PAGE_WORDS.has(w));
}

/**
 * The path from the result to the position reads like paging: a key or attribute named for a
 * position (`resp["next"]`, `data["meta"]["cursor"]`, `page.end_cursor`), or the last item
 * (`rows[-1].id`). A path of a row's own fields, or of its first item (`rev["parent_id"]`,
 * `diff["activities"][0]["id"]`), follows a link from one row to the next.
 */
function pagePosition(value: SyntaxNode): boolean {
  for (const n of [value, ...value.descendantsOfType(['subscript', 'attribute', 'call'])]) {
    if (n.type === 'subscript') {
      const key = n.childForFieldName('subscript');
      if (!key) continue;
      if (key.type === 'unary_operator' || /^-\d+$/.test(key.text)) return true;
      if (key.type === 'string' && pageWord(key.text)) return true;
      if (key.type !== 'string' && key.type !== 'integer') return true;
    } else if (n.type === 'attribute') {
      if (pageWord(n.childForFieldName('attribute')?.text ?? '')) return true;
    } else if (n.type === 'call') {
      const args = n.childForFieldName('arguments')?.namedChildren ?? [];
      if (args.some((a) => a.type === 'string' && pageWord(a.text))) return true;
    }
  }
  return false;
}

/** Does a `while` loop sleep between iterations (polling, retry with back-off)? */
export function loopSleeps(model: FileModel, loop: LoopInfo): boolean {
  for (const c of callsOf(model, loop.functionIndex)) {
    if (c.functionIndex !== loop.functionIndex || !c.loops.includes(loop.index)) continue;
    if (c.method === 'sleep' || c.method === 'wait_for' || c.method === 'wait') return true;
  }
  return false;
}

/**
 * Is the work at `node` done per item of one of the loops around it? The node must read a name
 * the loop rebinds each iteration (`session.get(User, job.owner_id)`); a polling `while` loop
 * (one that sleeps) never counts, nor one that pages (it hands on a position it advances, see
 * `advancesPosition`). Returns the loops that make it per-item, outermost first.
 */
export function perItemLoops(model: FileModel, loops: number[], node: SyntaxNode): LoopInfo[] | null {
  if (!loops.length) return null;
  const read = namesRead(node);
  let matched = false;
  for (const i of loops) {
    const loop = model.loops[i]!;
    if (loop.kind === 'while' && loopSleeps(model, loop)) return null;
    const names = perIterationNames(model, loop);
    // A `while` loop that walks pages and hands the position on (`offset += size`, or `cursor =
    // page[-1].id` from the page this call returned): one query per page is the batching, not
    // an N+1 of this loop (an outer loop may still make it per item).
    if (loop.kind === 'while' && [...read].some((n) => names.has(n) && advancesPosition(model, loop, n, node))) continue;
    for (const n of read) {
      if (names.has(n)) {
        matched = true;
        break;
      }
    }
  }
  return matched ? loops.map((i) => model.loops[i]!) : null;
}

/** The last assignment to `name` in `fnIndex` (or its parents, then module level) at or before `line`. */
export function lastAssignment(model: FileModel, name: string, fnIndex: number, line: number): AssignmentInfo | null {
  let scope = fnIndex;
  for (;;) {
    let best: AssignmentInfo | null = null;
    for (const a of assignmentsTo(model, name)) {
      if (a.functionIndex !== scope || (scope === fnIndex && a.line > line)) continue;
      if (!best || a.line >= best.line) best = a;
    }
    if (best) return best;
    if (scope < 0) return null;
    scope = model.functions[scope]!.parent;
  }
}

/** Source text of a node with whitespace squeezed, capped, for messages. */
export function short(node: SyntaxNode, max = 70): string {
  const t = node.text.replace(/\s+/g, ' ');
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}

/** The calls of a method chain from the outermost down to its root: `a(x).b(y).c()` → c, b, a. */
export function chainCallsDown(node: SyntaxNode | null): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  let cur = unwrap(node);
  while (cur?.type === 'call') {
    out.push(cur);
    const fn = cur.childForFieldName('function');
    cur = fn?.type === 'attribute' ? unwrap(fn.childForFieldName('object')) : null;
  }
  return out;
}

/** The loop's item variable and the iterable holding the rows (`enumerate(rows)` → `rows`). */
export function loopTarget(loop: LoopInfo): { name: string; iterable: SyntaxNode } | null {
  const target = loopTargetNode(loop);
  const iterable = unwrap(loop.iterable);
  if (!target || !iterable) return null;
  if (target.type === 'identifier') return { name: target.text, iterable };
  // `for i, row in enumerate(rows)`
  if ((target.type === 'pattern_list' || target.type === 'tuple_pattern') && target.namedChildCount === 2 && iterable.type === 'call'
    && iterable.childForFieldName('function')?.text === 'enumerate') {
    const second = target.namedChild(1);
    const inner = iterable.childForFieldName('arguments')?.namedChild(0) ?? null;
    if (second?.type === 'identifier' && inner) return { name: second.text, iterable: inner };
  }
  return null;
}


/** Is `name` a parameter or a local of the function (or of a function around it): a value, not a class? */
function boundInFunction(model: FileModel, name: string, fnIndex: number): boolean {
  for (let i = fnIndex; i >= 0; i = model.functions[i]!.parent) {
    const fn = model.functions[i]!;
    if (fn.params.some((p) => p.name === name) || assignmentsTo(model, name).some((a) => a.functionIndex === i && a.target === name)) return true;
  }
  return false;
}

/**
 * `Outer.Inner` where `Outer` is a class, not a value: a class of this file whose body declares
 * `class Inner(...)` on an Enum base, or a CamelCase name imported from a module (`from
 * app.models import Subscription`) that nothing in the function rebinds. Not `result.Orders` or
 * `self.Feed` (a SOAP or feed object's collections).
 */
function nestedEnum(model: FileModel, src: SyntaxNode, fnIndex: number): boolean {
  const owner = src.childForFieldName('object');
  const inner = src.childForFieldName('attribute')?.text ?? '';
  if (owner?.type !== 'identifier') return false;
  const name = owner.text;
  if (boundInFunction(model, name, fnIndex)) return false;
  const local = model.classes.find((c) => c.childForFieldName('name')?.text === name);
  if (local) {
    return (local.childForFieldName('body')?.namedChildren ?? []).some((c) => c.type === 'class_definition' && c.childForFieldName('name')?.text === inner
      && /\b(Enum|IntEnum|StrEnum|Flag|IntFlag|TextChoices|IntegerChoices|Choices)\b/.test(c.childForFieldName('superclasses')?.text ?? ''));
  }
  // An imported class (`Subscription`): a CamelCase name imported is a class. (Not an imported
  // lowercase name: a module or an object, whose CamelCase attributes may be collections.)
  return model.imports.has(name) && /^[A-Z][a-z]\w*$/.test(name);
}

/**
 * `for s in OrderStatus:` over a CamelCase name imported from a module, whose items the loop reads
 * as an Enum's members (`s.value`, `s.name`): iterating a class is iterating an Enum's few members.
 */
function importedEnumLoop(model: FileModel, name: string, loop: LoopInfo): boolean {
  if (!model.imports.has(name) || boundInFunction(model, name, loop.functionIndex) || assignmentsTo(model, name).some((a) => a.functionIndex < 0 && a.target === name)) return false;
  // A `for` statement's target and body; a comprehension's `for ... in` clause and the whole expression.
  const clause = loop.kind === 'comprehension'
    ? (loop.node.type === 'for_in_clause' ? loop.node : loop.node.namedChildren.find((c) => c.type === 'for_in_clause') ?? null)
    : loop.node;
  const target = clause?.childForFieldName('left');
  const body = loop.kind === 'comprehension' ? (loop.node.type === 'for_in_clause' ? loop.node.parent : loop.node) : loop.node.childForFieldName('body');
  if (target?.type !== 'identifier' || !body) return false;
  return new RegExp(`(?<![\\w.])${target.text}\\.(value|name)\\b`).test(body.text);
}

/** Is `name` a class (defined in the module or imported), not a variable of the function? */
function namesClass(model: FileModel, name: string, fnIndex: number): boolean {
  if (boundInFunction(model, name, fnIndex)) return false;
  if (assignmentsTo(model, name).some((a) => a.functionIndex < 0 && a.target === name)) return false;
  if (model.classes.some((c) => c.childForFieldName('name')?.text === name && /\bEnum\b|Enum\)/.test(c.childForFieldName('superclasses')?.text ?? ''))) return true;
  // An imported class the file reads members of (`Status.ACTIVE`): an Enum; a capitalised
  // imported list (`Recipients`) is not one.
  return model.imports.has(name) && new RegExp(`(?<![\\w.])${name}\\.[A-Z][A-Z0-9_]*\\b`).test(model.source);
}

/** Methods that send a statement with its parameters. */
const STATEMENT_SENDERS = new Set(['execute', 'exec', 'exec_driver_sql', 'executemany']);

/**
 * `session.execute(stmt, [{...}, ...])`, `conn.execute(text(...), rows)` with `rows` a list:
 * a list of parameter sets, sent as one executemany (SQLAlchemy's bulk INSERT/UPDATE by primary
 * key, insertmanyvalues), not one statement per item.
 */
export function executesMany(model: FileModel, call: CallInfo): boolean {
  if (!STATEMENT_SENDERS.has(call.method)) return false;
  const args = callArgs(call.node);
  let v = unwrap(args.positional[1] ?? args.keywords.get('params') ?? args.keywords.get('parameters') ?? null);
  if (v?.type === 'identifier') {
    const a = lastAssignment(model, v.text, call.functionIndex, call.line);
    v = a?.value ? unwrap(a.value) : null;
  }
  if (!v) return false;
  // A list display of one parameter set (`[{"id": r.id}]`, `params = [r]`) is one statement.
  if (v.type === 'list') return v.namedChildCount >= 2;
  if (v.type === 'list_comprehension' || v.type === 'generator_expression') return true;
  // `rows[i:i + 500]`: a chunk of a list of parameter sets, cut at a moving start (one row's
  // tuple sliced, `rev[:-1]`, is one parameter set).
  const slice = v.type === 'subscript' ? v.childForFieldName('subscript') : null;
  if (slice?.type === 'slice' && /^\s*[A-Za-z_]/.test(slice.text)) return true;
  // `list(chunk)`: a list of parameter sets; `tuple(params)` is one set in DB-API style.
  return v.type === 'call' && v.childForFieldName('function')?.text === 'list';
}

/** Chunking helpers: each item of the loop is a batch of rows. */
/** Calls that cut a collection into batches of keys. */
const CHUNKERS = /(^|\.)(batched|chunked|chunks|chunk|ichunked|batches|grouper|iter_batches|sliced)$/;
/** Pages and streamed partitions of rows: a transaction per page is a batch, a query per row is not. */
const PAGERS = /(^|\.)(partitions|pages|paginate|yield_per)$/;

/**
 * A loop over batches (`itertools.batched(items, 1000)`, `chunked(ids, 500)`,
 * `result.partitions()`, `range(0, len(ids), size)`): what it does per iteration, it does per
 * batch.
 */
export function overBatches(loop: LoopInfo): boolean {
  const it = unwrap(loop.iterable);
  if (it?.type !== 'call') return false;
  const fn = it.childForFieldName('function')?.text ?? '';
  if (CHUNKERS.test(fn) || PAGERS.test(fn)) return true;
  // `range(0, n, size)`: a step that is a name or a literal above ten (not `-1`, `2`).
  const step = fn === 'range' ? it.childForFieldName('arguments')?.namedChild(2) : null;
  return !!step && (step.type === 'identifier' || step.type === 'attribute' || (step.type === 'integer' && Number(step.text) > 10));
}

/**
 * A loop over batches of keys, for the query family: an item handed to `.in_(item)` or OR-ed
 * (`or_(*item)`); lists of lists (a parameter annotated so, or a call of a function of the file
 * annotated to return them), each item handed on whole; a chunker (`chunked`, `batched`,
 * `grouper`, ...; not `yield_per` or a paginator, which yield rows); or `range(0, len(xs), size)`
 * whose body slices by the loop's variable (`xs[i:i + size]`). An hourly
 * `range(start, end, 3600)` is not one.
 */
const overKeyBatches = perLoop(overKeyBatchesUncached);

/** After a name (`nameThen`: sticky): indexed or asked for an attribute (`row[0]`, `row.id`). */
const INDEXED_OR_ATTRIBUTE = /\s*[.[]/y;

function overKeyBatchesUncached(model: FileModel, loop: LoopInfo): boolean {
  if (loop.kind === 'while') return whileOverSlices(loop);
  const target = loopTargetNode(loop);
  const name = target?.type === 'identifier' ? target.text : null;
  const body = loop.node.childForFieldName('body')?.text ?? '';
  // `Model.id.in_(batch)` in the body, or `or_(*chunk)` of clauses: each item is a set of keys.
  // (Tried only on a body that has the words: the pattern is tried at every offset of it.)
  if (name && (body.includes('.in_(') || body.includes('or_(') || body.includes('and_(')) && new RegExp(`\\.in_\\(\\s*${name}\\s*\\)|(^|[^\\w.])(or_|and_)\\(\\s*\\*\\s*${name}\\s*\\)`).test(body)) return true;
  // A chunk of keys is handed on whole: never indexed (`row[0]` of a CSV row) nor asked for an
  // attribute (a row of a model called Batch).
  const whole = !!name && !nameThen(body, name, INDEXED_OR_ATTRIBUTE);
  let it = unwrap(loop.iterable);
  // A parameter annotated as lists of lists (`batches: list[list[int]]`), each handed on whole.
  if (whole && it?.type === 'identifier' && loop.functionIndex >= 0) {
    const param = model.functions[loop.functionIndex]!.params.find((p) => p.name === it!.text);
    if (param?.annotation && LIST_OF_LISTS.test(param.annotation.replace(/\s+/g, ''))) return true;
  }
  // `batches = split(ids)` before the loop: what the name holds.
  if (it?.type === 'identifier') {
    const a = lastAssignment(model, it.text, loop.functionIndex, loop.node.startPosition.row + 1);
    if (a && a.functionIndex === loop.functionIndex) it = unwrap(a.value);
  }
  if (it?.type !== 'call') return false;
  // A function of this file (or a method of this class) annotated to give lists of lists, each
  // handed on whole.
  if (whole && returnsListsOfLists(model, it)) return true;
  const fn = it.childForFieldName('function')?.text ?? '';
  if (CHUNKERS.test(fn)) return true;
  if (fn !== 'range' || it !== unwrap(loop.iterable)) return false;
  const args = it.childForFieldName('arguments')?.namedChildren ?? [];
  if (args.length !== 3 || args[0]!.text !== '0' || !name) return false;
  return new RegExp(`\\[\\s*${name}\\s*:`).test(body);
}

/**
 * A `while` loop that walks a list in slices: `batch = ids[start : start + size]` in the body,
 * with `start` moved on by `+=` (`start += size`, also a `size` that grows): one statement per
 * slice is the remedy, not an N+1.
 */
function whileOverSlices(loop: LoopInfo): boolean {
  const body = loop.node.childForFieldName('body')?.text ?? '';
  // The width a name or a literal above ten (`ids[pos:pos + 1]` is one item at a time), and the
  // start moved on by that width.
  const m = /\[\s*([A-Za-z_]\w*)\s*:\s*\1\s*\+\s*([A-Za-z_][\w.]*|\d+)\s*\]/.exec(body);
  if (!m || (/^\d+$/.test(m[2]!) && Number(m[2]) <= 10)) return false;
  return new RegExp(`(^|[^\\w.])${m[1]}\\s*\\+=\\s*${m[2]!.replace(/\./g, '\\.')}\\s*$`, 'm').test(body);
}

/** `-> List[List[str]]`, `-> list[list[int]]`, `-> Iterator[list[str]]`, `-> Generator[List[...], ...]` (not lists of tuples: records). */
const LIST_OF_LISTS = /^(typing\.)?(List|list|Iterator|Iterable|Generator|Sequence)\[\s*(typing\.)?(List|list)\[/;

/** Is `call` a call of a function of this file (`split(...)`, `self.split(...)`, `cls.split(...)`) annotated to return lists of lists? */
function returnsListsOfLists(model: FileModel, call: SyntaxNode): boolean {
  const callee = call.childForFieldName('function');
  const text = callee?.text ?? '';
  const m = /^(?:(?:self|cls|[A-Z]\w*)\.)?([A-Za-z_]\w*)$/.exec(text);
  if (!m) return false;
  return model.functions.some((f) => f.name === m[1] && LIST_OF_LISTS.test(f.returnType ?? ''));
}

/**
 * Is `node` the value assigned to a name that the `while` loop's condition tests
 * (`children = self._get_children(session, ids)` in `while children:`)?
 */
function advancesWhile(model: FileModel, node: SyntaxNode, loop: LoopInfo): boolean {
  if (loop.kind !== 'while') return false;
  let value: SyntaxNode = node;
  while (value.parent && (value.parent.type === 'await' || value.parent.type === 'parenthesized_expression')) value = value.parent;
  const assignment = value.parent;
  if (assignment?.type !== 'assignment' || assignment.childForFieldName('right')?.id !== value.id) return false;
  const target = assignment.childForFieldName('left');
  if (target?.type !== 'identifier') return false;
  const condition = loop.node.childForFieldName('condition')?.text ?? '';
  if (!new RegExp(`(^|[^\\w.])${target.text}($|[^\\w])`).test(condition)) return false;
  // What it is handed is a whole level: the loop's value itself (`rses = run_once(rses)`) or a
  // collection the body builds (`ids = set()` … `get_children(ids)`). A single id (`current =
  // get(current.parent_id)`, a walk up a chain) is one row per step: not this.
  const call = value.type === 'await' ? value.namedChild(0) : value;
  const args = (call?.type === 'call' ? call.childForFieldName('arguments')?.namedChildren ?? [] : [])
    .map((a) => (a.type === 'keyword_argument' ? a.childForFieldName('value') : a))
    .filter((a): a is SyntaxNode => a?.type === 'identifier');
  // The loop's own value handed back (`rses = run_once(rses)`) counts when it was a collection
  // before the loop too: a row handed back (`node = get_parent(s, node)`) is a walk up a chain.
  const loopLine = loop.node.startPosition.row + 1;
  const callLine = node.startPosition.row + 1;
  return args.some((a) => {
    const bound = lastAssignment(model, a.text, loop.functionIndex, (a.text === target.text ? loopLine : callLine) - 1);
    return !!bound && (a.text === target.text || bound.line >= loopLine) && isCollection(bound.value);
  });
}

/** A list, set or dict made on the spot (a display, a comprehension, `set(...)`, `sorted(...)`), or a query's `.all()`. */
function isCollection(value: SyntaxNode | null): boolean {
  const v = unwrap(value);
  if (!v) return false;
  if (/^(list|set|dictionary)(_comprehension)?$/.test(v.type)) return true;
  if (v.type !== 'call') return false;
  const fn = v.childForFieldName('function');
  if (fn?.type === 'identifier') return /^(set|list|frozenset|dict|sorted)$/.test(fn.text);
  return fn?.type === 'attribute' && /^(all|fetchall)$/.test(fn.childForFieldName('attribute')?.text ?? '');
}

/** A retry loop: `for attempt in Retrying(...)` (tenacity), `AsyncRetrying`, stamina's `retry_context`, or {@link attemptLoop}. */
export function retryLoop(loop: LoopInfo): boolean {
  const it = unwrap(loop.iterable);
  return (it?.type === 'call' && /(^|\.)(Retrying|AsyncRetrying|retry_context)$/.test(it.childForFieldName('function')?.text ?? '')) || attemptLoop(loop);
}

/**
 * A loop of attempts: `for attempt in range(MAX_ATTEMPTS):` (one argument), its variable named
 * for attempts (`attempt`, `retry`, `tries`, …) and never read in the body, which can leave early
 * (a `break` of this loop or a `return`): the same work tried again until it succeeds (an
 * optimistic-lock UPDATE, a conflict retry), not one item after another. (`for _ in range(n):`
 * with a `break` is as often a loop over items popped from somewhere: not this.)
 */
export function attemptLoop(loop: LoopInfo): boolean {
  if (loop.kind !== 'for') return false;
  const it = unwrap(loop.iterable);
  if (it?.type !== 'call' || it.childForFieldName('function')?.text !== 'range') return false;
  const args = it.childForFieldName('arguments')?.namedChildren.filter((a) => a.type !== 'comment') ?? [];
  if (args.length !== 1 || !/^(\d+|[A-Za-z_][\w.]*)$/.test(args[0]!.text)) return false;
  const target = loop.node.childForFieldName('left')?.text ?? '';
  if (!ATTEMPT_NAME.test(target) || loopStops(loop).length === 0) return false;
  const body = loop.node.childForFieldName('body');
  return !!body && !body.descendantsOfType('identifier').some((n) => n.text === target);
}

/** Names of an attempt counter: `attempt`, `_attempt`, `attempt_no`, `retry`, `retries`, `tries`, `try_number`. */
const ATTEMPT_NAME = /^_*(attempts?|retry|retries|tries|try)(_\w+)?$/i;

/** `async for msg in ws` over an aiohttp `WebSocketResponse` the function made (`ws = web.WebSocketResponse()`). */
function webSocketIteration(model: FileModel, loop: LoopInfo): boolean {
  const it = unwrap(loop.iterable);
  if (it?.type !== 'identifier') return false;
  const a = lastAssignment(model, it.text, loop.functionIndex, loop.node.startPosition.row + 1);
  const v = a && a.functionIndex === loop.functionIndex ? unwrap(a.value) : null;
  return v?.type === 'call' && /(^|\.)WebSocketResponse$/.test(v.childForFieldName('function')?.text ?? '');
}

/**
 * A loop that handles one incoming message per iteration (`while True: msg = await
 * websocket.receive_json()`, `async for msg in websocket.iter_text()`, a queue worker that
 * claims one job with `SKIP LOCKED`): each iteration is its own request, not an item of a batch.
 */
export function messageLoop(loop: LoopInfo, model?: FileModel): boolean {
  // A queue worker claims one job per iteration (`with_for_update(skip_locked=True)`, `FOR UPDATE SKIP LOCKED`).
  if (loop.kind === 'while' && /with_for_update\([^)]*skip_locked\s*=\s*True|FOR\s+UPDATE\s+SKIP\s+LOCKED/i.test(loop.node.childForFieldName('body')?.text ?? '')) return true;
  if (loop.kind === 'async_for') return /\.iter_(text|json|bytes)\s*\(/.test(loop.iterable?.text ?? '') || (!!model && webSocketIteration(model, loop));
  if (loop.kind !== 'while') return false;
  const body = loop.node.childForFieldName('body')?.text ?? '';
  return /\bawait\s+[\w.]+\.(receive|receive_text|receive_json|receive_bytes|recv)\s*\(/.test(body);
}

/**
 * The item's attributes a loop reads, the first read of each name that `wanted` accepts: not
 * assigned, not in a find-first search's exit, not only for the items of one key; a method
 * called on the item (`row.to_dict()`, no arguments) only when `calls` asks, as `call: true`.
 */
export function* itemAttributeReads(model: FileModel, loop: LoopInfo, item: string, wanted: (name: string) => boolean, calls = false): Generator<{ node: SyntaxNode; name: string; search: boolean; call: boolean }> {
  const seen = new Set<string>();
  const iterable = loop.iterable!;
  for (const a of loop.node.descendantsOfType('attribute')) {
    if (a.startIndex < loop.iterStart || a.startIndex >= loop.iterEnd) continue;
    if (a.startIndex >= iterable.startIndex && a.endIndex <= iterable.endIndex) continue;
    const obj = a.childForFieldName('object');
    const name = a.childForFieldName('attribute')?.text ?? '';
    // `item` may be a path (`row.owner`): the attributes read on what it holds.
    if ((obj?.type !== 'identifier' && !(obj?.type === 'attribute' && item.includes('.'))) || obj.text !== item || !name || !wanted(name)) continue;
    const parent = a.parent;
    if (parent?.type === 'assignment' && parent.childForFieldName('left')?.id === a.id) continue;
    const call = parent?.type === 'call' && parent.childForFieldName('function')?.id === a.id;
    if (call && (!calls || (parent!.childForFieldName('arguments')?.namedChildCount ?? 1) !== 0)) continue;
    const key = call ? `()${name}` : name;
    if (seen.has(key)) continue;
    // Read once, right before the loop ends (`owner = row.owner; break`): not per row.
    if (leavesAfter(a, loop) || lookupByKey(model, a, loop)) continue;
    seen.add(key);
    // A find-first search (`if row.owner.active: return row`) reads it on every row until the hit.
    yield { node: a, name, search: stopsAfter(a, loop), call };
  }
}
