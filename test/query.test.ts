/**
 * The query family beyond the inline marks: severities, chains and messages of the findings
 * in fixtures/query and the sample app.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { scan } from '../dist/src/engine/scan.js';
import { resolveConfig } from '../dist/src/config/config.js';
import { ruleByCode } from '../dist/src/rules/registry.js';
import { sqlKind, selectsStar } from '../dist/src/rules/python/query/rawSql.js';
import type { Finding } from '../src/types.js';
import { chainNames } from './helpers/result.js';

const FIXTURES = path.resolve(__dirname, '../fixtures');
let query: Finding[] = [];
let sample: Finding[] = [];
let staged: Finding[] = [];

beforeAll(async () => {
  const config = resolveConfig({ report: null, log: null, cache: false, jobs: 2, select: ['PA1'] }, {}, null);
  query = (await scan(path.join(FIXTURES, 'query'), config)).result.findings;
  sample = (await scan(path.join(FIXTURES, 'sample-app'), config)).result.findings;
  staged = (await scan(path.join(FIXTURES, 'query-staged'), config)).result.findings;
}, 60_000);

const lineOf = (file: string, text: string) => fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes(text)) + 1;

const at = (list: Finding[], file: string, line: number, code: string) =>
  list.find((f) => f.path === file && f.line === line && f.code === code);

/** The findings of the rules `select` names on one fixture project, scanned in process. */
async function fixtureFindings(dir: string, select: string[]): Promise<Finding[]> {
  const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select }, {}, null);
  return (await scan(path.join(FIXTURES, dir), config, { inProcessBytes: Infinity })).result.findings;
}

describe('PA107 query_in_loop', () => {
  it('is advisory when the query runs only in an except handler, and says why', () => {
    const file = path.join(FIXTURES, 'query/error_paths.py');
    for (const text of ['owner = db.scalars(select(Author)).where', 'stored = load_book(db, book.id)  # advisory']) {
      const line = lineOf(file, text === 'owner = db.scalars(select(Author)).where' ? 'where(Author.id == book.author_id)).first()  # advisory' : text);
      const f = at(query, 'error_paths.py', line, 'PA107')!;
      expect(f.advisory).toBe(true);
      expect(f.downgrades.map((d) => d.evidence).join(' ')).toMatch(/only in an `except` handler: once per item whose work failed/);
    }
  });
  it('reports a helper chain from the loop to the query', () => {
    const f = at(query, 'PA107.py', lineOf(path.join(FIXTURES, 'query/PA107.py'), 'repo.author_name(session, book.author_id)'), 'PA107')!;
    expect(chainNames(f.chain)).toEqual(['through_helpers', 'author_name', 'get_author', 'session.get(Author)']);
    // A primary-key lookup by each item's foreign key fetches rows nothing loaded: the classic N+1.
    expect(f.severity).toBe('high');
    expect(f.advisory).toBe(false);
    expect(f.message).toMatch(/^N\+1: `author_name` runs a query \(`session.get\(Author\)`\)/);
    const select = at(query, 'PA107.py', lineOf(path.join(FIXTURES, 'query/PA107.py'), 'return [load_book(db, i) for i in ids]'), 'PA107')!;
    expect(chainNames(select.chain)).toEqual(['sync_helper', 'load_book', 'db.scalars(select Book)']);
    // Over a helper's parameter: how N grows is not known here.
    expect(select.severity).toBe('medium');
  });

  it('a primary-key lookup by ids is advisory and says why; by each item\'s foreign key it is the N+1', () => {
    const line = (text: string) => lineOf(path.join(FIXTURES, 'query/PA107.py'), text);
    const byId = at(query, 'PA107.py', line('found.append(db.get(Book, book_id))'), 'PA107')!;
    expect(byId.advisory).toBe(true);
    expect(byId.downgrades).toEqual([{ rule: 'library_semantics', from: 'low', to: 'advisory', evidence: expect.stringMatching(/identity map answers it without SQL/) }]);
    expect(byId.message).toMatch(/^primary-key lookup `db.get\(Book\)` runs once per item of the `while` loop: an identity-map lookup/);
    const byForeignKey = at(query, 'PA107.py', line('author = await session.get(Author, book.author_id)'), 'PA107')!;
    expect(byForeignKey.severity).toBe('high');
    expect(byForeignKey.advisory).toBe(false);
    expect(byForeignKey.message).toMatch(/^N\+1: query `session.get\(Author\)` runs once per item of the loop over `books`/);
  });

  it('a primary-key lookup per id a request sent is a SELECT each (low), unless the function loaded rows first', () => {
    const line = (text: string) => lineOf(path.join(FIXTURES, 'query/loop_domain.py'), text);
    const direct = at(query, 'loop_domain.py', line('return [db.get(Author, i) for i in author_ids]  # expect'), 'PA107')!;
    expect(direct).toMatchObject({ severity: 'low', advisory: false });
    expect(direct.message).toMatch(/the ids come from the request and nothing is loaded before the loop/);
    const helper = at(query, 'loop_domain.py', line('return [author_by_pk(db, i) for i in author_ids]  # expect'), 'PA107')!;
    expect(helper).toMatchObject({ severity: 'low', advisory: false });
    expect(helper.message).toMatch(/^N\+1: `author_by_pk` runs a query/);
    expect(at(query, 'loop_domain.py', line('return [author_by_pk(db, i) for i in author_ids]  # advisory'), 'PA107')!.advisory).toBe(true);
  });

  it('rows selected by ids a parameter holds are as many as what the callers pass', () => {
    const file = path.join(FIXTURES, 'query/loop_domain.py');
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const after = (def: string) => lines.findIndex((l, i) => i >= lineOf(file, def) && l.includes('return [author_of(db, b) for b in books]')) + 1;
    // The handler hands on the ids the client posted: bounded by the request.
    expect(at(query, 'loop_domain.py', after('def authors_of_books('), 'PA107')).toMatchObject({ severity: 'low', advisory: false });
    // Ids of other rows: as many as the table holds.
    expect(at(query, 'loop_domain.py', after('def authors_of_recent_books('), 'PA107')).toMatchObject({ severity: 'high' });
  });

  it('reads a Pyramid view\'s context as a loaded row and its request as what the client sent', () => {
    const file = path.join(FIXTURES, 'query/pyramid_views.py');
    expect(at(query, 'pyramid_views.py', lineOf(file, 'for b in author.books]'), 'PA107')).toMatchObject({ severity: 'high' });
    const posted = at(query, 'pyramid_views.py', lineOf(file, 'request.json_body["isbns"]'), 'PA107')!;
    expect(posted).toMatchObject({ severity: 'low', advisory: false });
    expect(posted.message).toMatch(/the loop runs over what the request sent/);
  });

  it('a helper that commits makes its loop a per-item workflow (low), also through a lookup by name', async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA107'] }, {}, null);
    const { result } = await scan(path.join(FIXTURES, 'transaction/action-registry'), config);
    const file = path.join(FIXTURES, 'transaction/action-registry/app/actions/tickets.py');
    const f = result.findings.find((x) => x.path === 'app/actions/tickets.py' && x.line === lineOf(file, '_handler("ticket_restamp")(ctx, row)'));
    expect(f).toMatchObject({ code: 'PA107', severity: 'low' });
    expect(f!.message).toMatch(/each iteration also writes \(`ticket_restamp: session.commit`\)/);
  });

  it('is low when each iteration also writes on its own: a per-item workflow', () => {
    const line = (text: string) => lineOf(path.join(FIXTURES, 'query/PA107.py'), text);
    const direct = at(query, 'PA107.py', line('Author.email == row["email"]'), 'PA107')!;
    expect(direct.severity).toBe('low');
    expect(direct.message).toMatch(/each iteration also writes \(`db.commit`\)/);
    const helper = at(query, 'PA107.py', line('mark_published(db, i)'), 'PA107')!;
    expect(helper.severity).toBe('low');
    expect(helper.message).toMatch(/each iteration also writes \(`mark_published: db.flush`\)/);
    const sibling = at(query, 'PA107.py', line('uncached_helper(db, book.author_id)'), 'PA107')!;
    expect(sibling.severity).toBe('low');
    expect(sibling.message).toMatch(/each iteration also writes \(`add_copy: db.flush`\)/);
    // The same helper shape without the flush: a lookup by each item's foreign key, the loop's
    // severity (`medium`: the loop is over a parameter, its N unknown).
    expect(at(query, 'PA107.py', line('[uncached_helper(db, b.author_id)'), 'PA107')!.severity).toBe('medium');
  });

  it('is low when each iteration also calls outside the database; an in-process signal is no such call', () => {
    const line = (text: string) => lineOf(path.join(FIXTURES, 'query/PA107.py'), text);
    const mailed = at(query, 'PA107.py', line('mail_new_titles(db, a.id)'), 'PA107')!;
    expect(mailed.severity).toBe('low');
    expect(mailed.message).toMatch(/each iteration also calls outside the database \(`mail_new_titles: READER_MAILER.send_message`\)/);
    // The project's own function named like sending is judged by its body: it only appends.
    expect(at(query, 'PA107.py', line('tally_author(db, a.id)  # expect'), 'PA107')!.severity).toBe('high');
    // An exception class of an integration module built and raised is no call outside.
    expect(at(query, 'PA107.py', line('check_author_payable(db, a.id)'), 'PA107')!.severity).toBe('high');
    const signalled = at(query, 'PA107.py', line('announce_author(db, a.id)'), 'PA107')!;
    expect(signalled.severity).toBe('high');
    expect(signalled.message).not.toMatch(/per-item workflow/);
  });

  it('reports a read that runs unchanged on every iteration, directly or in a helper', () => {
    const line = (text: string) => lineOf(path.join(FIXTURES, 'query/PA107.py'), text);
    const direct = at(query, 'PA107.py', line('settings = db.scalars'), 'PA107')!;
    expect(direct).toMatchObject({ severity: 'medium' });
    expect(direct.message).toMatch(/runs unchanged on every iteration of the loop over `books`/);
    const helper = at(query, 'PA107.py', line('by {default_author_name(db)}'), 'PA107')!;
    expect(helper.message).toMatch(/`default_author_name` runs the same query/);
    expect(chainNames(helper.chain)).toEqual(['sign_books', 'default_author_name', 'db.scalars(select Author)']);
    const workflow = at(query, 'PA107.py', line('print(default_author_name(db))'), 'PA107')!;
    expect(workflow.severity).toBe('low');
    expect(workflow.message).toMatch(/each iteration also writes \(`add_copy: db.flush`\)/);
  });

  it('a function handed to a callee that calls it per item runs its query per item', () => {
    const file = path.join(FIXTURES, 'query/PA107.py');
    const f = at(query, 'PA107.py', lineOf(file, 'listing = render_all('), 'PA107')!;
    expect(f.message).toMatch(/`title_with_author` runs a query \(`db\.get\(Author\)`\) once per loop iteration \(`render_all` calls it for each item\)/);
    expect(chainNames(f.chain)).toEqual(['catalogue', 'title_with_author', 'db.get(Author)']);
    // Called once by `render_first`: nothing per item.
    expect(at(query, 'PA107.py', lineOf(file, 'render_first(books, serializer='), 'PA107')).toBeUndefined();
  });

  it('a function handed bare to a method of a project object that calls it per row runs per row', () => {
    const file = path.join(FIXTURES, 'query/pager_callbacks.py');
    const f = at(query, 'pager_callbacks.py', lineOf(file, 'return page.map(with_author)'), 'PA107')!;
    expect(f.message).toMatch(/`with_author` runs a query .* once per loop iteration \(`Page\.map` calls it for each item\)/);
    expect(at(query, 'pager_callbacks.py', lineOf(file, 'return page.first(with_author)'), 'PA107')).toBeUndefined();
    // A function handing itself on recurses (the items that waited on this one, settled the same way).
    expect(at(query, 'pager_callbacks.py', lineOf(file, 'queue.release(settle, book_id)'), 'PA107')).toBeUndefined();
  });

  it('finds the N+1 of the sample app through the repositories module', () => {
    const f = at(sample, 'app/api/routes.py', 39, 'PA107')!;
    expect(chainNames(f.chain)).toEqual(['list_jobs_with_owners', 'get_user', 'session.get(User)']);
    expect(f.message).toContain('once per loop iteration');
  });
});

