/**
 * PA108 through a returned row: the collection of one row that a function of the repo returns,
 * walked by its caller.
 *
 *     def fetch_workspace(ws_id):                       # app/dao.py
 *         return Workspace.query.filter_by(id=ws_id).one()
 *
 *     ws = fetch_workspace(ws_id)                        # app/views.py
 *     return [f.serialize() for f in ws.folders]         # serialize() reads self.viewers
 *
 * The layering route → service → repository hides both halves from the file phase: the row's
 * query (and its loader options) is in the repository, the loop in the route. The file phase
 * records:
 * - `RETURNS_ROW` on a function whose every return (a `None` aside) is one row of one model
 *   fetched by a query (`....one()`, `.first()`, `session.get(M, pk)`, `select(cls)` in a model's
 *   classmethod), `what` = `entity|text`, the queries' text for their loader options;
 * - `ROW_COLLECTION_LOOP` at a call whose result a loop walks a collection of (`for f in ws.folders`
 *   with `ws = fetch_workspace(...)`, or `fetch_workspace(...).folders`), `what` =
 *   `coll|item|reads|calls|w`: the item's attribute reads (`name@line:column:endColumn`), its
 *   zero-argument method calls (same form), `w` when the iteration writes.
 * The repo phase resolves the call, types the collection through the returned row's model, and
 * reports the reads (direct, or in the item's model method: `ROW_READS`) of lazy relationships
 * of the items' model that the row's query does not eager-load (`selectinload(W.folders)
 * .selectinload(F.viewers)`), except the way back to the row itself.
 *
 * Silent: a row a dependency injects (`lib: Library = Depends(...)`: loaded there, options
 * unknown here); a coroutine's row read in a coroutine (an `AsyncSession`'s: PA111's failure);
 * reads a method makes only under a flag the call leaves off (`to_dict(self, with_x=False)`);
 * items the loop keeps by one key (`if s.id == wanted`); a find-first search.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { Effect } from '../../../analysis/summary.js';
import type { RepoRuleContext } from '../../types.js';
import type { CallInfo, FileModel, LoopInfo } from '../../../semantic/model.js';
import type { ModelInfo } from '../../../discovery/context.js';
import { callAt, valueTypeOf } from '../../../semantic/model.js';
import { fetchedRow } from '../../../semantic/valueTypes.js';
import { callGraphOf, ownSites } from '../../../analysis/callgraph.js';
import { UNTYPED } from '../../../analysis/objects.js';
import { modelsNamedInSummary, nearestModels, projectIndex } from '../../projectFacts.js';
import { iterationWriter } from './dbCalls.js';
import { heldText, lazyRelationships, leadsBackToOwner, loadedByQuery, loadedRelation, relationLabel, MAX_ROWS_TEXT, oneRowNote, sameRows, type LazyRelationship } from './loadedRelations.js';
import { classMembers, ROW_QUERY, rowReadsAt } from './rowCalls.js';
import { returnsOf } from './selfRows.js';
import { itemAttributeReads, lastAssignment, loopTarget, unwrap } from './semantics.js';

/** A function whose every return is one row of one model's query: `what` = `entity|text`. */
export const RETURNS_ROW = 'returns_row';
/** Site fact: a loop over a collection of the row a call returns (see the module's docs). */
export const ROW_COLLECTION_LOOP = 'row_collection_loop';

/** A body that may fetch one row: a query word, or a `get`. */
const FETCH_WORD = /\b(select|query|get|get_or_404|first_or_404|one_or_404)\b/;

/** `RETURNS_ROW` and `ROW_COLLECTION_LOOP` facts of a file. */
export function collectReturnedRowFacts(model: FileModel): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return effects;
  if (model.modelClasses.size) returnedRows(model, effects);
  collectionLoops(model, effects);
  return effects;
}

