/**
 * PA409 concurrent_session
 *
 * What it does: finds one `AsyncSession` (or asyncpg connection) handed to coroutines that run at
 * the same time: `asyncio.gather(f(session, a), g(session, b))`,
 * `asyncio.gather(*(load(session, i) for i in ids))`, `gather(session.execute(q1),
 * session.execute(q2))`, or a task started on it per item of a loop (`asyncio.create_task`,
 * `ensure_future`, a `TaskGroup`'s `create_task`, anyio's `start_soon`).
 * Why is this bad? An `AsyncSession` is not safe for concurrent use: it has one connection and one
 * transaction. Two coroutines using it at once fail with `InvalidRequestError` ("This session is
 * provisioning a new connection; concurrent operations are not permitted") or
 * `IllegalStateChangeError`, or interleave their statements in one transaction. asyncpg raises
 * `InterfaceError: another operation is in progress`.
 *
 * Silent: coroutines that each open their own session (`async with Maker() as s:` inside),
 * coroutines given the session factory rather than a session, a session passed to only one
 * coroutine of the gather, and tasks awaited one at a time.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import { assignmentsTo, callAt, callsOf, type CallInfo, type FileModel } from '../../../semantic/model.js';
import { exclusiveArms } from '../../../semantic/controlFlow.js';
import { asyncHandles, type AsyncHandleTest as SessionTest } from '../../../semantic/asyncSessions.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import type { Effect } from '../../../analysis/summary.js';
import type { ProjectContext } from '../../../discovery/context.js';
import { callGraphOf, ownSites, type FnRef } from '../../../analysis/callgraph.js';
import { OPENS_SESSION } from '../transaction/missing_rollback.js';
import { UNTYPED } from '../../../analysis/objects.js';
import { FLUSH_EFFECT, QUERY_EFFECT, WRITE_EFFECT } from '../query/dbCalls.js';
import { callArgs, unwrap } from '../query/semantics.js';
import { bindsName } from '../../../semantic/codeText.js';

const GATHER = new Set(['asyncio.gather', 'asyncio.wait', 'asyncio.as_completed']);
const SPAWN = new Set(['asyncio.create_task', 'asyncio.ensure_future']);
/** Methods that start a task on a task group or loop (`tg.create_task`, `nursery.start_soon`, `loop.create_task`). */
const SPAWN_METHODS = new Set(['create_task', 'start_soon']);

/**
 * Site fact at a gather whose coroutines share a session only through objects of project classes
 * not named for keeping one (`[Retriever(self.session, url).fetch(t) for ...]`): `what` = JSON
 * {name, kind, how, methods: [[line, column], ...]}, the method calls made on those objects. The
 * repo phase reports it when such a method reaches the database.
 */
export const HELD_GATHER = 'held_gather';

/** PA409's file half of {@link HELD_GATHER}. */
export function collectHeldGathers(model: FileModel, project?: ProjectContext): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (!project || model.isTestFile || !/\b(gather|wait|as_completed)\b/.test(model.source)) return out;
  let isSession: SessionTest | null = null;
  for (const call of model.calls) {
    if (call.functionIndex < 0 || !GATHER.has(call.qualifiedName ?? '')) continue;
    isSession ??= asyncHandles(model, project);
    const unsure: SyntaxNode[] = [];
    const shared = gatheredSession(model, call, isSession, unsure);
    if (!shared || !unsure.length || gatheredSession(model, call, isSession)) continue;
    // The method called on each object: `Retriever(...).fetch(t)`.
    const methods: [number, number][] = [];
    for (const ctor of unsure) {
      const attr = ctor.parent;
      const m = attr?.type === 'attribute' && attr.parent?.type === 'call' ? attr.parent : null;
      if (m) methods.push([m.startPosition.row + 1, m.startPosition.column + 1]);
    }
    if (!methods.length) continue;
    out[call.functionIndex]!.push({ kind: HELD_GATHER, what: JSON.stringify({ ...shared, methods, end: [call.node.endPosition.row + 1, call.node.endPosition.column + 1] }), line: call.line, column: call.column });
  }
  return out;
}

