/**
 * PA109 count_via_len
 *
 * What it does: finds rows fetched only to be counted: `len(q.all())`,
 * `len((await session.scalars(select(...))).all())`, `len(session.execute(...).fetchall())`,
 * `len(list(q))` where `q` is a query or a result.
 * Why is this bad? Every row travels over the wire and becomes an object, to produce one number
 * the database computes from an index.
 *
 * Guards: the list handed to `len` must be fetched right there (the list is thrown away after
 * counting) from a call the classifier knows reads the database; `len(rows)` of a list that is
 * also used elsewhere is not flagged.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileModel } from '../../../semantic/model.js';
import { callAt } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { classifyDbCall } from './dbCalls.js';
import { chainCallsDown, lastAssignment, positionalArgs, short, unwrap } from './semantics.js';
import { assignmentsTo, variableRefs, type AssignmentInfo } from '../../../semantic/model.js';

const FETCH_ALL = new Set(['all', 'fetchall']);

/** Does the expression hold rows of a query: a DB read call in its chain, or a name assigned one? */
export function isQueryResult(model: FileModel, expr: SyntaxNode | null, fnIndex: number, line: number, depth = 0): boolean {
  const node = unwrap(expr);
  if (!node || depth > 4) return false;
  if (node.type === 'identifier') {
    const a = lastAssignment(model, node.text, fnIndex, line);
    return !!a?.value && isQueryResult(model, a.value, a.functionIndex, a.line - 1, depth + 1);
  }
  for (const c of chainCallsDown(node)) {
    const call = callAt(model, c);
    if (call && classifyDbCall(model, call)?.kind === 'read') return true;
  }
  return false;
}

