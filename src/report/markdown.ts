/**
 * The markdown report (product.md, "The markdown report"): fixed sections in a fixed order,
 * generated only from the scan result, so the same result always gives the same bytes.
 */
import { callerLines, chainHops } from './chain.js';
import type { ScanResult } from '../engine/result.js';
import { TECHNOLOGIES, TECH_ALIASES, technologiesFor } from '../knowledge/sources.js';
import { compareFindings, countBySeverity, formatScore, mostSevereFinding } from '../merge/score.js';
import type { Family, Finding, Severity } from '../types.js';
import { FAMILIES, FAMILY_TITLES, SEVERITIES, SEVERITY_RANK } from '../types.js';

export interface MarkdownOptions {
  /**
   * Families that have rules implemented at all (the registry's `implementedFamilies()`). Lets the
   * report tell "not selected" from "no rules implemented" for a family that did not run; when
   * absent, every family that did not run is reported as having no rules implemented.
   */
  implementedFamilies?: Iterable<Family>;
}

const SEVERITY_LABEL: Record<Severity, string> = { critical: 'Critical', high: 'High', medium: 'Medium', low: 'Low' };

export function renderMarkdown(result: ScanResult, options: MarkdownOptions = {}): string {
  return `${renderMarkdownLines(result, options).join('\n')}\n`;
}

/**
 * The report's lines, each to be followed by a newline: the same text as {@link renderMarkdown}
 * without joining it whole (a report of a large monorepo runs to megabytes; the CLI writes it a
 * batch of lines at a time, see {@link markdownPieces}).
 */
export function* markdownPieces(result: ScanResult, options: MarkdownOptions = {}): Generator<string> {
  for (const line of renderMarkdownLines(result, options)) yield `${line}\n`;
}

function renderMarkdownLines(result: ScanResult, options: MarkdownOptions): string[] {
  const implemented = new Set(options.implementedFamilies ?? []);
  const ran = new Set(result.families);
  const active = result.findings.filter((f) => !f.advisory);
  const advisory = result.findings.filter((f) => f.advisory);
  const notRunNote = (family: Family) =>
    implemented.has(family) ? 'not audited (rules not selected)' : 'not yet audited (no rules implemented)';

  const out: string[] = [];
  out.push(`## Persistence & Performance Audit Report - ${result.date}`, '');
  out.push(
    `Root: \`${inline(result.root)}\` · Commit: ${result.commit ? `\`${inline(result.commit)}\`` : '-'} · ` +
      `Files: ${result.stats.files} · Tool: persist-audit ${inline(result.toolVersion)}`,
    '',
  );

  out.push('### Executive Summary', '', executiveSummary(result, active, advisory), '');

  out.push('### Compliance Score', '');
  out.push(...table(['Category', 'Score', 'Notes'], FAMILIES.map((family) => {
    const score = result.scores[family];
    if (!ran.has(family) || score === undefined) return [FAMILY_TITLES[family], '-', notRunNote(family)];
    return [FAMILY_TITLES[family], `${formatScore(score)}/10`, familyNote(result.findings.filter((f) => f.category === family))];
  })));
  const audited = FAMILIES.filter((f) => ran.has(f) && result.scores[f] !== undefined).length;
  out.pop(); // reopen the table for the Overall row
  out.push(
    row(['**Overall**', `**${formatScore(result.scores.overall)}/10**`, audited > 0 ? `mean of ${plural(audited, 'audited category', 'audited categories')}` : 'nothing audited']),
    '',
  );

  out.push('### Severity Summary', '');
  const counts = countBySeverity(result.findings);
  out.push(...table(['Severity', 'Count'], SEVERITIES.map((s) => [SEVERITY_LABEL[s], String(counts[s])])));
  if (advisory.length > 0) out.push(`Advisory findings (not scored): ${advisory.length}.`, '');

  out.push('### Findings by Category', '');
  FAMILIES.forEach((family, i) => {
    out.push(`#### ${i + 1}. ${FAMILY_TITLES[family]}`, '');
    if (!ran.has(family)) {
      out.push(`${capitalise(notRunNote(family))}.`, '');
      return;
    }
    const rows = active.filter((f) => f.category === family).sort(byPriority);
    if (rows.length === 0) {
      out.push('No findings.', '');
      return;
    }
    out.push(...table(['Severity', 'Location', 'Issue', 'Recommendation', 'Effort'], rows.map((f) => [SEVERITY_LABEL[f.severity], location(f), issue(f), f.recommendation, f.effort])));
  });

  out.push('### Recommended Actions (Priority-Sorted)', '');
  const actions = [...active].sort(byPriority);
  if (actions.length === 0) out.push('No actions required.', '');
  else
    out.push(...table(['Priority', 'Category', 'Location', 'Issue', 'Recommendation', 'Effort'], actions.map((f, i) => [String(i + 1), FAMILY_TITLES[f.category], location(f), issue(f), f.recommendation, f.effort])));

  out.push('### Advisory Findings', '');
  if (advisory.length === 0) out.push('No advisory findings.', '');
  else
    out.push(...table(['Original Severity', 'Location', 'Issue', 'Reason'], [...advisory].sort(byPriorityOriginal).map((f) => [SEVERITY_LABEL[f.originalSeverity], location(f), issue(f), downgradeReason(f)])));

  out.push('### Sources Consulted', '');
  out.push(...sourcesSection(result));

  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out;
}

