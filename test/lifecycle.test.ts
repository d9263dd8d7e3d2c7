/** FastAPI version reading behind PA402/PA406: which constraint means which teardown order. */
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { emptyContext } from '../dist/src/discovery/context.js';
import { scan } from '../dist/src/engine/scan.js';
import { resolveConfig } from '../dist/src/config/config.js';
import type { Finding } from '../src/types.js';
import { fastapiVersion, yieldDependencyOutlivesStream } from '../dist/src/rules/python/lifecycle/semantics.js';

function ctx(version: string | null) {
  const c = emptyContext('.');
  if (version !== undefined) c.stack['fastapi'] = { version, source: 'pyproject.toml', kind: 'framework' };
  return c;
}

describe('PA403 severity by where the code runs', () => {
  it('a session left open in a background job is medium; on a request path high', async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA403'] }, {}, null);
    const found = (await scan(path.resolve(__dirname, '../fixtures/lifecycle/cleanup'), config, { inProcessBytes: Infinity })).result.findings;
    const job = found.find((f) => f.path === 'app/jobs/purge.py')!;
    expect(job.severity).toBe('medium');
    expect(found.some((f) => f.path !== 'app/jobs/purge.py' && /session `\w+ = \w+\(\)` is never closed/.test(f.message) && f.severity === 'high')).toBe(true);
  });
  it('one closed on the normal path leaks only on failures: a step lower, and PA405 alone reports an except that leaves', async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA403', 'PA405'] }, {}, null);
    const found = (await scan(path.resolve(__dirname, '../fixtures/lifecycle/cleanup'), config, { inProcessBytes: Infinity })).result.findings;
    const normalOnly = found.find((f) => f.code === 'PA403' && f.function === 'count_rows')!;
    expect(normalOnly.message).toMatch(/closed only on the normal path: .* open until the garbage collector frees it/);
    expect(normalOnly.severity).toBe('medium');
    const leaving = found.filter((f) => f.function === 'run_job');
    expect(leaving.map((f) => [f.code, f.severity])).toEqual([['PA405', 'medium']]);
  });
});

describe('Registries kept on a class, and one built per call', () => {
  it('PA410 rates a class-held registry of a Flask app high, as a module global', async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA410'] }, {}, null);
    const found = (await scan(path.resolve(__dirname, '../fixtures/lifecycle/scoped-class-registry'), config, { inProcessBytes: Infinity })).result.findings;
    expect(found.map((f) => f.line).sort((a, b) => a - b)).toEqual([14, 26, 35, 43]);
    expect(found.every((f) => f.severity === 'high')).toBe(true);
  });
  it('PA403 says why a per-call `scoped_session` is this call\'s to close', async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA403'] }, {}, null);
    const found = (await scan(path.resolve(__dirname, '../fixtures/lifecycle/protocols'), config, { inProcessBytes: Infinity })).result.findings;
    const perCall = found.find((f) => f.path === 'app/ledgers.py' && f.function === 'close_ticket')!;
    expect(perCall.message).toMatch(/builds a new `scoped_session` registry on every call/);
    expect(perCall.recommendation).toMatch(/remove\(\)/);
    const viaHelper = found.find((f) => f.path === 'app/ledgers.py' && f.function === 'open_count')!;
    expect(viaHelper.message).toMatch(/`TicketLedger\._open` makes a new one on every call/);
  });
});

describe('PA402 severity by how long the stream lasts', () => {
  it('a stream that yields a fixed number of times and ends is medium; an open-ended one critical', async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA402'] }, {}, null);
    const FIXTURES = path.resolve(__dirname, '../fixtures/lifecycle');
    const flask = (await scan(path.join(FIXTURES, 'streaming-flask'), config, { inProcessBytes: Infinity })).result.findings;
    expect(flask.find((f) => f.function === 'publish_progress')).toMatchObject({ severity: 'medium' });
    expect(flask.find((f) => f.function === 'live_notices')).toMatchObject({ severity: 'critical' });
    const fastapi = (await scan(path.join(FIXTURES, 'streaming-modern'), config, { inProcessBytes: Infinity })).result.findings;
    expect(fastapi.find((f) => f.function === 'job_checklist')).toMatchObject({ severity: 'medium' });
    expect(fastapi.find((f) => f.function === 'job_events')).toMatchObject({ severity: 'critical' });
  });
});

