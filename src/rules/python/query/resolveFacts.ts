/**
 * Per-file facts for PA103 unnecessary_resolve, emitted as effects so the repo phase can pair a
 * caller with its callee (effects at call sites also keep those calls in the summary):
 *
 * - `resolves_one_attr` (callee side, at the load): the function loads one entity by an id
 *   parameter (`owner = await session.get(User, owner_id)`) and uses the loaded object only to
 *   read one attribute (`owner.tenant_id`), besides `is None` / truthiness checks. The load may
 *   be a same-repo loader call (`owner = await get_user(session, owner_id)`) that the repo
 *   phase follows to a `returns_load`. `what` = JSON {@link ResolvedAttr}.
 * - `returns_load` (loader side, at the load): the function returns a row it loads by an id
 *   parameter. `what` = `position:param:Model:qualified.Model`.
 * - `passes_held_attr` (caller side, at the call): a call hands on `obj.id` / `obj.x_id` of an
 *   object the function holds as a parameter. `what` = JSON {@link HeldAttrPass}.
 * - `provides_fields` (on a function): the function returns an instance of a class declared in
 *   the same file, which declares these `*_id` fields — what a `Depends(provider)` parameter
 *   carries. `what` = comma-separated field names.
 *
 * Every fact needs a syntactic reason to exist, so most functions cost one string test.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { CallInfo, FileModel, FunctionInfo } from '../../../semantic/model.js';
import { assignmentsTo, callAt, chainTop, resolveName, variableRefs, selfOffset } from '../../../semantic/model.js';
import type { Effect } from '../../../analysis/summary.js';
import { classifyDbCall, loadedModel, type DbOp } from './dbCalls.js';
import { callArgs, lastAssignment, unwrap } from './semantics.js';
import { namesThen } from '../../../semantic/codeText.js';

export const RESOLVES_ONE_ATTR = 'resolves_one_attr';
export const PASSES_HELD_ATTR = 'passes_held_attr';
export const PROVIDES_FIELDS = 'provides_fields';
export const RETURNS_LOAD = 'returns_load';

export interface ResolvedAttr {
  /** Position of the id parameter among the callee's parameters (receiver left out), and its name. */
  position: number;
  param: string;
  /** The one attribute read on the loaded row. */
  attr: string;
  /** The model loaded and its name resolved through imports; '' when a loader call is followed instead. */
  model: string;
  qualified: string;
  /** Set when the row comes from a same-repo loader: the loader's argument that receives the id. */
  loaderArg?: number | string;
}

export interface HeldAttrPass {
  /** Positional index among the call's arguments, or the keyword name. */
  arg: number | string;
  /** The object handed on by one attribute: `principal`. */
  variable: string;
  /** The attribute passed: `user_id`, `id`. */
  key: string;
  /** The parameter's annotation, resolved through imports (`app.models.User`), or ''. */
  type: string;
  /** `Depends(provider)` / `Security(provider)`: the provider resolved through imports, or ''. */
  provider: string;
  /** `*_id` fields the object is known to carry: attributes the function reads on it, fields of its class when declared in this file. */
  fields: string[];
}

