/**
 * Flag guards: code of a function that runs only when a keyword flag whose default turns it off
 * is set (`def resolve(x, allow_email=False): ... if allow_email: <query>`). A caller that does
 * not pass the flag, or passes a literal `False`/`None`, never runs that branch.
 *
 * Conservative by design: only a parameter whose default is the literal `False` or `None` and
 * that the function never rebinds, and only two shapes of guard — the node lies in the body of `if flag:` (or `if flag and ...:`), or
 * an earlier statement of a block holding it is `if not flag:` ending in `return`/`raise` (no
 * `elif`/`else`). A guard is written `name@position`: the parameter's position among those a
 * positional argument can fill (after `self`/`cls` of a method), or -1 when it is keyword-only.
 */
import type { SyntaxNode } from '../parse/parser.js';
import type { FileModel } from './model.js';

interface Flag {
  name: string;
  position: number;
}

const flagMemo = new WeakMap<FileModel, (Map<string, Flag> | null)[]>();

/** The flag parameters of a function (default `False` or `None`), by name; null when it has none. */
function flagsOf(model: FileModel, fnIndex: number): Map<string, Flag> | null {
  let memo = flagMemo.get(model);
  if (!memo) flagMemo.set(model, (memo = []));
  if (memo[fnIndex] !== undefined) return memo[fnIndex]!;
  const fn = model.functions[fnIndex]!;
  let flags: Map<string, Flag> | null = null;
  // Cheap test first: most functions have no such default.
  if (fn.params.some((p) => p.defaultText === 'False' || p.defaultText === 'None')) {
    const params = fn.node.childForFieldName('parameters');
    let position = 0;
    let keywordOnly = false;
    let first = true;
    for (const p of params?.namedChildren ?? []) {
      if (p.type === 'list_splat_pattern' || p.type === 'keyword_separator' || p.type === 'dictionary_splat_pattern') {
        keywordOnly = true;
        continue;
      }
      if (p.type === 'positional_separator') continue;
      const name = (p.type === 'identifier' ? p : p.childForFieldName('name'))?.text ?? '';
      const isSelf = first && fn.className !== null && (name === 'self' || name === 'cls');
      first = false;
      if (isSelf) continue;
      if (p.type === 'default_parameter' || p.type === 'typed_default_parameter') {
        const value = p.childForFieldName('value')?.text;
        if (value === 'False' || value === 'None') {
          (flags ??= new Map()).set(name, { name, position: keywordOnly ? -1 : position });
        }
      }
      if (!keywordOnly) position++;
    }
  }
  // A flag the function rebinds (`verbose = verbose or settings.VERBOSE`) no longer says what the caller passed.
  if (flags) {
    for (const a of model.assignments) if (a.functionIndex === fnIndex) flags.delete(a.target);
    for (const a of model.augAssignments) if (a.functionIndex === fnIndex) flags.delete(a.target);
    if (!flags.size) flags = null;
  }
  memo[fnIndex] = flags;
  return flags;
}

/** The name a condition tests for truth: `flag`, `flag and other`; null otherwise. */
function testedName(cond: SyntaxNode | null): string | null {
  let c = cond;
  while (c?.type === 'parenthesized_expression') c = c.namedChild(0);
  if (!c) return null;
  if (c.type === 'identifier') return c.text;
  if (c.type === 'boolean_operator' && c.childForFieldName('operator')?.text === 'and') return testedName(c.childForFieldName('left'));
  return null;
}

/** `if not flag: return/raise` with no other branch: the name, else null. */
function earlyExitOn(stmt: SyntaxNode): string | null {
  if (stmt.type !== 'if_statement' || stmt.childForFieldName('alternative')) return null;
  let cond = stmt.childForFieldName('condition');
  while (cond?.type === 'parenthesized_expression') cond = cond.namedChild(0);
  if (cond?.type !== 'not_operator') return null;
  const operand = cond.childForFieldName('argument');
  if (operand?.type !== 'identifier') return null;
  const body = stmt.childForFieldName('consequence');
  const last = body?.namedChildren[body.namedChildCount - 1];
  return last && (last.type === 'return_statement' || last.type === 'raise_statement') ? operand.text : null;
}

/**
 * The flag guard (`name@position`) under which `node`, in the body of function `fnIndex`, runs;
 * null when none does.
 */
