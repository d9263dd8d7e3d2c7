/**
 * The repo-wide call graph, built from file summaries only (no syntax trees): call sites are
 * resolved to same-repo functions through imports (`from app.storage import save_blob`,
 * `import app.storage as st`), `self.method()` / `cls.method()` inside a class, nested defs and
 * module-level functions; then function effects (blocking I/O, sleeps, sync DB, CPU work, …)
 * are propagated from callee to caller to a fixpoint, keeping for every function and effect
 * kind the shortest chain that reaches it.
 *
 * Propagation has two modes:
 * - `sync`: only through calls that run the callee's body right here — not awaited, not handed
 *   to a thread, callee not `async def`. This is what "blocks the event loop" means: an awaited
 *   coroutine that blocks is reported in that coroutine itself.
 * - `any`: also through awaited calls of `async def` functions (for "this loop runs a query per
 *   iteration through a helper").
 *
 * Cycles and recursion are safe (breadth-first search, each function is visited once per kind);
 * unresolved calls are simply not edges.
 */
import type { Effect, FileSummary, RepoIndex, SummaryCall, SummaryFunction } from './summary.js';
import type { ChainStep as LocatedStep } from '../types.js';
import { ATTRIBUTE_READ, FN_STUB, UNTYPED, type ParamUse, type SummaryRef } from './objects.js';
import { typeResolver, type ClassRef, type TypeValue } from './types.js';
import { resolveHandle, isBlockingDbMethod, handleMethodLabel, type HandleResult, type NameLookup } from '../semantic/db.js';
import { blockingMethod, isCheapMetadata, isSingleFileOp } from '../semantic/blockingIo.js';
import { flagAtCall, SWITCH_GUARD } from '../semantic/guards.js';
import { passedStatementEffects, PASSES_STATEMENT, type StatementFlowGraph } from './statementFlow.js';
import { HANDED_ARG, HEAVY_IO, IMPORTED_ITERABLE, OTHER_BLOCKING, REGISTRY_PACKAGE, SPAWNS_ARG, SWITCH_OFF, SWITCH_ON } from './effects.js';

/** A function of the repo: file index in `index.files`, function index in that file. */
export interface FnRef {
  file: number;
  fn: number;
}

export interface CallEdge {
  from: FnRef;
  to: FnRef;
  /** The call site in `from`'s file. */
  call: SummaryCall;
  /** Runs the callee's body synchronously on the caller's thread. */
  sync: boolean;
  /** Resolved by the method's name alone (the receiver's type unknown): a lower-confidence edge. */
  weak?: boolean;
  /**
   * The callee is a coroutine function whose coroutine this call starts as a task nobody here
   * waits for (`asyncio.create_task(f())`, or handed to a function of the repo that does:
   * `fire_and_forget(f())`): its body runs beside the caller, not as part of it.
   */
  detached?: boolean;
}

/** One step of a chain: the call made in a function towards the effect. */
export interface ChainStep {
  fn: FnRef;
  /** The call that leads on, or null at the function that has the effect itself. */
  call: SummaryCall | null;
}

export interface Reach {
  kind: string;
  /** The effect at the end of the chain. */
  effect: Effect;
  /** From the function asked about to the function that has the effect, inclusive. */
  steps: ChainStep[];
  /** Some step was resolved by a method's name alone: rules report it one severity lower. */
  weak: boolean;
}

export type PropagationMode = 'sync' | 'any';

/**
 * Does the call (a site of `ref`) sit in a loop over a handful of constants another module
 * declares (`for s in DEFAULT_SEVERITIES:`, see `IMPORTED_ITERABLE`)?
 */
export function overImportedConstants(graph: CallGraph, ref: FnRef, call: { line: number; column: number }): boolean {
  return graph.ownEffects(ref).some((e) => e.kind === IMPORTED_ITERABLE && e.line === call.line && e.column === call.column && graph.smallConstant(e.what));
}

export interface CallGraph {
  readonly index: RepoIndex;
  /** The repo function a call site in `file` calls, or null. */
  resolveCall(file: number, call: SummaryCall): FnRef | null;
  /**
   * The first call of file `file` (an index in `index.files`) that starts at `line`:`column`. A
   * summary keeps only the calls that may be edges and those of pending effects and of
   * the collectors' site kinds (`EffectCollector.siteKinds`): look up no other effect's call.
   */
  callAt(file: number, line: number, column: number): SummaryCall | undefined;
  /**
   * The call at a position that resolves to a repo function, with its target: `callAt`'s call,
   * else another call starting there — the function whose result a method is chained on
   * (`helper(x).all()` and `helper(x)` start together; only the inner one is the repo's).
   */
  resolvedCallAt(file: number, line: number, column: number): { call: SummaryCall; to: FnRef } | null;
  /** A qualified name (`app.storage.save_blob`, `app.svc.Service.run`) to a repo function. */
  resolveQualified(qualified: string): FnRef | null;
  /**
   * The repo module a qualified name (`app.schemas.users_schema`) lives in and the rest of the
   * name there (`users_schema`), re-exports of a package's `__init__` followed; null outside the repo.
   */
  locate(qualified: string): { file: number; rest: string } | null;
  /**
   * Is the qualified name (`app.config.DEFAULT_ROLES`) a module-level constant of a repo module
   * holding a handful of literal items (`FileSummary.smallConstants`), also re-exported once?
   */
  smallConstant(qualified: string): boolean;
  function(ref: FnRef): SummaryFunction;
  fileOf(ref: FnRef): FileSummary;
  /** Outgoing edges of a function, in source order. */
  callees(ref: FnRef): readonly CallEdge[];
  callers(ref: FnRef): readonly CallEdge[];
  /** The function's own effects (pending DB effects already decided). */
  ownEffects(ref: FnRef): Effect[];
  /** For each effect kind the function has or reaches: the shortest chain. */
  effectsOf(ref: FnRef, mode?: PropagationMode): Map<string, Reach>;
  /** `effectsOf(ref, mode).get(kind)` without building the chains of the other kinds. */
  effectOf(ref: FnRef, kind: string, mode?: PropagationMode): Reach | undefined;
  /** Does the function have or reach an effect of `kind` (no chain built)? */
  reaches(ref: FnRef, kind: string, mode?: PropagationMode): boolean;
  /**
   * What calling `to` from `call` (a call site of `from`) reaches: `effectsOf(to)` without what
   * only runs in a branch of `to` guarded by a flag parameter this call leaves at its falsy
   * default (`def f(x, deep=False): if deep: ...` called as `f(x)`).
   */
  effectsOfCall(from: FnRef, call: SummaryCall, to: FnRef, mode?: PropagationMode): Map<string, Reach>;
  /** `effectsOfCall(from, call, to, mode).get(kind)` without building the chains of the other kinds. */
  effectOfCall(from: FnRef, call: SummaryCall, to: FnRef, kind: string, mode?: PropagationMode): Reach | undefined;
  /** Display names along a chain, ending with what the effect calls: `["upload", "save_blob", "open"]`. */
  chainNames(reach: Reach): string[];
  /**
   * The chain as located steps: `first` (the asking function's call into the chain) and then each
   * function with the call it makes, the last one with the effect itself.
   */
  chainSteps(reach: Reach, first?: { ref: FnRef; call: SummaryCall }): LocatedStep[];
  /** Every function, in file and source order. */
  functions(): Iterable<FnRef>;
  /** The functions with an own effect of one of `kinds`, in file and source order. */
  functionsWithEffects(kinds: ReadonlySet<string>): Iterable<FnRef>;
  /** Every `async def` outside test files, in file and source order. */
  asyncFunctions(): readonly FnRef[];
  /**
   * The method of a base class (of the repo) that a method overrides, or null: a call
   * `self.m()` in the base's code may run the override (dynamic dispatch the graph does not
   * follow as an edge).
   */
  overridden(ref: FnRef): FnRef | null;
  /**
   * The classes of the repo an instance receiver of `call` has, its own class first, then its
   * bases in method resolution order (`self.m()` in a method: the method's class); empty when
   * the receiver's type is unknown or not a repo class. For a call the graph does not resolve,
   * what the bases outside the repo say (a library's inherited method).
   */
  receiverClasses(file: number, call: SummaryCall): readonly ClassRef[];
  /** The class a method (or a def nested in one) belongs to and its bases, in method resolution order; empty for a function. */
  selfClasses(ref: FnRef): readonly ClassRef[];
  /** What a type path names (see types.ts), or null. */
  resolveType(path: string): TypeValue | null;
  /** A class of the repo and its bases of the repo, in method resolution order. */
  classMro(cls: ClassRef): readonly ClassRef[];
}

