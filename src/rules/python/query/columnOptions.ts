/**
 * Which columns a query's column loader options leave unloaded, read from the statement's text.
 *
 * SQLAlchemy's `load_only(A.x, A.y)` loads those columns and the primary key; every other column
 * attribute of `A` is deferred for the rows of that query and loads with its own SELECT on first
 * access, one row at a time (`raiseload=True` makes such an access raise instead). Relationship
 * attributes are not affected. `defer(A.z)` defers one column; `undefer(A.z)` (or `undefer("*")`)
 * loads it after all. An option applies to the query's own entity when it stands in the statement's
 * `.options(...)` (or on `Load(A)`), and to the target of a relationship when it is chained on that
 * relationship's loader (`selectinload(A.b).load_only(B.x)`, `joinedload(A.b).defer(B.y)`,
 * `selectinload(A.b).options(load_only(B.x))`).
 */
import type { ModelInfo } from '../../../discovery/context.js';

/** Where a column option applies. */
export type OptionHost =
  | { kind: 'root' }
  | { kind: 'load'; entity: string }
  | { kind: 'path'; entity: string; rel: string; loader: string }
  | null;

export interface ColumnOption {
  kind: 'load_only' | 'defer' | 'undefer';
  /** Each positional argument: the class it names (`A` of `A.x`, null for a string) and the attribute. */
  args: { cls: string | null; name: string }[];
  /** `raiseload=True`: the columns it leaves out raise on access instead of loading. */
  raise: boolean;
  /** A positional argument that is neither `Cls.attr` nor a literal name (a star, an expression). */
  opaque: boolean;
  host: OptionHost;
}

const EAGER = /^(selectinload|joinedload|subqueryload|immediateload|contains_eager)$/;
const LOADERS = /^(selectinload|joinedload|subqueryload|immediateload|contains_eager|defaultload|lazyload|noload|raiseload)$/;
const COLUMN_OPTIONS = /^(load_only|defer|undefer|undefer_group|options)$/;

const short = (n: string) => n.slice(n.lastIndexOf('.') + 1);