describe('PA102 n_update_delete_loop', () => {
  it('is high on an unbounded loop and silent on a literal of at most 10 items', () => {
    expect(at(query, 'PA102.py', 26, 'PA102')!.severity).toBe('high');
    expect(at(query, 'PA102.py', 43, 'PA102')).toBeUndefined();
  });

  it('takes its severity from how the loop\'s N grows, as PA107 does', () => {
    const file = path.join(FIXTURES, 'query/PA102.py');
    // Over what a handler's request sent: N is bounded by one request.
    const posted = at(query, 'PA102.py', 20, 'PA102')!;
    expect(posted.severity).toBe('low');
    expect(posted.message).toContain('the loop runs over what the request sent');
    // Over a parameter of a function nothing in the repo calls: N is not known.
    expect(at(query, 'PA102.py', 35, 'PA102')!.severity).toBe('medium');
    // Over a helper's parameter, what the callers pass decides: stored rows, or one request's input.
    expect(at(query, 'PA102.py', lineOf(file, 'db.execute(delete(Book).where(Book.id == book_id))  # expect'), 'PA102')!.severity).toBe('high');
    const restock = at(query, 'PA102.py', lineOf(file, 'values(stock=10))  # expect'), 'PA102')!;
    expect(restock.severity).toBe('low');
    expect(restock.message).toContain('the loop runs over what the request sent');
  });

  it('reports the same value set on every loaded row (one UPDATE per row at flush), medium', () => {
    const file = path.join(FIXTURES, 'query/PA102.py');
    const f = at(query, 'PA102.py', lineOf(file, 'book.archived = True  # expect'), 'PA102')!;
    expect(f.severity).toBe('medium');
    expect(f.message).toMatch(/one `update\(Book\)\.where\(\.\.\.\)\.values\(archived=\.\.\.\)`/);
    expect(at(query, 'PA102.py', lineOf(file, 'book.position = next(order)'), 'PA102')).toBeUndefined();
  });

  it('reports writes reached through helpers with the chain', () => {
    expect(chainNames(at(query, 'PA102.py', 50, 'PA102')!.chain)).toEqual(['through_helpers', 'archive_book', 'session.execute(update Book)']);
  });

  it('is low over the children of one loaded row: N is its fan-out', () => {
    const file = path.join(FIXTURES, 'query/PA102.py');
    const f = at(query, 'PA102.py', lineOf(file, 'db.execute(delete(Book).where(Book.id == book.id))  # expect'), 'PA102')!;
    expect(f.severity).toBe('low');
    expect(f.message).toMatch(/the loop is over the children of one `author`, so N is that row's fan-out$/);
  });
});

describe('PA105 missing_bulk_ops', () => {
  it('is medium', () => {
    expect(at(query, 'PA105.py', lineOf(path.join(FIXTURES, 'query/PA105.py'), 'session.add(book)  # expect: PA105'), 'PA105')!.severity).toBe('medium');
  });
});

describe('PA104 over_fetching', () => {
  it('is medium for a model over 15 columns in a GET handler, low otherwise', () => {
    expect(at(query, 'PA104.py', 17, 'PA104')!.severity).toBe('medium');
    expect(at(query, 'PA104.py', 22, 'PA104')!.severity).toBe('low');
    expect(at(query, 'PA104.py', 30, 'PA104')!.severity).toBe('low');
    expect(at(sample, 'app/api/routes.py', 162, 'PA104')!.severity).toBe('medium');
  });

  it('names the attributes read', () => {
    expect(at(query, 'PA104.py', 17, 'PA104')!.message).toContain('`id`, `title`');
  });
});

describe('PA108 lazy_load_in_loop and PA109 count_via_len', () => {
  it('report at the access and at the len() call', () => {
    expect(at(sample, 'app/api/routes.py', 197, 'PA108')!.column).toBe(38);
    expect(at(sample, 'app/api/routes.py', 46, 'PA109')!.severity).toBe('medium');
  });

  it('PA109: a collection loaded with every row only for len(), typed through the repository library or the query', () => {
    const file = path.join(FIXTURES, 'query/PA109.py');
    const board = at(query, 'PA109.py', lineOf(file, '"awards": len(a.awards) if a.awards else 0'), 'PA109')!;
    // One batched load for the page: wasted, but bounded by the rows.
    expect(board.severity).toBe('low');
    // Reported at the len() call, not at the list_and_count() that gave the rows.
    expect(board.column).toBe(fs.readFileSync(file, 'utf8').split('\n')[board.line - 1]!.indexOf('len(a.awards)') + 1);
    expect(board.message).toBe('`len(a.awards)` loads every `awards` row of every `Author` row (`lazy="selectin"` on the relationship) only to count them: a count per Author (a `func.count()` subquery or `column_property`) returns one number instead');
    const optioned = at(query, 'PA109.py', lineOf(file, 'sizes.append(len(author.books))'), 'PA109')!;
    expect(optioned.message).toContain('(an eager loader option on the query)');
  });

  it('PA109: len() of the list a helper fetches, followed into the helper; bounded fetches are left alone', () => {
    const file = path.join(FIXTURES, 'query/PA109.py');
    const label = at(query, 'PA109.py', lineOf(file, 'return f"{len(books_by(db, author_id))} books"'), 'PA109')!;
    expect(label).toMatchObject({ severity: 'medium', advisory: false });
    // The query was built in steps (`q = q.filter(...)`): the helper's return still counts as a fetch.
    expect(label.message).toBe('`len(books_by(...))` fetches every row `books_by` returns (`q.all()` in PA109.py) only to count them: a COUNT query returns the number');
    const pinned = at(query, 'PA109.py', lineOf(file, 'return len(book_by_id(db, book_id)) > 0'), 'PA109')!;
    expect(pinned.advisory).toBe(true);
    expect(at(query, 'PA109.py', lineOf(file, 'return len(newest(db, 10))'), 'PA109')).toBeUndefined();
  });
});

describe('PA106 wrong_caching_scope', () => {
  it('is high when the refill query joins, medium otherwise', () => {
    expect(at(query, 'PA106.py', 26, 'PA106')!.severity).toBe('medium');
    expect(at(query, 'PA106.py', 40, 'PA106')!.severity).toBe('high');
    expect(at(sample, 'app/auth.py', 31, 'PA106')!.severity).toBe('high');
  });
});

describe('PA101 redundant_fetch', () => {
  let library: Finding[] = [];
  beforeAll(async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA101'] }, {}, null);
    library = (await scan(path.join(FIXTURES, 'query-library'), config)).result.findings;
  }, 60_000);

  it('follows the loader through a helper and names the callee in the chain', () => {
    const f = at(sample, 'app/api/routes.py', 72, 'PA101')!;
    expect(chainNames(f.chain)).toEqual(['cancel_job', 'mark_cancelled', 'load Job']);
  });

  it('is low once per call, in a handler or not: a fixed extra load', () => {
    expect(at(sample, 'app/api/routes.py', 72, 'PA101')!.severity).toBe('low');
    expect(at(query, 'PA101.py', 19, 'PA101')!.severity).toBe('low');
    expect(at(query, 'PA101.py', 25, 'PA101')!.severity).toBe('low');
  });

  it('hands a library row back by id: per item of a loop it grows with the rows', () => {
    const file = path.join(FIXTURES, 'query-library/app/renewals.py');
    const inLoop = at(library, 'app/renewals.py', lineOf(file, 'item_id=sub.id)  # expect'), 'PA101')!;
    expect(inLoop.severity).toBe('medium');
    expect(inLoop.message).toMatch(/twice: the service, then its repository.*every iteration/);
    const once = at(library, 'app/renewals.py', lineOf(file, 'delete(sub.id)'), 'PA101')!;
    expect(once.severity).toBe('low');
    expect(once.message).toContain('by `subscriptions.get_one()`');
  });
});

