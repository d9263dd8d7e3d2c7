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
 * Severity: high in a handler, medium elsewhere (background work).
 */
import type { Severity } from '../../../types.js';
import type { RepoRule, RepoRuleContext } from '../../types.js';
import { callGraphOf, siteCalls } from '../../../analysis/callgraph.js';
import { PASSES_LOADED_ID, PK_QUERY_EFFECT, QUERY_EFFECT, RELOADS_PARAM, type PassedId } from './dbCalls.js';

const PASSED_IDS = new Set([PASSES_LOADED_ID]);

export const redundantFetch: RepoRule = {
  meta: {
    code: 'PA101',
    check: 'redundant_fetch',
    family: 'query',
    severity: 'high',
    effort: 'S',
    summary: 'An entity already loaded is passed on by id and loaded again by the callee',
    what: 'Finds a call that passes `obj.id` of an entity loaded earlier in the same function (by `session.get`, `select(Model)`, or a same-repo helper that queries) to a same-repo function whose body loads the same model again by that parameter (`session.get(Model, param)`, `select(Model).where(Model.id == param)`).',
    why: 'The callee pays another query (or, after a commit with `expire_on_commit=True`, a refresh) for a row the caller holds; the two copies can also disagree when the caller changed the object in between.',
    bad: "from sqlalchemy.ext.asyncio import AsyncSession\n\n\nasync def mark_cancelled(session: AsyncSession, job_id: int) -> None:\n    job = await session.get(Job, job_id)\n    job.status = \"cancelled\"\n\n\n@router.post(\"/jobs/{job_id}/cancel\")\nasync def cancel(job_id: int, session: AsyncSession):\n    job = await session.get(Job, job_id)\n    await mark_cancelled(session, job.id)\n    return job\n",
    good: "from sqlalchemy.ext.asyncio import AsyncSession\n\n\ndef mark_cancelled(job) -> None:\n    job.status = \"cancelled\"\n\n\n@router.post(\"/jobs/{job_id}/cancel\")\nasync def cancel(job_id: int, session: AsyncSession):\n    job = await session.get(Job, job_id)\n    mark_cancelled(job)\n    return job\n",
    fix: 'pass the loaded object instead of its id (or add a variant that takes it); skip the reload when `expire_on_commit=False`',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#get-by-primary-key',
      'https://docs.sqlalchemy.org/en/20/orm/session_state_management.html#session-object-states',
    ],
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
      const model = reload.what.split(':')[2]!;
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
      const chain = [
        { path: file.path, line: call.line, column: call.column, function: fn.qualifiedName, call: call.calleeText },
        { path: graph.fileOf(to).path, line: reload.line, column: reload.column, function: callee.qualifiedName, call: `load ${model}` },
      ];
      const severity: Severity = fn.effectiveRole === 'handler' ? 'high' : 'medium';
      ctx.report({
        path: file.path,
        location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
        message: `\`${passed.variable}\` is already loaded, but \`${callee.qualifiedName}\` gets only \`${passed.variable}.id\` and loads ${model} again (line ${reload.line} of ${graph.fileOf(to).path})`,
        severity,
        function: fn.name,
        chain,
      });
    }
  },
};
