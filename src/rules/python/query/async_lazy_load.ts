/**
 * PA111 async_lazy_load
 *
 * What it does: finds a lazy relationship read on one row that an `AsyncSession` loaded in a
 * coroutine — `order = await session.get(Order, i)`, `(await session.scalars(select(Order)...)).first()`
 * — when neither the query's loader options nor an `await session.refresh(order, ["lines"])`
 * loaded it: `order.lines`, `order.customer.name`.
 * Why is this bad? Under `AsyncSession` an attribute access cannot await: the lazy load's IO raises
 * `sqlalchemy.exc.MissingGreenlet` ("greenlet_spawn has not been called") instead of running. The
 * code reads like a plain attribute and fails at run time, often only on the path that first
 * touches the relationship.
 *
 * Through calls: the row a coroutine of the repo returns (`return await self.session.get(M, i)`,
 * a repository's `get`) read by its caller (`row = await repo.get(i); row.rel`).
 *
 * Loops over rows are PA108's (its message says the same for `AsyncSession`). A many-to-one may be
 * found in the identity map without IO when its row is already loaded: medium; a collection or the
 * side of a one-to-one without the foreign key always needs a SELECT: high.
 * After a commit: with every async session factory of the project left at `expire_on_commit=True`,
 * a read of a row the coroutine holds after `await session.commit()` (an attribute, a serialiser,
 * a route's `return row` into a response model) reloads the expired row: the same implicit IO.
 * A rollback expires the rows the session loaded whatever the factory says.
 *
 * Silent: relationships declared with an eager `lazy=` (`selectin`, `joined`, `subquery`,
 * `immediate`) or `raise`/`noload`/`dynamic`/`write_only`; a query with an option that loads the
 * relationship (or `raiseload`/`noload` it); `await session.refresh(row, [..."rel"...])` before the read;
 * `await row.awaitable_attrs.rel`; rows of a sync session; a name bound again before the read.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import type { ModelInfo, ProjectContext, RelationshipInfo } from '../../../discovery/context.js';
import { expiringAsyncFactory } from '../../../semantic/sessionExpiry.js';
import { callAt, callsOf, namesBuiltWith, type CallInfo, type FileModel, type LoopInfo } from '../../../semantic/model.js';
import { asyncHandles } from '../../../semantic/asyncSessions.js';
import { modelsNamed } from '../../projectFacts.js';
import { callArgs, insideNestedDef, itemAttributeReads, lastAssignment, loopTarget, unwrap } from './semantics.js';
import { bindsName } from '../../../semantic/codeText.js';
import { typeString } from '../../../semantic/valueTypes.js';
import type { Effect } from '../../../analysis/summary.js';
import { eagerlyLoaded, loadedRelation, relationLabel } from './loadedRelations.js';
import { UNTYPED } from '../../../analysis/objects.js';
import { declaredResponseType } from '../../../semantic/schemas.js';
import { callGraphOf, ownSites, siteCalls, type CallGraph, type FnRef } from '../../../analysis/callgraph.js';
import { classMembers, PARAM_READS, ROW_QUERY, rowReadsAt } from './rowCalls.js';
import type { RepoRule, RepoRuleContext } from '../../types.js';
import { inTreeModule } from '../../../semantic/model.js';
import { COMMIT_EFFECT } from '../transaction/effects.js';
import { alwaysReaches, sessionEnd } from '../transaction/reach.js';

/** Loader strategies that load on first access with IO. */
const LAZY = /^(select|True|true)$/;
/** Calls that return one row of the entity they are given. */
const ONE_ROW = /\.(first|one|one_or_none|scalar_one|scalar_one_or_none|scalar)\s*\(\s*\)\s*$/;

interface LoadedRow {
  name: string;
  entity: string;
  /** Text of the statement that loaded it (its loader options). */
  text: string;
  /** Offset after which reads count. */
  from: number;
  fnIndex: number;
  /** The session it was loaded on, as written (`session`, `self.session`). */
  session: string | null;
}

