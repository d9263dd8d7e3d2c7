/**
 * The project context: every fixture project under fixtures/context/ has a golden
 * `expected-context.json` compared exactly (the absolute root becomes "."). Regenerate with
 * `UPDATE_GOLDENS=1 npx vitest run test/context` and read the diff before committing it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createParser } from '../dist/src/parse/parser.js';
import { discoverContext } from '../dist/src/discovery/context.js';
import { extractSqlFacts, loadSqlParser } from '../dist/src/rules/sql/parse.js';
import { majorOf } from '../dist/src/discovery/discover.js';
import { parseRequirement, discoverStack, underDirectories } from '../dist/src/discovery/manifests.js';
import type { ProjectContext } from '../src/discovery/context.js';
import type { PythonParser } from '../src/parse/parser.js';

const FIXTURE_ROOT = path.resolve(__dirname, '../fixtures');

const FIXTURES = path.resolve(__dirname, '../fixtures/context');
const GOLDEN = 'expected-context.json';
const UPDATE = process.env.UPDATE_GOLDENS === '1';

function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name !== GOLDEN) out.push(path.relative(root, p).split(path.sep).join('/'));
    }
  };
  walk(root);
  return out.sort();
}

async function contextOf(root: string, parser: PythonParser, files = listFiles(root)): Promise<ProjectContext> {
  const ctx = (await discoverContext(root, files, parser)) as ProjectContext;
  return { ...ctx, root: '.' };
}

let parser: PythonParser;
beforeAll(async () => {
  parser = (await createParser('native')) as PythonParser;
  await loadSqlParser();
});

describe('golden contexts', () => {
  const projects = fs.readdirSync(FIXTURES).filter((d) => fs.statSync(path.join(FIXTURES, d)).isDirectory()).sort();

  it('has the fixture projects the issue asks for', () => {
    expect(projects).toEqual(expect.arrayContaining(['poetry-async', 'requirements-sync', 'sqlmodel-app', 'nothing', 'broken']));
  });

  for (const project of projects) {
    it(project, async () => {
      const root = path.join(FIXTURES, project);
      const ctx = await contextOf(root, parser);
      const goldenPath = path.join(root, GOLDEN);
      if (UPDATE || !fs.existsSync(goldenPath)) {
        fs.writeFileSync(goldenPath, JSON.stringify(ctx, null, 2) + '\n');
      }
      const golden = JSON.parse(fs.readFileSync(goldenPath, 'utf8'));
      expect(ctx).toEqual(golden);
    });
  }
});

describe('context object', () => {
  it('is structured-cloneable plain data', async () => {
    const ctx = await contextOf(path.join(FIXTURES, 'poetry-async'), parser);
    expect(structuredClone(ctx)).toEqual(ctx);
    expect(JSON.parse(JSON.stringify(ctx))).toEqual(ctx);
  });

  it('does not depend on the order of the file list', async () => {
    const root = path.join(FIXTURES, 'requirements-sync');
    const files = listFiles(root);
    const a = await contextOf(root, parser, files);
    const b = await contextOf(root, parser, [...files].reverse());
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
  });

  it('reports a broken TOML, YAML and SQL each as a problem and keeps the rest', async () => {
    const ctx = await contextOf(path.join(FIXTURES, 'broken'), parser);
    const files = ctx.problems.map((p) => p.file);
    expect(files).toEqual(expect.arrayContaining(['pyproject.toml', 'docker-compose.yml', 'migrations_bad.sql', 'alembic/versions/0003_bad_sql.py']));
    expect(ctx.migrations.sqlErrors).toBe(3);
    expect(ctx.migrations.triggers.map((t) => t.name)).toEqual(['items_notify']);
    expect(ctx.stack.sqlalchemy?.version).toBe('==2.0.30');
    expect(ctx.stack.postgresql?.version).toBe('15');
  });
});

describe('session helpers', () => {
  it('learns a helper returning a session of the factory named Session, not one returning requests.Session()', async () => {
    const root = path.join(FIXTURE_ROOT, 'lifecycle/named-session');
    const ctx = (await discoverContext(root, listFiles(root), parser)) as ProjectContext;
    expect(ctx.sessionHelpers.map((h) => h.name)).toEqual(['open_db']);
  });
});

describe('extractSqlFacts', () => {
  it('reads triggers with timing, events and the function', () => {
    const f = extractSqlFacts(
      'CREATE TRIGGER t BEFORE INSERT OR UPDATE OR DELETE ON s.items FOR EACH ROW EXECUTE FUNCTION s.fn();',
      'x.sql',
      5,
    );
    expect(f.triggers).toEqual([
      { name: 't', table: 's.items', timing: 'BEFORE', events: ['INSERT', 'UPDATE', 'DELETE'], forEach: 'ROW', function: 's.fn', args: [], file: 'x.sql', line: 5, index: 1 },
    ]);
  });

  it('finds pg_notify and NOTIFY channels inside PL/pgSQL and SQL function bodies', () => {
    const sql = `
CREATE FUNCTION f() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('a', NEW.id::text);
  NOTIFY b;
  PERFORM pg_notify(TG_ARGV[1], '');
  EXECUTE 'NOTIFY ' || quote_ident(TG_TABLE_NAME);
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE FUNCTION g() RETURNS void LANGUAGE sql AS $$ SELECT pg_notify('c', 'x') $$;
CREATE FUNCTION h() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;`;
    const f = extractSqlFacts(sql, 'x.sql', 1);
    expect(f.notifyFunctions.map((n) => [n.name, n.channels, n.returnsTrigger, n.line])).toEqual([
      ['f', ['$argv[1]', 'a', 'b', 'dynamic'], true, 2],
      ['g', ['c'], false, 10],
    ]);
    expect(f.errors).toEqual([]);
  });

  it('records LISTEN and top-level NOTIFY / pg_notify', () => {
    const f = extractSqlFacts("LISTEN a;\nNOTIFY b, 'x';\nSELECT pg_notify('c', 'y');", 'x.sql', 1);
    expect(f.listens).toEqual([{ channel: 'a', file: 'x.sql', line: 1, kind: 'listen' }]);
    expect(f.notifies).toEqual([
      { channel: 'b', file: 'x.sql', line: 2, kind: 'notify' },
      { channel: 'c', file: 'x.sql', line: 3, kind: 'pg_notify' },
    ]);
  });

  it('reports drops and redefinitions in statement order', () => {
    const f = extractSqlFacts('DROP TRIGGER IF EXISTS t ON s.x;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\nDROP FUNCTION g();', 'x.sql', 1);
    expect(f.changes.map((c) => [c.kind, c.name, c.table, c.index, c.line])).toEqual([
      ['drop_trigger', 't', 's.x', 1, 1],
      ['define_function', 'f', null, 2, 2],
      ['drop_function', 'g', null, 3, 3],
    ]);
  });

  it('reads NOTIFY inside DO blocks', () => {
    const f = extractSqlFacts("DO $$ BEGIN PERFORM pg_notify('in_do', ''); NOTIFY other; END $$;", 'x.sql', 3);
    expect(f.notifies.map((n) => [n.channel, n.line])).toEqual([
      ['in_do', 3],
      ['other', 3],
    ]);
  });

  it('skips and counts a bad statement while the others still parse', () => {
    const f = extractSqlFacts('LISTEN a;\nCREATE TABEL x (id int);\n\nLISTEN b;\n', 'x.sql', 10);
    expect(f.listens.map((l) => [l.channel, l.line])).toEqual([
      ['a', 10],
      ['b', 13],
    ]);
    expect(f.errors).toHaveLength(1);
    expect(f.errors[0]!.line).toBe(11);
    expect(f.statements).toBe(3);
  });

  it('survives an unterminated quote and garbage', () => {
    expect(() => extractSqlFacts("SELECT 'oops;\nLISTEN z;\n", 'x.sql', 1)).not.toThrow();
    expect(() => extractSqlFacts('\u0000\u0001 $$ ;;; ))) CREATE', 'x.sql', 1)).not.toThrow();
    expect(extractSqlFacts('', 'x.sql', 1).statements).toBe(0);
  });
});

describe('manifests', () => {
  it('parses PEP 508 requirements', () => {
    expect(parseRequirement('SQLAlchemy[asyncio] >= 2.0, <3 ; python_version > "3.8"')).toEqual({ name: 'SQLAlchemy', version: '>=2.0,<3' });
    expect(parseRequirement('fastapi')).toEqual({ name: 'fastapi', version: null });
    expect(parseRequirement('pkg @ https://example.com/pkg.whl')).toEqual({ name: 'pkg', version: null });
  });

  it('reads hashed requirements and follows -r includes relative to the file', () => {
    const files: Record<string, string> = {
      'reqs/prod.txt': '-r base.txt\nfastapi==0.110.0 \\\n    --hash=sha256:abc \\\n    --hash=sha256:def\n',
      'reqs/base.txt': 'SQLAlchemy[asyncio]==2.0.1 ; python_version >= "3.8"\n-e git+https://example.com/x.git#egg=x\n',
      'requirements-dev.txt': '-r reqs/prod.txt\n',
    };
    const facts = discoverStack(Object.keys(files), (f: string) => files[f] ?? null);
    expect(facts.stack.fastapi).toEqual({ version: '==0.110.0', source: 'reqs/prod.txt', kind: 'framework' });
    expect(facts.stack.sqlalchemy).toEqual({ version: '==2.0.1', source: 'reqs/base.txt', kind: 'orm' });
  });

  it('derives the SQLAlchemy major version from a constraint', () => {
    expect(majorOf('^2.0.25')).toBe(2);
    expect(majorOf('>=1.4,<2.0')).toBe(1);
    expect(majorOf('<2.0')).toBe(1);
    expect(majorOf('~=1.3.24')).toBe(1);
    expect(majorOf(null)).toBe(null);
  });

  it('reads setup.cfg, Pipfile, PDM and compose image defaults', () => {
    const files: Record<string, string> = {
      'setup.cfg': '[metadata]\nname = x\n\n[options]\ninstall_requires =\n    aiohttp>=3.9\n    psycopg2-binary\npython_requires = >=3.9\n',
      Pipfile: '[packages]\ndramatiq = "*"\narq = {version = ">=0.25"}\n',
      'svc/pyproject.toml': '[tool.pdm.dev-dependencies]\ntest = ["aiosqlite>=0.19"]\n',
      'compose.yaml': 'services:\n  pg:\n    image: ${PG_IMAGE:-timescale/timescaledb:latest-pg15}\n',
    };
    const facts = discoverStack(Object.keys(files), (f: string) => files[f] ?? null);
    expect(facts.problems).toEqual([]);
    expect(facts.stack.aiohttp).toEqual({ version: '>=3.9', source: 'setup.cfg', kind: 'framework' });
    expect(facts.stack.psycopg2).toEqual({ version: null, source: 'setup.cfg', kind: 'driver' });
    expect(facts.stack.dramatiq).toEqual({ version: null, source: 'Pipfile', kind: 'framework' });
    expect(facts.stack.arq?.version).toBe('>=0.25');
    expect(facts.stack.aiosqlite?.source).toBe('svc/pyproject.toml');
    expect(facts.stack.postgresql).toEqual({ version: '15', source: 'compose.yaml', kind: 'database' });
  });
});

describe('underDirectories', () => {
  it('matches paths below a directory, not siblings that share its name as a prefix', () => {
    const under = underDirectories(['svc/migrations', 'db/alembic/', '']);
    expect(under('svc/migrations/versions/001_init.py')).toBe(true);
    expect(under('svc/migrations/env.py')).toBe(true);
    expect(under('db/alembic/x.py')).toBe(true);
    expect(under('svc/migrations_old/x.py')).toBe(false);
    expect(under('svc/migrations')).toBe(false);
    expect(under('other/svc/migrations/x.py')).toBe(false);
    expect(under('x.py')).toBe(false);
  });

  it('matches nothing when every directory is the root', () => {
    expect(underDirectories(['', ''])('a/b.py')).toBe(false);
  });
});

describe('context built by a scan (facts pass in the worker pool)', () => {
  it('equals the context built on the main thread, for every fixture project', async () => {
    const { scan } = await import('../dist/src/engine/scan.js');
    const { resolveConfig } = await import('../dist/src/config/config.js');
    const { walk } = await import('../dist/src/discovery/walk.js');
    const parser = await createParser('native');
    const roots = ['sample-app', ...fs.readdirSync(path.join(FIXTURE_ROOT, 'context')).map((d) => `context/${d}`)];
    for (const rel of roots) {
      const root = path.join(FIXTURE_ROOT, rel);
      const walked = walk(root);
      const direct = await discoverContext(root, [...walked.python.map((f: { rel: string }) => f.rel), ...walked.others], parser);
      const { result } = await scan(root, resolveConfig({ report: null, log: null, cache: false, jobs: 2 }, {}, null));
      expect(JSON.stringify(result.context), rel).toBe(JSON.stringify(direct));
    }
  }, 120_000);
});
