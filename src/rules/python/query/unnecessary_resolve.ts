/**
 * PA103 unnecessary_resolve
 *
 * What it does: finds a call that hands a same-repo function an id taken from an object the
 * caller holds (`create_job(session, principal.user_id, …)`), where the callee loads the entity
 * by that id only to read one attribute (`owner = await session.get(User, owner_id)` …
 * `owner.tenant_id`) that the caller's object already carries (`principal.tenant_id`).
 * Why is this bad? A query per call for a value the caller had in hand.
 *
 * Repo phase, on facts from resolveFacts.ts. The callee's load may go through a same-repo
 * loader (`case = case_service.get(db_session=db_session, case_id=case_id)`) that returns a
 * load by that argument. The caller's object counts as holding the
 * attribute when either
 * - it is the entity itself, passed by `obj.id`: a parameter annotated with the model the
 *   callee loads, or a row of that model the caller loaded (then PA101 keeps the calls whose
 *   callee reloads it by `session.get` / `select(...).where(M.id == p)`; no call gets both); or
 * - it is injected by `Depends(provider)` / `Security(provider)` — the request's identity or
 *   context, not a client payload — and it carries the attribute, an `*_id` scope key
 *   (`tenant_id`, `org_id`): the function reads it on the object, or the object's class
 *   (the provider's return annotation, or the parameter's annotation) declares it.
 * A sibling key of a loaded row or a request body (`job.tenant_id`, `payload.tenant_id`) is
 * never taken for the entity's: the row's own copy or the client's claim may differ.
 * Severity: medium.
 */
import type { RepoRule, RepoRuleContext } from '../../types.js';
import { callGraphOf, siteCalls, type FnRef } from '../../../analysis/callgraph.js';
import { PASSES_LOADED_ID, RELOADS_PARAM, type PassedId } from './dbCalls.js';
import { PASSES_HELD_ATTR, PROVIDES_FIELDS, RESOLVES_ONE_ATTR, RETURNS_LOAD, type HeldAttrPass, type ResolvedAttr } from './resolveFacts.js';

const PASSED_ATTRS = new Set([PASSES_HELD_ATTR, PASSES_LOADED_ID]);

