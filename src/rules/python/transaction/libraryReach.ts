/**
 * Repo-phase questions about writes through a repository library that only flushes (see
 * libraryWrites.ts), shared by PA208 (lost writes) and PA202 (a request's transaction held open).
 */
import type { CallGraph, FnRef, Reach } from '../../../analysis/callgraph.js';
import type { SummaryCall } from '../../../analysis/summary.js';
import { CTOR_AUTOCOMMIT, FLUSH_ONLY_WRITE } from './libraryWrites.js';
import { LIBRARY_READS, LIBRARY_WRITES, REPOSITORY_LIBRARY_BASE } from '../../../semantic/repositoryLibrary.js';

export interface LibraryReach {
  /** The functions a call may reach: its callee, or every method of that name when the receiver is untyped (≤ 6). */
  targets(ref: FnRef, call: SummaryCall): FnRef[];
  /** Calls `targets` answered by the method's name alone. */
  byNameCalls: Set<SummaryCall>;
  mayCommit(refs: FnRef[]): boolean;
  /** Every target reaches a flush-only library write and none may commit: the chain to the first. */
  flushOnly(refs: FnRef[]): Reach | null;
  /** Is a receiver type a class of the repo deriving from the library's repository or service (and not built with `auto_commit=True`)? */
  libraryTyped(t: string | null): boolean;
  /** Classes the project builds with `auto_commit=True`. */
  autoCommitted: Set<string>;
}

const reachMemo = new WeakMap<CallGraph, LibraryReach>();

/** The library questions for a graph: made once per scan, shared by the rules that ask them. */
export function libraryReach(graph: CallGraph): LibraryReach {
  let r = reachMemo.get(graph);
  if (!r) reachMemo.set(graph, (r = makeLibraryReach(graph)));
  return r;
}

function makeLibraryReach(graph: CallGraph): LibraryReach {
  let byName: Map<string, FnRef[]> | null = null;
  // The functions a call may reach: its resolved callee, or every method of that name when the
  // receiver's type is unknown (all of them must agree for a finding).
  const byNameCalls = new Set<SummaryCall>();
  const targets = (ref: FnRef, call: SummaryCall): FnRef[] => {
    const to = graph.resolveCall(ref.file, call);
    if (to) return [to];
    if (!call.method || LIBRARY_METHODS.has(call.method)) return [];
    if (!byName) {
      byName = new Map();
      for (const f of graph.functions()) {
        const fn = graph.function(f);
        if (!fn.className || graph.fileOf(f).isTestFile) continue;
        const list = byName.get(fn.name);
        if (list) list.push(f);
        else byName.set(fn.name, [f]);
      }
    }
    const list = byName.get(call.method) ?? [];
    if (list.length && list.length <= 6) byNameCalls.add(call);
    return list.length <= 6 ? list : [];
  };
  const mayCommit = (refs: FnRef[]) => refs.some((r) => graph.reaches(r, 'commit_may', 'any'));
  // Classes the project builds with `auto_commit=True`: their writes commit.
  const autoCommitted = new Set<string>();
  for (const f of graph.functionsWithEffects(new Set([CTOR_AUTOCOMMIT]))) for (const e of graph.ownEffects(f)) if (e.kind === CTOR_AUTOCOMMIT) autoCommitted.add(e.what);
  const committingClass = (reach: Reach) => {
    const last = reach.steps[reach.steps.length - 1];
    const cls = last ? graph.function(last.fn).className : null;
    return !!cls && autoCommitted.has(cls);
  };
  // A project with no flush-only library write anywhere has nothing to reach (no propagation asked).
  const anyFlushOnly = !graph.functionsWithEffects(new Set([FLUSH_ONLY_WRITE]))[Symbol.iterator]().next().done;
  const flushOnly = (refs: FnRef[]): Reach | null => {
    if (!anyFlushOnly || !refs.length || mayCommit(refs)) return null;
    const reaches = refs.map((r) => graph.effectOf(r, FLUSH_ONLY_WRITE, 'any'));
    return reaches.every((r) => r && !committingClass(r)) ? reaches[0]! : null;
  };
  // A receiver typed as a class of the repo that derives from the library's repository or service.
  let classBases: Map<string, string[]> | null = null;
  const libraryTyped = (t: string | null): boolean => {
    if (!t?.startsWith('@')) return false;
    if (!classBases) {
      classBases = new Map();
      for (const f of graph.index.files) for (const c of f.classes) classBases.set(`${f.moduleName}.${c.name}`, c.bases);
    }
    if (autoCommitted.has(t.slice(t.lastIndexOf('.') + 1))) return false;
    // Through the type resolver first: it follows re-exports (`from .services import Svc` in a
    // package's `__init__`) to the module that defines the class.
    const v = graph.resolveType(t);
    if (v?.kind === 'instance') {
      if (autoCommitted.has(v.cls.cls.name)) return false;
      if (graph.classMro(v.cls).some((c) => c.cls.bases.some((b) => REPOSITORY_LIBRARY_BASE.test(b)))) return true;
    }
    const seen = new Set<string>();
    const visit = (q: string): boolean => {
      if (seen.has(q)) return false;
      seen.add(q);
      return (classBases!.get(q) ?? []).some((b) => REPOSITORY_LIBRARY_BASE.test(b) || visit(b.replace(/\[.*$/, '')));
    };
    return visit(t.slice(1));
  };
  return { targets, byNameCalls, mayCommit, flushOnly, libraryTyped, autoCommitted };
}

/** Library method names a by-name lookup must not guess from (they are the library's, not the project's). */
const LIBRARY_METHODS = new Set([...LIBRARY_WRITES, ...LIBRARY_READS, 'commit', 'flush', 'execute', 'close', 'send', 'info', 'debug', 'warning', 'error', 'ainfo', 'aerror', 'awarning']);
