/**
 * PA203 scope_too_narrow
 *
 * What it does: finds one logical change split over two commits of the same session in one
 * function: a parent row committed, then its children (built from the parent's id) added and
 * committed separately; or a status change committed, then its audit/history row in a second
 * commit.
 * Why is this bad? A failure between the commits leaves half the change in the database: a batch
 * with no items, a status change nobody audited. Readers can also see the half-done state.
 *
 * Through calls (repo phase): inside an open transaction (a session's first write → its commit,
 * or a `begin()` block), a call to a same-repo function that always opens a session of its own
 * and commits it — the audit row, the event, the child rows of the change land in a second
 * transaction that commits first, whatever happens to the outer one.
 *
 * Silent look-alikes: parent and children in one commit, children committed in chunks inside a
 * loop (deliberate progress), two commits of unrelated objects.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import { COMMIT_EFFECT, OWN_COMMIT_EFFECT } from './effects.js';
import { alwaysReaches } from './reach.js';
import { callGraphOf, siteCalls, type CallGraph, type FnRef } from '../../../analysis/callgraph.js';
import type { SummaryCall } from '../../../analysis/summary.js';
import { flagAtCall, isDictKeyGuard } from '../../../semantic/guards.js';
import { PK_QUERY_EFFECT, QUERY_EFFECT } from '../query/dbCalls.js';
import type { Effect } from '../../../analysis/summary.js';
import { inTreeModule } from '../../../semantic/model.js';
import { reportInTransactionCalls } from './reach.js';
import type { CallInfo, FileModel } from '../../../semantic/model.js';
import { callArgs, callsOf, isCommitCall, lastAssignment, receiverKey, unwrap } from './semantics.js';
import { blockHolds, ifBranches } from '../../../semantic/controlFlow.js';

const AUDIT_MODEL = /(Audit|History|Journal|Log|Event|Change)\w*$/;
const STATUS_FIELD = /^(status|state)$/;

export const scopeTooNarrow: FileRule & RepoRule = {
  meta: {
    code: 'PA203',
    check: 'scope_too_narrow',
    family: 'transaction',
    severity: 'medium',
    effort: 'M',
    summary: 'One logical change split over several commits',
    what: 'Finds a commit that splits one change in two: a parent object added and committed, then children built from it (`Child(parent_id=parent.id)`, `Child(parent=parent)`) added and committed by a second commit of the same session (high); a status change committed, then an audit/history/log row added in a second commit (medium); rows of a model deleted and committed, then their replacements added and committed by a second commit (`query(M).filter(...).delete(); commit(); add(M(...)); commit()`: a failure in between leaves neither, medium); and, through calls, a same-repo function that opens and commits its own session, called while the caller\'s transaction is open — after a write, or after an attribute of a row the caller loaded through its session was changed (`account.status = "suspended"`, not flushed yet: the commit will write it) (medium): its rows are committed first, whatever happens to the outer transaction; and a parent made by a helper that commits the caller\'s session (`club = crud.create_club(db, name)`, `club.save()`, `repo.create(club)`), then rows built from it (`Seat(club_id=club.id)` added and committed, or `crud.create_seat(db, club.id, ...)`, which commits on its own): a failure between the two commits leaves the parent without them (medium). Silent when the first helper only flushes, for a get-or-create (the parent may exist already, shared by others), and when the parent is only handed on whole to a step that is not a create.',
    why: 'If anything fails between the two commits, the database keeps half of the change: a batch without its items, a status change with no audit row. Other transactions can read the half-done state in between, and a retry has to find and repair it.',
    bad:
      'from sqlalchemy.orm import Session\n\nfrom app.models import Batch, Item\n\n\n'
      + 'def create_batch(db: Session, names: list[str]) -> int:\n    batch = Batch()\n    db.add(batch)\n    db.flush()\n    db.commit()\n'
      + '    for name in names:\n        db.add(Item(batch_id=batch.id, name=name))\n    db.commit()\n    return batch.id\n',
    good:
      'from sqlalchemy.orm import Session\n\nfrom app.models import Batch, Item\n\n\n'
      + 'def create_batch(db: Session, names: list[str]) -> int:\n    batch = Batch()\n    db.add(batch)\n    db.flush()\n'
      + '    for name in names:\n        db.add(Item(batch_id=batch.id, name=name))\n    db.commit()\n    return batch.id\n',
    fix: 'make it one unit of work: one `session.begin()` / one commit after the parent and its children',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#when-do-i-construct-a-session-when-do-i-commit-it-and-when-do-i-close-it',
      'https://martinfowler.com/eaaCatalog/unitOfWork.html',
    ],
  },
  checkRepo(ctx: RepoRuleContext): void {
    reportInTransactionCalls(ctx, OWN_COMMIT_EFFECT, 'medium', true, (callee, chain, where) =>
      `\`${callee}()\` opens and commits a session of its own (\`${chain}()\`) ${where}: its rows are committed first, in a second transaction, and stay if the outer one fails`, 'pending');
    reportParentCommitCalls(ctx);
  },
  checkFile(ctx: FileRuleContext): void {
    const { model } = ctx;
    const byFn = new Map<number, CallInfo[]>();
    for (const c of model.calls) {
      if (c.functionIndex < 0 || c.method !== 'commit' || !isCommitCall(model, c)) continue;
      byFn.set(c.functionIndex, [...(byFn.get(c.functionIndex) ?? []), c]);
    }
    for (const [fnIndex, commits] of byFn) {
      if (commits.length < 2) continue;
      const calls = callsOf(model, fnIndex);
      for (let i = 0; i + 1 < commits.length; i++) {
        const first = commits[i]!;
        const session = receiverKey(first);
        const second = commits.slice(i + 1).find((c) => receiverKey(c) === session);
        if (!session || !second || first.loops.length || second.loops.length) continue;
        const prevCommit = commits.slice(0, i).reverse().find((c) => receiverKey(c) === session);
        const before = calls.filter((c) => c.node.startIndex < first.node.startIndex && (!prevCommit || c.node.startIndex > prevCommit.node.startIndex));
        const after = calls.filter((c) => c.node.startIndex > first.node.endIndex && c.node.startIndex < second.node.startIndex);
        const parents = addedObjects(model, before, session);
        const child = after.find((c) => receiverKey(c) === session && c.method === 'add' && builtFrom(model, c, parents));
        if (child) {
          ctx.report({
            node: first.node,
            message: `\`${first.calleeText}()\` commits the parent before its children: the rows added on line ${child.line} are committed separately on line ${second.line}, so a failure in between leaves a parent without them`,
            severity: 'high',
          });
          continue;
        }
        // Rows of a model deleted and committed, then their replacements added and committed apart:
        // `db.query(Tag).filter_by(post_id=p).delete(); db.commit(); for t in tags: db.add(Tag(...))`.
        const deleted = deletedModels(model, before, session);
        const reinsert = deleted.size ? after.find((c) => receiverKey(c) === session && c.method === 'add' && deleted.has(addedModel(model, c) ?? '')) : undefined;
        if (reinsert) {
          const name = addedModel(model, reinsert)!;
          ctx.report({
            node: first.node,
            message: `\`${first.calleeText}()\` commits the deletion of \`${name}\` rows before their replacements (added on line ${reinsert.line}) are committed on line ${second.line}: a failure in between leaves neither the old rows nor the new ones`,
            severity: 'medium',
          });
          continue;
        }
        const isStatus = (a: { target: string; functionIndex: number }) => a.functionIndex === fnIndex && STATUS_FIELD.test(a.target.split('.').pop() ?? '') && a.target.includes('.');
        const statusSet = model.assignments.filter((a) => isStatus(a)
          && a.node.startIndex < first.node.startIndex && (!prevCommit || a.node.startIndex > prevCommit.node.startIndex));
        const audit = statusSet.length ? after.find((c) => receiverKey(c) === session && c.method === 'add' && auditModel(c)) : undefined;
        // The status set again after the first commit, before the audit row: the row records that
        // later change, committed with it (`running` committed for the UI, then `done` and its
        // history row together).
        const changed = new Set(statusSet.map((a) => a.target));
        // Only a restatement on every path to the audit row (its block holds the row's `add`): one
        // under an `if` the row's path may skip leaves the row recording the first change.
        const onPath = (a: { node: SyntaxNode; target: string }) => {
          if (blockHolds(a.node, audit!.node)) return true;
          let block: SyntaxNode | null = a.node.parent;
          while (block && block.type !== 'block' && block.type !== 'module') block = block.parent;
          if (!block) return false;
          // Set in every arm of the `try`/`except` or `if`/`else` around it (`done` in the body,
          // `failed` in the handler): on every path as well.
          const stmt = block.parent;
          const branches = stmt?.type === 'if_statement' ? ifBranches(stmt) : null;
          const arms = stmt?.type === 'try_statement' ? [stmt.childForFieldName('body'), ...stmt.namedChildren.filter((c) => c.type === 'except_clause')]
            : branches?.hasElse ? branches.branches : null;
          // An arm sets it in its own block (not under a further `if`), or leaves (`raise`,
          // `return`: it never reaches the row).
          const target = a.target;
          const settles = (arm: SyntaxNode | null) => {
            const block = arm?.type === 'block' ? arm : arm?.namedChildren.find((c) => c.type === 'block') ?? null;
            return !!block && block.namedChildren.some((st) => (st.type === 'expression_statement' && st.namedChild(0)?.type === 'assignment' && st.namedChild(0)!.childForFieldName('left')?.text === target)
              || st.type === 'raise_statement' || st.type === 'return_statement');
          };
          return !!stmt && !!arms && blockHolds(stmt, audit!.node) && arms.every(settles);
        };
        const restated = audit && model.assignments.some((a) => isStatus(a) && changed.has(a.target) && a.node.startIndex > first.node.endIndex && a.node.startIndex < audit.node.startIndex && onPath(a));
        if (audit && !restated) {
          ctx.report({
            node: first.node,
            message: `\`${first.calleeText}()\` commits a status change whose audit row (line ${audit.line}) is committed separately on line ${second.line}`,
            severity: 'medium',
          });
        }
      }
    }
  },
};

/**
 * Models whose rows `calls` delete on `session`: `session.query(M)...delete()`, `M.query...delete()`,
 * `session.execute(delete(M)...)`.
 */
