/**
 * PA110 dead_query_result
 *
 * What it does: finds a query whose result is assigned to a name and overwritten, in the same
 * block, before anything reads it: `rows = session.execute(q1)` then `rows = session.execute(q2)`.
 * Why is this bad? The first statement is a database round trip whose answer nobody uses: a
 * wasted query on every call, usually the leftover of an edit (or a bug: the wrong result is used).
 *
 * Guards: both assignments are statements of one block (a branch, `try` or loop body in between
 * would make the first one live on some path); nothing between them — nor the second value —
 * mentions the name; a tuple target or an augmented assignment is not an overwrite.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileModel } from '../../../semantic/model.js';
import { callAt, declaresGlobal } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { classifyDbCall } from './dbCalls.js';
import { short, unwrap } from './semantics.js';

/** `name = value` as a statement of a block: the name and the value, else null. */
function plainAssignment(stmt: SyntaxNode): { name: string; value: SyntaxNode } | null {
  if (stmt.type !== 'expression_statement' || stmt.namedChildCount !== 1) return null;
  const a = stmt.namedChild(0)!;
  if (a.type !== 'assignment') return null;
  const left = a.childForFieldName('left');
  const value = a.childForFieldName('right');
  if (left?.type !== 'identifier' || !value || value.type === 'assignment') return null;
  return { name: left.text, value };
}

/** The first call in `value` the classifier knows reads the database, else null. */
function dbRead(model: FileModel, value: SyntaxNode): SyntaxNode | null {
  const calls = unwrap(value)?.type === 'call' ? [unwrap(value)!, ...value.descendantsOfType('call')] : value.descendantsOfType('call');
  for (const node of calls) {
    const call = callAt(model, node);
    if (call && classifyDbCall(model, call)?.kind === 'read') return node;
  }
  return null;
}

function ownBlock(block: SyntaxNode, body: SyntaxNode): boolean {
  for (let p = block.parent; p && p.id !== body.id; p = p.parent) {
    if (p.type === 'function_definition' || p.type === 'class_definition' || p.type === 'lambda') return false;
  }
  return true;
}

/** A query run for its effect: it locks rows, or its SQL calls a function that changes state. */
const SIDE_EFFECT_READ = /with_for_update|\bFOR\s+(NO\s+KEY\s+)?UPDATE\b|\bFOR\s+(KEY\s+)?SHARE\b|\b(set_config|pg_advisory\w*|pg_try_advisory\w*|nextval|setval|pg_notify|pg_sleep|lo_\w+|dblink\w*)\s*\(/i;

/** Does `text` mention `name` as a name (not as an attribute after a dot)? */
function mentions(text: string, name: string): boolean {
  return new RegExp(`(^|[^\\w.])${name}\\b`).test(text);
}

export const deadQueryResult: FileRule = {
  meta: {
    code: 'PA110',
    check: 'dead_query_result',
    family: 'query',
    severity: 'medium',
    effort: 'S',
    summary: 'A query result overwritten before anything reads it (a wasted round trip)',
    what: 'Finds `x = <query>` followed, in the same block, by another `x = ...` with nothing in between (nor in the new value) reading `x`: the first query runs and its rows are thrown away. Assignments in different branches, `try`/`except` arms or loop bodies are not compared; nor a query run for its effect (a row lock, `with_for_update()` / `FOR UPDATE`, or SQL calling `set_config`, an advisory lock, `nextval`), nor a name the function declares `global` or `nonlocal`.',
    why: 'The discarded statement still costs a round trip, a plan, and the rows it transfers, on every call. It is also often a bug: the code meant to use both results, or the second one was meant to refine the first.',
    bad: "from sqlalchemy import select\nfrom sqlalchemy.orm import Session\n\n\ndef open_orders(db: Session, customer_id: int):\n    orders = db.scalars(select(Order).where(Order.customer_id == customer_id)).all()\n    orders = db.scalars(select(Order).where(Order.customer_id == customer_id, Order.open.is_(True))).all()\n    return orders\n",
    good: "from sqlalchemy import select\nfrom sqlalchemy.orm import Session\n\n\ndef open_orders(db: Session, customer_id: int):\n    orders = db.scalars(select(Order).where(Order.customer_id == customer_id, Order.open.is_(True))).all()\n    return orders\n",
    fix: 'delete the unused query, or use its result',
    references: ['https://docs.sqlalchemy.org/en/20/orm/queryguide/select.html'],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    if (model.isTestFile) return;
    // Candidates first, from the model's calls and assignments: a name bound twice in one
    // function, the earlier value holding a DB read (the calls are classified already; most
    // functions have none, and the tree is read for those only).
    const reads = new Map<number, number[]>();
    for (const c of model.calls) {
      if (c.functionIndex < 0 || classifyDbCall(model, c)?.kind !== 'read') continue;
      const list = reads.get(c.functionIndex);
      if (list) list.push(c.start);
      else reads.set(c.functionIndex, [c.start]);
    }
    if (!reads.size) return;
    const candidates = new Set<number>();
    const seen = new Set<string>();
    for (const a of model.assignments) {
      const starts = reads.get(a.functionIndex);
      if (!starts || a.fromWith || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
      const key = `${a.functionIndex}\0${a.target}`;
      if (seen.has(key)) candidates.add(a.functionIndex);
      else if (a.value && starts.some((at) => at >= a.value!.startIndex && at < a.value!.endIndex)) seen.add(key);
    }
    for (const fnIndex of candidates) {
      const fn = model.functions[fnIndex]!;
      const body = fn.body;
      if (!body) continue;
      // The function's own blocks: a nested def's are its own function's.
      const blocks = [body, ...body.descendantsOfType('block').filter((b) => ownBlock(b, body))];
      for (const block of blocks) {
        const stmts = block.namedChildren.filter((s) => s.type !== 'comment');
        for (let i = 0; i < stmts.length; i++) {
          const first = plainAssignment(stmts[i]!);
          if (!first) continue;
          const read = dbRead(model, first.value);
          if (!read) continue;
          // A read kept for what it does, not for its rows: a row lock (`with_for_update()`,
          // `FOR UPDATE`), or SQL that calls a function with effects (`set_config`, an advisory lock).
          if (SIDE_EFFECT_READ.test(first.value.text)) continue;
          // Another function may read a global or an enclosing function's name between the two.
          if (declaresGlobal(fn, first.name, true)) continue;
          // Stop at the first statement that mentions the name: a read, or the overwrite.
          for (let j = i + 1; j < stmts.length; j++) {
            const stmt = stmts[j]!;
            if (!mentions(stmt.text, first.name)) continue;
            const next = plainAssignment(stmt);
            if (next && next.name === first.name && !mentions(next.value.text, first.name)) {
              ctx.report({
                node: stmts[i]!,
                message: `the result of \`${short(read, 50)}\` in \`${first.name}\` is overwritten on line ${stmt.startPosition.row + 1} before anything reads it: a query whose rows are thrown away`,
              });
            }
            break;
          }
        }
      }
    }
  },
};