const ID_PARAM = /^(id|\w+_id)$/;
const LIBRARY_CALL = /^(builtins|asyncio|logging|json|os|re|math|time|datetime|typing|collections|itertools|functools|sqlalchemy|sqlmodel|pydantic|fastapi|starlette|httpx|requests)\./;
const LIBRARY_TYPE = /^(builtins|typing|collections|datetime|uuid|decimal|pathlib|sqlalchemy|sqlmodel|fastapi|starlette|pydantic|httpx|aiohttp|requests|redis|asyncio|celery)\./;
const DEPENDS = /^(?:[\w.]*\.)?(?:Depends|Security)\(\s*([A-Za-z_][\w.]*)?/;
/** Calls that finish a single-row load, by the method that ran the query. */
const ROW_TERMINALS: Record<string, RegExp> = {
  get: /^$/,
  get_one: /^$/,
  scalar: /^$/,
  scalars: /^(unique\.)?(first|one|one_or_none)$/,
  execute: /^(unique\.)?(scalar_one|scalar_one_or_none|scalar|scalars\.(first|one|one_or_none))$/,
  exec: /^(first|one|one_or_none)$/,
  query: /^((filter|filter_by|where)\.)*(first|one|one_or_none|get)$/,
};
/** Methods that change a collection or mapping in place: calling one on `obj.attr` is not a read. */
const MUTATORS = /^(append|extend|add|remove|discard|insert|pop|clear|update|setdefault|sort|reverse)$/;

/** Calls that may be same-repo loaders: getter-like names (the repo phase checks they return a load). */
const LOADER_NAME = /^(get|fetch|load|find|read|retrieve|lookup)(_\w+)?$/;
/** `obj.id` / `obj.x_id` as an argument: the text a held-attribute pass needs. */
const PASSED_ID = /\.(?:\w+_)?id\s*[,)]/g;

/**
 * Every fact needs its own cheap trigger before a function's parameters are read (they are
 * parsed on demand): a DB read or a getter-like call for the callee side, `obj.x_id` passed on
 * in the function's text for the caller side, a same-file class with `*_id` fields for providers.
 */
export function collectResolveFacts(model: FileModel): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile || !model.source.includes('id')) return effects;
  for (const call of model.calls) {
    if (call.functionIndex < 0 || call.loops.length) continue;
    const op = classifyDbCall(model, call);
    const at = { line: call.line, column: call.column };
    const fn = model.functions[call.functionIndex]!;
    if (op?.kind === 'read') {
      const load = rowLoad(model, call, op);
      if (!load) continue;
      const fact = resolvedAttribute(model, load, fn);
      if (fact) effects[call.functionIndex]!.push({ kind: RESOLVES_ONE_ATTR, what: JSON.stringify(fact), ...at });
      else if (returnsLoad(model, load, fn)) effects[call.functionIndex]!.push({ kind: RETURNS_LOAD, what: `${load.position}:${load.param}:${load.entity}:${load.qualified}`, ...at });
    } else if (!op && LOADER_NAME.test(call.method) && (call.qualifiedName || /^(self|cls)\.\w+$/.test(call.calleeText))) {
      // `v = await loader(…, p, …)`: the repo phase follows the call to a `returns_load`.
      if (LIBRARY_CALL.test(call.qualifiedName ?? '')) continue;
      const fact = resolvedThroughLoader(model, call);
      if (fact) effects[call.functionIndex]!.push({ kind: RESOLVES_ONE_ATTR, what: JSON.stringify(fact), ...at });
    }
  }
  const passLines: number[] = [];
  for (const m of model.source.matchAll(PASSED_ID)) passLines.push(model.lineOf(m.index!) + 1);
  let callsByFunction: Map<number, CallInfo[]> | null = null;
  const providers = returnsIdFieldClass(model);
  model.functions.forEach((fn, i) => {
    if (passLines.length && anyWithin(passLines, fn.startLine, fn.endLine)) {
      const held = heldParams(model, fn);
      const text = held.size ? fn.node.text : '';
      // Where does the function hand on `held.id` / `held.x_id`? Only calls that start on
      // those lines or shortly before are looked at.
      const lines = held.size ? passedLines(text, fn.startLine, [...held.keys()]) : [];
      if (lines.length) {
        callsByFunction ??= groupCalls(model);
        const calls = (callsByFunction.get(i) ?? []).filter((c) => lines.some((l) => c.line <= l && c.line >= l - CALL_SPAN));
        for (const e of heldAttrPasses(model, fn, text, held, calls)) effects[i]!.push(e);
      }
    }
    if (providers) {
      const fields = providedFields(model, fn);
      if (fields.length) effects[i]!.push({ kind: PROVIDES_FIELDS, what: fields.join(','), line: fn.startLine, column: fn.node.startPosition.column + 1 });
    }
  });
  return effects;
}

/** Lines a multi-line call may span before the argument that hands the id on. */
const CALL_SPAN = 12;

