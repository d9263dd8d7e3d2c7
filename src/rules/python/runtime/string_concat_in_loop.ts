/**
 * PA304 string_concat_in_loop
 *
 * What it does: finds strings grown inside a loop where CPython must copy them on every step:
 * an attribute, subscript, global or closure variable grown with `+=`, a local that something
 * else also holds, or a prepend (`s = part + s`).
 * Why is this bad? Strings are immutable: such a `+=` copies everything built so far, so the loop
 * costs O(n²) in the total length. A plain local `s += part` (or `s = s + part`) is different:
 * CPython resizes the string in place when the variable holds its only reference, which is
 * amortised linear, so it is not reported.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileModel } from '../../../semantic/model.js';
import { assignmentsTo, callAt, callsOf, variableRefs } from '../../../semantic/model.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { leavesAfter, loopTargets } from '../query/semantics.js';
import { conditionalWithin } from '../../../semantic/controlFlow.js';

/**
 * Does the append `append` run whenever `grown` does, after it: its statement sits directly in a
 * block that holds `grown` (`if out: out[-1] += "<br />"` then `out.append(line)` in one branch)?
 */
function appendsAfter(append: SyntaxNode, grown: SyntaxNode): boolean {
  let stmt: SyntaxNode | null = append;
  while (stmt && stmt.type !== 'expression_statement') stmt = stmt.parent;
  const block = stmt?.parent;
  return !!block && block.type === 'block' && append.startIndex > grown.endIndex && grown.startIndex >= block.startIndex && grown.endIndex <= block.endIndex;
}

const STRING_NODES = new Set(['string', 'concatenated_string']);

