/**
 * The repo-wide call graph on real summaries: calls resolved through every import form and
 * `self.`, effects propagated along sync edges only, cycles safe, shortest chains.
 */
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempTree } from './helpers/tmp.js';
import { createParser } from '../dist/src/parse/parser.js';
import { analyzeFile } from '../dist/src/engine/analyzeFile.js';
import { emptyContext } from '../dist/src/discovery/context.js';
import { buildCallGraph } from '../dist/src/analysis/callgraph.js';
import type { CallGraph, FnRef } from '../src/analysis/callgraph.js';
import type { FileSummary } from '../src/analysis/summary.js';
import { repoModuleNames } from '../dist/src/analysis/summary.js';

const FILES: Record<string, string> = {
  'app/storage.py': [
    'from pathlib import Path',
    'import time',
    '',
    'def save_blob(p, data):',
    '    Path(p).write_bytes(data)',
    '',
    'def ping_pong(n):',
    '    if n:',
    '        return pong(n - 1)',
    '',
    'def pong(n):',
    '    time.sleep(0.1)',
    '    return ping_pong(n)',
    '',
    'async def async_save(p, data):',
    '    save_blob(p, data)',
    '',
  ].join('\n'),
  'app/api.py': [
    'from app.storage import save_blob',
    'import app.storage as st',
    'from app import storage',
    '',
    'class Uploader:',
    '    def _write(self, p, d):',
    '        save_blob(p, d)',
    '',
    '    async def upload(self, p, d):',
    '        self._write(p, d)',
    '',
    'async def direct(p, d):',
    '    save_blob(p, d)',
    '',
    'async def aliased(p, d):',
    '    st.save_blob(p, d)',
    '',
    'async def via_package(p, d):',
    '    storage.save_blob(p, d)',
    '',
    'async def awaits(p, d):',
    '    await st.async_save(p, d)',
    '',
    'async def cycle():',
    '    st.ping_pong(3)',
    '',
  ].join('\n'),
};

let graph: CallGraph;
let summaries: FileSummary[];

beforeAll(async () => {
  const dir = tempTree('pa-cg-', FILES);
  const parser = await createParser('wasm');
  summaries = Object.keys(FILES).sort().map((rel) => analyzeFile(rel, path.join(dir, rel), parser, [], emptyContext(dir)).summary!);
  graph = buildCallGraph({ files: summaries });
});

function fn(file: string, qualifiedName: string): FnRef {
  const f = summaries.findIndex((s) => s.path === file);
  return { file: f, fn: summaries[f]!.functions.findIndex((x) => x.qualifiedName === qualifiedName) };
}

function chain(file: string, name: string, kind: string, mode: 'sync' | 'any' = 'sync'): string[] | null {
  const reach = graph.effectsOf(fn(file, name), mode).get(kind);
  return reach ? graph.chainNames(reach) : null;
}

describe('call graph', () => {
  it('resolves from-imports, module aliases, package imports and self. methods', () => {
    expect(chain('app/api.py', 'direct', 'blocking_io')).toEqual(['direct', 'save_blob', 'Path.write_bytes']);
    expect(chain('app/api.py', 'aliased', 'blocking_io')).toEqual(['aliased', 'save_blob', 'Path.write_bytes']);
    expect(chain('app/api.py', 'via_package', 'blocking_io')).toEqual(['via_package', 'save_blob', 'Path.write_bytes']);
    expect(chain('app/api.py', 'Uploader.upload', 'blocking_io')).toEqual(['Uploader.upload', 'Uploader._write', 'save_blob', 'Path.write_bytes']);
  });

  it('does not propagate through an awaited coroutine in sync mode, but does in any mode', () => {
    expect(chain('app/api.py', 'awaits', 'blocking_io')).toBeNull();
    expect(chain('app/api.py', 'awaits', 'blocking_io', 'any')).toEqual(['awaits', 'async_save', 'save_blob', 'Path.write_bytes']);
  });

  it('survives recursion and finds the shortest chain', () => {
    expect(chain('app/api.py', 'cycle', 'sync_sleep')).toEqual(['cycle', 'ping_pong', 'pong', 'time.sleep']);
  });

  it('lists callers', () => {
    const callers = graph.callers(fn('app/storage.py', 'save_blob')).map((e) => graph.function(e.from).qualifiedName).sort();
    expect(callers).toEqual(['Uploader._write', 'aliased', 'async_save', 'direct', 'via_package']);
  });
});

