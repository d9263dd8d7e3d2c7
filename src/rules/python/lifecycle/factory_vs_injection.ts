/**
 * PA406 factory_vs_injection
 *
 * What it does: finds a request-scoped, injected session (`Depends(get_db)`, `session:
 * AsyncSession`) that ends up in code outliving the request's dependency scope: the generator of
 * a streaming/SSE response, a WebSocket endpoint's receive loop, a `BackgroundTasks.add_task(...)`
 * or `asyncio.create_task(...)` it is handed to.
 * Why is this bad? The dependency closes the session when the request scope ends (for
 * background tasks, before they run in FastAPI 0.106–0.117), so the long-lived code works on a
 * closed session that silently reopens a connection nobody will close — or, when it is still
 * open, pins one pooled connection for minutes.
 *
 * Precision: a task awaited in the handler (`await task`, a `TaskGroup`) is not detached; before
 * FastAPI 0.106 and from 0.118 background tasks run inside the dependency scope (the exit code
 * runs after the response, and Starlette runs the tasks as part of sending it), so `add_task`
 * is fine there; an unpinned FastAPI is the newest.
 *
 * Across modules (repo phase): the handler passes the session to a function of another module
 * (`notifications.schedule(tasks, db, order)`) that hands that parameter to a task; the summaries
 * carry both ends (see {@link collectTaskHandoffs}).
 */
import type { CallInfo, FileModel, FunctionInfo } from '../../../semantic/model.js';
import { callsOf, namesBuiltWith, variableRefs } from '../../../semantic/model.js';
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import type { Effect } from '../../../analysis/summary.js';
import type { ProjectContext } from '../../../discovery/context.js';
import { callGraphOf, siteCalls } from '../../../analysis/callgraph.js';
import { UNTYPED } from '../../../analysis/objects.js';
import {
  generatorUsesSession, hasOwnLoop, injectedSessions, isLongLivedGenerator, isWebsocketHandler, websocketHoldsSession,
  streamingResponses, yieldDependencyOutlivesStream,
} from './semantics.js';
import { flaskStreams, generatorSessionUse } from './flaskStreaming.js';

const CREATE_TASK = /^(asyncio\.(create_task|ensure_future)|anyio\.from_thread\.run)$/;

/** Starlette's single background task, run after the response it is passed to (`background=`) is sent. */
const BACKGROUND_TASK = /^(starlette\.background|fastapi\.background|fastapi)\.BackgroundTask$/;

/** The session is an argument of the task: `add_task(fn, session)`, `BackgroundTask(fn, session)`, `create_task(work(session))`. */
function handsOver(call: CallInfo, name: string, holder = false): boolean {
  const args = call.node.childForFieldName('arguments')?.namedChildren ?? [];
  if (holder) return handsHolder(call, args, name);
  if (call.method === 'add_task' || isBackgroundTask(call)) return args.slice(1).some((a) => variableRefs(a, name).length > 0 && !a.text.includes('lambda'));
  return args.length > 0 && variableRefs(args[0]!, name).length > 0;
}

/**
 * An object holding the session handed over: itself (`add_task(run, service)`), its bound method
 * (`add_task(service.notify, id)`), or a coroutine of its method or given it (`create_task(service.notify(id))`,
 * `create_task(run(service))`) — not a value read off it (`send(service.tenant_id)`).
 */
function handsHolder(call: CallInfo, args: SyntaxNode[], name: string): boolean {
  const itself = (a: SyntaxNode | undefined) => a?.type === 'identifier' && a.text === name;
  const method = (a: SyntaxNode | null | undefined) => a?.type === 'attribute' && a.childForFieldName('object')?.text === name;
  const coroutine = (a: SyntaxNode | undefined): boolean => a?.type === 'call' && (method(a.childForFieldName('function'))
    || (a.childForFieldName('arguments')?.namedChildren ?? []).some((x) => itself(x)));
  if (call.method === 'add_task' || isBackgroundTask(call)) return method(args[0]) || args.slice(1).some((a) => itself(a));
  return itself(args[0]) || coroutine(args[0]);
}

/**
 * Names the function binds, once, to an object built on the session (`service =
 * OrderService(session)`, `repo = Repo(db=session)`: a CamelCase class given it).
 */
