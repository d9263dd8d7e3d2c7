/**
 * The field benchmark's scorer: the findings of a scan of real repositories against the
 * committed verdicts (TRUE / FALSE / DEBATABLE per reviewed finding) and known bugs. Pure data in,
 * figures out; `run.ts` does the scanning and the printing.
 *
 * Precision is counted among the findings that are not advisory: an advisory finding is the tool
 * saying "not worth your time at a severity", which is what DEBATABLE verdicts ask for.
 */
import fs from 'node:fs';
import { FAMILIES, SEVERITIES, type Family, type Finding, type Severity } from '../../src/types.js';

export type VerdictWord = 'TRUE' | 'FALSE' | 'DEBATABLE';
const VERDICT_WORDS: readonly VerdictWord[] = ['TRUE', 'FALSE', 'DEBATABLE'];

export interface Verdict {
  repo: string;
  commit: string;
  path: string;
  line: number;
  code: string;
  verdict: VerdictWord;
  reason: string;
  /**
   * For a DEBATABLE verdict: the severity the reviewer says the finding deserves, read from the
   * start of the reason (`low: ...`, `medium at most: ...`, `low/advisory: ...` → low), or
   * `advisory`; null when the reason names none.
   */
  deserves: Severity | 'advisory' | null;
}

/** `low: ...`, `low/advisory: ...`, `medium at most: ...` → the (highest) severity named first. */
export function deservedSeverity(reason: string): Severity | 'advisory' | null {
  const m = /^\s*(critical|high|medium|low|advisory)\b/i.exec(reason);
  return m ? (m[1]!.toLowerCase() as Severity | 'advisory') : null;
}

/**
 * Is a DEBATABLE verdict settled by the finding as it is reported now? The protocol asks the
 * reviewer what severity the finding deserves; once the rule reports it there (or lower), the
 * debate is over and the finding counts as TRUE. An `advisory` one is settled by the finding
 * becoming advisory, which takes it out of the precision count altogether.
 */
export function settledBySeverity(v: Verdict, severity: Severity): boolean {
  if (v.verdict !== 'DEBATABLE' || !v.deserves || v.deserves === 'advisory') return false;
  return SEVERITIES.indexOf(severity) >= SEVERITIES.indexOf(v.deserves);
}

export interface KnownBug {
  repo: string;
  commit: string;
  path: string;
  startLine: number;
  endLine: number;
  family: Family;
  /** The rule expected to find it, when one is; null when any rule of the family would do. */
  code: string | null;
  what: string;
}

/** One scanned repository: its pin, its findings and its size. */
export interface ScannedRepo {
  repo: string;
  commit: string;
  lines: number;
  findings: Finding[];
}

export class FieldFileError extends Error {}

/**
 * Reads a tab-separated file with a header row; blank lines and `#` comments are skipped.
 * Every row must have the header's columns (the last may contain anything but a tab).
 */
export function readTsv(file: string, columns: readonly string[]): Record<string, string>[] {
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const rows: Record<string, string>[] = [];
  let header: string[] | null = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) return;
    const cells = line.split('\t');
    if (!header) {
      header = cells.map((c) => c.trim());
      const missing = columns.filter((c) => !header!.includes(c));
      if (missing.length) throw new FieldFileError(`${file}:${i + 1}: header lacks ${missing.join(', ')}`);
      return;
    }
    if (cells.length !== header.length) throw new FieldFileError(`${file}:${i + 1}: ${cells.length} columns, the header has ${header.length}`);
    const row: Record<string, string> = {};
    header.forEach((h, k) => (row[h] = cells[k]!.trim()));
    rows.push(row);
  });
  return rows;
}

export const VERDICT_COLUMNS = ['repo', 'commit', 'path', 'line', 'code', 'verdict', 'reason'] as const;
export const KNOWN_BUG_COLUMNS = ['repo', 'commit', 'path', 'lines', 'family', 'code', 'what'] as const;

export function readVerdicts(file: string): Verdict[] {
  return readTsv(file, VERDICT_COLUMNS).map((r, i) => {
    const verdict = r.verdict!.toUpperCase() as VerdictWord;
    if (!VERDICT_WORDS.includes(verdict)) throw new FieldFileError(`${file}: row ${i + 1}: verdict "${r.verdict}" is not TRUE, FALSE or DEBATABLE`);
    const line = Number(r.line);
    if (!Number.isInteger(line) || line < 1) throw new FieldFileError(`${file}: row ${i + 1}: line "${r.line}" is not a line number`);
    if (!r.reason) throw new FieldFileError(`${file}: row ${i + 1}: a verdict needs its reason`);
    return { repo: r.repo!, commit: r.commit!, path: r.path!, line, code: r.code!.toUpperCase(), verdict, reason: r.reason, deserves: verdict === 'DEBATABLE' ? deservedSeverity(r.reason) : null };
  });
}