describe('PA103 unnecessary_resolve', () => {
  it('reports the sample app\'s create_job call with the chain and the attribute', () => {
    const f = at(sample, 'app/api/routes.py', 58, 'PA103')!;
    expect(f.severity).toBe('medium');
    expect(chainNames(f.chain)).toEqual(['submit_job', 'create_job', 'load User']);
    expect(f.message).toContain('`.tenant_id`');
    expect(f.message).toContain('`principal.tenant_id` is already in hand');
  });

  it('follows self-calls with the receiver left out of the positions', () => {
    expect(chainNames(at(query, 'qhelpers/accounts.py', 83, 'PA103')!.chain)).toEqual(['Billing.invoice', 'Billing._tenant', 'load Member']);
  });
});

describe('raw SQL lexer', () => {
  it('classifies statements', () => {
    expect(sqlKind('SELECT 1')).toBe('read');
    expect(sqlKind('  -- c\n(SELECT * FROM t)')).toBe('read');
    expect(sqlKind('update t set a = 1')).toBe('write');
    expect(sqlKind('DELETE FROM t')).toBe('write');
    expect(sqlKind('INSERT INTO t VALUES (1)')).toBe('insert');
    expect(sqlKind('WITH x AS (DELETE FROM t RETURNING id) SELECT * FROM x')).toBe('write');
    expect(sqlKind("SELECT 'UPDATE' FROM t")).toBe('read');
    expect(sqlKind('CREATE TABLE t (a int)')).toBe('other');
  });

  it('finds a top-level star only', () => {
    expect(selectsStar('SELECT * FROM t')).toBe(true);
    expect(selectsStar('select t.* from t')).toBe(true);
    expect(selectsStar('SELECT a, * FROM t')).toBe(true);
    expect(selectsStar('SELECT DISTINCT * FROM t')).toBe(true);
    expect(selectsStar('SELECT count(*) FROM t')).toBe(false);
    expect(selectsStar('SELECT a FROM t WHERE EXISTS (SELECT * FROM u)')).toBe(false);
    expect(selectsStar('SELECT a * b FROM t')).toBe(false);
    expect(selectsStar("SELECT '*' FROM t")).toBe(false);
  });
});

