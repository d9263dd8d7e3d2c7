/**
 * Python literal values from tree-sitter nodes: strings (prefixes, escapes, implicit and `+`
 * concatenation, f-strings with a placeholder for each interpolation), numbers, booleans, None,
 * and lists/tuples/dicts of those. Names bound to a literal at module level resolve to it.
 */
import type { SyntaxNode } from '../parse/parser.js';
import type { LiteralValue } from './context.js';
import type { FileModel } from '../semantic/model.js';

/** Stands for an f-string interpolation inside resolved text; never a real identifier. */
export const PLACEHOLDER = 'pa_dynamic_value__';

export const DYNAMIC = 'dynamic';

/** Looks up a name that is not bound in the file (an import) as a string constant elsewhere. */
export type ExternalConstant = (qualifiedName: string) => string | null;

export interface LiteralScope {
  model: FileModel;
  external?: ExternalConstant;
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0', '\n': '' };

function stringPart(node: SyntaxNode, scope: LiteralScope, depth: number): { text: string; interpolated: boolean } {
  let prefix = '';
  let text = '';
  let interpolated = false;
  for (const child of node.children) {
    switch (child.type) {
      case 'string_start':
        prefix = child.text.replace(/['"]+$/, '').toLowerCase();
        break;
      case 'string_content':
        text += child.text;
        break;
      case 'escape_sequence':
        text += child.text;
        break;
      case 'interpolation': {
        // `{NAME}` with a string constant in reach is inlined; anything else stays unknown.
        const expr = child.namedChildren;
        const inlined = expr.length === 1 && expr[0]!.type === 'identifier' ? constantString(expr[0]!.text, expr[0]!, scope, depth + 1) : null;
        text += inlined ?? PLACEHOLDER;
        interpolated ||= inlined === null;
        break;
      }
    }
  }
  if (!prefix.includes('r')) text = text.replace(/\\(x[0-9a-fA-F]{2}|[\s\S])/g, (m, c: string) => (c.length === 3 ? String.fromCharCode(parseInt(c.slice(1), 16)) : (ESCAPES[c] ?? m)));
  return { text, interpolated };
}

/**
 * The text of a string-valued expression, or null when it is not one. f-string interpolations
 * become {@link PLACEHOLDER}. `depth` bounds constant chasing.
 */
export function stringValue(node: SyntaxNode | null, scope: LiteralScope, depth = 0): string | null {
  if (!node || depth > 5) return null;
  switch (node.type) {
    case 'string':
      return stringPart(node, scope, depth).text;
    case 'concatenated_string': {
      let out = '';
      for (const c of node.namedChildren) {
        const part = stringValue(c, scope, depth + 1);
        if (part === null) return null;
        out += part;
      }
      return out;
    }
    case 'parenthesized_expression':
      return stringValue(node.namedChild(0), scope, depth + 1);
    case 'binary_operator': {
      if (node.childForFieldName('operator')?.text !== '+') return null;
      const l = stringValue(node.childForFieldName('left'), scope, depth + 1);
      const r = stringValue(node.childForFieldName('right'), scope, depth + 1);
      return l !== null && r !== null ? l + r : null;
    }
    case 'identifier':
      return constantString(node.text, node, scope, depth);
    default:
      return null;
  }
}

/** The string node a name is bound to (for its location), when the binding is a plain string. */
export function stringOrigin(node: SyntaxNode, scope: LiteralScope): SyntaxNode {
  if (node.type !== 'identifier') return node;
  const { model } = scope;
  const line = node.startPosition.row + 1;
  let best: { value: SyntaxNode; line: number; fn: number } | null = null;
  for (const a of model.assignments) {
    if (a.target !== node.text || !a.value) continue;
    if (a.functionIndex >= 0) {
      const fn = model.functions[a.functionIndex]!;
      if (node.startIndex < fn.node.startIndex || node.startIndex >= fn.node.endIndex || a.line > line) continue;
    }
    if (!best || (a.functionIndex >= 0 && best.fn < 0) || (a.functionIndex === best.fn && a.line >= best.line)) {
      best = { value: a.value, line: a.line, fn: a.functionIndex };
    }
  }
  return best && (best.value.type === 'string' || best.value.type === 'concatenated_string') ? best.value : node;
}

/** A name's string value: see {@link constantBinding}. */
function constantString(name: string, use: SyntaxNode, scope: LiteralScope, depth: number): string | null {
  const binding = constantBinding(name, use, scope);
  if (binding === 'shadowed') return null;
  if (binding) return binding.id !== use.id ? stringValue(binding, scope, depth + 1) : null;
  const imported = scope.model.imports.get(name);
  if (imported && scope.external) return scope.external(imported);
  return null;
}

/**
 * The value a name is bound to at a use: the last assignment in the same function before the
 * use, else the module-level one. `shadowed` when a parameter of an enclosing function hides it.
 */
function constantBinding(name: string, use: SyntaxNode, scope: LiteralScope): SyntaxNode | 'shadowed' | null {
  const { model } = scope;
  const line = use.startPosition.row + 1;
  let best: { value: SyntaxNode | null; line: number; fn: number } | null = null;
  for (const a of model.assignments) {
    if (a.target !== name || !a.value) continue;
    if (a.functionIndex >= 0) {
      const fn = model.functions[a.functionIndex]!;
      if (use.startIndex < fn.node.startIndex || use.startIndex >= fn.node.endIndex || a.line > line) continue;
    }
    if (!best || (a.functionIndex >= 0 && best.fn < 0) || (a.functionIndex === best.fn && a.line >= best.line)) {
      best = { value: a.value, line: a.line, fn: a.functionIndex };
    }
  }
  if (best && best.fn >= 0) return best.value;
  for (const fn of model.functions) {
    if (use.startIndex >= fn.node.startIndex && use.startIndex < fn.node.endIndex && fn.params.some((p) => p.name === name)) return 'shadowed';
  }
  return best?.value ?? null;
}

/** A literal value as JSON, or undefined when the expression is not a literal. */
export function literalValue(node: SyntaxNode | null, scope: LiteralScope, depth = 0): LiteralValue | undefined {
  if (!node || depth > 8) return undefined;
  switch (node.type) {
    case 'string':
    case 'concatenated_string': {
      const s = stringValue(node, scope, depth);
      return s === null || s.includes(PLACEHOLDER) ? undefined : s;
    }
    case 'integer': {
      const t = node.text.replace(/_/g, '').replace(/[lL]$/, '');
      const n = /^0[xob]/i.test(t) ? Number(t) : parseInt(t, 10);
      return Number.isFinite(n) ? n : undefined;
    }
    case 'float': {
      const n = Number(node.text.replace(/_/g, ''));
      return Number.isFinite(n) ? n : undefined;
    }
    case 'true':
      return true;
    case 'false':
      return false;
    case 'none':
      return null;
    case 'unary_operator': {
      const v = literalValue(node.childForFieldName('argument'), scope, depth + 1);
      const op = node.childForFieldName('operator')?.text;
      return typeof v === 'number' ? (op === '-' ? -v : v) : undefined;
    }
    case 'parenthesized_expression':
      return literalValue(node.namedChild(0), scope, depth + 1);
    case 'list':
    case 'tuple':
    case 'set': {
      const out: LiteralValue[] = [];
      for (const c of node.namedChildren) {
        if (c.type === 'comment') continue;
        const v = literalValue(c, scope, depth + 1);
        if (v === undefined) return undefined;
        out.push(v);
      }
      return out;
    }
    case 'dictionary': {
      const out: { [key: string]: LiteralValue } = {};
      for (const pair of node.namedChildren) {
        if (pair.type === 'comment') continue;
        if (pair.type !== 'pair') return undefined;
        const k = literalValue(pair.childForFieldName('key'), scope, depth + 1);
        const v = literalValue(pair.childForFieldName('value'), scope, depth + 1);
        if ((typeof k !== 'string' && typeof k !== 'number') || v === undefined) return undefined;
        out[String(k)] = v;
      }
      return out;
    }
    case 'call': {
      // dict(a=1, b="x") is a literal too.
      if (node.childForFieldName('function')?.text !== 'dict') return undefined;
      const out: { [key: string]: LiteralValue } = {};
      for (const arg of node.childForFieldName('arguments')?.namedChildren ?? []) {
        if (arg.type !== 'keyword_argument') return undefined;
        const v = literalValue(arg.childForFieldName('value'), scope, depth + 1);
        if (v === undefined) return undefined;
        out[arg.childForFieldName('name')?.text ?? ''] = v;
      }
      return out;
    }
    case 'identifier': {
      // A module constant: `pool_size=POOL_SIZE`.
      const binding = constantBinding(node.text, node, scope);
      if (binding && binding !== 'shadowed' && binding.id !== node.id && binding.type !== 'identifier') {
        return literalValue(binding, scope, depth + 1);
      }
      const s = stringValue(node, scope, depth + 1);
      if (s !== null && !s.includes(PLACEHOLDER)) return s;
      return undefined;
    }
    default:
      return undefined;
  }
}

export interface CallArgs {
  positional: SyntaxNode[];
  keywords: Map<string, SyntaxNode>;
  /** `**kwargs` spread present. */
  spread: boolean;
}

export function callArgs(call: SyntaxNode): CallArgs {
  const out: CallArgs = { positional: [], keywords: new Map(), spread: false };
  for (const arg of call.childForFieldName('arguments')?.namedChildren ?? []) {
    if (arg.type === 'keyword_argument') {
      const name = arg.childForFieldName('name')?.text;
      const value = arg.childForFieldName('value');
      if (name && value) out.keywords.set(name, value);
    } else if (arg.type === 'dictionary_splat' || arg.type === 'list_splat') {
      out.spread = true;
    } else if (arg.type !== 'comment') {
      out.positional.push(arg);
    }
  }
  return out;
}

/**
 * `"… {name} …".format(...)` and `"… %s …" % (...)`: the template with each slot unknown.
 * Other calls (`text(...)` inside `execute(...)`) are read where they are made.
 */
export function formattedString(node: SyntaxNode, scope: LiteralScope): string | null {
  if (node.type === 'call') {
    const fn = node.childForFieldName('function');
    if (fn?.type !== 'attribute' || fn.childForFieldName('attribute')?.text !== 'format') return null;
    let object = fn.childForFieldName('object');
    // psycopg's `sql.SQL("NOTIFY {}").format(sql.Identifier(ch))`.
    if (object?.type === 'call' && /(^|\.)SQL$/.test(object.childForFieldName('function')?.text ?? '')) {
      object = callArgs(object).positional[0] ?? null;
    }
    const template = stringValue(object, scope);
    if (template === null) return null;
    // Slots filled with constants are known: `"LISTEN {ch}".format(ch=CHANNEL)`.
    const args = callArgs(node);
    let next = 0;
    return template.replace(/\{([^{}]*)\}/g, (_m, key: string) => {
      const slot = key.split(/[!:]/)[0]!;
      let arg = slot === '' ? args.positional[next++] : /^\d+$/.test(slot) ? args.positional[Number(slot)] : args.keywords.get(slot);
      if (arg?.type === 'call' && /(^|\.)(Identifier|Literal)$/.test(arg.childForFieldName('function')?.text ?? '')) arg = callArgs(arg).positional[0];
      const value = arg ? stringValue(arg, scope) : null;
      return value !== null && !value.includes(PLACEHOLDER) ? value : PLACEHOLDER;
    });
  }
  if (node.childForFieldName('operator')?.text === '%') {
    const template = stringValue(node.childForFieldName('left'), scope);
    return template === null ? null : template.replace(/%(\([A-Za-z_]\w*\))?[sdr]/g, PLACEHOLDER);
  }
  return stringValue(node, scope);
}
