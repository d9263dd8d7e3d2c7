/**
 * PA108 for serializers: rows handed whole to something that reads every field of a schema on
 * each row — a marshmallow `Schema(many=True).dump(rows)`, `[Out.model_validate(r) for r in rows]`,
 * a FastAPI route whose response model is a list of a pydantic model (or one object, for its
 * nested lists). The file pass records the sites (`SERIALIZED_ROWS`, or `SERIALIZED_CALL` where the
 * rows come from a call); the repo phase joins the schema's fields (semantic/schemas.ts, through
 * its bases) with the lazy relationships of the rows' model.
 */
import { declaredResponseType, manySchemaCall } from '../../../semantic/schemas.js';
import { nearestModels, projectIndex } from '../../projectFacts.js';
import type { RepoRuleContext } from '../../types.js';
import type { Effect, FileSummary } from '../../../analysis/summary.js';
import { callGraphOf, ownSites, type CallGraph, type FnRef } from '../../../analysis/callgraph.js';
import { UNTYPED } from '../../../analysis/objects.js';
import type { SyntaxNode } from '../../../parse/parser.js';
import { assignmentsTo, callAt, resolveImported, resolveName, type CallInfo, type FileModel } from '../../../semantic/model.js';
import { dynamicRelationChain, rowsSource, statementInfo } from './dbCalls.js';
import { returnsOf } from './selfRows.js';
import { rootUnloadedColumns } from './columnOptions.js';
import { lastAssignment, loopTarget, unwrap } from './semantics.js';
import {
  deferredColumns, dynamicTarget, eagerlyLoaded, heldText, lazyRelationships, loadedByQuery, loadedRelation, relationLabel, leadsBackToOwner, MAX_ROWS_TEXT, oneRowNote, RETURNS_PAGE, RETURNS_ROWS, rowsCap, rowsExpression, sameRows, SMALL_CAP, type LazyRelationship,
} from './loadedRelations.js';

/**
 * Site fact: rows handed whole to a serializer that reads each row's fields (`what` =
 * `schema|entity|query line|kind|text`): a marshmallow `Schema(many=True).dump(rows)` /
 * `.jsonify(rows)`, a FastAPI route whose `response_model=` (or return annotation) is a list of a
 * schema and that returns the rows, `[Out.model_validate(r) for r in rows]` / `Out.from_orm(r)`.
 * `schema` is the schema class's qualified name, or `=` and the qualified name of an instance
 * another module binds (`=app.schemas.users_schema`), which the repo phase looks up in that
 * module's `FileSummary.schemaInstances` (class and kind); it reads the class's fields (and its
 * bases') and reports those that are lazy relationships of the rows' model.
 */
export const SERIALIZED_ROWS = 'serialized_rows';

/**
 * Site fact: the same, for rows a call returns (`return crud.list_items(db)`, `await repo.list()`):
 * at the call (`what` = `schema|kind`, and `|page` for the `.items` of the page it returns); the
 * repo phase reads the callee's `RETURNS_ROWS` (and `RETURNS_PAGE`).
 */
export const SERIALIZED_CALL = 'serialized_call';

const SERIALIZE_METHODS = new Set(['dump', 'dumps', 'jsonify']);

const VALIDATE_METHODS = new Set(['model_validate', 'from_orm']);