function returnedRows(model: FileModel, effects: Effect[][]): void {
  model.functions.forEach((fn, i) => {
    if (fn.isGenerator || !fn.body || (fn.parent >= 0 && !fn.className)) return;
    const body = model.source.slice(fn.body.startIndex, fn.body.endIndex);
    if (!body.includes('return') || !FETCH_WORD.test(body)) return;
    let entity: string | null = null;
    const texts: string[] = [];
    for (const r of returnsOf(fn)) {
      let value = unwrap(r.namedChild(0));
      if (!value || value.type === 'none') continue;
      // `row = q.first(); ...; return row`: the row bound last before the `return`.
      if (value.type === 'identifier') {
        const a = lastAssignment(model, value.text, i, r.startPosition.row + 1);
        value = a && a.functionIndex === i && !a.fromWith ? unwrap(a.value) : null;
      }
      // Names the chain takes its statement or query from (`stmt = select(M)...`, `q = q.filter(...)`),
      // bound in the function before the `return` (a few steps at most).
      let steps = 0;
      const follow = (name: string): SyntaxNode | null => {
        const a = ++steps > 6 ? null : lastAssignment(model, name, i, r.startPosition.row + 1);
        return a && a.functionIndex === i && !a.fromWith ? unwrap(a.value) : null;
      };
      const t = value ? fetchedRow(model, value, fn.className ?? undefined, follow) : null;
      const found = t ? t.slice(t.lastIndexOf('.') + 1) : null;
      if (!found || (entity && found !== entity)) return;
      entity = found;
      texts.push(value!.text, heldText(model, value!.text, i));
    }
    const text = texts.filter(Boolean).join(' ').replace(/\s+/g, ' ');
    if (!entity || text.length > MAX_ROWS_TEXT) return;
    effects[i]!.push({ kind: RETURNS_ROW, what: `${entity}|${text}`, line: fn.startLine, column: 1 });
  });
}

/** `name@line:column:endColumn` of a node. */
function at(name: string, node: SyntaxNode): string {
  return `${name}@${node.startPosition.row + 1}:${node.startPosition.column + 1}:${node.endPosition.column + 1}`;
}

/**
 * The item's attribute reads and its zero-argument method calls in the loop's iteration (not
 * assigned, not in a find-first search, not read once on the way out): `itemAttributeReads`.
 */
function itemUses(model: FileModel, loop: LoopInfo, item: string): { reads: string[]; calls: string[] } {
  const reads: string[] = [];
  const calls: string[] = [];
  for (const { node, name, search, call } of itemAttributeReads(model, loop, item, (n) => !n.startsWith('_'), true)) {
    if (!search) (call ? calls : reads).push(at(name, node));
  }
  return { reads, calls };
}

function collectionLoops(model: FileModel, effects: Effect[][]): void {
  for (const loop of model.loops) {
    if (loop.kind === 'while' || loop.functionIndex < 0) continue;
    const t = loopTarget(loop);
    const it = t ? unwrap(sameRows(t.iterable)) : null;
    if (!t || it?.type !== 'attribute') continue;
    const coll = it.childForFieldName('attribute')?.text ?? '';
    if (!coll || coll.startsWith('_')) continue;
    const line = loop.node.startPosition.row + 1;
    let holder = unwrap(it.childForFieldName('object'));
    // The row in place: a parameter or name annotated with a model of the file (`ws: Workspace`).
    let inline: { entity: string; text: string } | null = null;
    if (holder?.type === 'identifier') {
      const a = lastAssignment(model, holder.text, loop.functionIndex, line);
      if (!a || a.functionIndex !== loop.functionIndex) {
        const type = valueTypeOf(model, holder.text, loop.functionIndex, line);
        const name = type && /^[\w.]+$/.test(type) ? short(type) : '';
        if (!model.modelClasses.has(name)) continue;
        // A row a dependency injects (`lib: Library = Depends(get_library)`, `Annotated[Library, Depends(...)]`)
        // was loaded there, with whatever options it chose.
        const param = model.functions[loop.functionIndex]!.params.find((p) => p.name === holder!.text);
        if (param && /\b(Depends|Security|Inject|Provide)\b/.test(`${param.annotation ?? ''} ${param.defaultText ?? ''}`)) continue;
        inline = { entity: name, text: '' };
      } else {
        if (a.fromWith || !a.value || a.target !== holder.text) continue;
        holder = unwrap(a.value);
        // `lib = fetch(...) or abort(404)`: the row, when there is one.
        if (holder?.type === 'boolean_operator' && holder.childForFieldName('operator')?.text === 'or') holder = unwrap(holder.childForFieldName('left'));
      }
    }
    let call: CallInfo | undefined;
    if (!inline) {
      if (holder?.type === 'await') holder = unwrap(holder.namedChild(0));
      if (holder?.type !== 'call') continue;
      // A row a query of the function loads (`ws = Workspace.query.get(i)`): its text is here.
      const fetched = fetchedRow(model, holder);
      if (fetched) inline = { entity: short(fetched), text: [holder.text, heldText(model, holder.text, loop.functionIndex)].filter(Boolean).join(' ').replace(/\s+/g, ' ') };
      else {
        call = callAt(model, holder);
        // What a library call returns is nothing the repo phase can follow (a repository's `get`
        // may be the repo's own: it resolves the call).
        if (!call || call.functionIndex !== loop.functionIndex || call.qualifiedName?.startsWith('builtins.')) continue;
      }
    }
    const { reads, calls } = itemUses(model, loop, t.name);
    if (!reads.length && !calls.length) continue;
    if (inline && (!calls.length && !reads.length || inline.text.length > MAX_ROWS_TEXT)) continue;
    // A coroutine's own row: an `AsyncSession`'s, where a lazy load raises instead (PA111's).
    if (inline && model.functions[loop.functionIndex]!.isAsync) continue;
    const w = iterationWriter(model, { functionIndex: loop.functionIndex }, loop) ? 'w' : '';
    const what = `${coll}|${t.name}|${reads.join(',')}|${calls.join(',')}|${w}`;
    effects[loop.functionIndex]!.push(inline
      ? { kind: ROW_COLLECTION_LOOP, what: `${what}|${inline.entity}|${inline.text}`, line: loop.node.startPosition.row + 1, column: loop.node.startPosition.column + 1 }
      : { kind: ROW_COLLECTION_LOOP, what, line: call!.line, column: call!.column });
  }
}

