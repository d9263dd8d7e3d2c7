/**
 * PA403 missing_cleanup
 *
 * What it does: finds a session, connection or file assigned to a local variable outside
 * `with` / `async with` — `Session(engine)`, a `sessionmaker` factory called, `engine.connect()` (also
 * on what a project getter hands out: `get_write_engine().connect()`, `backend._get_engine().connect()`),
 * `await pool.acquire()`, `psycopg2.connect()`, `await asyncpg.connect()`, `open()` — that is
 * not closed on every path: no `close()` in a `finally` around its use.
 * Why is this bad? The first exception between the acquisition and the `close()` leaks the
 * handle: a pooled connection stays checked out (and its transaction open) until the garbage
 * collector finds it, a file descriptor stays open.
 *
 * Also: closeable clients (`aiohttp.ClientSession`, `httpx.Client`, redis clients,
 * `ThreadPoolExecutor`; catalogue in `semantic/resources.ts`) made per call and never closed, and
 * session providers used outside their protocol (`next(get_db())`, a `@contextmanager` provider
 * called without `with`).
 *
 * Precision: a value that leaves the function (returned, stored on an object or in a
 * container, handed to `ExitStack.enter_context` / `closing()` / a `.callback(x.close)`) or is
 * used as a context manager later is the caller's; a close in `finally`, or in a catch-all
 * `except` plus the normal path, counts. Module-level handles are long-lived by design.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import { effectiveRole } from '../../../semantic/model.js';
import type { Severity } from '../../../types.js';
import type { FileRule, FileRuleContext } from '../../types.js';
import { acquisitions, closeFacts, contextManagerDependencies, errorPathLeakSeverity, exceptExitLeaving, leakSeverity, poolReleaseOnNormalPathOnly, protectedByTry, providerMisuses, unownedStores, type Acquisition } from './semantics.js';

/** High on a request path (a leak per request), medium elsewhere. */
function perCallSeverity(ctx: FileRuleContext, fnIndex: number): Severity {
  return effectiveRole(ctx.model, fnIndex) === 'handler' ? 'high' : 'medium';
}

/** A lifespan (`@asynccontextmanager async def lifespan(app)`): what it opens lives as long as the app. */
function isLifespan(acq: Acquisition): boolean {
  return acq.fn.decoratorNames.some((d) => /(^|\.)(async)?contextmanager$/.test(d)) && acq.fn.params.some((p) => p.name === 'app' || p.name === '_app');
}

function reportClient(ctx: FileRuleContext, acq: Acquisition): void {
  const facts = closeFacts(acq);
  // A client closed anywhere (or owned elsewhere) is not the leak this looks for; only one never closed.
  if (facts.escapes || facts.closedInFinally || facts.closedNormally || facts.closingExcepts.size > 0 || isLifespan(acq)) return;
  const client = acq.client!;
  const holds = client.holds === 'threads' ? 'its worker threads idle' : 'its connection pool keeps sockets open';
  if (client.freedOnReturn) {
    ctx.report({
      node: acq.call.node,
      message: `\`${acq.target} = ${acq.label}\` (${client.label}) is made on every call and never closed: CPython frees it, and closes its sockets, when the call returns, so nothing leaks, but every call opens new connections`,
      severity: 'low',
      advisory: 'a plain client freed by reference counting when the call returns: the cost is a connection set up per call, not a leak',
      function: acq.fn.name,
      recommendation: 'keep one client for the process (module level or app state) and reuse its connection pool',
    });
    return;
  }
  ctx.report({
    node: acq.call.node,
    message: `\`${acq.target} = ${acq.label}\` (${client.label}) is never closed: ${holds} until the garbage collector finds it, once per call`,
    severity: perCallSeverity(ctx, acq.fn.index),
    function: acq.fn.name,
    recommendation: `use it as a context manager, close it in \`finally\` (\`${client.close.replace(/\b(session|client|executor)\b/, acq.target)}\`), or keep one for the process`,
  });
}

