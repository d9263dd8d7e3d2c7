/**
 * Packed summaries (worker → main thread, and the cache's summary blobs) read back as the very
 * summaries that were packed, through a structured clone; a damaged pack is refused, never
 * half-read.
 */
import v8 from 'node:v8';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createParser } from '../dist/src/parse/parser.js';
import { analyzeFile } from '../dist/src/engine/analyzeFile.js';
import { ALL_RULES } from '../dist/src/rules/registry.js';
import { isFileRule } from '../dist/src/rules/types.js';
import { walk } from '../dist/src/discovery/walk.js';
import { discoverContext } from '../dist/src/discovery/discover.js';
import { repoModuleNames } from '../dist/src/analysis/summary.js';
import { decodeSummary, encodeSummary, encodeSummaryWithDigest, isPackedSummary, packSummary, unpackSummary } from '../dist/src/analysis/packedSummary.js';
import { runPool } from '../dist/src/pool/pool.js';
import { isTestPath } from '../dist/src/semantic/model.js';
import type { FileSummary } from '../src/analysis/summary.js';

const SAMPLE = path.resolve('fixtures/sample-app');

async function sampleSummaries(root = SAMPLE): Promise<FileSummary[]> {
  const parser = await createParser('wasm');
  const w = walk(root);
  const ctx = await discoverContext(root, [...w.python.map((f) => f.rel), ...w.others], parser);
  const repoModules = new Set(repoModuleNames(w.python.map((f) => f.rel)));
  const rules = ALL_RULES.filter(isFileRule);
  return w.python.map((f) => analyzeFile(f.rel, f.abs, parser, rules, ctx, { repoModules }).summary!).filter(Boolean);
}

describe('packed summaries', () => {
  it('have a digest of their content that does not depend on how V8 built their arrays', async () => {
    const [s] = await sampleSummaries();
    // V8 writes an empty array built by `new Array(0)` (holey) as sparse, `[]` as dense: equal
    // summaries, different bytes. The digest must not see that.
    const dense = { ...s!, suppressions: [], entryPoints: [] };
    const holey = { ...s!, suppressions: new Array(0), entryPoints: new Array(0) };
    const a = encodeSummaryWithDigest(dense);
    const b = encodeSummaryWithDigest(holey);
    // (On Node 20 the two byte strings differ; the digest must be equal whether or not they do.)
    expect(a.digest).toBe(b.digest);
    // Any change of content changes it.
    const moved = { ...s!, functions: s!.functions.map((f, i) => (i === 0 ? { ...f, startLine: f.startLine + 1 } : f)) };
    expect(encodeSummaryWithDigest(moved).digest).not.toBe(a.digest);
    expect(encodeSummaryWithDigest({ ...s!, smallConstants: ['DEFAULTS'] }).digest).not.toBe(a.digest);
  });

  it('read back equal to the summaries packed, key order included', async () => {
    const summaries = await sampleSummaries();
    // The sample has effects with and without a pending type path, nulls and flags to carry.
    const effects = summaries.flatMap((s) => s.functions.flatMap((f) => f.effects));
    expect(effects.some((e) => e.pending)).toBe(true);
    expect(summaries.some((s) => s.calls.some((c) => c.awaited) && s.calls.some((c) => c.qualifiedName === null))).toBe(true);
    for (const s of summaries) {
      const cloned: unknown = v8.deserialize(v8.serialize(packSummary(s)));
      expect(isPackedSummary(cloned)).toBe(true);
      const back = unpackSummary(cloned as ReturnType<typeof packSummary>);
      expect(back).toStrictEqual(s);
      expect(JSON.stringify(back)).toBe(JSON.stringify(s));
    }
  });

  it('carry a call of what a lookup by name returns (`get_handler("x")(...)`)', async () => {
    const summaries = await sampleSummaries(path.resolve('fixtures/transaction/action-registry'));
    expect(summaries.some((s) => s.calls.some((c) => c.named))).toBe(true);
    for (const s of summaries) expect(unpackSummary(v8.deserialize(v8.serialize(packSummary(s))) as ReturnType<typeof packSummary>)).toStrictEqual(s);
  });

  it('carry the list serializers a module binds for others to import (`x_schema = XSchema(many=True)`)', async () => {
    const summaries = await sampleSummaries(path.resolve('fixtures/query-marshmallow'));
    const lists = summaries.find((s) => s.moduleName === 'nursery.out.lists');
    expect(lists?.schemaInstances).toStrictEqual([
      ['greenhouse_rows', 'nursery.schemas.GreenhouseSchema', 'dump-name'],
      ['greenhouse_summaries', 'nursery.schemas.GreenhouseSchema', 'dump-beds'],
    ]);
    for (const s of summaries) expect(unpackSummary(v8.deserialize(v8.serialize(packSummary(s))) as ReturnType<typeof packSummary>)).toStrictEqual(s);
    const { schemaInstances: _, ...without } = lists!;
    expect(encodeSummaryWithDigest(without).digest).not.toBe(encodeSummaryWithDigest(lists!).digest);
  });

  it('are smaller than the plain summaries', async () => {
    const summaries = await sampleSummaries();
    const plain = summaries.reduce((n, s) => n + v8.serialize(s).length, 0);
    const packed = summaries.reduce((n, s) => n + v8.serialize(packSummary(s)).length, 0);
    expect(packed).toBeLessThan(plain * 0.7);
  });

  it('refuse a damaged pack', async () => {
    const [s] = await sampleSummaries();
    const p = packSummary(s!);
    expect(isPackedSummary({ ...p, calls: [] })).toBe(false);
    expect(isPackedSummary({ ...p, functions: new Int32Array(p.functions.length + 1) })).toBe(false);
    expect(isPackedSummary({ ...s })).toBe(false);
    const badId = { ...p, calls: p.calls.slice() };
    badId.calls[0] = p.strings.length + 5;
    expect(() => unpackSummary(badId)).toThrow(/out of range/);
  });

  it('read back from their bytes, which refuse anything else', async () => {
    const [s] = await sampleSummaries();
    expect(decodeSummary(encodeSummary(s!))).toStrictEqual(s);
    expect(() => decodeSummary(v8.serialize(s))).toThrow(/not a packed summary/);
    expect(() => decodeSummary(new Uint8Array([1, 2, 3]))).toThrow();
  });

  it('reach the main thread read back, or as bytes when asked for', async () => {
    const files = walk(SAMPLE).python;
    const setup = { rootDir: SAMPLE, parser: 'wasm' as const, codes: [], timings: false, hashContent: false, context: (await discoverContext(SAMPLE, files.map((f) => f.rel), await createParser('wasm'))) };
    const plain = await runPool(files, { jobs: 1, setup });
    // Test files are not parsed: they have no summary.
    const analysed = (o: { path: string }) => !isTestPath(o.path);
    expect(plain.outcomes.filter(analysed).length).toBeGreaterThan(0);
    expect(plain.outcomes.every((o) => (analysed(o) ? o.summary && !o.summaryBytes : !o.summary && !o.summaryBytes))).toBe(true);
    const bytes = await runPool(files, { jobs: 1, setup, summaries: 'bytes' });
    expect(bytes.outcomes.every((o) => (analysed(o) ? !o.summary && o.summaryBytes : !o.summary && !o.summaryBytes))).toBe(true);
    const byPath = new Map(plain.outcomes.map((o) => [o.path, JSON.stringify(o.summary)]));
    expect(bytes.outcomes.filter(analysed).every((o) => JSON.stringify(decodeSummary(o.summaryBytes!)) === byPath.get(o.path))).toBe(true);
  });
});
