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
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileModel } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { describeLoop, perItemDbCalls, type LoopSite } from './loops.js';

/** `Model(...)`: a class called, by the naming convention every ORM model follows. */
function constructs(node: SyntaxNode | null): boolean {
  if (node?.type !== 'call') return false;
  const callee = node.childForFieldName('function')?.text ?? '';
  return /^[A-Z]\w*$/.test(callee.replace(/^.*\./, ''));
}

/** The object `session.add(x)` / `merge(x)` / `insert(...)` writes is new, built in the loop. */
function addsNewObject(model: FileModel, site: LoopSite): boolean {
  if (site.call.method !== 'add' && site.call.method !== 'merge') return true; // insert statements
  if (site.call.method === 'merge') return true; // a SELECT per row, whatever the object
  const arg = site.call.node.childForFieldName('arguments')?.namedChild(0) ?? null;
  if (constructs(arg)) return true;
  if (arg?.type !== 'identifier') return false;
  const loop = site.loops[site.loops.length - 1]!;
  return model.assignments.some(
    (a) => a.target === arg.text && a.functionIndex === site.call.functionIndex && a.node.startIndex >= loop.iterStart && a.node.startIndex < loop.iterEnd && constructs(a.value),
  );
}

export const missingBulkOps: FileRule = {
  meta: {
    code: 'PA105',
    check: 'missing_bulk_ops',
    family: 'query',
    severity: 'medium',
    effort: 'S',
    summary: '`session.add` / `session.merge` / single-row insert once per loop iteration',
    what: 'Finds `session.add(x)`, `session.merge(x)` and single-row `insert(Model).values(...)` executed once per item of a loop, where `x` is the loop\'s item or built in the loop body. `session.add_all(...)`, `insert(Model).values([...])` and `executemany` are not flagged.',
    why: 'Rows added one by one are flushed as one INSERT each (and `merge` first SELECTs each row). Collecting them and adding them in one call lets SQLAlchemy use `executemany`/insertmanyvalues batching: fewer round trips and far less ORM overhead.',
    bad: "import csv\n\nfrom sqlalchemy.orm import Session\n\n\ndef load(db: Session, f):\n    for row in csv.DictReader(f):\n        db.add(Item(sku=row[\"sku\"], name=row[\"name\"]))\n",
    good: "import csv\n\nfrom sqlalchemy.orm import Session\n\n\ndef load(db: Session, f):\n    db.add_all([Item(sku=r[\"sku\"], name=r[\"name\"]) for r in csv.DictReader(f)])\n",
    fix: '`session.add_all([...])`, `insert(Model).values([...])` or `session.execute(insert(Model), rows)`',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/queryguide/dml.html#orm-bulk-insert-statements',
      'https://docs.sqlalchemy.org/en/20/core/connections.html#insert-many-values-behavior-for-insert-statements',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    for (const site of perItemDbCalls(ctx.model, 'add')) {
      if (!addsNewObject(ctx.model, site)) continue;
      ctx.report({ node: site.call.node, message: `\`${site.op.what}\` adds one row per item of ${describeLoop(site.loops[site.loops.length - 1]!)}` });
    }
  },
};
