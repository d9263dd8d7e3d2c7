/**
 * PostgreSQL facts from SQL text, read with the real PostgreSQL parser (libpg-query, WASM):
 * triggers, functions that NOTIFY and on which channels, LISTEN and top-level NOTIFY statements.
 *
 * Never throws on bad SQL: text that does not parse as a whole is split into statements with
 * the PostgreSQL scanner and each statement is parsed alone, so one bad statement costs only
 * itself. Each failure is returned in `errors`.
 */
import { createRequire } from 'node:module';

type PgQuery = typeof import('libpg-query');
const require = createRequire(import.meta.url);

export interface SqlTrigger {
  name: string;
  table: string;
  timing: string;
  events: string[];
  forEach: 'ROW' | 'STATEMENT';
  function: string;
  /** Literal arguments passed to the trigger function (`TG_ARGV`). */
  args: string[];
  file: string;
  line: number;
  /** Statement ordinal in this text. */
  index: number;
}

export interface SqlNotifyFunction {
  name: string;
  /** Literal channels, `"dynamic"`, or `$argv[N]` when the channel is `TG_ARGV[N]`. */
  channels: string[];
  returnsTrigger: boolean;
  file: string;
  line: number;
  /** Statement ordinal in this text. */
  index: number;
}

export interface SqlChannelUse {
  channel: string;
  file: string;
  line: number;
  kind: 'pg_notify' | 'notify' | 'listen';
}

/** A `DROP TRIGGER` / `DROP FUNCTION`, or any `CREATE FUNCTION` (which replaces an earlier body). */
export interface SqlSchemaChange {
  kind: 'drop_trigger' | 'drop_function' | 'define_function';
  name: string;
  /** The trigger's table, for `drop_trigger`. */
  table: string | null;
  /** Statement ordinal in this text, to interleave with creations. */
  index: number;
  line: number;
}

export interface SqlError {
  file: string;
  line: number;
  reason: string;
}

export interface SqlFacts {
  file: string;
  triggers: SqlTrigger[];
  notifyFunctions: SqlNotifyFunction[];
  /** `LISTEN x` statements. */
  listens: SqlChannelUse[];
  /** `pg_notify(...)` / `NOTIFY x` outside function bodies. */
  notifies: SqlChannelUse[];
  /** Drops and function (re)definitions, in statement order, so a reader can replay the schema. */
  changes: SqlSchemaChange[];
  statements: number;
  errors: SqlError[];
}

/** The channel value for anything that is not a literal. */
export const DYNAMIC = 'dynamic';

let loaded: Promise<void> | null = null;
/** The library, required by {@link loadSqlParser}. */
let pg: PgQuery | null = null;

/**
 * Loads the WASM parser; call (and await) once before {@link extractSqlFacts}. The library is
 * required here, not imported: it instantiates its 1.7 MB WebAssembly module as it loads, and
 * every worker imports this module (discovery's facts pass, the rules) while most trees give a
 * worker no SQL to read (~60 ms of CPU per thread at start, on the path to its first batch).
 */
export function loadSqlParser(): Promise<void> {
  if (!loaded) {
    try {
      pg = require('libpg-query') as PgQuery;
      loaded = pg.loadModule();
    } catch (err) {
      loaded = Promise.reject(err);
    }
  }
  return loaded;
}

/** The loaded library (after {@link loadSqlParser}). */
function pgQuery(): PgQuery {
  if (!pg) throw new Error('the PostgreSQL parser is not loaded: call loadSqlParser() first');
  return pg;
}

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * Facts from one piece of SQL text found in `file`. `line` is the 1-based line of the text's
 * first character in that file; reported lines are file lines.
 */
export function extractSqlFacts(sql: string, file: string, line = 1): SqlFacts {
  const facts: SqlFacts = { file, triggers: [], notifyFunctions: [], listens: [], notifies: [], changes: [], statements: 0, errors: [] };
  if (!sql.trim()) return facts;
  const bytes = Buffer.from(sql, 'utf8');
  const newlines = newlineOffsets(bytes);
  const lineAt = (byteOffset: number): number => line + countBefore(newlines, byteOffset);
  let whole: Json | null = null;
  try {
    whole = pgQuery().parseSync(sql);
  } catch {
    whole = null;
  }
  if (whole) {
    for (const raw of whole.stmts ?? []) {
      const loc = raw.stmt_location ?? 0;
      const len = raw.stmt_len ?? bytes.length - loc;
      facts.statements++;
      statementFacts(raw.stmt, bytes.subarray(loc, loc + len).toString('utf8'), lineAt(skipSpace(bytes, loc)), facts);
    }
    return facts;
  }
  for (const piece of splitStatements(sql, bytes)) {
    const text = bytes.subarray(piece.start, piece.end).toString('utf8');
    if (!text.trim()) continue;
    const stmtLine = lineAt(skipSpace(bytes, piece.start));
    facts.statements++;
    let parsed: Json;
    try {
      parsed = pgQuery().parseSync(text);
    } catch (err) {
      facts.errors.push({ file: facts.file, line: stmtLine, reason: errorReason(err) });
      continue;
    }
    const b = Buffer.from(text, 'utf8');
    for (const raw of parsed.stmts ?? []) {
      const loc = raw.stmt_location ?? 0;
      const len = raw.stmt_len ?? b.length - loc;
      statementFacts(raw.stmt, b.subarray(loc, loc + len).toString('utf8'), lineAt(skipSpace(bytes, piece.start + loc)), facts);
    }
  }
  return facts;
}

