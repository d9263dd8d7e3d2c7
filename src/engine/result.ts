import type { ProjectContext } from '../discovery/context.js';
import type { RuleMeta } from '../rules/types.js';
import type { Family, Finding, ScanStats, Scores } from '../types.js';

/** Everything a scan produced; the renderers turn this into text, JSON, SARIF, markdown. */
export interface ScanResult {
  toolVersion: string;
  /** Absolute path of the scanned root. */
  rootPath: string;
  /** The root as shown in outputs (`.` or the path the user gave). */
  root: string;
  /** `YYYY-MM-DD` of the scan, local time. */
  date: string;
  /** Short git hash of the scanned tree, or null outside git. */
  commit: string | null;
  context: ProjectContext;
  /** Findings after suppressions, baseline and downgrades, sorted by path, line, column, code. */
  findings: Finding[];
  scores: Scores;
  stats: ScanStats;
  /** The rules that ran (after --select/--ignore). */
  rules: RuleMeta[];
  /** Families with at least one rule that ran. */
  families: Family[];
}
