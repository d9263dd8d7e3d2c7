/**
 * The bench's CPU split by thread: reading `/proc`'s stat lines and attributing a measure's CPU
 * to the main thread, the helper threads and the worker threads that came and went.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { splitCpu, statTicks, threadCpu } from '../dist/bench/threads.js';

describe('statTicks', () => {
  it('adds utime and stime, counting fields from the last parenthesis of the name', () => {
    // Fields 14 and 15 (utime, stime) are 250 and 17; the name holds a space and a ')'.
    const stat = '4242 (node (x) y) R 1 4242 4242 0 -1 4194560 2000 0 0 0 250 17 0 0 20 0 12 0 100 1 2 3';
    expect(statTicks(stat)).toBe(267);
  });

  it('gives null for a line it cannot read', () => {
    expect(statTicks('garbage')).toBeNull();
    expect(statTicks('1 (a) R 1 2')).toBeNull();
  });
});

describe('splitCpu', () => {
  it('gives the main thread and the helpers their own deltas and the workers the rest', () => {
    const before = new Map([[100, 1000], [101, 50], [102, 70], [103, 5]]);
    // 103 was a worker of an earlier measure that ended meanwhile; 200 is a worker still exiting.
    const after = new Map([[100, 1600], [101, 350], [102, 170], [200, 900]]);
    const s = splitCpu(before, after, 5000, 100);
    expect(s).toEqual({ mainMs: 600, helpersMs: 400, workersMs: 4000 });
  });

  it('never gives the workers a negative share when the process total is coarser than the threads', () => {
    const s = splitCpu(new Map([[1, 0], [2, 0]]), new Map([[1, 30], [2, 20]]), 40, 1);
    expect(s.workersMs).toBe(0);
  });
});

it('threadCpu gives null where there is no task directory (no /proc)', () => {
  expect(threadCpu(path.join(os.tmpdir(), 'persist-audit-no-such-dir', 'task'))).toBeNull();
});

describe.runIf(fs.existsSync('/proc/self/task'))('threadCpu on Linux', () => {
  it('lists this process’s threads, the main thread under the process id', () => {
    const t = threadCpu()!;
    expect(t.has(process.pid)).toBe(true);
    for (const ms of t.values()) expect(ms).toBeGreaterThanOrEqual(0);
  });

  it('puts a busy worker thread’s CPU in the workers’ share', async () => {
    const before = threadCpu()!;
    const c0 = process.cpuUsage();
    const worker = new Worker('const t = Date.now(); while (Date.now() - t < 400) {}', { eval: true });
    await new Promise((resolve, reject) => worker.on('exit', resolve).on('error', reject));
    const d = process.cpuUsage(c0);
    const total = (d.user + d.system) / 1000;
    const s = splitCpu(before, threadCpu()!, total);
    // The main thread only waits: the spin is most of the process's CPU, however loaded the
    // machine (a busy one gives the worker less CPU in its 400 ms, not a smaller share).
    expect(s.workersMs).toBeGreaterThan(total / 2);
    expect(s.workersMs).toBeGreaterThan(s.mainMs + s.helpersMs);
  });
});