export const concurrentSession: FileRule & RepoRule = {
  meta: {
    code: 'PA409',
    check: 'concurrent_session',
    family: 'lifecycle',
    severity: 'high',
    effort: 'S',
    summary: 'One AsyncSession or connection used by coroutines that run at the same time',
    what: 'Finds one `AsyncSession` (typed by an annotation, an `async_sessionmaker` of the project, `AsyncSession(...)`, or an async session provider behind `Depends`) or asyncpg connection handed to coroutines that run concurrently: two or more arguments of `asyncio.gather`/`asyncio.wait` that pass it or call it (`gather(f(session, a), session.execute(q))`), a comprehension of coroutines spread into `gather` (`gather(*(load(session, i) for i in ids))`, also through a name that holds the comprehension), a list of coroutines spread into it from a name (`coros = [a(session), b(session)]`, or `tasks = []` filled with `tasks.append(load(session, i))` in a loop before the gather), a task started on it inside a loop (`asyncio.create_task`, `ensure_future`, a task group\'s `create_task`, anyio\'s `start_soon`), and a second task started on it while an earlier one (not awaited yet) may still run. The session may be the one an object keeps (`self.session`, bound from its `__init__`\'s parameter: `[PartService(self.session, s).fetch(i) for s in sources]`, `gather(self.session.scalar(a), self.session.scalar(b))`). Also an object of any other class of the project handed the session (`[Retriever(self.session, url).fetch(t) for ...]`, the class in any module) when the method called on it reaches the database (decided in the repo phase). Silent when each coroutine gets the session factory instead of a session, when only one coroutine gets the session, when the objects\' method never reaches the database, and when the tasks are awaited one at a time.',
    why: 'An `AsyncSession` has one connection and one transaction and is not safe for concurrent use: coroutines sharing it fail with `InvalidRequestError` ("concurrent operations are not permitted") or `IllegalStateChangeError`, or interleave their statements in one transaction. An asyncpg connection raises `InterfaceError: another operation is in progress`.',
    bad: 'import asyncio\n\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\n\nasync def load(session: AsyncSession, item_id: int):\n    return await session.get(Item, item_id)\n\n\nasync def load_all(session: AsyncSession, ids: list[int]):\n    return await asyncio.gather(*(load(session, i) for i in ids))\n',
    good: 'from sqlalchemy import select\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\n\nasync def load_all(session: AsyncSession, ids: list[int]):\n    return (await session.scalars(select(Item).where(Item.id.in_(ids)))).all()\n',
    fix: 'one query for the whole set, or await the calls one after the other, or give each task its own session (`async with Maker() as s:` inside the task)',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#is-the-session-thread-safe-is-asyncsession-safe-to-share-in-concurrent-tasks',
      'https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html#using-asyncsession-with-concurrent-tasks',
    ],
  },
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    for (const { ref, file, site } of ownSites(graph, HELD_GATHER)) {
      const fact = JSON.parse(site.what) as { name: string; kind: string; how: string; methods: [number, number][]; end: [number, number] };
      // A method called on the objects reaches the database (on the session they were handed).
      // (The constructor's call starts where the method's does: the method is the call on its result.)
      const calls = graph.index.files[ref.file]!.calls;
      const reaching = fact.methods.flatMap(([line, column]) => calls.filter((c) => c.line === line && c.column === column && c.receiverType && c.receiverType !== UNTYPED))
        .map((c) => graph.resolveCall(ref.file, c)).find((to): to is NonNullable<typeof to> => {
          if (!to) return false;
          const reach = graph.effectOf(to, QUERY_EFFECT, 'any') ?? graph.effectOf(to, WRITE_EFFECT, 'any') ?? graph.effectOf(to, FLUSH_EFFECT, 'any');
          // Not on a session or connection the method (or a function on the way) opens itself.
          const opensOwn = (f: FnRef) => graph.ownEffects(f).some((e) => e.kind === OPENS_SESSION);
          return !!reach && !reach.weak && !opensOwn(to) && !reach.steps.some((st) => opensOwn(st.fn));
        });
      if (!reaching) continue;
      // (`asyncio.gather` is no call of the repo: the site carries its span.)
      ctx.report({
        path: file.path,
        location: { line: site.line, column: site.column, endLine: fact.end[0], endColumn: fact.end[1] },
        message: `\`asyncio.gather\` runs ${fact.how} at the same time on one ${fact.kind} \`${fact.name}\`, handed to each object (\`${graph.function(reaching).qualifiedName}\` runs its statements on it): it is not safe for concurrent use (one connection, one transaction); await them one after the other, or give each its own session`,
        function: graph.function(ref).name,
      });
    }
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile || !/\b(gather|wait|as_completed|create_task|ensure_future|start_soon)\b/.test(model.source)) return;
    const isSession = asyncHandles(model, project);
    /** Per function: the sessions tasks were started on so far (outside loops), and by which call. */
    const spawned = new Map<string, { name: string; call: CallInfo }[]>();
    for (const call of model.calls) {
      if (call.functionIndex < 0) continue;
      const q = call.qualifiedName ?? '';
      if (GATHER.has(q)) {
        const shared = gatheredSession(model, call, isSession);
        if (shared) {
          ctx.report({
            node: call.node,
            message: `\`${q}\` runs ${shared.how} at the same time on one ${shared.kind} \`${shared.name}\`: it is not safe for concurrent use (one connection, one transaction); await them one after the other, make it one query, or give each its own session`,
          });
        }
        continue;
      }
      if (!(SPAWN.has(q) || (call.hasReceiver && SPAWN_METHODS.has(call.method)))) continue;
      // Awaited before the next iteration starts another: one at a time.
      if (call.awaited || (call.loops.length && awaitedInIteration(model, call))) continue;
      const used = spawnedSessions(model, call, isSession);
      if (!call.loops.length) {
        // Inside `asyncio.wait([...])`/`gather(...)`: reported there.
        if (insideGather(model, call)) continue;
        // Two tasks started on one session in a row, before either is awaited: they overlap.
        const earlier = spawned.get(`${call.functionIndex}`) ?? [];
        const shared = used.find((u) => earlier.some((e) => e.name === u.name && !awaitedBetween(model, e.call, call)));
        spawned.set(`${call.functionIndex}`, [...earlier, ...used.map((u) => ({ name: u.name, call }))]);
        if (shared) {
          ctx.report({
            node: call.node,
            message: `\`${call.calleeText}\` starts a second task on ${shared.kind} \`${shared.name}\` while the first one may still run: the tasks share one session, which is not safe for concurrent use; await each in turn, or give each task its own session`,
          });
        }
        continue;
      }
      // The session must outlive the loop's iterations: bound before the loop, not per item.
      const loopStart = model.loops[call.loops[call.loops.length - 1]!]!.node.startIndex;
      const outer = used.find((u) => u.boundAt < loopStart);
      if (!outer) continue;
      ctx.report({
        node: call.node,
        message: `\`${call.calleeText}\` starts a task on ${outer.kind} \`${outer.name}\` on every iteration of the loop: the tasks run at the same time on one session, which is not safe for concurrent use; await each call in turn, or give each task its own session`,
      });
    }
  },
};

