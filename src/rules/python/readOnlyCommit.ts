/**
 * Is a commit one that keeps nothing? A transaction that only read ends with a commit that sends
 * no statement and writes no WAL record: PostgreSQL answers it at once. Once per item of a loop it
 * is a round trip, not a unit of work cut per item (PA207), and it makes a read beside it no
 * per-item workflow (PA107's `low`/advisory).
 *
 * The commit's function, and every function on the chain to it from the loop's call, stage or
 * send nothing of their own (`STAGES`, below; no write statement, flush or commit elsewhere), and
 * nothing they call reaches one. What the loop's own iteration stages is the rules' to add (the
 * `txn_loop_call` fact, the loop's function's `STAGES`, another per-item call that stages). The
 * sketch of a change stays on the side of writing, but a call the graph cannot resolve is taken to
 * change something only when its name or its use says so (see `STAGES`).
 */
import type { CallGraph, FnRef, Reach } from '../../analysis/callgraph.js';
import type { Effect } from '../../analysis/summary.js';
import type { CallInfo, FileModel } from '../../semantic/model.js';
import { isWriteCall } from './transaction/semantics.js';
import type { SyntaxNode } from '../../parse/parser.js';
import { runsOnce } from '../../semantic/memo.js';
import { callAt } from '../../semantic/model.js';
import { classifyDbCall, readsDatabase } from './query/dbCalls.js';
import { lastAssignment, unwrap } from './query/semantics.js';

/**
 * The function stages a change that a later flush or commit sends (not where the code runs once,
 * filling a cache: semantic/memo.ts):
 * - a row staged on a session it does not flush itself (`session.add(x)`, `session.delete(x)`,
 *   also on a handle named like a session), a statement executed that is not known to read;
 * - an attribute set (`row.state = "deleted"`, `row.meta["k"] = v`, `setattr(row, k, v)`,
 *   `flag_modified(row, "meta")`), a collection attribute changed in place (`row.tags.append(t)`);
 *   not a module's or a class's own state, nor `self.x` in a constructor or in a class that is no
 *   model (nor in the models' modules);
 * - a method named for changing its object (`job.complete(r)`, `form.populate_obj(row)`,
 *   `user.set_password(p)`) on a parameter or a row read from the database.
 */
export const STAGES = 'stages';

/** List and set methods that change a collection in place (a relationship's, when it is a row's). */
export const COLLECTION_MUTATION = /^(append|extend|insert|remove|discard|pop|clear|add)$/;
const CONSTRUCTORS = new Set(['__init__', '__new__', '__post_init__']);
/** A module of the models: a `models`/`model`/`orm`/`entities` package or file. */
const MODEL_MODULE = /(^|\/)(models?|orm|entities)(\/|\.py$)/;

/** Kinds that mean the database is changed, or told to keep a change (dbCalls, transaction/effects). */
const WRITE_KINDS = ['write', 'flushes', 'commit', 'commit_own', 'commit_may', 'request_write', 'flask_write', STAGES];

/**
 * The first and the last change the function stages (see {@link STAGES}), as effects, per
 * function of the file: whether it stages at all, and where its changes begin and end (PA207
 * orders them against calls outside the database).
 */
