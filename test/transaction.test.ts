/**
 * Transaction family: severities and messages that the inline `# expect:` marks cannot express.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { scan } from '../dist/src/engine/scan.js';
import { resolveConfig } from '../dist/src/config/config.js';
import type { Finding } from '../src/types.js';

const FIXTURES = path.resolve(__dirname, '../fixtures');
const byRoot = new Map<string, Finding[]>();

async function findings(rel: string): Promise<Finding[]> {
  const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA2'] }, {}, null);
  const { result } = await scan(path.join(FIXTURES, rel), config);
  return result.findings;
}

beforeAll(async () => {
  for (const rel of ['sample-app', 'transaction/notify-progress', 'transaction/channels', 'transaction/open-scope', 'transaction/missing-commit', 'transaction/repository-library', 'transaction/check-insert', 'transaction/raw-sql', 'transaction/commit-in-loop', 'transaction/claims', 'transaction/single-use', 'transaction/background-tasks/fastapi-0.111', 'transaction/background-tasks/fastapi-0.120', 'transaction/flask-session-alias', 'transaction/domain-errors']) byRoot.set(rel, await findings(rel));
}, 60_000);

const lineOf = (file: string, text: string) => fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes(text)) + 1;

function at(rel: string, file: string, line: number, code: string): Finding | undefined {
  return byRoot.get(rel)!.find((f) => f.path === file && f.line === line && f.code === code);
}

describe('PA201 missing_intermediate_commits', () => {
  it('is critical when a streaming endpoint listens on the channel', () => {
    expect(at('sample-app', 'app/tasks/jobs.py', 50, 'PA201')?.originalSeverity).toBe('critical');
    expect(at('transaction/notify-progress', 'app/workers/exports.py', 15, 'PA201')?.originalSeverity).toBe('critical');
  });
  it('is high when only a background relay listens', () => {
    expect(at('transaction/notify-progress', 'app/workers/exports.py', 21, 'PA201')?.originalSeverity).toBe('high');
  });
  it('names the trigger table and the channel', () => {
    expect(at('sample-app', 'app/tasks/jobs.py', 50, 'PA201')?.message).toMatch(/`jobs`.*`job_progress`/);
  });
});

describe('PA206 event_channel_consistency', () => {
  it('is critical for a near miss, at the listener', () => {
    expect(at('sample-app', 'app/tasks/notifier.py', 19, 'PA206')?.originalSeverity).toBe('critical');
    expect(at('transaction/channels', 'app/listeners.py', 13, 'PA206')?.originalSeverity).toBe('critical');
    expect(at('transaction/channels', 'app/broker.py', 10, 'PA206')?.originalSeverity).toBe('critical');
  });
  it('is high for an orphan publisher and medium for an orphan subscriber', () => {
    expect(at('transaction/channels', 'app/listeners.py', 21, 'PA206')?.originalSeverity).toBe('high');
    expect(at('transaction/channels', 'app/listeners.py', 17, 'PA206')?.originalSeverity).toBe('medium');
  });
});

describe('PA204 missing_rollback', () => {
  it('is low when a session `with` already rolls back, or when the session was handed in and is not used again here', () => {
    const file = path.join(FIXTURES, 'transaction/open-scope/app/rollback.py');
    expect(at('transaction/open-scope', 'app/rollback.py', lineOf(file, 'def swallow_in_with') + 4, 'PA204')?.originalSeverity).toBe('low');
    // A session handed in and not used after the handler: the caller's next statement meets it failed, loudly.
    const handedIn = at('transaction/open-scope', 'app/rollback.py', lineOf(file, 'def swallow(') + 3, 'PA204')!;
    expect(handedIn.originalSeverity).toBe('low');
    expect(handedIn.message).toMatch(/for the callers of `swallow`, which handed it in: one that goes on with `db` gets `PendingRollbackError`/);
  });

  it('reports a handler\'s reuse of a failed session once, naming every step of the `try` that may have failed it', () => {
    const root = 'transaction/domain-errors';
    const file = path.join(FIXTURES, root, 'app/service.py');
    const pair = byRoot.get(root)!.filter((f) => f.code === 'PA204' && f.function === 'ensure_pair');
    expect(pair).toHaveLength(1);
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const start = lineOf(file, 'def ensure_pair');
    expect(pair[0]!.line).toBe(lines.findIndex((l, i) => i >= start && l.includes('store.by_slug(slug)')) + 1);
    expect(pair[0]!.message).toMatch(/^`store\.insert_raw\(\)` raises the database error .* \(so may `store\.rename_raw\(\)` in the same `try`\), and this handler then uses the same session/);
  });

  it('a `try` that only reads: advisory when the handler leaves, low when the function goes on, medium in a loop that goes on', () => {
    const root = 'transaction/flask-session-alias';
    const file = path.join(FIXTURES, root, 'app/models.py');
    const leaves = at(root, 'app/models.py', lineOf(file, 'cls.barcode == barcode.strip().upper()'), 'PA204')!;
    expect(leaves.advisory).toBe(true);
    expect(leaves.downgrades[0]?.evidence).toMatch(/NoResultFound/);
    const stays = at(root, 'app/models.py', lineOf(file, 'found = cls.query.filter_by(barcode=barcode).first()'), 'PA204')!;
    expect(stays.originalSeverity).toBe('low');
    expect(stays.message).toMatch(/only reads .* for the rest of the function/);
    expect(at(root, 'app/models.py', lineOf(file, 'locker = Locker.query.filter_by(site=site).one()'), 'PA204')?.originalSeverity).toBe('medium');
    // A failed commit swallowed in a worker's loop stays medium.
    const moved = byRoot.get(root)!.find((f) => f.code === 'PA204' && f.function === 'move_parcels')!;
    expect(moved.originalSeverity).toBe('medium');
    expect(moved.advisory).toBe(false);
  });

  it('a module-level name for `db.session`, imported from the blueprint package, is the request\'s session', () => {
    const root = 'transaction/flask-session-alias';
    const views = byRoot.get(root)!.filter((f) => f.code === 'PA204' && f.path.startsWith('app/api/'));
    expect(views.map((f) => f.function).sort()).toEqual(['close_site_quietly', 'drop_parcel']);
    expect(views.every((f) => f.originalSeverity === 'medium' && !f.advisory)).toBe(true);
  });

  it('names the call that raises when the handler first only stages on the failed session', () => {
    const file = path.join(FIXTURES, 'transaction/open-scope/app/rollback.py');
    const line = lineOf(file, 'def audit_duplicate') + 3;
    expect(at('transaction/open-scope', 'app/rollback.py', line, 'PA204')!.message).toMatch(/uses `db` again \(`db\.add\(\)`\) before any rollback: it only stages, and `db\.commit\(\)` then raises `PendingRollbackError`$/);
  });
});

describe('PA202 / PA205 severities', () => {
  it('a network call while the request scope holds a write is medium: the risk is the order, not a long lock', () => {
    for (const [root, file, line] of [['transaction/repository-library', 'app/controllers.py', 51], ['transaction/missing-commit', 'app/requests_scope.py', 40]] as const) {
      const f = at(root, file, line, 'PA202')!;
      expect(f.originalSeverity).toBe('medium');
      expect(f.message).toMatch(/the request scope commits only once the handler has returned/);
    }
  });

  it('writes a helper flushed, committed by the caller: low for one remote call, medium for one per item', () => {
    const one = at('transaction/open-scope', 'app/handlers.py', 58, 'PA202')!;
    expect(one.originalSeverity).toBe('low');
    expect(one.message).toMatch(/after `open_order\(\)` \(line 57\) sent writes whose transaction is committed only later, outside this function/);
    expect(at('transaction/open-scope', 'app/handlers.py', 71, 'PA202')?.originalSeverity).toBe('medium');
  });

  it('a swallowed failure of a DB-reaching helper in a loop is PA204, low (the file rule\'s own statements stay medium)', () => {
    const f = at('transaction/open-scope', 'app/reindex.py', lineOf(path.join(FIXTURES, 'transaction/open-scope/app/reindex.py'), 'push(describe(order_id))  # expect: PA204'), 'PA204')!;
    expect(f.originalSeverity).toBe('low');
    expect(f.message).toMatch(/`describe\(\)` reaches the database .* every later iteration fails too/);
  });

  it('on a standard-library SQLite connection: no failed transaction to roll back, no round trip, a file lock only', () => {
    const file = path.join(FIXTURES, 'transaction/open-scope/app/local_index.py');
    const f202 = at('transaction/open-scope', 'app/local_index.py', lineOf(file, 'with open(path + ".done"'), 'PA202')!;
    expect(f202.originalSeverity).toBe('low');
    expect(at('transaction/open-scope', 'app/local_index.py', lineOf(file, 'SELECT major, minor'), 'PA204')).toBeUndefined();
  });

  it('network is high, file I/O medium; a wait is PA205, medium, and a network call after a write is PA202 only', () => {
    expect(at('transaction/open-scope', 'app/orders.py', 24, 'PA202')?.originalSeverity).toBe('high');
    expect(at('transaction/open-scope', 'app/orders.py', 38, 'PA202')?.originalSeverity).toBe('medium');
    expect(at('transaction/open-scope', 'app/orders.py', 24, 'PA205')).toBeUndefined();
    expect(at('transaction/open-scope', 'app/orders.py', 46, 'PA205')?.originalSeverity).toBe('medium');
    expect(at('transaction/open-scope', 'app/orders.py', 79, 'PA205')?.message).toMatch(/between the first statement on `session` \(line 77\)/);
  });
  it('a read-only transaction held across a remote call is low (a connection idle, no row locks); a sleep after writes stays medium', () => {
    const held = at('transaction/open-scope', 'app/refresh_jobs.py', 16, 'PA205')!;
    expect(held.severity).toBe('low');
    expect(held.originalSeverity).toBe('low');
    // A row lock taken first (in the function, or in the helper that calls out) is held too: medium.
    const file = path.join(FIXTURES, 'transaction/open-scope/app/refresh_jobs.py');
    for (const line of [lineOf(file, '.with_for_update()).one()') + 1, lineOf(file, 'lock_and_fetch(db, order_id)  # expect')]) {
      const f = at('transaction/open-scope', 'app/refresh_jobs.py', line, 'PA205')!;
      expect(f.originalSeverity).toBe('medium');
      expect(f.message).toMatch(/after a row lock \(`with_for_update`/);
    }
    expect(at('transaction/open-scope', 'app/refresh_jobs.py', 28, 'PA205')?.severity).toBe('medium');
  });
});

describe('PA208 missing_commit', () => {
  const rel = 'transaction/missing-commit';
  const lost = path.join(FIXTURES, rel, 'app/lost_writes.py');
  it('is high in a request handler, medium elsewhere', () => {
    expect(at(rel, 'app/lost_writes.py', lineOf(lost, 'invoice.state = "disputed"'), 'PA208')?.originalSeverity).toBe('high');
    expect(at(rel, 'app/lost_writes.py', lineOf(lost, 'def note_payment') + 3, 'PA208')?.originalSeverity).toBe('medium');
  });
  it('names the handle, where it was opened and what closes it', () => {
    const opened = lineOf(lost, 'def note_payment') + 2;
    expect(at(rel, 'app/lost_writes.py', opened + 1, 'PA208')?.message).toMatch(new RegExp(`\`session\`.*line ${opened}.*\`with\` block closes it`));
    expect(at(rel, 'app/lost_writes.py', lineOf(lost, "SET state = 'archived'"), 'PA208')?.message).toMatch(/DB-API connection \(autocommit off\)/);
    expect(at(rel, 'app/lost_writes.py', lineOf(lost, 'note="raw"'), 'PA208')?.message).toMatch(/SQLAlchemy 2\.x connection/);
  });
  it('follows the request scope: a provider that commits nothing after `yield`, named in the message', () => {
    const f = at(rel, 'app/requests_scope.py', 14, 'PA208');
    expect(f?.originalSeverity).toBe('high');
    expect(f?.message).toMatch(/Depends\(get_plain_session\)/);
  });
  it('follows writes through a repository library that only flushes: medium in a job, high before an HTTP error', () => {
    const lib = 'transaction/repository-library';
    const job = at(lib, 'app/jobs.py', 13, 'PA208');
    expect(job?.originalSeverity).toBe('medium');
    expect(job?.message).toMatch(/`coupon_scope\(\)` \(line 12\), which opens its own session and never commits it/);
    const raised = at(lib, 'app/services.py', 32, 'PA208');
    expect(raised?.originalSeverity).toBe('high');
    expect(raised?.message).toMatch(/`raise PermissionDeniedException` \(line 33\)/);
  });
  it('stays silent on a SQLAlchemy 1.x connection, which autocommits DML', async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA208'] }, {}, null);
    const fs = await import('node:fs');
    const os = await import('node:os');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pa208-'));
    fs.mkdirSync(path.join(dir, 'app'));
    fs.writeFileSync(path.join(dir, 'requirements.txt'), 'sqlalchemy==1.3.24\n');
    fs.writeFileSync(path.join(dir, 'app/jobs.py'), [
      'from sqlalchemy import create_engine, text',
      'engine = create_engine("postgresql://app@db/app")',
      'def purge():',
      '    with engine.connect() as conn:',
      '        conn.execute(text("DELETE FROM sessions WHERE expired"))',
      '',
    ].join('\n'));
    const { result } = await scan(dir, config);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(result.findings.map((f: Finding) => f.code)).toEqual([]);
  });
});

describe('PA209 raw_sql_pending_changes', () => {
  it('names the table, the staged change and its line', () => {
    const f = at('transaction/raw-sql', 'app/stock.py', 13, 'PA209');
    expect(f?.originalSeverity).toBe('medium');
    expect(f?.message).toMatch(/reads `stock_levels`.*`session\.add\(…\)`, line 11.*does not autoflush/);
    expect(at('transaction/raw-sql', 'app/stock.py', 51, 'PA209')?.message).toMatch(/another connection than `session`/);
  });
});

describe('PA210 check_then_insert', () => {
  it('is low, in a request handler too (a race of two first writes), and names the key', () => {
    const rel = 'transaction/check-insert';
    expect(at(rel, 'app/subscriptions.py', 22, 'PA210')?.originalSeverity).toBe('low');
    expect(at(rel, 'app/subscriptions.py', 32, 'PA210')?.originalSeverity).toBe('low');
    expect(at(rel, 'app/subscriptions.py', 42, 'PA210')?.message).toMatch(/`Vote\.poll_id`, `Vote\.voter`/);
  });
  it('is advisory when the schema keeps the key unique, naming the key, and says the slower call fails', () => {
    const rel = 'transaction/check-insert';
    const file = path.join(FIXTURES, rel, 'app/schema_keys.py');
    const handle = at(rel, 'app/schema_keys.py', lineOf(file, 'session.add(taken)'), 'PA210');
    expect(handle?.advisory).toBe(true);
    expect(handle?.downgrades[0]?.evidence).toMatch(/keeps `Handle\.name` unique: the race cannot leave a duplicate/);
    expect(handle?.message).toMatch(/both insert, and the slower one fails with an `IntegrityError`$/);
    // A composite primary key, a `UniqueConstraint`, a unique `Index`, a classic table's keys.
    expect(at(rel, 'app/schema_keys.py', lineOf(file, 'session.add(Membership('), 'PA210')?.downgrades[0]?.evidence).toMatch(/`Membership\.club_id`, `Membership\.member_id`/);
    expect(at(rel, 'app/schema_keys.py', lineOf(file, 'session.add(Seat('), 'PA210')?.downgrades[0]?.evidence).toMatch(/`Seat\.show_id`, `Seat\.row_label`/);
    expect(at(rel, 'app/schema_keys.py', lineOf(file, 'session.add(Alias('), 'PA210')?.downgrades[0]?.evidence).toMatch(/`Alias\.domain`, `Alias\.local_part`/);
    const classic = path.join(FIXTURES, rel, 'app/classic.py');
    expect(at(rel, 'app/classic.py', lineOf(classic, 'session.add(Follow('), 'PA210')?.downgrades[0]?.evidence).toMatch(/`Follow\.follower_id`, `Follow\.followed_id`/);
    // The caller's own primary key reused: named in the message.
    expect(at(rel, 'app/schema_keys.py', lineOf(file, 'session.add(Widget(id=widget_id'), 'PA210')?.message).toMatch(/on `Widget\.id`, `Widget\.tenant`/);
    // Without a unique key the race leaves a duplicate: low, not advisory.
    const dup = at(rel, 'app/classic.py', lineOf(classic, 'session.add(Bookmark('), 'PA210');
    expect(dup?.advisory).toBe(false);
    expect(dup?.message).toMatch(/leaving a duplicate/);
  });
});

describe('PA207 commit_in_loop severities', () => {
  it('is medium over rows, low over what one request sent', () => {
    const rel = 'transaction/commit-in-loop';
    const file = path.join(FIXTURES, rel, 'app/api/orders.py');
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const line = (text: string, from = 0) => lines.findIndex((l, i) => i >= from && l.includes(text)) + 1;
    expect(at(rel, 'app/api/orders.py', line('db.commit()  # expect: PA207'), 'PA207')?.originalSeverity).toBe('medium');
    expect(at(rel, 'app/api/orders.py', line('db.commit()  # expect: PA207', line('def bulk_close')), 'PA207')?.originalSeverity).toBe('low');
  });
  it('is low, naming the call, when each item is changed, then sent outside, then committed', () => {
    const rel = 'transaction/commit-in-loop';
    const file = 'app/batch_settle.py';
    const f = at(rel, file, lineOf(path.join(FIXTURES, rel, file), 'settle_and_index(db, order, search_plugin)  # expect: PA207'), 'PA207');
    expect(f?.originalSeverity).toBe('low');
    expect(f?.message).toMatch(/each item also calls out, `search_plugin\.push_entry`, after changing rows and before the commit/);
    // Without a call outside, the same helper shape stays medium.
    expect(at(rel, file, lineOf(path.join(FIXTURES, rel, file), 'settle(db, order)  # expect: PA207'), 'PA207')?.originalSeverity).toBe('medium');
  });
  it('is low for a get-or-create, whose commit runs only where the row is missing, and over a posted body a service is handed', () => {
    const rel = 'transaction/commit-in-loop';
    const file = path.join(FIXTURES, rel, 'app/coupons.py');
    const missing = at(rel, 'app/coupons.py', lineOf(file, 'coupon_for(db, order.customer)'), 'PA207');
    expect(missing?.originalSeverity).toBe('low');
    expect(missing?.message).toMatch(/only for the items whose row is missing: `coupon_for` returns the `existing` it finds first/);
    expect(at(rel, 'app/coupons.py', lineOf(file, 'coupon_named(db, order.customer)'), 'PA207')?.message).toMatch(/`coupon_named` returns the `found` it finds first/);
    expect(at(rel, 'app/coupons.py', lineOf(file, 'issue_coupon(db, code)  # expect'), 'PA207')?.originalSeverity).toBe('low');
    // The same committing helper over stored rows stays medium.
    expect(at(rel, 'app/coupons.py', lineOf(file, '        issue_coupon(db, order.customer)  # expect'), 'PA207')?.originalSeverity).toBe('medium');
    // A get-or-create written in the loop: the call runs only where the lookup found nothing.
    const inline = at(rel, 'app/coupons.py', lineOf(file, 'coupon = issue_coupon(db, order.customer)'), 'PA207');
    expect(inline?.originalSeverity).toBe('low');
    expect(inline?.message).toMatch(/the loop looks each item's row up first and makes the call only when none is found/);
    expect(at(rel, 'app/coupons.py', lineOf(file, 'issue_coupon(db, order.customer + str(coupon))'), 'PA207')?.originalSeverity).toBe('medium');
  });
  it('reports two commits of one iteration once, listing the second', () => {
    const rel = 'transaction/commit-in-loop';
    const lines = fs.readFileSync(path.join(FIXTURES, rel, 'app/sync_jobs.py'), 'utf8').split('\n');
    const first = lines.findIndex((l, i) => i > lines.findIndex((x) => x.includes('def ship_each')) && l.includes('db.commit()')) + 1;
    expect(at(rel, 'app/sync_jobs.py', first, 'PA207')?.message).toMatch(new RegExp(`and one more in this loop: line ${first + 2}\\)`));
  });
});

describe('PA202 and background tasks', () => {
  it('a background task waits inside the request transaction only where the scope commits after it (FastAPI < 0.106, >= 0.118)', () => {
    const late = byRoot.get('transaction/background-tasks/fastapi-0.120')!.filter((f) => f.code === 'PA202');
    expect(late.map((f) => f.line)).toEqual([24]);
    expect(late[0]!.message).toMatch(/it is a background task, which runs after the response is sent but before the request scope's exit code/);
    // 0.106-0.117: the provider commits before the task runs; only the awaited call waits inside.
    const early = byRoot.get('transaction/background-tasks/fastapi-0.111')!.filter((f) => f.code === 'PA202');
    expect(early.map((f) => f.function)).toEqual(['sign_up_and_wait']);
  });
});

describe('PA213 unguarded_claim', () => {
  it('is medium in a background job and names the state it was read in', () => {
    const found = byRoot.get('transaction/claims')!.filter((f) => f.code === 'PA213');
    expect(found.length).toBeGreaterThan(0);
    for (const f of found) expect(f.originalSeverity).toBe('medium');
    expect(found.find((f) => f.path === 'app/workers.py')!.message).toMatch(/is read where `state` is `TaskState\.WAITING`/);
  });
  it('a row read by its key and checked in Python before it is marked: the check is named', () => {
    const f = byRoot.get('transaction/claims')!.find((x) => x.code === 'PA213' && x.path === 'app/vouchers.py' && x.line === 40)!;
    expect(f.message).toMatch(/check-then-set on `Voucher\.spent_at`: `voucher` is read \(line 37\) and its `spent_at` checked in Python \(line 38\)/);
  });
  it('a single-use row marked and handed back: names the caller that uses it', () => {
    const found = byRoot.get('transaction/single-use')!.filter((f) => f.code === 'PA213');
    const local = found.find((f) => f.path === 'app/links.py' && f.function === 'consume_link')!;
    // The line of the check on the column it then sets, not the first check of the row.
    expect(local.message).toMatch(/its `consumed_at` checked in Python \(line 22\)/);
    expect(local.message).toMatch(/`consume_link\(\)` returns the row to `follow_link\(\)` \(app\/api\.py:\d+\), which acts on it$/);
    expect(local.chain?.[0]?.function).toBe('follow_link');
    const split = found.find((f) => f.function === 'redeem_card')!;
    expect(split.message).toMatch(/comes from `checked_card\(\)`.*acted on by `redeem\(\)` \(app\/api\.py:\d+\), which gets it back/);
    // A helper's claim, the using caller's request: low, as the claim is the helper's.
    expect(found.map((f) => f.severity)).toEqual(['low', 'low']);
  });
  it('names the helper that read the row when the claim is split across a call', () => {
    const split = byRoot.get('transaction/claims')!.find((f) => f.code === 'PA213' && f.path === 'app/queue/runner.py')!;
    expect(split.message).toMatch(/comes from `oldest_waiting\(\)`, which reads it where `state` is `TaskState\.WAITING` \(line 10\)/);
    expect(split.chain?.[0]?.call).toBe('oldest_waiting');
  });
});

describe('PA211 unawaited_db_call', () => {
  it('says what the missing await loses, per method and per handle', async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA211'] }, {}, null);
    const found = (await scan(path.resolve(__dirname, '../fixtures/transaction/unawaited'), config, { inProcessBytes: Infinity })).result.findings;
    const at = (line: number) => found.find((f) => f.line === line)!;
    expect(at(19).message).toBe('`session.commit()` on AsyncSession `session` is not awaited: it only builds a coroutine, so the commit never happens: the writes are rolled back when the session closes');
    expect(at(19).severity).toBe('high');
    expect(at(36).message).toMatch(/^`conn.execute\(\)` on asyncpg connection `conn` is not awaited: .* the statement never runs$/);
    // A read held in a name and returned by an `async def`: its caller gets a coroutine, not rows.
    expect(at(41).message).toMatch(/the statement never runs$/);
    expect(found.map((f) => f.line)).toEqual([19, 25, 30, 36, 41, 51, 56, 61, 67]);
  });
});

describe('PA212 enqueue_before_commit', () => {
  it('names the written object, where it was written and the commit the job may beat', async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA212'] }, {}, null);
    const found = (await scan(path.resolve(__dirname, '../fixtures/transaction/enqueue'), config, { inProcessBytes: Infinity })).result.findings;
    const billing = found.filter((f) => f.path === 'app/billing.py');
    expect(billing.map((f) => f.line)).toEqual([15, 24, 33, 40, 48, 55, 61]);
    // The request's session, committed by its provider after the handler returns.
    const routes = found.filter((f) => f.path === 'app/routes.py');
    expect(routes.map((f) => f.line)).toEqual([17]);
    expect(routes[0]!.message).toBe("`mail_invoice.delay()` enqueues a job with `invoice`, written through the request's session `db` (line 15), which `get_db` commits only after the handler returns: the worker can run first and miss the row or read it unchanged; commit before enqueueing, or enqueue after the response");
    found.splice(0, found.length, ...billing);
    expect(found[0]!.message).toBe('`mail_invoice.delay()` enqueues a job with `invoice`, which this transaction wrote (line 13), before `db.commit()` (line 16): the worker can run first and miss the row or read it unchanged; enqueue after the commit');
    // A row the session loaded and the code changed: the same commit writes it. The worker finds
    // the row (it exists), with its old values: medium, where a row it cannot find at all is high.
    expect(found[1]!.message).toMatch(/with `invoice`, which this transaction changed \(line 22\), before `db.commit\(\)` \(line 25\)/);
    expect(found[0]!.severity).toBe('high');
    expect(found[1]!.severity).toBe('medium');
    expect(found[2]!.message).toMatch(/before the end of the `db.begin\(\)` block/);
  });

  it('reports a stored row changed before a job about it, the commit being the caller\'s, at medium', async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA212'] }, {}, null);
    const found = (await scan(path.resolve(__dirname, '../fixtures/transaction/enqueue'), config, { inProcessBytes: Infinity })).result.findings;
    const parcels = found.filter((f) => f.path === 'app/parcels.py');
    expect(parcels.map((f) => [f.line, f.severity])).toEqual([[24, 'medium'], [34, 'medium'], [41, 'medium'], [47, 'medium'], [53, 'medium']]);
    expect(parcels[1]!.message).toBe('`charge.delay()` enqueues a job with `parcel`, a stored row this function changed (line 33) and never commits: the commit comes after it returns, so the worker can run first and read the row as it was before the change; enqueue after that commit (or from an after-commit hook)');
    // A method of the row that flushes its own change: the same stale read.
    expect(found.find((f) => f.path === 'app/accounts.py')!.severity).toBe('medium');
  });
});

describe('PA202 read-only remote calls', () => {
  it('states a call that only reads one step lower, and keeps a helper that also sends at the full claim', async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA202'] }, {}, null);
    const found = (await scan(path.join(FIXTURES, 'transaction/open-scope'), config, { inProcessBytes: Infinity })).result.findings;
    const file = path.join(FIXTURES, 'transaction/open-scope/app/orders.py');
    const get = (text: string) => found.find((f: { path: string; line: number; code: string }) => f.path === 'app/orders.py' && f.line === lineOf(file, text) && f.code === 'PA202');
    const inBegin = get('requests.get("https://carrier.example/status", params={"id": order_id}, timeout=5)  # expect');
    expect(inBegin?.severity).toBe('medium');
    expect(inBegin?.message).toMatch(/only reads from the remote side/);
    expect(inBegin?.message).not.toMatch(/cannot be undone/);
    expect(get('carrier_status(order_id)  # expect')?.severity).toBe('medium');
    const books = get('carrier_book(order_id)  # expect');
    expect(books?.severity).toBe('high');
    expect(books?.message).toMatch(/cannot be undone/);
  });
});
