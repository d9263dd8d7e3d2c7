/**
 * PA212 enqueue_before_commit
 *
 * What it does: finds a background job enqueued with an object the function wrote in a
 * transaction that is still open — `db.add(order); db.flush(); send_receipt.delay(order.id);
 * db.commit()` — for Celery (`.delay`, `.apply_async`, `send_task`), RQ (`enqueue`, `enqueue_call`,
 * `enqueue_in`, `enqueue_at`), arq (`enqueue_job`), taskiq (`.kiq`) and dramatiq
 * (`send_with_options`).
 * Why is this bad? The broker hands the job to a worker at once, often before the web process
 * reaches `commit()`: the worker reads the row and does not find it (or finds the values from
 * before the change), and if the commit then fails the job acts on a row that never existed.
 *
 * Also (repo phase): in a request handler, a row a repository-library service made (a flush the
 * request scope commits after the handler) handed to a job or a Litestar `app.emit` listener; in
 * a function that commits nothing, a job about an object after a method of that object that
 * flushes changes (`self.make_primary(email)` then `refresh.delay(self)`), or after adding a row it
 * built to a session it was handed: the caller commits later; inside `with session_scope() as s:`
 * over a project provider that commits after its `yield`: the block commits when it ends.
 *
 * Also a stored row the function changed (`c = db.get(Claim, i); c.state = "held"`, a parameter
 * typed with a model, `self` in a model's method) before a job about it, in a function that
 * commits nothing: medium, since the worker finds the row, with its old values (a new row it does
 * not find at all is high).
 *
 * Silent: the job enqueued after the commit, inside no open transaction of the function (other
 * than those cases, a caller's transaction is not visible here), with arguments that name
 * nothing the transaction wrote, or only the new values themselves.
 */
import { callAt, callsOf, resolveImported, type AssignmentInfo, type CallInfo, type FileModel, type FunctionInfo, selfOffset } from '../../../semantic/model.js';
import { dependencyAliasOf } from '../../../semantic/dependencyAliases.js';
import type { Effect } from '../../../analysis/summary.js';
import { callGraphOf, siteCalls, type FnRef } from '../../../analysis/callgraph.js';
import { UNTYPED } from '../../../analysis/objects.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import type { SyntaxNode } from '../../../parse/parser.js';
import { assignmentsByFunction, callArgs, isCommitCall, modelOfObject, transactionRegions, unwrap, type TransactionRegion } from './semantics.js';
import { MAY_COMMIT_EFFECT, PARAM_WRITE, RETURNS_ADDED } from './missing_commit.js';
import { lastAssignment, loopTarget } from '../query/semantics.js';
import { FLUSH_EFFECT, receiverEvidence, rowsSource, WRITE_EFFECT } from '../query/dbCalls.js';
import { blockHolds, conditionalInFunction } from '../../../semantic/controlFlow.js';
import { LIBRARY_WRITES } from '../../../semantic/repositoryLibrary.js';
import { libraryReach } from './libraryReach.js';
import { COMMITS_YIELDED } from './long_held_transaction.js';

/** Methods that hand a job to a queue. */
const ENQUEUE = new Set(['delay', 'apply_async', 'send_task', 'enqueue', 'enqueue_call', 'enqueue_in', 'enqueue_at', 'enqueue_job', 'kiq', 'send_with_options']);
/** What a worker sees of a row the transaction only changed: it exists, with its old values. */
const STALE = 'read the row as it was before the change';
/** Session calls that stage or send an object: its first argument is what is written. */
const STAGES = new Set(['add', 'merge', 'delete']);

