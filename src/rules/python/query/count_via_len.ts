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
 *
 * Also per row: `len(t.members)` in a loop over rows whose query loads `members` with them
 * (an eager relationship or loader option), the collection used for nothing but its size.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileModel } from '../../../semantic/model.js';
import { callAt, callsOf } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import { classifyDbCall, rowsSource } from './dbCalls.js';
import { chainCallsDown, lastAssignment, loopTarget, positionalArgs, short, unwrap } from './semantics.js';
import { assignmentsTo, variableRefs, type AssignmentInfo, type CallInfo, type LoopInfo } from '../../../semantic/model.js';
import type { Effect } from '../../../analysis/summary.js';
import { callGraphOf, ownSites, type CallGraph } from '../../../analysis/callgraph.js';
import { libraryReceiver, REPOSITORY_LIBRARY_BASE } from '../../../semantic/repositoryLibrary.js';
import type { ModelInfo, ProjectContext, RelationshipInfo } from '../../../discovery/context.js';
import { projectIndex } from '../../projectFacts.js';
import { eagerlyLoaded, rowsExpression, RETURNS_ROWS } from './loadedRelations.js';
import { isMemoisedFunction } from '../../../semantic/memo.js';
import { returnsOf } from './selfRows.js';

const FETCH_ALL = new Set(['all', 'fetchall']);

/** Does the expression hold rows of a query: a DB read call in its chain, or a name assigned one? */
export function isQueryResult(model: FileModel, expr: SyntaxNode | null, fnIndex: number, line: number, depth = 0): boolean {
  const node = unwrap(expr);
  if (!node || depth > 4) return false;
  if (node.type === 'identifier') {
    // A DB-API cursor: what it fetches is what its last `execute` before here selected.
    if (cursorSelected(model, node.text, fnIndex, line)) return true;
    const a = lastAssignment(model, node.text, fnIndex, line);
    return !!a?.value && isQueryResult(model, a.value, a.functionIndex, a.line - 1, depth + 1);
  }
  const chain = chainCallsDown(node);
  for (const c of chain) {
    const call = callAt(model, c);
    if (call && classifyDbCall(model, call)?.kind === 'read') return true;
  }
  // A query built step by step (`q = q.filter(...)`; `q.limit(n).all()`): what the chain's root name holds.
  const last = chain[chain.length - 1];
  const fn = last?.childForFieldName('function');
  const root = fn?.type === 'attribute' ? unwrap(fn.childForFieldName('object')) : null;
  return root?.type === 'identifier' && isQueryResult(model, root, fnIndex, line, depth + 1);
}

/**
 * Is `name` a cursor whose last `name.execute(...)` before `line` in the function, in the same
 * block or an enclosing one, is a read (`cur.execute("SELECT ..."); rows = cur.fetchall()`)?
 */
function cursorSelected(model: FileModel, name: string, fnIndex: number, line: number): boolean {
  let last: CallInfo | null = null;
  for (const c of callsOf(model, fnIndex)) {
    if (c.functionIndex !== fnIndex || c.line > line || c.method !== 'execute' || c.receiver?.text !== name) continue;
    if (!last || c.start > last.start) last = c;
  }
  return !!last && !last.loops.length && classifyDbCall(model, last)?.kind === 'read' && !/\bLIMIT\b|\bFETCH\s+FIRST\b/i.test(last.node.text);
}