export const countViaLen: FileRule = {
  meta: {
    code: 'PA109',
    check: 'count_via_len',
    family: 'query',
    severity: 'medium',
    effort: 'S',
    summary: 'Rows fetched only to be counted with `len()`',
    what: 'Finds `len(q.all())`, `len((await session.scalars(select(...))).all())`, `len(result.fetchall())` and `len(list(q))` where the list comes straight from a query and is thrown away after counting. Also a list of rows held in a local whose only other uses are `len()` and a loop that only tallies them. Advisory when the query\'s equality filters pin the primary key or two id columns (`Member.group_id == g` and `Member.user_id == u`: one association\'s rows, 0 or a few), or when the held count is only compared with a bound of at most ten (`len(recent) >= 3`, a literal or a name bound once to one: a rate or limit check keeps the rows near it).',
    why: 'All matching rows are transferred, decoded and turned into ORM objects only to produce one integer; `SELECT count(*)` lets the database answer from an index and returns one row.',
    bad: "from sqlalchemy import select\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\n\nasync def running(session: AsyncSession) -> int:\n    return len((await session.scalars(select(Job).where(Job.status == \"running\"))).all())\n",
    good: "from sqlalchemy import func, select\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\n\nasync def running(session: AsyncSession) -> int:\n    return await session.scalar(select(func.count()).select_from(Job).where(Job.status == \"running\"))\n",
    fix: '`select(func.count()).select_from(Model).where(...)` or `query.count()`',
    references: [
      'https://docs.sqlalchemy.org/en/20/core/functions.html#sqlalchemy.sql.functions.count',
      'https://docs.sqlalchemy.org/en/20/orm/queryguide/select.html',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    if (model.isTestFile) return;
    const counted = new Set<AssignmentInfo>();
    for (const call of model.calls) {
      if (call.qualifiedName !== 'builtins.len') continue;
      const args = positionalArgs(call.node);
      if (args.length !== 1) continue;
      const arg = unwrap(args[0]!);
      if (arg?.type === 'identifier') {
        const held = rowsHeldOnlyToCount(model, arg.text, call.functionIndex, call.line);
        if (!held || counted.has(held.assignment)) continue;
        counted.add(held.assignment);
        const pinned = pinnedBy(held.assignment.value!.text);
        const threshold = held.tallied ? null : smallThreshold(model, call.node, call.functionIndex);
        ctx.report({
          node: call.node,
          message: `\`${arg.text}\` holds every row of \`${short(held.assignment.value!, 50)}\` only to count them`
            + (held.tallied ? ' (with `len()` and a loop that only tallies them)' : ''),
          ...(pinned ? { advisory: `the query's filters pin ${pinned}: 0 or a few rows, so counting them in Python costs little` }
            : threshold !== null ? { advisory: `the count is only compared with ${threshold}: the code keeps the rows near that bound (a limit or rate check), and \`.limit(${threshold})\` or a COUNT makes it sure` } : {}),
        });
        continue;
      }
      if (arg?.type !== 'call') continue;
      const inner = callAt(model, arg);
      if (!inner) continue;
      let source: SyntaxNode | null = null;
      if (FETCH_ALL.has(inner.method) && inner.receiver && positionalArgs(arg).length === 0) source = inner.receiver;
      else if (inner.qualifiedName === 'builtins.list') source = positionalArgs(arg)[0] ?? null;
      if (!source || !isQueryResult(model, source, call.functionIndex, call.line)) continue;
      const pinned = pinnedBy(queryText(model, source, call.functionIndex, call.line));
      ctx.report({
        node: call.node,
        message: `\`${short(call.node, 60)}\` fetches every row only to count them`,
        ...(pinned ? { advisory: `the query's filters pin ${pinned}: 0 or a few rows, so counting them in Python costs little (\`exists()\` or \`.first() is not None\` says the intent)` } : {}),
      });
    }
  },
};

/** The text of the query a name holds (its last assignment, one step), or of the expression itself. */
function queryText(model: FileModel, source: SyntaxNode, fnIndex: number, line: number): string {
  if (source.type !== 'identifier') return source.text;
  const a = lastAssignment(model, source.text, fnIndex, line);
  return a?.value ? a.value.text : source.text;
}

/**
 * What the query's equality filters pin, or null: the primary key (`Model.id == x`, `id=x`), or
 * two id columns at once (`Member.group_id == g` and `Member.user_id == u`, one association's
 * rows). A query filtered like that returns at most a handful of rows.
 */
function pinnedBy(text: string): string | null {
  const columns = new Set<string>();
  for (const m of text.matchAll(/\.([A-Za-z_]\w*)\s*==(?!=)/g)) columns.add(m[1]!);
  for (const f of text.matchAll(/\bfilter_by\s*\(([^()]*)\)/g)) for (const k of f[1]!.matchAll(/\b([A-Za-z_]\w*)\s*=(?!=)/g)) columns.add(k[1]!);
  if (columns.has('id')) return 'the primary key';
  const ids = [...columns].filter((c) => /_id$/.test(c));
  return ids.length >= 2 ? `two id columns (\`${ids.slice(0, 2).join('`, `')}\`)` : null;
}

/** Fetches that return every matching row as a list (`q.all()`, `result.fetchall()`, a repository's `list(...)`). */
const ROW_LIST_METHODS = new Set(['all', 'fetchall', 'list']);
/** Calls a tallying loop may make on what it reads: a dict's `get`, string methods. */
const TALLY_CALLS = new Set(['get', 'split', 'rsplit', 'partition', 'lower', 'upper', 'strip', 'startswith', 'endswith']);

/**
 * `rows = q.all()` … `len(rows)`: the local's one assignment, in the same function, fetches a
 * list of rows from a query, and every other use of it is `len(rows)` or the iterable of a `for`
 * loop that only tallies (assignments and `+=`, no call but a dict's `get` or string methods).
 * Null when the rows are used for anything else (returned, passed, sliced, indexed, rendered),
 * or the query is bounded by `limit`.
 */
function rowsHeldOnlyToCount(model: FileModel, name: string, fnIndex: number, line: number): { assignment: AssignmentInfo; tallied: boolean } | null {
  if (fnIndex < 0) return null;
  const own = assignmentsTo(model, name).filter((a) => a.functionIndex === fnIndex);
  if (own.length !== 1) return null;
  const a = own[0]!;
  if (a.fromWith || a.line > line || !a.value || a.node.type !== 'assignment') return null;
  const value = unwrap(a.value);
  if (value?.type !== 'call') return null;
  const fetch = callAt(model, value);
  if (!fetch) return null;
  const listed = fetch.qualifiedName === 'builtins.list'
    || (fetch.hasReceiver && (fetch.method === 'list' || (ROW_LIST_METHODS.has(fetch.method) && positionalArgs(value).length === 0)));
  if (!listed || /\.limit\s*\(|\blimit\s*=/.test(value.text)) return null;
  const source = fetch.qualifiedName === 'builtins.list' ? (positionalArgs(value)[0] ?? null) : value;
  if (!source || !isQueryResult(model, source, fnIndex, a.line)) return null;
  const fn = model.functions[fnIndex]!;
  let tallied = false;
  for (const ref of variableRefs(fn.node, name)) {
    if (ref.startIndex >= a.node.startIndex && ref.endIndex <= a.node.endIndex) {
      // The assignment's own target (`rows = …`); its value naming `rows` again is a use.
      if (a.node.childForFieldName('left')?.id === ref.id) continue;
      return null;
    }
    const p = ref.parent;
    if (p?.type === 'argument_list' && p.namedChildCount === 1 && p.parent?.type === 'call' && p.parent.childForFieldName('function')?.text === 'len') continue;
    if (p?.type === 'for_statement' && p.childForFieldName('right')?.id === ref.id && onlyTallies(p)) {
      tallied = true;
      continue;
    }
    return null;
  }
  return { assignment: a, tallied };
}

/** A `for` loop whose body only counts: assignments and `+=`, no call but tallying ones. */
function onlyTallies(loop: SyntaxNode): boolean {
  const body = loop.childForFieldName('body');
  if (!body || loop.childForFieldName('alternative')) return false;
  for (const stmt of body.namedChildren) {
    if (stmt.type !== 'expression_statement') return false;
    const e = stmt.namedChild(0);
    if (e?.type !== 'assignment' && e?.type !== 'augmented_assignment') return false;
  }
  for (const c of body.descendantsOfType('call')) {
    const f = c.childForFieldName('function');
    if (f?.type !== 'attribute' || !TALLY_CALLS.has(f.childForFieldName('attribute')?.text ?? '')) return false;
  }
  return true;
}

/** `len(x) >= 3`, `len(x) < 10`: the small integer literal (at most ten) the count is compared with, or null. */
function smallThreshold(model: FileModel, len: SyntaxNode, fnIndex: number): number | null {
  const cmp = len.parent;
  if (cmp?.type !== 'comparison_operator' || cmp.namedChildCount !== 2) return null;
  if (!/[<>]/.test(cmp.text.slice(cmp.namedChild(0)!.endIndex - cmp.startIndex, cmp.namedChild(1)!.startIndex - cmp.startIndex))) return null;
  let other = cmp.namedChildren.find((c) => c.id !== len.id) ?? null;
  // A name bound once to a literal (`limit = 3`, a module constant): its value.
  if (other?.type === 'identifier') {
    const a = lastAssignment(model, other.text, fnIndex, len.startPosition.row + 1);
    other = a && assignmentsTo(model, other.text).filter((x) => x.functionIndex === a.functionIndex).length === 1 ? a.value : null;
  }
  if (other?.type !== 'integer') return null;
  const n = Number(other.text);
  return n >= 1 && n <= 10 ? n : null;
}
