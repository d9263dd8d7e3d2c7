/**
 * PA105 missing_bulk_ops
 *
 * What it does: finds rows added one at a time in a loop: `session.add(obj)`,
 * `session.merge(obj)`, or a single-row `insert(...)` executed per iteration.
 * Why is this bad? With autoflush and per-row INSERTs the ORM cannot batch; a bulk call sends
 * one statement (or one `executemany`) for the whole set.
 *
 * Guards: the added object must be built in the loop (`Model(...)`, directly or through a name
 * assigned in the loop body): `session.add(row)` of a row the loop read from the database is a
 * no-op for an already persistent object (its changes flush as UPDATEs in one unit of work);
 * `add_all`, `insert().values([...])` and `executemany` are the bulk forms and never flagged.
 *
 * SQLAlchemy's unit of work: `session.add(obj)` only stages the object. The flush sends every
 * pending INSERT of a mapper together (one executemany, or "insertmanyvalues" batches with
 * RETURNING in 2.x), so a loop of `add`s costs one round trip per batch, not per row — unless
 * something in the same iteration forces a flush: `flush`, `commit`, `refresh`, an `execute`, or
 * a query (autoflush). Only then is `add` reported. `merge` (a SELECT per object) and a
 * single-row `insert` executed per item are round trips of their own and always count.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileModel, LoopInfo } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { commitAfter, describeLoop, perItemDbCalls, type LoopSite } from './loops.js';
import { isSqliteDriver, receiverDriver } from './dbCalls.js';
import { callArgs } from './semantics.js';
import { overItems } from '../transaction/loopForms.js';
import { outsideEffect } from '../../../semantic/externalCalls.js';
import { conditionalWithin, insideNestedFunction } from '../../../semantic/controlFlow.js';
import { callsOf, type CallInfo } from '../../../semantic/model.js';
import { catchesDbErrors } from '../../../semantic/dbErrors.js';

/** `Model(...)`: a class called, by the naming convention every ORM model follows. */
function constructs(node: SyntaxNode | null): boolean {
  if (node?.type !== 'call') return false;
  const callee = node.childForFieldName('function')?.text ?? '';
  return /^[A-Z]\w*$/.test(callee.replace(/^.*\./, ''));
}

/** The object `session.add(x)` / `merge(x)` / `insert(...)` writes is new, built in the loop. */
function addsNewObject(model: FileModel, site: LoopSite): boolean {
  if (site.call.method !== 'add' && site.call.method !== 'merge') return true; // insert statements
  // A SELECT per row, unless every object merged is new (no primary key to look up) or the row a
  // lookup of the same iteration found (already in the session).
  if (site.call.method === 'merge') return !mergesNothingToLoad(model, site);
  const arg = site.call.node.childForFieldName('arguments')?.namedChild(0) ?? null;
  if (constructs(arg)) return true;
  if (arg?.type !== 'identifier') return false;
  const loop = site.loops[site.loops.length - 1]!;
  return model.assignments.some(
    (a) => a.target === arg.text && a.functionIndex === site.call.functionIndex && a.node.startIndex >= loop.iterStart && a.node.startIndex < loop.iterEnd && constructs(a.value),
  );
}

/** Keywords that give an object its primary key, so that `merge` looks it up first. */
const KEY_KEYWORDS = /^(id|pk|uuid|key)$/;

/**
 * `session.merge(x)` where every binding of `x` in the iteration is a model built without a key
 * (`Item(name=...)`: transient, nothing to load), or a lookup whose miss the iteration fills
 * with such a model (`x = find(...)`, then `if not x: x = Item(...)`): the found row is already
 * in the session (merge returns it as is), the new one has no key to look up. No SELECT either way.
 */
function mergesNothingToLoad(model: FileModel, site: LoopSite): boolean {
  const arg = site.call.node.childForFieldName('arguments')?.namedChild(0) ?? null;
  if (arg?.type !== 'identifier') return false;
  const loop = site.loops[site.loops.length - 1]!;
  const bindings = model.assignments.filter(
    (a) => a.target === arg.text && a.functionIndex === site.call.functionIndex && a.node.startIndex >= loop.iterStart && a.node.startIndex < site.call.node.startIndex,
  );
  if (!bindings.length) return false;
  const keyless = (a: (typeof bindings)[number]) => {
    const v = a.value;
    if (!constructs(v)) return false;
    const args = v!.childForFieldName('arguments')?.namedChildren ?? [];
    return args.every((x) => x.type === 'keyword_argument' && !KEY_KEYWORDS.test(x.childForFieldName('name')?.text ?? ''));
  };
  // The fallback: a keyless model built under `if not x:` / `if x is None:`.
  const fillsMiss = bindings.some((a) => {
    if (!keyless(a)) return false;
    for (let p = a.node.parent; p && p.startIndex >= loop.iterStart; p = p.parent) {
      if (p.type !== 'if_statement') continue;
      const cond = p.childForFieldName('condition')?.text.replace(/\s+/g, ' ').trim();
      return cond === `not ${arg.text}` || cond === `${arg.text} is None`;
    }
    return false;
  });
  return bindings.every((a) => keyless(a) || (fillsMiss && a.value?.type === 'call' && !constructs(a.value)));
}