export function readKnownBugs(file: string): KnownBug[] {
  return readTsv(file, KNOWN_BUG_COLUMNS).map((r, i) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(r.lines!);
    if (!m) throw new FieldFileError(`${file}: row ${i + 1}: lines "${r.lines}" is not N or N-M`);
    const family = r.family as Family;
    if (!FAMILIES.includes(family)) throw new FieldFileError(`${file}: row ${i + 1}: family "${r.family}" is not one of ${FAMILIES.join(', ')}`);
    const code = r.code && r.code !== '-' ? r.code.toUpperCase() : null;
    return { repo: r.repo!, commit: r.commit!, path: r.path!, startLine: Number(m[1]), endLine: Number(m[2] ?? m[1]), family, code, what: r.what! };
  });
}

export interface Tally {
  findings: number;
  advisory: number;
  reviewed: number;
  TRUE: number;
  FALSE: number;
  DEBATABLE: number;
  /** DEBATABLE verdicts settled because the finding is now reported at the severity the reviewer gave (counted in TRUE). */
  settled: number;
  /** Known bugs this family or rule is expected to find, and how many a finding covers. */
  bugs: number;
  bugsFound: number;
}

export interface FieldScore {
  repos: { repo: string; commit: string; lines: number; findings: number }[];
  lines: number;
  families: Record<Family, Tally>;
  rules: Map<string, Tally>;
  /** Verdicts on present repos (same commit) whose finding is no longer reported, by verdict. */
  gone: Verdict[];
  /** Verdicts whose commit is not the scanned one, or whose repo was not scanned. */
  notScanned: number;
  /** Known bugs, each with whether a finding covers it. */
  bugs: { bug: KnownBug; foundBy: string | null }[];
  /** Non-advisory findings without a verdict, in a seeded random order. */
  unreviewed: (Finding & { repo: string })[];
}

const emptyTally = (): Tally => ({ findings: 0, advisory: 0, reviewed: 0, TRUE: 0, FALSE: 0, DEBATABLE: 0, settled: 0, bugs: 0, bugsFound: 0 });

const keyOf = (repo: string, path: string, line: number, code: string) => `${repo}\0${path}\0${line}\0${code}`;

/** Scores the scanned repositories against the verdicts and known bugs. */
export function scoreField(scanned: readonly ScannedRepo[], verdicts: readonly Verdict[], bugs: readonly KnownBug[], seed = 1): FieldScore {
  const pinned = new Map(scanned.map((r) => [r.repo, r.commit]));
  const verdictByKey = new Map<string, Verdict>();
  let notScanned = 0;
  for (const v of verdicts) {
    if (pinned.get(v.repo) !== v.commit) {
      notScanned++;
      continue;
    }
    verdictByKey.set(keyOf(v.repo, v.path, v.line, v.code), v);
  }
  const families = Object.fromEntries(FAMILIES.map((f) => [f, emptyTally()])) as Record<Family, Tally>;
  const rules = new Map<string, Tally>();
  const ruleTally = (code: string) => {
    let t = rules.get(code);
    if (!t) rules.set(code, (t = emptyTally()));
    return t;
  };
  const matched = new Set<string>();
  const unreviewed: (Finding & { repo: string })[] = [];
  for (const r of scanned) {
    for (const f of r.findings) {
      const tallies = [families[f.category], ruleTally(f.code)];
      for (const t of tallies) t.findings++;
      if (f.advisory) {
        for (const t of tallies) t.advisory++;
        continue;
      }
      const key = keyOf(r.repo, f.path, f.line, f.code);
      const v = verdictByKey.get(key);
      if (!v) {
        unreviewed.push({ ...f, repo: r.repo });
        continue;
      }
      matched.add(key);
      const settled = settledBySeverity(v, f.severity);
      for (const t of tallies) {
        t.reviewed++;
        if (settled) {
          t.TRUE++;
          t.settled++;
        } else t[v.verdict]++;
      }
    }
  }
  // An advisory finding that a verdict covers is still reported: not gone.
  for (const r of scanned) for (const f of r.findings) matched.add(keyOf(r.repo, f.path, f.line, f.code));
  const gone = [...verdictByKey.entries()].filter(([k]) => !matched.has(k)).map(([, v]) => v);

  const bugResults: FieldScore['bugs'] = [];
  for (const bug of bugs) {
    if (pinned.get(bug.repo) !== bug.commit) continue;
    const repo = scanned.find((r) => r.repo === bug.repo)!;
    // A finding reported once for several call sites (`Finding.callers`) points at each of them.
    const at = (p: string, line: number) => p === bug.path && line >= bug.startLine && line <= bug.endLine;
    const hit = repo.findings.find(
      (f) => !f.advisory && (at(f.path, f.line) || (f.callers ?? []).some((c) => at(c.path, c.line)))
        && f.category === bug.family && (bug.code === null || f.code === bug.code),
    );
    bugResults.push({ bug, foundBy: hit ? `${hit.code}@${at(hit.path, hit.line) ? '' : `${hit.path}:`}${hit.line}` : null });
    const tallies = [families[bug.family], ...(bug.code ? [ruleTally(bug.code)] : [])];
    for (const t of tallies) {
      t.bugs++;
      if (hit) t.bugsFound++;
    }
  }

  return {
    repos: scanned.map((r) => ({ repo: r.repo, commit: r.commit, lines: r.lines, findings: r.findings.length })),
    lines: scanned.reduce((n, r) => n + r.lines, 0),
    families,
    rules: new Map([...rules].sort(([a], [b]) => a.localeCompare(b))),
    gone,
    notScanned,
    bugs: bugResults,
    unreviewed: seededShuffle(unreviewed, seed),
  };
}

