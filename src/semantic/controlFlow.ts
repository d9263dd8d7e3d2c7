/** Control-flow facts read from the tree around a node, shared by the rules of every family. */
import type { SyntaxNode } from '../parse/parser.js';
import type { CallInfo, FileModel, LoopInfo } from './model.js';

/**
 * Does a call run only sometimes within its own function: what {@link conditionalWithin} says of
 * the call and the function's body, read from the regions the model recorded (no tree walk).
 */
export function conditionalInFunction(model: FileModel, call: CallInfo): boolean {
  if (call.functionIndex < 0 || call.conditionalFrom < 0) return false;
  const body = model.functions[call.functionIndex]!.body;
  return !!body && call.conditionalFrom >= body.startIndex;
}

/**
 * Is `node` inside a `def` or `lambda` nested below `stop` (anywhere above it when `stop` is
 * omitted)? Code there runs when that function is called, not where it is written.
 */
export function insideNestedFunction(node: SyntaxNode, stop: SyntaxNode | null = null): boolean {
  for (let p = node.parent; p && p.id !== stop?.id; p = p.parent) {
    if (p.type === 'function_definition' || p.type === 'lambda') return true;
  }
  return false;
}

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

/**
 * Is `node` inside an `except` handler below `stop` (not in a nested `def` or `lambda`)? What runs
 * there runs only when the `try` failed: in a loop, once per item whose work raised.
 */
export function inExceptHandler(node: SyntaxNode, stop: SyntaxNode): boolean {
  for (let p = node.parent; p && p.id !== stop.id; p = p.parent) {
    if (p.type === 'except_clause' || p.type === 'except_group_clause') return true;
    if (p.type === 'function_definition' || p.type === 'lambda') return false;
  }
  return false;
}

/**
 * Does the innermost block (statement list) around `node` also hold `other`: does `node` run on
 * every path from that block's start to `other` (not under an `if` that `other` is outside of)?
 */
export function blockHolds(node: SyntaxNode, other: SyntaxNode): boolean {
  let block: SyntaxNode | null = node.parent;
  while (block && block.type !== 'block' && block.type !== 'module') block = block.parent;
  return !!block && other.startIndex >= block.startIndex && other.endIndex <= block.endIndex;
}

/** A clock read: what a time-based throttle compares. */
const CLOCK = /\b(time\.(time|monotonic|perf_counter)|monotonic|perf_counter|datetime\.(now|utcnow)|timezone\.now|utcnow|loop\.time)\s*\(/;

/** A condition on an iteration counter or a clock. */
export function isThrottle(model: FileModel, cond: SyntaxNode, loop: LoopInfo): boolean {
  const text = cond.text;
  if (text.includes('%') || CLOCK.test(text)) return true;
  const body = loop.node.childForFieldName('body');
  const names = new Set(text.match(/[A-Za-z_]\w*/g) ?? []);
  // `enumerate`'s index; a name counted up in the loop; a name set from a clock in the loop.
  const left = loop.node.childForFieldName('left');
  if (loop.iterable && /^enumerate\s*\(/.test(loop.iterable.text) && left?.type === 'pattern_list' && names.has(left.namedChild(0)?.text ?? '')) return true;
  if (model.augAssignments.some((a) => a.functionIndex === loop.functionIndex && a.loops.includes(loop.index) && names.has(a.target))) return true;
  if (model.assignments.some((a) => a.functionIndex === loop.functionIndex && a.loops.includes(loop.index) && names.has(a.target) && !!a.value && CLOCK.test(a.value.text))) return true;
  // `len(batch)` of a buffer the loop fills.
  for (const m of text.matchAll(/\blen\(\s*([A-Za-z_][\w.]*)\s*\)/g)) {
    if (body && new RegExp(`(?<![\\w.])${m[1]!.replace(/\./g, '\\.')}\\s*\\.\\s*(append|extend|add)\\s*\\(`).test(body.text)) return true;
  }
  return false;
}

/** The blocks of an `if` statement (its consequence, each `elif`'s, the `else`'s) and whether it has an `else`. */
export function ifBranches(st: SyntaxNode): { branches: (SyntaxNode | null)[]; hasElse: boolean } {
  const branches: (SyntaxNode | null)[] = [st.childForFieldName('consequence')];
  let hasElse = false;
  for (const c of st.namedChildren) {
    if (c.type === 'elif_clause') branches.push(c.childForFieldName('consequence'));
    if (c.type === 'else_clause') {
      hasElse = true;
      branches.push(c.childForFieldName('body') ?? c.namedChildren.find((n) => n.type === 'block') ?? null);
    }
  }
  return { branches, hasElse };
}

/**
 * Do `a` and `b` lie in different arms of one `if`/`elif`/`else` or `match` statement below `stop`
 * (so no run reaches both)? An arm is a branch's block: a node in an `elif`'s condition is in no
 * arm (that condition runs on the way to every later branch), while a `b` in a later `elif`'s
 * condition is outside `a`'s arm (read only when the earlier conditions failed); one in the
 * statement's first condition or the `match` subject is not. Not when a loop below `stop` runs
 * the statement again: a later pass may take the other arm.
 */
export function exclusiveArms(a: SyntaxNode, b: SyntaxNode, stop: SyntaxNode | null = null): boolean {
  const within = (n: SyntaxNode, outer: SyntaxNode) => n.startIndex >= outer.startIndex && n.endIndex <= outer.endIndex;
  for (let p = a.parent; p && p.id !== stop?.id; p = p.parent) {
    if (p.type === 'function_definition' || p.type === 'lambda') return false;
    let owner: SyntaxNode | null = null;
    let always: SyntaxNode | null = null;
    if (p.type === 'block' && p.parent?.type === 'if_statement') owner = p.parent;
    else if (p.type === 'block' && (p.parent?.type === 'elif_clause' || p.parent?.type === 'else_clause') && p.parent.parent?.type === 'if_statement') owner = p.parent.parent;
    else if (p.type === 'block' && p.parent?.type === 'case_clause') {
      for (let o = p.parent.parent; o; o = o.parent) if (o.type === 'match_statement') { owner = o; break; }
      always = owner?.childForFieldName('subject') ?? null;
    }
    if (owner?.type === 'if_statement') always = owner.childForFieldName('condition');
    if (!owner || !within(b, owner) || within(b, p) || (always && within(b, always))) continue;
    return !loopedBelow(owner, stop);
  }
  return false;
}

/** Is the node inside a `for`/`while` body below `stop`, in the same function? */
function loopedBelow(node: SyntaxNode, stop: SyntaxNode | null): boolean {
  for (let p = node.parent; p && p.id !== stop?.id; p = p.parent) {
    if (p.type === 'function_definition' || p.type === 'lambda') return false;
    if (p.type === 'for_statement' || p.type === 'while_statement') return true;
  }
  return false;
}
