/**
 * Effects of each function that callers care about (blocking, sleeping, sync DB, CPU work, a
 * new engine),
 * found in the per-file phase so the repo phase can propagate them along call edges. Each
 * effect is classified by the same function the matching file rule uses, so a helper "blocks"
 * exactly when its body would be flagged inside `async def`.
 */
import type { FileModel } from '../semantic/model.js';
import { isMemoisedCall } from '../semantic/memo.js';
import { NEW_ENGINE, type Effect } from './summary.js';
import { blockingIoCall, pendingBlockingMethod, SYNC_SLEEP } from '../semantic/blockingIo.js';
import { syncDbCall } from '../semantic/syncDb.js';
import { cpuHeavyCall } from '../semantic/cpuHeavy.js';
import { isEngineConstructor } from '../semantic/resources.js';
import { collectQueryEffects } from '../rules/python/query/dbCalls.js';
import { collectResolveFacts } from '../rules/python/query/resolveFacts.js';
import { collectRowFacts } from '../rules/python/query/rowCalls.js';
import { collectTransactionEffects } from '../rules/python/transaction/effects.js';

/** `effects[i]` lists the effects of `model.functions[i]`' own body. */
export function collectEffects(model: FileModel): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return effects;
  for (const call of model.calls) {
    if (call.functionIndex < 0 || call.offloaded) continue;
    const at = { line: call.line, column: call.column };
    const q = call.qualifiedName;
    // Work that runs once (a memoised function, a cache being filled) costs a caller nothing per call.
    const push = (e: Effect) => {
      if (!isMemoisedCall(model, call)) effects[call.functionIndex]!.push(e);
    };
    // A new engine (a new pool) each time the function runs, unless the function or a cache guard keeps it.
    if (isEngineConstructor(q)) {
      push({ kind: NEW_ENGINE, what: q!, ...at });
      continue;
    }
    if (q && SYNC_SLEEP.has(q)) {
      if (!call.awaited) push({ kind: 'sync_sleep', what: q, ...at });
      continue;
    }
    const io = blockingIoCall(model, call);
    if (io) {
      push({ kind: 'blocking_io', what: io, ...at });
      continue;
    }
    // Decided in the repo phase, which knows the type; the same call may still be a DB call.
    const typedElsewhere = pendingBlockingMethod(model, call);
    if (typedElsewhere) push({ kind: 'blocking_io', what: typedElsewhere.method, ...at, pending: typedElsewhere });
    const db = syncDbCall(model, call);
    if (db) {
      push('what' in db ? { kind: 'sync_db', what: db.what, ...at } : { kind: 'sync_db', what: db.pending.method, ...at, pending: db.pending });
      continue;
    }
    const cpu = cpuHeavyCall(model, call);
    if (cpu) push({ kind: 'cpu', what: cpu, ...at });
  }
  // Query family: `query` / `write` effects and per-item loop call sites (see dbCalls.ts).
  collectQueryEffects(model).forEach((list, i) => effects[i]!.push(...list));
  collectResolveFacts(model).forEach((list, i) => effects[i]!.push(...list));
  collectRowFacts(model).forEach((list, i) => effects[i]!.push(...list));
  // Transaction family: `commit` effects and per-item call sites (see transaction/effects.ts).
  collectTransactionEffects(model).forEach((list, i) => effects[i]!.push(...list));
  return effects;
}
