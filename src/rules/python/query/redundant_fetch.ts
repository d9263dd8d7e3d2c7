/**
 * PA101 redundant_fetch
 *
 * What it does: finds a function that holds a loaded entity and calls a same-repo function with
 * only its id (`mark_cancelled(session, job.id)`), where the callee loads the same model again
 * by that parameter (`session.get(Job, job_id)`, `select(Job).where(Job.id == job_id)`).
 * Why is this bad? A second round trip (or at least an identity-map lookup and a refresh after
 * a commit) for an object the caller already had.
 *
 * Repo phase: the file phase records, per function, which parameter it reloads and which calls
 * pass `obj.id` of an object loaded earlier; the entity's load may itself be a same-repo helper
 * (`job = await repo.get_job(...)`), followed through the call graph. Both loads must name the
 * same model.
 * Severity: a reload once per call is a fixed extra primary-key load, `low`; per item of a loop it
 * grows with the rows: high in a handler, medium elsewhere (background work). A reload by
 * `session.get` / `Query.get` on the caller's session is advisory: the identity map returns the
 * object the caller holds without SQL.
 */
import type { Severity } from '../../../types.js';
import type { Effect, SummaryCall } from '../../../analysis/summary.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import type { SyntaxNode } from '../../../parse/parser.js';
import { callAt, effectiveRole, type CallInfo, type FileModel } from '../../../semantic/model.js';
import { LIBRARY_READS } from '../../../semantic/repositoryLibrary.js';
import { callGraphOf, siteCalls, type CallGraph, type FnRef } from '../../../analysis/callgraph.js';
import { HELD_ID_LOOKUP, PASSES_LOADED_ID, PK_QUERY_EFFECT, QUERY_EFFECT, RELOADS_PARAM, WRITE_EFFECT, type PassedId } from './dbCalls.js';
import { callArgs, lastAssignment, loopTarget, unwrap } from './semantics.js';

const PASSED_IDS = new Set([PASSES_LOADED_ID]);

/**
 * advanced-alchemy's services and repositories (v1.8, read from their source) look a row up by
 * its id before they change or delete it: `service.update(data, item_id=x)` runs
 * `repository.get(item_id)` and then `repository.update`, which gets it again
 * (service/_async.py `update`, repository/_async.py `update`); `delete(item_id)` and `get(item_id)`
 * run a SELECT by id. Methods that take the id, and where: `update`'s second argument or
 * `item_id=`, the first argument of the others.
 */
const LIBRARY_BY_ID: ReadonlyMap<string, number> = new Map([['update', 1], ['delete', 0], ['get', 0]]);

/**
 * The read a row `name` comes from, on the receiver `receiver`: the loop over `receiver.list(...)`
 * it is the item of, or the `name = await receiver.get_one(...)` it was assigned.
 */
function libraryRowLoader(model: FileModel, call: CallInfo, name: string, receiver: string): CallInfo | null {
  let value: SyntaxNode | null = null;
  for (let i = call.loops.length - 1; i >= 0 && !value; i--) {
    const loop = model.loops[call.loops[i]!]!;
    const t = loopTarget(loop);
    if (!t || t.name !== name) continue;
    if (t.iterable.type === 'identifier') {
      const a = lastAssignment(model, t.iterable.text, call.functionIndex, loop.node.startPosition.row + 1);
      value = a && a.functionIndex === call.functionIndex ? unwrap(a.value) : null;
    } else value = t.iterable;
    if (!value) return null;
  }
  if (!value) {
    const a = lastAssignment(model, name, call.functionIndex, call.line);
    value = a && a.functionIndex === call.functionIndex ? unwrap(a.value) : null;
  }
  // The load must come before the call: `row = await svc.get(row.id)` reloads a row it was handed.
  if (value?.type !== 'call' || value.endIndex > call.node.startIndex) return null;
  const loader = callAt(model, value);
  return loader && loader.dottedReceiver === receiver && LIBRARY_READS.has(loader.method) ? loader : null;
}

interface HeldIdLookup {
  call: CallInfo;
  row: string;
  loader: CallInfo;
}

const heldMemo = new WeakMap<FileModel, HeldIdLookup[]>();

/**
 * Calls that hand a row's id back to the service or repository object that loaded it
 * (`svc.update(data, item_id=row.id)` with `row` from `svc.list(...)`), once per file.
 */