interface SessionUse {
  name: string;
  kind: string;
  /** Where the name was bound (its assignment or parameter), to tell a per-item session from a shared one. */
  boundAt: number;
}

function insideGather(model: FileModel, call: CallInfo): boolean {
  for (let p = call.node.parent; p && p.type !== 'function_definition'; p = p.parent) {
    if (p.type === 'call' && GATHER.has(callAt(model, p)?.qualifiedName ?? '')) return true;
  }
  return false;
}

/** The sessions a task-starting call hands its coroutine (or, for `start_soon(fn, ...)`, its arguments). */
function spawnedSessions(model: FileModel, call: CallInfo, isSession: SessionTest): SessionUse[] {
  const args = callArgs(call.node).positional;
  const coroutine = unwrap(args[0] ?? null);
  // anyio's `tg.start_soon(load, session, i)`: the function and its arguments.
  if (call.method === 'start_soon' && coroutine?.type !== 'call') return args.slice(1).flatMap((a) => sessionsUsedBy(model, a, call.functionIndex, call.line, isSession));
  return coroutine?.type === 'call' ? sessionsUsed(model, coroutine, call.functionIndex, isSession) : [];
}

/** Is the first task's handle (`t1 = create_task(...)`) awaited before the second call starts? */
function awaitedBetween(model: FileModel, first: CallInfo, second: CallInfo): boolean {
  let p = first.node.parent;
  while (p?.type === 'parenthesized_expression') p = p.parent;
  if (p?.type !== 'assignment') return false;
  const target = p.childForFieldName('left');
  if (target?.type !== 'identifier') return false;
  return new RegExp(`\\bawait\\s+${target.text}\\b`).test(model.source.slice(p.endIndex, second.node.startIndex));
}

