import type { Rule } from '../../types.js';

export const transactionRules: Rule[] = [];
