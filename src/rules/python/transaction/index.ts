import type { Rule } from '../../types.js';
import { commitInLoop } from './commit_in_loop.js';
import { eventChannelConsistency } from './event_channel_consistency.js';
import { longHeldTransaction } from './long_held_transaction.js';
import { missingRollback } from './missing_rollback.js';
import { missingCommit } from './missing_commit.js';
import { missingIntermediateCommits } from './missing_intermediate_commits.js';
import { scopeTooNarrow } from './scope_too_narrow.js';
import { scopeTooWide } from './scope_too_wide.js';
import { rawSqlPendingChanges } from './raw_sql_pending.js';
import { checkThenInsert } from './check_then_insert.js';
import { unawaitedDbCall } from './unawaited_db_call.js';
import { enqueueBeforeCommit } from './enqueue_before_commit.js';
import { unguardedClaim } from './unguarded_claim.js';

export const transactionRules: Rule[] = [missingIntermediateCommits, scopeTooWide, scopeTooNarrow, missingRollback, longHeldTransaction, eventChannelConsistency, commitInLoop, missingCommit, rawSqlPendingChanges, checkThenInsert, unawaitedDbCall, enqueueBeforeCommit, unguardedClaim];