export const asyncLazyLoad: FileRule & RepoRule = {
  meta: {
    code: 'PA111',
    check: 'async_lazy_load',
    family: 'query',
    severity: 'high',
    effort: 'S',
    summary: 'Implicit IO on a row an `AsyncSession` holds (a lazy relationship, or any attribute after a commit expired it): it raises `MissingGreenlet`',
    what: 'In a coroutine, finds a lazy relationship (the default `lazy="select"`) read on one row that an `AsyncSession` loaded — `row = await session.get(Model, id)`, `row = (await session.scalars(select(Model)...)).first()` / `.one()` / `.one_or_none()`, `(await session.execute(select(Model)...)).scalar_one_or_none()`, `await session.scalar(select(Model)...)` — when no loader option of the query loads it (`selectinload(Model.rel)`, `joinedload(...)`, also chained and in `session.get(..., options=[...])`; `raiseload`/`noload` naming it silence it too, while `lazyload(Model.rel)`, a path through it with `defaultload`, or a filter on it, `Model.rel.any(...)`, load nothing) and no `await session.refresh(row, ["rel"])` came before: `row.rel`, `row.rel.append(x)`, `row.rel.name`. High for a collection or the side of a one-to-one without the foreign key (always a SELECT); medium for a many-to-one, which the identity map may serve without IO when its row is already loaded. Also through calls: the row a coroutine of the repo returns (`return await self.session.get(Model, i)`, `row = ...; return row`) when its caller reads a lazy relationship on it (`row = await repo.get(i); row.rel`); not when the coroutine refreshed it or awaited the attribute before returning, returns something reached from the row, or loads it on a session of its own (the row leaves detached: another error). Also when the caller hands that row whole to a plain (sync) function of the repo that reads the relationship, itself or in a function it hands the row to, two levels down (`return project_status(attempt)`, `project_status` calling `failure_reason(attempt)`, which walks `attempt.tool_calls`): the sync code runs in the event loop, where the lazy load raises the same way; the loading coroutine may be a model\'s classmethod over `select(cls)` and a statement held in a name (`stmt = select(cls).where(...)`; `await session.scalars(stmt)`). A sync method of the row\'s model called on it (`row.to_data()`, reading `self.containers`) loads the same way, in the event loop: reported at the call unless the query loads what the method reads or the method runs a query of its own; the session may come from a project\'s provider used as a context manager, a function or a method of a wrapper class (`async with self._db.begin_readonly_session() as s:`). Rows the coroutine loaded itself the same way: one row (`ep = await session.get(Episode, i)`) or each item of a list it loaded (`eps = (await session.scalars(select(Episode)...)).all()`, then `for ep in eps:` or `[... for ep in eps]`) handed whole to a plain (sync) function of the project, in any module, that reads the relationship on that parameter (`episode_out(ep)` reading `ep.host.name`, also two levels down), or a sync method of the model called on each item; not when the callee is a coroutine (it awaits what it reads, `await ep.awaitable_attrs.host`), nor after `await session.refresh(ep, ...)`, `await ep.awaitable_attrs...` or `run_sync` before the call. A lazy relationship read on each item of such a list in a loop or comprehension over it (`[ep.host.name for ep in eps]`) is reported too: the first item\'s load raises. Where PA108 reports the same loop read (one load per row), its finding stands for both; PA111 remains where PA108 counts one load (every row points at the same related row, `where(Episode.host_id == h)`), which still raises. An association proxy of the model (`carrier_code = association_proxy("carrier", "code")`) reads its relationship first: reading it counts as reading that relationship in each case above, at its severity (over a collection: `high`), and the relationship\'s loader option, refresh (`refresh(row, ["carrier"])`) or `awaitable_attrs` covers it. Silent for a name bound more than once in the function (which row a read sees depends on the path), for an earlier eager query of the function whose rows are kept in a name (the identity map hands the row back; it holds rows weakly, so thrown-away results do not count), and for relationships declared eager (`selectin`, `joined`, `subquery`, `immediate`) or `raise`, `noload`, `dynamic`, `write_only`, for `await row.awaitable_attrs.rel`, for rows of a sync session, and when the name is bound again before the read. After a commit: when every async session factory of the project keeps `expire_on_commit=True` (SQLAlchemy\'s default; PA404 reports the factory), the first read of a row the coroutine holds on an `AsyncSession` (loaded by it, or `row = Model(...)` added to it) after an `await session.commit()` that runs on every path to the read (its statement\'s block encloses the read): an attribute (`row.id` too: the commit expires every attribute), `Out.model_validate(row)` / `from_orm(row)`, or `return row` from a route with a response model (`response_model=`, or a return annotation naming a class: FastAPI validates it in the event loop after the handler). After a rollback the same, whatever the factory says (`Session.rollback()` expires every row the session loaded; an object only added to it leaves with its state, so only loaded rows count): `except IntegrityError: await session.rollback(); return f\"{row.name} is taken\"`. Through calls too: the row a coroutine returns after its own commit expired it (`session.add(u); await session.commit(); return u`, no refresh), read by its caller (`u = await create_user(...)` then `u.id`, or a route\'s `return await create_user(...)` into its response model); not when the caller refreshes it, hands it on or runs a query on a session before reading it (the query may hand the row back reloaded), nor when the coroutine itself reads it before returning (that read is reported there), nor when it opened the session itself (`async with Maker() as s:`: the row leaves detached, another error). The session may be a name or a repository\'s `self.session`; the commit an `await session.commit()`, the end of an `async with session.begin():` block around the row\'s binding, or an awaited call handed the session whose function commits after its last statement, unconditionally and with no refresh after (`async def save(s): await s.commit()` … `await save(session)` then `post.title`; decided in the repo phase). A commit in a `try` body whose every handler leaves (`raise`, `return`) runs before whatever follows the `try` (not before its handlers, which run when it failed: a rollback there is what expires a loaded row). Silent after `await session.refresh(row)` (`refresh(row, [\"name\"])` loads only the attributes it names: reads of the others are still reported), a query of the row\'s model on that session, or a call handed the row or the session (`await commit_and_refresh(session, row)`) or made on an object built from it (`repo = Repo(session)`, `await repo.get(i)`), between the commit and the read (a flush or another table\'s query reloads nothing); for a row deleted or expunged before the commit (it leaves detached with its state); for a method call on the row, an attribute the code set again after the commit, and reads in a nested def or a lambda; for a route with no response model (FastAPI encodes the object with `vars()`, which loads nothing) or whose response model is the ORM class itself (a SQLModel table class is encoded from its `__dict__`); and when any async factory outside tests turns expiry off or sets it from a value the code cannot read (a name, `**options`), or the project sets `expire_on_commit` anywhere else (`s.sync_session.expire_on_commit = False`, `Maker(expire_on_commit=False)` per call, `configure(...)`): which factory a session came from is not followed. In a tree of several projects (each directory with its own manifest), the factories and settings of the file\'s own project decide, when it has any. Through a serialiser or a response model pydantic v2 reports the failure as a validation error (FastAPI: a 500 `ResponseValidationError`). A row read after `async with Maker() as s, s.begin():` has left with the closed session (a `DetachedInstanceError`, not this): silent. Rows held in a list are expired alike: `rows = (await session.scalars(select(Model)...)).all()` (or `result.scalars().all()` of an awaited `execute`), then an awaited commit of that session on every path, then a loop or comprehension over `rows` that reads an attribute of each item (the first read is reported); not after a query of the model on the session, a refresh, or a call handed the list or the session, and not for `Row` tuples (`execute(...).all()` without `.scalars()`).',
    why: 'Under `AsyncSession` an attribute access cannot await: the lazy load\'s SELECT raises `MissingGreenlet` ("greenlet_spawn has not been called; can\'t call await_only() here") instead of running. The code reads like a plain attribute and fails at run time, often only on the path that first touches the relationship.',
    bad: "from sqlalchemy import ForeignKey\nfrom sqlalchemy.ext.asyncio import AsyncSession\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship\n\n\nclass Base(DeclarativeBase):\n    pass\n\n\nclass Order(Base):\n    __tablename__ = \"orders\"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    lines: Mapped[list[\"Line\"]] = relationship()\n\n\nclass Line(Base):\n    __tablename__ = \"lines\"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    order_id: Mapped[int] = mapped_column(ForeignKey(\"orders.id\"))\n    sku: Mapped[str]\n\n\nasync def order_lines(session: AsyncSession, order_id: int):\n    order = await session.get(Order, order_id)\n    return [line.sku for line in order.lines]\n",
    good: "from sqlalchemy import ForeignKey\nfrom sqlalchemy.ext.asyncio import AsyncSession\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload\n\n\nclass Base(DeclarativeBase):\n    pass\n\n\nclass Order(Base):\n    __tablename__ = \"orders\"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    lines: Mapped[list[\"Line\"]] = relationship()\n\n\nclass Line(Base):\n    __tablename__ = \"lines\"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    order_id: Mapped[int] = mapped_column(ForeignKey(\"orders.id\"))\n    sku: Mapped[str]\n\n\nasync def order_lines(session: AsyncSession, order_id: int):\n    order = await session.get(Order, order_id, options=[selectinload(Order.lines)])\n    return [line.sku for line in order.lines]\n",
    fix: 'load it with the query (`selectinload(Model.rel)` for collections, `joinedload(Model.rel)` for many-to-one), `await session.refresh(row, ["rel"])`, or `await row.awaitable_attrs.rel`',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html#preventing-implicit-io-when-using-asyncsession',
      'https://docs.sqlalchemy.org/en/20/errors.html#error-xd2s',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile || !model.modelClasses.size || !/\bawait\b/.test(model.source) || !model.source.includes('ession')) return;
    const isAsync = asyncHandles(model, project);
    const reported = new Set<string>();
    for (const row of loadedRows(model, isAsync)) {
      const lazy = lazyRelationships(modelsNamed(project, model, row.entity));
      if (!lazy.size) continue;
      for (const read of lazyReadsOf(model, row, lazy)) {
        const key = `${row.name}:${read.name}:${row.fnIndex}`;
        if (reported.has(key)) continue;
        reported.add(key);
        reported.add(`@${read.node.startIndex}`);
        const always = !read.rel.scalar || read.rel.reverse;
        ctx.report({
          node: read.node,
          message: `\`${row.name}.${read.name}\` lazy-loads ${row.entity}.${loadedRelation(read.name, read.rel)}${read.rel.via ? ` (\`${read.name}\` is an association proxy through it)` : ''} on a row an \`AsyncSession\` loaded (line ${model.lineOf(row.from) + 1}), with no loader option for it: the implicit IO raises \`MissingGreenlet\` instead of running`
            + (always ? '' : ' (unless the related row is already in the identity map)'),
          severity: always ? 'high' : 'medium',
        });
      }
    }
    // The items of a list of rows an `AsyncSession` loaded, read in a loop or comprehension over
    // it: the first item's lazy load raises. PA108 reports the same read as one load per row
    // when the loop may load many: then that finding stands for both.
    for (const l of asyncListLoops(model, isAsync)) {
      const lazy = lazyRelationships(modelsNamed(project, model, l.entity));
      if (!lazy.size || unreadableOptions(l.text)) continue;
      for (const { node, name } of itemAttributeReads(model, l.loop, l.item, (n) => lazy.has(n))) {
        const rel = lazy.get(name)!;
        const loads = loadedRelation(name, rel);
        if (eagerlyLoaded(l.text, loads) || keptEagerLoad(model, l.fnIndex, loads, node.startIndex) || loadedInLoop(model, l.loop, l.item, loads, node.startIndex)) continue;
        if (reported.has(`@${node.startIndex}`)) continue;
        reported.add(`@${node.startIndex}`);
        const always = !rel.scalar || rel.reverse;
        const line = node.startPosition.row + 1;
        ctx.report({
          node,
          message: `\`${l.item}.${name}\` lazy-loads ${l.entity}.${loads}${rel.via ? ` (\`${name}\` is an association proxy through it)` : ''} on each row of \`${l.list}\` (${l.entity} rows an \`AsyncSession\` loaded on line ${l.line}, with no loader option for it): the implicit IO raises \`MissingGreenlet\` at the first row instead of running`
            + (always ? '' : ' (unless the related row is already in the identity map)'),
          severity: always ? 'high' : 'medium',
          sameDefectAs: { code: 'PA108', line },
        });
      }
    }
    // A commit expires the rows only under `expire_on_commit=True`; a rollback always does.
    const expiring = expiringAsyncFactory(project, model.path);
    // Rows held in a list (`rows = (await s.scalars(select(M))).all()`), walked after the commit.
    if (expiring) {
      for (const read of expiredListReads(model, isAsync)) {
        if (reported.has(`@${read.node.startIndex}`)) continue;
        reported.add(`@${read.node.startIndex}`);
        ctx.report({
          node: read.node,
          message: `\`${read.item}.${read.field}\` reads each row of \`${read.list}\` (${read.entity} rows an \`AsyncSession\` loaded on line ${read.loadLine}) after \`${read.commit}\` (line ${read.commitLine}) expired them: the project's async sessions expire their rows on commit (\`${expiring.kind}\` at ${expiring.file}:${expiring.line} keeps \`expire_on_commit=True\`${expiring.expireOnCommit === null ? ', the default' : ''}), so the read reloads the row, and that implicit IO fails with \`MissingGreenlet\``,
          severity: 'high',
          recommendation: `read what the loop needs before the commit, or \`expire_on_commit=False\` on the factory (or on this session: \`${read.session}.sync_session.expire_on_commit = False\`)`,
        });
      }
    }
    for (const read of expiredReads(model, isAsync, expiring !== null)) {
      // One finding per row, and none where the lazy-load one already stands.
      const key = `${read.row}:${read.fnIndex}`;
      if (reported.has(key) || reported.has(`@${read.node.startIndex}`)) continue;
      reported.add(key);
      ctx.report({
        node: read.node,
        message: read.rollback
          ? `${read.what} after \`${read.commit}\` (line ${read.commitLine}) expired it: a rollback expires every row the session loaded, so the read reloads the row, and that implicit IO fails with \`MissingGreenlet\`${read.validated ? VALIDATION_NOTE : ''}`
          : `${read.what} after \`${read.commit}\` (line ${read.commitLine}) expired it: the project's async sessions expire their rows on commit (\`${expiring!.kind}\` at ${expiring!.file}:${expiring!.line} keeps \`expire_on_commit=True\`${expiring!.expireOnCommit === null ? ', the default' : ''}), so the read reloads the row, and that implicit IO fails with \`MissingGreenlet\`${read.validated ? VALIDATION_NOTE : ''}`,
        severity: 'high',
        recommendation: read.rollback
          ? `read what the code needs from \`${read.row}\` before the rollback, or \`await ${read.session}.refresh(${read.row})\` after it`
          : `\`await ${read.session}.refresh(${read.row})\` after the commit, or \`expire_on_commit=False\` on the factory`,
      });
    }
  },
  /**
   * Through calls: `order = await repo.get(order_id)` where the repository method returns one row
   * an `AsyncSession` loaded (`return await self.session.get(Order, i)`) with no loader option for
   * the relationship the caller then reads.
   */
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    reportRowMethods(ctx, graph);
    reportHandedRows(ctx, graph);
    reportExpiredReturns(ctx, graph);
    reportHandedCommits(ctx, graph);
    for (const { ref, file, fn, site, call, to } of siteCalls(graph, ROW_CALLS)) {
      const found = returnedRow(graph, to, 0);
      if (!found) continue;
      const returned = found.effect;
      const bar = returned.what.indexOf('|');
      const entity = returned.what.slice(0, bar);
      const text = returned.what.slice(bar + 1);
      const models = ctx.project.models.filter((m) => m.name === entity);
      const lazy = lazyRelationships(models);
      const s = JSON.parse(site.what) as { name: string; reads: [string, number, number, number][]; handed?: [number, number, number, number][] };
      // A sync function handed the row (and what it hands it to, a level down) reads it in the event loop too.
      for (const [line, column, endColumn, position] of s.handed ?? []) {
        const target = graph.resolvedCallAt(ref.file, line, column);
        if (!target || target.call.receiverType === UNTYPED || graph.function(target.to).isAsync || unreadableOptions(text)) continue;
        const hit = handedLazyRead(graph, target.to, position, lazy, text);
        if (!hit) continue;
        const { rel, where, info, always } = hit;
        ctx.report({
          path: file.path,
          location: { line, column, endLine: line, endColumn },
          message: `\`${target.call.calleeText}(${s.name})\` reads ${relationLabel(entity, rel, info)} (in \`${where}\`) on the row \`${call.calleeText}()\` returns (\`${graph.function(found.loader).qualifiedName}\` loads it on an \`AsyncSession\` with no loader option for it): a sync function called from the coroutine runs in the event loop, where the lazy load raises \`MissingGreenlet\` instead of running`
            + (always ? '' : ' (unless the related row is already in the identity map)'),
          severity: always ? 'high' : 'medium',
          function: fn.name,
        });
      }
      for (const [name, line, column, endColumn] of s.reads) {
        const rel = lazy.get(name);
        if (!rel || eagerlyLoaded(text, loadedRelation(name, rel)) || unreadableOptions(text)) continue;
        const always = !rel.scalar || rel.reverse;
        ctx.report({
          path: file.path,
          location: { line, column, endLine: line, endColumn },
          message: `\`${s.name}.${name}\` lazy-loads ${entity}.${loadedRelation(name, rel)}${rel.via ? ` (\`${name}\` is an association proxy through it)` : ''} on the row \`${call.calleeText}()\` returns (\`${graph.function(found.loader).qualifiedName}\` loads it on an \`AsyncSession\` with no loader option for it): the implicit IO raises \`MissingGreenlet\` instead of running`
            + (always ? '' : ' (unless the related row is already in the identity map)'),
          severity: always ? 'high' : 'medium',
          function: fn.name,
        });
      }
    }
  },
};

