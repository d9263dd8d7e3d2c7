/**
 * Just enough of raw SQL text (`text("...")`, `cursor.execute("...")`) for the query rules: the
 * statement's kind and whether its top-level select list has a `*`. A small lexer that skips
 * comments, string literals and quoted identifiers and tracks parentheses; the PostgreSQL
 * parser (`src/rules/sql/parse.ts`) is loaded in the main thread only, so the workers cannot
 * use it yet.
 */

export type SqlKind = 'read' | 'write' | 'insert' | 'other';

interface Token {
  word: string;
  depth: number;
}

/** Upper-cased words and single-character punctuation at their parenthesis depth. */
function tokens(sql: string): Token[] {
  const out: Token[] = [];
  let depth = 0;
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i]!;
    if (ch === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl + 1;
    } else if (ch === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 2;
    } else if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < sql.length && !(sql[j] === ch && sql[j + 1] !== ch)) j += sql[j] === ch ? 2 : 1;
      if (ch === '"') out.push({ word: 'IDENT', depth });
      else out.push({ word: 'LITERAL', depth });
      i = j + 1;
    } else if (ch === '(') {
      out.push({ word: '(', depth });
      depth++;
      i++;
    } else if (ch === ')') {
      depth = Math.max(0, depth - 1);
      out.push({ word: ')', depth });
      i++;
    } else if (/[A-Za-z_]/.test(ch)) {
      let j = i + 1;
      while (j < sql.length && /[A-Za-z0-9_$]/.test(sql[j]!)) j++;
      out.push({ word: sql.slice(i, j).toUpperCase(), depth });
      i = j;
    } else if (/\s/.test(ch)) {
      i++;
    } else {
      out.push({ word: ch, depth });
      i++;
    }
  }
  return out;
}

/** What a statement does: SELECT (and WITH … SELECT) reads, UPDATE/DELETE write, INSERT inserts. */
export function sqlKind(sql: string): SqlKind {
  const toks = tokens(sql);
  const first = toks.find((t) => t.word !== '(');
  if (!first) return 'other';
  switch (first.word) {
    case 'SELECT':
    case 'VALUES':
    case 'TABLE':
      return 'read';
    case 'UPDATE':
    case 'DELETE':
      return 'write';
    case 'INSERT':
      return 'insert';
    case 'WITH': {
      // A data-modifying CTE writes; the main statement follows the last top-level `)`.
      let kind: SqlKind = 'read';
      for (const t of toks) {
        if (t.word === 'UPDATE' || t.word === 'DELETE') return 'write';
        if (t.word === 'INSERT') kind = 'insert';
      }
      return kind;
    }
    default:
      return 'other';
  }
}

/** The PostgreSQL system catalogs and the information schema: narrow rows the server owns, not a wide table. */
const CATALOG_FROM = /\bFROM\s+"?(pg_catalog\.|information_schema\.|pg_[a-z_]+\b)/i;

/**
 * Is the top-level FROM after token `from` a derived table (`FROM (SELECT a, sum(b) ...) t`)?
 * Its `*` is the subquery's own projection, as a CTE's is: named columns, not a wide table's.
 */
function fromDerivedTable(toks: { word: string; depth: number }[], from: number): boolean {
  for (let i = from; i < toks.length; i++) {
    const t = toks[i]!;
    if (t.depth === 0 && t.word === 'FROM') return toks[i + 1]?.word === '(';
  }
  return false;
}

/**
 * Does the top-level SELECT list contain `*` or `alias.*`? `count(*)`, `EXISTS (SELECT * …)`,
 * a read of a system catalog (`SELECT * FROM pg_tables WHERE …`) and a star over a derived table
 * (`SELECT * FROM (SELECT …) t`) do not count.
 */
export function selectsStar(sql: string): boolean {
  if (CATALOG_FROM.test(sql)) return false;
  const toks = tokens(sql);
  let i = toks.findIndex((t) => t.word === 'SELECT' && t.depth === 0);
  if (i < 0) return false;
  i++;
  if (toks[i]?.word === 'DISTINCT' || toks[i]?.word === 'ALL') {
    i++;
    if (toks[i]?.word === 'ON' && toks[i + 1]?.word === '(') {
      i += 2;
      while (i < toks.length && !(toks[i]!.word === ')' && toks[i]!.depth === 0)) i++;
      i++;
    }
  }
  let itemStart = true;
  for (; i < toks.length; i++) {
    const t = toks[i]!;
    if (t.depth > 0 || t.word === '(' || t.word === ')') {
      itemStart = false;
      continue;
    }
    if (t.word === 'FROM' || t.word === 'INTO' || t.word === ';') break;
    if (t.word === ',') {
      itemStart = true;
      continue;
    }
    if (t.word === '*') {
      const prev = toks[i - 1];
      const next = toks[i + 1];
      const endsItem = !next || next.word === ',' || next.word === 'FROM' || next.word === ';';
      if (endsItem && (itemStart || prev?.word === '.')) return !fromDerivedTable(toks, i);
    }
    itemStart = false;
  }
  return false;
}
