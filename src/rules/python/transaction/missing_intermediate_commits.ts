/**
 * PA201 missing_intermediate_commits
 *
 * What it does: finds the same row of a NOTIFY-triggered table updated again and again with no
 * commit in between — a progress field set on every iteration of a loop, or a status moved
 * through several states (`running` … `done`) in one transaction.
 * Why is this bad? NOTIFY is delivered at commit. Listeners (an SSE stream, a relay) see nothing
 * while the work runs, then every state at once when it ends: the progress bar jumps 0 → 100.
 *
 * Needs the context: a trigger on UPDATE of the model's table whose function notifies on a
 * channel. Critical when a listener of that channel serves a stream; high otherwise.
 *
 * Silent look-alikes: distinct rows each updated once (a batch, atomic by design), a commit or a
 * `with ….begin()` inside the loop (throttled or not), a helper handed the session inside the
 * loop (it may commit), a status written twice with no work in between.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { Severity } from '../../../types.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import type { AssignmentInfo, AugAssignmentInfo, FileModel, LoopInfo } from '../../../semantic/model.js';
import {
  boundInLoop, callsOf, isCommitCall, listenerIsStreaming, modelOfObject, notifyModels, subscribersOf, type NotifyTable,
} from './semantics.js';

const PROGRESS_FIELD = /^(status|state|progress|phase|stage|step|percent\w*|pct|completed|processed\w*|done\w*)$/i;
const LIBRARY = /^(builtins|logging|asyncio|json|time|datetime|math|re|itertools|functools|decimal)\./;

type Write = (AssignmentInfo | AugAssignmentInfo) & { object: string; field: string };

export const missingIntermediateCommits: FileRule = {
  meta: {
    code: 'PA201',
    check: 'missing_intermediate_commits',
    family: 'transaction',
    severity: 'high',
    effort: 'S',
    summary: 'Repeated updates of a NOTIFY-triggered row with no commit between them',
    what: 'Uses the NOTIFY triggers found in migrations (or `DDL` in code): for a model whose table has an `AFTER UPDATE` trigger that calls `pg_notify`, finds one object updated on every iteration of a loop, or a `status`/`progress`-like field set more than once with work in between, with no commit between the updates. Critical when a streaming endpoint (SSE, WebSocket) listens on the channel; high otherwise.',
    why: 'PostgreSQL delivers NOTIFY when the transaction commits, and only the notifications of committed transactions. Until then listeners see nothing; at commit they get every intermediate state at once, or only the last one. Progress bars jump from 0 to 100, "running" is never seen, and a stream holding a connection for live updates has nothing to send.',
    bad:
      'from sqlalchemy import DDL, Integer, String, event\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column\n\n\n'
      + 'class Base(DeclarativeBase):\n    pass\n\n\n'
      + 'class Job(Base):\n    __tablename__ = "jobs"\n    id: Mapped[int] = mapped_column(Integer, primary_key=True)\n    status: Mapped[str] = mapped_column(String(16))\n    progress: Mapped[int] = mapped_column(Integer, default=0)\n\n\n'
      + 'event.listen(Job.__table__, "after_create", DDL("""\nCREATE FUNCTION notify_job() RETURNS trigger AS $$\nBEGIN\n    PERFORM pg_notify(\'job_progress\', NEW.id::text);\n    RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\nCREATE TRIGGER jobs_notify AFTER UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION notify_job();\n"""))\n\n\n'
      + 'def run(session: Session, job_id: int, items: list[str]) -> None:\n    job = session.get(Job, job_id)\n    for done, item in enumerate(items, start=1):\n        print(item)\n        job.progress = done * 100 // len(items)\n    session.commit()\n',
    good:
      'from sqlalchemy import DDL, Integer, String, event\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column\n\n\n'
      + 'class Base(DeclarativeBase):\n    pass\n\n\n'
      + 'class Job(Base):\n    __tablename__ = "jobs"\n    id: Mapped[int] = mapped_column(Integer, primary_key=True)\n    status: Mapped[str] = mapped_column(String(16))\n    progress: Mapped[int] = mapped_column(Integer, default=0)\n\n\n'
      + 'event.listen(Job.__table__, "after_create", DDL("""\nCREATE FUNCTION notify_job() RETURNS trigger AS $$\nBEGIN\n    PERFORM pg_notify(\'job_progress\', NEW.id::text);\n    RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\nCREATE TRIGGER jobs_notify AFTER UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION notify_job();\n"""))\n\n\n'
      + 'def run(session: Session, job_id: int, items: list[str]) -> None:\n    job = session.get(Job, job_id)\n    for done, item in enumerate(items, start=1):\n        print(item)\n        if done % 50 == 0 or done == len(items):\n            job.progress = done * 100 // len(items)\n            session.commit()\n',
    fix: 'commit at throttled milestones (every N items or seconds), or publish progress outside the DB transaction',
    references: [
      'https://www.postgresql.org/docs/current/sql-notify.html',
      'https://docs.sqlalchemy.org/en/20/orm/session_transaction.html',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const notify = notifyModels(ctx.project);
    if (notify.size === 0) return;
    const { model } = ctx;
    const models = new Set(notify.keys());
    const writes = attributeWrites(model);
    if (!writes.length) return;
    const reported = new Set<string>();
    const severityOf = (table: NotifyTable): Severity =>
      table.channels.some((c) => subscribersOf(ctx.project, c).some(listenerIsStreaming)) ? 'critical' : 'high';

    // 1. One object updated on every iteration of a loop it is not rebound in.
    for (const w of writes) {
      if (!w.loops.length) continue;
      const loop = model.loops[w.loops[w.loops.length - 1]!]!;
      if (loop.kind === 'comprehension' || boundInLoop(model, loop, w.object)) continue;
      const key = `${w.functionIndex}:${w.object}`;
      if (reported.has(key)) continue;
      const cls = modelOfObject(model, w.object, w.functionIndex, loop.node.startPosition.row + 1, models);
      if (!cls || !loopNeverCommits(model, loop)) continue;
      const table = notify.get(cls)!;
      reported.add(key);
      ctx.report({
        node: w.node,
        message: `\`${w.target}\` changes on every iteration of the loop with no commit in between: the \`${table.table}\` trigger's NOTIFY on ${channelList(table)} reaches listeners only when the transaction commits`,
        severity: severityOf(table),
      });
    }

    // 2. The same status/progress field of one object set twice with work between and no commit.
    const byField = new Map<string, Write[]>();
    for (const w of writes) {
      if (w.loops.length || !PROGRESS_FIELD.test(w.field)) continue;
      const k = `${w.functionIndex}:${w.object}.${w.field}`;
      byField.set(k, [...(byField.get(k) ?? []), w]);
    }
    for (const [k, list] of byField) {
      const objectKey = k.slice(0, k.lastIndexOf('.'));
      if (list.length < 2 || reported.has(objectKey)) continue;
      list.sort((a, b) => a.node.startIndex - b.node.startIndex);
      for (let i = 0; i + 1 < list.length; i++) {
        const first = list[i]!;
        const second = list[i + 1]!;
        if (sameBranchGroup(first.node, second.node)) continue;
        const cls = modelOfObject(model, first.object, first.functionIndex, first.line, models);
        if (!cls) break;
        const between = workBetween(model, first.functionIndex, first.node.endIndex, second.node.startIndex);
        if (between !== 'work') continue;
        const table = notify.get(cls)!;
        reported.add(objectKey);
        ctx.report({
          node: first.node,
          message: `\`${first.target}\` is set here and again on line ${second.line} with no commit in between: listeners of the \`${table.table}\` trigger's NOTIFY on ${channelList(table)} never see this state`,
          severity: severityOf(table),
        });
        break;
      }
    }
  },
};

function channelList(t: NotifyTable): string {
  return t.channels.filter((c) => c !== 'dynamic').map((c) => `\`${c}\``).join(', ') || 'its channel';
}

/** `obj.field = …` / `obj.field += …` on a plain name, in functions. */
function attributeWrites(model: FileModel): Write[] {
  const out: Write[] = [];
  for (const a of [...model.assignments, ...model.augAssignments]) {
    if (a.functionIndex < 0) continue;
    const m = /^([A-Za-z_]\w*)\.([A-Za-z]\w*)$/.exec(a.target);
    if (!m || m[1] === 'self' || m[1] === 'cls') continue;
    out.push({ ...a, object: m[1]!, field: m[2]! });
  }
  return out;
}