/** `t = create_task(...)` awaited (`await t`) later in the same loop body. */
function awaitedInIteration(model: FileModel, call: CallInfo): boolean {
  let p = call.node.parent;
  while (p?.type === 'parenthesized_expression') p = p.parent;
  if (p?.type !== 'assignment') return false;
  const target = p.childForFieldName('left');
  if (target?.type !== 'identifier') return false;
  const loop = model.loops[call.loops[call.loops.length - 1]!]!;
  const rest = model.source.slice(p.endIndex, loop.node.endIndex);
  return new RegExp(`\\bawait\\s+${target.text}\\b`).test(rest);
}

/** A session an argument is (a name that holds one). */
function sessionsUsedBy(model: FileModel, arg: SyntaxNode, fnIndex: number, line: number, isSession: SessionTest): SessionUse[] {
  const v = unwrap(arg);
  if (v?.type !== 'identifier') return [];
  const s = isSession(v.text, fnIndex, line);
  return s ? [{ name: v.text, ...s }] : [];
}

/** Class names that say the object keeps a session for its statements. */
const SESSION_HOLDER = /(repo|repository|service|store|dao|uow|unitofwork|unit_of_work|manager|crud|queries|query|gateway|adapter)s?$/i;

/**
 * The sessions an object is built on: `UserRepo(session)`, `Service(db=session)` (a class, by its
 * CamelCase name), written in place or bound to the name once before the line in the function.
 */
function wrappedSessions(model: FileModel, receiver: SyntaxNode | null, fnIndex: number, line: number, isSession: SessionTest, unsure?: SyntaxNode[]): SessionUse[] {
  let v = unwrap(receiver);
  if (v?.type === 'identifier') {
    const name = v.text;
    const bound = assignmentsTo(model, name).filter((a) => a.functionIndex === fnIndex && a.target === name && a.line <= line);
    v = bound.length === 1 && bound[0]!.value ? unwrap(bound[0]!.value) : null;
  }
  if (v?.type !== 'call') return [];
  const callee = v.childForFieldName('function')?.text ?? '';
  // A class named for keeping a session (`UserRepo`, `OrderService`, `Store`); a `Notifier` given
  // a session and an HTTP client may use only the client.
  // Any other class of the project handed the session (`Retriever(session, url)`) is `unsure`: the
  // repo phase asks whether the method called on it reaches the database.
  if (!/^[A-Z]\w*$/.test(callee.slice(callee.lastIndexOf('.') + 1)) || (!SESSION_HOLDER.test(callee) && !unsure)) return [];
  const { positional, keywords } = callArgs(v);
  const out: SessionUse[] = [];
  for (const a of [...positional, ...keywords.values()]) {
    const id = unwrap(a);
    if ((id?.type !== 'identifier' && !(id?.type === 'attribute' && /^self\.\w+$/.test(id.text))) || out.some((u) => u.name === id.text)) continue;
    const s = isSession(id.text, fnIndex, line);
    if (s) out.push({ name: id.text, ...s });
  }
  if (out.length && !SESSION_HOLDER.test(callee)) unsure!.push(v);
  return out;
}

