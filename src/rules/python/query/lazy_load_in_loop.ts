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
 * Guards: the rows must come from a query whose single entity is a model found in the project
 * (`select(User)`, `session.query(User)`, `User.query`): in the same function, or, followed
 * through the classes of the same file (`selfRows.ts`), held in an instance attribute that
 * another method (a base class's setup method) assigned (`self.items = q.all()`; every
 * assignment in the class, its bases and subclasses in the file must be such rows), returned by
 * a property or method of the class, or by a function of the file. `.options(*self.opts)` is
 * read from the class attribute the iterating class (and its subclasses) give `opts`; options
 * that cannot be read silence the loop. A read that the loop's end follows unconditionally
 * (`owner = row.owner; break`, or inside the branch that returns) is not per row; a find-first
 * search that reads it before a conditional `return`/`break` (`if row.lines: return row`) loads it
 * on every row until the hit: `low` (the hit usually comes early). Relationships declared eager
 * (`lazy="selectin"/"joined"/"subquery"/"raise"/…`) or loaded by an option never count. A
 * many-to-one (`Mapped["User"]`, `uselist=False`, a `<name>_id` foreign key beside it) is
 * medium: its lazy load is served from the identity map for related rows already loaded; silent
 * when the query picks its rows by target objects the code holds (`Child.parent_id.in_([p.id for
 * p in parents])`, `Child.parent == parent`) or pins the foreign key to one value
 * (`Child.parent_id == holder.parent_id`), on every path to the loop: a criterion a branch adds
 * (`if pid is not None: q = q.where(Child.parent_id == pid)`) pins nothing on the path that skips
 * it, so the load stays reported (`branchOnlyRefinements`). Options and criteria the chain takes from a local name
 * (`.options(*opts)`, `.options(strategy)`, `.filter(*criteria)`) are read from that name's
 * assignments and appends in the function that builds the query.
 *
 * Deferred columns count as well: a column the model declares deferred (`deferred(Column(...))`,
 * `mapped_column(..., deferred=True)`, `column_property(..., deferred=True)`, in the class body or
 * a base's) or the query defers (`defer(Model.col)`), read per row, loads with one SELECT per row
 * unless the query undefers it (`undefer`, `undefer_group` of its group, `load_only` naming it);
 * `deferred_raiseload=True` raises instead. A `load_only(A.x, ...)` of the statement defers every
 * other column of its rows but the primary key and the foreign keys (`columnOptions.ts`; not with
 * `raiseload=True`); chained on a many-to-one's eager loader (`selectinload(A.b).load_only(B.x)`,
 * `.defer(B.y)`) it narrows the related rows: `row.b.y` loads per related row (`medium`).
 * File phase only (not the repo-phase paths below).
 *
 * An association proxy (`name = association_proxy("rel", "attr")`, discovery's `ModelInfo.proxies`)
 * is read as the relationship it goes through (`lazyRelationships` lists it with `via`): loader
 * options and criteria are tested against that relationship's name (`loadedByQuery`).
 *
 * A relationship declared `lazy="immediate"` loads with its own SELECT for each row as the rows
 * load, read or not: a loop over the rows of a query of the function reports it at the query,
 * unless a loader option names it (`selectinload`, `noload`, `lazyload`, …).
 *
 * Also the items of a row's collection relationship (`for c in parent.children: c.owner`), when
 * `parent` is a row of a known model (annotated with it, or loaded by a query of the function) and
 * `children` a collection relationship of that model: the items are rows of its target, and the
 * query that loaded `parent` (if any) is where an eager option for `children` would be.
 * Relationships come from class bodies, `registry.map_imperatively(...)`/`mapper(...)`
 * `properties`, and `backref=` on the other side (discovery).
 *
 * Rows a helper of the file returns (`rows = pick(parent, ids)`), when its returns are a query of
 * one model (at least one) and otherwise the items of a collection relationship that points at
 * that model wherever a relationship of that name is declared (`[c for c in parent.children if
 * …]`): each branch's rows are that model's.
 *
 * Repo phase: `for c in self.event.children:` in a method whose class (or a base class, maybe of
 * another module) sets `self.event` to one row of a model (`Event.get(id)`,
 * `Event.query.filter_by(...).first()`, an annotation `event: Event`): the items are rows of the
 * collection's target. A path with loader options (`.options(...)`: which is not recorded) is
 * left alone, and so is a value that is no model's row. Likewise `for r in self.jobs:` where a
 * base class of another module sets `self.jobs = Job.query.filter(...).all()` (a Flask-SQLAlchemy
 * query chain without options): its collections only, as the criteria (which may pin a
 * many-to-one to rows already held) are not in the type path; when the setter's own file reads
 * its query (`held_rows`: every assignment in the class's methods, with the options the class
 * gives `.options(*self.opts)`), that text decides instead, many-to-ones included, provided every
 * class before the setter in the MRO is in the loop's file and binds none of those option names.
 * The same holds for a helper of the file that a method passes `self.jobs` to
 * (`def tag_all(rows): for r in rows: r.tags` with `tag_all(self.jobs)`). And `for r in fetch_jobs(...)`
 * (or `rows = fetch_jobs(...)`), `fetch_jobs` a function of another module whose every return is
 * a query of one model: its text (options, criteria) travels in the summary.
 */
import { sessionsExpireOnCommit } from '../../../semantic/sessionExpiry.js';
import type { ModelInfo, ProjectContext } from '../../../discovery/context.js';
import { modelsNamed, nearestModels, modelsNamedInSummary, offlineFile, projectIndex } from '../../projectFacts.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import type { Effect, SummaryCall } from '../../../analysis/summary.js';
import { flagAtCall } from '../../../semantic/guards.js';
import { asyncOnlyOrm } from '../../../semantic/asyncSessions.js';
import { callGraphOf, ownSites, type CallGraph, type FnRef } from '../../../analysis/callgraph.js';
import { UNTYPED as UNTYPED_RECEIVER } from '../../../analysis/objects.js';
import { classMembers, groupedBy, ITEM_ARG_CALL, PARAM_LOOP_READS, PARAM_READS, ROW_CALL, ROW_QUERY, ROWS_ARG_CALL, rowReadsAt } from './rowCalls.js';
import { siteCalls } from '../../../analysis/callgraph.js';
import { FLUSH_EFFECT, WRITE_EFFECT } from './dbCalls.js';
import type { ClassRef } from '../../../analysis/types.js';
import type { SyntaxNode } from '../../../parse/parser.js';
import { assignmentsTo, callAt, valueTypeOf, type AssignmentInfo, type FileModel, type LoopInfo } from '../../../semantic/model.js';
import { classOfFunction, fileClasses } from '../../../semantic/classes.js';
import { classifyDbCall, dynamicRelationChain, loadedModel, rowsSource, selfMember, type RowsSource, type SelfRows } from './dbCalls.js';
import { fetchedRow } from '../../../semantic/valueTypes.js';
import { memoDecoratorOf } from '../../../semantic/memo.js';
import { returnsOf, selfOptionsText, selfRowsResolver } from './selfRows.js';
import { itemAttributeReads, lastAssignment, loopTarget, unwrap } from './semantics.js';
import {
  branchOnlyRefinements, deferredColumns, dynamicTarget, loadedByQueryOnEveryPath, withoutFragments, eagerlyLoaded, heldText, LAZY, loadedByQuery, loadedRelation, relationLabel, lazyRelationships, leadsBackToOwner, MAX_ROWS_TEXT, oneRowNote, RETURNS_PAGE, RETURNS_ROWS, rowsCap, rowsExpression, sameRows, SMALL_CAP, type LazyRelationship,
} from './loadedRelations.js';
import { reportSerializedRows } from './serializedRows.js';
import { pathUnloadedColumns, rootUnloadedColumns } from './columnOptions.js';
import { reportReturnedRowCollections } from './returnedRowCollections.js';
import { loopWorkflow, workflowDoes } from './loops.js';
import { commitsPerIteration, iterationWriter, workflowAction } from './dbCalls.js';
export { RETURNS_ROWS } from './loadedRelations.js';
export { collectSerializedRows, SERIALIZED_CALL, SERIALIZED_ROWS } from './serializedRows.js';

const lazyNamesMemo = new WeakMap<ProjectContext, Set<string>>();

/** The names of the project's lazy relationships and deferred columns (any model): once per worker. */
function lazyNames(project: ProjectContext): Set<string> {
  let out = lazyNamesMemo.get(project);
  if (!out) {
    out = new Set(project.models.flatMap((m) => [
      ...m.relationships.filter((r) => LAZY.has(r.lazy)).map((r) => r.name),
      ...(m.proxies ?? []).map((p) => p.name),
      ...(m.deferred ?? []).map((d) => d.split(':')[0]!),
    ]));
    lazyNamesMemo.set(project, out);
  }
  return out;
}

/** A query's `defer(...)` option (not `undefer(...)`), or a `load_only(...)`, which defers every column it does not name. */
const DEFER_CALL = /(?<![\w])(?:defer|load_only)\(/;

const deferredMemo = new WeakMap<ProjectContext, boolean>();

/** Does any model of the project declare a deferred column? Once per worker. */
function anyDeferred(project: ProjectContext): boolean {
  let out = deferredMemo.get(project);
  if (out === undefined) deferredMemo.set(project, (out = project.models.some((m) => (m.deferred?.length ?? 0) > 0)));
  return out;
}

const immediateMemo = new WeakMap<ProjectContext, boolean>();

/** Does any model of the project declare a `lazy="immediate"` relationship? Once per worker. */
function anyImmediate(project: ProjectContext): boolean {
  let out = immediateMemo.get(project);
  if (out === undefined) immediateMemo.set(project, (out = project.models.some((m) => m.relationships.some((r) => r.lazy === 'immediate'))));
  return out;
}

/**
 * The `lazy="immediate"` relationships of every model of the entity's name that the query does
 * not load another way (a loader option naming it, or `"*"`), by name, with whether each is one
 * row (a many-to-one, which the identity map may answer).
 */
function immediateRelationships(candidates: ModelInfo[], text: string): Map<string, boolean> {
  const out = new Map<string, boolean>();
  if (!candidates.length) return out;
  for (const rel of candidates[0]!.relationships) {
    if (rel.lazy !== 'immediate' || !candidates.every((m) => m.relationships.some((r) => r.name === rel.name && r.lazy === 'immediate'))) continue;
    // `defaultload(X.rel)` only reaches through the relationship to options below it: `rel` keeps
    // its own `immediate` loading (`eagerlyLoaded` reads only the options that load it).
    if (eagerlyLoaded(text, rel.name) || new RegExp(String.raw`\blazyload\([^()]*(?:\.${rel.name}\b|["']${rel.name}["'])`).test(text)) continue;
    out.set(rel.name, candidates.every((m) => m.relationships.some((r) => r.name === rel.name && r.scalar && !r.reverse)));
  }
  return out;
}

/** Does `text` read `<item>.<name>` for one of `names`? */
function readsName(text: string, item: string, names: Set<string>): boolean {
  const needle = `${item}.`;
  for (let i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + 1)) {
    if (i > 0 && /[\w.]/.test(text[i - 1]!)) continue;
    const m = /^[A-Za-z_]\w*/.exec(text.slice(i + needle.length, i + needle.length + 64));
    if (m && names.has(m[0])) return true;
  }
  return false;
}

/**
 * `for c in parent.children:` where `parent` is a row of a known model (a parameter or name
 * annotated with it, or one loaded by a query of the function) and `children` is a collection
 * relationship of that model: the items are rows of the relationship's target. `text` is the
 * query that loaded the parent, when there is one, to look for loader options
 * (`selectinload(Parent.children).joinedload(Child.owner)`).
 */
function collectionRows(model: FileModel, project: ProjectContext, rows: SyntaxNode, fnIndex: number, line: number): { entity: string; owner: string; text: string; nested?: true; unseen?: true } | null {
  if (rows.type !== 'attribute' || fnIndex < 0) return null;
  const recv = rows.childForFieldName('object');
  const coll = rows.childForFieldName('attribute')?.text;
  if (recv?.type !== 'identifier' || recv.text === 'self' || !coll) return null;
  let owner: string | null = null;
  let text = '';
  const loaded = rowsSource(model, recv, fnIndex, line);
  // Or each row of an enclosing loop over a query's rows (`for o in orders: for l in o.lines:`):
  // that query's loader options say what came with it (`selectinload(Order.lines)` loads the
  // lines, not `OrderLine.product`).
  const outer = loaded ? null : model.loops.find((l) => l.functionIndex === fnIndex && l.kind !== 'while'
    && l.node.startIndex < rows.startIndex && rows.endIndex <= l.node.endIndex && loopTarget(l)?.name === recv.text);
  const outerRows = outer ? rowsSource(model, sameRows(loopTarget(outer)!.iterable), fnIndex, outer.node.startPosition.row + 1) : null;
  if (loaded) {
    owner = loaded.entity ?? loadedModel(model, loaded.call, loaded.op);
    text = loaded.text;
  } else if (outerRows?.entity) {
    owner = outerRows.entity;
    text = [outerRows.text, heldText(model, outerRows.text, fnIndex)].filter(Boolean).join(' ');
  } else {
    const t = valueTypeOf(model, recv.text, fnIndex, line);
    if (t && /^[\w.]+$/.test(t)) owner = t.slice(t.lastIndexOf('.') + 1);
  }
  if (!owner) return null;
  const owners = modelsNamed(project, model, owner);
  if (!owners.length) return null;
  // The attribute must be a collection relationship of every model of that name, with one target.
  const targets = new Set<string>();
  for (const m of owners) {
    const r = m.relationships.find((x) => x.name === coll);
    if (!r || r.scalar || !r.target) return null;
    targets.add(r.target.slice(r.target.lastIndexOf('.') + 1));
  }
  if (targets.size !== 1) return null;
  // The parent known by its type alone (a parameter, a helper's return): where it was loaded,
  // and with which options, is not in sight.
  return { entity: [...targets][0]!, owner: `${owner}.${coll}`, text, ...(!loaded && outerRows?.entity ? { nested: true as const } : {}), ...(!loaded && !outerRows?.entity ? { unseen: true as const } : {}) };
}

/**
 * A name bound once in the function to a query chain on a row's relationship that ends in a read
 * of its rows (`post.comments.order_by("id").all()`, `user.drafts.filter_by(...).limit(5)`), or
 * such a chain inline: the relationship's attribute node and the chain's text. Which
 * relationships are dynamic is left to the caller (`collectionRows` types the attribute).
 */
function dynamicQueryRows(model: FileModel, rows: SyntaxNode, fnIndex: number, line: number): { relation: SyntaxNode; chain: string } | null {
  let v: SyntaxNode | null = rows;
  if (v.type === 'identifier' && fnIndex >= 0) {
    const bound = assignmentsTo(model, v.text).filter((a) => a.functionIndex === fnIndex && a.line <= line);
    v = bound.length === 1 ? unwrap(bound[0]!.value) : null;
  }
  if (v?.type !== 'call') return null;
  const chain = v;
  // Down the chain of calls to its root: `post.comments` under `.order_by(...).all()`.
  let n: SyntaxNode | null = v;
  for (let i = 0; n?.type === 'call' && i < 8; i++) {
    const f = n.childForFieldName('function');
    if (f?.type !== 'attribute' || !QUERY_CHAIN.test(f.childForFieldName('attribute')?.text ?? '')) return null;
    n = f.childForFieldName('object');
  }
  if (n?.type !== 'attribute' || n.childForFieldName('object')?.type !== 'identifier') return null;
  return { relation: n, chain: chain.text };
}

/** Methods of a query chain that still return its rows (or run it). */
const QUERY_CHAIN = /^(filter|filter_by|order_by|limit|offset|options|all|first|one|one_or_none|distinct|join|outerjoin|where|yield_per|execution_options)$/;

/** Why a lazy load in a loop that commits per iteration is advisory. */
/**
 * A collection of a parent whose loading is not in sight, in a project whose sessions are all
 * asyncio ones: there a lazy load raises `MissingGreenlet` on the first row, so code that runs at
 * all has had the relationship loaded eagerly by whoever loaded the parent.
 */
const ASYNC_UNSEEN_EVIDENCE = 'the project\'s sessions are all `AsyncSession` ones, where a lazy load raises `MissingGreenlet` instead of querying: this code works only if whoever loads the parent loads the relationship eagerly; check that every caller does';

const EXPIRED_EVIDENCE = 'each iteration commits, and the commit expires every loaded row (`expire_on_commit`): the relationships load again per row whatever the query eager-loads, so no loader option removes these loads';


/**
 * Why a read in a find-first search is reported, and `low`: every row before the hit loads the
 * relationship (all of them when nothing matches), but the hit usually comes early — a field review
 * of such a search (the first selected item with an email) judged it low.
 */
const SEARCH_NOTE = '; the loop stops at the first hit (`return`/`break` behind a condition), but every row before it loads this: up to one SELECT per row when the hit comes late or never';

/** The fix for a `lazy="dynamic"` relationship read per row: `selectinload` of one raises (it populates nothing). */
const DYNAMIC_FIX = 'a `lazy="dynamic"` relationship is a query that no loader option fills (`selectinload` of it raises): count or fetch for all rows in one statement (`select(Child.parent_id, func.count()).where(Child.parent_id.in_(ids)).group_by(Child.parent_id)`, or a `column_property` with a correlated subquery), or declare it `lazy="selectin"` (or `write_only` and query it in bulk)';

/** Why a many-to-one that the loop groups its rows by is advisory. */
const GROUPED_EVIDENCE = 'the rows are grouped by this many-to-one (a dict keyed by it, or a query sorted by its key): one SELECT per distinct related row, the identity map answers the rest';

/** Why a self-referential many-to-one per row is advisory. */
const SELF_REFERENCE_EVIDENCE = 'a many-to-one to the rows\' own model: related rows that the same query loaded come from the identity map without SQL';

/**
 * Site fact for the repo phase: `for c in self.<attr>.<coll>:` (or `for r in self.<attr>:`, `coll`
 * empty, when the file never assigns `self.<attr>`) in a method, where the file cannot say what
 * `self.<attr>` holds (a base class of another file sets it). `what` =
 * `attr|coll|item|reads`, `reads` the item's attributes read in the loop (`name@line:column:endColumn`,
 * comma-separated; not assigned, not in a find-first search). The repo phase types `self.<attr>`
 * through the class's bases (their `self.<attr> = …`) and reports the reads of lazy
 * relationships of the collection's target model.
 */
export const HELD_COLLECTION_LOOP = 'held_collection_loop';

/** The item's attributes a loop reads, for a site fact (`name@line:column:endColumn`; see `itemAttributeReads`). */
function itemReads(model: FileModel, loop: LoopInfo, item: string): string[] {
  const reads: string[] = [];
  for (const { node, name, search } of itemAttributeReads(model, loop, item, (n) => !n.startsWith('_'))) {
    reads.push(`${name}@${node.startPosition.row + 1}:${node.startPosition.column + 1}:${node.endPosition.column + 1}${search ? ':s' : ''}`);
  }
  return reads;
}

export const HELPER_ROWS_LOOP = 'helper_rows_loop';

/** `….paginate(...)` (a query's or `db.paginate(stmt)`): what it gives is a `Pagination`. */
function paginationCall(value: SyntaxNode | null): boolean {
  const v = unwrap(value);
  const fn = v?.type === 'call' ? v.childForFieldName('function') : null;
  return fn?.type === 'attribute' && fn.childForFieldName('attribute')?.text === 'paginate';
}

const ENTITY_QUERY = /\b(select|query)\b/;

export function collectHelperRowFacts(model: FileModel): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile || !model.modelClasses.size) return effects;
  const resolvers = new Map<string | null, SelfRows>();
  model.functions.forEach((fn, i) => {
    // Module functions, and methods (a repository's `list()`): the rows they return.
    if (fn.parent >= 0 || fn.isGenerator || !fn.body) return;
    // A query of one entity is a `select(...)`, `session.query(...)` or `Model.query` somewhere in
    // the body, or a `lazy="dynamic"` relationship's query. (The source's own slice: a node's text
    // is copied out of the parser each time.)
    const body = model.source.slice(fn.body.startIndex, fn.body.endIndex);
    if (!(ENTITY_QUERY.test(body) || (model.dynamicRelations.size && /\.(filter|filter_by|order_by|all)\(/.test(body)))) return;
    let resolver = resolvers.get(fn.className);
    if (!resolver) resolvers.set(fn.className, (resolver = selfRowsResolver(model, fn.className)));
    const returns = returnsOf(fn);
    if (!returns.length) return;
    let entity: string | null = null;
    const texts: string[] = [];
    // Every return a Flask-SQLAlchemy `Pagination` (`….paginate(...)`, `db.paginate(select(M))`).
    let pages = true;
    for (const r of returns) {
      const line = r.startPosition.row + 1;
      const value = rowsExpression(model, r.namedChild(0), i, line);
      if (!paginationCall(value)) pages = false;
      const s = value ? rowsSource(model, value, i, line, 0, resolver) : null;
      // The rows of a dynamic relationship's query: its target, named by the relationship (`@rel`).
      const rel = !s?.entity && value ? dynamicRelationChain(model, value, i, line, true) : null;
      const found = s?.entity ?? (rel ? `@${rel}` : null);
      if (!found || (entity && found !== entity) || (s?.entity && /\*\s*self\./.test(s.text))) return;
      entity = found;
      if (s?.entity) texts.push(s.text, heldText(model, s.text, s.call.functionIndex));
      else texts.push(value!.text);
    }
    const text = texts.filter(Boolean).join(' ').replace(/\s+/g, ' ');
    if (!entity || text.length > MAX_ROWS_TEXT) return;
    effects[i]!.push({ kind: RETURNS_ROWS, what: `${entity}|${text}`, line: fn.startLine, column: 1 });
    if (pages && !entity.startsWith('@')) effects[i]!.push({ kind: RETURNS_PAGE, what: '', line: fn.startLine, column: 1 });
  });
  for (const loop of model.loops) {
    if (loop.kind === 'while' || loop.functionIndex < 0) continue;
    const t = loopTarget(loop);
    if (!t) continue;
    let node = rowsExpression(model, t.iterable, loop.functionIndex, loop.node.startPosition.row + 1);
    // `for t in page.items` with `page = fetch_page(...)`, or `fetch_page(...).items`: the rows of
    // the `Pagination` the callee returns (the repo phase asks for its `RETURNS_PAGE`).
    let page = false;
    if (node?.type === 'attribute' && node.childForFieldName('attribute')?.text === 'items') {
      const holder = rowsExpression(model, node.childForFieldName('object'), loop.functionIndex, loop.node.startPosition.row + 1);
      if (holder?.type === 'call') {
        node = holder;
        page = true;
      }
    }
    if (node?.type !== 'call') continue;
    const call = callAt(model, node);
    const q = call?.qualifiedName;
    // A function of another module (`fetch_jobs(...)`), or a method of an object the repo phase
    // can type (`repo.list_open()` with `repo = OrderRepo(db)`, `self.repo.list_open()`).
    // (`self.method()` itself is the file's: the class's own methods are read there.)
    const typed = !!call && !q && call.hasReceiver && /^[A-Za-z_][\w.]*$/.test(call.dottedReceiver ?? '') && !/^(self|cls)$/.test(call.dottedReceiver!)
      && !model.imports.has(call.dottedReceiver!.split('.')[0]!) && !CONTAINER_METHODS.test(call.method) && !classifyDbCall(model, call);
    if (!call || (!typed && (!q || q.startsWith(`${model.moduleName}.`) || q.startsWith('builtins.')))) continue;
    const reads = itemReads(model, loop, t.name);
    // Zero-argument methods called on the item (`plan.to_response()`), as `()name@...`: the repo
    // phase reads what the rows' model's method reads on `self` (`ROW_READS`).
    for (const { node, name, search, call: isCall } of itemAttributeReads(model, loop, t.name, (n) => !n.startsWith('_'), true)) {
      if (isCall && !search && !BUILTIN_ITEM_METHODS.test(name)) reads.push(`()${name}@${node.startPosition.row + 1}:${node.startPosition.column + 1}:${node.parent!.endPosition.column + 1}`);
    }
    if (!reads.length) continue;
    effects[loop.functionIndex]!.push({ kind: HELPER_ROWS_LOOP, what: `${t.name}|${reads.join(',')}${page ? '|page' : ''}`, line: call.line, column: call.column });
  }
  return effects;
}

