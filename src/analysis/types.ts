/**
 * Receiver types in the repo phase: the type paths the workers wrote (`@app.repo.UserRepo`,
 * `app.svc.get_service()`, `Depends(app.deps.get_repo)`, `^app.svc.Service.repo`) resolved to
 * the repo's classes and functions, with inheritance. Lightweight by design — no type checker:
 * a path resolves when syntax and the project's own definitions say what it is, else not at all.
 *
 * - `@Q` and `^Q`: an instance of class Q (`^` is `self`'s class, written by the class itself).
 * - `Q()`: an instance when Q is a class, what Q returns when it is a function (its return
 *   annotation, its yielded value, or its first returned value: `SummaryFunction.returns`).
 * - `Depends(Q)`: what the provider Q yields or returns.
 * - `.x` on an instance: the attribute's type (`self.x = …`, class annotations, fields), a
 *   property's value, or a bound method; on a class, a classmethod or a class attribute.
 * - a module-level name of another file: its exported type path (`settings = Settings()`).
 * Methods are looked up through the bases (depth-first, left to right, as Python's MRO does for
 * the single and simple multiple inheritance real services use).
 */
import type { FileSummary, SummaryFunction } from './summary.js';
import type { SummaryClass } from './objects.js';
import { FN_PROPERTY, FN_STUB, SELF_TYPE } from './objects.js';

export interface ClassRef {
  file: number;
  cls: SummaryClass;
  /** `module.Class`. */
  qualified: string;
}

export type TypeValue =
  | { kind: 'instance'; cls: ClassRef }
  | { kind: 'class'; cls: ClassRef }
  | { kind: 'function'; file: number; fn: number; bound: boolean; owner?: ClassRef };

export interface ModuleLookup {
  files: readonly FileSummary[];
  /** `module.rest` → the file of the longest module prefix and the rest (re-exports followed). */
  resolveModule(qualified: string): { file: number; rest: string } | null;
  /** A module-level function or method of a file by its qualified name (`f`, `Class.m`). */
  topFunction(file: number, qualifiedName: string): number | undefined;
  /** A module-level name's exported type path in a file. */
  exported(file: number, name: string): string | undefined;
  /** The names of the methods a class of a file defines itself. */
  ownMethods(file: number, className: string): string[];
}

const MAX_DEPTH = 12;
/** Flask-SQLAlchemy's declarative model class. */
const FLASK_MODEL = /^flask_sqlalchemy(\.model)?\.Model$/;

export interface TypeResolver {
  /** What a type path names, or null. */
  resolve(path: string): TypeValue | null;
  /** A class by qualified name. */
  classNamed(qualified: string): ClassRef | null;
  /** The method `name` of a class, through its bases: `[file, function index]`. */
  method(cls: ClassRef, name: string): { file: number; fn: number } | null;
  /** Classes of the repo whose bases include `iface` (at any depth) and that define `name` (not as a stub). */
  implementers(iface: ClassRef, name: string): { file: number; fn: number }[];
  /** Method resolution order, the class first. */
  mro(cls: ClassRef): ClassRef[];
  /** The `@property` getter that reading `path` (`…​.attr`) runs, or null. */
  getter(path: string): { file: number; fn: number } | null;
  /** The method `name` when exactly one class of the repo (tests aside) defines it, not as a stub. */
  uniqueMethod(name: string): { file: number; fn: number } | null;
}

