/**
 * How a loop's N grows: the domain of its iterable. An N+1 over rows that grow with the stored
 * data (every follower, every member, every search result) gets worse as the service lives; one
 * over what a client sent in one request (the ids it selected, the tags of the dataset it saves,
 * the identifiers a form field holds) is bounded by that request.
 *
 * - `rows`: a query's result (`q.all()`, `Model.query.filter(...)`, a name holding one), a
 *   collection attribute of a loaded object (`event.contributions`, `self.event.sessions`);
 * - `input`: a value reached from a request handler's parameters, from `request.*`, from a form
 *   field's `.data`, or from the parameters of a deserializer or validator (marshmallow
 *   `_deserialize`, WTForms `process_formdata`/`validate_*`, `@validator`-style decorators) or
 *   of a function webargs fills from the request (`@use_kwargs`, `@use_args`);
 *   rows selected by such ids (`.in_(ids)`) are bounded by them too;
 * - `call`: the result of a call that is not a query here; the repo phase decides (a same-repo
 *   function whose rows come from a query is `rows`, anything else `unknown`);
 * - `param`: a parameter of the loop's own (ordinary) function, by position or keyword; the repo
 *   phase asks what its callers pass (`argumentDomains`): rows when one passes rows, input when
 *   all pass input. A collection attribute of such a parameter (`payload.tags`) is `held`: rows
 *   (an attribute of a loaded object) unless every caller passes request input there — a service
 *   function's `item_in: ItemUpdate` that the handler hands on is the request's body;
 * - `fixed`: only as what a call passes (`argumentDomains`): a handful of items the caller writes
 *   out (`notify([owner])`, `(a, b)`, a local bound once to such a literal): a callee's loop over
 *   that parameter runs as often whatever the tables hold;
 * - `fields`: the fields of one object (`patch.model_dump().items()`, `dataclasses.asdict(x)`,
 *   `vars(x)`, `x.__dict__`): as many as its class declares;
 * - `unknown`: anything else — a parameter of an ordinary helper, a `while` loop, an attribute of
 *   `self` set elsewhere.
 *
 * Syntax only, and cheap: names are followed to their last assignment (a few steps deep); the
 * caller supplies the one fact it knows better (is this expression a query's rows?).
 */
import type { SyntaxNode } from '../parse/parser.js';
import { assignmentsTo, callAt, isPyramidView, variableRefs, type FileModel, type LoopInfo } from './model.js';
import { readsBundledValue } from './blockingIo.js';
import { grownIn, smallLiteral } from './smallLiterals.js';

export type LoopDomainKind = 'rows' | 'input' | 'call' | 'param' | 'fixed' | 'bundled' | 'fields' | 'unknown';

export interface LoopDomain {
  kind: LoopDomainKind;
  /** For `call`: where the call starts (1-based line and column, as `CallInfo`), for the repo phase to resolve. */
  line?: number;
  column?: number;
  /** For `param`: the position of the loop function's parameter (after `self`/`cls`; -1 when keyword-only), for its callers to decide. */
  position?: number;
  /** For `param`: the parameter's name, for callers that pass it by keyword. */
  name?: string;
  /** For `param`: the loop is over an attribute of the parameter (rows unless every caller passes input). */
  held?: boolean;
  /** For `param`: the loop is nested with loops whose N is not known here (the parameter's few items may each be many). */
  nested?: boolean;
  /**
   * For a `held` param: the parameter is typed with a class of the project's that is not an ORM
   * model (`item_in: ItemUpdate`), a schema the callers fill: input unless one passes rows.
   */
  dto?: boolean;
}

/** Does the expression (in function `fnIndex`, before `line`) hold a query's rows? Supplied by the caller. */
export type RowsOracle = (expr: SyntaxNode, fnIndex: number, line: number) => boolean;

const UNKNOWN: LoopDomain = { kind: 'unknown' };
const ROWS: LoopDomain = { kind: 'rows' };
const INPUT: LoopDomain = { kind: 'input' };
const FIXED: LoopDomain = { kind: 'fixed' };
/** Data shipped with the code: a JSON/YAML/TOML file read from beside the module (`json.load(open(Path(__file__).parent / "seed.json"))`). */
const BUNDLED: LoopDomain = { kind: 'bundled' };
/**
 * The fields of one object: a pydantic model's `model_dump()`/`dict()`, a dataclass's `asdict()`,
 * `vars(obj)`, `obj.__dict__` — as many items as its class declares, whatever the tables hold.
 */
const FIELDS: LoopDomain = { kind: 'fields' };
/** Methods that dump an object's fields into a dict. */
const DUMP_METHODS = new Set(['model_dump', 'dict']);
/** Functions that do the same. */
const DUMP_FUNCTIONS = /^(vars|(dataclasses\.)?asdict|attr\.asdict|attrs\.asdict)$/;