/** Lines of `name.id` / `name.x_id` for the given names in a function's text. */
function passedLines(text: string, startLine: number, names: string[]): number[] {
  // Each name's reads found from its occurrences (a pattern that starts with a lookbehind is tried
  // at every offset of the text); at most one name reads at a position (the whole name before the dot).
  const at: number[] = [];
  for (const name of names) for (const m of namesThen(text, name, ID_READ)) at.push(m.index - name.length);
  at.sort((a, b) => a - b);
  const out: number[] = [];
  let line = startLine;
  let last = 0;
  for (const index of at) {
    for (let i = text.indexOf('\n', last); i >= 0 && i < index; i = text.indexOf('\n', i + 1)) line++;
    last = index;
    out.push(line);
  }
  return out;
}

/** After a name (`namesThen`: sticky): `.id` or `.x_id`. */
const ID_READ = /\.(?:id|\w+_id)\b/y;

/** Is some line of the sorted list within `[from, to]`? */
function anyWithin(lines: number[], from: number, to: number): boolean {
  let lo = 0;
  let hi = lines.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (lines[mid]! < from) lo = mid + 1;
    else hi = mid;
  }
  return lo < lines.length && lines[lo]! <= to;
}

// --- callee side -------------------------------------------------------------------------------

/** The id parameter a read loads its entity by, and the entity: `[param, Model, modelArgText]`. */
function loadKey(model: FileModel, call: CallInfo, op: DbOp): [string, string, string] | null {
  const entity = loadedModel(model, call, op);
  const { positional, keywords } = callArgs(call.node);
  if (entity && (call.method === 'get' || call.method === 'get_one')) {
    const key = positional[1];
    return key?.type === 'identifier' ? [key.text, entity, positional[0]!.text] : null;
  }
  if (entity && op.statement) {
    const text = [op.statement.root.text, ...op.statement.chainCalls.map((c) => c.text)].join(' ');
    const key = idEquality(text, entity);
    return key ? [key, entity, entity] : null;
  }
  if (call.method === 'query' && positional.length === 1 && keywords.size === 0) {
    const first = positional[0]!;
    if (first.type !== 'identifier' || !/^[A-Z][a-z0-9]\w*$/.test(first.text)) return null;
    // `db.query(M).filter(M.id == p).first()`, `.filter_by(id=p)`, `.get(p)`: read the chain above.
    const top = chainTop(call.node);
    const text = top.text;
    const key = idEquality(text, first.text) ?? /\.filter_by\(\s*id\s*=\s*([A-Za-z_]\w*)\s*\)/.exec(text)?.[1] ?? /\.get\(\s*([A-Za-z_]\w*)\s*\)\s*$/.exec(text)?.[1];
    return key ? [key, first.text, first.text] : null;
  }
  return null;
}

/** `M.id == p` or `p == M.id` in a statement's text: the name `p`. */
function idEquality(text: string, entity: string): string | null {
  const m = new RegExp(`\\b${entity}\\.id\\s*==\\s*([A-Za-z_]\\w*)\\b(?!\\s*[.(\\[])`).exec(text)
    ?? new RegExp(`(?<![.\\w])([A-Za-z_]\\w*)\\s*==\\s*${entity}\\.id\\b`).exec(text);
  return m ? m[1]! : null;
}

/** A single-row load by an id parameter, climbed to the expression that holds the row. */
interface RowLoad {
  /** Position of the parameter (receiver left out) and its name. */
  position: number;
  param: string;
  entity: string;
  qualified: string;
  /** `await session.get(M, p)`, `(await session.execute(...)).scalar_one()`: the row's expression. */
  expr: SyntaxNode;
}

