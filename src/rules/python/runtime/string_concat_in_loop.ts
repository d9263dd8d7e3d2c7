/**
 * PA304 string_concat_in_loop
 *
 * What it does: finds `s += part` (or `s = s + part`) inside a loop body where `s` is a string.
 * Why is this bad? Strings are immutable: each `+=` may copy everything built so far, so the
 * loop costs O(n²) in the total length. Collecting the parts and joining once is linear.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileModel } from '../../../semantic/model.js';
import { assignmentsTo, callAt } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext } from '../../types.js';

const STRING_NODES = new Set(['string', 'concatenated_string']);

/** Is the expression a string as far as syntax tells? null when unknown. */
function stringness(model: FileModel, node: SyntaxNode | null): boolean | null {
  if (!node) return null;
  // `b"..."` is bytes, not str.
  if (STRING_NODES.has(node.type)) return /^[rRuUfF]*["']/.test(node.text) ? true : null;
  if (['list', 'dictionary', 'set', 'tuple', 'integer', 'float', 'list_comprehension', 'true', 'false', 'none'].includes(node.type)) return false;
  if (node.type === 'call') {
    const c = callAt(model, node);
    if (c?.qualifiedName === 'builtins.str' || (c?.method === 'join' && /^("[^"]*"|'[^']*')\.join$/.test(c.calleeText))) return true;
    if (c?.qualifiedName && /^builtins\.(list|dict|set|int|float|bytes|bytearray|tuple)$/.test(c.qualifiedName)) return false;
  }
  return null;
}

/** The target's last plain assignment before `line` in the function: is it a string? */
function initialisedAsString(model: FileModel, target: string, fnIndex: number, line: number): boolean | null {
  let best = null;
  for (const a of assignmentsTo(model, target)) {
    if (a.functionIndex === fnIndex && a.line < line && a.loops.length === 0 && (!best || a.line >= best.line)) best = a;
  }
  return best ? stringness(model, best.value) : null;
}

export const stringConcatInLoop: FileRule = {
  meta: {
    code: 'PA304',
    check: 'string_concat_in_loop',
    family: 'runtime',
    severity: 'medium',
    effort: 'S',
    summary: 'String built with `+=` inside a loop',
    what: 'Finds `s += <str>` and `s = s + <str>` in a loop body where `s` is known to be a string: initialised from a string literal, an f-string, `str(...)` or `"".join(...)`, or extended with a string literal.',
    why: 'Each concatenation may copy the whole string built so far, so building a string of n parts costs O(n²) time — harmless for ten parts, seconds for a CSV export or a long log.',
    bad: 'out = ""\nfor row in rows:\n    out += f"{row.id},{row.name}\\n"\n',
    good: 'parts = []\nfor row in rows:\n    parts.append(f"{row.id},{row.name}\\n")\nout = "".join(parts)\n',
    fix: 'collect the parts in a list and `"".join(parts)` once, or write to an `io.StringIO`',
    references: ['https://docs.python.org/3/faq/programming.html#what-is-the-most-efficient-way-to-concatenate-many-strings-together'],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    if (model.isTestFile) return;
    const report = (target: string, value: SyntaxNode | null, fnIndex: number, loops: number[], line: number, node: SyntaxNode) => {
      const real = loops.filter((i) => model.loops[i]!.kind !== 'comprehension');
      if (real.length === 0) return;
      const init = initialisedAsString(model, target, fnIndex, line);
      if (init === false) return;
      if (init !== true && stringness(model, value) !== true) return;
      const loop = model.loops[real[real.length - 1]!]!;
      const it = loop.iterable;
      const small = it && ['list', 'tuple', 'set'].includes(it.type) && it.namedChildCount < 100;
      ctx.report({ node, message: `string \`${target}\` is built with \`+\` inside a loop; collect the parts and join once`, severity: small ? 'low' : 'medium' });
    };
    for (const a of model.augAssignments) {
      if (a.operator !== '+=') continue;
      report(a.target, a.value, a.functionIndex, a.loops, a.line, a.node);
    }
    for (const a of model.assignments) {
      const v = a.value;
      if (a.fromWith || a.loops.length === 0 || v?.type !== 'binary_operator') continue;
      if (v.childForFieldName('operator')?.text !== '+' || v.childForFieldName('left')?.text !== a.target) continue;
      report(a.target, v.childForFieldName('right'), a.functionIndex, a.loops, a.line, a.node);
    }
  },
};
