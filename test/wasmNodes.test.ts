/**
 * The lean WASM node layer answers exactly what web-tree-sitter's own nodes answer, on every
 * node of a file with non-ASCII text, syntax errors and missing tokens, and keeps answering
 * after the WebAssembly memory grows under it.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { Language, Parser } from 'web-tree-sitter';
import { createParser, type SyntaxNode } from '../dist/src/parse/parser.js';
import { bindModule, WasmNode, wasmHeapBytes } from '../dist/src/parse/wasmNodes.js';

const require = createRequire(import.meta.url);

const SOURCE = [
  'import time',
  'from a.b import (c as d, e)',
  '',
  '@app.get("/é")',
  'async def handler(p: "Päth" = None, *args, **kw) -> dict[str, int]:',
  '    s = "é ü 😀"  # astral and accented text before the calls',
  '    time.sleep(1)',
  '    x = [y.z for y in q if y]',
  '    async with S() as s, T():',
  '        await s.execute(select(U).where(U.id == 1))',
  '    return {k: v for k, v in kw.items()}',
  'def broken(:',
  '    pass',
  'x = (1 +',
  'class C(Base):',
  '    __tablename__ = "c"',
  '    id: Mapped[int] = mapped_column(primary_key=True)',
  '',
].join('\n');

const FIELDS = ['name', 'body', 'parameters', 'return_type', 'function', 'arguments', 'object', 'attribute', 'left', 'right', 'value', 'type', 'alias', 'condition', 'superclasses', 'module_name', 'operator', 'nope'];
const TYPES = ['call', 'function_definition', 'class_definition', 'identifier', 'ERROR', 'string', 'with_statement', 'list_comprehension'];

/** Everything a node answers through the interface the analysis uses, with its subtree. */
function describeTree(node: SyntaxNode, out: unknown[] = []): unknown[] {
  out.push([
    node.type, node.text, node.startIndex, node.endIndex, node.startPosition, node.endPosition,
    node.hasError, node.isMissing, node.childCount, node.namedChildCount, node.parent?.startIndex ?? null, node.parent?.type ?? null,
    FIELDS.map((f) => node.childForFieldName(f)?.startIndex ?? null),
    FIELDS.map((f) => node.childrenForFieldName(f).map((c) => c.startIndex)),
    node.namedChild(0)?.type ?? null, node.child(node.childCount - 1)?.type ?? null, node.child(999)?.type ?? null,
  ]);
  for (const c of node.children) describeTree(c, out);
  return out;
}