/** A deterministic shuffle (mulberry32), so "what to review next" is the same list for everyone. */
export function seededShuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const pct = (n: number, d: number) => (d === 0 ? '—' : `${Math.round((100 * n) / d)} %`);

function tallyRow(name: string, t: Tally, lines: number): string[] {
  const live = t.findings - t.advisory;
  return [
    name,
    String(t.findings),
    String(t.advisory),
    String(t.reviewed),
    String(t.TRUE),
    String(t.FALSE),
    String(t.DEBATABLE),
    String(t.settled),
    pct(t.TRUE, t.reviewed),
    pct(t.FALSE, t.reviewed),
    t.bugs ? `${t.bugsFound}/${t.bugs}` : '—',
    lines ? ((10_000 * live) / lines).toFixed(2) : '—',
  ];
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

/** The score as text: per family, per rule, known bugs, verdicts gone, and what to review next. */
export function formatScore(score: FieldScore, perFamily = 10): string {
  const out: string[] = [];
  const header = ['', 'findings', 'advisory', 'reviewed', 'TRUE', 'FALSE', 'DEBAT.', 'settled', 'precision', 'false', 'bugs found', 'per 10k lines'];
  out.push(`Scanned ${score.repos.length} repositories, ${score.lines.toLocaleString('en-US')} lines:`);
  for (const r of score.repos) out.push(`  ${r.repo} @ ${r.commit.slice(0, 12)}: ${r.lines.toLocaleString('en-US')} lines, ${r.findings} findings`);
  out.push('', 'Precision among reviewed findings that are not advisory (TRUE / reviewed); per 10k lines counts non-advisory findings.',
    '"settled": DEBATABLE verdicts whose finding is now reported at the severity the reviewer said it deserves; counted in TRUE.', '');
  const famRows = [header, ...FAMILIES.map((f) => tallyRow(f, score.families[f], score.lines))];
  const all = emptyTally();
  for (const f of FAMILIES) for (const k of Object.keys(all) as (keyof Tally)[]) all[k] += score.families[f][k];
  famRows.push(tallyRow('all', all, score.lines));
  out.push(table(famRows), '');
  out.push(table([['rule', ...header.slice(1)], ...[...score.rules].map(([code, t]) => tallyRow(code, t, score.lines))]), '');

  const missed = score.bugs.filter((b) => !b.foundBy);
  out.push(`Known bugs: ${score.bugs.length - missed.length} of ${score.bugs.length} found by a non-advisory finding of their family.`);
  for (const { bug } of missed) out.push(`  missed  ${bug.repo} ${bug.path}:${bug.startLine}-${bug.endLine} [${bug.family}${bug.code ? ` ${bug.code}` : ''}] ${bug.what}`);
  if (score.gone.length) {
    out.push('', `Reviewed findings no longer reported (${score.gone.length}):`);
    for (const v of score.gone) out.push(`  ${v.verdict.padEnd(9)} ${v.repo} ${v.path}:${v.line} ${v.code} — ${v.reason}`);
  }
  if (score.notScanned) out.push('', `${score.notScanned} verdicts are for repositories or commits not scanned in this run.`);

  out.push('', `Not reviewed yet (non-advisory, ${score.unreviewed.length}); a seeded sample per family, review these next:`);
  for (const fam of FAMILIES) {
    const list = score.unreviewed.filter((f) => f.category === fam);
    if (!list.length) continue;
    out.push(`  ${fam} (${list.length}):`);
    for (const f of list.slice(0, perFamily)) out.push(`    ${f.repo} ${f.path}:${f.line} ${f.code} ${f.severity} — ${f.message}`);
  }
  return out.join('\n');
}

/** A review sheet: the verdict file's columns, verdict and reason left blank, with what the reviewer needs to judge. */
export function reviewSheet(findings: readonly (Finding & { repo: string })[], commits: ReadonlyMap<string, string>): string {
  const lines = [[...VERDICT_COLUMNS, 'severity', 'function', 'message', 'chain'].join('\t')];
  for (const f of findings) {
    const clean = (s: string) => s.replace(/[\t\n]/g, ' ');
    const chain = (f.chain ?? []).map((s) => `${s.path}:${s.line} ${s.function}: ${s.call}`).join(' → ');
    lines.push([f.repo, commits.get(f.repo) ?? '', f.path, String(f.line), f.code, '', '', f.severity, f.function ?? '', clean(f.message), clean(chain)].join('\t'));
  }
  return lines.join('\n') + '\n';
}
