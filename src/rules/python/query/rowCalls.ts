/**
 * Methods and properties of the loop's own rows: `for r in rows: r.total_paid()` or
 * `r.open_items` runs the row's method once per item, whatever it is given. When that method is
 * a model's and queries about its own row (`object_session(self)`, `type(self).query`,
 * `Model.query.with_parent(self)`, a `lazy="dynamic"` relationship of `self`), the loop runs one
 * query per row: an N+1 the argument-based per-item test cannot see (the call passes nothing).
 *
 * The file phase records two facts for the repo phase:
 * - `row_call` sites: `v.name()` (no arguments) or a read of `v.name` where `v` is a target of a
 *   data loop around it (`what` = `m|name|endColumn|entity|<loop facts>` or `p|…`, `entity` the
 *   model the loop's rows are when a query says so, see `parseLoopCall` for the loop facts);
 * - `row_query`: a method of a model class whose own body runs a query about `self`.
 * The repo phase reports a site when the rows' model defines such a method of that name (at the
 * loop's severity), or, the rows' model unknown, when every method or property of that name in
 * the repo is such a model method (the name decides: one severity lower).
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import { assignmentsTo, callsOf, chainTop, valueTypeOf, type CallInfo, type FileModel, type LoopInfo, selfOffset } from '../../../semantic/model.js';
import { namesThen } from '../../../semantic/codeText.js';
import type { Effect } from '../../../analysis/summary.js';
import type { CallGraph, FnRef } from '../../../analysis/callgraph.js';
import { FN_PROPERTY } from '../../../analysis/objects.js';
import { isMemoisedCall } from '../../../semantic/memo.js';
import { insideNestedFunction } from '../../../semantic/controlFlow.js';
import { classOfFunction } from '../../../semantic/classes.js';
import { classifyDbCall, commitsPerIteration, isModelClassName, iterationWriter, loadedModel, loopsDomain, loopWritesDb, rowsSource, smallLiteralProduct } from './dbCalls.js';
import { encodeDomain } from '../../../semantic/loopDomain.js';
import { flagAtCall, flagGuard } from '../../../semantic/guards.js';
import { iterationSource } from '../../../semantic/smallLiterals.js';
import { callArgs, invariantIn, lastAssignment, notPerRow, repeatsReads, stopsAfter, unwrap } from './semantics.js';
import { returnsOf, selfRowsResolver } from './selfRows.js';
import { heldText, LAZY, MAX_ROWS_TEXT, proxyNames } from './loadedRelations.js';
import type { ProjectContext } from '../../../discovery/context.js';

export const ROW_CALL = 'row_call';
export const ROW_QUERY = 'row_query';
/**
 * A model method's or property's reads of its own row's attributes (`what` = the names, comma
 * separated): `self.owner`, `self.items` — the repo phase keeps those that are lazy relationships
 * of the model, each a lazy load per row when the method runs once per row of a loop.
 */
export const ROW_READS = 'row_reads';
/**
 * Site fact: `obj.name` read (not called, not assigned) on every iteration of a data loop, where
 * `obj` is typed with a class and nothing the loop does changes it (`what` =
 * `name|endColumn|Class|object|loop position|domain`). The repo phase reports it when `Class.name` is a
 * property whose getter runs a query: the same query once per item, to read once before the loop.
 */
export const INVARIANT_READ = 'invariant_read';
/** Site fact: a method call on a parameter of the function (see `paramRowCalls`). */
export const PARAM_ROW_CALL = 'param_row_call';
/**
 * Site fact: a call that hands the loop's row to a function (`serialize(o)` in `for o in orders`),
 * the rows a query's of one model (`what` = `position|endColumn|entity|w|directReads|rowsText`).
 */
export const ITEM_ARG_CALL = 'item_arg_call';
/**
 * A function's reads of attributes of a parameter it never rebinds (`what` = `position|names`,
 * the position among the arguments a caller passes): `def serialize(o): ... o.lines`. A name
 * every read of which sits under one flag guard of the function is `name^guard`
 * (`if with_lines: ... o.lines`): see `flagAtCall`.
 */
export const PARAM_READS = 'param_reads';
/**
 * Site fact: a call handed a whole list of one model's query rows, by position or keyword
 * (`render_rows(rows)`, `to_dicts(items=rows)`; `what` = `position|keyword|endColumn|entity[~a]|rowsText`,
 * `~a` when an awaited query in an `async def` loaded them).
 */
export const ROWS_ARG_CALL = 'rows_arg_call';
/**
 * A function's loops over a parameter it never rebinds (`for r in rows:`, `[r.x for r in rows]`),
 * and what the loop reads on the item (`what` = `position|name|names|w|calls`: the position among
 * the arguments a caller passes, the lazy relationship names read — `name~g` when every read only
 * keys a grouping —, `w` when the loop writes, and the calls handed the item as
 * `line:column:position`, separated by `;`).
 */
export const PARAM_LOOP_READS = 'param_loop_reads';

/** Methods of builtin values (`r.keys()`, `name.strip()`): never a model's. */
const BUILTIN_METHODS = /^(append|extend|insert|add|update|pop|setdefault|items|keys|values|copy|format|join|split|strip|lstrip|rstrip|lower|upper|title|replace|startswith|endswith|encode|decode|isoformat|strftime|date|time|timestamp|total_seconds|hex|count|index|sort|reverse|clear|get|read|close|isdigit|isalpha|capitalize)$/;

