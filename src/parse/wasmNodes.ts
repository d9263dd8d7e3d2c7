/**
 * A lean node layer over web-tree-sitter's WebAssembly module.
 *
 * web-tree-sitter's own `Node` pays, on every node it hands out, for class-field initialisers,
 * an integer-keyed handle (a separate elements store), a `{row, column}` object, and a
 * `setValue`/`getValue` call with a type-name switch per word it marshals; `childForFieldName`
 * searches the field-name list each time. The analysis touches millions of nodes on a large
 * repository, and those costs were ~12 % of the whole per-file CPU and a third of the bytes it
 * allocated (profile of a 500k-line generated monorepo).
 *
 * This layer calls the same exported C functions of the same module (the `*_wasm` entry points
 * that web-tree-sitter's `Node` calls), reading and writing the transfer buffer through the
 * module's `HEAP32` view directly. A node is five integers and a tree reference; its type and
 * end offset are kept once asked. The tree itself still comes from web-tree-sitter's `Parser`.
 *
 * It relies on the module layout of the pinned web-tree-sitter version (a node is five `i32` in
 * the transfer buffer: id, start index, start row, start column, subtree handle); the exports
 * it needs are checked when it is set up, and the parser falls back to web-tree-sitter's own
 * nodes when one is missing.
 */
import type { Point, SyntaxNode } from './parser.js';

/** The Emscripten module object of web-tree-sitter (the object passed to `Parser.init`). */
interface WasmModule {
  HEAP32: Int32Array;
  _malloc(size: number): number;
  _free(address: number): void;
  _ts_init(): number;
  _ts_tree_root_node_wasm(tree: number): void;
  _ts_node_symbol_wasm(tree: number): number;
  _ts_node_end_index_wasm(tree: number): number;
  _ts_node_end_point_wasm(tree: number): void;
  _ts_node_parent_wasm(tree: number): void;
  _ts_node_child_wasm(tree: number, index: number): void;
  _ts_node_named_child_wasm(tree: number, index: number): void;
  _ts_node_child_count_wasm(tree: number): number;
  _ts_node_named_child_count_wasm(tree: number): number;
  _ts_node_children_wasm(tree: number): void;
  _ts_node_named_children_wasm(tree: number): void;
  _ts_node_child_by_field_id_wasm(tree: number, field: number): void;
  _ts_node_children_by_field_id_wasm(tree: number, field: number): void;
  _ts_node_descendants_of_type_wasm(tree: number, symbols: number, count: number, r0: number, c0: number, r1: number, c1: number): void;
  _ts_node_descendant_for_index_wasm(tree: number): void;
  _ts_node_has_error_wasm(tree: number): number;
  _ts_node_is_missing_wasm(tree: number): number;
}

const REQUIRED: (keyof WasmModule)[] = [
  '_malloc', '_free', '_ts_init', '_ts_tree_root_node_wasm', '_ts_node_symbol_wasm', '_ts_node_end_index_wasm',
  '_ts_node_end_point_wasm', '_ts_node_parent_wasm', '_ts_node_child_wasm', '_ts_node_named_child_wasm',
  '_ts_node_child_count_wasm', '_ts_node_named_child_count_wasm', '_ts_node_children_wasm', '_ts_node_named_children_wasm',
  '_ts_node_child_by_field_id_wasm', '_ts_node_children_by_field_id_wasm', '_ts_node_descendants_of_type_wasm',
  '_ts_node_descendant_for_index_wasm', '_ts_node_has_error_wasm', '_ts_node_is_missing_wasm',
];

/** Words per node in the transfer buffer. */
const NODE_WORDS = 5;
/** web-tree-sitter's symbol for `ERROR` in a type list. */
const ERROR_SYMBOL = 65535;

let M: WasmModule;
/** The module's `HEAP32`; a view of a buffer that WebAssembly memory growth detaches (length 0 then). */
let H: Int32Array;
/** Word index of the transfer buffer. */
let TB = 0;

function heap(): Int32Array {
  if (H.length === 0) H = M.HEAP32;
  return H;
}

/** The language tables a tree needs: type names by symbol, field ids by name, symbol lists by type list. */
export interface LanguageTables {
  types: readonly string[];
  fields: Map<string, number>;
  symbolLists: Map<string, { address: number; count: number }>;
}

