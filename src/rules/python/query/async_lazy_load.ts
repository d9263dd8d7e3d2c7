/**
 * PA111 async_lazy_load
 *
 * What it does: finds a lazy relationship read on one row that an `AsyncSession` loaded in a
 * coroutine — `order = await session.get(Order, i)`, `(await session.scalars(select(Order)...)).first()`
 * — when neither the query's loader options nor an `await session.refresh(order, ["lines"])`
 * loaded it: `order.lines`, `order.customer.name`.
 * Why is this bad? Under `AsyncSession` an attribute access cannot await: the lazy load's IO raises
 * `sqlalchemy.exc.MissingGreenlet` ("greenlet_spawn has not been called") instead of running. The
 * code reads like a plain attribute and fails at run time, often only on the path that first
 * touches the relationship.
 *
 * Loops over rows are PA108's (its message says the same for `AsyncSession`). A many-to-one may be
 * found in the identity map without IO when its row is already loaded: medium; a collection or the
 * side of a one-to-one without the foreign key always needs a SELECT: high.
 * Silent: relationships declared with an eager `lazy=` (`selectin`, `joined`, `subquery`,
 * `immediate`) or `raise`/`noload`/`dynamic`/`write_only`; a query whose options name the
 * relationship; `await session.refresh(row, [..."rel"...])` before the read;
 * `await row.awaitable_attrs.rel`; rows of a sync session; a name bound again before the read.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import type { ModelInfo, RelationshipInfo } from '../../../discovery/context.js';
import { callsOf, type CallInfo, type FileModel } from '../../../semantic/model.js';
import { asyncHandles } from '../../../semantic/asyncSessions.js';
import { modelsNamed } from '../../projectFacts.js';
import { callArgs, lastAssignment, unwrap } from './semantics.js';

/** Loader strategies that load on first access with IO. */
const LAZY = /^(select|True|true)$/;
/** Calls that return one row of the entity they are given. */
const ONE_ROW = /\.(first|one|one_or_none|scalar_one|scalar_one_or_none|scalar)\s*\(\s*\)\s*$/;

interface LoadedRow {
  name: string;
  entity: string;
  /** Text of the statement that loaded it (its loader options). */
  text: string;
  /** Offset after which reads count. */
  from: number;
  fnIndex: number;
}

