/** `persist-audit scan`: targets → config → engine → outputs → exit code. */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfigFile, resolveConfig, type AuditConfig, type PartialConfig } from '../config/config.js';
import { scan, ScanError, type ScanOutput } from '../engine/scan.js';
import { tuneJit } from '../engine/jit.js';
import { writeBaseline } from '../engine/baseline.js';
import { renderFormat } from '../report/index.js';
import { markdownPieces } from '../report/markdown.js';
import { renderStatistics } from '../report/statistics.js';
import { escapeControl } from '../report/escape.js';
import { implementedFamilies } from '../rules/registry.js';
import { appendResultsLog } from '../report/resultsLog.js';
import { writeFileAtomic } from '../report/atomic.js';
import { formatTimings } from './timings.js';
import { Progress } from './progress.js';
import { resolveTargets, TargetError, type Targets } from './targets.js';
import { SEVERITY_RANK } from '../types.js';

export interface ScanCommandArgs {
  /** Files and directories as given (none: the working directory). */
  paths: string[];
  /** `--root`: the project root instead of the one found from the paths. */
  root?: string;
  /** `--config FILE`. */
  configPath?: string;
}

export async function runScanCommand(args: ScanCommandArgs, cli: PartialConfig): Promise<number> {
  let config: AuditConfig;
  let targets: Targets;
  try {
    targets = resolveTargets(args.paths, args.root);
    const file = loadConfigFile(targets.root, args.configPath);
    config = resolveConfig(cli, file.config, file.file);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof TargetError) return error(err.message);
    throw err;
  }
  // Notices name files of the tree: a control character in a name is shown, not obeyed.
  const note = (m: string) => {
    if (!config.quiet) process.stderr.write(`persist-audit: ${escapeControl(m)}\n`);
  };
  for (const n of targets.notes) note(n);
  if (targets.scope) {
    // A partial scan must not break the trend: the report and the log row only when the command
    // line asks for them by name.
    config.report = typeof cli.report === 'string' ? cli.report : null;
    config.log = typeof cli.log === 'string' ? cli.log : null;
  }

  const progress = process.stderr.isTTY && !config.quiet ? new Progress(process.stderr) : null;
  progress?.startTimer();
  tuneJit();
  let out: ScanOutput;
  try {
    out = await scan(targets.root, config, {
      notice: (m) => {
        progress?.clear();
        note(m);
      },
      progress: progress ? (done, total, pass) => progress.files(done, total, pass) : undefined,
      phase: progress ? (name) => progress.phase(name) : undefined,
      scope: targets.scope ?? undefined,
      display: targets.rootArg,
    });
  } catch (err) {
    if (err instanceof ScanError || err instanceof ConfigError) return error(err.message);
    throw err;
  } finally {
    progress?.done();
  }
  const { result } = out;

  const toTerminal = !config.output && process.stdout.isTTY === true;
  let rendered: string;
  if (config.statistics) rendered = renderStatistics(result, config.format === 'json' ? 'json' : 'text');
  else {
    const showSource = config.format === 'text' && (config.showSource ?? toTerminal);
    rendered = renderFormat(result, config.format, {
      color: toTerminal && !process.env.NO_COLOR,
      source: showSource ? sourceLines(result.rootPath) : undefined,
    });
  }
  if (config.output) writeFileAtomic(path.resolve(config.output), rendered);
  else process.stdout.write(rendered);
  // Written: the (possibly tens of megabytes of) output need not live on while the report renders.
  rendered = '';

  if (config.report) writeFileAtomic(path.resolve(result.rootPath, config.report), markdownPieces(result, { implementedFamilies: implementedFamilies() }));
  if (config.log) appendResultsLog(path.resolve(result.rootPath, config.log), result);
  if (config.writeBaseline) writeBaseline(path.resolve(config.writeBaseline), result.findings);

  if (config.verbose) {
    const e = escapeControl;
    for (const s of result.stats.skipped) process.stderr.write(`skipped ${e(s.path)}: ${e(s.reason)}\n`);
    for (const p of result.stats.parseErrorFiles) process.stderr.write(`syntax errors in ${e(p)} (audited what parsed)\n`);
    for (const x of result.stats.internalErrors) process.stderr.write(`internal error${x.rule ? ` in ${x.rule}` : ''} on ${e(x.path)}: ${e(x.message)}\n`);
    process.stderr.write(`parser: ${out.parser}\n`);
  } else if (!config.quiet && result.stats.internalErrors.length) {
    process.stderr.write(`persist-audit: ${result.stats.internalErrors.length} internal error(s); rerun with --verbose for details\n`);
  }
  if (config.timings) process.stderr.write(formatTimings(out));

  if (config.strict && result.stats.internalErrors.length) return 2;
  if (config.failOn === 'never') return 0;
  const threshold = SEVERITY_RANK[config.failOn];
  return result.findings.some((f) => !f.advisory && SEVERITY_RANK[f.severity] >= threshold) ? 1 : 0;
}

/** Reads each file once, for `--show-source`; a file that cannot be read shows no source. */
function sourceLines(rootPath: string): (rel: string) => string[] | null {
  const files = new Map<string, string[] | null>();
  return (rel) => {
    if (!files.has(rel)) {
      let lines: string[] | null;
      try {
        lines = fs.readFileSync(path.join(rootPath, rel), 'utf8').split('\n');
      } catch {
        lines = null;
      }
      files.set(rel, lines);
    }
    return files.get(rel)!;
  };
}

function error(message: string): number {
  process.stderr.write(`persist-audit: ${message}\n`);
  return 2;
}
