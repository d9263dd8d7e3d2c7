/**
 * `--format sarif`: SARIF 2.1.0, one run, shaped for GitHub code scanning (relative URIs under
 * `%SRCROOT%`, 1-based columns, `partialFingerprints` so alerts survive code moving).
 * https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning
 */
import { chainNames } from './chain.js';
import type { ScanResult } from '../engine/result.js';
import { compareFindings } from '../merge/score.js';
import type { RuleMeta } from '../rules/types.js';
import type { Finding } from '../types.js';
import { FAMILY_TITLES } from '../types.js';

export const SARIF_SCHEMA = 'https://json.schemastore.org/sarif-2.1.0.json';
export const INFORMATION_URI = 'https://github.com/persist-audit/persist-audit';
export const FINGERPRINT_KEY = 'persistAudit/v1';

export type SarifLevel = 'error' | 'warning' | 'note';

export function sarifLevel(severity: Finding['severity'], advisory = false): SarifLevel {
  if (advisory) return 'note';
  if (severity === 'critical' || severity === 'high') return 'error';
  return severity === 'medium' ? 'warning' : 'note';
}

export interface SarifReportingDescriptor {
  id: string;
  name: string;
  shortDescription: { text: string };
  fullDescription: { text: string };
  help: { text: string; markdown: string };
  helpUri?: string;
  defaultConfiguration: { level: SarifLevel };
  properties: { tags: string[]; severity: string };
}

export interface SarifResult {
  ruleId: string;
  ruleIndex: number;
  level: SarifLevel;
  message: { text: string };
  locations: {
    physicalLocation: {
      artifactLocation: { uri: string; uriBaseId: '%SRCROOT%' };
      region: { startLine: number; startColumn: number; endLine: number; endColumn: number };
    };
    logicalLocations?: { name: string; kind: 'function' }[];
  }[];
  partialFingerprints: Record<string, string>;
  properties: Record<string, unknown>;
  codeFlows?: {
    threadFlows: {
      locations: {
        location: {
          physicalLocation: { artifactLocation: { uri: string; uriBaseId: '%SRCROOT%' }; region: { startLine: number; startColumn: number } };
          message: { text: string };
        };
      }[];
    }[];
  }[];
  /** The call sites a finding reported once stands for (`Finding.callers`). */
  relatedLocations?: {
    id: number;
    physicalLocation: { artifactLocation: { uri: string; uriBaseId: '%SRCROOT%' }; region: { startLine: number; startColumn: number } };
    message: { text: string };
  }[];
}

export interface SarifLog {
  $schema: string;
  version: '2.1.0';
  runs: {
    tool: { driver: { name: string; version: string; semanticVersion: string; informationUri: string; rules: SarifReportingDescriptor[] } };
    results: SarifResult[];
    columnKind: 'utf16CodeUnits';
  }[];
}

export function toSarif(result: ScanResult): SarifLog {
  const metas = new Map<string, RuleMeta>();
  for (const m of result.rules) metas.set(m.code, m);
  // A finding whose rule is missing from `result.rules` still needs a descriptor for ruleIndex.
  for (const f of result.findings) if (!metas.has(f.code)) metas.set(f.code, stubMeta(f));
  const rules = [...metas.values()].sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0));
  const index = new Map(rules.map((m, i) => [m.code, i]));

  return {
    $schema: SARIF_SCHEMA,
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'persist-audit',
            version: result.toolVersion,
            semanticVersion: result.toolVersion,
            informationUri: INFORMATION_URI,
            rules: rules.map(ruleDescriptor),
          },
        },
        results: [...result.findings].sort(compareFindings).map((f) => sarifResult(f, index.get(f.code) ?? 0)),
        columnKind: 'utf16CodeUnits',
      },
    ],
  };
}

export function renderSarif(result: ScanResult): string {
  return `${JSON.stringify(toSarif(result), null, 2)}\n`;
}

function ruleDescriptor(m: RuleMeta): SarifReportingDescriptor {
  const d: SarifReportingDescriptor = {
    id: m.code,
    name: m.check,
    shortDescription: { text: m.summary || m.check },
    fullDescription: { text: m.what || m.summary || m.check },
    help: { text: helpText(m), markdown: helpMarkdown(m) },
    defaultConfiguration: { level: sarifLevel(m.severity) },
    properties: { tags: [m.family], severity: m.severity },
  };
  if (m.references.length > 0) {
    // Keep the key order stable: helpUri right after help.
    const { defaultConfiguration, properties, ...head } = d;
    return { ...head, helpUri: m.references[0], defaultConfiguration, properties };
  }
  return d;
}