/** Is this reference (or its `fileno()`) an argument of a call (`copy(src, f)`, `Popen(cmd, stdout=f.fileno())`)? */
function passedToCall(ref: SyntaxNode): boolean {
  let r: SyntaxNode = ref;
  const up = ref.parent;
  if (up?.type === 'attribute' && up.childForFieldName('attribute')?.text === 'fileno' && up.parent?.type === 'call') r = up.parent;
  const p = r.parent;
  // A child process's stream (`Popen(cmd, stdout=f)`): the child writes it. Not `json.dump(x, f)`
  // or `csv.writer(f)`, which write through it and leave the buffer to the close.
  return p?.type === 'keyword_argument' && /^(stdin|stdout|stderr)$/.test(p.childForFieldName('name')?.text ?? '') && p.childForFieldName('value')?.id === r.id && p.parent?.type === 'argument_list';
}

/**
 * Does the function end right after its last use of the file (the use is in its last top-level
 * statement)? Then the return frees, flushes and closes it before anyone can read it short.
 */
function nothingRunsAfter(acq: Acquisition, refs: readonly SyntaxNode[]): boolean {
  const body = acq.fn.body;
  const last = body?.namedChildren.filter((c) => c.type !== 'comment').pop();
  const lastRef = refs.length ? refs[refs.length - 1]! : acq.assignment.node;
  // A plain last statement: not a `try`/`with`/`for` whose body goes on after the use.
  return !!last && /^(expression_statement|return_statement)$/.test(last.type) && lastRef.startIndex >= last.startIndex && lastRef.endIndex <= last.endIndex;
}

