/**
 * Rows an instance holds: `self.items = Model.query.filter(...).all()` in one method (often a
 * base class's setup method) and `for x in self.items:` in another, maybe of a subclass. What
 * `self.name` holds is resolved through the classes of the same file only (the class, its bases
 * defined in the file, and its subclasses defined in the file, which may assign it too):
 *
 * - an instance attribute: every assignment to `self.name` in those classes' methods, and a
 *   class-level `name = …`; all must be row sources of one entity (a `None` placeholder aside);
 * - a `@property` read or a method call (`self._query`, `self.get_query()`): every value the
 *   function returns must be a row source of one entity.
 *
 * `.options(*self.opts)` is resolved against the iterating class: the `opts` its MRO gives, and
 * those its subclasses in the file set, are added to the source text (unresolved: unknown).
 *
 * The class index is built once per file; a resolution runs only for a loop over `self.name`
 * (or a chain rooted at one) and reads the few assignments and functions of that name.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { AssignmentInfo, FileModel, FunctionInfo } from '../../../semantic/model.js';
import { assignmentsTo } from '../../../semantic/model.js';
import { insideNestedFunction } from '../../../semantic/controlFlow.js';
import { classOfFunction } from '../../../semantic/classes.js';
import { rowsSource, selfMember, type RowsSource, type SelfRows } from './dbCalls.js';
import { lastAssignment, unwrap } from './semantics.js';

interface FileClass {
  name: string;
  bases: string[];
  start: number;
  end: number;
  /** Class-level assignments by name. */
  attrs: Map<string, AssignmentInfo[]>;
}

interface ClassIndex {
  byName: Map<string, FileClass>;
  /** Class name → the file's classes that list it as a base. */
  children: Map<string, string[]>;
  /** `Class.name` → the method. */
  methods: Map<string, FunctionInfo>;
  /** The file's module-level functions by name (a name defined twice is left out). */
  topFunctions: Map<string, FunctionInfo>;
  mro: Map<string, string[]>;
  family: Map<string, string[]>;
}

const PROPERTY = /(^|\.)(property|cached_property|hybrid_property)$/;
/** `self` hops followed for one loop: attribute → property → attribute … */
const MAX_HOPS = 3;
const indexMemo = new WeakMap<FileModel, ClassIndex>();