/** Is the expression a string as far as syntax tells? null when unknown. */
function stringness(model: FileModel, node: SyntaxNode | null): boolean | null {
  if (!node) return null;
  // `b"..."` is bytes, not str.
  if (STRING_NODES.has(node.type)) return /^[rRuUfF]*["']/.test(node.text) ? true : null;
  if (['list', 'dictionary', 'set', 'tuple', 'integer', 'float', 'list_comprehension', 'true', 'false', 'none'].includes(node.type)) return false;
  // `",".join(row) + "\n"`: a sum with a string in it is a string.
  if (node.type === 'binary_operator' && node.childForFieldName('operator')?.text === '+') {
    const l = stringness(model, node.childForFieldName('left'));
    const r = stringness(model, node.childForFieldName('right'));
    return l === true || r === true ? true : l === false && r === false ? false : null;
  }
  if (node.type === 'call') {
    const c = callAt(model, node);
    if (c?.qualifiedName === 'builtins.str' || (c?.method === 'join' && /^("[^"]*"|'[^']*')\.join$/.test(c.calleeText))) return true;
    if (c?.qualifiedName && /^builtins\.(list|dict|set|int|float|bytes|bytearray|tuple)$/.test(c.qualifiedName)) return false;
  }
  return null;
}

/** `b""`, `bytes()`: immutable bytes, which CPython never grows in place. */
function isBytes(model: FileModel, node: SyntaxNode | null): boolean {
  if (!node) return false;
  if (STRING_NODES.has(node.type)) return /^[rR]?[bB][rR]?["']/.test(node.text);
  return node.type === 'call' && callAt(model, node)?.qualifiedName === 'builtins.bytes';
}

/** A few bytes made on the spot: `bytes([b])`, `b"\\x00"`, `n.to_bytes(2, "big")`, `struct.pack(...)` (an encoder's output, not a stream's chunks). */
function madeOnTheSpot(model: FileModel, node: SyntaxNode): boolean {
  if (isBytes(model, node)) return true;
  if (node.type !== 'call') return false;
  const c = callAt(model, node);
  return c?.method === 'to_bytes' || c?.qualifiedName === 'struct.pack' || c?.qualifiedName === 'int.to_bytes';
}

/** The target's last plain assignment before `line` in the function (or at module level, for a global). */
function initialValue(model: FileModel, target: string, fnIndex: number, line: number): { value: SyntaxNode | null } | null {
  for (const scope of fnIndex >= 0 ? [fnIndex, -1] : [-1]) {
    let best = null;
    for (const a of assignmentsTo(model, target)) {
      if (a.functionIndex === scope && (scope !== fnIndex || a.line < line) && a.loops.length === 0 && (!best || a.line >= best.line)) best = a;
    }
    if (best) return { value: best.value };
  }
  return null;
}

/** `digests: dict[int, str] = defaultdict(str)`: a mapping whose values are strings, by its annotation or factory. */
function mapsToStrings(model: FileModel, container: string, fnIndex: number, line: number): boolean {
  for (const a of assignmentsTo(model, container)) {
    if (a.functionIndex !== fnIndex && a.functionIndex !== -1) continue;
    if (a.line >= line && a.functionIndex === fnIndex) continue;
    if (a.annotation && /^(dict|Dict|defaultdict|DefaultDict|MutableMapping)\[[^,\]]+,\s*str\s*\]$/.test(a.annotation.replace(/^typing\./, ''))) return true;
    if (a.value?.type === 'call' && /^(collections\.)?defaultdict\(\s*str\s*\)$/.test(a.value.text.replace(/\s+/g, ''))) return true;
  }
  return false;
}

/** The expression inside parentheses (a comment there is no part of it). */
function parenthesized(node: SyntaxNode): SyntaxNode | null {
  return node.namedChildren.find((c) => c.type !== 'comment') ?? null;
}

/** Why a concatenation cannot be done in place, or null when CPython appends in place. */
function copiesEachTime(model: FileModel, target: string, fnIndex: number, loopNode: SyntaxNode, prepend: boolean, bytes = false, chained = false): string | null {
  if (prepend) return 'prepending copies the whole string each time';
  // CPython appends in place only when the sum is stored straight back into the name: in
  // `s = s + a + b` the first sum goes on to `+ b` and is a fresh copy of `s` on every pass.
  // A reason that holds whatever the form (bytes, not a local, ...) is the one to give.
  if (chained) return copiesEachTime(model, target, fnIndex, loopNode, false, bytes)
    ?? `\`${target} = ${target} + ...\` adds the next part to a copy of it (only a sum stored straight back into the name is done in place), so each pass copies it; write \`${target} += a + b\``;
  if (bytes) return `\`${target}\` is \`bytes\`, which CPython never grows in place (only \`str\`), so each \`+=\` copies it; use a \`bytearray\` or join the chunks`;
  if (!/^[A-Za-z_]\w*$/.test(target)) return `\`${target}\` is not a local variable, so each \`+=\` copies it`;
  if (fnIndex < 0) return `\`${target}\` is a module-level name, so each \`+=\` copies it`;
  const fn = model.functions[fnIndex]!;
  const bodyText = fn.body?.text ?? '';
  if (new RegExp(`\\b(global|nonlocal)\\s+(\\w+\\s*,\\s*)*${target}\\b`).test(bodyText)) return `\`${target}\` is declared global or nonlocal, so each \`+=\` copies it`;
  // A nested def that reads the name makes it a cell variable: not resized in place.
  for (const inner of model.functions) {
    // Not one whose own parameter or local has that name (`def clean(name): ...`): that is its own variable.
    if (inner.parent !== fnIndex || !inner.body || inner.params.some((p) => p.name === target) || assignmentsTo(model, target).some((a) => a.functionIndex === inner.index)) continue;
    if (variableRefs(inner.body, target).length) return `\`${target}\` is captured by the nested \`${inner.name}\`, so each \`+=\` copies it`;
  }
  // Another reference held across iterations (an alias, or the string stored in a container).
  const loopBody = loopNode.childForFieldName('body') ?? loopNode;
  for (const ref of variableRefs(loopBody, target)) {
    const p = ref.parent;
    if (p?.type === 'assignment' && p.childForFieldName('right')?.id === ref.id) return `\`${target}\` is also held by \`${p.childForFieldName('left')?.text ?? '?'}\`, so each \`+=\` copies it`;
    if (p?.type === 'argument_list' && /\.(append|add|insert|extend|put)$/.test(p.parent?.childForFieldName('function')?.text ?? '')) return `\`${target}\` is also stored in a container, so each \`+=\` copies it`;
  }
  return null;
}

/**
 * The string does not grow across iterations: it is the loop's own variable, or the loop
 * assigns it afresh (from anything that does not read it) besides the concatenation; or it is a
 * buffer whose length the loop checks (capped and flushed).
 */
function boundedInLoop(model: FileModel, target: string, loopNode: SyntaxNode, line: number): boolean {
  const left = loopNode.type === 'for_statement' ? loopNode.childForFieldName('left') : null;
  if (left && new RegExp(`(^|[^\\w.])${target.replace(/\./g, '\\.')}($|[^\\w])`).test(left.text)) return true;
  const start = loopNode.startPosition.row + 1;
  const end = loopNode.endPosition.row + 1;
  for (const a of assignmentsTo(model, target)) {
    if (a.line < start || a.line > end || a.line === line || !a.value) continue;
    if (!new RegExp(`(^|[^\\w.])${target.replace(/\./g, '\\.')}($|[^\\w])`).test(a.value.text)) return true;
    // `buf = buf[n:]`: the loop consumes the head it has handled; the buffer stays the size of a
    // chunk or two (a streaming encoder's carry), not the length of everything read.
    if (a.value.type === 'subscript' && a.value.childForFieldName('value')?.text === target && /^\[\s*[^:\]]+\s*:\s*\]$/.test(a.value.text.slice(target.length).trim())) return true;
  }
  const body = loopNode.childForFieldName('body') ?? loopNode;
  return new RegExp(`\\blen\\(\\s*${target.replace(/[.[\]]/g, (c) => `\\${c}`)}\\s*\\)\\s*(>|>=)`).test(body.text);
}

export const stringConcatInLoop: FileRule = {
  meta: {
    code: 'PA304',
    check: 'string_concat_in_loop',
    family: 'runtime',
    severity: 'low',
    effort: 'S',
    summary: 'String grown inside a loop where each step copies it',
    what: 'Finds strings grown in a loop body where CPython cannot append in place: `self.text += part`, `d[k] += part` (a string part, or a mapping declared to hold strings: `defaultdict(str)`, `dict[K, str]`), a global, nonlocal or closure variable grown with `+=`, a local string also held by another name or a container, prepends (`s = part + s`), and `bytes` grown with `+=` even in a plain local (`data = b""` … `data += chunk`: CPython grows only `str` in place; `medium` when the chunks come from a stream — the loop\'s own item or what a `read()`/`recv()` returns — which makes it quadratic in the payload, seconds for a megabyte; `low` otherwise, as for strings). A plain local `s += part` or `s = s + part` is left alone: CPython resizes a string in place when the variable holds its only reference. Buffers emptied inside the loop or flushed when their length passes a cap, and loops over a literal of fewer than 100 items, are bounded and left alone too.',
    why: 'Each such concatenation copies the whole string built so far, so building a string of n parts costs O(n²) time — harmless for ten parts, seconds for a CSV export or a long log.',
    bad: 'class Export:\n    def run(self, rows):\n        self.out = ""\n        for row in rows:\n            self.out += f"{row.id},{row.name}\\n"\n',
    good: 'class Export:\n    def run(self, rows):\n        parts = []\n        for row in rows:\n            parts.append(f"{row.id},{row.name}\\n")\n        self.out = "".join(parts)\n',
    fix: 'collect the parts in a list and `"".join(parts)` once, write to an `io.StringIO`, or build the string in a local before storing it',
    references: [
      'https://docs.python.org/3/faq/programming.html#what-is-the-most-efficient-way-to-concatenate-many-strings-together',
      'https://github.com/python/cpython/blob/3.12/Python/bytecodes.c (BINARY_OP_INPLACE_ADD_UNICODE)',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    if (model.isTestFile) return;
    /** One string grown twice per iteration (`s += a`, `s = s + b`) is one defect: the first growth per loop. */
    const grown = new Map<string, { node: SyntaxNode; message: string; bytes: boolean }>();
    const check = (target: string, value: SyntaxNode | null, fnIndex: number, loops: number[], line: number, node: SyntaxNode, prepend: boolean, known = false, chained = false) => {
      const real = loops.filter((i) => model.loops[i]!.kind !== 'comprehension');
      if (real.length === 0) return;
      const initial = initialValue(model, target, fnIndex, line);
      // Chunks that come from elsewhere (`data += chunk`): a byte built on the spot (`out += bytes([b])`,
      // an encoder's few bytes) is left alone.
      const bytes = !prepend && /^[A-Za-z_]\w*$/.test(target) && !!initial && isBytes(model, initial.value) && !!value && !madeOnTheSpot(model, value);
      if (!bytes && !known) {
        const init = initial ? stringness(model, initial.value) : null;
        if (init === false) return;
        if (init !== true && stringness(model, value) !== true) return;
      }
      const loop = model.loops[real[real.length - 1]!]!;
      const it = loop.iterable;
      if (it && ['list', 'tuple', 'set'].includes(it.type) && it.namedChildCount < 100) return;
      // `while n: n, r = divmod(n, 62)`: one step per digit of a number, a handful of times.
      if (real.length === 1 && digitLoop(loop.node)) return;
      // The outermost loop surely ends right after it (a `return`, or a `break` of that loop): grown once at most.
      if (leavesAfter(node, model.loops[real[0]!]!)) return;
      const why = copiesEachTime(model, target, fnIndex, loop.node, prepend, bytes, chained);
      if (!why || boundedInLoop(model, target, loop.node, line)) return;
      const key = `${loop.index}\0${target}`;
      const seen = grown.get(key);
      if (seen && seen.node.startIndex <= node.startIndex) return;
      // Chunks of a stream: the item of a loop over what a call hands out (`for chunk in
      // resp.iter_bytes():`), or what a read returns.
      const overCall = it?.type === 'call' || (it?.type === 'await' && it.namedChild(0)?.type === 'call');
      const chunks = bytes && !!value && ((value.type === 'identifier' && overCall && loopTargets(loop).has(value.text)) || (value.type === 'call' && /\.(read|recv|read1|readline|readexactly|receive_bytes)\s*\(/.test(value.text)) || (value.type === 'await' && /\.(read|recv|readexactly|receive_bytes)\s*\(/.test(value.text)));
      grown.set(key, { node, bytes: chunks, message: `${bytes ? 'bytes' : 'string'} \`${target}\` is grown inside a loop, and ${why}: O(n²) in its length${bytes ? '' : '; collect the parts and join once'}` });
    };
    /**
     * `entry['name'] += ".torrent"`, `row.label += suffix`: a value of the loop's own item,
     * another object on each iteration, grows once per item; no one string grows with the loop.
     */
    const ofLoopItem = (root: string, loops: number[]) => {
      const loop = model.loops[loops[loops.length - 1]!];
      const target = loop?.node.childForFieldName('left');
      return !!target && new RegExp(`(^|[^\\w.])${root}($|[^\\w])`).test(target.text);
    };
    for (const a of model.augAssignments) {
      if (a.operator !== '+=') continue;
      const root = /^([A-Za-z_]\w*)\./.exec(a.target)?.[1];
      if (root && a.loops.length && ofLoopItem(root, a.loops)) continue;
      check(a.target, a.value, a.functionIndex, a.loops, a.line, a.node, false);
    }
    // `d[k] += part`: the mapping holds a reference too, so each step copies the value. Reported
    // when the part is a string or the mapping is declared to hold strings (`defaultdict(str)`,
    // `dict[K, str]`).
    for (const a of model.augSubscripts) {
      if (a.operator !== '+=' || a.loops.length === 0) continue;
      const left = a.node.childForFieldName('left')!;
      // `lines[i] += "\n"` with `i` the loop's own index: each item grows once.
      const key = left.childForFieldName('subscript');
      const loopTarget = model.loops[a.loops[a.loops.length - 1]!]!.node.childForFieldName('left');
      if (key?.type === 'identifier' && loopTarget && new RegExp(`(^|[^\\w.])${key.text}($|[^\\w])`).test(loopTarget.text)) continue;
      // `last = tokens.pop(); d[last] += part` with `last` bound anew in the same loop: another
      // entry on each pass (the way the loop's own item is), not one string grown across the loop.
      if (key?.type === 'identifier' && assignmentsTo(model, key.text).some((b) => b.functionIndex === a.functionIndex && b.loops.includes(a.loops[a.loops.length - 1]!) && b.line < a.line
        && !!b.value && !/^(string|integer|concatenated_string|true|false|none)$/.test(b.value.type))
        // ... and the entry set afresh in that pass before it grows (`d[flag] = ""`): a group-by that
        // keeps growing one entry per key (`out[row.category] += html`) is still quadratic.
        && (model.loops[a.loops[a.loops.length - 1]!]!.node.childForFieldName('body')?.descendantsOfType('assignment') ?? []).some((r) => r.startIndex < a.node.startIndex
          && r.childForFieldName('left')?.text === left.text && !(r.childForFieldName('right')?.text ?? left.text).includes(left.text))) continue;
      const container = left.childForFieldName('value');
      const root = /^[A-Za-z_]\w*/.exec(container?.text ?? '')?.[0];
      if (root && ofLoopItem(root, a.loops)) continue;
      // `lines[-1] += "<br />"` where the same loop appends to `lines`: the last item is a new one
      // each pass, grown a step or two; no string grows across the loop.
      const inner = a.loops[a.loops.length - 1]!;
      const loopBody = model.loops[inner]!.node.childForFieldName('body');
      if (key && /^-\s*\d+$/.test(key.text) && container && loopBody && callsOf(model, a.functionIndex).some((c) => c.dottedReceiver === container.text
        && (c.method === 'append' || c.method === 'extend') && c.loops[c.loops.length - 1] === inner && (!conditionalWithin(c.node, loopBody) || appendsAfter(c.node, a.node)))) continue;
      const strings = stringness(model, a.value) === true || (container?.type === 'identifier' && mapsToStrings(model, container.text, a.functionIndex, a.line));
      if (strings) check(a.target, a.value, a.functionIndex, a.loops, a.line, a.node, false, true);
    }
    for (const a of model.assignments) {
      // `out = (\n out + a + b\n)`, as formatters wrap a long line.
      let v = a.value;
      while (v?.type === 'parenthesized_expression' && parenthesized(v)) v = parenthesized(v);
      if (a.fromWith || a.loops.length === 0 || v?.type !== 'binary_operator') continue;
      if (v.childForFieldName('operator')?.text !== '+') continue;
      const left = v.childForFieldName('left');
      const right = v.childForFieldName('right');
      if (left?.text === a.target) check(a.target, right, a.functionIndex, a.loops, a.line, a.node, false);
      else if (right?.text === a.target) check(a.target, left, a.functionIndex, a.loops, a.line, a.node, true);
      else {
        // `s = s + a + b`: the name at the far left of a chain of sums.
        let first = left;
        let sums = 0;
        let prepended = false;
        for (;;) {
          if (first?.type === 'parenthesized_expression') first = parenthesized(first);
          else if (first?.type === 'binary_operator' && first.childForFieldName('operator')?.text === '+') {
            // `s = x + s + y`: the name added after something else, a prepend inside the chain.
            if (first.childForFieldName('right')?.text === a.target) prepended = true;
            first = first.childForFieldName('left');
            sums++;
          } else break;
        }
        if (prepended) {
          check(a.target, v, a.functionIndex, a.loops, a.line, a.node, true);
          continue;
        }
        // The whole sum is what is added (a bytes chunk in it makes it bytes work).
        if (first?.text === a.target && sums > 0) check(a.target, v, a.functionIndex, a.loops, a.line, a.node, false, false, true);
        else if (first?.text === a.target) check(a.target, right, a.functionIndex, a.loops, a.line, a.node, false);
      }
    }
    // `bytes` is copied whole on every `+=` whatever holds it: chunks of a stream (the loop's item
    // or a read's result: a download, a socket) make it quadratic in the payload, seconds for a megabyte (measured: 1 KiB chunks,
    // 0.75 s at 512 KiB, 3.6 s at 1 MiB; a `bytearray` 5 ms): medium. A string that CPython could
    // not append in place is usually built from a few lines: low.
    for (const { node, message, bytes } of grown.values()) ctx.report({ node, message, ...(bytes ? { severity: 'medium' as const } : {}) });
  },
};

/**
 * A `while` loop over the digits of a number: its condition tests a name that the body divides
 * (`n, r = divmod(n, base)`, `n //= base`, `n = n // base`, `n >>= 8`). It runs once per digit,
 * so a string grown in it stays a few characters long.
 */
function digitLoop(loop: SyntaxNode): boolean {
  if (loop.type !== 'while_statement') return false;
  const condition = loop.childForFieldName('condition')?.text.replace(/\s+/g, ' ') ?? '';
  const m = /^(?:([A-Za-z_]\w*)|([A-Za-z_]\w*) (?:>|!=) 0|([A-Za-z_]\w*) >= \w+)$/.exec(condition);
  const n = m?.[1] ?? m?.[2] ?? m?.[3];
  if (!n) return false;
  const body = loop.childForFieldName('body')?.text ?? '';
  const e = n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^\\w.])${e}\\s*,\\s*\\w+\\s*=\\s*divmod\\(\\s*${e}\\s*,|(^|[^\\w.])${e}\\s*(//|>>)=|(^|[^\\w.])${e}\\s*=\\s*${e}\\s*(//|>>)|(^|[^\\w.])${e}\\s*=\\s*(int|math\\.floor)\\(\\s*${e}\\s*/`, 'm').test(body);
}