/**
 * Between `from` and `to`, was the row's state loaded or checked the way an async caller does:
 * `await session.refresh(row, [...])`, `await row.awaitable_attrs.x`, `run_sync(...)`, or a look
 * at `inspect(row).unloaded`? Then what a sync function reads on it is not known to load.
 */
function loadedBefore(model: FileModel, name: string, from: number, to: number): boolean {
  const between = model.source.slice(from, to);
  return patternFor(`b${name}`, () => `\\brefresh\\(\\s*${name}\\b|\\b${name}\\.awaitable_attrs\\b|\\brun_sync\\(|\\binspect\\(\\s*${name}\\s*\\)`).test(between);
}

/**
 * The compiled pattern of a key (a name's pattern of {@link loadedBefore} or {@link loadedInLoop}):
 * the same pattern is tested for every call after a row, call after call. No `g` flag: `test`
 * keeps no state between calls.
 */
const patterns = new Map<string, RegExp>();
function patternFor(key: string, source: () => string): RegExp {
  let re = patterns.get(key);
  if (!re) {
    if (patterns.size > 4096) patterns.clear();
    patterns.set(key, (re = new RegExp(source())));
  }
  return re;
}

/** A model's sync method called on a row an `AsyncSession` loaded, reading a lazy relationship of `self`: `MissingGreenlet`. */
function reportRowMethods(ctx: RepoRuleContext, graph: CallGraph): void {
  for (const { ref, file, site } of ownSites(graph, ASYNC_ROW_METHOD)) {
    const s = JSON.parse(site.what) as { name: string; entity: string; method: string; end: number; text: string; loop?: boolean };
    if (unreadableOptions(s.text)) continue;
    const m = classMembers(graph).get(`${s.entity}.${s.method}`);
    // A coroutine method is awaited, not this call's sync read.
    if (!m || graph.function(m).isAsync) continue;
    const own = graph.ownEffects(m);
    if (own.some((e) => e.kind === ROW_QUERY)) continue;
    const reads = rowReadsAt(own, { passes: '|' }) ?? [];
    const lazy = lazyRelationships(ctx.project.models.filter((x) => x.name === s.entity));
    const rel = reads.find((n) => lazy.has(n) && !eagerlyLoaded(s.text, loadedRelation(n, lazy.get(n))));
    if (!rel) continue;
    const info = lazy.get(rel)!;
    const always = !info.scalar || info.reverse;
    ctx.report({
      path: file.path,
      location: { line: site.line, column: site.column, endLine: site.line, endColumn: s.end },
      message: `\`${s.name}.${s.method}()\` reads ${relationLabel(s.entity, rel, info)} (in \`${graph.function(m).qualifiedName}\`) on ${s.loop ? 'each row of a list' : 'a row'} an \`AsyncSession\` loaded with no loader option for it: the sync method runs in the event loop, where the lazy load raises \`MissingGreenlet\` instead of running`
        + (always ? '' : ' (unless the related row is already in the identity map)'),
      severity: always ? 'high' : 'medium',
      function: graph.function(ref).name,
      ...(s.loop ? { sameDefectAs: { code: 'PA108', line: site.line } } : {}),
    });
  }
}

/** A row a coroutine loaded on an `AsyncSession`, handed to a plain function that reads a lazy relationship of it (see {@link ASYNC_ROW_HANDED}). */
function reportHandedRows(ctx: RepoRuleContext, graph: CallGraph): void {
  for (const { file, fn, site, call, to } of siteCalls(graph, ROW_HANDED)) {
    // A coroutine is awaited (what it reads, it may await first); an untyped receiver is a guess.
    if (call.receiverType === UNTYPED || graph.function(to).isAsync) continue;
    const s = JSON.parse(site.what) as { name: string; entity: string; position: number; end: number; loop: boolean; text: string };
    if (unreadableOptions(s.text)) continue;
    const lazy = lazyRelationships(ctx.project.models.filter((m) => m.name === s.entity));
    if (!lazy.size) continue;
    const hit = handedLazyRead(graph, to, s.position, lazy, s.text);
    if (!hit) continue;
    const { rel, where, info, always } = hit;
    ctx.report({
      path: file.path,
      location: { line: site.line, column: site.column, endLine: site.line, endColumn: s.end },
      message: `\`${call.calleeText}(${s.name})\` reads ${relationLabel(s.entity, rel, info)} (in \`${where}\`) on ${s.loop ? 'each row of a list' : 'a row'} an \`AsyncSession\` loaded with no loader option for it: a sync function called from the coroutine runs in the event loop, where the lazy load raises \`MissingGreenlet\` instead of running`
        + (always ? '' : ' (unless the related row is already in the identity map)'),
      severity: always ? 'high' : 'medium',
      function: fn.name,
      ...(s.loop ? { sameDefectAs: { code: 'PA108', line: site.line } } : {}),
      chain: [{ path: file.path, line: call.line, column: call.column, function: fn.name, call: call.calleeText }],
    });
  }
}

/**
 * The first lazy relationship (of `lazy`) that a sync function handed a row at `position` reads on
 * it, itself or two levels down, that the row's statement (`text`) does not eager-load; with the
 * function that reads it, and whether the load always emits SQL (a collection, or the side of a
 * one-to-one without the foreign key) rather than looking in the identity map first.
 */
function handedLazyRead(graph: CallGraph, fn: FnRef, position: number, lazy: ReturnType<typeof lazyRelationships>, text: string) {
  const handed = new Map<string, string>();
  handedReads(graph, fn, String(position), 0, handed);
  const hit = [...handed].find(([n]) => lazy.has(n) && !eagerlyLoaded(text, loadedRelation(n, lazy.get(n))));
  if (!hit) return null;
  const [rel, where] = hit;
  const info = lazy.get(rel)!;
  return { rel, where, info, always: !info.scalar || !!info.reverse };
}

/**
 * The lazy relationship names a function reads on its parameter at `position` (`PARAM_READS`),
 * with the function that reads each, and those the functions it hands the parameter to read (two
 * levels down; the `>line:column:position` hand-offs of the fact).
 */
function handedReads(graph: CallGraph, fn: FnRef, position: string, depth: number, out: Map<string, string>): void {
  const fact = graph.ownEffects(fn).find((e) => e.kind === PARAM_READS && e.what.startsWith(`${position}|`));
  if (!fact) return;
  const [, names = '', handoffs = ''] = fact.what.split('|');
  const name = graph.function(fn).qualifiedName;
  for (const n of names.split(',')) {
    const bare = n.replace(/\^.*$/, '');
    if (bare && !n.includes('^') && !out.has(bare)) out.set(bare, name);
  }
  if (depth >= 2) return;
  for (const h of handoffs ? handoffs.split(';') : []) {
    const [line = '', column = '', pos = ''] = h.split(':');
    const inner = graph.resolvedCallAt(fn.file, Number(line), Number(column));
    if (inner && inner.call.receiverType !== UNTYPED && !graph.function(inner.to).isAsync) handedReads(graph, inner.to, pos, depth + 1, out);
  }
}

/** A coroutine that returns one row an `AsyncSession` loaded: `what` is `Entity|<statement text>`. */
export const RETURNS_ASYNC_ROW = 'returns_async_row';
/** A row a coroutine got from a call of the repo, and the attributes it reads on it. */
export const ASYNC_ROW_CALL = 'async_row_call';
/** Site fact: a sync model method called on a row an `AsyncSession` loaded in the coroutine (`what` = JSON {name, entity, method, end, text}). */
export const ASYNC_ROW_METHOD = 'async_row_method';
/** A coroutine whose one return is what a call of the repo returns, awaited: the call's site. */
export const RETURNS_CALL_ROW = 'returns_call_row';
/**
 * Site fact: a row the coroutine loaded on an `AsyncSession` (one row, or each item of a loop over
 * a loaded list) handed whole to a call, not awaited (`what` = JSON {name, entity, position, end,
 * loop, text}): the repo phase reports it when the callee is a plain function reading a lazy
 * relationship of that parameter.
 */
export const ASYNC_ROW_HANDED = 'async_row_handed';
const ROW_HANDED: ReadonlySet<string> = new Set([ASYNC_ROW_HANDED]);
const ROW_CALLS: ReadonlySet<string> = new Set([ASYNC_ROW_CALL]);

/** The reads of lazy relationships on a loaded row that nothing loaded before (see the rule's docs). */
function* lazyReadsOf(model: FileModel, row: LoadedRow, lazy: ReadonlyMap<string, LazyRel> | null): Generator<{ node: SyntaxNode; name: string; rel: LazyRel }> {
  const fn = model.functions[row.fnIndex]!;
  const body = fn.body;
  if (!body) return;
  for (const attr of body.descendantsOfType('attribute')) {
    // Only `row.<name>`: its text starts with the row's name (read from the source, no tree access).
    if (attr.startIndex < row.from || !model.source.startsWith(row.name, attr.startIndex)) continue;
    const obj = attr.childForFieldName('object');
    const name = attr.childForFieldName('attribute')?.text ?? '';
    const rel: LazyRel | undefined = lazy ? lazy.get(name) : ANY_REL;
    if (!rel || obj?.type !== 'identifier' || obj.text !== row.name) continue;
    if (insideNestedDef(attr, fn.node)) continue;
    // `row.owner = x` sets a many-to-one without a read; replacing a collection loads the old one.
    if (attr.parent?.type === 'assignment' && attr.parent.childForFieldName('left')?.id === attr.id && (rel.scalar || !lazy)) continue;
    const line = attr.startPosition.row + 1;
    // Bound again anywhere in the function (a branch, a loop, a walrus, an unpacking): which row
    // the read sees depends on the path.
    const bound = lastAssignment(model, row.name, row.fnIndex, line);
    if (!bound || bound.node.endIndex !== row.from || !boundOnce(model, row.fnIndex, row.name)) continue;
    // An option that loads it (or makes it raise or load nothing), or options the text cannot read
    // (`options=LOADERS`, `selectinload("*")`). Naming it elsewhere loads nothing: a filter
    // (`Cellar.bottles.any(...)`), `lazyload(Cellar.bottles)`, a path through it (`defaultload`).
    // (An association proxy loads the relationship it reads through: what options and refreshes name.)
    const loads = loadedRelation(name, rel);
    if (eagerlyLoaded(row.text, loads) || unreadableOptions(row.text)) continue;
    const between = model.source.slice(row.from, attr.startIndex);
    // Loaded before the read: a named refresh, `await row.awaitable_attrs.rel`, `run_sync`.
    if (new RegExp(`refresh\\(\\s*${row.name}\\s*,[^)]*['"]${loads}['"]|\\b${row.name}\\.awaitable_attrs\\.(?:${name}|${loads})\\b|\\brun_sync\\([^)]*\\b${row.name}\\b`).test(between)) continue;
    // Another query of the function eager-loaded it and its rows are kept in a name: the identity
    // map hands that row back (it holds rows weakly: a result thrown away is gone).
    if (keptEagerLoad(model, row.fnIndex, loads, attr.startIndex)) continue;
    yield { node: attr, name, rel };
  }
}