export function typeResolver(ix: ModuleLookup): TypeResolver {
  const classMemo = new Map<string, ClassRef | null>();
  const classesByFile: (Map<string, SummaryClass> | undefined)[] = [];
  const classesOf = (file: number) => (classesByFile[file] ??= new Map((ix.files[file]!.classes ?? []).map((c) => [c.name, c])));

  function classNamed(qualified: string): ClassRef | null {
    let hit = classMemo.get(qualified);
    if (hit !== undefined) return hit;
    hit = null;
    const m = ix.resolveModule(qualified);
    if (m && !m.rest.includes('.')) {
      const cls = classesOf(m.file).get(m.rest);
      if (cls) hit = { file: m.file, cls, qualified: `${ix.files[m.file]!.moduleName}.${cls.name}` };
    }
    classMemo.set(qualified, hit);
    return hit;
  }

  const mroMemo = new Map<string, ClassRef[]>();
  function mro(cls: ClassRef): ClassRef[] {
    const key = cls.qualified;
    const hit = mroMemo.get(key);
    if (hit) return hit;
    mroMemo.set(key, [cls]); // cycles end here
    const out: ClassRef[] = [cls];
    const seen = new Set([key]);
    for (const b of cls.cls.bases) {
      const base = classNamed(b) ?? flaskModelClass(b);
      if (!base) continue;
      for (const c of mro(base)) {
        if (seen.has(c.qualified)) continue;
        seen.add(c.qualified);
        out.push(c);
      }
    }
    mroMemo.set(key, out);
    return out;
  }

  /**
   * Flask-SQLAlchemy builds `db.Model` from the `model_class` it is given: a base `<x>.Model`
   * that names no class of the repo is the project's own subclass of Flask-SQLAlchemy's `Model`
   * when exactly one exists (its classmethods, `get(cls, pk)` and the like, are every model's).
   */
  let flaskModel: ClassRef | null | undefined;
  function flaskModelClass(base: string): ClassRef | null {
    if (!/\.Model$/.test(base) || FLASK_MODEL.test(base)) return null;
    if (flaskModel === undefined) {
      const found: ClassRef[] = [];
      ix.files.forEach((f, file) => {
        if (f.isTestFile) return;
        for (const cls of f.classes ?? []) {
          if (cls.bases.some((b) => FLASK_MODEL.test(b))) found.push({ file, cls, qualified: `${f.moduleName}.${cls.name}` });
        }
      });
      flaskModel = found.length === 1 ? found[0]! : null;
    }
    return flaskModel;
  }

  function method(cls: ClassRef, name: string): { file: number; fn: number } | null {
    for (const c of mro(cls)) {
      const fn = ix.topFunction(c.file, `${c.cls.name}.${name}`);
      if (fn !== undefined) return { file: c.file, fn };
    }
    return null;
  }

  function attrType(cls: ClassRef, attr: string): string | null {
    for (const c of mro(cls)) {
      const t = c.cls.attrs.find(([a]) => a === attr);
      if (t) return t[1];
    }
    return null;
  }

  let subclasses: Map<string, ClassRef[]> | null = null;
  function implementers(iface: ClassRef, name: string): { file: number; fn: number }[] {
    if (!subclasses) {
      subclasses = new Map();
      ix.files.forEach((f, file) => {
        if (f.isTestFile) return;
        for (const cls of f.classes ?? []) {
          const ref: ClassRef = { file, cls, qualified: `${f.moduleName}.${cls.name}` };
          for (const anc of mro(ref).slice(1)) {
            const list = subclasses!.get(anc.qualified);
            if (list) list.push(ref);
            else subclasses!.set(anc.qualified, [ref]);
          }
        }
      });
    }
    const out: { file: number; fn: number }[] = [];
    const seen = new Set<string>();
    const add = (c: ClassRef) => {
      const fn = ix.topFunction(c.file, `${c.cls.name}.${name}`);
      if (fn === undefined || (fnOf(c.file, fn).flags & FN_STUB) !== 0 || seen.has(`${c.file}:${fn}`)) return;
      seen.add(`${c.file}:${fn}`);
      out.push({ file: c.file, fn });
    };
    for (const sub of subclasses.get(iface.qualified) ?? []) add(sub);
    // A Protocol is structural: a class that defines every method it declares implements it.
    if (iface.cls.bases.some((b) => /(^|\.)Protocol(\[|$)/.test(b))) {
      const wanted = ix.ownMethods(iface.file, iface.cls.name);
      if (wanted.length) {
        for (const c of classesDefining(wanted[0]!)) {
          if (c.qualified === iface.qualified) continue;
          const own = new Set(ix.ownMethods(c.file, c.cls.name));
          if (wanted.every((m) => own.has(m))) add(c);
        }
      }
    }
    return out;
  }

  let byMethod: Map<string, ClassRef[]> | null = null;
  /** The classes of the repo (not tests) that define a method of this name themselves. */
  function classesDefining(name: string): ClassRef[] {
    if (!byMethod) {
      byMethod = new Map();
      ix.files.forEach((f, file) => {
        if (f.isTestFile) return;
        for (const cls of f.classes ?? []) {
          const ref: ClassRef = { file, cls, qualified: `${f.moduleName}.${cls.name}` };
          for (const m of ix.ownMethods(file, cls.name)) {
            const list = byMethod!.get(m);
            if (list) list.push(ref);
            else byMethod!.set(m, [ref]);
          }
        }
      });
    }
    return byMethod.get(name) ?? [];
  }

  const fnOf = (file: number, fn: number): SummaryFunction => ix.files[file]!.functions[fn]!;

  /** A name at module level of a file: a class, a function, or an exported value. */
  function moduleName(file: number, name: string, depth: number): TypeValue | null {
    const cls = classesOf(file).get(name);
    if (cls) return { kind: 'class', cls: { file, cls, qualified: `${ix.files[file]!.moduleName}.${name}` } };
    const fn = ix.topFunction(file, name);
    if (fn !== undefined) return { kind: 'function', file, fn, bound: false };
    const t = ix.exported(file, name);
    if (t && !t.startsWith('=>')) return resolvePath(t, depth + 1);
    return null;
  }

  function callOf(v: TypeValue, depth: number): TypeValue | null {
    if (v.kind === 'class') return { kind: 'instance', cls: v.cls };
    if (v.kind === 'function') {
      const r = fnOf(v.file, v.fn).returns;
      // `-> Self` / `return cls(...)`: an instance of the class the method was reached through
      // (`OrderRepository.from_session(s)` gives an `OrderRepository`, not the base's type).
      if (r === SELF_TYPE) return v.owner ? { kind: 'instance', cls: v.owner } : null;
      return r ? resolvePath(r, depth + 1) : null;
    }
    return null;
  }

  function attributeOf(v: TypeValue, attr: string, depth: number): TypeValue | null {
    if (v.kind === 'function') return null;
    const m = method(v.cls, attr);
    if (m) {
      if (v.kind === 'instance' && (fnOf(m.file, m.fn).flags & FN_PROPERTY) !== 0) {
        const r = fnOf(m.file, m.fn).returns;
        return r ? resolvePath(r, depth + 1) : null;
      }
      return { kind: 'function', file: m.file, fn: m.fn, bound: true, owner: v.cls };
    }
    const t = attrType(v.cls, attr);
    return t ? resolvePath(t, depth + 1) : null;
  }

  const pathMemo = new Map<string, TypeValue | null>();
  function resolvePath(path: string, depth = 0): TypeValue | null {
    if (depth > MAX_DEPTH) return null;
    const hit = pathMemo.get(path);
    if (hit !== undefined) return hit;
    pathMemo.set(path, null); // a path that refers to itself resolves to nothing
    const v = resolveUncached(path, depth);
    pathMemo.set(path, v);
    return v;
  }

  function resolveUncached(path: string, depth: number): TypeValue | null {
    let rest = path;
    let instance = false;
    let provider = false;
    if (rest.startsWith('@') || rest.startsWith('^')) {
      instance = true;
      rest = rest.slice(1);
    } else if (rest.startsWith('Depends(')) {
      const close = rest.indexOf(')');
      if (close < 0) return null;
      provider = true;
      rest = rest.slice('Depends('.length, close) + rest.slice(close + 1);
    }
    const m = /^[A-Za-z_][\w.]*/.exec(rest);
    if (!m) return null;
    const dotted = m[0];
    const ops = rest.slice(dotted.length);
    const mod = ix.resolveModule(dotted);
    if (!mod) return null;
    const parts = mod.rest.split('.');
    let v = moduleName(mod.file, parts[0]!, depth);
    // `@a.B.c` / `^a.B.c`: an instance of the class the dotted name reaches, then its attributes.
    let made = false;
    for (let i = 1; v && i <= parts.length; i++) {
      if (instance && !made && v.kind === 'class' && (i === parts.length || !classesOf(v.cls.file).has(parts[i]!))) {
        v = { kind: 'instance', cls: v.cls };
        made = true;
      }
      if (i < parts.length) v = attributeOf(v, parts[i]!, depth);
    }
    if (!v) return null;
    if (provider) v = callOf(v, depth);
    // The operations after the head: `()` calls and `.x` attributes.
    const re = /\(\)|\.([A-Za-z_]\w*)/y;
    let i = 0;
    while (v && i < ops.length) {
      re.lastIndex = i;
      const op = re.exec(ops);
      if (!op) return null;
      i = re.lastIndex;
      v = op[1] ? attributeOf(v, op[1], depth) : callOf(v, depth);
    }
    return v;
  }

  function getter(path: string): { file: number; fn: number } | null {
    const dot = path.lastIndexOf('.');
    if (dot <= 0) return null;
    const owner = resolvePath(path.slice(0, dot));
    if (owner?.kind !== 'instance') return null;
    const m = method(owner.cls, path.slice(dot + 1));
    return m && (fnOf(m.file, m.fn).flags & FN_PROPERTY) !== 0 ? m : null;
  }

  function uniqueMethod(name: string): { file: number; fn: number } | null {
    if (name.startsWith('_') && name.endsWith('__')) return null;
    const defining = classesDefining(name);
    if (defining.length !== 1) return null;
    const c = defining[0]!;
    const fn = ix.topFunction(c.file, `${c.cls.name}.${name}`);
    return fn === undefined || (fnOf(c.file, fn).flags & FN_STUB) !== 0 ? null : { file: c.file, fn };
  }

  return { resolve: (p) => resolvePath(p), classNamed, method, implementers, mro, getter, uniqueMethod };
}