function rowLoad(model: FileModel, call: CallInfo, op: DbOp): RowLoad | null {
  const fn = model.functions[call.functionIndex]!;
  const terminal = ROW_TERMINALS[call.method];
  const key = terminal ? loadKey(model, call, op) : null;
  if (!key || !ID_PARAM.test(key[0])) return null;
  const [param, entity, entityText] = key;
  const position = paramPosition(fn, param);
  if (position < 0) return null;
  // Up from the DB call through `await`, parentheses and the chained row terminals; for
  // `query`, the classifier's call is `db.query(M)` and the chain above it is the statement.
  const [expr, methods] = climb(call.node);
  if (!terminal!.test(methods.join('.'))) return null;
  return { position, param, entity, qualified: resolveName(model, entityText) ?? entityText, expr };
}

/** The parameter's position with `self`/`cls` left out, or -1. */
function paramPosition(fn: FunctionInfo, param: string): number {
  const offset = selfOffset(fn);
  const index = fn.params.findIndex((p) => p.name === param);
  return index < offset ? -1 : index - offset;
}

/** From a call up through `await`, parentheses and chained method calls: the top expression and the methods. */
function climb(call: SyntaxNode): [SyntaxNode, string[]] {
  let node = call;
  const methods: string[] = [];
  for (;;) {
    const p = node.parent;
    if (!p) break;
    if (p.type === 'await' || p.type === 'parenthesized_expression') {
      node = p;
      continue;
    }
    if (p.type === 'attribute' && same(p.childForFieldName('object'), node) && p.parent?.type === 'call' && same(p.parent.childForFieldName('function'), p)) {
      methods.push(p.childForFieldName('attribute')?.text ?? '');
      node = p.parent;
      continue;
    }
    break;
  }
  return [node, methods];
}

/** `v = <expr>`: the target name node, or null. */
function assignedTo(expr: SyntaxNode): SyntaxNode | null {
  const assignment = expr.parent;
  if (assignment?.type !== 'assignment' || !same(assignment.childForFieldName('right'), expr)) return null;
  const target = assignment.childForFieldName('left');
  return target?.type === 'identifier' ? target : null;
}

/** `v = <load of M by id parameter p>` where `v` is then only read for one attribute. */
function resolvedAttribute(model: FileModel, load: RowLoad, fn: FunctionInfo): ResolvedAttr | null {
  const target = assignedTo(load.expr);
  const attr = target ? soleAttributeRead(model, fn, target) : null;
  return attr ? { position: load.position, param: load.param, attr, model: load.entity, qualified: load.qualified } : null;
}

/**
 * `v = await loader(…, p, …)` with `p` an id parameter, a call the repo phase may follow to a
 * function that returns a load by that argument; `v` then read for one attribute only.
 */
function resolvedThroughLoader(model: FileModel, call: CallInfo): ResolvedAttr | null {
  if (!/^[\w.]+$/.test(call.calleeText) || (call.qualifiedName && LIBRARY_CALL.test(call.qualifiedName))) return null;
  const fn = model.functions[call.functionIndex]!;
  const [expr, methods] = climb(call.node);
  if (methods.length) return null;
  const target = assignedTo(expr);
  if (!target) return null;
  const { positional, keywords } = callArgs(call.node);
  let found: [number | string, string] | null = null;
  const consider = (arg: number | string, node: SyntaxNode) => {
    if (node.type !== 'identifier' || !ID_PARAM.test(node.text) || paramPosition(fn, node.text) < 0) return;
    found = found ? ['', ''] : [arg, node.text];
  };
  positional.forEach((n, i) => consider(i, n));
  for (const [k, n] of keywords) consider(k, n);
  const loaderArg = found as [number | string, string] | null;
  if (!loaderArg || loaderArg[1] === '') return null;
  const attr = soleAttributeRead(model, fn, target);
  if (!attr) return null;
  return { position: paramPosition(fn, loaderArg[1]), param: loaderArg[1], attr, model: '', qualified: '', loaderArg: loaderArg[0] };
}

/** `return <load>` or `v = <load>` … `return v` (with only None checks besides): the function is a loader. */
function returnsLoad(model: FileModel, load: RowLoad, fn: FunctionInfo): boolean {
  if (load.expr.parent?.type === 'return_statement') return true;
  const target = assignedTo(load.expr);
  return !!target && onlyReturned(model, fn, target);
}

