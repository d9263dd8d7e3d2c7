/**
 * PA107 query_in_loop
 *
 * What it does: finds N+1 queries — a SELECT run once per item of a loop: `session.get(...)`,
 * `session.execute/scalars/scalar(select(...))`, `session.query(...)`, raw `SELECT` text, a
 * repository's `get`/`find`, directly in the loop body (or a comprehension, or the lambda of
 * `map(lambda x: ..., items)`), or through
 * same-repo helpers the loop calls (the finding then carries the chain).
 * Why is this bad? Every iteration pays a round trip; a page of 100 rows becomes 101 queries.
 *
 * Precision guards: the call must read a name the loop rebinds (the loop variable, or a name
 * assigned in the body) — retry and polling loops do not; a query on the loop's iterable runs
 * once; chunked `in_(...)` statements and paginated (`offset`) ones are the fix, not the bug;
 * a `while` loop that sleeps is polling. A read in an iteration that also writes on its own (a
 * statement, a flush, a commit — directly or in the helper called per item) is part of a
 * per-item workflow and is reported `low`. So is a primary-key lookup through the identity map
 * (`session.get`, `Query.get`): a SELECT only for the rows the session has not loaded yet.
 *
 * Severity by how the loop's N grows (semantic/loopDomain.ts): `high` over rows that grow with the
 * stored data, `low` over what one request sent, `medium` when not known where the loop runs.
 *
 * A function handed to a callee that calls it once per item of a loop (`paginate(rows, serializer=render)`) runs its queries per item too. Also a read that runs unchanged on every iteration of a data loop (nothing it reads changes in
 * the loop, the loop writes nothing and does not stop early): the same statement N times, to run
 * once before the loop. So is a property whose getter queries (`obj.tags` running
 * `Session.query(Tag).filter(...)`), read in such a loop on an object the loop does not rebind
 * (`obj` typed with the class by an annotation, a constructor or the query that loaded it).
 * And a helper that calls a model method querying about its own row on a typed parameter
 * (`def card(user: User): user.count_posts(...)`), called once per item of a loop with the item
 * there (`for u in users: card(u)`): reported in the helper, at the method call.
 */
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import { QUERY_EFFECT } from './dbCalls.js';
import { fileReadReports, IDENTITY_MAP_NOTE, reportDeferredLoopFindings, reportHelperSites, reportInvariantHelperSites, reportInvariantPropertyReads, reportLibrarySites, reportParamRowCalls, reportRowSites } from './loops.js';