describe('lean WASM nodes', () => {
  it('answer what web-tree-sitter nodes answer, node for node', async () => {
    const parser = await createParser('wasm');
    const tree = parser.parse(SOURCE);
    expect(tree.rootNode).toBeInstanceOf(WasmNode);

    await Parser.init();
    const reference = new Parser();
    reference.setLanguage(await Language.load(require.resolve('tree-sitter-python/tree-sitter-python.wasm')));
    const refTree = reference.parse(SOURCE)!;
    const refRoot = refTree.rootNode as unknown as SyntaxNode;

    expect(tree.rootNode.hasError).toBe(true);
    expect(describeTree(tree.rootNode)).toEqual(describeTree(refRoot));
    const span = (n: SyntaxNode) => [n.type, n.startIndex, n.endIndex];
    for (const types of [...TYPES, TYPES]) {
      expect(tree.rootNode.descendantsOfType(types).map(span)).toEqual(refRoot.descendantsOfType(types).map(span));
    }
    for (let i = 0; i < SOURCE.length; i += 7) {
      expect(span(tree.rootNode.descendantForIndex(i, i + 3)!)).toEqual(span(refRoot.descendantForIndex(i, i + 3)!));
    }
    refTree.delete();
    tree.release();
  });

  it('answer descendantsOfType from the whole tree\'s list as the walk from each node does', async () => {
    // Identical ranges (`time.sleep(1)` is its statement, a block of one statement), zero-width
    // missing tokens and errors: every node of the file, each type list, from a list made for
    // those types and from one made for more types (the semantic model's batch).
    const source = `${SOURCE}def one():\n    return f()\nif x:\n    g(h(i))\n`;
    await Parser.init();
    const reference = new Parser();
    reference.setLanguage(await Language.load(require.resolve('tree-sitter-python/tree-sitter-python.wasm')));
    const refTree = reference.parse(source)!;
    const lists = [
      'call', 'identifier', 'block', 'return_statement', 'expression_statement', 'attribute', 'module', ')', 'string_content',
      ['call', 'expression_statement', 'block'], ['return_statement', 'function_definition', 'class_definition', 'lambda'],
    ];
    const union = [...new Set(lists.flat())];
    const span = (n: SyntaxNode) => [n.type, n.startIndex, n.endIndex];
    const nodes = (n: SyntaxNode, out: SyntaxNode[] = []): SyntaxNode[] => {
      out.push(n);
      for (const c of n.children) nodes(c, out);
      return out;
    };
    const refNodes = nodes(refTree.rootNode as unknown as SyntaxNode);
    const parser = await createParser('wasm');
    for (const fromUnion of [false, true]) {
      const tree = parser.parse(source);
      const own = nodes(tree.rootNode);
      expect(own.length).toBe(refNodes.length);
      if (fromUnion) tree.rootNode.descendantsOfType(union);
      for (const types of lists) {
        if (!fromUnion) tree.rootNode.descendantsOfType(types);
        own.forEach((n, i) => expect([span(n), n.descendantsOfType(types).map(span)]).toEqual([span(refNodes[i]!), refNodes[i]!.descendantsOfType(types).map(span)]));
      }
      tree.release();
    }
    expect(refNodes.some((n) => n.isMissing)).toBe(true);
    refTree.delete();
  });

  it('keep answering after the WebAssembly memory grows', async () => {
    const parser = await createParser('wasm');
    const tree = parser.parse(SOURCE);
    const calls = tree.rootNode.descendantsOfType('call');
    const before = calls.map((c) => [c.text, c.endIndex]);
    // A tree of a few megabytes makes the module grow its memory (and detach the old views).
    const heapBefore = wasmHeapBytes();
    const big = parser.parse('x = f(a, b) + g(c)\n'.repeat(100_000));
    expect(wasmHeapBytes()).toBeGreaterThan(heapBefore);
    const fresh = parser.parse(SOURCE).rootNode.descendantsOfType('call');
    expect(fresh.map((c) => [c.text, c.endIndex])).toEqual(before);
    expect(calls.map((c) => [c.childForFieldName('function')?.text, c.parent?.type])).toEqual(
      fresh.map((c) => [c.childForFieldName('function')?.text, c.parent?.type]),
    );
    big.release();
    tree.release();
  });

  it('are what every parser of a thread gets, also from a second copy of the parser module', async () => {
    // `bench:ab` loads two builds that share one web-tree-sitter: a second copy of parser.js
    // (another module instance, as a query string makes it) must reach the same module.
    const copy = (await import('../dist/src/parse/parser.js?copy')) as typeof import('../dist/src/parse/parser.js');
    expect(copy.createParser).not.toBe(createParser);
    const parsers = await Promise.all([createParser('wasm'), copy.createParser('wasm'), createParser('wasm')]);
    for (const p of parsers) {
      const tree = p.parse('x = f(1)\n');
      expect(tree.rootNode).toBeInstanceOf(WasmNode);
      expect(tree.rootNode.descendantsOfType('call').map((n) => n.text)).toEqual(['f(1)']);
      tree.release();
    }
  });

  it('refuse a module that lacks the exports they call', () => {
    expect(bindModule(null)).toBe(false);
    expect(bindModule({})).toBe(false);
    expect(bindModule({ HEAP32: new Int32Array(4), _malloc: () => 0 })).toBe(false);
  });
});
