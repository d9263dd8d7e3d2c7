/**
 * PA105 missing_bulk_ops
 *
 * What it does: finds rows added one at a time in a loop: `session.add(obj)`,
 * `session.merge(obj)`, or a single-row `insert(...)` executed per iteration.
 * Why is this bad? With autoflush and per-row INSERTs the ORM cannot batch; a bulk call sends
 * one statement (or one `executemany`) for the whole set.
 *
 * Guards: the added object must be a value the loop rebinds; `add_all`, `insert().values([...])`
 * and `executemany` are the bulk forms and never flagged.
 */
import type { FileRule, FileRuleContext } from '../../types.js';
import { describeLoop, reportFileSites } from './loops.js';

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
    reportFileSites(ctx, 'add', (site) =>
      `\`${site.op.what}\` adds one row per item of ${describeLoop(site.loops[site.loops.length - 1]!)}`);
  },
};
