import type { Rule } from '../../types.js';

export const queryRules: Rule[] = [];