function sessionHolderNames(model: FileModel, fn: FunctionInfo, session: string): string[] {
  return [...namesBuiltWith(model, fn.index, session)].filter(([name, call]) => {
    const callee = call.childForFieldName('function')?.text ?? '';
    return /^[A-Z]\w*$/.test(callee.slice(callee.lastIndexOf('.') + 1))
      && model.assignments.filter((b) => b.functionIndex === fn.index && b.target === name).length === 1;
  }).map(([name]) => name);
}

/** `task = asyncio.create_task(...)` later awaited or gathered in the same function. */
function awaitedLater(model: FileModel, fn: FunctionInfo, call: CallInfo): boolean {
  const parent = call.node.parent;
  if (parent?.type !== 'assignment') return false;
  const target = parent.childForFieldName('left')?.text;
  if (!target || !fn.body) return false;
  return variableRefs(fn.body, target).some((r) => r.startIndex > call.node.endIndex && (r.parent?.type === 'await' || /gather|wait/.test(r.parent?.parent?.text ?? '')));
}

function isBackgroundTask(call: CallInfo): boolean {
  return !!call.qualifiedName && BACKGROUND_TASK.test(call.qualifiedName);
}

function isDetachedTask(model: FileModel, fn: FunctionInfo, call: CallInfo): boolean {
  if (call.method === 'add_task' || isBackgroundTask(call)) return true;
  if (call.qualifiedName && CREATE_TASK.test(call.qualifiedName)) return !awaitedLater(model, fn, call);
  // `loop.create_task(...)` on an event loop (not a task group's `tg.create_task`).
  if (call.method === 'create_task' && /loop$/i.test(call.receiver?.text ?? '')) return !awaitedLater(model, fn, call);
  return false;
}

/** The parameter of `helper` that an argument of `call` binds: by position or by keyword. */
function boundParam(helper: FunctionInfo, call: CallInfo, name: string): string | null {
  const arg = argumentOf(call, name);
  if (arg === null || typeof arg === 'string') return arg;
  return helper.params.filter((p) => p.name !== 'self' && p.name !== 'cls')[arg]?.name ?? null;
}

/**
 * `schedule_reindex(tasks, session)`: a module-level function of this file that the handler hands
 * the session to, and that hands it on to a background or detached task. Returns the helper's
 * task call, or null.
 */
function handedOnByHelper(model: FileModel, call: CallInfo, name: string): { helper: FunctionInfo; task: CallInfo } | null {
  if (call.hasReceiver) return null;
  const helper = model.functions.find((f) => f.parent < 0 && !f.className && f.name === call.calleeText);
  if (!helper) return null;
  const param = boundParam(helper, call, name);
  if (!param) return null;
  const task = callsOf(model, helper.index).find((c) => c.functionIndex === helper.index && isDetachedTask(model, helper, c) && handsOver(c, param));
  return task ? { helper, task } : null;
}

/** Own effect: the function hands a parameter to a background or detached task (`what` = `position|name|b` or `|d`). */
export const HANDS_PARAM_TO_TASK = 'hands_param_to_task';
/** Site fact: a handler's call that passes its injected session on (`what` = JSON {@link SessionArgSite}). */
export const SESSION_ARG_CALL = 'session_arg_call';

interface SessionArgSite {
  session: string;
  /** Positional index of the argument, or the keyword it is passed by. */
  arg: number | string;
  /** The session comes from a `Depends(..., scope="function")`: closed when the endpoint returns. */
  functionScope: boolean;
  /** Background tasks run inside the dependency scope (FastAPI before 0.106 and from 0.118). */
  backgroundInScope: boolean;
}

/** The argument of `call` that is the variable `name`: its positional index or keyword, or null. */
function argumentOf(call: CallInfo, name: string): number | string | null {
  let i = 0;
  for (const a of call.node.childForFieldName('arguments')?.namedChildren ?? []) {
    if (a.type === 'keyword_argument') {
      const v = a.childForFieldName('value');
      if (v?.type === 'identifier' && v.text === name) return a.childForFieldName('name')?.text ?? null;
      continue;
    }
    if (a.type === 'list_splat' || a.type === 'dictionary_splat') return null;
    if (a.type === 'identifier' && a.text === name) return i;
    i++;
  }
  return null;
}