describe('PA107 severity by how the loop\'s N grows', () => {
  const file = path.join(FIXTURES, 'query/loop_domain.py');
  const at107 = (line: number) => at(query, 'loop_domain.py', line, 'PA107')!;
  const line = (text: string) => lineOf(file, text);
  it('is high over rows that grow with the data: a query\'s rows, a relationship, a repo function\'s rows', () => {
    for (const text of ['author_of(db, b).name for b in books', 'for b in author.books]', 'for b in every_book(db)]', 'for b in q.all()]', 'for b in me.books]']) {
      expect(at107(line(text)).severity, text).toBe('high');
    }
    // A handler parameter typed with an ORM model is a row the framework injected, not input.
    const injected = lineOf(file, "def my_awarded_co_authors") + 3;
    expect(at107(injected).severity).toBe('high');
    expect(at107(line('Book.title == t)).first() for t in titles]')).severity).toBe('low');
  });
  it('is low over what the client sent in this request, and says so', () => {
    for (const text of ['for i in book_ids]', 'Book.id == int(raw)', 'Book.isbn == item["isbn"]', 'for name in value]', 'for n in self._names}']) {
      const f = at107(line(text));
      expect(f.severity, text).toBe('low');
      expect(f.message, text).toMatch(/the loop runs over what the request sent/);
    }
    // Rows selected by the posted ids (`in_(book_ids)`) are as many as the ids.
    expect(at107(line('Book.id.in_(book_ids)') + 1).severity).toBe('low');
    // A method of a service object the handlers make with their session: their lists decide.
    expect(at107(line('Author.name == n)).first() for n in names]')).severity).toBe('low');
    // Validated or parsed, the request's data is still what the client sent.
    expect(at107(line('for n in data["names"]]')).severity).toBe('low');
    expect(at107(line('for n in body.names]')).severity).toBe('low');
  });
  it('over a helper\'s parameter, is what its callers pass: high when one passes rows, low when all pass input', () => {
    expect(at107(line('# One caller passes rows of a query: high.') + 1).severity).toBe('high');
    // A direct query in the loop too: the file cannot tell, the repo phase reports it.
    const posted = at107(line('# Every caller passes what the client sent: low.') + 1);
    expect(posted.severity).toBe('low');
    expect(posted.message).toMatch(/^N\+1: query `db.scalars\(select Book\)` runs once per item of the loop over `isbns`; the loop runs over what the request sent/);
  });
  it('over a helper\'s parameter that every caller fills with a few items it writes out: advisory, not high', () => {
    const fixed = at107(line('# Every caller writes out the one or two ids it passes') + 1);
    expect(fixed.advisory).toBe(true);
    expect(fixed.message).toMatch(/every caller passes a handful of items it writes out/);
    // One caller passing rows is enough for the claim that N grows with the data.
    const mixed = at107(line('# One caller writes out its one id, another hands on rows') + 1);
    expect(mixed.advisory).toBe(false);
    expect(mixed.severity).toBe('high');
    // One caller seen: low, not advisory (others may call it in ways the graph does not show).
    const one = at107(line('# Its one caller here writes out one id') + 1);
    expect(one).toMatchObject({ advisory: false, severity: 'low' });
    expect(one.message).toMatch(/its one caller in the repo passes a handful of items/);
    // A literal grown with rows before the call, or a nest whose inner loop is not known: no handful.
    for (const text of ['# Every caller starts from a literal, but one grows it', '# The callers pass one shelf each']) {
      const f = at107(line(text) + (text.includes('shelf') ? 4 : 1));
      expect(f.advisory, text).toBe(false);
      expect(f.severity, text).toBe('medium');
    }
    // Request input from one handler, a literal from another: bounded by one request.
    const posted = at107(line('# One handler passes what the client sent, another a literal') + 1);
    expect(posted).toMatchObject({ advisory: false, severity: 'low' });
    expect(posted.message).toMatch(/the loop runs over what the request sent/);
    // Through a method of a service the handler gets injected (typed parameter): what it passes counts too.
    const service = at107(line('# The handler hands its posted list to the service') + 1);
    expect(service).toMatchObject({ advisory: false, severity: 'low' });
    expect(service.message).toMatch(/the loop runs over what the request sent/);
  });
  it('over rows another method keeps on `self`: as that method got them', () => {
    expect(at107(line('# Set by the base class from what the request sent: low.') + 1).severity).toBe('low');
    expect(at107(line('# Every book of the table: high.') + 1).severity).toBe('high');
  });
  it('over a keyword-only parameter or its attribute: what the callers pass by keyword decides', () => {
    // The posted body handed on by keyword: its list is what the client sent.
    const posted = at107(line('for t in shelf_in.titles]'));
    expect(posted.severity).toBe('low');
    expect(posted.message).toMatch(/the loop runs over what the request sent/);
    // A loaded row's collection stays rows; a query's rows passed by keyword are rows.
    expect(at107(line('# A caller passes a loaded row') + 1).severity).toBe('high');
    expect(at107(line('# The only caller passes the rows of a query by keyword: high.') + 1).severity).toBe('high');
    // A loaded row's collection handed on from the caller's own parameter; rows by keyword to the first parameter.
    expect(at107(line('# The only caller hands on a loaded row\'s collection: rows, high.') + 1).severity).toBe('high');
    expect(at107(line('# The only caller passes a query\'s rows by keyword to the first parameter: high.') + 1).severity).toBe('high');
    // Typed with a schema class: what the callers send, also when one builds it itself; a page of rows stays high.
    expect(at107(line('for t in tags_in.tags]')).severity).toBe('low');
    expect(at107(line('for b in page.items]')).severity).toBe('high');
    expect(at107(line('for b in report.books]')).severity).toBe('high');
    // `reversed(range(1, 4))` is three iterations the code states: no N+1.
    expect(at(query, 'loop_domain.py', line('Book.quarter == q'), 'PA107')).toBeUndefined();
  });
  it('is medium when the loop\'s N is not known here: a helper\'s parameter, a `while` loop', () => {
    expect(at107(line('# A helper\'s parameter') + 1).severity).toBe('medium');
    expect(at107(line('out.append(db.scalars')).severity).toBe('medium');
  });
});

describe('PA107 flag guards', () => {
  it('a branch behind a flag the call leaves at its falsy default is not reached from that call', () => {
    const file = path.join(FIXTURES, 'query/flag_guards.py');
    const at107 = (text: string) => at(query, 'flag_guards.py', lineOf(file, text), 'PA107')!;
    for (const text of ['find_author(db, k) for k', 'k, by_name=False, with_books=None', 'author_by_id(db, k) for k']) {
      const f = at107(text);
      expect(f.severity, text).toBe('low');
      expect(chainNames(f.chain).at(-1), text).toBe('db.get(Author)');
    }
    expect(at(query, 'flag_guards.py', lineOf(file, 'named_author(db, k) for k'), 'PA107')).toBeUndefined();
    // Reached (the loops are over parameters: `medium`, their N unknown).
    for (const text of ['by_name=True', 'find_author(db, k, True)', 'with_books=1', 'by_name=by_name', 'k, **options', 'allow_names=True']) {
      expect(at107(text).severity, text).toBe('medium');
    }
    expect(chainNames(at107('with_books=1').chain).at(-1)).toBe('db.scalars(select Book)');
    // A flush behind a flag the loop leaves off does not make the iteration a per-item workflow.
    expect(at107('touch_author(db, i) for i').severity).toBe('medium');
    expect(at107('touch_author(db, i, flush=True)').severity).toBe('low');
    // A flag the function rebinds is not the caller's to turn off.
    expect(at107('find_author_configured(db, k) for k').severity).toBe('medium');
  });
});

describe('PA108 one-row relationships', () => {
  it('a many-to-one is medium (identity map); the one-to-one side without the key is the loop\'s severity', () => {
    const file = path.join(FIXTURES, 'query/PA108_tree.py');
    const reverse = at(query, 'PA108_tree.py', lineOf(file, 'return [f.badge for f in folders]'), 'PA108')!;
    expect(reverse.severity).toBe('high');
    expect(reverse.message).not.toMatch(/many-to-one/);
    const owner = at(query, 'PA108_tree.py', lineOf(file, 'owners = [f.owner.name for f in folders]'), 'PA108')!;
    expect(owner.severity).toBe('medium');
    expect(owner.message).toMatch(/a many-to-one: one SELECT per distinct `Author`/);
  });
});

describe('PA108 load_only and branch-only key filters', () => {
  it('a column a root `load_only(...)` leaves out is a per-row load; MissingGreenlet under AsyncSession', () => {
    const file = path.join(FIXTURES, 'query/PA108_load_only.py');
    const sync = at(query, 'PA108_load_only.py', lineOf(file, 'return sum(v.tonnage for v in vessels)'), 'PA108')!;
    expect(sync.severity).toBe('high');
    expect(sync.message).toMatch(/`load_only\(\.\.\.\)` does not name it/);
    const asyncRead = at(query, 'PA108_load_only.py', lineOf(file, 'return [v.logbook for v in rows]'), 'PA108')!;
    expect(asyncRead.severity).toBe('high');
    expect(asyncRead.message).toMatch(/MissingGreenlet/);
  });
  it('a column the options chained on a many-to-one\'s loader leave out is medium: one load per related row', () => {
    const file = path.join(FIXTURES, 'query/PA108_load_only.py');
    const f = at(query, 'PA108_load_only.py', lineOf(file, 'return [v.vessel.tonnage for v in voyages]'), 'PA108')!;
    expect(f.severity).toBe('medium');
    expect(f.message).toMatch(/`joinedload\(Voyage\.vessel\)` chains a `load_only\(\.\.\.\)` that does not name it/);
  });
  it('a many-to-one pinned by a key filter added in a branch keeps its severity and says why', () => {
    const file = path.join(FIXTURES, 'query/PA108_branch_pin.py');
    const f = at(query, 'PA108_branch_pin.py', lineOf(file, 'return [c.depot.city for c in db.scalars(stmt).all()]  # expect'), 'PA108')!;
    expect(f.severity).toBe('medium');
    expect(f.message).toMatch(/runs only in a branch/);
  });
});

