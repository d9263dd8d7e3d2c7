/**
 * Baselines: a file of known findings, matched by code, path and fingerprint (never by line
 * number), so that only new findings are reported.
 */
import fs from 'node:fs';
import { writeFileAtomic } from '../report/atomic.js';
import type { Finding } from '../types.js';
import { ScanError } from './scan.js';

interface BaselineFile {
  version: 1;
  findings: { code: string; path: string; fingerprint: string; message?: string }[];
}

export function loadBaseline(file: string): Set<string> {
  let data: BaselineFile;
  try {
    data = JSON.parse(fs.readFileSync(file, 'utf8')) as BaselineFile;
  } catch (err) {
    throw new ScanError(`cannot read baseline ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message.split('\n')[0]}`);
  }
  if (!data || !Array.isArray(data.findings)) throw new ScanError(`baseline ${file} is not a persist-audit baseline (no "findings" list)`);
  return new Set(data.findings.map((f) => `${f.code}\0${f.path}\0${f.fingerprint}`));
}

export function writeBaseline(file: string, findings: readonly Finding[]): void {
  const data: BaselineFile = {
    version: 1,
    findings: findings.map((f) => ({ code: f.code, path: f.path, fingerprint: f.fingerprint, message: f.message })),
  };
  writeFileAtomic(file, JSON.stringify(data, null, 2) + '\n');
}
