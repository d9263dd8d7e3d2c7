/** Helpers shared by the runtime rules: where the event loop runs, and severity by role. */
import type { CallInfo, FileModel, FunctionInfo, FunctionRole } from '../../../semantic/model.js';
import { effectiveRole } from '../../../semantic/model.js';
import type { Severity } from '../../../types.js';

export interface AsyncCallSite {
  call: CallInfo;
  fn: FunctionInfo;
}

/**
 * Calls that run on the event loop: made directly in an `async def` body (not in a nested sync
 * def), not awaited (an awaited call is a coroutine), not handed to a thread.
 */
export function* asyncCallSites(model: FileModel): Generator<AsyncCallSite> {
  if (model.isTestFile) return;
  for (const call of model.calls) {
    if (call.functionIndex < 0 || call.awaited || call.offloaded) continue;
    const fn = model.functions[call.functionIndex]!;
    if (!fn.isAsync) continue;
    yield { call, fn };
  }
}

export function severityByRole(model: FileModel, fnIndex: number, table: Record<FunctionRole, Severity>): Severity {
  return table[effectiveRole(model, fnIndex)];
}
