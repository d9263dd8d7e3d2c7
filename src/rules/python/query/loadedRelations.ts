/**
 * What PA108 and the serializer checks ask about a query's rows and their relationships: which
 * relationships of a model load on access, which a query's text loads eagerly (loader options,
 * also those built in names) or makes free (rows picked by the related row, a null or literal
 * key), and the facts shared by the loops over rows a helper returns.
 */
import type { ModelInfo, ProjectContext } from '../../../discovery/context.js';
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileModel } from '../../../semantic/model.js';
import { assignmentsTo } from '../../../semantic/model.js';
import { lastAssignment, unwrap } from './semantics.js';
import { deferOnPath } from './columnOptions.js';

export const LAZY = new Set(['select', 'dynamic', 'true', 'True']);

export const LOADER_OPTION = /\b(selectinload|joinedload|subqueryload|immediateload|contains_eager|raiseload|noload|defaultload)\s*\(/;

/** A relationship that loads on access (see `lazyRelationships`). */
export interface LazyRelationship {
  scalar: boolean;
  target: string | null;
  /** `lazy="dynamic"`: reading it builds a query, run where it is iterated or refined. */
  dynamic: boolean;
  /** Its other side on the target, when the code pairs them (`RelationshipInfo.inverse`). */
  inverse?: string;
  /** `RelationshipInfo.foreignKey` and `overlaps`. */
  foreignKey?: string;
  overlaps?: string[];
  /**
   * An association proxy's attribute (`template_name = association_proxy("template", "name")`):
   * the relationship it reads through, whose loading (and loader options) this entry stands for.
   */
  via?: string;
}

/**
 * The relationship a read of `name` loads: itself, or the one an association proxy reads through.
 * Loader options name that one (`joinedload(Plan.template)` serves `plan.template_name`).
 */
export function loadedRelation(name: string, info: { via?: string } | undefined): string {
  return info?.via ?? name;
}

/** `` `Plan.template` ``, or `` `Plan.template_name` (an association proxy through `template`) ``. */
export function relationLabel(entity: string, name: string, info: { via?: string } | undefined): string {
  return info?.via ? `\`${entity}.${name}\` (an association proxy through \`${info.via}\`)` : `\`${entity}.${name}\``;
}

/**
 * Relationships lazy in every declaration of the entity (`candidates`: the models of that name), by
 * name; and the association proxies every declaration reads through one of them (`via`), which
 * load it (a proxy over a collection loads the whole collection).
 */
export function lazyRelationships(candidates: ModelInfo[]): Map<string, LazyRelationship> {
  const out = new Map<string, LazyRelationship>();
  if (!candidates.length) return out;
  for (const rel of candidates[0]!.relationships) {
    if (candidates.every((m) => m.relationships.some((r) => r.name === rel.name && LAZY.has(r.lazy)))) {
      // A many-to-one: its lazy load may come from the identity map. Not the side of a one-to-one
      // without the foreign key, which is loaded by the other table's key (a SELECT every time).
      const scalar = candidates.every((m) => m.relationships.some((r) => r.name === rel.name && r.scalar && !r.reverse));
      const dynamic = candidates.every((m) => m.relationships.some((r) => r.name === rel.name && r.lazy === 'dynamic'));
      out.set(rel.name, {
        scalar, target: rel.target, dynamic,
        ...(rel.inverse ? { inverse: rel.inverse } : {}), ...(rel.foreignKey ? { foreignKey: rel.foreignKey } : {}), ...(rel.overlaps?.length ? { overlaps: rel.overlaps } : {}),
      });
    }
  }
  for (const p of candidates[0]!.proxies ?? []) {
    const rel = out.get(p.relationship);
    // (A proxy over a `lazy="dynamic"` relationship iterates its query: PA107's, not a load.)
    if (!rel || rel.dynamic || out.has(p.name)) continue;
    if (!candidates.every((m) => m.proxies?.some((x) => x.name === p.name && x.relationship === p.relationship))) continue;
    out.set(p.name, { ...rel, via: p.relationship });
  }
  return out;
}

/** The names of the association proxies of the project's models (reads worth recording with the relationships'). */
export function proxyNames(project: ProjectContext): string[] {
  return project.models.flatMap((m) => (m.proxies ?? []).map((p) => p.name));
}

/**
 * The columns of the rows of a query (`text`) that load on first access, one SELECT per row:
 * declared deferred by every model of the entity's name (`deferred(...)`, `deferred=True`), or
 * deferred by the query (`defer(Model.body)`, not `raiseload=True`); less those the query loads
 * after all (`undefer(Model.body)`, `undefer_group("g")` of its group, `load_only(...)` naming it).
 */
export function deferredColumns(candidates: ModelInfo[], text: string): Set<string> {
  const out = new Set<string>();
  const groups = new Map<string, string>();
  if (candidates.length) {
    for (const entry of candidates[0]!.deferred ?? []) {
      const [name = '', group] = entry.split(':');
      if (!candidates.every((m) => m.deferred?.some((d) => d === entry || d.split(':')[0] === name))) continue;
      out.add(name);
      if (group) groups.set(name, group);
    }
  }
  if (!/\b(defer|undefer|undefer_group|load_only)\s*\(/.test(text)) return out;
  // `undefer("*")`: every column of the rows loads with them.
  if (/\bundefer\(\s*["']\*["']\s*\)/.test(text)) return new Set();
  // `defer(Note.body)`, `defer("body")`: deferred by this query (a `raiseload=True` one raises instead).
  for (const m of text.matchAll(/\bdefer\(\s*(?:[A-Za-z_][\w.]*\.)?["']?([A-Za-z_]\w*)["']?\s*(,[^()]*)?\)/g)) {
    // Chained on a relationship's loader (`selectinload(A.b).defer(B.y)`): the related rows' column.
    if (deferOnPath(text, m.index!)) continue;
    if (!/raiseload\s*=\s*True/.test(m[2] ?? '')) out.add(m[1]!);
  }
  for (const name of [...out]) {
    const group = groups.get(name);
    if (new RegExp(String.raw`\b(?:undefer|load_only)\([^()]*(?:\.${name}\b|["']${name}["'])`).test(text)
      || (group && new RegExp(String.raw`\bundefer_group\(\s*["']${group}["']`).test(text))) out.delete(name);
  }
  return out;
}

/** `sorted(rows, key=…)`, `list(rows)`, `reversed(rows)`: the same rows, reordered or copied. */
export function sameRows(iterable: SyntaxNode): SyntaxNode {
  if (iterable.type !== 'call' || !/^(sorted|list|tuple|reversed)$/.test(iterable.childForFieldName('function')?.text ?? '')) return iterable;
  const first = iterable.childForFieldName('arguments')?.namedChild(0);
  return first && first.type !== 'keyword_argument' ? first : iterable;
}

/**
 * Does a loader option of the statement load `rel` with its rows, or turn its lazy load off: an
 * eager loader (`selectinload`, `joinedload`, `subqueryload`, `immediateload`, `contains_eager`),
 * also chained (`defaultload(A.b).selectinload(B.rel)`) or as the last step of one option's path
 * (`joinedload(A.b, B.rel)` loads `rel`; `b` is only the way there), `raiseload`/`noload` naming it, or any of them given `"*"`? Naming
 * `rel` anywhere else loads nothing: a filter on it (`A.rel.any(...)`), `lazyload(A.rel)`, a path
 * through it (`defaultload(A.rel)`). `eagerOnly` leaves out `raiseload`/`noload`, which load nothing.
 */
export function eagerlyLoaded(statementText: string, rel: string, eagerOnly = false): boolean {
  if (!LOADER_OPTION.test(statementText)) return false;
  const options = eagerOnly ? EAGER_OPTIONS : `${EAGER_OPTIONS}|raiseload|noload`;
  // The option's last path step is what it loads (`joinedload(A.b, B.rel)`: `b` is only the way
  // there); a step may carry `.of_type(Sub)` or criteria that narrow what it loads
  // (`selectinload(A.rel.and_(B.deleted == False))`: still an eager load of `rel`), and keywords
  // may follow (`innerjoin=True`).
  const step = String.raw`(?:\s*\.\s*(?:of_type|and_)\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\))*`;
  return new RegExp(String.raw`\b(?:${options})\(\s*(?:["']\*["']|(?:[^()]|\([^()]*\))*?(?:\.${rel}${step}|["'](?:[\w.]*\.)?${rel}["']))\s*(?:,\s*\w+\s*=\s*[^,()]+)*\s*\)`).test(statementText);
}

const EAGER_OPTIONS = 'selectinload|joinedload|subqueryload|immediateload|contains_eager';

/**
 * Does the query's text load the relationship a read of `name` loads (`eagerlyLoaded`), or make
 * it free (`targetsHeld`)? For an association proxy, the relationship it reads through.
 */
export function loadedByQuery(statementText: string, name: string, info: LazyRelationship | undefined): boolean {
  const rel = loadedRelation(name, info);
  return eagerlyLoaded(statementText, rel) || targetsHeld(statementText, rel);
}

/**
 * Does the query pick its rows by a many-to-one's target objects the code already holds
 * (`Child.parent_id.in_([p.id for p in parents])`, `Child.parent_id == parent.id`,
 * `filter_by(parent=parent)`)? Then every lazy load of `rel` finds its row in the identity map.
 * Both forms say `rel` is a many-to-one (a `<rel>_id` column; `==` on a collection is an error)
 * even where the model's declaration does not (a mixin's `declared_attr`).
 */
export function targetsHeld(statementText: string, rel: string): boolean {
  // Every form below names the relationship: most statements do not (no regex compiled then).
  if (!statementText.includes(rel)) return false;
  const obj = String.raw`[A-Za-z_][\w.]*(?:\[[^\]\n]*\])?`;
  // `Model.rel_id.is_(None)`, `Model.rel_id == None`: no related row, and no SQL to find that out.
  if (new RegExp(String.raw`\.${rel}_id\s*(?:\.\s*is_\(\s*None\s*\)|==\s*None\b)`).test(statementText)) return true;
  // `with_parent(self.event)`: rows picked by the parent the code holds, named like the relationship.
  if (new RegExp(String.raw`\bwith_parent\(\s*(?:[A-Za-z_]\w*\.)*${rel}\s*[,)]`).test(statementText)) return true;
  // One literal key (`Model.rel_id == 7`, `filter_by(rel_id="x")`): one related row for all of them.
  const literal = String.raw`(?:\d+|"[^"\n]*"|'[^'\n]*')\s*[,)]`;
  if (new RegExp(String.raw`\.${rel}_id\s*==\s*${literal}|\bfilter_by\([^)]*\b${rel}_id\s*=\s*${literal}`).test(statementText)) return true;
  return new RegExp(String.raw`\.${rel}_id\s*\.\s*in_\(\s*[[(]?\s*${obj}\.id\s+for\s`).test(statementText)
    || new RegExp(String.raw`\.${rel}_id\s*==\s*${obj}\.id\b(?!\s*[(.\[])`).test(statementText)
    || new RegExp(String.raw`\bfilter_by\([^)]*\b${rel}_id\s*=\s*${obj}\.id\s*[,)]`).test(statementText)
    // `Child.parent_id == holder.parent_id`: every row has the same parent, one load in all.
    || new RegExp(String.raw`\.${rel}_id\s*==\s*[a-z_]\w*(?:\.[a-z_]\w*)*(?![\w(.\[])`).test(statementText)
    || new RegExp(String.raw`\bfilter_by\([^)]*\b${rel}_id\s*=\s*[a-z_]\w*(?:\.[a-z_]\w*)*\s*[,)]`).test(statementText)
    || new RegExp(String.raw`\.${rel}\s*==\s*[A-Za-z_][\w.]*\s*[,)]`).test(statementText)
    || new RegExp(String.raw`\bfilter_by\([^)]*\b${rel}\s*=\s*[A-Za-z_][\w.]*\s*[,)]`).test(statementText);
}

/**
 * The text behind the names a query's chain takes its options or criteria from
 * (`.options(*opts)`, `.options(strategy)`, `.filter(*criteria)`): their assignments in the
 * function that builds the query, and what it appends to them.
 */
export function heldText(model: FileModel, text: string, fnIndex: number): string {
  const names = new Set<string>();
  for (const m of text.matchAll(/(?<![*\w.])\*([A-Za-z_]\w*)\b(?!\s*[.(\[])/g)) names.add(m[1]!);
  for (let at = text.indexOf('.options('); at >= 0; at = text.indexOf('.options(', at + 1)) {
    // The top-level arguments of the call, split at commas outside brackets.
    let depth = 0;
    let start = at + '.options('.length;
    for (let i = start; i < text.length; i++) {
      const ch = text[i]!;
      if (ch === '(' || ch === '[' || ch === '{') depth++;
      else if ((ch === ')' || ch === ']' || ch === '}') && depth > 0) depth--;
      else if ((ch === ',' || ch === ')') && depth === 0) {
        const a = text.slice(start, i).trim();
        if (/^[A-Za-z_]\w*$/.test(a)) names.add(a);
        start = i + 1;
        if (ch === ')') break;
      }
    }
  }
  // Names handed whole to the chain's calls (`.join(sub, ...)`, `.filter(crit)`): the subqueries
  // and criteria they hold say which rows come back (two steps deep).
  const argNames = (t: string) => {
    const out: string[] = [];
    for (const m of t.matchAll(/[(,]\s*([A-Za-z_]\w*)\s*(?=[,)])/g)) if (!/^(self|None|True|False)$/.test(m[1]!)) out.push(m[1]!);
    return out;
  };
  for (const n of argNames(text)) names.add(n);
  // `session.get(M, pk, options=FULL)`: the options a keyword takes from a name.
  for (const m of text.matchAll(/\boptions\s*=\s*([A-Za-z_]\w*)\s*[,)]/g)) names.add(m[1]!);
  names.delete('self');
  const parts: string[] = [];
  // `.options(*order_loads())`: what a function of this module without parameters returns.
  for (const m of text.matchAll(/(?<![*\w.])\*([A-Za-z_]\w*)\(\s*\)/g)) {
    const fn = model.functions.find((f) => f.parent < 0 && !f.className && f.name === m[1]);
    if (fn?.body) parts.push(fn.body.text);
  }
  if (!names.size || fnIndex < 0) return parts.join(' ');
  const followed = new Set<string>();
  for (let round = 0; round < 2; round++) {
    const fresh: string[] = [];
    for (const a of model.assignments) {
      // The function's own names, and module-level ones (`ORDER_LOADS = [joinedload(...), ...]`).
      if ((a.functionIndex !== fnIndex && a.functionIndex >= 0) || !names.has(a.target) || followed.has(`${a.target}:${a.line}`) || !a.value) continue;
      if (a.functionIndex < 0 && assignmentsTo(model, a.target).some((b) => b.functionIndex === fnIndex && b.target === a.target)) continue;
      followed.add(`${a.target}:${a.line}`);
      parts.push(a.value.text);
      fresh.push(...argNames(a.value.text));
    }
    for (const n of fresh) names.add(n);
  }
  for (const c of model.calls) {
    // `opts.append(...)`, and a loader strategy extended in place (`strategy.selectinload('files')`,
    // `x = strategy.joinedload('y')`: one Load object, which the query's `.options(strategy)` carries).
    if (c.functionIndex === fnIndex && c.dottedReceiver && names.has(c.dottedReceiver) && /^(append|extend|insert|selectinload|joinedload|subqueryload|immediateload|contains_eager|defaultload|undefer|undefer_group|load_only|lazyload|noload|raiseload|options)$/.test(c.method ?? '')) parts.push(c.node.text);
  }
  return parts.join(' ');
}

/**
 * Facts for loops over what a function of another module returns (`for r in fetch_jobs(...)`):
 * - `RETURNS_ROWS` on a module-level function whose every return is rows of one model's query
 *   (`what` = `entity|text`, the queries' text for their loader options and criteria);
 * - `RETURNS_PAGE` beside it when every return is a Flask-SQLAlchemy `Pagination` of those rows;
 * - `HELPER_ROWS_LOOP` at the call a loop iterates over (directly or through a local name, or the
 *   `.items` of the page it returns), when the callee is imported (`what` = `item|reads`, and
 *   `|page` for `.items`).
 * The repo phase resolves the call and reports the reads of the model's lazy relationships.
 */
export const RETURNS_ROWS = 'returns_rows';

/**
 * Function fact beside `RETURNS_ROWS`: every return is a Flask-SQLAlchemy `Pagination` of those
 * rows (`Model.query….paginate(...)`, `db.paginate(select(Model)…)`), whose `.items` are the rows.
 */
export const RETURNS_PAGE = 'returns_page';

/** At most this many rows is a handful: the lazy loads are a fixed, small cost. */
export const SMALL_CAP = 10;

/**
 * The most rows a query returns when a literal caps it: `.limit(5)`, Flask-SQLAlchemy's
 * `.paginate(per_page=20)` or `.paginate(page, 20)`; null when nothing does.
 */
export function rowsCap(text: string): number | null {
  const caps: number[] = [];
  for (const m of text.matchAll(/\.limit\(\s*(\d+)\s*\)|\bper_page\s*=\s*(\d+)\b|\.paginate\(\s*[^,()]+(?:\([^()]*\))?\s*,\s*(\d+)\s*[,)]/g)) caps.push(Number(m[1] ?? m[2] ?? m[3]));
  return caps.length ? Math.min(...caps) : null;
}

/** Past this, a query's text is not carried in the summary. */
export const MAX_ROWS_TEXT = 4000;

/** A many-to-one's note and severity: its lazy load looks in the identity map first (one SELECT per distinct related row). */
export function oneRowNote(info: LazyRelationship): string {
  return info.scalar ? `; a many-to-one: one SELECT per distinct ${info.target ? `\`${info.target.replace(/^.*\./, '')}\`` : 'related row'} not already in the session` : '';
}

/** The model a dynamic relationship of that name holds rows of, when every model's dynamic relationship of that name agrees. */
export function dynamicTarget(project: ProjectContext, rel: string): string | null {
  const targets = new Set<string | null>();
  for (const m of project.models) for (const r of m.relationships) if (r.name === rel && r.lazy === 'dynamic') targets.add(r.target?.replace(/^.*\./, '') ?? null);
  return targets.size === 1 ? [...targets][0] ?? null : null;
}

/**
 * The expression that holds the rows `value` stands for (a `return`'s value, a loop's iterable,
 * what a serializer is given): `sorted(rows, ...)` / `list(rows)` are the same rows, a name is
 * what the function last bound to it, and a comprehension that keeps its items
 * (`[x for x in rows if x.visible]`) is a subset of its iterable's rows.
 */
export function rowsExpression(model: FileModel, value: SyntaxNode | null, fnIndex: number, line: number): SyntaxNode | null {
  let node = value ? unwrap(sameRows(value)) : null;
  if (node?.type === 'identifier') {
    const a = lastAssignment(model, node.text, fnIndex, line);
    if (a?.functionIndex === fnIndex && !a.fromWith && a.value) node = unwrap(sameRows(a.value));
  }
  if (node?.type === 'list_comprehension' || node?.type === 'generator_expression') {
    const clauses = node.namedChildren.filter((c) => c.type === 'for_in_clause');
    const body = node.childForFieldName('body');
    const target = clauses[0]?.childForFieldName('left');
    if (clauses.length === 1 && body?.type === 'identifier' && target?.type === 'identifier' && body.text === target.text) return clauses[0]!.childForFieldName('right');
  }
  return node ?? value;
}

const shortName = (q: string) => q.replace(/^.*\./, '');

/**
 * Is `rel` (read as `name` on the items of `owner`'s collection `collection`) the way back to
 * that owner: the collection's other side, which finds the loaded owner in the identity map
 * without SQL? Paired by the code (`back_populates`, `backref`, `overlaps`) when either side
 * says, or by the same `foreign_keys=` column; unpaired, only when it is the items' one
 * relationship to the owner's class (an `editor` beside an `author`, or a tree's `link` beside its
 * `parent`, points at other rows). Never over an association table (`secondary=`).
 */
export function leadsBackToOwner(rel: LazyRelationship, name: string, ownerModels: readonly ModelInfo[], collection: string, itemLazy: ReadonlyMap<string, LazyRelationship>): boolean {
  const owner = ownerModels[0];
  if (!owner || !rel.scalar || !rel.target || shortName(rel.target) !== shortName(owner.name)) return false;
  const coll = owner.relationships.find((r) => r.name === collection);
  // Through an association table: its other side is a collection, never this one row.
  if (coll?.secondary) return false;
  // (An association proxy is the relationship it reads through.)
  const relName = loadedRelation(name, rel);
  if (rel.inverse === collection || (!!coll?.inverse && coll.inverse === relName) || rel.overlaps?.includes(collection) || coll?.overlaps?.includes(relName)) return true;
  // The same foreign-key column on both sides: the row the collection was loaded by.
  if (rel.foreignKey && coll?.foreignKey) return rel.foreignKey === coll.foreignKey;
  // Otherwise the items' one link to the owner's class is over the collection's one key.
  return [...itemLazy.values()].filter((r) => !r.via && r.scalar && !!r.target && shortName(r.target) === shortName(owner.name)).length === 1;
}

/** Blocks that may not run on a path: an `if`'s branches, a loop's body, a `match` case, an `except`. */
const CONDITIONAL_BLOCKS = new Set(['if_statement', 'elif_clause', 'else_clause', 'for_statement', 'while_statement', 'case_clause', 'except_clause', 'conditional_expression']);

/**
 * The refinements of a query held in a name that only some paths to `use` run
 * (`if article_id is not None: stmt = stmt.where(Dispatch.article_id == article_id)` before a
 * loop outside that `if`): the text of each such reassigned value, in the function `fnIndex`.
 * A criterion there picks the rows on one path only; on the other the rows are unfiltered.
 */
export function branchOnlyRefinements(model: FileModel, fnIndex: number, use: SyntaxNode): string[] {
  const out: string[] = [];
  if (fnIndex < 0) return out;
  const fnNode = model.functions[fnIndex]?.node;
  for (const a of model.assignments) {
    if (a.functionIndex !== fnIndex || !a.value || a.node.startIndex >= use.startIndex) continue;
    // `stmt = stmt.where(...)`, `q = q.filter(...).order_by(...)`: a refinement of the name itself.
    let root: SyntaxNode | null = unwrap(a.value);
    while (root && (root.type === 'call' || root.type === 'attribute')) root = unwrap(root.type === 'call' ? root.childForFieldName('function') : root.childForFieldName('object'));
    if (root?.type !== 'identifier' || root.text !== a.target) continue;
    for (let n: SyntaxNode | null = a.node.parent; n && n.id !== fnNode?.id; n = n.parent) {
      if (!CONDITIONAL_BLOCKS.has(n.type)) continue;
      // The use inside the same block: that path ran the refinement.
      if (use.startIndex >= n.startIndex && use.endIndex <= n.endIndex) break;
      out.push(a.value.text);
      break;
    }
  }
  return out;
}

/**
 * `loadedByQuery`, with the rows' pinning criteria (`targetsHeld`) read from `pinText`: the
 * statement's text less the refinements only some paths run (`branchOnlyRefinements`).
 */
export function loadedByQueryOnEveryPath(text: string, pinText: string, name: string, info: LazyRelationship | undefined): boolean {
  const rel = loadedRelation(name, info);
  return eagerlyLoaded(text, rel) || targetsHeld(pinText, rel);
}

/** `text` without the given fragments (each removed once). */
export function withoutFragments(text: string, fragments: string[]): string {
  let out = text;
  for (const f of fragments) out = out.replace(f, ' ');
  return out;
}
