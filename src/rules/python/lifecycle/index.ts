import type { Rule } from '../../types.js';

export const lifecycleRules: Rule[] = [];