function executiveSummary(result: ScanResult, active: Finding[], advisory: Finding[]): string {
  const ran = FAMILIES.filter((f) => result.families.includes(f) && result.scores[f] !== undefined);
  if (ran.length === 0) return `No rule family ran, so nothing was audited in ${plural(result.stats.files, 'file')}.`;
  const notRun = FAMILIES.filter((f) => !ran.includes(f)).map((f) => FAMILY_TITLES[f]);
  const notRunClause = notRun.length > 0 ? ` (${joinWords(notRun)} ${notRun.length === 1 ? 'is' : 'are'} not audited)` : '';
  const sentences: string[] = [];
  const overall = `${formatScore(result.scores.overall)}/10`;
  const advisoryNote = advisory.length > 0 ? `; ${plural(advisory.length, 'further finding was', 'further findings were')} downgraded to advisory` : '';

  if (active.length === 0) {
    sentences.push(`The overall compliance score is ${overall} across ${plural(ran.length, 'audited category', 'audited categories')}${notRunClause}.`);
    sentences.push(`No issues were found in ${plural(result.stats.files, 'file')}${advisoryNote}.`);
    return sentences.join(' ');
  }

  let worst = ran[0]!;
  for (const f of ran) if ((result.scores[f] ?? 10) < (result.scores[worst] ?? 10)) worst = f;
  sentences.push(
    `The overall compliance score is ${overall} across ${plural(ran.length, 'audited category', 'audited categories')}${notRunClause}; ` +
      (ran.length === 1 ? `${FAMILY_TITLES[worst]} scores ` : `the weakest is ${FAMILY_TITLES[worst]} at `) +
      `${formatScore(result.scores[worst] ?? 10)}/10.`,
  );
  const counts = countBySeverity(active);
  const serious = counts.critical + counts.high;
  const total = `${plural(active.length, 'finding')} in ${plural(result.stats.files, 'file')}`;
  sentences.push(
    serious > 0
      ? `The scan reports ${plural(serious, 'critical or high-severity issue')} (${[counts.critical && `${counts.critical} critical`, counts.high && `${counts.high} high`].filter(Boolean).join(', ')}) among ${total}${advisoryNote}.`
      : `The scan reports no critical or high-severity issues among ${total}${advisoryNote}.`,
  );
  const top = mostSevereFinding(active);
  if (top) {
    sentences.push(
      `The most important finding is ${top.code} ${top.check} (${top.severity}) at \`${inline(`${top.path}:${top.line}`)}\`: ${sentence(top.message)}`,
    );
  }
  return sentences.join(' ');
}

function familyNote(findings: Finding[]): string {
  const counts = countBySeverity(findings);
  const parts = SEVERITIES.filter((s) => counts[s] > 0).map((s) => `${counts[s]} ${s}`);
  const advisory = findings.filter((f) => f.advisory).length;
  if (parts.length === 0) return advisory > 0 ? `No issues (${advisory} advisory)` : 'No issues';
  return `${parts.join(', ')}${advisory > 0 ? `; ${advisory} advisory` : ''}`;
}

function downgradeReason(f: Finding): string {
  if (f.downgrades.length === 0) return 'Downgraded by context validation';
  return f.downgrades.map((d) => `${d.rule} (${d.from} → ${d.to}): ${d.evidence}`).join('; ');
}

