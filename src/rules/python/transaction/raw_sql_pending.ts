/**
 * PA209 raw_sql_pending_changes
 *
 * What it does: finds raw SQL (`session.execute(text("..."))`, `session.scalar(text(...))`, a SQL
 * string on a 1.x session, `session.connection().execute(...)`) that reads or writes a table
 * whose ORM changes are still only staged on the same session — a row `add`ed, `delete`d or
 * `merge`d, or an attribute changed on a row loaded through it — with no `flush()`, commit or
 * ORM statement in between; and raw SQL on another connection (`engine.connect()`, a DB-API
 * connection) on a table the session changed and has not committed yet.
 *
 * Why is this bad? SQLAlchemy autoflushes only before ORM statements: `Session.execute()` runs
 * the ORM's `orm_pre_session_exec` (which autoflushes) only when the statement carries the "orm"
 * compile-state plugin, i.e. names a mapped class; `text()` and Core constructs on tables never
 * do (measured on SQLAlchemy 1.4.46 and 2.0.54: a pending `add`, attribute change or `delete` is
 * invisible to `session.execute(text("SELECT ..."))`; sqlalchemy/sqlalchemy#9809 discusses
 * changing it). A raw read misses the staged change; a raw write runs first and is then
 * overwritten by the flush at commit. Another connection cannot see even flushed changes until
 * the commit, and its write to the same rows waits on the session's locks.
 *
 * The same holds for Core statements on table objects (`update(M.__table__)`, `select(table("x"))`,
 * a `Table(...)`), and on 1.4 for `insert(M)` of a mapped class (1.4 autoflushes only ORM
 * selects, updates and deletes; 2.0 also inserts) — measured on both versions.
 *
 * Silent look-alikes: `flush()` (or any ORM query, which autoflushes) between the change and the
 * raw SQL; raw SQL on other tables; a session handed to a helper in between (it may flush);
 * raw SQL before the change; another connection after the commit.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { callAt, type CallInfo, type FileModel } from '../../../semantic/model.js';
import type { ProjectContext } from '../../../discovery/context.js';
import { receiverEvidence, statementInfo, classifyDbCall } from '../query/dbCalls.js';
import { callArgs, callsOf, flaskSessionRead, lastAssignment, modelOfObject, objectSource, receiverKey, unwrap } from './semantics.js';

const STAGES = new Set(['add', 'add_all', 'merge', 'delete']);
const RAW_METHODS = new Set(['execute', 'scalar', 'scalars', 'exec', 'exec_driver_sql', 'executemany']);
/** A row loaded through a handle: `s.get(M, id)`, `(await s.execute(select(M))).scalar_one()`, `s.query(M).first()`. */
const LOAD_CALL = /(?:^|[^\w.])([A-Za-z_][\w.]*)\s*\.\s*(get|get_one|execute|scalars|scalar|scalar_one|query|exec)\s*\(/;
const SELECTED_MODEL = /\b(?:select|query)\(\s*(?:[\w.]*\.)?([A-Z]\w*)\s*[,)]/;

interface Change {
  table: string;
  line: number;
  what: string;
}

interface SessionState {
  /** Staged, not flushed: invisible to raw SQL on the same session. */
  pending: Map<string, Change>;
  /** Staged or flushed, not committed: invisible to other connections. */
  uncommitted: Map<string, Change>;
}

export const rawSqlPendingChanges: FileRule = {
  meta: {
    code: 'PA209',
    check: 'raw_sql_pending_changes',
    family: 'transaction',
    severity: 'medium',
    effort: 'S',
    summary: 'Raw SQL on a table whose ORM changes are staged but not flushed (raw SQL does not autoflush)',
    what: 'Finds raw SQL — `session.execute(text(...))`, `session.scalar(text(...))`, a SQL string, `session.connection().execute(...)` — and the other statements that do not autoflush (a Core statement on a table object: `update(M.__table__)`, `select(table("x"))`; on SQLAlchemy 1.x, `insert(M)`) on a table that has ORM changes staged on the same session (`add`, `delete`, `merge`, an attribute changed on a row loaded through it, or through Flask-SQLAlchemy\'s query property on `db.session`: `Post.query.get_or_404(i)`) with no `flush()`, commit or ORM query in between; and raw SQL on another connection (`engine.connect()`, a DB-API connection) on a table the session changed and has not committed. Silent when a flush or an ORM statement (which autoflushes) comes first, when the SQL names other tables, or when the session is handed to a helper in between.',
    why: 'SQLAlchemy 1.4 and 2.0 autoflush only before ORM statements (those that name a mapped class); `text()` and SQL strings never trigger it. A raw SELECT does not see the staged rows and answers with stale counts or sums; a raw UPDATE runs before the staged change, which the flush at commit then writes over it. Another connection cannot see the changes at all until the commit, and its writes to the same rows wait on the session\'s locks once they are flushed.',
    bad:
      'from sqlalchemy import Boolean, Integer, String, text\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column\n\n\n'
      + 'class Base(DeclarativeBase):\n    pass\n\n\nclass Seat(Base):\n    __tablename__ = "seats"\n    id: Mapped[int] = mapped_column(Integer, primary_key=True)\n'
      + '    show_id: Mapped[int] = mapped_column(Integer)\n    row: Mapped[str] = mapped_column(String(4))\n    held: Mapped[bool] = mapped_column(Boolean)\n\n\n'
      + 'def hold(session: Session, show_id: int, row: str) -> int:\n    session.add(Seat(show_id=show_id, row=row, held=True))\n'
      + '    left = session.execute(text("SELECT count(*) FROM seats WHERE show_id = :s AND NOT held"), {"s": show_id}).scalar_one()\n'
      + '    session.commit()\n    return left\n',
    good:
      'from sqlalchemy import Boolean, Integer, String, text\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column\n\n\n'
      + 'class Base(DeclarativeBase):\n    pass\n\n\nclass Seat(Base):\n    __tablename__ = "seats"\n    id: Mapped[int] = mapped_column(Integer, primary_key=True)\n'
      + '    show_id: Mapped[int] = mapped_column(Integer)\n    row: Mapped[str] = mapped_column(String(4))\n    held: Mapped[bool] = mapped_column(Boolean)\n\n\n'
      + 'def hold(session: Session, show_id: int, row: str) -> int:\n    session.add(Seat(show_id=show_id, row=row, held=True))\n    session.flush()\n'
      + '    left = session.execute(text("SELECT count(*) FROM seats WHERE show_id = :s AND NOT held"), {"s": show_id}).scalar_one()\n'
      + '    session.commit()\n    return left\n',
    fix: 'call `session.flush()` before the raw SQL (or express it as an ORM statement, which autoflushes); on another connection, commit the session first or run the SQL on the session',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#flushing',
      'https://docs.sqlalchemy.org/en/20/orm/queryguide/api.html#orm-queryguide-autoflush',
      'https://github.com/sqlalchemy/sqlalchemy/issues/9809',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile || !/\btext\s*\(|execute\s*\(\s*[rfbu]?["']|__table__|\b[Tt]able\s*\(|\binsert\s*\(/i.test(model.source)) return;
    const tables = modelTables(project);
    if (!tables.size) return;
    const modelNames = new Set(tables.keys());
    const sqla1 = project.summary.orms.includes('SQLAlchemy 1.x');
    model.functions.forEach((fn, fnIndex) => {
      if (!/\b(add|add_all|merge|delete)\s*\(|\.[a-z]\w*\s*[-+*/]?=[^=]/.test(fn.node.text)) return;
      checkFunction(ctx, model, fnIndex, tables, modelNames, sqla1);
    });
  },
};

function checkFunction(ctx: FileRuleContext, model: FileModel, fnIndex: number, tables: Map<string, string>, modelNames: Set<string>, sqla1: boolean): void {
  type Event = { at: number; call?: CallInfo; attr?: { obj: string; node: SyntaxNode; line: number; loops: number[]; target: string } };
  const events: Event[] = [];
  for (const c of callsOf(model, fnIndex)) if (!c.offloaded) events.push({ at: c.node.startIndex, call: c });
  for (const a of [...model.assignments, ...model.augAssignments]) {
    if (a.functionIndex !== fnIndex) continue;
    const m = /^([A-Za-z_]\w*)\.([a-z]\w*)$/.exec(a.target);
    if (m) events.push({ at: a.node.startIndex, attr: { obj: m[1]!, node: a.node, line: a.line, loops: a.loops, target: a.target } });
  }
  if (!events.some((e) => e.attr || (e.call && STAGES.has(e.call.method)))) return;
  events.sort((a, b) => a.at - b.at);
  const sessions = new Map<string, SessionState>();
  const staged = new Map<string, { session: string; model: string }>();
  const state = (key: string) => {
    let s = sessions.get(key);
    if (!s) sessions.set(key, (s = { pending: new Map(), uncommitted: new Map() }));
    return s;
  };
  const stage = (key: string, modelName: string, line: number, what: string) => {
    const table = tables.get(modelName);
    if (!table) return;
    const s = state(key);
    const change = { table, line, what };
    if (!s.pending.has(table)) s.pending.set(table, change);
    if (!s.uncommitted.has(table)) s.uncommitted.set(table, change);
  };
  for (const ev of events) {
    if (ev.attr) {
      const { obj, line, loops, target } = ev.attr;
      const known = staged.get(obj);
      const loaded = known ?? loadedThrough(model, obj, fnIndex, line, loops, modelNames);
      if (loaded) stage(loaded.session, loaded.model, line, `${target} = …`);
      continue;
    }
    const call = ev.call!;
    // A session handed to a helper: it may flush or commit.
    for (const key of sessions.keys()) if (passes(call, key)) sessions.delete(key);
    // A Flask-SQLAlchemy query-property read (`Comment.query.filter_by(...).count()`) is an ORM
    // statement on the extension's `db.session`: it autoflushes it.
    const flaskRead = flaskQueryRead(model, call, modelNames);
    // `get`/`get_or_404` answer from the identity map without SQL when the row is loaded: no autoflush.
    if (flaskRead && !/\.(get|get_or_404)\s*\([^()]*\)\s*$/.test(call.node.text)) {
      sessions.get(flaskRead.session)?.pending.clear();
      continue;
    }
    if (flaskRead) continue;
    const key = receiverKey(call) ?? connectionOf(call);
    if (!key) continue;
    const alias = sessionAlias(model, key, fnIndex, call.line);
    const own = sessions.has(alias ?? key) ? (alias ?? key) : null;
    if (STAGES.has(call.method)) {
      if (!receiverEvidence(model, call)) continue;
      for (const { name, obj } of stagedModels(model, call, fnIndex, modelNames)) {
        stage(key, name, call.line, `${call.calleeText}(…)`);
        if (obj && call.method !== 'delete') staged.set(obj, { session: key, model: name });
      }
      continue;
    }
    if (call.method === 'flush' || call.method === 'refresh') {
      if (own) sessions.get(own)!.pending.clear();
      continue;
    }
    if (call.method === 'commit' || call.method === 'rollback' || call.method === 'close' || call.method === 'expunge_all') {
      if (own) sessions.delete(own);
      continue;
    }
    if (!RAW_METHODS.has(call.method) && call.method !== 'get' && call.method !== 'query' && call.method !== 'get_one') continue;
    const raw = rawTables(model, call, fnIndex, tables, sqla1);
    if (!raw) {
      // An ORM statement (or `get`/`query`) autoflushes the session it runs on.
      if (own && (classifyDbCall(model, call) || call.method === 'query')) sessions.get(own)!.pending.clear();
      continue;
    }
    if (own) {
      const hit = raw.tables.map((t) => sessions.get(own)!.pending.get(t)).find((c) => c);
      if (hit) {
        ctx.report({
          node: call.node,
          message: `\`${call.calleeText}(…)\`, ${raw.label}, ${raw.write ? 'writes' : 'reads'} \`${hit.table}\`, which has ORM changes staged on \`${own}\` and not flushed (\`${hit.what}\`, line ${hit.line}): it does not autoflush, so ${raw.write ? "it runs before the staged change reaches the database, and the flush (at commit or the next ORM query) applies that change after it" : "it does not see the staged change"}`,
        });
      }
      continue;
    }
    if (!receiverEvidence(model, call) && !connectionOf(call)) continue;
    for (const [skey, s] of sessions) {
      const hit = raw.tables.map((t) => s.uncommitted.get(t)).find((c) => c);
      if (!hit) continue;
      ctx.report({
        node: call.node,
        message: `\`${call.calleeText}(…)\`, ${raw.label} on \`${key}\`, another connection than \`${skey}\`, ${raw.write ? 'writes' : 'reads'} \`${hit.table}\` while \`${skey}\` holds uncommitted ORM changes to it (\`${hit.what}\`, line ${hit.line}): the other connection cannot see them before the commit${raw.write ? ', and its write waits on the session\'s row locks once they are flushed' : ''}`,
      });
      break;
    }
  }
}

/** Class name → table name of the project's models (Flask-SQLAlchemy's snake_case default when none is declared). */
const tableCache = new WeakMap<ProjectContext, Map<string, string>>();
function modelTables(project: ProjectContext): Map<string, string> {
  let out = tableCache.get(project);
  if (out) return out;
  out = new Map();
  for (const m of project.models ?? []) {
    const table = (m.table ?? m.name.replace(/([a-z0-9])([A-Z])/g, '$1_$2')).toLowerCase().replace(/^public\./, '').replace(/"/g, '');
    if (!out.has(m.name)) out.set(m.name, table);
  }
  tableCache.set(project, out);
  return out;
}

/** `s.connection().execute(...)`: the session whose connection runs the statement. */
function connectionOf(call: CallInfo): string | null {
  const r = unwrap(call.receiver);
  if (r?.type !== 'call') return null;
  const m = /^([A-Za-z_][\w.]*)\.connection\(\)$/.exec(r.text.replace(/\s+/g, ''));
  return m ? m[1]! : null;
}

/** `conn = session.connection()` (awaited or not): the name runs on the session's own connection. */
function sessionAlias(model: FileModel, key: string, fnIndex: number, line: number): string | null {
  if (!/^[A-Za-z_]\w*$/.test(key)) return null;
  const a = lastAssignment(model, key, fnIndex, line);
  const v = unwrap(a?.value ?? null)?.text.replace(/\s+/g, '') ?? '';
  const m = /^([A-Za-z_][\w.]*)\.connection\(\)$/.exec(v);
  return m ? m[1]! : null;
}

/** Is the session handed to the call as an argument (`helper(session)`, `helper(db=session)`)? */
function passes(call: CallInfo, key: string): boolean {
  const args = callArgs(call.node);
  const is = (n: SyntaxNode) => unwrap(n)?.text.replace(/\s+/g, '') === key;
  return args.positional.some(is) || [...args.keywords.values()].some(is);
}

/**
 * The tables a statement that does not autoflush names, whether it writes, and what it is:
 * raw SQL (`text()`, a string), a Core statement on a table object (`update(M.__table__)`,
 * `select(table("x"))`, a module-level `Table("x", ...)`), or, on SQLAlchemy 1.x, an
 * `insert(M)` (1.4 autoflushes only ORM selects, updates and deletes). Null for anything else.
 */
function rawTables(model: FileModel, call: CallInfo, fnIndex: number, tables: Map<string, string>, sqla1: boolean): { tables: string[]; write: boolean; label: string } | null {
  if (!RAW_METHODS.has(call.method)) return null;
  const first = callArgs(call.node).positional[0];
  if (!first) return null;
  const st = statementInfo(model, first, fnIndex, call.line);
  if (!st) return null;
  const write = st.kind !== 'read';
  if (st.ctor === 'text' || st.ctor === 'sql') return st.sql === null ? null : { tables: sqlTables(st.sql), write, label: 'raw SQL' };
  if (sqla1 && st.ctor === 'insert' && st.entity && tables.has(st.entity)) return { tables: [tables.get(st.entity)!], write, label: 'an `insert()` of a mapped class on SQLAlchemy 1.x' };
  // Core statements on table objects: the root's first argument, and `select_from(...)`.
  const targets = [callArgs(st.root).positional[0], ...st.chainCalls.filter((_, i) => st.chain[i] === 'select_from').map((c) => callArgs(c).positional[0])];
  const named = targets.map((t) => coreTable(model, t ?? null, fnIndex, call.line, tables)).filter((t): t is string => !!t);
  return named.length ? { tables: named, write, label: 'a Core statement on a table object' } : null;
}

/** The table a Core table expression names: `M.__table__`, `table("x")`, a module-level `x = Table("x", ...)`. */
function coreTable(model: FileModel, node: SyntaxNode | null, fnIndex: number, line: number, tables: Map<string, string>): string | null {
  const n = unwrap(node);
  if (!n) return null;
  const t = n.text.replace(/\s+/g, '');
  let m = /^(?:[\w.]*\.)?([A-Z]\w*)\.__table__$/.exec(t);
  if (m) return tables.get(m[1]!) ?? null;
  m = /^(?:[\w.]*\.)?(?:table|Table)\(["']([\w.]+)["']/.exec(t);
  if (m) return m[1]!.split('.').pop()!.toLowerCase();
  if (n.type === 'identifier') {
    const a = lastAssignment(model, n.text, fnIndex, line);
    if (a && a.functionIndex < 0 && a.value) return coreTable(model, a.value.type === 'call' && /^(?:[\w.]*\.)?Table$/.test(a.value.childForFieldName('function')?.text ?? '') ? a.value : null, -1, a.line, tables);
  }
  return null;
}

/** Table names after FROM / JOIN / UPDATE / INTO in SQL text (schema and quotes dropped; interpolations skipped). */
export function sqlTables(sql: string): string[] {
  const out = new Set<string>();
  const re = /\b(?:from|join|update|into)\s+((?:"[^"]+"|[A-Za-z_][\w$]*)(?:\s*\.\s*(?:"[^"]+"|[A-Za-z_][\w$]*))?)/gi;
  for (let m = re.exec(sql); m; m = re.exec(sql)) {
    const name = m[1]!.split('.').pop()!.trim().replace(/"/g, '').toLowerCase();
    if (name) out.add(name);
  }
  return [...out];
}

/** The model classes an `add`/`add_all`/`merge`/`delete` stages, and the object name when it is one. */
function stagedModels(model: FileModel, call: CallInfo, fnIndex: number, modelNames: Set<string>): { name: string; obj: string | null }[] {
  const arg = unwrap(callArgs(call.node).positional[0] ?? null);
  if (!arg) return [];
  if (arg.type === 'identifier') {
    const name = modelOfObject(model, arg.text, fnIndex, call.line, modelNames);
    return name ? [{ name, obj: arg.text }] : [];
  }
  const out: { name: string; obj: string | null }[] = [];
  const re = /(?:^|[^\w.])(?:[a-z_][\w]*\.)*([A-Z]\w*)\s*\(/g;
  for (let m = re.exec(arg.text); m; m = re.exec(arg.text)) if (modelNames.has(m[1]!) && !out.some((o) => o.name === m![1])) out.push({ name: m[1]!, obj: null });
  return out;
}

/**
 * A read through a model's Flask-SQLAlchemy query property, the outermost call of its chain
 * (`Post.query.get_or_404(i)`, `Post.query.filter_by(...).first()`, `.first_or_404()`,
 * `.filter(...).one()`, `.count()`), in a file with one extension object: the `db.session` key and the model.
 */
function flaskQueryRead(model: FileModel, call: CallInfo, modelNames: Set<string>): { session: string; model: string } | null {
  if (model.flaskDbHandles.size !== 1 || call.node.parent?.type === 'attribute') return null;
  const m = /^(?:[\w.]*\.)?([A-Z]\w*)\.query\s*\./.exec(call.node.text);
  if (!m || !modelNames.has(m[1]!) || !flaskSessionRead(model, call) && !/\.(get|get_or_404|first|first_or_404|one|one_or_none|all|count|scalar|paginate)\s*\([^()]*\)\s*$/.test(call.node.text)) return null;
  return { session: `${[...model.flaskDbHandles][0]!}.session`, model: m[1]! };
}

/** Was `obj` loaded through a database handle in this function? The handle and the model. */
function loadedThrough(model: FileModel, obj: string, fnIndex: number, line: number, loops: number[], modelNames: Set<string>): { session: string; model: string } | null {
  const found = objectSource(model, obj, fnIndex, line, loops, true);
  if (!found) return null;
  const source = found.node;
  let modelName = found.fromLoop ? null : modelOfObject(model, obj, fnIndex, line, modelNames);
  const text = source.text;
  // Flask-SQLAlchemy's query property (`Post.query.get_or_404(pid)`, `Post.query.filter_by(...).first()`):
  // a read on the extension's `db.session`.
  const read = source.type === 'call' ? callAt(model, source) : undefined;
  const flask = read ? flaskQueryRead(model, read, modelNames) : null;
  if (flask) return { session: flask.session, model: modelName ?? flask.model };
  const m = LOAD_CALL.exec(text);
  if (!m) return null;
  if (!modelName) {
    const sel = SELECTED_MODEL.exec(text);
    modelName = sel && modelNames.has(sel[1]!) ? sel[1]! : null;
  }
  if (!modelName) return null;
  const session = m[1]!;
  // The handle must be a database handle: one of the function's calls on it says so.
  const ok = callsOf(model, fnIndex).some((c) => receiverKey(c) === session && c.node.startIndex >= source.startIndex && c.node.endIndex <= source.endIndex && receiverEvidence(model, c));
  return ok ? { session, model: modelName } : null;
}