function errorReason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0]!.slice(0, 200);
}

/** Byte offsets of every `\n`, for line numbers by binary search (a dump has thousands of statements). */
function newlineOffsets(bytes: Buffer): number[] {
  const out: number[] = [];
  for (let i = bytes.indexOf(10); i >= 0; i = bytes.indexOf(10, i + 1)) out.push(i);
  return out;
}

/** How many offsets are below `at`. */
function countBefore(sorted: number[], at: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < at) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function skipSpace(bytes: Buffer, at: number): number {
  let i = at;
  while (i < bytes.length && (bytes[i] === 32 || bytes[i] === 10 || bytes[i] === 13 || bytes[i] === 9)) i++;
  return i;
}

/** Statement byte ranges, split at top-level `;` tokens (the scanner keeps `$$…$$` bodies whole). */
function splitStatements(sql: string, bytes: Buffer): { start: number; end: number }[] {
  const pieces: { start: number; end: number }[] = [];
  let start = 0;
  try {
    const { tokens } = pgQuery().scanSync(sql);
    // BEGIN ATOMIC … END bodies hold `;` that do not end the statement.
    let atomic = 0;
    let prev = '';
    for (const t of tokens) {
      const upper = t.text.toUpperCase();
      if (upper === 'ATOMIC' && prev === 'BEGIN') atomic++;
      else if (upper === 'END' && atomic > 0) atomic--;
      else if (t.text === ';' && atomic === 0) {
        pieces.push({ start, end: t.end });
        start = t.end;
      }
      prev = upper;
    }
  } catch {
    // The scanner failed (an unterminated quote): split at semicolons that end a line.
    pieces.length = 0;
    start = 0;
    const text = bytes.toString('latin1');
    const re = /;[ \t]*\r?\n/g;
    let m: RegExpExecArray | null;
    while ((m = re.exec(text))) {
      pieces.push({ start, end: m.index + 1 });
      start = m.index + 1;
    }
  }
  if (start < bytes.length) pieces.push({ start, end: bytes.length });
  return pieces;
}

function statementFacts(stmt: Json, text: string, line: number, facts: SqlFacts): void {
  if (!stmt || typeof stmt !== 'object') return;
  const [type] = Object.keys(stmt);
  const node = stmt[type!];
  switch (type) {
    case 'CreateTrigStmt':
      facts.triggers.push({ ...triggerOf(node, facts.file, line), index: facts.statements });
      return;
    case 'CreateFunctionStmt': {
      facts.changes.push({ kind: 'define_function', name: qualifiedName(node.funcname), table: null, index: facts.statements, line });
      const fn = notifyFunctionOf(node, text, line, facts);
      if (fn) facts.notifyFunctions.push(fn);
      return;
    }
    case 'DropStmt':
      dropsOf(node, line, facts);
      return;
    case 'ListenStmt':
      facts.listens.push({ channel: node.conditionname ?? DYNAMIC, file: facts.file, line, kind: 'listen' });
      return;
    case 'NotifyStmt':
      facts.notifies.push({ channel: node.conditionname ?? DYNAMIC, file: facts.file, line, kind: 'notify' });
      return;
    case 'DoStmt':
      for (const ch of doBlockChannels(node)) facts.notifies.push({ channel: ch, file: facts.file, line, kind: 'pg_notify' });
      return;
    default:
      for (const ch of notifyCalls(node)) facts.notifies.push({ channel: ch, file: facts.file, line, kind: 'pg_notify' });
  }
}

const TRIGGER_TYPE_ROW = 1;
const TRIGGER_TYPE_BEFORE = 2;
const TRIGGER_TYPE_INSTEAD = 64;
const TRIGGER_EVENTS: [number, string][] = [
  [4, 'INSERT'],
  [16, 'UPDATE'],
  [8, 'DELETE'],
  [32, 'TRUNCATE'],
];

