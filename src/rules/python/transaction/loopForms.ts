/** Loop forms the transaction rules share: which loops walk items one per iteration. */
import type { FileModel, LoopInfo } from '../../../semantic/model.js';
import { loopTargets } from './semantics.js';
import { messageLoop, overBatches, retryLoop, smallBoundedLoop } from '../query/semantics.js';

/**
 * Does the loop walk items, one per iteration: a `for`, an `async for` over rows the database
 * streams, a `while` that pops or fetches the next item (`while queue: x = queue.pop()`,
 * `while (row := cur.fetchone())`)? A `while True:` poller and an `async for` over a message
 * stream are consumers: one unit of work per message is their design.
 */
export function overItems(model: FileModel, loop: LoopInfo): boolean {
  // A batch per iteration, a retry, a handful of constants (tenant schemas), a message per iteration: not items.
  if (overBatches(loop) || retryLoop(loop) || messageLoop(loop, model) || smallBoundedLoop(model, loop)) return false;
  if (loop.kind === 'for') return true;
  if (loop.kind === 'async_for') return !!loop.iterable && DB_STREAM.test(loop.iterable.text);
  if (loop.kind !== 'while') return false;
  const cond = loop.node.childForFieldName('condition');
  if (!cond) return false;
  // `while True:` draining a Python container (`x = pending.pop()`); a poller that fetches the
  // next job stays a consumer loop.
  if (/^(True|1)$/.test(cond.text.trim())) return /=\s*[\w.]+\.(pop|popleft)\s*\(/.test(loop.node.childForFieldName('body')?.text ?? '');
  if (/:=/.test(cond.text)) return /\.(fetchone|pop|popleft|get_nowait)\s*\(|\bnext\s*\(/.test(cond.text);
  const m = /^(?:not\s+)?(?:len\(\s*)?([A-Za-z_][\w.]*)\s*\)?$/.exec(cond.text.trim());
  const body = loop.node.childForFieldName('body');
  if (!m || !body) return false;
  return new RegExp(`(?<![\\w.])${m[1]!.replace(/\./g, '\\.')}\\s*\\.\\s*(pop|popleft|popitem)\\s*\\(`).test(body.text);
}

/** The names that hold the iteration's item: a `for` target, or what a `while` pops or fetches. */
export function itemNames(model: FileModel, loop: LoopInfo): Set<string> {
  const out = loopTargets(loop);
  if (loop.kind !== 'while') return out;
  const walrus = /([A-Za-z_]\w*)\s*:=/.exec(loop.node.childForFieldName('condition')?.text ?? '');
  if (walrus) out.add(walrus[1]!);
  for (const a of model.assignments) {
    if (a.functionIndex === loop.functionIndex && a.loops.includes(loop.index) && a.value && /\.(pop|popleft|fetchone)\s*\(|^next\s*\(/.test(a.value.text)) out.add(a.target);
  }
  return out;
}

const DB_STREAM = /\.(stream|stream_scalars|scalars|execute|fetch|cursor)\s*\(|\bsession\b|\bdb\b|\bconn\b/;
