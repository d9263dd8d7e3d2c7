/**
 * Configuration: `persist-audit.yaml` / `.persist-audit.yaml` at the root, or
 * `[tool.persist-audit]` in `pyproject.toml`, merged under the command-line flags. Keys mirror
 * the long options. Unknown keys and bad values are errors naming the key and the file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseYamlQuietly } from '../discovery/yaml.js';
import { parse as parseToml } from 'smol-toml';
import type { ParserPreference } from '../parse/parser.js';
import { SEVERITIES, type Severity } from '../types.js';

export type OutputFormat = 'text' | 'json' | 'sarif' | 'markdown' | 'github';
export const FORMATS: readonly OutputFormat[] = ['text', 'json', 'sarif', 'markdown', 'github'];
export type FailOn = Severity | 'never';
export type ExecutionContextMode = 'default' | 'strict';
export const EXECUTION_CONTEXT_MODES: readonly ExecutionContextMode[] = ['default', 'strict'];

export interface AuditConfig {
  format: OutputFormat;
  output: string | null;
  /** Report path relative to the root, or null for none. */
  report: string | null;
  log: string | null;
  select: string[];
  ignore: string[];
  failOn: FailOn;
  jobs: number;
  exclude: string[];
  parser: ParserPreference;
  /** Globs of test code, never flagged (on top of the built-in test paths). */
  tests: string[];
  /** Per-rule severity overrides: code → severity. */
  severity: Record<string, Severity>;
  baseline: string | null;
  writeBaseline: string | null;
  cache: boolean;
  maxFileSize: number;
  strict: boolean;
  timings: boolean;
  /**
   * `default`: findings in code that runs only once (migrations, scripts and CLI commands,
   * startup, import time) are advisory; `strict`: judged as if they ran on every request.
   */
  executionContext: ExecutionContextMode;
  quiet: boolean;
  verbose: boolean;
  /** Text output: each finding's source line with a caret; null: when stdout is a terminal. */
  showSource: boolean | null;
  /** Counts per rule instead of one line per finding (`--statistics`). */
  statistics: boolean;
  /** Where the file-level settings came from, for messages. */
  configFile: string | null;
}

export const DEFAULT_REPORT = 'docs/project/persistence_audit.md';
export const DEFAULT_LOG = 'docs/project/.audit/results_log.md';

export class ConfigError extends Error {}

/** Settings as given: every key optional; CLI and file both produce this. */
export type PartialConfig = Partial<Omit<AuditConfig, 'configFile'>>;

type Validator = (value: unknown, key: string, where: string) => unknown;

const str: Validator = (v, k, w) => {
  if (typeof v !== 'string' || v === '') throw new ConfigError(`${w}: "${k}" must be a non-empty string`);
  return v;
};
const bool: Validator = (v, k, w) => {
  if (typeof v !== 'boolean') throw new ConfigError(`${w}: "${k}" must be true or false`);
  return v;
};
const strList: Validator = (v, k, w) => {
  const list = typeof v === 'string' ? v.split(',') : v;
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) {
    throw new ConfigError(`${w}: "${k}" must be a list of strings`);
  }
  return list.map((x: string) => x.trim()).filter(Boolean);
};
const codeList: Validator = (v, k, w) => {
  const list = strList(v, k, w) as string[];
  for (const c of list) {
    if (!/^PA\d{0,3}$/i.test(c)) throw new ConfigError(`${w}: "${k}" has "${c}", which is not a rule code or prefix (like PA3 or PA301)`);
  }
  return list.map((c) => c.toUpperCase());
};
const oneOf = (values: readonly string[]): Validator => (v, k, w) => {
  if (typeof v !== 'string' || !values.includes(v)) {
    throw new ConfigError(`${w}: "${k}" must be one of ${values.join(', ')} (got ${JSON.stringify(v)})`);
  }
  return v;
};
const positiveInt: Validator = (v, k, w) => {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new ConfigError(`${w}: "${k}" must be a whole number ≥ 1`);
  return n;
};
const pathOrFalse: Validator = (v, k, w) => {
  if (v === false) return null;
  return str(v, k, w);
};
const severityMap: Validator = (v, k, w) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new ConfigError(`${w}: "${k}" must be a mapping of rule codes to severities`);
  }
  const out: Record<string, Severity> = {};
  for (const [code, sev] of Object.entries(v)) {
    if (!/^PA\d{3}$/i.test(code)) throw new ConfigError(`${w}: "${k}.${code}" is not a rule code`);
    if (typeof sev !== 'string' || !SEVERITIES.includes(sev as Severity)) {
      throw new ConfigError(`${w}: "${k}.${code}" must be one of ${SEVERITIES.join(', ')}`);
    }
    out[code.toUpperCase()] = sev as Severity;
  }
  return out;
};