describe('PA402 downloads that outlive the request', () => {
  it('a session held while a FileResponse or byte stream is sent is medium, and names the class and the FastAPI window', async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA402'] }, {}, null);
    const FIXTURES = path.resolve(__dirname, '../fixtures/lifecycle');
    const found = (await scan(path.join(FIXTURES, 'downloads-modern'), config, { inProcessBytes: Infinity })).result.findings;
    expect(found.map((f) => f.function).sort()).toEqual([
      'calling_vendor', 'calling_vendor_own_session', 'image_as_path', 'image_attachment', 'image_blob', 'image_counted', 'image_manual', 'image_manual_static', 'image_pieces', 'image_raw', 'image_typed',
    ]);
    // Built by a static method of a project class, or returned by a service to a handler annotated `-> FileResponse`.
    expect(found.find((f) => f.function === 'image_manual_static')!.message).toMatch(/`ManualFiles\.bundle` download/);
    expect(found.find((f) => f.function === 'image_manual')!.message).toMatch(/`FileResponse` download/);
    // `use_cache=False`: its own session, not the one `image_manual_own_vendor` closes (the cached one, in `image_manual_released`, is released).
    expect(found.find((f) => f.function === 'calling_vendor_own_session')!.message).toMatch(/download of `image_manual_own_vendor`/);
    expect(found.every((f) => f.severity === 'medium' && !f.advisory)).toBe(true);
    expect(found.find((f) => f.function === 'image_blob')!.message).toMatch(/after the `FileResponse` download has been sent \(FastAPI < 0\.106 and ≥ 0\.118/);
    expect(found.find((f) => f.function === 'image_raw')!.message).toMatch(/`StreamingResponse` download/);
    expect(found.find((f) => f.function === 'image_counted')!.message).toMatch(/`image\.blob_path` after the commit loads the expired row again/);
    expect(found.find((f) => f.function === 'calling_vendor')!.message).toMatch(/whole `FileResponse` download of `vendor_image`.*FastAPI < 0\.106/);
    // FastAPI 0.106-0.117 ran the dependency's exit code before the body went out.
    const window = (await scan(path.join(FIXTURES, 'downloads-window'), config, { inProcessBytes: Infinity })).result.findings;
    expect(window).toEqual([]);
  });
});

describe('FastAPI version for yield-dependency teardown', () => {
  it.each([
    ['==0.115.12', [0, 115, 12], false],
    ['^0.110', [0, 110, 0], false],
    ['~=0.117.1', [0, 117, 1], false],
    ['0.118.0', [0, 118, 0], true],
    ['==0.100.1', [0, 100, 1], true],
    ['>=0.106,<0.118', [0, 117, 999], false],
    ['>=0.100', null, true],
    [null, null, true],
  ])('%s', (constraint, version, outlives) => {
    expect(fastapiVersion(ctx(constraint))).toEqual(version);
    expect(yieldDependencyOutlivesStream(ctx(constraint))).toBe(outlives);
  });
});