export function stagedEffects(model: FileModel): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return out;
  // The earliest and the latest change of each function, by position.
  const first = new Map<number, { at: number; effect: Effect }>();
  const last = new Map<number, { at: number; effect: Effect }>();
  /** Is a change at `at` neither before the function's first nor after its last one found so far? */
  const covered = (fnIndex: number, at: number) => {
    const f = first.get(fnIndex);
    return !!f && f.at <= at && last.get(fnIndex)!.at >= at;
  };
  const keep = (fnIndex: number, at: number, effect: Effect) => {
    const f = first.get(fnIndex);
    if (!f || at < f.at) first.set(fnIndex, { at, effect });
    const l = last.get(fnIndex);
    if (!l || at > l.at) last.set(fnIndex, { at, effect });
  };
  // Names each function binds itself (`fnIndex:name`), once: a module-level name rebound locally is a local.
  const locals = new Set<string>();
  for (const a of model.assignments) if (a.functionIndex >= 0 && /^\w+$/.test(a.target)) locals.add(`${a.functionIndex}:${a.target}`);
  /** An imported module (`import os`, `import sys`): its attributes are no row. */
  const moduleImport = (name: string) => model.imports.get(name) === name;
  const stage = (fnIndex: number, target: string, node: { startIndex: number; startPosition: { row: number; column: number } }, call = false) => {
    if (fnIndex < 0 || covered(fnIndex, node.startIndex)) return;
    // `row.col = v`, `row.col[k] = v` (a JSON column changed in place), `row.*` (setattr): told
    // from the target's text before asking whether the code runs once (most assignments are to names).
    if (!call && !/\.(\w+|\*)$/.test(target) && !/^[\w.]+\.\w+\s*\[/.test(target)) return;
    if (runsOnce(model, fnIndex, node.startIndex)) return;
    if (call) {
      keep(fnIndex, node.startIndex, { kind: STAGES, what: target, line: node.startPosition.row + 1, column: node.startPosition.column + 1 });
      return;
    }
    const base = /^\w+/.exec(target)?.[0] ?? '';
    const fn = model.functions[fnIndex]!;
    const direct = /^\w+\.(\w+|\*)(\s*\[.*)?$/s.test(target);
    // A class's own state, an imported module's attribute, or a module-level object's own field
    // (`app_globals.site_title = ...`, a name the function does not bind) is no row.
    if (base === 'cls' || moduleImport(base)) return;
    if (direct && model.moduleDefs.has(base) && !fn.params.some((p) => p.name === base) && !locals.has(`${fnIndex}:${base}`)) return;
    // `self.x = v` in a constructor, or in a method of a class that is no model (nor in the
    // models' modules), sets up the object's own state; `self.order.status = v` sets a row's.
    if (base === 'self' && direct && (!fn.className || CONSTRUCTORS.has(fn.name) || !(model.modelClasses.has(fn.className) || MODEL_MODULE.test(model.path)))) return;
    if (base === 'self' && fn.className && CONSTRUCTORS.has(fn.name)) return;
    keep(fnIndex, node.startIndex, { kind: STAGES, what: target, line: node.startPosition.row + 1, column: node.startPosition.column + 1 });
  };
  for (const a of model.assignments) if (!a.fromWith) stage(a.functionIndex, a.target, a.node);
  for (const a of model.augAssignments) stage(a.functionIndex, a.target, a.node);
  for (const a of model.augSubscripts) stage(a.functionIndex, a.target, a.node);
  for (const c of model.calls) {
    if (c.functionIndex < 0 || covered(c.functionIndex, c.node.startIndex)) continue;
    // `setattr(row, key, value)`.
    if (c.calleeText === 'setattr' && !c.hasReceiver) {
      const obj = c.node.childForFieldName('arguments')?.namedChildren[0]?.text ?? '';
      if (/^\w+$/.test(obj)) stage(c.functionIndex, `${obj}.*`, c.node);
      continue;
    }
    // `flag_modified(row, "meta")`: a change the unit of work is told about.
    if (STAGING_FUNCTION.test(c.qualifiedName ?? c.calleeText)) {
      stage(c.functionIndex, 'row.*', c.node);
      continue;
    }
    // A row staged or a statement sent (`session.add(x)`, `conn.execute(stmt)` not known to read).
    if (sessionStages(model, c)) {
      stage(c.functionIndex, `${c.calleeText}.*`, c.node, true);
      continue;
    }
    if (!c.hasReceiver) continue;
    const receiver = c.dottedReceiver ?? '';
    // `user.delete()`, `job.mark_done()` on any object but the function's own or a module.
    if (c.emptyArgs && CHANGING_METHOD.test(c.method) && !/^(self|cls)$/.test(receiver) && !model.imports.has(receiver)) {
      stage(c.functionIndex, `${receiver}.*`, c.node, true);
      continue;
    }
    // A collection attribute changed in place: `cert.destinations.remove(d)`, `user.roles.append(r)`.
    if (COLLECTION_MUTATION.test(c.method) && receiver.includes('.')) {
      stage(c.functionIndex, receiver, c.node);
      continue;
    }
    // A method named for changing the object it is called on (`job.complete(result)`,
    // `form.populate_obj(order)`, `user.set_password(pw)`): it may change a row.
    // The object is one the function was handed (a parameter) or read from the database; an
    // object a repo function made (`index = index_for(...)`) is the call graph's to judge.
    // On a row read from the database, any method not named for answering may change it
    // (`invoice.pay()`, `row.update(**d)`).
    if (/^\w+$/.test(receiver) && !/^(self|cls)$/.test(receiver) && !HANDLE_LIKE.test(receiver)) {
      const origin = CHANGING_METHOD.test(c.method) || !READ_METHOD.test(c.method) ? originOf(model, c.functionIndex, receiver, c.line) : null;
      if (origin === 'row' || (origin === 'param' && CHANGING_METHOD.test(c.method))) stage(c.functionIndex, `${receiver}.*`, c.node);
    }
  }
  for (const [fnIndex, f] of first) {
    out[fnIndex]!.push(f.effect);
    const l = last.get(fnIndex)!;
    if (l.at !== f.at) out[fnIndex]!.push(l.effect);
  }
  return out;
}

/** A session's methods that stage rows for the next flush. */
const STAGING_METHOD = /^(add|add_all|merge|delete|bulk_save_objects|bulk_insert_mappings|bulk_update_mappings)$/;
/** A receiver named like a session (`session`, `ctx["session"]`, `self._db`, `uow`); a connection has no `add`/`delete`. */
const SESSION_LIKE = /(session|(?:\b|_)db|\buow)\W*$/i;
/** A statement argument that reads (`select(...)`, `q.statement`, `"SELECT ..."`). */
const READ_STATEMENT = /\bselect\b|\.statement\b|\bwith_only_columns\b/i;

/**
 * Does the call stage or send a change through a database handle: a write or staged write
 * (`isWriteCall`), `add`/`delete` on a handle named like a session that the file does not type
 * (`ctx["session"].add(x)`), a statement executed that is not known to read?
 */
function sessionStages(model: FileModel, call: CallInfo): boolean {
  if (call.functionIndex < 0 || call.offloaded) return false;
  if (isWriteCall(model, call)) return true;
  if (!call.hasReceiver) return false;
  if (STAGING_METHOD.test(call.method) && !call.emptyArgs && SESSION_LIKE.test(call.node.childForFieldName('function')?.childForFieldName('object')?.text ?? '')) return true;
  if (!/^(execute|executemany|exec_driver_sql)$/.test(call.method)) return false;
  const op = classifyDbCall(model, call);
  return op ? op.kind !== 'read' : !READ_STATEMENT.test(call.node.childForFieldName('arguments')?.text ?? '');
}

/**
 * Where the object `name` comes from: `row` when it was read from the database (bound from a
 * read, or the item of a loop over one, or over a name bound from one), `param` when the function
 * was handed it, else null.
 */
function originOf(model: FileModel, fnIndex: number, name: string, line: number): 'row' | 'param' | null {
  const fn = model.functions[fnIndex]!;
  const a = lastAssignment(model, name, fnIndex, line);
  if (a?.value && readsDatabase(model, a.value)) return 'row';
  for (const loop of model.loops) {
    if (loop.functionIndex !== fnIndex || loop.node.startPosition.row + 1 > line || loop.node.childForFieldName('left')?.text !== name) continue;
    const it = loop.iterable;
    if (!it) continue;
    if (readsDatabase(model, it)) return 'row';
    if (it.type === 'identifier') {
      const src = lastAssignment(model, it.text, fnIndex, line);
      if (src?.value && readsDatabase(model, src.value)) return 'row';
      if (fn.params.some((p) => p.name === it.text)) return 'param';
    }
  }
  return fn.params.some((p) => p.name === name) ? 'param' : null;
}

/** Methods named for answering, not changing (`is_open()`, `get_x()`, `to_dict()`, `count()`), and a query's own (`first()`, `filter(...)`). */
const READ_METHOD = /^_*(is|has|can|get|to_|as_|iter|find|count|num|number|total|calc|compute|render|serialize|describe|lookup|check|load|fetch|list|format|keys|values|items|copy|dict|json|model_dump|__\w+__)|^(lower|upper|strip|lstrip|rstrip|split|rsplit|replace|startswith|endswith|encode|decode|strftime|isoformat|date|time|timestamp|astimezone|_asdict|_mapping|_fields|_tuple|first|one|one_or_none|all|scalar|scalars|scalar_one|scalar_one_or_none|filter|filter_by|order_by|limit|offset|options|join|outerjoin|where|group_by|having|distinct|subquery|union|union_all|exists|with_entities|select_from|yield_per|execution_options|params|unique|partitions|mappings|columns|label|correlate|cte|statement|slice|paginate|with_parent)$/;

/** SQLAlchemy's functions that tell the unit of work about a change. */
const STAGING_FUNCTION = /(^|\.)(flag_modified|flag_dirty|set_attribute|set_committed_value|del_attribute)$/;
/** A name for a database handle: its calls are the database's (dbCalls/transaction semantics judge them). */
const HANDLE_LIKE = /^(session|db|db_session|dbsession|sess|conn|connection|cursor|cur|tx|uow|engine)$/;
/** Verbs of a method that changes the object it is called on (a row's own workflow method). */
const CHANGING_METHOD = /^(purge|complete|finish|fail|cancel|close_\w+|approve|reject|assign|unassign|populate\w*|update_\w+|set_\w+|mark\w*|add_\w+|remove_\w+|delete\w*|save\w*|activate|deactivate|archive|restore|publish|unpublish|lock|unlock|increment\w*|decrement\w*|reset\w*|touch|attach|detach|link|unlink|enable|disable|submit|accept|revoke|expire|renew|clear_\w+|apply_\w+|record_\w+)$/;

/**
 * Does the commit that `reach` ends at keep nothing: its chain and what the chain's functions call
 * stage and send nothing (see the module comment)?
 */
export function commitKeepsNothing(graph: CallGraph, reach: Reach): boolean {
  let memo = keepsMemo.get(graph);
  if (!memo) keepsMemo.set(graph, (memo = new Map()));
  const key = `${reach.steps.map((st) => `${st.fn.file}:${st.fn.fn}`).join('>')}@${reach.effect.line}:${reach.effect.column}`;
  let v = memo.get(key);
  if (v === undefined) memo.set(key, (v = keepsNothingUncached(graph, reach)));
  return v;
}

/** Asked per loop site by PA107 (workflow, unit) and PA207, for the same chains again and again. */
const keepsMemo = new WeakMap<CallGraph, Map<string, boolean>>();

function keepsNothingUncached(graph: CallGraph, reach: Reach): boolean {
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