export function languageTables(language: { types: readonly string[]; fields: readonly (string | null)[] }): LanguageTables {
  const fields = new Map<string, number>();
  language.fields.forEach((name, id) => {
    if (name !== null && !fields.has(name)) fields.set(name, id);
  });
  return { types: language.types, fields, symbolLists: new Map() };
}

/** One parsed tree: its WASM address (0 once released), its source text and its language tables. */
export class WasmTree {
  /**
   * Parents asked for, by node id. `ts_node_parent` descends from the root on every call, and the
   * rules walk up from many nodes of the same statements (is this call conditional, awaited, a
   * `with` item?): each parent is found once per tree. A node id is its subtree's address, unique
   * within a tree.
   */
  readonly parents = new Map<number, WasmNode | null>();
  /**
   * The nodes of a type list over the whole tree, in document order, by type-list key: the rules
   * ask many functions' bodies (and the same body, rule after rule) for the same types, and each
   * such answer is a slice of this list (see `descendantsOfType`). Emptied when the tree is released.
   */
  readonly buckets = new Map<string, { types: readonly string[]; nodes: WasmNode[] }>();
  /** Characters of source asked for, by type-list key, before the whole tree's list is made for it. */
  readonly asked = new Map<string, number>();
  /** Id of the root node. */
  rootId = 0;

  constructor(
    public address: number,
    readonly source: string,
    readonly lang: LanguageTables,
  ) {}

  get rootNode(): SyntaxNode {
    M._ts_tree_root_node_wasm(this.address);
    const root = unmarshal(this, TB)!;
    this.rootId = root.id;
    return root;
  }

  /** Drops what the tree holds on to once it is released (its WebAssembly memory is gone). */
  release(): void {
    this.address = 0;
    this.buckets.clear();
    this.asked.clear();
    this.parents.clear();
  }
}

/**
 * A whole-tree list is made for a type list once the subtrees asked for it add up to this many
 * times the file's length: walking the whole tree then costs no more than the walks it replaces.
 */
const BUCKET_AFTER = 1;

/** Does the type list hold `ERROR` (a symbol of its own, not in the language's table by name)? */
function hasError(types: readonly string[]): boolean {
  return types.includes('ERROR');
}

/**
 * The nodes of `bucket` (a whole tree's nodes of some types, in document order) that are `node`
 * or its descendants, in document order: what `ts_node_descendants_of_type` from `node` returns.
 * Null when that cannot be told from offsets alone (a zero-width node at either end of `node`, or
 * `node` itself zero-width), for the caller to ask the tree.
 *
 * Ranges in a tree nest and siblings do not overlap, so a node starting strictly inside `node`
 * is a descendant; one starting where `node` starts is an ancestor when it ends after `node`, a
 * descendant when it ends before, and when it has the very same range, `node` itself, an
 * ancestor (found among `node`'s parents of that range) or a descendant.
 */
function windowOf(bucket: WasmNode[], node: WasmNode): WasmNode[] | null {
  const s = node.startIndex;
  const e = node.endIndex;
  if (s === e) return null;
  let lo = 0;
  let hi = bucket.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (bucket[mid]!.startIndex < s) lo = mid + 1;
    else hi = mid;
  }
  const out: WasmNode[] = [];
  for (let i = lo; i < bucket.length; i++) {
    const x = bucket[i]!;
    const xs = x.startIndex;
    if (xs > s && xs < e) {
      out.push(x);
      continue;
    }
    if (xs > e) break;
    const xe = x.endIndex;
    if (xs === xe) return null;
    // Starts where `node` ends and is not empty: after `node`, and so is all that follows.
    if (xs === e) break;
    if (xe > e) continue;
    if (xe < e || x.id === node.id || !sameRangeAncestor(x, node)) out.push(x);
  }
  return out;
}

/** Is `x` (of the same range as `node`) one of `node`'s ancestors? */
function sameRangeAncestor(x: WasmNode, node: WasmNode): boolean {
  for (let p = node.parent as WasmNode | null; p && p.startIndex === node.startIndex && p.endIndex === node.endIndex; p = p.parent as WasmNode | null) {
    if (p.id === x.id) return true;
  }
  return false;
}

/**
 * Checks that the module has what this layer calls and binds it. False when the module does not
 * look like the one this layer was written against.
 */