function classIndex(model: FileModel): ClassIndex {
  let ix = indexMemo.get(model);
  if (ix) return ix;
  ix = { byName: new Map(), children: new Map(), methods: new Map(), topFunctions: new Map(), mro: new Map(), family: new Map() };
  const local = new Set<string>();
  for (const node of model.classes) {
    if (insideNestedFunction(node)) continue;
    const name = node.childForFieldName('name')?.text;
    if (name) local.add(name);
  }
  for (const node of model.classes) {
    if (insideNestedFunction(node)) continue;
    const name = node.childForFieldName('name')?.text;
    if (!name) continue;
    const bases: string[] = [];
    for (const arg of node.childForFieldName('superclasses')?.namedChildren ?? []) {
      if (arg.type === 'identifier' && local.has(arg.text) && !model.imports.has(arg.text)) bases.push(arg.text);
    }
    ix.byName.set(name, { name, bases, start: node.startIndex, end: node.endIndex, attrs: new Map() });
    for (const b of bases) {
      const list = ix.children.get(b) ?? [];
      list.push(name);
      ix.children.set(b, list);
    }
  }
  const twice = new Set<string>();
  for (const fn of model.functions) {
    if (fn.parent >= 0 || fn.className) continue;
    if (ix.topFunctions.has(fn.name)) twice.add(fn.name);
    ix.topFunctions.set(fn.name, fn);
  }
  for (const n of twice) ix.topFunctions.delete(n);
  if (ix.byName.size) {
    const ranges = [...ix.byName.values()];
    for (const a of model.assignments) {
      if (a.functionIndex >= 0 || a.fromWith || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
      let owner: FileClass | null = null;
      const at = a.node.startIndex;
      for (const r of ranges) if (at >= r.start && at < r.end && (!owner || r.start >= owner.start)) owner = r;
      if (!owner) continue;
      const list = owner.attrs.get(a.target) ?? [];
      list.push(a);
      owner.attrs.set(a.target, list);
    }
    for (const fn of model.functions) {
      if (fn.className && fn.parent < 0 && ix.byName.has(fn.className)) ix.methods.set(`${fn.className}.${fn.name}`, fn);
    }
  }
  indexMemo.set(model, ix);
  return ix;
}

/** The class and its bases defined in the file, depth-first left to right (Python's MRO for simple hierarchies). */
function mroOf(ix: ClassIndex, cls: string): string[] {
  let out = ix.mro.get(cls);
  if (out) return out;
  ix.mro.set(cls, [cls]); // cycles end here
  out = [cls];
  for (const b of ix.byName.get(cls)?.bases ?? []) for (const c of mroOf(ix, b)) if (!out.includes(c)) out.push(c);
  ix.mro.set(cls, out);
  return out;
}

/** The file's subclasses of `cls`, at any depth. */
function descendantsOf(ix: ClassIndex, cls: string): string[] {
  const out: string[] = [];
  const todo = [...(ix.children.get(cls) ?? [])];
  while (todo.length) {
    const c = todo.pop()!;
    if (out.includes(c) || c === cls) continue;
    out.push(c);
    todo.push(...(ix.children.get(c) ?? []));
  }
  return out;
}

/** Every class whose instances a `self` of `cls` may be: its MRO in the file and its subclasses. */
function familyOf(ix: ClassIndex, cls: string): string[] {
  let out = ix.family.get(cls);
  if (!out) ix.family.set(cls, (out = [...mroOf(ix, cls), ...descendantsOf(ix, cls)]));
  return out;
}

function isNone(node: SyntaxNode | null): boolean {
  return unwrap(node)?.type === 'none';
}

/** All row sources agree on one entity: merged (texts joined, so an option in any one counts); else null. */
function merge(sources: RowsSource[]): RowsSource | null {
  if (!sources.length) return null;
  const entity = sources[0]!.entity;
  if (!entity || sources.some((s) => s.entity !== entity)) return null;
  return { ...sources[0]!, text: sources.map((s) => s.text).join(' ') };
}

const returnsMemo = new WeakMap<FunctionInfo, SyntaxNode[]>();
const NESTED_OR_RETURN = ['return_statement', 'function_definition', 'class_definition', 'lambda'];

/** The `return` statements of the function's own body (not nested defs). */
export function returnsOf(fn: FunctionInfo): SyntaxNode[] {
  let out = returnsMemo.get(fn);
  if (out) return out;
  out = [];
  // A body without the word has no `return` to look for in the tree (many functions return nothing).
  const body = fn.body;
  const walk = body && body.text.includes('return') ? body.descendantsOfType(NESTED_OR_RETURN) : [];
  // One batch in document order (a JS walk crossed into the parser for every node of the body):
  // a nested def, class or lambda hides the returns inside it.
  let hiddenUntil = -1;
  for (const n of walk) {
    if (n.startIndex < hiddenUntil) continue;
    if (n.type === 'return_statement') out.push(n);
    else hiddenUntil = n.endIndex;
  }
  returnsMemo.set(fn, out);
  return out;
}

/**
 * What each `return` of the function's own body returns, a name followed to its last assignment
 * before the `return` (`found = q.first(); return found`): the value expressions, in source order.
 */
export function returnedValues(model: FileModel, fnIndex: number): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (const r of returnsOf(model.functions[fnIndex]!)) {
    let v = unwrap(r.namedChild(0));
    if (v?.type === 'identifier') v = unwrap(lastAssignment(model, v.text, fnIndex, r.startPosition.row + 1)?.value ?? null);
    if (v) out.push(v);
  }
  return out;
}

/**
 * Where the rows that `self.<name>` (or a chain on it) holds come from, seen from a method of
 * `cls` (null: a module-level function, where only calls of the file's functions are followed).
 */