/** The session names a coroutine call uses: passed as an argument (positional or keyword), or the receiver it is called on. */
function sessionsUsed(model: FileModel, call: SyntaxNode, fnIndex: number, isSession: SessionTest, unsure?: SyntaxNode[]): SessionUse[] {
  const out: SessionUse[] = [];
  const line = call.startPosition.row + 1;
  const add = (n: SyntaxNode | null) => {
    const v = unwrap(n);
    // A name, or the session the object keeps (`self.session`, typed where the class sets it).
    if ((v?.type !== 'identifier' && !(v?.type === 'attribute' && /^self\.\w+$/.test(v.text))) || out.some((u) => u.name === v.text)) return;
    const s = isSession(v.text, fnIndex, line);
    if (s) out.push({ name: v.text, ...s });
  };
  const { positional, keywords } = callArgs(call);
  for (const a of positional) add(a);
  for (const v of keywords.values()) add(v);
  const fn = call.childForFieldName('function');
  if (fn?.type === 'attribute') {
    const receiver = fn.childForFieldName('object');
    add(receiver);
    // `repo.count()` with `repo = UserRepo(session)`, or `UserRepo(session).count()`: an object
    // built on the session runs its statements on it.
    for (const u of wrappedSessions(model, receiver, fnIndex, line, isSession, unsure)) if (!out.some((o) => o.name === u.name)) out.push(u);
  }
  // `one(i)` where `async def one(i): return await session.get(...)` is defined in this function:
  // the closure uses the enclosing function's session without being handed it.
  if (fn?.type === 'identifier') {
    const inner = model.functions.find((f) => f.parent === fnIndex && f.isAsync && f.name === fn.text && f.body);
    if (inner) {
      const body = inner.body!;
      const own = new Set([...inner.params.map((p) => p.name), ...model.assignments.filter((a) => a.functionIndex === inner.index).map((a) => a.target)]);
      for (const name of body.descendantsOfType('identifier')) {
        // A variable read: not `ctx.session`'s attribute name, nor `f(session=own)`'s keyword.
        const p = name.parent;
        if (p?.type === 'attribute' && p.childForFieldName('attribute')?.id === name.id) continue;
        if (p?.type === 'keyword_argument' && p.childForFieldName('name')?.id === name.id) continue;
        if (own.has(name.text) || bindsName(body.text, name.text)) continue;
        add(name);
      }
    }
  }
  return out;
}

/** Is `name` bound inside loop `loop` (an assignment or a `with ... as name` in its body)? */
function sessionMadeIn(model: FileModel, name: string, loop: number, fnIndex: number): boolean {
  const node = model.loops[loop]?.node;
  const body = node?.childForFieldName('body');
  if (!node || !body) return false;
  // Bound by a call in the loop's own block, on every pass (not `if s is None: s = Maker()`, made once).
  const direct = (n: SyntaxNode) => n.parent?.type === 'expression_statement' && n.parent.parent?.id === body.id;
  if (assignmentsTo(model, name).some((a) => a.functionIndex === fnIndex && a.loops.includes(loop) && a.value?.type === 'call' && direct(a.node))) return true;
  return model.withs.some((w) => w.functionIndex === fnIndex && w.node.parent?.id === body.id && w.items.some((i) => i.alias === name));
}

