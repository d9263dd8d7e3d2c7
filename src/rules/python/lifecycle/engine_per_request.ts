/**
 * PA407 engine_per_request
 *
 * What it does: finds `create_engine` / `create_async_engine` / `engine_from_config` reached
 * from code that runs once per request (a handler, a dependency it runs, a session provider) or once per background
 * job, and not cached on the way: not in an `lru_cache`/`cache` function, not under a
 * `if _engine is None:` / `if key not in _engines:` guard that keeps it. Reported at the call in
 * the per-request (per-job) function: the engine construction itself, or the call that leads to
 * it, with the chain.
 * Why is this bad? An engine is a connection pool. A new one per request opens a new database
 * connection (TCP, TLS, authentication) every time instead of reusing pooled ones, and each
 * engine left undisposed keeps its connections until the garbage collector finds it: under load
 * the database runs out of `max_connections`.
 *
 * The call graph (`analysis/callgraph.ts`) carries the `new_engine` effect from the function that
 * builds the engine to its callers, through typed objects and constructors; memoised work is not
 * an effect (`semantic/memo.ts`). Startup, CLI and migration code is not a root.
 */
import { callGraphOf, type CallGraph, type FnRef } from '../../../analysis/callgraph.js';
import { LOOP_ENTRY } from '../../../analysis/effects.js';
import { loopPerCall } from '../../../analysis/executionContext.js';
import type { SummaryCall } from '../../../analysis/summary.js';
import { NEW_ENGINE as KIND } from '../../../analysis/summary.js';
import { moduleNameOf } from '../../../semantic/model.js';
import type { Severity } from '../../../types.js';
import type { RepoReport, RepoRule, RepoRuleContext } from '../../types.js';
import { projectNames } from './semantics.js';
import { dependencyChain, DEPENDS_ON } from './streaming_resource_holding.js';

function lower(s: Severity): Severity {
  return s === 'critical' ? 'high' : s === 'high' ? 'medium' : 'low';
}