/** Calls that hand their (first) argument's items on: the domain is the argument's. */
const PASS_THROUGH = new Set(['enumerate', 'sorted', 'list', 'set', 'tuple', 'reversed', 'iter', 'frozenset', 'zip', 'filter', 'map', 'dict', 'json.loads', 'itertools.chain', 'chain']);
/** Methods only a query has: whatever the receiver was built from, the result is rows (`search(q).filter(...)`). */
const QUERY_METHODS = new Set(['filter', 'filter_by', 'order_by', 'options', 'outerjoin', 'with_entities', 'yield_per', 'execution_options', 'scalars', 'mappings', 'fetchall', 'with_parent']);
/** Result methods others have too (`all`, `unique`): rows when the receiver is. */
const QUERY_CHAIN = new Set(['all', 'unique', 'where', 'join', 'distinct', 'limit', 'group_by', 'having', 'partitions']);
/** Methods whose result's items come from the receiver. */
const RECEIVER_ITEMS = new Set(['items', 'keys', 'values', 'copy', 'get', 'getlist', 'pop', 'split', 'splitlines']);
/** Methods that deserialize or validate what a client sent: their parameters are request input. */
const INPUT_METHODS = /^(_?deserialize|process_formdata|pre_validate|post_validate|_?validate(_\w+)?|load|loads|to_python)$/;
/** Decorators of deserializer/validator hooks (marshmallow, pydantic, attrs-style). */
const INPUT_DECORATORS = /(^|\.)(validates?|validator|field_validator|model_validator|root_validator|validates_schema|pre_load|post_load|use_kwargs|use_args)$/;
/** A parameter the framework injects: a dependency, not what the client sent. */
const INJECTED = /\b(Depends|Security|Inject|Provide|Dependency)\b/;
/** Builtins and common library calls whose result is no repo function's rows. */
const NOT_REPO_CALLEES = new Set(['_', 'str', 'int', 'float', 'bool', 'len', 'repr', 'sum', 'min', 'max', 'abs', 'round', 'getattr', 'isinstance', 'type', 'id', 'hash', 'format', 'range', 'open', 'print', 'super', 'json.dumps', 'gettext', 'ngettext', 'lazy_gettext', 'url_for', 'jsonify', 'next', 'any', 'all', 'datetime', 'timedelta', 'Decimal', 'UUID', 'Path']);
/** Names that hold the current request in the web frameworks we know. */
const REQUEST_NAMES = new Set(['request', 'req']);

const loopMemo = new WeakMap<LoopInfo, LoopDomain>();

/** The domain of the loop's iterable (once per loop: every per-item call of a loop asks). */
export function loopDomain(model: FileModel, loop: LoopInfo, isRows: RowsOracle): LoopDomain {
  const known = loopMemo.get(loop);
  if (known) return known;
  let d = UNKNOWN;
  if (loop.kind !== 'while' && loop.iterable) d = domainOf(model, loop.iterable, loop.functionIndex, loop.node.startPosition.row + 1, isRows, 0);
  loopMemo.set(loop, d);
  return d;
}

/**
 * The domain of nested loops' N (the product of theirs): rows when any loop is over rows, input
 * when every loop is, else what is left to decide (the first `call`) or unknown.
 */
export function nestedLoopDomain(model: FileModel, loops: readonly LoopInfo[], isRows: RowsOracle): LoopDomain {
  let call: LoopDomain | null = null;
  let held: LoopDomain | null = null;
  let unknown = false;
  // Every loop's N fixed by the code (data shipped with it, or one object's fields), and every one by fields.
  let fixedByCode = loops.length > 0;
  let fields = loops.length > 0;
  for (const loop of loops) {
    const d = loopDomain(model, loop, isRows);
    if (d.kind === 'rows') return ROWS;
    if (d.kind !== 'bundled' && d.kind !== 'fields') fixedByCode = false;
    else fields &&= d.kind === 'fields';
    // A loaded object's collection held by a parameter: rows unless its callers say otherwise,
    // the larger claim before another loop's call.
    if (d.kind === 'param' && d.held && !d.dto) held ??= d;
    else if (d.kind === 'call' || d.kind === 'param') {
      // A second loop whose N is decided elsewhere: the first one's callers do not bound the nest.
      if (call) unknown = true;
      call ??= d;
    } else if (d.kind === 'unknown') unknown = true;
  }
  if (fixedByCode) return fields ? FIELDS : BUNDLED;
  if (held) return held;
  // A parameter's loop nested with a loop whose N is not known: the callers' few items may each
  // hold many (`for group in groups: for t in group:`).
  if (call) return call.kind === 'param' && unknown ? { ...call, nested: true } : call;
  return unknown ? UNKNOWN : INPUT;
}

/**
 * A domain as a short code for a summary string: `r`, `i`, `u`, `c<line>:<column>`, or a
 * parameter's `a<position>~<name>` (`h…` when held, `k` for the position of a keyword-only one).
 */
export function encodeDomain(d: LoopDomain): string {
  if (d.kind === 'call') return `c${d.line}:${d.column}`;
  if (d.kind === 'param') return `${d.dto ? 'd' : d.held ? 'h' : 'a'}${d.position! >= 0 ? d.position : 'k'}${d.name ? `~${d.name}` : ''}${d.nested ? '!' : ''}`;
  return d.kind === 'fields' ? 's' : d.kind[0]!;
}

export function decodeDomain(code: string): LoopDomain {
  if (code === 'r') return ROWS;
  if (code === 'i') return INPUT;
  if (code === 'f') return FIXED;
  if (code === 'b') return BUNDLED;
  if (code === 's') return FIELDS;
  const m = /^c(\d+):(\d+)$/.exec(code);
  if (m) return { kind: 'call', line: Number(m[1]), column: Number(m[2]) };
  // A Python name may be any identifier (PEP 3131): everything up to the separators other facts use.
  const a = /^([ahd])(\d+|k)(?:~([^|,;=.~\s!]+))?(!)?$/.exec(code);
  if (!a) return UNKNOWN;
  return {
    kind: 'param', position: a[2] === 'k' ? -1 : Number(a[2]), ...(a[3] ? { name: a[3] } : {}),
    ...(a[1] !== 'a' ? { held: true } : {}), ...(a[1] === 'd' ? { dto: true } : {}), ...(a[4] ? { nested: true } : {}),
  };
}