describe('the calls a summary keeps for the repo phase', () => {
  const TREE: Record<string, string> = {
    ...FILES,
    'app/service.py': [
      'import time',
      'from app.storage import save_blob',
      '',
      'class Service:',
      '    def _flush(self):',
      '        time.sleep(1)',
      '',
      '    async def run(self, rows):',
      '        self._flush()',
      '        self.session.execute("select 1")',
      '        self.client.get("/x")',
      '        save_blob("p", rows)',
      '',
      'async def outer():',
      '    def inner():',
      '        time.sleep(1)',
      '    inner()',
      '    repo.get(1)',
      '',
    ].join('\n'),
  };
  let full: FileSummary[];
  let kept: FileSummary[];

  beforeAll(async () => {
    const dir = tempTree('pa-cg-kept-', TREE);
    const parser = await createParser('wasm');
    const rels = Object.keys(TREE).sort();
    const repoModules = new Set(repoModuleNames(rels));
    full = rels.map((rel) => analyzeFile(rel, path.join(dir, rel), parser, [], emptyContext(dir)).summary!);
    kept = rels.map((rel) => analyzeFile(rel, path.join(dir, rel), parser, [], emptyContext(dir), { repoModules }).summary!);
  });

  const edges = (g: CallGraph) =>
    [...g.functions()].flatMap((r) => g.callees(r).map((e) => `${g.function(e.from).qualifiedName} -> ${g.function(e.to).qualifiedName} @${e.call.line}:${e.call.column}`)).sort();

  it('keeps every call the call graph can resolve, and drops calls that can never be an edge', () => {
    const g = buildCallGraph({ files: kept });
    expect(edges(g)).toEqual(edges(buildCallGraph({ files: full })));
    expect(edges(g)).toEqual(expect.arrayContaining([expect.stringMatching(/^Service\.run -> Service\._flush /), expect.stringMatching(/^outer -> outer\.inner /)]));
    const texts = kept.find((s) => s.path === 'app/service.py')!.calls.map((c) => c.calleeText);
    expect(texts).toEqual(expect.arrayContaining(['self._flush', 'save_blob', 'inner']));
    expect(texts).not.toContain('self.session.execute');
    expect(texts).not.toContain('self.client.get');
    expect(texts).not.toContain('repo.get');
    const allTexts = full.find((s) => s.path === 'app/service.py')!.calls.map((c) => c.calleeText);
    expect(allTexts).toContain('self.session.execute');
  });

  it('finds calls by position, functions by effect kind, and the async functions', () => {
    const g = buildCallGraph({ files: kept });
    const file = kept.findIndex((s) => s.path === 'app/service.py');
    for (const c of kept[file]!.calls) expect(g.callAt(file, c.line, c.column)).toBe(kept[file]!.calls.find((x) => x.line === c.line && x.column === c.column));
    expect(g.callAt(file, 1, 1)).toBeUndefined();
    const sleepers = [...g.functionsWithEffects(new Set(['sync_sleep']))].map((r) => g.function(r).qualifiedName);
    expect(sleepers).toEqual(['Service._flush', 'outer.inner', 'pong']);
    expect(sleepers.every((n) => [...g.functions()].some((r) => g.function(r).qualifiedName === n && g.ownEffects(r).some((e) => e.kind === 'sync_sleep')))).toBe(true);
    const asyncNames = g.asyncFunctions().map((r) => g.function(r).qualifiedName);
    expect(asyncNames).toEqual([...g.functions()].filter((r) => g.function(r).isAsync).map((r) => g.function(r).qualifiedName));
    expect(asyncNames).toEqual(expect.arrayContaining(['Service.run', 'outer', 'direct', 'async_save']));
  });
});