/**
 * No commit can happen inside the loop: no commit call, no `with ….begin()`, no call whose name
 * says commit, and no call that hands a session-like value or unknown work to a same-repo helper
 * that might commit.
 */
function loopNeverCommits(model: FileModel, loop: LoopInfo): boolean {
  for (const c of callsOf(model, loop.functionIndex)) {
    if (!c.loops.includes(loop.index)) continue;
    if (/commit|begin|transaction|savepoint/i.test(c.method)) return false;
    if (isCommitCall(model, c)) return false;
    if (c.qualifiedName && LIBRARY.test(c.qualifiedName)) continue;
    const args = c.node.childForFieldName('arguments');
    if (args?.namedChildren.some((x) => /^(self\.)?(session|db|db_session|sess|conn|connection|uow|unit_of_work|tx)$/.test(x.text))) return false;
  }
  for (const w of model.withs) {
    if (w.functionIndex !== loop.functionIndex) continue;
    if (w.node.startIndex < loop.iterStart || w.node.startIndex >= loop.iterEnd) continue;
    if (w.items.some((i) => /\.(begin|begin_nested)\(|[Ss]ession|factory\(/.test(i.value.text))) return false;
  }
  return true;
}

/** Two assignments in different branches of one `if` (only one runs). */
function sameBranchGroup(a: SyntaxNode, b: SyntaxNode): boolean {
  let p: SyntaxNode | null = a.parent;
  while (p && p.type !== 'function_definition') {
    if (p.type === 'if_statement' || p.type === 'try_statement' || p.type === 'match_statement') {
      if (b.startIndex >= p.startIndex && b.endIndex <= p.endIndex) {
        // Both under one `if`: fine only when they sit in the same branch block.
        const branchOf = (n: SyntaxNode): number => {
          let q: SyntaxNode | null = n;
          while (q && q.parent && q.parent.id !== p!.id) q = q.parent;
          return q ? q.startIndex : -1;
        };
        return branchOf(a) !== branchOf(b);
      }
    }
    p = p.parent;
  }
  return false;
}

/**
 * What lies between two offsets of a function: `commit` when a commit (or anything that may
 * commit) happens, `work` when an awaited call, a loop or a non-trivial call does, else `none`.
 */
function workBetween(model: FileModel, fnIndex: number, from: number, to: number): 'commit' | 'work' | 'none' {
  let work = false;
  for (const c of callsOf(model, fnIndex)) {
    const at = c.node.startIndex;
    if (at < from || at >= to) continue;
    if (/commit|begin|transaction/i.test(c.method) || isCommitCall(model, c)) return 'commit';
    const args = c.node.childForFieldName('arguments');
    if (args?.namedChildren.some((x) => /^(self\.)?(session|db|db_session|sess|conn|connection|uow|tx)$/.test(x.text))) return 'commit';
    if (c.qualifiedName && LIBRARY.test(c.qualifiedName) && !c.awaited) continue;
    work = true;
  }
  if (model.loops.some((l) => l.functionIndex === fnIndex && l.kind !== 'comprehension' && l.node.startIndex >= from && l.node.endIndex <= to)) work = true;
  return work ? 'work' : 'none';
}