/**
 * What a call passes, as far as the repo phase needs it to decide a callee's loop over a
 * parameter: one comma-separated code per positional argument (`r` rows, `i` request input,
 * `f` a handful of items written out, `c<line>:<column>` a call's result for the repo phase to decide, `u` anything else), then,
 * after a `;`, `name=code` for each keyword argument that is not `u` (`u,i;item_in=i`); null when
 * every one is `u` (most calls: no fact to keep). A splat ends what can be known. Only names,
 * attributes and calls are classified (`users`, `event.contributions`, `members_of(group)`):
 * cheap lookups, and a subscript of request input (`request.json["ids"]`). Decode with {@link passedDomain}.
 */
export function argumentDomains(model: FileModel, call: { node: SyntaxNode; argsOffset: number }, fnIndex: number, line: number, isRows: RowsOracle): string | null {
  // The argument list read from the text when it is plain (no tree access for most calls); the
  // tree only for an attribute or a call among the arguments.
  const texts = call.argsOffset >= 0 ? argumentTexts(model.source, call.argsOffset) : null;
  let nodes: SyntaxNode[] | null = null;
  const nodeAt = (i: number): SyntaxNode | null => {
    nodes ??= (call.node.childForFieldName('arguments')?.namedChildren ?? []).filter((n) => n.type !== 'comment');
    return nodes[i] ?? null;
  };
  const count = texts ? texts.length : (nodeAt(0), nodes!.length);
  const positional: string[] = [];
  const keywords: string[] = [];
  let any = false;
  let named = false;
  for (let i = 0; i < count; i++) {
    let text = texts ? texts[i]! : null;
    let node = text === null ? nodeAt(i) : null;
    let keyword: string | null = null;
    if (text !== null) {
      const kw = KEYWORD.exec(text);
      if (kw) {
        keyword = kw[1]!;
        text = kw[2]!.trim();
      } else if (text.startsWith('*')) break;
    } else if (node!.type === 'keyword_argument') {
      keyword = node!.childForFieldName('name')?.text ?? null;
      node = node!.childForFieldName('value');
      if (!keyword || !node) continue;
    } else if (node!.type === 'list_splat' || node!.type === 'dictionary_splat') break;
    // Positional arguments after a keyword one are a syntax error: nothing to read.
    if (keyword === null && named) break;
    if (keyword !== null) named = true;
    const code = argumentCode(model, text, node, () => (keyword === null ? nodeAt(i) : nodeAt(i)?.childForFieldName('value') ?? null), fnIndex, line, isRows);
    if (code !== 'u') any = true;
    if (keyword === null) positional.push(code);
    else if (code !== 'u') keywords.push(`${keyword}=${code}`);
  }
  if (!any) return null;
  return keywords.length ? `${positional.join(',')};${keywords.join(',')}` : positional.join(',');
}

const KEYWORD = /^([A-Za-z_]\w*)\s*=(?!=)([\s\S]*)$/;

/** Is `name` a local of function `fnIndex` bound once, before `line` and outside any loop, to a literal of a handful of items? */
function boundToSmallLiteral(model: FileModel, name: string, fnIndex: number, line: number): boolean {
  if (fnIndex < 0) return false;
  const own = assignmentsTo(model, name).filter((a) => a.functionIndex === fnIndex);
  if (own.length !== 1 || own[0]!.loops.length || own[0]!.line >= line) return false;
  let v = own[0]!.value;
  while (v && v.type === 'parenthesized_expression') v = v.namedChild(0);
  if (!smallLiteral(v ?? null)) return false;
  // Used only where it is bound and in this call: not handed to a helper that fills it, not aliased.
  if (variableRefs(model.functions[fnIndex]!.node, name).length > 2) return false;
  // Not one grown afterwards (`ids = [first]; ids.extend(rest)`, `ids += more`, `ids[k] = v`).
  return !grownIn(model.functions[fnIndex]!.node.text, name);
}

/**
 * Is `name` a module-level name of this file bound once, outside any function, to a literal of a
 * handful of items (`UNIQUE_FIELDS = ("username", "email")`), and grown nowhere in the file? A
 * call passing it hands over as many items as the code writes out.
 */
function moduleSmallLiteral(model: FileModel, name: string): boolean {
  const all = assignmentsTo(model, name);
  if (all.length !== 1 || all[0]!.functionIndex >= 0 || all[0]!.loops.length) return false;
  let v = all[0]!.value;
  while (v && v.type === 'parenthesized_expression') v = v.namedChild(0);
  if (!smallLiteral(v ?? null)) return false;
  return !grownIn(model.source, name, true);
}

