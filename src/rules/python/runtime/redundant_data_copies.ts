/**
 * PA306 redundant_data_copies
 *
 * What it does: finds copies that nothing needs: `list(x)` / `dict(x)` / `x.copy()` /
 * `copy.copy(x)` / `copy.deepcopy(x)` of a value that was just built (a literal, a
 * comprehension, `sorted(...)`, another copy), or of a local built in the same function and
 * copied only to be returned.
 * Why is this bad? The copy doubles the allocation and the time to build it; nothing else holds
 * the original, so it protects nothing.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { CallInfo, FileModel } from '../../../semantic/model.js';
import { assignmentsTo, callAt } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { smallLiteral } from '../../../semantic/smallLiterals.js';

const COPY_FUNCTIONS = new Set(['builtins.list', 'builtins.dict', 'copy.copy', 'copy.deepcopy']);
/** Fresh values by the shape a copy keeps: `list(x)` copies only when x is a list, `dict(x)` a dict. */
const FRESH_LIST = new Set(['list', 'list_comprehension']);
const FRESH_DICT = new Set(['dictionary', 'dictionary_comprehension']);
const FRESH_LIST_CALLS = new Set(['builtins.list', 'builtins.sorted']);
const FRESH_DICT_CALLS = new Set(['builtins.dict']);
const FRESH_ANY_CALLS = new Set(['copy.copy', 'copy.deepcopy', 'json.loads']);

function copiedValue(call: CallInfo): SyntaxNode | null {
  if (call.qualifiedName && COPY_FUNCTIONS.has(call.qualifiedName)) {
    const args = call.node.childForFieldName('arguments');
    if (args?.type !== 'argument_list' || args.namedChildCount !== 1) return null;
    const a = args.namedChild(0);
    return a && a.type !== 'keyword_argument' && a.type !== 'list_splat' && a.type !== 'dictionary_splat' ? a : null;
  }
  if (call.method === 'copy' && call.receiver && (call.node.childForFieldName('arguments')?.namedChildCount ?? 1) === 0) return call.receiver;
  return null;
}

/**
 * A value nobody else holds — a literal, a comprehension, or the result of a copying call — of
 * the shape the copy keeps (`list(x)` of a dict is a conversion, not a copy).
 */
function isFresh(model: FileModel, node: SyntaxNode, copier: string | null): boolean {
  // `deepcopy` copies the contents too: redundant only when nobody else holds those either. A
  // shallow container (`dict(x)`, `[row]`, `sorted(items)`) still shares its items with the caller.
  if (copier === 'copy.deepcopy') return deepFresh(model, node);
  const wantList = copier === 'builtins.list';
  const wantDict = copier === 'builtins.dict';
  if (FRESH_LIST.has(node.type)) return !wantDict;
  if (FRESH_DICT.has(node.type)) return !wantList;
  if (node.type !== 'call') return false;
  const c = callAt(model, node);
  const q = c?.qualifiedName;
  if (!c) return false;
  if (q && FRESH_LIST_CALLS.has(q)) return !wantDict;
  if (q && FRESH_DICT_CALLS.has(q)) return !wantList;
  if (q && FRESH_ANY_CALLS.has(q)) return !wantList && !wantDict;
  return !wantList && !wantDict && c.method === 'copy' && copiedValue(c) !== null;
}

/** A value nobody else holds, down to its leaves: `json.loads(...)`, a deep copy, a literal of constants. */
function deepFresh(model: FileModel, node: SyntaxNode): boolean {
  if (CONSTANT.has(node.type)) return true;
  if (node.type === 'list' || node.type === 'tuple' || node.type === 'set') return node.namedChildren.every((c) => c.type === 'comment' || deepFresh(model, c));
  if (node.type === 'dictionary') {
    return node.namedChildren.every((pair) => pair.type === 'comment' || (pair.type === 'pair' && !!pair.childForFieldName('value') && deepFresh(model, pair.childForFieldName('value')!)));
  }
  if (node.type !== 'call') return false;
  const q = callAt(model, node)?.qualifiedName;
  return q === 'json.loads' || q === 'copy.deepcopy';
}
const CONSTANT = new Set(['string', 'integer', 'float', 'true', 'false', 'none', 'concatenated_string']);

