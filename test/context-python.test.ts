/**
 * Python-side context extraction on small in-memory projects: how SQL is read out of string
 * expressions, which calls count as SQLAlchemy's, how models and relationships resolve.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createParser } from '../dist/src/parse/parser.js';
import { discoverContext } from '../dist/src/discovery/context.js';
import { targetFromAnnotation } from '../dist/src/discovery/pythonFacts.js';
import type { ProjectContext } from '../src/discovery/context.js';
import type { PythonParser } from '../src/parse/parser.js';

let parser: PythonParser;
const dirs: string[] = [];

beforeAll(async () => {
  parser = (await createParser('native')) as PythonParser;
});
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function contextFor(files: Record<string, string>): Promise<ProjectContext> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-context-'));
  dirs.push(root);
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return (await discoverContext(root, Object.keys(files), parser)) as ProjectContext;
}

describe('SQL in Python migrations', () => {
  it('reads escapes, implicit concatenation, + and parenthesised strings', async () => {
    const ctx = await contextFor({
      'alembic/versions/0001.py': [
        'from alembic import op',
        'def upgrade():',
        '    op.execute("CREATE TRIGGER \\"t1\\" AFTER INSERT ON a "',
        '               "FOR EACH ROW EXECUTE FUNCTION f()")',
        "    op.execute(('CREATE TRIGGER t2 AFTER DELETE ON b ' + 'EXECUTE FUNCTION f()'))",
        "    op.execute(r'''LISTEN \"my chan\"''')",
        '',
      ].join('\n'),
    });
    expect(ctx.migrations.triggers.map((t) => [t.name, t.table, t.events[0], t.line])).toEqual([
      ['t1', 'a', 'INSERT', 3],
      ['t2', 'b', 'DELETE', 5],
    ]);
    expect(ctx.migrations.listens).toEqual([{ channel: 'my chan', file: 'alembic/versions/0001.py', line: 6 }]);
    expect(ctx.problems).toEqual([]);
  });

  it('does not call unknown f-string parts or text() expressions (bind parameters too) bad SQL', async () => {
    const ctx = await contextFor({
      'migrations/versions/0002.py': [
        'import sqlalchemy as sa',
        'from alembic import op',
        'def upgrade(values):',
        '    op.add_column("t", sa.Column("id", sa.Uuid, server_default=sa.text("gen_random_uuid()")))',
        '    op.execute(f"CREATE TYPE kind AS ENUM {values}")',
        '    op.execute("SELEC 1")',
        '    op.add_column("t", sa.Column("n", sa.Integer, server_default=sa.text("coalesce(:seed, 1)")))',
        '',
      ].join('\n'),
    });
    expect(ctx.migrations.sqlErrors).toBe(1);
    expect(ctx.problems).toEqual([
      { file: 'migrations/versions/0002.py', reason: 'SQL at line 6 does not parse, skipped: syntax error at or near "SELEC"' },
    ]);
  });

  it('lists a few bad statements per file and counts the rest', async () => {
    const ctx = await contextFor({ 'dump.sql': Array.from({ length: 8 }, (_, i) => `SELEC ${i};`).join('\n') });
    expect(ctx.migrations.sqlErrors).toBe(8);
    expect(ctx.problems).toHaveLength(6);
    expect(ctx.problems[0]!.reason).toBe('3 more SQL statements do not parse, skipped');
  });

  it('never lets one bad file stop the others', async () => {
    const ctx = await contextFor({
      'a.sql': '\u0000\u0001garbage $$ unterminated',
      'b.sql': 'LISTEN fine;',
      'pyproject.toml': '[tool.poetry.dependencies]\nfastapi = "^0.100"\n[[broken',
      'requirements.txt': 'fastapi==0.99.0\n',
    });
    expect(ctx.migrations.listens.map((l) => l.channel)).toEqual(['fine']);
    expect(ctx.stack.fastapi?.version).toBe('==0.99.0');
    expect(ctx.problems.map((p) => p.file)).toContain('pyproject.toml');
  });
});

describe('engines and sessions', () => {
  it('follows import aliases and ignores wrappers and shadowing names', async () => {
    const ctx = await contextFor({
      'app/db.py': [
        'from sqlalchemy.ext.asyncio import create_async_engine as make, async_sessionmaker',
        'from app.wrappers import create_engine',
        'engine = make("postgresql+asyncpg://u@h/db", pool_size=5, echo=True)',
        'other = create_engine("sqlite://")',
        'Session = async_sessionmaker(engine, expire_on_commit=False)',
        'async def use(async_sessionmaker):',
        '    async with async_sessionmaker() as s:',
        '        yield s',
        '',
      ].join('\n'),
    });
    expect(ctx.engines.map((e) => [e.name, e.factory, e.urlScheme, e.kwargs])).toEqual([
      ['engine', 'create_async_engine', 'postgresql+asyncpg', { echo: true, pool_size: 5 }],
    ]);
    expect(ctx.sessionFactories.map((f) => [f.kind, f.name, f.expireOnCommit])).toEqual([['async_sessionmaker', 'Session', false]]);
    expect(ctx.stack.postgresql?.source).toBe('app/db.py');
  });
});

describe('models', () => {
  it('resolves a Base defined in another module and re-exported from a package', async () => {
    const ctx = await contextFor({
      'app/db/base.py': 'from sqlalchemy.orm import declarative_base\nBase = declarative_base()\n',
      'app/db/__init__.py': 'from .base import Base\n',
      'app/models.py': [
        'from sqlalchemy import Column, Integer',
        'from sqlalchemy.orm import relationship',
        'from app.db import Base',
        'class A(Base):',
        '    __tablename__ = "a"',
        '    id = Column(Integer, primary_key=True)',
        '    bs = relationship(lambda: B, lazy=False)',
        'class NotAModel:',
        '    __tablename__ = "nope"',
        '',
      ].join('\n'),
    });
    expect(ctx.models.map((m) => [m.name, m.table, m.columnCount, m.relationships.map((r) => [r.target, r.lazy])])).toEqual([
      ['A', 'a', 1, [['B', 'joined']]],
    ]);
  });

  it('a mixin\'s declared_attr backref named by a class attribute of each model using it', async () => {
    const ctx = await contextFor({
      'app/models.py': [
        'from sqlalchemy import Column, ForeignKey, Integer',
        'from sqlalchemy.orm import backref, declarative_base, declared_attr, relationship',
        'Base = declarative_base()',
        'class Folder(Base):',
        '    __tablename__ = "folder"',
        '    id = Column(Integer, primary_key=True)',
        'class InFolderMixin:',
        '    folder_backref_name = None',
        '    @declared_attr',
        '    def folder(cls):',
        '        return relationship("Folder", backref=backref(cls.folder_backref_name, lazy="dynamic"))',
        'class Note(InFolderMixin, Base):',
        '    __tablename__ = "note"',
        '    folder_backref_name = "all_notes"',
        '    id = Column(Integer, primary_key=True)',
        'class Sheet(InFolderMixin, Base):',
        '    __tablename__ = "sheet"',
        '    folder_backref_name = "all_sheets"',
        '    id = Column(Integer, primary_key=True)',
        'class Loose(InFolderMixin, Base):',
        '    __tablename__ = "loose"',
        '    id = Column(Integer, primary_key=True)',
        '',
      ].join('\n'),
    });
    const folder = ctx.models.find((m) => m.name === 'Folder')!;
    // `Loose` sets no name (the mixin's `None`): no backref for it.
    expect(folder.relationships.map((r) => [r.name, r.target, r.lazy])).toEqual([
      ['all_notes', 'Note', 'dynamic'],
      ['all_sheets', 'Sheet', 'dynamic'],
    ]);
  });

  it('reads a relationship\'s direction from the foreign keys, as SQLAlchemy does', async () => {
    const ctx = await contextFor({
      'app/models.py': [
        'from sqlalchemy import Column, ForeignKey, Integer',
        'from sqlalchemy.orm import backref, declarative_base, relationship',
        'Base = declarative_base()',
        'class Probe(Base):',
        '    __tablename__ = "probes"',
        '    id = Column(Integer, primary_key=True)',
        '    parent_ref = Column(Integer, ForeignKey("probes.id"))',
        '    parent = relationship("Probe")',
        'class Alarm(Base):',
        '    __tablename__ = "alarms"',
        '    id = Column(Integer, primary_key=True)',
        '    probe_ref = Column(Integer, ForeignKey("probes.id"))',
        '    watcher_ref = Column(Integer, ForeignKey(Watcher.id))',
        '    target = relationship(Probe, backref=backref("alarms"))',
        '    watcher = relationship("Watcher")',
        '    peers = relationship(Probe, order_by="Probe.id")',
        'class Watcher(Base):',
        '    __tablename__ = "watchers"',
        '    id = Column(Integer, primary_key=True)',
        '    alarm_ref = Column(Integer, ForeignKey("alarms.id"))',
        '    alarm = relationship(Alarm)',
        '',
      ].join('\n'),
    });
    const rels = (name: string) => Object.fromEntries(ctx.models.find((m) => m.name === name)!.relationships.map((r) => [r.name, !!r.scalar]));
    // Alarm holds the key to probes: `target` is one row, its backref `alarms` a collection;
    // `peers` says it is a collection (`order_by=`); a self-reference is left open.
    expect(rels('Alarm')).toEqual({ target: true, watcher: false, peers: false });
    expect(rels('Probe')).toEqual({ parent: false, alarms: false });
    // Alarm and Watcher reference each other: either side may be the many, left as declared.
    expect(rels('Watcher')).toEqual({ alarm: false });
  });

  it('sees foreign keys in mixins and __table_args__, and leaves a spelled-out join as declared', async () => {
    const ctx = await contextFor({
      'app/models.py': [
        'from sqlalchemy import Column, ForeignKey, ForeignKeyConstraint, Integer',
        'from sqlalchemy.orm import declarative_base, declared_attr, relationship',
        'Base = declarative_base()',
        'class TopicKey:',
        '    @declared_attr',
        '    def topic_id(cls):',
        '        return Column(ForeignKey("topics.id"))',
        'class Topic(Base):',
        '    __tablename__ = "topics"',
        '    id = Column(Integer, primary_key=True)',
        '    notes = relationship("Note", primaryjoin="Topic.id == Note.topic_id")',
        '    votes = relationship("Vote")',
        'class Note(TopicKey, Base):',
        '    __tablename__ = "notes"',
        '    id = Column(Integer, primary_key=True)',
        '    topic = relationship(Topic)',
        'class Vote(Base):',
        '    __tablename__ = "votes"',
        '    __table_args__ = (ForeignKeyConstraint(["topic_ref"], ["topics.id"]),)',
        '    id = Column(Integer, primary_key=True)',
        '    topic_ref = Column(Integer)',
        '    topic = relationship(Topic)',
        '',
      ].join('\n'),
    });
    const rels = (name: string) => Object.fromEntries(ctx.models.find((m) => m.name === name)!.relationships.map((r) => [r.name, !!r.scalar]));
    // Topic's `notes` spells out its join; `votes` is a collection (the key is in Vote's table args).
    expect(rels('Topic')).toEqual({ notes: false, votes: false });
    // Note's key to topics comes from its mixin: `topic` is one row; so is Vote's.
    expect(rels('Note')).toEqual({ topic: true });
    expect(rels('Vote')).toEqual({ topic: true });
  });

  it('reads relationship targets from annotations', () => {
    expect(targetFromAnnotation('Mapped[List["Address"]]')).toBe('Address');
    expect(targetFromAnnotation('Mapped[list["app.models.Hero"]]')).toBe('app.models.Hero');
    expect(targetFromAnnotation('Optional["Team"]')).toBe('Team');
    expect(targetFromAnnotation('Team | None')).toBe('Team');
    expect(targetFromAnnotation('Mapped[dict[str, int]]')).toBe(null);
    expect(targetFromAnnotation(null)).toBe(null);
  });
});

describe('shared sessions made at import', () => {
  it('finds a class attribute and an object holding one, and reads long indented classes in linear time', async () => {
    // A class whose body has many indented lines before any assignment: the hint that decides
    // whether the file is read must not backtrack over them (it once took exponential time).
    const padding = Array.from({ length: 30 }, (_, i) => `        value_${i} = compute(   a,   b,   c   )  # ${'x '.repeat(20)}`).join('\n');
    const ctx = await contextFor({
      'requirements.txt': 'sqlalchemy>=2\n',
      'app/__init__.py': '',
      'app/db.py': 'from sqlalchemy.orm import sessionmaker\n\nSessionLocal = sessionmaker()\n',
      'app/helpers.py': `class Helper:\n    def __init__(self):\n${padding}\n`,
      'app/services.py': [
        'from app.db import SessionLocal',
        '',
        'class Catalog:',
        '    session = SessionLocal()',
        '',
        'class Lookup:',
        '    def __init__(self, session):',
        '        self.session = session',
        '',
        'shared = Lookup(SessionLocal())',
        '',
      ].join('\n'),
    });
    expect((ctx.sharedSessions ?? []).map((s) => [s.name, s.owner ?? null, s.holder ?? null])).toEqual([
      ['app.services.Catalog.session', 'Catalog', null],
      ['app.services.shared', null, 'Lookup'],
    ]);
  });
});
