/**
 * The results log (product.md, "The results log"): a markdown table shared with other audit
 * tools, one row per scan.
 *
 * Window: at most 50 data rows in the table. When a new row would exceed that, the oldest
 * `ln-650` rows are dropped first; rows of other skills are never touched, nor the row just
 * added, so a table that other skills alone fill past 50 rows keeps them all (plus ours).
 *
 * Concurrency: an exclusive lock file next to the log (`<log>.lock`, created with `wx`) guards
 * the read-modify-write; the new content is written to a temp file and renamed over the log.
 * A lock older than `staleMs` is taken to belong to a crashed scan and is broken.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ScanResult } from '../engine/result.js';
import { formatScore, mostSevereFinding } from '../merge/score.js';
import { writeFileAtomic } from './atomic.js';

export const SKILL = 'ln-650';
export const METRIC = 'overall_score';
export const SCALE = '0-10';
export const MAX_ROWS = 50;
export const COLUMNS = ['Date', 'Skill', 'Metric', 'Scale', 'Score', 'Status', 'Delta', 'Key Finding', 'Commit'] as const;

export type Status = 'baseline' | 'improving' | 'declining' | 'stable';

export interface LogEntry {
  date: string;
  score: number;
  keyFinding: string;
  commit: string;
}

export interface LogRow {
  date: string;
  skill: string;
  metric: string;
  scale: string;
  score: string;
  status: string;
  delta: string;
  keyFinding: string;
  commit: string;
}

/** The entry a scan contributes. */
export function entryFromResult(result: ScanResult): LogEntry {
  const top = mostSevereFinding(result.findings);
  return {
    date: result.date,
    score: result.scores.overall,
    keyFinding: top ? `${top.code} ${top.path}:${top.line}` : 'none',
    commit: result.commit ?? '-',
  };
}

const HEADER_LINE = `| ${COLUMNS.join(' | ')} |`;
const SEPARATOR_LINE = `|${COLUMNS.map(() => '------').join('|')}|`;

/** Splits a table line into cells, honouring `\|` escapes. */
export function splitRow(line: string): string[] {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === '|') {
      cur += '\\|';
      i++;
    } else if (s[i] === '|') {
      cells.push(cur.trim());
      cur = '';
    } else cur += s[i];
  }
  cells.push(cur.trim());
  return cells;
}

function isHeader(line: string): boolean {
  const cells = splitRow(line).map((c) => c.toLowerCase());
  return line.trim().startsWith('|') && COLUMNS.every((c, i) => cells[i] === c.toLowerCase());
}

function isSeparator(line: string): boolean {
  return /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/.test(line);
}

interface ParsedLog {
  before: string[];
  header: string;
  separator: string;
  rows: string[];
  after: string[];
  found: boolean;
}

function parseLog(text: string): ParsedLog {
  const lines = text.length === 0 ? [] : text.replace(/\r\n/g, '\n').replace(/\n$/, '').split('\n');
  const start = lines.findIndex((l, i) => isHeader(l) && i + 1 < lines.length && isSeparator(lines[i + 1]!));
  if (start < 0) return { before: lines, header: HEADER_LINE, separator: SEPARATOR_LINE, rows: [], after: [], found: false };
  let end = start + 2;
  while (end < lines.length && lines[end]!.trim().startsWith('|')) end++;
  return {
    before: lines.slice(0, start),
    header: lines[start]!,
    separator: lines[start + 1]!,
    rows: lines.slice(start + 2, end),
    after: lines.slice(end),
    found: true,
  };
}

function rowOf(line: string): LogRow {
  const c = splitRow(line);
  return { date: c[0] ?? '', skill: c[1] ?? '', metric: c[2] ?? '', scale: c[3] ?? '', score: c[4] ?? '', status: c[5] ?? '', delta: c[6] ?? '', keyFinding: c[7] ?? '', commit: c[8] ?? '' };
}

/** The data rows of the log's table (empty when there is none). */
export function readRows(text: string): LogRow[] {
  return parseLog(text).rows.map(rowOf);
}

/** `+0.5`, `-1.2`, `0.0`: from a difference in tenths. */
export function formatDelta(tenths: number): string {
  if (tenths === 0) return '0.0';
  return `${tenths > 0 ? '+' : '-'}${formatScore(Math.abs(tenths) / 10)}`;
}

export function statusFor(deltaTenths: number): Status {
  if (deltaTenths > 3) return 'improving';
  if (deltaTenths < -3) return 'declining';
  return 'stable';
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\s*(\r\n|\r|\n)\s*/g, ' ').trim();
}

/**
 * The log text with `entry` appended (pure: no file access). Text before and after the table is
 * kept; the table is created (after any existing text) when missing.
 */
