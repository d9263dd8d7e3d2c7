/**
 * PA102 n_update_delete_loop
 *
 * What it does: finds one UPDATE or DELETE per loop iteration: `session.execute(update(...))`,
 * `session.execute(delete(...))`, `session.delete(obj)`, `query.update()/delete()`, raw
 * `UPDATE`/`DELETE` text, a repository's `update/delete/save/mark_*` — directly, or through a
 * same-repo helper the loop calls.
 * Why is this bad? N statements and N round trips where one set-based statement would do.
 *
 * Severity: as PA107, by how the loop's N grows: high over stored rows, low over what one request
 * sent (or one loaded row's children), medium when not known; a literal of ≤ 10 items is no loop
 * of rows and is not reported.
 * Guards as PA107: the statement must use a value the loop rebinds; `in_(...)` chunks are fine.
 */
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import { loopsDomain, rowsSource, WRITE_EFFECT } from './dbCalls.js';
import {
  collectDeferredReports, commitAfter, DEFERRED_WRITE, describeLoop, domainAdvisory, domainNote, domainSeverity, perItemDbCalls, reportDeferredLoopFindings, reportHelperSites,
  type FileReadReport,
} from './loops.js';
import { encodeDomain } from '../../../semantic/loopDomain.js';
import type { Effect } from '../../../analysis/summary.js';
import { invariantIn, loopTarget, namesRead, short, smallBoundedLoop } from './semantics.js';
import { iterationSource } from '../../../semantic/smallLiterals.js';
import type { FileModel, LoopInfo } from '../../../semantic/model.js';
import { conditionalWithin } from '../../../semantic/controlFlow.js';

/**
 * A loop over loaded ORM rows that sets an attribute of every row to the same value
 * (`for t in rows: t.active = False`): the unit of work sends one UPDATE per row at the next
 * flush, where one `update(M).where(...).values(...)` does it in one statement. Silent when the
 * value depends on the row or the loop (`t.rank = i`) or comes from a call (`next(counter)`), when
 * a condition or an early exit picks the rows, when a call in the loop takes the row (it needs
 * the object, and may change it), and for rows of unknown origin.
 */
function reportDirtyTracking(ctx: FileRuleContext): void {
  const { model } = ctx;
  if (model.isTestFile) return;
  for (const loop of model.loops) {
    if (loop.kind !== 'for' && loop.kind !== 'async_for') continue;
    const t = loopTarget(loop);
    if (!t) continue;
    const prefix = `${t.name}.`;
    const sets = model.assignments.filter((a) => a.loops.includes(loop.index) && a.target.startsWith(prefix) && !a.target.slice(prefix.length).includes('.'));
    if (!sets.length || smallBoundedLoop(model, loop)) continue;
    // The bulk statement is only the same work when every row gets the same change: no
    // condition or early exit picks rows, and nothing else in the loop uses the row (a call
    // that takes it needs the object anyway, and may change it too).
    const body = loop.node.childForFieldName('body');
    if (!body || /\b(continue|break|return|yield)\b/.test(body.text)) continue;
    if (sets.some((a) => conditionalWithin(a.node, body))) continue;
    if (model.calls.some((c) => c.loops.includes(loop.index) && c.functionIndex === loop.functionIndex && namesRead(c.node).has(t.name))) continue;
    const source = rowsSource(model, t.iterable, loop.functionIndex, loop.node.startPosition.row + 1);
    if (!source?.entity) continue;
    // A call may give each row its own value (`next(counter)`): only names, attributes and literals.
    const same = sets.filter((a) => a.value && invariantIn(model, a.value, loop) && a.value.type !== 'call' && !a.value.descendantsOfType('call').length);
    // Only when every attribute the loop sets is set to one value: a per-row value needs the rows.
    if (same.length !== sets.length) continue;
    const first = same[0]!;
    const attrs = [...new Set(same.map((a) => a.target.slice(prefix.length)))];
    ctx.report({
      node: first.node,
      message: `\`${first.target} = ${short(first.value!, 30)}\` on every row of \`${source.op.what}\` makes the next flush send one UPDATE per row; one \`update(${source.entity}).where(...).values(${attrs.map((a) => `${a}=...`).join(', ')})\` does it in one statement`,
      severity: 'medium',
    });
  }
}

/**
 * The loaded row whose collection every loop around the write walks (`for s in org.subscriptions:`),
 * as written, or null: N is that one row's children, bounded by its fan-out, not by the table.
 */
function childrenOfOne(model: FileModel, loops: LoopInfo[]): string | null {
  let owner: string | null = null;
  for (const loop of loops) {
    const it = iterationSource(loop.iterable);
    if (it?.type !== 'attribute') return null;
    const object = it.childForFieldName('object');
    // `self.items` of a service is not a row's collection; `self.event.sessions` is.
    if (!object || object.type === 'call' || /^(self|cls)$/.test(object.text)) return null;
    if (loopsDomain(model, [loop]).kind !== 'rows') return null;
    owner ??= object.text;
  }
  return owner;
}

const fileWriteMemo = new WeakMap<FileModel, FileReadReport[]>();

/**
 * PA102's findings of a file, with their severity: `high` (the rule's) when the loop's N grows
 * with the stored rows, `low` over what one request sent or over one loaded row's children,
 * `medium` when N is not known — as PA107 reads the same loops (a literal of a handful is no loop
 * of rows and is not reported). A loop over a parameter or another function's result waits for
 * the repo phase (`deferred`), which knows what the callers pass and what the function returns.
 */