/** The lazy reads a site fact lists (`name@line:column:endColumn`, see `itemReads`), with the relationship each reads. */
function lazyReads(readList: string, lazy: Map<string, LazyRelationship>): { name: string; line: number; column: number; endColumn: number; info: LazyRelationship; search: boolean }[] {
  const out: { name: string; line: number; column: number; endColumn: number; info: LazyRelationship; search: boolean }[] = [];
  for (const read of readList.split(',')) {
    const m = /^(\w+)@(\d+):(\d+):(\d+)(:s)?$/.exec(read);
    const info = m ? lazy.get(m[1]!) : undefined;
    if (m && info) out.push({ name: m[1]!, line: Number(m[2]), column: Number(m[3]), endColumn: Number(m[4]), info, search: !!m[5] });
  }
  return out;
}

/** The project model a class path of the repo names (`app.models.Event`), or null. */
function projectModel(graph: CallGraph, project: ProjectContext, classPath: string, kind?: 'class'): ModelInfo | null {
  const v = graph.resolveType(classPath);
  if (!v || v.kind === 'function' || (kind && v.kind !== kind)) return null;
  const file = graph.index.files[v.cls.file]!.path;
  return project.models.find((m) => m.name === v.cls.cls.name && m.file === file) ?? null;
}

/** Methods of builtin containers and strings: what they return is no query's rows. */
const CONTAINER_METHODS = /^(items|keys|values|copy|split|rsplit|splitlines|get|pop|popitem|setdefault|union|intersection|difference|most_common|fetchall|fetchmany|readlines|iterrows|itertuples)$/;

