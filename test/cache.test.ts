/**
 * The incremental cache: a warm scan gives the same bytes as a cold one and as an uncached one;
 * a changed file is analysed again; a corrupt pack is ignored; `--no-cache` neither reads nor
 * writes; an unwritable cache directory costs a notice, never the scan.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scan } from '../dist/src/engine/scan.js';
import { resolveConfig } from '../dist/src/config/config.js';
import { renderFormat } from '../dist/src/report/index.js';
import { crc32ForTest } from '../dist/src/cache/cache.js';

const FIXTURE = path.resolve(__dirname, '../fixtures/runtime');
const HOUR_AGO = new Date(Date.now() - 3600_000);
let root: string;

function config(cache: boolean) {
  return resolveConfig({ report: null, log: null, cache, jobs: 2, quiet: true, failOn: 'never' }, {}, null);
}

/** The JSON output without the one field that legitimately differs between runs. */
async function run(cache: boolean, hooks: Record<string, unknown> = {}) {
  const out = await scan(root, config(cache), hooks);
  const json = renderFormat(out.result, 'json', { color: false }).replace(/"durationMs": \d+/, '"durationMs": 0');
  return { json, out };
}

/** Sets every file's mtime an hour back, so the stat fast path (not the racy-mtime hash check) decides. */
function ageTree(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) ageTree(p);
    else fs.utimesSync(p, HOUR_AGO, HOUR_AGO);
  }
}

const packPath = () => path.join(root, '.persist-audit-cache', 'pack-v1.bin');

