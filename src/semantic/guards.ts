/**
 * Flag guards: code of a function that runs only when a keyword flag whose default turns it off
 * is set (`def resolve(x, allow_email=False): ... if allow_email: <query>`). A caller that does
 * not pass the flag, or passes a literal `False`/`None`, never runs that branch. A parameter that
 * defaults to an enum member (`mode: Mode = Mode.background`) is such a flag for the tests that
 * compare it with a member: `if mode == Mode.sync:` runs only when a caller passes a mode.
 *
 * Conservative by design: only a parameter whose default is the literal `False`, `None` or
 * `True` and that the function never rebinds, and only two shapes of guard — the node lies in the
 * body of `if <test>:` where an operand of the condition's `and` chain tests a flag, or an earlier
 * statement of a block holding it is `if <test>:` ending in `return`/`raise` (no `elif`/`else`)
 * where every failed operand of an `or` chain says something of a flag. A test is `flag`,
 * `not flag`, and for a flag that defaults to `None`, `flag is None` / `flag is not None`. Several
 * flags that must all hold are one guard, `a&b`: a call that turns any of them off does not reach
 * the code. A guard is written `name@position`: the parameter's position among those a
 * positional argument can fill (after `self`/`cls` of a method), or -1 when it is keyword-only.
 * A flag that defaults to `True` guards too (`name@position+`): only a call that passes a literal
 * `False`/`None` turns it off. The other way round, the `elif`/`else` of `if flag:` and the body
 * of `if not flag:` run only while a flag that defaults off stays unset (`name@position-`): a call
 * that passes it a value (`rebuild(package_id)`) does not reach them.
 *
 * A flag passes through: `def outer(x, include=False): inner(x, include=include)` runs `inner`'s
 * guarded branch only when `outer`'s own caller turns `include` on. The call records what it
 * passes on (`passedArguments`), and the repo phase carries `outer`'s guard up the call graph.
 */
import type { SyntaxNode } from '../parse/parser.js';
import { assignmentsOf, augAssignmentsOf, ifsOf, type CallInfo, type FileModel } from './model.js';
import { conditionalWithin } from './controlFlow.js';

interface Flag {
  name: string;
  position: number;
  /** Defaults to `True`: on unless a call passes a literal `False`/`None` (guard spelled `name@position+`). */
  on: boolean;
  /** Defaults to `None`: `flag is None` / `flag is not None` test it too. */
  none: boolean;
  /**
   * Defaults to a member of an enum or a class constant (`mode: Mode = Mode.background`): a test
   * against another member (`if mode == Mode.sync:`) holds only when a caller passes one, as a
   * flag that defaults off; a test against the default itself holds while the caller passes none.
   */
  member?: string;
  /**
   * Filled in by the function when the caller left it unset (`if shelf is None: shelf = find()`):
   * only the bodies of its unset tests still say what the caller passed.
   */
  filledIn?: boolean;
  /**
   * A class-level boolean of the file's own classes (`use_db = True` in `class Locks:`), tested
   * as `Locks.use_db` (or `cls.use_db` in its methods): a runtime switch between two ways of doing
   * the work, which whole code paths turn off (`Locks.use_db = False` before a simulation). Its
   * guard, `Locks.use_db@$` (`@$-` for the branch that runs while it is off), passes through every
   * call unchanged: the repo phase closes it where the caller's context has turned it off.
   */
  switch?: boolean;
  /**
   * A parameter the function compares with literals (`if kind == "orgs":`, `if mode in ("a", "b"):`),
   * kept under `=name` beside any flag of that name: the branch runs only for the values the test
   * admits, and a call that passes another literal does not reach it. `literalDefault` is the
   * default's token (see {@link literalToken}) when the default is a literal.
   */
  literal?: boolean;
  literalDefault?: string;
}

/**
 * A literal's token, as guards and calls record it: `s<text>` for a plain string of word
 * characters, dots and slashes (at most 40), `n<int>` for an integer, `f`/`t`/`~` for
 * `False`/`True`/`None`; null for anything else (an f-string, an expression, a long or odd string).
 */
