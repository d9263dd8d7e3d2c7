/**
 * Where a measure's CPU time went, per thread: the main thread, the worker threads, and the
 * process's helper threads (V8's compiler and GC threads, which serve every isolate, workers'
 * included, and libuv's thread pool). Read from Linux's `/proc/self/task/<tid>/stat`; elsewhere
 * there is no such file and the bench prints no split.
 */
import fs from 'node:fs';

/** CPU milliseconds by thread id. */
export type ThreadCpu = Map<number, number>;

/** `/proc` counts in USER_HZ ticks, 100 per second on every Linux architecture. */
const MS_PER_TICK = 10;

/** Every thread's CPU time so far (user + system), or null without `/proc/self/task`. */
export function threadCpu(taskDir = '/proc/self/task'): ThreadCpu | null {
  let tids: string[];
  try {
    tids = fs.readdirSync(taskDir);
  } catch {
    return null;
  }
  const out: ThreadCpu = new Map();
  for (const tid of tids) {
    let stat: string;
    try {
      stat = fs.readFileSync(`${taskDir}/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended between the listing and the read
    }
    const ticks = statTicks(stat);
    if (ticks !== null) out.set(Number(tid), ticks * MS_PER_TICK);
  }
  return out;
}

/**
 * utime + stime of one `stat` line. The thread's name (field 2) is in parentheses and may hold
 * spaces or parentheses itself, so fields are counted from the last `)`: field 3 comes right
 * after it, and utime and stime are fields 14 and 15.
 */
export function statTicks(stat: string): number | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  const fields = stat.slice(close + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks : null;
}

export interface CpuSplit {
  mainMs: number;
  workersMs: number;
  helpersMs: number;
}

/**
 * Splits `totalMs`, the process CPU of one measure, with thread snapshots taken before and after
 * it. The main thread is `mainTid`; helpers are the other threads that were already there before
 * and still are after; the workers are what remains of the total: a measure starts and closes its
 * pool, so its worker threads are gone (and unreadable) by the time the second snapshot is taken.
 */
export function splitCpu(before: ThreadCpu, after: ThreadCpu, totalMs: number, mainTid = process.pid): CpuSplit {
  let mainMs = 0;
  let helpersMs = 0;
  for (const [tid, start] of before) {
    const end = after.get(tid);
    if (end === undefined) continue;
    if (tid === mainTid) mainMs = end - start;
    else helpersMs += end - start;
  }
  return { mainMs, helpersMs, workersMs: Math.max(0, totalMs - mainMs - helpersMs) };
}
