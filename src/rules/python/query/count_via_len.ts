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
    what: 'Finds `len(q.all())`, `len((await session.scalars(select(...))).all())`, `len(result.fetchall())` and `len(list(q))` where the list comes straight from a query and is thrown away after counting. Advisory when the query\'s equality filters pin the primary key or two id columns (`Member.group_id == g` and `Member.user_id == u`: one association\'s rows, 0 or a few).',
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
    for (const call of model.calls) {
      if (call.qualifiedName !== 'builtins.len') continue;
      const args = positionalArgs(call.node);
      if (args.length !== 1) continue;
      const arg = unwrap(args[0]!);
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
