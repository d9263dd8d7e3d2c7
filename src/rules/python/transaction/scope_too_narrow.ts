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
import { OWN_COMMIT_EFFECT } from './effects.js';
import { reportInTransactionCalls } from './reach.js';
import type { CallInfo, FileModel } from '../../../semantic/model.js';
import { callArgs, callsOf, isCommitCall, lastAssignment, receiverKey, unwrap } from './semantics.js';

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
    what: 'Finds a commit that splits one change in two: a parent object added and committed, then children built from it (`Child(parent_id=parent.id)`, `Child(parent=parent)`) added and committed by a second commit of the same session (high); a status change committed, then an audit/history/log row added in a second commit (medium); rows of a model deleted and committed, then their replacements added and committed by a second commit (`query(M).filter(...).delete(); commit(); add(M(...)); commit()`: a failure in between leaves neither, medium); and, through calls, a same-repo function that opens and commits its own session, called while the caller\'s transaction is open (medium): its rows are committed first, whatever happens to the outer transaction.',
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
      `\`${callee}()\` opens and commits a session of its own (\`${chain}()\`) ${where}: its rows are committed first, in a second transaction, and stay if the outer one fails`);
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
        const statusSet = model.assignments.some((a) => a.functionIndex === fnIndex && STATUS_FIELD.test(a.target.split('.').pop() ?? '') && a.target.includes('.')
          && a.node.startIndex < first.node.startIndex && (!prevCommit || a.node.startIndex > prevCommit.node.startIndex));
        const audit = statusSet ? after.find((c) => receiverKey(c) === session && c.method === 'add' && auditModel(c)) : undefined;
        if (audit) {
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
