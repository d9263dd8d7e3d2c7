/**
 * One test for every fixture: each `.py` under fixtures/ carries its expectations inline
 * (`time.sleep(1)  # expect: PA303`). For the rules that exist, the findings on each line must
 * equal the marks exactly — no more, no fewer. `# advisory: PA107` marks a finding that must be
 * reported as advisory (code that runs once, an ADR); `# expect:` findings must not be advisory.
 * Marks of rules not yet built stay pending.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { scan } from '../dist/src/engine/scan.js';
import { resolveConfig } from '../dist/src/config/config.js';
import { ALL_RULES } from '../dist/src/rules/registry.js';
import type { Finding } from '../src/types.js';

const FIXTURES = path.resolve(__dirname, '../fixtures');
const implemented = new Set(ALL_RULES.map((r: { meta: { code: string } }) => r.meta.code));
const MANIFESTS = ['pyproject.toml', 'requirements.txt', 'setup.cfg', 'Pipfile', '.fixture-root'];

/** Fixture projects: directories holding a manifest (or `.fixture-root`), else top-level folders. */
function projectRoots(): string[] {
  const roots: string[] = [];
  const visit = (dir: string, depth: number) => {
    const names = fs.readdirSync(dir);
    if (depth > 0 && names.some((n) => MANIFESTS.includes(n))) {
      roots.push(dir);
      return;
    }
    const subdirs = names.filter((n) => fs.statSync(path.join(dir, n)).isDirectory()).sort();
    const hasPy = names.some((n) => n.endsWith('.py'));
    if (depth === 1 && hasPy) {
      roots.push(dir);
      return;
    }
    for (const d of subdirs) visit(path.join(dir, d), depth + 1);
    if (depth === 1 && !roots.some((r) => r.startsWith(dir))) roots.push(dir);
  };
  visit(FIXTURES, 0);
  return roots;
}

function pythonFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...pythonFiles(p));
    else if (entry.name.endsWith('.py')) out.push(p);
  }
  return out.sort();
}

/** How a finding is shown in the comparison: its code, and `(advisory)` when it is one. */
const mark = (code: string, advisory: boolean) => (advisory ? `${code}(advisory)` : code);

/** line → sorted marks expected there (only implemented rules). */
function expectations(file: string): Map<number, string[]> {
  const marks = new Map<number, string[]>();
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(fs.readFileSync(file));
  } catch {
    return marks; // bad-input fixtures carry no marks
  }
  text.split('\n').forEach((line, i) => {
    const codes: string[] = [];
    for (const m of line.matchAll(/#\s*(expect|advisory):\s*([A-Z0-9 ,]+)/g)) {
      for (const c of m[2]!.split(',').map((x) => x.trim())) if (implemented.has(c)) codes.push(mark(c, m[1] === 'advisory'));
    }
    if (codes.length) marks.set(i + 1, codes.sort());
  });
  return marks;
}

const roots = projectRoots();
const findingsByRoot = new Map<string, Finding[]>();
/** Internal errors of each fixture project's scan: a rule that crashes on a fixture loses its findings silently. */
const errorsByRoot = new Map<string, unknown[]>();

beforeAll(async () => {
  const config = resolveConfig({ report: null, log: null, cache: false, jobs: 2 }, {}, null);
  for (const root of roots) {
    const { result } = await scan(root, config);
    findingsByRoot.set(root, result.findings);
    errorsByRoot.set(root, result.stats.internalErrors);
  }
}, 120_000);

describe('fixture expectations', () => {
  it('finds fixture projects', () => {
    expect(roots.map((r) => path.relative(FIXTURES, r))).toContain('sample-app');
  });

  it('no fixture project makes the analysis fail', () => {
    expect([...errorsByRoot].filter(([, errors]) => errors.length).map(([root, errors]) => [path.relative(FIXTURES, root), errors])).toEqual([]);
  });

  for (const root of roots) {
    for (const file of pythonFiles(root)) {
      const rel = path.relative(root, file).split(path.sep).join('/');
      it(`${path.relative(FIXTURES, root)}/${rel}`, () => {
        const got = new Map<number, string[]>();
        for (const f of findingsByRoot.get(root) ?? []) {
          if (f.path !== rel) continue;
          got.set(f.line, [...(got.get(f.line) ?? []), mark(f.code, f.advisory)].sort());
        }
        const want = expectations(file);
        const show = (m: Map<number, string[]>) => [...m].sort((a, b) => a[0] - b[0]).map(([l, c]) => `${rel}:${l} ${c.join(',')}`);
        expect(show(got)).toEqual(show(want));
      });
    }
  }
});