describe('incremental cache', () => {
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-cache-test-'));
    fs.cpSync(FIXTURE, root, { recursive: true, filter: (src) => !src.includes('.persist-audit-cache') });
    ageTree(root);
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('a warm scan equals the cold scan and an uncached scan, byte for byte', async () => {
    const uncached = await run(false);
    expect(fs.existsSync(packPath())).toBe(false);
    const cold = await run(true);
    expect(cold.out.cache).toMatchObject({ hits: 0, contextHit: false, wrote: true });
    expect(fs.existsSync(packPath())).toBe(true);
    expect(cold.out.result.findings.length).toBeGreaterThan(0);
    const warm = await run(true);
    expect(warm.out.cache).toMatchObject({ misses: 0, hashed: 0, contextHit: true, wrote: false });
    expect(warm.out.cache!.hits).toBe(cold.out.cache!.misses);
    expect(warm.json).toBe(cold.json);
    expect(warm.json).toBe(uncached.json);
  });

  it('a small pass runs on the main thread and gives the bytes the workers give, cold and after an edit', async () => {
    const workers = await run(false, { inProcessBytes: 0 });
    expect(workers.out.passes).toEqual({ mainThread: 0, workers: 2 });
    const main = await run(false);
    expect(main.out.passes).toEqual({ mainThread: 2, workers: 0 });
    expect(main.json).toBe(workers.json);
    await run(true); // record the tree
    const file = path.join(root, 'PA303.py');
    const before = fs.readFileSync(file);
    try {
      fs.appendFileSync(file, '\n\nasync def edited():\n    time.sleep(3)\n');
      const edited = await run(true);
      expect(edited.out.cache).toMatchObject({ misses: 1 });
      expect(edited.out.passes).toEqual({ mainThread: 2, workers: 0 });
      expect(edited.json).toBe((await run(false, { inProcessBytes: 0 })).json);
    } finally {
      fs.writeFileSync(file, before);
      ageTree(root);
    }
  });

  it('a changed file is analysed again, and the result equals an uncached scan', async () => {
    const file = path.join(root, 'PA303.py');
    fs.appendFileSync(file, '\n\nasync def added_later():\n    time.sleep(3)\n');
    const changed = await run(true);
    expect(changed.out.cache).toMatchObject({ misses: 1, contextHit: false });
    expect(changed.out.result.findings.some((f) => f.path === 'PA303.py' && f.function === 'added_later')).toBe(true);
    expect(changed.json).toBe((await run(false)).json);
    ageTree(root);
  });

  it('an edit that changes no summary keeps the repo phase\'s result, with the edited lines\' text read again', async () => {
    await run(true); // record the tree
    // A chain finding (repo phase) whose line gets a trailing comment: the summary is the same,
    // the line's text (the fingerprint's input) is not.
    const file = path.join(root, 'PA301.py');
    const before = fs.readFileSync(file, 'utf8');
    const target = 'ensure_spool_dir(base)  # advisory: PA301';
    expect(before).toContain(target);
    try {
      fs.writeFileSync(file, before.replace(target, `${target}  # reviewed`) + '\n# a note at the end\n');
      const edited = await run(true);
      expect(edited.out.cache).toMatchObject({ misses: 1, repoKept: 'summaries' });
      const uncached = await run(false);
      expect(edited.json).toBe(uncached.json);
      expect(edited.out.result.findings.find((f) => f.path === 'PA301.py' && f.message.includes('ensure_spool_dir'))?.fingerprint)
        .toBe(uncached.out.result.findings.find((f) => f.path === 'PA301.py' && f.message.includes('ensure_spool_dir'))?.fingerprint);
      // An edit that changes a summary runs the repo phase again.
      fs.appendFileSync(file, '\n\nasync def spool_again(base: Path):\n    return create_spool_dir(base)\n');
      const changed = await run(true);
      expect(changed.out.cache).toMatchObject({ misses: 1, repoKept: null });
      expect(changed.json).toBe((await run(false)).json);
      expect(changed.out.result.findings.some((f) => f.path === 'PA301.py' && f.function === 'spool_again')).toBe(true);
    } finally {
      fs.writeFileSync(file, before);
      ageTree(root);
    }
  });

  it('a cached summary that does not read back is analysed again when the repo phase needs it, and the result equals an uncached scan', async () => {
    await run(true); // record the tree
    // Damage one file's summary blob in the pack, keeping the section's checksum valid: the pack
    // is still trusted, that one summary is not readable.
    const pack = fs.readFileSync(packPath());
    const magic = 8;
    const sections = 3;
    const summariesLen = pack.readUInt32LE(magic + 4 * 1);
    const head = magic + 4 * sections + 4 * sections;
    const section = pack.subarray(head, head + summariesLen); // the summaries come first in the file
    let at = 0;
    let damaged = '';
    while (at < section.length) {
      const nameLen = section.readUInt32LE(at);
      const blobLen = section.readUInt32LE(at + 4);
      const name = section.toString('utf8', at + 8, at + 8 + nameLen);
      if (name === 'PA303.py') {
        section.fill(0x42, at + 8 + nameLen, at + 8 + nameLen + blobLen);
        damaged = name;
        break;
      }
      at += 8 + nameLen + blobLen;
    }
    expect(damaged).toBe('PA303.py');
    pack.writeUInt32LE(crc32ForTest.zlib(section), magic + 4 * sections + 4 * 1);
    fs.writeFileSync(packPath(), pack);
    // Another file changes its summary: the repo phase must run, so every summary is read.
    const file = path.join(root, 'PA301.py');
    const before = fs.readFileSync(file, 'utf8');
    try {
      fs.appendFileSync(file, '\n\nasync def read_again(p: Path):\n    return p.read_text()\n');
      const rescanned = await run(true);
      expect(rescanned.out.cache).toMatchObject({ misses: 2, repoKept: null });
      expect(rescanned.json).toBe((await run(false)).json);
    } finally {
      fs.writeFileSync(file, before);
      ageTree(root);
    }
  });

  it('a touched but unchanged file is a hit confirmed by its content hash', async () => {
    await run(true); // record the aged mtimes
    const file = path.join(root, 'PA301.py');
    const later = new Date(HOUR_AGO.getTime() + 60_000);
    fs.utimesSync(file, later, later);
    const touched = await run(true);
    expect(touched.out.cache).toMatchObject({ misses: 0, hashed: 1 });
    expect(touched.json).toBe((await run(false)).json);
  });

  it('a corrupt pack is ignored and replaced', async () => {
    const reference = (await run(false)).json;
    await run(true);
    const bytes = fs.readFileSync(packPath());
    // Truncated in the middle, then garbage: neither may be trusted.
    for (const broken of [bytes.subarray(0, bytes.length >> 1), Buffer.from('PACACHE4\x10\x00\x00\x00not a v8 value at all')]) {
      fs.writeFileSync(packPath(), broken);
      const res = await run(true);
      expect(res.out.cache!.hits).toBe(0);
      expect(res.json).toBe(reference);
      expect(fs.readFileSync(packPath()).subarray(0, 8).toString('latin1')).toBe('PACACHE4');
    }
    const again = await run(true);
    expect(again.out.cache!.misses).toBe(0);
    expect(again.json).toBe(reference);
  });

  it('--no-cache neither reads nor writes the cache', async () => {
    await run(true);
    const before = fs.statSync(packPath());
    // Same size and mtime, other content: the stat fast path would trust the entry; no-cache must not read it.
    const file = path.join(root, 'PA303.py');
    const text = fs.readFileSync(file, 'utf8');
    const swapped = text.replace('time.sleep(1)  # expect: PA303', 'await asyncio.sleep(1)        ');
    expect(swapped.length).toBe(text.length);
    const st = fs.statSync(file);
    fs.writeFileSync(file, swapped);
    fs.utimesSync(file, st.atime, st.mtime);
    const uncached = await run(false);
    expect(uncached.out.cache).toBeNull();
    const after = fs.statSync(packPath());
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(after.size).toBe(before.size);
    expect(uncached.out.result.findings.some((f) => f.path === 'PA303.py' && f.line === 14)).toBe(false);
    // The documented policy: PERSIST_AUDIT_CACHE_VERIFY=1 hashes every file and catches it too.
    process.env.PERSIST_AUDIT_CACHE_VERIFY = '1';
    try {
      const verified = await run(true);
      expect(verified.json).toBe(uncached.json);
    } finally {
      delete process.env.PERSIST_AUDIT_CACHE_VERIFY;
    }
  });

  it('an unwritable cache directory only costs one notice', async () => {
    const blocker = path.join(root, 'not-a-dir');
    fs.writeFileSync(blocker, 'a file where the cache directory would go\n');
    const notices: string[] = [];
    const res = await run(true, { cacheDir: path.join(blocker, 'cache'), notice: (m: string) => notices.push(m) });
    expect(res.json).toBe((await run(false)).json);
    expect(notices.filter((m) => m.startsWith('cache not written'))).toHaveLength(1);
    fs.rmSync(blocker);
  });
});

