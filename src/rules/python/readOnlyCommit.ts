/**
 * Is a commit one that keeps nothing? A transaction that only read ends with a commit that sends
 * no statement and writes no WAL record: PostgreSQL answers it at once. Once per item of a loop it
 * is a round trip, not a unit of work cut per item (PA207), and it makes a read beside it no
 * per-item workflow (PA107's `low`/advisory).
 *
 * The commit's function, and every function on the chain to it (a `commit()` wrapper's callers
 * too: they are what the commit keeps), stage or send nothing of their own (`STAGES`, below; no
 * write statement, flush or commit elsewhere), and nothing they call reaches a write, a staged
 * change, a flush or a commit. A write the call graph cannot see (a call it does not resolve) is
 * not assumed.
 */
import type { CallGraph, FnRef, Reach } from '../../analysis/callgraph.js';
import type { Effect } from '../../analysis/summary.js';
import type { FileModel } from '../../semantic/model.js';
import { runsOnce } from '../../semantic/memo.js';

/** transaction/effects.ts: a commit whose function does nothing but read before it (its callers on the chain and their callees are still asked). */
export const READONLY_COMMIT = 'readonly_commit';
/**
 * The function stages a change that a later flush or commit sends: `session.add(x)` /
 * `session.delete(x)` it does not flush itself, or an attribute of an object set (not where it
 * runs once, filling a cache: semantic/memo.ts) (`row.state =
 * "deleted"`), or a collection attribute changed in place (`row.tags.append(t)`; `self.state = ...` in a method other than a constructor, of a model or of a class in
 * the models' modules). A sketch on the side of
 * writing: any object's attribute counts, the object's type is not asked.
 */
export const STAGES = 'stages';

/** List and set methods that change a collection in place (a relationship's, when it is a row's). */
const COLLECTION_MUTATION = /^(append|extend|insert|remove|discard|pop|clear|add)$/;
const CONSTRUCTORS = new Set(['__init__', '__new__', '__post_init__']);
/** A module of the models: a `models`/`model`/`orm`/`entities` package or file. */
const MODEL_MODULE = /(^|\/)(models?|orm|entities)(\/|\.py$)/;

/** Kinds that mean the database is changed, or told to keep a change (dbCalls, transaction/effects). */
const WRITE_KINDS = ['write', 'flushes', 'commit', 'commit_own', 'commit_may', 'request_write', 'flask_write', STAGES];

/**
 * The first attribute the function sets that may be a row's (see {@link STAGES}), as an effect,
 * per function of the file.
 */
export function stagedAttributeEffects(model: FileModel): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  const seen = new Set<number>();
  const stage = (fnIndex: number, target: string, node: { startIndex: number; startPosition: { row: number; column: number } }) => {
    if (fnIndex < 0 || seen.has(fnIndex) || runsOnce(model, fnIndex, node.startIndex)) return;
    if (!/\.(\w+|\*)$/.test(target)) return;
    const base = /^\w+/.exec(target)?.[0] ?? '';
    const fn = model.functions[fnIndex]!;
    // A class's or a module's own state (`cls.x`, `app_globals.x` of a module-level object, an
    // imported module's attribute) is no row.
    // (`db.session.get(Invoice, i).state` is a row's, though `db` is imported: only `name.attr` is asked.)
    const direct = /^\w+\.(\w+|\*)$/.test(target);
    if (base === 'cls' || (direct && (model.imports.has(base) || (model.moduleDefs.has(base) && !fn.params.some((p) => p.name === base) && !model.assignments.some((a) => a.functionIndex === fnIndex && a.target === base))))) return;
    // A constructor sets up its own object; another method of a model, or of a class of the
    // models' modules (a mixin or base class the models share), may set a row's column.
    if (base === 'self' && target.startsWith('self.') && (!fn.className || CONSTRUCTORS.has(fn.name) || !(model.modelClasses.has(fn.className) || MODEL_MODULE.test(model.path)))) return;
    seen.add(fnIndex);
    out[fnIndex]!.push({ kind: STAGES, what: target, line: node.startPosition.row + 1, column: node.startPosition.column + 1 });
  };
  for (const a of model.assignments) if (!a.fromWith) stage(a.functionIndex, a.target, a.node);
  // A collection attribute changed in place: `cert.destinations.remove(d)`, `user.roles.append(r)`;
  // an attribute set by name: `setattr(row, key, value)`.
  for (const c of model.calls) {
    if (c.calleeText === 'setattr' && !c.hasReceiver) {
      const obj = c.node.childForFieldName('arguments')?.namedChildren[0]?.text ?? '';
      if (/^\w+$/.test(obj)) stage(c.functionIndex, `${obj}.*`, c.node);
      continue;
    }
    if (!c.hasReceiver || !COLLECTION_MUTATION.test(c.method) || !/\./.test(c.dottedReceiver ?? '') || model.imports.has(c.dottedReceiver!.split('.')[0]!)) continue;
    stage(c.functionIndex, c.dottedReceiver!, c.node);
  }
  for (const a of model.augAssignments) stage(a.functionIndex, a.target, a.node);
  return out;
}

/**
 * Does the commit that `reach` ends at keep nothing: a `READONLY_COMMIT`, or one whose chain and
 * callees change nothing (see the module comment)?
 */
export function commitKeepsNothing(graph: CallGraph, reach: Reach): boolean {
  const last = reach.steps[reach.steps.length - 1]!.fn;
  const at = (e: { line: number; column: number }) => e.line === reach.effect.line && e.column === reach.effect.column;
  const ownWrite = (fn: FnRef, isLast: boolean) => graph.ownEffects(fn).some((e) => WRITE_KINDS.includes(e.kind) && !(isLast && at(e)));
  const steps = reach.steps.map((s) => s.fn);
  if (steps.some((fn, i) => ownWrite(fn, i === steps.length - 1))) return false;
  // What the functions on the chain call, other than the next step of the chain.
  for (const [i, fn] of steps.entries()) {
    const next = steps[i + 1];
    for (const edge of graph.callees(fn)) {
      if (next && edge.to.file === next.file && edge.to.fn === next.fn) continue;
      if (WRITE_KINDS.some((k) => graph.reaches(edge.to, k, 'any'))) return false;
    }
  }
  return true;
}
