/**
 * PA104 over_fetching
 *
 * What it does: finds `select(Model)` / `session.query(Model)` of a wide model (more than 10
 * columns in the project's model) whose rows are then read for only 1–3 attributes, and raw SQL
 * that selects `*` (advisory: which columns raw rows are read for is not followed).
 * Why is this bad? Every column of every row is transferred and hydrated, to use a few.
 *
 * Guards: the rows must land in a name (or a loop) whose every use is visible: iterated with the
 * item only read through plain attributes, or `len()`; passing rows or items on (`return rows`,
 * `Schema.model_validate(item)`, `f(item)`) or calling methods on them gives up. Queries with
 * `load_only`/`defer`/`with_only_columns` are already narrowed.
 * Severity: medium for a model with more than 15 columns in a GET handler, else low.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileModel } from '../../../semantic/model.js';
import { callAt, effectiveRole, variableRefs } from '../../../semantic/model.js';
import type { Severity } from '../../../types.js';
import type { ModelInfo, ProjectContext } from '../../../discovery/context.js';
import { isMigrationFile, modelsNamed } from '../../projectFacts.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { classifyDbCall, rowsSource } from './dbCalls.js';
import { selectsStar } from './rawSql.js';
import { unwrap } from './semantics.js';

const WIDE = 10;
const VERY_WIDE = 15;
const NARROWED = /\b(load_only|defer|undefer_group|with_only_columns|with_entities|add_columns|raiseload)\b/;
const TEXT_CTORS = new Set(['sqlalchemy.text', 'sqlalchemy.sql.text', 'sqlalchemy.sql.expression.text', 'sqlmodel.text']);

/** The expression a DB read's value ends up in: climbs `await`, parentheses and `.all()`-like chains. */
function valueTop(call: SyntaxNode): SyntaxNode {
  let top = call;
  for (;;) {
    const p = top.parent;
    if (!p) return top;
    if (p.type === 'await' || p.type === 'parenthesized_expression') {
      top = p;
      continue;
    }
    const grand = p.parent;
    // `.all()`, `.scalars()`, and the query-building methods of a `session.query(M)` chain; a
    // chain ending in `.first()` / `.count()` gives one value, which no loop then iterates.
    if (p.type === 'attribute' && grand?.type === 'call' && grand.childForFieldName('function')?.id === p.id) {
      top = grand;
      continue;
    }
    return top;
  }
}

/**
 * Attributes read from each item of the rows held by `name` after `from`, or null when the rows
 * or an item escape (passed on, returned, method called, subscripted, unpacked).
 */
function attributesRead(fnBody: SyntaxNode, name: string, from: number): Set<string> | null {
  const attrs = new Set<string>();
  let iterated = false;
  for (const id of variableRefs(fnBody, name)) {
    if (id.startIndex < from) continue;
    const p = id.parent;
    if (!p) return null;
    if (p.type === 'argument_list' && p.parent?.childForFieldName('function')?.text === 'len') continue;
    const loop = p.type === 'for_statement' || p.type === 'for_in_clause' ? p : null;
    if (!loop || loop.childForFieldName('right')?.id !== id.id || !loopItemAttributes(loop, attrs)) return null;
    iterated = true;
  }
  return iterated ? attrs : null;
}

/** Adds the attributes a `for` loop or comprehension clause reads on its item; false when the item is used any other way. */
function loopItemAttributes(loop: SyntaxNode, attrs: Set<string>): boolean {
  const target = loop.childForFieldName('left');
  if (target?.type !== 'identifier') return false;
  // A `for` loop's name outlives it (`for c in rows: if ...: break` then `return c`): the row escapes.
  if (loop.type === 'for_statement') {
    let f = loop.parent;
    while (f && f.type !== 'function_definition') f = f.parent;
    const fnBody = f?.childForFieldName('body');
    // Not a later loop's own binding of the same name (`for book in books:` again).
    const rebound = (r: SyntaxNode) => {
      for (let q = r.parent; q && q.id !== fnBody?.id; q = q.parent) {
        if ((q.type === 'for_statement' || q.type === 'for_in_clause') && q.startIndex >= loop.endIndex && q.childForFieldName('left')?.text === target.text) return true;
        if (q.type === 'list_comprehension' || q.type === 'generator_expression' || q.type === 'set_comprehension' || q.type === 'dictionary_comprehension') {
          if (q.startIndex >= loop.endIndex && q.descendantsOfType('for_in_clause').some((c) => c.childForFieldName('left')?.text === target.text)) return true;
        }
      }
      return false;
    };
    // The first use after the loop decides: read, the row escapes; bound anew (`b = len(out)`), it does not.
    const firstAfter = fnBody ? variableRefs(fnBody, target.text).filter((r) => r.startIndex >= loop.endIndex && !rebound(r)).sort((a, b) => a.startIndex - b.startIndex)[0] : undefined;
    if (firstAfter && !(firstAfter.parent?.type === 'assignment' && firstAfter.parent.childForFieldName('left')?.id === firstAfter.id)) return false;
  }
  const scope = loop.type === 'for_statement' ? loop.childForFieldName('body') : loop.parent;
  return !!scope && itemAttributes(scope, target.text, attrs, loop.type === 'for_in_clause' ? target.id : -1);
}