/** Methods of builtin values: never a model's. */
const BUILTIN_ITEM_METHODS = /^(keys|values|items|copy|get|strip|lower|upper|split|isoformat|strftime|format|encode|decode)$/;

/**
 * Methods called (`()name@...`) and properties read on each item, per the site's list, that the
 * rows' model defines and whose body reads lazy relationships of `self` (`ROW_READS`), not one
 * the loop read itself and no model method that runs a query of its own (PA107's).
 */
function memberLazyHits(graph: CallGraph, readList: string, entity: string, lazy: Map<string, LazyRelationship>): { name: string; call: boolean; line: number; column: number; endColumn: number; hits: (readonly [string, LazyRelationship])[]; where: string }[] {
  const out: { name: string; call: boolean; line: number; column: number; endColumn: number; hits: (readonly [string, LazyRelationship])[]; where: string }[] = [];
  const entries = readList.split(',').map((r) => /^(\(\))?(\w+)@(\d+):(\d+):(\d+)(:s)?$/.exec(r)).filter((m): m is RegExpExecArray => !!m);
  const direct = new Set(entries.filter((m) => !m[1]).map((m) => m[2]!));
  for (const m of entries) {
    const call = !!m[1];
    const name = m[2]!;
    if (!call && lazy.has(name)) continue;
    const to = classMembers(graph).get(`${entity}.${name}${call ? '' : '@'}`);
    if (!to) continue;
    const own = graph.ownEffects(to);
    const reads = rowReadsAt(own, call ? { passes: '|' } : null);
    if (!reads || own.some((e) => e.kind === ROW_QUERY)) continue;
    // Not a relationship the loop reads itself, directly or through its proxy: that load is reported there.
    const hits = reads.map((r) => [r, lazy.get(r)] as const).filter((x): x is readonly [string, LazyRelationship] => !!x[1] && !x[1].dynamic && !direct.has(x[0]) && !direct.has(loadedRelation(x[0], x[1])));
    if (hits.length) out.push({ name, call, line: Number(m[3]), column: Number(m[4]), endColumn: Number(m[5]), hits, where: graph.function(to).qualifiedName });
  }
  return out;
}

/** PA108's repo phase: loops over the rows a function of another module returns. */
function reportHelperRowLoops(ctx: RepoRuleContext): void {
  const graph = callGraphOf(ctx.index);
  for (const { ref, file, site } of ownSites(graph, HELPER_ROWS_LOOP)) {
    const call = graph.callAt(ref.file, site.line, site.column);
    const to = call ? graph.resolveCall(ref.file, call) : null;
    const fact = to ? graph.ownEffects(to).find((e) => e.kind === RETURNS_ROWS) : undefined;
    if (!call || !to || !fact) continue;
    const [item = '', readList = '', via = ''] = site.what.split('|');
    // `.items` of what the callee returns: rows only when every return is a `Pagination`.
    const page = via === 'page';
    if (page && !graph.ownEffects(to).some((e) => e.kind === RETURNS_PAGE)) continue;
    const bar = fact.what.indexOf('|');
    const written = fact.what.slice(0, bar);
    const entity = written.startsWith('@') ? dynamicTarget(ctx.project, written.slice(1)) : written;
    if (!entity) continue;
    const text = fact.what.slice(bar + 1);
    // The model the helper's query names, as its own module sees the name.
    const helperSummary = graph.fileOf(to);
    const lazy = lazyRelationships(modelsNamedInSummary(ctx.project, helperSummary, entity));
    for (const [rel, info] of [...lazy]) if (loadedByQuery(text, rel, info)) lazy.delete(rel);
    if (!lazy.size) continue;
    const helper = graph.function(to);
    const helperFile = graph.fileOf(to);
    // Rows an `async def` returns to an `async def`: an `AsyncSession`'s, where implicit IO raises.
    const asyncRows = helper.isAsync && graph.function(ref).isAsync;
    for (const r of lazyReads(readList, lazy)) {
      ctx.report({
        path: file.path,
        location: { line: r.line, column: r.column, endLine: r.line, endColumn: r.endColumn },
        message: `\`${item}.${r.name}\` lazy-loads ${entity}.${loadedRelation(r.name, r.info)}${r.info.via ? ` (\`${r.name}\` is an association proxy through it)` : ''} once per row ${page ? 'in the `.items` of the page that' : 'that'} \`${call.calleeText}\` returns`
          + ` (\`${helper.qualifiedName}\` in ${helperFile.path}: \`${entity}\` rows of a query with no eager loader option for it)` + oneRowNote(r.info)
          + (asyncRows ? '; on an `AsyncSession` the lazy load raises `MissingGreenlet` instead' : '') + (r.search ? SEARCH_NOTE : ''),
        // (Two coroutines say nothing of the session's kind: a sync session in an `async def`
        // queries, so no failure is claimed here.)
        ...(r.search ? { severity: 'low' as const } : r.info.scalar ? { severity: 'medium' as const } : {}),
        function: graph.function(ref).name,
      });
    }
    // A method or property of the rows' model run on each row, reading lazy relationships of `self`.
    for (const u of memberLazyHits(graph, readList, entity, lazy)) {
      const scalar = u.hits.every(([, info]) => info.scalar);
      ctx.report({
        path: file.path,
        location: { line: u.line, column: u.column, endLine: u.line, endColumn: u.endColumn },
        message: `\`${item}.${u.name}${u.call ? '()' : ''}\` on each row ${page ? 'in the `.items` of the page that' : 'that'} \`${call.calleeText}\` returns lazy-loads ${u.hits.map(([r, info]) => relationLabel(entity, r, info)).join(', ')} (read in \`${u.where}\`; \`${helper.qualifiedName}\` in ${helperFile.path}: \`${entity}\` rows of a query with no eager loader option for it): one SELECT per row${u.hits.length > 1 ? ' for each' : ''}`
          + (scalar ? '; a many-to-one looks in the identity map first' : '')
          + (asyncRows ? '; on an `AsyncSession` the lazy load raises `MissingGreenlet` instead' : ''),
        ...(scalar ? { severity: 'medium' as const } : {}),
        function: graph.function(ref).name,
      });
    }
  }
}


/**
 * PA108's repo phase for serializers: the schema of a `SERIALIZED_ROWS` site (its fields and its
 * bases' in the repo) read per row; each field that is a lazy relationship of the rows' model, with
 * no eager loader option for it on the query, is one lazy load per row. A nested schema on a
 * collection relationship is read per item of it: its own lazy relationships are per item too.
 */

/**
 * The reads of a method or helper run per row (`reads`) that load a lazy relationship of the rows'
 * `entity`: not a dynamic one (a query the callee runs, PA107's), not one the loop read itself
 * (`direct`), the loop's query eager-loads (`text`) or a many-to-one back to the rows' own model.
 */
function calleeLazyHits(reads: string[], lazy: Map<string, LazyRelationship>, direct: Set<string>, text: string, entity: string): (readonly [string, LazyRelationship])[] {
  return reads.map((r) => [r, lazy.get(r)] as const)
    .filter((x): x is readonly [string, LazyRelationship] => !!x[1] && !x[1].dynamic && !direct.has(x[0]) && !direct.has(loadedRelation(x[0], x[1])) && !loadedByQuery(text, x[0], x[1]) && !(x[1].scalar && x[1].target?.replace(/^.*\./, '') === entity));
}

/**
 * A model method or property called on each row of a loop over a query's rows (`ROW_CALL` sites
 * whose rows' model is known) that reads lazy relationships of its own row (`ROW_READS`): one
 * lazy load per row for each, hidden in the method. The loop's query's loader options
 * (recorded at the site) count as eager loads; a method that queries on its own is PA107's.
 */
