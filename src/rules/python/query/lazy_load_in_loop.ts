/**
 * PA108 lazy_load_in_loop
 *
 * What it does: inside a loop over ORM rows, finds access to a relationship the project's model
 * declares with a lazy loader (`relationship()` default `lazy="select"`, `"dynamic"`), when the
 * query that produced the rows sets no eager option for it (`selectinload`, `joinedload`,
 * `subqueryload`, `contains_eager`, `raiseload`, …).
 * Why is this bad? Each access emits one SELECT per row: N+1 hidden behind an attribute. With
 * `AsyncSession` it is worse: implicit IO raises `MissingGreenlet`.
 *
 * Guards: the rows must come from a query in the same function whose single entity is a model
 * found in the project (`select(User)`, `session.query(User)`); relationships declared eager
 * (`lazy="selectin"/"joined"/"subquery"/"raise"/…`) or loaded by an option never count. A
 * many-to-one (`Mapped["User"]`, `uselist=False`, a `<name>_id` foreign key beside it) is
 * medium: its lazy load is served from the identity map for related rows already loaded; silent
 * when the query picks its rows by target objects the code holds (`Child.parent_id.in_([p.id for
 * p in parents])`, `Child.parent == parent`).
 */
import type { ModelInfo } from '../../../discovery/context.js';
import { modelsNamed, projectIndex } from '../../projectFacts.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { rowsSource } from './dbCalls.js';
import { loopTarget } from './semantics.js';

