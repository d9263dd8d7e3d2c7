/**
 * Where code runs, from structure: a request or a background job (production paths), or only
 * once — a migration, a one-off script or CLI command, startup and shutdown, module import.
 * Severity is a claim about production, so a finding whose code runs only once is advisory
 * (Rule 6, widened; see `merge/validate.ts`).
 *
 * Computed on the summaries and the call graph: the roots are the functions whose context is
 * known (handlers, tasks, CLI commands, `__main__` blocks, startup hooks, every function of a
 * migration or of a script file), and each function gets the union of the contexts of its
 * callers. A function or method that nothing in the repo is seen to call may run anywhere: it
 * stays live. So a helper is one-off only when every caller the graph knows of is one-off (the
 * graph follows calls through typed objects, constructors, properties and callbacks).
 */
import type { CallGraph, FnRef } from './callgraph.js';
import type { FileSummary, SummaryCall } from './summary.js';
import { FN_ADMIN } from './objects.js';
import { DECORATED_BY, LOOP_ENTRY, SPAWNS } from './effects.js';
import { flagAtCall } from '../semantic/guards.js';

export type OneOffKind = 'migration' | 'script' | 'startup';

/**
 * Where a finding's code runs when that lowers the claim: only once (a one-off kind), or only in
 * background jobs — production code, but a job's throughput rather than a request's latency.
 */
export interface ExecutionContext {
  kind: OneOffKind | 'background' | 'admin';
  evidence: string;
}

const REQUEST = 1;
const BACKGROUND = 2;
const UNKNOWN = 4;
const SCRIPT = 8;
const STARTUP = 16;
const MIGRATION = 32;
/** A request handler only administrators reach (`FN_ADMIN`). */
const ADMIN = 64;
const LIVE = REQUEST | BACKGROUND | UNKNOWN | ADMIN;

/**
 * Folders and files of one-off code: scripts, CLI commands, benchmarks, examples, load tests,
 * documentation, packaging and task-runner files, and the modules that seed a database with
 * test, sample or demo data (`seeds/`, `seed.py`, `populate_db.py`, `create_test_data.py`). `tools/` counts only near the root: deeper, in
 * an AI service, "tools" are what a request calls.
 */
const ONE_OFF_PATH = /(^|\/)(scripts?|bin|cli|management\/commands|bench(?:marks?|marking|es)?(?:[-_][\w.-]*)?|[\w.]+[-_]benchmarks?|examples?|example_[^/]*|samples?|load_?tests?|locust[^/]*|notebooks?|docs?|seeds?|seeders?)\/|^(?:[^/]+\/)?tools\/|(^|\/)(cli|__main__|manage|setup|noxfile|fabfile|locustfile)\.py$|(^|\/)(examples?|example_\w+|\w+_example)\.py$|(^|\/)((create|make|load|generate|gen)_)?(test|sample|demo|seed|fake|dummy|fixtures?)_?data\.py$|(^|\/)(seed(_\w+)?|\w+_seeds?|populate(_\w+)?)\.py$/;
/** Is the path one-off code by its folder or file name ({@link ONE_OFF_PATH})? */
export function isOneOffPath(path: string): boolean {
  return ONE_OFF_PATH.test(path);
}
/** Imports that make a module documentation tooling. */
const DOCS_IMPORTS = /^(sphinx|docutils)(\.|$)/;

/** A file whose every function is one-off, and why; null for an ordinary module. */
export function oneOffFile(file: FileSummary, isMigration: (path: string) => boolean): (ExecutionContext & { kind: OneOffKind }) | null {
  if (isMigration(file.path) || isAlembicRevision(file)) {
    return { kind: 'migration', evidence: `a migration (${file.path}): runs once per database, by the migration tool` };
  }
  const m = ONE_OFF_PATH.exec(file.path);
  if (m) return { kind: 'script', evidence: `one-off code: ${m[0].replace(/^\//, '')} (${file.path})` };
  const docs = file.imports.find(([, q]) => DOCS_IMPORTS.test(q));
  if (docs) return { kind: 'script', evidence: `documentation build code (imports ${docs[1].split('.')[0]})` };
  return null;
}

