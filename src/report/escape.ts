/**
 * Text from the scanned tree (file names, messages quoting its code) reaches a terminal or a CI
 * log. A control character in it could end the line and forge a finding of its own (a file named
 * `x\napp/y.py:1:1 PA303 …`), move the cursor, or recolour the screen; bidirectional overrides
 * could reorder what is shown. Such characters are shown as escapes instead.
 */

/** C0 and C1 controls, DEL, the Unicode line and paragraph separators, bidi embeddings and isolates. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `s` with every control character as `\n`, `\r`, `\t`, `\xHH` or `\uHHHH`; with
 * `keepLineBreaks`, `\n` and `\r` stay (for a format that escapes them its own way).
 */
export function escapeControl(s: string, keepLineBreaks = false): string {
  return s.replace(CONTROL, (c) => {
    if (keepLineBreaks && (c === '\n' || c === '\r')) return c;
    const named = NAMED[c];
    if (named) return named;
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

