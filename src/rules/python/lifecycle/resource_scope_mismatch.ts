/**
 * PA401 resource_scope_mismatch
 *
 * What it does: finds a handler that receives a session by injection (`Depends(get_db)`,
 * `session: AsyncSession`) and uses it only in the first fifth of its body, then goes on with
 * long non-DB work: external calls (HTTP, gRPC, SMTP, S3 clients) or more than 50 lines.
 * Why is this bad? The injected session lives until the request ends; after its first query it
 * holds a pooled connection (and an open transaction) through all the slow work that follows,
 * so a few slow upstream calls exhaust the pool for every other endpoint.
 *
 * Precision: a last use that ends the transaction (`commit()`, `close()`, `rollback()`) releases
 * the connection; streaming and WebSocket endpoints are PA402's.
 */
import type { CallInfo, FileModel } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import {
  bodyStartLine, endsTransaction, injectedSessions, isExternalCall, isWebsocketHandler, sessionRefs, streamingResponses,
} from './semantics.js';

const USE_FRACTION = 0.2;
const LONG_TAIL_LINES = 50;

/**
 * Does the function spend time after `line` on something other than the session: a sleep, work
 * handed to a thread, or awaits inside a loop? A single `await add_toast(...)` does not count.
 */
function waitsAfter(calls: CallInfo[], line: number, session: string): boolean {
  return calls.some((c) =>
    c.line > line && c.dottedReceiver !== session &&
    (/(^|\.)sleep$/.test(c.qualifiedName ?? '') || c.offloaded || /(^|\.)(to_thread|run_in_executor|run_in_threadpool|run_sync)$/.test(c.calleeText) ||
      (c.awaited && c.loops.length > 0)));
}

/** Is function `inner` (a call's function index) `outer` or nested in it? */
function insideOf(model: FileModel, inner: number, outer: number): boolean {
  for (let i = inner; i >= 0; i = model.functions[i]!.parent) if (i === outer) return true;
  return false;
}

export const resourceScopeMismatch: FileRule = {
  meta: {
    code: 'PA401',
    check: 'resource_scope_mismatch',
    family: 'lifecycle',
    severity: 'high',
    effort: 'M',
    summary: 'Injected session used only at the start of a handler that then does long non-DB work',
    what: 'Finds handlers that receive a session by injection (`Depends(get_db)` and the like, `session: AsyncSession`, `db: Session`) and use it within the first 20 % of the body, then make external calls (`httpx`, `aiohttp`, `requests`, gRPC, SMTP, S3 clients) — high — or run more than 50 lines of non-DB work that takes time (sleeps, work handed to a thread, awaits in a loop) — medium. A last use that commits, rolls back or closes the session is fine: it releases the connection.',
    why: 'After its first query the session keeps its pooled connection, usually inside an open transaction, until the dependency closes it at the end of the request. Everything slow that follows — an upstream HTTP call with a 30 s timeout — holds that connection too; under load the pool runs dry while it sits idle.',
    bad: 'import httpx\nfrom fastapi import Depends, FastAPI, HTTPException\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\napp = FastAPI()\n\n\n@app.post("/jobs/{job_id}/publish")\nasync def publish(job_id: int, session: AsyncSession = Depends()):\n    job = await session.get(Job, job_id)\n    if job is None:\n        raise HTTPException(404)\n    payload = {"id": job.id, "status": job.status}\n    async with httpx.AsyncClient(timeout=30) as client:\n        first = await client.post("https://a.example/hook", json=payload)\n        second = await client.post("https://b.example/hook", json=payload)\n        third = await client.post("https://c.example/hook", json=payload)\n    return {"delivered": [first.is_success, second.is_success, third.is_success]}\n',
    good: 'import httpx\nfrom fastapi import Depends, FastAPI, HTTPException\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\napp = FastAPI()\n\n\n@app.post("/jobs/{job_id}/publish")\nasync def publish(job_id: int, session: AsyncSession = Depends()):\n    job = await session.get(Job, job_id)\n    if job is None:\n        raise HTTPException(404)\n    payload = {"id": job.id, "status": job.status}\n    await session.close()\n    async with httpx.AsyncClient(timeout=30) as client:\n        first = await client.post("https://a.example/hook", json=payload)\n        second = await client.post("https://b.example/hook", json=payload)\n        third = await client.post("https://c.example/hook", json=payload)\n    return {"delivered": [first.is_success, second.is_success, third.is_success]}\n',
    fix: 'open a scoped session only around the DB work (`async with factory() as s:`), or end the transaction and close the session before the slow part',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#when-do-i-construct-a-session-when-do-i-commit-it-and-when-do-i-close-it',
      'https://fastapi.tiangolo.com/tutorial/dependencies/dependencies-with-yield/',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile) return;
    for (const fn of model.functions) {
      if (fn.role !== 'handler' || !fn.body || isWebsocketHandler(fn)) continue;
      const sessions = injectedSessions(model, project, fn);
      if (sessions.length === 0 || streamingResponses(model, project, fn).length > 0) continue;
      const start = bodyStartLine(fn);
      const total = fn.endLine - start + 1;
      // A finding needs an external call in the body, or a tail of more than 50 lines: most
      // handlers have neither, and finding a session's references is the costly part.
      const inBody = model.calls.filter((c) => insideOf(model, c.functionIndex, fn.index));
      if (fn.endLine - start <= LONG_TAIL_LINES && !inBody.some((c) => isExternalCall(model, c))) continue;
      for (const s of sessions) {
        const refs = sessionRefs(fn, s.name);
        const last = refs[refs.length - 1];
        if (!last || endsTransaction(last)) continue;
        const lastLine = last.startPosition.row + 1;
        if ((lastLine - start + 1) / total >= USE_FRACTION) continue;
        const external = inBody.find((c) => c.line > lastLine && isExternalCall(model, c));
        const tail = fn.endLine - lastLine;
        // Fifty lines of template rendering take a millisecond: the tail must wait on something.
        if (!external && (tail <= LONG_TAIL_LINES || !waitsAfter(inBody, lastLine, s.name))) continue;
        ctx.report({
          node: s.node,
          message: external
            ? `injected session \`${s.name}\` is last used on line ${lastLine} of \`${fn.name}\`, then held through external calls (\`${external.calleeText}\`, line ${external.line})`
            : `injected session \`${s.name}\` is last used on line ${lastLine} of \`${fn.name}\`, then held through ${tail} lines of non-DB work`,
          severity: external ? 'high' : 'medium',
          function: fn.name,
        });
      }
    }
  },
};
