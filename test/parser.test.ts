/** Both bindings parse the same code to the same findings; auto falls back to WASM with one notice. */
import { describe, expect, it } from 'vitest';
import { createParser } from '../dist/src/parse/parser.js';
import { buildFileModel } from '../dist/src/semantic/model.js';

const SOURCE = [
  'import time',
  'from pathlib import Path',
  '',
  'async def handler(p: Path):',
  '    s = "é ü"  # non-ASCII before the calls',
  '    time.sleep(1)',
  '    await client.get(a(b).c(d))',
  '    x = await \\',
  '        self.db.execute(q)',
  '    y = (await make()).value',
  '    z = await factory().open()',
  '    notawait',
  '    run(q)',
  'if HAVE_FAST:',
  '    def helper():',
  '        pass',
  'helper()',
  '',
].join('\n');

describe('parser layer', () => {
  for (const kind of ['native', 'wasm'] as const) {
    it(`${kind}: parses and builds the same semantic model`, async () => {
      const parser = await createParser(kind);
      expect(parser.kind).toBe(kind);
      const tree = parser.parse(SOURCE);
      const model = buildFileModel('app/x.py', SOURCE, tree.rootNode, parser);
      type Call = { calleeText: string; qualifiedName: string | null; line: number; column: number; awaited: boolean; dottedReceiver: string | null; hasReceiver: boolean; emptyArgs: boolean };
      const calls = model.calls.map((c: Call) => [c.calleeText, c.qualifiedName, c.line, c.column, c.awaited, c.dottedReceiver, c.hasReceiver, c.emptyArgs]);
      // `awaited` and the receiver are read from the text where it decides, from the tree otherwise.
      expect(calls).toEqual([
        ['time.sleep', 'time.sleep', 6, 5, false, 'time', true, false],
        ['client.get', null, 7, 11, true, 'client', true, false],
        ['a(b).c', null, 7, 22, false, null, true, false],
        ['a', null, 7, 22, false, null, false, false],
        ['self.db.execute', null, 9, 9, true, 'self.db', true, false],
        ['make', null, 10, 16, true, null, false, true],
        // The outer call of a chain is read from the tree: its empty list is not known from the text.
        ['factory().open', null, 11, 15, true, null, true, false],
        ['factory', null, 11, 15, false, null, false, true],
        ['run', null, 13, 5, false, null, false, false],
        // A def under a module-level `if` is a module name too.
        ['helper', 'app.x.helper', 17, 1, false, null, false, true],
      ]);
      tree.release();
    });
  }

  it('reads assignment targets from the text where it decides, from the tree otherwise', async () => {
    const src = [
      'def f(self, rows):',
      '    x = 1',
      '    self.db = make()',
      '    y: int = 2',
      '    a = b = 3',
      '    n //= 2',
      '    s += "x"',
      '    a, b = 1, 2',
      '    d[k] = 1',
      '    self . spaced = 4',
      '    \u00e9t\u00e9 = 5',
      '',
    ].join('\n');
    const parser = await createParser('wasm');
    const tree = parser.parse(src);
    const model = buildFileModel('app/a.py', src, tree.rootNode, parser);
    type Plain = { target: string; annotation: string | null; line: number; value: { text: string } | null };
    type Aug = { target: string; operator: string; line: number; value: { text: string } | null };
    expect(model.assignments.map((a: Plain) => [a.target, a.annotation, a.line, a.value?.text ?? null])).toEqual([
      ['x', null, 2, '1'],
      ['self.db', null, 3, 'make()'],
      ['y', 'int', 4, '2'],
      ['a', null, 5, 'b = 3'],
      ['b', null, 5, '3'],
      ['self . spaced', null, 10, '4'],
      ['\u00e9t\u00e9', null, 11, '5'],
    ]);
    expect(model.augAssignments.map((a: Aug) => [a.target, a.operator, a.line, a.value?.text ?? null])).toEqual([
      ['n', '//=', 6, '2'],
      ['s', '+=', 7, '"x"'],
    ]);
    tree.release();
  });

  it('reads parameter lists from the text where it decides, from the tree otherwise', async () => {
    const src = [
      'def plain(self, a, b: int, c=1, d: Annotated[X, Depends(g)] = None, *args: str, e, **kw):',
      '    pass',
      'def markers(a, /, b, *, c=x == y,):',
      '    pass',
      'def multi(',
      '    a: dict[str, int] = {1: 2},',
      '    b=(1,',
      '       2),',
      '):',
      '    pass',
      'def with_string(a="x, y", b=lambda p, q: p):  # the tree reads these',
      '    pass',
      'def with_comment(a,  # first',
      '                 * rest):',
      '    pass',
      '',
    ].join('\n');
    const parser = await createParser('wasm');
    const tree = parser.parse(src);
    const model = buildFileModel('app/p.py', src, tree.rootNode, parser);
    type Fn = { name: string; params: { name: string; annotation: string | null; defaultText: string | null }[] };
    const params = Object.fromEntries(model.functions.map((f: Fn) => [f.name, f.params.map((p) => [p.name, p.annotation, p.defaultText])]));
    expect(params).toEqual({
      plain: [
        ['self', null, null], ['a', null, null], ['b', 'int', null], ['c', null, '1'],
        ['d', 'Annotated[X, Depends(g)]', 'None'], ['args', 'str', null], ['e', null, null], ['kw', null, null],
      ],
      markers: [['a', null, null], ['/', null, null], ['b', null, null], ['', null, null], ['c', null, 'x == y']],
      multi: [['a', 'dict[str, int]', '{1: 2}'], ['b', null, '(1,\n       2)']],
      with_string: [['a', null, '"x, y"'], ['b', null, 'lambda p, q: p']],
      with_comment: [['a', null, null], ['rest', null, null]],
    });
    tree.release();
  });

  it('auto prefers WASM', async () => {
    expect((await createParser('auto')).kind).toBe('wasm');
  });

  it('auto falls back to native with one notice when WASM cannot load', async () => {
    const notices: string[] = [];
    const parser = await createParser('auto', (m: string) => notices.push(m), {
      wasm: async () => {
        throw new Error('WebAssembly.instantiate(): out of memory');
      },
    });
    expect(parser.kind).toBe('native');
    expect(notices).toEqual([expect.stringMatching(/WASM tree-sitter unavailable \(WebAssembly\.instantiate\(\): out of memory\); using the native parser/)]);
  });

  it('a forced binding that cannot load fails clearly', async () => {
    await expect(createParser('native', () => {}, { native: () => { throw new Error('GLIBCXX_3.4.31 not found'); } })).rejects.toThrow(/native tree-sitter parser could not load: GLIBCXX/);
    await expect(createParser('wasm', () => {}, { wasm: async () => { throw new Error('boom'); } })).rejects.toThrow(/WASM tree-sitter parser could not load: boom/);
  });
});