describe('PA408 shared_session and PA409 concurrent_session', () => {
  const FIXTURES = path.resolve(__dirname, '../fixtures/lifecycle');
  let shared: Finding[] = [];
  let concurrent: Finding[] = [];
  beforeAll(async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA4'] }, {}, null);
    shared = (await scan(path.join(FIXTURES, 'shared-session'), config, { inProcessBytes: Infinity })).result.findings;
    concurrent = (await scan(path.join(FIXTURES, 'concurrent-session'), config, { inProcessBytes: Infinity })).result.findings;
  });

  it('names where the shared session was made, once per file, and is advisory in a one-off script', () => {
    const api = shared.filter((f) => f.code === 'PA408' && f.path === 'app/api.py');
    expect(api.map((f) => f.line)).toEqual([15, 26, 32, 77, 88]);
    expect(api[3]!.message).toMatch(/^`db` defaults to `SessionLocal\(\)`, made once when `defaulted` is defined: every call that leaves it out shares that one `Session`/);
    expect(api[0]!.severity).toBe('high');
    expect(api[0]!.message).toBe('`db` is one `Session` made at import (`db = SessionLocal()`, app/db.py:13) and used by `items`'
      + ' and 1 other function of this file: every request thread shares its transaction and connection, and a session is not safe for concurrent use');
    expect(api[1]!.message).toMatch(/^`adb` is one `AsyncSession` .* every task shares/);
    const script = shared.find((f) => f.code === 'PA408' && f.path === 'scripts/backfill.py')!;
    expect(script.advisory).toBe(true);
  });

  it('still finds the shared session when the scanned root sits above the package root', async () => {
    // Scanned from fixtures/lifecycle: `from app.db import db` names `shared-session.app.db.db`.
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA408'] }, {}, null);
    const above = (await scan(FIXTURES, config, { inProcessBytes: Infinity })).result.findings;
    expect(above.filter((f) => f.path === 'shared-session/app/api.py').map((f) => f.line)).toEqual([15, 26, 32, 77, 88]);
  });

  it('says how the coroutines were written and which session they share', () => {
    const at = (line: number) => concurrent.find((f) => f.code === 'PA409' && f.line === line);
    expect(at(25)!.message).toMatch(/^`asyncio.gather` runs one `load` per item at the same time on one AsyncSession `session`/);
    expect(at(34)!.message).toMatch(/runs 2 coroutines at the same time on one AsyncSession `session`/);
    expect(at(53)!.message).toMatch(/on one asyncpg connection `conn`/);
    expect(at(47)!.message).toMatch(/^`tg.create_task` starts a task on AsyncSession `session` on every iteration of the loop/);
    // Appended one per item in a loop, then spread into the gather.
    expect(at(219)!.message).toMatch(/^`asyncio.gather` runs one `load` per item at the same time on one AsyncSession `session`/);
    expect(at(224)!.message).toMatch(/runs 2 coroutines at the same time/);
  });
});

describe('PA407 engine_per_request', () => {
  let found: Finding[] = [];
  beforeAll(async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA407'] }, {}, null);
    found = (await scan(path.resolve(__dirname, '../fixtures/lifecycle/engines'), config, { inProcessBytes: Infinity })).result.findings;
  });

  it('reports one construction reached from several handlers once, and counts the others', () => {
    const viaHelper = found.filter((f) => f.chain?.some((s) => /engine_for$/.test(s.function ?? '')) && f.severity === 'high');
    expect(viaHelper.map((f) => f.line)).toEqual([14]);
    expect(viaHelper[0]!.message).toMatch(/; 2 other handlers reach the same construction$/);
  });

  it('claims less for an engine with NullPool per request, and nothing for one per job', () => {
    const unpooled = found.find((f) => f.path === 'app/dependencies.py' && f.function === 'unpooled_engine')!;
    expect(unpooled.severity).toBe('medium');
    expect(unpooled.message).toMatch(/`NullPool`: no pool/);
    expect(found.some((f) => f.path === 'app/tasks.py' && f.function === '_refresh_totals')).toBe(false);
  });

  it('names a class dependency by its class, not its __init__', () => {
    const ledger = found.find((f) => f.path === 'app/dependencies.py' && f.function === '__init__' && /LEDGER|Ledger/.test(f.message))!;
    expect(ledger.message).toMatch(/in request dependency `Ledger` builds/);
  });

  it('claims less for a SQLite engine: a file reopened, no server connection', () => {
    const lib = found.find((f) => f.function === 'library_titles')!;
    expect(lib.severity).toBe('medium');
    expect(lib.message).toMatch(/new SQLite engine/);
    const job = found.find((f) => f.function === 'rebuild_region_index')!;
    expect(job.severity).toBe('medium');
  });
});

describe('PA404 pool_configuration', () => {
  let found: Finding[] = [];
  beforeAll(async () => {
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA404'] }, {}, null);
    found = (await scan(path.resolve(__dirname, '../fixtures/lifecycle/pool'), config, { inProcessBytes: Infinity })).result.findings;
  });

  it('claims medium for a pool with neither pre-ping nor recycle: a restart costs about one failed request per pool', () => {
    const bare = found.find((f) => f.path === 'app/db.py' && f.line === 13)!;
    expect(bare.message).toMatch(/neither `pool_pre_ping` nor `pool_recycle`/);
    expect(bare.originalSeverity).toBe('medium');
  });
});