/** An Alembic revision wherever it lives: module-level `revision` and `down_revision`, and `upgrade()`. */
function isAlembicRevision(file: FileSummary): boolean {
  return file.moduleDefs.includes('revision') && file.moduleDefs.includes('down_revision')
    && file.functions.some((f) => f.parent < 0 && !f.className && f.name === 'upgrade');
}

const ENTRY_LABEL = { cli: 'a CLI command', main: "the `__main__` block's call", script: "a script's module-level call", startup: 'a startup/shutdown hook', migrate: 'a migration runner (it drives Alembic from code)' } as const;

export interface ContextIndex {
  /** The context of the code at `line` of `path`: one-off (and why), or null when it may run on a production path. */
  at(path: string, line: number): ExecutionContext | null;
  /**
   * When the code at `line` of `path` is in a coroutine that only ever runs on an event loop of its
   * own (see {@link privateLoops}): why; else null.
   */
  privateLoop(path: string, line: number): string | null;
  /** Is the code at `line` of `path` in a top-level function that nothing in the repo (outside tests) calls: one a framework dispatches? */
  entry(path: string, line: number): boolean;
}

/** Each file's first function id (`offsets[file] + fn` numbers every function of the index), and how many there are. */
function functionIds(files: readonly FileSummary[]): { offsets: number[]; total: number } {
  const offsets: number[] = [];
  let total = 0;
  for (const f of files) {
    offsets.push(total);
    total += f.functions.length;
  }
  return { offsets, total };
}

