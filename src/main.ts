#!/usr/bin/env node
/**
 * The command line: parses arguments, calls the engine, renders, sets the exit code. Heavy
 * modules (parser, pool, engine) load only for the commands that need them, so `rules` and
 * `explain` start instantly.
 */
import type { Argv } from 'yargs';
import type { PartialConfig } from './config/config.js';
import { SEVERITIES } from './types.js';
import { TOOL_VERSION } from './version.js';

/** Set from config.ts before yargs runs (loaded lazily: `rules`/`explain` need no config parsers). */
let FORMATS: readonly string[] = [];

const EXIT_OK = 0;
const EXIT_FINDINGS = 1;
const EXIT_ERROR = 2;

let verbose = false;

function fail(message: string, err?: unknown): never {
  process.stderr.write(`persist-audit: ${message}\n`);
  if (verbose && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  process.exit(EXIT_ERROR);
}

function scanOptions(y: Argv) {
  return y
    .positional('paths', { type: 'string', array: true, describe: 'files or directories to report on (default .); the whole project is read for context' })
    .option('root', { type: 'string', describe: 'the project root (default: the nearest ancestor with persist-audit.yaml, pyproject.toml, setup.cfg or .git)' })
    .option('format', { type: 'string', choices: FORMATS as unknown as string[], describe: 'what goes to stdout (default text)' })
    .option('output', { type: 'string', describe: 'write the --format output to FILE instead of stdout' })
    .option('report', { type: 'string', describe: 'markdown report path (default docs/project/persistence_audit.md; none for a scan of some paths unless given); --no-report for none' })
    .option('log', { type: 'string', describe: 'results log path (default docs/project/.audit/results_log.md; none for a scan of some paths unless given); --no-log for none' })
    .option('write', { type: 'boolean', describe: '--no-write: write nothing into PATH (no report, no log, no cache)' })
    .option('select', { type: 'string', array: true, describe: 'rule codes or prefixes to run (PA3, PA301)' })
    .option('ignore', { type: 'string', array: true, describe: 'rule codes or prefixes to skip' })
    .option('fail-on', { type: 'string', choices: [...SEVERITIES, 'never'], describe: 'exit 1 when a non-advisory finding at or above this exists (default high)' })
    .option('jobs', { type: 'number', describe: 'worker threads (default: available cores)' })
    .option('exclude', { type: 'string', array: true, describe: 'glob to exclude, on top of .gitignore and the defaults (repeatable)' })
    .option('config', { type: 'string', describe: 'explicit config file' })
    .option('baseline', { type: 'string', describe: 'report only findings not in this baseline file' })
    .option('write-baseline', { type: 'string', describe: 'write the current findings as a baseline to FILE' })
    .option('cache', { type: 'boolean', describe: '--no-cache: ignore and do not write the incremental cache' })
    .option('parser', { type: 'string', choices: ['auto', 'native', 'wasm'], describe: 'tree-sitter binding (default auto: WASM, native fallback)' })
    .option('strict', { type: 'boolean', describe: 'exit 2 when a rule failed internally on some file' })
    .option('timings', { type: 'boolean', describe: 'per-rule and per-phase time table on stderr' })
    .option('execution-context', { type: 'string', choices: ['default', 'strict'], describe: 'strict: judge code that runs once (migrations, scripts, startup) as if it served requests' })
    .option('show-source', { type: 'boolean', describe: "text output: each finding's source line with a caret (default: when stdout is a terminal); --no-show-source for none" })
    .option('statistics', { type: 'boolean', describe: 'counts per rule instead of one line per finding' })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'less on stderr: no notes, no progress' })
    .option('verbose', { alias: 'v', type: 'boolean', describe: 'more on stderr (skipped files, parse errors, stack traces)' });
}

type ScanArgs = Awaited<ReturnType<typeof scanOptions>['argv']>;

function toPartialConfig(argv: ScanArgs): PartialConfig {
  const cfg: PartialConfig = {};
  const a = argv as Record<string, unknown>;
  if (a.format !== undefined) cfg.format = a.format as PartialConfig['format'];
  if (a.output !== undefined) cfg.output = a.output as string;
  if (a.report !== undefined) cfg.report = a.report === false ? null : String(a.report);
  if (a.log !== undefined) cfg.log = a.log === false ? null : String(a.log);
  if (a.write === false) {
    // Nothing into PATH: not the report, the log, nor the incremental cache.
    cfg.report = null;
    cfg.log = null;
    cfg.cache = false;
  }
  const codes = (v: unknown): string[] | undefined => {
    if (v === undefined) return undefined;
    const list = (v as string[]).flatMap((s) => String(s).split(',')).map((s) => s.trim()).filter(Boolean);
    for (const c of list) if (!/^PA\d{0,3}$/i.test(c)) fail(`"${c}" is not a rule code or prefix (like PA3 or PA301)`);
    return list.map((c) => c.toUpperCase());
  };
  const select = codes(a.select);
  if (select) cfg.select = select;
  const ignore = codes(a.ignore);
  if (ignore) cfg.ignore = ignore;
  if (a.failOn !== undefined) cfg.failOn = a.failOn as PartialConfig['failOn'];
  if (a.jobs !== undefined) {
    const jobs = Number(a.jobs);
    if (!Number.isInteger(jobs) || jobs < 1) fail(`--jobs must be a whole number ≥ 1 (got ${String(a.jobs)})`);
    cfg.jobs = jobs;
  }
  if (a.exclude !== undefined) cfg.exclude = (a.exclude as string[]).map(String);
  if (a.baseline !== undefined) cfg.baseline = String(a.baseline);
  if (a.writeBaseline !== undefined) cfg.writeBaseline = String(a.writeBaseline);
  if (a.cache !== undefined) cfg.cache = Boolean(a.cache);
  if (a.parser !== undefined) cfg.parser = a.parser as PartialConfig['parser'];
  if (a.strict !== undefined) cfg.strict = Boolean(a.strict);
  if (a.timings !== undefined) cfg.timings = Boolean(a.timings);
  if (a.executionContext !== undefined) cfg.executionContext = a.executionContext as PartialConfig['executionContext'];
  if (a.quiet !== undefined) cfg.quiet = Boolean(a.quiet);
  if (a.verbose !== undefined) cfg.verbose = Boolean(a.verbose);
  if (a.showSource !== undefined) cfg.showSource = Boolean(a.showSource);
  if (a.statistics !== undefined) cfg.statistics = Boolean(a.statistics);
  return cfg;
}

