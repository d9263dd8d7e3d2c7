import type { Rule } from '../../types.js';
import { redundantFetch } from './redundant_fetch.js';
import { nUpdateDeleteLoop } from './n_update_delete_loop.js';
import { overFetching } from './over_fetching.js';
import { missingBulkOps } from './missing_bulk_ops.js';
import { queryInLoop } from './query_in_loop.js';
import { lazyLoadInLoop } from './lazy_load_in_loop.js';
import { countViaLen } from './count_via_len.js';
import { wrongCachingScope } from './wrong_caching_scope.js';
import { unnecessaryResolve } from './unnecessary_resolve.js';
import { deadQueryResult } from './dead_query_result.js';
import { asyncLazyLoad } from './async_lazy_load.js';

export const queryRules: Rule[] = [redundantFetch, nUpdateDeleteLoop, unnecessaryResolve, overFetching, missingBulkOps, wrongCachingScope, queryInLoop, lazyLoadInLoop, countViaLen, deadQueryResult, asyncLazyLoad];