export function executionContexts(graph: CallGraph, isMigration: (path: string) => boolean): ContextIndex {
  const files = graph.index.files;
  const { offsets, total } = functionIds(files);
  const mask = new Uint8Array(total);
  const sealed = new Uint8Array(total);
  /** For a one-off function: the root it is reached from (an id), for the evidence. */
  const via = new Int32Array(total).fill(-1);
  const rootWhy: string[] = new Array(total);
  /** For code administrators' handlers reach: one such handler (an id), for the evidence. */
  const adminVia = new Int32Array(total).fill(-1);
  const fileKinds: ((ExecutionContext & { kind: OneOffKind }) | null)[] = files.map((f) => (f.isTestFile ? null : oneOffFile(f, isMigration)));
  const bit = (k: OneOffKind) => (k === 'migration' ? MIGRATION : k === 'script' ? SCRIPT : STARTUP);

  files.forEach((f, file) => {
    const kind = fileKinds[file];
    f.functions.forEach((fn, i) => {
      const id = offsets[file]! + i;
      if (kind) {
        mask[id] = bit(kind.kind);
        sealed[id] = 1;
        via[id] = id;
        rootWhy[id] = kind.evidence;
        return;
      }
      if (fn.role === 'handler' && fn.flags & FN_ADMIN) {
        mask[id] |= ADMIN;
        adminVia[id] = id;
      } else if (fn.effectiveRole === 'handler') mask[id] |= REQUEST;
      else if (fn.effectiveRole === 'background') mask[id] |= BACKGROUND;
    });
  });
  files.forEach((f, file) => {
    if (f.isTestFile) return;
    for (const [kind, name] of f.entryPoints ?? []) {
      const ref = graph.resolveQualified(name);
      if (!ref) continue;
      const id = offsets[ref.file]! + ref.fn;
      if (sealed[id]) continue;
      // A migration runner runs when the schema changes, whoever calls it (a plugin's `load()` at
      // startup, an install command): its callers do not make it a request path.
      if (kind === 'migrate') {
        // A route that applies migrations is still a route.
        if (files[ref.file]!.functions[ref.fn]!.role === 'handler') continue;
        mask[id] = MIGRATION;
        sealed[id] = 1;
        via[id] = id;
        rootWhy[id] = `${ENTRY_LABEL[kind]} (${f.path})`;
        continue;
      }
      // A CLI command in a workers' folder is still a command someone runs by hand: the folder
      // made it a job by its path alone, and its decorator says otherwise.
      if (kind === 'cli') mask[id] &= ~BACKGROUND;
      mask[id] |= kind === 'startup' ? STARTUP : SCRIPT;
      if (via[id] < 0) {
        via[id] = id;
        rootWhy[id] = `${ENTRY_LABEL[kind]} (${f.path})`;
      }
    }
  });

  // Callers: resolved edges from code that is not a test, and the enclosing function of a nested def.
  // A function only tests call is not taken for test support: that is how a public API (a
  // validator found through a registry, a plugin hook) looks to a graph that cannot see the
  // registry, so it stays live (measured on the field set: it turned a true N+1 advisory).
  const callerCount = new Uint32Array(total);
  const succ: number[][] = new Array(total);
  /** Each function's callers, with what each call passes (undefined: no call of its own, e.g. a nested def's parent). */
  const preds: { from: number; passes: string | undefined; spawned?: true }[][] = new Array(total);
  /** Edges that start the callee as a task of its own (`asyncio.create_task(poll())`), as `from * total + to`. */
  const spawnedEdges = new Set<number>();
  const link = (from: number, to: number, passes?: string, spawned = false) => {
    (succ[from] ??= []).push(to);
    (preds[to] ??= []).push(spawned ? { from, passes, spawned: true } : { from, passes });
    if (spawned) spawnedEdges.add(from * total + to);
    callerCount[to]!++;
  };
  /**
   * What a caller's contexts make of the callee: the same, except that a task startup code starts
   * (`asyncio.create_task(poll_prices())` in a lifespan or `on_event("startup")` hook) runs on the
   * server's loop beside the requests for as long as it lives: a background job, not startup.
   */
  const passed = (from: number, to: number, m: number) => (m & STARTUP && spawnedEdges.has(from * total + to) ? (m & ~STARTUP) | BACKGROUND : m);
  files.forEach((f, file) => {
    if (f.isTestFile) return;
    f.functions.forEach((fn, i) => {
      const id = offsets[file]! + i;
      if (fn.parent >= 0) link(offsets[file]! + fn.parent, id);
      for (const edge of graph.callees({ file, fn: i })) link(id, offsets[edge.to.file]! + edge.to.fn, edge.call.passes, edge.call.spawned === true);
    });
  });
  // A method nothing calls that overrides a base class's method runs where the base's code calls
  // `self.m()`: it gets the base method's contexts (a job's `creator.create()` runs the subclass's
  // steps). Only for methods the graph shows no caller of, which would otherwise stay live.
  files.forEach((f, file) => {
    if (f.isTestFile) return;
    f.functions.forEach((fn, i) => {
      const id = offsets[file]! + i;
      if (sealed[id] || mask[id] !== 0 || callerCount[id] !== 0 || !fn.className) return;
      const base = graph.overridden({ file, fn: i });
      if (base && !files[base.file]!.isTestFile) link(offsets[base.file]! + base.fn, id);
    });
  });
  for (let id = 0; id < total; id++) if (!sealed[id] && mask[id] === 0 && callerCount[id] === 0) mask[id] = UNKNOWN;
  /** What each function is by itself (a handler, a job, a root, or called by nothing), before its callers' contexts join. */
  const ownMask = mask.slice();

  // Forward to a fixpoint: each function gets its callers' contexts (bits only grow, so it ends).
  let work: number[] = [];
  for (let id = 0; id < total; id++) if (mask[id]) work.push(id);
  while (work.length) {
    const next: number[] = [];
    for (const from of work) {
      for (const to of succ[from] ?? []) {
        if (sealed[to]) continue;
        const before = mask[to]!;
        const after = before | passed(from, to, mask[from]!);
        if (via[to] < 0 && via[from]! >= 0) via[to] = via[from]!;
        if (adminVia[to] < 0 && adminVia[from]! >= 0) adminVia[to] = adminVia[from]!;
        if (after !== before) {
          mask[to] = after;
          next.push(to);
        }
      }
    }
    work = next;
  }

  const byPath = new Map(files.map((f, i) => [f.path, i]));
  const refAt = (id: number) => {
    let lo = 0;
    let hi = files.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (offsets[mid]! <= id) lo = mid;
      else hi = mid - 1;
    }
    return { file: lo, fn: id - offsets[lo]! };
  };
  const loops = privateLoops(graph);
  // Document order: a nested def comes after its parent, so the last match is the innermost.
  const innermost = (file: number, line: number) => {
    let inner = -1;
    files[file]!.functions.forEach((fn, i) => {
      if (line >= fn.startLine && line <= fn.endLine) inner = i;
    });
    return inner;
  };
  /**
   * The contexts that reach line `line` of a function: the function's own, and those of the
   * callers whose call can take the branch the line is in. A line under a flag guard of its
   * function (`if package_id: <one> else: <every package>`) is reached only from callers that
   * do not turn the guard off (a view that passes a `package_id` never runs the `else`), read from
   * a call of the function's own at that line. Otherwise every caller's.
   */
  const callsByLine: (Map<string, SummaryCall[]> | undefined)[] = [];
  const callsAt = (file: number, fn: number, line: number): SummaryCall[] => {
    let byLine = callsByLine[file];
    if (!byLine) {
      byLine = new Map();
      for (const c of files[file]!.calls) {
        const k = `${c.functionIndex}:${c.line}`;
        const list = byLine.get(k);
        if (list) list.push(c);
        else byLine.set(k, [c]);
      }
      callsByLine[file] = byLine;
    }
    return byLine.get(`${fn}:${line}`) ?? [];
  };
  /**
   * The narrowed contexts and, for the evidence, a one-off root and an administrators' handler
   * that do reach the line (null: the function's own `via`/`adminVia` stand).
   */
  const guardedMask = (file: number, fn: number, id: number, line: number): { m: number; via: number; adminVia: number } => {
    const whole = { m: mask[id]!, via: via[id]!, adminVia: adminVia[id]! };
    if (sealed[id] || !preds[id]?.length) return whole;
    // Every call of the function on the line under one guard: a line that mixes branches
    // (`a() if not x else b()`) is left to all the callers.
    const calls = callsAt(file, fn, line).filter((c) => c.passes !== undefined);
    const guard = calls[0]?.guard;
    if (guard === undefined || calls.some((c) => c.guard !== guard)) return whole;
    let m = ownMask[id]!;
    let root = ownMask[id]! & (SCRIPT | STARTUP | MIGRATION) ? via[id]! : -1;
    let admin = ownMask[id]! & ADMIN ? adminVia[id]! : -1;
    for (const p of preds[id]!) {
      if (flagAtCall(p.passes, guard) === 'off') continue;
      m |= p.spawned ? passed(p.from, id, mask[p.from]!) : mask[p.from]!;
      if (root < 0 && via[p.from]! >= 0) root = via[p.from]!;
      if (admin < 0 && adminVia[p.from]! >= 0) admin = adminVia[p.from]!;
    }
    // No caller takes the branch: it runs where the function runs, as far as the graph knows.
    return m === 0 ? whole : { m, via: root, adminVia: admin };
  };
  return {
    entry(path, line) {
      const file = byPath.get(path);
      if (file === undefined || files[file]!.isTestFile) return false;
      const inner = innermost(file, line);
      return inner >= 0 && files[file]!.functions[inner]!.parent < 0 && callerCount[offsets[file]! + inner] === 0;
    },
    privateLoop(path, line) {
      const file = byPath.get(path);
      if (file === undefined || files[file]!.isTestFile) return null;
      const inner = innermost(file, line);
      return inner < 0 ? null : loops.get(offsets[file]! + inner) ?? null;
    },
    at(path, line) {
      const file = byPath.get(path);
      if (file === undefined || files[file]!.isTestFile) return null;
      const inner = innermost(file, line);
      if (inner < 0) {
        const script = files[file]!.scriptCode?.find(([from, to]) => line >= from && line <= to);
        return fileKinds[file] ?? (script ? { kind: 'script', evidence: script[2] } : { kind: 'startup', evidence: 'module-level code: runs once, when the module is imported' });
      }
      const id = offsets[file]! + inner;
      const { m, via: viaId, adminVia: adminId } = guardedMask(file, inner, id, line);
      // Only administrators' requests (and perhaps jobs) reach it: an admin's wait, now and then.
      if (m & ADMIN && !(m & (REQUEST | UNKNOWN))) {
        const r = refAt(adminId);
        const handler = `\`${files[r.file]!.functions[r.fn]!.qualifiedName}\` (${files[r.file]!.path})`;
        return {
          kind: 'admin',
          evidence: adminId === id
            ? `runs in ${handler}, a handler only administrators reach`
            : `reached only from handlers administrators use${m & (SCRIPT | STARTUP | MIGRATION | BACKGROUND) ? ' and code that runs outside requests' : ''}, e.g. ${handler}`,
        };
      }
      if (m & BACKGROUND && !(m & (REQUEST | UNKNOWN))) {
        const own = files[file]!.functions[inner]!;
        return {
          kind: 'background',
          evidence: own.effectiveRole === 'background'
            ? `runs in a background job (\`${own.qualifiedName}\`), not on a request path`
            : `reached only from background jobs, never from a request handler`,
        };
      }
      if (m === 0 || m & LIVE) return null;
      const kind: OneOffKind = m & MIGRATION ? 'migration' : m & SCRIPT ? 'script' : 'startup';
      const root = viaId;
      if (root === id || root < 0) return { kind, evidence: rootWhy[id] ?? kind };
      const r = refAt(root);
      const rootFn = files[r.file]!.functions[r.fn]!;
      const only = [m & MIGRATION && 'migrations', m & SCRIPT && 'scripts or CLI commands', m & STARTUP && 'startup code'].filter(Boolean).join(' and ');
      return { kind, evidence: `reached only from ${only}, e.g. \`${rootFn.qualifiedName}\`: ${rootWhy[root]}` };
    },
  };
}

