/**
 * Effects of each function that callers care about (blocking, sleeping, querying …), found
 * in the per-file phase so the repo phase can propagate them along call edges.
 */
import type { FileModel } from '../semantic/model.js';
import type { Effect } from './summary.js';

/** `effects[i]` lists the effects of `model.functions[i]`' own body. */
export function collectEffects(model: FileModel): Effect[][] {
  return model.functions.map(() => []);
}