/**
 * Site fact: a call in the body of a generator that a Flask view streams without
 * `stream_with_context`, when the file rule saw no session use of its own there: the repo phase
 * asks whether the call reaches a query (through any depth of the repo's calls).
 */
export const STREAM_AFTER_TEARDOWN = 'stream_after_teardown';

/** The {@link STREAM_AFTER_TEARDOWN} sites of a file's Flask views. */
export function collectStreamAfterTeardown(model: FileModel): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile || !/\bflask\b|werkzeug/.test(model.source) || !/\byield\b/.test(model.source)) return out;
  const seen = new Set<number>();
  for (const view of model.functions) {
    if (view.role !== 'handler') continue;
    for (const stream of flaskStreams(model, view, true)) {
      const gen = stream.generator;
      if (stream.withContext || seen.has(gen.index) || generatorSessionUse(model, gen)) continue;
      seen.add(gen.index);
      const pushed = model.withs.filter((w) => w.functionIndex === gen.index && w.items.some((i) => PUSHES_CONTEXT.test(i.value.text)));
      for (const c of callsOf(model, gen.index)) {
        if (c.functionIndex !== gen.index || c.offloaded) continue;
        if (pushed.some((w) => c.node.startIndex >= w.bodyStart && c.node.endIndex <= w.bodyEnd)) continue;
        out[gen.index]!.push({ kind: STREAM_AFTER_TEARDOWN, what: view.name, line: c.line, column: c.column });
      }
    }
  }
  return out;
}

/**
 * PA406's facts for hand-offs across modules: every function that hands one of its parameters to
 * a background or detached task, and every handler call that passes an injected session on to a
 * function the file does not define (a same-module helper is the file rule's).
 */
export function collectTaskHandoffs(model: FileModel, project?: ProjectContext): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (!project || model.isTestFile) return out;
  if (/add_task|BackgroundTask|create_task|ensure_future|from_thread/.test(model.source)) {
    for (const fn of model.functions) {
      const params = fn.params.filter((p, i) => !(i === 0 && fn.className !== null && (p.name === 'self' || p.name === 'cls')));
      if (!params.length) continue;
      for (const call of callsOf(model, fn.index)) {
        if (call.functionIndex !== fn.index || !isDetachedTask(model, fn, call)) continue;
        const background = call.method === 'add_task' || isBackgroundTask(call);
        params.forEach((p, i) => {
          if (handsOver(call, p.name)) out[fn.index]!.push({ kind: HANDS_PARAM_TO_TASK, what: `${i}|${p.name}|${background ? 'b' : 'd'}`, line: call.line, column: call.column });
        });
      }
    }
  }
  if (!/Session|Depends|session/.test(model.source)) return out;
  let backgroundInScope: boolean | null = null;
  for (const fn of model.functions) {
    if (fn.role !== 'handler') continue;
    const sessions = injectedSessions(model, project, fn);
    if (!sessions.length) continue;
    backgroundInScope ??= yieldDependencyOutlivesStream(project);
    for (const call of callsOf(model, fn.index)) {
      if (call.functionIndex !== fn.index || isDetachedTask(model, fn, call)) continue;
      // A module-level function of this file: the file rule follows it.
      if (!call.hasReceiver && model.functions.some((f) => f.parent < 0 && !f.className && f.name === call.calleeText)) continue;
      for (const s of sessions) {
        const arg = argumentOf(call, s.name);
        if (arg === null) continue;
        const site: SessionArgSite = { session: s.name, arg, functionScope: !!s.functionScope, backgroundInScope };
        out[fn.index]!.push({ kind: SESSION_ARG_CALL, what: JSON.stringify(site), line: call.line, column: call.column });
      }
    }
  }
  return out;
}

const SESSION_ARG_CALLS: ReadonlySet<string> = new Set([SESSION_ARG_CALL]);

/**
 * Flask streams a generator body after the view has returned and the request (and app) context
 * has been torn down: the request's scoped session has been removed by then. A generator that
 * queries it without `stream_with_context` gets Flask-SQLAlchemy's "working outside of
 * application context", or, with a project `scoped_session`, a new session on that thread that
 * nothing removes (its connection held until the thread's next request).
 */