interface Use { name: string; line: number; column: number; endColumn: number }

function uses(list: string): Use[] {
  const out: Use[] = [];
  for (const u of list ? list.split(',') : []) {
    const m = /^(\w+)@(\d+):(\d+):(\d+)$/.exec(u);
    if (m) out.push({ name: m[1]!, line: Number(m[2]), column: Number(m[3]), endColumn: Number(m[4]) });
  }
  return out;
}

const short = (q: string) => q.slice(q.lastIndexOf('.') + 1);

/** PA108's repo phase for `ROW_COLLECTION_LOOP` sites. */
export function reportReturnedRowCollections(ctx: RepoRuleContext): void {
  const graph = callGraphOf(ctx.index);
  const byName = projectIndex(ctx.project).modelsByName;
  for (const { ref, file, site } of ownSites(graph, ROW_COLLECTION_LOOP)) {
    const parts = site.what.split('|');
    const [coll = '', item = '', readList = '', callList = '', w = '', inlineEntity = ''] = parts;
    let owner: string;
    let text: string;
    let owners: ModelInfo[];
    let where: string;
    if (inlineEntity) {
      // The row is the function's own (loaded here, or a parameter typed with the model): the file
      // phase reports direct reads; methods and properties of the items are followed here.
      owner = inlineEntity;
      text = parts.slice(6).join('|');
      owners = modelsNamedInSummary(ctx.project, file, owner);
      where = text ? `the collection ${owner}.${coll} of the row loaded by \`${text.length > 80 ? `${text.slice(0, 77)}...` : text}\`, with no eager loader option for it` : `the collection ${owner}.${coll} of the row the function is handed`;
    } else {
      const call = graph.callAt(ref.file, site.line, site.column);
      if (!call || call.receiverType === UNTYPED) continue;
      const to = graph.resolveCall(ref.file, call);
      const fact = to ? graph.ownEffects(to).find((e) => e.kind === RETURNS_ROW) : undefined;
      if (!to || !fact) continue;
      // A coroutine's row read in a coroutine: an `AsyncSession`'s, where the lazy load raises
      // `MissingGreenlet` instead of querying (PA111 reports that failure).
      if (graph.function(to).isAsync && graph.function(ref).isAsync) continue;
      const bar = fact.what.indexOf('|');
      owner = fact.what.slice(0, bar);
      text = fact.what.slice(bar + 1);
      // The row's model as the helper's module names it.
      const helperFile = graph.fileOf(to);
      owners = modelsNamedInSummary(ctx.project, helperFile, owner);
      where = `the collection ${owner}.${coll} of the row \`${call.calleeText}()\` returns: \`${graph.function(to).qualifiedName}\` in ${helperFile.path} loads it with no eager loader option for it`;
    }
    // The collection: one relationship of the row's model, with one target.
    const targets = new Set<string>();
    for (const m of owners) {
      const r = m.relationships.find((x) => x.name === coll);
      if (!r || r.scalar || !r.target || r.lazy === 'dynamic') {
        targets.clear();
        break;
      }
      targets.add(short(r.target));
    }
    if (targets.size !== 1) continue;
    const entity = [...targets][0]!;
    const itemModels = nearestModels(ctx.project, byName.get(entity) ?? [], file.path);
    const lazy = lazyRelationships(itemModels);
    for (const [rel, info] of [...lazy]) if (loadedByQuery(text, rel, info)) lazy.delete(rel);
    // The way back to the row (`for f in ws.folders: f.workspace`): loaded, the identity map answers.
    for (const [name, info] of [...lazy]) if (leadsBackToOwner(info, name, owners, coll, lazy)) lazy.delete(name);
    for (const [name, info] of [...lazy]) if (info.dynamic) lazy.delete(name);
    if (!lazy.size) continue;
    const writes = w === 'w';
    const direct = new Set<string>();
    const report = (u: Use, hits: (readonly [string, LazyRelationship])[], via: string | null) => {
      const scalar = hits.every(([, info]) => info.scalar);
      ctx.report({
        path: file.path,
        location: { line: u.line, column: u.column, endLine: u.line, endColumn: u.endColumn },
        message: (via
          ? `\`${item}.${u.name}${via.endsWith('(a property)') ? '' : '()'}\` on each ${entity} of ${owner}.${coll} lazy-loads ${hits.map(([r, info]) => relationLabel(entity, r, info)).join(', ')} (read in \`${via}\`): one SELECT per item${hits.length > 1 ? ' for each' : ''}`
          : `\`${item}.${u.name}\` lazy-loads ${entity}.${loadedRelation(u.name, hits[0]![1])}${hits[0]![1].via ? ` (\`${u.name}\` is an association proxy through it)` : ''} once per item of ${owner}.${coll}`)
          + `; the items are ${where}` + (hits.length === 1 ? oneRowNote(hits[0]![1]) : scalar ? '; many-to-ones look in the identity map first' : '')
          + (writes ? '; each iteration also writes, a per-item workflow whose round trips are there anyway' : ''),
        // The children of one row grow with that row, not with the table: medium at most; a
        // many-to-one read on them (one SELECT per distinct target, a membership's group, an
        // activity's kind) is low.
        severity: writes || scalar ? 'low' : 'medium',
        function: graph.function(ref).name,
      });
    };
    for (const u of uses(readList)) {
      const info = lazy.get(u.name);
      direct.add(u.name);
      if (info && !inlineEntity) report(u, [[u.name, info]], null);
    }
    // A property of the items' model read per item (`f.viewer_names`), or a method called on each.
    const members = [...uses(readList).filter((u) => !lazy.has(u.name)).map((u) => ({ u, key: `${u.name}@` })), ...uses(callList).map((u) => ({ u, key: u.name }))];
    for (const { u, key } of members) {
      const m = classMembers(graph).get(`${entity}.${key}`);
      if (!m) continue;
      const own = graph.ownEffects(m);
      // The sites are calls without arguments: every flag of the method is left at its default.
      const reads = rowReadsAt(own, key.endsWith('@') ? null : { passes: '|' });
      if (!reads || own.some((e) => e.kind === ROW_QUERY)) continue;
      const hits = reads.map((r) => [r, lazy.get(r)] as const).filter((x): x is readonly [string, LazyRelationship] => !!x[1] && !direct.has(x[0]) && !direct.has(loadedRelation(x[0], x[1])));
      if (hits.length) report(u, hits, key.endsWith('@') ? `${graph.function(m).qualifiedName} (a property)` : graph.function(m).qualifiedName);
    }
  }
}