export function collectRowFacts(model: FileModel, project?: ProjectContext): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return effects;
  invariantPropertyReads(model, effects);
  // A helper handed the rows need not know the models: its loop's reads are matched by name.
  if (project) {
    const lazy = lazyRelationshipNames(project);
    paramLoopReads(model, effects, lazy);
    // A helper reading a row's relationships need not import the models either.
    paramReads(model, effects, lazy);
  }
  if (!model.modelClasses.size) return effects;
  rowQueries(model, effects);
  rowReads(model, effects);
  rowSites(model, effects);
  paramRowCalls(model, effects);
  itemArgCalls(model, effects);
  rowsArgCalls(model, effects);
  return effects;
}

/** The attributes the loop's iteration reads (not calls) on its item names, comma separated. */
function itemReads(model: FileModel, loop: LoopInfo, items: string[]): string {
  const names = new Set<string>();
  for (const v of items) {
    for (const m of model.source.slice(loop.iterStart, loop.iterEnd).matchAll(new RegExp(`(?<![\\w.])${v}\\.([A-Za-z_]\\w*)(?!\\w)(?!\\s*\\()`, 'g'))) names.add(m[1]!);
  }
  return [...names].join(',');
}

/** `ITEM_ARG_CALL` sites: a call in a data loop over one model's query rows that passes the row itself. */
function itemArgCalls(model: FileModel, effects: Effect[][]): void {
  for (const loop of model.loops) {
    if (loop.functionIndex < 0 || loop.kind === 'while') continue;
    const names = itemNames(loop);
    if (names.length !== 1) continue;
    const v = names[0]!;
    let rows: { entity: string; text: string } | null | undefined;
    for (const call of callsOf(model, loop.functionIndex)) {
      if (call.functionIndex !== loop.functionIndex || call.loops[call.loops.length - 1] !== loop.index) continue;
      const position = itemArgPosition(call, v);
      if (position < 0) continue;
      if (call.qualifiedName && /^(builtins|logging|json|copy|str|repr)\./.test(call.qualifiedName)) continue;
      const site = { node: call.node, line: call.line, functionIndex: loop.functionIndex };
      const loops = enclosingLoops(model, loop);
      if (notPerRow(model, site, loops)) continue;
      rows ??= loopRows(model, loop);
      if (!rows) break;
      const writer = iterationWriter(model, site, loop);
      const writes = writer !== null;
      const commits = commitsPerIteration(model, loop);
      const what = `${position}|${call.node.endPosition.column + 1}|${rows.entity}|${writes ? 'w' : ''}${commits ? 'c' : ''}|${itemReads(model, loop, names)}|${rowsText(model, rows, loop.functionIndex)}`;
      effects[loop.functionIndex]!.push({ kind: ITEM_ARG_CALL, what, line: call.line, column: call.column });
    }
  }
}

const lazyNamesMemo = new WeakMap<ProjectContext, Set<string>>();

/** The names of the project's lazily loaded relationships: the only reads `PARAM_READS` keeps. */
function lazyRelationshipNames(project: ProjectContext): Set<string> {
  let out = lazyNamesMemo.get(project);
  // (And the association proxies, which read through one: `plan.template_name` loads `plan.template`.)
  if (!out) lazyNamesMemo.set(project, (out = new Set([...project.models.flatMap((m) => m.relationships.filter((r) => LAZY.has(r.lazy)).map((r) => r.name)), ...proxyNames(project)])));
  return out;
}

/** A call's name that never loops over rows of the project's models for them (builtins, logging, the session's own methods). */
const NOT_A_ROWS_HELPER = /^(?:len|list|tuple|set|sorted|reversed|enumerate|zip|iter|next|any|all|sum|min|max|map|filter|print|repr|str|isinstance|id|dict|jsonify|abort|render_template|redirect|make_response)$|^(?:logging|logger|log|json|copy|builtins|itertools|functools|random|np|pd)\./;
/** Words of a query whose rows a name may hold. */
const ROWS_WORDS = /\b(?:query|select|scalars|execute|all|paginate)\b/;
/** A query expression that yields one row or a scalar, not a list of rows. */
const ONE_ROW_TAIL = /\.(?:first|one|one_or_none|scalar|scalar_one|scalar_one_or_none|get|get_or_404|first_or_404|one_or_404|count|exists|has_rows)\s*\([^()]*\)\s*$/;

/**
 * `ROWS_ARG_CALL` sites: a call (not a database call itself) handed a name or expression that
 * holds the rows of one model's query — several rows, not one (`.first()`, a key lookup) — where
 * the function does not read that name's items itself first.
 */