/** File keys (as written in the file) → config field and validator. */
const FILE_KEYS: Record<string, [keyof PartialConfig, Validator]> = {
  format: ['format', oneOf(FORMATS)],
  output: ['output', str],
  report: ['report', pathOrFalse],
  log: ['log', pathOrFalse],
  select: ['select', codeList],
  ignore: ['ignore', codeList],
  'fail-on': ['failOn', oneOf([...SEVERITIES, 'never'])],
  jobs: ['jobs', positiveInt],
  exclude: ['exclude', strList],
  parser: ['parser', oneOf(['auto', 'native', 'wasm'])],
  tests: ['tests', strList],
  severity: ['severity', severityMap],
  baseline: ['baseline', str],
  cache: ['cache', bool],
  'max-file-size': ['maxFileSize', positiveInt],
  strict: ['strict', bool],
  'execution-context': ['executionContext', oneOf(EXECUTION_CONTEXT_MODES)],
  'show-source': ['showSource', bool],
};

/** Validates a parsed config mapping from `where` (a file name, for messages). */
export function validateConfigObject(raw: unknown, where: string): PartialConfig {
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${where}: the configuration must be a mapping of keys to values`);
  const out: PartialConfig = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const normalised = key.replace(/_/g, '-');
    const entry = FILE_KEYS[normalised];
    if (!entry) {
      throw new ConfigError(`${where}: unknown key "${key}" (known keys: ${Object.keys(FILE_KEYS).join(', ')})`);
    }
    (out as Record<string, unknown>)[entry[0]] = entry[1](value, key, where);
  }
  return out;
}

/** Finds and reads the config file for `root`; an explicit file must exist. */
export function loadConfigFile(root: string, explicit?: string): { config: PartialConfig; file: string | null } {
  if (explicit) {
    const file = path.resolve(explicit);
    if (!fs.existsSync(file)) throw new ConfigError(`config file not found: ${explicit}`);
    return { config: readConfig(file), file };
  }
  for (const name of ['persist-audit.yaml', '.persist-audit.yaml', 'persist-audit.yml', '.persist-audit.yml']) {
    const file = path.join(root, name);
    if (fs.existsSync(file)) return { config: readConfig(file), file };
  }
  const pyproject = path.join(root, 'pyproject.toml');
  if (fs.existsSync(pyproject)) {
    let data: Record<string, unknown>;
    try {
      data = parseToml(fs.readFileSync(pyproject, 'utf8')) as Record<string, unknown>;
    } catch {
      // A broken pyproject is the context's problem to report, not a config error, unless it
      // is where the user put our settings.
      const text = safeRead(pyproject);
      if (/^\s*\[tool\.persist-audit\]/m.test(text)) throw new ConfigError(`pyproject.toml: not valid TOML, so [tool.persist-audit] cannot be read`);
      return { config: {}, file: null };
    }
    const section = (data.tool as Record<string, unknown> | undefined)?.['persist-audit'];
    if (section !== undefined) return { config: validateConfigObject(section, 'pyproject.toml [tool.persist-audit]'), file: pyproject };
  }
  return { config: {}, file: null };
}

function readConfig(file: string): PartialConfig {
  const name = path.basename(file);
  const text = safeRead(file);
  let raw: unknown;
  try {
    if (name.endsWith('.toml')) raw = parseToml(text);
    else {
      // A config whose YAML the library only warns about is still not what its author meant.
      const parsed = parseYamlQuietly(text);
      if (parsed.warnings.length) throw new Error(parsed.warnings[0]);
      raw = parsed.value;
    }
  } catch (err) {
    throw new ConfigError(`${name}: not valid ${name.endsWith('.toml') ? 'TOML' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (name === 'pyproject.toml') {
    raw = ((raw as Record<string, unknown>).tool as Record<string, unknown> | undefined)?.['persist-audit'];
  }
  return validateConfigObject(raw, name);
}

function safeRead(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The final configuration: CLI values over file values over defaults. */
export function resolveConfig(cli: PartialConfig, file: PartialConfig, configFile: string | null): AuditConfig {
  const pick = <K extends keyof PartialConfig>(key: K, fallback: AuditConfig[K]): AuditConfig[K] =>
    (cli[key] !== undefined ? cli[key] : file[key] !== undefined ? file[key] : fallback) as AuditConfig[K];
  return {
    format: pick('format', 'text'),
    output: pick('output', null),
    report: pick('report', DEFAULT_REPORT),
    log: pick('log', DEFAULT_LOG),
    select: pick('select', []),
    ignore: pick('ignore', []),
    failOn: pick('failOn', 'high'),
    jobs: pick('jobs', Math.max(1, os.availableParallelism())),
    exclude: [...(file.exclude ?? []), ...(cli.exclude ?? [])],
    parser: pick('parser', 'auto'),
    tests: [...(file.tests ?? []), ...(cli.tests ?? [])],
    severity: { ...(file.severity ?? {}), ...(cli.severity ?? {}) },
    baseline: pick('baseline', null),
    writeBaseline: pick('writeBaseline', null),
    cache: pick('cache', true),
    maxFileSize: pick('maxFileSize', 2 * 1024 * 1024),
    strict: pick('strict', false),
    timings: pick('timings', false),
    executionContext: pick('executionContext', 'default'),
    quiet: pick('quiet', false),
    verbose: pick('verbose', false),
    showSource: pick('showSource', null),
    statistics: pick('statistics', false),
    configFile,
  };
}
