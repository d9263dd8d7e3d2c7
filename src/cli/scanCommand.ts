/** `persist-audit scan`: config → engine → outputs → exit code. */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfigFile, resolveConfig, type AuditConfig, type PartialConfig } from '../config/config.js';
import { scan, ScanError, type ScanOutput } from '../engine/scan.js';
import { tuneJit } from '../engine/jit.js';
import { writeBaseline } from '../engine/baseline.js';
import { renderFormat } from '../report/index.js';
import { renderMarkdown } from '../report/markdown.js';
import { implementedFamilies } from '../rules/registry.js';
import { appendResultsLog } from '../report/resultsLog.js';
import { writeFileAtomic } from '../report/atomic.js';
import { formatTimings } from './timings.js';
import { SEVERITY_RANK } from '../types.js';

export async function runScanCommand(rootArg: string, cli: PartialConfig, configPath: string | undefined): Promise<number> {
  let config: AuditConfig;
  try {
    const root = path.resolve(rootArg);
    if (!fs.existsSync(root)) return error(`cannot read ${rootArg}: no such file or directory`);
    const file = loadConfigFile(fs.statSync(root).isDirectory() ? root : path.dirname(root), configPath);
    config = resolveConfig(cli, file.config, file.file);
  } catch (err) {
    if (err instanceof ConfigError) return error(err.message);
    throw err;
  }

  const stderrTty = process.stderr.isTTY && !config.quiet;
  tuneJit();
  let out: ScanOutput;
  try {
    out = await scan(rootArg, config, {
      notice: (m) => {
        if (!config.quiet) process.stderr.write(`persist-audit: ${m}\n`);
      },
      progress: stderrTty
        ? (done, total) => {
            process.stderr.write(`\r[${'#'.repeat(Math.round((done / total) * 30)).padEnd(30)}] ${done}/${total} batches`);
            if (done === total) process.stderr.write('\r' + ' '.repeat(60) + '\r');
          }
        : undefined,
    });
  } catch (err) {
    if (err instanceof ScanError || err instanceof ConfigError) return error(err.message);
    throw err;
  }
  const { result } = out;

  const rendered = renderFormat(result, config.format, { color: !config.output && process.stdout.isTTY === true && !process.env.NO_COLOR });
  if (config.output) writeFileAtomic(path.resolve(config.output), rendered);
  else process.stdout.write(rendered);

  if (config.report) writeFileAtomic(path.resolve(result.rootPath, config.report), renderMarkdown(result, { implementedFamilies: implementedFamilies() }));
  if (config.log) appendResultsLog(path.resolve(result.rootPath, config.log), result);
  if (config.writeBaseline) writeBaseline(path.resolve(config.writeBaseline), result.findings);

  if (config.verbose) {
    for (const s of result.stats.skipped) process.stderr.write(`skipped ${s.path}: ${s.reason}\n`);
    for (const p of result.stats.parseErrorFiles) process.stderr.write(`syntax errors in ${p} (audited what parsed)\n`);
    for (const e of result.stats.internalErrors) process.stderr.write(`internal error${e.rule ? ` in ${e.rule}` : ''} on ${e.path}: ${e.message}\n`);
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

function error(message: string): number {
  process.stderr.write(`persist-audit: ${message}\n`);
  return 2;
}