const LAZY = new Set(['select', 'dynamic', 'true', 'True']);
const LOADER_OPTION = /\b(selectinload|joinedload|subqueryload|immediateload|contains_eager|raiseload|noload|defaultload)\s*\(/;

/** Relationship name → loader, for every model of that name in the project (all must agree it is lazy). */
/** Relationships lazy in every declaration of the entity (`candidates`: the models of that name). */
function lazyRelationships(candidates: ModelInfo[]): Map<string, { scalar: boolean; target: string | null }> {
  const out = new Map<string, { scalar: boolean; target: string | null }>();
  if (!candidates.length) return out;
  for (const rel of candidates[0]!.relationships) {
    if (candidates.every((m) => m.relationships.some((r) => r.name === rel.name && LAZY.has(r.lazy)))) {
      const scalar = candidates.every((m) => m.relationships.some((r) => r.name === rel.name && r.scalar));
      out.set(rel.name, { scalar, target: rel.target });
    }
  }
  return out;
}

function eagerlyLoaded(statementText: string, rel: string): boolean {
  if (!LOADER_OPTION.test(statementText)) return false;
  return new RegExp(`\\.${rel}\\b|["']${rel}["']|["']\\*["']`).test(statementText);
}

/**
 * Does the query pick its rows by a many-to-one's target objects the code already holds
 * (`Child.parent_id.in_([p.id for p in parents])`, `Child.parent_id == parent.id`,
 * `filter_by(parent=parent)`)? Then every lazy load of `rel` finds its row in the identity map.
 * Both forms say `rel` is a many-to-one (a `<rel>_id` column; `==` on a collection is an error)
 * even where the model's declaration does not (a mixin's `declared_attr`).
 */
function targetsHeld(statementText: string, rel: string): boolean {
  const obj = String.raw`[A-Za-z_][\w.]*(?:\[[^\]\n]*\])?`;
  return new RegExp(String.raw`\.${rel}_id\s*\.\s*in_\(\s*[[(]?\s*${obj}\.id\s+for\s`).test(statementText)
    || new RegExp(String.raw`\.${rel}_id\s*==\s*${obj}\.id\b(?!\s*[(.\[])`).test(statementText)
    || new RegExp(String.raw`\bfilter_by\([^)]*\b${rel}_id\s*=\s*${obj}\.id\s*[,)]`).test(statementText)
    || new RegExp(String.raw`\.${rel}\s*==\s*[A-Za-z_][\w.]*\s*[,)]`).test(statementText)
    || new RegExp(String.raw`\bfilter_by\([^)]*\b${rel}\s*=\s*[A-Za-z_][\w.]*\s*[,)]`).test(statementText);
}

export const lazyLoadInLoop: FileRule = {
  meta: {
    code: 'PA108',
    check: 'lazy_load_in_loop',
    family: 'query',
    severity: 'high',
    effort: 'S',
    summary: 'Lazy-loaded relationship accessed in a loop over ORM rows (hidden N+1)',
    what: 'Inside a loop (or comprehension) over rows from `select(Model)` / `session.query(Model)`, finds access to a relationship that the project\'s model declares with a lazy loader (`relationship()` with the default `lazy="select"`, or `"dynamic"`), when the query sets no eager loader option for it.',
    why: 'Each first access to a lazy relationship emits its own SELECT, once per row: an N+1 that no query in the code shows. Under `AsyncSession` the implicit IO is not allowed at all and raises `MissingGreenlet`.',
    bad: "from sqlalchemy import ForeignKey, select\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship\n\n\nclass Base(DeclarativeBase):\n    pass\n\n\nclass User(Base):\n    __tablename__ = \"users\"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    jobs: Mapped[list[\"Job\"]] = relationship()\n\n\nclass Job(Base):\n    __tablename__ = \"jobs\"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    user_id: Mapped[int] = mapped_column(ForeignKey(\"users.id\"))\n\n\nasync def job_ids(session):\n    users = (await session.scalars(select(User))).all()\n    return {u.id: [j.id for j in u.jobs] for u in users}\n",
    good: "from sqlalchemy import ForeignKey, select\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload\n\n\nclass Base(DeclarativeBase):\n    pass\n\n\nclass User(Base):\n    __tablename__ = \"users\"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    jobs: Mapped[list[\"Job\"]] = relationship()\n\n\nclass Job(Base):\n    __tablename__ = \"jobs\"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    user_id: Mapped[int] = mapped_column(ForeignKey(\"users.id\"))\n\n\nasync def job_ids(session):\n    users = (await session.scalars(select(User).options(selectinload(User.jobs)))).all()\n    return {u.id: [j.id for j in u.jobs] for u in users}\n",
    fix: 'add `selectinload(Model.rel)` (collections) or `joinedload(Model.rel)` (many-to-one) to the query',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/queryguide/relationships.html',
      'https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html#preventing-implicit-io-when-using-asyncsession',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile || !projectIndex(project).anyRelationships) return;
    for (const loop of model.loops) {
      if (loop.kind === 'while') continue;
      const t = loopTarget(loop);
      if (!t) continue;
      const line = loop.node.startPosition.row + 1;
      const source = rowsSource(model, t.iterable, loop.functionIndex, line);
      if (!source?.entity) continue;
      const lazy = lazyRelationships(modelsNamed(project, model, source.entity));
      for (const rel of [...lazy.keys()]) if (eagerlyLoaded(source.text, rel) || targetsHeld(source.text, rel)) lazy.delete(rel);
      if (!lazy.size) continue;
      const iterable = loop.iterable!;
      const reported = new Set<string>();
      for (const attr of loop.node.descendantsOfType('attribute')) {
        if (attr.startIndex < loop.iterStart || attr.startIndex >= loop.iterEnd) continue;
        if (attr.startIndex >= iterable.startIndex && attr.endIndex <= iterable.endIndex) continue;
        const obj = attr.childForFieldName('object');
        const name = attr.childForFieldName('attribute')?.text ?? '';
        if (obj?.type !== 'identifier' || obj.text !== t.name || !lazy.has(name) || reported.has(name)) continue;
        const parent = attr.parent;
        if (parent?.type === 'assignment' && parent.childForFieldName('left')?.id === attr.id) continue;
        reported.add(name);
        // A many-to-one's lazy load looks in the session's identity map first: one SELECT per
        // distinct related row not loaded yet, not always one per row.
        const rel = lazy.get(name)!;
        ctx.report({
          node: attr,
          message: `\`${t.name}.${name}\` lazy-loads ${source.entity}.${name} once per row of \`${source.op.what}\` (no eager loader option on the query)`
            + (rel.scalar ? `; a many-to-one: one SELECT per distinct ${rel.target ? `\`${rel.target.replace(/^.*\./, '')}\`` : 'related row'} not already in the session` : ''),
          ...(rel.scalar ? { severity: 'medium' as const } : {}),
        });
      }
    }
  },
};