export const unnecessaryResolve: RepoRule = {
  meta: {
    code: 'PA103',
    check: 'unnecessary_resolve',
    family: 'query',
    severity: 'medium',
    effort: 'S',
    summary: 'A callee loads an entity by id only to read one attribute its caller already holds',
    what: 'Finds a call that passes `obj.id` / `obj.x_id` of an object the caller holds (a parameter annotated with the model, a row of the model it loaded, or a `Depends()` principal/context) to a same-repo function that loads the entity by that parameter (`session.get(Model, x_id)`, `select(Model).where(Model.id == x_id)`, `query(Model).filter(...)`, or a same-repo loader that returns such a load) and uses it only to read one attribute — which the caller\'s object already carries. `is None` checks on the loaded row do not count as uses.',
    why: 'The callee pays a query on every call to resolve a value the caller had in hand. The entity is loaded whole for one attribute, and the call site hides the cost: a cheap-looking helper does a round trip.',
    bad: "from fastapi import Depends\nfrom pydantic import BaseModel\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\n\nclass Principal(BaseModel):\n    user_id: int\n    tenant_id: int\n\n\nasync def current_principal() -> Principal: ...\n\n\nasync def create_job(session: AsyncSession, owner_id: int, kind: str) -> Job:\n    owner = await session.get(User, owner_id)\n    job = Job(owner_id=owner_id, tenant_id=owner.tenant_id, kind=kind)\n    session.add(job)\n    return job\n\n\n@router.post(\"/jobs\")\nasync def submit_job(kind: str, principal: Principal = Depends(current_principal), session: AsyncSession = Depends(get_session)):\n    return await create_job(session, principal.user_id, kind)\n",
    good: "from fastapi import Depends\nfrom pydantic import BaseModel\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\n\nclass Principal(BaseModel):\n    user_id: int\n    tenant_id: int\n\n\nasync def current_principal() -> Principal: ...\n\n\nasync def create_job(session: AsyncSession, owner_id: int, tenant_id: int, kind: str) -> Job:\n    job = Job(owner_id=owner_id, tenant_id=tenant_id, kind=kind)\n    session.add(job)\n    return job\n\n\n@router.post(\"/jobs\")\nasync def submit_job(kind: str, principal: Principal = Depends(current_principal), session: AsyncSession = Depends(get_session)):\n    return await create_job(session, principal.user_id, principal.tenant_id, kind)\n",
    fix: 'pass the resolved value (the attribute) instead of the id; when other callers have only the id, split the function into two variants',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#get-by-primary-key',
      'https://docs.sqlalchemy.org/en/20/faq/performance.html',
    ],
  },
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    for (const { ref, file, fn, site, call, to } of siteCalls(graph, PASSED_ATTRS)) {
      const held = site.kind === PASSES_HELD_ATTR ? (JSON.parse(site.what) as HeldAttrPass) : null;
      const loaded = held ? null : (JSON.parse(site.what) as PassedId);
      const arg = (held ?? loaded)!.arg;
      const found = resolvedIn(to, arg);
      if (!found) continue;
      const { fact, line } = found;
      let variable: string;
      let key: string;
      if (held) {
        if (!holds(held, fact.attr, fact.qualified, providedFields)) continue;
        ({ variable, key } = held);
      } else {
        // A row this function loaded, passed by `row.id`: PA101's when the callee reloads it
        // the way PA101 sees; this rule's when the callee reads one attribute of its reload.
        if (graph.ownEffects(to).some((e) => e.kind === RELOADS_PARAM && matchesArg(e.what.split(':'), arg))) continue;
        if (loadedModel(ref, loaded!) !== fact.model) continue;
        variable = loaded!.variable;
        key = 'id';
      }
      const callee = graph.function(to);
      ctx.report({
        path: file.path,
        location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
        message: `\`${callee.qualifiedName}\` loads ${fact.model} by \`${fact.param}\` only to read \`.${fact.attr}\` (line ${line} of ${graph.fileOf(to).path}); \`${variable}.${fact.attr}\` is already in hand here: pass it instead of \`${variable}.${key}\``,
        function: fn.name,
        chain: [
          { path: file.path, line: call.line, column: call.column, function: fn.qualifiedName, call: call.calleeText },
          { path: graph.fileOf(to).path, line, column: 1, function: callee.qualifiedName, call: `load ${fact.model}` },
        ],
      });
    }

    /** The callee's one-attribute load of the parameter that receives `arg`, with its model known. */
    function resolvedIn(callee: FnRef, arg: number | string): { fact: ResolvedAttr; line: number } | null {
      for (const e of graph.ownEffects(callee)) {
        if (e.kind !== RESOLVES_ONE_ATTR) continue;
        const fact = JSON.parse(e.what) as ResolvedAttr;
        if (!matchesArg([String(fact.position), fact.param], arg)) continue;
        if (fact.loaderArg !== undefined && !followLoader(callee, e.line, e.column, fact)) continue;
        return { fact, line: e.line };
      }
      return null;
    }

    /** The model of a row the caller loaded: decided in its file, or by the loader it called. */
    function loadedModel(caller: FnRef, passed: PassedId): string | null {
      if (passed.model) return passed.model;
      const call = graph.callAt(caller.file, passed.source[0], passed.source[1]);
      const loader = call ? graph.resolveCall(caller.file, call) : null;
      const load = loader ? graph.ownEffects(loader).find((e) => e.kind === RETURNS_LOAD) : undefined;
      return load ? load.what.split(':')[2]! : null;
    }

    /** Fills in the model of a row that comes from a loader call, when the loader returns a load by that argument. */
    function followLoader(callee: FnRef, line: number, column: number, fact: ResolvedAttr): boolean {
      const call = graph.callAt(callee.file, line, column);
      const loader = call ? graph.resolveCall(callee.file, call) : null;
      if (!loader) return false;
      for (const e of graph.ownEffects(loader)) {
        if (e.kind !== RETURNS_LOAD) continue;
        const [pos, name, model, qualified] = e.what.split(':') as [string, string, string, string];
        if (!matchesArg([pos, name], fact.loaderArg!)) continue;
        fact.model = model;
        fact.qualified = qualified;
        return true;
      }
      return false;
    }

    function providedFields(provider: string): string[] {
      const ref = provider ? graph.resolveQualified(provider) : null;
      const fact = ref ? graph.ownEffects(ref).find((e) => e.kind === PROVIDES_FIELDS) : undefined;
      return fact ? fact.what.split(',') : [];
    }
  },
};

/** Does a parameter fact (`[position, name, …]`) receive the call's argument (a position or a keyword)? */
function matchesArg([position, name]: string[], arg: number | string): boolean {
  return typeof arg === 'number' ? Number(position) === arg : name === arg;
}

/** Does the caller's object carry the attribute the callee resolves? See the file comment. */
function holds(passed: HeldAttrPass, attribute: string, qualifiedModel: string, providedFields: (provider: string) => string[]): boolean {
  if (passed.key === 'id') return passed.type !== '' && passed.type === qualifiedModel;
  if (!passed.provider || attribute === passed.key || attribute === 'id') return false;
  return passed.fields.includes(attribute) || providedFields(passed.provider).includes(attribute);
}