function triggerOf(node: Json, file: string, line: number): Omit<SqlTrigger, 'index'> {
  const rel = node.relation ?? {};
  const table = [rel.schemaname, rel.relname].filter(Boolean).join('.');
  const timingBits = node.timing ?? 0;
  const timing = timingBits & TRIGGER_TYPE_BEFORE ? 'BEFORE' : timingBits & TRIGGER_TYPE_INSTEAD ? 'INSTEAD OF' : 'AFTER';
  const events = TRIGGER_EVENTS.filter(([bit]) => (node.events ?? 0) & bit).map(([, name]) => name);
  const args: string[] = [];
  for (const a of node.args ?? []) {
    const s = a.String?.sval;
    if (typeof s === 'string') args.push(s);
  }
  return {
    name: node.trigname ?? '',
    table,
    timing,
    events,
    forEach: node.row || timingBits & TRIGGER_TYPE_ROW ? 'ROW' : 'STATEMENT',
    function: qualifiedName(node.funcname),
    args,
    file,
    line,
  };
}

function dropsOf(node: Json, line: number, facts: SqlFacts): void {
  for (const obj of node.objects ?? []) {
    if (node.removeType === 'OBJECT_TRIGGER') {
      const parts: string[] = (obj.List?.items ?? []).map((i: Json) => i.String?.sval ?? '');
      const name = parts.pop() ?? '';
      facts.changes.push({ kind: 'drop_trigger', name, table: parts.join('.'), index: facts.statements, line });
    } else if (node.removeType === 'OBJECT_FUNCTION' || node.removeType === 'OBJECT_PROCEDURE') {
      facts.changes.push({ kind: 'drop_function', name: qualifiedName(obj.ObjectWithArgs?.objname), table: null, index: facts.statements, line });
    }
  }
}

function qualifiedName(parts: Json[] | undefined): string {
  return (parts ?? []).map((p) => p.String?.sval ?? '').filter(Boolean).join('.');
}

/** A CREATE FUNCTION whose body calls pg_notify / NOTIFY, or null. */
function notifyFunctionOf(node: Json, text: string, line: number, facts: SqlFacts): SqlNotifyFunction | null {
  const name = qualifiedName(node.funcname);
  const returnsTrigger = qualifiedName(node.returnType?.names).replace(/^pg_catalog\./, '') === 'trigger';
  let language = 'sql';
  let body: string | null = null;
  for (const opt of node.options ?? []) {
    const d = opt.DefElem;
    if (!d) continue;
    if (d.defname === 'language') language = String(d.arg?.String?.sval ?? '').toLowerCase();
    if (d.defname === 'as') body = d.arg?.List?.items?.[0]?.String?.sval ?? null;
  }
  const channels = new Set<string>();
  if (node.sql_body) {
    for (const ch of notifyCalls(node.sql_body)) channels.add(ch);
  } else if (language === 'plpgsql') {
    let parsed: Json;
    try {
      parsed = pgQuery().parsePlPgSQLSync(text);
      for (const query of plpgsqlQueries(parsed)) {
        for (const ch of channelsInEmbeddedSql(query.text, query.dynamic)) channels.add(ch);
      }
    } catch (err) {
      facts.errors.push({ file: facts.file, line, reason: `PL/pgSQL body of ${name}: ${errorReason(err)}` });
      // The body does not parse, but its tokens still show which channels it notifies.
      for (const ch of channelsFromTokens(body ?? '')) channels.add(ch);
    }
  } else if (language === 'sql' && body) {
    try {
      const parsed: Json = pgQuery().parseSync(body);
      for (const s of parsed.stmts ?? []) {
        const [t] = Object.keys(s.stmt ?? {});
        if (t === 'NotifyStmt') channels.add(s.stmt.NotifyStmt.conditionname ?? DYNAMIC);
        else for (const ch of notifyCalls(s.stmt)) channels.add(ch);
      }
    } catch (err) {
      facts.errors.push({ file: facts.file, line, reason: `SQL body of ${name}: ${errorReason(err)}` });
    }
  }
  if (channels.size === 0) return null;
  return { name, channels: [...channels].sort(), returnsTrigger, file: facts.file, line, index: facts.statements };
}

/** Channels notified by an anonymous `DO $$ … $$` block (PL/pgSQL, read as a function body). */
function doBlockChannels(node: Json): string[] {
  let body: string | null = null;
  let language = 'plpgsql';
  for (const opt of node.args ?? []) {
    const d = opt.DefElem;
    if (d?.defname === 'as') body = d.arg?.String?.sval ?? null;
    if (d?.defname === 'language') language = String(d.arg?.String?.sval ?? '').toLowerCase();
  }
  if (!body || language !== 'plpgsql' || !/notify/i.test(body)) return [];
  const tag = '$pa_do_block$';
  if (body.includes(tag)) return [];
  try {
    const parsed = pgQuery().parsePlPgSQLSync(`CREATE FUNCTION pa_do_block() RETURNS void AS ${tag}${body}${tag} LANGUAGE plpgsql`);
    return plpgsqlQueries(parsed).flatMap((q) => channelsInEmbeddedSql(q.text, q.dynamic));
  } catch {
    return channelsFromTokens(body);
  }
}