function reportRowMethodLazyLoads(ctx: RepoRuleContext): void {
  const graph = callGraphOf(ctx.index);
  const byName = projectIndex(ctx.project).modelsByName;
  for (const { ref, file, site } of ownSites(graph, ROW_CALL)) {
    const parts = site.what.split('|');
    const [kind = '', name = '', end = '', entity = ''] = parts;
    // The loop's own reads of its item, then the loop's query's text (see rowCalls.ts).
    const direct = new Set((parts[10] ?? '').split(','));
    const text = parts.slice(11).join('|');
    if (!entity || !text || text === '*') continue;
    const to = classMembers(graph).get(`${entity}.${name}${kind === 'p' ? '@' : ''}`);
    if (!to) continue;
    const own = graph.ownEffects(to);
    // A `m` site is a call (`t.to_dict()`, `t.to_dict(relations=True)` with arguments the loop does
    // not change): what it passes decides which flag-guarded reads of the method run; a call the
    // summary does not hold passes nothing, every flag left at its default.
    const reads = rowReadsAt(own, kind === 'm' ? { passes: graph.callAt(ref.file, site.line, site.column)?.passes ?? '|' } : null);
    if (!reads || own.some((e) => e.kind === ROW_QUERY)) continue;
    const hits = calleeLazyHits(reads, lazyRelationships(nearestModels(ctx.project, byName.get(entity) ?? [], file.path)), direct, text, entity);
    if (!hits.length) continue;
    const method = graph.function(to);
    const effects = graph.effectsOf(to, 'any');
    const writes = effects.has(FLUSH_EFFECT) || effects.has(WRITE_EFFECT) || parts[6] === 'w';
    const scalar = hits.every(([, info]) => info.scalar);
    const callText = kind === 'p' ? name : `${name}()`;
    ctx.report({
      path: file.path,
      location: { line: site.line, column: site.column, endLine: site.line, endColumn: Number(end) },
      message: `\`${callText}\` on each \`${entity}\` row of the loop lazy-loads ${hits.map(([r, info]) => relationLabel(entity, r, info)).join(', ')} (read in \`${method.qualifiedName}\`; no eager loader option on the loop's query): one SELECT per row${hits.length > 1 ? ' for each' : ''}`
        + (scalar ? '; a many-to-one looks in the identity map first' : '')
        + (writes ? '; each call also writes, a per-item workflow whose round trips are there anyway' : ''),
      ...(writes ? { severity: 'low' as const } : scalar ? { severity: 'medium' as const } : {}),
      function: graph.function(ref).name,
    });
  }
}

/**
 * A function handed each row of a loop over a query's rows (`[serialize(o) for o in orders]`,
 * `ITEM_ARG_CALL` sites) that reads lazy relationships of that parameter (`PARAM_READS`): one lazy
 * load per row for each, inside the helper. The loop's query's loader options count as eager
 * loads, and so do the loop's own reads of the row before the call.
 */
function reportHelperParamLazyLoads(ctx: RepoRuleContext): void {
  const graph = callGraphOf(ctx.index);
  const byName = projectIndex(ctx.project).modelsByName;
  for (const { ref, file, site, call, to } of siteCalls(graph, ITEM_ARG_CALLS)) {
    if (call.receiverType === UNTYPED_RECEIVER) continue;
    const parts = site.what.split('|');
    const [position = '', end = '', entity = '', w = '', directList = ''] = parts;
    const text = parts.slice(5).join('|');
    if (!entity || !text || text === '*') continue;
    const reads = paramReadsOf(graph, to, position, call);
    if (!reads) continue;
    const hits = calleeLazyHits(reads, lazyRelationships(nearestModels(ctx.project, byName.get(entity) ?? [], file.path)), new Set(directList.split(',')), text, entity);
    if (!hits.length) continue;
    const helper = graph.function(to);
    const effects = graph.effectsOf(to, 'any');
    const writes = effects.has(FLUSH_EFFECT) || effects.has(WRITE_EFFECT) || w.includes('w');
    const scalar = hits.every(([, info]) => info.scalar);
    // Each iteration commits: the rows expire and load again whatever the query eager-loads.
    const expiring = w.includes('c') && sessionsExpireOnCommit(ctx.project);
    ctx.report({
      path: file.path,
      location: { line: call.line, column: call.column, endLine: call.line, endColumn: Number(end) },
      ...(expiring ? { advisory: EXPIRED_EVIDENCE } : {}),
      message: `\`${call.calleeText}()\` is handed each \`${entity}\` row of the loop and reads ${hits.map(([r, info]) => relationLabel(entity, r, info)).join(', ')} (in \`${helper.qualifiedName}\`; no eager loader option on the loop's query): one lazy load per row${hits.length > 1 ? ' for each' : ''}`
        + (scalar ? '; a many-to-one looks in the identity map first' : '')
        + (writes ? '; each call also writes, a per-item workflow whose round trips are there anyway' : ''),
      ...(writes ? { severity: 'low' as const } : scalar ? { severity: 'medium' as const } : {}),
      function: graph.function(ref).name,
      chain: [{ path: file.path, line: call.line, column: call.column, function: graph.function(ref).name, call: call.calleeText }],
    });
  }
}

const ITEM_ARG_CALLS: ReadonlySet<string> = new Set([ITEM_ARG_CALL]);

/**
 * What a function reads on its parameter at `position` (`PARAM_READS`) when `call` calls it, or
 * undefined when nothing lazy: a read under a flag the call leaves off (`if with_shots:`, not
 * passed) is not made.
 */
function paramReadsOf(graph: CallGraph, fn: FnRef, position: string, call: SummaryCall): string[] | undefined {
  const listed = graph.ownEffects(fn).find((e) => e.kind === PARAM_READS && e.what.startsWith(`${position}|`))?.what.split('|')[1]?.split(',');
  if (!listed) return undefined;
  const reads = listed.flatMap((n) => {
    const at = n.indexOf('^');
    return at < 0 ? [n] : flagAtCall(call.passes, n.slice(at + 1)) === 'off' ? [] : [n.slice(0, at)];
  });
  return reads.length ? reads : undefined;
}
const ROWS_ARG_CALLS: ReadonlySet<string> = new Set([ROWS_ARG_CALL]);

/**
 * Rows handed whole to a function of the repo (`ROWS_ARG_CALL`: `to_dicts(rows)`) that loops over
 * that parameter and reads lazy relationships of each item (`PARAM_LOOP_READS`): one lazy load
 * per row for each, inside the helper. Reported at the call, where the query's loader options
 * (recorded with the site) would go; they count as eager loads.
 */
function reportRowsHandOffLazyLoads(ctx: RepoRuleContext): void {
  const graph = callGraphOf(ctx.index);
  const byName = projectIndex(ctx.project).modelsByName;
  for (const { ref, file, site, call, to } of siteCalls(graph, ROWS_ARG_CALLS)) {
    if (call.receiverType === UNTYPED_RECEIVER) continue;
    const parts = site.what.split('|');
    const [position = '', keyword = '', end = '', entityField = ''] = parts;
    const [entity = '', flags = ''] = entityField.split('~');
    const asyncRows = flags.includes('a');
    const text = parts.slice(4).join('|');
    if (!entity || !text || text === '*') continue;
    const loopReads = graph.ownEffects(to).find((e) => {
      if (e.kind !== PARAM_LOOP_READS) return false;
      const [p = '', name = ''] = e.what.split('|', 2);
      return keyword ? name === keyword : p === position;
    });
    if (!loopReads) continue;
    const [, , names = '', w = '', handed = ''] = loopReads.what.split('|');
    const listed = names.split(',').filter(Boolean);
    // One level further: what a function handed each item reads on it (`[row_dict(d) for d in dogs]`).
    for (const h of handed ? handed.split(';') : []) {
      const [line = '', column = '', pos = ''] = h.split(':');
      const inner = graph.resolvedCallAt(to.file, Number(line), Number(column));
      if (!inner || inner.call.receiverType === UNTYPED_RECEIVER) continue;
      listed.push(...(paramReadsOf(graph, inner.to, pos, inner.call) ?? []));
    }
    if (!listed.length) continue;
    const plain = new Set(listed.filter((n) => !n.endsWith('~g')));
    const keyed = new Set(listed.filter((n) => n.endsWith('~g')).map((n) => n.slice(0, -2)).filter((n) => !plain.has(n)));
    const hits = calleeLazyHits([...plain, ...keyed], lazyRelationships(nearestModels(ctx.project, byName.get(entity) ?? [], file.path)), new Set(), text, entity);
    if (!hits.length) continue;
    const helper = graph.function(to);
    const writes = w === 'w';
    const scalar = hits.every(([, info]) => info.scalar);
    // Every many-to-one read only keys the helper's grouping: one SELECT per distinct target.
    const grouped = scalar && !asyncRows && hits.every(([r]) => keyed.has(r));
    // A literal cap on the query bounds N, as for a loop over the rows in place.
    const cap = rowsCap(text);
    ctx.report({
      ...(grouped ? { advisory: GROUPED_EVIDENCE } : {}),
      path: file.path,
      location: { line: call.line, column: call.column, endLine: call.line, endColumn: Number(end) },
      message: `\`${call.calleeText}()\` loops over the \`${entity}\` rows it is handed and reads ${hits.map(([r, info]) => relationLabel(entity, r, info)).join(', ')} on each (in \`${helper.qualifiedName}\`; no eager loader option on the query): one lazy load per row${hits.length > 1 ? ' for each' : ''}`
        + (scalar ? '; a many-to-one looks in the identity map first' : '')
        + (writes ? '; its loop also writes, a per-item workflow whose round trips are there anyway' : '')
        + (cap !== null ? `; the query returns at most ${cap} rows` : '')
        + (asyncRows ? '; the rows are an `AsyncSession`\'s (awaited here): the lazy load raises `MissingGreenlet` instead of querying' : ''),
      // On an AsyncSession the load raises: a failure on every call, whatever the cap or the workflow.
      ...(asyncRows ? { severity: scalar ? 'medium' as const : 'high' as const, failure: true as const }
        : writes || (cap !== null && cap <= SMALL_CAP) ? { severity: 'low' as const } : scalar || cap !== null ? { severity: 'medium' as const } : {}),
      function: graph.function(ref).name,
      chain: [{ path: file.path, line: call.line, column: call.column, function: graph.function(ref).name, call: call.calleeText }],
    });
  }
}

/**
 * `HELD_ROWS` on a method that sets `self.<attr>` to rows of one model's query (`what` =
 * `attr|entity|names|text`): every assignment of the attribute in the class's family of the file
 * agrees (see selfRows.ts), `text` the query's with the options the class itself gives
 * `*self.<name>`, `names` those names (a subclass elsewhere that sets one changes the options).
 */
export const HELD_ROWS = 'held_rows';

function heldRowFacts(model: FileModel, effects: Effect[][]): void {
  // Every assignment of the attribute in the class's own methods (a subclass's are its own
  // business: the repo phase asks for the class an instance's MRO finds first).
  const groups = new Map<string, { cls: string; list: AssignmentInfo[] }>();
  for (const a of model.assignments) {
    if (a.functionIndex < 0 || !a.target.startsWith('self.') || !/^self\.\w+$/.test(a.target)) continue;
    const cls = classOfFunction(model, a.functionIndex);
    if (!cls) continue;
    const key = `${cls}.${a.target}`;
    const g = groups.get(key);
    if (g) g.list.push(a);
    else groups.set(key, { cls, list: [a] });
  }
  for (const { cls, list } of groups.values()) {
    const first = list[0]!;
    // Rows come from a query: a `select`/`query` in the value or in the name it reads.
    if (!list.some((a) => a.value && (ENTITY_QUERY.test(a.value.text) || a.value.type === 'identifier' || a.value.type === 'call'))) continue;
    const resolver = selfRowsResolver(model, cls);
    let s: RowsSource | null = null;
    let ok = true;
    for (const a of list) {
      if (unwrap(a.value)?.type === 'none') continue;
      const rows = a.fromWith || !a.value ? null : rowsSource(model, a.value, a.functionIndex, a.line - 1, 0, resolver);
      const r = rows?.entity || a.fromWith || !a.value ? rows : oneRow(model, a) ?? rows;
      if (!r?.entity || (s && s.entity !== r.entity)) {
        ok = false;
        break;
      }
      s = s ? { ...(s as RowsSource), text: `${(s as RowsSource).text} ${r.text}` } : r;
    }
    if (!ok || !s?.entity) continue;
    if (model.augAssignments.some((g) => g.target === first.target && g.functionIndex >= 0 && classOfFunction(model, g.functionIndex) === cls)) continue;
    const options = selfOptionsText(model, cls, s.text);
    if (options === null) continue;
    const names = [...s.text.matchAll(/\*\s*self\.(\w+)/g)].map((m) => m[1]!);
    const text = [s.text, options, heldText(model, s.text, s.call.functionIndex)].filter(Boolean).join(' ').replace(/\s+/g, ' ');
    if (text.length > MAX_ROWS_TEXT) continue;
    effects[first.functionIndex]!.push({ kind: HELD_ROWS, what: `${first.target.slice(5)}|${s.entity}|${names.join(',')}|${text}`, line: first.line, column: first.node.startPosition.column + 1 });
  }
}