/** `list[X]`, `List[X]`, `Sequence[X]`, `Iterable[X]` (optionally `typing.`-qualified): a list of X. */
const LIST_OF = /^(?:typing\.)?(?:list|List|Sequence|Iterable|tuple|Tuple)\[\s*["']?([A-Za-z_][\w.]*)["']?\s*(?:,\s*\.\.\.\s*)?\]$/;
/** fastapi-pagination's pages (`Page[Out]`, `LimitOffsetPage[Out]`, `CursorPage[Out]`): a list of Out. */
const PAGE_OF = /^(?:[\w.]*\.)?(?:Page|LimitOffsetPage|CursorPage)\[\s*["']?([A-Za-z_][\w.]*)["']?\s*\]$/;
/** `paginate(session, stmt)` / `apaginate(...)` of fastapi-pagination: the rows are the statement's. */
const PAGINATE = /^(?:[\w.]*\.)?a?paginate$/;

export function collectSerializedRows(model: FileModel): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile || !model.modelClasses.size) return effects;
  // `schema`: the class as written, or `=` and the qualified name of an imported instance.
  const push = (fnIndex: number, schema: string, rows: SyntaxNode, kind: string, at: SyntaxNode) => {
    const line = at.startPosition.row + 1;
    const q = schema.startsWith('=') ? schema : resolveName(model, schema) ?? `${model.moduleName}.${schema}`;
    // A statement the caller runs for us (`paginate(db, select(User))`): its entity and text.
    const st = kind === 'response' ? statementInfo(model, rows, fnIndex, line) : null;
    if (st?.ctor === 'select' && st.entity) {
      const text = [st.root.text, ...st.chainCalls.map((x) => x.text)].join(' ');
      const full = [text, heldText(model, text, fnIndex)].filter(Boolean).join(' ').slice(0, MAX_ROWS_TEXT);
      effects[fnIndex]!.push({ kind: SERIALIZED_ROWS, what: `${q}|${st.entity}|${st.root.startPosition.row + 1}|${kind}|${full}`, line, column: at.startPosition.column + 1 });
      return;
    }
    const source = rowsSource(model, sameRows(rows), fnIndex, line);
    if (source?.entity) {
      const text = [source.text, heldText(model, source.text, source.call.functionIndex)].filter(Boolean).join(' ').slice(0, MAX_ROWS_TEXT);
      effects[fnIndex]!.push({ kind: SERIALIZED_ROWS, what: `${q}|${source.entity}|${source.call.line}|${kind}|${text}`, line, column: at.startPosition.column + 1 });
      return;
    }
    // A dynamic relationship's query (`category.requests.filter(...)`): its rows are the
    // relationship's target, which the repo phase reads from the project's models (`@rel`).
    const rel = dynamicRelationChain(model, rows, fnIndex, line, true);
    if (!rel) {
      // Rows a function returns: its callee's facts decide in the repo phase.
      let node = rowsExpression(model, rows, fnIndex, line);
      // `page.items` of `page = fetch_page(...)`: the rows of the `Pagination` it returns.
      let page = false;
      if (node?.type === 'attribute' && node.childForFieldName('attribute')?.text === 'items') {
        const holder = rowsExpression(model, node.childForFieldName('object'), fnIndex, line);
        if (holder?.type === 'call') {
          node = holder;
          page = true;
        }
      }
      const call = node?.type === 'call' ? callAt(model, node) : undefined;
      if (call && !call.qualifiedName?.startsWith('builtins.')) effects[fnIndex]!.push({ kind: SERIALIZED_CALL, what: `${q}|${kind}${page ? '|page' : ''}`, line: call.line, column: call.column });
      return;
    }
    const held = rows.type === 'identifier' ? lastAssignment(model, rows.text, fnIndex, line) : null;
    const text = (held?.value ?? rows).text.slice(0, MAX_ROWS_TEXT);
    effects[fnIndex]!.push({ kind: SERIALIZED_ROWS, what: `${q}|@${rel}|${held?.line ?? line}|${kind}|${text}`, line, column: at.startPosition.column + 1 });
  };
  for (const call of model.calls) {
    if (call.functionIndex < 0) continue;
    // `Schema(many=True).dump(rows)`, or `schema = Schema(many=True)` then `schema.dump(rows)`.
    const made = SERIALIZE_METHODS.has(call.method) ? schemaInstance(model, call) : null;
    if (made) {
      // `only=("a", "b")` / `exclude=(...)`: the fields the dump keeps (the kind says which).
      const many = typeof made === 'string' ? { ctor: made, kind: 'dump' } : manySchemaCall(made);
      const rows = call.node.childForFieldName('arguments')?.namedChild(0);
      if (many && rows && rows.type !== 'keyword_argument') push(call.functionIndex, many.ctor, rows, many.kind, call.node);
      continue;
    }
    // `[Out.model_validate(r) for r in rows]`
    if (VALIDATE_METHODS.has(call.method) && call.loops.length && call.receiver && /^[A-Z]/.test(call.receiver.text.replace(/^.*\./, ''))) {
      const loop = model.loops[call.loops[call.loops.length - 1]!]!;
      const item = loopTarget(loop);
      const first = call.node.childForFieldName('arguments')?.namedChild(0);
      if (item && first?.type === 'identifier' && first.text === item.name) push(call.functionIndex, call.receiver.text, item.iterable, 'validate', call.node);
    }
  }
  // A response decorator of a Flask API library dumps what the view returns with its schema:
  // flask-smorest's `@blp.response(200, PetSchema(many=True))`, APIFlask's `@bp.output(...)`,
  // flask-apispec's `@marshal_with(...)`, flask-accepts' `@responds(schema=PetSchema, many=True)`.
  model.functions.forEach((fn, i) => {
    if (!fn.decorators.length || !/\b(response|output|marshal_with|responds)\s*\(/.test(fn.decorators.join(' '))) return;
    const schema = responseDecoratorSchema(model, fn.node);
    if (!schema) return;
    for (const r of returnsOf(fn)) {
      const value = r.namedChild(0);
      if (value) push(i, schema.ctor, value, schema.kind, r);
    }
  });
  // FastAPI routes: `response_model=list[Out]` or `-> list[Out]`, returning the rows.
  model.functions.forEach((fn, i) => {
    if (fn.role !== 'handler') return;
    const declared = declaredResponseType(fn);
    if (!declared) return;
    const page = PAGE_OF.exec(declared)?.[1] ?? null;
    const many = LIST_OF.exec(declared)?.[1] ?? page;
    // One object (`response_model=AuthorOut`): its nested lists are read per item.
    const one = many ? null : /^["']?([A-Z][\w.]*)["']?$/.exec(declared)?.[1] ?? null;
    if (!many && !one) return;
    for (const r of returnsOf(fn)) {
      let value = r.namedChild(0);
      // `return paginate(db, select(User))`: the page's items are the statement's rows.
      if (page && value) value = paginatedStatement(value) ?? value;
      if (value) push(i, (many ?? one)!, value, many ? 'response' : 'one', r);
    }
  });
  return effects;
}

/** Response decorators of Flask API libraries, by what the decorator's callee ends with. */
const RESPONSE_DECORATOR = /(^|\.)(response|output|marshal_with|responds)$/;

/**
 * The list schema a view's response decorator dumps its return value with (`ctor` as written, or
 * `=` and an imported instance's qualified name, and the dump's kind), or null: the schema made
 * with `many=True` among the decorator's arguments (`@blp.response(200, PetSchema(many=True))`,
 * `@marshal_with(PetSchema(many=True))`, a module-level instance bound so), or flask-accepts'
 * `@responds(schema=PetSchema, many=True)`.
 */
function responseDecoratorSchema(model: FileModel, def: SyntaxNode): { ctor: string; kind: string } | null {
  if (def.parent?.type !== 'decorated_definition') return null;
  for (const d of def.parent.namedChildren) {
    if (d.type !== 'decorator') continue;
    const call = d.namedChild(0);
    if (call?.type !== 'call' || !RESPONSE_DECORATOR.test(call.childForFieldName('function')?.text ?? '')) continue;
    const args = call.childForFieldName('arguments')?.namedChildren ?? [];
    const valueOf = (a: SyntaxNode) => (a.type === 'keyword_argument' ? a.childForFieldName('value') : a);
    // flask-accepts: the class and `many=True` are the decorator's own keywords.
    const many = args.some((a) => a.type === 'keyword_argument' && a.childForFieldName('name')?.text === 'many' && a.childForFieldName('value')?.text === 'True');
    for (const a of args) {
      const v = valueOf(a);
      if (!v) continue;
      if (v.type === 'call') {
        const made = manySchemaCall(v);
        if (made) return made;
      } else if (v.type === 'identifier') {
        if (many && a.type === 'keyword_argument' && a.childForFieldName('name')?.text === 'schema' && /^[A-Z]/.test(v.text)) return { ctor: v.text, kind: 'dump' };
        // A module-level instance (`pets_schema = PetSchema(many=True)`), here or imported.
        const inst = moduleInstance(model, v.text, -1);
        if (typeof inst === 'string') return { ctor: inst, kind: 'dump' };
        const made = inst ? manySchemaCall(inst) : null;
        if (made) return made;
      }
    }
  }
  return null;
}

/** The statement a `paginate(session, stmt)` call pages (its last positional argument, or `query=`), or null. */
function paginatedStatement(value: SyntaxNode): SyntaxNode | null {
  const call = unwrap(value);
  if (call?.type !== 'call' || !PAGINATE.test(call.childForFieldName('function')?.text ?? '')) return null;
  const args = call.childForFieldName('arguments')?.namedChildren ?? [];
  const keyword = args.find((a) => a.type === 'keyword_argument' && /^(query|stmt|statement)$/.test(a.childForFieldName('name')?.text ?? ''));
  if (keyword) return keyword.childForFieldName('value');
  const positional = args.filter((a) => a.type !== 'keyword_argument');
  return positional[positional.length - 1] ?? null;
}

/**
 * The schema construction a serializer call runs on: `Schema(...)` itself, the one a local name
 * was last bound to in the function, or a module-level name bound once; for an instance another
 * module binds and this one imports (`from app.schemas import users_schema`, `schemas.users_schema`),
 * `=` and its qualified name, which the repo phase looks up in that module's `schemaInstances`.
 */
function schemaInstance(model: FileModel, call: CallInfo): SyntaxNode | string | null {
  const r = call.receiver;
  if (r?.type === 'call') return r;
  if (r?.type === 'attribute' && /^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$/.test(r.text)) return importedInstance(model, r.text, call.functionIndex);
  if (r?.type !== 'identifier') return null;
  const a = lastAssignment(model, r.text, call.functionIndex, call.line);
  if (a && a.functionIndex === call.functionIndex && !a.fromWith) {
    const v = unwrap(a.value);
    return v?.type === 'call' ? v : null;
  }
  return moduleInstance(model, r.text, call.functionIndex);
}

/**
 * `users_schema = UserSchema(many=True)` at module level (flask-marshmallow's idiom), bound once:
 * its construction; or, for a name the module imports, `=` and its qualified name.
 */
function moduleInstance(model: FileModel, name: string, fnIndex: number): SyntaxNode | string | null {
  const all = assignmentsTo(model, name);
  if (!all.length) return importedInstance(model, name, fnIndex);
  const v = all.length === 1 && all[0]!.functionIndex < 0 && !all[0]!.fromWith ? unwrap(all[0]!.value) : null;
  return v?.type === 'call' ? v : null;
}

/**
 * `=` and the qualified name of a name the module imports from another module (`users_schema`,
 * or `schemas.users_schema` through an imported module), unless the function binds its head
 * (a parameter or a local of that name shadows the import); null otherwise.
 */
function importedInstance(model: FileModel, dotted: string, fnIndex: number): string | null {
  const head = dotted.split('.')[0]!;
  if (!model.imports.has(head) || assignmentsTo(model, head).length || model.functions[fnIndex]?.params.some((p) => p.name === head)) return null;
  const q = resolveImported(model, dotted);
  // (`import json` then `json.dump(rows, fp)`: a module, not a name bound in one.)
  return q?.includes('.') && !q.startsWith(`${model.moduleName}.`) && !q.startsWith('builtins.') ? `=${q}` : null;
}

export function reportSerializedRows(ctx: RepoRuleContext): void {
  const graph = callGraphOf(ctx.index);
  const byName = projectIndex(ctx.project).modelsByName;
  const sites: { ref: FnRef; file: FileSummary; site: Effect; schemaPath: string; written: string; where: string; kind: string; text: string }[] = [];
  for (const { ref, file, site } of ownSites(graph, SERIALIZED_ROWS)) {
    const [schemaPath = '', written = '', queryLine = '', kind = ''] = site.what.split('|', 4);
    sites.push({ ref, file, site, schemaPath, written, where: `query at line ${queryLine}`, kind, text: site.what.split('|').slice(4).join('|') });
  }
  for (const { ref, file, site } of ownSites(graph, SERIALIZED_CALL)) {
    const [schemaPath = '', kind = '', via = ''] = site.what.split('|', 3);
    const call = graph.callAt(ref.file, site.line, site.column);
    const to = call && call.receiverType !== UNTYPED ? graph.resolveCall(ref.file, call) : null;
    const fact = to ? graph.ownEffects(to).find((e) => e.kind === RETURNS_ROWS) : undefined;
    if (!to || !fact) continue;
    // `.items` of what it returns: rows only when every return is a `Pagination`.
    if (via === 'page' && !graph.ownEffects(to).some((e) => e.kind === RETURNS_PAGE)) continue;
    const bar = fact.what.indexOf('|');
    sites.push({ ref, file, site, schemaPath, written: fact.what.slice(0, bar), where: `${via === 'page' ? 'the `.items` of the page' : 'the rows'} \`${graph.function(to).qualifiedName}\` returns, ${graph.fileOf(to).path}`, kind, text: fact.what.slice(bar + 1) });
  }
  for (const { ref, file, site, written, where, text, ...given } of sites) {
    const entity = written.startsWith('@') ? dynamicTarget(ctx.project, written.slice(1)) : written;
    if (!entity) continue;
    // An instance imported from another module: the class and the dump that module binds it to.
    const bound = given.schemaPath.startsWith('=') ? importedSchema(graph, given.schemaPath.slice(1)) : null;
    if (given.schemaPath.startsWith('=') && !bound) continue;
    const schemaPath = bound?.schema ?? given.schemaPath;
    const kind = bound?.kind ?? given.kind;
    const schema = schemaFields(graph, schemaPath);
    if (!schema) continue;
    const only = /\+([^-]*)/.exec(kind)?.[1]?.split(',');
    const exclude = /-(.*)$/.exec(kind)?.[1]?.split(',');
    const kept = schema.fields.filter((f) => (!only || only.includes(f)) && !exclude?.includes(f));
    const short = schemaPath.replace(/^.*\./, '');
    const via = kind === 'response' || kind === 'one' ? `the response model \`${short}\``
      : bound ? `\`${given.schemaPath.replace(/^.*\./, '')}\` (a \`${short}(many=True)\` bound in ${graph.index.files[bound.file]!.path})` : `\`${short}\``;
    const fn = graph.function(ref);
    // A literal cap on the query (`.limit(5)`, `per_page=20`) bounds N, as for a loop over the rows.
    const cap = kind === 'one' ? null : rowsCap(text);
    // One finding per site and level: the relationships it loads per row, one fix (the options).
    const report = (model: string, rels: [string, LazyRelationship][], per: string) => {
      if (!rels.length) return;
      const scalar = rels.every(([, info]) => info.scalar);
      ctx.report({
        path: file.path,
        location: { line: site.line, column: site.column, endLine: site.line, endColumn: site.column + 1 },
        message: `${via} serializes ${rels.map(([r, info]) => relationLabel(model, r, info)).join(', ')} ${per} (${where}; no eager loader option for ${rels.length > 1 ? 'them' : 'it'}): one lazy load per row${rels.length > 1 ? ' for each' : ''}`
          + (scalar ? (rels.length > 1 ? '; many-to-ones: one SELECT per distinct related row not already in the session' : oneRowNote(rels[0]![1])) : '')
          + (cap !== null ? `; the query returns at most ${cap} rows` : '')
          + (fn.isAsync ? '; on an `AsyncSession` the lazy load raises `MissingGreenlet` instead' : ''),
        // One object's nested list: N is that one collection's size, not the table's. (An `async
        // def` route says nothing of the session's kind: no failure is claimed here.)
        ...(kind === 'one' ? { severity: scalar ? 'low' as const : 'medium' as const }
          : cap !== null && cap <= SMALL_CAP ? { severity: 'low' as const } : scalar || cap !== null ? { severity: 'medium' as const } : {}),
        function: fn.name,
      });
    };
    const models = nearestModels(ctx.project, byName.get(entity) ?? [], file.path);
    const lazy = lazyRelationships(models);
    const first: [string, LazyRelationship][] = [];
    // One object: its own relationships are one load each, not one per row.
    if (kind !== 'one') for (const field of kept) {
      const read = schema.reads.get(field) ?? field;
      const info = lazy.get(read);
      // (An association proxy loads the relationship it reads through: once, with that relationship's.)
      if (info && !loadedByQuery(text, read, info) && !first.some(([r, i]) => loadedRelation(r, i) === loadedRelation(read, info))) first.push([read, info]);
    }
    report(entity, first, `for each \`${entity}\` row`);
    // Columns the query leaves unloaded (`load_only(...)` naming others, `defer(...)`, declared
    // deferred): each loads with its own SELECT per row when the schema reads it.
    if (kind !== 'one') {
      const unloaded = new Set([...deferredColumns(models, text), ...rootUnloadedColumns(models, text, entity)]);
      const cols = [...new Set(kept.map((f) => schema.reads.get(f) ?? f))].filter((c) => unloaded.has(c) && !lazy.has(c));
      if (cols.length) {
        ctx.report({
          path: file.path,
          location: { line: site.line, column: site.column, endLine: site.line, endColumn: site.column + 1 },
          message: `${via} serializes ${cols.map((c) => `\`${entity}.${c}\``).join(', ')} for each \`${entity}\` row (${where}), ${cols.length > 1 ? 'columns' : 'a column'} the query does not load (\`load_only(...)\` leaves ${cols.length > 1 ? 'them' : 'it'} out, or ${cols.length > 1 ? 'they are' : 'it is'} deferred): one SELECT per row${cols.length > 1 ? ' for each' : ''}`
            + (cap !== null ? `; the query returns at most ${cap} rows` : '')
            + (fn.isAsync ? '; on an `AsyncSession` the load raises `MissingGreenlet` instead' : ''),
          ...(cap !== null && cap <= SMALL_CAP ? { severity: 'low' as const } : cap !== null ? { severity: 'medium' as const } : {}),
          function: fn.name,
        });
      }
    }
    // One level down: a nested schema over a collection of each row.
    for (const [field, nestedPath] of schema.nested) {
      if (!kept.includes(field)) continue;
      const attr = schema.reads.get(field) ?? field;
      const rel = models[0]?.relationships.find((r) => r.name === attr);
      if (!rel || rel.scalar || !rel.target) continue;
      const target = rel.target.replace(/^.*\./, '');
      const inner = schemaFields(graph, nestedPath);
      if (!inner) continue;
      const innerLazy = lazyRelationships(nearestModels(ctx.project, byName.get(target) ?? [], file.path));
      const second: [string, LazyRelationship][] = [];
      for (const f of inner.fields) {
        const read = inner.reads.get(f) ?? f;
        const info = innerLazy.get(read);
        // The way back to the row whose collection this is (`Task.project` under `Project.tasks`):
        // that row is loaded, and the many-to-one finds it in the identity map without SQL.
        if (info && leadsBackToOwner(info, read, models, attr, innerLazy)) continue;
        if (info && !eagerlyLoaded(text, loadedRelation(read, info)) && !second.some(([r, i]) => loadedRelation(r, i) === loadedRelation(read, info))) second.push([read, info]);
      }
      report(target, second, `for each item of \`${entity}.${attr}\``);
    }
  }
}

/** The list serializer a module-level name of the repo (`app.schemas.users_schema`) is bound to (`FileSummary.schemaInstances`), or null. */
function importedSchema(graph: CallGraph, qualified: string): { schema: string; kind: string; file: number } | null {
  const at = graph.locate(qualified);
  if (!at || at.rest.includes('.')) return null;
  const hit = graph.index.files[at.file]!.schemaInstances?.find(([name]) => name === at.rest);
  return hit ? { schema: hit[1], kind: hit[2], file: at.file } : null;
}

/** The fields a schema class of the repo and its repo bases declare; null when the path names no such class. */
function schemaFields(graph: CallGraph, path: string): { fields: string[]; reads: Map<string, string>; nested: [string, string][] } | null {
  const v = graph.resolveType(path);
  if (!v || v.kind === 'function') return null;
  const fields: string[] = [];
  const reads = new Map<string, string>();
  const nested: [string, string][] = [];
  for (const c of graph.classMro(v.cls)) {
    if (!c.cls.schema) continue;
    for (const f of c.cls.schema.fields) if (!fields.includes(f)) fields.push(f);
    // The subclass's own declaration wins (it comes first in the order).
    for (const [f, a] of c.cls.schema.reads ?? []) if (!reads.has(f)) reads.set(f, a);
    nested.push(...c.cls.schema.nested);
  }
  return fields.length ? { fields, reads, nested } : null;
}
