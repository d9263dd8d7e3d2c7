/**
 * The project's database decides what a round trip costs: on SQLite (a file read in the process)
 * per-statement findings are at most low, with the evidence; the same code with a server
 * database's driver in its manifests keeps its severity.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../dist/src/config/config.js';
import { scan } from '../dist/src/engine/scan.js';
import { tempDir } from './helpers/tmp.js';

const FIXTURE = path.resolve(__dirname, '../fixtures/sqlite-only');

async function findings(root: string) {
  const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1 }, {}, null);
  return (await scan(root, config, { inProcessBytes: Infinity })).result.findings;
}

describe('SQLite as the only database', () => {
  it('lowers N+1s to medium and sync calls on the event loop to low, saying why', async () => {
    const got = await findings(FIXTURE);
    const n1 = got.find((f) => f.code === 'PA107')!;
    const sync = got.find((f) => f.code === 'PA307')!;
    for (const [f, to] of [[n1, 'medium'], [sync, 'low']] as const) {
      expect(f.severity).toBe(to);
      expect(f.downgrades).toEqual([expect.objectContaining({ rule: 'database', from: 'high', to, evidence: expect.stringMatching(/only database is SQLite \(the engine in app\/(db\.py:10|async_api\.py:8);/) })]);
    }
  });

  it('keeps a lazy load on an AsyncSession high: it raises, which no local database makes cheaper', async () => {
    const got = await findings(FIXTURE);
    const lazy = got.find((f) => f.code === 'PA108' && f.path === 'app/async_api.py')!;
    expect(lazy).toMatchObject({ severity: 'high', advisory: false, downgrades: [] });
    expect(lazy.message).toMatch(/MissingGreenlet/);
  });

  it('leaves an ADR override in force: the cap does not replace it', async () => {
    const root = tempDir('pa-sqlite-adr-');
    fs.cpSync(FIXTURE, root, { recursive: true });
    fs.mkdirSync(path.join(root, 'docs/adr'), { recursive: true });
    fs.writeFileSync(path.join(root, 'docs/adr/0001-sync-reads.md'), '# 1. Sync reads in app/api.py\n\nStatus: accepted\n\nThe note endpoint in app/api.py stays sync for now.\n');
    const sync = (await findings(root)).find((f) => f.code === 'PA307')!;
    expect(sync).toMatchObject({ advisory: true });
    expect(sync.downgrades.map((d) => d.rule)).toEqual(['adr_override']);
  });

  it('keeps the severity when the manifests name a server database driver', async () => {
    const root = tempDir('pa-sqlite-');
    fs.cpSync(FIXTURE, root, { recursive: true });
    fs.appendFileSync(path.join(root, 'requirements.txt'), 'psycopg2-binary>=2.9\n');
    const got = await findings(root);
    expect(got.find((f) => f.code === 'PA107')).toMatchObject({ severity: 'high', downgrades: [] });
    expect(got.find((f) => f.code === 'PA307')).toMatchObject({ severity: 'high', downgrades: [] });
  });
});