/**
 * Coroutines that only ever run on an event loop of their own, with nothing beside them: every
 * call the graph shows of one is a sync function's `asyncio.run(c())` / `run_until_complete(c())`
 * / `asyncio.Runner().run(c())` (a `LOOP_ENTRY` site), or an await from a coroutine that itself
 * runs only so; and nothing reachable from the coroutine that was started starts others
 * concurrently (`gather`, `create_task`, a task group: `SPAWNS`), which would share the loop. A
 * coroutine no code calls takes the calls of the base method it overrides, or is started by a base
 * class's sync method (`with asyncio.Runner() as r: r.run(self.run())`, a worker's task class). A
 * route or a startup hook is never one: the framework runs it on its own loop too. Blocking
 * there holds up nothing but that run. Keyed by the function's global id (`offsets[file] + fn`),
 * with the evidence.
 */
function privateLoops(graph: CallGraph, alone = true): Map<number, string> {
  const out = new Map<number, string>();
  const files = graph.index.files;
  // Most repos start no loop of their own: nothing to do.
  const entering: FnRef[] = [];
  files.forEach((f, file) => {
    if (f.isTestFile) return;
    f.functions.forEach((_, fn) => {
      if (graph.ownEffects({ file, fn }).some((e) => e.kind === LOOP_ENTRY)) entering.push({ file, fn });
    });
  });
  if (!entering.length) return out;
  const { offsets } = functionIds(files);
  const idOf = (r: FnRef) => offsets[r.file]! + r.fn;
  const entrySites = (ref: FnRef) => graph.ownEffects(ref).filter((e) => e.kind === LOOP_ENTRY);
  const evidence = (what: string, from: FnRef, line: number, callee: string) =>
    `runs only on an event loop of its own: \`${what}(${callee}(...))\` in \`${graph.function(from).qualifiedName}\` (${graph.fileOf(from).path}:${line}) starts one per call${alone ? ALONE : ''}`;
  // Which coroutines may be private, and how each is called: entries (with their evidence), awaits from other coroutines.
  interface Candidate { ref: FnRef; entries: string[]; from: number[] }
  const candidates = new Map<number, Candidate>();
  const eligible = (ref: FnRef) => {
    const fn = graph.function(ref);
    // Not a route or a startup hook, which the framework runs on its own loop. (A job's coroutine
    // may be: a task class's `run()` that its `__call__` starts with `asyncio.run`.)
    return fn.isAsync && fn.role !== 'handler' && fn.role !== 'init' && (!alone || !graph.reaches(ref, SPAWNS, 'any'));
  };
  files.forEach((f, file) => {
    if (f.isTestFile) return;
    f.functions.forEach((fn, i) => {
      const ref = { file, fn: i };
      if (!fn.isAsync || !eligible(ref)) return;
      // `@run_sync async def job(...)`: every call goes through the wrapper, which starts a loop.
      const wrapped = loopDecorator(graph, ref, alone);
      if (wrapped) {
        candidates.set(idOf(ref), { ref, entries: [`runs only on an event loop of its own: ${wrapped}${alone ? ALONE : ''}`], from: [] });
        return;
      }
      let edges = graph.callers(ref).filter((e) => !files[e.from.file]!.isTestFile);
      if (!edges.length) {
        const base = graph.overridden(ref);
        if (base) edges = graph.callers(base).filter((e) => !files[e.from.file]!.isTestFile);
      }
      const c: Candidate = { ref, entries: [], from: [] };
      let ok = true;
      for (const e of edges) {
        const sites = entrySites(e.from);
        const site = sites.find((x) => x.line === e.call.line && x.column === e.call.column);
        // A starter that also schedules work on that loop (`loop.create_task(heartbeat())` before
        // `run_until_complete(job())`) shares it.
        if (alone && site && graph.ownEffects(e.from).some((x) => x.kind === SPAWNS)) {
          ok = false;
          break;
        }
        if (site) {
          c.entries.push(evidence(site.what, e.from, e.call.line, e.call.calleeText));
          continue;
        }
        // The runner's own call taken for the coroutine by its method name (`runner.run(...)` to
        // some `async def run`): not a call of this coroutine.
        if (sites.some((x) => x.line === e.call.line && x.what === e.call.calleeText)) continue;
        if (graph.function(e.from).isAsync && !e.sync) c.from.push(idOf(e.from));
        else ok = false;
      }
      if (!ok) return;
      if (!c.entries.length && !c.from.length && fn.className) {
        // A template method: a base class's sync method starts `self.<name>()` on a loop of its own.
        const started = templateEntry(graph, ref, fn.name, alone);
        if (started) c.entries.push(started);
      }
      if (c.entries.length || c.from.length) candidates.set(idOf(ref), c);
    });
  });
  // Greatest fixpoint by worklist: a candidate awaited by a coroutine that is not private is not either.
  const dependents = new Map<number, number[]>();
  for (const [id, c] of candidates) for (const f of c.from) (dependents.get(f) ?? dependents.set(f, []).get(f)!).push(id);
  const alive = new Set<number>();
  const work: number[] = [];
  for (const [id, c] of candidates) {
    if (c.from.every((f) => candidates.has(f))) alive.add(id);
    else work.push(id);
  }
  while (work.length) {
    const id = work.pop()!;
    for (const d of dependents.get(id) ?? []) {
      if (alive.delete(d)) work.push(d);
    }
  }
  // Evidence: a coroutine's own entry, else that of a private coroutine awaiting it.
  const why = new Map<number, string>();
  for (const id of alive) if (candidates.get(id)!.entries.length) why.set(id, candidates.get(id)!.entries[0]!);
  let spread = true;
  while (spread) {
    spread = false;
    for (const id of alive) {
      if (why.has(id)) continue;
      const via = candidates.get(id)!.from.map((f) => why.get(f)).find((w) => w);
      if (via) {
        why.set(id, via);
        spread = true;
      }
    }
  }
  for (const [id, w] of why) out.set(id, w);
  return out;
}