export const missingBulkOps: FileRule = {
  meta: {
    code: 'PA105',
    check: 'missing_bulk_ops',
    family: 'query',
    severity: 'medium',
    effort: 'S',
    summary: 'Rows written one round trip at a time: `merge`, a single-row insert, or `add` flushed every iteration',
    what: 'Finds rows written one round trip at a time in a loop: `session.merge(x)` (a SELECT per object; not when every object merged is a model built without a key, or the row a lookup of the same iteration found with such a model as its fallback: nothing to load), a single-row `insert(Model).values(...)` executed per item, and `session.add(x)` of an object built in the loop when the same iteration also forces a flush (`flush()`, `commit()`, `refresh()`, an `execute`, or a query that autoflushes: not when every session factory of the project sets `autoflush=False`). A flush that the same iteration follows with an action outside the database (a signal or message sent, an upload, an HTTP call) is not flagged: it gives each row its id before it is announced. A flush whose generated key the same iteration then uses to build more (passed to a call or a constructor, set on another object: `Edition(book_id=book.id)`) is advisory: the loop is written around it, and batching needs a rewrite (add all, flush once, then read the keys); a key only collected (`ids.append(book.id)`, stored in a map, logged) still fires. A single-row write in a per-item `try` whose `except` catches the database\'s error (`except IntegrityError:`, a broad `except Exception:`) and goes on with the next item is not flagged: each row is written on its own so that one conflict fails only that row (a handler that raises stops at the first failure and isolates nothing). A plain loop of `session.add(...)` is not flagged: the unit of work batches those INSERTs at flush. When the flush is a commit per item that PA207 reports, that finding is the one kept: one defect (a commit per row), one fix (commit after the loop). `session.add_all(...)`, `insert(Model).values([...])` and `executemany` are not flagged.',
    why: 'A flush inside the loop sends each staged row as its own INSERT (and `merge` first SELECTs each row): one round trip per row. Adding everything first and flushing once lets SQLAlchemy batch the INSERTs (executemany / insertmanyvalues).',
    bad: "import csv\n\nfrom sqlalchemy.orm import Session\n\n\ndef load(db: Session, f):\n    for row in csv.DictReader(f):\n        item = Item(sku=row[\"sku\"], name=row[\"name\"])\n        db.add(item)\n        db.flush()\n        print(item.id)\n",
    good: "import csv\n\nfrom sqlalchemy.orm import Session\n\n\ndef load(db: Session, f):\n    items = [Item(sku=r[\"sku\"], name=r[\"name\"]) for r in csv.DictReader(f)]\n    db.add_all(items)\n    db.flush()\n    print([i.id for i in items])\n",
    fix: '`session.add_all([...])`, `insert(Model).values([...])` or `session.execute(insert(Model), rows)`',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/queryguide/dml.html#orm-bulk-insert-statements',
      'https://docs.sqlalchemy.org/en/20/core/connections.html#insert-many-values-behavior-for-insert-statements',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    for (const site of perItemDbCalls(ctx.model, 'add')) {
      if (!addsNewObject(ctx.model, site)) continue;
      // `merge(obj, load=False)` neither loads nor sends: it puts a cached object in the session.
      if (site.call.method === 'merge' && callArgs(site.call.node).keywords.get('load')?.text === 'False') continue;
      const inner = site.loops[site.loops.length - 1]!;
      const flush = site.flushedBy;
      // A commit per message of a consumer loop, or in a per-item `try` that rolls a bad row
      // back: one unit of work per item by design (as PA207 reads them).
      if (flush && (!overItems(ctx.model, inner) || inTryWithin(flush.node, inner.node))) continue;
      // The flush makes each row real before the same iteration announces it outside the
      // database (a signal, a notification, an upload, an HTTP call): a flush per item by design,
      // as PA207 reads a commit before an outside action.
      if (flush && announcedAfter(ctx.model, flush, inner.index)) continue;
      const loop = describeLoop(inner);
      if (flush) {
        // The flush gives the row its generated key, which the same iteration then reads
        // (`item.id` stored in a map, set on a child): the flush per row is what the code is for.
        // Batching needs a rewrite (add all, one flush, then read the keys): worth knowing, not a defect.
        const key = readsKeyAfter(site.call.node, flush.node, inner);
        // Not when an explicit `flush()` per row is the defect: one commit after the loop leaves it.
        const commit = flush.method === 'commit' ? flush : flush.method === 'flush' ? null : commitAfter(ctx.model, site.call, inner);
        ctx.report({
          node: site.call.node,
          message: `\`${site.op.what}\` is flushed row by row: \`${flush.calleeText}\` in the same iteration of ${loop} sends each INSERT on its own`,
          ...(key ? { advisory: `the flush gives each row the key the iteration then reads (\`${key}\`): add the rows first, flush once, then read their keys` } : {}),
          // A commit per item: PA207's finding there is the same defect, with the same fix (one commit
          // after the loop). Also when a query autoflushes first: the commit leaves nothing staged for it.
          ...(commit ? { sameDefectAs: { code: 'PA207', line: commit.line } } : {}),
        });
        continue;
      }
      // A row written in a per-item `try` that catches the database's error (`except
      // IntegrityError:` a duplicate, a row taken by another worker): one statement per row is the
      // point, since one batch would fail as a whole on the first conflict.
      if (isolatesFailingRow(site.call.node, inner.node)) continue;
      // SQLite through the standard library runs each statement in the process: no round trip
      // to save, only the per-call overhead `executemany` removes.
      const sqlite = isSqliteDriver(receiverDriver(ctx.model, site.call));
      ctx.report({
        node: site.call.node,
        message: `\`${site.op.what}\` writes one row per round trip, once per item of ${loop}`,
        ...(sqlite ? { advisory: 'the connection is SQLite\'s, in the process: each statement is a library call, not a round trip; `executemany` saves only the per-call overhead' } : {}),
      });
    }
  },
};