/** The row a coroutine returns: its own load, or, up to three layers down, what the call it returns returns. */
function returnedRow(graph: CallGraph, ref: FnRef, depth: number): { effect: Effect; loader: FnRef } | null {
  const own = graph.ownEffects(ref);
  const row = own.find((e) => e.kind === RETURNS_ASYNC_ROW);
  if (row) return { effect: row, loader: ref };
  if (depth >= 3) return null;
  const via = own.find((e) => e.kind === RETURNS_CALL_ROW);
  if (!via) return null;
  const edge = graph.callees(ref).find((e) => !e.weak && e.call.line === via.line && e.call.column === via.column);
  return edge ? returnedRow(graph, edge.to, depth + 1) : null;
}

/** Is `name` bound once in the function: one assignment, no loop target, walrus or unpacking? */
/** A row a coroutine holds on an `AsyncSession`: loaded through it, or added to it. */
interface HeldRow {
  name: string;
  entity: string;
  session: string;
  /** Offset after which reads count. */
  from: number;
  fnIndex: number;
  /** Loaded through the session (a rollback expires it), not only added. */
  loaded: boolean;
  /** A parameter of the coroutine (a row handed in), not a name it binds. */
  param?: boolean;
}

/**
 * The rows coroutines hold on an `AsyncSession` (a local or `self.session`): loaded through it;
 * built from a model (`user = User(...)`) and added to it; or handed in, typed as a model of the
 * file (`async def save(s, ticket: Ticket)`), and added to it.
 */
function heldRows(model: FileModel, isAsync: ReturnType<typeof asyncHandles>): HeldRow[] {
  const rows: HeldRow[] = [];
  for (const r of loadedRows(model, isAsync)) {
    if (r.session && SESSION_PATH.test(r.session)) rows.push({ name: r.name, entity: r.entity, session: r.session, from: r.from, fnIndex: r.fnIndex, loaded: true });
  }
  for (const call of model.calls) {
    if (call.method !== 'add' || call.functionIndex < 0 || !model.functions[call.functionIndex]!.isAsync) continue;
    const session = call.dottedReceiver;
    const arg = callArgs(call.node).positional[0];
    if (!session || !SESSION_PATH.test(session) || arg?.type !== 'identifier' || !onAsyncSession(model, call, isAsync)) continue;
    const bound = lastAssignment(model, arg.text, call.functionIndex, call.line);
    const ctor = bound?.value?.type === 'call' ? bound.value.childForFieldName('function')?.text.split('.').pop() ?? '' : '';
    const param = bound ? undefined : model.functions[call.functionIndex]!.params.find((p) => p.name === arg.text);
    const typed = param?.annotation?.replace(/^.*\./, '') ?? '';
    if (bound ? !model.modelClasses.has(ctor) : !model.modelClasses.has(typed)) continue;
    rows.push({ name: arg.text, entity: bound ? ctor : typed, session, from: call.node.endIndex, fnIndex: call.functionIndex, loaded: false, ...(bound ? {} : { param: true }) });
  }
  return rows;
}

/** One binding of the row's name in its function: the assignment, or for a row handed in, the parameter alone. */
function bindsOnce(model: FileModel, row: HeldRow): boolean {
  return row.param ? boundOnlyAsParameter(model, row.fnIndex, row.name) : boundOnce(model, row.fnIndex, row.name);
}

/** Is the parameter `name` never bound again in its function (no assignment, unpacking, `for`, `with`, walrus)? */
function boundOnlyAsParameter(model: FileModel, fnIndex: number, name: string): boolean {
  if (model.assignments.some((a) => a.functionIndex === fnIndex && a.target === name)) return false;
  if (model.unpackedAssignments.some((u) => u.functionIndex === fnIndex && u.names.includes(name))) return false;
  const fn = model.functions[fnIndex]!;
  return !bindsName(model.source.slice(fn.body?.startIndex ?? fn.node.startIndex, fn.node.endIndex), name);
}

function boundOnce(model: FileModel, fnIndex: number, name: string): boolean {
  if (model.assignments.filter((a) => a.functionIndex === fnIndex && a.target === name).length !== 1) return false;
  if (model.unpackedAssignments.some((u) => u.functionIndex === fnIndex && u.names.includes(name))) return false;
  const fn = model.functions[fnIndex]!;
  return !bindsName(model.source.slice(fn.node.startIndex, fn.node.endIndex), name);
}