export function appendEntry(text: string, entry: LogEntry): { text: string; row: LogRow } {
  const log = parseLog(text);
  const scoreTenths = Math.round(entry.score * 10);
  let previous: number | null = null;
  for (let i = log.rows.length - 1; i >= 0; i--) {
    const r = rowOf(log.rows[i]!);
    if (r.skill !== SKILL) continue;
    const prev = Number.parseFloat(r.score);
    if (Number.isFinite(prev)) previous = Math.round(prev * 10);
    break;
  }
  const deltaTenths = previous === null ? null : scoreTenths - previous;
  const row: LogRow = {
    date: entry.date,
    skill: SKILL,
    metric: METRIC,
    scale: SCALE,
    score: formatScore(scoreTenths / 10),
    status: deltaTenths === null ? 'baseline' : statusFor(deltaTenths),
    delta: deltaTenths === null ? 'N/A' : formatDelta(deltaTenths),
    keyFinding: entry.keyFinding || 'none',
    commit: entry.commit || '-',
  };
  const line = `| ${[row.date, row.skill, row.metric, row.scale, row.score, row.status, row.delta, row.keyFinding, row.commit].map(cell).join(' | ')} |`;

  const rows = [...log.rows, line];
  // Drop the oldest rows of this skill (never the new one) until the window fits.
  let excess = rows.length - MAX_ROWS;
  const kept: string[] = [];
  for (let i = 0; i < rows.length; i++) {
    if (excess > 0 && i < rows.length - 1 && rowOf(rows[i]!).skill === SKILL) {
      excess--;
      continue;
    }
    kept.push(rows[i]!);
  }

  const before = log.found ? log.before : trimTrailingBlank(log.before);
  const tableLines = [log.header, log.separator, ...kept];
  const parts = log.found ? [...before, ...tableLines, ...log.after] : before.length > 0 ? [...before, '', ...tableLines] : tableLines;
  return { text: `${parts.join('\n')}\n`, row };
}

function trimTrailingBlank(lines: string[]): string[] {
  const out = [...lines];
  while (out.length > 0 && out[out.length - 1]!.trim() === '') out.pop();
  return out;
}

export interface LockOptions {
  /** Give up after this long (ms). */
  timeoutMs?: number;
  /** A lock file older than this (ms) belongs to a crashed process and is broken. */
  staleMs?: number;
}

/**
 * Appends a scan's row to the log at `logPath` under an exclusive lock; returns the row written.
 * Synchronous (the wait between lock attempts blocks the thread): it runs once, at the end of a
 * scan, and callers need not await it before computing the exit code.
 */
export function appendResultsLog(logPath: string, scan: ScanResult | LogEntry, options: LockOptions = {}): LogRow {
  const entry = 'findings' in scan ? entryFromResult(scan) : scan;
  return withLock(`${logPath}.lock`, options, () => {
    let text = '';
    try {
      text = fs.readFileSync(logPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const next = appendEntry(text, entry);
    writeFileAtomic(logPath, next.text);
    return next.row;
  });
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

function withLock<T>(lockPath: string, options: LockOptions, body: () => T): T {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const staleMs = options.staleMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  fs.mkdirSync(path.dirname(lockPath), { recursive: true });
  let delay = 5;
  for (;;) {
    try {
      const fd = fs.openSync(lockPath, 'wx');
      try {
        fs.writeSync(fd, `${process.pid} ${new Date().toISOString()}\n`);
      } finally {
        fs.closeSync(fd);
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    breakStaleLock(lockPath, staleMs);
    if (Date.now() > deadline) throw new Error(`could not lock ${lockPath} within ${timeoutMs} ms (remove it if no scan is running)`);
    sleepSync(delay + Math.floor(Math.random() * delay));
    delay = Math.min(delay * 2, 200);
  }
  try {
    return body();
  } finally {
    fs.rmSync(lockPath, { force: true });
  }
}

/**
 * Removes the lock when it is older than `staleMs`. The lock is first renamed to a unique name
 * (only one process can win that rename) and checked again, so a fresh lock that replaced the
 * stale one in between is put back instead of broken.
 */
function breakStaleLock(lockPath: string, staleMs: number): void {
  const isStale = (p: string) => {
    try {
      return Date.now() - fs.statSync(p).mtimeMs > staleMs;
    } catch {
      return false;
    }
  };
  if (!isStale(lockPath)) return;
  const aside = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}.stale`;
  try {
    fs.renameSync(lockPath, aside);
  } catch {
    return; // someone else broke or released it
  }
  if (!isStale(aside)) {
    try {
      fs.linkSync(aside, lockPath); // put the live lock back; fails if a newer one exists
    } catch {
      // a newer lock exists; the live one we moved is lost, which its owner tolerates (rm -f)
    }
  }
  fs.rmSync(aside, { force: true });
}
