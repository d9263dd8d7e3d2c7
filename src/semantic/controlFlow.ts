/** Control-flow facts read from the tree around a node, shared by the rules of every family. */
import type { SyntaxNode } from '../parse/parser.js';

/**
 * The statements between `node` and `stop` that make it run only sometimes: an `if`/`elif`/
 * `else` branch, an `except` handler, a conditional expression, a `match` case, a short-circuit
 * operand. Returns the first one found, or null when `node` runs whenever `stop`'s body does.
 */
export function conditionalWithin(node: SyntaxNode, stop: SyntaxNode): SyntaxNode | null {
  let cur: SyntaxNode | null = node.parent;
  let child: SyntaxNode = node;
  while (cur && cur.id !== stop.id) {
    switch (cur.type) {
      case 'if_statement':
        // The condition itself always runs; the branches do not.
        if (cur.childForFieldName('condition')?.id !== child.id) return cur;
        break;
      case 'elif_clause':
      case 'else_clause':
      case 'except_clause':
      case 'except_group_clause':
      case 'conditional_expression':
      case 'case_clause':
      case 'boolean_operator':
        return cur;
      case 'while_statement':
      case 'for_statement':
        return cur;
      default:
        break;
    }
    child = cur;
    cur = cur.parent;
  }
  return null;
}

const BRANCHING = ['if_statement', 'elif_clause', 'else_clause', 'except_clause', 'except_group_clause', 'conditional_expression',
  'case_clause', 'boolean_operator', 'while_statement', 'for_statement'];
const spanMemo = new WeakMap<SyntaxNode, Int32Array>();

/**
 * Does `node` run whenever `body` does? The same answer as `conditionalWithin(node, body) ===
 * null`, from the body's branching ranges read once per body (asked for every call of a
 * function, the walk up the tree per call cost more than the rest of the pass).
 */
export function runsWhenever(node: SyntaxNode, body: SyntaxNode): boolean {
  let spans = spanMemo.get(body);
  if (!spans) {
    const list: number[] = [];
    for (const n of body.descendantsOfType(BRANCHING)) {
      // An `if` runs its condition always, its branches only sometimes.
      const from = n.type === 'if_statement' ? (n.childForFieldName('condition')?.endIndex ?? n.startIndex) : n.startIndex;
      list.push(from, n.endIndex);
    }
    spans = Int32Array.from(list);
    spanMemo.set(body, spans);
  }
  const start = node.startIndex;
  const end = node.endIndex;
  for (let i = 0; i < spans.length; i += 2) if (spans[i]! <= start && end <= spans[i + 1]!) return false;
  return true;
}