export const enginePerRequest: RepoRule = {
  meta: {
    code: 'PA407',
    check: 'engine_per_request',
    family: 'lifecycle',
    severity: 'high',
    effort: 'S',
    summary: 'A new engine (a new connection pool) created per request or per job instead of once per process',
    what: 'Finds `create_engine` / `create_async_engine` / `engine_from_config` reached from a request handler, a dependency FastAPI runs for it (`Depends(get_conn)` on a parameter or in the route\'s `dependencies=[...]`, and their own dependencies, two levels down), a session provider or a background job — in its own body or through the project\'s helpers, wrappers and constructors — without a cache on the way (`functools.lru_cache`/`cache`, a module or instance singleton filled under `if _engine is None:`, a memo dict). Reported at the call in the per-request function, once per engine construction and kind of root (request, session provider, job): a helper reached from many handlers is one finding, at the first handler, with the count of the others. A SQLite URL (a literal, f-string or concatenation starting with `sqlite`, directly or through a local or module constant) opens a file, not a server connection: one severity lower. Engines made at import, at startup or in CLI and migration code are not. In a job, an engine with `NullPool` is not reported, and an async engine (`create_async_engine`) made in a coroutine that each run starts on an event loop of its own (`asyncio.run(sweep())` in a Celery task, or a coroutine only such coroutines await) is advisory: its pooled connections belong to that loop and cannot serve the next run, so an engine per run, disposed when it ends, is what SQLAlchemy prescribes.',
    why: 'An engine owns a connection pool. Building one per request opens a new database connection (TCP, TLS, authentication) for every request instead of reusing pooled ones, and every engine that is not disposed keeps its connections open until garbage collection: under load the database hits `max_connections` and the service slows with it.',
    bad: 'from fastapi import FastAPI\nfrom sqlalchemy import create_engine, text\nfrom sqlalchemy.orm import Session\n\napp = FastAPI()\n\n\ndef tenant_engine(tenant: str):\n    return create_engine(f"postgresql://app@db/{tenant}", pool_pre_ping=True)\n\n\n@app.get("/{tenant}/count")\ndef count(tenant: str) -> int:\n    with Session(tenant_engine(tenant)) as db:\n        return db.execute(text("SELECT count(*) FROM items")).scalar_one()\n',
    good: 'from functools import lru_cache\n\nfrom fastapi import FastAPI\nfrom sqlalchemy import create_engine, text\nfrom sqlalchemy.orm import Session\n\napp = FastAPI()\n\n\n@lru_cache(maxsize=64)\ndef tenant_engine(tenant: str):\n    return create_engine(f"postgresql://app@db/{tenant}", pool_pre_ping=True)\n\n\n@app.get("/{tenant}/count")\ndef count(tenant: str) -> int:\n    with Session(tenant_engine(tenant)) as db:\n        return db.execute(text("SELECT count(*) FROM items")).scalar_one()\n',
    fix: 'create the engine once per process (module level, app startup) or cache it per key (`lru_cache`, a dict filled once); pass sessions, not URLs, to request code',
    references: [
      'https://docs.sqlalchemy.org/en/20/core/connections.html#basic-usage',
      'https://docs.sqlalchemy.org/en/20/core/pooling.html',
      'https://docs.sqlalchemy.org/en/20/faq/connections.html#how-do-i-pool-database-connections-are-my-connections-pooled',
    ],
  },
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    const providers = projectNames(ctx.project).providers;
    // Nothing to reach when no function of the repo builds an engine (the usual case).
    if (graph.functionsWithEffects(new Set([KIND]))[Symbol.iterator]().next().done) return;
    const moduleNames = new Map<number, string>();
    // The dependencies route handlers run (and theirs, two levels down): once per request too.
    const perRequestDeps = new Set<string>();
    for (const ref of graph.functionsWithEffects(new Set([DEPENDS_ON])) as Iterable<FnRef>) {
      if (graph.function(ref).effectiveRole !== 'handler' || graph.fileOf(ref).isTestFile) continue;
      for (const e of graph.ownEffects(ref)) {
        if (e.kind !== DEPENDS_ON) continue;
        for (const target of e.what.split(' ')) for (const { dep } of dependencyChain(graph, target)) perRequestDeps.add(`${dep.file}:${dep.fn}`);
      }
    }
    /**
     * One finding per engine construction and kind of root: a helper that builds the engine,
     * reached from forty handlers, is one defect with one fix (cache the engine), reported at the
     * first handler (in path order) with the count of the others.
     */
    const groups = new Map<string, { report: RepoReport; roots: Set<string> }>();
    const add = (key: string, root: string, report: RepoReport) => {
      const g = groups.get(key);
      if (!g) groups.set(key, { report, roots: new Set([root]) });
      else {
        g.roots.add(root);
        if (rank(report.severity!) > rank(g.report.severity!)) g.report = report;
      }
    };
    for (const ref of graph.functions() as Iterable<FnRef>) {
      const file = graph.fileOf(ref);
      if (file.isTestFile) continue;
      const fn = graph.function(ref);
      let moduleName = moduleNames.get(ref.file);
      if (moduleName === undefined) moduleNames.set(ref.file, (moduleName = moduleNameOf(file.path)));
      const provider = providers.has(`${moduleName}.${fn.qualifiedName}`);
      const dependency = fn.effectiveRole !== 'handler' && !provider && perRequestDeps.has(`${ref.file}:${ref.fn}`);
      const perWhat = fn.effectiveRole === 'handler' || dependency ? 'request' : provider ? 'session' : fn.effectiveRole === 'background' ? 'job' : null;
      if (!perWhat) continue;
      const base: Severity = perWhat === 'job' ? 'medium' : 'high';
      const role = dependency ? 'request dependency' : perWhat === 'request' ? 'request handler' : perWhat === 'session' ? 'session provider' : 'background job';
      // A class used as a dependency (`r: Repo = Depends()`) runs its `__init__`: name the class.
      const shown = fn.name === '__init__' && fn.qualifiedName.endsWith('.__init__') ? fn.qualifiedName.slice(0, -'.__init__'.length) : fn.name;
      for (const e of graph.ownEffects(ref)) {
        if (e.kind !== KIND) continue;
        const call = graph.callAt(ref.file, e.line, e.column);
        if (!call) continue;
        const sqlite = e.what.endsWith(SQLITE);
        const nullPool = e.what.includes(NULL_POOL);
        // No pool to lose: a job's engine with NullPool is the documented way to run a coroutine
        // on a loop of its own (asyncpg connections cannot cross loops). Per request or per
        // session it still costs a new engine each time: reported one step lower.
        if (nullPool && perWhat === 'job') continue;
        // An async engine in a coroutine each run starts on an event loop of its own.
        const ownLoop = perWhat === 'job' && ASYNC_ENGINE.test(e.what) ? loopPerCall(graph, ref) : null;
        add(`${file.path}:${e.line}:${e.column}|${perWhat}`, `${file.path}:${fn.qualifiedName}`, {
          path: file.path,
          location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
          message: `\`${call.calleeText}()\` in ${role} \`${shown}\` builds a new ${engineWhat(sqlite, nullPool)} for every ${perWhat}`,
          severity: sqlite || nullPool ? lower(base) : base,
          ...(ownLoop ? { advisory: ownLoopEvidence(ownLoop) } : {}),
          function: fn.name,
        });
      }
      const seen = new Set<string>();
      for (const edge of graph.callees(ref)) {
        // A call under a cache guard (`if self._engine is None: self._engine = make_engine()`)
        // builds once per holder, as its own body's constructions do (`semantic/memo.ts`).
        if (edge.call.memoised) continue;
        // What this call reaches: not a branch behind a flag the call leaves off (or turns off:
        // `Indexer(url, skip_check=True)` skips `if not skip_check: probe(url)`).
        const reach = graph.effectsOfCall(ref, edge.call, edge.to, 'any').get(KIND);
        if (!reach) continue;
        const key = `${edge.call.line}:${edge.call.column}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const weak = reach.weak || edge.weak === true;
        const sqlite = reach.effect.what.endsWith(SQLITE);
        const nullPool = reach.effect.what.includes(NULL_POOL);
        if (nullPool && perWhat === 'job') continue;
        const end = reach.steps[reach.steps.length - 1]!.fn;
        const names = [fn.qualifiedName, ...graph.chainNames(reach)];
        let severity = sqlite || nullPool ? lower(base) : base;
        if (weak) severity = lower(severity);
        // The call starts the coroutine on a loop of its own (`asyncio.run(_run(...))`), or the
        // job is such a coroutine: an async engine per run is what that takes.
        const ownLoop = perWhat === 'job' && ASYNC_ENGINE.test(reach.effect.what) ? (startsLoop(graph, ref, edge.call) ?? loopPerCall(graph, ref)) : null;
        add(`${graph.fileOf(end).path}:${reach.effect.line}:${reach.effect.column}|${perWhat}`, `${file.path}:${fn.qualifiedName}`, {
          path: file.path,
          location: { line: edge.call.line, column: edge.call.column, endLine: edge.call.endLine, endColumn: edge.call.endColumn },
          message: `\`${edge.call.calleeText}()\` in ${role} \`${shown}\` builds a new ${engineWhat(sqlite, nullPool)} for every ${perWhat}: ${names.join(' → ')}${weak ? ' (a call resolved by its method name alone)' : ''}`,
          severity,
          ...(ownLoop ? { advisory: ownLoopEvidence(ownLoop) } : {}),
          function: fn.name,
          chain: graph.chainSteps(reach, { ref, call: edge.call }),
        });
      }
    }
    for (const { report, roots } of groups.values()) {
      const others = roots.size - 1;
      const also = others ? `; ${others} other ${perWhatOf(report, others)} the same construction` : '';
      ctx.report({ ...report, message: report.message + also });
    }
  },
};

