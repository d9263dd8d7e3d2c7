/**
 * Every rule's documentation examples run (as Biome does): the "bad" example must produce a
 * finding of that rule and the "good" one none, so `explain` can never drift from behaviour.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { scan } from '../dist/src/engine/scan.js';
import { resolveConfig } from '../dist/src/config/config.js';
import { ALL_RULES } from '../dist/src/rules/registry.js';
import type { RuleMeta } from '../src/rules/types.js';

async function codesFor(meta: RuleMeta, source: string): Promise<string[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pa-doc-${meta.code}-`));
  fs.mkdirSync(path.join(dir, 'app'));
  fs.writeFileSync(path.join(dir, 'app/example.py'), source);
  const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: [meta.code] }, {}, null);
  const { result } = await scan(dir, config);
  fs.rmSync(dir, { recursive: true, force: true });
  return result.findings.map((f: { code: string }) => f.code);
}

describe('rule documentation examples', () => {
  for (const rule of ALL_RULES as { meta: RuleMeta }[]) {
    const meta = rule.meta;
    it(`${meta.code} ${meta.check}: the bad example is flagged`, async () => {
      expect(await codesFor(meta, meta.bad)).toContain(meta.code);
    });
    it(`${meta.code} ${meta.check}: the good example is not`, async () => {
      expect(await codesFor(meta, meta.good)).toEqual([]);
    });
    it(`${meta.code} has complete metadata`, () => {
      for (const key of ['check', 'summary', 'what', 'why', 'bad', 'good', 'fix'] as const) expect(meta[key], key).toBeTruthy();
      expect(meta.references.length).toBeGreaterThan(0);
      for (const url of meta.references) expect(url).toMatch(/^https:\/\//);
    });
  }
});

describe('rule catalogue', () => {
  it('the build-time catalogue that `rules` and `explain` read equals the registry', async () => {
    const { ruleCatalog } = await import('../dist/src/rules/catalog.js');
    expect(await ruleCatalog()).toEqual((ALL_RULES as { meta: RuleMeta }[]).map((r) => r.meta));
  });
});

describe('the README rule table', () => {
  it('has one row per rule, as the rule metadata says', async () => {
    const fs = await import('node:fs');
    const path = await import('node:path');
    const { ruleMetas } = await import('../dist/src/rules/registry.js');
    const readme = fs.readFileSync(path.resolve(__dirname, '../README.md'), 'utf8');
    const rows = readme.split('\n').filter((l) => /^\| PA\d{3} \|/.test(l));
    expect(rows).toEqual(ruleMetas().map((m: { code: string; check: string; family: string; severity: string; summary: string }) =>
      `| ${m.code} | ${m.check} | ${m.family} | ${m.severity} | ${m.summary} |`));
  });
});