/** `pg_notify('x'` and `NOTIFY x` from the PostgreSQL scanner's tokens, for bodies that do not parse. */
function channelsFromTokens(body: string): string[] {
  let tokens: { text: string; tokenName: string }[];
  try {
    tokens = pgQuery().scanSync(body).tokens;
  } catch {
    return [];
  }
  const out: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!.text.toLowerCase();
    if (t === 'pg_notify' && tokens[i + 1]?.text === '(') {
      const arg = tokens[i + 2];
      const after = tokens[i + 3]?.text;
      const literal = arg?.tokenName === 'SCONST' && (after === ',' || after === ')' || after === '::');
      out.push(literal ? arg!.text.replace(/^'|'$/g, '').replace(/''/g, "'") : DYNAMIC);
    } else if (t === 'notify' && tokens[i + 1]?.tokenName === 'IDENT') {
      out.push(tokens[i + 1]!.text);
    }
  }
  return out;
}

/** Every embedded SQL expression of a PL/pgSQL function, with whether it is an EXECUTE string. */
function plpgsqlQueries(parsed: Json): { text: string; dynamic: boolean }[] {
  const out: { text: string; dynamic: boolean }[] = [];
  const walk = (v: Json, dynamic: boolean): void => {
    if (Array.isArray(v)) {
      for (const x of v) walk(x, dynamic);
      return;
    }
    if (!v || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v)) {
      if (k === 'PLpgSQL_expr' && x && typeof (x as Json).query === 'string') {
        out.push({ text: (x as Json).query, dynamic });
      } else {
        walk(x, dynamic || k === 'PLpgSQL_stmt_dynexecute');
      }
    }
  };
  walk(parsed, false);
  return out;
}

/**
 * Channels used by one embedded statement or expression of a function body. An EXECUTE string
 * that builds a NOTIFY is `dynamic` unless it is one literal.
 */
function channelsInEmbeddedSql(query: string, dynamic: boolean): string[] {
  if (dynamic) {
    if (!/notify/i.test(query)) return [];
    // `EXECUTE 'NOTIFY orders'` — a single literal holding a whole statement.
    try {
      const expr = (pgQuery().parseSync(`SELECT ${query}`) as Json).stmts?.[0]?.stmt?.SelectStmt?.targetList?.[0]?.ResTarget?.val;
      const literal = expr?.A_Const?.sval?.sval;
      if (typeof literal === 'string') return channelsInEmbeddedSql(literal, false);
    } catch {
      // fall through
    }
    return /pg_notify|\bnotify\b/i.test(query) ? [DYNAMIC] : [];
  }
  if (!/notify/i.test(query)) return [];
  for (const text of [query, `SELECT ${query}`]) {
    let parsed: Json;
    try {
      parsed = pgQuery().parseSync(text);
    } catch {
      continue;
    }
    const out: string[] = [];
    for (const s of parsed.stmts ?? []) {
      if (s.stmt?.NotifyStmt) out.push(s.stmt.NotifyStmt.conditionname ?? DYNAMIC);
      else out.push(...notifyCalls(s.stmt));
    }
    return out;
  }
  return [];
}

/** Channel of every `pg_notify(channel, …)` call in a parse tree. */
function notifyCalls(tree: Json): string[] {
  const out: string[] = [];
  const walk = (v: Json): void => {
    if (Array.isArray(v)) {
      for (const x of v) walk(x);
      return;
    }
    if (!v || typeof v !== 'object') return;
    const call = v.FuncCall;
    if (call && qualifiedName(call.funcname).replace(/^pg_catalog\./, '').toLowerCase() === 'pg_notify') {
      out.push(channelOf(call.args?.[0]));
    }
    for (const x of Object.values(v)) walk(x);
  };
  walk(tree);
  return out;
}

function channelOf(arg: Json): string {
  if (!arg) return DYNAMIC;
  if (arg.TypeCast) return channelOf(arg.TypeCast.arg);
  const s = arg.A_Const?.sval?.sval;
  if (typeof s === 'string') return s;
  const ind = arg.A_Indirection;
  if (ind) {
    const field = ind.arg?.ColumnRef?.fields;
    const name = field?.[field.length - 1]?.String?.sval;
    const idx = ind.indirection?.[0]?.A_Indices?.uidx?.A_Const?.ival;
    if (String(name).toLowerCase() === 'tg_argv' && ind.indirection?.length === 1) {
      return `$argv[${typeof idx === 'object' ? (idx.ival ?? 0) : (idx ?? 0)}]`;
    }
  }
  return DYNAMIC;
}