export function bindModule(module: unknown): boolean {
  const m = module as Partial<WasmModule> | null;
  if (!m || !(m.HEAP32 instanceof Int32Array)) return false;
  for (const name of REQUIRED) if (typeof m[name] !== 'function') return false;
  M = m as WasmModule;
  H = M.HEAP32;
  TB = M._ts_init() >> 2;
  return true;
}

function marshal(node: WasmNode): void {
  const h = heap();
  h[TB] = node.id;
  h[TB + 1] = node.startIndex;
  h[TB + 2] = node.row;
  h[TB + 3] = node.column;
  h[TB + 4] = node.handle;
}

/** The node at word `at` (of the transfer buffer or a returned array), or null for a null node. */
function unmarshal(tree: WasmTree, at: number): WasmNode | null {
  const h = heap();
  const id = h[at]!;
  if (id === 0) return null;
  return new WasmNode(tree, id, h[at + 1]!, h[at + 2]!, h[at + 3]!, h[at + 4]!);
}

/** Reads the (count, address) pair a list-returning call left in the transfer buffer, then frees the list. */
function unmarshalList(tree: WasmTree): WasmNode[] {
  const h = heap();
  const count = h[TB]!;
  const address = h[TB + 1]!;
  const out = new Array<WasmNode>(count);
  let at = address >> 2;
  for (let i = 0; i < count; i++, at += NODE_WORDS) out[i] = unmarshal(tree, at)!;
  if (address) M._free(address);
  return out;
}

function symbolsFor(lang: LanguageTables, types: string | string[]): { address: number; count: number } {
  const key = typeof types === 'string' ? types : types.join('\0');
  let list = lang.symbolLists.get(key);
  if (!list) {
    const wanted = typeof types === 'string' ? [types] : types;
    const symbols: number[] = [];
    lang.types.forEach((t, i) => {
      if (wanted.includes(t)) symbols.push(i);
    });
    if (wanted.includes('ERROR')) symbols.push(ERROR_SYMBOL);
    // Kept for the worker's life: the same few type lists are asked for on every file.
    const address = M._malloc(4 * Math.max(1, symbols.length));
    const h = heap();
    symbols.forEach((s, i) => (h[(address >> 2) + i] = s));
    list = { address, count: symbols.length };
    lang.symbolLists.set(key, list);
  }
  return list;
}

export class WasmNode implements SyntaxNode {
  /** Cached answers: the type name and the end offset (a node never changes). */
  private typeName: string | null = null;
  private end = -1;
  private childList: WasmNode[] | null = null;
  private namedList: WasmNode[] | null = null;

  constructor(
    readonly tree: WasmTree,
    readonly id: number,
    readonly startIndex: number,
    readonly row: number,
    readonly column: number,
    /** The subtree handle (web-tree-sitter's `node[0]`). */
    readonly handle: number,
  ) {}

  get type(): string {
    let t = this.typeName;
    if (t === null) {
      marshal(this);
      t = this.typeName = this.tree.lang.types[M._ts_node_symbol_wasm(this.tree.address)] || 'ERROR';
    }
    return t;
  }

  get endIndex(): number {
    let e = this.end;
    if (e < 0) {
      marshal(this);
      e = this.end = M._ts_node_end_index_wasm(this.tree.address);
    }
    return e;
  }

  get text(): string {
    return this.tree.source.slice(this.startIndex, this.endIndex);
  }

  get startPosition(): Point {
    return { row: this.row, column: this.column };
  }

  get endPosition(): Point {
    marshal(this);
    M._ts_node_end_point_wasm(this.tree.address);
    const h = heap();
    return { row: h[TB]! >>> 0, column: h[TB + 1]! >>> 0 };
  }

  get parent(): SyntaxNode | null {
    const parents = this.tree.parents;
    let p = parents.get(this.id);
    if (p === undefined) {
      marshal(this);
      M._ts_node_parent_wasm(this.tree.address);
      p = unmarshal(this.tree, TB);
      parents.set(this.id, p);
    }
    return p;
  }

  get children(): SyntaxNode[] {
    if (!this.childList) {
      marshal(this);
      M._ts_node_children_wasm(this.tree.address);
      this.childList = unmarshalList(this.tree);
    }
    return this.childList;
  }

  get namedChildren(): SyntaxNode[] {
    if (!this.namedList) {
      marshal(this);
      M._ts_node_named_children_wasm(this.tree.address);
      this.namedList = unmarshalList(this.tree);
    }
    return this.namedList;
  }

