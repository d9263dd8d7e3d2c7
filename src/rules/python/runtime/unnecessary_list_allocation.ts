/**
 * PA302 unnecessary_list_allocation
 *
 * What it does: finds a list built only to be consumed at once where the rewrite is really
 * better: a list comprehension handed to `any`/`all` (a generator stops at the first decisive
 * item) or to `set`/`frozenset` (a set comprehension skips the list), and a fresh iterable copied
 * into `list(...)` only to be looped over.
 * It never recommends a slower spelling: `len`/`sum`/`min`/`max`/`tuple`/`str.join` of a list
 * comprehension and a `for` over one are faster than their generator forms in CPython (a
 * generator resumes a frame per item), so they are left alone.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileModel } from '../../../semantic/model.js';
import { assignmentsTo, callAt, effectiveRole } from '../../../semantic/model.js';
import { GROWS, iterationSource, smallLiteral } from '../../../semantic/smallLiterals.js';
import type { FileRule, FileRuleContext } from '../../types.js';

/** Consumers whose generator or set-comprehension form does less work: short-circuit, or no intermediate list. */
const CONSUMERS = new Set(['builtins.any', 'builtins.all', 'builtins.set', 'builtins.frozenset']);
/** Comparisons whose time must not depend on where the inputs differ. */
const CONSTANT_TIME = new Set(['secrets.compare_digest', 'hmac.compare_digest']);
/** Calls that return a new object nobody else holds: wrapping them in `list()` to loop copies for nothing. */
const FRESH_ITERABLES = new Set(['builtins.range', 'builtins.sorted']);
/**
 * Lazy views over their arguments: `list(enumerate(node.children))` snapshots a collection the
 * loop may mutate, which is the point of the copy. Fresh only when what they wrap is fresh.
 */
const LAZY_WRAPPERS = new Set(['builtins.map', 'builtins.filter', 'builtins.zip', 'builtins.reversed', 'builtins.enumerate']);

function onlyArg(node: SyntaxNode): SyntaxNode | null {
  const args = node.childForFieldName('arguments');
  if (!args || args.type !== 'argument_list' || args.namedChildCount !== 1) return null;
  return args.namedChild(0);
}

function isFreshIterable(model: FileModel, node: SyntaxNode | null, depth = 0): boolean {
  if (!node || depth > 4) return false;
  if (node.type === 'list_comprehension' || node.type === 'list' || node.type === 'tuple') return true;
  if (node.type === 'generator_expression') {
    const source = node.namedChildren.find((c) => c.type === 'for_in_clause')?.childForFieldName('right') ?? null;
    return isFreshIterable(model, source, depth + 1);
  }
  if (node.type !== 'call') return false;
  const q = callAt(model, node)?.qualifiedName;
  if (!q) return false;
  if (FRESH_ITERABLES.has(q)) return true;
  if (!LAZY_WRAPPERS.has(q)) return false;
  const args = node.childForFieldName('arguments')?.namedChildren ?? [];
  // map/filter take the function first; the rest are the iterables.
  const iterables = q === 'builtins.map' || q === 'builtins.filter' ? args.slice(1) : args;
  return iterables.length > 0 && iterables.every((a) => a.type !== 'keyword_argument' && isFreshIterable(model, a, depth + 1));
}

/**
 * Does the comprehension iterate a handful of constants: a small literal, or a module-level name
 * bound once to one and never grown?
 */
function overFewConstants(model: FileModel, comprehension: SyntaxNode): boolean {
  const clauses = comprehension.namedChildren.filter((c) => c.type === 'for_in_clause');
  const src = clauses.length === 1 ? iterationSource(clauses[0]!.childForFieldName('right')) : null;
  if (!src) return false;
  if (smallLiteral(src)) return true;
  if (src.type !== 'identifier') return false;
  const bindings = assignmentsTo(model, src.text);
  return bindings.length === 1 && bindings[0]!.functionIndex < 0 && smallLiteral(bindings[0]!.value)
    && !model.calls.some((c) => c.dottedReceiver === src.text && GROWS.test(c.method)) && !model.augAssignments.some((a) => a.target === src.text);
}

/** Builtins that cost about what an attribute read does: an item making only these calls is a cheap item. */
const CHEAP_CALLS = new Set(['builtins.isinstance', 'builtins.issubclass', 'builtins.len', 'builtins.type', 'builtins.hasattr', 'builtins.callable', 'builtins.id', 'builtins.bool', 'builtins.abs']);