function closeOf(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '(' || ch === '[' || ch === '{') depth++;
    else if (ch === ')' || ch === ']' || ch === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

function openOf(text: string, close: number): number {
  let depth = 0;
  for (let i = close; i >= 0; i--) {
    const ch = text[i]!;
    if (ch === ')' || ch === ']' || ch === '}') depth++;
    else if (ch === '(' || ch === '[' || ch === '{') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/** The innermost bracket left open before `at`, or -1. */
function enclosingOpen(text: string, at: number): number {
  let depth = 0;
  for (let i = at - 1; i >= 0; i--) {
    const ch = text[i]!;
    if (ch === ')' || ch === ']' || ch === '}') depth++;
    else if (ch === '(' || ch === '[' || ch === '{') {
      if (depth === 0) return ch === '(' ? i : -1;
      depth--;
    }
  }
  return -1;
}

/** The callee written right before the `(` at `open`: its last name, and whether it is a method of a call's result. */
function calleeAt(text: string, open: number): { name: string; receiverClose: number; onName: boolean } | null {
  const m = /([A-Za-z_][\w]*)\s*$/.exec(text.slice(Math.max(0, open - 80), open));
  if (!m) return null;
  const start = open - m[0].length;
  const before = text.slice(0, start).replace(/\s+$/, '');
  if (!before.endsWith('.')) return { name: m[1]!, receiverClose: -1, onName: false };
  const dot = before.length - 1;
  const prev = text.slice(0, dot).replace(/\s+$/, '');
  if (prev.endsWith(')')) return { name: m[1]!, receiverClose: prev.length - 1, onName: false };
  // `orm.load_only(`, `stmt.options(`, `opt.load_only(`: a module's function or a held object's method.
  return { name: m[1]!, receiverClose: -1, onName: true };
}

/** The positional arguments of the call whose `(` is at `open`, split at top-level commas. */
function argsOf(text: string, open: number): { positional: string[]; keywords: Map<string, string> } | null {
  const close = closeOf(text, open);
  if (close < 0) return null;
  const positional: string[] = [];
  const keywords = new Map<string, string>();
  let depth = 0;
  let start = open + 1;
  const push = (a: string) => {
    const t = a.trim();
    if (!t) return;
    const kw = /^([A-Za-z_]\w*)\s*=(?!=)\s*([\s\S]*)$/.exec(t);
    if (kw) keywords.set(kw[1]!, kw[2]!.trim());
    else positional.push(t);
  };
  for (let i = open + 1; i < close; i++) {
    const ch = text[i]!;
    if (ch === '(' || ch === '[' || ch === '{') depth++;
    else if (ch === ')' || ch === ']' || ch === '}') depth--;
    else if (ch === ',' && depth === 0) {
      push(text.slice(start, i));
      start = i + 1;
    }
  }
  push(text.slice(start, close));
  return { positional, keywords };
}

/** `A.rel`, `A.rel.of_type(X)`, `A.rel.and_(criteria)`, `"rel"`: the class (null for a string) and the attribute. */
function attrArg(a: string): { cls: string | null; name: string } | null {
  const s = /^["']([A-Za-z_]\w*)["']$/.exec(a);
  if (s) return { cls: null, name: s[1]! };
  const m = /^([A-Za-z_][\w.]*)\.([A-Za-z_]\w*)(?:\.(?:of_type|and_)\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\))*$/.exec(a.replace(/\s+/g, ''));
  return m ? { cls: short(m[1]!), name: m[2]! } : null;
}

/** Where the option call whose `(` is at `open` applies. */
function hostOf(text: string, open: number, depth = 0): OptionHost {
  if (depth > 8) return null;
  const callee = calleeAt(text, open);
  if (!callee) return null;
  if (callee.receiverClose >= 0) {
    // Chained on a call's result: `selectinload(A.b).load_only(...)`, `Load(A).load_only(...)`,
    // `selectinload(A.b).load_only(...).defer(...)`, `select(A).options(...)`.
    const rOpen = openOf(text, callee.receiverClose);
    const receiver = rOpen >= 0 ? calleeAt(text, rOpen) : null;
    if (!receiver) return null;
    if (COLUMN_OPTIONS.test(receiver.name) && receiver.name !== 'options') return hostOf(text, rOpen, depth + 1);
    if (receiver.name === 'Load') {
      const first = argsOf(text, rOpen)?.positional[0];
      return first && /^[A-Za-z_][\w.]*$/.test(first) ? { kind: 'load', entity: short(first) } : null;
    }
    if (LOADERS.test(receiver.name)) {
      const args = argsOf(text, rOpen)?.positional ?? [];
      const last = args.length ? attrArg(args[args.length - 1]!) : null;
      return last?.cls ? { kind: 'path', entity: last.cls, rel: last.name, loader: receiver.name } : null;
    }
    // `.options(...)` of a statement or query: its own entity.
    return callee.name === 'options' ? { kind: 'root' } : null;
  }
  if (callee.onName && callee.name !== 'options' && !/(?:^|[^\w.])(?:sa\.orm|sqlalchemy\.orm|orm|sa|sqlalchemy)\.\s*\w+\s*$/.test(text.slice(Math.max(0, open - 60), open))) {
    // `opt.load_only(...)` on an option held in a name: where it applies is not in the text.
    return null;
  }
  if (callee.name === 'options') return { kind: 'root' };
  // A free-standing option: it applies where the `.options(...)` it is handed to applies.
  const outer = enclosingOpen(text, open - callee.name.length);
  if (outer >= 0) {
    const o = calleeAt(text, outer);
    if (o?.name === 'options') return hostOf(text, outer, depth + 1);
  }
  return { kind: 'root' };
}

/** The `load_only(...)`, `defer(...)` and `undefer(...)` options in a statement's text. */
export function columnOptions(text: string): ColumnOption[] {
  const out: ColumnOption[] = [];
  if (!/\b(?:load_only|defer|undefer)\s*\(/.test(text)) return out;
  for (const m of text.matchAll(/(?<![\w])(load_only|defer|undefer)\s*\(/g)) {
    const open = m.index! + m[0].length - 1;
    const args = argsOf(text, open);
    if (!args) continue;
    const parsed = args.positional.map(attrArg);
    out.push({
      kind: m[1] as ColumnOption['kind'],
      args: parsed.filter((x): x is { cls: string | null; name: string } => !!x),
      raise: /^True$/.test(args.keywords.get('raiseload') ?? ''),
      opaque: parsed.some((x) => !x),
      host: hostOf(text, open),
    });
  }
  return out;
}

/** The names every model of an entity's name declares as columns, or null when one of them is not known well enough. */
function knownColumns(candidates: ModelInfo[]): { columns: Set<string>; always: Set<string> } | null {
  if (!candidates.length || candidates.some((m) => !m.columns?.length || !m.primaryKey?.length)) return null;
  const columns = new Set(candidates[0]!.columns!.filter((c) => candidates.every((m) => m.columns!.includes(c))));
  // Loaded with every row whatever the options say (the primary key), or needed to load a
  // relationship (its foreign key), or not a column at all (a relationship, an association proxy).
  const always = new Set<string>();
  for (const m of candidates) {
    for (const c of m.primaryKey ?? []) always.add(c);
    for (const c of m.foreignKeyColumns ?? []) always.add(c);
    for (const r of m.relationships) always.add(r.name);
    for (const p of m.proxies ?? []) always.add(p.name);
  }
  return { columns, always };
}

/** Does the option name only `entity`'s attributes (or literal names)? */
function namesOnly(o: ColumnOption, entity: string): boolean {
  return !o.opaque && o.args.length > 0 && o.args.every((a) => a.cls === null || a.cls === entity || a.cls === 'cls');
}

/**
 * The columns of `entity` that a `load_only(...)` applied to it leaves unloaded (`host` says
 * which options apply: the statement's own, or those chained on one relationship's loader):
 * every known column but those it names, the primary key and the foreign keys, less those an
 * `undefer(...)` applied there loads; none when a `load_only(..., raiseload=True)` makes them
 * raise, when an option names something else, or when the model's columns are not all known.
 */
function unloadedBy(options: ColumnOption[], candidates: ModelInfo[], entity: string): Set<string> {
  const out = new Set<string>();
  const loadOnly = options.filter((o) => o.kind === 'load_only');
  if (!loadOnly.length || loadOnly.some((o) => o.raise || !namesOnly(o, entity))) return out;
  const known = knownColumns(candidates);
  if (!known) return out;
  const loaded = new Set(loadOnly.flatMap((o) => o.args.map((a) => a.name)));
  for (const c of known.columns) if (!loaded.has(c) && !known.always.has(c)) out.add(c);
  return out;
}

/** Less what an `undefer(...)` of the same place loads (`undefer("*")`: everything). */
function lessUndeferred(out: Set<string>, options: ColumnOption[]): Set<string> {
  for (const o of options) {
    if (o.kind !== 'undefer') continue;
    if (o.opaque && !o.args.length) return new Set();
    for (const a of o.args) out.delete(a.name);
  }
  return out;
}

/**
 * The columns of the query's own rows (`entity`) that its `load_only(...)` leaves unloaded:
 * each loads with its own SELECT per row on first access.
 */
export function rootUnloadedColumns(candidates: ModelInfo[], text: string, entity: string): Set<string> {
  if (!/\bload_only\s*\(/.test(text)) return new Set();
  const e = short(entity);
  const options = columnOptions(text).filter((o) => o.host && (o.host.kind === 'root' || (o.host.kind === 'load' && o.host.entity === e)));
  if (/\bundefer\(\s*["']\*["']\s*\)/.test(text)) return new Set();
  return lessUndeferred(unloadedBy(options, candidates, e), options);
}

/**
 * Is the `defer(...)` whose name starts at `at` in `text` chained on a relationship's loader
 * (`selectinload(A.b).defer(B.y)`)? Then it defers a column of the related rows, not of the query's.
 */
export function deferOnPath(text: string, at: number): boolean {
  const open = text.indexOf('(', at);
  return open >= 0 && hostOf(text, open)?.kind === 'path';
}

/** What the options chained on one relationship's eager loader leave unloaded on the related rows. */
export interface PathColumns {
  rel: string;
  target: string;
  loader: string;
  /** Columns of the related rows loaded on first access, and whether `load_only` (or `defer`) made them so. */
  columns: Map<string, 'load_only' | 'defer'>;
}

/**
 * For each relationship of `entity` that the statement loads eagerly with column options chained
 * on its loader (`selectinload(A.b).load_only(B.x)`, `joinedload(A.b).defer(B.y)`): the related
 * rows' columns those options leave unloaded. `modelsOf` gives the models of a target's name.
 */
export function pathUnloadedColumns(candidates: ModelInfo[], text: string, entity: string, modelsOf: (name: string) => ModelInfo[]): PathColumns[] {
  if (!/\b(?:load_only|defer)\s*\(/.test(text)) return [];
  const e = short(entity);
  const byRel = new Map<string, { loader: string; options: ColumnOption[] }>();
  for (const o of columnOptions(text)) {
    if (o.host?.kind !== 'path' || (o.host.entity !== e && o.host.entity !== 'cls') || !EAGER.test(o.host.loader)) continue;
    const entry = byRel.get(o.host.rel) ?? { loader: o.host.loader, options: [] };
    entry.options.push(o);
    byRel.set(o.host.rel, entry);
  }
  const out: PathColumns[] = [];
  for (const [rel, { loader, options }] of byRel) {
    // A many-to-one or one-to-one every declaration of the entity agrees on.
    const decl = candidates.map((m) => m.relationships.find((r) => r.name === rel));
    if (!decl.length || decl.some((r) => !r || !r.target || !r.scalar) || new Set(decl.map((r) => short(r!.target!))).size !== 1) continue;
    const target = short(decl[0]!.target!);
    const targets = modelsOf(target);
    if (!targets.length) continue;
    const columns = new Map<string, 'load_only' | 'defer'>();
    for (const c of unloadedBy(options, targets, target)) columns.set(c, 'load_only');
    for (const o of options) {
      if (o.kind !== 'defer' || o.raise || o.opaque) continue;
      for (const a of o.args) if (a.cls === null || a.cls === target) columns.set(a.name, 'defer');
    }
    for (const o of options) if (o.kind === 'undefer') for (const a of o.args) columns.delete(a.name);
    if (columns.size) out.push({ rel, target, loader, columns });
  }
  return out;
}
