/** The merge's one-defect-one-finding rule (merge/sameDefect.ts) and PA404 after PA407 (merge/perUnitEngines.ts). */
import { describe, expect, it } from 'vitest';
import { dropSameDefects, type SameDefect } from '../dist/src/merge/sameDefect.js';
import { perUnitEngines } from '../dist/src/merge/perUnitEngines.js';
import type { Finding } from '../src/types.js';
import { finding } from './helpers/result.js';

describe('same defect', () => {
  const add = finding({ code: 'PA105', path: 'app/load.py', line: 9, severity: 'medium' });
  const named = new Map<Finding, SameDefect>([[add, { code: 'PA207', line: 10 }]]);

  it('drops the finding when the one it names is reported at that line of the file', () => {
    const commit = finding({ code: 'PA207', path: 'app/load.py', line: 10, severity: 'medium' });
    expect(dropSameDefects([add, commit], named)).toEqual([commit]);
  });

  it('keeps it when that finding is advisory, absent (suppressed, ignored), or in another file', () => {
    const advisory = finding({ code: 'PA207', path: 'app/load.py', line: 10, severity: 'medium', advisory: true });
    expect(dropSameDefects([add, advisory], named)).toEqual([add, advisory]);
    expect(dropSameDefects([add], named)).toEqual([add]);
    const elsewhere = finding({ code: 'PA207', path: 'app/other.py', line: 10, severity: 'medium' });
    expect(dropSameDefects([add, elsewhere], named)).toEqual([add, elsewhere]);
  });
});

describe('PA404 after PA407', () => {
  const perRequest = finding({ code: 'PA407', path: 'app/routes.py', line: 40, severity: 'high', chain: [
    { path: 'app/routes.py', line: 40, column: 12, function: 'report', call: 'Store' },
    { path: 'app/store.py', line: 6, column: 23, function: 'Store.__init__', call: 'sqlalchemy.create_engine' },
  ] });

  it('makes the pool advice at the engine call the chain ends at advisory, with the PA407 finding as evidence', () => {
    const pool = finding({ code: 'PA404', path: 'app/store.py', line: 6, column: 23, severity: 'high' });
    const [out] = perUnitEngines([pool, perRequest]);
    expect(out).toMatchObject({ advisory: true });
    expect(out!.downgrades.at(-1)!.evidence).toMatch(/PA407 at app\/routes\.py:40/);
  });

  it('leaves another claim on the same line (a sessionmaker at another column) and other engines alone', () => {
    const sessionmaker = finding({ code: 'PA404', path: 'app/store.py', line: 6, column: 9, severity: 'medium' });
    const other = finding({ code: 'PA404', path: 'app/db.py', line: 6, column: 23, severity: 'high' });
    expect(perUnitEngines([sessionmaker, other, perRequest]).filter((f) => f.advisory)).toEqual([]);
  });
});
