import type { Rule } from '../../types.js';
import { nUpdateDeleteLoop } from './n_update_delete_loop.js';
import { missingBulkOps } from './missing_bulk_ops.js';
import { queryInLoop } from './query_in_loop.js';

export const queryRules: Rule[] = [nUpdateDeleteLoop, missingBulkOps, queryInLoop];
