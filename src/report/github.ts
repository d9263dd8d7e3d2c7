/**
 * `--format github`: one GitHub Actions workflow command per finding, which the runner turns into
 * an annotation on the pull request's diff.
 * https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions
 */
import { callerLines, chainHops } from './chain.js';
import { escapeControl } from './escape.js';
import type { ScanResult } from '../engine/result.js';
import { compareFindings } from '../merge/score.js';
import type { Finding } from '../types.js';

export type AnnotationLevel = 'error' | 'warning' | 'notice';

export function annotationLevel(f: Finding): AnnotationLevel {
  if (f.advisory) return 'notice';
  if (f.severity === 'critical' || f.severity === 'high') return 'error';
  return f.severity === 'medium' ? 'warning' : 'notice';
}

/** Escaping of a command's message (GitHub's `escapeData`). */
export function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** Escaping of a command property value (GitHub's `escapeProperty`): also `:` and `,`. */
export function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

export function githubCommand(f: Finding): string {
  const props: [string, string][] = [
    ['file', f.path],
    ['line', String(f.line)],
    ['col', String(f.column)],
    ['endLine', String(f.endLine)],
    ['endColumn', String(f.endColumn)],
    ['title', `${f.code} ${f.check}${f.advisory ? ' (advisory)' : ''}`],
  ];
  const properties = props.map(([k, v]) => `${k}=${escapeProperty(v)}`).join(',');
  // Line breaks are the annotation's layout (escapeData keeps them inside the one command);
  // other control characters are shown escaped, and so is every one in a hop's file name.
  const hops = chainHops(f).map((h) => escapeControl(h));
  const callers = callerLines(f).map((h) => escapeControl(h));
  const chain = (hops.length ? `\nCall chain:\n${hops.map((h) => `  ${h}`).join('\n')}` : '')
    + (callers.length ? `\nCalled from:\n${callers.map((h) => `  ${h}`).join('\n')}` : '');
  const fix = f.recommendation ? `\nFix: ${escapeControl(f.recommendation, true)}` : '';
  return `::${annotationLevel(f)} ${properties}::${escapeData(`${escapeControl(f.message, true)}${chain}${fix}`)}`;
}

export function renderGithub(result: ScanResult): string {
  return [...result.findings].sort(compareFindings).map((f) => `${githubCommand(f)}\n`).join('');
}
