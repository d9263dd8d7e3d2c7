/**
 * Execution context (Rule 6, widened): code that runs only once — migrations, scripts and CLI
 * commands, startup hooks, import time — is advisory, with its evidence; `execution-context:
 * strict` judges it as if it served requests; a cached rescan gives the same answer.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig, validateConfigObject } from '../dist/src/config/config.js';
import { scan } from '../dist/src/engine/scan.js';
import { oneOffFile } from '../dist/src/analysis/executionContext.js';
import { tempDir } from './helpers/tmp.js';

const FIXTURE = path.resolve(__dirname, '../fixtures/execution');

async function findings(over: Record<string, unknown> = {}, cacheDir?: string) {
  const config = resolveConfig({ report: null, log: null, cache: cacheDir !== undefined, jobs: 1, ...over }, {}, null);
  const out = await scan(FIXTURE, config, { cacheDir, inProcessBytes: Infinity });
  return out.result.findings;
}

const key = (f: { path: string; line: number; code: string }) => `${f.path}:${f.line} ${f.code}`;

describe('execution context', () => {
  it('records why each one-off finding is advisory', async () => {
    const got = new Map((await findings()).map((f) => [key(f), f]));
    const evidence = (k: string) => got.get(k)!.downgrades.find((d) => d.rule === 'execution_context')?.evidence ?? '';
    expect(evidence('shop/db_changes/0007_backfill_vendor_names.py:12 PA107')).toMatch(/a migration/);
    // A module of its own for a package's migrations (`wallets/migrations.py`); the same loop beside it is not one.
    expect(evidence('shop/wallets/migrations.py:13 PA102')).toMatch(/a migration/);
    expect(got.get('shop/wallets/housekeeping.py:9 PA102')).toMatchObject({ advisory: false });
    expect(evidence('shop/pricing.py:16 PA107')).toMatch(/reached only from scripts or CLI commands/);
    expect(evidence('shop/warmup.py:11 PA107')).toMatch(/__main__/);
    // Under tasks/ but run as a program: a script (advisory), not a job (low).
    expect(evidence('shop/tasks/reindex_vendors.py:11 PA107')).toMatch(/__main__/);
    expect(got.get('shop/tasks/vendor_sync.py:11 PA107')).toMatchObject({ advisory: false, severity: 'low' });
    expect(got.get('shop/tasks/stock_worker.py:12 PA107')).toMatchObject({ advisory: false, severity: 'low' });
    expect(evidence('shop/app.py:37 PA301')).toMatch(/startup/);
    // A task the lifespan starts runs beside the requests: not startup code.
    expect(got.get('shop/app.py:26 PA301')).toMatchObject({ advisory: false, downgrades: [] });
    // One it awaits before serving is startup code still.
    expect(evidence('shop/app.py:32 PA301')).toMatch(/startup/);
    expect(evidence('shop/commands.py:20 PA404')).toMatch(/CLI command/);
    // A class-based CLI framework's command (cliff's `take_action(self, parsed_args)`) and what only it reaches.
    expect(evidence('shop/admin_commands.py:13 PA107')).toMatch(/reached only from scripts or CLI commands/);
    expect(evidence('shop/admin_commands.py:25 PA107')).toMatch(/CLI command/);
    // A module that seeds demo data is run by hand; the same loop in a service module is not.
    expect(evidence('shop/create_demo_data.py:10 PA207')).toMatch(/one-off code: create_demo_data\.py/);
    expect(got.get('shop/vendor_import.py:10 PA207')!.advisory).toBe(false);
    // A function that drives Alembic runs when the schema changes, whoever calls it.
    expect(evidence('shop/addons.py:22 PA207')).toMatch(/a migration runner \(it drives Alembic from code\)/);
    expect(got.get('shop/addons.py:34 PA207')).toMatchObject({ advisory: false, severity: 'medium' });
    const advisory = got.get('shop/pricing.py:16 PA107')!;
    expect(advisory).toMatchObject({ advisory: true, severity: 'high' });
    expect(advisory.downgrades[0]).toMatchObject({ from: 'high', to: 'advisory' });
    // Shared with a handler, or called by nothing the repo shows: stays reported.
    expect(got.get('shop/pricing.py:10 PA107')!.advisory).toBe(false);
    expect(got.get('shop/pricing.py:27 PA107')!.advisory).toBe(false);
    // An engine made at startup is the one that serves the requests.
    expect(got.get('shop/app.py:38 PA404')!.advisory).toBe(false);
  });

  it('per-item queries only administrators\' handlers reach are medium at most, with the handler as evidence', async () => {
    const got = new Map((await findings()).map((f) => [key(f), f]));
    const lineOf = (text: string) => fs.readFileSync(path.join(FIXTURE, 'shop/back_office.py'), 'utf8').split('\n').findIndex((l) => l.includes(text)) + 1;
    // A helper only the superuser-only page calls, and a page that refuses everyone else first.
    const helper = got.get(`shop/back_office.py:${lineOf('vendor = db.scalars(select(Vendor)')} PA107`)!;
    expect(helper).toMatchObject({ advisory: false, severity: 'medium', originalSeverity: 'high' });
    expect(helper.downgrades).toEqual([{ rule: 'execution_context', from: 'high', to: 'medium', evidence: 'reached only from handlers administrators use, e.g. `vendors_page` (shop/back_office.py)' }]);
    const [guarded, everyone] = [...got.values()].filter((f) => f.path === 'shop/back_office.py' && f.line > helper.line).sort((a, b) => a.line - b.line);
    expect(guarded).toMatchObject({ severity: 'medium' });
    expect(guarded!.downgrades[0]!.evidence).toMatch(/`skus_page` .*a handler only administrators reach/);
    // An early way out for administrators is no gate: everyone else runs the loop.
    expect(everyone).toMatchObject({ severity: 'high', downgrades: [] });
  });

  it('per-item queries only background jobs reach are low, with the job as evidence', async () => {
    const got = new Map((await findings()).map((f) => [key(f), f]));
    const job = got.get('shop/nightly.py:15 PA107')!;
    expect(job).toMatchObject({ advisory: false, severity: 'low', originalSeverity: 'high' });
    expect(job.downgrades).toEqual([{ rule: 'execution_context', from: 'high', to: 'low', evidence: 'reached only from background jobs, never from a request handler' }]);
    // The helper a handler shares with the job keeps its severity (its loop is over the rows the handler passes).
    expect(got.get('shop/pricing.py:10 PA107')).toMatchObject({ severity: 'high', downgrades: [] });
    // An override nothing calls runs where the base class's `self._rows()` runs: the job picks the
    // class (`cls = VendorExporter if ... else Exporter; cls(db).run()`).
    expect(got.get('shop/exports.py:30 PA107')).toMatchObject({ severity: 'low', originalSeverity: 'high' });
    expect(got.get('shop/exports.py:30 PA107')!.downgrades[0]!.evidence).toMatch(/only from background jobs/);
    // The same shape behind a request handler keeps its severity.
    expect(got.get('shop/exports.py:58 PA107')).toMatchObject({ severity: 'high', downgrades: [] });
  });

  it('per-item work a job does that its rule already rates low is advisory; the same in a request stays low', async () => {
    const all = await findings();
    const at = (file: string, text: string) => {
      const line = fs.readFileSync(path.join(FIXTURE, file), 'utf8').split('\n').findIndex((l) => l.includes(text)) + 1;
      return all.find((f) => f.path === file && f.line === line && f.code === 'PA107')!;
    };
    const job = at('shop/nightly.py', '_relabel(db, product)');
    expect(job).toMatchObject({ advisory: true, severity: 'low', originalSeverity: 'low' });
    expect(job.downgrades).toEqual([{ rule: 'execution_context', from: 'low', to: 'advisory', evidence: expect.stringMatching(/^runs in a background job \(`relabel_products`\).*already low where it runs/) }]);
    expect(at('shop/api.py', '_relabel_now(db, product)')).toMatchObject({ advisory: false, severity: 'low', downgrades: [] });
    // A job's N+1 over rows that grow is lowered to low, not hidden.
    expect(at('shop/nightly.py', 'vendor = db.scalar(select(Vendor).where(Vendor.id == product.vendor_id))  # expect')).toMatchObject({ advisory: false, severity: 'low' });
  });

  it('jobs a scheduler runs (a decorator whose arguments say when, `every(...).do`, `add_job`) lower PA108/PA207 to low and PA202 to medium', async () => {
    const got = new Map((await findings()).map((f) => [key(f), f]));
    const job = (line: number, code: string) => got.get(`shop/rate_jobs.py:${line} ${code}`)!;
    // `@ticker.every_run(every(6).hours)` on a project runner object.
    expect(job(20, 'PA108')).toMatchObject({ advisory: false, severity: 'low', originalSeverity: 'medium' });
    expect(job(20, 'PA108').downgrades).toEqual([{ rule: 'execution_context', from: 'medium', to: 'low', evidence: 'runs in a background job (`audit_quotes`), not on a request path' }]);
    expect(job(29, 'PA207')).toMatchObject({ severity: 'low', originalSeverity: 'medium' });
    // `schedule.every(15).minutes.do(refresh_quotes)`: a wait in the job's transaction is medium at most.
    expect(job(38, 'PA202')).toMatchObject({ severity: 'medium', originalSeverity: 'high' });
    expect(job(38, 'PA202').downgrades[0]!.evidence).toMatch(/background job \(`refresh_quotes`\)/);
    // APScheduler's `add_job(expire_quotes, "interval", ...)`.
    expect(job(47, 'PA207')).toMatchObject({ severity: 'low', originalSeverity: 'medium' });
    // The same shapes in request handlers, one under a decorator whose arguments are no schedule.
    expect(got.get('shop/rate_views.py:27 PA108')).toMatchObject({ severity: 'medium', downgrades: [] });
    expect(got.get('shop/rate_views.py:35 PA207')).toMatchObject({ severity: 'medium', downgrades: [] });
    expect(got.get('shop/rate_views.py:43 PA202')).toMatchObject({ severity: 'high', downgrades: [] });
  });

  it('an engine a script builds (under `__main__`, or in a module that exits) is advisory; one a `__main__` server uses is not', async () => {
    const got = new Map((await findings()).map((f) => [key(f), f]));
    const evidence = (k: string) => got.get(k)!.downgrades.find((d) => d.rule === 'execution_context')?.evidence ?? '';
    expect(got.get('wait_for_db.py:12 PA404')!.advisory).toBe(true);
    expect(evidence('wait_for_db.py:12 PA404')).toMatch(/a script: its module-level code exits the process \(`sys.exit\(\)` at line 10\)/);
    expect(evidence('shop/stock_report.py:11 PA404')).toMatch(/if __name__ == "__main__":/);
    expect(got.get('shop/devserver.py:9 PA404')).toMatchObject({ advisory: false, severity: 'medium' });
  });

  it('benchmark folders are one-off code by the start or the end of their name (bench*/, *-benchmark/)', () => {
    const kind = (p: string) => oneOffFile({ path: p, imports: [], moduleDefs: [], functions: [] } as never, () => false)?.kind ?? null;
    for (const p of ['bench/load.py', 'benchmarks/run.py', 'packages/app-benchmark/suite.py', 'svc/bench_utils/x.py', 'svc/benchmarking/x.py']) expect(kind(p)).toBe('script');
    // Other words that start or end with 'bench', and Frappe's deployment root, are not benchmarks.
    for (const p of ['workbench/app.py', 'app/benchmark.py', 'benchling/client.py', 'frappe-bench/apps/x.py', 'lab_bench/run.py', 'bencher/a.py']) expect(kind(p)).toBeNull();
  });

  it('strict mode judges one-off code as if it served requests', async () => {
    const all = await findings({ executionContext: 'strict' });
    expect(all.filter((f) => f.downgrades.some((d) => d.rule === 'execution_context'))).toEqual([]);
    expect(all.find((f) => key(f) === 'shop/pricing.py:16 PA107')!.advisory).toBe(false);
  });

  it('a cached rescan keeps the contexts', async () => {
    const dir = tempDir('pa-exec-cache-');
    const cold = await findings({}, dir);
    expect(fs.readdirSync(dir).length).toBeGreaterThan(0);
    const warm = await findings({}, dir);
    expect(warm).toEqual(cold);
  });

  it('the config key takes default or strict, nothing else', () => {
    expect(validateConfigObject({ 'execution-context': 'strict' }, 'x.yaml')).toEqual({ executionContext: 'strict' });
    expect(() => validateConfigObject({ execution_context: 'loose' }, 'x.yaml')).toThrow(/"execution_context" must be one of default, strict/);
  });
});
