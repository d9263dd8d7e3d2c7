/**
 * A deterministic synthetic monorepo for scale benchmarks:
 *
 *   node dist/bench/generate.js /tmp/pa-mono --lines 2000000 [--seed 1] [--services N]
 *
 * N services of FastAPI + SQLAlchemy code with realistic shapes: models, repositories, async
 * routes, background jobs, Alembic migrations with pg_notify triggers, settings with engines and
 * session factories; some N+1 loops, blocking calls in async defs, sessions without context
 * managers and commits in loops, seeded so that the same flags always give the same bytes.
 * Write it under /tmp; never commit generated code.
 */
import fs from 'node:fs';
import path from 'node:path';

/** mulberry32: tiny, fast, deterministic. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NOUNS = [
  'user', 'order', 'invoice', 'payment', 'product', 'customer', 'shipment', 'ticket', 'account', 'subscription',
  'coupon', 'review', 'address', 'warehouse', 'supplier', 'refund', 'session', 'device', 'report', 'message',
  'team', 'project', 'task', 'comment', 'label', 'notification', 'webhook', 'plan', 'quota', 'audit_event',
];
const FIELD_TYPES: [string, string][] = [
  ['String(120)', 'str'], ['Integer', 'int'], ['Boolean', 'bool'], ['DateTime(timezone=True)', 'datetime'],
  ['Numeric(12, 2)', 'Decimal'], ['Text', 'str'], ['BigInteger', 'int'],
];

const camel = (s: string) => s.split('_').map((p) => p[0]!.toUpperCase() + p.slice(1)).join('');

class Gen {
  constructor(private readonly r: () => number) {}
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.r() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.r() * xs.length)]!;
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
}

interface Entity {
  name: string;
  cls: string;
  table: string;
  fields: [string, string, string][];
  parent: Entity | null;
}

function entities(g: Gen, svc: number, count: number): Entity[] {
  const out: Entity[] = [];
  for (let i = 0; i < count; i++) {
    const base = NOUNS[(svc * 7 + i) % NOUNS.length]!;
    const name = i < NOUNS.length ? base : `${base}_${i}`;
    const fields: [string, string, string][] = [];
    const n = g.int(3, 9);
    for (let f = 0; f < n; f++) {
      const [sa, py] = g.pick(FIELD_TYPES);
      fields.push([`${g.pick(['name', 'status', 'amount', 'created', 'updated', 'code', 'note', 'score', 'kind', 'ref'])}_${f}`, sa, py]);
    }
    out.push({ name, cls: camel(name), table: `${name}s`, fields, parent: i > 0 && g.chance(0.6) ? out[g.int(0, i - 1)]! : null });
  }
  return out;
}

function modelsFile(es: Entity[]): string {
  const L = [
    'from __future__ import annotations',
    '',
    'from datetime import datetime',
    'from decimal import Decimal',
    '',
    'from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, Numeric, String, Text, func',
    'from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship',
    '',
    '',
    'class Base(DeclarativeBase):',
    '    pass',
    '',
  ];
  for (const e of es) {
    L.push('', `class ${e.cls}(Base):`, `    __tablename__ = "${e.table}"`, '', '    id: Mapped[int] = mapped_column(primary_key=True)');
    for (const [f, sa, py] of e.fields) L.push(`    ${f}: Mapped[${py}] = mapped_column(${sa}, nullable=True)`);
    L.push('    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())');
    if (e.parent) {
      L.push(`    ${e.parent.name}_id: Mapped[int] = mapped_column(ForeignKey("${e.parent.table}.id"), index=True)`);
      L.push(`    ${e.parent.name}: Mapped["${e.parent.cls}"] = relationship(back_populates="${e.table}")`);
    }
    for (const c of es.filter((x) => x.parent === e)) L.push(`    ${c.table}: Mapped[list["${c.cls}"]] = relationship(back_populates="${e.name}")`);
    L.push('', '    def __repr__(self) -> str:', `        return f"<${e.cls} id={self.id}>"`);
  }
  return L.join('\n') + '\n';
}

function dbFile(svc: string): string {
  return `import os

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql+asyncpg://app:app@db/${svc}")

engine = create_async_engine(DATABASE_URL, pool_size=10, max_overflow=5, pool_pre_ping=True)
SessionLocal = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

sync_engine = create_engine("postgresql+psycopg://app:app@db/${svc}", pool_size=5)
SyncSession = sessionmaker(bind=sync_engine)


async def get_session():
    async with SessionLocal() as session:
        yield session
`;
}

function repoFile(g: Gen, e: Entity): string {
  const L = [
    'from sqlalchemy import select, update, delete',
    'from sqlalchemy.ext.asyncio import AsyncSession',
    '',
    `from ..models import ${e.cls}${e.parent ? `, ${e.parent.cls}` : ''}`,
    '',
    '',
    `class ${e.cls}Repository:`,
    '    def __init__(self, session: AsyncSession) -> None:',
    '        self.session = session',
    '',
    `    async def get(self, ${e.name}_id: int) -> ${e.cls} | None:`,
    `        return await self.session.get(${e.cls}, ${e.name}_id)`,
    '',
    `    async def list(self, limit: int = 100, offset: int = 0) -> list[${e.cls}]:`,
    `        result = await self.session.execute(select(${e.cls}).order_by(${e.cls}.id).limit(limit).offset(offset))`,
    '        return list(result.scalars().all())',
    '',
    `    async def create(self, **fields) -> ${e.cls}:`,
    `        obj = ${e.cls}(**fields)`,
    '        self.session.add(obj)',
    '        await self.session.flush()',
    '        return obj',
    '',
    `    async def delete(self, ${e.name}_id: int) -> None:`,
    `        await self.session.execute(delete(${e.cls}).where(${e.cls}.id == ${e.name}_id))`,
  ];
  for (const [f] of e.fields) {
    L.push(
      '',
      `    async def find_by_${f}(self, value) -> list[${e.cls}]:`,
      `        stmt = select(${e.cls}).where(${e.cls}.${f} == value)`,
      '        rows = await self.session.execute(stmt)',
      '        return list(rows.scalars())',
      '',
      `    async def set_${f}(self, ${e.name}_id: int, value) -> None:`,
      `        await self.session.execute(update(${e.cls}).where(${e.cls}.id == ${e.name}_id).values(${f}=value))`,
    );
  }
  if (e.parent) {
    L.push('', `    async def parents_of(self, ids: list[int]) -> list:`, '        out = []');
    if (g.chance(0.5)) {
      // N+1: one query per id.
      L.push('        for i in ids:', `            obj = await self.session.get(${e.cls}, i)`, `            out.append(obj.${e.parent.name})`);
    } else {
      L.push(`        rows = await self.session.execute(select(${e.cls}).where(${e.cls}.id.in_(ids)))`, '        out.extend(rows.scalars())');
    }
    L.push('        return out');
  }
  return L.join('\n') + '\n';
}

function routeFile(g: Gen, svc: string, e: Entity): string {
  const L = [
    'import json',
    'import time',
    '',
    'import requests',
    'from fastapi import APIRouter, Depends, HTTPException',
    'from sqlalchemy.ext.asyncio import AsyncSession',
    '',
    `from ..db import get_session, SyncSession`,
    `from ..repositories.${e.name} import ${e.cls}Repository`,
    '',
    `router = APIRouter(prefix="/${e.table}", tags=["${e.table}"])`,
    '',
    '',
    '@router.get("/{item_id}")',
    `async def read_${e.name}(item_id: int, session: AsyncSession = Depends(get_session)):`,
    `    repo = ${e.cls}Repository(session)`,
    '    obj = await repo.get(item_id)',
    '    if obj is None:',
    '        raise HTTPException(status_code=404)',
    '    return obj',
    '',
    '',
    '@router.get("/")',
    `async def list_${e.table}(limit: int = 50, session: AsyncSession = Depends(get_session)):`,
    `    return await ${e.cls}Repository(session).list(limit=limit)`,
  ];
  if (g.chance(0.35)) {
    L.push(
      '', '', '@router.post("/{item_id}/sync")',
      `async def sync_${e.name}(item_id: int):`,
      '    # blocking calls on the event loop',
      `    resp = requests.get(f"http://${svc}-upstream/${e.table}/{item_id}", timeout=5)`,
      '    time.sleep(0.1)',
      '    with open("/tmp/last_sync.json", "w") as fh:',
      '        json.dump(resp.json(), fh)',
      '    return {"ok": True}',
    );
  }
  if (g.chance(0.3)) {
    L.push(
      '', '', '@router.post("/bulk")',
      `def bulk_${e.name}(items: list[dict]):`,
      '    session = SyncSession()',
      '    for item in items:',
      `        session.execute(${JSON.stringify(`UPDATE ${e.table} SET note_0 = :n WHERE id = :id`)}, item)`,
      '        session.commit()',
      '    return {"count": len(items)}',
    );
  }
  const extra = g.int(3, 8);
  for (let i = 0; i < extra; i++) {
    const [f] = g.pick(e.fields);
    L.push(
      '', '', `@router.get("/by-${f}/{value}")`,
      `async def ${e.name}_by_${f}_${i}(value: str, session: AsyncSession = Depends(get_session)):`,
      `    repo = ${e.cls}Repository(session)`,
      `    items = await repo.find_by_${f}(value)`,
      '    result = []',
      '    for item in items:',
      '        payload = {"id": item.id}',
      `        payload["${f}"] = getattr(item, "${f}", None)`,
      '        result.append(payload)',
      '    return result',
    );
  }
  return L.join('\n') + '\n';
}

function jobFile(g: Gen, e: Entity): string {
  const L = [
    'import asyncio',
    'import logging',
    'import time',
    '',
    'from sqlalchemy import select',
    '',
    `from ..db import SessionLocal, SyncSession`,
    `from ..models import ${e.cls}`,
    '',
    'log = logging.getLogger(__name__)',
    '',
    '',
    `async def refresh_${e.table}(batch: int = 500) -> int:`,
    '    count = 0',
    '    async with SessionLocal() as session:',
    `        rows = await session.execute(select(${e.cls}).limit(batch))`,
    '        for obj in rows.scalars():',
    '            count += 1',
    '        await session.commit()',
    '    return count',
    '',
    '',
    `def nightly_${e.name}_cleanup() -> None:`,
    '    session = SyncSession()',
    '    try:',
    `        for obj in session.query(${e.cls}).all():`,
    `            log.info("cleanup %s", obj.id)`,
    '            session.delete(obj)',
    '        session.commit()',
    '    finally:',
    '        session.close()',
  ];
  if (g.chance(0.4)) {
    L.push('', '', `async def poll_${e.name}() -> None:`, '    while True:', `        await refresh_${e.table}()`, '        time.sleep(30)');
  } else {
    L.push('', '', `async def poll_${e.name}() -> None:`, '    while True:', `        await refresh_${e.table}()`, '        await asyncio.sleep(30)');
  }
  return L.join('\n') + '\n';
}

function migrationFile(g: Gen, svc: string, e: Entity, idx: number, prev: string | null): [string, string] {
  const rev = `${svc.replace(/\W/g, '')}${String(idx).padStart(4, '0')}`;
  const cols = e.fields.map(([f, sa]) => `        sa.Column("${f}", sa.${sa.replace(/\(.*$/, '')}(), nullable=True),`).join('\n');
  const notify = g.chance(0.5)
    ? `
    op.execute("""
        CREATE OR REPLACE FUNCTION notify_${e.table}() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('${e.table}_changed', NEW.id::text);
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql;
    """)
    op.execute("""
        CREATE TRIGGER ${e.table}_notify AFTER INSERT OR UPDATE ON ${e.table}
        FOR EACH ROW EXECUTE FUNCTION notify_${e.table}();
    """)`
    : '';
  return [
    `${rev}_create_${e.table}.py`,
    `"""create ${e.table}

Revision ID: ${rev}
Revises: ${prev ?? ''}
"""
import sqlalchemy as sa
from alembic import op

revision = "${rev}"
down_revision = ${prev ? `"${prev}"` : 'None'}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "${e.table}",
        sa.Column("id", sa.Integer(), primary_key=True),
${cols}
    )
    op.create_index("ix_${e.table}_id", "${e.table}", ["id"])${notify}


def downgrade() -> None:
    op.drop_table("${e.table}")
`,
  ];
}

function serviceFiles(g: Gen, svc: number, size: number): Map<string, string> {
  const name = `svc_${String(svc).padStart(3, '0')}`;
  const pkg = `services/${name}/app`;
  const files = new Map<string, string>();
  const es = entities(g, svc, size);
  files.set(`services/${name}/pyproject.toml`, `[project]\nname = "${name}"\nversion = "0.1.0"\ndependencies = ["fastapi>=0.110", "sqlalchemy>=2.0", "asyncpg>=0.29", "alembic>=1.13", "requests"]\n`);
  files.set(`services/${name}/alembic.ini`, `[alembic]\nscript_location = migrations\n`);
  files.set(`${pkg}/__init__.py`, '');
  files.set(`${pkg}/db.py`, dbFile(name));
  files.set(`${pkg}/models.py`, modelsFile(es));
  files.set(`${pkg}/repositories/__init__.py`, '');
  files.set(`${pkg}/routes/__init__.py`, '');
  files.set(`${pkg}/jobs/__init__.py`, '');
  const routers: string[] = [];
  let prev: string | null = null;
  es.forEach((e, i) => {
    files.set(`${pkg}/repositories/${e.name}.py`, repoFile(g, e));
    files.set(`${pkg}/routes/${e.name}.py`, routeFile(g, name, e));
    if (g.chance(0.6)) files.set(`${pkg}/jobs/${e.name}.py`, jobFile(g, e));
    const [file, text] = migrationFile(g, name, e, i, prev);
    prev = file.slice(0, file.indexOf('_create_'));
    files.set(`services/${name}/migrations/versions/${file}`, text);
    routers.push(e.name);
  });
  files.set(
    `${pkg}/main.py`,
    `from fastapi import FastAPI\n\n${routers.map((r) => `from .routes.${r} import router as ${r}_router`).join('\n')}\n\napp = FastAPI(title="${name}")\n${routers.map((r) => `app.include_router(${r}_router)`).join('\n')}\n`,
  );
  return files;
}

function main(): void {
  const argv = process.argv.slice(2);
  let target = '';
  let lines = 2_000_000;
  let seed = 1;
  let perService = 24;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--lines') lines = Number(argv[++i]);
    else if (a === '--seed') seed = Number(argv[++i]);
    else if (a === '--entities') perService = Number(argv[++i]);
    else if (!a.startsWith('-')) target = a;
    else throw new Error(`unknown option ${a}`);
  }
  if (!target) throw new Error('usage: generate.js TARGET_DIR [--lines N] [--seed N] [--entities N-per-service]');
  const root = path.resolve(target);
  if (fs.existsSync(root) && fs.readdirSync(root).length) throw new Error(`${root} is not empty`);
  const g = new Gen(rng(seed));
  let total = 0;
  let nfiles = 0;
  let svc = 0;
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(path.join(root, 'README.md'), `# synthetic monorepo (persist-audit bench, seed ${seed})\n`);
  fs.writeFileSync(
    path.join(root, 'docker-compose.yml'),
    'services:\n  db:\n    image: postgres:16-alpine\n    environment:\n      POSTGRES_PASSWORD: app\n',
  );
  while (total < lines) {
    for (const [rel, text] of serviceFiles(g, svc, g.int(Math.max(2, perService - 8), perService + 8))) {
      const abs = path.join(root, rel);
      fs.mkdirSync(path.dirname(abs), { recursive: true });
      fs.writeFileSync(abs, text);
      if (rel.endsWith('.py')) {
        total += text.split('\n').length - 1;
        nfiles++;
      }
    }
    svc++;
  }
  console.log(`${root}: ${svc} services, ${nfiles} Python files, ${total.toLocaleString('en-US')} lines (seed ${seed})`);
}

main();