/** Names the file's classes bind in their bodies (`options = (...)`) and their bases' short names, by class. */
function classLevelNames(model: FileModel): Map<string, { names: string[]; bases: string[] }> {
  return new Map(fileClasses(model).map((c) => [c.name, { names: [...c.names], bases: c.bases.map((b) => b.slice(b.lastIndexOf('.') + 1)) }]));
}

/** The class-level names of `cls` and of its bases defined in the file (the part of its MRO the file holds). */
function ownLineNames(index: Map<string, { names: string[]; bases: string[] }>, cls: string): string[] {
  const out = new Set<string>();
  const seen = new Set<string>();
  const todo = [cls];
  while (todo.length) {
    const c = todo.pop()!;
    const entry = seen.has(c) ? undefined : index.get(c);
    seen.add(c);
    if (!entry) continue;
    for (const n of entry.names) out.add(n);
    todo.push(...entry.bases);
  }
  return [...out];
}

/**
 * `def tag_all(rows, …): for r in rows: r.tags` called in the file as `tag_all(self.items, …)` from
 * a method: a `HELD_COLLECTION_LOOP` site (no collection) on the calling method, whose class
 * types `self.items`, with the names its classes of the file bind at class level.
 */
function paramLoopSites(model: FileModel, effects: Effect[][], localNames: () => Map<string, { names: string[]; bases: string[] }>): void {
  for (const loop of model.loops) {
    if (loop.kind === 'while' || loop.functionIndex < 0) continue;
    const fn = model.functions[loop.functionIndex]!;
    if (fn.parent >= 0 || fn.className) continue;
    const t = loopTarget(loop);
    const rows = t ? unwrap(sameRows(t.iterable)) : null;
    if (!t || rows?.type !== 'identifier') continue;
    const position = fn.params.findIndex((p) => p.name === rows.text);
    if (position < 0 || lastAssignment(model, rows.text, loop.functionIndex, loop.node.startPosition.row + 1)?.functionIndex === loop.functionIndex) continue;
    if (model.functions.filter((f) => f.parent < 0 && !f.className && f.name === fn.name).length !== 1) continue;
    const reads = itemReads(model, loop, t.name);
    if (!reads.length) continue;
    for (const call of model.calls) {
      if (call.calleeText !== fn.name || call.functionIndex < 0) continue;
      const cls = classOfFunction(model, call.functionIndex);
      const arg = call.node.childForFieldName('arguments')?.namedChildren[position];
      const attr = arg?.type === 'attribute' && arg.childForFieldName('object')?.text === 'self' ? arg.childForFieldName('attribute')?.text : null;
      if (!cls || !attr) continue;
      const target = `self.${attr}`;
      if (model.augAssignments.some((g) => g.target === target) || assignmentsTo(model, target).some((a) => a.target === target)) continue;
      const names = ownLineNames(localNames(), cls);
      effects[call.functionIndex]!.push({
        kind: HELD_COLLECTION_LOOP,
        what: `${attr}||${t.name}|${reads.join(',')}|${names.join(',')}|${iterationWriter(model, { functionIndex: loop.functionIndex }, loop) ? 'w' : ''}`,
        line: loop.node.startPosition.row + 1,
        column: loop.node.startPosition.column + 1,
      });
    }
  }
}

/** `self.farm = Farm.query.options(...).get(pk)`: one row of a model, with the query that loaded it (its options load its collections). */
function oneRow(model: FileModel, a: AssignmentInfo): RowsSource | null {
  const t = fetchedRow(model, a.value);
  const call = unwrap(a.value);
  const info = call?.type === 'call' ? callAt(model, call) : undefined;
  if (!t || !info) return null;
  const op = classifyDbCall(model, info) ?? { kind: 'read' as const, what: info.calleeText, statement: null };
  return { call: info, op, entity: t.slice(t.lastIndexOf('.') + 1), text: call!.text };
}

export function collectHeldCollectionLoops(model: FileModel): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile || !model.modelClasses.size) return effects;
  heldRowFacts(model, effects);
  let names: Map<string, { names: string[]; bases: string[] }> | undefined;
  const localNames = () => (names ??= classLevelNames(model));
  paramLoopSites(model, effects, localNames);
  for (const loop of model.loops) {
    if (loop.kind === 'while' || loop.functionIndex < 0) continue;
    const t = loopTarget(loop);
    if (!t) continue;
    const rows = sameRows(t.iterable);
    // `self.<attr>.<coll>`, or `self.<attr>` (rows: `coll` empty)
    if (rows.type !== 'attribute') continue;
    const held = rows.childForFieldName('object');
    let coll = rows.childForFieldName('attribute')?.text;
    let attr = held?.type === 'attribute' && held.childForFieldName('object')?.text === 'self' ? held.childForFieldName('attribute')?.text : null;
    if (!attr && held?.type === 'identifier' && held.text === 'self') {
      attr = coll;
      coll = '';
    }
    if (!attr || coll === undefined || attr.startsWith('__') || coll.startsWith('__')) continue;
    const cls = classOfFunction(model, loop.functionIndex);
    if (!cls) continue;
    // `self.items += more`: rows from elsewhere too. Rows the file's own classes assign are the file rule's.
    const target = `self.${attr}`;
    if (model.augAssignments.some((g) => g.target === target)) continue;
    if (!coll && assignmentsTo(model, target).some((a) => a.target === target)) continue;
    // What the file can follow (rows the class's own code loads) is the file rule's.
    if (rowsSource(model, rows, loop.functionIndex, loop.node.startPosition.row + 1, 0, selfRowsResolver(model, cls))) continue;
    const reads = itemReads(model, loop, t.name);
    if (!reads.length) continue;
    const names = coll ? [] : ownLineNames(localNames(), cls);
    effects[loop.functionIndex]!.push({
      kind: HELD_COLLECTION_LOOP,
      what: `${attr}|${coll}|${t.name}|${reads.join(',')}|${names.join(',')}|${iterationWriter(model, { functionIndex: loop.functionIndex }, loop) ? 'w' : ''}`,
      line: loop.node.startPosition.row + 1,
      column: loop.node.startPosition.column + 1,
    });
  }
  return effects;
}

/** A row accessor at the end of a type path: `Model.get()`, `Model.query.filter_by().first()`. */
const ONE_ROW = /^([A-Za-z_][\w.]*?)(?:\.query(?:\.\w+\(\))*)?\.(get|get_or_404|first|first_or_404|one|one_or_none|scalar_one|scalar_one_or_none)\(\)$/;

/**
 * The model a `self.<attr>` type path holds one row of: `@app.models.Event` (an annotation), or
 * a row accessor on the model (`app.models.Event.get()`, `Event.query.filter_by().first()`).
 * Null when the path carries loader options (`.options()`: which ones is not in the path) or
 * names no model class of the project.
 */
function heldRowModel(graph: CallGraph, project: ProjectContext, path: string): ModelInfo | null {
  if (/\.options\(\)/.test(path)) return null;
  let classPath: string | null = null;
  if (/^@[A-Za-z_][\w.]*$/.test(path)) classPath = path.slice(1);
  else classPath = ONE_ROW.exec(path)?.[1] ?? null;
  return classPath ? projectModel(graph, project, classPath) : null;
}

/** Query-chain steps that keep a query's rows and add no loader option (`.options()` is left out: which is not in the path). */
const ROWS_CHAIN = /^([A-Za-z_][\w.]*?)\.query((?:\.(?:filter|filter_by|where|with_parent|order_by|join|outerjoin|distinct|limit|offset|all)\(\))*)$/;

/**
 * The model whose rows a `self.<attr>` type path holds: a Flask-SQLAlchemy query chain on it
 * (`app.models.Job.query.filter().order_by().all()`), without loader options. The criteria are
 * not in the path, so whether they pin a many-to-one's key is unknown: `collectionsOnly`.
 */
function heldRowsModel(graph: CallGraph, project: ProjectContext, path: string): ModelInfo | null {
  const m = ROWS_CHAIN.exec(path);
  return m ? projectModel(graph, project, m[1]!, 'class') : null;
}

/** The `HELD_ROWS` fact a method of the class sets for `attr`, when exactly one does. */
function heldRowsFact(graph: CallGraph, cls: ClassRef, attr: string): { entity: string; names: string[]; text: string } | null {
  const file = graph.index.files[cls.file]!;
  const found: string[] = [];
  file.functions.forEach((f, fn) => {
    if (f.className !== cls.cls.name || f.parent >= 0) return;
    for (const e of graph.ownEffects({ file: cls.file, fn })) {
      if (e.kind === HELD_ROWS && e.what.startsWith(`${attr}|`)) found.push(e.what);
    }
  });
  if (found.length !== 1) return null;
  const [, entity = '', names = ''] = found[0]!.split('|', 3);
  const text = found[0]!.split('|').slice(3).join('|');
  return { entity, names: names ? names.split(',') : [], text };
}