function reportFlaskAfterTeardown(ctx: FileRuleContext): void {
  const { model } = ctx;
  const seen = new Set<number>();
  for (const view of model.functions) {
    if (view.role !== 'handler') continue;
    for (const stream of flaskStreams(model, view, true)) {
      if (stream.withContext || seen.has(stream.generator.index)) continue;
      const use = generatorSessionUse(model, stream.generator);
      if (!use) continue;
      seen.add(stream.generator.index);
      const where = use.query === use.at ? `the generator \`${stream.generator.name}\`` : `the generator \`${stream.generator.name}\` (through \`${model.functions[use.query.functionIndex]!.name}\`, line ${use.query.line})`;
      ctx.report({
        node: use.at.node,
        message: `\`${use.query.calleeText}\` in ${where} uses the request's session while Flask streams the response, after the request context is gone (no \`stream_with_context\`): Flask-SQLAlchemy raises "working outside of application context", and a scoped session removed at teardown is made again on this thread and never removed`,
        severity: 'high',
        function: view.name,
        recommendation: 'wrap the generator in `stream_with_context(...)` (the session then lives, with its connection, until the stream ends; not for a session an `after_request` hook removes), or load the rows before returning, or open and close a session inside the generator',
      });
    }
  }
}

const STREAM_AFTER_TEARDOWN_SITES: ReadonlySet<string> = new Set([STREAM_AFTER_TEARDOWN]);

/**
 * The repo phase of {@link reportFlaskAfterTeardown}: a call in the streamed generator that reaches
 * a query through the repo's functions (a helper of another module, an action looked up by name).
 * Reported once per generator, at its first such call.
 */
function reportStreamAfterTeardown(ctx: RepoRuleContext): void {
  const graph = callGraphOf(ctx.index);
  const done = new Set<string>();
  for (const { ref, file, fn, site, call, to } of siteCalls(graph, STREAM_AFTER_TEARDOWN_SITES)) {
    const key = `${ref.file}:${ref.fn}`;
    if (done.has(key) || call.receiverType === UNTYPED) continue;
    const reach = graph.effectsOfCall(ref, call, to, 'sync').get(QUERY_KIND);
    if (!reach || reach.weak) continue;
    // A query on a session or connection the querying function opens itself needs no request.
    if (graph.ownEffects(reach.steps[reach.steps.length - 1]!.fn).some((e) => OWN_HANDLE.has(e.kind))) continue;
    done.add(key);
    ctx.report({
      path: file.path,
      location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
      message: `\`${call.calleeText}()\` in the generator \`${fn.name}\` that the view \`${site.what}\` streams reaches a query (\`${reach.effect.what}\`) after the request has ended (no \`stream_with_context\`): Flask-SQLAlchemy raises "working outside of application context", and a project's scoped session, removed when the request ended (a teardown or \`after_request\` hook), is made again on this thread, its transaction holding a pooled connection until the thread's next request ends`,
      severity: 'medium',
      function: fn.name,
      chain: graph.chainSteps(reach, { ref, call }),
      recommendation: 'remove the session when the generator ends (`try: ... finally: Session.remove()`), or load what it needs before returning; `stream_with_context(...)` keeps a session that a teardown hook removes, not one an `after_request` hook removes',
    });
  }
}