export function fileWriteReports(model: FileModel): FileReadReport[] {
  const known = fileWriteMemo.get(model);
  if (known) return known;
  const out: FileReadReport[] = [];
  for (const site of perItemDbCalls(model, 'write')) {
    const loop = describeLoop(site.loops[site.loops.length - 1]!);
    const owner = childrenOfOne(model, site.loops);
    const message = (site.flushedBy
      ? `\`${site.op.what}\` is flushed row by row: \`${site.flushedBy.calleeText}\` in the same iteration of ${loop} sends each DELETE on its own`
      : `\`${site.op.what}\` runs one UPDATE/DELETE per item of ${loop}`)
      + (owner ? `; the loop is over the children of one \`${owner}\`, so N is that row's fan-out` : '');
    const d = loopsDomain(model, site.loops);
    const deferred = !owner && (d.kind === 'call' || d.kind === 'param') && site.call.functionIndex >= 0;
    const decided = d.kind === 'call' || d.kind === 'param' ? 'unknown' : d.kind;
    // The same iteration commits too: PA207 reports the commit per row, and one rewrite (one
    // statement for the rows, one commit after the loop) answers both: one finding, PA207's.
    const commit = commitAfter(model, site.call, site.loops[site.loops.length - 1]!);
    out.push({
      site,
      message: message + (owner || deferred ? '' : domainNote(decided)),
      severity: owner ? 'low' : domainSeverity(decided),
      ...(owner ? {} : domainAdvisory(decided)),
      deferred,
      domain: encodeDomain(d),
      ...(commit ? { sameDefectAs: { code: 'PA207', line: commit.line } } : {}),
    });
  }
  fileWriteMemo.set(model, out);
  return out;
}

/** PA107's and PA102's findings whose severity waits for the repo phase, as site facts. */
export function collectDeferredLoopReports(model: FileModel): Effect[][] {
  return collectDeferredReports(model, fileWriteReports);
}

export const nUpdateDeleteLoop: FileRule & RepoRule = {
  meta: {
    code: 'PA102',
    check: 'n_update_delete_loop',
    family: 'query',
    severity: 'high',
    effort: 'M',
    summary: 'One UPDATE or DELETE per loop iteration',
    what: 'Finds an UPDATE or DELETE issued once per item of a loop: `session.execute(update(M).where(M.id == x))`, `session.execute(delete(...))`, `session.query(M).filter(...).update()/delete()` (also on a `lazy="dynamic"` relationship: `row.items.filter(...).update(...)`, or that query held in a name), raw `UPDATE`/`DELETE` text (also a literal formatted in place, `"UPDATE {t} ...".format(t=...)`, held in a name; on a handle named like one, including `context["connection"]`), `repo.update/delete/save/mark_*(...)` on a repository object, a repository library\'s inherited bulk writes on `self` (advanced-alchemy\'s `self.update_many(...)`, `self.delete_where(...)`) — in the loop body or in a same-repo function the loop calls (with the chain); advisory when that function does its item\'s whole work besides the statement (another UPDATE/DELETE, a commit, a session of its own, a call out of the process, itself or through its callees): one set-based statement replaces such a loop only once the rest is rebuilt around it. `session.delete(obj)` only stages the row: it counts only when the same iteration flushes (a `flush()`, `commit()`, statement or autoflushing query), else the unit of work sends the deletes together. Severity follows how the loop\'s N grows, as PA107 reads it: `high` over rows that grow with the stored data, `low` over what one client sent in one request (a handler\'s parameters, or a helper\'s parameter every caller fills with them) and over the children of one loaded row, `medium` when N is not known (a parameter no caller in the repo fills, a `while` loop). Loops over a literal or constant of at most ten items are a fixed cost and are not reported; nor is a statement whose table is the loop\'s own item (`for t in tables: delete(t)`): another table on each pass, which no one statement can replace. Also a loop over loaded ORM rows that sets an attribute of every row to the same value (`for t in rows: t.active = False`), which makes the next flush send one UPDATE per row (medium: the rows are loaded anyway); silent when the value depends on the row, the loop or a call, when a condition or an early exit picks the rows, or when a call in the loop takes the row.',
    why: 'Each iteration is a statement and a round trip, and each takes its row locks separately; a set-based statement does the same work in one pass and one lock acquisition order.',
    bad: "from sqlalchemy import update\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\n\nasync def restore(session: AsyncSession, ids: list[int]):\n    for item_id in ids:\n        await session.execute(update(Item).where(Item.id == item_id).values(archived=False))\n",
    good: "from sqlalchemy import update\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\n\nasync def restore(session: AsyncSession, ids: list[int]):\n    await session.execute(update(Item).where(Item.id.in_(ids)).values(archived=False))\n",
    fix: 'one `update(Model).where(Model.id.in_(ids))` / `delete(Model).where(...)` for the whole set',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/queryguide/dml.html#orm-update-and-delete-with-custom-where-criteria',
      'https://docs.sqlalchemy.org/en/20/core/dml.html',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    for (const r of fileWriteReports(ctx.model)) {
      if (r.deferred) continue;
      ctx.report({ node: r.site.call.node, message: r.message, severity: r.severity, ...(r.advisory ? { advisory: r.advisory } : {}), ...(r.sameDefectAs ? { sameDefectAs: r.sameDefectAs } : {}) });
    }
    reportDirtyTracking(ctx);
  },
  checkRepo(ctx: RepoRuleContext): void {
    reportHelperSites(
      ctx,
      WRITE_EFFECT,
      (callee, what) => `\`${callee}\` runs one UPDATE/DELETE (\`${what}\`) per loop iteration`,
      undefined,
      undefined,
      true,
    );
    reportDeferredLoopFindings(ctx, DEFERRED_WRITE);
  },
};
