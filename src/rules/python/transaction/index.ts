import type { Rule } from '../../types.js';
import { commitInLoop } from './commit_in_loop.js';

export const transactionRules: Rule[] = [commitInLoop];
