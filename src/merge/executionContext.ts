/**
 * Evidence for severity-downgrade Rule 6 (execution context), gathered in the worker while the
 * tree is still at hand: init/setup code, a background-jobs file, small literal data. The merge
 * step turns the points into a downgrade.
 *
 * A timeout around the call (`timeout=`, `asyncio.wait_for`, `with timeout(...)`) is not a point,
 * although the spec lists it: it bounds the worst case, not the cost the checks are about. A
 * `requests.get(url, timeout=30)` in a coroutine blocks the event loop for the whole round trip
 * every time it runs, and a transaction or injected session held through it waits for that round
 * trip; the charge it sends is no more atomic with the commit for having a timeout. Linters
 * (ruff S113, bandit B113) make nearly every HTTP call set one, so the point understated most
 * real findings.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { SyntaxNode } from '../parse/parser.js';
import type { FileModel } from '../semantic/model.js';

/** Checks whose findings Rule 6 may downgrade. */
export const EXECUTION_CONTEXT_CHECKS = new Set([
  'blocking_io_in_async', 'redundant_fetch', 'scope_too_wide', 'missing_to_thread', 'sync_db_in_async',
  'resource_scope_mismatch', 'streaming_resource_holding',
]);

const JOB_PATH = /(^|\/)(tasks|jobs|cron)\//;
const SMALL_FILE_BYTES = 100 * 1024;
const SMALL_COLLECTION = 100;

/** One line of evidence per point. */
export function executionContextEvidence(model: FileModel, node: SyntaxNode, rootDir: string): string[] {
  const evidence: string[] = [];
  const fnIndex = enclosingFunctionIndex(model, node);
  for (let i = fnIndex; i >= 0; i = model.functions[i]!.parent) {
    const fn = model.functions[i]!;
    // The semantic model classifies init/setup/bootstrap code (by name or `on_event`) once.
    if (fn.role === 'init') {
      evidence.push(`runs in init/setup code (\`${fn.name}\`)`);
      break;
    }
  }
  if (JOB_PATH.test(model.path)) evidence.push(`file is under a jobs directory (${model.path})`);
  const small = smallDataEvidence(model, node, rootDir);
  if (small) evidence.push(small);
  return evidence;
}

function enclosingFunctionIndex(model: FileModel, node: SyntaxNode): number {
  let best = -1;
  for (const fn of model.functions) {
    if (node.startIndex >= fn.node.startIndex && node.endIndex <= fn.node.endIndex) best = fn.index; // later = deeper
  }
  return best;
}

function smallDataEvidence(model: FileModel, node: SyntaxNode, rootDir: string): string | null {
  if (node.type === 'call') {
    const first = node.childForFieldName('arguments')?.namedChild(0);
    if (first?.type === 'string' && !first.text.startsWith('f')) {
      const literal = first.text.replace(/^[rbuRBU]*("""|'''|"|')/, '').replace(/("""|'''|"|')$/, '');
      for (const base of [rootDir, path.join(rootDir, path.dirname(model.path))]) {
        const candidate = path.resolve(base, literal);
        if (!candidate.startsWith(path.resolve(rootDir))) continue;
        try {
          const st = fs.statSync(candidate);
          if (st.isFile() && st.size < SMALL_FILE_BYTES) return `reads a small file in the repo (${literal}, ${st.size} bytes)`;
        } catch {
          // not a file of the repo
        }
      }
    }
  }
  for (const loop of model.loops) {
    if (node.startIndex < loop.iterStart || node.startIndex >= loop.iterEnd) continue;
    const it = loop.iterable;
    if (it && (it.type === 'list' || it.type === 'tuple' || it.type === 'set') && it.namedChildCount < SMALL_COLLECTION) {
      return `loops over a literal collection of ${it.namedChildCount} items`;
    }
  }
  return null;
}
