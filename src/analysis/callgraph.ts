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
import { resolveHandle, isBlockingDbMethod, handleMethodLabel, type NameLookup } from '../semantic/db.js';

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
}

export type PropagationMode = 'sync' | 'any';

export interface CallGraph {
  readonly index: RepoIndex;
  /** The repo function a call site in `file` calls, or null. */
  resolveCall(file: number, call: SummaryCall): FnRef | null;
  /**
   * The first call of file `file` (an index in `index.files`) that starts at `line`:`column`. A
   * summary keeps only the calls that may be edges and those of pending effects and of
   * `POSITIONED_EFFECTS` (summary.ts): look up no other effect's call.
   */
  callAt(file: number, line: number, column: number): SummaryCall | undefined;
  /** A qualified name (`app.storage.save_blob`, `app.svc.Service.run`) to a repo function. */
  resolveQualified(qualified: string): FnRef | null;
  function(ref: FnRef): SummaryFunction;
  fileOf(ref: FnRef): FileSummary;
  /** Outgoing edges of a function, in source order. */
  callees(ref: FnRef): readonly CallEdge[];
  callers(ref: FnRef): readonly CallEdge[];
  /** The function's own effects (pending DB effects already decided). */
  ownEffects(ref: FnRef): Effect[];
  /** For each effect kind the function has or reaches: the shortest chain. */
  effectsOf(ref: FnRef, mode?: PropagationMode): Map<string, Reach>;
  /** Display names along a chain, ending with what the effect calls: `["upload", "save_blob", "open"]`. */
  chainNames(reach: Reach): string[];
  /** Every function, in file and source order. */
  functions(): Iterable<FnRef>;
  /** The functions with an own effect of one of `kinds`, in file and source order. */
  functionsWithEffects(kinds: ReadonlySet<string>): Iterable<FnRef>;
  /** Every `async def` outside test files, in file and source order. */
  asyncFunctions(): readonly FnRef[];
}

interface Reached {
  effect: Effect;
  /** The edge to follow on, or null when the effect is the function's own. */
  next: CallEdge | null;
  effectFn: number;
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

  function resolveCall(file: number, call: SummaryCall): FnRef | null {
    const f = files[file]!;
    const text = call.calleeText;
    if (call.functionIndex >= 0 && /^(self|cls)\.[A-Za-z_]\w*$/.test(text)) {
      // The method of the class that encloses the calling method.
      let i = call.functionIndex;
      while (i >= 0 && !f.functions[i]!.className) i = f.functions[i]!.parent;
      const cls = i >= 0 ? f.functions[i]!.className : null;
      if (!cls || f.functions[i]!.parent >= 0) return null;
      const fn = scopeOf(file).top.get(`${cls}.${call.method}`);
      return fn === undefined ? null : { file, fn };
    }
    if (/^[A-Za-z_]\w*$/.test(text)) {
      // Python scoping: a def nested in an enclosing function shadows the module-level one.
      for (let i = call.functionIndex; i >= 0; i = f.functions[i]!.parent) {
        const fn = scopeOf(file).nested.get(`${i}:${text}`);
        if (fn !== undefined) return { file, fn };
      }
    }
    if (call.qualifiedName) return resolveQualified(call.qualifiedName);
    return null;
  }

