/**
 * The incremental cache: a warm scan gives the same bytes as a cold one and as an uncached one;
 * a changed file is analysed again; a corrupt pack is ignored; `--no-cache` neither reads nor
 * writes; an unwritable cache directory costs a notice, never the scan.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scan } from '../dist/src/engine/scan.js';
import { resolveConfig } from '../dist/src/config/config.js';
import { renderFormat } from '../dist/src/report/index.js';

const FIXTURE = path.resolve(__dirname, '../fixtures/runtime');
const HOUR_AGO = new Date(Date.now() - 3600_000);
let root: string;

function config(cache: boolean) {
  return resolveConfig({ report: null, log: null, cache, jobs: 2, quiet: true, failOn: 'never' }, {}, null);
}

/** The JSON output without the one field that legitimately differs between runs. */
async function run(cache: boolean, hooks: Record<string, unknown> = {}) {
  const out = await scan(root, config(cache), hooks);
  const json = renderFormat(out.result, 'json', { color: false }).replace(/"durationMs": \d+/, '"durationMs": 0');
  return { json, out };
}

/** Sets every file's mtime an hour back, so the stat fast path (not the racy-mtime hash check) decides. */
function ageTree(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) ageTree(p);
    else fs.utimesSync(p, HOUR_AGO, HOUR_AGO);
  }
}

const packPath = () => path.join(root, '.persist-audit-cache', 'pack-v1.bin');

describe('incremental cache', () => {
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-cache-test-'));
    fs.cpSync(FIXTURE, root, { recursive: true, filter: (src) => !src.includes('.persist-audit-cache') });
    ageTree(root);
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('a warm scan equals the cold scan and an uncached scan, byte for byte', async () => {
    const uncached = await run(false);
    expect(fs.existsSync(packPath())).toBe(false);
    const cold = await run(true);
    expect(cold.out.cache).toMatchObject({ hits: 0, contextHit: false, wrote: true });
    expect(fs.existsSync(packPath())).toBe(true);
    expect(cold.out.result.findings.length).toBeGreaterThan(0);
    const warm = await run(true);
    expect(warm.out.cache).toMatchObject({ misses: 0, hashed: 0, contextHit: true, wrote: false });
    expect(warm.out.cache!.hits).toBe(cold.out.cache!.misses);
    expect(warm.json).toBe(cold.json);
    expect(warm.json).toBe(uncached.json);
  });

  it('a changed file is analysed again, and the result equals an uncached scan', async () => {
    const file = path.join(root, 'PA303.py');
    fs.appendFileSync(file, '\n\nasync def added_later():\n    time.sleep(3)\n');
    const changed = await run(true);
    expect(changed.out.cache).toMatchObject({ misses: 1, contextHit: false });
    expect(changed.out.result.findings.some((f) => f.path === 'PA303.py' && f.function === 'added_later')).toBe(true);
    expect(changed.json).toBe((await run(false)).json);
    ageTree(root);
  });

  it('a touched but unchanged file is a hit confirmed by its content hash', async () => {
    await run(true); // record the aged mtimes
    const file = path.join(root, 'PA301.py');
    const later = new Date(HOUR_AGO.getTime() + 60_000);
    fs.utimesSync(file, later, later);
    const touched = await run(true);
    expect(touched.out.cache).toMatchObject({ misses: 0, hashed: 1 });
    expect(touched.json).toBe((await run(false)).json);
  });

  it('a corrupt pack is ignored and replaced', async () => {
    const reference = (await run(false)).json;
    await run(true);
    const bytes = fs.readFileSync(packPath());
    // Truncated in the middle, then garbage: neither may be trusted.
    for (const broken of [bytes.subarray(0, bytes.length >> 1), Buffer.from('PACACHE1\x10\x00\x00\x00not a v8 value at all')]) {
      fs.writeFileSync(packPath(), broken);
      const res = await run(true);
      expect(res.out.cache!.hits).toBe(0);
      expect(res.json).toBe(reference);
      expect(fs.readFileSync(packPath()).subarray(0, 8).toString('latin1')).toBe('PACACHE1');
    }
    const again = await run(true);
    expect(again.out.cache!.misses).toBe(0);
    expect(again.json).toBe(reference);
  });

  it('--no-cache neither reads nor writes the cache', async () => {
    await run(true);
    const before = fs.statSync(packPath());
    // Same size and mtime, other content: the stat fast path would trust the entry; no-cache must not read it.
    const file = path.join(root, 'PA303.py');
    const text = fs.readFileSync(file, 'utf8');
    const swapped = text.replace('time.sleep(1)  # expect: PA303', 'await asyncio.sleep(1)        ');
    expect(swapped.length).toBe(text.length);
    const st = fs.statSync(file);
    fs.writeFileSync(file, swapped);
    fs.utimesSync(file, st.atime, st.mtime);
    const uncached = await run(false);
    expect(uncached.out.cache).toBeNull();
    const after = fs.statSync(packPath());
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(after.size).toBe(before.size);
    expect(uncached.out.result.findings.some((f) => f.path === 'PA303.py' && f.line === 14)).toBe(false);
    // The documented policy: PERSIST_AUDIT_CACHE_VERIFY=1 hashes every file and catches it too.
    process.env.PERSIST_AUDIT_CACHE_VERIFY = '1';
    try {
      const verified = await run(true);
      expect(verified.json).toBe(uncached.json);
    } finally {
      delete process.env.PERSIST_AUDIT_CACHE_VERIFY;
    }
  });

  it('an unwritable cache directory only costs one notice', async () => {
    const blocker = path.join(root, 'not-a-dir');
    fs.writeFileSync(blocker, 'a file where the cache directory would go\n');
    const notices: string[] = [];
    const res = await run(true, { cacheDir: path.join(blocker, 'cache'), notice: (m: string) => notices.push(m) });
    expect(res.json).toBe((await run(false)).json);
    expect(notices.filter((m) => m.startsWith('cache not written'))).toHaveLength(1);
    fs.rmSync(blocker);
  });
});