/** The construction of an asyncio engine (`create_async_engine`, `async_engine_from_config`). */
const ASYNC_ENGINE = /(^|\.)(create_async_engine|async_engine_from_config)\b/;

/** Where a call of `ref` starts its callee on an event loop of its own (`asyncio.run(_run(...))`, a `LOOP_ENTRY` site): the evidence, else null. */
function startsLoop(graph: CallGraph, ref: FnRef, call: SummaryCall): string | null {
  const entry = graph.ownEffects(ref).find((x) => x.kind === LOOP_ENTRY && x.line === call.line && x.column === call.column);
  return entry ? `\`${entry.what}(${call.calleeText}(...))\` in \`${graph.function(ref).qualifiedName}\` (${graph.fileOf(ref).path}:${call.line}) starts an event loop of its own per call` : null;
}

function ownLoopEvidence(why: string): string {
  return `${why}: an async engine\'s pooled connections belong to the loop that opened them and cannot serve the next run\'s loop, so an engine per run, disposed when the run ends (or one with \`NullPool\`), is what SQLAlchemy prescribes`;
}

const SQLITE = ' (SQLite)';
const NULL_POOL = ' (NullPool)';

function engineWhat(sqlite: boolean, nullPool: boolean): string {
  if (sqlite) return 'SQLite engine (a file opened and its first-connect setup run again)';
  if (nullPool) return 'engine (`NullPool`: no pool, but every connection is a new one, and the first runs the dialect\'s setup again)';
  return 'engine, and a new connection pool,';
}

function rank(s: Severity): number {
  return s === 'critical' ? 3 : s === 'high' ? 2 : s === 'medium' ? 1 : 0;
}

function perWhatOf(r: RepoReport, n: number): string {
  const what = / for every job/.test(r.message) ? 'job' : / for every session/.test(r.message) ? 'session provider' : 'handler';
  return n === 1 ? `${what} reaches` : `${what}s reach`;
}
