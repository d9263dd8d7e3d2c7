/**
 * A handful of constants the code states: what a loop over one costs is fixed, not an N+1. The
 * query and transaction rules ask it of a loop's iterable; the summary asks it of a module's
 * constants, for loops in other modules (`FileSummary.smallConstants`).
 */
import type { SyntaxNode } from '../parse/parser.js';
import type { FunctionInfo } from './model.js';

/** At most this many iterations is a fixed cost, not an N+1: a handful of constants, a call's keyword arguments. */
export const SMALL_BOUND = 10;

/** Methods that add items to a list, set or dict. */
export const GROWS = /^(append|extend|insert|add|update|setdefault)$/;

/**
 * Does `text` (a function's or a module's source) grow the collection bound to `name`: a method
 * that adds items (`name.append(x)`, {@link GROWS}), `name += more`, `name |= more`, an item
 * assignment (`name[k] = v`), or, with `global`, a function that rebinds the module's name?
 */
export function grownIn(text: string, name: string, global = false): boolean {
  const n = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const grows = `(?<![\\w.])${n}\\s*(\\.\\s*(append|extend|insert|add|update|setdefault)\\s*\\(|\\+=|\\|=|\\[[^\\]]*\\]\\s*=(?!=))`;
  return new RegExp(global ? `${grows}|\\bglobal\\s+[\\w\\s,]*\\b${n}\\b` : grows).test(text);
}

/** A list, tuple, set or dict literal of at most {@link SMALL_BOUND} items (comments aside), without splats. */
export function smallLiteral(n: SyntaxNode | null): boolean {
  if (!n || !['list', 'tuple', 'set', 'dictionary'].includes(n.type)) return false;
  const items = n.namedChildren.filter((c) => c.type !== 'comment');
  return !items.some((c) => c.type === 'list_splat' || c.type === 'dictionary_splat') && items.length <= SMALL_BOUND;
}

/**
 * The iterable without a `.items()`/`.keys()`/`.values()` view, a `sorted(...)`/`list(...)`/`frozenset(...)`/
 * `reversed(...)`/`enumerate(...)` wrapper (keyword arguments aside: `sorted(xs, key=f)`), a `cast(T, ...)`, or a
 * comprehension over it (`[x for x in items if x in wanted]` has at most as many).
 */
export function iterationSource(node: SyntaxNode | null): SyntaxNode | null {
  let n = parens(node);
  for (let depth = 0; n && depth < 3; depth++) {
    if (n.type === 'list_comprehension' || n.type === 'generator_expression' || n.type === 'set_comprehension') {
      const clauses = n.namedChildren.filter((c) => c.type === 'for_in_clause');
      if (clauses.length !== 1) break;
      n = parens(clauses[0]!.childForFieldName('right'));
      continue;
    }
    if (n.type !== 'call') break;
    const fn = n.childForFieldName('function');
    const args = n.childForFieldName('arguments')?.namedChildren.filter((a) => a.type !== 'comment') ?? [];
    const positional = args.filter((a) => a.type !== 'keyword_argument');
    if (fn?.type === 'attribute' && /^(items|keys|values)$/.test(fn.childForFieldName('attribute')?.text ?? '') && args.length === 0) {
      n = parens(fn.childForFieldName('object'));
    } else if (fn?.type === 'identifier' && /^(sorted|list|tuple|set|frozenset|reversed|enumerate)$/.test(fn.text) && positional.length === 1) {
      n = parens(positional[0]!);
    } else if (/^(typing\.)?cast$/.test(fn?.text ?? '') && positional.length === 2) {
      // `cast(list[Block], [Webhook, Secret])`: the value, as the type checker is told to see it.
      n = parens(positional[1]!);
    } else break;
  }
  return n;
}

function parens(node: SyntaxNode | null): SyntaxNode | null {
  let n = node;
  while (n && (n.type === 'await' || n.type === 'parenthesized_expression')) n = n.namedChild(0);
  return n;
}

/**
 * A function that takes nothing and only returns a small literal (after its docstring): its N is
 * written in the code (`def _fields(): return ["a", "b"]`).
 */
export function returnsSmallLiteral(fn: FunctionInfo): boolean {
  if (fn.params.length) return false;
  const statements = (fn.body?.namedChildren ?? []).filter((c) => c.type !== 'comment');
  const docstring = statements[0]?.type === 'expression_statement' && statements[0].namedChild(0)?.type === 'string';
  const rest = docstring ? statements.slice(1) : statements;
  let v = rest.length === 1 && rest[0]!.type === 'return_statement' ? rest[0]!.namedChild(0) : null;
  while (v?.type === 'parenthesized_expression') v = v.namedChild(0);
  return smallLiteral(v);
}
