/**
 * `--format text` (the default): one line per finding, `path:line:col CODE message`, then a short
 * summary. One line and nothing else when there is nothing to report.
 */
import { callerLines, chainHops, chainNames } from './chain.js';
import { escapeControl } from './escape.js';
import type { ScanResult } from '../engine/result.js';
import { compareFindings, countBySeverity, formatScore } from '../merge/score.js';
import type { Finding, Severity } from '../types.js';
import { SEVERITIES } from '../types.js';

export interface TextOptions {
  /** ANSI colours; the caller decides (stdout is a TTY and NO_COLOR is unset). */
  color: boolean;
  /**
   * The lines of a root-relative file, to show each finding's source line with a caret under
   * its column (`--show-source`); absent, or null for a file, shows none.
   */
  source?: (path: string) => string[] | null;
}

const ANSI = {
  reset: '\u001b[0m',
  bold: '\u001b[1m',
  dim: '\u001b[2m',
  red: '\u001b[31m',
  yellow: '\u001b[33m',
  blue: '\u001b[34m',
  cyan: '\u001b[36m',
  magenta: '\u001b[35m',
  green: '\u001b[32m',
} as const;

const SEVERITY_COLOR: Record<Severity, string> = {
  critical: ANSI.magenta + ANSI.bold,
  high: ANSI.red + ANSI.bold,
  medium: ANSI.yellow,
  low: ANSI.blue,
};

export function renderText(result: ScanResult, options: TextOptions): string {
  const paint = (style: string, s: string) => (options.color ? `${style}${s}${ANSI.reset}` : s);
  const { findings, stats } = result;
  const out: string[] = [];

  if (findings.length === 0) {
    out.push(`No findings in ${plural(stats.files, 'file')}.`);
  } else {
    for (const f of [...findings].sort(compareFindings)) out.push(findingLine(f, paint, options.source));
    out.push('');
    out.push(summaryLine(result, paint));
  }
  const problems = problemsLine(result);
  if (problems) out.push(paint(ANSI.dim, problems));
  return `${out.join('\n')}\n`;
}

type Paint = (style: string, s: string) => string;

function findingLine(f: Finding, paint: Paint, source: TextOptions['source']): string {
  const where = paint(ANSI.bold, `${escapeControl(f.path)}:${f.line}:${f.column}`);
  const code = f.advisory ? paint(ANSI.dim, f.code) : paint(SEVERITY_COLOR[f.severity], f.code);
  const tag = f.advisory ? ` ${paint(ANSI.dim, '[advisory]')}` : '';
  const names = chainNames(f);
  const chain = names ? ` (via ${escapeControl(names)})` : '';
  const snippet = source ? sourceSnippet(f, source(f.path), paint) : '';
  // Each hop on a line of its own, indented like a traceback, so every place can be opened.
  const hops = chainHops(f).map((h) => `\n    ${paint(ANSI.dim, escapeControl(h))}`).join('')
    + callerLines(f).map((h) => `\n    ${paint(ANSI.dim, `called from ${escapeControl(h)}`)}`).join('');
  return `${where} ${code}${tag} ${oneLine(f.message)}${chain}${snippet}${hops}`;
}

/**
 * The finding's line under a gutter with its number, and a caret under its columns (to the end
 * of the line when the finding spans several), like Ruff's full output. Tabs count as one
 * column, as in the finding's own column; control characters are shown escaped, and the caret
 * moves with them.
 */
function sourceSnippet(f: Finding, lines: string[] | null, paint: Paint): string {
  const text = lines?.[f.line - 1];
  if (text === undefined) return '';
  const shown = (s: string) => escapeControl(s.replace(/\t/g, ' '));
  const line = text.replace(/\r$/, '');
  const start = Math.min(Math.max(0, f.column - 1), line.length);
  const end = f.endLine === f.line ? Math.min(Math.max(start + 1, f.endColumn - 1), line.length) : line.length;
  const indent = shown(line.slice(0, start)).length;
  const width = Math.max(1, shown(line.slice(start, end)).length);
  const number = String(f.line);
  const gutter = ' '.repeat(number.length);
  return (
    `\n  ${gutter} ${paint(ANSI.dim, '|')}` +
    `\n  ${paint(ANSI.dim, number)} ${paint(ANSI.dim, '|')} ${shown(line)}` +
    `\n  ${gutter} ${paint(ANSI.dim, '|')} ${' '.repeat(indent)}${paint(ANSI.red, '^'.repeat(width))}`
  );
}

function summaryLine(result: ScanResult, paint: (style: string, s: string) => string): string {
  const counts = countBySeverity(result.findings);
  const parts = SEVERITIES.filter((s) => counts[s] > 0).map((s) => paint(SEVERITY_COLOR[s], `${counts[s]} ${s}`));
  const advisory = result.findings.filter((f) => f.advisory).length;
  if (advisory > 0) parts.push(`${advisory} advisory`);
  const score = paint(ANSI.bold, `${formatScore(result.scores.overall)}/10`);
  return (
    `Found ${plural(result.findings.length, 'finding')} (${parts.join(', ')}) in ${plural(result.stats.files, 'file')}. ` +
    `Overall score ${score}. Done in ${formatDuration(result.stats.durationMs)}.`
  );
}

/** Parse errors, skipped files and internal errors, counted; `--verbose` lists them elsewhere. */
function problemsLine(result: ScanResult): string | null {
  const { parseErrors, skipped, internalErrors } = result.stats;
  const parts: string[] = [];
  if (parseErrors > 0) parts.push(`${plural(parseErrors, 'file')} with syntax errors (analysed partially)`);
  if (skipped.length > 0) parts.push(`${plural(skipped.length, 'file')} skipped`);
  if (internalErrors.length > 0) parts.push(`${plural(internalErrors.length, 'internal error')}`);
  return parts.length > 0 ? `${parts.join(', ')}; --verbose lists them.` : null;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** A message on one line: its line breaks (and the spaces around them) as one space, other controls escaped. */
function oneLine(s: string): string {
  return escapeControl(s.replace(/\s*[\r\n]+\s*/g, ' '));
}