function heldIdLookups(model: FileModel): HeldIdLookup[] {
  let out = heldMemo.get(model);
  if (out) return out;
  out = [];
  for (const call of model.calls) {
    const at = LIBRARY_BY_ID.get(call.method);
    if (at === undefined || call.functionIndex < 0 || !call.dottedReceiver || call.emptyArgs) continue;
    const { positional, keywords } = callArgs(call.node);
    const id = keywords.get('item_id') ?? positional[at];
    if (id?.type !== 'attribute' || id.childForFieldName('attribute')?.text !== 'id') continue;
    const row = id.childForFieldName('object');
    if (row?.type !== 'identifier') continue;
    const loader = libraryRowLoader(model, call, row.text, call.dottedReceiver);
    if (loader) out.push({ call, row: row.text, loader });
  }
  heldMemo.set(model, out);
  return out;
}

export function collectHeldIdLookups(model: FileModel): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return effects;
  for (const { call } of heldIdLookups(model)) effects[call.functionIndex]!.push({ kind: HELD_ID_LOOKUP, what: '', line: call.line, column: call.column });
  return effects;
}

export const redundantFetch: FileRule & RepoRule = {
  meta: {
    code: 'PA101',
    check: 'redundant_fetch',
    family: 'query',
    severity: 'high',
    effort: 'S',
    summary: 'An entity already loaded is passed on by id and loaded again by the callee',
    what: 'Finds a call that passes `obj.id` of an entity loaded earlier in the same function (by `session.get`, `select(Model)`, a legacy `session.query(Model)...one()`, Flask-SQLAlchemy\'s `Model.query.get_or_404(i)` / `.filter_by(...).first()`, or a same-repo helper or repository method that queries: `book = books.by_id(i)`) to a same-repo function whose body loads the same model again by that parameter (`session.get(Model, param)`, `select(Model).where(Model.id == param)`, `session.query(Model).filter(Model.id == param).one()` or `.filter_by(id=param)`, also through Flask-SQLAlchemy\'s `Model.query` (`Model.query.filter_by(id=param).first()`; `Model.query.get(param)` is a primary-key lookup), which always goes to the database; not one that locks or refreshes the row on purpose, `with_for_update()`, `populate_existing()`); a reload by `session.get` is advisory: the identity map returns the held object without SQL. In a project that depends on advanced-alchemy, also a row loaded through a service or repository (`for a in await svc.list(...)`, `a = await svc.get_one(...)`) whose id is handed back to the same object\'s `update(..., item_id=a.id)`, `delete(a.id)` or `get(a.id)`: the library looks the row up by that id again before it changes it (`update` with `item_id` twice).',
    why: 'The callee pays another query (or, after a commit with `expire_on_commit=True`, a refresh) for a row the caller holds; the two copies can also disagree when the caller changed the object in between.',
    bad: "from sqlalchemy.ext.asyncio import AsyncSession\n\n\nasync def mark_cancelled(session: AsyncSession, job_id: int) -> None:\n    job = await session.get(Job, job_id)\n    job.status = \"cancelled\"\n\n\n@router.post(\"/jobs/{job_id}/cancel\")\nasync def cancel(job_id: int, session: AsyncSession):\n    job = await session.get(Job, job_id)\n    await mark_cancelled(session, job.id)\n    return job\n",
    good: "from sqlalchemy.ext.asyncio import AsyncSession\n\n\ndef mark_cancelled(job) -> None:\n    job.status = \"cancelled\"\n\n\n@router.post(\"/jobs/{job_id}/cancel\")\nasync def cancel(job_id: int, session: AsyncSession):\n    job = await session.get(Job, job_id)\n    mark_cancelled(job)\n    return job\n",
    fix: 'pass the loaded object instead of its id (or add a variant that takes it); skip the reload when `expire_on_commit=False`',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#get-by-primary-key',
      'https://docs.sqlalchemy.org/en/20/orm/session_state_management.html#session-object-states',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    if (!ctx.project.stack['advanced-alchemy']) return;
    const model = ctx.model;
    for (const { call, row, loader } of heldIdLookups(model)) {
      const twice = call.method === 'update' ? ' (twice: the service, then its repository)' : '';
      ctx.report({
        node: call.node,
        message: `\`${row}\` is already loaded (by \`${loader.calleeText}()\`, line ${loader.line}), but \`${call.calleeText}()\` gets only \`${row}.id\` and the library loads the row again by that id${twice}, each time with the row's eager loads${call.loops.length ? ', on every iteration of the loop' : ''}`,
        // Once per call it is a fixed one to three primary-key SELECTs: `low`. Per item of a loop
        // it grows with the rows, as an N+1 does.
        severity: !call.loops.length ? 'low' : effectiveRole(model, call.functionIndex) === 'handler' ? 'high' : 'medium',
        recommendation: 'change the attributes of the loaded row and flush once (the session tracks it), instead of handing its id back to the service; when the service transforms the data in `to_model`/`to_model_on_update` (hashing, slugs), pass the changed row itself (`update(row)`), which runs the hook and skips the service\'s own lookup',
      });
    }
  },
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    for (const { ref, file, fn, site, call, to } of siteCalls(graph, PASSED_IDS)) {
      const passed = JSON.parse(site.what) as PassedId;
      const callee = graph.function(to);
      const reload = graph.ownEffects(to).find((e) => {
        if (e.kind !== RELOADS_PARAM) return false;
        const [pos, name] = e.what.split(':');
        return typeof passed.arg === 'number' ? Number(pos) === passed.arg : name === passed.arg;
      });
      if (!reload) continue;
      const [, , model = '', pk = ''] = reload.what.split(':');
      // A reload that locks or refreshes the row (`with_for_update()`, `populate_existing()`):
      // reading it again is the point; handing over the loaded row would lose the lock.
      if (pk === 'lock') continue;
      let loadedBy = passed.model;
      if (!loadedBy) {
        const loader = graph.callAt(ref.file, passed.source[0], passed.source[1]);
        const target = loader ? graph.resolveCall(ref.file, loader) : null;
        const effects = target ? graph.effectsOf(target, 'any') : undefined;
        const reach = effects?.get(QUERY_EFFECT) ?? effects?.get(PK_QUERY_EFFECT);
        if (!reach || !new RegExp(`[( ]${model}\\)$`).test(reach.effect.what)) continue;
        loadedBy = model;
      }
      if (loadedBy !== model) continue;
      // Read back after a write of the model in between (`update_pool(...)` running
      // `update(WorkPool)`, a statement the held object does not see): a refresh, not a refetch.
      if (writtenBetween(graph, ref, passed.source[0], call, model)) continue;
      const chain = [
        { path: file.path, line: call.line, column: call.column, function: fn.qualifiedName, call: call.calleeText },
        { path: graph.fileOf(to).path, line: reload.line, column: reload.column, function: callee.qualifiedName, call: `load ${model}` },
      ];
      // Once per call, a fixed extra load (`low`); per item of a loop, one per row.
      const severity: Severity = !call.inLoop ? 'low' : fn.effectiveRole === 'handler' ? 'high' : 'medium';
      ctx.report({
        path: file.path,
        location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
        message: `\`${passed.variable}\` is already loaded, but \`${callee.qualifiedName}\` gets only \`${passed.variable}.id\` and loads ${model} again (line ${reload.line} of ${graph.fileOf(to).path})`
          + (pk ? ': a primary-key lookup, which the identity map answers with the object the caller holds' : ''),
        severity,
        // `session.get` on the caller's session returns the object it already holds, without SQL
        // (after a commit expired it, the refresh is one the caller's next read would pay anyway).
        ...(pk ? { advisory: 'the reload is `session.get` (or `Query.get`): the identity map returns the held object without SQL' } : {}),
        function: fn.name,
        chain,
      });
    }
  },
};

/**
 * Does the function, between the line that loaded the object and the call that reloads it,
 * call something that writes rows of `model` with a statement (`update(Model)`, `delete(Model)`):
 * a write the held object does not reflect, which the reload reads back?
 */
function writtenBetween(graph: CallGraph, ref: FnRef, fromLine: number, reload: SummaryCall, model: string): boolean {
  const names = new RegExp(`\\((?:update|delete) (?:[\\w.]*\\.)?${model}\\)`);
  for (const edge of graph.callees(ref)) {
    const at = edge.call;
    if (edge.weak || at.line <= fromLine || at.line > reload.line || (at.line === reload.line && at.column >= reload.column)) continue;
    const write = graph.effectsOf(edge.to, 'any').get(WRITE_EFFECT);
    if (write && names.test(write.effect.what)) return true;
  }
  return graph.ownEffects(ref).some((e) => e.kind === WRITE_EFFECT && e.line > fromLine && e.line <= reload.line && (e.line < reload.line || e.column < reload.column) && names.test(e.what));
}