/**
 * The one attribute (other than `id`) the function reads on `target`'s variable, when every
 * other use of the variable is a None/truthiness check; null when it escapes, is mutated, has a
 * method called, is rebound, or has no attribute read at all (an existence check only).
 */
function soleAttributeRead(model: FileModel, fn: FunctionInfo, target: SyntaxNode): string | null {
  const name = target.text;
  if (assignmentsTo(model, name).filter((a) => a.functionIndex === fn.index).length !== 1) return null;
  const attributes = new Set<string>();
  for (const id of variableRefs(fn.node, name)) {
    if (same(id, target)) continue;
    const parent = id.parent;
    if (!parent) return null;
    if (parent.type === 'attribute') {
      const attr = parent.childForFieldName('attribute')?.text ?? '';
      if (!isPlainRead(parent)) return null;
      if (attr !== 'id') attributes.add(attr);
      continue;
    }
    if (!isExistenceCheck(id)) return null;
  }
  return attributes.size === 1 ? [...attributes][0]! : null;
}

/** Every use of `target`'s variable is `return v` or a None/truthiness check. */
function onlyReturned(model: FileModel, fn: FunctionInfo, target: SyntaxNode): boolean {
  const name = target.text;
  if (assignmentsTo(model, name).filter((a) => a.functionIndex === fn.index).length !== 1) return false;
  let returned = false;
  for (const id of variableRefs(fn.node, name)) {
    if (same(id, target)) continue;
    const parent = id.parent;
    if (parent?.type === 'return_statement') returned = true;
    else if (!isExistenceCheck(id)) return false;
  }
  return returned;
}

/** `v.attr` used as a value: not assigned, deleted, called, or changed through a mutating method. */
function isPlainRead(attribute: SyntaxNode): boolean {
  let top = attribute;
  while ((top.parent?.type === 'attribute' || top.parent?.type === 'subscript') && same(top.parent.namedChild(0), top)) top = top.parent;
  const p = top.parent;
  if (!p) return false;
  if ((p.type === 'assignment' || p.type === 'augmented_assignment') && same(p.childForFieldName('left'), top)) return false;
  if (p.type === 'delete_statement' || p.type === 'pattern_list' || p.type === 'tuple_pattern') return false;
  if (p.type === 'call' && same(p.childForFieldName('function'), top)) {
    // `v.method()` acts on the object; `v.attr.strip()` only reads the attribute.
    if (same(top, attribute)) return false;
    const last = top.type === 'attribute' ? (top.childForFieldName('attribute')?.text ?? '') : '';
    if (MUTATORS.test(last)) return false;
  }
  return true;
}

/** `v is None`, `v is not None`, `not v`, `if v:`, `assert v`, `v and …`, `x if v else y`. */
function isExistenceCheck(id: SyntaxNode): boolean {
  const p = id.parent;
  if (!p) return false;
  switch (p.type) {
    case 'comparison_operator':
      // `v is None`, `v is not None`, `v == None`, `v != None`.
      return p.namedChildCount === 2 && p.namedChildren.some((c) => c.type === 'none') && !/[<>]|\bin\b/.test(p.text);
    case 'not_operator':
    case 'assert_statement':
      return true;
    case 'if_statement':
    case 'elif_clause':
    case 'while_statement':
      return same(p.childForFieldName('condition'), id);
    case 'conditional_expression':
      return same(p.namedChild(1), id);
    case 'boolean_operator':
      // `v and v.attr` is v only when v is falsy (None); `v or x` would hand v on.
      return p.child(1)?.type === 'and' && same(p.childForFieldName('left'), id);
    default:
      return false;
  }
}

// --- caller side -------------------------------------------------------------------------------

interface HeldParam {
  type: string;
  provider: string;
}