  get childCount(): number {
    if (this.childList) return this.childList.length;
    marshal(this);
    return M._ts_node_child_count_wasm(this.tree.address);
  }

  get namedChildCount(): number {
    if (this.namedList) return this.namedList.length;
    marshal(this);
    return M._ts_node_named_child_count_wasm(this.tree.address);
  }

  get hasError(): boolean {
    marshal(this);
    return M._ts_node_has_error_wasm(this.tree.address) === 1;
  }

  get isMissing(): boolean {
    marshal(this);
    return M._ts_node_is_missing_wasm(this.tree.address) === 1;
  }

  child(index: number): SyntaxNode | null {
    if (this.childList) return this.childList[index] ?? null;
    marshal(this);
    M._ts_node_child_wasm(this.tree.address, index);
    return unmarshal(this.tree, TB);
  }

  namedChild(index: number): SyntaxNode | null {
    if (this.namedList) return this.namedList[index] ?? null;
    marshal(this);
    M._ts_node_named_child_wasm(this.tree.address, index);
    return unmarshal(this.tree, TB);
  }

  childForFieldName(name: string): SyntaxNode | null {
    const field = this.tree.lang.fields.get(name);
    if (field === undefined) return null;
    marshal(this);
    M._ts_node_child_by_field_id_wasm(this.tree.address, field);
    return unmarshal(this.tree, TB);
  }

  childrenForFieldName(name: string): SyntaxNode[] {
    const field = this.tree.lang.fields.get(name);
    if (field === undefined || field === 0) return [];
    marshal(this);
    M._ts_node_children_by_field_id_wasm(this.tree.address, field);
    return unmarshalList(this.tree);
  }

  /**
   * The node and its descendants of these types, in document order. Answered from the tree's
   * whole list for the types (`WasmTree.buckets`) when it has one, or one it has for more types
   * (the semantic model's batch), or once the subtrees asked for these types add up to the file
   * (see `BUCKET_AFTER`); the same nodes, in the same order, as the walk from this node.
   */
  descendantsOfType(types: string | string[]): SyntaxNode[] {
    const tree = this.tree;
    const list = typeof types === 'string' ? [types] : types;
    const key = typeof types === 'string' ? types : types.join('\0');
    if (this.id === tree.rootId) {
      const nodes = this.walkOfType(types);
      if (!hasError(list) && !tree.buckets.has(key)) tree.buckets.set(key, { types: list.slice(), nodes: nodes.slice() });
      return nodes;
    }
    if (hasError(list)) return this.walkOfType(types);
    let bucket = tree.buckets.get(key)?.nodes;
    if (!bucket) {
      for (const b of tree.buckets.values()) {
        if (list.every((t) => b.types.includes(t))) {
          bucket = b.nodes.filter((n) => list.includes(n.type));
          tree.buckets.set(key, { types: list.slice(), nodes: bucket });
          break;
        }
      }
    }
    if (!bucket) {
      const asked = (tree.asked.get(key) ?? 0) + (this.endIndex - this.startIndex);
      if (asked < BUCKET_AFTER * tree.source.length) {
        tree.asked.set(key, asked);
        return this.walkOfType(types);
      }
      tree.rootNode.descendantsOfType(types);
      bucket = tree.buckets.get(key)!.nodes;
    }
    return windowOf(bucket, this) ?? this.walkOfType(types);
  }

  /** `ts_node_descendants_of_type` from this node. */
  private walkOfType(types: string | string[]): WasmNode[] {
    const { address, count } = symbolsFor(this.tree.lang, types);
    marshal(this);
    M._ts_node_descendants_of_type_wasm(this.tree.address, address, count, 0, 0, 0, 0);
    return unmarshalList(this.tree);
  }

  descendantForIndex(start: number, end: number = start): SyntaxNode | null {
    marshal(this);
    const h = heap();
    h[TB + NODE_WORDS] = start;
    h[TB + NODE_WORDS + 1] = end;
    M._ts_node_descendant_for_index_wasm(this.tree.address);
    return unmarshal(this.tree, TB);
  }
}

/** Bytes of WebAssembly memory the module has now (for tests of memory growth). */
export function wasmHeapBytes(): number {
  return heap().byteLength;
}
