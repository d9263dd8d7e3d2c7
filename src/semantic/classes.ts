/**
 * The classes of one file as the call graph needs them: their bases (resolved through imports),
 * and what type each attribute holds — `self.repo = UserRepo(session)` in any method,
 * `repo: UserRepo` at class level (dataclass, attrs and pydantic fields), `repo = UserRepo()` at
 * class level — as type paths (`valueTypes.ts`). Methods, properties and their return types are
 * the functions' own facts. Classes defined inside functions are local and left out.
 */
import type { FileModel } from './model.js';
import { resolveName } from './model.js';
import { annotationType, typeString } from './valueTypes.js';
import { insideNestedFunction } from './controlFlow.js';

export interface ClassInfo {
  /** The class name as method qualified names use it (`Service` for `Service.run`). */
  name: string;
  /** Base classes, qualified where imports tell (`app.base.Repository`, `typing.Protocol`). */
  bases: string[];
  /** Attribute → type path, for the attributes whose type syntax tells. */
  attrs: Map<string, string>;
  /** Every name the class body binds itself (`query = ""`, `opts: tuple = (...)`), typed or not. */
  names: Set<string>;
  /** A `typing.Protocol` or an ABC: calls on it reach the classes that implement it. */
  isInterface: boolean;
  /**
   * Qualified base → its one type argument, qualified (`…RepositoryService` → `app.models.Team`
   * for `RepositoryService[m.Team]`): what a generic base is specialised with.
   */
  typeArgs: Map<string, string>;
  line: number;
}

const INTERFACE_BASES = /^(typing\.Protocol|typing_extensions\.Protocol|abc\.ABC|Protocol|ABC)$|^(typing|typing_extensions)\.Protocol\[/;

const classesMemo = new WeakMap<FileModel, ClassInfo[]>();

/** The module-level (and nested-in-class) classes of the file, in document order. */
export function fileClasses(model: FileModel): ClassInfo[] {
  let out = classesMemo.get(model);
  if (!out) classesMemo.set(model, (out = readClasses(model)));
  return out;
}

function readClasses(model: FileModel): ClassInfo[] {
  const out: ClassInfo[] = [];
  if (!model.classes.length) return out;
  const byName = new Map<string, ClassInfo>();
  const ranges: { info: ClassInfo; start: number; end: number }[] = [];
  for (const node of model.classes) {
    if (insideNestedFunction(node)) continue;
    const name = node.childForFieldName('name')?.text;
    if (!name) continue;
    const bases: string[] = [];
    const typeArgs = new Map<string, string>();
    let isInterface = false;
    for (const arg of node.childForFieldName('superclasses')?.namedChildren ?? []) {
      if (arg.type === 'keyword_argument') {
        if (arg.childForFieldName('name')?.text === 'metaclass' && /ABCMeta$/.test(arg.childForFieldName('value')?.text ?? '')) isInterface = true;
        continue;
      }
      const text = arg.text.replace(/\s+/g, '');
      const head = text.replace(/\[.*$/s, '');
      if (!/^[A-Za-z_][\w.]*$/.test(head)) continue;
      const q = resolveName(model, head) ?? head;
      if (INTERFACE_BASES.test(q) || INTERFACE_BASES.test(text)) isInterface = true;
      bases.push(q);
      const typeArg = /^[^[]+\[([A-Za-z_][\w.]*)(?:,[^[\]]*)?\]$/.exec(text)?.[1];
      if (typeArg) typeArgs.set(q, resolveName(model, typeArg) ?? `${model.moduleName}.${typeArg}`);
    }
    const info: ClassInfo = { name, bases, attrs: new Map(), names: new Set(), isInterface, typeArgs, line: node.startPosition.row + 1 };
    out.push(info);
    byName.set(name, info);
    ranges.push({ info, start: node.startIndex, end: node.endIndex });
  }
  if (!out.length) return out;
  // Class-level bindings: assignments outside functions that lie inside a class body.
  for (const a of model.assignments) {
    if (a.functionIndex >= 0 || a.fromWith || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
    const at = a.node.startIndex;
    let owner: ClassInfo | null = null;
    for (const r of ranges) if (at >= r.start && at < r.end) owner = r.info; // later = deeper
    if (!owner) continue;
    owner.names.add(a.target);
    if (owner.attrs.has(a.target)) continue;
    const t = a.annotation ? annotationType(model, a.annotation) : typeString(model, a.value, -1, a.line - 1);
    // `commit: Any` says nothing: what `__init__` binds to it does.
    if (t && !UNTYPED_ANNOTATION.test(t)) owner.attrs.set(a.target, t);
  }
  // `self.x = …` in the class's methods (an annotation wins over a value).
  for (const a of model.assignments) {
    if (a.functionIndex < 0 || !a.target.startsWith('self.')) continue;
    const attr = a.target.slice(5);
    if (!/^[A-Za-z_]\w*$/.test(attr)) continue;
    const cls = classOfFunction(model, a.functionIndex);
    const info = cls ? byName.get(cls) : undefined;
    if (!info || (info.attrs.has(attr) && !a.annotation)) continue;
    const t = a.annotation ? annotationType(model, a.annotation) : typeString(model, a.value, a.functionIndex, a.line - 1);
    if (t) info.attrs.set(attr, t);
  }
  return out;
}

/** Annotations that type nothing. */
const UNTYPED_ANNOTATION = /^@?(typing\.)?(Any|object)$/;

/** The class whose method (or a def nested in one) the function is. */
export function classOfFunction(model: FileModel, fnIndex: number): string | null {
  for (let i = fnIndex; i >= 0; i = model.functions[i]!.parent) {
    const fn = model.functions[i]!;
    if (fn.className) return fn.parent < 0 ? fn.className : null;
  }
  return null;
}
