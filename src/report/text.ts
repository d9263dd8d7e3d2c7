/**
 * `--format text` (the default): one line per finding, `path:line:col CODE message`, then a short
 * summary. One line and nothing else when there is nothing to report.
 */
import { chainHops, chainNames } from './chain.js';
import type { ScanResult } from '../engine/result.js';
import { compareFindings, countBySeverity, formatScore } from '../merge/score.js';
import type { Finding, Severity } from '../types.js';
import { SEVERITIES } from '../types.js';

export interface TextOptions {
  /** ANSI colours; the caller decides (stdout is a TTY and NO_COLOR is unset). */
  color: boolean;
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
    for (const f of [...findings].sort(compareFindings)) out.push(findingLine(f, paint));
    out.push('');
    out.push(summaryLine(result, paint));
  }
  const problems = problemsLine(result);
  if (problems) out.push(paint(ANSI.dim, problems));
  return `${out.join('\n')}\n`;
}

function findingLine(f: Finding, paint: (style: string, s: string) => string): string {
  const where = paint(ANSI.bold, `${f.path}:${f.line}:${f.column}`);
  const code = f.advisory ? paint(ANSI.dim, f.code) : paint(SEVERITY_COLOR[f.severity], f.code);
  const tag = f.advisory ? ` ${paint(ANSI.dim, '[advisory]')}` : '';
  const names = chainNames(f);
  const chain = names ? ` (via ${names})` : '';
  // Each hop on a line of its own, indented like a traceback, so every place can be opened.
  const hops = chainHops(f).map((h) => `\n    ${paint(ANSI.dim, oneLine(h))}`).join('');
  return `${where} ${code}${tag} ${oneLine(f.message)}${chain}${hops}`;
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

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ');
}