export function literalToken(text: string): string | null {
  if (text === 'None') return '~';
  if (text === 'False') return 'f';
  if (text === 'True') return 't';
  const m = LITERAL_VALUE.exec(text);
  if (!m) return null;
  return m[3] !== undefined ? `n${Number(m[3])}` : `s${m[2]}`;
}
const LITERAL_VALUE = /^(?:(['"])([A-Za-z0-9_./]{0,40})\1|(-?\d{1,12}))$/;

/** The position a switch guard is written with (see `Flag.switch`). */
export const SWITCH_GUARD = '@$';

const switchMemo = new WeakMap<FileModel, Set<string>>();
/**
 * The file's runtime switches: class-level names bound to `True`/`False` in a class body
 * (`use_db = True`, `use_db: bool = True`), as `Cls.attr`.
 */
function fileSwitches(model: FileModel): Set<string> {
  let got = switchMemo.get(model);
  if (got) return got;
  got = new Set();
  for (const a of model.assignments) {
    if (a.functionIndex >= 0 || a.target.includes('.')) continue;
    const v = a.value?.text;
    if (v !== 'True' && v !== 'False') continue;
    const cls = a.node.parent?.parent?.parent;
    if (a.node.parent?.type !== 'expression_statement' || cls?.type !== 'class_definition') continue;
    const name = cls.childForFieldName('name')?.text;
    if (name) got.add(`${name}.${a.target}`);
  }
  switchMemo.set(model, got);
  return got;
}

const flagMemo = new WeakMap<FileModel, (Map<string, Flag> | null)[]>();

/** The flag parameters of a function (default `False`, `None` or `True`), by name; null when it has none. */
function flagsOf(model: FileModel, fnIndex: number): Map<string, Flag> | null {
  let memo = flagMemo.get(model);
  if (!memo) flagMemo.set(model, (memo = []));
  if (memo[fnIndex] !== undefined) return memo[fnIndex]!;
  const fn = model.functions[fnIndex]!;
  let flags: Map<string, Flag> | null = dictKeyFlags(model, fnIndex);
  // Cheap test first: most functions have no such default.
  if (fn.params.some((p) => p.defaultText === 'False' || p.defaultText === 'None' || p.defaultText === 'True' || MEMBER.test(p.defaultText ?? ''))) {
    for (const { name, position, value } of parameterSlots(fn)) {
      if (value === 'False' || value === 'None' || value === 'True') {
        (flags ??= new Map()).set(name, { name, position, on: value === 'True', none: value === 'None' });
      } else if (value && MEMBER.test(value)) {
        (flags ??= new Map()).set(name, { name, position, on: false, none: false, member: value });
      }
    }
  }
  // The file's runtime switches, tested as `Cls.attr`, and as `cls.attr` in the class's own methods.
  const switches = fileSwitches(model);
  if (switches.size) {
    for (const name of switches) {
      const flag: Flag = { name, position: -2, on: false, none: false, switch: true };
      (flags ??= new Map()).set(name, flag);
      const cls = name.slice(0, name.indexOf('.'));
      if (fn.className === cls) flags.set(`cls.${name.slice(cls.length + 1)}`, flag);
    }
  }
  // Parameters the function's `if`s compare with literals: each decides the branches its tests admit.
  const compared = comparedWithLiterals(model, fnIndex);
  if (compared) {
    for (const { name, position, value } of parameterSlots(fn)) {
      if (!compared.has(name)) continue;
      const token = value === undefined ? undefined : literalToken(value) ?? undefined;
      // A default that is no literal (`kind=DEFAULT_KIND`) leaves an omitted argument unknown.
      if (value === undefined || token !== undefined) {
        (flags ??= new Map()).set(`=${name}`, { name, position, on: false, none: false, literal: true, literalDefault: token });
      }
    }
  }
  // A flag the function rebinds (`verbose = verbose or settings.VERBOSE`) no longer says what the caller passed.
  // Filling it in where the caller left it unset (`if shelf is None: shelf = find()`) keeps the
  // guard of those bodies: the value there is still the caller's whenever the caller passed one.
  if (flags) {
    // The function's own assignments, grouped once per file (each function with flags scanned the file's).
    const assignments = assignmentsOf(model, fnIndex);
    const augAssignments = augAssignmentsOf(model, fnIndex);
    for (const a of assignments) {
      flags.delete(`=${a.target}`);
      const flag = flags.get(a.target);
      if (flag && !flag.on && inOwnUnsetBody(a.node, a.target, fn.node)) flag.filledIn = true;
      else flags.delete(a.target);
    }
    for (const a of augAssignments) flags.delete(a.target), flags.delete(`=${a.target}`);
    for (const a of model.unpackedAssignments) if (a.functionIndex === fnIndex) for (const n of a.names) flags.delete(n), flags.delete(`=${n}`);
    // A copy under another name, bound once (`want_author = with_author`), tests the same flag.
    const bound = new Map<string, number>();
    for (const a of assignments) bound.set(a.target, (bound.get(a.target) ?? 0) + 1);
    const rebound = new Set<string>();
    for (const a of augAssignments) rebound.add(a.target);
    for (const a of model.unpackedAssignments) if (a.functionIndex === fnIndex) for (const n of a.names) rebound.add(n);
    for (const a of assignments) {
      if (a.value?.type !== 'identifier' || a.fromWith) continue;
      const flag = flags.get(a.value.text);
      if (flag && !flag.filledIn && !flags.has(a.target) && bound.get(a.target) === 1 && !rebound.has(a.target) && !fn.params.some((p) => p.name === a.target)) {
        flags.set(a.target, flag);
      }
    }
    if (!flags.size) flags = null;
  }
  memo[fnIndex] = flags;
  return flags;
}

/**
 * The function's parameters a call can fill, in order: the name, the position a positional
 * argument fills (after `self`/`cls` of a method; -1 when keyword-only) and the default's text.
 */
function parameterSlots(fn: FileModel['functions'][number]): { name: string; position: number; value: string | undefined }[] {
  const out: { name: string; position: number; value: string | undefined }[] = [];
  let position = 0;
  let keywordOnly = false;
  let first = true;
  for (const p of fn.node.childForFieldName('parameters')?.namedChildren ?? []) {
    if (p.type === 'list_splat_pattern' || p.type === 'keyword_separator' || p.type === 'dictionary_splat_pattern' || typedSplat(p)) {
      keywordOnly = true;
      continue;
    }
    if (p.type === 'positional_separator' || p.type === 'comment') continue;
    // `x`, `x=1`, `x: T=1` name it in a field; `x: T` (typed_parameter) as its first identifier.
    const name = (p.type === 'identifier' ? p : p.childForFieldName('name') ?? p.namedChildren.find((c) => c.type === 'identifier'))?.text ?? '';
    const isSelf = first && fn.className !== null && (name === 'self' || name === 'cls');
    first = false;
    if (isSelf) continue;
    const value = p.type === 'default_parameter' || p.type === 'typed_default_parameter' ? p.childForFieldName('value')?.text : undefined;
    out.push({ name, position: keywordOnly ? -1 : position, value });
    if (!keywordOnly) position++;
  }
  return out;
}

/** `Mode.background`, `PaymentMode.SYNC`: an enum member or class constant, as a parameter's default or a test's operand. */
const MEMBER = /^[A-Z]\w*\.[A-Za-z_]\w*$/;

/** A test of one name: `flag` / `flag is not None` (true when set), `not flag` / `flag is None` (true when unset). */
interface FlagTest {
  name: string;
  /** The test holds when the flag is set (for a `member` test, decided against the flag's default: see {@link guardOfTest}). */
  set: boolean;
  /** An `is None` / `is not None` comparison: only for a flag that defaults to `None`. */
  none: boolean;
  /** `flag == Mode.sync` (`eq`) or `flag != Mode.sync`: only for a flag that defaults to a member. */
  member?: { value: string; eq: boolean };
  /** `kind == "orgs"` (`eq`), `kind != "orgs"`, `kind in ("a", "b")` (`eq`), `kind not in (...)`: the literals' tokens. */
  literal?: { values: string[]; eq: boolean };
}

function unwrap(c: SyntaxNode | null): SyntaxNode | null {
  while (c?.type === 'parenthesized_expression') c = c.namedChild(0);
  return c;
}

/** The operands of a chain of one boolean operator: `a and b and c` → [a, b, c]; anything else is one operand. */
export function operands(cond: SyntaxNode | null, op: 'and' | 'or'): SyntaxNode[] {
  const c = unwrap(cond);
  if (!c) return [];
  if (c.type === 'boolean_operator' && c.childForFieldName('operator')?.text === op) {
    return [...operands(c.childForFieldName('left'), op), ...operands(c.childForFieldName('right'), op)];
  }
  return [c];
}

function flagTest(node: SyntaxNode): FlagTest | null {
  const c = unwrap(node);
  if (!c) return null;
  if (c.type === 'identifier' || isSwitchName(c)) return { name: c.text, set: true, none: false };
  // `data_dict.get('include_datasets')`, `asbool(opts.get('k', False))`, and their `not`.
  if (c.type === 'call' || c.type === 'not_operator') {
    const m = DICT_KEY_TEST.exec(c.text.replace(/\s+/g, ' ').replace(/\s*([().,=])\s*/g, '$1'));
    if (m) return { name: `${m[2]}{${m[3]}}`, set: !m[1], none: false };
  }
  if (c.type === 'not_operator') {
    const operand = unwrap(c.childForFieldName('argument'));
    return operand?.type === 'identifier' || (operand && isSwitchName(operand)) ? { name: operand!.text, set: false, none: false } : null;
  }
  // `flag is None`, `flag is not None`
  if (c.type === 'comparison_operator' && c.namedChildCount === 2) {
    const [left, right] = [c.namedChild(0)!, c.namedChild(1)!];
    const op = c.text.slice(left.endIndex - c.startIndex, right.startIndex - c.startIndex).trim().replace(/\s+/g, ' ');
    if (left.type === 'identifier' && right.type === 'none' && (op === 'is' || op === 'is not')) return { name: left.text, set: op === 'is not', none: true };
    // `mode == Mode.sync`, `mode is not Mode.background`
    if (left.type === 'identifier' && right.type === 'attribute' && MEMBER.test(right.text) && /^(==|!=|is|is not)$/.test(op)) {
      return { name: left.text, set: false, none: false, member: { value: right.text, eq: op === '==' || op === 'is' } };
    }
    const literal = literalComparison(left, right, op);
    if (literal) return literal;
  }
  return null;
}

/**
 * `kind == "orgs"`, `"orgs" == kind`, `kind != 3`, `kind in ("a", "b")` (a tuple, list or set of
 * literals), `kind not in [...]`: a test of a name against string or integer literals.
 */
function literalComparison(left: SyntaxNode, right: SyntaxNode, op: string): FlagTest | null {
  if (op === '==' || op === '!=') {
    const [name, value] = left.type === 'identifier' ? [left, right] : right.type === 'identifier' ? [right, left] : [null, null];
    const token = name && value && (value.type === 'string' || value.type === 'integer') ? literalToken(value.text) : null;
    return token && name ? { name: name.text, set: false, none: false, literal: { values: [token], eq: op === '==' } } : null;
  }
  if ((op === 'in' || op === 'not in') && left.type === 'identifier' && (right.type === 'tuple' || right.type === 'list' || right.type === 'set')) {
    const values: string[] = [];
    for (const item of right.namedChildren) {
      if (item.type === 'comment') continue;
      const token = item.type === 'string' || item.type === 'integer' ? literalToken(item.text) : null;
      if (!token) return null;
      values.push(token);
    }
    return values.length ? { name: left.text, set: false, none: false, literal: { values, eq: op === 'in' } } : null;
  }
  return null;
}

const compareMemo = new WeakMap<FileModel, (Set<string> | null)[]>();
/** The names the function's `if`/`elif` conditions compare with literals (see {@link literalComparison}); null when none. */
function comparedWithLiterals(model: FileModel, fnIndex: number): Set<string> | null {
  let memo = compareMemo.get(model);
  if (!memo) compareMemo.set(model, (memo = []));
  if (memo[fnIndex] !== undefined) return memo[fnIndex]!;
  let names: Set<string> | null = null;
  const visit = (cond: SyntaxNode | null) => {
    const u = unwrap(cond);
    if (!u) return;
    if (u.type === 'boolean_operator') {
      visit(u.childForFieldName('left'));
      visit(u.childForFieldName('right'));
    } else if (u.type === 'not_operator') visit(u.childForFieldName('argument'));
    else if (u.type === 'comparison_operator') {
      const t = flagTest(u);
      if (t?.literal) (names ??= new Set()).add(t.name);
    }
  };
  for (const node of ifsOf(model, fnIndex)) {
    // Cheap test first: a literal on the line of the condition.
    const cond = node.childForFieldName('condition');
    if (cond && /==|!=|\bin\b/.test(cond.text)) visit(cond);
    for (const clause of node.namedChildren) if (clause.type === 'elif_clause') {
      const c = clause.childForFieldName('condition');
      if (c && /==|!=|\bin\b/.test(c.text)) visit(c);
    }
  }
  memo[fnIndex] = names;
  return names;
}

/**
 * The guard under which code runs when `test` is `holds` (true: the `if`'s body; false: its
 * `else`, or what follows an early exit): the flag's own guard when the flag must then be set,
 * its unset guard when it must stay unset (flags that default off only); null when the test is
 * not on a flag, or the flag's default does not fit the test.
 */
function guardOfTest(test: FlagTest | null, flags: Map<string, Flag>, holds: boolean): string | null {
  if (test?.literal) {
    const lf = flags.get(`=${test.name}`);
    if (!lf) return null;
    return literalGuard(lf, test.literal.values, test.literal.eq === holds);
  }
  const flag = test ? flags.get(test.name) : undefined;
  if (!test || !flag || (test.none && !flag.none) || (!!test.member !== !!flag.member)) return null;
  // Against another member the test holds only when a caller passed one. The other way round (the
  // default member, or the `else` of a test against another) holds while none did, or when a call
  // passes the default member explicitly, which a call's record does not tell apart: no guard.
  if (test.member) {
    test = { ...test, set: test.member.eq !== (test.member.value === flag.member) };
    if (test.set !== holds) return null;
  }
  if (flag.filledIn && !(holds && !test.set)) return null;
  // `is None` tests tell a literal `False` from `None`: `name@position?` (set: not None), `name@position?-` (None).
  if (test.none) return `${flag.name}@${flag.position}?${test.set === holds ? '' : '-'}`;
  if (test.set === holds) return guardOf(flag);
  return flag.on ? falsyGuardOf(flag) : unsetGuardOf(flag);
}

/**
 * The guard of an expression inside its statement: the value of `q() if refresh else cached` runs
 * `q()` only when `refresh` is set; `refresh and q()` only when it is set, `cached or q()` only
 * when it is not. Stops at the statement, a lambda or a comprehension (they run later, or per item).
 */
function expressionGuard(node: SyntaxNode, flags: Map<string, Flag>): string | null {
  const guards: string[] = [];
  let child = node;
  for (let cur = node.parent; cur; child = cur, cur = cur.parent) {
    const t = cur.type;
    if (t.endsWith('_statement') || t === 'block' || t === 'lambda' || t.endsWith('_comprehension') || t === 'generator_expression' || t === 'function_definition') break;
    if (t === 'conditional_expression') {
      // `a if cond else b`: named children are a, cond, b.
      const [then, cond, other] = [cur.namedChild(0), cur.namedChild(1), cur.namedChild(2)];
      const within = (n: SyntaxNode | null) => !!n && n.startIndex <= child.startIndex && child.endIndex <= n.endIndex;
      if (within(then)) guards.push(...operands(cond, 'and').map((c) => guardOfTest(flagTest(c), flags, true)).filter((g): g is string => g !== null));
      else if (within(other) && cond) {
        const g = guardOfTest(flagTest(cond), flags, false);
        if (g) guards.push(g);
      }
    } else if (t === 'boolean_operator') {
      const left = cur.childForFieldName('left');
      const right = cur.childForFieldName('right');
      if (left && right && right.startIndex <= child.startIndex && child.endIndex <= right.endIndex) {
        const op = cur.childForFieldName('operator')?.text;
        const g = guardOfTest(flagTest(left), flags, op === 'and');
        if (g) guards.push(g);
      }
    }
  }
  return allOf(guards);
}

/** Does `node` lie in the body of an `if` (within `fn`) whose condition needs `name` unset (`if name is None and ...:`)? */
function inOwnUnsetBody(node: SyntaxNode, name: string, fn: SyntaxNode): boolean {
  for (let cur: SyntaxNode | null = node; cur && cur.startIndex >= fn.startIndex && cur.type !== 'function_definition'; cur = cur.parent) {
    const parent = cur.parent;
    if (cur.type !== 'block' || parent?.type !== 'if_statement' || parent.childForFieldName('consequence')?.startIndex !== cur.startIndex) continue;
    if (operands(parent.childForFieldName('condition'), 'and').some((c) => {
      const t = flagTest(c);
      return t?.name === name && !t.set && !t.member;
    })) return true;
  }
  return false;
}

/** Several guards that must all hold (`if not to_managers and receipt is None:`), as one: `a&b`. */
function allOf(guards: string[]): string | null {
  return guards.length ? [...new Set(guards)].join('&') : null;
}

interface GuardRegion {
  from: number;
  to: number;
  guard: string;
  /** The `if` statement that makes the region. */
  node: SyntaxNode;
}

const regionMemo = new WeakMap<FileModel, Map<number, GuardRegion[]>>();

/**
 * The spans of function `fnIndex` that run only under one of its flags: the body of `if flag:`,
 * and what follows `if not flag: return` in its block. Found once per function from the
 * model's `if` statements (a walk up the tree per call cost more than the rest of the summary).
 */
function guardRegions(model: FileModel, fnIndex: number, flags: Map<string, Flag>): GuardRegion[] {
  let byFn = regionMemo.get(model);
  if (!byFn) regionMemo.set(model, (byFn = new Map()));
  let regions = byFn.get(fnIndex);
  if (regions) return regions;
  regions = [];
  for (const node of ifsOf(model, fnIndex)) {
    // The body runs only when every operand of an `and` holds: each one on a flag guards it.
    const condition = node.childForFieldName('condition');
    const conjuncts = operands(condition, 'and');
    const body = node.childForFieldName('consequence');
    const inBody = allOf(conjuncts.map((c) => guardOfTest(flagTest(c), flags, true)).filter((g): g is string => g !== null));
    if (body && inBody) regions.push({ from: body.startIndex, to: body.endIndex, guard: inBody, node });
    // `elif allow_fetch:` guards its own body the same way.
    for (const clause of node.namedChildren) {
      if (clause.type !== 'elif_clause') continue;
      const guard = allOf(operands(clause.childForFieldName('condition'), 'and').map((c) => guardOfTest(flagTest(c), flags, true)).filter((g): g is string => g !== null));
      const consequence = clause.childForFieldName('consequence');
      if (consequence && guard) regions.push({ from: consequence.startIndex, to: consequence.endIndex, guard, node });
    }
    // `if package_id: <one> else: <all>`: the other branches run only when the one test fails.
    const alternative = node.childForFieldName('alternative');
    if (alternative && conjuncts.length === 1) {
      const other = guardOfTest(flagTest(conjuncts[0]!), flags, false);
      if (other) regions.push({ from: alternative.startIndex, to: node.endIndex, guard: other, node });
    }
    // `if not flag: return` (or `if a is None or b is None: raise`), no other branch: what follows
    // in its block runs only when every operand of the `or` failed.
    const last = body?.namedChildren[body.namedChildCount - 1];
    const block = node.parent;
    if (!alternative && block?.type === 'block' && last && (last.type === 'return_statement' || last.type === 'raise_statement')) {
      const after = allOf(operands(condition, 'or').map((c) => guardOfTest(flagTest(c), flags, false)).filter((g): g is string => g !== null));
      if (after) regions.push({ from: node.endIndex, to: block.endIndex, guard: after, node });
    }
  }
  byFn.set(fnIndex, regions);
  return regions;
}

/**
 * The flag guard (`name@position`) under which `node`, in the body of function `fnIndex`, runs;
 * null when none does. The innermost region holding the node wins.
 */
export function flagGuard(model: FileModel, node: SyntaxNode, fnIndex: number): string | null {
  if (fnIndex < 0) return null;
  const flags = flagsOf(model, fnIndex);
  if (!flags) return null;
  const regions = guardRegions(model, fnIndex, flags);
  if (!regions.length) return expressionGuard(node, flags);
  const at = node.startIndex;
  // One guard is recorded per node: the innermost flag guard, else the innermost unset guard (a
  // flag that must be on outranks the `else` of another: `if not allow_x: raise` around
  // `if soft: ... else: <query>` keeps the query behind `allow_x`).
  let best: GuardRegion | null = null;
  let unset: GuardRegion | null = null;
  let dictKey: GuardRegion | null = null;
  for (const r of regions) {
    if (at < r.from || at >= r.to) continue;
    if (/\{\w+\}@/.test(r.guard) && !r.guard.includes('&')) {
      if (!r.guard.endsWith('-') && (!dictKey || r.from > dictKey.from)) dictKey = r;
      continue;
    }
    if (r.guard.split('&').every((g) => g.endsWith('-'))) {
      if (!unset || r.from > unset.from) unset = r;
    } else if (!best || r.from > best.from) best = r;
  }
  best ??= unset;
  if (dictKey) best = best ? { ...best, guard: allOf([...best.guard.split('&'), dictKey.guard])! } : dictKey;
  const inExpression = expressionGuard(node, flags);
  if (!best) return inExpression;
  // A lambda between the node and its guard is its own scope (called later, or never).
  const stop = best.node.parent;
  for (let cur = node.parent; cur && cur !== stop && cur.id !== stop?.id; cur = cur.parent) if (cur.type === 'lambda') return inExpression;
  return inExpression ? allOf([...best.guard.split('&'), ...inExpression.split('&')]) : best.guard;
}

/** `Cls.attr`: a name a runtime switch may be tested by (see `Flag.switch`). */
function isSwitchName(n: SyntaxNode): boolean {
  return n.type === 'attribute' && n.childForFieldName('object')?.type === 'identifier';
}

function guardOf(flag: Flag): string {
  if (flag.switch) return `${flag.name}${SWITCH_GUARD}`;
  return `${flag.name}@${flag.position}${flag.on ? '+' : ''}`;
}

/**
 * The guard of code that runs only when a parameter compared with literals is one of `values`
 * (`in`) or none of them: `kind@0~=sorgs:steams`, `kind@0~!sorgs`, with `%token` for a literal
 * default (what an omitted argument is).
 */
function literalGuard(flag: Flag, values: readonly string[], isIn: boolean): string {
  const def = flag.literalDefault !== undefined ? `%${flag.literalDefault}` : '';
  return `${flag.name}@${flag.position}~${isIn ? '=' : '!'}${values.join(':')}${def}`;
}

/**
 * The guard of code that runs only when a call turns off a flag that defaults on (`name@position!`):
 * the body of `if not queued:`, the `else` of `if queued:`, what follows `if queued: ...; return`.
 */
function falsyGuardOf(flag: Flag): string {
  return `${flag.name}@${flag.position}!`;
}

/** The guard of code that runs only while a flag that defaults off stays unset (`name@position-`). */
function unsetGuardOf(flag: Flag): string {
  if (flag.switch) return `${flag.name}${SWITCH_GUARD}-`;
  return `${flag.name}@${flag.position}-`;
}

/**
 * The name of the function's `**kwargs` parameter when the function hands it on untouched (never
 * indexes, updates, pops from or rebinds it); null otherwise.
 */
const kwargsMemo = new WeakMap<FileModel, Map<number, string | null>>();

export function ownKwargs(model: FileModel, fnIndex: number): string | null {
  if (fnIndex < 0) return null;
  let memo = kwargsMemo.get(model);
  if (!memo) kwargsMemo.set(model, (memo = new Map()));
  let got = memo.get(fnIndex);
  if (got === undefined) memo.set(fnIndex, (got = kwargsOf(model, fnIndex)));
  return got;
}

function kwargsOf(model: FileModel, fnIndex: number): string | null {
  const fn = model.functions[fnIndex]!;
  const splat = fn.node.childForFieldName('parameters')?.namedChildren.find((p) => p.type === 'dictionary_splat_pattern');
  const name = splat?.namedChild(0)?.text;
  if (!name || !IDENTIFIER.test(name)) return null;
  const body = fn.node.childForFieldName('body')?.text ?? '';
  const touched = new RegExp(`\\b${name}\\s*(\\[|\\.(pop|update|setdefault|clear|__setitem__)\\b|=(?!=))|\\bdel\\s+${name}\\b`);
  return touched.test(body) ? null : name;
}

/**
 * The guard (`name@position`) of the function's own flag `name` that defaults off, or null: a call
 * that passes it on (`inner(x, include=include)`) runs the callee's guarded branch only when the
 * function's own caller turns it on.
 */
export function ownFlag(model: FileModel, fnIndex: number, name: string): string | null {
  if (fnIndex < 0) return null;
  const flag = flagsOf(model, fnIndex)?.get(name);
  return flag && !flag.switch ? guardOf(flag) : null;
}

/**
 * What a call passes, for the repo phase to tell which flags it leaves off: one character per
 * positional argument (`f` for a literal `False`, `z` for `None`, `p` for a flag of the calling
 * function passed on, `n` for a lookup that may give `None` (`cache.get(k)`), `a` for anything
 * else), then `|` and the keywords passed, comma-separated (`name` for any value, `name=f` for a
 * literal `False`, `name=z` for `None`, `name=n` for a lookup that may give `None`; a flag passed
 * on is not listed), then
 * `|*` when it unpacks `*args` or `**kwargs` (anything may be passed), then `|>` and the flags
 * passed on, `slot:guard` separated by `;` (the slot a positional index or a keyword, the guard
 * the calling function's own flag's). `forwarded` names the calling function's flags.
 */
export function passedArguments(
  call: SyntaxNode, source?: string, argsOffset = -1, forwarded: (name: string) => string | null = () => null, maybeNone: (name: string) => boolean = () => false,
  kwargs: string | null = null,
): string {
  if (source !== undefined && argsOffset >= 0) {
    const fromText = passedArgumentsFromText(source, argsOffset, forwarded, maybeNone, kwargs);
    if (fromText !== null) return fromText;
  }
  const args = call.childForFieldName('arguments');
  const out = new PassedArguments(forwarded, maybeNone);
  for (const a of args?.namedChildren ?? []) {
    if (a.type === 'comment' || a.type === 'line_continuation') continue;
    if (a.type === 'dictionary_splat' && kwargs !== null && a.namedChild(0)?.text === kwargs) out.kwargs = true;
    else if (a.type === 'list_splat' || a.type === 'dictionary_splat') out.star = true;
    else if (a.type === 'keyword_argument') out.keyword(a.childForFieldName('name')?.text ?? '', a.childForFieldName('value')?.text ?? '');
    else if (args?.type === 'argument_list') out.positional(a.text);
  }
  return out.toString();
}

const IDENTIFIER = /^[A-Za-z_]\w*$/;
/**
 * An argument that is `None` when a lookup misses: `cache.get(key)`, `getattr(o, 'x', None)`,
 * `next(it, None)`. Passed to a parameter tested `is None` it may leave it unset, and set it too.
 */
export function isMaybeNone(text: string): boolean {
  return text === 'None' || MAYBE_NONE.test(text);
}
const MAYBE_NONE = /^(?:[\w.[\]'"]+\.get\([^()]*\)|getattr\([^()]*,\s*None\)|next\([^()]*,\s*None\))$|^\(?[^()]*\bif\b[^()]*\belse\s+None\s*\)?$|^\(?\s*None\s+if\b/;

class PassedArguments {
  private positionals = '';
  private keywords: string[] = [];
  private forwards: string[] = [];
  /** String and integer literals passed, `slot:token` (the slot a position or a keyword). */
  private literals: string[] = [];
  star = false;
  /** Hands on the calling function's own `**kwargs`, untouched: its caller's keywords decide. */
  kwargs = false;
  constructor(
    private readonly forwarded: (name: string) => string | null,
    private readonly maybeNone: (name: string) => boolean,
  ) {}
  private mayBeNone(text: string): boolean {
    return MAYBE_NONE.test(text) || (IDENTIFIER.test(text) && this.maybeNone(text));
  }
  /** A string or integer literal a callee may compare with (`False`/`None` have codes of their own). */
  private literal(slot: string, text: string): void {
    const token = text.length <= 44 ? literalToken(text) : null;
    if (token && (token[0] === 's' || token[0] === 'n' || token === 't')) this.literals.push(`${slot}:${token}`);
  }
  positional(text: string): void {
    this.literal(String(this.positionals.length), text);
    const guard = IDENTIFIER.test(text) ? this.forwarded(text) : null;
    if (guard) this.forwards.push(`${this.positionals.length}:${guard}`);
    this.positionals += guard ? 'p' : text === 'False' ? 'f' : text === 'None' ? 'z' : this.mayBeNone(text) ? 'n' : 'a';
  }
  keyword(name: string, value: string): void {
    this.literal(name, value);
    const guard = IDENTIFIER.test(value) ? this.forwarded(value) : null;
    if (guard) this.forwards.push(`${name}:${guard}`);
    else this.keywords.push(value === 'False' ? `${name}=f` : value === 'None' ? `${name}=z` : this.mayBeNone(value) ? `${name}=n` : name);
  }
  toString(): string {
    const splat = this.star ? '|*' : this.kwargs ? '|**' : '';
    return `${this.positionals}|${this.keywords.join(',')}${splat}${this.forwards.length ? `|>${this.forwards.join(';')}` : ''}${this.literals.length ? `|=${this.literals.join(';')}` : ''}`;
  }
}

/** Does a call with these passed arguments ({@link passedArguments}) leave the guard's flag off? */
export function leavesFlagOff(passes: string | undefined, guard: string): boolean {
  return flagAtCall(passes, guard) === 'off';
}

/**
 * The guard's flag at a call with these passed arguments ({@link passedArguments}): `off`, `on`
 * (or may be), or the guard of the calling function's own flag that the call passes on — on only
 * when the calling function's caller turns that one on.
 */
export function flagAtCall(passes: string | undefined, guard: string): 'off' | 'on' | { forwards: string } {
  // A runtime switch is no argument: what the call passes leaves it as it is, for the context to decide.
  if (guard.includes(SWITCH_GUARD) && !guard.includes('&')) return { forwards: guard };
  if (passes === undefined) return 'on';
  if (guard.includes('&')) {
    // Several flags that must all be set (or unset): off when the call turns any one off.
    const each = guard.split('&').map((g) => flagAtCall(passes, g));
    if (each.includes('off')) return 'off';
    return each.find((f) => f !== 'on') ?? 'on';
  }
  const tilde = guard.indexOf('~');
  if (tilde >= 0) return literalAtCall(passes, guard, tilde);
  const [positional = '', keywords = '', ...rest] = passes.split('|');
  const dictFlag = DICT_KEY_FLAG.exec(guard.slice(0, guard.lastIndexOf('@')));
  // `f(*args)`: which argument lands where is not known.
  if (dictFlag && rest.includes('*')) return 'on';
  if (dictFlag) return dictKeyAtCall(rest, dictFlag[1]!, dictFlag[2]!, Number(guard.slice(guard.lastIndexOf('@') + 1).replace(/[-+]$/, '')), guard.endsWith('-'));
  const key = DICT_KEY_GUARD.exec(guard);
  // `if not context.get('defer_commit'):` — on unless the calling function visibly sets the key.
  if (key) return rest.some((r) => r.startsWith('#') && r.slice(1).split(',').includes(key[2]!)) ? 'off' : 'on';
  if (rest.includes('*')) return 'on';
  const at = guard.lastIndexOf('@');
  const name = guard.slice(0, at);
  const on = guard.endsWith('+');
  const unset = guard.endsWith('-');
  const falsy = guard.endsWith('!');
  let place = guard.slice(at + 1, on || unset || falsy ? -1 : undefined);
  const none = place.endsWith('?');
  if (none) place = place.slice(0, -1);
  const position = Number(place);
  if (none) return noneAtCall(positional, keywords, rest, name, position, unset);
  if (unset) return unsetAtCall(positional, keywords, rest, name, position);
  if (falsy) return falsyAtCall(positional, keywords, rest, name, position);
  // The calling function hands its own `**kwargs` on: unless the call passes the flag itself, the
  // calling function's caller decides, by keyword.
  if (rest.includes('**') && !keywords.split(',').some((k) => k === name || k.startsWith(`${name}=`)) && !(position >= 0 && position < positional.length)) {
    return { forwards: `${name}@-1${on ? '+' : ''}` };
  }
  const forwards = rest.find((r) => r.startsWith('>'));
  if (forwards) {
    for (const f of forwards.slice(1).split(';')) {
      const colon = f.indexOf(':');
      const slot = f.slice(0, colon);
      if (slot === name || (position >= 0 && slot === String(position))) return { forwards: f.slice(colon + 1) };
    }
  }
  if (keywords) {
    const list = keywords.split(',');
    if (list.includes(name) || list.includes(`${name}=n`)) return 'on';
    if (list.includes(`${name}=f`) || list.includes(`${name}=z`)) return 'off';
  }
  if (position >= 0 && position < positional.length) return positional[position] === 'f' || positional[position] === 'z' ? 'off' : 'on';
  return on ? 'on' : 'off';
}

/**
 * A branch under a literal test of a parameter (`name@position~=tokens` runs only when the
 * parameter is one of them, `~!` only when it is none; `%token` the default): off when the call
 * passes a literal (or omits the argument and the default is one) that the test rules out; on
 * for any other value, a flag passed on, or an unpacked `*args`/`**kwargs`.
 */
function literalAtCall(passes: string, guard: string, tilde: number): 'off' | 'on' {
  const at = guard.lastIndexOf('@', tilde);
  const name = guard.slice(0, at);
  const position = Number(guard.slice(at + 1, tilde));
  const isIn = guard[tilde + 1] === '=';
  let list = guard.slice(tilde + 2);
  let def: string | undefined;
  const pct = list.indexOf('%');
  if (pct >= 0) {
    def = list.slice(pct + 1);
    list = list.slice(0, pct);
  }
  const [positional = '', keywords = '', ...rest] = passes.split('|');
  if (rest.includes('*')) return 'on';
  const slotOf = (entry: string) => entry.slice(0, entry.indexOf(':'));
  const forwards = rest.find((r) => r.startsWith('>'));
  if (forwards && forwards.slice(1).split(';').some((f) => slotOf(f) === name || (position >= 0 && slotOf(f) === String(position)))) return 'on';
  const literals = rest.find((r) => r.startsWith('='))?.slice(1).split(';') ?? [];
  const literalAt = (slot: string) => {
    const hit = literals.find((l) => slotOf(l) === slot);
    return hit === undefined ? undefined : hit.slice(slot.length + 1);
  };
  // undefined: not passed; null: passed, value unknown.
  let token: string | null | undefined = literalAt(name);
  if (token === undefined && keywords) {
    for (const k of keywords.split(',')) {
      if (k === name || k === `${name}=n`) token = null;
      else if (k === `${name}=f`) token = 'f';
      else if (k === `${name}=z`) token = '~';
    }
  }
  if (token === undefined && position >= 0 && position < positional.length) {
    const c = positional[position];
    token = literalAt(String(position)) ?? (c === 'f' ? 'f' : c === 'z' ? '~' : null);
  }
  if (token === undefined) {
    if (rest.includes('**')) return 'on';
    token = def ?? null;
  }
  if (token === null) return 'on';
  return list.split(':').includes(token) === isIn ? 'on' : 'off';
}

/**
 * A branch under a key of a dict parameter (`P{k}`): where the call passes a dict literal there
 * (recorded as `{position=k1,k2;name=k1` by the summary), the key decides; anything else may
 * hold it. Only the set branch can be off: an unset key's branch is on for any dict.
 */
function dictKeyAtCall(rest: readonly string[], name: string, key: string, position: number, unset: boolean): 'off' | 'on' {
  if (unset) return 'on';
  const literal = rest.find((r) => r.startsWith('{'));
  if (!literal) return 'on';
  for (const slot of literal.slice(1).split(';')) {
    const eq = slot.indexOf('=');
    const at = slot.slice(0, eq);
    if (at !== name && at !== String(position)) continue;
    return slot.slice(eq + 1).split(',').includes(key) ? 'on' : 'off';
  }
  return 'on';
}

/**
 * A branch under `flag is None` (`isNone`) or `flag is not None`, for a flag that defaults to
 * `None`: what the call passes decides, a literal `False` being a value. A flag passed on from
 * the caller's own, or a lookup that may miss, may be either.
 */
function noneAtCall(positional: string, keywords: string, rest: string[], name: string, position: number, isNone: boolean): 'off' | 'on' {
  // A flag of the calling function passed on to this slot: its value is not known here.
  if (passedOnTo(rest, name, position)) return 'on';
  let passed: string | null = null;
  if (keywords) {
    for (const k of keywords.split(',')) {
      if (k === name) passed = 'a';
      else if (k.startsWith(`${name}=`)) passed = k.slice(name.length + 1);
    }
  }
  if (passed === null && position >= 0 && position < positional.length) passed = positional[position]!;
  // Not passed: the default, None.
  if (passed === null && rest.includes('**')) return 'on';
  if (passed === null || passed === 'z') return isNone ? 'on' : 'off';
  if (passed === 'n' || passed === 'p') return 'on';
  return isNone ? 'off' : 'on';
}

/** Does the call pass a flag of its own function on to this slot (by keyword `name` or at `position`)? */
function passedOnTo(rest: string[], name: string, position: number): boolean {
  const forwards = rest.find((r) => r.startsWith('>'));
  return !!forwards && forwards.slice(1).split(';').some((f) => {
    const slot = f.slice(0, f.indexOf(':'));
    return slot === name || (position >= 0 && slot === String(position));
  });
}

/**
 * The flag of the calling function passed on to this one's slot, when the branch needs this one
 * unset (falsy): `outer(x, skip=False)` calling `inner(x, skip=skip)` runs inner's `if not skip:`
 * while outer's own flag stays unset (a default-off flag: `name@position-`), and when a caller of
 * outer turns a default-on flag off (`name@position!`). Undefined when nothing is passed on there.
 */
function unsetWhenPassedOn(rest: string[], name: string, position: number): 'on' | { forwards: string } | undefined {
  const forwards = rest.find((r) => r.startsWith('>'));
  if (!forwards) return undefined;
  for (const f of forwards.slice(1).split(';')) {
    const colon = f.indexOf(':');
    const slot = f.slice(0, colon);
    if (slot !== name && !(position >= 0 && slot === String(position))) continue;
    const target = f.slice(colon + 1);
    if (/^[\w.]+@-?\d+\+$/.test(target)) return { forwards: `${target.slice(0, -1)}!` };
    return /^[\w.]+@-?\d+$/.test(target) ? { forwards: `${target}-` } : 'on';
  }
  return undefined;
}

/**
 * A branch that runs only when a flag that defaults on is turned off (`name@position!`): on when
 * the call passes it anything but a literal `True` (a `False`, `None`, or a value not known here),
 * off when it leaves the default or passes `True`; a flag passed on from the caller's own decides
 * one caller up (its default-on flag turned off, or its default-off flag left unset).
 */
function falsyAtCall(positional: string, keywords: string, rest: string[], name: string, position: number): 'off' | 'on' | { forwards: string } {
  const passedOn = unsetWhenPassedOn(rest, name, position);
  if (passedOn !== undefined) return passedOn;
  const literals = rest.find((r) => r.startsWith('='))?.slice(1).split(';') ?? [];
  const passedTrue = (slot: string) => literals.includes(`${slot}:t`);
  if (keywords) for (const k of keywords.split(',')) if (k === name || k.startsWith(`${name}=`)) return passedTrue(name) ? 'off' : 'on';
  if (position >= 0 && position < positional.length) return passedTrue(String(position)) ? 'off' : 'on';
  // The calling function hands its own `**kwargs` on: its caller's keywords decide.
  if (rest.includes('**')) return { forwards: `${name}@-1!` };
  return 'off';
}

/**
 * A branch that runs while a flag stays unset (`name@position-`): off when the call passes the
 * flag a value that is not a literal `False`/`None` (`rebuild(package_id)`: the caller names the
 * one it wants), on otherwise — not passed, passed falsy, or passed on from the caller's own
 * flag (whose value is not known here).
 */
function unsetAtCall(positional: string, keywords: string, rest: string[], name: string, position: number): 'off' | 'on' | { forwards: string } {
  const passedOn = unsetWhenPassedOn(rest, name, position);
  if (passedOn !== undefined) return passedOn;
  if (keywords && keywords.split(',').includes(name)) return 'off';
  return position >= 0 && position < positional.length && positional[position] === 'a' ? 'off' : 'on';
}

/**
 * {@link passedArguments} read from the source after the call's `(` (no call into the parser).
 * Strings are skipped whole (their text never counts as a comma, bracket or keyword), comments
 * and line breaks are blanks. Null when the argument list holds anything a plain split could
 * misread (lambdas, generator expressions, an f-string, an unclosed string), and the tree is
 * asked instead.
 */
function passedArgumentsFromText(
  source: string, from: number, forwarded: (name: string) => string | null, maybeNone: (name: string) => boolean, kwargs: string | null,
): string | null {
  let depth = 0;
  let start = from;
  let arg = '';
  const args: string[] = [];
  const n = source.length;
  for (let i = from; i < n; i++) {
    const c = source.charCodeAt(i);
    if (c === 34 || c === 39) {
      // A string: an f-string's `{...}` may hold anything, leave it to the tree.
      const p = source.charCodeAt(i - 1);
      if (p === 102 || p === 70 || ((p === 114 || p === 82 || p === 98 || p === 66) && /[fF]/.test(source[i - 2] ?? ''))) return null;
      const triple = source.charCodeAt(i + 1) === c && source.charCodeAt(i + 2) === c;
      let j = triple ? i + 3 : i + 1;
      for (;;) {
        if (j >= n) return null;
        const d = source.charCodeAt(j);
        if (d === 92) j += 2;
        else if (d === c && (!triple || (source.charCodeAt(j + 1) === c && source.charCodeAt(j + 2) === c))) break;
        else if (!triple && (d === 10 || d === 13)) return null;
        else j++;
      }
      const close = triple ? j + 3 : j + 1;
      // The string stands in the argument as `""` (only its presence matters), unless it is a
      // plain literal a callee may compare with (`kind="orgs"`): that one is kept.
      const plain = !triple && !/\w/.test(source[i - 1] ?? '') && literalToken(source.slice(i, close)) !== null;
      arg += source.slice(start, i) + (plain ? source.slice(i, close) : '""');
      start = close;
      i = close - 1;
      continue;
    }
    if (c === 35) {
      // A comment runs to the end of the line.
      arg += source.slice(start, i);
      let j = source.indexOf('\n', i);
      if (j < 0) return null;
      start = j;
      i = j - 1;
      continue;
    }
    if (c === 40 || c === 91 || c === 123) depth++;
    else if (c === 41 || c === 93 || c === 125) {
      if (depth === 0) {
        if (c !== 41) return null;
        args.push(arg + source.slice(start, i));
        const out = new PassedArguments(forwarded, maybeNone);
        for (const raw of args) {
          const a = raw.replace(/\\?\r?\n/g, ' ').trim();
          if (!a) continue;
          if (/\blambda\b|\bfor\b/.test(a)) return null;
          if (kwargs !== null && a.replace(/\s+/g, '') === `**${kwargs}`) out.kwargs = true;
          else if (a.startsWith('*')) out.star = true;
          else {
            const kw = /^([A-Za-z_]\w*)\s*=(?!=)\s*([\s\S]*)$/.exec(a);
            if (kw) out.keyword(kw[1]!, kw[2]!.trim());
            else out.positional(a);
          }
        }
        return out.toString();
      }
      depth--;
    } else if (c === 44 && depth === 0) {
      args.push(arg + source.slice(start, i));
      arg = '';
      start = i + 1;
    }
  }
  return null;
}

/**
 * The flag guard (`name@position`, see semantic/guards.ts) of a call whose one condition in its
 * function is an `if` on that flag parameter (`if commit:`, `if not defer_commit:`): it runs on
 * every call that leaves the flag on (or, for `not`, unset). Null under any other condition.
 */
export function soleFlagGuard(model: FileModel, call: CallInfo): string | null {
  const body = model.functions[call.functionIndex]!.body;
  if (!body || call.loops.length) return null;
  const guard = flagGuard(model, call.node, call.functionIndex);
  const inner = guard ? conditionalWithin(call.node, body) : null;
  if (!guard || guard.includes('&') || inner?.type !== 'if_statement' || conditionalWithin(inner, body)) return null;
  const name = guard.slice(0, guard.lastIndexOf('@'));
  const tested = (inner.childForFieldName('condition')?.text ?? '').replace(/[()\s]/g, '');
  // In the `if`'s own body (not an `elif`/`else`), and the test is the flag alone.
  const inBody = (inner.childForFieldName('consequence')?.startIndex ?? -1) <= call.node.startIndex && call.node.endIndex <= (inner.childForFieldName('consequence')?.endIndex ?? -1);
  return inBody && (tested === name || tested === `not${name}`) ? guard : null;
}

/** Is the guard one of {@link dictKeyGuard} (a dict parameter's key), not a flag parameter's? */
export function isDictKeyGuard(guard: string): boolean {
  return DICT_KEY_GUARD.test(guard);
}

/**
 * A test of a key of a dict parameter that a caller must set for it to hold: `[not] P.get('k')`,
 * `P.get('k', False)` (or `None`), inside `asbool(...)`/`bool(...)` too. Groups: not, P, k.
 */
const DICT_KEY_TEST = /^(not )?(?:(?:asbool|bool|[\w.]+\.asbool)\()?([A-Za-z_]\w*)\.get\([uU]?['"](\w+)['"](?:,(?:False|None))?\)\)?$/;
/** A positive dict-key guard: `P{k}@position`, its unset form `P{k}@position-`. */
const DICT_KEY_FLAG = /^([A-Za-z_]\w*)\{(\w+)\}$/;

/** After `dict.get(`: a literal string key, then `)` or a `False`/`None` default (sticky). */
const GET_KEY = /\s*[uU]?['"](\w+)['"]\s*(?:,\s*(?:False|None)\s*)?\)/y;
const WORD_CHAR = /\w/;
const NAME_START = /[A-Za-z_]/;

/**
 * Flags for the keys of dict parameters that the function tests (`if data_dict.get('include_x'):`):
 * off unless a caller passes a dict literal holding the key (any other dict may hold it: on).
 * Named `P{k}`, at the parameter's position.
 */
function dictKeyFlags(model: FileModel, fnIndex: number): Map<string, Flag> | null {
  const fn = model.functions[fnIndex]!;
  if (!fn.body) return null;
  const text = model.source.slice(fn.body.startIndex, fn.body.endIndex);
  if (!text.includes('.get(')) return null;
  let flags: Map<string, Flag> | null = null;
  const positions = positionalSlots(fn);
  // `opts.get('key')`, `opts.get("key", False)`: found from each `.get(` (a pattern starting with the
  // dict's name was tried at every offset of the body), the dict being the name right before it.
  for (let at = text.indexOf('.get('); at >= 0; at = text.indexOf('.get(', at + 1)) {
    let from = at;
    while (from > 0 && WORD_CHAR.test(text[from - 1]!)) from--;
    if (from === at || !NAME_START.test(text[from]!)) continue;
    GET_KEY.lastIndex = at + 5;
    const key = GET_KEY.exec(text)?.[1];
    if (key === undefined) continue;
    const dict = text.slice(from, at);
    const position = positions.get(dict);
    if (position === undefined) continue;
    const name = `${dict}{${key}}`;
    // A parameter the function itself writes to or rebinds may hold keys no caller set.
    if (flags?.has(name) || mutatesDict(text, dict, key) || rebound(model, fnIndex, dict)) continue;
    (flags ??= new Map()).set(name, { name, position, on: false, none: false });
  }
  return flags;
}

/**
 * The function's parameters with the position a call's positional argument fills (after
 * `self`/`cls`; -1 for keyword-only ones), as {@link flagsOf} counts them: `/` takes no place,
 * `*`/`*args` starts the keyword-only ones, `**kwargs` is none.
 */
function positionalSlots(fn: FileModel['functions'][number]): Map<string, number> {
  return new Map(parameterSlots(fn).filter((p) => p.name).map((p) => [p.name, p.position]));
}

/** `*args: Any` / `**kw: Any`: a typed splat (tree-sitter wraps the splat in a `typed_parameter`). */
function typedSplat(p: SyntaxNode): boolean {
  const inner = p.type === 'typed_parameter' ? p.namedChild(0) : null;
  return inner?.type === 'list_splat_pattern' || inner?.type === 'dictionary_splat_pattern';
}

/** Is `name` rebound in the function by a tuple target (`opts, errors = validate(opts)`) or merged into (`opts |= {...}`)? */
function rebound(model: FileModel, fnIndex: number, name: string): boolean {
  return model.augAssignments.some((a) => a.functionIndex === fnIndex && a.target === name)
    || model.unpackedAssignments.some((a) => a.functionIndex === fnIndex && a.names.includes(name));
}

/**
 * May the function's body itself set `key` in the dict `name`: rebind it (`name = …`), update it
 * (`name.update(…)`, `setdefault`), or assign that key or a computed one (`name['key'] = …`,
 * `name[k] = …`)? Setting another literal key (`data_dict['id'] = …`) leaves `key` the caller's.
 */
function mutatesDict(text: string, name: string, key: string): boolean {
  if (new RegExp(`(^|[^\\w.])${name}\\s*(\\.(update|setdefault|__setitem__)\\(|:?=(?!=))`, 'm').test(text)) return true;
  for (const m of text.matchAll(new RegExp(`(?:^|[^\\w.])${name}\\s*\\[([^\\]]*)\\]\\s*=(?!=)`, 'gm'))) {
    const literal = /^\s*[uU]?(['"])(\w+)\1\s*$/.exec(m[1]!);
    if (!literal || literal[2] === key) return true;
  }
  return false;
}

/** `context['defer_commit']@0`: the guard of code that runs while a dict parameter's key is unset. */
const DICT_KEY_GUARD = /^([A-Za-z_]\w*)\['(\w+)'\]@(-?\d+)$/;

/** `not ctx.get('k')`, `not ctx.get('k', False)`, `not ctx['k']` → `[ctx, k]`. */
const NOT_DICT_KEY = /^not([A-Za-z_]\w*)(?:\.get\(['"](\w+)['"](?:,(?:False|None))?\)|\[['"](\w+)['"]\])$/;

/**
 * The guard of a call that runs only while a key of a dict parameter is unset
 * (`if not context.get('defer_commit'): session.commit()`): `context['defer_commit']@0`, or null.
 * Every conditional between the call and the function body must be such an `if` (its body, not an
 * `else`) on the same key: a caller leaves the call on unless it visibly sets the key (see
 * {@link dictKeysSet}).
 */
export function dictKeyGuard(model: FileModel, call: CallInfo): string | null {
  const fn = model.functions[call.functionIndex];
  const body = fn?.body;
  if (!fn || !body || call.loops.length) return null;
  let guard: string | null = null;
  for (let node: SyntaxNode = call.node, inner = conditionalWithin(node, body); inner; node = inner, inner = conditionalWithin(node, body)) {
    if (inner.type !== 'if_statement') return null;
    const consequence = inner.childForFieldName('consequence');
    if (!consequence || node.startIndex < consequence.startIndex || node.endIndex > consequence.endIndex) return null;
    const m = NOT_DICT_KEY.exec((inner.childForFieldName('condition')?.text ?? '').replace(/\s+/g, ''));
    const tested = m ? `${m[1]}['${m[2] ?? m[3]}']` : null;
    if (!tested || (guard !== null && !guard.startsWith(`${tested}@`))) return null;
    if (guard === null) {
      const params = fn.params.filter((p, i) => !(i === 0 && fn.className !== null && (p.name === 'self' || p.name === 'cls')));
      const position = params.findIndex((p) => p.name === m![1]);
      if (position < 0) return null;
      guard = `${tested}@${position}`;
    }
  }
  return guard;
}

/**
 * The dict keys a function visibly sets to a literal truthy value, for the guards above:
 * `ctx['k'] = True`, `{'k': True}`, `dict(ctx, k=True)`, `fresh(ctx, k=True)`. Null when none.
 */
export function dictKeysSet(model: FileModel, fnIndex: number): string[] | null {
  const fn = model.functions[fnIndex];
  if (!fn) return null;
  let memo = keysMemo.get(model);
  if (!memo) keysMemo.set(model, (memo = []));
  // The body only: `loud=True` among the parameters is a default, not a key set.
  if (memo[fnIndex] === undefined) memo[fnIndex] = fn.body ? keysSetUncached(model, fn.body) : null;
  return memo[fnIndex]!;
}

const keysMemo = new WeakMap<FileModel, (string[] | null)[]>();

function keysSetUncached(model: FileModel, body: SyntaxNode): string[] | null {
  const text = model.source.slice(body.startIndex, body.endIndex);
  if (!text.includes('True')) return null;
  let keys: Set<string> | null = null;
  for (const m of text.matchAll(/(?:\[\s*['"](\w+)['"]\s*\]\s*=|['"](\w+)['"]\s*:|[(,]\s*(\w+)\s*=)\s*True\b/g)) (keys ??= new Set()).add(m[1] ?? m[2] ?? m[3]!);
  return keys ? [...keys].sort() : null;
}
