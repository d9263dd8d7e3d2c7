/**
 * PA302 unnecessary_list_allocation
 *
 * What it does: finds a list built only to be consumed at once — a list comprehension handed to
 * `any`/`all`/`sum`/`min`/`max`/`len`/`set`/`frozenset`/`tuple`/`str.join`, or a fresh iterable
 * copied into a `list(...)` (or built as a list comprehension) only to be looped over.
 * Why is this bad? The whole list is materialised in memory first; `any`/`all` also lose their
 * short-circuit. A generator (or a set comprehension) does the same work without the copy.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileModel } from '../../../semantic/model.js';
import { callAt, effectiveRole } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext } from '../../types.js';

const CONSUMERS = new Set(['builtins.any', 'builtins.all', 'builtins.sum', 'builtins.min', 'builtins.max', 'builtins.len', 'builtins.set', 'builtins.frozenset', 'builtins.tuple']);
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

export const unnecessaryListAllocation: FileRule = {
  meta: {
    code: 'PA302',
    check: 'unnecessary_list_allocation',
    family: 'runtime',
    severity: 'low',
    effort: 'S',
    summary: 'A list built only to be consumed at once',
    what: 'Finds list comprehensions passed straight to `any`, `all`, `sum`, `min`, `max`, `len`, `set`, `frozenset` or `tuple` (not `str.join`, which builds a list from its argument anyway), and loops over `list(<generator/map/filter/range/zip/sorted>)` or over a list comprehension — places where the list is never used as a list.',
    why: 'The list is allocated in full and thrown away; `any()`/`all()` additionally evaluate every element instead of stopping at the first decisive one. In a request handler or a loop this is wasted memory and time on every call.',
    bad: 'if any([u.is_admin for u in users]):\n    ...\nfor i in list(range(n)):\n    ...\n',
    good: 'if any(u.is_admin for u in users):\n    ...\nfor i in range(n):\n    ...\n',
    fix: 'pass a generator expression (or a set comprehension), and loop over the iterable itself',
    references: ['https://docs.astral.sh/ruff/rules/unnecessary-comprehension-in-call/', 'https://docs.python.org/3/reference/expressions.html#generator-expressions'],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    if (model.isTestFile) return;
    const severity = (fnIndex: number, inLoop: boolean) =>
      inLoop || (fnIndex >= 0 && effectiveRole(model, fnIndex) === 'handler') ? 'medium' as const : 'low' as const;
    for (const call of model.calls) {
      const q = call.qualifiedName;
      // `str.join([...])` is left out on purpose: join materialises its argument anyway, and a
      // list comprehension is the faster spelling in CPython.
      const isJoin = false;
      if (!(q && CONSUMERS.has(q))) continue;
      const arg = onlyArg(call.node);
      if (arg?.type !== 'list_comprehension') continue;
      const name = isJoin ? 'str.join' : q!.replace(/^builtins\./, '');
      const better = name === 'set' || name === 'frozenset' ? 'a set comprehension' : name === 'len' ? '`sum(1 for …)`' : 'a generator expression';
      ctx.report({
        node: call.node,
        message: `\`${name}()\` of a list comprehension builds a list only to consume it; use ${better}`,
        severity: severity(call.functionIndex, call.loops.length > 0),
      });
    }
    for (const loop of model.loops) {
      const it = loop.iterable;
      if (!it) continue;
      if (it.type === 'call') {
        const c = callAt(model, it);
        if (c?.qualifiedName !== 'builtins.list' || !isFreshIterable(model, onlyArg(it))) continue;
        ctx.report({ node: it, message: '`list(...)` copies a fresh iterable only to loop over it; loop over the iterable', severity: severity(loop.functionIndex, true) });
      } else if (it.type === 'list_comprehension' && loop.kind !== 'comprehension') {
        ctx.report({ node: it, message: 'a list comprehension built only to be looped over; use a generator expression', severity: severity(loop.functionIndex, true) });
      }
    }
  },
};