export const queryInLoop: FileRule & RepoRule = {
  meta: {
    code: 'PA107',
    check: 'query_in_loop',
    family: 'query',
    severity: 'high',
    effort: 'M',
    summary: 'N+1: a SELECT per loop iteration, directly or through a same-repo helper',
    what: 'Finds a query run once per item of a loop or comprehension (or of `map(lambda x: ..., items)`, which calls the lambda per item): `session.get(Model, x.id)`, `session.refresh(obj)` (always a SELECT; not after the function\'s own flush or commit, where it is the write reloading its row — `add; commit; refresh` per item is PA207\'s; nor a select of the model the function has just inserted into, `insert(Tag).values(...).on_conflict_do_nothing()` then `select(Tag).where(...)`: the write\'s own read-back), `session.execute/scalars/scalar(select(...))`, `session.query(...)`, raw `SELECT` text, `repo.get(...)` on a repository object, a repository library\'s inherited reads on `self` in a service subclass (advanced-alchemy\'s `self.list(...)`, `self.get_one(...)`) or on an object typed as such a service (`self.tags.upsert(...)` with `tags` a property returning one: `upsert`, `update` and `delete` look the row up before they write, a per-item workflow, `low`) — in the loop body, or inside a same-repo function the loop calls (followed through the call graph, sync and awaited; the finding carries the chain). The call must use a value the loop rebinds; queries on the loop\'s iterable, chunked `in_(...)` loads and polling loops are not flagged, nor work that runs only for the items matching one key the loop does not change (`if entry.principal == principal:`; a constant on the other side is a category and stays per item), nor loops over a handful of constants (at most ten: a small literal or `range` of literals, also through `reversed`/`sorted`/`enumerate`, one another module of the repo declares at module level and never grows (through calls), a module constant or local list, a `self` attribute bound once to one, a function of the module that only returns one, or a comprehension filtering any of these), nor loops whose length the code or the deployment fixes (the function\'s own `*args`/`**kwargs`, a setting from the environment or the configuration split into items, the segments of one path or dotted name, `__subclasses__()`, the metadata\'s tables) or that dispatch on the item\'s value (`if field == "email":`), nor chains through a call resolved by its method name alone. A function handed to a callee that calls it once per item of a loop (`paginate(rows, serializer=render)`) runs its queries per item too, and so does a method or property of the loop\'s own row that queries about that row (called with nothing that changes in the loop) (`for r in rows: r.open_items` where the model\'s property runs `Item.query.with_parent(self)`, `object_session(self)`, `type(self).query` or a dynamic relationship of `self`, or returns an unrun query about `self` that the loop then runs by iterating it: `for p in category.parent_chain_query`; `medium` when the rows\' model is known only by that name), and a method of that kind called with any arguments inside a helper on a typed parameter that a loop passes its item to (`def card(user: User): user.count_posts(active=True)` with `for u in users: card(u)`: reported at the method call in the helper). A branch of a helper behind a keyword flag that defaults off (`if allow_email:`) is not followed from a call that leaves it off (nor one behind a flag that defaults on, from a call that passes a literal `False`/`None`); a call that passes on its own function\'s flag (`inner(x, include=include)`) reaches the branch only when that function\'s callers turn the flag on; what runs only when a flag that defaults on is turned off (the rest of `if queued: stage(); return`) is reached only from calls that pass it something other than a literal `True`. A coroutine started as a task nobody waits for (`asyncio.create_task(touch(i))` not awaited or gathered, or handed unawaited to a repo function that starts its parameter so: `fire_and_forget(touch(i))`) runs beside the loop, not in it: its queries are not the loop\'s. Also a read that runs unchanged on every iteration of a data loop (directly, or a helper given nothing that changes in the loop, or a property whose getter queries read on an object the loop does not rebind, typed with its class by an annotation, a constructor or the query that loaded it): the same statement N times, to hoist before the loop; silent for retries and searches that stop early, polling loops, and loops that change rows or write between the reads. A `while` loop that walks pages is no N+1 of that loop: the call is handed a position the loop advances (`offset += size`, not an index into a list) or takes from the page it returned (`cursor = page[-1].id`, `token = resp["next"]`). A primary-key lookup (`session.get(Model, pk)`, `Model.query.get(pk)`, `session.query(Model).get(pk)`, or a helper whose only query is one) is advisory: the identity map answers it without SQL for rows the session already holds (not with `populate_existing`/`with_for_update`, nor on a session the helper opens itself); by each item\'s foreign key (`session.get(User, job.owner_id)`) it fetches rows nothing loaded and keeps the loop\'s severity, and so does one over the ids a request sent when the function read nothing before the loop (`low`: the request\'s session holds none of them). Severity follows how the loop\'s N grows: `high` over rows that grow with the stored data (a query\'s result, a collection attribute of a loaded row, the rows a repo function queries); `low` over what one client sent in one request (a handler\'s parameters other than one typed with an ORM model, which is a row the framework injected; `request.*`, a form field\'s `.data`, a deserializer\'s or validator\'s input, a field a project getter picks out of the request\'s whole body by a literal key (`field(request.json, "tags")`), rows selected `in_(...)` those ids); over a helper\'s parameter, what its callers pass decides, by position or by keyword (`high` when one passes rows, `low` when every one passes request input), followed up through callers that hand on their own parameter (a wrapper `tag_track(code, names)` calling `track.set_tags(names)` on the object a repo function returns), up to three levels, and over a collection attribute of a helper\'s parameter (`item_in.tags`) the rows of a loaded object unless every caller passes the request\'s input there (a service function handed the handler\'s posted body: `low`); `medium` when N is not known (no caller seen, a `while` loop, another function\'s result that is not a query\'s). Reported `low` when each iteration also writes on its own, runs in a transaction of its own (`with session.begin():`, or a session opener the block writes through), opens a session of its own through a helper, or calls outside the database (a network client, an integration object, a call named like sending; an in-process signal\'s `send` is none) — a per-item workflow: its round trips are there anyway — and when only background jobs reach the loop. Advisory when the iteration commits what it writes, or runs in a transaction or a session of its own that writes (a commit that ends a read-only iteration, or a throttled one under `if i % 500 == 0:`, does not count): one unit of work per item by design, where, with the default `expire_on_commit`, rows read before the loop are expired by each commit and loaded again; the transactions per item are the question to ask first. A loop over batches (`range(0, n, size)`, `chunked(...)`, an item handed to `.in_(item)`, or lists of lists — a parameter annotated so, or a function of the file annotated to return them — each item handed on whole) runs one statement per batch: the remedy, not an N+1. So is a loop with a cache of its own (a mapping or set bound before it and filled in it) tested before the query with a key the item refers to or shares with others (`if item.owner_id in cache: continue`, `if acct.plan not in plans: plans[acct.plan] = ...` for attributes named like a shared value: a plan, type, category, status, currency, country, owner, vendor…; not the item\'s own id, name, e-mail, SKU or timestamp; also `item["owner_id"]`, and a local the iteration binds from such a field of something the item led to, `task = get_task(c["task_id"]); project_id = task["project_id"]`): one query per referenced row or distinct value. So is a lookup that fills a local on the first pass (`event = None` before the loop, `if not event: event = load(...)` in it, and the local bound nowhere else in the loop): once per loop. A loop over the application\'s configured lists (`settings.<field>` of a module-level settings object, `self.config["a"]["b"]`, `current_app.config[...]`) is a fixed cost. A helper branch under a class-level switch (`if Store.use_db:` with `use_db = True` in the class body) is not followed from a loop whose context turned the switch off on every run before it (the function, or its class\'s `__init__`, directly or through calls that always run: `disable_db()`, `with NoDb():`). A loop over rows fetched with a small limit the code states (`limit=8`, `.limit(5)` on the outer chain, at most ten) is a fixed cost. A statement built in one method and run by a generic executor it is handed to (`return await self._first(select(X)...)`) is that method\'s query. Advisory when the call is made only in an `except` handler (written there, or a helper called there): it runs once per item whose work failed, not once per item. Advisory too over data shipped with the code: a loop over what `json.load`/`json.loads`/`yaml.safe_load`/`tomllib.load` parse from a file whose path is built from `__file__` or a package resource (seed data loaded for a new tenant), directly or through the names the path uses: as many queries as the file has entries.',
    why: 'Each iteration pays a database round trip. Latency grows with the row count (100 rows, 101 queries), the connection is held for the whole loop, and the database does the same lookup N times instead of one indexed batch.',
    bad: "from sqlalchemy import select\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\n\nasync def owner_emails(session: AsyncSession, jobs):\n    emails = []\n    for job in jobs:\n        owner = await session.scalar(select(User).where(User.id == job.owner_id))\n        emails.append(owner.email)\n    return emails\n",
    good: "from sqlalchemy import select\nfrom sqlalchemy.ext.asyncio import AsyncSession\n\n\nasync def owner_emails(session: AsyncSession, jobs):\n    ids = {j.owner_id for j in jobs}\n    owners = (await session.scalars(select(User).where(User.id.in_(ids)))).all()\n    by_id = {u.id: u for u in owners}\n    return [by_id[j.owner_id].email for j in jobs]\n",
    fix: 'load all rows in one query (`where(Model.id.in_(ids))`, or `selectinload(...)` on the parent query)',
    references: [
      'https://docs.sqlalchemy.org/en/20/orm/queryguide/relationships.html#select-in-loading',
      'https://docs.sqlalchemy.org/en/20/core/sqlelement.html#sqlalchemy.sql.expression.ColumnOperators.in_',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    // A loop over a parameter or another function's result is decided in the repo phase.
    for (const r of fileReadReports(ctx.model)) {
      if (r.deferred) continue;
      ctx.report({ node: r.site.call.node, message: r.message, severity: r.severity, ...(r.advisory ? { advisory: r.advisory } : {}) });
    }
  },
  checkRepo(ctx: RepoRuleContext): void {
    reportHelperSites(
      ctx,
      QUERY_EFFECT,
      (callee, what) => `N+1: \`${callee}\` runs a query (\`${what}\`) once per loop iteration`,
      undefined,
      (callee, what) => `\`${callee}\` looks a row up by primary key (\`${what}\`) once per loop iteration: ${IDENTITY_MAP_NOTE}`,
      true,
    );
    reportRowSites(ctx, (owner, name, property, what) =>
      `N+1: \`${name}\` on each row of the loop runs a query about that row (${property ? 'property' : 'method'} \`${owner}\`: \`${what}\`): one query per item`);
    reportInvariantHelperSites(ctx, (callee, what) =>
      `\`${callee}\` runs the same query (\`${what}\`) on every iteration of the loop: nothing it is given changes in the loop; call it once before the loop`);
    reportLibrarySites(ctx, (callee, owner, lookupWrite) => lookupWrite
      ? `\`${callee}\` (the repository library's, inherited by \`${owner}\`) looks the row up with a SELECT and flushes it, once per loop iteration: a per-item workflow of several round trips`
      : `N+1: \`${callee}\` (the repository library's, inherited by \`${owner}\`) runs a query once per loop iteration`);
    reportInvariantPropertyReads(ctx, (getter, text, what) =>
      `\`${text}\` runs a query on every read (property \`${getter}\`: \`${what}\`) and is read on every iteration of the loop, on the same object: the query runs once per item; read it once before the loop (and keep that copy up to date if the loop adds to it)`);
    reportParamRowCalls(ctx, (text, method, what, helper, caller, where) =>
      `N+1: \`${text}\` runs a query about its row (method \`${method}\`: \`${what}\`), and \`${helper}\` is called once per item of a loop with that row (\`${caller}\`, ${where}): one query per item`);
    reportDeferredLoopFindings(ctx);
  },
};