/** Why an allocation finding is advisory: reviewers of four services judged each such one not worth a report. */
const STYLE_EVIDENCE = 'one short-lived list of cheap items: microseconds, a style point (ruff C4xx) more than a performance one';

export const unnecessaryListAllocation: FileRule = {
  meta: {
    code: 'PA302',
    check: 'unnecessary_list_allocation',
    family: 'runtime',
    severity: 'low',
    effort: 'S',
    summary: 'A list built only to be consumed at once',
    what: 'Finds list comprehensions passed straight to `any` or `all` (which then evaluate every item instead of stopping at the first decisive one) or to `set`/`frozenset` (a set comprehension needs no list), and loops over `list(<range/sorted/map/filter/zip of fresh data>)`. It leaves `len`, `sum`, `min`, `max`, `tuple` and `str.join` of a list comprehension alone, and `for` over one: in CPython those are faster than their generator forms. Advisory unless `any`/`all` run a call for each item, in the element or a filter (`any([is_banned(u) for u in users])`), of more than a handful of constants (a small literal, or a module constant bound once to one): one short-lived list of cheap items is a style point, not a performance one. Silent when the items are constant-time comparisons (`secrets.compare_digest`, `hmac.compare_digest`): checking every candidate is what keeps the time from telling which one matched.',
    why: 'The list is allocated in full and thrown away; `any()`/`all()` additionally evaluate every element instead of stopping at the first decisive one, and a copy of a fresh iterable is pure waste. In a request handler or a loop this is memory and time on every call.',
    bad: 'if any([u.is_admin for u in users]):\n    ...\nfor i in list(range(n)):\n    ...\n',
    good: 'if any(u.is_admin for u in users):\n    ...\nfor i in range(n):\n    ...\n',
    fix: 'pass a generator expression to `any`/`all`, a set comprehension instead of `set([...])`, and loop over the iterable itself',
    references: ['https://docs.astral.sh/ruff/rules/unnecessary-comprehension-in-call/', 'https://docs.python.org/3/reference/expressions.html#generator-expressions'],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    if (model.isTestFile) return;
    const severity = (fnIndex: number, inLoop: boolean) =>
      inLoop || (fnIndex >= 0 && effectiveRole(model, fnIndex) === 'handler') ? 'medium' as const : 'low' as const;
    for (const call of model.calls) {
      const q = call.qualifiedName;
      if (!(q && CONSUMERS.has(q))) continue;
      const arg = onlyArg(call.node);
      if (arg?.type !== 'list_comprehension') continue;
      const name = q.replace(/^builtins\./, '');
      const why = name === 'set' || name === 'frozenset'
        ? 'builds a list only to turn it into a set; use a set comprehension'
        : 'evaluates every item before looking at the first; a generator expression stops at the first decisive one';
      // Only `any`/`all` over items that each make a call do work a generator would skip; a set
      // built from a list, or cheap items, is one short-lived list: style, not performance.
      // A call in the element or in a filter runs for every item.
      const calls = arg.namedChildren.filter((c) => c.type !== 'for_in_clause').flatMap((c) => (c.type === 'call' ? [c] : c.descendantsOfType('call')));
      // Comparing a secret against each candidate in constant time (`compare_digest`) evaluates
      // every one on purpose: stopping at the first match would leak which one matched.
      if (calls.some((c) => CONSTANT_TIME.has(callAt(model, c)?.qualifiedName ?? ''))) continue;
      // Over a handful of constants (`for e in NON_REPORTED`, a literal): stopping early saves a
      // few cheap calls at most.
      // A type or length test per item (`isinstance(v, int)`) is as cheap as an attribute read.
      const costly = (name === 'any' || name === 'all') && calls.some((c) => !CHEAP_CALLS.has(callAt(model, c)?.qualifiedName ?? '')) && !overFewConstants(model, arg);
      ctx.report({
        node: call.node,
        message: `\`${name}()\` of a list comprehension ${why}`,
        severity: severity(call.functionIndex, call.loops.length > 0),
        ...(costly ? {} : { advisory: STYLE_EVIDENCE }),
      });
    }
    for (const loop of model.loops) {
      const it = loop.iterable;
      if (!it) continue;
      if (it.type === 'call') {
        const c = callAt(model, it);
        if (c?.qualifiedName !== 'builtins.list' || !isFreshIterable(model, onlyArg(it))) continue;
        ctx.report({ node: it, message: '`list(...)` copies a fresh iterable only to loop over it; loop over the iterable', severity: severity(loop.functionIndex, true), advisory: STYLE_EVIDENCE });
      }
    }
  },
};