describe('discovery facts in the cache', () => {
  const MODELS = [
    'from sqlalchemy import ForeignKey',
    'from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column',
    '',
    'class Base(DeclarativeBase):',
    '    pass',
    '',
    'class Order(Base):',
    '    __tablename__ = "orders"',
    '    id: Mapped[int] = mapped_column(primary_key=True)',
    '    status: Mapped[str]',
    '',
  ].join('\n');
  let tree: string;

  const cfg = (cache: boolean) => resolveConfig({ report: null, log: null, cache, jobs: 2, quiet: true, failOn: 'never' }, {}, null);
  async function scanTree(cache: boolean) {
    const out = await scan(tree, cfg(cache));
    return { out, json: renderFormat(out.result, 'json', { color: false }).replace(/"durationMs": \d+/, '"durationMs": 0') };
  }
  /**
   * Edits a file and gives it an mtime of its own, still well in the past: the stat then tells
   * the edit apart, and the cache's racy-mtime check has no say.
   */
  let edits = 0;
  function edit(rel: string, text: string): void {
    fs.writeFileSync(path.join(tree, rel), text);
    const t = new Date(HOUR_AGO.getTime() + ++edits * 60_000);
    fs.utimesSync(path.join(tree, rel), t, t);
  }

  beforeAll(() => {
    tree = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-facts-cache-'));
    const files: Record<string, string> = {
      'app/models.py': MODELS,
      'app/settings.py': 'CHANNEL = "orders_changed"\n',
      'app/listen.py': 'from app.settings import CHANNEL\n\nasync def listen(conn, cb):\n    await conn.add_listener(CHANNEL, cb)\n',
      'app/util.py': 'def total(xs):\n    return sum(xs)\n',
      'app/api.py': 'import time\n\nasync def handler():\n    time.sleep(1)\n',
    };
    for (const [rel, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(tree, rel)), { recursive: true });
      fs.writeFileSync(path.join(tree, rel), text);
    }
    ageTree(tree);
  });
  afterAll(() => fs.rmSync(tree, { recursive: true, force: true }));

  it('an edit that changes no fact of the context keeps it: only the edited file is read again, and the result equals an uncached scan', async () => {
    await scanTree(true);
    edit('app/util.py', 'def total(xs):\n    return sum(xs) + 0\n');
    const res = await scanTree(true);
    expect(res.out.cache).toMatchObject({ contextHit: false, contextKept: true, factsReused: 0, misses: 1 });
    expect(res.json).toBe((await scanTree(false)).json);
  });

  it('an edit to a module another file looks a constant up in reads that file again too, and keeps the context if nothing changed', async () => {
    await scanTree(true);
    edit('app/settings.py', 'CHANNEL = "orders_changed"\nRETRIES = 3\n');
    const res = await scanTree(true);
    expect(res.out.cache).toMatchObject({ contextHit: false, contextKept: true, misses: 1 });
    expect(res.out.result.context.events.subscribers.map((s: { channel: string }) => s.channel)).toEqual(['orders_changed']);
    expect(res.json).toBe((await scanTree(false)).json);
  });

  it('a new non-Python file rediscovers the context even when no Python file changed', async () => {
    await scanTree(true);
    edit('app/util.py', 'def total(xs):\n    return sum(xs) + 3\n');
    fs.writeFileSync(path.join(tree, 'requirements.txt'), 'fastapi\nsqlalchemy\n');
    const t = new Date(HOUR_AGO.getTime() + ++edits * 60_000);
    fs.utimesSync(path.join(tree, 'requirements.txt'), t, t);
    try {
      const res = await scanTree(true);
      expect(res.out.cache).toMatchObject({ contextHit: false, contextKept: false });
      expect(res.out.result.context.stack).toEqual((await scanTree(false)).out.result.context.stack);
    } finally {
      fs.rmSync(path.join(tree, 'requirements.txt'));
    }
  });

  it('a model added to a file that was read for the context shows in the context', async () => {
    await scanTree(true);
    edit('app/models.py', MODELS + '\nclass Refund(Base):\n    __tablename__ = "refunds"\n    id: Mapped[int] = mapped_column(primary_key=True)\n');
    const res = await scanTree(true);
    expect(res.out.cache).toMatchObject({ contextHit: false, contextKept: false, factsReused: 3 });
    expect(res.out.result.context.models.map((m: { name: string }) => m.name)).toContain('Refund');
    expect(res.json).toBe((await scanTree(false)).json);
  });

  it('facts that read a constant of another module are never reused: a changed constant reaches the context', async () => {
    await scanTree(true);
    const channels = (r: Awaited<ReturnType<typeof scanTree>>) => r.out.result.context.events.subscribers.map((s: { channel: string }) => s.channel);
    expect(channels(await scanTree(true))).toEqual(['orders_changed']);
    edit('app/settings.py', 'CHANNEL = "order_events"\n');
    const res = await scanTree(true);
    // settings.py changed and listen.py asked it for a constant: both are read again.
    expect(res.out.cache).toMatchObject({ contextHit: false, factsReused: 3 });
    expect(channels(res)).toEqual(['order_events']);
    expect(res.json).toBe((await scanTree(false)).json);
  });
  it('a damaged facts section is not trusted: every file is read again and the result is unchanged', async () => {
    await scanTree(true);
    edit('app/util.py', 'def total(xs):\n    return sum(xs) + 1\n');
    await scanTree(true);
    const pack = path.join(tree, '.persist-audit-cache', 'pack-v1.bin');
    const bytes = fs.readFileSync(pack);
    // The head: 8-byte magic, three u32 lengths (index, summaries, facts), three CRC-32s; in the
    // file the summaries come first, then the facts: damage the facts section's last byte.
    const summariesLength = bytes.readUInt32LE(12);
    const factsLength = bytes.readUInt32LE(16);
    bytes[8 + 12 + 12 + summariesLength + factsLength - 1] ^= 0xff;
    fs.writeFileSync(pack, bytes);
    edit('app/util.py', 'def total(xs):\n    return sum(xs) + 2\n');
    const res = await scanTree(true);
    expect(res.out.cache).toMatchObject({ contextHit: false, factsReused: 0, misses: 1 });
    expect(res.json).toBe((await scanTree(false)).json);
  });
});