function rowsArgCalls(model: FileModel, effects: Effect[][]): void {
  // The names each function binds to a query's result: the only arguments worth a closer look.
  const held = new Map<number, Set<string>>();
  for (const a of model.assignments) {
    // (Or a filter over such a name: `[d for d in dogs if d.alive]`, which rowsSource follows.)
    if (a.functionIndex < 0 || !a.value || !(ROWS_WORDS.test(a.value.text) || a.value.type === 'list_comprehension')) continue;
    (held.get(a.functionIndex) ?? held.set(a.functionIndex, new Set()).get(a.functionIndex)!).add(a.target);
  }
  if (!held.size) return;
  for (const call of model.calls) {
    const i = call.functionIndex;
    const names = held.get(i);
    if (!names || call.loops.length) continue;
    const callee = call.node.childForFieldName('function')?.text ?? '';
    if (NOT_A_ROWS_HELPER.test(callee) || /(?:^|\.)(?:session|db|conn|connection|cursor|s)\.\w+$/.test(callee)) continue;
    const args = call.node.childForFieldName('arguments')?.namedChildren ?? [];
    let position = 0;
    for (const a of args) {
      if (a.type === 'list_splat' || a.type === 'dictionary_splat') break;
      const keyword = a.type === 'keyword_argument' ? a.childForFieldName('name')?.text ?? '' : '';
      const value = a.type === 'keyword_argument' ? a.childForFieldName('value') : a;
      const at = keyword ? -1 : position++;
      if (value?.type !== 'identifier' || !names.has(value.text)) continue;
      if (call.hasReceiver && call.receiver?.text === value.text) continue;
      const assigned = lastAssignment(model, value.text, i, call.line);
      const bound = assigned?.value ? unwrap(assigned.value) : null;
      if (!bound || assigned!.functionIndex !== i || !(ROWS_WORDS.test(bound.text) || bound.type === 'list_comprehension') || ONE_ROW_TAIL.test(bound.text)) continue;
      if (classifyDbCall(model, call)) break;
      const rows = rowsSource(model, value, i, call.line);
      if (!rows?.entity || (loadedModel(model, rows.call, rows.op) !== null && !rows.op.statement)) continue;
      // Rows an awaited query loaded in an `async def`: an AsyncSession's, whose lazy loads raise.
      const awaited = rows.call.awaited && model.functions[i]!.isAsync ? 'a' : '';
      const what = `${at}|${keyword}|${call.node.endPosition.column + 1}|${rows.entity}${awaited ? `~${awaited}` : ''}|${rowsText(model, rows, i)}`;
      effects[i]!.push({ kind: ROWS_ARG_CALL, what, line: call.line, column: call.column });
    }
  }
}

/** Is the comprehension the one argument of `any`/`all`/`next`, which stop at the first decisive item? */
function searchCall(node: SyntaxNode): boolean {
  const args = node.parent;
  const call = args?.type === 'argument_list' ? args.parent : node.parent;
  const fn = call?.type === 'call' ? call.childForFieldName('function')?.text ?? '' : '';
  return /^(?:builtins\.)?(any|all|next)$/.test(fn);
}

/**
 * `PARAM_LOOP_READS`: per parameter (not `self`/`cls`) the function loops over without rebinding
 * it, the lazy relationship names the loops read on the item. A loop that stops early (`break`,
 * `return`) is a search, not a read per row: left out.
 */