/** PA108's repo phase: the item loops of `HELD_COLLECTION_LOOP` sites. */
function reportHeldCollectionLoops(ctx: RepoRuleContext): void {
  const graph = callGraphOf(ctx.index);
  const byName = projectIndex(ctx.project).modelsByName;
  // A helper's loop is a site of each method that passes it `self.<attr>`: reported once.
  const reported = new Set<string>();
  for (const { ref, file, site } of ownSites(graph, HELD_COLLECTION_LOOP)) {
    const classes = graph.selfClasses(ref);
    if (!classes.length) continue;
    // The function the loop is in: the method itself, or the helper it passes the rows to.
    let loopFn = -1;
    file.functions.forEach((f, i) => {
      if (f.startLine <= site.line && site.line <= f.endLine && (loopFn < 0 || f.startLine >= file.functions[loopFn]!.startLine)) loopFn = i;
    });
    const passed = loopFn >= 0 && loopFn !== ref.fn ? file.functions[loopFn]! : null;
    const [attr = '', coll = '', item = '', readList = '', local = '', w = ''] = site.what.split('|');
    // Each iteration also writes (in the loop, or in a repo function it calls): a per-item
    // workflow whose round trips are there anyway, `low` as PA107 reads it.
    const workflow = w === 'w' ? '' : loopWorkflow(graph, file.path, `${site.line}:${site.column - 1}`);
    // The first class of the MRO whose code sets `self.<attr>` decides what it holds.
    let path: string | undefined;
    let setter = '';
    let setterAt = -1;
    for (const [i, c] of classes.entries()) {
      const hit = c.cls.attrs.find(([n]) => n === attr);
      if (hit) {
        path = hit[1];
        setter = c.cls.name;
        setterAt = i;
        break;
      }
    }
    if (!path) continue;
    // Rows the setter's own file read (`HELD_ROWS`): the query's text, options included.
    const held = coll ? null : heldRowsFact(graph, classes[setterAt]!, attr);
    let entity: string;
    let where: string;
    if (coll) {
      const owner = heldRowModel(graph, ctx.project, path);
      const rel = owner?.relationships.find((r) => r.name === coll);
      if (!owner || !rel || rel.scalar || !rel.target) continue;
      // The row's own query, when the setter's file read it there: its loader options load the collection.
      const loaded = heldRowsFact(graph, classes[setterAt]!, attr);
      if (loaded && eagerlyLoaded(loaded.text, coll)) continue;
      entity = rel.target.slice(rel.target.lastIndexOf('.') + 1);
      where = `the collection ${owner.name}.${coll} of the ${owner.name} row that \`${setter}\` keeps in \`self.${attr}\`; no eager loader option for it where that row is loaded`;
    } else if (held) {
      // Options named by `*self.<name>` are the setter's unless a class before it binds the name:
      // those of the site's file are listed, any other class is unknown.
      const before = classes.slice(0, setterAt);
      const localList = local ? local.split(',') : [];
      // Classes before the setter: in the site's file, which assigns no `self.<attr>` (the collector checks).
      if (before.some((c) => c.file !== ref.file) || held.names.some((n) => localList.includes(n))) continue;
      entity = held.entity;
      where = `the \`${entity}\` rows that \`${setter}\` keeps in \`self.${attr}\`; no eager loader option on that query`;
    } else {
      const rowsOf = heldRowsModel(graph, ctx.project, path);
      if (!rowsOf) continue;
      entity = rowsOf.name;
      where = `the \`${entity}.query\` rows that \`${setter}\` keeps in \`self.${attr}\`; no eager loader option on that query`;
    }
    const lazy = lazyRelationships(byName.get(entity) ?? []);
    if (held) {
      for (const [rel, info] of [...lazy]) if (loadedByQuery(held.text, rel, info)) lazy.delete(rel);
    } else if (!coll) {
      // Rows a query picked by criteria the path does not show: a many-to-one may be pinned to held rows.
      for (const [name, info] of [...lazy]) if (info.scalar) lazy.delete(name);
    }
    if (!lazy.size) continue;
    for (const r of lazyReads(readList, lazy)) {
      const key = `${file.path}:${r.line}:${r.column}`;
      if (reported.has(key)) continue;
      reported.add(key);
      ctx.report({
        path: file.path,
        location: { line: r.line, column: r.column, endLine: r.line, endColumn: r.endColumn },
        message: `\`${item}.${r.name}\` lazy-loads ${entity}.${loadedRelation(r.name, r.info)}${r.info.via ? ` (\`${r.name}\` is an association proxy through it)` : ''} once per row of \`self.${attr}${coll ? `.${coll}` : ''}\``
          + (passed ? `, which \`${graph.function(ref).qualifiedName}\` passes to \`${passed.name}\`` : '') + ` (${where})` + oneRowNote(r.info)
          + (workflow !== null ? `; each iteration also ${workflowDoes(workflow)}: a per-item workflow whose round trips are there anyway` : '') + (r.search ? SEARCH_NOTE : ''),
        // The children of one row (`self.event.contributions`) grow with that row, not with the table.
        ...(workflow !== null || r.search ? { severity: 'low' as const } : r.info.scalar || coll ? { severity: 'medium' as const } : {}),
        function: (passed ?? graph.function(ref)).name,
      });
    }
  }
}


/**
 * `rows = helper(...)` (or the call itself), `helper` a function of the file whose every return
 * is rows of one model: a query of it (at least one return), or the items of a collection
 * relationship (`parent.children`, `[c for c in parent.children if …]`, `sorted(...)` of either)
 * that every model declaring a relationship of that name points at that model. `text`: the
 * queries' text, for their loader options (a collection's parent is loaded elsewhere).
 */
function helperRows(model: FileModel, project: ProjectContext, rows: SyntaxNode, fnIndex: number, line: number): { entity: string; text: string; helper: string; sources: string[] } | null {
  let node = unwrap(rows);
  if (node?.type === 'identifier') {
    const a = lastAssignment(model, node.text, fnIndex, line);
    if (!a || a.functionIndex !== fnIndex || a.fromWith) return null;
    node = unwrap(a.value);
  }
  if (node?.type !== 'call') return null;
  const callee = unwrap(node.childForFieldName('function'));
  if (callee?.type !== 'identifier' || model.imports.has(callee.text)) return null;
  const defs = model.functions.filter((f) => f.parent < 0 && !f.className && f.name === callee.text);
  if (defs.length !== 1) return null;
  const helper = defs[0]!;
  const resolver = selfRowsResolver(model, null);
  let entity: string | null = null;
  const texts: string[] = [];
  const sources: string[] = [];
  const collections: string[] = [];
  const returns = returnsOf(helper);
  if (!returns.length) return null;
  for (const r of returns) {
    const value = r.namedChild(0);
    if (!value) return null;
    const s = rowsSource(model, value, helper.index, r.startPosition.row + 1, 0, resolver);
    if (s?.entity) {
      if (entity && entity !== s.entity) return null;
      entity = s.entity;
      texts.push(s.text);
      sources.push(`\`${s.op.what}\``);
      continue;
    }
    if (s) return null;
    const coll = collectionItems(value);
    if (!coll) return null;
    collections.push(coll.name);
    sources.push(`the items of \`${coll.text}\``);
  }
  if (!entity) return null;
  for (const name of collections) {
    const rels = project.models.flatMap((m) => m.relationships.filter((r) => r.name === name));
    if (!rels.length || rels.some((r) => r.scalar || !r.target || r.target.slice(r.target.lastIndexOf('.') + 1) !== entity)) return null;
  }
  return { entity, text: texts.join(' '), helper: helper.name, sources };
}

/** `parent.children`, `[c for c in parent.children if …]`, `sorted(…)`/`list(…)` of either: the relationship's name. */
function collectionItems(value: SyntaxNode): { name: string; text: string } | null {
  let node = unwrap(value);
  if (node?.type === 'call') node = unwrap(sameRows(node) === node ? null : sameRows(node));
  if (node && /^(list_comprehension|generator_expression|set_comprehension)$/.test(node.type)) {
    const clauses = node.namedChildren.filter((c) => c.type === 'for_in_clause');
    const body = node.childForFieldName('body');
    const left = clauses[0]?.childForFieldName('left');
    if (clauses.length !== 1 || left?.type !== 'identifier' || body?.text !== left.text) return null;
    node = unwrap(clauses[0]!.childForFieldName('right'));
  }
  if (node?.type !== 'attribute' || node.childForFieldName('object')?.type !== 'identifier') return null;
  const name = node.childForFieldName('attribute')?.text;
  return name ? { name, text: node.text } : null;
}

/**
 * A query of the function whose rows a loop walks, for a model with `lazy="immediate"`
 * relationships the query does not load another way: SQLAlchemy runs the relationship's SELECT
 * for each row as the rows load, read or not — N+1 at the query. Reported once per query and
 * relationship; a many-to-one is `medium` (the identity map may answer), a cap as PA108's.
 */
function reportImmediateLoads(ctx: FileRuleContext, source: RowsSource, candidates: ModelInfo[], text: string, entity: string, loop: LoopInfo, reported: Set<string>): void {
  const immediate = immediateRelationships(candidates, text);
  if (!immediate.size) return;
  const cap = rowsCap(source.text);
  const writer = iterationWriter(ctx.model, { functionIndex: loop.functionIndex }, loop);
  for (const [name, scalar] of immediate) {
    const key = `${source.call.start}:${name}`;
    if (reported.has(key)) continue;
    reported.add(key);
    ctx.report({
      node: source.call.node,
      message: `\`${source.op.what}\` loads ${entity} rows whose relationship ${entity}.${name} is \`lazy="immediate"\`: SQLAlchemy runs its SELECT once per row as the rows load, read or not (no loader option for it on the query)`
        + (scalar ? '; a many-to-one: one SELECT per distinct related row not in the identity map yet' : '')
        + (cap !== null ? `; the query returns at most ${cap} rows` : ''),
      ...(writer || (cap !== null && cap <= SMALL_CAP) ? { severity: 'low' as const } : scalar || cap !== null ? { severity: 'medium' as const } : {}),
    });
  }
}

