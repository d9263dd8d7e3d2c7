/**
 * semantic/asyncSessions.ts `asyncOnlyOrm`: a project whose run-time engines and session
 * factories are all asyncio ones; tests, migrations and scripts (rules/projectFacts.ts
 * `offlineFile`) do not count.
 */
import { describe, expect, it } from 'vitest';
import { emptyContext } from '../dist/src/discovery/context.js';
import { asyncOnlyOrm } from '../dist/src/semantic/asyncSessions.js';
import { offlineFile } from '../dist/src/rules/projectFacts.js';

const engine = (file: string, isAsync: boolean) => ({
  name: 'engine', async: isAsync, function: null, factory: isAsync ? 'create_async_engine' : 'create_engine', urlScheme: null, kwargs: {}, poolClass: null, file, line: 1,
});
const factory = (file: string, kind: string, cls: string | null = null) => ({
  kind, name: 'Maker', function: null, bind: 'engine', class: cls, expireOnCommit: null, autoflush: null, kwargs: {}, file, line: 2,
});

function asyncOnly(engines: object[], factories: object[]): boolean {
  const base = emptyContext('/nowhere');
  const p = { ...base, engines, sessionFactories: factories } as typeof base;
  return asyncOnlyOrm(p, (f: string) => offlineFile(p, f));
}

describe('asyncOnlyOrm', () => {
  it('holds when every run-time engine and factory is an asyncio one', () => {
    expect(asyncOnly([engine('app/db.py', true)], [factory('app/db.py', 'async_sessionmaker')])).toBe(true);
    expect(asyncOnly([engine('app/db.py', true)], [factory('app/db.py', 'sessionmaker', 'AsyncSession')])).toBe(true);
  });

  it('ignores the sync engines of migrations, tests and scripts', () => {
    const engines = [engine('app/db.py', true), engine('alembic/env.py', false), engine('tests/conftest.py', false), engine('scripts/backfill.py', false), engine('app/migrations/m1.py', false)];
    expect(asyncOnly(engines, [factory('app/db.py', 'async_sessionmaker'), factory('tests/test_db.py', 'sessionmaker')])).toBe(true);
  });

  it('fails for a sync engine or factory the service itself uses, and for a project without any', () => {
    expect(asyncOnly([engine('app/db.py', true), engine('app/reports.py', false)], [])).toBe(false);
    expect(asyncOnly([engine('app/db.py', true)], [factory('app/db.py', 'async_sessionmaker'), factory('app/sync_db.py', 'scoped_session')])).toBe(false);
    expect(asyncOnly([], [])).toBe(false);
  });
});