function paramLoopReads(model: FileModel, effects: Effect[][], lazy: ReadonlySet<string>): void {
  if (!lazy.size) return;
  const found = new Map<string, { fn: number; position: number; name: string; names: Set<string>; writes: boolean; calls: Set<string> }>();
  for (const loop of model.loops) {
    const i = loop.functionIndex;
    // `for r in rows`, also through `enumerate(rows)`, `sorted(rows, key=...)`, `list(rows)`.
    const over = loop.kind === 'while' ? null : iterationSource(loop.iterable);
    if (i < 0 || over?.type !== 'identifier') continue;
    const fn = model.functions[i]!;
    const offset = selfOffset(fn);
    const index = fn.params.findIndex((p) => p.name === over.text);
    if (index < offset) continue;
    const name = fn.params[index]!.name;
    if (assignmentsTo(model, name).some((a) => a.functionIndex === i && a.target === name)) continue;
    let items = itemNames(loop);
    // `for i, r in enumerate(rows)`: the row is the second name.
    if (items.length === 2 && /^enumerate\(/.test(loop.iterable?.text ?? '')) items = [items[1]!];
    if (items.length !== 1) continue;
    const reads = itemReads(model, loop, items).split(',').filter((r) => lazy.has(r));
    // Calls handed the item (`[row_dict(d) for d in dogs]`): what they read on it, the repo phase looks up.
    const handed = itemCalls(model, loop, items[0]!);
    if (!reads.length && !handed.length) continue;
    if (loop.node.descendantsOfType(['break_statement', 'return_statement']).some((s) => !insideNestedFunction(s, loop.node))) continue;
    // `any(r.items for r in rows)`, `next(...)`: a search that stops at the first hit.
    if (loop.kind === 'comprehension' && searchCall(loop.node)) continue;
    // Reads that only key a grouping (`groups[r.owner].append(r)`): one load per distinct target.
    const ungrouped = new Set<string>();
    for (const attr of reads.length ? loop.node.descendantsOfType('attribute') : []) {
      const n = attr.childForFieldName('attribute')?.text ?? '';
      if (attr.childForFieldName('object')?.text === items[0] && reads.includes(n) && !groupedBy(attr, '', n)) ungrouped.add(n);
    }
    const key = `${i}|${index}`;
    const entry = found.get(key) ?? { fn: i, position: index - offset, name, names: new Set<string>(), writes: false, calls: new Set<string>() };
    for (const r of reads) entry.names.add(ungrouped.has(r) ? r : `${r}~g`);
    for (const c of handed) entry.calls.add(c);
    entry.writes ||= loopWritesDb(model, loop);
    found.set(key, entry);
  }
  for (const e of found.values()) {
    effects[e.fn]!.push({ kind: PARAM_LOOP_READS, what: `${e.position}|${e.name}|${[...e.names].slice(0, 40).join(',')}|${e.writes ? 'w' : ''}|${[...e.calls].slice(0, 8).join(';')}`, line: model.functions[e.fn]!.startLine, column: 1 });
  }
}

/**
 * The position among a call's positional arguments where it is handed `item` itself (not a
 * method of it, nor after a keyword or a splat, where the callee's parameter is unknown); -1 when not.
 */
function itemArgPosition(call: CallInfo, item: string): number {
  if (call.hasReceiver && call.receiver?.text === item) return -1;
  const args = call.node.childForFieldName('arguments')?.namedChildren ?? [];
  const position = args.findIndex((a) => a.type === 'identifier' && a.text === item);
  return position < 0 || args.slice(0, position).some((a) => a.type === 'keyword_argument' || a.type === 'list_splat' || a.type === 'dictionary_splat') ? -1 : position;
}

/** Calls in the loop's own body handed its item by position (`line:column:position`, the position among the arguments). */
function itemCalls(model: FileModel, loop: LoopInfo, item: string): string[] {
  const out: string[] = [];
  for (const call of callsOf(model, loop.functionIndex)) {
    if (call.functionIndex !== loop.functionIndex || call.loops[call.loops.length - 1] !== loop.index) continue;
    const position = itemArgPosition(call, item);
    if (position >= 0) out.push(`${call.line}:${call.column}:${position}`);
  }
  return out;
}

/**
 * Is the read `row.<name>` of a many-to-one the key the loop groups rows by: the key of a
 * collection it fills (`groups[row.owner].append(row)`, `totals[row.owner] += n`,
 * `setdefault(row.owner, [])`, also by an attribute of the target: `groups[row.owner.team]`), or the first sort key of the rows' query (`order_by(Row.owner_id)`)?
 */
export function groupedBy(read: SyntaxNode, rowsText: string, name: string): boolean {
  // `groups[row.owner.team]`: keyed by a further attribute of the target, still one SELECT per distinct target.
  let key = read;
  while (key.parent?.type === 'attribute' && key.parent.childForFieldName('object')?.id === key.id) key = key.parent;
  const parent = key.parent;
  if (parent?.type === 'subscript' && parent.childForFieldName('subscript')?.id === key.id) {
    // `groups[row.owner].append(row)`, `totals[row.owner] += n`: collecting per target.
    const up = parent.parent;
    if (up?.type === 'attribute' && /^(append|add|extend|update)$/.test(up.childForFieldName('attribute')?.text ?? '') && up.parent?.type === 'call') return true;
    if (up?.type === 'augmented_assignment' && up.childForFieldName('left')?.id === parent.id) return true;
  }
  if (parent?.type === 'argument_list' && parent.namedChild(0)?.id === key.id && /\.setdefault$/.test(parent.parent?.childForFieldName('function')?.text ?? '')) return true;
  return new RegExp(`order_by\\(\\s*(?:[\\w.]+\\.)?${name}_id\\b`).test(rowsText);
}

/** After a name (`namesThen`: sticky): `.attr` read, not called nor assigned; the attribute. */
const ATTRIBUTE_READ = /\.([A-Za-z]\w*)(?!\w)(?!\s*\()(?!\s*=(?!=))/y;

/**
 * `PARAM_READS`: per parameter (not `self`/`cls`), the attributes the function reads on it that
 * name a lazy relationship of some model of the project, when it never rebinds the parameter.
 */
function paramReads(model: FileModel, effects: Effect[][], lazy: ReadonlySet<string>): void {
  if (!lazy.size) return;
  model.functions.forEach((fn, i) => {
    if (!fn.body || fn.params.length === 0) return;
    const text = fn.body.text;
    const offset = selfOffset(fn);
    fn.params.forEach((p, index) => {
      if (index < offset || !/^[A-Za-z_]\w*$/.test(p.name) || !text.includes(`${p.name}.`)) return;
      if (assignmentsTo(model, p.name).some((a) => a.functionIndex === i && a.target === p.name)) return;
      // Per name, the flag guard every read of it sits under (`if with_shots:` on a default-off
      // parameter), '' when one read has none: a caller that leaves the flag off reads nothing.
      const guards = new Map<string, string>();
      for (const m of namesThen(text, p.name, ATTRIBUTE_READ)) {
        const name = m[1]!;
        if (!lazy.has(name) || guards.get(name) === '') continue;
        const at = fn.body!.startIndex + m.index + 1;
        const node = model.root.descendantForIndex(at, at + name.length);
        const guard = node ? flagGuard(model, node, i) ?? '' : '';
        const known = guards.get(name);
        guards.set(name, known === undefined || known === guard ? (/[|,^]/.test(guard) ? '' : guard) : '');
      }
      const names = [...guards].map(([n, g]) => (g ? `${n}^${g}` : n));
      // Calls of the repo handed the parameter whole (`failure_reason(attempt)`), as
      // `line:column:position` (`;`-separated): what they read on it, the caller reads too.
      const handoffs: string[] = [];
      if (new RegExp(`[(,]\\s*${p.name}\\s*[,)]`).test(text)) {
        for (const c of callsOf(model, i)) {
          // Not one under a flag of the function (`if with_labels: labels(cellar)`): the caller may leave it off.
          if (c.functionIndex !== i || c.hasReceiver || handoffs.length >= 6) continue;
          // The argument first (the guard's regions are the dearer question, for calls that pass it only).
          const pos = callArgs(c.node).positional.findIndex((x) => x.type === 'identifier' && x.text === p.name);
          if (pos >= 0 && !flagGuard(model, c.node, i)) handoffs.push(`${c.line}:${c.column}:${pos}`);
        }
      }
      if (names.length || handoffs.length) effects[i]!.push({ kind: PARAM_READS, what: `${index - offset}|${names.slice(0, 40).join(',')}${handoffs.length ? `|${handoffs.join(';')}` : ''}`, line: fn.startLine, column: 1 });
    });
  });
}

/**
 * `PARAM_ROW_CALL` sites: `p.name(...)` outside any loop of the function, `p` one of its
 * parameters (not `self`/`cls`) it has not rebound before the call (`what` = `position|endColumn`,
 * the position among the arguments a caller passes). The repo phase reports one when the method
 * is a model's that queries about its own row and a caller calls the function once per item of a
 * loop, passing the loop's item there: one query per item, made in the helper.
 */
function paramRowCalls(model: FileModel, effects: Effect[][]): void {
  for (const call of model.calls) {
    const i = call.functionIndex;
    // The method's name first: it is text, the receiver a lookup in the tree.
    if (i < 0 || call.loops.length || !call.hasReceiver || call.method.startsWith('_') || BUILTIN_METHODS.test(call.method)) continue;
    if (call.receiver?.type !== 'identifier') continue;
    const fn = model.functions[i]!;
    const offset = selfOffset(fn);
    const index = fn.params.findIndex((p) => p.name === call.receiver!.text);
    // Only a typed parameter can resolve the method (the repo phase never goes by name alone).
    if (index < offset || !fn.params[index]!.annotation) continue;
    const rebound = lastAssignment(model, call.receiver.text, i, call.line);
    if (rebound && rebound.functionIndex === i) continue;
    effects[i]!.push({ kind: PARAM_ROW_CALL, what: `${index - offset}|${call.node.endPosition.column + 1}`, line: call.line, column: call.column });
  }
}

/**
 * `INVARIANT_READ` sites: `obj.name` in the body of a data loop (a `for` body, or a comprehension
 * nested in it), `obj` a parameter or local typed with a class (an annotation, a constructor, or a
 * query that loads one model) that the loop does not rebind, in a loop that repeats its reads
 * unchanged (see `invariantRead`): no early exit, no write to rows or to the database in the file.
 */
function invariantPropertyReads(model: FileModel, effects: Effect[][]): void {
  const source = model.source;
  for (const loop of model.loops) {
    if (loop.functionIndex < 0 || loop.kind === 'while' || !repeatsReads(model, loop) || loopWritesDb(model, loop)) continue;
    const items = new Set(itemNames(loop));
    const seen = new Set<string>();
    for (const attr of loop.node.descendantsOfType('attribute')) {
      // Read, not called or assigned: what follows the attribute (the cheapest test first).
      FOLLOWS.lastIndex = attr.endIndex;
      const follows = FOLLOWS.exec(source)?.[1] ?? '';
      if (follows.startsWith('(') || follows.endsWith('=')) continue;
      const obj = attr.childForFieldName('object');
      const name = attr.childForFieldName('attribute')?.text;
      if (obj?.type !== 'identifier' || !name || name.startsWith('_') || obj.text === 'self' || items.has(obj.text)) continue;
      const key = `${obj.text}.${name}`;
      if (seen.has(key)) continue;
      // Evaluated per item of this loop and of no loop nested in it.
      if (perItemLoopOf(model, attr) !== loop) continue;
      // In this loop's own body, not in a function defined there.
      if (insideNestedFunction(attr, loop.node)) continue;
      const line = attr.startPosition.row + 1;
      if (!invariantIn(model, attr, loop) || stopsAfter(attr, loop)) continue;
      const owner = ownerClass(model, obj.text, loop.functionIndex, loop.node.startPosition.row + 1);
      if (!owner) continue;
      seen.add(key);
      const what = `${name}|${attr.endPosition.column + 1}|${owner}|${obj.text}|${loop.node.startPosition.row + 1}:${loop.node.startPosition.column}|${encodeDomain(loopsDomain(model, [loop]))}`;
      effects[loop.functionIndex]!.push({ kind: INVARIANT_READ, what, line, column: attr.startPosition.column + 1 });
    }
  }
}

/** The innermost loop of the node's function that evaluates `node` once per item (not in its iterable). */
function perItemLoopOf(model: FileModel, node: SyntaxNode): LoopInfo | null {
  let best: LoopInfo | null = null;
  for (const l of model.loops) {
    if (node.startIndex < l.iterStart || node.endIndex > l.iterEnd) continue;
    const it = l.iterable;
    if (it && node.startIndex >= it.startIndex && node.endIndex <= it.endIndex) continue;
    if (!best || l.iterStart > best.iterStart) best = l;
  }
  return best;
}

/** The class (short name) a name holds before `line`: its annotation or constructor, or the model a query loaded into it. */
function ownerClass(model: FileModel, name: string, fnIndex: number, line: number): string | null {
  const a = lastAssignment(model, name, fnIndex, line);
  const loaded = a?.value ? rowsSource(model, a.value, a.functionIndex, a.line - 1) : null;
  if (loaded) {
    // One row (`session.get(M, pk)`, `....first()`), not a list of them.
    const one = loadedModel(model, loaded.call, loaded.op) !== null && !loaded.op.statement
      || /\.(first|one|one_or_none|scalar|scalar_one|scalar_one_or_none)\(\s*\)\s*$/.test(a!.value!.text);
    return one ? loaded.entity ?? loadedModel(model, loaded.call, loaded.op) : null;
  }
  const t = valueTypeOf(model, name, fnIndex, line);
  if (!t || !/^[\w.]+$/.test(t)) return null;
  const short = t.slice(t.lastIndexOf('.') + 1);
  return /^[A-Z]/.test(short) ? short : null;
}

/** `row_query`: a model method whose own body queries about `self`, or returns a query about it. */
function rowQueries(model: FileModel, effects: Effect[][]): void {
  const done = new Set<number>();
  queryObjectReturns(model, effects, done);
  for (const call of model.calls) {
    const i = call.functionIndex;
    if (i < 0 || done.has(i)) continue;
    const fn = model.functions[i]!;
    if (!fn.className || fn.parent >= 0 || !fn.params.length || fn.params[0]!.name !== 'self') continue;
    const cls = classOfFunction(model, i);
    if (!cls || !isModelClassName(model, cls)) continue;
    const op = classifyDbCall(model, call);
    if (op?.kind !== 'read' || op.identityMap || isMemoisedCall(model, call)) continue;
    if (!/\bself\b/.test(chainTop(call.node).text) && !op.what.endsWith('(dynamic)')) continue;
    done.add(i);
    effects[i]!.push({ kind: ROW_QUERY, what: op.what, line: call.line, column: call.column });
  }
}


/** `ROW_READS`: the attributes of `self` a model method (or property) reads, once per method. */
function rowReads(model: FileModel, effects: Effect[][]): void {
  model.functions.forEach((fn, i) => {
    if (!fn.className || fn.parent >= 0 || fn.params[0]?.name !== 'self' || !fn.body || !isModelClassName(model, fn.className)) return;
    const text = fn.body.text;
    if (!text.includes('self.')) return;
    // `self.name` read (not called, not assigned) in the method's own body; with the flag guard
    // every read of it sits under (`def to_dict(self, with_readers=False): if with_readers: ...`),
    // as `name^guard` (see PARAM_READS): a call that leaves the flag off reads nothing.
    const guards = new Map<string, string>();
    const flagged = fn.params.length > 1;
    for (const m of namesThen(text, 'self', ATTRIBUTE_READ)) {
      const name = m[1]!;
      if (!flagged) {
        guards.set(name, '');
        continue;
      }
      if (guards.get(name) === '') continue;
      const at = fn.body.startIndex + m.index + 1;
      const node = model.root.descendantForIndex(at, at + name.length);
      const guard = node ? flagGuard(model, node, i) ?? '' : '';
      const known = guards.get(name);
      guards.set(name, known === undefined || known === guard ? (/[|,^]/.test(guard) ? '' : guard) : '');
    }
    const names = [...guards].map(([n, g]) => (g ? `${n}^${g}` : n));
    if (names.length) effects[i]!.push({ kind: ROW_READS, what: names.slice(0, 40).join(','), line: fn.startLine, column: 1 });
  });
}

const membersMemo = new WeakMap<CallGraph, Map<string, FnRef>>();

/**
 * The methods and properties of the repo's classes outside tests, by `Class.name` (a property:
 * `Class.name@`): where the repo phase finds the model method a row's call runs. Once per graph.
 */
export function classMembers(graph: CallGraph): ReadonlyMap<string, FnRef> {
  let out = membersMemo.get(graph);
  if (!out) {
    out = new Map();
    for (const r of graph.functions()) {
      const f = graph.function(r);
      if (f.className && f.parent < 0 && !graph.fileOf(r).isTestFile) out.set(`${f.className}.${f.name}${(f.flags & FN_PROPERTY) !== 0 ? '@' : ''}`, r);
    }
    membersMemo.set(graph, out);
  }
  return out;
}

/**
 * The names a model method reads on its row (`ROW_READS`) when `call` calls it: a read under a
 * flag the call leaves off (`to_dict()` of `def to_dict(self, with_readers=False)`) is not made.
 */
export function rowReadsAt(effects: readonly Effect[], call: { passes?: string } | null | undefined): string[] | undefined {
  const listed = effects.find((e) => e.kind === ROW_READS)?.what.split(',');
  if (!listed) return undefined;
  return listed.flatMap((n) => {
    const at = n.indexOf('^');
    return at < 0 ? [n] : flagAtCall(call?.passes, n.slice(at + 1)) === 'off' ? [] : [n.slice(0, at)];
  });
}

/** Methods of a query that run it: a chain ending in one of them is a result, not a query object. */
const RUNS_QUERY = /\.(all|first|one|one_or_none|scalar|scalar_one|scalar_one_or_none|scalars|count|get|get_or_404|first_or_404|one_or_404|exists|has_rows|delete|update|paginate|fetchall|fetchone|execute)\s*\([^()]*\)\s*$/;

/**
 * A query object, not run: `Model.query.filter(...)…` (a model of the project) or
 * `session.query(Model)…`, with no method that runs it at the end of the chain.
 */
function unrunQuery(model: FileModel, value: SyntaxNode | null): boolean {
  if (value?.type !== 'call' && value?.type !== 'attribute') return false;
  const text = value.text;
  if (RUNS_QUERY.test(text)) return false;
  const head = /^([A-Z]\w*)\.query\b/.exec(text);
  if (head) return isModelClassName(model, head[1]!);
  return /^[\w.]*session\.query\s*\(\s*[A-Z]\w*/.test(text);
}

/**
 * `row_query` for a model method or property that returns a query object about its row
 * (`return Model.query.filter(Model.parent_id == self.id)`, or through a method of the class that
 * builds the query from what `self` passes it: `return self._chain(Model.id == self.parent_id)`):
 * whoever reads it runs it — iterating, `.all()`, `any(...)` — once per row in a loop.
 */
function queryObjectReturns(model: FileModel, effects: Effect[][], done: Set<number>): void {
  const builders = new Map<string, boolean>();
  const builds = (cls: string, name: string): boolean => {
    const key = `${cls}.${name}`;
    let known = builders.get(key);
    if (known === undefined) {
      const fn = model.functions.find((f) => f.className === cls && f.name === name && f.parent < 0);
      known = !!fn && returnsOf(fn).some((r) => unrunQuery(model, r.namedChild(0)));
      builders.set(key, known);
    }
    return known;
  };
  model.functions.forEach((fn, i) => {
    if (!fn.className || fn.parent >= 0 || fn.params[0]?.name !== 'self' || !isModelClassName(model, fn.className)) return;
    for (const r of returnsOf(fn)) {
      const value = r.namedChild(0);
      if (!value || !/\bself\b/.test(value.text)) continue;
      let query = unrunQuery(model, value);
      if (!query && value.type === 'call') {
        const callee = value.childForFieldName('function');
        const m = callee?.type === 'attribute' ? /^(self|[A-Z]\w*)\.(\w+)$/.exec(callee.text) : null;
        const args = value.childForFieldName('arguments');
        query = !!m && !!args && /\bself\b/.test(args.text) && (m[1] === 'self' || m[1] === fn.className) && builds(fn.className, m[2]!);
      }
      if (!query) continue;
      done.add(i);
      effects[i]!.push({ kind: ROW_QUERY, what: `${short(value)} (a query object: run where it is read)`, line: r.startPosition.row + 1, column: r.startPosition.column + 1 });
      return;
    }
  });
}

function short(node: SyntaxNode): string {
  const t = node.text.replace(/\s+/g, ' ');
  return t.length > 60 ? t.slice(0, 59) + '…' : t;
}


/** Names a loop binds to each item: a `for`'s targets, a comprehension's `for ... in` targets. */
function itemNames(loop: LoopInfo): string[] {
  const out: string[] = [];
  const collect = (t: SyntaxNode | null) => {
    if (!t) return;
    if (t.type === 'identifier') out.push(t.text);
    else if (t.type === 'tuple_pattern' || t.type === 'pattern_list' || t.type === 'tuple' || t.type === 'list_pattern') for (const c of t.namedChildren) collect(c);
  };
  if (loop.kind === 'for' || loop.kind === 'async_for') collect(loop.node.childForFieldName('left'));
  else if (loop.kind === 'comprehension') {
    for (const clause of loop.node.namedChildren) if (clause.type === 'for_in_clause') collect(clause.childForFieldName('left'));
  }
  return out;
}

const AFTER_NAME = /[A-Za-z_]\w*/y;
/** What follows `v.name`: an empty call, a call with arguments, an assignment (`=`, `+=`), or anything else. */
const FOLLOWS = /\s*(\(\s*\)|\(|=(?!=)|[-+*/|&]=)?/y;

/** `row_call` sites: `v.name()` / `v.name` on a loop's item, once per loop and name. */
function rowSites(model: FileModel, effects: Effect[][]): void {
  const source = model.source;
  for (const loop of model.loops) {
    if (loop.functionIndex < 0 || loop.kind === 'while') continue;
    const seen = new Set<string>();
    // Attributes the loop reads on its item itself (`o.reservation` before `o.reject()`): a
    // method of the row that reads them again finds them loaded.
    let direct: string | null = null;
    const directReads = (): string => (direct ??= itemReads(model, loop, itemNames(loop)));
    for (const v of itemNames(loop)) {
      const needle = `${v}.`;
      for (let at = source.indexOf(needle, loop.iterStart); at >= 0 && at < loop.iterEnd; at = source.indexOf(needle, at + needle.length)) {
        const before = source.charCodeAt(at - 1);
        if (/[\w.]/.test(String.fromCharCode(before))) continue;
        AFTER_NAME.lastIndex = at + needle.length;
        const m = AFTER_NAME.exec(source);
        if (!m) continue;
        const name = m[0];
        if (name.startsWith('__')) continue;
        FOLLOWS.lastIndex = AFTER_NAME.lastIndex;
        const follows = FOLLOWS.exec(source)?.[1] ?? '';
        let kind: 'm' | 'p';
        let argsNode: SyntaxNode | null = null;
        if (follows === '()') kind = 'm';
        else if (follows === '(') {
          // Arguments that change per item: the argument-based per-item test decides. Arguments
          // the loop never changes (`g.descendants(kind='org')`) leave the row as the only thing
          // that differs between calls: a method about its row, like one with no arguments.
          kind = 'm';
          argsNode = null;
        } else if (follows.endsWith('=')) continue; // assigned, not read
        else kind = 'p';
        if (kind === 'm' && BUILTIN_METHODS.test(name)) continue;
        if (seen.has(`${kind}|${name}`)) continue;
        // In code, not a string or a comment: the name is an identifier of an attribute node.
        const node = model.root.descendantForIndex(at, at + v.length);
        if (node?.type !== 'identifier' || node.parent?.type !== 'attribute' || node.parent.childForFieldName('object')?.id !== node.id) continue;
        // The read must belong to this loop's function (not a def nested in the loop).
        const attrNode = node.parent;
        const site = { node: attrNode, line: model.lineOf(at) + 1, functionIndex: loop.functionIndex };
        const loops = enclosingLoops(model, loop);
        if (follows === '(') {
          argsNode = attrNode.parent?.type === 'call' ? attrNode.parent.childForFieldName('arguments') : null;
          if (!argsNode || !loops.every((l) => invariantIn(model, argsNode!, l))) continue;
        }
        if (notPerRow(model, site, loops)) continue;
        seen.add(`${kind}|${name}`);
        const size = smallLiteralProduct(loops);
        const writes = iterationWriter(model, site, loop) !== null;
        const rows = loopRows(model, loop);
        const what = `${kind}|${name}|${attrNode.endPosition.column + 1}|${rows?.entity ?? ''}|${size ?? ''}|${loop.node.startPosition.row + 1}:${loop.node.startPosition.column}|${writes ? 'w' : ''}||${encodeDomain(loopsDomain(model, loops))}||${rows ? directReads() : ''}|${rows ? rowsText(model, rows, loop.functionIndex) : '*'}`;
        const column = at - source.lastIndexOf('\n', at - 1);
        effects[loop.functionIndex]!.push({ kind: ROW_CALL, what, line: site.line, column });
      }
    }
  }
}

/**
 * The model the loop's rows are and the query's text, when its iterable is a query's result of
 * one entity (`for a in db.scalars(select(Author))`), also rows a method of the class (or a base
 * in the file) keeps on `self` (`self.events = Event.query...all()`), copied (`self.events[:]`).
 */
function loopRows(model: FileModel, loop: LoopInfo): { entity: string; text: string } | null {
  if (!loop.iterable || itemNames(loop).length !== 1) return null;
  let rows = loop.iterable;
  // `rows[:]`: the same rows, copied.
  if (rows.type === 'subscript' && /^\[\s*:\s*\]$/.test(rows.text.slice(rows.childForFieldName('value')?.text.length ?? 0).trim())) rows = rows.childForFieldName('value') ?? rows;
  const line = loop.node.startPosition.row + 1;
  const cls = loop.functionIndex >= 0 ? classOfFunction(model, loop.functionIndex) : null;
  const source = rowsSource(model, rows, loop.functionIndex, line, 0, cls ? selfRowsResolver(model, cls) : undefined);
  return source?.entity ? { entity: source.entity, text: source.text } : null;
}

/**
 * The text of the loop's query and of the options and criteria it takes by name, for the repo
 * phase's `eagerlyLoaded` / `targetsHeld` (loadedRelations.ts); `*` when the options come from
 * `self` attributes the file cannot read (`.options(*self.opts)`).
 */
function rowsText(model: FileModel, rows: { text: string }, fnIndex: number): string {
  if (/\.options\(\s*\*\s*self\./.test(rows.text)) return '*';
  return [rows.text, heldText(model, rows.text, fnIndex)].filter(Boolean).join(' ').replace(/\s+/g, ' ').slice(0, MAX_ROWS_TEXT);
}

/** The loops from the outermost down to `loop` in its function. */
function enclosingLoops(model: FileModel, loop: LoopInfo): LoopInfo[] {
  const out: LoopInfo[] = [];
  for (const l of model.loops) {
    if (l.functionIndex !== loop.functionIndex) continue;
    if (l === loop || (l.node.startIndex <= loop.node.startIndex && l.node.endIndex >= loop.node.endIndex && loop.node.startIndex >= l.iterStart && loop.node.endIndex <= l.iterEnd)) out.push(l);
  }
  return out.sort((a, b) => a.node.startIndex - b.node.startIndex);
}