function sourcesSection(result: ScanResult): string[] {
  const out: string[] = [];
  const stack = stackOf(result.context);
  const techs = technologiesFor(Object.keys(stack));
  if (techs.length > 0) {
    out.push('#### Detected technologies', '');
    for (const key of techs) {
      const tech = TECHNOLOGIES[key]!;
      const version = versionOf(stack, key);
      out.push(`- **${inline(tech.name)}${version ? ` ${inline(displayVersion(version))}` : ''}**`);
      for (const s of tech.sources) out.push(`  - [${inline(s.title)}](${s.url})`);
    }
    out.push('');
  }
  const fired = [...new Set(result.findings.map((f) => f.code))].sort();
  const metas = new Map(result.rules.map((m) => [m.code, m]));
  const ruleLines: string[] = [];
  for (const code of fired) {
    const refs = [...new Set(metas.get(code)?.references ?? [])];
    if (refs.length === 0) continue;
    const check = metas.get(code)?.check ?? result.findings.find((f) => f.code === code)?.check ?? '';
    ruleLines.push(`- **${code} ${inline(check)}**`, ...refs.map((r) => `  - <${r}>`));
  }
  if (ruleLines.length > 0) out.push('#### Rules that fired', '', ...ruleLines, '');
  if (out.length === 0) out.push('No technologies detected and no rules fired.', '');
  return out;
}

/** `context.stack`, read defensively: the context object is owned by discovery and still growing. */
function stackOf(context: unknown): Record<string, unknown> {
  const stack = (context as { stack?: unknown } | null)?.stack;
  return stack && typeof stack === 'object' && !Array.isArray(stack) ? (stack as Record<string, unknown>) : {};
}

function versionOf(stack: Record<string, unknown>, key: string): string | null {
  // The exact key first, then aliases in code-unit order.
  const keys = Object.keys(stack)
    .filter((k) => (TECH_ALIASES[k.toLowerCase()] ?? k.toLowerCase()) === key)
    .sort((a, b) => Number(b.toLowerCase() === key) - Number(a.toLowerCase() === key) || (a < b ? -1 : a > b ? 1 : 0));
  for (const k of keys) {
    const v = (stack[k] as { version?: unknown } | null)?.version;
    if (typeof v === 'string' && v.length > 0) return v;
  }
  return null;
}

/** `==2.0.36` → `2.0.36`; a range stays visible as one: `>=2.0,<3` → `(>=2.0,<3)`. */
function displayVersion(v: string): string {
  const t = v.trim();
  if (/^==?\s*[^=<>!~,]+$/.test(t)) return t.replace(/^==?\s*/, '');
  return /^[<>=!~^]/.test(t) ? `(${t})` : t;
}

function byPriority(a: Finding, b: Finding): number {
  return SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] || compareFindings(a, b);
}

function byPriorityOriginal(a: Finding, b: Finding): number {
  return SEVERITY_RANK[b.originalSeverity] - SEVERITY_RANK[a.originalSeverity] || compareFindings(a, b);
}

function location(f: Finding): string {
  return `\`${f.path}:${f.line}\``;
}

function issue(f: Finding): string {
  const hops = chainHops(f);
  const callers = callerLines(f);
  const chain = (hops.length ? `<br>Call chain:<br>${hops.map((h, i) => `${i + 1}. \`${h}\``).join('<br>')}` : '')
    + (callers.length ? `<br>Called from:<br>${callers.map((h) => `- \`${h}\``).join('<br>')}` : '');
  return `${f.code} ${f.check}: ${f.message}${chain}`;
}

/** A table cell: `|` escaped, line breaks as `<br>`, so a cell never breaks the table. */
export function cell(s: string): string {
  return s
    .trim()
    .replace(/\|/g, '\\|')
    .replace(/\r\n|\r|\n/g, '<br>');
}

/** Text outside tables kept on one line. */
function inline(s: string): string {
  return s.replace(/\s*(\r\n|\r|\n)\s*/g, ' ');
}

function row(cells: string[]): string {
  return `| ${cells.map(cell).join(' | ')} |`;
}

function table(header: string[], rows: string[][]): string[] {
  return [row(header), `|${header.map(() => '---').join('|')}|`, ...rows.map(row), ''];
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function joinWords(words: string[]): string {
  if (words.length <= 1) return words.join('');
  return `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}`;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function sentence(s: string): string {
  const t = inline(s).trim();
  return /[.!?]$/.test(t) ? t : `${t}.`;
}