/**
 * The evidence when a project decorator of the coroutine `ref` runs what it wraps on a loop of
 * its own: a function nested in the decorator (at any depth: `@run_sync` or `@run_sync(timeout=5)`)
 * hands a call of a name it does not define — the wrapped function, a closure variable — to a
 * loop runner (`asyncio.run(fn(*args, **kwargs))`, `loop.run_until_complete(fn(...))`). With
 * `alone`, a wrapper that also schedules other work on that loop does not count.
 */
function loopDecorator(graph: CallGraph, ref: FnRef, alone: boolean): string | null {
  for (const d of graph.ownEffects(ref)) {
    if (d.kind !== DECORATED_BY) continue;
    const decorator = graph.resolveQualified(d.what);
    if (!decorator) continue;
    const file = graph.index.files[decorator.file]!;
    const end = file.functions[decorator.fn]!.endLine;
    for (let w = decorator.fn + 1; w < file.functions.length && file.functions[w]!.startLine <= end; w++) {
      let up = file.functions[w]!.parent;
      while (up > decorator.fn) up = file.functions[up]!.parent;
      if (up !== decorator.fn) continue;
      const wrapper = { file: decorator.file, fn: w };
      const own = graph.ownEffects(wrapper);
      if (alone && own.some((e) => e.kind === SPAWNS)) continue;
      for (const e of own) {
        if (e.kind !== LOOP_ENTRY) continue;
        const inner = graph.callAt(decorator.file, e.line, e.column);
        if (!inner || !/^[A-Za-z_]\w*$/.test(inner.calleeText)) continue;
        // A call of a function the module or the wrapper defines is not the wrapped one.
        if (graph.callees(wrapper).some((c) => c.call.line === e.line && c.call.column === e.column)) continue;
        const name = d.what.slice(d.what.lastIndexOf('.') + 1);
        return `decorated with \`@${name}\`, whose \`${e.what}(${inner.calleeText}(...))\` in \`${graph.function(wrapper).qualifiedName}\` (${file.path}:${e.line}) starts one per call`;
      }
    }
  }
  return null;
}