export function flagGuard(model: FileModel, node: SyntaxNode, fnIndex: number): string | null {
  if (fnIndex < 0) return null;
  const flags = flagsOf(model, fnIndex);
  if (!flags) return null;
  const stop = model.functions[fnIndex]!.node;
  let child = node;
  for (let cur = node.parent; cur && cur.id !== stop.id; child = cur, cur = cur.parent) {
    // A def nested in the function is its own scope: its flags are its own.
    if (cur.type === 'function_definition' || cur.type === 'lambda') return null;
    if (cur.type === 'if_statement' && cur.childForFieldName('consequence')?.id === child.id) {
      const name = testedName(cur.childForFieldName('condition'));
      const flag = name ? flags.get(name) : undefined;
      if (flag) return `${flag.name}@${flag.position}`;
    }
    if (cur.type === 'block') {
      for (const stmt of cur.namedChildren) {
        if (stmt.startIndex >= child.startIndex) break;
        const name = earlyExitOn(stmt);
        const flag = name ? flags.get(name) : undefined;
        if (flag) return `${flag.name}@${flag.position}`;
      }
    }
  }
  return null;
}

/**
 * What a call passes, for the repo phase to tell which flags it leaves off: one character per
 * positional argument (`f` for a literal `False`/`None`, `a` for anything else), then `|` and
 * the keywords passed with any other value, comma-separated, then `|*` when it unpacks `*args`
 * or `**kwargs` (anything may be passed).
 */
export function passedArguments(call: SyntaxNode, source?: string, argsOffset = -1): string {
  if (source !== undefined && argsOffset >= 0) {
    const fromText = passedArgumentsFromText(source, argsOffset);
    if (fromText !== null) return fromText;
  }
  const args = call.childForFieldName('arguments');
  let positional = '';
  const keywords: string[] = [];
  let star = false;
  for (const a of args?.namedChildren ?? []) {
    if (a.type === 'comment') continue;
    if (a.type === 'list_splat' || a.type === 'dictionary_splat') star = true;
    else if (a.type === 'keyword_argument') {
      const value = a.childForFieldName('value')?.text;
      if (value !== 'False' && value !== 'None') keywords.push(a.childForFieldName('name')?.text ?? '');
    } else if (args?.type === 'argument_list') positional += a.text === 'False' || a.text === 'None' ? 'f' : 'a';
  }
  return `${positional}|${keywords.join(',')}${star ? '|*' : ''}`;
}

/** Does a call with these passed arguments ({@link passedArguments}) leave the guard's flag off? */
export function leavesFlagOff(passes: string | undefined, guard: string): boolean {
  if (passes === undefined) return false;
  const [positional = '', keywords = '', star] = passes.split('|');
  if (star !== undefined) return false;
  const at = guard.lastIndexOf('@');
  const name = guard.slice(0, at);
  const position = Number(guard.slice(at + 1));
  if (keywords && keywords.split(',').includes(name)) return false;
  if (position >= 0 && position < positional.length) return positional[position] === 'f';
  return true;
}

/**
 * {@link passedArguments} read from the source after the call's `(` (no call into the parser):
 * null when the argument list holds anything a plain split could misread (strings, comments,
 * lambdas, generator expressions, line breaks), and the tree is asked instead.
 */
function passedArgumentsFromText(source: string, from: number): string | null {
  let depth = 0;
  let start = from;
  const args: string[] = [];
  for (let i = from; i < source.length; i++) {
    const c = source.charCodeAt(i);
    // quotes, `#`, line breaks: leave it to the tree.
    if (c === 34 || c === 39 || c === 35 || c === 10 || c === 13 || c === 92) return null;
    if (c === 40 || c === 91 || c === 123) depth++;
    else if (c === 41 || c === 93 || c === 125) {
      if (depth === 0) {
        if (c !== 41) return null;
        args.push(source.slice(start, i));
        let positional = '';
        const keywords: string[] = [];
        let star = false;
        for (const raw of args) {
          const a = raw.trim();
          if (!a) continue;
          if (/\blambda\b|\bfor\b/.test(a)) return null;
          if (a.startsWith('*')) star = true;
          else {
            const kw = /^([A-Za-z_]\w*)\s*=(?!=)\s*([\s\S]*)$/.exec(a);
            if (kw) {
              if (kw[2] !== 'False' && kw[2] !== 'None') keywords.push(kw[1]!);
            } else positional += a === 'False' || a === 'None' ? 'f' : 'a';
          }
        }
        return `${positional}|${keywords.join(',')}${star ? '|*' : ''}`;
      }
      depth--;
    } else if (c === 44 && depth === 0) {
      args.push(source.slice(start, i));
      start = i + 1;
    }
  }
  return null;
}