/** Is `open(...)`'s mode one that writes (`w`, `a`, `x`, `+`), by position or keyword? */
function writeMode(call: SyntaxNode): boolean {
  const args = call.childForFieldName('arguments')?.namedChildren ?? [];
  const kw = args.find((a) => a.type === 'keyword_argument' && a.childForFieldName('name')?.text === 'mode')?.childForFieldName('value');
  const mode = kw ?? args.filter((a) => a.type !== 'keyword_argument' && a.type !== 'comment')[1];
  return !!mode && mode.type === 'string' && /[wax+]/.test(mode.text.replace(/^[rbuRBU]*['"]|['"]$/g, ''));
}

const FILE_REFCOUNT_EVIDENCE = 'a file object held by a local only: CPython closes it (and flushes what was written) when its last reference goes, as the function returns or the exception\'s traceback is dropped; `with` makes the close explicit and portable';

export const missingCleanup: FileRule = {
  meta: {
    code: 'PA403',
    check: 'missing_cleanup',
    family: 'lifecycle',
    severity: 'high',
    effort: 'S',
    summary: 'Session, connection, file or client acquired outside `with` and not closed on every path; a session provider used outside its protocol',
    what: 'Finds `Session()`, `sessionmaker()()` (a session factory called), `engine.connect()`, `engine.raw_connection()`, `await pool.acquire()`, a psycopg2 pool\'s `pool.getconn()` (given back by `pool.putconn(conn)`), driver `connect()` calls (`psycopg2`, `psycopg`, `asyncpg`, `sqlite3`, `pymysql`, …) and `open()` assigned to a local variable outside `with` / `async with`, and not closed on all paths: a `close()` only at the end of the normal path does not count (nor a pool\'s `release(conn)` there), a `close()` in `finally` does, and so do `with x:` and `with closing(x):` — except for a psycopg2 or sqlite3 connection, whose own `with conn:` only ends the transaction, and a `with` over something made from it (`with conn.cursor() as cur:`, `with conn.begin():`), which closes that object, not the connection (a generator that yields it unprotected and closes it after the `yield` is reported once, as PA405). A session or connection made by a method of the caller\'s own class (`s = self._session()` where `_session` returns `self.maker()` on every path) counts as made there; a method that hands out a stored object (`return self.session`, the thread\'s session of a kept registry `return self.registry()`) makes nothing, and `with self._session() as s:` closes it. A method that builds a new `scoped_session(...)` on every call and returns it makes a session too: that registry scopes nothing and no teardown can reach it, so the caller must `close()` or `remove()` it (reported here rather than as PA410, whose registries are kept for the process). Values returned to the caller, stored on an object, registered with an `ExitStack` or handed with the work to another thread or process (`Thread(target=run, args=(sql, conn))`, `executor.submit(run, conn)`) are not flagged. A plain file held by a local only is advisory (low): CPython\'s reference counting closes it, and flushes it, as soon as the function returns or the exception\'s traceback is dropped. Closeable clients — `aiohttp.ClientSession`, `httpx.Client`/`AsyncClient`, redis clients, `ThreadPoolExecutor` — are flagged when made per call and never closed (a module-level or app-lifetime client, one stored on an object, or one closed in a lifespan is fine); a plain (sync) `httpx.Client` or redis-py client held by a local only is advisory (low): CPython frees it when the call returns (redis-py\'s `Redis.__del__` closes it, its pool\'s connections disconnect as they are freed), so the cost is new connections per call, not a leak. Session providers used outside their protocol: `next(get_db())` (the generator, and with it the provider\'s cleanup, is dropped; not when the caller closes the session itself, `s = next(get_db()) … s.close()`, nor when only its engine is read, `next(get_db()).bind`, which checks out no connection), a provider\'s generator kept but never closed, and a `@contextmanager` provider called without `with` (it yields no session at all). A session or connection left open is high, medium in a background job or startup code (a leak per run, not per request); one closed on the normal path and left open only when something raises is a step lower (medium, low in a job): only failing calls leak it, until the garbage collector frees it (SQLAlchemy\'s pool takes back a collected connection). When an `except` that leaves the function is where it stays open, PA405 reports that path instead.',
    why: 'Any exception between the acquisition and the `close()` skips the close: the pooled connection stays checked out with its transaction open until garbage collection, and under load the pool runs dry (`QueuePool limit … reached`). For files, descriptors leak and buffered writes may be lost.',
    bad: 'from sqlalchemy import create_engine, text\nfrom sqlalchemy.orm import sessionmaker\n\nengine = create_engine("postgresql://app@db/app", pool_pre_ping=True)\nSessionLocal = sessionmaker(engine)\n\n\ndef count_users() -> int:\n    db = SessionLocal()\n    n = db.execute(text("SELECT count(*) FROM users")).scalar_one()\n    db.close()\n    return n\n',
    good: 'from sqlalchemy import create_engine, text\nfrom sqlalchemy.orm import sessionmaker\n\nengine = create_engine("postgresql://app@db/app", pool_pre_ping=True)\nSessionLocal = sessionmaker(engine)\n\n\ndef count_users() -> int:\n    with SessionLocal() as db:\n        return db.execute(text("SELECT count(*) FROM users")).scalar_one()\n',
    fix: 'acquire with `with` / `async with`, or close in `try: … finally: x.close()`',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/session_basics.html#opening-and-closing-a-session',
      'https://docs.sqlalchemy.org/en/20/core/connections.html#basic-usage',
      'https://docs.python.org/3/reference/compound_stmts.html#the-with-statement',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    for (const acq of acquisitions(ctx.model, ctx.project)) {
      if (acq.kind === 'client') {
        reportClient(ctx, acq);
        continue;
      }
      const facts = closeFacts(acq);
      // `conn = await pool.acquire()` … `await pool.release(conn)` with no `finally`: the pool's
      // `release(conn)` is its close, and it runs only on the normal path.
      const release = acq.kind !== 'file' && !acq.provider ? poolReleaseOnNormalPathOnly(acq, facts) : null;
      if (release) {
        const role = effectiveRole(ctx.model, acq.fn.index);
        ctx.report({
          node: acq.call.node,
          message: `${acq.kind} \`${acq.target} = ${acq.label}\` is given back to the pool only on the normal path (line ${release.startPosition.row + 1}): an exception or a cancellation in between skips the release, and the pool never gets the connection back`,
          severity: role === 'background' || role === 'init' ? 'medium' : 'high',
          function: acq.fn.name,
          recommendation: /\.getconn\(\)$/.test(acq.label)
            ? `give it back in a \`finally\`: \`${acq.target} = ${acq.label}\` then \`try: ... finally: ${acq.label.replace(/\.getconn\(\)$/, '')}.putconn(${acq.target})\``
            : `\`async with ${acq.label.replace(/\(\)$/, '')}() as ${acq.target}:\`, or release it in a \`finally\``,
        });
        continue;
      }
      // A psycopg2 pool's connection closed instead of given back: the pool still counts it as
      // used (its `_used` keeps it) until `putconn(conn)`, and runs out.
      if (/\.getconn\(\)$/.test(acq.label) && !facts.escapes && (facts.closedInFinally || facts.closedOnBothPaths || facts.closedNormally)
        && !new RegExp(String.raw`\.putconn\(\s*${acq.target}\b`).test(acq.fn.node.text)) {
        ctx.report({
          node: acq.call.node,
          message: `connection \`${acq.target} = ${acq.label}\` is closed but never given back: a psycopg2 pool counts a connection as used until \`putconn(${acq.target})\`, so every call loses it a slot for good (\`connection pool exhausted\`)`,
          severity: leakSeverity(ctx.model, acq.fn.index),
          function: acq.fn.name,
          recommendation: `\`try: ... finally: ${acq.label.replace(/\.getconn\(\)$/, '')}.putconn(${acq.target})\` (\`putconn(${acq.target}, close=True)\` to drop a broken one)`,
        });
        continue;
      }
      if (facts.escapes || facts.closedInFinally || facts.closedOnBothPaths) continue;
      const closedSomewhere = facts.closedNormally || facts.closingExcepts.size > 0;
      // A generator that yields it unprotected and closes it after the `yield` is PA405's finding
      // (the exception thrown in at the `yield`): one report for one defect.
      if (closedSomewhere && acq.kind !== 'file' && !acq.provider && acq.fn.isGenerator
        && acq.fn.yields.some((y) => y.type === 'identifier' && y.text === acq.target && !protectedByTry(y, acq.target, acq.fn.node))) continue;
      const what = acq.kind === 'file' ? 'file' : acq.kind;
      // Closed on the normal path, left open by an `except` that leaves: PA405 reports that path.
      if (acq.kind !== 'file' && !acq.provider && facts.closedNormally && exceptExitLeaving(acq)) continue;
      if (acq.provider) {
        ctx.report({
          node: acq.call.node,
          message: closedSomewhere
            ? `the generator of session provider \`${acq.label}\` is closed only on the normal path: an exception before \`${acq.target}.close()\` leaves the provider's cleanup to the garbage collector`
            : `the generator of session provider \`${acq.target} = ${acq.label}\` is never closed: the provider's cleanup (its \`finally\`) runs only when the garbage collector finds it`,
          severity: perCallSeverity(ctx, acq.fn.index),
          function: acq.fn.name,
          recommendation: `close the generator in \`finally\` (\`${acq.target}.close()\`), or open the session with the factory in \`with\``,
        });
        continue;
      }
      ctx.report({
        node: acq.call.node,
        message: closedSomewhere
          ? `${what} \`${acq.target} = ${acq.label}\` is closed only on the normal path: an exception before \`${acq.target}.close()\` leaves it open until the garbage collector frees it`
          : /\.getconn\(\)$/.test(acq.label) ? `${what} \`${acq.target} = ${acq.label}\` is never given back to the pool (\`putconn(${acq.target})\`): the pool keeps counting it as used, and runs out`
          : acq.registry
            ? `session \`${acq.target} = ${acq.label}\` is never closed or removed: \`${acq.via}\` builds a new \`scoped_session\` registry on every call, so the registry scopes nothing and the session it makes belongs to this call alone (no teardown can reach it to \`remove()\` it); its connection and transaction stay open until the garbage collector finds it`
          : `${what} \`${acq.target} = ${acq.label}\` is never closed` + (acq.via ? ` (\`${acq.via}\` makes a new one on every call)` : '') + (acq.assignment.fromWith ? ' (its own `with` ends the transaction and leaves the connection open)' : ''),
        // A job's or a startup hook's leak costs that run a connection, not every request (as PA405 rates it).
        // Closed on the normal path: only a failing call leaks it, until the next collection.
        severity: acq.kind === 'file' ? 'low' : closedSomewhere ? errorPathLeakSeverity(ctx.model, acq.fn.index) : leakSeverity(ctx.model, acq.fn.index),
        // A file object held by a local only (not stored, returned or handed to an owner) is
        // closed, and its buffer flushed, by CPython's reference counting as soon as the function
        // returns or the exception's traceback is dropped: no descriptor stays open. `with` makes
        // that close explicit and portable (PyPy closes at its next collection).
        // Not a file written and never closed: its buffer reaches the disk only at the close, and
        // whatever reads that path before the function returns (an upload, a subprocess) sees it short.
        // (Handed to a call itself — `Popen(stdout=f)`, a copier thread — the file goes with it.)
        ...(acq.kind === 'file' && (closedSomewhere || !writeMode(acq.call.node) || facts.refs.some(passedToCall) || nothingRunsAfter(acq, facts.refs)) ? { advisory: FILE_REFCOUNT_EVIDENCE } : {}),
        function: acq.fn.name,
        ...(acq.registry ? { recommendation: `make the \`scoped_session\` once (in \`__init__\` or at module level) and \`remove()\` it when each request, job or message is done, or open a plain session per call with \`with\`` } : {}),
      });
    }
    for (const st of unownedStores(ctx.model, ctx.project)) {
      const perRequest = !st.target.startsWith('self.');
      ctx.report({
        node: st.call.node,
        message: perRequest
          ? `${st.acquire.kind} \`${st.target} = ${st.acquire.label}\` is stored on per-request state and nothing in this module closes it`
          : `${st.acquire.kind} \`${st.target} = ${st.acquire.label}\` is stored on \`${st.fn.className}\`, which has no \`close()\`/\`__exit__\` that closes it: every instance leaks one`,
        severity: perRequest ? 'high' : 'medium',
        function: st.fn.name,
        recommendation: perRequest
          ? `close it after \`call_next\` in \`finally\` (or in a teardown hook)`
          : `give \`${st.fn.className}\` a \`close()\` (and \`__enter__\`/\`__exit__\`) that closes \`${st.target}\`, or pass a session in instead of opening one`,
      });
    }
    for (const d of contextManagerDependencies(ctx.model, ctx.project)) {
      const deco = d.provider.async ? 'asynccontextmanager' : 'contextmanager';
      ctx.report({
        node: d.node,
        message: `\`${d.param}\` depends on \`${d.provider.name}\`, a \`@${deco}\`: FastAPI runs only generator functions as \`yield\` dependencies, so \`${d.param}\` receives the context manager, not a session, and the first use fails`,
        severity: perCallSeverity(ctx, d.fn.index),
        function: d.fn.name,
        recommendation: `drop \`@${deco}\` from the dependency (FastAPI drives the generator itself), or keep a separate undecorated provider for \`Depends\``,
      });
    }
    for (const m of providerMisuses(ctx.model, ctx.project)) {
      ctx.report({
        node: m.node,
        message: m.kind === 'next'
          ? `\`${m.node.text.replace(/\s+/g, ' ')}\` takes the session out of provider \`${m.label}\` and drops its generator: the provider's cleanup runs when the garbage collector finds the generator (in CPython at once, before the session is used), and the connection the session checks out afterwards is never given back`
          : `\`${m.label}\` is a context manager (\`@${m.provider.async ? 'asynccontextmanager' : 'contextmanager'}\`) used without \`${m.provider.async ? 'async with' : 'with'}\`: it yields no session, and the first use fails`,
        severity: perCallSeverity(ctx, m.fn.index),
        function: m.fn.name,
        recommendation: m.kind === 'next'
          ? 'use the provider as a context manager (`with contextmanager(get_db)() as db:`), or open a session from the factory with `with`'
          : `\`${m.provider.async ? 'async with' : 'with'} ${m.label} as session:\``,
      });
    }
  },
};