/** What makes a private loop's coroutine alone on it (see {@link privateLoops}). */
const ALONE = ', and nothing it reaches starts other coroutines beside it: a blocking call holds up that run alone, no request and no other job';

const perCallLoops = new WeakMap<CallGraph, { loops: Map<number, string>; offsets: number[] }>();

/**
 * Is `ref` a coroutine that only ever runs on an event loop started for the call (every caller
 * runs it with `asyncio.run(...)` and the like, or awaits it from such a coroutine), whatever else
 * runs on that loop beside it? The evidence, else null. What belongs to one loop (an async
 * engine's connections) cannot serve the next call's.
 */
export function loopPerCall(graph: CallGraph, ref: FnRef): string | null {
  let memo = perCallLoops.get(graph);
  if (!memo) perCallLoops.set(graph, (memo = { loops: privateLoops(graph, false), offsets: functionIds(graph.index.files).offsets }));
  return memo.loops.get(memo.offsets[ref.file]! + ref.fn) ?? null;
}

/** The evidence when a base class of `ref`'s class starts `self.<name>(...)` on a loop of its own (a `LOOP_ENTRY` site). */
function templateEntry(graph: CallGraph, ref: { file: number; fn: number }, name: string, alone: boolean): string | null {
  const [, ...bases] = graph.selfClasses(ref);
  for (const base of bases) {
    const file = graph.index.files[base.file]!;
    for (let fn = 0; fn < file.functions.length; fn++) {
      const f = file.functions[fn]!;
      if (f.className !== base.cls.name || f.isAsync) continue;
      for (const e of graph.ownEffects({ file: base.file, fn })) {
        if (e.kind !== LOOP_ENTRY || graph.callAt(base.file, e.line, e.column)?.calleeText !== `self.${name}`) continue;
        return `runs only on an event loop of its own: \`${e.what}(self.${name}(...))\` in \`${f.qualifiedName}\` (${file.path}:${e.line}) starts one per call${alone ? ALONE : ''}`;
      }
    }
  }
  return null;
}