export const enqueueBeforeCommit: FileRule & RepoRule = {
  meta: {
    code: 'PA212',
    check: 'enqueue_before_commit',
    family: 'transaction',
    severity: 'high',
    effort: 'S',
    summary: 'A background job enqueued with a row the open transaction wrote, before the commit',
    what: 'Finds a job enqueued (Celery `.delay`/`.apply_async`/`send_task`, RQ `enqueue*`, arq `enqueue_job`, taskiq `.kiq`, dramatiq `send_with_options`) between a session\'s write and its commit in the same function — a `with session.begin():` block counts — when the job\'s arguments name an object that the transaction added, merged, deleted or changed (`db.add(order)`, `order.status = "paid"`, then `task.delay(order.id)`). Also in a request handler whose session `Depends(provider)` injects, when the handler writes the object through it and never commits it while the provider commits after its `yield`: that commit comes after the handler returned, so after the job was sent. Also through a helper of the repo: the written object handed, before the commit, to a function that enqueues a job with that parameter (`invoice_issued(invoice)` running `mail_invoice.delay(invoice.id)`), unless the helper commits before it enqueues. Also in a request handler that makes the object through a repository-library service (`user = await users.create(data)`, advanced-alchemy: a flush, committed by the request scope after the handler returns), then enqueues a job or emits a Litestar event with it (`request.app.emit(...)`: Litestar runs listeners concurrently, on sessions of their own); and in a function that commits nothing, after a method of the object that flushes changes (`self.make_primary(email)` then `refresh.delay(self)`), or after adding a row it built to a session it was handed (`u = User(...); db.add(u); db.flush(); welcome.delay(u.id)` in a service the handler calls, with no `commit()` or `begin()` of `db` in it nor in what it calls): the caller commits later. Also inside `with provider() as s:` where the project\'s provider is a generator that commits what it yields after the `yield` (SQLAlchemy\'s `session_scope()` pattern): the block commits when it ends, after a job enqueued in it about a row it wrote. The object may come from a helper handed the session that writes it without committing (`run = _insert_run(s, ...)` then `start.delay(run.id)`, in such a block or in a `with Maker.begin() as s:` block): the helper must return an object it added or changed: one that only reads it (`s.get(...)`), even beside a write of another row, leaves it alone, and so does a job sent after the block. Also a stored row the function changed (an attribute assigned, maybe then `flush()`) in a function that ends no transaction itself (no `commit()`, no `begin()` in it or in what it calls): a row loaded through a session it did not open (`c = db.get(Claim, i); c.state = "held"; settle.delay(c.id)`), a parameter typed with a model, a row of a loop over a query, or `self` in a method of a model: the caller commits later. Severity: high when the row is new (added, merged, inserted: the worker does not find it at all) or deleted; medium when the job is about a row that already exists and was only changed (attributes, an UPDATE, a method of the row that flushes its own change): the worker finds it and reads its old values, a stale read rather than a missing row. Silent when the job is enqueued after the commit, when no transaction of the function is open there (and no provider commits later), when its arguments name nothing the transaction wrote, when they hand the worker only the values just set (`c.adjuster = who; notify.delay(c.adjuster)`: nothing to read back), when the row comes from a session the function opened and never commits (the change is lost, PA208), and when the job is sent from an after-commit hook (`event.listen(db, "after_commit", ...)`, a lambda or nested function run later).',
    why: 'The broker hands the job to a worker immediately, usually before the web process reaches `commit()`: the worker looks the row up and does not find it, or reads the values from before the change; and when the commit fails, the job acts on a row that was never saved.',
    bad: 'from sqlalchemy.orm import Session\n\nfrom app.jobs import send_receipt\n\n\ndef place(db: Session, order: Order) -> None:\n    db.add(order)\n    db.flush()\n    send_receipt.delay(order.id)\n    db.commit()\n',
    good: 'from sqlalchemy.orm import Session\n\nfrom app.jobs import send_receipt\n\n\ndef place(db: Session, order: Order) -> None:\n    db.add(order)\n    db.commit()\n    send_receipt.delay(order.id)\n',
    fix: 'enqueue after the commit (or from an after-commit hook: `event.listen(session, "after_commit", ...)`, Django\'s `transaction.on_commit`), or use a transactional outbox',
    references: [
      'https://docs.celeryq.dev/en/stable/userguide/tasks.html#database-transactions',
      'https://docs.sqlalchemy.org/en/20/orm/events.html#sqlalchemy.orm.SessionEvents.after_commit',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    if (model.isTestFile || !/\.(delay|apply_async|send_task|enqueue\w*|kiq|send_with_options)\s*\(/.test(model.source)) return;
    for (const call of model.calls) {
      if (call.functionIndex < 0 || !call.hasReceiver || !ENQUEUE.has(call.method) || deferred(call)) continue;
      const named = argumentNames(call);
      if (!named.size) continue;
      // From the session's first statement: a read begins the transaction too (autobegin), and a
      // row it loaded and the code then changed is written by the same commit.
      const at = call.node.startIndex;
      const open = [...transactionRegions(model, true).filter((r) => r.fnIndex === call.functionIndex && at >= r.from && at < r.to), ...pendingUntilCommit(model, call)];
      for (const region of open) {
        const hit = writtenNamed(writtenBefore(model, region, call), call, named);
        if (!hit) continue;
        const [name, { line, changed }] = hit;
        const end = region.commit ? `\`${region.commit.calleeText}()\` (line ${region.commit.line})` : `the end of the \`${region.session}.begin()\` block (line ${region.endLine})`;
        ctx.report({
          node: call.node,
          message: `\`${call.calleeText}()\` enqueues a job with \`${name}\`, which this transaction ${changed ? 'changed' : 'wrote'} (line ${line}), before ${end}: the worker can run first and ${changed ? STALE : 'miss the row or read it unchanged'}; enqueue after the commit`,
          ...(changed ? { severity: 'medium' as const } : {}),
        });
        break;
      }
    }
  },
  /**
   * The request scope: a handler writes through the session `Depends(provider)` injects and
   * enqueues a job about the written object, with no commit of its own: the provider commits
   * after its `yield`, once the handler has returned, so the job was sent first.
   */
  checkRepo(ctx: RepoRuleContext): void {
    const graph = callGraphOf(ctx.index);
    const lib = libraryReach(graph);
    reportHelperEnqueues(ctx, graph);
    reportEnqueueAfterHelperWrites(ctx, graph, lib);
    reportBlockEnqueues(ctx, graph);
    for (const ref of graph.functionsWithEffects(REQUEST_ENQUEUES)) {
      const file = graph.fileOf(ref);
      if (file.isTestFile) continue;
      // A handler that reaches any commit (its own or a helper's) may commit before the job.
      if (graph.reaches(ref, MAY_COMMIT_EFFECT, 'any')) continue;
      for (const e of graph.ownEffects(ref)) {
        if (e.kind !== REQUEST_ENQUEUE) continue;
        const site = JSON.parse(e.what) as RequestEnqueue;
        if (site.libraryWrite) {
          const write = graph.callAt(ref.file, site.libraryWrite[0], site.libraryWrite[1]);
          if (!write || !lib.libraryTyped(write.receiverType)) continue;
          const event = /(^|\.)emit$/.test(site.call);
          ctx.report({
            path: file.path,
            location: { line: e.line, column: e.column, endLine: site.endLine, endColumn: site.endColumn },
            message: `\`${site.call}()\` ${event ? 'hands an event listener' : 'enqueues a job with'} \`${site.name}\`, which \`${site.param}.${write.method}()\` (line ${site.writeLine}) only flushed: the request scope commits it after the handler returns, so ${event ? 'the listener, running concurrently on a session of its own,' : 'the worker'} can run first and miss the row; commit before, or ${event ? 'emit' : 'enqueue'} after the response`,
            function: graph.function(ref).name,
          });
          continue;
        }
        if (site.caller) {
          if (sendsNothing(graph, ref, e.line, e.column)) continue;
          ctx.report({
            path: file.path,
            location: { line: e.line, column: e.column, endLine: site.endLine, endColumn: site.endColumn },
            message: site.changed
              ? `\`${site.call}()\` enqueues a job with \`${site.name}\`, a stored row this function changed (line ${site.writeLine}) and never commits: the commit comes after it returns, so the worker can run first and ${STALE}; enqueue after that commit (or from an after-commit hook)`
              : `\`${site.call}()\` enqueues a job with \`${site.name}\`, which this function added to \`${site.param}\` (line ${site.writeLine}) and never commits: its caller commits after it returns, so the worker can run first and miss the row; enqueue after that commit (return the row and enqueue there, or use an after-commit hook)`,
            function: graph.function(ref).name,
            ...(site.changed ? { severity: 'medium' as const } : {}),
          });
          continue;
        }
        const provider = graph.resolveQualified(site.provider);
        if (!provider || !graph.reaches(provider, MAY_COMMIT_EFFECT, 'any') || sendsNothing(graph, ref, e.line, e.column)) continue;
        const providerName = graph.function(provider).name;
        ctx.report({
          path: file.path,
          location: { line: e.line, column: e.column, endLine: site.endLine, endColumn: site.endColumn },
          message: `\`${site.call}()\` enqueues a job with \`${site.name}\`, ${site.changed ? 'changed' : 'written'} through the request's session \`${site.param}\` (line ${site.writeLine}), which \`${providerName}\` commits only after the handler returns: the worker can run first and ${site.changed ? STALE : 'miss the row or read it unchanged'}; commit before enqueueing, or enqueue after the response`,
          ...(site.changed ? { severity: 'medium' as const } : {}),
          function: graph.function(ref).name,
        });
      }
    }
  },
};

/** Is the enqueue inside a lambda (an after-commit hook, a callback run later), not run here? */
function deferred(call: CallInfo): boolean {
  for (let p = call.node.parent; p && p.type !== 'function_definition'; p = p.parent) if (p.type === 'lambda') return true;
  return false;
}

/** Celery's signature: `task.s(order.id).delay()`, `task.si(...).apply_async()` take the signature's arguments. */
const SIGNATURE = new Set(['s', 'si', 'signature']);

/** The identifiers the job's arguments use as values: `order` in `order.id`, `order`, `{"id": order.id}`. */
function argumentIdentifiers(call: CallInfo): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  const receiver = unwrap(call.receiver);
  const signature = receiver?.type === 'call' && SIGNATURE.has(receiver.childForFieldName('function')?.childForFieldName('attribute')?.text ?? '') ? receiver : null;
  const args = [callArgs(call.node), ...(signature ? [callArgs(signature)] : [])];
  const positional = args.flatMap((a) => a.positional);
  const keywords = new Map(args.flatMap((a) => [...a.keywords]));
  for (const a of [...positional, ...keywords.values()]) {
    for (const id of a.type === 'identifier' ? [a] : a.descendantsOfType('identifier')) {
      const p = id.parent;
      // The object of `x.attr`, or a bare name; not an attribute name or a keyword.
      if (p?.type === 'attribute' && p.childForFieldName('attribute')?.id === id.id) continue;
      if (p?.type === 'keyword_argument' && p.childForFieldName('name')?.id === id.id) continue;
      out.push(id);
    }
  }
  return out;
}

/** Names the job's arguments mention: `order` in `order.id`, `order`, `{"id": order.id}`. */
function argumentNames(call: CallInfo): Set<string> {
  return new Set(argumentIdentifiers(call).map((id) => id.text));
}

/**
 * The first object the transaction wrote that the job's arguments name. A row it only changed
 * counts when the job can read it back: not when every mention is a value it just set
 * (`c.adjuster = who; notify.delay(c.adjuster)`: the worker gets the new value itself).
 */
function writtenNamed(written: Map<string, Written>, call: CallInfo, named: Set<string>): [string, Written] | undefined {
  return [...written].find(([name, w]) => named.has(name) && !(w.changed?.size && onlyNewValues(call, name, w.changed)));
}

/** Is every mention of `name` in the job's arguments `name.<attr>` for an attribute of `attrs`? */
function onlyNewValues(call: CallInfo, name: string, attrs: ReadonlySet<string>): boolean {
  return argumentIdentifiers(call).filter((id) => id.text === name).every((id) => {
    const p = id.parent;
    // `c.adjuster`, not `c.adjuster.upper()`'s receiver chain beyond a plain read nor a method `c.to_dict()`.
    return p?.type === 'attribute' && attrs.has(p.childForFieldName('attribute')?.text ?? '') && p.parent?.type !== 'call';
  });
}

/** Is `name` a stored row of a project model where `a` changes it: a parameter typed with one, a row loaded here, an item of a loop over a query's rows, or `self` in a method of a model class? */
function isRow(model: FileModel, name: string, fnIndex: number, a: { line: number; loops: readonly number[] }): boolean {
  const models = model.modelClasses as Set<string>;
  if (!models.size) return false;
  if (name === 'self') {
    const cls = model.functions[fnIndex]?.className;
    return !!cls && models.has(cls.slice(cls.lastIndexOf('.') + 1));
  }
  return !!modelOfObject(model, name, fnIndex, a.line, models) || loopRow(model, name, a.loops, models);
}

/**
 * What the transaction did to an object: the line of the first write, and for a row it only
 * changed (attributes assigned, an UPDATE naming it; not added, merged, deleted or inserted) the
 * attributes it assigned: the row is in the database already, with its old values.
 */
interface Written {
  line: number;
  changed?: Set<string>;
}

/** Objects the region's session staged or changed before the call, with the line: `session.add(x)`, `x.attr = ...`. */
function writtenBefore(model: FileModel, region: TransactionRegion, call: CallInfo): Map<string, Written> {
  const out = new Map<string, Written>();
  const from = region.kind === 'span' ? region.start.startIndex : region.from;
  const to = call.node.startIndex;
  for (const c of callsOf(model, region.fnIndex)) {
    if (c.functionIndex !== region.fnIndex || c.node.startIndex < from || c.node.startIndex >= to || !STAGES.has(c.method) || !sameSession(c, region.session)) continue;
    const first = unwrap(callArgs(c.node).positional[0] ?? null);
    if (first?.type === 'identifier' && !out.has(first.text)) out.set(first.text, { line: c.line });
  }
  // `order.status = "paid"` on a row of a project model (a parameter typed with one, a row loaded
  // or built here, an item of a loop over a query's rows), changed since the session last
  // committed: the next commit writes it, even when the change came before its first statement.
  const fnStart = model.functions[region.fnIndex]!.start;
  const commits = callsOf(model, region.fnIndex).filter((c) => c.functionIndex === region.fnIndex && c.method === 'commit' && sameSession(c, region.session) && c.node.startIndex < to);
  for (const a of model.assignments) {
    if (a.functionIndex !== region.fnIndex || a.node.startIndex < fnStart || a.node.startIndex >= to) continue;
    const m = /^([A-Za-z_]\w*)\.(\w+)$/.exec(a.target);
    if (!m) continue;
    const seen = out.get(m[1]!);
    if (seen) {
      seen.changed?.add(m[2]!);
      continue;
    }
    if (commits.some((c) => c.node.startIndex > a.node.startIndex)) continue;
    // An object built here and never added is transient: its changes go nowhere.
    if (m[1] !== 'self' && builtHere(model, m[1]!, region.fnIndex, a.line)) continue;
    if (isRow(model, m[1]!, region.fnIndex, a)) out.set(m[1]!, { line: a.line, changed: new Set([m[2]!]) });
  }
  // `session.execute(update(Order).where(Order.id == order_id))`: the local names that pick the rows it writes.
  for (const c of callsOf(model, region.fnIndex)) {
    if (c.functionIndex !== region.fnIndex || c.node.startIndex < from || c.node.startIndex >= to || !sameSession(c, region.session)) continue;
    if (c.method !== 'execute' && c.method !== 'exec') continue;
    const statement = unwrap(callArgs(c.node).positional[0] ?? null);
    const kind = /^(?:sa\.|sqlalchemy\.)?(update|insert|delete)\s*\(/.exec(statement?.text ?? '')?.[1];
    if (!statement || !kind) continue;
    for (const id of statement.descendantsOfType('identifier')) {
      const p = id.parent;
      if (p?.type === 'attribute' && p.childForFieldName('attribute')?.id === id.id) continue;
      if (p?.type === 'keyword_argument' && p.childForFieldName('name')?.id === id.id) continue;
      if (model.imports.has(id.text) || model.moduleDefs.has(id.text) || out.has(id.text)) continue;
      // An UPDATE changes rows that exist (which columns is not followed); an INSERT or DELETE adds or removes one.
      out.set(id.text, kind === 'update' ? { line: c.line, changed: new Set() } : { line: c.line });
    }
  }
  return out;
}

/**
 * Through a helper: the transaction's written object handed to a function of the repo that
 * enqueues a job with that parameter (`order_created(order)` running `send_receipt.delay(order.id)`)
 * before the commit.
 */
function reportHelperEnqueues(ctx: RepoRuleContext, graph: ReturnType<typeof callGraphOf>): void {
  for (const { ref, file, fn, site, call, to } of siteCalls(graph, HANDS_WRITTEN_SITES)) {
    if (call.receiverType === UNTYPED) continue;
    const fact = JSON.parse(site.what) as HandsWritten;
    const enqueue = graph.ownEffects(to).find((e) => e.kind === ENQUEUES_PARAM && (e.what.split('|')[0] ?? '').split(',').some((p) => fact.positions.includes(Number(p))));
    if (!enqueue) continue;
    const what = enqueue.what.split('|')[1] ?? 'a job';
    ctx.report({
      path: file.path,
      location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
      message: `\`${call.calleeText}()\` enqueues a job (\`${what}()\`, line ${enqueue.line} of ${graph.fileOf(to).path}) with \`${fact.name}\`, which this transaction ${fact.changed ? 'changed' : 'wrote'} (line ${fact.writeLine}), before ${fact.end}: the worker can run first and ${fact.changed ? STALE : 'miss the row or read it unchanged'}; enqueue after the commit`,
      ...(fact.changed ? { severity: 'medium' as const } : {}),
      function: fn.name,
      chain: [
        { path: file.path, line: call.line, column: call.column, function: fn.name, call: call.calleeText },
        { path: graph.fileOf(to).path, line: enqueue.line, column: enqueue.column, function: graph.function(to).qualifiedName, call: what },
      ],
    });
  }
}

/**
 * Site fact: a method called on an object before a job about that object is
 * enqueued, in a function that commits nothing itself (`self.make_primary(email)` then
 * `refresh.delay(self)`; `what` = JSON {@link AfterWrite}). The repo phase reports the job when the
 * callee sends writes (a flush, a statement) and commits nothing: the commit is a caller's, later.
 */
export const ENQUEUE_AFTER_CALL = 'enqueue_after_call';
/** Own effect: a method that assigns to an attribute of `self` (or of an object `self` holds). */
export const SETS_SELF = 'sets_self';
const ENQUEUE_AFTER_CALLS: ReadonlySet<string> = new Set([ENQUEUE_AFTER_CALL]);

interface AfterWrite {
  name: string;
  /** `returned`: the object is what the call returned (`order = create_order(db, data)`); else the call is a method of it. */
  returned?: boolean;
  /** The enqueue sits in a `with x.begin():` block, which commits when it ends: that block's text and last line. */
  block?: [string, number];
  /** The enqueueing call: its text and position. */
  call: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
}

/**
 * A job enqueued after a helper flushed writes about its object, in a function that leaves the
 * commit to its caller: the worker can run before that commit.
 */
function reportEnqueueAfterHelperWrites(ctx: RepoRuleContext, graph: ReturnType<typeof callGraphOf>, lib: ReturnType<typeof libraryReach>): void {
  const done = new Set<string>();
  for (const { ref, file, fn, site, call, to } of siteCalls(graph, ENQUEUE_AFTER_CALLS)) {
    if (call.receiverType === UNTYPED) continue;
    const fact = JSON.parse(site.what) as AfterWrite;
    const key = `${file.path}:${fact.line}:${fact.column}`;
    if (done.has(key)) continue;
    // The method changes its own object (`self.x = ...`, `self.address.primary = True`) and sends
    // writes: not a method that only adds another row (`self.log(...)` inserting a log entry).
    // A returned object: the function made (or changed) what it returns and flushed it.
    if (!fact.returned && !graph.ownEffects(to).some((e) => e.kind === SETS_SELF)) continue;
    // (A helper writing through a session parameter it leaves uncommitted counts too, whatever
    // the parameter's name: `def _insert(s, ...): s.add(row); s.flush(); return row`.)
    if (!(graph.reaches(to, WRITE_EFFECT, 'any') || graph.reaches(to, FLUSH_EFFECT, 'any') || (fact.returned && graph.ownEffects(to).some((e) => e.kind === PARAM_WRITE) && graph.ownEffects(to).some((e) => e.kind === RETURNS_ADDED))) || lib.mayCommit([to])) continue;
    // Something between the write and the job that may commit ends the transaction first.
    const between = (at: { line: number; column: number }) => (at.line > call.line || (at.line === call.line && at.column > call.column)) && (at.line < fact.line || (at.line === fact.line && at.column < fact.column));
    if (graph.callees(ref).some((e) => between(e.call) && lib.mayCommit([e.to]))) continue;
    done.add(key);
    ctx.report({
      path: file.path,
      location: { line: fact.line, column: fact.column, endLine: fact.endLine, endColumn: fact.endColumn },
      message: fact.block
        ? `\`${fact.call}()\` enqueues a job with \`${fact.name}\`, which \`${call.calleeText}()\` (line ${call.line}) wrote without committing, inside the \`${fact.block[0]}\` block, which commits only when it ends (line ${fact.block[1]}): the worker can run first and miss the row or read it unchanged; enqueue after the block`
        : fact.returned
        ? `\`${fact.call}()\` enqueues a job with \`${fact.name}\`, which \`${call.calleeText}()\` (line ${call.line}) wrote and flushed without committing, and nothing here commits it: the commit comes later, so the worker can run first and miss the row or read it unchanged; enqueue after the commit (an after-commit hook)`
        : `\`${fact.call}()\` enqueues a job with \`${fact.name}\` after \`${call.calleeText}()\` (line ${call.line}) flushed changes to it, and nothing here commits them: the caller's commit comes later, so the worker can run first and read the row unchanged; enqueue after the commit (an after-commit hook)`,
      function: fn.name,
      // A method changing its own object: the row exists, the worker reads its old values.
      ...(!fact.returned ? { severity: 'medium' as const } : {}),
    });
  }
}

/** Own effect: the function enqueues a job whose arguments name its parameters (`what` = `positions|call`). */
export const ENQUEUES_PARAM = 'enqueues_param';
/** Site fact: an object the open transaction wrote, handed to a call before the commit (`what` = JSON {@link HandsWritten}). */
export const HANDS_WRITTEN = 'hands_written';
const HANDS_WRITTEN_SITES: ReadonlySet<string> = new Set([HANDS_WRITTEN]);

interface HandsWritten {
  positions: number[];
  name: string;
  writeLine: number;
  end: string;
  /** A stored row the transaction only changed: the worker finds it, with its old values. */
  changed?: true;
}

/**
 * PA212's facts for calls through helpers: functions that enqueue a job about one of their
 * parameters outside any transaction of their own (`ENQUEUES_PARAM`), and calls that hand an object
 * the open transaction wrote to a function before the commit (`HANDS_WRITTEN`).
 */
export function collectEnqueueHelpers(model: FileModel): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return out;
  const setsSelf = new Set<number>();
  for (const a of model.assignments) {
    if (a.functionIndex >= 0 && model.functions[a.functionIndex]!.className && /^self\.\w/.test(a.target) && !setsSelf.has(a.functionIndex)) {
      setsSelf.add(a.functionIndex);
      out[a.functionIndex]!.push({ kind: SETS_SELF, what: '', line: a.line, column: 1 });
    }
  }
  if (/\.(delay|apply_async|send_task|enqueue\w*|kiq|send_with_options)\s*\(/.test(model.source)) {
    for (const call of model.calls) {
      if (call.functionIndex < 0 || !call.hasReceiver || !ENQUEUE.has(call.method) || deferred(call)) continue;
      const fn = model.functions[call.functionIndex]!;
      const offset = selfOffset(fn);
      const named = argumentNames(call);
      const positions = fn.params.map((p, i) => (i >= offset && named.has(p.name) ? i - offset : -1)).filter((i) => i >= 0);
      if (!positions.length) continue;
      // A helper that commits before it enqueues sends the job after its own commit.
      if (callsOf(model, call.functionIndex).some((c) => c.functionIndex === call.functionIndex && c.method === 'commit' && c.node.startIndex < call.node.startIndex)) continue;
      out[call.functionIndex]!.push({ kind: ENQUEUES_PARAM, what: `${positions.join(',')}|${call.calleeText}`, line: call.line, column: call.column });
    }
    for (const call of model.calls) {
      if (call.functionIndex < 0 || !call.hasReceiver || !ENQUEUE.has(call.method) || deferred(call)) continue;
      const named = argumentNames(call);
      if (!named.size) continue;
      const own = callsOf(model, call.functionIndex).filter((c) => c.functionIndex === call.functionIndex);
      // A function that commits is the file rule's (its transaction regions); except an object a
      // helper returned inside a `with x.begin():` block, whose commit comes when the block ends:
      // whether the helper wrote it is the repo phase's to ask.
      const block = model.withs.find((w) => w.functionIndex === call.functionIndex && call.node.startIndex >= w.bodyStart && call.node.startIndex < w.bodyEnd
        && w.items.some((i) => { const v = unwrap(i.value); return v?.type === 'call' && /\.begin$/.test(v.childForFieldName('function')?.text ?? ''); }));
      if (own.some((c) => c.method === 'commit' || (c.method === 'begin' && c.isWithItem && !block))) continue;
      if (block) {
        const item = block.items.find((i) => { const v = unwrap(i.value); return v?.type === 'call' && /\.begin$/.test(v.childForFieldName('function')?.text ?? ''); })!;
        for (const { a, from: c } of boundByCallBefore(model, call, named)) {
          if (a.loops.length || a.node.startIndex < block.bodyStart || ENQUEUE.has(c.method) || conditionalInFunction(model, c)) continue;
          const fact: AfterWrite = { name: a.target, returned: true, block: [unwrap(item.value)!.text.replace(/\s+/g, ' ').slice(0, 60), block.node.endPosition.row + 1], call: call.calleeText, line: call.line, column: call.column, endLine: call.node.endPosition.row + 1, endColumn: call.node.endPosition.column + 1 };
          out[call.functionIndex]!.push({ kind: ENQUEUE_AFTER_CALL, what: JSON.stringify(fact), line: c.line, column: c.column });
        }
        continue;
      }
      for (const c of own) {
        if (c.node.startIndex >= call.node.startIndex || ENQUEUE.has(c.method) || conditionalInFunction(model, c)) continue;
        // A method of the object itself (`self.promote(email)`, `order.mark_paid()`): what it
        // flushes are the object's own changes. (A function handed the object may write anything
        // else: an audit row, a login event.)
        const name = c.hasReceiver && c.dottedReceiver && /^[A-Za-z_]\w*$/.test(c.dottedReceiver) ? c.dottedReceiver : '';
        if (!name || !named.has(name)) continue;
        const fact: AfterWrite = { name, call: call.calleeText, line: call.line, column: call.column, endLine: call.node.endPosition.row + 1, endColumn: call.node.endPosition.column + 1 };
        out[call.functionIndex]!.push({ kind: ENQUEUE_AFTER_CALL, what: JSON.stringify(fact), line: c.line, column: c.column });
      }
      // The object is what a call returned before (`order = create_order(db, data)`, awaited or not).
      for (const { a, from: c } of boundByCallBefore(model, call, named)) {
        if (a.loops.length || ENQUEUE.has(c.method) || conditionalInFunction(model, c)) continue;
        // Made inside the block over the session it was handed, and the block ended before the
        // job: its exit may have committed (`with session_scope() as s: run = make(s)` then
        // `start.delay(run.id)` after it). Another block (a lock, a span) commits nothing.
        const handed = new Set(callArgs(c.node).positional.concat([...callArgs(c.node).keywords.values()]).map((x) => unwrap(x)?.text ?? ''));
        if (model.withs.some((w) => w.functionIndex === call.functionIndex && w.items.some((i) => !!i.alias && handed.has(i.alias))
          && c.node.startIndex >= w.bodyStart && c.node.startIndex < w.bodyEnd && !(call.node.startIndex >= w.bodyStart && call.node.startIndex < w.bodyEnd))) continue;
        const fact: AfterWrite = { name: a.target, returned: true, call: call.calleeText, line: call.line, column: call.column, endLine: call.node.endPosition.row + 1, endColumn: call.node.endPosition.column + 1 };
        out[call.functionIndex]!.push({ kind: ENQUEUE_AFTER_CALL, what: JSON.stringify(fact), line: c.line, column: c.column });
      }
    }
  }
  if (!/\.(add|merge|flush)\s*\(|\.commit\s*\(/.test(model.source)) return out;
  const regions = transactionRegions(model, true);
  if (!regions.length) return out;
  for (const call of model.calls) {
    if (call.functionIndex < 0 || ENQUEUE.has(call.method) || deferred(call) || call.qualifiedName?.startsWith('builtins.')) continue;
    const args = callArgs(call.node).positional;
    if (!args.length) continue;
    const at = call.node.startIndex;
    for (const region of regions) {
      if (region.fnIndex !== call.functionIndex || at < region.from || at >= region.to || !region.commit) continue;
      const written = writtenBefore(model, region, call);
      const positions: number[] = [];
      let name = '';
      let writeLine = 0;
      let changed = false;
      for (const [i, a] of args.entries()) {
        const id = unwrap(a);
        if (id?.type !== 'identifier' || !written.has(id.text)) continue;
        positions.push(i);
        if (!name) {
          name = id.text;
          writeLine = written.get(id.text)!.line;
          changed = !!written.get(id.text)!.changed;
        }
      }
      if (!name) continue;
      const fact: HandsWritten = { positions, name, writeLine, end: `\`${region.commit.calleeText}()\` (line ${region.commit.line})`, ...(changed ? { changed: true as const } : {}) };
      out[call.functionIndex]!.push({ kind: HANDS_WRITTEN, what: JSON.stringify(fact), line: call.line, column: call.column });
      break;
    }
  }
  return out;
}

/** Site fact (`what` = JSON of {@link RequestEnqueue}): a handler's job about an object written through its injected session. */
export const REQUEST_ENQUEUE = 'request_enqueue';
const REQUEST_ENQUEUES = new Set([REQUEST_ENQUEUE]);
/**
 * A job enqueued inside `with provider() as s:` about an object the block wrote through `s`, with
 * no commit of `s` in the block before it; `provider` a call the repo phase may resolve to a
 * generator that commits what it yields (`session_scope()`): `what` = JSON {@link BlockEnqueue},
 * at the provider's call.
 */
export const BLOCK_ENQUEUE = 'block_enqueue';
const BLOCK_ENQUEUES = new Set([BLOCK_ENQUEUE]);

interface BlockEnqueue {
  session: string;
  /** A stored row the block only changed. */
  changed?: true;
  /** Calls in the block before the job that are handed the session (`save(s)`): one may commit it. */
  handed?: [number, number][];
  name: string;
  writeLine: number;
  call: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
}

/** {@link BLOCK_ENQUEUE} sites of a file. */
export function collectBlockEnqueues(model: FileModel): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile || !model.withs.length || !/\.(delay|apply_async|send_task|enqueue\w*|kiq|send_with_options)\s*\(/.test(model.source)) return out;
  for (const w of model.withs) {
    if (w.functionIndex < 0) continue;
    for (const item of w.items) {
      if (!item.alias || item.value.type !== 'call') continue;
      const provider = callAt(model, item.value);
      // A method of a handle (`session.begin()`, `engine.connect()`) is not a provider of the project.
      if (!provider || (provider.hasReceiver && provider.qualifiedName === null)) continue;
      const body = callsOf(model, w.functionIndex).filter((c) => c.functionIndex === w.functionIndex && c.node.startIndex >= w.bodyStart && c.node.startIndex < w.bodyEnd);
      for (const call of body) {
        if (!call.hasReceiver || !ENQUEUE.has(call.method) || deferred(call)) continue;
        // Committed in the block before the job: the file rule's spans judge it.
        if (body.some((c) => c.node.startIndex < call.node.startIndex && sameSession(c, item.alias!) && (c.method === 'commit' || c.method === 'rollback'))) break;
        const named = argumentNames(call);
        const region: TransactionRegion = { kind: 'begin', start: w.node, commit: null, from: w.bodyStart, to: w.bodyEnd, fnIndex: w.functionIndex, session: item.alias, startLine: w.node.startPosition.row + 1, endLine: w.node.endPosition.row + 1 };
        const hit = writtenNamed(writtenBefore(model, region, call), call, named);
        if (!hit) continue;
        const alias = item.alias;
        // Only a call on every path to the job: its block holds the job (not `if fast: save(s)`).
        // And after the row was written: a commit before the write does not keep it.
        const handed = body.filter((c) => c.node.startIndex < call.node.startIndex && blockHolds(c.node, call.node) && c.line >= hit[1].line
          && (c.node.childForFieldName('arguments')?.namedChildren ?? []).some((x) => (x.type === 'keyword_argument' ? x.childForFieldName('value') : x)?.text === alias));
        const site: BlockEnqueue = {
          session: alias, name: hit[0], writeLine: hit[1].line, call: call.calleeText, line: call.line, column: call.column, ...(hit[1].changed ? { changed: true as const } : {}),
          endLine: call.node.endPosition.row + 1, endColumn: call.node.endPosition.column + 1,
          ...(handed.length ? { handed: handed.map((c): [number, number] => [c.line, c.column]) } : {}),
        };
        out[w.functionIndex]!.push({ kind: BLOCK_ENQUEUE, what: JSON.stringify(site), line: provider.line, column: provider.column });
        break;
      }
    }
  }
  return out;
}

/**
 * Is the "enqueue" a function of the repo (`outbox.enqueue(db, "user_created", user.id)`, a
 * transactional outbox that only stages a row): no job leaves for a broker here.
 */
function sendsNothing(graph: ReturnType<typeof callGraphOf>, ref: FnRef, line: number, column: number): boolean {
  // Not a wrapper of the broker's own call (`def enqueue(i): mail.delay(i)`): that one sends.
  return graph.callees(ref).some((edge) => edge.call.line === line && edge.call.column === column && !edge.weak
    && !graph.ownEffects(edge.to).some((e) => e.kind === ENQUEUES_PARAM));
}

/**
 * A job enqueued inside a block over a session a project's generator context manager gives, when
 * that provider commits after its `yield` (SQLAlchemy's `session_scope()` pattern): the commit
 * comes when the block ends, after the job was sent.
 */
function reportBlockEnqueues(ctx: RepoRuleContext, graph: ReturnType<typeof callGraphOf>): void {
  for (const ref of graph.functionsWithEffects(BLOCK_ENQUEUES)) {
    const file = graph.fileOf(ref);
    if (file.isTestFile) continue;
    for (const e of graph.ownEffects(ref)) {
      if (e.kind !== BLOCK_ENQUEUE) continue;
      const call = graph.callAt(ref.file, e.line, e.column);
      const provider = call ? graph.resolveCall(ref.file, call) : null;
      if (!provider || !graph.function(provider).isGenerator || !graph.ownEffects(provider).some((p) => p.kind === COMMITS_YIELDED)) continue;
      const site = JSON.parse(e.what) as BlockEnqueue;
      // A helper handed the session before the job may commit it (`save(s)`): then the row is in.
      const handed = new Set((site.handed ?? []).map(([l, c]) => `${l}:${c}`));
      if (handed.size && graph.callees(ref).some((edge) => handed.has(`${edge.call.line}:${edge.call.column}`) && graph.reaches(edge.to, MAY_COMMIT_EFFECT, 'any'))) continue;
      if (sendsNothing(graph, ref, site.line, site.column)) continue;
      ctx.report({
        path: file.path,
        location: { line: site.line, column: site.column, endLine: site.endLine, endColumn: site.endColumn },
        message: `\`${site.call}()\` enqueues a job with \`${site.name}\`, ${site.changed ? 'changed' : 'written'} through \`${site.session}\` (line ${site.writeLine}) inside the block over it from \`${graph.function(provider).qualifiedName}()\`, which commits only when the block ends: the worker can run first and ${site.changed ? STALE : 'miss the row or read it unchanged'}; enqueue after the block`,
        ...(site.changed ? { severity: 'medium' as const } : {}),
        function: graph.function(ref).name,
      });
    }
  }
}

interface RequestEnqueue {
  /** The provider whose commit after `yield` ends the request's transaction; '' for a repository-library write. */
  provider: string;
  /** The repository-library write (`svc.create(...)`, flush only) that made the object: its position, for the receiver's type. */
  libraryWrite?: [line: number, column: number];
  param: string;
  name: string;
  writeLine: number;
  call: string;
  endLine: number;
  endColumn: number;
  /** A function handed the session (not a handler) that adds the object and commits nothing: its caller commits later. */
  caller?: true;
  /** A stored row the function only changed (attributes assigned): the worker finds it, with its old values. */
  changed?: true;
}

/**
 * `REQUEST_ENQUEUE` sites of a file: in a request handler with a session injected by
 * `Depends(provider)`, a job enqueued with an object written through that session before it,
 * when the handler never commits that session itself.
 */
export function collectRequestEnqueues(model: FileModel): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  const emits = /\.emit\s*\(/.test(model.source) && [...model.imports.values()].some((q) => /^litestar(\.|$)/.test(q));
  if (model.isTestFile || (!emits && !/\.(delay|apply_async|send_task|enqueue\w*|kiq|send_with_options)\s*\(/.test(model.source))) return out;
  for (const call of model.calls) {
    if (call.functionIndex < 0 || !call.hasReceiver || deferred(call)) continue;
    const emit = emits && isAppEmit(call);
    if (!ENQUEUE.has(call.method) && !emit) continue;
    const fn = model.functions[call.functionIndex]!;
    if (fn.role !== 'handler') {
      const site = ENQUEUE.has(call.method) ? addedToParamSession(model, call, fn) ?? changedRowSite(model, call, fn) : null;
      if (site) out[call.functionIndex]!.push({ kind: REQUEST_ENQUEUE, what: JSON.stringify(site), line: call.line, column: call.column });
      continue;
    }
    const named = argumentNames(call);
    if (emit) named.delete(call.node.childForFieldName('arguments')?.namedChildren[0]?.text ?? '');
    if (!named.size) continue;
    // A row a repository-library service made here (`user = await users.create(data)`): the
    // library only flushes, and the request scope (Litestar's plugin) commits after the response.
    const made = libraryMade(model, call, named);
    if (made) {
      const site: RequestEnqueue = {
        provider: '', libraryWrite: [made.write.line, made.write.column], param: made.write.dottedReceiver ?? made.write.receiver?.text ?? '', name: made.name,
        writeLine: made.write.line, call: call.calleeText, endLine: call.node.endPosition.row + 1, endColumn: call.node.endPosition.column + 1,
      };
      out[call.functionIndex]!.push({ kind: REQUEST_ENQUEUE, what: JSON.stringify(site), line: call.line, column: call.column });
      continue;
    }
    for (const p of fn.params) {
      const dep = /^Depends\(\s*([A-Za-z_][\w.]*)\s*\)$/.exec(p.defaultText?.replace(/\s+/g, '') ?? '');
      const alias = dep || p.defaultText ? null : dependencyAliasOf(model, p.annotation);
      if (!dep && !alias) continue;
      const provider = dep ? resolveImported(model, dep[1]!) : alias!.provider;
      if (!provider) continue;
      // The handler commits that session itself (a `commit()`, or a `with ….begin():` block that
      // ends before the enqueue): the file rule judges the order.
      if (callsOf(model, call.functionIndex).some((c) => c.functionIndex === call.functionIndex && c.dottedReceiver === p.name && (isCommitCall(model, c) || (c.method === 'begin' && c.isWithItem && c.node.startIndex < call.node.startIndex)))) continue;
      const region: TransactionRegion = { kind: 'begin', start: fn.node, commit: null, from: fn.start, to: call.node.startIndex, fnIndex: call.functionIndex, session: p.name, startLine: fn.startLine, endLine: call.line };
      const hit = writtenNamed(writtenBefore(model, region, call), call, named);
      if (!hit) continue;
      const site: RequestEnqueue = { provider, param: p.name, name: hit[0], writeLine: hit[1].line, ...(hit[1].changed ? { changed: true as const } : {}), call: call.calleeText, endLine: call.node.endPosition.row + 1, endColumn: call.node.endPosition.column + 1 };
      out[call.functionIndex]!.push({ kind: REQUEST_ENQUEUE, what: JSON.stringify(site), line: call.line, column: call.column });
      break;
    }
  }
  return out;
}


/**
 * A job about a row the function built and added to a session it was handed (`def register(db,
 * email): u = User(...); db.add(u); db.flush(); welcome.delay(u.id)`), when the function commits that
 * session nowhere (no `commit()`, no `with db.begin():`): whoever commits it does so after the
 * function returned, after the job was sent. Whether a helper it calls commits is the repo
 * phase's to ask.
 */
function addedToParamSession(model: FileModel, call: CallInfo, fn: FunctionInfo): RequestEnqueue | null {
  const named = argumentNames(call);
  if (!named.size) return null;
  const params = new Set(fn.params.slice(selfOffset(fn)).map((p) => p.name));
  const calls = callsOf(model, call.functionIndex).filter((c) => c.functionIndex === call.functionIndex);
  for (const add of calls) {
    if (add.node.startIndex >= call.node.startIndex || !STAGES.has(add.method) || add.method === 'delete' || !add.dottedReceiver || !params.has(add.dottedReceiver)) continue;
    const first = unwrap(callArgs(add.node).positional[0] ?? null);
    // A row built here (`u = User(...)`): not in the database before some commit. An object the
    // caller handed in may be a stored row already (`db.add(invoice)` of a persistent one does nothing).
    if (first?.type !== 'identifier' || !named.has(first.text) || !builtHere(model, first.text, call.functionIndex, add.line) || !receiverEvidence(model, add)) continue;
    const session = add.dottedReceiver;
    if (calls.some((c) => c.dottedReceiver === session && (isCommitCall(model, c) || c.method === 'begin' || c.method === 'begin_nested'))) return null;
    return { provider: '', caller: true, param: session, name: first.text, writeLine: add.line, call: call.calleeText, endLine: call.node.endPosition.row + 1, endColumn: call.node.endPosition.column + 1 };
  }
  return null;
}

/**
 * A job about a stored row the function changed (`claim.state = "approved"`, maybe then
 * `db.flush()`) when the function ends no transaction itself (no `commit()`, no `begin()`): a row
 * loaded through a session it did not open (a parameter, `self.db`, `Model.query`), a parameter
 * typed with a model, an item of a loop over a query's rows, or `self` in a method of a model.
 * The commit is the caller's, after the job was sent; the worker finds the row, with its old
 * values. Not when the job is handed only the values just set (`notify.delay(claim.adjuster)`).
 */
function changedRowSite(model: FileModel, call: CallInfo, fn: FunctionInfo): RequestEnqueue | null {
  const named = argumentNames(call);
  if (!named.size || fn.isGenerator) return null;
  const calls = callsOf(model, call.functionIndex).filter((c) => c.functionIndex === call.functionIndex);
  if (calls.some((c) => isCommitCall(model, c) || c.method === 'begin' || c.method === 'begin_nested')) return null;
  const changed = new Map<string, { a: AssignmentInfo; attrs: Set<string> }>();
  for (const a of assignmentsByFunction(model).get(call.functionIndex) ?? []) {
    if (a.node.startIndex >= call.node.startIndex) continue;
    const m = /^([A-Za-z_]\w*)\.(\w+)$/.exec(a.target);
    if (!m || !named.has(m[1]!)) continue;
    const seen = changed.get(m[1]!);
    if (seen) seen.attrs.add(m[2]!);
    else changed.set(m[1]!, { a, attrs: new Set([m[2]!]) });
  }
  for (const [name, { a, attrs }] of changed) {
    if (name !== 'self' && (builtHere(model, name, call.functionIndex, a.line) || loadedThroughOwnSession(model, name, call.functionIndex, a.line))) continue;
    if (!isRow(model, name, call.functionIndex, a) || onlyNewValues(call, name, attrs)) continue;
    return { provider: '', caller: true, changed: true, param: '', name, writeLine: a.line, call: call.calleeText, endLine: call.node.endPosition.row + 1, endColumn: call.node.endPosition.column + 1 };
  }
  return null;
}

/**
 * Was the row loaded through a session this function binds itself (`with Maker() as s: c =
 * s.get(...)`, `s = Maker()`)? Changes left uncommitted there are lost when it closes (PA208's),
 * not committed later.
 */
function loadedThroughOwnSession(model: FileModel, name: string, fnIndex: number, line: number): boolean {
  const bound = lastAssignment(model, name, fnIndex, line);
  let v = bound?.functionIndex === fnIndex && bound.value ? unwrap(bound.value) : null;
  for (let i = 0; v && i < 16; i++) {
    if (v.type === 'identifier') return model.assignments.some((x) => x.functionIndex === fnIndex && x.target === v!.text);
    v = v.type === 'call' ? v.childForFieldName('function')
      : v.type === 'attribute' ? v.childForFieldName('object')
      : v.type === 'await' || v.type === 'parenthesized_expression' ? v.namedChild(0)
      : v.type === 'subscript' ? v.childForFieldName('value') : null;
  }
  return false;
}

/**
 * The names of `named` whose last binding before `call` (in its function) is the value of a call,
 * awaited or not (`order = create_order(db)`, `user = await users.create(data)`): the assignment
 * and that call, in source order.
 */
function boundByCallBefore(model: FileModel, call: CallInfo, named: Set<string>): { a: AssignmentInfo; from: CallInfo }[] {
  const last = new Map<string, AssignmentInfo>();
  for (const a of assignmentsByFunction(model).get(call.functionIndex) ?? []) {
    if (a.node.startIndex < call.node.startIndex && named.has(a.target) && (last.get(a.target)?.node.startIndex ?? -1) < a.node.startIndex) last.set(a.target, a);
  }
  const out: { a: AssignmentInfo; from: CallInfo }[] = [];
  for (const a of last.values()) {
    let v = a.value ? unwrap(a.value) : null;
    if (v?.type === 'await') v = unwrap(v.namedChild(0));
    const from = v?.type === 'call' ? callAt(model, v) : undefined;
    if (from) out.push({ a, from });
  }
  return out.sort((x, y) => x.a.node.startIndex - y.a.node.startIndex);
}

/**
 * Litestar's `app.emit("event", ...)` (`request.app.emit`, `self.app.emit`): the listeners run in
 * a task of the app's event emitter, concurrently with the rest of the request — a job like any
 * other for the rows they read. (A synchronous emitter runs its listeners inline: not this one.)
 */
function isAppEmit(call: CallInfo): boolean {
  return call.method === 'emit' && /(^|\.)app$/.test(call.receiver?.text.replace(/\s+/g, '') ?? '');
}

/**
 * The row, named by the job's arguments, that a repository-library write of the same function
 * returned before the call (`user = await users_service.create(data)`, no `auto_commit`), with
 * no commit or library `auto_commit` write on that receiver in between.
 */
function libraryMade(model: FileModel, call: CallInfo, named: Set<string>): { name: string; write: CallInfo } | null {
  for (const { a, from: write } of boundByCallBefore(model, call, named).reverse()) {
    if (!write.hasReceiver || !LIBRARY_WRITES.has(write.method) || callArgs(write.node).keywords.has('auto_commit')) continue;
    const receiver = write.dottedReceiver;
    const committed = callsOf(model, call.functionIndex).some((c) => c.functionIndex === call.functionIndex && c.node.startIndex > write.node.endIndex && c.node.startIndex < call.node.startIndex
      && (c.method === 'commit' || (c.dottedReceiver === receiver && LIBRARY_WRITES.has(c.method) && (callArgs(c.node).keywords.get('auto_commit')?.text ?? 'False') !== 'False')));
    if (!committed) return { name: a.target, write };
  }
  return null;
}

/**
 * For each session the function commits after the enqueue (not in a loop the enqueue is not
 * in): the stretch since that session's previous commit, or the function's start. Changes made
 * there are pending and go out with that commit, even when no statement ran in between
 * (`db.commit(); order.status = "shipped"; ship.delay(order.id); db.commit()`).
 */
function pendingUntilCommit(model: FileModel, call: CallInfo): TransactionRegion[] {
  const fn = model.functions[call.functionIndex]!;
  const at = call.node.startIndex;
  const commits = callsOf(model, call.functionIndex).filter((c) => c.functionIndex === call.functionIndex && isCommitCall(model, c));
  const out: TransactionRegion[] = [];
  const seen = new Set<string>();
  for (const c of commits) {
    if (c.node.startIndex <= at || c.loops.some((l) => !call.loops.includes(l))) continue;
    const session = c.dottedReceiver ?? c.receiver?.text.replace(/\s+/g, '') ?? '';
    if (!session || seen.has(session)) continue;
    seen.add(session);
    const previous = commits.filter((p) => p.node.startIndex < at && sameSession(p, session) && !p.loops.some((l) => !call.loops.includes(l))).pop();
    const from = previous ? previous.node.endIndex : fn.start;
    out.push({ kind: 'span', start: previous?.node ?? fn.node, commit: c, from, to: c.node.startIndex, fnIndex: call.functionIndex, session, startLine: previous?.line ?? fn.startLine, endLine: c.line });
  }
  return out;
}

function sameSession(c: CallInfo, session: string): boolean {
  return c.hasReceiver && (c.dottedReceiver === session || (c.receiver?.text.replace(/\s+/g, '') ?? '') === session);
}

/** Is `name` the item of one of these loops, over the rows of a query of a project model? */
function loopRow(model: FileModel, name: string, loops: readonly number[], models: Set<string>): boolean {
  for (const i of loops) {
    const loop = model.loops[i]!;
    const t = loopTarget(loop);
    if (t?.name !== name) continue;
    const rows = rowsSource(model, t.iterable, loop.functionIndex, loop.node.startPosition.row + 1);
    if (rows?.entity && models.has(rows.entity.replace(/^.*\./, ''))) return true;
    // A parameter typed as a list of a model (`orders: list[Order]`).
    const it = unwrap(t.iterable);
    const param = it?.type === 'identifier' ? model.functions[loop.functionIndex]?.params.find((p) => p.name === it.text) : undefined;
    const item = /^(?:[\w.]*\.)?(?:list|List|Sequence|Iterable|set|Set|tuple|Tuple)\[\s*(?:[\w.]*\.)?([A-Z]\w*)\s*(?:,\s*\.\.\.)?\]$/.exec(param?.annotation?.replace(/\s+/g, '') ?? '')?.[1];
    if (item && models.has(item)) return true;
  }
  return false;
}

/** Is the name's last binding before the line a constructor call (`Order(...)`)? (Added ones are found through `add`.) */
function builtHere(model: FileModel, name: string, fnIndex: number, line: number): boolean {
  const a = lastAssignment(model, name, fnIndex, line);
  const v = a?.functionIndex === fnIndex && a.value ? unwrap(a.value) : null;
  return v?.type === 'call' && /^(?:[\w.]*\.)?[A-Z]\w*$/.test(v.childForFieldName('function')?.text ?? '');
}
