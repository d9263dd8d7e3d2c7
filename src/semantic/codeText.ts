/** Source text as code: comments and string literals blanked, names bound by the text. */
import type { SyntaxNode } from '../parse/parser.js';

const codeTexts = new WeakMap<SyntaxNode, string>();

/**
 * The function's text with its comments and string literals blanked (same length): a comment or
 * docstring that names the handle (`# the session closes here`) is no use of it.
 */
export function codeText(fnNode: SyntaxNode): string {
  let text = codeTexts.get(fnNode);
  if (text !== undefined) return text;
  text = fnNode.text;
  if (text.includes('#') || /["']/.test(text)) {
    const chars = text.split('');
    const blank = (from: number, to: number) => {
      for (let i = from - fnNode.startIndex; i < to - fnNode.startIndex; i++) if (chars[i] !== '\n') chars[i] = ' ';
    };
    for (const n of fnNode.descendantsOfType(['comment', 'string'])) {
      // An f-string's fields are code: blank the text around them, keep them.
      const fields = n.type === 'string' ? n.namedChildren.filter((c) => c.type === 'interpolation') : [];
      let at = n.startIndex;
      for (const f of fields) {
        blank(at, f.startIndex);
        at = f.endIndex;
      }
      blank(at, n.endIndex);
    }
    text = chars.join('');
  }
  codeTexts.set(fnNode, text);
  return text;
}

/**
 * Does the text bind `name` without an assignment statement: a loop or comprehension target
 * (`for a, name in ...`), `with ... as name`, `except ... as name`, or a walrus (`name := ...`)?
 */
export function bindsName(text: string, name: string): boolean {
  return new RegExp(`\\bfor\\s+(?:[\\w\\s,()]*[\\s,(])?${name}\\b[\\w\\s,()]*\\bin\\b|\\bas\\s+${name}\\b|\\b${name}\\s*:=`).test(text);
}

/**
 * The first occurrence of the plain name `name` in `text` (not part of a longer name nor an
 * attribute: what `(?<![\w.])name` or `(^|[^\w.])name` finds) that `rest`, a sticky pattern tried
 * where the name ends, continues; the match of `rest`, or null. The name is found with
 * `indexOf`: a pattern that starts with a lookbehind or an alternation is tried at every offset
 * of the text, and these questions are asked per `if`, parameter or loop on a function's text.
 */
export function nameThen(text: string, name: string, rest: RegExp): RegExpExecArray | null {
  for (const m of namesThen(text, name, rest)) return m;
  return null;
}

/** Every occurrence {@link nameThen} tries, in order: the matches of `rest` (sticky) where the name ends. */
export function* namesThen(text: string, name: string, rest: RegExp): Generator<RegExpExecArray> {
  if (!name) return;
  for (let i = text.indexOf(name); i >= 0; i = text.indexOf(name, i + 1)) {
    if (i > 0 && NAME_OR_DOT.test(text[i - 1]!)) continue;
    rest.lastIndex = i + name.length;
    const m = rest.exec(text);
    if (m) yield m;
  }
}

const NAME_OR_DOT = /[\w.]/;