/**
 * Is the copy a snapshot of state others change: an attribute of `self`/`cls` (the object's
 * other methods mutate it), or anything copied inside a `with` block over a lock
 * (`async with self._lock: ids = self._followers[k].copy()`, then read after the lock is
 * released)? Then it protects the reader, however the copy is used afterwards.
 */
function snapshotOfShared(model: FileModel, call: CallInfo, value: SyntaxNode): boolean {
  let root: SyntaxNode | null = value;
  while (root && (root.type === 'attribute' || root.type === 'subscript' || root.type === 'call')) {
    root = root.type === 'attribute' ? root.childForFieldName('object') : root.type === 'subscript' ? root.childForFieldName('value') : root.childForFieldName('function');
  }
  if (root?.type === 'identifier' && (root.text === 'self' || root.text === 'cls')) return true;
  return model.withs.some((w) => w.functionIndex === call.functionIndex && w.bodyStart <= call.node.startIndex && call.node.endIndex <= w.bodyEnd
    && w.items.some((i) => /lock|mutex|semaphore/i.test(i.value.text)));
}

const READ_METHODS = new Set(['get', 'keys', 'values', 'items', 'count', 'index', '__contains__']);

/**
 * `y = copy.deepcopy(x)` where the rest of the function only reads `y` (subscripts, `.get()`,
 * `in y`, `len(y)`) and never mentions `x` again: the copy protects nothing. The function's text
 * after the assignment is scanned for `y`; any other use (a call argument, a return, an
 * attribute write) may escape or mutate, and keeps the copy.
 */
