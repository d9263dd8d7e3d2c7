/**
 * The worker pool: batches sized by bytes, a failing batch retried once, and a batch that keeps
 * failing reduced to the files that fail (reported as internal errors) while every other
 * result stands. Failures are injected through the worker's test-only environment hook. The
 * same holds for a pass small enough to run on the main thread instead of the workers.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditPool, makeBatches, runPool } from '../dist/src/pool/pool.js';
import { emptyContext } from '../dist/src/discovery/context.js';
import { walk } from '../dist/src/discovery/walk.js';

let root: string;

function setup() {
  return { context: emptyContext(root), rootDir: root, parser: 'auto' as const, codes: ['PA303'] };
}

describe('makeBatches', () => {
  const files = Array.from({ length: 50 }, (_, i) => ({ rel: `f${String(i).padStart(2, '0')}.py`, abs: `/x/f${i}.py`, size: 10 + ((i * 37) % 90) }));

  it('fills each batch to the byte target, largest files first, and loses no file', () => {
    const target = 300;
    const batches = makeBatches(files, target);
    const size = new Map(files.map((f) => [f.rel, f.size]));
    const bytes = batches.map((b) => b.files.reduce((s, f) => s + size.get(f.rel)!, 0));
    for (const b of bytes.slice(0, -1)) expect(b).toBeGreaterThanOrEqual(target);
    const largest = Math.max(...files.map((f) => f.size));
    for (const b of bytes) expect(b).toBeLessThan(target + largest);
    const sizes = batches.flatMap((b) => b.files.map((f) => size.get(f.rel)!));
    expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
    expect(batches.flatMap((b) => b.files.map((f) => f.rel)).sort()).toEqual(files.map((f) => f.rel).sort());
  });

  it('caps a batch at 200 files however small they are', () => {
    const tiny = Array.from({ length: 450 }, (_, i) => ({ rel: `t${i}.py`, abs: `/x/t${i}.py`, size: 1 }));
    expect(makeBatches(tiny, 1 << 20).map((b) => b.files.length)).toEqual([200, 200, 50]);
  });
});

const RUNNERS = [
  { name: 'workers', inProcessBytes: 0, where: 'worker' },
  { name: 'main thread', inProcessBytes: undefined, where: 'main-thread analysis' },
];

describe.each(RUNNERS)('runPool failures ($name)', ({ inProcessBytes, where }) => {
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-pool-test-'));
    for (const name of ['a.py', 'b.py', 'bad_c.py', 'd.py']) {
      fs.writeFileSync(path.join(root, name), `import time\n\n\nasync def handler_${name[0]}():\n    time.sleep(1)\n`);
    }
  });
  afterAll(() => {
    fs.rmSync(root, { recursive: true, force: true });
    delete process.env.PERSIST_AUDIT_TEST_WORKER_FAIL;
    delete process.env.PERSIST_AUDIT_TEST_WORKER_FAIL_ONCE;
  });

  it('retries a failed batch once and keeps its results when the retry succeeds', async () => {
    const marker = path.join(root, '..', `${path.basename(root)}.failed-once`);
    process.env.PERSIST_AUDIT_TEST_WORKER_FAIL = 'bad_';
    process.env.PERSIST_AUDIT_TEST_WORKER_FAIL_ONCE = marker;
    try {
      const { outcomes } = await runPool(walk(root).python, { jobs: 2, setup: setup(), batchBytes: 1 << 20, inProcessBytes });
      expect(fs.existsSync(marker)).toBe(true); // it did fail once
      expect(outcomes).toHaveLength(4);
      for (const o of outcomes) {
        expect(o.internalErrors).toEqual([]);
        expect(o.findings.map((f) => f.code)).toEqual(['PA303']);
      }
    } finally {
      delete process.env.PERSIST_AUDIT_TEST_WORKER_FAIL_ONCE;
      fs.rmSync(marker, { force: true });
    }
  });

  it('reports the files of a batch that fails twice as failed, and the other results stand', async () => {
    process.env.PERSIST_AUDIT_TEST_WORKER_FAIL = 'bad_';
    try {
      // One batch holds every file: the pool must isolate the failing one.
      const { outcomes } = await runPool(walk(root).python, { jobs: 2, setup: setup(), batchBytes: 1 << 20, inProcessBytes });
      expect(outcomes.map((o) => o.path).sort()).toEqual(['a.py', 'b.py', 'bad_c.py', 'd.py']);
      for (const o of outcomes) {
        if (o.path === 'bad_c.py') {
          expect(o.findings).toEqual([]);
          expect(o.internalErrors).toHaveLength(1);
          expect(o.internalErrors[0]!.message).toMatch(new RegExp(`^${where} failed twice.*injected worker failure`));
        } else {
          expect(o.internalErrors).toEqual([]);
          expect(o.findings.map((f) => f.code)).toEqual(['PA303']);
        }
      }
    } finally {
      delete process.env.PERSIST_AUDIT_TEST_WORKER_FAIL;
    }
  });
});

describe('where a small pass runs', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-pool-where-'));
    fs.writeFileSync(path.join(dir, 'a.py'), 'import time\n\n\nasync def handler():\n    time.sleep(1)\n');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('on the main thread with the WASM parser, in the workers with the native binding (a crash there must not end the scan)', async () => {
    for (const [parser, expected] of [['wasm', { mainThread: 1, workers: 0 }], ['native', { mainThread: 0, workers: 1 }]] as const) {
      const pool = new AuditPool({ jobs: 1, setup: { context: emptyContext(dir), rootDir: dir, parser, codes: ['PA303'] } });
      try {
        const { outcomes } = await pool.audit(walk(dir).python, null);
        expect(outcomes.map((o) => o.findings.map((f) => f.code))).toEqual([['PA303']]);
        expect(pool.passes).toEqual(expected);
      } finally {
        await pool.close();
      }
    }
  });
});