  // Edges. Most functions call no repo function and none calls them: their lists are made on the
  // first edge (two empty arrays per function were ~480k allocations on a 2M-line tree).
  const out: (CallEdge[] | undefined)[] = new Array(total);
  const incoming: (CallEdge[] | undefined)[] = new Array(total);
  files.forEach((f, file) => {
    for (const call of f.calls) {
      if (call.functionIndex < 0) continue;
      const to = resolveCall(file, call);
      if (!to) continue;
      const from = { file, fn: call.functionIndex };
      const callee = files[to.file]!.functions[to.fn]!;
      const edge: CallEdge = { from, to, call, sync: !call.awaited && !call.offloaded && !callee.isAsync };
      (out[idOf(from)] ??= []).push(edge);
      (incoming[idOf(to)] ??= []).push(edge);
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
  const own: Effect[][] = refs.map((r) => {
    const effects = files[r.file]!.functions[r.fn]!.effects;
    if (!effects.some((e) => e.pending)) return effects;
    const decided: Effect[] = [];
    for (const e of effects) {
      if (!e.pending) {
        decided.push(e);
        continue;
      }
      const h = resolveHandle(e.pending.typePath, lookup);
      if (h?.kind === 'handle' && h.state !== 'async' && isBlockingDbMethod(h.state, e.pending.method)) {
        decided.push({ kind: e.kind, what: handleMethodLabel(h.state, h.label, e.pending.method), line: e.line, column: e.column, pending: e.pending });
      }
    }
    return decided;
  });

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

  // Breadth-first from the functions that have an effect, backwards along edges: the first
  // visit of a function is along a shortest chain. Computed lazily per mode.
  const reachByMode = new Map<PropagationMode, (Map<string, Reached> | undefined)[]>();
  function propagate(mode: PropagationMode): (Map<string, Reached> | undefined)[] {
    const cached = reachByMode.get(mode);
    if (cached) return cached;
    // A function's map is made when it first reaches an effect.
    const reach: (Map<string, Reached> | undefined)[] = new Array(total);
    for (const [kind, ids] of idsByKind()) {
      let frontier: number[] = [];
      for (const id of ids) {
        const e = own[id]!.find((x) => x.kind === kind)!;
        (reach[id] ??= new Map()).set(kind, { effect: e, next: null, effectFn: id });
        frontier.push(id);
      }
      while (frontier.length) {
        const next: number[] = [];
        for (const id of frontier) {
          const got = reach[id]!.get(kind)!;
          for (const edge of incoming[id] ?? NO_EDGES) {
            if (!edge.sync && !(mode === 'any' && !edge.call.offloaded)) continue;
            const caller = idOf(edge.from);
            const callerReach = (reach[caller] ??= new Map());
            if (callerReach.has(kind)) continue;
            callerReach.set(kind, { effect: got.effect, next: edge, effectFn: got.effectFn });
            next.push(caller);
          }
        }
        frontier = next;
      }
    }
    reachByMode.set(mode, reach);
    return reach;
  }

  function effectsOf(ref: FnRef, mode: PropagationMode = 'sync'): Map<string, Reach> {
    const reach = propagate(mode);
    const result = new Map<string, Reach>();
    for (const [kind, first] of reach[idOf(ref)] ?? NO_REACH) {
      const steps: ChainStep[] = [];
      let id = idOf(ref);
      let cur: Reached | undefined = first;
      const seen = new Set<number>();
      while (cur && !seen.has(id)) {
        seen.add(id);
        steps.push({ fn: refs[id]!, call: cur.next?.call ?? null });
        if (!cur.next) break;
        id = idOf(cur.next.to);
        cur = reach[id]?.get(kind);
      }
      result.set(kind, { kind, effect: first.effect, steps });
    }
    return result;
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
        if (!byPos.has(key)) byPos.set(key, c);
      }
      callsByPosition[file] = byPos;
    }
    return byPos.get(line * POSITION_SPAN + column);
  }

  function functionsWithEffects(kinds: ReadonlySet<string>): FnRef[] {
    const ids = new Set<number>();
    for (const kind of kinds) for (const id of idsByKind().get(kind) ?? []) ids.add(id);
    return [...ids].sort((a, b) => a - b).map((id) => refs[id]!);
  }
  let asyncRefs: FnRef[] | null = null;

  return {
    index,
    resolveCall,
    callAt,
    functionsWithEffects,
    asyncFunctions: () => (asyncRefs ??= refs.filter((r) => files[r.file]!.functions[r.fn]!.isAsync && !files[r.file]!.isTestFile)),
    resolveQualified,
    function: (r) => files[r.file]!.functions[r.fn]!,
    fileOf: (r) => files[r.file]!,
    callees: (r) => out[idOf(r)] ?? NO_EDGES,
    callers: (r) => incoming[idOf(r)] ?? NO_EDGES,
    ownEffects: (r) => own[idOf(r)]!,
    effectsOf,
    chainNames(reach: Reach): string[] {
      return [...reach.steps.map((s) => files[s.fn.file]!.functions[s.fn.fn]!.qualifiedName), reach.effect.what];
    },
    functions: () => refs,
  };
}

const POSITION_SPAN = 2 ** 26;
const NO_EDGES: readonly CallEdge[] = Object.freeze([]);
const NO_REACH: ReadonlyMap<string, Reached> = new Map();

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
      const call = graph.callAt(ref.file, site.line, site.column);
      const to = call ? graph.resolveCall(ref.file, call) : null;
      if (call && to) yield { ref, file, fn, site, call, to };
    }
  }
}