describe('PA107 methods on rows', () => {
  it('a model method or property that queries about its own row, called on each loop item, is an N+1', () => {
    const file = path.join(FIXTURES, 'query/row_methods.py');
    // The loop's query says the rows are Authors: the loop's severity.
    const f = at(query, 'row_methods.py', lineOf(file, 'a.book_count()) for a in authors'), 'PA107')!;
    expect(f.severity).toBe('high');
    // A parameter's rows: the method's name decides, one severity lower.
    expect(at(query, 'row_methods.py', lineOf(file, 'if author.book_count() > 10'), 'PA107')!.severity).toBe('medium');
    expect(f.message).toMatch(/`book_count\(\)` on each row of the loop runs a query about that row \(method `Author.book_count`/);
    expect(chainNames(f.chain)).toEqual(['author_table', 'Author.book_count', 'session.scalar(select)']);
    // Arguments the loop never changes: the row is what differs; a method that writes: a workflow.
    const english = at(query, 'row_methods.py', lineOf(file, 'a.titles_in("en")'), 'PA107')!;
    expect(english.message).toMatch(/`titles_in\(\)` on each row of the loop runs a query about that row/);
    expect(at(query, 'row_methods.py', lineOf(file, 'author.archive_books(reason)'), 'PA107')!).toMatchObject({ severity: 'low' });
    expect(at(query, 'row_methods.py', lineOf(file, 'author.archive_books(reason)'), 'PA107')!.message).toMatch(/each iteration also writes \(`Author.archive_books: /);
    expect(query.filter((x) => x.path === 'row_methods.py' && x.code === 'PA107').map((x) => x.line)).toHaveLength(4);
  });
});

describe('names a loop rebinds', () => {
  it('a name unpacked from the item in the loop body changes per iteration: an N+1, not a query to hoist', () => {
    const file = path.join(FIXTURES, 'query/PA107.py');
    const f = at(query, 'PA107.py', lineOf(file, 'Author.id == author_id))  # expect'), 'PA107')!;
    expect(f.message).toMatch(/^N\+1: /);
    expect(f.message).not.toMatch(/unchanged/);
    const walrus = at(query, 'PA107.py', lineOf(file, 'Author.id == author_id)))  # expect'), 'PA107')!;
    expect(walrus.message).toMatch(/^N\+1: /);
  });
});

describe('metadata', () => {
  it('every query rule documents itself', () => {
    for (const code of ['PA101', 'PA102', 'PA103', 'PA104', 'PA105', 'PA106', 'PA107', 'PA108', 'PA109']) {
      const meta = ruleByCode(code)!.meta;
      expect(meta.family).toBe('query');
      expect(meta.bad.length).toBeGreaterThan(10);
      expect(meta.references.length).toBeGreaterThan(0);
    }
  });
});

describe('PA108 lazy_load_in_loop', () => {
  it('a collection is high; a many-to-one is medium, served from the identity map for rows already loaded', () => {
    const file = path.join(FIXTURES, 'query/PA108.py');
    const collection = at(query, 'PA108.py', lineOf(file, 'for b in author.books'), 'PA108') ?? query.find((f) => f.path === 'PA108.py' && f.code === 'PA108' && /Author\.books/.test(f.message))!;
    expect(collection.severity).toBe('high');
    const scalar = query.find((f) => f.path === 'PA108.py' && f.code === 'PA108' && /Book\.author/.test(f.message))!;
    expect(scalar.severity).toBe('medium');
    expect(scalar.message).toMatch(/a many-to-one: one SELECT per distinct `Author` not already in the session/);
  });

  it('is low in a per-item workflow: the iteration also flushes on its own', () => {
    const file = path.join(FIXTURES, 'query/PA108.py');
    const f = at(query, 'PA108.py', lineOf(file, 'for book in author.books:  # expect: PA108'), 'PA108')!;
    expect(f.severity).toBe('low');
    expect(f.message).toMatch(/each iteration also writes \(`db.flush`\): a per-item workflow/);
  });

  it('a `uselist=False` relationship is the one-to-one side without the foreign key: a SELECT per row, high', () => {
    const file = path.join(FIXTURES, 'query/PA108.py');
    const f = at(query, 'PA108.py', lineOf(file, 'for s in db.scalars(select(Shelf))'), 'PA108')!;
    expect(f.severity).toBe('high');
    expect(f.message).not.toMatch(/many-to-one/);
  });

  it('is advisory when each iteration commits: the rows expire and load again whatever the query eager-loads', () => {
    const file = path.join(FIXTURES, 'query/PA108.py');
    const f = at(query, 'PA108.py', lineOf(file, 'len(author.books)})"  # advisory'), 'PA108')!;
    expect(f.advisory).toBe(true);
    expect(f.downgrades[0]!.evidence).toMatch(/each iteration commits/);
  });

  it('reads the second level of an eager-loaded collection: a collection medium, a many-to-one low', () => {
    const file = path.join(FIXTURES, 'query/PA108.py');
    expect(at(query, 'PA108.py', lineOf(file, 'len(b.editions)}" for b in author.books])  # expect'), 'PA108')!.severity).toBe('medium');
    expect(at(query, 'PA108.py', lineOf(file, '[e.publisher.name for e in book.editions]'), 'PA108')!.severity).toBe('low');
  });

  it('follows a literal cap on the query: low for a handful of rows, medium for a page', () => {
    const file = path.join(FIXTURES, 'query/PA108.py');
    const three = query.find((f) => f.path === 'PA108.py' && f.code === 'PA108' && f.line === lineOf(file, 'for a in top]  # expect: PA108'))!;
    expect(three.severity).toBe('low');
    expect(three.message).toMatch(/the query returns at most 3 rows/);
    const page = query.find((f) => f.path === 'PA108.py' && f.code === 'PA108' && f.line === lineOf(file, 'for a in page_rows]  # expect: PA108'))!;
    expect(page.severity).toBe('medium');
  });

  it('rows an awaited query loaded in an async def: the message says the lazy load raises there', () => {
    const file = path.join(FIXTURES, 'query/PA108.py');
    const inAsync = at(query, 'PA108.py', lineOf(file, 'out.append([b.title for b in author.books])'), 'PA108')!;
    expect(inAsync.message).toMatch(/raises `MissingGreenlet`/);
    const inSync = query.find((f) => f.path === 'PA108.py' && f.code === 'PA108' && /Book\.author/.test(f.message))!;
    expect(inSync.message).not.toMatch(/MissingGreenlet/);
  });
});

describe('PA108 over rows a loader of another module returns', () => {
  let held: Finding[] = [];
  beforeAll(async () => {
    held = await fixtureFindings('query-held', ['PA1']);
  });

  it('says the lazy load raises MissingGreenlet when an async loader hands the rows to an async loop', () => {
    const file = path.join(FIXTURES, 'query-held/yard/async_views.py');
    const get = (text: string) => at(held, 'yard/async_views.py', lineOf(file, text), 'PA108');
    expect(get('[c.kind for c in p.crops]')!.message).toMatch(/; on an `AsyncSession` the lazy load raises `MissingGreenlet` instead$/);
    // A sync loader's rows in an async function: an N+1, not an error.
    expect(get('[p.warden.name for p in plots_of_farm(farm_id)]')!.message).not.toMatch(/MissingGreenlet/);
  });
  it('the children of one row held on `self` are medium (N is that row\'s children); the rows of a query stay high', () => {
    const file = path.join(FIXTURES, 'query-held/yard/views.py');
    const get = (text: string) => at(held, 'yard/views.py', lineOf(file, text), 'PA108');
    expect(get('out[plot.id] = len(plot.crops)')).toMatchObject({ severity: 'medium' });
    expect(get('return [len(p.crops) for p in self.farm.plots]  # expect')).toMatchObject({ severity: 'medium' });
    expect(get('{p.id: [c.kind for c in p.crops] for p in self.plots}')).toMatchObject({ severity: 'high' });
  });
});

describe('SQLModel relationships', () => {
  it('a plain `Optional[Model]` annotation with a `foreign_key=` column is a many-to-one (medium), a `list[...]` a collection (high)', async () => {
    const found = await fixtureFindings('query-sqlmodel', ['PA108']);
    const file = path.join(FIXTURES, 'query-sqlmodel/app/api.py');
    const one = at(found, 'app/api.py', lineOf(file, 'a.guild.title'), 'PA108')!;
    expect(one.severity).toBe('medium');
    expect(one.message).toMatch(/a many-to-one: one SELECT per distinct `Guild` not already in the session/);
    expect(at(found, 'app/api.py', lineOf(file, 'len(g.members)'), 'PA108')!.severity).toBe('high');
    // `uselist: False` through `sa_relationship_kwargs`, the key on the other table: a SELECT per row.
    const reverse = at(found, 'app/api.py', lineOf(file, 'g.charter.text'), 'PA108')!;
    expect(reverse.severity).toBe('high');
    expect(reverse.message).not.toMatch(/many-to-one/);
  });
});

describe('PA111 after a commit that expires the rows (fixtures/query-async-expire)', () => {
  let found: Finding[] = [];
  beforeAll(async () => {
    found = await fixtureFindings('query-async-expire', ['PA111']);
  });

  it('names the commit, the factory that expires and the fix', () => {
    const file = path.join(FIXTURES, 'query-async-expire/shop/routes.py');
    const f = at(found, 'shop/routes.py', lineOf(file, 'return {"id": shelf.id}'), 'PA111')!;
    expect(f.severity).toBe('high');
    expect(f.message).toMatch(/^`shelf.id` is read after `await session.commit\(\)` \(line \d+\) expired it/);
    expect(f.message).toContain('`async_sessionmaker` at shop/db.py:8 keeps `expire_on_commit=True`, the default');
    expect(f.recommendation).toContain('await session.refresh(shelf)');
    expect(at(found, 'shop/routes.py', lineOf(file, 'return shelf  # expect'), 'PA111')!.message).toContain('to the response model');
  });

  it('follows the row a helper returns after its own commit to the caller that reads it', () => {
    const file = path.join(FIXTURES, 'query-async-expire/shop/routes.py');
    const through = found.filter((x) => x.message.includes('the row `create_shelf()` returns'));
    // The route that returns it into its response model, and the one that reads `shelf.id`;
    // not the refreshed helper's callers, nor the caller that refreshes it.
    expect(through.map((x) => x.line)).toEqual([lineOf(file, 'return await create_shelf(session, label)  # expect'), lineOf(file, 'async def make_shelf_id') + 2]);
    expect(through[1]!.message).toMatch(/^`shelf\.id` is read \(the row `create_shelf\(\)` returns\), and `await session\.commit\(\)` \(line \d+ of shop\/routes\.py, in `create_shelf`\) expired it before it was returned/);
    expect(through[0]!.chain?.[0]?.call).toBe('create_shelf');
  });

  it('keeps quiet about commits where the async factory turns expiry off, not about rollbacks', async () => {
    const other = await fixtureFindings('query-async-lazy', ['PA111']);
    const expired = other.filter((x) => /expired it/.test(x.message));
    // A rollback expires the rows the session loaded whatever `expire_on_commit` says.
    expect(expired.map((x) => x.message.replace(/ \(line \d+\).*/, ''))).toEqual(['`cellar.name` is read after `await session.rollback()`']);
    expect(expired[0]!.recommendation).toMatch(/^read what the code needs from `cellar` before the rollback/);
  });
});

describe('Flask-SQLAlchemy', () => {
  let flask: Finding[] = [];
  beforeAll(async () => {
    flask = await fixtureFindings('query-flask', ['PA1']);
  });

  it('db.session of the project\'s SQLAlchemy() object is a session, imported from anywhere', () => {
    const file = path.join(FIXTURES, 'query-flask/library/views.py');
    const lookup = at(flask, 'library/views.py', lineOf(file, 'Volume.by_title(title)'), 'PA107')!;
    // The flush in the same branch makes the read part of a per-item workflow.
    expect(lookup.severity).toBe('low');
    expect(lookup.message).toMatch(/each iteration also writes: a per-item workflow/);
    expect(at(flask, 'library/views.py', lineOf(file, 'db.session.add(volume)'), 'PA105')!.message).toMatch(/`db.session.flush` in the same iteration/);
    // `Model.query.get(pk)` is Query.get; by each volume's foreign key it fetches rows nothing loaded.
    expect(at(flask, 'library/views.py', lineOf(file, 'Shelf.query.get'), 'PA107')!.severity).toBe('high');
  });

  it('a model method run on each row a storage object of another module returns: high for a collection, medium for a many-to-one', () => {
    const file = path.join(FIXTURES, 'query-flask/library/stock.py');
    const get = (text: string) => at(flask, 'library/stock.py', lineOf(file, text), 'PA108');
    const fill = get('return [s.fill_level() for s in store.every_shelf()]')!;
    expect(fill.severity).toBe('high');
    expect(fill.message).toMatch(/`s\.fill_level\(\)` on each row that `store\.every_shelf` returns lazy-loads `Shelf\.volumes`/);
    expect(get('labels.append(vol.shelf_label())')!.severity).toBe('medium');
  });

  it('a dynamic relationship read per row: the fix is a grouped count, not a loader option (which raises on it)', () => {
    const file = path.join(FIXTURES, 'query-flask/library/desk.py');
    const counts = at(flask, 'library/desk.py', lineOf(file, 'v.loans.count()'), 'PA108')!;
    expect(counts.recommendation).toMatch(/`lazy="dynamic"` relationship is a query that no loader option fills/);
    expect(counts.recommendation).not.toMatch(/^add `selectinload/);
  });

  it('a helper\'s loop over a part of the posted JSON (`request.json["ids"]`) is over one request\'s input', () => {
    const file = path.join(FIXTURES, 'query-flask/library/posted.py');
    for (const [text, code] of [['update({"withdrawn": True})', 'PA102'], ['.first().title for volume_id', 'PA107']] as const) {
      const f = at(flask, 'library/posted.py', lineOf(file, text), code)!;
      expect(f.severity).toBe('low');
      expect(f.message).toContain('the loop runs over what the request sent');
    }
  });

  it('`q = Model.query` refined by reassignment is that model\'s rows; in a memoised function the loads are medium', () => {
    const file = path.join(FIXTURES, 'query-flask/library/listing.py');
    const get = (text: string) => flask.find((f) => f.path === 'library/listing.py' && f.line === lineOf(file, text) && f.code === 'PA108');
    expect(get('out.append({"id": shelf.id')).toMatchObject({ severity: 'high' });
    expect(get('out.append({"id": shelf.id')!.message).toMatch(/once per row of `Shelf.query`/);
    const memo = get('return {shelf.id: [v.id for v in shelf.volumes]')!;
    expect(memo.severity).toBe('medium');
    expect(memo.message).toMatch(/`@lru_cache\(maxsize=32\)` memoises the function/);
  });

  it('primary-key lookups through the project\'s model class too: by each item\'s foreign key they keep the loop\'s severity', () => {
    const file = path.join(FIXTURES, 'query-flask/library/views.py');
    const sev = (text: string) => at(flask, 'library/views.py', lineOf(file, text), 'PA107')?.severity;
    // `Shelf.find` is `CatalogRecord.find`: `db.Model` is built from `SQLAlchemy(model_class=CatalogRecord)`.
    const find = at(flask, 'library/views.py', lineOf(file, 'Shelf.find(volume.shelf_id)'), 'PA107')!;
    expect(find.severity).toBe('high');
    expect(chainNames(find.chain)).toEqual(['shelf_labels', 'CatalogRecord.find', 'CatalogRecord.query.get']);
    expect(sev('db.session.get(Shelf, volume.shelf_id))')).toBe('high');
    expect(sev('db.session.query(Shelf).get(volume.shelf_id)')).toBe('high');
    expect(sev('Shelf.find_fresh(volume.shelf_id)')).toBe('high');
    expect(sev('Shelf.by_label(volume.title)')).toBe('high');
    expect(sev('Shelf.query.filter_by(id=volume.shelf_id).one()')).toBe('high');
    expect(sev('populate_existing=True')).toBe('high');
  });

  it('properties and methods of the loop\'s rows that query about the row: dynamic relationships, with_parent, type(self).query', () => {
    const file = path.join(FIXTURES, 'query-flask/library/views.py');
    const get = (text: string) => at(flask, 'library/views.py', lineOf(file, text), 'PA107');
    expect(get('volume.open_loans))')).toMatchObject({ severity: 'medium' });
    expect(get('volume.open_loans))')!.message).toMatch(/property `Volume.open_loans`: `Loan.query`/);
    expect(get('rows.append(volume.loan_count())')!.message).toMatch(/`Volume.loans \(dynamic\)`/);
    expect(get('volume.shelf_mates()')).toMatchObject({ severity: 'medium' });
    expect(get('rows.append(volume.shout)')).toBeUndefined();
    expect(get('rows.append(volume.pending)')).toBeUndefined();
    expect(get('volume.last_count = volume.loan_count()')).toMatchObject({ severity: 'low' });
    expect(get('[v.pending for v in Volume.query.all()]')).toMatchObject({ severity: 'high' });
  });

  it('PA108 follows rows held in an instance attribute that a base class\'s setup method loaded', () => {
    const file = path.join(FIXTURES, 'query-flask/library/desk.py');
    const get = (text: string) => at(flask, 'library/desk.py', lineOf(file, text), 'PA108');
    // A many-to-one stays medium; the message says where the rows were loaded and where they are held.
    expect(get('notify(hold.patron.name)  #')).toMatchObject({ severity: 'medium' });
    expect(get('notify(hold.patron.name)  #')!.message).toMatch(/once per row of `Hold.query` \(line \d+ in `DeskActionBase._process_args`, held in `self.holds`; no eager loader option/);
    expect(get('return [n.text for h in self.holds for n in h.notes]')).toMatchObject({ severity: 'high' });
    // Through a property that returns the query, and through a helper function of the file.
    expect(get('{h.id: [n.text for n in h.notes] for h in self.holds}')!.message).toMatch(/`HoldListBase._hold_query`/);
    expect(get('return [[n.text for n in h.notes] for h in holds]')!.message).toMatch(/line \d+ in `open_holds`/);
    // A subclass that sets the options the base's query spreads: nothing per row.
    expect(get('notify(hold.patron.name, [n.text for n in hold.notes])')).toBeUndefined();
  });
});

describe('PA108 through a list schema another module binds (flask-marshmallow)', () => {
  let found: Finding[] = [];
  const file = path.join(FIXTURES, 'query-marshmallow/nursery/views.py');
  beforeAll(async () => {
    found = await fixtureFindings('query-marshmallow', ['PA108']);
  });

  it('names the imported instance and where it is bound; a literal cap lowers it as for a loop', () => {
    const all = at(found, 'nursery/views.py', lineOf(file, 'return greenhouses_schema.jsonify(houses)  # expect'), 'PA108')!;
    expect(all.severity).toBe('high');
    expect(all.message).toMatch(/^`greenhouses_schema` \(a `GreenhouseSchema\(many=True\)` bound in nursery\/schemas\.py\) serializes `Greenhouse\.beds` for each `Greenhouse` row/);
    const few = at(found, 'nursery/views.py', lineOf(file, '.limit(3).all())'), 'PA108')!;
    expect(few.severity).toBe('low');
    expect(few.message).toMatch(/the query returns at most 3 rows/);
  });
});

describe('PA108 through serializers', () => {
  let found: Finding[] = [];
  const file = path.join(FIXTURES, 'query-serialize/kennel/api.py');
  beforeAll(async () => {
    found = await fixtureFindings('query-serialize', ['PA108']);
  });

  it('a list response model reads its relationship fields (and its bases\') once per row; one level down per item', () => {
    const line = lineOf(file, 'return db.scalars(select(Dog)).all()  # expect');
    const here = found.filter((f) => f.path === 'kennel/api.py' && f.line === line);
    expect(here.map((f) => [f.severity, /`Dog\.shots` for each `Dog` row/.test(f.message), /`Shot\.vet` for each item of `Dog\.shots`/.test(f.message)])).toEqual([
      ['high', true, false],
      ['medium', false, true],
    ]);
    // `ribbons` is selectin on the model: not reported.
    expect(here.some((f) => /ribbons/.test(f.message))).toBe(false);
  });

  it('a route returning one object: its nested list is one collection, medium; a many-to-one per item low', () => {
    const f = at(found, 'kennel/api.py', lineOf(file, 'def one_card') + 2, 'PA108')!;
    expect(f.message).toMatch(/`Shot\.vet` for each item of `Dog\.shots`/);
    expect(f.severity).toBe('low');
  });

  it('rows a method of one fetched row returns are the method\'s, not the row\'s model', () => {
    // `breeder = ….first(); breeder.open_litters()`: Litter rows (a `column_property` key: a many-to-one, medium).
    const f = at(found, 'kennel/api.py', lineOf(file, 'litters = breeder.open_litters()'), 'PA108')!;
    expect(f.message).toMatch(/`VisitSchema` serializes `Litter\.vet` for each `Litter` row \(the rows `Breeder\.open_litters` returns/);
    expect(f.severity).toBe('medium');
    // The breeder's own `vet` is one row's, and `litters()` joins each litter's vet: nothing per row.
    const eager = lineOf(file, 'def breeder_litters');
    expect(found.filter((x) => x.path === 'kennel/api.py' && x.line > eager && x.line < eager + 6)).toEqual([]);
  });

  it('an async route says the lazy load fails there', () => {
    const f = at(found, 'kennel/api.py', lineOf(file, 'return dogs  # expect'), 'PA108')!;
    expect(f.message).toMatch(/raises `MissingGreenlet`/);
  });

  it('a marshmallow dump reads what a field\'s attribute names, and only the fields it keeps', () => {
    const f = at(found, 'kennel/api.py', lineOf(file, 'return VisitSchema(many=True).dump(recent)'), 'PA108')!;
    expect(f.message).toMatch(/`VisitSchema` serializes `Visit\.vet` for each `Visit` row/);
    expect(f.severity).toBe('medium');
    // `only=("id",)`, `exclude=("vet", "vet_name")`, a field named `vet` that reads `vet_id`: silent.
    expect(found.filter((x) => x.path === 'kennel/api.py' && x.line > lineOf(file, 'def visit_ids') && x.line < lineOf(file, 'def strays'))).toEqual([]);
  });
});

describe('loop domain codes', () => {
  it('a parameter domain reads back as written: position or keyword, held or schema, any identifier', async () => {
    const { decodeDomain, encodeDomain, passedDomain } = await import('../dist/src/semantic/loopDomain.js');
    for (const d of [
      { kind: 'param', position: 0, name: 'bücher' },
      { kind: 'param', position: -1, name: 'items', held: true },
      { kind: 'param', position: 2, name: 'tags_in', held: true, dto: true },
    ]) expect(decodeDomain(encodeDomain(d as never))).toEqual(d);
    // What a call passes: by position, else by keyword; a call with keywords only too.
    expect(passedDomain('u,r;tags=i', 1, 'rows')).toBe('r');
    expect(passedDomain('u,r;tags=i', -1, 'tags')).toBe('i');
    expect(passedDomain(';books=r', 0, 'books')).toBe('r');
    expect(passedDomain('u,r', 3, 'x')).toBeUndefined();
  });
});

describe('a project repository of its own (fixtures/query-staged)', () => {
  const file = path.join(FIXTURES, 'query-staged/shop/billing.py');
  const line = (text: string) => lineOf(file, text);

  it('follows `Repo.from_session(s)` (`-> Self`) to the subclass the call names', () => {
    const n1 = at(staged, 'shop/billing.py', line('found.append(await store.by_number(number))'), 'PA107')!;
    expect(chainNames(n1.chain)).toEqual(['look_up_numbers', 'InvoiceStore.by_number', 'session.scalar(select Invoice)']);
    const update = at(staged, 'shop/billing.py', line('await store.close_out(invoice.id)'), 'PA102')!;
    // `invoices` is a parameter that no function of the tree passes: N is not known.
    expect(update.severity).toBe('medium');
    expect(update.message).toMatch(/^`InvoiceStore.close_out` runs one UPDATE\/DELETE/);
  });

  it('a statement built in one method and run by a generic executor it is handed to is that method\'s query', () => {
    const read = at(staged, 'shop/billing.py', line('return [await store.newest_for(customer.id) for customer in customers]'), 'PA107')!;
    expect(chainNames(read.chain)).toEqual(['latest_per_customer', 'InvoiceStore.newest_for', 'session.execute(select Invoice)']);
    const write = at(staged, 'shop/billing.py', line('await store.discard_for(customer.id)'), 'PA102')!;
    expect(write.message).toMatch(/^`InvoiceStore.discard_for` runs one UPDATE\/DELETE \(`session.execute\(delete Invoice\)`\)/);
    // Built and returned, not run: nothing per item.
    expect(staged.filter((f) => f.line === line('return [store.open_invoices_statement(customer.id) for customer in customers]'))).toEqual([]);
    expect(staged.filter((f) => f.line === line('drafts = [invoice_repo.get_by_owner_statement(customer.id)'))).toEqual([]);
  });

  it('an update() of its own that only sets attributes and stages the row is no statement per item', () => {
    expect(staged.filter((f) => f.code === 'PA102' && f.line === line('await store.update(invoice, changes={"settled": True})'))).toEqual([]);
  });

  it('a read in an iteration that runs in a transaction of its own is a per-item unit of work (advisory)', () => {
    const f = at(staged, 'shop/billing.py', line('invoice = await store.by_number(number)  # advisory: PA107'), 'PA107')!;
    expect(f).toMatchObject({ severity: 'low', advisory: true });
    expect(f.message).toMatch(/a per-item workflow, where batching the read alone saves little/);
    expect(f.downgrades.at(-1)!.evidence).toMatch(/^each iteration commits what it writes \(a unit of work per item\): with SQLAlchemy's default expire_on_commit, rows read before the loop are expired/);
  });

  it('a helper that opens a session of its own per item is a per-item workflow; a savepoint per item is not', () => {
    const own = at(staged, 'shop/billing.py', line('return [await number_of(invoice_id) for invoice_id in invoice_ids]'), 'PA107')!;
    expect(own.severity).toBe('low');
    expect(own.message).toMatch(/each iteration opens a session of its own \(`number_of`\): a unit per item/);
    const nested = staged.filter((f) => f.code === 'PA107' && f.function === 'savepoint_each');
    expect(nested).toHaveLength(1);
    expect(nested[0]!.message).not.toMatch(/per-item workflow/);
  });

  it('a per-row UPDATE that records a per-item call outside the database is low: a workflow', () => {
    const f = at(staged, 'shop/billing.py', line('await store.touch(customer)'), 'PA102')!;
    expect(f.severity).toBe('low');
    expect(f.message).toMatch(/each iteration also calls outside the database \(`stripe.Customer.retrieve_async`\): a per-item workflow/);
  });
});

describe('PA111 async_lazy_load', () => {
  it('is high on a collection, medium on a many-to-one, and names the line that loaded the row', async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA111'] }, {}, null);
    const root = path.join(FIXTURES, 'query-async-lazy');
    const found = (await scan(root, config)).result.findings;
    const file = path.join(root, 'app/cellars.py');
    const collection = at(found, 'app/cellars.py', lineOf(file, 'for b in cellar.bottles]  # expect: PA111'), 'PA111');
    expect(collection?.severity).toBe('high');
    expect(collection?.message).toContain(`(line ${lineOf(file, 'cellar = await session.get(Cellar, cellar_id)')})`);
    expect(at(found, 'app/cellars.py', lineOf(file, 'return bottle.cellar.name  # expect: PA111'), 'PA111')?.severity).toBe('medium');
  });

  it('follows the rows a coroutine loads itself into comprehensions and plain formatters', async () => {
    const found = await fixtureFindings('query-async-lazy', ['PA111']);
    const file = path.join(FIXTURES, 'query-async-lazy/app/tasting.py');
    const get = (text: string) => at(found, 'app/tasting.py', lineOf(file, text), 'PA111');
    // Many-to-one on each item of the list: medium (the identity map may hold the cellar).
    expect(get('for b in bottles]  # expect: PA111')).toMatchObject({ severity: 'medium' });
    expect(get('cards.append(bottle_card(b))  # expect')!.message).toMatch(/`bottle_card\(b\)` reads `Bottle\.cellar` \(in `app\.cards\.bottle_card`|`bottle_card\(b\)` reads `Bottle\.cellar`/);
    expect(get('cards.append(bottle_card(b))  # expect')!.severity).toBe('medium');
    // A collection read by the formatter of one row: always a SELECT, high.
    expect(get('return cellar_card(cellar)  # expect')).toMatchObject({ severity: 'high' });
  });
});

describe('PA108 through a returned row', () => {
  it('follows the collection of the row a helper returns; a many-to-one on its items is low', async () => {
    const found = await fixtureFindings('query-returned-row', ['PA108']);
    const file = path.join(FIXTURES, 'query-returned-row/shelf/views.py');
    const get = (text: string) => found.find((f) => f.path === 'shelf/views.py' && f.line === lineOf(file, text));
    const serialized = get('return [s.as_json() for s in library.shelves]  # expect')!;
    expect(serialized.severity).toBe('medium');
    expect(serialized.message).toMatch(/`s\.as_json\(\)` on each Shelf of Library\.shelves lazy-loads `Shelf\.readers` \(read in `Shelf\.as_json`\)/);
    expect(serialized.message).toMatch(/of the row `library_by_id\(\)` returns: `library_by_id` in shelf\/store\.py/);
    expect(get('s.curator.nick for s in library.shelves')!.severity).toBe('low');
  });
});

describe('association proxies read through their relationship (fixtures/query-proxy, query-proxy-async)', () => {
  let flask: Finding[] = [];
  let asyncFound: Finding[] = [];
  beforeAll(async () => {
    flask = await fixtureFindings('query-proxy', ['PA108']);
    asyncFound = await fixtureFindings('query-proxy-async', ['PA111']);
  });
  const agenda = path.join(FIXTURES, 'query-proxy/clinic/agenda.py');
  const tracking = path.join(FIXTURES, 'query-proxy-async/depot/tracking.py');

  it('PA108: a proxy over a many-to-one is medium, over a collection high, and names the relationship', () => {
    const inline = at(flask, 'clinic/agenda.py', lineOf(agenda, 'return [a.clinician_name for a in agenda.for_day'), 'PA108')!;
    expect(inline.severity).toBe('medium');
    expect(inline.message).toMatch(/^`a\.clinician_name` lazy-loads Appointment\.clinician \(`clinician_name` is an association proxy through it\)/);
    const method = at(flask, 'clinic/agenda.py', lineOf(agenda, 'return [a.as_row() for a in agenda.for_day('), 'PA108')!;
    expect(method.severity).toBe('medium');
    expect(method.message).toContain('`Appointment.clinician_name` (an association proxy through `clinician`)');
    expect(at(flask, 'clinic/agenda.py', lineOf(agenda, 'list(p.allergy_codes)))'), 'PA108')!.severity).toBe('high');
    // An aliased import of `association_proxy` declares one too.
    expect(at(flask, 'clinic/agenda.py', lineOf(agenda, 'a.clinician_ward for a in rows'), 'PA108')!.severity).toBe('medium');
  });

  it('PA111: the proxy\'s relationship raises on an AsyncSession row; a collection always queries', () => {
    expect(at(asyncFound, 'depot/tracking.py', lineOf(tracking, 'shipment.carrier_code}"'), 'PA111')!.severity).toBe('medium');
    expect(at(asyncFound, 'depot/tracking.py', lineOf(tracking, 'return list(shipment.barcodes)  # expect'), 'PA111')!.severity).toBe('high');
    expect(asyncFound).toHaveLength(2);
  });
});

describe('PA107 severity through wrappers of the request', () => {
  it('follows what a route picks from the request through a wrapper and a returned object to the loop (low), and rows a job hands a traced method (high)', async () => {
    const found = await fixtureFindings('query-request-chain', ['PA107']);
    const file = path.join(FIXTURES, 'query-request-chain/app/lib/trackobj.py');
    const fromRequest = at(found, 'app/lib/trackobj.py', lineOf(file, 'tag = session.execute'), 'PA107');
    expect(fromRequest?.severity).toBe('low');
    expect(fromRequest?.message).toMatch(/the loop runs over what the request sent/);
    // `@tracing.trace` is a decorator that logs calls, not an HTTP TRACE route: its parameters are
    // what its callers pass, here every stored tag.
    expect(at(found, 'app/lib/trackobj.py', lineOf(file, 'hits += session.execute'), 'PA107')?.severity).toBe('high');
  });
});
