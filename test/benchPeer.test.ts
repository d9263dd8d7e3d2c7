/** The bench's peer: ast-grep's five rules over a tree, with the walk's default excludes. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { astGrepBinary, runAstGrep } from '../dist/bench/astgrep.js';

const bin = astGrepBinary();

describe.skipIf(!bin)('ast-grep peer', () => {
  it('matches its rules and skips what the walk skips', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-peer-'));
    try {
      const w = (rel: string, text: string) => {
        fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
        fs.writeFileSync(path.join(dir, rel), text);
      };
      // One match per rule: sleep and requests in an async def, a commit and a query in a loop, len(all()).
      w('app/a.py', 'import time, requests\n\nasync def h():\n    time.sleep(1)\n    requests.get("u")\n\ndef sync():\n    time.sleep(1)\n');
      w('app/b.py', 'def f(s, rows):\n    for r in rows:\n        s.query(r)\n        s.commit()\n    return len(s.all())\n');
      // The same shapes under default excludes count for nothing.
      w('venv/lib/c.py', 'def f(s, rows):\n    for r in rows:\n        s.commit()\n');
      w('site-packages/d.py', 'def f(s):\n    return len(s.all())\n');
      const run = runAstGrep(bin!, dir, 1);
      expect(run.matches).toBe(5);
      expect(run.ms).toBeGreaterThan(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