/** A load on a session the function opens itself (`async with Maker() as s:`): the row leaves detached. */
function detachedLoad(model: FileModel, fnIndex: number, text: string): boolean {
  const m = /\b([A-Za-z_]\w*)\.(get|scalars|scalar|execute|exec)\(/.exec(text);
  return !!m && model.withs.some((w) => w.functionIndex === fnIndex && w.items.some((i) => i.alias === m[1]));
}

/** An assignment in the function, before `before`, of a query that eager-loads `rel`. */
function keptEagerLoad(model: FileModel, fnIndex: number, rel: string, before: number): boolean {
  return model.assignments.some((a) => a.functionIndex === fnIndex && a.node.startIndex < before && !!a.value && eagerlyLoaded(a.value.text, rel, true));
}

/** Stands for "some relationship" when the model is not known yet (a call's row, decided in the repo phase). */
const ANY_REL: RelationshipInfo = { name: '', target: null, lazy: 'select', file: '', line: 0 };

/**
 * The file half of the calls: coroutines that return one row an `AsyncSession` loaded, and rows
 * coroutines get from a call of the repo with the attributes read on them (the names of the
 * project's lazy relationships only).
 */
export function collectAsyncRowFacts(model: FileModel, project?: ProjectContext): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (!project || model.isTestFile || !model.source.includes('await')) return out;
  const names = lazyRelationshipNames(project);
  if (!names.size) return out;
  const isAsync = asyncHandles(model, project);
  // Returned rows.
  if (model.modelClasses.size && model.source.includes('ession')) {
    const rows = [...loadedRows(model, isAsync)];
    // Sync methods of the row's model called on it (`row.to_data()`): what they read on `self`
    // runs in the event loop (the repo phase reads the method's `ROW_READS`).
    for (const row of rows) {
      if (!boundOnce(model, row.fnIndex, row.name)) continue;
      const fnNode = model.functions[row.fnIndex]!.node;
      for (const c of callsOf(model, row.fnIndex)) {
        if (c.node.startIndex < row.from || c.dottedReceiver !== row.name || c.awaited || !c.emptyArgs || insideNestedDef(c.node, fnNode)) continue;
        if (loadedBefore(model, row.name, row.from, c.node.startIndex)) break;
        out[row.fnIndex]!.push({ kind: ASYNC_ROW_METHOD, what: JSON.stringify({ name: row.name, entity: row.entity, method: c.method, end: c.node.endPosition.column + 1, text: row.text.replace(/\s+/g, ' ').slice(0, 2000) }), line: c.line, column: c.column });
      }
    }
    // Rows the coroutine loaded itself, handed whole to a plain function (`episode_out(ep)`),
    // one row or each item of a loop over a loaded list: the repo phase reads what the callee
    // reads on that parameter (`PARAM_READS`), in the event loop.
    const handOff = (fnIndex: number, name: string, entity: string, text: string, from: number, to: number, loop: boolean, session: string | null) => {
      const fnNode = model.functions[fnIndex]!.node;
      for (const c of callsOf(model, fnIndex)) {
        if (c.node.startIndex < from || c.node.endIndex > to || c.awaited || c.functionIndex !== fnIndex || insideNestedDef(c.node, fnNode)) continue;
        if (c.dottedReceiver === name || (session && c.dottedReceiver === session)) continue;
        if (loop ? loadedInLoop(model, { iterStart: from } as LoopInfo, name, null, c.node.startIndex) : loadedBefore(model, name, from, c.node.startIndex)) break;
        const position = callArgs(c.node).positional.findIndex((x) => unwrap(x)?.type === 'identifier' && unwrap(x)!.text === name);
        if (position < 0) continue;
        out[fnIndex]!.push({ kind: ASYNC_ROW_HANDED, what: JSON.stringify({ name, entity, position, end: c.node.endPosition.column + 1, loop, text: text.replace(/\s+/g, ' ').slice(0, 2000) }), line: c.line, column: c.column });
      }
    };
    for (const row of rows) {
      if (boundOnce(model, row.fnIndex, row.name) && !detachedLoad(model, row.fnIndex, row.text)) handOff(row.fnIndex, row.name, row.entity, row.text, row.from, model.functions[row.fnIndex]!.node.endIndex, false, row.session);
    }
    for (const l of asyncListLoops(model, isAsync)) {
      handOff(l.fnIndex, l.item, l.entity, l.text, l.loop.iterStart, l.loop.iterEnd, true, null);
      // A sync method of the model called on each item (`[ep.to_out() for ep in eps]`).
      const fnNode = model.functions[l.fnIndex]!.node;
      for (const c of callsOf(model, l.fnIndex)) {
        if (c.node.startIndex < l.loop.iterStart || c.node.endIndex > l.loop.iterEnd || c.dottedReceiver !== l.item || c.awaited || !c.emptyArgs || insideNestedDef(c.node, fnNode)) continue;
        if (loadedInLoop(model, l.loop, l.item, null, c.node.startIndex)) break;
        out[l.fnIndex]!.push({ kind: ASYNC_ROW_METHOD, what: JSON.stringify({ name: l.item, entity: l.entity, method: c.method, end: c.node.endPosition.column + 1, text: l.text.replace(/\s+/g, ' ').slice(0, 2000), loop: true }), line: c.line, column: c.column });
      }
    }
    for (const fn of model.functions) {
      if (!fn.isAsync || !fn.body) continue;
      let found: { entity: string; text: string } | null = null;
      let ok = true;
      for (const r of fn.body.descendantsOfType('return_statement')) {
        if (insideNestedDef(r, fn.node)) continue;
        const v = r.namedChild(0);
        if (!v || v.type === 'none') continue;
        let row: { entity: string; text: string } | null = null;
        if (v.type === 'identifier') {
          const bound = lastAssignment(model, v.text, fn.index, r.startPosition.row + 1);
          const loaded = bound ? rows.find((x) => x.fnIndex === fn.index && x.from === bound.node.endIndex) : undefined;
          // Loaded on the way out (a refresh, `awaitable_attrs`, `run_sync`) or bound twice: not known.
          const between = loaded ? model.source.slice(loaded.from, r.startIndex) : '';
          if (loaded && !/\brefresh\(|\.awaitable_attrs\b|\brun_sync\(/.test(between) && boundOnce(model, fn.index, v.text) && !detachedLoad(model, fn.index, loaded.text)) row = { entity: loaded.entity, text: loaded.text };
        } else if (v.type === 'await' || (v.type === 'call' && ONE_ROW.test(v.text))) {
          // The loaded row itself (`return await s.get(M, i)`, `return (await s.scalars(...)).first()`),
          // not something reached from it (`(await s.get(Book, i)).author`).
          const load = loadingCall(model, fn.index, v);
          if (load && onAsyncSession(model, load.call, isAsync) && !detachedLoad(model, fn.index, v.text)) row = { entity: load.entity, text: load.statement ? `${v.text} ${load.statement}` : v.text };
        }
        if (!row || (found && found.entity !== row.entity)) { ok = false; break; }
        found = found ? { entity: found.entity, text: `${found.text} ${row.text}` } : row;
      }
      if (ok && found) out[fn.index]!.push({ kind: RETURNS_ASYNC_ROW, what: `${found.entity}|${found.text.replace(/\s+/g, ' ').slice(0, 2000)}`, line: fn.startLine, column: 1 });
    }
  }
  // A coroutine that hands on what another coroutine of the repo returns (`return await self.repo.get(i)`).
  for (const fn of model.functions) {
    if (!fn.isAsync || !fn.body || out[fn.index]!.some((e) => e.kind === RETURNS_ASYNC_ROW)) continue;
    const values = fn.body.descendantsOfType('return_statement').filter((r) => !insideNestedDef(r, fn.node)).map((r) => r.namedChild(0)).filter((v) => v && v.type !== 'none');
    const v = values.length === 1 ? values[0]! : null;
    const inner = v?.type === 'await' ? unwrap(v.namedChild(0)) : null;
    if (inner?.type !== 'call') continue;
    const call = callAt(model, inner);
    if (!call || call.functionIndex !== fn.index || (call.qualifiedName && model.repoModules && !inTreeModule(model.repoModules, call.qualifiedName) && !call.hasReceiver)) continue;
    out[fn.index]!.push({ kind: RETURNS_CALL_ROW, what: '', line: call.line, column: call.column });
  }
  // Rows got from calls, read later.
  for (const a of model.assignments) {
    if (a.functionIndex < 0 || !model.functions[a.functionIndex]!.isAsync || !/^[A-Za-z_]\w*$/.test(a.target) || a.value?.type !== 'await') continue;
    const inner = unwrap(a.value.namedChild(0));
    if (inner?.type !== 'call') continue;
    const call = callAt(model, inner);
    if (!call || call.functionIndex !== a.functionIndex) continue;
    const q = call.qualifiedName;
    if (q && model.repoModules && !inTreeModule(model.repoModules, q) && !call.hasReceiver) continue;
    const row: LoadedRow = { name: a.target, entity: '', text: '', from: a.node.endIndex, fnIndex: a.functionIndex, session: null };
    const reads: [string, number, number, number][] = [];
    for (const read of lazyReadsOf(model, row, null)) {
      if (!names.has(read.name) || reads.some((x) => x[0] === read.name)) continue;
      reads.push([read.name, read.node.startPosition.row + 1, read.node.startPosition.column + 1, read.node.endPosition.column + 1]);
    }
    // Sync functions of the repo handed the row whole (`project_status(attempt)`): what they read
    // on it runs in the event loop too (the repo phase reads their `PARAM_READS`).
    const handed: [number, number, number, number][] = [];
    if (boundOnce(model, a.functionIndex, a.target)) {
      const fnNode = model.functions[a.functionIndex]!.node;
      for (const c of callsOf(model, a.functionIndex)) {
        if (c.node.startIndex < a.node.endIndex || c.awaited || c.functionIndex !== a.functionIndex || c.hasReceiver || insideNestedDef(c.node, fnNode)) continue;
        if (loadedBefore(model, a.target, a.node.endIndex, c.node.startIndex)) break;
        const position = callArgs(c.node).positional.findIndex((x) => unwrap(x)?.type === 'identifier' && unwrap(x)!.text === a.target);
        if (position >= 0 && handed.length < 8) handed.push([c.line, c.column, c.node.endPosition.column + 1, position]);
      }
    }
    if (reads.length || handed.length) out[a.functionIndex]!.push({ kind: ASYNC_ROW_CALL, what: JSON.stringify({ name: a.target, reads, ...(handed.length ? { handed } : {}) }), line: call.line, column: call.column });
  }
  return out;
}

const relNames = new WeakMap<ProjectContext, ReadonlySet<string>>();

/** The names of the project's lazy relationships (the reads worth recording at a call site). */
function lazyRelationshipNames(project: ProjectContext): ReadonlySet<string> {
  let names = relNames.get(project);
  if (!names) relNames.set(project, (names = new Set([...project.models.flatMap((m) => m.relationships.filter((r) => LAZY.test(r.lazy)).map((r) => r.name)), ...project.models.flatMap((m) => (m.proxies ?? []).map((p) => p.name))])));
  return names;
}



/** Loader options the text cannot read: a name (`options=LOADERS`, `.options(*opts)`) or a wildcard (`selectinload("*")`). */
function unreadableOptions(text: string): boolean {
  return /options\s*=\s*[A-Za-z_*]|\.options\(\s*\*|\.options\(\s*[A-Za-z_]\w*\s*\)|load\(\s*['"]\*['"]/.test(text);
}

/** The lazy relationships of a model's declarations by name (none when any declaration disagrees). */
function lazyRelationships(models: ModelInfo[]): Map<string, LazyRel> {
  const out = new Map<string, LazyRel>();
  if (models.length !== 1) return out;
  for (const r of models[0]!.relationships) if (LAZY.test(r.lazy)) out.set(r.name, r);
  // An association proxy (`template_name = association_proxy("template", "name")`) reads through
  // its relationship: reading it loads that one (a proxy over a collection loads the collection).
  for (const p of models[0]!.proxies ?? []) {
    const r = out.get(p.relationship);
    if (r && !('via' in r) && r.lazy !== 'dynamic' && !out.has(p.name)) out.set(p.name, { ...r, via: p.relationship });
  }
  return out;
}

/** A lazy relationship, or an association proxy standing for the one it reads through (`via`). */
type LazyRel = RelationshipInfo & { via?: string };

interface ExpiredRead {
  node: SyntaxNode;
  /** What reads the row: `` `user.name` ``, `` `UserOut.model_validate(user)` ``, `` `return user` ``. */
  what: string;
  row: string;
  session: string;
  commit: string;
  commitLine: number;
  fnIndex: number;
  /** Expired by a rollback rather than a commit. */
  rollback: boolean;
  /** Read by pydantic (a serialiser, a response model), which reports the failure as its own error. */
  validated: boolean;
}

/** How the failure shows when pydantic reads the row. */
const VALIDATION_NOTE = ' (pydantic v2 catches it and reports a validation error; FastAPI then answers 500 with a `ResponseValidationError`)';

/** Serialisers that read every field of the row they are given. */
const SERIALISE = /^(model_validate|from_orm|parse_obj|validate)$/;

/**
 * Reads of a row the coroutine holds on an `AsyncSession` (a local or `self.session`; loaded by
 * it, or added to it: `user = User(...)`, `session.add(user)`) after the end of a transaction
 * that expired it and runs before the read on every path (see {@link dominatedBlock}): an
 * `await session.commit()` or the end of an `async with session.begin():` block around the
 * binding when `commitsExpire`, and an `await session.rollback()` for a loaded row. The search
 * stops at what may load the row again: a refresh of it, a query of its model on the session, a
 * call handed the row or the session, a call on an object built from the session. A read is an
 * attribute (see {@link firstReadAfter}), a pydantic `model_validate(row)`/`from_orm(row)`, or
 * `return row` from a route with a response model. The first such read per row.
 */
function* expiredReads(model: FileModel, isAsync: ReturnType<typeof asyncHandles>, commitsExpire: boolean, returnsOnly = false): Generator<ExpiredRead> {
  const rows = heldRows(model, isAsync);
  for (const row of rows) {
    const fn = model.functions[row.fnIndex]!;
    if (!fn.body || !bindsOnce(model, row)) continue;
    // Handed back from a session the coroutine opens itself: the caller gets it detached (another error).
    if (returnsOnly && model.withs.some((w) => w.functionIndex === row.fnIndex && w.items.some((i) => i.alias === row.session))) continue;
    const onSession = callsOf(model, row.fnIndex).filter((c) => c.dottedReceiver === row.session && c.node.startIndex > row.from && !insideNestedDef(c.node, fn.node));
    // What ends the transaction, in order: a commit, a rollback (it expires the rows the session
    // loaded; one it was only given to add leaves again as it came: pending objects are expunged
    // with their state), the end of an `async with session.begin():` block around the binding.
    const ends: { node: SyntaxNode; text: string; line: number; rollback: boolean }[] = onSession
      .filter((c) => ((c.method === 'commit' && commitsExpire) || (c.method === 'rollback' && row.loaded)) && c.awaited)
      .map((c) => ({ node: c.node, text: `await ${c.calleeText}()`, line: c.line, rollback: c.method === 'rollback' }));
    const begun = commitsExpire ? beginBlockAround(model, row.session, row.from, row.fnIndex) : null;
    if (begun) ends.push({ node: begun, text: `async with ${row.session}.begin()`, line: begun.startPosition.row + 1, rollback: false });
    ends.sort((x, y) => x.node.endIndex - y.node.endIndex);
    // Objects built from the session (`repo = Repo(session)`): a call on one may load the row again.
    const holders = new Set(namesBuiltWith(model, row.fnIndex, row.session).keys());
    for (const end of ends) {
      // Deleted or expunged before the commit: the row leaves detached with what it had loaded.
      const detaches = new RegExp(`\\b(?:delete|expunge|make_transient)\\(\\s*${row.name}\\s*\\)`);
      if (detaches.test(model.source.slice(row.from, end.node.startIndex))) break;
      const dominated = dominatedBlock(end.node);
      if (!dominated) continue;
      // A refresh of the row, or a query of its entity, may load it again; a flush or another
      // table's query does not. Reads in that call's own arguments still run before it.
      // `refresh(row, ["name"])` loads those attributes only: the others stay expired.
      const partial = new Map<CallInfo, Set<string>>();
      for (const c of onSession) {
        const names = c.method === 'refresh' && c.node.startIndex > end.node.endIndex && callArgs(c.node).positional[0]?.text === row.name ? refreshedNames(c) : null;
        if (names) partial.set(c, names);
      }
      const next = onSession.find((c) => c.node.startIndex > end.node.endIndex && !partial.has(c)
        && (c.method === 'refresh' ? callArgs(c.node).positional[0]?.text === row.name : RELOADS.test(c.method) && c.node.text.includes(row.entity)));
      // A call that hands the row or the session on (`await commit_and_refresh(session, row)`), or
      // a call on an object built from the session (`await repo.get(uid)`), may reload it too.
      const handed = callsOf(model, row.fnIndex).find((c) => c.node.startIndex > end.node.endIndex && !SERIALISE.test(c.method) && !partial.has(c)
        && (holders.has(c.dottedReceiver?.split('.')[0] ?? '')
          || [...callArgs(c.node).positional, ...callArgs(c.node).keywords.values()].some((a) => (a?.type === 'identifier' || a?.type === 'attribute') && (a.text === row.name || a.text === row.session))));
      const limit = Math.min(next ? next.node.endIndex : Infinity, handed ? handed.node.startIndex : Infinity, dominated.block.endIndex);
      const refreshed = [...partial].map(([c, names]) => ({ at: c.node.endIndex, names }));
      const read = firstReadAfter(model, fn, row.name, end.node.endIndex, limit, dominated.skip, returnsOnly || (fn.role === 'handler' && validatesResponse(model, fn)), returnsOnly, refreshed);
      if (!read) continue;
      yield { ...read, row: row.name, session: row.session, commit: end.text, commitLine: end.line, fnIndex: row.fnIndex, rollback: end.rollback };
      break;
    }
  }
}

/** `for r in rows: await s.delete(r)`: the call handed the item of a loop over `list`, in the loop's own block (no branch around it). */
function deletesEachItem(model: FileModel, call: CallInfo, list: string): boolean {
  const loop = model.loops[call.loops[call.loops.length - 1]!];
  const t = loop ? loopTarget(loop) : null;
  if (!loop || !t || unwrap(t.iterable)?.text !== list || unwrap(callArgs(call.node).positional[0] ?? null)?.text !== t.name) return false;
  let stmt: SyntaxNode | null = call.node;
  while (stmt && stmt.parent && stmt.parent.type !== 'block') stmt = stmt.parent;
  return stmt?.parent?.id === loop.node.childForFieldName('body')?.id;
}

interface ExpiredListRead {
  node: SyntaxNode;
  list: string;
  item: string;
  field: string;
  entity: string;
  session: string;
  loadLine: number;
  commit: string;
  commitLine: number;
}

/** `.all()` (or `.unique().all()`) at the end of a result's chain: the rows as a list. */
const ALL_ROWS = /\.(?:unique\(\s*\)\s*\.)?all\(\s*\)\s*$/;

/**
 * Rows of one model an `AsyncSession` loaded into a list, in a coroutine: `rows = (await
 * s.scalars(select(M)...)).all()`, `rows = (await s.execute(select(M))).scalars().all()`, or
 * `result = await s.execute(select(M)...)` then `rows = result.scalars().all()`.
 */
function* loadedLists(model: FileModel, isAsync: ReturnType<typeof asyncHandles>): Generator<{ name: string; entity: string; session: string; from: number; fnIndex: number; line: number; text: string }> {
  for (const a of model.assignments) {
    if (a.functionIndex < 0 || !model.functions[a.functionIndex]!.isAsync || !/^[A-Za-z_]\w*$/.test(a.target) || !a.value || a.fromWith) continue;
    if (!ALL_ROWS.test(a.value.text)) continue;
    // The awaited load: in the value, or in the value of the result name its chain starts from.
    let range: SyntaxNode = a.value;
    if (!a.value.text.includes('await')) {
      const root = /^([A-Za-z_]\w*)\./.exec(a.value.text)?.[1];
      const bound = root ? lastAssignment(model, root, a.functionIndex, a.line) : null;
      if (!bound?.value || bound.functionIndex !== a.functionIndex || bound.value.type !== 'await' || !boundOnce(model, a.functionIndex, root!)) continue;
      range = bound.value;
    }
    for (const call of callsOf(model, a.functionIndex)) {
      if (call.node.startIndex < range.startIndex || call.node.endIndex > range.endIndex || !call.awaited) continue;
      if (!/^(scalars|execute|exec)$/.test(call.method)) continue;
      const first = unwrap(callArgs(call.node).positional[0] ?? null);
      const selected = first ? selectedModel(model, a.functionIndex, call, first) : null;
      const entity = selected?.entity ?? '';
      // `execute(select(M))` gives `Row`s unless the chain takes their scalars.
      if (call.method === 'execute' && !/\.scalars\(\s*\)/.test(a.value.text)) continue;
      if (!entity || !call.dottedReceiver || !SESSION_PATH.test(call.dottedReceiver) || !onAsyncSession(model, call, isAsync)) continue;
      const text = [a.value.text, range === a.value ? '' : range.text, selected?.statement ?? ''].filter(Boolean).join(' ');
      yield { name: a.target, entity, session: call.dottedReceiver, from: a.node.endIndex, fnIndex: a.functionIndex, line: a.line, text };
      break;
    }
  }
}

/**
 * Loops and comprehensions over a list of one model's rows an `AsyncSession` loaded in the
 * coroutine (see {@link loadedLists}; the list bound once, the loop in the coroutine's own code,
 * not a nested def): each item is such a row, and a lazy load on it raises like one on a single row.
 */
function* asyncListLoops(model: FileModel, isAsync: ReturnType<typeof asyncHandles>): Generator<{ loop: LoopInfo; item: string; list: string; entity: string; text: string; fnIndex: number; line: number }> {
  if (!/\.all\(/.test(model.source)) return;
  for (const rows of loadedLists(model, isAsync)) {
    const fn = model.functions[rows.fnIndex]!;
    if (!fn.body || !boundOnce(model, rows.fnIndex, rows.name)) continue;
    for (const loop of model.loops) {
      if (loop.functionIndex !== rows.fnIndex || loop.kind === 'while' || loop.node.startIndex < rows.from || insideNestedDef(loop.node, fn.node)) continue;
      const t = loopTarget(loop);
      const it = t ? unwrap(t.iterable) : null;
      if (!t || it?.type !== 'identifier' || it.text !== rows.name) continue;
      // The item bound by this loop alone (not a name the function binds elsewhere too).
      if (model.assignments.some((a) => a.functionIndex === rows.fnIndex && a.target === t.name)) continue;
      yield { loop, item: t.name, list: rows.name, entity: rows.entity, text: rows.text, fnIndex: rows.fnIndex, line: rows.line };
    }
  }
}

/** Was the item's relationship loaded in the loop before `at`: `await item.awaitable_attrs.rel`, a refresh of the item, `run_sync`? */
function loadedInLoop(model: FileModel, loop: LoopInfo, item: string, rel: string | null, at: number): boolean {
  const between = model.source.slice(loop.iterStart, at);
  return patternFor(`l${item}\0${rel ?? ''}`, () => `\\brefresh\\(\\s*${item}\\b|\\b${item}\\.awaitable_attrs\\b${rel ? `\\.${rel}\\b` : ''}|\\brun_sync\\(`).test(between);
}

/**
 * The first attribute read on the items of a list of an `AsyncSession`'s rows (see
 * {@link loadedLists}) in a loop or comprehension over the list after an awaited commit of that
 * session that runs on every path to it. Not after a query of the model on the session, a refresh
 * or a call handed the list or the session (any may load the rows again), nor for a list bound
 * more than once.
 */
function* expiredListReads(model: FileModel, isAsync: ReturnType<typeof asyncHandles>): Generator<ExpiredListRead> {
  if (!/\.all\(/.test(model.source)) return;
  for (const rows of loadedLists(model, isAsync)) {
    const fn = model.functions[rows.fnIndex]!;
    if (!fn.body || !boundOnce(model, rows.fnIndex, rows.name)) continue;
    const calls = callsOf(model, rows.fnIndex).filter((c) => c.node.startIndex > rows.from && !insideNestedDef(c.node, fn.node));
    const commits = calls.filter((c) => c.method === 'commit' && c.awaited && c.dottedReceiver === rows.session);
    // Rows taken out of the session before the commit leave with their state: every item deleted
    // (`for r in rows: await s.delete(r)`, nothing but that loop's own body deciding), or expunged.
    const detached = (before: number) => calls.some((c) => c.node.startIndex < before && c.dottedReceiver === rows.session && (c.method === 'expunge_all'
      || ((c.method === 'delete' || c.method === 'expunge') && c.loops.length > 0 && deletesEachItem(model, c, rows.name))));
    for (const commit of commits) {
      if (detached(commit.node.startIndex)) break;
      const dominated = dominatedBlock(commit.node);
      if (!dominated) continue;
      const after = calls.filter((c) => c.node.startIndex > commit.node.endIndex);
      const reload = after.find((c) => (c.dottedReceiver === rows.session && (RELOADS.test(c.method) || c.method === 'refresh'))
        || [...callArgs(c.node).positional, ...callArgs(c.node).keywords.values()].some((x) => x?.text === rows.name || x?.text === rows.session));
      const limit = Math.min(reload ? reload.node.startIndex : Infinity, dominated.block.endIndex);
      let found: ExpiredListRead | null = null;
      for (const loop of model.loops) {
        if (loop.functionIndex !== rows.fnIndex || loop.kind === 'while' || loop.node.startIndex < commit.node.endIndex || loop.node.startIndex >= limit) continue;
        if (dominated.skip.some(([x, y]) => loop.node.startIndex >= x && loop.node.startIndex < y)) continue;
        const t = loopTarget(loop);
        const it = t ? unwrap(t.iterable) : null;
        if (!t || it?.type !== 'identifier' || it.text !== rows.name) continue;
        for (const attr of loop.node.descendantsOfType('attribute')) {
          if (attr.startIndex < loop.iterStart || attr.startIndex >= loop.iterEnd || !model.source.startsWith(t.name, attr.startIndex) || insideNestedDef(attr, fn.node)) continue;
          const obj = attr.childForFieldName('object');
          const field = attr.childForFieldName('attribute')?.text ?? '';
          if (obj?.type !== 'identifier' || obj.text !== t.name || !field || field.startsWith('__') || field === 'awaitable_attrs' || attr.startIndex >= limit) continue;
          const parent = attr.parent;
          if (parent?.type === 'call' && parent.childForFieldName('function')?.id === attr.id) continue;
          if (parent?.type === 'assignment' && parent.childForFieldName('left')?.id === attr.id) continue;
          if (!found || attr.startIndex < found.node.startIndex) {
            found = { node: attr, list: rows.name, item: t.name, field, entity: rows.entity, session: rows.session, loadLine: rows.line, commit: `await ${commit.calleeText}()`, commitLine: commit.line };
          }
        }
        if (found) break;
      }
      if (found) {
        yield found;
        break;
      }
    }
  }
}

/**
 * A coroutine that returns a row its own commit (or rollback) expired (`session.add(u); await
 * session.commit(); return u`): `what` = `<commit text>|<line>` of what expired it.
 */
export const RETURNS_EXPIRED_ROW = 'returns_expired_row';
/**
 * A call whose awaited result the coroutine reads (`u = await create_user(...)` then `u.id`, or a
 * route's `return u` / `return await create_user(...)` into its response model): `what` is JSON
 * `{ read: [line, column, endColumn, text], validated }` of the first read.
 */
export const EXPIRED_ROW_CALL = 'expired_row_call';
const EXPIRED_ROW_CALLS: ReadonlySet<string> = new Set([EXPIRED_ROW_CALL]);

/** The file half of PA111 through calls after a commit: coroutines returning expired rows, and reads of what calls return. */
export function collectExpiredRowFacts(model: FileModel, project?: ProjectContext): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (!project || model.isTestFile || !model.source.includes('await')) return out;
  if (model.modelClasses.size && /\b(commit|rollback|begin)\s*\(/.test(model.source)) {
    const isAsync = asyncHandles(model, project);
    for (const r of expiredReads(model, isAsync, expiringAsyncFactory(project, model.path) !== null, true)) {
      out[r.fnIndex]!.push({ kind: RETURNS_EXPIRED_ROW, what: `${r.commit}|${r.commitLine}`, line: model.functions[r.fnIndex]!.startLine, column: 1 });
    }
  }
  if (model.modelClasses.size && expiringAsyncFactory(project, model.path) !== null) {
    for (const r of handedCommitReads(model, asyncHandles(model, project))) {
      out[r.fnIndex]!.push({ kind: HANDED_COMMIT_READ, what: JSON.stringify({ read: r.read, validated: r.validated, row: r.row, handed: r.handed }), line: r.call.line, column: r.call.column });
    }
  }
  for (const fn of model.functions) {
    if (!fn.isAsync || !fn.body) continue;
    const validated = fn.role === 'handler' && validatesResponse(model, fn);
    for (const call of callsOf(model, fn.index)) {
      if (!call.awaited || call.functionIndex !== fn.index || insideNestedDef(call.node, fn.node)) continue;
      const awaited = call.node.parent;
      const holder = awaited?.parent;
      // `return await create_user(...)` from a route with a response model.
      if (validated && holder?.type === 'return_statement') {
        out[fn.index]!.push({ kind: EXPIRED_ROW_CALL, what: JSON.stringify({ read: [holder.startPosition.row + 1, holder.startPosition.column + 1, holder.endPosition.column + 1, `\`return await ${call.calleeText}(...)\` hands the row \`${call.calleeText}()\` returns to the response model, which reads its fields`], validated: true }), line: call.line, column: call.column });
        continue;
      }
      // `u = await create_user(...)`, `u` bound once: its first read after the call.
      if (holder?.type !== 'assignment' || holder.childForFieldName('right')?.id !== awaited?.id) continue;
      const name = holder.childForFieldName('left')?.text ?? '';
      if (!/^[A-Za-z_]\w*$/.test(name) || !boundOnce(model, fn.index, name)) continue;
      const read = firstReadAfter(model, fn, name, holder.endIndex, fn.body.endIndex, [], validated);
      if (!read) continue;
      // Reloaded on the way (a refresh, `awaitable_attrs`) or handed on before the read: not known.
      const between = model.source.slice(holder.endIndex, read.node.startIndex);
      if (new RegExp(`\\brefresh\\(\\s*${name}\\b|\\b${name}\\.awaitable_attrs\\b|[(,]\\s*${name}\\s*[,)]`).test(between)) continue;
      // A query on a session between them may return the row and reload it (the caller cannot
      // tell its model here): given up.
      if (callsOf(model, fn.index).some((c) => c.awaited && c.node.startIndex >= holder.endIndex && c.node.startIndex < read.node.startIndex && RELOADS.test(c.method) && c.hasReceiver)) continue;
      const end = read.node.startPosition.row === read.node.endPosition.row ? read.node.endPosition.column + 1 : read.node.startPosition.column + 2;
      out[fn.index]!.push({ kind: EXPIRED_ROW_CALL, what: JSON.stringify({ read: [read.node.startPosition.row + 1, read.node.startPosition.column + 1, end, read.what], validated: read.validated }), line: call.line, column: call.column });
    }
  }
  return out;
}

/**
 * Site fact at an awaited call handed the session a coroutine's row is on (`await save(session)`,
 * `await crud.update(session, post)`), when a read of the row follows on every path with nothing
 * that may load it again in between (`what` = JSON {read, validated, row}): whether the callee
 * commits last, expiring the row, is for the repo phase.
 */
export const HANDED_COMMIT_READ = 'handed_commit_read';
const HANDED_COMMIT_READS: ReadonlySet<string> = new Set([HANDED_COMMIT_READ]);

/** Candidate reads after calls handed the session (see {@link HANDED_COMMIT_READ}). */
function* handedCommitReads(model: FileModel, isAsync: ReturnType<typeof asyncHandles>): Generator<{ fnIndex: number; call: CallInfo; row: string; handed: boolean; read: [number, number, number, string]; validated: boolean }> {
  const rows = heldRows(model, isAsync);
  for (const r of rows) {
    const fn = model.functions[r.fnIndex]!;
    if (!fn.body || !bindsOnce(model, r)) continue;
    const calls = callsOf(model, r.fnIndex).filter((c) => c.node.startIndex > r.from && c.functionIndex === r.fnIndex && !insideNestedDef(c.node, fn.node));
    const holders = new Set(namesBuiltWith(model, r.fnIndex, r.session).keys());
    const args = (c: CallInfo) => [...callArgs(c.node).positional, ...callArgs(c.node).keywords.values()];
    // Awaited calls handed the session (not its own methods, nor an object built from it): each
    // may commit it; the repo phase asks, per call, for the reads after it and before the next.
    const candidates = calls.filter((c) => c.awaited && c.dottedReceiver !== r.session && !holders.has(c.dottedReceiver?.split('.')[0] ?? '') && args(c).some((a) => a?.text === r.session));
    for (const [i, call] of candidates.entries()) {
      // A commit of the session's own before it: the file's finding (expiredReads) covers that span.
      if (calls.some((c) => c.node.startIndex < call.node.startIndex && c.dottedReceiver === r.session && /^(commit|rollback)$/.test(c.method))) break;
      const dominated = dominatedBlock(call.node);
      if (!dominated) continue;
      const following = candidates[i + 1];
      const next = calls.find((c) => c.node.startIndex > call.node.endIndex && ((c.dottedReceiver === r.session && (c.method === 'refresh' || (RELOADS.test(c.method) && c.node.text.includes(r.entity))))
        || holders.has(c.dottedReceiver?.split('.')[0] ?? '')));
      const limit = Math.min(next ? next.node.startIndex : Infinity, following ? following.node.startIndex : Infinity, dominated.block.endIndex);
      const read = firstReadAfter(model, fn, r.name, call.node.endIndex, limit, dominated.skip, fn.role === 'handler' && validatesResponse(model, fn));
      if (!read) continue;
      const end = read.node.startPosition.row === read.node.endPosition.row ? read.node.endPosition.column + 1 : read.node.startPosition.column + 2;
      const handed = args(call).some((a) => a?.text === r.name);
      yield { fnIndex: r.fnIndex, call, row: r.name, handed, read: [read.node.startPosition.row + 1, read.node.startPosition.column + 1, end, read.what], validated: read.validated };
    }
  }
}

/**
 * PA111 through a call: the row read after a call handed the session whose callee commits last
 * (an unconditional commit after its last statement, no refresh after it): the commit expired it.
 */
function reportHandedCommits(ctx: RepoRuleContext, graph: CallGraph): void {
  const always = alwaysReaches(graph, COMMIT_EFFECT);
  for (const { file, fn, site, call, to } of siteCalls(graph, HANDED_COMMIT_READS)) {
    if (call.receiverType === UNTYPED) continue;
    const { read, validated, row, handed } = JSON.parse(site.what) as { read: [number, number, number, string]; validated: boolean; row: string; handed: boolean };
    // Its last step ends the transaction; or it always commits and is not handed the row (a
    // refresh after its commit reloads what it was given, not this row).
    if (sessionEnd(graph, to, 0, call) !== 'releases' && (handed || !always(to))) continue;
    const [line, column, endColumn, what] = read;
    const callee = graph.function(to);
    ctx.report({
      path: file.path,
      location: { line, column, endLine: line, endColumn },
      message: `${what}, and \`${call.calleeText}()\` (line ${call.line}) ends the transaction of the session it is handed (\`${callee.qualifiedName}\` commits or rolls back), which expired \`${row}\`: reading it reloads the row, and that implicit IO fails with \`MissingGreenlet\`${validated ? VALIDATION_NOTE : ''}`,
      severity: 'high',
      function: fn.name,
      recommendation: `read what you need before the call, \`await session.refresh(${row})\` after it, or \`expire_on_commit=False\` on the factory`,
      chain: [{ path: file.path, line: call.line, column: call.column, function: fn.name, call: call.calleeText }],
    });
  }
}

/** PA111 through calls: a read, in the caller, of the row a coroutine returned after its commit expired it. */
function reportExpiredReturns(ctx: RepoRuleContext, graph: CallGraph): void {
  for (const { file, fn, site, call, to } of siteCalls(graph, EXPIRED_ROW_CALLS)) {
    if (call.receiverType === UNTYPED) continue;
    const fact = graph.ownEffects(to).find((e) => e.kind === RETURNS_EXPIRED_ROW);
    if (!fact) continue;
    const [commit = '', commitLine = ''] = fact.what.split('|');
    const { read, validated } = JSON.parse(site.what) as { read: [number, number, number, string]; validated: boolean };
    const [line, column, endColumn, what] = read;
    const callee = graph.function(to);
    ctx.report({
      path: file.path,
      location: { line, column, endLine: line, endColumn },
      message: `${what}${what.startsWith('`return await ') ? ';' : ` (the row \`${call.calleeText}()\` returns), and`} \`${commit}\` (line ${commitLine} of ${graph.fileOf(to).path}, in \`${callee.qualifiedName}\`) expired it before it was returned: reading it reloads the row, and that implicit IO fails with \`MissingGreenlet\`${validated ? VALIDATION_NOTE : ''}`,
      severity: 'high',
      function: fn.name,
      recommendation: `refresh the row before \`${callee.qualifiedName}\` returns it (\`await session.refresh(row)\`), or \`expire_on_commit=False\` on the factory`,
      chain: [{ path: file.path, line: call.line, column: call.column, function: fn.name, call: call.calleeText }],
    });
  }
}

/** A session as the code names it: a local or parameter, or an attribute of `self` (a repository's `self.session`). */
const SESSION_PATH = /^(?:self\.)?[A-Za-z_]\w*$/;

/**
 * The `async with <session>.begin():` statement of the function whose body holds `at` (the row's
 * binding): the transaction it opens commits when the block ends.
 */
function beginBlockAround(model: FileModel, session: string, at: number, fnIndex: number): SyntaxNode | null {
  const begin = `${session}.begin()`;
  let best: SyntaxNode | null = null;
  for (const w of model.withs) {
    if (w.functionIndex !== fnIndex || !w.isAsync || at < w.bodyStart || at > w.bodyEnd) continue;
    if (!w.items.some((i) => i.value.text.replace(/\s+/g, '') === begin)) continue;
    // `async with Maker() as s, s.begin():` also closes the session: the row leaves detached (another error).
    if (w.items.some((i) => i.alias === session)) continue;
    // The innermost such block around the binding.
    if (!best || w.node.startIndex > best.startIndex) best = w.node;
  }
  return best;
}

/**
 * The attributes a `refresh(row, ["a", "b"])` (or `attribute_names=[...]`) loads, when it names
 * them with a literal list; null for a whole refresh or names the code cannot read.
 */
function refreshedNames(call: CallInfo): Set<string> | null {
  const args = callArgs(call.node);
  const list = args.positional[1] ?? args.keywords.get('attribute_names');
  if (!list || (list.type !== 'list' && list.type !== 'tuple')) return null;
  const names = list.namedChildren.map((n) => (n.type === 'string' ? /^["'](\w+)["']$/.exec(n.text)?.[1] : undefined));
  return names.every((n) => n !== undefined) ? new Set(names as string[]) : null;
}

/** Session methods that may return a row it holds, loading it afresh. */
const RELOADS = /^(get|get_one|execute|scalars|scalar|exec|merge|stream|stream_scalars)$/;

/**
 * The block whose statements all run after the statement holding `node` completed: its own
 * block, or, when it is the last word of a `try` body whose every handler leaves (`raise`,
 * `return`), the block after that `try` too (`try: await s.commit() except E: raise ...`, then
 * the read). Null when the statement is not in a block.
 */
function dominatedBlock(node: SyntaxNode): { block: SyntaxNode; skip: [number, number][] } | null {
  let stmt: SyntaxNode | null = node;
  while (stmt && stmt.parent && stmt.parent.type !== 'block') stmt = stmt.parent;
  let block = stmt?.parent ?? null;
  // The handlers of a `try` passed over run when the commit failed: not after it.
  const skip: [number, number][] = [];
  while (block && stmt) {
    const owner = block.parent;
    if (owner?.type !== 'try_statement' || owner.childForFieldName('body')?.id !== block.id) break;
    const handlers = owner.namedChildren.filter((c) => c.type === 'except_clause' || c.type === 'except_group_clause');
    if (!handlers.length || owner.namedChildren.some((c) => c.type === 'else_clause')) break;
    const leaves = handlers.every((h) => {
      const body = h.namedChildren.filter((c) => c.type === 'block').pop();
      const last = body?.namedChildren.filter((c) => c.type !== 'comment').pop();
      return last?.type === 'raise_statement' || last?.type === 'return_statement';
    });
    if (!leaves || !owner.parent || owner.parent.type !== 'block') break;
    for (const h of handlers) skip.push([h.startIndex, h.endIndex]);
    stmt = owner;
    block = owner.parent;
  }
  return block ? { block, skip } : null;
}

/**
 * Does the route validate what it returns against a pydantic model: `response_model=X`, or a
 * return annotation naming a class (`-> Out`, `-> Out | None`, `-> list[Out]`), from which
 * FastAPI builds the response model? Not when that class is one of the project's ORM models (a
 * SQLModel table class is returned as it is and encoded from its `__dict__`), and not without one:
 * FastAPI then encodes an ORM object with `vars()`, which loads no expired attribute.
 */
function validatesResponse(model: FileModel, fn: FileModel['functions'][number]): boolean {
  const text = declaredResponseType(fn) ?? '';
  const m = /^(?:(?:list|List|Sequence|Optional)\[)?([A-Za-z_][\w.]*)\]?(?:\|None)?$/.exec(text);
  const name = m?.[1]?.split('.').pop() ?? '';
  return /^[A-Z]/.test(name) && !/^(Any|None|Response|JSONResponse|HTMLResponse|StreamingResponse|RedirectResponse|PlainTextResponse|ORJSONResponse)$/.test(name) && !model.modelClasses.has(name);
}

/**
 * The first read of `name` in `[from, to)` in the function's own code (not a nested def or a
 * lambda, which run when called): an attribute (not one the code set again after the commit,
 * which is in the row's state), a serialiser given it, or (`handler`) a `return` of it. With
 * `returnsOnly`, the `return` of it when that comes first (the row handed back to the caller).
 */
function firstReadAfter(
  model: FileModel, fn: FileModel['functions'][number], name: string, from: number, to: number, skip: readonly [number, number][], handler: boolean,
  returnsOnly = false, refreshed: readonly { at: number; names: ReadonlySet<string> }[] = [],
): { node: SyntaxNode; what: string; validated: boolean } | null {
  const body = fn.body!;
  let best: { node: SyntaxNode; what: string; validated: boolean } | null = null;
  const own = (node: SyntaxNode) => !insideNestedDef(node, fn.node);
  const consider = (node: SyntaxNode, what: string, validated: boolean) => {
    if (node.startIndex < from || node.startIndex >= to || !own(node) || skip.some(([a, b]) => node.startIndex >= a && node.startIndex < b)) return;
    if (!best || node.startIndex < best.node.startIndex) best = { node, what, validated };
  };
  const setAgain = new Set<string>();
  for (const attr of body.descendantsOfType('attribute')) {
    if (attr.startIndex < from || attr.startIndex >= to || !model.source.startsWith(name, attr.startIndex)) continue;
    const obj = attr.childForFieldName('object');
    const field = attr.childForFieldName('attribute')?.text ?? '';
    if (obj?.type !== 'identifier' || obj.text !== name || field === 'awaitable_attrs' || field.startsWith('__')) continue;
    const parent = attr.parent;
    // A method call on the row (`user.set_password(p)`) reads nothing here; an assignment puts the
    // value back in the row's state (`user.name = n` then `user.name` loads nothing).
    if (parent?.type === 'call' && parent.childForFieldName('function')?.id === attr.id) continue;
    if (parent?.type === 'assignment' && parent.childForFieldName('left')?.id === attr.id) {
      setAgain.add(field);
      continue;
    }
    if (setAgain.has(field) || refreshed.some((r) => r.at <= attr.startIndex && r.names.has(field))) continue;
    consider(attr, `\`${name}.${field}\` is read`, false);
  }
  for (const call of body.descendantsOfType('call')) {
    const f = call.childForFieldName('function');
    const method = f?.type === 'attribute' ? f.childForFieldName('attribute')?.text ?? '' : '';
    if (!SERIALISE.test(method)) continue;
    const args = callArgs(call).positional;
    if (args.length === 1 && args[0]!.type === 'identifier' && args[0]!.text === name) consider(call, `\`${f!.text}(${name})\` reads every field of \`${name}\``, true);
  }
  if (handler) {
    for (const ret of body.descendantsOfType('return_statement')) {
      const v = ret.namedChild(0);
      if (v?.type === 'identifier' && v.text === name) consider(ret, `\`return ${name}\` hands \`${name}\` to the response model, which reads its fields`, true);
    }
  }
  // Asked for the row handed back to the caller: not when the function itself reads it first (that read fails first).
  if (returnsOnly && best && (best as { node: SyntaxNode }).node.type !== 'return_statement') return null;
  return best;
}


/** Single rows an `AsyncSession` loaded into a name, in coroutines. */
function* loadedRows(model: FileModel, isAsync: ReturnType<typeof asyncHandles>): Generator<LoadedRow> {
  for (const a of model.assignments) {
    if (a.functionIndex < 0 || !model.functions[a.functionIndex]!.isAsync || !/^[A-Za-z_]\w*$/.test(a.target) || !a.value) continue;
    const value = a.value;
    if (!value.text.includes('await')) continue;
    const load = loadingCall(model, a.functionIndex, value);
    if (!load) continue;
    if (!onAsyncSession(model, load.call, isAsync)) continue;
    yield { name: a.target, entity: load.entity, text: load.statement ? `${value.text} ${load.statement}` : value.text, from: a.node.endIndex, fnIndex: a.functionIndex, session: load.call.dottedReceiver };
  }
}

/** Is the call's receiver an `AsyncSession`: a name bound to one, or a typed path (`self.session`)? */
function onAsyncSession(model: FileModel, call: CallInfo, isAsync: ReturnType<typeof asyncHandles>): boolean {
  const receiver = call.dottedReceiver;
  if (!receiver) return false;
  if (!receiver.includes('.')) return isAsync(receiver, call.functionIndex, call.line)?.kind === 'AsyncSession';
  const t = call.receiver ? typeString(model, call.receiver, call.functionIndex, call.line) : null;
  return !!t && /^@?(sqlalchemy\.ext\.asyncio(\.session)?|sqlmodel\.ext\.asyncio\.session)\.AsyncSession$/.test(t);
}

/** The awaited session call inside `value` that loads one row, and the row's entity. */
function loadingCall(model: FileModel, fnIndex: number, value: SyntaxNode): { call: CallInfo; entity: string; statement?: string } | null {
  const single = ONE_ROW.test(value.text);
  for (const call of callsOf(model, fnIndex)) {
    if (call.node.startIndex < value.startIndex || call.node.endIndex > value.endIndex || !call.awaited) continue;
    const first = unwrap(callArgs(call.node).positional[0] ?? null);
    if (!first) continue;
    if (call.method === 'get' && !single) {
      const entity = first.text.split('.').pop() ?? '';
      if (model.modelClasses.has(entity)) return { call, entity };
    }
    // `execute()` returns rows: only its scalar forms give the entity (`.scalar_one()`).
    const entityRow = call.method === 'execute' ? /\.(scalar_one|scalar_one_or_none|scalar)\s*\(\s*\)\s*$|\.scalars\(\s*\)\s*\.\s*(first|one|one_or_none)\s*\(\s*\)\s*$/.test(value.text) : single;
    if (((call.method === 'scalars' || call.method === 'execute' || call.method === 'exec') && entityRow) || call.method === 'scalar') {
      const st = selectedModel(model, fnIndex, call, first);
      if (st) return st.statement ? { call, entity: st.entity, statement: st.statement } : { call, entity: st.entity };
    }
  }
  return null;
}

/**
 * The one model a statement call's argument selects (`select(Order)`, `select(cls)` in a model's
 * classmethod), also through a name bound to the statement in the function (`stmt =
 * select(cls).where(...)`; its text is `statement`, for the loader options it carries).
 */
function selectedModel(model: FileModel, fnIndex: number, call: CallInfo, arg: SyntaxNode): { entity: string; statement?: string } | null {
  let first = arg;
  let statement: string | undefined;
  if (first.type === 'identifier') {
    const bound = lastAssignment(model, first.text, fnIndex, call.line);
    const held = bound && bound.functionIndex === fnIndex && !bound.fromWith ? unwrap(bound.value) : null;
    if (held?.type === 'call') {
      first = held;
      statement = held.text;
    }
  }
  const m = /^select\(\s*([\w.]+)\s*\)/.exec(first.text.replace(/\s+/g, ''));
  let entity = m ? m[1]!.split('.').pop()! : '';
  const fn = model.functions[fnIndex];
  if (entity === 'cls' && fn?.className && model.modelClasses.has(fn.className)) entity = fn.className;
  if (!model.modelClasses.has(entity)) return null;
  return statement ? { entity, statement } : { entity };
}
