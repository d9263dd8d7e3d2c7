/**
 * One defect, one finding. A rule may name another rule's finding at a line of the same file as
 * the same defect (`RuleReport.sameDefectAs`: PA105's INSERT per row that a commit per item
 * flushes is PA207's commit per item, with the same fix). The merge drops such a finding when the
 * one it names survives — after suppressions (`# noqa`, `--ignore`) and execution context — and
 * is not advisory; otherwise it is kept, as the only report of the defect.
 */
import type { Finding } from '../types.js';

export interface SameDefect {
  code: string;
  line: number;
}

export function dropSameDefects(findings: Finding[], named: ReadonlyMap<Finding, SameDefect>): Finding[] {
  if (!named.size) return findings;
  const reported = new Set(findings.filter((f) => !f.advisory).map((f) => `${f.code}\0${f.path}\0${f.line}`));
  return findings.filter((f) => {
    const d = named.get(f);
    return !d || !reported.has(`${d.code}\0${f.path}\0${d.line}`);
  });
}