/** dbCalls.ts `QUERY_EFFECT`. */
const QUERY_KIND = 'query';
/** transaction effects: a function that opens (and commits) a session or connection of its own. */
const OWN_HANDLE: ReadonlySet<string> = new Set(['opens_session', 'commit_own']);
/** A `with` item that pushes an application or request context (`with app.app_context():`). */
const PUSHES_CONTEXT = /\b(app_context|test_request_context|request_context)\s*\(/;

export const factoryVsInjection: FileRule & RepoRule = {
  meta: {
    code: 'PA406',
    check: 'factory_vs_injection',
    family: 'lifecycle',
    severity: 'critical',
    effort: 'M',
    summary: 'Injected request-scoped session used by long-lived code: SSE/streaming generator, WebSocket loop, background task',
    what: 'Finds a session injected into a handler (`Depends(get_db)` and the like, `session: AsyncSession`) that is used by the generator of a `StreamingResponse` / `EventSourceResponse`, kept by a WebSocket endpoint that loops, or handed to `asyncio.create_task(...)`, or to `BackgroundTasks.add_task(...)` / `starlette.background.BackgroundTask(...)` (a response\'s `background=`) under FastAPI 0.106–0.117 or from a `Depends(..., scope="function")` (closed when the endpoint returns) — directly, or through a helper that the handler passes the session to (of the same module, or of another one: the call graph joins the handler\'s call with the helper\'s hand-off, by position or keyword). Handing over ids is fine. Also a Flask view that streams a generator (`Response(rows())`, returned directly) without `stream_with_context`, when the generator queries the request\'s session (`db.session`, `Model.query`, a project scoped session; itself or through a function of its module): Flask runs the body after the request and app contexts are gone — Flask-SQLAlchemy raises "working outside of application context" (measured with Flask 2.2 and Flask-SQLAlchemy 3.0), and a scoped session removed at teardown is made again on the thread and never removed (high). The streamed generator may be one a function returns (`Response(build(...))` where `build` reads the first page and returns its nested generator), and its query may be reached through the repo\'s functions (another module, an action looked up by name): reported once per generator at its first such call, `medium`, unless a function on the way opens a session or connection of its own, or the call is inside `with app.app_context():`. Critical for SSE/WebSocket, high for background work.',
    why: 'An injected session belongs to the request\'s dependency scope. Long-lived code either holds it (one pooled connection pinned per open stream or socket: a few dozen clients exhaust the pool) or outlives it (a task from `asyncio.create_task` runs on after the request; FastAPI 0.106–0.117 closes `yield` dependencies before background tasks and before the stream: the closed session silently opens a new connection that is never returned). Before 0.106 and from 0.118 the exit code runs after the response is sent, background tasks included, so a `BackgroundTasks` hand-off is reported only for 0.106–0.117.',
    bad: 'import asyncio\n\nfrom fastapi import Depends, FastAPI\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\napp = FastAPI()\n\n\nasync def get_session():\n    ...\n\n\nasync def rebuild_index(session: AsyncSession) -> None:\n    ...\n\n\n@app.post("/reindex")\nasync def reindex(session: AsyncSession = Depends(get_session)):\n    asyncio.create_task(rebuild_index(session))\n    return {"status": "scheduled"}\n',
    good: 'from fastapi import BackgroundTasks, Depends, FastAPI\nfrom sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker\n\napp = FastAPI()\nsession_factory = async_sessionmaker(expire_on_commit=False)\n\n\nasync def rebuild_index() -> None:\n    async with session_factory() as session:\n        ...\n\n\n@app.post("/reindex")\nasync def reindex(tasks: BackgroundTasks):\n    tasks.add_task(rebuild_index)\n    return {"status": "scheduled"}\n',
    fix: 'inject (or import) the session factory and open `async with factory() as s:` where the long-lived code touches the database',
    references: [
      'https://fastapi.tiangolo.com/tutorial/dependencies/dependencies-with-yield/#dependencies-with-yield-httpexception-except-and-background-tasks',
      'https://fastapi.tiangolo.com/release-notes/#01060',
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#when-do-i-construct-a-session-when-do-i-commit-it-and-when-do-i-close-it',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (!model.isTestFile && /\bflask\b|werkzeug/.test(model.source) && /\byield\b/.test(model.source)) reportFlaskAfterTeardown(ctx);
    if (model.isTestFile || !/Session|Depends|session/.test(model.source)) return;
    const outlives = yieldDependencyOutlivesStream(project);
    // Background tasks run inside the response (Starlette runs them after sending the body), so
    // they are inside the dependency scope exactly when the exit code runs after the response:
    // before 0.106 and from 0.118 (unknown: the newest).
    const backgroundInScope = outlives;
    for (const fn of model.functions) {
      if (fn.role !== 'handler') continue;
      const sessions = injectedSessions(model, project, fn);
      if (sessions.length === 0) continue;
      const streams = streamingResponses(model, project, fn);
      for (const s of sessions) {
        // A stream of the data's length (an export) may use the session while FastAPI keeps it
        // open for the stream; an event stream or long-poll never should.
        const stream = streams.find((u) => generatorUsesSession(u, s.name) && (u.sse || (u.generator !== null && isLongLivedGenerator(model, u.generator)) || !outlives));
        // Open during the stream: the exit code runs after the response, and the dependency is
        // not closed when the endpoint returns (`Depends(..., scope="function")`).
        const held = outlives && !s.functionScope;
        if (stream) {
          ctx.report({
            node: s.node,
            message: `injected session \`${s.name}\` is used by the ${stream.sse ? 'SSE' : 'streaming'} generator of \`${fn.name}\`: ${held ? 'it is held as long as the stream' : 'FastAPI has closed it before the stream starts'}`,
            severity: stream.sse ? 'critical' : 'high',
            function: fn.name,
            // Held for the stream is PA402's claim, at the same parameter: one defect, one finding.
            ...(held ? { sameDefectAs: { code: 'PA402', line: s.node.startPosition.row + 1 } } : {}),
          });
        } else if (isWebsocketHandler(fn) && hasOwnLoop(model, fn) && s.viaDepends && websocketHoldsSession(model, project, fn, s.name)) {
          ctx.report({
            node: s.node,
            message: `injected session \`${s.name}\` is held by the WebSocket endpoint \`${fn.name}\` for the whole connection`,
            severity: 'critical',
            function: fn.name,
            // Held while connected is PA402's claim, at the same parameter: one defect, one finding.
            sameDefectAs: { code: 'PA402', line: s.node.startPosition.row + 1 },
          });
        }
        const holders = sessionHolderNames(model, fn, s.name);
        for (const call of callsOf(model, fn.index)) {
          if (call.functionIndex !== fn.index || !isDetachedTask(model, fn, call)) continue;
          if (!handsOver(call, s.name) && !holders.some((h) => handsOver(call, h, true))) continue;
          if ((call.method === 'add_task' || isBackgroundTask(call)) && backgroundInScope && !s.functionScope) continue;
          ctx.report({
            node: call.node,
            message: `injected session \`${s.name}\` handed to ${call.method === 'add_task' || isBackgroundTask(call) ? 'a background task' : 'a detached task'}: it runs after the request's session is closed`,
            severity: 'high',
            function: fn.name,
          });
        }
        // Handed on by a helper of this file: `schedule_reindex(tasks, session)` → `tasks.add_task(reindex, session)`.
        for (const call of model.calls) {
          if (call.functionIndex !== fn.index) continue;
          const via = handedOnByHelper(model, call, s.name);
          if (!via) continue;
          const background = via.task.method === 'add_task' || isBackgroundTask(via.task);
          if (background && backgroundInScope && !s.functionScope) continue;
          ctx.report({
            node: call.node,
            message: `injected session \`${s.name}\` handed to \`${via.helper.name}\`, which passes it to ${background ? 'a background task' : 'a detached task'} (line ${via.task.line}): it runs after the request's session is closed`,
            severity: 'high',
            function: fn.name,
          });
        }
      }
    }
  },
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    reportStreamAfterTeardown(ctx);
    for (const { file, fn, site, call, to } of siteCalls(graph, SESSION_ARG_CALLS)) {
      const arg = JSON.parse(site.what) as SessionArgSite;
      const task = graph.ownEffects(to).find((e) => {
        if (e.kind !== HANDS_PARAM_TO_TASK) return false;
        const [position, name] = e.what.split('|');
        return typeof arg.arg === 'number' ? Number(position) === arg.arg : name === arg.arg;
      });
      if (!task) continue;
      const background = task.what.endsWith('|b');
      if (background && arg.backgroundInScope && !arg.functionScope) continue;
      const helper = graph.function(to);
      ctx.report({
        path: file.path,
        location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
        message: `injected session \`${arg.session}\` handed to \`${helper.name}\` (${graph.fileOf(to).path}), which passes it to ${background ? 'a background task' : 'a detached task'} (line ${task.line}): it runs after the request's session is closed`,
        severity: 'high',
        function: fn.name,
        chain: [
          { path: file.path, line: call.line, column: call.column, function: fn.qualifiedName, call: call.calleeText },
          { path: graph.fileOf(to).path, line: task.line, column: task.column, function: helper.qualifiedName, call: background ? 'add_task' : 'create_task' },
        ],
      });
    }
  },
};