/** The session two or more coroutines of a `gather` share, and how they were written; null when none. */
function gatheredSession(model: FileModel, gather: CallInfo, isSession: SessionTest, unsure?: SyntaxNode[]): { name: string; kind: string; how: string } | null {
  const fnIndex = gather.functionIndex;
  let { positional } = callArgs(gather.node);
  // `asyncio.wait([a(s), b(s)])`, `as_completed([f(s, i) for i in ids])`: the coroutines in one list.
  const first = unwrap(positional[0] ?? null);
  if (gather.qualifiedName !== 'asyncio.gather' && (first?.type === 'list' || first?.type === 'tuple' || first?.type === 'set')) positional = first.namedChildren;
  const listed = gather.qualifiedName !== 'asyncio.gather' && (first?.type === 'list_comprehension' || first?.type === 'generator_expression');
  // `gather(*(f(session, x) for x in xs))`, `gather(*[...])`, `gather(*coros)` with `coros = [...]`.
  let appended: CallInfo[] = [];
  let comprehension: SyntaxNode | null = null;
  if (listed || (positional.length === 1 && positional[0]!.type === 'list_splat')) {
    let inner = listed ? first : unwrap(positional[0]!.namedChild(0));
    if (inner?.type === 'identifier') {
      const name = inner.text;
      const a = assignmentsTo(model, name).filter((x) => x.functionIndex === fnIndex && x.target === name && x.line <= gather.line).pop();
      inner = a?.value ? unwrap(a.value) : null;
      // `coros = [a(session), b(session)]`: the coroutines, as if written in the call.
      // `tasks = []` then `tasks.append(load(session, i))` before the gather: each appended one.
      if (a && (inner?.type === 'list' || inner?.type === 'tuple')) {
        appended = callsOf(model, fnIndex).filter((c) => c.functionIndex === fnIndex && c.calleeText === `${name}.append` && c.node.startIndex > a.node.endIndex && c.node.startIndex < gather.node.startIndex);
        positional = inner.namedChildren;
        inner = null;
      }
    }
    if (inner && inner.type !== 'generator_expression' && inner.type !== 'list_comprehension') return null;
    comprehension = inner;
  }
  if (comprehension) {
    const inner = comprehension;
    const body = unwrap(inner.childForFieldName('body'));
    const element = body?.type === 'await' ? null : body?.type === 'call' ? body : null;
    if (!element) return null;
    const loopNames = new Set<string>();
    for (const clause of inner.namedChildren) {
      if (clause.type === 'for_in_clause') for (const id of clause.childForFieldName('left')?.descendantsOfType('identifier') ?? []) loopNames.add(id.text);
    }
    const used = sessionsUsed(model, element, fnIndex, isSession, unsure).filter((u) => !loopNames.has(u.name));
    const u = used[0];
    const callee = callAt(model, element)?.calleeText ?? 'coroutine';
    return u ? { name: u.name, kind: u.kind, how: `one \`${callee}\` per item` } : null;
  }
  const seen = new Map<string, { kind: string; count: number; perItem?: string }>();
  // An append in a loop the gather is not in adds one coroutine per item: two or more.
  const fnBody = fnIndex >= 0 ? model.functions[fnIndex]!.body : null;
  // Appends in arms of one `if` that exclude each other (`if fast: tasks.append(a(s)) else:
  // tasks.append(b(s))`) add one coroutine between them, not two: per session, only the appends
  // that can all run on one path count.
  const onPath = new Map<string, CallInfo[]>();
  const items = [
    ...positional.map((arg) => ({ arg, many: false, loop: -1, append: null as CallInfo | null })),
    ...appended.map((c) => {
      const loop = c.loops.find((l) => !gather.loops.includes(l)) ?? -1;
      return { arg: callArgs(c.node).positional[0] ?? null, many: loop >= 0, loop, append: c };
    }),
  ];
  for (const { arg, many, loop, append } of items) {
    let c = unwrap(arg);
    // `ensure_future(load(session, 1))` in the list: the coroutine it wraps. Started in a loop,
    // it is the task-in-a-loop finding already (reported at the `create_task`).
    if (c?.type === 'call' && /^(asyncio\.)?(ensure_future|create_task)$/.test(c.childForFieldName('function')?.text ?? '')) {
      if (many) continue;
      c = unwrap(callArgs(c).positional[0] ?? null);
    }
    if (c?.type !== 'call') continue;
    for (const u of sessionsUsed(model, c, fnIndex, isSession, unsure)) {
      // A session made in the loop's own iteration (`s = Maker()` there): one per item, not shared.
      if (many && sessionMadeIn(model, u.name, loop, fnIndex)) continue;
      if (append && !many) {
        const chosen = onPath.get(u.name) ?? [];
        if (chosen.some((o) => exclusiveArms(o.node, append.node, fnBody))) continue;
        onPath.set(u.name, [...chosen, append]);
      }
      const s = seen.get(u.name) ?? { kind: u.kind, count: 0 };
      s.count += many ? 2 : 1;
      if (many) s.perItem ??= callAt(model, c)?.calleeText ?? 'coroutine';
      seen.set(u.name, s);
    }
  }
  for (const [name, s] of seen) if (s.count >= 2) return { name, kind: s.kind, how: s.perItem ? `one \`${s.perItem}\` per item` : `${s.count} coroutines` };
  return null;
}
