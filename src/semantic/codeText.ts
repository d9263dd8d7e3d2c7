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
