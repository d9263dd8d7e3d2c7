/**
 * The rules' metadata without loading the rules: `rules` and `explain` read a catalogue written
 * at build time (`npm run build` → dist/rule-catalog.json), so they start without importing
 * every rule module and the semantic layer. A catalogue older than the compiled registry (a
 * bare `tsc` after a change) is ignored and the registry is imported instead.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { RuleMeta } from './types.js';

const CATALOG = fileURLToPath(new URL('../../rule-catalog.json', import.meta.url));
const REGISTRY = fileURLToPath(new URL('./registry.js', import.meta.url));

export async function ruleCatalog(): Promise<RuleMeta[]> {
  try {
    if (fs.statSync(CATALOG).mtimeMs >= fs.statSync(REGISTRY).mtimeMs) {
      return JSON.parse(fs.readFileSync(CATALOG, 'utf8')) as RuleMeta[];
    }
  } catch {
    // no catalogue: fall through
  }
  const { ruleMetas } = await import('./registry.js');
  return ruleMetas();
}

/** Writes the catalogue; run by `npm run build` after tsc. */
export async function writeRuleCatalog(): Promise<void> {
  const { ruleMetas } = await import('./registry.js');
  fs.writeFileSync(CATALOG, JSON.stringify(ruleMetas(), null, 1) + '\n');
}