function onlyReadCopy(model: FileModel, call: CallInfo, value: SyntaxNode): string | null {
  if (call.functionIndex < 0) return null;
  const stmt = call.node.parent;
  if (stmt?.type !== 'assignment' || stmt.childForFieldName('right')?.startIndex !== call.node.startIndex) return null;
  const target = stmt.childForFieldName('left');
  if (target?.type !== 'identifier') return null;
  const fn = model.functions[call.functionIndex]!;
  const rest = model.source.slice(stmt.endIndex, fn.node.endIndex);
  if (rest.includes(value.text)) return null;
  const name = target.text;
  const use = new RegExp(`(^|[^\\w.])${name}\\b`, 'g');
  let m: RegExpExecArray | null;
  let uses = 0;
  while ((m = use.exec(rest))) {
    uses++;
    const at = m.index + m[0].length;
    const after = rest.slice(at, at + 40);
    const before = rest.slice(Math.max(0, m.index - 8), m.index + m[1]!.length);
    const sub = /^\[[^\]\n]*\]/.exec(after);
    if (sub) {
      if (/^\s*(=(?!=)|[+\-*\/|&]=)/.test(after.slice(sub[0].length))) return null;
      continue;
    }
    const meth = /^\.(\w+)\(/.exec(after);
    if (meth && READ_METHODS.has(meth[1]!)) continue;
    // Iterating a deep copy usually mutates its elements: only a shallow copy may be iterated.
    if (/\bin\s*$/.test(before) && call.qualifiedName !== 'copy.deepcopy') continue;
    if (/len\($/.test(before)) continue;
    return null;
  }
  return uses > 0 ? `whose result \`${name}\` is only read` : null;
}

export const redundantDataCopies: FileRule = {
  meta: {
    code: 'PA306',
    check: 'redundant_data_copies',
    family: 'runtime',
    severity: 'low',
    effort: 'S',
    summary: 'A copy of data that nothing else holds',
    what: 'Finds `list(x)`, `dict(x)`, `x.copy()`, `copy.copy(x)` and `copy.deepcopy(x)` where `x` was just built (a literal, a comprehension, `sorted(...)`, `json.loads(...)`, another copy), or is a local built in the same function and copied only to be returned or read. For `deepcopy`, which copies the contents too, `x` must be fresh down to its leaves (`json.loads(...)`, another deep copy, a literal of constants): `deepcopy(dict(x))` or `deepcopy([row])` still protects the items the caller holds. A copy of an attribute of `self`/`cls`, or one taken inside a `with` block over a lock, is a snapshot of state other code changes, not redundant. Medium in a loop; advisory when the copied value is a display of at most ten items written out (`dict({1: a, 3: b})`, `list([x])`): the copy costs a fixed handful of item copies.',
    why: 'A copy of a value that no one else references protects nothing: it doubles the allocation and the time to fill it. `deepcopy` of a large structure is especially slow.',
    bad: 'def serialise(result):\n    rows = [r.to_dict() for r in result]\n    return list(rows)\n',
    good: 'def serialise(result):\n    rows = [r.to_dict() for r in result]\n    return rows\n',
    fix: 'drop the copy',
    references: ['https://docs.astral.sh/ruff/rules/unnecessary-double-cast-or-process/', 'https://docs.python.org/3/library/copy.html'],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    if (model.isTestFile) return;
    for (const call of model.calls) {
      const q = call.qualifiedName;
      if (!(q && COPY_FUNCTIONS.has(q)) && call.method !== 'copy') continue;
      const value = copiedValue(call);
      if (!value) continue;
      let reason: string | null = null;
      const copier = q && COPY_FUNCTIONS.has(q) ? q : null;
      if (isFresh(model, value, copier)) reason = 'of a value that was just built';
      else if (value.type === 'identifier' && call.functionIndex >= 0 && call.node.parent?.type === 'return_statement') {
        // Every binding that may reach the return must be fresh: `x = cache.get(k)` in one branch
        // and `x = []` in the other returns the cache's own list from the first.
        // A parameter is a binding too: the caller's object when no branch rebinds it.
        const bindings = assignmentsTo(model, value.text).filter((a) => a.functionIndex === call.functionIndex && a.line <= call.line);
        const param = model.functions[call.functionIndex]!.params.some((p) => p.name === value.text);
        const best = !param && bindings.length && bindings.every((a) => !a.fromWith && a.value && isFresh(model, a.value, copier)) ? bindings[bindings.length - 1]! : null;
        // Only when nothing else holds the local: stored in a cache, a container or an attribute
        // (`_cache[key] = data`, `self.last = data`), the copy keeps the caller off that object.
        const body = model.functions[call.functionIndex]!.body;
        const held = !!body && new RegExp(`(=|\\(|,)\\s*${value.text}\\s*(\\)|,|$)`, 'm').test(body.text.slice(0, call.node.startIndex - body.startIndex).split('\n').filter((l) => !new RegExp(`^\\s*${value.text}\\s*=`).test(l)).join('\n'));
        if (best && !best.fromWith && best.value && isFresh(model, best.value, copier) && !held) reason = `of the local \`${value.text}\` built here and only returned`;
      }
      // `list(x)` / `dict(x)` of a value of unknown type is usually a conversion (a set, a
      // dataframe index, a Sequence), not a copy: only explicit copies count as "only read".
      if (!reason && !(q === 'builtins.list' || q === 'builtins.dict') && !snapshotOfShared(model, call, value)) reason = onlyReadCopy(model, call, value);
      if (!reason) continue;
      // `dict({1: a, 3: b})`, `list([x])`: a display of a few items written out, copied. The
      // copy costs as much as the display itself, a fixed handful of items: a style nit.
      const items = fixedDisplaySize(value);
      ctx.report({
        node: call.node,
        message: `redundant copy \`${call.calleeText}(…)\` ${reason}`,
        severity: call.loops.length > 0 && items === null ? 'medium' : 'low',
        ...(items !== null ? { advisory: `the copied value is a display of ${items} item${items === 1 ? '' : 's'} written out in the code: the copy costs a fixed handful of item copies, however often it runs` } : {}),
      });
    }
  },
};

/** A display of a few items written out ({@link smallLiteral}): its item count, else null. */
function fixedDisplaySize(value: SyntaxNode): number | null {
  let v: SyntaxNode | null = value;
  while (v?.type === 'parenthesized_expression') v = v.namedChild(0);
  return v && smallLiteral(v) ? v.namedChildren.filter((c) => c.type !== 'comment').length : null;
}