async function runScan(argv: ScanArgs): Promise<number> {
  const { runScanCommand } = await import('./cli/scanCommand.js');
  const paths = ((argv.paths as unknown[] | undefined) ?? []).map(String);
  return runScanCommand({ paths, root: argv.root as string | undefined, configPath: argv.config as string | undefined }, toPartialConfig(argv));
}

/**
 * `rules` and `explain CODE` in their plain forms skip yargs (most of the startup time); any
 * other spelling (help, a bad option) goes through yargs as usual.
 */
async function fastPath(argv: string[]): Promise<boolean> {
  if (argv[0] === 'rules') {
    const rest = argv.slice(1).join(' ').replace(/^--format[= ]/, '');
    const format = rest === '' ? 'text' : rest === 'text' || rest === 'json' ? rest : null;
    if (!format) return false;
    const { runRulesCommand } = await import('./cli/infoCommands.js');
    process.exitCode = await runRulesCommand(format);
    return true;
  }
  if (argv[0] === 'explain' && argv.length === 2 && !argv[1]!.startsWith('-')) {
    const { runExplainCommand } = await import('./cli/infoCommands.js');
    process.exitCode = await runExplainCommand(argv[1]!);
    return true;
  }
  return false;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  verbose = argv.includes('--verbose') || argv.includes('-v');
  if (await fastPath(argv)) return;
  const [{ default: yargs }, config] = await Promise.all([import('yargs'), import('./config/config.js')]);
  FORMATS = config.FORMATS;
  await yargs(argv)
    .scriptName('persist-audit')
    .usage('$0 [scan] [PATHS...]: audit a Python service for persistence and performance problems')
    .command(['scan [paths..]', '$0 [paths..]'], 'audit the project; report on PATHS (files or directories, default .)', scanOptions, async (a) => {
      process.exitCode = await runScan(a as ScanArgs);
    })
    .command(
      'context [path]',
      'print the discovered project context',
      (y) =>
        y
          .positional('path', { type: 'string', default: '.' })
          .option('format', { type: 'string', choices: ['json', 'yaml'], default: 'json' })
          .option('parser', { type: 'string', choices: ['auto', 'native', 'wasm'], default: 'auto' }),
      async (a) => {
        const { runContextCommand } = await import('./cli/infoCommands.js');
        process.exitCode = await runContextCommand(String(a.path), a.format as 'json' | 'yaml', a.parser as 'auto');
      },
    )
    .command(
      'rules',
      'list every rule: code, check id, family, default severity',
      (y) => y.option('format', { type: 'string', choices: ['text', 'json'], default: 'text' }),
      async (a) => {
        const { runRulesCommand } = await import('./cli/infoCommands.js');
        process.exitCode = await runRulesCommand(a.format as 'text' | 'json');
      },
    )
    .command(
      'explain <code>',
      "a rule's documentation: what, why, example, fix, references",
      (y) => y.positional('code', { type: 'string', demandOption: true }),
      async (a) => {
        const { runExplainCommand } = await import('./cli/infoCommands.js');
        process.exitCode = await runExplainCommand(String(a.code));
      },
    )
    // One value per occurrence of a list option (`--select PA3 --select PA1`, or `PA3,PA1`): a
    // greedy list would swallow the file names that follow it (`--exclude 'x/**' app/a.py`),
    // and pre-commit appends its files right after the hook's args.
    .parserConfiguration({ 'greedy-arrays': false })
    .strictOptions()
    .strictCommands()
    .help()
    .alias('h', 'help')
    .version(TOOL_VERSION)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) fail(err.message, err);
      fail(msg.split('\n')[0] ?? 'bad arguments');
    })
    .parseAsync();
}

main().catch((err: unknown) => fail(err instanceof Error ? err.message : String(err), err));

export { EXIT_OK, EXIT_FINDINGS, EXIT_ERROR };