function helpText(m: RuleMeta): string {
  const parts = [m.what, m.why && `Why: ${m.why}`, m.fix && `Fix: ${m.fix}`];
  if (m.references.length > 0) parts.push(`References: ${m.references.join(' ')}`);
  return parts.filter(Boolean).join('\n\n');
}

function helpMarkdown(m: RuleMeta): string {
  const out = [`## ${m.code} ${m.check}`, '', `Category: ${FAMILY_TITLES[m.family]} · default severity: ${m.severity} · effort: ${m.effort}`];
  if (m.what) out.push('', '### What it does', '', m.what);
  if (m.why) out.push('', '### Why is this bad?', '', m.why);
  if (m.bad) out.push('', '### Example', '', '```python', m.bad.replace(/\n+$/, ''), '```');
  if (m.good) out.push('', '### Use instead', '', '```python', m.good.replace(/\n+$/, ''), '```');
  if (m.fix) out.push('', `**Fix:** ${m.fix}`);
  if (m.references.length > 0) out.push('', '### References', '', ...m.references.map((r) => `- <${r}>`));
  return out.join('\n');
}

function sarifResult(f: Finding, ruleIndex: number): SarifResult {
  const startLine = Math.max(1, f.line);
  const startColumn = Math.max(1, f.column);
  const endLine = Math.max(startLine, f.endLine);
  // SARIF's endColumn is exclusive; an empty or inverted region is widened to one character.
  const endColumn = endLine === startLine ? Math.max(startColumn + 1, f.endColumn) : Math.max(1, f.endColumn);
  const names = chainNames(f);
  const chain = names ? ` (via ${names})` : '';
  const location: SarifResult['locations'][number] = {
    physicalLocation: {
      artifactLocation: { uri: relativeUri(f.path), uriBaseId: '%SRCROOT%' },
      region: { startLine, startColumn, endLine, endColumn },
    },
  };
  if (f.function) location.logicalLocations = [{ name: f.function, kind: 'function' }];
  const properties: Record<string, unknown> = {
    severity: f.severity,
    originalSeverity: f.originalSeverity,
    advisory: f.advisory,
    category: f.category,
    effort: f.effort,
    recommendation: f.recommendation,
  };
  if (f.downgrades.length > 0) properties.downgrades = f.downgrades.map((d) => ({ ...d }));
  const result: SarifResult = {
    ruleId: f.code,
    ruleIndex,
    level: sarifLevel(f.severity, f.advisory),
    message: { text: `${f.message}${chain}` },
    locations: [location],
    partialFingerprints: { [FINGERPRINT_KEY]: f.fingerprint },
    properties,
  };
  // The call chain as a code flow: code scanning shows it as the path from the call to the effect.
  if (f.chain && f.chain.length > 1) {
    result.codeFlows = [{
      threadFlows: [{
        locations: f.chain.map((s) => ({
          location: {
            physicalLocation: {
              artifactLocation: { uri: relativeUri(s.path), uriBaseId: '%SRCROOT%' },
              region: { startLine: Math.max(1, s.line), startColumn: Math.max(1, s.column) },
            },
            message: { text: `${s.function}: ${s.call}` },
          },
        })),
      }],
    }];
  }
  if (f.callers && f.callers.length > 0) {
    result.relatedLocations = f.callers.map((s, i) => ({
      id: i + 1,
      physicalLocation: {
        artifactLocation: { uri: relativeUri(s.path), uriBaseId: '%SRCROOT%' },
        region: { startLine: Math.max(1, s.line), startColumn: Math.max(1, s.column) },
      },
      message: { text: `called from ${s.function}: ${s.call}` },
    }));
  }
  return result;
}

/** A relative URI reference: `/` separators, each segment percent-encoded, never absolute. */
export function relativeUri(path: string): string {
  return path
    .replace(/\\/g, '/')
    .replace(/^(\.\/)+/, '')
    .replace(/^\/+/, '')
    .split('/')
    .map((seg) => encodeURIComponent(seg))
    .join('/');
}

function stubMeta(f: Finding): RuleMeta {
  return {
    code: f.code,
    check: f.check,
    family: f.category,
    severity: f.originalSeverity,
    effort: f.effort,
    summary: f.check,
    what: '',
    why: '',
    bad: '',
    good: '',
    fix: f.recommendation,
    references: [],
  };
}