/** Does a call after `flush`, in the same iteration of loop `loop`, act outside the database? */
function announcedAfter(model: FileModel, flush: CallInfo, loop: number): boolean {
  return callsOf(model, flush.functionIndex).some((c) => c.loops.includes(loop) && c.node.startIndex > flush.node.endIndex && outsideEffect(model, c) !== null);
}

/**
 * The generated key of the added object (`obj.id`, `obj.pk`, `obj.uuid`) used after the flush, in
 * the same iteration, to build more: passed to a call or a constructor, or set on another object
 * (`child.parent_id = obj.id`). A key only collected (`ids.append(obj.id)`, `by_name[n] = obj.id`,
 * logged) is not such a use: one flush after the loop gives every key. The key as written, or null.
 */
function readsKeyAfter(add: SyntaxNode, flush: SyntaxNode, loop: { node: SyntaxNode; iterEnd: number }): string | null {
  const arg = add.childForFieldName('arguments')?.namedChild(0);
  if (arg?.type !== 'identifier') return null;
  for (const n of loop.node.descendantsOfType('attribute')) {
    if (n.startIndex < flush.endIndex || n.startIndex >= loop.iterEnd) continue;
    if (n.childForFieldName('object')?.text !== arg.text || !/^(id|pk|uuid)$/.test(n.childForFieldName('attribute')?.text ?? '')) continue;
    if (buildsWith(n)) return n.text;
  }
  return null;
}

/** Does the key `node` feed more work: an argument of a call that is not a collector or a log, or a value set on an attribute? */
function buildsWith(node: SyntaxNode): boolean {
  let n = node;
  if (n.parent?.type === 'keyword_argument') n = n.parent;
  const p = n.parent;
  if (p?.type === 'argument_list') {
    const callee = p.parent?.childForFieldName('function');
    const name = (callee?.type === 'attribute' ? callee.childForFieldName('attribute')?.text : callee?.text) ?? '';
    return !/^(append|extend|add|insert|update|setdefault|print|str|repr|format|debug|info|warning|warn|error|exception|critical|log)$/.test(name);
  }
  if (p?.type === 'assignment' && p.childForFieldName('right')?.id === n.id) return p.childForFieldName('left')?.type === 'attribute';
  return false;
}

/**
 * Does `node` sit in the body of a `try` inside the loop whose `except` catches database errors
 * and goes on with the loop (no `raise`, `return` or `break` in it): the failing row is skipped,
 * the others are written. A handler that raises (`raise ValidationError(...)`) stops at the first
 * failure: it isolates nothing, and the rows could go in one statement.
 */
function isolatesFailingRow(node: SyntaxNode, loop: SyntaxNode): boolean {
  for (let p = node.parent, child = node; p && p.id !== loop.id; child = p, p = p.parent) {
    if (p.type !== 'try_statement' || child.type !== 'block') continue;
    if (p.namedChildren.some((c) => (c.type === 'except_clause' || c.type === 'except_group_clause') && catchesDbErrors(c)
      && !c.descendantsOfType(['raise_statement', 'return_statement', 'break_statement']).some((x) => !insideNestedFunction(x, c)))) return true;
  }
  return false;
}

/** Does `node` sit in a `try` statement inside the loop (a per-item try/except)? */
function inTryWithin(node: SyntaxNode, loop: SyntaxNode): boolean {
  for (let p = node.parent; p && p.id !== loop.id; p = p.parent) if (p.type === 'try_statement') return true;
  return false;
}