/** Parameters that hold an object the function got whole: annotated with a class, or injected by `Depends(provider)`. */
function heldParams(model: FileModel, fn: FunctionInfo): Map<string, HeldParam> {
  const out = new Map<string, HeldParam>();
  if (!fn.params.length) return out;
  fn.params.forEach((p, i) => {
    if (i === 0 && fn.className && /^(self|cls)$/.test(p.name)) return;
    if (!(p.annotation && /[A-Z]/.test(p.annotation)) && !(p.defaultText && /Depends|Security/.test(p.defaultText))) return;
    const inAnnotation = p.annotation ? /Annotated\[.*?,\s*((?:[\w.]*\.)?(?:Depends|Security)\(.*)\]$/s.exec(p.annotation)?.[1] : undefined;
    const dep = DEPENDS.exec(p.defaultText ?? '') ?? (inAnnotation ? DEPENDS.exec(inAnnotation) : null);
    const provider = dep?.[1] ? (resolveName(model, dep[1]) ?? '') : '';
    const cls = p.annotation ? annotationClass(p.annotation) : null;
    const type = cls ? (resolveName(model, cls) ?? '') : '';
    // Library types (sessions, requests, background tasks) are neither entities nor identities.
    if (LIBRARY_TYPE.test(type) || (!type && !provider)) return;
    out.set(p.name, { type, provider });
  });
  return out;
}

/** The class an annotation names: `User`, `Optional[User]`, `User | None`, `Annotated[User, …]`, `"User"`. */
function annotationClass(annotation: string): string | null {
  let t = annotation.trim().replace(/^["']|["']$/g, '');
  for (;;) {
    const m = /^(?:typing\.)?(?:Optional|Annotated)\[\s*(.*)\]$/s.exec(t);
    if (!m) break;
    t = m[1]!.split(',')[0]!.trim();
  }
  t = t.replace(/\s*\|\s*None$/, '').replace(/^None\s*\|\s*/, '').replace(/^["']|["']$/g, '');
  return /^([a-z_]\w*\.)*[A-Z]\w*$/.test(t) ? t : null;
}

function groupCalls(model: FileModel): Map<number, CallInfo[]> {
  const out = new Map<number, CallInfo[]>();
  for (const c of model.calls) {
    const list = out.get(c.functionIndex);
    if (list) list.push(c);
    else out.set(c.functionIndex, [c]);
  }
  return out;
}

function heldAttrPasses(model: FileModel, fn: FunctionInfo, text: string, held: Map<string, HeldParam>, calls: CallInfo[]): Effect[] {
  const fnIndex = fn.index;
  const out: Effect[] = [];
  for (const call of calls) {
    if (!/^[\w.]+$/.test(call.calleeText)) continue;
    if (call.qualifiedName && LIBRARY_CALL.test(call.qualifiedName)) continue;
    if (classifyDbCall(model, call)) continue;
    const { positional, keywords } = callArgs(call.node);
    const splat = positional.findIndex((n) => n.type === 'list_splat' || n.type === 'dictionary_splat');
    const candidates: [number | string, SyntaxNode][] = [
      ...positional.slice(0, splat < 0 ? positional.length : splat).map((n, i): [number, SyntaxNode] => [i, n]),
      ...keywords,
    ];
    for (const [arg, node] of candidates) {
      if (node.type !== 'attribute') continue;
      const key = node.childForFieldName('attribute')?.text ?? '';
      const obj = node.childForFieldName('object');
      if (!ID_PARAM.test(key) || obj?.type !== 'identifier') continue;
      const param = held.get(obj.text);
      if (!param) continue;
      // Rebound in the function before the call: no longer the parameter.
      const a = lastAssignment(model, obj.text, fnIndex, call.line);
      if (a && a.functionIndex === fnIndex) continue;
      const fields = new Set<string>(attributesReadOn(text, obj.text));
      if (param.type) for (const f of classIdFields(model, param.type)) fields.add(f);
      fields.delete(key);
      const fact: HeldAttrPass = { arg, variable: obj.text, key, type: param.type, provider: param.provider, fields: [...fields].sort() };
      out.push({ kind: PASSES_HELD_ATTR, what: JSON.stringify(fact), line: call.line, column: call.column });
      break;
    }
  }
  return out;
}

/** `*_id` attributes the function's text reads on a name (`principal.tenant_id`, also in f-strings): evidence of what the object carries. */
function attributesReadOn(text: string, name: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(new RegExp(`(?<![\\w.])${name}\\.(\\w+_id)\\b(?!\\s*\\()`, 'g'))) out.add(m[1]!);
  return [...out];
}

// --- classes and providers ---------------------------------------------------------------------

const classIndex = new WeakMap<FileModel, Map<string, SyntaxNode>>();

/** Top-level classes of the file by name. */
function classesOf(model: FileModel): Map<string, SyntaxNode> {
  let map = classIndex.get(model);
  if (map) return map;
  map = new Map();
  for (const stmt of model.root.namedChildren) {
    const node = stmt.type === 'decorated_definition' ? stmt.childForFieldName('definition') : stmt;
    if (node?.type !== 'class_definition') continue;
    const name = node.childForFieldName('name')?.text;
    if (name) map.set(name, node);
  }
  classIndex.set(model, map);
  return map;
}

/**
 * `*_id` fields of a class declared in this file (class-level names, `self.x = …` in its
 * methods), including those of same-file base classes. Empty for a class defined elsewhere.
 */
function classIdFields(model: FileModel, qualified: string, depth = 0): string[] {
  const prefix = `${model.moduleName}.`;
  if (depth > 3 || !qualified.startsWith(prefix)) return [];
  const name = qualified.slice(prefix.length);
  const node = classesOf(model).get(name);
  if (!node) return [];
  const out = new Set<string>();
  for (const stmt of node.childForFieldName('body')?.namedChildren ?? []) {
    const inner = stmt.type === 'expression_statement' ? stmt.namedChild(0) : null;
    const left = inner?.type === 'assignment' ? inner.childForFieldName('left') : null;
    if (left?.type === 'identifier' && /_id$/.test(left.text)) out.add(left.text);
  }
  for (const a of model.assignments) {
    const m = /^self\.(\w+_id)$/.exec(a.target);
    if (m && a.functionIndex >= 0 && model.functions[a.functionIndex]!.qualifiedName.startsWith(`${name}.`)) out.add(m[1]!);
  }
  for (const base of node.childForFieldName('superclasses')?.namedChildren ?? []) {
    if (base.type !== 'identifier' && base.type !== 'attribute') continue;
    const q = resolveName(model, base.text);
    if (q) for (const f of classIdFields(model, q, depth + 1)) out.add(f);
  }
  return [...out];
}

/**
 * Does some function of the file return (by annotation) a class of the file that declares
 * `*_id` fields? Only then are return annotations read.
 */
function returnsIdFieldClass(model: FileModel): boolean {
  const source = model.source;
  if (!source.includes('_id') || !source.includes('->')) return false;
  const classes = new Set([...source.matchAll(/^class (\w+)/gm)].map((m) => m[1]!));
  if (!classes.size) return false;
  const returned = new Set<string>();
  for (let i = source.indexOf('->'); i >= 0; i = source.indexOf('->', i + 2)) {
    const colon = source.indexOf(':', i);
    const annotation = source.slice(i + 2, colon < 0 ? i + 120 : Math.min(colon, i + 120));
    for (const w of annotation.match(/[A-Z]\w*/g) ?? []) if (classes.has(w)) returned.add(w);
  }
  return [...returned].some((n) => classIdFields(model, `${model.moduleName}.${n}`).length > 0);
}

/** The `*_id` fields of what a function returns, when its return annotation names a class of this file. */
function providedFields(model: FileModel, fn: FunctionInfo): string[] {
  if (fn.className) return [];
  const cls = fn.returnType ? annotationClass(fn.returnType) : null;
  const q = cls ? resolveName(model, cls) : null;
  return q ? classIdFields(model, q).sort() : [];
}

function same(a: SyntaxNode | null | undefined, b: SyntaxNode | null | undefined): boolean {
  return !!a && !!b && a.startIndex === b.startIndex && a.endIndex === b.endIndex && a.type === b.type;
}