/** Adds the attributes read on `item` inside `scope`; false when the item is used any other way. */
function itemAttributes(scope: SyntaxNode, item: string, attrs: Set<string>, bindingId: number): boolean {
  for (const id of variableRefs(scope, item)) {
    if (id.id === bindingId) continue;
    const p = id.parent;
    if (p?.type === 'attribute' && p.childForFieldName('object')?.id === id.id) {
      const attr = p.childForFieldName('attribute')?.text ?? '';
      const gp = p.parent;
      if (gp?.type === 'call' && gp.childForFieldName('function')?.id === p.id) return false; // `item.method()`
      if (gp?.type === 'assignment' && gp.childForFieldName('left')?.id === p.id) return false; // written back
      attrs.add(attr);
      continue;
    }
    return false;
  }
  return true;
}

/** Without both a `select` and a `*` in the file's text, no statement in it can select `*`. */
const mayHaveSelectStar = (source: string) => source.includes('*') && /\bselect\b/i.test(source);

function reportSelectStar(ctx: FileRuleContext, model: FileModel): void {
  if (isMigrationFile(ctx.project, model.path) || !mayHaveSelectStar(model.source)) return;
  const seen = new Set<number>();
  for (const call of model.calls) {
    let root: SyntaxNode | null = null;
    let sql: string | null = null;
    if (call.qualifiedName && TEXT_CTORS.has(call.qualifiedName)) {
      const arg = unwrap(call.node.childForFieldName('arguments')?.namedChild(0) ?? null);
      if (arg?.type === 'string') {
        root = call.node;
        sql = arg.text;
      }
    } else {
      const st = classifyDbCall(model, call)?.statement;
      if (st?.ctor === 'sql' && st.kind === 'read') {
        root = st.root;
        sql = st.sql;
      }
    }
    if (!root || sql === null || seen.has(root.startIndex)) continue;
    seen.add(root.startIndex);
    const body = sql.replace(/^[rRbBuUfF]*("""|'''|"|')/, '').replace(/("""|'''|"|')$/, '');
    if (!selectsStar(body)) continue;
    // Advisory: which columns the code then reads is not followed through raw rows (`dict(row)`
    // hands every one on), and a few extra short columns cost nothing measurable. In blind
    // reviews no raw `SELECT *` finding was judged worth a report (0 of 10); naming the columns
    // is still the better habit, and keeps the code working when columns are added.
    ctx.report({ node: root, message: 'raw SQL selects `*`: every column is fetched; name the columns the code uses', severity: 'low', advisory: SELECT_STAR_EVIDENCE });
  }
}

const SELECT_STAR_EVIDENCE = 'which of the columns the code reads is not followed through raw rows (`dict(row)` hands all of them on), and a few extra columns cost little: a habit to fix (it also breaks when columns are added), not a measured over-fetch';

const wideCache = new WeakMap<ProjectContext, Map<string, number>>();

/** The columns a plain `select(Model)` loads: deferred ones wait for their first access. */
function eagerColumns(m: ModelInfo): number {
  return m.columnCount - (m.deferred?.length ?? 0);
}

/** Models with more than {@link WIDE} columns loaded by a plain select: name → that count (built once per worker). */
function wideModels(project: ProjectContext): Map<string, number> {
  let wide = wideCache.get(project);
  if (!wide) wideCache.set(project, (wide = new Map(project.models.filter((m) => eagerColumns(m) > WIDE).map((m) => [m.name, eagerColumns(m)]))));
  return wide;
}

export const overFetching: FileRule = {
  meta: {
    code: 'PA104',
    check: 'over_fetching',
    family: 'query',
    severity: 'low',
    effort: 'S',
    summary: 'Whole rows of a wide model loaded to read 1–3 attributes; `SELECT *` in raw SQL',
    what: 'Finds `select(Model)` / `session.query(Model)` on a model of the project with more than 10 columns whose rows are then only read for 1–3 attributes (every use of the rows and of each row is checked), and raw SQL (`text(...)`, `cursor.execute(...)`) whose top-level select list is `*` (advisory: which columns the code reads from raw rows is not followed). Medium for a model with more than 15 columns in a GET handler, low otherwise.',
    why: 'Every column of every row is sent by the database, decoded by the driver and hydrated into an ORM object (and tracked by the session) to read a few fields; wide text columns make it worse. `SELECT *` also breaks silently when columns are added or reordered.',
    bad: "from sqlalchemy import text\nfrom sqlalchemy.orm import Session\n\n\ndef skus(db: Session) -> list[str]:\n    return [r.sku for r in db.execute(text(\"SELECT * FROM items\"))]\n",
    good: "from sqlalchemy import text\nfrom sqlalchemy.orm import Session\n\n\ndef skus(db: Session) -> list[str]:\n    return [r.sku for r in db.execute(text(\"SELECT sku FROM items\"))]\n",
    fix: '`select(Model.a, Model.b)`, or `.options(load_only(Model.a, Model.b))` / `defer(...)`; name the columns in raw SQL',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/queryguide/columns.html#limiting-which-columns-load-with-column-deferral',
      'https://docs.sqlalchemy.org/en/20/orm/queryguide/select.html#selecting-orm-entities-and-attributes',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile) return;
    reportSelectStar(ctx, model);
    const wide = wideModels(project);
    if (!wide.size) return;
    for (const call of model.calls) {
      if (call.functionIndex < 0) continue;
      const op = classifyDbCall(model, call);
      if (op?.kind !== 'read') continue;
      // The rows must come from this very call (checked below), so its own statement names the
      // entity: a read of no wide model is passed over before its value is followed.
      if (op.statement ? op.statement.ctor !== 'select' || !wide.has(op.statement.entity ?? '') : call.method !== 'query') continue;
      const top = valueTop(call.node);
      const source = rowsSource(model, top, call.functionIndex, call.line);
      if (!source?.entity || source.call !== call || NARROWED.test(source.text)) continue;
      const named = modelsNamed(project, model, source.entity);
      const columns = named.length ? Math.max(...named.map(eagerColumns)) : 0;
      if (columns <= WIDE) continue;
      const fn = model.functions[call.functionIndex]!;
      if (!fn.body) continue;
      let attrs: Set<string> | null = null;
      const assign = top.parent;
      if (assign?.type === 'assignment' && assign.childForFieldName('right')?.id === top.id && assign.childForFieldName('left')?.type === 'identifier') {
        attrs = attributesRead(fn.body, assign.childForFieldName('left')!.text, assign.endIndex);
      } else if ((assign?.type === 'for_statement' || assign?.type === 'for_in_clause') && assign.childForFieldName('right')?.id === top.id) {
        // Iterated where it is made: `for c in db.scalars(select(M)...)`, `[c.email for c in db.query(M)]`.
        const found = new Set<string>();
        if (loopItemAttributes(assign, found)) attrs = found;
      }
      if (!attrs || attrs.size === 0 || attrs.size > 3) continue;
      // Reading a relationship is a loading question (PA108), not a column one.
      const rels = new Set(named.flatMap((m) => m.relationships.map((r) => r.name)));
      if ([...attrs].some((a) => rels.has(a))) continue;
      const listEndpoint = effectiveRole(model, call.functionIndex) === 'handler' && fn.routeKind === 'get';
      const severity: Severity = columns > VERY_WIDE && listEndpoint ? 'medium' : 'low';
      const st = op.statement;
      const node = st && st.ctor === 'select' && callAt(model, st.root) ? st.root : call.node;
      ctx.report({
        node,
        message: `loads all ${columns} columns of ${source.entity} but reads only ${[...attrs].sort().map((a) => `\`${a}\``).join(', ')}`,
        severity,
      });
    }
  },
};