export const lazyLoadInLoop: FileRule & RepoRule = {
  meta: {
    code: 'PA108',
    check: 'lazy_load_in_loop',
    family: 'query',
    severity: 'high',
    effort: 'S',
    summary: 'Lazy-loaded relationship accessed in a loop over ORM rows (hidden N+1)',
    what: 'Inside a loop (or comprehension) over rows from `select(Model)` / `session.query(Model)` / `Model.query`, finds access to a relationship that the project\'s model declares with a lazy loader (`relationship()` with the default `lazy="select"`, or `"dynamic"`), when the query sets no eager loader option for it. The rows may come from the same function, or from another method of the class or of a base class in the same file: `self.items = Model.query.filter(...).all()` in a setup method and `for x in self.items:` in a handler (every assignment of the attribute must be such rows), a property or method that returns the query, or a function of the file that does. `.options(*self.opts)` is read from what the iterating class sets `opts` to. Also the items of a row\'s collection relationship (`for c in parent.children: c.owner`), when `parent` is typed with a model (an annotation, or a query of the function loaded it, or it is the row of an enclosing loop over a query\'s rows: the second level of an eager-loaded collection, `selectinload(Order.lines)` without `.joinedload(OrderLine.product)`), or is a row the class or a base class (of any module) keeps on `self` (`self.event = Event.get(event_id)` in the setup method of a base handler, and `for c in self.event.contributions:` in a subclass; a parent loaded with `.options(...)` is left alone), and the rows a base class of another module keeps on `self` from a `Model.query` chain without options (`self.jobs = Job.query.filter(...).all()`), also when a method passes them to a helper of its module that loops over them (`tag_all(self.jobs)`); options the base query takes from the class (`.options(*self.job_options)`) are read from the base class unless a class in the module of the loop rebinds them. Rows a function of another module returns count too (`for j in fetch_jobs(...)` where every return of `fetch_jobs` is a query of one model; its options and criteria are read there), and so do the `.items` of the Flask-SQLAlchemy `Pagination` such a function or a model\'s classmethod returns when every return is `Model.query….paginate(...)` or `db.paginate(select(Model)…)` (`page = Post.recent_page(n)` then `for p in page.items`, or `….recent_page(n).items` iterated directly), also a method of a storage object (`[p.to_response() for p in storage.list_plans()]`): a lazy relationship read on each item, or a method or property of the rows\' model called on each item (with no arguments, or arguments the loop does not change) whose body reads a lazy relationship of `self` (a read under a flag of the method counts when the call turns the flag on: `s.describe(with_volumes=True)` for `if with_volumes: ... self.volumes`) (not one the loop itself read first, nor a method that runs a query of its own: PA107\'s); high for a collection, medium for a many-to-one. A function of the file whose returns are a query of one model or the items of a relationship collection of it (`return Child.query.filter(...).all()` in one branch, `return [c for c in parent.children if c.active]` in another) gives rows of that model. A column that loads on first access is read per row the same way: declared deferred in the model (`deferred(Column(...))`, `mapped_column(..., deferred=True)`, `column_property(..., deferred=True)`, in its class body or a base\'s) or deferred by the query (`defer(Model.col)`), one SELECT per row unless the query undefers it (`undefer(Model.col)`, `undefer_group("g")` of its group, `load_only(...)` naming it); a `deferred_raiseload=True` column raises instead and is left alone. A query\'s `load_only(Model.a, Model.b)` (also `Load(Model).load_only(...)`, or column names as strings) loads those columns and the primary key only: reading any other column of the model on each row (not a foreign key, a relationship or a property) is reported the same way, unless an `undefer(...)` of the query loads it, and not for `load_only(..., raiseload=True)`, whose other columns raise instead; under `AsyncSession` such a load raises `MissingGreenlet` (`high`). Chained on a many-to-one\'s eager loader (`selectinload(Order.customer).load_only(Customer.name)`, `joinedload(...).defer(Customer.notes)`, `selectinload(...).options(load_only(...))`), those options narrow the related rows: `row.customer.email` loads once per related row, `medium` (`high` under `AsyncSession`). A relationship declared `lazy="immediate"` is loaded by its own SELECT for every row as the rows load, whether the loop reads it or not: a query of the function whose rows a loop walks is reported at the query (once per such relationship) unless a loader option names it (`selectinload(...)`, `noload(...)`, `lazyload(...)`); a many-to-one is `medium`. Relationships declared through an imperative mapping (`registry.map_imperatively(Cls, table, properties={...})`, `mapper(...)`) or added by the other side\'s `backref=` count too. Options and criteria held in a local name (`.options(*opts)`, `.filter(*criteria)`) are read from its assignments. Serializers loop too: rows handed whole to a marshmallow `Schema(many=True).dump(rows)`/`.jsonify(rows)` (`only=`/`exclude=` and a field\'s `attribute=` are read), or returned by a view whose response decorator dumps them with such a schema (flask-smorest\'s `@blp.response(200, PetSchema(many=True))`, APIFlask\'s `@bp.output(...)`, flask-apispec\'s `@marshal_with(...)`, flask-accepts\' `@responds(schema=PetSchema, many=True)`; the schema made there or a module-level instance, also an imported one), to `[Out.model_validate(r) for r in rows]`, or returned from a FastAPI route whose `response_model=` (or return annotation) is a list of a pydantic model (or a fastapi-pagination `Page[Out]` of `paginate(db, select(...))`) — in the route, or returned by a function or repository method it calls (`return crud.list_items(db)`, `await repo.list()`, or the `.items` of a Flask-SQLAlchemy page it returns: `schema.dump(page.items)`) — read each field of the schema and its bases per row: fields named like a lazy relationship of the rows\' model are reported at the call or `return` (one finding per site, listing them; and, in a finding of its own, fields that are columns the query does not load: left out by its `load_only(...)`, deferred by it or by the model, not undeferred: one SELECT per row, `MissingGreenlet` under an `AsyncSession`; a literal cap on the query, `.limit(5)`, lowers it as for a loop), and a nested schema on a collection relationship reads its own relationship fields per item of it (also under a route that returns one object); under `AsyncSession` the message says the lazy load raises `MissingGreenlet`. The rows of a `lazy="dynamic"` relationship\'s query (`owner.visits.filter(...)`, also bound to a name first: `comments = post.comments.order_by("id").all()`; the chain\'s loader options count) are its target model\'s. A function handed each row of such a loop (`[serialize(o) for o in orders]`, of the repo, in the file or another module) that reads lazy relationships of that parameter loads them once per row, inside it: reported at the call. So does a function of the repo handed the whole list of such rows (`to_dicts(rows)`, by position or keyword, `rows` a name bound to a query\'s rows in the caller, or to a filter of them: `[r for r in rows if r.active]`) that loops over that parameter (also through `enumerate(rows)`, `sorted(rows, key=...)`) and reads lazy relationships of each item: reported at the call, where the loader option goes; a many-to-one that only keys the helper\'s grouping (`groups[r.owner].append(r)`, also `groups[r.owner.team]`) is advisory, what a function it hands each item reads on it counts too (`[dog_row(d) for d in dogs]`, one level down); rows an awaited query loaded in an `async def` (an `AsyncSession`\'s) make it a failure, `MissingGreenlet` on the first load (`high`); a literal cap on the query (`.limit(5)`) lowers it as it does in place, and a loop that stops early (a search, also `any(...)`/`next(...)` over the rows) is left alone. A model\'s own method or property called on each row (`for e in Event.query...: e.delete()`) that reads lazy relationships of `self` loads them once per row, inside the method: reported at the call when the loop\'s query names the model and its loader options (or the row it picks the rows by: `with_parent(x)`, `x_id == ...`, `filter_by(x=...)`) do not cover them; `low` when the method (or the loop) also writes. A read that the loop\'s end follows unconditionally (`first = row.owner; break`, or a read inside the `if` branch that returns) is not reported; a find-first search that reads the relationship before a conditional stop (`if len(row.lines) > 50: return row`) loads it on every row until the hit, up to N: `low`, as the hit usually comes early. Nor is a read that runs only for the items matching one key the loop does not change (`if e.kind == self.wanted.kind`, in the body or as a comprehension filter). The items of one row\'s collection are `medium`: N is that row\'s children, not the table; advisory when that row is known only by its type (a parameter, a helper\'s result) in a project whose engines and session factories outside tests, migrations and scripts are all asyncio ones (`create_async_engine`, `async_sessionmaker`, `AsyncSession`): there a lazy load raises `MissingGreenlet` instead of querying, so the code runs only because whoever loaded the row loaded the relationship eagerly (the callers are where to check). An eager option narrowed by criteria (`selectinload(Depot.crates.and_(Crate.sealed == False))`) still loads the relationship. A many-to-one whose key the query pins (`Child.parent_id == parent_id`, `filter_by(parent=p)`, `with_parent(p)`: every row points at the same related row, which the identity map serves) is left alone only when that filter runs on every path to the loop: one an `if` adds (`if parent_id is not None: stmt = stmt.where(Child.parent_id == parent_id)`) pins nothing on the path that skips it, and the load keeps its severity, the message naming the branch. A many-to-one is `medium` (its lazy load looks in the identity map first) and advisory when it points at the rows\' own model (a tree\'s parent, usually loaded by the same query) or when the loop groups the rows by it (`groups[r.owner].append(r)`, `setdefault(r.owner, [])`, a query sorted by `owner_id`: one SELECT per distinct owner), and silent when it leads back to the row whose collection the loop walks (`for b in author.books: b.author`: that row is loaded, the identity map answers without SQL); the side of a one-to-one without the foreign key (`backref(..., uselist=False)`, or a `relationship(..., uselist=False)`, which only that side needs) is loaded by the other table\'s key every time and keeps the loop\'s severity. A query capped by a literal (`.limit(5)`, `paginate(per_page=20)`) bounds N: `low` up to ten rows, `medium` above. `low` in a per-item workflow (the iteration also writes, flushes or commits, or calls outside the database: a network client, an integration, a message sent); advisory when each iteration commits and the project\'s sessions expire on commit: the rows are expired and their relationships load again whatever the query eager-loads. Rows are also those a method of one fetched row returns (`user = User.query.get(i); user.get_solves()` is the method\'s query, not the user\'s), and those `q = Model.query` refined by reassignment holds; a marshmallow schema may be made inline, held in a local or bound once at module level (`users_schema = UserSchema(many=True)`), in the module that dumps or in one it imports the instance from (flask-marshmallow\'s `from app.schemas import users_schema`, also `schemas.users_schema` or through a package\'s re-export; that binding\'s `only=`/`exclude=` count, and a parameter or local of the same name shadows it). In a memoised function (`@lru_cache`, `@cache.memoize(...)`) the loads run on a cache miss only: `medium` at most, with the decorator named. Rows an `AsyncSession` loaded (an awaited query in the coroutine that loops): a lazy load there does not query, it raises `MissingGreenlet` on the first row — a failure on every call, so `high` whatever the number of rows, the workflow or the cap (`medium` for a many-to-one, which the identity map may answer without IO), and neither a SQLite-only project, a background job nor an admin page lowers it. The items of a collection of the one row a function of the repo returns are followed as well (`ws = fetch_workspace(db, i)` then `for f in ws.folders:`, the function in any module, a repository\'s `get`, a model\'s classmethod over `select(cls)`: every return one row of one model\'s query, whose loader options count, `selectinload(Workspace.folders).selectinload(Folder.viewers)` included); so is a method or property of the items\' model called on each item (`[f.serialize() for f in ws.folders]`, `serialize` reading `self.viewers`), also when the row is loaded in place or the function is handed it typed with the model: `medium` (N is that row\'s children), `low` for a many-to-one read on them or when the iteration writes; silent for the way back to that row (`f.workspace`). An association proxy of the model (`template_name = association_proxy("template", "name")` of `sqlalchemy.ext.associationproxy`, also imported under another name or as `AssociationProxy(...)`, in the class body or a base\'s) reads its relationship first: a read of it counts as a read of that relationship everywhere above (in the loop, in a model method or helper run per row, as a serializer field), at that relationship\'s severity (a proxy over a collection, or over the association objects of a many-to-many, loads the whole collection: `high`), and a loader option for the relationship (`joinedload(Plan.template)`) covers it; read beside its relationship in the same loop it is one load, reported once. Where only background jobs reach the loop (a Celery/RQ/Dramatiq task, a function a scheduler runs: APScheduler\'s `scheduled_job`/`add_job`, the `schedule` library\'s `every(...).do(fn)`, a decorator whose arguments say when it runs (`@runner.add(every(1).hours)`, `crontab(...)`, a trigger) or a method of a module-level scheduler object), `low` at most (not the `MissingGreenlet` failure): a job\'s throughput, not a user\'s wait.',
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
    // Relationships, or deferred columns (declared by a model, or by a query of this file), to load per row.
    if (model.isTestFile || !(projectIndex(project).anyRelationships || anyDeferred(project) || DEFER_CALL.test(model.source))) return;
    const names = lazyNames(project);
    // A query's own `defer(Model.col)` defers a column no declaration names; a model's
    // `lazy="immediate"` relationship loads per row whether the loop reads it or not.
    const everyLoop = DEFER_CALL.test(model.source) || anyImmediate(project);
    // `lazy="immediate"` relationships already reported at their query.
    const immediateReported = new Set<string>();
    const resolvers = new Map<string, SelfRows>();
    for (const loop of model.loops) {
      if (loop.kind === 'while') continue;
      const t = loopTarget(loop);
      // Cheap first: the loop must read `<item>.<name>` for a name some model's lazy relationship has.
      if (!t || !(everyLoop || readsName(loop.node.text, t.name, names))) continue;
      const line = loop.node.startPosition.row + 1;
      // In a method, `self.items` and chains on `self.query(...)` are followed through the class
      // and its bases and subclasses in the file.
      const cls = loop.functionIndex >= 0 ? classOfFunction(model, loop.functionIndex) : null;
      let viaSelf = resolvers.get(cls ?? '');
      if (!viaSelf) resolvers.set(cls ?? '', (viaSelf = selfRowsResolver(model, cls)));
      const rows = sameRows(t.iterable);
      // The items of a row's collection relationship (`for c in parent.children:`), or the rows of a query.
      // Or the rows of a dynamic relationship's query (`comments = post.comments.order_by(...).all()`):
      // the items of that collection, loaded by that query (its options count).
      const dynamic = dynamicQueryRows(model, rows, loop.functionIndex, line);
      const viaChain = dynamic ? collectionRows(model, project, dynamic.relation, loop.functionIndex, line) : null;
      const collection = viaChain ? { ...viaChain, text: [viaChain.text, dynamic!.chain].filter(Boolean).join(' ') } : collectionRows(model, project, rows, loop.functionIndex, line);
      const source = collection ? null : rowsSource(model, rows, loop.functionIndex, line, 0, viaSelf);
      // Rows a helper of the file returns from a query or a relationship of one model.
      const helped = collection || source ? null : helperRows(model, project, rows, loop.functionIndex, line);
      if (!source?.entity && !collection && !helped) continue;
      let text: string;
      let entity: string;
      if (helped) {
        text = helped.text;
        entity = helped.entity;
      } else if (source) {
        // `.options(*self.opts)`: the options the iterating class (or a subclass) sets; unknown → silent.
        const options = selfOptionsText(model, cls, source.text);
        if (options === null) continue;
        const heldBy = heldText(model, source.text, source.call.functionIndex);
        text = [source.text, options, heldBy].filter(Boolean).join(' ');
        entity = source.entity!;
      } else {
        text = [collection!.text, heldText(model, collection!.text, loop.functionIndex)].filter(Boolean).join(' ');
        entity = collection!.entity;
      }
      const candidates = modelsNamed(project, model, entity);
      if (source && source.call.functionIndex === loop.functionIndex) reportImmediateLoads(ctx, source, candidates, text, entity, loop, immediateReported);
      const lazy = lazyRelationships(candidates);
      // Columns that load per row on first access: deferred by the model or the query, not undeferred.
      const deferred = deferredColumns(candidates, text);
      // `load_only(A.x, A.y)`: every other column of the rows (not the key) loads on first access.
      const unloaded = rootUnloadedColumns(candidates, text, entity);
      for (const c of unloaded) deferred.add(c);
      for (const rel of lazy.keys()) deferred.delete(rel);
      // `selectinload(A.b).load_only(B.x)` / `.defer(B.y)`: columns of each related row left unloaded.
      const paths = pathUnloadedColumns(candidates, text, entity, (n) => modelsNamed(project, model, n));
      // A criterion that pins the related row (`Child.parent_id == parent_id`) added in a branch
      // (`if parent_id is not None: stmt = stmt.where(...)`) pins nothing on the other path.
      const branchOnly = source ? branchOnlyRefinements(model, source.call.functionIndex, source.call.functionIndex === loop.functionIndex ? loop.node : source.call.node) : [];
      const pinText = branchOnly.length ? withoutFragments(text, branchOnly) : text;
      const pinnedOnOnePath = new Set<string>();
      for (const [rel, info] of [...lazy]) {
        if (loadedByQueryOnEveryPath(text, pinText, rel, info)) lazy.delete(rel);
        else if (pinText !== text && loadedByQuery(text, rel, info)) pinnedOnOnePath.add(rel);
      }
      if (!lazy.size && !deferred.size && !paths.length) continue;
      // Rows loaded in another function (a setup method, a property, a helper): say where.
      const elsewhere = source && source.call.functionIndex !== loop.functionIndex ? model.functions[source.call.functionIndex] : undefined;
      const held = rows.type === 'attribute' && selfMember(rows) ? `, held in \`${rows.text.replace(/\s+/g, '')}\`` : '';
      // Rows an awaited query loaded in an `async def`: an AsyncSession's rows, whose lazy loads
      // raise instead of querying.
      const asyncRows = !!source && source.call.awaited && loop.functionIndex >= 0 && model.functions[loop.functionIndex]!.isAsync;
      // A statement, flush or commit in the same iteration: a per-item workflow (`low`, as PA107).
      const writer = iterationWriter(model, { functionIndex: loop.functionIndex }, loop);
      // A query capped by a literal (`.limit(5)`, a page of `per_page=20`): N does not grow with the data.
      const cap = source ? rowsCap(source.text) : null;
      // A commit per iteration expires every loaded row: the next row's relationships load again
      // whatever the query eager-loaded, so no loader option fixes it.
      const expiring = commitsPerIteration(model, loop) && sessionsExpireOnCommit(project);
      const rowsWhat = source ? source.op.what : rows.text.replace(/\s+/g, '');
      // `session.refresh(row, ["body"])` in the loop loads the column itself (PA107 reports that SELECT).
      if (deferred.size && !new RegExp(String.raw`\.refresh\(\s*${t.name}\s*,`).test(loop.node.text)) {
        for (const { node: attr, name, search } of itemAttributeReads(model, loop, t.name, (n) => deferred.has(n))) {
          ctx.report({
            node: attr,
            message: `\`${t.name}.${name}\` loads the deferred column ${entity}.${name} once per row of \`${rowsWhat}\` (${unloaded.has(name) ? `the query's \`load_only(...)\` does not name it, so it is left out of the SELECT` : 'deferred, and no `undefer(...)`/`load_only(...)` for it on the query'}): one SELECT per row`
              + (asyncRows ? '; on an `AsyncSession` the load raises `MissingGreenlet` instead' : '')
              + (writer ? `; each iteration also ${workflowAction(writer)}: a per-item workflow whose round trips are there anyway` : '')
              + (cap !== null ? `; the query returns at most ${cap} rows` : '')
              + (search ? SEARCH_NOTE : ''),
            ...(asyncRows ? { severity: 'high' as const, failure: true as const }
              : writer || (cap !== null && cap <= SMALL_CAP) || search ? { severity: 'low' as const } : (!source && !helped) || cap !== null ? { severity: 'medium' as const } : {}),
            ...(expiring ? { advisory: EXPIRED_EVIDENCE } : {}),
          });
        }
      }
      // `row.b.y` where the loader of `b` leaves `y` unloaded: one SELECT per related row. A
      // many-to-one's rows may be shared (`medium`); under an AsyncSession the load raises.
      if (!new RegExp(String.raw`\.refresh\(\s*${t.name}\b`).test(loop.node.text)) {
        for (const p of paths) {
          for (const { node: attr, name, search } of itemAttributeReads(model, loop, `${t.name}.${p.rel}`, (n) => p.columns.has(n))) {
            ctx.report({
              node: attr,
              message: `\`${t.name}.${p.rel}.${name}\` loads the column ${p.target}.${name} once per related row of \`${rowsWhat}\`: the query's \`${p.loader}(${entity}.${p.rel})\` ${p.columns.get(name) === 'load_only' ? 'chains a `load_only(...)` that does not name it' : 'defers it'}, so each ${p.target} loaded that way reads it with its own SELECT`
                + (asyncRows ? '; on an `AsyncSession` the load raises `MissingGreenlet` instead' : '')
                + (writer ? `; each iteration also ${workflowAction(writer)}: a per-item workflow whose round trips are there anyway` : '')
                + (cap !== null ? `; the query returns at most ${cap} rows` : '')
                + (search ? SEARCH_NOTE : ''),
              ...(asyncRows ? { severity: 'high' as const, failure: true as const }
                : writer || (cap !== null && cap <= SMALL_CAP) || search ? { severity: 'low' as const } : { severity: 'medium' as const }),
              ...(expiring ? { advisory: EXPIRED_EVIDENCE } : {}),
            });
          }
        }
      }
      if (!lazy.size) continue;
      const memo = memoDecoratorOf(model, loop.functionIndex);
      const lazyReadsHere = [...itemAttributeReads(model, loop, t.name, (n) => lazy.has(n))];
      // One load per relationship: an association proxy read beside its relationship (or another
      // proxy through it) loads nothing more.
      const loadsSeen = new Set(lazyReadsHere.filter((r) => !lazy.get(r.name)!.via).map((r) => r.name));
      for (const { node: attr, name, search } of lazyReadsHere) {
        // A many-to-one's lazy load looks in the session's identity map first: one SELECT per
        // distinct related row not loaded yet, not always one per row.
        const rel = lazy.get(name)!;
        if (rel.via) {
          if (loadsSeen.has(rel.via)) continue;
          loadsSeen.add(rel.via);
        }
        // A many-to-one to the loop's own model (a tree's `parent`) loaded by a query of that
        // model: the parents are often rows the same query loaded, answered by the identity map.
        const selfReferential = !!source && rel.scalar && !!rel.target && rel.target.replace(/^.*\./, '') === entity.replace(/^.*\./, '');
        // Rows grouped by the related row (`by_owner[r.owner].append(r)`, or sorted by its key
        // `order_by(R.owner_id)`): many rows share each target, so it is one SELECT per distinct
        // target and the identity map answers the rest.
        const grouped = rel.scalar && !selfReferential && groupedBy(attr, text, name);
        // The way back to the row whose collection the loop walks (`for l in order.lines:
        // l.order`): that row is loaded, and the many-to-one finds it in the identity map.
        const backToOwner = !!collection && leadsBackToOwner(rel, name, modelsNamed(project, model, collection.owner.split('.')[0]!), collection.owner.split('.').slice(1).join('.'), lazyRelationships(candidates));
        // No SQL at all (measured: 0 statements): nothing to report, not even as advice.
        if (backToOwner) continue;
        ctx.report({
          node: attr,
          message: `\`${t.name}.${name}\` lazy-loads ${entity}.${loadedRelation(name, rel)}${rel.via ? ` (\`${name}\` is an association proxy through it)` : ''} once per row of \`${source ? source.op.what : rows.text.replace(/\s+/g, '')}\``
            + (helped ? ` (the rows \`${helped.helper}\` returns: ${helped.sources.join(' or ')}; no eager loader option for it)`
              : !source ? ` (the collection ${collection!.owner}; no eager loader option for it where the parent is loaded)`
              : elsewhere ? ` (line ${source.call.line} in \`${elsewhere.qualifiedName}\`${held}; no eager loader option on the query)` : ' (no eager loader option on the query)')
            + oneRowNote(rel)
            + (pinnedOnOnePath.has(name) ? `; the filter that picks the rows by their \`${loadedRelation(name, rel)}\` runs only in a branch: on the path that skips it the rows point at different ${rel.target ? `\`${rel.target.replace(/^.*\./, '')}\` rows` : 'rows'}` : '')
            + (asyncRows ? '; on an `AsyncSession` the lazy load raises `MissingGreenlet` instead' : '')
            + (writer ? `; each iteration also ${workflowAction(writer)}: a per-item workflow whose round trips are there anyway` : '')
            + (cap !== null ? `; the query returns at most ${cap} rows` : '')
            + (memo ? `; \`${memo}\` memoises the function: the loads run once per key (and expiry), not on every call` : '')
            + (search ? SEARCH_NOTE : ''),
          // A many-to-one on the items of each row's collection: one SELECT per distinct target,
          // and the items of the rows of one query share many (a form's fields, an order's products).
          // A memoised function pays them on a cache miss only: medium at most.
          // On an AsyncSession a load that needs the database raises (`MissingGreenlet`): a failure
          // on every call, however few the rows; a many-to-one may find its row in the identity map.
          ...(asyncRows && !selfReferential ? { severity: rel.scalar ? 'medium' as const : 'high' as const, failure: true as const }
            : writer || (cap !== null && cap <= SMALL_CAP) || (collection?.nested && rel.scalar) || search ? { severity: 'low' as const } : rel.scalar || (!source && !helped) || cap !== null || memo ? { severity: 'medium' as const } : {}),
          ...(selfReferential ? { advisory: SELF_REFERENCE_EVIDENCE } : grouped && !asyncRows ? { advisory: GROUPED_EVIDENCE } : expiring ? { advisory: EXPIRED_EVIDENCE }
            : collection?.unseen && asyncOnlyOrm(project, (f) => offlineFile(project, f)) ? { advisory: ASYNC_UNSEEN_EVIDENCE } : {}),
          // A `lazy="dynamic"` relationship is a query object: no loader option populates it.
          ...(rel.dynamic ? { recommendation: DYNAMIC_FIX } : {}),
        });
      }
    }
  },
  checkRepo(ctx: RepoRuleContext): void {
    reportHeldCollectionLoops(ctx);
    reportHelperParamLazyLoads(ctx);
    reportRowsHandOffLazyLoads(ctx);
    reportHelperRowLoops(ctx);
    reportSerializedRows(ctx);
    reportRowMethodLazyLoads(ctx);
    reportReturnedRowCollections(ctx);
  },
};