export function selfRowsResolver(model: FileModel, cls: string | null): SelfRows {
  const ix = classIndex(model);
  // Each hop starts rowsSource's own depth afresh (a setup method's `query = …;
  // query = query.filter(…); self.items = query.all()` spends it); the hops are bounded here.
  let hops = 0;
  const follow = (fn: () => RowsSource | null): RowsSource | null => {
    if (hops >= MAX_HOPS) return null;
    hops++;
    try {
      return fn();
    } finally {
      hops--;
    }
  };

  /** Every value the function returns is a row source of one entity. */
  function returnedRows(fn: FunctionInfo): RowsSource | null {
    const sources: RowsSource[] = [];
    for (const r of returnsOf(fn)) {
      const value = r.namedChild(0);
      const s = value ? rowsSource(model, value, fn.index, r.startPosition.row + 1, 0, resolver) : null;
      if (!s) return null;
      sources.push(s);
    }
    return merge(sources);
  }

  const resolveMember = (member: SyntaxNode): RowsSource | null => {
    const isCall = member.type === 'call';
    const callee = isCall ? unwrap(member.childForFieldName('function')) : member;
    if (callee?.type === 'identifier') {
      const fn = ix.topFunctions.get(callee.text);
      return fn ? returnedRows(fn) : null;
    }
    const name = callee?.childForFieldName('attribute')?.text;
    if (!name || !cls) return null;
    // A method or property: the first class of the MRO that defines the name decides.
    for (const c of mroOf(ix, cls)) {
      const fn = ix.methods.get(`${c}.${name}`);
      if (fn) {
        const property = fn.decoratorNames.some((d) => PROPERTY.test(d)) || fn.decorators.some((d) => /^@?(\w+\.)?(property|cached_property)\b/.test(d));
        return isCall === property ? null : returnedRows(fn);
      }
      if (ix.byName.get(c)?.attrs.has(name)) break;
    }
    if (isCall) return null;
    return attributeRows(cls, name);
  };

  const resolver: SelfRows = {
    handles(node) {
      if (selfMember(node)) return !!cls;
      if (node.type !== 'call') return false;
      const callee = unwrap(node.childForFieldName('function'));
      return callee?.type === 'identifier' && ix.topFunctions.has(callee.text) && !model.imports.has(callee.text);
    },
    rows: (node) => follow(() => resolveMember(node)),
  };

  function attributeRows(cls: string, name: string): RowsSource | null {
    const family = familyOf(ix, cls);
    const sources: RowsSource[] = [];
    for (const c of family) {
      for (const a of ix.byName.get(c)?.attrs.get(name) ?? []) {
        if (isNone(a.value)) continue;
        return null; // a class-level value other than a placeholder: not rows this rule can follow
      }
    }
    for (const a of assignmentsTo(model, `self.${name}`)) {
      if (a.functionIndex < 0) continue;
      const owner = classOfFunction(model, a.functionIndex);
      if (!owner || !family.includes(owner)) continue;
      if (a.fromWith) return null;
      if (isNone(a.value)) continue;
      const s = a.value ? rowsSource(model, a.value, a.functionIndex, a.line - 1, 0, resolver) : null;
      if (!s) return null;
      sources.push(s);
    }
    // `self.items += more` / `self.items.extend(...)` add rows from elsewhere.
    for (const g of model.augAssignments) {
      if (g.target !== `self.${name}` || g.functionIndex < 0) continue;
      const owner = classOfFunction(model, g.functionIndex);
      if (owner && family.includes(owner)) return null;
    }
    return merge(sources);
  }

  return resolver;
}

/**
 * `*self.opts` in a source's text, resolved for a `self` of `cls`: the values its MRO and its
 * subclasses in the file give the name (class-level or instance assignments). Null when one of
 * them cannot be read (a method call, a name the file does not assign): the options are unknown.
 */
export function selfOptionsText(model: FileModel, cls: string | null, text: string): string | null {
  const refs = [...text.matchAll(/\*\s*self\.(\w+)(\s*\()?/g)];
  if (!refs.length) return '';
  if (!cls) return null;
  const ix = classIndex(model);
  const parts: string[] = [];
  for (const m of refs) {
    if (m[2]) return null;
    const name = m[1]!;
    const values: string[] = [];
    const first = mroOf(ix, cls).find((c) => ix.byName.get(c)?.attrs.has(name));
    const assigned: AssignmentInfo[] = [];
    for (const c of [...(first ? [first] : []), ...descendantsOf(ix, cls)]) assigned.push(...(ix.byName.get(c)?.attrs.get(name) ?? []));
    const family = familyOf(ix, cls);
    for (const a of assignmentsTo(model, `self.${name}`)) {
      const owner = a.functionIndex >= 0 ? classOfFunction(model, a.functionIndex) : null;
      if (owner && family.includes(owner)) assigned.push(a);
    }
    if (!assigned.length) return null;
    for (const a of assigned) {
      const value = unwrap(a.value);
      // A literal tuple or list of options is read; a name or a call built elsewhere is not.
      const items = value && (value.type === 'tuple' || value.type === 'list') ? value.namedChildren : value ? [value] : [];
      if (!value || items.some((i) => i.type !== 'call' || !LOADER_CALL.test(i.text))) return null;
      parts.push(value.text);
    }
  }
  return parts.join(' ');
}

/** A loader option written out (`joinedload('user')`, `orm.selectinload(A.b).joinedload(...)`). */
const LOADER_CALL = /^(\w+\.)*(selectinload|joinedload|subqueryload|immediateload|contains_eager|raiseload|noload|defaultload|lazyload|undefer|undefer_group|defer|load_only|with_expression)\s*\(/;