export const asyncLazyLoad: FileRule = {
  meta: {
    code: 'PA111',
    check: 'async_lazy_load',
    family: 'query',
    severity: 'high',
    effort: 'S',
    summary: 'Lazy relationship read on a row an `AsyncSession` loaded: the implicit IO raises `MissingGreenlet`',
    what: 'In a coroutine, finds a lazy relationship (the default `lazy="select"`) read on one row that an `AsyncSession` loaded — `row = await session.get(Model, id)`, `row = (await session.scalars(select(Model)...)).first()` / `.one()` / `.one_or_none()`, `(await session.execute(select(Model)...)).scalar_one_or_none()`, `await session.scalar(select(Model)...)` — when the query\'s loader options do not name it (`selectinload(Model.rel)`, `joinedload(...)`, also `session.get(..., options=[...])`) and no `await session.refresh(row, ["rel"])` came before: `row.rel`, `row.rel.append(x)`, `row.rel.name`. High for a collection or the side of a one-to-one without the foreign key (always a SELECT); medium for a many-to-one, which the identity map may serve without IO when its row is already loaded. Loops over rows are PA108\'s. Silent for relationships declared eager (`selectin`, `joined`, `subquery`, `immediate`) or `raise`, `noload`, `dynamic`, `write_only`, for `await row.awaitable_attrs.rel`, for rows of a sync session, and when the name is bound again before the read.',
    why: 'Under `AsyncSession` an attribute access cannot await: the lazy load\'s SELECT raises `MissingGreenlet` ("greenlet_spawn has not been called; can\'t call await_only() here") instead of running. The code reads like a plain attribute and fails at run time, often only on the path that first touches the relationship.',
    bad: "from sqlalchemy import ForeignKey\nfrom sqlalchemy.ext.asyncio import AsyncSession\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship\n\n\nclass Base(DeclarativeBase):\n    pass\n\n\nclass Order(Base):\n    __tablename__ = \"orders\"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    lines: Mapped[list[\"Line\"]] = relationship()\n\n\nclass Line(Base):\n    __tablename__ = \"lines\"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    order_id: Mapped[int] = mapped_column(ForeignKey(\"orders.id\"))\n    sku: Mapped[str]\n\n\nasync def order_lines(session: AsyncSession, order_id: int):\n    order = await session.get(Order, order_id)\n    return [line.sku for line in order.lines]\n",
    good: "from sqlalchemy import ForeignKey\nfrom sqlalchemy.ext.asyncio import AsyncSession\nfrom sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload\n\n\nclass Base(DeclarativeBase):\n    pass\n\n\nclass Order(Base):\n    __tablename__ = \"orders\"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    lines: Mapped[list[\"Line\"]] = relationship()\n\n\nclass Line(Base):\n    __tablename__ = \"lines\"\n    id: Mapped[int] = mapped_column(primary_key=True)\n    order_id: Mapped[int] = mapped_column(ForeignKey(\"orders.id\"))\n    sku: Mapped[str]\n\n\nasync def order_lines(session: AsyncSession, order_id: int):\n    order = await session.get(Order, order_id, options=[selectinload(Order.lines)])\n    return [line.sku for line in order.lines]\n",
    fix: 'load it with the query (`selectinload(Model.rel)` for collections, `joinedload(Model.rel)` for many-to-one), `await session.refresh(row, ["rel"])`, or `await row.awaitable_attrs.rel`',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html#preventing-implicit-io-when-using-asyncsession',
      'https://docs.sqlalchemy.org/en/20/errors.html#error-xd2s',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile || !model.modelClasses.size || !/\bawait\b/.test(model.source) || !model.source.includes('ession')) return;
    const isAsync = asyncHandles(model, project);
    const reported = new Set<string>();
    for (const row of loadedRows(model, isAsync)) {
      const lazy = lazyRelationships(modelsNamed(project, model, row.entity));
      if (!lazy.size) continue;
      const fn = model.functions[row.fnIndex]!;
      const body = fn.body;
      if (!body) continue;
      for (const attr of body.descendantsOfType('attribute')) {
        if (attr.startIndex < row.from) continue;
        const obj = attr.childForFieldName('object');
        const name = attr.childForFieldName('attribute')?.text ?? '';
        const rel = lazy.get(name);
        if (!rel || obj?.type !== 'identifier' || obj.text !== row.name) continue;
        if (ownerFunction(attr, fn.node) !== fn.node.startIndex) continue;
        // `row.owner = x` sets a many-to-one without a read; replacing a collection loads the old one.
        if (rel.scalar && attr.parent?.type === 'assignment' && attr.parent.childForFieldName('left')?.id === attr.id) continue;
        const line = attr.startPosition.row + 1;
        // Bound again before the read: another row.
        const bound = lastAssignment(model, row.name, row.fnIndex, line);
        if (!bound || bound.node.endIndex !== row.from) continue;
        // Options that name it, or that the text cannot read (`options=LOADERS`, `selectinload("*")`).
        if (new RegExp(`\\b${name}\\b`).test(row.text) || unreadableOptions(row.text)) continue;
        const between = model.source.slice(row.from, attr.startIndex);
        // Loaded before the read: a named refresh, `await row.awaitable_attrs.rel`, `run_sync`.
        if (new RegExp(`refresh\\(\\s*${row.name}\\s*,[^)]*['"]${name}['"]|\\b${row.name}\\.awaitable_attrs\\.${name}\\b|\\brun_sync\\(`).test(between)) continue;
        // Bound again by a loop or a `with`/`except ... as` on the way.
        if (new RegExp(`\\bfor\\s+(?:[\\w\\s,()]*[\\s,(])?${row.name}\\b[\\w\\s,()]*\\bin\\b|\\bas\\s+${row.name}\\b`).test(between)) continue;
        // Another query of the function already eager-loaded it: the identity map hands that row back.
        if (new RegExp(`(selectinload|joinedload|subqueryload|immediateload|contains_eager)\\(\\s*[\\w.]*\\.${name}\\b`).test(model.source.slice(fn.node.startIndex, attr.startIndex))) continue;
        // A loop over rows is PA108's; one row read in a loop is still one row.
        const key = `${row.name}:${name}:${row.fnIndex}`;
        if (reported.has(key)) continue;
        reported.add(key);
        const always = !rel.scalar || rel.reverse;
        ctx.report({
          node: attr,
          message: `\`${row.name}.${name}\` lazy-loads ${row.entity}.${name} on a row an \`AsyncSession\` loaded (line ${model.lineOf(row.from) + 1}), with no loader option for it: the implicit IO raises \`MissingGreenlet\` instead of running`
            + (always ? '' : ' (unless the related row is already in the identity map)'),
          severity: always ? 'high' : 'medium',
        });
      }
    }
  },
};