function deletedModels(model: FileModel, calls: CallInfo[], session: string): Set<string> {
  const out = new Set<string>();
  for (const c of calls) {
    const text = c.node.text;
    if (!/\bdelete\s*\(/.test(text)) continue;
    const onSession = receiverKey(c) === session || text.startsWith(`${session}.`);
    const m = /\b(?:delete|query)\(\s*(?:[\w.]*\.)?([A-Z]\w*)\s*[),]/.exec(text) ?? (c.method === 'delete' ? /^([A-Z]\w*)\.query\b/.exec(text) : null);
    if (!m || !(onSession || /^[A-Z]\w*\.query\b/.test(text))) continue;
    if (c.method === 'delete' || c.method === 'execute' || c.method === 'exec') out.add(m[1]!);
  }
  return out;
}

/** The model a `session.add(...)` call adds: `session.add(Tag(...))`, or a name bound to `Tag(...)`. */
function addedModel(model: FileModel, add: CallInfo): string | null {
  let arg = unwrap(callArgs(add.node).positional[0] ?? null);
  if (arg?.type === 'identifier') arg = unwrap(lastAssignment(model, arg.text, add.functionIndex, add.line)?.value ?? null);
  if (arg?.type !== 'call') return null;
  const last = (arg.childForFieldName('function')?.text ?? '').split('.').pop() ?? '';
  return /^[A-Z]\w*$/.test(last) ? last : null;
}

/** Names of objects added on `session` among `calls`: `session.add(batch)` → `batch`. */
function addedObjects(model: FileModel, calls: CallInfo[], session: string): Set<string> {
  const out = new Set<string>();
  for (const c of calls) {
    if (receiverKey(c) !== session || c.method !== 'add') continue;
    const arg = callArgs(c.node).positional[0];
    if (arg?.type !== 'identifier') continue;
    const a = lastAssignment(model, arg.text, c.functionIndex, c.line);
    const v = unwrap(a?.value ?? null);
    if (v?.type === 'call' && /^[A-Z]\w*$/.test((v.childForFieldName('function')?.text ?? '').split('.').pop() ?? '')) out.add(arg.text);
  }
  return out;
}

/** Is the added object a model built with a keyword that reads a parent (`batch.id`, `batch`, `batch_id = batch.id`)? */
function builtFrom(model: FileModel, add: CallInfo, parents: Set<string>): boolean {
  if (!parents.size) return false;
  let arg = unwrap(callArgs(add.node).positional[0] ?? null);
  if (arg?.type === 'identifier') {
    const a = lastAssignment(model, arg.text, add.functionIndex, add.line);
    arg = unwrap(a?.value ?? null);
  }
  if (arg?.type !== 'call') return false;
  for (const [, value] of callArgs(arg).keywords) {
    if (readsParent(model, value, parents, add)) return true;
  }
  return false;
}

function readsParent(model: FileModel, value: SyntaxNode, parents: Set<string>, at: CallInfo): boolean {
  const v = unwrap(value);
  if (!v) return false;
  if (v.type === 'identifier') {
    if (parents.has(v.text)) return true;
    // `batch_id = batch.id` earlier in the function.
    const a = lastAssignment(model, v.text, at.functionIndex, at.line);
    const av = unwrap(a?.value ?? null);
    return av?.type === 'attribute' && av.childForFieldName('object')?.type === 'identifier' && parents.has(av.childForFieldName('object')!.text);
  }
  if (v.type === 'attribute') {
    const obj = v.childForFieldName('object');
    return obj?.type === 'identifier' && parents.has(obj.text);
  }
  return false;
}

function auditModel(add: CallInfo): boolean {
  const arg = unwrap(callArgs(add.node).positional[0] ?? null);
  if (arg?.type !== 'call') return false;
  const name = (arg.childForFieldName('function')?.text ?? '').split('.').pop() ?? '';
  return /^[A-Z]/.test(name) && AUDIT_MODEL.test(name);
}


/** Site fact at a call that makes or saves a parent, when children built from it follow (see {@link collectParentCommitCalls}). */
export const PARENT_COMMIT_CALL = 'parent_commit_call';

interface ParentCommitSite {
  parent: string;
  /** The child: a `session.add(Child(parent_id=parent.id))` or a call handed the parent. */
  child: { line: number; column: number; what: string };
  /** What commits the child: a `commit()` of the same session, or the child call itself. */
  second: { line: number; column: number; call: boolean };
}

/**
 * Through calls, the parent-then-children split: a call that makes or saves a parent
 * (`user = crud.create_user(db, data)`, `user.save()`, `save(db, user)`), then children built
 * from it — added on the same session and committed (`db.add(Item(owner_id=user.id)); db.commit()`),
 * or handed to another call (`crud.create_item(db, item, owner_id=user.id)`). The repo phase
 * reports it when both the first call and (for a call) the second always commit the caller's
 * session. Calls in loops are left to PA207; the session must be the same: handed to both by
 * the same name, or the shared one (none handed).
 */
export function collectParentCommitCalls(model: FileModel): Effect[][] {
  const out: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile || !/\bcommit\s*\(|\.save\s*\(|\b(create|add|insert|new|register)_\w*\s*\(/.test(model.source)) return out;
  model.functions.forEach((fn, fnIndex) => {
    const calls = callsOf(model, fnIndex).filter((c) => c.functionIndex === fnIndex);
    if (calls.length < 2) return;
    for (const first of calls) {
      if (first.loops.length || first.method === 'add' || first.method === 'commit' || first.method === 'flush' || isCommitCall(model, first)) continue;
      if (first.qualifiedName !== null && model.repoModules && !inTreeModule(model.repoModules, first.qualifiedName) && !first.hasReceiver) continue;
      // A row made here (`create_team`, `add_user`, `user.save()`): not one looked up or made
      // when missing (`get_or_create`), which other rows may share whatever happens next.
      if (!CREATES.test(first.method) || LOOKS_UP.test(first.method)) continue;
      const parents = parentsOf(model, first);
      if (!parents.size) continue;
      const handed = sessionNames(first);
      const site = childAfter(model, calls, first, parents, handed);
      if (site) out[fnIndex]!.push({ kind: PARENT_COMMIT_CALL, what: JSON.stringify(site), line: first.line, column: first.column });
    }
  });
  return out;
}

const SESSION_ARG = /^(session|db|db_session|dbsession|sess|s|conn|connection|uow)$/;
/** The parent's key: `club.id`, `club.pk`, `club.uuid`, `club.club_id`. */
const KEY_ATTR = /^(id|pk|uuid|key)$|_id$/;
/** Methods named for making a row: `create_team`, `add_member`, `insert`, `new_order`, `register_user`, `save`. */
const CREATES = /^(create|add|insert|new|register|save)(_\w+)?$/;
/** A persistence method that takes the row itself. */
const GENERIC_SAVE = /^(save|create|add|insert|persist)$/;
/** ...and those that may find it instead (`get_or_create`, `add_or_update`, `create_if_missing`). */
const LOOKS_UP = /get_or_|find_or_|_or_(update|get|create)|if_missing|upsert/;

/** The session-like names a call hands over (positional or keyword). */
function sessionNames(call: CallInfo): Set<string> {
  const names = new Set<string>();
  const { positional, keywords } = callArgs(call.node);
  for (const a of [...positional, ...keywords.values()]) {
    const v = unwrap(a);
    if (v?.type === 'identifier' && SESSION_ARG.test(v.text)) names.add(v.text);
  }
  return names;
}

/** The parent a call makes or saves: the name it is bound to, its receiver or an argument built from a model here. */
function parentsOf(model: FileModel, call: CallInfo): Set<string> {
  const out = new Set<string>();
  let n: SyntaxNode = call.node;
  while (n.parent && (n.parent.type === 'await' || n.parent.type === 'parenthesized_expression')) n = n.parent;
  const a = n.parent?.type === 'assignment' && n.parent.childForFieldName('right')?.id === n.id ? n.parent.childForFieldName('left') : null;
  if (a?.type === 'identifier' && !SESSION_ARG.test(a.text)) out.add(a.text);
  const built = (name: string) => {
    const v = unwrap(lastAssignment(model, name, call.functionIndex, call.line)?.value ?? null);
    return v?.type === 'call' && /^[A-Z]\w*$/.test((v.childForFieldName('function')?.text ?? '').split('.').pop() ?? '');
  };
  // `user.save()`, `repo.create(user)`, `save(db, user)`: the row handed to a generic save,
  // built here from a model (not a domain step that takes a row made earlier: `add_participant(case)`).
  if (GENERIC_SAVE.test(call.method)) {
    if (call.receiver?.type === 'identifier' && built(call.receiver.text)) out.add(call.receiver.text);
    for (const arg of callArgs(call.node).positional) {
      const v = unwrap(arg);
      if (v?.type === 'identifier' && built(v.text)) out.add(v.text);
    }
  }
  return out;
}

function childAfter(model: FileModel, calls: CallInfo[], first: CallInfo, parents: Set<string>, handed: Set<string>): ParentCommitSite | null {
  const parent = [...parents][0]!;
  for (const c of calls) {
    if (c.node.startIndex < first.node.endIndex) continue;
    // The parent bound again on the way: the child belongs to another row.
    const bound = lastAssignment(model, parent, first.functionIndex, c.line);
    if (bound && bound.node.startIndex > first.node.endIndex && bound.node.endIndex <= c.node.startIndex) return null;
    // The parent rebound, or committed here first: another story.
    if (isCommitCall(model, c)) return null;
    if (c.method === 'add') {
      const session = receiverKey(c);
      if (!session || !builtFrom(model, c, parents)) continue;
      // The same session: handed to the first call by that name, or a shared one handed to none.
      if (!(handed.has(session) || (!handed.size && session.includes('.')))) return null;
      const commit = calls.find((d) => d.node.startIndex > c.node.endIndex && isCommitCall(model, d) && receiverKey(d) === session);
      return commit ? { parent, child: { line: c.line, column: c.column, what: `${c.calleeText}()` }, second: { line: commit.line, column: commit.column, call: false } } : null;
    }
    if (c.method === 'commit' || c.method === 'flush' || c.emptyArgs || !CREATES.test(c.method) || LOOKS_UP.test(c.method)) continue;
    // The child made from the parent's key or the parent itself by name (`owner_id=team.id`,
    // `team=team`, `create_member(db, team.id, ...)`), not the parent merely handed on.
    const { positional, keywords } = callArgs(c.node);
    const byKey = (v: SyntaxNode) => {
      const u = unwrap(v);
      return u?.type === 'attribute' && KEY_ATTR.test(u.childForFieldName('attribute')?.text ?? '') && readsParent(model, u, parents, c);
    };
    const byKeyword = ([k, v]: [string, SyntaxNode]) => {
      const u = unwrap(v);
      return u?.type === 'identifier' ? parents.has(u.text) || (/_id$/.test(k) && readsParent(model, u, parents, c)) : byKey(v);
    };
    if (!positional.some(byKey) && ![...keywords].some(byKeyword)) continue;
    const names = sessionNames(c);
    const same = handed.size ? [...handed].some((h) => names.has(h)) : !names.size;
    if (!same) continue;
    return { parent, child: { line: c.line, column: c.column, what: `${c.calleeText}()` }, second: { line: c.line, column: c.column, call: true } };
  }
  return null;
}

const PARENT_COMMIT_CALLS: ReadonlySet<string> = new Set([PARENT_COMMIT_CALL]);

/**
 * Does the helper read before its first commit (`existing = ...first(); if existing: return
 * existing`)? Then it may hand back a row that was there already, shared by others: a
 * get-or-create in all but name.
 */
function looksUpFirst(graph: CallGraph, ref: FnRef): boolean {
  const own = graph.ownEffects(ref);
  const commit = own.find((e) => e.kind === COMMIT_EFFECT);
  return !!commit && own.some((e) => (e.kind === QUERY_EFFECT || e.kind === PK_QUERY_EFFECT) && e.line < commit.line);
}

function reportParentCommitCalls(ctx: RepoRuleContext): void {
  const graph = callGraphOf(ctx.index);
  const always = alwaysReaches(graph, COMMIT_EFFECT);
  for (const { ref, file, fn, site, call, to } of siteCalls(graph, PARENT_COMMIT_CALLS)) {
    // Always, or under its own flag this call leaves on (`def create_club(db, name, commit=True)`).
    const commits = (target: FnRef, at: SummaryCall) => always(target)
      || graph.ownEffects(target).some((e) => e.kind === COMMIT_EFFECT && e.guard !== undefined && !isDictKeyGuard(e.guard) && flagAtCall(at.passes, e.guard) === 'on');
    if (!commits(to, call) || looksUpFirst(graph, to)) continue;
    const s = JSON.parse(site.what) as ParentCommitSite;
    if (s.second.call) {
      const edge = graph.callees(ref).find((e) => !e.weak && e.call.line === s.second.line && e.call.column === s.second.column);
      if (!edge || !commits(edge.to, edge.call)) continue;
    }
    const chain = graph.chainNames(graph.effectOf(to, COMMIT_EFFECT, 'any')!).join('` → `');
    ctx.report({
      path: file.path,
      location: { line: call.line, column: call.column, endLine: call.endLine, endColumn: call.endColumn },
      message: `\`${call.calleeText}()\` commits \`${s.parent}\` (\`${chain}()\`) before the rows built from it: \`${s.child.what}\` on line ${s.child.line} is committed separately`
        + (s.second.call ? ' (it commits on its own)' : ` on line ${s.second.line}`) + ', so a failure in between leaves the parent without them; let the helpers flush and commit once',
      severity: 'medium',
      function: fn.name,
    });
  }
}