export const countViaLen: FileRule & RepoRule = {
  meta: {
    code: 'PA109',
    check: 'count_via_len',
    family: 'query',
    severity: 'medium',
    effort: 'S',
    summary: 'Rows fetched only to be counted with `len()`',
    what: 'Finds `len(q.all())`, `len((await session.scalars(select(...))).all())`, `len(result.fetchall())` (also a DB-API cursor\'s, after `cur.execute("SELECT ...")` without a `LIMIT`) and `len(list(q))` where the list comes straight from a query and is thrown away after counting. Also a list of rows held in a local whose only other uses are `len()` and a loop that only tallies them. Advisory when the query\'s filters pin the primary key (also `Model.id.in_(keys)`: one row per key the code holds, an existence check) or two id columns (`Member.group_id == g` and `Member.user_id == u`: one association\'s rows, 0 or a few), or when the held count is only compared with a bound of at most ten (`len(recent) >= 3`, a literal or a name bound once to one: a rate or limit check keeps the rows near it). Also `len(row.children)` on each row of a loop (or comprehension) whose only other use of the collection is a truth test, when the collection comes with the rows (`lazy="selectin"`/`"joined"`/`"subquery"` on the relationship, or an eager loader option on the query): every child row is loaded to produce one number per row (`low`: one batched load, wasted but bounded by the rows). The rows are typed from the file\'s own query, a function that returns a query of one model, or a repository library\'s `list()`/`list_and_count()` (advanced-alchemy: the model of the service\'s `Service[Model]` base); through the library a lazy collection counts too (one SELECT per row, which no other rule sees there). And `len(helper(...))` where every `return` of the helper (a function or method the call graph resolves) is a list fetched from a query (`return q.all()`, also a query built in steps, `q = q.filter(...)`), or an empty literal on a guard path; silent when every fetch is bounded by `limit`, advisory when the filters pin the primary key.',
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
        if (writtenRows(model, held.assignment.value!.text, call.functionIndex, held.assignment.line)) continue;
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
  checkRepo(ctx: RepoRuleContext): void {
    reportCountedCollections(ctx);
    reportCountedCalls(ctx);
  },
};

/**
 * Are the rows the ids an UPDATE, DELETE or INSERT ... RETURNING gave back (`res = await
 * s.execute(update(M)...returning(M.id))`, then `ids = res.scalars().all()`)? Counting them is how
 * a write says how many rows it changed (a lock-token check), not a read to count.
 */
function writtenRows(model: FileModel, text: string, fnIndex: number, line: number): boolean {
  const statement = /\b(update|delete|insert)\s*\([\s\S]*\.returning\s*\(/;
  if (statement.test(text)) return true;
  const base = /(?:^|[^\w.])([A-Za-z_]\w*)\s*\.\s*(?:scalars|all|fetchall|mappings|scalar_one_or_none)\s*\(/.exec(text)?.[1];
  const a = base ? lastAssignment(model, base, fnIndex, line) : null;
  return !!a?.value && a.functionIndex === fnIndex && statement.test(a.value.text);
}

/** The text of the query a name holds (its last assignment, one step), or of the expression itself. */
function queryText(model: FileModel, source: SyntaxNode, fnIndex: number, line: number): string {
  if (source.type !== 'identifier') return source.text;
  const a = lastAssignment(model, source.text, fnIndex, line);
  return a?.value ? a.value.text : source.text;
}

/**
 * What the query's equality filters pin, or null: the primary key (`Model.id == x`, `id=x`, or
 * `Model.id.in_(keys)`: one row per key held), or
 * two id columns at once (`Member.group_id == g` and `Member.user_id == u`, one association's
 * rows). A query filtered like that returns at most a handful of rows.
 */
function pinnedBy(text: string): string | null {
  const columns = new Set<string>();
  for (const m of text.matchAll(/\.([A-Za-z_]\w*)\s*==(?!=)/g)) columns.add(m[1]!);
  for (const f of text.matchAll(/\bfilter_by\s*\(([^()]*)\)/g)) for (const k of f[1]!.matchAll(/\b([A-Za-z_]\w*)\s*=(?!=)/g)) columns.add(k[1]!);
  if (columns.has('id')) return 'the primary key';
  // `Model.id.in_(keys)` on the queried model, with keys the code holds (a name, `d.keys()`, a
  // literal; not a subquery): at most one row per key, an existence check of those keys.
  const keyed = /([A-Za-z_][\w.]*)\.id\s*\.\s*in_\s*\(\s*(?:[A-Za-z_][\w.]*(?:\.keys\(\))?|\[[^\]]*\]|\([^()]*\)|\{[^}]*\})\s*\)/.exec(text);
  if (keyed && new RegExp(`\\b(query|select)\\(\\s*${keyed[1]!.replace(/\./g, '\\.')}\\b`).test(text)) return 'the primary key to the keys it is given';
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
  const item = loop.childForFieldName('left');
  for (const stmt of body.namedChildren) {
    if (stmt.type !== 'expression_statement') return false;
    const e = stmt.namedChild(0);
    if (e?.type !== 'assignment' && e?.type !== 'augmented_assignment') return false;
    // `row.active = False` changes the row: the loop needs the rows themselves, not a count.
    let left = e.childForFieldName('left');
    while (left && (left.type === 'attribute' || left.type === 'subscript')) left = left.type === 'attribute' ? left.childForFieldName('object') : left.childForFieldName('value');
    if (item?.type === 'identifier' && left?.type === 'identifier' && left.text === item.text && left.id !== e.childForFieldName('left')?.id) return false;
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

/**
 * `COUNTED_COLLECTION` sites: `len(item.rel)` inside a loop (or comprehension) over rows, where
 * every use of `item.rel` in the loop is that count or a truth test (`len(t.members) if
 * t.members else 0`). `what` = `item|rel|line:column:endColumn|entity|query text`; the entity
 * and text are the file's own query when it names one model, else empty and the site's line and
 * column are the call that gives the rows (a repository library's `list_and_count`, a helper
 * of another module) for the repo phase to type. The whole collection of every row is loaded
 * to produce one number per row.
 */
export const COUNTED_COLLECTION = 'counted_collection';

export function collectCountedCollections(model: FileModel): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return effects;
  if (/\.(all|fetchall)\(\s*\)/.test(model.source)) fetchedListReturns(model, effects);
  if (!model.source.includes('len(')) return effects;
  const seen = new Set<string>();
  for (const call of model.calls) {
    if (call.qualifiedName !== 'builtins.len' || call.functionIndex < 0) continue;
    const args = positionalArgs(call.node);
    const arg = args.length === 1 ? unwrap(args[0]!) : null;
    if (arg?.type === 'call' || arg?.type === 'await') {
      countedCall(model, call, arg, effects);
      continue;
    }
    if (arg?.type !== 'attribute' || !call.loops.length) continue;
    const obj = arg.childForFieldName('object');
    const rel = arg.childForFieldName('attribute')?.text;
    if (obj?.type !== 'identifier' || !rel || rel.startsWith('_')) continue;
    const loop = [...call.loops].reverse().map((i) => model.loops[i]!).find((l) => loopTarget(l)?.name === obj.text);
    if (!loop || loop.functionIndex !== call.functionIndex || !onlyCounted(loop.node, obj.text, rel)) continue;
    const key = `${loop.index}|${obj.text}.${rel}`;
    if (seen.has(key)) continue;
    const source = countedRows(model, loop);
    if (!source) continue;
    seen.add(key);
    // A `len(...)` over several lines is reported on its first line, to the end of that line's text.
    const at = `${call.line}:${call.column}:${call.node.endPosition.row + 1 === call.line ? call.node.endPosition.column + 1 : call.column + 4}`;
    // The rows go on after the loop (returned, passed on): what the query loads with them may serve that too.
    const kept = rowsUsedAfter(model, loop) ? '+' : '';
    effects[call.functionIndex]!.push({ kind: COUNTED_COLLECTION, what: `${obj.text}|${rel}|${at}${kept}|${source.entity}|${source.text}`, line: source.call.line, column: source.call.column });
  }
  return effects;
}

/**
 * `RETURNS_FETCHED` on a function whose every `return` hands back a list fetched from a query
 * (`return q.all()`, `return (await s.scalars(stmt)).all()`, `return list(result)`), or an empty
 * literal on a guard path: `what` = `limited|pinned|text`, `limited` when every fetch is bounded
 * by `limit`, `pinned` what the filters pin (see `pinnedBy`), `text` the first fetch, short.
 */
export const RETURNS_FETCHED = 'returns_fetched';

function fetchedListReturns(model: FileModel, effects: Effect[][]): void {
  model.functions.forEach((fn, i) => {
    if (fn.isGenerator || !fn.body || !/\.(all|fetchall)\(\s*\)|\blist\(/.test(fn.body.text)) return;
    if (fn.decoratorNames.some((d) => /(^|\.)(property|cached_property|hybrid_property)$/.test(d))) return;
    // A memoised function hands back its cached list: counting it costs no query, a COUNT would.
    if (isMemoisedFunction(model, i)) return;
    let fetched = 0;
    let limited = true;
    let pinned: string | null = null;
    let text = '';
    for (const r of returnsOf(fn)) {
      const value = unwrap(r.namedChild(0));
      if (!value || value.type === 'none' || (value.type === 'list' && value.namedChildCount === 0)) continue;
      const source = fetchedList(model, value, i, r.startPosition.row + 1);
      if (!source) return;
      fetched++;
      const query = queryText(model, source, i, r.startPosition.row + 1);
      const bounded = /\.limit\s*\(|\blimit\s*=/.test(value.text + ' ' + query);
      pinned ??= pinnedBy(query);
      // The message quotes an unbounded fetch when there is one.
      if (!text || (limited && !bounded)) text = short(value, 60).replace(/\|/g, ' ');
      if (!bounded) limited = false;
    }
    if (fetched) effects[i]!.push({ kind: RETURNS_FETCHED, what: `${limited ? 'l' : ''}|${pinned ?? ''}|${text}`, line: fn.startLine, column: 1 });
  });
}

/** The query a fetched list comes from (`q` in `q.all()`, `list(q)`), when the expression is one; else null. */
function fetchedList(model: FileModel, value: SyntaxNode, fnIndex: number, line: number): SyntaxNode | null {
  let node = unwrap(value);
  if (node?.type === 'identifier') {
    const a = lastAssignment(model, node.text, fnIndex, line);
    // A list the function only returns; rows it also uses (deletes, changes, passes on) had to be loaded anyway.
    if (!a || a.functionIndex !== fnIndex || a.fromWith || !onlyReturned(model, node.text, fnIndex, a)) return null;
    node = unwrap(a.value);
  }
  if (node?.type !== 'call') return null;
  const call = callAt(model, node);
  if (!call) return null;
  let source: SyntaxNode | null = null;
  if (FETCH_ALL.has(call.method) && call.receiver && positionalArgs(node).length === 0) source = call.receiver;
  else if (call.qualifiedName === 'builtins.list') source = positionalArgs(node)[0] ?? null;
  return source && isQueryResult(model, source, fnIndex, line) ? source : null;
}

/** Is every other mention of `name` in the function its assignment or a `return name`? */
function onlyReturned(model: FileModel, name: string, fnIndex: number, a: AssignmentInfo): boolean {
  const fn = model.functions[fnIndex]!;
  for (const ref of variableRefs(fn.node, name)) {
    if (ref.startIndex >= a.node.startIndex && ref.endIndex <= a.node.endIndex) continue;
    if (ref.parent?.type === 'return_statement') continue;
    return false;
  }
  return true;
}

/**
 * `COUNTED_CALL` sites: `len(f(...))` (or `len(await f(...))`), the list `f` returns thrown away
 * once counted; the site's line and column are `f`'s call, `what` = `line:column:endColumn` of
 * the `len()`. The repo phase reports it when `f` returns a fetched list (`RETURNS_FETCHED`).
 */
export const COUNTED_CALL = 'counted_call';

function countedCall(model: FileModel, len: CallInfo, arg: SyntaxNode, effects: Effect[][]): void {
  const node = arg.type === 'await' ? unwrap(arg.namedChild(0)) : arg;
  if (node?.type !== 'call') return;
  const inner = callAt(model, node);
  // The file rule reads `len(q.all())` and `len(list(q))` itself.
  if (!inner || inner.qualifiedName?.startsWith('builtins.') || FETCH_ALL.has(inner.method)) return;
  const end = len.node.endPosition.row + 1 === len.line ? len.node.endPosition.column + 1 : len.column + 4;
  effects[len.functionIndex]!.push({ kind: COUNTED_CALL, what: `${len.line}:${len.column}:${end}`, line: inner.line, column: inner.column });
}

/** Is the name the loop iterates over read again after the loop, in the same function? */
function rowsUsedAfter(model: FileModel, loop: LoopInfo): boolean {
  const it = unwrap(loop.iterable);
  if (it?.type !== 'identifier') return false;
  const fn = model.functions[loop.functionIndex]!;
  return variableRefs(fn.node, it.text).some((r) => r.startIndex >= loop.node.endIndex);
}

/** Is every mention of `item.rel` in the loop a count (`len(item.rel)`) or a truth test (`if item.rel`, `item.rel else`)? */
function onlyCounted(loop: SyntaxNode, item: string, rel: string): boolean {
  const text = loop.text;
  const re = new RegExp(`(?<![\\w.])${item}\\.${rel}\\b`, 'g');
  let any = false;
  for (const m of text.matchAll(re)) {
    const before = text.slice(Math.max(0, m.index! - 12), m.index!);
    const after = text.slice(m.index! + m[0].length, m.index! + m[0].length + 8);
    const counted = /len\(\s*$/.test(before) && /^\s*\)/.test(after);
    const tested = /(\bif|\bnot|\band|\bor|\belif)\s+$/.test(before) && /^\s*(else\b|:|and\b|or\b|\)|,|$)/.test(after);
    if (!counted && !tested) return false;
    any ||= counted;
  }
  return any;
}

/**
 * The rows a loop runs over: the file's own query of one model (entity and text), or the call
 * that returns them (`rows, total = await svc.list_and_count(...)`, `for t in await svc.list()`,
 * `for t in helper()`) with no entity, for the repo phase to type.
 */
function countedRows(model: FileModel, loop: LoopInfo): { call: CallInfo; entity: string; text: string } | null {
  const t = loopTarget(loop);
  if (!t) return null;
  const fn = loop.functionIndex;
  const line = loop.node.startPosition.row + 1;
  let node = rowsExpression(model, t.iterable, fn, line);
  if (node?.type === 'identifier') node = unpackedFirst(model, node.text, fn, line);
  if (node?.type === 'await') node = unwrap(node.namedChild(0));
  if (node?.type !== 'call') return null;
  const rows = rowsSource(model, node, fn, line);
  if (rows?.entity) return { call: rows.call, entity: rows.entity, text: rows.text.replace(/\|/g, ' ').replace(/\s+/g, ' ').slice(0, 2000) };
  const call = callAt(model, node);
  // A method call or a function of another module: what it returns is typed in the repo phase.
  if (!call || (!call.hasReceiver && !call.qualifiedName) || call.qualifiedName?.startsWith('builtins.')) return null;
  return { call, entity: '', text: '' };
}

/** `rows, total = await svc.list_and_count(...)`: the call whose first unpacked value `name` is, in the same function before `line`. */
function unpackedFirst(model: FileModel, name: string, fnIndex: number, line: number): SyntaxNode | null {
  let best: { line: number } | null = null;
  for (const u of model.unpackedAssignments) {
    if (u.functionIndex === fnIndex && u.names[0] === name && u.line < line && (!best || u.line > best.line)) best = u;
  }
  if (!best) return null;
  // The value starts after the line's `=`: the outermost call that starts there.
  const onLine = callsOf(model, fnIndex).find((c) => c.functionIndex === fnIndex && c.line === best!.line);
  if (!onLine) return null;
  const start = model.source.lastIndexOf('\n', onLine.start - 1) + 1;
  const eol = model.source.indexOf('\n', start);
  const m = /^\s*\(?\s*[A-Za-z_]\w*\s*,[^=]*?=\s*(?:await\s+)?(?=[A-Za-z_])/.exec(model.source.slice(start, eol < 0 ? undefined : eol));
  if (!m) return null;
  const at = start + m[0].length;
  let found: SyntaxNode | null = null;
  for (const c of callsOf(model, fnIndex)) if (c.functionIndex === fnIndex && c.start === at && (!found || c.node.endIndex > found.endIndex)) found = c.node;
  return found;
}

/** The model a repository library class serves: the `[Model]` of its library base, anywhere in its MRO. */
function libraryModel(graph: CallGraph, project: ProjectContext, owner: ReturnType<CallGraph['receiverClasses']>): ModelInfo | null {
  for (const c of owner) {
    for (const [base, path] of c.cls.typeArgs ?? []) {
      if (!REPOSITORY_LIBRARY_BASE.test(base)) continue;
      const v = graph.resolveType(path);
      if (!v || v.kind !== 'class') continue;
      const where = graph.index.files[v.cls.file]!.path;
      return project.models.find((m) => m.name === v.cls.cls.name && m.file === where) ?? null;
    }
  }
  return null;
}

/** Loader strategies that load a collection with its parent rows. */
const EAGER = new Set(['selectin', 'joined', 'subquery', 'immediate']);

/** PA109's repo phase: the `COUNTED_COLLECTION` sites whose collection is loaded whole for every row. */
function reportCountedCalls(ctx: RepoRuleContext): void {
  const graph = callGraphOf(ctx.index);
  for (const { ref, file, site } of ownSites(graph, COUNTED_CALL)) {
    const call = graph.callAt(ref.file, site.line, site.column);
    const to = call ? graph.resolveCall(ref.file, call) : null;
    const fact = to ? graph.ownEffects(to).find((e) => e.kind === RETURNS_FETCHED) : undefined;
    if (!call || !to || !fact) continue;
    const [limited = '', pinned = '', ...text] = fact.what.split('|');
    // A bounded fetch: at most `limit` rows per call.
    if (limited) continue;
    const [line = 0, column = 0, endColumn = 0] = site.what.split(':').map(Number);
    const callee = graph.function(to);
    ctx.report({
      path: file.path,
      location: { line, column, endLine: line, endColumn },
      message: `\`len(${call.calleeText}(...))\` fetches every row \`${callee.qualifiedName}\` returns (\`${text.join('|')}\` in ${graph.fileOf(to).path}) only to count them: a COUNT query returns the number`,
      ...(pinned ? { advisory: `the helper's query pins ${pinned}: 0 or a few rows, so counting them in Python costs little` } : {}),
      function: graph.function(ref).name,
    });
  }
}

function reportCountedCollections(ctx: RepoRuleContext): void {
  const graph = callGraphOf(ctx.index);
  const byName = projectIndex(ctx.project).modelsByName;
  for (const { ref, file, site } of ownSites(graph, COUNTED_COLLECTION)) {
    const [item = '', relName = '', place = '', written = '', ...rest] = site.what.split('|');
    const kept = place.endsWith('+');
    const at = kept ? place.slice(0, -1) : place;
    let models: ModelInfo[] = [];
    let text = rest.join('|');
    let library = false;
    let entity = written;
    if (written) models = byName.get(written) ?? [];
    else {
      const call = graph.callAt(ref.file, site.line, site.column);
      if (!call) continue;
      if (call.method === 'list' || call.method === 'list_and_count') {
        const owner = libraryReceiver(graph, ref.file, call) ? graph.receiverClasses(ref.file, call) : [];
        const m = owner.length ? libraryModel(graph, ctx.project, owner) : null;
        if (m) {
          models = [m];
          library = true;
          entity = m.name;
        }
      }
      if (!library) {
        const to = graph.resolveCall(ref.file, call);
        const fact = to ? graph.ownEffects(to).find((e) => e.kind === RETURNS_ROWS) : undefined;
        if (!fact || fact.what.startsWith('@')) continue;
        const bar = fact.what.indexOf('|');
        entity = fact.what.slice(0, bar);
        text = fact.what.slice(bar + 1);
        models = byName.get(entity) ?? [];
      }
    }
    const rels = models.map((m) => m.relationships.find((r) => r.name === relName));
    if (!rels.length || rels.some((r) => !r || r.scalar || r.reverse || r.lazy === 'dynamic')) continue;
    const eager = rels.every((r) => EAGER.has(r!.lazy)) || eagerlyLoaded(text, relName);
    // A lazy collection is PA108's lazy load where the query is seen; through the library, no other rule sees it.
    if (!eager && !(library && rels.every((r) => r!.lazy === 'select' || r!.lazy === 'true' || r!.lazy === 'True'))) continue;
    // An eager collection of rows that go on after the loop (returned, serialized) is loaded for them too.
    if (eager && kept) continue;
    const [line = 0, column = 0, endColumn = 0] = at.split(':').map(Number);
    const how = eager
      ? `loads every \`${relName}\` row of every \`${entity}\` row (${describeEager(rels[0]!, text, relName)})`
      : `lazy-loads every \`${relName}\` row of each \`${entity}\` row, one SELECT per row`;
    ctx.report({
      path: file.path,
      location: { line, column, endLine: line, endColumn },
      message: `\`len(${item}.${relName})\` ${how} only to count them: a count per ${entity} (a \`func.count()\` subquery or \`column_property\`) returns one number instead`,
      // Eager: one batched load for all the rows, wasted but bounded by them (`low`); lazy: a SELECT per row.
      severity: eager ? 'low' : 'medium',
      function: graph.function(ref).name,
    });
  }
}

function describeEager(rel: RelationshipInfo, text: string, name: string): string {
  return EAGER.has(rel.lazy) ? `\`lazy="${rel.lazy}"\` on the relationship` : eagerlyLoaded(text, name) ? 'an eager loader option on the query' : 'eagerly';
}
