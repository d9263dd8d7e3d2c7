/**
 * Nothing a repository contains stops the scan or costs the other results: broken Python,
 * binary and non-UTF-8 files, empty and oversized files, broken symlinks and symlink loops.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/tmp.js';
import { scan } from '../dist/src/engine/scan.js';
import { resolveConfig } from '../dist/src/config/config.js';
import type { ScanResult } from '../src/engine/result.js';

let dir: string;
let result: ScanResult;

beforeAll(async () => {
  dir = tempDir('pa-bad-');
  const w = (rel: string, data: string | Buffer) => {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), data);
  };
  w('app/good.py', 'import time\n\nasync def handler():\n    time.sleep(1)\n');
  // Syntax errors after a complete async def: the rule still sees the def that parsed.
  w('app/broken.py', 'import time\n\nasync def ok():\n    time.sleep(2)\n\ndef broken(:\n    return )\n');
  w('app/binary.py', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01, 0x02]));
  w('app/latin1.py', Buffer.from('x = "caf\xe9"\n', 'latin1'));
  w('app/empty.py', '');
  // Test code: counted, never flagged, and not parsed (its syntax error is no one's concern here).
  w('tests/test_broken.py', 'import time\n\nasync def test_x():\n    time.sleep(1)\n\ndef broken(:\n    pass\n');
  w('app/huge.py', '# padding\n'.repeat(500) + 'import time\nasync def f():\n    time.sleep(1)\n');
  w('persist-audit.yaml', 'max-file-size: 2000\n');
  fs.symlinkSync(path.join(dir, 'missing.py'), path.join(dir, 'app/dangling.py'));
  fs.symlinkSync(dir, path.join(dir, 'app/loop'));
  const config = resolveConfig({ report: null, log: null, cache: false, jobs: 2, maxFileSize: 2000 }, {}, null);
  ({ result } = await scan(dir, config));
});

describe('bad input', () => {
  it('still reports the good and the partly broken files', () => {
    expect(result.findings.map((f) => `${f.path}:${f.line} ${f.code}`)).toEqual(['app/broken.py:4 PA303', 'app/good.py:4 PA303']);
  });

  it('counts a test file without parsing or flagging it', () => {
    expect(result.stats.parseErrorFiles).not.toContain('tests/test_broken.py');
    expect(result.findings.some((f) => f.path.startsWith('tests/'))).toBe(false);
    expect(result.stats.lines).toBeGreaterThanOrEqual(7);
  });

  it('counts the file with syntax errors', () => {
    expect(result.stats.parseErrors).toBe(1);
    expect(result.stats.parseErrorFiles).toEqual(['app/broken.py']);
  });

  it('skips binary, non-UTF-8, oversized files and broken symlinks with a reason', () => {
    const reasons = Object.fromEntries(result.stats.skipped.map((s) => [s.path, s.reason]));
    expect(reasons['app/binary.py']).toMatch(/binary/);
    expect(reasons['app/latin1.py']).toMatch(/UTF-8/);
    expect(reasons['app/huge.py']).toMatch(/size limit/);
    expect(reasons['app/dangling.py']).toMatch(/broken symlink/);
  });

  it('audits the empty file and does not follow the symlink loop', () => {
    expect(result.stats.files).toBe(4); // good, broken, empty, tests/test_broken
    expect(result.stats.internalErrors).toEqual([]);
  });
});
