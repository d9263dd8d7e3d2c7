/** Every rule, in code order. Families register their rules in their own index file. */
import type { Family } from '../types.js';
import { lifecycleRules } from './python/lifecycle/index.js';
import { queryRules } from './python/query/index.js';
import { runtimeRules } from './python/runtime/index.js';
import { transactionRules } from './python/transaction/index.js';
import type { Rule, RuleMeta } from './types.js';

export const ALL_RULES: readonly Rule[] = [...queryRules, ...transactionRules, ...runtimeRules, ...lifecycleRules].sort(
  (a, b) => a.meta.code.localeCompare(b.meta.code),
);

const BY_CODE = new Map(ALL_RULES.map((r) => [r.meta.code, r]));

export function ruleByCode(code: string): Rule | undefined {
  return BY_CODE.get(code.toUpperCase());
}

/** Families that have at least one rule implemented. */
export function implementedFamilies(): Set<Family> {
  return new Set(ALL_RULES.map((r) => r.meta.family));
}

/**
 * Rules enabled by `--select` / `--ignore` lists of codes or prefixes (`PA3`, `PA301`).
 * An empty select list selects everything.
 */
export function selectRules(select: string[], ignore: string[]): Rule[] {
  const matches = (code: string, pats: string[]) => pats.some((p) => code.startsWith(p.toUpperCase()));
  return ALL_RULES.filter((r) => (select.length === 0 || matches(r.meta.code, select)) && !matches(r.meta.code, ignore));
}

export function ruleMetas(): RuleMeta[] {
  return ALL_RULES.map((r) => r.meta);
}
