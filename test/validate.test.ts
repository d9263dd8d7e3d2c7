/** Severity downgrades after the families ran: Rule 1 (ADR override) and Rule 6 (execution context). */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/tmp.js';
import { scan } from '../dist/src/engine/scan.js';
import { resolveConfig } from '../dist/src/config/config.js';
import type { Finding } from '../src/types.js';

let findings: Finding[];
let scores: Record<string, number>;

beforeAll(async () => {
  const dir = tempDir('pa-validate-');
  const files: Record<string, string> = {
    'app/api.py': 'import requests\n\n@app.get("/a")\nasync def rate():\n    return requests.get(URL, timeout=5)\n',
    'app/plain.py': 'import requests\n\n@app.get("/b")\nasync def rate_plain():\n    return requests.get(URL)\n',
    'jobs/warm.py': 'import requests\n\nasync def refresh():\n    for u in ["a", "b"]:\n        requests.get(u, timeout=5)\n',
    'jobs/setup.py': 'import requests\n\nasync def setup_cache():\n    for u in ["a", "b"]:\n        requests.get(u)\n',
    'app/legacy.py': 'import requests\n\n@app.get("/c")\nasync def legacy():\n    return requests.get(URL)\n',
    'docs/adr/0007-legacy-http.md': '# ADR-0007: Move legacy HTTP calls to httpx\n\nStatus: Accepted\n\n`app/legacy.py` keeps `requests` until Q3; planned migration.\n',
    'app/n1.py': 'import time\n\n@app.get("/d")\nasync def slow():\n    time.sleep(1)\n',
    'app/users.py': [
      'from fastapi import APIRouter',
      'from sqlalchemy import select',
      'from sqlalchemy.ext.asyncio import AsyncSession',
      'from app.models import User',
      'async def load_user(session: AsyncSession, uid: int):',
      '    return await session.scalar(select(User).where(User.id == uid))',
      '@router.get("/users")',
      'async def list_users(session: AsyncSession):',
      '    users = (await session.scalars(select(User))).all()',
      '    return [await load_user(session, u.manager_id) for u in users]',
      '',
    ].join('\n'),
    'docs/adr/0003-users.md': '# ADR-0003: Users API\n\nStatus: Accepted\n\n`app/users.py` keeps per-user loads for now.\n',
  };
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  const { result } = await scan(dir, resolveConfig({ report: null, log: null, cache: false, jobs: 1 }, {}, null));
  findings = result.findings;
  scores = result.scores as unknown as Record<string, number>;
});

const at = (p: string) => findings.find((f) => f.path === p)!;

describe('context validation', () => {
  it('no evidence: the severity stands', () => {
    expect(at('app/plain.py')).toMatchObject({ severity: 'high', advisory: false, downgrades: [] });
  });

  it('a timeout is no point: the call still blocks the loop for its whole round trip', () => {
    expect(at('app/api.py')).toMatchObject({ severity: 'high', advisory: false, downgrades: [] });
  });

  it('Rule 6, two points (jobs dir, small literal collection): one level down, with the evidence', () => {
    const f = at('jobs/warm.py');
    expect(f).toMatchObject({ severity: 'low', originalSeverity: 'medium', advisory: false });
    expect(f.downgrades).toEqual([{ rule: 'execution_context', from: 'medium', to: 'low', evidence: expect.stringMatching(/jobs directory.*literal collection/) }]);
  });

  it('Rule 6, three points (setup code, jobs dir, small literal collection): advisory', () => {
    const f = at('jobs/setup.py');
    expect(f.advisory).toBe(true);
    expect(f.downgrades[0]).toMatchObject({ rule: 'execution_context', to: 'advisory' });
  });

  it('Rule 1: a file named by an accepted ADR becomes advisory, tagged with the ADR', () => {
    const f = at('app/legacy.py');
    expect(f.advisory).toBe(true);
    expect(f.downgrades[0]!.evidence).toMatch(/\[Planned: ADR-0*7\]/);
  });

  it('Rule 6 does not touch checks outside its list (sync sleep)', () => {
    expect(at('app/n1.py')).toMatchObject({ severity: 'high', downgrades: [] });
  });

  it('never downgrades N+1 in a handler, even through a helper and named by an ADR', () => {
    expect(at('app/users.py')).toMatchObject({ code: 'PA107', line: 10, severity: 'high', advisory: false, downgrades: [] });
  });

  it('advisory findings do not count in the score', () => {
    // non-advisory runtime findings: plain high (1.0), api high (1.0), n1 high (1.0), jobs/warm low (0.2)
    expect(scores.runtime).toBeCloseTo(10 - 3.2, 5);
  });
});
