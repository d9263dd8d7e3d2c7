/**
 * The parser layer: one interface over the native `tree-sitter` binding and the
 * `web-tree-sitter` WASM build, so nothing above this file knows which one runs.
 */
import { createRequire } from 'node:module';
import { bindModule, languageTables, WasmTree } from './wasmNodes.js';

const require = createRequire(import.meta.url);

export interface Point {
  row: number;
  column: number;
}

/** The subset of the node API that both bindings share and that the analyzer uses. */
export interface SyntaxNode {
  readonly id: number;
  readonly type: string;
  readonly text: string;
  readonly startIndex: number;
  readonly endIndex: number;
  readonly startPosition: Point;
  readonly endPosition: Point;
  readonly parent: SyntaxNode | null;
  readonly children: SyntaxNode[];
  readonly namedChildren: SyntaxNode[];
  readonly childCount: number;
  readonly namedChildCount: number;
  readonly hasError: boolean;
  readonly isMissing: boolean;
  child(index: number): SyntaxNode | null;
  namedChild(index: number): SyntaxNode | null;
  childForFieldName(name: string): SyntaxNode | null;
  childrenForFieldName(name: string): SyntaxNode[];
  descendantsOfType(types: string | string[]): SyntaxNode[];
  /** The smallest node spanning `[start, end)` (offsets as `startIndex`). */
  descendantForIndex(start: number, end: number): SyntaxNode | null;
}

export interface ParsedTree {
  readonly rootNode: SyntaxNode;
  /** Frees the tree now (WASM); native trees are freed by the GC. */
  release(): void;
}

export type ParserKind = 'native' | 'wasm';
export type ParserPreference = ParserKind | 'auto';

export interface PythonParser {
  readonly kind: ParserKind;
  /**
   * A node's start offset (UTF-16 code units), read without a call into the binding where the
   * binding keeps it on the node: the hot path of the semantic model reads it for every call.
   */
  startIndexOf(node: SyntaxNode): number;
  parse(source: string): ParsedTree;
}

interface NativeModules {
  TreeSitter: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  language: unknown;
}

/** Loads the native binding; replaceable in tests to exercise the fallback. */
export type NativeLoader = () => NativeModules;

const loadNativeModules: NativeLoader = () => ({ TreeSitter: require('tree-sitter'), language: require('tree-sitter-python') });

function createNativeParser(load: NativeLoader): PythonParser {
  // Loaded lazily so that a broken native build can fall back to WASM.
  const { TreeSitter, language } = load();
  const parser = new TreeSitter();
  parser.setLanguage(language);
  return {
    kind: 'native',
    // The native binding marshals a node as [id, id, startByte, startRow, startColumnByte, alias]
    // with UTF-16 byte offsets; `startIndex` itself is a round trip into C++.
    startIndexOf: (node) => {
      const startByte = (node as unknown as Record<number, number>)[2];
      return typeof startByte === 'number' ? startByte >>> 1 : node.startIndex;
    },
    parse(source: string): ParsedTree {
      // The native binding reads the input through a fixed buffer; size it to the file.
      const tree = parser.parse(source, null, { bufferSize: source.length * 2 + 1024 });
      return { rootNode: tree.rootNode, release() {} };
    },
  };
}

/**
 * One `Parser.init` per web-tree-sitter instance (keyed by its `Parser` class), with the object
 * that init turns into its Emscripten module: the lean node layer calls that module's exports.
 * Concurrent callers share the one init. Kept on `globalThis` so that two copies of this file
 * sharing one web-tree-sitter (two builds loaded side by side by `bench:ab`) share it too; a
 * web-tree-sitter that something else initialised first leaves the module out of reach, and
 * web-tree-sitter's own nodes are used.
 */
interface WasmInit {
  module: Record<string, unknown>;
  ready: Promise<void>;
}
const INITS_KEY = Symbol.for('persist-audit.web-tree-sitter-inits');
const wasmInits = ((globalThis as Record<symbol, unknown>)[INITS_KEY] ??= new WeakMap<object, WasmInit>()) as WeakMap<object, WasmInit>;

async function createWasmParser(): Promise<PythonParser> {
  const { Parser, Language } = await import('web-tree-sitter');
  let init = wasmInits.get(Parser);
  if (!init) {
    const module: Record<string, unknown> = {};
    init = { module, ready: Parser.init(module) };
    wasmInits.set(Parser, init);
  }
  await init.ready;
  const wasmModule = init.module;
  const wasmPath = require.resolve('tree-sitter-python/tree-sitter-python.wasm');
  const language = await Language.load(wasmPath);
  const parser = new Parser();
  parser.setLanguage(language);
  const parseTree = (source: string) => {
    const tree = parser.parse(source);
    if (!tree) throw new Error('the WASM parser returned no tree');
    return tree;
  };
  // The lean node layer when the module has what it calls (see wasmNodes.ts); web-tree-sitter's
  // own nodes otherwise.
  const probe = parseTree('');
  const lean = bindModule(wasmModule) && typeof (probe as unknown as Record<number, unknown>)[0] === 'number';
  probe.delete();
  if (!lean) {
    return {
      kind: 'wasm',
      startIndexOf: (node) => node.startIndex,
      parse(source: string): ParsedTree {
        const tree = parseTree(source);
        return { rootNode: tree.rootNode as unknown as SyntaxNode, release: () => tree.delete() };
      },
    };
  }
  const tables = languageTables(language as unknown as { types: string[]; fields: (string | null)[] });
  return {
    kind: 'wasm',
    startIndexOf: (node) => node.startIndex,
    parse(source: string): ParsedTree {
      const tree = parseTree(source);
      const lean = new WasmTree((tree as unknown as Record<number, number>)[0]!, source, tables);
      return {
        rootNode: lean.rootNode,
        release: () => {
          lean.release();
          tree.delete();
        },
      };
    },
  };
}

export interface ParserLoaders {
  native?: NativeLoader;
  /** Replaceable in tests to exercise the fallback to native. */
  wasm?: () => Promise<PythonParser>;
}

/**
 * Creates the Python parser. `auto` prefers WASM and falls back to the native binding, reporting
 * the reason once through `notice`.
 *
 * Why WASM first, measured on a generated 500k-line FastAPI/SQLAlchemy monorepo (2 workers,
 * alternating runs, `scan --no-write --parser X`): full audit 14.8-20.1 s with WASM (the lean node
 * layer of wasmNodes.ts) against 25.6-25.8 s native, peak RSS 441-461 MiB against 758-762 MiB.
 * Parsing costs the same; every node the analysis touches crosses N-API in the native binding
 * (unmarshalling, property getters), which costs more than the whole WASM model build, and
 * native trees live until the GC finalises them while WASM trees are freed at once.
 */
export async function createParser(
  preference: ParserPreference = 'auto',
  notice: (message: string) => void = () => {},
  loaders: ParserLoaders = {},
): Promise<PythonParser> {
  const loadNative = loaders.native ?? loadNativeModules;
  const loadWasm = loaders.wasm ?? createWasmParser;
  if (preference === 'native') {
    try {
      return createNativeParser(loadNative);
    } catch (err) {
      throw new Error(`the native tree-sitter parser could not load: ${(err as Error).message}`);
    }
  }
  try {
    return await loadWasm();
  } catch (err) {
    if (preference === 'wasm') throw new Error(`the WASM tree-sitter parser could not load: ${(err as Error).message}`);
    notice(`WASM tree-sitter unavailable (${firstLine((err as Error).message)}); using the native parser`);
    return createNativeParser(loadNative);
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}