/** The code of one argument: its text when plain, else its node (`nodeOf` fetches it when the text is not enough). */
function argumentCode(model: FileModel, text: string | null, node: SyntaxNode | null, nodeOf: () => SyntaxNode | null, fnIndex: number, line: number, isRows: RowsOracle): string {
  const type = text === null ? node!.type : IDENTIFIER.test(text) ? 'identifier' : DOTTED.test(text) ? 'attribute' : CALLED.test(text) ? 'call' : 'other';
  let d: LoopDomain = UNKNOWN;
  if (type === 'identifier') {
    const name = text ?? node!.text;
    if (name !== 'self' && name !== 'cls') d = memoisedNameDomain(model, name, fnIndex, line, isRows);
    if (d.kind === 'unknown' && name !== 'self' && name !== 'cls' && (boundToSmallLiteral(model, name, fnIndex, line) || moduleSmallLiteral(model, name))) return 'f';
  } else if (text !== null ? type === 'other' && /^[[({]/.test(text) : /^(list|tuple|set|dictionary)$/.test(type)) {
    // `notify([owner])`, `check((a, b))`: the items the caller writes out.
    const lit = node ?? nodeOf();
    if (smallLiteral(lit) && !lit!.namedChildren.some((item) => domainOf(model, item, fnIndex, line, isRows, 0).kind === 'rows')) return 'f';
  } else if (type === 'attribute') {
    const n = node ?? nodeOf();
    if (n) d = domainOf(model, n, fnIndex, line, isRows, 0);
  } else if (type === 'subscript' || (text !== null && type === 'other' && SUBSCRIPTED.test(text))) {
    // `request.json["ids"]`, `payload["items"]`: a part of what the request sent.
    const n = node ?? nodeOf();
    if (n?.type === 'subscript') d = domainOf(model, n, fnIndex, line, isRows, 0);
  } else if (type === 'call') {
    // A call's result only when the call may be the repo's (`members_of(g)`, not `str(x)`): each
    // one named keeps that call in the summary.
    const callee = text !== null ? text.slice(0, text.indexOf('(')).trim() : node!.childForFieldName('function')?.text ?? '';
    const n = /^[A-Za-z_][\w.]*$/.test(callee) && !NOT_REPO_CALLEES.has(callee) ? node ?? nodeOf() : null;
    if (n) d = domainOf(model, n, fnIndex, line, isRows, 0);
  }
  // A collection of the caller's own parameter (`author.books`): a loaded object's rows, or (a
  // schema's list) what the caller's callers sent, as the callee's loop would read it here.
  if (d.kind === 'param' && d.held) return d.dto ? 'i' : 'r';
  // The caller's own parameter passed on (`card.set_labels(labels)` in a wrapper handed `labels`):
  // what the caller's callers pass there decides (the repo phase follows it up).
  if (d.kind === 'param' && !d.nested) return encodeDomain(d);
  return d.kind === 'rows' || d.kind === 'input' || d.kind === 'call' ? encodeDomain(d) : 'u';
}

/**
 * The code an {@link argumentDomains} string gives the callee's parameter at `position` (-1 when
 * keyword-only) named `name`: by position, else by keyword; undefined when the call passes
 * nothing known there.
 */
export function passedDomain(what: string, position: number, name: string | undefined): string | undefined {
  const semi = what.indexOf(';');
  const positional = semi < 0 ? what : what.slice(0, semi);
  const byPosition = position >= 0 && positional !== '' ? positional.split(',')[position] : undefined;
  if (byPosition !== undefined || semi < 0 || !name) return byPosition;
  for (const kw of what.slice(semi + 1).split(',')) if (kw.startsWith(`${name}=`)) return kw.slice(name.length + 1);
  return undefined;
}

const IDENTIFIER = /^[A-Za-z_]\w*$/;
const DOTTED = /^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$/;
const CALLED = /^[A-Za-z_][\w.]*\s*\(/;
const SUBSCRIPTED = /^[A-Za-z_][\w.]*\s*\[[^\]]*\]$/;

/**
 * The top-level arguments of a call read from the source after its `(`, trimmed; null when the
 * list holds anything a plain split could misread (strings, comments, line breaks, lambdas).
 */
function argumentTexts(source: string, from: number): string[] | null {
  let depth = 0;
  let start = from;
  const args: string[] = [];
  for (let i = from; i < source.length; i++) {
    const c = source.charCodeAt(i);
    if (c === 34 || c === 39 || c === 35 || c === 10 || c === 13 || c === 92) return null;
    if (c === 40 || c === 91 || c === 123) depth++;
    else if (c === 41 || c === 93 || c === 125) {
      if (depth === 0) {
        if (c !== 41) return null;
        const last = source.slice(start, i).trim();
        if (last) args.push(last);
        return args.some((a) => /\blambda\b|\bfor\b/.test(a)) ? null : args;
      }
      depth--;
    } else if (c === 44 && depth === 0) {
      args.push(source.slice(start, i).trim());
      start = i + 1;
    }
  }
  return null;
}

const nameMemo = new WeakMap<FileModel, Map<string, LoopDomain>>();

/** {@link nameDomain} of a name passed as an argument, once per function, name and reaching assignment. */
function memoisedNameDomain(model: FileModel, name: string, fnIndex: number, line: number, isRows: RowsOracle): LoopDomain {
  let reaching = -1;
  for (const a of assignmentsTo(model, name)) if (a.functionIndex === fnIndex && a.line < line && a.line > reaching) reaching = a.line;
  const key = `${fnIndex}\0${name}\0${reaching}`;
  let memo = nameMemo.get(model);
  if (!memo) nameMemo.set(model, (memo = new Map()));
  let d = memo.get(key);
  if (!d) memo.set(key, (d = domainOf(model, null, fnIndex, line, isRows, 0, name)));
  return d;
}

/** The domain of an expression's items. */
export function domainOf(model: FileModel, expr: SyntaxNode | null, fnIndex: number, line: number, isRows: RowsOracle, depth: number, name?: string): LoopDomain {
  if (name !== undefined) return nameDomain(model, name, fnIndex, line, isRows, depth);
  let node = expr;
  while (node && (node.type === 'parenthesized_expression' || node.type === 'await')) node = node.namedChild(0);
  if (!node || depth > 16) return UNKNOWN;
  const next = (n: SyntaxNode | null) => domainOf(model, n, fnIndex, line, isRows, depth + 1);
  switch (node.type) {
    case 'identifier':
      return nameDomain(model, node.text, fnIndex, line, isRows, depth);
    case 'attribute': {
      if (rootedAtRequest(node)) return INPUT;
      const attr = node.childForFieldName('attribute')?.text ?? '';
      if (attr === '__dict__') return FIELDS;
      const object = node.childForFieldName('object');
      // `form.tags.data`: what the client put in a form field.
      if (attr === 'data' && object?.type === 'attribute' && /form/i.test(object.childForFieldName('object')?.text ?? '')) return INPUT;
      // `self._ids`, assigned in this function (a deserializer stores what it parsed).
      const own = nameDomain(model, node.text, fnIndex, line, isRows, depth, false);
      if (own.kind !== 'unknown') return own;
      // `self.rows`, set by another method of the class (or of a base class in this file).
      if (object?.type === 'identifier' && object.text === 'self') {
        const held = classAttributeDomain(model, node.text, fnIndex, isRows, depth);
        if (held.kind !== 'unknown') return held;
      }
      const inner = next(object);
      if (inner.kind === 'input') return INPUT;
      // A collection attribute of a loaded object: `event.contributions`, `self.event.sessions`.
      if (/^[a-z]\w*$/.test(attr) && !attr.startsWith('_') && object && loadedObject(model, object, fnIndex)) {
        // Of the function's own parameter: rows, unless every caller hands it the request's
        // input (a service's `item_in.tags`, with `item_in` the handler's body) — and a parameter
        // typed with an ORM model is a row whatever the callers pass.
        if (inner.kind === 'param' && !inner.held && object.type === 'identifier') {
          const annotation = paramAnnotation(model, fnIndex, object.text);
          if (!annotatedModel(model, annotation)) return { ...inner, held: true, ...(schemaAnnotation(model, annotation) ? { dto: true } : {}) };
        }
        return ROWS;
      }
      return UNKNOWN;
    }
    case 'subscript': {
      if (rootedAtRequest(node)) return INPUT;
      const inner = next(node.childForFieldName('value'));
      return inner.kind === 'input' ? INPUT : UNKNOWN;
    }
    case 'list_comprehension':
    case 'set_comprehension':
    case 'generator_expression':
    case 'dictionary_comprehension': {
      const clause = node.namedChildren.find((c) => c.type === 'for_in_clause');
      return next(clause?.childForFieldName('right') ?? null);
    }
    case 'boolean_operator':
      return next(node.childForFieldName('left'));
    case 'binary_operator': {
      const op = node.childForFieldName('operator')?.text;
      const left = next(node.childForFieldName('left'));
      if (op === '-' || op === '&') return left;
      if (op !== '+' && op !== '|') return UNKNOWN;
      return combine(left, next(node.childForFieldName('right')));
    }
    case 'conditional_expression': {
      const [a, , b] = node.namedChildren;
      return combine(next(a ?? null), next(b ?? null));
    }
    case 'call':
      return callDomain(model, node, fnIndex, line, isRows, depth);
    default:
      return UNKNOWN;
  }
}

function callDomain(model: FileModel, node: SyntaxNode, fnIndex: number, line: number, isRows: RowsOracle, depth: number): LoopDomain {
  const next = (n: SyntaxNode | null) => domainOf(model, n, fnIndex, line, isRows, depth + 1);
  if (rootedAtRequest(node)) return INPUT;
  const fn = node.childForFieldName('function');
  const args = node.childForFieldName('arguments')?.namedChildren.filter((a) => a.type !== 'comment' && a.type !== 'keyword_argument') ?? [];
  // The query a chain continues: a call, or a name assigned one — not a parameter (a handler's
  // `db` session is request-scoped, not what the client sent).
  const builtFrom = (receiver: SyntaxNode | null): LoopDomain => {
    if (receiver?.type !== 'identifier') return receiver?.type === 'call' ? next(receiver) : UNKNOWN;
    return nameDomain(model, receiver.text, fnIndex, line, isRows, depth + 1, false);
  };
  // Rows selected by ids (`.in_(ids)`) are as many as the ids.
  const selected = (): LoopDomain => {
    const ids = inArgument(node);
    if (!ids) return ROWS;
    const d = next(ids);
    // Ids a parameter holds (`book_ids`) or a parameter's attribute (`user.all_emails`): decided
    // as the callers fill it — input when they hand on what the request sent, rows when one
    // passes other rows' ids.
    return d.kind === 'input' ? INPUT : d.kind === 'rows' ? ROWS : d.kind === 'param' ? d : UNKNOWN;
  };
  if (isRows(node, fnIndex, line)) {
    const d = selected();
    // `q.all()` where `q` was narrowed to the ids a client sent (`q = q.filter(M.id.in_(ids))`).
    if (d.kind === 'rows' && fn?.type === 'attribute' && builtFrom(fn.childForFieldName('object')).kind === 'input') return INPUT;
    return d;
  }
  const callee = fn?.text ?? '';
  if (validated(model, node, fnIndex, line, isRows, depth)) return INPUT;
  if (pickedFromRequest(node)) return INPUT;
  if (BUNDLED_LOAD.test(callee) && args[0]) {
    const parse = callAt(model, node);
    if (parse && readsBundledValue(model, parse, args[0])) return BUNDLED;
  }
  if (DUMP_FUNCTIONS.test(callee) && args.length === 1) return FIELDS;
  if (PASS_THROUGH.has(callee)) {
    // `map(f, xs)` / `filter(f, xs)`: the items are the second argument's.
    const items = callee === 'map' || callee === 'filter' ? args.slice(1) : callee === 'zip' || callee.endsWith('chain') ? args : args.slice(0, 1);
    return items.map((a) => next(a)).reduce(combine, items.length ? next(items[0]!) : UNKNOWN);
  }
  if (fn?.type === 'attribute') {
    const method = fn.childForFieldName('attribute')?.text ?? '';
    const receiver = fn.childForFieldName('object');
    if (QUERY_METHODS.has(method)) return builtFrom(receiver).kind === 'input' ? INPUT : selected();
    if (DUMP_METHODS.has(method) && receiver?.type !== 'call') return FIELDS;
    if (QUERY_CHAIN.has(method) && next(receiver).kind === 'rows') return ROWS;
    if (RECEIVER_ITEMS.has(method)) {
      const d = next(receiver);
      if (d.kind !== 'unknown' && d.kind !== 'call') return d;
    }
  }
  // The position as the model's calls have it (1-based column), for the repo phase's `callAt`.
  const start = node.startIndex;
  return { kind: 'call', line: model.lineOf(start) + 1, column: start - (model.source.lastIndexOf('\n', start - 1) + 1) + 1 };
}

/** Parsers of a whole data file: `json.load(f)`, `yaml.safe_load(f)`, `tomllib.load(f)`, `json.loads(text)`. */
const BUNDLED_LOAD = /^(json\.loads?|yaml\.(safe_load|load|full_load)|tomllib\.load|tomli\.load|toml\.load)$/;
/** Calls that check or parse what they are given and hand back its data: `validate(data_dict, schema)`, `schema.load(payload)`, `Model.model_validate(body)`. */
const VALIDATING_CALL = /(^|[._])(validate|deserialize|load|loads|parse_obj|parse_raw|model_validate|model_validate_json|validated_data|clean)$/;

/** Is `node` a validating call whose first argument is request input (its result is that input, checked)? */
function validated(model: FileModel, node: SyntaxNode | null, fnIndex: number, line: number, isRows: RowsOracle, depth: number): boolean {
  let call = node;
  while (call && (call.type === 'parenthesized_expression' || call.type === 'await')) call = call.namedChild(0);
  if (call?.type !== 'call' || depth > 12) return false;
  if (!VALIDATING_CALL.test(call.childForFieldName('function')?.text ?? '')) return false;
  const first = call.childForFieldName('arguments')?.namedChildren.find((a) => a.type !== 'comment' && a.type !== 'keyword_argument') ?? null;
  return !!first && domainOf(model, first, fnIndex, line, isRows, depth + 1).kind === 'input';
}

/** Both sides agree, else the larger claim: rows win over input, and anything unknown is unknown. */
function combine(a: LoopDomain, b: LoopDomain): LoopDomain {
  if (a.kind === b.kind && a.kind !== 'call') return a;
  if (a.kind === 'rows' || b.kind === 'rows') return ROWS;
  return UNKNOWN;
}

/**
 * What `self.<attr>` holds when the function does not set it: the values other methods of its
 * class, or of the class's bases in this file, assign to it, when they all agree.
 */
function classAttributeDomain(model: FileModel, target: string, fnIndex: number, isRows: RowsOracle, depth: number): LoopDomain {
  let i = fnIndex;
  while (i >= 0 && !model.functions[i]!.className) i = model.functions[i]!.parent;
  const cls = i >= 0 ? model.functions[i]!.className : null;
  if (!cls || depth > 8) return UNKNOWN;
  const family = classAndBases(model, cls);
  let found: LoopDomain | null = null;
  for (const a of assignmentsTo(model, target)) {
    const owner = model.functions[a.functionIndex];
    if (!owner?.className || !family.has(owner.className) || a.fromWith) continue;
    const d = domainOf(model, a.value, a.functionIndex, a.line, isRows, depth + 1);
    if (d.kind !== 'rows' && d.kind !== 'input') return UNKNOWN;
    if (found && found.kind !== d.kind) return UNKNOWN;
    found = d;
  }
  return found ?? UNKNOWN;
}

const familyMemo = new WeakMap<FileModel, Map<string, ReadonlySet<string>>>();

/**
 * A class and its bases (by name) among the classes of this file; once per file and class (asked
 * for every `self.<attr>` a domain follows, and each ask read every class's name from the tree).
 */
function classAndBases(model: FileModel, cls: string): ReadonlySet<string> {
  let memo = familyMemo.get(model);
  if (!memo) familyMemo.set(model, (memo = new Map()));
  let family = memo.get(cls);
  if (!family) memo.set(cls, (family = classAndBasesUncached(model, cls)));
  return family;
}

function classAndBasesUncached(model: FileModel, cls: string): Set<string> {
  const out = new Set([cls]);
  const queue = [cls];
  while (queue.length) {
    const name = queue.shift()!;
    for (const c of model.classes) {
      if (c.childForFieldName('name')?.text !== name) continue;
      for (const b of c.childForFieldName('superclasses')?.namedChildren ?? []) {
        if (b.type === 'keyword_argument') continue;
        const base = b.text.slice(b.text.lastIndexOf('.') + 1);
        if (!out.has(base)) {
          out.add(base);
          queue.push(base);
        }
      }
    }
  }
  return out;
}

/** A name's domain: its last assignment before `line` in the function (or an enclosing one), else a parameter's. */
function nameDomain(model: FileModel, name: string, fnIndex: number, line: number, isRows: RowsOracle, depth: number, params = true): LoopDomain {
  let scope = fnIndex;
  while (scope >= 0) {
    let best = null;
    for (const a of assignmentsTo(model, name)) {
      if (a.functionIndex !== scope || a.line >= line || a.fromWith) continue;
      if (!best || a.line >= best.line) best = a;
    }
    if (best) return domainOf(model, best.value, scope, best.line, isRows, depth + 1);
    // `data, errors = validate(data_dict, schema)`: the first name is what the client sent, validated.
    const unpacked = model.unpackedAssignments.filter((u) => u.functionIndex === scope && u.line < line && u.names[0] === name).pop();
    if (unpacked) return validated(model, unpacked.value, scope, unpacked.line, isRows, depth) ? INPUT : UNKNOWN;
    const fn = model.functions[scope]!;
    const param = params ? fn.params.find((p) => p.name === name) : undefined;
    if (param) {
      // An injected dependency (`user = Depends(current_user)`) is resolved by the server, not sent.
      if (receivesInput(model, scope) && !INJECTED.test(`${param.annotation ?? ''} ${param.defaultText ?? ''}`) && !annotatedModel(model, param.annotation) && !viewContext(fn, name)) return INPUT;
      // The loop's own function's parameter: its callers decide (one level up, in the repo
      // phase), by position or, for a keyword-only one, by name.
      if (scope !== fnIndex || depth > 8) return UNKNOWN;
      return { kind: 'param', position: positionalSlot(fn.node, name, fn.className !== null), name };
    }
    scope = fn.parent;
  }
  if (params && REQUEST_NAMES.has(name) && model.imports.has(name)) return INPUT;
  return UNKNOWN;
}

/**
 * Is the annotation one of the project's ORM model classes (`User`, `models.User`,
 * `Optional[User]`, `"User" | None`)? A handler parameter typed so is a row the framework loaded
 * and injected (no request body is an ORM row): its collections are rows, not what a client sent.
 */
function annotatedModel(model: FileModel, annotation: string | null): boolean {
  if (!annotation || !model.modelClasses.size) return false;
  const m = /^(?:(?:typing\.)?(?:Optional|Annotated)\[\s*)?["']?(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*)/.exec(annotation.trim());
  return !!m && model.modelClasses.has(m[1]!);
}

/**
 * Does the annotation name one class (`ItemUpdate`, `schemas.ItemUpdate`, `Optional[ItemUpdate]`)
 * named as a schema of what a client sends (see {@link SCHEMA_NAME}) that is not one of the
 * project's ORM models, in a project whose models are known? Not a page of results (`Page[...]`,
 * `Pagination`), which holds rows.
 */
function schemaAnnotation(model: FileModel, annotation: string | null): boolean {
  if (!annotation || !model.modelClasses.size) return false;
  const m = /^(?:(?:typing\.)?Optional\[\s*)?["']?(?:[A-Za-z_]\w*\.)*([A-Z]\w*)["']?\s*\]?\s*(?:\|\s*None)?$/.exec(annotation.trim());
  if (!m) return false;
  const cls = m[1]!;
  return SCHEMA_NAME.test(cls) && !model.modelClasses.has(cls) && !PAGE_TYPES.test(cls) && !TYPING_NAMES.has(cls);
}

/**
 * Class names of what a client sends, as the frameworks' docs name them (`ItemCreate`,
 * `ItemUpdate`, `ItemIn`, `CreateItem`, `SignupRequest`): a context object the service builds
 * from its own queries (`ReportContext`) is not one.
 */
const SCHEMA_NAME = /^[A-Z]\w*(In|Input|Create|Update|Patch|Request|Payload|Body|Form|Params|Register|Registration|Submit|Command)$|^(Create|Update|Patch|New)[A-Z]\w*$/;

/** Containers of rows by name: a page of a query's results. */
const PAGE_TYPES = /^(Page|Paginat\w*|\w*Page|\w*Pagination|Query|Select|Result\w*|ScalarResult|Sequence|Iterable|Iterator|List|Set|Tuple|Dict|Mapping)$/;
const TYPING_NAMES = new Set(['Any', 'Session', 'AsyncSession', 'Request', 'Response', 'Path', 'UUID', 'Decimal', 'Enum']);

/** The annotation of the parameter `name` of function `fnIndex`, or null. */
function paramAnnotation(model: FileModel, fnIndex: number, name: string): string | null {
  return model.functions[fnIndex]?.params.find((p) => p.name === name)?.annotation ?? null;
}

/** The position a positional argument fills for parameter `name` (after `self`/`cls` of a method), or -1. */
export function positionalSlot(fnNode: SyntaxNode, name: string, isMethod: boolean): number {
  let position = 0;
  let first = true;
  for (const p of fnNode.childForFieldName('parameters')?.namedChildren ?? []) {
    if (p.type === 'list_splat_pattern' || p.type === 'keyword_separator' || p.type === 'dictionary_splat_pattern') return -1;
    if (p.type === 'positional_separator' || p.type === 'comment') continue;
    const n = (p.type === 'identifier' ? p : p.childForFieldName('name') ?? p.namedChild(0))?.text ?? '';
    const isSelf = first && isMethod && (n === 'self' || n === 'cls');
    first = false;
    if (isSelf) continue;
    if (n === name) return position;
    position++;
  }
  return -1;
}

/**
 * A Pyramid view's context (`def manage_roles(project, request)`): the resource traversal found for
 * the URL — a row loaded from the database more often than not — not what the client sent.
 */
function viewContext(fn: FileModel['functions'][number], name: string): boolean {
  return name !== 'request' && isPyramidView(fn);
}

/** Are the function's parameters what a client sent: a request handler, a deserializer or a validator? */
function receivesInput(model: FileModel, fnIndex: number): boolean {
  const fn = model.functions[fnIndex]!;
  if (fn.role === 'handler') return true;
  if (fn.className && INPUT_METHODS.test(fn.name)) return true;
  return fn.decoratorNames.some((d) => INPUT_DECORATORS.test(d));
}

/**
 * A call handed the whole of what the client sent and literal keys only (`get_required(request.all_data,
 * "groups")`, `param(request.json, "ids", default=[])`): a project's getter picking one field out of
 * the request. Its value is that field. Not a call handed one value of the request
 * (`search(request.args["q"])`), whose result may be rows.
 */
function pickedFromRequest(node: SyntaxNode): boolean {
  const args = node.childForFieldName('arguments')?.namedChildren.filter((a) => a.type !== 'comment') ?? [];
  if (args.length < 2) return false;
  const [first, ...rest] = args;
  if (!first || !WHOLE_REQUEST.test(first.text.replace(/\s+/g, ''))) return false;
  return rest.every((a) => {
    const v = a.type === 'keyword_argument' ? a.childForFieldName('value') : a;
    return !!v && (v.type === 'string' || v.type === 'integer' || v.type === 'true' || v.type === 'false' || v.type === 'none' || v.type === 'list' && v.namedChildCount === 0);
  });
}
/** What the client sent, whole: the request's body, form, query or merged data. */
const WHOLE_REQUEST = /^(self\.)?request\.(all_data|json|form|args|values|data|POST|GET|query_params|get_json\(\))$/;

/** `request.json[...]`, `request.form.getlist(...)`, `self.request.args`: the current request. */
function rootedAtRequest(node: SyntaxNode): boolean {
  let cur: SyntaxNode | null = node;
  while (cur && (cur.type === 'attribute' || cur.type === 'subscript' || cur.type === 'call')) {
    const inner: SyntaxNode | null = cur.type === 'attribute' ? cur.childForFieldName('object') : cur.type === 'subscript' ? cur.childForFieldName('value') : cur.childForFieldName('function');
    if (cur.type === 'attribute' && inner?.type === 'identifier' && inner.text === 'self' && REQUEST_NAMES.has(cur.childForFieldName('attribute')?.text ?? '')) return true;
    cur = inner;
  }
  return cur?.type === 'identifier' && REQUEST_NAMES.has(cur.text);
}

/**
 * An object whose collection attributes are rows: a local name or parameter other than a module
 * (`event`, `contrib`), or an attribute of `self` (`self.event`), not a constant or a dict.
 */
function loadedObject(model: FileModel, object: SyntaxNode, fnIndex: number): boolean {
  if (object.type === 'identifier') {
    const name = object.text;
    if (name === 'self' || name === 'cls' || model.imports.has(name) || /^[A-Z_0-9]+$/.test(name) || /^[A-Z]/.test(name)) return false;
    // Dicts and settings by name: not rows.
    if (/(dict|data|config|settings|options|params|kwargs|args|json|payload|form|resp|response|result)s?$/i.test(name)) return false;
    return fnIndex >= 0;
  }
  if (object.type === 'attribute') {
    const inner = object.childForFieldName('object');
    const attr = object.childForFieldName('attribute')?.text ?? '';
    if (!/^[a-z]\w*$/.test(attr) || /(dict|data|config|settings|options|params|form|request)s?$/i.test(attr)) return false;
    return inner?.type === 'identifier' && inner.text === 'self';
  }
  return false;
}

/** The argument of the `.in_(...)` a query's chain filters on, or null. */
function inArgument(node: SyntaxNode): SyntaxNode | null {
  let found: SyntaxNode | null = null;
  const visit = (n: SyntaxNode, budget: { left: number }) => {
    if (found || --budget.left < 0) return;
    if (n.type === 'call') {
      const f = n.childForFieldName('function');
      if (f?.type === 'attribute' && f.childForFieldName('attribute')?.text === 'in_') {
        found = n.childForFieldName('arguments')?.namedChild(0) ?? null;
        return;
      }
    }
    for (const c of n.namedChildren) visit(c, budget);
  };
  if (node.text.includes('.in_(')) visit(node, { left: 400 });
  return found;
}