describe('cache and the tree\'s package layout', () => {
  let tree: string;
  const write = (rel: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(tree, rel)), { recursive: true });
    fs.writeFileSync(path.join(tree, rel), text);
  };
  const runTree = async (cache: boolean) => {
    const out = await scan(tree, config(cache), {});
    return { json: renderFormat(out.result, 'json', { color: false }).replace(/"durationMs": \d+/, '"durationMs": 0'), out };
  };
  beforeAll(() => {
    tree = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-layout-cache-'));
    // Two services with a module of the same name: in one it sleeps the thread.
    write('services/a/app/__init__.py', '');
    write('services/b/app/__init__.py', '');
    write('services/a/app/pacing.py', 'import time\n\ndef throttle():\n    time.sleep(1)\n');
    write('services/b/app/pacing.py', 'def throttle():\n    return 1\n');
    write('services/a/app/routes.py', 'from app.pacing import throttle\n\nasync def charge():\n    throttle()\n');
    ageTree(tree);
  });
  afterAll(() => fs.rmSync(tree, { recursive: true, force: true }));

  it('an unchanged file is analysed again when a new __init__.py changes where its imports start', async () => {
    const before = await runTree(true);
    // `services/a` is the routes' source root: `app.pacing` is that service's module, which blocks.
    expect(before.out.result.findings.map((f: { code: string; path: string }) => `${f.code} ${f.path}`)).toEqual(['PA303 services/a/app/routes.py']);
    // Now `services` and `services/a` are packages: imports start at the root, and `app.pacing` is
    // ambiguous between the two services; the unchanged routes file must not keep its old reading.
    write('services/__init__.py', '');
    write('services/a/__init__.py', '');
    ageTree(tree);
    const after = await runTree(true);
    expect(after.out.cache).toMatchObject({ hits: 0 });
    expect(after.json).toBe((await runTree(false)).json);
    expect(after.out.result.findings).toEqual([]);
  });
});

describe('pack checksum', () => {
  it('the JS CRC-32 (for Node before 20.15) gives zlib\'s value, whole and in pieces', async () => {
    const { crc32ForTest } = await import('../dist/src/cache/cache.js');
    const data = Buffer.from('persist-audit pack section \u00e9\u00e8 0123456789'.repeat(37));
    // The standard check value of CRC-32 (IEEE): "123456789" -> 0xcbf43926.
    expect(crc32ForTest.js(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32ForTest.js(data)).toBe(crc32ForTest.zlib(data));
    const split = crc32ForTest.js(data.subarray(500), crc32ForTest.js(data.subarray(0, 500)));
    expect(split).toBe(crc32ForTest.js(data));
  });
});