/** The ways to one kind of effect: each function's first (shortest) way, and its other open ways under flag guards. */
interface KindReach {
  first: Map<number, Reached>;
  alternatives: Map<number, Reached[]>;
}

interface Reached {
  effect: Effect;
  /** The edge to follow on, or null when the effect is the function's own. */
  next: CallEdge | null;
  effectFn: number;
  /** Some edge from here to the effect is weak. */
  weak: boolean;
  /** The callee's way to the effect that `next` leads on to (it may not be the callee's shortest). */
  via?: Reached;
  /** Reached only through a branch under this flag guard of the function (`name@position`). */
  guard?: string;
}

export function buildCallGraph(index: RepoIndex): CallGraph {
  const files = index.files;
  const offsets: number[] = [];
  let total = 0;
  for (const f of files) {
    offsets.push(total);
    total += f.functions.length;
  }
  const idOf = (r: FnRef) => offsets[r.file]! + r.fn;
  const refs: FnRef[] = [];
  files.forEach((f, file) => f.functions.forEach((_, fn) => refs.push({ file, fn })));

  // Modules by name, and by every dotted suffix (a repo scanned from above its package root
  // names `backend/app/db.py` `backend.app.db`, while the code imports `app.db`).
  const byModule = new Map<string, number>();
  const bySuffix = new Map<string, number | -1>();
  files.forEach((f, i) => {
    const name = f.moduleName;
    byModule.set(name, i);
    for (let dot = name.indexOf('.'); dot >= 0; dot = name.indexOf('.', dot + 1)) {
      const suffix = name.slice(dot + 1);
      const seen = bySuffix.get(suffix);
      bySuffix.set(suffix, seen === undefined ? i : seen === i ? i : -1);
    }
  });
  const findModule = (name: string): number | undefined => {
    const exact = byModule.get(name);
    if (exact !== undefined) return exact;
    const s = bySuffix.get(name);
    return s !== undefined && s >= 0 ? s : undefined;
  };

  // Per file, made when a resolution first needs them (most files are never a call's target):
  // top-level functions and methods by qualified name, nested defs by parent, imports, exports.
  const scopes: ({ top: Map<string, number>; nested: Map<string, number> } | undefined)[] = new Array(files.length);
  const scopeOf = (file: number) => {
    let scope = scopes[file];
    if (!scope) {
      scope = { top: new Map(), nested: new Map() };
      files[file]!.functions.forEach((fn, i) => {
        if (fn.parent < 0) scope!.top.set(fn.qualifiedName, i);
        else if (!fn.className) scope!.nested.set(`${fn.parent}:${fn.name}`, i);
      });
      scopes[file] = scope;
    }
    return scope;
  };
  const importMaps: (Map<string, string> | undefined)[] = new Array(files.length);
  const exportMaps: (Map<string, string> | undefined)[] = new Array(files.length);
  const importsOf = (file: number) => (importMaps[file] ??= new Map(files[file]!.imports));
  const exportedOf = (file: number) => (exportMaps[file] ??= new Map(files[file]!.exportedTypes ?? []));

  /** Resolves `module.rest` by trying every split; follows re-exports a few levels. */
  function resolveQualifiedIn(qualified: string, depth: number): { file: number; rest: string } | null {
    if (depth > 4) return null;
    const parts = qualified.split('.');
    for (let k = parts.length - 1; k >= 1; k--) {
      const file = findModule(parts.slice(0, k).join('.'));
      if (file === undefined) continue;
      const rest = parts.slice(k).join('.');
      const head = parts[k]!;
      const reexport = importsOf(file).get(head);
      if (reexport && !scopeOf(file).top.has(rest) && !exportedOf(file).has(head)) {
        const tail = parts.slice(k + 1);
        return resolveQualifiedIn([reexport, ...tail].join('.'), depth + 1);
      }
      return { file, rest };
    }
    return null;
  }

  // The same library names (`sqlalchemy.select`, `builtins.len`) recur in every file: memoise.
  const qualifiedMemo = new Map<string, { file: number; rest: string } | null>();
  const heads = new Set<string>();
  for (const names of [byModule.keys(), bySuffix.keys()]) {
    for (const name of names) {
      const dot = name.indexOf('.');
      heads.add(dot < 0 ? name : name.slice(0, dot));
    }
  }
  function resolveQualifiedCached(qualified: string): { file: number; rest: string } | null {
    let hit = qualifiedMemo.get(qualified);
    if (hit === undefined) {
      const dot = qualified.indexOf('.');
      hit = dot > 0 && heads.has(qualified.slice(0, dot)) ? resolveQualifiedIn(qualified, 0) : null;
      qualifiedMemo.set(qualified, hit);
    }
    return hit;
  }

  function resolveQualified(qualified: string): FnRef | null {
    const hit = resolveQualifiedCached(qualified);
    if (!hit) return null;
    const fn = scopeOf(hit.file).top.get(hit.rest);
    return fn === undefined ? null : { file: hit.file, fn };
  }

  const methodsByClass: (Map<string, string[]> | undefined)[] = new Array(files.length);
  const types = typeResolver({
    files,
    resolveModule: resolveQualifiedCached,
    topFunction: (file, name) => scopeOf(file).top.get(name),
    exported: (file, name) => exportedOf(file).get(name),
    ownMethods: (file, className) => {
      let byClass = methodsByClass[file];
      if (!byClass) {
        byClass = methodsByClass[file] = new Map();
        for (const fn of files[file]!.functions) {
          if (fn.parent >= 0 || !fn.className) continue;
          const list = byClass.get(fn.className);
          if (list) list.push(fn.name);
          else byClass.set(fn.className, [fn.name]);
        }
      }
      return byClass.get(className) ?? [];
    },
  });

  /** The class whose method (not a def nested in one) a function is, as a class of the resolver. */
  function ownClass(file: number, fnIndex: number): ClassRef | null {
    const f = files[file]!;
    let i = fnIndex;
    while (i >= 0 && !f.functions[i]!.className) i = f.functions[i]!.parent;
    if (i < 0 || f.functions[i]!.parent >= 0) return null;
    return types.classNamed(`${f.moduleName}.${f.functions[i]!.className}`);
  }

  /** The methods a call on a value of this type reaches: its class's (through the bases), or an interface's implementers. */
  function methodTargets(v: TypeValue | null, name: string): FnRef[] {
    if (!v || v.kind === 'function') return [];
    const m = types.method(v.cls, name);
    const own = m ? files[m.file]!.functions[m.fn]! : null;
    // A Protocol's or ABC's declaration reaches the project classes that implement it.
    if (v.cls.cls.isInterface && (!own || (own.flags & FN_STUB) !== 0)) {
      const impl = types.implementers(v.cls, name);
      if (impl.length) return impl;
    }
    return m ? [m] : [];
  }

  /** Every repo function a call site runs: a function, a method through the receiver's type, a constructor's `__init__`. */
  function resolveTargets(file: number, call: SummaryCall): FnRef[] {
    const f = files[file]!;
    const text = call.calleeText;
    if (call.named) return namedTargets(file, call.named);
    if (call.functionIndex >= 0 && /^(self|cls)\.[A-Za-z_]\w*$/.test(text)) {
      // The method of the class that encloses the calling method, then its bases.
      let i = call.functionIndex;
      while (i >= 0 && !f.functions[i]!.className) i = f.functions[i]!.parent;
      const cls = i >= 0 ? f.functions[i]!.className : null;
      if (!cls || f.functions[i]!.parent >= 0) return [];
      const fn = scopeOf(file).top.get(`${cls}.${call.method}`);
      if (fn !== undefined) return [{ file, fn }];
      const c = ownClass(file, call.functionIndex);
      return c ? methodTargets({ kind: 'instance', cls: c }, call.method) : [];
    }
    if (/^[A-Za-z_]\w*$/.test(text)) {
      // Python scoping: a def nested in an enclosing function shadows the module-level one.
      for (let i = call.functionIndex; i >= 0; i = f.functions[i]!.parent) {
        const fn = scopeOf(file).nested.get(`${i}:${text}`);
        if (fn !== undefined) return [{ file, fn }];
      }
    }
    if (call.qualifiedName) {
      const fn = resolveQualified(call.qualifiedName);
      if (fn) return [fn];
      // `Cls(...)` runs `Cls.__init__` (and a dataclass's `__post_init__`).
      const cls = types.classNamed(call.qualifiedName);
      if (cls) return constructorTargets(cls);
      // `module.obj.method(...)` on a module-level object of another file.
      const dot = call.qualifiedName.lastIndexOf('.');
      const v = dot > 0 ? types.resolve(call.qualifiedName.slice(0, dot)) : null;
      if (v) return methodTargets(v, call.method);
    }
    if (call.receiverType === UNTYPED) return uniqueMethod(call.method);
    if (call.receiverType) return methodTargets(types.resolve(call.receiverType), call.method);
    return [];
  }

  // Modules by package (`app.actions` → the files of `app.actions.*`), outside tests: made on first use.
  let byPackage: Map<string, number[]> | null = null;
  const packageOf = (moduleName: string) => moduleName.slice(0, Math.max(0, moduleName.lastIndexOf('.')));

  /**
   * `get_handler('order_save')(...)`, where `get_handler` is a repo function that looks a function
   * up by name (a registry of handlers or actions): the module-level function of that name in the
   * caller's own module, else the one in a sibling module of its package (for a registry that
   * loads a package by name and defines no such function there, the one in the caller's package
   * and below: a plugin's own action) — none when the lookup is no function of the repo, or when
   * none or several define the name (a check or a plugin named alike elsewhere in the repo is not
   * what a lookup beside it returns).
   */
  function namedTargets(file: number, [via, name]: [string, string]): FnRef[] {
    const lookup = resolveQualified(via);
    if (!lookup) return [];
    const fnIn = (i: number) => {
      const fn = scopeOf(i).top.get(name);
      return fn !== undefined && !files[i]!.functions[fn]!.className ? fn : undefined;
    };
    const own = fnIn(file);
    if (own !== undefined) return [{ file, fn: own }];
    // A lookup that imports the modules of a package by name (`import_module('.' + part,
    // 'app.actions')`): the one function of that name in that package's modules.
    const registry = registryFiles(lookup);
    if (registry.length) {
      const inRegistry: FnRef[] = [];
      for (const i of registry) {
        const fn = fnIn(i);
        if (fn !== undefined) inRegistry.push({ file: i, fn });
      }
      if (inRegistry.length === 1) return inRegistry;
    }
    if (!byPackage) {
      byPackage = new Map();
      files.forEach((f, i) => {
        if (f.isTestFile) return;
        const pkg = packageOf(f.moduleName);
        const list = byPackage!.get(pkg);
        if (list) list.push(i);
        else byPackage!.set(pkg, [i]);
      });
    }
    const found: FnRef[] = [];
    const pkg = packageOf(files[file]!.moduleName);
    for (const i of byPackage.get(pkg) ?? []) {
      const fn = i === file ? undefined : fnIn(i);
      if (fn !== undefined) found.push({ file: i, fn });
    }
    if (found.length === 1) return found;
    const registryPackages = files[lookup.file]!.functions[lookup.fn]!.effects.filter((e) => e.kind === REGISTRY_PACKAGE).map((e) => e.what);
    // Only from code outside the registry's own tree: another top-level package (a plugin's), not
    // the app that owns the registry (`app.web` for `app.actions`).
    const root = (m: string) => m.split('.')[0]!;
    if (!registry.length || !pkg || registryPackages.some((p) => root(p) === root(pkg)) || root(files[lookup.file]!.moduleName) === root(pkg)) return [];
    found.length = 0;
    // A registry that loads its package by name and takes plugins' additions too: a name it does
    // not define, looked up from a plugin's own code (a package outside the registry's tree), is
    // the plugin's (`get_action("dump_search")` in `plugin/views.py`, defined in
    // `plugin/logic/action.py`): the one function of that name in the caller's package and below,
    // in a module named like the registry's package.
    files.forEach((f, i) => {
      if (f.isTestFile || i === file || !f.moduleName.startsWith(`${pkg}.`)) return;
      const fn = fnIn(i);
      if (fn !== undefined) found.push({ file: i, fn });
    });
    // In a module named like the registry's package (`plugin.logic.action` for `app.logic.action`):
    // an auth check or a helper of the same name elsewhere is not what the registry hands out.
    const lasts = registryPackages.map((p) => p.slice(p.lastIndexOf('.') + 1));
    const named = found.filter((r) => lasts.some((l) => files[r.file]!.moduleName.endsWith(`.${l}`) || files[r.file]!.moduleName.includes(`.${l}.`)));
    return named.length === 1 ? named : [];
  }

  // The files of the packages a lookup function imports by name, once per lookup function.
  const registries = new Map<string, number[]>();
  /**
   * The modules (outside tests) of the packages whose modules `lookup` imports by a computed name
   * (`REGISTRY_PACKAGE`): a package matches on whole dotted segments, so a tree scanned from above
   * its package root (`src.app.actions.x` for `app.actions`) still finds them.
   */
  function registryFiles(lookup: FnRef): number[] {
    const key = `${lookup.file}:${lookup.fn}`;
    let hit = registries.get(key);
    if (hit) return hit;
    const packages = files[lookup.file]!.functions[lookup.fn]!.effects.filter((e) => e.kind === REGISTRY_PACKAGE).map((e) => e.what);
    hit = [];
    if (packages.length) {
      // The package's own modules (`p.x`, one level down: `import_module('.' + part, p)` loads no deeper).
      const child = (m: string, p: string) => m.startsWith(`${p}.`) && !m.includes('.', p.length + 1);
      files.forEach((f, i) => {
        if (!f.isTestFile && packages.some((p) => child(f.moduleName, p))) hit!.push(i);
      });
      // A tree scanned from above the package root (`src.app.actions.x` for `app.actions`): only
      // under the root the lookup's own module sits in, not another service's package of that name.
      if (!hit.length) {
        const own = files[lookup.file]!.moduleName;
        files.forEach((f, i) => {
          if (f.isTestFile) return;
          for (const p of packages) {
            const at = f.moduleName.indexOf(`.${p}.`);
            if (at > 0 && own.startsWith(`${f.moduleName.slice(0, at)}.`) && child(f.moduleName.slice(at + 1), p)) {
              hit!.push(i);
              break;
            }
          }
        });
      }
    }
    registries.set(key, hit);
    return hit;
  }

  /** The method of the one class of the repo that defines `name` (none when several do, or none). */
  function uniqueMethod(name: string): FnRef[] {
    const m = types.uniqueMethod(name);
    return m ? [m] : [];
  }

  function constructorTargets(cls: ClassRef): FnRef[] {
    const out: FnRef[] = [];
    for (const name of ['__init__', '__post_init__']) {
      const m = types.method(cls, name);
      if (m) out.push(m);
    }
    return out;
  }

  function resolveCall(file: number, call: SummaryCall): FnRef | null {
    return resolveTargets(file, call)[0] ?? null;
  }

  /**
   * Edges for a function or bound method passed as a value, by what the taking call does with it:
   * a thread runs it (off the loop: an offloaded edge), the event loop runs it later (a sync
   * edge: it blocks the loop as a call here would), a background task runs it after the
   * response (sync ones in a thread pool), `map`/`sorted` call it right here, and a project
   * function calls it, hands it to a thread or schedules it as its parameter uses say.
   */
  function refEdges(file: number, ref: SummaryRef): { to: FnRef; call: SummaryCall; sync: boolean; weak?: boolean }[] {
    if (ref.consumer === ATTRIBUTE_READ) {
      // Reading a property runs its getter, right here.
      const g = types.getter(ref.target);
      if (!g) return [];
      const callee = files[g.file]!.functions[g.fn]!;
      const call: SummaryCall = {
        calleeText: ref.target.replace(/^[@^]/, ''), qualifiedName: null, method: ref.target.slice(ref.target.lastIndexOf('.') + 1),
        functionIndex: ref.functionIndex, line: ref.line, column: ref.column, endLine: ref.line, endColumn: ref.column,
        awaited: false, offloaded: false, inLoop: false, receiverType: null, withItem: false,
      };
      return [{ to: g, call, sync: !callee.isAsync }];
    }
    const v = types.resolve(ref.target);
    let targets = !v ? [] : v.kind === 'function' ? [{ file: v.file, fn: v.fn }] : v.kind === 'class' ? constructorTargets(v.cls) : [];
    // `self._cache.reload` on an attribute nothing types: the one class that defines `reload`.
    let weak = false;
    if (!v && /^\^.*\..*\./.test(ref.target)) {
      targets = uniqueMethod(ref.target.slice(ref.target.lastIndexOf('.') + 1));
      weak = true;
    }
    if (!targets.length) return [];
    const out: { to: FnRef; call: SummaryCall; sync: boolean; weak: boolean }[] = [];
    const consumer = ref.consumer;
    let use: ParamUse | 'background' | null = null;
    let taker: string | null = null;
    if (OFFLOAD_CONSUMER.test(consumer)) use = 'offload';
    else if (SCHEDULE_CONSUMER.test(consumer)) use = 'schedule';
    else if (BACKGROUND_CONSUMER.test(consumer)) use = 'background';
    else if (CALLING_BUILTINS.test(consumer)) use = 'call';
    else {
      const [line, column] = ref.consumerAt.split(':').map(Number);
      const site = callAt(file, line!, column!);
      for (const t of site ? resolveTargets(file, site) : []) {
        const fn = files[t.file]!.functions[t.fn]!;
        const u = (fn.paramUses ?? []).find(([pos, name]) => (typeof ref.arg === 'number' ? pos === ref.arg : name === ref.arg));
        if (u) {
          use = u[2];
          taker = fn.qualifiedName;
        }
      }
    }
    if (!use) return out;
    for (const to of targets) {
      const callee = files[to.file]!.functions[to.fn]!;
      const offloaded = use === 'offload' || (use === 'background' && !callee.isAsync);
      const call: SummaryCall = {
        calleeText: ref.target.replace(/^[@^]/, ''), qualifiedName: null, method: ref.target.slice(ref.target.lastIndexOf('.') + 1),
        functionIndex: ref.functionIndex, line: ref.line, column: ref.column, endLine: ref.line, endColumn: ref.column,
        awaited: false, offloaded, inLoop: ref.inLoop || use === 'call_loop', receiverType: null, withItem: false,
        ...(use === 'call_loop' && taker ? { perItemIn: taker } : {}),
        ...(use === 'background' ? { background: true } : {}),
      };
      out.push({ to, call, sync: !offloaded && use !== 'background' && !callee.isAsync, weak });
    }
    return out;
  }

  // Effects name their call by position; the rules look many of them up (a linear search per
  // effect was 0.5 s of the repo phase on a 2M-line tree). Keyed by line * 2^26 + column, exact
  // for any line count a file can have; a column past 2^26 (a 64 MB line) is searched for.
  const callsByPosition: (Map<number, SummaryCall> | undefined)[] = [];
  function callAt(file: number, line: number, column: number): SummaryCall | undefined {
    if (column >= POSITION_SPAN) return files[file]!.calls.find((c) => c.line === line && c.column === column);
    let byPos = callsByPosition[file];
    if (!byPos) {
      byPos = new Map();
      for (const c of files[file]!.calls) {
        if (c.column >= POSITION_SPAN) continue;
        const key = c.line * POSITION_SPAN + c.column;
        // `get_handler('x')(...)` and its lookup `get_handler('x')` start together: the site is the outer call's.
        if (!byPos.has(key) || c.named) byPos.set(key, c);
      }
      callsByPosition[file] = byPos;
    }
    return byPos.get(line * POSITION_SPAN + column);
  }

  /** Methods of a query object that run it and return rows or a count. */
  const RUNS_RESULT = /^(all|first|one|one_or_none|scalar|scalars|count|paginate|first_or_404|one_or_404|fetchall|fetchone)$/;
  function resolvedCallAt(file: number, line: number, column: number): { call: SummaryCall; to: FnRef } | null {
    const first = callAt(file, line, column);
    if (!first) return null;
    const to = resolveCall(file, first);
    if (to) return { call: first, to };
    // `helper(x).all()`, `helper(x).filter(...).first()`: the chain runs the query the helper
    // returns. Not a chain that only builds SQL (`.exists()`, `.subquery()`, `.filter(...)` kept
    // for a union), nor a bulk write or a key lookup on it (`.update()`, `.get(pk)`: other claims).
    if (!RUNS_RESULT.test(first.method)) return null;
    // Rare (a chained call): a scan of the file's calls is cheap enough.
    for (const c of files[file]!.calls) {
      if (c === first || c.line !== line || c.column !== column || !first.calleeText.startsWith(`${c.calleeText}(`)) continue;
      const inner = resolveCall(file, c);
      if (inner) return { call: c, to: inner };
    }
    return null;
  }

  // Edges. Most functions call no repo function and none calls them: their lists are made on the
  // first edge (two empty arrays per function were ~480k allocations on a 2M-line tree).
  const out: (CallEdge[] | undefined)[] = new Array(total);
  const incoming: (CallEdge[] | undefined)[] = new Array(total);
  /** Any edge resolved by name alone (else propagation needs no weak pass). */
  let anyWeak = false;
  // Edges hold the one shared ref of each function (`refs`), not the lookup's own copies.
  const addEdge = (fromRef: FnRef, toRef: FnRef, call: SummaryCall, sync: boolean, weak = false) => {
    if (weak) anyWeak = true;
    const fromId = idOf(fromRef);
    const toId = idOf(toRef);
    const from = refs[fromId]!;
    const to = refs[toId]!;
    const edge: CallEdge = weak ? { from, to, call, sync, weak } : { from, to, call, sync };
    (out[fromId] ??= []).push(edge);
    (incoming[toId] ??= []).push(edge);
  };
  files.forEach((f, file) => {
    for (const call of f.calls) {
      if (call.functionIndex < 0) continue;
      const from = refs[offsets[file]! + call.functionIndex]!;
      const targets = resolveTargets(file, call);
      const weak = call.receiverType === UNTYPED;
      for (const to of targets) {
        const callee = files[to.file]!.functions[to.fn]!;
        addEdge(from, to, call, !call.awaited && !call.offloaded && !callee.isAsync, weak);
      }
      // `with Cls() as x:` runs `__enter__` (`async with`: `__aenter__`, awaited) on the value.
      if (call.withItem) {
        const value = targets.length && call.qualifiedName ? types.classNamed(call.qualifiedName) : null;
        const v = value ? { kind: 'instance' as const, cls: value } : call.qualifiedName ? types.resolve(`${call.qualifiedName}()`) : null;
        for (const name of ['__enter__', '__aenter__']) {
          for (const to of methodTargets(v, name)) {
            const callee = files[to.file]!.functions[to.fn]!;
            addEdge(from, to, call, !call.offloaded && !callee.isAsync);
          }
        }
      }
    }
    for (const ref of f.refs ?? []) {
      if (ref.functionIndex < 0) continue;
      for (const e of refEdges(file, ref)) addEdge({ file, fn: ref.functionIndex }, e.to, e.call, e.sync, e.weak);
    }
  });

  // Own effects; DB effects that a file left pending are decided here.
  const lookup: NameLookup = (q) => {
    const hit = resolveQualifiedCached(q);
    if (!hit) return undefined;
    // `module.engine.connect`: the exported `engine`, then the rest as attribute ops.
    const dot = hit.rest.indexOf('.');
    const name = dot >= 0 ? hit.rest.slice(0, dot) : hit.rest;
    const t = exportedOf(hit.file).get(name);
    if (t === undefined) return null;
    if (dot < 0) return t;
    return t.startsWith('=>') ? null : t + hit.rest.slice(dot);
  };
  /**
   * `repo.commit()` where `repo`'s class binds a handle's method to the attribute
   * (`self.commit = session.commit` in `__init__`, kept among the class's attributes): that handle.
   */
  const boundHandleMethodOf = (typePath: string, method: string): HandleResult => {
    const v = types.resolve(typePath);
    if (v?.kind !== 'instance') return null;
    for (const c of types.mro(v.cls)) {
      const t = c.cls.attrs.find(([name]) => name === method)?.[1];
      if (t === undefined) continue;
      return t.endsWith(`.${method}`) ? resolveHandle(t.slice(0, -method.length - 1), lookup) : null;
    }
    return null;
  };
  // Statements handed to a function that executes them (analysis/statementFlow.ts): a query or
  // write of the call that hands them over.
  const flow: StatementFlowGraph = {
    effectsOf: (id) => { const r = refs[id]!; return files[r.file]!.functions[r.fn]!.effects; },
    calleeAt: (id, line, column) => {
      const edge = (out[id] ?? NO_EDGES).find((e) => !e.weak && e.call.line === line && e.call.column === column);
      return edge ? idOf(edge.to) : undefined;
    },
  };
  const own: Effect[][] = refs.map((r) => {
    let effects = files[r.file]!.functions[r.fn]!.effects;
    if (effects.some((e) => e.kind === PASSES_STATEMENT)) effects = [...effects, ...passedStatementEffects(flow, idOf(r))];
    if (!effects.some((e) => e.pending)) return effects;
    const decided: Effect[] = [];
    for (const e of effects) {
      if (!e.pending) {
        decided.push(e);
        continue;
      }
      if (e.kind === 'blocking_io' && e.pending.typePath.startsWith(HANDED_ARG)) {
        // `timed(requests.head, url)`: blocks here when the callee calls that parameter itself.
        const position = Number(e.pending.typePath.slice(HANDED_ARG.length));
        const calls = (out[idOf(r)] ?? NO_EDGES).some((edge) => {
          if (edge.call.line !== e.line || edge.call.column !== e.column || edge.weak) return false;
          const uses = files[edge.to.file]!.functions[edge.to.fn]!.paramUses ?? [];
          return uses.some(([pos, , use]) => pos === position && (use === 'call' || use === 'call_loop'));
        });
        if (calls) decided.push({ kind: e.kind, what: e.what, line: e.line, column: e.column, pending: e.pending });
        continue;
      }
      if (e.kind === 'blocking_io' || e.kind === HEAVY_IO || e.kind === OTHER_BLOCKING) {
        // A module-level object of another file: `SOCKET = Path(...)`, `client = httpx.Client()`.
        const t = lookup(e.pending.typePath);
        const what = typeof t === 'string' ? blockingMethod(t, e.pending.method) : null;
        if (!what) continue;
        // As the file phase rates a call it can type: a metadata call (`LOCK.exists()`) is not
        // heavy, and one local file opened or read once is not "other" blocking.
        if (e.kind === HEAVY_IO && isCheapMetadata(what)) continue;
        if (e.kind === OTHER_BLOCKING && (isCheapMetadata(what) || isSingleFileOp(what))) continue;
        decided.push({ kind: e.kind, what, line: e.line, column: e.column, pending: e.pending });
        continue;
      }
      let h = resolveHandle(e.pending.typePath, lookup);
      if (h?.kind !== 'handle') h = boundHandleMethodOf(e.pending.typePath, e.pending.method) ?? h;
      if (e.kind !== 'sync_db') {
        // Another kind of DB effect (a transaction's `commit`): the call is that handle's method.
        if (h?.kind === 'handle') decided.push(e);
      } else if (h?.kind === 'handle' && h.state !== 'async' && isBlockingDbMethod(h.state, e.pending.method)) {
        decided.push({ kind: e.kind, what: handleMethodLabel(h.state, h.label, e.pending.method), line: e.line, column: e.column, pending: e.pending });
      }
    }
    return decided;
  });

  /**
   * Edges into a coroutine function whose coroutine is started as a task and not waited for:
   * `asyncio.create_task(f())` itself (`spawned`), or a coroutine handed, not awaited, to a call
   * of a repo function that starts that parameter as a task (`fire_and_forget(f())`, see
   * `SPAWNS_ARG`). The enclosing call is the innermost kept call of the same function around it.
   */
  function markDetached(): void {
    const spawners = new Set(idsByKind().get(SPAWNS_ARG) ?? []);
    for (const edges of out) {
      for (const edge of edges ?? NO_EDGES) {
        const call = edge.call;
        if (call.awaited || !files[edge.to.file]!.functions[edge.to.fn]!.isAsync) continue;
        if (call.spawned) {
          edge.detached = true;
          continue;
        }
        if (!call.handedOn || !spawners.size) continue;
        const outer = enclosingCall(edge.from.file, call);
        if (outer && resolveTargets(edge.from.file, outer).some((t) => spawners.has(idOf(t)))) edge.detached = true;
      }
    }
  }

  /** The innermost call of the file's summary, in the same function, whose span holds `call`'s. */
  function enclosingCall(file: number, call: SummaryCall): SummaryCall | null {
    let best: SummaryCall | null = null;
    const starts = (a: SummaryCall, l: number, c: number) => a.line < l || (a.line === l && a.column <= c);
    const ends = (a: SummaryCall, l: number, c: number) => a.endLine > l || (a.endLine === l && a.endColumn >= c);
    for (const c of files[file]!.calls) {
      if (c === call || c.functionIndex !== call.functionIndex) continue;
      if (!starts(c, call.line, call.column) || !ends(c, call.endLine, call.endColumn)) continue;
      if (c.line === call.line && c.column === call.column) continue;
      if (!best || starts(best, c.line, c.column)) best = c;
    }
    return best;
  }

  // The functions with an own effect of each kind, ascending, in the order kinds first occur.
  // Propagation seeds from it and the rules that start from a kind of effect use it: a walk of
  // every function per kind was 0.5 s of the repo phase on a 2M-line tree.
  let byKind: Map<string, number[]> | null = null;
  function idsByKind(): Map<string, number[]> {
    if (!byKind) {
      byKind = new Map();
      own.forEach((effects, id) => {
        for (const e of effects) {
          let ids = byKind!.get(e.kind);
          if (!ids) byKind!.set(e.kind, (ids = []));
          if (ids[ids.length - 1] !== id) ids.push(id);
        }
      });
    }
    return byKind;
  }
  markDetached();

  // Breadth-first from the functions that have an effect, backwards along edges: the first
  // visit of a function is along a shortest chain. Computed lazily per mode and kind: the event-loop
  // rules ask the synchronous reach of four kinds only, and propagating all twenty kinds with them
  // held 90 MB of a generated 2M-line tree's repo phase (a function's first way per kind is kept
  // for every function that reaches it).
  //
  // Flag guards (`if allow_email: <query>` where `allow_email=False`): an edge whose call leaves
  // the flag off does not carry what the callee reaches only under it. A function reached under
  // a guard keeps, besides its first (shortest) way, one way per other guard and an unguarded
  // one when there is, in `alternatives`: a caller the first way is closed to may take another.
  const reachByModeKind = new Map<string, KindReach | null>();
  function propagate(mode: PropagationMode, kind: string): KindReach | null {
    const key = `${mode}\0${kind}`;
    const cached = reachByModeKind.get(key);
    if (cached !== undefined) return cached;
    const ids = UNPROPAGATED.has(kind) ? undefined : idsByKind().get(kind);
    if (!ids) {
      reachByModeKind.set(key, null);
      return null;
    }
    // A function's entry is made when it first reaches the effect.
    const first = new Map<number, Reached>();
    const alternatives = new Map<number, Reached[]>();
    /** Records a way of `id` to the kind; true when it is new (a first way, or one with a guard not yet kept). */
    const addWay = (id: number, way: Reached): boolean => {
      const got = first.get(id);
      if (!got) {
        first.set(id, way);
        return true;
      }
      const ways = alternatives.get(id) ?? [got];
      // An unguarded way is open to every caller: nothing after it is needed.
      if (ways.some((w) => w.guard === undefined || w.guard === way.guard)) return false;
      alternatives.set(id, [...ways, way]);
      return true;
    };
    const reached: [number, Reached][] = [];
    const seed = (id: number, e: Effect) => {
      const way: Reached = e.guard !== undefined ? { effect: e, next: null, effectFn: id, weak: false, guard: e.guard } : { effect: e, next: null, effectFn: id, weak: false };
      if (addWay(id, way)) reached.push([id, way]);
    };
    for (const id of ids) {
      // Unguarded effects first: the first way is the one open to every caller when there is one.
      let guarded = false;
      for (const e of own[id]!) {
        if (e.kind !== kind) continue;
        if (e.guard !== undefined) guarded = true;
        else {
          seed(id, e);
          break;
        }
      }
      if (guarded) for (const e of own[id]!) if (e.kind === kind && e.guard !== undefined) seed(id, e);
    }
    // Strong edges first, so a function that reaches the effect through typed calls gets that
    // chain even when a call resolved by name alone is shorter; then the weak edges, from
    // everything reached so far.
    // `onlyWeak`: the first frontier of the weak pass is everything the strong pass reached,
    // whose strong edges lead nowhere new.
    const spread = (frontier: [number, Reached][], withWeak: boolean, onlyWeak: boolean) => {
      while (frontier.length) {
        const next: [number, Reached][] = [];
        for (const [id, got] of frontier) {
          for (const edge of incoming[id] ?? NO_EDGES) {
            if (!edge.sync && !(mode === 'any' && !edge.call.offloaded && !edge.detached)) continue;
            if (edge.weak ? !withWeak : onlyWeak) continue;
            // A memoised call (or a call under a cache guard) runs once: its effects are not the caller's per call.
            if (edge.call.memoised) continue;
            // The callee's guarded branch: closed by a call that leaves the flag off; a call that
            // passes its own function's flag on (`inner(x, include=include)`) leaves that flag
            // to decide, one caller up.
            const flag = got.guard !== undefined ? flagAtCall(edge.call.passes, got.guard) : 'on';
            if (flag === 'off') continue;
            const caller = idOf(edge.from);
            const way: Reached = { effect: got.effect, next: edge, effectFn: got.effectFn, weak: got.weak || edge.weak === true, via: got };
            if (edge.call.guard !== undefined) way.guard = edge.call.guard;
            else if (flag !== 'on') way.guard = flag.forwards;
            if (!addWay(caller, way)) continue;
            next.push([caller, way]);
            reached.push([caller, way]);
          }
        }
        frontier = next;
        onlyWeak = false;
      }
    };
    spread([...reached], false, false);
    if (anyWeak) spread([...reached], true, true);
    const result = { first, alternatives };
    reachByModeKind.set(key, result);
    return result;
  }

  /** The propagated kinds, in the order they first occur. */
  let kindsPropagated: string[] | null = null;
  function propagatedKinds(): string[] {
    return (kindsPropagated ??= [...idsByKind().keys()].filter((k) => !UNPROPAGATED.has(k)));
  }

  /** The located chain of a way: from `ref` along the ways each step leads on to. */
  function reachOf(ref: FnRef, kind: string, first: Reached): Reach {
    const steps: ChainStep[] = [];
    let id = idOf(ref);
    let cur: Reached | undefined = first;
    const seen = new Set<number>();
    while (cur && !seen.has(id)) {
      seen.add(id);
      steps.push({ fn: refs[id]!, call: cur.next?.call ?? null });
      if (!cur.next) break;
      id = idOf(cur.next.to);
      cur = cur.via;
    }
    return { kind, effect: first.effect, steps, weak: first.weak };
  }

  function effectsOf(ref: FnRef, mode: PropagationMode = 'sync'): Map<string, Reach> {
    const id = idOf(ref);
    const result = new Map<string, Reach>();
    for (const kind of propagatedKinds()) {
      const way = propagate(mode, kind)?.first.get(id);
      if (way) result.set(kind, reachOf(ref, kind, way));
    }
    return result;
  }

  function effectOf(ref: FnRef, kind: string, mode: PropagationMode = 'sync'): Reach | undefined {
    const way = propagate(mode, kind)?.first.get(idOf(ref));
    return way ? reachOf(ref, kind, way) : undefined;
  }

  function reaches(ref: FnRef, kind: string, mode: PropagationMode = 'sync'): boolean {
    return propagate(mode, kind)?.first.has(idOf(ref)) ?? false;
  }

  /**
   * Does a caller of `from` (outside tests) turn on `from`'s own flag `guard`? True when none is
   * known (the function may be called from anywhere) or one passes it, or passes it on again.
   */
  function callersTurnOn(from: FnRef, guard: string, atLine = Infinity): boolean {
    // A runtime switch: the branch under it is closed where the caller's context turned it off
    // first; the branch that runs while it is off (`-`) stays open (the switch is on by default
    // as often as not, and nothing here says it was turned on).
    if (guard.includes(SWITCH_GUARD)) return guard.endsWith('-') || !switchedOff(from, guard.slice(0, guard.indexOf(SWITCH_GUARD)), atLine);
    const callers = (incoming[idOf(from)] ?? NO_EDGES).filter((e) => !files[e.from.file]!.isTestFile);
    return !callers.length || callers.some((e) => flagAtCall(e.call.passes, guard) !== 'off');
  }

  /**
   * Has the context of `from` turned the runtime switch `name` (`Cls.attr`) off before its call
   * on line `atLine`? Its context: the function itself, before that line, and its class's
   * `__init__`, and what those call unconditionally, two calls deep (`Sim.__init__` calls
   * `disable_db()`, which sets `Locks.use_db = False`; `with NoDb():` runs an `__enter__` that
   * does); the last turning before the call decides (`SWITCH_OFF`/`SWITCH_ON`, effects.ts, each on
   * every run of its function only): one turned off
   * under a condition, or turned back on after, leaves the branch open.
   */
  const switchedOffMemo = new Map<string, boolean>();
  function switchedOff(from: FnRef, name: string, atLine: number): boolean {
    const key = `${idOf(from)}\0${name}\0${atLine}`;
    let got = switchedOffMemo.get(key);
    if (got !== undefined) return got;
    /**
     * The switch's state when function `id` has run up to `limit` (its last turning, itself or
     * through a call that always runs, `depth` calls deep at most): 'off', 'on', or null.
     */
    const stateAt = (id: number, limit: number, depth: number): 'off' | 'on' | null => {
      let line = -1;
      let state: 'off' | 'on' | null = null;
      for (const e of own[id]!) {
        if ((e.kind === SWITCH_OFF || e.kind === SWITCH_ON) && e.what === name && e.line < limit && e.line > line) {
          line = e.line;
          state = e.kind === SWITCH_OFF ? 'off' : 'on';
        }
      }
      if (depth > 0) {
        for (const e of out[id] ?? NO_EDGES) {
          if (e.weak || e.call.conditional || e.call.line >= limit || e.call.line < line) continue;
          const s = stateAt(idOf(e.to), Infinity, depth - 1);
          if (s) {
            line = e.call.line;
            state = s;
          }
        }
      }
      return state;
    };
    const self = idOf(from);
    let state = stateAt(self, atLine, 2);
    if (state === null) {
      const cls = ownClass(from.file, from.fn);
      const init = cls ? types.method(cls, '__init__') : null;
      if (init && idOf(init) !== self) state = stateAt(idOf(init), Infinity, 2);
    }
    got = state === 'off';
    switchedOffMemo.set(key, got);
    return got;
  }

  function effectsOfCall(from: FnRef, call: SummaryCall, to: FnRef, mode: PropagationMode = 'sync'): Map<string, Reach> {
    const result = new Map<string, Reach>();
    if (detachedCall(from, call, to)) return result;
    const isOpen = openAt(from, call);
    for (const kind of propagatedKinds()) {
      const open = openWay(to, kind, mode, isOpen);
      if (open) result.set(kind, reachOf(to, kind, open));
    }
    return result;
  }

  /** Does this call start `to`'s coroutine as a task nobody here waits for (see {@link markDetached})? */
  function detachedCall(from: FnRef, call: SummaryCall, to: FnRef): boolean {
    if (call.awaited) return false;
    const toId = idOf(to);
    return (out[idOf(from)] ?? NO_EDGES).some((e) => e.call === call && e.detached && idOf(e.to) === toId);
  }

  /** The first way into `to` of the kind that this call leaves open (its detached-task check is the caller's). */
  function openWay(to: FnRef, kind: string, mode: PropagationMode, isOpen: (w: Reached) => boolean): Reached | undefined {
    const id = idOf(to);
    const r = propagate(mode, kind);
    const way = r?.first.get(id);
    if (!way) return undefined;
    return (r!.alternatives.get(id) ?? [way]).find(isOpen);
  }

  /** Is a way into a callee open on this call: no flag guards it, or the call (or its own callers) turns that flag on? */
  function openAt(from: FnRef, call: SummaryCall): (w: Reached) => boolean {
    return (w: Reached) => {
      if (w.guard === undefined) return true;
      const flag = flagAtCall(call.passes, w.guard);
      return flag === 'on' || (flag !== 'off' && callersTurnOn(from, flag.forwards, call.line));
    };
  }

  function effectOfCall(from: FnRef, call: SummaryCall, to: FnRef, kind: string, mode: PropagationMode = 'sync'): Reach | undefined {
    if (detachedCall(from, call, to)) return undefined;
    const open = openWay(to, kind, mode, openAt(from, call));
    return open ? reachOf(to, kind, open) : undefined;
  }

  function functionsWithEffects(kinds: ReadonlySet<string>): FnRef[] {
    const ids = new Set<number>();
    for (const kind of kinds) for (const id of idsByKind().get(kind) ?? []) ids.add(id);
    return [...ids].sort((a, b) => a - b).map((id) => refs[id]!);
  }
  let asyncRefs: FnRef[] | null = null;
  let mutated: Set<string> | null = null;

  function overridden(ref: FnRef): FnRef | null {
    const fn = files[ref.file]!.functions[ref.fn]!;
    if (!fn.className || fn.parent >= 0) return null;
    const cls = ownClass(ref.file, ref.fn);
    if (!cls) return null;
    for (const base of types.mro(cls).slice(1)) {
      const m = scopeOf(base.file).top.get(`${base.cls.name}.${fn.name}`);
      if (m !== undefined) return { file: base.file, fn: m };
    }
    return null;
  }

  function selfClasses(ref: FnRef): readonly ClassRef[] {
    const c = ownClass(ref.file, ref.fn);
    return c ? types.mro(c) : [];
  }

  function receiverClasses(file: number, call: SummaryCall): readonly ClassRef[] {
    if (call.functionIndex >= 0 && /^(self|cls)\.[A-Za-z_]\w*$/.test(call.calleeText)) return selfClasses({ file, fn: call.functionIndex });
    if (!call.receiverType || call.receiverType === UNTYPED) return [];
    const v = types.resolve(call.receiverType);
    return v?.kind === 'instance' ? types.mro(v.cls) : [];
  }

  return {
    index,
    resolveCall,
    receiverClasses,
    selfClasses,
    resolveType: (path) => types.resolve(path),
    classMro: (cls) => types.mro(cls),
    callAt,
    resolvedCallAt,
    functionsWithEffects,
    overridden,
    asyncFunctions: () => (asyncRefs ??= refs.filter((r) => files[r.file]!.functions[r.fn]!.isAsync && !files[r.file]!.isTestFile)),
    resolveQualified,
    locate: resolveQualifiedCached,
    smallConstant(qualified) {
      // Changed by another module (`KNOWN.extend(rows)` where it is imported): no constant.
      mutated ??= new Set(files.flatMap((f) => f.mutatedImports ?? []));
      if (mutated.has(qualified)) return false;
      for (let hop = 0, q = qualified; hop < 2; hop++) {
        let dot = q.lastIndexOf('.');
        if (dot <= 0) return false;
        let file = findModule(q.slice(0, dot));
        // `app.config.Config.DEFAULT_ROLES`: a class's attribute, `Config.DEFAULT_ROLES` in `app.config`.
        if (file === undefined) {
          dot = q.lastIndexOf('.', dot - 1);
          file = dot > 0 ? findModule(q.slice(0, dot)) : undefined;
        }
        if (file === undefined) return false;
        const name = q.slice(dot + 1);
        if (files[file]!.smallConstants?.includes(name)) return true;
        // `from .config import DEFAULTS` in a package's `__init__`: one re-export followed.
        const again = importsOf(file).get(name);
        if (!again) return false;
        q = again;
      }
      return false;
    },
    function: (r) => files[r.file]!.functions[r.fn]!,
    fileOf: (r) => files[r.file]!,
    callees: (r) => out[idOf(r)] ?? NO_EDGES,
    callers: (r) => incoming[idOf(r)] ?? NO_EDGES,
    ownEffects: (r) => own[idOf(r)]!,
    effectsOf,
    effectOf,
    reaches,
    effectsOfCall,
    effectOfCall,
    chainNames(reach: Reach): string[] {
      return [...reach.steps.map((s) => files[s.fn.file]!.functions[s.fn.fn]!.qualifiedName), reach.effect.what];
    },
    chainSteps(reach: Reach, first?: { ref: FnRef; call: SummaryCall }): LocatedStep[] {
      const step = (ref: FnRef, line: number, column: number, call: string): LocatedStep => ({
        path: files[ref.file]!.path, line, column, function: files[ref.file]!.functions[ref.fn]!.qualifiedName, call,
      });
      const out: LocatedStep[] = [];
      if (first) out.push(step(first.ref, first.call.line, first.call.column, first.call.calleeText));
      for (const s of reach.steps) {
        out.push(s.call ? step(s.fn, s.call.line, s.call.column, s.call.calleeText) : step(s.fn, reach.effect.line, reach.effect.column, reach.effect.what));
      }
      return out;
    },
    functions: () => refs,
  };
}