/** Start of the function (or lambda) that holds `node`, up to `fnNode`. */
function ownerFunction(node: SyntaxNode, fnNode: SyntaxNode): number {
  for (let p = node.parent; p; p = p.parent) {
    if (p.type === 'function_definition' || p.type === 'lambda') return p.startIndex;
    if (p.id === fnNode.id) return fnNode.startIndex;
  }
  return -1;
}

/** Loader options the text cannot read: a name (`options=LOADERS`, `.options(*opts)`) or a wildcard (`selectinload("*")`). */
function unreadableOptions(text: string): boolean {
  return /options\s*=\s*[A-Za-z_*]|\.options\(\s*\*|\.options\(\s*[A-Za-z_]\w*\s*\)|load\(\s*['"]\*['"]/.test(text);
}

/** The lazy relationships of a model's declarations by name (none when any declaration disagrees). */
function lazyRelationships(models: ModelInfo[]): Map<string, RelationshipInfo> {
  const out = new Map<string, RelationshipInfo>();
  if (models.length !== 1) return out;
  for (const r of models[0]!.relationships) if (LAZY.test(r.lazy)) out.set(r.name, r);
  return out;
}

/** Single rows an `AsyncSession` loaded into a name, in coroutines. */
function* loadedRows(model: FileModel, isAsync: ReturnType<typeof asyncHandles>): Generator<LoadedRow> {
  for (const a of model.assignments) {
    if (a.functionIndex < 0 || !model.functions[a.functionIndex]!.isAsync || !/^[A-Za-z_]\w*$/.test(a.target) || !a.value) continue;
    const value = a.value;
    if (!value.text.includes('await')) continue;
    const load = loadingCall(model, a.functionIndex, value);
    if (!load) continue;
    const receiver = load.call.dottedReceiver;
    if (!receiver || receiver.includes('.')) continue;
    const handle = isAsync(receiver, a.functionIndex, load.call.line);
    if (handle?.kind !== 'AsyncSession') continue;
    yield { name: a.target, entity: load.entity, text: value.text, from: a.node.endIndex, fnIndex: a.functionIndex };
  }
}

/** The awaited session call inside `value` that loads one row, and the row's entity. */
function loadingCall(model: FileModel, fnIndex: number, value: SyntaxNode): { call: CallInfo; entity: string } | null {
  const single = ONE_ROW.test(value.text);
  for (const call of callsOf(model, fnIndex)) {
    if (call.node.startIndex < value.startIndex || call.node.endIndex > value.endIndex || !call.awaited) continue;
    const first = unwrap(callArgs(call.node).positional[0] ?? null);
    if (!first) continue;
    if (call.method === 'get' && !single) {
      const entity = first.text.split('.').pop() ?? '';
      if (model.modelClasses.has(entity)) return { call, entity };
    }
    // `execute()` returns rows: only its scalar forms give the entity (`.scalar_one()`).
    const entityRow = call.method === 'execute' ? /\.(scalar_one|scalar_one_or_none|scalar)\s*\(\s*\)\s*$|\.scalars\(\s*\)\s*\.\s*(first|one|one_or_none)\s*\(\s*\)\s*$/.test(value.text) : single;
    if (((call.method === 'scalars' || call.method === 'execute' || call.method === 'exec') && entityRow) || call.method === 'scalar') {
      const m = /^select\(\s*([\w.]+)\s*\)/.exec(first.text.replace(/\s+/g, ''));
      const entity = m ? m[1]!.split('.').pop()! : '';
      if (model.modelClasses.has(entity)) return { call, entity };
    }
  }
  return null;
}
