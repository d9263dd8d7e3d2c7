/**
 * PA106 wrong_caching_scope
 *
 * What it does: finds a request-scoped object — a class FastAPI builds per request, because its
 * `__init__` takes `Depends(...)` parameters or it is injected with `Depends()` / `Depends(Cls)` —
 * that keeps an internal cache (`self._cache`, `self._loaded`, `self._initialized`, a memo dict)
 * and refills it with a query.
 * Why is this bad? The object dies with the request, so the "cache" is empty every time: the
 * refill query runs on every request that needs it, and reads look cached when they are not.
 *
 * Guards: the class must be request-scoped by a `Depends` in this file; the cache attribute must
 * be initialised in `__init__` and assigned again in the method that runs the query.
 * Severity: high when the refill query joins or nests a select, else medium.
 */
import type { FileModel, FunctionInfo } from '../../../semantic/model.js';
import { callsOf } from '../../../semantic/model.js';
import type { Severity } from '../../../types.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { classifyDbCall } from './dbCalls.js';

const CACHE_ATTR = /^self\.(_*\w*(cache|cached|memo|memoized|loaded|initialized|initialised))$/i;

/** Classes built per request: `__init__` with `Depends(...)` parameters, or injected by `Depends()`. */
function requestScopedClasses(model: FileModel): Set<string> {
  const out = new Set<string>();
  // Both forms need a `Depends(` in the file; without one no parameter list is read.
  if (!model.source.includes('Depends(')) return out;
  for (const fn of model.functions) {
    if (fn.name === '__init__' && fn.className && fn.params.some((p) => /\bDepends\(/.test(`${p.annotation ?? ''} ${p.defaultText ?? ''}`))) {
      out.add(fn.className);
    }
    for (const p of fn.params) {
      const text = `${p.annotation ?? ''} = ${p.defaultText ?? ''}`;
      const bare = /^\s*(?:Annotated\[\s*)?([A-Za-z_]\w*)\b.*\bDepends\(\s*\)/.exec(text);
      if (bare) out.add(bare[1]!);
      const named = /\bDepends\(\s*([A-Za-z_]\w*)\s*\)/.exec(text);
      if (named && /^[A-Z]/.test(named[1]!)) out.add(named[1]!);
    }
  }
  return out;
}

function severityOf(statementText: string): Severity {
  return /\.(join|outerjoin)\(|\bjoin\(|\.subquery\(|\.scalar_subquery\(|select\([^]*select\(/.test(statementText) ? 'high' : 'medium';
}

export const wrongCachingScope: FileRule = {
  meta: {
    code: 'PA106',
    check: 'wrong_caching_scope',
    family: 'query',
    severity: 'medium',
    effort: 'M',
    summary: 'Request-scoped object keeps a cache that a query refills on every request',
    what: 'Finds a class built per request (its `__init__` takes `Depends(...)` parameters, or it is injected with `Depends()` / `Depends(Cls)`) that initialises a cache attribute (`self._cache`, `self._loaded`, `self._initialized`, `self._memo`, …) in `__init__` and fills it again from a database query in a method.',
    why: 'The instance lives for one request, so the cache starts empty every time and the query runs on every request that reaches it — the code reads as cached while the database sees no caching at all.',
    bad: "from fastapi import Depends\nfrom sqlalchemy import select\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\n\nclass PermissionChecker:\n    def __init__(self, session: AsyncSession = Depends(get_session)):\n        self.session = session\n        self._cache: dict[str, bool] = {}\n\n    async def allows(self, perm: str) -> bool:\n        if not self._cache:\n            names = await self.session.scalars(select(Permission.name).join(User))\n            self._cache = {n: True for n in names}\n        return self._cache.get(perm, False)\n",
    good: "from cachetools import TTLCache\nfrom sqlalchemy import select\n\n_permissions = TTLCache(maxsize=10_000, ttl=60)  # app-scoped\n\n\nasync def allows(session, user_id: int, perm: str) -> bool:\n    names = _permissions.get(user_id)\n    if names is None:\n        names = set(await session.scalars(select(Permission.name).where(Permission.user_id == user_id)))\n        _permissions[user_id] = names\n    return perm in names\n",
    fix: 'move the cache to application scope (module level, `app.state`, `lru_cache`d provider) with a TTL, keyed by what the query depends on',
    references: [
      'https://fastapi.tiangolo.com/tutorial/dependencies/classes-as-dependencies/',
      'https://fastapi.tiangolo.com/advanced/events/',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    if (model.isTestFile) return;
    const scoped = requestScopedClasses(model);
    if (!scoped.size) return;
    const methods = new Map<string, FunctionInfo[]>();
    for (const fn of model.functions) {
      if (fn.className && scoped.has(fn.className) && fn.parent < 0) {
        const list = methods.get(fn.className) ?? [];
        list.push(fn);
        methods.set(fn.className, list);
      }
    }
    for (const [cls, fns] of methods) {
      const init = fns.find((f) => f.name === '__init__');
      if (!init) continue;
      const caches = new Set(model.assignments.filter((a) => a.functionIndex === init.index && CACHE_ATTR.test(a.target)).map((a) => a.target));
      if (!caches.size) continue;
      for (const fn of fns) {
        if (fn === init) continue;
        const refilled = model.assignments.find((a) => a.functionIndex === fn.index && caches.has(a.target));
        if (!refilled) continue;
        const read = callsOf(model, fn.index).find((c) => c.functionIndex === fn.index && classifyDbCall(model, c)?.kind === 'read');
        if (!read) continue;
        const st = classifyDbCall(model, read)!.statement;
        const statementText = st ? [st.root.text, ...st.chainCalls.map((x) => x.text)].join(' ') : read.node.text;
        ctx.report({
          node: read.node,
          message: `\`${cls}\` is built per request, so \`${refilled.target}\` is refilled by this query on every request`,
          severity: severityOf(statementText),
        });
      }
    }
  },
};