const POSITION_SPAN = 2 ** 26;
/** Site facts read where they are recorded (`ownEffects`), never through a callee: not propagated. */
const UNPROPAGATED: ReadonlySet<string> = new Set([SPAWNS_ARG, 'row_call', 'arg_domains', 'deferred_read', 'readonly_commit', 'held_id_lookup', 'parent_commit_call', 'returns_async_row', 'async_row_call', 'returns_call_row', IMPORTED_ITERABLE, SWITCH_OFF, SWITCH_ON, REGISTRY_PACKAGE]);
/** Calls that run the callable they are given in a worker thread. */
const OFFLOAD_CONSUMER = /(^|\.)(to_thread|run_in_executor|run_in_threadpool|run_sync|submit|sync_to_async|Thread|Process)$/;
/** Calls that make the event loop run the callable later, on the loop. */
const SCHEDULE_CONSUMER = /(^|\.)(call_soon|call_later|call_at|call_soon_threadsafe|add_done_callback|add_reader|add_writer|add_signal_handler)$/;
/** Background tasks run after the response: `BackgroundTasks.add_task(f)`, `BackgroundTask(f)`. */
const BACKGROUND_CONSUMER = /(^|\.)(add_task|BackgroundTask)$/;
/** Builtins that call the function they are given right away. */
const CALLING_BUILTINS = /^builtins\.(map|filter|sorted|min|max)$/;
const NO_EDGES: readonly CallEdge[] = Object.freeze([]);

/** One call graph per repo index, shared by every repo rule of a scan. */
const graphs = new WeakMap<RepoIndex, CallGraph>();
export function callGraphOf(index: RepoIndex): CallGraph {
  let g = graphs.get(index);
  if (!g) {
    g = buildCallGraph(index);
    graphs.set(index, g);
  }
  return g;
}

/** A call site recorded as an effect of a function, with the same-repo function it calls. */
export interface SiteCall {
  ref: FnRef;
  file: FileSummary;
  fn: SummaryFunction;
  site: Effect;
  call: SummaryCall;
  to: FnRef;
}

/** The site facts of one kind recorded in functions outside test files, with their function's ref and file. */
export function* ownSites(graph: CallGraph, kind: string): Generator<{ ref: FnRef; file: FileSummary; site: Effect }> {
  for (const ref of graph.functionsWithEffects(new Set([kind]))) {
    const file = graph.fileOf(ref);
    if (file.isTestFile) continue;
    for (const site of graph.ownEffects(ref)) if (site.kind === kind) yield { ref, file, site };
  }
}

/**
 * Every site fact of the given kinds (outside test files) whose call resolves to a function of
 * the repo: the starting point of the rules that follow a call into its callee.
 */
export function* siteCalls(graph: CallGraph, kinds: ReadonlySet<string>): Generator<SiteCall> {
  for (const ref of graph.functionsWithEffects(kinds)) {
    const file = graph.fileOf(ref);
    if (file.isTestFile) continue;
    const fn = graph.function(ref);
    for (const site of graph.ownEffects(ref)) {
      if (!kinds.has(site.kind)) continue;
      const hit = graph.resolvedCallAt(ref.file, site.line, site.column);
      if (hit) yield { ref, file, fn, site, call: hit.call, to: hit.to };
    }
  }
}
